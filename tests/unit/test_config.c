/* test_config.c - YAML configuration: the example file's values, defaults, every kind of
 * "FILE:LINE: message", all errors at once, YAML features and limits, path and route matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

/* Lines 1-3 of most test documents: the three required sections. */
#define BASE                                                                                                           \
    "upstream: {url: \"http://127.0.0.1:9000\"}\n"                                                                     \
    "admin: {token: \"0123456789abcdef0123\"}\n"                                                                       \
    "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"

static char errbuf[16384];

static tg_config_t *load_ok(const char *yaml)
{
    tg_config_t *cfg = NULL;
    int rc = tg_config_load_string("test.yaml", yaml, strlen(yaml), &cfg, errbuf, sizeof(errbuf));
    if (rc != 0)
        fail_msg("unexpected config error:\n%s", errbuf);
    assert_non_null(cfg);
    return cfg;
}

static void load_err(const char *yaml)
{
    tg_config_t *cfg = NULL;
    assert_int_equal(tg_config_load_string("test.yaml", yaml, strlen(yaml), &cfg, errbuf, sizeof(errbuf)), TG_ECONFIG);
    assert_null(cfg);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* errbuf holds `line` as one whole line. */
static void has_line(const char *line)
{
    size_t n = strlen(line);
    for (const char *p = errbuf; (p = strstr(p, line)) != NULL; p++)
        if ((p == errbuf || p[-1] == '\n') && p[n] == '\n')
            return;
    fail_msg("expected the line\n  %s\nin\n%s", line, errbuf);
}

/* Loading `yaml` fails with exactly one problem, which is `line`. */
static void only_error(const char *yaml, const char *line)
{
    load_err(yaml);
    has_line(line);
    if (count_lines(errbuf) != 1)
        fail_msg("expected only\n  %s\ngot\n%s", line, errbuf);
}

static void set_example_env(void)
{
    setenv("TOLLGATE_ADMIN_TOKEN", "admin-token-for-tests-0123", 1);
    setenv("TOLLGATE_KEY_SECRET", "key-secret-for-tests-0123456789abcdef", 1);
}

static void test_example_file(void **state)
{
    (void)state;
    set_example_env();
    tg_config_t *cfg = NULL;
    int rc = tg_config_load("examples/tollgate.yaml", &cfg, errbuf, sizeof(errbuf));
    if (rc != 0)
        fail_msg("%s", errbuf);
    assert_string_equal(cfg->path, "examples/tollgate.yaml");
    assert_string_equal(cfg->server.listen, "127.0.0.1:8080");
    assert_string_equal(cfg->server.admin_listen, "127.0.0.1:8081");
    assert_int_equal(cfg->server.workers, 2);
    assert_string_equal(cfg->upstream.url, "http://127.0.0.1:9000");
    assert_int_equal(cfg->upstream.timeout_ms, 30000);
    /* relative to the file's folder, made absolute */
    char *examples = realpath("examples", NULL), want[4200];
    assert_non_null(examples);
    snprintf(want, sizeof(want), "sqlite:%s/../var/tollgate.db", examples);
    free(examples);
    assert_string_equal(cfg->storage.database, want);
    assert_string_equal(cfg->admin.token, "admin-token-for-tests-0123");
    assert_int_equal(cfg->admin.key_grace_seconds, 86400);
    assert_string_equal(cfg->keys.secret, "key-secret-for-tests-0123456789abcdef");
    assert_int_equal(cfg->metering.durability, 0);
    assert_int_equal(cfg->metering.flush_ms, 5);

    assert_int_equal(cfg->nplans, 4);
    assert_string_equal(cfg->plans[0].id, "free"); /* file order is kept */
    assert_string_equal(cfg->plans[3].id, "enterprise");

    const tg_plan_t *p = tg_config_find_plan(cfg, "free");
    assert_non_null(p);
    assert_string_equal(p->name, "Free");
    assert_int_equal(p->price, 0);
    assert_string_equal(p->currency, "usd");
    assert_int_equal(p->currency_digits, 2);
    assert_int_equal(p->rate_limit.count, 10);
    assert_int_equal(p->rate_limit.period_ns, INT64_C(60000000000));
    assert_int_equal(p->burst, 10);
    assert_int_equal(p->nendpoints, 1);
    assert_true(tg_plan_allows(p, "/v1/basic/geocode", 17));
    assert_false(tg_plan_allows(p, "/v1/text/summarize", 18));
    assert_false(tg_plan_allows(p, "/v1/vision/tag", 14));
    assert_int_equal(tg_plan_included(p, "api_calls"), 1000);
    assert_int_equal(p->on_quota, TG_QUOTA_BLOCK);
    assert_int_equal(p->ncharges, 1);
    assert_int_equal(p->charges[0].model, TG_MODEL_PER_UNIT);
    assert_int_equal(p->charges[0].unit_price, 0);
    assert_int_equal(p->nfeatures, 3);
    assert_string_equal(p->features[1], "1,000 calls a month");

    p = tg_config_find_plan(cfg, "starter");
    assert_non_null(p);
    assert_int_equal(p->price, INT64_C(49000000000));
    assert_int_equal(p->trial_days, 14);
    assert_int_equal(p->interval, TG_INTERVAL_MONTH);
    assert_int_equal(p->rate_limit.count, 100);
    assert_int_equal(p->rate_limit.period_ns, INT64_C(60000000000));
    assert_int_equal(tg_plan_included(p, "api_calls"), 50000);
    assert_int_equal(tg_plan_included(p, "images"), TG_UNLIMITED);
    assert_int_equal(p->on_quota, TG_QUOTA_BILL);
    assert_string_equal(p->charges[0].metric, "api_calls");
    assert_int_equal(p->charges[0].unit_price, 1000000); /* 0.001 in nano-units */
    assert_true(tg_plan_allows(p, "/v1/text/summarize", 18));
    assert_false(tg_plan_allows(p, "/v1/vision/tag", 14));

    p = tg_config_find_plan(cfg, "pro");
    assert_non_null(p);
    assert_int_equal(p->price, INT64_C(199000000000));
    assert_int_equal(p->charges[0].unit_price, 500000); /* 0.0005 */
    assert_int_equal(tg_plan_included(p, "api_calls"), 500000);
    assert_int_equal(p->rate_limit.count, 500);
    assert_null(p->endpoints);
    assert_true(tg_plan_allows(p, "/v1/vision/tag", 14));

    p = tg_config_find_plan(cfg, "enterprise");
    assert_non_null(p);
    assert_int_equal(p->price, INT64_C(999000000000));
    assert_int_equal(p->charges[0].unit_price, 200000); /* 0.0002 */
    assert_int_equal(tg_plan_included(p, "api_calls"), 5000000);
    assert_int_equal(p->rate_limit.count, 2000);
    assert_int_equal(p->burst, 2000);
    assert_int_equal(p->trial_days, 30);
    assert_int_equal(p->on_quota, TG_QUOTA_BILL);
    assert_null(tg_config_find_plan(cfg, "gold"));

    assert_int_equal(cfg->nroutes, 1);
    const tg_route_t *r = &cfg->routes[0];
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->pattern, "/v1/vision/*");
    assert_int_equal(r->weight, 10);
    assert_int_equal(r->nmeter, 2);
    assert_string_equal(r->meter[0].metric, "api_calls");
    assert_int_equal(r->meter[0].units, 1);
    assert_string_equal(r->meter[1].metric, "images");
    assert_int_equal(r->meter[1].units, 1);

    char *d = tg_config_describe(cfg);
    assert_non_null(d);
    assert_non_null(strstr(d, "plan starter \"Starter\": 49.00 usd per month, 14-day trial\n"));
    assert_non_null(strstr(d, "  rate limit: 100/min, burst 100\n"));
    assert_non_null(strstr(d, "  endpoints: /v1/basic/*, /v1/text/*\n"));
    assert_non_null(strstr(d, "  included: 50000 api_calls per period\n"));
    assert_non_null(strstr(d, "  charge api_calls (per unit, above the 50000 included): 0.001 usd per unit\n"));
    assert_non_null(strstr(d, "plan pro \"Pro\": 199.00 usd per month, 14-day trial\n  rate limit: 500/min, burst 500\n"
                              "  endpoints: all\n"));
    assert_non_null(strstr(d, "  POST /v1/vision/*: weight 10, meters api_calls=1 images=1\n"));
    free(d);
    tg_config_free(cfg);
}

static void test_defaults(void **state)
{
    (void)state;
    tg_config_t *cfg = load_ok(BASE "plans: {p: {}}\n");
    assert_string_equal(cfg->server.listen, "127.0.0.1:8080");
    assert_string_equal(cfg->server.admin_listen, "127.0.0.1:8081");
    assert_int_equal(cfg->server.workers, 2);
    assert_int_equal(cfg->server.max_header_bytes, 65536);
    assert_int_equal(cfg->server.max_body_bytes, 104857600);
    assert_int_equal(cfg->upstream.timeout_ms, 30000);
    assert_int_equal(cfg->upstream.keepalive_ms, 30000);
    assert_string_equal(cfg->storage.database, "sqlite:var/tollgate.db");
    assert_int_equal(cfg->admin.key_grace_seconds, 86400);
    assert_int_equal(cfg->metering.durability, 0);
    assert_int_equal(cfg->metering.flush_ms, 5);
    assert_int_equal(cfg->metering.sync_ms, 1000); /* process: fdatasync once a second, as appendfsync everysec */
    assert_int_equal(cfg->metering.billable_classes, (1u << 2) | (1u << 3) | (1u << 4));
    /* the three levels, in the order of tg_meter_durability_t */
    static const char *const levels[] = {"batched", "strict", "process"};
    for (int i = 0; i < 3; i++) {
        char yaml[256];
        snprintf(yaml, sizeof(yaml), BASE "metering: {durability: %s, flush_ms: 20, sync_ms: 60000}\nplans: {p: {}}\n",
                 levels[i]);
        tg_config_t *c = load_ok(yaml);
        assert_int_equal(c->metering.durability, i);
        assert_int_equal(c->metering.flush_ms, 20);
        assert_int_equal(c->metering.sync_ms, 60000);
        tg_config_free(c);
    }
    assert_int_equal(cfg->metering.bill_429, 0);
    assert_int_equal(cfg->metering.max_units_per_call, 1000000000);
    assert_int_equal(cfg->keys.max_active_per_customer, 20);
    assert_int_equal(cfg->nroutes, 0);
    const tg_plan_t *p = &cfg->plans[0];
    assert_string_equal(p->name, "p");
    assert_int_equal(p->price, 0);
    assert_string_equal(p->currency, "usd");
    assert_int_equal(p->interval, TG_INTERVAL_MONTH);
    assert_int_equal(p->trial_days, 0);
    assert_int_equal(p->rate_limit.count, 0); /* unlimited */
    assert_int_equal(p->burst, 0);
    assert_int_equal(p->on_quota, TG_QUOTA_BLOCK);
    assert_int_equal(p->ncharges, 0);
    assert_int_equal(p->minimum, 0);
    assert_int_equal(p->maximum, 0);
    assert_int_equal(p->line, 4);
    assert_true(tg_plan_allows(p, "/anything", 9));
    assert_int_equal(tg_plan_included(p, "api_calls"), TG_UNLIMITED);
    char *d = tg_config_describe(cfg);
    assert_non_null(strstr(d, "plan p \"p\": 0.00 usd per month\n  rate limit: unlimited\n"));
    free(d);
    tg_config_free(cfg);
}

