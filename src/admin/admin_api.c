/* admin_api.c - see admin_api.h. Routes, JSON in and out, and the write-store-then-memory rule. */
#include "admin/admin_api.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "billing/invoice.h"
#include "billing/pricing.h"
#include "gateway/apikey.h"
#include "metrics/metrics.h"
#include "util/clock.h"
#include "util/period.h"

struct tg_admin {
    tg_admin_deps_t d;
    uint8_t token_digest[32];
};

/* ---- small helpers ---- */

static void fmt_time(int64_t t, char *buf, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *json_time(int64_t t)
{
    if (t == 0)
        return json_null();
    char buf[32];
    fmt_time(t, buf, sizeof(buf));
    return json_string(buf);
}

static int64_t now_s(void)
{
    return tg_clock_now_ns() / TG_NS_PER_SEC;
}

static void reply_json(tg_admin_response_t *res, int status, json_t *j)
{
    res->status = status;
    res->content_type = "application/json";
    res->body = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    res->body_len = res->body != NULL ? strlen(res->body) : 0;
    json_decref(j);
}

static void reply_error(tg_admin_response_t *res, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reply_error(tg_admin_response_t *res, int status, const char *type, const char *fmt, ...)
{
    char msg[512], docs[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(docs, sizeof(docs), "https://tollgate.dev/docs/errors#%s", type);
    reply_json(res, status, json_pack("{s:{s:s,s:s,s:s}}", "error", "type", type, "message", msg, "docs", docs));
}

static void random_id(const char *prefix, char *out, size_t cap)
{
    uint8_t raw[12];
    char hex[sizeof(raw) * 2 + 1];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
    snprintf(out, cap, "%s%s", prefix, hex);
}

/* Splits "/v1/admin/customers/cus_1/keys" into segments after the prefix. */
typedef struct {
    const char *seg[6];
    size_t len[6];
    size_t n;
} segs_t;

static int split_path(const char *path, size_t len, segs_t *s)
{
    s->n = 0;
    size_t i = 0;
    while (i < len) {
        if (path[i] == '/') {
            i++;
            continue;
        }
        size_t start = i;
        while (i < len && path[i] != '/')
            i++;
        if (s->n == 6)
            return -1;
        s->seg[s->n] = path + start;
        s->len[s->n++] = i - start;
    }
    return 0;
}

static int seg_is(const segs_t *s, size_t i, const char *lit)
{
    return i < s->n && s->len[i] == strlen(lit) && memcmp(s->seg[i], lit, s->len[i]) == 0;
}

static int seg_copy(const segs_t *s, size_t i, char *out, size_t cap)
{
    if (i >= s->n || s->len[i] == 0 || s->len[i] >= cap)
        return -1;
    for (size_t k = 0; k < s->len[i]; k++) {
        char c = s->seg[i][k];
        if (!(isalnum((unsigned char)c) || c == '_' || c == '-'))
            return -1;
    }
    memcpy(out, s->seg[i], s->len[i]);
    out[s->len[i]] = '\0';
    return 0;
}

static int method_is(const tg_admin_request_t *r, const char *m)
{
    return r->method_len == strlen(m) && memcmp(r->method, m, r->method_len) == 0;
}

/* Parses the body as a JSON object; an empty body is an empty object. */
static json_t *parse_body(const tg_admin_request_t *r, tg_admin_response_t *res)
{
    if (r->body_len == 0)
        return json_object();
    json_error_t je;
    json_t *j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL) {
        reply_error(res, 400, "bad_request", "The body is not valid JSON: %s at line %d column %d.", je.text,
                    je.line, je.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        reply_error(res, 400, "bad_request", "The body must be a JSON object.");
        return NULL;
    }
    return j;
}

/* Optional string field: NULL if absent; sets *bad when present but not a string. */
static const char *opt_string(json_t *obj, const char *name, int *bad)
{
    json_t *v = json_object_get(obj, name);
    if (v == NULL || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        *bad = 1;
        return NULL;
    }
    return json_string_value(v);
}

/* ---- customers ---- */

static const char *display_status(const tg_customer_t *c, int64_t now)
{
    if (strcmp(c->status, "trialing") == 0 && c->trial_end <= now)
        return "active";
    return c->status;
}

static json_t *customer_json(tg_admin_t *a, const tg_customer_t *c)
{
    int64_t now = now_s(), ps = 0, pe = 0;
    const tg_plan_t *plan = tg_config_find_plan(a->d.cfg, c->plan_id);
    if (plan != NULL)
        tg_period_bounds(c->anchor_at, plan->interval, now, &ps, &pe);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:{s:o,s:o},s:o,s:o,s:o}", "id", c->id, "email", c->email,
                     "name", c->name, "plan", c->plan_id, "status", display_status(c, now), "created_at",
                     json_time(c->created_at), "trial_end", json_time(c->trial_end), "current_period", "start",
                     json_time(ps), "end", json_time(pe), "pending_plan",
                     c->pending_plan_id[0] ? json_string(c->pending_plan_id) : json_null(), "pending_at",
                     json_time(c->pending_at), "cancel_at", json_time(c->cancel_at));
}

static int valid_email(const char *e)
{
    const char *at = strchr(e, '@');
    size_t n = strlen(e);
    if (at == NULL || at == e || n >= TG_EMAIL_MAX || strchr(at + 1, '@') != NULL)
        return 0;
    const char *dot = strrchr(at, '.');
    if (dot == NULL || dot == at + 1 || dot[1] == '\0')
        return 0;
    for (const char *p = e; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == '"' || *p == ',')
            return 0;
    return 1;
}

static void create_customer(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = parse_body(r, res);
    if (body == NULL)
        return;
    int bad = 0;
    const char *email = opt_string(body, "email", &bad), *name = opt_string(body, "name", &bad),
               *plan_id = opt_string(body, "plan", &bad);
    const tg_plan_t *plan = plan_id != NULL ? tg_config_find_plan(a->d.cfg, plan_id) : NULL;
    if (bad)
        reply_error(res, 400, "bad_request", "email, name and plan must be strings.");
    else if (email == NULL || !valid_email(email))
        reply_error(res, 400, "bad_request", "email: a valid email address is required.");
    else if (name != NULL && strlen(name) >= TG_NAME_MAX)
        reply_error(res, 400, "bad_request", "name: at most %d characters.", TG_NAME_MAX - 1);
    else if (plan == NULL)
        reply_error(res, 400, "bad_request", "plan: \"%s\" is not a plan; plans are defined in the configuration.",
                    plan_id != NULL ? plan_id : "");
    else {
        tg_customer_t c;
        memset(&c, 0, sizeof(c));
        random_id("cus_", c.id, sizeof(c.id));
        snprintf(c.email, sizeof(c.email), "%s", email);
        snprintf(c.name, sizeof(c.name), "%s", name != NULL ? name : "");
        snprintf(c.plan_id, sizeof(c.plan_id), "%s", plan->id);
        c.created_at = c.anchor_at = now_s();
        if (plan->trial_days > 0) {
            snprintf(c.status, sizeof(c.status), "trialing");
            c.trial_end = c.created_at + (int64_t)plan->trial_days * 86400;
        } else {
            snprintf(c.status, sizeof(c.status), "active");
        }
        tg_err_t err = {0};
        int rc = tg_store_customer_insert(a->d.store, &c, &err);
        if (rc == TG_EEXIST)
            reply_error(res, 409, "conflict", "A customer with the email %s exists already.", email);
        else if (rc != 0)
            reply_error(res, 500, "internal_error", "Storing the customer failed: %s", err.msg);
        else if (tg_accounts_put_customer(a->d.accounts, &c, &err) != 0)
            reply_error(res, 500, "internal_error", "%s", err.msg);
        else
            reply_json(res, 201, customer_json(a, &c));
    }
    json_decref(body);
}

typedef struct {
    tg_admin_t *a;
    json_t *arr;
} list_ctx_t;

static int list_customer_cb(const tg_customer_t *c, void *arg)
{
    list_ctx_t *lc = arg;
    json_array_append_new(lc->arr, customer_json(lc->a, c));
    return 0;
}

static int load_customer(tg_admin_t *a, const segs_t *s, size_t idx, tg_customer_t *c, tg_admin_response_t *res)
{
    char id[TG_ID_MAX];
    tg_err_t err = {0};
    if (seg_copy(s, idx, id, sizeof(id)) != 0) {
        reply_error(res, 404, "not_found", "No such customer.");
        return -1;
    }
    int rc = tg_store_customer_get(a->d.store, id, c, &err);
    if (rc == TG_ENOTFOUND) {
        reply_error(res, 404, "not_found", "No customer %s.", id);
        return -1;
    }
    if (rc != 0) {
        reply_error(res, 500, "internal_error", "Reading the customer failed: %s", err.msg);
        return -1;
    }
    return 0;
}

/* A plan's base price per month, to tell upgrades from downgrades across intervals. */
static __int128 monthly_price(const tg_plan_t *p)
{
    return p->interval == TG_INTERVAL_YEAR ? (__int128)p->price / 12 : (__int128)p->price;
}

static int add_item(tg_admin_t *a, const tg_customer_t *c, const char *desc, tg_money_t amount, const char *currency,
                    tg_err_t *err)
{
    tg_invoice_item_t it = {0};
    snprintf(it.customer_id, sizeof(it.customer_id), "%s", c->id);
    it.created_at = now_s();
    snprintf(it.description, sizeof(it.description), "%s", desc);
    it.amount = amount;
    snprintf(it.currency, sizeof(it.currency), "%s", currency);
    return tg_store_invoice_item_add(a->d.store, &it, err);
}

/* Changes c's plan in memory (the caller stores it). An upgrade, or "when": "now", takes effect
 * at once; during a paid period it is prorated by seconds: the old plan is charged for the time
 * it was in force and the new plan's fee, billed in full at the period's end, is credited for
 * that same time. A downgrade waits for the next period (pending_plan_id). Returns non-zero if
 * it replied with an error. */
static int change_plan(tg_admin_t *a, tg_customer_t *c, const tg_plan_t *to, const char *when, tg_admin_response_t *res)
{
    const tg_plan_t *from = tg_config_find_plan(a->d.cfg, c->plan_id);
    int64_t now = now_s();
    if (from == NULL || from == to) {
        snprintf(c->plan_id, sizeof(c->plan_id), "%s", to->id);
        c->pending_plan_id[0] = '\0';
        c->pending_at = 0;
        return 0;
    }
    if (strcmp(from->currency, to->currency) != 0) {
        reply_error(res, 400, "bad_request", "plan: %s is billed in %s and %s in %s; a customer cannot change currency.",
                    from->id, from->currency, to->id, to->currency);
        return -1;
    }
    int64_t ps, pe;
    tg_period_bounds(c->anchor_at, from->interval, now, &ps, &pe);
    int upgrade = monthly_price(to) > monthly_price(from);
    if ((when != NULL && strcmp(when, "period_end") == 0) || (when == NULL && !upgrade)) {
        snprintf(c->pending_plan_id, sizeof(c->pending_plan_id), "%s", to->id);
        c->pending_at = pe;
        return 0;
    }
    int64_t paid_from = c->trial_end > ps ? c->trial_end : ps;
    if (now > paid_from && from->interval == to->interval) {
        tg_money_t old_part, new_credit;
        tg_err_t err = {0};
        char desc[TG_NAME_MAX];
        if (tg_prorate(from->price, now - paid_from, pe - ps, &old_part) != 0 ||
            tg_prorate(to->price, now - paid_from, pe - ps, &new_credit) != 0) {
            reply_error(res, 400, "bad_request", "The plan change cannot be prorated.");
            return -1;
        }
        snprintf(desc, sizeof(desc), "%s plan until the change (%" PRId64 " of %" PRId64 " days)", from->name,
                 (now - paid_from + 43199) / 86400, (pe - ps + 43199) / 86400);
        int rc = add_item(a, c, desc, old_part, from->currency, &err);
        snprintf(desc, sizeof(desc), "%s plan credit for the time before the change", to->name);
        if (rc == 0)
            rc = add_item(a, c, desc, -new_credit, to->currency, &err);
        if (rc != 0) {
            reply_error(res, 500, "internal_error", "Storing the proration failed: %s", err.msg);
            return -1;
        }
    }
    snprintf(c->plan_id, sizeof(c->plan_id), "%s", to->id);
    c->pending_plan_id[0] = '\0';
    c->pending_at = 0;
    return 0;
}

static void patch_customer(tg_admin_t *a, tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = parse_body(r, res);
    if (body == NULL)
        return;
    int bad = 0;
    const char *plan_id = opt_string(body, "plan", &bad), *status = opt_string(body, "status", &bad),
               *name = opt_string(body, "name", &bad), *when = opt_string(body, "when", &bad);
    const tg_plan_t *plan = plan_id != NULL ? tg_config_find_plan(a->d.cfg, plan_id) : NULL;
    if (bad)
        reply_error(res, 400, "bad_request", "plan, status, name and when must be strings.");
    else if (when != NULL && strcmp(when, "now") != 0 && strcmp(when, "period_end") != 0)
        reply_error(res, 400, "bad_request", "when: \"now\" or \"period_end\", not \"%s\".", when);
    else if (plan_id != NULL && plan == NULL)
        reply_error(res, 400, "bad_request", "plan: \"%s\" is not a plan.", plan_id);
    else if (status != NULL && strcmp(status, "active") != 0 && strcmp(status, "suspended") != 0 &&
             strcmp(status, "canceled") != 0)
        reply_error(res, 400, "bad_request", "status: must be \"active\", \"suspended\" or \"canceled\", not \"%s\".",
                    status);
    else if (name != NULL && strlen(name) >= TG_NAME_MAX)
        reply_error(res, 400, "bad_request", "name: at most %d characters.", TG_NAME_MAX - 1);
    else {
        /* The proration items and the customer change commit together or not at all. */
        tg_err_t err = {0};
        if (tg_store_tx_begin(a->d.store, &err) != 0) {
            reply_error(res, 500, "internal_error", "Updating the customer failed: %s", err.msg);
            json_decref(body);
            return;
        }
        if (plan != NULL && change_plan(a, c, plan, when, res) != 0) {
            tg_store_tx_rollback(a->d.store); /* change_plan replied */
            json_decref(body);
            return;
        }
        if (status != NULL) {
            /* Resuming during a trial returns to the trial. */
            if (strcmp(status, "active") == 0 && c->trial_end > now_s())
                status = "trialing";
            snprintf(c->status, sizeof(c->status), "%s", status);
            if (strcmp(status, "canceled") == 0 && c->cancel_at == 0)
                c->cancel_at = now_s();
        }
        if (name != NULL)
            snprintf(c->name, sizeof(c->name), "%s", name);
        if (tg_store_customer_update(a->d.store, c, &err) != 0 || tg_store_tx_commit(a->d.store, &err) != 0) {
            tg_store_tx_rollback(a->d.store);
            reply_error(res, 500, "internal_error", "Updating the customer failed: %s", err.msg);
        } else if (tg_accounts_put_customer(a->d.accounts, c, &err) != 0)
            reply_error(res, 500, "internal_error", "%s", err.msg);
        else
            reply_json(res, 200, customer_json(a, c));
    }
    json_decref(body);
}

/* POST /v1/admin/customers/{id}/cancel {"at_period_end": true}: at the period's end access stops
 * and that period is invoiced as usual; at once, access stops now and a final invoice bills the
 * usage to date and the base fee up to now. */
static void cancel_customer(tg_admin_t *a, tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = parse_body(r, res);
    if (body == NULL)
        return;
    json_t *ape = json_object_get(body, "at_period_end");
    if (ape != NULL && !json_is_boolean(ape)) {
        reply_error(res, 400, "bad_request", "at_period_end must be true or false.");
        json_decref(body);
        return;
    }
    int at_end = ape == NULL || json_is_true(ape);
    const tg_plan_t *plan = tg_config_find_plan(a->d.cfg, c->plan_id);
    int64_t now = now_s(), ps, pe;
    tg_period_bounds(c->anchor_at, plan->interval, now, &ps, &pe);
    tg_err_t err = {0};
    if (strcmp(c->status, "canceled") == 0) {
        reply_error(res, 409, "conflict", "Customer %s is canceled already.", c->id);
    } else if (at_end) {
        c->cancel_at = pe;
        if (tg_store_customer_update(a->d.store, c, &err) != 0)
            reply_error(res, 500, "internal_error", "Canceling failed: %s", err.msg);
        else
            reply_json(res, 200, customer_json(a, c));
    } else {
        c->cancel_at = now;
        snprintf(c->status, sizeof(c->status), "canceled");
        if (tg_store_customer_update(a->d.store, c, &err) != 0 || tg_accounts_put_customer(a->d.accounts, c, &err) != 0)
            reply_error(res, 500, "internal_error", "Canceling failed: %s", err.msg);
        else {
            if (a->d.meter != NULL)
                tg_meter_flush(a->d.meter); /* the final invoice includes every answered call */
            if (tg_invoice_close_final(a->d.store, a->d.cfg, c, now, &err) != 0)
                reply_error(res, 500, "internal_error", "Canceled, but the final invoice failed: %s", err.msg);
            else
                reply_json(res, 200, customer_json(a, c));
        }
    }
    json_decref(body);
}

/* Scheduled changes: downgrades due at a period start, cancellations due at a period end. */
static int apply_scheduled_cb(const tg_customer_t *c, void *arg)
{
    tg_admin_t *a = arg;
    int64_t now = now_s();
    tg_customer_t u = *c;
    int changed = 0;
    if (u.pending_plan_id[0] != '\0' && now >= u.pending_at && tg_config_find_plan(a->d.cfg, u.pending_plan_id)) {
        snprintf(u.plan_id, sizeof(u.plan_id), "%s", u.pending_plan_id);
        u.pending_plan_id[0] = '\0';
        u.pending_at = 0;
        changed = 1;
    }
    if (u.cancel_at != 0 && now >= u.cancel_at && strcmp(u.status, "canceled") != 0) {
        snprintf(u.status, sizeof(u.status), "canceled");
        changed = 1;
    }
    tg_err_t err = {0};
    if (changed && tg_store_customer_update(a->d.store, &u, &err) == 0)
        tg_accounts_put_customer(a->d.accounts, &u, &err);
    return 0;
}

/* ---- keys ---- */

static const char *key_status(const tg_key_t *k, int64_t now)
{
    if (k->revoked_at != 0 && k->revoked_at <= now)
        return "revoked";
    if (k->expires_at != 0 && k->expires_at <= now)
        return "expired";
    if (k->expires_at != 0)
        return "expiring";
    return "active";
}

static json_t *key_json(tg_admin_t *a, const tg_key_t *k)
{
    int64_t last = tg_accounts_key_last_used(a->d.accounts, k->id);
    if (last < k->last_used_at)
        last = k->last_used_at;
    return json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:s}", "id", k->id, "customer", k->customer_id, "name", k->name,
                     "prefix", k->prefix, "created_at", json_time(k->created_at), "expires_at",
                     json_time(k->expires_at), "revoked_at", json_time(k->revoked_at), "last_used_at",
                     json_time(last), "status", key_status(k, now_s()));
}

