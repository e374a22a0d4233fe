/* meter_export.c - usage to Stripe as meter events, late usage as invoice items (see
 * meter_export.h for the rules and why they hold).
 *
 * A pass pages through the due rows of usage_hourly (ordered by customer, metric, bucket) a
 * batch at a time; each batch is one transaction: read the rows, queue the calls, mark the rows,
 * commit. Rows whose customer or plan cannot be found are stepped over (the page cursor moves
 * past them), so they never starve the others; they stay unexported and are tried every pass. */
#include "payments/meter_export.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "billing/pricing.h"
#include "payments/outbox.h"
#include "payments/stripe_form.h"
#include "store/store_meter.h"
#include "util/money.h"
#include "util/period.h"

#define BATCH 256
#define MAX_BATCHES 40 /* per pass: 10,240 buckets every ~10 s */
#define KEY_TRIES 64   /* seq values tried when an identifier was taken (see queue_late) */
#define PRUNE_BATCH 1000

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

int tg_meter_identifier(const char *customer_id, const char *metric, int64_t ts, int64_t seq, char *out, size_t cap)
{
    size_t lim = cap < TG_METER_IDENTIFIER_MAX + 1 ? cap : TG_METER_IDENTIFIER_MAX + 1;
    int n = snprintf(out, cap, "tg_%s_%s_%" PRId64 "_%" PRId64, customer_id, metric, ts, seq);
    if (n >= 0 && (size_t)n < lim)
        return 0;
    n = snprintf(out, cap, "tg_%s_m%016" PRIx64 "_%" PRId64 "_%" PRId64, customer_id, fnv1a(metric), ts, seq);
    if (n >= 0 && (size_t)n < lim)
        return 0;
    if (cap > 0)
        out[0] = '\0';
    return TG_EINVAL;
}

int64_t tg_meter_period_end(int64_t anchor_s, tg_interval_t interval, int64_t period_start)
{
    if (anchor_s <= period_start) {
        int64_t start, end;
        tg_period_bounds(anchor_s, interval, period_start, &start, &end);
        return end;
    }
    int64_t natural = tg_period_boundary(period_start, interval, 1);
    return anchor_s < natural ? anchor_s : natural;
}

int tg_meter_is_late(int64_t now_s, int64_t ts, int64_t period_end)
{
    return now_s - ts > TG_METER_EXPORT_MAX_AGE_S || now_s - period_end >= TG_METER_EXPORT_GRACE_S;
}

int tg_meter_late_amount(const tg_plan_t *plan, const char *metric, uint64_t before, uint64_t late, int64_t *minor,
                         tg_err_t *err)
{
    *minor = 0;
    uint64_t after;
    if (__builtin_add_overflow(before, late, &after) || after > (uint64_t)INT64_MAX)
        return tg_errf(err, TG_ERANGE, "%s: %" PRIu64 " + %" PRIu64 " units do not fit", metric, before, late);
    /* lines are rounded to the currency's minor unit; Stripe counts in its own (ISK: hundredths,
     * finer than ISO's krona), so the conversion is exact */
    int digits = tg_stripe_currency_digits(plan->currency);
    if (digits < 0 || digits > TG_MONEY_DIGITS)
        return tg_errf(err, TG_EINVAL, "plan %s: Stripe does not know the currency %.8s", plan->id, plan->currency);
    tg_money_t diff; /* the same price as a late line on tollgate's own invoice */
    int rc = tg_price_late_usage(plan, metric, before, late, &diff, err);
    if (rc != 0)
        return rc;
    int64_t unit = 1;
    for (int i = digits; i < TG_MONEY_DIGITS; i++)
        unit *= 10;
    if (diff % unit != 0) /* lines are rounded to the minor unit: cannot happen */
        return tg_errf(err, TG_EINVAL, "%s: the price of the late units is not whole minor units", metric);
    *minor = diff / unit;
    return 0;
}

int tg_meter_event_duplicate(const char *kind, long status, const char *error_code, const char *error_param,
                             const char *message)
{
    if (kind == NULL || strcmp(kind, TG_OUTBOX_KIND_METER_EVENT) != 0 || status != 400)
        return 0;
    if (error_code != NULL && strcmp(error_code, "duplicate_meter_event") == 0)
        return 1;
    return error_param != NULL && strcmp(error_param, "identifier") == 0 && message != NULL &&
           strstr(message, "already exists") != NULL;
}

/* ---- a pass ---- */

