/* store_sqlite_notify.c - the SQLite backend of store_notify.h: events, webhook endpoints,
 * deliveries and attempts, notification settings (migration 24). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_notify.h"
#include "store/store_sqlite_int.h"

#define EVENT_COLS "seq, id, type, customer_id, created_at, data"
#define ENDPOINT_COLS                                                                                                  \
    "id, customer_id, url, events, secret, prev_secret, prev_secret_until, source, enabled, disabled_reason,"          \
    " failing_since, consecutive_failures, hold_until, created_at, updated_at"
#define DELIVERY_COLS                                                                                                  \
    "seq, id, endpoint_id, event_id, event_type, customer_id, state, attempts, next_attempt_at, first_attempt_at,"     \
    " last_status, last_error, created_at, updated_at, delivered_at"
#define ATTEMPT_COLS "id, delivery_id, endpoint_id, at, status, duration_ms, response, error"

static int fits(const char *s, size_t cap)
{
    return s != NULL && strnlen(s, cap) < cap;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    sqlite3_bind_text(s, i, v != NULL ? v : "", -1, SQLITE_STATIC);
}

/* Steps a statement that returns no rows and finalizes it; *changed (may be NULL) gets the rows
 * it changed. */
static int step_done(tg_sqlite_t *st, sqlite3_stmt *s, int *changed, tg_err_t *err, const char *doing)
{
    int rc = 0;
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, doing);
    else if (changed != NULL)
        *changed = sqlite3_changes(st->db);
    sqlite3_finalize(s);
    return rc;
}

/* ---- events ---- */

static int read_event(sqlite3_stmt *s, tg_event_row_t *e)
{
    memset(e, 0, sizeof(*e));
    e->seq = sqlite3_column_int64(s, 0);
    tg_sqlite_text(s, 1, e->id, sizeof(e->id));
    tg_sqlite_text(s, 2, e->type, sizeof(e->type));
    tg_sqlite_text(s, 3, e->customer_id, sizeof(e->customer_id));
    e->created_at = sqlite3_column_int64(s, 4);
    int len = sqlite3_column_bytes(s, 5);
    const unsigned char *p = sqlite3_column_text(s, 5);
    if ((e->data = malloc((size_t)len + 1)) == NULL)
        return TG_ENOMEM;
    memcpy(e->data, p != NULL ? (const char *)p : "", (size_t)len);
    e->data[len] = '\0';
    return 0;
}

int tg_sqlite_event_insert(tg_store_t *store, const tg_event_row_t *e, const char *dedupe_key, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    if (!fits(e->id, sizeof(e->id)) || !fits(e->type, sizeof(e->type)) ||
        !fits(e->customer_id, sizeof(e->customer_id)) || e->data == NULL ||
        strnlen(e->data, TG_EVENT_DATA_MAX + 1) > TG_EVENT_DATA_MAX ||
        (dedupe_key != NULL && !fits(dedupe_key, TG_EVENT_DEDUPE_MAX)))
        return tg_errf(err, TG_EINVAL, "an event field is past its cap");
    sqlite3_stmt *s;
    /* ON CONFLICT on the dedupe key only: a second emit is not an error in the caller's
     * transaction, an id stored already still is */
    int rc = tg_sqlite_prepare(st,
                               "INSERT INTO events(id, type, customer_id, created_at, data, dedupe_key)"
                               " VALUES (?,?,?,?,?,?) ON CONFLICT (dedupe_key) DO NOTHING",
                               &s, err, "recording an event");
    if (rc != 0)
        return rc;
    bind_text(s, 1, e->id);
    bind_text(s, 2, e->type);
    bind_text(s, 3, e->customer_id);
    sqlite3_bind_int64(s, 4, e->created_at);
    bind_text(s, 5, e->data);
    if (dedupe_key != NULL)
        bind_text(s, 6, dedupe_key);
    else
        sqlite3_bind_null(s, 6);
    int changed = 0;
    rc = step_done(st, s, &changed, err, "recording an event");
    if (rc == 0 && changed == 0)
        rc = tg_errf(err, TG_EEXIST, "the event %.100s was recorded already", dedupe_key != NULL ? dedupe_key : "");
    return rc;
}

