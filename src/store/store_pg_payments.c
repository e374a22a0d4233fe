/* store_pg_payments.c - the PostgreSQL side of store_payments.h (migrations 12, 15 and 18).
 *
 * Same results as store_sqlite_payments.c. What differs is that several gateways share the
 * database and a Stripe webhook may reach any of them:
 * - An event is recorded once by its id: the primary key and INSERT ... ON CONFLICT DO NOTHING
 *   decide inside PostgreSQL, so a retry delivered to two nodes at once inserts one row.
 * - Applying events is serialised across the cluster. tg_store_stripe_event_next, called inside
 *   the transaction that applies and marks the event (stripe_events.c), takes a transaction-level
 *   advisory lock with pg_try_advisory_xact_lock: one node at a time holds it, until its COMMIT
 *   or ROLLBACK; the others are told there is nothing to do (*found = 0) and try again on their
 *   next tick. Row locks alone (FOR UPDATE SKIP LOCKED) would keep two nodes from taking the
 *   same event, but would let them apply two events of one customer at once: each would read
 *   the customer's debt and dunning row without the other's uncommitted write and decide from a
 *   stale picture, and events would no longer apply in arrival order. Stripe sends a few events
 *   per customer per month, so one applier at a time costs nothing. The event row is also
 *   locked (FOR UPDATE) so that a failure mark by another node waits for the applier.
 * - A failure mark only touches an event still pending: a node whose attempt failed and rolled
 *   back cannot turn an event that another node has applied meanwhile back into a pending one
 *   (which would apply it twice).
 * Text that is cut to a buffer (outcomes, errors, reasons) is cut at a character boundary and
 * made valid UTF-8 (tg_utf8_scrub): PostgreSQL refuses invalid UTF-8 where SQLite stores bytes. */
#include <stdlib.h>
#include <string.h>

#include "store/store_payments.h"
#include "store/store_pg_int.h"
#include "util/utf8.h"

/* The advisory lock of the event applier (any constant distinct from the migration lock). */
#define EVENTS_LOCK "7021893395784053"

/* s cut to cap - 1 bytes at most, as valid UTF-8, into buf; NULL and "" stay NULL (SQL NULL). */
static const char *cut_or_null(const char *s, char *buf, size_t cap)
{
    if (s == NULL || s[0] == '\0')
        return NULL;
    size_t n = strnlen(s, cap - 1);
    memcpy(buf, s, n);
    buf[n] = '\0';
    tg_utf8_scrub(buf);
    return buf;
}

/* s cut to cap - 1 bytes at most, as valid UTF-8, into buf (never NULL). */
static const char *cut(const char *s, char *buf, size_t cap)
{
    const char *v = cut_or_null(s, buf, cap);
    return v != NULL ? v : "";
}

/* ---- events ---- */

int tg_pg_stripe_event_insert(tg_store_t *store, const tg_stripe_event_row_t *e, int *inserted, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    const char *doing = "recording a Stripe event";
    *inserted = 0;
    if (e->payload_len > INT32_MAX)
        return tg_errf(err, TG_ERANGE, "%s: the payload is too large", doing);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, e->id);
    tg_pg_param_text(&p, e->type);
    tg_pg_param_i64(&p, e->created);
    tg_pg_param_text(&p, e->object_id);
    /* The body as received, with its length (it need not end with a NUL): binary format, which
     * for a text column is the bytes themselves, checked as UTF-8 by the server. */
    tg_pg_param_bytea(&p, e->payload != NULL ? e->payload : "", e->payload != NULL ? e->payload_len : 0);
    tg_pg_param_i64(&p, e->received_at);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "INSERT INTO stripe_events(id, type, created, object_id, payload, received_at)"
                         " VALUES ($1, $2, $3, $4, $5::text, $6) ON CONFLICT (id) DO NOTHING",
                         &p, &r, err, doing);
    if (rc != 0)
        return rc;
    *inserted = tg_pg_affected(r) == 1;
    PQclear(r);
    return 0;
}

#define EVENT_COLUMNS "id, type, created, object_id, received_at, processed_at, customer_id, outcome, error"

static void event_row(const PGresult *r, tg_stripe_event_row_t *out)
{
    memset(out, 0, sizeof(*out));
    tg_pg_text(r, 0, 0, out->id, sizeof(out->id));
    tg_pg_text(r, 0, 1, out->type, sizeof(out->type));
    out->created = tg_pg_i64(r, 0, 2);
    tg_pg_text(r, 0, 3, out->object_id, sizeof(out->object_id));
    out->received_at = tg_pg_i64(r, 0, 4);
    out->processed_at = tg_pg_i64(r, 0, 5);
    tg_pg_text(r, 0, 6, out->customer_id, sizeof(out->customer_id));
    tg_pg_text(r, 0, 7, out->outcome, sizeof(out->outcome));
    tg_pg_text(r, 0, 8, out->error, sizeof(out->error));
}

