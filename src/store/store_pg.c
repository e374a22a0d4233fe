/* store_pg.c - the PostgreSQL backend of store.h (libpq): connections, statements, migrations,
 * transactions. The operations live beside it by concern (store_pg_customers.c, _usage.c,
 * _invoices.c, _lists.c, _outbox.c, _payments.c, _meter.c) and share store_pg_int.h.
 *
 * One tg_pg_t is one libpq connection, used by one thread at a time (store.h). Durability is
 * PostgreSQL's own: a COMMIT returns once the server has flushed its WAL (synchronous_commit
 * on, the server default); tollgate never lowers it. Several gateways share one database:
 * everything that must happen once (a migration, a usage batch, an invoice number) is decided
 * inside PostgreSQL by a constraint or an advisory lock, never by a node's memory. */
#include "store/store_pg_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/migrations.h"
#include "util/db_url.h"

/* The advisory lock every migrating node takes (any constant; "tollgat" in ASCII). */
#define MIGRATION_LOCK "7021893395784052"

/* ---- parameters and results ---- */

static void param_raw(tg_pg_params_t *p, const char *v, int len, int format)
{
    if (p->n >= TG_PG_PARAMS_MAX)
        abort(); /* a statement with more parameters than the array: a programming error */
    p->v[p->n] = v;
    p->len[p->n] = len;
    p->format[p->n] = format;
    p->n++;
}

void tg_pg_param_text(tg_pg_params_t *p, const char *s)
{
    param_raw(p, s, 0, 0);
}

void tg_pg_param_i64(tg_pg_params_t *p, int64_t v)
{
    snprintf(p->num[p->n < TG_PG_PARAMS_MAX ? p->n : 0], sizeof(p->num[0]), "%" PRId64, v);
    param_raw(p, p->num[p->n < TG_PG_PARAMS_MAX ? p->n : 0], 0, 0);
}

/* Makes room for need more bytes (and a NUL) in a, doubling; 0 or -1 (a->failed set). */
static int array_reserve(tg_pg_array_t *a, size_t need)
{
    if (a->failed)
        return -1;
    if (need > TG_PG_ARRAY_MAX - a->len - 1) {
        a->failed = 1;
        return -1;
    }
    if (a->len + need + 1 <= a->cap)
        return 0;
    size_t cap = a->cap != 0 ? a->cap : 4096;
    while (cap < a->len + need + 1)
        cap *= 2;
    if (cap > TG_PG_ARRAY_MAX)
        cap = TG_PG_ARRAY_MAX;
    char *b = realloc(a->buf, cap);
    if (b == NULL) {
        a->failed = 1;
        return -1;
    }
    a->buf = b;
    a->cap = cap;
    return 0;
}

/* The separator before the next element: '{' first, ',' after. */
static int array_next(tg_pg_array_t *a, size_t need)
{
    if (array_reserve(a, need + 1) != 0)
        return -1;
    a->buf[a->len++] = a->n++ == 0 ? '{' : ',';
    return 0;
}

void tg_pg_array_text(tg_pg_array_t *a, const char *s)
{
    size_t len = strlen(s), quoted = 2;
    for (size_t i = 0; i < len; i++)
        quoted += (s[i] == '"' || s[i] == '\\') ? 2 : 1;
    if (array_next(a, quoted) != 0)
        return;
    a->buf[a->len++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            a->buf[a->len++] = '\\';
        a->buf[a->len++] = s[i];
    }
    a->buf[a->len++] = '"';
}

void tg_pg_array_i64(tg_pg_array_t *a, int64_t v)
{
    char num[24];
    int len = snprintf(num, sizeof(num), "%" PRId64, v);
    if (array_next(a, (size_t)len) != 0)
        return;
    memcpy(a->buf + a->len, num, (size_t)len);
    a->len += (size_t)len;
}

