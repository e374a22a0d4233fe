/* test_reconcile.c - the pure comparison of `tollgate stripe reconcile` (src/payments/reconcile.c):
 * tollgate's quote of a period against a Stripe invoice, and the choice of the invoice.
 *
 * The plan: base fee 29.00 usd, 2 API calls included, API calls at 0.25, images graduated (the
 * first free, then 1.50), a minimum commitment of 5.00 on usage. Usage 5 calls and 3 images:
 * calls 3 x 0.25 = 0.75, images 2 x 1.50 = 3.00, usage 3.75 < 5.00 -> a 1.25 top-up; total
 * 29.00 + 0.75 + 3.00 + 1.25 = 34.00. In minor units: 2900, 75, 300, 125, 3400. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "payments/reconcile.h"
#include "util/money.h"

#define CENT (TG_MONEY_SCALE / 100)

static tg_tier_t image_tiers[] = {{1, 0, 0}, {TG_UNLIMITED, 150 * CENT, 0}};
static tg_charge_t charges[] = {
    {.metric = "api_calls", .model = TG_MODEL_PER_UNIT, .unit_price = 25 * CENT},
    {.metric = "images", .model = TG_MODEL_GRADUATED, .tiers = image_tiers, .ntiers = 2},
};
static tg_allowance_t included[] = {{"api_calls", 2}};

static tg_plan_t plan(void)
{
    return (tg_plan_t){.id = "recon",
                       .name = "Recon",
                       .price = 2900 * CENT,
                       .currency = "usd",
                       .currency_digits = 2,
                       .included = included,
                       .nincluded = 1,
                       .charges = charges,
                       .ncharges = 2,
                       .minimum = 500 * CENT};
}

static const tg_usage_qty_t usage[] = {{"api_calls", 3}, {"images", 3}, {"api_calls", 2}, {"unpriced", 9}};

typedef struct {
    tg_recon_diff_t d[16];
    size_t n;
} got_t;

static int collect(const tg_recon_diff_t *d, void *arg)
{
    got_t *g = arg;
    if (g->n < 16)
        g->d[g->n++] = *d;
    return 0;
}

static void expect(const got_t *g, size_t i, tg_recon_kind_t kind, const char *subject, const char *t, const char *s)
{
    assert_true(i < g->n);
    assert_int_equal(g->d[i].kind, kind);
    assert_string_equal(g->d[i].subject, subject);
    assert_string_equal(g->d[i].tollgate, t);
    assert_string_equal(g->d[i].stripe, s);
}

static tg_recon_line_t line(const char *key, int sub_item, uint64_t qty, int64_t amount, const char *desc)
{
    tg_recon_line_t l = {.subscription_item = sub_item, .quantity = qty, .amount = amount};
    snprintf(l.lookup_key, sizeof(l.lookup_key), "%s", key);
    snprintf(l.description, sizeof(l.description), "%s", desc);
    snprintf(l.id, sizeof(l.id), "il_%s", desc);
    return l;
}

/* Stripe's invoice of the same period, line for line; the minimum top-up is an invoice item
 * there (no price stands for it), so it is the one expected difference pair. */
static tg_recon_line_t clean_lines[4];
static tg_recon_invoice_t clean_invoice(void)
{
    clean_lines[0] = line("tollgate_recon_base", 1, 1, 2900, "base");
    clean_lines[1] = line("tollgate_recon_api_calls", 1, 5, 75, "calls");
    clean_lines[2] = line("tollgate_recon_images", 1, 3, 300, "images");
    clean_lines[3] = line("", 0, 1, 125, "Minimum commitment");
    tg_recon_invoice_t inv = {
        .id = "in_1", .status = "open", .currency = "usd", .total = 3400, .lines = clean_lines, .nlines = 4};
    return inv;
}

