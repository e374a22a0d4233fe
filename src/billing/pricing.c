/* pricing.c - the pricing core (see pricing.h for the semantics): charges priced exactly in
 * nano-units with 128-bit checked products, one rounding per line, minimum/maximum on the sum of
 * rounded usage lines. Used by `tollgate quote`, the public calculator and invoice closing, so
 * all three agree to the cent. */
#include "billing/pricing.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"

/* Indexed by tg_line_kind_t: the names stored in invoice bodies, which never change. */
static const char *const line_kind_names[TG_LINE_KIND_COUNT] = {
    [TG_LINE_BASE] = "base_fee",         [TG_LINE_USAGE] = "usage",         [TG_LINE_MINIMUM] = "minimum",
    [TG_LINE_MAXIMUM] = "maximum",       [TG_LINE_PRORATION] = "proration", [TG_LINE_CREDIT] = "credit",
    [TG_LINE_LATE_USAGE] = "late_usage", [TG_LINE_ITEM] = "item",
};

const char *tg_line_kind_name(tg_line_kind_t kind)
{
    return (unsigned)kind < TG_LINE_KIND_COUNT ? line_kind_names[kind] : "";
}

int tg_line_kind_parse(const char *name, tg_line_kind_t *out)
{
    for (int k = 0; name != NULL && k < TG_LINE_KIND_COUNT; k++)
        if (strcmp(name, line_kind_names[k]) == 0) {
            *out = (tg_line_kind_t)k;
            return 0;
        }
    return TG_EINVAL;
}

static const char *metric_name(const tg_charge_t *c)
{
    return c->metric != NULL ? c->metric : "(unnamed metric)";
}

/* The rules pricing relies on. The configuration loader enforces them for every plan it builds;
 * checking again here keeps hand-built plans (tests, tools) from pricing units nobody priced,
 * reading past a tier array or dividing by zero. */
static int check_charge(const tg_charge_t *c, tg_err_t *err)
{
    const char *m = metric_name(c);
    switch (c->model) {
    case TG_MODEL_PER_UNIT:
        if (c->unit_price < 0)
            return tg_errf(err, TG_EINVAL, "%s: unit_price is negative", m);
        return 0;
    case TG_MODEL_PACKAGE:
        if (c->package_size == 0)
            return tg_errf(err, TG_EINVAL, "%s: package_size is 0", m);
        if (c->package_price < 0)
            return tg_errf(err, TG_EINVAL, "%s: package_price is negative", m);
        return 0;
    case TG_MODEL_GRADUATED:
    case TG_MODEL_VOLUME:
        if (c->ntiers == 0 || c->tiers == NULL)
            return tg_errf(err, TG_EINVAL, "%s: %s pricing without tiers", m, tg_price_model_name(c->model));
        for (size_t i = 0; i < c->ntiers; i++) {
            const tg_tier_t *t = &c->tiers[i];
            if (t->unit_price < 0 || t->flat_price < 0)
                return tg_errf(err, TG_EINVAL, "%s: tier %zu has a negative price", m, i + 1);
            if (t->up_to == 0 || (i > 0 && t->up_to <= c->tiers[i - 1].up_to))
                return tg_errf(err, TG_EINVAL, "%s: tier bounds must ascend from 1 (tier %zu up_to %" PRIu64 ")", m,
                               i + 1, t->up_to);
        }
        if (c->tiers[c->ntiers - 1].up_to != TG_UNLIMITED)
            return tg_errf(err, TG_EINVAL, "%s: the last tier must be unbounded (up_to: inf)", m);
        return 0;
    }
    return tg_errf(err, TG_EINVAL, "%s: unknown pricing model %d", m, (int)c->model);
}

/* *out = unit x n + flat, checked. */
static int tier_amount(tg_money_t unit, uint64_t n, tg_money_t flat, tg_money_t *out)
{
    tg_money_t a;
    if (tg_money_mul(unit, n, &a) != 0 || tg_money_add(a, flat, &a) != 0)
        return TG_ERANGE;
    *out = a;
    return 0;
}

static void put_part(tg_tier_part_t *parts, size_t maxparts, size_t *np, tg_tier_part_t p)
{
    if (parts != NULL && *np < maxparts)
        parts[*np] = p;
    (*np)++;
}

