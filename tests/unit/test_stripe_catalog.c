/* test_stripe_catalog.c - the Stripe catalog of the plans (src/payments/stripe_catalog.c): the exact
 * create parameters of each model, every refusal, and the comparison with objects Stripe returns.
 *
 * Field names and constraints are those of the official `stripe` package's types
 * (tests/stripe/node_modules/stripe/cjs/resources/Prices.d.ts, Billing/Meters.d.ts): tiers[i]
 * {up_to: 'inf' | number, unit_amount_decimal, flat_amount_decimal ("a decimal value representing
 * an integer in the minor units")}, transform_quantity {divide_by, round: up|down},
 * recurring {interval, interval_count, usage_type, meter}, unit_amount_decimal "with at most 12
 * decimal places"; a meter's default_aggregation[formula], customer_mapping[event_payload_key|type],
 * value_settings[event_payload_key]. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payments/stripe_catalog.h"

#define BASE                                                                                                           \
    "upstream: {url: \"http://127.0.0.1:9000\"}\n"                                                                     \
    "admin: {token: \"0123456789abcdef0123\"}\n"                                                                       \
    "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"                                                           \
    "stripe: {secret_key: sk_test_catalog_0123, webhook_secret: whsec_catalog_0123, billing: stripe}\n"

static char errbuf[16384];

static tg_config_t *load(const char *yaml)
{
    tg_config_t *cfg = NULL;
    if (tg_config_load_string("test.yaml", yaml, strlen(yaml), &cfg, errbuf, sizeof(errbuf)) != 0)
        fail_msg("config error:\n%s", errbuf);
    return cfg;
}

/* The create form of an item, references as prod_P / mtr_M. */
static const char *form_of(const tg_catalog_t *c, tg_catalog_kind_t kind, const char *key)
{
    static char out[8192];
    const tg_catalog_item_t *it = tg_catalog_find(c, kind, key);
    if (it == NULL)
        fail_msg("no item %s", key);
    tg_form_t f;
    tg_form_init(&f, 0);
    tg_err_t err = {0};
    if (tg_catalog_form(it, "prod_P", "mtr_M", &f, &err) != 0)
        fail_msg("form %s: %s", key, err.msg);
    size_t n;
    snprintf(out, sizeof(out), "%s", tg_form_data(&f, &n));
    tg_form_free(&f);
    return out;
}

static void build(const tg_config_t *cfg, tg_catalog_t *c)
{
    tg_err_t err = {0};
    assert_int_equal(tg_catalog_build(cfg, c, &err), 0);
}

#define PRICE_HEAD "product=prod_P&currency=usd&"
#define METERED(plan, metric)                                                                                          \
    "recurring[interval]=month&recurring[interval_count]=1&recurring[usage_type]=metered&recurring[meter]=mtr_M&"      \
    "lookup_key=tollgate_" plan "_" metric "&metadata[tollgate_plan]=" plan "&metadata[tollgate_metric]=" metric

static void test_minor_decimal(void **state)
{
    (void)state;
    char b[48];
    assert_int_equal(tg_catalog_minor_decimal(49000000000, 2, b, sizeof(b)), 4);
    assert_string_equal(b, "4900");
    tg_catalog_minor_decimal(500000, 2, b, sizeof(b)); /* 0.0005 usd = 0.05 cents */
    assert_string_equal(b, "0.05");
    tg_catalog_minor_decimal(1, 2, b, sizeof(b)); /* 1e-9 usd: 7 decimals of a cent */
    assert_string_equal(b, "0.0000001");
    tg_catalog_minor_decimal(1, 0, b, sizeof(b)); /* 1e-9 jpy: 9 decimals, within Stripe's 12 */
    assert_string_equal(b, "0.000000001");
    tg_catalog_minor_decimal(1500000000, 3, b, sizeof(b)); /* 1.5 kwd */
    assert_string_equal(b, "1500");
    tg_catalog_minor_decimal(0, 2, b, sizeof(b));
    assert_string_equal(b, "0");
    tg_catalog_minor_decimal(INT64_MAX, 2, b, sizeof(b));
    assert_string_equal(b, "922337203685.4775807");
    assert_int_equal(tg_catalog_minor_decimal(1, 10, b, sizeof(b)), TG_ERANGE);
    assert_int_equal(tg_catalog_minor_decimal(49000000000, 2, b, 4), TG_ERANGE);
}

