/* test_money.c - exact money (src/util/money.c): parsing decimal text at the edge of the int64
 * nano-unit range, formatting that never hides value, rounding half away from zero to a
 * currency's minor unit, checked multiplication/addition, proration scaling with a 128-bit
 * intermediate, and the ISO 4217 digit table. Periods are tested in test_period.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "util/money.h"
#include "util/money_text.h"

static tg_money_t M(const char *s)
{
    tg_money_t v = 0;
    tg_err_t err;
    if (tg_money_parse(s, strlen(s), &v, &err) != 0)
        fail_msg("parse \"%s\": %s", s, err.msg);
    return v;
}

static int parse_rc(const char *s)
{
    tg_money_t v = 12345;
    tg_err_t err = {0};
    int rc = tg_money_parse(s, strlen(s), &v, &err);
    if (rc != 0) {
        assert_int_equal(v, 12345); /* nothing written on failure */
        assert_int_equal(err.code, rc);
        assert_true(err.msg[0] != '\0');
    }
    return rc;
}

static void test_parse(void **state)
{
    (void)state;
    assert_int_equal(M("49"), INT64_C(49000000000));
    assert_int_equal(M("0.0005"), 500000);
    assert_int_equal(M("0.000000125"), 125);
    assert_int_equal(M("0.000000001"), 1);
    assert_int_equal(M("-1.25"), INT64_C(-1250000000));
    assert_int_equal(M("+1.25"), INT64_C(1250000000));
    assert_int_equal(M(".5"), 500000000);
    assert_int_equal(M("-.5"), -500000000);
    assert_int_equal(M("0"), 0);
    assert_int_equal(M("-0"), 0);
    assert_int_equal(M("00049.500"), INT64_C(49500000000));
    assert_int_equal(M("1.000000000"), TG_MONEY_SCALE); /* nine decimals is the limit */
    /* len is honoured: only the first two characters are read */
    tg_money_t v;
    tg_err_t err;
    assert_int_equal(tg_money_parse("123", 2, &v, &err), 0);
    assert_int_equal(v, M("12"));

    assert_int_equal(parse_rc("0.0000000001"), TG_EINVAL);
    assert_int_equal(tg_money_parse("0.0000000001", 12, &v, &err), TG_EINVAL);
    assert_non_null(strstr(err.msg, "more than 9 decimal places"));
    assert_int_equal(parse_rc("1.0000000000"), TG_EINVAL); /* even a trailing zero: no silent cut */
    const char *bad[] = {"",   "-",    "+",   ".",    "-.",  "1.", "1e3", "12a", " 1",
                         "1 ", "0x10", "1,5", "1..2", "--1", "1-", "inf", "NaN", "1.2.3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (parse_rc(bad[i]) != TG_EINVAL)
            fail_msg("\"%s\" should be TG_EINVAL", bad[i]);
    assert_int_equal(tg_money_parse(NULL, 0, &v, &err), TG_EINVAL);
}

/* The int64 range is ±9223372036.854775807 major units; a value just past it is TG_ERANGE, never a
 * wrapped number. "9223372036.9" has an in-range whole part and used to wrap negative. */
static void test_parse_range(void **state)
{
    (void)state;
    assert_int_equal(M("9223372036.854775807"), INT64_MAX);
    assert_int_equal(M("-9223372036.854775807"), -INT64_MAX);
    assert_int_equal(M("-9223372036.854775808"), INT64_MIN);
    assert_int_equal(M("9223372036"), INT64_C(9223372036000000000));
    assert_int_equal(parse_rc("9223372036.854775808"), TG_ERANGE);
    assert_int_equal(parse_rc("-9223372036.854775809"), TG_ERANGE);
    assert_int_equal(parse_rc("9223372036.9"), TG_ERANGE);
    assert_int_equal(parse_rc("-9223372036.9"), TG_ERANGE);
    assert_int_equal(parse_rc("9223372037"), TG_ERANGE);
    assert_int_equal(parse_rc("99999999999"), TG_ERANGE);
    assert_int_equal(parse_rc("999999999999999999999999999999"), TG_ERANGE);
}

static const char *fmt(tg_money_t v, int digits)
{
    static char buf[TG_MONEY_FMT_MAX];
    int n = tg_money_format(v, digits, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(buf));
    return buf;
}

static void test_format(void **state)
{
    (void)state;
    assert_string_equal(fmt(M("61.5"), 2), "61.50");
    assert_string_equal(fmt(M("49"), 2), "49.00");
    assert_string_equal(fmt(0, 2), "0.00");
    assert_string_equal(fmt(0, 0), "0");
    assert_string_equal(fmt(M("5000"), 0), "5000");
    assert_string_equal(fmt(M("1.5"), 3), "1.500");
    assert_string_equal(fmt(M("-0.5"), 2), "-0.50");
    assert_string_equal(fmt(M("-12.34"), 2), "-12.34");
    assert_string_equal(fmt(125, 9), "0.000000125");
    assert_string_equal(fmt(125, 2), "0.000000125"); /* never hides value that was not rounded */
    assert_string_equal(fmt(M("73.456"), 2), "73.456");
    assert_string_equal(fmt(M("0.5"), 0), "0.5");
    assert_string_equal(fmt(M("1.25"), -3), "1.25");        /* digits < 0 act as 0 */
    assert_string_equal(fmt(M("1.25"), 12), "1.250000000"); /* digits > 9 act as 9 */
    assert_string_equal(fmt(INT64_MAX, 2), "9223372036.854775807");
    assert_string_equal(fmt(INT64_MIN, 2), "-9223372036.854775808");
    /* the cap is honoured: a buffer one byte short is TG_ERANGE */
    char small[6];
    assert_int_equal(tg_money_format(M("61.5"), 2, small, sizeof(small)), 5);
    assert_string_equal(small, "61.50");
    assert_int_equal(tg_money_format(M("610.5"), 2, small, sizeof(small)), TG_ERANGE);
    /* format . parse is the identity for every digit count */
    const tg_money_t vals[] = {0, 1, -1, 999999999, M("123.456789"), M("-0.01"), INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        for (int d = 0; d <= 9; d++)
            assert_int_equal(M(fmt(vals[i], d)), vals[i]);
}

static void test_round(void **state)
{
    (void)state;
    /* half away from zero, at the minor unit of each currency */
    assert_int_equal(tg_money_round(M("73.456"), 2), M("73.46"));
    assert_int_equal(tg_money_round(M("73.455"), 2), M("73.46"));
    assert_int_equal(tg_money_round(M("73.454999999"), 2), M("73.45"));
    assert_int_equal(tg_money_round(M("0.005"), 2), M("0.01"));
    assert_int_equal(tg_money_round(M("0.004999999"), 2), 0);
    assert_int_equal(tg_money_round(M("-0.005"), 2), M("-0.01"));
    assert_int_equal(tg_money_round(M("-0.004999999"), 2), 0);
    assert_int_equal(tg_money_round(M("1234.5"), 0), M("1235")); /* JPY: no minor unit */
    assert_int_equal(tg_money_round(M("1234.499999999"), 0), M("1234"));
    assert_int_equal(tg_money_round(M("-1234.5"), 0), M("-1235"));
    assert_int_equal(tg_money_round(M("0.0005"), 3), M("0.001")); /* KWD: three digits */
    assert_int_equal(tg_money_round(M("0.0004"), 3), 0);
    assert_int_equal(tg_money_round(M("2.5"), 0), M("3")); /* not banker's rounding */
    assert_int_equal(tg_money_round(M("3.5"), 0), M("4"));
    assert_int_equal(tg_money_round(M("0.000000125"), 9), 125); /* 9 digits: unchanged */
    assert_int_equal(tg_money_round(M("0.000000125"), 12), 125);
    assert_int_equal(tg_money_round(M("0.6"), -1), M("1")); /* digits < 0 act as 0 */
    /* Near the ends of the range: rounding down always fits... */
    assert_int_equal(tg_money_round(INT64_MAX, 2), INT64_C(9223372036850000000));
    assert_int_equal(tg_money_round(INT64_MIN, 2), INT64_C(-9223372036850000000));
    /* ...rounding up past INT64_MAX cannot: the amount comes back unrounded (callers that must be
     * on the minor-unit grid, like pricing, check for that and report TG_ERANGE). */
    assert_int_equal(tg_money_round(INT64_MAX, 0), INT64_MAX);
    /* Rounded values are on the grid and within half a step, for a sweep of values. */
    for (int d = 0; d <= 3; d++) {
        int64_t step = 1;
        for (int k = 0; k < 9 - d; k++)
            step *= 10;
        for (tg_money_t v = -3 * step; v <= 3 * step; v += step / 8 + 1) {
            tg_money_t r = tg_money_round(v, d);
            assert_int_equal(r % step, 0);
            tg_money_t diff = r - v;
            assert_true(diff <= step / 2 && diff >= -step / 2);
            if (diff == step / 2 || diff == -step / 2) /* exact half: away from zero */
                assert_true((v > 0 && r > v) || (v < 0 && r < v));
        }
    }
}

static void test_mul_add(void **state)
{
    (void)state;
    tg_money_t out;
    assert_int_equal(tg_money_mul(M("0.000000125"), UINT64_C(1000000000000000), &out), 0);
    assert_int_equal(out, M("125000000")); /* 10^15 tokens at 0.000000125 */
    assert_int_equal(tg_money_mul(M("0.001"), 73456, &out), 0);
    assert_int_equal(out, M("73.456"));
    assert_int_equal(tg_money_mul(M("1"), UINT64_C(9223372036), &out), 0);
    assert_int_equal(tg_money_mul(M("1"), UINT64_C(9223372037), &out), TG_ERANGE);
    assert_int_equal(tg_money_mul(M("1"), UINT64_C(10000000000000), &out), TG_ERANGE);
    assert_int_equal(tg_money_mul(1, (uint64_t)INT64_MAX, &out), 0);
    assert_int_equal(out, INT64_MAX);
    assert_int_equal(tg_money_mul(1, (uint64_t)INT64_MAX + 1, &out), TG_ERANGE);
    assert_int_equal(tg_money_mul(-1, (uint64_t)INT64_MAX + 1, &out), 0); /* exactly INT64_MIN */
    assert_int_equal(out, INT64_MIN);
    assert_int_equal(tg_money_mul(-1, (uint64_t)INT64_MAX + 2, &out), TG_ERANGE);
    assert_int_equal(tg_money_mul(0, UINT64_MAX, &out), 0);
    assert_int_equal(out, 0);
    assert_int_equal(tg_money_mul(INT64_MAX, UINT64_MAX, &out), TG_ERANGE); /* no wrap in 128 bits */
    assert_int_equal(tg_money_mul(INT64_MIN, UINT64_MAX, &out), TG_ERANGE);

    assert_int_equal(tg_money_add(M("49"), M("73.46"), &out), 0);
    assert_int_equal(out, M("122.46"));
    assert_int_equal(tg_money_add(INT64_MAX, 1, &out), TG_ERANGE);
    assert_int_equal(tg_money_add(INT64_MIN, -1, &out), TG_ERANGE);
    assert_int_equal(tg_money_add(INT64_MAX, INT64_MIN, &out), 0);
    assert_int_equal(out, -1);
}

static void test_scale(void **state)
{
    (void)state;
    tg_money_t out;
    assert_int_equal(tg_money_scale(M("49"), 15, 30, &out), 0);
    assert_int_equal(out, M("24.5"));
    assert_int_equal(tg_money_scale(M("1"), 1, 3, &out), 0);
    assert_int_equal(out, 333333333);
    assert_int_equal(tg_money_scale(M("2"), 1, 3, &out), 0);
    assert_int_equal(out, 666666667);
    assert_int_equal(tg_money_scale(M("-2"), 1, 3, &out), 0);
    assert_int_equal(out, -666666667);
    /* half a nano-unit: away from zero */
    assert_int_equal(tg_money_scale(1, 1, 2, &out), 0);
    assert_int_equal(out, 1);
    assert_int_equal(tg_money_scale(-1, 1, 2, &out), 0);
    assert_int_equal(out, -1);
    assert_int_equal(tg_money_scale(3, 1, 2, &out), 0);
    assert_int_equal(out, 2);
    assert_int_equal(tg_money_scale(5, 1, 4, &out), 0); /* 1.25 -> 1 */
    assert_int_equal(out, 1);
    assert_int_equal(tg_money_scale(M("49"), 0, 30, &out), 0);
    assert_int_equal(out, 0);
    /* the product needs 128 bits but the result fits */
    assert_int_equal(tg_money_scale(INT64_MAX, INT64_MAX, INT64_MAX, &out), 0);
    assert_int_equal(out, INT64_MAX);
    assert_int_equal(tg_money_scale(INT64_MAX, 31 * 86400, 31 * 86400, &out), 0);
    assert_int_equal(out, INT64_MAX);
    assert_int_equal(tg_money_scale(INT64_MAX, 2, 1, &out), TG_ERANGE);
    assert_int_equal(tg_money_scale(INT64_MIN, -1, 1, &out), TG_ERANGE);
    assert_int_equal(tg_money_scale(M("1"), 1, 0, &out), TG_EINVAL);
    assert_int_equal(tg_money_scale(M("1"), 1, -5, &out), TG_EINVAL);
}

static void test_currency_digits(void **state)
{
    (void)state;
    assert_int_equal(tg_currency_digits("JPY"), 0);
    assert_int_equal(tg_currency_digits("jpy"), 0);
    assert_int_equal(tg_currency_digits("krw"), 0);
    assert_int_equal(tg_currency_digits("usd"), 2);
    assert_int_equal(tg_currency_digits("Eur"), 2);
    assert_int_equal(tg_currency_digits("kwd"), 3);
    assert_int_equal(tg_currency_digits("BHD"), 3);
    assert_int_equal(tg_currency_digits("usdd"), -1);
    assert_int_equal(tg_currency_digits("us"), -1);
    assert_int_equal(tg_currency_digits(""), -1);
    assert_int_equal(tg_currency_digits(NULL), -1);
}

/* Money for people in mail and HTML invoices: the digits as given, a symbol, thousands grouped. */
static void test_money_text(void **state)
{
    (void)state;
    char b[64];
    assert_int_equal(tg_money_text("49.00", "usd", b, sizeof(b)), 6);
    assert_string_equal(b, "$49.00");
    tg_money_text("0.0005", "EUR", b, sizeof(b));
    assert_string_equal(b, "€0.0005");
    tg_money_text("1200", "jpy", b, sizeof(b));
    assert_string_equal(b, "¥1,200");
    tg_money_text("-1234567.5", "gbp", b, sizeof(b));
    assert_string_equal(b, "-£1,234,567.5");
    tg_money_text("10.00", "chf", b, sizeof(b));
    assert_string_equal(b, "CHF 10.00");
    tg_money_text("999", "usd", b, sizeof(b));
    assert_string_equal(b, "$999");
    /* not a plain decimal, or no room: -1 and "" */
    assert_int_equal(tg_money_text("1e3", "usd", b, sizeof(b)), -1);
    assert_string_equal(b, "");
    assert_int_equal(tg_money_text(".5", "usd", b, sizeof(b)), -1);
    assert_int_equal(tg_money_text("5.", "usd", b, sizeof(b)), -1);
    assert_int_equal(tg_money_text("5", "us", b, sizeof(b)), -1);
    assert_int_equal(tg_money_text("1000.00", "usd", b, 9), -1); /* "$1,000.00" needs 10 bytes */
    assert_int_equal(tg_money_text("1000.00", "usd", b, 10), 9);
    assert_int_equal(tg_count_text(0, b, sizeof(b)), 1);
    assert_string_equal(b, "0");
    tg_count_text(50000, b, sizeof(b));
    assert_string_equal(b, "50,000");
    tg_count_text(UINT64_MAX, b, sizeof(b));
    assert_string_equal(b, "18,446,744,073,709,551,615");
    assert_int_equal(tg_count_text(1000, b, 5), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),           cmocka_unit_test(test_parse_range), cmocka_unit_test(test_format),
        cmocka_unit_test(test_round),           cmocka_unit_test(test_mul_add),     cmocka_unit_test(test_scale),
        cmocka_unit_test(test_currency_digits), cmocka_unit_test(test_money_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
