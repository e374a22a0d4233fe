/* store_pg_customers.c - customers, API keys, portal logins and sessions, sign-up trials and
 * plan-change history in PostgreSQL (store.h). The SQLite backend (store_sqlite_customers.c) is
 * the reference: same results, same error codes, same orders.
 *
 * Three things differ from SQLite and shape the statements here:
 * - A failed statement aborts the caller's whole transaction in PostgreSQL, where SQLite only
 *   fails the statement. An insert that may meet a uniqueness conflict is therefore an
 *   INSERT ... ON CONFLICT DO NOTHING whose result also says which conflict stopped it, in one
 *   round trip, so that TG_EEXIST leaves the caller's transaction usable, as in SQLite.
 * - Emails are unique whatever their case by a unique index on lower(email)
 *   (customers_email_lower, migrations_pg.c), SQLite's COLLATE NOCASE: lookups compare lower().
 * - Text orders by the database's collation, which need not be bytewise (en_US sorts "cus_B"
 *   after "cus_a"); ids are compared and sorted COLLATE "C", SQLite's BINARY, so that lists
 *   come in the same order on both backends whatever locale the database was created with.
 *
 * Whole-table lists (customer_list, key_list) are read in keyset pages of LIST_CHUNK rows: a
 * PGresult holds every row of a query in memory, and warming the gateway's directory with a
 * million customers in one result would cost hundreds of megabytes. Unlike SQLite's single
 * statement, the pages are not one snapshot: a row written during the walk may or may not be
 * seen (the cluster's change notifications and periodic resync cover the gateway's copy). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_pg_int.h"

#define LIST_CHUNK 500

/* ---- row readers (shared with store_pg_lists.c) ---- */

void tg_pg_read_customer(const PGresult *res, int row, tg_customer_t *c)
{
    memset(c, 0, sizeof(*c));
    tg_pg_text(res, row, 0, c->id, sizeof(c->id));
    tg_pg_text(res, row, 1, c->email, sizeof(c->email));
    tg_pg_text(res, row, 2, c->name, sizeof(c->name));
    tg_pg_text(res, row, 3, c->plan_id, sizeof(c->plan_id));
    tg_pg_text(res, row, 4, c->status, sizeof(c->status));
    c->created_at = tg_pg_i64(res, row, 5);
    c->anchor_at = tg_pg_i64(res, row, 6);
    c->trial_end = tg_pg_i64(res, row, 7);
    tg_pg_text(res, row, 8, c->pending_plan_id, sizeof(c->pending_plan_id));
    c->pending_at = tg_pg_i64(res, row, 9);
    c->cancel_at = tg_pg_i64(res, row, 10);
    c->email_confirmed_at = tg_pg_i64(res, row, 11);
}

void tg_pg_read_key(const PGresult *res, int row, tg_key_t *k)
{
    memset(k, 0, sizeof(*k));
    tg_pg_text(res, row, 0, k->id, sizeof(k->id));
    tg_pg_text(res, row, 1, k->customer_id, sizeof(k->customer_id));
    tg_pg_bytea(res, row, 2, k->hash, sizeof(k->hash)); /* another length reads as zeros, as in SQLite */
    tg_pg_text(res, row, 3, k->prefix, sizeof(k->prefix));
    tg_pg_text(res, row, 4, k->name, sizeof(k->name));
    k->created_at = tg_pg_i64(res, row, 5);
    k->expires_at = tg_pg_i64(res, row, 6);
    k->revoked_at = tg_pg_i64(res, row, 7);
    k->last_used_at = tg_pg_i64(res, row, 8);
}

/* ---- customers ---- */

static void param_customer(tg_pg_params_t *p, const tg_customer_t *c)
{
    tg_pg_param_text(p, c->id);
    tg_pg_param_text(p, c->email);
    tg_pg_param_text(p, c->name);
    tg_pg_param_text(p, c->plan_id);
    tg_pg_param_text(p, c->status);
    tg_pg_param_i64(p, c->created_at);
    tg_pg_param_i64(p, c->anchor_at);
    tg_pg_param_i64(p, c->trial_end);
    tg_pg_param_text(p, c->pending_plan_id);
    tg_pg_param_i64(p, c->pending_at);
    tg_pg_param_i64(p, c->cancel_at);
    tg_pg_param_i64(p, c->email_confirmed_at);
}

