/* pricing.c - see pricing.h. */
#include "billing/pricing.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int add_part(tg_tier_part_t *parts, size_t maxparts, size_t *nparts, tg_tier_part_t p)
{
    if (parts != NULL && *nparts < maxparts)
        parts[*nparts] = p;
    (*nparts)++;
    return 0;
}

int tg_price_charge(const tg_charge_t *c, uint64_t quantity, tg_money_t *exact, tg_tier_part_t *parts,
                    size_t maxparts, size_t *nparts, tg_err_t *err)
{
    size_t np = 0;
    tg_money_t total = 0, a;
    *exact = 0;
    if (nparts != NULL)
        *nparts = 0;
    if (quantity == 0)
        return 0; /* no tier is entered, no package is started */
    switch (c->model) {
    case TG_MODEL_PER_UNIT:
        if (tg_money_mul(c->unit_price, quantity, &total) != 0)
            return tg_errf(err, TG_ERANGE, "%s: %" PRIu64 " units overflow the money range", c->metric, quantity);
        break;
    case TG_MODEL_PACKAGE: {
        uint64_t packages = quantity / c->package_size;
        if (c->round_up && quantity % c->package_size != 0)
            packages++;
        if (tg_money_mul(c->package_price, packages, &total) != 0)
            return tg_errf(err, TG_ERANGE, "%s: %" PRIu64 " packages overflow the money range", c->metric, packages);
        add_part(parts, maxparts, &np,
                 (tg_tier_part_t){1, packages * c->package_size, packages, c->package_price, 0, total});
        break;
    }
    case TG_MODEL_GRADUATED: {
        uint64_t lower = 0; /* units already priced by earlier tiers */
        for (size_t i = 0; i < c->ntiers && lower < quantity; i++) {
            const tg_tier_t *t = &c->tiers[i];
            uint64_t upper = t->up_to < quantity ? t->up_to : quantity;
            if (upper <= lower)
                continue;
            uint64_t n = upper - lower;
            if (tg_money_mul(t->unit_price, n, &a) != 0 || tg_money_add(a, t->flat_price, &a) != 0 ||
                tg_money_add(total, a, &total) != 0)
                return tg_errf(err, TG_ERANGE, "%s: %" PRIu64 " units overflow the money range", c->metric, quantity);
            add_part(parts, maxparts, &np, (tg_tier_part_t){lower + 1, upper, n, t->unit_price, t->flat_price, a});
            lower = upper;
        }
        break;
    }
    case TG_MODEL_VOLUME: {
        const tg_tier_t *t = &c->tiers[c->ntiers - 1];
        for (size_t i = 0; i < c->ntiers; i++)
            if (quantity <= c->tiers[i].up_to) {
                t = &c->tiers[i];
                break;
            }
        if (tg_money_mul(t->unit_price, quantity, &a) != 0 || tg_money_add(a, t->flat_price, &total) != 0)
            return tg_errf(err, TG_ERANGE, "%s: %" PRIu64 " units overflow the money range", c->metric, quantity);
        add_part(parts, maxparts, &np, (tg_tier_part_t){1, quantity, quantity, t->unit_price, t->flat_price, total});
        break;
    }
    }
    *exact = total;
    if (nparts != NULL)
        *nparts = np < maxparts ? np : maxparts;
    return 0;
}

static uint64_t used_of(const tg_usage_qty_t *usage, size_t n, const char *metric)
{
    uint64_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (usage[i].metric != NULL && strcmp(usage[i].metric, metric) == 0)
            u += usage[i].used;
    return u;
}

static const char *model_name(tg_price_model_t m)
{
    switch (m) {
    case TG_MODEL_PER_UNIT: return "per unit";
    case TG_MODEL_GRADUATED: return "graduated";
    case TG_MODEL_VOLUME: return "volume";
    default: return "package";
    }
}

