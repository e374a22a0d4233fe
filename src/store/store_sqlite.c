/* store_sqlite.c - the embedded SQLite backend of store.h.
 *
 * Durability: WAL mode with synchronous=FULL. In WAL mode a COMMIT appends to the -wal file;
 * with synchronous=NORMAL that append sits in the OS page cache, which survives kill -9 of the
 * process but not a power cut or kernel crash, so the last commits could vanish after they were
 * reported (and, in strict metering, after the call was answered). FULL fsyncs the WAL before
 * COMMIT returns: a committed usage batch is on the disk. The metering writer commits whole
 * batches, so the fsync is paid once per group, not per call. WAL also lets the admin thread
 * read while the writer commits; busy_timeout (5 s) covers the short write-lock waits between
 * the writer, the admin thread and a second process (the CLI).
 *
 * Hot statements (usage) are prepared once per connection and kept in the tg_store_t. When
 * PostgreSQL arrives, these functions move behind a small dispatch table in store.c (one
 * function pointer per store.h call, chosen by the URL scheme in tg_store_open); callers do not
 * change. */
#include "store/store.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "store/migrations.h"
#include "store/store_sqlite_int.h"
#include "util/pack.h"

enum {
    ST_BATCH_INSERT,
    ST_USAGE_PERIOD,
    ST_USAGE_DAILY,
    ST_PERIOD_ADD,
    ST_DAILY_ADD,
    ST_PERIOD_MAX,
    ST_DAILY_MAX,
    ST_JOURNAL_INSERT,
    ST_JOURNAL_ANY,
    ST_REJECTED_INSERT,
    ST_HOURLY_UPSERT,
    ST_EXPORT_ON,
    ST_COUNT
};

static const char *const hot_sql[ST_COUNT] = {
    "INSERT INTO usage_batches(batch_id, rows, committed_at) VALUES (?,?,?) ON CONFLICT DO NOTHING",
    /* SQLite turns an integer sum that overflows into a REAL instead of failing, so an update
     * that would overflow is skipped by its WHERE; the writer sees no change and rolls the batch
     * back (TG_ERANGE). (Not RETURNING: it builds a temporary table on every execution, which
     * was a third of the writer's CPU under load.) */
    "INSERT INTO usage_period(customer_id, period_start, plan_id, metric, units) VALUES (?,?,?,?,?)"
    " ON CONFLICT(customer_id, period_start, metric, plan_id) DO UPDATE SET units = units + excluded.units"
    " WHERE units <= 9223372036854775807 - excluded.units",
    "INSERT INTO usage_daily(customer_id, day, metric, endpoint, units) VALUES (?,?,?,?,?)"
    " ON CONFLICT(customer_id, day, metric, endpoint) DO UPDATE SET units = units + excluded.units"
    " WHERE units <= 9223372036854775807 - excluded.units",
    /* Most totals exist already: a plain UPDATE is tried first (one seek instead of the
     * upsert's insert attempt then update); the upsert runs only when nothing was changed. */
    "UPDATE usage_period SET units = units + ?5 WHERE customer_id = ?1 AND period_start = ?2 AND plan_id = ?3"
    " AND metric = ?4 AND units <= 9223372036854775807 - ?5",
    "UPDATE usage_daily SET units = units + ?5 WHERE customer_id = ?1 AND day = ?2 AND metric = ?3"
    " AND endpoint = ?4 AND units <= 9223372036854775807 - ?5",
    /* A total that would pass 2^63-1 stays there (see fold_journal). */
    "UPDATE usage_period SET units = 9223372036854775807 WHERE customer_id = ?1 AND period_start = ?2"
    " AND plan_id = ?3 AND metric = ?4 AND ?5 >= 0",
    "UPDATE usage_daily SET units = 9223372036854775807 WHERE customer_id = ?1 AND day = ?2 AND metric = ?3"
    " AND endpoint = ?4 AND ?5 >= 0",
    "INSERT INTO usage_journal(batch_id, data) VALUES (?,?)",
    "SELECT 1 FROM usage_journal LIMIT 1",
    "INSERT INTO usage_rejected(batch_id, event_id, customer_id, key_id, plan_id, metric, endpoint, units,"
    " period_start, ts_ns, status, reason, rejected_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
    /* usage_hourly (billing: stripe, migration 17): a new row of a (customer, metric, ts) that
     * was sent before takes that group's seq, so the next send of the group gets a new
     * identifier; a total that would pass 2^63-1 stays there. */
    "INSERT INTO usage_hourly(customer_id, metric, hour_start, period_start, plan_id, ts, units, exported, seq)"
    " VALUES (?1,?2,?3,?4,?5,?6,?7,0,COALESCE((SELECT MAX(seq) FROM usage_hourly WHERE customer_id = ?1"
    " AND metric = ?2 AND ts = ?6),0))"
    " ON CONFLICT(customer_id, metric, hour_start, period_start, plan_id) DO UPDATE SET units ="
    " CASE WHEN units <= 9223372036854775807 - excluded.units THEN units + excluded.units"
    " ELSE 9223372036854775807 END",
    "SELECT 1 FROM meter_export",
};

struct tg_store {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *hot[ST_COUNT];
    unsigned journal_batches; /* batches journaled by this connection since it last folded */
    size_t journal_entries;   /* and the entries in them */
    int64_t folded_mono_ns;   /* when this connection last folded */
};

static int fold_journal(tg_store_t *st, tg_err_t *err);

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Fills err with what was being done and SQLite's own message ("storing usage: database is
 * locked"). Only a uniqueness conflict is TG_EEXIST; every other refusal is TG_ESTORE. */
static int db_error(tg_store_t *st, tg_err_t *err, const char *doing)
{
    int code = sqlite3_extended_errcode(st->db);
    int rc = code == SQLITE_CONSTRAINT_UNIQUE || code == SQLITE_CONSTRAINT_PRIMARYKEY ? TG_EEXIST : TG_ESTORE;
    return tg_errf(err, rc, "%s: %s", doing, sqlite3_errmsg(st->db));
}

static int mkdirs_for(const char *path, tg_err_t *err)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof(buf))
        return tg_errf(err, TG_EINVAL, "database path is too long");
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST)
            return tg_errf(err, TG_EIO, "creating directory %s: %s", buf, strerror(errno));
        *p = '/';
    }
    return 0;
}

static int exec(tg_store_t *st, const char *sql, tg_err_t *err, const char *doing)
{
    char *msg = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = tg_errf(err, TG_ESTORE, "%s: %s", doing, msg != NULL ? msg : sqlite3_errmsg(st->db));
        sqlite3_free(msg);
        return rc;
    }
    return 0;
}

/* TG_SUM(x): SUM over integers that saturates at the ends of int64 instead of failing the whole
 * query with "integer overflow" (SQLite's SUM), so that one saturated total (a customer's
 * absurd usage) cannot make every read of that customer's usage an error. */
static void sum_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    sqlite3_int64 *acc = sqlite3_aggregate_context(ctx, sizeof(*acc));
    if (acc == NULL || sqlite3_value_type(argv[0]) == SQLITE_NULL)
        return;
    sqlite3_int64 v = sqlite3_value_int64(argv[0]);
    if (__builtin_add_overflow(*acc, v, acc))
        *acc = v > 0 ? INT64_MAX : INT64_MIN;
}

static void sum_final(sqlite3_context *ctx)
{
    sqlite3_int64 *acc = sqlite3_aggregate_context(ctx, 0);
    sqlite3_result_int64(ctx, acc != NULL ? *acc : 0);
}

int tg_store_open(const char *url, tg_store_t **out, tg_err_t *err)
{
    *out = NULL;
    if (url == NULL)
        return tg_errf(err, TG_EINVAL, "no storage URL given (use sqlite:PATH)");
    if (strncmp(url, "sqlite:", 7) != 0) {
        const char *colon = strchr(url, ':');
        if (colon == NULL)
            return tg_errf(err, TG_EINVAL, "storage URL \"%s\" has no scheme (use sqlite:PATH)", url);
        int len = colon - url < 32 ? (int)(colon - url) : 32;
        return tg_errf(err, TG_EINVAL, "storage URL \"%s\": scheme \"%.*s\" is not supported (use sqlite:PATH)", url,
                       len, url);
    }
    const char *path = url + 7;
    if (*path == '\0')
        return tg_errf(err, TG_EINVAL, "storage URL \"%s\" has no file path", url);
    int rc = mkdirs_for(path, err);
    if (rc != 0)
        return rc;
    tg_store_t *st = calloc(1, sizeof(*st));
    if (st == NULL || (st->path = strdup(path)) == NULL) {
        free(st);
        return tg_errf(err, TG_ENOMEM, "out of memory opening %s", path);
    }
    st->folded_mono_ns = mono_ns();
    if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        rc = tg_errf(err, TG_ESTORE, "opening database %s: %s", path,
                     st->db != NULL ? sqlite3_errmsg(st->db) : "out of memory");
        tg_store_close(st);
        return rc;
    }
    sqlite3_busy_timeout(st->db, 5000);
    if (sqlite3_create_function_v2(st->db, "TG_SUM", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, NULL, sum_step,
                                   sum_final, NULL) != SQLITE_OK) {
        rc = tg_errf(err, TG_ESTORE, "opening database %s: %s", path, sqlite3_errmsg(st->db));
        tg_store_close(st);
        return rc;
    }
    if ((rc = exec(st, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", err,
                   "configuring the database")) != 0) {
        tg_store_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

void tg_store_close(tg_store_t *st)
{
    if (st == NULL)
        return;
    if (st->journal_batches != 0) /* leave the totals whole for other readers; best effort */
        fold_journal(st, NULL);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(st->hot[i]);
    sqlite3_close(st->db);
    free(st->path);
    free(st);
}

int tg_store_schema_version(tg_store_t *st, int *version, tg_err_t *err)
{
    sqlite3_stmt *s;
    *version = 0;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_migrations'", -1, &s,
                           NULL) != SQLITE_OK)
        return db_error(st, err, "reading the schema version");
    int exists = sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    if (!exists)
        return 0;
    if (sqlite3_prepare_v2(st->db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", -1, &s, NULL) !=
        SQLITE_OK)
        return db_error(st, err, "reading the schema version");
    if (sqlite3_step(s) == SQLITE_ROW)
        *version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return 0;
}

