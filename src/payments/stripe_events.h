/* stripe_events.h - Stripe webhook events in: recorded once, then applied to customers by a job.
 *
 * The adapter (src/admin/admin_webhooks.c) verifies the signature (stripe_signature.h) and calls
 * tg_stripe_event_record, which stores the event durably (once per event id) before the 2xx is
 * sent; the admin back thread then calls tg_stripe_events_run after the answer is on its way
 * (and at every tick, so events recorded before a crash are applied after the restart).
 *
 * Applying an event decides from the object's state, not from the arrival order: each Stripe
 * invoice's state is merged by rank (draft < open < uncollectible < paid = void; a paid invoice
 * stays paid whatever arrives late; failed attempts only grow), and the customer's status is then
 * derived from all their invoices (tg_dunning_decide). A transition updates the store first, in
 * the same transaction as the event's "processed" mark and a customer_status_history row, then
 * the gateway's directory (as the admin API's suspend/resume does), so what the gateway enforces
 * is always durable.
 *
 * customer.subscription.updated/.deleted (billing: stripe) record each subscription's status the
 * same way (canceled is final, else the later event wins); see apply_subscription for why a
 * subscription canceled in Stripe does not cancel the customer.
 *
 * Customers are found through the object's metadata[tollgate_customer] (an invoice's own
 * metadata, or parent.subscription_details.metadata for a subscription's invoice: Stripe copies a
 * subscription's metadata there, never a customer's). Events for unknown customers are recorded
 * and marked "unknown_customer"; that is not an error.
 *
 * Every function here runs on the admin back thread (it owns the store connection) and returns 0
 * or a negative TG_E* with a sentence in err. */
#ifndef TG_STRIPE_EVENTS_H
#define TG_STRIPE_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "gateway/accounts.h"
#include "store/store.h"
#include "store/store_payments.h"

typedef struct tg_payments_deps {
    const tg_config_t *cfg;
    tg_store_t *store;
    tg_accounts_t *accounts;
} tg_payments_deps_t;

typedef struct tg_stripe_recorded {
    char id[TG_STRIPE_ID_MAX];
    char type[TG_STRIPE_TYPE_MAX];
    int duplicate; /* 1: this event id was recorded before; nothing changed */
} tg_stripe_recorded_t;

/* Records a verified webhook body (the bytes as received) at wall time now_s. TG_EINVAL when the
 * body is not a Stripe event (not JSON, no evt_ id, no type, no data.object); TG_ESTORE when it
 * could not be stored (the sender should retry). */
int tg_stripe_event_record(const tg_payments_deps_t *d, const char *body, size_t len, int64_t now_s,
                           tg_stripe_recorded_t *out, tg_err_t *err);

/* Applies up to max pending events, oldest first; *applied gets how many. Stops at the first
 * event that cannot be applied for a store failure (it stays pending, with its error). On a
 * database that several gateways share, one node applies events at a time: while another one is
 * at it, this returns 0 with what it applied so far (the next tick tries again). */
int tg_stripe_events_run(const tg_payments_deps_t *d, size_t max, int64_t now_s, size_t *applied, tg_err_t *err);

/* dunning.grace_days: suspends the customers past due for that long. */
int tg_dunning_sweep(const tg_payments_deps_t *d, int64_t now_s, tg_err_t *err);

/* Sets the directory's payment holds to the store's: at start-up before the gateway serves, and
 * on each full resync of a node sharing the database (a hold lifted on another node whose change
 * notice was missed is lifted here too). */
int tg_dunning_restore_holds(tg_store_t *st, tg_accounts_t *accounts, tg_err_t *err);

/* ---- the decision, pure (no I/O, no clock) ---- */

typedef struct tg_dunning_input {
    const char *status;     /* the customer's stored status */
    int64_t trial_end;      /* 0 = none */
    int held;               /* suspended by dunning (customer_dunning.held) */
    int64_t past_due_since; /* 0 = not past due */
    tg_stripe_debt_t debt;  /* over the customer's Stripe invoices */
    int64_t now_s;
    int grace_days;
    int suspend_after_failures;
} tg_dunning_input_t;

typedef struct tg_dunning_decision {
    int change;                 /* 0: leave the customer as they are */
    char status[TG_STATUS_MAX]; /* the new status when change */
    int held;
    int64_t past_due_since; /* 0: clear the dunning row */
    char reason[200];
} tg_dunning_decision_t;

/* The customer's status from what they owe: unpaid failed attempts make them past_due, and
 * suspended (held) once they reach suspend_after_failures, an invoice is uncollectible or
 * grace_days have passed; nothing owed makes a past_due or dunning-suspended customer active
 * again (trialing while their trial lasts). A customer suspended or canceled by the owner is
 * never changed. */
void tg_dunning_decide(const tg_dunning_input_t *in, tg_dunning_decision_t *out);

#endif
