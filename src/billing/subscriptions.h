/* subscriptions.h - the subscription rules: creating a customer (with the plan's trial), plan
 * changes with proration, scheduled changes, cancellation, one-off items and credits, and the
 * upcoming invoice.
 *
 * Every front door calls these and nothing else decides: the admin API and the developer portal
 * (src/admin/, through their HTTP adapters), the period closer (billing/periods.c, run by the
 * admin thread's tick and by POST /v1/admin/invoices/run), and later the Stripe webhook handler.
 * The CLI reaches them through the admin API. Nothing here knows HTTP: a call returns 0 or a
 * negative TG_E… code with one sentence in err, and the adapter picks the status:
 *   TG_EINVAL   the request is wrong (a currency change, an empty description, ...)
 *   TG_EEXIST   a customer with that email exists
 *   TG_ESTATE   not allowed in the customer's state (canceling a canceled customer)
 *   TG_ERANGE   an amount does not fit the money range (the customer's data, not the server)
 *   others      the store or the directory failed.
 * All of it runs on the thread that owns the store connection (the admin back thread); nothing
 * keeps a pointer to what it was given. Every write goes to the store first, then to the
 * gateway's in-memory directory (accounts), so what the gateway enforces is durable. */
#ifndef TG_SUBSCRIPTIONS_H
#define TG_SUBSCRIPTIONS_H

#include <stdint.h>

#include "config/config.h"
#include "gateway/accounts.h"
#include "metering/meter.h"
#include "model/records.h"

typedef struct tg_store tg_store_t; /* a connection (store/store.h) */
#include "util/err.h"
#include "util/money.h"

/* What the services need; the caller owns every pointer, which must outlive the calls. */
typedef struct tg_sub_ctx {
    const tg_config_t *cfg;
    tg_store_t *store;
    tg_accounts_t *accounts; /* the gateway's directory; may be NULL (tests, tools) */
    tg_meter_t *meter;       /* flushed before anything is invoiced; may be NULL */
    int64_t (*now_s)(void);  /* the clock in seconds; NULL: tg_clock_now_ns (moved by --test-clock) */
    int stripe_customers;    /* a stripe section is configured: every new customer queues its Stripe
                              * customer in the outbox, in the transaction that creates it */
} tg_sub_ctx_t;

int64_t tg_sub_now(const tg_sub_ctx_t *x);

/* A plan's base price per month, to tell upgrades from downgrades across intervals. */
__int128 tg_sub_monthly_price(const tg_plan_t *p);

/* Creates customer `email` on `plan`, trialing for the plan's trial_days if with_trial, in the
 * store then the directory; fills *c. TG_EEXIST if the email is taken. Runs inside the caller's
 * transaction if there is one; with x->stripe_customers it also queues the Stripe customer there
 * (payments/outbox.h), so the caller should hold one and wake the outbox after its commit. */
int tg_sub_customer_create(const tg_sub_ctx_t *x, const char *email, const char *name, const tg_plan_t *plan,
                           int with_trial, tg_customer_t *c, tg_err_t *err);

typedef enum { TG_SUB_WHEN_DEFAULT, TG_SUB_WHEN_NOW, TG_SUB_WHEN_PERIOD_END } tg_sub_when_t;

/* "now" / "period_end" / NULL (default) into *w; TG_EINVAL for anything else. */
int tg_sub_when_parse(const char *s, tg_sub_when_t *w, tg_err_t *err);

/* What a plan change would do, computed without changing anything (the portal's preview too). */
typedef struct tg_sub_change {
    const tg_plan_t *from, *to;
    int upgrade;       /* a higher monthly-normalised base price */
    int at_period_end; /* waits for the period's end (downgrades, or when = period_end) */
    int64_t effective_at;
    int prorated;
    tg_money_t old_part, new_credit; /* the two proration items (new_credit is negative) */
    char old_desc[TG_NAME_MAX], new_desc[TG_NAME_MAX];
    /* billing: stripe, when prorated: the same proration as Stripe invoice items. Stripe bills a
     * licensed base fee in advance, so for this period it has billed the old plan's fee already
     * (from the trial's end when it ended inside the period); these two make what Stripe bills
     * for the period equal to what tollgate bills (the new fee, old_part and new_credit):
     * stripe_new_rest = new fee for the part after paid_from + new_credit (positive), and
     * stripe_old_unused = old_part - old fee for the part after paid_from (negative), each
     * rounded to the currency's minor unit as tollgate's lines are. */
    tg_money_t stripe_new_rest, stripe_old_unused;
    char stripe_new_desc[TG_NAME_MAX], stripe_old_desc[TG_NAME_MAX];
    int64_t period_start, period_end; /* the period of the change */
} tg_sub_change_t;

