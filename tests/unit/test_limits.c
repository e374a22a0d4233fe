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
        cmocka_unit_test(test_key_format), cmocka_unit_test(test_hmac_is_standard),
        cmocka_unit_test(test_gcra_basics), cmocka_unit_test(test_gcra_exact_under_threads),
        cmocka_unit_test(test_quota),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
