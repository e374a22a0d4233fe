/* admin_dashboard.c - GET /v1/admin/dashboard: the business at a glance for the API owner.
 *
 * Every figure is read from the same store and computed by the same code as invoices and
 * usage reports (plans from the config, usage totals, stored invoices), so the dashboard cannot
 * disagree with what customers are billed. It walks every customer, which is fine for thousands;
 * a summary table maintained by the metering writer is the step after that. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/admin_int.h"
#include "billing/line_text.h"
#include "billing/revenue.h"
#include "store/store_payments.h"
#include "util/period.h"

#define TOP_N 10
#define USAGE_DAYS_DEFAULT 30 /* the usage chart's window when the query names none */
#define USAGE_DAYS_MAX 366

typedef struct cust_row {
    tg_customer_t c;
    char currency[4]; /* of its plan: billed is in it (a plan change keeps the currency) */
    uint64_t calls;
    uint64_t included;
    int64_t billed;     /* sum of invoice totals, nano-units */
    int64_t last_usage; /* usage lines of invoices of the last closed period */
    int64_t now;
} cust_row_t;

typedef struct dash {
    tg_admin_t *a;
    cust_row_t *rows;
    size_t n, cap;
    json_t *daily; /* metric -> day -> units, in the usage chart's window */
    int64_t now, month_start;
} dash_t;

static int add_customer_cb(const tg_customer_t *c, void *arg)
{
    dash_t *d = arg;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        cust_row_t *r = realloc(d->rows, cap * sizeof(*r));
        if (r == NULL)
            return 1;
        d->rows = r;
        d->cap = cap;
    }
    memset(&d->rows[d->n], 0, sizeof(d->rows[d->n]));
    d->rows[d->n++].c = *c;
    return 0;
}

static int calls_cb(const char *metric, uint64_t units, void *arg)
{
    if (strcmp(metric, "api_calls") == 0)
        *(uint64_t *)arg += units;
    return 0;
}

static int daily_cb(const char *day, const char *metric, uint64_t units, void *arg)
{
    json_t *daily = json_object_get(arg, metric);
    if (daily == NULL && json_object_set_new(arg, metric, daily = json_object()) != 0)
        return 1;
    json_t *v = json_object_get(daily, day);
    json_object_set_new(daily, day, json_integer((v != NULL ? json_integer_value(v) : 0) + (json_int_t)units));
    return 0;
}

/* The usage chart's window, whole UTC days [*from, *to) from ?from=YYYY-MM-DD&to=YYYY-MM-DD (both
 * days included; either alone keeps USAGE_DAYS_DEFAULT days, ending today when neither is given),
 * at most USAGE_DAYS_MAX days. -1 after a 400 reply. */
static int usage_window(const tg_admin_request_t *r, int64_t now, int64_t *from, int64_t *to, tg_admin_response_t *res)
{
    char f[16] = "", t[16] = "";
    int64_t first = -1, last = -1;
    if (tg_adm_query_text(r, "from", f, sizeof(f)) < 0 || (f[0] != '\0' && (first = tg_adm_parse_day(f)) < 0)) {
        tg_adm_reply_error(res, 400, "invalid_parameter", "from: a date, YYYY-MM-DD.");
        return -1;
    }
    if (tg_adm_query_text(r, "to", t, sizeof(t)) < 0 || (t[0] != '\0' && (last = tg_adm_parse_day(t)) < 0)) {
        tg_adm_reply_error(res, 400, "invalid_parameter", "to: a date, YYYY-MM-DD.");
        return -1;
    }
    if (last < 0)
        last = first >= 0 ? first + (USAGE_DAYS_DEFAULT - 1) * 86400 : now - now % 86400;
    if (first < 0)
        first = last - (USAGE_DAYS_DEFAULT - 1) * 86400;
    if (first > last) {
        tg_adm_reply_error(res, 400, "invalid_parameter", "from: %s is after to: %s.", f, t);
        return -1;
    }
    if ((last - first) / 86400 + 1 > USAGE_DAYS_MAX) {
        tg_adm_reply_error(res, 400, "invalid_parameter", "from, to: at most %d days.", USAGE_DAYS_MAX);
        return -1;
    }
    *from = first;
    *to = last + 86400;
    return 0;
}

static json_t *day_json(int64_t t)
{
    char buf[16];
    struct tm tm;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%d", &tm);
    return json_string(buf);
}

