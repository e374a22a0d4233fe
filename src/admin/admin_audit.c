/* admin_audit.c - the audit log on the admin port: which requests are changes worth an entry,
 * the target's state before and after them, and GET /v1/admin/audit.
 *
 * The admin API and the portal route requests to many handlers; rather than an audit call
 * in each (and one forgotten in the next handler added), the routers call tg_adm_audit_begin
 * before dispatching and tg_adm_audit_end after. begin looks the request up in a table of the
 * changing routes (method and path pattern -> action, target and how to read the target) and
 * reads the target's state; end, when the handler answered 2xx, reads it again and records
 * the entry (ops/audit.h). A change that failed (any other status) leaves no entry.
 *
 * Changes whose work finishes later (the portal's Argon2id password hashing: sign-up, password
 * change and reset) are recorded by their finish functions with tg_adm_audit_now.
 *
 * The handlers commit their changes in their own transactions (the services', or one
 * statement); the entry is written right after, on the same connection and the same (admin
 * back) thread, before the answer leaves. A crash between the two would lose the entry but not
 * the change; a failed audit write is logged as an error. */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/admin_int.h"
#include "notify/events.h"
#include "ops/audit.h"
#include "store/store_notify.h"
#include "store/store_thresholds.h"
#include "util/log.h"
#include "util/money.h"

/* How the target's state is read before and after. */
typedef enum { SNAP_NONE, SNAP_CUSTOMER, SNAP_KEY, SNAP_INVOICE, SNAP_ENDPOINT, SNAP_BUDGET, SNAP_SETTINGS, SNAP_INGEST_TOKEN } snap_t;

#define ID_FROM_RESPONSE (-1) /* a creation: the new thing's "id" in the answer */
#define ID_NONE (-2)          /* no target id (config, clock, a billing run) */
#define ID_SELF (-3)          /* the signed-in customer (portal) */
#define AFTER_BODY 1          /* "after" is the answer itself (redacted), not a second read */

typedef struct {
    const char *method;
    const char *pattern[5]; /* segments from `at`; "*" any one; NULL ends */
    const char *action;     /* "$2": the prefix and segment 2 ("invoice.$2" -> "invoice.finalize") */
    const char *target_type;
    int id_seg;
    snap_t snap;
    int flags;
} audit_route_t;

/* The admin API's changes, from /v1/admin/ on. The session and the reload's SIGHUP twin are
 * recorded where they happen (admin_api.c). */
static const audit_route_t ADMIN_ROUTES[] = {
    {"POST", {"customers"}, "customer.create", "customer", ID_FROM_RESPONSE, SNAP_CUSTOMER, 0},
    {"PATCH", {"customers", "*"}, "customer.update", "customer", 1, SNAP_CUSTOMER, 0},
    {"POST", {"customers", "*", "keys"}, "key.create", "key", ID_FROM_RESPONSE, SNAP_KEY, 0},
    {"POST", {"customers", "*", "cancel"}, "customer.cancel", "customer", 1, SNAP_CUSTOMER, 0},
    {"POST", {"customers", "*", "resume"}, "customer.resume", "customer", 1, SNAP_CUSTOMER, 0},
    {"POST", {"customers", "*", "items"}, "customer.item", "customer", 1, SNAP_NONE, AFTER_BODY},
    {"PUT", {"customers", "*", "budget"}, "customer.budget", "customer", 1, SNAP_BUDGET, 0},
    {"DELETE", {"keys", "*"}, "key.revoke", "key", 1, SNAP_KEY, 0},
    {"POST", {"keys", "*", "rotate"}, "key.rotate", "key", 1, SNAP_KEY, AFTER_BODY},
    /* the states are read from the store: the token shown once never reaches the log */
    {"POST", {"ingest-tokens"}, "ingest_token.create", "ingest_token", ID_FROM_RESPONSE, SNAP_INGEST_TOKEN, 0},
    {"DELETE", {"ingest-tokens", "*"}, "ingest_token.revoke", "ingest_token", 1, SNAP_INGEST_TOKEN, 0},
    {"POST", {"reload"}, "config.reload", "config", ID_NONE, SNAP_NONE, AFTER_BODY},
    {"POST", {"clock"}, "clock.advance", "clock", ID_NONE, SNAP_NONE, AFTER_BODY},
    {"POST", {"invoices", "run"}, "invoice.run", "billing", ID_NONE, SNAP_NONE, AFTER_BODY},
    {"POST", {"invoices", "*", "*"}, "invoice.$2", "invoice", 1, SNAP_INVOICE, 0},
    {"POST", {"emails", "*", "resend"}, "email.resend", "email", 1, SNAP_NONE, AFTER_BODY},
    {"POST", {"stripe", "outbox", "*", "retry"}, "stripe_outbox.retry", "stripe_outbox", 2, SNAP_NONE, AFTER_BODY},
    {"POST", {"webhook-endpoints"}, "webhook_endpoint.create", "webhook_endpoint", ID_FROM_RESPONSE, SNAP_ENDPOINT, 0},
    {"PATCH", {"webhook-endpoints", "*"}, "webhook_endpoint.update", "webhook_endpoint", 1, SNAP_ENDPOINT, 0},
    {"DELETE", {"webhook-endpoints", "*"}, "webhook_endpoint.delete", "webhook_endpoint", 1, SNAP_ENDPOINT, 0},
    {"POST",
     {"webhook-endpoints", "*", "rotate-secret"},
     "webhook_endpoint.rotate_secret",
     "webhook_endpoint",
     1,
     SNAP_ENDPOINT,
     0},
    {"POST", {"webhook-endpoints", "*", "test"}, "webhook_endpoint.test", "webhook_endpoint", 1, SNAP_NONE, AFTER_BODY},
    {"POST",
     {"webhook-deliveries", "*", "resend"},
     "webhook_delivery.resend",
     "webhook_delivery",
     1,
     SNAP_NONE,
     AFTER_BODY},
};

