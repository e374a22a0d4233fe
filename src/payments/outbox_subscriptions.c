/* outbox_subscriptions.c - the outbox's calls for billing: stripe subscriptions (see outbox.h):
 * writing them (in the caller's transaction) and the processor's step that resolves
 * {stripe_subscription} and {stripe_price:<key>} and reads the subscription back before an item
 * change or a cancellation (outbox_int.h).
 *
 * Why a plan change reads the subscription when it is sent instead of storing item ids: a price
 * swap in Stripe names the items to change by id (items[k][id]), and those ids are Stripe's, known
 * only from an answer (the create's, or the previous swap's, which made new items). Storing them
 * would mean parsing and keeping every answer, and would still be wrong after a change made in
 * Stripe's dashboard. Reading the subscription just before the call always sees the items as
 * they are; the row keeps what is wanted (the plan's prices per slot), and the call is only the
 * difference. That also makes a replay safe: when the answer of a swap was lost (or tollgate was
 * killed before it recorded it), the next attempt reads a subscription that already has the
 * wanted prices, and the row is done without a second call; when the first attempt never
 * executed, the subscription is unchanged and the same parameters go out again with the same
 * idempotency key. A DELETE has no idempotency key at Stripe, so a cancellation checks the same
 * way that the subscription is not canceled already. */
#include <jansson.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payments/outbox.h"
#include "payments/outbox_int.h"
#include "store/store_payments.h"

#define WAIT_MS 1000

/* ---- writing the calls ---- */

int tg_outbox_plan_has_items(const tg_plan_t *plan)
{
    return plan != NULL && (plan->price != 0 || plan->ncharges > 0);
}

/* The plan's items: "items[i][price]={stripe_price:tollgate_<plan>_<slot>}" and their slot. */
static int add_items(tg_form_t *f, const tg_plan_t *plan, tg_err_t *err)
{
    char key[64], ph[192];
    size_t k = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i <= plan->ncharges; i++) {
        const char *slot = i == 0 ? "base" : plan->charges[i - 1].metric;
        if (i == 0 && plan->price == 0)
            continue;
        if (k >= TG_OUTBOX_SUB_ITEMS_MAX)
            return tg_errf(err, TG_ELIMIT, "plan %s has more than %d Stripe items", plan->id, TG_OUTBOX_SUB_ITEMS_MAX);
        int n = snprintf(ph, sizeof(ph), TG_OUTBOX_STRIPE_PRICE_PREFIX "tollgate_%s_%s}", plan->id, slot);
        if (n < 0 || (size_t)n >= sizeof(ph))
            return tg_errf(err, TG_EINVAL, "plan %s: the lookup key of %.40s is too long", plan->id, slot);
        snprintf(key, sizeof(key), "items[%zu][price]", k);
        rc = tg_form_add(f, key, ph, err);
        snprintf(key, sizeof(key), "items[%zu][metadata][tollgate_slot]", k);
        if (rc == 0)
            rc = tg_form_add(f, key, slot, err);
        k++;
    }
    if (rc == 0 && k == 0)
        return tg_errf(err, TG_EINVAL, "plan %s has no base fee and no charge: nothing to subscribe to", plan->id);
    return rc;
}

/* A new operation key for c: "<id>_<random>" (each plan change or cancellation is its own). */
static void fresh_op(const tg_customer_t *c, char *op, size_t cap)
{
    uint8_t rnd[8];
    char hex[sizeof(rnd) * 2 + 1];
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
    snprintf(op, cap, "%s_%s", c->id, hex);
}

