/* shardmap.c - see shardmap.h. */
#include "util/shardmap.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NSHARDS 64

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    size_t klen;
    alignas(max_align_t) unsigned char data[]; /* value_size bytes of value, then the key */
} entry_t;

typedef struct shard {
    pthread_rwlock_t lock;
    entry_t **buckets;
    size_t nbuckets, count;
} shard_t;

struct tg_shardmap {
    size_t value_size; /* rounded up so that the key after it stays byte-addressable */
    shard_t shards[NSHARDS];
};

static uint64_t hash_bytes(const unsigned char *k, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ k[i]) * 1099511628211ULL;
    return h;
}

tg_shardmap_t *tg_shardmap_new(size_t value_size)
{
    tg_shardmap_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->value_size = (value_size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    for (int i = 0; i < NSHARDS; i++) {
        shard_t *s = &m->shards[i];
        s->nbuckets = 64;
        if ((s->buckets = calloc(s->nbuckets, sizeof(*s->buckets))) == NULL ||
            pthread_rwlock_init(&s->lock, NULL) != 0) {
            for (int j = 0; j <= i; j++)
                free(m->shards[j].buckets);
            free(m);
            return NULL;
        }
    }
    return m;
}

void tg_shardmap_free(tg_shardmap_t *m)
{
    if (m == NULL)
        return;
    for (int i = 0; i < NSHARDS; i++) {
        shard_t *s = &m->shards[i];
        for (size_t b = 0; b < s->nbuckets; b++)
            for (entry_t *e = s->buckets[b], *n; e != NULL; e = n) {
                n = e->next;
                free(e);
            }
        free(s->buckets);
        pthread_rwlock_destroy(&s->lock);
    }
    free(m);
}

static entry_t *find_locked(const tg_shardmap_t *m, const shard_t *s, uint64_t h, const void *key, size_t klen)
{
    /* The low bits chose the shard; the bucket uses the rest. */
    for (entry_t *e = s->buckets[(h >> 6) % s->nbuckets]; e != NULL; e = e->next)
        if (e->hash == h && e->klen == klen && memcmp(e->data + m->value_size, key, klen) == 0)
            return e;
    return NULL;
}

/* Doubles a shard's table once it holds more entries than buckets; failing to grow only makes
 * chains longer, so it is not an error. Called with the write lock held. */
static void grow_locked(shard_t *s)
{
    if (s->count < s->nbuckets)
        return;
    size_t n = s->nbuckets * 2;
    entry_t **nb = calloc(n, sizeof(*nb));
    if (nb == NULL)
        return;
    for (size_t b = 0; b < s->nbuckets; b++)
        for (entry_t *e = s->buckets[b], *next; e != NULL; e = next) {
            next = e->next;
            e->next = nb[(e->hash >> 6) % n];
            nb[(e->hash >> 6) % n] = e;
        }
    free(s->buckets);
    s->buckets = nb;
    s->nbuckets = n;
}

void *tg_shardmap_get(tg_shardmap_t *m, const void *key, size_t klen, int create)
{
    uint64_t h = hash_bytes(key, klen);
    shard_t *s = &m->shards[h % NSHARDS];
    pthread_rwlock_rdlock(&s->lock);
    entry_t *e = find_locked(m, s, h, key, klen);
    pthread_rwlock_unlock(&s->lock);
    if (e != NULL || !create)
        return e != NULL ? e->data : NULL;
    pthread_rwlock_wrlock(&s->lock);
    if ((e = find_locked(m, s, h, key, klen)) == NULL && (e = calloc(1, sizeof(*e) + m->value_size + klen)) != NULL) {
        grow_locked(s);
        e->hash = h;
        e->klen = klen;
        memcpy(e->data + m->value_size, key, klen);
        size_t i = (h >> 6) % s->nbuckets;
        e->next = s->buckets[i];
        s->buckets[i] = e;
        s->count++;
    }
    pthread_rwlock_unlock(&s->lock);
    return e != NULL ? e->data : NULL;
}
