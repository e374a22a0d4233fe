/* stripe_events.c - recording Stripe webhook events and applying them (see stripe_events.h). */
#include "payments/stripe_events.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/subscriptions.h"
#include "payments/outbox.h"
#include "store/store_outbox.h"
#include "payments/stripe_form.h"
#include "util/money.h"

#define DAY_S INT64_C(86400)

/* ---- reading events ---- */

static const char *jstr(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A Stripe id as we store it: printable ASCII, no spaces, short. */
static int valid_id(const char *s, const char *prefix)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n >= TG_STRIPE_ID_MAX || (prefix != NULL && strncmp(s, prefix, strlen(prefix)) != 0))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= 0x20 || s[i] >= 0x7f)
            return 0;
    return 1;
}

int tg_stripe_event_record(const tg_payments_deps_t *d, const char *body, size_t len, int64_t now_s,
                           tg_stripe_recorded_t *out, tg_err_t *err)
{
    memset(out, 0, sizeof(*out));
    json_error_t je;
    json_t *ev = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (ev == NULL)
        return tg_errf(err, TG_EINVAL, "The body is not JSON (%s at line %d).", je.text, je.line);
    const char *id = jstr(ev, "id"), *type = jstr(ev, "type");
    json_t *created = json_object_get(ev, "created"), *data = json_object_get(ev, "data");
    json_t *obj = json_object_get(data, "object");
    int rc;
    if (!valid_id(id, "evt_"))
        rc = tg_errf(err, TG_EINVAL, "The event has no id like \"evt_...\".");
    else if (type == NULL || type[0] == '\0' || strlen(type) >= TG_STRIPE_TYPE_MAX)
        rc = tg_errf(err, TG_EINVAL, "The event has no type.");
    else if (!json_is_integer(created) || json_integer_value(created) < 0)
        rc = tg_errf(err, TG_EINVAL, "The event has no created time.");
    else if (!json_is_object(obj))
        rc = tg_errf(err, TG_EINVAL, "The event has no data.object.");
    else {
        tg_stripe_event_row_t row = {0};
        snprintf(row.id, sizeof(row.id), "%s", id);
        snprintf(row.type, sizeof(row.type), "%s", type);
        row.created = json_integer_value(created);
        const char *oid = jstr(obj, "id");
        snprintf(row.object_id, sizeof(row.object_id), "%s", valid_id(oid, NULL) ? oid : "");
        row.received_at = now_s;
        row.payload = (char *)body; /* stored as received: the bytes that were signed */
        row.payload_len = len;
        int inserted = 0;
        rc = tg_store_stripe_event_insert(d->store, &row, &inserted, err);
        if (rc == 0) {
            snprintf(out->id, sizeof(out->id), "%s", id);
            snprintf(out->type, sizeof(out->type), "%s", type);
            out->duplicate = !inserted;
        }
    }
    json_decref(ev);
    return rc;
}

/* ---- the decision ---- */

static int is(const char *a, const char *b)
{
    return a != NULL && strcmp(a, b) == 0;
}

