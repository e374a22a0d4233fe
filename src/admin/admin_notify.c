/* admin_notify.c - the HTTP adapters of events and webhooks (issue 13, part A), for the owner
 * (/v1/admin/..., the owner's endpoints and every event) and for a signed-in customer
 * (/v1/me/..., their own endpoints and events) alike; the rules are notify/webhooks.c's.
 *
 *   GET, POST          .../webhook-endpoints
 *   GET, PATCH, DELETE .../webhook-endpoints/{id}
 *   POST               .../webhook-endpoints/{id}/rotate-secret
 *   POST               .../webhook-endpoints/{id}/test
 *   GET                .../webhook-endpoints/{id}/deliveries      (paged, newest first)
 *   GET                .../webhook-deliveries                     (paged: all of the caller's)
 *   GET                .../webhook-deliveries/{id}                (with its attempts)
 *   POST               .../webhook-deliveries/{id}/resend
 *   GET                .../events                                 (paged, newest first)
 * A secret is in the answer of create and rotate-secret only. Someone else's endpoint or
 * delivery is 404, as one that does not exist. */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_int.h"
#include "notify/events.h"
#include "notify/webhooks.h"
#include "store/store_notify.h"

static json_t *ms_time(int64_t ms)
{
    return tg_adm_json_time(ms / 1000);
}

static json_t *events_json(const char *events)
{
    json_t *arr = json_array();
    const char *p = events;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        json_array_append_new(arr, json_stringn(p, n));
        p += n;
        if (*p == ',')
            p++;
    }
    return arr;
}

static json_t *endpoint_json(const tg_webhook_endpoint_t *e, int with_secret)
{
    json_t *j = json_pack("{s:s,s:s,s:o,s:s,s:b,s:s?,s:o,s:I,s:o,s:o,s:o,s:o}", "id", e->id, "url", e->url, "events",
                          events_json(e->events), "source", e->source, "enabled", e->enabled, "disabled_reason",
                          e->enabled ? NULL : e->disabled_reason, "failing_since", ms_time(e->failing_since_ms),
                          "consecutive_failures", (json_int_t)e->consecutive_failures, "held_until",
                          ms_time(e->hold_until_ms), "previous_secret_expires_at",
                          e->prev_secret[0] != '\0' ? tg_adm_json_time(e->prev_secret_until) : json_null(),
                          "created_at", tg_adm_json_time(e->created_at), "updated_at", tg_adm_json_time(e->updated_at));
    if (e->customer_id[0] != '\0')
        json_object_set_new(j, "customer", json_string(e->customer_id));
    if (with_secret)
        json_object_set_new(j, "secret", json_string(e->secret));
    return j;
}

static json_t *delivery_json(const tg_webhook_delivery_t *d)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:o,s:o,s:I,s:s,s:o,s:o}", "id", d->id, "endpoint", d->endpoint_id,
                     "event", d->event_id, "event_type", d->event_type, "state", d->state, "attempts",
                     (json_int_t)d->attempts, "next_attempt_at",
                     strcmp(d->state, "pending") == 0 ? ms_time(d->next_attempt_at_ms) : json_null(),
                     "first_attempt_at", ms_time(d->first_attempt_at_ms), "last_status", (json_int_t)d->last_status,
                     "last_error", d->last_error, "created_at", tg_adm_json_time(d->created_at), "delivered_at",
                     tg_adm_json_time(d->delivered_at));
}

static int on_attempt(const tg_webhook_attempt_t *at, void *arg)
{
    json_array_append_new(arg, json_pack("{s:o,s:I,s:I,s:s,s:s}", "at", ms_time(at->at_ms), "status",
                                         (json_int_t)at->status, "response_ms", (json_int_t)at->duration_ms,
                                         "response_excerpt", at->response, "error", at->error));
    return 0;
}

static int on_delivery(const tg_webhook_delivery_t *d, void *arg)
{
    json_array_append_new(arg, delivery_json(d));
    return 0;
}

static int on_endpoint(const tg_webhook_endpoint_t *e, void *arg)
{
    json_array_append_new(arg, endpoint_json(e, 0));
    return 0;
}

static int on_event(const tg_event_row_t *e, void *arg)
{
    json_t *data = json_loads(e->data, 0, NULL);
    json_t *j = json_pack("{s:s,s:s,s:o,s:o}", "id", e->id, "type", e->type, "created_at",
                          tg_adm_json_time(e->created_at), "data", data != NULL ? data : json_object());
    json_object_set_new(j, "customer_id", e->customer_id[0] != '\0' ? json_string(e->customer_id) : json_null());
    json_array_append_new(arg, j);
    return 0;
}

