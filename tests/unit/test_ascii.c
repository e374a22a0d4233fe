/* test_ascii.c - tg_ascii_lower against a byte-at-a-time reference: every byte value at every
 * position of a word and in the tail, every length up to 40 at every alignment, and that no byte
 * outside the range is touched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "util/ascii.h"

static char reference_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static void test_every_byte_at_every_position(void **state)
{
    (void)state;
    char buf[11], want[11];
    for (int b = 0; b < 256; b++)
        for (size_t pos = 0; pos < sizeof(buf); pos++) {
            for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (char)"AZaz@[`{\x80\xc1\xff"[i]; /* neighbours of the ranges, high bytes */
            buf[pos] = (char)b;
            for (size_t i = 0; i < sizeof(buf); i++)
                want[i] = reference_lower(buf[i]);
            tg_ascii_lower(buf, sizeof(buf)); /* one word and a three-byte tail */
            assert_memory_equal(buf, want, sizeof(buf));
        }
}

static void test_lengths_and_alignments_touch_only_their_bytes(void **state)
{
    (void)state;
    char buf[56], want[56];
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len <= 40; len++) {
            for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (char)('A' + i % 26);
            memcpy(want, buf, sizeof(buf));
            for (size_t i = off; i < off + len; i++)
                want[i] = reference_lower(want[i]);
            tg_ascii_lower(buf + off, len);
            assert_memory_equal(buf, want, sizeof(buf));
        }
}

static void test_header_names(void **state)
{
    (void)state;
    char name[] = "Content-Type X-RateLimit-Remaining WWW-Authenticate";
    tg_ascii_lower(name, strlen(name));
    assert_string_equal(name, "content-type x-ratelimit-remaining www-authenticate");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_byte_at_every_position),
        cmocka_unit_test(test_lengths_and_alignments_touch_only_their_bytes),
        cmocka_unit_test(test_header_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
