/* pricing.h - the pure pricing core: a plan's charges applied to a period's usage, exactly.
 *
 * No I/O, no clock, no globals: every function here is a pure computation, safe on any thread.
 * Amounts are tg_money_t nano-units (util/money.h). Semantics follow Stripe's tiered prices
 * (graduated/volume, flat_amount + unit_amount per tier) and Lago's charge models (standard,
 * graduated, volume, package):
 *   per_unit   unit_price x quantity
 *   graduated  each unit is priced by the tier it falls in; a tier's flat_price is added once
 *              when any unit falls in it
 *   volume     every unit at the one tier the total falls in: its unit_price x quantity + its
 *              flat_price
 *   package    quantity in whole packages of package_size, rounded up (round_up = 1) or down,
 *              times package_price
 * Tier bounds (up_to) are inclusive and ascend, the last one TG_UNLIMITED. Quantity 0 enters no
 * tier and starts no package: it costs 0 under every model.
 *
 * A quote is the invoice of one full period:
 *   - a base fee line (plan->price), left out for a trial period;
 *   - one usage line per charge, in the plan's order, even when its quantity is 0, so the
 *     invoice explains itself. The billable quantity is the usage above the plan's included
 *     allowance for the charge's metric; a metric with no `included` entry has an allowance of 0
 *     (all usage billable) and an allowance of TG_UNLIMITED makes nothing billable. Usage of a
 *     metric that no charge prices appears nowhere;
 *   - a minimum commitment top-up line when the usage lines sum to less than plan->minimum;
 *   - a (negative) cap adjustment line when they sum to more than plan->maximum.
 * Rounding happens once per line: each line's exact amount is rounded half away from zero to the
 * currency's minor unit (plan->currency_digits), and every sum is a sum of rounded lines, so an
 * invoice always adds up on paper. minimum and maximum are themselves rounded to the minor unit
 * and compare against the sum of the rounded usage lines only, never the base fee; they apply
 * whether or not the base fee is included. Any overflow is TG_ERANGE, never a wrapped amount. */
#ifndef TG_PRICING_H
#define TG_PRICING_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "model/records.h"
#include "util/err.h"
#include "util/money.h"

/* Room for the breakdown of one charge: the configuration allows at most 32 tiers a charge. */
#define TG_MAX_TIER_PARTS 32

/* One piece of a charge's breakdown. Graduated: one part per tier entered, [from, to] the units
 * priced there and quantity = to - from + 1. Volume: one part, the tier that priced all units
 * [1, quantity]. Package: one part, quantity = packages billed, [from, to] the units they cover.
 * amount = quantity x unit_price + flat_price, exact (not rounded). */
typedef struct tg_tier_part {
    uint64_t from, to;
    uint64_t quantity;
    tg_money_t unit_price, flat_price;
    tg_money_t amount;
} tg_tier_part_t;

/* What a line is. Every invoice line stored says so in its "kind" (tg_line_kind_name), so that
 * readers (the draft refresh, the text for people, the Stripe export, the dashboard) need not
 * guess it from which fields the line has; invoices stored before "kind" existed have none and
 * their readers fall back to the shape rules they used then. The set is closed: a reader meeting
 * a name it does not know treats the line as one it must keep and show as stored. */
typedef enum tg_line_kind {
    TG_LINE_BASE = 0,   /* "base_fee": the plan's base fee for the whole period */
    TG_LINE_USAGE,      /* "usage": one charge of the period's own usage */
    TG_LINE_MINIMUM,    /* "minimum": minimum commitment top-up, > 0 */
    TG_LINE_MAXIMUM,    /* "maximum": spending cap adjustment, < 0 */
    TG_LINE_PRORATION,  /* "proration": the base fee for part of the period (a trial ended in it,
                         * or a cancellation cut it short) */
    TG_LINE_CREDIT,     /* "credit": a one-off item with a negative amount */
    TG_LINE_LATE_USAGE, /* "late_usage": usage of an earlier period, reported after its invoice */
    TG_LINE_ITEM,       /* "item": a one-off item with an amount >= 0 (a plan change's proration,
                         * an owner's charge) */
} tg_line_kind_t;
#define TG_LINE_KIND_COUNT 8

