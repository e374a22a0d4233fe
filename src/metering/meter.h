/* meter.h - durable usage metering: a writer thread that group-commits usage records to the
 * metering log (usage_log.h) and an applier thread that stores them in the database in bulk.
 *
 * Gateway event loops hand records over with tg_meter_submit and never touch the disk. The writer
 * takes everything queued, appends it to the log as one record (one write, one fdatasync for the
 * whole group), then runs each submit's completion callback; the applier stores the logged
 * records in the database about every 200 ms, several per transaction.
 *   strict:  the writer logs as soon as anything is queued; work arriving meanwhile forms the
 *            next group. Callers release responses from the completion callback, so an answered
 *            call is on disk: neither kill -9 nor a power cut loses it.
 *   batched: the writer logs every flush_ms; callbacks still fire after the append, but callers
 *            do not wait for them. Loss window: at most flush_ms plus one append.
 *   process: each gateway event loop collects the usage of the calls it finished in one
 *            iteration in a tg_meter_batch_t and writes it to the log itself, one pwrite into the
 *            page cache, no fdatasync (tg_meter_batch_commit), before it releases their
 *            responses: kill -9 loses nothing answered. The writer thread fdatasyncs the log
 *            every sync_ms in the background (1 s by default, as Redis's appendfsync
 *            everysec), so a power cut loses at most what was written in the last sync_ms
 *            (plus one fdatasync), or less when the kernel's writeback got there first. A
 *            write that fails goes to the writer thread, which retries it like strict; those
 *            calls wait.
 * Records logged but not yet stored when the process dies are stored by the next tg_meter_start,
 * each batch once. While the database is down or behind, at most 65,536 logged rows stay in
 * memory; later records stay only in the log and are read back from it when the database takes
 * them, so an outage fills the disk, not the memory. A failed append is retried (with backoff) and never dropped. The
 * log lives next to the database: "sqlite:PATH" logs to PATH-usagelog.1 and PATH-usagelog.2, in turns. */
#ifndef TG_METER_H
#define TG_METER_H

#include <stddef.h>
#include <stdint.h>

#include "model/records.h"
#include "util/err.h"

typedef struct tg_meter tg_meter_t;

/* metering.durability; the values are the config's (config.h). */
typedef enum tg_meter_durability {
    TG_METER_BATCHED = 0,
    TG_METER_STRICT = 1,
    TG_METER_PROCESS = 2
} tg_meter_durability_t;

/* Called on the writer thread after the records of one submit are committed (status 0), or at
 * shutdown if they could not be (status < 0). Must not block; typically posts a message to the
 * submitting event loop. */
typedef void (*tg_meter_done_cb)(void *arg, int status);

typedef struct tg_meter_stats {
    uint64_t submitted;  /* records accepted by tg_meter_submit */
    uint64_t committed;  /* records in the metering log (durable, or written in process mode) */
    uint64_t applied;    /* records stored in the database */
    uint64_t commits;    /* transactions */
    uint64_t queued;     /* records waiting now */
    int64_t last_lag_ns; /* submit-to-commit time of the newest committed batch */
    uint64_t failures;   /* commit attempts that failed */
    uint64_t held;       /* rows logged, not yet stored, and kept in memory (at most 65,536) */
    uint64_t spilled;    /* rows logged but not kept in memory (the store was behind): read back */
    uint64_t rejected;   /* rows the store kept aside instead of adding them to the totals */
    uint64_t syncs;      /* process: background fdatasyncs of a log the loops wrote to */
    int log_failing;     /* the last append to the metering log failed (calls wait for it) */
    int store_failing;   /* the last attempt to store usage in the database failed (it is retried) */
} tg_meter_stats_t;

