/* outbox.c - the Stripe outbox: enqueue in the caller's transaction, a processor thread that
 * sends (see outbox.h for the contract). The subscription calls of billing: stripe, and the
 * processor's step that resolves their placeholders, are in outbox_subscriptions.c.
 *
 * Thread ownership:
 *  - the caller of tg_outbox_enqueue* (the admin back thread) owns its store connection and its
 *    transaction; enqueuing only inserts a row;
 *  - the processor thread ("tg-stripe-outbx") owns ob->st, its own connection, and is the
 *    only one that calls Stripe or changes a row's state. On SQLite, one processor per
 *    database: rows are not leased, so two processes on one file could send a row twice at once
 *    (Stripe's idempotency makes the second a replay, or a 409 retried later). On PostgreSQL
 *    every gateway runs a processor: tg_store_outbox_due claims the rows it returns for this
 *    connection until its next read of the queue (store_outbox.h), so each row goes from one
 *    node at a time;
 *  - ob->mu and ob->cv guard `stopping` and `wake` between the processor and other threads;
 *    the statistics are atomics.
 *
 * Crash safety: the processor changes a row only after Stripe answered, in one statement (or
 * one savepoint with the customer map). kill -9 before that leaves the row pending and due, and
 * the next start sends it again with the same idempotency key: Stripe replays. */
#include "payments/outbox.h"
#include "payments/outbox_int.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "billing/line_text.h"
#include "payments/meter_export.h"
#include "util/backoff.h"
#include "util/clock.h"
#include "util/thread_prio.h"
#include "util/money.h"

#define DUE_BATCH 16
/* Done rows are kept this long (for the owner's view and support), then deleted in small
 * batches once an hour: one row per Stripe call would otherwise grow the database for ever. The
 * customer map stays, and failed rows stay until the owner requeues them. */
#define KEEP_DONE_S (30 * 86400)
#define PRUNE_EVERY_MS (3600 * 1000)
#define CLOCK_SLACK_MS (60 * 1000) /* beyond the backoff cap, before a row counts as mis-scheduled */
#define PRUNE_BATCH 1000


int64_t tg_outbox_backoff_ms(int attempts, int64_t base_ms, int64_t cap_ms, uint32_t random)
{
    return tg_backoff_ms(attempts, base_ms, cap_ms, random);
}

static int64_t wall_ms(void)
{
    return tg_clock_now_ns() / 1000000;
}

/* An operation key or kind may only hold what an idempotency key and a URL path segment can. */
static int key_chars_ok(const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '-' || *s == '.'))
            return 0;
    return 1;
}

int tg_outbox_enqueue(tg_store_t *st, const char *kind, const char *customer_id, const char *op_key, const char *method,
                      const char *path, const tg_form_t *form, tg_err_t *err)
{
    tg_outbox_row_t row;
    memset(&row, 0, sizeof(row));
    if (!key_chars_ok(kind) || !key_chars_ok(op_key))
        return tg_errf(err, TG_EINVAL, "outbox: kind and operation key must be [A-Za-z0-9_.-]+");
    int n = snprintf(row.idempotency_key, sizeof(row.idempotency_key), "tg_%s_%s", kind, op_key);
    if (n < 0 || (size_t)n >= sizeof(row.idempotency_key) || (size_t)n > TG_STRIPE_IDEMPOTENCY_KEY_MAX)
        return tg_errf(err, TG_EINVAL, "outbox: idempotency key for %.40s too long", kind);
    if (snprintf(row.kind, sizeof(row.kind), "%s", kind) >= (int)sizeof(row.kind) ||
        snprintf(row.customer_id, sizeof(row.customer_id), "%s", customer_id != NULL ? customer_id : "") >=
            (int)sizeof(row.customer_id) ||
        snprintf(row.method, sizeof(row.method), "%s", method) >= (int)sizeof(row.method) ||
        snprintf(row.path, sizeof(row.path), "%s", path) >= (int)sizeof(row.path))
        return tg_errf(err, TG_EINVAL, "outbox: a field of the %.40s call is too long", kind);
    size_t len = 0;
    const char *params = form != NULL ? tg_form_data(form, &len) : "";
    return tg_store_outbox_insert(st, &row, params, len, wall_ms(), NULL, err);
}

int tg_outbox_enqueue_customer(tg_store_t *st, const tg_customer_t *c, tg_err_t *err)
{
    tg_form_t f;
    tg_form_init(&f, 0);
    int rc = tg_form_add(&f, "email", c->email, err);
    if (rc == 0 && c->name[0] != '\0')
        rc = tg_form_add(&f, "name", c->name, err);
    if (rc == 0)
        rc = tg_form_add(&f, "metadata[tollgate_customer]", c->id, err);
    if (rc == 0)
        rc = tg_outbox_enqueue(st, TG_OUTBOX_KIND_CUSTOMER_CREATE, c->id, c->id, "POST", "/v1/customers", &f, err);
    tg_form_free(&f);
    if (rc == TG_EEXIST) { /* the operation is in the outbox already: that is what was asked */
        if (err != NULL)
            memset(err, 0, sizeof(*err));
        rc = 0;
    }
    return rc;
}

