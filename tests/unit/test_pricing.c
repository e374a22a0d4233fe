/* test_pricing.c - the pricing core (src/billing/pricing.c) and `tollgate quote`.
 *
 * Every model is checked against worked examples from the documentation of the two systems whose
 * semantics tollgate follows (the pages were retrieved and read for these tests):
 *  [S1] Stripe, "Set up tiered pricing", https://docs.stripe.com/subscriptions/pricing-models/tiered-pricing
 *       Typographic's tiers: 1-5 fonts at 7 USD, 6-10 at 6.5 USD, 11+ at 6 USD. Volume table
 *       (quoted on the page): 1 -> 7, 5 -> 35, 6 -> 39, 20 -> 120, 25 -> 150 USD. Graduated: "The
 *       quantity is multiplied by the amount for each tier and the totals for each tier are summed
 *       together"; 5 fonts cost 35 USD as under volume. (The retrieved copy of the page was cut
 *       before its graduated table; the graduated figures below, 6 -> 41.50, 20 -> 127.50,
 *       25 -> 157.50, are that stated rule applied to the page's tiers, and are the ones that table
 *       shows as we remember it.)
 *  [S2] Stripe, "Model usage-based pricing", https://docs.stripe.com/billing/subscriptions/usage-based/pricing-models
 *       "Fixed fee and overage": 200 USD a month includes 100,000 tokens, each token above costs
 *       0.001 USD; set up as a flat price plus graduated tiers 0-100,000 at 0.00 and 100,001+ at 0.001.
 *  [S3] Stripe API, price tiers: "up_to: up to and including to this quantity will be contained in
 *       the tier"; "flat_amount: the flat billing amount for an entire tier, regardless of the
 *       number of units in the tier"; the last tier is up_to: inf.
 *  [L1] Lago, "Graduated", https://getlago.com/docs/guide/plans/charges/charge-models/graduated
 *       $1 per unit for the first 100 units, $0.50 for the next 100, $0.10 for any additional unit.
 *  [L2] Lago, "Graduated percentage", https://getlago.com/docs/guide/plans/charges/charge-models/graduated-percentage
 *       tiers 0-1,000 at 1% + $200 flat, 1,001-10,000 at 2% + $300, 10,001+ at 3% + $400; a first
 *       transaction of $500 costs $205.00, a second of $550 costs $306.00 (it enters tier 2, whose
 *       flat fee applies once), a third of $4,000 costs $80.00. Modelled here with $1 = 1 unit and
 *       the rate as unit price: the cumulative graduated price must grow by exactly those amounts.
 *  [L3] Lago, "Volume", https://getlago.com/docs/guide/plans/charges/charge-models/volume
 *       tiers 0-10,000 at $0.0010, 10,001-50,000 at $0.0008, 50,001-100,000 at $0.0006,
 *       100,001+ at $0.0004, each with a $10 fee: 65,000 API calls cost 65,000 x $0.0006 + $10 = $49.
 *  [L4] Lago, "Package", https://getlago.com/docs/guide/plans/charges/charge-models/package
 *       $5 per 100 units with the first 100 units free: 201 units cost $0 + $5 + $5 = $10.
 *
 * Then: edge quantities, properties over many quantities and random tier tables against a
 * unit-by-unit reference, rounding per line, minimum/maximum, overflow, JSON, proration across
 * month ends and leap years, and the CLI with a real configuration file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "billing/pricing.h"
#include "cli/commands.h"
#include "util/period.h"

/* ---- helpers ---- */

static tg_money_t M(const char *s)
{
    tg_money_t v = 0;
    tg_err_t err;
    if (tg_money_parse(s, strlen(s), &v, &err) != 0)
        fail_msg("parse \"%s\": %s", s, err.msg);
    return v;
}

static tg_money_t price(const tg_charge_t *c, uint64_t q)
{
    tg_money_t v = -1;
    tg_err_t err = {0};
    if (tg_price_charge(c, q, &v, NULL, 0, NULL, &err) != 0)
        fail_msg("pricing %llu units: %s", (unsigned long long)q, err.msg);
    return v;
}

static int price_rc(const tg_charge_t *c, uint64_t q, tg_err_t *err)
{
    tg_money_t v = 12345;
    size_t np = 99;
    tg_tier_part_t parts[4];
    int rc = tg_price_charge(c, q, &v, parts, 4, &np, err);
    if (rc != 0) {
        assert_int_equal(v, 0);
        assert_int_equal(np, 0);
        assert_int_equal(err->code, rc);
    }
    return rc;
}

#define INF TG_UNLIMITED

static tg_charge_t tiered(tg_price_model_t model, tg_tier_t *tiers, size_t n)
{
    return (tg_charge_t){.metric = "units", .model = model, .tiers = tiers, .ntiers = n};
}

static tg_plan_t plan_usd(const char *id, const char *price_s)
{
    tg_plan_t p;
    memset(&p, 0, sizeof(p));
    p.id = (char *)id;
    p.name = (char *)id;
    p.price = M(price_s);
    memcpy(p.currency, "usd", 4);
    p.currency_digits = 2;
    return p;
}

static void build_ok(const tg_plan_t *p, const tg_usage_qty_t *u, size_t n, int base, tg_quote_t *q)
{
    tg_err_t err = {0};
    if (tg_quote_build(p, u, n, base, q, &err) != 0)
        fail_msg("quote: %s", err.msg);
    /* invariants of every quote: each amount is its exact value rounded once; the total is the sum
     * of the rounded lines; usage_total the sum of usage lines and the adjustment */
    tg_money_t sum = 0, usage = 0;
    for (size_t i = 0; i < q->nlines; i++) {
        const tg_line_t *l = &q->lines[i];
        assert_int_equal(l->amount, tg_money_round(l->exact, p->currency_digits));
        sum += l->amount;
        if (l->kind != TG_LINE_BASE)
            usage += l->amount;
    }
    assert_int_equal(q->total, sum);
    assert_int_equal(q->usage_total, usage);
}

static const tg_line_t *line_of(const tg_quote_t *q, tg_line_kind_t kind, const char *metric)
{
    for (size_t i = 0; i < q->nlines; i++)
        if (q->lines[i].kind == kind && (metric == NULL || strcmp(q->lines[i].metric, metric) == 0))
            return &q->lines[i];
    return NULL;
}

/* ---- worked examples ---- */

static void test_stripe_volume(void **state) /* [S1] */
{
    (void)state;
    tg_tier_t t[] = {{5, M("7"), 0}, {10, M("6.5"), 0}, {INF, M("6"), 0}};
    tg_charge_t c = tiered(TG_MODEL_VOLUME, t, 3);
    assert_int_equal(price(&c, 1), M("7"));
    assert_int_equal(price(&c, 5), M("35"));
    assert_int_equal(price(&c, 6), M("39")); /* "the total might decrease": 39 for 6 ... */
    assert_int_equal(price(&c, 20), M("120"));
    assert_int_equal(price(&c, 25), M("150"));
    assert_int_equal(price(&c, 10), M("65")); /* ... and 65 for 10, 66 for 11 */
    assert_int_equal(price(&c, 11), M("66"));
}

static void test_stripe_graduated(void **state) /* [S1], [S3] */
{
    (void)state;
    tg_tier_t t[] = {{5, M("7"), 0}, {10, M("6.5"), 0}, {INF, M("6"), 0}};
    tg_charge_t c = tiered(TG_MODEL_GRADUATED, t, 3);
    assert_int_equal(price(&c, 1), M("7"));
    assert_int_equal(price(&c, 5), M("35"));
    assert_int_equal(price(&c, 6), M("41.5"));
    assert_int_equal(price(&c, 20), M("127.5"));
    assert_int_equal(price(&c, 25), M("157.5"));
    /* the breakdown of 20 fonts: 5 x 7 + 5 x 6.5 + 10 x 6 */
    tg_tier_part_t parts[TG_MAX_TIER_PARTS];
    size_t np = 0;
    tg_money_t v;
    tg_err_t err;
    assert_int_equal(tg_price_charge(&c, 20, &v, parts, TG_MAX_TIER_PARTS, &np, &err), 0);
    assert_int_equal(np, 3);
    const uint64_t from[] = {1, 6, 11}, to[] = {5, 10, 20}, n[] = {5, 5, 10};
    const char *amt[] = {"35", "32.5", "60"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(parts[i].from, from[i]);
        assert_int_equal(parts[i].to, to[i]);
        assert_int_equal(parts[i].quantity, n[i]);
        assert_int_equal(parts[i].unit_price, t[i].unit_price);
        assert_int_equal(parts[i].flat_price, 0);
        assert_int_equal(parts[i].amount, M(amt[i]));
    }
}

/* [S2] Fixed fee and overage, two ways: the plan's base fee + an allowance + per-unit overage, and
 * Stripe's own encoding (base fee + graduated tiers whose first tier is free). Same invoice. */
static void test_stripe_fixed_fee_and_overage(void **state)
{
    (void)state;
    tg_charge_t per_unit = {.metric = "tokens", .model = TG_MODEL_PER_UNIT, .unit_price = M("0.001")};
    tg_allowance_t inc = {"tokens", 100000};
    tg_plan_t a = plan_usd("llama_ai", "200");
    a.charges = &per_unit;
    a.ncharges = 1;
    a.included = &inc;
    a.nincluded = 1;

    tg_tier_t t[] = {{100000, 0, 0}, {INF, M("0.001"), 0}};
    tg_charge_t grad = {.metric = "tokens", .model = TG_MODEL_GRADUATED, .tiers = t, .ntiers = 2};
    tg_plan_t b = plan_usd("llama_ai_tiers", "200");
    b.charges = &grad;
    b.ncharges = 1;

    const uint64_t used[] = {0, 1, 99999, 100000, 100001, 150000, 1234567};
    const char *want[] = {"200", "200", "200", "200", "200", "250", "1334.57"};
    for (size_t i = 0; i < sizeof(used) / sizeof(used[0]); i++) {
        tg_usage_qty_t u = {"tokens", used[i]};
        tg_quote_t qa, qb;
        build_ok(&a, &u, 1, 1, &qa);
        build_ok(&b, &u, 1, 1, &qb);
        assert_int_equal(qa.total, M(want[i]));
        assert_int_equal(qb.total, qa.total);
        tg_quote_free(&qa);
        tg_quote_free(&qb);
    }
    /* 100,001 tokens: one billable token, 0.001 exact, rounded to 0.00 on its line */
    tg_usage_qty_t u = {"tokens", 100001};
    tg_quote_t q;
    build_ok(&a, &u, 1, 1, &q);
    const tg_line_t *l = line_of(&q, TG_LINE_USAGE, "tokens");
    assert_non_null(l);
    assert_int_equal(l->used, 100001);
    assert_int_equal(l->included, 100000);
    assert_int_equal(l->quantity, 1);
    assert_int_equal(l->exact, M("0.001"));
    assert_int_equal(l->amount, 0);
    tg_quote_free(&q);
}

