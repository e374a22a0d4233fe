/* store_pg_notify.c - the PostgreSQL backend of store_notify.h: events, webhook endpoints,
 * deliveries and attempts, notification settings (migration 24). Same results, errors and
 * orders as store_sqlite_notify.c.
 *
 * Several gateways on one database: tg_pg_webhook_delivery_claim takes its rows with
 * FOR UPDATE SKIP LOCKED inside the UPDATE that moves their next_attempt_at a lease ahead, so
 * two delivery threads never claim one row at once, and a node that dies leaves its rows due
 * again when the lease ends. Text from outside (a receiver's response, an error) is scrubbed to
 * valid UTF-8 (tg_utf8_scrub) or PostgreSQL would refuse the statement. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_notify.h"
#include "store/store_pg_int.h"
#include "util/utf8.h"

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

/* ---- events ---- */

static int read_event(const PGresult *r, int i, tg_event_row_t *e)
{
    memset(e, 0, sizeof(*e));
    e->seq = tg_pg_i64(r, i, 0);
    tg_pg_text(r, i, 1, e->id, sizeof(e->id));
    tg_pg_text(r, i, 2, e->type, sizeof(e->type));
    tg_pg_text(r, i, 3, e->customer_id, sizeof(e->customer_id));
    e->created_at = tg_pg_i64(r, i, 4);
    e->data = tg_pg_strdup(r, i, 5, NULL);
    return e->data != NULL ? 0 : TG_ENOMEM;
}

int tg_pg_event_insert(tg_store_t *store, const tg_event_row_t *e, const char *dedupe_key, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    if (!fits(e->id, sizeof(e->id)) || !fits(e->type, sizeof(e->type)) ||
        !fits(e->customer_id, sizeof(e->customer_id)) || e->data == NULL ||
        strnlen(e->data, TG_EVENT_DATA_MAX + 1) > TG_EVENT_DATA_MAX ||
        (dedupe_key != NULL && !fits(dedupe_key, TG_EVENT_DEDUPE_MAX)))
        return tg_errf(err, TG_EINVAL, "an event field is past its cap");
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, e->id);
    tg_pg_param_text(&p, e->type);
    tg_pg_param_text(&p, e->customer_id);
    tg_pg_param_i64(&p, e->created_at);
    tg_pg_param_text(&p, e->data);
    tg_pg_param_text(&p, dedupe_key);
    PGresult *r;
    /* ON CONFLICT, not a unique violation: a failed statement would abort the caller's
     * transaction, and a second emit must leave it going */
    int rc = tg_pg_query(st,
                         "INSERT INTO events(id, type, customer_id, created_at, data, dedupe_key)"
                         " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (dedupe_key) DO NOTHING",
                         &p, &r, err, "recording an event");
    if (rc != 0)
        return rc;
    if (tg_pg_affected(r) == 0)
        rc = tg_errf(err, TG_EEXIST, "the event %.100s was recorded already", dedupe_key != NULL ? dedupe_key : "");
    PQclear(r);
    return rc;
}

int tg_pg_event_get(tg_store_t *store, const char *id, tg_event_row_t *out, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    memset(out, 0, sizeof(*out));
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, id);
    PGresult *r;
    int rc = tg_pg_query(st, "SELECT " EVENT_COLS " FROM events WHERE id = $1", &p, &r, err, "reading an event");
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "no event %.60s", id);
    else if (read_event(r, 0, out) != 0)
        rc = tg_errf(err, TG_ENOMEM, "out of memory reading an event");
    PQclear(r);
    return rc;
}

int tg_pg_event_page(tg_store_t *store, const char *customer_id, const tg_page_t *page, tg_event_row_cb cb, void *arg,
                     tg_page_end_t *end, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    memset(end, 0, sizeof(*end));
    int64_t before = INT64_MAX;
    if (page->after[0] != '\0' && tg_page_key_parse_num(page->after, &before) != 0)
        return tg_errf(err, TG_EINVAL, "the cursor does not belong to this list");
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, before);
    tg_pg_param_text(&p, customer_id);
    tg_pg_param_i64(&p, (int64_t)page->limit + 1);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "SELECT " EVENT_COLS " FROM events WHERE seq < $1 AND ($2::text IS NULL OR customer_id = $2)"
                         " ORDER BY seq DESC LIMIT $3",
                         &p, &r, err, "listing events");
    if (rc != 0)
        return rc;
    int rows = PQntuples(r);
    char key[TG_PAGE_KEY_MAX] = "";
    for (int i = 0; i < rows; i++) {
        if ((size_t)i == page->limit) {
            end->has_more = 1;
            memcpy(end->next, key, sizeof(key));
            break;
        }
        tg_event_row_t e;
        if (read_event(r, i, &e) != 0) {
            rc = tg_errf(err, TG_ENOMEM, "out of memory listing events");
            break;
        }
        snprintf(key, sizeof(key), "%lld", (long long)e.seq);
        int stop = cb(&e, arg);
        tg_event_row_clear(&e);
        if (stop)
            break;
    }
    PQclear(r);
    return rc;
}

