/* test_store_pg_billing.c - usage and invoices on PostgreSQL when several nodes write at once
 * (issue 12): each node is a thread with its own store connection to one fresh database on the
 * server of TG_TEST_PG_URL (scripts/pg-test.sh start DIR); skipped without it. Checked: a batch
 * sent by every node counts once; sums saturate in SQL too; invoice numbers stay gapless per year
 * and unique when every node finalizes at once; a period's invoice is made once when every node
 * closes it at once, and the usage it bills is marked once. The single-connection behaviour is in
 * test_store.c and test_invoice.c, on both backends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"

#define NODES 4
#define T0 INT64_C(1769817600) /* 2026-01-31T00:00:00Z */

typedef struct {
    char server[512], db[64], url[600];
} fx_t;

static const char *server_url(void)
{
    const char *u = getenv("TG_TEST_PG_URL");
    return u != NULL && u[0] != '\0' ? u : NULL;
}

static void exec_on(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        print_error("%s: %s\n", sql, PQerrorMessage(c));
    assert_true(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
    PQclear(r);
    PQfinish(c);
}

static long long int_on(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return v;
}

static int setup(void **state)
{
    static unsigned n;
    *state = NULL;
    if (server_url() == NULL)
        return 0; /* PostgreSQL only: each test skips without TG_TEST_PG_URL */
    fx_t *f = calloc(1, sizeof(*f));
    snprintf(f->server, sizeof(f->server), "%s", server_url());
    snprintf(f->db, sizeof(f->db), "tg_pgbill_%ld_%u", (long)getpid(), n++);
    char *slash = strrchr(f->server, '/');
    assert_non_null(slash);
    snprintf(f->url, sizeof(f->url), "%.*s/%s", (int)(slash - f->server), f->server, f->db);
    char sql[128];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", f->db);
    exec_on(f->server, sql);
    tg_store_t *st;
    tg_err_t err = {0};
    assert_int_equal(tg_store_open(f->url, &st, &err), 0);
    assert_int_equal(tg_store_migrate(st, &err), 0);
    tg_store_close(st);
    exec_on(f->url, "INSERT INTO customers(id, email, plan_id, status, created_at, anchor_at) VALUES"
                    " ('cus_1', 'a@example.com', 'free', 'active', 1000, 1000),"
                    " ('cus_2', 'b@example.com', 'free', 'active', 1000, 1000)");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f == NULL)
        return 0;
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", f->db);
    exec_on(f->server, sql);
    free(f);
    return 0;
}

static tg_usage_t row(const char *customer, const char *metric, uint64_t units)
{
    tg_usage_t u = {0};
    snprintf(u.customer_id, sizeof(u.customer_id), "%s", customer);
    snprintf(u.key_id, sizeof(u.key_id), "key_1");
    snprintf(u.plan_id, sizeof(u.plan_id), "free");
    snprintf(u.metric, sizeof(u.metric), "%s", metric);
    snprintf(u.endpoint, sizeof(u.endpoint), "GET /x");
    u.units = units;
    u.ts_ns = T0 * 1000000000;
    u.period_start = 1000;
    u.status = 200;
    return u;
}

/* ---- usage: every node sends every batch ---- */

#define BATCHES 40

typedef struct {
    const fx_t *f;
    int node;
    int failed;
    size_t inserted;
} node_t;

static void *send_all(void *arg)
{
    node_t *n = arg;
    tg_store_t *st;
    tg_err_t err = {0};
    if (tg_store_open(n->f->url, &st, &err) != 0) {
        n->failed = 1;
        return NULL;
    }
    for (int i = 0; i < BATCHES; i++) {
        int b = (i * 7 + n->node * 13) % BATCHES; /* each node in its own order */
        tg_usage_t rows[3] = {row("cus_1", "api_calls", (uint64_t)b + 1), row("cus_2", "api_calls", 1000),
                              row("cus_1", "tokens", 5)};
        snprintf(rows[1].endpoint, sizeof(rows[1].endpoint), "POST /y");
        size_t ins = 0;
        if (tg_store_usage_record(st, (uint64_t)b + 1, rows, 3, &ins, &err) != 0) {
            print_error("node %d: %s\n", n->node, err.msg);
            n->failed = 1;
            break;
        }
        n->inserted += ins;
    }
    tg_store_close(st);
    return NULL;
}

