/* test_clock.c - tg_clock_now_at: the wall clock derived from a monotonic reading agrees with
 * tg_clock_now_ns, follows the test clock override at once, answers for readings a little older
 * than its last resync, and works from a fresh thread (run under ThreadSanitizer too). */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agrees_with_the_wall_clock),
        cmocka_unit_test(test_follows_the_override_at_once),
        cmocka_unit_test(test_older_and_newer_readings),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
