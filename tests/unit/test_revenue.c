/* test_revenue.c - the owner's revenue figures (src/billing/revenue.c): invoice totals split per
 * currency into invoiced / collected / outstanding / uncollectible (drafts and voids left out,
 * a fraction of a minor unit or an overflow refused with nothing changed), the MRR class of a
 * customer, and the monthly fee of a plan rounded to the currency's minor unit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../support/tmpstore.h"
#include "billing/revenue.h"

static tg_money_t M(const char *s)
{
    tg_money_t v = 0;
    tg_err_t err;
    if (tg_money_parse(s, strlen(s), &v, &err) != 0)
        fail_msg("parse \"%s\": %s", s, err.msg);
    return v;
}

static tg_plan_t plan(const char *id, const char *price, const char *currency, tg_interval_t interval)
{
    tg_plan_t p;
    memset(&p, 0, sizeof(p));
    p.id = (char *)id;
    p.price = M(price);
    snprintf(p.currency, sizeof(p.currency), "%s", currency);
    p.currency_digits = tg_currency_digits(currency);
    p.interval = interval;
    return p;
}

static tg_customer_t customer(const char *status, int64_t trial_end, int64_t cancel_at)
{
    tg_customer_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.id, sizeof(c.id), "cus_test");
    snprintf(c.status, sizeof(c.status), "%s", status);
    c.trial_end = trial_end;
    c.cancel_at = cancel_at;
    return c;
}

static void test_invoice_split(void **state)
{
    (void)state;
    tg_revenue_t rv;
    tg_err_t err = {0};
    tg_revenue_init(&rv, 100, 200);
    assert_int_equal(rv.from, 100);
    assert_int_equal(rv.to, 200);
    assert_int_equal(tg_revenue_add_invoices(&rv, "usd", "paid", M("10.75"), 1, &err), 0);
    assert_int_equal(tg_revenue_add_invoices(&rv, "usd", "open", M("20.00"), 2, &err), 0);
    assert_int_equal(tg_revenue_add_invoices(&rv, "usd", "uncollectible", M("3.01"), 1, &err), 0);
    assert_int_equal(tg_revenue_add_invoices(&rv, "usd", "void", M("99.00"), 4, &err), 0);  /* not revenue */
    assert_int_equal(tg_revenue_add_invoices(&rv, "usd", "draft", M("99.00"), 4, &err), 0); /* not yet */
    assert_int_equal(tg_revenue_add_invoices(&rv, "JPY", "paid", M("1206"), 1, &err), 0);
    assert_int_equal(tg_revenue_add_invoices(&rv, "jpy", "paid", M("1"), 1, &err), 0); /* same entry */
    assert_int_equal(rv.ncur, 2);
    const tg_revenue_currency_t *u = tg_revenue_find(&rv, "usd");
    assert_non_null(u);
    assert_int_equal(u->digits, 2);
    assert_int_equal(u->invoiced, M("33.76"));
    assert_int_equal(u->collected, M("10.75"));
    assert_int_equal(u->outstanding, M("20.00"));
    assert_int_equal(u->uncollectible, M("3.01"));
    assert_int_equal(u->invoiced, u->collected + u->outstanding + u->uncollectible);
    assert_int_equal(u->n_invoiced, 4);
    assert_int_equal(u->n_paid, 1);
    assert_int_equal(u->n_open, 2);
    assert_int_equal(u->n_uncollectible, 1);
    const tg_revenue_currency_t *y = tg_revenue_find(&rv, "jpy");
    assert_non_null(y);
    assert_string_equal(y->currency, "jpy");
    assert_int_equal(y->digits, 0);
    assert_int_equal(y->collected, M("1207"));
    assert_null(tg_revenue_find(&rv, "eur"));
}