/* Creates and stores a key for customer; fills *k and the secret (caller wipes it). */
static int issue_key(tg_admin_t *a, const char *customer_id, const char *name, int live, tg_key_t *k,
                     char secret[TG_APIKEY_BUF], tg_err_t *err)
{
    memset(k, 0, sizeof(*k));
    tg_apikey_generate(live, secret);
    random_id("key_", k->id, sizeof(k->id));
    snprintf(k->customer_id, sizeof(k->customer_id), "%s", customer_id);
    snprintf(k->name, sizeof(k->name), "%s", name != NULL ? name : "");
    tg_apikey_hash(a->d.key_secret, a->d.key_secret_len, secret, strlen(secret), k->hash);
    tg_apikey_prefix(secret, strlen(secret), k->prefix, sizeof(k->prefix));
    k->created_at = now_s();
    int rc = tg_store_key_insert(a->d.store, k, err);
    if (rc == 0)
        rc = tg_accounts_put_key(a->d.accounts, k, err);
    return rc;
}

static void create_key(tg_admin_t *a, const tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = parse_body(r, res);
    if (body == NULL)
        return;
    int bad = 0;
    const char *name = opt_string(body, "name", &bad), *mode = opt_string(body, "mode", &bad);
    if (bad || (mode != NULL && strcmp(mode, "live") != 0 && strcmp(mode, "test") != 0))
        reply_error(res, 400, "bad_request", "name must be a string and mode \"live\" or \"test\".");
    else if (name != NULL && strlen(name) >= TG_NAME_MAX)
        reply_error(res, 400, "bad_request", "name: at most %d characters.", TG_NAME_MAX - 1);
    else {
        tg_key_t k;
        char secret[TG_APIKEY_BUF];
        tg_err_t err = {0};
        if (issue_key(a, c->id, name, mode == NULL || strcmp(mode, "live") == 0, &k, secret, &err) != 0) {
            reply_error(res, 500, "internal_error", "Storing the key failed: %s", err.msg);
        } else {
            json_t *j = key_json(a, &k);
            json_object_set_new(j, "secret", json_string(secret));
            reply_json(res, 201, j);
        }
        sodium_memzero(secret, sizeof(secret));
    }
    json_decref(body);
}

