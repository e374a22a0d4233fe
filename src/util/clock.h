/* clock.h - the one source of "now" for the whole program.
 *
 * Tests and the billing period closer need to move time; tg_clock_set_override lets `serve
 * --fake-clock` (and the test harness) pin or shift it. Nothing else reads the system clock. */
#ifndef TG_CLOCK_H
#define TG_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#define TG_NS_PER_SEC INT64_C(1000000000)

/* Wall-clock time in nanoseconds since the Unix epoch, plus the override offset if any. */
int64_t tg_clock_now_ns(void);

/* Monotonic nanoseconds, for durations and rate limiting (never shifted by the override). */
int64_t tg_clock_mono_ns(void);

/* Wall-clock time (with the override, as tg_clock_now_ns) at the monotonic instant mono_ns, a
 * tg_clock_mono_ns reading, without reading the wall clock each time: each thread keeps the
 * difference between the two clocks and reads it again (three clock reads) once it is more than
 * TG_CLOCK_RESYNC_NS old by mono_ns. So the answer can lag a step of the system clock by that
 * long and an NTP slew (at most 500 ppm) by under 1 us; the override applies at once.
 * Why: a clock read costs 30 ns on the VMs measured (about 8.8 % of a worker's user time at 12
 * reads per proxied call), and a call already has a monotonic reading of its arrival. */
#define TG_CLOCK_RESYNC_NS INT64_C(1000000)
int64_t tg_clock_now_at(int64_t mono_ns);

/* One monotonic reading per event-loop iteration, as nginx (ngx_time_update) and h2o (the loop's
 * own `now`) read the time once per iteration instead of at every use. An event loop calls
 * tg_clock_loop_begin() on its thread before each poll; the first tg_clock_loop_mono_ns() after it
 * reads the clock (after the poll has returned: nothing runs before the poll) and every later one
 * in the same iteration gives that reading again. On a thread that never called
 * tg_clock_loop_begin it reads the clock each time, as tg_clock_mono_ns.
 * Why: a clock read costs 40 ns on this machine's VM (kvm's TSC through the vDSO), and a proxied
 * call read it four times (arrival, forwarding, the upstream's answer, the end), about 0.16 us of
 * user time per call where nginx reads once per iteration of several calls. The cost is precision:
 * a duration between two iterations is short by at most the work done in the later iteration
 * before its first reading (tens of microseconds), and one within a single iteration reads 0. That
 * is far below the latency histograms' smallest bucket (0.5 ms) and below what the access log
 * prints (microseconds of calls that take hundreds). Rate limits take `now` from the call's
 * arrival reading, which may now lag another worker's by one iteration: GCRA keeps an absolute
 * theoretical arrival time, so a reading a little behind another thread's is harmless, as it
 * already was between two threads reading the clock at nearly the same time. */
void tg_clock_loop_begin(void);
int64_t tg_clock_loop_mono_ns(void);

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

/* Initialises cv so that its timed waits take CLOCK_MONOTONIC deadlines (tg_clock_deadline
 * above): a step of the wall clock (NTP, a test clock) neither hurries nor stalls them. 0, or
 * pthread's error. */
int tg_clock_cond_init(pthread_cond_t *cv);

/* from + ns (ns >= 0), the tv_nsec carry into tv_sec done: the arithmetic of the two above,
 * without a clock, so that it can be tested at any point of a second. Pure. */
struct timespec tg_timespec_add_ns(struct timespec from, int64_t ns);

#endif
