/* admin_customers.c - customers: create, read, update, plan changes with proration,
 * cancellation, scheduled changes, and usage reports. */
#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/admin_int.h"
#include "billing/invoice.h"
#include "payments/outbox.h"
#include "billing/pricing.h"
#include "gateway/apikey.h"
#include "metrics/metrics.h"
#include "store/store_payments.h"
#include "util/clock.h"
#include "util/period.h"

/* ---- customers ---- */

const char *tg_adm_display_status(const tg_customer_t *c, int64_t now)
{
    if (strcmp(c->status, "trialing") == 0 && c->trial_end <= now)
        return "active";
    return c->status;
}

json_t *tg_adm_customer_json(tg_admin_t *a, const tg_customer_t *c)
{
    int64_t now = tg_adm_now_s(), ps = 0, pe = 0;
    const tg_plan_t *plan = tg_config_find_plan(a->d.cfg, c->plan_id);
    if (plan != NULL)
        tg_period_bounds(c->anchor_at, plan->interval, now, &ps, &pe);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:{s:o,s:o},s:o,s:o,s:o}", "id", c->id, "email", c->email,
                     "name", c->name, "plan", c->plan_id, "status", tg_adm_display_status(c, now), "created_at",
                     tg_adm_json_time(c->created_at), "trial_end", tg_adm_json_time(c->trial_end), "current_period", "start",
                     tg_adm_json_time(ps), "end", tg_adm_json_time(pe), "pending_plan",
                     c->pending_plan_id[0] ? json_string(c->pending_plan_id) : json_null(), "pending_at",
                     tg_adm_json_time(c->pending_at), "cancel_at", tg_adm_json_time(c->cancel_at));
}

int tg_adm_valid_email(const char *e)
{
    const char *at = strchr(e, '@');
    size_t n = strlen(e);
    if (at == NULL || at == e || n >= TG_EMAIL_MAX || strchr(at + 1, '@') != NULL)
        return 0;
    const char *dot = strrchr(at, '.');
    if (dot == NULL || dot == at + 1 || dot[1] == '\0')
        return 0;
    for (const char *p = e; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == '"' || *p == ',')
            return 0;
    return 1;
}

int tg_adm_new_customer(tg_admin_t *a, const char *email, const char *name, const tg_plan_t *plan, tg_customer_t *c,
                        tg_admin_response_t *res)
{
    return tg_adm_new_customer_trial(a, email, name, plan, 1, c, res);
}

int tg_adm_new_customer_trial(tg_admin_t *a, const char *email, const char *name, const tg_plan_t *plan,
                              int with_trial, tg_customer_t *c, tg_admin_response_t *res)
{
    memset(c, 0, sizeof(*c));
    tg_adm_random_id("cus_", c->id, sizeof(c->id));
    snprintf(c->email, sizeof(c->email), "%s", email);
    snprintf(c->name, sizeof(c->name), "%s", name != NULL ? name : "");
    snprintf(c->plan_id, sizeof(c->plan_id), "%s", plan->id);
    c->created_at = c->anchor_at = tg_adm_now_s();
    if (plan->trial_days > 0 && with_trial) {
        snprintf(c->status, sizeof(c->status), "trialing");
        c->trial_end = c->created_at + (int64_t)plan->trial_days * 86400;
    } else {
        snprintf(c->status, sizeof(c->status), "active");
    }
    tg_err_t err = {0};
    int rc = tg_store_customer_insert(a->d.store, c, &err);
    if (rc == TG_EEXIST)
        tg_adm_reply_error(res, 409, "conflict", "A customer with the email %s exists already.", email);
    else if (rc != 0)
        tg_adm_reply_error(res, 500, "internal_error", "Storing the customer failed: %s", err.msg);
    /* The Stripe customer: a row in the outbox, in the caller's transaction (see
     * tg_adm_create_customer and the portal's sign-up), sent later by the outbox thread. */
    else if (a->d.outbox != NULL && (rc = tg_outbox_enqueue_customer(a->d.store, c, &err)) != 0)
        tg_adm_reply_error(res, 500, "internal_error", "Queuing the Stripe customer failed: %s", err.msg);
    else if ((rc = tg_accounts_put_customer(a->d.accounts, c, &err)) != 0)
        tg_adm_reply_error(res, 500, "internal_error", "%s", err.msg);
    return rc;
}

