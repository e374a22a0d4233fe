/* store_payments.h - the store's part for payments: Stripe webhook events, what they said about
 * each Stripe invoice, dunning state and the history of customer status changes (migration 12).
 *
 * Same contract as store.h: one tg_store_t per thread, every call blocks on I/O (never on a
 * gateway loop), 0 or a negative TG_E* with a sentence in err. Strings are copied into the
 * caller's fixed buffers, cut to fit. */
#ifndef TG_STORE_PAYMENTS_H
#define TG_STORE_PAYMENTS_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define TG_STRIPE_ID_MAX 256   /* evt_..., in_..., cus_... (Stripe ids are under 255) */
#define TG_STRIPE_TYPE_MAX 128 /* "customer.subscription.updated" */
#define TG_OUTCOME_MAX 256

/* ---- webhook events ---- */

typedef struct tg_stripe_event_row {
    char id[TG_STRIPE_ID_MAX];
    char type[TG_STRIPE_TYPE_MAX];
    int64_t created; /* Stripe's created (seconds) */
    char object_id[TG_STRIPE_ID_MAX];
    int64_t received_at;
    int64_t processed_at;         /* 0: not yet */
    char customer_id[TG_ID_MAX];  /* "" until resolved */
    char outcome[TG_OUTCOME_MAX]; /* what processing did */
    char error[TG_OUTCOME_MAX];   /* "" unless processing failed */
    char *payload;                /* tg_store_stripe_event_next: malloc'd, the caller frees */
    size_t payload_len;
} tg_stripe_event_row_t;

/* Records e (payload/payload_len: the body as received) once: *inserted = 1, or 0 when an event
 * with this id exists already (nothing is changed then). Durable when it returns 0. */
int tg_store_stripe_event_insert(tg_store_t *st, const tg_stripe_event_row_t *e, int *inserted, tg_err_t *err);
/* The oldest event not yet processed into *out (*found = 0 if none); out->payload is malloc'd.
 * To apply it, call it inside the transaction that marks it processed: on a database that
 * several gateways share (PostgreSQL), it then claims the right to apply events until that
 * transaction ends, and another node calling it meanwhile gets *found = 0. Outside a
 * transaction it only looks. */
int tg_store_stripe_event_next(tg_store_t *st, tg_stripe_event_row_t *out, int *found, tg_err_t *err);
/* Marks an event processed (outcome, customer_id may be "") or failed (error non-empty: it
 * stays pending, processed_at stays NULL; an event already processed is left as it is). */
int tg_store_stripe_event_mark(tg_store_t *st, const char *id, int64_t processed_at, const char *customer_id,
                               const char *outcome, const char *error, tg_err_t *err);
/* One event by id (payload not loaded). TG_ENOTFOUND if none. */
int tg_store_stripe_event_get(tg_store_t *st, const char *id, tg_stripe_event_row_t *out, tg_err_t *err);
int tg_store_stripe_event_count(tg_store_t *st, uint64_t *count, tg_err_t *err);

/* ---- Stripe invoice states, as the events told them ---- */

typedef struct tg_stripe_invoice_state {
    char invoice_id[TG_STRIPE_ID_MAX];
    char customer_id[TG_ID_MAX];
    char status[TG_STATUS_MAX]; /* draft | open | paid | void | uncollectible */
    int64_t failed_attempts;    /* attempt_count of the latest failed attempt seen */
    int action_required;        /* 1: the payment needs the customer (3-D Secure) */
    char event_id[TG_STRIPE_ID_MAX];
    int64_t updated_at;
} tg_stripe_invoice_state_t;

/* *found = 0 (out zeroed) if the invoice is not known yet. */
int tg_store_stripe_invoice_get(tg_store_t *st, const char *invoice_id, tg_stripe_invoice_state_t *out, int *found,
                                tg_err_t *err);
int tg_store_stripe_invoice_put(tg_store_t *st, const tg_stripe_invoice_state_t *s, tg_err_t *err);

/* What a customer owes, over its Stripe invoices: failed attempts on open and uncollectible
 * invoices, whether any is uncollectible, whether any open one needs the customer's action. */
typedef struct tg_stripe_debt {
    int64_t failed_attempts;
    int uncollectible;
    int action_required;
    int open_failed; /* open invoices with at least one failed attempt */
} tg_stripe_debt_t;
int tg_store_stripe_debt(tg_store_t *st, const char *customer_id, tg_stripe_debt_t *out, tg_err_t *err);

/* ---- dunning ---- */

