/* pricing.h - the pure pricing core: a plan's charges applied to a period's usage, exactly.
 *
 * No I/O. Amounts are tg_money_t nano-units; each line's exact amount is rounded once, half away
 * from zero, to the plan currency's minor unit, and totals are sums of rounded lines, so an
 * invoice always adds up on paper. Semantics follow Stripe's tiered prices and Lago's charge
 * models:
 *   per_unit   unit_price x quantity
 *   graduated  each unit priced by the tier it falls in; a tier's flat_price once if entered
 *   volume     all units at the tier the total falls in (unit price x quantity + its flat price)
 *   package    ceil (or floor) of quantity / package_size, times package_price
 * Tier bounds (up_to) are inclusive; quantity 0 enters no tier and costs 0. The billable quantity
 * of a charge is the usage above the plan's included allowance for its metric. A plan minimum
 * tops the sum of usage lines up to it; a maximum caps that sum (an adjustment line). */
#ifndef TG_PRICING_H
#define TG_PRICING_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "util/err.h"
#include "util/money.h"

#define TG_MAX_TIER_PARTS 16

typedef struct tg_tier_part {
    uint64_t from, to; /* inclusive unit range priced in this tier */
    uint64_t quantity;
    tg_money_t unit_price, flat_price;
    tg_money_t amount; /* exact */
} tg_tier_part_t;

typedef enum tg_line_kind {
    TG_LINE_BASE = 0,
    TG_LINE_USAGE,
    TG_LINE_MINIMUM,
    TG_LINE_MAXIMUM,
    TG_LINE_PRORATION,
    TG_LINE_CREDIT,
} tg_line_kind_t;

typedef struct tg_line {
    tg_line_kind_t kind;
    char description[256]; /* plan names may have 200 characters */
    char metric[64];
    uint64_t used;     /* usage in the period */
    uint64_t included; /* allowance (0 if none) */
    uint64_t quantity; /* billable quantity */
    tg_money_t unit_price; /* per_unit / package price; 0 for tiered */
    tg_money_t exact;      /* before rounding */
    tg_money_t amount;     /* rounded to the currency's minor unit */
    size_t nparts;
    tg_tier_part_t parts[TG_MAX_TIER_PARTS];
} tg_line_t;

typedef struct tg_usage_qty {
    const char *metric;
    uint64_t used;
} tg_usage_qty_t;

typedef struct tg_quote {
    const tg_plan_t *plan;
    tg_line_t *lines; /* owned */
    size_t nlines;
    tg_money_t usage_total; /* sum of rounded usage lines, after minimum/maximum */
    tg_money_t total;       /* sum of every rounded line */
} tg_quote_t;

/* Prices `quantity` billable units of one charge. parts (may be NULL) receives the tier
 * breakdown. TG_ERANGE if an amount leaves the money range. */
int tg_price_charge(const tg_charge_t *c, uint64_t quantity, tg_money_t *exact, tg_tier_part_t *parts,
                    size_t maxparts, size_t *nparts, tg_err_t *err);

/* Builds the lines of one full period of `plan` with the given usage (metrics not listed count
 * 0). include_base_fee is 0 for a trial period. out->lines is allocated; tg_quote_free frees it. */
int tg_quote_build(const tg_plan_t *plan, const tg_usage_qty_t *usage, size_t nusage, int include_base_fee,
                   tg_quote_t *out, tg_err_t *err);
void tg_quote_free(tg_quote_t *q);

/* {"plan","currency","lines":[{"description","metric","quantity","amount"}],"total"}, amounts as
 * exact decimal strings in the major unit. Returns a malloc'd string or NULL. */
char *tg_quote_to_json(const tg_quote_t *q);

/* amount x remaining_s / period_s, rounded half away from zero to a nano-unit. */
int tg_prorate(tg_money_t amount, int64_t remaining_s, int64_t period_s, tg_money_t *out);

#endif
