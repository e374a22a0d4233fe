/* shardmap.h - a concurrent map from byte-string keys to small fixed-size values whose address
 * never changes, for per-customer hot state (rate-limit words, quota counters).
 *
 * Keys hash to one of 64 shards, each an open-addressed table of entry pointers. A lookup takes
 * no lock: it reads the shard's current table and the entries with acquire loads (entries and
 * tables are published with release stores and never changed after, except slots going from
 * empty to filled). An insert takes the shard's mutex. Entries are never removed before
 * tg_shardmap_free, so a returned value pointer may be used without any lock, typically with
 * atomic operations on the value.
 *
 * The hash is not keyed: every key must be made by tollgate (ids it generates or reads from its
 * configuration), never chosen by an API client, or a client could pick keys that collide. */
#ifndef TG_SHARDMAP_H
#define TG_SHARDMAP_H

#include <stddef.h>

typedef struct tg_shardmap tg_shardmap_t;

/* Values are value_size bytes, zero-initialised and aligned for any atomic type.
 * NULL on ENOMEM. */
tg_shardmap_t *tg_shardmap_new(size_t value_size);
void tg_shardmap_free(tg_shardmap_t *m);

/* The value for key, adding a zeroed one if create is set and the key is new. NULL if absent
 * (create == 0) or out of memory. Thread-safe; an absent answer may miss a key another thread
 * is adding at the same moment (the lookup then counts as happening first). */
void *tg_shardmap_get(tg_shardmap_t *m, const void *key, size_t klen, int create);

#endif