int tg_price_charge(const tg_charge_t *c, uint64_t quantity, tg_money_t *exact, tg_tier_part_t *parts, size_t maxparts,
                    size_t *nparts, tg_err_t *err)
{
    size_t np = 0;
    tg_money_t total = 0;
    int rc;
    *exact = 0;
    if (nparts != NULL)
        *nparts = 0;
    if ((rc = check_charge(c, err)) != 0)
        return rc;
    if (quantity == 0)
        return 0; /* no tier is entered, no package started */

    switch (c->model) {
    case TG_MODEL_PER_UNIT:
        if (tg_money_mul(c->unit_price, quantity, &total) != 0)
            goto range;
        break;

    case TG_MODEL_PACKAGE: {
        uint64_t packages = quantity / c->package_size;
        if (c->round_up && quantity % c->package_size != 0)
            packages++;
        if (packages == 0)
            break; /* rounded down to nothing: no part to explain */
        if (tg_money_mul(c->package_price, packages, &total) != 0)
            goto range;
        /* the units the billed packages cover, which can exceed the quantity (round up) and, in
         * theory, uint64: saturate that display value, the amount is already exact */
        uint64_t covered;
        if (__builtin_mul_overflow(packages, c->package_size, &covered))
            covered = UINT64_MAX;
        put_part(parts, maxparts, &np, (tg_tier_part_t){1, covered, packages, c->package_price, 0, total});
        break;
    }

    case TG_MODEL_GRADUATED: {
        uint64_t lower = 0; /* units priced by earlier tiers; bounds ascend, so each is entered once */
        for (size_t i = 0; i < c->ntiers && lower < quantity; i++) {
            const tg_tier_t *t = &c->tiers[i];
            uint64_t upper = t->up_to < quantity ? t->up_to : quantity;
            uint64_t n = upper - lower;
            tg_money_t a;
            if (tier_amount(t->unit_price, n, t->flat_price, &a) != 0 || tg_money_add(total, a, &total) != 0)
                goto range;
            put_part(parts, maxparts, &np, (tg_tier_part_t){lower + 1, upper, n, t->unit_price, t->flat_price, a});
            lower = upper;
        }
        break;
    }

    case TG_MODEL_VOLUME: {
        size_t i = 0;
        while (quantity > c->tiers[i].up_to) /* ends: the last tier is unbounded */
            i++;
        const tg_tier_t *t = &c->tiers[i];
        if (tier_amount(t->unit_price, quantity, t->flat_price, &total) != 0)
            goto range;
        put_part(parts, maxparts, &np, (tg_tier_part_t){1, quantity, quantity, t->unit_price, t->flat_price, total});
        break;
    }
    }
    *exact = total;
    if (nparts != NULL)
        *nparts = np;
    return 0;

range:
    return tg_errf(err, TG_ERANGE, "%s: %" PRIu64 " units at these prices overflow the money range", metric_name(c),
                   quantity);
}

/* Rounds to the minor unit, or TG_ERANGE in the one case tg_money_round cannot: rounding up past
 * INT64_MAX (it then returns the amount unrounded). */
static int round_line(tg_money_t exact, int digits, tg_money_t *out)
{
    int64_t step = 1;
    for (int i = digits; i < TG_MONEY_DIGITS; i++)
        step *= 10;
    tg_money_t r = tg_money_round(exact, digits);
    if (r % step != 0)
        return TG_ERANGE;
    *out = r;
    return 0;
}

/* Usage of `metric`: the sum of its entries, or TG_ERANGE if that sum leaves uint64. */
static int used_of(const tg_usage_qty_t *usage, size_t n, const char *metric, uint64_t *out)
{
    uint64_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (usage[i].metric != NULL && strcmp(usage[i].metric, metric) == 0 &&
            __builtin_add_overflow(u, usage[i].used, &u))
            return TG_ERANGE;
    *out = u;
    return 0;
}

/* The allowance of `metric` for pricing. Read from plan->included directly rather than through
 * tg_plan_included, whose TG_UNLIMITED for "no entry" is the gateway's "no quota": for pricing,
 * no entry means nothing is included, while an explicit TG_UNLIMITED entry includes everything. */
static uint64_t allowance_of(const tg_plan_t *plan, const char *metric)
{
    for (size_t i = 0; i < plan->nincluded; i++)
        if (plan->included[i].metric != NULL && strcmp(plan->included[i].metric, metric) == 0)
            return plan->included[i].amount;
    return 0;
}

