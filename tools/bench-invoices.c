/* bench-invoices.c - closes a billing period for N customers with usage and reports the rate.
 * Used by bench/invoices.sh. Builds its data with the store API in a temporary SQLite file,
 * then runs the same period-closing code as the server (500 customers per transaction) and
 * checks the sum of all invoices against totals computed directly by the pricing code. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "billing/invoice.h"
#include "billing/pricing.h"
#include "config/config.h"
#include "store/store.h"

#define JAN1_2026 INT64_C(1767225600)
#define FEB1_2026 INT64_C(1769904000)

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

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
    const char *dir = argc > 2 ? argv[2] : "/tmp";
    if (n <= 0) {
        fprintf(stderr, "usage: bench-invoices [CUSTOMERS] [DIR]\n");
        return 2;
    }
    char url[512], errbuf[4096];
    snprintf(url, sizeof(url), "sqlite:%s/bench-invoices-%d.db", dir, (int)getpid());
    tg_config_t *cfg;
    if (tg_config_load_string("bench.yaml", yaml, strlen(yaml), &cfg, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, "%s", errbuf);
        return 1;
    }
    tg_err_t err = {0};
    tg_store_t *st;
    if (tg_store_open(url, &st, &err) != 0 || tg_store_migrate(st, &err) != 0)
        return die("opening the store", &err);

    static const char *const plans[] = {"free", "starter", "pro", "enterprise"};
    tg_customer_t *cs = calloc((size_t)n, sizeof(*cs));
    tg_usage_t *rows = calloc(2 * (size_t)n, sizeof(*rows));
    int64_t expected = 0;
    size_t nrows = 0;
    double t0 = now_s();
    if (tg_store_tx_begin(st, &err) != 0)
        return die("begin", &err);
    for (long i = 0; i < n; i++) {
        tg_customer_t *c = &cs[i];
        snprintf(c->id, sizeof(c->id), "cus_%08ld", i);
        snprintf(c->email, sizeof(c->email), "c%ld@bench.test", i);
        snprintf(c->plan_id, sizeof(c->plan_id), "%s", plans[i % 4]);
        snprintf(c->status, sizeof(c->status), "active");
        c->created_at = c->anchor_at = JAN1_2026;
        if (tg_store_customer_insert(st, c, &err) != 0)
            return die("inserting customers", &err);
        /* usage spread over the allowance boundaries */
        uint64_t calls = (uint64_t)(i * 7919 % 700000) + (i % 4 == 3 ? 4900000 : 0);
        tg_usage_qty_t q[2] = {{"api_calls", calls}, {"images", (uint64_t)(i % 3000)}};
        rows[nrows] = (tg_usage_t){.event_id = (uint64_t)nrows + 1, .units = calls, .ts_ns = JAN1_2026 * 1000000000,
                                   .period_start = JAN1_2026};
        snprintf(rows[nrows].customer_id, sizeof(rows[nrows].customer_id), "%s", c->id);
        snprintf(rows[nrows].plan_id, sizeof(rows[nrows].plan_id), "%s", c->plan_id);
        snprintf(rows[nrows].metric, sizeof(rows[nrows].metric), "api_calls");
        nrows++;
        size_t nq = 1;
        if (i % 4 == 2) {
            rows[nrows] = rows[nrows - 1];
            rows[nrows].units = q[1].used;
            snprintf(rows[nrows].metric, sizeof(rows[nrows].metric), "images");
            nrows++;
            nq = 2;
        }
        tg_quote_t quote;
        if (tg_quote_build(tg_config_find_plan(cfg, c->plan_id), q, nq, 1, &quote, &err) != 0)
            return die("pricing", &err);
        expected += quote.total;
        tg_quote_free(&quote);
    }
    if (tg_store_tx_commit(st, &err) != 0)
        return die("commit", &err);
    for (size_t off = 0; off < nrows; off += 10000) {
        size_t k = nrows - off < 10000 ? nrows - off : 10000;
        if (tg_store_usage_record(st, off + 1, rows + off, k, NULL, &err) != 0)
            return die("recording usage", &err);
    }
    double t1 = now_s();

    int created = 0;
    for (long i = 0; i < n;) {
        if (tg_store_tx_begin(st, &err) != 0)
            return die("begin", &err);
        long end = i + 500 < n ? i + 500 : n;
        for (; i < end; i++) {
            int made = 0;
            if (tg_invoice_close_periods(st, cfg, &cs[i], FEB1_2026, &made, &err) != 0)
                return die("closing periods", &err);
            created += made;
        }
        if (tg_store_tx_commit(st, &err) != 0)
            return die("commit", &err);
    }
    double t2 = now_s();
    int64_t total = 0;
    if (tg_store_invoice_list(st, NULL, sum_cb, &total, &err) != 0)
        return die("listing", &err);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    char got[TG_MONEY_FMT_MAX], want[TG_MONEY_FMT_MAX];
    tg_money_format(total, 2, got, sizeof(got));
    tg_money_format(expected, 2, want, sizeof(want));
    printf("customers:            %ld (setup %.1f s)\n", n, t1 - t0);
    printf("invoices created:     %d in %.2f s = %.0f customers/s\n", created, t2 - t1, (double)n / (t2 - t1));
    printf("peak memory (RSS):    %.1f MiB\n", (double)ru.ru_maxrss / 1024.0);
    printf("sum of invoices:      %s usd (expected %s): %s\n", got, want, total == expected ? "exact" : "MISMATCH");
    tg_store_close(st);
    tg_config_free(cfg);
    free(cs);
    free(rows);
    unlink(url + 7);
    char side[600];
    snprintf(side, sizeof(side), "%s-wal", url + 7);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", url + 7);
    unlink(side);
    return total == expected && created == n ? 0 : 1;
}
