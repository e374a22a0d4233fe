/* admin_billing.c - public plans and the pricing calculator, and invoices: the adapter of the
 * invoice run (billing/periods.c), listing, state changes, HTML, the upcoming invoice. */
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
#include "billing/line_text.h"
#include "billing/periods.h"
#include "billing/pricing.h"
#include "gateway/apikey.h"
#include "metrics/metrics.h"
#include "payments/outbox.h"
#include "util/clock.h"
#include "util/period.h"

/* ---- public plans and pricing calculator ---- */

json_t *tg_adm_money_json(tg_money_t v, int digits)
{
    char buf[TG_MONEY_FMT_MAX];
    tg_money_format(v, digits, buf, sizeof(buf));
    return json_string(buf);
}

const char *tg_adm_rate_unit(int64_t period_ns)
{
    switch (period_ns / TG_NS_PER_SEC) {
    case 1: return "second";
    case 60: return "minute";
    case 3600: return "hour";
    default: return "day";
    }
}

json_t *tg_adm_plan_json(const tg_plan_t *p)
{
    int d = p->currency_digits;
    json_t *j = json_pack("{s:s,s:s,s:o,s:s,s:s,s:i}", "id", p->id, "name", p->name, "price", tg_adm_money_json(p->price, d),
                          "currency", p->currency, "interval", p->interval == TG_INTERVAL_YEAR ? "year" : "month",
                          "trial_days", p->trial_days);
    json_object_set_new(j, "rate_limit",
                        p->rate_limit.count == 0
                            ? json_null()
                            : json_pack("{s:I,s:s,s:I}", "count", (json_int_t)p->rate_limit.count, "per",
                                        tg_adm_rate_unit(p->rate_limit.period_ns), "burst", (json_int_t)p->burst));
    json_t *eps = json_null();
    if (p->nendpoints > 0 || p->endpoints != NULL) {
        eps = json_array();
        for (size_t i = 0; i < p->nendpoints; i++)
            json_array_append_new(eps, json_string(p->endpoints[i]));
    }
    json_object_set_new(j, "endpoints", eps);
    json_t *inc = json_object();
    for (size_t i = 0; i < p->nincluded; i++)
        json_object_set_new(inc, p->included[i].metric, json_integer((json_int_t)p->included[i].amount));
    json_object_set_new(j, "included", inc);
    json_object_set_new(j, "on_quota", json_string(p->on_quota == TG_QUOTA_BLOCK  ? "block"
                                                   : p->on_quota == TG_QUOTA_BILL ? "bill"
                                                                                  : "throttle"));
    json_t *charges = json_array();
    for (size_t i = 0; i < p->ncharges; i++) {
        const tg_charge_t *c = &p->charges[i];
        static const char *const models[] = {"per_unit", "graduated", "volume", "package"};
        json_t *cj = json_pack("{s:s,s:s}", "metric", c->metric, "model", models[c->model]);
        if (c->model == TG_MODEL_PER_UNIT)
            json_object_set_new(cj, "unit_price", tg_adm_money_json(c->unit_price, d));
        if (c->model == TG_MODEL_PACKAGE) {
            json_object_set_new(cj, "package_size", json_integer((json_int_t)c->package_size));
            json_object_set_new(cj, "package_price", tg_adm_money_json(c->package_price, d));
        }
        if (c->ntiers > 0) {
            json_t *tiers = json_array();
            for (size_t t = 0; t < c->ntiers; t++)
                json_array_append_new(
                    tiers, json_pack("{s:o,s:o,s:o}", "up_to",
                                     c->tiers[t].up_to == TG_UNLIMITED ? json_null()
                                                                       : json_integer((json_int_t)c->tiers[t].up_to),
                                     "unit_price", tg_adm_money_json(c->tiers[t].unit_price, d), "flat_price",
                                     tg_adm_money_json(c->tiers[t].flat_price, d)));
            json_object_set_new(cj, "tiers", tiers);
        }
        json_array_append_new(charges, cj);
    }
    json_object_set_new(j, "charges", charges);
    json_t *features = json_array();
    for (size_t i = 0; i < p->nfeatures; i++)
        json_array_append_new(features, json_string(p->features[i]));
    json_object_set_new(j, "features", features);
    return j;
}