static void test_lago_graduated(void **state) /* [L1] */
{
    (void)state;
    tg_tier_t t[] = {{100, M("1"), 0}, {200, M("0.5"), 0}, {INF, M("0.1"), 0}};
    tg_charge_t c = tiered(TG_MODEL_GRADUATED, t, 3);
    assert_int_equal(price(&c, 0), 0);
    assert_int_equal(price(&c, 1), M("1"));
    assert_int_equal(price(&c, 99), M("99"));
    assert_int_equal(price(&c, 100), M("100"));
    assert_int_equal(price(&c, 101), M("100.5"));
    assert_int_equal(price(&c, 199), M("149.5"));
    assert_int_equal(price(&c, 200), M("150"));
    assert_int_equal(price(&c, 201), M("150.1"));
    assert_int_equal(price(&c, 250), M("155"));
    tg_tier_part_t parts[4];
    size_t np;
    tg_money_t v;
    tg_err_t err;
    assert_int_equal(tg_price_charge(&c, 250, &v, parts, 4, &np, &err), 0);
    assert_int_equal(np, 3);
    assert_int_equal(parts[1].from, 101);
    assert_int_equal(parts[1].to, 200);
    assert_int_equal(parts[2].from, 201);
    assert_int_equal(parts[2].to, 250);
    assert_int_equal(parts[2].quantity, 50);
    assert_int_equal(parts[2].amount, M("5"));
}

static void test_lago_graduated_flat_fees(void **state) /* [L2] */
{
    (void)state;
    tg_tier_t t[] = {{1000, M("0.01"), M("200")}, {10000, M("0.02"), M("300")}, {INF, M("0.03"), M("400")}};
    tg_charge_t c = tiered(TG_MODEL_GRADUATED, t, 3);
    assert_int_equal(price(&c, 500), M("205"));                   /* first transaction */
    assert_int_equal(price(&c, 1050) - price(&c, 500), M("306")); /* second: enters tier 2 */
    assert_int_equal(price(&c, 5050) - price(&c, 1050), M("80")); /* third: inside tier 2 */
    /* flat fees once per tier entered, at the first unit of the tier, never again */
    assert_int_equal(price(&c, 1), M("200.01"));
    assert_int_equal(price(&c, 1000), M("210"));
    assert_int_equal(price(&c, 1001), M("510.02"));
    assert_int_equal(price(&c, 10000), M("690"));
    assert_int_equal(price(&c, 10001), M("1090.03"));
    assert_int_equal(price(&c, 10002), M("1090.06"));
}

static void test_lago_volume(void **state) /* [L3] */
{
    (void)state;
    tg_tier_t t[] = {{10000, M("0.0010"), M("10")},
                     {50000, M("0.0008"), M("10")},
                     {100000, M("0.0006"), M("10")},
                     {INF, M("0.0004"), M("10")}};
    tg_charge_t c = tiered(TG_MODEL_VOLUME, t, 4);
    assert_int_equal(price(&c, 65000), M("49"));
    assert_int_equal(price(&c, 0), 0); /* no tier entered: not even the flat fee */
    assert_int_equal(price(&c, 1), M("10.001"));
    assert_int_equal(price(&c, 10000), M("20")); /* bound inclusive: still tier 1 */
    assert_int_equal(price(&c, 10001), M("18.0008"));
    assert_int_equal(price(&c, 100000), M("70"));
    assert_int_equal(price(&c, 100001), M("50.0004"));
    assert_int_equal(price(&c, 1000000), M("410"));
    tg_tier_part_t part;
    size_t np;
    tg_money_t v;
    tg_err_t err;
    assert_int_equal(tg_price_charge(&c, 65000, &v, &part, 1, &np, &err), 0);
    assert_int_equal(np, 1);
    assert_int_equal(part.from, 1);
    assert_int_equal(part.to, 65000);
    assert_int_equal(part.quantity, 65000);
    assert_int_equal(part.unit_price, M("0.0006"));
    assert_int_equal(part.flat_price, M("10"));
    assert_int_equal(part.amount, M("49"));
}

static void test_lago_package(void **state) /* [L4] */
{
    (void)state;
    tg_charge_t c = {
        .metric = "api_calls", .model = TG_MODEL_PACKAGE, .package_size = 100, .package_price = M("5"), .round_up = 1};
    tg_allowance_t inc = {"api_calls", 100}; /* "offer the first 100 units" */
    tg_plan_t p = plan_usd("api", "0");
    p.charges = &c;
    p.ncharges = 1;
    p.included = &inc;
    p.nincluded = 1;
    tg_usage_qty_t u = {"api_calls", 201};
    tg_quote_t q;
    build_ok(&p, &u, 1, 0, &q);
    assert_int_equal(q.nlines, 1);
    assert_int_equal(q.lines[0].quantity, 101);
    assert_int_equal(q.lines[0].amount, M("10"));
    assert_int_equal(q.lines[0].unit_price, M("5"));
    assert_int_equal(q.lines[0].nparts, 1);
    assert_int_equal(q.lines[0].parts[0].quantity, 2); /* packages */
    assert_int_equal(q.lines[0].parts[0].to, 200);     /* the units two packages cover */
    assert_int_equal(q.total, M("10"));
    tg_quote_free(&q);
}

static void test_package_edges(void **state)
{
    (void)state;
    tg_charge_t up = {
        .metric = "x", .model = TG_MODEL_PACKAGE, .package_size = 100, .package_price = M("5"), .round_up = 1};
    tg_charge_t down = up;
    down.round_up = 0;
    assert_int_equal(price(&up, 0), 0);
    assert_int_equal(price(&up, 1), M("5"));
    assert_int_equal(price(&up, 99), M("5"));
    assert_int_equal(price(&up, 100), M("5"));
    assert_int_equal(price(&up, 101), M("10"));
    assert_int_equal(price(&up, 200), M("10"));
    assert_int_equal(price(&down, 0), 0);
    assert_int_equal(price(&down, 99), 0);
    assert_int_equal(price(&down, 100), M("5"));
    assert_int_equal(price(&down, 199), M("5"));
    assert_int_equal(price(&down, 200), M("10"));
    /* rounded down to nothing: no breakdown either */
    size_t np = 7;
    tg_money_t v;
    tg_err_t err;
    assert_int_equal(tg_price_charge(&down, 99, &v, NULL, 0, &np, &err), 0);
    assert_int_equal(np, 0);
    /* size 1 is per unit */
    tg_charge_t one = {
        .metric = "x", .model = TG_MODEL_PACKAGE, .package_size = 1, .package_price = M("0.25"), .round_up = 1};
    assert_int_equal(price(&one, 7), M("1.75"));
    /* the covered-units figure saturates instead of wrapping; the amount stays exact */
    tg_charge_t big = {
        .metric = "x", .model = TG_MODEL_PACKAGE, .package_size = UINT64_C(1) << 63, .package_price = 1, .round_up = 1};
    tg_tier_part_t part;
    assert_int_equal(tg_price_charge(&big, UINT64_MAX, &v, &part, 1, &np, &err), 0);
    assert_int_equal(v, 2);
    assert_int_equal(part.quantity, 2);
    assert_int_equal(part.to, UINT64_MAX);
}

/* ---- edges ---- */

static void test_zero_quantity_every_model(void **state)
{
    (void)state;
    tg_tier_t t[] = {{10, M("1"), M("100")}, {INF, M("0.5"), M("50")}};
    tg_charge_t cs[] = {
        {.metric = "a", .model = TG_MODEL_PER_UNIT, .unit_price = M("3")},
        tiered(TG_MODEL_GRADUATED, t, 2),
        tiered(TG_MODEL_VOLUME, t, 2),
        {.metric = "d", .model = TG_MODEL_PACKAGE, .package_size = 10, .package_price = M("4"), .round_up = 1},
    };
    for (size_t i = 0; i < 4; i++) {
        tg_money_t v = -1;
        size_t np = 9;
        tg_tier_part_t parts[2];
        tg_err_t err;
        assert_int_equal(tg_price_charge(&cs[i], 0, &v, parts, 2, &np, &err), 0);
        assert_int_equal(v, 0);
        assert_int_equal(np, 0);
    }
}

static void test_tier_boundaries(void **state)
{
    (void)state;
    tg_tier_t t[] = {
        {10, M("0.9"), M("1")}, {100, M("0.5"), M("2")}, {1000, M("0.25"), M("3")}, {INF, M("0.1"), M("4")}};
    tg_charge_t g = tiered(TG_MODEL_GRADUATED, t, 4), v = tiered(TG_MODEL_VOLUME, t, 4);
    for (size_t i = 0; i < 3; i++) {
        uint64_t b = t[i].up_to;
        /* graduated: the last unit of a tier costs its price; the next one the next tier's price
         * plus the next tier's flat fee, entered there */
        assert_int_equal(price(&g, b) - price(&g, b - 1), t[i].unit_price);
        assert_int_equal(price(&g, b + 1) - price(&g, b), t[i + 1].unit_price + t[i + 1].flat_price);
        assert_int_equal(price(&g, b + 2) - price(&g, b + 1), t[i + 1].unit_price);
        /* volume: b is still in tier i, b + 1 in tier i + 1 */
        assert_int_equal(price(&v, b - 1), (tg_money_t)(b - 1) * t[i].unit_price + t[i].flat_price);
        assert_int_equal(price(&v, b), (tg_money_t)b * t[i].unit_price + t[i].flat_price);
        assert_int_equal(price(&v, b + 1), (tg_money_t)(b + 1) * t[i + 1].unit_price + t[i + 1].flat_price);
    }
    /* a single unbounded tier */
    tg_tier_t one[] = {{INF, M("0.2"), M("1")}};
    tg_charge_t g1 = tiered(TG_MODEL_GRADUATED, one, 1), v1 = tiered(TG_MODEL_VOLUME, one, 1);
    assert_int_equal(price(&g1, 1), M("1.2"));
    assert_int_equal(price(&v1, 1), M("1.2"));
    assert_int_equal(price(&g1, 10), M("3"));
    /* a tier of exactly one unit */
    tg_tier_t tight[] = {{1, M("10"), 0}, {2, M("5"), 0}, {INF, M("1"), 0}};
    tg_charge_t gt = tiered(TG_MODEL_GRADUATED, tight, 3), vt = tiered(TG_MODEL_VOLUME, tight, 3);
    assert_int_equal(price(&gt, 1), M("10"));
    assert_int_equal(price(&gt, 2), M("15"));
    assert_int_equal(price(&gt, 3), M("16"));
    assert_int_equal(price(&vt, 2), M("10"));
    assert_int_equal(price(&vt, 3), M("3"));
}