static void test_every_key(void **state)
{
    (void)state;
    setenv("TG_TEST_HOST", "10.0.0.7", 1);
    tg_config_t *cfg = load_ok(
        "admin: {token: \"0123456789abcdef0123\"}\n"
        "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"
        "server: {listen: \"[::1]:9090\", admin_listen: \"*:9091\", workers: 8, max_header_bytes: 1024,"
        " max_body_bytes: 0}\n"
        "upstream: {url: \"http://${TG_TEST_HOST}:8000/api\", timeout_ms: 600000, keepalive_ms: 0}\n"
        "storage: {database: \"sqlite:/tmp/x.db\"}\n"
        "metering: {durability: strict, flush_ms: 10000, billable_status: [\"2xx\", \"5XX\"], bill_429: yes,"
        " max_units_per_call: 1000000000000000000}\n"
        "plans:\n"
        "  eu-team:\n"
        "    name: Team (EU)\n"
        "    price: 1234.56789\n" /* a YAML float, read as text: exact */
        "    currency: EUR\n"
        "    interval: year\n"
        "    trial_days: 365\n"
        "    rate_limit: 5/sec\n"
        "    endpoints: [\"/v1/*\", \"/v2/items\"]\n"
        "    included: {api_calls: 0, tokens: 1000000000000000000}\n"
        "    on_quota: \"throttle:2/hour\"\n"
        "    minimum: \"10\"\n"
        "    maximum: \"1000\"\n"
        "    block_at_maximum: true\n"
        "    features: []\n"
        "    charges:\n"
        "      - {metric: tokens, model: graduated, tiers: [{up_to: 1000, unit_price: \"0\", flat_price: \"5\"},"
        " {up_to: inf, unit_price: \"0.000000001\"}]}\n"
        "      - {metric: images, model: volume, tiers: [{up_to: \"inf\", unit_price: 0.01}]}\n"
        "      - {metric: gb, model: package, package_size: 10, package_price: \"2.5\", round: down}\n"
        "      - {metric: api_calls, model: per_unit, unit_price: \"0.1\"}\n"
        "routes:\n"
        "  - {match: \"GET  /v1/items/*\", weight: 1000000, meter: {api_calls: 0, reads: 3}}\n");
    assert_string_equal(cfg->server.listen, "[::1]:9090");
    assert_string_equal(cfg->server.admin_listen, "*:9091");
    assert_int_equal(cfg->server.workers, 8);
    assert_int_equal(cfg->server.max_header_bytes, 1024);
    assert_int_equal(cfg->server.max_body_bytes, 0);
    assert_string_equal(cfg->upstream.url, "http://10.0.0.7:8000/api");
    assert_int_equal(cfg->upstream.timeout_ms, 600000);
    assert_int_equal(cfg->upstream.keepalive_ms, 0);
    assert_string_equal(cfg->storage.database, "sqlite:/tmp/x.db");
    assert_int_equal(cfg->metering.durability, 1);
    assert_int_equal(cfg->metering.flush_ms, 10000);
    assert_int_equal(cfg->metering.billable_classes, (1u << 2) | (1u << 5));
    assert_int_equal(cfg->metering.bill_429, 1);
    assert_int_equal(cfg->metering.max_units_per_call, UINT64_C(1000000000000000000));
    const tg_plan_t *p = tg_config_find_plan(cfg, "eu-team");
    assert_non_null(p);
    assert_string_equal(p->name, "Team (EU)");
    assert_int_equal(p->price, INT64_C(1234567890000));
    assert_string_equal(p->currency, "eur");
    assert_int_equal(p->interval, TG_INTERVAL_YEAR);
    assert_int_equal(p->trial_days, 365);
    assert_int_equal(p->rate_limit.count, 5);
    assert_int_equal(p->rate_limit.period_ns, INT64_C(1000000000));
    assert_int_equal(p->burst, 5); /* defaults to the rate's count */
    assert_true(tg_plan_allows(p, "/v2/items", 9));
    assert_false(tg_plan_allows(p, "/v2/items/1", 11));
    assert_int_equal(tg_plan_included(p, "api_calls"), 0);
    assert_int_equal(tg_plan_included(p, "tokens"), UINT64_C(1000000000000000000));
    assert_int_equal(p->on_quota, TG_QUOTA_THROTTLE);
    assert_int_equal(p->throttle_rate.count, 2);
    assert_int_equal(p->throttle_rate.period_ns, INT64_C(3600000000000));
    assert_int_equal(p->minimum, INT64_C(10000000000));
    assert_int_equal(p->maximum, INT64_C(1000000000000));
    assert_int_equal(p->block_at_maximum, 1);
    assert_int_equal(p->nfeatures, 0);
    assert_int_equal(p->ncharges, 4);
    const tg_charge_t *c = &p->charges[0];
    assert_int_equal(c->model, TG_MODEL_GRADUATED);
    assert_int_equal(c->ntiers, 2);
    assert_int_equal(c->tiers[0].up_to, 1000);
    assert_int_equal(c->tiers[0].flat_price, INT64_C(5000000000));
    assert_int_equal(c->tiers[1].up_to, TG_UNLIMITED);
    assert_int_equal(c->tiers[1].unit_price, 1);
    assert_int_equal(c->line, 23);
    c = &p->charges[1];
    assert_int_equal(c->model, TG_MODEL_VOLUME);
    assert_int_equal(c->tiers[0].up_to, TG_UNLIMITED);
    assert_int_equal(c->tiers[0].unit_price, 10000000);
    c = &p->charges[2];
    assert_int_equal(c->model, TG_MODEL_PACKAGE);
    assert_int_equal(c->package_size, 10);
    assert_int_equal(c->package_price, INT64_C(2500000000));
    assert_int_equal(c->round_up, 0);
    assert_int_equal(p->charges[3].unit_price, 100000000);
    const tg_route_t *r = &cfg->routes[0];
    assert_string_equal(r->method, "GET");
    assert_string_equal(r->pattern, "/v1/items/*");
    assert_int_equal(r->weight, 1000000);
    assert_int_equal(r->nmeter, 2);
    assert_int_equal(r->meter[0].units, 0);
    assert_int_equal(r->meter[1].units, 3);
    assert_int_equal(r->line, 28);
    char *d = tg_config_describe(cfg);
    assert_non_null(strstr(d, "plan eu-team \"Team (EU)\": 1234.56789 eur per year, 365-day trial\n"));
    assert_non_null(strstr(d, "  over quota: throttle to 2/hour\n"));
    assert_non_null(strstr(d, "    up to 1000: 0.00 eur per unit + 5.00 eur flat\n"
                              "    up to inf: 0.000000001 eur per unit\n"));
    assert_non_null(strstr(d, "  charge gb (package): 2.50 eur per 10 units, partial packages rounded down\n"));
    assert_non_null(strstr(d, "  usage charges capped at 1000.00 eur (block at the cap)\n"));
    assert_non_null(strstr(d, "billed statuses: 2xx 5xx (429 included)\n"));
    free(d);
    tg_config_free(cfg);
}

/* issue 10 items 6 and 7: the two bounds are checked with FILE:LINE like every key */
static void test_error_resource_bounds(void **state)
{
    (void)state;
    only_error("upstream: {url: \"http://127.0.0.1:9000\"}\n"
               "admin: {token: \"0123456789abcdef0123\"}\n"
               "keys: {secret: \"0123456789abcdef0123456789abcdef\", max_active_per_customer: 0}\n"
               "plans: {p: {}}\n",
               "test.yaml:3: keys.max_active_per_customer: \"0\" is not a whole number from 1 to 100000");
    only_error(BASE "metering: {max_units_per_call: 1000000000000000001}\nplans: {p: {}}\n",
               "test.yaml:4: metering.max_units_per_call: \"1000000000000000001\" is not a whole number from 1 to "
               "1000000000000000000");
    only_error(BASE "metering: {durability: process, sync_ms: 0}\nplans: {p: {}}\n",
               "test.yaml:4: metering.sync_ms: \"0\" is not a whole number from 1 to 60000");
}

static void test_error_unknown_key(void **state)
{
    (void)state;
    only_error(BASE "server: {lisen: \"127.0.0.1:1\"}\nplans: {p: {}}\n",
               "test.yaml:4: unknown key \"lisen\" in server (did you mean \"listen\"?)");
    only_error(BASE "plans:\n  p:\n    colour: red\n",
               "test.yaml:6: unknown key \"colour\" in plans.p (known: name, price, currency, interval, trial_days, "
               "rate_limit, burst, endpoints, included, on_quota, charges, minimum, maximum, block_at_maximum, "
               "features, requires_payment_method, require_email_confirmation, notify_thresholds)");
    only_error(BASE "plans: {p: {}}\nrouts: []\n", "test.yaml:5: unknown section \"routs\" (did you mean \"routes\"?)");
    only_error(BASE "plans: {p: {charges: [{metric: x, model: per_unit, unit_price: 1, colour: 2}]}}\n",
               "test.yaml:4: unknown key \"colour\" in plans.p.charges[0] (known: metric, model, unit_price, tiers, "
               "package_size, package_price, round)");
}

static void test_error_rate(void **state)
{
    (void)state;
    only_error(BASE "plans:\n  free:\n    rate_limit: 10/minutes\n",
               "test.yaml:6: plans.free.rate_limit: \"10/minutes\" is not N/sec|min|hour|day (N from 1 to 1000000000)");
    only_error(BASE "plans:\n  free:\n    rate_limit: 10/s\n",
               "test.yaml:6: plans.free.rate_limit: \"10/s\" is not N/sec|min|hour|day (N from 1 to 1000000000)");
    only_error(BASE "plans:\n  free:\n    rate_limit: 0/min\n",
               "test.yaml:6: plans.free.rate_limit: \"0/min\" is not N/sec|min|hour|day (N from 1 to 1000000000)");
    only_error(BASE "plans:\n  free:\n    on_quota: throttle:fast\n",
               "test.yaml:6: plans.free.on_quota: \"throttle:fast\" is not block, bill or throttle:N/sec|min|hour|day");
    tg_config_t *cfg = load_ok(BASE "plans: {a: {rate_limit: 7/second}, b: {rate_limit: 7/minute}, "
                                    "c: {rate_limit: 7/hour, burst: 1}, d: {rate_limit: 1000000000/day}}\n");
    assert_int_equal(cfg->plans[0].rate_limit.period_ns, INT64_C(1000000000));
    assert_int_equal(cfg->plans[1].rate_limit.period_ns, INT64_C(60000000000));
    assert_int_equal(cfg->plans[2].rate_limit.period_ns, INT64_C(3600000000000));
    assert_int_equal(cfg->plans[2].burst, 1);
    assert_int_equal(cfg->plans[3].rate_limit.period_ns, INT64_C(86400000000000));
    assert_int_equal(cfg->plans[3].rate_limit.count, 1000000000);
    tg_config_free(cfg);
}

static void test_error_money(void **state)
{
    (void)state;
    only_error(BASE "plans:\n  p:\n    price: \"0.0000000001\"\n",
               "test.yaml:6: plans.p.price: amount \"0.0000000001\" has more than 9 decimal places");
    only_error(BASE "plans:\n  p:\n    price: 0.0000000001\n", /* unquoted: still text, never a double */
               "test.yaml:6: plans.p.price: amount \"0.0000000001\" has more than 9 decimal places");
    only_error(BASE "plans:\n  p:\n    price: \"-5\"\n", "test.yaml:6: plans.p.price: \"-5\" must not be negative");
    only_error(BASE "plans:\n  p:\n    price: 1e3\n", "test.yaml:6: plans.p.price: \"1e3\" is not a decimal amount");
    only_error(BASE "plans:\n  p:\n    charges:\n      - {metric: x, model: per_unit, unit_price: \"0.1234567891\"}\n",
               "test.yaml:7: plans.p.charges[0].unit_price: amount \"0.1234567891\" has more than 9 decimal places");
    /* A control character in a value cannot split a problem over two lines. */
    only_error(BASE "plans:\n  p:\n    price: \"1\\n2\"\n",
               "test.yaml:6: plans.p.price: \"1?2\" is not a decimal amount");
    only_error(BASE "plans:\n  p:\n    currency: xyz\n",
               "test.yaml:6: plans.p.currency: \"xyz\" is not a supported ISO 4217 currency code");
}

static void test_error_env(void **state)
{
    (void)state;
    unsetenv("TG_TEST_SURELY_UNSET");
    only_error(BASE "server: {listen: \"${TG_TEST_SURELY_UNSET}\"}\nplans: {p: {}}\n",
               "test.yaml:4: server.listen: environment variable TG_TEST_SURELY_UNSET is not set");
    only_error(BASE "server: {listen: \"${bad name}\"}\nplans: {p: {}}\n",
               "test.yaml:4: server.listen: \"${\" must be followed by a variable name and \"}\", like "
               "${TOLLGATE_ADMIN_TOKEN}");
    setenv("TG_TEST_PORT", "8443", 1);
    setenv("TG_TEST_EMPTY", "", 1);
    tg_config_t *cfg = load_ok(BASE "server: {listen: \"127.0.0.1:${TG_TEST_PORT}\"}\n"
                                    "plans: {p: {name: \"a$b${TG_TEST_EMPTY}c$\"}}\n");
    assert_string_equal(cfg->server.listen, "127.0.0.1:8443");
    assert_string_equal(cfg->plans[0].name, "a$bc$");
    tg_config_free(cfg);
    /* ${} in a number expands too, and then the number is checked. */
    only_error(BASE "server: {workers: \"${TG_TEST_PORT}\"}\nplans: {p: {}}\n",
               "test.yaml:4: server.workers: \"8443\" is not a whole number from 1 to 64");
}