static int list_key_cb(const tg_key_t *k, void *arg)
{
    list_ctx_t *lc = arg;
    json_array_append_new(lc->arr, key_json(lc->a, k));
    return 0;
}

static int load_key(tg_admin_t *a, const segs_t *s, size_t idx, tg_key_t *k, tg_admin_response_t *res)
{
    char id[TG_ID_MAX];
    tg_err_t err = {0};
    if (seg_copy(s, idx, id, sizeof(id)) != 0) {
        reply_error(res, 404, "not_found", "No such key.");
        return -1;
    }
    int rc = tg_store_key_get(a->d.store, id, k, &err);
    if (rc == TG_ENOTFOUND) {
        reply_error(res, 404, "not_found", "No key %s.", id);
        return -1;
    }
    if (rc != 0) {
        reply_error(res, 500, "internal_error", "Reading the key failed: %s", err.msg);
        return -1;
    }
    return 0;
}

static void revoke_key(tg_admin_t *a, tg_key_t *k, tg_admin_response_t *res)
{
    tg_err_t err = {0};
    if (k->revoked_at == 0) {
        k->revoked_at = now_s();
        if (tg_store_key_set_revoked(a->d.store, k->id, k->revoked_at, &err) != 0 ||
            tg_accounts_put_key(a->d.accounts, k, &err) != 0) {
            reply_error(res, 500, "internal_error", "Revoking the key failed: %s", err.msg);
            return;
        }
    }
    reply_json(res, 200, key_json(a, k));
}

