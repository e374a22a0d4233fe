/* subscriptions.c - see subscriptions.h: the subscription rules, called by the admin API and
 * portal adapters (src/admin/) and by the period closer (periods.c). */
#include "billing/subscriptions.h"

#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "billing/invoice.h"
#include "billing/pricing.h"
#include "notify/events.h"
#include "payments/outbox.h"
#include "store/store_payments.h"
#include "util/clock.h"
#include "util/period.h"

int64_t tg_sub_now(const tg_sub_ctx_t *x)
{
    return x->now_s != NULL ? x->now_s() : tg_clock_now_ns() / TG_NS_PER_SEC;
}

__int128 tg_sub_monthly_price(const tg_plan_t *p)
{
    return p->interval == TG_INTERVAL_YEAR ? (__int128)p->price / 12 : (__int128)p->price;
}

static int put_customer(const tg_sub_ctx_t *x, const tg_customer_t *c, tg_err_t *err)
{
    return x->accounts != NULL ? tg_accounts_put_customer(x->accounts, c, err) : 0;
}

static void random_id(const char *prefix, char *out, size_t cap)
{
    uint8_t raw[12];
    char hex[sizeof(raw) * 2 + 1];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
    snprintf(out, cap, "%s%s", prefix, hex);
}

/* stripe.billing: stripe: Stripe's subscriptions follow the customer's plan. */
static int stripe_billing(const tg_sub_ctx_t *x)
{
    return x->stripe_customers && x->cfg != NULL && x->cfg->stripe.enabled &&
           x->cfg->stripe.billing == TG_STRIPE_BILLING_STRIPE;
}

int tg_sub_stripe_subscribe(const tg_sub_ctx_t *x, const tg_customer_t *c, int again, tg_err_t *err)
{
    const tg_plan_t *plan = tg_config_find_plan(x->cfg, c->plan_id);
    if (!stripe_billing(x) || !tg_outbox_plan_has_items(plan) || strcmp(c->status, "incomplete") == 0 ||
        strcmp(c->status, "canceled") == 0)
        return 0;
    int64_t now = tg_sub_now(x), ps, pe;
    tg_outbox_sub_terms_t t = {0};
    t.send_invoice = x->cfg->stripe.collection == TG_STRIPE_SEND_INVOICE;
    t.days_until_due = x->cfg->stripe.days_until_due;
    t.trial_end = c->trial_end > now ? c->trial_end : 0;
    int64_t start = t.trial_end > now ? t.trial_end : now;
    tg_period_bounds(c->anchor_at, plan->interval, start, &ps, &pe);
    if (start > ps)
        t.billing_cycle_anchor = pe;
    tg_err_t e = {0};
    int rc = tg_outbox_enqueue_subscription(x->store, c, plan, &t, again, &e);
    if (rc != 0)
        return tg_errf(err, rc, "Queuing the Stripe subscription failed: %s", e.msg);
    return 0;
}

int tg_sub_stripe_backfill(const tg_sub_ctx_t *x, size_t *queued, tg_err_t *err)
{
    enum { BATCH = 256 };
    if (queued != NULL)
        *queued = 0;
    if (!stripe_billing(x))
        return 0;
    char(*ids)[TG_ID_MAX] = malloc(BATCH * sizeof(*ids));
    int64_t *created = malloc(BATCH * sizeof(*created));
    int rc = ids == NULL || created == NULL ? tg_errf(err, TG_ENOMEM, "out of memory queuing Stripe subscriptions") : 0;
    int64_t after_created = INT64_MIN;
    char after_id[TG_ID_MAX] = "";
    size_t n = BATCH, total = 0;
    /* paged by (created_at, id): customers on a free plan are returned and skipped, and must not
     * come back in the next page */
    while (rc == 0 && n == BATCH) {
        if ((rc = tg_store_customers_without_subscription(x->store, TG_OUTBOX_KIND_SUBSCRIPTION_CREATE, after_created,
                                                          after_id, ids, created, BATCH, &n, err)) != 0 ||
            n == 0 || (rc = tg_store_tx_begin(x->store, err)) != 0)
            break;
        size_t before = total;
        for (size_t i = 0; i < n && rc == 0; i++) {
            tg_customer_t c;
            tg_err_t e = {0};
            if ((rc = tg_store_customer_get(x->store, ids[i], &c, &e)) != 0) {
                tg_errf(err, rc, "%s", e.msg);
                break;
            }
            const tg_plan_t *plan = tg_config_find_plan(x->cfg, c.plan_id);
            if (!tg_outbox_plan_has_items(plan))
                continue;
            if ((rc = tg_sub_stripe_subscribe(x, &c, 0, err)) == 0)
                total++;
        }
        if (rc == 0)
            rc = tg_store_tx_commit(x->store, err);
        if (rc != 0) {
            tg_store_tx_rollback(x->store);
            total = before;
            break;
        }
        after_created = created[n - 1];
        snprintf(after_id, sizeof(after_id), "%s", ids[n - 1]);
    }
    free(ids);
    free(created);
    if (queued != NULL)
        *queued = total;
    return rc;
}

