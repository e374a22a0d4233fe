/* test_store_copy.c - tg_store_copy (src/store/store_copy.c): a SQLite store, filled through the
 * store's own calls, copied into a fresh PostgreSQL database (tg_<pid>_copyN, created from
 * TG_TEST_PG_URL) and read back with libpq; and the refusals: a non-empty target, a column on one
 * side only, a missing source file, and a verification that finds a difference (a trigger on
 * the target that changes what COPY inserts: the copy's own statements all succeed, only the
 * comparison can catch it) and rolls everything back. SQLite's usage_event_id_blocks (a batch's
 * event ids packed in one row, migration 35) arrive as rows of PostgreSQL's usage_event_ids,
 * beside the rows stored before that migration, counted by the verification; a malformed block
 * stops the copy naming it.
 *
 * scripts/run-tests.sh unit starts a PostgreSQL (scripts/pg-test.sh) and sets TG_TEST_PG_URL;
 * without it the tests are skipped (reported as skipped, not passed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"
#include "store/store_copy.h"
#include "store/store_payments.h"

/* The source: always a SQLite file (what the copy reads), whatever backend the other tests use. */
typedef struct {
    char dir[64];
    char url[160];
    tg_store_t *st;
} src_t;

static int src_open(src_t *t)
{
    tg_err_t err = {0};
    snprintf(t->dir, sizeof(t->dir), "/tmp/tg_copy_XXXXXX");
    if (mkdtemp(t->dir) == NULL)
        return -1;
    snprintf(t->url, sizeof(t->url), "sqlite:%s/t.db", t->dir);
    if (tg_store_open(t->url, &t->st, &err) != 0 || tg_store_migrate(t->st, &err) != 0) {
        print_error("%s\n", err.msg);
        return -1;
    }
    return 0;
}

static void src_close(src_t *t)
{
    char cmd[128];
    tg_store_close(t->st);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", t->dir);
    assert_int_equal(system(cmd), 0);
}

typedef struct {
    PGconn *admin; /* the server's own database: creates and drops ours */
    PGconn *db;
    char dbname[64];
    char url[512]; /* our database's URL */
    src_t src;
    tg_store_copy_report_t rep;
} fx_t;

