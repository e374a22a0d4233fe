/* periods.h - the invoice run: closes every ended billing period into a draft invoice, then
 * applies the changes that waited for it (downgrades, cancellations at period end).
 *
 * Called by the admin thread's tick (every ~10 s, tg_admin_tick) and by the admin API's
 * POST /v1/admin/invoices/run (through its adapter in src/admin/admin_billing.c); a scheduler
 * or the Stripe side calls the same. Errors are values (subscriptions.h); same thread rules. */
#ifndef TG_PERIODS_H
#define TG_PERIODS_H

#include <stddef.h>
#include <stdint.h>

#include "billing/subscriptions.h"
#include "store/store.h"

#define TG_PERIODS_FAILURES_LISTED 100

typedef struct tg_period_failure {
    char customer_id[TG_ID_MAX];
    char type[TG_FAILURE_TYPE_MAX]; /* tg_periods_failure_type */
    char message[TG_ERR_MAX];
} tg_period_failure_t;

/* What a run did. failed (malloc'd, freed by tg_periods_run_free) holds the first
 * TG_PERIODS_FAILURES_LISTED failures; every failure is also kept in the store
 * (billing_failures) until a later run invoices the customer. */
typedef struct tg_periods_run {
    int created;
    int failures;
    char first_error[TG_ERR_MAX];
    tg_period_failure_t *failed;
    size_t nfailed;
} tg_periods_run_t;

/* The type a failed invoice is listed under: "money_out_of_range", "configuration" or
 * "invoice_failed". */
const char *tg_periods_failure_type(int rc);

/* Closes the periods of one customer (customer_id) or of every customer (NULL) that ended by
 * `until` (seconds; at most now). A customer whose invoice fails rolls back alone and the run
 * goes on; the run can simply be repeated. TG_ENOTFOUND for an unknown customer_id. *run is
 * filled on every return; free it with tg_periods_run_free. */
int tg_periods_close(const tg_sub_ctx_t *x, const char *customer_id, int64_t until, tg_periods_run_t *run,
                     tg_err_t *err);

void tg_periods_run_free(tg_periods_run_t *run);

/* Moves invoice id to `to` (tg_store_invoice_transition: "open" finalizes it, "void", "paid",
 * "uncollectible") at the service's clock. When it finalizes and a stripe section with
 * billing: tollgate is configured, the Stripe invoice, its items and its finalization are queued
 * in the outbox in the same transaction (tg_outbox_enqueue_invoice): the number and the promise
 * to bill in Stripe commit together or not at all. TG_ENOTFOUND, TG_ESTATE, TG_EINVAL (a line
 * Stripe cannot take exactly: nothing changes), TG_ESTORE. *queued (may be NULL) is 1 when
 * calls were queued (the caller wakes the outbox). */
int tg_periods_invoice_transition(const tg_sub_ctx_t *x, const char *id, const char *to, int *queued, tg_err_t *err);

/* billing.finalize_after: finalizes (tg_periods_invoice_transition to "open", so with Stripe
 * they are queued too) the drafts not held that were created finalize_after_s or more before
 * the service's clock, a batch at a time. Does nothing when finalize_after_s is 0. A draft that
 * fails (a line Stripe cannot take) is skipped and stays a draft; *finalized counts the others,
 * *queued (may be NULL) is 1 when Stripe calls were queued. Returns the first error. */
int tg_periods_finalize_due(const tg_sub_ctx_t *x, int *finalized, int *queued, tg_err_t *err);

#endif
