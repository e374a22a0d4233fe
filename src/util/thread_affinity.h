/* thread_affinity.h - a background thread kept to chosen CPUs (billing.close_cpus).
 *
 * Why: the period closer's threads run at nice 19 (util/thread_prio.h), yet on the gateway's core
 * they still added to its tail latency: on 2 cores with PostgreSQL on one and the gateway (with
 * wrk and the upstream) on the other, the gateway's p99 went from 1.56 and 0.97 ms without a
 * close to 2.25 and 1.66 ms during one (two idle runs, bench/invoices-under-load.sh); with the
 * closer kept to the database's core, 1.40 and 0.94 ms to 0.96 and 0.86 ms: unchanged. A thread
 * kept to other CPUs never competes for the gateway's.
 *
 * Linux only: sched_setaffinity on a thread id moves that thread alone, and threads it creates
 * afterwards inherit its CPUs (the period closer's pool relies on it). Any thread may narrow its
 * own CPUs without privilege; a cpuset (a container's CPU limit) that excludes every CPU asked
 * for makes the call fail with EINVAL, and the thread then keeps the CPUs it had. */
#ifndef TG_THREAD_AFFINITY_H
#define TG_THREAD_AFFINITY_H

#include <sched.h>
#include <stddef.h>

#include "util/err.h"

/* Parses a CPU list as Linux prints them (taskset -c, /proc/PID/status Cpus_allowed_list):
 * comma-separated CPU numbers and inclusive ranges, "0", "0-1,3". CPU numbers are below
 * CPU_SETSIZE; spaces are not allowed. 0 with *out holding those CPUs; -1 with why (cap bytes)
 * saying what is wrong, *out then unspecified. Pure: any thread. */
int tg_cpu_list_parse(const char *s, cpu_set_t *out, char *why, size_t cap);

/* Keeps the calling thread to the CPUs of `list` (tg_cpu_list_parse). 0; TG_EINVAL when the list
 * is malformed; TG_EIO when the system refused (the message names the call and the reason), the
 * thread's CPUs then unchanged. No other thread is touched. */
int tg_thread_keep_to_cpus(const char *list, tg_err_t *err);

/* tg_thread_keep_to_cpus for a thread's start: a refusal is logged as a warning naming `thread`
 * (its name, for the log), and the thread goes on where it may run. */
void tg_thread_keep_to_cpus_or_warn(const char *list, const char *thread);

#endif