static void test_product_and_base_prices(void **state)
{
    (void)state;
    tg_config_t *cfg = load(BASE "plans:\n"
                                 "  pro: {name: \"Pro plan\", price: \"49\"}\n"
                                 "  odd: {price: \"9.995\", interval: year}\n"
                                 "  yen: {price: \"1200\", currency: jpy}\n"
                                 "  dinar: {price: \"1.5\", currency: kwd}\n"
                                 "  free: {}\n"
                                 "  krona: {price: \"1200\", currency: isk}\n");
    tg_catalog_t c;
    build(cfg, &c);
    assert_int_equal(c.nrefusals, 0);
    assert_int_equal(c.nitems, 12); /* 6 products, no meter, 6 base prices */
    assert_int_equal(c.items[0].kind, TG_CATALOG_PRODUCT);
    assert_int_equal(c.items[5].kind, TG_CATALOG_PRODUCT);
    assert_int_equal(c.items[6].kind, TG_CATALOG_PRICE);
    assert_string_equal(form_of(&c, TG_CATALOG_PRODUCT, "pro"), "name=Pro+plan&metadata[tollgate_plan]=pro");
    assert_string_equal(form_of(&c, TG_CATALOG_PRODUCT, "odd"), "name=odd&metadata[tollgate_plan]=odd");
    assert_string_equal(form_of(&c, TG_CATALOG_PRICE, "tollgate_pro_base"),
                        PRICE_HEAD "billing_scheme=per_unit&unit_amount=4900&recurring[interval]=month&"
                                   "recurring[interval_count]=1&recurring[usage_type]=licensed&"
                                   "lookup_key=tollgate_pro_base&metadata[tollgate_plan]=pro");
    /* not a whole number of cents: unit_amount_decimal */
    assert_string_equal(form_of(&c, TG_CATALOG_PRICE, "tollgate_odd_base"),
                        PRICE_HEAD "billing_scheme=per_unit&unit_amount_decimal=999.5&recurring[interval]=year&"
                                   "recurring[interval_count]=1&recurring[usage_type]=licensed&"
                                   "lookup_key=tollgate_odd_base&metadata[tollgate_plan]=odd");
    assert_string_equal(form_of(&c, TG_CATALOG_PRICE, "tollgate_yen_base"),
                        "product=prod_P&currency=jpy&billing_scheme=per_unit&unit_amount=1200&recurring[interval]="
                        "month&recurring[interval_count]=1&recurring[usage_type]=licensed&"
                        "lookup_key=tollgate_yen_base&metadata[tollgate_plan]=yen");
    assert_string_equal(form_of(&c, TG_CATALOG_PRICE, "tollgate_dinar_base"),
                        "product=prod_P&currency=kwd&billing_scheme=per_unit&unit_amount=1500&recurring[interval]="
                        "month&recurring[interval_count]=1&recurring[usage_type]=licensed&"
                        "lookup_key=tollgate_dinar_base&metadata[tollgate_plan]=dinar");
    /* ISK: zero-decimal in ISO 4217 (tollgate rounds invoices to whole kronur), two-decimal in
     * Stripe's API: 1200 ISK is 120000 there */
    assert_string_equal(form_of(&c, TG_CATALOG_PRICE, "tollgate_krona_base"),
                        "product=prod_P&currency=isk&billing_scheme=per_unit&unit_amount=120000&recurring[interval]="
                        "month&recurring[interval_count]=1&recurring[usage_type]=licensed&"
                        "lookup_key=tollgate_krona_base&metadata[tollgate_plan]=krona");
    assert_string_equal(form_of(&c, TG_CATALOG_PRICE, "tollgate_free_base"),
                        PRICE_HEAD "billing_scheme=per_unit&unit_amount=0&recurring[interval]=month&"
                                   "recurring[interval_count]=1&recurring[usage_type]=licensed&"
                                   "lookup_key=tollgate_free_base&metadata[tollgate_plan]=free");
    /* a reference not known yet is an error, not an empty field */
    tg_form_t f;
    tg_form_init(&f, 0);
    tg_err_t err = {0};
    assert_int_equal(tg_catalog_form(tg_catalog_find(&c, TG_CATALOG_PRICE, "tollgate_pro_base"), NULL, NULL, &f, &err),
                     TG_EINVAL);
    assert_non_null(strstr(err.msg, "product"));
    tg_form_free(&f);
    tg_catalog_free(&c);
    tg_config_free(cfg);
}