int tg_outbox_enqueue_subscription(tg_store_t *st, const tg_customer_t *c, const tg_plan_t *plan,
                                   const tg_outbox_sub_terms_t *t, int again, tg_err_t *err)
{
    char op[TG_ID_MAX + 24];
    if (again)
        fresh_op(c, op, sizeof(op));
    else
        snprintf(op, sizeof(op), "%s", c->id);
    tg_form_t f;
    tg_form_init(&f, 0);
    int rc = tg_form_add(&f, "customer", TG_OUTBOX_STRIPE_CUSTOMER, err);
    if (rc == 0)
        rc = add_items(&f, plan, err);
    if (rc == 0)
        rc = tg_form_add(&f, "collection_method", t->send_invoice ? "send_invoice" : "charge_automatically", err);
    if (rc == 0 && t->send_invoice)
        rc = tg_form_add_int(&f, "days_until_due", t->days_until_due, err);
    if (rc == 0 && t->trial_end > 0)
        rc = tg_form_add_int(&f, "trial_end", t->trial_end, err);
    /* With an anchor, the part of tollgate's period before it is billed prorated, as tollgate
     * bills it; without one there is nothing to prorate. */
    if (rc == 0 && t->billing_cycle_anchor > 0)
        rc = tg_form_add_int(&f, "billing_cycle_anchor", t->billing_cycle_anchor, err);
    if (rc == 0)
        rc = tg_form_add(&f, "proration_behavior", t->billing_cycle_anchor > 0 ? "create_prorations" : "none", err);
    if (rc == 0)
        rc = tg_form_add(&f, "metadata[tollgate_customer]", c->id, err);
    if (rc == 0)
        rc = tg_form_add(&f, "metadata[tollgate_plan]", plan->id, err);
    if (rc == 0)
        rc = tg_outbox_enqueue(st, TG_OUTBOX_KIND_SUBSCRIPTION_CREATE, c->id, op, "POST", "/v1/subscriptions", &f,
                               err);
    tg_form_free(&f);
    if (rc == TG_EEXIST && !again) { /* queued before: that is what was asked */
        if (err != NULL)
            memset(err, 0, sizeof(*err));
        rc = 0;
    }
    return rc;
}

int tg_outbox_enqueue_subscription_items(tg_store_t *st, const tg_customer_t *c, const tg_plan_t *plan,
                                         tg_err_t *err)
{
    char op[TG_ID_MAX + 24];
    fresh_op(c, op, sizeof(op));
    tg_form_t f;
    tg_form_init(&f, 0);
    int rc = tg_form_add(&f, "proration_behavior", "none", err);
    if (rc == 0)
        rc = tg_form_add(&f, "metadata[tollgate_plan]", plan->id, err);
    if (rc == 0)
        rc = add_items(&f, plan, err);
    if (rc == 0)
        rc = tg_outbox_enqueue(st, TG_OUTBOX_KIND_SUBSCRIPTION_ITEMS, c->id, op, "POST",
                               "/v1/subscriptions/" TG_OUTBOX_STRIPE_SUBSCRIPTION, &f, err);
    tg_form_free(&f);
    return rc;
}

int tg_outbox_enqueue_subscription_cancel(tg_store_t *st, const tg_customer_t *c, int at_period_end, int prorate,
                                          tg_err_t *err)
{
    char op[TG_ID_MAX + 24];
    fresh_op(c, op, sizeof(op));
    tg_form_t f;
    tg_form_init(&f, 0);
    int rc;
    if (at_period_end) {
        rc = tg_form_add(&f, "cancel_at_period_end", "true", err);
        if (rc == 0)
            rc = tg_outbox_enqueue(st, TG_OUTBOX_KIND_SUBSCRIPTION_CANCEL, c->id, op, "POST",
                                   "/v1/subscriptions/" TG_OUTBOX_STRIPE_SUBSCRIPTION, &f, err);
    } else {
        rc = tg_form_add(&f, "invoice_now", "true", err);
        if (rc == 0)
            rc = tg_form_add(&f, "prorate", prorate ? "true" : "false", err);
        if (rc == 0)
            rc = tg_outbox_enqueue(st, TG_OUTBOX_KIND_SUBSCRIPTION_CANCEL, c->id, op, "DELETE",
                                   "/v1/subscriptions/" TG_OUTBOX_STRIPE_SUBSCRIPTION, &f, err);
    }
    tg_form_free(&f);
    return rc;
}