const char *tg_pg_array_end(tg_pg_array_t *a)
{
    if (a->n == 0) { /* the empty array */
        if (array_reserve(a, 2) != 0)
            return NULL;
        a->buf[0] = '{';
        a->len = 1;
    }
    if (array_reserve(a, 1) != 0)
        return NULL;
    a->buf[a->len] = '}';
    a->buf[a->len + 1] = '\0';
    return a->buf;
}

void tg_pg_array_free(tg_pg_array_t *a)
{
    free(a->buf);
    memset(a, 0, sizeof(*a));
}

void tg_pg_param_u64(tg_pg_params_t *p, uint64_t v)
{
    snprintf(p->num[p->n < TG_PG_PARAMS_MAX ? p->n : 0], sizeof(p->num[0]), "%" PRIu64, v);
    param_raw(p, p->num[p->n < TG_PG_PARAMS_MAX ? p->n : 0], 0, 0);
}

void tg_pg_param_bytea(tg_pg_params_t *p, const void *data, size_t n)
{
    param_raw(p, data, (int)n, 1); /* binary format: the bytes as they are */
}

int64_t tg_pg_i64(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return 0;
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

uint64_t tg_pg_u64(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return 0;
    const char *v = PQgetvalue(res, row, col);
    return *v == '-' ? 0 : strtoull(v, NULL, 10);
}

void tg_pg_text(const PGresult *res, int row, int col, char *out, size_t cap)
{
    if (cap == 0)
        return;
    const char *v = PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col);
    size_t n = strlen(v);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, v, n);
    out[n] = '\0';
}

int tg_pg_bytea(const PGresult *res, int row, int col, void *out, size_t n)
{
    memset(out, 0, n);
    if (PQgetisnull(res, row, col))
        return -1;
    size_t len = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, col), &len);
    if (raw == NULL)
        return -1;
    int ok = len == n;
    if (ok)
        memcpy(out, raw, n);
    PQfreemem(raw);
    return ok ? 0 : -1;
}

char *tg_pg_strdup(const PGresult *res, int row, int col, size_t *len)
{
    const char *v = PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col);
    size_t n = (size_t)PQgetlength(res, row, col);
    char *s = malloc(n + 1);
    if (s == NULL)
        return NULL;
    memcpy(s, v, n);
    s[n] = '\0';
    if (len != NULL)
        *len = n;
    return s;
}

uint64_t tg_pg_affected(PGresult *res)
{
    const char *n = PQcmdTuples(res);
    return *n != '\0' ? strtoull(n, NULL, 10) : 0;
}

/* ---- connection ---- */

/* Connects (again). The prepared statements belonged to the old session: they are forgotten. */
static int connect_now(tg_pg_t *st, tg_err_t *err)
{
    if (st->conn != NULL)
        PQfinish(st->conn);
    memset(st->stmts, 0, sizeof(st->stmts));
    st->nstmts = 0;
    st->depth = 0;
    st->listening = 0; /* a new session: its LISTEN and its advisory lock went with the old one */
    st->leader = 0;
    st->conn = PQconnectdb(st->url);
    if (st->conn == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory connecting to PostgreSQL");
    if (PQstatus(st->conn) != CONNECTION_OK) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(st->conn));
        msg[strcspn(msg, "\n")] = '\0';
        PQfinish(st->conn);
        st->conn = NULL;
        return tg_errf(err, TG_EUNAVAIL, "PostgreSQL at %s is unreachable: %s", st->where, msg);
    }
    snprintf(st->where, sizeof(st->where), "%s:%s/%s", PQhost(st->conn), PQport(st->conn), PQdb(st->conn));
    /* UTC for the few date computations done in SQL; no notices on stderr. */
    PGresult *r = PQexec(st->conn, "SET TIME ZONE 'UTC'; SET client_min_messages = warning");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok)
        return tg_errf(err, TG_ESTORE, "configuring the PostgreSQL session at %s: %s", st->where,
                       PQerrorMessage(st->conn));
    return 0;
}

