/* webhooks.c - see webhooks.h. */
#include "notify/webhooks.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify/events.h"
#include "notify/webhook_sign.h"
#include "notify/webhook_url.h"
#include "store/store.h"
#include "util/clock.h"

static int64_t now_ms(void)
{
    return tg_clock_now_ns() / 1000000;
}

static int owner_only(const char *type)
{
    return !tg_event_type_for_customer(type, 0);
}

int tg_webhooks_events_from_json(json_t *events, int owner, char out[TG_WEBHOOK_EVENTS_MAX], tg_err_t *err)
{
    out[0] = '\0';
    if (events == NULL || json_is_null(events) ||
        (json_is_string(events) && strcmp(json_string_value(events), "*") == 0)) {
        snprintf(out, TG_WEBHOOK_EVENTS_MAX, "*");
        return 0;
    }
    if (!json_is_array(events) || json_array_size(events) == 0)
        return tg_errf(err, TG_EINVAL, "events: \"*\" or a non-empty list of event types");
    size_t used = 0, i;
    json_t *v;
    json_array_foreach(events, i, v)
    {
        const char *t = json_string_value(v);
        if (t == NULL)
            return tg_errf(err, TG_EINVAL, "events[%zu]: an event type (a string)", i);
        if (strcmp(t, "*") == 0) {
            snprintf(out, TG_WEBHOOK_EVENTS_MAX, "*");
            return 0;
        }
        if (!tg_event_type_known(t) || strcmp(t, TG_EVENT_WEBHOOK_TEST) == 0)
            return tg_errf(err, TG_EINVAL, "events[%zu]: %.60s is not an event type", i, t);
        if (!owner && owner_only(t))
            return tg_errf(err, TG_EINVAL, "events[%zu]: %.60s is sent to the owner only", i, t);
        if (tg_event_list_has(out, t))
            continue;
        int w = snprintf(out + used, TG_WEBHOOK_EVENTS_MAX - used, "%s%s", used > 0 ? "," : "", t);
        if (w < 0 || (size_t)w >= TG_WEBHOOK_EVENTS_MAX - used)
            return tg_errf(err, TG_EINVAL, "events: too many types");
        used += (size_t)w;
    }
    return 0;
}

typedef struct {
    size_t n;
} count_t;

static int count_cb(const tg_webhook_endpoint_t *e, void *arg)
{
    (void)e;
    ((count_t *)arg)->n++;
    return 0;
}

int tg_webhooks_create(const tg_webhooks_ctx_t *x, const char *customer_id, const char *url, json_t *events,
                       tg_webhook_endpoint_t *out, tg_err_t *err)
{
    int owner = customer_id == NULL || customer_id[0] == '\0';
    memset(out, 0, sizeof(*out));
    int rc = tg_webhook_url_check(url, x->cfg->notifications.allow_http, NULL, err);
    if (rc != 0)
        return rc;
    if ((rc = tg_webhooks_events_from_json(events, owner, out->events, err)) != 0)
        return rc;
    count_t c = {0};
    if ((rc = tg_store_webhook_endpoint_list(x->store, owner ? "" : customer_id, count_cb, &c, err)) != 0)
        return rc;
    size_t cap = owner ? TG_WEBHOOKS_MAX_OWNER : TG_WEBHOOKS_MAX_PER_CUSTOMER;
    if (c.n >= cap)
        return tg_errf(err, TG_ELIMIT, "at most %zu webhook endpoints", cap);
    tg_notify_random_id("we_", out->id, sizeof(out->id));
    snprintf(out->customer_id, sizeof(out->customer_id), "%s", owner ? "" : customer_id);
    snprintf(out->url, sizeof(out->url), "%s", url);
    tg_webhook_secret_new(out->secret, sizeof(out->secret));
    snprintf(out->source, sizeof(out->source), "%s", owner ? "api" : "portal");
    out->enabled = 1;
    out->created_at = out->updated_at = now_ms() / 1000;
    return tg_store_webhook_endpoint_insert(x->store, out, err);
}

int tg_webhooks_get(const tg_webhooks_ctx_t *x, const char *customer_id, const char *id, tg_webhook_endpoint_t *out,
                    tg_err_t *err)
{
    int rc = tg_store_webhook_endpoint_get(x->store, id, out, err);
    if (rc == 0 && strcmp(out->customer_id, customer_id != NULL ? customer_id : "") != 0) {
        sodium_memzero(out, sizeof(*out));
        rc = tg_errf(err, TG_ENOTFOUND, "no webhook endpoint %.60s", id);
    }
    return rc;
}

