/* quota.c - see quota.h. Sharded hash table of atomic counters; entries are never removed while
 * the table lives (a few per customer and period), so pointers stay valid outside the lock. */
#include "limits/quota.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

#define NSHARDS 64

typedef struct counter {
    struct counter *next;
    _Atomic uint64_t used;
    int64_t period_start;
    uint64_t hash;
    char *metric; /* points into key */
    char key[];   /* customer_id NUL metric NUL */
} counter_t;

typedef struct shard {
    pthread_rwlock_t lock;
    counter_t **buckets;
    size_t nbuckets, count;
} shard_t;

struct tg_quota {
    shard_t shards[NSHARDS];
};

static uint64_t hash_key(const char *customer, int64_t period, const char *metric)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = customer; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ (uint64_t)period) * 1099511628211ULL;
    for (const char *p = metric; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

tg_quota_t *tg_quota_new(void)
{
    tg_quota_t *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    for (int i = 0; i < NSHARDS; i++) {
        q->shards[i].nbuckets = 64;
        if ((q->shards[i].buckets = calloc(64, sizeof(counter_t *))) == NULL ||
            pthread_rwlock_init(&q->shards[i].lock, NULL) != 0) {
            for (int j = 0; j <= i; j++)
                free(q->shards[j].buckets);
            free(q);
            return NULL;
        }
    }
    return q;
}

void tg_quota_free(tg_quota_t *q)
{
    if (q == NULL)
        return;
    for (int i = 0; i < NSHARDS; i++) {
        shard_t *s = &q->shards[i];
        for (size_t b = 0; b < s->nbuckets; b++)
            for (counter_t *c = s->buckets[b], *n; c != NULL; c = n) {
                n = c->next;
                free(c);
            }
        free(s->buckets);
        pthread_rwlock_destroy(&s->lock);
    }
    free(q);
}

static counter_t *find_locked(shard_t *s, uint64_t h, const char *customer, int64_t period, const char *metric)
{
    for (counter_t *c = s->buckets[(h >> 6) % s->nbuckets]; c != NULL; c = c->next)
        if (c->hash == h && c->period_start == period && strcmp(c->key, customer) == 0 &&
            strcmp(c->metric, metric) == 0)
            return c;
    return NULL;
}

static counter_t *lookup(tg_quota_t *q, const char *customer, int64_t period, const char *metric, int create)
{
    uint64_t h = hash_key(customer, period, metric);
    shard_t *s = &q->shards[h % NSHARDS];
    pthread_rwlock_rdlock(&s->lock);
    counter_t *c = find_locked(s, h, customer, period, metric);
    pthread_rwlock_unlock(&s->lock);
    if (c != NULL || !create)
        return c;
    size_t cl = strlen(customer), ml = strlen(metric);
    pthread_rwlock_wrlock(&s->lock);
    if ((c = find_locked(s, h, customer, period, metric)) == NULL && (c = calloc(1, sizeof(*c) + cl + ml + 2)) != NULL) {
        if (s->count >= s->nbuckets) {
            size_t n = s->nbuckets * 2;
            counter_t **nb = calloc(n, sizeof(*nb));
            if (nb != NULL) {
                for (size_t b = 0; b < s->nbuckets; b++)
                    for (counter_t *x = s->buckets[b], *next; x != NULL; x = next) {
                        next = x->next;
                        x->next = nb[(x->hash >> 6) % n];
                        nb[(x->hash >> 6) % n] = x;
                    }
                free(s->buckets);
                s->buckets = nb;
                s->nbuckets = n;
            }
        }
        memcpy(c->key, customer, cl + 1);
        c->metric = c->key + cl + 1;
        memcpy(c->metric, metric, ml + 1);
        c->period_start = period;
        c->hash = h;
        atomic_init(&c->used, 0);
        size_t i = (h >> 6) % s->nbuckets;
        c->next = s->buckets[i];
        s->buckets[i] = c;
        s->count++;
    }
    pthread_rwlock_unlock(&s->lock);
    return c;
}

int tg_quota_reserve(tg_quota_t *q, const char *customer_id, int64_t period_start, const char *metric,
                     uint64_t units, uint64_t included, int block, uint64_t *used_after)
{
    counter_t *c = lookup(q, customer_id, period_start, metric, 1);
    if (c == NULL)
        return TG_ENOMEM;
    uint64_t old = atomic_load_explicit(&c->used, memory_order_relaxed), next;
    for (;;) {
        int overflow = __builtin_add_overflow(old, units, &next);
        if (block && (overflow || next > included)) {
            if (used_after != NULL)
                *used_after = old;
            return TG_ELIMIT;
        }
        if (overflow)
            next = UINT64_MAX;
        if (atomic_compare_exchange_weak_explicit(&c->used, &old, next, memory_order_acq_rel, memory_order_relaxed))
            break;
    }
    if (used_after != NULL)
        *used_after = next;
    return 0;
}

void tg_quota_release(tg_quota_t *q, const char *customer_id, int64_t period_start, const char *metric,
                      uint64_t units)
{
    counter_t *c = lookup(q, customer_id, period_start, metric, 0);
    if (c == NULL)
        return;
    uint64_t old = atomic_load_explicit(&c->used, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&c->used, &old, old > units ? old - units : 0,
                                                  memory_order_acq_rel, memory_order_relaxed))
        ;
}

int tg_quota_add(tg_quota_t *q, const char *customer_id, int64_t period_start, const char *metric, uint64_t units)
{
    return tg_quota_reserve(q, customer_id, period_start, metric, units, 0, 0, NULL);
}

uint64_t tg_quota_used(tg_quota_t *q, const char *customer_id, int64_t period_start, const char *metric)
{
    counter_t *c = lookup(q, customer_id, period_start, metric, 0);
    return c != NULL ? atomic_load(&c->used) : 0;
}
