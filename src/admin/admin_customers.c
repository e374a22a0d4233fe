/* admin_customers.c - the HTTP adapters of customers: create, read, update (plan changes),
 * cancel, one-off items, and usage reports. The rules are billing/subscriptions.c's. */
#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/admin_int.h"
#include "store/store_mail.h"
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
    const tg_plan_t *plan = tg_config_find_plan(tg_adm_cfg(a), c->plan_id);
    if (plan != NULL)
        tg_period_bounds(c->anchor_at, plan->interval, now, &ps, &pe);
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:{s:o,s:o},s:o,s:o,s:o}", "id", c->id, "email", c->email,
                          "name", c->name, "plan", c->plan_id, "status", tg_adm_display_status(c, now), "created_at",
                          tg_adm_json_time(c->created_at), "trial_end", tg_adm_json_time(c->trial_end), "current_period",
                          "start", tg_adm_json_time(ps), "end", tg_adm_json_time(pe), "pending_plan",
                          c->pending_plan_id[0] ? json_string(c->pending_plan_id) : json_null(), "pending_at",
                          tg_adm_json_time(c->pending_at), "cancel_at", tg_adm_json_time(c->cancel_at));
    /* A card saved through Stripe Checkout (setup mode): when, or null (also when unreadable). */
    int64_t on_file = 0;
    tg_err_t err = {0};
    if (j != NULL && tg_store_payment_method_get(a->d.store, c->id, &on_file, &err) == 0)
        json_object_set_new(j, "payment_method_on_file_at", tg_adm_json_time(on_file));
    if (j != NULL) /* null until the sign-up address is confirmed (issue 13) */
        json_object_set_new(j, "email_confirmed_at", tg_adm_json_time(c->email_confirmed_at));
    if (j != NULL && strcmp(c->status, "incomplete") == 0) /* the trial has not started */
        json_object_set_new(j, "trial_end", json_null());
    return j;
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

