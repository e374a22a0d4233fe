/* admin_lists.c - paged lists on the admin and portal APIs: the `limit` and `cursor` query
 * parameters, the page's answer, and the lists of what could not be stored or billed.
 *
 * A cursor is opaque to clients: base64url (no padding) of "<list>|<sort key>", where the sort
 * key is the store's (store.h, "lists, one page at a time"). The list's name in it makes a
 * cursor of one list a 400 on another instead of a silently wrong page; a cursor that does not
 * decode, or whose key the store cannot parse, is a 400 naming the parameter too. Nothing in a
 * cursor is trusted: the store binds the key as a value and checks its shape. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "admin/admin_int.h"

#define LIMIT_DEFAULT 100
#define CURSOR_MAX 1024 /* base64 of "<list>|" and a TG_PAGE_KEY_MAX key, with room */

int tg_adm_query_param(const tg_admin_request_t *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *q = r->query, *end = r->query != NULL ? r->query + r->query_len : NULL;
    while (q != NULL && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q)), *stop = amp != NULL ? amp : end;
        if ((size_t)(stop - q) > nl && memcmp(q, name, nl) == 0 && q[nl] == '=') {
            size_t vl = (size_t)(stop - q) - nl - 1;
            if (vl >= cap)
                return -1;
            memcpy(out, q + nl + 1, vl);
            out[vl] = '\0';
            return 1;
        }
        q = stop + 1;
    }
    return 0;
}

int tg_adm_page_parse(const tg_admin_request_t *r, const char *list, tg_page_t *page, tg_admin_response_t *res)
{
    char buf[CURSOR_MAX];
    memset(page, 0, sizeof(*page));
    page->limit = LIMIT_DEFAULT;
    int got = tg_adm_query_param(r, "limit", buf, 8);
    if (got != 0) {
        unsigned long v = 0;
        size_t i = 0;
        for (; got > 0 && buf[i] >= '0' && buf[i] <= '9' && v <= TG_PAGE_MAX; i++)
            v = v * 10 + (unsigned long)(buf[i] - '0');
        if (got < 0 || i == 0 || buf[i] != '\0' || v < 1 || v > TG_PAGE_MAX) {
            tg_adm_reply_error(res, 400, "invalid_parameter", "limit: a whole number from 1 to %d.", TG_PAGE_MAX);
            return -1;
        }
        page->limit = v;
    }
    if ((got = tg_adm_query_param(r, "cursor", buf, sizeof(buf))) == 0)
        return 0;
    unsigned char raw[CURSOR_MAX];
    size_t rawlen = 0, ll = strlen(list);
    if (got < 0 ||
        sodium_base642bin(raw, sizeof(raw) - 1, buf, strlen(buf), NULL, &rawlen, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        rawlen <= ll + 1 || memcmp(raw, list, ll) != 0 || raw[ll] != '|' || rawlen - ll - 1 >= TG_PAGE_KEY_MAX ||
        memchr(raw, '\0', rawlen) != NULL) {
        tg_adm_reply_error(res, 400, "invalid_parameter",
                           "cursor: not a cursor of this list; pass next_cursor from the previous page as it came.");
        return -1;
    }
    memcpy(page->after, raw + ll + 1, rawlen - ll - 1);
    page->after[rawlen - ll - 1] = '\0';
    return 0;
}

void tg_adm_reply_page(tg_admin_response_t *res, const char *list, json_t *data, const tg_page_end_t *end)
{
    tg_adm_reply_page_with(res, list, data, end, NULL, NULL);
}

void tg_adm_reply_page_with(tg_admin_response_t *res, const char *list, json_t *data, const tg_page_end_t *end,
                            const char *name, json_t *value)
{
    json_t *next = json_null();
    if (end->has_more) {
        char raw[CURSOR_MAX], b64[CURSOR_MAX * 2];
        int n = snprintf(raw, sizeof(raw), "%s|%s", list, end->next);
        if (n > 0 && (size_t)n < sizeof(raw)) {
            sodium_bin2base64(b64, sizeof(b64), (const unsigned char *)raw, (size_t)n,
                              sodium_base64_VARIANT_URLSAFE_NO_PADDING);
            json_decref(next);
            next = json_string(b64);
        }
    }
    json_t *j = json_pack("{s:o,s:b,s:o}", "data", data, "has_more", end->has_more, "next_cursor", next);
    if (name != NULL && value != NULL)
        json_object_set_new(j, name, value);
    else
        json_decref(value);
    tg_adm_reply_json(res, 200, j);
}

/* A store error on a paged list: a cursor whose key the store refused is the client's (400). */
void tg_adm_reply_list_error(tg_admin_response_t *res, int rc, const char *what, const tg_err_t *err)
{
    if (rc == TG_EINVAL)
        tg_adm_reply_error(res, 400, "invalid_parameter", "cursor: %s.", err->msg);
    else
        tg_adm_reply_error(res, 500, "internal_error", "Listing %s failed: %s", what, err->msg);
}

/* ---- GET /v1/admin/metering/rejected ---- */

static int on_rejected(const tg_usage_rejected_t *r, void *arg)
{
    /* batch and units as text: they may not fit a JSON number that every client reads exactly */
    char units[24], batch[24];
    snprintf(units, sizeof(units), "%llu", (unsigned long long)r->row.units);
    snprintf(batch, sizeof(batch), "%llu", (unsigned long long)r->batch_id);
    json_array_append_new(arg, json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:i,s:s,s:o}", "id", (json_int_t)r->id,
                                         "batch", batch, "customer", r->row.customer_id, "key", r->row.key_id, "plan",
                                         r->row.plan_id, "metric", r->row.metric, "units", units, "endpoint",
                                         r->row.endpoint, "period_start", tg_adm_json_time(r->row.period_start),
                                         "status", r->row.status, "reason", r->reason, "rejected_at",
                                         tg_adm_json_time(r->rejected_at)));
    return 0;
}