static void test_equal_invoice(void **state)
{
    (void)state;
    tg_plan_t p = plan();
    tg_recon_invoice_t inv = clean_invoice();
    got_t g = {0};
    size_t n = 99;
    tg_err_t err = {0};
    assert_int_equal(tg_recon_compare(&p, usage, 4, 1, &inv, collect, &g, &n, &err), 0);
    /* tollgate's minimum line and Stripe's invoice item for it: each on one side only */
    assert_int_equal(n, 2);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.d[0].kind, TG_RECON_LINE);
    assert_string_equal(g.d[0].tollgate, "125");
    assert_string_equal(g.d[0].stripe, "none");
    expect(&g, 1, TG_RECON_LINE, "Minimum commitment", "none", "125");

    /* without the minimum, nothing differs */
    p.minimum = 0;
    inv.nlines = 3;
    inv.total = 3275;
    g.n = 0;
    assert_int_equal(tg_recon_compare(&p, usage, 4, 1, &inv, collect, &g, &n, &err), 0);
    assert_int_equal(n, 0);
}

static void test_each_difference(void **state)
{
    (void)state;
    tg_plan_t p = plan();
    p.minimum = 0;
    tg_recon_line_t lines[] = {
        line("tollgate_recon_base", 1, 1, 2900, "base"),
        line("tollgate_recon_api_calls", 1, 4, 50, "calls"),      /* one call short */
        line("tollgate_recon_images", 1, 3, 450, "images"),       /* same usage, dearer */
        line("tollgate_recon_api_calls", 0, 1, -20, "proration"), /* not a period line */
        line("", 0, 1, 700, "Late usage"),                        /* an invoice item */
    };
    tg_recon_invoice_t inv = {.id = "in_2", .currency = "usd", .total = 4080, .lines = lines, .nlines = 5};
    got_t g = {0};
    size_t n = 0;
    tg_err_t err = {0};
    assert_int_equal(tg_recon_compare(&p, usage, 4, 1, &inv, collect, &g, &n, &err), 0);
    assert_int_equal(n, 6);
    expect(&g, 0, TG_RECON_USAGE, "api_calls", "5", "4");
    expect(&g, 1, TG_RECON_AMOUNT, "api_calls", "75", "50");
    expect(&g, 2, TG_RECON_AMOUNT, "images", "300", "450");
    expect(&g, 3, TG_RECON_LINE, "tollgate_recon_api_calls (not a period line)", "none", "-20");
    expect(&g, 4, TG_RECON_LINE, "Late usage", "none", "700");
    expect(&g, 5, TG_RECON_TOTAL, "", "3275", "4080");
    assert_int_equal(g.n, 6);
}

static void test_missing_lines_and_trial(void **state)
{
    (void)state;
    tg_plan_t p = plan();
    p.minimum = 0;
    /* A trial period: no base fee in tollgate, a 0 base line in Stripe: no difference. Stripe has
     * no images line at all: usage 3 vs none, 300 vs none. */
    tg_recon_line_t lines[] = {line("tollgate_recon_base", 1, 1, 0, "base"),
                               line("tollgate_recon_api_calls", 1, 5, 75, "calls")};
    tg_recon_invoice_t inv = {.id = "in_3", .currency = "usd", .total = 75, .lines = lines, .nlines = 2};
    got_t g = {0};
    size_t n = 0;
    tg_err_t err = {0};
    assert_int_equal(tg_recon_compare(&p, usage, 4, 0, &inv, collect, &g, &n, &err), 0);
    assert_int_equal(n, 3);
    expect(&g, 0, TG_RECON_USAGE, "images", "3", "none");
    expect(&g, 1, TG_RECON_AMOUNT, "images", "300", "none");
    expect(&g, 2, TG_RECON_TOTAL, "", "375", "75");
    /* The base fee billed in Stripe during tollgate's trial. */
    lines[0].amount = 2900;
    inv.total = 2975;
    g.n = 0;
    assert_int_equal(tg_recon_compare(&p, usage, 4, 0, &inv, collect, &g, &n, &err), 0);
    expect(&g, 0, TG_RECON_AMOUNT, "base fee", "none", "2900");
}

/* Several Stripe lines of one price (Stripe may show a graduated price a tier a line) add up;
 * Stripe's total before tax is what is compared (the reader takes total_excluding_tax). */