/* stripe.billing: stripe - queues what makes c's Stripe subscription follow a plan change from
 * `from` to `to` that takes effect now (pc: its computation; NULL when it was scheduled and its
 * period is over, so nothing is prorated): the new plan's prices on the subscription, and
 * tollgate's proration as invoice items on it. A plan without anything to bill has no
 * subscription: moving to one cancels it (its usage so far invoiced), leaving one creates it. In
 * the caller's transaction. */
static int stripe_follow_plan(const tg_sub_ctx_t *x, const tg_customer_t *c, const tg_plan_t *from,
                              const tg_plan_t *to, const tg_sub_change_t *pc, tg_err_t *err)
{
    if (!stripe_billing(x) || from == NULL || from == to || strcmp(c->status, "incomplete") == 0 ||
        strcmp(c->status, "canceled") == 0)
        return 0;
    int had = tg_outbox_plan_has_items(from), has = tg_outbox_plan_has_items(to), rc = 0;
    tg_err_t e = {0};
    int prorated = pc != NULL && pc->prorated;
    if (had && has) {
        rc = tg_outbox_enqueue_subscription_items(x->store, c, to, &e);
        if (rc == 0 && prorated && pc->stripe_new_rest != 0)
            rc = tg_outbox_enqueue_subscription_invoice_item(x->store, c, to->currency, pc->stripe_new_rest,
                                                             pc->stripe_new_desc, pc->effective_at, pc->period_end, &e);
        if (rc == 0 && prorated && pc->stripe_old_unused != 0)
            rc = tg_outbox_enqueue_subscription_invoice_item(x->store, c, to->currency, pc->stripe_old_unused,
                                                             pc->stripe_old_desc, pc->effective_at, pc->period_end, &e);
    } else if (had) {
        rc = tg_outbox_enqueue_subscription_cancel(x->store, c, 0, prorated, &e);
    } else if (has) {
        tg_customer_t on = *c;
        snprintf(on.plan_id, sizeof(on.plan_id), "%s", to->id);
        return tg_sub_stripe_subscribe(x, &on, 1, err);
    }
    if (rc != 0)
        return tg_errf(err, rc, "Queuing the Stripe subscription change failed: %s", e.msg);
    return 0;
}

/* Event `type` about customer c (notify/events.h) in the caller's transaction; data (may be
 * NULL) is taken. The customer's id, email, plan and status are always in it. */
static int customer_event(const tg_sub_ctx_t *x, const char *type, const tg_customer_t *c, json_t *data, tg_err_t *err)
{
    if (data == NULL)
        data = json_object();
    json_object_set_new(data, "customer_id", json_string(c->id));
    json_object_set_new(data, "email", json_string(c->email));
    json_object_set_new(data, "plan", json_string(c->plan_id));
    json_object_set_new(data, "status", json_string(c->status));
    tg_err_t e = {0};
    int rc = tg_event_emit(x->store, type, c->id, data, NULL, &e);
    json_decref(data);
    if (rc != 0)
        return tg_errf(err, rc, "Recording the %s event failed: %s", type, e.msg);
    return 0;
}

