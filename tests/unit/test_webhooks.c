/* test_webhooks.c - Standard Webhooks signatures (notify/webhook_sign.h) against the
 * specification's published example, secrets, and the SSRF guard's URL and address rules
 * (notify/webhook_url.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <string.h>

#include "notify/webhook_sign.h"
#include "notify/webhook_url.h"
#include "store/store_notify.h"

/* The example of the Standard Webhooks specification (and Svix's documentation). */
static void test_sign_reference_vector(void **state)
{
    (void)state;
    const char *body = "{\"test\": 2432232314}";
    char sig[TG_WEBHOOK_SIGNATURE_MAX];
    tg_err_t err = {0};
    assert_int_equal(tg_webhook_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                                     1614265330, body, strlen(body), sig, &err),
                     0);
    assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    /* one byte of the body, the id or the time changes it */
    assert_int_equal(tg_webhook_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                                     1614265331, body, strlen(body), sig, &err),
                     0);
    assert_string_not_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

static void test_secrets(void **state)
{
    (void)state;
    char s1[TG_WEBHOOK_SECRET_MAX], s2[TG_WEBHOOK_SECRET_MAX];
    tg_webhook_secret_new(s1, sizeof(s1));
    tg_webhook_secret_new(s2, sizeof(s2));
    assert_memory_equal(s1, "whsec_", 6);
    assert_int_equal(strlen(s1), 6 + 32);
    assert_string_not_equal(s1, s2);
    uint8_t key[TG_WEBHOOK_KEY_MAX];
    size_t len;
    tg_err_t err = {0};
    assert_int_equal(tg_webhook_secret_key(s1, key, &len, &err), 0);
    assert_int_equal(len, 24);
    assert_int_equal(tg_webhook_secret_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key, &len, &err), TG_EINVAL);
    assert_int_equal(tg_webhook_secret_key("whsec_c2hvcnQ=", key, &len, &err), TG_EINVAL); /* 5 bytes */
    assert_int_equal(tg_webhook_secret_key("whsec_!!!", key, &len, &err), TG_EINVAL);
    char sig[TG_WEBHOOK_SIGNATURE_MAX];
    assert_int_equal(tg_webhook_sign("whsec_c2hvcnQ=", "m", 1, "", 0, sig, &err), TG_EINVAL);
}

static void test_url_rules(void **state)
{
    (void)state;
    tg_err_t err = {0};
    tg_webhook_target_t t;
    assert_int_equal(tg_webhook_url_check("https://hooks.example.com/x?y=1", 0, &t, &err), 0);
    assert_string_equal(t.host, "hooks.example.com");
    assert_int_equal(t.port, 443);
    assert_true(t.https);
    assert_int_equal(tg_webhook_url_check("https://[2001:db8::1]:8443/x", 0, &t, &err), 0);
    assert_string_equal(t.host, "2001:db8::1");
    assert_int_equal(t.port, 8443);
    assert_int_equal(tg_webhook_url_check("http://hooks.example.com/", 0, &t, &err), TG_EINVAL);
    assert_int_equal(tg_webhook_url_check("http://hooks.example.com/", 1, &t, &err), 0);
    assert_int_equal(t.port, 80);
    assert_int_equal(tg_webhook_url_check("ftp://hooks.example.com/", 1, &t, &err), TG_EINVAL);
    assert_int_equal(tg_webhook_url_check("file:///etc/passwd", 1, &t, &err), TG_EINVAL);
    assert_int_equal(tg_webhook_url_check("https://user:pw@hooks.example.com/", 0, &t, &err), TG_EINVAL);
    assert_int_equal(tg_webhook_url_check("https://user@hooks.example.com/", 0, &t, &err), TG_EINVAL);
    assert_int_equal(tg_webhook_url_check("https://hooks.example.com/\r\nX-Injected: 1", 0, &t, &err), TG_EINVAL);
    assert_int_equal(tg_webhook_url_check("https://hooks.example.com/a b", 0, &t, &err), TG_EINVAL);
    assert_int_equal(tg_webhook_url_check("https://[fe80::1%25eth0]/", 0, &t, &err), TG_EINVAL);
    assert_int_equal(tg_webhook_url_check("https://", 0, &t, &err), TG_EINVAL);
    assert_int_equal(tg_webhook_url_check("", 0, &t, &err), TG_EINVAL);
    char big[TG_WEBHOOK_URL_MAX + 8];
    memset(big, 'a', sizeof(big));
    memcpy(big, "https://x.example/", 18);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(tg_webhook_url_check(big, 0, &t, &err), TG_EINVAL);
    assert_non_null(strstr(err.msg, "longer"));
}

static void test_addresses(void **state)
{
    (void)state;
    static const char *const refused[] = {
        "127.0.0.1",
        "127.255.0.9",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::7f00:1",
        "2001:db8::1",
        "198.18.0.1",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        if (tg_webhook_addr_allowed(refused[i], NULL, 0))
            fail_msg("%s was allowed", refused[i]);
    }
    static const char *const allowed[] = {"93.184.216.34",    "8.8.8.8",    "2606:4700::1111", "::ffff:93.184.216.34",
                                          "64:ff9b::808:808", "172.32.0.1", "100.128.0.1"};
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        if (!tg_webhook_addr_allowed(allowed[i], NULL, 0))
            fail_msg("%s was refused", allowed[i]);
    }
    tg_cidr_t allow[2];
    assert_int_equal(tg_cidr_parse("127.0.0.0/8", &allow[0]), 0);
    assert_int_equal(tg_cidr_parse("::1/128", &allow[1]), 0);
    assert_true(tg_webhook_addr_allowed("127.0.0.1", allow, 2));
    assert_true(tg_webhook_addr_allowed("::ffff:127.0.0.1", allow, 2));
    assert_true(tg_webhook_addr_allowed("::1", allow, 2));
    assert_false(tg_webhook_addr_allowed("10.0.0.1", allow, 2));
    assert_false(tg_webhook_addr_allowed("not an address", allow, 2));
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_reference_vector),
        cmocka_unit_test(test_secrets),
        cmocka_unit_test(test_url_rules),
        cmocka_unit_test(test_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
