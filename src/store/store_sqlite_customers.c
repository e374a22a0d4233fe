/* store_sqlite_customers.c - customers, API keys, portal logins and sessions, sign-up trials and
 * plan-change history in SQLite (store.h). */
#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store_sqlite_int.h"
#include "util/clock.h"
#include "util/pack.h"

/* ---- customers ---- */

void tg_sqlite_read_customer(sqlite3_stmt *s, tg_customer_t *c)
{
    memset(c, 0, sizeof(*c));
    tg_sqlite_text(s, 0, c->id, sizeof(c->id));
    tg_sqlite_text(s, 1, c->email, sizeof(c->email));
    tg_sqlite_text(s, 2, c->name, sizeof(c->name));
    tg_sqlite_text(s, 3, c->plan_id, sizeof(c->plan_id));
    tg_sqlite_text(s, 4, c->status, sizeof(c->status));
    c->created_at = sqlite3_column_int64(s, 5);
    c->anchor_at = sqlite3_column_int64(s, 6);
    c->trial_end = sqlite3_column_int64(s, 7);
    tg_sqlite_text(s, 8, c->pending_plan_id, sizeof(c->pending_plan_id));
    c->pending_at = sqlite3_column_int64(s, 9);
    c->cancel_at = sqlite3_column_int64(s, 10);
    c->email_confirmed_at = sqlite3_column_int64(s, 11);
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
    sqlite3_bind_int64(s, 12, c->email_confirmed_at);
}

int tg_sqlite_customer_insert(tg_store_t *store, const tg_customer_t *c, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "INSERT INTO customers(" CUSTOMER_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", &s, err,
                               "storing a customer");
    if (rc != 0)
        return rc;
    bind_customer(s, c);
    if (sqlite3_step(s) != SQLITE_DONE) {
        rc = tg_sqlite_error(st, err, "storing a customer");
        if (rc == TG_EEXIST && strstr(sqlite3_errmsg(st->db), "customers.email") != NULL)
            rc = tg_errf(err, TG_EEXIST, "a customer with the email %s exists already", c->email);
        else if (rc == TG_EEXIST)
            rc = tg_errf(err, TG_EEXIST, "a customer with the id %s exists already", c->id);
    }
    sqlite3_finalize(s);
    return rc;
}

/* Runs a one-row SELECT keyed by id: read fills out from the row; TG_ENOTFOUND names what. */
int tg_sqlite_get_by_id(tg_sqlite_t *st, const char *sql, const char *id, void (*read)(sqlite3_stmt *, void *),
                        void *out, const char *what, tg_err_t *err)
{
    sqlite3_stmt *s;
    char doing[64];
    snprintf(doing, sizeof(doing), "reading a %s", what);
    int rc = tg_sqlite_prepare(st, sql, &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        read(s, out);
    else if (step == SQLITE_DONE)
        rc = tg_errf(err, TG_ENOTFOUND, "no %s %s", what, id);
    else
        rc = tg_sqlite_error(st, err, doing);
    sqlite3_finalize(s);
    return rc;
}

static void read_customer_row(sqlite3_stmt *s, void *out)
{
    tg_sqlite_read_customer(s, out);
}

int tg_sqlite_customer_get(tg_store_t *store, const char *id, tg_customer_t *out, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    return tg_sqlite_get_by_id(st, "SELECT " CUSTOMER_COLS " FROM customers WHERE id = ?", id, read_customer_row, out,
                               "customer", err);
}

int tg_sqlite_customer_update(tg_store_t *store, const tg_customer_t *c, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    /* A change of what decides when the customer's periods end or what the closer does at their
     * end (anchor, plan, status, scheduled change, cancellation) resets its next period end to 0
     * ("not known"), so that the period closer looks at the customer again (store.h,
     * customers_due): the trigger customers_schedule_reset does, in this statement (migration
     * 31). */
    int rc =
        tg_sqlite_prepare(st,
                          "UPDATE customers SET email = ?2, name = ?3, plan_id = ?4, status = ?5, created_at = ?6,"
                          " anchor_at = ?7, trial_end = ?8, pending_plan_id = ?9, pending_at = ?10, cancel_at = ?11"
                          " WHERE id = ?1",
                          &s, err, "updating a customer");
    if (rc != 0)
        return rc;
    bind_customer(s, c);
    if (sqlite3_step(s) != SQLITE_DONE) {
        rc = tg_sqlite_error(st, err, "updating a customer");
        if (rc == TG_EEXIST)
            rc = tg_errf(err, TG_EEXIST, "a customer with the email %s exists already", c->email);
    } else if (sqlite3_changes(st->db) == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "no customer %s", c->id);
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_customer_list(tg_store_t *store, tg_customer_cb cb, void *arg, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "SELECT " CUSTOMER_COLS " FROM customers ORDER BY created_at DESC, id", &s, err,
                               "listing customers");
    if (rc != 0)
        return rc;
    int step;
    tg_customer_t c;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        tg_sqlite_read_customer(s, &c);
        if (cb(&c, arg) != 0)
            break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "listing customers");
    sqlite3_finalize(s);
    return rc;
}

