/* quota_local.c - the in-process quota (quota.h): one atomic counter per (customer, period,
 * metric) in a shardmap, exact under any number of threads. */
#include "limits/quota_int.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "model/records.h"
#include "util/err.h"
#include "util/shardmap.h"

typedef struct local_quota {
    tg_quota_t base;
    tg_shardmap_t *counters; /* key -> _Atomic uint64_t units used */
} local_quota_t;

#define KEY_MAX (TG_ID_MAX + 8 + TG_METRIC_MAX)

/* customer NUL period(8 bytes) metric: unambiguous because ids and metrics hold no NUL. */
static size_t make_key(char buf[KEY_MAX], const char *customer, int64_t period, const char *metric)
{
    size_t cl = strnlen(customer, TG_ID_MAX - 1), ml = strnlen(metric, TG_METRIC_MAX - 1);
    memcpy(buf, customer, cl);
    buf[cl] = '\0';
    memcpy(buf + cl + 1, &period, sizeof(period));
    memcpy(buf + cl + 1 + sizeof(period), metric, ml);
    return cl + 1 + sizeof(period) + ml;
}

static _Atomic uint64_t *counter(tg_quota_t *base, const char *customer, int64_t period, const char *metric,
                                 int create)
{
    local_quota_t *q = (local_quota_t *)base;
    char key[KEY_MAX];
    size_t n = make_key(key, customer, period, metric);
    return tg_shardmap_get(q->counters, key, n, create);
}

static void local_free(tg_quota_t *base)
{
    local_quota_t *q = (local_quota_t *)base;
    tg_shardmap_free(q->counters);
    free(q);
}

static int local_reserve(tg_quota_t *q, const char *customer_id, int64_t period_start, const char *metric,
                     uint64_t units, uint64_t included, int block, uint64_t *used_after)
{
    _Atomic uint64_t *c = counter(q, customer_id, period_start, metric, 1);
    if (c == NULL)
        return TG_ENOMEM;
    uint64_t old = atomic_load_explicit(c, memory_order_relaxed), next;
    for (;;) {
        int overflow = __builtin_add_overflow(old, units, &next);
        if (block && (overflow || next > included)) {
            if (used_after != NULL)
                *used_after = old;
            return TG_ELIMIT;
        }
        if (overflow)
            next = UINT64_MAX;
        if (atomic_compare_exchange_weak_explicit(c, &old, next, memory_order_acq_rel, memory_order_relaxed))
            break;
    }
    if (used_after != NULL)
        *used_after = next;
    return 0;
}

static void local_release(tg_quota_t *q, const char *customer_id, int64_t period_start, const char *metric,
                      uint64_t units)
{
    _Atomic uint64_t *c = counter(q, customer_id, period_start, metric, 0);
    if (c == NULL)
        return;
    uint64_t old = atomic_load_explicit(c, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(c, &old, old > units ? old - units : 0, memory_order_acq_rel,
                                                  memory_order_relaxed))
        ;
}

static int local_add(tg_quota_t *q, const char *customer_id, int64_t period_start, const char *metric, uint64_t units)
{
    return local_reserve(q, customer_id, period_start, metric, units, 0, 0, NULL);
}

static uint64_t local_used(tg_quota_t *q, const char *customer_id, int64_t period_start, const char *metric)
{
    _Atomic uint64_t *c = counter(q, customer_id, period_start, metric, 0);
    return c != NULL ? atomic_load(c) : 0;
}

/* On one node what the store says was used is simply added. */
static const tg_quota_ops_t local_ops = {local_reserve, local_release, local_add, local_add, local_used, local_free};

tg_quota_t *tg_quota_new(void)
{
    local_quota_t *q = calloc(1, sizeof(*q));
    if (q == NULL || (q->counters = tg_shardmap_new(sizeof(_Atomic uint64_t))) == NULL) {
        free(q);
        return NULL;
    }
    q->base.ops = &local_ops;
    return &q->base;
}