static void rotate_key(tg_admin_t *a, tg_key_t *old, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = parse_body(r, res);
    if (body == NULL)
        return;
    json_t *g = json_object_get(body, "grace_seconds");
    int64_t grace = a->d.cfg->admin.key_grace_seconds;
    int64_t now = now_s();
    if (g != NULL && (!json_is_integer(g) || json_integer_value(g) < 0 || json_integer_value(g) > 31536000)) {
        reply_error(res, 400, "bad_request", "grace_seconds: an integer from 0 to 31536000.");
    } else if (strcmp(key_status(old, now), "revoked") == 0 || strcmp(key_status(old, now), "expired") == 0) {
        reply_error(res, 409, "conflict", "Key %s is %s; only a working key can be rotated.", old->id,
                    key_status(old, now));
    } else {
        if (g != NULL)
            grace = json_integer_value(g);
        tg_err_t err = {0};
        tg_key_t k;
        char secret[TG_APIKEY_BUF];
        int64_t expires = now + grace;
        if (old->expires_at == 0 || old->expires_at > expires)
            old->expires_at = expires;
        int live = strncmp(old->prefix, "tg_live_", 8) == 0;
        if (tg_store_key_set_expires(a->d.store, old->id, old->expires_at, &err) != 0 ||
            tg_accounts_put_key(a->d.accounts, old, &err) != 0 ||
            issue_key(a, old->customer_id, old->name, live, &k, secret, &err) != 0) {
            reply_error(res, 500, "internal_error", "Rotating the key failed: %s", err.msg);
        } else {
            json_t *j = key_json(a, &k);
            json_object_set_new(j, "secret", json_string(secret));
            json_object_set_new(j, "replaces", json_string(old->id));
            json_object_set_new(j, "old_key_expires_at", json_time(old->expires_at));
            reply_json(res, 201, j);
        }
        sodium_memzero(secret, sizeof(secret));
    }
    json_decref(body);
}

/* ---- usage ---- */

typedef struct {
    json_t *metrics;
    const tg_plan_t *plan;
} usage_ctx_t;

static int usage_total_cb(const char *metric, uint64_t units, void *arg)
{
    usage_ctx_t *u = arg;
    uint64_t included = tg_plan_included(u->plan, metric);
    json_t *m = json_pack("{s:s,s:I}", "metric", metric, "used", (json_int_t)units);
    if (included == TG_UNLIMITED) {
        json_object_set_new(m, "included", json_null());
        json_object_set_new(m, "overage", json_integer(0));
        json_object_set_new(m, "remaining", json_null());
    } else {
        json_object_set_new(m, "included", json_integer((json_int_t)included));
        json_object_set_new(m, "overage", json_integer((json_int_t)(units > included ? units - included : 0)));
        json_object_set_new(m, "remaining", json_integer((json_int_t)(units < included ? included - units : 0)));
    }
    json_array_append_new(u->metrics, m);
    return 0;
}

