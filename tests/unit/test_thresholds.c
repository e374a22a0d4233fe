/* test_thresholds.c - the crossing function that the gateway runs on every call that reserves
 * units of a metric with an allowance (notify/thresholds.h), the configuration of thresholds
 * (notifications.usage_thresholds, plans.<p>.notify_thresholds, their FILE:LINE errors), and
 * the budget amounts (notify/budget.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "notify/budget.h"
#include "notify/thresholds.h"

static const tg_thresholds_cfg_t defaults = {{80, 100, 120}, 3, 0};

static void crossed_once_each(void **state)
{
    (void)state;
    /* 1000 included: levels at 800, 1000 and 1200 units */
    assert_int_equal(tg_thresholds_crossed(0, 799, 1000, &defaults), 0);
    assert_int_equal(tg_thresholds_crossed(799, 800, 1000, &defaults), 1);  /* exactly 80 % */
    assert_int_equal(tg_thresholds_crossed(800, 801, 1000, &defaults), 0);  /* past it: not again */
    assert_int_equal(tg_thresholds_crossed(999, 1000, 1000, &defaults), 2);
    assert_int_equal(tg_thresholds_crossed(1199, 1200, 1000, &defaults), 4);
    assert_int_equal(tg_thresholds_crossed(1200, 5000, 1000, &defaults), 0);
    /* one call of many units crosses several levels */
    assert_int_equal(tg_thresholds_crossed(10, 1100, 1000, &defaults), 3);
    assert_int_equal(tg_thresholds_crossed(0, UINT64_MAX, 1000, &defaults), 7);
    /* walking one unit at a time, each level is crossed by exactly one step */
    unsigned seen = 0;
    for (uint64_t u = 0; u < 1500; u++) {
        unsigned m = tg_thresholds_crossed(u, u + 1, 1000, &defaults);
        assert_int_equal(seen & m, 0);
        seen |= m;
    }
    assert_int_equal(seen, 7);
}

static void crossed_edges(void **state)
{
    (void)state;
    /* nothing without a finite allowance, nor when the counter did not grow */
    assert_int_equal(tg_thresholds_crossed(0, 100, TG_UNLIMITED, &defaults), 0);
    assert_int_equal(tg_thresholds_crossed(0, 100, 0, &defaults), 0);
    assert_int_equal(tg_thresholds_crossed(900, 900, 1000, &defaults), 0);
    assert_int_equal(tg_thresholds_crossed(900, 100, 1000, &defaults), 0);
    tg_thresholds_cfg_t none = {{0}, 0, 1};
    assert_int_equal(tg_thresholds_crossed(0, 5000, 1000, &none), 0);
    /* levels that are not whole units: 80 % of 3 is 2.4, reached at 3 units, not at 2 */
    assert_int_equal(tg_thresholds_crossed(1, 2, 3, &defaults), 0);
    assert_int_equal(tg_thresholds_crossed(2, 3, 3, &defaults), 3); /* 80 % and 100 % */
    /* no overflow with the largest allowances: 80 % of 2^63 */
    uint64_t big = UINT64_C(1) << 63;
    uint64_t level = (uint64_t)(((unsigned __int128)big * 4 + 4) / 5); /* ceil(0.8 x 2^63) */
    assert_int_equal(tg_thresholds_crossed(level - 2, level - 1, big, &defaults), 0);
    assert_int_equal(tg_thresholds_crossed(level - 1, level, big, &defaults), 1);
    assert_int_equal(tg_thresholds_reached(UINT64_MAX, UINT64_MAX - 1, &defaults), 3);
    tg_thresholds_cfg_t high = {{1, 1000}, 2, 1};
    assert_int_equal(tg_thresholds_reached(10, 1000, &high), 1);
    assert_int_equal(tg_thresholds_reached(10000, 1000, &high), 3);
}

#define BASE                                                                                                           \
    "server: {listen: \"127.0.0.1:8080\", admin_listen: \"127.0.0.1:8081\"}\n"                                      \
    "upstream: {url: \"http://127.0.0.1:9000\"}\n"                                                                     \
    "storage: {database: \"sqlite:/tmp/x.db\"}\n"                                                                      \
    "admin: {token: \"0123456789abcdef0123\"}\n"                                                                       \
    "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"

