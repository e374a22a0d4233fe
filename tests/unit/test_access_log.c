/* test_access_log.c - the access log's line: valid JSON (checked with jansson) whatever the
 * client's method and path hold, cut to the cap rather than overflowing it; and the writer:
 * lines appended from threads all reach the file, in one piece each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/access_log.h"

static json_t *parse_line(const char *buf, size_t n)
{
    assert_true(n > 0 && buf[n - 1] == '\n');
    assert_null(memchr(buf, '\n', n - 1)); /* one line */
    json_error_t e;
    json_t *j = json_loadb(buf, n - 1, 0, &e);
    if (j == NULL)
        fail_msg("not JSON (%s): %.*s", e.text, (int)n, buf);
    return j;
}

static void test_escapes_everything(void **state)
{
    (void)state;
    char path[256];
    size_t pl = 0;
    for (int c = 1; c < 0x20; c++)
        path[pl++] = (char)c;
    const char tail[] = "\"\\\x7f\xff\xc3\xa9\xed\xa0\x80/end"; /* quote, backslash, DEL, bad byte, é, a surrogate */
    memcpy(path + pl, tail, sizeof(tail) - 1);
    pl += sizeof(tail) - 1;
    const char *metrics[] = {"api_calls", "tokens"};
    const uint64_t counts[] = {1, 1234};
    tg_access_record_t r = {.time_ns = INT64_C(1790000000123456789),
                            .request_id = "abc",
                            .client = "127.0.0.1",
                            .method = "G\"ET",
                            .method_len = 4,
                            .path = path,
                            .path_len = pl,
                            .decision = "allowed",
                            .status = 200,
                            .upstream_status = -1,
                            .upstream_ns = -1,
                            .total_ns = 1234567,
                            .bytes_in = 5,
                            .bytes_out = 6,
                            .nunits = 2,
                            .unit_metrics = metrics,
                            .unit_counts = counts};
    char buf[4096];
    size_t n = tg_access_log_format(&r, buf, sizeof(buf));
    json_t *j = parse_line(buf, n);
    assert_string_equal(json_string_value(json_object_get(j, "time")), "2026-09-21T14:13:20.123Z");
    assert_string_equal(json_string_value(json_object_get(j, "method")), "G\"ET");
    const char *p = json_string_value(json_object_get(j, "path"));
    assert_non_null(p);
    for (int c = 1; c < 0x20; c++)
        assert_int_equal((unsigned char)p[c - 1], c);
    assert_non_null(strstr(p, "\"\\\x7f\xc3\xbf\xc3\xa9")); /* 0xff read as U+00FF, é kept */
    assert_true(json_is_null(json_object_get(j, "upstream_status")));
    assert_true(json_is_null(json_object_get(j, "upstream_ms")));
    assert_true(json_is_null(json_object_get(j, "customer")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "units"), "tokens")), 1234);
    assert_true(json_real_value(json_object_get(j, "total_ms")) > 1.2339 &&
                json_real_value(json_object_get(j, "total_ms")) < 1.2341); /* 1234567 ns: 1.234 ms, to the microsecond */
    assert_null(json_object_get(j, "via")); /* a proxied call's line has no decision API fields */
    assert_null(json_object_get(j, "reservation"));
    json_decref(j);
}

/* The decision API's lines: "via" and "reservation" (null when none), nulls where the line has
 * no call of its own (a settlement: no method, path, request id or client). */
static void test_decision_fields(void **state)
{
    (void)state;
    tg_access_record_t r = {.time_ns = 1,
                            .decision = "allowed",
                            .via = "settlement",
                            .reservation = "rsv_00112233445566778899aabbccddeeff",
                            .status = 201,
                            .upstream_status = -1,
                            .upstream_ns = -1,
                            .total_ns = -1};
    char buf[4096];
    size_t n = tg_access_log_format(&r, buf, sizeof(buf));
    json_t *j = parse_line(buf, n);
    assert_string_equal(json_string_value(json_object_get(j, "via")), "settlement");
    assert_string_equal(json_string_value(json_object_get(j, "reservation")), "rsv_00112233445566778899aabbccddeeff");
    assert_true(json_is_null(json_object_get(j, "method")));
    assert_true(json_is_null(json_object_get(j, "path")));
    assert_true(json_is_null(json_object_get(j, "request_id")));
    assert_true(json_is_null(json_object_get(j, "total_ms")));
    json_decref(j);
    r.via = "check";
    r.reservation = NULL;
    n = tg_access_log_format(&r, buf, sizeof(buf));
    j = parse_line(buf, n);
    assert_string_equal(json_string_value(json_object_get(j, "via")), "check");
    assert_true(json_is_null(json_object_get(j, "reservation")));
    json_decref(j);
}

static void test_long_path_is_cut(void **state)
{
    (void)state;
    size_t pl = 100000;
    char *path = malloc(pl);
    assert_non_null(path);
    memset(path, '"', pl); /* each escapes to two bytes */
    tg_access_record_t r = {.request_id = "x", .method = "GET", .method_len = 3, .path = path, .path_len = pl,
                            .status = 200, .upstream_status = 200, .upstream_ns = 1, .total_ns = 2};
    char buf[TG_ACCESS_LOG_LINE_MAX];
    size_t n = tg_access_log_format(&r, buf, sizeof(buf));
    assert_true(n < sizeof(buf));
    json_t *j = parse_line(buf, n);
    assert_true(strlen(json_string_value(json_object_get(j, "path"))) > 100);
    json_decref(j);
    free(path);
}