static int check_plan(const tg_plan_t *plan, tg_err_t *err)
{
    const char *id = plan->id != NULL ? plan->id : "(unnamed)";
    if (plan->currency_digits < 0 || plan->currency_digits > TG_MONEY_DIGITS)
        return tg_errf(err, TG_EINVAL, "plan %s: currency_digits %d is outside 0..%d", id, plan->currency_digits,
                       TG_MONEY_DIGITS);
    if (plan->price < 0 || plan->minimum < 0 || plan->maximum < 0)
        return tg_errf(err, TG_EINVAL, "plan %s: price, minimum and maximum must not be negative", id);
    if (plan->maximum != 0 && plan->minimum > plan->maximum)
        return tg_errf(err, TG_EINVAL, "plan %s: minimum is larger than maximum", id);
    if (plan->ncharges > 0 && plan->charges == NULL)
        return tg_errf(err, TG_EINVAL, "plan %s: %zu charges but no charge array", id, plan->ncharges);
    for (size_t i = 0; i < plan->ncharges; i++) {
        const tg_charge_t *c = &plan->charges[i];
        if (c->metric == NULL || c->metric[0] == '\0' || strlen(c->metric) >= sizeof(((tg_line_t *)0)->metric))
            return tg_errf(err, TG_EINVAL, "plan %s: charge %zu has no metric or one too long", id, i + 1);
        if ((c->model == TG_MODEL_GRADUATED || c->model == TG_MODEL_VOLUME) && c->ntiers > TG_MAX_TIER_PARTS)
            return tg_errf(err, TG_EINVAL, "plan %s: %s has %zu tiers, more than %d", id, c->metric, c->ntiers,
                           TG_MAX_TIER_PARTS);
    }
    return 0;
}

static int fail(tg_quote_t *out, int rc)
{
    tg_quote_free(out);
    return rc;
}

