/* outbox.h - the durable outbox through which every call to Stripe goes.
 *
 * A change that needs Stripe (a new customer, ...) writes an outbox row in its own
 * transaction (tg_outbox_enqueue*): the change and the promise to tell Stripe commit together
 * or not at all, and nothing on the request path waits for Stripe. A processor thread
 * (tg_outbox_start) takes due rows, makes the call with the row's idempotency key, and records
 * the result: done (with the Stripe object's id), retried later with exponential backoff and
 * full jitter (429, 5xx, timeouts, connection errors, Stripe-Should-Retry: true), or failed
 * with Stripe's error kept (other 4xx, Stripe-Should-Retry: false, or max_attempts reached).
 * A 429 (the account's rate limit) pauses every call, not only its row's, for the row's backoff
 * (at least backoff_base_ms).
 *
 * Exactly once: the idempotency key is derived from the operation, not from the attempt
 * ("tg_<kind>_<operation key>", e.g. tg_customer.create_cus_Ab3...), stored in the row and sent
 * on every attempt, so a call Stripe processed whose answer was lost (timeout, kill -9 before
 * the row was marked done) is sent again with the same key and Stripe answers with the
 * response it saved instead of creating a second object. The key uses tollgate's random ids,
 * not the row id: row ids restart with a new database, and a reused key with other parameters
 * is an idempotency_error at Stripe. Stripe keeps keys for at least 24 hours: the retry
 * schedule (max_attempts with the 1 h cap) ends well inside that while tollgate runs; a
 * "create customer" row older than 23 h (tollgate was down, or the row was requeued) first
 * searches Stripe for the customer by metadata[tollgate_customer] and adopts the one it finds.
 *
 * Threads: the processor owns its own store connection (SQLite in WAL mode lets it write
 * between the admin thread's transactions; busy_timeout covers the short waits) and calls
 * Stripe synchronously on its own thread, so a slow Stripe delays only other Stripe calls.
 * tg_outbox_enqueue* run on the caller's thread with the caller's connection (the admin back
 * thread's). tg_outbox_wake may be called from any thread. */
#ifndef TG_OUTBOX_H
#define TG_OUTBOX_H

#include <stdint.h>

#include "config/config.h"
#include "payments/stripe_client.h"
#include "payments/stripe_form.h"
#include "store/store.h"
#include "store/store_outbox.h"
#include "util/money.h"

#define TG_OUTBOX_KIND_CUSTOMER_CREATE "customer.create"
#define TG_OUTBOX_KIND_CUSTOMER_UPDATE "customer.update"
#define TG_OUTBOX_KIND_INVOICE_CREATE "invoice.create"
#define TG_OUTBOX_KIND_INVOICE_ITEM "invoice.item"
#define TG_OUTBOX_KIND_INVOICE_FINALIZE "invoice.finalize"
/* billing: stripe (payments/meter_export.h): a Billing meter event (its identifier is the
 * operation key; a 400 "duplicate identifier" means it was counted before: done), and the
 * invoice item of usage too late for one. */
#define TG_OUTBOX_KIND_METER_EVENT "meter_event.create"
#define TG_OUTBOX_KIND_LATE_USAGE "late_usage.item"
/* billing: stripe (outbox_subscriptions.c) */
#define TG_OUTBOX_KIND_SUBSCRIPTION_CREATE "subscription.create"
#define TG_OUTBOX_KIND_SUBSCRIPTION_ITEMS "subscription.items"
#define TG_OUTBOX_KIND_SUBSCRIPTION_CANCEL "subscription.cancel"
#define TG_OUTBOX_KIND_SUBSCRIPTION_RESUME "subscription.resume"
#define TG_OUTBOX_KIND_SUBSCRIPTION_INVOICE_ITEM "subscription.invoiceitem"

/* In a form value or the path of an enqueued call: replaced when the call is sent by the Stripe
 * id of the row's customer. A call that names it waits (without using its attempts) until the
 * customer's "create" row is done, and fails if that row failed: a call for a customer can be
 * queued right after the customer, in the same transaction. */
#define TG_OUTBOX_STRIPE_CUSTOMER "{stripe_customer}"

/* "{stripe_invoice:<tollgate invoice id>}" in a form value or the path: replaced when the call is
 * sent by the Stripe id of that tollgate invoice, the response id of its "invoice.create" row
 * (found by that row's idempotency key, tg_invoice.create_<id>). The call waits until that row
 * is done, and fails if it failed. */
#define TG_OUTBOX_STRIPE_INVOICE_PREFIX "{stripe_invoice:"