/* Inside a transaction: the applier's lock first (see the top of the file), then the oldest
 * pending event, locked. Outside one, a lock would end with the statement: the event is only
 * read (what the caller does to look whether there is work before opening a transaction). */
int tg_pg_stripe_event_next(tg_store_t *store, tg_stripe_event_row_t *out, int *found, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    const char *doing = "reading the next Stripe event";
    PGresult *r;
    int rc;
    *found = 0;
    if (st->depth > 0) {
        if ((rc = tg_pg_query(st, "SELECT pg_try_advisory_xact_lock(" EVENTS_LOCK ")", NULL, &r, err, doing)) != 0)
            return rc;
        int locked = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        PQclear(r);
        if (!locked)
            return 0; /* another node is applying events: its turn */
        rc = tg_pg_query(st,
                         "SELECT " EVENT_COLUMNS ", payload FROM stripe_events WHERE processed_at IS NULL"
                         " ORDER BY received_at, rowid LIMIT 1 FOR UPDATE",
                         NULL, &r, err, doing);
    } else {
        rc = tg_pg_query(st,
                         "SELECT " EVENT_COLUMNS ", payload FROM stripe_events WHERE processed_at IS NULL"
                         " ORDER BY received_at, rowid LIMIT 1",
                         NULL, &r, err, doing);
    }
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 1) {
        event_row(r, out);
        if ((out->payload = tg_pg_strdup(r, 0, 9, &out->payload_len)) == NULL) {
            PQclear(r);
            return tg_errf(err, TG_ENOMEM, "%s: out of memory", doing);
        }
        *found = 1;
    }
    PQclear(r);
    return 0;
}

int tg_pg_stripe_event_mark(tg_store_t *store, const char *id, int64_t processed_at, const char *customer_id,
                            const char *outcome, const char *error, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    const char *doing = "marking a Stripe event";
    char cbuf[TG_ID_MAX], obuf[TG_OUTCOME_MAX], ebuf[TG_OUTCOME_MAX];
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, id);
    if (error != NULL && error[0] != '\0') {
        tg_pg_param_text(&p, cut_or_null(customer_id, cbuf, sizeof(cbuf)));
        tg_pg_param_text(&p, cut_or_null(outcome, obuf, sizeof(obuf)));
        tg_pg_param_text(&p, cut_or_null(error, ebuf, sizeof(ebuf)));
        /* still pending: an event applied meanwhile by another node stays applied */
        return tg_pg_query(st,
                           "UPDATE stripe_events SET processed_at = NULL, customer_id = $2, outcome = $3,"
                           " error = $4 WHERE id = $1 AND processed_at IS NULL",
                           &p, NULL, err, doing);
    }
    tg_pg_param_i64(&p, processed_at);
    tg_pg_param_text(&p, cut_or_null(customer_id, cbuf, sizeof(cbuf)));
    tg_pg_param_text(&p, cut_or_null(outcome, obuf, sizeof(obuf)));
    return tg_pg_query(st,
                       "UPDATE stripe_events SET processed_at = $2, customer_id = $3, outcome = $4, error = NULL"
                       " WHERE id = $1",
                       &p, NULL, err, doing);
}

int tg_pg_stripe_event_get(tg_store_t *store, const char *id, tg_stripe_event_row_t *out, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, id);
    PGresult *r;
    int rc = tg_pg_query(st, "SELECT " EVENT_COLUMNS " FROM stripe_events WHERE id = $1", &p, &r, err,
                         "reading a Stripe event");
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 1)
        event_row(r, out);
    else
        rc = tg_errf(err, TG_ENOTFOUND, "no Stripe event %.64s", id);
    PQclear(r);
    return rc;
}

int tg_pg_stripe_event_count(tg_store_t *store, uint64_t *count, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    PGresult *r;
    int rc = tg_pg_query(st, "SELECT COUNT(*) FROM stripe_events", NULL, &r, err, "counting Stripe events");
    if (rc != 0)
        return rc;
    *count = tg_pg_u64(r, 0, 0);
    PQclear(r);
    return 0;
}

/* ---- invoice states ---- */

