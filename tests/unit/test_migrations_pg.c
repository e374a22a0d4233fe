/* test_migrations_pg.c - the PostgreSQL migrations (src/store/migrations_pg.c) against the
 * SQLite ones (src/store/migrations_sqlite.c), on a real PostgreSQL server.
 *
 * Both lists are applied in order to empty databases (SQLite in memory; PostgreSQL in a fresh
 * database tg_<pid>_mig created from TG_TEST_PG_URL, each migration in its own transaction through
 * libpq, as the store's runner does) and each schema is described as sorted lines: every table,
 * its columns in order with type class, nullability and default, its primary key, unique
 * constraints, named indexes (columns, DESC, unique, partial) and foreign keys. The two
 * descriptions must be equal, but for the differences migrations_pg.c documents (email's
 * NOCASE uniqueness as lower(email), the explicit rowid columns, identity ids, usage_event_ids'
 * key, PostgreSQL's only since migration 34; usage_event_id_blocks, SQLite's only since 35),
 * which the SQLite side is mapped through here. A
 * migration added to one list only, a column misspelt, a type or default changed, an index
 * forgotten: each makes a line differ, printed on failure.
 *
 * scripts/run-tests.sh unit starts a server with scripts/pg-test.sh and sets TG_TEST_PG_URL;
 * without it the tests are skipped (reported as skipped, not passed). TG_TEST_SCHEMA_DUMP=1 prints
 * the PostgreSQL description. */
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
#include <unistd.h>

#include "store/migrations.h"

#define MAX_LINES 1024
#define LINE_CAP 256

typedef struct {
    char line[MAX_LINES][LINE_CAP];
    size_t n;
} schema_t;

typedef struct {
    PGconn *admin; /* the server's postgres database: creates and drops ours */
    PGconn *db;    /* our fresh database */
    char dbname[64];
} fx_t;

/* ---- helpers ---- */

static void add_line(schema_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_line(schema_t *s, const char *fmt, ...)
{
    assert_true(s->n < MAX_LINES);
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(s->line[s->n], LINE_CAP, fmt, ap);
    va_end(ap);
    assert_true(w > 0 && w < LINE_CAP);
    s->n++;
}

static int cmp_line(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Appends src to dst (capacity cap) with a separator when dst is not empty. */
static void append(char *dst, size_t cap, const char *sep, const char *src)
{
    size_t len = strlen(dst);
    int w = snprintf(dst + len, cap - len, "%s%s", len > 0 ? sep : "", src);
    assert_true(w >= 0 && (size_t)w < cap - len);
}

static PGresult *pg_query(PGconn *c, const char *sql, ExecStatusType want)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != want) {
        print_error("PostgreSQL: %s\nin: %s\n", PQerrorMessage(c), sql);
        PQclear(r);
        fail();
    }
    return r;
}