static char errbuf[8192];

static void config_defaults_and_overrides(void **state)
{
    (void)state;
    const char *y = BASE "notifications: {usage_thresholds: [50, 90], trial_will_end_days: 7}\n"
                         "plans:\n"
                         "  a: {included: {api_calls: 10}}\n"
                         "  b: {included: {api_calls: 10}, notify_thresholds: [100]}\n"
                         "  c: {included: {api_calls: 10}, notify_thresholds: []}\n";
    tg_config_t *cfg = NULL;
    assert_int_equal(tg_config_load_string("t.yaml", y, strlen(y), &cfg, errbuf, sizeof(errbuf)), 0);
    assert_int_equal(cfg->notifications.trial_will_end_days, 7);
    const tg_plan_t *a = tg_config_find_plan(cfg, "a"), *b = tg_config_find_plan(cfg, "b"),
                    *c = tg_config_find_plan(cfg, "c");
    assert_int_equal(a->notify_thresholds.n, 2);
    assert_int_equal(a->notify_thresholds.pct[0], 50);
    assert_int_equal(a->notify_thresholds.pct[1], 90);
    assert_int_equal(b->notify_thresholds.n, 1);
    assert_int_equal(b->notify_thresholds.pct[0], 100);
    assert_int_equal(c->notify_thresholds.n, 0); /* [] turns them off for that plan */
    tg_config_free(cfg);

    y = BASE "plans: {p: {}}\n";
    assert_int_equal(tg_config_load_string("t.yaml", y, strlen(y), &cfg, errbuf, sizeof(errbuf)), 0);
    assert_int_equal(cfg->notifications.trial_will_end_days, 3);
    const tg_plan_t *p = tg_config_find_plan(cfg, "p");
    assert_int_equal(p->notify_thresholds.n, 3);
    assert_int_equal(p->notify_thresholds.pct[0], 80);
    assert_int_equal(p->notify_thresholds.pct[2], 120);
    tg_config_free(cfg);
}

static void config_errors(void **state)
{
    (void)state;
    const char *y = BASE "notifications:\n"
                         "  usage_thresholds: [80, 80]\n"
                         "plans:\n"
                         "  a: {notify_thresholds: [0]}\n"
                         "  b: {notify_thresholds: [1001]}\n"
                         "  c: {notify_thresholds: [100, 50]}\n"
                         "  d: {notify_thresholds: [1, 2, 3, 4, 5, 6, 7, 8, 9]}\n"
                         "  e: {notify_thresholds: [\"x\"]}\n";
    tg_config_t *cfg = NULL;
    assert_int_equal(tg_config_load_string("t.yaml", y, strlen(y), &cfg, errbuf, sizeof(errbuf)), TG_ECONFIG);
    assert_null(cfg);
    assert_non_null(strstr(errbuf, "t.yaml:7: notifications.usage_thresholds[1]: 80 is not above the threshold before it"));
    assert_non_null(strstr(errbuf, "t.yaml:9: plans.a.notify_thresholds[0]: \"0\" is not a whole number from 1 to 1000"));
    assert_non_null(strstr(errbuf, "t.yaml:10: plans.b.notify_thresholds[0]: \"1001\" is not a whole number from 1 to 1000"));
    assert_non_null(strstr(errbuf, "t.yaml:11: plans.c.notify_thresholds[1]: 50 is not above the threshold before it"));
    assert_non_null(strstr(errbuf, "t.yaml:12: plans.d.notify_thresholds: at most 8 percentages (found 9)"));
    assert_non_null(strstr(errbuf, "t.yaml:13: plans.e.notify_thresholds[0]: \"x\" is not a whole number from 1 to 1000"));
    y = BASE "notifications: {trial_will_end_days: 366}\nplans: {p: {}}\n";
    assert_int_equal(tg_config_load_string("t.yaml", y, strlen(y), &cfg, errbuf, sizeof(errbuf)), TG_ECONFIG);
    assert_non_null(strstr(errbuf, "t.yaml:6: notifications.trial_will_end_days:"));
}