/* Before each statement: a connection that broke outside a transaction is made again (inside
 * one, the transaction is lost: the caller's call fails and it retries as a whole). */
static int ensure_connected(tg_pg_t *st, tg_err_t *err)
{
    if (st->conn != NULL && PQstatus(st->conn) == CONNECTION_OK)
        return 0;
    if (st->depth > 0)
        return tg_errf(err, TG_EUNAVAIL, "the connection to PostgreSQL at %s broke inside a transaction", st->where);
    return connect_now(st, err);
}

/* A failed result as an error: the SQLSTATE decides the code. */
static int result_error(tg_pg_t *st, PGresult *res, tg_err_t *err, const char *doing)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char msg[300];
    snprintf(msg, sizeof(msg), "%s", res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(st->conn));
    msg[strcspn(msg, "\n")] = '\0';
    int code = TG_ESTORE;
    if (state != NULL && strcmp(state, "23505") == 0)
        code = TG_EEXIST;
    else if (PQstatus(st->conn) != CONNECTION_OK ||
             (state != NULL && (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0)))
        code = TG_EUNAVAIL; /* connection exception, admin shutdown */
    if (code == TG_EUNAVAIL)
        return tg_errf(err, code, "%s: PostgreSQL at %s is unreachable: %s", doing, st->where, msg);
    return tg_errf(err, code, "%s: %s", doing, msg);
}

static int check(tg_pg_t *st, PGresult *r, PGresult **res, tg_err_t *err, const char *doing)
{
    ExecStatusType s = PQresultStatus(r);
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
        if (res != NULL)
            *res = r;
        else
            PQclear(r);
        return 0;
    }
    int rc = result_error(st, r, err, doing);
    PQclear(r);
    return rc;
}

int tg_pg_exec(tg_pg_t *st, const char *sql, tg_err_t *err, const char *doing)
{
    int rc = ensure_connected(st, err);
    if (rc != 0)
        return rc;
    return check(st, PQexec(st->conn, sql), NULL, err, doing);
}

/* The statement name of sql on this connection, preparing it on first use. */
static int prepared(tg_pg_t *st, const char *sql, const tg_pg_params_t *p, const char **name, tg_err_t *err,
                    const char *doing)
{
    unsigned h = (unsigned)(((uintptr_t)sql >> 3) % TG_PG_STMT_CACHE);
    for (unsigned i = 0; i < TG_PG_STMT_CACHE; i++) {
        tg_pg_stmt_t *s = &st->stmts[(h + i) % TG_PG_STMT_CACHE];
        if (s->sql == sql) {
            *name = s->name;
            return 0;
        }
        if (s->sql == NULL) {
            snprintf(s->name, sizeof(s->name), "tg%u", st->nstmts);
            PGresult *r = PQprepare(st->conn, s->name, sql, p != NULL ? p->n : 0, NULL);
            int rc = check(st, r, NULL, err, doing);
            if (rc != 0)
                return rc;
            s->sql = sql;
            st->nstmts++;
            *name = s->name;
            return 0;
        }
    }
    *name = NULL; /* cache full: run unprepared */
    return 0;
}

int tg_pg_query(tg_pg_t *st, const char *sql, const tg_pg_params_t *p, PGresult **res, tg_err_t *err, const char *doing)
{
    if (res != NULL)
        *res = NULL;
    int rc = ensure_connected(st, err);
    if (rc != 0)
        return rc;
    const char *name;
    if ((rc = prepared(st, sql, p, &name, err, doing)) != 0)
        return rc;
    int n = p != NULL ? p->n : 0;
    const char *const *v = p != NULL ? p->v : NULL;
    const int *len = p != NULL ? p->len : NULL, *fmt = p != NULL ? p->format : NULL;
    PGresult *r = name != NULL ? PQexecPrepared(st->conn, name, n, v, len, fmt, 0)
                               : PQexecParams(st->conn, sql, n, NULL, v, len, fmt, 0);
    return check(st, r, res, err, doing);
}

