/* test_password_policy.c - each rule refuses with a message naming it; good passwords pass. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "admin/password_policy.h"

static void refused(const char *pw, const char *email, const char *needle)
{
    tg_err_t err = {0};
    assert_int_equal(tg_password_check(pw, email, &err), TG_EINVAL);
    assert_non_null(strstr(err.msg, needle));
}

static void test_rules(void **state)
{
    (void)state;
    tg_err_t err = {0};
    assert_int_equal(tg_password_check("a long enough password", "dev@example.com", &err), 0);
    assert_int_equal(
        tg_password_check("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
                          "dev@example.com", &err),
        0); /* 10 characters of two bytes */
    refused("short", "dev@example.com", "at least 10 characters");
    refused("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", "dev@example.com",
            "at least 10 characters"); /* 10 bytes, 5 chars */
    refused("          ", "dev@example.com", "whitespace");
    refused(" \t \t \n    ", "dev@example.com", "whitespace");
    refused("Dev@Example.com", "dev@example.com", "email");
    refused("longlocalpart", "LongLocalPart@example.com", "email");
    refused("Password123", "dev@example.com", "common");
    refused("QWERTYUIOP", "dev@example.com", "common");
    refused("1234567890", "dev@example.com", "common");
    char big[TG_PASSWORD_MAX_BYTES + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    refused(big, "dev@example.com", "at most");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_rules)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