/* GET /v1/plans/{id}/quote?api_calls=N&images=M: the same pricing code as invoices, plus
 * "blocked": [{metric, after}] for each metric the plan would stop at its allowance (on_quota
 * block), whose usage is then priced only up to it. */
void tg_adm_quote_plan(tg_admin_t *a, const tg_plan_t *plan, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    enum { MAX_Q = TG_QUOTE_MAX_METRICS };
    char names[MAX_Q][TG_METRIC_MAX];
    tg_usage_qty_t usage[MAX_Q];
    size_t n = 0;
    const char *q = r->query, *end = r->query != NULL ? r->query + r->query_len : NULL;
    (void)a;
    while (q != NULL && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q)), *stop = amp != NULL ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(stop - q));
        if (eq == NULL || eq == q || (size_t)(eq - q) >= TG_METRIC_MAX || n == MAX_Q) {
            tg_adm_reply_error(res, 400, "bad_request", "Query parameters must be METRIC=N.");
            return;
        }
        char num[24];
        size_t nl = (size_t)(stop - eq - 1);
        if (nl == 0 || nl >= sizeof(num)) {
            tg_adm_reply_error(res, 400, "bad_request", "%.*s: expected a whole number.", (int)(eq - q), q);
            return;
        }
        memcpy(num, eq + 1, nl);
        num[nl] = '\0';
        char *e;
        unsigned long long v = strtoull(num, &e, 10);
        if (*e != '\0' || num[0] == '-') {
            tg_adm_reply_error(res, 400, "bad_request", "%.*s: \"%s\" is not a whole number.", (int)(eq - q), q, num);
            return;
        }
        memcpy(names[n], q, (size_t)(eq - q));
        names[n][eq - q] = '\0';
        usage[n].metric = names[n];
        usage[n].used = v;
        n++;
        q = stop + 1;
    }
    /* An estimate: a metric named twice adds up, and a plan that blocks at its allowance is
     * priced only up to it, with where it would stop (pricing.h, tg_quote_estimate). */
    tg_quote_t quote;
    tg_err_t err = {0};
    if (tg_quote_estimate(plan, usage, n, 1, &quote, &err) != 0) {
        tg_adm_reply_error(res, 400, "bad_request", "%s", err.msg);
        return;
    }
    json_t *body = tg_quote_json_for_people(tg_adm_cfg(a), &quote);
    tg_quote_free(&quote);
    if (body == NULL) {
        tg_adm_reply_error(res, 500, "internal_error", "The quote could not be built (out of memory).");
        return;
    }
    tg_adm_reply_json(res, 200, body);
}

/* ---- invoices ---- */


/* Answers an invoice's JSON (json, malloc'd, taken; NULL = out of memory) with each line's text
 * for people (billing/line_text.h) under the configuration in force now. */
static void reply_invoice_json(const tg_admin_t *a, tg_admin_response_t *res, int status, char *json)
{
    json_t *j = json != NULL ? json_loads(json, 0, NULL) : NULL;
    free(json);
    if (j == NULL || tg_lines_add_text(tg_adm_cfg(a), json_object_get(j, "lines")) != 0) {
        json_decref(j);
        tg_adm_reply_error(res, 500, "internal_error", "The invoice could not be rendered (out of memory).");
        return;
    }
    tg_adm_reply_json(res, status, j);
}

void tg_adm_reply_invoice(const tg_admin_t *a, tg_admin_response_t *res, int status, const tg_invoice_t *inv)
{
    reply_invoice_json(a, res, status, tg_invoice_to_json(inv));
}

int tg_adm_list_invoice_cb(const tg_invoice_t *inv, void *arg)
{
    char *s = tg_invoice_to_json(inv);
    json_t *j = s != NULL ? json_loads(s, 0, NULL) : NULL;
    free(s);
    if (j != NULL) {
        json_object_del(j, "lines"); /* the list shows totals; one invoice shows its lines */
        json_array_append_new(arg, j);
    }
    return 0;
}