static void test_error_types(void **state)
{
    (void)state;
    only_error(BASE "server: {workers: many}\nplans: {p: {}}\n",
               "test.yaml:4: server.workers: \"many\" is not a whole number from 1 to 64");
    only_error(BASE "server: {workers: [1, 2]}\nplans: {p: {}}\n",
               "test.yaml:4: server.workers: expected a whole number, got a list");
    only_error(BASE "server: \"fast\"\nplans: {p: {}}\n",
               "test.yaml:4: server: expected a mapping, got a single value");
    only_error(BASE "plans: [free, pro]\n", "test.yaml:4: plans: expected a mapping of plan id: plan, got a list");
    only_error(BASE "plans: {p: {endpoints: \"/v1/*\"}}\n",
               "test.yaml:4: plans.p.endpoints: expected a list of strings, got a single value");
    only_error(BASE "plans: {p: {included: [api_calls]}}\n",
               "test.yaml:4: plans.p.included: expected a mapping of metric: number, got a list");
    only_error(BASE "plans: {p: {block_at_maximum: maybe}}\n",
               "test.yaml:4: plans.p.block_at_maximum: \"maybe\" is not true or false");
    only_error(BASE "plans: {p: {interval: week}}\n", "test.yaml:4: plans.p.interval: \"week\" is not month or year");
    only_error(BASE "metering: {durability: sometimes}\nplans: {p: {}}\n",
               "test.yaml:4: metering.durability: \"sometimes\" is not batched, strict or process");
    only_error(BASE "metering: {billable_status: [\"200\"]}\nplans: {p: {}}\n",
               "test.yaml:4: metering.billable_status[0]: \"200\" is not a status class (1xx to 5xx)");
    only_error(BASE "server: {max_body_bytes: 1099511627777}\nplans: {p: {}}\n",
               "test.yaml:4: server.max_body_bytes: \"1099511627777\" is not a whole number from 0 to 1099511627776");
    only_error(BASE "server: {workers: }\nplans: {p: {}}\n", "test.yaml:4: server.workers has no value");
    only_error(BASE "server: {workers: -1}\nplans: {p: {}}\n",
               "test.yaml:4: server.workers: \"-1\" is not a whole number from 1 to 64");
    only_error(BASE "plans: {p: {trial_days: 366}}\n",
               "test.yaml:4: plans.p.trial_days: \"366\" is not a whole number from 0 to 365");
}

static void test_error_tiers(void **state)
{
    (void)state;
    only_error(BASE "plans:\n  p:\n    charges:\n      - metric: x\n        model: graduated\n        tiers:\n"
                    "          - {up_to: 100, unit_price: \"1\"}\n          - {up_to: 50, unit_price: \"1\"}\n"
                    "          - {up_to: inf, unit_price: \"1\"}\n",
               "test.yaml:11: plans.p.charges[0].tiers[1].up_to: 50 is not above the previous tier's 100 (tier bounds "
               "must ascend)");
    only_error(BASE "plans:\n  p:\n    charges:\n      - metric: x\n        model: volume\n        tiers:\n"
                    "          - {up_to: 100, unit_price: \"1\"}\n          - {up_to: 500, unit_price: \"1\"}\n",
               "test.yaml:11: plans.p.charges[0].tiers[1].up_to: the last tier must be up_to: inf (found 500)");
    only_error(BASE "plans:\n  p:\n    charges:\n      - metric: x\n        model: graduated\n        tiers:\n"
                    "          - {up_to: inf, unit_price: \"1\"}\n          - {up_to: inf, unit_price: \"2\"}\n",
               "test.yaml:10: plans.p.charges[0].tiers[0].up_to: only the last tier can be inf");
    only_error(BASE "plans: {p: {charges: [{metric: x, model: graduated, tiers: []}]}}\n",
               "test.yaml:4: plans.p.charges[0].tiers: at least one tier is required");
    only_error(BASE "plans: {p: {charges: [{metric: x, model: graduated, tiers: [{unit_price: 1}]}]}}\n",
               "test.yaml:4: plans.p.charges[0].tiers[0].up_to is required (a whole number, or inf for the last tier)");
    only_error(BASE "plans: {p: {charges: [{metric: x, model: volume, tiers: [{up_to: 0}, {up_to: inf}]}]}}\n",
               "test.yaml:4: plans.p.charges[0].tiers[0].up_to: \"0\" is not a whole number from 1 to "
               "1000000000000000000 or inf");
}

static void test_error_charges(void **state)
{
    (void)state;
    only_error(BASE "plans:\n  p:\n    charges:\n      - {metric: api_calls, model: per_unit}\n",
               "test.yaml:7: plans.p.charges[0]: model per_unit needs unit_price");
    only_error(BASE "plans:\n  p:\n    charges:\n      - {metric: api_calls, model: graduated}\n",
               "test.yaml:7: plans.p.charges[0]: model graduated needs tiers");
    only_error(BASE "plans:\n  p:\n    charges:\n      - metric: gb\n        model: package\n        package_size: 0\n"
                    "        package_price: 1\n",
               "test.yaml:9: plans.p.charges[0].package_size: \"0\" is not a whole number from 1 to "
               "1000000000000000000");
    only_error(BASE "plans:\n  p:\n    charges:\n      - {metric: gb, model: package, package_size: 5}\n",
               "test.yaml:7: plans.p.charges[0]: model package needs package_price");
    only_error(BASE "plans:\n  p:\n    charges:\n      - metric: x\n        model: per_unit\n        unit_price: 1\n"
                    "        tiers: [{up_to: inf}]\n",
               "test.yaml:10: plans.p.charges[0]: tiers does not apply to model per_unit");
    only_error(BASE "plans:\n  p:\n    charges:\n      - {metric: x, model: flat}\n",
               "test.yaml:7: plans.p.charges[0].model: \"flat\" is not per_unit, graduated, volume or package");
    only_error(BASE "plans:\n  p:\n    charges:\n      - {model: per_unit, unit_price: 1}\n",
               "test.yaml:7: plans.p.charges[0].metric is required (like api_calls)");
    only_error(BASE "plans:\n  p:\n    charges:\n      - {metric: Calls, model: per_unit, unit_price: 1}\n",
               "test.yaml:7: plans.p.charges[0].metric: \"Calls\" is not a metric name (1 to 63 of a-z, 0-9, _)");
    only_error(BASE "plans:\n  p:\n    charges:\n      - {metric: x, model: per_unit, unit_price: 1}\n"
                    "      - {metric: x, model: per_unit, unit_price: 2}\n",
               "test.yaml:8: plans.p.charges[1]: metric x is already priced by charges[0]");
    only_error(BASE "plans:\n  p:\n    minimum: 10\n    maximum: 5\n",
               "test.yaml:6: plans.p.minimum: is larger than maximum");
    only_error(BASE "plans:\n  p:\n    block_at_maximum: true\n",
               "test.yaml:6: plans.p.block_at_maximum: needs maximum");
    only_error(BASE "plans:\n  p:\n    burst: 5\n", "test.yaml:6: plans.p.burst: has no effect without rate_limit");
}

static void test_error_sections(void **state)
{
    (void)state;
    /* Missing sections: reported at line 1 of the document. */
    only_error("admin: {token: \"0123456789abcdef0123\"}\nkeys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"
               "plans: {p: {}}\n",
               "test.yaml:1: upstream.url is required (the API being sold, like http://127.0.0.1:9000)");
    only_error("upstream: {timeout_ms: 5}\nadmin: {token: \"0123456789abcdef0123\"}\n"
               "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\nplans: {p: {}}\n",
               "test.yaml:1: upstream.url is required (the API being sold, like http://127.0.0.1:9000)");
    only_error("upstream: {url: \"http://h\"}\nadmin: {token: \"0123456789abcdef0123\"}\nplans: {p: {}}\n",
               "test.yaml:1: keys.secret is required (32+ characters; it keys the stored API key hashes; use "
               "\"${TOLLGATE_KEY_SECRET}\")");
    only_error(BASE, "test.yaml:1: plans is required (at least one plan)");
    only_error(BASE "plans: {}\n", "test.yaml:4: plans: at least one plan is required");
    only_error(BASE "plans: {Pro: {}}\n", "test.yaml:4: plans: plan id \"Pro\" must be 1 to 63 of a-z, 0-9, _ and -");
    only_error(BASE "plans:\n  p: {}\n  p: {}\n", "test.yaml:6: plans: plan \"p\" is defined twice");
    only_error(BASE "server: {workers: 1}\nserver: {workers: 2}\nplans: {p: {}}\n",
               "test.yaml:5: server is given twice (first on line 4)");
    only_error(BASE "plans: {p: {price: 1, price: 2}}\n",
               "test.yaml:4: plans.p.price is given twice (first on line 4)");

    /* Secrets: too short, and never echoed. */
    load_err("upstream: {url: \"http://h\"}\nadmin: {token: \"hunter2-secret\"}\nkeys: {secret: \"short-secret-xyz\"}\n"
             "plans: {p: {}}\n");
    has_line("test.yaml:2: admin.token is too short (14 characters; at least 16)");
    has_line("test.yaml:3: keys.secret is too short (16 characters; at least 32)");
    assert_int_equal(count_lines(errbuf), 2);
    assert_null(strstr(errbuf, "hunter2"));
    assert_null(strstr(errbuf, "short-secret"));
    only_error("upstream: {url: \"http://h\"}\nadmin: {token: \"hunter2-secret-with\\ttab\"}\n"
               "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\nplans: {p: {}}\n",
               "test.yaml:2: admin.token: the value must not contain control characters");

    /* Addresses and URLs. */
    only_error(BASE "server: {listen: \"localhost\"}\nplans: {p: {}}\n",
               "test.yaml:4: server.listen: \"localhost\" is not host:port (host: an IPv4 address, [IPv6], "
               "localhost, * or nothing; port 1-65535)");
    only_error(BASE "server: {admin_listen: \"example.com:80\"}\nplans: {p: {}}\n",
               "test.yaml:4: server.admin_listen: \"example.com:80\" is not host:port (host: an IPv4 address, [IPv6], "
               "localhost, * or nothing; port 1-65535)");
    only_error(BASE "server: {listen: \"127.0.0.1:8081\"}\nplans: {p: {}}\n",
               "test.yaml:4: server.admin_listen: must differ from server.listen (both 127.0.0.1:8081)");
    only_error("upstream: {url: \"http://user:pw@api:99999\"}\nadmin: {token: \"0123456789abcdef0123\"}\n"
               "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\nplans: {p: {}}\n",
               "test.yaml:1: upstream.url: \"http://***@api:99999\" is not an http(s)://host[:port][/prefix] URL");
    const char *good_urls[] = {"http://api", "http://api.internal:8080", "http://[::1]:9000/v2", "http://10.1.2.3/",
                               "https://api.example.com", "https://[::1]:8443/v1"};
    for (size_t i = 0; i < sizeof(good_urls) / sizeof(good_urls[0]); i++) {
        char yaml[512];
        snprintf(yaml, sizeof(yaml),
                 "upstream: {url: \"%s\"}\nadmin: {token: \"0123456789abcdef0123\"}\n"
                 "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\nplans: {p: {}}\n",
                 good_urls[i]);
        tg_config_free(load_ok(yaml));
    }
    const char *bad_urls[] = {"http://",      "http://:80",    "ftp://h",      "http://h:0",
                              "http://h/a b", "http://h/?q=1", "http://[zz]:1"};
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        char yaml[512];
        snprintf(yaml, sizeof(yaml),
                 "upstream: {url: \"%s\"}\nadmin: {token: \"0123456789abcdef0123\"}\n"
                 "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\nplans: {p: {}}\n",
                 bad_urls[i]);
        load_err(yaml);
        assert_non_null(strstr(errbuf, "test.yaml:1: upstream.url: "));
    }
    only_error(BASE "storage: {database: \"postgres://tg:pw@db/tollgate\"}\nplans: {p: {}}\n",
               "test.yaml:4: metering.log_dir: is required with PostgreSQL (each gateway keeps its metering log on its "
               "own disk, for example /var/lib/tollgate/metering)");
    only_error(BASE "storage: {database: \"var/tollgate.db\"}\nplans: {p: {}}\n",
               "test.yaml:4: storage.database: \"var/tollgate.db\" must be sqlite:PATH (like sqlite:var/tollgate.db) "
               "or postgresql://USER@HOST:PORT/DB");
    only_error(BASE "storage: {database: \"postgresql://\"}\nplans: {p: {}}\n",
               "test.yaml:4: storage.database: \"postgresql://\" must be sqlite:PATH (like sqlite:var/tollgate.db) "
               "or postgresql://USER@HOST:PORT/DB");
}

