/* batch_prune.h - deleting the usage_batches rows a node's metering logs no longer need.
 *
 * The applier stores each logged record's batch id in usage_batches, in the transaction that
 * adds its usage to the totals, so that a replay of the record (the next start, or tollgate
 * metering recover on another machine) skips it. A replay can only come from a log that still
 * holds the record, and a log is reset only once every record in it is stored: a row whose
 * record no log of its node holds any more is never asked about again. Without pruning the
 * table keeps one row per record forever (about 8.6 million a day at 100 records a second).
 *
 * What goes: rows of this node (tg_meter_node: its cluster.node_id, "" on one SQLite node) whose
 * batch id is below tg_meter_oldest_replayable (the oldest id either of its logs still holds)
 * and whose batch is older than TG_USAGE_BATCHES_MARGIN_S, both by committed_at and by the time
 * in its id. Another node's rows are never deleted here: the logs of a node that died are
 * recovered with their rows still in place (tollgate metering recover); a node gone for good is
 * pruned once drained (tg_meter_prune_drained, below).
 *
 * The bound lags the logs: a prune uses tg_meter_oldest_replayable as it was observed at least
 * TG_USAGE_BATCHES_LAG_S earlier (tg_batch_prune_lag_t), never as it is now. A record that was
 * in a log at time T keeps its row until T + TG_USAGE_BATCHES_LAG_S at least, whenever its log
 * is reset: so a copy of the logs taken at T (tollgate backup copies the logs, then the
 * database) still finds the rows of its records in a database copied within that time, and
 * replays none of them twice. (Without the lag a log reset between the two copies, then a prune,
 * would leave the backup a record whose row is gone.) tollgate backup refuses a database copy
 * that ends later than that after its log copy began (ops/backup.c).
 *
 * What it relies on: that nothing replays an older copy of a node's logs (a copy taken before
 * a reset holds records whose rows may be gone: their usage would count twice), and that a node
 * id is not reused by a gateway with empty logs while a dead node's logs of that id still wait
 * for recover. The margin covers a clock stepped back a little; neither it nor the lag is a
 * licence to replay old copies. */
#ifndef TG_METERING_BATCH_PRUNE_H
#define TG_METERING_BATCH_PRUNE_H

#include <stddef.h>
#include <stdint.h>

#include "metering/meter.h"
#include "store/store.h"
#include "util/err.h"

#define TG_USAGE_BATCHES_MARGIN_S 3600      /* a batch stays at least this long after it was stored */
#define TG_USAGE_BATCHES_PRUNE_SLICE 10000 /* rows per statement: a short write lock each */
#define TG_USAGE_BATCHES_LAG_S 3600        /* the prune's bound is at least this old (above) */

/* The bound a prune may use: tg_meter_oldest_replayable observed at seen_at, and once that is
 * TG_USAGE_BATCHES_LAG_S old, promoted to usable (and a new observation taken). Zeroed to start;
 * the caller keeps it between prunes (one per meter). A restart starts it again: nothing is
 * pruned in a gateway's first hour. */
typedef struct tg_batch_prune_lag {
    uint64_t seen;   /* the oldest replayable id at seen_at */
    int64_t seen_at; /* real seconds; 0: nothing observed yet */
    uint64_t usable; /* an observation at least TG_USAGE_BATCHES_LAG_S old; 0: none yet */
} tg_batch_prune_lag_t;

typedef struct tg_batch_prune_run {
    size_t deleted; /* rows deleted by the slices that committed */
    size_t slices;
    uint64_t below; /* the batch id bound used */
    int more;       /* 1: the budget ran out with rows still due (the next call goes on) */
} tg_batch_prune_run_t;

/* Deletes this node's usage_batches rows that no replay needs (see above; the bound from *lag,
 * which this call updates: a first call observes and deletes nothing) from st, in
 * statements of up to slice rows (1 to 10000), until none is due or budget_ns of the monotonic
 * clock has passed (one slice at least). now_s: the real clock's seconds (time(NULL), the clock
 * of committed_at and of batch ids; not the test-shifted billing clock). Fills *run. Returns 0,
 * TG_EINVAL, or the store's error (the slices before it stay committed). Thread: the caller's,
 * with its own store connection (not the meter's); m is only read (thread-safe). */
int tg_meter_prune_batches(tg_meter_t *m, tg_store_t *st, tg_batch_prune_lag_t *lag, int64_t now_s, size_t slice,
                           int64_t budget_ns, tg_batch_prune_run_t *run, tg_err_t *err);

/* ---- drained nodes ----
 * The rule above prunes a node's rows on that node only, bounded by its own logs: a node that
 * stops for good (a gateway scaled down, a machine retired), or dies and has its logs recovered,
 * would keep its rows forever. Such a node is recorded as drained (store_retention.h) when its
 * logs are emptied with every record stored: at its clean stop (tg_meter_stop), or by
 * tollgate metering recover --retire. From then on no log of it holds a record stored at or
 * before drained_at, so its rows committed by then are needed by no replay; they go once
 * TG_USAGE_BATCHES_LAG_S has passed since the drain, for the same backups as above. A node that
 * starts again takes its drain back (tg_meter_start) and prunes its rows itself. Both bounds are
 * applied, as above: committed_at and the time in the batch id at or before drained_at. */

typedef struct tg_drained_prune_run {
    size_t deleted; /* rows deleted by the slices that committed */
    size_t slices;
    size_t nodes; /* drains whose rows are all gone now (and which were forgotten) */
    int more;     /* 1: the budget ran out with rows or drains still due */
} tg_drained_prune_run_t;

/* Deletes the usage_batches rows of the nodes drained at least TG_USAGE_BATCHES_LAG_S before
 * now_s (the real clock) that were stored by their drain, in statements of up to slice rows (1
 * to 10000), until none is due or budget_ns of the monotonic clock has passed (one slice at
 * least), and forgets each drain whose rows are gone. Meant for one node at a time (the
 * schedulers'); another running it too deletes nothing twice. Fills *run. Returns 0,
 * TG_EINVAL, or the store's error (the slices before it stay committed). */
int tg_meter_prune_drained(tg_store_t *st, int64_t now_s, size_t slice, int64_t budget_ns, tg_drained_prune_run_t *run,
                           tg_err_t *err);

#endif
