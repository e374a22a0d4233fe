/* reconcile_stripe.c - the reading half of reconcile.h: a customer's Stripe invoice for a period,
 * its lines and their prices' lookup keys, over GET requests only (nothing is ever changed in
 * Stripe by a reconciliation, so no Idempotency-Key is needed). */
#include "payments/reconcile.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "payments/stripe_form.h"

#define INVOICES_MAX 10000 /* invoices of one customer scanned for a period */
#define PRICES_MAX 10000   /* prices cached in one run */
/* Invoices come with their first lines embedded; 20 a page keeps a page well under the client's
 * TG_STRIPE_RESPONSE_MAX. Lines are small: 100 (Stripe's maximum) a page. */
#define INVOICE_PAGE "20"
#define LINE_PAGE "100"
#define ATTEMPTS 3

typedef struct {
    char id[TG_RECON_ID_MAX];
    char lookup_key[TG_RECON_KEY_MAX];
} price_t;

struct tg_recon_stripe {
    const tg_stripe_settings_t *s;
    price_t *prices;
    size_t nprices, cap;
};

int tg_recon_stripe_new(const tg_stripe_settings_t *s, tg_recon_stripe_t **out, tg_err_t *err)
{
    *out = calloc(1, sizeof(**out));
    if (*out == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory");
    (*out)->s = s;
    return 0;
}

void tg_recon_stripe_free(tg_recon_stripe_t *rs)
{
    if (rs == NULL)
        return;
    free(rs->prices);
    free(rs);
}

/* Stripe ids go into paths: only the characters Stripe uses in them. */
static int id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= 200)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') || (id[i] >= '0' && id[i] <= '9') ||
              id[i] == '_'))
            return 0;
    return 1;
}

/* One GET; a call Stripe says may be retried (429, 5xx, no answer) is tried ATTEMPTS times,
 * 0.5 s then 1 s apart. *body receives the parsed answer (json_decref it). */
static int get(tg_recon_stripe_t *rs, const char *path, const char *query, json_t **body, tg_err_t *err)
{
    for (int attempt = 1;; attempt++) {
        tg_stripe_result_t r = {0};
        int rc = tg_stripe_call(rs->s, "GET", path, query, strlen(query), NULL, &r, err);
        if (rc == 0 && r.body == NULL)
            rc = tg_errf(err, TG_EINVAL, "GET %s: the answer is not JSON", path);
        if (rc == 0)
            *body = json_incref(r.body);
        tg_stripe_result_clear(&r);
        if (rc != TG_EIO || attempt == ATTEMPTS)
            return rc;
        struct timespec ts = {0, 500000000L};
        if (attempt == 2)
            ts = (struct timespec){1, 0};
        nanosleep(&ts, NULL);
    }
}

static int int_field(const json_t *o, const char *k, int64_t *out)
{
    const json_t *v = json_object_get(o, k);
    if (!json_is_integer(v))
        return -1;
    *out = (int64_t)json_integer_value(v);
    return 0;
}

static void copy_str(char *dst, size_t cap, const json_t *v)
{
    snprintf(dst, cap, "%s", json_is_string(v) ? json_string_value(v) : "");
}

static int invoice_header(const json_t *o, tg_recon_invoice_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_string(json_object_get(o, "id")) || !json_is_string(json_object_get(o, "currency")) ||
        int_field(o, "period_start", &out->period_start) != 0 || int_field(o, "period_end", &out->period_end) != 0 ||
        int_field(o, "total", &out->total) != 0)
        return -1;
    copy_str(out->id, sizeof(out->id), json_object_get(o, "id"));
    copy_str(out->status, sizeof(out->status), json_object_get(o, "status"));
    copy_str(out->currency, sizeof(out->currency), json_object_get(o, "currency"));
    int_field(o, "created", &out->created);
    /* Tax is Stripe's business alone (tollgate computes none): compare before it when Stripe
     * says what that is (null unless it computed tax). Discounts stay in: they are a difference. */
    int_field(o, "total_excluding_tax", &out->total);
    return 0;
}