/* Huge quantities with tiny unit prices stay exact: 10^15 tokens at 0.000000125. */
static void test_huge_quantities(void **state)
{
    (void)state;
    const uint64_t q = UINT64_C(1000000000000000);
    tg_charge_t tok = {.metric = "tokens", .model = TG_MODEL_PER_UNIT, .unit_price = M("0.000000125")};
    assert_int_equal(price(&tok, q), M("125000000"));
    assert_int_equal(price(&tok, q + 1), M("125000000.000000125"));
    assert_int_equal(price(&tok, 1), 125);
    /* graduated over 10^15: the first 10^12 at 0.000000125, the rest at 0.0000001 */
    tg_tier_t t[] = {{UINT64_C(1000000000000), M("0.000000125"), 0}, {INF, M("0.0000001"), 0}};
    tg_charge_t g = tiered(TG_MODEL_GRADUATED, t, 2), v = tiered(TG_MODEL_VOLUME, t, 2);
    assert_int_equal(price(&g, q), M("100025000"));
    assert_int_equal(price(&v, q), M("100000000"));
    /* a free unbounded tier prices any count, even UINT64_MAX */
    tg_tier_t free_tail[] = {{1000, M("0.01"), 0}, {INF, 0, 0}};
    tg_charge_t f = tiered(TG_MODEL_GRADUATED, free_tail, 2);
    assert_int_equal(price(&f, UINT64_MAX), M("10"));
    /* in a quote, 10^15 used with 10^12 included */
    tg_allowance_t inc = {"tokens", UINT64_C(1000000000000)};
    tg_plan_t p = plan_usd("llm", "0");
    p.charges = &tok;
    p.ncharges = 1;
    p.included = &inc;
    p.nincluded = 1;
    tg_usage_qty_t u = {"tokens", q};
    tg_quote_t qt;
    build_ok(&p, &u, 1, 0, &qt);
    assert_int_equal(qt.lines[0].quantity, q - UINT64_C(1000000000000));
    assert_int_equal(qt.total, M("124875000"));
    tg_quote_free(&qt);
}

static void test_invalid_charges(void **state)
{
    (void)state;
    tg_err_t err;
    tg_tier_t unordered[] = {{100, 1, 0}, {50, 1, 0}, {INF, 1, 0}};
    tg_tier_t equal[] = {{100, 1, 0}, {100, 1, 0}, {INF, 1, 0}};
    tg_tier_t bounded[] = {{100, 1, 0}, {200, 1, 0}};
    tg_tier_t zero[] = {{0, 1, 0}, {INF, 1, 0}};
    tg_tier_t negative[] = {{10, 1, -1}, {INF, 1, 0}};
    tg_charge_t cs[] = {
        tiered(TG_MODEL_GRADUATED, NULL, 0),
        tiered(TG_MODEL_VOLUME, unordered, 3),
        tiered(TG_MODEL_GRADUATED, equal, 3),
        tiered(TG_MODEL_GRADUATED, bounded, 2), /* units past 200 would be priced by nobody */
        tiered(TG_MODEL_VOLUME, bounded, 2),
        tiered(TG_MODEL_GRADUATED, zero, 2),
        tiered(TG_MODEL_GRADUATED, negative, 2),
        {.metric = "p", .model = TG_MODEL_PACKAGE, .package_size = 0, .package_price = 1},
        {.metric = "p", .model = TG_MODEL_PACKAGE, .package_size = 10, .package_price = -1},
        {.metric = "u", .model = TG_MODEL_PER_UNIT, .unit_price = -1},
        {.metric = "m", .model = (tg_price_model_t)42},
    };
    for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
        /* checked whatever the quantity, so a bad plan fails on its first quote, not its 201st unit */
        if (price_rc(&cs[i], 0, &err) != TG_EINVAL || price_rc(&cs[i], 150, &err) != TG_EINVAL)
            fail_msg("charge %zu should be TG_EINVAL", i);
        assert_true(err.msg[0] != '\0');
    }
}

/* A parts array that is too small still gets a correct price; *nparts says how many parts the
 * whole breakdown has, and nothing is written past maxparts. */
static void test_parts_capacity(void **state)
{
    (void)state;
    tg_tier_t t[] = {{1, M("1"), 0}, {2, M("1"), 0}, {3, M("1"), 0}, {INF, M("1"), 0}};
    tg_charge_t g = tiered(TG_MODEL_GRADUATED, t, 4);
    tg_tier_part_t parts[3];
    memset(parts, 0xAB, sizeof(parts));
    size_t np;
    tg_money_t v;
    tg_err_t err;
    assert_int_equal(tg_price_charge(&g, 10, &v, parts, 2, &np, &err), 0);
    assert_int_equal(v, M("10"));
    assert_int_equal(np, 4);
    assert_int_equal(parts[1].to, 2);
    assert_int_equal(parts[2].from, UINT64_C(0xABABABABABABABAB)); /* untouched */
    assert_int_equal(tg_price_charge(&g, 10, &v, NULL, 0, &np, &err), 0);
    assert_int_equal(np, 4);
    assert_int_equal(tg_price_charge(&g, 10, &v, NULL, 0, NULL, &err), 0);
    assert_int_equal(v, M("10"));
}

/* ---- properties ---- */

static uint64_t rng_state = UINT64_C(0x9E3779B97F4A7C15);

static uint64_t rnd(uint64_t n) /* xorshift64*, uniform enough in [0, n) for tests */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (rng_state * UINT64_C(2685821657736338717)) % n;
}

/* The definition, unit by unit: unit u is priced by the first tier with u <= up_to, and a tier's
 * flat fee is added at its first unit. */
static tg_money_t reference_graduated(const tg_tier_t *t, size_t n, uint64_t q)
{
    tg_money_t sum = 0;
    size_t cur = SIZE_MAX;
    for (uint64_t u = 1; u <= q; u++) {
        size_t i = 0;
        while (u > t[i].up_to)
            i++;
        if (i != cur) {
            sum += t[i].flat_price;
            cur = i;
        }
        sum += t[i].unit_price;
    }
    (void)n;
    return sum;
}

static size_t random_tiers(tg_tier_t *t, int flats, int nonincreasing)
{
    size_t n = 1 + (size_t)rnd(6);
    uint64_t up = 0;
    tg_money_t unit = (tg_money_t)rnd(5000) * 1000000; /* 0 .. 4.999 in steps of 0.001 */
    for (size_t i = 0; i < n; i++) {
        up += 1 + rnd(40);
        t[i].up_to = i + 1 == n ? INF : up;
        if (nonincreasing)
            unit = unit > 0 ? unit - (tg_money_t)rnd((uint64_t)unit + 1) : 0;
        else
            unit = (tg_money_t)rnd(5000) * 1000000 + (tg_money_t)rnd(1000); /* nano digits too */
        t[i].unit_price = unit;
        t[i].flat_price = flats && rnd(2) ? (tg_money_t)rnd(100000) * 100000 : 0;
    }
    return n;
}

/* Asserted for random tier tables (flat fees or not, any unit prices >= 0) and q = 0..300:
 *  - graduated(q) equals the unit-by-unit definition;
 *  - graduated(q) >= 0 and graduated(q + 1) >= graduated(q) (monotone non-decreasing);
 *  - its breakdown covers 1..q contiguously, and the parts' amounts add up to the price;
 *  - volume(q) = q x unit + flat of the one tier containing q, and graduated(0) = volume(0) = 0.
 * And for tables with no flat fees and non-increasing unit prices (a volume discount):
 *  - volume(q) <= graduated(q): under volume every unit costs the price of q's tier, which is the
 *    lowest price any of the q units gets under graduated. */
static void test_properties_random_tables(void **state)
{
    (void)state;
    for (int table = 0; table < 200; table++) {
        tg_tier_t t[8];
        int discount = table % 2 == 1;
        size_t n = random_tiers(t, !discount, discount);
        tg_charge_t g = tiered(TG_MODEL_GRADUATED, t, n), v = tiered(TG_MODEL_VOLUME, t, n);
        tg_money_t prev = 0;
        for (uint64_t q = 0; q <= 300; q++) {
            tg_tier_part_t parts[8];
            size_t np;
            tg_money_t pg, pv;
            tg_err_t err;
            assert_int_equal(tg_price_charge(&g, q, &pg, parts, 8, &np, &err), 0);
            assert_int_equal(pg, reference_graduated(t, n, q));
            assert_true(pg >= 0);
            assert_true(pg >= prev);
            prev = pg;
            uint64_t next = 1;
            tg_money_t sum = 0;
            for (size_t k = 0; k < np; k++) {
                assert_int_equal(parts[k].from, next);
                assert_int_equal(parts[k].quantity, parts[k].to - parts[k].from + 1);
                assert_int_equal(parts[k].amount,
                                 parts[k].unit_price * (tg_money_t)parts[k].quantity + parts[k].flat_price);
                sum += parts[k].amount;
                next = parts[k].to + 1;
            }
            assert_int_equal(next - 1, q);
            assert_int_equal(sum, pg);

            pv = price(&v, q);
            if (q == 0) {
                assert_int_equal(pv, 0);
                continue;
            }
            size_t i = 0;
            while (q > t[i].up_to)
                i++;
            assert_int_equal(pv, (tg_money_t)q * t[i].unit_price + t[i].flat_price);
            if (discount)
                assert_true(pv <= pg);
        }
    }
}

/* per_unit is linear, and equals graduated and volume with one unbounded tier of the same price
 * and no flat fee; package (rounded up) never charges less than the per-unit share of its price
 * and less than one package more than it. */
static void test_properties_linear_and_package(void **state)
{
    (void)state;
    for (int k = 0; k < 100; k++) {
        tg_money_t unit = (tg_money_t)rnd(UINT64_C(10000000000));
        tg_charge_t pu = {.metric = "x", .model = TG_MODEL_PER_UNIT, .unit_price = unit};
        tg_tier_t one[] = {{INF, unit, 0}};
        tg_charge_t g = tiered(TG_MODEL_GRADUATED, one, 1), v = tiered(TG_MODEL_VOLUME, one, 1);
        uint64_t a = rnd(1000000), b = rnd(1000000);
        assert_int_equal(price(&pu, a + b), price(&pu, a) + price(&pu, b));
        assert_int_equal(price(&g, a), price(&pu, a));
        assert_int_equal(price(&v, a), price(&pu, a));

        uint64_t size = 1 + rnd(1000);
        tg_money_t pp = 1 + (tg_money_t)rnd(UINT64_C(10000000000));
        tg_charge_t pk = {
            .metric = "x", .model = TG_MODEL_PACKAGE, .package_size = size, .package_price = pp, .round_up = 1};
        tg_charge_t pd = pk;
        pd.round_up = 0;
        __int128 share = (__int128)pp * a; /* per-unit share x size, compared without division */
        assert_true((__int128)price(&pk, a) * size >= share);
        assert_true((__int128)price(&pk, a) * size < share + (__int128)pp * size);
        assert_true((__int128)price(&pd, a) * size <= share);
        assert_true(price(&pk, a) - price(&pd, a) == (a % size != 0 ? pp : 0));
    }
}

/* ---- quotes ---- */

