/* test_usage_log.c - the metering log on a real file: every field survives a reopen, replay stops
 * at a torn record, a reset retires the old generation even where its bytes remain, and a file
 * that is not a log is refused by name; each in the three ways of appending (direct I/O, write +
 * fdatasync, and buffered writes for process durability), and buffered appends survive the
 * death of the process that wrote them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "metering/usage_log.h"

/* How this group's tests open the log (main runs them once per way). */
static tg_usage_log_mode_t open_mode = TG_USAGE_LOG_DURABLE;

static int open_log(const char *path, tg_usage_log_t **log, tg_err_t *err)
{
    return tg_usage_log_open_mode(path, open_mode, log, err);
}

typedef struct {
    char dir[64], path[128];
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/tg_ulog_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/usagelog", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static tg_usage_t row(int i)
{
    tg_usage_t u = {0};
    u.event_id = 1000 + (uint64_t)i;
    snprintf(u.customer_id, sizeof(u.customer_id), "cus_%d", i);
    snprintf(u.key_id, sizeof(u.key_id), "key_%d", i);
    snprintf(u.plan_id, sizeof(u.plan_id), "pro");
    snprintf(u.metric, sizeof(u.metric), i % 2 ? "tokens" : "api_calls");
    memset(u.endpoint, 'e', sizeof(u.endpoint) - 1); /* the longest a field can be */
    u.units = (uint64_t)INT64_MAX - (uint64_t)i;
    u.ts_ns = -5 - i; /* negative values survive too */
    u.period_start = 1769853600 + i;
    u.status = 404;
    return u;
}

typedef struct {
    uint64_t ids[16];
    size_t rows[16];
    size_t n;
    int mismatch;
} seen_t;

static int on_record(void *arg, uint64_t batch_id, const tg_usage_t *rows, size_t n)
{
    seen_t *s = arg;
    for (size_t i = 0; i < n; i++) {
        tg_usage_t want = row((int)(batch_id * 10 + i));
        if (memcmp(&want, &rows[i], sizeof(want)) != 0)
            s->mismatch++;
    }
    if (s->n < 16) {
        s->ids[s->n] = batch_id;
        s->rows[s->n] = n;
    }
    s->n++;
    return 0;
}

/* Record b holds rows b*10 .. b*10+n-1, so a replay can check every field. */
static void append(tg_usage_log_t *log, uint64_t b, size_t n)
{
    tg_usage_t rows[10];
    for (size_t i = 0; i < n; i++)
        rows[i] = row((int)(b * 10 + i));
    tg_err_t err = {0};
    assert_int_equal(tg_usage_log_append(log, b, rows, n, &err), 0);
}

static seen_t reopen_and_replay(fx_t *f)
{
    tg_usage_log_t *log;
    tg_err_t err = {0};
    seen_t s = {0};
    assert_int_equal(open_log(f->path, &log, &err), 0);
    assert_int_equal(tg_usage_log_replay(log, on_record, &s, &err), 0);
    tg_usage_log_close(log);
    return s;
}

/* Opens the log as the meter does at start: replay, then appends go after the intact records.
 * *replayed (may be NULL) receives how many records the replay found. */
static tg_usage_log_t *reopen_for_appends(fx_t *f, size_t *replayed)
{
    tg_usage_log_t *log;
    tg_err_t err = {0};
    seen_t seen = {0};
    assert_int_equal(open_log(f->path, &log, &err), 0);
    assert_int_equal(tg_usage_log_replay(log, on_record, &seen, &err), 0);
    if (replayed != NULL)
        *replayed = seen.n;
    return log;
}

static void test_records_survive_a_reopen(void **state)
{
    fx_t *f = *state;
    tg_usage_log_t *log;
    tg_err_t err = {0};
    assert_int_equal(open_log(f->path, &log, &err), 0);
    assert_int_equal(tg_usage_log_used(log), 0);
    append(log, 1, 3);
    append(log, 2, 10);
    append(log, 3, 1);
    assert_true(tg_usage_log_used(log) > 0);
    tg_usage_log_close(log);
    seen_t s = reopen_and_replay(f);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.mismatch, 0);
    assert_int_equal(s.ids[0], 1);
    assert_int_equal(s.rows[1], 10);
    assert_int_equal(s.ids[2], 3);

    /* appends after a replay continue the generation */
    log = reopen_for_appends(f, NULL);
    append(log, 4, 2);
    tg_usage_log_close(log);
    s = reopen_and_replay(f);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.ids[3], 4);
    assert_int_equal(s.mismatch, 0);
}