int tg_outbox_enqueue_subscription_resume(tg_store_t *st, const tg_customer_t *c, tg_err_t *err)
{
    char op[TG_ID_MAX + 24];
    fresh_op(c, op, sizeof(op));
    tg_form_t f;
    tg_form_init(&f, 0);
    int rc = tg_form_add(&f, "cancel_at_period_end", "false", err);
    if (rc == 0)
        rc = tg_outbox_enqueue(st, TG_OUTBOX_KIND_SUBSCRIPTION_RESUME, c->id, op, "POST",
                               "/v1/subscriptions/" TG_OUTBOX_STRIPE_SUBSCRIPTION, &f, err);
    tg_form_free(&f);
    return rc;
}

int tg_outbox_enqueue_subscription_invoice_item(tg_store_t *st, const tg_customer_t *c, const char *currency,
                                                tg_money_t amount, const char *description, int64_t period_start,
                                                int64_t period_end, tg_err_t *err)
{
    int digits = tg_currency_digits(currency);
    if (digits < 0 || digits > TG_MONEY_DIGITS)
        return tg_errf(err, TG_EINVAL, "Stripe does not know the currency %.8s", currency);
    int64_t unit = 1;
    for (int i = digits; i < TG_MONEY_DIGITS; i++)
        unit *= 10;
    if (amount % unit != 0)
        return tg_errf(err, TG_EINVAL, "an invoice item of %s is not a whole number of minor units", c->id);
    char cur[4], op[TG_ID_MAX + 24];
    for (size_t i = 0; i < sizeof(cur); i++)
        cur[i] = (char)(currency[i] >= 'A' && currency[i] <= 'Z' ? currency[i] + 32 : currency[i]);
    fresh_op(c, op, sizeof(op));
    tg_form_t f;
    tg_form_init(&f, 0);
    int rc = tg_form_add(&f, "customer", TG_OUTBOX_STRIPE_CUSTOMER, err);
    if (rc == 0)
        rc = tg_form_add(&f, "subscription", TG_OUTBOX_STRIPE_SUBSCRIPTION, err);
    if (rc == 0)
        rc = tg_form_add_int(&f, "amount", amount / unit, err);
    if (rc == 0)
        rc = tg_form_add(&f, "currency", cur, err);
    if (rc == 0)
        rc = tg_form_add(&f, "description", description, err);
    if (rc == 0)
        rc = tg_form_add_int(&f, "period[start]", period_start, err);
    if (rc == 0)
        rc = tg_form_add_int(&f, "period[end]", period_end, err);
    if (rc == 0)
        rc = tg_form_add(&f, "metadata[tollgate_customer]", c->id, err);
    if (rc == 0)
        rc = tg_outbox_enqueue(st, TG_OUTBOX_KIND_SUBSCRIPTION_INVOICE_ITEM, c->id, op, "POST", "/v1/invoiceitems",
                               &f, err);
    tg_form_free(&f);
    return rc;
}

/* ---- the item swap, pure ---- */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Decodes n bytes of form-encoded s ('+' is a space, %XX a byte) into out (cap bytes, with the
 * NUL). -1 for a bad escape or when it does not fit. */
static int form_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '+')
            ch = ' ';
        else if (ch == '%') {
            if (i + 2 >= n)
                return -1;
            int a = hexval(s[i + 1]), b = hexval(s[i + 2]);
            if (a < 0 || b < 0)
                return -1;
            ch = (char)(a * 16 + b);
            i += 2;
        }
        if (w + 1 >= cap)
            return -1;
        out[w++] = ch;
    }
    out[w] = '\0';
    return 0;
}

typedef struct want {
    char price[TG_OUTBOX_RESPONSE_ID_MAX];
    char slot[128];
} want_t;