static void test_usage_batches_once_across_nodes(void **state)
{
    fx_t *f = *state;
    if (f == NULL)
        skip();
    pthread_t t[NODES];
    node_t nodes[NODES];
    for (int i = 0; i < NODES; i++) {
        nodes[i] = (node_t){f, i, 0, 0};
        assert_int_equal(pthread_create(&t[i], NULL, send_all, &nodes[i]), 0);
    }
    size_t inserted = 0;
    for (int i = 0; i < NODES; i++)
        pthread_join(t[i], NULL); /* all of them before any assertion leaves the test */
    for (int i = 0; i < NODES; i++) {
        assert_false(nodes[i].failed);
        inserted += nodes[i].inserted;
    }
    assert_int_equal(inserted, BATCHES * 3); /* each batch applied by exactly one node */
    tg_store_t *st;
    tg_err_t err = {0};
    assert_int_equal(tg_store_open(f->url, &st, &err), 0);
    uint64_t n = 0;
    assert_int_equal(tg_store_usage_total(st, "api_calls", &n, &err), 0);
    assert_int_equal(n, BATCHES * (BATCHES + 1) / 2 + BATCHES * 1000);
    assert_int_equal(tg_store_usage_total(st, "tokens", &n, &err), 0);
    assert_int_equal(n, BATCHES * 5);
    assert_int_equal(int_on(f->url, "SELECT COUNT(*) FROM usage_batches"), BATCHES);
    assert_int_equal(int_on(f->url, "SELECT units FROM usage_daily WHERE customer_id = 'cus_2'"
                                    " AND endpoint = 'POST /y'"),
                     BATCHES * 1000);
    tg_store_close(st);
}

/* Saturation is done by the SQL too: a stored total next to INT64_MAX stays there, and the sums
 * the reads make over several rows (plans, days) stop there instead of failing. */
static void test_usage_saturates(void **state)
{
    fx_t *f = *state;
    if (f == NULL)
        skip();
    tg_store_t *st;
    tg_err_t err = {0};
    assert_int_equal(tg_store_open(f->url, &st, &err), 0);
    tg_usage_t rows[2] = {row("cus_1", "api_calls", (uint64_t)INT64_MAX - 1), row("cus_1", "api_calls", 7)};
    snprintf(rows[1].plan_id, sizeof(rows[1].plan_id), "pro");
    assert_int_equal(tg_store_usage_record(st, 1, rows, 2, NULL, &err), 0);
    assert_int_equal(tg_store_usage_record(st, 2, rows, 1, NULL, &err), 0); /* past INT64_MAX */
    assert_int_equal(int_on(f->url, "SELECT units FROM usage_period WHERE plan_id = 'free'"), INT64_MAX);
    uint64_t n = 0;
    assert_int_equal(tg_store_usage_total(st, "api_calls", &n, &err), 0); /* free + pro */
    assert_int_equal(n, (uint64_t)INT64_MAX);
    tg_store_close(st);
}

/* A request path cut inside a UTF-8 character (or with bad bytes) is stored, scrubbed: PostgreSQL
 * text refuses it, which would fail its batch on every retry. */