/* listeners: the shorthands, the section, TLS pairs, distinct addresses, public_urls. */
static void test_listeners(void **state)
{
    (void)state;
    tg_config_t *cfg = load_ok(BASE "server: {listen: \"127.0.0.1:7000\", admin_listen: \"127.0.0.1:7001\"}\n"
                                    "plans: {p: {}}\n");
    assert_string_equal(cfg->listeners[TG_LISTENER_GATEWAY].address, "127.0.0.1:7000");
    assert_string_equal(cfg->listeners[TG_LISTENER_ADMIN].address, "127.0.0.1:7001");
    assert_null(cfg->listeners[TG_LISTENER_PORTAL].address);
    assert_null(cfg->listeners[TG_LISTENER_METRICS].address);
    assert_null(cfg->listeners[TG_LISTENER_GATEWAY].certificate);
    assert_string_equal(cfg->public_urls.gateway, "http://127.0.0.1:7000");
    assert_string_equal(cfg->portal.public_url, "http://127.0.0.1:7001");
    tg_config_free(cfg);

    cfg = load_ok(BASE "listeners:\n"
                       "  gateway: {address: \"*:8443\", tls: {certificate: /etc/a.pem, key: /etc/a.key}}\n"
                       "  portal:\n"
                       "    address: \"127.0.0.1:7002\"\n"
                       "    tls: {certificate: /etc/p.pem, key: /etc/p.key}\n"
                       "  metrics: {address: \"127.0.0.1:9100\"}\n"
                       "plans: {p: {}}\n");
    assert_string_equal(cfg->listeners[TG_LISTENER_GATEWAY].address, "*:8443");
    assert_string_equal(cfg->listeners[TG_LISTENER_GATEWAY].key, "/etc/a.key");
    assert_null(cfg->listeners[TG_LISTENER_ADMIN].address); /* the section alone decides */
    assert_int_equal(cfg->listeners[TG_LISTENER_PORTAL].tls_line, 8);
    assert_string_equal(cfg->public_urls.gateway, "https://localhost:8443");
    assert_string_equal(cfg->portal.public_url, "https://127.0.0.1:7002");
    assert_string_equal(cfg->server.listen, "*:8443"); /* kept equal for the CLI and logs */
    tg_config_free(cfg);

    cfg = load_ok(BASE "listeners: {gateway: {address: \":80\"}}\n"
                       "public_urls: {gateway: \"https://api.example.com\", portal: \"https://dev.example.com\"}\n"
                       "plans: {p: {}}\n");
    assert_string_equal(cfg->public_urls.gateway, "https://api.example.com");
    assert_string_equal(cfg->portal.public_url, "https://dev.example.com");
    tg_config_free(cfg);

    only_error(BASE "listeners: {admin: {address: \"127.0.0.1:1\", tls: {certificate: /c.pem}}}\nplans: {p: {}}\n",
               "test.yaml:4: listeners.admin.tls: certificate and key go together (a PEM chain and its private key)");
    only_error(BASE "listeners: {admin: {tls: {certificate: /c.pem, key: /k.pem}}}\nplans: {p: {}}\n",
               "test.yaml:4: listeners.admin.address is required (host:port)");
    only_error(BASE "listeners: {portal: {address: \"127.0.0.1:1\"}, metrics: {address: \"127.0.0.1:1\"}}\n"
                    "plans: {p: {}}\n",
               "test.yaml:4: listeners.metrics.address: must differ from listeners.portal.address (both 127.0.0.1:1)");
    only_error(BASE "listeners: {}\nplans: {p: {}}\n",
               "test.yaml:4: listeners: needs at least one of gateway, portal, admin, metrics");
    only_error(BASE "public_urls: {gateway: \"https://api.example.com/v1\"}\nplans: {p: {}}\n",
               "test.yaml:4: public_urls.gateway: \"https://api.example.com/v1\" is not an http(s)://host[:port] URL "
               "without a path");
}

static void test_error_routes(void **state)
{
    (void)state;
    only_error(BASE "plans: {p: {}}\nroutes:\n  - {match: \"post /v1/*\"}\n",
               "test.yaml:6: routes[0].match: method \"post\" must be an upper-case word like GET or POST");
    only_error(BASE "plans: {p: {}}\nroutes:\n  - {match: \"v1/*\"}\n",
               "test.yaml:6: routes[0].match: path \"v1/*\" must start with \"/\"");
    only_error(BASE "plans: {p: {}}\nroutes:\n  - {match: \"/search?q=*\"}\n",
               "test.yaml:6: routes[0].match: path \"/search?q=*\" must not contain '?' (only the path is matched, "
               "never the query)");
    only_error(BASE "plans: {p: {}}\nroutes:\n  - {weight: 2}\n",
               "test.yaml:6: routes[0].match is required (like \"POST /v1/vision/*\")");
    only_error(BASE "plans: {p: {}}\nroutes:\n  - {match: /x, weight: 0}\n",
               "test.yaml:6: routes[0].weight: \"0\" is not a whole number from 1 to 1000000");
    only_error(BASE "plans: {p: {}}\nroutes:\n  - {match: /x, meter: {}}\n",
               "test.yaml:6: routes[0].meter: at least one metric is required (leave meter out for {api_calls: 1})");
    only_error(BASE
               "plans: {p: {}}\nroutes:\n  - match: /x\n    meter: {a: 1, b: 1, c: 1, d: 1, e: 1, f: 1, g: 1, h: 1, "
               "i: 1}\n",
               "test.yaml:7: routes[0].meter: at most 8 metrics (found 9)");
    only_error(BASE "plans: {p: {}}\nroutes:\n  - match: /x\n    meter:\n      api_calls: 1\n      api_calls: 2\n",
               "test.yaml:9: routes[0].meter: metric \"api_calls\" is listed twice");
    only_error(BASE "plans: {p: {endpoints: [\"/ok/*\", \"bad\"]}}\n",
               "test.yaml:4: plans.p.endpoints[1]: \"bad\" must start with \"/\"");
}

static void test_error_yaml_syntax(void **state)
{
    (void)state;
    load_err(BASE "plans:\n  p: {price: [1, 2}\n");
    assert_int_equal(count_lines(errbuf), 1);
    assert_non_null(strstr(errbuf, "test.yaml:5: YAML syntax error: "));
    load_err(BASE "plans:\n  p:\n    price: 1\n   name: x\n");
    assert_int_equal(count_lines(errbuf), 1);
    assert_non_null(strstr(errbuf, "test.yaml:7: YAML syntax error: "));
    load_err(BASE "plans: {p: {}}\nserver: {listen: \"127.0.0.1:1\n");
    assert_non_null(strstr(errbuf, "YAML syntax error: "));
    /* Tabs for indentation are a classic. */
    load_err(BASE "plans:\n\tp: {}\n");
    assert_non_null(strstr(errbuf, "test.yaml:5: YAML syntax error: "));
    only_error(BASE "plans: {p: {}}\n---\nplans: {q: {}}\n",
               "test.yaml:5: only one YAML document is allowed (this is a second one)");
    only_error(BASE "plans: {p: {name: \"a\\0b\"}}\n", "test.yaml:4: a value contains a NUL character");
    only_error(BASE "plans: {p: *nothing}\n", "test.yaml:4: alias *nothing names no anchor defined before it");
    only_error("- 1\n- 2\n", "test.yaml:1: the configuration: expected a mapping, got a list");
}

static void test_all_errors_reported(void **state)
{
    (void)state;
    load_err("server:\n"
             "  workers: 0\n"
             "  bogus: 1\n"
             "admin: {token: \"short\"}\n"
             "plans:\n"
             "  p:\n"
             "    on_quota: sometimes\n"
             "    currency: xyz\n"
             "    price: \"1.0000000001\"\n"
             "    rate_limit: lots\n");
    /* Sorted by line; the missing sections are reported at line 1. */
    const char *expect = "test.yaml:1: upstream.url is required (the API being sold, like http://127.0.0.1:9000)\n"
                         "test.yaml:1: keys.secret is required (32+ characters; it keys the stored API key hashes; use "
                         "\"${TOLLGATE_KEY_SECRET}\")\n"
                         "test.yaml:2: server.workers: \"0\" is not a whole number from 1 to 64\n"
                         "test.yaml:3: unknown key \"bogus\" in server (known: listen, admin_listen, workers, "
                         "max_header_bytes, max_body_bytes, trusted_proxies)\n"
                         "test.yaml:4: admin.token is too short (5 characters; at least 16)\n"
                         "test.yaml:7: plans.p.on_quota: \"sometimes\" is not block, bill or "
                         "throttle:N/sec|min|hour|day\n"
                         "test.yaml:8: plans.p.currency: \"xyz\" is not a supported ISO 4217 currency code\n"
                         "test.yaml:9: plans.p.price: amount \"1.0000000001\" has more than 9 decimal places\n"
                         "test.yaml:10: plans.p.rate_limit: \"lots\" is not N/sec|min|hour|day (N from 1 to "
                         "1000000000)\n";
    assert_string_equal(errbuf, expect);
}

static void test_error_buffer_limits(void **state)
{
    (void)state;
    /* 300 bad plans: every line in the buffer is whole, and the rest is counted. */
    size_t cap = 300 * 40 + 200, len = 0;
    char *yaml = malloc(cap);
    len += (size_t)snprintf(yaml + len, cap - len, "%s", BASE "plans:\n");
    for (int i = 0; i < 250; i++)
        len += (size_t)snprintf(yaml + len, cap - len, "  p%d: {price: x}\n", i);
    tg_config_t *cfg = NULL;
    char small[300];
    int rc1 = tg_config_load_string("t.yaml", yaml, len, &cfg, small, sizeof(small));
    int rc2 = tg_config_load_string("t.yaml", yaml, len, &cfg, errbuf, sizeof(errbuf));
    free(yaml);
    assert_int_equal(rc1, TG_ECONFIG);
    assert_int_equal(rc2, TG_ECONFIG);
    assert_null(cfg);
    assert_string_equal(small, "t.yaml:5: plans.p0.price: \"x\" is not a decimal amount\n"
                               "t.yaml:6: plans.p1.price: \"x\" is not a decimal amount\n"
                               "t.yaml:7: plans.p2.price: \"x\" is not a decimal amount\n"
                               "t.yaml: 247 more problems not shown\n");
    /* At most 200 problems are kept; the others are counted. */
    assert_int_equal(count_lines(errbuf), 201);
    has_line("t.yaml:204: plans.p199.price: \"x\" is not a decimal amount");
    has_line("t.yaml: 50 more problems not shown");
    /* A NULL buffer is allowed. */
    assert_int_equal(tg_config_load_string("t.yaml", "x: [", 4, &cfg, NULL, 0), TG_ECONFIG);
}

static void test_yaml_features_and_caps(void **state)
{
    (void)state;
    /* Anchors, aliases and merge keys share settings between plans. */
    tg_config_t *cfg = load_ok(BASE "plans:\n"
                                    "  base: &base {price: \"10\", rate_limit: 5/min, features: &f [\"A\", \"B\"]}\n"
                                    "  copy: {<<: *base, price: \"20\", features: *f}\n"
                                    "  multi: {<<: [{trial_days: 3}, *base], name: M}\n");
    const tg_plan_t *p = tg_config_find_plan(cfg, "copy");
    assert_int_equal(p->price, INT64_C(20000000000));
    assert_int_equal(p->rate_limit.count, 5);
    assert_int_equal(p->nfeatures, 2);
    p = tg_config_find_plan(cfg, "multi");
    assert_int_equal(p->trial_days, 3);
    assert_int_equal(p->price, INT64_C(10000000000));
    assert_string_equal(p->name, "M");
    tg_config_free(cfg);
    /* Top-level keys starting with "x-" are ignored, so they can hold anchors. A key merged in
     * that does not belong names the line where it was written. */
    cfg = load_ok(BASE "x-limits: &lim {rate_limit: 9/min, burst: 3}\nplans: {p: {<<: *lim}}\n");
    assert_int_equal(cfg->plans[0].rate_limit.count, 9);
    assert_int_equal(cfg->plans[0].burst, 3);
    tg_config_free(cfg);
    only_error(BASE "x-defaults: &d\n  colour: red\nplans: {p: {<<: *d}}\n",
               "test.yaml:5: unknown key \"colour\" in plans.p (known: name, price, currency, interval, trial_days, "
               "rate_limit, burst, endpoints, included, on_quota, charges, minimum, maximum, block_at_maximum, "
               "features, requires_payment_method, require_email_confirmation, notify_thresholds)");
    only_error(BASE "access_log: {sample_success: 0.5}\nplans: {p: {}}\n",
               "test.yaml:4: access_log.path is required (a file, or \"-\" for standard output)");
    only_error(BASE "access_log: {path: x.log, sample_success: 1.5}\nplans: {p: {}}\n",
               "test.yaml:4: access_log.sample_success: \"1.5\" is not a number from 0 to 1");
    /* decide: optional; written, it needs its token; off without it */
    only_error(BASE "decide: {syslog: \"127.0.0.1:5514\"}\nplans: {p: {}}\n",
               "test.yaml:4: decide.token is required (at least 16 characters; use \"${TOLLGATE_DECIDE_TOKEN}\")");
    only_error(BASE "decide: {token: \"0123456789abcdef\", on_timeout: never}\nplans: {p: {}}\n",
               "test.yaml:4: decide.on_timeout: \"never\" is not bill or release");
    cfg = load_ok(BASE "plans: {p: {}}\n");
    assert_int_equal(cfg->decide.enabled, 0);
    tg_config_free(cfg);
    cfg = load_ok(BASE "decide: {token: \"0123456789abcdef\", syslog: \"127.0.0.1:5514\", on_timeout: release}\n"
                       "plans: {p: {}}\n");
    assert_int_equal(cfg->decide.enabled, 1);
    assert_string_equal(cfg->decide.syslog, "127.0.0.1:5514");
    assert_int_equal(cfg->decide.on_timeout, 1);
    assert_int_equal(cfg->decide.settle_timeout_ms, 60000);
    assert_int_equal(cfg->decide.max_pending, 65536);
    tg_config_free(cfg);
    only_error(BASE "log: {level: verbose}\nplans: {p: {}}\n",
               "test.yaml:4: log.level: \"verbose\" is not error, warn, info or debug");
    only_error(BASE "defaults: {}\nplans: {p: {}}\n",
               "test.yaml:4: unknown section \"defaults\" (known: server, listeners, public_urls, upstream, storage, "
               "admin, keys, metering, portal, metrics, access_log, log, decide, stripe, billing, dunning, cluster, "
               "notifications, email, events, plans, routes)");

    /* Depth cap. */
    char deep[512];
    size_t n = (size_t)snprintf(deep, sizeof(deep), "%s", BASE "plans: {p: {}}\nx: ");
    for (int i = 0; i < 40; i++)
        deep[n++] = '[';
    for (int i = 0; i < 40; i++)
        deep[n++] = ']';
    deep[n++] = '\n';
    deep[n] = '\0';
    only_error(deep, "test.yaml:5: nested deeper than 32 levels");

    /* "Billion laughs": each alias is a copy, so the node cap stops it. */
    const char *bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                       "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                       "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                       "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                       "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                       "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    load_err(bomb);
    assert_int_equal(count_lines(errbuf), 1);
    assert_non_null(strstr(errbuf, "more than 250000 YAML nodes"));

    /* Size cap, for strings and files. */
    size_t big = 1024 * 1024 + 1;
    char *huge = malloc(big + 1);
    memset(huge, '#', big);
    huge[big] = '\0';
    only_error(huge, "test.yaml: larger than 1 MiB (1048577 bytes)"); /* no line: the whole file */
    free(huge);
}