int tg_sqlite_event_get(tg_store_t *store, const char *id, tg_event_row_t *out, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "SELECT " EVENT_COLS " FROM events WHERE id = ?", &s, err, "reading an event");
    if (rc != 0)
        return rc;
    bind_text(s, 1, id);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
        if (read_event(s, out) != 0)
            rc = tg_errf(err, TG_ENOMEM, "out of memory reading an event");
    } else if (step == SQLITE_DONE)
        rc = tg_errf(err, TG_ENOTFOUND, "no event %.60s", id);
    else
        rc = tg_sqlite_error(st, err, "reading an event");
    sqlite3_finalize(s);
    return rc;
}

typedef struct {
    tg_event_row_cb cb;
    void *arg;
    int rc;
} event_ctx_t;

static int event_row(sqlite3_stmt *s, void *ctx, char key[TG_PAGE_KEY_MAX])
{
    event_ctx_t *c = ctx;
    tg_event_row_t e;
    if (read_event(s, &e) != 0) {
        c->rc = TG_ENOMEM;
        return 1;
    }
    snprintf(key, TG_PAGE_KEY_MAX, "%lld", (long long)e.seq);
    int stop = c->cb(&e, c->arg);
    tg_event_row_clear(&e);
    return stop;
}

int tg_sqlite_event_page(tg_store_t *store, const char *customer_id, const tg_page_t *page, tg_event_row_cb cb,
                         void *arg, tg_page_end_t *end, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    int64_t before = INT64_MAX;
    if (page->after[0] != '\0' && tg_page_key_parse_num(page->after, &before) != 0)
        return tg_errf(err, TG_EINVAL, "the cursor does not belong to this list");
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT " EVENT_COLS " FROM events WHERE seq < ?1 AND (?2 IS NULL OR customer_id = ?2)"
                               " ORDER BY seq DESC LIMIT ?3",
                               &s, err, "listing events");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, before);
    if (customer_id != NULL)
        bind_text(s, 2, customer_id);
    else
        sqlite3_bind_null(s, 2);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)page->limit + 1);
    event_ctx_t c = {cb, arg, 0};
    rc = tg_sqlite_run_page(st, s, page->limit, event_row, &c, end, "listing events", err);
    if (rc == 0 && c.rc != 0)
        rc = tg_errf(err, c.rc, "out of memory listing events");
    return rc;
}

/* ---- endpoints ---- */

static void read_endpoint(sqlite3_stmt *s, tg_webhook_endpoint_t *e)
{
    memset(e, 0, sizeof(*e));
    tg_sqlite_text(s, 0, e->id, sizeof(e->id));
    tg_sqlite_text(s, 1, e->customer_id, sizeof(e->customer_id));
    tg_sqlite_text(s, 2, e->url, sizeof(e->url));
    tg_sqlite_text(s, 3, e->events, sizeof(e->events));
    tg_sqlite_text(s, 4, e->secret, sizeof(e->secret));
    tg_sqlite_text(s, 5, e->prev_secret, sizeof(e->prev_secret));
    e->prev_secret_until = sqlite3_column_int64(s, 6);
    tg_sqlite_text(s, 7, e->source, sizeof(e->source));
    e->enabled = sqlite3_column_int(s, 8) != 0;
    tg_sqlite_text(s, 9, e->disabled_reason, sizeof(e->disabled_reason));
    e->failing_since_ms = sqlite3_column_int64(s, 10);
    e->consecutive_failures = sqlite3_column_int64(s, 11);
    e->hold_until_ms = sqlite3_column_int64(s, 12);
    e->created_at = sqlite3_column_int64(s, 13);
    e->updated_at = sqlite3_column_int64(s, 14);
}