static void test_usage_bad_utf8(void **state)
{
    fx_t *f = *state;
    if (f == NULL)
        skip();
    tg_store_t *st;
    tg_err_t err = {0};
    assert_int_equal(tg_store_open(f->url, &st, &err), 0);
    tg_usage_t rows[2] = {row("cus_1", "api_calls", 1), row("cus_1", "api_calls", 2)};
    snprintf(rows[0].endpoint, sizeof(rows[0].endpoint), "GET /caf\xc3");     /* cut short */
    snprintf(rows[1].endpoint, sizeof(rows[1].endpoint), "GET /caf\xff\xfe"); /* not UTF-8 */
    size_t ins = 0;
    assert_int_equal(tg_store_usage_record(st, 1, rows, 2, &ins, &err), 0);
    assert_int_equal(ins, 2);
    assert_int_equal(int_on(f->url, "SELECT SUM(units) FROM usage_daily WHERE endpoint LIKE 'GET /caf%'"), 3);
    tg_store_close(st);
}

/* usage_hourly while meter export is on (store_meter.h): a row per (customer, metric, hour,
 * period, plan), the bucket starting at a period begun inside the hour, a new row of a group
 * sent before taking the group's seq, saturation; nothing while export is off. */
static void test_usage_hourly(void **state)
{
    fx_t *f = *state;
    if (f == NULL)
        skip();
    tg_store_t *st;
    tg_err_t err = {0};
    assert_int_equal(tg_store_open(f->url, &st, &err), 0);
    tg_usage_t off = row("cus_1", "api_calls", 1);
    assert_int_equal(tg_store_usage_record(st, 1, &off, 1, NULL, &err), 0);
    assert_int_equal(int_on(f->url, "SELECT COUNT(*) FROM usage_hourly"), 0);

    exec_on(f->url, "INSERT INTO meter_export(id, since) VALUES (1, 0)");
    tg_usage_t rows[3] = {row("cus_1", "api_calls", 2), row("cus_1", "api_calls", 3), row("cus_1", "api_calls", 4)};
    rows[1].ts_ns += INT64_C(3700) * 1000000000; /* the next hour */
    rows[2].ts_ns += INT64_C(10) * 1000000000;   /* the first hour again */
    assert_int_equal(tg_store_usage_record(st, 2, rows, 3, NULL, &err), 0);
    assert_int_equal(int_on(f->url, "SELECT COUNT(*) FROM usage_hourly"), 2);
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT units FROM usage_hourly WHERE hour_start = %lld AND ts = hour_start",
             (long long)T0);
    assert_int_equal(int_on(f->url, sql), 6);
    snprintf(sql, sizeof(sql), "SELECT units FROM usage_hourly WHERE hour_start = %lld", (long long)T0 + 3600);
    assert_int_equal(int_on(f->url, sql), 3);

    /* the group (cus_1, api_calls, T0) was sent twice: a new plan's row in it takes seq 2, the
     * existing row keeps its own */
    snprintf(sql, sizeof(sql), "UPDATE usage_hourly SET seq = 2, exported = units WHERE ts = %lld", (long long)T0);
    exec_on(f->url, sql);
    tg_usage_t pro[2] = {row("cus_1", "api_calls", 5), row("cus_1", "api_calls", (uint64_t)INT64_MAX)};
    snprintf(pro[0].plan_id, sizeof(pro[0].plan_id), "pro");
    assert_int_equal(tg_store_usage_record(st, 3, pro, 2, NULL, &err), 0);
    snprintf(sql, sizeof(sql), "SELECT seq FROM usage_hourly WHERE ts = %lld AND plan_id = 'pro'", (long long)T0);
    assert_int_equal(int_on(f->url, sql), 2);
    snprintf(sql, sizeof(sql), "SELECT units FROM usage_hourly WHERE ts = %lld AND plan_id = 'free'", (long long)T0);
    assert_int_equal(int_on(f->url, sql), INT64_MAX); /* 6 + INT64_MAX, saturated */

    /* a period that began inside the hour: the bucket starts with it */
    tg_usage_t renewed = row("cus_2", "api_calls", 7);
    renewed.period_start = T0 + 1800;
    renewed.ts_ns += INT64_C(2000) * 1000000000;
    assert_int_equal(tg_store_usage_record(st, 4, &renewed, 1, NULL, &err), 0);
    snprintf(sql, sizeof(sql), "SELECT ts FROM usage_hourly WHERE customer_id = 'cus_2' AND hour_start = %lld",
             (long long)T0);
    assert_int_equal(int_on(f->url, sql), T0 + 1800);
    tg_store_close(st);
}