/* ---- keys ---- */

void tg_sqlite_read_key(sqlite3_stmt *s, tg_key_t *k)
{
    memset(k, 0, sizeof(*k));
    tg_sqlite_text(s, 0, k->id, sizeof(k->id));
    tg_sqlite_text(s, 1, k->customer_id, sizeof(k->customer_id));
    if (sqlite3_column_bytes(s, 2) == (int)sizeof(k->hash))
        memcpy(k->hash, sqlite3_column_blob(s, 2), sizeof(k->hash));
    tg_sqlite_text(s, 3, k->prefix, sizeof(k->prefix));
    tg_sqlite_text(s, 4, k->name, sizeof(k->name));
    k->created_at = sqlite3_column_int64(s, 5);
    k->expires_at = sqlite3_column_int64(s, 6);
    k->revoked_at = sqlite3_column_int64(s, 7);
    k->last_used_at = sqlite3_column_int64(s, 8);
}

int tg_sqlite_key_insert(tg_store_t *store, const tg_key_t *k, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "INSERT INTO api_keys(" KEY_COLS ") VALUES (?,?,?,?,?,?,?,?,?)", &s, err,
                               "storing a key");
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
        rc = tg_sqlite_error(st, err, "storing a key");
        if (sqlite3_extended_errcode(st->db) == SQLITE_CONSTRAINT_FOREIGNKEY)
            rc = tg_errf(err, TG_ENOTFOUND, "storing key %s: no customer %s", k->id, k->customer_id);
    }
    sqlite3_finalize(s);
    return rc;
}

static void read_key_row(sqlite3_stmt *s, void *out)
{
    tg_sqlite_read_key(s, out);
}

int tg_sqlite_key_get(tg_store_t *store, const char *id, tg_key_t *out, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    return tg_sqlite_get_by_id(st, "SELECT " KEY_COLS " FROM api_keys WHERE id = ?", id, read_key_row, out, "key", err);
}

int tg_sqlite_key_list(tg_store_t *store, const char *customer_id, tg_key_cb cb, void *arg, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               customer_id != NULL ? "SELECT " KEY_COLS
                                                     " FROM api_keys WHERE customer_id = ? ORDER BY created_at DESC, id"
                                                   : "SELECT " KEY_COLS " FROM api_keys ORDER BY created_at, id",
                               &s, err, "listing keys");
    if (rc != 0)
        return rc;
    if (customer_id != NULL)
        sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    int step;
    tg_key_t k;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        tg_sqlite_read_key(s, &k);
        if (cb(&k, arg) != 0)
            break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "listing keys");
    sqlite3_finalize(s);
    return rc;
}

static int key_set(tg_sqlite_t *st, const char *sql, const char *id, int64_t v, tg_err_t *err, const char *doing)
{
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, sql, &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, v);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, doing);
    else if (sqlite3_changes(st->db) == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "no key %s", id);
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_key_set_revoked(tg_store_t *store, const char *id, int64_t revoked_at, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    return key_set(st, "UPDATE api_keys SET revoked_at = ? WHERE id = ?", id, revoked_at, err, "revoking a key");
}

int tg_sqlite_key_set_expires(tg_store_t *store, const char *id, int64_t expires_at, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    return key_set(st, "UPDATE api_keys SET expires_at = ? WHERE id = ?", id, expires_at, err,
                   "setting a key's expiry");
}

int tg_sqlite_key_touch(tg_store_t *store, const char *id, int64_t last_used_at, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    return key_set(st, "UPDATE api_keys SET last_used_at = MAX(last_used_at, ?) WHERE id = ?", id, last_used_at, err,
                   "recording a key's last use");
}

/* ---- portal logins ---- */

int tg_sqlite_customer_set_password(tg_store_t *store, const char *id, const char *password_hash, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc =
        tg_sqlite_prepare(st, "UPDATE customers SET password_hash = ? WHERE id = ?", &s, err, "storing a password");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, password_hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "storing a password");
    else if (sqlite3_changes(st->db) == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "no customer %s", id);
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_customer_by_email(tg_store_t *store, const char *email, tg_customer_t *out, char *password_hash,
                                size_t cap, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "SELECT " CUSTOMER_COLS ", password_hash FROM customers WHERE email = ?", &s, err,
                               "finding a customer by email");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, email, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
        tg_sqlite_read_customer(s, out);
        tg_sqlite_text(s, 12, password_hash, cap);
    } else if (step == SQLITE_DONE)
        rc = tg_errf(err, TG_ENOTFOUND, "no customer with email %s", email);
    else
        rc = tg_sqlite_error(st, err, "finding a customer by email");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_session_insert(tg_store_t *store, const tg_session_t *ses, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
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
        rc = tg_sqlite_error(st, err, "storing a session");
    sqlite3_finalize(s);
    return rc;
}

/* One session by its token's hash from the query sql (customer_id, csrf_token, created_at,
 * expires_at; the hash as parameter 1). */
