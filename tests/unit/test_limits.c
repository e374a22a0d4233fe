/* test_limits.c - API key format and hashing, the GCRA limiter and quota counters, including
 * many threads on one key (run under ThreadSanitizer too: make SANITIZE=thread). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "gateway/apikey.h"
#include "limits/limiter.h"
#include "limits/quota.h"
#include "util/err.h"

#define SEC INT64_C(1000000000)

static void test_key_format(void **state)
{
    (void)state;
    char a[TG_APIKEY_BUF], b[TG_APIKEY_BUF];
    tg_apikey_generate(1, a);
    tg_apikey_generate(0, b);
    assert_int_equal(strlen(a), TG_APIKEY_LEN);
    assert_memory_equal(a, "tg_live_", 8);
    assert_memory_equal(b, "tg_test_", 8);
    assert_int_equal(tg_apikey_check_format(a, strlen(a)), 0);
    assert_int_equal(tg_apikey_check_format(b, strlen(b)), 0);
    assert_string_not_equal(a + 8, b + 8);
    /* every single-character typo is caught by the checksum or the alphabet */
    for (size_t i = 8; i < TG_APIKEY_LEN; i++) {
        char t[TG_APIKEY_BUF];
        memcpy(t, a, sizeof(t));
        t[i] = t[i] == 'z' ? 'y' : (char)(t[i] == '9' ? 'A' : t[i] + 1);
        assert_int_equal(tg_apikey_check_format(t, strlen(t)), -1);
    }
    assert_int_equal(tg_apikey_check_format(a, strlen(a) - 1), -1);
    assert_int_equal(tg_apikey_check_format("tg_prod_", 8), -1);
    /* Keys issued before the checksum's digits were computed in a register (main at 623da06, whose
     * base62 divided the CRC's four bytes): they must stay valid. */
    static const char *const issued[] = {
        "tg_test_W68iBxanMUVB0pPnrWOgiTQWKBsGwtVsxJNLil1cbR73UtRAi",
        "tg_live_Q7KYZO5fjzMWiisFysSoSs7pdgCOEhUL9GAqcLzfhr23s2hf4",
        "tg_test_Y9PCEdplzwxbJc90EOyMXfyYSz3VLRBhyJkMKOcrVyo1VRzfk",
    };
    for (size_t i = 0; i < sizeof(issued) / sizeof(issued[0]); i++)
        assert_int_equal(tg_apikey_check_format(issued[i], strlen(issued[i])), 0);
    char p[32];
    tg_apikey_prefix(a, strlen(a), p, sizeof(p));
    assert_int_equal(strlen(p), TG_APIKEY_PREFIX_LEN);
    assert_memory_equal(p, a, TG_APIKEY_PREFIX_LEN);
}

static void test_hmac_is_standard(void **state)
{
    (void)state;
    /* RFC 4231 test case 2 */
    uint8_t out[32];
    const char *data = "what do ya want for nothing?";
    tg_apikey_hash((const uint8_t *)"Jefe", 4, data, strlen(data), out);
    static const uint8_t want[32] = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24,
                                     0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27,
                                     0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    assert_memory_equal(out, want, 32);
    uint8_t other[32];
    tg_apikey_hash((const uint8_t *)"Jeff", 4, data, strlen(data), other);
    assert_memory_not_equal(out, other, 32);
    /* the prepared hasher gives the same MAC, every time (its state is not consumed) */
    tg_apikey_hasher_t *h = tg_apikey_hasher_new((const uint8_t *)"Jefe", 4);
    assert_non_null(h);
    for (int i = 0; i < 3; i++) {
        memset(other, 0, sizeof(other));
        tg_apikey_hasher_hash(h, data, strlen(data), other);
        assert_memory_equal(other, want, 32);
    }
    tg_apikey_hasher_free(h);
}

/* The request path's prepared HMAC (OpenSSL's SHA-256) and the one keys are stored with at
 * issuance (tg_apikey_hash, libsodium's) are two implementations of one MAC: they agree for
 * secrets shorter than, as long as and longer than a SHA-256 block (hashed first) and messages
 * of every length around the block boundaries; and the prepared one meets RFC 4231 case 6. */
