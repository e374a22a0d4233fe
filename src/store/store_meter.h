/* store_meter.h - hourly usage for Stripe meter events (billing: stripe; migration 17), behind
 * the store like everything durable. The fold of committed usage (store_sqlite.c) fills
 * usage_hourly in the transaction that adds the same usage to usage_period, while export is on;
 * the exporter (src/payments/meter_export.h) decides what to send and marks it here in the
 * transaction that queues the Stripe calls. Same threading rule as store.h: one connection per
 * thread. */
#ifndef TG_STORE_METER_H
#define TG_STORE_METER_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* One row of usage_hourly: the usage of one customer and metric in one UTC hour, under one
 * billing period and plan. */
typedef struct tg_meter_bucket {
    char customer_id[TG_ID_MAX];
    char metric[TG_METRIC_MAX];
    char plan_id[TG_PLAN_ID_MAX];
    int64_t hour_start;   /* seconds, a multiple of 3600 */
    int64_t period_start; /* the billing period the usage counts against */
    int64_t ts;           /* the bucket's start: hour_start, or period_start inside the hour */
    uint64_t units;       /* all usage folded so far */
    uint64_t exported;    /* of which already sent to Stripe */
    int64_t seq;          /* sends so far of (customer, metric, ts) */
} tg_meter_bucket_t;

/* Turns the filling of usage_hourly on (since `since`, seconds) or off. Usage folded while it is
 * off is never in usage_hourly, so never exported (billing: tollgate bills it). Idempotent;
 * turning it on again keeps the first `since`. */
int tg_store_meter_export_set(tg_store_t *st, int on, int64_t since, tg_err_t *err);

/* Where a page of tg_store_meter_due starts: after the row with this key (all zero: from the
 * first row). */
typedef struct tg_meter_cursor {
    char customer_id[TG_ID_MAX];
    char metric[TG_METRIC_MAX];
    int64_t ts, period_start;
    char plan_id[TG_PLAN_ID_MAX];
} tg_meter_cursor_t;

/* Up to limit rows after cursor with units not yet exported whose hour started before hour_before, ordered by
 * customer, metric, ts (the rows of one meter event are adjacent), into out; *n gets how many.
 * Read it inside the transaction that marks them (tg_store_tx_begin folds committed usage
 * first, so every committed batch is in the rows). */
int tg_store_meter_due(tg_store_t *st, int64_t hour_before, const tg_meter_cursor_t *cursor, tg_meter_bucket_t *out,
                       size_t limit, size_t *n, tg_err_t *err);

/* Marks row b exported up to `exported` units, if its exported count is still b->exported
 * (TG_ESTATE otherwise: someone else sent it; nothing changes). Call it in the transaction that
 * queues the calls. */
int tg_store_meter_mark(tg_store_t *st, const tg_meter_bucket_t *b, uint64_t exported, tg_err_t *err);

/* Raises the seq of every row of (customer_id, metric, ts) to at least seq: the identifiers
 * below it are used. */
int tg_store_meter_set_seq(tg_store_t *st, const char *customer_id, const char *metric, int64_t ts, int64_t seq,
                           tg_err_t *err);

/* The units of customer_id in the period starting period_start under plan_id, metric, already
 * sent to Stripe (as meter events or invoice items) into *units; 0 when there are none. */
int tg_store_meter_period_exported(tg_store_t *st, const char *customer_id, int64_t period_start, const char *plan_id,
                                   const char *metric, uint64_t *units, tg_err_t *err);

/* Deletes up to limit rows fully exported whose hour started before before_s; *deleted (may be
 * NULL) gets how many. */
int tg_store_meter_prune(tg_store_t *st, int64_t before_s, size_t limit, size_t *deleted, tg_err_t *err);

/* The customer's hours with usage not yet sent (*hours) and those units (*units, saturating). */
int tg_store_meter_customer_backlog(tg_store_t *st, const char *customer_id, uint64_t *hours, uint64_t *units,
                                    tg_err_t *err);

/* A meter event Stripe refused for its timestamp (a row of the outbox, failed): nothing was
 * counted, so its units can go again as late usage. */
typedef struct tg_meter_refused {
    int64_t outbox_id;
    char customer_id[TG_ID_MAX];
    char params[512]; /* the form sent; a meter event's is short */
} tg_meter_refused_t;

/* Up to limit failed meter event rows whose error names the timestamp, into out; *n gets how
 * many. */
int tg_store_meter_refused(tg_store_t *st, tg_meter_refused_t *out, size_t limit, size_t *n, tg_err_t *err);

/* Takes back `units` sent by the refused event outbox_id of (customer_id, metric, ts): lowers
 * the exported counts of that bucket's rows by them, and closes the outbox row (done, "sent
 * again as late usage", so that a requeue cannot send it a second time). In the caller's
 * transaction; TG_ESTATE if the row is no longer failed (nothing changes). */
int tg_store_meter_take_back(tg_store_t *st, int64_t outbox_id, const char *customer_id, const char *metric, int64_t ts,
                             uint64_t units, int64_t now, tg_err_t *err);

/* The customer's outbox rows of usage (kinds meter_event.create and late_usage.item) waiting to
 * be sent (*pending) and given up (*failed), for the owner's view of the Stripe sync. */
int tg_store_meter_outbox_counts(tg_store_t *st, const char *customer_id, uint64_t *pending, uint64_t *failed,
                                 tg_err_t *err);

#endif