/* The rules: an upgrade, or when = NOW, takes effect at once; during a paid period it is
 * prorated by seconds (the old plan is charged for the time it was in force, the new plan's
 * fee, billed in full at the period's end, is credited for that same time). A downgrade waits
 * for the period's end, except during a trial, when it takes effect at once: the trial is free,
 * so waiting would only bill the higher plan for the days between the trial's end and the
 * period's (when = PERIOD_END included). TG_EINVAL for a change of currency. */
int tg_sub_change_compute(const tg_sub_ctx_t *x, const tg_customer_t *c, const tg_plan_t *to, tg_sub_when_t when,
                          tg_sub_change_t *pc, tg_err_t *err);

/* A change to a customer (PATCH): any field NULL is left alone. status is "active", "past_due",
 * "suspended" or "canceled" ("active" during a trial resumes the trial). */
typedef struct tg_sub_update {
    const tg_plan_t *plan;
    tg_sub_when_t when;
    const char *status;
    const char *name;
} tg_sub_update_t;

/* Applies u to *c: the proration items, the plan-change record and the customer commit in one
 * transaction (or none of it), then the directory. On error *c may be half-changed: reload it. */
int tg_sub_update(const tg_sub_ctx_t *x, tg_customer_t *c, const tg_sub_update_t *u, tg_err_t *err);

/* Cancels c: at the period's end (access until then, that period invoiced as usual), or at once
 * (access stops now and a final invoice bills the usage to date and the base fee up to now).
 * TG_ESTATE if canceled already. */
int tg_sub_cancel(const tg_sub_ctx_t *x, tg_customer_t *c, int at_period_end, tg_err_t *err);

/* Undoes a cancellation at the period's end while that period lasts: c keeps its plan and is
 * billed on as if it had never been asked for (the Stripe subscription too, billing: stripe).
 * TG_ESTATE when c has no cancellation scheduled, or is canceled already (the period ended, or it
 * was canceled at once). */
int tg_sub_resume(const tg_sub_ctx_t *x, tg_customer_t *c, tg_err_t *err);

/* Applies c's scheduled changes that are due (a pending downgrade, a cancellation at period
 * end). Called by the period closer once c's ended periods are invoiced under the old plan. */
int tg_sub_apply_scheduled(const tg_sub_ctx_t *x, const tg_customer_t *c, tg_err_t *err);

/* billing: stripe. Queues the creation of c's Stripe subscription to its plan, when the plan has
 * something to bill in Stripe and c is not waiting for a card (incomplete): called by
 * tg_sub_customer_create, and when a card puts an incomplete customer on their plan
 * (payments/stripe_events.c). The subscription starts with the trial that is left
 * (trial_end), and when it starts inside one of tollgate's periods (a trial that ends inside it,
 * a customer who comes from a plan without a price) its billing_cycle_anchor is that period's end:
 * Stripe then bills the part up to it prorated, as tollgate does, and renews on tollgate's
 * period boundaries. In the caller's transaction; nothing without stripe.billing: stripe. */
int tg_sub_stripe_subscribe(const tg_sub_ctx_t *x, const tg_customer_t *c, int again, tg_err_t *err);

/* billing: stripe. Queues the Stripe subscription of every customer who has none yet (customers
 * from before billing: stripe was set, or before the catalog existed), as
 * tg_sub_stripe_subscribe would have at their creation; free plans, canceled and incomplete
 * customers are skipped. In transactions of a few hundred, on the caller's connection; run at
 * start. *queued (may be NULL) gets how many. Nothing without stripe.billing: stripe. */
int tg_sub_stripe_backfill(const tg_sub_ctx_t *x, size_t *queued, tg_err_t *err);

/* A one-off charge (or, negative, a credit) on c's next invoice, in the plan's currency.
 * Finalized invoices never change; this is how they are corrected. TG_EINVAL for an empty or
 * too long description or a zero amount. */
int tg_sub_add_item(const tg_sub_ctx_t *x, const tg_customer_t *c, const char *desc, tg_money_t amount, tg_err_t *err);

/* The upcoming invoice of c's current period as JSON (malloc'd; the caller frees), or NULL with
 * err set (TG_ERANGE: usage whose price does not fit the money range). */
char *tg_sub_upcoming(const tg_sub_ctx_t *x, const tg_customer_t *c, tg_err_t *err);

#endif