void tg_adm_create_customer(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    int bad = 0;
    const char *email = tg_adm_opt_string(body, "email", &bad), *name = tg_adm_opt_string(body, "name", &bad),
               *plan_id = tg_adm_opt_string(body, "plan", &bad);
    const tg_plan_t *plan = plan_id != NULL ? tg_config_find_plan(a->d.cfg, plan_id) : NULL;
    tg_customer_t c;
    if (bad)
        tg_adm_reply_error(res, 400, "bad_request", "email, name and plan must be strings.");
    else if (email == NULL || !tg_adm_valid_email(email))
        tg_adm_reply_error(res, 400, "bad_request", "email: a valid email address is required.");
    else if (name != NULL && strlen(name) >= TG_NAME_MAX)
        tg_adm_reply_error(res, 400, "bad_request", "name: at most %d characters.", TG_NAME_MAX - 1);
    else if (plan == NULL)
        tg_adm_reply_error(res, 400, "bad_request", "plan: \"%s\" is not a plan; plans are defined in the configuration.",
                           plan_id != NULL ? plan_id : "");
    else {
        /* One transaction: the customer and its outbox row commit together or not at all. */
        tg_err_t err = {0};
        if (tg_store_tx_begin(a->d.store, &err) != 0)
            tg_adm_reply_error(res, 500, "internal_error", "%s", err.msg);
        else if (tg_adm_new_customer(a, email, name, plan, &c, res) != 0)
            tg_store_tx_rollback(a->d.store);
        else if (tg_store_tx_commit(a->d.store, &err) != 0)
            /* The directory may hold the customer now, without a key: nothing authenticates. */
            tg_adm_reply_error(res, 500, "internal_error", "Storing the customer failed: %s", err.msg);
        else {
            tg_outbox_wake(a->d.outbox);
            tg_adm_reply_json(res, 201, tg_adm_customer_admin_json(a, &c));
        }
    }
    json_decref(body);
}

int tg_adm_list_customer_cb(const tg_customer_t *c, void *arg)
{
    tg_adm_list_ctx_t *lc = arg;
    json_array_append_new(lc->arr, tg_adm_customer_admin_json(lc->a, c));
    return 0;
}

int tg_adm_load_customer(tg_admin_t *a, const tg_adm_segs_t *s, size_t idx, tg_customer_t *c, tg_admin_response_t *res)
{
    char id[TG_ID_MAX];
    tg_err_t err = {0};
    if (tg_adm_seg_copy(s, idx, id, sizeof(id)) != 0) {
        tg_adm_reply_error(res, 404, "not_found", "No such customer.");
        return -1;
    }
    int rc = tg_store_customer_get(a->d.store, id, c, &err);
    if (rc == TG_ENOTFOUND) {
        tg_adm_reply_error(res, 404, "not_found", "No customer %s.", id);
        return -1;
    }
    if (rc != 0) {
        tg_adm_reply_error(res, 500, "internal_error", "Reading the customer failed: %s", err.msg);
        return -1;
    }
    return 0;
}

/* A plan's base price per month, to tell upgrades from downgrades across intervals. */
__int128 tg_adm_monthly_price(const tg_plan_t *p)
{
    return p->interval == TG_INTERVAL_YEAR ? (__int128)p->price / 12 : (__int128)p->price;
}

