/* bench-key-cache.c - what finding a call's key digest costs with and without the key cache
 * (gateway/key_cache.h). Used by bench/key_cache.sh.
 *
 * Without: tg_apikey_check_format and tg_apikey_hasher_hash, as every call did before the cache.
 * With: tg_key_cache_fingerprint and tg_key_cache_find on a cache holding the keys (a hit), as a
 * repeated key costs now. KEYS distinct keys are presented in turn (256 by default, all cached),
 * so the cache's memory is touched as by several customers (a few may share a set with two
 * others and be evicted: their lookups are misses, counted and printed). Thread CPU time, so that other
 * processes on a busy machine do not count. Prints ns per lookup for both and their ratio. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/apikey.h"
#include "gateway/key_cache.h"

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile uint8_t sink; /* keeps both loops' work observable */

int main(int argc, char **argv)
{
    uint64_t lookups = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000u;
    size_t nkeys = argc > 2 ? strtoul(argv[2], NULL, 10) : 256;
    if (nkeys == 0 || nkeys > TG_KEY_CACHE_SLOTS) {
        fprintf(stderr, "keys: 1 to %d\n", TG_KEY_CACHE_SLOTS);
        return 2;
    }
    static const char secret[] = "0123456789abcdef0123456789abcdef";
    tg_apikey_hasher_t *h = tg_apikey_hasher_new((const uint8_t *)secret, strlen(secret));
    tg_key_cache_t *c = tg_key_cache_new(TG_KEY_CACHE_SLOTS);
    char(*keys)[TG_APIKEY_BUF] = calloc(nkeys, TG_APIKEY_BUF);
    if (h == NULL || c == NULL || keys == NULL)
        return 1;
    for (size_t i = 0; i < nkeys; i++) {
        uint8_t fp[TG_KEY_FINGERPRINT_LEN], digest[TG_KEY_DIGEST_LEN];
        tg_apikey_generate(1, keys[i]);
        tg_apikey_hasher_hash(h, keys[i], TG_APIKEY_LEN, digest);
        tg_key_cache_fingerprint(c, keys[i], TG_APIKEY_LEN, fp);
        tg_key_cache_insert(c, fp, digest);
    }

    uint8_t digest[TG_KEY_DIGEST_LEN], acc = 0;
    double t0 = cpu_s();
    for (uint64_t i = 0; i < lookups; i++) {
        const char *key = keys[i % nkeys];
        if (tg_apikey_check_format(key, TG_APIKEY_LEN) != 0)
            return 1;
        tg_apikey_hasher_hash(h, key, TG_APIKEY_LEN, digest);
        acc ^= digest[i & 31];
    }
    double t1 = cpu_s();
    uint64_t misses = 0;
    for (uint64_t i = 0; i < lookups; i++) {
        uint8_t fp[TG_KEY_FINGERPRINT_LEN];
        tg_key_cache_fingerprint(c, keys[i % nkeys], TG_APIKEY_LEN, fp);
        misses += !tg_key_cache_find(c, fp, digest);
        acc ^= digest[i & 31];
    }
    double t2 = cpu_s();
    sink = acc;
    double before = (t1 - t0) * 1e9 / (double)lookups, after = (t2 - t1) * 1e9 / (double)lookups;
    printf("check_format+hmac %.1f ns  cache_hit %.1f ns  (%zu keys, %llu misses)  ratio %.1f\n", before, after, nkeys,
           (unsigned long long)misses, before / after);
    tg_key_cache_free(c);
    tg_apikey_hasher_free(h);
    free(keys);
    return 0;
}
