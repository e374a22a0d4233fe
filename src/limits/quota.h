/* quota.h - in-memory per-period usage counters that enforce plan allowances.
 *
 * One counter per (customer, period_start, metric), warmed from the store at start and kept
 * exact under concurrency with atomics. A call reserves its units before it is proxied; if the
 * call turns out not to be billable (upstream 5xx, timeout) the reservation is released, so a
 * call that is not billed uses no quota. */
#ifndef TG_QUOTA_H
#define TG_QUOTA_H

#include <stddef.h>
#include <stdint.h>

typedef struct tg_quota tg_quota_t;

tg_quota_t *tg_quota_new(void);
void tg_quota_free(tg_quota_t *q);

/* Reserves `units`. If block is set and used + units would exceed `included`, nothing is
 * reserved and TG_ELIMIT is returned. *used_after (may be NULL) receives the counter after the
 * operation. Thread-safe. TG_ENOMEM if a new counter could not be created. */
int tg_quota_reserve(tg_quota_t *q, const char *customer_id, int64_t period_start,
                     const char *metric, uint64_t units, uint64_t included, int block,
                     uint64_t *used_after);

/* Returns units reserved earlier (never below zero). */
void tg_quota_release(tg_quota_t *q, const char *customer_id, int64_t period_start,
                      const char *metric, uint64_t units);

/* Adds units unconditionally (units reported by the upstream, or warming from the store). */
int tg_quota_add(tg_quota_t *q, const char *customer_id, int64_t period_start, const char *metric,
                 uint64_t units);

/* Current counter (0 if none). */
uint64_t tg_quota_used(tg_quota_t *q, const char *customer_id, int64_t period_start,
                       const char *metric);

#endif
