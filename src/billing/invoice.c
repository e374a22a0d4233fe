/* invoice.c - see invoice.h. */
#include "billing/invoice.h"

#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "billing/line_text.h"
#include "billing/pricing.h"
#include "util/clock.h"
#include "util/money.h"
#include "util/money_text.h"
#include "util/period.h"
#include "store/store.h"

static json_t *money_json(tg_money_t v, int digits)
{
    char buf[TG_MONEY_FMT_MAX];
    tg_money_format(v, digits, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *time_json(int64_t t)
{
    if (t == 0)
        return json_null();
    char buf[32];
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

static json_t *line_json(const tg_line_t *l, const char *plan_id, int d)
{
    json_t *j =
        json_pack("{s:s,s:s,s:s,s:o,s:I,s:o}", "kind", tg_line_kind_name(l->kind), "description", l->description,
                  "plan", plan_id, "metric", l->metric[0] ? json_string(l->metric) : json_null(), "quantity",
                  (json_int_t)l->quantity, "amount", money_json(l->amount, d));
    if (l->kind == TG_LINE_USAGE) {
        json_object_set_new(j, "used", json_integer((json_int_t)l->used));
        json_object_set_new(j, "included", json_integer((json_int_t)l->included));
        if (l->unit_price != 0)
            json_object_set_new(j, "unit_price", money_json(l->unit_price, d));
        if (l->nparts > 0) {
            json_t *tiers = json_array();
            for (size_t k = 0; k < l->nparts; k++)
                json_array_append_new(tiers, json_pack("{s:I,s:I,s:I,s:o,s:o,s:o}", "from", (json_int_t)l->parts[k].from,
                                                       "to", (json_int_t)l->parts[k].to, "quantity",
                                                       (json_int_t)l->parts[k].quantity, "unit_price",
                                                       money_json(l->parts[k].unit_price, d), "flat_price",
                                                       money_json(l->parts[k].flat_price, d), "amount",
                                                       money_json(l->parts[k].amount, d)));
            json_object_set_new(j, "tiers", tiers);
        }
    }
    return j;
}

/* The plan usage metered under plan_id is priced with: that plan, or the customer's current
 * one (plan) when the configuration no longer has it. NULL (err set) when its currency is not the
 * invoice's. */
static const tg_plan_t *usage_plan(const tg_config_t *cfg, const tg_plan_t *plan, const tg_customer_t *c,
                                   const char *plan_id, tg_err_t *err)
{
    const tg_plan_t *up = tg_config_find_plan(cfg, plan_id);
    if (up == NULL)
        up = plan; /* a plan since removed from the config: price under the current one */
    if (up->currency_digits != plan->currency_digits || strcmp(up->currency, plan->currency) != 0) {
        tg_errf(err, TG_ECONFIG, "usage of %s under plan %s is in %s, the invoice in %s", c->id, up->id, up->currency,
                plan->currency);
        return NULL;
    }
    return up;
}

/* Appends to lines the line of late usage row u (a period before the invoice's) of `amount`,
 * under plan up, and adds amount to *total. The description starts with the metric id, as usage
 * lines do, so that pages show the metric's display name in its place (tg_line_text, the
 * portal's lineText). Returns 0, or TG_ERANGE, TG_ENOMEM with err set. */
static int late_line(json_t *lines, const tg_customer_t *c, const tg_plan_t *up, const tg_unbilled_t *u,
                     tg_money_t amount, int d, tg_money_t *total, tg_err_t *err)
{
    /* amount is on the minor-unit grid already: a difference of rounded usage totals */
    if (tg_money_add(*total, amount, total) != 0)
        return tg_errf(err, TG_ERANGE, "the invoice of %s overflows the money range", c->id);
    int64_t start, end;
    tg_period_bounds(c->anchor_at, up->interval, u->period_start, &start, &end);
    if (start != u->period_start) /* metered under other boundaries (the interval changed since) */
        tg_period_bounds(u->period_start, up->interval, u->period_start, &start, &end);
    char first[16], last[16], desc[TG_METRIC_MAX + 96];
    time_t t0 = (time_t)u->period_start, t1 = (time_t)(end - 1);
    struct tm tm;
    strftime(first, sizeof(first), "%Y-%m-%d", gmtime_r(&t0, &tm));
    strftime(last, sizeof(last), "%Y-%m-%d", gmtime_r(&t1, &tm));
    snprintf(desc, sizeof(desc), "%s used %s to %s, reported after that period's invoice", u->metric, first, last);
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:I,s:o,s:I,s:{s:o,s:o}}", "kind", tg_line_kind_name(TG_LINE_LATE_USAGE),
                          "description", desc, "plan", up->id, "metric", u->metric, "quantity", (json_int_t)u->units,
                          "amount", money_json(amount, d), "invoiced", (json_int_t)u->invoiced, "late_period", "start",
                          time_json(u->period_start), "end", time_json(end));
    if (j == NULL || json_array_append_new(lines, j) != 0)
        return tg_errf(err, TG_ENOMEM, "out of memory rendering an invoice");
    return 0;
}

/* Appends to lines the lines of plan up's quote for usage (nu entries; none: every metric at 0)
 * and adds their amounts to *total. Returns 0 or an error with err set. */
static int quote_lines(const tg_plan_t *up, const tg_customer_t *c, const tg_usage_qty_t *usage, size_t nu, int d,
                       json_t *lines, tg_money_t *total, tg_err_t *err)
{
    tg_quote_t q;
    int rc = tg_quote_build(up, usage, nu, 0, &q, err);
    if (rc != 0)
        return rc;
    for (size_t l = 0; l < q.nlines; l++)
        json_array_append_new(lines, line_json(&q.lines[l], up->id, d));
    if (tg_money_add(*total, q.total, total) != 0)
        rc = tg_errf(err, TG_ERANGE, "the invoice of %s overflows the money range", c->id);
    tg_quote_free(&q);
    return rc;
}

/* Appends to lines the usage lines of the period starting at ps (the rows of that period),
 * priced per plan it was metered under, each plan's as its quote (tg_quote_build: one line per
 * charge, then a minimum or maximum line), and adds their amounts to *total. Rows of earlier
 * periods are left to late_line. The closer's drafts and their refresh at finalization
 * (tg_invoice_refresh_usage) price usage here alike.
 *
 * A minimum commitment is not escaped by not calling: with bill_minimum set (the period is
 * billed under `plan`, the invoice's plan: see tg_invoice_build), a plan with a minimum that
 * priced none of the rows still gets its quote, every metric at 0, which is its charges' lines at
 * 0 and the top-up to the minimum (kind "minimum"). A quote of plan from rows already has the
 * minimum, so it is never billed twice; a plan without a minimum gets no lines of 0.00. Returns 0
 * or an error with err set. */
static int usage_lines(const tg_config_t *cfg, const tg_plan_t *plan, const tg_customer_t *c, const tg_unbilled_t *rows,
                       size_t n, int64_t ps, int bill_minimum, int d, json_t *lines, tg_money_t *total, tg_err_t *err)
{
    int rc = 0, plan_quoted = 0;
    /* rows come in (period, plan, metric) order (store.h), so this period's rows of one plan
     * are adjacent */
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (rows[i].period_start < ps)
            continue; /* late usage: late_line */
        if (i > 0 && rows[i - 1].period_start == rows[i].period_start &&
            strcmp(rows[i].plan_id, rows[i - 1].plan_id) == 0)
            continue; /* handle each plan once */
        const tg_plan_t *up = usage_plan(cfg, plan, c, rows[i].plan_id, err);
        if (up == NULL) {
            rc = TG_ECONFIG;
            break;
        }
        tg_usage_qty_t usage[64];
        size_t nu = 0;
        for (size_t k = i; k < n && rows[k].period_start == rows[i].period_start &&
                           strcmp(rows[k].plan_id, rows[i].plan_id) == 0 && nu < 64;
             k++)
            usage[nu++] = (tg_usage_qty_t){rows[k].metric, rows[k].units};
        plan_quoted |= up == plan; /* plan's own rows, or those of a plan since removed */
        rc = quote_lines(up, c, usage, nu, d, lines, total, err);
    }
    if (rc == 0 && bill_minimum && !plan_quoted && plan->minimum > 0)
        rc = quote_lines(plan, c, NULL, 0, d, lines, total, err);
    return rc;
}