int tg_store_migrate(tg_store_t *st, tg_err_t *err)
{
    int rc = exec(st, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                      " applied_at INTEGER NOT NULL)",
                  err, "creating schema_migrations");
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < tg_sqlite_migrations_count; i++) {
        const tg_migration_t *m = &tg_sqlite_migrations[i];
        /* BEGIN IMMEDIATE: two processes migrating at once serialise here, and the second
         * sees the version the first applied. */
        if ((rc = exec(st, "BEGIN IMMEDIATE", err, "starting a migration")) != 0)
            return rc;
        int version = 0;
        if ((rc = tg_store_schema_version(st, &version, err)) != 0) {
            exec(st, "ROLLBACK", NULL, "");
            return rc;
        }
        if (version >= m->version) {
            exec(st, "COMMIT", NULL, "");
            continue;
        }
        char doing[128], ins[160];
        snprintf(doing, sizeof(doing), "applying migration %d (%s)", m->version, m->name);
        snprintf(ins, sizeof(ins), "INSERT INTO schema_migrations(version, name, applied_at) VALUES (%d, '%s', %lld)",
                 m->version, m->name, (long long)time(NULL));
        if ((rc = exec(st, m->sql, err, doing)) != 0 || (rc = exec(st, ins, err, doing)) != 0 ||
            (rc = exec(st, "COMMIT", err, doing)) != 0) {
            exec(st, "ROLLBACK", NULL, "");
            return rc;
        }
    }
    return 0;
}

/* ---- statements ---- */

static int prepare(tg_store_t *st, const char *sql, sqlite3_stmt **s, tg_err_t *err, const char *doing)
{
    if (sqlite3_prepare_v2(st->db, sql, -1, s, NULL) != SQLITE_OK)
        return db_error(st, err, doing);
    return 0;
}

static void text(sqlite3_stmt *s, int col, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(out, cap, "%s", t != NULL ? (const char *)t : "");
}

/* ---- customers ---- */

#define CUSTOMER_COLS                                                                                                  \
    "id, email, name, plan_id, status, created_at, anchor_at, trial_end, pending_plan_id, pending_at, cancel_at"

static void read_customer(sqlite3_stmt *s, tg_customer_t *c)
{
    memset(c, 0, sizeof(*c));
    text(s, 0, c->id, sizeof(c->id));
    text(s, 1, c->email, sizeof(c->email));
    text(s, 2, c->name, sizeof(c->name));
    text(s, 3, c->plan_id, sizeof(c->plan_id));
    text(s, 4, c->status, sizeof(c->status));
    c->created_at = sqlite3_column_int64(s, 5);
    c->anchor_at = sqlite3_column_int64(s, 6);
    c->trial_end = sqlite3_column_int64(s, 7);
    text(s, 8, c->pending_plan_id, sizeof(c->pending_plan_id));
    c->pending_at = sqlite3_column_int64(s, 9);
    c->cancel_at = sqlite3_column_int64(s, 10);
}

static void bind_customer(sqlite3_stmt *s, const tg_customer_t *c)
{
    sqlite3_bind_text(s, 1, c->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, c->email, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, c->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, c->plan_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, c->status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, c->created_at);
    sqlite3_bind_int64(s, 7, c->anchor_at);
    sqlite3_bind_int64(s, 8, c->trial_end);
    sqlite3_bind_text(s, 9, c->pending_plan_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 10, c->pending_at);
    sqlite3_bind_int64(s, 11, c->cancel_at);
}

int tg_store_customer_insert(tg_store_t *st, const tg_customer_t *c, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st, "INSERT INTO customers(" CUSTOMER_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?)", &s, err,
                     "storing a customer");
    if (rc != 0)
        return rc;
    bind_customer(s, c);
    if (sqlite3_step(s) != SQLITE_DONE) {
        rc = db_error(st, err, "storing a customer");
        if (rc == TG_EEXIST && strstr(sqlite3_errmsg(st->db), "customers.email") != NULL)
            rc = tg_errf(err, TG_EEXIST, "a customer with the email %s exists already", c->email);
        else if (rc == TG_EEXIST)
            rc = tg_errf(err, TG_EEXIST, "a customer with the id %s exists already", c->id);
    }
    sqlite3_finalize(s);
    return rc;
}

/* Runs a one-row SELECT keyed by id: read fills out from the row; TG_ENOTFOUND names what. */
static int get_by_id(tg_store_t *st, const char *sql, const char *id, void (*read)(sqlite3_stmt *, void *), void *out,
                     const char *what, tg_err_t *err)
{
    sqlite3_stmt *s;
    char doing[64];
    snprintf(doing, sizeof(doing), "reading a %s", what);
    int rc = prepare(st, sql, &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        read(s, out);
    else if (step == SQLITE_DONE)
        rc = tg_errf(err, TG_ENOTFOUND, "no %s %s", what, id);
    else
        rc = db_error(st, err, doing);
    sqlite3_finalize(s);
    return rc;
}

static void read_customer_row(sqlite3_stmt *s, void *out)
{
    read_customer(s, out);
}

int tg_store_customer_get(tg_store_t *st, const char *id, tg_customer_t *out, tg_err_t *err)
{
    return get_by_id(st, "SELECT " CUSTOMER_COLS " FROM customers WHERE id = ?", id, read_customer_row, out,
                     "customer", err);
}

int tg_store_customer_update(tg_store_t *st, const tg_customer_t *c, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st,
                     "UPDATE customers SET email = ?2, name = ?3, plan_id = ?4, status = ?5, created_at = ?6,"
                     " anchor_at = ?7, trial_end = ?8, pending_plan_id = ?9, pending_at = ?10, cancel_at = ?11"
                     " WHERE id = ?1",
                     &s, err, "updating a customer");
    if (rc != 0)
        return rc;
    bind_customer(s, c);
    if (sqlite3_step(s) != SQLITE_DONE) {
        rc = db_error(st, err, "updating a customer");
        if (rc == TG_EEXIST)
            rc = tg_errf(err, TG_EEXIST, "a customer with the email %s exists already", c->email);
    } else if (sqlite3_changes(st->db) == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "no customer %s", c->id);
    sqlite3_finalize(s);
    return rc;
}

int tg_store_customer_list(tg_store_t *st, tg_customer_cb cb, void *arg, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st, "SELECT " CUSTOMER_COLS " FROM customers ORDER BY created_at DESC, id", &s, err,
                     "listing customers");
    if (rc != 0)
        return rc;
    int step;
    tg_customer_t c;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        read_customer(s, &c);
        if (cb(&c, arg) != 0)
            break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = db_error(st, err, "listing customers");
    sqlite3_finalize(s);
    return rc;
}

/* ---- keys ---- */

#define KEY_COLS "id, customer_id, hash, prefix, name, created_at, expires_at, revoked_at, last_used_at"

static void read_key(sqlite3_stmt *s, tg_key_t *k)
{
    memset(k, 0, sizeof(*k));
    text(s, 0, k->id, sizeof(k->id));
    text(s, 1, k->customer_id, sizeof(k->customer_id));
    if (sqlite3_column_bytes(s, 2) == (int)sizeof(k->hash))
        memcpy(k->hash, sqlite3_column_blob(s, 2), sizeof(k->hash));
    text(s, 3, k->prefix, sizeof(k->prefix));
    text(s, 4, k->name, sizeof(k->name));
    k->created_at = sqlite3_column_int64(s, 5);
    k->expires_at = sqlite3_column_int64(s, 6);
    k->revoked_at = sqlite3_column_int64(s, 7);
    k->last_used_at = sqlite3_column_int64(s, 8);
}

int tg_store_key_insert(tg_store_t *st, const tg_key_t *k, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st, "INSERT INTO api_keys(" KEY_COLS ") VALUES (?,?,?,?,?,?,?,?,?)", &s, err, "storing a key");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, k->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, k->customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 3, k->hash, sizeof(k->hash), SQLITE_STATIC);
    sqlite3_bind_text(s, 4, k->prefix, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, k->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, k->created_at);
    sqlite3_bind_int64(s, 7, k->expires_at);
    sqlite3_bind_int64(s, 8, k->revoked_at);
    sqlite3_bind_int64(s, 9, k->last_used_at);
    if (sqlite3_step(s) != SQLITE_DONE) {
        rc = db_error(st, err, "storing a key");
        if (sqlite3_extended_errcode(st->db) == SQLITE_CONSTRAINT_FOREIGNKEY)
            rc = tg_errf(err, TG_ENOTFOUND, "storing key %s: no customer %s", k->id, k->customer_id);
    }
    sqlite3_finalize(s);
    return rc;
}

static void read_key_row(sqlite3_stmt *s, void *out)
{
    read_key(s, out);
}

int tg_store_key_get(tg_store_t *st, const char *id, tg_key_t *out, tg_err_t *err)
{
    return get_by_id(st, "SELECT " KEY_COLS " FROM api_keys WHERE id = ?", id, read_key_row, out, "key", err);
}

int tg_store_key_list(tg_store_t *st, const char *customer_id, tg_key_cb cb, void *arg, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st,
                     customer_id != NULL
                         ? "SELECT " KEY_COLS " FROM api_keys WHERE customer_id = ? ORDER BY created_at DESC, id"
                         : "SELECT " KEY_COLS " FROM api_keys ORDER BY created_at, id",
                     &s, err, "listing keys");
    if (rc != 0)
        return rc;
    if (customer_id != NULL)
        sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    int step;
    tg_key_t k;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        read_key(s, &k);
        if (cb(&k, arg) != 0)
            break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = db_error(st, err, "listing keys");
    sqlite3_finalize(s);
    return rc;
}

static int key_set(tg_store_t *st, const char *sql, const char *id, int64_t v, tg_err_t *err, const char *doing)
{
    sqlite3_stmt *s;
    int rc = prepare(st, sql, &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, v);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = db_error(st, err, doing);
    else if (sqlite3_changes(st->db) == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "no key %s", id);
    sqlite3_finalize(s);
    return rc;
}

int tg_store_key_set_revoked(tg_store_t *st, const char *id, int64_t revoked_at, tg_err_t *err)
{
    return key_set(st, "UPDATE api_keys SET revoked_at = ? WHERE id = ?", id, revoked_at, err, "revoking a key");
}

int tg_store_key_set_expires(tg_store_t *st, const char *id, int64_t expires_at, tg_err_t *err)
{
    return key_set(st, "UPDATE api_keys SET expires_at = ? WHERE id = ?", id, expires_at, err,
                   "setting a key's expiry");
}

int tg_store_key_touch(tg_store_t *st, const char *id, int64_t last_used_at, tg_err_t *err)
{
    return key_set(st, "UPDATE api_keys SET last_used_at = MAX(last_used_at, ?) WHERE id = ?", id, last_used_at,
                   err, "recording a key's last use");
}

/* ---- usage ---- */

/* "YYYY-MM-DD" of the UTC day holding second s (floor, so -1 is 1969-12-31). Seconds far
 * outside any calendar clamp to the ends, which still order correctly as text. */