/* Runs a statement answering one row of integers (the counts of the conflict-aware writes). */
static int query_row(tg_pg_t *st, const char *sql, const tg_pg_params_t *p, PGresult **res, tg_err_t *err,
                     const char *doing)
{
    int rc = tg_pg_query(st, sql, p, res, err, doing);
    if (rc == 0 && PQntuples(*res) != 1) {
        PQclear(*res);
        *res = NULL;
        rc = tg_errf(err, TG_ESTORE, "%s: the statement answered no row", doing);
    }
    return rc;
}

int tg_pg_customer_insert(tg_store_t *store, const tg_customer_t *c, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    param_customer(&p, c);
    PGresult *r;
    /* The CTE's insert is invisible to the outer SELECT (one snapshot): EXISTS sees whether the
     * email was there before, which tells an email conflict from an id one (the email is named
     * when both are taken, as SQLite does). */
    int rc = query_row(st,
                       "WITH ins AS (INSERT INTO customers(" TG_PG_CUSTOMER_COLS ")"
                       " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING RETURNING 1),"
                       /* its row of the closer's schedule (migration 31): next period end not known */
                       " sched AS (INSERT INTO customer_schedule(customer_id) SELECT $1 FROM ins)"
                       " SELECT (SELECT COUNT(*) FROM ins),"
                       " EXISTS (SELECT 1 FROM customers WHERE lower(email) = lower($2))::int",
                       &p, &r, err, "storing a customer");
    if (rc == TG_EEXIST) /* a conflict with a row another transaction had not committed yet */
        return tg_errf(err, TG_EEXIST, "a customer with the id %s or the email %s exists already", c->id, c->email);
    if (rc != 0)
        return rc;
    int64_t inserted = tg_pg_i64(r, 0, 0), email_taken = tg_pg_i64(r, 0, 1);
    PQclear(r);
    if (inserted == 1)
        return 0;
    if (!email_taken) {
        /* The conflict may be with a row committed after the statement's snapshot was taken (a
         * signup on another node that ON CONFLICT waited for): a new statement sees it. */
        tg_pg_params_t q = {0};
        tg_pg_param_text(&q, c->email);
        if ((rc = query_row(st, "SELECT EXISTS (SELECT 1 FROM customers WHERE lower(email) = lower($1))::int", &q, &r,
                            err, "storing a customer")) != 0)
            return rc;
        email_taken = tg_pg_i64(r, 0, 0);
        PQclear(r);
    }
    if (email_taken)
        return tg_errf(err, TG_EEXIST, "a customer with the email %s exists already", c->email);
    return tg_errf(err, TG_EEXIST, "a customer with the id %s exists already", c->id);
}

/* Runs a one-row SELECT keyed by $1 = id: read fills out from the row; TG_ENOTFOUND names what. */
static int get_by_id(tg_pg_t *st, const char *sql, const char *id, void (*read)(const PGresult *, int, void *),
                     void *out, const char *what, tg_err_t *err)
{
    char doing[64];
    snprintf(doing, sizeof(doing), "reading a %s", what);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, id);
    PGresult *r;
    int rc = tg_pg_query(st, sql, &p, &r, err, doing);
    if (rc != 0)
        return rc;
    if (PQntuples(r) > 0)
        read(r, 0, out);
    else
        rc = tg_errf(err, TG_ENOTFOUND, "no %s %s", what, id);
    PQclear(r);
    return rc;
}

static void read_customer_row(const PGresult *res, int row, void *out)
{
    tg_pg_read_customer(res, row, out);
}

int tg_pg_customer_get(tg_store_t *store, const char *id, tg_customer_t *out, tg_err_t *err)
{
    return get_by_id(tg_pg(store), "SELECT " TG_PG_CUSTOMER_COLS " FROM customers WHERE id = $1", id, read_customer_row,
                     out, "customer", err);
}