int tg_pg_query_unprepared(tg_pg_t *st, const char *sql, const tg_pg_params_t *p, PGresult **res, tg_err_t *err,
                           const char *doing)
{
    if (res != NULL)
        *res = NULL;
    int rc = ensure_connected(st, err);
    if (rc != 0)
        return rc;
    return check(st, PQexecParams(st->conn, sql, p->n, NULL, p->v, p->len, p->format, 0), res, err, doing);
}

int tg_pg_open(const char *url, tg_store_t **out, tg_err_t *err)
{
    *out = NULL;
    tg_pg_t *st = calloc(1, sizeof(*st));
    if (st == NULL || (st->url = strdup(url)) == NULL) {
        free(st);
        return tg_errf(err, TG_ENOMEM, "out of memory opening PostgreSQL");
    }
    st->base.ops = &tg_pg_ops;
    tg_db_url_redact(url, st->where, sizeof(st->where));
    int rc = connect_now(st, err);
    if (rc != 0) {
        tg_pg_close(&st->base);
        return rc;
    }
    *out = &st->base;
    return 0;
}

void tg_pg_close(tg_store_t *store)
{
    tg_pg_t *st = tg_pg(store);
    if (st == NULL)
        return;
    if (st->conn != NULL)
        PQfinish(st->conn);
    free(st->url);
    free(st);
}

/* ---- migrations ---- */

/* Two statements: a query naming schema_migrations cannot even be prepared in a database that
 * does not have the table yet (a CASE around it does not help: names resolve at parse time). */
/* PostgreSQL has its own tools for a consistent copy of a live database, which know its WAL:
 * tollgate does not redo them (docs/operations.md gives the recipe). */
int tg_pg_backup_to(tg_store_t *store, const char *dest_path, tg_err_t *err)
{
    (void)store;
    return tg_errf(err, TG_ESTATE,
                   "backing up PostgreSQL into %s: use pg_dump, or base backups with WAL archiving (docs/operations.md)",
                   dest_path);
}

int tg_pg_restore_from(tg_store_t *store, const char *src_path, tg_err_t *err)
{
    (void)store;
    return tg_errf(err, TG_ESTATE,
                   "restoring %s into PostgreSQL: use pg_restore, or point-in-time recovery (docs/operations.md)",
                   src_path);
}

