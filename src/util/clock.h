/* clock.h - the one source of "now" for the whole program.
 *
 * Tests and the billing period closer need to move time; tg_clock_set_override lets `serve
 * --fake-clock` (and the test harness) pin or shift it. Nothing else reads the system clock. */
#ifndef TG_CLOCK_H
#define TG_CLOCK_H

#include <stdint.h>
#include <time.h>

#define TG_NS_PER_SEC INT64_C(1000000000)

/* Wall-clock time in nanoseconds since the Unix epoch, plus the override offset if any. */
int64_t tg_clock_now_ns(void);

/* Monotonic nanoseconds, for durations and rate limiting (never shifted by the override). */
int64_t tg_clock_mono_ns(void);

/* Shifts wall-clock time by offset_ns from now on (0 restores the real clock). Thread-safe. */
void tg_clock_set_offset(int64_t offset_ns);

/* A deadline for pthread_cond_timedwait or clock_nanosleep(TIMER_ABSTIME): the time `ms`
 * milliseconds from now on `clock`, which must be the clock the condition variable waits on
 * (CLOCK_MONOTONIC when set with pthread_condattr_setclock, else CLOCK_REALTIME). tv_nsec is
 * always within 0..999,999,999; ms <= 0 gives now (a wait that returns at once). Any ms fits:
 * the seconds are added as seconds, never through nanoseconds that could overflow. Real clock
 * (not shifted by tg_clock_set_offset); any thread. */
struct timespec tg_clock_deadline(clockid_t clock, int64_t ms);

/* tg_clock_deadline in nanoseconds (ns <= 0: now). */
struct timespec tg_clock_deadline_ns(clockid_t clock, int64_t ns);

/* from + ns (ns >= 0), the tv_nsec carry into tv_sec done: the arithmetic of the two above,
 * without a clock, so that it can be tested at any point of a second. Pure. */
struct timespec tg_timespec_add_ns(struct timespec from, int64_t ns);

#endif