static int usage_day_cb(const char *day, const char *metric, uint64_t units, void *arg)
{
    json_array_append_new(arg, json_pack("{s:s,s:s,s:I}", "day", day, "metric", metric, "units", (json_int_t)units));
    return 0;
}

/* "YYYY-MM" into the first second of that month (UTC). */
static int parse_month(const char *q, size_t len, int64_t *out)
{
    const char *p = NULL;
    for (size_t i = 0; i + 7 <= len; i++)
        if ((i == 0 || q[i - 1] == '&') && strncmp(q + i, "period=", 7) == 0) {
            p = q + i + 7;
            break;
        }
    if (p == NULL)
        return 1; /* absent */
    if ((size_t)(q + len - p) < 7 || !isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]) ||
        !isdigit((unsigned char)p[2]) || !isdigit((unsigned char)p[3]) || p[4] != '-' ||
        !isdigit((unsigned char)p[5]) || !isdigit((unsigned char)p[6]) || (p + 7 < q + len && p[7] != '&'))
        return -1;
    int y = (p[0] - '0') * 1000 + (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
    int m = (p[5] - '0') * 10 + (p[6] - '0');
    if (m < 1 || m > 12 || y < 1970)
        return -1;
    /* the first of the month: use the period code's own calendar by stepping from the epoch */
    *out = tg_period_boundary(0, TG_INTERVAL_MONTH, (int64_t)(y - 1970) * 12 + (m - 1));
    return 0;
}

static void get_usage(tg_admin_t *a, const tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    const tg_plan_t *plan = tg_config_find_plan(a->d.cfg, c->plan_id);
    int64_t ps, pe, month = 0;
    int pm = parse_month(r->query, r->query != NULL ? r->query_len : 0, &month);
    if (pm < 0) {
        reply_error(res, 400, "bad_request", "period: expected YYYY-MM.");
        return;
    }
    if (pm == 0) {
        /* The period that starts in that month. */
        tg_period_bounds(c->anchor_at, plan->interval, month, &ps, &pe);
        if (ps < month) {
            ps = pe;
            int64_t s2, e2;
            tg_period_bounds(c->anchor_at, plan->interval, ps, &s2, &e2);
            ps = s2;
            pe = e2;
        }
    } else {
        tg_period_bounds(c->anchor_at, plan->interval, now_s(), &ps, &pe);
    }
    /* Read-your-writes: what the gateway has answered is committed before we count it. */
    if (a->d.meter != NULL)
        tg_meter_flush(a->d.meter);
    usage_ctx_t u = {json_array(), plan};
    json_t *daily = json_array();
    tg_err_t err = {0};
    if (tg_store_usage_period(a->d.store, c->id, ps, usage_total_cb, &u, &err) != 0 ||
        tg_store_usage_daily(a->d.store, c->id, ps, pe, usage_day_cb, daily, &err) != 0) {
        json_decref(u.metrics);
        json_decref(daily);
        reply_error(res, 500, "internal_error", "Reading usage failed: %s", err.msg);
        return;
    }
    /* Every metric with an allowance is listed, used or not. */
    for (size_t i = 0; i < plan->nincluded; i++) {
        int found = 0;
        size_t k;
        json_t *m;
        json_array_foreach(u.metrics, k, m) if (strcmp(json_string_value(json_object_get(m, "metric")),
                                                       plan->included[i].metric) == 0) found = 1;
        if (!found)
            usage_total_cb(plan->included[i].metric, 0, &u);
    }
    reply_json(res, 200,
               json_pack("{s:s,s:s,s:{s:o,s:o},s:o,s:o}", "customer", c->id, "plan", c->plan_id, "period", "start",
                         json_time(ps), "end", json_time(pe), "metrics", u.metrics, "daily", daily));
}

/* ---- public plans and pricing calculator ---- */

static json_t *money_json(tg_money_t v, int digits)
{
    char buf[TG_MONEY_FMT_MAX];
    tg_money_format(v, digits, buf, sizeof(buf));
    return json_string(buf);
}

static const char *rate_unit(int64_t period_ns)
{
    switch (period_ns / TG_NS_PER_SEC) {
    case 1: return "second";
    case 60: return "minute";
    case 3600: return "hour";
    default: return "day";
    }
}

static json_t *plan_json(const tg_plan_t *p)
{
    int d = p->currency_digits;
    json_t *j = json_pack("{s:s,s:s,s:o,s:s,s:s,s:i}", "id", p->id, "name", p->name, "price", money_json(p->price, d),
                          "currency", p->currency, "interval", p->interval == TG_INTERVAL_YEAR ? "year" : "month",
                          "trial_days", p->trial_days);
    json_object_set_new(j, "rate_limit",
                        p->rate_limit.count == 0
                            ? json_null()
                            : json_pack("{s:I,s:s,s:I}", "count", (json_int_t)p->rate_limit.count, "per",
                                        rate_unit(p->rate_limit.period_ns), "burst", (json_int_t)p->burst));
    json_t *eps = json_null();
    if (p->nendpoints > 0 || p->endpoints != NULL) {
        eps = json_array();
        for (size_t i = 0; i < p->nendpoints; i++)
            json_array_append_new(eps, json_string(p->endpoints[i]));
    }
    json_object_set_new(j, "endpoints", eps);
    json_t *inc = json_object();
    for (size_t i = 0; i < p->nincluded; i++)
        json_object_set_new(inc, p->included[i].metric, json_integer((json_int_t)p->included[i].amount));
    json_object_set_new(j, "included", inc);
    json_object_set_new(j, "on_quota", json_string(p->on_quota == TG_QUOTA_BLOCK  ? "block"
                                                   : p->on_quota == TG_QUOTA_BILL ? "bill"
                                                                                  : "throttle"));
    json_t *charges = json_array();
    for (size_t i = 0; i < p->ncharges; i++) {
        const tg_charge_t *c = &p->charges[i];
        static const char *const models[] = {"per_unit", "graduated", "volume", "package"};
        json_t *cj = json_pack("{s:s,s:s}", "metric", c->metric, "model", models[c->model]);
        if (c->model == TG_MODEL_PER_UNIT)
            json_object_set_new(cj, "unit_price", money_json(c->unit_price, d));
        if (c->model == TG_MODEL_PACKAGE) {
            json_object_set_new(cj, "package_size", json_integer((json_int_t)c->package_size));
            json_object_set_new(cj, "package_price", money_json(c->package_price, d));
        }
        if (c->ntiers > 0) {
            json_t *tiers = json_array();
            for (size_t t = 0; t < c->ntiers; t++)
                json_array_append_new(
                    tiers, json_pack("{s:o,s:o,s:o}", "up_to",
                                     c->tiers[t].up_to == TG_UNLIMITED ? json_null()
                                                                       : json_integer((json_int_t)c->tiers[t].up_to),
                                     "unit_price", money_json(c->tiers[t].unit_price, d), "flat_price",
                                     money_json(c->tiers[t].flat_price, d)));
            json_object_set_new(cj, "tiers", tiers);
        }
        json_array_append_new(charges, cj);
    }
    json_object_set_new(j, "charges", charges);
    json_t *features = json_array();
    for (size_t i = 0; i < p->nfeatures; i++)
        json_array_append_new(features, json_string(p->features[i]));
    json_object_set_new(j, "features", features);
    return j;
}

