/* test_config.c - YAML configuration: values, defaults, FILE:LINE errors, matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "config/config.h"

#define BASE                                                                                                           \
    "upstream: {url: \"http://127.0.0.1:9000\"}\n"                                                                     \
    "admin: {token: \"0123456789abcdef0123\"}\n"                                                                       \
    "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"

static char errbuf[8192];

static tg_config_t *load_ok(const char *yaml)
{
    tg_config_t *cfg = NULL;
    int rc = tg_config_load_string("test.yaml", yaml, strlen(yaml), &cfg, errbuf, sizeof(errbuf));
    if (rc != 0)
        fail_msg("unexpected config error: %s", errbuf);
    return cfg;
}

static void load_err(const char *yaml)
{
    tg_config_t *cfg = NULL;
    assert_int_equal(tg_config_load_string("test.yaml", yaml, strlen(yaml), &cfg, errbuf, sizeof(errbuf)),
                     TG_ECONFIG);
    assert_null(cfg);
}

static void test_example_file(void **state)
{
    (void)state;
    setenv("TOLLGATE_ADMIN_TOKEN", "admin-token-for-tests-0123", 1);
    setenv("TOLLGATE_KEY_SECRET", "key-secret-for-tests-0123456789abcdef", 1);
    tg_config_t *cfg = NULL;
    int rc = tg_config_load("examples/tollgate.yaml", &cfg, errbuf, sizeof(errbuf));
    if (rc != 0)
        fail_msg("%s", errbuf);
    assert_int_equal(cfg->nplans, 4);
    const tg_plan_t *starter = tg_config_find_plan(cfg, "starter");
    assert_non_null(starter);
    assert_int_equal(starter->price, INT64_C(49000000000));
    assert_int_equal(starter->trial_days, 14);
    assert_int_equal(starter->rate_limit.count, 100);
    assert_int_equal(starter->rate_limit.period_ns, INT64_C(60000000000));
    assert_int_equal(tg_plan_included(starter, "api_calls"), 50000);
    assert_int_equal(tg_plan_included(starter, "images"), TG_UNLIMITED);
    assert_int_equal(starter->on_quota, TG_QUOTA_BILL);
    assert_int_equal(starter->charges[0].unit_price, 1000000); /* 0.001 */
    const tg_plan_t *free_plan = tg_config_find_plan(cfg, "free");
    assert_int_equal(free_plan->on_quota, TG_QUOTA_BLOCK);
    assert_true(tg_plan_allows(free_plan, "/v1/basic/geocode", 17));
    assert_false(tg_plan_allows(free_plan, "/v1/vision/x", 12));
    assert_true(tg_plan_allows(tg_config_find_plan(cfg, "pro"), "/v1/vision/x", 12));
    assert_string_equal(cfg->admin.token, "admin-token-for-tests-0123");
    assert_int_equal(cfg->nroutes, 1);
    assert_int_equal(cfg->routes[0].weight, 10);
    assert_int_equal(cfg->routes[0].nmeter, 2);
    tg_config_free(cfg);
}

static void test_defaults(void **state)
{
    (void)state;
    tg_config_t *cfg = load_ok(BASE "plans: {p: {}}\n");
    assert_string_equal(cfg->server.listen, "127.0.0.1:8080");
    assert_int_equal(cfg->server.workers, 2);
    assert_int_equal(cfg->metering.strict, 0);
    assert_int_equal(cfg->metering.flush_ms, 5);
    assert_int_equal(cfg->metering.billable_classes, (1u << 2) | (1u << 3) | (1u << 4));
    const tg_plan_t *p = &cfg->plans[0];
    assert_string_equal(p->name, "p");
    assert_string_equal(p->currency, "usd");
    assert_int_equal(p->rate_limit.count, 0); /* unlimited */
    assert_true(tg_plan_allows(p, "/anything", 9));
    char *d = tg_config_describe(cfg);
    assert_non_null(strstr(d, "plan p (p): 0.00 usd per month"));
    free(d);
    tg_config_free(cfg);
}

