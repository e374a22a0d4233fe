/* store_pg_outbox.c - the PostgreSQL backend of store_outbox.h: the stripe_outbox and
 * stripe_customers tables of migration 11. Same results, errors and orders as
 * store_sqlite_outbox.c, plus what several gateways on one database need:
 *
 * Claims. Every node runs an outbox processor, and a processor reads a batch of due rows, then
 * calls Stripe for each (seconds per call at worst) and records each answer. Two processors
 * must not send one row at once. Row locks (SELECT ... FOR UPDATE SKIP LOCKED) end with the
 * transaction, and holding a transaction open across Stripe calls is not an option; a
 * "claimed until" lease would need a column SQLite does not have (the schemas are kept alike),
 * would show in next_attempt_at, and would keep a row stuck for the lease after a crash. So a
 * row is claimed by a session-level advisory lock of the connection that read it in
 * tg_pg_outbox_due, keyed (CLAIM_CLASS, id mod 2^31):
 *  - another connection's outbox_due skips a claimed row, and its outbox_next_due does not count
 *    it as due (so its processor does not spin on a row it cannot take);
 *  - the claim ends at this connection's next outbox_due outside a transaction (by then the
 *    processor has recorded every row of its batch: done, retried, failed or deferred, all in
 *    statements that committed), or with the connection: a node that dies (kill -9, a lost
 *    machine once PostgreSQL notices) frees its rows at once, due as they were;
 *  - after taking a claim the row is read again in a new statement, so a row another node
 *    recorded (committed, then released) between the two is seen as it is now and skipped.
 * Ids are keys modulo 2^31 (the two-int4 form of the lock); rows whose ids differ by a multiple
 * of 2^31 share a claim, which only delays one of them to the next pass. A dropped connection
 * that reconnects mid-batch loses its claims: another node may then send a row this one is
 * sending, with the same idempotency key, which Stripe replays (the single-node behaviour).
 *
 * Text: TEXT columns take only valid UTF-8 and no NUL, unlike SQLite's. Free text that comes
 * from outside (Stripe's error messages, ids) is cut to its cap on a character boundary and
 * scrubbed (tg_utf8_scrub), or PostgreSQL would refuse the statement and the row would never be
 * recorded. Ids and kinds are compared and sorted COLLATE "C", SQLite's BINARY. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_outbox.h"
#include "store/store_pg_int.h"
#include "util/utf8.h"

#define ROW_COLS                                                                                                       \
    "id, kind, customer_id, idempotency_key, method, path, state, attempts, next_attempt_at, last_error,"              \
    " response_id, created_at, updated_at"

/* The advisory lock class of outbox claims ("TGOB"); the second key is id mod 2^31. */
#define CLAIM_CLASS "1413959490"
#define CLAIM_KEY "(id % 2147483648)"
/* This session's claims, as keys. */
#define OWN_CLAIMS                                                                                                     \
    "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"                        \
    " AND classid = " CLAIM_CLASS " AND objsubid = 2"
/* Rows past the batch a claim pass looks at, so that rows other nodes hold are stepped over. */
#define CLAIM_WINDOW 240

static void read_row(const PGresult *res, int i, tg_outbox_row_t *r)
{
    memset(r, 0, sizeof(*r));
    r->id = tg_pg_i64(res, i, 0);
    tg_pg_text(res, i, 1, r->kind, sizeof(r->kind));
    tg_pg_text(res, i, 2, r->customer_id, sizeof(r->customer_id));
    tg_pg_text(res, i, 3, r->idempotency_key, sizeof(r->idempotency_key));
    tg_pg_text(res, i, 4, r->method, sizeof(r->method));
    tg_pg_text(res, i, 5, r->path, sizeof(r->path));
    tg_pg_text(res, i, 6, r->state, sizeof(r->state));
    r->attempts = tg_pg_i64(res, i, 7);
    r->next_attempt_at_ms = tg_pg_i64(res, i, 8);
    tg_pg_text(res, i, 9, r->last_error, sizeof(r->last_error));
    tg_pg_text(res, i, 10, r->response_id, sizeof(r->response_id));
    r->created_at = tg_pg_i64(res, i, 11);
    r->updated_at = tg_pg_i64(res, i, 12);
}