/* server.trusted_proxies, portal.signup and metrics (issue 10): defaults, values, FILE:LINE errors. */
static void test_admin_port_keys(void **state)
{
    (void)state;
    tg_config_t *cfg = load_ok(BASE "plans: {free: {}, pro: {}}\n");
    assert_int_equal(cfg->server.ntrusted_proxies, 0);
    assert_int_equal(cfg->portal.signup.enabled, 1);
    assert_null(cfg->portal.signup.plans); /* every plan */
    assert_int_equal(cfg->portal.signup.per_address.count, 10);
    assert_int_equal(cfg->portal.signup.trial_address_days, 30);
    assert_int_equal(cfg->metrics.open, 0);
    tg_config_free(cfg);
    cfg = load_ok(BASE "server: {trusted_proxies: [\"10.0.0.0/8\", \"::1\", \"fd00::/8\"]}\n"
                       "portal: {signup: {enabled: false, plans: [free], per_address: 3/day, global: 50/hour,"
                       " trial_address_days: 0, repeat_trial: refuse}}\n"
                       "metrics: {token: \"scraper-token-0123456789\", open: true}\n"
                       "plans: {free: {}, pro: {}}\n");
    assert_int_equal(cfg->server.ntrusted_proxies, 3);
    assert_int_equal(cfg->server.trusted_proxies[1].v6, 1);
    assert_int_equal(cfg->portal.signup.enabled, 0);
    assert_int_equal(cfg->portal.signup.nplans, 1);
    assert_string_equal(cfg->portal.signup.plans[0], "free");
    assert_int_equal(cfg->portal.signup.per_address.count, 3);
    assert_int_equal(cfg->portal.signup.repeat_trial_refuse, 1);
    assert_string_equal(cfg->metrics.token, "scraper-token-0123456789");
    assert_int_equal(cfg->metrics.open, 1);
    tg_config_free(cfg);
    load_err(BASE "server:\n  trusted_proxies:\n    - 10.0.0.0/8\n    - 10.0.0.1/8\n    - not-an-address\n"
                  "plans: {free: {}}\n");
    has_line("test.yaml:7: server.trusted_proxies[1]: \"10.0.0.1/8\" is not an IPv4 or IPv6 address or range (like "
             "10.0.0.0/8 or fd00::/8, host bits zero)");
    has_line("test.yaml:8: server.trusted_proxies[2]: \"not-an-address\" is not an IPv4 or IPv6 address or range (like "
             "10.0.0.0/8 or fd00::/8, host bits zero)");
    only_error(BASE "portal: {signup: {plans: [free, gold]}}\nplans: {free: {}}\n",
               "test.yaml:4: portal.signup.plans[1]: \"gold\" is not one of the plans");
    only_error(BASE "portal: {signup: {repeat_trial: maybe}}\nplans: {free: {}}\n",
               "test.yaml:4: portal.signup.repeat_trial: \"maybe\" is not skip or refuse");
    only_error(BASE "metrics: {token: short}\nplans: {free: {}}\n",
               "test.yaml:4: metrics.token is too short (5 characters; at least 16)");
}

/* Issue 16: check-config says when the decision API (with Envoy's ext_authz) is on, never the
 * token; the token's bounds (the section's other rules: test_yaml_features_and_caps). */
static void test_decide(void **state)
{
    (void)state;
    tg_config_t *cfg = load_ok(BASE "plans: {free: {}}\n");
    assert_null(cfg->decide.token);
    char *text = tg_config_describe(cfg);
    assert_null(strstr(text, "decision API"));
    free(text);
    tg_config_free(cfg);
    cfg = load_ok(BASE "decide: {token: \"decide-token-0123456789\"}\nplans: {free: {}}\n");
    assert_string_equal(cfg->decide.token, "decide-token-0123456789");
    text = tg_config_describe(cfg);
    assert_non_null(strstr(text, "Envoy ext_authz at /v1/decide/envoy (token in X-Tollgate-Token)"));
    assert_null(strstr(text, "decide-token-0123456789"));
    free(text);
    tg_config_free(cfg);
    only_error(BASE "decide: {token: short}\nplans: {free: {}}\n",
               "test.yaml:4: decide.token is too short (5 characters; at least 16)");
}

/* decide.syslog_secret: optional on loopback (main.c warns), required when decide.syslog can be
 * reached from the network; "${VAR}" expanded; never echoed, never described. */
static void test_decide_syslog_secret(void **state)
{
    (void)state;
#define DECIDE "decide: {token: \"decide-token-0123456789\", "
    tg_config_t *cfg = load_ok(BASE DECIDE "syslog: \"127.0.0.1:5514\"}\nplans: {free: {}}\n");
    assert_null(cfg->decide.syslog_secret);
    char *text = tg_config_describe(cfg);
    assert_non_null(strstr(text, "settlements from nginx over syslog on udp 127.0.0.1:5514, without "
                                 "decide.syslog_secret (loopback only)\n"));
    free(text);
    tg_config_free(cfg);
    cfg = load_ok(BASE DECIDE "syslog: \"[::1]:5514\"}\nplans: {free: {}}\n");
    tg_config_free(cfg);
    only_error(BASE DECIDE "syslog: \"0.0.0.0:5514\"}\nplans: {free: {}}\n",
               "test.yaml:4: decide.syslog: \"0.0.0.0:5514\" is not a loopback address, and decide.syslog_secret is "
               "not set: anybody who can reach it could settle calls; set syslog_secret (use "
               "\"${TOLLGATE_SYSLOG_SECRET}\") and put it in nginx's log_format");
    only_error(BASE DECIDE "syslog: \":5514\"}\nplans: {free: {}}\n",
               "test.yaml:4: decide.syslog: \":5514\" is not a loopback address, and decide.syslog_secret is not "
               "set: anybody who can reach it could settle calls; set syslog_secret (use "
               "\"${TOLLGATE_SYSLOG_SECRET}\") and put it in nginx's log_format");
    setenv("TG_TEST_SYSLOG_SECRET", "syslog-secret-0123456789", 1);
    cfg = load_ok(BASE DECIDE "syslog: \"10.0.0.7:5514\",\n"
                              "  syslog_secret: \"${TG_TEST_SYSLOG_SECRET}\"}\nplans: {free: {}}\n");
    assert_string_equal(cfg->decide.syslog_secret, "syslog-secret-0123456789");
    text = tg_config_describe(cfg);
    assert_non_null(strstr(text, "on udp 10.0.0.7:5514, lines carry decide.syslog_secret\n"));
    assert_null(strstr(text, "syslog-secret-0123456789"));
    free(text);
    tg_config_free(cfg);
    only_error(BASE DECIDE "syslog_secret: short}\nplans: {free: {}}\n",
               "test.yaml:4: decide.syslog_secret is too short (5 characters; at least 16)");
    load_err(BASE DECIDE "syslog_secret: \"with space 0123456789$\"}\nplans: {free: {}}\n");
    has_line("test.yaml:4: decide.syslog_secret: the value may hold only letters, digits and - _ . ~ + / = (it is "
             "literal text in nginx's log_format)");
    assert_null(strstr(errbuf, "with space"));
#undef DECIDE
}

/* Issue 15: metering.metrics (display names, units) and portal branding. */
static void test_display(void **state)
{
    (void)state;
    tg_config_t *cfg = load_ok(BASE "plans: {free: {included: {api_calls: 10}}}\n");
    assert_int_equal(cfg->metering.nmetrics, 0);
    assert_string_equal(tg_config_metric_name(cfg, "api_calls"), "api_calls"); /* the id, when not named */
    assert_string_equal(tg_config_metric_unit(cfg, "api_calls"), "unit");
    assert_null(cfg->portal.title);
    assert_null(cfg->portal.logo);
    tg_config_free(cfg);

    cfg = load_ok(BASE "metering:\n"
                       "  metrics:\n"
                       "    api_calls: {name: \"API calls\", unit: call}\n"
                       "    images: {name: \"Images\"}\n"
                       "    gb: \n"
                       "portal:\n"
                       "  title: \"Acme API\"\n"
                       "  logo: \"https://cdn.example.com:8443/acme/logo.svg\"\n"
                       "  primary_color: \"#A0b1c2\"\n"
                       "  support_email: help@acme.example\n"
                       "  terms_url: \"https://acme.example/terms?v=2\"\n"
                       "  privacy_url: \"http://[::1]:8080/privacy\"\n"
                       "plans: {free: {included: {images: 5}, charges: [{metric: gb, model: per_unit, unit_price: \"0.1\"}]}}\n");
    assert_int_equal(cfg->metering.nmetrics, 3);
    assert_string_equal(tg_config_metric_name(cfg, "api_calls"), "API calls");
    assert_string_equal(tg_config_metric_unit(cfg, "api_calls"), "call");
    assert_string_equal(tg_config_metric_name(cfg, "images"), "Images");
    assert_string_equal(tg_config_metric_unit(cfg, "images"), "unit");
    assert_string_equal(tg_config_metric_name(cfg, "gb"), "gb");
    assert_int_equal(cfg->metering.metrics[1].line, 7);
    assert_string_equal(cfg->portal.title, "Acme API");
    assert_string_equal(cfg->portal.logo, "https://cdn.example.com:8443/acme/logo.svg");
    assert_string_equal(cfg->portal.primary_color, "#A0b1c2");
    assert_string_equal(cfg->portal.support_email, "help@acme.example");
    assert_string_equal(cfg->portal.terms_url, "https://acme.example/terms?v=2");
    assert_string_equal(cfg->portal.privacy_url, "http://[::1]:8080/privacy");
    tg_config_free(cfg);
    cfg = load_ok(BASE "portal: {logo: /portal/logo.svg}\nplans: {free: {}}\n");
    assert_string_equal(cfg->portal.logo, "/portal/logo.svg");
    tg_config_free(cfg);
    /* portal.highlight: a plan declared after the portal section; an unknown one at its line */
    cfg = load_ok(BASE "portal: {highlight: pro}\nplans: {free: {}, pro: {price: \"49\"}}\n");
    assert_string_equal(cfg->portal.highlight, "pro");
    tg_config_free(cfg);
    only_error(BASE "portal:\n  title: x\n  highlight: platinum\nplans: {free: {}, pro: {}}\n",
               "test.yaml:6: portal.highlight: \"platinum\" is not one of the plans");

    /* every problem at once, each on its line */
    load_err(BASE "metering:\n"
                  "  metrics:\n"
                  "    API-Calls: {name: x}\n"
                  "    api_calls: {name: \"\", unit: call, plural: calls}\n"
                  "    imagez: {name: Images}\n"
                  "    api_calls: {name: again}\n"
                  "portal:\n"
                  "  logo: \"ftp://example.com/logo.png\"\n"
                  "  primary_color: blue\n"
                  "  support_email: \"not an address\"\n"
                  "  terms_url: \"https://acme.example/terms of use\"\n"
                  "  privacy_url: \"https://\"\n"
                  "plans: {free: {}}\n");
    has_line("test.yaml:6: metering.metrics: \"API-Calls\" is not a metric name (1 to 63 of a-z, 0-9, _)");
    has_line("test.yaml:7: metering.metrics.api_calls.name must not be empty");
    has_line("test.yaml:7: unknown key \"plural\" in metering.metrics.api_calls (known: name, unit)");
    has_line("test.yaml:8: metering.metrics.imagez: no route meters it and no plan includes or prices it (a typo?)");
    has_line("test.yaml:9: metering.metrics: metric \"api_calls\" is listed twice");
    has_line("test.yaml:11: portal.logo: \"ftp://example.com/logo.png\" is not an http:// or https:// URL");
    has_line("test.yaml:12: portal.primary_color: \"blue\" is not a color like \"#2457d6\" (#rrggbb)");
    has_line("test.yaml:13: portal.support_email: \"not an address\" is not an address like support@example.com");
    has_line("test.yaml:14: portal.terms_url: \"https://acme.example/terms of use\" must not contain spaces, quotes, "
             "angle brackets, backslashes or non-ASCII characters (percent-encode them)");
    has_line("test.yaml:15: portal.privacy_url: \"https://\" has no valid host[:port] after the scheme");
    only_error(BASE "portal: {primary_color: \"#12345g\"}\nplans: {free: {}}\n",
               "test.yaml:4: portal.primary_color: \"#12345g\" is not a color like \"#2457d6\" (#rrggbb)");
    only_error(BASE "portal: {logo: \"//cdn.example.com/x.png\"}\nplans: {free: {}}\n",
               "test.yaml:4: portal.logo: \"//cdn.example.com/x.png\" is a scheme-relative URL; write https://HOST/... "
               "or a path starting with one '/'");
    only_error(BASE "portal: {logo: \"https://evil.example;script-src/x.png\"}\nplans: {free: {}}\n",
               "test.yaml:4: portal.logo: \"https://evil.example;script-src/x.png\" has no valid host[:port] after "
               "the scheme");
    only_error(BASE "portal: {logo: \"http://[::1]:8080/logo.png\"}\nplans: {free: {}}\n",
               "test.yaml:4: portal.logo: \"http://[::1]:8080/logo.png\" names an IPv6 address, which a "
               "Content-Security-Policy cannot allow; use a host name");
    only_error(BASE "portal: {terms_url: \"https://a.example:99999/t\"}\nplans: {free: {}}\n",
               "test.yaml:4: portal.terms_url: \"https://a.example:99999/t\" has no valid host[:port] after the scheme");
    only_error(BASE "metering: {metrics: [api_calls]}\nplans: {free: {}}\n",
               "test.yaml:4: metering.metrics: expected a mapping of metric: {name, unit}, got a list");
}