/* ---- endpoints ---- */

static void read_endpoint(const PGresult *r, int i, tg_webhook_endpoint_t *e)
{
    memset(e, 0, sizeof(*e));
    tg_pg_text(r, i, 0, e->id, sizeof(e->id));
    tg_pg_text(r, i, 1, e->customer_id, sizeof(e->customer_id));
    tg_pg_text(r, i, 2, e->url, sizeof(e->url));
    tg_pg_text(r, i, 3, e->events, sizeof(e->events));
    tg_pg_text(r, i, 4, e->secret, sizeof(e->secret));
    tg_pg_text(r, i, 5, e->prev_secret, sizeof(e->prev_secret));
    e->prev_secret_until = tg_pg_i64(r, i, 6);
    tg_pg_text(r, i, 7, e->source, sizeof(e->source));
    e->enabled = tg_pg_i64(r, i, 8) != 0;
    tg_pg_text(r, i, 9, e->disabled_reason, sizeof(e->disabled_reason));
    e->failing_since_ms = tg_pg_i64(r, i, 10);
    e->consecutive_failures = tg_pg_i64(r, i, 11);
    e->hold_until_ms = tg_pg_i64(r, i, 12);
    e->created_at = tg_pg_i64(r, i, 13);
    e->updated_at = tg_pg_i64(r, i, 14);
}

static int endpoint_fits(const tg_webhook_endpoint_t *e)
{
    return fits(e->id, sizeof(e->id)) && fits(e->customer_id, sizeof(e->customer_id)) && fits(e->url, sizeof(e->url)) &&
           fits(e->events, sizeof(e->events)) && fits(e->secret, sizeof(e->secret)) &&
           fits(e->prev_secret, sizeof(e->prev_secret)) && fits(e->source, sizeof(e->source)) &&
           fits(e->disabled_reason, sizeof(e->disabled_reason));
}

int tg_pg_webhook_endpoint_insert(tg_store_t *store, const tg_webhook_endpoint_t *e, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    if (!endpoint_fits(e))
        return tg_errf(err, TG_EINVAL, "a webhook endpoint field is past its cap");
    char url[TG_WEBHOOK_URL_MAX], reason[TG_WEBHOOK_REASON_MAX];
    snprintf(url, sizeof(url), "%s", e->url);
    tg_utf8_scrub(url);
    snprintf(reason, sizeof(reason), "%s", e->disabled_reason);
    tg_utf8_scrub(reason);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, e->id);
    tg_pg_param_text(&p, e->customer_id);
    tg_pg_param_text(&p, url);
    tg_pg_param_text(&p, e->events);
    tg_pg_param_text(&p, e->secret);
    tg_pg_param_text(&p, e->prev_secret);
    tg_pg_param_i64(&p, e->prev_secret_until);
    tg_pg_param_text(&p, e->source);
    tg_pg_param_i64(&p, e->enabled ? 1 : 0);
    tg_pg_param_text(&p, reason);
    tg_pg_param_i64(&p, e->failing_since_ms);
    tg_pg_param_i64(&p, e->consecutive_failures);
    tg_pg_param_i64(&p, e->hold_until_ms);
    tg_pg_param_i64(&p, e->created_at);
    tg_pg_param_i64(&p, e->updated_at);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "INSERT INTO webhook_endpoints(" ENDPOINT_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
                         " $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (id) DO NOTHING",
                         &p, &r, err, "adding a webhook endpoint");
    if (rc != 0)
        return rc;
    if (tg_pg_affected(r) == 0)
        rc = tg_errf(err, TG_EEXIST, "the webhook endpoint %.60s exists already", e->id);
    PQclear(r);
    return rc;
}

