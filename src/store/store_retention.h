/* store_retention.h - housekeeping of the notification tables (migrations 24 and 25): deleting
 * finished rows past their retention, and counting the work still queued; and deleting the
 * usage_batches rows a node's metering logs no longer need (tg_store_usage_batches_prune). The retention policy
 * (how old, how often, which node) is notify/retention.h's; these functions only delete and
 * count rows. Same threading rule as store.h: one connection per thread.
 *
 * What "finished" means, per table; work still to do is never deleted:
 *  - deliveries: state delivered or failed (never pending: queued or retrying), both created and
 *    last updated before the cut-off; deleted with their attempts (webhook_attempts);
 *  - mails: state sent or failed (never pending), created and updated before the cut-off;
 *    deleted with their attempts (mail_attempts);
 *  - events: created before the cut-off and referred to by no delivery at all (a pending one
 *    needs the event's payload to send it, a failed one to be resent): prune the deliveries
 *    first.
 *
 * Cost: no index covers (state, updated_at) on these tables. A batch walks the table in its
 * insertion order (the primary key) and stops at the first row created after the cut-off, so
 * it reads the old rows only, not the whole table: rows past the retention that must stay
 * (pending work) are read again by every batch, and there are few of them. */
#ifndef TG_STORE_RETENTION_H
#define TG_STORE_RETENTION_H

#include <stddef.h>
#include <stdint.h>

#include "model/records.h"
#include "store/store.h"

typedef enum tg_notify_table {
    TG_NOTIFY_EVENTS = 0,
    TG_NOTIFY_DELIVERIES, /* webhook_deliveries (+ webhook_attempts) */
    TG_NOTIFY_MAILS,      /* mail_outbox (+ mail_attempts) */
} tg_notify_table_t;

/* Deletes up to limit (1 to 10000) of the oldest finished rows of `what` older than cutoff_s
 * (seconds; see above for "finished"), with their attempts, in one transaction (a savepoint of
 * the caller's, if one is open). *deleted gets the rows deleted from the table itself, *attempts
 * (may be NULL) the attempt rows deleted with them (0 for events). *deleted < limit means
 * nothing more is due now. TG_EINVAL for a limit out of bounds; the store's errors (nothing
 * deleted then). */
int tg_store_notify_prune(tg_store_t *st, tg_notify_table_t what, int64_t cutoff_s, size_t limit, size_t *deleted,
                          size_t *attempts, tg_err_t *err);

/* Deletes up to limit (1 to 10000) rows of usage_batches of `node` whose batch id is below
 * below_id and that were committed before committed_before_s (seconds since the epoch, the real
 * clock, as committed_at), the lowest ids first, in one statement (its own transaction, or part
 * of the caller's). *deleted < limit means nothing more is due now. The policy (which ids no
 * replay needs, the margin) is metering/batch_prune.h's. The primary key (node, batch_id) leads
 * the delete to the old rows of one node: it reads those, not the table (EXPLAIN in
 * test_store_retention). TG_EINVAL for a limit out of bounds; the store's errors (nothing
 * deleted then). */
int tg_store_usage_batches_prune(tg_store_t *st, const char *node, uint64_t below_id, int64_t committed_before_s,
                                 size_t limit, size_t *deleted, tg_err_t *err);

/* Drained metering nodes (migration 38): at drained_at the node's metering logs were emptied
 * with every record in them stored (its clean stop, or tollgate metering recover --retire), so
 * no log of that node holds a record stored before then. metering/batch_prune.h says when its
 * older usage_batches rows may go. */
typedef struct tg_drained_node {
    char node[TG_NODE_ID_MAX];
    int64_t drained_at; /* seconds since the epoch, the real clock (as committed_at) */
} tg_drained_node_t;

/* Records that node was drained at drained_at. A node drained again keeps the later time: a
 * drain's time never moves back. */
int tg_store_node_drained(tg_store_t *st, const char *node, int64_t drained_at, tg_err_t *err);

/* Up to max (1 to 1000) drained nodes whose drained_at is at or before before_s, the longest
 * drained first, into out; *n gets how many. */
int tg_store_drained_nodes(tg_store_t *st, int64_t before_s, tg_drained_node_t *out, size_t max, size_t *n,
                           tg_err_t *err);

/* Forgets node's drain of drained_at (its rows are pruned), or with TG_DRAINED_ANY whichever it
 * has (the node runs again); a later drain of it stays. */
#define TG_DRAINED_ANY INT64_C(-1)
int tg_store_drained_node_forget(tg_store_t *st, const char *node, int64_t drained_at, tg_err_t *err);

/* How many deliveries (TG_NOTIFY_DELIVERIES) or mails (TG_NOTIFY_MAILS) are pending (queued or
 * waiting for a retry; in the database, whichever node queued them) into *n. TG_EINVAL for
 * TG_NOTIFY_EVENTS. Reads the partial index of pending rows: cheap while the queue is short. */
int tg_store_notify_pending(tg_store_t *st, tg_notify_table_t what, int64_t *n, tg_err_t *err);

#endif
