/* test_store.c - the store on real databases: a temporary SQLite file, or with
 * TG_TEST_BACKEND=postgres a fresh PostgreSQL database (tests/support/tmpstore.h); the same
 * assertions run on both. What only SQLite has (its file, WAL) is checked on SQLite only. The
 * metering writer has test_meter.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../support/tmpstore.h"
#include "store/migrations.h"
#include "store/store.h"

typedef struct {
    tg_tmpstore_t db;
    const char *url; /* db.url */
    tg_store_t *st;  /* db.st */
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(tg_tmpstore_open(&f->db, "store"), 0);
    f->url = f->db.url;
    f->st = f->db.st;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    assert_int_equal(tg_tmpstore_close(&f->db), 0);
    free(f);
    return 0;
}

static int is_sqlite(const fx_t *f)
{
    return tg_tmpstore_is_sqlite(&f->db);
}

static tg_customer_t customer(const char *id, const char *email, int64_t created_at)
{
    tg_customer_t c = {0};
    snprintf(c.id, sizeof(c.id), "%s", id);
    snprintf(c.email, sizeof(c.email), "%s", email);
    snprintf(c.name, sizeof(c.name), "Name of %s", id);
    snprintf(c.plan_id, sizeof(c.plan_id), "free");
    snprintf(c.status, sizeof(c.status), "active");
    c.created_at = c.anchor_at = created_at;
    return c;
}

static void add_customer(fx_t *f, const char *id, const char *email)
{
    tg_customer_t c = customer(id, email, 1000);
    tg_err_t err = {0};
    assert_int_equal(tg_store_customer_insert(f->st, &c, &err), 0);
}