static int invoice_cb(const tg_invoice_t *inv, void *arg)
{
    cust_row_t *row = arg;
    if (strcmp(inv->status, "void") == 0)
        return 0;
    if (strcmp(inv->status, "draft") != 0)
        row->billed += inv->total;
    /* Usage revenue of the last period, apart from MRR: the usage lines (kinds "usage" and
     * "late_usage"; in invoices stored before kinds, those with a metric: the same lines) of
     * invoices for periods that ended within the last 31 days, drafts included. */
    if (inv->period_end <= row->now && inv->period_end > row->now - 31 * 86400) {
        json_t *body = json_loads(inv->body != NULL ? inv->body : "{}", 0, NULL);
        size_t i;
        json_t *l;
        json_array_foreach(json_object_get(body, "lines"), i, l)
        {
            const char *amount = json_string_value(json_object_get(l, "amount"));
            tg_money_t v;
            tg_line_kind_t kind;
            int rc = tg_line_stored_kind(l, &kind);
            int usage = rc == TG_ENOTFOUND ? json_is_string(json_object_get(l, "metric"))
                                           : rc == 0 && (kind == TG_LINE_USAGE || kind == TG_LINE_LATE_USAGE);
            if (usage && amount != NULL && tg_money_parse(amount, strlen(amount), &v, NULL) == 0)
                row->last_usage += v;
        }
        json_decref(body);
    }
    return 0;
}

static int by_calls(const void *x, const void *y)
{
    const cust_row_t *a = x, *b = y;
    return a->calls < b->calls ? 1 : a->calls > b->calls ? -1 : 0;
}

/* By currency, then by amount billed, largest first: amounts of two currencies are never
 * compared (1200 yen is not more than 49 dollars). */
static int by_billed(const void *x, const void *y)
{
    const cust_row_t *a = x, *b = y;
    int c = strcmp(a->currency, b->currency);
    if (c != 0)
        return c;
    return a->billed < b->billed ? 1 : a->billed > b->billed ? -1 : strcmp(a->c.id, b->c.id);
}

static json_t *money(tg_money_t v)
{
    char buf[TG_MONEY_FMT_MAX];
    tg_money_format(tg_money_round(v, 2), 2, buf, sizeof(buf));
    return json_string(buf);
}

/* An amount in the currency's own digits ("12.34" usd, "1234" jpy, "1.234" kwd); exact, as every
 * revenue figure is a whole number of minor units. */
static json_t *money_in(tg_money_t v, int digits)
{
    char buf[TG_MONEY_FMT_MAX];
    if (tg_money_format(v, digits, buf, sizeof(buf)) < 0)
        return json_null();
    return json_string(buf);
}

/* The first TOP_N rows in cmp's order; per_currency: the first TOP_N of each currency (rows
 * sorted by currency first), so that every currency has its own ranking. */
static json_t *top(dash_t *d, int (*cmp)(const void *, const void *), int per_currency)
{
    if (d->n > 1) /* with no customers rows is NULL, which qsort must not be given */
        qsort(d->rows, d->n, sizeof(*d->rows), cmp);
    json_t *arr = json_array();
    size_t rank = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (per_currency && i > 0 && strcmp(d->rows[i].currency, d->rows[i - 1].currency) != 0)
            rank = 0;
        if (rank++ >= TOP_N) {
            if (!per_currency)
                break;
            continue;
        }
        /* billed is in the currency of the customer's plan (a plan change keeps the currency) */
        const tg_plan_t *plan = tg_config_find_plan(tg_adm_cfg(d->a), d->rows[i].c.plan_id);
        json_array_append_new(
            arr, json_pack("{s:s,s:s,s:s,s:I,s:o,s:s}", "id", d->rows[i].c.id, "email", d->rows[i].c.email, "plan",
                           d->rows[i].c.plan_id, "calls", (json_int_t)d->rows[i].calls, "billed",
                           plan != NULL ? money_in(d->rows[i].billed, plan->currency_digits) : money(d->rows[i].billed),
                           "currency", plan != NULL ? plan->currency : ""));
    }
    return arr;
}

#define NEAR_MAX 100 /* customers listed near their quota; an array that grows with customers */