static void test_quote_starter(void **state)
{
    (void)state;
    tg_charge_t ch = {.metric = "api_calls", .model = TG_MODEL_PER_UNIT, .unit_price = M("0.001")};
    tg_allowance_t inc = {"api_calls", 50000};
    tg_plan_t p = plan_usd("starter", "49");
    p.name = "Starter";
    p.charges = &ch;
    p.ncharges = 1;
    p.included = &inc;
    p.nincluded = 1;
    tg_usage_qty_t u = {"api_calls", 123456};
    tg_quote_t q;
    build_ok(&p, &u, 1, 1, &q);
    assert_int_equal(q.nlines, 2);
    assert_int_equal(q.lines[0].kind, TG_LINE_BASE);
    assert_string_equal(q.lines[0].description, "Starter plan, 1 month");
    assert_int_equal(q.lines[0].amount, M("49"));
    assert_int_equal(q.lines[1].kind, TG_LINE_USAGE);
    assert_string_equal(q.lines[1].metric, "api_calls");
    assert_string_equal(q.lines[1].description, "api_calls above 50000 included (per unit)");
    assert_int_equal(q.lines[1].used, 123456);
    assert_int_equal(q.lines[1].included, 50000);
    assert_int_equal(q.lines[1].quantity, 73456);
    assert_int_equal(q.lines[1].unit_price, M("0.001"));
    assert_int_equal(q.lines[1].exact, M("73.456"));
    assert_int_equal(q.lines[1].amount, M("73.46")); /* rounded once, half up */
    assert_int_equal(q.usage_total, M("73.46"));
    assert_int_equal(q.total, M("122.46"));
    tg_quote_free(&q);
    tg_quote_free(&q); /* harmless twice */

    /* a trial period: no base fee line */
    build_ok(&p, &u, 1, 0, &q);
    assert_int_equal(q.nlines, 1);
    assert_int_equal(q.total, M("73.46"));
    tg_quote_free(&q);
    /* a yearly plan says so */
    p.interval = TG_INTERVAL_YEAR;
    build_ok(&p, NULL, 0, 1, &q);
    assert_string_equal(q.lines[0].description, "Starter plan, 1 year");
    tg_quote_free(&q);
}

static void test_quote_allowances_and_usage(void **state)
{
    (void)state;
    tg_charge_t ch[] = {{.metric = "api_calls", .model = TG_MODEL_PER_UNIT, .unit_price = M("0.01")},
                        {.metric = "images", .model = TG_MODEL_PER_UNIT, .unit_price = M("0.1")},
                        {.metric = "tokens", .model = TG_MODEL_PER_UNIT, .unit_price = M("1")}};
    /* api_calls: 100 included; images: no entry (nothing included); tokens: unlimited */
    tg_allowance_t inc[] = {{"api_calls", 100}, {"tokens", TG_UNLIMITED}};
    tg_plan_t p = plan_usd("p", "0");
    p.charges = ch;
    p.ncharges = 3;
    p.included = inc;
    p.nincluded = 2;
    struct {
        uint64_t calls, images, tokens;
        uint64_t bill_calls, bill_images;
    } cases[] = {{0, 0, 0, 0, 0}, {99, 1, 5, 0, 1}, {100, 0, 0, 0, 0}, {101, 0, 0, 1, 0}, {250, 7, 1000000, 150, 7}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tg_usage_qty_t u[] = {{"api_calls", cases[i].calls},
                              {"images", cases[i].images},
                              {"tokens", cases[i].tokens},
                              {"unpriced", 999999}};
        tg_quote_t q;
        build_ok(&p, u, 4, 1, &q);
        assert_int_equal(q.nlines, 4); /* base + one line per charge; "unpriced" appears nowhere */
        const tg_line_t *lc = line_of(&q, TG_LINE_USAGE, "api_calls"), *li = line_of(&q, TG_LINE_USAGE, "images"),
                        *lt = line_of(&q, TG_LINE_USAGE, "tokens");
        assert_non_null(lc);
        assert_non_null(li);
        assert_non_null(lt);
        assert_null(line_of(&q, TG_LINE_USAGE, "unpriced"));
        assert_int_equal(lc->quantity, cases[i].bill_calls);
        assert_int_equal(li->quantity, cases[i].bill_images);
        assert_int_equal(li->included, 0);
        assert_int_equal(lt->quantity, 0);
        assert_int_equal(lt->included, TG_UNLIMITED);
        assert_int_equal(lt->used, cases[i].tokens);
        assert_int_equal(q.total,
                         (tg_money_t)cases[i].bill_calls * M("0.01") + (tg_money_t)cases[i].bill_images * M("0.1"));
        tg_quote_free(&q);
    }
    /* no usage at all: every charge still has its (zero) line */
    tg_quote_t q;
    build_ok(&p, NULL, 0, 0, &q);
    assert_int_equal(q.nlines, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(q.lines[i].kind, TG_LINE_USAGE);
        assert_int_equal(q.lines[i].used, 0);
        assert_int_equal(q.lines[i].amount, 0);
    }
    assert_string_equal(q.lines[1].description, "images (per unit)");
    assert_string_equal(q.lines[2].description, "tokens, unlimited included (per unit)");
    tg_quote_free(&q);
    /* entries of one metric add up */
    tg_usage_qty_t dup[] = {{"images", 3}, {"images", 4}, {NULL, 5}};
    build_ok(&p, dup, 3, 0, &q);
    assert_int_equal(line_of(&q, TG_LINE_USAGE, "images")->used, 7);
    assert_int_equal(q.total, M("0.7"));
    tg_quote_free(&q);
}

static void test_rounding_per_line(void **state)
{
    (void)state;
    /* 0.005 rounds to 0.01 on its line; two such lines make 0.02, where rounding the sum of the
     * exact amounts (0.010) would have made 0.01: totals are sums of rounded lines */
    tg_charge_t two[] = {{.metric = "a", .model = TG_MODEL_PER_UNIT, .unit_price = M("0.005")},
                         {.metric = "b", .model = TG_MODEL_PER_UNIT, .unit_price = M("0.005")}};
    tg_plan_t p = plan_usd("r", "0");
    p.charges = two;
    p.ncharges = 2;
    tg_usage_qty_t u[] = {{"a", 1}, {"b", 1}};
    tg_quote_t q;
    build_ok(&p, u, 2, 1, &q);
    assert_int_equal(q.lines[1].exact, M("0.005"));
    assert_int_equal(q.lines[1].amount, M("0.01"));
    assert_int_equal(q.lines[2].amount, M("0.01"));
    assert_int_equal(q.total, M("0.02"));
    tg_quote_free(&q);
    /* just under half rounds down */
    two[0].unit_price = M("0.004999999");
    build_ok(&p, u, 2, 0, &q);
    assert_int_equal(q.lines[0].amount, 0);
    assert_int_equal(q.total, M("0.01"));
    tg_quote_free(&q);

    /* JPY has no minor unit: 3 x 0.15 = 0.45 -> 0, 4 x 0.15 = 0.60 -> 1, 0.5 -> 1 */
    tg_charge_t yen = {.metric = "api_calls", .model = TG_MODEL_PER_UNIT, .unit_price = M("0.15")};
    tg_plan_t j = plan_usd("jp", "5000");
    memcpy(j.currency, "jpy", 4);
    j.currency_digits = 0;
    j.charges = &yen;
    j.ncharges = 1;
    const uint64_t used[] = {3, 4, 10};
    const char *want[] = {"0", "1", "2"}; /* 1.5 -> 2 */
    for (size_t i = 0; i < 3; i++) {
        tg_usage_qty_t uj = {"api_calls", used[i]};
        build_ok(&j, &uj, 1, 1, &q);
        assert_int_equal(q.lines[1].amount, M(want[i]));
        assert_int_equal(q.total, M("5000") + M(want[i]));
        tg_quote_free(&q);
    }
    /* a base fee with more digits than the currency is rounded too (JPY 4999.5 -> 5000) */
    j.price = M("4999.5");
    build_ok(&j, NULL, 0, 1, &q);
    assert_int_equal(q.lines[0].exact, M("4999.5"));
    assert_int_equal(q.lines[0].amount, M("5000"));
    tg_quote_free(&q);

    /* KWD has three digits: 0.0005 -> 0.001 */
    tg_charge_t fils = {.metric = "x", .model = TG_MODEL_PER_UNIT, .unit_price = M("0.0005")};
    tg_plan_t k = plan_usd("kw", "0");
    memcpy(k.currency, "kwd", 4);
    k.currency_digits = 3;
    k.charges = &fils;
    k.ncharges = 1;
    tg_usage_qty_t uk = {"x", 1};
    build_ok(&k, &uk, 1, 0, &q);
    assert_int_equal(q.total, M("0.001"));
    tg_quote_free(&q);
}

/* Minimum and maximum bound the sum of the rounded usage lines (never the base fee), whether or
 * not the base fee is billed. */
static void test_minimum_and_maximum(void **state)
{
    (void)state;
    tg_charge_t ch[] = {{.metric = "a", .model = TG_MODEL_PER_UNIT, .unit_price = M("0.01")},
                        {.metric = "b", .model = TG_MODEL_PER_UNIT, .unit_price = M("0.001")}};
    tg_plan_t p = plan_usd("mm", "49");
    p.charges = ch;
    p.ncharges = 2;
    p.minimum = M("20");
    p.maximum = M("100");
    struct {
        uint64_t a, b;
        const char *usage;  /* sum of the rounded usage lines */
        const char *adjust; /* the adjustment line, or NULL for none */
    } cases[] = {
        {0, 0, "0", "20"},             /* no usage: the whole commitment */
        {500, 0, "5", "15"},           /* under: topped up to 20 */
        {1999, 0, "19.99", "0.01"},    /* a cent short */
        {1999, 5, "20", NULL},         /* 19.99 + 0.01 (0.005 rounded on its own line): exactly 20 */
        {2000, 0, "20", NULL},         /* exactly the minimum: no line */
        {5000, 0, "50", NULL},         /* between: nothing */
        {10000, 0, "100", NULL},       /* exactly the cap: no line */
        {10000, 5, "100.01", "-0.01"}, /* a cent above */
        {50000, 1000, "501", "-401"},  /* far above: capped at 100 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tg_usage_qty_t u[] = {{"a", cases[i].a}, {"b", cases[i].b}};
        for (int base = 0; base <= 1; base++) {
            tg_quote_t q;
            build_ok(&p, u, 2, base, &q);
            const tg_line_t *mn = line_of(&q, TG_LINE_MINIMUM, NULL), *mx = line_of(&q, TG_LINE_MAXIMUM, NULL);
            assert_int_equal(q.lines[base].amount + q.lines[base + 1].amount, M(cases[i].usage));
            if (cases[i].adjust == NULL) {
                assert_null(mn);
                assert_null(mx);
                assert_int_equal(q.nlines, (size_t)base + 2);
                assert_int_equal(q.usage_total, M(cases[i].usage));
            } else if (M(cases[i].adjust) > 0) {
                assert_non_null(mn);
                assert_null(mx);
                assert_int_equal(mn->amount, M(cases[i].adjust));
                assert_int_equal(mn->exact, mn->amount);
                assert_int_equal(q.usage_total, M("20"));
                assert_ptr_equal(&q.lines[q.nlines - 1], mn); /* after the usage lines */
            } else {
                assert_non_null(mx);
                assert_null(mn);
                assert_int_equal(mx->amount, M(cases[i].adjust));
                assert_int_equal(q.usage_total, M("100"));
                assert_ptr_equal(&q.lines[q.nlines - 1], mx);
            }
            assert_int_equal(q.total, q.usage_total + (base ? M("49") : 0)); /* the base fee is outside */
            tg_quote_free(&q);
        }
    }
    /* the base fee does not count toward the minimum */
    p.price = M("1000");
    tg_usage_qty_t u5[] = {{"a", 500}};
    tg_quote_t q;
    build_ok(&p, u5, 1, 1, &q);
    assert_int_equal(line_of(&q, TG_LINE_MINIMUM, NULL)->amount, M("15"));
    assert_int_equal(q.total, M("1020"));
    assert_string_equal(line_of(&q, TG_LINE_MINIMUM, NULL)->description, "Minimum commitment top-up (usage to 20.00)");
    tg_quote_free(&q);
    /* off-grid bounds are rounded to the minor unit first: 20.005 -> 20.01, 100.004 -> 100.00 */
    p.minimum = M("20.005");
    p.maximum = M("100.004");
    build_ok(&p, u5, 1, 0, &q);
    assert_int_equal(q.usage_total, M("20.01"));
    assert_int_equal(line_of(&q, TG_LINE_MINIMUM, NULL)->amount, M("15.01"));
    tg_quote_free(&q);
    tg_usage_qty_t u200[] = {{"a", 20000}};
    build_ok(&p, u200, 1, 0, &q);
    assert_int_equal(q.usage_total, M("100"));
    assert_int_equal(line_of(&q, TG_LINE_MAXIMUM, NULL)->amount, M("-100"));
    assert_string_equal(line_of(&q, TG_LINE_MAXIMUM, NULL)->description, "Usage charges capped at 100.00");
    tg_quote_free(&q);
    /* minimum only, maximum only */
    p.minimum = M("20");
    p.maximum = 0;
    build_ok(&p, u200, 1, 0, &q);
    assert_int_equal(q.total, M("200"));
    tg_quote_free(&q);
    p.minimum = 0;
    p.maximum = M("50");
    build_ok(&p, NULL, 0, 0, &q);
    assert_int_equal(q.total, 0);
    assert_int_equal(q.nlines, 2);
    tg_quote_free(&q);
}