/* "{stripe_price:<lookup key>}" in a form value: replaced when the call is sent by the id of the
 * active Stripe price with that lookup key (GET /v1/prices?lookup_keys[]=<key>&active=true,
 * remembered for the rest of the processor's pass). No such price fails the row ("run tollgate
 * stripe sync-catalog"); the owner requeues it after the sync. */
#define TG_OUTBOX_STRIPE_PRICE_PREFIX "{stripe_price:"

/* In a form value or the path: replaced by the Stripe id of the customer's subscription (the
 * newest one recorded for them, made by their latest "subscription.create" row). Waits while that
 * row is pending, fails if it failed or if the customer has none, like {stripe_customer}. */
#define TG_OUTBOX_STRIPE_SUBSCRIPTION "{stripe_subscription}"

typedef struct tg_outbox tg_outbox_t;

typedef struct tg_outbox_settings {
    const char *database;        /* the store URL: the processor opens its own connection */
    tg_stripe_settings_t stripe; /* copied by tg_outbox_start */
    int64_t backoff_base_ms;     /* first retry within this; 0: 1000 */
    int64_t backoff_cap_ms;      /* no wait longer than this; 0: 1 hour */
    int max_attempts;            /* then the row is failed; 0: 12 */
    int64_t poll_ms;             /* how often the processor looks for new rows; 0: 500 */
} tg_outbox_settings_t;

/* tg_backoff_ms (util/backoff.h), kept under this name for the outbox's callers. The wait before retry number `attempts` (1 = the first retry), full jitter: uniform in
 * [0, min(cap_ms, base_ms * 2^(attempts-1))], drawn from `random` (any 32-bit value). Pure. */
int64_t tg_outbox_backoff_ms(int attempts, int64_t base_ms, int64_t cap_ms, uint32_t random);

/* Writes a pending call on st (in the caller's transaction if one is open). The idempotency
 * key is "tg_<kind>_<op_key>": op_key names the operation uniquely and for ever (a random
 * tollgate id, with a suffix when one object needs several calls of one kind). Returns 0, or
 * TG_EEXIST if this operation was enqueued before (nothing new is written), TG_EINVAL,
 * TG_ESTORE. */
int tg_outbox_enqueue(tg_store_t *st, const char *kind, const char *customer_id, const char *op_key, const char *method,
                      const char *path, const tg_form_t *form, tg_err_t *err);

/* "Create the Stripe customer of c": POST /v1/customers with email, name and
 * metadata[tollgate_customer]. Call it in the transaction that creates c. Enqueuing twice for
 * one customer is not an error (the first row stands). */
int tg_outbox_enqueue_customer(tg_store_t *st, const tg_customer_t *c, tg_err_t *err);

/* "Update the Stripe customer of c" to c's email and name: POST /v1/customers/{stripe_customer}
 * (sent after the customer's earlier calls, its creation first). Call it in the transaction that
 * changes c. */
int tg_outbox_enqueue_customer_update(tg_store_t *st, const tg_customer_t *c, tg_err_t *err);

/* billing: tollgate. "Copy the finalized tollgate invoice inv to Stripe", in the caller's
 * transaction (the one that finalizes inv): POST /v1/invoices (customer, collection_method
 * (+ days_until_due when collection is send_invoice), pending_invoice_items_behavior=exclude,
 * auto_advance=true, metadata[tollgate_invoice], metadata[tollgate_customer]), then one
 * POST /v1/invoiceitems per line of inv->body onto that invoice (invoice={stripe_invoice:..},
 * amount in the currency's minor unit, negative for credits, currency, description (the line's
 * text for people under cfg, billing/line_text.h; cfg may be NULL),
 * period[start]/[end], metadata[tollgate_invoice], metadata[tollgate_line]), then
 * POST /v1/invoices/{id}/finalize. The items name the invoice rather than being swept in as
 * "pending" items, so nothing else pending on the Stripe customer (an item made in Stripe's
 * dashboard) lands on it: its total is tollgate's. TG_EINVAL when an amount is not a whole
 * number of minor units or the currency is unknown; TG_EEXIST (nothing written) if inv was
 * queued before. send_invoice: days_until_due > 0, else 0. */
int tg_outbox_enqueue_invoice(tg_store_t *st, const tg_config_t *cfg, const tg_invoice_t *inv, int send_invoice,
                              int days_until_due, tg_err_t *err);

/* ---- billing: stripe: the customer's Stripe subscription (outbox_subscriptions.c) ----
 * The subscription service (billing/subscriptions.c) decides when; these write the calls, in the
 * caller's transaction. A plan's items follow the catalog that `tollgate stripe sync-catalog`
 * makes: the base fee (when the plan has one) as {stripe_price:tollgate_<plan>_base}, each charge
 * as {stripe_price:tollgate_<plan>_<metric>} (metered: no quantity); every item carries
 * metadata[tollgate_slot] ("base" or the metric), which is how a later plan change finds the
 * item to re-price. TG_EINVAL for a plan with nothing to subscribe to (no base fee, no charge):
 * the service does not call them then. */