/* GET /v1/plans/{id}/quote?api_calls=N&images=M: the same pricing code as invoices. */
static void quote_plan(tg_admin_t *a, const tg_plan_t *plan, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    enum { MAX_Q = 16 };
    char names[MAX_Q][TG_METRIC_MAX];
    tg_usage_qty_t usage[MAX_Q];
    size_t n = 0;
    const char *q = r->query, *end = r->query != NULL ? r->query + r->query_len : NULL;
    (void)a;
    while (q != NULL && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q)), *stop = amp != NULL ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(stop - q));
        if (eq == NULL || eq == q || (size_t)(eq - q) >= TG_METRIC_MAX || n == MAX_Q) {
            reply_error(res, 400, "bad_request", "Query parameters must be METRIC=N.");
            return;
        }
        char num[24];
        size_t nl = (size_t)(stop - eq - 1);
        if (nl == 0 || nl >= sizeof(num)) {
            reply_error(res, 400, "bad_request", "%.*s: expected a whole number.", (int)(eq - q), q);
            return;
        }
        memcpy(num, eq + 1, nl);
        num[nl] = '\0';
        char *e;
        unsigned long long v = strtoull(num, &e, 10);
        if (*e != '\0' || num[0] == '-') {
            reply_error(res, 400, "bad_request", "%.*s: \"%s\" is not a whole number.", (int)(eq - q), q, num);
            return;
        }
        memcpy(names[n], q, (size_t)(eq - q));
        names[n][eq - q] = '\0';
        usage[n].metric = names[n];
        usage[n].used = v;
        n++;
        q = stop + 1;
    }
    tg_quote_t quote;
    tg_err_t err = {0};
    if (tg_quote_build(plan, usage, n, 1, &quote, &err) != 0) {
        reply_error(res, 400, "bad_request", "%s", err.msg);
        return;
    }
    res->status = 200;
    res->content_type = "application/json";
    res->body = tg_quote_to_json(&quote);
    res->body_len = res->body != NULL ? strlen(res->body) : 0;
    tg_quote_free(&quote);
}

static int persist_used_cb(const char *key_id, int64_t last_used_at, void *arg)
{
    tg_err_t err = {0};
    return tg_store_key_touch(arg, key_id, last_used_at, &err) != 0;
}

/* ---- invoices ---- */

typedef struct {
    tg_admin_t *a;
    int created;
    int failures;
    char first_error[TG_ERR_MAX];
    tg_customer_t *list;
    size_t n, cap;
} close_ctx_t;

static int collect_customer_cb(const tg_customer_t *c, void *arg)
{
    close_ctx_t *cc = arg;
    if (cc->n == cc->cap) {
        size_t cap = cc->cap ? cc->cap * 2 : 64;
        tg_customer_t *l = realloc(cc->list, cap * sizeof(*l));
        if (l == NULL)
            return 1;
        cc->list = l;
        cc->cap = cap;
    }
    cc->list[cc->n++] = *c;
    return 0;
}

/* Closes every ended period of one customer (customer_id) or of all (NULL). */
static int close_periods(tg_admin_t *a, const char *customer_id, close_ctx_t *cc, tg_err_t *err)
{
    int rc;
    memset(cc, 0, sizeof(*cc));
    cc->a = a;
    if (customer_id != NULL) {
        tg_customer_t c;
        if ((rc = tg_store_customer_get(a->d.store, customer_id, &c, err)) != 0)
            return rc;
        collect_customer_cb(&c, cc);
    } else if ((rc = tg_store_customer_list(a->d.store, collect_customer_cb, cc, err)) != 0) {
        free(cc->list);
        return rc;
    }
    int64_t now = now_s();
    if (a->d.meter != NULL)
        tg_meter_flush(a->d.meter); /* calls answered before now are on this run's invoices */
    /* Commit every 500 customers: one fsync per batch, not per invoice, and the metering writer
     * waits at most one batch. Each invoice is a savepoint, so a failing customer rolls back
     * alone and the run can simply be repeated. */
    for (size_t i = 0; i < cc->n;) {
        if ((rc = tg_store_tx_begin(a->d.store, err)) != 0)
            break;
        size_t end = i + 500 < cc->n ? i + 500 : cc->n;
        int batch_created = 0;
        for (; i < end; i++) {
            int made = 0;
            tg_err_t e = {0};
            if (tg_invoice_close_periods(a->d.store, a->d.cfg, &cc->list[i], now, &made, &e) != 0) {
                if (cc->failures++ == 0)
                    snprintf(cc->first_error, sizeof(cc->first_error), "%s", e.msg);
                continue;
            }
            /* Only once its last period is invoiced under the old plan does a scheduled change
             * (downgrade, cancellation at period end) take effect. */
            apply_scheduled_cb(&cc->list[i], a);
            batch_created += made;
        }
        if ((rc = tg_store_tx_commit(a->d.store, err)) != 0)
            break;
        cc->created += batch_created;
    }
    free(cc->list);
    cc->list = NULL;
    return rc;
}

static void reply_invoice(tg_admin_response_t *res, int status, const tg_invoice_t *inv)
{
    res->status = status;
    res->content_type = "application/json";
    res->body = tg_invoice_to_json(inv);
    res->body_len = res->body != NULL ? strlen(res->body) : 0;
}

static int list_invoice_cb(const tg_invoice_t *inv, void *arg)
{
    char *s = tg_invoice_to_json(inv);
    json_t *j = s != NULL ? json_loads(s, 0, NULL) : NULL;
    free(s);
    if (j != NULL) {
        json_object_del(j, "lines"); /* the list shows totals; one invoice shows its lines */
        json_array_append_new(arg, j);
    }
    return 0;
}

