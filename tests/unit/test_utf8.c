/* test_utf8.c - tg_utf8_scrub: valid text unchanged, bad bytes replaced, a cut character dropped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "util/utf8.h"

static void scrubbed(const char *in, const char *want)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", in);
    tg_utf8_scrub(buf);
    assert_string_equal(buf, want);
}

static void test_valid_text_is_unchanged(void **state)
{
    (void)state;
    scrubbed("", "");
    scrubbed("No such route: /v1/x", "No such route: /v1/x");
    scrubbed("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
             "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");                      /* 2, 3, 4 bytes */
    scrubbed("\xed\x9f\xbf \xf4\x8f\xbf\xbf", "\xed\x9f\xbf \xf4\x8f\xbf\xbf"); /* U+D7FF, U+10FFFF */
}

static void test_bad_bytes_become_question_marks(void **state)
{
    (void)state;
    scrubbed("/v1/admin/customer\x97\xf5/x", "/v1/admin/customer?"
                                             "?/x"); /* what the fuzzer sent */
    scrubbed("\xc0\xaf", "??");                      /* overlong '/' */
    scrubbed("\xe0\x80\xaf", "???");                 /* overlong, 3 bytes */
    scrubbed("\xed\xa0\x80", "???");                 /* a surrogate */
    scrubbed("\xf4\x90\x80\x80", "????");            /* past U+10FFFF */
    scrubbed("\xff\xfe", "??");
    scrubbed("a\xc3(b", "a?(b"); /* a lead byte without its continuation */
}

static void test_a_cut_character_is_dropped(void **state)
{
    (void)state;
    scrubbed("plan caf\xc3", "plan caf");
    scrubbed("euro \xe2\x82", "euro ");
    scrubbed("smile \xf0\x9f\x98", "smile ");
    scrubbed("bad \xed\xa0", "bad ??"); /* not a cut character: a surrogate can never complete */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_text_is_unchanged),
        cmocka_unit_test(test_bad_bytes_become_question_marks),
        cmocka_unit_test(test_a_cut_character_is_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