static int fits(const char *s, size_t cap)
{
    return s != NULL && strnlen(s, cap) < cap;
}

/* s (NULL: "") as it is stored: its first cap - 1 bytes, a character cut at the end dropped,
 * any other invalid UTF-8 byte as '?'. */
static void clean_text(const char *s, char *out, size_t cap)
{
    snprintf(out, cap, "%s", s != NULL ? s : "");
    tg_utf8_scrub(out);
}

/* Runs a statement that reads at most one outbox row into out; TG_ENOTFOUND (with what) if it
 * reads none. */
static int one_row(tg_pg_t *st, const char *sql, const tg_pg_params_t *p, tg_outbox_row_t *out, const char *what,
                   tg_err_t *err)
{
    PGresult *r;
    int rc = tg_pg_query(st, sql, p, &r, err, "reading a Stripe call");
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "%s", what);
    else
        read_row(r, 0, out);
    PQclear(r);
    return rc;
}

int tg_pg_outbox_insert(tg_store_t *store, const tg_outbox_row_t *row, const char *params, size_t params_len,
                        int64_t now_ms, int64_t *id, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    if (!fits(row->kind, sizeof(row->kind)) || !fits(row->customer_id, sizeof(row->customer_id)) ||
        !fits(row->idempotency_key, sizeof(row->idempotency_key)) || !fits(row->method, sizeof(row->method)) ||
        !fits(row->path, sizeof(row->path)) || params_len > TG_OUTBOX_PARAMS_MAX)
        return tg_errf(err, TG_EINVAL, "an outbox row field is past its cap");
    if (params == NULL)
        params_len = 0;
    if (params_len > 0 && memchr(params, '\0', params_len) != NULL)
        return tg_errf(err, TG_EINVAL, "an outbox row's form holds a NUL byte");
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, row->kind);
    tg_pg_param_text(&p, row->customer_id);
    tg_pg_param_text(&p, row->idempotency_key);
    tg_pg_param_text(&p, row->method);
    tg_pg_param_text(&p, row->path);
    /* params_len bytes, not up to a NUL: a text value in binary format is its bytes as they are */
    tg_pg_param_bytea(&p, params_len > 0 ? params : "", params_len);
    tg_pg_param_i64(&p, now_ms);
    tg_pg_param_i64(&p, now_ms / 1000);
    /* ON CONFLICT, not a unique violation: the insert runs inside the caller's transaction, which
     * a failed statement would abort in PostgreSQL (TG_EEXIST lets the caller go on) */
    PGresult *r;
    int rc = tg_pg_query(st,
                         "INSERT INTO stripe_outbox(kind, customer_id, idempotency_key, method, path, params,"
                         " state, attempts, next_attempt_at, created_at, updated_at)"
                         " VALUES ($1, $2, $3, $4, $5, $6::text, 'pending', 0, $7, $8, $8)"
                         " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
                         &p, &r, err, "enqueuing a Stripe call");
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 0)
        rc = tg_errf(err, TG_EEXIST, "the Stripe call %.80s is queued already", row->idempotency_key);
    else if (id != NULL)
        *id = tg_pg_i64(r, 0, 0);
    PQclear(r);
    return rc;
}

/* Ends this session's claims (see the top of the file). Only outside a transaction: inside one,
 * a row it changed is not committed yet, and another node taking it now would read it as it
 * was. The lock calls come back as rows; nothing else is read. */
static int release_claims(tg_pg_t *st, tg_err_t *err)
{
    if (st->depth > 0)
        return 0;
    return tg_pg_query(st,
                       "SELECT pg_advisory_unlock(" CLAIM_CLASS ", objid::int) FROM pg_locks"
                       " WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND classid = " CLAIM_CLASS
                       " AND objsubid = 2",
                       NULL, NULL, err, "releasing Stripe calls");
}