int tg_sub_customer_create(const tg_sub_ctx_t *x, const char *email, const char *name, const tg_plan_t *plan,
                           int with_trial, tg_customer_t *c, tg_err_t *err)
{
    memset(c, 0, sizeof(*c));
    if (strlen(email) >= sizeof(c->email) || (name != NULL && strlen(name) >= sizeof(c->name)))
        return tg_errf(err, TG_EINVAL, "The email or the name is too long.");
    random_id("cus_", c->id, sizeof(c->id));
    snprintf(c->email, sizeof(c->email), "%s", email);
    snprintf(c->name, sizeof(c->name), "%s", name != NULL ? name : "");
    snprintf(c->plan_id, sizeof(c->plan_id), "%s", plan->id);
    c->created_at = c->anchor_at = tg_sub_now(x);
    if (plan->requires_payment_method && x->stripe_customers) {
        /* Keys refused and nothing billed until a card is on file; the trial (if any) starts
         * then (tg_sub_payment_method_added). */
        snprintf(c->status, sizeof(c->status), "incomplete");
        c->trial_end = plan->trial_days > 0 && with_trial ? TG_TRIAL_AT_CARD : 0;
    } else if (plan->trial_days > 0 && with_trial) {
        snprintf(c->status, sizeof(c->status), "trialing");
        c->trial_end = c->created_at + (int64_t)plan->trial_days * 86400;
    } else {
        snprintf(c->status, sizeof(c->status), "active");
    }
    tg_err_t e = {0};
    /* the customer and its customer.created event commit together */
    int rc = tg_store_savepoint(x->store, "customer_create", &e);
    if (rc != 0)
        return tg_errf(err, rc, "Storing the customer failed: %s", e.msg);
    rc = tg_store_customer_insert(x->store, c, &e);
    if (rc == 0)
        rc = customer_event(x, TG_EVENT_CUSTOMER_CREATED, c, NULL, &e);
    if (rc == 0)
        rc = tg_store_savepoint_release(x->store, "customer_create", &e);
    else
        tg_store_savepoint_rollback(x->store, "customer_create");
    if (rc == TG_EEXIST)
        return tg_errf(err, TG_EEXIST, "A customer with the email %s exists already.", email);
    if (rc != 0)
        return tg_errf(err, rc, "Storing the customer failed: %s", e.msg);
    if (x->stripe_customers && (rc = tg_outbox_enqueue_customer(x->store, c, &e)) != 0)
        return tg_errf(err, rc, "Queuing the Stripe customer failed: %s", e.msg);
    if ((rc = tg_sub_stripe_subscribe(x, c, 0, err)) != 0)
        return rc;
    if ((rc = put_customer(x, c, &e)) != 0)
        return tg_errf(err, rc, "%s", e.msg);
    return 0;
}

int tg_sub_when_parse(const char *s, tg_sub_when_t *w, tg_err_t *err)
{
    if (s == NULL)
        *w = TG_SUB_WHEN_DEFAULT;
    else if (strcmp(s, "now") == 0)
        *w = TG_SUB_WHEN_NOW;
    else if (strcmp(s, "period_end") == 0)
        *w = TG_SUB_WHEN_PERIOD_END;
    else
        return tg_errf(err, TG_EINVAL, "when: \"now\" or \"period_end\", not \"%s\".", s);
    return 0;
}