/* One integer from the database through a separate plain connection (SQL both backends take). */
static long long sql_int(fx_t *f, const char *sql)
{
    long long v;
    if (is_sqlite(f)) {
        sqlite3 *db;
        sqlite3_stmt *s;
        assert_int_equal(sqlite3_open(f->url + strlen("sqlite:"), &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        v = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
        sqlite3_close(db);
        return v;
    }
    PGconn *c = PQconnectdb(f->url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        print_error("PostgreSQL: %s in %s\n", PQerrorMessage(c), sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return v;
}

static void test_open_errors(void **state)
{
    (void)state;
    tg_err_t err = {0};
    tg_store_t *st = (tg_store_t *)1;
    assert_int_equal(tg_store_open("mysql://db.example/tollgate", &st, &err), TG_EINVAL);
    assert_null(st);
    assert_non_null(strstr(err.msg, "\"mysql\""));
    tg_store_close(NULL); /* like free(NULL) */
    assert_int_equal(tg_store_open("/var/lib/t.db", &st, &err), TG_EINVAL);
    assert_non_null(strstr(err.msg, "no scheme"));
    assert_int_equal(tg_store_open("sqlite:", &st, &err), TG_EINVAL);
    assert_int_equal(tg_store_open("sqlite:/proc/no/such/dir/t.db", &st, &err), TG_EIO);
    assert_non_null(strstr(err.msg, "/proc/no"));
}

static void test_migrations(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    int v = 0;
    const tg_migration_t *ms = is_sqlite(f) ? tg_sqlite_migrations : tg_pg_migrations;
    size_t count = is_sqlite(f) ? tg_sqlite_migrations_count : tg_pg_migrations_count;
    int latest = ms[count - 1].version;
    assert_int_equal(tg_store_schema_version(f->st, &v, &err), 0);
    assert_int_equal(v, latest);
    assert_int_equal(tg_store_migrate(f->st, &err), 0); /* idempotent */
    /* and from a second connection, as a restarted process would */
    tg_store_t *again;
    assert_int_equal(tg_store_open(f->url, &again, &err), 0);
    assert_int_equal(tg_store_migrate(again, &err), 0);
    assert_int_equal(tg_store_schema_version(again, &v, &err), 0);
    assert_int_equal(v, latest);
    tg_store_close(again);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM schema_migrations"), (long long)count);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM schema_migrations WHERE applied_at > 0"), (long long)count);
    /* the migrations are numbered in ascending order from 1; branches reserve numbers, so there
     * may be gaps (11 belongs to another branch of issue 11) */
    assert_int_equal(ms[0].version, 1);
    for (size_t i = 1; i < count; i++)
        assert_true(ms[i].version > ms[i - 1].version);

    if (is_sqlite(f)) {
        /* WAL is a property of the file: a plain connection sees it */
        sqlite3 *db;
        sqlite3_stmt *s;
        assert_int_equal(sqlite3_open(f->url + strlen("sqlite:"), &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
        sqlite3_finalize(s);
        sqlite3_close(db);
    }

    /* an empty database has version 0 */
    tg_tmpstore_t empty = {0};
    if (is_sqlite(f))
        snprintf(empty.url, sizeof(empty.url), "sqlite:%s/sub/dir/empty.db", f->db.dir); /* folders are made */
    else
        assert_int_equal(tg_tmpstore_pg_create(&empty), 0);
    assert_int_equal(tg_store_open(empty.url, &empty.st, &err), 0);
    v = -1;
    assert_int_equal(tg_store_schema_version(empty.st, &v, &err), 0);
    assert_int_equal(v, 0);
    tg_store_close(empty.st);
    if (!is_sqlite(f))
        assert_int_equal(tg_tmpstore_pg_drop(&empty), 0);
}

typedef struct {
    char ids[8][TG_ID_MAX];
    int n, stop_after;
} seen_t;

static int on_customer(const tg_customer_t *c, void *arg)
{
    seen_t *s = arg;
    snprintf(s->ids[s->n++], TG_ID_MAX, "%s", c->id);
    return s->n == s->stop_after;
}

static void test_customers(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    tg_customer_t c = customer("cus_1", "Dev@Example.com", 1000);
    c.trial_end = 5000;
    snprintf(c.pending_plan_id, sizeof(c.pending_plan_id), "free");
    c.pending_at = 6000;
    c.cancel_at = 7000;
    assert_int_equal(tg_store_customer_insert(f->st, &c, &err), 0);
    tg_customer_t got;
    assert_int_equal(tg_store_customer_get(f->st, "cus_1", &got, &err), 0);
    assert_memory_equal(&got, &c, sizeof(c)); /* every field round-trips */

    tg_customer_t dup = customer("cus_2", "dev@example.COM", 1001); /* same email, other case */
    assert_int_equal(tg_store_customer_insert(f->st, &dup, &err), TG_EEXIST);
    assert_non_null(strstr(err.msg, "dev@example.COM"));
    dup = customer("cus_1", "other@example.com", 1001); /* same id */
    assert_int_equal(tg_store_customer_insert(f->st, &dup, &err), TG_EEXIST);
    assert_non_null(strstr(err.msg, "cus_1"));

    snprintf(got.plan_id, sizeof(got.plan_id), "pro");
    snprintf(got.status, sizeof(got.status), "past_due");
    assert_int_equal(tg_store_customer_update(f->st, &got, &err), 0);
    assert_int_equal(tg_store_customer_get(f->st, "cus_1", &got, &err), 0);
    assert_string_equal(got.plan_id, "pro");
    assert_string_equal(got.status, "past_due");
    assert_int_equal(tg_store_customer_get(f->st, "cus_404", &got, &err), TG_ENOTFOUND);
    assert_non_null(strstr(err.msg, "cus_404"));
    tg_customer_t ghost = customer("cus_404", "ghost@example.com", 1);
    assert_int_equal(tg_store_customer_update(f->st, &ghost, &err), TG_ENOTFOUND);

    /* changing an email onto another customer's is a conflict too */
    tg_customer_t second = customer("cus_2", "second@example.com", 2000);
    assert_int_equal(tg_store_customer_insert(f->st, &second, &err), 0);
    snprintf(second.email, sizeof(second.email), "DEV@example.com");
    assert_int_equal(tg_store_customer_update(f->st, &second, &err), TG_EEXIST);
    assert_non_null(strstr(err.msg, "DEV@example.com"));

    tg_customer_t third = customer("cus_3", "third@example.com", 1500);
    assert_int_equal(tg_store_customer_insert(f->st, &third, &err), 0);
    seen_t seen = {.stop_after = -1};
    assert_int_equal(tg_store_customer_list(f->st, on_customer, &seen, &err), 0);
    assert_int_equal(seen.n, 3); /* newest first */
    assert_string_equal(seen.ids[0], "cus_2");
    assert_string_equal(seen.ids[1], "cus_3");
    assert_string_equal(seen.ids[2], "cus_1");
    seen = (seen_t){.stop_after = 1};
    assert_int_equal(tg_store_customer_list(f->st, on_customer, &seen, &err), 0);
    assert_int_equal(seen.n, 1); /* a non-zero return stops the walk */
}

static int on_key(const tg_key_t *k, void *arg)
{
    seen_t *s = arg;
    snprintf(s->ids[s->n++], TG_ID_MAX, "%s", k->id);
    return s->n == s->stop_after;
}

static tg_key_t key(const char *id, const char *customer_id, uint8_t fill, int64_t created_at)
{
    tg_key_t k = {0};
    snprintf(k.id, sizeof(k.id), "%s", id);
    snprintf(k.customer_id, sizeof(k.customer_id), "%s", customer_id);
    memset(k.hash, fill, sizeof(k.hash));
    snprintf(k.prefix, sizeof(k.prefix), "tg_live_%c", 'a' + fill % 26);
    snprintf(k.name, sizeof(k.name), "key %s", id);
    k.created_at = created_at;
    return k;
}

static void test_keys(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    add_customer(f, "cus_1", "a@example.com");
    add_customer(f, "cus_2", "b@example.com");
    tg_key_t k = key("key_1", "cus_1", 7, 5);
    assert_int_equal(tg_store_key_insert(f->st, &k, &err), 0);
    tg_key_t k2 = key("key_2", "cus_1", 8, 6), k3 = key("key_3", "cus_2", 9, 7);
    assert_int_equal(tg_store_key_insert(f->st, &k2, &err), 0);
    assert_int_equal(tg_store_key_insert(f->st, &k3, &err), 0);

    tg_key_t g;
    assert_int_equal(tg_store_key_get(f->st, "key_1", &g, &err), 0);
    assert_memory_equal(&g, &k, sizeof(k));
    assert_int_equal(tg_store_key_get(f->st, "key_404", &g, &err), TG_ENOTFOUND);

    assert_int_equal(tg_store_key_set_revoked(f->st, "key_1", 99, &err), 0);
    assert_int_equal(tg_store_key_set_expires(f->st, "key_1", 77, &err), 0);
    assert_int_equal(tg_store_key_touch(f->st, "key_1", 50, &err), 0);
    assert_int_equal(tg_store_key_touch(f->st, "key_1", 40, &err), 0); /* never moves back */
    assert_int_equal(tg_store_key_get(f->st, "key_1", &g, &err), 0);
    assert_int_equal(g.revoked_at, 99);
    assert_int_equal(g.expires_at, 77);
    assert_int_equal(g.last_used_at, 50);
    assert_int_equal(tg_store_key_get(f->st, "key_2", &g, &err), 0);
    assert_int_equal(g.revoked_at, 0); /* the others are untouched */
    assert_int_equal(g.last_used_at, 0);
    assert_int_equal(tg_store_key_set_revoked(f->st, "key_404", 1, &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_key_set_expires(f->st, "key_404", 1, &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_key_touch(f->st, "key_404", 1, &err), TG_ENOTFOUND);

    seen_t seen = {.stop_after = -1};
    assert_int_equal(tg_store_key_list(f->st, "cus_1", on_key, &seen, &err), 0);
    assert_int_equal(seen.n, 2); /* one customer's, newest first */
    assert_string_equal(seen.ids[0], "key_2");
    assert_string_equal(seen.ids[1], "key_1");
    seen = (seen_t){.stop_after = -1};
    assert_int_equal(tg_store_key_list(f->st, NULL, on_key, &seen, &err), 0);
    assert_int_equal(seen.n, 3); /* everyone's */
    seen = (seen_t){.stop_after = 2};
    assert_int_equal(tg_store_key_list(f->st, NULL, on_key, &seen, &err), 0);
    assert_int_equal(seen.n, 2);

    tg_key_t same_hash = key("key_4", "cus_2", 7, 8);
    assert_int_equal(tg_store_key_insert(f->st, &same_hash, &err), TG_EEXIST);
    tg_key_t same_id = key("key_1", "cus_2", 10, 8);
    assert_int_equal(tg_store_key_insert(f->st, &same_id, &err), TG_EEXIST);
    tg_key_t orphan = key("key_5", "cus_nobody", 11, 8);
    assert_int_equal(tg_store_key_insert(f->st, &orphan, &err), TG_ENOTFOUND); /* foreign key */
    assert_non_null(strstr(err.msg, "cus_nobody"));
}

static tg_usage_t row(const char *customer_id, const char *metric, uint64_t units)
{
    tg_usage_t u = {0};
    u.event_id = 1;
    snprintf(u.customer_id, sizeof(u.customer_id), "%s", customer_id);
    snprintf(u.key_id, sizeof(u.key_id), "key_1");
    snprintf(u.plan_id, sizeof(u.plan_id), "free");
    snprintf(u.metric, sizeof(u.metric), "%s", metric);
    snprintf(u.endpoint, sizeof(u.endpoint), "GET /x");
    u.units = units;
    u.ts_ns = INT64_C(1769853600) * 1000000000; /* 2026-01-31T10:00:00Z */
    u.period_start = 1000;
    u.status = 200;
    return u;
}

typedef struct {
    uint64_t api_calls, tokens;
    int rows;
} sums_t;

static int sum_cb(const char *metric, uint64_t units, void *arg)
{
    sums_t *s = arg;
    s->rows++;
    if (strcmp(metric, "api_calls") == 0)
        s->api_calls += units;
    else if (strcmp(metric, "tokens") == 0)
        s->tokens += units;
    return 0;
}

typedef struct {
    char days[8][16];
    uint64_t units[8];
    int n;
} days_t;

static int day_cb(const char *day, const char *metric, uint64_t units, void *arg)
{
    days_t *d = arg;
    if (strcmp(metric, "api_calls") != 0)
        return 0;
    snprintf(d->days[d->n], sizeof(d->days[0]), "%s", day);
    d->units[d->n++] = units;
    return 0;
}

/* Several batches in one transaction: all new (stored, every id recorded), all stored before
 * (nothing), or a mix (refused whole, so the caller can go one by one). */
static void test_usage_many_batches(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    tg_usage_t a[2] = {row("cus_1", "api_calls", 1), row("cus_2", "api_calls", 2)}, b = row("cus_1", "api_calls", 4),
               c = row("cus_3", "api_calls", 8);
    tg_usage_batch_t two[2] = {{10, a, 2, NULL}, {11, &b, 1, NULL}};
    size_t ins = 99;
    tg_usage_stored_t out;
    assert_int_equal(tg_store_usage_record_many(f->st, two, 2, &out, &err), 0);
    assert_int_equal(out.inserted, 3);
    assert_int_equal(out.rejected, 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM usage_batches WHERE batch_id IN (10, 11)"), 2);
    assert_int_equal(sql_int(f, "SELECT rows FROM usage_batches WHERE batch_id = 10"), 2);
    assert_int_equal(tg_store_usage_record_many(f->st, two, 2, &out, &err), 0); /* retried whole */
    assert_int_equal(out.inserted, 0);
    tg_usage_batch_t mixed[2] = {{11, &b, 1, NULL}, {12, &c, 1, NULL}};
    assert_int_equal(tg_store_usage_record_many(f->st, mixed, 2, NULL, &err), TG_EEXIST);
    assert_non_null(strstr(err.msg, "1 of 2 batches were stored before"));
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM usage_batches WHERE batch_id = 12"), 0); /* rolled back */
    assert_int_equal(tg_store_usage_record(f->st, 12, &c, 1, &ins, &err), 0);                 /* one by one */
    assert_int_equal(ins, 1);
    uint64_t n = 0;
    assert_int_equal(tg_store_usage_total(f->st, "api_calls", &n, &err), 0);
    assert_int_equal(n, 1 + 2 + 4 + 8);
}

/* A transaction of many batches (their ids go into usage_batches up to 16 per statement: 23 is
 * 16 + 4 + 2 + 1): one stored before, in any of those statements, refuses the whole transaction
 * (TG_EEXIST, nothing applied); all new are stored; all stored before is a retry that applies
 * nothing. */
static void test_usage_many_batches_at_once(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    enum { NB = 23 };
    static const size_t stored_before[] = {0, 15, 16, 19, 20, 21, 22};
    const size_t tries = sizeof(stored_before) / sizeof(stored_before[0]);
    tg_usage_t u = row("cus_1", "api_calls", 1);
    tg_usage_batch_t b[NB];
    tg_usage_stored_t out;
    char sql[128];
    for (size_t t = 0; t <= tries; t++) {
        uint64_t base = 1000 * (t + 1);
        for (size_t k = 0; k < NB; k++)
            b[k] = (tg_usage_batch_t){base + k, &u, 1, NULL};
        snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM usage_batches WHERE batch_id BETWEEN %llu AND %llu",
                 (unsigned long long)base, (unsigned long long)base + NB - 1);
        if (t == tries) { /* all new, then all stored before */
            assert_int_equal(tg_store_usage_record_many(f->st, b, NB, &out, &err), 0);
            assert_int_equal(out.inserted, NB);
            assert_int_equal(sql_int(f, sql), NB);
            assert_int_equal(tg_store_usage_record_many(f->st, b, NB, &out, &err), 0);
            assert_int_equal(out.inserted, 0);
            break;
        }
        size_t ins = 0;
        assert_int_equal(tg_store_usage_record(f->st, base + stored_before[t], &u, 1, &ins, &err), 0);
        assert_int_equal(ins, 1);
        assert_int_equal(tg_store_usage_record_many(f->st, b, NB, &out, &err), TG_EEXIST);
        assert_non_null(strstr(err.msg, "1 of 23 batches were stored before"));
        assert_int_equal(sql_int(f, sql), 1); /* the rest rolled back */
    }
    uint64_t n = 0;
    assert_int_equal(tg_store_usage_total(f->st, "api_calls", &n, &err), 0);
    assert_int_equal(n, tries + NB);
}

static void test_usage_exactly_once(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    tg_usage_t rows[4] = {row("cus_1", "api_calls", 1), row("cus_1", "tokens", 500), row("cus_1", "api_calls", 1),
                          row("cus_1", "api_calls", 1)};
    snprintf(rows[3].plan_id, sizeof(rows[3].plan_id), "pro"); /* after a plan change */
    snprintf(rows[2].endpoint, sizeof(rows[2].endpoint), "POST /y");
    size_t ins = 99;
    assert_int_equal(tg_store_usage_record(f->st, 77, rows, 4, &ins, &err), 0);
    assert_int_equal(ins, 4);
    assert_int_equal(tg_store_usage_record(f->st, 77, rows, 4, &ins, &err), 0); /* a retried batch */
    assert_int_equal(ins, 0);
    uint64_t n = 0;
    assert_int_equal(tg_store_usage_total(f->st, "api_calls", &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(tg_store_usage_total(f->st, "tokens", &n, &err), 0);
    assert_int_equal(n, 500);
    assert_int_equal(tg_store_usage_total(f->st, "nothing", &n, &err), 0);
    assert_int_equal(n, 0);
    sums_t sums = {0};
    assert_int_equal(tg_store_usage_period(f->st, "cus_1", 1000, sum_cb, &sums, &err), 0);
    assert_int_equal(sums.api_calls, 3); /* summed over both plans */
    assert_int_equal(sums.tokens, 500);
    assert_int_equal(sums.rows, 2); /* one line per metric */
    assert_int_equal(sql_int(f, "SELECT units FROM usage_period WHERE plan_id = 'pro'"), 1);
    sums = (sums_t){0};
    assert_int_equal(tg_store_usage_period(f->st, "cus_1", 999, sum_cb, &sums, &err), 0);
    assert_int_equal(sums.rows, 0);

    /* a new batch adds; the next day is its own line */
    tg_usage_t later = row("cus_1", "api_calls", 10);
    later.ts_ns += INT64_C(86400) * 1000000000;
    assert_int_equal(tg_store_usage_record(f->st, 78, &later, 1, &ins, &err), 0);
    assert_int_equal(ins, 1);
    days_t d = {0};
    assert_int_equal(
        tg_store_usage_daily(f->st, "cus_1", INT64_C(1769817600), INT64_C(1769817600) + 2 * 86400, day_cb, &d, &err),
        0);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.days[0], "2026-01-31");
    assert_int_equal(d.units[0], 3); /* over both endpoints */
    assert_string_equal(d.days[1], "2026-02-01");
    assert_int_equal(d.units[1], 10);
    d = (days_t){0}; /* [from, to) excludes the day starting at to */
    assert_int_equal(
        tg_store_usage_daily(f->st, "cus_1", INT64_C(1769817600), INT64_C(1769817600) + 86400, day_cb, &d, &err), 0);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.days[0], "2026-01-31");
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM usage_daily WHERE metric = 'api_calls'"), 3);
}

/* The other connection of test_writers_let_in: one write transaction, which notes how many
 * transactions the looping connection had committed when this one got the lock. */
typedef struct {
    tg_store_t *st;
    atomic_int *loop_commits;
    atomic_int got_in_after; /* -1 until then */
    int rc;
} late_writer_t;

static void *late_writer_main(void *arg)
{
    late_writer_t *w = arg;
    tg_err_t err = {0};
    w->rc = tg_store_tx_begin(w->st, &err);
    if (w->rc == 0) {
        atomic_store(&w->got_in_after, atomic_load(w->loop_commits));
        w->rc = tg_store_tx_commit(w->st, &err);
    }
    return NULL;
}

/* SQLite: a connection that commits and begins again in a loop (the period closer) lets a writer
 * of the same process that waits for the lock go first, at its next commit. The bug this pins:
 * SQLite's own busy handler polls, the loop took the lock back before a poll saw it free, and
 * admin writes waited 3-4 s through a 100,000-customer close (bench/invoices-under-load.sh). */
static void test_writers_let_in(void **state)
{
    fx_t *f = *state;
    if (!is_sqlite(f))
        skip(); /* PostgreSQL queues its row locks itself */
    tg_err_t err = {0};
    atomic_int commits = 0;
    late_writer_t w = {.loop_commits = &commits, .got_in_after = -1};
    assert_int_equal(tg_store_open(f->url, &w.st, &err), 0);
    assert_int_equal(tg_store_writers_waiting(f->st), 0);
    pthread_t t = 0;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(tg_store_tx_begin(f->st, &err), 0);
        if (i == 1) {
            assert_int_equal(pthread_create(&t, NULL, late_writer_main, &w), 0);
            /* until the other connection waits for the lock this one holds (5 s at most) */
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += 5;
            for (;;) {
                struct timespec now;
                clock_gettime(CLOCK_MONOTONIC, &now);
                if (tg_store_writers_waiting(f->st) == 1 || now.tv_sec > until.tv_sec ||
                    (now.tv_sec == until.tv_sec && now.tv_nsec >= until.tv_nsec))
                    break;
                sched_yield();
            }
            assert_int_equal(tg_store_writers_waiting(f->st), 1);
        }
        assert_int_equal(tg_store_tx_commit(f->st, &err), 0);
        atomic_fetch_add(&commits, 1);
        tg_store_let_writers_in(f->st);
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(w.rc, 0);
    assert_int_equal(atomic_load(&w.got_in_after), 2); /* right after the transaction it waited for */
    assert_int_equal(tg_store_writers_waiting(f->st), 0);
    tg_store_close(w.st);
}

/* SQLite: storing usage while another connection holds the write lock fails by name once the
 * busy timeout passes, and leaves the connection usable (its BEGIN and COMMIT are prepared
 * once and reused): the same batch is stored once the lock is gone, then the next. */
static void test_usage_after_a_locked_database(void **state)
{
    fx_t *f = *state;
    if (!is_sqlite(f))
        skip(); /* PostgreSQL locks rows, not the database */
    tg_err_t err = {0};
    size_t ins = 99;
    tg_usage_t u = row("cus_1", "api_calls", 1);
    sqlite3 *other;
    assert_int_equal(sqlite3_open(f->url + strlen("sqlite:"), &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(tg_store_usage_record(f->st, 90, &u, 1, &ins, &err), TG_ESTORE);
    assert_non_null(strstr(err.msg, "storing usage: database is locked"));
    assert_int_equal(ins, 0);
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    assert_int_equal(tg_store_usage_record(f->st, 90, &u, 1, &ins, &err), 0);
    assert_int_equal(ins, 1);
    assert_int_equal(tg_store_usage_record(f->st, 90, &u, 1, &ins, &err), 0); /* stored before */
    assert_int_equal(ins, 0);
    assert_int_equal(tg_store_usage_record(f->st, 91, &u, 1, &ins, &err), 0);
    assert_int_equal(ins, 1);
    uint64_t n = 0;
    assert_int_equal(tg_store_usage_total(f->st, "api_calls", &n, &err), 0);
    assert_int_equal(n, 2);
}

static void test_usage_range(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    size_t ins = 0;
    uint64_t n = 0;
    tg_usage_t rows[2] = {row("cus_1", "api_calls", (uint64_t)INT64_MAX + 1), row("cus_1", "api_calls", 5)};
    assert_int_equal(tg_store_usage_record(f->st, (uint64_t)INT64_MAX + 1, rows + 1, 1, &ins, &err), TG_ERANGE);
    assert_non_null(strstr(err.msg, "storing usage"));
    /* two rows whose sum overflows: the batch's sum saturates, nothing is refused (it used to
     * refuse the whole batch, and with it every other call in it) */
    rows[0].units = (uint64_t)INT64_MAX;
    assert_int_equal(tg_store_usage_record(f->st, 2, rows, 2, &ins, &err), 0);
    assert_int_equal(ins, 2);
    assert_int_equal(tg_store_usage_total(f->st, "api_calls", &n, &err), 0);
    assert_int_equal(n, (uint64_t)INT64_MAX);
    /* a batch that pushes a stored total past INT64_MAX: the total saturates, it is never
     * stored as a REAL nor wrapped */
    assert_int_equal(tg_store_usage_record(f->st, 3, rows, 1, &ins, &err), 0);
    assert_int_equal(tg_store_usage_record(f->st, 4, rows + 1, 1, &ins, &err), 0);
    assert_int_equal(tg_store_usage_total(f->st, "api_calls", &n, &err), 0);
    assert_int_equal(n, (uint64_t)INT64_MAX);
    if (is_sqlite(f)) { /* a column's type is per value in SQLite; BIGINT in PostgreSQL's schema */
        assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM usage_period WHERE typeof(units) <> 'integer'"), 0);
        assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM usage_daily WHERE typeof(units) <> 'integer'"), 0);
    }
    assert_int_equal(sql_int(f, "SELECT MAX(units) FROM usage_daily"), INT64_MAX);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM usage_journal"), 0); /* folded by the read */
    /* the connection is still usable */
    tg_usage_t other = row("cus_2", "api_calls", 1);
    assert_int_equal(tg_store_usage_record(f->st, 5, &other, 1, &ins, &err), 0);
    assert_int_equal(ins, 1);
}

typedef struct {
    char customer[4][TG_ID_MAX];
    int64_t period[4];
    uint64_t units[4];
    int n;
} loaded_t;

static int load_cb(const char *customer_id, int64_t period_start, const char *metric, uint64_t units, void *arg)
{
    loaded_t *l = arg;
    assert_string_equal(metric, "api_calls");
    assert_true(l->n < 4);
    snprintf(l->customer[l->n], TG_ID_MAX, "%s", customer_id);
    l->period[l->n] = period_start;
    l->units[l->n++] = units;
    return 0;
}

/* issue 10 item 6: keyset pages visit every item once in the list's order, ties on the time
 * broken by id; a cursor that is not this list's key is TG_EINVAL; the key cap's count. */
static void test_pages(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    static const char *const ids[7] = {"cus_a", "cus_b", "cus_c", "cus_d", "cus_e", "cus_f", "cus_g"};
    for (int i = 0; i < 7; i++) {
        char mail[32];
        snprintf(mail, sizeof(mail), "%s@example.com", ids[i]);
        tg_customer_t c = customer(ids[i], mail, 1000 + (i / 3)); /* three share each second */
        assert_int_equal(tg_store_customer_insert(f->st, &c, &err), 0);
    }
    /* newest first, then by id: g, d e f, a b c */
    static const char *const want[7] = {"cus_g", "cus_d", "cus_e", "cus_f", "cus_a", "cus_b", "cus_c"};
    for (size_t limit = 1; limit <= 8; limit++) {
        seen_t seen = {.n = 0, .stop_after = -1};
        tg_page_t page = {limit, ""};
        tg_page_end_t end;
        int pages = 0;
        do {
            assert_int_equal(tg_store_customer_page(f->st, &page, on_customer, &seen, &end, &err), 0);
            memcpy(page.after, end.next, sizeof(page.after));
            pages++;
        } while (end.has_more && pages < 10);
        assert_false(end.has_more);
        assert_int_equal(pages, (int)((7 + limit - 1) / limit)); /* the last page says there is no more */
        assert_int_equal(seen.n, 7);
        for (int i = 0; i < 7; i++)
            assert_string_equal(seen.ids[i], want[i]);
    }
    seen_t seen = {.n = 0, .stop_after = -1};
    tg_page_end_t end;
    static const char *const bad[] = {
        "abc",     "1000",        "1000/", "/cus_a", "1000/cus a", "1000/cus_a' OR 1=1", "99999999999999999999/cus_a",
        "-/cus_a", "1000/cus_a/x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tg_page_t page = {10, ""};
        snprintf(page.after, sizeof(page.after), "%s", bad[i]);
        assert_int_equal(tg_store_customer_page(f->st, &page, on_customer, &seen, &end, &err), TG_EINVAL);
    }
    assert_int_equal(seen.n, 0);
    /* after the last one: an empty page */
    tg_page_t last = {10, "1000/cus_c"};
    assert_int_equal(tg_store_customer_page(f->st, &last, on_customer, &seen, &end, &err), 0);
    assert_int_equal(seen.n, 0);
    assert_false(end.has_more);

    /* working keys: not revoked, not expired, at `now` */
    tg_key_t k1 = key("key_1", "cus_a", 1, 10), k2 = key("key_2", "cus_a", 2, 11), k3 = key("key_3", "cus_a", 3, 12);
    k2.revoked_at = 50;
    k3.expires_at = 100;
    assert_int_equal(tg_store_key_insert(f->st, &k1, &err), 0);
    assert_int_equal(tg_store_key_insert(f->st, &k2, &err), 0);
    assert_int_equal(tg_store_key_insert(f->st, &k3, &err), 0);
    uint64_t n = 0;
    assert_int_equal(tg_store_key_count_active(f->st, "cus_a", 40, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(tg_store_key_count_active(f->st, "cus_a", 60, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(tg_store_key_count_active(f->st, "cus_a", 100, &n, &err), 0);
    assert_int_equal(n, 1);
}

/* issue 10 item 7: a row the totals cannot take is kept aside with its batch, the other rows of
 * the batch are stored, and a retried or replayed batch adds neither twice. */
typedef struct {
    tg_usage_rejected_t r[4];
    int n;
} rejected_seen_t;

static int on_rejected(const tg_usage_rejected_t *r, void *arg)
{
    rejected_seen_t *s = arg;
    assert_true(s->n < 4);
    s->r[s->n++] = *r;
    return 0;
}

static void test_usage_rejected_kept_aside(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    tg_usage_t rows[4] = {row("cus_1", "api_calls", 1), row("cus_2", "api_calls", 2),
                          row("cus_3", "tokens", UINT64_MAX), row("cus_2", "api_calls", 3)};
    tg_usage_batch_t b = {77, rows, 4, NULL};
    tg_usage_stored_t out;
    for (int attempt = 0; attempt < 2; attempt++) { /* the second is a retry or a replay */
        assert_int_equal(tg_store_usage_record_many(f->st, &b, 1, &out, &err), 0);
        assert_int_equal(out.inserted, attempt == 0 ? 3 : 0);
        assert_int_equal(out.rejected, attempt == 0 ? 1 : 0);
        if (attempt == 0)
            assert_non_null(strstr(out.reason, "units of tokens do not fit in 63 bits"));
    }
    uint64_t n = 0;
    assert_int_equal(tg_store_usage_total(f->st, "api_calls", &n, &err), 0);
    assert_int_equal(n, 6);
    assert_int_equal(tg_store_usage_total(f->st, "tokens", &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(tg_store_usage_rejected_count(f->st, &n, &err), 0);
    assert_int_equal(n, 1);
    rejected_seen_t seen = {0};
    tg_page_t page = {100, ""};
    tg_page_end_t end;
    assert_int_equal(tg_store_usage_rejected_list(f->st, &page, on_rejected, &seen, &end, &err), 0);
    assert_int_equal(seen.n, 1);
    assert_false(end.has_more);
    assert_int_equal(seen.r[0].batch_id, 77);
    assert_string_equal(seen.r[0].row.customer_id, "cus_3");
    assert_string_equal(seen.r[0].row.metric, "tokens");
    assert_int_equal(seen.r[0].row.units, UINT64_MAX);
    assert_non_null(strstr(seen.r[0].reason, "18446744073709551615 units of tokens do not fit"));
    /* a batch of nothing but refused rows is still a stored batch */
    tg_usage_t bad = row("cus_4", "api_calls", (uint64_t)INT64_MAX + 7);
    memset(bad.endpoint, 'e', sizeof(bad.endpoint)); /* and unterminated */
    assert_int_equal(tg_store_usage_record(f->st, 78, &bad, 1, NULL, &err), 0);
    assert_int_equal(tg_store_usage_record(f->st, 78, &bad, 1, NULL, &err), 0);
    assert_int_equal(tg_store_usage_rejected_count(f->st, &n, &err), 0);
    assert_int_equal(n, 2);
    /* pages of one, by cursor; a cursor of another list is refused */
    seen.n = 0;
    page.limit = 1;
    assert_int_equal(tg_store_usage_rejected_list(f->st, &page, on_rejected, &seen, &end, &err), 0);
    assert_true(end.has_more);
    memcpy(page.after, end.next, sizeof(page.after));
    assert_int_equal(tg_store_usage_rejected_list(f->st, &page, on_rejected, &seen, &end, &err), 0);
    assert_false(end.has_more);
    assert_int_equal(seen.n, 2);
    assert_string_equal(seen.r[1].row.customer_id, "cus_4");
    assert_non_null(strstr(seen.r[1].reason, "terminator"));
    snprintf(page.after, sizeof(page.after), "cus_1");
    assert_int_equal(tg_store_usage_rejected_list(f->st, &page, on_rejected, &seen, &end, &err), TG_EINVAL);
}

static void test_usage_load(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    tg_usage_t rows[5] = {row("cus_1", "api_calls", 2), row("cus_1", "api_calls", 3), row("cus_2", "api_calls", 4),
                          row("cus_2", "api_calls", 100), row("cus_1", "api_calls", 1)};
    snprintf(rows[1].plan_id, sizeof(rows[1].plan_id), "pro"); /* summed across plans */
    rows[3].period_start = 500;                                /* an older period: not loaded */
    rows[4].period_start = 2000;
    assert_int_equal(tg_store_usage_record(f->st, 1, rows, 5, NULL, &err), 0);
    loaded_t l = {0};
    assert_int_equal(tg_store_usage_load(f->st, 1000, load_cb, &l, &err), 0);
    assert_int_equal(l.n, 3);
    uint64_t c1_1000 = 0, c1_2000 = 0, c2_1000 = 0;
    for (int i = 0; i < l.n; i++) {
        if (strcmp(l.customer[i], "cus_1") == 0 && l.period[i] == 1000)
            c1_1000 = l.units[i];
        else if (strcmp(l.customer[i], "cus_1") == 0 && l.period[i] == 2000)
            c1_2000 = l.units[i];
        else if (strcmp(l.customer[i], "cus_2") == 0 && l.period[i] == 1000)
            c2_1000 = l.units[i];
    }
    assert_int_equal(c1_1000, 5);
    assert_int_equal(c1_2000, 1);
    assert_int_equal(c2_1000, 4);
}

/* Informational: the durable hot path, batches of 1000 rows over 50 customers and 3 metrics. */
static void test_usage_throughput(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    enum { BATCH = 1000, BATCHES = 20 };
    static tg_usage_t rows[BATCH];
    static const char *const metrics[] = {"api_calls", "tokens", "bytes"};
    for (int i = 0; i < BATCH; i++) {
        char cus[16];
        snprintf(cus, sizeof(cus), "cus_%d", i % 50);
        rows[i] = row(cus, metrics[i % 3], 1);
        snprintf(rows[i].endpoint, sizeof(rows[i].endpoint), "GET /e%d", i % 7);
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < BATCHES; i++)
        assert_int_equal(tg_store_usage_record(f->st, (uint64_t)i + 1, rows, BATCH, NULL, &err), 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    print_message("usage_record: %d batches of %d rows in %.3f s = %.0f rows/s (%.2f ms per commit)\n", BATCHES, BATCH,
                  s, BATCHES * BATCH / s, s * 1000 / BATCHES);
    uint64_t n = 0;
    assert_int_equal(tg_store_usage_total(f->st, "api_calls", &n, &err), 0);
    assert_int_equal(n, (uint64_t)BATCHES * 334); /* rows 0, 3, ..., 999 */
}

static int sum_metric(const char *metric, uint64_t units, void *arg)
{
    if (strcmp(metric, "api_calls") == 0)
        *(uint64_t *)arg += units;
    return 0;
}

static void sql_exec(fx_t *f, const char *sql)
{
    assert_int_equal(tg_tmpstore_exec(&f->db, sql), 0);
}

/* Batches wait in the journal until a reader (any connection) or the writer folds them; each is
 * folded exactly once, a retried batch is not journaled again, and a damaged journal row is an
 * error naming its batch that leaves the totals untouched. */
static void test_usage_journal(void **state)
{
    fx_t *f = *state;
    if (!tg_tmpstore_is_sqlite(&f->db)) {
        print_message("PostgreSQL writes each batch straight into the totals: it has no journal\n");
        skip();
    }
    tg_err_t err = {0};
    size_t ins = 0;
    tg_store_t *reader = NULL;
    assert_int_equal(tg_store_open(f->url, &reader, &err), 0);

    tg_usage_t rows[3] = {row("cus_1", "api_calls", 2), row("cus_1", "api_calls", 3), row("cus_2", "api_calls", 7)};
    snprintf(rows[1].endpoint, sizeof(rows[1].endpoint), "POST /y");
    assert_int_equal(tg_store_usage_record(f->st, 10, rows, 3, &ins, &err), 0);
    assert_int_equal(ins, 3);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM usage_journal"), 1); /* one row per batch */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM usage_period"), 0);   /* not folded yet */
    assert_int_equal(tg_store_usage_fold(f->st, 0, &err), 0); /* below the writer's threshold... */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM usage_journal"), 1);

    uint64_t used = 0; /* ...but a reader on another connection folds before it reads */
    assert_int_equal(tg_store_usage_period(reader, "cus_1", 1000, sum_metric, &used, &err), 0);
    assert_int_equal(used, 5);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM usage_journal"), 0);
    assert_int_equal(sql_int(f, "SELECT units FROM usage_daily WHERE customer_id = 'cus_1' AND endpoint = 'POST /y'"), 3);

    /* the same batch again (a retry after an uncertain commit): nothing is added */
    assert_int_equal(tg_store_usage_record(f->st, 10, rows, 3, &ins, &err), 0);
    assert_int_equal(ins, 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM usage_journal"), 0);
    used = 0;
    assert_int_equal(tg_store_usage_period(reader, "cus_1", 1000, sum_metric, &used, &err), 0);
    assert_int_equal(used, 5);

    /* a forced fold by the writer */
    assert_int_equal(tg_store_usage_record(f->st, 11, rows + 2, 1, &ins, &err), 0);
    assert_int_equal(tg_store_usage_fold(f->st, 1, &err), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM usage_journal"), 0);
    assert_int_equal(sql_int(f, "SELECT units FROM usage_period WHERE customer_id = 'cus_2'"), 14);

    /* a damaged row: the read fails, naming the batch; nothing is half-applied */
    assert_int_equal(tg_store_usage_record(f->st, 12, rows, 1, &ins, &err), 0);
    sql_exec(f, "INSERT INTO usage_journal(batch_id, data) VALUES (13, x'05637573')");
    used = 0;
    assert_int_equal(tg_store_usage_period(reader, "cus_1", 1000, sum_metric, &used, &err), TG_ESTORE);
    assert_non_null(strstr(err.msg, "batch 13"));
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM usage_journal"), 2);
    assert_int_equal(sql_int(f, "SELECT SUM(units) FROM usage_period WHERE customer_id = 'cus_1'"), 5);
    tg_store_close(reader);
}

/* Revenue: the finalized invoices of a window summed per (currency, status); drafts, invoices
 * finalized outside [from, to) and drafts voided unfinalized are left out; SUM refuses to wrap. */
typedef struct totals_row {
    char what[48];
    long long total, count;
} totals_row_t;

static int totals_cb(const char *currency, const char *status, int64_t total, uint64_t count, void *arg)
{
    totals_row_t *rows = arg;
    size_t i = 0;
    while (rows[i].what[0] != '\0')
        i++;
    snprintf(rows[i].what, sizeof(rows[i].what), "%s %s", currency, status);
    rows[i].total = total;
    rows[i].count = (long long)count;
    return 0;
}

static void test_invoice_totals(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    add_customer(f, "cus_1", "a@example.com");
    /* id, period_start, status, currency, total (nano-units), finalized_at */
    sql_exec(f, "INSERT INTO invoices (id, customer_id, period_start, period_end, status, number, currency, total,"
                " body, created_at, finalized_at) VALUES"
                " ('in_1', 'cus_1', 1, 2, 'paid', 'N1', 'usd', 10750000000, '{}', 100, 150),"
                " ('in_2', 'cus_1', 2, 3, 'open', 'N2', 'usd', 10000000000, '{}', 100, 160),"
                " ('in_3', 'cus_1', 3, 4, 'open', 'N3', 'usd', 5000000000, '{}', 100, 199),"
                " ('in_4', 'cus_1', 4, 5, 'uncollectible', 'N4', 'usd', 1000000000, '{}', 100, 170),"
                " ('in_5', 'cus_1', 5, 6, 'void', 'N5', 'usd', 7000000000, '{}', 100, 180),"
                " ('in_6', 'cus_1', 6, 7, 'draft', NULL, 'usd', 9000000000, '{}', 100, 0),"
                " ('in_7', 'cus_1', 7, 8, 'void', NULL, 'usd', 9000000000, '{}', 100, 0),"
                " ('in_8', 'cus_1', 8, 9, 'paid', 'N8', 'usd', 3000000000, '{}', 100, 99),"  /* before */
                " ('in_9', 'cus_1', 9, 10, 'paid', 'N9', 'usd', 3000000000, '{}', 100, 200),"/* at `to` */
                " ('in_10', 'cus_1', 10, 11, 'paid', 'N10', 'jpy', 1206000000000, '{}', 100, 100)");
    totals_row_t rows[16];
    memset(rows, 0, sizeof(rows));
    assert_int_equal(tg_store_invoice_totals(f->st, 100, 200, totals_cb, rows, &err), 0);
    assert_string_equal(rows[0].what, "jpy paid");
    assert_int_equal(rows[0].total, 1206000000000LL);
    assert_string_equal(rows[1].what, "usd open");
    assert_int_equal(rows[1].total, 15000000000LL);
    assert_int_equal(rows[1].count, 2);
    assert_string_equal(rows[2].what, "usd paid");
    assert_int_equal(rows[2].total, 10750000000LL);
    assert_string_equal(rows[3].what, "usd uncollectible");
    assert_string_equal(rows[4].what, "usd void"); /* finalized, then voided: the caller decides */
    assert_int_equal(rows[4].total, 7000000000LL);
    assert_string_equal(rows[5].what, "");
    /* two totals whose sum leaves int64: an error, never a wrapped sum */
    sql_exec(f, "INSERT INTO invoices (id, customer_id, period_start, period_end, status, number, currency, total,"
                " body, created_at, finalized_at) VALUES"
                " ('in_11', 'cus_1', 11, 12, 'paid', 'N11', 'eur', 9000000000000000000, '{}', 100, 300),"
                " ('in_12', 'cus_1', 12, 13, 'paid', 'N12', 'eur', 9000000000000000000, '{}', 100, 301)");
    memset(rows, 0, sizeof(rows));
    assert_int_equal(tg_store_invoice_totals(f->st, 300, 400, totals_cb, rows, &err), TG_ESTORE);
    assert_non_null(strstr(err.msg, "overflow"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test_setup_teardown(test_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_customers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_many_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_many_batches_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writers_let_in, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_after_a_locked_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_rejected_kept_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_throughput, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invoice_totals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