static void utc_day(int64_t s, char out[16])
{
    int64_t day = s / 86400 - (s % 86400 < 0);
    time_t t = (time_t)(day * 86400);
    struct tm tm;
    if (day < -354285) /* before 1000-01-01, where %Y would stop giving four digits */
        snprintf(out, 16, "0000-00-00");
    else if (day > 2932896 || gmtime_r(&t, &tm) == NULL) /* after 9999-12-31 */
        snprintf(out, 16, "9999-99-99");
    else
        strftime(out, 16, "%Y-%m-%d", &tm);
}

static int64_t ns_to_s(int64_t ns)
{
    return ns / 1000000000 - (ns % 1000000000 < 0);
}

/* A batch is summed by key before it is journaled (sort, then merge runs), so a batch of
 * thousands of calls from a few customers is a few entries. Sorting is by a hash of the key
 * first (set_hashes), so most comparisons are one integer compare; the strings decide only
 * between equal hashes, which keeps equal keys adjacent. */
typedef struct agg_ref {
    const tg_usage_t *u;
    uint64_t h;
    char day[16];
    int64_t hour; /* start of the UTC hour of the call, seconds */
} agg_ref_t;

static uint64_t fnv_str(uint64_t h, const char *s)
{
    do
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    while (*s++ != '\0');
    return h;
}

/* The hash of each ref's whole journal key (period key, day, endpoint). */
static void set_hashes(agg_ref_t *refs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const tg_usage_t *u = refs[i].u;
        uint64_t h = fnv_str(1469598103934665603ULL, u->customer_id);
        h = fnv_str(h, u->metric);
        h = (h ^ (uint64_t)u->period_start) * 1099511628211ULL;
        h = fnv_str(h, u->plan_id);
        h = fnv_str(h, refs[i].day);
        h = (h ^ (uint64_t)refs[i].hour) * 1099511628211ULL;
        refs[i].h = fnv_str(h, u->endpoint);
    }
}

static int bind_total(sqlite3_stmt *s, const agg_ref_t *r, int daily, uint64_t units)
{
    const tg_usage_t *u = r->u;
    sqlite3_reset(s);
    sqlite3_bind_text(s, 1, u->customer_id, -1, SQLITE_STATIC);
    if (daily) {
        sqlite3_bind_text(s, 2, r->day, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, u->metric, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, u->endpoint, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_int64(s, 2, u->period_start);
        sqlite3_bind_text(s, 3, u->plan_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, u->metric, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(s, 5, (sqlite3_int64)units);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE)
        rc = sqlite3_reset(s); /* the statement's error code and message */
    else
        sqlite3_reset(s);
    return rc == SQLITE_OK ? SQLITE_ERROR : rc;
}

/* Adds each run of equal keys in refs (sorted by the period or the daily key) to its total.
 * Sums saturate at 2^63-1: usage reaching nine quintillion units is not a real account, and
 * refusing it here would block every later batch behind it. */
static int upsert_one(tg_store_t *st, const agg_ref_t *r, int daily, uint64_t units)
{
    int rc = bind_total(st->hot[daily ? ST_DAILY_ADD : ST_PERIOD_ADD], r, daily, units);
    if (rc == SQLITE_DONE && sqlite3_changes(st->db) == 0) {
        /* no such total yet, or it would overflow: the upsert tells which */
        rc = bind_total(st->hot[daily ? ST_USAGE_DAILY : ST_USAGE_PERIOD], r, daily, units);
        if (rc == SQLITE_DONE && sqlite3_changes(st->db) == 0)
            rc = bind_total(st->hot[daily ? ST_DAILY_MAX : ST_PERIOD_MAX], r, daily, units);
    }
    return rc;
}

static uint64_t add_saturating(uint64_t a, uint64_t b)
{
    uint64_t s;
    return __builtin_add_overflow(a, b, &s) || s > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : s;
}

/* The fold's grouping: an open-addressing table over the whole fixed-size key fields (the
 * decoded rows are zero-padded), hashed a word at a time. Sorting thousands of rows by their
 * strings was most of a fold's CPU. */
typedef struct fold_slot {
    const agg_ref_t *ref; /* NULL: empty */
    uint64_t units;
} fold_slot_t;

static uint64_t mix_words(uint64_t h, const void *p, size_t n) /* n: a multiple of 8 */
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
        h ^= h >> 29;
    }
    return h;
}

_Static_assert(TG_ID_MAX % 8 == 0 && TG_METRIC_MAX % 8 == 0 && TG_PLAN_ID_MAX % 8 == 0 && TG_ENDPOINT_MAX % 8 == 0,
               "key fields are hashed a word at a time");

/* The three totals a fold adds to, each with its own key. */
enum { FOLD_PERIOD = 0, FOLD_DAILY = 1, FOLD_HOURLY = 2 };

static uint64_t fold_hash(const agg_ref_t *r, int daily)
{
    const tg_usage_t *u = r->u;
    uint64_t h = mix_words(0x243F6A8885A308D3ULL, u->customer_id, sizeof(u->customer_id));
    h = mix_words(h, u->metric, sizeof(u->metric));
    if (daily == FOLD_DAILY)
        return mix_words(mix_words(h, r->day, sizeof(r->day)), u->endpoint, sizeof(u->endpoint));
    h = mix_words(h, u->plan_id, sizeof(u->plan_id));
    if (daily == FOLD_HOURLY)
        h = (h ^ (uint64_t)r->hour) * 0x9E3779B97F4A7C15ULL;
    return (h ^ (uint64_t)u->period_start) * 0x9E3779B97F4A7C15ULL;
}

static int fold_same(const agg_ref_t *a, const agg_ref_t *b, int daily)
{
    const tg_usage_t *x = a->u, *y = b->u;
    if (memcmp(x->customer_id, y->customer_id, sizeof(x->customer_id)) != 0 ||
        memcmp(x->metric, y->metric, sizeof(x->metric)) != 0)
        return 0;
    if (daily == FOLD_DAILY)
        return memcmp(a->day, b->day, sizeof(a->day)) == 0 && memcmp(x->endpoint, y->endpoint, sizeof(x->endpoint)) == 0;
    if (daily == FOLD_HOURLY && a->hour != b->hour)
        return 0;
    return x->period_start == y->period_start && memcmp(x->plan_id, y->plan_id, sizeof(x->plan_id)) == 0;
}

/* Adds units to the usage_hourly row of r's customer, metric, hour, period and plan. */
static int upsert_hourly(tg_store_t *st, const agg_ref_t *r, uint64_t units)
{
    const tg_usage_t *u = r->u;
    /* the bucket starts with the hour, or with the period when one began inside the hour */
    int64_t ts = u->period_start > r->hour && u->period_start - r->hour < 3600 ? u->period_start : r->hour;
    sqlite3_stmt *s = st->hot[ST_HOURLY_UPSERT];
    sqlite3_reset(s);
    sqlite3_bind_text(s, 1, u->customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, u->metric, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, r->hour);
    sqlite3_bind_int64(s, 4, u->period_start);
    sqlite3_bind_text(s, 5, u->plan_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, ts);
    sqlite3_bind_int64(s, 7, (sqlite3_int64)units);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE)
        rc = sqlite3_reset(s);
    else
        sqlite3_reset(s);
    return rc == SQLITE_OK ? SQLITE_ERROR : rc;
}

/* Sums refs by the period or the daily key in table (cap slots, a power of two above n) and
 * adds each sum to its total. */
static int fold_group(tg_store_t *st, const agg_ref_t *refs, size_t n, int daily, fold_slot_t *table, size_t cap)
{
    memset(table, 0, cap * sizeof(*table));
    for (size_t i = 0; i < n; i++) {
        size_t k = (size_t)fold_hash(&refs[i], daily) & (cap - 1);
        while (table[k].ref != NULL && !fold_same(table[k].ref, &refs[i], daily))
            k = (k + 1) & (cap - 1);
        if (table[k].ref == NULL)
            table[k].ref = &refs[i];
        table[k].units = add_saturating(table[k].units, refs[i].u->units);
    }
    for (size_t k = 0; k < cap; k++) {
        if (table[k].ref == NULL)
            continue;
        int rc = daily == FOLD_HOURLY ? upsert_hourly(st, table[k].ref, table[k].units)
                                      : upsert_one(st, table[k].ref, daily, table[k].units);
        if (rc != SQLITE_DONE)
            return rc;
    }
    return SQLITE_DONE;
}

/* ---- the usage journal ----
 * A batch is stored as one journal row (its rows summed by key, packed in a blob): one small
 * insert and one fsync per batch, whatever the number of customers in it. The journal is
 * folded into usage_period and usage_daily in bulk (many batches per transaction, so a busy
 * customer's total is written once per fold, not once per batch), by the writer every
 * JOURNAL_FOLD_BATCHES batches or JOURNAL_FOLD_ENTRIES entries (or after JOURNAL_FOLD_NS when
 * traffic is light) and by every reader of the totals before it reads. Folding deletes the rows
 * it applied in the same transaction, so each batch counts exactly once. A fold holds the
 * writer (and strict responses) while it runs; measured in strict mode with 1,000 customers:
 * every 64 batches, 4.7 ms 20 times a second; every 256, 5.8 ms 6 times a second; every 1,024,
 * 22 ms twice a second (reading and deleting the journal rows starts to dominate). */
#define JOURNAL_FOLD_NS 1000000000LL
#define JOURNAL_FOLD_BATCHES 256
#define JOURNAL_FOLD_ENTRIES 32768
#define JOURNAL_FOLD_MAX_ROWS 256 /* journal rows per fold transaction */

static int cmp_journal(const void *a, const void *b)
{
    const agg_ref_t *ra = a, *rb = b;
    if (ra->h != rb->h)
        return ra->h < rb->h ? -1 : 1;
    const tg_usage_t *x = ra->u, *y = rb->u; /* equal hashes: the whole key decides */
    int c = strcmp(x->customer_id, y->customer_id);
    if (c == 0)
        c = (x->period_start > y->period_start) - (x->period_start < y->period_start);
    if (c == 0)
        c = strcmp(x->metric, y->metric);
    if (c == 0)
        c = strcmp(x->plan_id, y->plan_id);
    if (c == 0)
        c = strcmp(ra->day, rb->day);
    if (c == 0)
        c = (ra->hour > rb->hour) - (ra->hour < rb->hour);
    if (c == 0)
        c = strcmp(x->endpoint, y->endpoint);
    return c;
}

/* Entry: customer, plan, metric, day, endpoint (each a length byte and bytes), period start,
 * units (little-endian 64-bit). The day is "YYYY-MM-DDTHH", the UTC hour of the calls (for
 * usage_hourly); entries journaled before the hour was added say "YYYY-MM-DD" and count in the
 * day's first hour. */
