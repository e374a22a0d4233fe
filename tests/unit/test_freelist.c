/* test_freelist.c - util/freelist.h: an object put back is the next one got, the list keeps at
 * most max, a drained list frees what comes back later, and (under AddressSanitizer) an object on
 * the list is poisoned as freed memory is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "util/freelist.h"

typedef struct {
    char bytes[200];
} obj_t;

static void test_a_put_object_is_reused_last_in_first_out(void **state)
{
    (void)state;
    tg_freelist_t fl = tg_freelist_init(sizeof(obj_t), 4);
    obj_t *a = tg_freelist_get(&fl), *b = tg_freelist_get(&fl);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    assert_int_equal(fl.count, 0);
    memset(a, 'a', sizeof(*a)); /* the whole size is usable */
    memset(b, 'b', sizeof(*b));
    tg_freelist_put(&fl, a);
    tg_freelist_put(&fl, b);
    assert_int_equal(fl.count, 2);
    assert_ptr_equal(tg_freelist_get(&fl), b);
    assert_ptr_equal(tg_freelist_get(&fl), a);
    assert_int_equal(fl.count, 0);
    obj_t *c = tg_freelist_get(&fl); /* empty: a new one */
    assert_non_null(c);
    assert_ptr_not_equal(c, a);
    assert_ptr_not_equal(c, b);
    tg_freelist_put(&fl, NULL); /* ignored */
    assert_int_equal(fl.count, 0);
    tg_freelist_put(&fl, a);
    tg_freelist_put(&fl, b);
    tg_freelist_put(&fl, c);
    tg_freelist_drain(&fl);
    assert_int_equal(fl.count, 0);
    assert_null(fl.head);
}

static void test_keeps_at_most_max(void **state)
{
    (void)state;
    enum { MAX = 3, MANY = 8 };
    tg_freelist_t fl = tg_freelist_init(sizeof(obj_t), MAX);
    void *p[MANY];
    for (int i = 0; i < MANY; i++)
        assert_non_null(p[i] = tg_freelist_get(&fl));
    for (int i = 0; i < MANY; i++) {
        tg_freelist_put(&fl, p[i]); /* past MAX: freed (LeakSanitizer would say otherwise) */
        assert_int_equal(fl.count, (size_t)(i + 1 < MAX ? i + 1 : MAX));
    }
    /* the first MAX put are the ones kept */
    for (int i = MAX - 1; i >= 0; i--)
        assert_ptr_equal(tg_freelist_get(&fl), p[i]);
    for (int i = 0; i < MAX; i++)
        tg_freelist_put(&fl, p[i]);
    tg_freelist_drain(&fl);
}

static void test_after_a_drain_puts_free(void **state)
{
    (void)state;
    tg_freelist_t fl = tg_freelist_init(sizeof(obj_t), 4);
    void *out = tg_freelist_get(&fl), *kept = tg_freelist_get(&fl);
    tg_freelist_put(&fl, kept);
    tg_freelist_drain(&fl); /* frees kept */
    assert_int_equal(fl.count, 0);
    assert_int_equal(fl.max, 0);
    tg_freelist_put(&fl, out); /* an object that was out at the drain comes back: freed */
    assert_int_equal(fl.count, 0);
    assert_null(fl.head);
}

static void test_tiny_objects_hold_the_link(void **state)
{
    (void)state;
    tg_freelist_t fl = tg_freelist_init(1, 2);
    assert_int_equal(fl.size, sizeof(void *));
    void *a = tg_freelist_get(&fl), *b = tg_freelist_get(&fl);
    tg_freelist_put(&fl, a);
    tg_freelist_put(&fl, b);
    assert_ptr_equal(tg_freelist_get(&fl), b);
    assert_ptr_equal(tg_freelist_get(&fl), a);
    free(a);
    free(b);
}

#if defined(__SANITIZE_ADDRESS__)
/* A use of an object after its put is reported like a use after free. */
static void test_an_object_on_the_list_is_poisoned(void **state)
{
    (void)state;
    tg_freelist_t fl = tg_freelist_init(sizeof(obj_t), 2);
    obj_t *a = tg_freelist_get(&fl);
    const char *last = (const char *)a + sizeof(*a) - 1;
    memset(a, 0, sizeof(*a));
    assert_false(__asan_address_is_poisoned(last));
    tg_freelist_put(&fl, a);
    assert_true(__asan_address_is_poisoned(a));
    assert_true(__asan_address_is_poisoned(last));
    assert_ptr_equal(tg_freelist_get(&fl), a);
    assert_false(__asan_address_is_poisoned(a));
    assert_false(__asan_address_is_poisoned(last));
    free(a);
    tg_freelist_drain(&fl);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_put_object_is_reused_last_in_first_out),
        cmocka_unit_test(test_keeps_at_most_max),
        cmocka_unit_test(test_after_a_drain_puts_free),
        cmocka_unit_test(test_tiny_objects_hold_the_link),
#if defined(__SANITIZE_ADDRESS__)
        cmocka_unit_test(test_an_object_on_the_list_is_poisoned),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
