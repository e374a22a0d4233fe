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