int tg_pg_webhook_endpoint_get(tg_store_t *store, const char *id, tg_webhook_endpoint_t *out, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, id);
    PGresult *r;
    int rc = tg_pg_query(st, "SELECT " ENDPOINT_COLS " FROM webhook_endpoints WHERE id = $1", &p, &r, err,
                         "reading a webhook endpoint");
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "no webhook endpoint %.60s", id);
    else
        read_endpoint(r, 0, out);
    PQclear(r);
    return rc;
}

int tg_pg_webhook_endpoint_update(tg_store_t *store, const tg_webhook_endpoint_t *e, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    if (!endpoint_fits(e))
        return tg_errf(err, TG_EINVAL, "a webhook endpoint field is past its cap");
    char url[TG_WEBHOOK_URL_MAX], reason[TG_WEBHOOK_REASON_MAX];
    snprintf(url, sizeof(url), "%s", e->url);
    tg_utf8_scrub(url);
    snprintf(reason, sizeof(reason), "%s", e->disabled_reason);
    tg_utf8_scrub(reason);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, e->id);
    tg_pg_param_text(&p, url);
    tg_pg_param_text(&p, e->events);
    tg_pg_param_text(&p, e->secret);
    tg_pg_param_text(&p, e->prev_secret);
    tg_pg_param_i64(&p, e->prev_secret_until);
    tg_pg_param_i64(&p, e->enabled ? 1 : 0);
    tg_pg_param_text(&p, reason);
    tg_pg_param_i64(&p, e->failing_since_ms);
    tg_pg_param_i64(&p, e->consecutive_failures);
    tg_pg_param_i64(&p, e->hold_until_ms);
    tg_pg_param_i64(&p, e->updated_at);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "UPDATE webhook_endpoints SET url = $2, events = $3, secret = $4, prev_secret = $5,"
                         " prev_secret_until = $6, enabled = $7, disabled_reason = $8, failing_since = $9,"
                         " consecutive_failures = $10, hold_until = $11, updated_at = $12 WHERE id = $1",
                         &p, &r, err, "changing a webhook endpoint");
    if (rc != 0)
        return rc;
    if (tg_pg_affected(r) == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "no webhook endpoint %.60s", e->id);
    PQclear(r);
    return rc;
}

int tg_pg_webhook_endpoint_delete(tg_store_t *store, const char *id, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    int rc = tg_pg_savepoint(store, "tg_we_delete", err);
    if (rc != 0)
        return rc;
    static const char *const sql[] = {
        "DELETE FROM webhook_attempts WHERE endpoint_id = $1",
        "DELETE FROM webhook_deliveries WHERE endpoint_id = $1",
        "DELETE FROM webhook_endpoints WHERE id = $1",
    };
    uint64_t changed = 0;
    for (size_t i = 0; rc == 0 && i < sizeof(sql) / sizeof(sql[0]); i++) {
        tg_pg_params_t p = {0};
        tg_pg_param_text(&p, id);
        PGresult *r;
        if ((rc = tg_pg_query(st, sql[i], &p, &r, err, "deleting a webhook endpoint")) != 0)
            break;
        changed = tg_pg_affected(r);
        PQclear(r);
    }
    if (rc == 0 && changed == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "no webhook endpoint %.60s", id);
    if (rc != 0) {
        tg_pg_savepoint_rollback(store, "tg_we_delete");
        return rc;
    }
    return tg_pg_savepoint_release(store, "tg_we_delete", err);
}

int tg_pg_webhook_endpoint_list(tg_store_t *store, const char *customer_id, tg_webhook_endpoint_cb cb, void *arg,
                                tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "SELECT " ENDPOINT_COLS " FROM webhook_endpoints WHERE $1::text IS NULL OR customer_id = $1"
                         " ORDER BY created_at, id COLLATE \"C\"",
                         &p, &r, err, "listing webhook endpoints");
    if (rc != 0)
        return rc;
    tg_webhook_endpoint_t *e = malloc(sizeof(*e));
    if (e == NULL) {
        PQclear(r);
        return tg_errf(err, TG_ENOMEM, "out of memory listing webhook endpoints");
    }
    for (int i = 0; i < PQntuples(r); i++) {
        read_endpoint(r, i, e);
        if (cb(e, arg) != 0)
            break;
    }
    free(e);
    PQclear(r);
    return 0;
}

