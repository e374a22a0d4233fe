/* revenue.c - invoiced / collected / outstanding per currency, and the MRR of paying customers
 * (revenue.h). The accumulators are pure; tg_revenue_compute is the one function that reads. */
#include "billing/revenue.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tg_revenue_init(tg_revenue_t *rv, int64_t from, int64_t to)
{
    memset(rv, 0, sizeof(*rv));
    rv->from = from;
    rv->to = to;
}

const tg_revenue_currency_t *tg_revenue_find(const tg_revenue_t *rv, const char *currency)
{
    for (size_t i = 0; i < rv->ncur; i++)
        if (strcmp(rv->cur[i].currency, currency) == 0)
            return &rv->cur[i];
    return NULL;
}

/* The currency's entry in *out, made on first use: 0, TG_EINVAL for an unknown code, TG_ERANGE
 * when the table is full. Codes are compared in lower case, as the config and the store keep them. */
static int entry(tg_revenue_t *rv, const char *currency, tg_revenue_currency_t **out, tg_err_t *err)
{
    char code[4];
    size_t n = strlen(currency);
    int digits = tg_currency_digits(currency);
    if (n != 3 || digits < 0)
        return tg_errf(err, TG_EINVAL, "Unknown currency \"%.8s\".", currency);
    for (size_t i = 0; i < 3; i++)
        code[i] = (char)(currency[i] >= 'A' && currency[i] <= 'Z' ? currency[i] - 'A' + 'a' : currency[i]);
    code[3] = '\0';
    for (size_t i = 0; i < rv->ncur; i++)
        if (memcmp(rv->cur[i].currency, code, 4) == 0) {
            *out = &rv->cur[i];
            return 0;
        }
    if (rv->ncur == TG_REVENUE_MAX_CURRENCIES)
        return tg_errf(err, TG_ERANGE, "More than %d currencies.", TG_REVENUE_MAX_CURRENCIES);
    tg_revenue_currency_t *e = &rv->cur[rv->ncur++];
    memset(e, 0, sizeof(*e));
    memcpy(e->currency, code, 4);
    e->digits = digits;
    *out = e;
    return 0;
}

/* Forgets an entry made by the call that failed, so that rv is as it was. */
static void undo_entry(tg_revenue_t *rv, size_t before)
{
    if (rv->ncur > before) {
        memset(&rv->cur[before], 0, sizeof(rv->cur[before]));
        rv->ncur = before;
    }
}

/* 10^(9 - digits): one minor unit in nano-units. */
static tg_money_t minor_unit(int digits)
{
    tg_money_t m = 1;
    for (int i = digits; i < TG_MONEY_DIGITS; i++)
        m *= 10;
    return m;
}

int tg_revenue_add_invoices(tg_revenue_t *rv, const char *currency, const char *status, tg_money_t total,
                            uint64_t count, tg_err_t *err)
{
    tg_money_t *bucket;
    uint64_t *n;
    int paid = strcmp(status, "paid") == 0, open = strcmp(status, "open") == 0,
        lost = strcmp(status, "uncollectible") == 0;
    if (!paid && !open && !lost)
        return 0; /* draft (not invoiced yet) or void (canceled): neither is revenue */
    size_t before = rv->ncur;
    tg_revenue_currency_t *e;
    int rc = entry(rv, currency, &e, err);
    if (rc != 0)
        return rc;
    if (total % minor_unit(e->digits) != 0) {
        undo_entry(rv, before);
        return tg_errf(err, TG_EINVAL, "A %s invoice total of %lld nano-units is not a whole number of minor units.",
                       e->currency, (long long)total);
    }
    bucket = paid ? &e->collected : open ? &e->outstanding : &e->uncollectible;
    n = paid ? &e->n_paid : open ? &e->n_open : &e->n_uncollectible;
    tg_money_t invoiced, part;
    if (tg_money_add(e->invoiced, total, &invoiced) != 0 || tg_money_add(*bucket, total, &part) != 0 ||
        count > UINT64_MAX - e->n_invoiced) {
        undo_entry(rv, before);
        return tg_errf(err, TG_ERANGE, "The %s invoice totals overflow.", e->currency);
    }
    e->invoiced = invoiced;
    *bucket = part;
    e->n_invoiced += count;
    *n += count;
    return 0;
}

int tg_revenue_add_usage(tg_revenue_t *rv, const char *currency, tg_money_t amount, tg_err_t *err)
{
    size_t before = rv->ncur;
    tg_revenue_currency_t *e;
    tg_money_t sum;
    int rc = entry(rv, currency, &e, err);
    if (rc != 0)
        return rc;
    if (amount % minor_unit(e->digits) != 0) {
        undo_entry(rv, before);
        return tg_errf(err, TG_EINVAL, "A %s usage amount of %lld nano-units is not a whole number of minor units.",
                       e->currency, (long long)amount);
    }
    if (tg_money_add(e->usage_last_period, amount, &sum) != 0) {
        undo_entry(rv, before);
        return tg_errf(err, TG_ERANGE, "The %s usage revenue overflows.", e->currency);
    }
    e->usage_last_period = sum;
    return 0;
}

tg_mrr_class_t tg_mrr_classify(const tg_customer_t *c, const tg_plan_t *plan, int64_t now)
{
    if (strcmp(c->status, "canceled") == 0 || (c->cancel_at != 0 && c->cancel_at <= now))
        return TG_MRR_CANCELED; /* a cancellation due at the period's end counts until then */
    if (strcmp(c->status, "suspended") == 0)
        return TG_MRR_SUSPENDED;
    if (strcmp(c->status, "incomplete") == 0)
        return TG_MRR_INCOMPLETE;
    if (plan->price == 0 && plan->ncharges == 0)
        return TG_MRR_FREE;
    if (strcmp(c->status, "trialing") == 0 && c->trial_end > now)
        return TG_MRR_TRIALING;
    /* active, past_due (payments failing, still subscribed and billed), or a trial that ended */
    return TG_MRR_PAYING;
}