/* "items[<n>]<rest>": n into *idx and rest into *rest; 0 if the key has that shape. */
static int item_key(const char *key, size_t *idx, const char **rest)
{
    if (strncmp(key, "items[", 6) != 0)
        return -1;
    const char *p = key + 6;
    size_t n = 0, digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 4; p++, digits++)
        n = n * 10 + (size_t)(*p - '0');
    if (digits == 0 || *p != ']')
        return -1;
    *idx = n;
    *rest = p + 1;
    return 0;
}

int tg_outbox_subscription_swap(const char *params, size_t len, const tg_outbox_sub_item_t *cur, size_t ncur,
                                tg_form_t *out, int *changes, tg_err_t *err)
{
    want_t want[TG_OUTBOX_SUB_ITEMS_MAX];
    size_t nwant = 0;
    char key[256], val[512];
    int rc = 0;
    *changes = 0;
    memset(want, 0, sizeof(want));
    for (size_t i = 0; i < len && rc == 0;) {
        size_t j = i;
        while (j < len && params[j] != '&')
            j++;
        const char *eq = memchr(params + i, '=', j - i);
        size_t klen = eq != NULL ? (size_t)(eq - (params + i)) : j - i;
        if (j > i) {
            size_t idx = 0;
            const char *rest = NULL;
            if (form_decode(params + i, klen, key, sizeof(key)) != 0 ||
                form_decode(eq != NULL ? eq + 1 : "", eq != NULL ? (size_t)(params + j - eq - 1) : 0, val,
                            sizeof(val)) != 0)
                return tg_errf(err, TG_EINVAL, "subscription items: a malformed form field");
            if (item_key(key, &idx, &rest) != 0)
                rc = tg_form_add(out, key, val, err); /* proration_behavior, metadata: as they are */
            else if (idx >= TG_OUTBOX_SUB_ITEMS_MAX)
                return tg_errf(err, TG_ELIMIT, "subscription items: more than %d", TG_OUTBOX_SUB_ITEMS_MAX);
            else {
                size_t vlen = strlen(val);
                int is_price = strcmp(rest, "[price]") == 0;
                char *dst = is_price ? want[idx].price : want[idx].slot;
                size_t cap = is_price ? sizeof(want[idx].price) : sizeof(want[idx].slot);
                if (!is_price && strcmp(rest, "[metadata][tollgate_slot]") != 0)
                    return tg_errf(err, TG_EINVAL, "subscription items: unexpected field %.64s", key);
                if (vlen >= cap)
                    return tg_errf(err, TG_ELIMIT, "subscription items: %.64s is too long", key);
                memcpy(dst, val, vlen + 1);
                if (idx + 1 > nwant)
                    nwant = idx + 1;
            }
        }
        i = j + 1;
    }
    for (size_t w = 0; w < nwant; w++)
        if (want[w].price[0] == '\0' || want[w].slot[0] == '\0')
            return tg_errf(err, TG_EINVAL, "subscription items: item %zu lacks its price or its slot", w);
    int k = 0;
    char kb[64];
#define ADD(field, value)                                                                                              \
    do {                                                                                                               \
        snprintf(kb, sizeof(kb), "items[%d]%s", k, field);                                                           \
        if (rc == 0)                                                                                                   \
            rc = tg_form_add(out, kb, value, err);                                                                     \
    } while (0)
    /* the items there are: re-priced, kept, or deleted */
    for (size_t c = 0; c < ncur && rc == 0; c++) {
        if (cur[c].slot[0] == '\0')
            continue; /* not tollgate's: the owner's to manage */
        size_t w = 0;
        while (w < nwant && strcmp(want[w].slot, cur[c].slot) != 0)
            w++;
        if (w < nwant && strcmp(want[w].price, cur[c].price) == 0)
            continue;
        ADD("[id]", cur[c].id);
        if (w < nwant)
            ADD("[price]", want[w].price);
        else
            ADD("[deleted]", "true");
        k++;
    }
    /* the wanted slots that have no item yet */
    for (size_t w = 0; w < nwant && rc == 0; w++) {
        size_t c = 0;
        while (c < ncur && strcmp(cur[c].slot, want[w].slot) != 0)
            c++;
        if (c < ncur)
            continue;
        ADD("[price]", want[w].price);
        ADD("[metadata][tollgate_slot]", want[w].slot);
        k++;
    }
#undef ADD
    *changes = k;
    return rc;
}

