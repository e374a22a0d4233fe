/* test_money.c - exact money and anchored billing periods. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "util/money.h"
#include "util/period.h"

static tg_money_t M(const char *s)
{
    tg_money_t v = 0;
    tg_err_t err;
    assert_int_equal(tg_money_parse(s, strlen(s), &v, &err), 0);
    return v;
}

static void test_parse(void **state)
{
    (void)state;
    assert_int_equal(M("49"), INT64_C(49000000000));
    assert_int_equal(M("0.0005"), 500000);
    assert_int_equal(M("0.000000125"), 125);
    assert_int_equal(M("-1.25"), INT64_C(-1250000000));
    assert_int_equal(M(".5"), 500000000);
    tg_money_t v;
    tg_err_t err;
    assert_int_equal(tg_money_parse("0.0000000001", 12, &v, &err), TG_EINVAL);
    assert_non_null(strstr(err.msg, "more than 9 decimal places"));
    assert_int_equal(tg_money_parse("1e3", 3, &v, &err), TG_EINVAL);
    assert_int_equal(tg_money_parse("", 0, &v, &err), TG_EINVAL);
    assert_int_equal(tg_money_parse("1.", 2, &v, &err), TG_EINVAL);
    assert_int_equal(tg_money_parse("12a", 3, &v, &err), TG_EINVAL);
    assert_int_equal(tg_money_parse("99999999999", 11, &v, &err), TG_ERANGE);
}

static void test_format_round(void **state)
{
    (void)state;
    char buf[TG_MONEY_FMT_MAX];
    tg_money_format(M("61.5"), 2, buf, sizeof(buf));
    assert_string_equal(buf, "61.50");
    tg_money_format(M("73.456"), 2, buf, sizeof(buf));
    assert_string_equal(buf, "73.456"); /* never hides value that was not rounded */
    tg_money_format(tg_money_round(M("73.456"), 2), 2, buf, sizeof(buf));
    assert_string_equal(buf, "73.46");
    tg_money_format(tg_money_round(M("0.005"), 2), 2, buf, sizeof(buf));
    assert_string_equal(buf, "0.01"); /* half up */
    tg_money_format(tg_money_round(M("0.004999999"), 2), 2, buf, sizeof(buf));
    assert_string_equal(buf, "0.00");
    tg_money_format(tg_money_round(M("-0.005"), 2), 2, buf, sizeof(buf));
    assert_string_equal(buf, "-0.01"); /* half away from zero */
    tg_money_format(tg_money_round(M("1234.5"), 0), 0, buf, sizeof(buf));
    assert_string_equal(buf, "1235"); /* JPY has no minor unit */
    tg_money_format(INT64_MIN, 2, buf, sizeof(buf));
    assert_string_equal(buf, "-9223372036.854775808");
}

static void test_mul_overflow(void **state)
{
    (void)state;
    tg_money_t out;
    assert_int_equal(tg_money_mul(M("0.000000125"), UINT64_C(1000000000000000), &out), 0);
    assert_int_equal(out, M("125000000")); /* 10^15 tokens at 0.000000125 */
    assert_int_equal(tg_money_mul(M("1"), UINT64_C(10000000000000), &out), TG_ERANGE);
    assert_int_equal(tg_money_add(INT64_MAX, 1, &out), TG_ERANGE);
    assert_int_equal(tg_money_scale(M("49"), 15, 30, &out), 0);
    assert_int_equal(out, M("24.5"));
    assert_int_equal(tg_money_scale(M("1"), 1, 3, &out), 0);
    assert_int_equal(out, 333333333);
    assert_int_equal(tg_currency_digits("JPY"), 0);
    assert_int_equal(tg_currency_digits("usd"), 2);
    assert_int_equal(tg_currency_digits("kwd"), 3);
    assert_int_equal(tg_currency_digits("usdd"), -1);
}

/* 2026-01-31T10:00:00Z */
#define JAN31_2026 INT64_C(1769853600)

static void test_periods_clamp(void **state)
{
    (void)state;
    /* Jan 31 -> Feb 28 -> Mar 31 -> Apr 30: every boundary from the anchor, no drift. */
    assert_int_equal(tg_period_boundary(JAN31_2026, TG_INTERVAL_MONTH, 1), INT64_C(1772272800)); /* 2026-02-28T10Z */
    assert_int_equal(tg_period_boundary(JAN31_2026, TG_INTERVAL_MONTH, 2), INT64_C(1774951200)); /* 2026-03-31T10Z */
    assert_int_equal(tg_period_boundary(JAN31_2026, TG_INTERVAL_MONTH, 3), INT64_C(1777543200)); /* 2026-04-30T10Z */
    /* leap year: 2028-01-31 -> 2028-02-29 */
    int64_t jan31_2028 = INT64_C(1832925600); /* 2028-01-31T10:00:00Z */
    assert_int_equal(tg_period_boundary(jan31_2028, TG_INTERVAL_MONTH, 1), INT64_C(1835431200));
    /* yearly anchor on Feb 29 2024 clamps to Feb 28 2025, back to Feb 29 in 2028 */
    int64_t feb29_2024 = INT64_C(1709164800); /* 2024-02-29T00:00:00Z */
    assert_int_equal(tg_period_boundary(feb29_2024, TG_INTERVAL_YEAR, 1), INT64_C(1740700800)); /* 2025-02-28 */
    assert_int_equal(tg_period_boundary(feb29_2024, TG_INTERVAL_YEAR, 4), INT64_C(1835395200)); /* 2028-02-29 */
    assert_int_equal(tg_days_in_month(2100, 2), 28);
    assert_int_equal(tg_days_in_month(2000, 2), 29);
}

static void test_period_bounds(void **state)
{
    (void)state;
    int64_t s, e;
    tg_period_bounds(JAN31_2026, TG_INTERVAL_MONTH, JAN31_2026, &s, &e);
    assert_int_equal(s, JAN31_2026);
    assert_int_equal(e, INT64_C(1772272800));
    tg_period_bounds(JAN31_2026, TG_INTERVAL_MONTH, INT64_C(1772272800), &s, &e); /* exactly on a boundary */
    assert_int_equal(s, INT64_C(1772272800));
    tg_period_bounds(JAN31_2026, TG_INTERVAL_MONTH, INT64_C(1772272799), &s, &e);
    assert_int_equal(s, JAN31_2026);
    tg_period_bounds(JAN31_2026, TG_INTERVAL_MONTH, JAN31_2026 - 1000, &s, &e); /* before the anchor */
    assert_int_equal(s, JAN31_2026);
    /* far future: 100 years on, still a month-long period containing now */
    int64_t later = JAN31_2026 + INT64_C(3155760000);
    tg_period_bounds(JAN31_2026, TG_INTERVAL_MONTH, later, &s, &e);
    assert_true(s <= later && later < e);
    assert_true(e - s >= 28 * 86400 && e - s <= 31 * 86400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),          cmocka_unit_test(test_format_round),
        cmocka_unit_test(test_mul_overflow),   cmocka_unit_test(test_periods_clamp),
        cmocka_unit_test(test_period_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