int tg_pg_outbox_due(tg_store_t *store, int64_t now_ms, tg_outbox_row_t *out, size_t limit, size_t *n, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    *n = 0;
    if (limit == 0)
        return 0;
    if (limit > INT32_MAX - CLAIM_WINDOW)
        limit = INT32_MAX - CLAIM_WINDOW;
    int rc = release_claims(st, err);
    if (rc != 0)
        return rc;
    /* Claim up to limit due rows, earliest first, stepping over those another session holds.
     * The candidates are materialized first so that the lock is tried on them alone, in order,
     * until limit are held (a filter beside ORDER BY ... LIMIT could be tried on every due row
     * before the sort). A row this session holds already counts without a second lock. */
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, now_ms);
    tg_pg_param_i64(&p, (int64_t)limit);
    tg_pg_param_i64(&p, (int64_t)limit + CLAIM_WINDOW);
    rc = tg_pg_query(st,
                     "WITH own AS (" OWN_CLAIMS "),"
                     " candidates AS MATERIALIZED (SELECT id FROM stripe_outbox WHERE state = 'pending'"
                     " AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $3)"
                     " SELECT count(*) FROM (SELECT 1 FROM candidates WHERE CASE WHEN " CLAIM_KEY
                     " IN (SELECT objid FROM own) THEN true"
                     " ELSE pg_try_advisory_lock(" CLAIM_CLASS ", " CLAIM_KEY "::int) END LIMIT $2) AS claimed",
                     &p, NULL, err, "claiming due Stripe calls");
    if (rc != 0)
        return rc;
    /* The claimed rows, read again by a new statement: one that another node recorded before
     * releasing it is no longer pending here. */
    PGresult *r;
    tg_pg_params_t q = {0};
    tg_pg_param_i64(&q, now_ms);
    tg_pg_param_i64(&q, (int64_t)limit);
    rc = tg_pg_query(st,
                     "SELECT " ROW_COLS ", params FROM stripe_outbox WHERE state = 'pending' AND next_attempt_at <= $1"
                     " AND " CLAIM_KEY " IN (" OWN_CLAIMS ") ORDER BY next_attempt_at, id LIMIT $2",
                     &q, &r, err, "reading due Stripe calls");
    if (rc != 0)
        return rc;
    int rows = PQntuples(r);
    for (int i = 0; i < rows && *n < limit; i++) {
        tg_outbox_row_t *o = &out[*n];
        read_row(r, i, o);
        if ((o->params = tg_pg_strdup(r, i, 13, &o->params_len)) == NULL) {
            rc = tg_errf(err, TG_ENOMEM, "out of memory reading due Stripe calls");
            break;
        }
        (*n)++;
    }
    PQclear(r);
    if (rc != 0) {
        for (size_t i = 0; i < *n; i++)
            tg_outbox_row_clear(&out[i]);
        *n = 0;
    }
    return rc;
}

int tg_pg_outbox_next_due(tg_store_t *store, int64_t *at_ms, uint64_t *pending, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    if (pending != NULL)
        *pending = 0;
    /* rows other sessions of this database claimed are theirs to record: not due for this one */
    PGresult *r;
    int rc = tg_pg_query(st,
                         "SELECT MIN(next_attempt_at) FILTER (WHERE " CLAIM_KEY " NOT IN"
                         " (SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted"
                         " AND pid <> pg_backend_pid() AND classid = " CLAIM_CLASS " AND objsubid = 2"
                         " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))),"
                         " COUNT(*) FROM stripe_outbox WHERE state = 'pending'",
                         NULL, &r, err, "reading the outbox");
    if (rc != 0)
        return rc;
    if (pending != NULL)
        *pending = tg_pg_u64(r, 0, 1);
    if (PQgetisnull(r, 0, 0))
        rc = tg_errf(err, TG_ENOTFOUND, "no Stripe call is pending");
    else
        *at_ms = tg_pg_i64(r, 0, 0);
    PQclear(r);
    return rc;
}

/* One UPDATE of a pending row ($1 id, $2 text, $3 number, $4 now); TG_ENOTFOUND if it changed
 * nothing. */
static int update_pending(tg_pg_t *st, const char *sql, int64_t id, const char *text, int64_t num, int64_t now,
                          tg_err_t *err)
{
    char clean[TG_OUTBOX_ERROR_MAX];
    clean_text(text, clean, sizeof(clean));
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, id);
    tg_pg_param_text(&p, clean);
    tg_pg_param_i64(&p, num);
    tg_pg_param_i64(&p, now);
    PGresult *r;
    int rc = tg_pg_query(st, sql, &p, &r, err, "recording a Stripe call");
    if (rc != 0)
        return rc;
    if (tg_pg_affected(r) == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "outbox row %lld is not pending", (long long)id);
    PQclear(r);
    return rc;
}

