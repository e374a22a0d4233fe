/* test_key_cache.c - the per-thread cache of API key digests (gateway/key_cache.h): a hit gives
 * the key's own HMAC, a neighbouring key misses, eviction never returns another key's digest,
 * clearing and a new owner forget everything, and each thread has its own cache. The gateway's
 * use of it (what is inserted, revocation after a hit, another secret) is in test_gateway.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <zlib.h>

#include "gateway/apikey.h"
#include "gateway/key_cache.h"

static const char secret[] = "0123456789abcdef0123456789abcdef";

/* The key with its body character at `pos` changed and its checksum made right again: a key
 * of valid format that differs from `key` only there. */
static void neighbour_key(const char *key, size_t pos, char out[TG_APIKEY_BUF])
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    memcpy(out, key, TG_APIKEY_BUF);
    out[pos] = out[pos] == 'a' ? 'b' : 'a';
    uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)out, TG_APIKEY_LEN - 6);
    for (size_t i = TG_APIKEY_LEN; i-- > TG_APIKEY_LEN - 6; crc /= 62)
        out[i] = alphabet[crc % 62];
}

static void digest_of(const tg_apikey_hasher_t *h, const char *key, uint8_t out[TG_KEY_DIGEST_LEN])
{
    tg_apikey_hasher_hash(h, key, strlen(key), out);
}

static void test_hit_gives_the_keys_hmac_and_a_neighbour_misses(void **state)
{
    (void)state;
    tg_apikey_hasher_t *h = tg_apikey_hasher_new((const uint8_t *)secret, strlen(secret));
    tg_key_cache_t *c = tg_key_cache_new(TG_KEY_CACHE_SLOTS);
    assert_non_null(c);
    char key[TG_APIKEY_BUF], near[TG_APIKEY_BUF];
    tg_apikey_generate(1, key);
    neighbour_key(key, 30, near);
    assert_int_equal(tg_apikey_check_format(near, strlen(near)), 0);
    assert_memory_not_equal(key, near, TG_APIKEY_LEN);

    uint8_t fp[TG_KEY_FINGERPRINT_LEN], near_fp[TG_KEY_FINGERPRINT_LEN], digest[TG_KEY_DIGEST_LEN],
        got[TG_KEY_DIGEST_LEN];
    tg_key_cache_fingerprint(c, key, strlen(key), fp);
    assert_int_equal(tg_key_cache_find(c, fp, got), 0);
    digest_of(h, key, digest);
    tg_key_cache_insert(c, fp, digest);
    assert_int_equal(tg_key_cache_count(c), 1);

    memset(got, 0, sizeof(got));
    assert_int_equal(tg_key_cache_find(c, fp, got), 1);
    uint8_t reference[TG_KEY_DIGEST_LEN]; /* libsodium's HMAC, as the stored digests were made */
    tg_apikey_hash((const uint8_t *)secret, strlen(secret), key, strlen(key), reference);
    assert_memory_equal(got, reference, sizeof(reference));

    tg_key_cache_fingerprint(c, near, strlen(near), near_fp);
    assert_memory_not_equal(fp, near_fp, sizeof(fp));
    assert_int_equal(tg_key_cache_find(c, near_fp, got), 0);

    /* the same key fingerprints the same; another cache (another SipHash key) differently */
    uint8_t again[TG_KEY_FINGERPRINT_LEN], other[TG_KEY_FINGERPRINT_LEN];
    tg_key_cache_fingerprint(c, key, strlen(key), again);
    assert_memory_equal(fp, again, sizeof(fp));
    tg_key_cache_t *c2 = tg_key_cache_new(2);
    tg_key_cache_fingerprint(c2, key, strlen(key), other);
    assert_memory_not_equal(fp, other, sizeof(fp));
    tg_key_cache_free(c2);
    tg_key_cache_free(c);
    tg_apikey_hasher_free(h);
}

/* Far more keys than slots: every lookup gives the key's own digest or misses, never another's;
 * the newest insert is always found, as are the two newest of a set; the count stays bounded. */
