/* shardmap.c - see shardmap.h.
 *
 * Why no read lock and no byte-at-a-time hash: under callgrind (bench/callpath_instructions.sh)
 * each lookup cost 392 instructions, 227 of them FNV-1a over the ~56-byte quota key one byte a
 * step and 61 in pthread_rwlock_rdlock/unlock, whose two atomic writes to the shard's lock word
 * also bounce that cache line between the workers when they serve the same customer. A proxied
 * call makes two lookups (rate limit, quota). */
#include "util/shardmap.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NSHARDS 64
#define FIRST_SLOTS 64 /* per shard; a power of two */

typedef struct entry {
    uint64_t hash;
    size_t klen;
    alignas(max_align_t) unsigned char data[]; /* value_size bytes of value, then the key */
} entry_t;

/* Open addressing with linear probing, at most half full, so a probe ends at an empty slot.
 * A slot goes from NULL to an entry once; a full table is replaced by one twice the size, and
 * the old one is kept (readers may still be probing it) until tg_shardmap_free. */
typedef struct table {
    struct table *replaced; /* the table this one took over from, or NULL */
    size_t mask;            /* slots - 1 */
    _Atomic(entry_t *) slots[];
} table_t;

typedef struct shard {
    alignas(64) _Atomic(table_t *) table; /* one cache line per shard: no false sharing */
    pthread_mutex_t lock;                 /* held by inserts only */
    size_t count;                         /* entries; under lock */
} shard_t;

struct tg_shardmap {
    size_t value_size; /* rounded up so that the key after it stays byte-addressable */
    shard_t shards[NSHARDS];
};

#define MIX UINT64_C(0x9E3779B97F4A7C15)

/* 8 bytes a step, then murmur3's finaliser so that every key bit reaches the low bits that pick
 * the shard and the slot. Keys shorter than 8 bytes are read a byte at a time; longer ones end
 * with their last 8 bytes (overlapping the previous step: the length is mixed in first). */
static uint64_t hash_bytes(const unsigned char *k, size_t n)
{
    uint64_t h = (uint64_t)n * MIX, w = 0;
    if (n < 8) {
        for (size_t i = 0; i < n; i++)
            w |= (uint64_t)k[i] << (8 * i);
    } else {
        const unsigned char *last = k + n - 8;
        for (; k < last; k += 8) {
            memcpy(&w, k, 8);
            h = (h ^ w) * MIX;
            h ^= h >> 32;
        }
        memcpy(&w, last, 8);
    }
    h = (h ^ w) * MIX;
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

/* Tests replace the hash (equal hashes for every key) by defining this before including the file. */
#ifndef TG_SHARDMAP_HASH
#define TG_SHARDMAP_HASH hash_bytes
#endif

static table_t *table_new(size_t nslots)
{
    table_t *t = calloc(1, sizeof(*t) + nslots * sizeof(t->slots[0]));
    if (t != NULL)
        t->mask = nslots - 1; /* calloc's zero bytes are NULL slots on every platform tollgate runs on */
    return t;
}

tg_shardmap_t *tg_shardmap_new(size_t value_size)
{
    tg_shardmap_t *m = aligned_alloc(alignof(tg_shardmap_t), sizeof(*m));
    if (m == NULL)
        return NULL;
    memset(m, 0, sizeof(*m));
    m->value_size = (value_size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    for (int i = 0; i < NSHARDS; i++) {
        shard_t *s = &m->shards[i];
        table_t *t = table_new(FIRST_SLOTS);
        if (t == NULL || pthread_mutex_init(&s->lock, NULL) != 0) {
            free(t);
            for (int j = 0; j < i; j++) {
                free(atomic_load(&m->shards[j].table));
                pthread_mutex_destroy(&m->shards[j].lock);
            }
            free(m);
            return NULL;
        }
        atomic_init(&s->table, t);
    }
    return m;
}

void tg_shardmap_free(tg_shardmap_t *m)
{
    if (m == NULL)
        return;
    for (int i = 0; i < NSHARDS; i++) {
        shard_t *s = &m->shards[i];
        table_t *t = atomic_load(&s->table);
        for (size_t j = 0; j <= t->mask; j++) /* the current table holds every entry */
            free(atomic_load_explicit(&t->slots[j], memory_order_relaxed));
        while (t != NULL) {
            table_t *older = t->replaced;
            free(t);
            t = older;
        }
        pthread_mutex_destroy(&s->lock);
    }
    free(m);
}

static entry_t *find(const tg_shardmap_t *m, const table_t *t, uint64_t h, const void *key, size_t klen)
{
    /* The low bits chose the shard; the slot uses the rest. */
    for (size_t i = (h >> 6) & t->mask;; i = (i + 1) & t->mask) {
        entry_t *e = atomic_load_explicit(&t->slots[i], memory_order_acquire);
        if (e == NULL)
            return NULL;
        if (e->hash == h && e->klen == klen && memcmp(e->data + m->value_size, key, klen) == 0)
            return e;
    }
}

/* Puts e in the first empty slot of its probe sequence. With the lock held, or before t is published. */
static void place(table_t *t, entry_t *e)
{
    size_t i = (e->hash >> 6) & t->mask;
    while (atomic_load_explicit(&t->slots[i], memory_order_relaxed) != NULL)
        i = (i + 1) & t->mask;
    atomic_store_explicit(&t->slots[i], e, memory_order_release);
}

/* The table to insert one more entry into: the current one while it stays at most half full,
 * else a copy twice the size, published for readers. If that copy cannot be allocated, the
 * current one while a slot would stay empty (probes must end), else NULL. With the lock held. */
static table_t *room_locked(shard_t *s, table_t *t)
{
    size_t nslots = t->mask + 1;
    if ((s->count + 1) * 2 <= nslots)
        return t;
    table_t *bigger = table_new(nslots * 2);
    if (bigger == NULL)
        return s->count + 2 <= nslots ? t : NULL;
    for (size_t i = 0; i < nslots; i++) {
        entry_t *e = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
        if (e != NULL)
            place(bigger, e);
    }
    bigger->replaced = t;
    atomic_store_explicit(&s->table, bigger, memory_order_release);
    return bigger;
}

void *tg_shardmap_get(tg_shardmap_t *m, const void *key, size_t klen, int create)
{
    uint64_t h = TG_SHARDMAP_HASH(key, klen);
    shard_t *s = &m->shards[h % NSHARDS];
    entry_t *e = find(m, atomic_load_explicit(&s->table, memory_order_acquire), h, key, klen);
    if (e != NULL || !create)
        return e != NULL ? e->data : NULL;
    pthread_mutex_lock(&s->lock);
    table_t *t = atomic_load_explicit(&s->table, memory_order_relaxed);
    if ((e = find(m, t, h, key, klen)) == NULL && (t = room_locked(s, t)) != NULL &&
        (e = calloc(1, sizeof(*e) + m->value_size + klen)) != NULL) {
        e->hash = h;
        e->klen = klen;
        memcpy(e->data + m->value_size, key, klen);
        place(t, e); /* publishes the filled entry (release) */
        s->count++;
    }
    pthread_mutex_unlock(&s->lock);
    return e != NULL ? e->data : NULL;
}
