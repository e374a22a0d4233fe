/* admin_search.c - the owner's customer list with search, filters and a choice of order:
 * GET /v1/admin/customers?q=&plan=&status=&sort=&order=&limit=&cursor= (docs/api.md).
 *
 * This adapter only reads and checks the parameters; the store does the search
 * (tg_store_customer_search, store.h, which says what matches and why). Without any of q, plan,
 * status, sort and order the list is the one it always was (admin_lists.c). A cursor carries
 * its order in the list's name ("customers.email.asc"): a cursor of one order passed with
 * another is a 400, never a page that silently skips rows; the filters may change between pages
 * (the cursor is a position in the order, not in the result). */
#include <stdio.h>
#include <string.h>

#include "admin/admin_int.h"
#include "util/period.h"
#include "util/money.h"
#include "util/utf8.h"

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

int tg_adm_query_text(const tg_admin_request_t *r, const char *name, char *out, size_t cap)
{
    char raw[3 * 256];
    int got = tg_adm_query_param(r, name, raw, sizeof(raw));
    if (got <= 0)
        return got;
    size_t n = 0;
    for (const char *p = raw; *p != '\0'; p++) {
        int c = (unsigned char)*p;
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi = hexval(p[1]), lo = hi >= 0 ? hexval(p[2]) : -1;
            if (lo < 0 || (hi == 0 && lo == 0)) /* a bad escape, or a NUL */
                return -1;
            c = hi * 16 + lo;
            p += 2;
        }
        if (n + 1 >= cap)
            return -1;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    char check[3 * 256]; /* n < cap <= ... : valid UTF-8 is what the scrub leaves unchanged */
    if (n >= sizeof(check))
        return -1;
    memcpy(check, out, n + 1);
    tg_utf8_scrub(check);
    return strcmp(check, out) == 0 ? 1 : -1;
}

static int one_of(const char *v, const char *const *set)
{
    for (; *set != NULL; set++)
        if (strcmp(v, *set) == 0)
            return 1;
    return 0;
}

static int valid_plan_id(const char *s)
{
    for (const char *p = s; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '-' || *p == '.'))
            return 0;
    return 1;
}

int tg_adm_customer_query_parse(const tg_admin_request_t *r, tg_adm_customer_params_t *p, tg_admin_response_t *res)
{
    static const char *const statuses[] = {"trialing", "active",     "past_due", "suspended",
                                           "canceled", "incomplete", NULL};
    static const char *const sorts[] = {"created", "email", "name", NULL};
    memset(p, 0, sizeof(*p));
    snprintf(p->sort, sizeof(p->sort), "created");
    if (tg_adm_query_text(r, "q", p->q, sizeof(p->q)) < 0) {
        tg_adm_reply_error(res, 400, "invalid_parameter", "q: at most %d bytes of percent-encoded UTF-8.",
                           TG_CUSTOMER_SEARCH_MAX - 1);
        return -1;
    }
    if (tg_adm_query_text(r, "plan", p->plan, sizeof(p->plan)) < 0 || !valid_plan_id(p->plan)) {
        tg_adm_reply_error(res, 400, "invalid_parameter", "plan: a plan id.");
        return -1;
    }
    if (tg_adm_query_text(r, "status", p->status, sizeof(p->status)) < 0 ||
        (p->status[0] != '\0' && !one_of(p->status, statuses))) {
        tg_adm_reply_error(res, 400, "invalid_parameter",
                           "status: trialing, active, past_due, suspended, canceled or incomplete.");
        return -1;
    }
    if (tg_adm_query_text(r, "sort", p->sort, sizeof(p->sort)) < 0 || !one_of(p->sort, sorts)) {
        tg_adm_reply_error(res, 400, "invalid_parameter", "sort: created, email or name.");
        return -1;
    }
    tg_customer_query_t *cq = &p->q_;
    *cq = (tg_customer_query_t){p->q, p->plan, p->status, tg_adm_now_s(), TG_CUSTOMER_SORT_CREATED, 0};
    cq->sort = strcmp(p->sort, "email") == 0  ? TG_CUSTOMER_SORT_EMAIL
               : strcmp(p->sort, "name") == 0 ? TG_CUSTOMER_SORT_NAME
                                              : TG_CUSTOMER_SORT_CREATED;
    cq->ascending = cq->sort != TG_CUSTOMER_SORT_CREATED; /* newest first; A to Z */
    char order[8] = "";
    int got = tg_adm_query_text(r, "order", order, sizeof(order));
    if (got < 0 || (got > 0 && strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0)) {
        tg_adm_reply_error(res, 400, "invalid_parameter", "order: asc or desc.");
        return -1;
    }
    if (got > 0)
        cq->ascending = strcmp(order, "asc") == 0;
    /* the historical order keeps its cursors' list name: its keys are the same */
    snprintf(p->list, sizeof(p->list), "customers");
    if (cq->sort != TG_CUSTOMER_SORT_CREATED || cq->ascending)
        snprintf(p->list, sizeof(p->list), "customers.%s.%s", p->sort, cq->ascending ? "asc" : "desc");
    return 0;
}