/* A batch id is unique per node (migration 22): the same id from two nodes is two batches. */
static void test_usage_batch_ids_per_node(void **state)
{
    fx_t *f = *state;
    if (f == NULL)
        skip();
    tg_store_t *st;
    tg_err_t err = {0};
    assert_int_equal(tg_store_open(f->url, &st, &err), 0);
    tg_usage_t u = row("cus_1", "api_calls", 1);
    tg_usage_batch_t b[3] = {{9, &u, 1, "gw-1"}, {9, &u, 1, "gw-2"}, {9, &u, 1, NULL}};
    tg_usage_stored_t out;
    assert_int_equal(tg_store_usage_record_many(st, b, 3, &out, &err), 0);
    assert_int_equal(out.inserted, 3);
    assert_int_equal(tg_store_usage_record_many(st, b + 1, 1, &out, &err), 0); /* again: once */
    assert_int_equal(out.inserted, 0);
    uint64_t n = 0;
    assert_int_equal(tg_store_usage_total(st, "api_calls", &n, &err), 0);
    assert_int_equal(n, 3);
    tg_store_close(st);
}

/* usage_load reads in pages (4096 groups): more groups than a page are each seen once, and a
 * callback that stops ends the read. */
typedef struct {
    int n, stop_at;
    uint64_t units;
    unsigned char seen[5000];
} load_seen_t;

static int on_load(const char *customer_id, int64_t period_start, const char *metric, uint64_t units, void *arg)
{
    load_seen_t *l = arg;
    (void)period_start;
    (void)metric;
    long i = strtol(customer_id + 4, NULL, 10);
    assert_true(i >= 0 && i < 5000);
    l->seen[i]++;
    l->units += units;
    return ++l->n == l->stop_at;
}

static void test_usage_load_pages(void **state)
{
    fx_t *f = *state;
    if (f == NULL)
        skip();
    tg_store_t *st;
    tg_err_t err = {0};
    assert_int_equal(tg_store_open(f->url, &st, &err), 0);
    enum { N = 5000 };
    tg_usage_t *rows = calloc(N, sizeof(*rows));
    for (int i = 0; i < N; i++) {
        char c[16];
        snprintf(c, sizeof(c), "cus_%d", i);
        rows[i] = row(c, "api_calls", 2);
    }
    assert_int_equal(tg_store_usage_record(st, 1, rows, N, NULL, &err), 0);
    load_seen_t *l = calloc(1, sizeof(*l));
    assert_int_equal(tg_store_usage_load(st, 1000, on_load, l, &err), 0);
    assert_int_equal(l->n, N);
    assert_int_equal(l->units, 2 * N);
    for (int i = 0; i < N; i++)
        assert_int_equal(l->seen[i], 1);
    memset(l, 0, sizeof(*l));
    l->stop_at = 4100; /* inside the second page */
    assert_int_equal(tg_store_usage_load(st, 1000, on_load, l, &err), 0);
    assert_int_equal(l->n, 4100);
    free(l);
    free(rows);
    tg_store_close(st);
}

/* ---- invoices ---- */

static int build_cb(const tg_unbilled_t *rows, size_t n, const tg_invoice_item_t *items, size_t nitems,
                    tg_invoice_t *inv, void *arg, tg_err_t *err)
{
    (void)items;
    (void)nitems;
    (void)err;
    uint64_t *billed = arg;
    int64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += (int64_t)rows[i].units;
    if (billed != NULL)
        __atomic_add_fetch(billed, (uint64_t)total, __ATOMIC_RELAXED);
    inv->total = total;
    snprintf(inv->currency, sizeof(inv->currency), "usd");
    inv->body = strdup("{}");
    return inv->body != NULL ? 0 : TG_ENOMEM;
}

