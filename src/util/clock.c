/* clock.c - see clock.h. */
#include "util/clock.h"

#include <stdatomic.h>
#include <time.h>

static _Atomic int64_t clock_offset_ns;

/* tg_clock_now_at's per-thread difference wall - monotonic, and the monotonic time it was read. */
static _Thread_local int64_t wall_minus_mono_ns;
static _Thread_local int64_t wall_minus_mono_at_ns = INT64_MIN;

/* tg_clock_loop_mono_ns's reading of this iteration, valid while loop_fresh; loop_thread: this
 * thread runs an event loop (has called tg_clock_loop_begin). */
static _Thread_local int loop_thread, loop_fresh;
static _Thread_local int64_t loop_mono_ns;

#define RESYNC_ATTEMPTS 4
#define RESYNC_TIGHT_NS 20000 /* three reads take about 100 ns; more means a pause between them */

static int64_t ns_of(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * TG_NS_PER_SEC + ts->tv_nsec;
}

int64_t tg_clock_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ns_of(&ts) + atomic_load_explicit(&clock_offset_ns, memory_order_relaxed);
}

int64_t tg_clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ns_of(&ts);
}

void tg_clock_loop_begin(void)
{
    loop_thread = 1;
    loop_fresh = 0;
}

int64_t tg_clock_loop_mono_ns(void)
{
    if (!loop_thread)
        return tg_clock_mono_ns();
    if (!loop_fresh) {
        loop_mono_ns = tg_clock_mono_ns();
        loop_fresh = 1;
    }
    return loop_mono_ns;
}

/* The wall clock read between two monotonic readings, paired with their middle; retried when the
 * thread was preempted between them (the pair would be off by the pause), keeping the tightest. */
static void resync(void)
{
    int64_t best_gap = INT64_MAX;
    for (int attempt = 0; attempt < RESYNC_ATTEMPTS && best_gap > RESYNC_TIGHT_NS; attempt++) {
        struct timespec m0, wall, m1;
        clock_gettime(CLOCK_MONOTONIC, &m0);
        clock_gettime(CLOCK_REALTIME, &wall);
        clock_gettime(CLOCK_MONOTONIC, &m1);
        int64_t gap = ns_of(&m1) - ns_of(&m0), mid = ns_of(&m0) + gap / 2;
        if (gap < best_gap) {
            best_gap = gap;
            wall_minus_mono_ns = ns_of(&wall) - mid;
            wall_minus_mono_at_ns = mid;
        }
    }
}

int64_t tg_clock_now_at(int64_t mono_ns)
{
    /* mono_ns may be a little older than the last resync (another call's, on this thread);
     * computed unsigned so that the first call (INT64_MIN: never read) does not overflow */
    uint64_t age = (uint64_t)mono_ns - (uint64_t)wall_minus_mono_at_ns;
    if (age + (uint64_t)TG_CLOCK_RESYNC_NS > 2 * (uint64_t)TG_CLOCK_RESYNC_NS)
        resync();
    return mono_ns + wall_minus_mono_ns + atomic_load_explicit(&clock_offset_ns, memory_order_relaxed);
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

int tg_clock_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);
    if (rc != 0)
        return rc;
    if ((rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)) == 0)
        rc = pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
    return rc;
}