int tg_quote_build(const tg_plan_t *plan, const tg_usage_qty_t *usage, size_t nusage, int include_base_fee,
                   tg_quote_t *out, tg_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (plan == NULL)
        return tg_errf(err, TG_EINVAL, "no plan to price");
    if (usage == NULL)
        nusage = 0;
    int rc = check_plan(plan, err);
    if (rc != 0)
        return rc;
    const char *id = plan->id != NULL ? plan->id : "(unnamed)";
    const char *name = plan->name != NULL ? plan->name : id;
    int d = plan->currency_digits;

    /* base + one line per charge + minimum + maximum */
    out->lines = calloc(plan->ncharges + 3, sizeof(tg_line_t));
    if (out->lines == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory pricing plan %s", id);
    out->plan = plan;
    tg_line_t *l;

    if (include_base_fee) {
        l = &out->lines[out->nlines++];
        l->kind = TG_LINE_BASE;
        snprintf(l->description, sizeof(l->description), "%s plan, 1 %s", name,
                 plan->interval == TG_INTERVAL_YEAR ? "year" : "month");
        l->quantity = 1;
        l->unit_price = l->exact = plan->price;
        tg_utf8_scrub(l->description); /* snprintf may have cut a long plan name inside a character */
        if (round_line(plan->price, d, &l->amount) != 0)
            return fail(out, tg_errf(err, TG_ERANGE, "plan %s: the base fee cannot be rounded in range", id));
    }

    tg_money_t usage_sum = 0;
    for (size_t i = 0; i < plan->ncharges; i++) {
        const tg_charge_t *c = &plan->charges[i];
        l = &out->lines[out->nlines++];
        l->kind = TG_LINE_USAGE;
        snprintf(l->metric, sizeof(l->metric), "%s", c->metric);
        if (used_of(usage, nusage, c->metric, &l->used) != 0)
            return fail(out,
                        tg_errf(err, TG_ERANGE, "plan %s: the usage of %s overflows a 64-bit count", id, c->metric));
        l->included = allowance_of(plan, c->metric);
        l->quantity = l->used > l->included ? l->used - l->included : 0;
        l->unit_price = c->model == TG_MODEL_PER_UNIT  ? c->unit_price
                        : c->model == TG_MODEL_PACKAGE ? c->package_price
                                                       : 0;
        if ((rc = tg_price_charge(c, l->quantity, &l->exact, l->parts, TG_MAX_TIER_PARTS, &l->nparts, err)) != 0)
            return fail(out, rc);
        if (round_line(l->exact, d, &l->amount) != 0 || tg_money_add(usage_sum, l->amount, &usage_sum) != 0)
            return fail(out, tg_errf(err, TG_ERANGE, "plan %s: the usage charges overflow the money range", id));
        if (l->included == TG_UNLIMITED)
            snprintf(l->description, sizeof(l->description), "%s, unlimited included (%s)", c->metric,
                     tg_price_model_name(c->model));
        else if (l->included > 0)
            snprintf(l->description, sizeof(l->description), "%s above %" PRIu64 " included (%s)", c->metric,
                     l->included, tg_price_model_name(c->model));
        else
            snprintf(l->description, sizeof(l->description), "%s (%s)", c->metric, tg_price_model_name(c->model));
    }

    /* The commitment and the cap bound the rounded usage lines, on the minor-unit grid so the
     * adjusted usage lands exactly on them. Both are >= 0 and minimum <= maximum (check_plan),
     * so at most one of the two lines appears. */
    char buf[TG_MONEY_FMT_MAX];
    tg_money_t minimum, maximum;
    if (round_line(plan->minimum, d, &minimum) != 0 || round_line(plan->maximum, d, &maximum) != 0)
        return fail(out, tg_errf(err, TG_ERANGE, "plan %s: minimum or maximum cannot be rounded in range", id));
    if (minimum > 0 && usage_sum < minimum) {
        l = &out->lines[out->nlines++];
        l->kind = TG_LINE_MINIMUM;
        tg_money_format(minimum, d, buf, sizeof(buf));
        snprintf(l->description, sizeof(l->description), "Minimum commitment top-up (usage to %s)", buf);
        l->exact = l->amount = minimum - usage_sum; /* usage_sum >= 0: no overflow */
        usage_sum = minimum;
    } else if (maximum > 0 && usage_sum > maximum) {
        l = &out->lines[out->nlines++];
        l->kind = TG_LINE_MAXIMUM;
        tg_money_format(maximum, d, buf, sizeof(buf));
        snprintf(l->description, sizeof(l->description), "Usage charges capped at %s", buf);
        l->exact = l->amount = maximum - usage_sum; /* both >= 0: no overflow */
        usage_sum = maximum;
    }
    out->usage_total = usage_sum;

    tg_money_t total = 0;
    for (size_t i = 0; i < out->nlines; i++)
        if (tg_money_add(total, out->lines[i].amount, &total) != 0)
            return fail(out, tg_errf(err, TG_ERANGE, "plan %s: the total overflows the money range", id));
    out->total = total;
    return 0;
}

int tg_quote_estimate(const tg_plan_t *plan, const tg_usage_qty_t *usage, size_t nusage, int include_base_fee,
                      tg_quote_t *out, tg_err_t *err)
{
    tg_usage_qty_t total[TG_QUOTE_MAX_METRICS];
    size_t n = 0;
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; usage != NULL && i < nusage; i++) {
        size_t same = 0;
        while (same < n && strcmp(total[same].metric, usage[i].metric) != 0)
            same++;
        if (same == n) {
            if (n == TG_QUOTE_MAX_METRICS)
                return tg_errf(err, TG_EINVAL, "more than %d metrics in one quote", TG_QUOTE_MAX_METRICS);
            total[n].metric = usage[i].metric;
            total[n++].used = 0;
        }
        if (usage[i].used > UINT64_MAX - total[same].used)
            return tg_errf(err, TG_ERANGE, "plan %s: the usage of %s overflows a 64-bit count",
                           plan != NULL && plan->id != NULL ? plan->id : "(unnamed)", usage[i].metric);
        total[same].used += usage[i].used;
    }
    tg_quote_block_t blocked[TG_QUOTE_MAX_METRICS];
    size_t nblocked = 0;
    for (size_t i = 0; plan != NULL && i < n; i++) {
        uint64_t allowance;
        if (tg_plan_blocks_before(plan, total[i].metric, total[i].used, &allowance)) {
            size_t len = strnlen(total[i].metric, TG_METRIC_MAX - 1);
            memcpy(blocked[nblocked].metric, total[i].metric, len);
            blocked[nblocked].metric[len] = '\0';
            blocked[nblocked++].after = allowance;
            total[i].used = allowance;
        }
    }
    int rc = tg_quote_build(plan, total, n, include_base_fee, out, err);
    if (rc != 0)
        return rc;
    out->estimate = 1;
    out->nblocked = nblocked;
    memcpy(out->blocked, blocked, nblocked * sizeof(blocked[0]));
    return 0;
}

