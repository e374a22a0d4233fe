/* store_sqlite_outbox.c - the SQLite backend of store_outbox.h: the stripe_outbox and
 * stripe_customers tables of migration 11. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_outbox.h"
#include "store/store_sqlite_int.h"

#define ROW_COLS                                                                                                       \
    "id, kind, customer_id, idempotency_key, method, path, state, attempts, next_attempt_at, last_error,"              \
    " response_id, created_at, updated_at"

static void read_row(sqlite3_stmt *s, tg_outbox_row_t *r)
{
    memset(r, 0, sizeof(*r));
    r->id = sqlite3_column_int64(s, 0);
    tg_sqlite_text(s, 1, r->kind, sizeof(r->kind));
    tg_sqlite_text(s, 2, r->customer_id, sizeof(r->customer_id));
    tg_sqlite_text(s, 3, r->idempotency_key, sizeof(r->idempotency_key));
    tg_sqlite_text(s, 4, r->method, sizeof(r->method));
    tg_sqlite_text(s, 5, r->path, sizeof(r->path));
    tg_sqlite_text(s, 6, r->state, sizeof(r->state));
    r->attempts = sqlite3_column_int64(s, 7);
    r->next_attempt_at_ms = sqlite3_column_int64(s, 8);
    tg_sqlite_text(s, 9, r->last_error, sizeof(r->last_error));
    tg_sqlite_text(s, 10, r->response_id, sizeof(r->response_id));
    r->created_at = sqlite3_column_int64(s, 11);
    r->updated_at = sqlite3_column_int64(s, 12);
}

static int fits(const char *s, size_t cap)
{
    return s != NULL && strnlen(s, cap) < cap;
}

int tg_sqlite_outbox_insert(tg_store_t *store, const tg_outbox_row_t *row, const char *params, size_t params_len,
                            int64_t now_ms, int64_t *id, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    if (!fits(row->kind, sizeof(row->kind)) || !fits(row->customer_id, sizeof(row->customer_id)) ||
        !fits(row->idempotency_key, sizeof(row->idempotency_key)) || !fits(row->method, sizeof(row->method)) ||
        !fits(row->path, sizeof(row->path)) || params_len > TG_OUTBOX_PARAMS_MAX)
        return tg_errf(err, TG_EINVAL, "an outbox row field is past its cap");
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "INSERT INTO stripe_outbox(kind, customer_id, idempotency_key, method, path, params,"
                               " state, attempts, next_attempt_at, created_at, updated_at)"
                               " VALUES (?,?,?,?,?,?,'pending',0,?,?,?)",
                               &s, err, "enqueuing a Stripe call");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, row->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, row->customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, row->idempotency_key, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, row->method, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, row->path, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, params != NULL ? params : "", (int)params_len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, now_ms);
    sqlite3_bind_int64(s, 8, now_ms / 1000);
    sqlite3_bind_int64(s, 9, now_ms / 1000);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "enqueuing a Stripe call");
    else if (id != NULL)
        *id = (int64_t)sqlite3_last_insert_rowid(sqlite3_db_handle(s));
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_outbox_due(tg_store_t *store, int64_t now_ms, tg_outbox_row_t *out, size_t limit, size_t *n,
                         tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    *n = 0;
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT " ROW_COLS ", params FROM stripe_outbox WHERE state = 'pending'"
                               " AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
                               &s, err, "reading due Stripe calls");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, now_ms);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
    int step = SQLITE_DONE;
    while (*n < limit && (step = sqlite3_step(s)) == SQLITE_ROW) {
        tg_outbox_row_t *r = &out[*n];
        read_row(s, r);
        int len = sqlite3_column_bytes(s, 13);
        const unsigned char *p = sqlite3_column_text(s, 13);
        if ((r->params = malloc((size_t)len + 1)) == NULL) {
            rc = tg_errf(err, TG_ENOMEM, "out of memory reading due Stripe calls");
            break;
        }
        memcpy(r->params, p != NULL ? (const char *)p : "", (size_t)len);
        r->params[len] = '\0';
        r->params_len = (size_t)len;
        (*n)++;
    }
    if (rc == 0 && *n < limit && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "reading due Stripe calls");
    sqlite3_finalize(s);
    if (rc != 0) {
        for (size_t i = 0; i < *n; i++)
            tg_outbox_row_clear(&out[i]);
        *n = 0;
    }
    return rc;
}

int tg_sqlite_outbox_next_due(tg_store_t *store, int64_t *at_ms, uint64_t *pending, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    if (pending != NULL)
        *pending = 0;
    int rc = tg_sqlite_prepare(st, "SELECT MIN(next_attempt_at), COUNT(*) FROM stripe_outbox WHERE state = 'pending'",
                               &s, err, "reading the outbox");
    if (rc != 0)
        return rc;
    if (sqlite3_step(s) != SQLITE_ROW)
        rc = tg_sqlite_error(st, err, "reading the outbox");
    else if (sqlite3_column_type(s, 0) == SQLITE_NULL)
        rc = tg_errf(err, TG_ENOTFOUND, "no Stripe call is pending");
    else {
        *at_ms = sqlite3_column_int64(s, 0);
        if (pending != NULL)
            *pending = (uint64_t)sqlite3_column_int64(s, 1);
    }
    sqlite3_finalize(s);
    return rc;
}

static int run(tg_sqlite_t *st, const char *sql, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, sql, &s, err, "recording a Stripe call");
    if (rc != 0)
        return rc;
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "recording a Stripe call");
    sqlite3_finalize(s);
    return rc;
}

/* One UPDATE of a pending row; TG_ENOTFOUND if it changed nothing. */
static int update_pending(tg_sqlite_t *st, const char *sql, int64_t id, const char *text, int64_t num, int64_t now,
                          tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, sql, &s, err, "recording a Stripe call");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_text(s, 2, text != NULL ? text : "", (int)strnlen(text != NULL ? text : "", TG_OUTBOX_ERROR_MAX - 1),
                      SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, num);
    sqlite3_bind_int64(s, 4, now);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "recording a Stripe call");
    else if (sqlite3_changes(sqlite3_db_handle(s)) == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "outbox row %lld is not pending", (long long)id);
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_outbox_done(tg_store_t *store, int64_t id, const char *response_id, int map_stripe_customer, int64_t now,
                          tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    /* A savepoint: a transaction of its own, or a part of the caller's. */
    int rc = run(st, "SAVEPOINT outbox_done", err);
    if (rc != 0)
        return rc;
    rc = update_pending(st,
                        "UPDATE stripe_outbox SET state = 'done', attempts = attempts + 1, response_id = ?2,"
                        " last_error = '', updated_at = ?4 WHERE id = ?1 AND state = 'pending' AND ?3 = ?3",
                        id, response_id, 0, now, err);
    if (rc == 0 && map_stripe_customer) {
        sqlite3_stmt *s;
        rc = tg_sqlite_prepare(st,
                               "INSERT INTO stripe_customers(customer_id, stripe_id, created_at)"
                               " SELECT customer_id, ?2, ?3 FROM stripe_outbox WHERE id = ?1"
                               " ON CONFLICT(customer_id) DO UPDATE SET stripe_id = excluded.stripe_id",
                               &s, err, "recording a Stripe customer");
        if (rc == 0) {
            sqlite3_bind_int64(s, 1, id);
            sqlite3_bind_text(s, 2, response_id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(s, 3, now);
            if (sqlite3_step(s) != SQLITE_DONE)
                rc = tg_sqlite_error(st, err, "recording a Stripe customer");
            sqlite3_finalize(s);
        }
    }
    if (rc != 0) {
        run(st, "ROLLBACK TO outbox_done", NULL);
        run(st, "RELEASE outbox_done", NULL);
        return rc;
    }
    if ((rc = run(st, "RELEASE outbox_done", err)) != 0) {
        run(st, "ROLLBACK TO outbox_done", NULL);
        run(st, "RELEASE outbox_done", NULL);
    }
    return rc;
}

int tg_sqlite_outbox_retry(tg_store_t *store, int64_t id, int64_t next_attempt_at_ms, const char *last_error,
                           int64_t now, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    return update_pending(st,
                          "UPDATE stripe_outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3,"
                          " updated_at = ?4 WHERE id = ?1 AND state = 'pending'",
                          id, last_error, next_attempt_at_ms, now, err);
}

int tg_sqlite_outbox_defer(tg_store_t *store, int64_t id, int64_t next_attempt_at_ms, const char *why, int64_t now,
                           tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    return update_pending(st,
                          "UPDATE stripe_outbox SET last_error = ?2, next_attempt_at = ?3, updated_at = ?4"
                          " WHERE id = ?1 AND state = 'pending'",
                          id, why, next_attempt_at_ms, now, err);
}

int tg_sqlite_outbox_fail(tg_store_t *store, int64_t id, const char *last_error, int64_t now, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    return update_pending(st,
                          "UPDATE stripe_outbox SET state = 'failed', attempts = attempts + 1, last_error = ?2,"
                          " updated_at = ?4 WHERE id = ?1 AND state = 'pending' AND ?3 = ?3",
                          id, last_error, 0, now, err);
}

int tg_sqlite_outbox_requeue(tg_store_t *store, int64_t id, int64_t now_ms, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "UPDATE stripe_outbox SET state = 'pending', attempts = 0, next_attempt_at = ?2,"
                               " updated_at = ?3 WHERE id = ?1 AND state = 'failed'",
                               &s, err, "requeuing a Stripe call");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, now_ms);
    sqlite3_bind_int64(s, 3, now_ms / 1000);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "requeuing a Stripe call");
    else if (sqlite3_changes(sqlite3_db_handle(s)) == 0) {
        tg_outbox_row_t r;
        rc = tg_sqlite_outbox_get(&st->base, id, &r, err);
        if (rc == 0)
            rc = tg_errf(err, TG_ESTATE, "outbox row %lld is %s, not failed", (long long)id, r.state);
    }
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_outbox_get(tg_store_t *store, int64_t id, tg_outbox_row_t *out, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc =
        tg_sqlite_prepare(st, "SELECT " ROW_COLS " FROM stripe_outbox WHERE id = ?", &s, err, "reading a Stripe call");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, id);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        read_row(s, out);
    else if (step == SQLITE_DONE)
        rc = tg_errf(err, TG_ENOTFOUND, "no outbox row %lld", (long long)id);
    else
        rc = tg_sqlite_error(st, err, "reading a Stripe call");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_outbox_get_by_key(tg_store_t *store, const char *idempotency_key, tg_outbox_row_t *out, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "SELECT " ROW_COLS " FROM stripe_outbox WHERE idempotency_key = ?", &s, err,
                               "reading a Stripe call");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, idempotency_key, -1, SQLITE_TRANSIENT);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        read_row(s, out);
    else if (step == SQLITE_DONE)
        rc = tg_errf(err, TG_ENOTFOUND, "no outbox row with key %.80s", idempotency_key);
    else
        rc = tg_sqlite_error(st, err, "reading a Stripe call");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_outbox_customers_missing(tg_store_t *store, const char *kind, tg_customer_t *out, size_t limit, size_t *n,
                                       tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    *n = 0;
    sqlite3_stmt *s;
    int rc =
        tg_sqlite_prepare(st,
                          "SELECT id, email, name FROM customers c WHERE NOT EXISTS (SELECT 1 FROM stripe_customers m"
                          " WHERE m.customer_id = c.id) AND NOT EXISTS (SELECT 1 FROM stripe_outbox o"
                          " WHERE o.customer_id = c.id AND o.kind = ?1) ORDER BY created_at, id LIMIT ?2",
                          &s, err, "finding customers without a Stripe customer");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
    int step = SQLITE_DONE;
    while (*n < limit && (step = sqlite3_step(s)) == SQLITE_ROW) {
        tg_customer_t *c = &out[(*n)++];
        memset(c, 0, sizeof(*c));
        tg_sqlite_text(s, 0, c->id, sizeof(c->id));
        tg_sqlite_text(s, 1, c->email, sizeof(c->email));
        tg_sqlite_text(s, 2, c->name, sizeof(c->name));
    }
    if (*n < limit && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "finding customers without a Stripe customer");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_outbox_prune(tg_store_t *store, int64_t before_s, size_t limit, size_t *deleted, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc =
        tg_sqlite_prepare(st,
                          "DELETE FROM stripe_outbox WHERE id IN (SELECT id FROM stripe_outbox WHERE state = 'done'"
                          " AND updated_at < ? ORDER BY id LIMIT ?)",
                          &s, err, "pruning the outbox");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, before_s);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "pruning the outbox");
    else if (deleted != NULL)
        *deleted = (size_t)sqlite3_changes(sqlite3_db_handle(s));
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_outbox_pull_in(tg_store_t *store, int64_t latest_ms, int64_t now_ms, uint64_t *moved, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "UPDATE stripe_outbox SET next_attempt_at = ?2"
                               " WHERE state = 'pending' AND next_attempt_at > ?1",
                               &s, err, "rescheduling Stripe calls after a clock change");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, latest_ms);
    sqlite3_bind_int64(s, 2, now_ms);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "rescheduling Stripe calls after a clock change");
    else if (moved != NULL)
        *moved = (uint64_t)sqlite3_changes(sqlite3_db_handle(s));
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_stripe_customer_get(tg_store_t *store, const char *customer_id, char *stripe_id, size_t cap,
                                  tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "SELECT stripe_id FROM stripe_customers WHERE customer_id = ?", &s, err,
                               "reading a Stripe customer");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        tg_sqlite_text(s, 0, stripe_id, cap);
    else if (step == SQLITE_DONE)
        rc = tg_errf(err, TG_ENOTFOUND, "customer %.40s has no Stripe customer", customer_id);
    else
        rc = tg_sqlite_error(st, err, "reading a Stripe customer");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_stripe_customer_owner(tg_store_t *store, const char *stripe_id, char customer_id[TG_ID_MAX],
                                    tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "SELECT customer_id FROM stripe_customers WHERE stripe_id = ?", &s, err,
                               "reading a Stripe customer");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, stripe_id, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        tg_sqlite_text(s, 0, customer_id, TG_ID_MAX);
    else if (step == SQLITE_DONE)
        rc = tg_errf(err, TG_ENOTFOUND, "Stripe customer %.64s is no tollgate customer's", stripe_id);
    else
        rc = tg_sqlite_error(st, err, "reading a Stripe customer");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_outbox_customer_latest(tg_store_t *store, const char *customer_id, tg_outbox_row_t *out, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc =
        tg_sqlite_prepare(st, "SELECT " ROW_COLS " FROM stripe_outbox WHERE customer_id = ? ORDER BY id DESC LIMIT 1",
                          &s, err, "reading a customer's Stripe calls");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        read_row(s, out);
    else if (step == SQLITE_DONE)
        rc = tg_errf(err, TG_ENOTFOUND, "customer %.40s has no Stripe calls", customer_id);
    else
        rc = tg_sqlite_error(st, err, "reading a customer's Stripe calls");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_outbox_earlier_pending(tg_store_t *store, const char *customer_id, int64_t id, int64_t *earlier_id,
                                     int64_t *next_ms, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT id, next_attempt_at FROM stripe_outbox WHERE customer_id = ? AND id < ?"
                               " AND state = 'pending' ORDER BY id LIMIT 1",
                               &s, err, "reading a customer's Stripe calls");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, id);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
        *earlier_id = sqlite3_column_int64(s, 0);
        *next_ms = sqlite3_column_int64(s, 1);
    } else if (step == SQLITE_DONE)
        rc = tg_errf(err, TG_ENOTFOUND, "no earlier call");
    else
        rc = tg_sqlite_error(st, err, "reading a customer's Stripe calls");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_outbox_customer_latest_of(tg_store_t *store, const char *customer_id, const char *kind,
                                        tg_outbox_row_t *out, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT " ROW_COLS " FROM stripe_outbox WHERE customer_id = ? AND kind = ?"
                               " ORDER BY id DESC LIMIT 1",
                               &s, err, "reading a customer's Stripe calls");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        read_row(s, out);
    else if (step == SQLITE_DONE)
        rc = tg_errf(err, TG_ENOTFOUND, "customer %.40s has no %.40s call", customer_id, kind);
    else
        rc = tg_sqlite_error(st, err, "reading a customer's Stripe calls");
    sqlite3_finalize(s);
    return rc;
}