typedef struct tg_meter_opts {
    const char *store_url;
    const char *log_dir; /* the metering logs; NULL: beside the SQLite file (sqlite: only) */
    const char *node_id; /* this gateway among several (NULL or "": one node) */
    int durability;      /* a tg_meter_durability_t */
    int flush_ms;        /* batched: how often the writer logs; process: how often it switches the logs */
    int sync_ms;         /* process: how often the writer fdatasyncs the logs; 0: TG_METER_SYNC_MS_DEFAULT */
    /* Called (any meter thread, or tg_meter_start/stop's) before a log whose records are all
     * stored is reset, with before_log_reset_arg: what must be durable before those records
     * leave the log (the events' dedup index on PostgreSQL; on SQLite nothing, as the index is
     * checkpointed against the store's event id blocks instead: metering/events.h). Nonzero:
     * the log is kept (and its reset retried later). NULL: none. By then every callback of those records has
     * returned: a loop fires its commit's callbacks before it hands the record to the applier,
     * and the writer fires its group's before it goes on to switch or reset a log; only the
     * writer resets while the meter runs. So what a callback makes durable-to-be (a claim
     * committed in the index) is in place when the hook runs. */
    int (*before_log_reset)(void *arg, tg_err_t *err);
    void *before_log_reset_arg;
} tg_meter_opts_t;

/* process durability's fdatasync interval unless told (metering.sync_ms). Each fdatasync of a
 * log the loops wrote to is a writeback and a disk cache flush: every 5 ms (flush_ms, before
 * metering.sync_ms) they cost the gateway about 1 us of kernel time per call at 20,000 calls a
 * second (bench/gateway.sh on 2 loaded cores), and the flushes compete with the database's. */
#define TG_METER_SYNC_MS_DEFAULT 1000

/* Stores what the last run left in the metering log, then starts the threads on `store_url`
 * (the applier opens its own connection). TG_ESTATE if another process holds the log. */
int tg_meter_start_opts(const tg_meter_opts_t *o, tg_meter_t **out, tg_err_t *err);
/* One node on SQLite, its logs beside the database file. */
int tg_meter_start(const char *store_url, int durability, int flush_ms, tg_meter_t **out, tg_err_t *err);

/* Applies the metering logs a node left in log_dir (its files usage-<node>-N.log, usage-N.log,
 * or *-usagelog.N) to store_url, each record exactly once (the store skips batches it holds),
 * and empties them: for a node whose machine will not come back, run from another machine
 * with its disk. TG_ESTATE if a running gateway holds one of the logs; TG_EINVAL if log_dir
 * holds the logs of more than TG_METER_RECOVER_NODES_MAX nodes.
 * flags TG_METER_RECOVER_RETIRE: the nodes will never run with these logs again (the logs are
 * their only ones, not a copy): once every log is empty, each node is recorded as drained
 * (store_retention.h), so that its usage_batches rows are pruned an hour later
 * (metering/batch_prune.h). Not for a backup's copies (tollgate restore). */
#define TG_METER_RECOVER_RETIRE 1
#define TG_METER_RECOVER_NODES_MAX 16
typedef struct tg_meter_recovered {
    size_t logs;    /* log files found */
    size_t batches; /* batches stored now */
    size_t rows;    /* rows stored now */
    char nodes[TG_METER_RECOVER_NODES_MAX][TG_NODE_ID_MAX]; /* whose logs these were */
    size_t nnodes;
    size_t retired; /* nodes recorded as drained (TG_METER_RECOVER_RETIRE) */
} tg_meter_recovered_t;
int tg_meter_recover(const char *store_url, const char *log_dir, int flags, tg_meter_recovered_t *out, tg_err_t *err);

/* The path of a node's metering log i (0 or 1), as tg_meter_start_opts names it: in log_dir
 * "usage-<node>-N.log" ("usage-N.log" for node ""), else "<database>-usagelog.N" beside a SQLite
 * file. malloc'd; NULL with err set (no log_dir with PostgreSQL, ENOMEM). */
char *tg_meter_log_path(const char *store_url, const char *log_dir, const char *node, int i, tg_err_t *err);

/* For a backup (cli/cmd_backup.c): copies a running node's two metering logs into dest_dir as
 * usage-1.log and usage-2.log, which tg_meter_recover takes, while the gateway keeps appending.
 * Each copy is checked by reading its records back; one caught in the middle of a reset (its
 * header torn) is copied again. A record the copy lacks was appended after the copy or was in
 * the database before the copy began (a log is reset only once all its records are stored), so
 * these copies together with a database copy taken AFTER them hold every unit of usage
 * recorded before the copies. A log that does not exist (never started) is skipped. */