typedef struct tg_dunning_row {
    char customer_id[TG_ID_MAX];
    int64_t past_due_since; /* when the customer first became past due in this episode */
    int held;               /* 1: suspended by dunning (not by the owner) */
} tg_dunning_row_t;

int tg_store_dunning_get(tg_store_t *st, const char *customer_id, tg_dunning_row_t *out, int *found, tg_err_t *err);
int tg_store_dunning_put(tg_store_t *st, const tg_dunning_row_t *d, tg_err_t *err);
int tg_store_dunning_clear(tg_store_t *st, const char *customer_id, tg_err_t *err);
/* Every row (for the gateway's holds at start-up, and the grace_days sweep). */
typedef int (*tg_dunning_cb)(const tg_dunning_row_t *d, void *arg);
int tg_store_dunning_list(tg_store_t *st, tg_dunning_cb cb, void *arg, tg_err_t *err);

/* ---- status history ---- */

int tg_store_status_history_add(tg_store_t *st, const char *customer_id, const char *from, const char *to,
                                const char *reason, const char *source, int64_t at, tg_err_t *err);
typedef struct tg_status_change {
    char from[TG_STATUS_MAX];
    char to[TG_STATUS_MAX];
    char reason[TG_OUTCOME_MAX];
    char source[TG_OUTCOME_MAX];
    int64_t at;
} tg_status_change_t;
typedef int (*tg_status_change_cb)(const tg_status_change_t *c, void *arg);
/* A customer's changes, oldest first. */
int tg_store_status_history_list(tg_store_t *st, const char *customer_id, tg_status_change_cb cb, void *arg,
                                 tg_err_t *err);

/* ---- payment methods on file (migration 15) ---- */

/* Records that customer_id has a payment method since on_file_at (a completed setup session);
 * *inserted = 0 when one was recorded before (the first stays). */
int tg_store_payment_method_put(tg_store_t *st, const char *customer_id, int64_t on_file_at, const char *session_id,
                                const char *event_id, int *inserted, tg_err_t *err);
/* *on_file_at = 0 when the customer has none on record. */
int tg_store_payment_method_get(tg_store_t *st, const char *customer_id, int64_t *on_file_at, tg_err_t *err);

/* ---- Stripe subscriptions (migration 18, billing: stripe) ---- */

#define TG_STRIPE_SUB_STATUS_MAX 32 /* incomplete_expired is the longest of Stripe's */

typedef struct tg_stripe_subscription {
    char subscription_id[TG_STRIPE_ID_MAX];
    char customer_id[TG_ID_MAX];
    char status[TG_STRIPE_SUB_STATUS_MAX]; /* Stripe's status; "" until an event told it */
    int64_t status_at;                     /* created time of that event (Stripe's clock); 0: none */
    char event_id[TG_STRIPE_ID_MAX];
    int64_t created_at, updated_at; /* seconds, tollgate's clock */
} tg_stripe_subscription_t;

/* Records that subscription_id is customer_id's (the outbox's create call was answered), its
 * status unknown; a row that exists already is left as it is. */
int tg_store_stripe_subscription_map(tg_store_t *st, const char *customer_id, const char *subscription_id,
                                     int64_t now_s, tg_err_t *err);
/* One subscription (*found = 0, out zeroed, if it is not recorded). */
int tg_store_stripe_subscription_get(tg_store_t *st, const char *subscription_id, tg_stripe_subscription_t *out,
                                     int *found, tg_err_t *err);
/* The customer's newest subscription (*found = 0 if none). */
int tg_store_stripe_subscription_latest(tg_store_t *st, const char *customer_id, tg_stripe_subscription_t *out,
                                        int *found, tg_err_t *err);
/* Up to limit ids of customers who have no Stripe subscription recorded and no outbox row of
 * `kind` (the subscription create call), are neither canceled nor incomplete, and come after
 * (after_created, after_id) in (created_at, id) order: the customers from before billing: stripe.
 * *n gets how many; the last one is the cursor of the next page. */
int tg_store_customers_without_subscription(tg_store_t *st, const char *kind, int64_t after_created,
                                            const char *after_id, char (*ids)[TG_ID_MAX], int64_t *created,
                                            size_t limit, size_t *n, tg_err_t *err);
/* Inserts or replaces s's status, status_at, event_id and updated_at (and its customer when the
 * row is new; created_at is kept). The caller decided that s is newer than what is stored. */
int tg_store_stripe_subscription_put(tg_store_t *st, const tg_stripe_subscription_t *s, tg_err_t *err);

#endif