static void test_prepared_hmac_matches_the_stored_one(void **state)
{
    (void)state;
    uint8_t secret[200], msg[200], want[32], got[32];
    for (size_t i = 0; i < sizeof(secret); i++)
        secret[i] = (uint8_t)(i * 37 + 11), msg[i] = (uint8_t)('0' + i % 75);
    static const size_t secret_lens[] = {1, 32, 63, 64, 65, 128, 200};
    for (size_t s = 0; s < sizeof(secret_lens) / sizeof(secret_lens[0]); s++) {
        tg_apikey_hasher_t *h = tg_apikey_hasher_new(secret, secret_lens[s]);
        assert_non_null(h);
        for (size_t n = 0; n <= 130; n++) {
            tg_apikey_hash(secret, secret_lens[s], (const char *)msg, n, want);
            tg_apikey_hasher_hash(h, (const char *)msg, n, got);
            assert_memory_equal(got, want, 32);
        }
        tg_apikey_hasher_free(h);
    }
    uint8_t long_key[131];
    memset(long_key, 0xaa, sizeof(long_key));
    const char *data = "Test Using Larger Than Block-Size Key - Hash Key First";
    static const uint8_t rfc4231_6[32] = {0x60, 0xe4, 0x31, 0x59, 0x1e, 0xe0, 0xb6, 0x7f, 0x0d, 0x8a, 0x26,
                                          0xaa, 0xcb, 0xf5, 0xb7, 0x7f, 0x8e, 0x0b, 0xc6, 0x21, 0x37, 0x28,
                                          0xc5, 0x14, 0x05, 0x46, 0x04, 0x0f, 0x0e, 0xe3, 0x7f, 0x54};
    tg_apikey_hasher_t *h = tg_apikey_hasher_new(long_key, sizeof(long_key));
    assert_non_null(h);
    tg_apikey_hasher_hash(h, data, strlen(data), got);
    assert_memory_equal(got, rfc4231_6, 32);
    tg_apikey_hasher_free(h);
}

static void test_gcra_basics(void **state)
{
    (void)state;
    tg_limiter_t *l = tg_limiter_local_new();
    tg_rate_t r = {10, 60 * SEC}; /* 10/min: one cell every 6 s */
    tg_limit_result_t res;
    int64_t now = 1000 * SEC;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(tg_limiter_take(l, "c", 1, &r, 10, 1, now, &res), 0);
        assert_true(res.allowed);
        assert_int_equal(res.limit, 10);
        assert_int_equal(res.remaining, (uint64_t)(9 - i));
    }
    assert_int_equal(tg_limiter_take(l, "c", 1, &r, 10, 1, now, &res), 0);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_ns, 6 * SEC);
    assert_int_equal(res.reset_ns, 60 * SEC);
    /* a refused call consumed nothing: exactly one cell returns after 6 s */
    assert_int_equal(tg_limiter_take(l, "c", 1, &r, 10, 1, now + 6 * SEC - 1, &res), 0);
    assert_false(res.allowed);
    assert_int_equal(tg_limiter_take(l, "c", 1, &r, 10, 1, now + 6 * SEC, &res), 0);
    assert_true(res.allowed);
    assert_int_equal(tg_limiter_take(l, "c", 1, &r, 10, 1, now + 6 * SEC, &res), 0);
    assert_false(res.allowed);
    /* weights: 10 cells for one call; other keys are independent */
    assert_int_equal(tg_limiter_take(l, "d", 1, &r, 10, 10, now, &res), 0);
    assert_true(res.allowed);
    assert_int_equal(res.remaining, 0);
    assert_int_equal(tg_limiter_take(l, "e", 1, &r, 10, 11, now, &res), 0);
    assert_false(res.allowed); /* heavier than the whole burst */
    tg_rate_t unlimited = {0, 0};
    assert_int_equal(tg_limiter_take(l, "f", 1, &unlimited, 0, 1, now, &res), 0);
    assert_true(res.allowed);
    tg_limiter_free(l);
}

/* issue 10 item 9: a free customer (10/min, burst 10) who used the burst and is moved to pro
 * (500/min, burst 500) has pro's burst minus the 10 used at once, not the old plan's minute of
 * debt; and back down to free, no more room than free's burst minus what was used. */