/* The webhooks service's errors: TG_EINVAL about a URL gets its own type. */
static void reply_error(tg_admin_response_t *res, int rc, const tg_err_t *err)
{
    if (rc == TG_EINVAL && strncmp(err->msg, "url", 3) == 0)
        tg_adm_reply_error(res, 400, "invalid_webhook_url", "%s.", err->msg);
    else if (rc == TG_ELIMIT)
        tg_adm_reply_error(res, 409, "webhook_endpoint_limit", "%s.", err->msg);
    else
        tg_adm_reply_svc_error(res, rc, err);
}

static void create_endpoint(tg_admin_t *a, const tg_webhooks_ctx_t *x, const char *customer_id,
                            const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    (void)a;
    json_t *url = json_object_get(body, "url");
    tg_webhook_endpoint_t *e = malloc(sizeof(*e));
    tg_err_t err = {0};
    if (e == NULL)
        tg_adm_reply_error(res, 500, "internal_error", "Out of memory.");
    else if (!json_is_string(url))
        tg_adm_reply_error(res, 400, "invalid_webhook_url", "url: a string (https://...).");
    else {
        int rc = tg_webhooks_create(x, customer_id, json_string_value(url), json_object_get(body, "events"), e, &err);
        if (rc != 0)
            reply_error(res, rc, &err);
        else {
            tg_event_wake();
            tg_adm_reply_json(res, 201, endpoint_json(e, 1));
        }
    }
    if (e != NULL) {
        sodium_memzero(e, sizeof(*e));
        free(e);
    }
    json_decref(body);
}

static void patch_endpoint(const tg_webhooks_ctx_t *x, const char *customer_id, const char *id,
                           const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    json_t *url = json_object_get(body, "url"), *enabled = json_object_get(body, "enabled");
    tg_webhook_endpoint_t *e = malloc(sizeof(*e));
    tg_err_t err = {0};
    if (e == NULL)
        tg_adm_reply_error(res, 500, "internal_error", "Out of memory.");
    else if ((url != NULL && !json_is_string(url)) || (enabled != NULL && !json_is_boolean(enabled)))
        tg_adm_reply_error(res, 400, "bad_request", "url: a string; enabled: true or false.");
    else {
        int rc =
            tg_webhooks_update(x, customer_id, id, url != NULL ? json_string_value(url) : NULL,
                               json_object_get(body, "events"), enabled == NULL ? -1 : json_is_true(enabled), e, &err);
        if (rc != 0)
            reply_error(res, rc, &err);
        else {
            tg_event_wake();
            tg_adm_reply_json(res, 200, endpoint_json(e, 0));
        }
    }
    if (e != NULL) {
        sodium_memzero(e, sizeof(*e));
        free(e);
    }
    json_decref(body);
}

static void list_deliveries(tg_admin_t *a, const char *customer_id, const char *endpoint_id,
                            const tg_admin_request_t *r, tg_admin_response_t *res)
{
    tg_page_t page;
    if (tg_adm_page_parse(r, "deliveries", &page, res) != 0)
        return;
    tg_err_t err = {0};
    tg_page_end_t end;
    json_t *arr = json_array();
    int rc = tg_store_webhook_delivery_page(a->d.store, endpoint_id, customer_id, &page, on_delivery, arr, &end, &err);
    if (rc != 0) {
        json_decref(arr);
        tg_adm_reply_list_error(res, rc, "webhook deliveries", &err);
        return;
    }
    tg_adm_reply_page(res, "deliveries", arr, &end);
}

static void get_delivery(tg_admin_t *a, const char *customer_id, const char *id, tg_admin_response_t *res)
{
    tg_webhook_delivery_t d;
    tg_err_t err = {0};
    int rc = tg_store_webhook_delivery_get(a->d.store, id, &d, &err);
    if (rc == 0 && strcmp(d.customer_id, customer_id) != 0)
        rc = tg_errf(&err, TG_ENOTFOUND, "no webhook delivery %.60s", id);
    if (rc != 0) {
        tg_adm_reply_svc_error(res, rc, &err);
        return;
    }
    json_t *j = delivery_json(&d), *attempts = json_array();
    if (tg_store_webhook_attempt_list(a->d.store, d.id, 100, on_attempt, attempts, &err) != 0) {
        json_decref(j);
        json_decref(attempts);
        tg_adm_reply_error(res, 500, "internal_error", "Listing attempts failed: %s", err.msg);
        return;
    }
    json_object_set_new(j, "attempts", attempts);
    tg_adm_reply_json(res, 200, j);
}

