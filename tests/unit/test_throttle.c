/* test_throttle.c - the throttle map: exponential delay after the free failures, exact keys
 * (keys that would share a slot in a fixed table stay apart), bounded size with eviction of the
 * least recently penalised entry, forgetting, windows of events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "util/throttle.h"

#define S 1000000000LL

static tg_throttle_t *make(size_t cap)
{
    tg_throttle_policy_t p = {
        .capacity = cap, .forget_ns = 3600 * S, .free_failures = 3, .base_ns = 1 * S, .max_ns = 60 * S};
    tg_throttle_t *t = tg_throttle_new(&p);
    assert_non_null(t);
    return t;
}

static void test_exponential_delay(void **state)
{
    (void)state;
    tg_throttle_t *t = make(16);
    int64_t now = 1000 * S;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tg_throttle_wait_ns(t, "k", now), 0);
        tg_throttle_fail(t, "k", now);
    }
    assert_int_equal(tg_throttle_wait_ns(t, "k", now), 0); /* three free failures */
    int64_t want[] = {1, 2, 4, 8, 16, 32, 60, 60};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        tg_throttle_fail(t, "k", now);
        assert_int_equal(tg_throttle_wait_ns(t, "k", now), want[i] * S);
        assert_int_equal(tg_throttle_wait_ns(t, "k", now + want[i] * S), 0);
        now += want[i] * S;
    }
    /* forgiving a failure lowers the delay */
    tg_throttle_forgive(t, "k", now);
    tg_throttle_reset(t, "k");
    assert_int_equal(tg_throttle_wait_ns(t, "k", now), 0);
    tg_throttle_free(t);
}

static void test_exact_keys(void **state)
{
    (void)state;
    tg_throttle_t *t = make(4096);
    int64_t now = 1000 * S;
    for (int i = 0; i < 6; i++)
        tg_throttle_fail(t, "victim@example.com", now);
    assert_true(tg_throttle_wait_ns(t, "victim@example.com", now) > 0);
    /* Thousands of other keys (any of which would have collided in a 4,096-slot table) neither
     * reset nor share the victim's entry. */
    char key[64];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "other%d@example.com", i);
        assert_int_equal(tg_throttle_wait_ns(t, key, now), 0);
        tg_throttle_fail(t, key, now);
    }
    assert_true(tg_throttle_wait_ns(t, "victim@example.com", now) > 0);
    assert_int_equal(tg_throttle_wait_ns(t, "VICTIM@example.com", now), 0); /* exact: the caller folds case */
    tg_throttle_free(t);
}

static void test_bounded_and_forgetting(void **state)
{
    (void)state;
    tg_throttle_t *t = make(8);
    int64_t now = 1000 * S;
    for (int i = 0; i < 6; i++)
        tg_throttle_fail(t, "old", now);
    char key[16];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        tg_throttle_fail(t, key, now + S);
        assert_true(tg_throttle_size(t) <= 8);
    }
    /* only by creating capacity newer entries is the oldest pushed out */
    assert_int_equal(tg_throttle_wait_ns(t, "old", now + S), 0);
    assert_true(tg_throttle_wait_ns(t, "k99", now + S) == 0); /* k99 had one (free) failure */
    /* untouched for forget_ns: gone */
    assert_int_equal(tg_throttle_wait_ns(t, "k1", now + 3602 * S), 0);
    assert_int_equal(tg_throttle_size(t), 0);
    tg_throttle_free(t);
}

static void test_events_per_window(void **state)
{
    (void)state;
    tg_throttle_t *t = make(8);
    int64_t now = 1000 * S;
    for (int i = 0; i < 3; i++)
        assert_int_equal(tg_throttle_hit(t, "a", 3, 60 * S, now + i * S), 0);
    assert_int_equal(tg_throttle_hit(t, "a", 3, 60 * S, now + 10 * S), 50 * S);
    assert_int_equal(tg_throttle_hit(t, "b", 3, 60 * S, now + 10 * S), 0); /* per key */
    assert_int_equal(tg_throttle_hit(t, "a", 3, 60 * S, now + 60 * S), 0); /* a new window */
    tg_throttle_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exponential_delay),
        cmocka_unit_test(test_exact_keys),
        cmocka_unit_test(test_bounded_and_forgetting),
        cmocka_unit_test(test_events_per_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