static PGconn *pg_connect(const char *url, const char *dbname)
{
    const char *keys[] = {"dbname", dbname != NULL ? "dbname" : NULL, NULL};
    const char *vals[] = {url, dbname, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        print_error("cannot connect to %s: %s\n", url, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    return c;
}

static void pg_do(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        print_error("PostgreSQL: %s\nin: %s\n", PQerrorMessage(c), sql);
    assert_true(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
    PQclear(r);
}

/* The single value of a query, as text, into out. */
static const char *pg_value(PGconn *c, const char *sql, char *out, size_t cap)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        print_error("PostgreSQL: %s\nin: %s\n", PQerrorMessage(c), sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

/* A call's row, or with `event` a usage event's (POST /v1/events: its id lands in usage_event_ids). */
static void add_usage(tg_store_t *st, uint64_t batch, const char *customer, const char *metric, uint64_t units,
                      int event)
{
    tg_usage_t u;
    memset(&u, 0, sizeof(u));
    u.event_id = event ? batch | TG_USAGE_EVENT_BIT : batch;
    snprintf(u.customer_id, sizeof(u.customer_id), "%s", customer);
    snprintf(u.key_id, sizeof(u.key_id), "key_%s", customer);
    snprintf(u.plan_id, sizeof(u.plan_id), "pro");
    snprintf(u.metric, sizeof(u.metric), "%s", metric);
    snprintf(u.endpoint, sizeof(u.endpoint), "%s", event ? TG_USAGE_EVENT_ENDPOINT : "GET /v1/x");
    u.units = units;
    u.ts_ns = INT64_C(1767225600) * 1000000000; /* 2026-01-01 */
    u.period_start = 1767225600;
    u.status = 200;
    tg_err_t err = {0};
    size_t inserted = 0;
    assert_int_equal(tg_store_usage_record(st, batch, &u, 1, &inserted, &err), 0);
    assert_int_equal(inserted, 1);
}

/* Two customers with a key each (blob hashes), usage, a session, an invoice item, a plan change. */
static void fill(tg_store_t *st)
{
    tg_err_t err = {0};
    const char *ids[] = {"cus_a", "cus_b"};
    for (int i = 0; i < 2; i++) {
        tg_customer_t c;
        memset(&c, 0, sizeof(c));
        snprintf(c.id, sizeof(c.id), "%s", ids[i]);
        snprintf(c.email, sizeof(c.email), "%s@Example.com", ids[i]);
        snprintf(c.name, sizeof(c.name), "Zoë\t\"tab\"\\ and\nnewline"); /* COPY's escapes */
        snprintf(c.plan_id, sizeof(c.plan_id), "pro");
        snprintf(c.status, sizeof(c.status), "active");
        c.created_at = c.anchor_at = 1767225600 - 10 + i;
        assert_int_equal(tg_store_customer_insert(st, &c, &err), 0);
        tg_key_t k;
        memset(&k, 0, sizeof(k));
        snprintf(k.id, sizeof(k.id), "key_%s", ids[i]);
        snprintf(k.customer_id, sizeof(k.customer_id), "%s", ids[i]);
        for (int j = 0; j < 32; j++)
            k.hash[j] = (uint8_t)(j * 7 + i);
        k.hash[1] = '\\';
        snprintf(k.prefix, sizeof(k.prefix), "tg_live_%d", i);
        k.created_at = c.created_at;
        assert_int_equal(tg_store_key_insert(st, &k, &err), 0);
    }
    add_usage(st, 1, "cus_a", "api_calls", 5, 0);
    add_usage(st, 2, "cus_a", "api_calls", 7, 1);
    add_usage(st, 3, "cus_b", "tokens", INT64_MAX, 0); /* sums past 2^63 must stay exact */
    add_usage(st, 4, "cus_a", "tokens", INT64_MAX, 0);
    tg_session_t s;
    memset(&s, 0, sizeof(s));
    memset(s.token_hash, 0xab, sizeof(s.token_hash));
    snprintf(s.customer_id, sizeof(s.customer_id), "cus_a");
    snprintf(s.csrf_token, sizeof(s.csrf_token), "csrf");
    s.created_at = 1767225600;
    s.expires_at = s.created_at + 3600;
    assert_int_equal(tg_store_session_insert(st, &s, &err), 0);
    tg_invoice_item_t item;
    memset(&item, 0, sizeof(item));
    snprintf(item.customer_id, sizeof(item.customer_id), "cus_a");
    snprintf(item.description, sizeof(item.description), "credit");
    snprintf(item.currency, sizeof(item.currency), "usd");
    item.amount = -2500000000;
    item.created_at = 1767225600;
    assert_int_equal(tg_store_invoice_item_add(st, &item, &err), 0);
    assert_int_equal(tg_store_invoice_item_add(st, &item, &err), 0);
    assert_int_equal(tg_store_plan_change_add(st, "cus_b", "free", "pro", "upgrade", 1767225600, &err), 0);
    /* Stripe events: SQLite's implicit rowid goes into PostgreSQL's explicit rowid column */
    for (int i = 0; i < 3; i++) {
        tg_stripe_event_row_t e;
        memset(&e, 0, sizeof(e));
        snprintf(e.id, sizeof(e.id), "evt_%d", 3 - i);
        snprintf(e.type, sizeof(e.type), "invoice.paid");
        snprintf(e.object_id, sizeof(e.object_id), "in_%d", i);
        e.created = e.received_at = 1767225600;
        e.payload = (char *)"{\"id\": \"evt\"}";
        e.payload_len = strlen(e.payload);
        int inserted = 0;
        assert_int_equal(tg_store_stripe_event_insert(st, &e, &inserted, &err), 0);
        assert_int_equal(inserted, 1);
    }
}

static int setup(void **state)
{
    const char *url = getenv("TG_TEST_PG_URL");
    *state = NULL;
    if (url == NULL || url[0] == '\0')
        return 0;
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    static unsigned counter;
    snprintf(f->dbname, sizeof(f->dbname), "tg_%ld_copy%u", (long)getpid(), counter++);
    f->admin = pg_connect(url, NULL);
    assert_non_null(f->admin);
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", f->dbname);
    pg_do(f->admin, sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", f->dbname);
    pg_do(f->admin, sql);
    f->db = pg_connect(url, f->dbname);
    assert_non_null(f->db);
    /* the server URL with our database as its path */
    const char *host = strstr(url, "://");
    assert_non_null(host);
    const char *slash = strchr(host + 3, '/');
    const char *query = strchr(host + 3, '?');
    int base = (int)(slash != NULL ? slash - url : query != NULL ? query - url : (long)strlen(url));
    snprintf(f->url, sizeof(f->url), "%.*s/%s%s", base, url, f->dbname, query != NULL ? query : "");
    assert_int_equal(src_open(&f->src), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f == NULL)
        return 0;
    src_close(&f->src);
    PQfinish(f->db);
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", f->dbname);
    pg_do(f->admin, sql);
    PQfinish(f->admin);
    free(f);
    return 0;
}

static fx_t *fixture_or_skip(void **state)
{
    if (*state == NULL) {
        print_message("TG_TEST_PG_URL is not set (scripts/run-tests.sh unit starts a PostgreSQL): skipped\n");
        skip();
    }
    return *state;
}

static uint64_t report_rows(const tg_store_copy_report_t *rep, const char *table)
{
    for (size_t i = 0; i < rep->ntables; i++)
        if (strcmp(rep->tables[i].name, table) == 0)
            return rep->tables[i].rows;
    fail_msg("table %s is not in the report", table);
    return 0;
}

static const char *report_total(const tg_store_copy_report_t *rep, const char *what)
{
    for (size_t i = 0; i < rep->ntotals; i++)
        if (strcmp(rep->totals[i].what, what) == 0)
            return rep->totals[i].value;
    fail_msg("total %s is not in the report", what);
    return "";
}

static void test_copy_into_empty(void **state)
{
    fx_t *f = fixture_or_skip(state);
    fill(f->src.st);
    tg_err_t err = {0};
    int rc = tg_store_copy(f->src.url, f->url, &f->rep, &err);
    if (rc != 0)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(report_rows(&f->rep, "customers"), 2);
    assert_int_equal(report_rows(&f->rep, "api_keys"), 2);
    assert_int_equal(report_rows(&f->rep, "usage_batches"), 4);
    assert_int_equal(report_rows(&f->rep, "usage_journal"), 0);
    assert_int_equal(report_rows(&f->rep, "usage_event_ids"), 1); /* the nodes' dedup goes along */
    assert_int_equal(report_rows(&f->rep, "sessions"), 1);
    assert_int_equal(report_rows(&f->rep, "invoice_items"), 2);
    assert_int_equal(report_rows(&f->rep, "plan_changes"), 1);
    assert_string_equal(report_total(&f->rep, "usage_period.units"), "18446744073709551626"); /* 12 + 2 x (2^63-1) */
    assert_string_equal(report_total(&f->rep, "invoice_items.amount usd"), "-5.00");

    char v[256];
    assert_string_equal(pg_value(f->db, "SELECT count(*) FROM customers", v, sizeof(v)), "2");
    assert_string_equal(pg_value(f->db, "SELECT sum(units) FROM usage_period WHERE metric = 'api_calls'", v, sizeof(v)),
                        "12");
    assert_string_equal(pg_value(f->db, "SELECT name FROM customers WHERE id = 'cus_a'", v, sizeof(v)),
                        "Zoë\t\"tab\"\\ and\nnewline");
    /* the whole hash, byte for byte (it holds 0x00 and a backslash) */
    char want[65] = "";
    uint8_t h[32];
    for (int j = 0; j < 32; j++)
        h[j] = (uint8_t)(j * 7);
    h[1] = '\\';
    for (int j = 0; j < 32; j++)
        snprintf(want + 2 * j, 3, "%02x", h[j]);
    assert_string_equal(
        pg_value(f->db, "SELECT encode(hash, 'hex') FROM api_keys WHERE id = 'key_cus_a'", v, sizeof(v)), want);
    assert_string_equal(pg_value(f->db, "SELECT encode(token_hash, 'hex') FROM sessions", v, sizeof(v)),
                        "abababababababababababababababababababababababababababababababab");
    /* the target's identity sequences continue after the copied ids */
    assert_string_equal(pg_value(f->db,
                                 "INSERT INTO invoice_items (customer_id, created_at, description, amount, currency)"
                                 " VALUES ('cus_b', 0, 'x', 1, 'usd') RETURNING id",
                                 v, sizeof(v)),
                        "3");
    /* insertion order survives: evt_3 was stored first (rowid 1), evt_1 last */
    assert_string_equal(
        pg_value(f->db, "SELECT string_agg(id || '=' || rowid, ',' ORDER BY rowid) FROM stripe_events", v, sizeof(v)),
        "evt_3=1,evt_2=2,evt_1=3");
    assert_string_equal(pg_value(f->db,
                                 "INSERT INTO stripe_events (id, type, created, object_id, payload, received_at)"
                                 " VALUES ('evt_4', 'x', 0, 'o', '{}', 0) RETURNING rowid",
                                 v, sizeof(v)),
                        "4");
    /* the target works with its own case-insensitive email rule */
    assert_string_equal(
        pg_value(f->db, "SELECT id FROM customers WHERE lower(email) = 'cus_b@example.com'", v, sizeof(v)), "cus_b");
}

static void test_refuses_non_empty_target(void **state)
{
    fx_t *f = fixture_or_skip(state);
    fill(f->src.st);
    tg_err_t err = {0};
    assert_int_equal(tg_store_copy(f->src.url, f->url, &f->rep, &err), 0);
    char before[64], after[64], v[64];
    snprintf(before, sizeof(before), "%s", pg_value(f->db, "SELECT count(*) FROM usage_batches", v, sizeof(v)));
    assert_int_equal(tg_store_copy(f->src.url, f->url, &f->rep, &err), TG_ESTATE);
    assert_non_null(strstr(err.msg, "the target database is not empty: table "));
    assert_non_null(strstr(err.msg, " has rows"));
    assert_int_equal(f->rep.ntables, 0);
    snprintf(after, sizeof(after), "%s", pg_value(f->db, "SELECT count(*) FROM usage_batches", v, sizeof(v)));
    assert_string_equal(before, after);
    assert_string_equal(pg_value(f->db, "SELECT count(*) FROM customers", v, sizeof(v)), "2");

    /* one row in one table is enough: the next database gets a single meter_export row */
    pg_do(f->db, "DELETE FROM sessions; DELETE FROM api_keys; DELETE FROM invoice_items; DELETE FROM plan_changes;"
                 " DELETE FROM usage_batches; DELETE FROM usage_period; DELETE FROM usage_daily;"
                 " DELETE FROM customer_schedule; DELETE FROM customers; INSERT INTO meter_export (id, since) VALUES (1, 0)");
    assert_int_equal(tg_store_copy(f->src.url, f->url, &f->rep, &err), TG_ESTATE);
    assert_non_null(strstr(err.msg, "table meter_export has rows"));
    assert_string_equal(pg_value(f->db, "SELECT count(*) FROM customers", v, sizeof(v)), "0");
}

static void test_verification_failure_rolls_back(void **state)
{
    fx_t *f = fixture_or_skip(state);
    fill(f->src.st);
    tg_err_t err = {0};
    /* the target's schema, then a trigger that adds one unit to each usage total as it lands */
    tg_store_t *dst = NULL;
    assert_int_equal(tg_store_open(f->url, &dst, &err), 0);
    assert_int_equal(tg_store_migrate(dst, &err), 0);
    tg_store_close(dst);
    pg_do(f->db, "CREATE FUNCTION skew() RETURNS trigger LANGUAGE plpgsql AS"
                 " $$BEGIN NEW.units := NEW.units - 1; RETURN NEW; END$$;"
                 "CREATE TRIGGER skew BEFORE INSERT ON usage_daily FOR EACH ROW EXECUTE FUNCTION skew()");
    assert_int_equal(tg_store_copy(f->src.url, f->url, &f->rep, &err), TG_ESTORE);
    assert_non_null(strstr(err.msg, "verification failed, nothing was written: usage_daily.units sum is "));
    assert_int_equal(f->rep.ntables, 0);
    char v[64];
    assert_string_equal(pg_value(f->db, "SELECT count(*) FROM customers", v, sizeof(v)), "0");
    assert_string_equal(pg_value(f->db, "SELECT count(*) FROM usage_daily", v, sizeof(v)), "0");

    /* a trigger that drops a row: the row count differs */
    pg_do(f->db, "DROP TRIGGER skew ON usage_daily;"
                 "CREATE FUNCTION drop_one() RETURNS trigger LANGUAGE plpgsql AS"
                 " $$BEGIN IF NEW.id = 'key_cus_b' THEN RETURN NULL; END IF; RETURN NEW; END$$;"
                 "CREATE TRIGGER drop_one BEFORE INSERT ON api_keys FOR EACH ROW EXECUTE FUNCTION drop_one()");
    assert_int_equal(tg_store_copy(f->src.url, f->url, &f->rep, &err), TG_ESTORE);
    assert_non_null(strstr(err.msg, "api_keys"));
    assert_string_equal(pg_value(f->db, "SELECT count(*) FROM customers", v, sizeof(v)), "0");

    /* values changed in place, same length: counts, sums and lengths agree; the row digests do not */
    pg_do(f->db, "DROP TRIGGER drop_one ON api_keys;"
                 "CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS"
                 " $$BEGIN NEW.name := upper(NEW.name); RETURN NEW; END$$;"
                 "CREATE TRIGGER shout BEFORE INSERT ON customers FOR EACH ROW EXECUTE FUNCTION shout()");
    assert_int_equal(tg_store_copy(f->src.url, f->url, &f->rep, &err), TG_ESTORE);
    assert_non_null(strstr(err.msg, "customers: the rows the target holds differ from the rows sent"));
    pg_do(f->db, "DROP TRIGGER shout ON customers;"
                 "CREATE FUNCTION flip() RETURNS trigger LANGUAGE plpgsql AS"
                 " $$BEGIN NEW.hash := set_byte(NEW.hash, 31, get_byte(NEW.hash, 31) # 1); RETURN NEW; END$$;"
                 "CREATE TRIGGER flip BEFORE INSERT ON api_keys FOR EACH ROW EXECUTE FUNCTION flip()");
    assert_int_equal(tg_store_copy(f->src.url, f->url, &f->rep, &err), TG_ESTORE);
    assert_non_null(strstr(err.msg, "api_keys: the rows the target holds differ from the rows sent"));
    assert_string_equal(pg_value(f->db, "SELECT count(*) FROM customers", v, sizeof(v)), "0");

    /* without them, the same copy goes through */
    pg_do(f->db, "DROP TRIGGER flip ON api_keys");
    assert_int_equal(tg_store_copy(f->src.url, f->url, &f->rep, &err), 0);
}

static void test_schema_differences_refused(void **state)
{
    fx_t *f = fixture_or_skip(state);
    fill(f->src.st);
    tg_err_t err = {0};
    tg_store_t *dst = NULL;
    assert_int_equal(tg_store_open(f->url, &dst, &err), 0);
    assert_int_equal(tg_store_migrate(dst, &err), 0);
    tg_store_close(dst);
    pg_do(f->db, "ALTER TABLE customers ADD COLUMN extra TEXT");
    assert_int_equal(tg_store_copy(f->src.url, f->url, &f->rep, &err), TG_ESTATE);
    assert_string_equal(err.msg, "column customers.extra is in the target database but not in the source");
    pg_do(f->db, "ALTER TABLE customers DROP COLUMN extra; ALTER TABLE sessions DROP COLUMN csrf_token");
    assert_int_equal(tg_store_copy(f->src.url, f->url, &f->rep, &err), TG_ESTATE);
    assert_string_equal(err.msg, "column sessions.csrf_token is in the source database but not in the target");
    pg_do(f->db, "ALTER TABLE sessions ADD COLUMN csrf_token TEXT NOT NULL; CREATE TABLE extra_table (x BIGINT)");
    assert_int_equal(tg_store_copy(f->src.url, f->url, &f->rep, &err), TG_ESTATE);
    assert_string_equal(err.msg, "table extra_table is in the target database but not in the source");
    char v[64];
    assert_string_equal(pg_value(f->db, "SELECT count(*) FROM customers", v, sizeof(v)), "0");
}

static void test_bad_sources(void **state)
{
    fx_t *f = fixture_or_skip(state);
    tg_err_t err = {0};
    char url[256], path[200];
    snprintf(path, sizeof(path), "%s/missing.db", f->src.dir);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    assert_int_equal(tg_store_copy(url, f->url, &f->rep, &err), TG_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no such file"));
    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0); /* not created by the attempt */
    assert_int_equal(tg_store_copy(f->url, f->src.url, &f->rep, &err), TG_EINVAL);
    assert_int_equal(tg_store_copy(f->src.url, f->src.url, &f->rep, &err), TG_EINVAL);
}

/* A gateway killed with batches still in the usage journal (not yet in the totals): the copy
 * folds them first, so the totals copied include them, once. */
static void test_unfolded_journal_is_folded(void **state)
{
    fx_t *f = fixture_or_skip(state);
    fill(f->src.st);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* a writer that dies without closing its store (no fold on close) */
        tg_store_t *st = NULL;
        tg_err_t err = {0};
        if (tg_store_open(f->src.url, &st, &err) != 0)
            _exit(1);
        tg_usage_t u;
        memset(&u, 0, sizeof(u));
        snprintf(u.customer_id, sizeof(u.customer_id), "cus_b");
        snprintf(u.key_id, sizeof(u.key_id), "key_cus_b");
        snprintf(u.plan_id, sizeof(u.plan_id), "pro");
        snprintf(u.metric, sizeof(u.metric), "api_calls");
        snprintf(u.endpoint, sizeof(u.endpoint), "GET /v1/x");
        u.units = 100;
        u.ts_ns = INT64_C(1767225600) * 1000000000;
        u.period_start = 1767225600;
        u.status = 200;
        _exit(tg_store_usage_record(st, 99, &u, 1, NULL, &err) == 0 ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    tg_err_t err = {0};
    int rc = tg_store_copy(f->src.url, f->url, &f->rep, &err);
    if (rc != 0)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(report_rows(&f->rep, "usage_batches"), 5);
    assert_int_equal(report_rows(&f->rep, "usage_journal"), 0);
    char v[64];
    assert_string_equal(pg_value(f->db, "SELECT sum(units) FROM usage_period WHERE metric = 'api_calls'", v, sizeof(v)),
                        "112");
}

/* Runs sql on the source's SQLite file directly (what the store's calls cannot make). */
static void src_exec(const src_t *t, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(t->url + 7, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("SQLite: %s in %s", msg, sql);
    sqlite3_close(db);
}

static tg_usage_t event_usage(const char *customer, uint64_t id, int64_t ts_s)
{
    tg_usage_t u;
    memset(&u, 0, sizeof(u));
    u.event_id = id | TG_USAGE_EVENT_BIT;
    snprintf(u.customer_id, sizeof(u.customer_id), "%s", customer);
    snprintf(u.plan_id, sizeof(u.plan_id), "pro");
    snprintf(u.metric, sizeof(u.metric), "tokens");
    snprintf(u.endpoint, sizeof(u.endpoint), "%s", TG_USAGE_EVENT_ENDPOINT);
    u.units = 1;
    u.ts_ns = ts_s * 1000000000;
    u.period_start = 1767225600;
    u.status = 200;
    return u;
}

/* Every id reaches PostgreSQL's usage_event_ids with its customer and time: from blocks (two
 * batches of one call, one batch of another) and from a row stored before migration 35. */
static void test_event_id_blocks_become_rows(void **state)
{
    fx_t *f = fixture_or_skip(state);
    fill(f->src.st); /* one event: a block of 1 */
    tg_err_t err = {0};
    tg_usage_t a[3] = {event_usage("cus_a", 100, 1767225601), event_usage("cus_b", 101, 1767225602),
                       event_usage("cus_a", 102, 1767225603)},
               b = event_usage("cus_b", 103, 1767225604);
    tg_usage_batch_t two[2] = {{50, a, 2, NULL}, {51, &a[2], 1, NULL}}, one = {52, &b, 1, NULL};
    assert_int_equal(tg_store_usage_record_many(f->src.st, two, 2, NULL, &err), 0);
    assert_int_equal(tg_store_usage_record_many(f->src.st, &one, 1, NULL, &err), 0);
    src_exec(&f->src, "INSERT INTO usage_event_ids(event_id, customer_id, ts) VALUES (9, 'cus_old', 1767225000)");
    int rc = tg_store_copy(f->src.url, f->url, &f->rep, &err);
    if (rc != 0)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(report_rows(&f->rep, "usage_event_ids"), 6); /* 1 old row, 5 from 3 blocks */
    assert_string_equal(report_total(&f->rep, "usage_event_id_blocks.n"), "5");
    for (size_t i = 0; i < f->rep.ntables; i++)
        assert_string_not_equal(f->rep.tables[i].name, "usage_event_id_blocks"); /* not a table there */
    char v[512];
    assert_string_equal(pg_value(f->db,
                                 "SELECT string_agg(customer_id || ':' || event_id || ':' || ts, ',' ORDER BY event_id)"
                                 " FROM usage_event_ids",
                                 v, sizeof(v)),
                        "cus_a:2:1767225600,cus_old:9:1767225000,cus_a:100:1767225601,cus_b:101:1767225602,"
                        "cus_a:102:1767225603,cus_b:103:1767225604");
}

/* A damaged block in the source: the copy stops naming it, before writing anything. */
static void test_malformed_event_id_block_refused(void **state)
{
    fx_t *f = fixture_or_skip(state);
    fill(f->src.st);
    src_exec(&f->src, "INSERT INTO usage_event_id_blocks(id, ts_min, ts_max, n, data)"
                      " VALUES (77, 0, 100, 2, X'01000000000000001000000000000000026162')");
    tg_err_t err = {0};
    assert_int_equal(tg_store_copy(f->src.url, f->url, &f->rep, &err), TG_ESTORE);
    if (strstr(err.msg, "usage_event_id_blocks row 77 is malformed") == NULL)
        fail_msg("%s", err.msg);
    assert_int_equal(f->rep.ntables, 0);
    char v[64]; /* refused while reading the source: the target was not even migrated */
    assert_string_equal(pg_value(f->db,
                                 "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()",
                                 v, sizeof(v)),
                        "0");
}

/* An id PostgreSQL drops as it lands: the rows of usage_event_ids no longer match the ids of the
 * source's blocks, and everything rolls back. */
static void test_event_id_lost_in_target_refused(void **state)
{
    fx_t *f = fixture_or_skip(state);
    fill(f->src.st);
    tg_err_t err = {0};
    tg_store_t *dst = NULL;
    assert_int_equal(tg_store_open(f->url, &dst, &err), 0);
    assert_int_equal(tg_store_migrate(dst, &err), 0);
    tg_store_close(dst);
    pg_do(f->db, "CREATE FUNCTION lose() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;"
                 "CREATE TRIGGER lose BEFORE INSERT ON usage_event_ids FOR EACH ROW EXECUTE FUNCTION lose()");
    assert_int_equal(tg_store_copy(f->src.url, f->url, &f->rep, &err), TG_ESTORE);
    assert_non_null(strstr(err.msg, "usage_event_ids"));
    char v[64];
    assert_string_equal(pg_value(f->db, "SELECT count(*) FROM customers", v, sizeof(v)), "0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_copy_into_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_non_empty_target, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verification_failure_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_differences_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_sources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unfolded_journal_is_folded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_id_blocks_become_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_event_id_block_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_id_lost_in_target_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