/* The stored name of kind ("base_fee", ...); "" for a value outside the enum. */
const char *tg_line_kind_name(tg_line_kind_t kind);
/* The kind named `name`: 0 with *out set, or TG_EINVAL (NULL or an unknown name; *out untouched). */
int tg_line_kind_parse(const char *name, tg_line_kind_t *out);

typedef struct tg_line {
    tg_line_kind_t kind;
    char description[256]; /* plan names have up to 200 characters */
    char metric[64];       /* usage lines; "" otherwise */
    uint64_t used;         /* usage lines: usage in the period */
    uint64_t included;     /* usage lines: allowance (0 if none, TG_UNLIMITED if unlimited) */
    uint64_t quantity;     /* billable quantity (1 for the base fee, 0 for adjustments) */
    tg_money_t unit_price; /* per_unit: unit price; package: package price; 0 for tiered */
    tg_money_t exact;      /* before rounding */
    tg_money_t amount;     /* exact rounded to the currency's minor unit */
    size_t nparts;         /* breakdown of a tiered or package usage line */
    tg_tier_part_t parts[TG_MAX_TIER_PARTS];
} tg_line_t;

typedef struct tg_usage_qty {
    const char *metric;
    uint64_t used; /* several entries of one metric add up */
} tg_usage_qty_t;

#define TG_QUOTE_MAX_METRICS 16

/* A metric the plan would stop at its allowance (tg_plan_blocks_before) instead of billing past it. */
typedef struct tg_quote_block {
    char metric[TG_METRIC_MAX];
    uint64_t after; /* the allowance: the last unit the gateway lets through */
} tg_quote_block_t;

typedef struct tg_quote {
    const tg_plan_t *plan; /* borrowed: must outlive the quote */
    tg_line_t *lines;      /* owned; tg_quote_free */
    size_t nlines;
    tg_money_t usage_total; /* usage lines plus the minimum/maximum adjustment */
    tg_money_t total;       /* sum of every line's rounded amount */
    /* Set by tg_quote_estimate only (tg_quote_build leaves estimate 0 and nblocked 0). */
    int estimate;
    size_t nblocked;
    tg_quote_block_t blocked[TG_QUOTE_MAX_METRICS];
} tg_quote_t;

/* Prices `quantity` billable units of one charge: *exact receives the amount before rounding.
 * parts (NULL allowed) receives at most maxparts pieces of the breakdown and *nparts (NULL
 * allowed) the number of pieces in the whole breakdown, which exceeds maxparts when the array was
 * too small. Returns 0; TG_EINVAL (message in err) for a charge that breaks the rules above (no
 * tiers, bounds not ascending or not ending with TG_UNLIMITED, package_size 0, a negative price);
 * TG_ERANGE when an amount leaves the money range. On error *exact and *nparts are 0. */
int tg_price_charge(const tg_charge_t *c, uint64_t quantity, tg_money_t *exact, tg_tier_part_t *parts, size_t maxparts,
                    size_t *nparts, tg_err_t *err);

/* Builds the lines of one full period of `plan` for the given usage (nusage entries; metrics not
 * listed count 0). include_base_fee is 0 for a trial period. On success out->lines is allocated
 * (free with tg_quote_free) and out->plan borrows `plan`. Errors: TG_EINVAL for a malformed plan
 * or charge (currency_digits outside 0..9, negative or inverted minimum/maximum, a charge as in
 * tg_price_charge, more than TG_MAX_TIER_PARTS tiers), TG_ERANGE on overflow, TG_ENOMEM; out is
 * then empty and needs no tg_quote_free (calling it is harmless). */
int tg_quote_build(const tg_plan_t *plan, const tg_usage_qty_t *usage, size_t nusage, int include_base_fee,
                   tg_quote_t *out, tg_err_t *err);

/* What a prospective customer would pay for this usage, as the calculator and `tollgate quote`
 * show it: entries of one metric are added up first, and a metric the plan blocks at its
 * allowance (on_quota block) is priced only up to that allowance, as the gateway would refuse
 * the rest, and listed in out->blocked. Otherwise as tg_quote_build; also TG_EINVAL for more
 * than TG_QUOTE_MAX_METRICS distinct metrics, TG_ERANGE when a metric's total overflows. */