/* The portal's changes, from /v1/me/ on (sign-up, password change and reset: tg_adm_audit_now). */
static const audit_route_t PORTAL_ROUTES[] = {
    {"POST", {"keys"}, "key.create", "key", ID_FROM_RESPONSE, SNAP_KEY, 0},
    {"DELETE", {"keys", "*"}, "key.revoke", "key", 1, SNAP_KEY, 0},
    {"POST", {"keys", "*", "rotate"}, "key.rotate", "key", 1, SNAP_KEY, AFTER_BODY},
    {"POST", {"plan"}, "customer.plan_change", "customer", ID_SELF, SNAP_CUSTOMER, 0},
    {"POST", {"cancel"}, "customer.cancel", "customer", ID_SELF, SNAP_CUSTOMER, 0},
    {"POST", {"resume"}, "customer.resume", "customer", ID_SELF, SNAP_CUSTOMER, 0},
    {"PUT", {"budget"}, "customer.budget", "customer", ID_SELF, SNAP_BUDGET, 0},
    {"PUT", {"notification-settings"}, "customer.notification_settings", "customer", ID_SELF, SNAP_SETTINGS, 0},
    {"POST", {"webhook-endpoints"}, "webhook_endpoint.create", "webhook_endpoint", ID_FROM_RESPONSE, SNAP_ENDPOINT, 0},
    {"PATCH", {"webhook-endpoints", "*"}, "webhook_endpoint.update", "webhook_endpoint", 1, SNAP_ENDPOINT, 0},
    {"DELETE", {"webhook-endpoints", "*"}, "webhook_endpoint.delete", "webhook_endpoint", 1, SNAP_ENDPOINT, 0},
    {"POST",
     {"webhook-endpoints", "*", "rotate-secret"},
     "webhook_endpoint.rotate_secret",
     "webhook_endpoint",
     1,
     SNAP_ENDPOINT,
     0},
    {"POST", {"webhook-endpoints", "*", "test"}, "webhook_endpoint.test", "webhook_endpoint", 1, SNAP_NONE, AFTER_BODY},
    {"POST",
     {"webhook-deliveries", "*", "resend"},
     "webhook_delivery.resend",
     "webhook_delivery",
     1,
     SNAP_NONE,
     AFTER_BODY},
};

/* ---- actors ---- */

void tg_adm_audit_actor(const tg_admin_request_t *r, tg_audit_actor_kind_t kind, const char *id, tg_audit_actor_t *who)
{
    memset(who, 0, sizeof(*who));
    /* the tollgate command says so (a claim: it holds the admin token either way) */
    who->kind = kind == TG_AUDIT_ADMIN_TOKEN && strcmp(r->client, "cli") == 0 ? TG_AUDIT_CLI : kind;
    snprintf(who->id, sizeof(who->id), "%s", id != NULL ? id : "");
    snprintf(who->source, sizeof(who->source), "%s", r->remote_addr);
    snprintf(who->request_id, sizeof(who->request_id), "%s", r->request_id);
}