static void test_invalid_plans(void **state)
{
    (void)state;
    tg_charge_t ch = {.metric = "a", .model = TG_MODEL_PER_UNIT, .unit_price = M("1")};
    tg_plan_t p = plan_usd("bad", "1");
    p.charges = &ch;
    p.ncharges = 1;
    tg_quote_t q;
    tg_err_t err;
    p.minimum = M("10");
    p.maximum = M("5");
    assert_int_equal(tg_quote_build(&p, NULL, 0, 1, &q, &err), TG_EINVAL);
    assert_non_null(strstr(err.msg, "minimum"));
    assert_null(q.lines);
    assert_int_equal(q.nlines, 0);
    tg_quote_free(&q); /* harmless on a failed quote */
    p.minimum = p.maximum = 0;
    p.currency_digits = 10;
    assert_int_equal(tg_quote_build(&p, NULL, 0, 1, &q, &err), TG_EINVAL);
    p.currency_digits = -1;
    assert_int_equal(tg_quote_build(&p, NULL, 0, 1, &q, &err), TG_EINVAL);
    p.currency_digits = 2;
    p.maximum = -1;
    assert_int_equal(tg_quote_build(&p, NULL, 0, 1, &q, &err), TG_EINVAL);
    p.maximum = 0;
    assert_int_equal(tg_quote_build(NULL, NULL, 0, 1, &q, &err), TG_EINVAL);
    /* a bad charge fails the quote with its message */
    tg_charge_t pk = {.metric = "a", .model = TG_MODEL_PACKAGE, .package_size = 0, .package_price = 1};
    p.charges = &pk;
    assert_int_equal(tg_quote_build(&p, NULL, 0, 1, &q, &err), TG_EINVAL);
    assert_non_null(strstr(err.msg, "package_size"));
    assert_null(q.lines);
    /* more tiers than a line can explain */
    tg_tier_t many[TG_MAX_TIER_PARTS + 1];
    for (size_t i = 0; i <= TG_MAX_TIER_PARTS; i++)
        many[i] = (tg_tier_t){i == TG_MAX_TIER_PARTS ? INF : i + 1, 1, 0};
    tg_charge_t g = {.metric = "a", .model = TG_MODEL_GRADUATED, .tiers = many, .ntiers = TG_MAX_TIER_PARTS + 1};
    p.charges = &g;
    assert_int_equal(tg_quote_build(&p, NULL, 0, 1, &q, &err), TG_EINVAL);
    /* exactly TG_MAX_TIER_PARTS tiers: every one explained */
    g.ntiers = TG_MAX_TIER_PARTS;
    many[TG_MAX_TIER_PARTS - 1].up_to = INF;
    tg_usage_qty_t u = {"a", 1000};
    build_ok(&p, &u, 1, 0, &q);
    assert_int_equal(q.lines[0].nparts, TG_MAX_TIER_PARTS);
    assert_int_equal(q.lines[0].parts[TG_MAX_TIER_PARTS - 1].to, 1000);
    tg_quote_free(&q);
}

static void test_overflow(void **state)
{
    (void)state;
    tg_err_t err;
    tg_money_t v;
    /* one charge */
    tg_charge_t big = {.metric = "x", .model = TG_MODEL_PER_UNIT, .unit_price = M("1000")};
    assert_int_equal(price_rc(&big, UINT64_MAX, &err), TG_ERANGE);
    assert_non_null(strstr(err.msg, "overflow"));
    assert_int_equal(price_rc(&big, UINT64_C(9223372), &err), 0);         /* 9,223,372,000 fits */
    assert_int_equal(price_rc(&big, UINT64_C(9223373), &err), TG_ERANGE); /* 9,223,373,000 does not */
    tg_tier_t flats[] = {{1, 0, M("5000000000")}, {INF, 0, M("5000000000")}};
    tg_charge_t g = tiered(TG_MODEL_GRADUATED, flats, 2);
    assert_int_equal(price_rc(&g, 1, &err), 0);
    assert_int_equal(price_rc(&g, 2, &err), TG_ERANGE); /* two flat fees of 5e9 */
    tg_charge_t vol = tiered(TG_MODEL_VOLUME, flats, 2);
    assert_int_equal(price_rc(&vol, 2, &err), 0);
    tg_tier_t unit_big[] = {{INF, M("1"), M("1")}};
    tg_charge_t vb = tiered(TG_MODEL_VOLUME, unit_big, 1);
    assert_int_equal(price_rc(&vb, UINT64_C(9223372036), &err), TG_ERANGE); /* q x 1 fits, + 1 flat does not */
    tg_charge_t pk = {
        .metric = "x", .model = TG_MODEL_PACKAGE, .package_size = 1, .package_price = M("1000000000"), .round_up = 1};
    assert_int_equal(price_rc(&pk, 10, &err), TG_ERANGE);
    assert_int_equal(tg_price_charge(&pk, 9, &v, NULL, 0, NULL, &err), 0);

    /* in quotes: the sum of usage lines, the total with the base fee, the rounding of a line and
     * the sum of usage counts each fail with TG_ERANGE and no lines */
    tg_charge_t two[] = {{.metric = "a", .model = TG_MODEL_PER_UNIT, .unit_price = M("5000000000")},
                         {.metric = "b", .model = TG_MODEL_PER_UNIT, .unit_price = M("5000000000")}};
    tg_plan_t p = plan_usd("o", "0");
    p.charges = two;
    p.ncharges = 2;
    tg_usage_qty_t u[] = {{"a", 1}, {"b", 1}};
    tg_quote_t q;
    assert_int_equal(tg_quote_build(&p, u, 2, 1, &q, &err), TG_ERANGE);
    assert_null(q.lines);
    p.ncharges = 1;
    p.price = M("5000000000");
    assert_int_equal(tg_quote_build(&p, u, 1, 0, &q, &err), 0); /* without the base fee it fits */
    tg_quote_free(&q);
    assert_int_equal(tg_quote_build(&p, u, 1, 1, &q, &err), TG_ERANGE);
    assert_non_null(strstr(err.msg, "total"));
    tg_charge_t edge = {.metric = "a", .model = TG_MODEL_PER_UNIT, .unit_price = INT64_MAX};
    p.charges = &edge;
    p.price = 0;
    p.currency_digits = 0; /* 9223372036.85... rounds up past INT64_MAX */
    assert_int_equal(tg_quote_build(&p, u, 1, 0, &q, &err), TG_ERANGE);
    p.currency_digits = 2; /* rounds down to 9223372036.85: fine */
    assert_int_equal(tg_quote_build(&p, u, 1, 0, &q, &err), 0);
    assert_int_equal(q.total, INT64_C(9223372036850000000));
    tg_quote_free(&q);
    tg_usage_qty_t wrap[] = {{"a", UINT64_MAX}, {"a", 1}};
    edge.unit_price = 0;
    assert_int_equal(tg_quote_build(&p, wrap, 2, 0, &q, &err), TG_ERANGE);
    assert_non_null(strstr(err.msg, "usage of a"));
}

/* ---- JSON ---- */