int tg_pg_stripe_invoice_get(tg_store_t *store, const char *invoice_id, tg_stripe_invoice_state_t *out, int *found,
                             tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    memset(out, 0, sizeof(*out));
    *found = 0;
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, invoice_id);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "SELECT invoice_id, customer_id, status, failed_attempts, action_required, event_id,"
                         " updated_at FROM stripe_invoice_states WHERE invoice_id = $1",
                         &p, &r, err, "reading a Stripe invoice's state");
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 1) {
        tg_pg_text(r, 0, 0, out->invoice_id, sizeof(out->invoice_id));
        tg_pg_text(r, 0, 1, out->customer_id, sizeof(out->customer_id));
        tg_pg_text(r, 0, 2, out->status, sizeof(out->status));
        out->failed_attempts = tg_pg_i64(r, 0, 3);
        out->action_required = (int)tg_pg_i64(r, 0, 4);
        tg_pg_text(r, 0, 5, out->event_id, sizeof(out->event_id));
        out->updated_at = tg_pg_i64(r, 0, 6);
        *found = 1;
    }
    PQclear(r);
    return 0;
}

int tg_pg_stripe_invoice_put(tg_store_t *store, const tg_stripe_invoice_state_t *v, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, v->invoice_id);
    tg_pg_param_text(&p, v->customer_id);
    tg_pg_param_text(&p, v->status);
    tg_pg_param_i64(&p, v->failed_attempts);
    tg_pg_param_i64(&p, v->action_required);
    tg_pg_param_text(&p, v->event_id);
    tg_pg_param_i64(&p, v->updated_at);
    return tg_pg_query(st,
                       "INSERT INTO stripe_invoice_states(invoice_id, customer_id, status, failed_attempts,"
                       " action_required, event_id, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                       " ON CONFLICT (invoice_id) DO UPDATE SET customer_id = excluded.customer_id,"
                       " status = excluded.status, failed_attempts = excluded.failed_attempts,"
                       " action_required = excluded.action_required, event_id = excluded.event_id,"
                       " updated_at = excluded.updated_at",
                       &p, NULL, err, "storing a Stripe invoice's state");
}

/* SUM over BIGINT is NUMERIC in PostgreSQL: a sum past INT64_MAX reads as INT64_MAX (strtoll
 * saturates) instead of failing as SQLite's integer SUM would. */
int tg_pg_stripe_debt(tg_store_t *store, const char *customer_id, tg_stripe_debt_t *out, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    memset(out, 0, sizeof(*out));
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "SELECT COALESCE(SUM(failed_attempts), 0),"
                         " COALESCE(MAX(CASE WHEN status = 'uncollectible' THEN 1 ELSE 0 END), 0),"
                         " COALESCE(MAX(CASE WHEN status = 'open' AND action_required = 1 THEN 1 ELSE 0 END), 0),"
                         " COUNT(*) FILTER (WHERE status = 'open' AND failed_attempts > 0)"
                         " FROM stripe_invoice_states WHERE customer_id = $1 AND status IN ('open', 'uncollectible')",
                         &p, &r, err, "summing a customer's unpaid Stripe invoices");
    if (rc != 0)
        return rc;
    out->failed_attempts = tg_pg_i64(r, 0, 0);
    out->uncollectible = (int)tg_pg_i64(r, 0, 1);
    out->action_required = (int)tg_pg_i64(r, 0, 2);
    int64_t open_failed = tg_pg_i64(r, 0, 3);
    out->open_failed = open_failed > INT32_MAX ? INT32_MAX : (int)open_failed;
    PQclear(r);
    return 0;
}

/* ---- dunning ---- */

int tg_pg_dunning_get(tg_store_t *store, const char *customer_id, tg_dunning_row_t *out, int *found, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    memset(out, 0, sizeof(*out));
    *found = 0;
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    PGresult *r;
    int rc = tg_pg_query(st, "SELECT customer_id, past_due_since, held FROM customer_dunning WHERE customer_id = $1",
                         &p, &r, err, "reading a customer's dunning state");
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 1) {
        tg_pg_text(r, 0, 0, out->customer_id, sizeof(out->customer_id));
        out->past_due_since = tg_pg_i64(r, 0, 1);
        out->held = (int)tg_pg_i64(r, 0, 2);
        *found = 1;
    }
    PQclear(r);
    return 0;
}

int tg_pg_dunning_put(tg_store_t *store, const tg_dunning_row_t *d, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, d->customer_id);
    tg_pg_param_i64(&p, d->past_due_since);
    tg_pg_param_i64(&p, d->held);
    return tg_pg_query(st,
                       "INSERT INTO customer_dunning(customer_id, past_due_since, held) VALUES ($1, $2, $3)"
                       " ON CONFLICT (customer_id) DO UPDATE SET past_due_since = excluded.past_due_since,"
                       " held = excluded.held",
                       &p, NULL, err, "storing a customer's dunning state");
}

