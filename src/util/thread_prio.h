/* thread_prio.h - background threads at a lower CPU priority than the request path.
 *
 * The gateway's event loops must win the CPU whenever they have work: a thread doing bulk work
 * that no request waits for (the period closer, the thresholds notifier, the metering writer
 * and applier, password hashing for the admin API, the webhook, mail and Stripe outbox
 * senders) lowers its own priority once, at its start, so that the kernel preempts it for a
 * worker that wakes, and it takes only the CPU left idle otherwise.
 *
 * Linux only: a thread's nice value is its own (setpriority(PRIO_PROCESS, tid) changes one thread,
 * not the process, unlike POSIX), and threads created afterwards by that thread inherit it.
 * Raising the nice value (lowering the priority) needs no privilege, also in a container (the
 * default seccomp profiles of Docker and Kubernetes allow setpriority); a sandbox that forbids
 * it makes the call fail, and the thread then keeps its priority: slower tail latency during
 * bulk work, nothing incorrect. Nice values only order threads within one scheduling group: a
 * process's threads always share one (its session's autogroup, or its cgroup), so the request
 * path's workers and these threads are always compared with each other. */
#ifndef TG_THREAD_PRIO_H
#define TG_THREAD_PRIO_H

#include "util/err.h"

/* The lowest priority, for work that may wait as long as the gateway is busy (period closes). */
#define TG_NICE_LOWEST 19

/* Below the request path but above TG_NICE_LOWEST, for work no answer waits for that must still
 * keep pace with the traffic or with someone outside waiting: the metering writer, password
 * hashing, webhook and mail deliveries, the Stripe outbox. At nice 10 such a thread gets about
 * a tenth of a worker's CPU share when both want it (kernel weights 110 against 1024), at 19
 * under 2 % (15), which on a saturated node starves it. */
#define TG_NICE_BACKGROUND 10

/* Sets the calling thread's nice value to `nice` (1..19), only if that lowers its priority:
 * a thread already at `nice` or above is left as it is, and no other thread of the process is
 * touched. 0; TG_EINVAL for `nice` outside 1..19; TG_EIO when the system refused (the message
 * names the call and the reason), the thread's priority then unchanged. Any thread. */
int tg_thread_lower_priority(int nice, tg_err_t *err);

/* tg_thread_lower_priority for a thread's start: a refusal is logged as a warning naming
 * `thread` (its name, for the log), once per process (the next refusals, of the same cause on
 * the same system, are not), and the thread goes on at its priority. */
void tg_thread_lower_priority_or_warn(int nice, const char *thread);

#endif