static void test_invoice_refusals(void **state)
{
    (void)state;
    tg_revenue_t rv, before;
    tg_err_t err = {0};
    tg_revenue_init(&rv, 0, 1);
    assert_int_equal(tg_revenue_add_invoices(&rv, "usd", "paid", M("1.00"), 1, &err), 0);
    assert_int_equal(tg_revenue_add_invoices(&rv, "usd", "open", M("9000000000"), 1, &err), 0);
    memcpy(&before, &rv, sizeof(rv));
    /* a tenth of a cent is not an invoice total tollgate makes: refused, not rounded */
    assert_int_equal(tg_revenue_add_invoices(&rv, "usd", "paid", M("0.001"), 1, &err), TG_EINVAL);
    assert_non_null(strstr(err.msg, "minor units"));
    /* ...nor half a yen, in a currency seen for the first time: no entry is left behind */
    assert_int_equal(tg_revenue_add_invoices(&rv, "jpy", "open", M("0.5"), 1, &err), TG_EINVAL);
    assert_int_equal(tg_revenue_add_invoices(&rv, "xxx", "open", M("1"), 1, &err), TG_EINVAL);
    /* 9 billion dollars more: the invoiced sum would leave int64 (the paid one would not) */
    assert_int_equal(tg_revenue_add_invoices(&rv, "usd", "paid", M("9000000000"), 1, &err), TG_ERANGE);
    assert_memory_equal(&rv, &before, sizeof(rv));
    /* more currencies than the table holds */
    static const char *const codes[] = {"eur", "gbp", "jpy", "chf", "cad", "aud", "nzd", "sek",
                                        "nok", "dkk", "pln", "czk", "huf", "kwd", "bhd", "inr"};
    size_t i;
    for (i = 0; rv.ncur < TG_REVENUE_MAX_CURRENCIES; i++)
        assert_int_equal(tg_revenue_add_invoices(&rv, codes[i], "paid", M("1"), 1, &err), 0);
    assert_int_equal(tg_revenue_add_invoices(&rv, codes[i], "paid", M("1"), 1, &err), TG_ERANGE);
}

static void test_classify(void **state)
{
    (void)state;
    const int64_t now = 1000000;
    tg_plan_t paid = plan("metered", "10", "usd", TG_INTERVAL_MONTH);
    tg_plan_t free = plan("free", "0", "usd", TG_INTERVAL_MONTH);
    tg_plan_t payg = plan("payg", "0", "usd", TG_INTERVAL_MONTH);
    tg_charge_t charge = {0};
    payg.charges = &charge;
    payg.ncharges = 1;
    tg_customer_t c = customer("active", 0, 0);
    assert_int_equal(tg_mrr_classify(&c, &paid, now), TG_MRR_PAYING);
    assert_int_equal(tg_mrr_classify(&c, &free, now), TG_MRR_FREE);
    assert_int_equal(tg_mrr_classify(&c, &payg, now), TG_MRR_PAYING); /* usage charges: it pays */
    c = customer("past_due", 0, 0);                                   /* still subscribed, billed */
    assert_int_equal(tg_mrr_classify(&c, &paid, now), TG_MRR_PAYING);
    c = customer("trialing", now + 1, 0);
    assert_int_equal(tg_mrr_classify(&c, &paid, now), TG_MRR_TRIALING);
    c = customer("trialing", now, 0); /* the trial ended: paying from its end */
    assert_int_equal(tg_mrr_classify(&c, &paid, now), TG_MRR_PAYING);
    c = customer("trialing", now + 1, 0);
    assert_int_equal(tg_mrr_classify(&c, &free, now), TG_MRR_FREE);
    c = customer("incomplete", TG_TRIAL_AT_CARD, 0);
    assert_int_equal(tg_mrr_classify(&c, &paid, now), TG_MRR_INCOMPLETE);
    c = customer("suspended", 0, 0);
    assert_int_equal(tg_mrr_classify(&c, &paid, now), TG_MRR_SUSPENDED);
    c = customer("canceled", 0, now - 1);
    assert_int_equal(tg_mrr_classify(&c, &paid, now), TG_MRR_CANCELED);
    c = customer("active", 0, now + 86400); /* canceled at the period's end: pays until then */
    assert_int_equal(tg_mrr_classify(&c, &paid, now), TG_MRR_PAYING);
    c = customer("active", 0, now); /* that end has come, before the status caught up */
    assert_int_equal(tg_mrr_classify(&c, &paid, now), TG_MRR_CANCELED);
    assert_string_equal(tg_mrr_class_name(TG_MRR_PAYING), "paying");
    assert_string_equal(tg_mrr_class_name(TG_MRR_FREE), "free");
    assert_string_equal(tg_mrr_class_name(TG_MRR_NCLASSES), "unknown");
}