/* The sum of the rounded usage lines of `metric` in a quote of plan for `used` units of it: what
 * an invoice of that period charged for the metric (several charges may price one metric). */
static int metric_charges(const tg_plan_t *plan, const char *metric, uint64_t used, tg_money_t *out, tg_err_t *err)
{
    tg_usage_qty_t u = {metric, used};
    tg_quote_t q;
    int rc = tg_quote_build(plan, &u, 1, 0, &q, err);
    if (rc != 0)
        return rc;
    tg_money_t sum = 0;
    for (size_t i = 0; i < q.nlines && rc == 0; i++)
        if (q.lines[i].kind == TG_LINE_USAGE && strcmp(q.lines[i].metric, metric) == 0 &&
            tg_money_add(sum, q.lines[i].amount, &sum) != 0)
            rc = tg_errf(err, TG_ERANGE, "the charges of %s overflow the money range", metric);
    tg_quote_free(&q);
    *out = rc == 0 ? sum : 0;
    return rc;
}

int tg_price_late_usage(const tg_plan_t *plan, const char *metric, uint64_t invoiced, uint64_t late, tg_money_t *amount,
                        tg_err_t *err)
{
    *amount = 0;
    if (plan == NULL || metric == NULL)
        return tg_errf(err, TG_EINVAL, "no plan or metric to price late usage with");
    uint64_t all;
    if (__builtin_add_overflow(invoiced, late, &all))
        return tg_errf(err, TG_ERANGE, "%s: %" PRIu64 " late units after %" PRIu64 " overflow a 64-bit count", metric,
                       late, invoiced);
    tg_money_t before, after;
    int rc = metric_charges(plan, metric, invoiced, &before, err);
    if (rc == 0)
        rc = metric_charges(plan, metric, all, &after, err);
    if (rc != 0)
        return rc;
    /* both are sums of lines of one quote shape, each within the money range and of one sign: the
     * difference of two non-negative amounts cannot overflow */
    *amount = after - before;
    return 0;
}

/* The usage total of plan's quote (usage lines and the minimum/maximum adjustment) for usage. */
static int usage_total_of(const tg_plan_t *plan, const tg_usage_qty_t *usage, size_t n, tg_money_t *out, tg_err_t *err)
{
    tg_quote_t q;
    int rc = tg_quote_build(plan, usage, n, 0, &q, err);
    *out = rc == 0 ? q.usage_total : 0;
    tg_quote_free(&q);
    return rc;
}

