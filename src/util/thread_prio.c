/* thread_prio.c - see thread_prio.h. */
#include "util/thread_prio.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "util/log.h"

int tg_thread_lower_priority(int nice, tg_err_t *err)
{
    if (nice < 1 || nice > TG_NICE_LOWEST)
        return tg_errf(err, TG_EINVAL, "a background thread's nice value must be 1 to %d, not %d", TG_NICE_LOWEST,
                       nice);
    id_t tid = (id_t)gettid(); /* Linux: PRIO_PROCESS with a thread id is that thread alone */
    errno = 0;
    int now = getpriority(PRIO_PROCESS, tid); /* -1 is a valid nice value: errno tells */
    if (now == -1 && errno != 0)
        return tg_errf(err, TG_EIO, "getpriority(thread %d): %s", (int)tid, strerror(errno));
    if (now >= nice) /* never raise a priority someone lowered further (nice, a parent thread) */
        return 0;
    if (setpriority(PRIO_PROCESS, tid, nice) != 0)
        return tg_errf(err, TG_EIO, "setpriority(thread %d, nice %d): %s", (int)tid, nice, strerror(errno));
    return 0;
}

void tg_thread_lower_priority_or_warn(int nice, const char *thread)
{
    static atomic_flag warned = ATOMIC_FLAG_INIT;
    tg_err_t err = {0};
    if (tg_thread_lower_priority(nice, &err) != 0 && !atomic_flag_test_and_set(&warned))
        tg_log(TG_LOG_WARN,
               "%s keeps its CPU priority (the gateway's tail latency may suffer while it works): %s "
               "(further refusals are not logged)",
               thread, err.msg);
}
