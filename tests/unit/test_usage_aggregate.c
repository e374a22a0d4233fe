/* test_usage_aggregate.c - the backend-neutral summing of a usage batch (src/store/usage_aggregate.c):
 * refused rows, saturation, UTC days and hours (before 1970 too), each total's key, sorted groups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/usage_aggregate.h"

#define T0 INT64_C(1769817600) /* 2026-01-31T00:00:00Z */

static tg_usage_t row(const char *customer, const char *metric, uint64_t units, int64_t ts_s)
{
    tg_usage_t u;
    memset(&u, 0x55, sizeof(u)); /* garbage past the terminators: grouping must not read it */
    snprintf(u.customer_id, sizeof(u.customer_id), "%s", customer);
    snprintf(u.key_id, sizeof(u.key_id), "key_1");
    snprintf(u.plan_id, sizeof(u.plan_id), "free");
    snprintf(u.metric, sizeof(u.metric), "%s", metric);
    snprintf(u.endpoint, sizeof(u.endpoint), "GET /x");
    u.units = units;
    u.ts_ns = ts_s * 1000000000;
    u.period_start = 1000;
    u.status = 200;
    return u;
}

static void test_refused(void **state)
{
    (void)state;
    char why[160];
    tg_usage_t u = row("cus_1", "tokens", (uint64_t)INT64_MAX, T0);
    assert_int_equal(tg_usage_row_refused(&u, why, sizeof(why)), 0);
    u.units = (uint64_t)INT64_MAX + 1;
    assert_int_equal(tg_usage_row_refused(&u, why, sizeof(why)), 1);
    assert_string_equal(why, "9223372036854775808 units of tokens do not fit in 63 bits");
    u.units = 1;
    memset(u.endpoint, 'e', sizeof(u.endpoint));
    assert_int_equal(tg_usage_row_refused(&u, why, sizeof(why)), 1);
    assert_non_null(strstr(why, "terminator"));

    /* collect: refused rows are counted and left out, the first reason kept */
    tg_usage_t rows[3] = {row("cus_1", "a", 1, T0), row("cus_1", "a", UINT64_MAX, T0), row("cus_2", "a", 2, T0)};
    memset(rows[2].metric, 'm', sizeof(rows[2].metric));
    tg_usage_batch_t b = {1, rows, 3, NULL};
    tg_usage_agg_row_t *got;
    size_t n, nrej;
    char reason[160] = "";
    tg_err_t err = {0};
    assert_int_equal(tg_usage_agg_collect(&b, 1, &got, &n, &nrej, reason, sizeof(reason), &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(nrej, 2);
    assert_ptr_equal(got[0].u, &rows[0]);
    assert_non_null(strstr(reason, "18446744073709551615 units of a"));
    free(got);
}

static void test_saturation(void **state)
{
    (void)state;
    assert_int_equal(tg_usage_add_saturating(1, 2), 3);
    assert_int_equal(tg_usage_add_saturating((uint64_t)INT64_MAX, 1), (uint64_t)INT64_MAX);
    assert_int_equal(tg_usage_add_saturating((uint64_t)INT64_MAX - 1, 1), (uint64_t)INT64_MAX);
    assert_int_equal(tg_usage_add_saturating(UINT64_MAX, UINT64_MAX), (uint64_t)INT64_MAX);
    tg_usage_t rows[3] = {row("c", "m", (uint64_t)INT64_MAX, T0), row("c", "m", (uint64_t)INT64_MAX, T0),
                          row("c", "m", 5, T0)};
    tg_usage_batch_t b = {1, rows, 3, NULL};
    tg_usage_agg_row_t *r;
    tg_usage_sum_t *s;
    size_t n, nrej, ns;
    tg_err_t err = {0};
    assert_int_equal(tg_usage_agg_collect(&b, 1, &r, &n, &nrej, NULL, 0, &err), 0);
    assert_int_equal(tg_usage_agg_sum(r, n, TG_USAGE_BY_PERIOD, 1, &s, &ns, &err), 0);
    assert_int_equal(ns, 1);
    assert_int_equal(s[0].units, (uint64_t)INT64_MAX);
    free(s);
    free(r);
}

static void test_days_and_hours(void **state)
{
    (void)state;
    char d[16];
    tg_usage_utc_day(T0, d);
    assert_string_equal(d, "2026-01-31");
    tg_usage_utc_day(T0 - 1, d);
    assert_string_equal(d, "2026-01-30");
    tg_usage_utc_day(-1, d); /* floor, not truncation */
    assert_string_equal(d, "1969-12-31");
    tg_usage_utc_day(INT64_C(-40000000000), d);
    assert_string_equal(d, "0000-00-00");
    tg_usage_utc_day(INT64_C(400000000000), d);
    assert_string_equal(d, "9999-99-99");
    assert_int_equal(tg_usage_ns_to_s(-1), -1);
    assert_int_equal(tg_usage_ns_to_s(1999999999), 1);

    tg_usage_t rows[2] = {row("c", "m", 1, T0 + 3599), row("c", "m", 1, -1)};
    rows[0].period_start = T0 + 1800; /* a period that began inside the hour */
    tg_usage_batch_t b = {1, rows, 2, NULL};
    tg_usage_agg_row_t *r;
    size_t n, nrej;
    tg_err_t err = {0};
    assert_int_equal(tg_usage_agg_collect(&b, 1, &r, &n, &nrej, NULL, 0, &err), 0);
    assert_int_equal(r[0].hour, T0);
    assert_int_equal(tg_usage_bucket_ts(&r[0]), T0 + 1800);
    assert_int_equal(r[1].hour, -3600);
    assert_string_equal(r[1].day, "1969-12-31");
    assert_int_equal(tg_usage_bucket_ts(&r[1]), -3600);
    free(r);
}

static uint64_t units_of(const tg_usage_sum_t *s, size_t n, const char *customer, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s[i].key->u->customer_id, customer) == 0 &&
            (strcmp(s[i].key->u->endpoint, what) == 0 || strcmp(s[i].key->u->plan_id, what) == 0 ||
             strcmp(s[i].key->day, what) == 0))
            return s[i].units;
    return 0;
}