int tg_pg_schema_version(tg_store_t *store, int *version, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    PGresult *r;
    *version = 0;
    int rc = tg_pg_query(st, "SELECT (to_regclass('schema_migrations') IS NOT NULL)::int", NULL, &r, err,
                         "reading the schema version");
    if (rc != 0)
        return rc;
    int exists = tg_pg_i64(r, 0, 0) != 0;
    PQclear(r);
    if (!exists)
        return 0; /* an empty database */
    if ((rc = tg_pg_query(st, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", NULL, &r, err,
                          "reading the schema version")) != 0)
        return rc;
    *version = (int)tg_pg_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

/* Each migration in its own transaction, under an advisory lock that every node takes: nodes
 * starting together apply each migration once, in order; the others wait, then see it done. */
int tg_pg_migrate(tg_store_t *store, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    int rc = tg_pg_exec(st,
                        "BEGIN; SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ");"
                        " CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                        " name TEXT NOT NULL, applied_at BIGINT NOT NULL); COMMIT",
                        err, "creating schema_migrations");
    if (rc != 0) {
        tg_pg_exec(st, "ROLLBACK", NULL, "");
        return rc;
    }
    for (size_t i = 0; i < tg_pg_migrations_count; i++) {
        const tg_migration_t *m = &tg_pg_migrations[i];
        char doing[128];
        snprintf(doing, sizeof(doing), "applying migration %d (%s)", m->version, m->name);
        if ((rc = tg_pg_exec(st, "BEGIN; SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ")", err, doing)) != 0)
            return rc;
        st->depth = 1;
        PGresult *r = PQexec(st->conn, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
        if ((rc = check(st, r, &r, err, doing)) != 0)
            goto fail;
        int version = (int)tg_pg_i64(r, 0, 0);
        PQclear(r);
        if (version < m->version) {
            char ins[200];
            snprintf(ins, sizeof(ins),
                     "INSERT INTO schema_migrations(version, name, applied_at) VALUES (%d, '%s', %lld)", m->version,
                     m->name, (long long)time(NULL));
            if ((rc = tg_pg_exec(st, m->sql, err, doing)) != 0 || (rc = tg_pg_exec(st, ins, err, doing)) != 0)
                goto fail;
        }
        st->depth = 0;
        if ((rc = tg_pg_exec(st, "COMMIT", err, doing)) != 0)
            return rc;
        continue;
    fail:
        st->depth = 0;
        tg_pg_exec(st, "ROLLBACK", NULL, "");
        return rc;
    }
    return 0;
}

/* ---- transactions ----
 * Levels: the first opens the transaction (BEGIN), the others are savepoints. A savepoint asked
 * for outside a transaction opens one (as in SQLite), and its release commits it. */

static int level_push(tg_pg_t *st, const char *name, tg_err_t *err)
{
    if (st->depth >= TG_PG_DEPTH_MAX)
        return tg_errf(err, TG_ESTATE, "transactions nested deeper than %d", TG_PG_DEPTH_MAX);
    int rc;
    if (st->depth == 0) {
        if ((rc = tg_pg_exec(st, "BEGIN", err, "starting a transaction")) != 0)
            return rc;
        st->owner[0] = 1;
    } else {
        char sql[96];
        snprintf(sql, sizeof(sql), "SAVEPOINT %s", name);
        if ((rc = tg_pg_exec(st, sql, err, "starting a savepoint")) != 0)
            return rc;
        st->owner[st->depth] = 0;
    }
    st->depth++;
    return 0;
}

static int level_pop(tg_pg_t *st, const char *name, int commit, tg_err_t *err)
{
    if (st->depth == 0)
        return commit ? tg_errf(err, TG_ESTATE, "no transaction to end") : 0;
    st->depth--;
    char sql[200];
    if (st->owner[st->depth])
        snprintf(sql, sizeof(sql), commit ? "COMMIT" : "ROLLBACK");
    else if (commit)
        snprintf(sql, sizeof(sql), "RELEASE SAVEPOINT %s", name);
    else
        snprintf(sql, sizeof(sql), "ROLLBACK TO SAVEPOINT %s; RELEASE SAVEPOINT %s", name, name);
    if (st->conn == NULL || PQstatus(st->conn) != CONNECTION_OK) {
        st->depth = st->owner[st->depth] ? 0 : st->depth;
        return commit ? tg_errf(err, TG_EUNAVAIL, "the connection to PostgreSQL at %s broke inside a transaction",
                                st->where)
                      : 0;
    }
    int rc = check(st, PQexec(st->conn, sql), NULL, err, commit ? "committing" : "rolling back");
    if (rc != 0 && commit && !st->owner[st->depth]) /* a failed release leaves the level open */
        st->depth++;
    return rc;
}

int tg_pg_tx_begin(tg_store_t *store, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    if (st->depth != 0)
        return tg_errf(err, TG_ESTATE, "a transaction is already open");
    return level_push(st, "tx", err);
}

int tg_pg_tx_commit(tg_store_t *store, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    int rc = level_pop(st, "tx", 1, err);
    if (rc != 0 && st->depth > 0) { /* COMMIT failed: PostgreSQL rolled back; so do we */
        st->depth = 0;
        tg_pg_exec(st, "ROLLBACK", NULL, "");
    }
    return rc;
}

void tg_pg_tx_rollback(tg_store_t *store)
{
    tg_pg_t *st = tg_pg(store);
    if (st->depth > 0) {
        st->depth = 0;
        tg_pg_exec(st, "ROLLBACK", NULL, "");
    }
}

/* The savepoint's name is one of the caller's constants (an SQL identifier), never outside data. */
int tg_pg_savepoint(tg_store_t *store, const char *name, tg_err_t *err)
{
    return level_push(tg_pg(store), name, err);
}

int tg_pg_savepoint_release(tg_store_t *store, const char *name, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    int was_owner = st->depth > 0 && st->owner[st->depth - 1];
    int rc = level_pop(st, name, 1, err);
    if (rc != 0 && was_owner)
        tg_pg_exec(st, "ROLLBACK", NULL, "");
    return rc;
}

void tg_pg_savepoint_rollback(tg_store_t *store, const char *name)
{
    level_pop(tg_pg(store), name, 0, NULL);
}

/* ---- the operations table ---- */

const tg_store_ops_t tg_pg_ops = {
    .name = "postgresql",
    .close = tg_pg_close,
    .migrate = tg_pg_migrate,
    .schema_version = tg_pg_schema_version,
    .backup_to = tg_pg_backup_to,
    .restore_from = tg_pg_restore_from,
    .customer_insert = tg_pg_customer_insert,
    .customer_get = tg_pg_customer_get,
    .customer_update = tg_pg_customer_update,
    .customer_list = tg_pg_customer_list,
    .key_insert = tg_pg_key_insert,
    .key_get = tg_pg_key_get,
    .key_list = tg_pg_key_list,
    .key_set_revoked = tg_pg_key_set_revoked,
    .key_set_expires = tg_pg_key_set_expires,
    .key_touch = tg_pg_key_touch,
    .customer_page = tg_pg_customer_page,
    .customer_search = tg_pg_customer_search,
    .invoice_search = tg_pg_invoice_search,
    .invoice_search_totals = tg_pg_invoice_search_totals,
    .key_page = tg_pg_key_page,
    .key_count_active = tg_pg_key_count_active,
    .usage_rejected_list = tg_pg_usage_rejected_list,
    .usage_rejected_count = tg_pg_usage_rejected_count,
    .billing_failure_set = tg_pg_billing_failure_set,
    .billing_failure_clear = tg_pg_billing_failure_clear,
    .billing_failure_count = tg_pg_billing_failure_count,
    .billing_failure_list = tg_pg_billing_failure_list,
    .customer_set_password = tg_pg_customer_set_password,
    .customer_by_email = tg_pg_customer_by_email,
    .session_insert = tg_pg_session_insert,
    .session_get = tg_pg_session_get,
    .session_delete = tg_pg_session_delete,
    .session_delete_customer = tg_pg_session_delete_customer,
    .owner_session_insert = tg_pg_owner_session_insert,
    .owner_session_get = tg_pg_owner_session_get,
    .owner_session_delete = tg_pg_owner_session_delete,
    .trial_used = tg_pg_trial_used,
    .trial_record = tg_pg_trial_record,
    .plan_change_add = tg_pg_plan_change_add,
    .plan_change_count = tg_pg_plan_change_count,
    .usage_record = tg_pg_usage_record,
    .usage_record_many = tg_pg_usage_record_many,
    .usage_event_ids_prune = tg_pg_usage_event_ids_prune,
    .usage_event_ids_each = tg_pg_usage_event_ids_each,
    .usage_event_id_blocks_last = tg_pg_usage_event_id_blocks_last,
    .usage_event_id_blocks_after = tg_pg_usage_event_id_blocks_after,
    .usage_fold = tg_pg_usage_fold,
    .usage_period = tg_pg_usage_period,
    .usage_daily = tg_pg_usage_daily,
    .usage_endpoints = tg_pg_usage_endpoints,
    .usage_load = tg_pg_usage_load,
    .usage_total = tg_pg_usage_total,
    .invoice_item_add = tg_pg_invoice_item_add,
    .invoice_create = tg_pg_invoice_create,
    .invoice_preview = tg_pg_invoice_preview,
    .invoice_close_batch = tg_pg_invoice_close_batch,
    .invoice_get = tg_pg_invoice_get,
    .tx_begin = tg_pg_tx_begin,
    .tx_commit = tg_pg_tx_commit,
    .tx_rollback = tg_pg_tx_rollback,
    .savepoint = tg_pg_savepoint,
    .savepoint_release = tg_pg_savepoint_release,
    .savepoint_rollback = tg_pg_savepoint_rollback,
    .invoice_page = tg_pg_invoice_page,
    .invoice_list = tg_pg_invoice_list,
    .invoice_totals = tg_pg_invoice_totals,
    .invoice_transition = tg_pg_invoice_transition,
    .invoice_draft_refresh = tg_pg_invoice_draft_refresh,
    .invoice_hold = tg_pg_invoice_hold,
    .invoice_drafts_due = tg_pg_invoice_drafts_due,
    .customers_due = tg_pg_customers_due,
    .customer_set_next_period_end = tg_pg_customer_set_next_period_end,
    .outbox_insert = tg_pg_outbox_insert,
    .outbox_due = tg_pg_outbox_due,
    .outbox_next_due = tg_pg_outbox_next_due,
    .outbox_done = tg_pg_outbox_done,
    .outbox_retry = tg_pg_outbox_retry,
    .outbox_fail = tg_pg_outbox_fail,
    .outbox_defer = tg_pg_outbox_defer,
    .outbox_requeue = tg_pg_outbox_requeue,
    .outbox_get = tg_pg_outbox_get,
    .outbox_get_by_key = tg_pg_outbox_get_by_key,
    .outbox_customers_missing = tg_pg_outbox_customers_missing,
    .outbox_prune = tg_pg_outbox_prune,
    .outbox_pull_in = tg_pg_outbox_pull_in,
    .stripe_customer_get = tg_pg_stripe_customer_get,
    .stripe_customer_owner = tg_pg_stripe_customer_owner,
    .outbox_customer_latest = tg_pg_outbox_customer_latest,
    .outbox_earlier_pending = tg_pg_outbox_earlier_pending,
    .outbox_customer_latest_of = tg_pg_outbox_customer_latest_of,
    .outbox_page = tg_pg_outbox_page,
    .outbox_counts = tg_pg_outbox_counts,
    .meter_export_set = tg_pg_meter_export_set,
    .meter_due = tg_pg_meter_due,
    .meter_mark = tg_pg_meter_mark,
    .meter_set_seq = tg_pg_meter_set_seq,
    .meter_period_exported = tg_pg_meter_period_exported,
    .meter_prune = tg_pg_meter_prune,
    .meter_customer_backlog = tg_pg_meter_customer_backlog,
    .meter_refused = tg_pg_meter_refused,
    .meter_take_back = tg_pg_meter_take_back,
    .meter_outbox_counts = tg_pg_meter_outbox_counts,
    /* store_payments.h */
    .stripe_event_insert = tg_pg_stripe_event_insert,
    .stripe_event_next = tg_pg_stripe_event_next,
    .stripe_event_mark = tg_pg_stripe_event_mark,
    .stripe_event_get = tg_pg_stripe_event_get,
    .stripe_event_count = tg_pg_stripe_event_count,
    .stripe_invoice_get = tg_pg_stripe_invoice_get,
    .stripe_invoice_put = tg_pg_stripe_invoice_put,
    .stripe_debt = tg_pg_stripe_debt,
    .dunning_get = tg_pg_dunning_get,
    .dunning_put = tg_pg_dunning_put,
    .dunning_clear = tg_pg_dunning_clear,
    .dunning_list = tg_pg_dunning_list,
    .status_history_add = tg_pg_status_history_add,
    .status_history_list = tg_pg_status_history_list,
    .payment_method_put = tg_pg_payment_method_put,
    .payment_method_get = tg_pg_payment_method_get,
    .stripe_subscription_map = tg_pg_stripe_subscription_map,
    .stripe_subscription_get = tg_pg_stripe_subscription_get,
    .stripe_subscription_latest = tg_pg_stripe_subscription_latest,
    .customers_without_subscription = tg_pg_customers_without_subscription,
    .stripe_subscription_put = tg_pg_stripe_subscription_put,
    .changes_listen = tg_pg_changes_listen,
    .changes_wait = tg_pg_changes_wait,
    .leader_try = tg_pg_leader_try,
    /* store_notify.h (issue 13, part A) */
    .event_insert = tg_pg_event_insert,
    .event_get = tg_pg_event_get,
    .event_page = tg_pg_event_page,
    .webhook_endpoint_insert = tg_pg_webhook_endpoint_insert,
    .webhook_endpoint_get = tg_pg_webhook_endpoint_get,
    .webhook_endpoint_update = tg_pg_webhook_endpoint_update,
    .webhook_endpoint_delete = tg_pg_webhook_endpoint_delete,
    .webhook_endpoint_list = tg_pg_webhook_endpoint_list,
    .webhook_delivery_insert = tg_pg_webhook_delivery_insert,
    .webhook_delivery_get = tg_pg_webhook_delivery_get,
    .webhook_delivery_claim = tg_pg_webhook_delivery_claim,
    .webhook_delivery_next_due = tg_pg_webhook_delivery_next_due,
    .webhook_delivery_update = tg_pg_webhook_delivery_update,
    .webhook_delivery_page = tg_pg_webhook_delivery_page,
    .webhook_attempt_list = tg_pg_webhook_attempt_list,
    .notification_settings_get = tg_pg_notification_settings_get,
    .notification_settings_put = tg_pg_notification_settings_put,
    .mail_insert = tg_pg_mail_insert,
    .mail_claim = tg_pg_mail_claim,
    .mail_next_due = tg_pg_mail_next_due,
    .mail_record = tg_pg_mail_record,
    .mail_requeue = tg_pg_mail_requeue,
    .mail_get = tg_pg_mail_get,
    .mail_page = tg_pg_mail_page,
    .mail_attempts = tg_pg_mail_attempts,
    .email_token_insert = tg_pg_email_token_insert,
    .email_token_use = tg_pg_email_token_use,
    .email_token_revoke = tg_pg_email_token_revoke,
    .customer_confirm_email = tg_pg_customer_confirm_email,
    /* part C (issue 13) */
    .mark_insert = tg_pg_mark_insert,
    .marks_list = tg_pg_marks_list,
    .budget_set = tg_pg_budget_set,
    .budget_get = tg_pg_budget_get,
    .budgets_list = tg_pg_budgets_list,
    .trials_ending = tg_pg_trials_ending,
    .notify_prune = tg_pg_notify_prune,
    .usage_batches_prune = tg_pg_usage_batches_prune,
    .node_drained = tg_pg_node_drained,
    .drained_nodes = tg_pg_drained_nodes,
    .drained_node_forget = tg_pg_drained_node_forget,
    .notify_pending = tg_pg_notify_pending,
    /* issue 14 */
    .audit_append = tg_pg_audit_append,
    .audit_page = tg_pg_audit_page,
    .ingest_token_insert = tg_pg_ingest_token_insert,
    .ingest_token_get = tg_pg_ingest_token_get,
    .ingest_token_set_revoked = tg_pg_ingest_token_set_revoked,
    .ingest_token_page = tg_pg_ingest_token_page,
    .ingest_token_list_active = tg_pg_ingest_token_list_active,
    .event_key_blake2b_until = tg_pg_event_key_blake2b_until,
};
