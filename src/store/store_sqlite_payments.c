/* store_sqlite_payments.c - the SQLite side of store_payments.h (migrations 12, 15 and 18). */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_payments.h"
#include "store/store_sqlite_int.h"

static int run(tg_sqlite_t *st, sqlite3_stmt *s, const char *doing, tg_err_t *err)
{
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : tg_sqlite_error(st, err, doing);
    sqlite3_finalize(s);
    return rc;
}

static void bind_text_or_null(sqlite3_stmt *s, int i, const char *v)
{
    if (v == NULL || v[0] == '\0')
        sqlite3_bind_null(s, i);
    else
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

/* ---- events ---- */

int tg_sqlite_stripe_event_insert(tg_store_t *store, const tg_stripe_event_row_t *e, int *inserted, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "recording a Stripe event";
    *inserted = 0;
    int rc = tg_sqlite_prepare(st,
                               "INSERT INTO stripe_events(id, type, created, object_id, payload, received_at)"
                               " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(id) DO NOTHING",
                               &s, err, doing);
    if (rc != 0)
        return rc;
    if (e->payload_len > INT32_MAX) {
        sqlite3_finalize(s);
        return tg_errf(err, TG_ERANGE, "%s: the payload is too large", doing);
    }
    sqlite3_bind_text(s, 1, e->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, e->type, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, e->created);
    sqlite3_bind_text(s, 4, e->object_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, e->payload, (int)e->payload_len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, e->received_at);
    sqlite3 *db = sqlite3_db_handle(s);
    if (sqlite3_step(s) == SQLITE_DONE)
        *inserted = sqlite3_changes(db) == 1;
    else
        rc = tg_sqlite_error(st, err, doing);
    sqlite3_finalize(s);
    return rc;
}

#define EVENT_COLUMNS "id, type, created, object_id, received_at, processed_at, customer_id, outcome, error"

static void event_row(sqlite3_stmt *s, tg_stripe_event_row_t *out)
{
    memset(out, 0, sizeof(*out));
    tg_sqlite_text(s, 0, out->id, sizeof(out->id));
    tg_sqlite_text(s, 1, out->type, sizeof(out->type));
    out->created = sqlite3_column_int64(s, 2);
    tg_sqlite_text(s, 3, out->object_id, sizeof(out->object_id));
    out->received_at = sqlite3_column_int64(s, 4);
    out->processed_at = sqlite3_column_int64(s, 5);
    tg_sqlite_text(s, 6, out->customer_id, sizeof(out->customer_id));
    tg_sqlite_text(s, 7, out->outcome, sizeof(out->outcome));
    tg_sqlite_text(s, 8, out->error, sizeof(out->error));
}

int tg_sqlite_stripe_event_next(tg_store_t *store, tg_stripe_event_row_t *out, int *found, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "reading the next Stripe event";
    *found = 0;
    int rc = tg_sqlite_prepare(st,
                               "SELECT " EVENT_COLUMNS ", payload FROM stripe_events WHERE processed_at IS NULL"
                               " ORDER BY received_at, rowid LIMIT 1",
                               &s, err, doing);
    if (rc != 0)
        return rc;
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
        event_row(s, out);
        const unsigned char *p = sqlite3_column_text(s, 9);
        size_t n = (size_t)sqlite3_column_bytes(s, 9);
        if ((out->payload = malloc(n + 1)) == NULL) {
            sqlite3_finalize(s);
            return tg_errf(err, TG_ENOMEM, "%s: out of memory", doing);
        }
        if (n > 0)
            memcpy(out->payload, p, n);
        out->payload[n] = '\0';
        out->payload_len = n;
        *found = 1;
    } else if (step != SQLITE_DONE) {
        rc = tg_sqlite_error(st, err, doing);
    }
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_stripe_event_mark(tg_store_t *store, const char *id, int64_t processed_at, const char *customer_id,
                                const char *outcome, const char *error, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "marking a Stripe event";
    int failed = error != NULL && error[0] != '\0';
    /* A failure leaves an event that was applied meanwhile (by another attempt) applied: made
     * pending again, it would be applied twice. */
    int rc = tg_sqlite_prepare(st,
                               failed ? "UPDATE stripe_events SET processed_at = ?2, customer_id = ?3, outcome = ?4,"
                                        " error = ?5 WHERE id = ?1 AND processed_at IS NULL"
                                      : "UPDATE stripe_events SET processed_at = ?2, customer_id = ?3, outcome = ?4,"
                                        " error = ?5 WHERE id = ?1",
                               &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    if (failed)
        sqlite3_bind_null(s, 2);
    else
        sqlite3_bind_int64(s, 2, processed_at);
    bind_text_or_null(s, 3, customer_id);
    bind_text_or_null(s, 4, outcome);
    bind_text_or_null(s, 5, error);
    return run(st, s, doing, err);
}

int tg_sqlite_stripe_event_get(tg_store_t *store, const char *id, tg_stripe_event_row_t *out, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "reading a Stripe event";
    int rc = tg_sqlite_prepare(st, "SELECT " EVENT_COLUMNS " FROM stripe_events WHERE id = ?", &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        event_row(s, out);
    else
        rc = step == SQLITE_DONE ? tg_errf(err, TG_ENOTFOUND, "no Stripe event %.64s", id)
                                 : tg_sqlite_error(st, err, doing);
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_stripe_event_count(tg_store_t *store, uint64_t *count, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "SELECT COUNT(*) FROM stripe_events", &s, err, "counting Stripe events");
    if (rc != 0)
        return rc;
    if (sqlite3_step(s) == SQLITE_ROW)
        *count = (uint64_t)sqlite3_column_int64(s, 0);
    else
        rc = tg_sqlite_error(st, err, "counting Stripe events");
    sqlite3_finalize(s);
    return rc;
}

/* ---- invoice states ---- */

int tg_sqlite_stripe_invoice_get(tg_store_t *store, const char *invoice_id, tg_stripe_invoice_state_t *out, int *found,
                                 tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "reading a Stripe invoice's state";
    memset(out, 0, sizeof(*out));
    *found = 0;
    int rc = tg_sqlite_prepare(st,
                               "SELECT invoice_id, customer_id, status, failed_attempts, action_required, event_id,"
                               " updated_at FROM stripe_invoice_states WHERE invoice_id = ?",
                               &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, invoice_id, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
        tg_sqlite_text(s, 0, out->invoice_id, sizeof(out->invoice_id));
        tg_sqlite_text(s, 1, out->customer_id, sizeof(out->customer_id));
        tg_sqlite_text(s, 2, out->status, sizeof(out->status));
        out->failed_attempts = sqlite3_column_int64(s, 3);
        out->action_required = sqlite3_column_int(s, 4);
        tg_sqlite_text(s, 5, out->event_id, sizeof(out->event_id));
        out->updated_at = sqlite3_column_int64(s, 6);
        *found = 1;
    } else if (step != SQLITE_DONE) {
        rc = tg_sqlite_error(st, err, doing);
    }
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_stripe_invoice_put(tg_store_t *store, const tg_stripe_invoice_state_t *v, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "storing a Stripe invoice's state";
    int rc = tg_sqlite_prepare(st,
                               "INSERT INTO stripe_invoice_states(invoice_id, customer_id, status, failed_attempts,"
                               " action_required, event_id, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                               " ON CONFLICT(invoice_id) DO UPDATE SET customer_id = excluded.customer_id,"
                               " status = excluded.status, failed_attempts = excluded.failed_attempts,"
                               " action_required = excluded.action_required, event_id = excluded.event_id,"
                               " updated_at = excluded.updated_at",
                               &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, v->invoice_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, v->customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, v->status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, v->failed_attempts);
    sqlite3_bind_int(s, 5, v->action_required);
    sqlite3_bind_text(s, 6, v->event_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, v->updated_at);
    return run(st, s, doing, err);
}

int tg_sqlite_stripe_debt(tg_store_t *store, const char *customer_id, tg_stripe_debt_t *out, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "summing a customer's unpaid Stripe invoices";
    memset(out, 0, sizeof(*out));
    int rc =
        tg_sqlite_prepare(st,
                          "SELECT COALESCE(SUM(failed_attempts), 0),"
                          " COALESCE(MAX(status = 'uncollectible'), 0),"
                          " COALESCE(MAX(status = 'open' AND action_required = 1), 0),"
                          " COALESCE(SUM(status = 'open' AND failed_attempts > 0), 0)"
                          " FROM stripe_invoice_states WHERE customer_id = ? AND status IN ('open', 'uncollectible')",
                          &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW) {
        out->failed_attempts = sqlite3_column_int64(s, 0);
        out->uncollectible = sqlite3_column_int(s, 1);
        out->action_required = sqlite3_column_int(s, 2);
        out->open_failed = sqlite3_column_int(s, 3);
    } else {
        rc = tg_sqlite_error(st, err, doing);
    }
    sqlite3_finalize(s);
    return rc;
}

/* ---- dunning ---- */

int tg_sqlite_dunning_get(tg_store_t *store, const char *customer_id, tg_dunning_row_t *out, int *found, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "reading a customer's dunning state";
    memset(out, 0, sizeof(*out));
    *found = 0;
    int rc = tg_sqlite_prepare(
        st, "SELECT customer_id, past_due_since, held FROM customer_dunning WHERE customer_id = ?", &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
        tg_sqlite_text(s, 0, out->customer_id, sizeof(out->customer_id));
        out->past_due_since = sqlite3_column_int64(s, 1);
        out->held = sqlite3_column_int(s, 2);
        *found = 1;
    } else if (step != SQLITE_DONE) {
        rc = tg_sqlite_error(st, err, doing);
    }
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_dunning_put(tg_store_t *store, const tg_dunning_row_t *d, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "storing a customer's dunning state";
    int rc = tg_sqlite_prepare(st,
                               "INSERT INTO customer_dunning(customer_id, past_due_since, held) VALUES (?1, ?2, ?3)"
                               " ON CONFLICT(customer_id) DO UPDATE SET past_due_since = excluded.past_due_since,"
                               " held = excluded.held",
                               &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, d->customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, d->past_due_since);
    sqlite3_bind_int(s, 3, d->held);
    return run(st, s, doing, err);
}

int tg_sqlite_dunning_clear(tg_store_t *store, const char *customer_id, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "clearing a customer's dunning state";
    int rc = tg_sqlite_prepare(st, "DELETE FROM customer_dunning WHERE customer_id = ?", &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    return run(st, s, doing, err);
}

int tg_sqlite_dunning_list(tg_store_t *store, tg_dunning_cb cb, void *arg, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "listing dunning states";
    int rc = tg_sqlite_prepare(
        st, "SELECT customer_id, past_due_since, held FROM customer_dunning ORDER BY customer_id", &s, err, doing);
    if (rc != 0)
        return rc;
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        tg_dunning_row_t d = {0};
        tg_sqlite_text(s, 0, d.customer_id, sizeof(d.customer_id));
        d.past_due_since = sqlite3_column_int64(s, 1);
        d.held = sqlite3_column_int(s, 2);
        if (cb(&d, arg) != 0)
            break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, doing);
    sqlite3_finalize(s);
    return rc;
}

/* ---- status history ---- */

int tg_sqlite_status_history_add(tg_store_t *store, const char *customer_id, const char *from, const char *to,
                                 const char *reason, const char *source, int64_t at, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "recording a status change";
    int rc =
        tg_sqlite_prepare(st,
                          "INSERT INTO customer_status_history(customer_id, from_status, to_status, reason, source,"
                          " at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                          &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, from, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, to, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, reason, (int)strnlen(reason, TG_OUTCOME_MAX - 1), SQLITE_STATIC);
    sqlite3_bind_text(s, 5, source, (int)strnlen(source, TG_OUTCOME_MAX - 1), SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, at);
    return run(st, s, doing, err);
}

int tg_sqlite_status_history_list(tg_store_t *store, const char *customer_id, tg_status_change_cb cb, void *arg,
                                  tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "listing status changes";
    int rc = tg_sqlite_prepare(st,
                               "SELECT from_status, to_status, reason, source, at FROM customer_status_history"
                               " WHERE customer_id = ? ORDER BY id",
                               &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        tg_status_change_t c = {0};
        tg_sqlite_text(s, 0, c.from, sizeof(c.from));
        tg_sqlite_text(s, 1, c.to, sizeof(c.to));
        tg_sqlite_text(s, 2, c.reason, sizeof(c.reason));
        tg_sqlite_text(s, 3, c.source, sizeof(c.source));
        c.at = sqlite3_column_int64(s, 4);
        if (cb(&c, arg) != 0)
            break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, doing);
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_payment_method_put(tg_store_t *store, const char *customer_id, int64_t on_file_at, const char *session_id,
                                 const char *event_id, int *inserted, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "recording a payment method";
    int rc = tg_sqlite_prepare(st,
                               "INSERT INTO customer_payment_methods(customer_id, on_file_at, session_id, event_id)"
                               " VALUES (?1, ?2, ?3, ?4) ON CONFLICT(customer_id) DO NOTHING",
                               &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, on_file_at);
    sqlite3_bind_text(s, 3, session_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, event_id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, doing);
    else if (inserted != NULL)
        *inserted = sqlite3_changes(sqlite3_db_handle(s)) > 0;
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_payment_method_get(tg_store_t *store, const char *customer_id, int64_t *on_file_at, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "reading a payment method";
    *on_file_at = 0;
    int rc =
        tg_sqlite_prepare(st, "SELECT on_file_at FROM customer_payment_methods WHERE customer_id = ?", &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        *on_file_at = sqlite3_column_int64(s, 0);
    else if (step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, doing);
    sqlite3_finalize(s);
    return rc;
}

/* ---- Stripe subscriptions (migration 18) ---- */

int tg_sqlite_stripe_subscription_map(tg_store_t *store, const char *customer_id, const char *subscription_id,
                                      int64_t now_s, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "recording a Stripe subscription";
    int rc = tg_sqlite_prepare(st,
                               "INSERT INTO stripe_subscriptions(subscription_id, customer_id, status, status_at,"
                               " event_id, created_at, updated_at) VALUES (?1, ?2, '', 0, '', ?3, ?3)"
                               " ON CONFLICT(subscription_id) DO NOTHING",
                               &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, subscription_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now_s);
    return run(st, s, doing, err);
}

static int subscription_row(tg_sqlite_t *st, const char *sql, const char *arg, tg_stripe_subscription_t *out,
                            int *found, tg_err_t *err)
{
    sqlite3_stmt *s;
    const char *doing = "reading a Stripe subscription";
    memset(out, 0, sizeof(*out));
    *found = 0;
    int rc = tg_sqlite_prepare(st, sql, &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, arg, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
        tg_sqlite_text(s, 0, out->subscription_id, sizeof(out->subscription_id));
        tg_sqlite_text(s, 1, out->customer_id, sizeof(out->customer_id));
        tg_sqlite_text(s, 2, out->status, sizeof(out->status));
        out->status_at = sqlite3_column_int64(s, 3);
        tg_sqlite_text(s, 4, out->event_id, sizeof(out->event_id));
        out->created_at = sqlite3_column_int64(s, 5);
        out->updated_at = sqlite3_column_int64(s, 6);
        *found = 1;
    } else if (step != SQLITE_DONE) {
        rc = tg_sqlite_error(st, err, doing);
    }
    sqlite3_finalize(s);
    return rc;
}

#define SUBSCRIPTION_COLUMNS "subscription_id, customer_id, status, status_at, event_id, created_at, updated_at"

int tg_sqlite_stripe_subscription_get(tg_store_t *store, const char *subscription_id, tg_stripe_subscription_t *out,
                                      int *found, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    return subscription_row(st, "SELECT " SUBSCRIPTION_COLUMNS " FROM stripe_subscriptions WHERE subscription_id = ?",
                            subscription_id, out, found, err);
}

int tg_sqlite_stripe_subscription_latest(tg_store_t *store, const char *customer_id, tg_stripe_subscription_t *out,
                                         int *found, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    return subscription_row(st,
                            "SELECT " SUBSCRIPTION_COLUMNS " FROM stripe_subscriptions WHERE customer_id = ?"
                            " ORDER BY created_at DESC, rowid DESC LIMIT 1",
                            customer_id, out, found, err);
}

int tg_sqlite_stripe_subscription_put(tg_store_t *store, const tg_stripe_subscription_t *r, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "recording a Stripe subscription's status";
    int rc = tg_sqlite_prepare(st,
                               "INSERT INTO stripe_subscriptions(subscription_id, customer_id, status, status_at,"
                               " event_id, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)"
                               " ON CONFLICT(subscription_id) DO UPDATE SET status = excluded.status,"
                               " status_at = excluded.status_at, event_id = excluded.event_id,"
                               " updated_at = excluded.updated_at",
                               &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, r->subscription_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, r->customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, r->status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, r->status_at);
    sqlite3_bind_text(s, 5, r->event_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, r->updated_at);
    return run(st, s, doing, err);
}

int tg_sqlite_customers_without_subscription(tg_store_t *store, const char *kind, int64_t after_created,
                                             const char *after_id, char (*ids)[TG_ID_MAX], int64_t *created,
                                             size_t limit, size_t *n, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    *n = 0;
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT id, created_at FROM customers c WHERE status NOT IN ('canceled', 'incomplete')"
                               " AND (created_at > ?2 OR (created_at = ?2 AND id > ?3))"
                               " AND NOT EXISTS (SELECT 1 FROM stripe_subscriptions x WHERE x.customer_id = c.id)"
                               " AND NOT EXISTS (SELECT 1 FROM stripe_outbox o WHERE o.customer_id = c.id"
                               " AND o.kind = ?1) ORDER BY created_at, id LIMIT ?4",
                               &s, err, "finding customers without a Stripe subscription");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, after_created);
    sqlite3_bind_text(s, 3, after_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)limit);
    int step = SQLITE_DONE;
    while (*n < limit && (step = sqlite3_step(s)) == SQLITE_ROW) {
        tg_sqlite_text(s, 0, ids[*n], TG_ID_MAX);
        created[(*n)++] = sqlite3_column_int64(s, 1);
    }
    if (*n < limit && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "finding customers without a Stripe subscription");
    sqlite3_finalize(s);
    return rc;
}
