/* quota.h - in-memory per-period usage counters that enforce plan allowances, behind one
 * interface with two backends: local (one counter per (customer, period_start, metric), warmed
 * from the store at start and kept exact under concurrency with atomics) and shared across nodes
 * (quota_shared.h: each node spends a share of the allowance leased from Redis in the
 * background; the bound on overshoot is in the README). Every call decides in memory. A call reserves its units before it is proxied; if the
 * call turns out not to be billable (upstream 5xx, timeout) the reservation is released, so a
 * call that is not billed uses no quota. */
#ifndef TG_QUOTA_H
#define TG_QUOTA_H

#include <stddef.h>
#include <stdint.h>

typedef struct tg_quota tg_quota_t;

/* The local backend. NULL on ENOMEM. */
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

/* What the store says was used before this process started (warming at start). The local
 * backend adds it; the shared one keeps it as a floor for the shared counter (which Redis may have
 * lost), never adding it again. */
int tg_quota_seed(tg_quota_t *q, const char *customer_id, int64_t period_start, const char *metric,
                  uint64_t units);

/* Current counter (0 if none); on the shared backend, this node's view of all nodes' use. */
uint64_t tg_quota_used(tg_quota_t *q, const char *customer_id, int64_t period_start,
                       const char *metric);

#endif
