/* test_period.c - anchored billing periods (src/util/period.c): month-end clamping without drift,
 * leap years, yearly anchors on Feb 29, the period containing a given instant (before the anchor,
 * exactly on a boundary, one second either side, far future), and a cross-check of every
 * boundary against an independent computation through the C library's timegm/gmtime_r. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <time.h>

#include "util/period.h"

#define DAY INT64_C(86400)

/* Seconds since the epoch of a UTC civil time, through the C library (an independent oracle:
 * period.c does its own calendar arithmetic). */
static int64_t utc(int year, int month, int day, int h, int mi, int s)
{
    struct tm tm = {0};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return (int64_t)timegm(&tm);
}

static void test_days_in_month(void **state)
{
    (void)state;
    static const int common[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (int m = 1; m <= 12; m++) {
        assert_int_equal(tg_days_in_month(2026, m), common[m - 1]);
        assert_int_equal(tg_days_in_month(2024, m), m == 2 ? 29 : common[m - 1]);
    }
    assert_int_equal(tg_days_in_month(2024, 2), 29); /* divisible by 4 */
    assert_int_equal(tg_days_in_month(2028, 2), 29);
    assert_int_equal(tg_days_in_month(2100, 2), 28); /* divisible by 100, not by 400 */
    assert_int_equal(tg_days_in_month(1900, 2), 28);
    assert_int_equal(tg_days_in_month(2000, 2), 29); /* divisible by 400 */
    assert_int_equal(tg_days_in_month(2400, 2), 29);
    assert_int_equal(tg_days_in_month(2027, 2), 28);
}

static void test_month_end_clamping(void **state)
{
    (void)state;
    /* Anchored on Jan 31 at 10:00: every boundary is the anchor's day clamped to the month's
     * length, at the anchor's time of day, computed from the anchor so it never drifts to the
     * 28th after February. */
    int64_t a = utc(2026, 1, 31, 10, 0, 0);
    assert_int_equal(a, INT64_C(1769853600));
    assert_int_equal(tg_period_boundary(a, TG_INTERVAL_MONTH, 0), a);
    assert_int_equal(tg_period_boundary(a, TG_INTERVAL_MONTH, 1), utc(2026, 2, 28, 10, 0, 0));
    assert_int_equal(tg_period_boundary(a, TG_INTERVAL_MONTH, 2), utc(2026, 3, 31, 10, 0, 0));
    assert_int_equal(tg_period_boundary(a, TG_INTERVAL_MONTH, 3), utc(2026, 4, 30, 10, 0, 0));
    assert_int_equal(tg_period_boundary(a, TG_INTERVAL_MONTH, 4), utc(2026, 5, 31, 10, 0, 0));
    assert_int_equal(tg_period_boundary(a, TG_INTERVAL_MONTH, 11), utc(2026, 12, 31, 10, 0, 0));
    assert_int_equal(tg_period_boundary(a, TG_INTERVAL_MONTH, 12), utc(2027, 1, 31, 10, 0, 0));
    assert_int_equal(tg_period_boundary(a, TG_INTERVAL_MONTH, 13), utc(2027, 2, 28, 10, 0, 0));
    /* leap years: Feb 29 in 2028, Feb 28 in 2100 (not a leap year), Feb 29 in 2400 */
    assert_int_equal(tg_period_boundary(a, TG_INTERVAL_MONTH, 25), utc(2028, 2, 29, 10, 0, 0));
    assert_int_equal(tg_period_boundary(a, TG_INTERVAL_MONTH, 26), utc(2028, 3, 31, 10, 0, 0));
    int64_t jan31_2100 = utc(2100, 1, 31, 0, 0, 0);
    assert_int_equal(tg_period_boundary(jan31_2100, TG_INTERVAL_MONTH, 1), utc(2100, 2, 28, 0, 0, 0));
    assert_int_equal(tg_period_boundary(jan31_2100, TG_INTERVAL_MONTH, 2), utc(2100, 3, 31, 0, 0, 0));
    int64_t jan31_2024 = utc(2024, 1, 31, 23, 59, 59);
    assert_int_equal(tg_period_boundary(jan31_2024, TG_INTERVAL_MONTH, 1), utc(2024, 2, 29, 23, 59, 59));
    /* The 30th clamps only in February; the 29th only in common-year Februaries. */
    int64_t jan30 = utc(2027, 1, 30, 0, 0, 0), jan29 = utc(2027, 1, 29, 0, 0, 0);
    assert_int_equal(tg_period_boundary(jan30, TG_INTERVAL_MONTH, 1), utc(2027, 2, 28, 0, 0, 0));
    assert_int_equal(tg_period_boundary(jan30, TG_INTERVAL_MONTH, 2), utc(2027, 3, 30, 0, 0, 0));
    assert_int_equal(tg_period_boundary(jan29, TG_INTERVAL_MONTH, 1), utc(2027, 2, 28, 0, 0, 0));
    assert_int_equal(tg_period_boundary(jan29, TG_INTERVAL_MONTH, 13), utc(2028, 2, 29, 0, 0, 0));
    /* Period lengths follow the months: Jan 31 -> Feb 28 is 28 days, Feb 28 -> Mar 31 is 31. */
    assert_int_equal(tg_period_boundary(a, TG_INTERVAL_MONTH, 1) - a, 28 * DAY);
    assert_int_equal(tg_period_boundary(a, TG_INTERVAL_MONTH, 2) - tg_period_boundary(a, TG_INTERVAL_MONTH, 1),
                     31 * DAY);
}

static void test_yearly_feb29_anchor(void **state)
{
    (void)state;
    int64_t feb29 = utc(2024, 2, 29, 0, 0, 0);
    assert_int_equal(feb29, INT64_C(1709164800));
    assert_int_equal(tg_period_boundary(feb29, TG_INTERVAL_YEAR, 1), utc(2025, 2, 28, 0, 0, 0));
    assert_int_equal(tg_period_boundary(feb29, TG_INTERVAL_YEAR, 2), utc(2026, 2, 28, 0, 0, 0));
    assert_int_equal(tg_period_boundary(feb29, TG_INTERVAL_YEAR, 4), utc(2028, 2, 29, 0, 0, 0));  /* back */
    assert_int_equal(tg_period_boundary(feb29, TG_INTERVAL_YEAR, 76), utc(2100, 2, 28, 0, 0, 0)); /* 2100 */
    assert_int_equal(tg_period_boundary(feb29, TG_INTERVAL_YEAR, 376), utc(2400, 2, 29, 0, 0, 0));
    /* A yearly period starting on Feb 29 2024 lasts 365 days; the one from Feb 28 2027 lasts 366. */
    assert_int_equal(tg_period_boundary(feb29, TG_INTERVAL_YEAR, 1) - feb29, 365 * DAY);
    assert_int_equal(tg_period_boundary(feb29, TG_INTERVAL_YEAR, 4) - tg_period_boundary(feb29, TG_INTERVAL_YEAR, 3),
                     366 * DAY);
    /* Monthly from Feb 29: the 29th every month, Feb 28 in common years. */
    assert_int_equal(tg_period_boundary(feb29, TG_INTERVAL_MONTH, 1), utc(2024, 3, 29, 0, 0, 0));
    assert_int_equal(tg_period_boundary(feb29, TG_INTERVAL_MONTH, 12), utc(2025, 2, 28, 0, 0, 0));
    assert_int_equal(tg_period_boundary(feb29, TG_INTERVAL_MONTH, 13), utc(2025, 3, 29, 0, 0, 0));
}

static void expect_bounds(int64_t anchor, tg_interval_t iv, int64_t now, int64_t start, int64_t end)
{
    int64_t s = -1, e = -1;
    tg_period_bounds(anchor, iv, now, &s, &e);
    assert_int_equal(s, start);
    assert_int_equal(e, end);
}

static void test_bounds(void **state)
{
    (void)state;
    int64_t a = utc(2026, 1, 31, 10, 0, 0);
    int64_t feb28 = utc(2026, 2, 28, 10, 0, 0), mar31 = utc(2026, 3, 31, 10, 0, 0);
    expect_bounds(a, TG_INTERVAL_MONTH, a, a, feb28); /* at the anchor */
    expect_bounds(a, TG_INTERVAL_MONTH, a + 1, a, feb28);
    expect_bounds(a, TG_INTERVAL_MONTH, feb28 - 1, a, feb28); /* last second of period 1 */
    expect_bounds(a, TG_INTERVAL_MONTH, feb28, feb28, mar31); /* a boundary starts the next */
    expect_bounds(a, TG_INTERVAL_MONTH, feb28 + 1, feb28, mar31);
    expect_bounds(a, TG_INTERVAL_MONTH, mar31 - 1, feb28, mar31);
    expect_bounds(a, TG_INTERVAL_MONTH, mar31, mar31, utc(2026, 4, 30, 10, 0, 0));
    /* Before the anchor (a subscription starting in the future): the first period. */
    expect_bounds(a, TG_INTERVAL_MONTH, a - 1, a, feb28);
    expect_bounds(a, TG_INTERVAL_MONTH, a - 400 * DAY, a, feb28);
    expect_bounds(a, TG_INTERVAL_MONTH, 0, a, feb28);
    /* Leap February 2028 for the same anchor. */
    expect_bounds(a, TG_INTERVAL_MONTH, utc(2028, 2, 29, 9, 59, 59), utc(2028, 1, 31, 10, 0, 0),
                  utc(2028, 2, 29, 10, 0, 0));
    expect_bounds(a, TG_INTERVAL_MONTH, utc(2028, 2, 29, 10, 0, 0), utc(2028, 2, 29, 10, 0, 0),
                  utc(2028, 3, 31, 10, 0, 0));
    /* Yearly from Feb 29 2024. */
    int64_t feb29 = utc(2024, 2, 29, 0, 0, 0);
    expect_bounds(feb29, TG_INTERVAL_YEAR, utc(2025, 2, 27, 23, 59, 59), feb29, utc(2025, 2, 28, 0, 0, 0));
    expect_bounds(feb29, TG_INTERVAL_YEAR, utc(2025, 2, 28, 0, 0, 0), utc(2025, 2, 28, 0, 0, 0),
                  utc(2026, 2, 28, 0, 0, 0));
    expect_bounds(feb29, TG_INTERVAL_YEAR, utc(2028, 3, 1, 0, 0, 0), utc(2028, 2, 29, 0, 0, 0),
                  utc(2029, 2, 28, 0, 0, 0));
    /* Far future: the estimate from the average month is corrected to the exact period. */
    expect_bounds(a, TG_INTERVAL_MONTH, utc(2999, 2, 28, 10, 0, 0), utc(2999, 2, 28, 10, 0, 0),
                  utc(2999, 3, 31, 10, 0, 0));
    expect_bounds(a, TG_INTERVAL_MONTH, utc(2999, 2, 28, 9, 59, 59), utc(2999, 1, 31, 10, 0, 0),
                  utc(2999, 2, 28, 10, 0, 0));
    expect_bounds(a, TG_INTERVAL_MONTH, utc(9999, 12, 31, 23, 59, 59), utc(9999, 12, 31, 10, 0, 0),
                  utc(10000, 1, 31, 10, 0, 0));
    expect_bounds(feb29, TG_INTERVAL_YEAR, utc(9996, 6, 1, 0, 0, 0), utc(9996, 2, 29, 0, 0, 0),
                  utc(9997, 2, 28, 0, 0, 0));
}

/* The period containing now by walking the boundaries one by one from the anchor: an oracle
 * for tg_period_bounds, whose answers come from a per-thread memo once warm. */
static void walked_bounds(int64_t anchor, tg_interval_t iv, int64_t now, int64_t *start, int64_t *end)
{
    int64_t n = 0;
    while (tg_period_boundary(anchor, iv, n + 1) <= now)
        n++;
    *start = tg_period_boundary(anchor, iv, n);
    *end = tg_period_boundary(anchor, iv, n + 1);
}

/* Many anchors (more than the memo has slots, so they collide), each with both intervals (the
 * same anchor, different answers), asked about instants going forward, backward and jumping
 * around, interleaved: every answer is the walked one, whatever the memo held before. */
static void test_bounds_memo_interleaved(void **state)
{
    (void)state;
    const int64_t base = utc(2025, 1, 31, 10, 0, 0);
    uint32_t x = 88172645u;
    for (int round = 0; round < 3; round++)
        for (int step = 0; step < 400; step++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            int64_t anchor = base + (int64_t)(x % 150) * 7777 * 60;
            tg_interval_t iv = (x >> 8) & 1 ? TG_INTERVAL_YEAR : TG_INTERVAL_MONTH;
            int64_t now = round == 0   ? base + step * 3 * DAY                          /* forward */
                          : round == 1 ? base + (400 - step) * 3 * DAY                  /* backward */
                                       : base - 30 * DAY + (int64_t)(x % (1500 * DAY)); /* jumps */
            int64_t s, e, ws, we;
            tg_period_bounds(anchor, iv, now, &s, &e);
            if (now < anchor) {
                ws = anchor; /* before the anchor: the first period */
                we = tg_period_boundary(anchor, iv, 1);
            } else {
                walked_bounds(anchor, iv, now, &ws, &we);
            }
            assert_int_equal(s, ws);
            assert_int_equal(e, we);
        }
    /* The same anchor asked about monthly, yearly, monthly again, for a thousand anchors: neither
     * interval's answer is taken for the other's. */
    for (int64_t i = 0; i < 1000; i++) {
        int64_t anchor = base + i * 60, now = anchor + 10 * DAY, s, e;
        for (int k = 0; k < 3; k++) {
            tg_interval_t iv = k == 1 ? TG_INTERVAL_YEAR : TG_INTERVAL_MONTH;
            tg_period_bounds(anchor, iv, now, &s, &e);
            assert_int_equal(s, anchor);
            assert_int_equal(e, tg_period_boundary(anchor, iv, 1));
        }
    }
}

/* A period far beyond any calendar the C library handles must still come out without signed
 * overflow (UBSan aborts this binary if it happens) and, where representable, contain now. */
static void test_extreme_instants(void **state)
{
    (void)state;
    int64_t a = utc(2026, 1, 31, 10, 0, 0), s, e;
    const int64_t nows[] = {INT64_C(1) << 40, INT64_C(1) << 50, INT64_C(1) << 60, INT64_MAX - 1, INT64_MAX};
    for (size_t i = 0; i < sizeof(nows) / sizeof(nows[0]); i++) {
        for (int iv = 0; iv < 2; iv++) {
            tg_period_bounds(a, (tg_interval_t)iv, nows[i], &s, &e);
            assert_true(s <= nows[i]);
            assert_true(s < e);
            assert_true(nows[i] < e || e == INT64_MAX); /* the last period saturates */
        }
    }
    tg_period_bounds(a, TG_INTERVAL_MONTH, INT64_MIN, &s, &e); /* before the anchor: first period */
    assert_int_equal(s, a);
    assert_int_equal(e, utc(2026, 2, 28, 10, 0, 0));
}

/* Every anchor day of 2023-2025 at a few times of day, every monthly boundary for 10 years and
 * every yearly one for 30, against timegm: the boundary is the anchor's day of month clamped to
 * the target month's length, at the anchor's time of day. Then bounds() of instants around each
 * boundary return the two periods that meet there. */
static void test_against_timegm(void **state)
{
    (void)state;
    const int times[] = {0, 1, 43200, 86399};
    for (int64_t day = utc(2023, 1, 1, 0, 0, 0); day < utc(2026, 1, 1, 0, 0, 0); day += DAY) {
        for (size_t t = 0; t < sizeof(times) / sizeof(times[0]); t++) {
            int64_t anchor = day + times[t];
            time_t tt = (time_t)anchor;
            struct tm at;
            gmtime_r(&tt, &at);
            for (int iv = 0; iv < 2; iv++) {
                int steps = iv == TG_INTERVAL_MONTH ? 120 : 30;
                int64_t prev = anchor;
                for (int n = 1; n <= steps; n++) {
                    int months = at.tm_mon + (iv == TG_INTERVAL_MONTH ? n : 12 * n);
                    int year = at.tm_year + 1900 + months / 12, month = months % 12 + 1;
                    /* days in the target month via the C library: first of next month - 1 day */
                    int dim = (int)((utc(month == 12 ? year + 1 : year, month == 12 ? 1 : month + 1, 1, 0, 0, 0) -
                                     utc(year, month, 1, 0, 0, 0)) /
                                    DAY);
                    int d = at.tm_mday < dim ? at.tm_mday : dim;
                    int64_t want = utc(year, month, d, at.tm_hour, at.tm_min, at.tm_sec);
                    int64_t got = tg_period_boundary(anchor, (tg_interval_t)iv, n);
                    if (got != want)
                        fail_msg("anchor %lld interval %d n %d: got %lld want %lld", (long long)anchor, iv, n,
                                 (long long)got, (long long)want);
                    if (times[t] == 43200 && (n % 7 == 0 || n < 3)) { /* bounds: a sample, to stay fast */
                        int64_t s, e;
                        tg_period_bounds(anchor, (tg_interval_t)iv, got - 1, &s, &e);
                        assert_int_equal(s, prev);
                        assert_int_equal(e, got);
                        tg_period_bounds(anchor, (tg_interval_t)iv, got, &s, &e);
                        assert_int_equal(s, got);
                        assert_int_equal(e, tg_period_boundary(anchor, (tg_interval_t)iv, n + 1));
                    }
                    prev = got;
                }
            }
        }
    }
}

/* Anchors before 1970 (negative seconds) use floor division: 1969-12-31T23:59:59Z monthly. */
static void test_before_epoch(void **state)
{
    (void)state;
    int64_t a = -1;
    assert_int_equal(tg_period_boundary(a, TG_INTERVAL_MONTH, 1), utc(1970, 1, 31, 23, 59, 59));
    assert_int_equal(tg_period_boundary(a, TG_INTERVAL_MONTH, 2), utc(1970, 2, 28, 23, 59, 59));
    int64_t feb29_1968 = utc(1968, 2, 29, 12, 0, 0);
    assert_true(feb29_1968 < 0);
    assert_int_equal(tg_period_boundary(feb29_1968, TG_INTERVAL_YEAR, 1), utc(1969, 2, 28, 12, 0, 0));
    expect_bounds(feb29_1968, TG_INTERVAL_YEAR, 0, utc(1969, 2, 28, 12, 0, 0), utc(1970, 2, 28, 12, 0, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_days_in_month),       cmocka_unit_test(test_month_end_clamping),
        cmocka_unit_test(test_yearly_feb29_anchor), cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_extreme_instants),    cmocka_unit_test(test_against_timegm),
        cmocka_unit_test(test_before_epoch),        cmocka_unit_test(test_bounds_memo_interleaved),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