static void test_json(void **state)
{
    (void)state;
    tg_tier_t t[] = {{5, M("7"), 0}, {10, M("6.5"), M("1")}, {INF, M("6"), 0}};
    tg_charge_t ch[] = {{.metric = "api_calls", .model = TG_MODEL_PER_UNIT, .unit_price = M("0.001")},
                        {.metric = "fonts", .model = TG_MODEL_GRADUATED, .tiers = t, .ntiers = 3},
                        {.metric = "seats", .model = TG_MODEL_PER_UNIT, .unit_price = M("3")}};
    tg_allowance_t inc[] = {{"api_calls", 50000}, {"seats", TG_UNLIMITED}};
    tg_plan_t p = plan_usd("starter", "61.5");
    p.name = "Starter";
    p.charges = ch;
    p.ncharges = 3;
    p.included = inc;
    p.nincluded = 2;
    p.minimum = M("200");
    tg_usage_qty_t u[] = {{"api_calls", 123456}, {"fonts", 7}, {"seats", 4}};
    tg_quote_t q;
    build_ok(&p, u, 3, 1, &q);
    char *s = tg_quote_to_json(&q);
    assert_non_null(s);
    /* key order is part of the format */
    assert_true(strncmp(s, "{\"plan\":\"starter\",\"currency\":\"usd\",\"lines\":[", 44) == 0);
    assert_non_null(strstr(s, "{\"kind\":\"base_fee\",\"description\":\"Starter plan, 1 month\",\"metric\":null,"
                              "\"quantity\":1,\"amount\":\"61.50\"}"));
    json_error_t jerr;
    json_t *root = json_loads(s, 0, &jerr);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "plan")), "starter");
    assert_string_equal(json_string_value(json_object_get(root, "currency")), "usd");
    /* 61.50 + 73.46 + (35 + 2 x 6.5 + 1 = 49.00) + 0 + top-up to 200 (77.54) */
    assert_string_equal(json_string_value(json_object_get(root, "total")), "261.50");
    json_t *lines = json_object_get(root, "lines");
    assert_int_equal(json_array_size(lines), 5);
    json_t *api = json_array_get(lines, 1);
    assert_string_equal(json_string_value(json_object_get(api, "kind")), "usage");
    assert_string_equal(json_string_value(json_object_get(api, "metric")), "api_calls");
    assert_int_equal(json_integer_value(json_object_get(api, "quantity")), 73456);
    assert_int_equal(json_integer_value(json_object_get(api, "used")), 123456);
    assert_int_equal(json_integer_value(json_object_get(api, "included")), 50000);
    assert_string_equal(json_string_value(json_object_get(api, "amount")), "73.46");
    assert_string_equal(json_string_value(json_object_get(api, "exact")), "73.456");
    assert_null(json_object_get(api, "tiers"));
    json_t *fonts = json_array_get(lines, 2);
    assert_string_equal(json_string_value(json_object_get(fonts, "amount")), "49.00");
    json_t *tiers = json_object_get(fonts, "tiers");
    assert_int_equal(json_array_size(tiers), 2);
    json_t *t2 = json_array_get(tiers, 1);
    assert_int_equal(json_integer_value(json_object_get(t2, "from")), 6);
    assert_int_equal(json_integer_value(json_object_get(t2, "to")), 7);
    assert_int_equal(json_integer_value(json_object_get(t2, "quantity")), 2);
    assert_string_equal(json_string_value(json_object_get(t2, "unit_price")), "6.50");
    assert_string_equal(json_string_value(json_object_get(t2, "flat_price")), "1.00");
    assert_string_equal(json_string_value(json_object_get(t2, "amount")), "14.00");
    json_t *seats = json_array_get(lines, 3);
    assert_true(json_is_null(json_object_get(seats, "included")));
    json_t *mn = json_array_get(lines, 4);
    assert_string_equal(json_string_value(json_object_get(mn, "kind")), "minimum");
    assert_true(json_is_null(json_object_get(mn, "metric")));
    assert_string_equal(json_string_value(json_object_get(mn, "amount")), "77.54");
    assert_null(json_object_get(mn, "used"));
    json_decref(root);
    free(s);
    tg_quote_free(&q);

    /* JPY amounts have no decimals */
    memcpy(p.currency, "jpy", 4);
    p.currency_digits = 0;
    p.price = M("5000");
    p.ncharges = 0;
    p.minimum = 0;
    build_ok(&p, NULL, 0, 1, &q);
    s = tg_quote_to_json(&q);
    assert_non_null(strstr(s, "\"total\":\"5000\""));
    free(s);
    tg_quote_free(&q);

    /* a plan name long enough to be cut inside a UTF-8 character still gives valid JSON */
    char name[401];
    for (size_t i = 0; i < 200; i++)
        memcpy(name + 2 * i, "\xc3\xa9", 2); /* é */
    name[400] = '\0';
    p.name = name;
    build_ok(&p, NULL, 0, 1, &q);
    assert_int_equal(strlen(q.lines[0].description) % 2, 0); /* whole characters only */
    s = tg_quote_to_json(&q);
    assert_non_null(s);
    root = json_loads(s, 0, &jerr);
    assert_non_null(root);
    json_decref(root);
    free(s);
    tg_quote_free(&q);
    assert_null(tg_quote_to_json(NULL));
}

/* ---- proration ---- */

/* Seconds since the epoch of y-m-d h:00 UTC (Howard Hinnant's days-from-civil, written out here so
 * the test does not lean on period.c's copy). */
static int64_t civil(int year, int month, int day, int h)
{
    int y = year - (month <= 2);
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return ((int64_t)era * 146097 + doe - 719468) * 86400 + (int64_t)h * 3600;
}

/* remaining seconds of the period containing `now` for a subscription anchored at `anchor`,
 * prorated and rounded as an invoice line */
static tg_money_t prorated_line(const char *amount, int64_t anchor, tg_interval_t iv, int64_t now, int digits,
                                int64_t *period_len)
{
    int64_t s, e;
    tg_period_bounds(anchor, iv, now, &s, &e);
    *period_len = e - s;
    tg_money_t exact;
    assert_int_equal(tg_prorate(M(amount), e - now, e - s, &exact), 0);
    return tg_money_round(exact, digits);
}

/* ---- late usage (issue 16): tg_price_late_usage against a straightforward computation ---- */

/* What `used` units of c cost with `included` free, computed the plain way: unit by unit for
 * graduated tiers (each unit at its tier's price, each tier's flat fee once it is entered), the
 * one tier of the total for volume, whole packages for package; then rounded half away from
 * zero to cents, as one invoice line. */
static tg_money_t ref_line(const tg_charge_t *c, uint64_t included, uint64_t used)
{
    uint64_t q = used > included ? used - included : 0;
    tg_money_t exact = 0;
    switch (c->model) {
    case TG_MODEL_PER_UNIT:
        exact = c->unit_price * (tg_money_t)q;
        break;
    case TG_MODEL_PACKAGE: {
        uint64_t packs = q / c->package_size + (c->round_up && q % c->package_size != 0 ? 1 : 0);
        exact = c->package_price * (tg_money_t)packs;
        break;
    }
    case TG_MODEL_GRADUATED:
        for (uint64_t k = 1; k <= q; k++) {
            size_t t = 0;
            while (k > c->tiers[t].up_to)
                t++;
            exact += c->tiers[t].unit_price;
            if (k == 1 || k - 1 <= (t > 0 ? c->tiers[t - 1].up_to : 0))
                exact += c->tiers[t].flat_price; /* the first unit of this tier */
        }
        break;
    case TG_MODEL_VOLUME:
        if (q > 0) {
            size_t t = 0;
            while (q > c->tiers[t].up_to)
                t++;
            exact = c->tiers[t].unit_price * (tg_money_t)q + c->tiers[t].flat_price;
        }
        break;
    }
    const tg_money_t cent = 10000000; /* nano-units in a cent */
    tg_money_t whole = exact / cent, rest = exact % cent;
    return (whole + (rest * 2 >= cent ? 1 : 0)) * cent; /* exact >= 0 here */
}

static void late_matches_reference(const tg_charge_t *c, uint64_t included)
{
    tg_allowance_t inc = {c->metric, included};
    tg_plan_t p = plan_usd("late", "10");
    p.charges = (tg_charge_t *)c;
    p.ncharges = 1;
    p.included = &inc;
    p.nincluded = 1;
    p.minimum = M("1"); /* Stripe's metered prices have no minimum: not applied here */
    for (uint64_t invoiced = 0; invoiced <= 40; invoiced++)
        for (uint64_t late = 0; late <= 30; late++) {
            tg_money_t got = 1;
            tg_err_t err = {0};
            if (tg_price_late_usage(&p, c->metric, invoiced, late, &got, &err) != 0)
                fail_msg("late usage: %s", err.msg);
            tg_money_t want = ref_line(c, included, invoiced + late) - ref_line(c, included, invoiced);
            if (got != want)
                fail_msg("%s: %llu late after %llu invoiced (%llu included): %lld, the reference says %lld",
                         tg_price_model_name(c->model), (unsigned long long)late, (unsigned long long)invoiced,
                         (unsigned long long)included, (long long)got, (long long)want);
        }
}

static void test_late_usage_pricing(void **state)
{
    (void)state;
    tg_charge_t per_unit = {.metric = "calls", .model = TG_MODEL_PER_UNIT, .unit_price = M("0.004")};
    late_matches_reference(&per_unit, 0);
    late_matches_reference(&per_unit, 7);
    tg_tier_t tiers[] = {{5, M("0.013"), M("0.50")}, {12, M("0.007"), M("0.25")}, {TG_UNLIMITED, M("0.001"), 0}};
    tg_charge_t grad = {.metric = "calls", .model = TG_MODEL_GRADUATED, .tiers = tiers, .ntiers = 3};
    late_matches_reference(&grad, 0);
    late_matches_reference(&grad, 9);
    tg_charge_t vol = {.metric = "calls", .model = TG_MODEL_VOLUME, .tiers = tiers, .ntiers = 3};
    late_matches_reference(&vol, 0);
    late_matches_reference(&vol, 3);
    tg_charge_t pkg_up = {
        .metric = "calls", .model = TG_MODEL_PACKAGE, .package_size = 4, .package_price = M("1.005"), .round_up = 1};
    tg_charge_t pkg_down = pkg_up;
    pkg_down.round_up = 0;
    late_matches_reference(&pkg_up, 0);
    late_matches_reference(&pkg_up, 6);
    late_matches_reference(&pkg_down, 6);

    /* Worked by hand: graduated, 9 included, 10 invoiced (1 billable: tier 1's 0.013 + 0.50 =
     * 0.51 rounded), 6 late -> 7 billable: 5 x 0.013 + 0.50 + 2 x 0.007 + 0.25 = 0.829 -> 0.83:
     * the late line is 0.32. */
    tg_allowance_t inc = {"calls", 9};
    tg_plan_t p = plan_usd("late", "10");
    p.charges = &grad;
    p.ncharges = 1;
    p.included = &inc;
    p.nincluded = 1;
    tg_money_t a;
    tg_err_t err = {0};
    assert_int_equal(tg_price_late_usage(&p, "calls", 10, 6, &a, &err), 0);
    assert_int_equal(a, M("0.32"));
    /* volume: 12 units at 0.007 + 0.25 = 0.334; 13 at 0.001 = 0.013: one late unit is a credit */
    p.charges = &vol;
    p.nincluded = 0;
    assert_int_equal(tg_price_late_usage(&p, "calls", 12, 1, &a, &err), 0);
    assert_int_equal(a, M("0.01") - M("0.33"));
    /* a metric the plan does not price costs nothing; counts past 64 bits are refused */
    assert_int_equal(tg_price_late_usage(&p, "other", 0, 5, &a, &err), 0);
    assert_int_equal(a, 0);
    assert_int_equal(tg_price_late_usage(&p, "calls", UINT64_MAX, 1, &a, &err), TG_ERANGE);
    assert_int_equal(a, 0);
    assert_int_equal(tg_price_late_usage(NULL, "calls", 0, 1, &a, &err), TG_EINVAL);
}

/* ---- late usage on tollgate's own invoices: tg_price_late_in_period ---- */

/* What a period's usage under the plan of late_in_period_matches comes to, the plain way: each
 * charge's line (ref_line: `calls` priced by c with `included` free, `other` at 0.25 each), their
 * sum, then raised to the minimum or lowered to the cap (0: none). */
static tg_money_t ref_period(const tg_charge_t *c, uint64_t included, uint64_t calls, uint64_t other,
                             tg_money_t minimum, tg_money_t maximum)
{
    tg_money_t sum = ref_line(c, included, calls) + (tg_money_t)other * M("0.25");
    if (minimum > 0 && sum < minimum)
        return minimum;
    if (maximum > 0 && sum > maximum)
        return maximum;
    return sum;
}