static void test_plan_change_converts_state(void **state)
{
    (void)state;
    tg_limiter_t *l = tg_limiter_local_new();
    tg_rate_t free_rate = {10, 60 * SEC}, pro_rate = {500, 60 * SEC};
    tg_limit_result_t res;
    int64_t now = 1000 * SEC;
    for (int i = 0; i < 10; i++)
        assert_int_equal(tg_limiter_take(l, "c", 1, &free_rate, 10, 1, now, &res), 0);
    assert_int_equal(tg_limiter_take(l, "c", 1, &free_rate, 10, 1, now, &res), 0);
    assert_false(res.allowed);
    /* upgrade, noticed at the next call: 490 more at once, exactly */
    int passed = 0;
    for (int i = 0; i < 600; i++) {
        assert_int_equal(tg_limiter_take(l, "c", 1, &pro_rate, 500, 1, now, &res), 0);
        passed += res.allowed;
    }
    assert_int_equal(passed, 490);

    /* downgrade with 500 pro cells in the bucket: a full free bucket, one call per 6 s */
    tg_limiter_repolicy(l, "c", 1, &free_rate, 10, now);
    assert_int_equal(tg_limiter_take(l, "c", 1, &free_rate, 10, 1, now + 6 * SEC - 1, &res), 0);
    assert_false(res.allowed);
    assert_int_equal(tg_limiter_take(l, "c", 1, &free_rate, 10, 1, now + 6 * SEC, &res), 0);
    assert_true(res.allowed);
    assert_int_equal(res.remaining, 0);

    /* A downgrade converts at the moment it is made (repolicy), not at the next call: 20 pro
     * calls, then free at once; 2 s later free has refilled a third of a cell, not the 16.7 pro
     * cells those 2 s would drain at pro's rate. */
    for (int i = 0; i < 20; i++)
        assert_int_equal(tg_limiter_take(l, "d", 1, &pro_rate, 500, 1, now, &res), 0);
    tg_limiter_repolicy(l, "d", 1, &free_rate, 10, now);
    assert_int_equal(tg_limiter_take(l, "d", 1, &free_rate, 10, 1, now + 2 * SEC, &res), 0);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_ns, 4 * SEC);

    /* A change of a plan's limits (same plan, smaller burst) cuts the bucket the same way. */
    for (int i = 0; i < 8; i++)
        assert_int_equal(tg_limiter_take(l, "e", 1, &free_rate, 10, 1, now, &res), 0);
    assert_int_equal(tg_limiter_take(l, "e", 1, &free_rate, 5, 1, now, &res), 0);
    assert_false(res.allowed);
    assert_int_equal(res.remaining, 0);
    /* and a larger one gives the difference at once */
    assert_int_equal(tg_limiter_take(l, "e", 1, &free_rate, 12, 1, now, &res), 0);
    assert_true(res.allowed); /* cut to 5 cells (30 s) before: 7 free of 12, 6 after this one */
    assert_int_equal(res.remaining, 6);
    tg_limiter_free(l);
}

static void test_gcra_convert(void **state)
{
    (void)state;
    tg_rate_t free_rate = {10, 60 * SEC}, pro_rate = {500, 60 * SEC}, unlimited = {0, 0};
    int64_t now = 1000 * SEC;
    /* 10 free cells (60 s) are 10 pro cells (1.2 s) */
    assert_int_equal(tg_gcra_convert(now + 60 * SEC, &free_rate, &pro_rate, 500, now), now + 1200 * 1000000LL);
    /* 100 pro cells are 100 free cells, cut at free's 10 */
    assert_int_equal(tg_gcra_convert(now + 12 * SEC, &pro_rate, &free_rate, 10, now), now + 60 * SEC);
    /* an empty bucket stays empty; unlimited keeps the word */
    assert_int_equal(tg_gcra_convert(now - 5, &pro_rate, &free_rate, 10, now), now - 5);
    assert_int_equal(tg_gcra_convert(now + 5, &unlimited, &free_rate, 10, now), now + 5);
    /* a million cells of 1 us moved to one a day with a burst of a billion: saturates, never wraps */
    tg_rate_t fast = {1000000, SEC}, daily = {1, 86400 * SEC};
    assert_int_equal(tg_gcra_convert(now + SEC, &fast, &daily, 1000000000, now), INT64_MAX);
    /* a fraction of a cell is kept, rounded up (a conversion never frees room) */
    assert_int_equal(tg_gcra_convert(now + 1, &pro_rate, &free_rate, 10, now), now + 50);
}

typedef struct {
    tg_limiter_t *l;
    tg_quota_t *q;
    _Atomic int allowed;
} shared_t;

static void *limiter_worker(void *arg)
{
    shared_t *s = arg;
    tg_rate_t r = {1000, 3600 * SEC};
    tg_limit_result_t res;
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(tg_limiter_take(s->l, "hot", 3, &r, 1000, 1, 5 * SEC, &res), 0);
        if (res.allowed)
            atomic_fetch_add(&s->allowed, 1);
    }
    return NULL;
}

/* Calls of one key racing with plan changes back and forth: the state stays consistent (TSan),
 * and with every change an upgrade, no call is refused that the new policy allows. */
typedef struct {
    tg_limiter_t *l;
    _Atomic int stop;
    _Atomic int allowed;
} flip_t;

