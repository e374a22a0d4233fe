/* clock.h - the one source of "now" for the whole program.
 *
 * Tests and the billing period closer need to move time; tg_clock_set_override lets `serve
 * --fake-clock` (and the test harness) pin or shift it. Nothing else reads the system clock. */
#ifndef TG_CLOCK_H
#define TG_CLOCK_H

#include <stdint.h>

#define TG_NS_PER_SEC INT64_C(1000000000)

/* Wall-clock time in nanoseconds since the Unix epoch, plus the override offset if any. */
int64_t tg_clock_now_ns(void);

/* Monotonic nanoseconds, for durations and rate limiting (never shifted by the override). */
int64_t tg_clock_mono_ns(void);

/* Shifts wall-clock time by offset_ns from now on (0 restores the real clock). Thread-safe. */
void tg_clock_set_offset(int64_t offset_ns);

#endif