static void invoices_route(tg_admin_t *a, const segs_t *s, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    tg_err_t err = {0};
    if (s->n == 4 && seg_is(s, 3, "run") && method_is(r, "POST")) {
        json_t *body = parse_body(r, res);
        if (body == NULL)
            return;
        int bad = 0;
        const char *cust = opt_string(body, "customer", &bad);
        close_ctx_t cc;
        int rc = bad ? TG_EINVAL : close_periods(a, cust, &cc, &err);
        if (bad)
            reply_error(res, 400, "bad_request", "customer must be a string.");
        else if (rc == TG_ENOTFOUND)
            reply_error(res, 404, "not_found", "No customer %s.", cust);
        else if (rc != 0)
            reply_error(res, 500, "internal_error", "Closing periods failed: %s", err.msg);
        else {
            json_t *j = json_pack("{s:i,s:i}", "created", cc.created, "failed", cc.failures);
            if (cc.failures > 0)
                json_object_set_new(j, "first_error", json_string(cc.first_error));
            reply_json(res, 200, j);
        }
        json_decref(body);
        return;
    }
    if (s->n == 3 && method_is(r, "GET")) {
        char cust[TG_ID_MAX] = "";
        if (r->query != NULL && r->query_len > 9 && strncmp(r->query, "customer=", 9) == 0 &&
            r->query_len - 9 < sizeof(cust)) {
            memcpy(cust, r->query + 9, r->query_len - 9);
            cust[r->query_len - 9] = '\0';
        }
        json_t *arr = json_array();
        if (tg_store_invoice_list(a->d.store, cust[0] ? cust : NULL, list_invoice_cb, arr, &err) != 0) {
            json_decref(arr);
            reply_error(res, 500, "internal_error", "Listing invoices failed: %s", err.msg);
        } else
            reply_json(res, 200, json_pack("{s:o}", "data", arr));
        return;
    }
    char id[TG_ID_MAX];
    tg_invoice_t inv;
    if (s->n < 4 || s->n > 5 || seg_copy(s, 3, id, sizeof(id)) != 0) {
        reply_error(res, 404, "not_found", "No such route.");
        return;
    }
    int rc = tg_store_invoice_get(a->d.store, id, &inv, &err);
    if (rc == TG_ENOTFOUND) {
        reply_error(res, 404, "not_found", "No invoice %s.", id);
        return;
    }
    if (rc != 0) {
        reply_error(res, 500, "internal_error", "Reading the invoice failed: %s", err.msg);
        return;
    }
    if (s->n == 4 && method_is(r, "GET"))
        reply_invoice(res, 200, &inv);
    else if (s->n == 5 && seg_is(s, 4, "html") && method_is(r, "GET")) {
        tg_customer_t c;
        tg_err_t e2 = {0};
        int have = tg_store_customer_get(a->d.store, inv.customer_id, &c, &e2) == 0;
        res->status = 200;
        res->content_type = "text/html; charset=utf-8";
        res->body = tg_invoice_to_html(&inv, have ? &c : NULL);
        res->body_len = res->body != NULL ? strlen(res->body) : 0;
    } else if (s->n == 5 && method_is(r, "POST")) {
        const char *to = seg_is(s, 4, "finalize")             ? "open"
                         : seg_is(s, 4, "void")               ? "void"
                         : seg_is(s, 4, "mark-paid")          ? "paid"
                         : seg_is(s, 4, "mark-uncollectible") ? "uncollectible"
                                                              : NULL;
        if (to == NULL)
            reply_error(res, 404, "not_found", "Actions: finalize, void, mark-paid, mark-uncollectible.");
        else if ((rc = tg_store_invoice_transition(a->d.store, id, to, now_s(), &err)) == TG_ESTATE)
            reply_error(res, 409, "conflict", "%s", err.msg);
        else if (rc != 0)
            reply_error(res, 500, "internal_error", "Changing the invoice failed: %s", err.msg);
        else {
            tg_invoice_clear(&inv);
            if (tg_store_invoice_get(a->d.store, id, &inv, &err) == 0)
                reply_invoice(res, 200, &inv);
            else
                reply_error(res, 500, "internal_error", "%s", err.msg);
        }
    } else
        reply_error(res, 405, "method_not_allowed", "Method not allowed here.");
    tg_invoice_clear(&inv);
}

void tg_admin_tick(tg_admin_t *a)
{
    tg_accounts_collect_used(a->d.accounts, persist_used_cb, a->d.store);
    close_ctx_t cc;
    tg_err_t err = {0};
    close_periods(a, NULL, &cc, &err); /* errors are retried on the next tick */
}

/* ---- dispatch ---- */

static int authorized(tg_admin_t *a, const tg_admin_request_t *r)
{
    if (r->authorization == NULL || r->authorization_len < 8 || strncmp(r->authorization, "Bearer ", 7) != 0)
        return 0;
    /* Compare digests so the comparison is constant-time whatever the token's length. */
    uint8_t d[32];
    crypto_generichash(d, sizeof(d), (const uint8_t *)r->authorization + 7, r->authorization_len - 7, NULL, 0);
    return sodium_memcmp(d, a->token_digest, sizeof(d)) == 0;
}

tg_admin_t *tg_admin_new(const tg_admin_deps_t *deps)
{
    tg_admin_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->d = *deps;
    const char *tok = deps->cfg->admin.token;
    crypto_generichash(a->token_digest, sizeof(a->token_digest), (const uint8_t *)tok, strlen(tok), NULL, 0);
    return a;
}

void tg_admin_free(tg_admin_t *a)
{
    if (a == NULL)
        return;
    sodium_memzero(a->token_digest, sizeof(a->token_digest));
    free(a);
}