int tg_pg_outbox_done(tg_store_t *store, int64_t id, const char *response_id, int map_stripe_customer, int64_t now,
                      tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    static const char done_sql[] = "UPDATE stripe_outbox SET state = 'done', attempts = attempts + 1, response_id = $2,"
                                   " last_error = '', updated_at = $4 WHERE id = $1 AND state = 'pending' AND $3 = $3";
    if (!map_stripe_customer)
        return update_pending(st, done_sql, id, response_id, 0, now, err);
    /* the row and the customer map together: a savepoint (a transaction of its own, or a part of
     * the caller's) */
    int rc = tg_pg_savepoint(store, "outbox_done", err);
    if (rc != 0)
        return rc;
    rc = update_pending(st, done_sql, id, response_id, 0, now, err);
    if (rc == 0) {
        char sid[TG_OUTBOX_ERROR_MAX]; /* as update_pending stored it on the row */
        clean_text(response_id, sid, sizeof(sid));
        tg_pg_params_t p = {0};
        tg_pg_param_i64(&p, id);
        tg_pg_param_text(&p, sid);
        tg_pg_param_i64(&p, now);
        rc = tg_pg_query(st,
                         "INSERT INTO stripe_customers(customer_id, stripe_id, created_at)"
                         " SELECT customer_id, $2, $3 FROM stripe_outbox WHERE id = $1"
                         " ON CONFLICT (customer_id) DO UPDATE SET stripe_id = excluded.stripe_id",
                         &p, NULL, err, "recording a Stripe customer");
    }
    if (rc != 0) {
        tg_pg_savepoint_rollback(store, "outbox_done");
        return rc;
    }
    return tg_pg_savepoint_release(store, "outbox_done", err);
}

int tg_pg_outbox_retry(tg_store_t *store, int64_t id, int64_t next_attempt_at_ms, const char *last_error, int64_t now,
                       tg_err_t *err)
{
    return update_pending(tg_pg(store),
                          "UPDATE stripe_outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3,"
                          " updated_at = $4 WHERE id = $1 AND state = 'pending'",
                          id, last_error, next_attempt_at_ms, now, err);
}

int tg_pg_outbox_defer(tg_store_t *store, int64_t id, int64_t next_attempt_at_ms, const char *why, int64_t now,
                       tg_err_t *err)
{
    return update_pending(tg_pg(store),
                          "UPDATE stripe_outbox SET last_error = $2, next_attempt_at = $3, updated_at = $4"
                          " WHERE id = $1 AND state = 'pending'",
                          id, why, next_attempt_at_ms, now, err);
}

int tg_pg_outbox_fail(tg_store_t *store, int64_t id, const char *last_error, int64_t now, tg_err_t *err)
{
    return update_pending(tg_pg(store),
                          "UPDATE stripe_outbox SET state = 'failed', attempts = attempts + 1, last_error = $2,"
                          " updated_at = $4 WHERE id = $1 AND state = 'pending' AND $3 = $3",
                          id, last_error, 0, now, err);
}

int tg_pg_outbox_requeue(tg_store_t *store, int64_t id, int64_t now_ms, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, id);
    tg_pg_param_i64(&p, now_ms);
    tg_pg_param_i64(&p, now_ms / 1000);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "UPDATE stripe_outbox SET state = 'pending', attempts = 0, next_attempt_at = $2,"
                         " updated_at = $3 WHERE id = $1 AND state = 'failed'",
                         &p, &r, err, "requeuing a Stripe call");
    if (rc != 0)
        return rc;
    uint64_t changed = tg_pg_affected(r);
    PQclear(r);
    if (changed == 0) {
        tg_outbox_row_t row;
        rc = tg_pg_outbox_get(store, id, &row, err);
        if (rc == 0)
            rc = tg_errf(err, TG_ESTATE, "outbox row %lld is %s, not failed", (long long)id, row.state);
    }
    return rc;
}

