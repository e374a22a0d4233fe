/* throttle.c - see throttle.h. Chained hash table (power-of-two buckets, about two per entry)
 * plus a doubly-linked list in penalty order for eviction; keys are malloc'd copies. */
#include "util/throttle.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *chain;       /* next in the bucket */
    struct entry *prev, *next; /* penalty order: head = most recent */
    uint64_t hash;
    uint32_t failures; /* or events in the window, for tg_throttle_hit */
    int64_t touched;   /* last penalty (or window start) */
    int64_t until;     /* no attempt before this */
    size_t klen;
    char key[];
} entry_t;

struct tg_throttle {
    tg_throttle_policy_t p;
    uint8_t hkey[crypto_shorthash_KEYBYTES];
    entry_t **buckets;
    size_t mask, n;
    entry_t *head, *tail;
};

tg_throttle_t *tg_throttle_new(const tg_throttle_policy_t *policy)
{
    tg_throttle_t *t = calloc(1, sizeof(*t));
    if (t == NULL || policy->capacity == 0)
        return free(t), NULL;
    t->p = *policy;
    size_t nb = 16;
    while (nb < policy->capacity * 2 && nb < ((size_t)1 << 30))
        nb <<= 1;
    if ((t->buckets = calloc(nb, sizeof(*t->buckets))) == NULL)
        return free(t), NULL;
    t->mask = nb - 1;
    randombytes_buf(t->hkey, sizeof(t->hkey));
    return t;
}

void tg_throttle_free(tg_throttle_t *t)
{
    if (t == NULL)
        return;
    for (entry_t *e = t->head, *nx; e != NULL; e = nx) {
        nx = e->next;
        free(e);
    }
    free(t->buckets);
    free(t);
}

size_t tg_throttle_size(const tg_throttle_t *t)
{
    return t->n;
}

static uint64_t hash_key(const tg_throttle_t *t, const char *key, size_t klen)
{
    uint8_t out[crypto_shorthash_BYTES];
    crypto_shorthash(out, (const uint8_t *)key, klen, t->hkey);
    uint64_t h;
    memcpy(&h, out, sizeof(h));
    return h;
}

static void list_unlink(tg_throttle_t *t, entry_t *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        t->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        t->tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_push_front(tg_throttle_t *t, entry_t *e)
{
    e->prev = NULL;
    e->next = t->head;
    if (t->head != NULL)
        t->head->prev = e;
    t->head = e;
    if (t->tail == NULL)
        t->tail = e;
}

static void remove_entry(tg_throttle_t *t, entry_t *e)
{
    entry_t **pp = &t->buckets[e->hash & t->mask];
    while (*pp != e)
        pp = &(*pp)->chain;
    *pp = e->chain;
    list_unlink(t, e);
    t->n--;
    free(e);
}

/* Drops entries from the tail that were forgotten by now. */
static void expire(tg_throttle_t *t, int64_t now)
{
    while (t->tail != NULL && now - t->tail->touched >= t->p.forget_ns && now >= t->tail->until)
        remove_entry(t, t->tail);
}

static entry_t *find(tg_throttle_t *t, const char *key, size_t klen, uint64_t h)
{
    for (entry_t *e = t->buckets[h & t->mask]; e != NULL; e = e->chain)
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return e;
    return NULL;
}

/* The entry for key, created if create (evicting the least recently penalised when full). */
static entry_t *lookup(tg_throttle_t *t, const char *key, int64_t now, int create)
{
    size_t klen = strlen(key);
    uint64_t h = hash_key(t, key, klen);
    expire(t, now);
    entry_t *e = find(t, key, klen, h);
    if (e != NULL || !create)
        return e;
    if (t->n >= t->p.capacity)
        remove_entry(t, t->tail);
    if ((e = calloc(1, sizeof(*e) + klen + 1)) == NULL)
        return NULL;
    e->hash = h;
    e->klen = klen;
    memcpy(e->key, key, klen + 1);
    e->touched = now;
    e->chain = t->buckets[h & t->mask];
    t->buckets[h & t->mask] = e;
    list_push_front(t, e);
    t->n++;
    return e;
}

static void touch(tg_throttle_t *t, entry_t *e, int64_t now)
{
    e->touched = now;
    list_unlink(t, e);
    list_push_front(t, e);
}

static int64_t delay_for(const tg_throttle_policy_t *p, uint32_t failures)
{
    if (failures <= p->free_failures)
        return 0;
    uint32_t k = failures - p->free_failures - 1;
    int64_t d = p->base_ns;
    while (k-- > 0 && d < p->max_ns)
        d = d > p->max_ns / 2 ? p->max_ns : d * 2;
    return d < p->max_ns ? d : p->max_ns;
}

int64_t tg_throttle_wait_ns(tg_throttle_t *t, const char *key, int64_t now)
{
    entry_t *e = lookup(t, key, now, 0);
    return e != NULL && e->until > now ? e->until - now : 0;
}

uint32_t tg_throttle_fail(tg_throttle_t *t, const char *key, int64_t now)
{
    entry_t *e = lookup(t, key, now, 1);
    if (e == NULL)
        return 0; /* out of memory: this failure is not counted */
    if (e->failures < UINT32_MAX)
        e->failures++;
    int64_t until = now + delay_for(&t->p, e->failures);
    if (until > e->until)
        e->until = until;
    touch(t, e, now);
    return e->failures;
}

void tg_throttle_forgive(tg_throttle_t *t, const char *key, int64_t now)
{
    entry_t *e = lookup(t, key, now, 0);
    if (e == NULL || e->failures == 0)
        return;
    e->failures--;
    int64_t d = delay_for(&t->p, e->failures);
    e->until = d > 0 ? e->touched + d : 0;
}

void tg_throttle_reset(tg_throttle_t *t, const char *key)
{
    size_t klen = strlen(key);
    entry_t *e = find(t, key, klen, hash_key(t, key, klen));
    if (e != NULL)
        remove_entry(t, e);
}

int64_t tg_throttle_hit(tg_throttle_t *t, const char *key, uint64_t limit, int64_t window_ns, int64_t now)
{
    entry_t *e = lookup(t, key, now, 1);
    if (e == NULL)
        return 0;                                  /* out of memory: fail open; the other limits still hold */
    if (e->failures == 0 || now - e->until >= 0) { /* a new window */
        e->failures = 0;
        e->until = now + window_ns;
    }
    if (e->failures >= limit)
        return e->until - now;
    e->failures++;
    touch(t, e, now);
    return 0;
}