static void test_monthly_fee(void **state)
{
    (void)state;
    tg_money_t fee;
    tg_err_t err = {0};
    tg_plan_t p = plan("m", "49", "usd", TG_INTERVAL_MONTH);
    assert_int_equal(tg_mrr_monthly_fee(&p, &fee, &err), 0);
    assert_int_equal(fee, M("49"));
    p = plan("y", "100", "usd", TG_INTERVAL_YEAR); /* 8.3333... rounds to 8.33 */
    assert_int_equal(tg_mrr_monthly_fee(&p, &fee, &err), 0);
    assert_int_equal(fee, M("8.33"));
    p = plan("y", "0.30", "usd", TG_INTERVAL_YEAR); /* 0.025: half away from zero */
    assert_int_equal(tg_mrr_monthly_fee(&p, &fee, &err), 0);
    assert_int_equal(fee, M("0.03"));
    p = plan("y", "1000", "jpy", TG_INTERVAL_YEAR); /* 83.33 yen: whole yen */
    assert_int_equal(tg_mrr_monthly_fee(&p, &fee, &err), 0);
    assert_int_equal(fee, M("83"));
    p = plan("y", "1", "kwd", TG_INTERVAL_YEAR); /* 0.08333: three digits */
    assert_int_equal(tg_mrr_monthly_fee(&p, &fee, &err), 0);
    assert_int_equal(fee, M("0.083"));
}

static void test_add_customer(void **state)
{
    (void)state;
    const int64_t now = 1000000;
    tg_revenue_t rv;
    tg_err_t err = {0};
    tg_revenue_init(&rv, 0, now);
    tg_plan_t metered = plan("metered", "10", "usd", TG_INTERVAL_MONTH);
    tg_plan_t starter = plan("starter", "49", "usd", TG_INTERVAL_MONTH);
    tg_plan_t yen = plan("yen", "1200", "jpy", TG_INTERVAL_MONTH);
    tg_plan_t free = plan("free", "0", "usd", TG_INTERVAL_MONTH);
    tg_customer_t active = customer("active", 0, 0), trial = customer("trialing", now + 86400, 0),
                  susp = customer("suspended", 0, 0), gone = customer("canceled", 0, 1);
    assert_int_equal(tg_revenue_add_customer(&rv, &active, &metered, now, &err), 0);
    assert_int_equal(tg_revenue_add_customer(&rv, &active, &metered, now, &err), 0);
    assert_int_equal(tg_revenue_add_customer(&rv, &trial, &starter, now, &err), 0);
    assert_int_equal(tg_revenue_add_customer(&rv, &susp, &metered, now, &err), 0);
    assert_int_equal(tg_revenue_add_customer(&rv, &gone, &metered, now, &err), 0);
    assert_int_equal(tg_revenue_add_customer(&rv, &active, &free, now, &err), 0);
    assert_int_equal(tg_revenue_add_customer(&rv, &active, &yen, now, &err), 0);
    const tg_revenue_currency_t *u = tg_revenue_find(&rv, "usd"), *y = tg_revenue_find(&rv, "jpy");
    assert_non_null(u);
    assert_non_null(y);
    assert_int_equal(u->mrr, M("20"));
    assert_int_equal(u->paying, 2);
    assert_int_equal(u->trial_mrr, M("49"));
    assert_int_equal(u->trialing, 1);
    assert_int_equal(u->invoiced, 0);
    assert_int_equal(y->mrr, M("1200"));
    assert_int_equal(y->paying, 1);
    assert_int_equal(rv.by_class[TG_MRR_PAYING], 3);
    assert_int_equal(rv.by_class[TG_MRR_TRIALING], 1);
    assert_int_equal(rv.by_class[TG_MRR_SUSPENDED], 1);
    assert_int_equal(rv.by_class[TG_MRR_CANCELED], 1);
    assert_int_equal(rv.by_class[TG_MRR_FREE], 1);
    assert_int_equal(rv.by_class[TG_MRR_INCOMPLETE], 0);
    /* an MRR that leaves int64 is refused and changes nothing */
    tg_plan_t huge = plan("huge", "9000000000", "usd", TG_INTERVAL_MONTH);
    tg_revenue_t before;
    assert_int_equal(tg_revenue_add_customer(&rv, &active, &huge, now, &err), 0);
    memcpy(&before, &rv, sizeof(rv));
    assert_int_equal(tg_revenue_add_customer(&rv, &active, &huge, now, &err), TG_ERANGE);
    assert_memory_equal(&rv, &before, sizeof(rv));
}