void tg_adm_create_customer(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    int bad = 0;
    const char *email = tg_adm_opt_string(body, "email", &bad), *name = tg_adm_opt_string(body, "name", &bad),
               *plan_id = tg_adm_opt_string(body, "plan", &bad);
    const tg_plan_t *plan = plan_id != NULL ? tg_config_find_plan(tg_adm_cfg(a), plan_id) : NULL;
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
        /* One transaction: the customer and its Stripe outbox row commit together or not at all. */
        tg_err_t err = {0};
        int rc;
        if ((rc = tg_store_tx_begin(a->d.store, &err)) != 0)
            tg_adm_reply_svc_error(res, rc, &err);
        else if ((rc = tg_sub_customer_create(&a->sub, email, name, plan, 1, &c, &err)) != 0) {
            tg_store_tx_rollback(a->d.store);
            tg_adm_reply_svc_error(res, rc, &err);
        } else if ((rc = tg_store_customer_confirm_email(a->d.store, c.id, c.created_at, &err)) != 0 ||
                   (rc = tg_store_tx_commit(a->d.store, &err)) != 0) {
            tg_store_tx_rollback(a->d.store);
            /* The directory may hold the customer now, without a key: nothing authenticates. */
            tg_adm_reply_svc_error(res, rc, &err);
        } else {
            /* The owner vouches for an address they enter: it counts as confirmed (a plan's
             * require_email_confirmation holds back only self-service sign-ups). */
            c.email_confirmed_at = c.created_at;
            tg_accounts_put_customer(a->d.accounts, &c, NULL);
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

void tg_adm_patch_customer(tg_admin_t *a, tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    int bad = 0, rc;
    const char *plan_id = tg_adm_opt_string(body, "plan", &bad), *status = tg_adm_opt_string(body, "status", &bad),
               *name = tg_adm_opt_string(body, "name", &bad), *when = tg_adm_opt_string(body, "when", &bad);
    tg_sub_update_t u = {plan_id != NULL ? tg_config_find_plan(tg_adm_cfg(a), plan_id) : NULL, TG_SUB_WHEN_DEFAULT, status,
                         name};
    tg_err_t err = {0};
    if (bad)
        tg_adm_reply_error(res, 400, "bad_request", "plan, status, name and when must be strings.");
    else if ((rc = tg_sub_when_parse(when, &u.when, &err)) != 0)
        tg_adm_reply_svc_error(res, rc, &err);
    else if (plan_id != NULL && u.plan == NULL)
        tg_adm_reply_error(res, 400, "bad_request", "plan: \"%s\" is not a plan.", plan_id);
    else {
        /* A new name goes to the Stripe customer, a plan change or a cancellation to the Stripe
         * subscription (the service queues them in its transaction). */
        if ((rc = tg_sub_update(&a->sub, c, &u, &err)) != 0)
            tg_adm_reply_svc_error(res, rc, &err);
        else {
            tg_outbox_wake(a->d.outbox);
            tg_adm_reply_json(res, 200, tg_adm_customer_admin_json(a, c));
        }
    }
    json_decref(body);
}

/* GET /v1/me/plan/preview and GET /v1/admin/customers/{id}/plan/preview (?plan=pro[&when=period_end]):
 * what a change would do, before confirming. One adapter for both doors, so the owner sees exactly
 * what the customer would; the decision is tg_sub_change_compute's. */
void tg_adm_plan_preview(tg_admin_t *a, const tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    char plan_id[TG_PLAN_ID_MAX] = "", when[16] = "";
    const char *q = r->query, *end = r->query != NULL ? r->query + r->query_len : NULL;
    while (q != NULL && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q)), *stop = amp != NULL ? amp : end;
        if ((size_t)(stop - q) > 5 && memcmp(q, "plan=", 5) == 0 && (size_t)(stop - q - 5) < sizeof(plan_id))
            memcpy(plan_id, q + 5, (size_t)(stop - q - 5));
        if ((size_t)(stop - q) > 5 && memcmp(q, "when=", 5) == 0 && (size_t)(stop - q - 5) < sizeof(when))
            memcpy(when, q + 5, (size_t)(stop - q - 5));
        q = stop + 1;
    }
    const tg_plan_t *to = tg_config_find_plan(tg_adm_cfg(a), plan_id);
    tg_sub_change_t pc;
    tg_sub_when_t w = TG_SUB_WHEN_DEFAULT;
    tg_err_t err = {0};
    int rc;
    if (to == NULL) {
        tg_adm_reply_error(res, 400, "bad_request", "plan: \"%s\" is not one of the plans.", plan_id);
        return;
    }
    if (when[0] != '\0' && strcmp(when, "now") != 0 && strcmp(when, "period_end") != 0) {
        tg_adm_reply_error(res, 400, "bad_request", "when: \"now\" or \"period_end\".");
        return;
    }
    if ((rc = tg_sub_when_parse(when[0] ? when : NULL, &w, &err)) != 0 ||
        (rc = tg_sub_change_compute(&a->sub, c, to, w, &pc, &err)) != 0) {
        tg_adm_reply_svc_error(res, rc, &err);
        return;
    }
    json_t *items = json_array();
    char buf[TG_MONEY_FMT_MAX];
    if (pc.prorated) {
        tg_money_format(tg_money_round(pc.old_part, to->currency_digits), to->currency_digits, buf, sizeof(buf));
        json_array_append_new(items, json_pack("{s:s,s:s}", "description", pc.old_desc, "amount", buf));
        tg_money_format(tg_money_round(pc.new_credit, to->currency_digits), to->currency_digits, buf, sizeof(buf));
        json_array_append_new(items, json_pack("{s:s,s:s}", "description", pc.new_desc, "amount", buf));
    }
    tg_adm_reply_json(res, 200,
                      json_pack("{s:s,s:s,s:s,s:o,s:o,s:o}", "from", c->plan_id, "to", to->id, "effective",
                                pc.at_period_end ? "period_end" : "now", "effective_at",
                                tg_adm_json_time(pc.effective_at), "proration", items, "plan", tg_adm_plan_json(to)));
}

