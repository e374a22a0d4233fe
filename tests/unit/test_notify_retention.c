/* test_notify_retention.c - notifications.retention_days (notify/retention.h): its default, its
 * bounds and their FILE:LINE errors. What pruning deletes is test_store_retention.c's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "config/config.h"
#include "notify/retention.h"

#define BASE                                                                                                           \
    "server: {listen: \"127.0.0.1:8080\", admin_listen: \"127.0.0.1:8081\"}\n"                                         \
    "upstream: {url: \"http://127.0.0.1:9000\"}\n"                                                                     \
    "storage: {database: \"sqlite:/tmp/x.db\"}\n"                                                                      \
    "admin: {token: \"0123456789abcdef0123\"}\n"                                                                       \
    "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"

static char errbuf[8192];

static int days_of(const char *yaml)
{
    tg_config_t *cfg = NULL;
    if (tg_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, errbuf, sizeof(errbuf)) != 0)
        fail_msg("unexpected config error:\n%s", errbuf);
    int d = cfg->notifications.retention_days;
    tg_config_free(cfg);
    return d;
}

static void retention_days(void **state)
{
    (void)state;
    assert_int_equal(days_of(BASE "plans: {p: {}}\n"), 30);
    assert_int_equal(days_of(BASE "notifications: {retention_days: 0}\nplans: {p: {}}\n"), 0);
    assert_int_equal(days_of(BASE "notifications: {retention_days: 7}\nplans: {p: {}}\n"), 7);
    assert_int_equal(days_of(BASE "notifications: {retention_days: 3650}\nplans: {p: {}}\n"), 3650);

    const char *y = BASE "notifications:\n"
                         "  timeout_ms: 1000\n"
                         "  retention_days: 6\n"
                         "plans: {p: {}}\n";
    tg_config_t *cfg = NULL;
    assert_int_equal(tg_config_load_string("t.yaml", y, strlen(y), &cfg, errbuf, sizeof(errbuf)), TG_ECONFIG);
    assert_null(cfg);
    assert_non_null(strstr(errbuf, "t.yaml:8: notifications.retention_days: 6 is below 7 days (0 keeps everything)"));
    y = BASE "notifications: {retention_days: 3651}\nplans: {p: {}}\n";
    assert_int_equal(tg_config_load_string("t.yaml", y, strlen(y), &cfg, errbuf, sizeof(errbuf)), TG_ECONFIG);
    assert_non_null(
        strstr(errbuf, "t.yaml:6: notifications.retention_days: \"3651\" is not a whole number from 0 to 3650"));
    y = BASE "notifications: {retention_days: -1}\nplans: {p: {}}\n";
    assert_int_equal(tg_config_load_string("t.yaml", y, strlen(y), &cfg, errbuf, sizeof(errbuf)), TG_ECONFIG);
    assert_non_null(strstr(errbuf, "t.yaml:6: notifications.retention_days: \"-1\" is not a whole number"));
    y = BASE "notifications: {retention_days: 30d}\nplans: {p: {}}\n";
    assert_int_equal(tg_config_load_string("t.yaml", y, strlen(y), &cfg, errbuf, sizeof(errbuf)), TG_ECONFIG);
    assert_non_null(strstr(errbuf, "t.yaml:6: notifications.retention_days: \"30d\" is not a whole number"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(retention_days),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