/* Late usage: one dated line per earlier (period, plan, metric) in rows, apart from this
 * period's (ps) so that it neither takes this period's allowance nor moves this period's tiers,
 * appended to lines and added to *total. Each is priced as its period's invoice would have
 * priced it on top of what that period billed under that plan, its minimum and cap included
 * (tg_price_late_in_period): the store hands every metric of such a (period, plan) with its
 * invoiced units, those without late units too (units 0, no line), and, when none was invoiced,
 * whether that period's invoice billed the plan's minimum all the same (quoted: a period without
 * usage, usage_lines); the lines of one (period, plan) are priced one after the other, each on
 * top of the ones before. */
static int late_lines(const tg_config_t *cfg, const tg_plan_t *plan, const tg_customer_t *c, const tg_unbilled_t *rows,
                      size_t n, int64_t ps, int d, json_t *lines, tg_money_t *total, tg_err_t *err)
{
    int rc = 0;
    size_t end;
    for (size_t i = 0; i < n && rc == 0; i = end) {
        /* rows come in (period, plan, metric) order (store.h): [i, end) is one (period, plan) */
        for (end = i + 1; end < n && rows[end].period_start == rows[i].period_start &&
                          strcmp(rows[end].plan_id, rows[i].plan_id) == 0;
             end++)
            ;
        if (rows[i].period_start >= ps)
            continue; /* this period's own usage: usage_lines */
        const tg_plan_t *up = usage_plan(cfg, plan, c, rows[i].plan_id, err);
        if (up == NULL)
            return TG_ECONFIG;
        tg_usage_qty_t *billed = malloc((end - i) * sizeof(*billed));
        if (billed == NULL)
            return tg_errf(err, TG_ENOMEM, "out of memory pricing the late usage of %s", c->id);
        int quoted = 0; /* the period billed up's minimum with none of its usage (store.h) */
        for (size_t k = i; k < end; k++) {
            billed[k - i] = (tg_usage_qty_t){rows[k].metric, rows[k].invoiced};
            quoted |= rows[k].quoted;
        }
        for (size_t k = i; k < end && rc == 0; k++) {
            if (rows[k].units == 0)
                continue; /* billed before and nothing since: only what the others build on */
            tg_money_t amount;
            rc = tg_price_late_in_period(up, billed, end - i, quoted, rows[k].metric, rows[k].units, &amount, err);
            if (rc == 0)
                rc = late_line(lines, c, up, &rows[k], amount, d, total, err);
            /* cannot overflow: pricing added invoiced and late up without overflowing */
            billed[k - i].used += rows[k].units;
        }
        free(billed);
    }
    return rc;
}

