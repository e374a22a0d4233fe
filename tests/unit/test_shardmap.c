/* test_shardmap.c - the lock-free-read shardmap: many keys through table growth, keys whose
 * hashes are all equal (the probe must compare keys, not hashes), keys of every short length,
 * and threads adding and reading the same keys at once (run under ThreadSanitizer too).
 *
 * The file includes shardmap.c itself so that one test can replace the hash with a constant. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static int equal_hashes; /* set by the test of colliding keys */
static uint64_t test_hash(const unsigned char *k, size_t n);
#define TG_SHARDMAP_HASH test_hash
#include "../../src/util/shardmap.c"

static uint64_t test_hash(const unsigned char *k, size_t n)
{
    return equal_hashes ? UINT64_C(0x5eed) : hash_bytes(k, n);
}

/* A key like the quota's: a customer id, NUL, 8 bytes of period, a metric. */
static size_t make_key(char *buf, size_t cap, unsigned i)
{
    int n = snprintf(buf, cap, "cus_%08u%016u", i, i * 7919u);
    int64_t period = 1764547200 + (int64_t)(i % 3);
    memcpy(buf + n + 1, &period, sizeof(period));
    memcpy(buf + n + 1 + sizeof(period), "api_calls", 9);
    return (size_t)n + 1 + sizeof(period) + 9;
}

/* Inserts n keys, each value stamped with its index, then finds every one again. */
static void fill_and_check(unsigned n)
{
    tg_shardmap_t *m = tg_shardmap_new(sizeof(uint64_t));
    assert_non_null(m);
    char key[64];
    for (unsigned i = 0; i < n; i++) {
        size_t kl = make_key(key, sizeof(key), i);
        assert_null(tg_shardmap_get(m, key, kl, 0));
        uint64_t *v = tg_shardmap_get(m, key, kl, 1);
        assert_non_null(v);
        assert_int_equal(*v, 0); /* new values are zeroed */
        *v = i + 1;
        assert_ptr_equal(tg_shardmap_get(m, key, kl, 1), v); /* a second create finds it */
    }
    for (unsigned i = 0; i < n; i++) {
        size_t kl = make_key(key, sizeof(key), i);
        uint64_t *v = tg_shardmap_get(m, key, kl, 0);
        assert_non_null(v);
        assert_int_equal(*v, i + 1);
        assert_null(tg_shardmap_get(m, key, kl - 1, 0)); /* a prefix is another key */
    }
    tg_shardmap_free(m);
}

static void test_many_keys_grow(void **state)
{
    (void)state;
    /* 64 shards of 64 slots: 50,000 keys make every shard's table grow several times */
    fill_and_check(50000);
}

static void test_equal_hashes(void **state)
{
    (void)state;
    equal_hashes = 1; /* every key in one shard and one probe sequence, through growth */
    fill_and_check(300);
    equal_hashes = 0;
}

static void test_short_and_unaligned_keys(void **state)
{
    (void)state;
    tg_shardmap_t *m = tg_shardmap_new(sizeof(uint64_t));
    assert_non_null(m);
    unsigned char buf[40];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)(i * 37 + 1);
    /* every length 0..24 at offsets 0..7: all different keys, except that equal bytes are equal */
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len <= 24; len++)
            assert_non_null(tg_shardmap_get(m, buf + off, len, 1));
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len <= 24; len++) {
            unsigned char copy[32];
            memcpy(copy, buf + off, len);
            assert_ptr_equal(tg_shardmap_get(m, copy, len, 0), tg_shardmap_get(m, buf + off, len, 0));
        }
    /* keys differing only in their last byte, or only in a byte the overlapping read covers twice */
    unsigned char a[13] = "abcdefghijkl", b[13] = "abcdefghijkl";
    b[11] = 'L';
    assert_ptr_not_equal(tg_shardmap_get(m, a, 12, 1), tg_shardmap_get(m, b, 12, 1));
    b[11] = 'l';
    b[6] = 'G';
    assert_ptr_not_equal(tg_shardmap_get(m, a, 12, 1), tg_shardmap_get(m, b, 12, 1));
    tg_shardmap_free(m);
}

#define THREADS 4
#define THREAD_KEYS 20000

typedef struct {
    tg_shardmap_t *m;
    int offset;
} worker_arg_t;

/* Every thread walks the same keys from a different start, adding 1 to each: afterwards each
 * value is THREADS exactly, so no thread got a second entry for a key another was adding. */
static void *worker(void *p)
{
    worker_arg_t *a = p;
    char key[64];
    for (unsigned j = 0; j < THREAD_KEYS; j++) {
        unsigned i = (j + (unsigned)a->offset * (THREAD_KEYS / THREADS)) % THREAD_KEYS;
        size_t kl = make_key(key, sizeof(key), i);
        _Atomic uint64_t *v = tg_shardmap_get(a->m, key, kl, 1);
        if (v == NULL)
            return (void *)1;
        atomic_fetch_add(v, 1);
    }
    return NULL;
}

static void test_threads_same_keys(void **state)
{
    (void)state;
    tg_shardmap_t *m = tg_shardmap_new(sizeof(_Atomic uint64_t));
    assert_non_null(m);
    pthread_t t[THREADS];
    worker_arg_t args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (worker_arg_t){m, i};
        assert_int_equal(pthread_create(&t[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        assert_null(rc);
    }
    char key[64];
    for (unsigned i = 0; i < THREAD_KEYS; i++) {
        size_t kl = make_key(key, sizeof(key), i);
        _Atomic uint64_t *v = tg_shardmap_get(m, key, kl, 0);
        assert_non_null(v);
        assert_int_equal(atomic_load(v), THREADS);
    }
    tg_shardmap_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_keys_grow),
        cmocka_unit_test(test_equal_hashes),
        cmocka_unit_test(test_short_and_unaligned_keys),
        cmocka_unit_test(test_threads_same_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