/* ---- snapshots ---- */

static json_t *endpoint_snapshot(const tg_webhook_endpoint_t *e)
{
    /* no secret here at all: whether one was rotated shows in previous_secret_until */
    return json_pack("{s:s,s:s,s:s,s:s,s:b,s:s,s:I,s:I}", "id", e->id, "customer", e->customer_id, "url", e->url,
                     "events", e->events, "enabled", e->enabled, "disabled_reason", e->disabled_reason,
                     "previous_secret_until", (json_int_t)e->prev_secret_until, "updated_at",
                     (json_int_t)e->updated_at);
}

/* The target's state as JSON, or NULL when there is none (not yet, or no longer). */
static json_t *snapshot(tg_admin_t *a, snap_t kind, const char *id)
{
    tg_err_t err = {0};
    if (id == NULL || id[0] == '\0')
        return NULL;
    switch (kind) {
    case SNAP_NONE:
        return NULL;
    case SNAP_CUSTOMER: {
        tg_customer_t c;
        return tg_store_customer_get(a->d.store, id, &c, &err) == 0 ? tg_adm_customer_json(a, &c) : NULL;
    }
    case SNAP_KEY: {
        tg_key_t k;
        return tg_store_key_get(a->d.store, id, &k, &err) == 0 ? tg_adm_key_json(a, &k) : NULL;
    }
    case SNAP_INVOICE: {
        tg_invoice_t inv;
        if (tg_store_invoice_get(a->d.store, id, &inv, &err) != 0)
            return NULL;
        json_t *j =
            json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:b}", "id", inv.id, "customer", inv.customer_id, "status", inv.status,
                      "number", inv.number, "total", (json_int_t)inv.total, "currency", inv.currency, "held", inv.held);
        tg_invoice_clear(&inv);
        return j;
    }
    case SNAP_ENDPOINT: {
        tg_webhook_endpoint_t *e = malloc(sizeof(*e));
        json_t *j =
            e != NULL && tg_store_webhook_endpoint_get(a->d.store, id, e, &err) == 0 ? endpoint_snapshot(e) : NULL;
        if (e != NULL)
            sodium_memzero(e, sizeof(*e));
        free(e);
        return j;
    }
    case SNAP_BUDGET: {
        int64_t amount = 0;
        tg_customer_t c;
        int rc = tg_store_budget_get(a->d.store, id, &amount, &err);
        if (rc != 0 && rc != TG_ENOTFOUND)
            return NULL;
        const tg_plan_t *plan =
            tg_store_customer_get(a->d.store, id, &c, &err) == 0 ? tg_config_find_plan(tg_adm_cfg(a), c.plan_id) : NULL;
        char buf[TG_MONEY_FMT_MAX];
        if (rc != 0 || amount <= 0 || plan == NULL ||
            tg_money_format(amount, plan->currency_digits, buf, sizeof(buf)) < 0)
            return json_pack("{s:n}", "budget");
        return json_pack("{s:s,s:s}", "budget", buf, "currency", plan->currency);
    }
    case SNAP_INGEST_TOKEN: {
        tg_ingest_token_row_t t;
        return tg_store_ingest_token_get(a->d.store, id, &t, &err) == 0 ? tg_adm_ingest_token_json(&t) : NULL;
    }
    case SNAP_SETTINGS: {
        char chosen[2048];
        int all = 0;
        if (tg_event_email_choice_get(a->d.store, id, &all, chosen, sizeof(chosen), &err) != 0)
            return NULL;
        return json_pack("{s:s}", "email_events", all ? "*" : chosen);
    }
    }
    return NULL;
}

/* ---- begin / end ---- */

static int route_matches(const audit_route_t *rt, const tg_adm_segs_t *s, size_t at, const tg_admin_request_t *r)
{
    if (!tg_adm_method_is(r, rt->method))
        return 0;
    size_t n = 0;
    while (n < 5 && rt->pattern[n] != NULL)
        n++;
    if (s->n != at + n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(rt->pattern[i], "*") != 0 && !tg_adm_seg_is(s, at + i, rt->pattern[i]))
            return 0;
    return 1;
}