int tg_adm_add_item_row(tg_admin_t *a, const tg_customer_t *c, const char *desc, tg_money_t amount, const char *currency,
                    tg_err_t *err)
{
    tg_invoice_item_t it = {0};
    snprintf(it.customer_id, sizeof(it.customer_id), "%s", c->id);
    it.created_at = tg_adm_now_s();
    snprintf(it.description, sizeof(it.description), "%s", desc);
    it.amount = amount;
    snprintf(it.currency, sizeof(it.currency), "%s", currency);
    return tg_store_invoice_item_add(a->d.store, &it, err);
}

/* Changes c's plan in memory (the caller stores it). An upgrade, or "when": "now", takes effect
 * at once; during a paid period it is prorated by seconds: the old plan is charged for the time
 * it was in force and the new plan's fee, billed in full at the period's end, is credited for
 * that same time. A downgrade waits for the next period (pending_plan_id). Returns non-zero if
 * it replied with an error. */
int tg_adm_plan_change_compute(tg_admin_t *a, const tg_customer_t *c, const tg_plan_t *to, const char *when,
                               tg_adm_plan_change_t *pc, tg_admin_response_t *res)
{
    const tg_plan_t *from = tg_config_find_plan(a->d.cfg, c->plan_id);
    int64_t now = tg_adm_now_s();
    memset(pc, 0, sizeof(*pc));
    pc->from = from;
    pc->to = to;
    pc->effective_at = now;
    if (from == NULL || from == to)
        return 0;
    if (strcmp(from->currency, to->currency) != 0) {
        tg_adm_reply_error(res, 400, "bad_request", "plan: %s is billed in %s and %s in %s; a customer cannot change currency.",
                           from->id, from->currency, to->id, to->currency);
        return -1;
    }
    int64_t ps, pe;
    tg_period_bounds(c->anchor_at, from->interval, now, &ps, &pe);
    pc->upgrade = tg_adm_monthly_price(to) > tg_adm_monthly_price(from);
    if ((when != NULL && strcmp(when, "period_end") == 0) || (when == NULL && !pc->upgrade)) {
        pc->at_period_end = 1;
        pc->effective_at = pe;
        return 0;
    }
    int64_t paid_from = c->trial_end > ps ? c->trial_end : ps;
    if (now > paid_from && from->interval == to->interval) {
        if (tg_prorate(from->price, now - paid_from, pe - ps, &pc->old_part) != 0 ||
            tg_prorate(to->price, now - paid_from, pe - ps, &pc->new_credit) != 0) {
            tg_adm_reply_error(res, 400, "bad_request", "The plan change cannot be prorated.");
            return -1;
        }
        pc->prorated = 1;
        pc->new_credit = -pc->new_credit;
        snprintf(pc->old_desc, sizeof(pc->old_desc), "%s plan until the change (%" PRId64 " of %" PRId64 " days)",
                 from->name, (now - paid_from + 43199) / 86400, (pe - ps + 43199) / 86400);
        snprintf(pc->new_desc, sizeof(pc->new_desc), "%s plan credit for the time before the change", to->name);
    }
    return 0;
}

int tg_adm_change_plan(tg_admin_t *a, tg_customer_t *c, const tg_plan_t *to, const char *when, tg_admin_response_t *res)
{
    tg_adm_plan_change_t pc;
    if (tg_adm_plan_change_compute(a, c, to, when, &pc, res) != 0)
        return -1;
    tg_err_t err = {0};
    if (pc.at_period_end) {
        snprintf(c->pending_plan_id, sizeof(c->pending_plan_id), "%s", to->id);
        c->pending_at = pc.effective_at;
        return 0;
    }
    if (pc.prorated && (tg_adm_add_item_row(a, c, pc.old_desc, pc.old_part, to->currency, &err) != 0 ||
                        tg_adm_add_item_row(a, c, pc.new_desc, pc.new_credit, to->currency, &err) != 0)) {
        tg_adm_reply_error(res, 500, "internal_error", "Storing the proration failed: %s", err.msg);
        return -1;
    }
    if (pc.from != NULL && pc.from != to &&
        tg_store_plan_change_add(a->d.store, c->id, pc.from->id, to->id, pc.upgrade ? "upgrade" : "downgrade",
                                 pc.effective_at, &err) != 0) {
        tg_adm_reply_error(res, 500, "internal_error", "Recording the plan change failed: %s", err.msg);
        return -1;
    }
    snprintf(c->plan_id, sizeof(c->plan_id), "%s", to->id);
    c->pending_plan_id[0] = '\0';
    c->pending_at = 0;
    return 0;
}

