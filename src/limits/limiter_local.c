/* limiter_local.c - the in-process limiter: GCRA state words in a sharded hash table.
 *
 * Lookups take a shard's read lock only to find the entry; the decision itself is a CAS loop
 * on the entry's atomic word, so concurrent calls for one key never lose an update and calls
 * for different keys never wait on each other beyond the brief shard read lock. Entries are
 * never removed (one per customer), so a found pointer stays valid without holding the lock. */
#include "limits/limiter.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

#define NSHARDS 64

typedef struct entry {
    struct entry *next;
    _Atomic int64_t tat; /* theoretical arrival time, monotonic ns */
    size_t klen;
    char key[];
} entry_t;

typedef struct shard {
    pthread_rwlock_t lock;
    entry_t **buckets;
    size_t nbuckets, count;
} shard_t;

struct tg_limiter {
    shard_t shards[NSHARDS];
};

static uint64_t hash_bytes(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)k[i]) * 1099511628211ULL;
    return h;
}

tg_limiter_t *tg_limiter_local_new(void)
{
    tg_limiter_t *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    for (int i = 0; i < NSHARDS; i++) {
        shard_t *s = &l->shards[i];
        s->nbuckets = 64;
        if ((s->buckets = calloc(s->nbuckets, sizeof(*s->buckets))) == NULL ||
            pthread_rwlock_init(&s->lock, NULL) != 0) {
            for (int j = 0; j <= i; j++)
                free(l->shards[j].buckets);
            free(l);
            return NULL;
        }
    }
    return l;
}

void tg_limiter_free(tg_limiter_t *l)
{
    if (l == NULL)
        return;
    for (int i = 0; i < NSHARDS; i++) {
        shard_t *s = &l->shards[i];
        for (size_t b = 0; b < s->nbuckets; b++)
            for (entry_t *e = s->buckets[b], *n; e != NULL; e = n) {
                n = e->next;
                free(e);
            }
        free(s->buckets);
        pthread_rwlock_destroy(&s->lock);
    }
    free(l);
}

static entry_t *find_locked(shard_t *s, uint64_t h, const char *key, size_t klen)
{
    for (entry_t *e = s->buckets[(h >> 6) % s->nbuckets]; e != NULL; e = e->next)
        if (e->klen == klen && memcmp(e->key, key, klen) == 0)
            return e;
    return NULL;
}

static entry_t *lookup_or_add(tg_limiter_t *l, const char *key, size_t klen)
{
    uint64_t h = hash_bytes(key, klen);
    shard_t *s = &l->shards[h % NSHARDS];
    pthread_rwlock_rdlock(&s->lock);
    entry_t *e = find_locked(s, h, key, klen);
    pthread_rwlock_unlock(&s->lock);
    if (e != NULL)
        return e;
    pthread_rwlock_wrlock(&s->lock);
    if ((e = find_locked(s, h, key, klen)) == NULL && (e = calloc(1, sizeof(*e) + klen)) != NULL) {
        if (s->count >= s->nbuckets) { /* grow; failure only lengthens chains */
            size_t n = s->nbuckets * 2;
            entry_t **nb = calloc(n, sizeof(*nb));
            if (nb != NULL) {
                for (size_t b = 0; b < s->nbuckets; b++)
                    for (entry_t *x = s->buckets[b], *next; x != NULL; x = next) {
                        next = x->next;
                        size_t i = (hash_bytes(x->key, x->klen) >> 6) % n;
                        x->next = nb[i];
                        nb[i] = x;
                    }
                free(s->buckets);
                s->buckets = nb;
                s->nbuckets = n;
            }
        }
        e->klen = klen;
        memcpy(e->key, key, klen);
        atomic_init(&e->tat, INT64_MIN / 2); /* long ago: the bucket starts full */
        size_t i = (h >> 6) % s->nbuckets;
        e->next = s->buckets[i];
        s->buckets[i] = e;
        s->count++;
    }
    pthread_rwlock_unlock(&s->lock);
    return e;
}

/* One GCRA step on the value *tat; returns the new value to store (== *tat when denied). */
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
    entry_t *e = lookup_or_add(l, key, klen);
    if (e == NULL)
        return TG_ENOMEM;
    int64_t old = atomic_load_explicit(&e->tat, memory_order_relaxed);
    for (;;) {
        int64_t next = gcra(old, rate, burst, weight, now_ns, out);
        if (next == old) /* denied: nothing to store */
            return 0;
        if (atomic_compare_exchange_weak_explicit(&e->tat, &old, next, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return 0;
    }
}
