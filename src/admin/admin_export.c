/* admin_export.c - CSV exports for the owner (issue 15): GET /v1/admin/export/customers.csv,
 * invoices.csv and usage.csv (docs/api.md, "Exports").
 *
 * The same filters as the lists (customers: q, plan, status, sort, order; invoices: customer,
 * status, currency, from, to; admin_search.c parses both), read from the store a page of
 * EXPORT_PAGE rows at a time with the lists' keyset cursors, so the store never holds more than
 * a page. The answer itself is one body (the admin transport has no chunked replies), capped at
 * EXPORT_MAX bytes: past it the export is refused (422 export_too_large, narrow the filters)
 * rather than cut short, since a CSV that silently ends early reads as a complete one. Text
 * cells are guarded against formula injection (util/csv.h). Runs on the admin thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_int.h"
#include "util/csv.h"
#include "util/money.h"

#define EXPORT_PAGE 1000
#define EXPORT_MAX (64u << 20)
#define EXPORT_DAYS_MAX 366 /* usage.csv: the longest range of days */

static void time_cell(tg_csv_t *w, int64_t t)
{
    char buf[32] = "";
    if (t != 0)
        tg_adm_fmt_time(t, buf, sizeof(buf));
    tg_csv_number(w, buf);
}

/* Hands the CSV to res, or the error it ended with. */
static void reply_csv(tg_csv_t *w, int rc, const tg_err_t *err, const char *what, tg_admin_response_t *res)
{
    if (rc == 0 && tg_csv_status(w) == TG_ERANGE) {
        tg_adm_reply_error(res, 422, "export_too_large",
                           "The %s export passes %u MiB; narrow it with the list's filters.", what, EXPORT_MAX >> 20);
    } else if (rc != 0 || tg_csv_status(w) != 0) {
        tg_adm_reply_error(res, 500, "internal_error", "Exporting %s failed: %s", what,
                           rc != 0 ? err->msg : "out of memory");
    } else {
        res->status = 200;
        res->content_type = "text/csv; charset=utf-8";
        res->body = tg_csv_take(w, &res->body_len);
        if (res->body == NULL)
            tg_adm_reply_error(res, 500, "internal_error", "Exporting %s failed: out of memory", what);
    }
    tg_csv_free(w);
}

static int on_customer(const tg_customer_t *c, void *arg)
{
    tg_csv_t *w = arg;
    tg_csv_text(w, c->id);
    tg_csv_text(w, c->email);
    tg_csv_text(w, c->name);
    tg_csv_text(w, c->plan_id);
    tg_csv_text(w, tg_adm_display_status(c, tg_adm_now_s()));
    time_cell(w, c->created_at);
    time_cell(w, strcmp(c->status, "incomplete") == 0 ? 0 : c->trial_end);
    time_cell(w, c->cancel_at);
    tg_csv_text(w, c->pending_plan_id);
    tg_csv_end(w);
    return tg_csv_status(w) != 0; /* full: stop reading */
}

static void export_customers(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    tg_adm_customer_params_t p;
    if (tg_adm_customer_query_parse(r, &p, res) != 0)
        return;
    tg_csv_t w;
    tg_csv_init(&w, EXPORT_MAX);
    static const char *const head[] = {"id",         "email",     "name",      "plan",        "status",
                                       "created_at", "trial_end", "cancel_at", "pending_plan"};
    for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
        tg_csv_number(&w, head[i]);
    tg_csv_end(&w);
    tg_page_t page = {EXPORT_PAGE, ""};
    tg_page_end_t end = {0};
    tg_err_t err = {0};
    int rc = 0;
    do {
        rc = tg_store_customer_search(a->d.store, &p.q_, &page, on_customer, &w, &end, &err);
        memcpy(page.after, end.next, sizeof(page.after));
    } while (rc == 0 && end.has_more && tg_csv_status(&w) == 0);
    reply_csv(&w, rc, &err, "customers", res);
}

static int on_invoice(const tg_invoice_t *inv, void *arg)
{
    tg_csv_t *w = arg;
    char total[TG_MONEY_FMT_MAX] = "";
    int digits = tg_currency_digits(inv->currency);
    if (tg_money_format(inv->total, digits >= 0 ? digits : 9, total, sizeof(total)) < 0)
        tg_money_format(inv->total, 9, total, sizeof(total)); /* exact, whatever it holds */
    tg_csv_text(w, inv->id);
    tg_csv_text(w, inv->number);
    tg_csv_text(w, inv->customer_id);
    tg_csv_text(w, inv->status);
    tg_csv_text(w, inv->currency);
    tg_csv_number(w, total);
    time_cell(w, inv->period_start);
    time_cell(w, inv->period_end);
    time_cell(w, inv->created_at);
    time_cell(w, inv->finalized_at);
    tg_csv_end(w);
    return tg_csv_status(w) != 0;
}

static void export_invoices(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    tg_adm_invoice_params_t p;
    if (tg_adm_invoice_query_parse(r, &p, res) != 0)
        return;
    tg_csv_t w;
    tg_csv_init(&w, EXPORT_MAX);
    static const char *const head[] = {"id",    "number",       "customer",   "status",     "currency",
                                       "total", "period_start", "period_end", "created_at", "finalized_at"};
    for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
        tg_csv_number(&w, head[i]);
    tg_csv_end(&w);
    tg_page_t page = {EXPORT_PAGE, ""};
    tg_page_end_t end = {0};
    tg_err_t err = {0};
    int rc = 0;
    do {
        rc = tg_store_invoice_search(a->d.store, &p.q_, &page, on_invoice, &w, &end, &err);
        memcpy(page.after, end.next, sizeof(page.after));
    } while (rc == 0 && end.has_more && tg_csv_status(&w) == 0);
    reply_csv(&w, rc, &err, "invoices", res);
}