/* Each total's key: the period ignores endpoint and day, the day ignores plan and period, the
 * hour splits what the day joins; sorted groups come in key order. */
static void test_keys(void **state)
{
    (void)state;
    tg_usage_t rows[6] = {row("cus_2", "m", 1, T0),         row("cus_1", "m", 2, T0),  row("cus_1", "m", 4, T0 + 7200),
                          row("cus_1", "m", 8, T0 + 86400), row("cus_1", "m", 16, T0), row("cus_1", "m", 32, T0)};
    snprintf(rows[4].endpoint, sizeof(rows[4].endpoint), "POST /y");
    snprintf(rows[5].plan_id, sizeof(rows[5].plan_id), "pro");
    tg_usage_batch_t b[2] = {{1, rows, 3, NULL}, {2, rows + 3, 3, NULL}};
    tg_usage_agg_row_t *r;
    tg_usage_sum_t *s;
    size_t n, nrej, ns;
    tg_err_t err = {0};
    assert_int_equal(tg_usage_agg_collect(b, 2, &r, &n, &nrej, NULL, 0, &err), 0);
    assert_int_equal(n, 6);

    assert_int_equal(tg_usage_agg_sum(r, n, TG_USAGE_BY_PERIOD, 1, &s, &ns, &err), 0);
    assert_int_equal(ns, 3); /* cus_1 free, cus_1 pro, cus_2 free */
    assert_string_equal(s[0].key->u->customer_id, "cus_1");
    assert_string_equal(s[0].key->u->plan_id, "free");
    assert_int_equal(s[0].units, 2 + 4 + 8 + 16);
    assert_string_equal(s[1].key->u->plan_id, "pro");
    assert_int_equal(s[1].units, 32);
    assert_string_equal(s[2].key->u->customer_id, "cus_2");
    free(s);

    assert_int_equal(tg_usage_agg_sum(r, n, TG_USAGE_BY_DAY, 1, &s, &ns, &err), 0);
    assert_int_equal(ns, 4); /* cus_1 31st GET, cus_1 31st POST, cus_1 1st GET, cus_2 31st GET */
    assert_string_equal(s[0].key->day, "2026-01-31");
    assert_string_equal(s[0].key->u->endpoint, "GET /x");
    assert_int_equal(s[0].units, 2 + 4 + 32);
    assert_string_equal(s[1].key->u->endpoint, "POST /y");
    assert_int_equal(s[1].units, 16);
    assert_string_equal(s[2].key->day, "2026-02-01");
    assert_int_equal(s[2].units, 8);
    assert_int_equal(units_of(s, ns, "cus_2", "2026-01-31"), 1);
    free(s);

    assert_int_equal(tg_usage_agg_sum(r, n, TG_USAGE_BY_HOUR, 1, &s, &ns, &err), 0);
    assert_int_equal(ns, 5); /* cus_1: T0 free (2+16), T0 pro, T0+2h, T0+1d; cus_2 */
    assert_int_equal(s[0].key->hour, T0);
    assert_int_equal(s[0].key->u->period_start, 1000);
    assert_string_equal(s[0].key->u->plan_id, "free");
    assert_int_equal(s[0].units, 2 + 16);
    assert_string_equal(s[1].key->u->plan_id, "pro");
    assert_int_equal(s[2].key->hour, T0 + 7200);
    assert_int_equal(s[3].key->hour, T0 + 86400);
    free(s);

    assert_int_equal(tg_usage_agg_sum(r, n, TG_USAGE_BY_ALL, 0, &s, &ns, &err), 0);
    assert_int_equal(ns, 6); /* every row differs in one field */
    uint64_t sum = 0;
    for (size_t i = 0; i < ns; i++)
        sum += s[i].units;
    assert_int_equal(sum, 63);
    free(s);
    free(r);
}