static void test_usage(void **state)
{
    (void)state;
    tg_revenue_t rv, before;
    tg_err_t err = {0};
    tg_revenue_init(&rv, 0, 1);
    assert_int_equal(tg_revenue_add_usage(&rv, "usd", M("0.75"), &err), 0);
    assert_int_equal(tg_revenue_add_usage(&rv, "usd", M("1.25"), &err), 0);
    assert_int_equal(tg_revenue_add_usage(&rv, "jpy", M("6"), &err), 0);
    assert_int_equal(tg_revenue_find(&rv, "usd")->usage_last_period, M("2.00"));
    assert_int_equal(tg_revenue_find(&rv, "jpy")->usage_last_period, M("6"));
    assert_int_equal(tg_revenue_find(&rv, "usd")->invoiced, 0); /* apart from the invoiced split */
    assert_int_equal(tg_revenue_add_usage(&rv, "usd", M("9000000000"), &err), 0);
    memcpy(&before, &rv, sizeof(rv));
    assert_int_equal(tg_revenue_add_usage(&rv, "eur", M("0.005"), &err), TG_EINVAL);
    assert_int_equal(tg_revenue_add_usage(&rv, "usd", M("9000000000"), &err), TG_ERANGE);
    assert_memory_equal(&rv, &before, sizeof(rv));
}

/* tg_revenue_compute on a real store: the invoices of the window and every customer, with the
 * per-plan MRR the dashboard lists; a customer whose plan left the configuration is skipped. */
