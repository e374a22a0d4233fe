/* retention.h - how long finished notifications are kept: events, webhook deliveries (with
 * their attempts) and mails (with theirs) are deleted notifications.retention_days after they
 * finished; work still to do (a pending or retrying delivery or mail, and the event it sends) is
 * never deleted (store/store_retention.h says exactly what goes).
 *
 * Who and when: the node that runs the schedulers (store_cluster.h's lease) calls
 * tg_notify_prune from its periodic tick on the admin back thread (never an event loop), so one
 * node prunes at a time. Each call deletes in batches of at most TG_NOTIFY_PRUNE_BATCH rows, one
 * short transaction each (SQLite's write lock is never held for long: the gateway's metering
 * writer and the senders go between two batches), and stops after its time budget; a backlog
 * (the first run on a large database) is worked off over the following ticks. */
#ifndef TG_NOTIFY_RETENTION_H
#define TG_NOTIFY_RETENTION_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

typedef struct tg_store tg_store_t;

#define TG_NOTIFY_RETENTION_MIN_DAYS 7 /* an event's dedupe key must outlive every resend of its cause */
#define TG_NOTIFY_PRUNE_BATCH 1000

typedef struct tg_notify_prune_run {
    size_t events, deliveries, delivery_attempts, mails, mail_attempts; /* rows deleted */
    size_t batches;
    int more; /* 1: the budget ran out with rows still due (the next call goes on) */
} tg_notify_prune_run_t;

/* Deletes what is due: rows finished before now_s - retention_days days (deliveries and mails
 * first, then the events no delivery refers to any more), in batches of up to batch rows (1 to
 * 10000), until nothing is due or budget_ns of the monotonic clock has passed (at least one
 * batch per table runs). retention_days 0: nothing is deleted. Fills *run (the rows of the
 * batches that committed). Returns 0, TG_EINVAL, or the store's error (the batches before it
 * stay committed; the next call goes on). Thread: the caller's, with its store connection. */
int tg_notify_prune(tg_store_t *st, int retention_days, int64_t now_s, size_t batch, int64_t budget_ns,
                    tg_notify_prune_run_t *run, tg_err_t *err);

/* The applied usage event ids (store.h, tg_store_usage_record_many) are kept for
 * events.dedup_window (window_s) and a margin of TG_EVENT_IDS_MARGIN_S past it, then deleted by
 * event time: an event older than the window is refused at ingest on every node, so its id can
 * no longer match. The margin covers the nodes' clock skew and the time an accepted event may
 * wait in a metering log before it is applied (a database outage shorter than a day). Same
 * batches, budget and thread as tg_notify_prune, called by the same scheduler tick; *deleted
 * gets the ids deleted, *more 1 when the budget ran out with ids still due. */
#define TG_EVENT_IDS_MARGIN_S 86400
int tg_event_ids_prune(tg_store_t *st, int64_t window_s, int64_t now_s, size_t batch, int64_t budget_ns,
                       size_t *deleted, int *more, tg_err_t *err);

#endif