#define INVOICES 60

typedef struct {
    const fx_t *f;
    int node;
    int failed;
    int created;
    uint64_t billed;
    char id[TG_ID_MAX];
} inv_node_t;

static void *finalize_some(void *arg)
{
    inv_node_t *n = arg;
    tg_store_t *st;
    tg_err_t err = {0};
    if (tg_store_open(n->f->url, &st, &err) != 0) {
        n->failed = 1;
        return NULL;
    }
    /* every node tries every invoice: each is finalized once, the others see TG_ESTATE */
    for (int i = 0; i < INVOICES; i++) {
        char id[32];
        snprintf(id, sizeof(id), "in_%d", (i + n->node * 15) % INVOICES);
        int rc = tg_store_invoice_transition(st, id, "open", T0 + 100, &err);
        if (rc == 0)
            n->created++;
        else if (rc != TG_ESTATE) {
            print_error("node %d: %s\n", n->node, err.msg);
            n->failed = 1;
        }
    }
    tg_store_close(st);
    return NULL;
}

static void test_invoice_numbers_gapless_across_nodes(void **state)
{
    fx_t *f = *state;
    if (f == NULL)
        skip();
    tg_store_t *st;
    tg_err_t err = {0};
    assert_int_equal(tg_store_open(f->url, &st, &err), 0);
    for (int i = 0; i < INVOICES; i++) {
        tg_invoice_t d = {0};
        snprintf(d.id, sizeof(d.id), "in_%d", i);
        snprintf(d.customer_id, sizeof(d.customer_id), "cus_%d", 1 + i % 2);
        d.period_start = 1000 + i;
        d.period_end = 2000 + i;
        d.created_at = T0;
        int created = 0;
        assert_int_equal(tg_store_invoice_create(st, &d, build_cb, NULL, &created, NULL, &err), 0);
        assert_int_equal(created, 1);
        tg_invoice_clear(&d);
    }
    /* one finalized in another year: its own counter */
    assert_int_equal(tg_store_invoice_transition(st, "in_0", "open", T0 + 400 * 86400, &err), 0);
    tg_store_close(st);
    pthread_t t[NODES];
    inv_node_t nodes[NODES];
    for (int i = 0; i < NODES; i++) {
        nodes[i] = (inv_node_t){.f = f, .node = i};
        assert_int_equal(pthread_create(&t[i], NULL, finalize_some, &nodes[i]), 0);
    }
    int finalized = 0;
    for (int i = 0; i < NODES; i++)
        pthread_join(t[i], NULL); /* all of them before any assertion leaves the test */
    for (int i = 0; i < NODES; i++) {
        assert_false(nodes[i].failed);
        finalized += nodes[i].created;
    }
    assert_int_equal(finalized, INVOICES - 1);
    assert_int_equal(int_on(f->url, "SELECT COUNT(DISTINCT number) FROM invoices WHERE number LIKE 'TG-2026-%'"),
                     INVOICES - 1);
    assert_int_equal(int_on(f->url, "SELECT MAX(substr(number, 9)::int) FROM invoices WHERE number LIKE 'TG-2026-%'"),
                     INVOICES - 1); /* 1 .. 59, no gap */
    assert_int_equal(int_on(f->url, "SELECT COUNT(*) FROM invoices WHERE number = 'TG-2027-000001'"), 1);
    assert_int_equal(int_on(f->url, "SELECT last FROM invoice_numbers WHERE year = 2026"), INVOICES - 1);
}