/* ---- deliveries ---- */

static void read_delivery(const PGresult *r, int i, tg_webhook_delivery_t *d)
{
    memset(d, 0, sizeof(*d));
    d->seq = tg_pg_i64(r, i, 0);
    tg_pg_text(r, i, 1, d->id, sizeof(d->id));
    tg_pg_text(r, i, 2, d->endpoint_id, sizeof(d->endpoint_id));
    tg_pg_text(r, i, 3, d->event_id, sizeof(d->event_id));
    tg_pg_text(r, i, 4, d->event_type, sizeof(d->event_type));
    tg_pg_text(r, i, 5, d->customer_id, sizeof(d->customer_id));
    tg_pg_text(r, i, 6, d->state, sizeof(d->state));
    d->attempts = tg_pg_i64(r, i, 7);
    d->next_attempt_at_ms = tg_pg_i64(r, i, 8);
    d->first_attempt_at_ms = tg_pg_i64(r, i, 9);
    d->last_status = tg_pg_i64(r, i, 10);
    tg_pg_text(r, i, 11, d->last_error, sizeof(d->last_error));
    d->created_at = tg_pg_i64(r, i, 12);
    d->updated_at = tg_pg_i64(r, i, 13);
    d->delivered_at = tg_pg_i64(r, i, 14);
}

int tg_pg_webhook_delivery_insert(tg_store_t *store, const tg_webhook_delivery_t *d, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    if (!fits(d->id, sizeof(d->id)) || !fits(d->endpoint_id, sizeof(d->endpoint_id)) ||
        !fits(d->event_id, sizeof(d->event_id)) || !fits(d->event_type, sizeof(d->event_type)) ||
        !fits(d->customer_id, sizeof(d->customer_id)) || !fits(d->state, sizeof(d->state)) ||
        !fits(d->last_error, sizeof(d->last_error)))
        return tg_errf(err, TG_EINVAL, "a webhook delivery field is past its cap");
    char last_error[TG_WEBHOOK_ERROR_MAX];
    snprintf(last_error, sizeof(last_error), "%s", d->last_error);
    tg_utf8_scrub(last_error);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, d->id);
    tg_pg_param_text(&p, d->endpoint_id);
    tg_pg_param_text(&p, d->event_id);
    tg_pg_param_text(&p, d->event_type);
    tg_pg_param_text(&p, d->customer_id);
    tg_pg_param_text(&p, d->state[0] != '\0' ? d->state : "pending");
    tg_pg_param_i64(&p, d->attempts);
    tg_pg_param_i64(&p, d->next_attempt_at_ms);
    tg_pg_param_i64(&p, d->first_attempt_at_ms);
    tg_pg_param_i64(&p, d->last_status);
    tg_pg_param_text(&p, last_error);
    tg_pg_param_i64(&p, d->created_at);
    tg_pg_param_i64(&p, d->updated_at);
    tg_pg_param_i64(&p, d->delivered_at);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "INSERT INTO webhook_deliveries(id, endpoint_id, event_id, event_type, customer_id, state,"
                         " attempts, next_attempt_at, first_attempt_at, last_status, last_error, created_at,"
                         " updated_at, delivered_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,"
                         " $14) ON CONFLICT DO NOTHING",
                         &p, &r, err, "queuing a webhook delivery");
    if (rc != 0)
        return rc;
    if (tg_pg_affected(r) == 0)
        rc = tg_errf(err, TG_EEXIST, "the webhook delivery %.60s is queued already", d->id);
    PQclear(r);
    return rc;
}

int tg_pg_webhook_delivery_get(tg_store_t *store, const char *id, tg_webhook_delivery_t *out, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, id);
    PGresult *r;
    int rc = tg_pg_query(st, "SELECT " DELIVERY_COLS " FROM webhook_deliveries WHERE id = $1", &p, &r, err,
                         "reading a webhook delivery");
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "no webhook delivery %.60s", id);
    else
        read_delivery(r, 0, out);
    PQclear(r);
    return rc;
}

