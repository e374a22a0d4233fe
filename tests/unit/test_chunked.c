/* test_chunked.c - tg_chunked_decode: valid bodies decoded in pieces of any size, pipelined bytes
 * kept, and every lenient form that picohttpparser's decoder accepts refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "http/chunked.h"

/* Decodes `in` fed `step` bytes at a time; returns the result of the last call and the data. */
static ssize_t decode(const char *in, size_t step, char *out, size_t *out_len, size_t *rest)
{
    tg_chunked_t d = {0};
    char buf[512];
    size_t n = strlen(in), off = 0, have = 0;
    ssize_t rc = -2;
    *out_len = 0;
    while (rc == -2 && off < n) {
        size_t take = n - off < step ? n - off : step;
        memcpy(buf + have, in + off, take);
        off += take;
        size_t len = have + take;
        rc = tg_chunked_decode(&d, buf, &len);
        memcpy(out + *out_len, buf, len);
        *out_len += len;
        have = 0;
        if (rc >= 0)
            *rest = (size_t)rc + (n - off);
    }
    return rc;
}

static void ok(const char *in, const char *want, size_t want_rest)
{
    for (size_t step = 1; step <= strlen(in); step++) {
        char out[512];
        size_t len, rest = 0;
        ssize_t rc = decode(in, step, out, &len, &rest);
        assert_true(rc >= 0);
        assert_int_equal(len, strlen(want));
        assert_memory_equal(out, want, len);
        assert_int_equal(rest, want_rest);
    }
}

static void bad(const char *in)
{
    for (size_t step = 1; step <= strlen(in); step++) {
        char out[512];
        size_t len, rest = 0;
        assert_int_equal(decode(in, step, out, &len, &rest), -1);
    }
}

static void test_valid_bodies(void **state)
{
    (void)state;
    ok("0\r\n\r\n", "", 0);
    ok("5\r\nhello\r\n1\r\n,\r\n6\r\n world\r\n0\r\n\r\n", "hello, world", 0);
    ok("A;ext=1;q=\"a b\"\r\n0123456789\r\n0\r\n\r\n", "0123456789", 0);
    ok("3 ;x\r\nabc\r\n000\r\nX-Sum: 42\r\nX-B: 1\r\n\r\n", "abc", 0);
    ok("3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "abc", 16);
}

static void test_lenient_forms_are_refused(void **state)
{
    (void)state;
    bad("0x10\r\n0123456789abcdef\r\n0\r\n\r\n"); /* phr: a last chunk of size 0 */
    bad(" 10\r\n");
    bad("+10\r\n");
    bad("-1\r\n");
    bad("\r\n");
    bad("1234567890123456\r\n");   /* 16 hex digits */
    bad("5\nhello\r\n0\r\n\r\n");  /* bare LF after the size */
    bad("5\r\nhello\n0\r\n\r\n");  /* bare LF after the data */
    bad("5\r\nhelloX\r\n0\r\n\r\n"); /* data longer than declared */
    bad("5\r\r\nhello\r\n");        /* two CRs */
    bad("5 x\r\nhello\r\n");        /* blanks then not ';' */
    bad("5;a\x01\r\nhello\r\n");   /* control character in an extension */
    bad("0\r\n X: folded\r\n\r\n"); /* obs-fold in the trailers */
    bad("0\r\nX: a\nY: b\r\n\r\n"); /* bare LF in the trailers */
    bad("0\r\n\n");
}

static void test_caps(void **state)
{
    (void)state;
    static char in[TG_CHUNKED_MAX_LINE + 64];
    memset(in, 0, sizeof(in));
    strcpy(in, "1;");
    memset(in + 2, 'x', TG_CHUNKED_MAX_LINE);
    tg_chunked_t d = {0};
    size_t len = strlen(in);
    assert_int_equal(tg_chunked_decode(&d, in, &len), -1);

    tg_chunked_t e = {0};
    char big[] = "fffffffffffffff\r\n";
    len = strlen(big);
    assert_int_equal(tg_chunked_decode(&e, big, &len), -2);
    assert_true(e.declared == UINT64_C(0xfffffffffffffff));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_bodies),
        cmocka_unit_test(test_lenient_forms_are_refused),
        cmocka_unit_test(test_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