void tg_adm_search_customers(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    tg_adm_customer_params_t p;
    tg_page_t page;
    if (tg_adm_customer_query_parse(r, &p, res) != 0 || tg_adm_page_parse(r, p.list, &page, res) != 0)
        return;
    tg_err_t err = {0};
    tg_page_end_t end;
    tg_adm_list_ctx_t lc = {a, json_array()};
    int rc = tg_store_customer_search(a->d.store, &p.q_, &page, tg_adm_list_customer_cb, &lc, &end, &err);
    if (rc != 0) {
        json_decref(lc.arr);
        tg_adm_reply_list_error(res, rc, "customers", &err);
        return;
    }
    tg_adm_reply_page(res, p.list, lc.arr, &end);
}

/* ---- GET /v1/admin/invoices?customer=&status=&currency=&from=&to= ---- */

int64_t tg_adm_parse_day(const char *s)
{
    int y = 0, m = 0, d = 0;
    for (int i = 0; i < 10; i++)
        if ((i == 4 || i == 7) ? s[i] != '-' : (s[i] < '0' || s[i] > '9'))
            return -1;
    if (s[10] != '\0')
        return -1;
    y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    m = (s[5] - '0') * 10 + (s[6] - '0');
    d = (s[8] - '0') * 10 + (s[9] - '0');
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] || (m == 2 && d == 29 && !leap))
        return -1;
    return tg_days_from_civil(y, m, d) * 86400;
}

typedef struct {
    json_t *totals;
    int failed;
} totals_ctx_t;

/* {"usd": {"count", "invoiced", "by_status": {"paid": {"count", "total"}, ...}}}: each currency
 * apart; invoiced = open + paid + uncollectible (finalized and not void), as the revenue figures. */
static int on_totals(const char *currency, const char *status, int64_t total, uint64_t count, void *arg)
{
    totals_ctx_t *t = arg;
    int digits = tg_currency_digits(currency);
    json_t *cur = json_object_get(t->totals, currency);
    if (cur == NULL) {
        cur = json_pack("{s:I,s:I,s:{}}", "count", (json_int_t)0, "invoiced_minor", (json_int_t)0, "by_status");
        json_object_set_new(t->totals, currency, cur);
    }
    if (cur == NULL || digits < 0)
        return t->failed = 1;
    json_object_set_new(json_object_get(cur, "by_status"), status,
                        json_pack("{s:I,s:o}", "count", (json_int_t)count, "total", tg_adm_money_json(total, digits)));
    json_object_set_new(cur, "count",
                        json_integer(json_integer_value(json_object_get(cur, "count")) + (json_int_t)count));
    if (strcmp(status, "open") == 0 || strcmp(status, "paid") == 0 || strcmp(status, "uncollectible") == 0) {
        tg_money_t sum = (tg_money_t)json_integer_value(json_object_get(cur, "invoiced_minor"));
        if (tg_money_add(sum, total, &sum) != 0)
            return t->failed = 1;
        json_object_set_new(cur, "invoiced_minor", json_integer((json_int_t)sum));
    }
    return 0;
}