static void list_events(tg_admin_t *a, const char *customer_id, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    tg_page_t page;
    if (tg_adm_page_parse(r, "events", &page, res) != 0)
        return;
    tg_err_t err = {0};
    tg_page_end_t end;
    json_t *arr = json_array();
    int rc = tg_store_event_page(a->d.store, customer_id, &page, on_event, arr, &end, &err);
    if (rc != 0) {
        json_decref(arr);
        tg_adm_reply_list_error(res, rc, "events", &err);
        return;
    }
    tg_adm_reply_page(res, "events", arr, &end);
}

/* GET/PUT notification-settings: {"email_events": "*" | [types]} (a customer's own); the answer
 * adds email_enabled (an email: section is configured) and email_choices (the types to choose
 * from). */
static void notification_settings(tg_admin_t *a, const char *customer_id, const tg_admin_request_t *r,
                                  tg_admin_response_t *res)
{
    tg_err_t err = {0};
    int rc = 0;
    if (tg_adm_method_is(r, "PUT")) {
        json_t *body = tg_adm_parse_body(r, res);
        if (body == NULL)
            return;
        json_t *ev = json_object_get(body, "email_events");
        const char *types[64];
        size_t n = 0;
        int all = json_is_string(ev) && strcmp(json_string_value(ev), "*") == 0;
        if (!all && (!json_is_array(ev) || json_array_size(ev) > 64)) {
            json_decref(body);
            tg_adm_reply_error(res, 400, "bad_request", "email_events must be \"*\" or a list of at most 64 event types.");
            return;
        }
        for (size_t i = 0; !all && i < json_array_size(ev); i++)
            types[n++] = json_string_value(json_array_get(ev, i));
        rc = tg_event_email_choice_put(a->d.store, customer_id, all, types, n, tg_adm_now_s(), &err);
        json_decref(body);
    } else if (!tg_adm_method_is(r, "GET")) {
        tg_adm_reply_error(res, 405, "method_not_allowed", "Use GET or PUT.");
        return;
    }
    char chosen[2048];
    int all = 0;
    if (rc == 0)
        rc = tg_event_email_choice_get(a->d.store, customer_id, &all, chosen, sizeof(chosen), &err);
    if (rc != 0) {
        reply_error(res, rc, &err);
        return;
    }
    json_t *list = all ? json_string("*") : json_array();
    for (char *p = all ? NULL : chosen, *tok; p != NULL && *p != '\0'; p = tok) {
        tok = strchr(p, ',');
        if (tok != NULL)
            *tok++ = '\0';
        json_array_append_new(list, json_string(p));
    }
    /* The types the customer may choose from, in the order of events.h: the page offers these. */
    json_t *choices = json_array();
    for (size_t i = 0; tg_event_types[i] != NULL; i++)
        if (tg_event_emailable(tg_event_types[i]))
            json_array_append_new(choices, json_string(tg_event_types[i]));
    tg_adm_reply_json(res, 200,
                      json_pack("{s:o,s:b,s:o}", "email_events", list, "email_enabled", a->d.cfg->email.enabled,
                                "email_choices", choices));
}

