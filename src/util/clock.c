/* clock.c - see clock.h. */
#include "util/clock.h"

#include <stdatomic.h>
#include <time.h>

static _Atomic int64_t clock_offset_ns;

int64_t tg_clock_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * TG_NS_PER_SEC + ts.tv_nsec +
           atomic_load_explicit(&clock_offset_ns, memory_order_relaxed);
}

int64_t tg_clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * TG_NS_PER_SEC + ts.tv_nsec;
}

void tg_clock_set_offset(int64_t offset_ns)
{
    atomic_store(&clock_offset_ns, offset_ns);
}

struct timespec tg_timespec_add_ns(struct timespec from, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    from.tv_sec += (time_t)(ns / TG_NS_PER_SEC);
    from.tv_nsec += (long)(ns % TG_NS_PER_SEC);
    if (from.tv_nsec >= TG_NS_PER_SEC) { /* both parts were below a second: one carry at most */
        from.tv_sec++;
        from.tv_nsec -= TG_NS_PER_SEC;
    }
    return from;
}

struct timespec tg_clock_deadline_ns(clockid_t clock, int64_t ns)
{
    struct timespec now;
    clock_gettime(clock, &now);
    return tg_timespec_add_ns(now, ns);
}

struct timespec tg_clock_deadline(clockid_t clock, int64_t ms)
{
    struct timespec at;
    clock_gettime(clock, &at);
    if (ms <= 0)
        return at;
    /* whole seconds apart: ms x 1,000,000 would overflow int64 past 292 years */
    at.tv_sec += (time_t)(ms / 1000);
    return tg_timespec_add_ns(at, (ms % 1000) * 1000000);
}