/* Lines 4-5 of the stripe tests: a valid stripe section on one line. */
#define STRIPE_OK "stripe: {secret_key: sk_test_abc123, webhook_secret: whsec_xyz}\n"

static void test_stripe_defaults_and_values(void **state)
{
    (void)state;
    /* No stripe section: off, drafts by hand, dunning defaults, no payment method needed. */
    tg_config_t *cfg = load_ok(BASE "plans: {p: {}}\n");
    assert_int_equal(cfg->stripe.enabled, 0);
    assert_null(cfg->stripe.secret_key);
    assert_int_equal(cfg->stripe.nwebhook_secrets, 0);
    assert_int_equal(cfg->billing.finalize_after_s, 0);
    assert_int_equal(cfg->dunning.grace_days, 7);
    assert_int_equal(cfg->dunning.suspend_after_failures, 3);
    assert_int_equal(cfg->plans[0].requires_payment_method, 0);
    char *d = tg_config_describe(cfg);
    assert_non_null(strstr(d, "stripe off (invoices are finalized and marked paid by the owner)\n"));
    free(d);
    tg_config_free(cfg);

    /* The minimal section: its defaults. */
    cfg = load_ok(BASE STRIPE_OK "plans: {p: {requires_payment_method: true}}\n");
    assert_int_equal(cfg->stripe.enabled, 1);
    assert_string_equal(cfg->stripe.secret_key, "sk_test_abc123");
    assert_int_equal(cfg->stripe.nwebhook_secrets, 1);
    assert_string_equal(cfg->stripe.webhook_secrets[0], "whsec_xyz");
    assert_string_equal(cfg->stripe.api_base, "https://api.stripe.com");
    assert_int_equal(cfg->stripe.billing, TG_STRIPE_BILLING_TOLLGATE);
    assert_int_equal(cfg->stripe.collection, TG_STRIPE_CHARGE_AUTOMATICALLY);
    assert_int_equal(cfg->stripe.days_until_due, 0);
    assert_int_equal(cfg->billing.finalize_after_s, 3600);
    assert_int_equal(cfg->plans[0].requires_payment_method, 1);
    d = tg_config_describe(cfg);
    assert_non_null(strstr(d, "stripe test mode, secret key, billing tollgate, collection charge_automatically, api "
                              "https://api.stripe.com, 1 webhook secret\n"));
    assert_null(strstr(d, "sk_test_abc123")); /* check-config never prints a secret */
    assert_null(strstr(d, "whsec_xyz"));
    assert_non_null(strstr(d, "plan p \"p\": 0.00 usd per month, card on file required\n"));
    free(d);
    tg_config_free(cfg);

    /* Every key, from the environment as the example does; a list of webhook secrets. */
    setenv("TG_TEST_STRIPE_KEY", "rk_live_0123456789", 1);
    cfg = load_ok(BASE "stripe:\n"
                       "  secret_key: \"${TG_TEST_STRIPE_KEY}\"\n"
                       "  webhook_secret: [whsec_new, whsec_old]\n"
                       "  api_base: \"http://127.0.0.1:12111\"\n"
                       "  billing: stripe\n"
                       "  collection: send_invoice\n"
                       "  days_until_due: 30\n"
                       "billing: {finalize_after: 90s}\n"
                       "dunning: {grace_days: 0, suspend_after_failures: 1}\n"
                       "plans: {p: {requires_payment_method: false}}\n");
    assert_string_equal(cfg->stripe.secret_key, "rk_live_0123456789");
    assert_int_equal(cfg->stripe.nwebhook_secrets, 2);
    assert_string_equal(cfg->stripe.webhook_secrets[1], "whsec_old");
    assert_string_equal(cfg->stripe.api_base, "http://127.0.0.1:12111");
    assert_int_equal(cfg->stripe.billing, TG_STRIPE_BILLING_STRIPE);
    assert_int_equal(cfg->stripe.collection, TG_STRIPE_SEND_INVOICE);
    assert_int_equal(cfg->stripe.days_until_due, 30);
    assert_int_equal(cfg->billing.finalize_after_s, 90);
    assert_int_equal(cfg->dunning.grace_days, 0);
    assert_int_equal(cfg->dunning.suspend_after_failures, 1);
    d = tg_config_describe(cfg);
    assert_non_null(strstr(d, "stripe live mode, restricted key, billing stripe, collection send_invoice (due in 30 "
                              "days), api http://127.0.0.1:12111, 2 webhook secrets\n"));
    assert_null(strstr(d, "rk_live_0123456789"));
    free(d);
    tg_config_free(cfg);

    static const struct {
        const char *text;
        int64_t seconds;
    } durations[] = {{"1s", 1}, {"30m", 1800}, {"1h", 3600}, {"7d", 604800}, {"365d", 31536000}, {"off", 0}};
    for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
        char yaml[512];
        snprintf(yaml, sizeof(yaml), BASE STRIPE_OK "billing: {finalize_after: %s}\nplans: {p: {}}\n",
                 durations[i].text);
        cfg = load_ok(yaml);
        assert_int_equal(cfg->billing.finalize_after_s, durations[i].seconds);
        tg_config_free(cfg);
    }
    /* portal.public_url: the admin port by default, "*" as localhost; or as given. */
    cfg = load_ok(BASE "plans: {p: {}}\n");
    assert_string_equal(cfg->portal.public_url, "http://127.0.0.1:8081");
    tg_config_free(cfg);
    cfg = load_ok(BASE "server: {admin_listen: \"*:9091\"}\nplans: {p: {}}\n");
    assert_string_equal(cfg->portal.public_url, "http://localhost:9091");
    tg_config_free(cfg);
    cfg = load_ok(BASE "portal: {public_url: \"https://api.example.com\"}\nplans: {p: {}}\n");
    assert_string_equal(cfg->portal.public_url, "https://api.example.com");
    tg_config_free(cfg);
    only_error(BASE "portal: {public_url: \"https://api.example.com/portal\"}\nplans: {p: {}}\n",
               "test.yaml:4: portal.public_url: \"https://api.example.com/portal\" is not an http(s)://host[:port] URL "
               "without a path");
    cfg = load_ok(BASE "billing: {finalize_after: 2h}\nplans: {p: {}}\n"); /* automatic without Stripe too */
    assert_int_equal(cfg->billing.finalize_after_s, 7200);
    tg_config_free(cfg);
}

static void test_stripe_errors(void **state)
{
    (void)state;
    only_error(BASE "stripe: {secret_key: pk_test_abc, webhook_secret: whsec_x}\nplans: {p: {}}\n",
               "test.yaml:4: stripe.secret_key: the value starts with pk_test_: a publishable key; expected a secret "
               "key (sk_test_..., sk_live_...) or a restricted key (rk_test_..., rk_live_...)");
    assert_null(strstr(errbuf, "pk_test_abc")); /* the value itself is never echoed */
    only_error(BASE "stripe: {secret_key: whsec_abcdefgh, webhook_secret: whsec_x}\nplans: {p: {}}\n",
               "test.yaml:4: stripe.secret_key: the value starts with whsec_: a webhook signing secret (it goes in "
               "stripe.webhook_secret); expected a secret key (sk_test_..., sk_live_...) or a restricted key "
               "(rk_test_..., rk_live_...)");
    only_error(BASE "stripe: {secret_key: sometoken123, webhook_secret: whsec_x}\nplans: {p: {}}\n",
               "test.yaml:4: stripe.secret_key: the value does not start with sk_test_, sk_live_, rk_test_ or "
               "rk_live_ (a Stripe secret or restricted key)");
    assert_null(strstr(errbuf, "sometoken123"));
    only_error(BASE "stripe: {secret_key: sk_test_, webhook_secret: whsec_x}\nplans: {p: {}}\n",
               "test.yaml:4: stripe.secret_key is too short (8 characters; at least 9)");
    only_error(BASE "stripe:\n  webhook_secret: whsec_x\nplans: {p: {}}\n",
               "test.yaml:5: stripe.secret_key is required (sk_test_..., sk_live_... or a restricted rk_...; use "
               "\"${STRIPE_SECRET_KEY}\")");
    only_error(BASE "stripe:\n  secret_key: sk_test_1\nplans: {p: {}}\n",
               "test.yaml:5: stripe.webhook_secret is required (the endpoint's whsec_... signing secret; use "
               "\"${STRIPE_WEBHOOK_SECRET}\")");
    only_error(BASE "stripe: {secret_key: sk_test_1, webhook_secret: wh_secret}\nplans: {p: {}}\n",
               "test.yaml:4: stripe.webhook_secret: the value does not start with whsec_ (a Stripe webhook signing "
               "secret)");
    assert_null(strstr(errbuf, "wh_secret"));
    only_error(BASE "stripe:\n  secret_key: sk_test_1\n  webhook_secret:\n    - whsec_a\n    - other\nplans: {p: {}}\n",
               "test.yaml:8: stripe.webhook_secret[1]: the value does not start with whsec_ (a Stripe webhook "
               "signing secret)");
    only_error(BASE "stripe: {secret_key: sk_test_1, webhook_secret: []}\nplans: {p: {}}\n",
               "test.yaml:4: stripe.webhook_secret: the list is empty (give at least one whsec_... secret)");
    only_error(BASE "stripe: {secret_key: sk_test_1, webhook_secret: [whsec_1, whsec_2, whsec_3, whsec_4, whsec_5]}\n"
                    "plans: {p: {}}\n",
               "test.yaml:4: stripe.webhook_secret: at most 4 webhook secrets (found 5)");
    only_error(BASE "stripe: {secret_key: sk_test_1, webhook_secret: whsec_1, api_base: \"http://api.stripe.com\"}\n"
                    "plans: {p: {}}\n",
               "test.yaml:4: stripe.api_base: \"http://api.stripe.com\" is http:// to a host that is not loopback; the "
               "secret key would travel in clear (http:// is for a local test server only)");
    only_error(BASE "stripe: {secret_key: sk_test_1, webhook_secret: whsec_1, api_base: \"https://api.stripe.com/\"}\n"
                    "plans: {p: {}}\n",
               "test.yaml:4: stripe.api_base: \"https://api.stripe.com/\" must not end with \"/\" (paths like "
               "/v1/customers are appended to it)");
    only_error(BASE "stripe: {secret_key: sk_test_1, webhook_secret: whsec_1, api_base: \"ftp://x\"}\n"
                    "plans: {p: {}}\n",
               "test.yaml:4: stripe.api_base: \"ftp://x\" is not an https://host[:port] URL");
    only_error(BASE "stripe: {secret_key: sk_test_1, webhook_secret: whsec_1, billing: both}\nplans: {p: {}}\n",
               "test.yaml:4: stripe.billing: \"both\" is not tollgate or stripe");
    only_error(BASE "stripe: {secret_key: sk_test_1, webhook_secret: whsec_1, collection: invoice}\nplans: {p: {}}\n",
               "test.yaml:4: stripe.collection: \"invoice\" is not charge_automatically or send_invoice");
    only_error(BASE "stripe:\n  secret_key: sk_test_1\n  webhook_secret: whsec_1\n  collection: send_invoice\n"
                    "plans: {p: {}}\n",
               "test.yaml:7: stripe.days_until_due is required with collection: send_invoice");
    only_error(BASE "stripe:\n  secret_key: sk_test_1\n  webhook_secret: whsec_1\n  days_until_due: 10\n"
                    "plans: {p: {}}\n",
               "test.yaml:7: stripe.days_until_due: has no effect with collection: charge_automatically (only with "
               "send_invoice)");
    only_error(BASE "stripe: {secret_key: sk_test_1, webhook_secret: whsec_1, collection: send_invoice,"
                    " days_until_due: 0}\nplans: {p: {}}\n",
               "test.yaml:4: stripe.days_until_due: \"0\" is not a whole number from 1 to 365");
    only_error(BASE "stripe:\nplans: {p: {}}\n", "test.yaml:4: stripe has no value");
    only_error(BASE "stripe: [sk_test_1]\nplans: {p: {}}\n", "test.yaml:4: stripe: expected a mapping, got a list");
    only_error(BASE STRIPE_OK "billing: {finalize_after: 1w}\nplans: {p: {}}\n",
               "test.yaml:5: billing.finalize_after: \"1w\" is not a duration (N followed by s, m, h or d, up to 365d; "
               "or off)");
    only_error(BASE STRIPE_OK "billing: {finalize_after: 366d}\nplans: {p: {}}\n",
               "test.yaml:5: billing.finalize_after: \"366d\" is not a duration (N followed by s, m, h or d, up to "
               "365d; or off)");
    only_error(BASE STRIPE_OK "dunning: {suspend_after_failures: 0}\nplans: {p: {}}\n",
               "test.yaml:5: dunning.suspend_after_failures: \"0\" is not a whole number from 1 to 100");
    only_error(BASE STRIPE_OK "dunning: {grace_days: -1}\nplans: {p: {}}\n",
               "test.yaml:5: dunning.grace_days: \"-1\" is not a whole number from 0 to 365");
    only_error(BASE STRIPE_OK "dunning: {grace: 7}\nplans: {p: {}}\n",
               "test.yaml:5: unknown key \"grace\" in dunning (known: grace_days, suspend_after_failures)");
    only_error(BASE "dunning: {grace_days: 3}\nplans: {p: {}}\n",
               "test.yaml:4: dunning: has no effect without a stripe section (no payment can fail)");
    only_error(BASE "plans:\n  free: {}\n  pro: {requires_payment_method: true}\n",
               "test.yaml:6: plans.pro.requires_payment_method: needs a stripe section (a card is added through "
               "Stripe)");
    only_error(BASE STRIPE_OK "plans: {p: {requires_payment_method: maybe}}\n",
               "test.yaml:5: plans.p.requires_payment_method: \"maybe\" is not true or false");
    /* Every problem at once, each at its line. */
    load_err(BASE "stripe:\n  secret_key: pk_live_1\n  webhook_secret: nope\n  billing: x\nplans: {p: {}}\n");
    assert_int_equal(count_lines(errbuf), 3);
    has_line("test.yaml:5: stripe.secret_key: the value starts with pk_live_: a publishable key; expected a secret "
             "key (sk_test_..., sk_live_...) or a restricted key (rk_test_..., rk_live_...)");
    has_line("test.yaml:6: stripe.webhook_secret: the value does not start with whsec_ (a Stripe webhook signing "
             "secret)");
    has_line("test.yaml:7: stripe.billing: \"x\" is not tollgate or stripe");
}