static const char models_yaml[] =
    BASE "plans:\n"
         "  unit:\n"
         "    charges: [{metric: api_calls, model: per_unit, unit_price: \"0.0005\"}]\n"
         "  unitinc:\n"
         "    included: {api_calls: 1000}\n"
         "    on_quota: bill\n"
         "    charges: [{metric: api_calls, model: per_unit, unit_price: \"0.001\"}]\n"
         "  grad:\n"
         "    included: {tokens: 100}\n"
         "    on_quota: bill\n"
         "    charges:\n"
         "      - metric: tokens\n"
         "        model: graduated\n"
         "        tiers:\n"
         "          - {up_to: 5, unit_price: \"7\"}\n"
         "          - {up_to: 10, unit_price: \"6.5\", flat_price: \"2\"}\n"
         "          - {up_to: inf, unit_price: \"0.000000125\"}\n"
         "  gradzero:\n"
         "    charges:\n"
         "      - {metric: tokens, model: graduated, tiers: [{up_to: 5, unit_price: \"1\"}, {up_to: inf}]}\n"
         "  vol:\n"
         "    charges:\n"
         "      - metric: images\n"
         "        model: volume\n"
         "        tiers:\n"
         "          - {up_to: 10000, unit_price: \"0.001\", flat_price: \"10\"}\n"
         "          - {up_to: inf, unit_price: \"0.0004\", flat_price: \"10\"}\n"
         "  pkg:\n"
         "    charges:\n"
         "      - {metric: gb, model: package, package_size: 100, package_price: \"5\"}\n"
         "      - {metric: api_calls, model: package, package_size: 1000, package_price: \"0.125\", round: down}\n";