static int endpoint_fits(const tg_webhook_endpoint_t *e)
{
    return fits(e->id, sizeof(e->id)) && fits(e->customer_id, sizeof(e->customer_id)) && fits(e->url, sizeof(e->url)) &&
           fits(e->events, sizeof(e->events)) && fits(e->secret, sizeof(e->secret)) &&
           fits(e->prev_secret, sizeof(e->prev_secret)) && fits(e->source, sizeof(e->source)) &&
           fits(e->disabled_reason, sizeof(e->disabled_reason));
}

int tg_sqlite_webhook_endpoint_insert(tg_store_t *store, const tg_webhook_endpoint_t *e, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    if (!endpoint_fits(e))
        return tg_errf(err, TG_EINVAL, "a webhook endpoint field is past its cap");
    sqlite3_stmt *s;
    int rc =
        tg_sqlite_prepare(st, "INSERT INTO webhook_endpoints(" ENDPOINT_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                          &s, err, "adding a webhook endpoint");
    if (rc != 0)
        return rc;
    bind_text(s, 1, e->id);
    bind_text(s, 2, e->customer_id);
    bind_text(s, 3, e->url);
    bind_text(s, 4, e->events);
    bind_text(s, 5, e->secret);
    bind_text(s, 6, e->prev_secret);
    sqlite3_bind_int64(s, 7, e->prev_secret_until);
    bind_text(s, 8, e->source);
    sqlite3_bind_int(s, 9, e->enabled ? 1 : 0);
    bind_text(s, 10, e->disabled_reason);
    sqlite3_bind_int64(s, 11, e->failing_since_ms);
    sqlite3_bind_int64(s, 12, e->consecutive_failures);
    sqlite3_bind_int64(s, 13, e->hold_until_ms);
    sqlite3_bind_int64(s, 14, e->created_at);
    sqlite3_bind_int64(s, 15, e->updated_at);
    return step_done(st, s, NULL, err, "adding a webhook endpoint");
}

int tg_sqlite_webhook_endpoint_get(tg_store_t *store, const char *id, tg_webhook_endpoint_t *out, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "SELECT " ENDPOINT_COLS " FROM webhook_endpoints WHERE id = ?", &s, err,
                               "reading a webhook endpoint");
    if (rc != 0)
        return rc;
    bind_text(s, 1, id);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        read_endpoint(s, out);
    else if (step == SQLITE_DONE)
        rc = tg_errf(err, TG_ENOTFOUND, "no webhook endpoint %.60s", id);
    else
        rc = tg_sqlite_error(st, err, "reading a webhook endpoint");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_webhook_endpoint_update(tg_store_t *store, const tg_webhook_endpoint_t *e, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    if (!endpoint_fits(e))
        return tg_errf(err, TG_EINVAL, "a webhook endpoint field is past its cap");
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "UPDATE webhook_endpoints SET url = ?2, events = ?3, secret = ?4, prev_secret = ?5,"
                               " prev_secret_until = ?6, enabled = ?7, disabled_reason = ?8, failing_since = ?9,"
                               " consecutive_failures = ?10, hold_until = ?11, updated_at = ?12 WHERE id = ?1",
                               &s, err, "changing a webhook endpoint");
    if (rc != 0)
        return rc;
    bind_text(s, 1, e->id);
    bind_text(s, 2, e->url);
    bind_text(s, 3, e->events);
    bind_text(s, 4, e->secret);
    bind_text(s, 5, e->prev_secret);
    sqlite3_bind_int64(s, 6, e->prev_secret_until);
    sqlite3_bind_int(s, 7, e->enabled ? 1 : 0);
    bind_text(s, 8, e->disabled_reason);
    sqlite3_bind_int64(s, 9, e->failing_since_ms);
    sqlite3_bind_int64(s, 10, e->consecutive_failures);
    sqlite3_bind_int64(s, 11, e->hold_until_ms);
    sqlite3_bind_int64(s, 12, e->updated_at);
    int changed = 0;
    rc = step_done(st, s, &changed, err, "changing a webhook endpoint");
    if (rc == 0 && changed == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "no webhook endpoint %.60s", e->id);
    return rc;
}