/* The lookup key of a price id, from the cache or GET /v1/prices/{id}. */
static int price_key(tg_recon_stripe_t *rs, const char *id, char *key, size_t cap, tg_err_t *err)
{
    for (size_t i = 0; i < rs->nprices; i++)
        if (strcmp(rs->prices[i].id, id) == 0) {
            snprintf(key, cap, "%s", rs->prices[i].lookup_key);
            return 0;
        }
    if (!id_ok(id))
        return tg_errf(err, TG_EINVAL, "an invoice line names the price \"%.64s\", not a Stripe id", id);
    char path[TG_RECON_ID_MAX + 16];
    snprintf(path, sizeof(path), "/v1/prices/%s", id);
    json_t *p = NULL;
    int rc = get(rs, path, "", &p, err);
    if (rc != 0)
        return rc;
    copy_str(key, cap, json_object_get(p, "lookup_key"));
    json_decref(p);
    if (rs->nprices == rs->cap) {
        size_t ncap = rs->cap ? rs->cap * 2 : 16;
        price_t *np = ncap <= PRICES_MAX ? realloc(rs->prices, ncap * sizeof(*np)) : NULL;
        if (np == NULL)
            return 0; /* not cached: asked again next time */
        rs->prices = np;
        rs->cap = ncap;
    }
    price_t *c = &rs->prices[rs->nprices++];
    snprintf(c->id, sizeof(c->id), "%s", id);
    snprintf(c->lookup_key, sizeof(c->lookup_key), "%s", key);
    return 0;
}

/* One line_item (basil shape): amount, quantity (null: 0), description, parent.type and
 * parent.subscription_item_details.proration, pricing.price_details.price (an id, or the price
 * itself when expanded). */
static int parse_line(tg_recon_stripe_t *rs, const json_t *o, tg_recon_line_t *l, tg_err_t *err)
{
    memset(l, 0, sizeof(*l));
    const json_t *qty = json_object_get(o, "quantity");
    if (!json_is_string(json_object_get(o, "id")) || int_field(o, "amount", &l->amount) != 0 ||
        !(json_is_null(qty) || qty == NULL || (json_is_integer(qty) && json_integer_value(qty) >= 0)))
        return tg_errf(err, TG_EINVAL, "an invoice line without an id, an integer amount or a quantity");
    copy_str(l->id, sizeof(l->id), json_object_get(o, "id"));
    copy_str(l->description, sizeof(l->description), json_object_get(o, "description"));
    l->quantity = json_is_integer(qty) ? (uint64_t)json_integer_value(qty) : 0;
    const json_t *parent = json_object_get(o, "parent");
    const json_t *sid = json_object_get(parent, "subscription_item_details");
    l->subscription_item =
        json_is_string(json_object_get(parent, "type")) &&
        strcmp(json_string_value(json_object_get(parent, "type")), "subscription_item_details") == 0 &&
        json_is_object(sid) && !json_is_true(json_object_get(sid, "proration"));
    const json_t *price = json_object_get(json_object_get(json_object_get(o, "pricing"), "price_details"), "price");
    if (json_is_object(price)) {
        copy_str(l->lookup_key, sizeof(l->lookup_key), json_object_get(price, "lookup_key"));
        return 0;
    }
    if (json_is_string(price))
        return price_key(rs, json_string_value(price), l->lookup_key, sizeof(l->lookup_key), err);
    return 0; /* an invoice item without a price */
}