static void test_lines_of_one_price_add_up(void **state)
{
    (void)state;
    tg_plan_t p = plan();
    p.minimum = 0;
    tg_recon_line_t lines[] = {
        line("tollgate_recon_base", 1, 1, 2900, "base"), line("tollgate_recon_api_calls", 1, 5, 75, "calls"),
        line("tollgate_recon_images", 1, 1, 0, "first image"), line("tollgate_recon_images", 1, 2, 300, "next images")};
    tg_recon_invoice_t inv = {.id = "in_5", .currency = "usd", .total = 3275, .lines = lines, .nlines = 4};
    got_t g = {0};
    size_t n = 9;
    tg_err_t err = {0};
    assert_int_equal(tg_recon_compare(&p, usage, 4, 1, &inv, collect, &g, &n, &err), 0);
    assert_int_equal(n, 0);
}

static void test_no_invoice_and_currency(void **state)
{
    (void)state;
    tg_plan_t p = plan();
    p.minimum = 0;
    got_t g = {0};
    size_t n = 0;
    tg_err_t err = {0};
    assert_int_equal(tg_recon_compare(&p, usage, 4, 1, NULL, collect, &g, &n, &err), 0);
    assert_int_equal(n, 1);
    expect(&g, 0, TG_RECON_NO_INVOICE, "", "3275", "none");

    tg_recon_invoice_t inv = clean_invoice();
    snprintf(inv.currency, sizeof(inv.currency), "eur");
    g.n = 0;
    assert_int_equal(tg_recon_compare(&p, usage, 4, 1, &inv, collect, &g, &n, &err), 0);
    assert_int_equal(n, 1);
    expect(&g, 0, TG_RECON_CURRENCY, "", "usd", "eur");
    assert_string_equal(tg_recon_kind_name(TG_RECON_CURRENCY), "currency");
}

static int stop_at_first(const tg_recon_diff_t *d, void *arg)
{
    (void)d;
    (*(int *)arg)++;
    return 1;
}

static void test_stop_and_errors(void **state)
{
    (void)state;
    tg_plan_t p = plan();
    int calls = 0;
    size_t n = 0;
    tg_err_t err = {0};
    assert_int_equal(tg_recon_compare(&p, usage, 4, 1, NULL, stop_at_first, &calls, &n, &err), TG_ESTATE);
    tg_recon_invoice_t inv = {.id = "in_4", .currency = "usd", .total = 1};
    assert_int_equal(tg_recon_compare(&p, usage, 4, 1, &inv, stop_at_first, &calls, &n, &err), TG_ESTATE);
    assert_int_equal(calls, 2);
    assert_int_equal(n, 1);
    /* a plan pricing refuses is the pricing error, nothing reported */
    p.currency_digits = 12;
    got_t g = {0};
    assert_int_equal(tg_recon_compare(&p, usage, 4, 1, &inv, collect, &g, &n, &err), TG_EINVAL);
    assert_int_equal(g.n, 0);
}

static void test_pick_invoice(void **state)
{
    (void)state;
    const int64_t ps = 1000000, pe = ps + 30 * 86400;
    tg_recon_invoice_t invs[] = {
        {.id = "in_next", .status = "draft", .period_start = pe, .period_end = pe + 31 * 86400},
        {.id = "in_void", .status = "void", .period_start = ps, .period_end = pe},
        {.id = "in_this", .status = "paid", .period_start = ps - 40, .period_end = pe - 40},
        {.id = "in_manual", .status = "open", .period_start = ps + 10, .period_end = ps + 10},
        {.id = "in_prev", .status = "paid", .period_start = ps - 31 * 86400, .period_end = ps + 60},
    };
    assert_int_equal(tg_recon_pick_invoice(invs, 5, ps, pe), 2);
    assert_int_equal(tg_recon_pick_invoice(invs, 2, ps, pe), -1);
    assert_int_equal(tg_recon_pick_invoice(invs, 0, ps, pe), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal_invoice),
        cmocka_unit_test(test_each_difference),
        cmocka_unit_test(test_missing_lines_and_trial),
        cmocka_unit_test(test_no_invoice_and_currency),
        cmocka_unit_test(test_stop_and_errors),
        cmocka_unit_test(test_pick_invoice),
        cmocka_unit_test(test_lines_of_one_price_add_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