void tg_admin_handle(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    segs_t s;
    memset(res, 0, sizeof(*res));
    if (split_path(r->path, r->path_len, &s) != 0) {
        reply_error(res, 404, "not_found", "No such route.");
        return;
    }
    if (s.n == 1 && seg_is(&s, 0, "healthz")) {
        reply_json(res, 200, json_pack("{s:s}", "status", "ok"));
        return;
    }
    if (s.n == 1 && seg_is(&s, 0, "metrics")) {
        res->status = 200;
        res->content_type = "text/plain; version=0.0.4";
        res->body = tg_metrics_render(a->d.meter);
        res->body_len = res->body != NULL ? strlen(res->body) : 0;
        return;
    }
    if (seg_is(&s, 0, "v1") && seg_is(&s, 1, "plans") && method_is(r, "GET")) {
        if (s.n == 2) {
            json_t *arr = json_array();
            for (size_t i = 0; i < a->d.cfg->nplans; i++)
                json_array_append_new(arr, plan_json(&a->d.cfg->plans[i]));
            reply_json(res, 200, json_pack("{s:o}", "data", arr));
            return;
        }
        char id[TG_PLAN_ID_MAX];
        const tg_plan_t *plan = seg_copy(&s, 2, id, sizeof(id)) == 0 ? tg_config_find_plan(a->d.cfg, id) : NULL;
        if (plan == NULL || s.n > 4 || (s.n == 4 && !seg_is(&s, 3, "quote")))
            reply_error(res, 404, "not_found", "No such plan.");
        else if (s.n == 3)
            reply_json(res, 200, plan_json(plan));
        else
            quote_plan(a, plan, r, res);
        return;
    }
    if (!(seg_is(&s, 0, "v1") && seg_is(&s, 1, "admin"))) {
        reply_error(res, 404, "not_found", "No such route: %.*s", (int)(r->path_len > 200 ? 200 : r->path_len),
                    r->path);
        return;
    }
    if (!authorized(a, r)) {
        reply_error(res, 401, "unauthorized", "The admin API needs \"Authorization: Bearer <admin token>\".");
        return;
    }
    tg_customer_t c;
    tg_key_t k;
    if (seg_is(&s, 2, "customers") && s.n == 3) {
        if (method_is(r, "POST"))
            create_customer(a, r, res);
        else if (method_is(r, "GET")) {
            list_ctx_t lc = {a, json_array()};
            tg_err_t err = {0};
            if (tg_store_customer_list(a->d.store, list_customer_cb, &lc, &err) != 0) {
                json_decref(lc.arr);
                reply_error(res, 500, "internal_error", "Listing customers failed: %s", err.msg);
            } else
                reply_json(res, 200, json_pack("{s:o}", "data", lc.arr));
        } else
            reply_error(res, 405, "method_not_allowed", "Use GET or POST.");
        return;
    }
    if (seg_is(&s, 2, "invoices")) {
        invoices_route(a, &s, r, res);
        return;
    }
    if (seg_is(&s, 2, "clock") && s.n == 3 && method_is(r, "POST")) {
        json_t *body = a->d.test_clock ? parse_body(r, res) : NULL;
        if (!a->d.test_clock) {
            reply_error(res, 404, "not_found", "The test clock is off (serve --test-clock turns it on).");
            return;
        }
        if (body == NULL)
            return;
        json_t *adv = json_object_get(body, "advance_seconds");
        if (!json_is_integer(adv) || json_integer_value(adv) < 0) {
            reply_error(res, 400, "bad_request", "advance_seconds: a non-negative integer.");
        } else {
            static int64_t offset_s;
            offset_s += json_integer_value(adv);
            tg_clock_set_offset(offset_s * TG_NS_PER_SEC);
            reply_json(res, 200, json_pack("{s:o}", "now", json_time(now_s())));
        }
        json_decref(body);
        return;
    }
    if (seg_is(&s, 2, "customers") && s.n == 6 && seg_is(&s, 4, "invoices") && seg_is(&s, 5, "upcoming") &&
        method_is(r, "GET")) {
        if (load_customer(a, &s, 3, &c, res) != 0)
            return;
        if (a->d.meter != NULL)
            tg_meter_flush(a->d.meter);
        tg_err_t err = {0};
        char *json = tg_invoice_preview(a->d.store, a->d.cfg, &c, now_s(), &err);
        if (json == NULL)
            reply_error(res, 500, "internal_error", "Previewing the invoice failed: %s", err.msg);
        else {
            res->status = 200;
            res->content_type = "application/json";
            res->body = json;
            res->body_len = strlen(json);
        }
        return;
    }
    if (seg_is(&s, 2, "customers") && s.n >= 4) {
        if (s.n == 4 && !method_is(r, "GET") && !method_is(r, "PATCH")) {
            reply_error(res, 405, "method_not_allowed", "Use GET or PATCH.");
            return;
        }
        if (s.n > 5 || (s.n == 5 && !seg_is(&s, 4, "keys") && !seg_is(&s, 4, "usage") && !seg_is(&s, 4, "cancel"))) {
            reply_error(res, 404, "not_found", "No such route.");
            return;
        }
        if (load_customer(a, &s, 3, &c, res) != 0)
            return;
        if (s.n == 4 && method_is(r, "GET"))
            reply_json(res, 200, customer_json(a, &c));
        else if (s.n == 4)
            patch_customer(a, &c, r, res);
        else if (seg_is(&s, 4, "keys") && method_is(r, "POST"))
            create_key(a, &c, r, res);
        else if (seg_is(&s, 4, "keys") && method_is(r, "GET")) {
            list_ctx_t lc = {a, json_array()};
            tg_err_t err = {0};
            if (tg_store_key_list(a->d.store, c.id, list_key_cb, &lc, &err) != 0) {
                json_decref(lc.arr);
                reply_error(res, 500, "internal_error", "Listing keys failed: %s", err.msg);
            } else
                reply_json(res, 200, json_pack("{s:o}", "data", lc.arr));
        } else if (seg_is(&s, 4, "usage") && method_is(r, "GET"))
            get_usage(a, &c, r, res);
        else if (seg_is(&s, 4, "cancel") && method_is(r, "POST"))
            cancel_customer(a, &c, r, res);
        else
            reply_error(res, 405, "method_not_allowed", "Method not allowed here.");
        return;
    }
    if (seg_is(&s, 2, "keys") && (s.n == 4 || (s.n == 5 && seg_is(&s, 4, "rotate")))) {
        if (s.n == 4 && !method_is(r, "DELETE") && !method_is(r, "GET")) {
            reply_error(res, 405, "method_not_allowed", "Use GET or DELETE.");
            return;
        }
        if (s.n == 5 && !method_is(r, "POST")) {
            reply_error(res, 405, "method_not_allowed", "Use POST.");
            return;
        }
        if (load_key(a, &s, 3, &k, res) != 0)
            return;
        if (s.n == 5)
            rotate_key(a, &k, r, res);
        else if (method_is(r, "DELETE"))
            revoke_key(a, &k, res);
        else
            reply_json(res, 200, key_json(a, &k));
        return;
    }
    reply_error(res, 404, "not_found", "No such route: %.*s", (int)(r->path_len > 200 ? 200 : r->path_len), r->path);
}
