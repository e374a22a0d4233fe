/* store_copy.c - one node's SQLite database into an empty PostgreSQL database; see store_copy.h.
 *
 * How it goes: the source is opened read-only and one read transaction is held from the first
 * query to the last (SQLite's WAL gives that transaction one snapshot, whatever a writer does
 * meanwhile). The target is migrated, then everything happens in one PostgreSQL transaction:
 * tables locked, checked empty, filled with COPY ... FROM STDIN (text format, streamed in chunks:
 * one round trip per megabyte instead of one per row), identity sequences moved past the copied
 * ids, every table verified against the source, COMMIT. Any error or difference rolls the whole
 * copy back: the target is either untouched or complete.
 *
 * The table and column lists come from the databases themselves (sqlite_master and PRAGMA
 * table_info; information_schema on the PostgreSQL side), so a table that a later migration adds
 * is copied without touching this file; the two lists must agree, or the copy stops naming what
 * differs. One table is SQLite's only: usage_event_id_blocks, copied as rows of usage_event_ids
 * (see "SQLite's event id blocks" below). PostgreSQL is authoritative for types: a bigint column takes only SQLite integers (a
 * text or real value there is an error naming the table and column, never a silent cast).
 *
 * The verification (store_copy_verify.c) does not trust the COPY's own row count alone: per
 * table it compares the row count, per column the non-NULL values and their exact sum or byte
 * length, computed by each database over what it holds, and a digest of every row's values
 * (below), so that a value changed in place, same length, is caught too. */
#include "store/store_copy_int.h"

#include <libpq-fe.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/event_id_block.h"
#include "store/migrations.h"
#include "store/store.h"
#include "store/store_pg_int.h"

/* ---- row digests ----
 * Counts, sums and lengths catch a lost, doubled or truncated value, not a changed byte. So each
 * row's values are also hashed, the same way on both sides: per column, 0x00 for NULL, else 0x01
 * and then an integer as 8 bytes big-endian (PostgreSQL's int8send), or text and bytea as their
 * length (4 bytes big-endian, int4send) and bytes; SHA-256 of the row; its first 8 bytes as a
 * signed big-endian integer; the exact sum of those over the table. A sum, not a running hash:
 * the order of the rows does not matter, and PostgreSQL computes it in one aggregate. Here it
 * is taken from the very values streamed into COPY; PostgreSQL's from what it stored. */

