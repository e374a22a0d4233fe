/* thread_affinity.c - see thread_affinity.h. */
#include "util/thread_affinity.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "util/log.h"

/* The CPU number at p (s is the whole list, for the position in the message): its digits, below
 * CPU_SETSIZE. The position after it; NULL with why set when there is none or it is too large. */
static const char *cpu_number(const char *s, const char *p, unsigned *out, char *why, size_t cap)
{
    if (*p < '0' || *p > '9') {
        snprintf(why, cap, "is not a CPU list (numbers and ranges, as 0 or 0-1,3): a CPU number is expected at "
                           "position %zu",
                 (size_t)(p - s) + 1);
        return NULL;
    }
    unsigned v = 0;
    for (; *p >= '0' && *p <= '9'; p++)
        if ((v = v * 10 + (unsigned)(*p - '0')) >= CPU_SETSIZE) {
            snprintf(why, cap, "names a CPU past %d (CPU numbers are below %d)", CPU_SETSIZE - 1, CPU_SETSIZE);
            return NULL;
        }
    *out = v;
    return p;
}

int tg_cpu_list_parse(const char *s, cpu_set_t *out, char *why, size_t cap)
{
    CPU_ZERO(out);
    if (*s == '\0') {
        snprintf(why, cap, "is empty (a CPU list: numbers and ranges, as 0 or 0-1,3)");
        return -1;
    }
    for (const char *p = s;; p++) { /* p at a number: the list's start or after a comma */
        unsigned lo, hi;
        const char *q = cpu_number(s, p, &lo, why, cap);
        if (q == NULL)
            return -1;
        hi = lo;
        if (*q == '-') {
            if ((q = cpu_number(s, q + 1, &hi, why, cap)) == NULL)
                return -1;
            if (hi < lo) {
                snprintf(why, cap, "has the range %u-%u, which runs backwards", lo, hi);
                return -1;
            }
        }
        for (unsigned c = lo; c <= hi; c++)
            CPU_SET(c, out);
        if (*q == '\0')
            return 0;
        if (*q != ',') {
            snprintf(why, cap, "is not a CPU list (numbers and ranges, as 0 or 0-1,3): unexpected '%c' at "
                               "position %zu",
                     *q, (size_t)(q - s) + 1);
            return -1;
        }
        p = q; /* the loop's p++ steps over the comma; a trailing one finds no number there */
    }
}

int tg_thread_keep_to_cpus(const char *list, tg_err_t *err)
{
    cpu_set_t set;
    char why[160];
    if (tg_cpu_list_parse(list, &set, why, sizeof(why)) != 0)
        return tg_errf(err, TG_EINVAL, "the CPU list \"%.64s\" %s", list, why);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    if (rc != 0)
        return tg_errf(err, TG_EIO, "pthread_setaffinity_np(CPUs %.64s): %s", list, strerror(rc));
    return 0;
}

void tg_thread_keep_to_cpus_or_warn(const char *list, const char *thread)
{
    tg_err_t err = {0};
    if (tg_thread_keep_to_cpus(list, &err) != 0)
        tg_log(TG_LOG_WARN, "%s runs on any CPU the process may use (the gateway's tail latency may suffer while it "
                            "works): %s",
               thread, err.msg);
}