void tg_dunning_decide(const tg_dunning_input_t *in, tg_dunning_decision_t *out)
{
    memset(out, 0, sizeof(*out));
    int dunning_suspended = is(in->status, "suspended") && in->held;
    int eligible = is(in->status, "active") || is(in->status, "trialing") || is(in->status, "past_due") ||
                   dunning_suspended;
    if (!eligible) {
        snprintf(out->reason, sizeof(out->reason), "the customer is %s by the owner: left as is", in->status);
        return;
    }
    const tg_stripe_debt_t *b = &in->debt;
    int owes = b->failed_attempts > 0 || b->uncollectible || b->action_required;
    if (!owes) {
        if (is(in->status, "past_due") || dunning_suspended) {
            out->change = 1;
            snprintf(out->status, sizeof(out->status), "%s", in->trial_end > in->now_s ? "trialing" : "active");
            snprintf(out->reason, sizeof(out->reason), "no unpaid invoice left");
        }
        return;
    }
    int64_t since = in->past_due_since != 0 ? in->past_due_since : in->now_s;
    out->past_due_since = since;
    int suspend = 1;
    if (b->uncollectible)
        snprintf(out->reason, sizeof(out->reason), "an invoice was marked uncollectible");
    else if (b->failed_attempts >= in->suspend_after_failures)
        snprintf(out->reason, sizeof(out->reason), "%" PRId64 " failed payments (dunning.suspend_after_failures: %d)",
                 b->failed_attempts, in->suspend_after_failures);
    else if (in->now_s >= since + (int64_t)in->grace_days * DAY_S)
        snprintf(out->reason, sizeof(out->reason), "past due for %d days (dunning.grace_days)", in->grace_days);
    else {
        suspend = 0;
        if (b->failed_attempts > 0)
            snprintf(out->reason, sizeof(out->reason), "payment failed (%" PRId64 " of %d before suspension)",
                     b->failed_attempts, in->suspend_after_failures);
        else
            snprintf(out->reason, sizeof(out->reason), "the payment needs the customer's action");
    }
    out->held = suspend;
    snprintf(out->status, sizeof(out->status), "%s", suspend ? "suspended" : "past_due");
    out->change = !is(in->status, out->status) || in->held != out->held || in->past_due_since != since;
}

/* ---- applying ---- */

static int status_rank(const char *s)
{
    if (is(s, "paid") || is(s, "void"))
        return 3;
    if (is(s, "uncollectible"))
        return 2;
    if (is(s, "open"))
        return 1;
    return 0; /* draft, or unknown */
}

/* The tollgate customer an invoice belongs to, from metadata[tollgate_customer]; for invoices
 * tollgate did not create (made in Stripe's dashboard), from invoice.customer through the map the
 * outbox wrote when it created the Stripe customer (src/payments/outbox.c), into buf. */
static int invoice_customer(const tg_payments_deps_t *d, json_t *inv, char buf[TG_ID_MAX], const char **out,
                            tg_err_t *err)
{
    const char *c = jstr(json_object_get(inv, "metadata"), "tollgate_customer");
    if (c == NULL) {
        json_t *sd = json_object_get(json_object_get(inv, "parent"), "subscription_details");
        c = jstr(json_object_get(sd, "metadata"), "tollgate_customer");
    }
    const char *stripe_customer = jstr(inv, "customer");
    *out = c;
    if (c != NULL || stripe_customer == NULL)
        return 0;
    tg_err_t e = {0};
    int rc = tg_store_stripe_customer_owner(d->store, stripe_customer, buf, &e);
    if (rc == 0)
        *out = buf;
    /* a database error leaves the event to be applied again, not "unknown" */
    return rc == 0 || rc == TG_ENOTFOUND ? 0 : tg_errf(err, rc, "%s", e.msg);
}

typedef struct applied {
    char customer_id[TG_ID_MAX];
    char outcome[TG_OUTCOME_MAX];
    int transition;              /* 1: the customer below must go to the directory */
    tg_customer_t customer;      /* its new state */
    int held;
} applied_t;