typedef struct pass {
    const tg_sub_ctx_t *x;
    int64_t now;
    tg_meter_export_run_t *run;
    /* the customer of the rows in hand (rows come ordered by customer) */
    tg_customer_t cust;
    int cust_rc; /* 0, or why it could not be read */
    char cust_err[TG_ERR_MAX];
} pass_t;

static void skip(pass_t *p, const char *why)
{
    if (p->run->skipped++ == 0)
        snprintf(p->run->first_skip, sizeof(p->run->first_skip), "%.*s", (int)sizeof(p->run->first_skip) - 1, why);
}

/* Reads the customer of customer_id into p->cust unless it is there already. */
static void load_customer(pass_t *p, const char *customer_id)
{
    if (p->cust.id[0] != '\0' && strcmp(p->cust.id, customer_id) == 0)
        return;
    tg_err_t err = {0};
    memset(&p->cust, 0, sizeof(p->cust));
    p->cust_rc = tg_store_customer_get(p->x->store, customer_id, &p->cust, &err);
    snprintf(p->cust.id, sizeof(p->cust.id), "%s", customer_id);
    snprintf(p->cust_err, sizeof(p->cust_err), "%s", err.msg);
}

/* 1 if b is late, 0 if not, -1 if it cannot be decided now (unknown customer or plan: skipped). */
static int bucket_late(pass_t *p, const tg_meter_bucket_t *b, const tg_plan_t **plan)
{
    load_customer(p, b->customer_id);
    char why[TG_ERR_MAX + 64];
    if (p->cust_rc != 0) {
        snprintf(why, sizeof(why), "usage of %s: %s", b->customer_id, p->cust_err);
        skip(p, why);
        return -1;
    }
    *plan = tg_config_find_plan(p->x->cfg, b->plan_id);
    if (*plan == NULL) {
        snprintf(why, sizeof(why), "usage of %s: the plan %s is not in the configuration", b->customer_id, b->plan_id);
        skip(p, why);
        return -1;
    }
    return tg_meter_is_late(p->now, b->ts, tg_meter_period_end(p->cust.anchor_at, (*plan)->interval, b->period_start));
}

/* Queues the meter event of (customer, metric, ts) for `value` units with the group's seq. */
static int queue_event(pass_t *p, const tg_meter_bucket_t *b, uint64_t value, int64_t *seq, tg_err_t *err)
{
    char id[TG_METER_IDENTIFIER_MAX + 1], v[24];
    snprintf(v, sizeof(v), "%" PRIu64, value);
    int rc = TG_EEXIST;
    /* an identifier is taken only when its hour was deleted (TG_METER_EXPORT_KEEP_S) and usage
     * came back for it: not for an hour Stripe still takes, but never lose units over it */
    for (int i = 0; i < KEY_TRIES && rc == TG_EEXIST; i++, rc == TG_EEXIST ? (*seq)++ : 0) {
        if ((rc = tg_meter_identifier(b->customer_id, b->metric, b->ts, *seq, id, sizeof(id))) != 0)
            return tg_errf(err, rc, "no meter event identifier fits for %s/%s", b->customer_id, b->metric);
        tg_form_t f;
        tg_form_init(&f, 0);
        rc = tg_form_add(&f, "event_name", b->metric, err);
        if (rc == 0)
            rc = tg_form_add(&f, "payload[stripe_customer_id]", TG_OUTBOX_STRIPE_CUSTOMER, err);
        if (rc == 0)
            rc = tg_form_add(&f, "payload[value]", v, err);
        if (rc == 0)
            rc = tg_form_add(&f, "identifier", id, err);
        if (rc == 0)
            rc = tg_form_add_int(&f, "timestamp", b->ts, err);
        if (rc == 0)
            rc = tg_outbox_enqueue(p->x->store, TG_OUTBOX_KIND_METER_EVENT, b->customer_id, id, "POST",
                                   "/v1/billing/meter_events", &f, err);
        tg_form_free(&f);
    }
    if (rc == 0)
        p->run->events++;
    return rc;
}

/* A late group: the rows of one (customer, metric, period, plan) in this batch. */
typedef struct late {
    size_t first, count; /* indexes into the batch's late rows */
} late_t;

/* "2025-03-01" of second s (UTC). */
static void ymd(int64_t s, char out[16])
{
    time_t t = (time_t)s;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, 16, "%Y-%m-%d", &tm) == 0)
        snprintf(out, 16, "?");
}

