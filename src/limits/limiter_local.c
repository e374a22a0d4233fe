/* limiter_local.c - the in-process limiter: one GCRA state per key in a shardmap.
 *
 * The decision is a CAS loop on the key's atomic word, so concurrent calls for one key never
 * lose an update and calls for different keys never wait on each other beyond a shard's brief
 * read lock. A new word is zero, a time long past, so a new key starts with a full bucket.
 *
 * Policy changes. The word is a time measured in the emission interval of the policy it was
 * written under, so each key also keeps that policy (interval and burst). A call under another
 * policy (the customer's plan changed, or the plan's limits did) first converts the word:
 * limiter.h says how. The policy is two words and the word a third, so they are published with a
 * sequence counter (a seqlock): a call reads the sequence, the policy and the word, and uses
 * them only if the sequence was even and did not move; a conversion makes the sequence odd, CASes
 * the word and publishes the new policy, then makes it even again. A call that read the word
 * before a conversion that changed it fails its CAS and starts over under the new policy. When
 * the conversion left the word as it was (an empty bucket; or the same number of nanoseconds
 * under both policies), a call racing with it may still succeed under the old policy: it is then
 * a call decided just before the change, which is what it was, and it is not converted after it;
 * at most one such call per thread and change. Conversions are rare (a plan change), so a call
 * that meets one waiting in a short spin costs nothing in practice. */
#include "limits/limiter_int.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "util/err.h"
#include "util/shardmap.h"

typedef struct rl_state {
    _Atomic int64_t tat;      /* theoretical arrival time, monotonic ns, in `interval` cells */
    _Atomic uint64_t seq;     /* even: the policy below is stable; odd: a conversion is running */
    _Atomic int64_t interval; /* emission interval tat was written under; 0: none yet */
    _Atomic uint64_t burst;   /* burst tat was written under */
} rl_state_t;

typedef struct local_limiter {
    tg_limiter_t base;
    tg_shardmap_t *states; /* key -> rl_state_t */
} local_limiter_t;

static int local_take(tg_limiter_t *base, const char *key, size_t klen, const tg_rate_t *rate, uint64_t burst,
                      uint64_t weight, int64_t now_ns, tg_limit_result_t *out);
static void local_repolicy(tg_limiter_t *base, const char *key, size_t klen, const tg_rate_t *rate, uint64_t burst,
                           int64_t now_ns);

static void local_free(tg_limiter_t *base)
{
    local_limiter_t *l = (local_limiter_t *)base;
    tg_shardmap_free(l->states);
    free(l);
}

static const tg_limiter_ops_t local_ops = {local_take, local_repolicy, local_free};

tg_limiter_t *tg_limiter_local_new(void)
{
    local_limiter_t *l = calloc(1, sizeof(*l));
    if (l == NULL || (l->states = tg_shardmap_new(sizeof(rl_state_t))) == NULL) {
        free(l);
        return NULL;
    }
    l->base.ops = &local_ops;
    return &l->base;
}

/* Emission interval: one cell every period/count ns. Integer division rounds T down, so the
 * limiter errs (by under a nanosecond per cell) towards allowing, never towards refusing
 * a call the plan promised. */
static int64_t interval_of(const tg_rate_t *rate)
{
    int64_t T = rate->period_ns / (int64_t)rate->count;
    return T < 1 ? 1 : T;
}