int tg_sub_change_compute(const tg_sub_ctx_t *x, const tg_customer_t *c, const tg_plan_t *to, tg_sub_when_t when,
                          tg_sub_change_t *pc, tg_err_t *err)
{
    const tg_plan_t *from = tg_config_find_plan(x->cfg, c->plan_id);
    int64_t now = tg_sub_now(x);
    memset(pc, 0, sizeof(*pc));
    pc->from = from;
    pc->to = to;
    pc->effective_at = now;
    if (from == NULL || from == to)
        return 0;
    if (strcmp(from->currency, to->currency) != 0)
        return tg_errf(err, TG_EINVAL, "plan: %s is billed in %s and %s in %s; a customer cannot change currency.",
                       from->id, from->currency, to->id, to->currency);
    int64_t ps, pe;
    tg_period_bounds(c->anchor_at, from->interval, now, &ps, &pe);
    pc->upgrade = tg_sub_monthly_price(to) > tg_sub_monthly_price(from);
    /* A downgrade during a trial is at once: the base fee is that of the plan in force at the
     * period's end, so waiting would bill the higher plan for the time after the trial that the
     * customer declined. */
    int trial_downgrade = !pc->upgrade && now < c->trial_end;
    /* An incomplete customer (waiting for a card) has used and owes nothing: any change is at
     * once and prorates nothing. */
    if (strcmp(c->status, "incomplete") == 0)
        return 0;
    if (!trial_downgrade && (when == TG_SUB_WHEN_PERIOD_END || (when == TG_SUB_WHEN_DEFAULT && !pc->upgrade))) {
        pc->at_period_end = 1;
        pc->effective_at = pe;
        return 0;
    }
    int64_t paid_from = c->trial_end > ps ? c->trial_end : ps;
    if (now > paid_from && from->interval == to->interval) {
        if (tg_prorate(from->price, now - paid_from, pe - ps, &pc->old_part) != 0 ||
            tg_prorate(to->price, now - paid_from, pe - ps, &pc->new_credit) != 0)
            return tg_errf(err, TG_EINVAL, "The plan change cannot be prorated.");
        pc->prorated = 1;
        pc->new_credit = -pc->new_credit;
        pc->period_start = ps;
        pc->period_end = pe;
        /* billing: stripe (see tg_sub_change_t): what Stripe billed in advance for the period is the
         * old fee after paid_from; the items bring it to tollgate's new fee + old_part + new_credit. */
        tg_money_t old_billed, new_full;
        int d = to->currency_digits;
        if (tg_prorate(from->price, pe - paid_from, pe - ps, &old_billed) != 0 ||
            tg_prorate(to->price, pe - paid_from, pe - ps, &new_full) != 0)
            return tg_errf(err, TG_EINVAL, "The plan change cannot be prorated.");
        pc->stripe_new_rest = tg_money_round(new_full, d) + tg_money_round(pc->new_credit, d);
        pc->stripe_old_unused = tg_money_round(pc->old_part, d) - tg_money_round(old_billed, d);
        snprintf(pc->stripe_new_desc, sizeof(pc->stripe_new_desc), "%s plan from the change to the period's end",
                 to->name);
        snprintf(pc->stripe_old_desc, sizeof(pc->stripe_old_desc), "%s plan: unused time after the change",
                 from->name);
        snprintf(pc->old_desc, sizeof(pc->old_desc), "%s plan until the change (%" PRId64 " of %" PRId64 " days)",
                 from->name, (now - paid_from + 43199) / 86400, (pe - ps + 43199) / 86400);
        snprintf(pc->new_desc, sizeof(pc->new_desc), "%s plan credit for the time before the change", to->name);
    }
    return 0;
}

static int item_row(const tg_sub_ctx_t *x, const tg_customer_t *c, const char *desc, tg_money_t amount,
                    const char *currency, tg_err_t *err)
{
    tg_invoice_item_t it = {0};
    snprintf(it.customer_id, sizeof(it.customer_id), "%s", c->id);
    it.created_at = tg_sub_now(x);
    snprintf(it.description, sizeof(it.description), "%s", desc);
    it.amount = amount;
    snprintf(it.currency, sizeof(it.currency), "%s", currency);
    return tg_store_invoice_item_add(x->store, &it, err);
}

/* Changes c's plan in memory and writes the proration items and the plan-change record (the
 * caller's transaction stores c). */