int tg_pg_customer_update(tg_store_t *store, const tg_customer_t *c, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    param_customer(&p, c);
    p.n--; /* email_confirmed_at: written by customer_confirm_email only */
    PGresult *r;
    /* An email another customer has is checked in the statement rather than left to the unique
     * index, whose violation would abort the caller's transaction (SQLite's only fails the
     * statement). A concurrent writer of the same email still meets the index: TG_EEXIST too. */
    int rc = query_row(st,
                       "WITH clash AS (SELECT 1 FROM customers WHERE lower(email) = lower($2) AND id <> $1),"
                       " upd AS (UPDATE customers SET email = $2, name = $3, plan_id = $4, status = $5,"
                       " created_at = $6, anchor_at = $7, trial_end = $8, pending_plan_id = $9, pending_at = $10,"
                       " cancel_at = $11"
                       /* what decides when periods end resets the closer's schedule: the trigger
                        * customers_schedule_reset (migration 31) */
                       " WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM clash) RETURNING 1)"
                       " SELECT (SELECT COUNT(*) FROM upd), EXISTS (SELECT 1 FROM clash)::int,"
                       " EXISTS (SELECT 1 FROM customers WHERE id = $1)::int",
                       &p, &r, err, "updating a customer");
    if (rc == TG_EEXIST)
        return tg_errf(err, TG_EEXIST, "a customer with the email %s exists already", c->email);
    if (rc != 0)
        return rc;
    int64_t updated = tg_pg_i64(r, 0, 0), clash = tg_pg_i64(r, 0, 1), exists = tg_pg_i64(r, 0, 2);
    PQclear(r);
    if (updated == 1)
        return 0;
    if (clash && exists)
        return tg_errf(err, TG_EEXIST, "a customer with the email %s exists already", c->email);
    return tg_errf(err, TG_ENOTFOUND, "no customer %s", c->id);
}

/* A whole-table walk in keyset pages (see the top of the file). The first page's statement has
 * the parameters `filter`, if any, then the LIMIT; the next pages' add the last row's sort key
 * (created_at, id). kind 0 reads customers, 1 keys. */
typedef struct {
    const char *first, *next;
    const char *filter; /* $1 of both statements, or NULL */
    int kind;
    void *cb, *arg;
    const char *doing;
} walk_t;

static int walk(tg_pg_t *st, const walk_t *w, tg_err_t *err)
{
    int64_t last_num = 0;
    char last_id[TG_ID_MAX] = "";
    for (int page = 0;; page++) {
        tg_pg_params_t p = {0};
        if (w->filter != NULL)
            tg_pg_param_text(&p, w->filter);
        tg_pg_param_i64(&p, LIST_CHUNK);
        if (page > 0) {
            tg_pg_param_i64(&p, last_num);
            tg_pg_param_text(&p, last_id);
        }
        PGresult *r;
        int rc = tg_pg_query(st, page == 0 ? w->first : w->next, &p, &r, err, w->doing);
        if (rc != 0)
            return rc;
        int n = PQntuples(r), stop = 0;
        for (int i = 0; i < n && !stop; i++) {
            if (w->kind == 0) {
                tg_customer_t c;
                tg_pg_read_customer(r, i, &c);
                last_num = c.created_at;
                memcpy(last_id, c.id, sizeof(last_id));
                stop = ((tg_customer_cb)w->cb)(&c, w->arg);
            } else {
                tg_key_t k;
                tg_pg_read_key(r, i, &k);
                last_num = k.created_at;
                memcpy(last_id, k.id, sizeof(last_id));
                stop = ((tg_key_cb)w->cb)(&k, w->arg);
            }
        }
        PQclear(r);
        if (stop || n < LIST_CHUNK)
            return 0;
    }
}

int tg_pg_customer_list(tg_store_t *store, tg_customer_cb cb, void *arg, tg_err_t *err)
{
    /* newest first, ties by id; the next page starts after (created_at, id) in that order */
    walk_t w = {"SELECT " TG_PG_CUSTOMER_COLS " FROM customers ORDER BY created_at DESC, id COLLATE \"C\" LIMIT $1",
                "SELECT " TG_PG_CUSTOMER_COLS " FROM customers WHERE created_at <= $2"
                " AND (created_at < $2 OR id COLLATE \"C\" > $3) ORDER BY created_at DESC, id COLLATE \"C\" LIMIT $1",
                NULL,
                0,
                (void *)cb,
                arg,
                "listing customers"};
    return walk(tg_pg(store), &w, err);
}

/* ---- keys ---- */