/* ---- the processor's step ---- */

static void fail_row(tg_outbox_t *ob, const tg_outbox_row_t *row, const char *why, int64_t now_ms)
{
    tg_err_t serr = {0};
    if (tg_store_outbox_fail(ob->st, row->id, why, now_ms / 1000, &serr) == 0)
        atomic_fetch_add(&ob->rows_failed, 1);
}

static void defer_row(tg_outbox_t *ob, const tg_outbox_row_t *row, int64_t until_ms, const char *why, int64_t now_ms)
{
    tg_err_t serr = {0};
    tg_store_outbox_defer(ob->st, row->id, until_ms, why, now_ms / 1000, &serr);
}

/* Resolves a placeholder (tg_outbox_row_substitute); a row it cannot rewrite is deferred. */
static int substitute(tg_outbox_t *ob, tg_outbox_row_t *row, const char *from_path, const char *from_params,
                      const char *to, int64_t now_ms)
{
    if (tg_outbox_row_substitute(row, from_path, from_params, to) == 0)
        return 0;
    defer_row(ob, row, now_ms + WAIT_MS, "out of memory", now_ms);
    return -1;
}

#define SUB_PH_ENC "%7Bstripe_subscription%7D" /* TG_OUTBOX_STRIPE_SUBSCRIPTION, form-encoded */

/* {stripe_subscription}: 0 resolved (or absent), 1 the row waits or failed. */
static int resolve_subscription(tg_outbox_t *ob, tg_outbox_row_t *row, int64_t now_ms)
{
    int in_path = strstr(row->path, TG_OUTBOX_STRIPE_SUBSCRIPTION) != NULL;
    int in_params = row->params != NULL && strstr(row->params, SUB_PH_ENC) != NULL;
    if (!in_path && !in_params)
        return 0;
    char why[TG_OUTBOX_ERROR_MAX];
    tg_outbox_row_t dep;
    tg_err_t err = {0};
    memset(&dep, 0, sizeof(dep));
    int have = tg_store_outbox_customer_latest_of(ob->st, row->customer_id, TG_OUTBOX_KIND_SUBSCRIPTION_CREATE, &dep,
                                                  &err) == 0;
    if (have && strcmp(dep.state, "pending") == 0) {
        int64_t next = now_ms + WAIT_MS;
        if (dep.next_attempt_at_ms + 100 > next)
            next = dep.next_attempt_at_ms + 100;
        snprintf(why, sizeof(why), "waiting for the Stripe subscription of %s", row->customer_id);
        defer_row(ob, row, next, why, now_ms);
        return 1;
    }
    if (have && strcmp(dep.state, "failed") == 0) {
        snprintf(why, sizeof(why), "the Stripe subscription of %s could not be created (outbox row %lld)",
                 row->customer_id, (long long)dep.id);
        fail_row(ob, row, why, now_ms);
        return 1;
    }
    tg_stripe_subscription_t sub;
    int found = 0;
    if (tg_store_stripe_subscription_latest(ob->st, row->customer_id, &sub, &found, &err) != 0) {
        defer_row(ob, row, now_ms + WAIT_MS, err.msg, now_ms);
        return 1;
    }
    if (!found && have && dep.response_id[0] != '\0') { /* done before migration 18's map: its answer */
        snprintf(sub.subscription_id, sizeof(sub.subscription_id), "%s", dep.response_id);
        found = 1;
    }
    if (!found) {
        snprintf(why, sizeof(why), "%s has no Stripe subscription (none was created for it)", row->customer_id);
        fail_row(ob, row, why, now_ms);
        return 1;
    }
    return substitute(ob, row, in_path ? TG_OUTBOX_STRIPE_SUBSCRIPTION : NULL, in_params ? SUB_PH_ENC : NULL,
                      sub.subscription_id, now_ms) != 0;
}