int tg_pg_dunning_clear(tg_store_t *store, const char *customer_id, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    return tg_pg_query(st, "DELETE FROM customer_dunning WHERE customer_id = $1", &p, NULL, err,
                       "clearing a customer's dunning state");
}

/* The rows are read whole before the first callback (the table holds customers in dunning
 * only: small), so a callback may call the store. */
int tg_pg_dunning_list(tg_store_t *store, tg_dunning_cb cb, void *arg, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    PGresult *r;
    int rc = tg_pg_query(st, "SELECT customer_id, past_due_since, held FROM customer_dunning ORDER BY customer_id",
                         NULL, &r, err, "listing dunning states");
    if (rc != 0)
        return rc;
    for (int i = 0, n = PQntuples(r); i < n; i++) {
        tg_dunning_row_t d = {0};
        tg_pg_text(r, i, 0, d.customer_id, sizeof(d.customer_id));
        d.past_due_since = tg_pg_i64(r, i, 1);
        d.held = (int)tg_pg_i64(r, i, 2);
        if (cb(&d, arg) != 0)
            break;
    }
    PQclear(r);
    return 0;
}

/* ---- status history ---- */

int tg_pg_status_history_add(tg_store_t *store, const char *customer_id, const char *from, const char *to,
                             const char *reason, const char *source, int64_t at, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    char rbuf[TG_OUTCOME_MAX], sbuf[TG_OUTCOME_MAX];
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    tg_pg_param_text(&p, from);
    tg_pg_param_text(&p, to);
    tg_pg_param_text(&p, cut(reason, rbuf, sizeof(rbuf)));
    tg_pg_param_text(&p, cut(source, sbuf, sizeof(sbuf)));
    tg_pg_param_i64(&p, at);
    return tg_pg_query(st,
                       "INSERT INTO customer_status_history(customer_id, from_status, to_status, reason, source, at)"
                       " VALUES ($1, $2, $3, $4, $5, $6)",
                       &p, NULL, err, "recording a status change");
}

int tg_pg_status_history_list(tg_store_t *store, const char *customer_id, tg_status_change_cb cb, void *arg,
                              tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "SELECT from_status, to_status, reason, source, at FROM customer_status_history"
                         " WHERE customer_id = $1 ORDER BY id",
                         &p, &r, err, "listing status changes");
    if (rc != 0)
        return rc;
    for (int i = 0, n = PQntuples(r); i < n; i++) {
        tg_status_change_t c = {0};
        tg_pg_text(r, i, 0, c.from, sizeof(c.from));
        tg_pg_text(r, i, 1, c.to, sizeof(c.to));
        tg_pg_text(r, i, 2, c.reason, sizeof(c.reason));
        tg_pg_text(r, i, 3, c.source, sizeof(c.source));
        c.at = tg_pg_i64(r, i, 4);
        if (cb(&c, arg) != 0)
            break;
    }
    PQclear(r);
    return 0;
}

/* ---- payment methods on file ---- */

int tg_pg_payment_method_put(tg_store_t *store, const char *customer_id, int64_t on_file_at, const char *session_id,
                             const char *event_id, int *inserted, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    tg_pg_param_i64(&p, on_file_at);
    tg_pg_param_text(&p, session_id);
    tg_pg_param_text(&p, event_id);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "INSERT INTO customer_payment_methods(customer_id, on_file_at, session_id, event_id)"
                         " VALUES ($1, $2, $3, $4) ON CONFLICT (customer_id) DO NOTHING",
                         &p, &r, err, "recording a payment method");
    if (rc != 0)
        return rc;
    if (inserted != NULL)
        *inserted = tg_pg_affected(r) > 0;
    PQclear(r);
    return 0;
}

int tg_pg_payment_method_get(tg_store_t *store, const char *customer_id, int64_t *on_file_at, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    *on_file_at = 0;
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    PGresult *r;
    int rc = tg_pg_query(st, "SELECT on_file_at FROM customer_payment_methods WHERE customer_id = $1", &p, &r, err,
                         "reading a payment method");
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 1)
        *on_file_at = tg_pg_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

/* ---- Stripe subscriptions (migration 18) ---- */