static int change_plan(const tg_sub_ctx_t *x, tg_customer_t *c, const tg_plan_t *to, tg_sub_when_t when, tg_err_t *err)
{
    tg_sub_change_t pc;
    int rc = tg_sub_change_compute(x, c, to, when, &pc, err);
    if (rc != 0)
        return rc;
    tg_err_t e = {0};
    if (to->requires_payment_method && x->stripe_customers && pc.from != to) {
        int64_t card = 0;
        if ((rc = tg_store_payment_method_get(x->store, c->id, &card, &e)) != 0)
            return tg_errf(err, rc, "Reading the payment method failed: %s", e.msg);
        if (card == 0)
            return tg_errf(err, TG_EPAYMENT,
                           "The %s plan needs a payment method: add a card in the billing section first.", to->id);
    }
    if (pc.at_period_end) {
        snprintf(c->pending_plan_id, sizeof(c->pending_plan_id), "%s", to->id);
        c->pending_at = pc.effective_at;
        return 0;
    }
    if (pc.prorated && ((rc = item_row(x, c, pc.old_desc, pc.old_part, to->currency, &e)) != 0 ||
                        (rc = item_row(x, c, pc.new_desc, pc.new_credit, to->currency, &e)) != 0))
        return tg_errf(err, rc, "Storing the proration failed: %s", e.msg);
    if (pc.from != NULL && pc.from != to &&
        (rc = tg_store_plan_change_add(x->store, c->id, pc.from->id, to->id, pc.upgrade ? "upgrade" : "downgrade",
                                       pc.effective_at, &e)) != 0)
        return tg_errf(err, rc, "Recording the plan change failed: %s", e.msg);
    if ((rc = stripe_follow_plan(x, c, pc.from, to, &pc, err)) != 0)
        return rc;
    if (pc.from != NULL && pc.from != to &&
        (rc = customer_event(x, TG_EVENT_PLAN_CHANGED, c,
                             json_pack("{s:s,s:s,s:s,s:b}", "from_plan", pc.from->id, "to_plan", to->id, "kind",
                                       pc.upgrade ? "upgrade" : "downgrade", "prorated", pc.prorated),
                             err)) != 0)
        return rc;
    snprintf(c->plan_id, sizeof(c->plan_id), "%s", to->id);
    c->pending_plan_id[0] = '\0';
    c->pending_at = 0;
    if (strcmp(c->status, "incomplete") == 0 && !to->requires_payment_method) {
        /* Nothing waits for a card any more: the plan starts now, with its trial if one was
         * granted at sign-up, as it would have at the card (stripe_events.c). */
        int64_t now = tg_sub_now(x);
        int trial = c->trial_end == TG_TRIAL_AT_CARD && to->trial_days > 0;
        snprintf(c->status, sizeof(c->status), "%s", trial ? "trialing" : "active");
        c->trial_end = now + (trial ? (int64_t)to->trial_days * 86400 : 0);
        char reason[160];
        snprintf(reason, sizeof(reason), "plan changed to %.64s, which needs no payment method", to->id);
        if ((rc = tg_store_status_history_add(x->store, c->id, "incomplete", c->status, reason, "", now, &e)) != 0)
            return tg_errf(err, rc, "Recording the status change failed: %s", e.msg);
    }
    return 0;
}