void tg_adm_patch_customer(tg_admin_t *a, tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    int bad = 0;
    const char *plan_id = tg_adm_opt_string(body, "plan", &bad), *status = tg_adm_opt_string(body, "status", &bad),
               *name = tg_adm_opt_string(body, "name", &bad), *when = tg_adm_opt_string(body, "when", &bad);
    const tg_plan_t *plan = plan_id != NULL ? tg_config_find_plan(a->d.cfg, plan_id) : NULL;
    if (bad)
        tg_adm_reply_error(res, 400, "bad_request", "plan, status, name and when must be strings.");
    else if (when != NULL && strcmp(when, "now") != 0 && strcmp(when, "period_end") != 0)
        tg_adm_reply_error(res, 400, "bad_request", "when: \"now\" or \"period_end\", not \"%s\".", when);
    else if (plan_id != NULL && plan == NULL)
        tg_adm_reply_error(res, 400, "bad_request", "plan: \"%s\" is not a plan.", plan_id);
    else if (status != NULL && strcmp(status, "active") != 0 && strcmp(status, "suspended") != 0 &&
             strcmp(status, "canceled") != 0 && strcmp(status, "past_due") != 0)
        tg_adm_reply_error(res, 400, "bad_request",
                           "status: must be \"active\", \"past_due\", \"suspended\" or \"canceled\", not \"%s\".",
                           status);
    else if (name != NULL && strlen(name) >= TG_NAME_MAX)
        tg_adm_reply_error(res, 400, "bad_request", "name: at most %d characters.", TG_NAME_MAX - 1);
    else {
        /* The proration items and the customer change commit together or not at all. */
        tg_err_t err = {0};
        if (tg_store_tx_begin(a->d.store, &err) != 0) {
            tg_adm_reply_error(res, 500, "internal_error", "Updating the customer failed: %s", err.msg);
            json_decref(body);
            return;
        }
        if (plan != NULL && tg_adm_change_plan(a, c, plan, when, res) != 0) {
            tg_store_tx_rollback(a->d.store); /* tg_adm_change_plan replied */
            json_decref(body);
            return;
        }
        if (status != NULL) {
            /* Resuming during a trial returns to the trial. */
            if (strcmp(status, "active") == 0 && c->trial_end > tg_adm_now_s())
                status = "trialing";
            snprintf(c->status, sizeof(c->status), "%s", status);
            if (strcmp(status, "canceled") == 0 && c->cancel_at == 0)
                c->cancel_at = tg_adm_now_s();
        }
        int renamed = name != NULL && strcmp(name, c->name) != 0;
        if (name != NULL)
            snprintf(c->name, sizeof(c->name), "%s", name);
        /* The owner's status decision replaces dunning's: a later suspension by the owner is
         * account_suspended, not payment_required, and dunning starts afresh. A new name goes to
         * the Stripe customer through the outbox, in this transaction. */
        if ((status != NULL && tg_store_dunning_clear(a->d.store, c->id, &err) != 0) ||
            (renamed && a->d.outbox != NULL && tg_outbox_enqueue_customer_update(a->d.store, c, &err) != 0) ||
            tg_store_customer_update(a->d.store, c, &err) != 0 || tg_store_tx_commit(a->d.store, &err) != 0) {
            tg_store_tx_rollback(a->d.store);
            tg_adm_reply_error(res, 500, "internal_error", "Updating the customer failed: %s", err.msg);
        } else {
            if (status != NULL)
                tg_accounts_set_payment_hold(a->d.accounts, c->id, 0); /* before the new status is visible */
            if (renamed)
                tg_outbox_wake(a->d.outbox);
            if (tg_accounts_put_customer(a->d.accounts, c, &err) != 0)
                tg_adm_reply_error(res, 500, "internal_error", "%s", err.msg);
            else
                tg_adm_reply_json(res, 200, tg_adm_customer_admin_json(a, c));
        }
    }
    json_decref(body);
}