static void test_metered_models(void **state)
{
    (void)state;
    tg_config_t *cfg = load(models_yaml);
    tg_catalog_t c;
    build(cfg, &c);
    assert_int_equal(c.nrefusals, 0);
    /* per_unit without an allowance: per_unit, the unit price in cents as a decimal */
    assert_string_equal(form_of(&c, TG_CATALOG_PRICE, "tollgate_unit_api_calls"),
                        PRICE_HEAD "billing_scheme=per_unit&unit_amount_decimal=0.05&" METERED("unit", "api_calls"));
    /* per_unit above 1,000 included: a free first tier, then the unit price */
    assert_string_equal(form_of(&c, TG_CATALOG_PRICE, "tollgate_unitinc_api_calls"), PRICE_HEAD
                        "billing_scheme=tiered&tiers_mode=graduated&"
                        "tiers[0][up_to]=1000&tiers[0][unit_amount_decimal]=0&"
                        "tiers[1][up_to]=inf&tiers[1][unit_amount_decimal]=0.1&" METERED("unitinc", "api_calls"));
    /* graduated above 100 included: every bound shifted by 100 behind a free tier; flat fees as
     * whole cents; a 1e-9 unit price as 0.0000125 cents */
    assert_string_equal(form_of(&c, TG_CATALOG_PRICE, "tollgate_grad_tokens"), PRICE_HEAD
                        "billing_scheme=tiered&tiers_mode=graduated&"
                        "tiers[0][up_to]=100&tiers[0][unit_amount_decimal]=0&"
                        "tiers[1][up_to]=105&tiers[1][unit_amount_decimal]=700&"
                        "tiers[2][up_to]=110&tiers[2][unit_amount_decimal]=650&"
                        "tiers[2][flat_amount_decimal]=200&"
                        "tiers[3][up_to]=inf&tiers[3][unit_amount_decimal]=0.0000125&" METERED("grad", "tokens"));
    assert_string_equal(form_of(&c, TG_CATALOG_PRICE, "tollgate_gradzero_tokens"), PRICE_HEAD
                        "billing_scheme=tiered&tiers_mode=graduated&"
                        "tiers[0][up_to]=5&tiers[0][unit_amount_decimal]=100&"
                        "tiers[1][up_to]=inf&tiers[1][unit_amount_decimal]=0&" METERED("gradzero", "tokens"));
    assert_string_equal(form_of(&c, TG_CATALOG_PRICE, "tollgate_vol_images"),
                        PRICE_HEAD "billing_scheme=tiered&tiers_mode=volume&"
                                   "tiers[0][up_to]=10000&tiers[0][unit_amount_decimal]=0.1&"
                                   "tiers[0][flat_amount_decimal]=1000&"
                                   "tiers[1][up_to]=inf&tiers[1][unit_amount_decimal]=0.04&"
                                   "tiers[1][flat_amount_decimal]=1000&" METERED("vol", "images"));
    assert_string_equal(form_of(&c, TG_CATALOG_PRICE, "tollgate_pkg_gb"), PRICE_HEAD
                        "billing_scheme=per_unit&unit_amount_decimal=500&"
                        "transform_quantity[divide_by]=100&transform_quantity[round]=up&" METERED("pkg", "gb"));
    assert_string_equal(
        form_of(&c, TG_CATALOG_PRICE, "tollgate_pkg_api_calls"),
        PRICE_HEAD "billing_scheme=per_unit&unit_amount_decimal=12.5&"
                   "transform_quantity[divide_by]=1000&transform_quantity[round]=down&" METERED("pkg", "api_calls"));
    /* one meter per metric, in the order metrics first appear */
    const char *meters[] = {"api_calls", "tokens", "images", "gb"};
    size_t nmeters = 0;
    for (size_t i = 0; i < c.nitems; i++)
        if (c.items[i].kind == TG_CATALOG_METER) {
            assert_true(nmeters < 4);
            assert_string_equal(c.items[i].key, meters[nmeters++]);
        }
    assert_int_equal(nmeters, 4);
    assert_string_equal(form_of(&c, TG_CATALOG_METER, "tokens"),
                        "display_name=tokens&event_name=tokens&default_aggregation[formula]=sum&"
                        "customer_mapping[event_payload_key]=stripe_customer_id&customer_mapping[type]=by_id&"
                        "value_settings[event_payload_key]=value");
    /* products, then meters, then prices */
    int phase = 0;
    for (size_t i = 0; i < c.nitems; i++) {
        int k = (int)c.items[i].kind;
        assert_true(k >= phase);
        phase = k;
    }
    tg_catalog_free(&c);
    tg_config_free(cfg);
}

/* The refusal of plan `plan` on `field`, or a failure. */
static const tg_catalog_refusal_t *refusal(const tg_catalog_t *c, const char *plan, const char *field)
{
    for (size_t i = 0; i < c->nrefusals; i++)
        if (strcmp(c->refusals[i].plan, plan) == 0 && strcmp(c->refusals[i].field, field) == 0)
            return &c->refusals[i];
    fail_msg("no refusal of %s %s", plan, field);
    return NULL;
}

