/* test_request_id.c - generated X-Request-Id values (http/request_id.h): their form, no repeat
 * within a thread's stream (drawn in blocks, with access-log sampling draws in between) nor
 * between threads, and client values kept or refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "http/request_id.h"

#define DRAWS 100000
#define THREADS 4
#define THREAD_DRAWS 20000

typedef char rid_t[TG_REQUEST_ID_NEW_LEN + 1];

static int compare_ids(const void *a, const void *b)
{
    return memcmp(a, b, TG_REQUEST_ID_NEW_LEN);
}

/* No two of ids[0..n) are equal. */
static void all_distinct(rid_t *ids, size_t n)
{
    qsort(ids, n, sizeof(*ids), compare_ids);
    for (size_t i = 1; i < n; i++)
        assert_true(memcmp(ids[i - 1], ids[i], TG_REQUEST_ID_NEW_LEN) != 0);
}

static void is_well_formed(const char *id, size_t len)
{
    assert_int_equal(len, TG_REQUEST_ID_NEW_LEN);
    assert_int_equal(strlen(id), TG_REQUEST_ID_NEW_LEN);
    for (size_t i = 0; i < len; i++)
        assert_non_null(strchr("0123456789abcdef", id[i]));
    assert_true(tg_request_id_ok(id, len)); /* one of ours is kept when a client sends it back */
}

static void test_ids_are_32_lowercase_hex_digits(void **state)
{
    (void)state;
    rid_t id;
    memset(id, '#', sizeof(id));
    is_well_formed(id, tg_request_id_new(id));
}

/* 100,000 ids, each followed by 0 to 2 sampling draws (4 bytes each) so that blocks end at every
 * offset: none repeats, and every hex digit shows in every position (a stuck nibble would not). */
static void test_no_repeat_over_100000_draws(void **state)
{
    (void)state;
    rid_t *ids = malloc(sizeof(*ids) * DRAWS);
    assert_non_null(ids);
    unsigned seen[TG_REQUEST_ID_NEW_LEN] = {0}; /* bit d: digit d was seen at that position */
    for (size_t i = 0; i < DRAWS; i++) {
        is_well_formed(ids[i], tg_request_id_new(ids[i]));
        for (size_t k = 0; k < TG_REQUEST_ID_NEW_LEN; k++) {
            char c = ids[i][k];
            seen[k] |= 1u << (c <= '9' ? c - '0' : c - 'a' + 10);
        }
        for (size_t k = 0; k < i % 3; k++)
            (void)tg_request_id_random_u32();
    }
    for (size_t k = 0; k < TG_REQUEST_ID_NEW_LEN; k++)
        assert_int_equal(seen[k], 0xffffu);
    all_distinct(ids, DRAWS);
    free(ids);
}

static void *draw_ids(void *arg)
{
    rid_t *ids = arg;
    for (size_t i = 0; i < THREAD_DRAWS; i++)
        tg_request_id_new(ids[i]);
    return NULL;
}

/* Each thread has its own key: the threads' ids, together, are all distinct. */
static void test_threads_draw_different_ids(void **state)
{
    (void)state;
    rid_t *ids = malloc(sizeof(*ids) * THREADS * THREAD_DRAWS);
    assert_non_null(ids);
    pthread_t t[THREADS];
    for (size_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, draw_ids, ids + i * THREAD_DRAWS), 0);
    for (size_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    for (size_t i = 0; i < THREADS * THREAD_DRAWS; i++)
        is_well_formed(ids[i], strlen(ids[i]));
    all_distinct(ids, THREADS * THREAD_DRAWS);
    free(ids);
}

/* Sampling draws: both halves of the range come up (a constant or a byte stuck at 0 would not). */
static void test_random_u32_spreads(void **state)
{
    (void)state;
    uint32_t or_all = 0, and_all = UINT32_MAX;
    for (int i = 0; i < 10000; i++) {
        uint32_t v = tg_request_id_random_u32();
        or_all |= v;
        and_all &= v;
    }
    assert_int_equal(or_all, UINT32_MAX);
    assert_int_equal(and_all, 0);
}

static void test_client_ids_kept_or_refused(void **state)
{
    (void)state;
    assert_true(tg_request_id_ok("f81d4fae-7dec-11d0-a765-00a0c91e6bf6", 36));
    assert_true(tg_request_id_ok("trace:span.1_A", 14));
    assert_false(tg_request_id_ok("", 0));
    assert_false(tg_request_id_ok("a b", 3));
    assert_false(tg_request_id_ok("a\r\nx-evil: 1", 13));
    char longest[TG_REQUEST_ID_MAX + 1];
    memset(longest, 'a', sizeof(longest));
    assert_true(tg_request_id_ok(longest, TG_REQUEST_ID_MAX));
    assert_false(tg_request_id_ok(longest, TG_REQUEST_ID_MAX + 1));
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_are_32_lowercase_hex_digits), cmocka_unit_test(test_no_repeat_over_100000_draws),
        cmocka_unit_test(test_threads_draw_different_ids),      cmocka_unit_test(test_random_u32_spreads),
        cmocka_unit_test(test_client_ids_kept_or_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