/* Queues the invoice item of the late rows rows[0..n) (one customer, metric, period and plan)
 * and marks them. */
static int queue_late(pass_t *p, tg_meter_bucket_t *const *rows, size_t n, const tg_plan_t *plan, tg_err_t *err)
{
    const tg_meter_bucket_t *b = rows[0], *newest = rows[0];
    uint64_t late = 0, before = 0;
    for (size_t i = 0; i < n; i++) {
        if (__builtin_add_overflow(late, rows[i]->units - rows[i]->exported, &late))
            return tg_errf(err, TG_ERANGE, "%s: the late units of %s do not fit", b->customer_id, b->metric);
        if (rows[i]->ts > newest->ts)
            newest = rows[i];
    }
    int rc = tg_store_meter_period_exported(p->x->store, b->customer_id, b->period_start, b->plan_id, b->metric,
                                            &before, err);
    int64_t amount = 0;
    if (rc == 0)
        rc = tg_meter_late_amount(plan, b->metric, before, late, &amount, err);
    if (rc != 0)
        return rc;
    int64_t seq = newest->seq;
    if (amount != 0) {
        int64_t end = tg_meter_period_end(p->cust.anchor_at, plan->interval, b->period_start);
        char from[16], to[16], desc[256], units[24], start[24], cur[4], op[TG_METER_IDENTIFIER_MAX + 1];
        ymd(b->period_start, from);
        ymd(end, to);
        snprintf(units, sizeof(units), "%" PRIu64, late);
        snprintf(start, sizeof(start), "%" PRId64, b->period_start);
        snprintf(desc, sizeof(desc), "%.64s: %" PRIu64 " units used %s to %s, reported after that period's invoice",
                 b->metric, late, from, to);
        for (size_t i = 0; i < sizeof(cur); i++)
            cur[i] = plan->currency[i];
        rc = TG_EEXIST;
        /* the key is the newest row's (ts, seq), which this item uses up; if it was taken (its
         * hour was deleted and came back), the next seq */
        for (int i = 0; i < KEY_TRIES && rc == TG_EEXIST; i++, rc == TG_EEXIST ? seq++ : 0) {
            if ((rc = tg_meter_identifier(b->customer_id, b->metric, newest->ts, seq, op, sizeof(op))) != 0)
                return tg_errf(err, rc, "no late usage key fits for %s/%s", b->customer_id, b->metric);
            tg_form_t f;
            tg_form_init(&f, 0);
            rc = tg_form_add(&f, "customer", TG_OUTBOX_STRIPE_CUSTOMER, err);
            if (rc == 0)
                rc = tg_form_add_int(&f, "amount", amount, err);
            if (rc == 0)
                rc = tg_form_add(&f, "currency", cur, err);
            if (rc == 0)
                rc = tg_form_add(&f, "description", desc, err);
            if (rc == 0)
                rc = tg_form_add_int(&f, "period[start]", b->period_start, err);
            if (rc == 0)
                rc = tg_form_add_int(&f, "period[end]", end, err);
            if (rc == 0)
                rc = tg_form_add(&f, "metadata[tollgate_customer]", b->customer_id, err);
            if (rc == 0)
                rc = tg_form_add(&f, "metadata[tollgate_metric]", b->metric, err);
            if (rc == 0)
                rc = tg_form_add(&f, "metadata[tollgate_units]", units, err);
            if (rc == 0)
                rc = tg_form_add(&f, "metadata[tollgate_period_start]", start, err);
            if (rc == 0)
                rc = tg_outbox_enqueue(p->x->store, TG_OUTBOX_KIND_LATE_USAGE, b->customer_id, op, "POST",
                                       "/v1/invoiceitems", &f, err);
            tg_form_free(&f);
        }
        if (rc != 0)
            return rc;
        p->run->items++;
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = tg_store_meter_mark(p->x->store, rows[i], rows[i]->units, err);
    /* every bucket whose units this item took: its next send gets a new identifier */
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = tg_store_meter_set_seq(p->x->store, rows[i]->customer_id, rows[i]->metric, rows[i]->ts,
                                    rows[i] == newest ? seq + 1 : rows[i]->seq + 1, err);
    return rc;
}

static int cmp_late(const void *a, const void *b)
{
    const tg_meter_bucket_t *x = *(tg_meter_bucket_t *const *)a, *y = *(tg_meter_bucket_t *const *)b;
    int c = strcmp(x->customer_id, y->customer_id);
    if (c == 0)
        c = strcmp(x->metric, y->metric);
    if (c == 0)
        c = (x->period_start > y->period_start) - (x->period_start < y->period_start);
    if (c == 0)
        c = strcmp(x->plan_id, y->plan_id);
    return c;
}

/* One batch: rows[0..n) in one transaction (the caller's). */
static int export_batch(pass_t *p, tg_meter_bucket_t *rows, size_t n, tg_err_t *err)
{
    int rc = 0;
    tg_meter_bucket_t **late = malloc(n * sizeof(*late));
    const tg_plan_t **plans = malloc(n * sizeof(*plans));
    signed char *kind = malloc(n);
    size_t nlate = 0;
    if (late == NULL || plans == NULL || kind == NULL) {
        free(late);
        free(plans);
        free(kind);
        return tg_errf(err, TG_ENOMEM, "out of memory sending usage to Stripe");
    }
    for (size_t i = 0; i < n; i++)
        kind[i] = (signed char)bucket_late(p, &rows[i], &plans[i]);
    /* meter events: one per run of rows with the same (customer, metric, ts) that are not late */
    for (size_t i = 0; i < n && rc == 0;) {
        size_t j = i;
        uint64_t value = 0;
        int64_t seq = 0;
        const tg_meter_bucket_t *first = NULL;
        for (; j < n && strcmp(rows[j].customer_id, rows[i].customer_id) == 0 &&
               strcmp(rows[j].metric, rows[i].metric) == 0 && rows[j].ts == rows[i].ts;
             j++) {
            if (rows[j].seq > seq)
                seq = rows[j].seq;
            if (kind[j] == 1)
                late[nlate++] = &rows[j];
            if (kind[j] != 0)
                continue;
            if (first == NULL)
                first = &rows[j];
            value += rows[j].units - rows[j].exported;
        }
        if (first != NULL) {
            rc = queue_event(p, first, value, &seq, err);
            for (size_t k = i; k < j && rc == 0; k++)
                if (kind[k] == 0)
                    rc = tg_store_meter_mark(p->x->store, &rows[k], rows[k].units, err);
            if (rc == 0)
                rc = tg_store_meter_set_seq(p->x->store, first->customer_id, first->metric, first->ts, seq + 1, err);
            if (rc == 0) /* a late row of the same bucket below takes the next identifier */
                for (size_t k = i; k < j; k++)
                    rows[k].seq = seq + 1;
        }
        i = j;
    }
    /* late rows: one invoice item per (customer, metric, period, plan) */
    qsort(late, nlate, sizeof(*late), cmp_late);
    for (size_t i = 0; i < nlate && rc == 0;) {
        size_t j = i + 1;
        while (j < nlate && cmp_late(&late[i], &late[j]) == 0)
            j++;
        load_customer(p, late[i]->customer_id);
        rc = queue_late(p, &late[i], j - i, plans[late[i] - rows], err);
        i = j;
    }
    free(late);
    free(plans);
    free(kind);
    return rc;
}

/* The value of `key` in the form-encoded params (keys as tg_form_add writes them, brackets
 * unencoded) as a non-negative integer into *v. 0, or -1 if absent or not a number. */
static int form_int(const char *params, const char *key, uint64_t *v)
{
    size_t kl = strlen(key);
    for (const char *p = params; p != NULL && *p != '\0'; p = strchr(p, '&'), p = p != NULL ? p + 1 : NULL) {
        if (strncmp(p, key, kl) != 0 || p[kl] != '=')
            continue;
        const char *d = p + kl + 1;
        uint64_t x = 0;
        if (*d < '0' || *d > '9')
            return -1;
        for (; *d >= '0' && *d <= '9'; d++)
            if (__builtin_mul_overflow(x, 10, &x) || __builtin_add_overflow(x, (uint64_t)(*d - '0'), &x))
                return -1;
        if (*d != '\0' && *d != '&')
            return -1;
        *v = x;
        return 0;
    }
    return -1;
}

/* The value of `key` (text up to the next '&', no escapes: a metric name) into out. */
static int form_word(const char *params, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    for (const char *p = params; p != NULL && *p != '\0'; p = strchr(p, '&'), p = p != NULL ? p + 1 : NULL) {
        if (strncmp(p, key, kl) != 0 || p[kl] != '=')
            continue;
        size_t n = strcspn(p + kl + 1, "&%+");
        if (n == 0 || n >= cap || (p[kl + 1 + n] != '\0' && p[kl + 1 + n] != '&'))
            return -1;
        memcpy(out, p + kl + 1, n);
        out[n] = '\0';
        return 0;
    }
    return -1;
}

/* Meter events Stripe refused for their timestamp counted nothing: when their bucket is now too
 * old for another event (the outbox was stuck past Stripe's window), their units are taken back,
 * one transaction each, and the pass that follows sends them as late usage. One refused because
 * it was ahead of Stripe's clock stays failed, for the owner to see. */
static int take_back_refused(pass_t *p, tg_err_t *err)
{
    enum { REFUSED_BATCH = 64 };
    tg_meter_refused_t *r = malloc(REFUSED_BATCH * sizeof(*r));
    size_t n = 0;
    if (r == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory reading refused meter events");
    int rc = tg_store_meter_refused(p->x->store, r, REFUSED_BATCH, &n, err);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char metric[TG_METRIC_MAX];
        uint64_t value = 0, ts = 0;
        if (form_word(r[i].params, "event_name", metric, sizeof(metric)) != 0 ||
            form_int(r[i].params, "payload[value]", &value) != 0 || form_int(r[i].params, "timestamp", &ts) != 0 ||
            ts > (uint64_t)INT64_MAX || p->now - (int64_t)ts <= TG_METER_EXPORT_MAX_AGE_S)
            continue;
        if ((rc = tg_store_tx_begin(p->x->store, err)) != 0)
            break;
        rc = tg_store_meter_take_back(p->x->store, r[i].outbox_id, r[i].customer_id, metric, (int64_t)ts, value, p->now,
                                      err);
        if (rc == 0)
            rc = tg_store_tx_commit(p->x->store, err);
        if (rc != 0)
            tg_store_tx_rollback(p->x->store);
        if (rc == TG_ESTATE) /* requeued meanwhile: the outbox has it */
            rc = 0;
    }
    free(r);
    return rc;
}

int tg_meter_export_run(const tg_sub_ctx_t *x, tg_meter_export_run_t *run, tg_err_t *err)
{
    memset(run, 0, sizeof(*run));
    pass_t p;
    memset(&p, 0, sizeof(p));
    p.x = x;
    p.run = run;
    p.now = tg_sub_now(x);
    int64_t hour_before = p.now - 3600 - TG_METER_EXPORT_SETTLE_S + 1;
    tg_meter_cursor_t cur;
    memset(&cur, 0, sizeof(cur));
    tg_meter_bucket_t *rows = malloc(BATCH * sizeof(*rows));
    if (rows == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory sending usage to Stripe");
    size_t n = 0;
    /* a look outside any transaction first (after folding what is committed): most passes find
     * nothing and write nothing */
    int rc = take_back_refused(&p, err);
    if (rc == 0)
        rc = tg_store_usage_fold(x->store, 1, err);
    if (rc == 0)
        rc = tg_store_meter_due(x->store, hour_before, &cur, rows, 1, &n, err);
    if (rc == 0 && n == 1 && x->meter != NULL)
        tg_meter_flush(x->meter); /* calls answered before now are in the hours sent now */
    for (int b = 0; rc == 0 && n > 0 && b < MAX_BATCHES; b++) {
        if ((rc = tg_store_tx_begin(x->store, err)) != 0)
            break;
        rc = tg_store_meter_due(x->store, hour_before, &cur, rows, BATCH, &n, err);
        if (rc == 0 && n > 0)
            rc = export_batch(&p, rows, n, err);
        if (rc == 0)
            rc = tg_store_tx_commit(x->store, err);
        if (rc != 0) {
            tg_store_tx_rollback(x->store);
            break;
        }
        if (n > 0) { /* the next page starts after the last row, done or stepped over */
            const tg_meter_bucket_t *last = &rows[n - 1];
            memcpy(cur.customer_id, last->customer_id, sizeof(cur.customer_id));
            memcpy(cur.metric, last->metric, sizeof(cur.metric));
            cur.ts = last->ts;
            cur.period_start = last->period_start;
            memcpy(cur.plan_id, last->plan_id, sizeof(cur.plan_id));
        }
        if (n < BATCH)
            break;
    }
    free(rows);
    if (rc == 0) { /* fully sent hours Stripe no longer takes are of no more use */
        tg_err_t perr = {0};
        tg_store_meter_prune(x->store, p.now - TG_METER_EXPORT_KEEP_S, PRUNE_BATCH, NULL, &perr);
    }
    return rc;
}
