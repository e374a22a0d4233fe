/* test_clock.c - util/clock.h.
 * tg_clock_now_at: the wall clock derived from a monotonic reading agrees with tg_clock_now_ns,
 * follows the test clock override at once, answers for readings a little older than its last
 * resync, and works from a fresh thread (run under ThreadSanitizer too).
 * Deadlines: the tv_nsec carry at every edge of a second, 0 and negative waits (now), waits too
 * long for nanoseconds in int64 (no overflow), and deadlines read from both clocks the condition
 * variables use, bracketed by the clock read around them.
 * The loop clock: one reading per iteration on a thread that begins iterations, a reading each
 * time on one that does not (a fresh thread), and each thread's iteration its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <time.h>

#include "util/clock.h"

#define MS INT64_C(1000000)
#define DAY (INT64_C(86400) * TG_NS_PER_SEC)

/* tg_clock_now_at(mono) lies between two tg_clock_now_ns readings around mono, give or take
 * slack (the two clocks are read one after the other; a preempted test can stretch that). */
static void assert_agrees(int64_t slack_ns)
{
    int64_t before = tg_clock_now_ns();
    int64_t mono = tg_clock_mono_ns();
    int64_t at = tg_clock_now_at(mono);
    int64_t after = tg_clock_now_ns();
    assert_true(at >= before - slack_ns);
    assert_true(at <= after + slack_ns);
}

static void test_agrees_with_the_wall_clock(void **state)
{
    (void)state;
    for (int i = 0; i < 1000; i++) /* the first resyncs, the rest use the kept difference */
        assert_agrees(5 * MS);
    /* past TG_CLOCK_RESYNC_NS it resyncs, and still agrees */
    struct timespec pause = {0, (long)(2 * TG_CLOCK_RESYNC_NS)};
    nanosleep(&pause, NULL);
    assert_agrees(5 * MS);
}

static void test_follows_the_override_at_once(void **state)
{
    (void)state;
    int64_t mono = tg_clock_mono_ns();
    int64_t real = tg_clock_now_at(mono);
    tg_clock_set_offset(30 * DAY);
    int64_t shifted = tg_clock_now_at(mono); /* no resync in between: the same reading */
    tg_clock_set_offset(0);
    assert_true(shifted - real == 30 * DAY);
    assert_true(tg_clock_now_at(mono) == real);
    tg_clock_set_offset(-DAY);
    assert_agrees(5 * MS); /* shifted alike with tg_clock_now_ns */
    tg_clock_set_offset(0);
}

static void test_older_and_newer_readings(void **state)
{
    (void)state;
    int64_t old = tg_clock_mono_ns();
    struct timespec pause = {0, (long)(2 * TG_CLOCK_RESYNC_NS)};
    nanosleep(&pause, NULL);
    int64_t now = tg_clock_mono_ns();
    int64_t wall_now = tg_clock_now_at(now); /* resyncs */
    int64_t wall_old = tg_clock_now_at(old); /* older than the resync by over TG_CLOCK_RESYNC_NS */
    int64_t wall_now_again = tg_clock_now_at(now);
    /* the same clock difference applies to both readings (NTP slew aside: under 1 us per ms) */
    int64_t drift = (wall_now - wall_old) - (now - old);
    assert_true(drift > -MS && drift < MS);
    assert_true(wall_now_again - wall_now > -MS && wall_now_again - wall_now < MS);
}

static void *in_thread(void *arg)
{
    (void)arg;
    assert_agrees(5 * MS); /* a new thread has no kept difference yet */
    for (int i = 0; i < 10000; i++)
        (void)tg_clock_now_at(tg_clock_mono_ns());
    assert_agrees(5 * MS);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, in_thread, NULL), 0);
    tg_clock_set_offset(0); /* a store racing the readers' loads: atomic */
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
}

/* Waits (polling, no sleep) until the monotonic clock has passed t. */
static void pass(int64_t t)
{
    while (tg_clock_mono_ns() <= t)
        ;
}