void tg_adm_list_rejected(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    tg_page_t page;
    if (tg_adm_page_parse(r, "rejected", &page, res) != 0)
        return;
    tg_err_t err = {0};
    tg_page_end_t end;
    json_t *arr = json_array();
    int rc = tg_store_usage_rejected_list(a->d.store, &page, on_rejected, arr, &end, &err);
    if (rc != 0) {
        json_decref(arr);
        tg_adm_reply_list_error(res, rc, "rejected usage", &err);
        return;
    }
    tg_adm_reply_page(res, "rejected", arr, &end);
}

/* ---- GET /v1/admin/billing/failures ---- */

static int on_failure(const tg_billing_failure_t *f, void *arg)
{
    json_array_append_new(arg, json_pack("{s:s,s:s,s:s,s:o,s:o,s:I}", "customer", f->customer_id, "type", f->type,
                                         "message", f->message, "first_at", tg_adm_json_time(f->first_at), "last_at",
                                         tg_adm_json_time(f->last_at), "runs", (json_int_t)f->runs));
    return 0;
}

void tg_adm_list_billing_failures(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    tg_page_t page;
    if (tg_adm_page_parse(r, "billing_failures", &page, res) != 0)
        return;
    tg_err_t err = {0};
    tg_page_end_t end;
    json_t *arr = json_array();
    int rc = tg_store_billing_failure_list(a->d.store, &page, on_failure, arr, &end, &err);
    if (rc != 0) {
        json_decref(arr);
        tg_adm_reply_list_error(res, rc, "billing failures", &err);
        return;
    }
    tg_adm_reply_page(res, "billing_failures", arr, &end);
}

/* ---- customers, keys, invoices (admin and portal) ---- */

void tg_adm_list_customers(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    static const char *const search[] = {"q", "plan", "status", "sort", "order"};
    char v[2];
    for (size_t i = 0; i < sizeof(search) / sizeof(search[0]); i++)
        if (tg_adm_query_param(r, search[i], v, sizeof(v)) != 0) { /* present, even empty or long */
            tg_adm_search_customers(a, r, res);
            return;
        }
    tg_page_t page;
    if (tg_adm_page_parse(r, "customers", &page, res) != 0)
        return;
    tg_err_t err = {0};
    tg_page_end_t end;
    tg_adm_list_ctx_t lc = {a, json_array()};
    int rc = tg_store_customer_page(a->d.store, &page, tg_adm_list_customer_cb, &lc, &end, &err);
    if (rc != 0) {
        json_decref(lc.arr);
        tg_adm_reply_list_error(res, rc, "customers", &err);
        return;
    }
    tg_adm_reply_page(res, "customers", lc.arr, &end);
}

void tg_adm_list_keys(tg_admin_t *a, const tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    tg_page_t page;
    if (tg_adm_page_parse(r, "keys", &page, res) != 0)
        return;
    tg_err_t err = {0};
    tg_page_end_t end;
    tg_adm_list_ctx_t lc = {a, json_array()};
    int rc = tg_store_key_page(a->d.store, c->id, &page, tg_adm_list_key_cb, &lc, &end, &err);
    if (rc != 0) {
        json_decref(lc.arr);
        tg_adm_reply_list_error(res, rc, "keys", &err);
        return;
    }
    tg_adm_reply_page(res, "keys", lc.arr, &end);
}

typedef struct {
    json_t *arr;
    int hide_drafts;
} invoice_list_t;

static int on_invoice(const tg_invoice_t *inv, void *arg)
{
    invoice_list_t *l = arg;
    if (l->hide_drafts && strcmp(inv->status, "draft") == 0)
        return 0;
    return tg_adm_list_invoice_cb(inv, l->arr);
}

void tg_adm_list_invoices(tg_admin_t *a, const char *customer_id, int hide_drafts, const tg_admin_request_t *r,
                          tg_admin_response_t *res)
{
    tg_page_t page;
    if (tg_adm_page_parse(r, "invoices", &page, res) != 0)
        return;
    tg_err_t err = {0};
    tg_page_end_t end;
    invoice_list_t l = {json_array(), hide_drafts};
    int rc = tg_store_invoice_page(a->d.store, customer_id, &page, on_invoice, &l, &end, &err);
    if (rc != 0) {
        json_decref(l.arr);
        tg_adm_reply_list_error(res, rc, "invoices", &err);
        return;
    }
    tg_adm_reply_page(res, "invoices", l.arr, &end);
}