static void test_load_file(void **state)
{
    (void)state;
    tg_config_t *cfg = NULL;
    assert_int_equal(tg_config_load("/nonexistent/tollgate.yaml", &cfg, errbuf, sizeof(errbuf)), TG_ECONFIG);
    assert_null(cfg);
    assert_string_equal(errbuf, "/nonexistent/tollgate.yaml: cannot open: No such file or directory\n");

    char path[] = "/tmp/tg_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *yaml = BASE "plans:\n  p: {rate_limit: lots}\n";
    assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    assert_int_equal(tg_config_load(path, &cfg, errbuf, sizeof(errbuf)), TG_ECONFIG);
    char expect[256];
    snprintf(expect, sizeof(expect),
             "%s:5: plans.p.rate_limit: \"lots\" is not N/sec|min|hour|day (N from 1 to "
             "1000000000)\n",
             path);
    assert_string_equal(errbuf, expect);

    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 1024 * 1024 / 16 + 1; i++)
        fputs("# padding.......\n", f);
    fclose(f);
    assert_int_equal(tg_config_load(path, &cfg, errbuf, sizeof(errbuf)), TG_ECONFIG);
    snprintf(expect, sizeof(expect), "%s: larger than 1 MiB\n", path);
    assert_string_equal(errbuf, expect);
    unlink(path);
}