/* The last byte of the last record is changed, as a write cut short by a power loss would:
 * replay returns the records before it and appends go where it was. */
static void test_replay_stops_at_a_torn_record(void **state)
{
    fx_t *f = *state;
    tg_usage_log_t *log;
    tg_err_t err = {0};
    assert_int_equal(open_log(f->path, &log, &err), 0);
    append(log, 1, 2);
    append(log, 2, 2);
    uint64_t end = 4096 + tg_usage_log_used(log);
    tg_usage_log_close(log);
    int fd = open(f->path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char b;
    assert_int_equal(pread(fd, &b, 1, (off_t)end - 1), 1);
    b ^= 0x5a;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)end - 1), 1);
    close(fd);
    seen_t s = reopen_and_replay(f);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ids[0], 1);

    log = reopen_for_appends(f, NULL);
    append(log, 3, 1); /* over the torn one */
    tg_usage_log_close(log);
    s = reopen_and_replay(f);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.ids[1], 3);
    assert_int_equal(s.mismatch, 0);
}

/* After a reset the old records' bytes are still in the file past the new ones; they belong to
 * the old generation and are not replayed. */
static void test_reset_retires_the_old_generation(void **state)
{
    fx_t *f = *state;
    tg_usage_log_t *log;
    tg_err_t err = {0};
    assert_int_equal(open_log(f->path, &log, &err), 0);
    append(log, 1, 10);
    append(log, 2, 10);
    append(log, 3, 10);
    assert_int_equal(tg_usage_log_reset(log, &err), 0);
    assert_int_equal(tg_usage_log_used(log), 0);
    tg_usage_log_close(log);
    assert_int_equal(reopen_and_replay(f).n, 0);

    assert_int_equal(open_log(f->path, &log, &err), 0);
    append(log, 5, 1); /* shorter than record 1: record 2 starts right after the new bytes */
    tg_usage_log_close(log);
    seen_t s = reopen_and_replay(f);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ids[0], 5);
    assert_int_equal(s.mismatch, 0);
}

static void test_bad_files_and_rows_are_refused(void **state)
{
    fx_t *f = *state;
    tg_usage_log_t *log = NULL;
    tg_err_t err = {0};
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 5000; i++)
        fputs("not a log ", fp);
    fclose(fp);
    assert_int_equal(open_log(f->path, &log, &err), TG_ESTORE);
    assert_null(log);
    assert_non_null(strstr(err.msg, f->path));
    assert_non_null(strstr(err.msg, "not a tollgate metering log"));

    unlink(f->path);
    assert_int_equal(open_log(f->path, &log, &err), 0);
    tg_usage_t u = row(0);
    memset(u.metric, 'x', sizeof(u.metric)); /* unterminated */
    assert_int_equal(tg_usage_log_append(log, 1, &u, 1, &err), TG_EINVAL);
    assert_non_null(strstr(err.msg, "unterminated"));
    assert_int_equal(tg_usage_log_append(log, 1, &u, 0, &err), TG_EINVAL);
    assert_int_equal(tg_usage_log_used(log), 0); /* nothing written */
    tg_usage_log_close(log);
    assert_int_equal(reopen_and_replay(f).n, 0);
}

/* Records are read back one after the other from a position tg_usage_log_used gave before
 * their append, after later appends; a position that is not a record's start, or past the
 * last record, is refused by name. */