typedef struct {
    tg_access_log_t *log;
    int id;
} writer_arg_t;

static void *append_many(void *p)
{
    writer_arg_t *a = p;
    char line[64];
    for (int i = 0; i < 2000; i++) {
        int n = snprintf(line, sizeof(line), "{\"t\":%d,\"i\":%d}\n", a->id, i);
        while (tg_access_log_append(a->log, line, (size_t)n) != 0)
            usleep(100); /* the buffer is full: let the writer catch up (the test wants every line) */
    }
    return NULL;
}

static void test_writer_threads(void **state)
{
    (void)state;
    char path[] = "/tmp/tg-access-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    tg_access_log_t *log;
    tg_err_t err;
    assert_int_equal(tg_access_log_open(path, 1000000, &log, &err), 0);
    pthread_t t[4];
    writer_arg_t a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (writer_arg_t){log, i};
        pthread_create(&t[i], NULL, append_many, &a[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    tg_access_log_close(log);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[128];
    int seen[4] = {0};
    while (fgets(line, sizeof(line), f) != NULL) {
        json_error_t e;
        json_t *j = json_loads(line, 0, &e);
        assert_non_null(j);
        int id = (int)json_integer_value(json_object_get(j, "t")), i = (int)json_integer_value(json_object_get(j, "i"));
        assert_int_equal(i, seen[id]); /* each thread's lines in its order */
        seen[id]++;
        json_decref(j);
    }
    fclose(f);
    for (int i = 0; i < 4; i++)
        assert_int_equal(seen[i], 2000);
    unlink(path);
}

/* Reads path's lines into seen[thread]: each thread's lines continue its sequence from seen[]
 * on (none lost, none twice, none cut); a line {"marker":1} sets *marker. */
static void read_lines(const char *path, int seen[4], int *marker)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[128];
    while (fgets(line, sizeof(line), f) != NULL) {
        json_error_t e;
        json_t *j = json_loads(line, 0, &e);
        assert_non_null(j);
        if (json_object_get(j, "marker") != NULL) {
            *marker = 1;
        } else {
            int id = (int)json_integer_value(json_object_get(j, "t"));
            assert_int_equal((int)json_integer_value(json_object_get(j, "i")), seen[id]);
            seen[id]++;
        }
        json_decref(j);
    }
    fclose(f);
}

/* A reload's new path while four threads append: every line is whole in the old file or the
 * new one, each thread's lines in the old file come before those in the new one, and a line
 * appended after configure returned is in the new file. */
static void test_configure_switches_at_a_cut(void **state)
{
    (void)state;
    char p1[] = "/tmp/tg-access-log-XXXXXX", p2[] = "/tmp/tg-access-log-XXXXXX";
    int fd1 = mkstemp(p1), fd2 = mkstemp(p2);
    assert_true(fd1 >= 0 && fd2 >= 0);
    close(fd1);
    close(fd2);
    tg_access_log_t *log;
    tg_err_t err;
    assert_int_equal(tg_access_log_open(p1, 1000000, &log, &err), 0);
    assert_int_equal(tg_access_log_enabled(log), 1);
    pthread_t t[4];
    writer_arg_t a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (writer_arg_t){log, i};
        pthread_create(&t[i], NULL, append_many, &a[i]);
    }
    /* a path that cannot be opened changes nothing */
    assert_int_equal(tg_access_log_configure(log, "/nonexistent-dir/x.log", 5, &err), TG_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x.log"));
    assert_int_equal(tg_access_log_configure(log, p2, 250000, &err), 0);
    assert_int_equal(tg_access_log_sample_ppm(log), 250000);
    static const char marker[] = "{\"marker\":1}\n";
    assert_int_equal(tg_access_log_append(log, marker, sizeof(marker) - 1), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    tg_access_log_close(log);
    int seen[4] = {0}, m1 = 0, m2 = 0;
    read_lines(p1, seen, &m1);
    read_lines(p2, seen, &m2);
    assert_int_equal(m1, 0);
    assert_int_equal(m2, 1);
    for (int i = 0; i < 4; i++)
        assert_int_equal(seen[i], 2000);
    unlink(p1);
    unlink(p2);

    /* off (NULL) and on again: nothing is taken while off */
    char p3[] = "/tmp/tg-access-log-XXXXXX";
    int fd3 = mkstemp(p3);
    assert_true(fd3 >= 0);
    close(fd3);
    assert_int_equal(tg_access_log_open(NULL, 1000000, &log, &err), 0);
    assert_int_equal(tg_access_log_enabled(log), 0);
    assert_int_equal(tg_access_log_append(log, marker, sizeof(marker) - 1), 0);
    assert_int_equal(tg_access_log_configure(log, p3, 1000000, &err), 0);
    assert_int_equal(tg_access_log_enabled(log), 1);
    static const char one[] = "{\"t\":0,\"i\":0}\n";
    assert_int_equal(tg_access_log_append(log, one, sizeof(one) - 1), 0);
    tg_access_log_close(log);
    int s3[4] = {0}, m3 = 0;
    read_lines(p3, s3, &m3);
    assert_int_equal(m3, 0);
    assert_int_equal(s3[0], 1);
    unlink(p3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escapes_everything),
        cmocka_unit_test(test_decision_fields),
        cmocka_unit_test(test_long_path_is_cut),
        cmocka_unit_test(test_writer_threads),
        cmocka_unit_test(test_configure_switches_at_a_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