int tg_pg_key_insert(tg_store_t *store, const tg_key_t *k, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, k->id);
    tg_pg_param_text(&p, k->customer_id);
    tg_pg_param_bytea(&p, k->hash, sizeof(k->hash));
    tg_pg_param_text(&p, k->prefix);
    tg_pg_param_text(&p, k->name);
    tg_pg_param_i64(&p, k->created_at);
    tg_pg_param_i64(&p, k->expires_at);
    tg_pg_param_i64(&p, k->revoked_at);
    tg_pg_param_i64(&p, k->last_used_at);
    PGresult *r;
    /* A missing customer is found by the statement (SQLite's foreign key error is TG_ENOTFOUND
     * there); a duplicate id or hash by ON CONFLICT. Neither aborts the caller's transaction. */
    int rc = query_row(st,
                       "WITH ins AS (INSERT INTO api_keys(" TG_PG_KEY_COLS ")"
                       " SELECT $1::text, $2::text, $3::bytea, $4::text, $5::text, $6::bigint, $7::bigint,"
                       " $8::bigint, $9::bigint WHERE EXISTS (SELECT 1 FROM customers WHERE id = $2::text)"
                       " ON CONFLICT DO NOTHING RETURNING 1)"
                       " SELECT (SELECT COUNT(*) FROM ins), EXISTS (SELECT 1 FROM customers WHERE id = $2::text)::int",
                       &p, &r, err, "storing a key");
    if (rc == TG_EEXIST)
        return tg_errf(err, TG_EEXIST, "storing key %s: a key with this id or secret exists already", k->id);
    if (rc != 0)
        return rc;
    int64_t inserted = tg_pg_i64(r, 0, 0), customer = tg_pg_i64(r, 0, 1);
    PQclear(r);
    if (inserted == 1)
        return 0;
    if (!customer)
        return tg_errf(err, TG_ENOTFOUND, "storing key %s: no customer %s", k->id, k->customer_id);
    return tg_errf(err, TG_EEXIST, "storing key %s: a key with this id or secret exists already", k->id);
}

static void read_key_row(const PGresult *res, int row, void *out)
{
    tg_pg_read_key(res, row, out);
}

int tg_pg_key_get(tg_store_t *store, const char *id, tg_key_t *out, tg_err_t *err)
{
    return get_by_id(tg_pg(store), "SELECT " TG_PG_KEY_COLS " FROM api_keys WHERE id = $1", id, read_key_row, out,
                     "key", err);
}

int tg_pg_key_list(tg_store_t *store, const char *customer_id, tg_key_cb cb, void *arg, tg_err_t *err)
{
    /* a customer's keys newest first; everyone's (warming the directory) oldest first */
    walk_t one = {"SELECT " TG_PG_KEY_COLS " FROM api_keys WHERE customer_id = $1"
                  " ORDER BY created_at DESC, id COLLATE \"C\" LIMIT $2",
                  "SELECT " TG_PG_KEY_COLS " FROM api_keys WHERE customer_id = $1 AND created_at <= $3"
                  " AND (created_at < $3 OR id COLLATE \"C\" > $4) ORDER BY created_at DESC, id COLLATE \"C\" LIMIT $2",
                  customer_id,
                  1,
                  (void *)cb,
                  arg,
                  "listing keys"};
    walk_t all = {"SELECT " TG_PG_KEY_COLS " FROM api_keys ORDER BY created_at, id COLLATE \"C\" LIMIT $1",
                  "SELECT " TG_PG_KEY_COLS " FROM api_keys WHERE created_at >= $2"
                  " AND (created_at > $2 OR id COLLATE \"C\" > $3) ORDER BY created_at, id COLLATE \"C\" LIMIT $1",
                  NULL,
                  1,
                  (void *)cb,
                  arg,
                  "listing keys"};
    return walk(tg_pg(store), customer_id != NULL ? &one : &all, err);
}

static int key_set(tg_pg_t *st, const char *sql, const char *id, int64_t v, tg_err_t *err, const char *doing)
{
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, v);
    tg_pg_param_text(&p, id);
    PGresult *r;
    int rc = tg_pg_query(st, sql, &p, &r, err, doing);
    if (rc != 0)
        return rc;
    if (tg_pg_affected(r) == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "no key %s", id);
    PQclear(r);
    return rc;
}

int tg_pg_key_set_revoked(tg_store_t *store, const char *id, int64_t revoked_at, tg_err_t *err)
{
    return key_set(tg_pg(store), "UPDATE api_keys SET revoked_at = $1 WHERE id = $2", id, revoked_at, err,
                   "revoking a key");
}

int tg_pg_key_set_expires(tg_store_t *store, const char *id, int64_t expires_at, tg_err_t *err)
{
    return key_set(tg_pg(store), "UPDATE api_keys SET expires_at = $1 WHERE id = $2", id, expires_at, err,
                   "setting a key's expiry");
}