/* ---- usage.csv: one row per customer, day and metric ---- */

typedef struct {
    char id[TG_ID_MAX];
    char email[TG_EMAIL_MAX];
} who_t;

typedef struct {
    who_t *rows;
    size_t n;
} who_page_t;

static int on_who(const tg_customer_t *c, void *arg)
{
    who_page_t *p = arg; /* the page is at most EXPORT_PAGE long: rows has room */
    memcpy(p->rows[p->n].id, c->id, sizeof(c->id));
    memcpy(p->rows[p->n].email, c->email, sizeof(c->email));
    p->n++;
    return 0;
}

typedef struct {
    tg_csv_t *w;
    const who_t *who;
} usage_ctx_t;

static int on_day(const char *day, const char *metric, uint64_t units, void *arg)
{
    usage_ctx_t *u = arg;
    char n[24];
    snprintf(n, sizeof(n), "%llu", (unsigned long long)units);
    tg_csv_text(u->w, u->who->id);
    tg_csv_text(u->w, u->who->email);
    tg_csv_number(u->w, day);
    tg_csv_text(u->w, metric);
    tg_csv_number(u->w, n);
    tg_csv_end(u->w);
    return tg_csv_status(u->w) != 0;
}

static void export_usage(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    /* customer and the days [from, to): the invoice filters' parser reads them (as dates) */
    tg_adm_invoice_params_t p;
    if (tg_adm_invoice_query_parse(r, &p, res) != 0)
        return;
    int64_t to = p.q_.period_to, from = p.q_.period_from;
    if (to == 0)
        to = (tg_adm_now_s() / 86400 + 1) * 86400; /* through today (UTC) */
    if (from == 0)
        from = to - 31 * 86400;
    if (from >= to || to - from > (int64_t)EXPORT_DAYS_MAX * 86400) {
        tg_adm_reply_error(res, 400, "invalid_parameter", "from: before to, at most %d days before it.",
                           EXPORT_DAYS_MAX);
        return;
    }
    if (a->d.meter != NULL) /* the calls metered so far, as the dashboard does */
        tg_meter_flush(a->d.meter);
    who_t *rows = malloc(EXPORT_PAGE * sizeof(*rows));
    if (rows == NULL) {
        tg_adm_reply_error(res, 500, "internal_error", "Exporting usage failed: out of memory");
        return;
    }
    tg_csv_t w;
    tg_csv_init(&w, EXPORT_MAX);
    static const char *const head[] = {"customer", "email", "day", "metric", "units"};
    for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
        tg_csv_number(&w, head[i]);
    tg_csv_end(&w);
    tg_err_t err = {0};
    int rc = 0;
    if (p.customer[0] != '\0') {
        tg_customer_t c;
        rc = tg_store_customer_get(a->d.store, p.customer, &c, &err);
        if (rc == TG_ENOTFOUND) {
            free(rows);
            tg_csv_free(&w);
            tg_adm_reply_error(res, 404, "not_found", "No such customer.");
            return;
        }
        if (rc == 0) {
            on_who(&c, &(who_page_t){rows, 0});
            usage_ctx_t u = {&w, &rows[0]};
            rc = tg_store_usage_daily(a->d.store, c.id, from, to, on_day, &u, &err);
        }
    } else {
        /* every customer, oldest first (a stable order for files compared over time) */
        tg_customer_query_t all = {.now = tg_adm_now_s(), .sort = TG_CUSTOMER_SORT_CREATED, .ascending = 1};
        tg_page_t page = {EXPORT_PAGE, ""};
        tg_page_end_t end = {0};
        do {
            who_page_t wp = {rows, 0};
            rc = tg_store_customer_search(a->d.store, &all, &page, on_who, &wp, &end, &err);
            memcpy(page.after, end.next, sizeof(page.after));
            for (size_t i = 0; rc == 0 && i < wp.n && tg_csv_status(&w) == 0; i++) {
                usage_ctx_t u = {&w, &rows[i]};
                rc = tg_store_usage_daily(a->d.store, rows[i].id, from, to, on_day, &u, &err);
            }
        } while (rc == 0 && end.has_more && tg_csv_status(&w) == 0);
    }
    free(rows);
    reply_csv(&w, rc, &err, "usage", res);
}

void tg_adm_export(tg_admin_t *a, const tg_adm_segs_t *s, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    if (!tg_adm_method_is(r, "GET"))
        tg_adm_reply_error(res, 405, "method_not_allowed", "Use GET.");
    else if (tg_adm_seg_is(s, 3, "customers.csv"))
        export_customers(a, r, res);
    else if (tg_adm_seg_is(s, 3, "invoices.csv"))
        export_invoices(a, r, res);
    else if (tg_adm_seg_is(s, 3, "usage.csv"))
        export_usage(a, r, res);
    else
        tg_adm_reply_error(res, 404, "route_not_found", "No such export: the exports are customers.csv, invoices.csv and usage.csv.");
}