int tg_outbox_enqueue_customer_update(tg_store_t *st, const tg_customer_t *c, tg_err_t *err)
{
    /* Each change is its own operation: a random suffix makes its key, kept for its retries. */
    uint8_t rnd[8];
    char op[TG_ID_MAX + 24], hex[sizeof(rnd) * 2 + 1];
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
    snprintf(op, sizeof(op), "%s_%s", c->id, hex);
    tg_form_t f;
    tg_form_init(&f, 0);
    int rc = tg_form_add(&f, "email", c->email, err);
    if (rc == 0)
        rc = tg_form_add(&f, "name", c->name, err); /* "" clears it, as in tollgate */
    if (rc == 0)
        rc = tg_outbox_enqueue(st, TG_OUTBOX_KIND_CUSTOMER_UPDATE, c->id, op, "POST",
                               "/v1/customers/" TG_OUTBOX_STRIPE_CUSTOMER, &f, err);
    tg_form_free(&f);
    return rc;
}

/* A line's amount ("12.34", "-5.00") in minor units of a currency with `digits` digits: the line is
 * rounded to them already, so the division is exact or the amount is refused. */
static int minor_units(const char *amount, int digits, int64_t *out, tg_err_t *err)
{
    tg_money_t m;
    if (amount == NULL || tg_money_parse(amount, strlen(amount), &m, err) != 0)
        return tg_errf(err, TG_EINVAL, "an invoice line has no valid amount");
    int64_t unit = 1;
    for (int i = digits; i < TG_MONEY_DIGITS; i++)
        unit *= 10;
    if (m % unit != 0)
        return tg_errf(err, TG_EINVAL, "the amount %.40s is not a whole number of minor units", amount);
    *out = m / unit;
    return 0;
}

/* Seconds since the epoch of a time as invoice.c writes it ("2026-01-01T00:00:00Z"); 0 if v is
 * not one. */
static int64_t body_time(const json_t *v)
{
    const char *s = json_string_value(v);
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *rest = s != NULL ? strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;
    return rest != NULL && *rest == '\0' ? (int64_t)timegm(&tm) : 0;
}

/* The period of a line's Stripe item: a late usage line's own (kind "late_usage", or a line
 * stored before kinds with a late_period; issue 16: the units belong to that earlier period),
 * otherwise the invoice's. */
static void line_period(const json_t *l, const tg_invoice_t *inv, int64_t *start, int64_t *end)
{
    tg_line_kind_t kind;
    int rc = tg_line_stored_kind(l, &kind);
    int is_late =
        rc == TG_ENOTFOUND ? json_object_get(l, "late_period") != NULL : rc == 0 && kind == TG_LINE_LATE_USAGE;
    const json_t *late = json_object_get(l, "late_period");
    int64_t s = body_time(json_object_get(late, "start")), e = body_time(json_object_get(late, "end"));
    int own = is_late && s > 0 && e > s;
    *start = own ? s : inv->period_start;
    *end = own ? e : inv->period_end;
}