int tg_quote_build(const tg_plan_t *plan, const tg_usage_qty_t *usage, size_t nusage, int include_base_fee,
                   tg_quote_t *out, tg_err_t *err)
{
    memset(out, 0, sizeof(*out));
    out->plan = plan;
    out->lines = calloc(plan->ncharges + 3, sizeof(tg_line_t));
    if (out->lines == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory pricing plan %s", plan->id);
    int d = plan->currency_digits, rc;
    tg_line_t *l;

    if (include_base_fee) {
        l = &out->lines[out->nlines++];
        l->kind = TG_LINE_BASE;
        snprintf(l->description, sizeof(l->description), "%s plan, 1 %s", plan->name,
                 plan->interval == TG_INTERVAL_YEAR ? "year" : "month");
        l->quantity = 1;
        l->unit_price = l->exact = plan->price;
        l->amount = tg_money_round(plan->price, d);
    }
    tg_money_t usage_sum = 0;
    for (size_t i = 0; i < plan->ncharges; i++) {
        const tg_charge_t *c = &plan->charges[i];
        l = &out->lines[out->nlines++];
        l->kind = TG_LINE_USAGE;
        snprintf(l->metric, sizeof(l->metric), "%s", c->metric);
        l->used = used_of(usage, nusage, c->metric);
        uint64_t inc = tg_plan_included(plan, c->metric);
        l->included = inc == TG_UNLIMITED ? 0 : inc; /* no allowance entry: every unit is billable */
        l->quantity = l->used > l->included ? l->used - l->included : 0;
        l->unit_price = c->model == TG_MODEL_PER_UNIT ? c->unit_price
                        : c->model == TG_MODEL_PACKAGE ? c->package_price
                                                       : 0;
        if ((rc = tg_price_charge(c, l->quantity, &l->exact, l->parts, TG_MAX_TIER_PARTS, &l->nparts, err)) != 0) {
            tg_quote_free(out);
            return rc;
        }
        l->amount = tg_money_round(l->exact, d);
        if (l->included > 0)
            snprintf(l->description, sizeof(l->description), "%s above %" PRIu64 " included (%s)", c->metric,
                     l->included, model_name(c->model));
        else
            snprintf(l->description, sizeof(l->description), "%s (%s)", c->metric, model_name(c->model));
        if (tg_money_add(usage_sum, l->amount, &usage_sum) != 0) {
            tg_quote_free(out);
            return tg_errf(err, TG_ERANGE, "usage charges of plan %s overflow the money range", plan->id);
        }
    }
    if (plan->minimum != 0 && usage_sum < plan->minimum) {
        l = &out->lines[out->nlines++];
        l->kind = TG_LINE_MINIMUM;
        snprintf(l->description, sizeof(l->description), "Minimum usage commitment top-up");
        l->exact = plan->minimum - usage_sum;
        l->amount = tg_money_round(l->exact, d);
        usage_sum += l->amount;
    }
    if (plan->maximum != 0 && usage_sum > plan->maximum) {
        l = &out->lines[out->nlines++];
        l->kind = TG_LINE_MAXIMUM;
        snprintf(l->description, sizeof(l->description), "Usage charges capped at the plan maximum");
        l->exact = plan->maximum - usage_sum;
        l->amount = tg_money_round(l->exact, d);
        usage_sum += l->amount;
    }
    out->usage_total = usage_sum;
    tg_money_t total = 0;
    for (size_t i = 0; i < out->nlines; i++)
        if (tg_money_add(total, out->lines[i].amount, &total) != 0) {
            tg_quote_free(out);
            return tg_errf(err, TG_ERANGE, "the total of plan %s overflows the money range", plan->id);
        }
    out->total = total;
    return 0;
}

void tg_quote_free(tg_quote_t *q)
{
    free(q->lines);
    q->lines = NULL;
    q->nlines = 0;
}

static json_t *money_json(tg_money_t v, int digits)
{
    char buf[TG_MONEY_FMT_MAX];
    tg_money_format(v, digits, buf, sizeof(buf));
    return json_string(buf);
}

char *tg_quote_to_json(const tg_quote_t *q)
{
    int d = q->plan->currency_digits;
    json_t *lines = json_array();
    for (size_t i = 0; i < q->nlines; i++) {
        const tg_line_t *l = &q->lines[i];
        json_t *j = json_pack("{s:s,s:o,s:I,s:o}", "description", l->description, "metric",
                              l->metric[0] ? json_string(l->metric) : json_null(), "quantity", (json_int_t)l->quantity,
                              "amount", money_json(l->amount, d));
        if (l->kind == TG_LINE_USAGE) {
            json_object_set_new(j, "used", json_integer((json_int_t)l->used));
            json_object_set_new(j, "included", json_integer((json_int_t)l->included));
            json_object_set_new(j, "exact", money_json(l->exact, d));
            if (l->nparts > 0) {
                json_t *tiers = json_array();
                for (size_t k = 0; k < l->nparts; k++) {
                    const tg_tier_part_t *p = &l->parts[k];
                    json_array_append_new(tiers, json_pack("{s:I,s:I,s:I,s:o,s:o,s:o}", "from", (json_int_t)p->from,
                                                           "to", (json_int_t)p->to, "quantity",
                                                           (json_int_t)p->quantity, "unit_price",
                                                           money_json(p->unit_price, d), "flat_price",
                                                           money_json(p->flat_price, d), "amount",
                                                           money_json(p->amount, d)));
                }
                json_object_set_new(j, "tiers", tiers);
            }
        }
        json_array_append_new(lines, j);
    }
    json_t *root = json_pack("{s:s,s:s,s:o,s:o}", "plan", q->plan->id, "currency", q->plan->currency, "lines", lines,
                             "total", money_json(q->total, d));
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    return s;
}

int tg_prorate(tg_money_t amount, int64_t remaining_s, int64_t period_s, tg_money_t *out)
{
    if (period_s <= 0 || remaining_s < 0 || remaining_s > period_s)
        return TG_EINVAL;
    return tg_money_scale(amount, remaining_s, period_s, out);
}
