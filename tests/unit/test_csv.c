/* test_csv.c - the CSV writer (util/csv.c): RFC 4180 quoting, the formula-injection guard on
 * text (not on numbers), CRLF records, and the cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util/csv.h"

static void test_quoting(void **state)
{
    (void)state;
    tg_csv_t w;
    tg_csv_init(&w, 1 << 20);
    tg_csv_text(&w, "plain");
    tg_csv_text(&w, "a,b");
    tg_csv_text(&w, "say \"hi\"");
    tg_csv_text(&w, "two\r\nlines");
    tg_csv_text(&w, "");
    tg_csv_text(&w, "Zoë");
    tg_csv_end(&w);
    tg_csv_text(&w, "=HYPERLINK(\"http://x\")");
    tg_csv_text(&w, "+1");
    tg_csv_text(&w, "-2");
    tg_csv_text(&w, "@SUM(A1)");
    tg_csv_text(&w, "\tx");
    tg_csv_text(&w, "a=b");
    tg_csv_number(&w, "-12.50");
    tg_csv_end(&w);
    size_t n;
    char *s = tg_csv_take(&w, &n);
    assert_int_equal(tg_csv_status(&w), 0);
    assert_string_equal(s, "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\r\nlines\",,Zoë\r\n"
                           "\"'=HYPERLINK(\"\"http://x\"\")\",'+1,'-2,'@SUM(A1),'\tx,a=b,-12.50\r\n");
    assert_int_equal(n, strlen(s));
    free(s);
    tg_csv_free(&w);
}

static void test_cap(void **state)
{
    (void)state;
    tg_csv_t w;
    tg_csv_init(&w, 10);
    tg_csv_text(&w, "12345");
    tg_csv_end(&w);
    assert_int_equal(tg_csv_status(&w), 0);
    tg_csv_text(&w, "12345"); /* 7 + 6 > 10 */
    assert_int_equal(tg_csv_status(&w), TG_ERANGE);
    tg_csv_end(&w); /* nothing more is written */
    size_t n;
    char *s = tg_csv_take(&w, &n);
    assert_true(n <= 10);
    free(s);
    /* empty */
    tg_csv_init(&w, 10);
    s = tg_csv_take(&w, &n);
    assert_non_null(s);
    assert_int_equal(n, 0);
    assert_string_equal(s, "");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quoting),
        cmocka_unit_test(test_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