static void test_compute(void **state)
{
    (void)state;
    const int64_t now = 2000000;
    tg_tmpstore_t t;
    tg_err_t err = {0};
    assert_int_equal(tg_tmpstore_open(&t, "revenue"), 0);
    tg_plan_t plans[4] = {plan("metered", "10", "usd", TG_INTERVAL_MONTH),
                          plan("starter", "49", "usd", TG_INTERVAL_MONTH), plan("free", "0", "usd", TG_INTERVAL_MONTH),
                          plan("yen", "1200", "jpy", TG_INTERVAL_MONTH)};
    tg_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.plans = plans;
    cfg.nplans = 4;
    static const struct {
        const char *id, *plan, *status;
        int64_t trial_end;
    } cs[] = {{"cus_a", "metered", "active", 0},
              {"cus_b", "metered", "past_due", 0},
              {"cus_c", "starter", "trialing", now + 10},
              {"cus_d", "metered", "suspended", 0},
              {"cus_e", "free", "active", 0},
              {"cus_f", "yen", "active", 0},
              {"cus_g", "gone", "active", 0}};
    for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
        tg_customer_t c = customer(cs[i].status, cs[i].trial_end, 0);
        snprintf(c.id, sizeof(c.id), "%s", cs[i].id);
        snprintf(c.email, sizeof(c.email), "%s@example.com", cs[i].id);
        snprintf(c.plan_id, sizeof(c.plan_id), "%s", cs[i].plan);
        c.created_at = c.anchor_at = 1000;
        assert_int_equal(tg_store_customer_insert(t.st, &c, &err), 0);
    }
    assert_int_equal(
        tg_tmpstore_exec(&t,
                     "INSERT INTO invoices (id, customer_id, period_start, period_end, status, number,"
                     " currency, total, body, created_at, finalized_at) VALUES"
                     " ('in_1', 'cus_a', 1, 2, 'paid', 'N1', 'usd', 10750000000, '{}', 1, 1500000),"
                     " ('in_2', 'cus_b', 1, 2, 'open', 'N2', 'usd', 10000000000, '{}', 1, 1500001),"
                     " ('in_3', 'cus_d', 1, 2, 'uncollectible', 'N3', 'usd', 10000000000, '{}', 1, 1500002),"
                     " ('in_4', 'cus_f', 1, 2, 'open', 'N4', 'jpy', 1200000000000, '{}', 1, 1500003),"
                     " ('in_5', 'cus_a', 2, 3, 'draft', NULL, 'usd', 10000000000, '{}', 1, 0),"
                     " ('in_6', 'cus_a', 0, 1, 'paid', 'N0', 'usd', 10000000000, '{}', 1, 999999)"),
        0);

    tg_revenue_t rv;
    tg_revenue_plan_t by_plan[4];
    assert_int_equal(tg_revenue_compute(t.st, &cfg, 1000000, now, now, &rv, by_plan, &err), 0);
    assert_int_equal(rv.ncur, 2);
    assert_string_equal(rv.cur[0].currency, "jpy"); /* sorted by code */
    assert_string_equal(rv.cur[1].currency, "usd");
    const tg_revenue_currency_t *u = &rv.cur[1], *y = &rv.cur[0];
    assert_int_equal(u->invoiced, M("30.75")); /* in_6 was finalized before the window */
    assert_int_equal(u->collected, M("10.75"));
    assert_int_equal(u->outstanding, M("10"));
    assert_int_equal(u->uncollectible, M("10"));
    assert_int_equal(u->mrr, M("20")); /* cus_a and cus_b (past_due) */
    assert_int_equal(u->paying, 2);
    assert_int_equal(u->trial_mrr, M("49"));
    assert_int_equal(y->outstanding, M("1200"));
    assert_int_equal(y->mrr, M("1200"));
    assert_int_equal(rv.by_class[TG_MRR_PAYING], 3);
    assert_int_equal(rv.by_class[TG_MRR_SUSPENDED], 1);
    assert_int_equal(rv.by_class[TG_MRR_FREE], 1);
    assert_int_equal(rv.by_class[TG_MRR_TRIALING], 1); /* cus_g's plan is gone: not counted */
    assert_int_equal(by_plan[0].mrr, M("20"));
    assert_int_equal(by_plan[0].paying, 2);
    assert_int_equal(by_plan[1].paying, 0); /* a trial is not paying */
    assert_int_equal(by_plan[2].paying, 0);
    assert_int_equal(by_plan[3].mrr, M("1200"));
    assert_int_equal(tg_tmpstore_close(&t), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invoice_split), cmocka_unit_test(test_invoice_refusals), cmocka_unit_test(test_classify),
        cmocka_unit_test(test_monthly_fee),   cmocka_unit_test(test_add_customer),     cmocka_unit_test(test_usage),
        cmocka_unit_test(test_compute),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