#define PRICE_PH_ENC "%7Bstripe_price%3A" /* TG_OUTBOX_STRIPE_PRICE_PREFIX, form-encoded */
#define PH_END_ENC "%7D"

/* The active price with lookup key `key` into id: 0 found, 1 there is none, -1 the call failed
 * (*res says how). */
static int lookup_price(tg_outbox_t *ob, const char *key, char *id, size_t cap, tg_stripe_result_t *res,
                        tg_err_t *err)
{
    for (size_t i = 0; i < ob->nprices; i++)
        if (strcmp(ob->prices[i].lookup_key, key) == 0) {
            snprintf(id, cap, "%s", ob->prices[i].id);
            return 0;
        }
    tg_form_t f;
    tg_form_init(&f, 0);
    int rc = tg_form_add(&f, "lookup_keys[0]", key, err);
    if (rc == 0)
        rc = tg_form_add(&f, "active", "true", err);
    if (rc == 0) {
        size_t len;
        const char *data = tg_form_data(&f, &len);
        rc = tg_stripe_call(&ob->stripe, "GET", "/v1/prices", data, len, NULL, res, err);
    }
    tg_form_free(&f);
    if (rc != 0) {
        if (res->outcome == TG_STRIPE_OK) /* never sent (bad arguments, memory): try again later */
            res->outcome = TG_STRIPE_RETRY;
        return -1;
    }
    const char *found = NULL;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(res->body, "data"), i, p)
    {
        const char *lk = json_string_value(json_object_get(p, "lookup_key"));
        if (lk != NULL && strcmp(lk, key) == 0 && json_is_true(json_object_get(p, "active")))
            found = json_string_value(json_object_get(p, "id"));
    }
    int out = 1;
    if (found != NULL && strlen(found) < cap) {
        snprintf(id, cap, "%s", found);
        if (ob->nprices < TG_OUTBOX_PRICE_CACHE && strlen(key) < sizeof(ob->prices[0].lookup_key)) {
            snprintf(ob->prices[ob->nprices].lookup_key, sizeof(ob->prices[0].lookup_key), "%s", key);
            snprintf(ob->prices[ob->nprices].id, sizeof(ob->prices[0].id), "%s", found);
            ob->nprices++;
        }
        out = 0;
    }
    tg_stripe_result_clear(res);
    memset(res, 0, sizeof(*res));
    return out;
}

/* Every {stripe_price:<key>} of the params. PREP_SEND when all are resolved. */
static tg_outbox_prep_t resolve_prices(tg_outbox_t *ob, tg_outbox_row_t *row, int64_t now_ms, tg_stripe_result_t *res,
                                       tg_err_t *err)
{
    for (int guard = 0; guard < 2 * TG_OUTBOX_SUB_ITEMS_MAX; guard++) {
        const char *p = row->params != NULL ? strstr(row->params, PRICE_PH_ENC) : NULL;
        if (p == NULL)
            return TG_OUTBOX_PREP_SEND;
        const char *k = p + strlen(PRICE_PH_ENC), *e = strstr(k, PH_END_ENC);
        char whole[512], key[256], id[TG_OUTBOX_RESPONSE_ID_MAX], why[TG_OUTBOX_ERROR_MAX];
        if (e == NULL || (size_t)(e + 3 - p) >= sizeof(whole) || form_decode(k, (size_t)(e - k), key, sizeof(key)) != 0 ||
            key[0] == '\0') {
            fail_row(ob, row, "a malformed {stripe_price:} placeholder", now_ms);
            return TG_OUTBOX_PREP_HANDLED;
        }
        memcpy(whole, p, (size_t)(e + 3 - p));
        whole[e + 3 - p] = '\0';
        int rc = lookup_price(ob, key, id, sizeof(id), res, err);
        if (rc < 0)
            return TG_OUTBOX_PREP_CALL_FAILED;
        if (rc > 0) {
            snprintf(why, sizeof(why),
                     "Stripe has no active price with the lookup key %s: run tollgate stripe sync-catalog, then "
                     "requeue this row",
                     key);
            fail_row(ob, row, why, now_ms);
            return TG_OUTBOX_PREP_HANDLED;
        }
        if (substitute(ob, row, NULL, whole, id, now_ms) != 0)
            return TG_OUTBOX_PREP_HANDLED;
    }
    fail_row(ob, row, "too many {stripe_price:} placeholders", now_ms);
    return TG_OUTBOX_PREP_HANDLED;
}