int tg_pg_webhook_delivery_claim(tg_store_t *store, int64_t now_ms, int64_t lease_ms, tg_webhook_delivery_t *out,
                                 size_t limit, size_t *n, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    *n = 0;
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, now_ms);
    tg_pg_param_i64(&p, now_ms + lease_ms);
    tg_pg_param_i64(&p, (int64_t)limit);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "UPDATE webhook_deliveries SET next_attempt_at = $2 WHERE seq IN ("
                         " SELECT d.seq FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id"
                         " WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND e.enabled = 1"
                         " AND e.hold_until <= $1 ORDER BY d.next_attempt_at, d.seq LIMIT $3"
                         " FOR UPDATE OF d SKIP LOCKED) RETURNING " DELIVERY_COLS,
                         &p, &r, err, "claiming webhook deliveries");
    if (rc != 0)
        return rc;
    for (int i = 0; i < PQntuples(r) && *n < limit; i++)
        read_delivery(r, i, &out[(*n)++]);
    PQclear(r);
    return 0;
}

int tg_pg_webhook_delivery_next_due(tg_store_t *store, int64_t *at_ms, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "SELECT MIN(GREATEST(d.next_attempt_at, e.hold_until)) FROM webhook_deliveries d"
                         " JOIN webhook_endpoints e ON e.id = d.endpoint_id"
                         " WHERE d.state = 'pending' AND e.enabled = 1",
                         NULL, &r, err, "reading the webhook deliveries");
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0))
        rc = tg_errf(err, TG_ENOTFOUND, "no webhook delivery is pending");
    else
        *at_ms = tg_pg_i64(r, 0, 0);
    PQclear(r);
    return rc;
}

int tg_pg_webhook_delivery_update(tg_store_t *store, const tg_webhook_delivery_t *d, const tg_webhook_attempt_t *a,
                                  tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    if (!fits(d->state, sizeof(d->state)) || !fits(d->last_error, sizeof(d->last_error)) ||
        (a != NULL && (!fits(a->response, sizeof(a->response)) || !fits(a->error, sizeof(a->error)))))
        return tg_errf(err, TG_EINVAL, "a webhook delivery field is past its cap");
    char last_error[TG_WEBHOOK_ERROR_MAX];
    snprintf(last_error, sizeof(last_error), "%s", d->last_error);
    tg_utf8_scrub(last_error);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, d->id);
    tg_pg_param_text(&p, d->state);
    tg_pg_param_i64(&p, d->attempts);
    tg_pg_param_i64(&p, d->next_attempt_at_ms);
    tg_pg_param_i64(&p, d->first_attempt_at_ms);
    tg_pg_param_i64(&p, d->last_status);
    tg_pg_param_text(&p, last_error);
    tg_pg_param_i64(&p, d->updated_at);
    tg_pg_param_i64(&p, d->delivered_at);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "UPDATE webhook_deliveries SET state = $2, attempts = $3, next_attempt_at = $4,"
                         " first_attempt_at = $5, last_status = $6, last_error = $7, updated_at = $8,"
                         " delivered_at = $9 WHERE id = $1",
                         &p, &r, err, "recording a webhook delivery");
    if (rc != 0)
        return rc;
    uint64_t changed = tg_pg_affected(r);
    PQclear(r);
    if (changed == 0)
        return tg_errf(err, TG_ENOTFOUND, "no webhook delivery %.60s", d->id);
    if (a == NULL)
        return 0;
    char *response = malloc(TG_WEBHOOK_RESPONSE_MAX), error[TG_WEBHOOK_ERROR_MAX];
    if (response == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory logging a webhook attempt");
    snprintf(response, TG_WEBHOOK_RESPONSE_MAX, "%s", a->response);
    tg_utf8_scrub(response);
    snprintf(error, sizeof(error), "%s", a->error);
    tg_utf8_scrub(error);
    tg_pg_params_t q = {0};
    tg_pg_param_text(&q, d->id);
    tg_pg_param_text(&q, d->endpoint_id);
    tg_pg_param_i64(&q, a->at_ms);
    tg_pg_param_i64(&q, a->status);
    tg_pg_param_i64(&q, a->duration_ms);
    tg_pg_param_text(&q, response);
    tg_pg_param_text(&q, error);
    rc = tg_pg_query(st,
                     "INSERT INTO webhook_attempts(delivery_id, endpoint_id, at, status, duration_ms, response, error)"
                     " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                     &q, NULL, err, "logging a webhook attempt");
    free(response);
    return rc;
}

int tg_pg_webhook_delivery_page(tg_store_t *store, const char *endpoint_id, const char *customer_id,
                                const tg_page_t *page, tg_webhook_delivery_cb cb, void *arg, tg_page_end_t *end,
                                tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    memset(end, 0, sizeof(*end));
    int64_t before = INT64_MAX;
    if (page->after[0] != '\0' && tg_page_key_parse_num(page->after, &before) != 0)
        return tg_errf(err, TG_EINVAL, "the cursor does not belong to this list");
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, before);
    tg_pg_param_text(&p, endpoint_id);
    tg_pg_param_text(&p, customer_id != NULL ? customer_id : "");
    tg_pg_param_i64(&p, (int64_t)page->limit + 1);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "SELECT " DELIVERY_COLS " FROM webhook_deliveries WHERE seq < $1"
                         " AND (CASE WHEN $2::text IS NULL THEN customer_id = $3 ELSE endpoint_id = $2 END)"
                         " ORDER BY seq DESC LIMIT $4",
                         &p, &r, err, "listing webhook deliveries");
    if (rc != 0)
        return rc;
    int rows = PQntuples(r);
    char key[TG_PAGE_KEY_MAX] = "";
    for (int i = 0; i < rows; i++) {
        if ((size_t)i == page->limit) {
            end->has_more = 1;
            memcpy(end->next, key, sizeof(key));
            break;
        }
        tg_webhook_delivery_t d;
        read_delivery(r, i, &d);
        snprintf(key, sizeof(key), "%lld", (long long)d.seq);
        if (cb(&d, arg) != 0)
            break;
    }
    PQclear(r);
    return 0;
}

