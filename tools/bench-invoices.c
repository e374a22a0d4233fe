/* bench-invoices.c - closes a billing period for N customers with usage and reports the rate.
 * Used by bench/invoices.sh and bench/invoices-under-load.sh.
 *
 *   bench-invoices [CUSTOMERS] [DIR | STORE_URL]
 *       builds the data with the store API in a temporary SQLite file in DIR (or in the empty
 *       PostgreSQL database STORE_URL, postgresql://...), then runs the server's
 *       own period closer (tg_periods_close: the customers due, 500 per transaction) and checks
 *       the sum of all invoices against totals computed directly by the pricing code.
 *   bench-invoices --csv CUSTOMERS ANCHOR DIR
 *       writes the same data as DIR/customers.csv and DIR/usage.csv for PostgreSQL's COPY
 *       (bench/invoices.sh --backend postgres) and prints the expected sum of invoices.
 *   bench-invoices --close CUSTOMERS STORE_URL AT
 *       runs the server's period closer at clock AT over a store so loaded, and prints the
 *       rate, the peak RSS and the sum of all invoices.
 *   bench-invoices --populate CUSTOMERS STORE_URL ANCHOR
 *       only builds the data, anchored at ANCHOR (seconds) with each customer's next period end
 *       set, into a store a tollgate server then opens; prints the expected sum of invoices.
 *
 * Every phase streams: customers and usage are generated, stored and priced a batch at a time,
 * and the closer pages through the customers due, so peak memory does not grow with N. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "billing/invoice.h"
#include "billing/periods.h"
#include "billing/pricing.h"
#include "config/config.h"
#include "store/store.h"
#include "util/period.h"

#define JAN1_2026 INT64_C(1767225600)
#define FEB1_2026 INT64_C(1769904000)
#define CHUNK 10000

static const char *yaml =
    "upstream: {url: \"http://127.0.0.1:9\"}\n"
    "admin: {token: \"bench-admin-token-000\"}\n"
    "keys: {secret: \"bench-secret-0123456789abcdef012345\"}\n"
    "plans:\n"
    "  free: {price: \"0\", included: {api_calls: 1000}}\n"
    "  starter: {price: \"49\", included: {api_calls: 50000}, charges: [{metric: api_calls, model: per_unit, unit_price: \"0.001\"}]}\n"
    "  pro: {price: \"199\", included: {api_calls: 500000}, charges: [{metric: api_calls, model: per_unit, unit_price: \"0.0005\"},"
    " {metric: images, model: graduated, tiers: [{up_to: 1000, unit_price: \"0\"}, {up_to: inf, unit_price: \"0.002\"}]}]}\n"
    "  enterprise: {price: \"999\", included: {api_calls: 5000000}, charges: [{metric: api_calls, model: per_unit, unit_price: \"0.0002\"}]}\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char *what, const tg_err_t *err)
{
    fprintf(stderr, "bench-invoices: %s: %s\n", what, err->msg);
    return 1;
}

static int sum_cb(const tg_invoice_t *inv, void *arg)
{
    *(int64_t *)arg += inv->total;
    return 0;
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* CPU seconds this process has used, user and system. */
static void cpu_s(double *user, double *sys)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static const char *const bench_plans[] = {"free", "starter", "pro", "enterprise"};

/* Customer i of the bench: its plan, and its usage (spread over the allowance boundaries) in
 * q[0..*nq). */
static const char *bench_customer(long i, tg_usage_qty_t q[2], size_t *nq)
{
    uint64_t calls = (uint64_t)(i * 7919 % 700000) + (i % 4 == 3 ? 4900000 : 0);
    q[0] = (tg_usage_qty_t){"api_calls", calls};
    q[1] = (tg_usage_qty_t){"images", (uint64_t)(i % 3000)};
    *nq = i % 4 == 2 ? 2 : 1;
    return bench_plans[i % 4];
}

