/* test_decimal.c - tg_decimal_u64: every digit count, each side of every power of ten, the
 * extremes, against snprintf's "%" PRIu64 as the reference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "util/decimal.h"

/* v as tg_decimal_u64 writes it equals want, and nothing past its digits is touched. */
static void decimal_is(uint64_t v, const char *want)
{
    char out[TG_DECIMAL_U64_MAX + 4];
    memset(out, '#', sizeof(out));
    size_t n = tg_decimal_u64(out, v);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
    for (size_t i = n; i < sizeof(out); i++)
        assert_int_equal(out[i], '#');
}

static void decimal_is_printf(uint64_t v)
{
    char want[32];
    snprintf(want, sizeof(want), "%" PRIu64, v);
    decimal_is(v, want);
}

static void test_small_numbers(void **state)
{
    (void)state;
    decimal_is(0, "0");
    decimal_is(9, "9");
    decimal_is(10, "10");
    decimal_is(99, "99");
    decimal_is(100, "100");
    decimal_is(101, "101");
    decimal_is(999, "999");
    decimal_is(1000, "1000");
    for (uint64_t v = 0; v < 100000; v++)
        decimal_is_printf(v);
}

static void test_each_side_of_every_power_of_ten(void **state)
{
    (void)state;
    uint64_t p = 1;
    for (int digits = 1; digits <= 20; digits++) {
        decimal_is_printf(p - 1);
        decimal_is_printf(p);
        decimal_is_printf(p + 1);
        if (digits < 20)
            p *= 10;
    }
    assert_true(p == UINT64_C(10000000000000000000));
}

static void test_the_extremes(void **state)
{
    (void)state;
    decimal_is(UINT64_MAX, "18446744073709551615");
    decimal_is(UINT64_MAX - 1, "18446744073709551614");
    decimal_is(UINT64_C(9999999999999999999), "9999999999999999999");
    decimal_is(UINT64_C(10000000000000000000), "10000000000000000000");
    decimal_is((uint64_t)INT64_MAX, "9223372036854775807");
    /* a spread of large values, every digit in every place */
    uint64_t v = UINT64_C(0x9e3779b97f4a7c15);
    for (int i = 0; i < 100000; i++) {
        decimal_is_printf(v);
        decimal_is_printf(v >> (i % 64));
        v = v * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_numbers),
        cmocka_unit_test(test_each_side_of_every_power_of_ten),
        cmocka_unit_test(test_the_extremes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