/* POST /v1/admin/customers/{id}/cancel {"at_period_end": true}: at the period's end access stops
 * and that period is invoiced as usual; at once, access stops now and a final invoice bills the
 * usage to date and the base fee up to now. */
void tg_adm_cancel_customer(tg_admin_t *a, tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    json_t *ape = json_object_get(body, "at_period_end");
    if (ape != NULL && !json_is_boolean(ape)) {
        tg_adm_reply_error(res, 400, "bad_request", "at_period_end must be true or false.");
        json_decref(body);
        return;
    }
    int at_end = ape == NULL || json_is_true(ape);
    const tg_plan_t *plan = tg_config_find_plan(a->d.cfg, c->plan_id);
    int64_t now = tg_adm_now_s(), ps, pe;
    tg_period_bounds(c->anchor_at, plan->interval, now, &ps, &pe);
    tg_err_t err = {0};
    if (strcmp(c->status, "canceled") == 0) {
        tg_adm_reply_error(res, 409, "conflict", "Customer %s is canceled already.", c->id);
    } else if (at_end) {
        c->cancel_at = pe;
        if (tg_store_customer_update(a->d.store, c, &err) != 0)
            tg_adm_reply_error(res, 500, "internal_error", "Canceling failed: %s", err.msg);
        else
            tg_adm_reply_json(res, 200, tg_adm_customer_json(a, c));
    } else {
        c->cancel_at = now;
        snprintf(c->status, sizeof(c->status), "canceled");
        if (tg_store_customer_update(a->d.store, c, &err) != 0 || tg_accounts_put_customer(a->d.accounts, c, &err) != 0)
            tg_adm_reply_error(res, 500, "internal_error", "Canceling failed: %s", err.msg);
        else {
            if (a->d.meter != NULL)
                tg_meter_flush(a->d.meter); /* the final invoice includes every answered call */
            if (tg_invoice_close_final(a->d.store, a->d.cfg, c, now, &err) != 0)
                tg_adm_reply_error(res, 500, "internal_error", "Canceled, but the final invoice failed: %s", err.msg);
            else
                tg_adm_reply_json(res, 200, tg_adm_customer_json(a, c));
        }
    }
    json_decref(body);
}

/* Scheduled changes: downgrades due at a period start, cancellations due at a period end. */
int tg_adm_apply_scheduled_cb(const tg_customer_t *c, void *arg)
{
    tg_admin_t *a = arg;
    int64_t now = tg_adm_now_s();
    tg_customer_t u = *c;
    int changed = 0;
    if (u.pending_plan_id[0] != '\0' && now >= u.pending_at && tg_config_find_plan(a->d.cfg, u.pending_plan_id)) {
        tg_err_t herr = {0};
        tg_store_plan_change_add(a->d.store, u.id, u.plan_id, u.pending_plan_id, "downgrade", u.pending_at, &herr);
        snprintf(u.plan_id, sizeof(u.plan_id), "%s", u.pending_plan_id);
        u.pending_plan_id[0] = '\0';
        u.pending_at = 0;
        changed = 1;
    }
    if (u.cancel_at != 0 && now >= u.cancel_at && strcmp(u.status, "canceled") != 0) {
        snprintf(u.status, sizeof(u.status), "canceled");
        changed = 1;
    }
    tg_err_t err = {0};
    if (changed && tg_store_customer_update(a->d.store, &u, &err) == 0)
        tg_accounts_put_customer(a->d.accounts, &u, &err);
    return 0;
}