static void test_path_match(void **state)
{
    (void)state;
    static const struct {
        const char *pattern, *path;
        int match;
    } cases[] = {
        {"/v1/basic/*", "/v1/basic/x/y", 1}, /* '*' crosses '/' */
        {"/v1/basic/*", "/v1/basic/", 1},    /* '*' may match nothing */
        {"/v1/basic/*", "/v1/basic", 0},
        {"/v1/basic/*", "/v1/basics", 0},
        {"/v1/*/tag", "/v1/vision/tag", 1},
        {"/v1/*/tag", "/v1/a/b/tag", 1},
        {"/v1/*/tag", "/v1/vision/tags", 0},
        {"/v1/*/tag", "/v1/tag", 0},
        {"*", "/", 1},
        {"*", "", 1},
        {"/exact", "/exact", 1},
        {"/exact", "/exact/", 0},
        {"/exact", "/exac", 0},
        {"/Exact", "/exact", 0}, /* case-sensitive */
        {"/a*b*c", "/a-x-b-y-c", 1},
        {"/a*b*c", "/a-x-c-y-b", 0},
        {"/a*a*a*a*b", "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0}, /* no blow-up */
        {"/*.json", "/v1/items.json", 1},
        {"/*.json", "/v1/items.json.bak", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (tg_path_match(cases[i].pattern, cases[i].path, strlen(cases[i].path)) != cases[i].match)
            fail_msg("tg_path_match(\"%s\", \"%s\") != %d", cases[i].pattern, cases[i].path, cases[i].match);
    /* The length bounds the path: no NUL needed, nothing read past it. */
    assert_true(tg_path_match("/v1/*", "/v1/x?query", 5));
    assert_false(tg_path_match("/v1/x", "/v1/xy", 6));
    assert_true(tg_path_match("/v1/x", "/v1/xy", 5));
}

static void test_route_match(void **state)
{
    (void)state;
    tg_config_t *cfg = load_ok(BASE "plans: {p: {}}\nroutes:\n"
                                    "  - {match: \"POST /v1/vision/*\", weight: 10}\n"
                                    "  - {match: \"/v1/*\", meter: {tokens: 5}}\n"
                                    "  - {match: \"GET /v2/*\", weight: 3}\n");
    const tg_route_t *r = tg_config_match_route(cfg, "POST", 4, "/v1/vision/a", 12);
    assert_non_null(r);
    assert_ptr_equal(r, &cfg->routes[0]);
    assert_int_equal(r->weight, 10);
    assert_int_equal(r->nmeter, 1);
    assert_string_equal(r->meter[0].metric, "api_calls"); /* the default meter */
    assert_int_equal(r->meter[0].units, 1);
    /* Other methods fall through to the next route that matches: first match wins. */
    r = tg_config_match_route(cfg, "GET", 3, "/v1/vision/a", 12);
    assert_ptr_equal(r, &cfg->routes[1]);
    assert_int_equal(r->weight, 1);
    assert_string_equal(r->meter[0].metric, "tokens");
    assert_int_equal(r->meter[0].units, 5);
    assert_null(r->method);
    /* Methods are case-sensitive and compared by length. */
    assert_ptr_equal(tg_config_match_route(cfg, "post", 4, "/v1/vision/a", 12), &cfg->routes[1]);
    assert_ptr_equal(tg_config_match_route(cfg, "POSTX", 5, "/v1/vision/a", 12), &cfg->routes[1]);
    assert_ptr_equal(tg_config_match_route(cfg, "POSTX", 4, "/v1/vision/a", 12), &cfg->routes[0]);
    assert_ptr_equal(tg_config_match_route(cfg, "GET", 3, "/v2/x", 5), &cfg->routes[2]);
    assert_null(tg_config_match_route(cfg, "PUT", 3, "/v2/x", 5));
    assert_null(tg_config_match_route(cfg, "GET", 3, "/v3/x", 5));
    assert_null(tg_config_match_route(cfg, "GET", 3, "/", 1));
    tg_config_free(cfg);

    cfg = load_ok(BASE "plans: {p: {}, closed: {endpoints: []}}\n");
    assert_null(tg_config_match_route(cfg, "GET", 3, "/v1/x", 5)); /* no routes at all */
    assert_true(tg_plan_allows(&cfg->plans[0], "/v1/x", 5));       /* no list: every path */
    assert_false(tg_plan_allows(&cfg->plans[1], "/v1/x", 5));      /* an empty list: none */
    tg_config_free(cfg);
}

/* billing.close_cpus: a CPU list, checked where it is written (FILE:LINE, what is wrong); unset
 * without it. */
static void test_close_cpus(void **state)
{
    (void)state;
    tg_config_t *cfg = load_ok(BASE "plans: {p: {}}\n");
    assert_null(cfg->billing.close_cpus);
    tg_config_free(cfg);
    cfg = load_ok(BASE "billing: {close_cpus: \"0-1,3\"}\nplans: {p: {}}\n");
    assert_string_equal(cfg->billing.close_cpus, "0-1,3");
    tg_config_free(cfg);
    only_error(BASE "billing: {close_cpus: \"3-1\"}\nplans: {p: {}}\n",
               "test.yaml:4: billing.close_cpus: \"3-1\" has the range 3-1, which runs backwards");
    only_error(BASE "billing: {close_cpus: \"0,\"}\nplans: {p: {}}\n",
               "test.yaml:4: billing.close_cpus: \"0,\" is not a CPU list (numbers and ranges, as 0 or 0-1,3): a "
               "CPU number is expected at position 3");
    only_error(BASE "billing: {close_cpus: \"99999\"}\nplans: {p: {}}\n",
               "test.yaml:4: billing.close_cpus: \"99999\" names a CPU past 1023 (CPU numbers are below 1024)");
    only_error(BASE "billing: {close_cpus: \"\"}\nplans: {p: {}}\n", "test.yaml:4: billing.close_cpus must not be empty");
}

/* cluster: the Redis URL's shape and the node id are checked where they are written; without the
 * section limits stay local (redis NULL) and the node id is the host name. */
static void test_cluster(void **state)
{
    (void)state;
    tg_config_t *cfg = load_ok(BASE "plans: {p: {}}\n");
    assert_null(cfg->cluster.redis);
    char *local = tg_config_describe(cfg);
    assert_non_null(strstr(local, "limits local to this node (no cluster.redis)\n"));
    free(local);
    assert_non_null(cfg->cluster.node_id);
    assert_true(strlen(cfg->cluster.node_id) > 0);
    assert_int_equal(cfg->cluster.sync_ms, 20);
    tg_config_free(cfg);
    cfg = load_ok(BASE "cluster: {redis: \"redis://:pw@10.0.0.5:6380/2\", node_id: gw-1, sync_ms: 50}\n"
                       "plans: {p: {}}\n");
    assert_string_equal(cfg->cluster.redis, "redis://:pw@10.0.0.5:6380/2");
    assert_string_equal(cfg->cluster.node_id, "gw-1");
    assert_int_equal(cfg->cluster.sync_ms, 50);
    char *d = tg_config_describe(cfg);
    assert_non_null(strstr(d, "limits shared through Redis 10.0.0.5:6380/2 as node gw-1 (sync every 50 ms)\n"));
    assert_null(strstr(d, "pw"));
    free(d);
    tg_config_free(cfg);
    only_error(BASE "cluster: {redis: \"http://127.0.0.1:6379\"}\nplans: {p: {}}\n",
               "test.yaml:4: cluster.redis: the value must be redis://HOST[:PORT][/DB], like redis://127.0.0.1:6379/0");
    only_error(BASE "cluster: {redis: \"redis://:secretpw@127.0.0.1:99999/0\"}\nplans: {p: {}}\n",
               "test.yaml:4: cluster.redis: the value has a port that is not a number from 1 to 65535");
    only_error(BASE "cluster: {redis: \"redis://127.0.0.1/16\"}\nplans: {p: {}}\n",
               "test.yaml:4: cluster.redis: the value has a database that is not a number from 0 to 15");
    only_error(BASE "cluster:\n  node_id: \"gw 1\"\nplans: {p: {}}\n",
               "test.yaml:5: cluster.node_id: \"gw 1\" may hold only letters, digits, '-', '_' and '.'");
    only_error(BASE "cluster: {sync_ms: 0}\nplans: {p: {}}\n",
               "test.yaml:4: cluster.sync_ms: \"0\" is not a whole number from 1 to 1000");
}

/* email: values, defaults, the envelope address, and each bad value with its line. */
static void test_email(void **state)
{
    (void)state;
    tg_config_t *cfg = load_ok(BASE "plans: {p: {}}\n");
    assert_int_equal(cfg->email.enabled, 0);
    tg_config_free(cfg);

    setenv("TG_TEST_SMTP_PASSWORD", "smtp-pass-word", 1);
    cfg = load_ok(BASE "email:\n  smtp_url: \"smtp://127.0.0.1:2525\"\n"
                       "  from: \"API billing <billing@example.com>\"\n  username: billing\n"
                       "  password: \"${TG_TEST_SMTP_PASSWORD}\"\n  starttls: true\n  templates: mail/templates\n"
                       "plans: {p: {require_email_confirmation: true}}\n");
    assert_int_equal(cfg->email.enabled, 1);
    assert_string_equal(cfg->email.smtp_url, "smtp://127.0.0.1:2525");
    assert_string_equal(cfg->email.from, "API billing <billing@example.com>");
    assert_string_equal(cfg->email.from_addr, "billing@example.com");
    assert_string_equal(cfg->email.username, "billing");
    assert_string_equal(cfg->email.password, "smtp-pass-word");
    assert_int_equal(cfg->email.starttls, 1);
    assert_string_equal(cfg->email.templates, "mail/templates");
    assert_int_equal(cfg->plans[0].require_email_confirmation, 1);
    tg_config_free(cfg);

    cfg = load_ok(BASE "email: {smtp_url: \"smtps://mail.example.com\", from: \"a@b.example\"}\nplans: {p: {}}\n");
    assert_string_equal(cfg->email.from_addr, "a@b.example");
    assert_int_equal(cfg->email.starttls, 0);
    assert_null(cfg->email.username);
    tg_config_free(cfg);

    only_error(BASE "email: {from: \"a@b.example\"}\nplans: {p: {}}\n",
               "test.yaml:4: email.smtp_url is required (like smtp://127.0.0.1:2525 or smtps://mail.example.com)");
    only_error(BASE "email:\n  smtp_url: \"http://127.0.0.1:25\"\n  from: a@b.example\nplans: {p: {}}\n",
               "test.yaml:5: email.smtp_url: \"http://127.0.0.1:25\" is not an smtp://host[:port] or "
               "smtps://host[:port] URL");
    only_error(BASE "email:\n  smtp_url: \"smtp://h:70000\"\n  from: a@b.example\nplans: {p: {}}\n",
               "test.yaml:5: email.smtp_url: \"smtp://h:70000\" has a port that is not 1-65535");
    only_error(BASE "email:\n  smtp_url: \"smtp://h\"\n  from: \"Billing <not an address>\"\nplans: {p: {}}\n",
               "test.yaml:6: email.from: \"Billing <not an address>\" is not \"Name <address@host>\" or "
               "\"address@host\"");
    only_error(BASE "email:\n  smtp_url: \"smtp://h\"\n  from: a@b.example\n  password: \"secret-pw\"\n"
                    "plans: {p: {}}\n",
               "test.yaml:7: email.password: needs email.username");
    assert_null(strstr(errbuf, "secret-pw"));
    only_error(BASE "email:\n  smtp_url: \"smtps://h\"\n  from: a@b.example\n  starttls: true\nplans: {p: {}}\n",
               "test.yaml:7: email.starttls: has no effect with smtps:// (TLS from the first byte); use smtp:// for "
               "STARTTLS");
    only_error(BASE "email:\n  smtp_url: \"smtp://h\"\n  from: a@b.example\n  starttls: maybe\nplans: {p: {}}\n",
               "test.yaml:7: email.starttls: \"maybe\" is not true or false");
    only_error(BASE "email:\n  smtp_url: \"smtp://mail.example.com:587\"\n  from: a@b.example\n  username: u\n"
                    "  password: pw\nplans: {p: {}}\n",
               "test.yaml:7: email.username: the password would cross the network in clear over smtp:// without TLS; "
               "set email.starttls: true or use smtps://");
    cfg = load_ok(BASE "email: {smtp_url: \"smtp://127.0.0.1:2525\", from: a@b.example, username: u, password: pw}\n"
                       "plans: {p: {}}\n");
    tg_config_free(cfg);
    only_error(BASE "plans:\n  p: {require_email_confirmation: true}\n",
               "test.yaml:5: plans.p.require_email_confirmation: needs an email section (the confirmation is sent by "
               "mail)");
}

/* events: (issue 16): absent, POST /v1/events is not answered; each token's rules; the window. */
static void test_events_section(void **state)
{
    (void)state;
    tg_config_t *cfg = load_ok(BASE "plans: {p: {charges: [{metric: tokens, model: per_unit, unit_price: \"1\"}]}}\n");
    assert_int_equal(cfg->events.enabled, 0);
    assert_int_equal(cfg->events.max_batch, 1000);
    assert_int_equal(cfg->events.dedup_window_s, 35 * 86400);
    assert_int_equal(cfg->events.index_keys, 0); /* the dedup index grows as it needs */
    assert_true(tg_config_metric_defined(cfg, "tokens"));
    assert_true(tg_config_metric_defined(cfg, "api_calls"));
    assert_false(tg_config_metric_defined(cfg, "images"));
    tg_config_free(cfg);

    cfg = load_ok(BASE "events:\n"
                       "  max_batch: 5\n"
                       "  dedup_window: 2d\n"
                       "  index_keys: 10000000\n"
                       "  tokens:\n"
                       "    - {name: jobs, token: \"ingest-token-0123456789abcdef\"}\n"
                       "    - {name: one, token: \"ingest-token-0123456789abcdeX\", customer: cus_abc}\n"
                       "plans: {p: {}}\n");
    assert_int_equal(cfg->events.enabled, 1);
    assert_int_equal(cfg->events.max_batch, 5);
    assert_int_equal(cfg->events.dedup_window_s, 2 * 86400);
    assert_int_equal(cfg->events.index_keys, 10000000);
    assert_int_equal(cfg->events.ntokens, 2);
    assert_null(cfg->events.tokens[0].customer);
    assert_string_equal(cfg->events.tokens[1].customer, "cus_abc");
    tg_config_free(cfg);

    cfg = load_ok(BASE "events: {}\nplans: {p: {}}\n"); /* empty: on, no token */
    assert_int_equal(cfg->events.enabled, 1);
    assert_int_equal(cfg->events.ntokens, 0);
    tg_config_free(cfg);

    only_error(BASE "events: {tokens: [{name: a, token: \"short\"}]}\nplans: {p: {}}\n",
               "test.yaml:4: events.tokens[0].token is too short (5 characters; at least 24)");
    only_error(BASE "events: {tokens: [{name: a, token: \"ingest-token-0123456789abcdef\", customer: bobby}]}\n"
                    "plans: {p: {}}\n",
               "test.yaml:4: events.tokens[0].customer: \"bobby\" is not a customer id (cus_...)");
    load_err(BASE "events: {tokens: [{name: a, token: \"ingest-token-0123456789abcdef\"},"
                  " {name: b, token: \"ingest-token-0123456789abcdef\"}]}\nplans: {p: {}}\n");
    assert_non_null(strstr(errbuf, "the same token as events.tokens[0]"));
    assert_null(strstr(errbuf, "ingest-token-0123456789abcdef")); /* a secret is never echoed */
    only_error(BASE "events: {dedup_window: 12h}\nplans: {p: {}}\n",
               "test.yaml:4: events.dedup_window: must be between 1d and 365d");
    only_error(BASE "events: {index_keys: 1000000001}\nplans: {p: {}}\n",
               "test.yaml:4: events.index_keys: \"1000000001\" is not a whole number from 0 to 1000000000");
}

/* The two lists of sections, events.tokens and notifications.endpoints: each item is checked
 * by its own section, an item that is not a mapping is named, and a name (or URL, or token)
 * given twice is refused at the line of the second, naming the first. */
#define WHSEC "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3" /* base64 of 24 bytes */
#define TOKEN_A "ingest-token-0123456789abcdef"
#define TOKEN_B "ingest-token-0123456789abcdeX"

static void test_section_lists(void **state)
{
    (void)state;
    tg_config_t *cfg = load_ok(BASE "notifications:\n"
                                    "  endpoints:\n"
                                    "    - {url: \"https://hooks.example.com/a\", secret: \"" WHSEC "\"}\n"
                                    "    - {url: \"https://hooks.example.com/b\", secret: \"" WHSEC "\","
                                    " events: [key.created]}\n"
                                    "plans: {p: {}}\n");
    assert_int_equal(cfg->notifications.nendpoints, 2);
    assert_string_equal(cfg->notifications.endpoints[0].url, "https://hooks.example.com/a");
    assert_string_equal(cfg->notifications.endpoints[0].events, "*");
    assert_int_equal(cfg->notifications.endpoints[0].line, 6);
    assert_string_equal(cfg->notifications.endpoints[1].events, "key.created");
    assert_int_equal(cfg->notifications.endpoints[1].line, 7);
    tg_config_free(cfg);

    /* the same URL twice: the second is named, with the first */
    only_error(BASE "notifications:\n"
                    "  endpoints:\n"
                    "    - {url: \"https://hooks.example.com/a\", secret: \"" WHSEC "\"}\n"
                    "    - {url: \"https://hooks.example.com/b\", secret: \"" WHSEC "\"}\n"
                    "    - {url: \"https://hooks.example.com/a\", secret: \"" WHSEC "\"}\n"
                    "plans: {p: {}}\n",
               "test.yaml:8: notifications.endpoints[2].url: the same URL as notifications.endpoints[0]");
    /* an item that is not a mapping, and an item whose own section refuses a key */
    only_error(BASE "notifications:\n"
                    "  endpoints:\n"
                    "    - \"https://hooks.example.com/a\"\n"
                    "plans: {p: {}}\n",
               "test.yaml:6: notifications.endpoints[0]: expected a mapping {url, events, secret}, got a single value");
    only_error(BASE "notifications:\n"
                    "  endpoints:\n"
                    "    - {url: \"https://hooks.example.com/a\", secret: \"" WHSEC "\"}\n"
                    "    - [url]\n"
                    "plans: {p: {}}\n",
               "test.yaml:7: notifications.endpoints[1]: expected a mapping {url, events, secret}, got a list");
    load_err(BASE "notifications: {endpoints: [{url: \"https://hooks.example.com/a\", secret: \"" WHSEC "\","
                  " events: [no.such]}]}\nplans: {p: {}}\n");
    has_line("test.yaml:4: notifications.endpoints[0].events[0]: \"no.such\" is not an event type (see docs/api.md, "
             "Events and webhooks)");
    only_error(BASE "notifications: {endpoints: {url: \"https://hooks.example.com/a\"}}\nplans: {p: {}}\n",
               "test.yaml:4: notifications.endpoints: expected a list of endpoints, got a mapping");

    /* events.tokens: the same name twice, the same token twice, both at once */
    only_error(BASE "events:\n"
                    "  tokens:\n"
                    "    - {name: jobs, token: \"" TOKEN_A "\"}\n"
                    "    - {name: jobs, token: \"" TOKEN_B "\"}\n"
                    "plans: {p: {}}\n",
               "test.yaml:7: events.tokens[1].name: the same name as events.tokens[0]");
    load_err(BASE "events:\n"
                  "  tokens:\n"
                  "    - {name: jobs, token: \"" TOKEN_A "\"}\n"
                  "    - {name: other, token: \"" TOKEN_B "\"}\n"
                  "    - {name: jobs, token: \"" TOKEN_B "\"}\n"
                  "plans: {p: {}}\n");
    has_line("test.yaml:8: events.tokens[2].name: the same name as events.tokens[0]");
    has_line("test.yaml:8: events.tokens[2].token: the same token as events.tokens[1]");
    assert_int_equal(count_lines(errbuf), 2);
    assert_null(strstr(errbuf, TOKEN_B)); /* a secret is never echoed */
    /* an item that is not a mapping, and an item whose own section refuses a key */
    only_error(BASE "events:\n"
                    "  tokens:\n"
                    "    - {name: jobs, token: \"" TOKEN_A "\"}\n"
                    "    - jobs\n"
                    "plans: {p: {}}\n",
               "test.yaml:7: events.tokens[1]: expected a mapping {name, token, customer}, got a single value");
    only_error(BASE "events: {tokens: [{name: jobs, token: \"" TOKEN_A "\", owner: me}]}\nplans: {p: {}}\n",
               "test.yaml:4: unknown key \"owner\" in events.tokens[0] (known: name, token, customer)");
    only_error(BASE "events: {tokens: [{token: \"" TOKEN_A "\"}]}\nplans: {p: {}}\n",
               "test.yaml:4: events.tokens[0].name is required");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_file),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_error_unknown_key),
        cmocka_unit_test(test_error_resource_bounds),
        cmocka_unit_test(test_error_rate),
        cmocka_unit_test(test_error_money),
        cmocka_unit_test(test_error_env),
        cmocka_unit_test(test_error_types),
        cmocka_unit_test(test_error_tiers),
        cmocka_unit_test(test_error_charges),
        cmocka_unit_test(test_error_sections),
        cmocka_unit_test(test_error_routes),
        cmocka_unit_test(test_error_yaml_syntax),
        cmocka_unit_test(test_all_errors_reported),
        cmocka_unit_test(test_error_buffer_limits),
        cmocka_unit_test(test_yaml_features_and_caps),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_path_match),
        cmocka_unit_test(test_route_match),
        cmocka_unit_test(test_admin_port_keys),
        cmocka_unit_test(test_stripe_defaults_and_values),
        cmocka_unit_test(test_stripe_errors),
        cmocka_unit_test(test_cluster),
        cmocka_unit_test(test_close_cpus),
        cmocka_unit_test(test_email),
        cmocka_unit_test(test_listeners),
        cmocka_unit_test(test_display),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_decide_syslog_secret),
        cmocka_unit_test(test_events_section),
        cmocka_unit_test(test_section_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