/* Adds what the pricing code says customer i owes for one period to *expected. */
static int price_customer(const tg_config_t *cfg, const char *plan, const tg_usage_qty_t *q, size_t nq,
                          int64_t *expected)
{
    tg_quote_t quote;
    tg_err_t err = {0};
    if (tg_quote_build(tg_config_find_plan(cfg, plan), q, nq, 1, &quote, &err) != 0)
        return die("pricing", &err);
    *expected += quote.total;
    tg_quote_free(&quote);
    return 0;
}

/* Stores customers 0..n-1 anchored at anchor with their usage, CHUNK per transaction, and adds
 * what the pricing code says each owes for the period to *expected. With schedule, each
 * customer's next period end is set (as the server's closer would have after its first look). */
static int populate(tg_store_t *st, const tg_config_t *cfg, long n, int64_t anchor, int schedule, int64_t *expected)
{
    tg_usage_t *rows = calloc(2 * CHUNK, sizeof(*rows));
    tg_err_t err = {0};
    if (rows == NULL)
        return fprintf(stderr, "bench-invoices: out of memory\n"), 1;
    int64_t first_end = tg_period_boundary(anchor, TG_INTERVAL_MONTH, 1);
    uint64_t event = 0, batch = 0;
    for (long base = 0; base < n; base += CHUNK) {
        long end = base + CHUNK < n ? base + CHUNK : n;
        size_t nrows = 0;
        if (tg_store_tx_begin(st, &err) != 0)
            return free(rows), die("begin", &err);
        for (long i = base; i < end; i++) {
            tg_usage_qty_t q[2];
            size_t nq;
            tg_customer_t c = {0};
            snprintf(c.id, sizeof(c.id), "cus_%08ld", i);
            snprintf(c.email, sizeof(c.email), "c%ld@bench.test", i);
            snprintf(c.plan_id, sizeof(c.plan_id), "%s", bench_customer(i, q, &nq));
            snprintf(c.status, sizeof(c.status), "active");
            c.created_at = c.anchor_at = anchor;
            if (tg_store_customer_insert(st, &c, &err) != 0 ||
                (schedule && tg_store_customer_set_next_period_end(st, c.id, 0, first_end, &err) != 0))
                return free(rows), die("inserting customers", &err);
            for (size_t k = 0; k < nq; k++) {
                tg_usage_t *r = &rows[nrows++];
                *r = (tg_usage_t){
                    .event_id = ++event, .units = q[k].used, .ts_ns = anchor * 1000000000, .period_start = anchor};
                snprintf(r->customer_id, sizeof(r->customer_id), "%s", c.id);
                snprintf(r->plan_id, sizeof(r->plan_id), "%s", c.plan_id);
                snprintf(r->metric, sizeof(r->metric), "%s", q[k].metric);
            }
            if (price_customer(cfg, c.plan_id, q, nq, expected) != 0)
                return free(rows), 1;
        }
        if (tg_store_tx_commit(st, &err) != 0)
            return free(rows), die("commit", &err);
        if (tg_store_usage_record(st, ++batch, rows, nrows, NULL, &err) != 0)
            return free(rows), die("recording usage", &err);
    }
    free(rows);
    return tg_store_usage_fold(st, 1, &err) != 0 ? die("folding usage", &err) : 0;
}

/* The same customers and usage as populate, as two CSV files for PostgreSQL's COPY (the way to
 * load a million rows in seconds instead of minutes of single-row round trips): DIR/customers.csv
 * (id, email, plan_id, status, created_at, anchor_at, next_period_end) and DIR/usage.csv
 * (usage_period: customer_id, period_start, plan_id, metric, units), the state the store's
 * usage fold leaves. Adds the expected total to *expected. */