static void budget_amounts(void **state)
{
    (void)state;
    tg_plan_t usd = {.currency = "usd", .currency_digits = 2}, jpy = {.currency = "jpy", .currency_digits = 0};
    tg_money_t v;
    tg_err_t err = {0};
    assert_int_equal(tg_budget_parse(&usd, "50", &v, &err), 0);
    assert_int_equal(v, 50 * TG_MONEY_SCALE);
    assert_int_equal(tg_budget_parse(&usd, "50.25", &v, &err), 0);
    assert_int_equal(v, 5025 * (TG_MONEY_SCALE / 100));
    assert_int_equal(tg_budget_parse(&usd, "50.255", &v, &err), TG_EINVAL); /* below a cent */
    assert_int_equal(tg_budget_parse(&jpy, "5000.5", &v, &err), TG_EINVAL);
    assert_int_equal(tg_budget_parse(&jpy, "5000", &v, &err), 0);
    assert_int_equal(tg_budget_parse(&usd, "0", &v, &err), TG_EINVAL);
    assert_int_equal(tg_budget_parse(&usd, "-5", &v, &err), TG_EINVAL);
    assert_int_equal(tg_budget_parse(&usd, "1e3", &v, &err), TG_EINVAL);
    assert_int_equal(tg_budget_parse(&usd, "", &v, &err), TG_EINVAL);
    assert_int_equal(tg_budget_parse(&usd, "1000000001", &v, &err), TG_ERANGE);
    assert_int_equal(tg_budget_parse(&usd, "99999999999999", &v, &err), TG_ERANGE);
}

/* The portal's minor units: 4950 cents is exactly "49.50", both ways; the bounds of the text form. */
static void budget_minor_units(void **state)
{
    (void)state;
    tg_plan_t usd = {.currency = "usd", .currency_digits = 2}, jpy = {.currency = "jpy", .currency_digits = 0},
              kwd = {.currency = "kwd", .currency_digits = 3};
    tg_money_t v, t;
    tg_err_t err = {0};
    assert_int_equal(tg_budget_from_minor(&usd, 4950, &v, &err), 0);
    assert_int_equal(tg_budget_parse(&usd, "49.50", &t, &err), 0);
    assert_int_equal(v, t);
    assert_int_equal(tg_budget_minor(&usd, v), 4950);
    /* 0.29 * 100 is 28.999999999999996 in binary floating point: here it is 29 */
    assert_int_equal(tg_budget_from_minor(&usd, 29, &v, &err), 0);
    assert_int_equal(tg_budget_parse(&usd, "0.29", &t, &err), 0);
    assert_int_equal(v, t);
    assert_int_equal(tg_budget_from_minor(&jpy, 5000, &v, &err), 0);
    assert_int_equal(v, 5000 * TG_MONEY_SCALE);
    assert_int_equal(tg_budget_minor(&jpy, v), 5000);
    assert_int_equal(tg_budget_from_minor(&kwd, 1250, &v, &err), 0);
    assert_int_equal(tg_budget_minor(&kwd, v), 1250);
    assert_int_equal(tg_budget_from_minor(&usd, 0, &v, &err), TG_EINVAL);
    assert_int_equal(tg_budget_from_minor(&usd, -1, &v, &err), TG_EINVAL);
    assert_int_equal(tg_budget_from_minor(&usd, INT64_C(100000000000), &v, &err), 0); /* a billion dollars */
    assert_int_equal(tg_budget_from_minor(&usd, INT64_C(100000000001), &v, &err), TG_ERANGE);
    assert_int_equal(tg_budget_from_minor(&usd, INT64_MAX, &v, &err), TG_ERANGE); /* no overflow */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crossed_once_each),
        cmocka_unit_test(crossed_edges),
        cmocka_unit_test(config_defaults_and_overrides),
        cmocka_unit_test(config_errors),
        cmocka_unit_test(budget_amounts),
        cmocka_unit_test(budget_minor_units),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
