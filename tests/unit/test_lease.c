/* test_lease.c - the arithmetic of leased budgets (limits/lease.h): lease sizes that follow use
 * within their caps, the fallback's 1/N shares, the GCRA grant the fallback draws from, and the
 * overshoot bounds the README states. Pure functions: no Redis here (test_cluster.c has it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "limits/lease.h"

#define MS INT64_C(1000000)
#define SEC INT64_C(1000000000)

/* Small limits get small leases (one call), large ones a share that keeps half the burst out of
 * the nodes' hands, never less than the heaviest call. */
static void test_caps(void **state)
{
    (void)state;
    assert_int_equal(tg_lease_rate_cap(5, 3, 1), 1);
    assert_int_equal(tg_lease_rate_cap(60, 3, 1), 10);
    assert_int_equal(tg_lease_rate_cap(60, 3, 25), 25);
    assert_int_equal(tg_lease_rate_cap(1000, 0, 1), 500); /* no node seen yet counts as one */
    assert_int_equal(tg_lease_rate_cap(0, 3, 0), 1);
    assert_int_equal(tg_lease_quota_cap(1000, 3, 1), 83);
    assert_int_equal(tg_lease_quota_cap(10, 3, 1), 1);
    assert_int_equal(tg_lease_quota_cap(10, 3, 4), 4);
}

/* The floor: one call, or 1/64 of a generous cap. */
static void test_floor(void **state)
{
    (void)state;
    assert_int_equal(tg_lease_floor(10, 1), 1);
    assert_int_equal(tg_lease_floor(500000, 1), 7812);
    assert_int_equal(tg_lease_floor(500000, 10000), 10000);
    assert_int_equal(tg_lease_floor(0, 0), 1);
}

/* Adaptive: a hot key's lease doubles its use of the last interval, up to the cap; an idle one
 * shrinks by a quarter each interval down to the floor. */
static void test_target_adapts(void **state)
{
    (void)state;
    uint64_t t = 1;
    t = tg_lease_target(40, t, 1, 50);
    assert_int_equal(t, 50); /* 80 capped */
    t = tg_lease_target(10, t, 1, 50);
    assert_int_equal(t, 37); /* 50 - a quarter (rounded up) beats 20 */
    for (int i = 0; i < 40; i++)
        t = tg_lease_target(0, t, 1, 50);
    assert_int_equal(t, 1);
    assert_int_equal(tg_lease_target(UINT64_MAX, 1, 1, 7), 7); /* 2x saturates, then the cap */
    assert_int_equal(tg_lease_target(0, 0, 3, 50), 3);
}

/* The GCRA grant: a full bucket gives its burst, then one cell per interval. */
static void test_gcra_grant(void **state)
{
    (void)state;
    int64_t tat = 0, now = 100 * SEC, T = 10 * MS; /* 100/s */
    assert_int_equal(tg_lease_gcra_grant(&tat, T, 20, 50, now), 20);
    assert_int_equal(tg_lease_gcra_fill(tat, T, now), 20);
    assert_int_equal(tg_lease_gcra_grant(&tat, T, 20, 50, now), 0);
    assert_int_equal(tg_lease_gcra_grant(&tat, T, 20, 50, now + 35 * MS), 3);
    assert_int_equal(tg_lease_gcra_grant(&tat, T, 20, 2, now + 10 * SEC), 2);
    assert_int_equal(tg_lease_gcra_fill(tat, T, now + 10 * SEC), 2);
    assert_int_equal(tg_lease_gcra_fill(tat, T, now + 11 * SEC), 0);
    assert_int_equal(tg_lease_gcra_grant(&tat, T, 20, 0, now + 11 * SEC), 0);
}

/* Redis down: each node enforces the limit over the live nodes it last saw. Three nodes of a
 * 100/s, burst 60 limit each get 100/3 per second (an interval three times as long) and 20 of the
 * burst; together never more than the limit. */