int tg_outbox_enqueue_invoice(tg_store_t *st, const tg_config_t *cfg, const tg_invoice_t *inv, int send_invoice,
                              int days_until_due, tg_err_t *err)
{
    int digits = tg_stripe_currency_digits(inv->currency);
    if (digits < 0 || digits > TG_MONEY_DIGITS)
        return tg_errf(err, TG_EINVAL, "invoice %s: Stripe does not know the currency %.8s", inv->id, inv->currency);
    char cur[4], ph[TG_ID_MAX + 24], path[TG_OUTBOX_PATH_MAX], op[TG_ID_MAX + 24];
    for (size_t i = 0; i < sizeof(cur); i++)
        cur[i] = (char)(inv->currency[i] >= 'A' && inv->currency[i] <= 'Z' ? inv->currency[i] + 32 : inv->currency[i]);
    snprintf(ph, sizeof(ph), TG_OUTBOX_STRIPE_INVOICE_PREFIX "%s}", inv->id);
    json_error_t jerr;
    json_t *body = inv->body != NULL ? json_loads(inv->body, 0, &jerr) : NULL;
    json_t *lines = json_object_get(body, "lines");
    if (!json_is_array(lines)) {
        json_decref(body);
        return tg_errf(err, TG_EINVAL, "invoice %s has no lines", inv->id);
    }
    tg_form_t f;
    tg_form_init(&f, 0);
    /* the invoice first, empty: its items name it */
    int rc = tg_form_add(&f, "customer", TG_OUTBOX_STRIPE_CUSTOMER, err);
    if (rc == 0)
        rc = tg_form_add(&f, "collection_method", send_invoice ? "send_invoice" : "charge_automatically", err);
    if (rc == 0 && send_invoice)
        rc = tg_form_add_int(&f, "days_until_due", days_until_due, err);
    if (rc == 0)
        rc = tg_form_add(&f, "currency", cur, err);
    if (rc == 0)
        rc = tg_form_add(&f, "pending_invoice_items_behavior", "exclude", err);
    if (rc == 0)
        rc = tg_form_add(&f, "auto_advance", "true", err);
    if (rc == 0)
        rc = tg_form_add(&f, "metadata[tollgate_invoice]", inv->id, err);
    if (rc == 0)
        rc = tg_form_add(&f, "metadata[tollgate_customer]", inv->customer_id, err);
    if (rc == 0)
        rc = tg_outbox_enqueue(st, TG_OUTBOX_KIND_INVOICE_CREATE, inv->customer_id, inv->id, "POST", "/v1/invoices", &f,
                               err);
    tg_form_free(&f);
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l)
    {
        if (rc != 0)
            break;
        int64_t amount = 0;
        char lineno[24], desc[TG_LINE_TEXT_MAX];
        tg_line_text(cfg, l, desc, sizeof(desc)); /* Stripe's invoice is read by the customer */
        if ((rc = minor_units(json_string_value(json_object_get(l, "amount")), digits, &amount, err)) != 0)
            break;
        snprintf(lineno, sizeof(lineno), "%zu", i);
        snprintf(op, sizeof(op), "%s_%zu", inv->id, i);
        tg_form_init(&f, 0);
        rc = tg_form_add(&f, "customer", TG_OUTBOX_STRIPE_CUSTOMER, err);
        if (rc == 0)
            rc = tg_form_add(&f, "invoice", ph, err);
        if (rc == 0)
            rc = tg_form_add_int(&f, "amount", amount, err);
        if (rc == 0)
            rc = tg_form_add(&f, "currency", cur, err);
        if (rc == 0 && desc[0] != '\0')
            rc = tg_form_add(&f, "description", desc, err);
        int64_t from, to;
        line_period(l, inv, &from, &to);
        if (rc == 0)
            rc = tg_form_add_int(&f, "period[start]", from, err);
        if (rc == 0)
            rc = tg_form_add_int(&f, "period[end]", to, err);
        if (rc == 0)
            rc = tg_form_add(&f, "metadata[tollgate_invoice]", inv->id, err);
        if (rc == 0)
            rc = tg_form_add(&f, "metadata[tollgate_line]", lineno, err);
        if (rc == 0)
            rc = tg_outbox_enqueue(st, TG_OUTBOX_KIND_INVOICE_ITEM, inv->customer_id, op, "POST", "/v1/invoiceitems", &f,
                                   err);
        tg_form_free(&f);
    }
    json_decref(body);
    if (rc == 0) {
        snprintf(path, sizeof(path), "/v1/invoices/%s/finalize", ph);
        rc = tg_outbox_enqueue(st, TG_OUTBOX_KIND_INVOICE_FINALIZE, inv->customer_id, inv->id, "POST", path, NULL, err);
    }
    return rc;
}