int tg_pg_webhook_attempt_list(tg_store_t *store, const char *delivery_id, size_t limit, tg_webhook_attempt_cb cb,
                               void *arg, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, delivery_id);
    tg_pg_param_i64(&p, (int64_t)limit);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "SELECT " ATTEMPT_COLS " FROM webhook_attempts WHERE delivery_id = $1 ORDER BY id DESC"
                         " LIMIT $2",
                         &p, &r, err, "listing webhook attempts");
    if (rc != 0)
        return rc;
    tg_webhook_attempt_t *a = malloc(sizeof(*a));
    if (a == NULL) {
        PQclear(r);
        return tg_errf(err, TG_ENOMEM, "out of memory listing webhook attempts");
    }
    for (int i = 0; i < PQntuples(r); i++) {
        memset(a, 0, sizeof(*a));
        a->id = tg_pg_i64(r, i, 0);
        tg_pg_text(r, i, 1, a->delivery_id, sizeof(a->delivery_id));
        tg_pg_text(r, i, 2, a->endpoint_id, sizeof(a->endpoint_id));
        a->at_ms = tg_pg_i64(r, i, 3);
        a->status = tg_pg_i64(r, i, 4);
        a->duration_ms = tg_pg_i64(r, i, 5);
        tg_pg_text(r, i, 6, a->response, sizeof(a->response));
        tg_pg_text(r, i, 7, a->error, sizeof(a->error));
        if (cb(a, arg) != 0)
            break;
    }
    free(a);
    PQclear(r);
    return 0;
}

/* ---- notification settings ---- */

int tg_pg_notification_settings_get(tg_store_t *store, const char *customer_id, char *email_events, size_t cap,
                                    tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    PGresult *r;
    int rc = tg_pg_query(st, "SELECT email_events FROM notification_settings WHERE customer_id = $1", &p, &r, err,
                         "reading notification settings");
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "no notification settings for %.60s", customer_id);
    else
        tg_pg_text(r, 0, 0, email_events, cap);
    PQclear(r);
    return rc;
}

int tg_pg_notification_settings_put(tg_store_t *store, const char *customer_id, const char *email_events, int64_t now,
                                    tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    if (!fits(customer_id, TG_ID_MAX) || !fits(email_events, TG_WEBHOOK_EVENTS_MAX))
        return tg_errf(err, TG_EINVAL, "a notification setting is past its cap");
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    tg_pg_param_text(&p, email_events);
    tg_pg_param_i64(&p, now);
    return tg_pg_query(st,
                       "INSERT INTO notification_settings(customer_id, email_events, updated_at) VALUES ($1, $2, $3)"
                       " ON CONFLICT (customer_id) DO UPDATE SET email_events = excluded.email_events,"
                       " updated_at = excluded.updated_at",
                       &p, NULL, err, "saving notification settings");
}