void tg_adm_invoices_route(tg_admin_t *a, const tg_adm_segs_t *s, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    tg_err_t err = {0};
    if (s->n == 4 && tg_adm_seg_is(s, 3, "run") && tg_adm_method_is(r, "POST")) {
        json_t *body = tg_adm_parse_body(r, res);
        if (body == NULL)
            return;
        int bad = 0;
        const char *cust = tg_adm_opt_string(body, "customer", &bad), *month = tg_adm_opt_string(body, "period", &bad);
        int64_t until = INT64_MAX;
        int y = 0, m = 0;
        char tail = 0;
        if (month != NULL && (sscanf(month, "%4d-%2d%c", &y, &m, &tail) != 2 || strlen(month) != 7 || y < 1970 ||
                              m < 1 || m > 12))
            bad = 2;
        else if (month != NULL) /* periods that ended by the end of that month */
            until = tg_period_boundary(0, TG_INTERVAL_MONTH, (int64_t)(y - 1970) * 12 + m);
        tg_periods_run_t run = {0};
        int rc = bad ? TG_EINVAL : tg_periods_close(&a->sub, cust, until, &run, &err);
        if (bad == 2)
            tg_adm_reply_error(res, 400, "bad_request", "period: expected YYYY-MM.");
        else if (bad)
            tg_adm_reply_error(res, 400, "bad_request", "customer and period must be strings.");
        else if (rc == TG_ENOTFOUND)
            tg_adm_reply_svc_error(res, rc, &err);
        else if (rc != 0)
            tg_adm_reply_error(res, 500, "internal_error", "Closing periods failed: %s", err.msg);
        else {
            json_t *j = json_pack("{s:i,s:i}", "created", run.created, "failed", run.failures);
            if (run.failures > 0)
                json_object_set_new(j, "first_error", json_string(run.first_error));
            /* Which customers failed and why (the first 100; all of them at
             * GET /v1/admin/billing/failures). */
            json_t *failed = json_array();
            for (size_t i = 0; i < run.nfailed; i++)
                json_array_append_new(failed, json_pack("{s:s,s:s,s:s}", "customer", run.failed[i].customer_id,
                                                        "type", run.failed[i].type, "message", run.failed[i].message));
            json_object_set_new(j, "failures", failed);
            tg_adm_reply_json(res, 200, j);
        }
        tg_periods_run_free(&run);
        json_decref(body);
        return;
    }
    if (s->n == 3 && tg_adm_method_is(r, "GET")) {
        tg_adm_search_invoices(a, r, res); /* with its filters and totals (admin_search.c) */
        return;
    }
    /* The route's shape and method first, then the invoice: a wrong URL is route_not_found or
     * 405 whatever the id, never "no such invoice". */
    static const char *const actions[] = {"finalize", "void", "mark-paid", "mark-uncollectible", "hold", "release"};
    int action = 0;
    for (size_t i = 0; s->n == 5 && i < sizeof(actions) / sizeof(actions[0]); i++)
        action |= tg_adm_seg_is(s, 4, actions[i]);
    int run = tg_adm_seg_is(s, 3, "run");
    if (s->n < 4 || s->n > 5 || (run && s->n == 5) || (s->n == 5 && !action && !tg_adm_seg_is(s, 4, "html"))) {
        tg_adm_reply_error(res, 404, "route_not_found", "No such route.");
        return;
    }
    if (!tg_adm_method_is(r, run || action ? "POST" : "GET")) {
        tg_adm_reply_error(res, 405, "method_not_allowed", "Use %s.", run || action ? "POST" : "GET");
        return;
    }
    char id[TG_ID_MAX];
    tg_invoice_t inv;
    if (tg_adm_seg_copy(s, 3, id, sizeof(id)) != 0) {
        tg_adm_reply_error(res, 404, "not_found", "No such invoice.");
        return;
    }
    int rc = tg_store_invoice_get(a->d.store, id, &inv, &err);
    if (rc == TG_ENOTFOUND) {
        tg_adm_reply_error(res, 404, "not_found", "No invoice %s.", id);
        return;
    }
    if (rc != 0) {
        tg_adm_reply_error(res, 500, "internal_error", "Reading the invoice failed: %s", err.msg);
        return;
    }
    if (s->n == 4 && tg_adm_method_is(r, "GET"))
        tg_adm_reply_invoice(a, res, 200, &inv);
    else if (s->n == 5 && tg_adm_seg_is(s, 4, "html") && tg_adm_method_is(r, "GET")) {
        tg_customer_t c;
        tg_err_t e2 = {0};
        int have = tg_store_customer_get(a->d.store, inv.customer_id, &c, &e2) == 0;
        res->status = 200;
        res->content_type = "text/html; charset=utf-8";
        res->inline_style = 1; /* the invoice's own <style> */
        res->body = tg_invoice_to_html(&inv, have ? &c : NULL, tg_adm_cfg(a));
        res->body_len = res->body != NULL ? strlen(res->body) : 0;
    } else if (s->n == 5 && tg_adm_method_is(r, "POST")) {
        const char *to = tg_adm_seg_is(s, 4, "finalize")             ? "open"
                         : tg_adm_seg_is(s, 4, "void")               ? "void"
                         : tg_adm_seg_is(s, 4, "mark-paid")          ? "paid"
                         : tg_adm_seg_is(s, 4, "mark-uncollectible") ? "uncollectible"
                                                              : NULL;
        int queued = 0, hold = tg_adm_seg_is(s, 4, "hold") ? 1 : tg_adm_seg_is(s, 4, "release") ? 0 : -1;
        if (to == NULL && hold >= 0) {
            if ((rc = tg_store_invoice_hold(a->d.store, id, hold, &err)) == TG_ESTATE)
                tg_adm_reply_error(res, 409, "conflict", "%s", err.msg);
            else if (rc != 0)
                tg_adm_reply_error(res, 500, "internal_error", "Changing the invoice failed: %s", err.msg);
            else {
                tg_invoice_clear(&inv);
                if (tg_store_invoice_get(a->d.store, id, &inv, &err) == 0)
                    tg_adm_reply_invoice(a, res, 200, &inv);
                else
                    tg_adm_reply_error(res, 500, "internal_error", "%s", err.msg);
            }
        } else if (to == NULL)
            tg_adm_reply_error(res, 404, "not_found", "Actions: finalize, void, mark-paid, mark-uncollectible, hold, release.");
        else if ((rc = tg_periods_invoice_transition(&a->sub, id, to, &queued, &err)) == TG_ESTATE)
            tg_adm_reply_error(res, 409, "conflict", "%s", err.msg);
        else if (rc == TG_EINVAL)
            tg_adm_reply_error(res, 422, "invalid_invoice", "%s", err.msg);
        else if (rc != 0)
            tg_adm_reply_error(res, 500, "internal_error", "Changing the invoice failed: %s", err.msg);
        else {
            if (queued)
                tg_outbox_wake(a->d.outbox);
            tg_invoice_clear(&inv);
            if (tg_store_invoice_get(a->d.store, id, &inv, &err) == 0)
                tg_adm_reply_invoice(a, res, 200, &inv);
            else
                tg_adm_reply_error(res, 500, "internal_error", "%s", err.msg);
        }
    } else
        tg_adm_reply_error(res, 405, "method_not_allowed", "Method not allowed here.");
    tg_invoice_clear(&inv);
}


void tg_adm_reply_upcoming(tg_admin_t *a, const tg_customer_t *c, tg_admin_response_t *res)
{
    tg_err_t err = {0};
    char *json = tg_sub_upcoming(&a->sub, c, &err);
    if (json == NULL) {
        tg_adm_reply_svc_error(res, err.code, &err);
        return;
    }
    reply_invoice_json(a, res, 200, json);
}