static int write_csv(const tg_config_t *cfg, long n, int64_t anchor, const char *dir, int64_t *expected)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/customers.csv", dir);
    FILE *cf = fopen(path, "w");
    snprintf(path, sizeof(path), "%s/usage.csv", dir);
    FILE *uf = fopen(path, "w");
    if (cf == NULL || uf == NULL) {
        fprintf(stderr, "bench-invoices: cannot write the CSV files in %s\n", dir);
        if (cf != NULL)
            fclose(cf);
        if (uf != NULL)
            fclose(uf);
        return 1;
    }
    int64_t first_end = tg_period_boundary(anchor, TG_INTERVAL_MONTH, 1);
    int rc = 0;
    for (long i = 0; i < n && rc == 0; i++) {
        tg_usage_qty_t q[2];
        size_t nq;
        const char *plan = bench_customer(i, q, &nq);
        fprintf(cf, "cus_%08ld,c%ld@bench.test,%s,active,%lld,%lld,%lld\n", i, i, plan, (long long)anchor,
                (long long)anchor, (long long)first_end);
        for (size_t k = 0; k < nq; k++)
            fprintf(uf, "cus_%08ld,%lld,%s,%s,%llu\n", i, (long long)anchor, plan, q[k].metric,
                    (unsigned long long)q[k].used);
        rc = price_customer(cfg, plan, q, nq, expected);
    }
    if (fclose(cf) != 0 || fclose(uf) != 0) {
        fprintf(stderr, "bench-invoices: writing the CSV files in %s failed\n", dir);
        return 1;
    }
    return rc;
}

static int64_t bench_clock;
static int64_t bench_now(void)
{
    return bench_clock;
}

static int load_config(tg_config_t **cfg)
{
    char errbuf[4096];
    if (tg_config_load_string("bench.yaml", yaml, strlen(yaml), cfg, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, "%s", errbuf);
        return 1;
    }
    return 0;
}

static int cmd_populate(int argc, char **argv)
{
    if (argc != 5)
        return fprintf(stderr, "usage: bench-invoices --populate CUSTOMERS STORE_URL ANCHOR\n"), 2;
    long n = strtol(argv[2], NULL, 10);
    int64_t anchor = strtoll(argv[4], NULL, 10);
    tg_config_t *cfg;
    tg_err_t err = {0};
    tg_store_t *st;
    if (n <= 0 || anchor <= 0)
        return fprintf(stderr, "bench-invoices: CUSTOMERS and ANCHOR must be positive\n"), 2;
    if (load_config(&cfg) != 0)
        return 1;
    if (tg_store_open(argv[3], &st, &err) != 0 || tg_store_migrate(st, &err) != 0)
        return die("opening the store", &err);
    int64_t expected = 0;
    int rc = populate(st, cfg, n, anchor, 1, &expected);
    char want[TG_MONEY_FMT_MAX];
    tg_money_format(expected, 2, want, sizeof(want));
    if (rc == 0)
        printf("%s\n", want);
    tg_store_close(st);
    tg_config_free(cfg);
    return rc;
}

static int cmd_csv(int argc, char **argv)
{
    if (argc != 5)
        return fprintf(stderr, "usage: bench-invoices --csv CUSTOMERS ANCHOR DIR\n"), 2;
    long n = strtol(argv[2], NULL, 10);
    int64_t anchor = strtoll(argv[3], NULL, 10);
    tg_config_t *cfg;
    if (n <= 0 || anchor <= 0)
        return fprintf(stderr, "bench-invoices: CUSTOMERS and ANCHOR must be positive\n"), 2;
    if (load_config(&cfg) != 0)
        return 1;
    int64_t expected = 0;
    int rc = write_csv(cfg, n, anchor, argv[4], &expected);
    char want[TG_MONEY_FMT_MAX];
    tg_money_format(expected, 2, want, sizeof(want));
    if (rc == 0)
        printf("%s\n", want);
    tg_config_free(cfg);
    return rc;
}

/* Runs the server's period closer at clock `at` on a store holding CUSTOMERS customers due,
 * then again (nobody due), and reports as the default command does; the caller compares the
 * printed sum with the one --csv or --populate printed. */
