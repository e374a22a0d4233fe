/* test_pricing.c - pricing models against documented worked examples, plus properties.
 *
 * Sources:
 *  - Lago, "Volume" charge model (getlago.com/docs/guide/plans/charges/charge-models/volume):
 *    tiers 0-10,000 at $0.0010, 10,001-50,000 at $0.0008, 50,001-100,000 at $0.0006,
 *    100,001+ at $0.0004, each with a $10 flat fee; 65,000 calls cost 65,000 x $0.0006 + $10 = $49.
 *  - Lago, "Graduated" charge model (.../charge-models/graduated): $1 per unit for the first 100,
 *    $0.50 for the next 100, then $0.10 per unit.
 *  - Lago, "Graduated percentage" (.../graduated-percentage): a tier's flat fee applies to the whole
 *    tier once it is entered (here with unit prices instead of percentages).
 *  - Stripe API, price tiers: "up_to: up to and including to this quantity will be contained in the
 *    tier"; "flat_amount: the flat billing amount for an entire tier, regardless of the number of
 *    units in the tier"; the last tier is up_to: inf. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "billing/pricing.h"

static tg_money_t M(const char *s)
{
    tg_money_t v = 0;
    tg_err_t err;
    assert_int_equal(tg_money_parse(s, strlen(s), &v, &err), 0);
    return v;
}

static tg_money_t price(const tg_charge_t *c, uint64_t q)
{
    tg_money_t v;
    tg_err_t err;
    assert_int_equal(tg_price_charge(c, q, &v, NULL, 0, NULL, &err), 0);
    return v;
}

static void test_lago_volume(void **state)
{
    (void)state;
    tg_tier_t tiers[] = {{10000, M("0.0010"), M("10")},
                         {50000, M("0.0008"), M("10")},
                         {100000, M("0.0006"), M("10")},
                         {TG_UNLIMITED, M("0.0004"), M("10")}};
    tg_charge_t c = {.metric = "api_calls", .model = TG_MODEL_VOLUME, .tiers = tiers, .ntiers = 4};
    assert_int_equal(price(&c, 65000), M("49"));
    assert_int_equal(price(&c, 0), 0);                                /* no tier entered */
    assert_int_equal(price(&c, 10000), M("20"));                      /* bound inclusive: tier 1 */
    assert_int_equal(price(&c, 10001), M("18.0008"));                 /* tier 2 */
    assert_int_equal(price(&c, 1000000), M("410"));                   /* last tier */
}

static void test_lago_graduated(void **state)
{
    (void)state;
    tg_tier_t tiers[] = {{100, M("1"), 0}, {200, M("0.5"), 0}, {TG_UNLIMITED, M("0.1"), 0}};
    tg_charge_t c = {.metric = "api_calls", .model = TG_MODEL_GRADUATED, .tiers = tiers, .ntiers = 3};
    assert_int_equal(price(&c, 0), 0);
    assert_int_equal(price(&c, 100), M("100"));
    assert_int_equal(price(&c, 101), M("100.5"));
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
    assert_int_equal(parts[2].quantity, 50);
    assert_int_equal(parts[2].amount, M("5"));
}

static void test_flat_fee_once_per_tier(void **state)
{
    (void)state;
    /* Lago's graduated-percentage tiers with unit prices: flat $200 / $300 / $400 per tier entered. */
    tg_tier_t tiers[] = {{1000, M("0.01"), M("200")}, {10000, M("0.02"), M("300")}, {TG_UNLIMITED, M("0.03"), M("400")}};
    tg_charge_t g = {.metric = "x", .model = TG_MODEL_GRADUATED, .tiers = tiers, .ntiers = 3};
    assert_int_equal(price(&g, 500), M("205"));                 /* 500 x 0.01 + 200 */
    assert_int_equal(price(&g, 1000), M("210"));
    assert_int_equal(price(&g, 1001), M("510.02"));             /* enters tier 2: + 300 once */
    assert_int_equal(price(&g, 10001), M("1090.03"));           /* 210 + 180 + 300 + 0.03 + 400 */
}