int tg_mrr_monthly_fee(const tg_plan_t *plan, tg_money_t *out, tg_err_t *err)
{
    tg_money_t fee = plan->price;
    if (plan->interval == TG_INTERVAL_YEAR && tg_money_scale(plan->price, 1, 12, &fee) != 0)
        return tg_errf(err, TG_ERANGE, "Plan %s: the monthly fee does not fit.", plan->id);
    *out = tg_money_round(fee, plan->currency_digits);
    return 0;
}

int tg_revenue_add_customer(tg_revenue_t *rv, const tg_customer_t *c, const tg_plan_t *plan, int64_t now, tg_err_t *err)
{
    tg_mrr_class_t k = tg_mrr_classify(c, plan, now);
    if (k == TG_MRR_PAYING || k == TG_MRR_TRIALING) {
        tg_money_t fee, sum;
        size_t before = rv->ncur;
        if (tg_mrr_monthly_fee(plan, &fee, err) != 0)
            return TG_ERANGE;
        tg_revenue_currency_t *e;
        int rc = entry(rv, plan->currency, &e, err);
        if (rc != 0)
            return rc;
        tg_money_t *bucket = k == TG_MRR_PAYING ? &e->mrr : &e->trial_mrr;
        if (tg_money_add(*bucket, fee, &sum) != 0) {
            undo_entry(rv, before);
            return tg_errf(err, TG_ERANGE, "The %s MRR overflows.", e->currency);
        }
        *bucket = sum;
        if (k == TG_MRR_PAYING)
            e->paying++;
        else
            e->trialing++;
    }
    rv->by_class[k]++;
    return 0;
}

const char *tg_mrr_class_name(tg_mrr_class_t c)
{
    static const char *const names[TG_MRR_NCLASSES] = {"paying",    "trialing", "incomplete",
                                                       "suspended", "canceled", "free"};
    return (unsigned)c < TG_MRR_NCLASSES ? names[c] : "unknown";
}

/* ---- from the store ---- */

int tg_revenue_customer(tg_revenue_t *rv, tg_revenue_plan_t *by_plan, const tg_config_t *cfg, const tg_customer_t *c,
                        int64_t now, tg_err_t *err)
{
    const tg_plan_t *plan = tg_config_find_plan(cfg, c->plan_id);
    if (plan == NULL)
        return 0; /* a plan removed from the configuration: nothing to price it with */
    int rc = tg_revenue_add_customer(rv, c, plan, now, err);
    if (rc == 0 && by_plan != NULL && tg_mrr_classify(c, plan, now) == TG_MRR_PAYING) {
        tg_revenue_plan_t *p = &by_plan[plan - cfg->plans]; /* find returns a pointer into plans */
        tg_money_t fee, sum;
        /* the fee was added to the currency's MRR above, so neither can fail here */
        if (tg_mrr_monthly_fee(plan, &fee, err) == 0 && tg_money_add(p->mrr, fee, &sum) == 0) {
            p->mrr = sum;
            p->paying++;
        }
    }
    return rc;
}

typedef struct compute_ctx {
    tg_revenue_t *rv;
    tg_revenue_plan_t *by_plan;
    const tg_config_t *cfg;
    int64_t now;
    tg_err_t *err;
    int rc; /* the first error, which stops the walk */
} compute_ctx_t;

static int on_totals(const char *currency, const char *status, int64_t total, uint64_t count, void *arg)
{
    compute_ctx_t *x = arg;
    x->rc = tg_revenue_add_invoices(x->rv, currency, status, total, count, x->err);
    return x->rc != 0;
}

static int on_customer(const tg_customer_t *c, void *arg)
{
    compute_ctx_t *x = arg;
    x->rc = tg_revenue_customer(x->rv, x->by_plan, x->cfg, c, x->now, x->err);
    return x->rc != 0;
}

static int by_code(const void *x, const void *y)
{
    return strcmp(((const tg_revenue_currency_t *)x)->currency, ((const tg_revenue_currency_t *)y)->currency);
}

int tg_revenue_start(tg_store_t *st, const tg_config_t *cfg, int64_t from, int64_t to, tg_revenue_t *rv,
                     tg_revenue_plan_t *by_plan, tg_err_t *err)
{
    compute_ctx_t x = {rv, by_plan, cfg, 0, err, 0};
    if (by_plan != NULL && cfg->nplans > 0)
        memset(by_plan, 0, cfg->nplans * sizeof(*by_plan));
    tg_revenue_init(rv, from, to);
    int rc = tg_store_invoice_totals(st, from, to, on_totals, &x, err);
    return x.rc != 0 ? x.rc : rc;
}

void tg_revenue_finish(tg_revenue_t *rv)
{
    if (rv->ncur > 1)
        qsort(rv->cur, rv->ncur, sizeof(rv->cur[0]), by_code); /* a stable order to show */
}

int tg_revenue_compute(tg_store_t *st, const tg_config_t *cfg, int64_t from, int64_t to, int64_t now, tg_revenue_t *rv,
                       tg_revenue_plan_t *by_plan, tg_err_t *err)
{
    compute_ctx_t x = {rv, by_plan, cfg, now, err, 0};
    int rc = tg_revenue_start(st, cfg, from, to, rv, by_plan, err);
    if (rc == 0)
        rc = tg_store_customer_list(st, on_customer, &x, err);
    if (rc == 0 && x.rc == 0)
        tg_revenue_finish(rv);
    return x.rc != 0 ? x.rc : rc;
}
