/* reconcile.c - the pure half of reconcile.h: tollgate's quote of a period against a Stripe
 * invoice, difference by difference. */
#include "payments/reconcile.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payments/stripe_form.h"
#include "util/money.h"

void tg_recon_invoice_free(tg_recon_invoice_t *inv)
{
    if (inv == NULL)
        return;
    free(inv->lines);
    inv->lines = NULL;
    inv->nlines = 0;
}

const char *tg_recon_kind_name(tg_recon_kind_t k)
{
    switch (k) {
    case TG_RECON_NO_STRIPE_CUSTOMER:
        return "no_stripe_customer";
    case TG_RECON_NO_INVOICE:
        return "no_invoice";
    case TG_RECON_CURRENCY:
        return "currency";
    case TG_RECON_USAGE:
        return "usage";
    case TG_RECON_AMOUNT:
        return "amount";
    case TG_RECON_LINE:
        return "line";
    case TG_RECON_TOTAL:
        return "total";
    }
    return "unknown";
}

long tg_recon_pick_invoice(const tg_recon_invoice_t *invs, size_t n, int64_t ps, int64_t pe)
{
    long best = -1;
    int64_t best_overlap = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(invs[i].status, "void") == 0)
            continue;
        int64_t lo = invs[i].period_start > ps ? invs[i].period_start : ps;
        int64_t hi = invs[i].period_end < pe ? invs[i].period_end : pe;
        if (hi > lo && hi - lo > best_overlap) {
            best = (long)i;
            best_overlap = hi - lo;
        }
    }
    return best;
}

/* Where differences go, and how many went. */
typedef struct {
    tg_recon_diff_cb cb;
    void *arg;
    size_t n;
    int stopped;
} sink_t;

static void value_text(char *buf, int has, int64_t v)
{
    if (has)
        snprintf(buf, TG_RECON_VALUE_MAX, "%" PRId64, v);
    else
        snprintf(buf, TG_RECON_VALUE_MAX, "none");
}

static void report(sink_t *s, tg_recon_kind_t kind, const char *subject, int has_t, int64_t t, int has_s, int64_t sv)
{
    if (s->stopped)
        return;
    tg_recon_diff_t d = {.kind = kind};
    size_t n = strnlen(subject, sizeof(d.subject) - 1); /* cut to fit */
    memcpy(d.subject, subject, n);
    value_text(d.tollgate, has_t, t);
    value_text(d.stripe, has_s, sv);
    s->n++;
    if (s->cb(&d, s->arg) != 0)
        s->stopped = 1;
}

/* A line's rounded amount (a multiple of the minor unit: pricing rounds every line) in minor
 * units. digits is 0..9 (tg_quote_build refuses others). */
static int64_t to_minor(tg_money_t v, int digits)
{
    int64_t div = 1;
    for (int i = digits; i < TG_MONEY_DIGITS; i++)
        div *= 10;
    return v / div;
}

/* The Stripe lines that stand for one tollgate line (by lookup key), marked as matched. */
typedef struct {
    int found;
    uint64_t quantity;
    int64_t amount;
} stripe_sum_t;

static stripe_sum_t take_lines(const tg_recon_invoice_t *inv, const char *key, unsigned char *matched)
{
    stripe_sum_t s = {0};
    for (size_t i = 0; i < inv->nlines; i++) {
        const tg_recon_line_t *l = &inv->lines[i];
        if (matched[i] || !l->subscription_item || strcmp(l->lookup_key, key) != 0)
            continue;
        matched[i] = 1;
        s.found = 1;
        s.quantity = l->quantity > UINT64_MAX - s.quantity ? UINT64_MAX : s.quantity + l->quantity;
        s.amount += l->amount; /* |amount| < 2^53 each (JSON integers); 1000 lines at most */
    }
    return s;
}

static uint64_t usage_of(const tg_usage_qty_t *usage, size_t n, const char *metric)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        if (usage[i].metric != NULL && strcmp(usage[i].metric, metric) == 0)
            sum = usage[i].used > UINT64_MAX - sum ? UINT64_MAX : sum + usage[i].used;
    return sum;
}