typedef struct {
    tg_outbox_row_cb cb;
    void *arg;
} page_ctx_t;

static int page_row(sqlite3_stmt *s, void *ctx, char key[TG_PAGE_KEY_MAX])
{
    page_ctx_t *c = ctx;
    tg_outbox_row_t r;
    read_row(s, &r);
    snprintf(key, TG_PAGE_KEY_MAX, "%lld", (long long)r.id);
    return c->cb(&r, c->arg);
}

int tg_sqlite_outbox_page(tg_store_t *store, const char *state, const tg_page_t *page, tg_outbox_row_cb cb, void *arg,
                          tg_page_end_t *end, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    int64_t before = INT64_MAX;
    if (page->after[0] != '\0' && tg_page_key_parse_num(page->after, &before) != 0)
        return tg_errf(err, TG_EINVAL, "the cursor does not belong to this list");
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT " ROW_COLS " FROM stripe_outbox WHERE id < ?1 AND (?2 IS NULL OR state = ?2)"
                               " ORDER BY id DESC LIMIT ?3",
                               &s, err, "listing Stripe calls");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, before);
    if (state != NULL)
        sqlite3_bind_text(s, 2, state, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 2);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)page->limit + 1);
    page_ctx_t c = {cb, arg};
    return tg_sqlite_run_page(st, s, page->limit, page_row, &c, end, "listing Stripe calls", err);
}

int tg_sqlite_outbox_counts(tg_store_t *store, tg_outbox_counts_t *out, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "SELECT state, COUNT(*) FROM stripe_outbox GROUP BY state", &s, err,
                               "counting Stripe calls");
    if (rc != 0)
        return rc;
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        const char *state = (const char *)sqlite3_column_text(s, 0);
        uint64_t n = (uint64_t)sqlite3_column_int64(s, 1);
        if (state == NULL)
            continue;
        if (strcmp(state, "pending") == 0)
            out->pending = n;
        else if (strcmp(state, "done") == 0)
            out->done = n;
        else if (strcmp(state, "failed") == 0)
            out->failed = n;
    }
    if (step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "counting Stripe calls");
    sqlite3_finalize(s);
    return rc;
}