int tg_pg_outbox_get(tg_store_t *store, int64_t id, tg_outbox_row_t *out, tg_err_t *err)
{
    char what[64];
    snprintf(what, sizeof(what), "no outbox row %lld", (long long)id);
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, id);
    return one_row(tg_pg(store), "SELECT " ROW_COLS " FROM stripe_outbox WHERE id = $1", &p, out, what, err);
}

int tg_pg_outbox_get_by_key(tg_store_t *store, const char *idempotency_key, tg_outbox_row_t *out, tg_err_t *err)
{
    char what[128];
    snprintf(what, sizeof(what), "no outbox row with key %.80s", idempotency_key);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, idempotency_key);
    return one_row(tg_pg(store), "SELECT " ROW_COLS " FROM stripe_outbox WHERE idempotency_key = $1", &p, out, what,
                   err);
}

int tg_pg_outbox_customers_missing(tg_store_t *store, const char *kind, tg_customer_t *out, size_t limit, size_t *n,
                                   tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    *n = 0;
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, kind);
    tg_pg_param_i64(&p, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "SELECT id, email, name FROM customers c WHERE NOT EXISTS (SELECT 1 FROM stripe_customers m"
                         " WHERE m.customer_id = c.id) AND NOT EXISTS (SELECT 1 FROM stripe_outbox o"
                         " WHERE o.customer_id = c.id AND o.kind = $1) ORDER BY created_at, id COLLATE \"C\" LIMIT $2",
                         &p, &r, err, "finding customers without a Stripe customer");
    if (rc != 0)
        return rc;
    for (int i = 0; i < PQntuples(r) && *n < limit; i++) {
        tg_customer_t *c = &out[(*n)++];
        memset(c, 0, sizeof(*c));
        tg_pg_text(r, i, 0, c->id, sizeof(c->id));
        tg_pg_text(r, i, 1, c->email, sizeof(c->email));
        tg_pg_text(r, i, 2, c->name, sizeof(c->name));
    }
    PQclear(r);
    return 0;
}

int tg_pg_outbox_prune(tg_store_t *store, int64_t before_s, size_t limit, size_t *deleted, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, before_s);
    tg_pg_param_i64(&p, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "DELETE FROM stripe_outbox WHERE id IN (SELECT id FROM stripe_outbox WHERE state = 'done'"
                         " AND updated_at < $1 ORDER BY id LIMIT $2)",
                         &p, &r, err, "pruning the outbox");
    if (rc != 0)
        return rc;
    if (deleted != NULL)
        *deleted = (size_t)tg_pg_affected(r);
    PQclear(r);
    return 0;
}

int tg_pg_outbox_pull_in(tg_store_t *store, int64_t latest_ms, int64_t now_ms, uint64_t *moved, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, latest_ms);
    tg_pg_param_i64(&p, now_ms);
    PGresult *r;
    int rc = tg_pg_query(
        st, "UPDATE stripe_outbox SET next_attempt_at = $2 WHERE state = 'pending' AND next_attempt_at > $1", &p, &r,
        err, "rescheduling Stripe calls after a clock change");
    if (rc != 0)
        return rc;
    if (moved != NULL)
        *moved = tg_pg_affected(r);
    PQclear(r);
    return 0;
}

int tg_pg_stripe_customer_get(tg_store_t *store, const char *customer_id, char *stripe_id, size_t cap, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    PGresult *r;
    int rc = tg_pg_query(st, "SELECT stripe_id FROM stripe_customers WHERE customer_id = $1", &p, &r, err,
                         "reading a Stripe customer");
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "customer %.40s has no Stripe customer", customer_id);
    else
        tg_pg_text(r, 0, 0, stripe_id, cap);
    PQclear(r);
    return rc;
}

int tg_pg_stripe_customer_owner(tg_store_t *store, const char *stripe_id, char customer_id[TG_ID_MAX], tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, stripe_id);
    PGresult *r;
    int rc = tg_pg_query(st, "SELECT customer_id FROM stripe_customers WHERE stripe_id = $1", &p, &r, err,
                         "reading a Stripe customer");
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "Stripe customer %.64s is no tollgate customer's", stripe_id);
    else
        tg_pg_text(r, 0, 0, customer_id, TG_ID_MAX);
    PQclear(r);
    return rc;
}

