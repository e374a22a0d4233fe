/* test_store_billing.c - the period closer's schedule in the store (store.h, migration 21):
 * customers_due pages in (next_period_end, id) order after a position and up to a time,
 * customer_set_next_period_end is a compare-and-set, and a customer update that changes when
 * its periods end resets the schedule.
 *
 * The first two run on SQLite (tmpstore.h) and, when TG_TEST_PG_URL names a server
 * (scripts/pg-test.sh), on PostgreSQL in a fresh database; there the customers are inserted
 * with SQL, since the PostgreSQL backend's customer calls are another part of the work. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "../support/tmpstore.h"

typedef struct {
    char ids[16][TG_ID_MAX];
    int64_t ends[16];
    size_t n;
} seen_t;

static int seen_cb(const tg_customer_t *c, int64_t next_end, void *arg)
{
    seen_t *s = arg;
    if (s->n < 16) {
        snprintf(s->ids[s->n], TG_ID_MAX, "%s", c->id);
        s->ends[s->n++] = next_end;
    }
    return 0;
}

typedef struct {
    tg_tmpstore_t t; /* SQLite */
    PGconn *admin;   /* PostgreSQL: the server's database, which creates and drops ours */
    PGconn *db;
    char dbname[64];
    tg_store_t *st;
} fx_t;

static PGconn *pg_connect(const char *url, const char *dbname)
{
    const char *keys[] = {"dbname", dbname != NULL ? "dbname" : NULL, NULL};
    const char *vals[] = {url, dbname, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    return c;
}

static void pg_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        print_error("PostgreSQL: %s in %s\n", PQerrorMessage(c), sql);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
}

static int setup_sqlite(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_int_equal(tg_tmpstore_open(&f->t, "stbill"), 0);
    f->st = f->t.st;
    *state = f;
    return 0;
}

static int setup_pg(void **state)
{
    const char *url = getenv("TG_TEST_PG_URL");
    *state = NULL;
    if (url == NULL || url[0] == '\0')
        return 0; /* the test skips */
    fx_t *f = calloc(1, sizeof(*f));
    static unsigned counter;
    char sql[160], store_url[512];
    snprintf(f->dbname, sizeof(f->dbname), "tg_%ld_bill%u", (long)getpid(), counter++);
    f->admin = pg_connect(url, NULL);
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", f->dbname);
    pg_ok(f->admin, sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", f->dbname);
    pg_ok(f->admin, sql);
    f->db = pg_connect(url, f->dbname);
    const char *slash = strrchr(url, '/'); /* postgresql://user@host:port/postgres -> .../ours */
    assert_non_null(slash);
    snprintf(store_url, sizeof(store_url), "%.*s/%s", (int)(slash - url), url, f->dbname);
    tg_err_t err = {0};
    assert_int_equal(tg_store_open(store_url, &f->st, &err), 0);
    assert_int_equal(tg_store_migrate(f->st, &err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f == NULL)
        return 0;
    if (f->db == NULL) {
        assert_int_equal(tg_tmpstore_close(&f->t), 0);
    } else {
        char sql[160];
        tg_store_close(f->st);
        PQfinish(f->db);
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", f->dbname);
        pg_ok(f->admin, sql);
        PQfinish(f->admin);
    }
    free(f);
    return 0;
}

static fx_t *fixture_or_skip(void **state)
{
    if (*state == NULL) {
        print_message("TG_TEST_PG_URL is not set (scripts/pg-test.sh start DIR prints one): skipped\n");
        skip();
    }
    return *state;
}

static void add_to(fx_t *f, const char *id, int64_t next_end)
{
    tg_err_t err = {0};
    if (f->db != NULL) {
        char sql[400];
        /* a customer row by SQL comes with its schedule row, as tg_store_customer_insert makes
         * it (migration 31) */
        snprintf(sql, sizeof(sql),
                 "INSERT INTO customers(id, email, plan_id, status, created_at, anchor_at) VALUES"
                 " ('%s', '%s@b.co', 'starter', 'active', 1000, 1000);"
                 " INSERT INTO customer_schedule(customer_id) VALUES ('%s')",
                 id, id, id); /* the test's own constant ids */
        pg_ok(f->db, sql);
        if (next_end != 0)
            assert_int_equal(tg_store_customer_set_next_period_end(f->st, id, 0, next_end, &err), 0);
        return;
    }
    tg_store_t *st = f->st;
    tg_customer_t c = {0};
    snprintf(c.id, sizeof(c.id), "%s", id);
    snprintf(c.email, sizeof(c.email), "%s@b.co", id);
    snprintf(c.plan_id, sizeof(c.plan_id), "starter");
    snprintf(c.status, sizeof(c.status), "active");
    c.created_at = c.anchor_at = 1000;
    assert_int_equal(tg_store_customer_insert(st, &c, &err), 0);
    if (next_end != 0)
        assert_int_equal(tg_store_customer_set_next_period_end(st, id, 0, next_end, &err), 0);
}

static void due(tg_store_t *st, int64_t until, int64_t after_end, const char *after_id, size_t limit, seen_t *s)
{
    tg_err_t err = {0};
    size_t n = 99;
    memset(s, 0, sizeof(*s));
    assert_int_equal(tg_store_customers_due(st, until, after_end, after_id, limit, seen_cb, s, &n, &err), 0);
    assert_int_equal(n, s->n);
}

static void test_due_pages_in_order(void **state)
{
    fx_t *f = fixture_or_skip(state);
    add_to(f, "cus_c", 300);
    add_to(f, "cus_a", 300);
    add_to(f, "cus_new", 0); /* never looked at: due at once */
    add_to(f, "cus_b", 200);
    add_to(f, "cus_late", 900);
    seen_t s;
    /* due by 300: the new one, then by end, then by id; not the one due at 900 */
    due(f->st, 300, INT64_MIN, "", 10, &s);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.ids[0], "cus_new");
    assert_int_equal(s.ends[0], 0);
    assert_string_equal(s.ids[1], "cus_b");
    assert_int_equal(s.ends[1], 200);
    assert_string_equal(s.ids[2], "cus_a");
    assert_string_equal(s.ids[3], "cus_c");
    /* a page of two, then the next page from the last one handed over */
    due(f->st, 300, INT64_MIN, "", 2, &s);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.ids[1], "cus_b");
    due(f->st, 300, 200, "cus_b", 2, &s);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.ids[0], "cus_a");
    assert_string_equal(s.ids[1], "cus_c");
    due(f->st, 300, 300, "cus_c", 2, &s);
    assert_int_equal(s.n, 0);
    /* an end with no id: everything at that end and after */
    due(f->st, INT64_MAX, 300, "", 10, &s);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.ids[2], "cus_late");
}