static void test_eviction_never_returns_another_keys_digest(void **state)
{
    (void)state;
    enum { SLOTS = 16, KEYS = 200 };
    tg_apikey_hasher_t *h = tg_apikey_hasher_new((const uint8_t *)secret, strlen(secret));
    tg_key_cache_t *c = tg_key_cache_new(SLOTS);
    static char keys[KEYS][TG_APIKEY_BUF];
    static uint8_t digests[KEYS][TG_KEY_DIGEST_LEN];
    size_t found = 0;
    for (size_t i = 0; i < KEYS; i++) {
        tg_apikey_generate(i % 2, keys[i]);
        digest_of(h, keys[i], digests[i]);
        uint8_t fp[TG_KEY_FINGERPRINT_LEN], got[TG_KEY_DIGEST_LEN];
        tg_key_cache_fingerprint(c, keys[i], TG_APIKEY_LEN, fp);
        tg_key_cache_insert(c, fp, digests[i]);
        assert_int_equal(tg_key_cache_find(c, fp, got), 1);
        assert_memory_equal(got, digests[i], TG_KEY_DIGEST_LEN);
        assert_true(tg_key_cache_count(c) <= SLOTS);
        for (size_t j = 0; j <= i; j++) {
            tg_key_cache_fingerprint(c, keys[j], TG_APIKEY_LEN, fp);
            if (tg_key_cache_find(c, fp, got)) {
                assert_memory_equal(got, digests[j], TG_KEY_DIGEST_LEN);
                found += j < i;
            }
        }
    }
    assert_int_equal(tg_key_cache_count(c), SLOTS); /* 200 keys fill all 8 sets of 2 */
    assert_true(found > 0);                         /* older keys stayed while their set had room */

    /* a set's two newest both stay: re-inserting a key that is still cached does not take a way */
    uint8_t fp_a[TG_KEY_FINGERPRINT_LEN], fp_b[TG_KEY_FINGERPRINT_LEN], got[TG_KEY_DIGEST_LEN];
    tg_key_cache_clear(c);
    assert_int_equal(tg_key_cache_count(c), 0);
    tg_key_cache_fingerprint(c, keys[0], TG_APIKEY_LEN, fp_a);
    size_t b = 1;
    for (; b < KEYS; b++) { /* a key in the same set as keys[0] */
        tg_key_cache_fingerprint(c, keys[b], TG_APIKEY_LEN, fp_b);
        if ((fp_a[0] & (SLOTS / 2 - 1)) == (fp_b[0] & (SLOTS / 2 - 1)))
            break;
    }
    assert_true(b < KEYS);
    tg_key_cache_insert(c, fp_a, digests[0]);
    tg_key_cache_insert(c, fp_b, digests[b]);
    tg_key_cache_insert(c, fp_a, digests[0]);
    assert_int_equal(tg_key_cache_count(c), 2);
    assert_int_equal(tg_key_cache_find(c, fp_a, got), 1);
    assert_memory_equal(got, digests[0], TG_KEY_DIGEST_LEN);
    assert_int_equal(tg_key_cache_find(c, fp_b, got), 1);
    assert_memory_equal(got, digests[b], TG_KEY_DIGEST_LEN);
    tg_key_cache_free(c);
    tg_apikey_hasher_free(h);
}

static void test_bad_sizes_are_refused(void **state)
{
    (void)state;
    assert_null(tg_key_cache_new(0));
    assert_null(tg_key_cache_new(1));
    assert_null(tg_key_cache_new(6));
    assert_null(tg_key_cache_new((size_t)1 << 30));
}

/* A new owner (another gateway, another secret) empties the thread's cache; the same owner
 * keeps it. */
static void test_thread_cache_is_emptied_for_another_owner(void **state)
{
    (void)state;
    tg_key_cache_t *c = tg_key_cache_of_thread(1001);
    assert_non_null(c);
    assert_ptr_equal(tg_key_cache_this_thread(), c);
    uint8_t fp[TG_KEY_FINGERPRINT_LEN], digest[TG_KEY_DIGEST_LEN] = {1, 2, 3}, got[TG_KEY_DIGEST_LEN];
    tg_key_cache_fingerprint(c, "k", 1, fp);
    tg_key_cache_insert(c, fp, digest);
    assert_ptr_equal(tg_key_cache_of_thread(1001), c);
    assert_int_equal(tg_key_cache_find(c, fp, got), 1);
    assert_ptr_equal(tg_key_cache_of_thread(1002), c);
    assert_int_equal(tg_key_cache_count(c), 0);
    assert_int_equal(tg_key_cache_find(c, fp, got), 0);
}

static void *other_thread(void *arg)
{
    tg_key_cache_t **out = arg;
    *out = tg_key_cache_of_thread(1001);
    uint8_t fp[TG_KEY_FINGERPRINT_LEN] = {0}, digest[TG_KEY_DIGEST_LEN] = {0};
    if (*out != NULL)
        tg_key_cache_insert(*out, fp, digest); /* its own: no lock, nothing shared */
    return NULL;
}

static void test_each_thread_has_its_own_cache(void **state)
{
    (void)state;
    tg_key_cache_t *mine = tg_key_cache_of_thread(1001), *theirs[2] = {NULL, NULL};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, other_thread, &theirs[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0); /* their caches are freed as they exit */
    for (int i = 0; i < 2; i++) {
        assert_non_null(theirs[i]);
        assert_ptr_not_equal(theirs[i], mine);
    }
    assert_ptr_equal(tg_key_cache_this_thread(), mine);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_gives_the_keys_hmac_and_a_neighbour_misses),
        cmocka_unit_test(test_eviction_never_returns_another_keys_digest),
        cmocka_unit_test(test_bad_sizes_are_refused),
        cmocka_unit_test(test_thread_cache_is_emptied_for_another_owner),
        cmocka_unit_test(test_each_thread_has_its_own_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