typedef struct tg_meter_copied {
    size_t logs, batches, rows;
} tg_meter_copied_t;
int tg_meter_copy_logs(const char *store_url, const char *log_dir, const char *node, const char *dest_dir,
                       tg_meter_copied_t *out, tg_err_t *err);

/* Queues copies of n records; cb (may be NULL) fires once after they are durable in the log.
 * Thread-safe; never blocks on I/O. TG_ESTATE after tg_meter_stop began; TG_ERANGE if a record's
 * units exceed INT64_MAX; TG_EINVAL if a string field is unterminated; TG_ENOMEM. When it
 * returns an error, cb never fires. */
int tg_meter_submit(tg_meter_t *m, const tg_usage_t *rows, size_t n, tg_meter_done_cb cb, void *arg);

/* Process durability: the usage of the calls one event loop finished in one iteration, written
 * to the log with one append by the loop itself. A batch belongs to one thread (no locking);
 * several batches, on several threads, share the meter. */
typedef struct tg_meter_batch tg_meter_batch_t;

/* A new, empty batch on m (a meter in any mode: the append is buffered only in process mode).
 * NULL when out of memory. */
tg_meter_batch_t *tg_meter_batch_new(tg_meter_t *m);

/* Adds copies of n records of one call to the batch; cb (may be NULL) fires once, after
 * tg_meter_batch_commit wrote them, as for tg_meter_submit. TG_ERANGE, TG_EINVAL, TG_ENOMEM as
 * tg_meter_submit; when it returns an error, cb never fires. */
int tg_meter_batch_add(tg_meter_batch_t *b, const tg_usage_t *rows, size_t n, tg_meter_done_cb cb, void *arg);

/* 1 if records were added since the last commit. */
int tg_meter_batch_pending(const tg_meter_batch_t *b);

/* Appends everything added as one record (one write), hands it to the applier and fires the
 * callbacks with status 0 on the calling thread, before returning. If the append fails, each
 * call's records go to the writer thread instead (tg_meter_submit), which retries until they
 * are logged and then fires their callbacks on its own thread; if even that is refused, the
 * callback fires here with the error. Calls a callback adds to the batch meanwhile stay in it,
 * for the next commit; the others are gone from it afterwards. */
void tg_meter_batch_commit(tg_meter_batch_t *b);

/* Commits what is pending, then frees b; before tg_meter_stop. NULL is ignored. */
void tg_meter_batch_free(tg_meter_batch_t *b);

/* Blocks until everything submitted before the call is stored in the database (readable). */
int tg_meter_flush(tg_meter_t *m);

void tg_meter_get_stats(tg_meter_t *m, tg_meter_stats_t *out);

/* 1 while 262,144 or more submitted rows are not yet durable in the log: the log cannot keep up
 * (a failing or full disk). The gateway refuses new calls meanwhile, so that nothing is served
 * that could not be recorded and the queue's memory stays bounded. Thread-safe, lock-free. */
int tg_meter_backlogged(tg_meter_t *m);

/* Logs and stores what is queued, stops the threads and frees m. A database that keeps failing
 * is given a few seconds; what it did not take stays in the log for the next start. */
void tg_meter_stop(tg_meter_t *m);

/* A process-unique, time-ordered event id (for tg_usage_t.event_id). Thread-safe. */
uint64_t tg_meter_next_event_id(void);

/* The smallest id tg_meter_next_event_id gives at unix_s (seconds, the real clock) or later,
 * clock steps aside: ids below it were taken before unix_s. */
uint64_t tg_meter_event_id_at(int64_t unix_s);

/* The oldest batch id this node may still replay: the smallest id in either of its metering
 * logs since their last reset (*in_log 1); with both empty (*in_log 0), an id above every batch
 * id m handed out so far and below every later one. A row of usage_batches of this node
 * (tg_meter_node) below it stands for a record no log of this node holds any more, so no replay
 * will ask for it (metering/batch_prune.h). Thread-safe: takes the append lock briefly. */
uint64_t tg_meter_oldest_replayable(tg_meter_t *m, int *in_log);

/* The node id m stores its batches under ("" for one node). Owned by m. */
const char *tg_meter_node(const tg_meter_t *m);

#endif