static void append(applied_t *ap, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void append(applied_t *ap, const char *fmt, ...)
{
    size_t used = strlen(ap->outcome);
    va_list va;
    va_start(va, fmt);
    vsnprintf(ap->outcome + used, sizeof(ap->outcome) - used, fmt, va);
    va_end(va);
}

/* Re-derives the customer's status from their invoices and stores a change (in the caller's
 * transaction). */
static int apply_dunning(const tg_payments_deps_t *d, tg_customer_t *c, const char *source, int64_t now_s,
                         applied_t *ap, tg_err_t *err)
{
    tg_dunning_row_t row;
    int found = 0, rc;
    if ((rc = tg_store_dunning_get(d->store, c->id, &row, &found, err)) != 0)
        return rc;
    tg_dunning_input_t in = {c->status, c->trial_end, found ? row.held : 0, found ? row.past_due_since : 0,
                             {0}, now_s, d->cfg->dunning.grace_days, d->cfg->dunning.suspend_after_failures};
    if ((rc = tg_store_stripe_debt(d->store, c->id, &in.debt, err)) != 0)
        return rc;
    tg_dunning_decision_t dec;
    tg_dunning_decide(&in, &dec);
    if (!dec.change) {
        append(ap, "; customer stays %s", c->status);
        return 0;
    }
    char from[TG_STATUS_MAX];
    snprintf(from, sizeof(from), "%s", c->status);
    if (dec.past_due_since == 0)
        rc = tg_store_dunning_clear(d->store, c->id, err);
    else {
        tg_dunning_row_t nr = {0};
        snprintf(nr.customer_id, sizeof(nr.customer_id), "%s", c->id);
        nr.past_due_since = dec.past_due_since;
        nr.held = dec.held;
        rc = tg_store_dunning_put(d->store, &nr, err);
    }
    if (rc == 0 && strcmp(from, dec.status) != 0) {
        snprintf(c->status, sizeof(c->status), "%s", dec.status);
        if ((rc = tg_store_customer_update(d->store, c, err)) == 0)
            rc = tg_store_status_history_add(d->store, c->id, from, dec.status, dec.reason, source, now_s, err);
    }
    if (rc != 0)
        return rc;
    ap->transition = 1;
    ap->customer = *c;
    ap->held = dec.held;
    append(ap, "; customer %s -> %s: %s", from, dec.status, dec.reason);
    return 0;
}

/* billing: tollgate - the tollgate invoice a Stripe invoice was made from
 * (metadata[tollgate_invoice]) follows it: paid, uncollectible or void. Only an open tollgate
 * invoice of the same customer moves; anything else is said in the outcome, not an error. */
static int sync_tollgate_invoice(const tg_payments_deps_t *d, json_t *inv, const char *status, const char *customer_id,
                                 int64_t now_s, applied_t *ap, tg_err_t *err)
{
    const char *tid = jstr(json_object_get(inv, "metadata"), "tollgate_invoice");
    const char *to = is(status, "paid") ? "paid" : is(status, "uncollectible") ? "uncollectible" : is(status, "void") ? "void" : NULL;
    if (tid == NULL || to == NULL || strlen(tid) >= TG_ID_MAX)
        return 0;
    tg_invoice_t ti;
    memset(&ti, 0, sizeof(ti));
    tg_err_t e = {0};
    int rc = tg_store_invoice_get(d->store, tid, &ti, &e);
    if (rc == TG_ENOTFOUND) {
        append(ap, "; tollgate invoice %.40s unknown", tid);
        return 0;
    }
    if (rc != 0)
        return tg_errf(err, rc, "%s", e.msg);
    if (strcmp(ti.customer_id, customer_id) != 0)
        append(ap, "; tollgate invoice %s belongs to another customer: left as is", ti.id);
    else if (strcmp(ti.status, to) == 0)
        append(ap, "; tollgate invoice %s already %s", ti.id, to);
    else if ((rc = tg_store_invoice_transition(d->store, ti.id, to, now_s, &e)) == TG_ESTATE) {
        append(ap, "; tollgate invoice %s is %s: not marked %s", ti.id, ti.status, to);
        rc = 0;
    } else if (rc != 0) {
        tg_invoice_clear(&ti);
        return tg_errf(err, rc, "%s", e.msg);
    } else {
        append(ap, "; tollgate invoice %s marked %s", ti.id, to);
        /* Stripe's amounts are in the currency's minor unit; tollgate's totals in nano-units. */
        json_t *paid = json_object_get(inv, "amount_paid");
        int digits = tg_stripe_currency_digits(ti.currency);
        int64_t unit = 1;
        for (int i = digits; i >= 0 && i < TG_MONEY_DIGITS; i++)
            unit *= 10;
        if (is(to, "paid") && json_is_integer(paid) && digits >= 0 &&
            (ti.total % unit != 0 || ti.total / unit != json_integer_value(paid)))
            append(ap, " (Stripe collected %" JSON_INTEGER_FORMAT " minor units, the invoice's total is %" PRId64
                       " nano-units: check it)",
                   json_integer_value(paid), ti.total);
    }
    tg_invoice_clear(&ti);
    return 0;
}

static int apply_invoice(const tg_payments_deps_t *d, const tg_stripe_event_row_t *e, json_t *inv, int64_t now_s,
                         applied_t *ap, tg_err_t *err)
{
    char owner[TG_ID_MAX];
    const char *invoice_id = jstr(inv, "id"), *cust = NULL;
    int looked = invoice_customer(d, inv, owner, &cust, err);
    if (looked != 0)
        return looked;
    if (!valid_id(invoice_id, "in_")) {
        snprintf(ap->outcome, sizeof(ap->outcome), "ignored: the invoice has no id");
        return 0;
    }
    if (cust == NULL || strlen(cust) >= TG_ID_MAX) {
        snprintf(ap->outcome, sizeof(ap->outcome), "unknown_customer: no metadata[tollgate_customer]");
        return 0;
    }
    tg_customer_t c;
    tg_err_t nf = {0};
    int rc = tg_store_customer_get(d->store, cust, &c, &nf);
    if (rc == TG_ENOTFOUND) {
        snprintf(ap->outcome, sizeof(ap->outcome), "unknown_customer: %.64s", cust);
        return 0;
    }
    if (rc != 0)
        return tg_errf(err, rc, "%s", nf.msg);
    snprintf(ap->customer_id, sizeof(ap->customer_id), "%s", c.id);

    /* The invoice's state as this event tells it, from the object itself. */
    const char *type = e->type;
    const char *status = jstr(inv, "status");
    if (status == NULL)
        status = is(type, "invoice.paid") ? "paid" : is(type, "invoice.marked_uncollectible") ? "uncollectible"
                                                   : is(type, "invoice.voided")               ? "void"
                                                                                              : "open";
    json_t *ac = json_object_get(inv, "attempt_count");
    int64_t attempts = json_is_integer(ac) && json_integer_value(ac) > 0 ? json_integer_value(ac) : 0;
    tg_stripe_invoice_state_t cur, next = {0};
    int found = 0;
    if ((rc = tg_store_stripe_invoice_get(d->store, invoice_id, &cur, &found, err)) != 0)
        return rc;
    snprintf(next.invoice_id, sizeof(next.invoice_id), "%s", invoice_id);
    snprintf(next.customer_id, sizeof(next.customer_id), "%s", c.id);
    snprintf(next.status, sizeof(next.status), "%s", status);
    next.failed_attempts = is(type, "invoice.payment_failed") && attempts == 0 ? (found ? cur.failed_attempts : 0) + 1
                                                                               : attempts;
    next.action_required = is(type, "invoice.payment_action_required");
    snprintf(next.event_id, sizeof(next.event_id), "%s", e->id);
    next.updated_at = now_s;
    if (found) {
        if (status_rank(next.status) < status_rank(cur.status)) {
            snprintf(ap->outcome, sizeof(ap->outcome), "stale: invoice %.64s is already %s", invoice_id, cur.status);
            return apply_dunning(d, &c, e->id, now_s, ap, err);
        }
        if (status_rank(next.status) == status_rank(cur.status)) {
            if (cur.failed_attempts > next.failed_attempts)
                next.failed_attempts = cur.failed_attempts; /* attempts only grow */
            /* a later failed attempt supersedes an action request; a repeat keeps it */
            if (!next.action_required && !is(type, "invoice.payment_failed"))
                next.action_required = cur.action_required;
        }
    }
    if ((rc = tg_store_stripe_invoice_put(d->store, &next, err)) != 0)
        return rc;
    snprintf(ap->outcome, sizeof(ap->outcome), "invoice %.64s %s, %" PRId64 " failed attempt%s", invoice_id,
             next.status, next.failed_attempts, next.failed_attempts == 1 ? "" : "s");
    if ((rc = sync_tollgate_invoice(d, inv, next.status, c.id, now_s, ap, err)) != 0)
        return rc;
    return apply_dunning(d, &c, e->id, now_s, ap, err);
}

/* checkout.session.completed: a Checkout Session in setup mode whose status is complete means the
 * customer saved a payment method (Stripe attaches it to session.customer). Decided from the
 * session itself: another mode, or a session not complete, changes nothing. The first session
 * recorded wins (a replay or a second card keeps the original time). on_file_at is the event's
 * created time (when Stripe completed the session), not the arrival time. */
static int apply_checkout(const tg_payments_deps_t *d, const tg_stripe_event_row_t *e, json_t *cs, applied_t *ap,
                          tg_err_t *err)
{
    const char *id = jstr(cs, "id"), *mode = jstr(cs, "mode"), *status = jstr(cs, "status");
    if (!valid_id(id, "cs_") || mode == NULL || strcmp(mode, "setup") != 0 || status == NULL ||
        strcmp(status, "complete") != 0) {
        snprintf(ap->outcome, sizeof(ap->outcome), "ignored: not a completed setup session");
        return 0;
    }
    char owner[TG_ID_MAX];
    const char *cust = NULL;
    int rc = invoice_customer(d, cs, owner, &cust, err); /* metadata[tollgate_customer], else session.customer */
    if (rc != 0)
        return rc;
    if (cust == NULL || strlen(cust) >= TG_ID_MAX) {
        snprintf(ap->outcome, sizeof(ap->outcome), "unknown_customer: no metadata[tollgate_customer]");
        return 0;
    }
    tg_customer_t c;
    tg_err_t nf = {0};
    rc = tg_store_customer_get(d->store, cust, &c, &nf);
    if (rc == TG_ENOTFOUND) {
        snprintf(ap->outcome, sizeof(ap->outcome), "unknown_customer: %.64s", cust);
        return 0;
    }
    if (rc != 0)
        return tg_errf(err, rc, "%s", nf.msg);
    snprintf(ap->customer_id, sizeof(ap->customer_id), "%s", c.id);
    int inserted = 0;
    if ((rc = tg_store_payment_method_put(d->store, c.id, e->created, id, e->id, &inserted, err)) != 0)
        return rc;
    snprintf(ap->outcome, sizeof(ap->outcome), "%s", inserted ? "payment method on file" : "payment method already on file");
    if (strcmp(c.status, "incomplete") != 0)
        return 0;
    /* A requires_payment_method plan starts now: its trial (if granted at sign-up) from the
     * card's time, else paid from that time (invoice.c bills the base fee from trial_end). */
    int64_t at = 0;
    if ((rc = tg_store_payment_method_get(d->store, c.id, &at, err)) != 0)
        return rc;
    const tg_plan_t *plan = tg_config_find_plan(d->cfg, c.plan_id);
    int trial = c.trial_end == TG_TRIAL_AT_CARD && plan != NULL && plan->trial_days > 0;
    snprintf(c.status, sizeof(c.status), "%s", trial ? "trialing" : "active");
    c.trial_end = at + (trial ? (int64_t)plan->trial_days * DAY_S : 0);
    char reason[TG_OUTCOME_MAX];
    snprintf(reason, sizeof(reason), "payment method on file%s", trial ? ": the trial starts" : "");
    if ((rc = tg_store_customer_update(d->store, &c, err)) != 0 ||
        (rc = tg_store_status_history_add(d->store, c.id, "incomplete", c.status, reason, e->id, e->created, err)) != 0)
        return rc;
    append(ap, "; customer incomplete -> %s", c.status);
    /* billing: stripe: the plan starts now, so does its Stripe subscription (same transaction) */
    tg_sub_ctx_t x = {.cfg = d->cfg, .store = d->store, .stripe_customers = d->cfg->stripe.enabled};
    if ((rc = tg_sub_stripe_subscribe(&x, &c, 0, err)) != 0)
        return rc;
    ap->transition = 1;
    ap->customer = c;
    ap->held = 0;
    return 0;
}

/* customer.subscription.updated / .deleted (billing: stripe): records the subscription's status
 * (migration 18), decided from the object, not the arrival order: canceled is final (Stripe never
 * revives a canceled subscription), and otherwise the event created last wins (an older event
 * arriving late changes nothing). A subscription tollgate did not make (not in its records and no
 * metadata[tollgate_customer]) is marked unknown_subscription, not an error.
 *
 * A subscription that ends in Stripe while its tollgate customer still has a plan billed in
 * Stripe (deleted in Stripe's dashboard, or by Stripe's own "cancel after failed retries"
 * setting) does not cancel the customer: tollgate decides access, and its dunning already
 * suspends a customer who does not pay; one click in Stripe's dashboard must not silently cut a
 * paying customer off. It is recorded in the customer's status history (the status unchanged,
 * the reason saying what happened) and shown as the customer's stripe.subscription, so the owner
 * sees that their usage is no longer billed and decides (cancel in tollgate, or subscribe again).
 * The end tollgate asked for (a cancellation, a move to a plan without prices) is expected and
 * recorded only. */
static int apply_subscription(const tg_payments_deps_t *d, const tg_stripe_event_row_t *e, json_t *sub,
                              int64_t now_s, applied_t *ap, tg_err_t *err)
{
    const char *id = jstr(sub, "id"), *status = jstr(sub, "status");
    if (status == NULL && is(e->type, "customer.subscription.deleted"))
        status = "canceled";
    if (!valid_id(id, "sub_") || status == NULL || status[0] == '\0' || strlen(status) >= TG_STRIPE_SUB_STATUS_MAX) {
        snprintf(ap->outcome, sizeof(ap->outcome), "ignored: the subscription has no id or no status");
        return 0;
    }
    tg_stripe_subscription_t cur;
    int found = 0, rc;
    if ((rc = tg_store_stripe_subscription_get(d->store, id, &cur, &found, err)) != 0)
        return rc;
    const char *cust = found ? cur.customer_id : jstr(json_object_get(sub, "metadata"), "tollgate_customer");
    if (cust == NULL || strlen(cust) >= TG_ID_MAX) {
        snprintf(ap->outcome, sizeof(ap->outcome), "unknown_subscription: %.64s was not made by tollgate", id);
        return 0;
    }
    tg_customer_t c;
    tg_err_t nf = {0};
    rc = tg_store_customer_get(d->store, cust, &c, &nf);
    if (rc == TG_ENOTFOUND) {
        snprintf(ap->outcome, sizeof(ap->outcome), "unknown_subscription: %.64s names the unknown customer %.64s", id,
                 cust);
        return 0;
    }
    if (rc != 0)
        return tg_errf(err, rc, "%s", nf.msg);
    snprintf(ap->customer_id, sizeof(ap->customer_id), "%s", c.id);
    /* canceled and incomplete_expired are final at Stripe: nothing moves a subscription out of them */
    int now_canceled = is(status, "canceled"),
        was_canceled = found && (is(cur.status, "canceled") || is(cur.status, "incomplete_expired"));
    if (was_canceled) {
        snprintf(ap->outcome, sizeof(ap->outcome), "stale: subscription %.64s is %s already", id, cur.status);
        return 0;
    }
    if (found && !now_canceled && !is(status, "incomplete_expired") && e->created < cur.status_at) {
        snprintf(ap->outcome, sizeof(ap->outcome), "stale: subscription %.64s was %s at a later event", id,
                 cur.status);
        return 0;
    }
    tg_stripe_subscription_t next;
    memset(&next, 0, sizeof(next));
    snprintf(next.subscription_id, sizeof(next.subscription_id), "%s", id);
    snprintf(next.customer_id, sizeof(next.customer_id), "%s", c.id);
    snprintf(next.status, sizeof(next.status), "%s", status);
    next.status_at = e->created;
    snprintf(next.event_id, sizeof(next.event_id), "%s", e->id);
    next.updated_at = now_s;
    if ((rc = tg_store_stripe_subscription_put(d->store, &next, err)) != 0)
        return rc;
    snprintf(ap->outcome, sizeof(ap->outcome), "subscription %.64s %s", id, status);
    if (!now_canceled)
        return 0;
    /* Ended in Stripe: expected when tollgate asked for it, else shown to the owner. */
    tg_stripe_subscription_t latest;
    int have_latest = 0;
    if ((rc = tg_store_stripe_subscription_latest(d->store, c.id, &latest, &have_latest, err)) != 0)
        return rc;
    const tg_plan_t *plan = tg_config_find_plan(d->cfg, c.plan_id);
    int expected = is(c.status, "canceled") || c.cancel_at != 0 || !tg_outbox_plan_has_items(plan) ||
                   (have_latest && strcmp(latest.subscription_id, id) != 0);
    if (expected) {
        append(ap, "; as tollgate asked");
        return 0;
    }
    char reason[TG_OUTCOME_MAX];
    snprintf(reason, sizeof(reason),
             "the Stripe subscription %.64s was canceled in Stripe: the customer stays %s, and their usage is no "
             "longer billed in Stripe",
             id, c.status);
    if ((rc = tg_store_status_history_add(d->store, c.id, c.status, c.status, reason, e->id, e->created, err)) != 0)
        return rc;
    append(ap, "; canceled outside tollgate: the customer stays %s (see the status history)", c.status);
    return 0;
}

/* Applies one event inside a transaction; ap says what to do after the commit. */
static int apply_event(const tg_payments_deps_t *d, const tg_stripe_event_row_t *e, int64_t now_s, applied_t *ap,
                       tg_err_t *err)
{
    json_t *ev = json_loadb(e->payload, e->payload_len, 0, NULL);
    json_t *obj = json_object_get(json_object_get(ev, "data"), "object");
    int rc = 0;
    if (!json_is_object(obj))
        snprintf(ap->outcome, sizeof(ap->outcome), "ignored: unreadable payload");
    else if (is(e->type, "invoice.paid") || is(e->type, "invoice.payment_failed") ||
             is(e->type, "invoice.payment_action_required") || is(e->type, "invoice.marked_uncollectible") ||
             is(e->type, "invoice.voided"))
        rc = apply_invoice(d, e, obj, now_s, ap, err);
    else if (is(e->type, "checkout.session.completed"))
        rc = apply_checkout(d, e, obj, ap, err);
    else if (is(e->type, "customer.subscription.updated") || is(e->type, "customer.subscription.deleted"))
        rc = apply_subscription(d, e, obj, now_s, ap, err);
    else
        snprintf(ap->outcome, sizeof(ap->outcome), "ignored: %s is not an event tollgate handles", e->type);
    json_decref(ev);
    return rc;
}

/* After the commit: the gateway's directory, as the admin API does after its store write. The
 * hold goes on before a suspension is visible and off after a resumption is. */
static void publish(const tg_payments_deps_t *d, const applied_t *ap)
{
    if (!ap->transition || d->accounts == NULL)
        return;
    tg_err_t err = {0};
    if (ap->held)
        tg_accounts_set_payment_hold(d->accounts, ap->customer.id, 1);
    tg_accounts_put_customer(d->accounts, &ap->customer, &err);
    if (!ap->held)
        tg_accounts_set_payment_hold(d->accounts, ap->customer.id, 0);
}

int tg_stripe_events_run(const tg_payments_deps_t *d, size_t max, int64_t now_s, size_t *applied, tg_err_t *err)
{
    *applied = 0;
    for (size_t i = 0; i < max; i++) {
        tg_stripe_event_row_t e;
        int found = 0;
        /* A look first, so that an idle tick opens no transaction; then the event is taken again
         * inside the transaction that applies and marks it: on a database that several gateways
         * share, that is what keeps the others from applying events meanwhile (store_payments.h).
         * The second may be another event, or none when another node is at work: its turn. */
        int rc = tg_store_stripe_event_next(d->store, &e, &found, err);
        if (rc != 0 || !found)
            return rc;
        free(e.payload);
        if ((rc = tg_store_tx_begin(d->store, err)) != 0)
            return rc;
        if ((rc = tg_store_stripe_event_next(d->store, &e, &found, err)) != 0 || !found) {
            tg_store_tx_rollback(d->store);
            return rc;
        }
        applied_t ap;
        memset(&ap, 0, sizeof(ap));
        tg_err_t why = {0};
        rc = apply_event(d, &e, now_s, &ap, &why);
        if (rc == 0)
            rc = tg_store_stripe_event_mark(d->store, e.id, now_s, ap.customer_id, ap.outcome, "", &why);
        if (rc == 0)
            rc = tg_store_tx_commit(d->store, &why);
        if (rc != 0) {
            tg_store_tx_rollback(d->store);
            /* It stays pending with its error; the next tick tries again. */
            tg_store_stripe_event_mark(d->store, e.id, 0, "", "", why.msg[0] ? why.msg : "failed", NULL);
            tg_errf(err, rc, "applying Stripe event %s: %s", e.id, why.msg);
            free(e.payload);
            return rc;
        }
        publish(d, &ap);
        free(e.payload);
        (*applied)++;
    }
    return 0;
}

/* ---- grace_days and start-up ---- */

typedef struct sweep_ctx {
    const tg_payments_deps_t *d;
    int64_t now_s;
    char due[64][TG_ID_MAX]; /* at most 64 a sweep; the next tick takes the rest */
    size_t n;
} sweep_ctx_t;

static int sweep_cb(const tg_dunning_row_t *r, void *arg)
{
    sweep_ctx_t *s = arg;
    if (!r->held && s->now_s >= r->past_due_since + (int64_t)s->d->cfg->dunning.grace_days * DAY_S)
        snprintf(s->due[s->n++], TG_ID_MAX, "%s", r->customer_id);
    return s->n == sizeof(s->due) / sizeof(s->due[0]);
}

int tg_dunning_sweep(const tg_payments_deps_t *d, int64_t now_s, tg_err_t *err)
{
    sweep_ctx_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory");
    s->d = d;
    s->now_s = now_s;
    int rc = tg_store_dunning_list(d->store, sweep_cb, s, err);
    for (size_t i = 0; rc == 0 && i < s->n; i++) {
        tg_customer_t c;
        applied_t ap;
        memset(&ap, 0, sizeof(ap));
        if ((rc = tg_store_tx_begin(d->store, err)) != 0)
            break;
        rc = tg_store_customer_get(d->store, s->due[i], &c, err);
        if (rc == TG_ENOTFOUND)
            rc = tg_store_dunning_clear(d->store, s->due[i], err);
        else if (rc == 0)
            rc = apply_dunning(d, &c, "dunning.grace_days", now_s, &ap, err);
        if (rc == 0)
            rc = tg_store_tx_commit(d->store, err);
        if (rc != 0) {
            tg_store_tx_rollback(d->store);
            break;
        }
        publish(d, &ap);
    }
    free(s);
    return rc;
}

/* The customers the store holds, sorted, to answer "held?" for each one in the directory. */
typedef struct held_set {
    char (*ids)[TG_ID_MAX];
    size_t n, cap;
    int out_of_memory;
} held_set_t;

static int collect_held_cb(const tg_dunning_row_t *r, void *arg)
{
    held_set_t *h = arg;
    if (!r->held)
        return 0;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        void *ids = realloc(h->ids, cap * sizeof(*h->ids));
        if (ids == NULL) {
            h->out_of_memory = 1;
            return 1;
        }
        h->ids = ids;
        h->cap = cap;
    }
    snprintf(h->ids[h->n++], TG_ID_MAX, "%s", r->customer_id);
    return 0;
}

static int compare_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

static int is_held(const char *customer_id, void *arg)
{
    const held_set_t *h = arg;
    return h->n > 0 && bsearch(customer_id, h->ids, h->n, sizeof(*h->ids), compare_ids) != NULL;
}

int tg_dunning_restore_holds(tg_store_t *st, tg_accounts_t *accounts, tg_err_t *err)
{
    held_set_t h = {0};
    int rc = tg_store_dunning_list(st, collect_held_cb, &h, err);
    if (rc == 0 && h.out_of_memory)
        rc = tg_errf(err, TG_ENOMEM, "out of memory listing held customers");
    if (rc == 0) {
        if (h.n > 0) /* qsort's base must not be NULL, even for no elements (UBSan: nonnull) */
            qsort(h.ids, h.n, sizeof(*h.ids), compare_ids);
        tg_accounts_replace_holds(accounts, is_held, &h);
    }
    free(h.ids);
    return rc;
}