int tg_sqlite_webhook_endpoint_delete(tg_store_t *store, const char *id, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    int rc = tg_sqlite_savepoint(store, "tg_we_delete", err);
    if (rc != 0)
        return rc;
    static const char *const sql[] = {
        "DELETE FROM webhook_attempts WHERE endpoint_id = ?",
        "DELETE FROM webhook_deliveries WHERE endpoint_id = ?",
        "DELETE FROM webhook_endpoints WHERE id = ?",
    };
    int changed = 0;
    for (size_t i = 0; rc == 0 && i < sizeof(sql) / sizeof(sql[0]); i++) {
        sqlite3_stmt *s;
        if ((rc = tg_sqlite_prepare(st, sql[i], &s, err, "deleting a webhook endpoint")) != 0)
            break;
        bind_text(s, 1, id);
        rc = step_done(st, s, &changed, err, "deleting a webhook endpoint");
    }
    if (rc == 0 && changed == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "no webhook endpoint %.60s", id);
    if (rc != 0) {
        tg_sqlite_savepoint_rollback(store, "tg_we_delete");
        return rc;
    }
    return tg_sqlite_savepoint_release(store, "tg_we_delete", err);
}

int tg_sqlite_webhook_endpoint_list(tg_store_t *store, const char *customer_id, tg_webhook_endpoint_cb cb, void *arg,
                                    tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT " ENDPOINT_COLS " FROM webhook_endpoints WHERE ?1 IS NULL OR customer_id = ?1"
                               " ORDER BY created_at, id",
                               &s, err, "listing webhook endpoints");
    if (rc != 0)
        return rc;
    if (customer_id != NULL)
        bind_text(s, 1, customer_id);
    else
        sqlite3_bind_null(s, 1);
    int step;
    tg_webhook_endpoint_t *e = malloc(sizeof(*e));
    if (e == NULL) {
        sqlite3_finalize(s);
        return tg_errf(err, TG_ENOMEM, "out of memory listing webhook endpoints");
    }
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        read_endpoint(s, e);
        if (cb(e, arg) != 0) {
            step = SQLITE_DONE;
            break;
        }
    }
    if (step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "listing webhook endpoints");
    free(e);
    sqlite3_finalize(s);
    return rc;
}

/* ---- deliveries ---- */

static void read_delivery(sqlite3_stmt *s, tg_webhook_delivery_t *d)
{
    memset(d, 0, sizeof(*d));
    d->seq = sqlite3_column_int64(s, 0);
    tg_sqlite_text(s, 1, d->id, sizeof(d->id));
    tg_sqlite_text(s, 2, d->endpoint_id, sizeof(d->endpoint_id));
    tg_sqlite_text(s, 3, d->event_id, sizeof(d->event_id));
    tg_sqlite_text(s, 4, d->event_type, sizeof(d->event_type));
    tg_sqlite_text(s, 5, d->customer_id, sizeof(d->customer_id));
    tg_sqlite_text(s, 6, d->state, sizeof(d->state));
    d->attempts = sqlite3_column_int64(s, 7);
    d->next_attempt_at_ms = sqlite3_column_int64(s, 8);
    d->first_attempt_at_ms = sqlite3_column_int64(s, 9);
    d->last_status = sqlite3_column_int64(s, 10);
    tg_sqlite_text(s, 11, d->last_error, sizeof(d->last_error));
    d->created_at = sqlite3_column_int64(s, 12);
    d->updated_at = sqlite3_column_int64(s, 13);
    d->delivered_at = sqlite3_column_int64(s, 14);
}

