/* key_cache.h - the digests of API keys seen before, so a repeated key skips its format check
 * and its HMAC.
 *
 * Every call's key is checked (tg_apikey_check_format, ~1,200 instructions) and hashed
 * (tg_apikey_hasher_hash, 0.37-0.48 us natively) before the directory looks its digest up. Most
 * calls come from keys that called before, so each gateway thread keeps a bounded memo from a
 * fingerprint of the key to its digest. No raw key is kept: the fingerprint is a keyed 128-bit
 * SipHash (crypto_shorthash_siphashx24) under a random key made with the cache, which never
 * leaves it. The memo holds only digests, never an answer: the caller still looks the digest up
 * in the directory on every call, so revocation, expiry, rotation, deletion and plan changes
 * apply to the very next call.
 *
 * What may enter: only the digest of a key that passed tg_apikey_check_format and that the
 * directory knew (tg_accounts_authenticate said OK, REVOKED or EXPIRED); the caller decides this
 * (gateway.c). Keys made up by an attacker are never found, so they are never inserted and evict
 * nothing; and without the SipHash key nobody can choose a key whose fingerprint equals a cached
 * one (a chance collision is 2^-128 per pair), so a hit stands for the same key.
 *
 * A cache is not thread-safe: each thread uses its own (tg_key_cache_of_thread), without locks. */
#ifndef TG_KEY_CACHE_H
#define TG_KEY_CACHE_H

#include <stddef.h>
#include <stdint.h>

#define TG_KEY_CACHE_SLOTS 4096 /* per thread: 2-way sets, 48 bytes an entry, 192 KiB */
#define TG_KEY_FINGERPRINT_LEN 16
#define TG_KEY_DIGEST_LEN 32

typedef struct tg_key_cache tg_key_cache_t;

/* A cache of `slots` entries (a power of two, at least 2), empty, with a fresh random SipHash
 * key; in sodium_malloc'd memory (excluded from core dumps, not swapped out where mlock is
 * allowed, guard pages around it). NULL when memory is short. tg_key_cache_free wipes it. */
tg_key_cache_t *tg_key_cache_new(size_t slots);
void tg_key_cache_free(tg_key_cache_t *c);

/* The key's fingerprint under this cache's SipHash key, for tg_key_cache_find and _insert. */
void tg_key_cache_fingerprint(const tg_key_cache_t *c, const char *key, size_t len, uint8_t fp[TG_KEY_FINGERPRINT_LEN]);

/* 1 and the digest into `digest` when `fp` is cached, else 0 (digest untouched). The
 * fingerprints of the set are compared in constant time. */
int tg_key_cache_find(const tg_key_cache_t *c, const uint8_t fp[TG_KEY_FINGERPRINT_LEN],
                      uint8_t digest[TG_KEY_DIGEST_LEN]);

/* Keeps fp -> digest, evicting the older of the two entries of its set when both are used. The
 * caller inserts only digests the directory knew (see the top of this file). */
void tg_key_cache_insert(tg_key_cache_t *c, const uint8_t fp[TG_KEY_FINGERPRINT_LEN],
                         const uint8_t digest[TG_KEY_DIGEST_LEN]);

/* Forgets every entry (and wipes them). */
void tg_key_cache_clear(tg_key_cache_t *c);

/* How many entries are in use (at most the slots), for statistics and tests: walks the sets. */
size_t tg_key_cache_count(const tg_key_cache_t *c);

/* The calling thread's cache of TG_KEY_CACHE_SLOTS entries for the digest function `owner`
 * (a number that names one HMAC secret for the life of the process: tg_gateway_new draws one
 * per gateway). Made on the thread's first call, freed when the thread exits; emptied when
 * `owner` differs from the previous call's, so no digest made under one secret is returned for
 * another. NULL when memory is short: the caller then checks and hashes as if every call missed. */
tg_key_cache_t *tg_key_cache_of_thread(uint64_t owner);

/* The calling thread's cache as its last tg_key_cache_of_thread left it, or NULL if it has none:
 * for statistics and tests, which look at it without changing its owner. */
tg_key_cache_t *tg_key_cache_this_thread(void);

#endif
