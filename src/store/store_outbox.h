/* store_outbox.h - the Stripe outbox's rows and the tollgate -> Stripe customer map (migration
 * 11), behind the store like everything durable. The outbox module (src/payments/outbox.h)
 * decides; these functions only read and write rows. Same threading rule as store.h: one
 * connection per thread. */
#ifndef TG_STORE_OUTBOX_H
#define TG_STORE_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define TG_OUTBOX_KIND_MAX 48
#define TG_OUTBOX_KEY_MAX 160 /* an idempotency key (Stripe allows 255) */
#define TG_OUTBOX_PATH_MAX 256
#define TG_OUTBOX_ERROR_MAX 512
#define TG_OUTBOX_RESPONSE_ID_MAX 128
#define TG_OUTBOX_PARAMS_MAX (64 * 1024)

typedef struct tg_outbox_row {
    int64_t id;
    char kind[TG_OUTBOX_KIND_MAX]; /* "customer.create", ... */
    char customer_id[TG_ID_MAX];   /* the tollgate customer it is for */
    char idempotency_key[TG_OUTBOX_KEY_MAX];
    char method[8];
    char path[TG_OUTBOX_PATH_MAX];
    char *params; /* malloc'd form body; tg_outbox_row_clear frees it. NULL in lists */
    size_t params_len;
    char state[16]; /* pending | done | failed */
    int64_t attempts;
    int64_t next_attempt_at_ms;
    char last_error[TG_OUTBOX_ERROR_MAX];
    char response_id[TG_OUTBOX_RESPONSE_ID_MAX]; /* the Stripe object's id, once done */
    int64_t created_at, updated_at;              /* seconds */
} tg_outbox_row_t;

void tg_outbox_row_clear(tg_outbox_row_t *r);

/* Inserts a pending row due at now_ms (inside the caller's transaction if one is open, so the
 * change that needs the call and the call commit together). TG_EEXIST if the idempotency key is
 * stored already (the operation was enqueued before); TG_EINVAL for a field past its cap.
 * *id (may be NULL) gets the row id. */
int tg_store_outbox_insert(tg_store_t *st, const tg_outbox_row_t *row, const char *params, size_t params_len,
                           int64_t now_ms, int64_t *id, tg_err_t *err);

/* Up to limit pending rows due at now_ms (next_attempt_at <= now_ms), earliest first, into out
 * (params included; clear each). *n gets how many.
 * Several gateways on one database (PostgreSQL): the rows returned are claimed by this
 * connection, and another connection's outbox_due skips them, until this connection calls
 * outbox_due again outside a transaction (by then it has recorded them) or closes (a node that
 * dies frees its rows at once). Its own claimed rows come back to it. SQLite: one node, no
 * claims. */
int tg_store_outbox_due(tg_store_t *st, int64_t now_ms, tg_outbox_row_t *out, size_t limit, size_t *n, tg_err_t *err);

/* The earliest next_attempt_at of a pending row into *at_ms and how many rows are pending into
 * *pending (may be NULL); TG_ENOTFOUND if none is pending. Rows another connection has claimed
 * (outbox_due) are that connection's to record: they count in *pending, not in *at_ms, and
 * TG_ENOTFOUND is returned when they are all the pending rows there are. */
int tg_store_outbox_next_due(tg_store_t *st, int64_t *at_ms, uint64_t *pending, tg_err_t *err);

/* Records an attempt's result on a pending row (attempts + 1, last_error, updated_at):
 *  - done: state done, response_id; when map_stripe_customer, the customer map gets
 *    (row's customer_id -> response_id) in the same transaction;
 *  - retry: stays pending until next_attempt_at_ms;
 *  - failed: state failed for good.
 * TG_ENOTFOUND if the row is not pending (nothing changed). */
int tg_store_outbox_done(tg_store_t *st, int64_t id, const char *response_id, int map_stripe_customer, int64_t now,
                         tg_err_t *err);
int tg_store_outbox_retry(tg_store_t *st, int64_t id, int64_t next_attempt_at_ms, const char *last_error, int64_t now,
                          tg_err_t *err);
int tg_store_outbox_fail(tg_store_t *st, int64_t id, const char *last_error, int64_t now, tg_err_t *err);
/* Puts a pending row off until next_attempt_at_ms without counting an attempt (it waits for
 * another row, nothing was sent). TG_ENOTFOUND if it is not pending. */