static void test_read_back_by_position(void **state)
{
    fx_t *f = *state;
    tg_usage_log_t *log;
    tg_err_t err = {0};
    assert_int_equal(open_log(f->path, &log, &err), 0);
    append(log, 1, 1);
    uint64_t from = tg_usage_log_used(log);
    for (uint64_t b = 2; b <= 6; b++)
        append(log, b, (size_t)b);
    uint64_t end = tg_usage_log_used(log);
    append(log, 7, 3);
    uint64_t pos = from;
    for (uint64_t b = 2; b <= 6; b++) {
        tg_usage_t *rows = NULL;
        size_t n = 0;
        uint64_t id = 0;
        assert_int_equal(tg_usage_log_read(log, &pos, &id, &rows, &n, &err), 0);
        assert_int_equal(id, b);
        assert_int_equal(n, b);
        seen_t s = {0};
        on_record(&s, id, rows, n);
        assert_int_equal(s.mismatch, 0); /* every field, as appended */
        free(rows);
    }
    assert_int_equal(pos, end); /* it stepped exactly over records 2 to 6 */
    tg_usage_t *rows = NULL;
    size_t n = 0;
    uint64_t id = 0, at = from + 1;
    assert_int_equal(tg_usage_log_read(log, &at, &id, &rows, &n, &err), TG_ESTORE);
    assert_non_null(strstr(err.msg, "no intact record at offset"));
    assert_null(rows);
    assert_int_equal(at, from + 1);
    at = tg_usage_log_used(log);
    assert_int_equal(tg_usage_log_read(log, &at, &id, &rows, &n, &err), TG_ESTORE);
    tg_usage_log_close(log);
}

/* Many appends of every size, so records start and end at every offset within a block (direct
 * I/O rewrites the block the previous record ended in), across a reopen in the middle. */
static void test_appends_at_every_alignment(void **state)
{
    fx_t *f = *state;
    tg_usage_log_t *log;
    tg_err_t err = {0};
    assert_int_equal(open_log(f->path, &log, &err), 0);
    for (uint64_t b = 1; b <= 200; b++) {
        append(log, b, 1 + (size_t)(b * 7 % 10));
        if (b == 100) { /* the second half appends after a replay */
            tg_usage_log_close(log);
            size_t replayed = 0;
            log = reopen_for_appends(f, &replayed);
            assert_int_equal(replayed, 100);
        }
    }
    tg_usage_log_close(log);
    seen_t s = reopen_and_replay(f);
    assert_int_equal(s.n, 200);
    assert_int_equal(s.mismatch, 0);
}

/* Buffered (process durability): the file grows with the appends, a block at a time, nothing
 * is written ahead; a record cut short, as a power cut during writeback can leave it, ends the
 * replay. */
static void test_buffered_file_grows_with_its_appends(void **state)
{
    fx_t *f = *state;
    tg_usage_log_t *log;
    tg_err_t err = {0};
    assert_int_equal(tg_usage_log_open_mode(f->path, TG_USAGE_LOG_BUFFERED, &log, &err), 0);
    append(log, 1, 2);
    append(log, 2, 5);
    append(log, 3, 10);
    uint64_t end = 4096 + tg_usage_log_used(log);
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal((uint64_t)sb.st_size, (end + 4095) / 4096 * 4096);
    assert_int_equal(tg_usage_log_sync(log, &err), 0);
    tg_usage_log_close(log);
    assert_int_equal(truncate(f->path, (off_t)end - 7), 0);
    seen_t s = reopen_and_replay(f);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.ids[1], 2);
    assert_int_equal(s.mismatch, 0);
    log = reopen_for_appends(f, NULL);
    append(log, 4, 1); /* over the cut one */
    tg_usage_log_close(log);
    s = reopen_and_replay(f);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.ids[2], 4);
    assert_int_equal(s.mismatch, 0);
}