/* The revenue split (billing/revenue.c decides every figure; this only renders them). */
static json_t *revenue_json(const tg_revenue_t *rv)
{
    json_t *cur = json_object(), *by_class = json_object();
    for (size_t i = 0; i < rv->ncur; i++) {
        const tg_revenue_currency_t *e = &rv->cur[i];
        tg_money_t arr = 0;
        int arr_ok = tg_money_mul(e->mrr, 12, &arr) == 0;
        json_object_set_new(
            cur, e->currency,
            json_pack("{s:i,s:o,s:o,s:o,s:o,s:{s:I,s:I,s:I,s:I},s:o,s:o,s:I,s:o,s:I}", "digits", e->digits, "invoiced",
                      money_in(e->invoiced, e->digits), "collected", money_in(e->collected, e->digits), "outstanding",
                      money_in(e->outstanding, e->digits), "uncollectible", money_in(e->uncollectible, e->digits),
                      "invoices", "finalized", (json_int_t)e->n_invoiced, "paid", (json_int_t)e->n_paid, "open",
                      (json_int_t)e->n_open, "uncollectible", (json_int_t)e->n_uncollectible, "mrr",
                      money_in(e->mrr, e->digits), "arr", arr_ok ? money_in(arr, e->digits) : json_null(),
                      "paying_customers", (json_int_t)e->paying, "trial_mrr", money_in(e->trial_mrr, e->digits),
                      "trialing_customers", (json_int_t)e->trialing));
        json_object_set_new(json_object_get(cur, e->currency), "usage_revenue_last_period",
                            money_in(e->usage_last_period, e->digits));
    }
    for (int k = 0; k < TG_MRR_NCLASSES; k++)
        json_object_set_new(by_class, tg_mrr_class_name((tg_mrr_class_t)k), json_integer((json_int_t)rv->by_class[k]));
    return json_pack("{s:o,s:o,s:o,s:o}", "from", tg_adm_json_time(rv->from), "to", tg_adm_json_time(rv->to),
                     "currencies", cur, "customers", by_class);
}

/* The plans' one currency, or NULL when they use several (then no single MRR figure exists). */
static const tg_plan_t *single_currency_plan(const tg_config_t *cfg)
{
    const tg_plan_t *first = NULL;
    for (size_t i = 0; i < cfg->nplans; i++) {
        if (first == NULL)
            first = &cfg->plans[i];
        else if (strcmp(first->currency, cfg->plans[i].currency) != 0)
            return NULL;
    }
    return first;
}