static void test_set_next_end_is_compare_and_set(void **state)
{
    fx_t *f = fixture_or_skip(state);
    tg_err_t err = {0};
    add_to(f, "cus_a", 0);
    assert_int_equal(tg_store_customer_set_next_period_end(f->st, "cus_a", 0, 500, &err), 0);
    /* a writer that read an older value changes nothing */
    assert_int_equal(tg_store_customer_set_next_period_end(f->st, "cus_a", 0, 700, &err), 0);
    seen_t s;
    due(f->st, INT64_MAX, INT64_MIN, "", 10, &s);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ends[0], 500);
    /* nobody: not an error */
    assert_int_equal(tg_store_customer_set_next_period_end(f->st, "cus_none", 0, 700, &err), 0);
}

static void test_update_resets_schedule(void **state)
{
    fx_t *f = fixture_or_skip(state);
    tg_err_t err = {0};
    add_to(f, "cus_a", 500);
    tg_customer_t c;
    seen_t s;
    /* a name or email changes nothing about the periods: the schedule stays */
    assert_int_equal(tg_store_customer_get(f->st, "cus_a", &c, &err), 0);
    snprintf(c.name, sizeof(c.name), "Ada");
    assert_int_equal(tg_store_customer_update(f->st, &c, &err), 0);
    due(f->st, INT64_MAX, INT64_MIN, "", 10, &s);
    assert_int_equal(s.ends[0], 500);
    /* each of these does: plan, anchor, status, scheduled change, cancellation */
    for (int k = 0; k < 5; k++) {
        assert_int_equal(tg_store_customer_set_next_period_end(f->st, "cus_a", s.ends[0], 500, &err), 0);
        assert_int_equal(tg_store_customer_get(f->st, "cus_a", &c, &err), 0);
        switch (k) {
        case 0: snprintf(c.plan_id, sizeof(c.plan_id), "pro%d", k); break;
        case 1: c.anchor_at += 86400; break;
        case 2: snprintf(c.status, sizeof(c.status), "past_due"); break;
        case 3: snprintf(c.pending_plan_id, sizeof(c.pending_plan_id), "free"), c.pending_at = 400; break;
        default: c.cancel_at = 450; break;
        }
        assert_int_equal(tg_store_customer_update(f->st, &c, &err), 0);
        due(f->st, INT64_MAX, INT64_MIN, "", 10, &s);
        assert_int_equal(s.n, 1);
        assert_int_equal(s.ends[0], 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_due_pages_in_order, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_set_next_end_is_compare_and_set, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_update_resets_schedule, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_due_pages_in_order, setup_pg, teardown),
        cmocka_unit_test_setup_teardown(test_set_next_end_is_compare_and_set, setup_pg, teardown),
        cmocka_unit_test_setup_teardown(test_update_resets_schedule, setup_pg, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