static void *flip_taker(void *arg)
{
    flip_t *f = arg;
    tg_rate_t r1 = {1000000, 60 * SEC}, r2 = {2000000, 60 * SEC};
    tg_limit_result_t res;
    for (int i = 0; i < 20000; i++) {
        assert_int_equal(tg_limiter_take(f->l, "k", 1, i % 2 ? &r1 : &r2, 1000000, 1, 5 * SEC, &res), 0);
        atomic_fetch_add(&f->allowed, res.allowed);
    }
    return NULL;
}

static void *flip_changer(void *arg)
{
    flip_t *f = arg;
    tg_rate_t r1 = {1000000, 60 * SEC}, r2 = {2000000, 60 * SEC};
    for (int i = 0; !atomic_load(&f->stop); i++)
        tg_limiter_repolicy(f->l, "k", 1, i % 2 ? &r1 : &r2, 1000000, 5 * SEC);
    return NULL;
}

static void test_plan_change_under_threads(void **state)
{
    (void)state;
    flip_t f = {tg_limiter_local_new(), 0, 0};
    pthread_t t[5];
    pthread_create(&t[4], NULL, flip_changer, &f);
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, flip_taker, &f);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    atomic_store(&f.stop, 1);
    pthread_join(t[4], NULL);
    /* 80,000 calls, a burst of 1,000,000 under both policies: all pass */
    assert_int_equal(atomic_load(&f.allowed), 80000);
    tg_limiter_free(f.l);
}

static void test_gcra_exact_under_threads(void **state)
{
    (void)state;
    shared_t s = {tg_limiter_local_new(), NULL, 0};
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, limiter_worker, &s);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    /* 16,000 attempts at one instant against a burst of 1,000: exactly 1,000 pass */
    assert_int_equal(atomic_load(&s.allowed), 1000);
    tg_limiter_free(s.l);
}

static void *quota_worker(void *arg)
{
    shared_t *s = arg;
    for (int i = 0; i < 500; i++) {
        char cust[16];
        snprintf(cust, sizeof(cust), "c%d", i % 3 == 0 ? 0 : 1);
        if (tg_quota_reserve(s->q, "cus", 100, "api_calls", 1, 1000, 1, NULL) == 0)
            atomic_fetch_add(&s->allowed, 1);
        tg_quota_add(s->q, cust, 100, "tokens", 2); /* contention on other counters too */
    }
    return NULL;
}

static void test_quota(void **state)
{
    (void)state;
    shared_t s = {NULL, tg_quota_new(), 0};
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, quota_worker, &s);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&s.allowed), 1000); /* 4,000 tries, 1,000 included, block */
    assert_int_equal(tg_quota_used(s.q, "cus", 100, "api_calls"), 1000);
    assert_int_equal(tg_quota_used(s.q, "c0", 100, "tokens") + tg_quota_used(s.q, "c1", 100, "tokens"), 8000);
    uint64_t used;
    assert_int_equal(tg_quota_reserve(s.q, "cus", 100, "api_calls", 1, 1000, 1, &used), TG_ELIMIT);
    assert_int_equal(used, 1000);
    tg_quota_release(s.q, "cus", 100, "api_calls", 1);
    assert_int_equal(tg_quota_reserve(s.q, "cus", 100, "api_calls", 1, 1000, 1, &used), 0);
    assert_int_equal(used, 1000);
    /* billing plans never block; the next period is a separate counter */
    assert_int_equal(tg_quota_reserve(s.q, "cus", 100, "api_calls", 5, 1000, 0, &used), 0);
    assert_int_equal(used, 1005);
    assert_int_equal(tg_quota_used(s.q, "cus", 200, "api_calls"), 0);
    tg_quota_release(s.q, "cus", 100, "api_calls", 5000); /* saturates at zero */
    assert_int_equal(tg_quota_used(s.q, "cus", 100, "api_calls"), 0);
    assert_int_equal(tg_quota_reserve(s.q, "cus", 100, "x", UINT64_MAX, TG_UNLIMITED, 1, &used), 0);
    assert_int_equal(tg_quota_reserve(s.q, "cus", 100, "x", 1, TG_UNLIMITED, 1, &used), TG_ELIMIT); /* overflow */
    tg_quota_free(s.q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_format),
        cmocka_unit_test(test_hmac_is_standard),
        cmocka_unit_test(test_prepared_hmac_matches_the_stored_one),
        cmocka_unit_test(test_gcra_basics),
        cmocka_unit_test(test_gcra_exact_under_threads),
        cmocka_unit_test(test_quota),
        cmocka_unit_test(test_plan_change_converts_state),
        cmocka_unit_test(test_gcra_convert),
        cmocka_unit_test(test_plan_change_under_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