int tg_recon_compare(const tg_plan_t *plan, const tg_usage_qty_t *usage, size_t nusage, int include_base_fee,
                     const tg_recon_invoice_t *inv, tg_recon_diff_cb cb, void *arg, size_t *ndiffs, tg_err_t *err)
{
    sink_t s = {cb, arg, 0, 0};
    if (ndiffs != NULL)
        *ndiffs = 0;
    tg_quote_t q;
    int rc = tg_quote_build(plan, usage, nusage, include_base_fee, &q, err);
    if (rc != 0)
        return rc;
    const int d = tg_stripe_currency_digits(plan->currency);
    unsigned char *matched = NULL;
    if (inv == NULL) {
        report(&s, TG_RECON_NO_INVOICE, "", 1, to_minor(q.total, d), 0, 0);
        goto done;
    }
    if (strcmp(inv->currency, plan->currency) != 0) {
        tg_recon_diff_t cd = {.kind = TG_RECON_CURRENCY};
        snprintf(cd.tollgate, sizeof(cd.tollgate), "%s", plan->currency);
        snprintf(cd.stripe, sizeof(cd.stripe), "%s", inv->currency);
        s.n++;
        s.stopped = cb(&cd, arg) != 0;
        goto done;
    }
    if (inv->nlines > 0 && (matched = calloc(inv->nlines, 1)) == NULL) {
        rc = tg_errf(err, TG_ENOMEM, "out of memory comparing invoice %s", inv->id);
        goto done;
    }

    char key[TG_RECON_KEY_MAX];
    /* The base fee: absent on one side is fine while the other side's amount is 0 (a trial, a
     * free plan with or without a 0 price in Stripe). */
    snprintf(key, sizeof(key), "tollgate_%s_base", plan->id);
    stripe_sum_t base = take_lines(inv, key, matched);
    int has_base = 0;
    int64_t base_amount = 0;
    for (size_t i = 0; i < q.nlines; i++)
        if (q.lines[i].kind == TG_LINE_BASE) {
            has_base = 1;
            base_amount = to_minor(q.lines[i].amount, d);
        }
    if (base_amount != base.amount)
        report(&s, TG_RECON_AMOUNT, "base fee", has_base, base_amount, base.found, base.amount);

    for (size_t i = 0; i < q.nlines; i++) {
        const tg_line_t *l = &q.lines[i];
        int64_t amount = to_minor(l->amount, d);
        if (l->kind == TG_LINE_USAGE) {
            snprintf(key, sizeof(key), "tollgate_%s_%s", plan->id, l->metric);
            stripe_sum_t st = take_lines(inv, key, matched);
            /* the meter sums every unit: the allowance is a free first tier in Stripe */
            uint64_t used = usage_of(usage, nusage, l->metric);
            if (st.found ? st.quantity != used : used != 0)
                report(&s, TG_RECON_USAGE, l->metric, 1, used > INT64_MAX ? INT64_MAX : (int64_t)used, st.found,
                       st.quantity > INT64_MAX ? INT64_MAX : (int64_t)st.quantity);
            if (st.amount != amount)
                report(&s, TG_RECON_AMOUNT, l->metric, 1, amount, st.found, st.amount);
        } else if (l->kind != TG_LINE_BASE && amount != 0) {
            /* minimum top-up, spending cap: no Stripe price stands for them */
            report(&s, TG_RECON_LINE, l->description, 1, amount, 0, 0);
        }
    }
    for (size_t i = 0; i < inv->nlines; i++) {
        const tg_recon_line_t *l = &inv->lines[i];
        if (matched[i])
            continue;
        char subject[TG_RECON_KEY_MAX + 32];
        if (l->lookup_key[0] != '\0')
            snprintf(subject, sizeof(subject), "%s%s", l->lookup_key,
                     l->subscription_item ? "" : " (not a period line)");
        else
            snprintf(subject, sizeof(subject), "%s", l->description[0] != '\0' ? l->description : l->id);
        report(&s, TG_RECON_LINE, subject, 0, 0, 1, l->amount);
    }
    int64_t total = to_minor(q.total, d);
    if (total != inv->total)
        report(&s, TG_RECON_TOTAL, "", 1, total, 1, inv->total);

done:
    free(matched);
    tg_quote_free(&q);
    if (ndiffs != NULL)
        *ndiffs = s.n;
    if (rc == 0 && s.stopped)
        rc = tg_errf(err, TG_ESTATE, "stopped by the caller");
    return rc;
}