int tg_store_outbox_defer(tg_store_t *st, int64_t id, int64_t next_attempt_at_ms, const char *why, int64_t now,
                          tg_err_t *err);

/* A failed row back to pending, due at now_ms, its attempts from 0 again (the owner fixed the
 * cause: a key, a refused email). TG_ENOTFOUND if there is no such row, TG_ESTATE if it is not
 * failed. */
int tg_store_outbox_requeue(tg_store_t *st, int64_t id, int64_t now_ms, tg_err_t *err);
/* One row by id (without params); TG_ENOTFOUND. */
int tg_store_outbox_get(tg_store_t *st, int64_t id, tg_outbox_row_t *out, tg_err_t *err);

/* One row by idempotency key (without params); TG_ENOTFOUND. */
int tg_store_outbox_get_by_key(tg_store_t *st, const char *idempotency_key, tg_outbox_row_t *out, tg_err_t *err);

/* Up to limit customers (id, email and name filled) that have neither a Stripe customer nor an
 * outbox row of `kind` (customers from before the stripe section), oldest first. *n gets how
 * many. */
int tg_store_outbox_customers_missing(tg_store_t *st, const char *kind, tg_customer_t *out, size_t limit, size_t *n,
                                      tg_err_t *err);

/* Deletes up to limit done rows last changed before before_s (seconds); *deleted (may be NULL)
 * gets how many. Failed and pending rows are never deleted, nor the customer map. */
int tg_store_outbox_prune(tg_store_t *st, int64_t before_s, size_t limit, size_t *deleted, tg_err_t *err);

/* Pending rows due after latest_ms are made due at now_ms; *moved (may be NULL) gets how many.
 * No retry is ever scheduled further ahead than the backoff cap, so a row due later than
 * now + cap was scheduled by a clock that has since gone back (a wall-clock step, a restart
 * without the test clock's offset): without this it would wait out the difference. */
int tg_store_outbox_pull_in(tg_store_t *st, int64_t latest_ms, int64_t now_ms, uint64_t *moved, tg_err_t *err);

/* The Stripe customer of a tollgate customer into stripe_id (cap bytes); TG_ENOTFOUND if none. */
int tg_store_stripe_customer_get(tg_store_t *st, const char *customer_id, char *stripe_id, size_t cap, tg_err_t *err);

/* The reverse: the tollgate customer of a Stripe customer id (for events that name only the
 * Stripe customer) into customer_id; TG_ENOTFOUND if none. */
int tg_store_stripe_customer_owner(tg_store_t *st, const char *stripe_id, char customer_id[TG_ID_MAX], tg_err_t *err);

/* The customer's latest outbox row (the sync state shown to the owner), without params;
 * TG_ENOTFOUND if none. */
int tg_store_outbox_customer_latest(tg_store_t *st, const char *customer_id, tg_outbox_row_t *out, tg_err_t *err);

/* The oldest pending row of customer_id before row id (calls for one customer go in the order
 * they were queued): its id and next_attempt_at into *earlier_id and *next_ms; TG_ENOTFOUND if
 * there is none. */
int tg_store_outbox_earlier_pending(tg_store_t *st, const char *customer_id, int64_t id, int64_t *earlier_id,
                                    int64_t *next_ms, tg_err_t *err);

/* The customer's latest row of one kind (without params); TG_ENOTFOUND if none. */
int tg_store_outbox_customer_latest_of(tg_store_t *st, const char *customer_id, const char *kind, tg_outbox_row_t *out,
                                       tg_err_t *err);

/* Rows newest first (sort key: the row id), optionally only those in state (NULL: all), a page
 * at a time (see store.h); params are not read. */
typedef int (*tg_outbox_row_cb)(const tg_outbox_row_t *r, void *arg);
int tg_store_outbox_page(tg_store_t *st, const char *state, const tg_page_t *page, tg_outbox_row_cb cb, void *arg,
                         tg_page_end_t *end, tg_err_t *err);

/* Rows per state, for metrics and the dashboard. */
typedef struct tg_outbox_counts {
    uint64_t pending, done, failed;
} tg_outbox_counts_t;
int tg_store_outbox_counts(tg_store_t *st, tg_outbox_counts_t *out, tg_err_t *err);

#endif