int tg_webhooks_update(const tg_webhooks_ctx_t *x, const char *customer_id, const char *id, const char *url,
                       json_t *events, int enabled, tg_webhook_endpoint_t *out, tg_err_t *err)
{
    int owner = customer_id == NULL || customer_id[0] == '\0';
    int rc = tg_webhooks_get(x, customer_id, id, out, err);
    if (rc != 0)
        return rc;
    if ((url != NULL || events != NULL) && strcmp(out->source, "config") == 0)
        return tg_errf(err, TG_ESTATE,
                       "this endpoint comes from the configuration (notifications.endpoints): change it there");
    if (url != NULL) {
        if ((rc = tg_webhook_url_check(url, x->cfg->notifications.allow_http, NULL, err)) != 0)
            return rc;
        snprintf(out->url, sizeof(out->url), "%s", url);
    }
    if (events != NULL && (rc = tg_webhooks_events_from_json(events, owner, out->events, err)) != 0)
        return rc;
    if (enabled == 1 && !out->enabled) {
        out->enabled = 1;
        out->disabled_reason[0] = '\0';
        out->failing_since_ms = 0;
        out->consecutive_failures = 0;
        out->hold_until_ms = 0;
    } else if (enabled == 0 && out->enabled) {
        out->enabled = 0;
        snprintf(out->disabled_reason, sizeof(out->disabled_reason), "disabled by %s",
                 owner ? "the owner" : "the customer");
    }
    out->updated_at = now_ms() / 1000;
    return tg_store_webhook_endpoint_update(x->store, out, err);
}

int tg_webhooks_delete(const tg_webhooks_ctx_t *x, const char *customer_id, const char *id, tg_err_t *err)
{
    tg_webhook_endpoint_t *e = malloc(sizeof(*e));
    if (e == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory");
    int rc = tg_webhooks_get(x, customer_id, id, e, err);
    if (rc == 0 && strcmp(e->source, "config") == 0)
        rc = tg_errf(err, TG_ESTATE,
                     "this endpoint comes from the configuration (notifications.endpoints): remove it there");
    if (rc == 0)
        rc = tg_store_webhook_endpoint_delete(x->store, id, err);
    sodium_memzero(e, sizeof(*e));
    free(e);
    return rc;
}

int tg_webhooks_rotate(const tg_webhooks_ctx_t *x, const char *customer_id, const char *id, tg_webhook_endpoint_t *out,
                       tg_err_t *err)
{
    int rc = tg_webhooks_get(x, customer_id, id, out, err);
    if (rc != 0)
        return rc;
    if (strcmp(out->source, "config") == 0)
        return tg_errf(err, TG_ESTATE, "this endpoint's secret is in the configuration (notifications.endpoints)");
    int64_t now = now_ms() / 1000;
    snprintf(out->prev_secret, sizeof(out->prev_secret), "%s", out->secret);
    out->prev_secret_until = now + TG_WEBHOOK_ROTATION_S;
    tg_webhook_secret_new(out->secret, sizeof(out->secret));
    out->updated_at = now;
    return tg_store_webhook_endpoint_update(x->store, out, err);
}

int tg_webhooks_resend(const tg_webhooks_ctx_t *x, const char *customer_id, const char *delivery_id,
                       tg_webhook_delivery_t *out, tg_err_t *err)
{
    int rc = tg_store_webhook_delivery_get(x->store, delivery_id, out, err);
    if (rc == 0 && strcmp(out->customer_id, customer_id != NULL ? customer_id : "") != 0)
        rc = tg_errf(err, TG_ENOTFOUND, "no webhook delivery %.60s", delivery_id);
    if (rc != 0)
        return rc;
    int64_t now = now_ms();
    snprintf(out->state, sizeof(out->state), "pending");
    out->next_attempt_at_ms = now;
    out->first_attempt_at_ms = 0; /* a new retry window */
    out->updated_at = now / 1000;
    out->delivered_at = 0;
    rc = tg_store_webhook_delivery_update(x->store, out, NULL, err);
    if (rc == 0)
        tg_event_wake();
    return rc;
}

int tg_webhooks_test(const tg_webhooks_ctx_t *x, const char *customer_id, const char *id, char event_id[TG_ID_MAX],
                     tg_err_t *err)
{
    tg_webhook_endpoint_t *e = malloc(sizeof(*e));
    if (e == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory");
    int rc = tg_webhooks_get(x, customer_id, id, e, err);
    if (rc == 0) {
        json_t *data = json_pack("{s:s,s:s}", "endpoint_id", e->id, "message", "A test event sent from tollgate.");
        rc = tg_event_emit_ex(x->store, TG_EVENT_WEBHOOK_TEST, customer_id, data, NULL, e->id, event_id, err);
        json_decref(data);
    }
    sodium_memzero(e, sizeof(*e));
    free(e);
    if (rc == 0)
        tg_event_wake();
    return rc;
}

/* ---- the owner's endpoints from the configuration ---- */

typedef struct {
    tg_webhook_endpoint_t *rows; /* the stored "config" endpoints, read before any is changed */
    size_t n, cap;
    int rc;
} stored_t;

static int stored_cb(const tg_webhook_endpoint_t *e, void *arg)
{
    stored_t *s = arg;
    if (strcmp(e->source, "config") != 0)
        return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        tg_webhook_endpoint_t *rows = realloc(s->rows, cap * sizeof(*rows));
        if (rows == NULL) {
            s->rc = TG_ENOMEM;
            return 1;
        }
        s->rows = rows;
        s->cap = cap;
    }
    s->rows[s->n++] = *e;
    return 0;
}

/* The stored endpoint of configured endpoint w, or NULL. */
static tg_webhook_endpoint_t *stored_for(stored_t *s, const tg_config_webhook_t *w)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->rows[i].url, w->url) == 0)
            return &s->rows[i];
    return NULL;
}