int tg_sqlite_webhook_delivery_insert(tg_store_t *store, const tg_webhook_delivery_t *d, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    if (!fits(d->id, sizeof(d->id)) || !fits(d->endpoint_id, sizeof(d->endpoint_id)) ||
        !fits(d->event_id, sizeof(d->event_id)) || !fits(d->event_type, sizeof(d->event_type)) ||
        !fits(d->customer_id, sizeof(d->customer_id)) || !fits(d->state, sizeof(d->state)) ||
        !fits(d->last_error, sizeof(d->last_error)))
        return tg_errf(err, TG_EINVAL, "a webhook delivery field is past its cap");
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "INSERT INTO webhook_deliveries(id, endpoint_id, event_id, event_type, customer_id,"
                               " state, attempts, next_attempt_at, first_attempt_at, last_status, last_error,"
                               " created_at, updated_at, delivered_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                               &s, err, "queuing a webhook delivery");
    if (rc != 0)
        return rc;
    bind_text(s, 1, d->id);
    bind_text(s, 2, d->endpoint_id);
    bind_text(s, 3, d->event_id);
    bind_text(s, 4, d->event_type);
    bind_text(s, 5, d->customer_id);
    bind_text(s, 6, d->state[0] != '\0' ? d->state : "pending");
    sqlite3_bind_int64(s, 7, d->attempts);
    sqlite3_bind_int64(s, 8, d->next_attempt_at_ms);
    sqlite3_bind_int64(s, 9, d->first_attempt_at_ms);
    sqlite3_bind_int64(s, 10, d->last_status);
    bind_text(s, 11, d->last_error);
    sqlite3_bind_int64(s, 12, d->created_at);
    sqlite3_bind_int64(s, 13, d->updated_at);
    sqlite3_bind_int64(s, 14, d->delivered_at);
    return step_done(st, s, NULL, err, "queuing a webhook delivery");
}