/* ---- usage ---- */

typedef struct {
    json_t *metrics;
    const tg_plan_t *plan;
} usage_ctx_t;

int tg_adm_usage_total_cb(const char *metric, uint64_t units, void *arg)
{
    usage_ctx_t *u = arg;
    uint64_t included = tg_plan_included(u->plan, metric);
    json_t *m = json_pack("{s:s,s:I}", "metric", metric, "used", (json_int_t)units);
    if (included == TG_UNLIMITED) {
        json_object_set_new(m, "included", json_null());
        json_object_set_new(m, "overage", json_integer(0));
        json_object_set_new(m, "remaining", json_null());
    } else {
        json_object_set_new(m, "included", json_integer((json_int_t)included));
        json_object_set_new(m, "overage", json_integer((json_int_t)(units > included ? units - included : 0)));
        json_object_set_new(m, "remaining", json_integer((json_int_t)(units < included ? included - units : 0)));
    }
    json_array_append_new(u->metrics, m);
    return 0;
}

int tg_adm_usage_day_cb(const char *day, const char *metric, uint64_t units, void *arg)
{
    json_array_append_new(arg, json_pack("{s:s,s:s,s:I}", "day", day, "metric", metric, "units", (json_int_t)units));
    return 0;
}

/* "YYYY-MM" into the first second of that month (UTC). */
int tg_adm_parse_month(const char *q, size_t len, int64_t *out)
{
    const char *p = NULL;
    for (size_t i = 0; i + 7 <= len; i++)
        if ((i == 0 || q[i - 1] == '&') && strncmp(q + i, "period=", 7) == 0) {
            p = q + i + 7;
            break;
        }
    if (p == NULL)
        return 1; /* absent */
    if ((size_t)(q + len - p) < 7 || !isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]) ||
        !isdigit((unsigned char)p[2]) || !isdigit((unsigned char)p[3]) || p[4] != '-' ||
        !isdigit((unsigned char)p[5]) || !isdigit((unsigned char)p[6]) || (p + 7 < q + len && p[7] != '&'))
        return -1;
    int y = (p[0] - '0') * 1000 + (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
    int m = (p[5] - '0') * 10 + (p[6] - '0');
    if (m < 1 || m > 12 || y < 1970)
        return -1;
    /* the first of the month: use the period code's own calendar by stepping from the epoch */
    *out = tg_period_boundary(0, TG_INTERVAL_MONTH, (int64_t)(y - 1970) * 12 + (m - 1));
    return 0;
}

/* The largest ENDPOINTS_MAX (the store sorts them by units): unrouted paths are metered as they
 * came, so their number grows with what clients send. */
#define ENDPOINTS_MAX 100

static int usage_endpoint_cb(const char *endpoint, const char *metric, uint64_t units, void *arg)
{
    if (json_array_size(arg) >= ENDPOINTS_MAX)
        return 1;
    json_array_append_new(arg, json_pack("{s:s,s:s,s:I}", "endpoint", endpoint, "metric", metric, "units",
                                         (json_int_t)units));
    return 0;
}