int tg_adm_notify_route(tg_admin_t *a, const char *customer_id, const tg_adm_segs_t *s, size_t at,
                        const tg_admin_request_t *r, tg_admin_response_t *res)
{
    int owner = customer_id[0] == '\0';
    tg_webhooks_ctx_t x = {a->d.cfg, a->d.store};
    size_t n = s->n - at;
    char id[TG_ID_MAX];
    tg_err_t err = {0};
    if (tg_adm_seg_is(s, at, "notification-settings") && n == 1 && !owner) {
        notification_settings(a, customer_id, r, res);
        return 1;
    }
    if (tg_adm_seg_is(s, at, "events") && n == 1) {
        if (!tg_adm_method_is(r, "GET"))
            tg_adm_reply_error(res, 405, "method_not_allowed", "Use GET.");
        else
            list_events(a, owner ? NULL : customer_id, r, res);
        return 1;
    }
    if (tg_adm_seg_is(s, at, "webhook-deliveries")) {
        if (n == 1 && tg_adm_method_is(r, "GET"))
            list_deliveries(a, customer_id, NULL, r, res);
        else if (n < 2 || n > 3 || tg_adm_seg_copy(s, at + 1, id, sizeof(id)) != 0 ||
                 (n == 3 && !tg_adm_seg_is(s, at + 2, "resend")))
            tg_adm_reply_error(res, 404, "route_not_found", "No such route.");
        else if (n == 2 && tg_adm_method_is(r, "GET"))
            get_delivery(a, customer_id, id, res);
        else if (n == 3 && tg_adm_method_is(r, "POST")) {
            tg_webhook_delivery_t d;
            int rc = tg_webhooks_resend(&x, customer_id, id, &d, &err);
            if (rc != 0)
                reply_error(res, rc, &err);
            else
                tg_adm_reply_json(res, 202, delivery_json(&d));
        } else
            tg_adm_reply_error(res, 405, "method_not_allowed", "Method not allowed here.");
        return 1;
    }
    if (!tg_adm_seg_is(s, at, "webhook-endpoints"))
        return 0;
    if (n == 1) {
        if (tg_adm_method_is(r, "POST"))
            create_endpoint(a, &x, customer_id, r, res);
        else if (tg_adm_method_is(r, "GET")) {
            json_t *arr = json_array();
            if (tg_store_webhook_endpoint_list(a->d.store, customer_id, on_endpoint, arr, &err) != 0) {
                json_decref(arr);
                tg_adm_reply_error(res, 500, "internal_error", "Listing webhook endpoints failed: %s", err.msg);
            } else
                tg_adm_reply_json(res, 200, json_pack("{s:o}", "data", arr));
        } else
            tg_adm_reply_error(res, 405, "method_not_allowed", "Use GET or POST.");
        return 1;
    }
    /* The route's shape and method first, then the endpoint (route_not_found or 405, never "no
     * such webhook endpoint", for a wrong URL). */
    int deliveries = n == 3 && tg_adm_seg_is(s, at + 2, "deliveries");
    int action = n == 3 && (tg_adm_seg_is(s, at + 2, "rotate-secret") || tg_adm_seg_is(s, at + 2, "test"));
    if (n > 3 || (n == 3 && !deliveries && !action)) {
        tg_adm_reply_error(res, 404, "route_not_found", "No such route.");
        return 1;
    }
    if (n == 2 ? !tg_adm_method_is(r, "GET") && !tg_adm_method_is(r, "PATCH") && !tg_adm_method_is(r, "DELETE")
               : !tg_adm_method_is(r, deliveries ? "GET" : "POST")) {
        tg_adm_reply_error(res, 405, "method_not_allowed", "%s",
                           n == 2 ? "Use GET, PATCH or DELETE." : deliveries ? "Use GET." : "Use POST.");
        return 1;
    }
    if (tg_adm_seg_copy(s, at + 1, id, sizeof(id)) != 0) {
        tg_adm_reply_error(res, 404, "not_found", "No such webhook endpoint.");
        return 1;
    }
    tg_webhook_endpoint_t *e = malloc(sizeof(*e));
    if (e == NULL) {
        tg_adm_reply_error(res, 500, "internal_error", "Out of memory.");
        return 1;
    }
    int rc;
    if (n == 2 && tg_adm_method_is(r, "GET")) {
        if ((rc = tg_webhooks_get(&x, customer_id, id, e, &err)) != 0)
            reply_error(res, rc, &err);
        else
            tg_adm_reply_json(res, 200, endpoint_json(e, 0));
    } else if (n == 2 && tg_adm_method_is(r, "PATCH")) {
        patch_endpoint(&x, customer_id, id, r, res);
    } else if (n == 2 && tg_adm_method_is(r, "DELETE")) {
        if ((rc = tg_webhooks_delete(&x, customer_id, id, &err)) != 0)
            reply_error(res, rc, &err);
        else
            tg_adm_reply_json(res, 200, json_pack("{s:s,s:b}", "id", id, "deleted", 1));
    } else if (n == 3 && tg_adm_seg_is(s, at + 2, "rotate-secret") && tg_adm_method_is(r, "POST")) {
        if ((rc = tg_webhooks_rotate(&x, customer_id, id, e, &err)) != 0)
            reply_error(res, rc, &err);
        else
            tg_adm_reply_json(res, 200, endpoint_json(e, 1));
    } else if (n == 3 && tg_adm_seg_is(s, at + 2, "test") && tg_adm_method_is(r, "POST")) {
        char event_id[TG_ID_MAX];
        if ((rc = tg_webhooks_test(&x, customer_id, id, event_id, &err)) != 0)
            reply_error(res, rc, &err);
        else
            tg_adm_reply_json(res, 202, json_pack("{s:s,s:s}", "event", event_id, "type", TG_EVENT_WEBHOOK_TEST));
    } else if (n == 3 && tg_adm_seg_is(s, at + 2, "deliveries") && tg_adm_method_is(r, "GET")) {
        if ((rc = tg_webhooks_get(&x, customer_id, id, e, &err)) != 0)
            reply_error(res, rc, &err);
        else
            list_deliveries(a, customer_id, id, r, res);
    } else {
        tg_adm_reply_error(res, 405, "method_not_allowed", "Method not allowed here."); /* checked above */
    }
    sodium_memzero(e, sizeof(*e));
    free(e);
    return 1;
}