/* 1 if plan has something to bill in Stripe (a base fee or a charge). */
int tg_outbox_plan_has_items(const tg_plan_t *plan);

typedef struct tg_outbox_sub_terms {
    int send_invoice;             /* stripe.collection: send_invoice (with days_until_due) */
    int days_until_due;
    int64_t trial_end;            /* 0: no trial */
    int64_t billing_cycle_anchor; /* 0: Stripe's default (the start, or trial_end); else the end of
                                   * tollgate's period, Stripe then bills the part up to it prorated */
} tg_outbox_sub_terms_t;

/* "Create c's subscription to plan": POST /v1/subscriptions (customer, items, collection_method
 * [+ days_until_due], trial_end, billing_cycle_anchor with proration_behavior=create_prorations,
 * else proration_behavior=none, metadata[tollgate_customer], metadata[tollgate_plan]). The first
 * for a customer has the operation key c->id (enqueuing it twice is not an error); again = 1 for
 * a later one (after the customer left a plan without items), which gets its own key. */
int tg_outbox_enqueue_subscription(tg_store_t *st, const tg_customer_t *c, const tg_plan_t *plan,
                                   const tg_outbox_sub_terms_t *t, int again, tg_err_t *err);

/* "Put c's subscription on plan": POST /v1/subscriptions/{stripe_subscription} with
 * proration_behavior=none, metadata[tollgate_plan] and the plan's items; the processor turns the
 * items into the changes the subscription needs when the call is sent (outbox_int.h). */
int tg_outbox_enqueue_subscription_items(tg_store_t *st, const tg_customer_t *c, const tg_plan_t *plan,
                                         tg_err_t *err);

/* "Cancel c's subscription": at_period_end: POST cancel_at_period_end=true (Stripe ends it, and
 * bills its last period, at the period's end); else DELETE /v1/subscriptions/{stripe_subscription}
 * with invoice_now (the metered usage to date is invoiced now) and prorate as given (the unused
 * time of the base fee Stripe billed in advance is credited). */
int tg_outbox_enqueue_subscription_cancel(tg_store_t *st, const tg_customer_t *c, int at_period_end, int prorate,
                                          tg_err_t *err);

/* "Keep c's subscription": POST /v1/subscriptions/{stripe_subscription} cancel_at_period_end=false,
 * undoing a cancellation at the period's end queued before it (sent after it, in c's order). */
int tg_outbox_enqueue_subscription_resume(tg_store_t *st, const tg_customer_t *c, tg_err_t *err);

/* "Add a one-off amount to the next invoice of c's subscription": POST /v1/invoiceitems
 * (customer, subscription, amount in the currency's minor unit, currency, description,
 * period[start]/[end], metadata[tollgate_customer]). TG_EINVAL when amount (nano-units) is not a
 * whole number of minor units or the currency is unknown. */
int tg_outbox_enqueue_subscription_invoice_item(tg_store_t *st, const tg_customer_t *c, const char *currency,
                                                tg_money_t amount, const char *description, int64_t period_start,
                                                int64_t period_end, tg_err_t *err);

/* Queues "create the Stripe customer" for every customer that has neither a Stripe customer nor
 * such a row (customers from before the stripe section), in transactions of a few hundred;
 * *queued (may be NULL) gets how many. Run at start, on the caller's connection. */
int tg_outbox_backfill_customers(tg_store_t *st, size_t *queued, tg_err_t *err);

/* Opens the processor's connection and starts its thread. */
int tg_outbox_start(const tg_outbox_settings_t *s, tg_outbox_t **out, tg_err_t *err);
/* Makes the processor look for due rows now (after a commit that enqueued). Any thread. */
void tg_outbox_wake(tg_outbox_t *ob);
/* Stops the thread, cutting a call in flight short (its row stays pending: the next start sends
 * it again with the same key), closes its connection, frees ob. NULL is allowed. */
void tg_outbox_stop(tg_outbox_t *ob);

/* Counters since start, for metrics (any thread). */
typedef struct tg_outbox_stats {
    uint64_t calls_ok, calls_retry, calls_permanent, rows_failed;
    uint64_t pending; /* rows waiting, as of the processor's last pass */
    uint64_t passes;  /* times the processor looked at the queue (it is alive; tests wait on it) */
} tg_outbox_stats_t;
void tg_outbox_stats(tg_outbox_t *ob, tg_outbox_stats_t *out);

#endif
