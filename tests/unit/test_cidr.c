/* test_cidr.c - ranges, matching (IPv4, IPv6, IPv4-mapped), and the client address behind
 * trusted proxies: right-most untrusted, never a header from an untrusted peer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "util/cidr.h"

static int match(const char *range, const char *addr)
{
    tg_cidr_t r, a;
    assert_int_equal(tg_cidr_parse(range, &r), 0);
    assert_int_equal(tg_cidr_parse_addr(addr, strlen(addr), &a), 0);
    return tg_cidr_list_match(&r, 1, &a);
}

static void test_parse(void **state)
{
    (void)state;
    tg_cidr_t r;
    assert_int_equal(tg_cidr_parse("10.0.0.0/8", &r), 0);
    assert_int_equal(r.prefix, 8);
    assert_int_equal(tg_cidr_parse("192.0.2.7", &r), 0);
    assert_int_equal(r.prefix, 32);
    assert_int_equal(tg_cidr_parse("::1", &r), 0);
    assert_int_equal(r.prefix, 128);
    assert_int_equal(tg_cidr_parse("2001:db8::/32", &r), 0);
    assert_int_equal(tg_cidr_parse("0.0.0.0/0", &r), 0);
    assert_int_equal(tg_cidr_parse("::ffff:10.0.0.0/104", &r), 0);
    assert_int_equal(r.v6, 0);
    assert_int_equal(r.prefix, 8);
    const char *bad[] = {"",         "10.0.0.0/",   "10.0.0.0/33", "10.0.0.1/8",   "2001:db8::/129", "10.0.0.0/8x",
                         "10.0.0/8", "example.com", "10.0.0.0/-1", "fe80::1%eth0", "10.0.0.0/0008"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(tg_cidr_parse(bad[i], &r), -1);
}

static void test_match(void **state)
{
    (void)state;
    assert_true(match("10.0.0.0/8", "10.255.1.2"));
    assert_false(match("10.0.0.0/8", "11.0.0.1"));
    assert_true(match("192.168.1.0/25", "192.168.1.127"));
    assert_false(match("192.168.1.0/25", "192.168.1.128"));
    assert_true(match("0.0.0.0/0", "203.0.113.9"));
    assert_false(match("0.0.0.0/0", "2001:db8::1")); /* families never mix */
    assert_true(match("2001:db8::/32", "2001:db8:ffff::1"));
    assert_false(match("2001:db8::/33", "2001:db8:8000::1"));
    assert_true(match("127.0.0.1", "::ffff:127.0.0.1")); /* a dual-stack socket's IPv4 peer */
    assert_true(match("::1", "::1"));
    assert_false(match("::1", "::2"));
}

static void client(const char *peer, const char *trusted, const char *xff, const char *fwd, const char *want,
                   int want_from_header)
{
    tg_cidr_t t[4];
    size_t n = 0;
    char buf[128], *save = NULL;
    strcpy(buf, trusted);
    for (char *tok = strtok_r(buf, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save))
        assert_int_equal(tg_cidr_parse(tok, &t[n++]), 0);
    char out[TG_CIDR_TEXT_MAX];
    int fh = tg_client_addr(peer, t, n, xff, xff != NULL ? strlen(xff) : 0, fwd, fwd != NULL ? strlen(fwd) : 0, out,
                            sizeof(out));
    assert_string_equal(out, want);
    assert_int_equal(fh, want_from_header);
}

static void test_client_address(void **state)
{
    (void)state;
    /* an untrusted peer's headers are ignored */
    client("203.0.113.5", "10.0.0.0/8", "1.2.3.4", NULL, "203.0.113.5", 0);
    client("203.0.113.5", "", "1.2.3.4", NULL, "203.0.113.5", 0);
    /* a trusted proxy: the right-most address that is not a trusted proxy */
    client("10.0.0.2", "10.0.0.0/8", "1.2.3.4", NULL, "1.2.3.4", 1);
    client("10.0.0.2", "10.0.0.0/8", "6.6.6.6, 1.2.3.4", NULL, "1.2.3.4", 1); /* a client forging the left */
    client("10.0.0.2", "10.0.0.0/8", "6.6.6.6, 1.2.3.4, 10.1.1.1", NULL, "1.2.3.4", 1);
    client("10.0.0.2", "10.0.0.0/8", "10.9.9.9,10.1.1.1", NULL, "10.9.9.9", 1); /* all trusted: the left-most */
    client("10.0.0.2", "10.0.0.0/8", "garbage, 10.1.1.1", NULL, "10.1.1.1", 1); /* stops at what is not an address */
    client("10.0.0.2", "10.0.0.0/8", "", NULL, "10.0.0.2", 0);
    client("::1", "::1/128", " 2001:db8::7 ", NULL, "2001:db8::7", 1);
    client("127.0.0.1", "127.0.0.1", "192.0.2.1", NULL, "192.0.2.1", 1);
    /* Forwarded (RFC 7239), used only without X-Forwarded-For */
    client("10.0.0.2", "10.0.0.0/8", NULL, "for=192.0.2.60;proto=https;by=203.0.113.43", "192.0.2.60", 1);
    client("10.0.0.2", "10.0.0.0/8", NULL, "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17", 1);
    client("10.0.0.2", "10.0.0.0/8", NULL, "for=192.0.2.43:47011, for=10.0.0.9", "192.0.2.43", 1);
    client("10.0.0.2", "10.0.0.0/8", NULL, "for=unknown", "10.0.0.2", 0);
    client("10.0.0.2", "10.0.0.0/8", "1.2.3.4", "for=5.6.7.8", "1.2.3.4", 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_client_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