int tg_invoice_build(const tg_config_t *cfg, const tg_customer_t *c, const tg_unbilled_t *rows, size_t n,
                     const tg_invoice_item_t *items, size_t nitems, tg_invoice_t *inv, tg_err_t *err)
{
    const tg_plan_t *plan = tg_config_find_plan(cfg, c->plan_id);
    if (plan == NULL)
        return tg_errf(err, TG_ECONFIG, "customer %s is on plan \"%s\", which the configuration lacks", c->id,
                       c->plan_id);
    int d = plan->currency_digits, rc = 0;
    json_t *lines = json_array();
    tg_money_t total = 0;
    int64_t ps = inv->period_start, pe = inv->period_end;

    /* Base fee of the plan in force at the period's end, less any trial inside the period, and
     * only up to the end of a period cut short by cancellation. */
    int64_t natural_start, natural_end;
    tg_period_bounds(c->anchor_at, plan->interval, ps, &natural_start, &natural_end);
    int64_t paid_from = c->trial_end > ps ? c->trial_end : ps;
    if (strcmp(c->status, "incomplete") == 0)
        paid_from = pe; /* no card yet: the plan has not started (its trial_end is set then) */
    if (paid_from < pe && plan->price != 0) {
        tg_money_t base = plan->price;
        tg_line_kind_t kind = TG_LINE_BASE;
        char desc[192];
        if (paid_from > ps || pe < natural_end) {
            kind = TG_LINE_PRORATION;
            if ((rc = tg_prorate(plan->price, pe - paid_from, natural_end - ps, &base)) != 0) {
                json_decref(lines);
                return tg_errf(err, rc, "prorating the base fee of %s", c->id);
            }
            snprintf(desc, sizeof(desc), "%s plan, %" PRId64 " of %" PRId64 " days%s", plan->name,
                     (pe - paid_from + 43199) / 86400, (natural_end - ps + 43199) / 86400,
                     paid_from > ps ? " after the trial" : " until cancellation");
        } else {
            snprintf(desc, sizeof(desc), "%s plan, 1 %s", plan->name, plan->interval == TG_INTERVAL_YEAR ? "year" : "month");
        }
        tg_money_t rounded = tg_money_round(base, d);
        json_array_append_new(lines, json_pack("{s:s,s:s,s:s,s:n,s:i,s:o}", "kind", tg_line_kind_name(kind),
                                               "description", desc, "plan", plan->id, "metric", "quantity", 1, "amount",
                                               money_json(rounded, d)));
        total += rounded;
    }

    /* Usage of this period, then late usage of earlier ones. The plan's minimum applies when its
     * base fee would, whatever the usage: not in a period the trial (or a plan not started yet)
     * covers whole, in full otherwise (a period part trial or cut short by a cancellation too,
     * as a period with usage always had it). */
    if (rc == 0)
        rc = usage_lines(cfg, plan, c, rows, n, ps, paid_from < pe, d, lines, &total, err);
    if (rc == 0)
        rc = late_lines(cfg, plan, c, rows, n, ps, d, lines, &total, err);
    for (size_t i = 0; i < nitems && rc == 0; i++) {
        if (strcmp(items[i].currency, plan->currency) != 0) {
            rc = tg_errf(err, TG_ECONFIG, "an item of %s is in %s, the invoice in %s", c->id, items[i].currency,
                         plan->currency);
            break;
        }
        tg_money_t amount = tg_money_round(items[i].amount, d);
        json_array_append_new(lines, json_pack("{s:s,s:s,s:n,s:n,s:i,s:o}", "kind",
                                               tg_line_kind_name(amount < 0 ? TG_LINE_CREDIT : TG_LINE_ITEM),
                                               "description", items[i].description, "plan", "metric", "quantity", 1,
                                               "amount", money_json(amount, d)));
        if (tg_money_add(total, amount, &total) != 0)
            rc = tg_errf(err, TG_ERANGE, "the invoice of %s overflows the money range", c->id);
    }
    if (rc != 0) {
        json_decref(lines);
        return rc;
    }
    json_t *body = json_pack("{s:s,s:s,s:o,s:o,s:o}", "customer", c->id, "plan", plan->id, "lines", lines, "subtotal",
                             money_json(total, d), "total", money_json(total, d));
    inv->body = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    if (inv->body == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory rendering an invoice");
    snprintf(inv->currency, sizeof(inv->currency), "%s", plan->currency);
    inv->total = total;
    return 0;
}

int tg_invoice_on_build(const tg_unbilled_t *rows, size_t n, const tg_invoice_item_t *items, size_t nitems,
                        tg_invoice_t *inv, void *arg, tg_err_t *err)
{
    const tg_invoice_build_arg_t *b = arg;
    return tg_invoice_build(b->cfg, b->c, rows, n, items, nitems, inv, err);
}

/* What a stored line is, for tg_invoice_refresh_usage: its "kind" says so. Lines stored before
 * kinds existed are told apart by their shape, as they were then: they come in
 * tg_invoice_build's order (the base fee, the period's usage, late lines, items); a usage plan's
 * quote starts with a charge's line (metric set) and its minimum or maximum line (metric null)
 * follows one, so a line without a metric before any usage line is the base fee. (That rule
 * misreads a plan with no charges but a minimum, whose quote is its top-up line alone: kept as
 * if it were a base fee. Only invoices without kinds are read that way.) A kind this version
 * does not know is kept as it is. */
typedef enum { LINE_BASE, LINE_USAGE, LINE_OTHER } stored_line_t;

static stored_line_t stored_line(const json_t *l, int *seen_usage)
{
    tg_line_kind_t kind;
    int rc = tg_line_stored_kind(l, &kind);
    if (rc == TG_EINVAL)
        return LINE_OTHER;
    if (rc == 0) {
        switch (kind) {
        case TG_LINE_USAGE:
        case TG_LINE_MINIMUM:
        case TG_LINE_MAXIMUM:
            *seen_usage = 1;
            return LINE_USAGE;
        case TG_LINE_BASE:
        case TG_LINE_PRORATION:
            return LINE_BASE;
        default:
            return LINE_OTHER; /* late usage, items and credits */
        }
    }
    if (json_object_get(l, "late_period") != NULL || !json_is_string(json_object_get(l, "plan")))
        return LINE_OTHER; /* late usage, or an item */
    if (json_is_string(json_object_get(l, "metric")) || *seen_usage) {
        *seen_usage = 1;
        return LINE_USAGE;
    }
    return LINE_BASE;
}

/* The units of (plan_id, metric) the draft's own usage lines priced (their "used"), 0 when it has
 * none for them. */
static uint64_t used_on_draft(const json_t *old, const char *plan_id, const char *metric)
{
    int seen_usage = 0;
    size_t i;
    json_t *l;
    json_array_foreach(old, i, l)
    {
        const char *p = json_string_value(json_object_get(l, "plan"));
        const char *m = json_string_value(json_object_get(l, "metric"));
        json_int_t used = json_integer_value(json_object_get(l, "used"));
        if (stored_line(l, &seen_usage) == LINE_USAGE && p != NULL && m != NULL && strcmp(p, plan_id) == 0 &&
            strcmp(m, metric) == 0 && used > 0)
            return (uint64_t)used;
    }
    return 0;
}

/* Whether the draft's own usage lines include a quote of plan_id: then the draft billed the
 * period under that plan with its minimum, from usage or without any (usage_lines), and its
 * refresh keeps doing so. A draft made before periods without usage were billed at their
 * minimum has no such lines when its plan had no usage, and keeps its old rule. */
static int draft_quoted(const json_t *old, const char *plan_id)
{
    int seen_usage = 0;
    size_t i;
    json_t *l;
    json_array_foreach(old, i, l)
    {
        const char *p = json_string_value(json_object_get(l, "plan"));
        if (stored_line(l, &seen_usage) == LINE_USAGE && p != NULL && strcmp(p, plan_id) == 0)
            return 1;
    }
    return 0;
}

/* The units of the draft's period to price on it: each row's units less those billed on other
 * invoices meanwhile. A row's invoiced units are the draft's own (its usage lines' "used") plus
 * any the next period's invoice took as late usage while this one stayed a draft (store.h:
 * usage arriving after the next period was drafted goes there); those are billed already and
 * must not be billed again here. kept (n entries) is the caller's. */
static void units_for_draft(const json_t *old, const tg_unbilled_t *rows, size_t n, tg_unbilled_t *kept)
{
    for (size_t i = 0; i < n; i++) {
        kept[i] = rows[i];
        uint64_t own = used_on_draft(old, rows[i].plan_id, rows[i].metric);
        uint64_t elsewhere = rows[i].invoiced > own ? rows[i].invoiced - own : 0;
        kept[i].units = rows[i].units > elsewhere ? rows[i].units - elsewhere : 0;
    }
}

int tg_invoice_refresh_usage(const tg_config_t *cfg, const tg_customer_t *c, const tg_unbilled_t *rows, size_t n,
                             tg_invoice_t *inv, tg_err_t *err)
{
    json_t *body = json_loads(inv->body != NULL ? inv->body : "", 0, NULL);
    json_t *old = json_object_get(body, "lines");
    if (!json_is_array(old)) {
        json_decref(body);
        return tg_errf(err, TG_EINVAL, "invoice %s has no lines to bring up to date", inv->id);
    }
    /* priced under the plan the draft was made with, not the one c has moved to since */
    const char *plan_id = json_string_value(json_object_get(body, "plan"));
    const tg_plan_t *plan = tg_config_find_plan(cfg, plan_id != NULL ? plan_id : c->plan_id);
    if (plan == NULL)
        plan = tg_config_find_plan(cfg, c->plan_id);
    if (plan == NULL || strcmp(plan->currency, inv->currency) != 0) {
        json_decref(body);
        return tg_errf(err, TG_ECONFIG, "invoice %s: no plan in %s to price the usage of %s with", inv->id,
                       inv->currency, c->id);
    }
    int d = plan->currency_digits, seen_usage = 0, placed = 0;
    tg_money_t usage_total = 0, total = 0; /* total: summed over every line of the result below */
    json_t *fresh = json_array(), *lines = json_array();
    tg_unbilled_t *own = malloc((n > 0 ? n : 1) * sizeof(*own));
    if (own != NULL)
        units_for_draft(old, rows, n, own);
    int rc = fresh != NULL && lines != NULL && own != NULL
                 ? usage_lines(cfg, plan, c, own, n, inv->period_start, draft_quoted(old, plan->id), d, fresh,
                               &usage_total, err)
                 : tg_errf(err, TG_ENOMEM, "out of memory rendering an invoice");
    free(own);
    /* The draft's lines as they were, its period's usage lines replaced by fresh ones: the base
     * fee, late lines and items (credits included) are kept. */
    size_t i;
    json_t *l;
    json_array_foreach(old, i, l)
    {
        if (rc != 0)
            break;
        stored_line_t kind = stored_line(l, &seen_usage);
        if (kind == LINE_USAGE)
            continue;
        if (kind == LINE_OTHER && !placed) {
            placed = 1;
            json_array_extend(lines, fresh);
        }
        json_array_append(lines, l);
    }
    if (rc == 0 && !placed)
        json_array_extend(lines, fresh);
    json_array_foreach(lines, i, l)
    {
        if (rc != 0)
            break;
        const char *a = json_string_value(json_object_get(l, "amount"));
        tg_money_t amount;
        if (a == NULL || tg_money_parse(a, strlen(a), &amount, err) != 0)
            rc = tg_errf(err, TG_EINVAL, "invoice %s has a line without a valid amount", inv->id);
        else if (tg_money_add(total, amount, &total) != 0)
            rc = tg_errf(err, TG_ERANGE, "the invoice of %s overflows the money range", c->id);
    }
    char *text = NULL;
    if (rc == 0) {
        json_object_set(body, "lines", lines);
        json_object_set_new(body, "subtotal", money_json(total, d));
        json_object_set_new(body, "total", money_json(total, d));
        if ((text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
            rc = tg_errf(err, TG_ENOMEM, "out of memory rendering an invoice");
    }
    json_decref(fresh);
    json_decref(lines);
    json_decref(body);
    if (rc != 0)
        return rc;
    free(inv->body);
    inv->body = text;
    inv->total = total;
    return 0;
}

int tg_invoice_on_refresh(const tg_unbilled_t *rows, size_t n, const tg_invoice_item_t *items, size_t nitems,
                          tg_invoice_t *inv, void *arg, tg_err_t *err)
{
    (void)items; /* the draft's items are on it already */
    (void)nitems;
    const tg_invoice_build_arg_t *b = arg;
    return tg_invoice_refresh_usage(b->cfg, b->c, rows, n, inv, err);
}

/* "inv_" and 24 hex digits: the wall clock's milliseconds (48 bits, big-endian) then 48 random
 * bits. Ids that grow with time are inserted at the right edge of the invoices' primary key
 * and of invoices_list (period_start, id) instead of at random leaves: closing a million
 * customers' month then rewrites a few B-tree pages per batch, not one page per invoice (the
 * random ids made the 100,000-customer close write and fsync hundreds of megabytes of WAL).
 * Uniqueness rests on the random half (2^48 per millisecond) and on the primary key. */
static void new_invoice_id(char *out, size_t cap)
{
    uint8_t raw[12];
    char hex[25];
    int64_t ms = tg_clock_now_ns() / 1000000;
    for (int i = 0; i < 6; i++)
        raw[i] = (uint8_t)((uint64_t)ms >> (8 * (5 - i)));
    randombytes_buf(raw + 6, 6);
    sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
    snprintf(out, cap, "inv_%s", hex);
}

int tg_invoice_close_final(tg_store_t *st, const tg_config_t *cfg, const tg_customer_t *c, int64_t now_s,
                           tg_err_t *err)
{
    const tg_plan_t *plan = tg_config_find_plan(cfg, c->plan_id);
    if (plan == NULL)
        return tg_errf(err, TG_ECONFIG, "customer %s is on an unknown plan", c->id);
    tg_invoice_t draft = {0};
    int64_t pe;
    tg_period_bounds(c->anchor_at, plan->interval, now_s, &draft.period_start, &pe);
    draft.period_end = now_s;
    new_invoice_id(draft.id, sizeof(draft.id));
    snprintf(draft.customer_id, sizeof(draft.customer_id), "%s", c->id);
    draft.created_at = now_s;
    tg_invoice_build_arg_t b = {cfg, c};
    int made = 0;
    int rc = tg_store_invoice_create(st, &draft, tg_invoice_on_build, &b, &made, NULL, err);
    free(draft.body);
    return rc;
}

/* The start of the first period of c (on plan) to look at from from_end: the one ending at
 * from_end when that is one of c's boundaries (the schedule says every earlier one is closed),
 * else the first one. */
static int64_t first_start(const tg_customer_t *c, const tg_plan_t *plan, int64_t from_end)
{
    int64_t ps = tg_period_boundary(c->anchor_at, plan->interval, 0);
    if (from_end > ps) {
        int64_t s0, e0;
        tg_period_bounds(c->anchor_at, plan->interval, from_end - 1, &s0, &e0);
        if (e0 == from_end)
            ps = s0;
    }
    return ps;
}

/* Whether the period [ps, pe) of c is one to close at now_s. */
static int period_due(const tg_customer_t *c, int64_t ps, int64_t pe, int64_t now_s)
{
    return pe <= now_s && !(c->cancel_at != 0 && ps >= c->cancel_at);
}

/* When c next needs the closer once every period before ps (ending at pe) is closed: see
 * tg_invoice_close_due. */
static int64_t next_after(const tg_customer_t *c, int64_t ps, int64_t pe, int64_t now_s)
{
    /* Nothing more to close for a customer whose next period starts at or after its
     * cancellation: INT64_MAX, until a change to the customer resets it (store.h). */
    int64_t next = c->cancel_at != 0 && ps >= c->cancel_at ? INT64_MAX : pe;
    /* ... but the closer also applies the changes scheduled at a period's end (a downgrade, the
     * cancellation taking effect): it comes back for them when they are due. */
    if (c->pending_plan_id[0] != '\0' && c->pending_at > now_s && c->pending_at < next)
        next = c->pending_at;
    if (c->cancel_at > now_s && strcmp(c->status, "canceled") != 0 && c->cancel_at < next)
        next = c->cancel_at;
    return next;
}

/* A draft of c for [ps, pe) with a new id, created at now_s. */
static void new_draft(tg_invoice_t *draft, const tg_customer_t *c, int64_t ps, int64_t pe, int64_t now_s)
{
    memset(draft, 0, sizeof(*draft));
    new_invoice_id(draft->id, sizeof(draft->id));
    snprintf(draft->customer_id, sizeof(draft->customer_id), "%s", c->id);
    draft->period_start = ps;
    draft->period_end = pe;
    draft->created_at = now_s;
}

int tg_invoice_close_due(tg_store_t *st, const tg_config_t *cfg, const tg_customer_t *c, int64_t from_end,
                         int64_t now_s, int *created, int64_t *next_end, tg_err_t *err)
{
    const tg_plan_t *plan = tg_config_find_plan(cfg, c->plan_id);
    *created = 0;
    if (plan == NULL)
        return tg_errf(err, TG_ECONFIG, "customer %s is on plan \"%s\", which the configuration lacks", c->id,
                       c->plan_id);
    tg_invoice_build_arg_t b = {cfg, c};
    int64_t ps = first_start(c, plan, from_end), pe;
    for (;; ps = pe) {
        int64_t s0;
        tg_period_bounds(c->anchor_at, plan->interval, ps, &s0, &pe);
        if (!period_due(c, ps, pe, now_s))
            break;
        tg_invoice_t draft;
        new_draft(&draft, c, ps, pe, now_s);
        int made = 0;
        int rc = tg_store_invoice_create(st, &draft, tg_invoice_on_build, &b, &made, NULL, err);
        free(draft.body);
        if (rc != 0)
            return rc;
        *created += made;
    }
    if (next_end != NULL)
        *next_end = next_after(c, ps, pe, now_s);
    return 0;
}

int tg_invoice_due_single(const tg_config_t *cfg, const tg_customer_t *c, int64_t from_end, int64_t now_s,
                          tg_invoice_t *draft, int64_t *next_end)
{
    const tg_plan_t *plan = tg_config_find_plan(cfg, c->plan_id);
    if (plan == NULL)
        return 0; /* tg_invoice_close_due says why */
    int64_t ps = first_start(c, plan, from_end), pe, s0, pe2;
    tg_period_bounds(c->anchor_at, plan->interval, ps, &s0, &pe);
    if (!period_due(c, ps, pe, now_s))
        return 0;
    tg_period_bounds(c->anchor_at, plan->interval, pe, &s0, &pe2);
    if (period_due(c, pe, pe2, now_s))
        return 0; /* more than one: the loop of tg_invoice_close_due */
    new_draft(draft, c, ps, pe, now_s);
    *next_end = next_after(c, pe, pe2, now_s);
    return 1;
}

int tg_invoice_close_periods(tg_store_t *st, const tg_config_t *cfg, const tg_customer_t *c, int64_t now_s,
                             int *created, tg_err_t *err)
{
    return tg_invoice_close_due(st, cfg, c, 0, now_s, created, NULL, err);
}

/* The preview's build (tg_invoice_preview): the periods of c whose invoice is still a draft. */
typedef struct preview_arg {
    tg_invoice_build_arg_t build;
    int64_t *drafts; /* their period starts */
    size_t ndrafts, cap;
    int nomem;
} preview_arg_t;

static int on_draft(const tg_invoice_t *inv, void *arg)
{
    preview_arg_t *p = arg;
    if (p->ndrafts == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 8;
        int64_t *d = cap <= SIZE_MAX / sizeof(*d) ? realloc(p->drafts, cap * sizeof(*d)) : NULL;
        if (d == NULL) {
            p->nomem = 1;
            return 1;
        }
        p->drafts = d;
        p->cap = cap;
    }
    p->drafts[p->ndrafts++] = inv->period_start;
    return 0;
}

/* Builds the preview from the rows of periods that have no draft: usage of a period whose invoice
 * is a draft goes onto that draft when it is finalized (tg_invoice_refresh_usage), not onto the
 * upcoming invoice, so the preview leaves it out rather than show it as a late line. */
static int on_preview_build(const tg_unbilled_t *rows, size_t n, const tg_invoice_item_t *items, size_t nitems,
                            tg_invoice_t *inv, void *arg, tg_err_t *err)
{
    const preview_arg_t *p = arg;
    tg_unbilled_t *kept = malloc((n > 0 ? n : 1) * sizeof(*kept));
    if (kept == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory previewing an invoice");
    size_t nk = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < p->ndrafts && p->drafts[k] != rows[i].period_start)
            k++;
        if (k == p->ndrafts || rows[i].period_start >= inv->period_start)
            kept[nk++] = rows[i];
    }
    int rc = tg_invoice_build(p->build.cfg, p->build.c, kept, nk, items, nitems, inv, err);
    free(kept);
    return rc;
}

char *tg_invoice_preview(tg_store_t *st, const tg_config_t *cfg, const tg_customer_t *c, int64_t now_s, tg_err_t *err)
{
    const tg_plan_t *plan = tg_config_find_plan(cfg, c->plan_id);
    if (plan == NULL) {
        tg_errf(err, TG_ECONFIG, "customer %s is on an unknown plan", c->id);
        return NULL;
    }
    tg_invoice_t inv = {0};
    tg_period_bounds(c->anchor_at, plan->interval, now_s, &inv.period_start, &inv.period_end);
    snprintf(inv.customer_id, sizeof(inv.customer_id), "%s", c->id);
    snprintf(inv.status, sizeof(inv.status), "upcoming");
    preview_arg_t p = {.build = {cfg, c}};
    tg_invoice_query_t drafts = {.customer_id = c->id, .status = "draft"};
    tg_page_t page = {.limit = TG_PAGE_MAX};
    tg_page_end_t end = {0};
    int rc;
    do {
        rc = tg_store_invoice_search(st, &drafts, &page, on_draft, &p, &end, err);
        if (p.nomem)
            rc = tg_errf(err, TG_ENOMEM, "out of memory previewing an invoice");
        memcpy(page.after, end.next, sizeof(page.after));
    } while (rc == 0 && end.has_more);
    char *out = NULL;
    if (rc == 0 && tg_store_invoice_preview(st, &inv, on_preview_build, &p, err) == 0)
        out = tg_invoice_to_json(&inv);
    free(p.drafts);
    free(inv.body);
    return out;
}

char *tg_invoice_to_json(const tg_invoice_t *inv)
{
    json_t *body = json_loads(inv->body != NULL ? inv->body : "{}", 0, NULL);
    if (body == NULL)
        return NULL;
    json_t *j = json_pack("{s:o,s:o,s:s,s:s,s:{s:o,s:o}}", "id", inv->id[0] ? json_string(inv->id) : json_null(),
                          "number", inv->number[0] ? json_string(inv->number) : json_null(), "status", inv->status,
                          "currency", inv->currency, "period", "start", time_json(inv->period_start), "end",
                          time_json(inv->period_end));
    json_object_update(j, body);
    json_object_set_new(j, "created_at", time_json(inv->created_at));
    json_object_set_new(j, "finalized_at", time_json(inv->finalized_at));
    json_object_set_new(j, "closed_at", time_json(inv->closed_at));
    if (strcmp(inv->status, "draft") == 0)
        json_object_set_new(j, "held", json_boolean(inv->held));
    json_decref(body);
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    return s;
}

/* Escapes text for HTML into a growing buffer. */
static void html_escape(FILE *f, const char *s)
{
    for (; s != NULL && *s; s++)
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
}

/* An amount of the invoice body ("49.00") in its currency ("$49.00"); as given if it is not a
 * plain decimal. */
static void html_money(FILE *f, const char *amount, const char *currency)
{
    char text[80];
    html_escape(f, tg_money_text(amount, currency, text, sizeof(text)) >= 0 ? text : amount);
}

char *tg_invoice_to_html(const tg_invoice_t *inv, const tg_customer_t *c, const tg_config_t *cfg)
{
    json_t *b = json_loads(inv->body != NULL ? inv->body : "{}", 0, NULL);
    if (b == NULL)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL) {
        json_decref(b);
        return NULL;
    }
    char start[32], end[32];
    time_t t0 = (time_t)inv->period_start, t1 = (time_t)inv->period_end;
    struct tm tm;
    strftime(start, sizeof(start), "%Y-%m-%d", gmtime_r(&t0, &tm));
    strftime(end, sizeof(end), "%Y-%m-%d", gmtime_r(&t1, &tm));
    fputs("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Invoice ", f);
    html_escape(f, inv->number[0] ? inv->number : "draft");
    /* The icon link as web/'s pages have it: without one the browser asks for /favicon.ico, a 404
     * in the console of every invoice opened. A name or email that is one long word breaks
     * rather than widening the page on a phone. (tests/e2e/a11y.e2e.test.mjs) */
    fputs("</title><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
          "<link rel=\"icon\" href=\"data:,\"><style>"
          "body{font:15px/1.5 system-ui,sans-serif;max-width:760px;margin:2em auto;padding:0 1em;color:#111;"
          "overflow-wrap:break-word}"
          "table{width:100%;border-collapse:collapse}td,th{padding:.4em;border-bottom:1px solid #ddd;text-align:left}"
          "td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}tfoot td{font-weight:600;border:0}"
          ".muted{color:#666}@media print{body{margin:0}}</style></head><body>",
          f);
    if (cfg != NULL && cfg->portal.title != NULL) {
        fputs("<p class=\"muted\">", f);
        html_escape(f, cfg->portal.title);
        fputs("</p>", f);
    }
    fputs("<h1>Invoice ", f);
    html_escape(f, inv->number[0] ? inv->number : "(draft)");
    fputs("</h1><p class=\"muted\">Status: ", f);
    html_escape(f, inv->status);
    fprintf(f, " &middot; Period %s to %s</p><p><strong>Bill to:</strong> ", start, end);
    html_escape(f, c != NULL && c->name[0] ? c->name : inv->customer_id);
    if (c != NULL) {
        fputs(" &lt;", f);
        html_escape(f, c->email);
        fputs("&gt;", f);
    }
    fputs("</p><table><thead><tr><th>Description</th><th class=\"n\">Quantity</th><th class=\"n\">Amount</th></tr>"
          "</thead><tbody>",
          f);
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(b, "lines"), i, l)
    {
        char text[TG_LINE_TEXT_MAX];
        fputs("<tr><td>", f);
        html_escape(f, tg_line_text(cfg, l, text, sizeof(text)));
        json_int_t qty = json_integer_value(json_object_get(l, "quantity"));
        char count[32];
        if (qty < 0 || tg_count_text((uint64_t)qty, count, sizeof(count)) < 0)
            snprintf(count, sizeof(count), "%lld", (long long)qty);
        fprintf(f, "</td><td class=\"n\">%s</td><td class=\"n\">", count);
        html_money(f, json_string_value(json_object_get(l, "amount")), inv->currency);
        fputs("</td></tr>", f);
    }
    fputs("</tbody><tfoot><tr><td colspan=\"2\">Total</td><td class=\"n\" data-testid=\"total\">", f);
    html_money(f, json_string_value(json_object_get(b, "total")), inv->currency);
    fputs("</td></tr></tfoot></table></body></html>\n", f);
    fclose(f);
    json_decref(b);
    return buf;
}