int tg_outbox_backfill_customers(tg_store_t *st, size_t *queued, tg_err_t *err)
{
    enum { BATCH = 256 };
    tg_customer_t *batch = malloc(BATCH * sizeof(*batch));
    if (batch == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory queuing customers for Stripe");
    size_t total = 0, n = 0;
    int rc;
    do { /* each pass queues what the previous left, so the set shrinks to nothing */
        if ((rc = tg_store_outbox_customers_missing(st, TG_OUTBOX_KIND_CUSTOMER_CREATE, batch, BATCH, &n, err)) != 0 ||
            n == 0 || (rc = tg_store_tx_begin(st, err)) != 0)
            break;
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = tg_outbox_enqueue_customer(st, &batch[i], err);
        if (rc == 0)
            rc = tg_store_tx_commit(st, err);
        else
            tg_store_tx_rollback(st);
        if (rc == 0)
            total += n;
    } while (rc == 0 && n == BATCH);
    free(batch);
    if (queued != NULL)
        *queued = total;
    return rc;
}

/* ---- the processor ---- */

/* Stripe keeps an idempotency key for at least 24 hours, then may forget it: a row first
 * written longer ago than this may have been processed by a call whose answer was lost, and
 * its key may no longer protect it. */
#define KEY_TRUST_S (23 * 3600)

/* A "create the Stripe customer" row too old for its key: asks Stripe whether the customer
 * exists already (customer search by metadata[tollgate_customer]; the search index lags
 * writes by seconds, not a day). 1 with its id in found if it does, 0 if not, -1 if the
 * search failed (the row is then retried later, like a failed call). */
static int find_old_customer(tg_outbox_t *ob, const tg_outbox_row_t *row, char *found, size_t cap, tg_err_t *err)
{
    char q[TG_ID_MAX + 48];
    snprintf(q, sizeof(q), "metadata['tollgate_customer']:'%s'", row->customer_id);
    tg_form_t f;
    tg_form_init(&f, 0);
    int rc = tg_form_add(&f, "query", q, err);
    tg_stripe_result_t res;
    memset(&res, 0, sizeof(res));
    if (rc == 0) {
        size_t len;
        const char *data = tg_form_data(&f, &len);
        rc = tg_stripe_call(&ob->stripe, "GET", "/v1/customers/search", data, len, NULL, &res, err);
    }
    tg_form_free(&f);
    int out = rc == 0 ? 0 : -1;
    const json_t *first = json_array_get(json_object_get(res.body, "data"), 0);
    const char *id = json_string_value(json_object_get(first, "id"));
    if (rc == 0 && id != NULL) {
        snprintf(found, cap, "%s", id);
        out = 1;
    }
    tg_stripe_result_clear(&res);
    return out;
}

#define PLACEHOLDER_ENC "%7Bstripe_customer%7D" /* TG_OUTBOX_STRIPE_CUSTOMER, form-encoded */
#define DEPENDENCY_WAIT_MS 1000

char *tg_outbox_replace_all(const char *s, size_t n, const char *from, const char *to, size_t *out_len)
{
    size_t fl = strlen(from), tl = strlen(to), count = 0;
    for (const char *p = s; (p = strstr(p, from)) != NULL; p += fl)
        count++;
    size_t len = n + count * tl - count * fl; /* tl < 256, n <= TG_OUTBOX_PARAMS_MAX: no overflow */
    char *out = malloc(len + 1), *w = out;
    if (out == NULL)
        return NULL;
    const char *p = s, *hit;
    while ((hit = strstr(p, from)) != NULL) {
        memcpy(w, p, (size_t)(hit - p));
        w += hit - p;
        memcpy(w, to, tl);
        w += tl;
        p = hit + fl;
    }
    memcpy(w, p, (size_t)(s + n - p));
    w += s + n - p;
    *w = '\0';
    if (out_len != NULL)
        *out_len = (size_t)(w - out);
    return out;
}

int tg_outbox_row_substitute(tg_outbox_row_t *row, const char *from_path, const char *from_params, const char *to)
{
    size_t len = 0;
    char *p = from_path != NULL ? tg_outbox_replace_all(row->path, strlen(row->path), from_path, to, &len) : NULL;
    char *q = from_params != NULL && row->params != NULL
                  ? tg_outbox_replace_all(row->params, row->params_len, from_params, to, &len)
                  : NULL;
    if ((from_path != NULL && (p == NULL || strlen(p) >= sizeof(row->path))) ||
        (from_params != NULL && row->params != NULL && q == NULL)) {
        free(p);
        free(q);
        return -1;
    }
    if (p != NULL) {
        snprintf(row->path, sizeof(row->path), "%s", p);
        free(p);
    }
    if (q != NULL) {
        free(row->params);
        row->params = q;
        row->params_len = len;
    }
    return 0;
}

/* Calls for one customer go in the order they were queued (an invoice item before the invoice it
 * belongs on, a name change after the one before it): a row waits while an earlier row of its
 * customer is pending, until just after that row's next attempt. 1 if it was put off. */
static int wait_for_earlier(tg_outbox_t *ob, const tg_outbox_row_t *row, int64_t now)
{
    int64_t earlier = 0, next = 0;
    tg_err_t err = {0}, serr = {0};
    if (row->customer_id[0] == '\0')
        return 0;
    int rc = tg_store_outbox_earlier_pending(ob->st, row->customer_id, row->id, &earlier, &next, &err);
    if (rc == TG_ENOTFOUND)
        return 0;
    char why[TG_OUTBOX_ERROR_MAX];
    if (rc != 0)
        snprintf(why, sizeof(why), "%s", err.msg);
    else
        snprintf(why, sizeof(why), "waiting for outbox row %lld of the same customer", (long long)earlier);
    if (rc != 0 || next + 100 < now + DEPENDENCY_WAIT_MS)
        next = now + DEPENDENCY_WAIT_MS - 100;
    tg_store_outbox_defer(ob->st, row->id, next + 100, why, now / 1000, &serr);
    return 1;
}

/* Resolves TG_OUTBOX_STRIPE_CUSTOMER in row (path and params, in place). 0: ready to send;
 * 1: it must wait (done here: deferred, or failed when the customer's row failed). */
static int resolve_customer(tg_outbox_t *ob, tg_outbox_row_t *row, int64_t now)
{
    int in_path = strstr(row->path, TG_OUTBOX_STRIPE_CUSTOMER) != NULL;
    int in_params = row->params != NULL && strstr(row->params, PLACEHOLDER_ENC) != NULL;
    if (!in_path && !in_params)
        return 0;
    char sid[TG_OUTBOX_RESPONSE_ID_MAX];
    tg_err_t err = {0}, serr = {0};
    int rc = tg_store_stripe_customer_get(ob->st, row->customer_id, sid, sizeof(sid), &err);
    if (rc == TG_ENOTFOUND) {
        tg_outbox_row_t dep;
        char why[TG_OUTBOX_ERROR_MAX];
        /* the customer's create row: the latest row of kind customer.create is what decides */
        int have = tg_store_outbox_customer_latest_of(ob->st, row->customer_id, TG_OUTBOX_KIND_CUSTOMER_CREATE, &dep,
                                                      &err) == 0;
        int failed = have && strcmp(dep.state, "failed") == 0;
        /* look again just after the customer's own next attempt, not every second: a long
         * Stripe outage must not turn waiting rows into a stream of writes */
        int64_t next = now + DEPENDENCY_WAIT_MS;
        if (have && strcmp(dep.state, "pending") == 0 && dep.next_attempt_at_ms + 100 > next)
            next = dep.next_attempt_at_ms + 100;
        if (failed) {
            snprintf(why, sizeof(why), "the Stripe customer of %s could not be created (outbox row %lld)",
                     row->customer_id, (long long)dep.id);
            if (tg_store_outbox_fail(ob->st, row->id, why, now / 1000, &serr) == 0)
                atomic_fetch_add(&ob->rows_failed, 1);
        } else {
            snprintf(why, sizeof(why), "waiting for the Stripe customer of %s", row->customer_id);
            tg_store_outbox_defer(ob->st, row->id, next, why, now / 1000, &serr);
        }
        return 1;
    }
    if (rc != 0) { /* the database: try again soon */
        tg_store_outbox_defer(ob->st, row->id, now + DEPENDENCY_WAIT_MS, err.msg, now / 1000, &serr);
        return 1;
    }
    if (tg_outbox_row_substitute(row, TG_OUTBOX_STRIPE_CUSTOMER, PLACEHOLDER_ENC, sid) != 0) {
        tg_store_outbox_defer(ob->st, row->id, now + DEPENDENCY_WAIT_MS, "out of memory", now / 1000, &serr);
        return 1;
    }
    return 0;
}

#define INVOICE_PH_ENC "%7Bstripe_invoice%3A" /* TG_OUTBOX_STRIPE_INVOICE_PREFIX, form-encoded */

/* Finds "{stripe_invoice:<id>}" (or its form-encoded spelling) in s: the whole placeholder into
 * whole, the tollgate invoice id into id. 0 if found. */
static int find_invoice_placeholder(const char *s, int encoded, char *whole, size_t wcap, char id[TG_ID_MAX])
{
    const char *pre = encoded ? INVOICE_PH_ENC : TG_OUTBOX_STRIPE_INVOICE_PREFIX, *end = encoded ? "%7D" : "}";
    const char *p = s != NULL ? strstr(s, pre) : NULL, *q;
    if (p == NULL || (q = strstr(p + strlen(pre), end)) == NULL)
        return -1;
    size_t idlen = (size_t)(q - (p + strlen(pre))), wlen = (size_t)(q + strlen(end) - p);
    if (idlen == 0 || idlen >= TG_ID_MAX || wlen >= wcap)
        return -1;
    memcpy(id, p + strlen(pre), idlen);
    id[idlen] = '\0';
    memcpy(whole, p, wlen);
    whole[wlen] = '\0';
    return 0;
}

/* Resolves the TG_OUTBOX_STRIPE_INVOICE_PREFIX placeholder in row (path and params, in place),
 * from the response id of the invoice's create row. 0: ready to send; 1: it waits or failed. */
static int resolve_invoice(tg_outbox_t *ob, tg_outbox_row_t *row, int64_t now)
{
    char wp[TG_ID_MAX + 32] = "", wq[TG_ID_MAX + 40] = "", id[TG_ID_MAX], idq[TG_ID_MAX];
    int in_path = find_invoice_placeholder(row->path, 0, wp, sizeof(wp), id) == 0;
    int in_params = find_invoice_placeholder(row->params, 1, wq, sizeof(wq), idq) == 0;
    if (!in_path && !in_params)
        return 0;
    if (!in_path)
        memcpy(id, idq, sizeof(id));
    char key[TG_OUTBOX_KEY_MAX], why[TG_OUTBOX_ERROR_MAX];
    tg_outbox_row_t dep;
    tg_err_t err = {0}, serr = {0};
    memset(&dep, 0, sizeof(dep));
    snprintf(key, sizeof(key), "tg_" TG_OUTBOX_KIND_INVOICE_CREATE "_%s", id);
    int rc = tg_store_outbox_get_by_key(ob->st, key, &dep, &err);
    if (rc != 0 || strcmp(dep.state, "done") != 0 || dep.response_id[0] == '\0') {
        if (rc == TG_ENOTFOUND || (rc == 0 && strcmp(dep.state, "pending") != 0)) {
            snprintf(why, sizeof(why), "the Stripe invoice of %s %s", id,
                     rc == TG_ENOTFOUND ? "was never queued" : "could not be created");
            if (tg_store_outbox_fail(ob->st, row->id, why, now / 1000, &serr) == 0)
                atomic_fetch_add(&ob->rows_failed, 1);
        } else {
            int64_t next = now + DEPENDENCY_WAIT_MS;
            if (rc == 0 && dep.next_attempt_at_ms + 100 > next)
                next = dep.next_attempt_at_ms + 100;
            snprintf(why, sizeof(why), "waiting for the Stripe invoice of %s", id);
            tg_store_outbox_defer(ob->st, row->id, next, rc == 0 ? why : err.msg, now / 1000, &serr);
        }
        return 1;
    }
    if (tg_outbox_row_substitute(row, in_path ? wp : NULL, in_params ? wq : NULL, dep.response_id) != 0) {
        tg_store_outbox_defer(ob->st, row->id, now + DEPENDENCY_WAIT_MS, "out of memory", now / 1000, &serr);
        return 1;
    }
    return 0;
}

/* Sends one row and records what happened. A failure to record (the database is busy past its
 * timeout) leaves the row pending: it is sent again, with the same key, and Stripe replays. */
static void process_row(tg_outbox_t *ob, tg_outbox_row_t *row)
{
    tg_stripe_result_t res;
    tg_err_t err = {0}, serr = {0};
    int64_t now = wall_ms();
    int rc, searched = 0;
    memset(&res, 0, sizeof(res));
    if (wait_for_earlier(ob, row, now) != 0 || resolve_customer(ob, row, now) != 0 || resolve_invoice(ob, row, now) != 0)
        return;
    char done_id[TG_OUTBOX_RESPONSE_ID_MAX] = "";
    switch (tg_outbox_prepare_subscription(ob, row, now, &res, done_id, sizeof(done_id), &err)) {
    case TG_OUTBOX_PREP_HANDLED:
        tg_stripe_result_clear(&res);
        return;
    case TG_OUTBOX_PREP_DONE: /* Stripe is as the row wants it: nothing to send */
        tg_store_outbox_done(ob->st, row->id, done_id, 0, now / 1000, &serr);
        tg_stripe_result_clear(&res);
        return;
    case TG_OUTBOX_PREP_CALL_FAILED: /* a lookup failed: recorded below like the call would be */
        searched = 1;
        break;
    case TG_OUTBOX_PREP_SEND:
        break;
    }
    if (strcmp(row->kind, TG_OUTBOX_KIND_CUSTOMER_CREATE) == 0 && now / 1000 - row->created_at > KEY_TRUST_S) {
        char found[TG_OUTBOX_RESPONSE_ID_MAX];
        int old = find_old_customer(ob, row, found, sizeof(found), &err);
        if (old == 1) { /* it exists: adopt it, send nothing */
            atomic_fetch_add(&ob->calls_ok, 1);
            tg_store_outbox_done(ob->st, row->id, found, 1, now / 1000, &serr);
            return;
        }
        if (old < 0) { /* recorded below as a failed attempt: retried, or failed after the last one */
            res.outcome = TG_STRIPE_RETRY;
            searched = 1;
        }
    }
    if (!searched)
        tg_stripe_call(&ob->stripe, row->method, row->path, row->params, row->params_len, row->idempotency_key, &res,
                       &err);
    if (res.outcome == TG_STRIPE_PERMANENT &&
        tg_meter_event_duplicate(row->kind, res.status, res.error_code, res.error_param, res.message)) {
        /* Stripe has an event with this identifier: it was counted (a call whose answer was
         * lost, sent again after Stripe forgot its idempotency key), which is what was asked */
        res.outcome = TG_STRIPE_OK;
        snprintf(res.id, sizeof(res.id), "duplicate identifier");
    }
    now = wall_ms();
    if (atomic_load(&ob->cancel) && res.outcome != TG_STRIPE_OK) {
        /* cut short by shutdown: the row stays as it was, due, and goes first after a restart */
        tg_stripe_result_clear(&res);
        return;
    }
    if (res.outcome == TG_STRIPE_OK && strcmp(row->kind, TG_OUTBOX_KIND_SUBSCRIPTION_CREATE) == 0 && res.id[0] != '\0' &&
        tg_outbox_subscription_created(ob, row, res.id, now / 1000, &serr) != 0) {
        /* not recorded: the row stays pending and due; the next pass replays the call */
        tg_stripe_result_clear(&res);
        return;
    }
    if (res.outcome == TG_STRIPE_OK) {
        atomic_fetch_add(&ob->calls_ok, 1);
        int map = strcmp(row->kind, TG_OUTBOX_KIND_CUSTOMER_CREATE) == 0 && res.id[0] != '\0';
        rc = tg_store_outbox_done(ob->st, row->id, res.id, map, now / 1000, &serr);
    } else if (res.outcome == TG_STRIPE_RETRY && row->attempts + 1 < ob->max_attempts) {
        atomic_fetch_add(&ob->calls_retry, 1);
        int64_t wait = tg_outbox_backoff_ms((int)(row->attempts + 1), ob->base_ms, ob->cap_ms, randombytes_random());
        rc = tg_store_outbox_retry(ob->st, row->id, now + wait, err.msg, now / 1000, &serr);
        /* 429: the account is over its rate limit, whatever the row: every call waits, at least
         * the base backoff, or the next rows of the batch would only collect more 429s */
        if (res.status == 429)
            ob->pause_until_ms = now + (wait > ob->base_ms ? wait : ob->base_ms);
    } else {
        if (res.outcome == TG_STRIPE_PERMANENT)
            atomic_fetch_add(&ob->calls_permanent, 1);
        else
            atomic_fetch_add(&ob->calls_retry, 1);
        char why[TG_OUTBOX_ERROR_MAX + 64]; /* the store keeps the first TG_OUTBOX_ERROR_MAX - 1 bytes */
        snprintf(why, sizeof(why), "%s%s", res.outcome == TG_STRIPE_RETRY ? "gave up after the last attempt: " : "",
                 err.msg);
        rc = tg_store_outbox_fail(ob->st, row->id, why, now / 1000, &serr);
        if (rc == 0)
            atomic_fetch_add(&ob->rows_failed, 1);
    }
    (void)rc; /* on error the row stays pending and due: the next pass sends it again */
    tg_stripe_result_clear(&res);
}

/* Waits until ms (wall clock) or a wake or stop, whichever first. */
static void wait_until(tg_outbox_t *ob, int64_t ms)
{
    int64_t now = wall_ms();
    int64_t wait_ms = ms - now;
    if (wait_ms > ob->poll_ms)
        wait_ms = ob->poll_ms;
    pthread_mutex_lock(&ob->mu);
    if (wait_ms > 0 && !ob->stopping && !ob->wake) {
        struct timespec ts = tg_clock_deadline(CLOCK_MONOTONIC, wait_ms); /* the cv's clock */
        while (!ob->stopping && !ob->wake && pthread_cond_timedwait(&ob->cv, &ob->mu, &ts) != ETIMEDOUT) {
        }
    }
    ob->wake = 0;
    pthread_mutex_unlock(&ob->mu);
}

static int stopping(tg_outbox_t *ob)
{
    pthread_mutex_lock(&ob->mu);
    int s = ob->stopping;
    pthread_mutex_unlock(&ob->mu);
    return s;
}

static void *processor_main(void *arg)
{
    tg_outbox_t *ob = arg;
    pthread_setname_np(pthread_self(), "tg-stripe-outbx");
    /* No answer waits for Stripe, so below the request path; at 10, not 19: the outbox must keep
     * pace with the usage it reports (Stripe refuses meter events older than its window) and with
     * period closes (invoices finalised late are charged late), it is mostly blocked on the
     * network, and a starved TLS handshake would outlast the call's timeout and be retried. */
    tg_thread_lower_priority_or_warn(TG_NICE_BACKGROUND, "the Stripe outbox (tg-stripe-outbx)");
    tg_outbox_row_t rows[DUE_BATCH];
    while (!stopping(ob)) {
        atomic_fetch_add(&ob->passes, 1);
        ob->nprices = 0; /* prices are looked up afresh each pass (sync-catalog may have replaced one) */
        size_t n = 0;
        tg_err_t err = {0};
        if (wall_ms() < ob->pause_until_ms) { /* rate limited: nothing is sent until then */
            wait_until(ob, ob->pause_until_ms);
            continue;
        }
        /* Nothing waits longer than the backoff cap (a dependent row a little longer): a row due
         * later than that was scheduled before the clock went back, and is due now. */
        int64_t now = wall_ms();
        (void)tg_store_outbox_pull_in(ob->st, now + ob->cap_ms + CLOCK_SLACK_MS, now, NULL, &err);
        if (tg_store_outbox_due(ob->st, wall_ms(), rows, DUE_BATCH, &n, &err) != 0)
            n = 0;
        for (size_t i = 0; i < n; i++) {
            if (!stopping(ob) && wall_ms() >= ob->pause_until_ms)
                process_row(ob, &rows[i]); /* a row left by a 429 pause stays due */
            tg_outbox_row_clear(&rows[i]);
        }
        if (n == DUE_BATCH)
            continue; /* more may be due */
        if (wall_ms() - ob->pruned_at_ms >= PRUNE_EVERY_MS) {
            size_t deleted = PRUNE_BATCH;
            for (int i = 0; i < 10 && deleted == PRUNE_BATCH && !stopping(ob); i++)
                if (tg_store_outbox_prune(ob->st, wall_ms() / 1000 - KEEP_DONE_S, PRUNE_BATCH, &deleted, &err) != 0)
                    break;
            ob->pruned_at_ms = wall_ms();
        }
        int64_t next = 0;
        uint64_t pending = 0;
        int rc = tg_store_outbox_next_due(ob->st, &next, &pending, &err);
        if (rc == 0 || rc == TG_ENOTFOUND)
            atomic_store(&ob->pending, pending);
        if (rc != 0)
            next = wall_ms() + ob->poll_ms;
        wait_until(ob, next);
    }
    return NULL;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static void free_outbox(tg_outbox_t *ob)
{
    if (ob->secret_key != NULL) {
        sodium_memzero(ob->secret_key, strlen(ob->secret_key));
        free(ob->secret_key);
    }
    free(ob->api_base);
    tg_store_close(ob->st);
    pthread_cond_destroy(&ob->cv);
    pthread_mutex_destroy(&ob->mu);
    free(ob);
}

int tg_outbox_start(const tg_outbox_settings_t *s, tg_outbox_t **out, tg_err_t *err)
{
    *out = NULL;
    if (s->stripe.secret_key == NULL || s->stripe.secret_key[0] == '\0')
        return tg_errf(err, TG_ECONFIG, "the Stripe outbox needs a secret key");
    tg_outbox_t *ob = calloc(1, sizeof(*ob));
    if (ob == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory starting the Stripe outbox");
    pthread_mutex_init(&ob->mu, NULL);
    tg_clock_cond_init(&ob->cv);
    ob->secret_key = strdup(s->stripe.secret_key);
    ob->api_base = dup_or_null(s->stripe.api_base);
    if (ob->secret_key == NULL || (s->stripe.api_base != NULL && ob->api_base == NULL)) {
        free_outbox(ob);
        return tg_errf(err, TG_ENOMEM, "out of memory starting the Stripe outbox");
    }
    ob->stripe.secret_key = ob->secret_key;
    ob->stripe.api_base = ob->api_base;
    ob->stripe.timeout_ms = s->stripe.timeout_ms;
    ob->stripe.cancel = &ob->cancel;
    ob->base_ms = s->backoff_base_ms > 0 ? s->backoff_base_ms : 1000;
    ob->cap_ms = s->backoff_cap_ms > 0 ? s->backoff_cap_ms : 3600 * 1000;
    ob->max_attempts = s->max_attempts > 0 ? s->max_attempts : 12;
    ob->poll_ms = s->poll_ms > 0 ? s->poll_ms : 500;
    int rc = tg_store_open(s->database, &ob->st, err);
    if (rc != 0) {
        free_outbox(ob);
        return rc;
    }
    if (pthread_create(&ob->tid, NULL, processor_main, ob) != 0) {
        free_outbox(ob);
        return tg_errf(err, TG_ENOMEM, "cannot start the Stripe outbox thread");
    }
    *out = ob;
    return 0;
}

void tg_outbox_wake(tg_outbox_t *ob)
{
    if (ob == NULL)
        return;
    pthread_mutex_lock(&ob->mu);
    ob->wake = 1;
    pthread_cond_signal(&ob->cv);
    pthread_mutex_unlock(&ob->mu);
}

void tg_outbox_stop(tg_outbox_t *ob)
{
    if (ob == NULL)
        return;
    atomic_store(&ob->cancel, 1);
    pthread_mutex_lock(&ob->mu);
    ob->stopping = 1;
    pthread_cond_signal(&ob->cv);
    pthread_mutex_unlock(&ob->mu);
    pthread_join(ob->tid, NULL);
    free_outbox(ob);
}

void tg_outbox_stats(tg_outbox_t *ob, tg_outbox_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (ob == NULL)
        return;
    out->calls_ok = atomic_load(&ob->calls_ok);
    out->calls_retry = atomic_load(&ob->calls_retry);
    out->calls_permanent = atomic_load(&ob->calls_permanent);
    out->rows_failed = atomic_load(&ob->rows_failed);
    out->pending = atomic_load(&ob->pending);
    out->passes = atomic_load(&ob->passes);
}