static void *close_period(void *arg)
{
    inv_node_t *n = arg;
    tg_store_t *st;
    tg_err_t err = {0};
    if (tg_store_open(n->f->url, &st, &err) != 0) {
        n->failed = 1;
        return NULL;
    }
    tg_invoice_t d = {0}, out;
    snprintf(d.id, sizeof(d.id), "in_node%d", n->node); /* each node its own id, as generated */
    snprintf(d.customer_id, sizeof(d.customer_id), "cus_1");
    d.period_start = 1000;
    d.period_end = 2000;
    d.created_at = T0;
    if (tg_store_invoice_create(st, &d, build_cb, &n->billed, &n->created, &out, &err) != 0) {
        print_error("node %d: %s\n", n->node, err.msg);
        n->failed = 1;
    } else {
        snprintf(n->id, sizeof(n->id), "%s", out.id);
        tg_invoice_clear(&out);
    }
    tg_invoice_clear(&d);
    tg_store_close(st);
    return NULL;
}

static void test_invoice_once_across_nodes(void **state)
{
    fx_t *f = *state;
    if (f == NULL)
        skip();
    tg_store_t *st;
    tg_err_t err = {0};
    assert_int_equal(tg_store_open(f->url, &st, &err), 0);
    tg_usage_t rows[2] = {row("cus_1", "api_calls", 40), row("cus_1", "tokens", 2)};
    assert_int_equal(tg_store_usage_record(st, 1, rows, 2, NULL, &err), 0);
    tg_invoice_item_t item = {0};
    snprintf(item.customer_id, sizeof(item.customer_id), "cus_1");
    snprintf(item.description, sizeof(item.description), "proration");
    snprintf(item.currency, sizeof(item.currency), "usd");
    item.amount = 5;
    item.created_at = 1500;
    assert_int_equal(tg_store_invoice_item_add(st, &item, &err), 0);
    tg_store_close(st);
    pthread_t t[NODES];
    inv_node_t nodes[NODES];
    for (int i = 0; i < NODES; i++) {
        nodes[i] = (inv_node_t){.f = f, .node = i};
        assert_int_equal(pthread_create(&t[i], NULL, close_period, &nodes[i]), 0);
    }
    int created = 0;
    for (int i = 0; i < NODES; i++)
        pthread_join(t[i], NULL); /* all of them before any assertion leaves the test */
    for (int i = 0; i < NODES; i++) {
        assert_false(nodes[i].failed);
        created += nodes[i].created;
    }
    assert_int_equal(created, 1);
    for (int i = 1; i < NODES; i++)
        assert_string_equal(nodes[i].id, nodes[0].id); /* every node answers with the one invoice */
    assert_int_equal(int_on(f->url, "SELECT COUNT(*) FROM invoices"), 1);
    assert_int_equal(int_on(f->url, "SELECT total FROM invoices"), 42);
    assert_int_equal(int_on(f->url, "SELECT SUM(invoiced_units) FROM usage_period"), 42);
    assert_int_equal(int_on(f->url, "SELECT COUNT(*) FROM invoice_items WHERE invoice_id = (SELECT id FROM invoices)"),
                     1);
}

/* Usage keeps arriving while periods are invoiced: every unit is either on exactly one invoice
 * (and marked invoiced) or still unbilled, never marked without being billed. */
#define LIVE_BATCHES 300
#define LIVE_INVOICES 40

static void *record_live(void *arg)
{
    inv_node_t *n = arg;
    tg_store_t *st;
    tg_err_t err = {0};
    if (tg_store_open(n->f->url, &st, &err) != 0) {
        n->failed = 1;
        return NULL;
    }
    for (int i = 0; i < LIVE_BATCHES && !n->failed; i++) {
        tg_usage_t u = row("cus_1", "api_calls", 1);
        if (tg_store_usage_record(st, (uint64_t)i + 1, &u, 1, NULL, &err) != 0) {
            print_error("usage: %s\n", err.msg);
            n->failed = 1;
        }
    }
    tg_store_close(st);
    return NULL;
}