#define JOURNAL_ENTRY_MAX (5 + TG_ID_MAX + TG_PLAN_ID_MAX + TG_METRIC_MAX + 16 + TG_ENDPOINT_MAX + 16)

/* The usage statements, prepared once per connection (the schema must be migrated first). */
static int prepare_hot(tg_store_t *st, tg_err_t *err)
{
    int rc;
    for (int i = 0; i < ST_COUNT; i++)
        if (st->hot[i] == NULL && (rc = prepare(st, hot_sql[i], &st->hot[i], err, "preparing usage statements")) != 0)
            return rc;
    return 0;
}

int tg_store_usage_record(tg_store_t *st, uint64_t batch_id, const tg_usage_t *rows, size_t n, size_t *inserted,
                          tg_err_t *err)
{
    tg_usage_batch_t b = {batch_id, rows, n};
    tg_usage_stored_t out;
    int rc = tg_store_usage_record_many(st, &b, 1, &out, err);
    if (inserted != NULL)
        *inserted = rc == 0 ? out.inserted : 0;
    return rc;
}

/* Why the store cannot take row u (into why, cap bytes), or 0 if it can. */
static int row_refused(const tg_usage_t *u, char *why, size_t cap)
{
    if (!tg_usage_terminated(u)) {
        snprintf(why, cap, "a text field of the row has no terminator");
        return 1;
    }
    if (u->units > (uint64_t)INT64_MAX) {
        snprintf(why, cap, "%llu units of %s do not fit in 63 bits", (unsigned long long)u->units, u->metric);
        return 1;
    }
    return 0;
}

/* Keeps row u of batch_id aside in usage_rejected (inside the caller's transaction). Fields
 * are read up to their capacity, since a refused row may lack a terminator. */
static int reject_row(sqlite3_stmt *ins, uint64_t batch_id, const tg_usage_t *u, const char *why)
{
    char units[24];
    snprintf(units, sizeof(units), "%llu", (unsigned long long)u->units);
    sqlite3_reset(ins);
    sqlite3_bind_int64(ins, 1, (sqlite3_int64)batch_id);
    sqlite3_bind_int64(ins, 2, (sqlite3_int64)(u->event_id & (uint64_t)INT64_MAX));
    sqlite3_bind_text(ins, 3, u->customer_id, (int)strnlen(u->customer_id, sizeof(u->customer_id)), SQLITE_STATIC);
    sqlite3_bind_text(ins, 4, u->key_id, (int)strnlen(u->key_id, sizeof(u->key_id)), SQLITE_STATIC);
    sqlite3_bind_text(ins, 5, u->plan_id, (int)strnlen(u->plan_id, sizeof(u->plan_id)), SQLITE_STATIC);
    sqlite3_bind_text(ins, 6, u->metric, (int)strnlen(u->metric, sizeof(u->metric)), SQLITE_STATIC);
    sqlite3_bind_text(ins, 7, u->endpoint, (int)strnlen(u->endpoint, sizeof(u->endpoint)), SQLITE_STATIC);
    sqlite3_bind_text(ins, 8, units, -1, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 9, u->period_start);
    sqlite3_bind_int64(ins, 10, u->ts_ns);
    sqlite3_bind_int(ins, 11, u->status);
    sqlite3_bind_text(ins, 12, why, -1, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 13, (sqlite3_int64)time(NULL));
    int step = sqlite3_step(ins);
    sqlite3_reset(ins);
    return step;
}

int tg_store_usage_record_many(tg_store_t *st, const tg_usage_batch_t *batches, size_t nb, tg_usage_stored_t *out,
                               tg_err_t *err)
{
    int rc;
    size_t n = 0, nrejected = 0;
    tg_usage_stored_t ignored;
    if (out == NULL)
        out = &ignored;
    memset(out, 0, sizeof(*out));
    char why[sizeof(out->reason)];
    for (size_t k = 0; k < nb; k++) {
        if (batches[k].id > (uint64_t)INT64_MAX)
            return tg_errf(err, TG_ERANGE, "storing usage: batch id %llu does not fit", (unsigned long long)batches[k].id);
        if (batches[k].n > INT_MAX / JOURNAL_ENTRY_MAX - n) /* the packed rows are bound as one blob (int length) */
            return tg_errf(err, TG_EINVAL, "storing usage: a batch of %zu rows is too large", n + batches[k].n);
        n += batches[k].n;
        for (size_t i = 0; i < batches[k].n; i++)
            if (row_refused(&batches[k].rows[i], why, sizeof(why)) && nrejected++ == 0)
                memcpy(out->reason, why, sizeof(why));
    }
    n -= nrejected; /* the rows that go to the totals */
    if (nb == 0)
        return 0;
    if ((rc = prepare_hot(st, err)) != 0)
        return rc;
    agg_ref_t *refs = malloc((n ? n : 1) * sizeof(*refs));
    unsigned char *blob = malloc((n ? n : 1) * JOURNAL_ENTRY_MAX);
    if (refs == NULL || blob == NULL) {
        free(refs);
        free(blob);
        return tg_errf(err, TG_ENOMEM, "out of memory storing %zu usage rows", n);
    }
    int64_t last_day = INT64_MIN;
    size_t at = 0;
    for (size_t k = 0; k < nb; k++)
        for (size_t i = 0; i < batches[k].n; i++) {
            const tg_usage_t *u = &batches[k].rows[i];
            if (nrejected > 0 && row_refused(u, why, sizeof(why)))
                continue;
            int64_t sec = ns_to_s(u->ts_ns), day = sec / 86400 - (sec % 86400 < 0);
            refs[at].u = u;
            refs[at].hour = sec / 3600 * 3600 - (sec % 3600 < 0 ? 3600 : 0);
            if (day == last_day) /* a batch spans a few milliseconds: nearly always the same day */
                memcpy(refs[at].day, refs[at - 1].day, sizeof(refs[at].day));
            else
                utc_day(sec, refs[at].day);
            last_day = day;
            at++;
        }
    /* Sum the batch by key, then pack it. */
    set_hashes(refs, n);
    qsort(refs, n, sizeof(*refs), cmp_journal);
    unsigned char *p = blob;
    size_t entries = 0;
    for (size_t i = 0; i < n;) {
        uint64_t units = 0;
        size_t j = i;
        /* Saturates like the stored totals (upsert_one): one absurd value in a batch must not
         * refuse the calls of everyone else in it. */
        for (; j < n && cmp_journal(&refs[i], &refs[j]) == 0; j++)
            units = add_saturating(units, refs[j].u->units);
        const tg_usage_t *u = refs[i].u;
        char day_hour[16];
        int64_t hour_of_day = (refs[i].hour % 86400 + 86400) % 86400 / 3600;
        snprintf(day_hour, sizeof(day_hour), "%.10sT%02d", refs[i].day, (int)hour_of_day);
        p = tg_pack_str(p, u->customer_id, TG_ID_MAX);
        p = tg_pack_str(p, u->plan_id, TG_PLAN_ID_MAX);
        p = tg_pack_str(p, u->metric, TG_METRIC_MAX);
        p = tg_pack_str(p, day_hour, sizeof(day_hour));
        p = tg_pack_str(p, u->endpoint, TG_ENDPOINT_MAX);
        tg_le_put64(p, (uint64_t)u->period_start);
        tg_le_put64(p + 8, units);
        p += 16;
        entries++;
        i = j;
    }
    free(refs);

    if ((rc = exec(st, "BEGIN IMMEDIATE", err, "storing usage")) != 0) {
        free(blob);
        return rc;
    }
    sqlite3_stmt *b = st->hot[ST_BATCH_INSERT];
    int step = SQLITE_DONE;
    size_t fresh = 0;
    for (size_t k = 0; k < nb && step == SQLITE_DONE; k++) {
        sqlite3_reset(b);
        sqlite3_bind_int64(b, 1, (sqlite3_int64)batches[k].id);
        sqlite3_bind_int64(b, 2, (sqlite3_int64)batches[k].n);
        sqlite3_bind_int64(b, 3, (sqlite3_int64)time(NULL));
        step = sqlite3_step(b);
        sqlite3_reset(b);
        fresh += step == SQLITE_DONE && sqlite3_changes(st->db) != 0;
    }
    if (step != SQLITE_DONE)
        goto fail;
    if (fresh != nb) { /* committed before: apply nothing */
        free(blob);
        if (fresh != 0) {
            exec(st, "ROLLBACK", NULL, "");
            return tg_errf(err, TG_EEXIST, "storing usage: %zu of %zu batches were stored before", nb - fresh, nb);
        }
        if ((rc = exec(st, "COMMIT", err, "committing usage")) != 0)
            exec(st, "ROLLBACK", NULL, "");
        return rc;
    }
    /* Rows the totals cannot take are kept aside in the same transaction as the batch id: the
     * rest of the batch is stored, and a replay of the batch adds neither twice. */
    if (nrejected > 0) {
        sqlite3_stmt *ins = st->hot[ST_REJECTED_INSERT];
        for (size_t k = 0; k < nb && step == SQLITE_DONE; k++)
            for (size_t i = 0; i < batches[k].n && step == SQLITE_DONE; i++)
                if (row_refused(&batches[k].rows[i], why, sizeof(why)))
                    step = reject_row(ins, batches[k].id, &batches[k].rows[i], why);
        if (step != SQLITE_DONE)
            goto fail;
    }
    sqlite3_stmt *j = st->hot[ST_JOURNAL_INSERT];
    sqlite3_reset(j);
    sqlite3_bind_int64(j, 1, (sqlite3_int64)batches[0].id);
    sqlite3_bind_blob(j, 2, blob, (int)(p - blob), SQLITE_STATIC);
    step = n > 0 ? sqlite3_step(j) : SQLITE_DONE;
    sqlite3_reset(j);
    sqlite3_clear_bindings(j);
    if (step != SQLITE_DONE)
        goto fail;
    free(blob);
    blob = NULL;
    if ((rc = exec(st, "COMMIT", err, "committing usage")) != 0) {
        exec(st, "ROLLBACK", NULL, "");
        return rc;
    }
    st->journal_batches += n > 0;
    st->journal_entries += entries;
    out->inserted = n;
    out->rejected = nrejected;
    return 0;
fail:
    free(blob);
    rc = db_error(st, err, "storing usage");
    exec(st, "ROLLBACK", NULL, "");
    return rc;
}

/* Days from 1970-01-01 to the proleptic Gregorian y-m-d (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* A journal entry's day field ("YYYY-MM-DDTHH", or "YYYY-MM-DD" from before the hour was
 * journaled: the day's first hour) -> the hour's start into *hour, and day cut (in place, zero
 * padded) to "YYYY-MM-DD" for usage_daily. The clamped ends of utc_day ("0000-00-00",
 * "9999-99-99") keep their text; their hour is only approximate. -1 if the text is no day. */