/* The subscription named by the row's (resolved) path: GET it into *res. */
static int read_subscription(tg_outbox_t *ob, const tg_outbox_row_t *row, tg_stripe_result_t *res, tg_err_t *err)
{
    int rc = tg_stripe_call(&ob->stripe, "GET", row->path, "", 0, NULL, res, err);
    if (rc != 0 && res->outcome == TG_STRIPE_OK)
        res->outcome = TG_STRIPE_RETRY;
    return rc;
}

static const char *sub_id_of_path(const tg_outbox_row_t *row)
{
    const char *slash = strrchr(row->path, '/');
    return slash != NULL ? slash + 1 : row->path;
}

/* subscription.items: the swap the subscription needs now. */
static tg_outbox_prep_t prepare_items(tg_outbox_t *ob, tg_outbox_row_t *row, int64_t now_ms, tg_stripe_result_t *res,
                                      char *done_id, size_t done_cap, tg_err_t *err)
{
    if (read_subscription(ob, row, res, err) != 0)
        return TG_OUTBOX_PREP_CALL_FAILED;
    const char *status = json_string_value(json_object_get(res->body, "status"));
    char why[TG_OUTBOX_ERROR_MAX];
    if (status != NULL && (strcmp(status, "canceled") == 0 || strcmp(status, "incomplete_expired") == 0)) {
        snprintf(why, sizeof(why), "the Stripe subscription %s is %s: its items cannot change", sub_id_of_path(row),
                 status);
        fail_row(ob, row, why, now_ms);
        tg_stripe_result_clear(res);
        return TG_OUTBOX_PREP_HANDLED;
    }
    json_t *items = json_object_get(res->body, "items");
    if (json_is_true(json_object_get(items, "has_more"))) {
        /* a partial list would make the swap add slots that exist: refuse rather than guess */
        snprintf(why, sizeof(why), "the Stripe subscription %s lists more items than one answer holds",
                 sub_id_of_path(row));
        fail_row(ob, row, why, now_ms);
        tg_stripe_result_clear(res);
        return TG_OUTBOX_PREP_HANDLED;
    }
    tg_outbox_sub_item_t cur[TG_OUTBOX_SUB_ITEMS_MAX];
    size_t ncur = 0, i;
    json_t *it;
    memset(cur, 0, sizeof(cur));
    json_array_foreach(json_object_get(items, "data"), i, it)
    {
        if (ncur == TG_OUTBOX_SUB_ITEMS_MAX)
            break;
        json_t *price = json_object_get(it, "price");
        const char *pid = json_is_string(price) ? json_string_value(price) : json_string_value(json_object_get(price, "id"));
        const char *id = json_string_value(json_object_get(it, "id"));
        const char *slot = json_string_value(json_object_get(json_object_get(it, "metadata"), "tollgate_slot"));
        if (id == NULL || pid == NULL)
            continue;
        snprintf(cur[ncur].id, sizeof(cur[ncur].id), "%s", id);
        snprintf(cur[ncur].price, sizeof(cur[ncur].price), "%s", pid);
        snprintf(cur[ncur].slot, sizeof(cur[ncur].slot), "%s", slot != NULL ? slot : "");
        ncur++;
    }
    tg_stripe_result_clear(res);
    memset(res, 0, sizeof(*res));
    tg_form_t f;
    tg_form_init(&f, 0);
    int changes = 0;
    tg_err_t e = {0};
    if (tg_outbox_subscription_swap(row->params, row->params_len, cur, ncur, &f, &changes, &e) != 0) {
        tg_form_free(&f);
        fail_row(ob, row, e.msg, now_ms);
        return TG_OUTBOX_PREP_HANDLED;
    }
    if (changes == 0) { /* as wanted already: this change was made (its answer lost), or never needed */
        tg_form_free(&f);
        snprintf(done_id, done_cap, "%s", sub_id_of_path(row));
        return TG_OUTBOX_PREP_DONE;
    }
    size_t len = 0;
    const char *data = tg_form_data(&f, &len);
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        tg_form_free(&f);
        defer_row(ob, row, now_ms + WAIT_MS, "out of memory", now_ms);
        return TG_OUTBOX_PREP_HANDLED;
    }
    memcpy(copy, data, len + 1);
    tg_form_free(&f);
    free(row->params);
    row->params = copy;
    row->params_len = len;
    return TG_OUTBOX_PREP_SEND;
}