void tg_adm_dashboard(tg_admin_t *a, const tg_admin_request_t *req, tg_admin_response_t *res)
{
    const tg_config_t *cfg = tg_adm_cfg(a);
    /* The revenue split's window: this calendar month (UTC), or the one ?period=YYYY-MM names. */
    int64_t month = 0, rev_from, rev_to;
    int pm = tg_adm_parse_month(req->query, req->query != NULL ? req->query_len : 0, &month);
    if (pm < 0) {
        tg_adm_reply_error(res, 400, "bad_request", "period: expected YYYY-MM.");
        return;
    }
    dash_t d = {a, NULL, 0, 0, NULL, tg_adm_now_s(), 0};
    int64_t usage_from, usage_to;
    if (usage_window(req, d.now, &usage_from, &usage_to, res) != 0)
        return;
    d.daily = json_object();
    int64_t month_end;
    tg_period_bounds(0, TG_INTERVAL_MONTH, d.now, &d.month_start, &month_end); /* calendar month, UTC */
    if (pm == 0) {
        tg_period_bounds(0, TG_INTERVAL_MONTH, month, &rev_from, &rev_to);
    } else {
        rev_from = d.month_start;
        rev_to = month_end;
    }
    tg_err_t err = {0};
    if (tg_store_customer_list(a->d.store, add_customer_cb, &d, &err) != 0) {
        json_decref(d.daily);
        free(d.rows);
        tg_adm_reply_error(res, 500, "internal_error", "Reading customers failed: %s", err.msg);
        return;
    }
    if (a->d.meter != NULL)
        tg_meter_flush(a->d.meter);
    json_t *by_plan = json_object(), *by_status = json_object(), *mrr_by_plan = json_object(), *near = json_array();
    size_t near_count = 0;
    int signups = 0, churned = 0, trials_ended = 0, trials_converted = 0;
    for (size_t i = 0; i < d.n; i++) {
        cust_row_t *r = &d.rows[i];
        const tg_plan_t *plan = tg_config_find_plan(cfg, r->c.plan_id);
        if (plan == NULL)
            continue;
        snprintf(r->currency, sizeof(r->currency), "%s", plan->currency);
        const char *status = tg_adm_display_status(&r->c, d.now);
        json_t *n = json_object_get(by_plan, plan->id);
        json_object_set_new(by_plan, plan->id, json_integer(n != NULL ? json_integer_value(n) + 1 : 1));
        n = json_object_get(by_status, status);
        json_object_set_new(by_status, status, json_integer(n != NULL ? json_integer_value(n) + 1 : 1));
        if (r->c.created_at >= d.month_start)
            signups++;
        if (r->c.cancel_at != 0 && r->c.cancel_at >= d.month_start && r->c.cancel_at <= d.now)
            churned++;
        if (r->c.trial_end != 0 && r->c.trial_end <= d.now) {
            trials_ended++;
            trials_converted += strcmp(r->c.status, "canceled") != 0;
        }
        int64_t ps, pe;
        tg_period_bounds(r->c.anchor_at, plan->interval, d.now, &ps, &pe);
        tg_store_usage_period(a->d.store, r->c.id, ps, calls_cb, &r->calls, &err);
        tg_store_usage_daily(a->d.store, r->c.id, usage_from, usage_to, daily_cb, d.daily, &err);
        r->now = d.now;
        tg_store_invoice_list(a->d.store, r->c.id, invoice_cb, r, &err);
        r->included = tg_plan_included(plan, "api_calls");
        if (r->included != TG_UNLIMITED && r->included > 0 && r->calls * 10 >= r->included * 8 &&
            near_count++ < NEAR_MAX)
            json_array_append_new(near, json_pack("{s:s,s:s,s:s,s:I,s:I,s:b}", "id", r->c.id, "email", r->c.email,
                                                  "plan", plan->id, "calls", (json_int_t)r->calls, "included",
                                                  (json_int_t)r->included, "over", r->calls > r->included));
    }
    uint64_t total_calls = 0;
    for (size_t i = 0; i < d.n; i++)
        total_calls += d.rows[i].calls;
    /* Revenue per currency: invoiced, collected, outstanding in the window, and the MRR of paying
     * customers now. mrr/arr stay as one figure while the plans share one currency. */
    tg_revenue_t *rv = malloc(sizeof(*rv));
    tg_revenue_plan_t *per_plan = calloc(cfg->nplans > 0 ? cfg->nplans : 1, sizeof(*per_plan));
    int rrc = rv == NULL || per_plan == NULL ? TG_ENOMEM
                                             : tg_revenue_start(a->d.store, cfg, rev_from, rev_to, rv, per_plan, &err);
    for (size_t i = 0; i < d.n && rrc == 0; i++) /* the customers read above, not read again */
        rrc = tg_revenue_customer(rv, per_plan, cfg, &d.rows[i].c, d.now, &err);
    if (rrc == 0)
        tg_revenue_finish(rv);
    if (rrc != 0) {
        int oom = rv == NULL || per_plan == NULL;
        free(rv);
        free(per_plan);
        json_decref(by_plan);
        json_decref(by_status);
        json_decref(mrr_by_plan);
        json_decref(near);
        json_decref(d.daily);
        free(d.rows);
        tg_adm_reply_error(res, 500, "internal_error", "Computing revenue failed: %s", oom ? "out of memory" : err.msg);
        return;
    }
    json_t *mrr_cur = json_object(); /* which currency each mrr_by_plan figure is in */
    for (size_t i = 0; i < cfg->nplans; i++) /* the plans with paying customers, in their currency */
        if (per_plan[i].paying > 0) {
            json_object_set_new(mrr_by_plan, cfg->plans[i].id,
                                money_in(per_plan[i].mrr, cfg->plans[i].currency_digits));
            json_object_set_new(mrr_cur, cfg->plans[i].id, json_string(cfg->plans[i].currency));
        }
    free(per_plan);
    for (size_t i = 0; i < d.n; i++) {
        const tg_plan_t *plan = tg_config_find_plan(cfg, d.rows[i].c.plan_id);
        tg_err_t ignored = {0}; /* a sum that cannot be exact is left out (rv unchanged), never rounded */
        if (plan != NULL && d.rows[i].last_usage != 0)
            (void)tg_revenue_add_usage(rv, plan->currency, d.rows[i].last_usage, &ignored);
    }
    const tg_plan_t *one = single_currency_plan(cfg);
    const tg_revenue_currency_t *rc = one != NULL ? tg_revenue_find(rv, one->currency) : NULL;
    tg_money_t mrr = rc != NULL ? rc->mrr : 0, arr = 0;
    int arr_ok = tg_money_mul(mrr, 12, &arr) == 0;
    json_t *calls_per_day = json_object_get(d.daily, "api_calls"); /* kept for the clients that read it */
    calls_per_day = calls_per_day != NULL ? json_deep_copy(calls_per_day) : json_object();
    json_t *j = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:i,s:i,s:o,s:I,s:o}", "as_of", tg_adm_json_time(d.now), "mrr",
                          one != NULL ? money_in(mrr, one->currency_digits) : json_null(), "arr",
                          one != NULL && arr_ok ? money_in(arr, one->currency_digits) : json_null(), "mrr_by_plan",
                          mrr_by_plan, "customers_by_plan", by_plan, "customers_by_status", by_status,
                          "signups_this_month", signups, "churned_this_month", churned, "trial_conversion",
                          trials_ended > 0 ? json_real((double)trials_converted / trials_ended) : json_null(),
                          "calls_this_period", (json_int_t)total_calls, "calls_per_day", calls_per_day);
    /* the usage chart: every metric per day in the window, and how people read each metric */
    json_object_set_new(j, "usage_per_day", d.daily);
    json_object_set_new(j, "usage_window",
                        json_pack("{s:o,s:o}", "from", day_json(usage_from), "to", day_json(usage_to - 86400)));
    json_object_set_new(j, "metrics", tg_adm_metrics_json(cfg));
    uint64_t upgrades = 0, downgrades = 0;
    tg_store_plan_change_count(a->d.store, "upgrade", d.month_start, d.now, &upgrades, &err);
    tg_store_plan_change_count(a->d.store, "downgrade", d.month_start, d.now, &downgrades, &err);
    json_object_set_new(j, "mrr_by_plan_currency", mrr_cur);
    json_object_set_new(j, "paying_customers", json_integer((json_int_t)rv->by_class[TG_MRR_PAYING]));
    json_object_set_new(j, "trialing_customers", json_integer((json_int_t)rv->by_class[TG_MRR_TRIALING]));
    json_object_set_new(j, "revenue", revenue_json(rv));
    json_object_set_new(j, "usage_revenue_last_period",
                        one != NULL ? money_in(rc != NULL ? rc->usage_last_period : 0, one->currency_digits)
                                    : json_null());
    free(rv);
    json_object_set_new(j, "upgrades_this_month", json_integer((json_int_t)upgrades));
    json_object_set_new(j, "downgrades_this_month", json_integer((json_int_t)downgrades));
    json_object_set_new(j, "top_by_calls", top(&d, by_calls, 0));
    json_object_set_new(j, "top_by_revenue", top(&d, by_billed, 1)); /* each currency's own top */
    json_object_set_new(j, "near_quota", near); /* the first NEAR_MAX; the count says how many in all */
    json_object_set_new(j, "near_quota_count", json_integer((json_int_t)near_count));
    /* What needs the owner: customers whose invoice cannot be made, usage kept aside. */
    uint64_t failing = 0, rejected = 0;
    tg_store_billing_failure_count(a->d.store, &failing, &err);
    tg_store_usage_rejected_count(a->d.store, &rejected, &err);
    json_object_set_new(j, "billing_failures", json_integer((json_int_t)failing));
    json_object_set_new(j, "rejected_usage_rows", json_integer((json_int_t)rejected));
    /* Dunning: customers whose payments failed (past_due: still served) and those dunning
     * suspended (402 payment_required), with when they fell behind; the first NEAR_MAX. */
    json_t *due = json_array();
    size_t due_count = 0;
    for (size_t i = 0; i < d.n; i++) {
        const tg_customer_t *c = &d.rows[i].c;
        tg_dunning_row_t dr;
        int found = 0;
        int past_due = strcmp(c->status, "past_due") == 0;
        if (!past_due && strcmp(c->status, "suspended") != 0)
            continue;
        if (tg_store_dunning_get(a->d.store, c->id, &dr, &found, &err) != 0 || !found)
            continue; /* suspended by the owner, not by dunning */
        if (due_count++ < NEAR_MAX)
            json_array_append_new(due, json_pack("{s:s,s:s,s:s,s:s,s:o}", "id", c->id, "email", c->email, "plan",
                                                 c->plan_id, "status", c->status, "past_due_since",
                                                 tg_adm_json_time(dr.past_due_since)));
    }
    json_object_set_new(j, "past_due", due);
    json_object_set_new(j, "past_due_count", json_integer((json_int_t)due_count));
    free(d.rows);
    tg_adm_reply_json(res, 200, j);
}