static int journal_hour(char day[16], int64_t *hour)
{
    size_t len = strnlen(day, 16);
    int64_t f[4] = {0, 0, 0, 0};
    static const int at[4] = {0, 5, 8, 11}, width[4] = {4, 2, 2, 2};
    if (len != 10 && !(len == 13 && day[10] == 'T'))
        return -1;
    for (int k = 0; k < (len == 13 ? 4 : 3); k++)
        for (int i = 0; i < width[k]; i++) {
            char c = day[at[k] + i];
            if (c < '0' || c > '9')
                return -1;
            f[k] = f[k] * 10 + (c - '0');
        }
    if (f[1] > 12)
        f[1] = 12;
    *hour = days_from_civil(f[0], f[1] < 1 ? 1 : f[1], f[2] < 1 ? 1 : f[2]) * 86400 + f[3] * 3600;
    memset(day + 10, 0, 6);
    return 0;
}

/* Applies up to JOURNAL_FOLD_MAX_ROWS journal rows in one transaction; *more is set when rows
 * remain. Inside a caller's transaction it does nothing (the caller folded before starting). */
static int fold_some(tg_store_t *st, int *more, tg_err_t *err)
{
    *more = 0;
    sqlite3_stmt *sel = NULL;
    tg_usage_t *rows = NULL;
    agg_ref_t *refs = NULL;
    size_t n = 0, cap = 0;
    int rc = exec(st, "BEGIN IMMEDIATE", err, "folding usage");
    if (rc != 0)
        return rc;
    if ((rc = prepare(st, "SELECT batch_id, data FROM usage_journal ORDER BY batch_id LIMIT ?", &sel, err,
                      "folding usage")) != 0)
        goto done;
    sqlite3_bind_int(sel, 1, JOURNAL_FOLD_MAX_ROWS);
    int step, nrows = 0;
    sqlite3_int64 last = 0;
    while ((step = sqlite3_step(sel)) == SQLITE_ROW) {
        nrows++;
        last = sqlite3_column_int64(sel, 0);
        const unsigned char *p = sqlite3_column_blob(sel, 1);
        const unsigned char *end = p != NULL ? p + sqlite3_column_bytes(sel, 1) : NULL;
        while (p != NULL && p < end) {
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 1024;
                tg_usage_t *r = realloc(rows, nc * sizeof(*r));
                agg_ref_t *f = r != NULL ? realloc(refs, nc * sizeof(*f)) : NULL;
                if (r != NULL)
                    rows = r;
                if (f == NULL) {
                    rc = tg_errf(err, TG_ENOMEM, "out of memory folding usage");
                    goto done;
                }
                refs = f;
                cap = nc;
            }
            tg_usage_t *u = memset(&rows[n], 0, sizeof(rows[n])); /* zero padding: fold_group */
            memset(refs[n].day, 0, sizeof(refs[n].day));
            uint64_t ps;
            if (tg_unpack_str(&p, end, u->customer_id, sizeof(u->customer_id)) != 0 ||
                tg_unpack_str(&p, end, u->plan_id, sizeof(u->plan_id)) != 0 ||
                tg_unpack_str(&p, end, u->metric, sizeof(u->metric)) != 0 ||
                tg_unpack_str(&p, end, refs[n].day, sizeof(refs[n].day)) != 0 ||
                tg_unpack_str(&p, end, u->endpoint, sizeof(u->endpoint)) != 0 || tg_unpack_u64(&p, end, &ps) != 0 ||
                tg_unpack_u64(&p, end, &u->units) != 0) {
                rc = tg_errf(err, TG_ESTORE, "folding usage: journal row of batch %lld is malformed", (long long)last);
                goto done;
            }
            u->period_start = (int64_t)ps;
            if (journal_hour(refs[n].day, &refs[n].hour) != 0) {
                rc = tg_errf(err, TG_ESTORE, "folding usage: journal row of batch %lld has a bad day", (long long)last);
                goto done;
            }
            n++;
        }
    }
    if (step != SQLITE_DONE) {
        rc = db_error(st, err, "folding usage");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        refs[i].u = &rows[i];
    if (n != 0) {
        size_t slots = 16;
        while (slots < 2 * n)
            slots *= 2;
        fold_slot_t *table = malloc(slots * sizeof(*table));
        if (table == NULL) {
            rc = tg_errf(err, TG_ENOMEM, "out of memory folding usage");
            goto done;
        }
        if ((step = fold_group(st, refs, n, FOLD_PERIOD, table, slots)) == SQLITE_DONE)
            step = fold_group(st, refs, n, FOLD_DAILY, table, slots);
        /* Hourly totals only while meter events are exported (billing: stripe). Measured with
         * 1,000 customers, batches of 1,000 rows folded 64 at a time: 66 ms per fold before the
         * hour was journaled, 66-69 ms now with export off, 69-74 ms with it on. */
        if (step == SQLITE_DONE) {
            sqlite3_stmt *on = st->hot[ST_EXPORT_ON];
            sqlite3_reset(on);
            step = sqlite3_step(on);
            sqlite3_reset(on);
            if (step == SQLITE_ROW)
                step = fold_group(st, refs, n, FOLD_HOURLY, table, slots);
        }
        free(table);
    }
    if (step != SQLITE_DONE) {
        rc = db_error(st, err, "folding usage");
        goto done;
    }
    if (nrows != 0) {
        sqlite3_stmt *del;
        if ((rc = prepare(st, "DELETE FROM usage_journal WHERE batch_id <= ?", &del, err, "folding usage")) != 0)
            goto done;
        sqlite3_bind_int64(del, 1, last);
        step = sqlite3_step(del);
        sqlite3_finalize(del);
        if (step != SQLITE_DONE) {
            rc = db_error(st, err, "folding usage");
            goto done;
        }
    }
    *more = nrows == JOURNAL_FOLD_MAX_ROWS;
done:
    sqlite3_finalize(sel);
    free(rows);
    free(refs);
    if (rc == 0 && (rc = exec(st, "COMMIT", err, "committing folded usage")) == 0)
        return 0;
    exec(st, "ROLLBACK", NULL, "");
    return rc;
}

static int fold_journal(tg_store_t *st, tg_err_t *err)
{
    if (!sqlite3_get_autocommit(st->db))
        return 0;
    int rc;
    if ((rc = prepare_hot(st, err)) != 0)
        return rc;
    /* Cheap when there is nothing to fold: a read, no write lock. */
    sqlite3_stmt *any = st->hot[ST_JOURNAL_ANY];
    sqlite3_reset(any);
    int step = sqlite3_step(any);
    sqlite3_reset(any);
    if (step == SQLITE_DONE)
        return 0;
    if (step != SQLITE_ROW)
        return db_error(st, err, "folding usage");
    int more = 1;
    while (more)
        if ((rc = fold_some(st, &more, err)) != 0)
            return rc;
    st->journal_batches = 0;
    st->journal_entries = 0;
    st->folded_mono_ns = mono_ns();
    return 0;
}

int tg_store_usage_fold(tg_store_t *st, int force, tg_err_t *err)
{
    if (!force && st->journal_batches < JOURNAL_FOLD_BATCHES && st->journal_entries < JOURNAL_FOLD_ENTRIES &&
        (st->journal_batches == 0 || mono_ns() - st->folded_mono_ns < JOURNAL_FOLD_NS))
        return 0;
    int rc = fold_journal(st, err);
    if (rc != 0) { /* the batches stay in the journal; try again in JOURNAL_FOLD_NS, not per batch */
        st->journal_batches = 1;
        st->journal_entries = 0;
        st->folded_mono_ns = mono_ns();
    }
    return rc;
}

int tg_store_usage_period(tg_store_t *st, const char *customer_id, int64_t period_start, tg_usage_total_cb cb,
                          void *arg, tg_err_t *err)
{
    int rc = fold_journal(st, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *s;
    rc = prepare(st,
                 "SELECT metric, TG_SUM(units) FROM usage_period WHERE customer_id = ? AND period_start = ?"
                 " GROUP BY metric ORDER BY metric",
                 &s, err, "reading usage");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, period_start);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW)
        if (cb((const char *)sqlite3_column_text(s, 0), (uint64_t)sqlite3_column_int64(s, 1), arg) != 0)
            break;
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = db_error(st, err, "reading usage");
    sqlite3_finalize(s);
    return rc;
}

/* Sums of usage_daily over the UTC days of [from_s, to_s) for one customer, two text columns
 * and a sum per row (by day or by endpoint). */
static int daily_query(tg_store_t *st, const char *sql, const char *doing, const char *customer_id, int64_t from_s,
                       int64_t to_s, tg_usage_day_cb cb, void *arg, tg_err_t *err)
{
    char from[16], to[16];
    if (to_s <= from_s)
        return 0;
    int frc = fold_journal(st, err);
    if (frc != 0)
        return frc;
    utc_day(from_s, from);
    utc_day(to_s - 1, to);
    sqlite3_stmt *s;
    int rc = prepare(st, sql, &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, from, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, to, -1, SQLITE_STATIC);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW)
        if (cb((const char *)sqlite3_column_text(s, 0), (const char *)sqlite3_column_text(s, 1),
               (uint64_t)sqlite3_column_int64(s, 2), arg) != 0)
            break;
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = db_error(st, err, doing);
    sqlite3_finalize(s);
    return rc;
}

int tg_store_usage_daily(tg_store_t *st, const char *customer_id, int64_t from_s, int64_t to_s, tg_usage_day_cb cb,
                         void *arg, tg_err_t *err)
{
    return daily_query(st,
                       "SELECT day, metric, TG_SUM(units) FROM usage_daily WHERE customer_id = ? AND day >= ?"
                       " AND day <= ? GROUP BY day, metric ORDER BY day, metric",
                       "reading daily usage", customer_id, from_s, to_s, cb, arg, err);
}

int tg_store_usage_endpoints(tg_store_t *st, const char *customer_id, int64_t from_s, int64_t to_s,
                             tg_usage_endpoint_cb cb, void *arg, tg_err_t *err)
{
    /* tg_usage_endpoint_cb has the shape of tg_usage_day_cb: (endpoint, metric, units, arg). */
    return daily_query(st,
                       "SELECT endpoint, metric, TG_SUM(units) FROM usage_daily WHERE customer_id = ? AND day >= ?"
                       " AND day <= ? GROUP BY endpoint, metric ORDER BY TG_SUM(units) DESC, endpoint",
                       "reading usage by endpoint", customer_id, from_s, to_s, cb, arg, err);
}

