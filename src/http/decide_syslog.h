/* decide_syslog.h - settlements from nginx's access log, over syslog (UDP), for the decision API.
 *
 * nginx logs each call it forwarded after GET /v1/decide admitted it, with the reservation id it
 * carried from the decision (auth_request_set), the status it answered and the upstream's
 * Tollgate-Units; examples/nginx/tollgate.conf has the log_format:
 *     log_format tollgate 'tollgate1 SECRET $tollgate_reservation $status $upstream_http_tollgate_units';
 *     access_log syslog:server=127.0.0.1:5514,tag=tollgate,nohostname tollgate if=$tollgate_reservation;
 * Logging costs nginx a non-blocking sendto; nothing waits for tollgate. The receiver thread
 * settles each line's reservation (gateway/reservations.h: once; a repeated line finds nothing),
 * and every 100 ms settles those whose settlement did not arrive in time by decide.on_timeout.
 * Lines that are not tollgate's format are ignored and counted (metrics.h,
 * tollgate_decide_settlement_lines_total{result="malformed"}).
 *
 * SECRET is decide.syslog_secret, literal text in the log_format. Without it the reservation id is
 * the only capability in a line: anything that can send the socket a datagram and learns an open
 * id (from a log, say) could settle it as failed (unbilled) or with more units. With it set, a
 * line whose first field is not the secret (compared in constant time, as digests) settles
 * nothing and is counted as result="bad_secret"; the secret itself is never logged. */
#ifndef TG_DECIDE_SYSLOG_H
#define TG_DECIDE_SYSLOG_H

#include <stddef.h>

#include "gateway/reservations.h"
#include "util/err.h"

#define TG_DECIDE_LINE_MAX 2048 /* a datagram longer than this is not ours */

typedef struct tg_decide_settlement {
    const char *secret; /* into the line (with_secret only): the first field, 1-256 bytes */
    size_t secret_len;
    const char *reservation; /* into the line, TG_RESERVATION_ID_LEN bytes (the format checked by
                              * tg_reservations_settle) */
    size_t reservation_len;
    int status;        /* 100-599 */
    const char *units; /* into the line: the Tollgate-Units text, or NULL ("-": none) */
    size_t units_len;
} tg_decide_settlement_t;

/* Parses one syslog datagram (RFC 3164 as nginx sends it: "<PRI>TIMESTAMP [HOST ]TAG: MSG") whose
 * MSG is "tollgate1 RESERVATION STATUS UNITS", or with with_secret "tollgate1 SECRET RESERVATION
 * STATUS UNITS": SECRET 1 to 256 bytes other than space and control bytes (not compared here),
 * RESERVATION "rsv_" and 32 lowercase hex digits, STATUS three digits from 100 to 599, UNITS "-"
 * or printable text (no control bytes) of at most 1024 bytes. A trailing newline is allowed. 0
 * and out filled (pointing into line; secret NULL without with_secret), or TG_EINVAL.
 * Pure: no allocation, no globals. */
int tg_decide_syslog_parse(const char *line, size_t len, int with_secret, tg_decide_settlement_t *out);

typedef struct tg_decide_receiver tg_decide_receiver_t;

/* Binds the UDP receiver on address ("host:port"; NULL: no receiver, the thread only expires)
 * and starts the thread that settles into r. secret (decide.syslog_secret; NULL: none) is kept
 * only as its digest; with it, only lines carrying it settle. TG_EIO naming the address when it
 * cannot bind. */
int tg_decide_receiver_start(const char *address, const char *secret, tg_reservations_t *r, tg_decide_receiver_t **out,
                             tg_err_t *err);

/* Stops the thread (settling what already arrived) and frees; NULL is ignored. */
void tg_decide_receiver_stop(tg_decide_receiver_t *rc);

#endif