static void test_fallback_shares(void **state)
{
    (void)state;
    int64_t fT;
    uint64_t fb;
    tg_lease_fallback_rate(10 * MS, 60, 3, &fT, &fb);
    assert_int_equal(fT, 30 * MS);
    assert_int_equal(fb, 20);
    tg_lease_fallback_rate(10 * MS, 2, 3, &fT, &fb);
    assert_int_equal(fb, 1); /* at least one call */
    tg_lease_fallback_rate(10 * MS, 60, 0, &fT, &fb);
    assert_int_equal(fT, 10 * MS);
    assert_int_equal(fb, 60);
    tg_lease_fallback_rate(INT64_MAX / 2, 60, 3, &fT, &fb);
    assert_int_equal(fT, INT64_MAX); /* saturates */
    /* three fallback buckets drawn dry in one second give at most the limit's burst + rate */
    int64_t tats[3] = {0, 0, 0};
    uint64_t total = 0;
    tg_lease_fallback_rate(10 * MS, 60, 3, &fT, &fb);
    for (int64_t t = 0; t <= SEC; t += 5 * MS)
        for (int n = 0; n < 3; n++)
            total += tg_lease_gcra_grant(&tats[n], fT, fb, 1000, 50 * SEC + t);
    assert_true(total <= 60 + 100 + 3);
    assert_true(total >= 60 + 100 - 3);

    assert_int_equal(tg_lease_fallback_quota(1000, 400, 3), 200);
    assert_int_equal(tg_lease_fallback_quota(1000, 1000, 3), 0);
    assert_int_equal(tg_lease_fallback_quota(1000, 2000, 3), 0);
    assert_int_equal(tg_lease_fallback_quota(1000, 0, 0), 1000);
}

/* A cold key's credit: a quarter of a lease (at least the heaviest call), never more than the
 * room the node last saw in the shared bucket, which drains meanwhile. */
static void test_credit(void **state)
{
    (void)state;
    assert_int_equal(tg_lease_rate_credit_cap(333, 1), 83);
    assert_int_equal(tg_lease_rate_credit_cap(1, 1), 1);
    assert_int_equal(tg_lease_rate_credit_cap(10, 7), 7);
    assert_int_equal(tg_lease_rate_credit_cap(0, 0), 1);
    assert_int_equal(tg_lease_rate_credit(40, 1, 100, 0, 0), 10);   /* nothing spent: the whole credit */
    assert_int_equal(tg_lease_rate_credit(40, 1, 100, 96, 0), 4);   /* 96 of 100 spent: room for 4 */
    assert_int_equal(tg_lease_rate_credit(40, 1, 100, 100, 0), 0);  /* no room: nothing on credit */
    assert_int_equal(tg_lease_rate_credit(40, 1, 100, 100, 3), 3);  /* 3 cells drained since */
    assert_int_equal(tg_lease_rate_credit(40, 1, 100, 130, 20), 0); /* the bucket still owes 10 cells */
    assert_int_equal(tg_lease_rate_credit(40, 1, 100, 130, 1000), 10);
}

/* The bounds of the README, for its example: 3 nodes, a 100/s limit with burst 60 (L = 10), and a
 * block quota of 10,000 a month (L = 833). */
static void test_bounds(void **state)
{
    (void)state;
    assert_int_equal(tg_lease_rate_bound(3, tg_lease_rate_cap(60, 3, 1), 1), 36); /* 3 x 10 + 3 x 2 */
    assert_int_equal(tg_lease_rate_bound(3, tg_lease_rate_cap(10, 3, 1), 1), 6);  /* L = 1, C = 1 */
    assert_int_equal(tg_lease_quota_bound(3, tg_lease_quota_cap(10000, 3, 1), 1, 0), 3);
    assert_int_equal(tg_lease_quota_bound(3, tg_lease_quota_cap(10000, 3, 1), 1, 1), 3 + 2 * 2 * 833);
    assert_int_equal(tg_lease_quota_bound(1, 833, 1, 5), 1); /* one node: nobody else to race */
    assert_int_equal(tg_lease_rate_bound(UINT32_MAX, UINT64_MAX, 1), UINT64_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caps),       cmocka_unit_test(test_floor),           cmocka_unit_test(test_target_adapts),
        cmocka_unit_test(test_gcra_grant), cmocka_unit_test(test_fallback_shares), cmocka_unit_test(test_credit),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