/* A connection to database dbname (NULL: the URL's own) of the server at url. */
static PGconn *pg_connect(const char *url, const char *dbname)
{
    /* expand_dbname: the first dbname is the URL; a second one replaces only the database */
    const char *keys[] = {"dbname", dbname != NULL ? "dbname" : NULL, NULL};
    const char *vals[] = {url, dbname, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        print_error("cannot connect to %s (database %s): %s\n", url, dbname != NULL ? dbname : "from the URL",
                    PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PQclear(pg_query(c, "SET client_min_messages = warning", PGRES_COMMAND_OK));
    return c;
}

/* ---- fixture: a fresh database per test ---- */

static int setup(void **state)
{
    const char *url = getenv("TG_TEST_PG_URL");
    *state = NULL;
    if (url == NULL || url[0] == '\0')
        return 0; /* each test skips */
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    static unsigned counter;
    snprintf(f->dbname, sizeof(f->dbname), "tg_%ld_mig%u", (long)getpid(), counter++);
    f->admin = pg_connect(url, NULL);
    assert_non_null(f->admin);
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", f->dbname);
    PQclear(pg_query(f->admin, sql, PGRES_COMMAND_OK));
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", f->dbname);
    PQclear(pg_query(f->admin, sql, PGRES_COMMAND_OK));
    f->db = pg_connect(url, f->dbname);
    assert_non_null(f->db);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f == NULL)
        return 0;
    PQfinish(f->db);
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", f->dbname);
    PQclear(pg_query(f->admin, sql, PGRES_COMMAND_OK));
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

/* Applies every PostgreSQL migration in order, each in its own transaction. */
static void pg_migrate(PGconn *c)
{
    for (size_t i = 0; i < tg_pg_migrations_count; i++) {
        const tg_migration_t *m = &tg_pg_migrations[i];
        PQclear(pg_query(c, "BEGIN", PGRES_COMMAND_OK));
        PGresult *r = PQexec(c, m->sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            print_error("migration %d (%s): %s\n", m->version, m->name, PQerrorMessage(c));
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
        PQclear(pg_query(c, "COMMIT", PGRES_COMMAND_OK));
    }
}

static sqlite3 *sqlite_migrated(void)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    for (size_t i = 0; i < tg_sqlite_migrations_count; i++) {
        char *msg = NULL;
        if (sqlite3_exec(db, tg_sqlite_migrations[i].sql, NULL, NULL, &msg) != SQLITE_OK)
            print_error("SQLite migration %d: %s\n", tg_sqlite_migrations[i].version, msg);
        assert_null(msg);
    }
    return db;
}

/* ---- the SQLite schema, described ---- */

/* The type class of a declared SQLite type, named as the PostgreSQL side names its types. */
static const char *sqlite_type(const char *decl)
{
    if (strcmp(decl, "INTEGER") == 0)
        return "int64";
    if (strcmp(decl, "TEXT") == 0)
        return "text";
    if (strcmp(decl, "BLOB") == 0)
        return "bytes";
    return decl;
}

/* The columns SQLite numbers itself that PostgreSQL numbers with an identity column (see
 * migrations_pg.c): the ids the store inserts without, and the implicit rowids two queries
 * order by, which PostgreSQL has as real columns. */
static const char *const IDENTITY[][2] = {
    {"invoice_items", "id"},  {"plan_changes", "id"},           {"usage_rejected", "id"},
    {"stripe_outbox", "id"},  {"customer_status_history", "id"}, {"stripe_events", "rowid"},
    {"stripe_subscriptions", "rowid"},
    /* migration 24 (notifications) */
    {"events", "seq"},        {"webhook_deliveries", "seq"},     {"webhook_attempts", "id"},
    /* migration 25 (email) */
    {"mail_outbox", "id"},    {"mail_attempts", "rowid"},
    /* migration 28 (audit log) */
    {"audit_log", "id"},
};
#define IDENTITY_COUNT (sizeof(IDENTITY) / sizeof(IDENTITY[0]))

/* Primary keys only PostgreSQL has (migrations_sqlite.c, 34: on one node SQLite's event ids are
 * a record in the order applied, not the check across nodes they are on PostgreSQL). */
static const char *const PG_ONLY_KEY[][2] = {{"usage_event_ids", "event_id, customer_id"}};

/* Tables only SQLite has (migrations_sqlite.c, 35: one node's event ids packed per batch; on
 * PostgreSQL every id stays a row of usage_event_ids, and tollgate migrate unpacks the blocks
 * into it). */
static const char *const SQLITE_ONLY_TABLE[] = {"usage_event_id_blocks"};

static int sqlite_only_table(const char *table)
{
    for (size_t i = 0; i < sizeof(SQLITE_ONLY_TABLE) / sizeof(SQLITE_ONLY_TABLE[0]); i++)
        if (strcmp(SQLITE_ONLY_TABLE[i], table) == 0)
            return 1;
    return 0;
}

static const char *pg_only_key(const char *table)
{
    for (size_t i = 0; i < sizeof(PG_ONLY_KEY) / sizeof(PG_ONLY_KEY[0]); i++)
        if (strcmp(PG_ONLY_KEY[i][0], table) == 0)
            return PG_ONLY_KEY[i][1];
    return NULL;
}

static int is_identity(const char *table, const char *col)
{
    for (size_t i = 0; i < IDENTITY_COUNT; i++)
        if (strcmp(IDENTITY[i][0], table) == 0 && strcmp(IDENTITY[i][1], col) == 0)
            return 1;
    return 0;
}

static void sqlite_describe(sqlite3 *db, schema_t *out)
{
    sqlite3_stmt *tables, *s;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT name FROM sqlite_master WHERE type = 'table'"
                                        " AND name NOT LIKE 'sqlite_%' ORDER BY name",
                                        -1, &tables, NULL),
                     SQLITE_OK);
    while (sqlite3_step(tables) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(tables, 0);
        if (sqlite_only_table(t))
            continue;
        add_line(out, "table %s", t);

        /* columns; a PRIMARY KEY column is NOT NULL in PostgreSQL, and in SQLite only by the
         * store's habit (a legacy quirk lets a non-INTEGER key hold NULL) */
        char pk[LINE_CAP] = "";
        int ncols = 0;
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT name, type, \"notnull\", dflt_value, pk"
                                                " FROM pragma_table_info(?1) ORDER BY cid",
                                            -1, &s, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(s, 1, t, -1, SQLITE_TRANSIENT);
        while (sqlite3_step(s) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(s, 0);
            const char *dflt = (const char *)sqlite3_column_text(s, 3);
            int notnull = sqlite3_column_int(s, 2) || sqlite3_column_int(s, 4) > 0;
            add_line(out, "column %s %02d %s %s %s default=%s%s", t, ++ncols, name,
                     sqlite_type((const char *)sqlite3_column_text(s, 1)), notnull ? "not-null" : "null",
                     dflt != NULL ? dflt : "", is_identity(t, name) ? " identity" : "");
        }
        sqlite3_finalize(s);
        /* the implicit rowid PostgreSQL has as a column (the last one) */
        if (is_identity(t, "rowid"))
            add_line(out, "column %s %02d rowid int64 not-null default= identity", t, ++ncols);

        assert_int_equal(sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk",
                                            -1, &s, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(s, 1, t, -1, SQLITE_TRANSIENT);
        while (sqlite3_step(s) == SQLITE_ROW)
            append(pk, sizeof(pk), ", ", (const char *)sqlite3_column_text(s, 0));
        sqlite3_finalize(s);
        if (pk[0] == '\0' && pg_only_key(t) != NULL)
            append(pk, sizeof(pk), ", ", pg_only_key(t));
        if (pk[0] != '\0')
            add_line(out, "primary-key %s (%s)", t, pk);

        /* indexes: named (CREATE INDEX) ones by name; UNIQUE constraints by their columns */
        sqlite3_stmt *ix;
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1)",
                                            -1, &ix, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(ix, 1, t, -1, SQLITE_TRANSIENT);
        while (sqlite3_step(ix) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(ix, 0);
            const char *origin = (const char *)sqlite3_column_text(ix, 2);
            if (strcmp(origin, "pk") == 0)
                continue;
            char cols[LINE_CAP] = "";
            assert_int_equal(sqlite3_prepare_v2(db,
                                                "SELECT name, \"desc\", coll FROM pragma_index_xinfo(?1)"
                                                " WHERE key = 1 ORDER BY seqno",
                                                -1, &s, NULL),
                             SQLITE_OK);
            sqlite3_bind_text(s, 1, name, -1, SQLITE_TRANSIENT);
            while (sqlite3_step(s) == SQLITE_ROW) {
                char col[96];
                const char *cname = (const char *)sqlite3_column_text(s, 0);
                int nocase = strcmp((const char *)sqlite3_column_text(s, 2), "NOCASE") == 0;
                /* COLLATE NOCASE: PostgreSQL compares lower() instead */
                snprintf(col, sizeof(col), nocase ? "lower(%s)%s" : "%s%s", cname,
                         sqlite3_column_int(s, 1) ? " DESC" : "");
                append(cols, sizeof(cols), ", ", col);
            }
            sqlite3_finalize(s);
            if (strcmp(origin, "u") == 0)
                add_line(out, "unique %s (%s)", t, cols);
            else
                add_line(out, "index %s on %s (%s)%s%s", name, t, cols, sqlite3_column_int(ix, 1) ? " unique" : "",
                         sqlite3_column_int(ix, 3) ? " partial" : "");
        }
        sqlite3_finalize(ix);

        assert_int_equal(sqlite3_prepare_v2(db, "SELECT \"from\", \"table\", \"to\" FROM pragma_foreign_key_list(?1)",
                                            -1, &s, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(s, 1, t, -1, SQLITE_TRANSIENT);
        while (sqlite3_step(s) == SQLITE_ROW)
            add_line(out, "foreign-key %s.%s -> %s.%s", t, sqlite3_column_text(s, 0), sqlite3_column_text(s, 1),
                     sqlite3_column_text(s, 2));
        sqlite3_finalize(s);
    }
    sqlite3_finalize(tables);
    qsort(out->line, out->n, LINE_CAP, cmp_line);
}

/* ---- the PostgreSQL schema, described the same way ---- */

static const char *pg_type(const char *t)
{
    if (strcmp(t, "bigint") == 0)
        return "int64";
    if (strcmp(t, "text") == 0)
        return "text";
    if (strcmp(t, "bytea") == 0)
        return "bytes";
    return t; /* anything else (integer, varchar, ...) differs from SQLite's lines on purpose */
}

/* A column default without its cast: ''::text -> '', 'pending'::text -> 'pending'. */
static void pg_default(const char *in, char *out, size_t cap)
{
    snprintf(out, cap, "%s", in);
    char *cast = strstr(out, "::");
    if (cast != NULL && out[0] == '\'')
        *cast = '\0';
}

static void pg_describe(PGconn *c, schema_t *out)
{
    PGresult *r = pg_query(c,
                           "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
                           " AND relkind IN ('r', 'p') ORDER BY relname",
                           PGRES_TUPLES_OK);
    for (int i = 0; i < PQntuples(r); i++)
        add_line(out, "table %s", PQgetvalue(r, i, 0));
    PQclear(r);

    r = pg_query(c,
                 "SELECT t.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
                 " COALESCE(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity <> '',"
                 " row_number() OVER (PARTITION BY t.relname ORDER BY a.attnum)"
                 " FROM pg_class t JOIN pg_attribute a ON a.attrelid = t.oid"
                 " LEFT JOIN pg_attrdef d ON d.adrelid = t.oid AND d.adnum = a.attnum"
                 " WHERE t.relnamespace = 'public'::regnamespace AND t.relkind IN ('r', 'p')"
                 " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY t.relname, a.attnum",
                 PGRES_TUPLES_OK);
    for (int i = 0; i < PQntuples(r); i++) {
        char dflt[128];
        pg_default(PQgetvalue(r, i, 4), dflt, sizeof(dflt));
        add_line(out, "column %s %02d %s %s %s default=%s%s", PQgetvalue(r, i, 0), (int)strtol(PQgetvalue(r, i, 6), NULL, 10),
                 PQgetvalue(r, i, 1), pg_type(PQgetvalue(r, i, 2)),
                 strcmp(PQgetvalue(r, i, 3), "t") == 0 ? "not-null" : "null", dflt,
                 strcmp(PQgetvalue(r, i, 5), "t") == 0 ? " identity" : "");
    }
    PQclear(r);

    /* every index: the primary key, UNIQUE constraints (by columns, like SQLite's autoindexes),
     * a unique index on expressions (customers_email_lower: SQLite's UNIQUE COLLATE NOCASE) as a
     * unique constraint, and the other indexes by name */
    r = pg_query(c,
                 "SELECT t.relname, i.relname, x.indisprimary, x.indisunique, x.indpred IS NOT NULL,"
                 " EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid AND k.contype = 'u'),"
                 " x.indexprs IS NOT NULL,"
                 " (SELECT string_agg(pg_get_indexdef(x.indexrelid, k, true)"
                 "    || CASE WHEN x.indoption[k - 1] & 1 = 1 THEN ' DESC' ELSE '' END, ', ' ORDER BY k)"
                 "  FROM generate_series(1, x.indnkeyatts) k)"
                 " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
                 " WHERE t.relnamespace = 'public'::regnamespace",
                 PGRES_TUPLES_OK);
    for (int i = 0; i < PQntuples(r); i++) {
        const char *t = PQgetvalue(r, i, 0), *name = PQgetvalue(r, i, 1), *cols = PQgetvalue(r, i, 7);
        int primary = strcmp(PQgetvalue(r, i, 2), "t") == 0, unique = strcmp(PQgetvalue(r, i, 3), "t") == 0;
        int partial = strcmp(PQgetvalue(r, i, 4), "t") == 0, constraint = strcmp(PQgetvalue(r, i, 5), "t") == 0;
        int expression = strcmp(PQgetvalue(r, i, 6), "t") == 0;
        if (primary)
            add_line(out, "primary-key %s (%s)", t, cols);
        else if (constraint || (unique && expression && !partial))
            add_line(out, "unique %s (%s)", t, cols);
        else
            add_line(out, "index %s on %s (%s)%s%s", name, t, cols, unique ? " unique" : "", partial ? " partial" : "");
    }
    PQclear(r);

    r = pg_query(c,
                 "SELECT t.relname, a.attname, f.relname, af.attname FROM pg_constraint k"
                 " JOIN pg_class t ON t.oid = k.conrelid JOIN pg_class f ON f.oid = k.confrelid"
                 " JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)"
                 " JOIN pg_attribute af ON af.attrelid = k.confrelid AND af.attnum = ANY (k.confkey)"
                 " WHERE k.contype = 'f' AND t.relnamespace = 'public'::regnamespace",
                 PGRES_TUPLES_OK);
    for (int i = 0; i < PQntuples(r); i++)
        add_line(out, "foreign-key %s.%s -> %s.%s", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                 PQgetvalue(r, i, 3));
    PQclear(r);
    qsort(out->line, out->n, LINE_CAP, cmp_line);
}

/* Equal, or every line that only one side has, printed. */
static void assert_same_schema(const schema_t *lite, const schema_t *pg)
{
    size_t a = 0, b = 0;
    int differ = 0;
    while (a < lite->n || b < pg->n) {
        int c = a == lite->n ? 1 : b == pg->n ? -1 : strcmp(lite->line[a], pg->line[b]);
        if (c == 0) {
            a++, b++;
            continue;
        }
        differ = 1;
        if (c < 0)
            print_error("only in SQLite:     %s\n", lite->line[a++]);
        else
            print_error("only in PostgreSQL: %s\n", pg->line[b++]);
    }
    assert_false(differ);
}

/* ---- tests ---- */

/* Both lists carry the same versions with the same names, in increasing order. */
static void test_same_versions(void **state)
{
    (void)state;
    assert_int_equal(tg_pg_migrations_count, tg_sqlite_migrations_count);
    for (size_t i = 0; i < tg_pg_migrations_count; i++) {
        assert_int_equal(tg_pg_migrations[i].version, tg_sqlite_migrations[i].version);
        assert_string_equal(tg_pg_migrations[i].name, tg_sqlite_migrations[i].name);
        if (i > 0)
            assert_true(tg_pg_migrations[i].version > tg_pg_migrations[i - 1].version);
    }
}

/* Every PostgreSQL migration applies, in order, to an empty database, and the schema they build
 * is SQLite's, line for line (but for the documented dialect differences). */
static void test_pg_schema_matches_sqlite(void **state)
{
    fx_t *f = fixture_or_skip(state);
    pg_migrate(f->db);

    static schema_t lite_schema, pg_schema; /* static: no leak when an assertion jumps out */
    schema_t *lite = &lite_schema, *pg = &pg_schema;
    lite->n = pg->n = 0;
    sqlite3 *db = sqlite_migrated();
    sqlite_describe(db, lite);
    sqlite3_close(db);
    pg_describe(f->db, pg);
    assert_true(lite->n > 100); /* the descriptions are not trivially empty */
    if (getenv("TG_TEST_SCHEMA_DUMP") != NULL)
        for (size_t i = 0; i < pg->n; i++)
            print_message("%s\n", pg->line[i]);
    assert_same_schema(lite, pg);
}

/* customers' email is unique whatever its case, as SQLite's COLLATE NOCASE makes it, and an
 * identity id is assigned when the insert leaves it out (invoice_items, as the store inserts). */
static void test_pg_email_unique_any_case(void **state)
{
    fx_t *f = fixture_or_skip(state);
    pg_migrate(f->db);
    PQclear(pg_query(f->db,
                     "INSERT INTO customers(id, email, plan_id, status, created_at, anchor_at)"
                     " VALUES ('c1', 'Ann@Example.com', 'free', 'active', 1, 1)",
                     PGRES_COMMAND_OK));
    PGresult *r = PQexec(f->db, "INSERT INTO customers(id, email, plan_id, status, created_at, anchor_at)"
                                " VALUES ('c2', 'ann@example.COM', 'free', 'active', 1, 1)");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "23505"); /* unique_violation */
    PQclear(r);

    PQclear(pg_query(f->db,
                     "INSERT INTO invoice_items(customer_id, created_at, description, amount, currency)"
                     " VALUES ('c1', 1, 'a', 100, 'EUR'), ('c1', 2, 'b', 200, 'EUR')",
                     PGRES_COMMAND_OK));
    r = pg_query(f->db, "SELECT string_agg(id::text, ',' ORDER BY id) FROM invoice_items", PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "1,2");
    PQclear(r);

    /* the same pair of emails in SQLite: refused the same way */
    sqlite3 *db = sqlite_migrated();
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO customers(id, email, plan_id, status, created_at, anchor_at)"
                                  " VALUES ('c1', 'Ann@Example.com', 'free', 'active', 1, 1)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO customers(id, email, plan_id, status, created_at, anchor_at)"
                                  " VALUES ('c2', 'ann@example.COM', 'free', 'active', 1, 1)",
                                  NULL, NULL, NULL),
                     SQLITE_CONSTRAINT);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_versions),
        cmocka_unit_test_setup_teardown(test_pg_schema_matches_sqlite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_email_unique_any_case, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