int tg_pg_stripe_subscription_map(tg_store_t *store, const char *customer_id, const char *subscription_id,
                                  int64_t now_s, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, subscription_id);
    tg_pg_param_text(&p, customer_id);
    tg_pg_param_i64(&p, now_s);
    return tg_pg_query(st,
                       "INSERT INTO stripe_subscriptions(subscription_id, customer_id, status, status_at,"
                       " event_id, created_at, updated_at) VALUES ($1, $2, '', 0, '', $3, $3)"
                       " ON CONFLICT (subscription_id) DO NOTHING",
                       &p, NULL, err, "recording a Stripe subscription");
}

#define SUBSCRIPTION_COLUMNS "subscription_id, customer_id, status, status_at, event_id, created_at, updated_at"

static int subscription_row(tg_pg_t *st, const char *sql, const char *arg, tg_stripe_subscription_t *out, int *found,
                            tg_err_t *err)
{
    memset(out, 0, sizeof(*out));
    *found = 0;
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, arg);
    PGresult *r;
    int rc = tg_pg_query(st, sql, &p, &r, err, "reading a Stripe subscription");
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 1) {
        tg_pg_text(r, 0, 0, out->subscription_id, sizeof(out->subscription_id));
        tg_pg_text(r, 0, 1, out->customer_id, sizeof(out->customer_id));
        tg_pg_text(r, 0, 2, out->status, sizeof(out->status));
        out->status_at = tg_pg_i64(r, 0, 3);
        tg_pg_text(r, 0, 4, out->event_id, sizeof(out->event_id));
        out->created_at = tg_pg_i64(r, 0, 5);
        out->updated_at = tg_pg_i64(r, 0, 6);
        *found = 1;
    }
    PQclear(r);
    return 0;
}

int tg_pg_stripe_subscription_get(tg_store_t *store, const char *subscription_id, tg_stripe_subscription_t *out,
                                  int *found, tg_err_t *err)
{
    return subscription_row(tg_pg(store),
                            "SELECT " SUBSCRIPTION_COLUMNS " FROM stripe_subscriptions WHERE subscription_id = $1",
                            subscription_id, out, found, err);
}

int tg_pg_stripe_subscription_latest(tg_store_t *store, const char *customer_id, tg_stripe_subscription_t *out,
                                     int *found, tg_err_t *err)
{
    return subscription_row(tg_pg(store),
                            "SELECT " SUBSCRIPTION_COLUMNS " FROM stripe_subscriptions WHERE customer_id = $1"
                            " ORDER BY created_at DESC, rowid DESC LIMIT 1",
                            customer_id, out, found, err);
}

int tg_pg_stripe_subscription_put(tg_store_t *store, const tg_stripe_subscription_t *s, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, s->subscription_id);
    tg_pg_param_text(&p, s->customer_id);
    tg_pg_param_text(&p, s->status);
    tg_pg_param_i64(&p, s->status_at);
    tg_pg_param_text(&p, s->event_id);
    tg_pg_param_i64(&p, s->updated_at);
    return tg_pg_query(st,
                       "INSERT INTO stripe_subscriptions(subscription_id, customer_id, status, status_at,"
                       " event_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)"
                       " ON CONFLICT (subscription_id) DO UPDATE SET status = excluded.status,"
                       " status_at = excluded.status_at, event_id = excluded.event_id,"
                       " updated_at = excluded.updated_at",
                       &p, NULL, err, "recording a Stripe subscription's status");
}

int tg_pg_customers_without_subscription(tg_store_t *store, const char *kind, int64_t after_created,
                                         const char *after_id, char (*ids)[TG_ID_MAX], int64_t *created, size_t limit,
                                         size_t *n, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    *n = 0;
    if (limit == 0)
        return 0;
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, kind);
    tg_pg_param_i64(&p, after_created);
    tg_pg_param_text(&p, after_id);
    tg_pg_param_u64(&p, limit);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "SELECT id, created_at FROM customers c WHERE status NOT IN ('canceled', 'incomplete')"
                         " AND (created_at > $2 OR (created_at = $2 AND id > $3))"
                         " AND NOT EXISTS (SELECT 1 FROM stripe_subscriptions x WHERE x.customer_id = c.id)"
                         " AND NOT EXISTS (SELECT 1 FROM stripe_outbox o WHERE o.customer_id = c.id"
                         " AND o.kind = $1) ORDER BY created_at, id LIMIT $4",
                         &p, &r, err, "finding customers without a Stripe subscription");
    if (rc != 0)
        return rc;
    for (int i = 0, rows = PQntuples(r); i < rows && *n < limit; i++) {
        tg_pg_text(r, i, 0, ids[*n], TG_ID_MAX);
        created[(*n)++] = tg_pg_i64(r, i, 1);
    }
    PQclear(r);
    return 0;
}