int tg_sqlite_webhook_delivery_get(tg_store_t *store, const char *id, tg_webhook_delivery_t *out, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "SELECT " DELIVERY_COLS " FROM webhook_deliveries WHERE id = ?", &s, err,
                               "reading a webhook delivery");
    if (rc != 0)
        return rc;
    bind_text(s, 1, id);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        read_delivery(s, out);
    else if (step == SQLITE_DONE)
        rc = tg_errf(err, TG_ENOTFOUND, "no webhook delivery %.60s", id);
    else
        rc = tg_sqlite_error(st, err, "reading a webhook delivery");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_webhook_delivery_claim(tg_store_t *store, int64_t now_ms, int64_t lease_ms, tg_webhook_delivery_t *out,
                                     size_t limit, size_t *n, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    *n = 0;
    sqlite3_stmt *s;
    int rc =
        tg_sqlite_prepare(st,
                          "UPDATE webhook_deliveries SET next_attempt_at = ?2 WHERE seq IN ("
                          " SELECT d.seq FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id"
                          " WHERE d.state = 'pending' AND d.next_attempt_at <= ?1 AND e.enabled = 1"
                          " AND e.hold_until <= ?1 ORDER BY d.next_attempt_at, d.seq LIMIT ?3)"
                          " RETURNING " DELIVERY_COLS,
                          &s, err, "claiming webhook deliveries");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, now_ms);
    sqlite3_bind_int64(s, 2, now_ms + lease_ms);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)limit);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW)
        if (*n < limit)
            read_delivery(s, &out[(*n)++]);
    if (step != SQLITE_DONE) {
        rc = tg_sqlite_error(st, err, "claiming webhook deliveries");
        *n = 0;
    }
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_webhook_delivery_next_due(tg_store_t *store, int64_t *at_ms, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT MIN(MAX(d.next_attempt_at, e.hold_until)) FROM webhook_deliveries d"
                               " JOIN webhook_endpoints e ON e.id = d.endpoint_id"
                               " WHERE d.state = 'pending' AND e.enabled = 1",
                               &s, err, "reading the webhook deliveries");
    if (rc != 0)
        return rc;
    if (sqlite3_step(s) != SQLITE_ROW)
        rc = tg_sqlite_error(st, err, "reading the webhook deliveries");
    else if (sqlite3_column_type(s, 0) == SQLITE_NULL)
        rc = tg_errf(err, TG_ENOTFOUND, "no webhook delivery is pending");
    else
        *at_ms = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_webhook_delivery_update(tg_store_t *store, const tg_webhook_delivery_t *d, const tg_webhook_attempt_t *a,
                                      tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    if (!fits(d->state, sizeof(d->state)) || !fits(d->last_error, sizeof(d->last_error)) ||
        (a != NULL && (!fits(a->response, sizeof(a->response)) || !fits(a->error, sizeof(a->error)))))
        return tg_errf(err, TG_EINVAL, "a webhook delivery field is past its cap");
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "UPDATE webhook_deliveries SET state = ?2, attempts = ?3, next_attempt_at = ?4,"
                               " first_attempt_at = ?5, last_status = ?6, last_error = ?7, updated_at = ?8,"
                               " delivered_at = ?9 WHERE id = ?1",
                               &s, err, "recording a webhook delivery");
    if (rc != 0)
        return rc;
    bind_text(s, 1, d->id);
    bind_text(s, 2, d->state);
    sqlite3_bind_int64(s, 3, d->attempts);
    sqlite3_bind_int64(s, 4, d->next_attempt_at_ms);
    sqlite3_bind_int64(s, 5, d->first_attempt_at_ms);
    sqlite3_bind_int64(s, 6, d->last_status);
    bind_text(s, 7, d->last_error);
    sqlite3_bind_int64(s, 8, d->updated_at);
    sqlite3_bind_int64(s, 9, d->delivered_at);
    int changed = 0;
    if ((rc = step_done(st, s, &changed, err, "recording a webhook delivery")) != 0)
        return rc;
    if (changed == 0)
        return tg_errf(err, TG_ENOTFOUND, "no webhook delivery %.60s", d->id);
    if (a == NULL)
        return 0;
    rc = tg_sqlite_prepare(st,
                           "INSERT INTO webhook_attempts(delivery_id, endpoint_id, at, status, duration_ms, response,"
                           " error) VALUES (?,?,?,?,?,?,?)",
                           &s, err, "logging a webhook attempt");
    if (rc != 0)
        return rc;
    bind_text(s, 1, d->id);
    bind_text(s, 2, d->endpoint_id);
    sqlite3_bind_int64(s, 3, a->at_ms);
    sqlite3_bind_int64(s, 4, a->status);
    sqlite3_bind_int64(s, 5, a->duration_ms);
    bind_text(s, 6, a->response);
    bind_text(s, 7, a->error);
    return step_done(st, s, NULL, err, "logging a webhook attempt");
}

typedef struct {
    tg_webhook_delivery_cb cb;
    void *arg;
} delivery_ctx_t;

static int delivery_row(sqlite3_stmt *s, void *ctx, char key[TG_PAGE_KEY_MAX])
{
    delivery_ctx_t *c = ctx;
    tg_webhook_delivery_t d;
    read_delivery(s, &d);
    snprintf(key, TG_PAGE_KEY_MAX, "%lld", (long long)d.seq);
    return c->cb(&d, c->arg);
}