int tg_store_usage_load(tg_store_t *st, int64_t since_s, tg_usage_load_cb cb, void *arg, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = fold_journal(st, err);
    if (rc != 0)
        return rc;
    rc = prepare(st,
                 "SELECT customer_id, period_start, metric, TG_SUM(units) FROM usage_period WHERE period_start >= ?"
                 " GROUP BY customer_id, period_start, metric",
                 &s, err, "loading usage totals");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, since_s);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW)
        if (cb((const char *)sqlite3_column_text(s, 0), sqlite3_column_int64(s, 1),
               (const char *)sqlite3_column_text(s, 2), (uint64_t)sqlite3_column_int64(s, 3), arg) != 0)
            break;
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = db_error(st, err, "loading usage totals");
    sqlite3_finalize(s);
    return rc;
}

int tg_store_usage_total(tg_store_t *st, const char *metric, uint64_t *units, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = fold_journal(st, err);
    if (rc != 0)
        return rc;
    rc = prepare(st, "SELECT TG_SUM(units) FROM usage_period WHERE metric = ?", &s, err, "totalling usage");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, metric, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW)
        *units = (uint64_t)sqlite3_column_int64(s, 0);
    else
        rc = db_error(st, err, "totalling usage");
    sqlite3_finalize(s);
    return rc;
}

/* ---- invoices ---- */

void tg_invoice_clear(tg_invoice_t *inv)
{
    free(inv->body);
    memset(inv, 0, sizeof(*inv));
}

#define INVOICE_COLS                                                                                                   \
    "id, customer_id, period_start, period_end, status, COALESCE(number, ''), currency, total, body, created_at,"      \
    " finalized_at, closed_at, held"

static int read_invoice(sqlite3_stmt *s, tg_invoice_t *inv)
{
    memset(inv, 0, sizeof(*inv));
    text(s, 0, inv->id, sizeof(inv->id));
    text(s, 1, inv->customer_id, sizeof(inv->customer_id));
    inv->period_start = sqlite3_column_int64(s, 2);
    inv->period_end = sqlite3_column_int64(s, 3);
    text(s, 4, inv->status, sizeof(inv->status));
    text(s, 5, inv->number, sizeof(inv->number));
    text(s, 6, inv->currency, sizeof(inv->currency));
    inv->total = sqlite3_column_int64(s, 7);
    const unsigned char *b = sqlite3_column_text(s, 8);
    inv->body = strdup(b != NULL ? (const char *)b : "{}");
    inv->created_at = sqlite3_column_int64(s, 9);
    inv->finalized_at = sqlite3_column_int64(s, 10);
    inv->closed_at = sqlite3_column_int64(s, 11);
    inv->held = sqlite3_column_int(s, 12) != 0;
    return inv->body != NULL ? 0 : TG_ENOMEM;
}

static int find_invoice(tg_store_t *st, const char *sql, const char *key, int64_t num, tg_invoice_t *out, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st, sql, &s, err, "reading an invoice");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    if (num != INT64_MIN)
        sqlite3_bind_int64(s, 2, num);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        rc = read_invoice(s, out);
    else if (step == SQLITE_DONE)
        rc = TG_ENOTFOUND;
    else
        rc = db_error(st, err, "reading an invoice");
    sqlite3_finalize(s);
    if (rc == TG_ENOTFOUND)
        tg_errf(err, rc, "no invoice %s", key);
    return rc;
}

int tg_store_invoice_get(tg_store_t *st, const char *id, tg_invoice_t *out, tg_err_t *err)
{
    return find_invoice(st, "SELECT " INVOICE_COLS " FROM invoices WHERE id = ?", id, INT64_MIN, out, err);
}

typedef int (*tg_unbilled_cb)(const tg_unbilled_t *row, void *arg);

static int unbilled_query(tg_store_t *st, const char *customer_id, int64_t period_start, tg_unbilled_cb cb, void *arg,
                          tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = fold_journal(st, err); /* (inside a transaction the caller folded already) */
    if (rc != 0)
        return rc;
    rc = prepare(st,
                 "SELECT plan_id, metric, TG_SUM(units - invoiced_units) FROM usage_period"
                 " WHERE customer_id = ? AND period_start <= ? AND units > invoiced_units"
                 " GROUP BY plan_id, metric ORDER BY plan_id, metric",
                 &s, err, "reading unbilled usage");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, period_start);
    int step;
    tg_unbilled_t row;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        text(s, 0, row.plan_id, sizeof(row.plan_id));
        text(s, 1, row.metric, sizeof(row.metric));
        row.units = (uint64_t)sqlite3_column_int64(s, 2);
        if (cb(&row, arg) != 0)
            break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = db_error(st, err, "reading unbilled usage");
    sqlite3_finalize(s);
    return rc;
}

int tg_store_invoice_item_add(tg_store_t *st, const tg_invoice_item_t *item, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st,
                     "INSERT INTO invoice_items(customer_id, created_at, description, amount, currency)"
                     " VALUES (?,?,?,?,?)",
                     &s, err, "storing an invoice item");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, item->customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, item->created_at);
    sqlite3_bind_text(s, 3, item->description, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, item->amount);
    sqlite3_bind_text(s, 5, item->currency, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = db_error(st, err, "storing an invoice item");
    sqlite3_finalize(s);
    return rc;
}

typedef struct {
    tg_invoice_item_t *items;
    size_t n, cap;
} item_vec_t;

static int pending_items(tg_store_t *st, const char *customer_id, int64_t before, item_vec_t *v, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st,
                     "SELECT id, created_at, description, amount, currency FROM invoice_items"
                     " WHERE customer_id = ? AND invoice_id IS NULL AND created_at < ? ORDER BY id",
                     &s, err, "reading invoice items");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, before);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (v->n == v->cap) {
            size_t cap = v->cap ? v->cap * 2 : 8;
            tg_invoice_item_t *ni = realloc(v->items, cap * sizeof(*ni));
            if (ni == NULL) {
                rc = tg_errf(err, TG_ENOMEM, "out of memory reading invoice items");
                break;
            }
            v->items = ni;
            v->cap = cap;
        }
        tg_invoice_item_t *it = &v->items[v->n++];
        memset(it, 0, sizeof(*it));
        it->id = sqlite3_column_int64(s, 0);
        snprintf(it->customer_id, sizeof(it->customer_id), "%s", customer_id);
        it->created_at = sqlite3_column_int64(s, 1);
        text(s, 2, it->description, sizeof(it->description));
        it->amount = sqlite3_column_int64(s, 3);
        text(s, 4, it->currency, sizeof(it->currency));
    }
    if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = db_error(st, err, "reading invoice items");
    sqlite3_finalize(s);
    return rc;
}

typedef struct {
    tg_unbilled_t *rows;
    size_t n, cap;
} unbilled_vec_t;

static int collect_unbilled(const tg_unbilled_t *row, void *arg)
{
    unbilled_vec_t *v = arg;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        tg_unbilled_t *r = realloc(v->rows, cap * sizeof(*r));
        if (r == NULL)
            return 1;
        v->rows = r;
        v->cap = cap;
    }
    v->rows[v->n++] = *row;
    return 0;
}

int tg_store_tx_begin(tg_store_t *st, tg_err_t *err)
{
    int rc = fold_journal(st, err); /* the transaction sees every committed batch in the totals */
    if (rc != 0)
        return rc;
    return exec(st, "BEGIN IMMEDIATE", err, "starting a transaction");
}

/* The savepoint's name is one of the caller's constants (an SQL identifier), never outside data. */
int tg_store_savepoint(tg_store_t *st, const char *name, tg_err_t *err)
{
    char sql[96];
    snprintf(sql, sizeof(sql), "SAVEPOINT %s", name);
    return exec(st, sql, err, "starting a savepoint");
}

int tg_store_savepoint_release(tg_store_t *st, const char *name, tg_err_t *err)
{
    char sql[96];
    snprintf(sql, sizeof(sql), "RELEASE %s", name);
    return exec(st, sql, err, "releasing a savepoint");
}

void tg_store_savepoint_rollback(tg_store_t *st, const char *name)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "ROLLBACK TO %s; RELEASE %s", name, name);
    exec(st, sql, NULL, "");
}

int tg_store_tx_commit(tg_store_t *st, tg_err_t *err)
{
    int rc = exec(st, "COMMIT", err, "committing a transaction");
    if (rc != 0)
        exec(st, "ROLLBACK", NULL, "");
    return rc;
}

void tg_store_tx_rollback(tg_store_t *st)
{
    if (!sqlite3_get_autocommit(st->db))
        exec(st, "ROLLBACK", NULL, "");
}

int tg_store_invoice_create(tg_store_t *st, tg_invoice_t *draft, tg_invoice_build_cb build, void *arg, int *created,
                            tg_invoice_t *out, tg_err_t *err)
{
    *created = 0;
    /* Inside a caller's transaction this is a savepoint; alone it is its own write transaction. */
    int outer = !sqlite3_get_autocommit(st->db);
    const char *begin = outer ? "SAVEPOINT invoice" : "BEGIN IMMEDIATE";
    const char *commit = outer ? "RELEASE invoice" : "COMMIT";
    const char *rollback = outer ? "ROLLBACK TO invoice; RELEASE invoice" : "ROLLBACK";
    int rc = fold_journal(st, err);
    if (rc == 0)
        rc = exec(st, begin, err, "creating an invoice");
    if (rc != 0)
        return rc;
    tg_invoice_t existing;
    rc = find_invoice(st, "SELECT " INVOICE_COLS " FROM invoices WHERE customer_id = ? AND period_start = ?",
                      draft->customer_id, draft->period_start, out != NULL ? out : &existing, err);
    if (rc == 0 && out == NULL)
        tg_invoice_clear(&existing);
    if (rc == 0 || rc != TG_ENOTFOUND) { /* exists already (idempotent), or failed */
        exec(st, rc == 0 ? commit : rollback, NULL, "");
        return rc;
    }
    unbilled_vec_t v = {0};
    item_vec_t items = {0};
    if ((rc = unbilled_query(st, draft->customer_id, draft->period_start, collect_unbilled, &v, err)) != 0 ||
        (rc = pending_items(st, draft->customer_id, draft->period_end, &items, err)) != 0 ||
        (rc = build(v.rows, v.n, items.items, items.n, draft, arg, err)) != 0)
        goto fail;
    sqlite3_stmt *s;
    if ((rc = prepare(st,
                      "INSERT INTO invoices(id, customer_id, period_start, period_end, status, currency, total, body,"
                      " created_at) VALUES (?,?,?,?,'draft',?,?,?,?)",
                      &s, err, "storing an invoice")) != 0)
        goto fail;
    sqlite3_bind_text(s, 1, draft->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, draft->customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, draft->period_start);
    sqlite3_bind_int64(s, 4, draft->period_end);
    sqlite3_bind_text(s, 5, draft->currency, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, draft->total);
    sqlite3_bind_text(s, 7, draft->body, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 8, draft->created_at);
    int step = sqlite3_step(s);
    sqlite3_finalize(s);
    if (step != SQLITE_DONE) {
        rc = db_error(st, err, "storing an invoice");
        goto fail;
    }
    if ((rc = prepare(st,
                      "UPDATE usage_period SET invoiced_units = units WHERE customer_id = ? AND period_start <= ?"
                      " AND units > invoiced_units",
                      &s, err, "marking usage invoiced")) != 0)
        goto fail;
    sqlite3_bind_text(s, 1, draft->customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, draft->period_start);
    step = sqlite3_step(s);
    sqlite3_finalize(s);
    if (step != SQLITE_DONE) {
        rc = db_error(st, err, "marking usage invoiced");
        goto fail;
    }
    for (size_t i = 0; i < items.n; i++) {
        if ((rc = prepare(st, "UPDATE invoice_items SET invoice_id = ? WHERE id = ?", &s, err,
                          "marking items invoiced")) != 0)
            goto fail;
        sqlite3_bind_text(s, 1, draft->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, items.items[i].id);
        step = sqlite3_step(s);
        sqlite3_finalize(s);
        if (step != SQLITE_DONE) {
            rc = db_error(st, err, "marking items invoiced");
            goto fail;
        }
    }
    if ((rc = exec(st, commit, err, "committing an invoice")) != 0)
        goto fail;
    free(v.rows);
    free(items.items);
    *created = 1;
    return out != NULL ? tg_store_invoice_get(st, draft->id, out, err) : 0;
fail:
    free(v.rows);
    free(items.items);
    exec(st, rollback, NULL, "");
    return rc;
}