int tg_pg_outbox_customer_latest(tg_store_t *store, const char *customer_id, tg_outbox_row_t *out, tg_err_t *err)
{
    char what[96];
    snprintf(what, sizeof(what), "customer %.40s has no Stripe calls", customer_id);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    return one_row(tg_pg(store),
                   "SELECT " ROW_COLS " FROM stripe_outbox WHERE customer_id = $1 ORDER BY id DESC LIMIT 1", &p, out,
                   what, err);
}

int tg_pg_outbox_earlier_pending(tg_store_t *store, const char *customer_id, int64_t id, int64_t *earlier_id,
                                 int64_t *next_ms, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    tg_pg_param_i64(&p, id);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "SELECT id, next_attempt_at FROM stripe_outbox WHERE customer_id = $1 AND id < $2"
                         " AND state = 'pending' ORDER BY id LIMIT 1",
                         &p, &r, err, "reading a customer's Stripe calls");
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 0) {
        rc = tg_errf(err, TG_ENOTFOUND, "no earlier call");
    } else {
        *earlier_id = tg_pg_i64(r, 0, 0);
        *next_ms = tg_pg_i64(r, 0, 1);
    }
    PQclear(r);
    return rc;
}

int tg_pg_outbox_customer_latest_of(tg_store_t *store, const char *customer_id, const char *kind, tg_outbox_row_t *out,
                                    tg_err_t *err)
{
    char what[128];
    snprintf(what, sizeof(what), "customer %.40s has no %.40s call", customer_id, kind);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    tg_pg_param_text(&p, kind);
    return one_row(tg_pg(store),
                   "SELECT " ROW_COLS " FROM stripe_outbox WHERE customer_id = $1 AND kind = $2"
                   " ORDER BY id DESC LIMIT 1",
                   &p, out, what, err);
}

int tg_pg_outbox_page(tg_store_t *store, const char *state, const tg_page_t *page, tg_outbox_row_cb cb, void *arg,
                      tg_page_end_t *end, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    memset(end, 0, sizeof(*end));
    int64_t before = INT64_MAX;
    if (page->after[0] != '\0' && tg_page_key_parse_num(page->after, &before) != 0)
        return tg_errf(err, TG_EINVAL, "the cursor does not belong to this list");
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, before);
    tg_pg_param_text(&p, state); /* NULL: every state */
    tg_pg_param_i64(&p, (int64_t)page->limit + 1);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "SELECT " ROW_COLS " FROM stripe_outbox WHERE id < $1 AND ($2::text IS NULL OR state = $2)"
                         " ORDER BY id DESC LIMIT $3",
                         &p, &r, err, "listing Stripe calls");
    if (rc != 0)
        return rc;
    int rows = PQntuples(r);
    char key[TG_PAGE_KEY_MAX] = "";
    for (int i = 0; i < rows; i++) {
        if ((size_t)i == page->limit) { /* the one past the page: there is more */
            end->has_more = 1;
            memcpy(end->next, key, sizeof(key));
            break;
        }
        tg_outbox_row_t o;
        read_row(r, i, &o);
        snprintf(key, sizeof(key), "%lld", (long long)o.id);
        if (cb(&o, arg) != 0)
            break;
    }
    PQclear(r);
    return 0;
}

int tg_pg_outbox_counts(tg_store_t *store, tg_outbox_counts_t *out, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    memset(out, 0, sizeof(*out));
    PGresult *r;
    int rc = tg_pg_query(st,
                         "SELECT COUNT(*) FILTER (WHERE state = 'pending'), COUNT(*) FILTER (WHERE state = 'done'),"
                         " COUNT(*) FILTER (WHERE state = 'failed') FROM stripe_outbox",
                         NULL, &r, err, "counting Stripe calls");
    if (rc != 0)
        return rc;
    out->pending = tg_pg_u64(r, 0, 0);
    out->done = tg_pg_u64(r, 0, 1);
    out->failed = tg_pg_u64(r, 0, 2);
    PQclear(r);
    return 0;
}