static int cmd_close(int argc, char **argv)
{
    if (argc != 5 && argc != 6)
        return fprintf(stderr, "usage: bench-invoices --close CUSTOMERS STORE_URL AT [CONNECTIONS]\n"), 2;
    long n = strtol(argv[2], NULL, 10);
    bench_clock = strtoll(argv[4], NULL, 10);
    tg_config_t *cfg;
    tg_err_t err = {0};
    tg_store_t *st;
    if (n <= 0 || bench_clock <= 0)
        return fprintf(stderr, "bench-invoices: CUSTOMERS and AT must be positive\n"), 2;
    if (load_config(&cfg) != 0)
        return 1;
    if (tg_store_open(argv[3], &st, &err) != 0 || tg_store_migrate(st, &err) != 0)
        return die("opening the store", &err);
    /* billing.close_connections: its default unless given (2 on PostgreSQL, 1 on SQLite) */
    long conns = argc == 6 ? strtol(argv[5], NULL, 10) : strcmp(tg_store_backend(st), "sqlite") == 0 ? 1 : 2;
    if (conns < 1 || conns > 16)
        return fprintf(stderr, "bench-invoices: CONNECTIONS must be 1 to 16\n"), 2;
    tg_store_t *more[16];
    for (long k = 1; k < conns; k++)
        if (tg_store_open(argv[3], &more[k - 1], &err) != 0)
            return die("opening the store", &err);
    double rss0 = peak_rss_mib();
    tg_sub_ctx_t x = {.cfg = cfg, .store = st, .now_s = bench_now};
    tg_periods_run_t run, again;
    double u1, s1, u2, s2;
    cpu_s(&u1, &s1);
    double t1 = now_s();
    /* one connection: tg_periods_close, as the closer does without a pool */
    if ((conns > 1 ? tg_periods_close_pool(&x, more, (size_t)conns - 1, bench_now(), NULL, NULL, &run, &err)
                   : tg_periods_close(&x, NULL, INT64_MAX, &run, &err)) != 0)
        return die("closing periods", &err);
    double t2 = now_s();
    cpu_s(&u2, &s2);
    if (run.failures > 0)
        fprintf(stderr, "bench-invoices: %d customers failed: %s\n", run.failures, run.first_error);
    tg_periods_run_free(&run);
    if (tg_periods_close(&x, NULL, INT64_MAX, &again, &err) != 0)
        return die("closing periods again", &err);
    double t3 = now_s();
    tg_periods_run_free(&again);
    double rss_close = peak_rss_mib(); /* before the check's listing (PostgreSQL: one result) */
    int64_t total = 0;
    if (tg_store_invoice_list(st, NULL, sum_cb, &total, &err) != 0)
        return die("listing", &err);
    char got[TG_MONEY_FMT_MAX];
    tg_money_format(total, 2, got, sizeof(got));
    printf("customers:            %ld (peak RSS before the close %.1f MiB)\n", n, rss0);
    printf("closer connections:   %ld\n", conns);
    printf("invoices created:     %d in %.2f s = %.0f customers/s\n", run.created, t2 - t1, (double)n / (t2 - t1));
    printf("closer's CPU:         %.2f s user + %.2f s system during the close\n", u2 - u1, s2 - s1);
    printf("second run:           %d created in %.3f s (nobody due)\n", again.created, t3 - t2);
    printf("peak memory (RSS):    %.1f MiB after the close (%.1f MiB after the check's listing)\n", rss_close,
           peak_rss_mib());
    printf("sum of invoices:      %s usd\n", got);
    for (long k = 1; k < conns; k++)
        tg_store_close(more[k - 1]);
    tg_store_close(st);
    tg_config_free(cfg);
    return run.created == n && again.created == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--populate") == 0)
        return cmd_populate(argc, argv);
    if (argc > 1 && strcmp(argv[1], "--csv") == 0)
        return cmd_csv(argc, argv);
    if (argc > 1 && strcmp(argv[1], "--close") == 0)
        return cmd_close(argc, argv);
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
    const char *dir = argc > 2 ? argv[2] : "/tmp";
    if (n <= 0) {
        fprintf(stderr, "usage: bench-invoices [CUSTOMERS] [DIR | STORE_URL]\n");
        return 2;
    }
    char url[512];
    int sqlite = strncmp(dir, "postgres", 8) != 0; /* postgres:// or postgresql:// */
    if (sqlite)
        snprintf(url, sizeof(url), "sqlite:%s/bench-invoices-%d.db", dir, (int)getpid());
    else
        snprintf(url, sizeof(url), "%s", dir);
    tg_config_t *cfg;
    if (load_config(&cfg) != 0)
        return 1;
    tg_err_t err = {0};
    tg_store_t *st;
    if (tg_store_open(url, &st, &err) != 0 || tg_store_migrate(st, &err) != 0)
        return die("opening the store", &err);

    int64_t expected = 0;
    double t0 = now_s();
    if (populate(st, cfg, n, JAN1_2026, 0, &expected) != 0)
        return 1;
    double t1 = now_s();
    double rss_setup = peak_rss_mib();

    /* The server's own run (the admin API's invoices/run and the tick's slices share it), at a
     * clock of February 1st: every customer's January closes. */
    bench_clock = FEB1_2026;
    tg_sub_ctx_t x = {.cfg = cfg, .store = st, .now_s = bench_now};
    tg_periods_run_t run;
    double u1, s1, u2, s2;
    cpu_s(&u1, &s1);
    t1 = now_s();
    if (tg_periods_close(&x, NULL, INT64_MAX, &run, &err) != 0)
        return die("closing periods", &err);
    double t2 = now_s();
    cpu_s(&u2, &s2);
    if (run.failures > 0)
        fprintf(stderr, "bench-invoices: %d customers failed: %s\n", run.failures, run.first_error);
    tg_periods_run_free(&run);
    /* A second run at the same clock finds nobody due: it reads the index, not the customers. */
    tg_periods_run_t again;
    if (tg_periods_close(&x, NULL, INT64_MAX, &again, &err) != 0)
        return die("closing periods again", &err);
    double t3 = now_s();
    tg_periods_run_free(&again);
    double rss_close = peak_rss_mib(); /* before the check's listing (PostgreSQL: one result) */
    int64_t total = 0;
    if (tg_store_invoice_list(st, NULL, sum_cb, &total, &err) != 0)
        return die("listing", &err);
    char got[TG_MONEY_FMT_MAX], want[TG_MONEY_FMT_MAX];
    tg_money_format(total, 2, got, sizeof(got));
    tg_money_format(expected, 2, want, sizeof(want));
    printf("customers:            %ld (setup %.1f s, peak RSS after setup %.1f MiB)\n", n, t1 - t0, rss_setup);
    printf("invoices created:     %d in %.2f s = %.0f customers/s\n", run.created, t2 - t1, (double)n / (t2 - t1));
    printf("closer's CPU:         %.2f s user + %.2f s system during the close\n", u2 - u1, s2 - s1);
    printf("second run:           %d created in %.3f s (nobody due)\n", again.created, t3 - t2);
    printf("peak memory (RSS):    %.1f MiB after the close (%.1f MiB after the check's listing)\n", rss_close,
           peak_rss_mib());
    printf("sum of invoices:      %s usd (expected %s): %s\n", got, want, total == expected ? "exact" : "MISMATCH");
    tg_store_close(st);
    tg_config_free(cfg);
    if (!sqlite)
        return total == expected && run.created == n && again.created == 0 ? 0 : 1;
    unlink(url + 7);
    char side[600];
    snprintf(side, sizeof(side), "%s-wal", url + 7);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", url + 7);
    unlink(side);
    return total == expected && run.created == n && again.created == 0 ? 0 : 1;
}