/* Every line of invoice inv->id, a page at a time, into inv->lines. */
static int read_lines(tg_recon_stripe_t *rs, tg_recon_invoice_t *inv, tg_err_t *err)
{
    char path[TG_RECON_ID_MAX + 32], query[TG_RECON_ID_MAX + 64];
    snprintf(path, sizeof(path), "/v1/invoices/%s/lines", inv->id);
    char after[TG_RECON_ID_MAX] = "";
    size_t cap = 0;
    for (;;) {
        if (after[0] == '\0')
            snprintf(query, sizeof(query), "limit=" LINE_PAGE);
        else
            snprintf(query, sizeof(query), "limit=" LINE_PAGE "&starting_after=%s", after);
        json_t *page = NULL;
        int rc = get(rs, path, query, &page, err);
        if (rc != 0)
            return rc;
        const json_t *data = json_object_get(page, "data");
        if (!json_is_array(data)) {
            json_decref(page);
            return tg_errf(err, TG_EINVAL, "GET %s: no data list", path);
        }
        size_t i;
        const json_t *o;
        json_array_foreach(data, i, o)
        {
            if (inv->nlines == TG_RECON_LINES_MAX) {
                json_decref(page);
                return tg_errf(err, TG_EINVAL, "invoice %s has more than %d lines", inv->id, TG_RECON_LINES_MAX);
            }
            if (inv->nlines == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                tg_recon_line_t *nl = realloc(inv->lines, ncap * sizeof(*nl));
                if (nl == NULL) {
                    json_decref(page);
                    return tg_errf(err, TG_ENOMEM, "out of memory reading invoice %s", inv->id);
                }
                inv->lines = nl;
                cap = ncap;
            }
            if ((rc = parse_line(rs, o, &inv->lines[inv->nlines], err)) != 0) {
                json_decref(page);
                return rc;
            }
            snprintf(after, sizeof(after), "%s", inv->lines[inv->nlines].id);
            inv->nlines++;
        }
        int more = json_is_true(json_object_get(page, "has_more")) && json_array_size(data) > 0;
        json_decref(page);
        if (!more)
            return 0;
        if (!id_ok(after))
            return tg_errf(err, TG_EINVAL, "invoice %s: a line id that is not a Stripe id", inv->id);
    }
}

int tg_recon_stripe_invoice(tg_recon_stripe_t *rs, const char *stripe_customer, int64_t ps, int64_t pe,
                            tg_recon_invoice_t *out, int *found, tg_err_t *err)
{
    memset(out, 0, sizeof(*out));
    *found = 0;
    if (!id_ok(stripe_customer))
        return tg_errf(err, TG_EINVAL, "\"%.64s\" is not a Stripe customer id", stripe_customer);
    tg_recon_invoice_t *invs = NULL;
    size_t n = 0, cap = 0;
    char after[TG_RECON_ID_MAX] = "", query[2 * TG_RECON_ID_MAX + 96];
    int rc = 0;
    for (;;) {
        /* An invoice billing [ps, pe) is created at or after ps: older ones need not be read. */
        int len = snprintf(query, sizeof(query), "customer=%s&created[gte]=%lld&limit=" INVOICE_PAGE, stripe_customer,
                           (long long)ps);
        if (after[0] != '\0')
            snprintf(query + len, sizeof(query) - (size_t)len, "&starting_after=%s", after);
        json_t *page = NULL;
        if ((rc = get(rs, "/v1/invoices", query, &page, err)) != 0)
            break;
        const json_t *data = json_object_get(page, "data");
        if (!json_is_array(data)) {
            json_decref(page);
            rc = tg_errf(err, TG_EINVAL, "GET /v1/invoices: no data list");
            break;
        }
        size_t i;
        const json_t *o;
        json_array_foreach(data, i, o)
        {
            if (n == INVOICES_MAX) {
                rc = tg_errf(err, TG_EINVAL, "customer %s has more than %d invoices since the period began",
                             stripe_customer, INVOICES_MAX);
                break;
            }
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                tg_recon_invoice_t *ni = realloc(invs, ncap * sizeof(*ni));
                if (ni == NULL) {
                    rc = tg_errf(err, TG_ENOMEM, "out of memory listing invoices");
                    break;
                }
                invs = ni;
                cap = ncap;
            }
            if (invoice_header(o, &invs[n]) != 0) {
                rc = tg_errf(err, TG_EINVAL, "GET /v1/invoices: an invoice without id, currency, period or total");
                break;
            }
            snprintf(after, sizeof(after), "%s", invs[n].id);
            n++;
        }
        int more = json_is_true(json_object_get(page, "has_more")) && json_array_size(data) > 0;
        json_decref(page);
        if (rc != 0 || !more)
            break;
        if (!id_ok(after)) {
            rc = tg_errf(err, TG_EINVAL, "GET /v1/invoices: an invoice id that is not a Stripe id");
            break;
        }
    }
    if (rc == 0) {
        long k = tg_recon_pick_invoice(invs, n, ps, pe);
        if (k >= 0) {
            *out = invs[k];
            if (!id_ok(out->id))
                rc = tg_errf(err, TG_EINVAL, "an invoice id that is not a Stripe id");
            else
                rc = read_lines(rs, out, err);
            if (rc != 0)
                tg_recon_invoice_free(out);
            else
                *found = 1;
        }
    }
    free(invs);
    return rc;
}