int tg_sub_update(const tg_sub_ctx_t *x, tg_customer_t *c, const tg_sub_update_t *u, tg_err_t *err)
{
    const char *status = u->status;
    if (status != NULL && strcmp(status, "active") != 0 && strcmp(status, "suspended") != 0 &&
        strcmp(status, "canceled") != 0 && strcmp(status, "past_due") != 0)
        return tg_errf(err, TG_EINVAL,
                       "status: must be \"active\", \"past_due\", \"suspended\" or \"canceled\", not \"%s\".", status);
    if (u->name != NULL && strlen(u->name) >= sizeof(c->name))
        return tg_errf(err, TG_EINVAL, "name: at most %d characters.", (int)sizeof(c->name) - 1);
    /* The proration items and the customer change commit together or not at all. */
    tg_err_t e = {0};
    int rc = tg_store_tx_begin(x->store, &e);
    if (rc != 0)
        return tg_errf(err, rc, "Updating the customer failed: %s", e.msg);
    if (u->plan != NULL && (rc = change_plan(x, c, u->plan, u->when, err)) != 0) {
        tg_store_tx_rollback(x->store);
        return rc;
    }
    int64_t now = tg_sub_now(x);
    /* The owner cancels: Stripe's subscription ends now too, the usage so far invoiced and the
     * unused time of the base fee it billed in advance credited (as tg_sub_cancel at once). */
    if (status != NULL && strcmp(status, "canceled") == 0 && strcmp(c->status, "canceled") != 0 && stripe_billing(x) &&
        strcmp(c->status, "incomplete") != 0 && tg_outbox_plan_has_items(tg_config_find_plan(x->cfg, c->plan_id)) &&
        (rc = tg_outbox_enqueue_subscription_cancel(x->store, c, 0, 1, &e)) != 0) {
        tg_store_tx_rollback(x->store);
        return tg_errf(err, rc, "Queuing the Stripe cancellation failed: %s", e.msg);
    }
    if (status != NULL) {
        if (strcmp(status, "active") == 0 && c->trial_end > now)
            status = "trialing"; /* resuming during a trial returns to the trial */
        char before[sizeof(c->status)];
        snprintf(before, sizeof(before), "%s", c->status);
        snprintf(c->status, sizeof(c->status), "%s", status);
        if (strcmp(status, "canceled") == 0 && c->cancel_at == 0)
            c->cancel_at = now;
        const char *type = NULL;
        if (strcmp(before, status) == 0)
            type = NULL;
        else if (strcmp(status, "canceled") == 0)
            type = TG_EVENT_CUSTOMER_CANCELED;
        else if (strcmp(status, "suspended") == 0)
            type = TG_EVENT_ACCOUNT_SUSPENDED;
        else if (strcmp(status, "past_due") == 0)
            type = TG_EVENT_ACCOUNT_PAST_DUE;
        else if (strcmp(before, "suspended") == 0 || strcmp(before, "past_due") == 0)
            type = TG_EVENT_ACCOUNT_RESUMED;
        if (type != NULL &&
            (rc = customer_event(x, type, c, json_pack("{s:s,s:s}", "previous_status", before, "source", "owner"),
                                 err)) != 0) {
            tg_store_tx_rollback(x->store);
            return rc;
        }
    }
    int renamed = u->name != NULL && strcmp(u->name, c->name) != 0;
    if (u->name != NULL)
        snprintf(c->name, sizeof(c->name), "%s", u->name);
    /* The owner's status decision replaces dunning's: a later suspension by the owner is
     * account_suspended, not payment_required, and dunning starts afresh. A new name goes to the
     * Stripe customer through the outbox, in this transaction. */
    if ((status != NULL && (rc = tg_store_dunning_clear(x->store, c->id, &e)) != 0) ||
        (renamed && x->stripe_customers && (rc = tg_outbox_enqueue_customer_update(x->store, c, &e)) != 0) ||
        (rc = tg_store_customer_update(x->store, c, &e)) != 0 || (rc = tg_store_tx_commit(x->store, &e)) != 0) {
        tg_store_tx_rollback(x->store);
        return tg_errf(err, rc, "Updating the customer failed: %s", e.msg);
    }
    if (status != NULL && x->accounts != NULL)
        tg_accounts_set_payment_hold(x->accounts, c->id, 0); /* before the new status is visible */
    if ((rc = put_customer(x, c, &e)) != 0)
        return tg_errf(err, rc, "%s", e.msg);
    return 0;
}