static void test_refusals(void **state)
{
    (void)state;
    tg_config_t *cfg =
        load(BASE "plans:\n" /* line 5 */
                  "  ok:\n"  /* 6 */
                  "    charges: [{metric: api_calls, model: per_unit, unit_price: \"1\"}]\n"
                  "  floor:\n" /* 8 */
                  "    minimum: \"10\"\n"
                  "    charges: [{metric: api_calls, model: per_unit, unit_price: \"1\"}]\n"
                  "  cap:\n" /* 11 */
                  "    maximum: \"100\"\n"
                  "    charges: [{metric: api_calls, model: per_unit, unit_price: \"1\"}]\n"
                  "  volinc:\n" /* 14 */
                  "    included: {images: 50}\n"
                  "    on_quota: bill\n"
                  "    charges:\n"
                  "      - {metric: api_calls, model: per_unit, unit_price: \"1\"}\n"
                  "      - {metric: images, model: volume, tiers: [{up_to: inf, unit_price: \"1\"}]}\n"
                  "  pkginc:\n" /* 20 */
                  "    included: {gb: 1}\n"
                  "    charges: [{metric: gb, model: package, package_size: 10, package_price: \"1\"}]\n"
                  "  flat:\n" /* 23 */
                  "    charges:\n"
                  "      - metric: tokens\n"
                  "        model: graduated\n"
                  "        tiers: [{up_to: 10, flat_price: \"0.005\"}, {up_to: inf, unit_price: \"1\"}]\n"
                  "  twice:\n" /* 28 */
                  "    charges:\n"
                  "      - {metric: api_calls, model: per_unit, unit_price: \"1\"}\n"
                  "      - {metric: calls2, model: per_unit, unit_price: \"2\"}\n");
    /* the configuration refuses two charges on one metric itself; the catalog does not rely on it */
    tg_plan_t *twice = &cfg->plans[6];
    char *saved = twice->charges[1].metric;
    twice->charges[1].metric = twice->charges[0].metric;

    tg_catalog_t c;
    build(cfg, &c);
    assert_int_equal(c.nrefusals, 6);
    const tg_catalog_refusal_t *r = refusal(&c, "floor", "minimum");
    assert_int_equal(r->line, 8);
    assert_non_null(strstr(r->why, "no minimum commitment"));
    r = refusal(&c, "cap", "maximum");
    assert_int_equal(r->line, 11);
    assert_non_null(strstr(r->why, "no spending cap"));
    r = refusal(&c, "volinc", "charges[1] (images)");
    assert_int_equal(r->line, 14);
    assert_non_null(strstr(r->why, "volume tiers after an included allowance of 50"));
    r = refusal(&c, "pkginc", "charges[0] (gb)");
    assert_int_equal(r->line, 20);
    assert_non_null(strstr(r->why, "packages after an included allowance of 1"));
    assert_non_null(strstr(r->why, "transform_quantity"));
    r = refusal(&c, "flat", "charges[0] (tokens)");
    assert_int_equal(r->line, 23);
    assert_non_null(strstr(r->why, "tiers[0].flat_price"));
    assert_non_null(strstr(r->why, "whole usd minor units"));
    r = refusal(&c, "twice", "charges[1] (api_calls)");
    assert_int_equal(r->line, 28);
    assert_non_null(strstr(r->why, "a second charge on api_calls"));

    /* a refused plan has no object at all; the others are complete */
    const char *refused[] = {"floor", "cap", "volinc", "pkginc", "flat", "twice"};
    for (size_t i = 0; i < c.nitems; i++)
        for (size_t j = 0; j < 6; j++)
            assert_true(c.items[i].plan == NULL || strcmp(c.items[i].plan, refused[j]) != 0);
    assert_non_null(tg_catalog_find(&c, TG_CATALOG_PRODUCT, "ok"));
    assert_non_null(tg_catalog_find(&c, TG_CATALOG_PRICE, "tollgate_ok_base"));
    assert_non_null(tg_catalog_find(&c, TG_CATALOG_PRICE, "tollgate_ok_api_calls"));
    assert_non_null(tg_catalog_find(&c, TG_CATALOG_METER, "api_calls"));
    assert_null(tg_catalog_find(&c, TG_CATALOG_METER, "images")); /* only volinc charged it */
    assert_int_equal(c.nitems, 4);

    twice->charges[1].metric = saved;
    tg_catalog_free(&c);
    tg_config_free(cfg);
}