/* POST /v1/admin/customers/{id}/cancel {"at_period_end": true} (the default): see tg_sub_cancel. */
void tg_adm_cancel_customer(tg_admin_t *a, tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    json_t *ape = json_object_get(body, "at_period_end");
    tg_err_t err = {0};
    int rc;
    if (ape != NULL && !json_is_boolean(ape))
        tg_adm_reply_error(res, 400, "bad_request", "at_period_end must be true or false.");
    else if ((rc = tg_sub_cancel(&a->sub, c, ape == NULL || json_is_true(ape), &err)) != 0)
        tg_adm_reply_svc_error(res, rc, &err);
    else {
        tg_outbox_wake(a->d.outbox); /* billing: stripe: the subscription's cancellation */
        tg_adm_reply_json(res, 200, tg_adm_customer_json(a, c));
    }
    json_decref(body);
}

/* POST /v1/admin/customers/{id}/resume and the portal's POST /v1/me/resume: see tg_sub_resume. */
void tg_adm_resume_customer(tg_admin_t *a, tg_customer_t *c, tg_admin_response_t *res)
{
    tg_err_t err = {0};
    int rc = tg_sub_resume(&a->sub, c, &err);
    if (rc != 0)
        tg_adm_reply_svc_error(res, rc, &err);
    else {
        tg_outbox_wake(a->d.outbox); /* billing: stripe: cancel_at_period_end=false */
        tg_adm_reply_json(res, 200, tg_adm_customer_json(a, c));
    }
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
    const tg_plan_t *plan = tg_config_find_plan(tg_adm_cfg(a), c->plan_id);
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
    /* how people read each metric (metering.metrics), beside its id: the pages and the CLI show it */
    size_t k;
    json_t *m;
    json_array_foreach(u.metrics, k, m)
    {
        const char *id = json_string_value(json_object_get(m, "metric"));
        json_object_set_new(m, "name", json_string(tg_config_metric_name(tg_adm_cfg(a), id)));
        json_object_set_new(m, "unit", json_string(tg_config_metric_unit(tg_adm_cfg(a), id)));
    }
    tg_adm_reply_json(res, 200,
                      json_pack("{s:s,s:s,s:{s:o,s:o},s:o,s:o,s:o,s:o}", "customer", c->id, "plan", c->plan_id,
                                "period", "start", tg_adm_json_time(ps), "end", tg_adm_json_time(pe), "metrics",
                                u.metrics, "daily", daily, "endpoints", endpoints, "last_90_days", last90));
}


/* POST /v1/admin/customers/{id}/items {"description", "amount"}: a one-off charge (or, with a
 * negative amount, a credit) on the customer's next invoice (tg_sub_add_item). */
void tg_adm_add_item(tg_admin_t *a, const tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    int bad = 0, rc;
    const char *desc = tg_adm_opt_string(body, "description", &bad), *amount = tg_adm_opt_string(body, "amount", &bad);
    const tg_plan_t *plan = tg_config_find_plan(tg_adm_cfg(a), c->plan_id);
    tg_money_t v = 0;
    tg_err_t err = {0};
    if (bad || desc == NULL || desc[0] == '\0' || strlen(desc) >= TG_NAME_MAX)
        tg_adm_reply_error(res, 400, "bad_request", "description: a non-empty string, at most %d characters.",
                           TG_NAME_MAX - 1);
    else if (amount == NULL || tg_money_parse(amount, strlen(amount), &v, &err) != 0 || v == 0)
        tg_adm_reply_error(res, 400, "bad_request", "amount: a non-zero decimal string such as \"-12.50\"%s%s.",
                           err.msg[0] ? ": " : "", err.msg);
    else if ((rc = tg_sub_add_item(&a->sub, c, desc, v, &err)) != 0)
        tg_adm_reply_svc_error(res, rc, &err);
    else {
        char buf[TG_MONEY_FMT_MAX];
        tg_money_format(v, plan->currency_digits, buf, sizeof(buf));
        tg_adm_reply_json(res, 201, json_pack("{s:s,s:s,s:s,s:s}", "customer", c->id, "description", desc, "amount",
                                              buf, "currency", plan->currency));
    }
    json_decref(body);
}