void tg_adm_get_usage(tg_admin_t *a, const tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    const tg_plan_t *plan = tg_config_find_plan(a->d.cfg, c->plan_id);
    int64_t ps, pe, month = 0;
    int pm = tg_adm_parse_month(r->query, r->query != NULL ? r->query_len : 0, &month);
    if (pm < 0) {
        tg_adm_reply_error(res, 400, "bad_request", "period: expected YYYY-MM.");
        return;
    }
    if (pm == 0) {
        /* The period that starts in that month. */
        tg_period_bounds(c->anchor_at, plan->interval, month, &ps, &pe);
        if (ps < month) {
            ps = pe;
            int64_t s2, e2;
            tg_period_bounds(c->anchor_at, plan->interval, ps, &s2, &e2);
            ps = s2;
            pe = e2;
        }
    } else {
        tg_period_bounds(c->anchor_at, plan->interval, tg_adm_now_s(), &ps, &pe);
    }
    /* Read-your-writes: what the gateway has answered is committed before we count it. */
    if (a->d.meter != NULL)
        tg_meter_flush(a->d.meter);
    usage_ctx_t u = {json_array(), plan};
    json_t *daily = json_array(), *last90 = json_array(), *endpoints = json_array();
    tg_err_t err = {0};
    int64_t now = tg_adm_now_s();
    if (tg_store_usage_period(a->d.store, c->id, ps, tg_adm_usage_total_cb, &u, &err) != 0 ||
        tg_store_usage_daily(a->d.store, c->id, ps, pe, tg_adm_usage_day_cb, daily, &err) != 0 ||
        tg_store_usage_daily(a->d.store, c->id, now - 89 * 86400, now + 1, tg_adm_usage_day_cb, last90, &err) != 0 ||
        tg_store_usage_endpoints(a->d.store, c->id, ps, pe, usage_endpoint_cb, endpoints, &err) != 0) {
        json_decref(u.metrics);
        json_decref(daily);
        json_decref(last90);
        json_decref(endpoints);
        tg_adm_reply_error(res, 500, "internal_error", "Reading usage failed: %s", err.msg);
        return;
    }
    /* Every metric with an allowance is listed, used or not. */
    for (size_t i = 0; i < plan->nincluded; i++) {
        int found = 0;
        size_t k;
        json_t *m;
        json_array_foreach(u.metrics, k, m) if (strcmp(json_string_value(json_object_get(m, "metric")),
                                                       plan->included[i].metric) == 0) found = 1;
        if (!found)
            tg_adm_usage_total_cb(plan->included[i].metric, 0, &u);
    }
    tg_adm_reply_json(res, 200,
                      json_pack("{s:s,s:s,s:{s:o,s:o},s:o,s:o,s:o,s:o}", "customer", c->id, "plan", c->plan_id,
                                "period", "start", tg_adm_json_time(ps), "end", tg_adm_json_time(pe), "metrics",
                                u.metrics, "daily", daily, "endpoints", endpoints, "last_90_days", last90));
}


/* POST /v1/admin/customers/{id}/items {"description", "amount"}: a one-off charge (or, with a
 * negative amount, a credit) on the customer's next invoice. Finalized invoices never change;
 * this is how they are corrected. */
void tg_adm_add_item(tg_admin_t *a, const tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    int bad = 0;
    const char *desc = tg_adm_opt_string(body, "description", &bad), *amount = tg_adm_opt_string(body, "amount", &bad);
    const tg_plan_t *plan = tg_config_find_plan(a->d.cfg, c->plan_id);
    tg_money_t v = 0;
    tg_err_t err = {0};
    if (bad || desc == NULL || desc[0] == '\0' || strlen(desc) >= TG_NAME_MAX)
        tg_adm_reply_error(res, 400, "bad_request", "description: a non-empty string, at most %d characters.",
                           TG_NAME_MAX - 1);
    else if (amount == NULL || tg_money_parse(amount, strlen(amount), &v, &err) != 0 || v == 0)
        tg_adm_reply_error(res, 400, "bad_request", "amount: a non-zero decimal string such as \"-12.50\"%s%s.",
                           err.msg[0] ? ": " : "", err.msg);
    else if (tg_adm_add_item_row(a, c, desc, v, plan->currency, &err) != 0)
        tg_adm_reply_error(res, 500, "internal_error", "Storing the item failed: %s", err.msg);
    else {
        char buf[TG_MONEY_FMT_MAX];
        tg_money_format(v, plan->currency_digits, buf, sizeof(buf));
        tg_adm_reply_json(res, 201, json_pack("{s:s,s:s,s:s,s:s}", "customer", c->id, "description", desc, "amount",
                                              buf, "currency", plan->currency));
    }
    json_decref(body);
}
