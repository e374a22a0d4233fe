/* batch_prune.c - see batch_prune.h. */
#include "metering/batch_prune.h"

#include <string.h>

#include "store/store_retention.h"
#include "util/clock.h"

/* Deletes node's rows below both bounds in statements of slice rows until one deletes fewer
 * (none left: *more stays 0) or the monotonic deadline has passed (*more = 1); at least one
 * statement. Adds to *deleted and *slices. 0 or the store's error. */
static int prune_slices(tg_store_t *st, const char *node, uint64_t below_id, int64_t committed_before_s, size_t slice,
                        int64_t deadline_ns, size_t *deleted, size_t *slices, int *more, tg_err_t *err)
{
    for (;;) {
        size_t rows = 0;
        int rc = tg_store_usage_batches_prune(st, node, below_id, committed_before_s, slice, &rows, err);
        if (rc != 0)
            return rc;
        (*slices)++;
        *deleted += rows;
        if (rows < slice)
            return 0;
        if (tg_clock_mono_ns() >= deadline_ns) {
            *more = 1;
            return 0;
        }
    }
}

int tg_meter_prune_batches(tg_meter_t *m, tg_store_t *st, tg_batch_prune_lag_t *lag, int64_t now_s, size_t slice,
                           int64_t budget_ns, tg_batch_prune_run_t *run, tg_err_t *err)
{
    memset(run, 0, sizeof(*run));
    if (slice == 0 || slice > TG_USAGE_BATCHES_PRUNE_SLICE)
        return tg_errf(err, TG_EINVAL, "pruning usage batches in slices of %zu rows (1 to %d)", slice,
                       TG_USAGE_BATCHES_PRUNE_SLICE);
    int in_log = 0;
    uint64_t oldest = tg_meter_oldest_replayable(m, &in_log);
    if (lag->seen_at == 0 || now_s < lag->seen_at) { /* the first call, or a clock stepped back */
        lag->seen = oldest;
        lag->seen_at = now_s;
    } else if (now_s - lag->seen_at >= TG_USAGE_BATCHES_LAG_S) {
        lag->usable = lag->seen;
        lag->seen = oldest;
        lag->seen_at = now_s;
    }
    uint64_t below = lag->usable; /* 0 until an observation is old enough: nothing goes */
    int64_t committed_before = now_s - TG_USAGE_BATCHES_MARGIN_S;
    /* Ids carry the time they were taken, which is before their batch was stored: bounding the
     * ids by the margin too keeps the scan out of the last hour's rows, which committed_at alone
     * would read (no index) at every call only to keep them. */
    uint64_t margin_id = tg_meter_event_id_at(committed_before);
    if (margin_id < below)
        below = margin_id;
    run->below = below;
    if (below == 0)
        return 0;
    return prune_slices(st, tg_meter_node(m), below, committed_before, slice, tg_clock_mono_ns() + budget_ns,
                        &run->deleted, &run->slices, &run->more, err);
}

/* Drains looked at per call: more wait for the next one (run->more). */
#define DRAINED_PER_CALL 16

int tg_meter_prune_drained(tg_store_t *st, int64_t now_s, size_t slice, int64_t budget_ns, tg_drained_prune_run_t *run,
                           tg_err_t *err)
{
    memset(run, 0, sizeof(*run));
    if (slice == 0 || slice > TG_USAGE_BATCHES_PRUNE_SLICE)
        return tg_errf(err, TG_EINVAL, "pruning usage batches in slices of %zu rows (1 to %d)", slice,
                       TG_USAGE_BATCHES_PRUNE_SLICE);
    tg_drained_node_t due[DRAINED_PER_CALL];
    size_t n = 0;
    int rc = tg_store_drained_nodes(st, now_s - TG_USAGE_BATCHES_LAG_S, due, DRAINED_PER_CALL, &n, err);
    if (rc != 0)
        return rc;
    int64_t deadline = tg_clock_mono_ns() + budget_ns;
    for (size_t i = 0; i < n; i++) {
        /* stored at or before the drain: committed_at <= drained_at, and the id taken by then */
        int64_t before_s = due[i].drained_at + 1;
        rc = prune_slices(st, due[i].node, tg_meter_event_id_at(before_s), before_s, slice, deadline, &run->deleted,
                          &run->slices, &run->more, err);
        if (rc != 0 || run->more)
            return rc;
        if ((rc = tg_store_drained_node_forget(st, due[i].node, due[i].drained_at, err)) != 0)
            return rc;
        run->nodes++;
        if (tg_clock_mono_ns() >= deadline) {
            run->more = i + 1 < n || n == DRAINED_PER_CALL;
            return 0;
        }
    }
    run->more = n == DRAINED_PER_CALL;
    return 0;
}