static void digest_add(table_t *t, crypto_hash_sha256_state *h)
{
    unsigned char out[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(h, out);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | out[i];
    __int128 sum;
    memcpy(&sum, t->digest, sizeof(sum));
    sum += (int64_t)v; /* two's complement, as PostgreSQL's bit(64)::bigint */
    memcpy(t->digest, &sum, sizeof(sum));
}

static void digest_value(crypto_hash_sha256_state *h, int kind, int is_null, int64_t i, const void *p, size_t n)
{
    unsigned char b[9];
    b[0] = is_null ? 0 : 1;
    if (is_null) {
        crypto_hash_sha256_update(h, b, 1);
        return;
    }
    if (kind == COL_INT) {
        for (int k = 0; k < 8; k++)
            b[1 + k] = (unsigned char)((uint64_t)i >> (56 - 8 * k));
        crypto_hash_sha256_update(h, b, 9);
        return;
    }
    for (int k = 0; k < 4; k++)
        b[1 + k] = (unsigned char)((uint32_t)n >> (24 - 8 * k));
    crypto_hash_sha256_update(h, b, 5);
    if (n > 0)
        crypto_hash_sha256_update(h, p, n);
}

/* ---- helpers ---- */

int tg_copy_sql_add(char *sql, size_t cap, tg_err_t *err, const char *fmt, ...)
{
    size_t len = strlen(sql);
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(sql + len, cap - len, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= cap - len)
        return tg_errf(err, TG_ESTATE, "copying: a generated statement passes %zu bytes", cap);
    return 0;
}

/* Names are spliced into generated SQL (quoted): only what the migrations use gets through. */
static int safe_name(const char *s, tg_err_t *err)
{
    size_t n = strlen(s);
    if (n == 0 || n > TG_COPY_NAME_MAX)
        return tg_errf(err, TG_ESTATE, "copying: table or column name \"%.80s\" is empty or too long", s);
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return tg_errf(err, TG_ESTATE, "copying: table or column name \"%.80s\" is not [a-z0-9_]", s);
    return 0;
}

int tg_copy_src_error(copy_t *c, tg_err_t *err, const char *doing)
{
    return tg_errf(err, TG_ESTORE, "%s: %s", doing, sqlite3_errmsg(c->src));
}

/* The error of failed result r (cleared here) as TG_ESTORE, or TG_EUNAVAIL when the connection
 * is gone. */
static int pg_fail(copy_t *c, PGresult *r, tg_err_t *err, const char *doing)
{
    char msg[300];
    snprintf(msg, sizeof(msg), "%s", r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(c->pg));
    msg[strcspn(msg, "\n")] = '\0';
    PQclear(r);
    return tg_errf(err, PQstatus(c->pg) == CONNECTION_OK ? TG_ESTORE : TG_EUNAVAIL, "%s: %s", doing, msg);
}

int tg_copy_pg_run(copy_t *c, const char *sql, PGresult **res, tg_err_t *err, const char *doing)
{
    PGresult *r = PQexec(c->pg, sql);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        return pg_fail(c, r, err, doing);
    if (res != NULL)
        *res = r;
    else
        PQclear(r);
    return 0;
}

table_t *tg_copy_table_find(copy_t *c, const char *name)
{
    for (size_t i = 0; i < c->ntables; i++)
        if (strcmp(c->tables[i].name, name) == 0)
            return &c->tables[i];
    return NULL;
}

/* ---- the source ---- */

static int src_open(copy_t *c, const char *path, tg_err_t *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return tg_errf(err, TG_ENOTFOUND, "source database %s: no such file", path);
    if (sqlite3_open_v2(path, &c->src, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        return tg_errf(err, TG_ESTORE, "opening source database %s: %s", path,
                       c->src != NULL ? sqlite3_errmsg(c->src) : "out of memory");
    sqlite3_busy_timeout(c->src, 5000);
    if (tg_copy_register_sum(c->src) != SQLITE_OK)
        return tg_copy_src_error(c, err, "opening the source database");
    return 0;
}

/* One integer from a query without parameters but text. */
static int src_int(copy_t *c, const char *sql, const char *arg, int64_t *out, tg_err_t *err, const char *doing)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(c->src, sql, -1, &s, NULL) != SQLITE_OK)
        return tg_copy_src_error(c, err, doing);
    if (arg != NULL)
        sqlite3_bind_text(s, 1, arg, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    *out = step == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_finalize(s);
    return step == SQLITE_ROW || step == SQLITE_DONE ? 0 : tg_copy_src_error(c, err, doing);
}

/* The source's schema version into *version; TG_ESTATE unless it is this build's. */
static int src_version(copy_t *c, int *version, tg_err_t *err)
{
    int64_t v = 0;
    int rc = src_int(c, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'", NULL,
                     &v, err, "reading the source");
    if (rc != 0)
        return rc;
    if (v == 0)
        return tg_errf(err, TG_ESTATE, "the source is not a tollgate database (it has no schema_migrations table)");
    if ((rc = src_int(c, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", NULL, &v, err,
                      "reading the source's schema version")) != 0)
        return rc;
    *version = (int)v;
    int latest = tg_sqlite_migrations[tg_sqlite_migrations_count - 1].version;
    if (*version != latest)
        return tg_errf(err, TG_ESTATE, "the source database is at schema version %d and this tollgate's is %d: %s",
                       *version, latest,
                       *version < latest ? "upgrade it first (tollgate migrate -c FILE with its configuration)"
                                         : "use the tollgate that wrote it");
    return 0;
}

/* Folds usage batches the journal still holds into the totals, through the SQLite backend (the
 * fold every reader of the totals does), so that the snapshot's usage_period is whole. */
static int src_fold(copy_t *c, const char *from_url, tg_err_t *err)
{
    int version;
    int64_t pending = 0;
    int rc = src_version(c, &version, err);
    if (rc == 0)
        rc = src_int(c, "SELECT EXISTS (SELECT 1 FROM usage_journal)", NULL, &pending, err, "reading the source");
    if (rc != 0 || pending == 0)
        return rc;
    tg_store_t *st = NULL;
    if ((rc = tg_store_open(from_url, &st, err)) == 0)
        rc = tg_store_usage_fold(st, 1, err);
    tg_store_close(st);
    return rc;
}

/* ---- SQLite's event id blocks ----
 * usage_event_id_blocks (migration 35) is how SQLite stores usage_event_ids since then: a batch's
 * ids packed in one row (event_id_block.h). PostgreSQL has no such table: there every id is a
 * row of usage_event_ids, the check across nodes. So the blocks are not copied as a table;
 * within the snapshot's transaction, a temporary table named usage_event_ids (unqualified names
 * find temp's tables first) takes the source's own usage_event_ids rows (stored before
 * migration 35) and every block's ids unpacked, and the copy, the per column checks and the row
 * digest all read that: the ids as PostgreSQL will hold them. A malformed block stops the copy
 * naming it. tg_copy_verify_event_ids then counts the ids again from the stored tables. The
 * temporary table is the connection's own (the source stays read-only) and goes at the end. */

typedef struct unpack {
    sqlite3_stmt *ins;
    int failed; /* the insert failed: SQLite's error, not the block's */
} unpack_t;

static int on_block_entry(void *arg, uint64_t event_id, int64_t ts_s, const char *customer_id)
{
    unpack_t *u = arg;
    sqlite3_reset(u->ins);
    sqlite3_bind_int64(u->ins, 1, (sqlite3_int64)event_id);
    sqlite3_bind_text(u->ins, 2, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(u->ins, 3, ts_s);
    int step = sqlite3_step(u->ins);
    u->failed = step != SQLITE_DONE;
    if (u->failed)
        return TG_ESTORE; /* the message is read before the reset clears it */
    sqlite3_reset(u->ins);
    return 0;
}

static int src_unpack_event_ids(copy_t *c, tg_err_t *err)
{
    const char *doing = "unpacking the source's usage_event_id_blocks";
    char *msg = NULL;
    if (sqlite3_exec(c->src,
                     "CREATE TEMP TABLE usage_event_ids AS SELECT event_id, customer_id, ts FROM main.usage_event_ids",
                     NULL, NULL, &msg) != SQLITE_OK) {
        int rc = tg_errf(err, TG_ESTORE, "%s: %s", doing, msg != NULL ? msg : "out of memory");
        sqlite3_free(msg);
        return rc;
    }
    unpack_t u = {NULL, 0};
    sqlite3_stmt *sel = NULL;
    if (sqlite3_prepare_v2(c->src, "INSERT INTO temp.usage_event_ids(event_id, customer_id, ts) VALUES (?,?,?)", -1,
                           &u.ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->src, "SELECT id, ts_min, ts_max, n, data FROM main.usage_event_id_blocks ORDER BY id", -1,
                           &sel, NULL) != SQLITE_OK) {
        sqlite3_finalize(u.ins);
        return tg_copy_src_error(c, err, doing);
    }
    int rc = 0, step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(sel)) == SQLITE_ROW) {
        tg_event_id_block_t b = {sqlite3_column_int64(sel, 0), sqlite3_column_int64(sel, 1),
                                 sqlite3_column_int64(sel, 2), sqlite3_column_int64(sel, 3),
                                 sqlite3_column_blob(sel, 4),  (size_t)sqlite3_column_bytes(sel, 4)};
        rc = tg_event_id_block_each(&b, on_block_entry, &u, err);
        if (u.failed)
            rc = tg_copy_src_error(c, err, doing);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = tg_copy_src_error(c, err, doing);
    sqlite3_finalize(sel);
    sqlite3_finalize(u.ins);
    if (rc == 0)
        c->event_id_blocks = 1;
    return rc;
}

/* Opens the snapshot and reads the version and the tables with their column names. */
static int src_snapshot(copy_t *c, int *version, tg_err_t *err)
{
    char *msg = NULL;
    if (sqlite3_exec(c->src, "BEGIN", NULL, NULL, &msg) != SQLITE_OK) {
        int rc = tg_errf(err, TG_ESTORE, "reading the source: %s", msg != NULL ? msg : "BEGIN failed");
        sqlite3_free(msg);
        return rc;
    }
    c->src_tx = 1;
    int rc = src_version(c, version, err); /* again: the snapshot's own */
    if (rc != 0)
        return rc;
    int64_t pending = 0;
    if ((rc = src_int(c, "SELECT count(*) FROM usage_journal", NULL, &pending, err, "reading the source")) != 0)
        return rc;
    if (pending != 0)
        return tg_errf(err, TG_ESTATE,
                       "the source holds %lld usage batches not yet added to its totals: a gateway is still "
                       "writing to it; stop it and run the copy again",
                       (long long)pending);

    sqlite3_stmt *s;
    int blocks = 0;
    if (sqlite3_prepare_v2(c->src,
                           "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE "
                           "'\\' AND name <> 'schema_migrations' ORDER BY name",
                           -1, &s, NULL) != SQLITE_OK)
        return tg_copy_src_error(c, err, "listing the source's tables");
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(s, 0);
        if ((rc = safe_name(name, err)) != 0)
            break;
        if (strcmp(name, "usage_event_id_blocks") == 0) {
            blocks = 1; /* copied as usage_event_ids' rows (src_unpack_event_ids) */
            continue;
        }
        if (c->ntables == TG_COPY_TABLES_MAX) {
            rc = tg_errf(err, TG_ESTATE, "the source has more than %d tables", TG_COPY_TABLES_MAX);
            break;
        }
        snprintf(c->tables[c->ntables++].name, sizeof(c->tables[0].name), "%s", name);
    }
    sqlite3_finalize(s);
    if (rc != 0)
        return rc;
    if (step != SQLITE_DONE)
        return tg_copy_src_error(c, err, "listing the source's tables");
    if (blocks && (rc = src_unpack_event_ids(c, err)) != 0)
        return rc;

    for (size_t i = 0; i < c->ntables; i++) {
        table_t *t = &c->tables[i];
        if (sqlite3_prepare_v2(c->src, "SELECT name FROM pragma_table_info(?) ORDER BY cid", -1, &s, NULL) != SQLITE_OK)
            return tg_copy_src_error(c, err, "listing the source's columns");
        sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
        while ((step = sqlite3_step(s)) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(s, 0);
            if ((rc = safe_name(name, err)) != 0)
                break;
            if (t->ncols == TG_COPY_COLS_MAX) {
                rc = tg_errf(err, TG_ESTATE, "table %s has more than %d columns", t->name, TG_COPY_COLS_MAX);
                break;
            }
            snprintf(t->cols[t->ncols].name, sizeof(t->cols[0].name), "%s", name);
            t->cols[t->ncols].kind = -1; /* until PostgreSQL says */
            t->ncols++;
        }
        sqlite3_finalize(s);
        if (rc != 0)
            return rc;
        if (step != SQLITE_DONE)
            return tg_copy_src_error(c, err, "listing the source's columns");
    }
    return 0;
}

/* ---- the target's schema against the source's ---- */

static int dst_schema(copy_t *c, tg_err_t *err)
{
    tg_pg_t *pg = tg_pg(c->dst);
    PGresult *r = NULL;
    int rc = tg_pg_query(pg,
                         "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                         " AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations' ORDER BY 1",
                         NULL, &r, err, "listing the target's tables");
    if (rc != 0)
        return rc;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++)
        if (tg_copy_table_find(c, PQgetvalue(r, i, 0)) == NULL)
            rc = tg_errf(err, TG_ESTATE, "table %.64s is in the target database but not in the source",
                         PQgetvalue(r, i, 0));
    int ntarget = PQntuples(r);
    PQclear(r);
    if (rc != 0)
        return rc;
    if ((size_t)ntarget != c->ntables) /* a source table the target lacks: name it */
        for (size_t i = 0; i < c->ntables; i++) {
            tg_pg_params_t p = {0};
            tg_pg_param_text(&p, c->tables[i].name);
            if ((rc = tg_pg_query(pg,
                                  "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema()"
                                  " AND table_type = 'BASE TABLE' AND table_name = $1",
                                  &p, &r, err, "listing the target's tables")) != 0)
                return rc;
            int found = PQntuples(r) > 0;
            PQclear(r);
            if (!found)
                return tg_errf(err, TG_ESTATE, "table %s is in the source database but not in the target",
                               c->tables[i].name);
        }

    for (size_t i = 0; i < c->ntables; i++) {
        table_t *t = &c->tables[i];
        tg_pg_params_t p = {0};
        tg_pg_param_text(&p, t->name);
        if ((rc = tg_pg_query(pg,
                              "SELECT column_name, data_type, is_identity FROM information_schema.columns"
                              " WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                              &p, &r, err, "listing the target's columns")) != 0)
            return rc;
        for (int j = 0; j < PQntuples(r) && rc == 0; j++) {
            const char *name = PQgetvalue(r, j, 0), *type = PQgetvalue(r, j, 1);
            int identity = strcmp(PQgetvalue(r, j, 2), "YES") == 0;
            col_t *col = NULL;
            for (size_t k = 0; k < t->ncols; k++)
                if (strcmp(t->cols[k].name, name) == 0)
                    col = &t->cols[k];
            if (col == NULL && identity && strcmp(name, "rowid") == 0 && t->ncols < TG_COPY_COLS_MAX) {
                col = &t->cols[t->ncols++]; /* SQLite's implicit rowid, made explicit in PostgreSQL */
                snprintf(col->name, sizeof(col->name), "rowid");
                col->rowid = 1;
            }
            if (col == NULL) {
                rc = tg_errf(err, TG_ESTATE, "column %s.%.64s is in the target database but not in the source", t->name,
                             name);
                break;
            }
            col->identity = identity;
            if (strcmp(type, "bigint") == 0 || strcmp(type, "integer") == 0 || strcmp(type, "smallint") == 0)
                col->kind = COL_INT;
            else if (strcmp(type, "text") == 0 || strcmp(type, "character varying") == 0)
                col->kind = COL_TEXT;
            else if (strcmp(type, "bytea") == 0)
                col->kind = COL_BYTEA;
            else
                rc = tg_errf(err, TG_ESTATE, "column %s.%s has type %.40s in the target, which the copy does not take",
                             t->name, name, type);
        }
        PQclear(r);
        if (rc != 0)
            return rc;
        for (size_t k = 0; k < t->ncols; k++)
            if (t->cols[k].kind < 0)
                return tg_errf(err, TG_ESTATE, "column %s.%s is in the source database but not in the target", t->name,
                               t->cols[k].name);
    }
    return 0;
}

/* Locks every table against writers and readers' locks alike (EXCLUSIVE: plain reads go on),
 * then checks that none has a row: two copies at once, or a gateway writing, cannot slip in
 * between the check and the COMMIT. */
static int dst_lock_empty(copy_t *c, tg_err_t *err)
{
    char sql[TG_COPY_SQL_CAP] = "LOCK TABLE ";
    int rc = 0;
    for (size_t i = 0; i < c->ntables && rc == 0; i++)
        rc = tg_copy_sql_add(sql, sizeof(sql), err, "%s\"%s\"", i > 0 ? ", " : "", c->tables[i].name);
    if (rc == 0)
        rc = tg_copy_sql_add(sql, sizeof(sql), err, " IN EXCLUSIVE MODE");
    if (rc != 0 || (rc = tg_copy_pg_run(c, sql, NULL, err, "locking the target's tables")) != 0)
        return rc;
    for (size_t i = 0; i < c->ntables; i++) {
        PGresult *r = NULL;
        snprintf(sql, sizeof(sql), "SELECT 1 FROM \"%s\" LIMIT 1", c->tables[i].name);
        if ((rc = tg_copy_pg_run(c, sql, &r, err, "checking that the target is empty")) != 0)
            return rc;
        int rows = PQntuples(r);
        PQclear(r);
        if (rows > 0)
            return tg_errf(err, TG_ESTATE,
                           "the target database is not empty: table %s has rows (the copy goes into an empty "
                           "database only; nothing was written)",
                           c->tables[i].name);
    }
    return 0;
}

/* The order of the copy: a table after every table its foreign keys reference. */
static int copy_order(copy_t *c, size_t order[], tg_err_t *err)
{
    PGresult *r = NULL;
    int rc = tg_pg_query(tg_pg(c->dst),
                         "SELECT a.relname, b.relname FROM pg_constraint k JOIN pg_class a ON a.oid = k.conrelid"
                         " JOIN pg_class b ON b.oid = k.confrelid WHERE k.contype = 'f'"
                         " AND a.relnamespace = current_schema()::regnamespace",
                         NULL, &r, err, "reading the target's foreign keys");
    if (rc != 0)
        return rc;
    int placed[TG_COPY_TABLES_MAX] = {0};
    size_t n = 0;
    while (n < c->ntables) {
        size_t before = n;
        for (size_t i = 0; i < c->ntables; i++) {
            if (placed[i])
                continue;
            int ready = 1;
            for (int k = 0; k < PQntuples(r) && ready; k++) {
                if (strcmp(PQgetvalue(r, k, 0), c->tables[i].name) != 0 ||
                    strcmp(PQgetvalue(r, k, 1), c->tables[i].name) == 0)
                    continue;
                table_t *ref = tg_copy_table_find(c, PQgetvalue(r, k, 1));
                ready = ref == NULL || placed[ref - c->tables];
            }
            if (ready) {
                placed[i] = 1;
                order[n++] = i;
            }
        }
        if (n == before) {
            PQclear(r);
            return tg_errf(err, TG_ESTATE, "the target's foreign keys form a cycle: no order to copy the tables in");
        }
    }
    PQclear(r);
    return 0;
}

/* ---- copying ---- */

static int buf_reserve(copy_t *c, size_t more, const table_t *t, tg_err_t *err)
{
    if (more > TG_COPY_ROW_CAP || c->len > TG_COPY_ROW_CAP + TG_COPY_CHUNK - more)
        return tg_errf(err, TG_ESTATE, "copying %s: a row passes %u MiB", t->name, TG_COPY_ROW_CAP >> 20);
    if (c->len + more <= c->cap)
        return 0;
    size_t cap = c->cap != 0 ? c->cap : TG_COPY_CHUNK * 2;
    while (cap < c->len + more)
        cap *= 2;
    char *b = realloc(c->buf, cap);
    if (b == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory copying %s", t->name);
    c->buf = b;
    c->cap = cap;
    return 0;
}

static int flush(copy_t *c, const table_t *t, tg_err_t *err)
{
    if (c->len > 0 && PQputCopyData(c->pg, c->buf, (int)c->len) != 1)
        return tg_errf(err, TG_EUNAVAIL, "copying %s: %s", t->name, PQerrorMessage(c->pg));
    c->len = 0;
    return 0;
}

/* Appends one value in COPY's text format: \N for NULL; in text, backslash, tab, newline and
 * carriage return escaped; bytea as \\x and hex (COPY unescapes the backslash, bytea reads hex). */
static int put_value(copy_t *c, sqlite3_stmt *s, int i, const table_t *t, const col_t *col, crypto_hash_sha256_state *h,
                     tg_err_t *err)
{
    static const char hex[] = "0123456789abcdef";
    int type = sqlite3_column_type(s, i);
    int rc;
    if (type == SQLITE_NULL) {
        digest_value(h, col->kind, 1, 0, NULL, 0);
        if ((rc = buf_reserve(c, 2, t, err)) != 0)
            return rc;
        memcpy(c->buf + c->len, "\\N", 2);
        c->len += 2;
        return 0;
    }
    if (col->kind == COL_INT) {
        if (type != SQLITE_INTEGER)
            return tg_errf(err, TG_ESTATE, "copying %s: column %s holds a %s value where the target takes integers",
                           t->name, col->name,
                           type == SQLITE_FLOAT  ? "real"
                           : type == SQLITE_TEXT ? "text"
                                                 : "blob");
        if ((rc = buf_reserve(c, 24, t, err)) != 0)
            return rc;
        int64_t v = sqlite3_column_int64(s, i);
        digest_value(h, COL_INT, 0, v, NULL, 0);
        c->len += (size_t)snprintf(c->buf + c->len, 24, "%lld", (long long)v);
        return 0;
    }
    const unsigned char *v =
        col->kind == COL_BYTEA && type == SQLITE_BLOB ? sqlite3_column_blob(s, i) : sqlite3_column_text(s, i);
    size_t n = (size_t)sqlite3_column_bytes(s, i);
    if (v == NULL && n > 0)
        return tg_errf(err, TG_ENOMEM, "out of memory copying %s", t->name);
    digest_value(h, col->kind, 0, 0, v, n);
    if (col->kind == COL_BYTEA) {
        if ((rc = buf_reserve(c, 3 + 2 * n, t, err)) != 0)
            return rc;
        char *o = c->buf + c->len;
        *o++ = '\\';
        *o++ = '\\';
        *o++ = 'x';
        for (size_t k = 0; k < n; k++) {
            *o++ = hex[v[k] >> 4];
            *o++ = hex[v[k] & 15];
        }
        c->len = (size_t)(o - c->buf);
        return 0;
    }
    if (n > 0 && memchr(v, '\0', n) != NULL)
        return tg_errf(err, TG_ESTATE, "copying %s: column %s holds text with a NUL byte, which PostgreSQL refuses",
                       t->name, col->name);
    if ((rc = buf_reserve(c, 2 * n, t, err)) != 0)
        return rc;
    char *o = c->buf + c->len;
    for (size_t k = 0; k < n; k++) {
        char ch = (char)v[k];
        if (ch == '\\' || ch == '\t' || ch == '\n' || ch == '\r') {
            *o++ = '\\';
            ch = ch == '\t' ? 't' : ch == '\n' ? 'n' : ch == '\r' ? 'r' : '\\';
        }
        *o++ = ch;
    }
    c->len = (size_t)(o - c->buf);
    return 0;
}

static int copy_table(copy_t *c, table_t *t, tg_err_t *err)
{
    char sel[TG_COPY_SQL_CAP] = "SELECT ", cp[TG_COPY_SQL_CAP] = "";
    int rc = tg_copy_sql_add(cp, sizeof(cp), err, "COPY \"%s\" (", t->name);
    for (size_t i = 0; i < t->ncols && rc == 0; i++) {
        const char *sep = i > 0 ? ", " : "";
        if ((rc = tg_copy_sql_add(sel, sizeof(sel), err, t->cols[i].rowid ? "%srowid" : "%s\"%s\"", sep,
                                  t->cols[i].name)) == 0)
            rc = tg_copy_sql_add(cp, sizeof(cp), err, "%s\"%s\"", sep, t->cols[i].name);
    }
    if (rc == 0)
        rc = tg_copy_sql_add(sel, sizeof(sel), err, " FROM \"%s\"", t->name);
    if (rc == 0)
        rc = tg_copy_sql_add(cp, sizeof(cp), err, ") FROM STDIN");
    if (rc != 0)
        return rc;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(c->src, sel, -1, &s, NULL) != SQLITE_OK)
        return tg_copy_src_error(c, err, "reading the source");
    char doing[128];
    snprintf(doing, sizeof(doing), "copying %s", t->name);
    PGresult *r = PQexec(c->pg, cp);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        sqlite3_finalize(s);
        return pg_fail(c, r, err, doing);
    }
    PQclear(r);
    c->len = 0;
    uint64_t rows = 0;
    int step;
    memset(t->digest, 0, sizeof(t->digest));
    while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
        crypto_hash_sha256_state h;
        crypto_hash_sha256_init(&h);
        for (size_t i = 0; i < t->ncols && rc == 0; i++) {
            if (i > 0 && (rc = buf_reserve(c, 1, t, err)) == 0)
                c->buf[c->len++] = '\t';
            if (rc == 0)
                rc = put_value(c, s, (int)i, t, &t->cols[i], &h, err);
        }
        digest_add(t, &h);
        if (rc == 0 && (rc = buf_reserve(c, 1, t, err)) == 0)
            c->buf[c->len++] = '\n';
        rows++;
        if (rc == 0 && c->len >= TG_COPY_CHUNK)
            rc = flush(c, t, err);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = tg_copy_src_error(c, err, "reading the source");
    sqlite3_finalize(s);
    if (rc == 0)
        rc = flush(c, t, err);
    /* An error ends the COPY with a message, which fails it (the transaction rolls back later). */
    if (PQputCopyEnd(c->pg, rc == 0 ? NULL : "copy abandoned") != 1 && rc == 0)
        rc = tg_errf(err, TG_EUNAVAIL, "copying %s: %s", t->name, PQerrorMessage(c->pg));
    while ((r = PQgetResult(c->pg)) != NULL) {
        if (rc == 0 && PQresultStatus(r) != PGRES_COMMAND_OK) {
            rc = pg_fail(c, r, err, doing);
            continue; /* pg_fail cleared r */
        } else if (rc == 0 && tg_pg_affected(r) != rows) {
            rc = tg_errf(err, TG_ESTORE, "copying %s: %llu rows read, PostgreSQL took %llu", t->name,
                         (unsigned long long)rows, (unsigned long long)tg_pg_affected(r));
        }
        PQclear(r);
    }
    if (rc != 0)
        return rc;
    t->rows = rows;
    /* Identity columns: new rows on the target must get ids after the copied ones. */
    for (size_t i = 0; i < t->ncols; i++) {
        if (!t->cols[i].identity || rows == 0)
            continue;
        char sql[512];
        snprintf(sql, sizeof(sql),
                 "SELECT setval(pg_get_serial_sequence('\"%s\"', '%s'), m) FROM (SELECT max(\"%s\") AS m FROM \"%s\") s"
                 " WHERE m IS NOT NULL",
                 t->name, t->cols[i].name, t->cols[i].name, t->name);
        if ((rc = tg_copy_pg_run(c, sql, NULL, err, "moving an identity sequence past the copied ids")) != 0)
            return rc;
    }
    return 0;
}

/* ---- the whole ---- */

static int parse_urls(const char *from_url, const char *to_url, tg_err_t *err)
{
    if (from_url == NULL || strncmp(from_url, "sqlite:", 7) != 0 || from_url[7] == '\0')
        return tg_errf(err, TG_EINVAL, "--from must be sqlite:PATH (the database of one node), not \"%.200s\"",
                       from_url != NULL ? from_url : "");
    if (to_url == NULL || (strncmp(to_url, "postgresql://", 13) != 0 && strncmp(to_url, "postgres://", 11) != 0))
        return tg_errf(err, TG_EINVAL, "--to must be a postgresql:// URL");
    return 0;
}

int tg_store_copy(const char *from_url, const char *to_url, tg_store_copy_report_t *report, tg_err_t *err)
{
    memset(report, 0, sizeof(*report));
    int rc = parse_urls(from_url, to_url, err);
    if (rc != 0)
        return rc;
    if (sodium_init() < 0) /* SHA-256 of the row digests; idempotent */
        return tg_errf(err, TG_ESTATE, "libsodium failed to initialise");
    copy_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory");
    int version = 0, dst_version = 0;
    size_t order[TG_COPY_TABLES_MAX];
    if ((rc = src_open(c, from_url + 7, err)) != 0 || (rc = src_fold(c, from_url, err)) != 0 ||
        (rc = src_snapshot(c, &version, err)) != 0)
        goto out;
    if ((rc = tg_store_open(to_url, &c->dst, err)) != 0 || (rc = tg_store_migrate(c->dst, err)) != 0 ||
        (rc = tg_store_schema_version(c->dst, &dst_version, err)) != 0)
        goto out;
    if (dst_version != version) {
        rc = tg_errf(err, TG_ESTATE, "the target database is at schema version %d, the source at %d", dst_version,
                     version);
        goto out;
    }
    c->pg = tg_pg(c->dst)->conn;
    if ((rc = tg_store_tx_begin(c->dst, err)) != 0)
        goto out;
    c->dst_tx = 1;
    if ((rc = dst_schema(c, err)) != 0 || (rc = dst_lock_empty(c, err)) != 0 || (rc = copy_order(c, order, err)) != 0)
        goto out;
    for (size_t i = 0; i < c->ntables; i++)
        if ((rc = copy_table(c, &c->tables[order[i]], err)) != 0)
            goto out;
    for (size_t i = 0; i < c->ntables; i++)
        if ((rc = tg_copy_verify_table(c, &c->tables[order[i]], err)) != 0)
            goto out;
    if ((rc = tg_copy_verify_totals(c, report, err)) != 0 ||
        (c->event_id_blocks && (rc = tg_copy_verify_event_ids(c, report, err)) != 0))
        goto out;
    c->dst_tx = 0;
    if ((rc = tg_store_tx_commit(c->dst, err)) != 0)
        goto out;
    report->schema_version = version;
    snprintf(report->target, sizeof(report->target), "%s", tg_pg(c->dst)->where);
    report->ntables = c->ntables; /* by name, as the source listed them */
    for (size_t i = 0; i < c->ntables; i++) {
        snprintf(report->tables[i].name, sizeof(report->tables[i].name), "%s", c->tables[i].name);
        report->tables[i].rows = c->tables[i].rows;
    }
out:
    if (rc != 0)
        report->ntotals = 0;
    if (c->dst_tx)
        tg_store_tx_rollback(c->dst);
    tg_store_close(c->dst);
    if (c->src_tx)
        sqlite3_exec(c->src, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(c->src);
    free(c->buf);
    free(c);
    return rc;
}