static void late_in_period_matches(const tg_charge_t *c, uint64_t included)
{
    tg_charge_t ch[2] = {*c, {.metric = "other", .model = TG_MODEL_PER_UNIT, .unit_price = M("0.25")}};
    tg_allowance_t inc = {c->metric, included};
    tg_plan_t p = plan_usd("late", "10");
    p.charges = ch;
    p.ncharges = 2;
    p.included = &inc;
    p.nincluded = 1;
    const struct {
        const char *minimum, *maximum;
    } bounds[] = {{"0", "0"}, {"0.90", "0"}, {"0", "1.10"}, {"0.90", "1.10"}};
    for (size_t b = 0; b < sizeof(bounds) / sizeof(bounds[0]); b++) {
        p.minimum = M(bounds[b].minimum);
        p.maximum = M(bounds[b].maximum);
        for (uint64_t calls = 0; calls <= 30; calls++)
            for (uint64_t other = 0; other <= 5; other += 5)
                for (uint64_t late = 0; late <= 20; late++)
                    for (int which = 0; which < 4; which++) {
                        tg_usage_qty_t billed[] = {{"calls", calls}, {"other", other}};
                        const char *metric = which % 2 == 0 ? "calls" : "other";
                        int quoted = which >= 2;
                        tg_money_t got = 1;
                        tg_err_t err = {0};
                        if (tg_price_late_in_period(&p, billed, 2, quoted, metric, late, &got, &err) != 0)
                            fail_msg("late usage: %s", err.msg);
                        /* what the period's invoice billed: its usage topped up or capped when it
                         * had usage or was billed at its minimum without any (quoted); nothing
                         * when it had no quote of this plan */
                        tg_money_t before = calls + other > 0 || quoted
                                                ? ref_period(c, included, calls, other, p.minimum, p.maximum)
                                                : 0;
                        tg_money_t want = ref_period(c, included, calls + (which % 2 == 0 ? late : 0),
                                                     other + (which % 2 == 1 ? late : 0), p.minimum, p.maximum) -
                                          before;
                        if (got != want)
                            fail_msg("%s, minimum %s, maximum %s%s: %llu late %s after %llu calls and %llu other "
                                     "(%llu included): %lld, the reference says %lld",
                                     tg_price_model_name(c->model), bounds[b].minimum, bounds[b].maximum,
                                     quoted ? ", quoted" : "", (unsigned long long)late, metric,
                                     (unsigned long long)calls, (unsigned long long)other,
                                     (unsigned long long)included, (long long)got, (long long)want);
                    }
    }
}

static void test_late_in_period_pricing(void **state)
{
    (void)state;
    tg_charge_t per_unit = {.metric = "calls", .model = TG_MODEL_PER_UNIT, .unit_price = M("0.004")};
    late_in_period_matches(&per_unit, 0);
    late_in_period_matches(&per_unit, 7);
    tg_tier_t tiers[] = {{5, M("0.013"), M("0.50")}, {12, M("0.007"), M("0.25")}, {TG_UNLIMITED, M("0.001"), 0}};
    tg_charge_t grad = {.metric = "calls", .model = TG_MODEL_GRADUATED, .tiers = tiers, .ntiers = 3};
    late_in_period_matches(&grad, 0);
    late_in_period_matches(&grad, 9);
    tg_charge_t vol = {.metric = "calls", .model = TG_MODEL_VOLUME, .tiers = tiers, .ntiers = 3};
    late_in_period_matches(&vol, 3);
    tg_charge_t pkg = {
        .metric = "calls", .model = TG_MODEL_PACKAGE, .package_size = 4, .package_price = M("0.105"), .round_up = 1};
    late_in_period_matches(&pkg, 6);
    pkg.round_up = 0;
    late_in_period_matches(&pkg, 0);

    /* The worked case of the review (issue 16): $1 a call, a $100 minimum, billed at it for $80
     * of usage. $10 late is still covered; $25 late takes usage to $105: $5. */
    tg_charge_t dollar = {.metric = "calls", .model = TG_MODEL_PER_UNIT, .unit_price = M("1")};
    tg_plan_t p = plan_usd("committed", "10");
    p.charges = &dollar;
    p.ncharges = 1;
    p.minimum = M("100");
    tg_usage_qty_t billed = {"calls", 80};
    tg_money_t a = 1;
    tg_err_t err = {0};
    assert_int_equal(tg_price_late_in_period(&p, &billed, 1, 0, "calls", 10, &a, &err), 0);
    assert_int_equal(a, 0);
    assert_int_equal(tg_price_late_in_period(&p, &billed, 1, 0, "calls", 25, &a, &err), 0);
    assert_int_equal(a, M("5"));
    /* nothing billed under the plan that period: the late usage is its whole quote, minimum too */
    assert_int_equal(tg_price_late_in_period(&p, NULL, 0, 0, "calls", 10, &a, &err), 0);
    assert_int_equal(a, M("100"));
    /* a period without usage billed at its $100 minimum all the same (quoted): $10 late is inside
     * it, $125 late is $25 above it, whether the store hands the metric at 0 or not at all */
    tg_usage_qty_t none = {"calls", 0};
    assert_int_equal(tg_price_late_in_period(&p, NULL, 0, 1, "calls", 10, &a, &err), 0);
    assert_int_equal(a, 0);
    assert_int_equal(tg_price_late_in_period(&p, &none, 1, 1, "calls", 10, &a, &err), 0);
    assert_int_equal(a, 0);
    assert_int_equal(tg_price_late_in_period(&p, &none, 1, 1, "calls", 125, &a, &err), 0);
    assert_int_equal(a, M("25"));
    /* quoted changes nothing once units were invoiced */
    assert_int_equal(tg_price_late_in_period(&p, &billed, 1, 1, "calls", 25, &a, &err), 0);
    assert_int_equal(a, M("5"));
    /* a cap of $100, billed $100 for $120: late usage adds nothing */
    p.minimum = 0;
    p.maximum = M("100");
    billed.used = 120;
    assert_int_equal(tg_price_late_in_period(&p, &billed, 1, 0, "calls", 30, &a, &err), 0);
    assert_int_equal(a, 0);
    /* two late lines of one period, one after the other: together what the period's total grows
     * by. $90 billed of a $100 cap; 5 late calls ($5), then 8 late images ($8): 5 + 5, not 5 + 8 */
    tg_charge_t two[] = {dollar, {.metric = "images", .model = TG_MODEL_PER_UNIT, .unit_price = M("1")}};
    p.charges = two;
    p.ncharges = 2;
    tg_usage_qty_t period[] = {{"calls", 60}, {"images", 30}};
    assert_int_equal(tg_price_late_in_period(&p, period, 2, 0, "calls", 5, &a, &err), 0);
    assert_int_equal(a, M("5"));
    period[0].used += 5;
    assert_int_equal(tg_price_late_in_period(&p, period, 2, 0, "images", 8, &a, &err), 0);
    assert_int_equal(a, M("5"));
    /* errors: counts past 64 bits, no plan, a malformed plan; *amount is 0 */
    period[0].used = UINT64_MAX;
    assert_int_equal(tg_price_late_in_period(&p, period, 2, 0, "calls", 1, &a, &err), TG_ERANGE);
    assert_int_equal(a, 0);
    assert_int_equal(tg_price_late_in_period(NULL, period, 2, 0, "calls", 1, &a, &err), TG_EINVAL);
    assert_int_equal(tg_price_late_in_period(&p, period, 2, 0, NULL, 1, &a, &err), TG_EINVAL);
    p.minimum = M("200"); /* above the maximum */
    period[0].used = 1;
    a = 1;
    assert_int_equal(tg_price_late_in_period(&p, period, 2, 0, "calls", 1, &a, &err), TG_EINVAL);
    assert_int_equal(a, 0);
}

/* Line kinds have fixed names, both ways. */
static void test_line_kind_names(void **state)
{
    (void)state;
    const char *names[] = {"base_fee", "usage", "minimum", "maximum", "proration", "credit", "late_usage", "item"};
    assert_int_equal(sizeof(names) / sizeof(names[0]), TG_LINE_KIND_COUNT);
    for (int k = 0; k < TG_LINE_KIND_COUNT; k++) {
        tg_line_kind_t back = TG_LINE_KIND_COUNT;
        assert_string_equal(tg_line_kind_name((tg_line_kind_t)k), names[k]);
        assert_int_equal(tg_line_kind_parse(names[k], &back), 0);
        assert_int_equal(back, k);
    }
    tg_line_kind_t untouched = TG_LINE_ITEM;
    assert_int_equal(tg_line_kind_parse("late", &untouched), TG_EINVAL);
    assert_int_equal(tg_line_kind_parse("Usage", &untouched), TG_EINVAL);
    assert_int_equal(tg_line_kind_parse(NULL, &untouched), TG_EINVAL);
    assert_int_equal(untouched, TG_LINE_ITEM);
    assert_string_equal(tg_line_kind_name((tg_line_kind_t)TG_LINE_KIND_COUNT), "");
}

static void test_proration(void **state)
{
    (void)state;
    tg_money_t out;
    int64_t len;
    /* Anchored Jan 31 2026: the first period ends Feb 28 (28 days). Half of it left: 24.50. */
    int64_t jan31 = civil(2026, 1, 31, 10);
    assert_int_equal(prorated_line("49", jan31, TG_INTERVAL_MONTH, civil(2026, 2, 14, 10), 2, &len), M("24.5"));
    assert_int_equal(len, 28 * 86400);
    /* Mar 1: the period Feb 28 -> Mar 31 has 31 days, 30 left: 49 x 30/31 = 47.419354838... */
    assert_int_equal(tg_prorate(M("49"), 30 * 86400, 31 * 86400, &out), 0);
    assert_int_equal(out, M("47.419354839"));
    assert_int_equal(prorated_line("49", jan31, TG_INTERVAL_MONTH, civil(2026, 3, 1, 10), 2, &len), M("47.42"));
    assert_int_equal(len, 31 * 86400);
    /* Leap February 2028: the period Jan 31 -> Feb 29 has 29 days; 10 left: 16.896551724 */
    assert_int_equal(prorated_line("49", jan31, TG_INTERVAL_MONTH, civil(2028, 2, 19, 10), 2, &len), M("16.9"));
    assert_int_equal(len, 29 * 86400);
    assert_int_equal(tg_prorate(M("49"), 10 * 86400, 29 * 86400, &out), 0);
    assert_int_equal(out, M("16.896551724"));
    /* Yearly from Feb 29 2024: the first year has 365 days (to Feb 28 2025); on Aug 29 2024,
     * 183 are left: 199 x 183/365 = 99.772602740 */
    int64_t feb29 = civil(2024, 2, 29, 0);
    assert_int_equal(prorated_line("199", feb29, TG_INTERVAL_YEAR, civil(2024, 8, 29, 0), 2, &len), M("99.77"));
    assert_int_equal(len, 365 * 86400);
    assert_int_equal(tg_prorate(M("199"), 183 * 86400, 365 * 86400, &out), 0);
    assert_int_equal(out, M("99.77260274"));
    /* ...and the year from Feb 28 2027 to Feb 29 2028 has 366 */
    assert_int_equal(prorated_line("199", feb29, TG_INTERVAL_YEAR, civil(2027, 3, 1, 0), 2, &len), M("198.46"));
    assert_int_equal(len, 366 * 86400);
    /* JPY rounds the prorated line to whole yen */
    assert_int_equal(prorated_line("5000", jan31, TG_INTERVAL_MONTH, civil(2026, 3, 1, 10), 0, &len), M("4839"));

    /* whole, none, half a nano-unit (away from zero), invalid */
    assert_int_equal(tg_prorate(M("49"), 86400, 86400, &out), 0);
    assert_int_equal(out, M("49"));
    assert_int_equal(tg_prorate(M("49"), 0, 86400, &out), 0);
    assert_int_equal(out, 0);
    assert_int_equal(tg_prorate(1, 1, 2, &out), 0);
    assert_int_equal(out, 1);
    assert_int_equal(tg_prorate(-1, 1, 2, &out), 0);
    assert_int_equal(out, -1);
    assert_int_equal(tg_prorate(INT64_MAX, 31 * 86400 - 1, 31 * 86400, &out), 0); /* 128-bit product */
    assert_true(out < INT64_MAX && out > INT64_MAX - INT64_C(4000000000000));
    assert_int_equal(tg_prorate(M("49"), 30 * 86400, 29 * 86400, &out), TG_EINVAL);
    assert_int_equal(tg_prorate(M("49"), -1, 29 * 86400, &out), TG_EINVAL);
    assert_int_equal(tg_prorate(M("49"), 0, 0, &out), TG_EINVAL);
    /* the used part and the remaining part add up to the whole within a nano-unit */
    for (int64_t r = 0; r <= 31 * 86400; r += 7919) {
        tg_money_t a, b;
        assert_int_equal(tg_prorate(M("49.99"), r, 31 * 86400, &a), 0);
        assert_int_equal(tg_prorate(M("49.99"), 31 * 86400 - r, 31 * 86400, &b), 0);
        assert_true(a + b - M("49.99") <= 1 && a + b - M("49.99") >= -1);
    }
}