int tg_pg_key_touch(tg_store_t *store, const char *id, int64_t last_used_at, tg_err_t *err)
{
    /* never moves back: several nodes touch the same key in any order */
    return key_set(tg_pg(store), "UPDATE api_keys SET last_used_at = GREATEST(last_used_at, $1) WHERE id = $2", id,
                   last_used_at, err, "recording a key's last use");
}

/* ---- portal logins ---- */

int tg_pg_customer_set_password(tg_store_t *store, const char *id, const char *password_hash, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, password_hash);
    tg_pg_param_text(&p, id);
    PGresult *r;
    int rc =
        tg_pg_query(st, "UPDATE customers SET password_hash = $1 WHERE id = $2", &p, &r, err, "storing a password");
    if (rc != 0)
        return rc;
    if (tg_pg_affected(r) == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "no customer %s", id);
    PQclear(r);
    return rc;
}

int tg_pg_customer_by_email(tg_store_t *store, const char *email, tg_customer_t *out, char *password_hash, size_t cap,
                            tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, email);
    PGresult *r;
    /* lower(email) = lower($1): the customers_email_lower index, SQLite's COLLATE NOCASE */
    int rc =
        tg_pg_query(st, "SELECT " TG_PG_CUSTOMER_COLS ", password_hash FROM customers WHERE lower(email) = lower($1)",
                    &p, &r, err, "finding a customer by email");
    if (rc != 0)
        return rc;
    if (PQntuples(r) > 0) {
        tg_pg_read_customer(r, 0, out);
        tg_pg_text(r, 0, 12, password_hash, cap);
    } else
        rc = tg_errf(err, TG_ENOTFOUND, "no customer with email %s", email);
    PQclear(r);
    return rc;
}

int tg_pg_session_insert(tg_store_t *store, const tg_session_t *ses, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_bytea(&p, ses->token_hash, sizeof(ses->token_hash));
    tg_pg_param_text(&p, ses->customer_id);
    tg_pg_param_text(&p, ses->csrf_token);
    tg_pg_param_i64(&p, ses->created_at);
    tg_pg_param_i64(&p, ses->expires_at);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "INSERT INTO sessions(token_hash, customer_id, csrf_token, created_at, expires_at)"
                         " VALUES ($1::bytea, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                         &p, &r, err, "storing a session");
    if (rc != 0)
        return rc;
    if (tg_pg_affected(r) == 0)
        rc = tg_errf(err, TG_EEXIST, "storing a session: a session with this token exists already");
    PQclear(r);
    return rc;
}

/* One session by its token's hash from the query sql (customer_id, csrf_token, created_at,
 * expires_at; the hash as $1). */
static int read_session(tg_pg_t *st, const char *sql, const uint8_t token_hash[32], tg_session_t *out, tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_bytea(&p, token_hash, 32);
    PGresult *r;
    int rc = tg_pg_query(st, sql, &p, &r, err, "reading a session");
    if (rc != 0)
        return rc;
    if (PQntuples(r) > 0) {
        memset(out, 0, sizeof(*out));
        memcpy(out->token_hash, token_hash, 32);
        tg_pg_text(r, 0, 0, out->customer_id, sizeof(out->customer_id));
        tg_pg_text(r, 0, 1, out->csrf_token, sizeof(out->csrf_token));
        out->created_at = tg_pg_i64(r, 0, 2);
        out->expires_at = tg_pg_i64(r, 0, 3);
    } else
        rc = TG_ENOTFOUND; /* no message, as in SQLite: an unknown cookie is not an error to log */
    PQclear(r);
    return rc;
}

int tg_pg_session_get(tg_store_t *store, const uint8_t token_hash[32], tg_session_t *out, tg_err_t *err)
{
    return read_session(tg_pg(store),
                        "SELECT customer_id, csrf_token, created_at, expires_at FROM sessions WHERE token_hash = $1::bytea",
                        token_hash, out, err);
}

int tg_pg_session_delete(tg_store_t *store, const uint8_t token_hash[32], tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_bytea(&p, token_hash, 32);
    return tg_pg_query(tg_pg(store), "DELETE FROM sessions WHERE token_hash = $1::bytea", &p, NULL, err,
                       "deleting a session");
}

int tg_pg_session_delete_customer(tg_store_t *store, const char *customer_id, uint64_t *count, tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    PGresult *r;
    int rc = tg_pg_query(tg_pg(store), "DELETE FROM sessions WHERE customer_id = $1", &p, &r, err, "deleting sessions");
    if (rc != 0)
        return rc;
    if (count != NULL)
        *count = tg_pg_affected(r);
    PQclear(r);
    return 0;
}