/* 1 if the file's bytes from `from` to the end of the 4 KiB block holding it are all zero. */
static int zeros_to_block_end(const char *path, uint64_t from)
{
    unsigned char b[4096];
    size_t n = (size_t)(4096 - from % 4096) % 4096;
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, b, n, (off_t)from), (ssize_t)n);
    close(fd);
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return 0;
    return 1;
}

/* Buffered appends write whole blocks, the record then zeros to the block's end, whatever the
 * records before it left in the append buffer: long records (crossing blocks) then short ones,
 * and short ones after a reset over a generation of long ones. The append buffer is cleared only
 * where the previous record was, so this checks that what it does not clear is zero. */
static void test_buffered_blocks_end_in_zeros(void **state)
{
    fx_t *f = *state;
    tg_usage_log_t *log;
    tg_err_t err = {0};
    assert_int_equal(tg_usage_log_open_mode(f->path, TG_USAGE_LOG_BUFFERED, &log, &err), 0);
    static const size_t sizes[] = {10, 10, 1, 7, 10, 1, 1, 3, 10, 2, 1, 10, 10, 10, 1};
    for (int generation = 0; generation < 3; generation++) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            append(log, i + 1, generation == 2 ? 1 : sizes[i]); /* the last generation: short ones only */
            assert_true(zeros_to_block_end(f->path, 4096 + tg_usage_log_used(log)));
        }
        assert_int_equal(tg_usage_log_reset(log, &err), 0);
    }
    for (size_t i = 0; i < 3; i++)
        append(log, i + 1, 1);
    tg_usage_log_close(log);
    log = reopen_for_appends(f, NULL); /* the append buffer starts from the last block read back */
    append(log, 4, 10);
    append(log, 5, 1);
    assert_true(zeros_to_block_end(f->path, 4096 + tg_usage_log_used(log)));
    tg_usage_log_close(log);
    seen_t s = reopen_and_replay(f);
    assert_int_equal(s.n, 5);
    assert_int_equal(s.ids[4], 5);
    assert_int_equal(s.mismatch, 0);
}

/* Bytes this process has made the kernel read from the storage (/proc/self/io). */
static uint64_t disk_bytes_read(void)
{
    FILE *io = fopen("/proc/self/io", "r");
    assert_non_null(io);
    char line[128];
    unsigned long long n = 0;
    int found = 0;
    while (!found && fgets(line, sizeof(line), io) != NULL)
        found = sscanf(line, "read_bytes: %llu", &n) == 1;
    fclose(io);
    assert_true(found);
    return n;
}

/* Buffered: appends over blocks the page cache does not hold - a log reused after a reset whose
 * pages the kernel dropped, or that a run in another mode wrote with direct I/O - read nothing
 * from the disk. A write of part of such a block made the kernel read it first, synchronously,
 * on the gateway's event loop (on a filesystem in memory, tmpfs, nothing is ever read). */
static void test_buffered_appends_read_nothing_from_the_disk(void **state)
{
    fx_t *f = *state;
    tg_usage_log_t *log;
    tg_err_t err = {0};
    assert_int_equal(tg_usage_log_open_mode(f->path, TG_USAGE_LOG_BUFFERED, &log, &err), 0);
    for (uint64_t b = 1; b <= 64; b++)
        append(log, b, 1 + (size_t)(b % 10));
    assert_int_equal(tg_usage_log_sync(log, &err), 0);
    assert_int_equal(tg_usage_log_reset(log, &err), 0); /* the next generation overwrites those blocks */
    int fd = open(f->path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0); /* clean pages: dropped */
    close(fd);
    uint64_t before = disk_bytes_read();
    for (uint64_t b = 1; b <= 64; b++)
        append(log, b, 1 + (size_t)(b % 10));
    uint64_t after = disk_bytes_read();
    tg_usage_log_close(log);
    assert_int_equal(after - before, 0);
    seen_t s = reopen_and_replay(f);
    assert_int_equal(s.n, 64);
    assert_int_equal(s.mismatch, 0);
}

