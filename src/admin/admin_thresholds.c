/* admin_thresholds.c - the routes of issue 13's part C, for the owner (admin API) and the
 * customer (portal, /v1/me/...):
 *   GET  /v1/admin/customers/{id}/notification-marks  the notifications decided for a customer
 *        (usage thresholds, quota exhausted, budget, trial), each once per period: the record
 *        that makes them fire once (store_thresholds.h)
 *   GET  /v1/admin/customers/{id}/budget, /v1/me/budget  the monthly budget and the estimate
 *   PUT  the same, {"amount": "50.00"} or {"amount_minor": 5000} sets it, null removes it
 * and /metrics' tollgate_notifications_decided_total.
 * The decisions are notify/budget.h's; this file only speaks HTTP. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_int.h"
#include "notify/budget.h"
#include "notify/thresholds.h"
#include "store/store_thresholds.h"

static int mark_cb(const tg_mark_t *m, void *arg)
{
    json_t *o = json_pack("{s:s,s:o,s:s?,s:I,s:o}", "kind", m->kind, "period_start", tg_adm_json_time(m->period_start),
                          "metric", m->metric[0] ? m->metric : NULL, "level", (json_int_t)m->level, "created_at",
                          tg_adm_json_time(m->created_at));
    return json_array_append_new(arg, o) != 0;
}

void tg_adm_notification_marks(tg_admin_t *a, const tg_customer_t *c, tg_admin_response_t *res)
{
    json_t *arr = json_array();
    tg_err_t err = {0};
    if (arr == NULL || tg_store_marks_list(a->d.store, c->id, 500, mark_cb, arr, &err) != 0) {
        json_decref(arr);
        tg_adm_reply_error(res, 500, "internal_error", "%s", err.msg);
        return;
    }
    tg_adm_reply_json(res, 200, json_pack("{s:o}", "data", arr));
}

static json_t *money_json(tg_money_t v, const tg_plan_t *plan)
{
    char buf[TG_MONEY_FMT_MAX];
    return tg_money_format(v, plan->currency_digits, buf, sizeof(buf)) < 0 ? json_null() : json_string(buf);
}

void tg_adm_budget(tg_admin_t *a, const tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    const tg_plan_t *plan = tg_config_find_plan(a->d.cfg, c->plan_id);
    if (plan == NULL) {
        tg_adm_reply_error(res, 409, "conflict", "The customer's plan %s is not in the configuration.", c->plan_id);
        return;
    }
    tg_err_t err = {0};
    int64_t now = tg_adm_now_s();
    if (tg_adm_method_is(r, "PUT")) {
        json_t *body = tg_adm_parse_body(r, res);
        if (body == NULL)
            return;
        json_t *amount = json_object_get(body, "amount"), *minor = json_object_get(body, "amount_minor");
        tg_money_t v = 0;
        int rc = 0;
        if ((amount == NULL) == (minor == NULL))
            rc = tg_errf(&err, TG_EINVAL,
                         "amount: a decimal string of %s, like \"50.00\", or amount_minor: a whole number of its minor "
                         "units, like 5000 (one of the two; null removes the budget)",
                         plan->currency);
        else if (amount != NULL && !json_is_null(amount) && !json_is_string(amount))
            rc =
                tg_errf(&err, TG_EINVAL, "amount: a decimal string of %s, like \"50.00\", or null to remove the budget",
                        plan->currency);
        else if (minor != NULL && !json_is_null(minor) && !json_is_integer(minor))
            rc = tg_errf(&err, TG_EINVAL, "amount_minor: a whole number of %s's minor units, or null", plan->currency);
        else if (json_is_string(amount))
            rc = tg_budget_parse(plan, json_string_value(amount), &v, &err);
        else if (json_is_integer(minor))
            rc = tg_budget_from_minor(plan, json_integer_value(minor), &v, &err);
        if (rc == 0)
            rc = tg_budget_set_value(a->d.store, c->id, v, now, &err);
        json_decref(body);
        if (rc != 0) {
            tg_adm_reply_svc_error(res, rc, &err);
            return;
        }
    } else if (!tg_adm_method_is(r, "GET")) {
        tg_adm_reply_error(res, 405, "method_not_allowed", "Use GET or PUT.");
        return;
    }
    tg_budget_view_t v;
    int rc = tg_budget_view(a->d.store, a->d.quota, a->d.accounts, c->id, now, &v, &err);
    if (rc != 0) {
        tg_adm_reply_svc_error(res, rc, &err);
        return;
    }
    json_t *j =
        json_pack("{s:o,s:s,s:o,s:b,s:o,s:o}", "budget", v.budget > 0 ? money_json(v.budget, plan) : json_null(),
                  "currency", plan->currency, "estimate", money_json(v.estimate, plan), "exceeded", v.exceeded,
                  "period_start", tg_adm_json_time(v.period_start), "period_end", tg_adm_json_time(v.period_end));
    /* The same amounts in whole minor units, and the currency's digits: what a client that
     * parses "49.50" itself sends and compares, with no floating point anywhere. */
    json_object_set_new(j, "budget_minor",
                        v.budget > 0 ? json_integer((json_int_t)tg_budget_minor(plan, v.budget)) : json_null());
    json_object_set_new(
        j, "estimate_minor",
        json_integer((json_int_t)tg_budget_minor(plan, tg_money_round(v.estimate, plan->currency_digits))));
    json_object_set_new(j, "currency_digits", json_integer(plan->currency_digits));
    tg_adm_reply_json(res, 200, j);
}

char *tg_adm_thresholds_metrics(char *body)
{
    if (body == NULL)
        return body;
    tg_thresholds_stats_t s;
    tg_thresholds_stats(&s);
    char more[1024];
    int n = snprintf(more, sizeof(more),
                     "# HELP tollgate_notifications_decided_total Notifications decided from usage and time"
                     " (thresholds, quota exhausted, budget, trial): fired (emitted once), repeated (the same"
                     " crossing seen again: its mark was there), dropped (queue full), failed (store error).\n"
                     "# TYPE tollgate_notifications_decided_total counter\n"
                     "tollgate_notifications_decided_total{result=\"fired\"} %llu\n"
                     "tollgate_notifications_decided_total{result=\"repeated\"} %llu\n"
                     "tollgate_notifications_decided_total{result=\"dropped\"} %llu\n"
                     "tollgate_notifications_decided_total{result=\"failed\"} %llu\n",
                     (unsigned long long)s.fired, (unsigned long long)s.repeated, (unsigned long long)s.dropped,
                     (unsigned long long)s.failed);
    if (n < 0 || (size_t)n >= sizeof(more))
        return body;
    size_t len = strlen(body);
    char *nb = realloc(body, len + (size_t)n + 1);
    if (nb == NULL) {
        free(body);
        return NULL;
    }
    memcpy(nb + len, more, (size_t)n + 1);
    return nb;
}
