/* access_log.h - the gateway's access log: one JSON object a line, written off the event loops.
 *
 * A gateway worker formats its call's record (tg_access_log_format, a pure function) into a
 * buffer on its stack and appends the line (tg_access_log_append): a memcpy into the current
 * half of a double buffer under a mutex held for that copy alone. A writer thread swaps the
 * halves and writes the full one with write(2), so a slow disk slows the writer, never a
 * request: when the current half is full the line is dropped and counted
 * (tollgate_access_log_dropped_total), the request goes on. SIGUSR1 (main.c) asks the writer
 * to reopen the file by its name, for logrotate's rename-then-signal.
 *
 * A reload changes the destination and the sampling (tg_access_log_configure): the new file is
 * opened first (a failure changes nothing), then the writer switches at a cut in the buffer:
 * every line appended before the call goes to the old destination, every line after it to the
 * new one, each line whole in exactly one of them.
 *
 * Threads: append from any thread; reopen from any thread (it only sets a flag); configure
 * from one thread at a time (the reload's); open and close from the thread that owns the log
 * (main). */
#ifndef TG_ACCESS_LOG_H
#define TG_ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* One half of the double buffer. A burst larger than this between two writes is dropped. */
#define TG_ACCESS_LOG_BUFFER (1024 * 1024)
/* A line never exceeds this: longer fields (paths) are cut to fit (tg_access_log_format). */
#define TG_ACCESS_LOG_LINE_MAX 8192

typedef struct tg_access_log tg_access_log_t;

/* What one line says about a call. Strings are NUL-terminated or NULL (written as JSON null);
 * they are escaped whatever they hold. Numbers below zero are written as null. */
typedef struct tg_access_record {
    int64_t time_ns; /* wall clock when the request arrived */
    const char *request_id;
    const char *client; /* address after server.trusted_proxies */
    const char *method;
    size_t method_len;
    const char *path; /* as the client sent it, without the query string */
    size_t path_len;
    const char *route; /* the matched route's pattern */
    const char *customer;
    const char *key_prefix; /* the key's display prefix, never the key */
    const char *plan;
    const char *decision; /* "allowed" or "refused" */
    const char *error;    /* the error type of a refusal or failure, else NULL */
    /* The decision API's lines only (NULL for a proxied call: both fields are left out): how the
     * call reached tollgate ("decide", "check", "envoy" for a decision; "settlement", "timeout"
     * for the end of an admitted call) and its reservation id, which joins the two lines. */
    const char *via;
    const char *reservation;
    int status;
    int upstream_status; /* -1: the upstream did not answer (or was not asked) */
    int64_t upstream_ns; /* -1: not forwarded */
    int64_t total_ns;
    uint64_t bytes_in;  /* request body bytes read */
    uint64_t bytes_out; /* response body bytes sent */
    size_t nunits;      /* metered units: {metric: units}; an empty object when nothing was billed */
    const char *const *unit_metrics;
    const uint64_t *unit_counts;
} tg_access_record_t;

/* Writes r as one JSON object and a newline into buf. Returns the length, always below cap
 * (cap must be at least 1024): the path is cut when the line would not fit otherwise. Every
 * string is escaped per RFC 8259 (quote, backslash, control characters; bytes that are not
 * UTF-8 are written as \u00XX of the byte, so the line stays valid JSON). */
size_t tg_access_log_format(const tg_access_record_t *r, char *buf, size_t cap);

/* Opens path for appending ("-": standard output, NULL: off until a configure turns it on) and
 * starts the writer thread. sample_ppm: successful calls logged per million
 * (access_log.sample_success). TG_EIO naming the path when it cannot be opened. */
int tg_access_log_open(const char *path, uint32_t sample_ppm, tg_access_log_t **out, tg_err_t *err);

/* Makes path (as in open) the destination and sample_ppm the sampling. A new path is opened
 * here, on the calling thread; TG_EIO (nothing changed) when it cannot be. Returns once the
 * writer has switched (after writing what was queued before the call to the old file, which it
 * then closes), so a line appended after the return is in the new file. The same path: only
 * the sampling changes. */
int tg_access_log_configure(tg_access_log_t *log, const char *path, uint32_t sample_ppm, tg_err_t *err);

/* 1 when lines are taken (a destination is set); NULL gives 0. Lock-free, any thread. */
int tg_access_log_enabled(const tg_access_log_t *log);

/* The sampling of successful calls, per million. Lock-free, any thread. */
uint32_t tg_access_log_sample_ppm(const tg_access_log_t *log);

/* Queues one line (copied). Returns 0 (also when the log is off: the line is not taken), or
 * TG_ELIMIT when the buffer is full and the line was dropped (counted). Never blocks on I/O. */
int tg_access_log_append(tg_access_log_t *log, const char *line, size_t len);

/* Asks the writer to reopen the file by its name after writing what it holds (no-op on
 * standard output). Safe from any thread; not async-signal-safe (main.c calls it after sigwait). */
void tg_access_log_reopen(tg_access_log_t *log);

/* Lines dropped because the buffer was full, and writes that failed, since open. */
uint64_t tg_access_log_dropped(const tg_access_log_t *log);

/* Writes what is queued, stops the writer and closes the file. NULL is ignored. */
void tg_access_log_close(tg_access_log_t *log);

#endif
