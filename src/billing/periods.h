/* periods.h - the invoice run: closes every ended billing period into a draft invoice, then
 * applies the changes that waited for it (downgrades, cancellations at period end).
 *
 * Called by the period closer's thread (every ~10 s, billing/closer.h; or the admin thread's
 * tick, tg_admin_tick, where there is no such thread) and by the admin API's
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
 * filled on every return; free it with tg_periods_run_free.
 *
 * For every customer it reads only the customers due (store.h, tg_store_customers_due: their
 * next period end has come), TG_PERIODS_BATCH at a time, each batch one transaction (one
 * fsync), and moves each invoiced customer's next period end forward; memory does not grow
 * with the number of customers. It runs to the end: see tg_periods_close_some for a run in
 * slices. */
int tg_periods_close(const tg_sub_ctx_t *x, const char *customer_id, int64_t until, tg_periods_run_t *run,
                     tg_err_t *err);

/* Customers per batch (per transaction) of a run over the customers due. A batch holds the
 * store's write lock: 500 is about 25 ms of work, so the metering writer waits at most that. */
#define TG_PERIODS_BATCH 500
/* Customers per store call inside a batch (tg_store_invoice_close_batch): the wall time is
 * looked at between two calls. */
#define TG_PERIODS_CHUNK 500
/* ... and at most this much wall time (ns) per batch transaction, whichever comes first. */
#define TG_PERIODS_BATCH_NS (50 * 1000000LL)

/* Where a run over every customer due stands between two slices (tg_periods_close_some). Zero
 * it (or TG_PERIODS_CURSOR_INIT) before the first slice; the run's clock is fixed at its first
 * slice. Owned by the caller; one per thread running slices. */
typedef struct tg_periods_cursor {
    int active;        /* a run is under way */
    int64_t now;       /* the run's clock, seconds */
    int64_t after_end; /* the last customer handed over: (next_period_end, id) */
    char after_id[TG_ID_MAX];
} tg_periods_cursor_t;

/* A slice of the run over every customer due at the run's start: batches until budget_ns has
 * passed (at least one batch; 0 = no limit), so that the thread that runs it (the admin
 * thread's tick) answers its other work between slices instead of waiting for a million
 * customers. *more is 1 while customers remain (call again soon), 0 when the run is complete
 * (cur is then ready for the next run). A customer that fails stays due and is retried by the
 * next run. Same errors and *run as tg_periods_close; on an error the run restarts next time. */
int tg_periods_close_some(const tg_sub_ctx_t *x, tg_periods_cursor_t *cur, int64_t budget_ns, tg_periods_run_t *run,
                          int *more, tg_err_t *err);

/* The run over every customer due at `now` (seconds), shared by 1 + nmore store connections
 * (billing.close_connections): the calling thread closes on x->store and one thread per store of
 * `more` (each used by that thread alone until the call returns) on its own. They take the
 * customers due a page (TG_PERIODS_BATCH) at a time from one cursor under a mutex, so no customer
 * is handed to two of them and none is skipped; each closes its pages as tg_periods_close_some
 * closes a batch (one transaction per page, a new one after TG_PERIODS_BATCH_NS). Why: on
 * PostgreSQL one connection keeps at most one core busy, the closer pricing while the server
 * waits and the other way round; two keep both busy (bench/invoices.sh, README). SQLite gains
 * nothing (one writer) but is correct too.
 *
 * keep_going (may be NULL) is asked before every page, from any of the threads (it must be
 * thread-safe); once it says no, the workers stop after their current page and the customers
 * left stay due for the next run. The first error stops every worker after its page and is
 * returned; *run (free with tg_periods_run_free) adds up every worker's. Runs on the calling
 * thread, which it blocks until the run ends. */
int tg_periods_close_pool(const tg_sub_ctx_t *x, tg_store_t *const *more, size_t nmore, int64_t now,
                          int (*keep_going)(void *arg), void *arg, tg_periods_run_t *run, tg_err_t *err);

void tg_periods_run_free(tg_periods_run_t *run);

/* Moves invoice id to `to` (tg_store_invoice_transition: "open" finalizes it, "void", "paid",
 * "uncollectible") at the service's clock. Finalizing first brings the draft up to date, in the
 * same transaction: usage of its period that arrived while it was a draft goes on its own usage
 * lines, at its own tiers (tg_store_invoice_draft_refresh, tg_invoice_refresh_usage); usage that
 * arrives after that goes onto the next invoice as a dated line. When it finalizes and a stripe section with
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