int tg_store_invoice_preview(tg_store_t *st, tg_invoice_t *draft, tg_invoice_build_cb build, void *arg, tg_err_t *err)
{
    unbilled_vec_t v = {0};
    item_vec_t items = {0};
    int rc = unbilled_query(st, draft->customer_id, draft->period_start, collect_unbilled, &v, err);
    if (rc == 0)
        rc = pending_items(st, draft->customer_id, draft->period_end, &items, err);
    if (rc == 0)
        rc = build(v.rows, v.n, items.items, items.n, draft, arg, err);
    free(v.rows);
    free(items.items);
    return rc;
}

int tg_store_invoice_list(tg_store_t *st, const char *customer_id, tg_invoice_cb cb, void *arg, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st,
                     customer_id != NULL
                         ? "SELECT " INVOICE_COLS " FROM invoices WHERE customer_id = ? ORDER BY period_start DESC, id"
                         : "SELECT " INVOICE_COLS " FROM invoices ORDER BY period_start DESC, id",
                     &s, err, "listing invoices");
    if (rc != 0)
        return rc;
    if (customer_id != NULL)
        sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    int step;
    tg_invoice_t inv;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (read_invoice(s, &inv) != 0) {
            rc = tg_errf(err, TG_ENOMEM, "out of memory listing invoices");
            break;
        }
        int stop = cb(&inv, arg);
        tg_invoice_clear(&inv);
        if (stop)
            break;
    }
    if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = db_error(st, err, "listing invoices");
    sqlite3_finalize(s);
    return rc;
}

int tg_store_invoice_totals(tg_store_t *st, int64_t from, int64_t to, tg_invoice_totals_cb cb, void *arg,
                            tg_err_t *err)
{
    sqlite3_stmt *s;
    /* finalized_at is 0 for a draft and for a draft voided before it was finalized; migration 20
     * indexes it, so a month's invoices are a range scan. */
    int rc = prepare(st,
                     "SELECT currency, status, SUM(total), COUNT(*) FROM invoices"
                     " WHERE finalized_at >= ? AND finalized_at < ? AND finalized_at > 0 AND status <> 'draft'"
                     " GROUP BY currency, status ORDER BY currency, status",
                     &s, err, "summing invoices");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, from);
    sqlite3_bind_int64(s, 2, to);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        const char *currency = (const char *)sqlite3_column_text(s, 0);
        const char *status = (const char *)sqlite3_column_text(s, 1);
        if (cb(currency != NULL ? currency : "", status != NULL ? status : "", sqlite3_column_int64(s, 2),
               (uint64_t)sqlite3_column_int64(s, 3), arg) != 0)
            break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = db_error(st, err, "summing invoices"); /* SUM's "integer overflow" included */
    sqlite3_finalize(s);
    return rc;
}

int tg_store_invoice_transition(tg_store_t *st, const char *id, const char *to, int64_t at, tg_err_t *err)
{
    /* Inside a caller's transaction (a webhook event applied with its mark) this is a savepoint. */
    int outer = !sqlite3_get_autocommit(st->db);
    const char *commit = outer ? "RELEASE invoice_change" : "COMMIT";
    const char *rollback = outer ? "ROLLBACK TO invoice_change; RELEASE invoice_change" : "ROLLBACK";
    int rc = exec(st, outer ? "SAVEPOINT invoice_change" : "BEGIN IMMEDIATE", err, "changing an invoice");
    if (rc != 0)
        return rc;
    tg_invoice_t inv;
    if ((rc = tg_store_invoice_get(st, id, &inv, err)) != 0) {
        exec(st, rollback, NULL, "");
        return rc;
    }
    const char *from = inv.status;
    int ok = (strcmp(to, "open") == 0 && strcmp(from, "draft") == 0) ||
             (strcmp(to, "void") == 0 && (strcmp(from, "draft") == 0 || strcmp(from, "open") == 0)) ||
             ((strcmp(to, "paid") == 0 || strcmp(to, "uncollectible") == 0) && strcmp(from, "open") == 0);
    if (!ok) {
        rc = tg_errf(err, TG_ESTATE, "invoice %s is %s; it cannot become %s", id, from, to);
        tg_invoice_clear(&inv);
        exec(st, rollback, NULL, "");
        return rc;
    }
    tg_invoice_clear(&inv);
    sqlite3_stmt *s;
    char number[TG_INVOICE_NUMBER_MAX] = "";
    if (strcmp(to, "open") == 0) {
        time_t t = (time_t)at;
        struct tm tm;
        gmtime_r(&t, &tm);
        int year = tm.tm_year + 1900;
        if ((rc = prepare(st,
                          "INSERT INTO invoice_numbers(year, last) VALUES (?, 1)"
                          " ON CONFLICT(year) DO UPDATE SET last = last + 1 RETURNING last",
                          &s, err, "numbering an invoice")) != 0)
            goto fail;
        sqlite3_bind_int(s, 1, year);
        if (sqlite3_step(s) != SQLITE_ROW) {
            sqlite3_finalize(s);
            rc = db_error(st, err, "numbering an invoice");
            goto fail;
        }
        snprintf(number, sizeof(number), "TG-%d-%06lld", year, (long long)sqlite3_column_int64(s, 0));
        sqlite3_finalize(s);
        rc = prepare(st, "UPDATE invoices SET status = 'open', number = ?, finalized_at = ? WHERE id = ?", &s, err,
                     "finalizing an invoice");
        if (rc != 0)
            goto fail;
        sqlite3_bind_text(s, 1, number, -1, SQLITE_STATIC);
    } else {
        rc = prepare(st, "UPDATE invoices SET status = ?, closed_at = ? WHERE id = ?", &s, err, "changing an invoice");
        if (rc != 0)
            goto fail;
        sqlite3_bind_text(s, 1, to, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(s, 2, at);
    sqlite3_bind_text(s, 3, id, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    sqlite3_finalize(s);
    if (step != SQLITE_DONE) {
        rc = db_error(st, err, "changing an invoice");
        goto fail;
    }
    return exec(st, commit, err, "committing an invoice change");
fail:
    exec(st, rollback, NULL, "");
    return rc;
}

/* ---- portal logins ---- */

int tg_store_customer_set_password(tg_store_t *st, const char *id, const char *password_hash, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st, "UPDATE customers SET password_hash = ? WHERE id = ?", &s, err, "storing a password");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, password_hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = db_error(st, err, "storing a password");
    else if (sqlite3_changes(st->db) == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "no customer %s", id);
    sqlite3_finalize(s);
    return rc;
}

int tg_store_customer_by_email(tg_store_t *st, const char *email, tg_customer_t *out, char *password_hash, size_t cap,
                               tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st, "SELECT " CUSTOMER_COLS ", password_hash FROM customers WHERE email = ?", &s, err,
                     "finding a customer by email");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, email, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
        read_customer(s, out);
        text(s, 11, password_hash, cap);
    } else if (step == SQLITE_DONE)
        rc = tg_errf(err, TG_ENOTFOUND, "no customer with email %s", email);
    else
        rc = db_error(st, err, "finding a customer by email");
    sqlite3_finalize(s);
    return rc;
}

int tg_store_session_insert(tg_store_t *st, const tg_session_t *ses, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st,
                     "INSERT INTO sessions(token_hash, customer_id, csrf_token, created_at, expires_at)"
                     " VALUES (?,?,?,?,?)",
                     &s, err, "storing a session");
    if (rc != 0)
        return rc;
    sqlite3_bind_blob(s, 1, ses->token_hash, sizeof(ses->token_hash), SQLITE_STATIC);
    sqlite3_bind_text(s, 2, ses->customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, ses->csrf_token, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, ses->created_at);
    sqlite3_bind_int64(s, 5, ses->expires_at);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = db_error(st, err, "storing a session");
    sqlite3_finalize(s);
    return rc;
}

int tg_store_session_get(tg_store_t *st, const uint8_t token_hash[32], tg_session_t *out, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st, "SELECT customer_id, csrf_token, created_at, expires_at FROM sessions WHERE token_hash = ?",
                     &s, err, "reading a session");
    if (rc != 0)
        return rc;
    sqlite3_bind_blob(s, 1, token_hash, 32, SQLITE_STATIC);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
        memset(out, 0, sizeof(*out));
        memcpy(out->token_hash, token_hash, 32);
        text(s, 0, out->customer_id, sizeof(out->customer_id));
        text(s, 1, out->csrf_token, sizeof(out->csrf_token));
        out->created_at = sqlite3_column_int64(s, 2);
        out->expires_at = sqlite3_column_int64(s, 3);
    } else if (step == SQLITE_DONE)
        rc = TG_ENOTFOUND;
    else
        rc = db_error(st, err, "reading a session");
    sqlite3_finalize(s);
    return rc;
}

int tg_store_session_delete(tg_store_t *st, const uint8_t token_hash[32], tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st, "DELETE FROM sessions WHERE token_hash = ?", &s, err, "deleting a session");
    if (rc != 0)
        return rc;
    sqlite3_bind_blob(s, 1, token_hash, 32, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = db_error(st, err, "deleting a session");
    sqlite3_finalize(s);
    return rc;
}