void tg_adm_audit_begin(tg_admin_t *a, tg_adm_audit_t *au, const tg_audit_actor_t *who, int portal, const char *self_id,
                        const tg_adm_segs_t *s, size_t at, const tg_admin_request_t *r)
{
    memset(au, 0, sizeof(*au));
    const audit_route_t *table = portal ? PORTAL_ROUTES : ADMIN_ROUTES;
    size_t count =
        portal ? sizeof(PORTAL_ROUTES) / sizeof(PORTAL_ROUTES[0]) : sizeof(ADMIN_ROUTES) / sizeof(ADMIN_ROUTES[0]);
    const audit_route_t *rt = NULL;
    for (size_t i = 0; i < count && rt == NULL; i++)
        if (route_matches(&table[i], s, at, r))
            rt = &table[i];
    if (rt == NULL)
        return;
    au->on = 1;
    au->who = *who;
    au->snap = rt->snap;
    au->after_body = (rt->flags & AFTER_BODY) != 0;
    au->id_from_response = rt->id_seg == ID_FROM_RESPONSE;
    const char *dollar = strchr(rt->action, '$');
    if (dollar != NULL) {
        char seg[32];
        size_t idx = (size_t)(dollar[1] - '0');
        if (tg_adm_seg_copy(s, at + idx, seg, sizeof(seg)) != 0)
            snprintf(seg, sizeof(seg), "change");
        snprintf(au->action, sizeof(au->action), "%.*s%s", (int)(dollar - rt->action), rt->action, seg);
    } else {
        snprintf(au->action, sizeof(au->action), "%s", rt->action);
    }
    snprintf(au->target_type, sizeof(au->target_type), "%s", rt->target_type);
    if (rt->id_seg >= 0 && tg_adm_seg_copy(s, at + (size_t)rt->id_seg, au->target_id, sizeof(au->target_id)) != 0)
        au->target_id[0] = '\0';
    else if (rt->id_seg == ID_SELF)
        snprintf(au->target_id, sizeof(au->target_id), "%s", self_id != NULL ? self_id : "");
    au->before = snapshot(a, au->snap, au->target_id);
}

static const char *json_str(const json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v != NULL ? v : "";
}

/* customer.update names what changed when it is one of the things the owner looks for. */
static void refine_action(tg_adm_audit_t *au, const json_t *before, const json_t *after)
{
    if (strcmp(au->action, "customer.item") == 0) { /* a negative amount is a credit */
        snprintf(au->action, sizeof(au->action), "%s",
                 json_str(after, "amount")[0] == '-' ? "customer.credit" : "customer.charge");
        return;
    }
    if (strcmp(au->action, "customer.update") != 0 || before == NULL || after == NULL)
        return;
    if (strcmp(json_str(before, "plan"), json_str(after, "plan")) != 0 ||
        strcmp(json_str(before, "pending_plan"), json_str(after, "pending_plan")) != 0)
        snprintf(au->action, sizeof(au->action), "customer.plan_change");
    else if (strcmp(json_str(before, "status"), json_str(after, "status")) != 0)
        snprintf(au->action, sizeof(au->action), "customer.status_change");
}

void tg_adm_audit_now(tg_admin_t *a, const tg_audit_actor_t *who, const char *action, const char *target_type,
                      const char *target_id, const json_t *before, const json_t *after)
{
    tg_err_t err = {0};
    if (tg_audit_record(a->d.store, who, action, target_type, target_id, before, after, &err) != 0)
        tg_log(TG_LOG_ERROR, "audit: %s of %s %s by %s was done but not recorded: %s", action, target_type, target_id,
               tg_audit_actor_kind_name(who->kind), err.msg);
}

void tg_adm_audit_end(tg_admin_t *a, tg_adm_audit_t *au, const tg_admin_response_t *res)
{
    if (!au->on)
        return;
    json_t *body = NULL, *after = NULL;
    /* slow: the change is not done yet (its finish records it); not 2xx: nothing changed */
    if (res->slow == NULL && res->status >= 200 && res->status < 300) {
        if (res->body != NULL && res->body_len > 0 && res->body_len <= 4 * TG_AUDIT_JSON_MAX)
            body = json_loadb(res->body, res->body_len, 0, NULL);
        if (au->id_from_response)
            snprintf(au->target_id, sizeof(au->target_id), "%s", json_str(body, "id"));
        if (au->after_body)
            after = json_incref(body);
        else
            after = snapshot(a, au->snap, au->target_id);
        refine_action(au, au->before, after);
        tg_adm_audit_now(a, &au->who, au->action, au->target_type, au->target_id, au->before, after);
    }
    json_decref(body);
    json_decref(after);
    json_decref(au->before);
    au->before = NULL;
    au->on = 0;
}