static void test_package(void **state)
{
    (void)state;
    tg_charge_t up = {.metric = "x", .model = TG_MODEL_PACKAGE, .package_size = 100, .package_price = M("5"), .round_up = 1};
    tg_charge_t down = up;
    down.round_up = 0;
    assert_int_equal(price(&up, 0), 0);
    assert_int_equal(price(&up, 1), M("5"));
    assert_int_equal(price(&up, 100), M("5"));
    assert_int_equal(price(&up, 101), M("10"));
    assert_int_equal(price(&down, 199), M("5"));
    assert_int_equal(price(&down, 99), 0);
}

static void test_per_unit_huge_and_overflow(void **state)
{
    (void)state;
    tg_charge_t tok = {.metric = "tokens", .model = TG_MODEL_PER_UNIT, .unit_price = M("0.000000125")};
    assert_int_equal(price(&tok, UINT64_C(1000000000000000)), M("125000000"));
    tg_charge_t big = {.metric = "x", .model = TG_MODEL_PER_UNIT, .unit_price = M("1000")};
    tg_money_t v;
    tg_err_t err;
    assert_int_equal(tg_price_charge(&big, UINT64_MAX, &v, NULL, 0, NULL, &err), TG_ERANGE);
    assert_non_null(strstr(err.msg, "overflow"));
}

/* Properties over many quantities: graduated is never negative and never decreases as quantity
 * grows; with no flat fees and non-increasing unit prices, volume pricing of q is at most the
 * graduated price of q (every unit at the cheapest rate reached). */
static void test_properties(void **state)
{
    (void)state;
    tg_tier_t tiers[] = {{10, M("0.9"), 0}, {100, M("0.5"), 0}, {1000, M("0.25"), 0}, {TG_UNLIMITED, M("0.1"), 0}};
    tg_charge_t g = {.metric = "x", .model = TG_MODEL_GRADUATED, .tiers = tiers, .ntiers = 4};
    tg_charge_t v = {.metric = "x", .model = TG_MODEL_VOLUME, .tiers = tiers, .ntiers = 4};
    tg_money_t prev = 0;
    for (uint64_t q = 0; q <= 5000; q++) {
        tg_money_t pg = price(&g, q), pv = price(&v, q);
        assert_true(pg >= 0);
        assert_true(pg >= prev);
        assert_true(pv <= pg);
        prev = pg;
    }
    /* boundaries +-1 */
    for (size_t i = 0; i < 3; i++) {
        uint64_t b = tiers[i].up_to;
        assert_int_equal(price(&g, b + 1) - price(&g, b), tiers[i + 1].unit_price);
        assert_int_equal(price(&g, b) - price(&g, b - 1), tiers[i].unit_price);
    }
}

static tg_plan_t starter(tg_charge_t *ch, tg_allowance_t *inc)
{
    tg_plan_t p;
    memset(&p, 0, sizeof(p));
    p.id = "starter";
    p.name = "Starter";
    p.price = M("49");
    memcpy(p.currency, "usd", 4);
    p.currency_digits = 2;
    p.included = inc;
    p.nincluded = 1;
    p.charges = ch;
    p.ncharges = 1;
    return p;
}

static void test_quote_lines_and_rounding(void **state)
{
    (void)state;
    tg_charge_t ch = {.metric = "api_calls", .model = TG_MODEL_PER_UNIT, .unit_price = M("0.001")};
    tg_allowance_t inc = {"api_calls", 50000};
    tg_plan_t p = starter(&ch, &inc);
    tg_usage_qty_t u = {"api_calls", 123456};
    tg_quote_t q;
    tg_err_t err;
    assert_int_equal(tg_quote_build(&p, &u, 1, 1, &q, &err), 0);
    assert_int_equal(q.nlines, 2);
    assert_int_equal(q.lines[1].quantity, 73456);
    assert_int_equal(q.lines[1].exact, M("73.456"));
    assert_int_equal(q.lines[1].amount, M("73.46")); /* rounded once, half up */
    assert_int_equal(q.total, M("122.46"));          /* the sum of rounded lines */
    char *json = tg_quote_to_json(&q);
    assert_non_null(strstr(json, "\"total\":\"122.46\""));
    assert_non_null(strstr(json, "\"amount\":\"73.46\""));
    free(json);
    tg_quote_free(&q);

    /* trial: no base fee; under the allowance: a zero usage line that still explains itself */
    u.used = 100;
    assert_int_equal(tg_quote_build(&p, &u, 1, 0, &q, &err), 0);
    assert_int_equal(q.nlines, 1);
    assert_int_equal(q.lines[0].quantity, 0);
    assert_int_equal(q.total, 0);
    tg_quote_free(&q);

    /* sum of rounded lines, not rounded sum: two lines of 0.005 each give 0.02, not 0.01 */
    tg_charge_t two[2] = {{.metric = "a", .model = TG_MODEL_PER_UNIT, .unit_price = M("0.005")},
                          {.metric = "b", .model = TG_MODEL_PER_UNIT, .unit_price = M("0.005")}};
    p.charges = two;
    p.ncharges = 2;
    p.nincluded = 0;
    p.price = 0;
    tg_usage_qty_t ub[2] = {{"a", 1}, {"b", 1}};
    assert_int_equal(tg_quote_build(&p, ub, 2, 1, &q, &err), 0);
    assert_int_equal(q.total, M("0.02"));
    tg_quote_free(&q);
}