/* DELETE of a subscription: done already if Stripe has it canceled, or does not have it. */
static tg_outbox_prep_t prepare_delete(tg_outbox_t *ob, tg_outbox_row_t *row, tg_stripe_result_t *res, char *done_id,
                                       size_t done_cap, tg_err_t *err)
{
    if (read_subscription(ob, row, res, err) != 0) {
        if (res->status != 404)
            return TG_OUTBOX_PREP_CALL_FAILED;
        tg_stripe_result_clear(res);
        memset(res, 0, sizeof(*res));
        snprintf(done_id, done_cap, "%s", sub_id_of_path(row));
        return TG_OUTBOX_PREP_DONE;
    }
    const char *status = json_string_value(json_object_get(res->body, "status"));
    int ended = status != NULL && (strcmp(status, "canceled") == 0 || strcmp(status, "incomplete_expired") == 0);
    tg_stripe_result_clear(res);
    memset(res, 0, sizeof(*res));
    if (!ended)
        return TG_OUTBOX_PREP_SEND;
    snprintf(done_id, done_cap, "%s", sub_id_of_path(row));
    return TG_OUTBOX_PREP_DONE;
}

tg_outbox_prep_t tg_outbox_prepare_subscription(tg_outbox_t *ob, tg_outbox_row_t *row, int64_t now_ms,
                                                tg_stripe_result_t *res, char *done_id, size_t done_cap,
                                                tg_err_t *err)
{
    if (resolve_subscription(ob, row, now_ms) != 0)
        return TG_OUTBOX_PREP_HANDLED;
    tg_outbox_prep_t p = resolve_prices(ob, row, now_ms, res, err);
    if (p != TG_OUTBOX_PREP_SEND)
        return p;
    if (strcmp(row->kind, TG_OUTBOX_KIND_SUBSCRIPTION_ITEMS) == 0)
        return prepare_items(ob, row, now_ms, res, done_id, done_cap, err);
    if (strcmp(row->kind, TG_OUTBOX_KIND_SUBSCRIPTION_CANCEL) == 0 && strcmp(row->method, "DELETE") == 0)
        return prepare_delete(ob, row, res, done_id, done_cap, err);
    return TG_OUTBOX_PREP_SEND;
}

int tg_outbox_subscription_created(tg_outbox_t *ob, const tg_outbox_row_t *row, const char *sub_id, int64_t now_s,
                                   tg_err_t *err)
{
    return tg_store_stripe_subscription_map(ob->st, row->customer_id, sub_id, now_s, err);
}
