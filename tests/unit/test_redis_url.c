/* test_redis_url.c - cluster.redis URLs (util/redis_url.h): what parses, with which defaults,
 * and that a refusal never quotes the password. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "util/redis_url.h"

static void test_parses(void **state)
{
    (void)state;
    tg_redis_url_t u;
    char why[160];
    assert_int_equal(tg_redis_url_parse("redis://127.0.0.1", &u, why, sizeof(why)), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.password, "");
    assert_int_equal(tg_redis_url_parse("redis://cache.internal:6380/3", &u, why, sizeof(why)), 0);
    assert_string_equal(u.host, "cache.internal");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 3);
    assert_int_equal(tg_redis_url_parse("redis://:p@ss@10.0.0.1/", &u, why, sizeof(why)), 0);
    assert_string_equal(u.password, "p@ss"); /* the last @ ends the credentials */
    assert_string_equal(u.user, "");
    assert_string_equal(u.host, "10.0.0.1");
    assert_int_equal(tg_redis_url_parse("redis://gw:secret@[::1]:7000/15", &u, why, sizeof(why)), 0);
    assert_string_equal(u.user, "gw");
    assert_string_equal(u.password, "secret");
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 15);
}

static void test_refuses(void **state)
{
    (void)state;
    tg_redis_url_t u;
    char why[160];
    static const char *const bad[] = {"rediss://127.0.0.1",
                                      "http://127.0.0.1:6379",
                                      "redis://",
                                      "redis://:6379",
                                      "redis://h:0",
                                      "redis://h:65536",
                                      "redis://h:x",
                                      "redis://h/16",
                                      "redis://h/a",
                                      "redis://[::1",
                                      "redis://[::1]x",
                                      "redis://h o:1",
                                      "redis://:topsecret@h:99999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        assert_int_equal(tg_redis_url_parse(bad[i], &u, why, sizeof(why)), -1);
        assert_true(why[0] != '\0');
        assert_null(strstr(why, "topsecret"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_parses), cmocka_unit_test(test_refuses)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