/* One GCRA step on the value tat; returns the new value to store (== tat when denied). */
static int64_t gcra(int64_t tat, int64_t T, uint64_t burst, uint64_t weight, int64_t now, tg_limit_result_t *out)
{
    __int128 tau = (__int128)T * burst;
    __int128 tat0 = tat > now ? tat : now;
    __int128 next = tat0 + (__int128)T * weight;
    out->limit = burst;
    if (next - now > tau || next > INT64_MAX) { /* (a time past 2^63 ns cannot be stored: refused) */
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

int64_t tg_gcra_convert(int64_t tat, const tg_rate_t *from, const tg_rate_t *to, uint64_t to_burst, int64_t now_ns)
{
    if (from->count == 0 || to->count == 0 || tat <= now_ns)
        return tat; /* nothing in the bucket (or nothing measured): full under any policy */
    int64_t T_from = interval_of(from), T_to = interval_of(to);
    if (to_burst == 0)
        to_burst = 1;
    /* The cells in the bucket now, measured in the new interval; rounded up, so that a
     * conversion never frees a fraction of a cell. */
    __int128 d = ((__int128)(tat - now_ns) * T_to + T_from - 1) / T_from;
    __int128 tau = (__int128)T_to * to_burst;
    if (d > tau)
        d = tau;                          /* a full bucket of the new policy: no room, refilling at the new rate */
    __int128 next = (__int128)now_ns + d; /* a day's interval times a billion cells passes 2^63 */
    return next > INT64_MAX ? INT64_MAX : (int64_t)next;
}

int tg_gcra_take(int64_t *tat, const tg_rate_t *rate, uint64_t burst, uint64_t weight, int64_t now_ns,
                 tg_limit_result_t *out)
{
    if (rate->count == 0) {
        *out = (tg_limit_result_t){1, UINT64_MAX, UINT64_MAX, 0, 0};
        return 0;
    }
    *tat = gcra(*tat, interval_of(rate), burst == 0 ? 1 : burst, weight, now_ns, out);
    return 0;
}

/* Converts s from the policy it holds (read under sequence seq) to (T, burst) at now. Returns
 * without doing anything if another thread got there first; the caller reads the state again. */
static void convert(rl_state_t *s, uint64_t seq, int64_t T, uint64_t burst, int64_t now)
{
    if (!atomic_compare_exchange_strong(&s->seq, &seq, seq + 1))
        return;
    int64_t T_old = atomic_load(&s->interval);
    /* tg_gcra_convert wants rates; an interval is a rate of one cell per T ns. */
    tg_rate_t from = {T_old > 0 ? 1 : 0, T_old}, to = {1, T};
    int64_t old = atomic_load(&s->tat), next;
    do {
        next = tg_gcra_convert(old, &from, &to, burst, now);
    } while (!atomic_compare_exchange_weak(&s->tat, &old, next));
    atomic_store(&s->interval, T);
    atomic_store(&s->burst, burst);
    atomic_store(&s->seq, seq + 2);
}

/* Reads s consistently, converting it to (T, burst) first if needed; returns the word. */
static int64_t read_state(rl_state_t *s, int64_t T, uint64_t burst, int64_t now)
{
    for (unsigned spins = 0;; spins++) {
        uint64_t seq = atomic_load(&s->seq);
        if (seq & 1) { /* a conversion is running: it takes a few loads and stores */
            if (spins > 64)
                sched_yield();
            continue;
        }
        int64_t held_T = atomic_load(&s->interval);
        uint64_t held_burst = atomic_load(&s->burst);
        int64_t tat = atomic_load(&s->tat);
        if (atomic_load(&s->seq) != seq)
            continue;
        if (held_T == T && held_burst == burst)
            return tat;
        convert(s, seq, T, burst, now);
    }
}

static int local_take(tg_limiter_t *base, const char *key, size_t klen, const tg_rate_t *rate, uint64_t burst,
                      uint64_t weight, int64_t now_ns, tg_limit_result_t *out)
{
    local_limiter_t *l = (local_limiter_t *)base;
    if (rate->count == 0) {
        *out = (tg_limit_result_t){1, UINT64_MAX, UINT64_MAX, 0, 0};
        return 0;
    }
    rl_state_t *s = tg_shardmap_get(l->states, key, klen, 1);
    if (s == NULL)
        return TG_ENOMEM;
    int64_t T = interval_of(rate);
    if (burst == 0)
        burst = 1;
    for (;;) {
        int64_t old = read_state(s, T, burst, now_ns);
        int64_t next = gcra(old, T, burst, weight, now_ns, out);
        if (next == old) /* denied: nothing to store */
            return 0;
        if (atomic_compare_exchange_strong(&s->tat, &old, next))
            return 0;
    }
}

static void local_repolicy(tg_limiter_t *base, const char *key, size_t klen, const tg_rate_t *rate, uint64_t burst,
                           int64_t now_ns)
{
    local_limiter_t *l = (local_limiter_t *)base;
    if (rate->count == 0)
        return;
    rl_state_t *s = tg_shardmap_get(l->states, key, klen, 0);
    if (s != NULL) /* a key never used has a full bucket under any policy */
        read_state(s, interval_of(rate), burst == 0 ? 1 : burst, now_ns);
}