int tg_adm_invoice_query_parse(const tg_admin_request_t *r, tg_adm_invoice_params_t *p, tg_admin_response_t *res)
{
    static const char *const statuses[] = {"draft", "open", "paid", "void", "uncollectible", NULL};
    char from[16] = "", to[16] = "";
    memset(p, 0, sizeof(*p));
    tg_invoice_query_t *q = &p->q_;
    if (tg_adm_query_param(r, "customer", p->customer, sizeof(p->customer)) < 0) {
        tg_adm_reply_error(res, 400, "invalid_parameter", "customer: not a customer id.");
        return -1;
    }
    if (tg_adm_query_text(r, "status", p->status, sizeof(p->status)) < 0 ||
        (p->status[0] != '\0' && !one_of(p->status, statuses))) {
        tg_adm_reply_error(res, 400, "invalid_parameter", "status: draft, open, paid, void or uncollectible.");
        return -1;
    }
    int got = tg_adm_query_text(r, "currency", p->currency, sizeof(p->currency));
    for (char *c = p->currency; *c != '\0'; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    if (got < 0 || (p->currency[0] != '\0' && (strlen(p->currency) != 3 || tg_currency_digits(p->currency) < 0))) {
        tg_adm_reply_error(res, 400, "invalid_parameter", "currency: an ISO 4217 code such as usd.");
        return -1;
    }
    if (tg_adm_query_text(r, "from", from, sizeof(from)) < 0 ||
        (from[0] != '\0' && (q->period_from = tg_adm_parse_day(from)) < 0)) {
        tg_adm_reply_error(res, 400, "invalid_parameter", "from: a date, YYYY-MM-DD.");
        return -1;
    }
    if (tg_adm_query_text(r, "to", to, sizeof(to)) < 0 ||
        (to[0] != '\0' && (q->period_to = tg_adm_parse_day(to)) < 0)) {
        tg_adm_reply_error(res, 400, "invalid_parameter", "to: a date, YYYY-MM-DD.");
        return -1;
    }
    q->customer_id = p->customer;
    q->status = p->status;
    q->currency = p->currency;
    return 0;
}

void tg_adm_search_invoices(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    tg_adm_invoice_params_t p;
    if (tg_adm_invoice_query_parse(r, &p, res) != 0)
        return;
    tg_invoice_query_t q = p.q_;
    tg_page_t page;
    if (tg_adm_page_parse(r, "invoices", &page, res) != 0) /* the plain list's cursors: the same order */
        return;
    tg_err_t err = {0};
    tg_page_end_t end;
    json_t *arr = json_array();
    int rc = tg_store_invoice_search(a->d.store, &q, &page, tg_adm_list_invoice_cb, arr, &end, &err);
    if (rc != 0) {
        json_decref(arr);
        tg_adm_reply_list_error(res, rc, "invoices", &err);
        return;
    }
    /* the totals of every matching invoice, not of this page: on the first page only, so that a
     * client walking the pages pays for them once */
    totals_ctx_t t = {NULL, 0};
    if (page.after[0] == '\0') {
        t.totals = json_object();
        rc = tg_store_invoice_search_totals(a->d.store, &q, on_totals, &t, &err);
        if (rc != 0 || t.failed) {
            json_decref(arr);
            json_decref(t.totals);
            tg_adm_reply_error(res, 500, "internal_error", "Summing invoices failed: %s",
                               rc != 0 ? err.msg : "a total leaves the money range");
            return;
        }
        const char *code;
        json_t *c;
        json_object_foreach(t.totals, code, c)
        {
            json_object_set_new(c, "invoiced",
                                tg_adm_money_json((tg_money_t)json_integer_value(json_object_get(c, "invoiced_minor")),
                                                  tg_currency_digits(code)));
            json_object_del(c, "invoiced_minor");
        }
    }
    tg_adm_reply_page_with(res, "invoices", arr, &end, "totals", t.totals);
}