static void *loop_clock_unbegun(void *arg)
{
    (void)arg;
    int64_t first = tg_clock_loop_mono_ns(); /* this thread never began an iteration */
    pass(first);
    return (void *)(intptr_t)(tg_clock_loop_mono_ns() > first);
}

static void test_loop_clock_once_per_iteration(void **state)
{
    (void)state;
    tg_clock_loop_begin();
    int64_t before = tg_clock_mono_ns();
    int64_t first = tg_clock_loop_mono_ns(); /* read at the first use, not at the begin */
    assert_true(first >= before);
    pass(first);
    assert_true(tg_clock_loop_mono_ns() == first); /* the same iteration: the same reading */
    tg_clock_loop_begin();
    int64_t next = tg_clock_loop_mono_ns();
    assert_true(next > first);
    assert_true(next <= tg_clock_mono_ns());

    /* another thread that never begins an iteration reads the clock each time, while this one's
     * iteration stays where it is */
    pthread_t t;
    void *advanced = NULL;
    assert_int_equal(pthread_create(&t, NULL, loop_clock_unbegun, NULL), 0);
    pthread_join(t, &advanced);
    assert_true(advanced != NULL);
    assert_true(tg_clock_loop_mono_ns() == next);
}

static int64_t ns_of(struct timespec ts)
{
    return (int64_t)ts.tv_sec * TG_NS_PER_SEC + ts.tv_nsec;
}

static void assert_normalised(struct timespec ts)
{
    assert_true(ts.tv_nsec >= 0);
    assert_true(ts.tv_nsec < TG_NS_PER_SEC);
}

static void test_add_carries_into_seconds(void **state)
{
    (void)state;
    struct timespec last = {5, 999999999L};
    struct timespec r = tg_timespec_add_ns(last, 1); /* the last nanosecond of a second, + 1 */
    assert_int_equal(r.tv_sec, 6);
    assert_int_equal(r.tv_nsec, 0);
    r = tg_timespec_add_ns(last, 1000000); /* + 1 ms */
    assert_int_equal(r.tv_sec, 6);
    assert_int_equal(r.tv_nsec, 999999);
    r = tg_timespec_add_ns(last, 999999999); /* the largest part below a second, on the largest */
    assert_int_equal(r.tv_sec, 6);
    assert_int_equal(r.tv_nsec, 999999998L);
    r = tg_timespec_add_ns((struct timespec){5, 500000000L}, 500000000); /* exactly onto a second */
    assert_int_equal(r.tv_sec, 6);
    assert_int_equal(r.tv_nsec, 0);
    r = tg_timespec_add_ns((struct timespec){5, 400000000L}, 2500000000LL); /* seconds, no carry */
    assert_int_equal(r.tv_sec, 7);
    assert_int_equal(r.tv_nsec, 900000000L);
    r = tg_timespec_add_ns((struct timespec){5, 600000000L}, 2500000000LL); /* seconds and a carry */
    assert_int_equal(r.tv_sec, 8);
    assert_int_equal(r.tv_nsec, 100000000L);
    /* every offset of a second against every ms step: always normalised and exact */
    for (long start = 0; start < TG_NS_PER_SEC; start += 99999989L)
        for (int64_t ms = 0; ms <= 3000; ms += 7) {
            struct timespec from = {100, start};
            r = tg_timespec_add_ns(from, ms * 1000000);
            assert_normalised(r);
            assert_true(ns_of(r) == ns_of(from) + ms * 1000000);
        }
}