/* ---- the CLI ---- */

static char cfg_path[64];

static const char cli_yaml[] = "upstream: {url: \"http://127.0.0.1:9000\"}\n"
                               "admin: {token: \"0123456789abcdef0123\"}\n"
                               "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"
                               "plans:\n"
                               "  starter:\n"
                               "    name: Starter\n"
                               "    price: \"49\"\n"
                               "    currency: usd\n"
                               "    included: {api_calls: 50000}\n"
                               "    on_quota: bill\n"
                               "    charges:\n"
                               "      - {metric: api_calls, model: per_unit, unit_price: \"0.001\"}\n"
                               "  fonts:\n"
                               "    name: Typographic\n"
                               "    price: \"10\"\n"
                               "    currency: eur\n"
                               "    minimum: \"50\"\n"
                               "    charges:\n"
                               "      - metric: fonts\n"
                               "        model: graduated\n"
                               "        tiers:\n"
                               "          - {up_to: 5, unit_price: \"7\"}\n"
                               "          - {up_to: 10, unit_price: \"6.5\"}\n"
                               "          - {up_to: inf, unit_price: \"6\"}\n"
                               "      - {metric: gb, model: package, package_size: 100, package_price: \"5\"}\n";

static int setup_cli(void **state)
{
    (void)state;
    snprintf(cfg_path, sizeof(cfg_path), "/tmp/tg_quote_XXXXXX");
    int fd = mkstemp(cfg_path);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, cli_yaml, sizeof(cli_yaml) - 1);
    close(fd);
    return n == (ssize_t)(sizeof(cli_yaml) - 1) ? 0 : -1;
}

static int teardown_cli(void **state)
{
    (void)state;
    unlink(cfg_path);
    return 0;
}

static char out_buf[16384], err_buf[16384];

static void slurp(FILE *f, char *buf, size_t cap)
{
    fflush(f);
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Runs tg_cmd_quote with stdout and stderr captured into out_buf and err_buf. */
static int run_quote(int argc, const char **argv)
{
    FILE *fo = tmpfile(), *fe = tmpfile();
    assert_non_null(fo);
    assert_non_null(fe);
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    dup2(fileno(fo), 1);
    dup2(fileno(fe), 2);
    int rc = tg_cmd_quote(argc, (char **)argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    slurp(fo, out_buf, sizeof(out_buf));
    slurp(fe, err_buf, sizeof(err_buf));
    return rc;
}

#define RUN(...)                                                                                                       \
    ({                                                                                                                 \
        const char *argv_[] = {"quote", __VA_ARGS__, NULL};                                                            \
        run_quote((int)(sizeof(argv_) / sizeof(argv_[0])) - 1, argv_);                                                 \
    })

static void test_cli_human(void **state)
{
    (void)state;
    assert_int_equal(RUN("-c", cfg_path, "--plan", "starter", "--usage", "api_calls=123456"), 0);
    assert_string_equal(err_buf, "");
    assert_non_null(strstr(out_buf, "Starter (starter), per month, in USD\n"));
    assert_non_null(strstr(out_buf, "Starter plan, 1 month"));
    assert_non_null(strstr(out_buf, " $49.00\n"));
    assert_non_null(strstr(out_buf, "api_calls above 50000 included (per unit)"));
    assert_non_null(strstr(out_buf, " $73.46\n"));
    assert_non_null(strstr(out_buf, "123456 used, 50000 included, 73456 billable x 0.001 = 73.456\n"));
    const char *total = strstr(out_buf, "  Total ");
    assert_non_null(total);
    assert_non_null(strstr(total, " $122.46\n"));
    /* --trial drops the base fee */
    assert_int_equal(RUN("-c", cfg_path, "--plan", "starter", "--usage", "api_calls=123456", "--trial"), 0);
    assert_null(strstr(out_buf, "Starter plan"));
    assert_non_null(strstr(strstr(out_buf, "  Total "), " $73.46\n"));

    /* tiers, packages and the minimum, in EUR */
    assert_int_equal(RUN("-c", cfg_path, "-p", "fonts", "-u", "fonts=20", "-u", "gb=101"), 0);
    assert_non_null(strstr(out_buf, "units 1-5: 5 x 7.00 = 35.00\n"));
    assert_non_null(strstr(out_buf, "units 6-10: 5 x 6.50 = 32.50\n"));
    assert_non_null(strstr(out_buf, "units 11-20: 10 x 6.00 = 60.00\n"));
    assert_non_null(strstr(out_buf, "2 packages of 100 x 5.00 = 10.00\n"));
    assert_null(strstr(out_buf, "Minimum")); /* 137.50 of usage is above 50 */
    assert_non_null(strstr(strstr(out_buf, "  Total "), " €147.50\n"));
    assert_int_equal(RUN("-c", cfg_path, "-p", "fonts", "-u", "fonts=1"), 0);
    assert_non_null(strstr(out_buf, "      unit 1: 1 x 7.00 = 7.00\n"));
    assert_non_null(strstr(out_buf, "Minimum commitment top-up (usage to 50.00)"));
    assert_non_null(strstr(out_buf, " €43.00\n"));
    assert_non_null(strstr(strstr(out_buf, "  Total "), " €60.00\n"));
}

static void test_cli_json(void **state)
{
    (void)state;
    assert_int_equal(RUN("-c", cfg_path, "--plan", "starter", "--usage", "api_calls=100000", "--usage",
                         "api_calls=23456", "--usage", "images=10", "--json"),
                     0);
    json_error_t jerr;
    json_t *root = json_loads(out_buf, 0, &jerr);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "total")), "122.46");
    assert_int_equal(json_array_size(json_object_get(root, "lines")), 2); /* images has no charge */
    json_decref(root);
}

static void test_cli_errors(void **state)
{
    (void)state;
    assert_int_equal(RUN("--help"), 0);
    assert_non_null(strstr(out_buf, "usage: tollgate quote"));
    assert_string_equal(err_buf, "");
    /* usage errors: 2, message on stderr, nothing on stdout */
    const char *bad_usage[] = {"api_calls",
                               "=5",
                               "api_calls=",
                               "api_calls=abc",
                               "api_calls=-5",
                               "api_calls= 5",
                               "api_calls=5x",
                               "api_calls=18446744073709551616",
                               "a_metric_name_that_is_far_too_long_for_any_line_of_an_invoice_0123456789=1"};
    for (size_t i = 0; i < sizeof(bad_usage) / sizeof(bad_usage[0]); i++) {
        if (RUN("-c", cfg_path, "--plan", "starter", "--usage", bad_usage[i]) != 2)
            fail_msg("--usage %s should be a usage error; stderr: %s", bad_usage[i], err_buf);
        assert_string_equal(out_buf, "");
        assert_non_null(strstr(err_buf, "tollgate quote: "));
    }
    assert_int_equal(RUN("-c", cfg_path), 2);
    assert_non_null(strstr(err_buf, "required"));
    assert_int_equal(RUN("--plan", "starter"), 2);
    assert_int_equal(RUN("-c", cfg_path, "--plan", "starter", "--bogus"), 2);
    assert_non_null(strstr(err_buf, "unknown option --bogus"));
    assert_int_equal(RUN("-c", cfg_path, "--plan"), 2);
    assert_non_null(strstr(err_buf, "needs a value"));
    assert_int_equal(RUN("-c", cfg_path, "--plan", "starter", "extra"), 2);
    assert_non_null(strstr(err_buf, "unexpected argument \"extra\""));
    /* configuration errors: 1 */
    assert_int_equal(RUN("-c", "/nonexistent/tollgate.yaml", "--plan", "starter"), 1);
    assert_string_equal(out_buf, "");
    assert_true(err_buf[0] != '\0');
    assert_int_equal(RUN("-c", cfg_path, "--plan", "platinum"), 1);
    assert_non_null(strstr(err_buf, "no plan \"platinum\""));
    /* pricing errors: 1. UINT64_MAX parses, but that many calls at 0.001 overflow the money range;
     * one more call overflows the count itself */
    assert_int_equal(RUN("-c", cfg_path, "--plan", "starter", "--usage", "api_calls=18446744073709551615"), 1);
    assert_string_equal(out_buf, "");
    assert_non_null(strstr(err_buf, "overflow the money range"));
    assert_int_equal(
        RUN("-c", cfg_path, "--plan", "starter", "--usage", "api_calls=18446744073709551615", "--usage", "api_calls=1"),
        1);
    assert_non_null(strstr(err_buf, "overflows a 64-bit count"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stripe_volume),
        cmocka_unit_test(test_stripe_graduated),
        cmocka_unit_test(test_stripe_fixed_fee_and_overage),
        cmocka_unit_test(test_lago_graduated),
        cmocka_unit_test(test_lago_graduated_flat_fees),
        cmocka_unit_test(test_lago_volume),
        cmocka_unit_test(test_lago_package),
        cmocka_unit_test(test_package_edges),
        cmocka_unit_test(test_zero_quantity_every_model),
        cmocka_unit_test(test_tier_boundaries),
        cmocka_unit_test(test_huge_quantities),
        cmocka_unit_test(test_invalid_charges),
        cmocka_unit_test(test_parts_capacity),
        cmocka_unit_test(test_properties_random_tables),
        cmocka_unit_test(test_properties_linear_and_package),
        cmocka_unit_test(test_quote_starter),
        cmocka_unit_test(test_quote_allowances_and_usage),
        cmocka_unit_test(test_rounding_per_line),
        cmocka_unit_test(test_minimum_and_maximum),
        cmocka_unit_test(test_invalid_plans),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_late_usage_pricing),
        cmocka_unit_test(test_late_in_period_pricing),
        cmocka_unit_test(test_line_kind_names),
        cmocka_unit_test(test_proration),
        cmocka_unit_test_setup_teardown(test_cli_human, setup_cli, teardown_cli),
        cmocka_unit_test_setup_teardown(test_cli_json, setup_cli, teardown_cli),
        cmocka_unit_test_setup_teardown(test_cli_errors, setup_cli, teardown_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