/* Many rows over few keys: as many groups as keys, every unit counted once. */
static void test_many(void **state)
{
    (void)state;
    enum { N = 5000 };
    tg_usage_t *rows = malloc(N * sizeof(*rows));
    for (int i = 0; i < N; i++) {
        char c[16];
        snprintf(c, sizeof(c), "cus_%d", i % 97);
        rows[i] = row(c, i % 2 ? "a" : "b", (uint64_t)i, T0 + i);
    }
    tg_usage_batch_t b = {1, rows, N, NULL};
    tg_usage_agg_row_t *r;
    tg_usage_sum_t *s;
    size_t n, nrej, ns;
    tg_err_t err = {0};
    assert_int_equal(tg_usage_agg_collect(&b, 1, &r, &n, &nrej, NULL, 0, &err), 0);
    assert_int_equal(tg_usage_agg_sum(r, n, TG_USAGE_BY_PERIOD, 1, &s, &ns, &err), 0);
    assert_int_equal(ns, 97 * 2);
    uint64_t sum = 0;
    for (size_t i = 0; i < ns; i++) {
        sum += s[i].units;
        if (i > 0)
            assert_true(strcmp(s[i - 1].key->u->customer_id, s[i].key->u->customer_id) <= 0);
    }
    assert_int_equal(sum, (uint64_t)N * (N - 1) / 2);
    free(s);
    free(r);
    free(rows);
}

/* Rows in runs of one key, keys that come back after another, and neighbours that differ only
 * in the last field each key compares: the sum takes a row of the previous row's key without
 * hashing it, and every row must still land in its own key's group. */
static void test_runs_of_one_key(void **state)
{
    (void)state;
    tg_usage_t rows[9] = {row("cus_1", "m", 1, T0),  row("cus_1", "m", 2, T0),   row("cus_1", "m", 4, T0),
                          row("cus_1", "m", 8, T0),  row("cus_1", "m", 16, T0),  row("cus_1", "m", 32, T0),
                          row("cus_2", "m", 64, T0), row("cus_1", "m", 128, T0), row("cus_1", "m", 256, T0 + 3600)};
    snprintf(rows[2].endpoint, sizeof(rows[2].endpoint), "POST /y"); /* only the endpoint differs */
    snprintf(rows[3].endpoint, sizeof(rows[3].endpoint), "POST /y");
    snprintf(rows[5].plan_id, sizeof(rows[5].plan_id), "pro"); /* only the plan differs */
    static const struct {
        tg_usage_by_t by;
        size_t groups;
        uint64_t units[5]; /* in the order of the key */
    } want[] = {
        {TG_USAGE_BY_PERIOD, 3, {1 + 2 + 4 + 8 + 16 + 128 + 256, 32, 64}},
        {TG_USAGE_BY_DAY, 3, {1 + 2 + 16 + 32 + 128 + 256, 4 + 8, 64}},
        {TG_USAGE_BY_HOUR, 4, {1 + 2 + 4 + 8 + 16 + 128, 32, 256, 64}},
        {TG_USAGE_BY_ALL, 5, {1 + 2 + 16 + 128, 4 + 8, 256, 32, 64}},
    };
    tg_usage_batch_t b = {1, rows, 9, NULL};
    tg_usage_agg_row_t *r;
    size_t n, nrej;
    tg_err_t err = {0};
    assert_int_equal(tg_usage_agg_collect(&b, 1, &r, &n, &nrej, NULL, 0, &err), 0);
    for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
        tg_usage_sum_t *s;
        size_t ns;
        assert_int_equal(tg_usage_agg_sum(r, n, want[w].by, 1, &s, &ns, &err), 0);
        assert_int_equal(ns, want[w].groups);
        for (size_t i = 0; i < ns; i++)
            assert_int_equal(s[i].units, want[w].units[i]);
        free(s);
    }
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused), cmocka_unit_test(test_saturation), cmocka_unit_test(test_days_and_hours),
        cmocka_unit_test(test_keys),    cmocka_unit_test(test_many),       cmocka_unit_test(test_runs_of_one_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