/* Buffered: what an append wrote is the kernel's once it returns, so a process killed with
 * SIGKILL right after its appends, with no sync and no close, loses none of them. */
static void test_buffered_appends_survive_kill_9(void **state)
{
    fx_t *f = *state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        tg_usage_log_t *log;
        tg_err_t err = {0};
        if (tg_usage_log_open_mode(f->path, TG_USAGE_LOG_BUFFERED, &log, &err) != 0)
            _exit(1);
        tg_usage_t rows[10];
        for (uint64_t b = 1; b <= 12; b++) {
            for (size_t i = 0; i < 10; i++)
                rows[i] = row((int)(b * 10 + i));
            if (tg_usage_log_append(log, b, rows, 10, &err) != 0)
                _exit(1);
        }
        raise(SIGKILL);
        _exit(1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    seen_t s = reopen_and_replay(f);
    assert_int_equal(s.n, 12);
    assert_int_equal(s.ids[11], 12);
    assert_int_equal(s.mismatch, 0);
}

/* tg_usage_field_len (model/records.h) is strnlen over a field of tg_usage_t whatever follows the
 * terminator (0x01 and 0x80 bytes are the ones the word trick could mistake), and a field
 * without one is cap long: every length in every field size, each start alignment. */
static void test_field_length_whatever_follows(void **state)
{
    (void)state;
    static const size_t caps[] = {TG_ID_MAX, TG_PLAN_ID_MAX, TG_METRIC_MAX, TG_ENDPOINT_MAX};
    static const unsigned char fill[] = {0x01, 0x80, 0xff, 'x'};
    _Alignas(8) char buf[TG_ENDPOINT_MAX + 8];
    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++)
        for (size_t f = 0; f < sizeof(fill); f++)
            for (size_t at = 0; at < 8; at++) {
                char *field = buf + at;
                for (size_t len = 0; len <= caps[c]; len++) {
                    memset(buf, fill[f], sizeof(buf));
                    memset(field, 'a' + (int)(len % 26), len);
                    if (len < caps[c])
                        field[len] = '\0';
                    assert_int_equal(tg_usage_field_len(field, caps[c]), len);
                    assert_int_equal(tg_usage_field_len(field, caps[c]), strnlen(field, caps[c]));
                }
            }
}

static int run(const char *label)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_records_survive_a_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_stops_at_a_torn_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_retires_the_old_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_files_and_rows_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_appends_at_every_alignment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_back_by_position, setup, teardown),
    };
    return _cmocka_run_group_tests(label, tests, sizeof(tests) / sizeof(tests[0]), NULL, NULL);
}

/* The three ways of appending: direct I/O (where the filesystem has it), write + fdatasync, and
 * buffered writes without a sync (process durability). */
int main(void)
{
    unsetenv("TOLLGATE_USAGE_LOG_BUFFERED");
    int failed = run("usage log, direct I/O");
    setenv("TOLLGATE_USAGE_LOG_BUFFERED", "1", 1);
    failed += run("usage log, write and fdatasync");
    unsetenv("TOLLGATE_USAGE_LOG_BUFFERED");
    open_mode = TG_USAGE_LOG_BUFFERED;
    failed += run("usage log, buffered (process durability)");
    const struct CMUnitTest buffered[] = {
        cmocka_unit_test_setup_teardown(test_buffered_file_grows_with_its_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffered_appends_survive_kill_9, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffered_appends_read_nothing_from_the_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffered_blocks_end_in_zeros, setup, teardown),
    };
    failed += _cmocka_run_group_tests("usage log, buffered only", buffered, sizeof(buffered) / sizeof(buffered[0]),
                                      NULL, NULL);
    const struct CMUnitTest fields[] = {cmocka_unit_test(test_field_length_whatever_follows)};
    return failed +
           _cmocka_run_group_tests("usage rows' fields", fields, sizeof(fields) / sizeof(fields[0]), NULL, NULL);
}