/* ---- GET /v1/admin/audit ---- */

/* A time parameter: milliseconds since the epoch, or RFC 3339 UTC ("2026-03-01T00:00:00Z",
 * optionally with .mmm). 0 ok, -1 not one. */
static int parse_time_ms(const char *s, int64_t *out)
{
    if (s[0] >= '0' && s[0] <= '9' && strspn(s, "0123456789") == strlen(s)) {
        if (strlen(s) > 15) /* past year 30000: refused rather than overflowing */
            return -1;
        int64_t v = 0;
        for (const char *p = s; *p != '\0'; p++)
            v = v * 10 + (*p - '0');
        *out = v;
        return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest == NULL)
        return -1;
    int ms = 0;
    if (*rest == '.') {
        int digits = 0;
        for (rest++; *rest >= '0' && *rest <= '9'; rest++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*rest - '0');
        if (digits == 0)
            return -1;
        for (; digits < 3; digits++)
            ms *= 10;
    }
    if (strcmp(rest, "Z") != 0)
        return -1;
    time_t t = timegm(&tm);
    if (t < 0)
        return -1;
    *out = (int64_t)t * 1000 + ms;
    return 0;
}

static int on_audit_row(const tg_audit_row_t *row, void *arg)
{
    json_t *j = tg_audit_row_json(row);
    return j == NULL || json_array_append_new(arg, j) != 0;
}

void tg_adm_audit_list(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    if (!tg_adm_method_is(r, "GET")) {
        /* the log is never edited through the API: there is nothing but reading */
        tg_adm_reply_error(res, 405, "method_not_allowed", "The audit log is read-only: use GET.");
        return;
    }
    char actor[TG_AUDIT_ACTOR_MAX], action[TG_AUDIT_ACTION_MAX], type[TG_AUDIT_TYPE_MAX], target[TG_AUDIT_TARGET_MAX];
    char from[40], to[40];
    struct {
        const char *name;
        char *out;
        size_t cap;
    } params[] = {{"actor", actor, sizeof(actor)},     {"action", action, sizeof(action)},
                  {"target_type", type, sizeof(type)}, {"target_id", target, sizeof(target)},
                  {"from", from, sizeof(from)},        {"to", to, sizeof(to)}};
    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
        int got = tg_adm_query_param(r, params[i].name, params[i].out, params[i].cap);
        if (got < 0) {
            tg_adm_reply_error(res, 400, "invalid_parameter", "%s: at most %zu characters.", params[i].name,
                               params[i].cap - 1);
            return;
        }
        if (got == 0)
            params[i].out[0] = '\0';
    }
    tg_audit_filter_t f = {actor, action, type, target, 0, 0};
    if (from[0] != '\0' && parse_time_ms(from, &f.from_ms) != 0) {
        tg_adm_reply_error(res, 400, "invalid_parameter",
                           "from: milliseconds since 1970 or a UTC time such as 2026-03-01T00:00:00Z.");
        return;
    }
    if (to[0] != '\0' && parse_time_ms(to, &f.to_ms) != 0) {
        tg_adm_reply_error(res, 400, "invalid_parameter",
                           "to: milliseconds since 1970 or a UTC time such as 2026-03-01T00:00:00Z.");
        return;
    }
    tg_page_t page;
    if (tg_adm_page_parse(r, "audit", &page, res) != 0)
        return;
    json_t *arr = json_array();
    tg_page_end_t end;
    tg_err_t err = {0};
    int rc = arr != NULL ? tg_store_audit_page(a->d.store, &f, &page, on_audit_row, arr, &end, &err)
                         : tg_errf(&err, TG_ENOMEM, "out of memory");
    if (rc != 0) {
        json_decref(arr);
        tg_adm_reply_list_error(res, rc, "the audit log", &err);
        return;
    }
    tg_adm_reply_page(res, "audit", arr, &end);
}