static void test_errors_name_file_and_line(void **state)
{
    (void)state;
    load_err(BASE "server: {lisen: \"x:1\"}\nplans: {p: {}}\n");
    assert_non_null(strstr(errbuf, "test.yaml:4: unknown key \"lisen\" in server"));

    load_err(BASE "plans:\n  p:\n    rate_limit: 10/minutes\n");
    assert_non_null(strstr(errbuf, "test.yaml:6: plans.p.rate_limit: \"10/minutes\" is not N/sec|min|hour|day"));

    load_err(BASE "plans:\n  p:\n    price: \"0.0000000001\"\n");
    assert_non_null(strstr(errbuf, "test.yaml:6: plans.p.price:"));
    assert_non_null(strstr(errbuf, "more than 9 decimal places"));

    load_err(BASE "server: {listen: \"${TG_TEST_SURELY_UNSET}\"}\nplans: {p: {}}\n");
    assert_non_null(strstr(errbuf, "test.yaml:4: server.listen: environment variable TG_TEST_SURELY_UNSET is not set"));

    load_err(BASE "server: {workers: many}\nplans: {p: {}}\n");
    assert_non_null(strstr(errbuf, "test.yaml:4: server.workers: \"many\" is not a whole number from 1 to 64"));

    load_err(BASE "plans:\n  p:\n    charges:\n      - metric: x\n        model: graduated\n        tiers:\n"
                  "          - {up_to: 100, unit_price: \"1\"}\n          - {up_to: 50, unit_price: \"1\"}\n"
                  "          - {up_to: inf, unit_price: \"1\"}\n");
    assert_non_null(strstr(errbuf, "test.yaml:11: plans.p.charges: tier bounds must ascend"));

    load_err("admin: {token: \"0123456789abcdef0123\"}\nkeys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"
             "plans: {p: {}}\n");
    assert_non_null(strstr(errbuf, "upstream.url is required"));

    load_err(BASE "plans: {p: {price: [1, 2}\n");
    assert_non_null(strstr(errbuf, "test.yaml:"));
    assert_non_null(strstr(errbuf, "YAML syntax error"));
}

static void test_all_errors_reported(void **state)
{
    (void)state;
    load_err(BASE "server: {workers: 0, bogus: 1}\nplans:\n  p: {on_quota: sometimes, currency: xyz}\n");
    int lines = 0;
    for (const char *p = errbuf; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 4);
    assert_non_null(strstr(errbuf, "server.workers"));
    assert_non_null(strstr(errbuf, "unknown key \"bogus\""));
    assert_non_null(strstr(errbuf, "on_quota"));
    assert_non_null(strstr(errbuf, "\"xyz\" is not a supported ISO 4217 currency code"));
}

static void test_path_and_route_matching(void **state)
{
    (void)state;
    assert_true(tg_path_match("/v1/basic/*", "/v1/basic/x/y", 13));
    assert_false(tg_path_match("/v1/basic/*", "/v1/basics", 10));
    assert_true(tg_path_match("/v1/*/tag", "/v1/vision/tag", 14));
    assert_false(tg_path_match("/v1/*/tag", "/v1/vision/tags", 15));
    assert_true(tg_path_match("*", "/", 1));
    assert_true(tg_path_match("/exact", "/exact", 6));
    assert_false(tg_path_match("/exact", "/exact/", 7));
    tg_config_t *cfg = load_ok(BASE "plans: {p: {}}\nroutes:\n  - {match: \"POST /v1/vision/*\", weight: 10}\n"
                                    "  - {match: \"/v1/*\", meter: {tokens: 5}}\n");
    const tg_route_t *r = tg_config_match_route(cfg, "POST", 4, "/v1/vision/a", 12);
    assert_non_null(r);
    assert_int_equal(r->weight, 10);
    assert_string_equal(r->meter[0].metric, "api_calls"); /* default meter */
    r = tg_config_match_route(cfg, "GET", 3, "/v1/vision/a", 12);
    assert_non_null(r);
    assert_string_equal(r->meter[0].metric, "tokens");
    assert_null(tg_config_match_route(cfg, "GET", 3, "/v2/x", 5));
    tg_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_file),        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_errors_name_file_and_line), cmocka_unit_test(test_all_errors_reported),
        cmocka_unit_test(test_path_and_route_matching),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
