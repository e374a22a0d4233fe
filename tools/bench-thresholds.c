/* bench-thresholds.c - what deciding usage notifications adds to a gateway call. Used by
 * bench/thresholds.sh.
 *
 * On every billed call the gateway asks tg_thresholds_crossed whether moving the customer's
 * counter from `before` to `after` crossed one of the plan's levels (80, 100, 120 % of the
 * included allowance by default). This times that call as the gateway makes it (a counter that
 * grows by the call's units, an allowance of 1e9, the default levels; a real call into the
 * library, not inlined) beside the same loop without it, in thread CPU time, so that other
 * processes on a busy machine do not count. Prints ns per call for both and their difference. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "notify/thresholds.h"

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile uint64_t sink; /* keeps both loops' work observable */

int main(int argc, char **argv)
{
    uint64_t calls = argc > 1 ? strtoull(argv[1], NULL, 10) : 100000000u;
    const uint64_t included = 1000000000u;
    tg_thresholds_cfg_t levels = {.pct = {80, 100, 120}, .n = 3};
    volatile uint64_t units = 1; /* read each time, as the call's units are */

    double t0 = cpu_s();
    uint64_t used = 0, acc = 0;
    for (uint64_t i = 0; i < calls; i++) {
        uint64_t before = used;
        used += units;
        acc += used ^ before;
    }
    sink = acc;
    double without = cpu_s() - t0;

    t0 = cpu_s();
    used = 0, acc = 0;
    for (uint64_t i = 0; i < calls; i++) {
        uint64_t before = used;
        used += units;
        acc += (used ^ before) + tg_thresholds_crossed(before, used, included, &levels);
    }
    sink = acc;
    double with = cpu_s() - t0;

    printf("calls %llu  without %.2f ns/call  with %.2f ns/call  added %.2f ns/call\n", (unsigned long long)calls,
           without * 1e9 / (double)calls, with * 1e9 / (double)calls, (with - without) * 1e9 / (double)calls);
    return 0;
}