int tg_sub_cancel(const tg_sub_ctx_t *x, tg_customer_t *c, int at_period_end, tg_err_t *err)
{
    const tg_plan_t *plan = tg_config_find_plan(x->cfg, c->plan_id);
    if (plan == NULL)
        return tg_errf(err, TG_ECONFIG, "Customer %s is on plan \"%s\", which the configuration lacks.", c->id,
                       c->plan_id);
    if (strcmp(c->status, "canceled") == 0)
        return tg_errf(err, TG_ESTATE, "Customer %s is canceled already.", c->id);
    int64_t now = tg_sub_now(x), ps, pe;
    tg_period_bounds(c->anchor_at, plan->interval, now, &ps, &pe);
    tg_err_t e = {0};
    /* Stripe's subscription (billing: stripe) ends with the customer: at its period's end, or now
     * with the usage so far invoiced and the unused base fee credited. Queued in the transaction
     * that records the cancellation. */
    int stripe = stripe_billing(x) && tg_outbox_plan_has_items(plan) && strcmp(c->status, "incomplete") != 0;
    int rc = tg_store_tx_begin(x->store, &e);
    if (rc != 0)
        return tg_errf(err, rc, "Canceling failed: %s", e.msg);
    if (at_period_end) {
        c->cancel_at = pe;
        if ((rc = tg_store_customer_update(x->store, c, &e)) != 0 ||
            (stripe && (rc = tg_outbox_enqueue_subscription_cancel(x->store, c, 1, 0, &e)) != 0) ||
            (rc = tg_store_tx_commit(x->store, &e)) != 0) {
            tg_store_tx_rollback(x->store);
            return tg_errf(err, rc, "Canceling failed: %s", e.msg);
        }
        return 0;
    }
    c->cancel_at = now;
    snprintf(c->status, sizeof(c->status), "canceled");
    if ((rc = tg_store_customer_update(x->store, c, &e)) != 0 ||
        (rc = customer_event(x, TG_EVENT_CUSTOMER_CANCELED, c, json_pack("{s:s}", "source", "cancel"), &e)) != 0 ||
        (stripe && (rc = tg_outbox_enqueue_subscription_cancel(x->store, c, 0, 1, &e)) != 0) ||
        (rc = tg_store_tx_commit(x->store, &e)) != 0) {
        tg_store_tx_rollback(x->store);
        return tg_errf(err, rc, "Canceling failed: %s", e.msg);
    }
    if ((rc = put_customer(x, c, &e)) != 0)
        return tg_errf(err, rc, "Canceling failed: %s", e.msg);
    if (x->meter != NULL)
        tg_meter_flush(x->meter); /* the final invoice includes every answered call */
    if ((rc = tg_invoice_close_final(x->store, x->cfg, c, now, &e)) != 0)
        return tg_errf(err, rc, "Canceled, but the final invoice failed: %s", e.msg);
    return 0;
}

int tg_sub_resume(const tg_sub_ctx_t *x, tg_customer_t *c, tg_err_t *err)
{
    if (strcmp(c->status, "canceled") == 0 || (c->cancel_at != 0 && tg_sub_now(x) >= c->cancel_at))
        return tg_errf(err, TG_ESTATE, "Customer %s is canceled already: a new subscription is a new sign-up.", c->id);
    if (c->cancel_at == 0)
        return tg_errf(err, TG_ESTATE, "Customer %s has no cancellation to undo.", c->id);
    const tg_plan_t *plan = tg_config_find_plan(x->cfg, c->plan_id);
    /* the same condition as the cancellation's: Stripe was told to cancel exactly when it holds */
    int stripe = plan != NULL && stripe_billing(x) && tg_outbox_plan_has_items(plan) &&
                 strcmp(c->status, "incomplete") != 0;
    tg_err_t e = {0};
    int64_t was = c->cancel_at;
    int rc = tg_store_tx_begin(x->store, &e);
    if (rc != 0)
        return tg_errf(err, rc, "Keeping the subscription failed: %s", e.msg);
    c->cancel_at = 0;
    if ((rc = tg_store_customer_update(x->store, c, &e)) != 0 ||
        (stripe && (rc = tg_outbox_enqueue_subscription_resume(x->store, c, &e)) != 0) ||
        (rc = tg_store_tx_commit(x->store, &e)) != 0) {
        tg_store_tx_rollback(x->store);
        c->cancel_at = was;
        return tg_errf(err, rc, "Keeping the subscription failed: %s", e.msg);
    }
    return 0;
}

