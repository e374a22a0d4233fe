/* test_revenue_currencies.c - issue 15 "figures per currency": with plans in USD and EUR, the
 * revenue figures (billing/revenue.c, from a real store: SQLite, or PostgreSQL with
 * TG_TEST_BACKEND=postgres) keep each currency apart: MRR, trial MRR, invoiced, collected and
 * outstanding are per currency, each plan's MRR is in its own currency, and no figure is the sum
 * of dollars and euros. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../support/tmpstore.h"
#include "billing/revenue.h"

#define NOW 2000000000

static tg_money_t M(const char *s)
{
    tg_money_t v = 0;
    tg_err_t err;
    if (tg_money_parse(s, strlen(s), &v, &err) != 0)
        fail_msg("parse \"%s\": %s", s, err.msg);
    return v;
}

static tg_plan_t plan(const char *id, const char *price, const char *currency)
{
    tg_plan_t p;
    memset(&p, 0, sizeof(p));
    p.id = (char *)id;
    p.price = M(price);
    snprintf(p.currency, sizeof(p.currency), "%s", currency);
    p.currency_digits = tg_currency_digits(currency);
    p.interval = TG_INTERVAL_MONTH;
    return p;
}

static void add(tg_store_t *st, const char *id, const char *plan_id, const char *status, int64_t trial_end)
{
    tg_customer_t c = {0};
    snprintf(c.id, sizeof(c.id), "%s", id);
    snprintf(c.email, sizeof(c.email), "%s@example.com", id);
    snprintf(c.plan_id, sizeof(c.plan_id), "%s", plan_id);
    snprintf(c.status, sizeof(c.status), "%s", status);
    c.created_at = c.anchor_at = NOW - 86400;
    c.trial_end = trial_end;
    tg_err_t err = {0};
    assert_int_equal(tg_store_customer_insert(st, &c, &err), 0);
}

static void test_usd_and_eur_apart(void **state)
{
    (void)state;
    tg_tmpstore_t db;
    assert_int_equal(tg_tmpstore_open(&db, "revcur"), 0);
    tg_plan_t plans[2] = {plan("pro", "49", "usd"), plan("euro", "20", "eur")};
    tg_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.plans = plans;
    cfg.nplans = 2;
    add(db.st, "cus_u1", "pro", "active", 0);
    add(db.st, "cus_u2", "pro", "past_due", 0);
    add(db.st, "cus_u3", "pro", "trialing", NOW + 86400);
    add(db.st, "cus_e1", "euro", "active", 0);
    add(db.st, "cus_e2", "euro", "trialing", NOW + 86400);
    /* invoices finalized in the window, in both currencies */
    assert_int_equal(tg_tmpstore_exec(&db,
                                      "INSERT INTO invoices (id, customer_id, period_start, period_end, status,"
                                      " number, currency, total, body, created_at, finalized_at) VALUES"
                                      " ('in_1', 'cus_u1', 1, 2, 'paid', 'N1', 'usd', 49000000000, '{}', 1, 1000),"
                                      " ('in_2', 'cus_u2', 1, 2, 'open', 'N2', 'usd', 49000000000, '{}', 1, 1000),"
                                      " ('in_3', 'cus_e1', 1, 2, 'paid', 'N3', 'eur', 20000000000, '{}', 1, 1000)"),
                     0);
    tg_revenue_t rv;
    tg_revenue_plan_t by_plan[2];
    tg_err_t err = {0};
    assert_int_equal(tg_revenue_compute(db.st, &cfg, 0, 2000, NOW, &rv, by_plan, &err), 0);
    assert_int_equal(rv.ncur, 2);
    assert_string_equal(rv.cur[0].currency, "eur"); /* sorted by code */
    assert_string_equal(rv.cur[1].currency, "usd");
    const tg_revenue_currency_t *usd = tg_revenue_find(&rv, "usd"), *eur = tg_revenue_find(&rv, "eur");
    assert_non_null(usd);
    assert_non_null(eur);
    /* MRR: 2 x 49 dollars (active and past_due), 20 euros; trials apart, in their currency */
    assert_true(usd->mrr == M("98"));
    assert_true(eur->mrr == M("20"));
    assert_true(usd->trial_mrr == M("49"));
    assert_true(eur->trial_mrr == M("20"));
    assert_int_equal(usd->paying, 2);
    assert_int_equal(eur->paying, 1);
    assert_int_equal(usd->trialing, 1);
    assert_int_equal(eur->trialing, 1);
    /* invoices: each currency its own */
    assert_true(usd->invoiced == M("98") && usd->collected == M("49") && usd->outstanding == M("49"));
    assert_true(eur->invoiced == M("20") && eur->collected == M("20") && eur->outstanding == 0);
    /* each plan's MRR is in the plan's currency */
    assert_true(by_plan[0].mrr == M("49") * 2 && by_plan[0].paying == 2);
    assert_true(by_plan[1].mrr == M("20") && by_plan[1].paying == 1);
    /* no figure anywhere is dollars plus euros (118, 69, 118 invoiced) */
    for (size_t i = 0; i < rv.ncur; i++) {
        assert_true(rv.cur[i].mrr != M("118") && rv.cur[i].trial_mrr != M("69"));
        assert_true(rv.cur[i].invoiced != M("118"));
    }
    /* counts of customers are not money: they add up over currencies */
    assert_int_equal(rv.by_class[TG_MRR_PAYING], 3);
    assert_int_equal(rv.by_class[TG_MRR_TRIALING], 2);
    assert_int_equal(tg_tmpstore_close(&db), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usd_and_eur_apart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