int tg_pg_owner_session_insert(tg_store_t *store, const tg_session_t *ses, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t prune = {0};
    tg_pg_param_i64(&prune, ses->created_at);
    int rc = tg_pg_query(st, "DELETE FROM owner_sessions WHERE expires_at <= $1", &prune, NULL, err,
                         "storing an owner session");
    if (rc != 0)
        return rc;
    tg_pg_params_t p = {0};
    tg_pg_param_bytea(&p, ses->token_hash, sizeof(ses->token_hash));
    tg_pg_param_text(&p, ses->csrf_token);
    tg_pg_param_i64(&p, ses->created_at);
    tg_pg_param_i64(&p, ses->expires_at);
    return tg_pg_query(st,
                       "INSERT INTO owner_sessions(token_hash, csrf_token, created_at, expires_at)"
                       " VALUES ($1::bytea, $2, $3, $4)",
                       &p, NULL, err, "storing an owner session");
}

int tg_pg_owner_session_get(tg_store_t *store, const uint8_t token_hash[32], tg_session_t *out, tg_err_t *err)
{
    return read_session(tg_pg(store),
                        "SELECT '', csrf_token, created_at, expires_at FROM owner_sessions WHERE token_hash = $1::bytea",
                        token_hash, out, err);
}

int tg_pg_owner_session_delete(tg_store_t *store, const uint8_t token_hash[32], tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_bytea(&p, token_hash, 32);
    return tg_pg_query(tg_pg(store), "DELETE FROM owner_sessions WHERE token_hash = $1::bytea", &p, NULL, err,
                       "deleting an owner session");
}

/* ---- sign-up trials ---- */

int tg_pg_trial_used(tg_store_t *store, const char *email_norm, const char *address, int64_t address_since,
                     int *by_email, int *by_address, tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, email_norm);
    tg_pg_param_text(&p, address);
    tg_pg_param_i64(&p, address_since);
    PGresult *r;
    /* ::int: a boolean reads as 't' / 'f' in text format */
    int rc = query_row(tg_pg(store),
                       "SELECT EXISTS (SELECT 1 FROM signup_trials WHERE email_norm = $1)::int,"
                       " EXISTS (SELECT 1 FROM signup_trials WHERE address = $2 AND at >= $3)::int",
                       &p, &r, err, "reading trials");
    if (rc != 0)
        return rc;
    *by_email = (int)tg_pg_i64(r, 0, 0);
    *by_address = (int)tg_pg_i64(r, 0, 1);
    PQclear(r);
    return 0;
}

int tg_pg_trial_record(tg_store_t *store, const char *email_norm, const char *address, const char *customer_id,
                       int64_t at, tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, email_norm);
    tg_pg_param_text(&p, address);
    tg_pg_param_text(&p, customer_id);
    tg_pg_param_i64(&p, at);
    return tg_pg_query(tg_pg(store),
                       "INSERT INTO signup_trials(email_norm, address, customer_id, at) VALUES ($1, $2, $3, $4)", &p,
                       NULL, err, "recording a trial");
}

/* ---- plan change history ---- */

int tg_pg_plan_change_add(tg_store_t *store, const char *customer_id, const char *from_plan, const char *to_plan,
                          const char *kind, int64_t at, tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    tg_pg_param_text(&p, from_plan);
    tg_pg_param_text(&p, to_plan);
    tg_pg_param_text(&p, kind);
    tg_pg_param_i64(&p, at);
    return tg_pg_query(
        tg_pg(store), "INSERT INTO plan_changes(customer_id, from_plan, to_plan, kind, at) VALUES ($1, $2, $3, $4, $5)",
        &p, NULL, err, "recording a plan change");
}

int tg_pg_plan_change_count(tg_store_t *store, const char *kind, int64_t since, int64_t until, uint64_t *count,
                            tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, kind);
    tg_pg_param_i64(&p, since);
    tg_pg_param_i64(&p, until);
    PGresult *r;
    int rc = query_row(tg_pg(store), "SELECT COUNT(*) FROM plan_changes WHERE kind = $1 AND at >= $2 AND at <= $3", &p,
                       &r, err, "counting plan changes");
    if (rc != 0)
        return rc;
    *count = tg_pg_u64(r, 0, 0);
    PQclear(r);
    return 0;
}