int tg_sub_apply_scheduled(const tg_sub_ctx_t *x, const tg_customer_t *c, tg_err_t *err)
{
    int64_t now = tg_sub_now(x);
    tg_customer_t u = *c;
    int changed = 0, rc;
    const tg_plan_t *to = NULL;
    if (u.pending_plan_id[0] != '\0' && now >= u.pending_at &&
        (to = tg_config_find_plan(x->cfg, u.pending_plan_id)) != NULL) {
        tg_err_t herr = {0}; /* the history is informative: a failure to record it changes nothing */
        tg_store_plan_change_add(x->store, u.id, u.plan_id, u.pending_plan_id, "downgrade", u.pending_at, &herr);
        snprintf(u.plan_id, sizeof(u.plan_id), "%s", u.pending_plan_id);
        u.pending_plan_id[0] = '\0';
        u.pending_at = 0;
        changed = 1;
    }
    /* A cancellation at the period's end was sent to Stripe when it was asked for
     * (cancel_at_period_end): Stripe ends its subscription by itself. */
    if (u.cancel_at != 0 && now >= u.cancel_at && strcmp(u.status, "canceled") != 0) {
        snprintf(u.status, sizeof(u.status), "canceled");
        changed = 1;
    }
    if (!changed)
        return 0;
    /* The Stripe subscription takes the lower plan now, in one savepoint with the change (the
     * period closer's batch transaction is around it: a failure undoes this customer only). */
    if ((rc = tg_store_savepoint(x->store, "apply_scheduled", err)) != 0)
        return rc;
    if ((to != NULL && strcmp(u.status, "canceled") != 0 &&
         (rc = stripe_follow_plan(x, &u, tg_config_find_plan(x->cfg, c->plan_id), to, NULL, err)) != 0) ||
        (rc = tg_store_customer_update(x->store, &u, err)) != 0 ||
        (to != NULL &&
         (rc = customer_event(x, TG_EVENT_PLAN_CHANGED, &u,
                              json_pack("{s:s,s:s,s:s,s:b}", "from_plan", c->plan_id, "to_plan", to->id, "kind",
                                        "downgrade", "prorated", 0),
                              err)) != 0) ||
        (strcmp(u.status, "canceled") == 0 && strcmp(c->status, "canceled") != 0 &&
         (rc = customer_event(x, TG_EVENT_CUSTOMER_CANCELED, &u, json_pack("{s:s}", "source", "period_end"), err)) !=
             0) ||
        (rc = tg_store_savepoint_release(x->store, "apply_scheduled", err)) != 0) {
        tg_store_savepoint_rollback(x->store, "apply_scheduled");
        return rc;
    }
    return put_customer(x, &u, err);
}

int tg_sub_add_item(const tg_sub_ctx_t *x, const tg_customer_t *c, const char *desc, tg_money_t amount, tg_err_t *err)
{
    const tg_plan_t *plan = tg_config_find_plan(x->cfg, c->plan_id);
    if (desc == NULL || desc[0] == '\0' || strlen(desc) >= TG_NAME_MAX)
        return tg_errf(err, TG_EINVAL, "description: a non-empty string, at most %d characters.", TG_NAME_MAX - 1);
    if (amount == 0)
        return tg_errf(err, TG_EINVAL, "amount: a non-zero decimal string such as \"-12.50\".");
    if (plan == NULL)
        return tg_errf(err, TG_ECONFIG, "Customer %s is on plan \"%s\", which the configuration lacks.", c->id,
                       c->plan_id);
    /* An invoice line is a whole number of minor units: an item of 1.005 would be billed (and
     * sent to Stripe) as 1.01 while the owner asked for 1.005. */
    if (tg_money_round(amount, plan->currency_digits) != amount)
        return tg_errf(err, TG_EINVAL, "amount: %s amounts have %d decimal places at most.", plan->currency,
                       plan->currency_digits);
    tg_err_t e = {0};
    int rc = item_row(x, c, desc, amount, plan->currency, &e);
    if (rc != 0)
        return tg_errf(err, rc, "Storing the item failed: %s", e.msg);
    return 0;
}

char *tg_sub_upcoming(const tg_sub_ctx_t *x, const tg_customer_t *c, tg_err_t *err)
{
    if (x->meter != NULL)
        tg_meter_flush(x->meter); /* the estimate includes every call answered so far */
    tg_err_t e = {0};
    char *json = tg_invoice_preview(x->store, x->cfg, c, tg_sub_now(x), &e);
    if (json == NULL && e.code == TG_ERANGE)
        tg_errf(err, TG_ERANGE,
                "The upcoming invoice of %s cannot be computed: %s. The usage is kept; see "
                "GET /v1/admin/billing/failures and correct it with an item or a plan change.",
                c->id, e.msg);
    else if (json == NULL)
        tg_errf(err, e.code != 0 ? e.code : TG_ENOMEM, "Previewing the invoice of %s failed: %s", c->id, e.msg);
    return json;
}