static void *invoice_live(void *arg)
{
    inv_node_t *n = arg;
    tg_store_t *st;
    tg_err_t err = {0};
    if (tg_store_open(n->f->url, &st, &err) != 0) {
        n->failed = 1;
        return NULL;
    }
    for (int i = 0; i < LIVE_INVOICES && !n->failed; i++) {
        tg_invoice_t d = {0};
        snprintf(d.id, sizeof(d.id), "in_live_%d", i);
        snprintf(d.customer_id, sizeof(d.customer_id), "cus_1");
        d.period_start = 1000 + i; /* each bills every period up to its own */
        d.period_end = 2000 + i;
        d.created_at = T0;
        int created = 0;
        if (tg_store_invoice_create(st, &d, build_cb, &n->billed, &created, NULL, &err) != 0) {
            print_error("invoice: %s\n", err.msg);
            n->failed = 1;
        }
        n->created += created;
        tg_invoice_clear(&d);
    }
    tg_store_close(st);
    return NULL;
}

static void test_invoice_while_usage_arrives(void **state)
{
    fx_t *f = *state;
    if (f == NULL)
        skip();
    pthread_t t[2];
    inv_node_t nodes[2] = {{.f = f, .node = 0}, {.f = f, .node = 1}};
    assert_int_equal(pthread_create(&t[0], NULL, record_live, &nodes[0]), 0);
    assert_int_equal(pthread_create(&t[1], NULL, invoice_live, &nodes[1]), 0);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    assert_false(nodes[0].failed);
    assert_false(nodes[1].failed);
    assert_int_equal(nodes[1].created, LIVE_INVOICES);
    long long billed = int_on(f->url, "SELECT COALESCE(SUM(total), 0) FROM invoices");
    assert_int_equal(billed, (long long)nodes[1].billed);
    assert_int_equal(int_on(f->url, "SELECT SUM(invoiced_units) FROM usage_period"), billed);
    assert_int_equal(int_on(f->url, "SELECT SUM(units) FROM usage_period"), LIVE_BATCHES);
}

/* A month's close on a database whose invoices table starts empty (the first month, or a bench):
 * the invoice path must not look invoices up by a statement prepared while the table was known
 * to be (nearly) empty. Its generic plan scanned the whole table on every invoice until
 * autovacuum analyzed it again,
 * and the close of 100,000 customers took 104-111 s instead of 38 (bench/invoices.sh). Counted:
 * the sequential scans of invoices during CLOSE_MANY invoices made as the closer makes them (one
 * connection, one transaction, each invoice in its savepoint). Before: one per invoice. */
#define CLOSE_MANY 60

static void test_invoice_close_scans_no_invoices(void **state)
{
    fx_t *f = *state;
    if (f == NULL)
        skip();
    char sql[256];
    for (int i = 0; i < CLOSE_MANY; i++) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO customers(id, email, plan_id, status, created_at, anchor_at) VALUES"
                 " ('cus_m%d', 'm%d@example.com', 'free', 'active', 1000, 1000)",
                 i, i);
        exec_on(f->url, sql);
    }
    /* the statistics an ANALYZE leaves (after a bulk load, an upgrade, or autovacuum while the
     * table was small): invoices empty, so a statement planned now scans it */
    exec_on(f->url, "ANALYZE");
    long long scans0 = int_on(f->url, "SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'invoices'");
    tg_store_t *st;
    tg_err_t err = {0};
    assert_int_equal(tg_store_open(f->url, &st, &err), 0);
    assert_int_equal(tg_store_tx_begin(st, &err), 0);
    for (int i = 0; i < CLOSE_MANY; i++) {
        tg_invoice_t d = {0};
        snprintf(d.id, sizeof(d.id), "in_m%d", i);
        snprintf(d.customer_id, sizeof(d.customer_id), "cus_m%d", i);
        d.period_start = 1000;
        d.period_end = 2000;
        d.created_at = T0;
        int created = 0;
        assert_int_equal(tg_store_invoice_create(st, &d, build_cb, NULL, &created, NULL, &err), 0);
        assert_int_equal(created, 1);
        tg_invoice_clear(&d);
    }
    assert_int_equal(tg_store_tx_commit(st, &err), 0);
    tg_store_close(st);
    /* the closed session's statistics reach the server's counters as its backend exits: poll
     * (bounded) until its CLOSE_MANY inserts are counted, then read its scans with them */
    long long ins = 0;
    for (int i = 0; i < 3000 && ins < CLOSE_MANY; i++) { /* up to 30 s on a loaded machine */
        ins = int_on(f->url, "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'invoices'");
        if (ins < CLOSE_MANY)
            usleep(10000); /* poll interval of a bounded wait */
    }
    assert_int_equal(ins, CLOSE_MANY);
    long long scans = int_on(f->url, "SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'invoices'") - scans0;
    if (scans != 0)
        print_error("%lld sequential scans of invoices for %d invoices\n", scans, CLOSE_MANY);
    assert_int_equal(scans, 0);
}