static int read_session(tg_sqlite_t *st, const char *sql, const uint8_t token_hash[32], tg_session_t *out,
                        tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, sql, &s, err, "reading a session");
    if (rc != 0)
        return rc;
    sqlite3_bind_blob(s, 1, token_hash, 32, SQLITE_STATIC);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
        memset(out, 0, sizeof(*out));
        memcpy(out->token_hash, token_hash, 32);
        tg_sqlite_text(s, 0, out->customer_id, sizeof(out->customer_id));
        tg_sqlite_text(s, 1, out->csrf_token, sizeof(out->csrf_token));
        out->created_at = sqlite3_column_int64(s, 2);
        out->expires_at = sqlite3_column_int64(s, 3);
    } else if (step == SQLITE_DONE)
        rc = TG_ENOTFOUND;
    else
        rc = tg_sqlite_error(st, err, "reading a session");
    sqlite3_finalize(s);
    return rc;
}

/* Runs sql with the token's hash as its one parameter (a DELETE). */
static int by_token_hash(tg_sqlite_t *st, const char *sql, const uint8_t token_hash[32], tg_err_t *err,
                         const char *doing)
{
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, sql, &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_blob(s, 1, token_hash, 32, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, doing);
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_session_get(tg_store_t *store, const uint8_t token_hash[32], tg_session_t *out, tg_err_t *err)
{
    return read_session(tg_sqlite(store),
                        "SELECT customer_id, csrf_token, created_at, expires_at FROM sessions WHERE token_hash = ?",
                        token_hash, out, err);
}

int tg_sqlite_session_delete(tg_store_t *store, const uint8_t token_hash[32], tg_err_t *err)
{
    return by_token_hash(tg_sqlite(store), "DELETE FROM sessions WHERE token_hash = ?", token_hash, err,
                         "deleting a session");
}

int tg_sqlite_session_delete_customer(tg_store_t *store, const char *customer_id, uint64_t *count, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "DELETE FROM sessions WHERE customer_id = ?", &s, err, "deleting sessions");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "deleting sessions");
    else if (count != NULL)
        *count = (uint64_t)sqlite3_changes(st->db);
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_owner_session_insert(tg_store_t *store, const tg_session_t *ses, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "storing an owner session";
    int rc = tg_sqlite_prepare(st, "DELETE FROM owner_sessions WHERE expires_at <= ?", &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, ses->created_at);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, doing);
    sqlite3_finalize(s);
    if (rc != 0)
        return rc;
    rc = tg_sqlite_prepare(st, "INSERT INTO owner_sessions(token_hash, csrf_token, created_at, expires_at) VALUES (?,?,?,?)",
                           &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_blob(s, 1, ses->token_hash, sizeof(ses->token_hash), SQLITE_STATIC);
    sqlite3_bind_text(s, 2, ses->csrf_token, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, ses->created_at);
    sqlite3_bind_int64(s, 4, ses->expires_at);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, doing);
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_owner_session_get(tg_store_t *store, const uint8_t token_hash[32], tg_session_t *out, tg_err_t *err)
{
    return read_session(tg_sqlite(store),
                        "SELECT '', csrf_token, created_at, expires_at FROM owner_sessions WHERE token_hash = ?",
                        token_hash, out, err);
}

int tg_sqlite_owner_session_delete(tg_store_t *store, const uint8_t token_hash[32], tg_err_t *err)
{
    return by_token_hash(tg_sqlite(store), "DELETE FROM owner_sessions WHERE token_hash = ?", token_hash, err,
                         "deleting an owner session");
}

/* ---- sign-up trials ---- */

int tg_sqlite_trial_used(tg_store_t *store, const char *email_norm, const char *address, int64_t address_since,
                         int *by_email, int *by_address, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
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
        rc = tg_sqlite_error(st, err, "reading trials");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_trial_record(tg_store_t *store, const char *email_norm, const char *address, const char *customer_id,
                           int64_t at, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "INSERT INTO signup_trials(email_norm, address, customer_id, at) VALUES (?,?,?,?)",
                               &s, err, "recording a trial");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, email_norm, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, address, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, at);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "recording a trial");
    sqlite3_finalize(s);
    return rc;
}

/* ---- plan change history ---- */

int tg_sqlite_plan_change_add(tg_store_t *store, const char *customer_id, const char *from_plan, const char *to_plan,
                              const char *kind, int64_t at, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc =
        tg_sqlite_prepare(st, "INSERT INTO plan_changes(customer_id, from_plan, to_plan, kind, at) VALUES (?,?,?,?,?)",
                          &s, err, "recording a plan change");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, from_plan, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, to_plan, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, at);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "recording a plan change");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_plan_change_count(tg_store_t *store, const char *kind, int64_t since, int64_t until, uint64_t *count,
                                tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "SELECT COUNT(*) FROM plan_changes WHERE kind = ? AND at >= ? AND at <= ?", &s, err,
                               "counting plan changes");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, since);
    sqlite3_bind_int64(s, 3, until);
    if (sqlite3_step(s) == SQLITE_ROW)
        *count = (uint64_t)sqlite3_column_int64(s, 0);
    else
        rc = tg_sqlite_error(st, err, "counting plan changes");
    sqlite3_finalize(s);
    return rc;
}