static void test_minimum_and_maximum(void **state)
{
    (void)state;
    tg_charge_t ch = {.metric = "api_calls", .model = TG_MODEL_PER_UNIT, .unit_price = M("0.01")};
    tg_allowance_t inc = {"api_calls", 0};
    tg_plan_t p = starter(&ch, &inc);
    p.minimum = M("20");
    p.maximum = M("100");
    tg_usage_qty_t u = {"api_calls", 500}; /* 5.00 of usage */
    tg_quote_t q;
    tg_err_t err;
    assert_int_equal(tg_quote_build(&p, &u, 1, 1, &q, &err), 0);
    assert_int_equal(q.lines[q.nlines - 1].kind, TG_LINE_MINIMUM);
    assert_int_equal(q.lines[q.nlines - 1].amount, M("15"));
    assert_int_equal(q.usage_total, M("20"));
    assert_int_equal(q.total, M("69"));
    tg_quote_free(&q);
    u.used = 50000; /* 500.00 of usage, capped at 100 */
    assert_int_equal(tg_quote_build(&p, &u, 1, 1, &q, &err), 0);
    assert_int_equal(q.lines[q.nlines - 1].kind, TG_LINE_MAXIMUM);
    assert_int_equal(q.lines[q.nlines - 1].amount, M("-400"));
    assert_int_equal(q.total, M("149"));
    tg_quote_free(&q);
}

static void test_jpy_and_proration(void **state)
{
    (void)state;
    tg_charge_t ch = {.metric = "api_calls", .model = TG_MODEL_PER_UNIT, .unit_price = M("0.15")};
    tg_allowance_t inc = {"api_calls", 0};
    tg_plan_t p = starter(&ch, &inc);
    memcpy(p.currency, "jpy", 4);
    p.currency_digits = 0;
    p.price = M("5000");
    tg_usage_qty_t u = {"api_calls", 3};
    tg_quote_t q;
    tg_err_t err;
    assert_int_equal(tg_quote_build(&p, &u, 1, 1, &q, &err), 0);
    assert_int_equal(q.lines[1].amount, M("0")); /* 0.45 yen rounds to 0 */
    tg_quote_free(&q);
    u.used = 4;
    assert_int_equal(tg_quote_build(&p, &u, 1, 1, &q, &err), 0);
    assert_int_equal(q.lines[1].amount, M("1")); /* 0.60 yen rounds to 1 */
    assert_int_equal(q.total, M("5001"));
    tg_quote_free(&q);

    /* Proration by seconds: 49.00 with 10 of February 2028's 29 days left (a leap year). */
    tg_money_t out;
    assert_int_equal(tg_prorate(M("49"), 10 * 86400, 29 * 86400, &out), 0);
    assert_int_equal(out, M("16.896551724"));
    assert_int_equal(tg_prorate(M("49"), 0, 29 * 86400, &out), 0);
    assert_int_equal(out, 0);
    assert_int_equal(tg_prorate(M("49"), 30 * 86400, 29 * 86400, &out), TG_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lago_volume),           cmocka_unit_test(test_lago_graduated),
        cmocka_unit_test(test_flat_fee_once_per_tier), cmocka_unit_test(test_package),
        cmocka_unit_test(test_per_unit_huge_and_overflow), cmocka_unit_test(test_properties),
        cmocka_unit_test(test_quote_lines_and_rounding), cmocka_unit_test(test_minimum_and_maximum),
        cmocka_unit_test(test_jpy_and_proration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