int tg_webhooks_sync_config(const tg_webhooks_ctx_t *x, tg_webhooks_sync_counts_t *counts, tg_err_t *err)
{
    const tg_config_t *cfg = x->cfg;
    tg_webhooks_sync_counts_t k = {0, 0, 0};
    int64_t now = now_ms() / 1000;
    stored_t s = {NULL, 0, 0, 0};
    int rc = tg_store_tx_begin(x->store, err);
    if (rc != 0)
        return rc;
    /* read first, then write: no row changes under the statement that lists them */
    if ((rc = tg_store_webhook_endpoint_list(x->store, "", stored_cb, &s, err)) == 0 && s.rc != 0)
        rc = tg_errf(err, s.rc, "out of memory reading the webhook endpoints");
    for (size_t i = 0; rc == 0 && i < s.n; i++) { /* gone from the file: deleted */
        int kept = 0;
        for (size_t j = 0; j < cfg->notifications.nendpoints && !kept; j++)
            kept = strcmp(cfg->notifications.endpoints[j].url, s.rows[i].url) == 0;
        if (!kept && (rc = tg_store_webhook_endpoint_delete(x->store, s.rows[i].id, err)) == 0)
            k.removed++;
    }
    for (size_t i = 0; rc == 0 && i < cfg->notifications.nendpoints; i++) {
        const tg_config_webhook_t *w = &cfg->notifications.endpoints[i];
        tg_webhook_endpoint_t *have = stored_for(&s, w);
        if (have != NULL) {
            if (strcmp(w->events, have->events) == 0 && strcmp(w->secret, have->secret) == 0)
                continue;
            snprintf(have->events, sizeof(have->events), "%s", w->events);
            if (strcmp(w->secret, have->secret) != 0) { /* a new secret in the file: the old one signs for a while */
                snprintf(have->prev_secret, sizeof(have->prev_secret), "%s", have->secret);
                have->prev_secret_until = now + TG_WEBHOOK_ROTATION_S;
                snprintf(have->secret, sizeof(have->secret), "%s", w->secret);
            }
            have->updated_at = now;
            if ((rc = tg_store_webhook_endpoint_update(x->store, have, err)) == 0)
                k.changed++;
            continue;
        }
        tg_webhook_endpoint_t e;
        memset(&e, 0, sizeof(e));
        /* the id follows from the URL: two gateways starting at once add it once */
        uint8_t h[12];
        char hex[sizeof(h) * 2 + 1];
        crypto_generichash(h, sizeof(h), (const unsigned char *)w->url, strlen(w->url), NULL, 0);
        sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
        snprintf(e.id, sizeof(e.id), "we_%s", hex);
        snprintf(e.url, sizeof(e.url), "%s", w->url);
        snprintf(e.events, sizeof(e.events), "%s", w->events);
        snprintf(e.secret, sizeof(e.secret), "%s", w->secret);
        snprintf(e.source, sizeof(e.source), "config");
        e.enabled = 1;
        e.created_at = e.updated_at = now;
        rc = tg_store_webhook_endpoint_insert(x->store, &e, err);
        if (rc == 0)
            k.added++;
        else if (rc == TG_EEXIST)
            rc = 0;
        sodium_memzero(&e, sizeof(e));
    }
    if (rc == 0)
        rc = tg_store_tx_commit(x->store, err);
    else
        tg_store_tx_rollback(x->store);
    if (s.rows != NULL) {
        sodium_memzero(s.rows, s.cap * sizeof(*s.rows));
        free(s.rows);
    }
    if (rc == 0 && counts != NULL)
        *counts = k;
    return rc;
}
