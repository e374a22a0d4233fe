/* bench-durable-append.c - what one durable append to the metering log costs on this machine.
 * Used by bench/durable_append.sh.
 *
 * In strict mode every group of calls waits for one append (usage_log.h), so the append's
 * machine-wide CPU time, divided by the calls in a group, is strict mode's metering cost per
 * call. That CPU time is not all in the process: the disk's completion interrupts, and on a VM
 * its exits, land on whatever runs, and io_uring or a filesystem may finish a sync in a kernel
 * worker. So besides the wall time and the process's CPU time, this reads the whole machine's
 * busy time from /proc/stat around the run.
 *
 * Three ways to append the same record, side by side:
 *   page cache   a plain write(2) of the bytes, no sync: what surviving kill -9 alone needs
 *                (the reference; it does not survive a power cut);
 *   direct+dsync the metering log as tollgate runs it: O_DIRECT | O_DSYNC, one write;
 *   write+sync   the metering log's fallback: write(2) then fdatasync. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "metering/usage_log.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double process_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Busy time of all CPUs, in seconds: user, nice, system, irq and softirq (not idle, iowait or
 * steal). -1 if /proc/stat cannot be read. */
static double machine_busy_s(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return -1;
    unsigned long long user, nice, sys, idle, iowait, irq, softirq;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle, &iowait, &irq, &softirq);
    fclose(f);
    if (n != 7)
        return -1;
    return (double)(user + nice + sys + irq + softirq) / (double)sysconf(_SC_CLK_TCK);
}

typedef struct figures {
    double wall_us, process_us, machine_us; /* per append */
} figures_t;

static void fill_rows(tg_usage_t *rows, size_t n)
{
    memset(rows, 0, n * sizeof(*rows));
    for (size_t i = 0; i < n; i++) {
        rows[i].event_id = i + 1;
        snprintf(rows[i].customer_id, sizeof(rows[i].customer_id), "cus_%020zu", i);
        snprintf(rows[i].key_id, sizeof(rows[i].key_id), "key_%020zu", i);
        snprintf(rows[i].plan_id, sizeof(rows[i].plan_id), "pro");
        snprintf(rows[i].metric, sizeof(rows[i].metric), "api_calls");
        snprintf(rows[i].endpoint, sizeof(rows[i].endpoint), "GET /v1/basic/*");
        rows[i].units = 1;
        rows[i].status = 200;
    }
}

/* Appends through the metering log; buffered selects its write + fdatasync path. */
static int run_log(const char *dir, int buffered, const tg_usage_t *rows, size_t nrows, int appends, figures_t *out)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/bench-usagelog-%s", dir, buffered ? "buffered" : "direct");
    if (buffered)
        setenv("TOLLGATE_USAGE_LOG_BUFFERED", "1", 1);
    else
        unsetenv("TOLLGATE_USAGE_LOG_BUFFERED");
    tg_err_t err = {0};
    tg_usage_log_t *log = NULL;
    if (tg_usage_log_open(path, &log, &err) != 0) {
        fprintf(stderr, "bench-durable-append: %s\n", err.msg);
        return -1;
    }
    /* The log grows a megabyte at a time, and a server reuses the space after each reset: the
     * warm-up grows the file to its size for the measured run, and the reset rewinds it. */
    for (int i = 0; i < appends; i++)
        if (tg_usage_log_append(log, (uint64_t)i + 1, rows, nrows, &err) != 0)
            goto fail;
    if (tg_usage_log_reset(log, &err) != 0)
        goto fail;
    double m0 = machine_busy_s(), p0 = process_cpu_s(), t0 = now_s();
    for (int i = 0; i < appends; i++)
        if (tg_usage_log_append(log, (uint64_t)i + 1000, rows, nrows, &err) != 0)
            goto fail;
    double t1 = now_s(), p1 = process_cpu_s(), m1 = machine_busy_s();
    *out = (figures_t){(t1 - t0) * 1e6 / appends, (p1 - p0) * 1e6 / appends, m0 < 0 ? -1 : (m1 - m0) * 1e6 / appends};
    tg_usage_log_close(log);
    unlink(path);
    return 0;
fail:
    fprintf(stderr, "bench-durable-append: %s\n", err.msg);
    tg_usage_log_close(log);
    unlink(path);
    return -1;
}

/* The reference: the same number of bytes written to the page cache, no sync. */
static int run_page_cache(const char *dir, size_t bytes, int appends, figures_t *out)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/bench-page-cache", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    char *buf = calloc(1, bytes);
    if (fd < 0 || buf == NULL) {
        perror("bench-durable-append: page cache file");
        free(buf);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int rc = 0;
    double m0 = machine_busy_s(), p0 = process_cpu_s(), t0 = now_s();
    for (int i = 0; i < appends && rc == 0; i++)
        if (pwrite(fd, buf, bytes, (off_t)((size_t)(i % 2048) * bytes)) != (ssize_t)bytes)
            rc = -1;
    double t1 = now_s(), p1 = process_cpu_s(), m1 = machine_busy_s();
    if (rc != 0)
        perror("bench-durable-append: page cache write");
    *out = (figures_t){(t1 - t0) * 1e6 / appends, (p1 - p0) * 1e6 / appends, m0 < 0 ? -1 : (m1 - m0) * 1e6 / appends};
    free(buf);
    close(fd);
    unlink(path);
    return rc;
}

static void print_row(const char *name, const figures_t *f, size_t nrows)
{
    printf("%-24s %12.1f %14.1f %14.1f %16.2f\n", name, f->wall_us, f->process_us, f->machine_us,
           f->machine_us / (double)nrows);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: bench-durable-append DIR [APPENDS (default 3000)] [ROWS per append (default 11)]\n");
        return 2;
    }
    int appends = argc > 2 ? atoi(argv[2]) : 3000;
    long nrows = argc > 3 ? atol(argv[3]) : 11;
    if (appends <= 0 || nrows <= 0 || nrows > 10000) {
        fprintf(stderr, "bench-durable-append: APPENDS must be > 0 and ROWS in 1..10000\n");
        return 2;
    }
    tg_usage_t *rows = malloc((size_t)nrows * sizeof(*rows));
    if (rows == NULL)
        return 1;
    fill_rows(rows, (size_t)nrows);
    figures_t direct, buffered, page;
    int rc = run_log(argv[1], 0, rows, (size_t)nrows, appends, &direct);
    if (rc == 0)
        rc = run_log(argv[1], 1, rows, (size_t)nrows, appends, &buffered);
    if (rc == 0) /* the log's record: a 32-byte head and the rows, rounded up to blocks */
        rc = run_page_cache(argv[1], ((size_t)nrows * sizeof(*rows) + 32 + 4095) / 4096 * 4096, appends, &page);
    free(rows);
    if (rc != 0)
        return 1;
    printf("%d appends of %ld usage rows each (one strict-mode group), on %s\n", appends, nrows, argv[1]);
    printf("%-24s %12s %14s %14s %16s\n", "append", "wall us", "process CPU us", "machine CPU us", "machine us/row");
    print_row("page cache (reference)", &page, (size_t)nrows);
    print_row("direct+dsync (tollgate)", &direct, (size_t)nrows);
    print_row("write+fdatasync", &buffered, (size_t)nrows);
    printf("durable append vs page cache: %.1f us more machine CPU per append, %.2f us per row\n",
           direct.machine_us - page.machine_us, (direct.machine_us - page.machine_us) / (double)nrows);
    return 0;
}