int tg_store_session_delete_customer(tg_store_t *st, const char *customer_id, uint64_t *count, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st, "DELETE FROM sessions WHERE customer_id = ?", &s, err, "deleting sessions");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = db_error(st, err, "deleting sessions");
    else if (count != NULL)
        *count = (uint64_t)sqlite3_changes(st->db);
    sqlite3_finalize(s);
    return rc;
}

/* ---- sign-up trials ---- */

int tg_store_trial_used(tg_store_t *st, const char *email_norm, const char *address, int64_t address_since,
                        int *by_email, int *by_address, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st,
                     "SELECT EXISTS(SELECT 1 FROM signup_trials WHERE email_norm = ?1),"
                     " EXISTS(SELECT 1 FROM signup_trials WHERE address = ?2 AND at >= ?3)",
                     &s, err, "reading trials");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, email_norm, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, address, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, address_since);
    if (sqlite3_step(s) == SQLITE_ROW) {
        *by_email = sqlite3_column_int(s, 0);
        *by_address = sqlite3_column_int(s, 1);
    } else
        rc = db_error(st, err, "reading trials");
    sqlite3_finalize(s);
    return rc;
}

int tg_store_trial_record(tg_store_t *st, const char *email_norm, const char *address, const char *customer_id,
                          int64_t at, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st, "INSERT INTO signup_trials(email_norm, address, customer_id, at) VALUES (?,?,?,?)", &s, err,
                     "recording a trial");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, email_norm, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, address, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, at);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = db_error(st, err, "recording a trial");
    sqlite3_finalize(s);
    return rc;
}

/* ---- plan change history ---- */

int tg_store_plan_change_add(tg_store_t *st, const char *customer_id, const char *from_plan, const char *to_plan,
                             const char *kind, int64_t at, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st, "INSERT INTO plan_changes(customer_id, from_plan, to_plan, kind, at) VALUES (?,?,?,?,?)", &s,
                     err, "recording a plan change");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, from_plan, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, to_plan, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, at);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = db_error(st, err, "recording a plan change");
    sqlite3_finalize(s);
    return rc;
}

int tg_store_plan_change_count(tg_store_t *st, const char *kind, int64_t since, int64_t until, uint64_t *count,
                               tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st, "SELECT COUNT(*) FROM plan_changes WHERE kind = ? AND at >= ? AND at <= ?", &s, err,
                     "counting plan changes");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, since);
    sqlite3_bind_int64(s, 3, until);
    if (sqlite3_step(s) == SQLITE_ROW)
        *count = (uint64_t)sqlite3_column_int64(s, 0);
    else
        rc = db_error(st, err, "counting plan changes");
    sqlite3_finalize(s);
    return rc;
}

/* ---- lists, one page at a time (store.h) ----
 * Each list keeps the order it always had, newest first: (num DESC, id) where num is created_at
 * or period_start; migration 9 adds an index in exactly that order, so a page is an index range
 * scan whatever its position. The key of a row is "<num>/<id>". */

typedef struct {
    tg_store_t *st;
    int kind; /* 0 customers, 1 keys, 2 invoices */
    void *cb;
    void *arg;
    int failed; /* an invoice could not be read (out of memory) */
} page_ctx_t;

static int page_row(sqlite3_stmt *s, void *ctx, char key[TG_PAGE_KEY_MAX])
{
    page_ctx_t *c = ctx;
    if (c->kind == 0) {
        tg_customer_t cu;
        read_customer(s, &cu);
        snprintf(key, TG_PAGE_KEY_MAX, "%lld/%s", (long long)cu.created_at, cu.id);
        return ((tg_customer_cb)c->cb)(&cu, c->arg);
    }
    if (c->kind == 1) {
        tg_key_t k;
        read_key(s, &k);
        snprintf(key, TG_PAGE_KEY_MAX, "%lld/%s", (long long)k.created_at, k.id);
        return ((tg_key_cb)c->cb)(&k, c->arg);
    }
    tg_invoice_t inv;
    if (read_invoice(s, &inv) != 0) {
        c->failed = 1;
        return 1;
    }
    snprintf(key, TG_PAGE_KEY_MAX, "%lld/%s", (long long)inv.period_start, inv.id);
    int stop = ((tg_invoice_cb)c->cb)(&inv, c->arg);
    tg_invoice_clear(&inv);
    return stop;
}

/* select: "SELECT cols FROM table WHERE <filter>" (the filter's parameter, if any, is ?1 and is
 * filter_value); num: the ordering column. */
static int list_page(tg_store_t *st, const char *select, const char *filter_value, const char *num,
                     const tg_page_t *page, page_ctx_t *ctx, tg_page_end_t *end, const char *doing, tg_err_t *err)
{
    int64_t after_num = 0;
    char after_id[TG_ID_MAX] = "";
    int after = page->after[0] != '\0';
    if (after && tg_page_key_parse_num_id(page->after, &after_num, after_id) != 0)
        return tg_errf(err, TG_EINVAL, "the cursor does not belong to this list");
    if (page->limit < 1 || page->limit > TG_PAGE_MAX)
        return tg_errf(err, TG_EINVAL, "a page holds 1 to %d items", TG_PAGE_MAX);
    char sql[1024];
    int n = after
                ? snprintf(sql, sizeof(sql), "%s AND (%s < ?2 OR (%s = ?2 AND id > ?3)) ORDER BY %s DESC, id LIMIT ?4",
                           select, num, num, num)
                : snprintf(sql, sizeof(sql), "%s ORDER BY %s DESC, id LIMIT ?4", select, num);
    if (n < 0 || (size_t)n >= sizeof(sql))
        return tg_errf(err, TG_EINVAL, "%s: query too long", doing);
    sqlite3_stmt *s;
    int rc = prepare(st, sql, &s, err, doing);
    if (rc != 0)
        return rc;
    if (filter_value != NULL)
        sqlite3_bind_text(s, 1, filter_value, -1, SQLITE_STATIC);
    if (after) {
        sqlite3_bind_int64(s, 2, after_num);
        sqlite3_bind_text(s, 3, after_id, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(s, 4, (sqlite3_int64)page->limit + 1);
    rc = tg_sqlite_run_page(st, s, page->limit, page_row, ctx, end, doing, err);
    if (rc == 0 && ctx->failed)
        rc = tg_errf(err, TG_ENOMEM, "%s: out of memory", doing);
    return rc;
}

int tg_store_customer_page(tg_store_t *st, const tg_page_t *page, tg_customer_cb cb, void *arg, tg_page_end_t *end,
                           tg_err_t *err)
{
    page_ctx_t c = {st, 0, (void *)cb, arg, 0};
    return list_page(st, "SELECT " CUSTOMER_COLS " FROM customers WHERE 1", NULL, "created_at", page, &c, end,
                     "listing customers", err);
}

int tg_store_key_page(tg_store_t *st, const char *customer_id, const tg_page_t *page, tg_key_cb cb, void *arg,
                      tg_page_end_t *end, tg_err_t *err)
{
    page_ctx_t c = {st, 1, (void *)cb, arg, 0};
    return list_page(st, "SELECT " KEY_COLS " FROM api_keys WHERE customer_id = ?1", customer_id, "created_at", page,
                     &c, end, "listing keys", err);
}

int tg_store_invoice_page(tg_store_t *st, const char *customer_id, const tg_page_t *page, tg_invoice_cb cb, void *arg,
                          tg_page_end_t *end, tg_err_t *err)
{
    page_ctx_t c = {st, 2, (void *)cb, arg, 0};
    return list_page(st,
                     customer_id != NULL ? "SELECT " INVOICE_COLS " FROM invoices WHERE customer_id = ?1"
                                         : "SELECT " INVOICE_COLS " FROM invoices WHERE 1",
                     customer_id, "period_start", page, &c, end, "listing invoices", err);
}

int tg_store_key_count_active(tg_store_t *st, const char *customer_id, int64_t now, uint64_t *count, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st,
                     "SELECT COUNT(*) FROM api_keys WHERE customer_id = ? AND (revoked_at = 0 OR revoked_at > ?2)"
                     " AND (expires_at = 0 OR expires_at > ?2)",
                     &s, err, "counting keys");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, now);
    if (sqlite3_step(s) == SQLITE_ROW)
        *count = (uint64_t)sqlite3_column_int64(s, 0);
    else
        rc = db_error(st, err, "counting keys");
    sqlite3_finalize(s);
    return rc;
}

/* ---- for the other files of the backend (store_sqlite_int.h) ---- */

int tg_sqlite_prepare(tg_store_t *st, const char *sql, sqlite3_stmt **s, tg_err_t *err, const char *doing)
{
    return prepare(st, sql, s, err, doing);
}

int tg_sqlite_error(tg_store_t *st, tg_err_t *err, const char *doing)
{
    return db_error(st, err, doing);
}

void tg_sqlite_text(sqlite3_stmt *s, int col, char *out, size_t cap)
{
    text(s, col, out, cap);
}

int tg_store_invoice_hold(tg_store_t *st, const char *id, int held, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st, "UPDATE invoices SET held = ? WHERE id = ? AND status = 'draft'", &s, err, "holding an invoice");
    if (rc != 0)
        return rc;
    sqlite3_bind_int(s, 1, held ? 1 : 0);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    sqlite3_finalize(s);
    if (step != SQLITE_DONE)
        return db_error(st, err, "holding an invoice");
    if (sqlite3_changes(st->db) == 1)
        return 0;
    tg_invoice_t inv;
    if ((rc = tg_store_invoice_get(st, id, &inv, err)) != 0)
        return rc;
    rc = tg_errf(err, TG_ESTATE, "invoice %s is %s; only a draft can be held or released", id, inv.status);
    tg_invoice_clear(&inv);
    return rc;
}

int tg_store_invoice_drafts_due(tg_store_t *st, int64_t created_before, char (*ids)[TG_ID_MAX], size_t limit, size_t *n,
                                tg_err_t *err)
{
    *n = 0;
    sqlite3_stmt *s;
    int rc = prepare(st,
                     "SELECT id FROM invoices WHERE status = 'draft' AND held = 0 AND created_at <= ?"
                     " ORDER BY created_at, id LIMIT ?",
                     &s, err, "finding drafts to finalize");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, created_before);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
    int step = SQLITE_DONE;
    while (*n < limit && (step = sqlite3_step(s)) == SQLITE_ROW)
        text(s, 0, ids[(*n)++], TG_ID_MAX);
    if (*n < limit && step != SQLITE_DONE)
        rc = db_error(st, err, "finding drafts to finalize");
    sqlite3_finalize(s);
    return rc;
}