int tg_sqlite_webhook_delivery_page(tg_store_t *store, const char *endpoint_id, const char *customer_id,
                                    const tg_page_t *page, tg_webhook_delivery_cb cb, void *arg, tg_page_end_t *end,
                                    tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    int64_t before = INT64_MAX;
    if (page->after[0] != '\0' && tg_page_key_parse_num(page->after, &before) != 0)
        return tg_errf(err, TG_EINVAL, "the cursor does not belong to this list");
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT " DELIVERY_COLS " FROM webhook_deliveries WHERE seq < ?1"
                               " AND (CASE WHEN ?2 IS NULL THEN customer_id = ?3 ELSE endpoint_id = ?2 END)"
                               " ORDER BY seq DESC LIMIT ?4",
                               &s, err, "listing webhook deliveries");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, before);
    if (endpoint_id != NULL)
        bind_text(s, 2, endpoint_id);
    else
        sqlite3_bind_null(s, 2);
    bind_text(s, 3, customer_id);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)page->limit + 1);
    delivery_ctx_t c = {cb, arg};
    return tg_sqlite_run_page(st, s, page->limit, delivery_row, &c, end, "listing webhook deliveries", err);
}

int tg_sqlite_webhook_attempt_list(tg_store_t *store, const char *delivery_id, size_t limit, tg_webhook_attempt_cb cb,
                                   void *arg, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT " ATTEMPT_COLS " FROM webhook_attempts WHERE delivery_id = ?"
                               " ORDER BY id DESC LIMIT ?",
                               &s, err, "listing webhook attempts");
    if (rc != 0)
        return rc;
    bind_text(s, 1, delivery_id);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
    tg_webhook_attempt_t *a = malloc(sizeof(*a));
    if (a == NULL) {
        sqlite3_finalize(s);
        return tg_errf(err, TG_ENOMEM, "out of memory listing webhook attempts");
    }
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        memset(a, 0, sizeof(*a));
        a->id = sqlite3_column_int64(s, 0);
        tg_sqlite_text(s, 1, a->delivery_id, sizeof(a->delivery_id));
        tg_sqlite_text(s, 2, a->endpoint_id, sizeof(a->endpoint_id));
        a->at_ms = sqlite3_column_int64(s, 3);
        a->status = sqlite3_column_int64(s, 4);
        a->duration_ms = sqlite3_column_int64(s, 5);
        tg_sqlite_text(s, 6, a->response, sizeof(a->response));
        tg_sqlite_text(s, 7, a->error, sizeof(a->error));
        if (cb(a, arg) != 0) {
            step = SQLITE_DONE;
            break;
        }
    }
    if (step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "listing webhook attempts");
    free(a);
    sqlite3_finalize(s);
    return rc;
}

/* ---- notification settings ---- */

int tg_sqlite_notification_settings_get(tg_store_t *store, const char *customer_id, char *email_events, size_t cap,
                                        tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "SELECT email_events FROM notification_settings WHERE customer_id = ?", &s, err,
                               "reading notification settings");
    if (rc != 0)
        return rc;
    bind_text(s, 1, customer_id);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        tg_sqlite_text(s, 0, email_events, cap);
    else if (step == SQLITE_DONE)
        rc = tg_errf(err, TG_ENOTFOUND, "no notification settings for %.60s", customer_id);
    else
        rc = tg_sqlite_error(st, err, "reading notification settings");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_notification_settings_put(tg_store_t *store, const char *customer_id, const char *email_events,
                                        int64_t now, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    if (!fits(customer_id, TG_ID_MAX) || !fits(email_events, TG_WEBHOOK_EVENTS_MAX))
        return tg_errf(err, TG_EINVAL, "a notification setting is past its cap");
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "INSERT INTO notification_settings(customer_id, email_events, updated_at) VALUES (?,?,?)"
                               " ON CONFLICT (customer_id) DO UPDATE SET email_events = excluded.email_events,"
                               " updated_at = excluded.updated_at",
                               &s, err, "saving notification settings");
    if (rc != 0)
        return rc;
    bind_text(s, 1, customer_id);
    bind_text(s, 2, email_events);
    sqlite3_bind_int64(s, 3, now);
    return step_done(st, s, NULL, err, "saving notification settings");
}