static void test_zero_and_negative_are_now(void **state)
{
    (void)state;
    struct timespec from = {7, 123456789L};
    struct timespec r = tg_timespec_add_ns(from, 0);
    assert_int_equal(r.tv_sec, 7);
    assert_int_equal(r.tv_nsec, 123456789L);
    r = tg_timespec_add_ns(from, -5000000000LL); /* never before `from` */
    assert_int_equal(r.tv_sec, 7);
    assert_int_equal(r.tv_nsec, 123456789L);

    clockid_t clocks[] = {CLOCK_MONOTONIC, CLOCK_REALTIME};
    for (size_t i = 0; i < 2; i++) {
        int64_t args[] = {0, -1, INT64_MIN};
        for (size_t j = 0; j < 3; j++) {
            struct timespec before, after;
            clock_gettime(clocks[i], &before);
            struct timespec ms = tg_clock_deadline(clocks[i], args[j]);
            struct timespec ns = tg_clock_deadline_ns(clocks[i], args[j]);
            clock_gettime(clocks[i], &after);
            assert_normalised(ms);
            assert_normalised(ns);
            assert_true(ns_of(ms) >= ns_of(before) && ns_of(ms) <= ns_of(after));
            assert_true(ns_of(ns) >= ns_of(before) && ns_of(ns) <= ns_of(after));
        }
    }
}

/* The deadline is `ms` after the clock read inside the call: between before + ms and after + ms,
 * on each clock (a wall-clock step between the reads could break this for CLOCK_REALTIME, which
 * the test cannot cause and the machine does not do within microseconds). */
static void test_deadline_on_each_clock(void **state)
{
    (void)state;
    clockid_t clocks[] = {CLOCK_MONOTONIC, CLOCK_REALTIME};
    int64_t waits_ms[] = {1, 10, 100, 999, 1000, 1001, 86400000};
    for (size_t i = 0; i < 2; i++)
        for (size_t j = 0; j < sizeof(waits_ms) / sizeof(waits_ms[0]); j++) {
            int64_t w = waits_ms[j] * 1000000;
            struct timespec before, after;
            clock_gettime(clocks[i], &before);
            struct timespec ms = tg_clock_deadline(clocks[i], waits_ms[j]);
            struct timespec ns = tg_clock_deadline_ns(clocks[i], w);
            clock_gettime(clocks[i], &after);
            assert_normalised(ms);
            assert_normalised(ns);
            assert_true(ns_of(ms) >= ns_of(before) + w && ns_of(ms) <= ns_of(after) + w);
            assert_true(ns_of(ns) >= ns_of(before) + w && ns_of(ns) <= ns_of(after) + w);
        }
}

/* A wait longer than int64 nanoseconds hold (292 years) still counts forward, in seconds. */
static void test_large_waits_do_not_overflow(void **state)
{
    (void)state;
    struct timespec before, after;
    clock_gettime(CLOCK_MONOTONIC, &before);
    struct timespec r = tg_clock_deadline(CLOCK_MONOTONIC, INT64_MAX); /* 9.2e15 s and 807 ms */
    clock_gettime(CLOCK_MONOTONIC, &after);
    assert_normalised(r);
    assert_true(r.tv_sec - INT64_MAX / 1000 >= before.tv_sec);
    assert_true(r.tv_sec - INT64_MAX / 1000 <= after.tv_sec + 1);    /* + 1: the 807 ms's carry */
    r = tg_clock_deadline(CLOCK_MONOTONIC, INT64_C(10000000000000)); /* 317 years: past int64 ns */
    assert_normalised(r);
    assert_true(r.tv_sec >= before.tv_sec + INT64_C(10000000000));
    r = tg_clock_deadline_ns(CLOCK_MONOTONIC, INT64_MAX);
    assert_normalised(r);
    assert_true(r.tv_sec >= before.tv_sec + INT64_MAX / TG_NS_PER_SEC);
    struct timespec far = tg_timespec_add_ns((struct timespec){0, 999999999L}, INT64_MAX);
    assert_int_equal(far.tv_sec, INT64_MAX / TG_NS_PER_SEC + 1);
    assert_int_equal(far.tv_nsec, INT64_MAX % TG_NS_PER_SEC - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agrees_with_the_wall_clock),
        cmocka_unit_test(test_follows_the_override_at_once),
        cmocka_unit_test(test_older_and_newer_readings),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_loop_clock_once_per_iteration),
        cmocka_unit_test(test_add_carries_into_seconds),
        cmocka_unit_test(test_zero_and_negative_are_now),
        cmocka_unit_test(test_deadline_on_each_clock),
        cmocka_unit_test(test_large_waits_do_not_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