int tg_price_late_in_period(const tg_plan_t *plan, const tg_usage_qty_t *invoiced, size_t ninvoiced, int quoted,
                            const char *metric, uint64_t late, tg_money_t *amount, tg_err_t *err)
{
    *amount = 0;
    if (plan == NULL || metric == NULL)
        return tg_errf(err, TG_EINVAL, "no plan or metric to price late usage with");
    if (invoiced == NULL)
        ninvoiced = 0;
    if (ninvoiced > SIZE_MAX / sizeof(*invoiced) - 1)
        return tg_errf(err, TG_ERANGE, "%s: too many metrics to price late usage with", metric);
    /* the period as billed, then with the late units: one more entry of the metric (quote
     * building adds the entries of one metric up, refusing a sum past 64 bits) */
    tg_usage_qty_t *with = malloc((ninvoiced + 1) * sizeof(*with));
    if (with == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory pricing late usage of %s", metric);
    int billed_quote = quoted != 0;
    for (size_t i = 0; i < ninvoiced; i++) {
        with[i] = invoiced[i];
        billed_quote |= invoiced[i].used > 0;
    }
    with[ninvoiced] = (tg_usage_qty_t){metric, late};
    tg_money_t before = 0, after = 0;
    /* nothing invoiced and not quoted: the period's invoice had no quote of this plan, hence no
     * minimum top-up to build on */
    int rc = billed_quote ? usage_total_of(plan, invoiced, ninvoiced, &before, err) : 0;
    if (rc == 0)
        rc = usage_total_of(plan, with, ninvoiced + 1, &after, err);
    free(with);
    if (rc != 0)
        return rc;
    /* both are usage totals within the money range and >= 0: their difference cannot overflow */
    *amount = after - before;
    return 0;
}

void tg_quote_free(tg_quote_t *q)
{
    if (q == NULL)
        return;
    free(q->lines);
    q->lines = NULL;
    q->nlines = 0;
}

static json_t *money_json(tg_money_t v, int digits)
{
    char buf[TG_MONEY_FMT_MAX];
    if (tg_money_format(v, digits, buf, sizeof(buf)) < 0) /* cannot happen: the buffer fits any value */
        return json_null();
    return json_string(buf);
}

/* json_*_new setters steal their value even on failure, so a failed allocation anywhere below
 * only leaves a member out; the final json_dumps then reports it as NULL (out of memory). */
static json_t *line_json(const tg_line_t *l, int d)
{
    json_t *j = json_object();
    if (j == NULL)
        return NULL;
    int ok = json_object_set_new(j, "kind", json_string(tg_line_kind_name(l->kind))) == 0 &&
             json_object_set_new(j, "description", json_string(l->description)) == 0 &&
             json_object_set_new(j, "metric", l->metric[0] ? json_string(l->metric) : json_null()) == 0 &&
             json_object_set_new(j, "quantity", json_integer((json_int_t)l->quantity)) == 0 &&
             json_object_set_new(j, "amount", money_json(l->amount, d)) == 0;
    if (ok && l->kind == TG_LINE_USAGE) {
        ok = json_object_set_new(j, "used", json_integer((json_int_t)l->used)) == 0 &&
             json_object_set_new(j, "included",
                                 l->included == TG_UNLIMITED ? json_null() : json_integer((json_int_t)l->included)) ==
                 0 &&
             json_object_set_new(j, "exact", money_json(l->exact, d)) == 0;
        if (ok && l->nparts > 0) {
            json_t *tiers = json_array();
            ok = json_object_set_new(j, "tiers", tiers) == 0;
            for (size_t k = 0; ok && k < l->nparts; k++) {
                const tg_tier_part_t *p = &l->parts[k];
                ok = json_array_append_new(
                         tiers, json_pack("{s:I,s:I,s:I,s:o,s:o,s:o}", "from", (json_int_t)p->from, "to",
                                          (json_int_t)p->to, "quantity", (json_int_t)p->quantity, "unit_price",
                                          money_json(p->unit_price, d), "flat_price", money_json(p->flat_price, d),
                                          "amount", money_json(p->amount, d))) == 0;
            }
        }
    }
    if (!ok) {
        json_decref(j);
        return NULL;
    }
    return j;
}

char *tg_quote_to_json(const tg_quote_t *q)
{
    if (q == NULL || q->plan == NULL)
        return NULL;
    int d = q->plan->currency_digits;
    json_t *root = json_object(), *lines = json_array();
    int ok = root != NULL && lines != NULL;
    if (ok)
        ok = json_object_set_new(root, "plan", json_string(q->plan->id != NULL ? q->plan->id : "")) == 0 &&
             json_object_set_new(root, "currency", json_string(q->plan->currency)) == 0 &&
             json_object_set(root, "lines", lines) == 0;
    for (size_t i = 0; ok && i < q->nlines; i++)
        ok = json_array_append_new(lines, line_json(&q->lines[i], d)) == 0;
    if (ok)
        ok = json_object_set_new(root, "total", money_json(q->total, d)) == 0;
    if (ok && q->estimate) {
        json_t *blocked = json_array();
        ok = json_object_set_new(root, "blocked", blocked) == 0;
        for (size_t i = 0; ok && i < q->nblocked; i++)
            ok = json_array_append_new(blocked, json_pack("{s:s,s:I}", "metric", q->blocked[i].metric, "after",
                                                          (json_int_t)q->blocked[i].after)) == 0;
    }
    char *s = ok ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(lines);
    json_decref(root);
    return s;
}

int tg_prorate(tg_money_t amount, int64_t remaining_s, int64_t period_s, tg_money_t *out)
{
    if (period_s <= 0 || remaining_s < 0 || remaining_s > period_s)
        return TG_EINVAL;
    /* |amount x remaining / period| <= |amount|: the scale cannot leave the range */
    return tg_money_scale(amount, remaining_s, period_s, out);
}