static json_t *J(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (v == NULL)
        fail_msg("json: %s", e.text);
    return v;
}

static int matches(const tg_catalog_t *c, tg_catalog_kind_t kind, const char *key, const char *json, char *why)
{
    json_t *o = J(json);
    why[0] = '\0';
    int m = tg_catalog_matches(tg_catalog_find(c, kind, key), "prod_P", "mtr_M", o, why, 256);
    json_decref(o);
    return m;
}

static void test_matches(void **state)
{
    (void)state;
    tg_config_t *cfg = load(models_yaml);
    tg_catalog_t c;
    build(cfg, &c);
    char why[256];
    /* as Stripe answers: decimals with other zeros, the last bound null, flat_amount twins, metadata
     * and active not compared */
    const char *grad = "{\"id\":\"price_1\",\"object\":\"price\",\"active\":false,\"product\":\"prod_P\","
                       "\"currency\":\"usd\",\"billing_scheme\":\"tiered\",\"tiers_mode\":\"graduated\","
                       "\"lookup_key\":\"tollgate_grad_tokens\",\"metadata\":{},\"transform_quantity\":null,"
                       "\"recurring\":{\"interval\":\"month\",\"interval_count\":1,\"usage_type\":\"metered\","
                       "\"meter\":\"mtr_M\"},\"unit_amount\":null,\"unit_amount_decimal\":null,\"tiers\":["
                       "{\"up_to\":100,\"unit_amount\":0,\"unit_amount_decimal\":\"0\",\"flat_amount\":null,"
                       "\"flat_amount_decimal\":null},"
                       "{\"up_to\":105,\"unit_amount\":700,\"unit_amount_decimal\":\"700.000\",\"flat_amount\":null,"
                       "\"flat_amount_decimal\":null},"
                       "{\"up_to\":110,\"unit_amount\":650,\"unit_amount_decimal\":null,\"flat_amount\":200,"
                       "\"flat_amount_decimal\":\"200\"},"
                       "{\"up_to\":null,\"unit_amount\":null,\"unit_amount_decimal\":\"0.000012500000\","
                       "\"flat_amount\":0,\"flat_amount_decimal\":\"0\"}]}";
    if (matches(&c, TG_CATALOG_PRICE, "tollgate_grad_tokens", grad, why) != 1)
        fail_msg("differs: %s", why);

    /* each difference that changes what is billed is seen */
    struct {
        const char *from, *to, *why;
    } diffs[] = {
        {"\"700.000\"", "\"700.5\"", "tiers[1][unit_amount_decimal] is 700.5, not 700"},
        {"\"up_to\":105", "\"up_to\":106", "tiers[1][up_to] is 106, not 105"},
        {"\"flat_amount\":0,\"flat_amount_decimal\":\"0\"", "\"flat_amount\":1,\"flat_amount_decimal\":\"1\"",
         "tiers[3][flat_amount_decimal] is 1, not 0"},
        {"\"graduated\"", "\"volume\"", "tiers_mode is volume, not graduated"},
        {"\"prod_P\"", "\"prod_Q\"", "product is prod_Q, not prod_P"},
        {"\"mtr_M\"", "\"mtr_N\"", "recurring[meter] is mtr_N, not mtr_M"},
        {"\"interval\":\"month\"", "\"interval\":\"year\"", "recurring[interval] is year, not month"},
        {"\"transform_quantity\":null", "\"transform_quantity\":{\"divide_by\":2,\"round\":\"up\"}",
         "it has a transform_quantity, which this price must not"},
        {",{\"up_to\":null", ",{\"up_to\":200,\"unit_amount_decimal\":\"1\"},{\"up_to\":null",
         "tiers[3][up_to] is 200, not inf"},
        {"\"usd\"", "\"eur\"", "currency is eur, not usd"},
    };
    for (size_t i = 0; i < sizeof(diffs) / sizeof(diffs[0]); i++) {
        char text[4096];
        const char *at = strstr(grad, diffs[i].from);
        assert_non_null(at);
        snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - grad), grad, diffs[i].to, at + strlen(diffs[i].from));
        assert_int_equal(matches(&c, TG_CATALOG_PRICE, "tollgate_grad_tokens", text, why), 0);
        assert_string_equal(why, diffs[i].why);
    }
    /* a missing tier (Stripe listed without expand[]=data.tiers) is a difference, never a match */
    assert_int_equal(matches(&c, TG_CATALOG_PRICE, "tollgate_grad_tokens",
                             "{\"product\":\"prod_P\",\"currency\":\"usd\",\"billing_scheme\":\"tiered\","
                             "\"tiers_mode\":\"graduated\",\"lookup_key\":\"tollgate_grad_tokens\","
                             "\"recurring\":{\"interval\":\"month\",\"interval_count\":1,\"usage_type\":\"metered\","
                             "\"meter\":\"mtr_M\"}}",
                             why),
                     0);
    assert_string_equal(why, "tiers[0][up_to] is unset, not 100");

    /* package: the transform must be there, with the same rounding */
    const char *pkg = "{\"product\":\"prod_P\",\"currency\":\"usd\",\"billing_scheme\":\"per_unit\","
                      "\"unit_amount\":500,\"unit_amount_decimal\":\"500\",\"lookup_key\":\"tollgate_pkg_gb\","
                      "\"transform_quantity\":{\"divide_by\":100,\"round\":\"up\"},\"tiers_mode\":null,"
                      "\"recurring\":{\"interval\":\"month\",\"interval_count\":1,\"usage_type\":\"metered\","
                      "\"meter\":\"mtr_M\"}}";
    assert_int_equal(matches(&c, TG_CATALOG_PRICE, "tollgate_pkg_gb", pkg, why), 1);
    assert_int_equal(matches(&c, TG_CATALOG_PRICE, "tollgate_pkg_api_calls", pkg, why), 0);

    /* meters: the aggregation and the mappings must be tollgate's; the display name is a label */
    const char *meter = "{\"id\":\"mtr_1\",\"object\":\"billing.meter\",\"display_name\":\"Tokens\","
                        "\"event_name\":\"tokens\",\"default_aggregation\":{\"formula\":\"sum\"},"
                        "\"customer_mapping\":{\"event_payload_key\":\"stripe_customer_id\",\"type\":\"by_id\"},"
                        "\"value_settings\":{\"event_payload_key\":\"value\"},\"status\":\"active\"}";
    assert_int_equal(matches(&c, TG_CATALOG_METER, "tokens", meter, why), 1);
    char text[2048];
    snprintf(text, sizeof(text), "%s", meter);
    memcpy(strstr(text, "\"sum\""), "\"max\"", 5);
    assert_int_equal(matches(&c, TG_CATALOG_METER, "tokens", text, why), 0);
    assert_string_equal(why, "default_aggregation[formula] is max, not sum");

    /* products: the name */
    assert_int_equal(matches(&c, TG_CATALOG_PRODUCT, "grad",
                             "{\"name\":\"grad\",\"metadata\":{\"tollgate_plan\":\"grad\"},\"active\":true}", why),
                     1);
    assert_int_equal(matches(&c, TG_CATALOG_PRODUCT, "grad",
                             "{\"name\":\"Old\",\"metadata\":{\"tollgate_plan\":\"grad\"},\"active\":true}", why),
                     0);
    assert_string_equal(why, "name is Old, not grad");
    tg_catalog_free(&c);
    tg_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minor_decimal),  cmocka_unit_test(test_product_and_base_prices),
        cmocka_unit_test(test_metered_models), cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_matches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
