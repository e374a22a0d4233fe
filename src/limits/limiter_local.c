/* limiter_local.c - the in-process limiter: one GCRA word per key in a shardmap.
 *
 * The decision is a CAS loop on the key's atomic word, so concurrent calls for one key never
 * lose an update and calls for different keys never wait on each other beyond a shard's brief
 * read lock. A new word is zero, a time long past, so a new key starts with a full bucket. */
#include "limits/limiter.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "util/err.h"
#include "util/shardmap.h"

struct tg_limiter {
    tg_shardmap_t *words; /* key -> _Atomic int64_t theoretical arrival time, monotonic ns */
};

tg_limiter_t *tg_limiter_local_new(void)
{
    tg_limiter_t *l = calloc(1, sizeof(*l));
    if (l == NULL || (l->words = tg_shardmap_new(sizeof(_Atomic int64_t))) == NULL) {
        free(l);
        return NULL;
    }
    return l;
}

void tg_limiter_free(tg_limiter_t *l)
{
    if (l == NULL)
        return;
    tg_shardmap_free(l->words);
    free(l);
}

/* One GCRA step on the value tat; returns the new value to store (== tat when denied). */
static int64_t gcra(int64_t tat, const tg_rate_t *rate, uint64_t burst, uint64_t weight, int64_t now,
                    tg_limit_result_t *out)
{
    /* Emission interval: one cell every period/count ns. Integer division rounds T down, so the
     * limiter errs (by under a nanosecond per cell) towards allowing, never towards refusing
     * a call the plan promised. */
    __int128 T = rate->period_ns / (int64_t)rate->count;
    if (T < 1)
        T = 1;
    if (burst == 0)
        burst = 1;
    __int128 tau = T * (__int128)burst;
    __int128 tat0 = tat > now ? tat : now;
    __int128 next = tat0 + T * (__int128)weight;
    out->limit = burst;
    if (next - now > tau) {
        out->allowed = 0;
        __int128 wait = next - tau - now;
        out->retry_after_ns = wait > INT64_MAX ? INT64_MAX : (int64_t)wait;
        __int128 rem = (tau - (tat0 - now)) / T;
        out->remaining = rem < 0 ? 0 : (uint64_t)rem;
        out->reset_ns = (int64_t)(tat0 - now);
        return tat;
    }
    out->allowed = 1;
    out->retry_after_ns = 0;
    __int128 rem = (tau - (next - now)) / T;
    out->remaining = rem < 0 ? 0 : (uint64_t)rem;
    out->reset_ns = (int64_t)(next - now);
    return (int64_t)next;
}

int tg_gcra_take(int64_t *tat, const tg_rate_t *rate, uint64_t burst, uint64_t weight, int64_t now_ns,
                 tg_limit_result_t *out)
{
    if (rate->count == 0) {
        *out = (tg_limit_result_t){1, UINT64_MAX, UINT64_MAX, 0, 0};
        return 0;
    }
    *tat = gcra(*tat, rate, burst, weight, now_ns, out);
    return 0;
}

int tg_limiter_take(tg_limiter_t *l, const char *key, size_t klen, const tg_rate_t *rate, uint64_t burst,
                    uint64_t weight, int64_t now_ns, tg_limit_result_t *out)
{
    if (rate->count == 0) {
        *out = (tg_limit_result_t){1, UINT64_MAX, UINT64_MAX, 0, 0};
        return 0;
    }
    _Atomic int64_t *word = tg_shardmap_get(l->words, key, klen, 1);
    if (word == NULL)
        return TG_ENOMEM;
    int64_t old = atomic_load_explicit(word, memory_order_relaxed);
    for (;;) {
        int64_t next = gcra(old, rate, burst, weight, now_ns, out);
        if (next == old) /* denied: nothing to store */
            return 0;
        if (atomic_compare_exchange_weak_explicit(word, &old, next, memory_order_acq_rel, memory_order_relaxed))
            return 0;
    }
}