int tg_quote_estimate(const tg_plan_t *plan, const tg_usage_qty_t *usage, size_t nusage, int include_base_fee,
                      tg_quote_t *out, tg_err_t *err);

/* Late usage of one metric alone, as Stripe's metered prices see it (payments/meter_export.c:
 * Stripe has no minimum or cap to apply): `late` units of `metric` that arrived after their
 * period was billed with `invoiced` units of it. *amount = what the usage lines of that metric in
 * plan's quote come to for invoiced + late units, less what they come to for invoiced units, the
 * allowance, tiers and packages already entered counted once, each side rounded per line. It may
 * be negative under volume pricing (more units can fall in a cheaper tier). The plan's minimum
 * and maximum are not applied (tg_price_late_in_period does, for tollgate's own invoices).
 * Returns 0; TG_EINVAL (no plan or metric, a malformed plan as in tg_quote_build), TG_ERANGE when
 * invoiced + late or an amount overflows, TG_ENOMEM; *amount is then 0. Pure. */
int tg_price_late_usage(const tg_plan_t *plan, const char *metric, uint64_t invoiced, uint64_t late, tg_money_t *amount,
                        tg_err_t *err);

/* Late usage on tollgate's own invoice (issue 16): `late` units of `metric` that arrived after
 * their period was invoiced, when the period's usage under `plan` billed so far is `invoiced`
 * (ninvoiced entries, every metric of that period and plan, entries of one metric adding up; NULL
 * when 0). *amount = the usage total of plan's quote (its usage lines plus the minimum top-up or
 * cap adjustment: tg_quote_t.usage_total) for invoiced with the late units added, less what was
 * billed for invoiced: that quote's usage total when the period's invoice billed a quote of plan,
 * else 0. It did when some of invoiced is above 0, and, with nothing invoiced, when `quoted` is
 * set: the period had no usage under plan and its invoice billed plan's minimum all the same
 * (invoice.h: a period billed under a plan with a minimum bills at least the minimum), so late
 * units inside the minimum cost nothing more. With nothing invoiced and quoted 0 (the period's
 * invoice had no quote of plan: another plan's period, or an invoice made before minimums applied
 * to periods without usage) nothing was billed, no minimum either, and the late units pay plan's
 * whole quote, minimum included. Exactly what the period's invoice would have said had the units
 * arrived in time: a period at its minimum pays nothing more until its usage passes the minimum,
 * a capped period never more than its cap. Several late lines of one period and plan are priced
 * one after the other, each on top of the ones before (add each one's units to invoiced): their
 * sum is then the difference for all of them. May be negative (volume pricing). Returns 0;
 * TG_EINVAL (no plan or metric, a malformed plan), TG_ERANGE (a count or an amount overflows),
 * TG_ENOMEM; *amount is then 0. Pure. */
int tg_price_late_in_period(const tg_plan_t *plan, const tg_usage_qty_t *invoiced, size_t ninvoiced, int quoted,
                            const char *metric, uint64_t late, tg_money_t *amount, tg_err_t *err);

/* Frees the lines of a quote and empties it; safe on an empty or already freed quote. */
void tg_quote_free(tg_quote_t *q);

/* The quote as compact JSON, keys in this order:
 *   {"plan","currency","lines":[{"kind","description","metric","quantity","amount", ...}],"total"}
 * kind is tg_line_kind_name's; metric is null for lines that are not usage; usage lines add
 * "used", "included" (null when unlimited), "exact" and, when they have a breakdown,
 * "tiers":[{"from","to","quantity","unit_price","flat_price","amount"}]. Amounts are exact
 * decimal strings in the major unit with the currency's digits ("61.50"; "exact" and tier amounts
 * show more digits only when they have them). An estimate (tg_quote_estimate) adds
 * "blocked":[{"metric","after"}] after "total". Returns a malloc'd string the caller frees, or
 * NULL when out of memory. */
char *tg_quote_to_json(const tg_quote_t *q);

/* *out = amount x remaining_s / period_s, rounded half away from zero to a nano-unit (128-bit
 * intermediate; round to the minor unit afterwards, once, as a line). Returns 0, or TG_EINVAL
 * when period_s <= 0 or remaining_s is outside [0, period_s]. */
int tg_prorate(tg_money_t amount, int64_t remaining_s, int64_t period_s, tg_money_t *out);

#endif