static int fail_build(const tg_unbilled_t *rows, size_t n, const tg_invoice_item_t *items, size_t nitems,
                      tg_invoice_t *inv, void *arg, tg_err_t *err)
{
    (void)rows, (void)n, (void)items, (void)nitems, (void)inv, (void)arg;
    return tg_errf(err, TG_ERANGE, "this invoice cannot be built now");
}

/* An invoice that exists is the answer (created 0, that invoice), even when building it again
 * would fail now: the existence is checked after the insert since the look before it went (see
 * above), and the usage marked meanwhile is rolled back with the savepoint. */
static void test_invoice_exists_wins_over_build_error(void **state)
{
    fx_t *f = *state;
    if (f == NULL)
        skip();
    tg_store_t *st;
    tg_err_t err = {0};
    assert_int_equal(tg_store_open(f->url, &st, &err), 0);
    tg_usage_t u = row("cus_1", "api_calls", 40);
    assert_int_equal(tg_store_usage_record(st, 1, &u, 1, NULL, &err), 0);
    tg_invoice_t d = {0}, out;
    snprintf(d.id, sizeof(d.id), "in_first");
    snprintf(d.customer_id, sizeof(d.customer_id), "cus_1");
    d.period_start = 1000;
    d.period_end = 2000;
    d.created_at = T0;
    int created = 0;
    assert_int_equal(tg_store_invoice_create(st, &d, build_cb, NULL, &created, NULL, &err), 0);
    assert_int_equal(created, 1);
    tg_invoice_clear(&d);
    u = row("cus_1", "api_calls", 2); /* late usage of the period: unbilled */
    assert_int_equal(tg_store_usage_record(st, 2, &u, 1, NULL, &err), 0);
    assert_int_equal(tg_store_tx_begin(st, &err), 0);
    d = (tg_invoice_t){0};
    snprintf(d.id, sizeof(d.id), "in_second");
    snprintf(d.customer_id, sizeof(d.customer_id), "cus_1");
    d.period_start = 1000;
    d.period_end = 2000;
    d.created_at = T0;
    created = 7;
    assert_int_equal(tg_store_invoice_create(st, &d, fail_build, NULL, &created, &out, &err), 0);
    assert_int_equal(created, 0);
    assert_string_equal(out.id, "in_first");
    tg_invoice_clear(&out);
    tg_invoice_clear(&d);
    /* the caller's transaction goes on */
    assert_int_equal(tg_store_tx_commit(st, &err), 0);
    tg_store_close(st);
    assert_int_equal(int_on(f->url, "SELECT COUNT(*) FROM invoices"), 1);
    assert_int_equal(int_on(f->url, "SELECT SUM(invoiced_units) FROM usage_period"), 40);
    assert_int_equal(int_on(f->url, "SELECT SUM(units) FROM usage_period"), 42);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_usage_batches_once_across_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_saturates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_bad_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_hourly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_load_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_batch_ids_per_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invoice_numbers_gapless_across_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invoice_once_across_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invoice_while_usage_arrives, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invoice_close_scans_no_invoices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invoice_exists_wins_over_build_error, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
