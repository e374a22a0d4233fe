/* admin_api.c - see admin_api.h: the admin object, authentication, the periodic tick and the
 * routing of every admin-port request to its handler (admin_customers.c, admin_keys.c,
 * admin_billing.c). */
#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/admin_int.h"
#include "config/config_live.h"
#include "ops/reload.h"
#include "billing/invoice.h"
#include "payments/meter_export.h"
#include "payments/outbox.h"
#include "billing/periods.h"
#include "billing/pricing.h"
#include "gateway/apikey.h"
#include "metering/batch_prune.h"
#include "metrics/metrics.h"
#include "metrics/notify_metrics.h"
#include "notify/retention.h"
#include "notify/thresholds.h"
#include "store/store_cluster.h"
#include "store/store_payments.h"
#include "util/clock.h"
#include "util/period.h"
#include "util/throttle.h"
#include "util/utf8.h"
#include "util/log.h"

static int tg_adm_persist_used_cb(const char *key_id, int64_t last_used_at, void *arg)
{
    tg_err_t err = {0};
    return tg_store_key_touch(arg, key_id, last_used_at, &err) != 0;
}

int tg_admin_leads(void *admin)
{
    tg_admin_t *a = admin;
    return atomic_load(&a->leader);
}

int tg_admin_billing_slice(tg_admin_t *a)
{
    if (a->d.billing_thread || !atomic_load(&a->leader))
        return 0; /* the closer's own thread does it, or another node */
    tg_periods_run_t run;
    tg_err_t err = {0};
    int more = 0;
    /* errors and failed customers are retried by the next run */
    tg_periods_close_some(&a->sub, &a->billing, TG_ADMIN_BILLING_SLICE_NS, &run, &more, &err);
    tg_periods_run_free(&run);
    return more;
}

int tg_admin_tick(tg_admin_t *a)
{
    /* One transaction for all the keys used since the last tick: one fsync, not one per key,
     * which with thousands of active keys held the write lock (and strict responses, waiting on
     * the metering writer) for up to a second every 10 s. Last-used times are best-effort: a
     * failed commit only delays them. */
    tg_err_t terr = {0};
    int in_tx = tg_store_tx_begin(a->d.store, &terr) == 0;
    tg_accounts_collect_used(a->d.accounts, tg_adm_persist_used_cb, a->d.store);
    if (in_tx && tg_store_tx_commit(a->d.store, &terr) != 0)
        tg_store_tx_rollback(a->d.store);
    /* Every node, leader or not: each deletes only its own usage_batches rows, which only its
     * own metering logs could replay (metering/batch_prune.h). The real clock, as committed_at
     * and batch ids, not the billing clock a test may shift. */
    if (a->d.meter != NULL) {
        tg_batch_prune_run_t brun;
        tg_err_t berr = {0};
        if (tg_meter_prune_batches(a->d.meter, a->d.store, &a->batch_prune, (int64_t)time(NULL),
                                   TG_USAGE_BATCHES_PRUNE_SLICE, TG_ADMIN_PRUNE_BUDGET_NS, &brun, &berr) != 0)
            tg_log(TG_LOG_WARN, "pruning usage batches: %s", berr.msg); /* tried again next tick */
        else if (brun.deleted > 0)
            tg_log(TG_LOG_INFO, "pruned %zu usage batch ids no metering log of this node holds any more%s",
                   brun.deleted, brun.more ? "; more next tick" : "");
    }
    /* The schedulers below run on one node at a time (store_cluster.h): with several gateways
     * on one database, the one holding the scheduler lock; another takes over when it dies. */
    int leader = 0;
    tg_err_t lerr = {0};
    if (tg_store_leader_try(a->d.store, &leader, &lerr) != 0 || !leader) {
        a->leader = 0;
        a->billing.active = 0; /* a run in slices stops here; the new leader's runs go on */
        return 0;
    }
    if (!a->leader)
        tg_log(TG_LOG_INFO, "this node runs the schedulers now (period closing, invoicing, dunning)");
    a->leader = 1;
    /* The rows of nodes drained for good (stopped cleanly, or recovered with --retire), which
     * no node's own prune reaches; on this one node, as nothing else depends on which. */
    tg_drained_prune_run_t drun;
    tg_err_t derr = {0};
    if (tg_meter_prune_drained(a->d.store, (int64_t)time(NULL), TG_USAGE_BATCHES_PRUNE_SLICE, TG_ADMIN_PRUNE_BUDGET_NS,
                               &drun, &derr) != 0)
        tg_log(TG_LOG_WARN, "pruning drained nodes' usage batches: %s", derr.msg); /* tried again next tick */
    else if (drun.deleted > 0 || drun.nodes > 0)
        tg_log(TG_LOG_INFO, "pruned %zu usage batch ids of drained metering nodes (%zu done)%s", drun.deleted, drun.nodes,
               drun.more ? "; more next tick" : "");
    int billing_more = tg_admin_billing_slice(a);
    int finalized = 0, queued = 0;
    tg_err_t ferr = {0};
    tg_periods_finalize_due(&a->sub, &finalized, &queued, &ferr); /* likewise */
    if (queued)
        tg_outbox_wake(a->d.outbox);
    if (a->d.outbox != NULL && tg_adm_cfg(a)->stripe.billing == TG_STRIPE_BILLING_STRIPE) {
        /* usage of the hours that ended, to Stripe as meter events (payments/meter_export.h) */
        tg_meter_export_run_t mrun;
        tg_err_t merr = {0};
        tg_meter_export_run(&a->sub, &mrun, &merr); /* a failed batch is tried again next tick */
        if (mrun.events + mrun.items > 0)
            tg_outbox_wake(a->d.outbox);
    }
    tg_adm_payments_tick(a);
    /* trial.will_end, once per trial (a mark keyed by the trial's end; notify/thresholds.h) */
    size_t trials = 0;
    tg_err_t trerr = {0};
    if (tg_thresholds_trials(a->d.store, a->d.cfg, a->d.accounts, tg_adm_now_s(), &trials, &trerr) != 0)
        tg_log(TG_LOG_WARN, "trial reminders: %s", trerr.msg); /* tried again next tick */
    /* finished notifications past notifications.retention_days (notify/retention.h) */
    tg_notify_prune_run_t prun;
    tg_err_t prerr = {0};
    if (tg_notify_prune(a->d.store, tg_adm_cfg(a)->notifications.retention_days, tg_adm_now_s(),
                        TG_NOTIFY_PRUNE_BATCH, TG_ADMIN_PRUNE_BUDGET_NS, &prun, &prerr) != 0)
        tg_log(TG_LOG_WARN, "pruning notifications: %s", prerr.msg); /* tried again next tick */
    else if (prun.events + prun.deliveries + prun.mails > 0)
        tg_log(TG_LOG_INFO,
               "pruned notifications: %zu events, %zu webhook deliveries (%zu attempts), %zu mails (%zu attempts)%s",
               prun.events, prun.deliveries, prun.delivery_attempts, prun.mails, prun.mail_attempts,
               prun.more ? "; more next tick" : "");
    /* usage event ids past events.dedup_window (store.h: the cross-node dedup of /v1/events) */
    size_t ids = 0;
    int ids_more = 0;
    tg_err_t iderr = {0};
    if (tg_event_ids_prune(a->d.store, tg_adm_cfg(a)->events.dedup_window_s, tg_adm_now_s(), TG_NOTIFY_PRUNE_BATCH,
                           TG_ADMIN_PRUNE_BUDGET_NS, &ids, &ids_more, &iderr) != 0)
        tg_log(TG_LOG_WARN, "pruning usage event ids: %s", iderr.msg); /* tried again next tick */
    else if (ids > 0)
        tg_log(TG_LOG_INFO, "pruned %zu usage event ids older than events.dedup_window%s", ids,
               ids_more ? "; more next tick" : "");
    return billing_more;
}

/* ---- dispatch ---- */

/* 1 if r carries "Authorization: Bearer <t>" whose digest is `digest`. Comparing digests keeps
 * the comparison constant-time whatever the token's length. */
static int bearer_is(const tg_admin_request_t *r, const uint8_t digest[32])
{
    if (r->authorization == NULL || r->authorization_len < 8 || strncmp(r->authorization, "Bearer ", 7) != 0)
        return 0;
    uint8_t d[32];
    crypto_generichash(d, sizeof(d), (const uint8_t *)r->authorization + 7, r->authorization_len - 7, NULL, 0);
    return sodium_memcmp(d, digest, sizeof(d)) == 0;
}

/* ---- the owner's dashboard session ----
 * POST /v1/admin/session {"token": "<admin token>"} signs the owner in: an HttpOnly, SameSite=
 * Strict cookie scoped to Path=/v1/admin (so the portal's pages never send it, and scripts never
 * see it) and a CSRF token that every state change made with the cookie must carry. GET answers
 * whether the cookie is good ({"signed_in": ...}, with its CSRF token for a reloaded page);
 * DELETE signs out. The sessions live in the database (only the cookie's hash): every gateway
 * sharing it honours a sign-in and a sign-out made on any node, and a restart keeps them. */

#define OWNER_SESSION_SECONDS (12 * 3600)
#define OWNER_COOKIE "tg_admin"

/* The session the request's cookie names, in *out: 1 if there is one and it has not expired, 0
 * if not, a negative TG_E* (err says why) when the database could not answer. */
static int owner_session(tg_admin_t *a, const tg_admin_request_t *r, tg_session_t *out, tg_err_t *err)
{
    char token[128];
    if (!tg_adm_cookie(r, OWNER_COOKIE, token, sizeof(token)))
        return 0;
    uint8_t h[32];
    crypto_generichash(h, sizeof(h), (const uint8_t *)token, strlen(token), NULL, 0);
    sodium_memzero(token, sizeof(token));
    int rc = tg_store_owner_session_get(a->d.store, h, out, err);
    if (rc == TG_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    return out->expires_at > tg_adm_now_s();
}

static void owner_cookie(tg_admin_response_t *res, const char *value, int max_age, int secure)
{
    snprintf(res->set_cookie, sizeof(res->set_cookie), OWNER_COOKIE "=%s; Path=/v1/admin; Max-Age=%d; HttpOnly; SameSite=Strict%s",
             value, max_age, secure ? "; Secure" : "");
}

static void owner_sign_in(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    int64_t mono = tg_clock_mono_ns(), wait = tg_throttle_wait_ns(a->owner_failures, r->remote_addr, mono);
    if (wait > 0) {
        res->retry_after = (int)((wait + TG_NS_PER_SEC - 1) / TG_NS_PER_SEC);
        tg_adm_reply_error(res, 429, "rate_limited", "Too many wrong admin tokens; retry in %d seconds.", res->retry_after);
        return;
    }
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    const char *tok = json_string_value(json_object_get(body, "token"));
    uint8_t d[32];
    if (tok != NULL)
        crypto_generichash(d, sizeof(d), (const uint8_t *)tok, strlen(tok), NULL, 0);
    if (tok == NULL || sodium_memcmp(d, a->token_digest, sizeof(d)) != 0) {
        tg_throttle_fail(a->owner_failures, r->remote_addr, mono);
        tg_adm_reply_error(res, 401, "unauthorized", "That is not the admin token.");
        json_decref(body);
        return;
    }
    char token_fp[TG_AUDIT_FINGERPRINT_MAX];
    tg_audit_fingerprint(tok, strlen(tok), token_fp);
    json_decref(body);
    tg_session_t os = {0};
    uint8_t raw[32], craw[32];
    char token[64];
    randombytes_buf(raw, sizeof(raw));
    randombytes_buf(craw, sizeof(craw));
    sodium_bin2base64(token, sizeof(token), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    crypto_generichash(os.token_hash, sizeof(os.token_hash), (const uint8_t *)token, strlen(token), NULL, 0);
    sodium_bin2hex(os.csrf_token, sizeof(os.csrf_token), craw, sizeof(craw));
    os.created_at = tg_adm_now_s();
    os.expires_at = os.created_at + OWNER_SESSION_SECONDS;
    tg_err_t err = {0};
    int rc = tg_store_owner_session_insert(a->d.store, &os, &err);
    if (rc != 0) {
        tg_adm_reply_svc_error(res, rc, &err);
    } else {
        /* the admin token that opened the session, and the session's own name, which its
         * later changes carry as their actor */
        tg_audit_actor_t who;
        char session_fp[TG_AUDIT_FINGERPRINT_MAX];
        tg_audit_fingerprint(os.token_hash, sizeof(os.token_hash), session_fp);
        tg_adm_audit_actor(r, TG_AUDIT_ADMIN_TOKEN, token_fp, &who);
        json_t *after = json_pack("{s:s,s:I}", "session", session_fp, "expires_at", (json_int_t)os.expires_at);
        tg_adm_audit_now(a, &who, "owner.sign_in", "owner_session", session_fp, NULL, after);
        json_decref(after);
        owner_cookie(res, token, OWNER_SESSION_SECONDS, r->secure);
        tg_adm_reply_json(res, 200, json_pack("{s:b,s:s,s:o}", "signed_in", 1, "csrf_token", os.csrf_token,
                                              "expires_at", tg_adm_json_time(os.expires_at)));
    }
    sodium_memzero(token, sizeof(token));
    sodium_memzero(raw, sizeof(raw));
    sodium_memzero(&os, sizeof(os));
}

static int csrf_ok(const tg_admin_request_t *r, const char *want)
{
    size_t n = strlen(want);
    return r->csrf_token != NULL && r->csrf_token_len == n && sodium_memcmp(r->csrf_token, want, n) == 0;
}

/* /v1/admin/session: 1 if handled. */
static int owner_session_route(tg_admin_t *a, const tg_adm_segs_t *s, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    if (!(s->n == 3 && tg_adm_seg_is(s, 2, "session")))
        return 0;
    tg_session_t os;
    tg_err_t err = {0};
    int have = owner_session(a, r, &os, &err);
    if (have < 0 && !tg_adm_method_is(r, "POST")) {
        tg_adm_reply_svc_error(res, have, &err);
        return 1;
    }
    if (tg_adm_method_is(r, "POST")) {
        if (!tg_adm_same_origin(r))
            tg_adm_reply_error(res, 403, "origin_refused", "Sign in from this dashboard's own pages.");
        else
            owner_sign_in(a, r, res);
    } else if (tg_adm_method_is(r, "GET")) {
        if (!have) /* a question, not a failure: the page asks before it shows the sign-in form */
            tg_adm_reply_json(res, 200, json_pack("{s:b}", "signed_in", 0));
        else
            tg_adm_reply_json(res, 200, json_pack("{s:b,s:s,s:o}", "signed_in", 1, "csrf_token", os.csrf_token,
                                                  "expires_at", tg_adm_json_time(os.expires_at)));
    } else if (tg_adm_method_is(r, "DELETE")) {
        if (have && (!csrf_ok(r, os.csrf_token) || !tg_adm_same_origin(r))) {
            tg_adm_reply_error(res, 403, "csrf_failed", "Signing out needs the X-CSRF-Token header given at sign-in.");
            return 1;
        }
        int rc = have ? tg_store_owner_session_delete(a->d.store, os.token_hash, &err) : 0;
        if (rc != 0) {
            tg_adm_reply_svc_error(res, rc, &err);
            return 1;
        }
        if (have) {
            tg_audit_actor_t who;
            char session_fp[TG_AUDIT_FINGERPRINT_MAX];
            tg_audit_fingerprint(os.token_hash, sizeof(os.token_hash), session_fp);
            tg_adm_audit_actor(r, TG_AUDIT_OWNER_SESSION, session_fp, &who);
            tg_adm_audit_now(a, &who, "owner.sign_out", "owner_session", session_fp, NULL, NULL);
        }
        owner_cookie(res, "", 0, r->secure);
        tg_adm_reply_json(res, 200, json_pack("{s:b}", "signed_out", 1));
    } else {
        tg_adm_reply_error(res, 405, "method_not_allowed", "Use GET, POST or DELETE.");
    }
    return 1;
}

/* The admin API: the admin token as a Bearer (CLI, scripts), or the owner's dashboard cookie with
 * its CSRF token on state changes. 1 = allowed, with who is asking in *who (for the audit log:
 * a fingerprint of the token or of the session, never either); otherwise replies 401, 403 or
 * 503 and returns 0. */
static int tg_adm_authorized(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res,
                             tg_audit_actor_t *who)
{
    char fp[TG_AUDIT_FINGERPRINT_MAX];
    if (bearer_is(r, a->token_digest)) {
        tg_audit_fingerprint(r->authorization + 7, r->authorization_len - 7, fp);
        tg_adm_audit_actor(r, TG_AUDIT_ADMIN_TOKEN, fp, who);
        return 1;
    }
    tg_session_t os;
    tg_err_t err = {0};
    int have = owner_session(a, r, &os, &err);
    if (have < 0) {
        tg_adm_reply_svc_error(res, have, &err);
        return 0;
    }
    if (!have) {
        tg_adm_reply_error(res, 401, "unauthorized",
                           "The admin API needs \"Authorization: Bearer <admin token>\" (or the dashboard's sign-in).");
        return 0;
    }
    if (!tg_adm_method_is(r, "GET") && !tg_adm_method_is(r, "HEAD") && (!csrf_ok(r, os.csrf_token) || !tg_adm_same_origin(r))) {
        tg_adm_reply_error(res, 403, "csrf_failed", "State-changing calls need the X-CSRF-Token header given at sign-in.");
        return 0;
    }
    tg_audit_fingerprint(os.token_hash, sizeof(os.token_hash), fp);
    tg_adm_audit_actor(r, TG_AUDIT_OWNER_SESSION, fp, who);
    return 1;
}

const tg_config_t *tg_adm_cfg(const tg_admin_t *a)
{
    return a->d.live != NULL ? tg_config_live_get(a->d.live) : a->d.cfg;
}

static int reload_run(tg_admin_t *a, tg_reload_result_t *out)
{
    if (a->d.reloader == NULL) {
        memset(out, 0, sizeof(*out));
        return out->code = TG_ENOTFOUND;
    }
    int rc = tg_reload_run(a->d.reloader, out);
    /* The services' contexts are used on this thread only: they move here, between two jobs. */
    a->sub.cfg = a->keys.cfg = tg_adm_cfg(a);
    return rc;
}

/* SIGHUP's reload: the system is the actor (POST /v1/admin/reload is audited as the admin's). */
int tg_admin_reload(tg_admin_t *a, tg_reload_result_t *out)
{
    int rc = reload_run(a, out);
    if (rc == 0) {
        tg_audit_actor_t who = {.kind = TG_AUDIT_SYSTEM, .id = "SIGHUP"};
        json_t *after = json_pack("{s:s,s:I}", "file", tg_adm_cfg(a)->path, "generation", (json_int_t)out->generation);
        tg_adm_audit_now(a, &who, "config.reload", "config", "", NULL, after);
        json_decref(after);
    }
    return rc;
}

/* A list of ", " or "\n"-separated items as a JSON array of strings. */
static json_t *split_list(const char *s, const char *sep)
{
    json_t *arr = json_array();
    size_t seplen = strlen(sep);
    while (arr != NULL && *s != '\0') {
        const char *end = strstr(s, sep);
        size_t n = end != NULL ? (size_t)(end - s) : strlen(s);
        if (n > 0)
            json_array_append_new(arr, json_stringn(s, n));
        s += n + (end != NULL ? seplen : 0);
    }
    return arr;
}

/* POST /v1/admin/reload: the reload's outcome as JSON; a refusal is an error with every
 * FILE:LINE problem in "errors". */
static void reload_route(tg_admin_t *a, tg_admin_response_t *res)
{
    tg_reload_result_t *out = malloc(sizeof(*out));
    if (out == NULL) {
        tg_adm_reply_error(res, 503, "service_unavailable", "Out of memory.");
        return;
    }
    int rc = reload_run(a, out);
    if (rc == TG_ENOTFOUND) {
        tg_adm_reply_error(res, 404, "not_found", "Reloading is not available here.");
    } else if (rc == 0) {
        tg_adm_reply_json(res, 200,
                          json_pack("{s:b,s:s,s:I,s:o,s:o}", "reloaded", 1, "file", tg_adm_cfg(a)->path,
                                    "generation", (json_int_t)out->generation, "restart_required",
                                    split_list(out->restart_required, ", "), "hook_errors",
                                    split_list(out->hook_errors, "; ")));
    } else {
        const char *type = rc == TG_ECONFIG ? "config_invalid" : rc == TG_ESTATE ? "plan_in_use" : "reload_refused";
        int status = rc == TG_ECONFIG ? 422 : rc == TG_ENOMEM ? 503 : 409;
        json_t *errors = split_list(out->errors, "\n");
        char msg[512];
        snprintf(msg, sizeof(msg), "%s%s", rc == TG_ECONFIG ? "The configuration file is invalid; the one in effect stays: " : "",
                 json_string_value(json_array_get(errors, 0)) != NULL ? json_string_value(json_array_get(errors, 0)) : "");
        tg_utf8_scrub(msg);
        char docs[128];
        snprintf(docs, sizeof(docs), "https://tollgate.dev/docs/errors#%s", type);
        tg_adm_reply_json(res, status,
                          json_pack("{s:{s:s,s:s,s:s,s:o}}", "error", "type", type, "message", msg, "docs", docs,
                                    "errors", errors));
    }
    free(out);
}

tg_admin_t *tg_admin_new(const tg_admin_deps_t *deps)
{
    tg_admin_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->d = *deps;
    a->sub = (tg_sub_ctx_t){tg_adm_cfg(a), deps->store, deps->accounts, deps->meter, NULL, deps->outbox != NULL};
    a->keys = (tg_keys_ctx_t){tg_adm_cfg(a), deps->store, deps->accounts, deps->key_secret, deps->key_secret_len, NULL};
    tg_throttle_policy_t pol = {1024, 3600 * TG_NS_PER_SEC, 5, TG_NS_PER_SEC, 900 * TG_NS_PER_SEC};
    if ((a->portal = tg_portal_new()) == NULL || (a->owner_failures = tg_throttle_new(&pol)) == NULL) {
        tg_portal_free(a->portal);
        free(a);
        return NULL;
    }
    const char *tok = deps->cfg->admin.token;
    crypto_generichash(a->token_digest, sizeof(a->token_digest), (const uint8_t *)tok, strlen(tok), NULL, 0);
    const char *mt = deps->cfg->metrics.token;
    if (mt != NULL)
        crypto_generichash(a->metrics_digest, sizeof(a->metrics_digest), (const uint8_t *)mt, strlen(mt), NULL, 0);
    return a;
}

void tg_admin_free(tg_admin_t *a)
{
    if (a == NULL)
        return;
    sodium_memzero(a->token_digest, sizeof(a->token_digest));
    tg_portal_free(a->portal);
    tg_throttle_free(a->owner_failures);
    free(a);
}

int tg_admin_handle_quick(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    tg_adm_segs_t s;
    memset(res, 0, sizeof(*res));
    if (tg_adm_split_path(r->path, r->path_len, &s) != 0) {
        tg_adm_reply_error(res, 404, "route_not_found", "No such route.");
        return 1;
    }
    if (s.n == 1 && (tg_adm_seg_is(&s, 0, "healthz") || tg_adm_seg_is(&s, 0, "readyz") || tg_adm_seg_is(&s, 0, "metrics")) &&
        !tg_adm_method_is(r, "GET") && !tg_adm_method_is(r, "HEAD")) {
        tg_adm_reply_error(res, 405, "method_not_allowed", "Use GET.");
        return 1;
    }
    if (s.n == 1 && tg_adm_seg_is(&s, 0, "healthz")) { /* liveness: the process answers */
        tg_adm_reply_json(res, 200, json_pack("{s:s}", "status", "ok"));
        return 1;
    }
    if (s.n == 1 && tg_adm_seg_is(&s, 0, "openapi.json"))
        return tg_adm_openapi(r, res);
    if (s.n == 1 && tg_adm_seg_is(&s, 0, "readyz")) {
        tg_adm_readyz(a, res);
        return 1;
    }
    if (s.n == 1 && tg_adm_seg_is(&s, 0, "metrics")) {
        /* Metrics name customers' traffic: a token (metrics.token, or the admin token) unless
         * metrics.open. Only immutable digests are read here: safe on the loop. */
        const tg_config_t *cfg = tg_adm_cfg(a);
        if (!cfg->metrics.open && !bearer_is(r, a->token_digest) &&
            !(cfg->metrics.token != NULL && bearer_is(r, a->metrics_digest))) {
            tg_adm_reply_error(res, 401, "unauthorized",
                               "/metrics needs \"Authorization: Bearer <metrics.token or admin token>\" (or metrics.open: true).");
            return 1;
        }
        res->status = 200;
        res->content_type = "text/plain; version=0.0.4";
        res->body = tg_notify_metrics_append(tg_adm_thresholds_metrics(
            tg_adm_cluster_metrics(a, tg_adm_stripe_metrics(a, tg_metrics_render(a->d.meter)))));
        res->body_len = res->body != NULL ? strlen(res->body) : 0;
        return 1;
    }
    if (tg_adm_reference(a, &s, r, res))
        return 1;
    if (tg_adm_seg_is(&s, 0, "v1") && tg_adm_seg_is(&s, 1, "plans") && tg_adm_method_is(r, "GET")) {
        if (s.n == 2) {
            json_t *arr = json_array();
            const tg_config_t *cfg = tg_adm_cfg(a);
            for (size_t i = 0; i < cfg->nplans; i++)
                json_array_append_new(arr, tg_adm_public_plan_json(cfg, &cfg->plans[i]));
            tg_adm_reply_json(res, 200, json_pack("{s:o,s:o,s:o}", "data", arr, "metrics", tg_adm_metrics_json(cfg),
                                                  "portal", tg_adm_portal_brand_json(cfg)));
            return 1;
        }
        char id[TG_PLAN_ID_MAX];
        const tg_plan_t *plan = tg_adm_seg_copy(&s, 2, id, sizeof(id)) == 0 ? tg_config_find_plan(tg_adm_cfg(a), id) : NULL;
        if (s.n > 4 || (s.n == 4 && !tg_adm_seg_is(&s, 3, "quote")))
            tg_adm_reply_error(res, 404, "route_not_found", "No such route.");
        else if (plan == NULL)
            tg_adm_reply_error(res, 404, "not_found", "No such plan.");
        else if (s.n == 3)
            tg_adm_reply_json(res, 200, tg_adm_public_plan_json(tg_adm_cfg(a), plan));
        else
            tg_adm_quote_plan(a, plan, r, res);
        return 1;
    }
    if (s.n == 3 && tg_adm_seg_is(&s, 0, "v1") && tg_adm_seg_is(&s, 1, "webhooks") && tg_adm_seg_is(&s, 2, "stripe"))
        return tg_adm_stripe_webhook_quick(a, r, res); /* 0: verified, recorded on the back thread */
    if (!tg_adm_static(r, res))
        return 0;
    tg_adm_reference_page(a, r, res);
    if (r->path_len >= 8 && memcmp(r->path, "/portal/", 8) == 0) /* the dashboard shows no logo */
        tg_adm_brand_csp(tg_adm_cfg(a), res);
    return 1;
}

static void admin_dispatch(tg_admin_t *a, const tg_adm_segs_t *s, const tg_admin_request_t *r,
                           tg_admin_response_t *res);

void tg_admin_handle(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    tg_adm_segs_t s;
    if (tg_admin_handle_quick(a, r, res))
        return;
    memset(res, 0, sizeof(*res));
    tg_adm_split_path(r->path, r->path_len, &s); /* quick answered the paths it cannot split */
    if (s.n == 3 && tg_adm_seg_is(&s, 0, "v1") && tg_adm_seg_is(&s, 1, "webhooks") && tg_adm_seg_is(&s, 2, "stripe")) {
        tg_adm_stripe_webhook(a, r, res); /* signed by Stripe: neither the admin token nor a session */
        return;
    }
    if (tg_portal_handle(a, &s, r, res))
        return;
    if (!(tg_adm_seg_is(&s, 0, "v1") && tg_adm_seg_is(&s, 1, "admin"))) {
        tg_adm_reply_error(res, 404, "route_not_found", "No such route: %.*s", (int)(r->path_len > 200 ? 200 : r->path_len),
                    r->path);
        return;
    }
    tg_audit_actor_t who;
    if (owner_session_route(a, &s, r, res) || !tg_adm_authorized(a, r, res, &who))
        return;
    if (tg_adm_seg_is(&s, 2, "audit") && s.n == 3) {
        tg_adm_audit_list(a, r, res);
        return;
    }
    tg_adm_audit_t au;
    tg_adm_audit_begin(a, &au, &who, 0, NULL, &s, 2, r);
    admin_dispatch(a, &s, r, res);
    tg_adm_audit_end(a, &au, res);
}

/* The admin API's routes, once the caller is known to be the owner. */
static void admin_dispatch(tg_admin_t *a, const tg_adm_segs_t *sp, const tg_admin_request_t *r,
                           tg_admin_response_t *res)
{
    tg_adm_segs_t s = *sp;
    tg_customer_t c;
    tg_key_t k;
    if (tg_adm_seg_is(&s, 2, "customers") && s.n == 3) {
        if (tg_adm_method_is(r, "POST"))
            tg_adm_create_customer(a, r, res);
        else if (tg_adm_method_is(r, "GET")) {
            tg_adm_list_customers(a, r, res);
        } else
            tg_adm_reply_error(res, 405, "method_not_allowed", "Use GET or POST.");
        return;
    }
    if (tg_adm_seg_is(&s, 2, "metering") && tg_adm_seg_is(&s, 3, "rejected") && s.n == 4 &&
        tg_adm_method_is(r, "GET")) {
        tg_adm_list_rejected(a, r, res);
        return;
    }
    if (tg_adm_seg_is(&s, 2, "billing") && tg_adm_seg_is(&s, 3, "failures") && s.n == 4 && tg_adm_method_is(r, "GET")) {
        tg_adm_list_billing_failures(a, r, res);
        return;
    }
    if (tg_adm_seg_is(&s, 2, "ingest-tokens")) {
        tg_adm_ingest_tokens_route(a, &s, r, res);
        return;
    }
    if (tg_adm_seg_is(&s, 2, "stripe") && tg_adm_seg_is(&s, 3, "outbox")) {
        tg_adm_stripe_outbox_route(a, &s, r, res);
        return;
    }
    if (tg_adm_seg_is(&s, 2, "stripe") && tg_adm_seg_is(&s, 3, "events") && s.n == 5 && tg_adm_method_is(r, "GET")) {
        char id[TG_STRIPE_ID_MAX];
        if (tg_adm_seg_copy(&s, 4, id, sizeof(id)) != 0)
            tg_adm_reply_error(res, 404, "not_found", "No such Stripe event.");
        else
            tg_adm_get_stripe_event(a, id, res);
        return;
    }
    if (s.n >= 3 && tg_adm_notify_route(a, "", &s, 2, r, res))
        return;
    if (tg_adm_seg_is(&s, 2, "dashboard") && s.n == 3 && tg_adm_method_is(r, "GET")) {
        tg_adm_dashboard(a, r, res);
        return;
    }
    if (tg_adm_seg_is(&s, 2, "invoices")) {
        tg_adm_invoices_route(a, &s, r, res);
        return;
    }
    if (tg_adm_seg_is(&s, 2, "export") && s.n == 4) {
        tg_adm_export(a, &s, r, res);
        return;
    }
    if (tg_adm_seg_is(&s, 2, "emails")) {
        tg_adm_emails_route(a, &s, r, res);
        return;
    }
    if (tg_adm_seg_is(&s, 2, "reload") && s.n == 3) {
        if (tg_adm_method_is(r, "POST"))
            reload_route(a, res);
        else
            tg_adm_reply_error(res, 405, "method_not_allowed", "Use POST.");
        return;
    }
    if (tg_adm_seg_is(&s, 2, "clock") && s.n == 3 && tg_adm_method_is(r, "POST")) {
        json_t *body = a->d.test_clock ? tg_adm_parse_body(r, res) : NULL;
        if (!a->d.test_clock) {
            tg_adm_reply_error(res, 404, "not_found", "The test clock is off (serve --test-clock turns it on).");
            return;
        }
        if (body == NULL)
            return;
        json_t *adv = json_object_get(body, "advance_seconds");
        if (!json_is_integer(adv) || json_integer_value(adv) < 0) {
            tg_adm_reply_error(res, 400, "bad_request", "advance_seconds: a non-negative integer.");
        } else {
            static int64_t offset_s;
            offset_s += json_integer_value(adv);
            tg_clock_set_offset(offset_s * TG_NS_PER_SEC);
            tg_adm_reply_json(res, 200, json_pack("{s:o}", "now", tg_adm_json_time(tg_adm_now_s())));
        }
        json_decref(body);
        return;
    }
    if (tg_adm_seg_is(&s, 2, "customers") && s.n == 6 && tg_adm_seg_is(&s, 4, "invoices") && tg_adm_seg_is(&s, 5, "upcoming") &&
        tg_adm_method_is(r, "GET")) {
        if (tg_adm_load_customer(a, &s, 3, &c, res) == 0)
            tg_adm_reply_upcoming(a, &c, res);
        return;
    }
    if (tg_adm_seg_is(&s, 2, "customers") && s.n == 6 && tg_adm_seg_is(&s, 4, "plan") &&
        tg_adm_seg_is(&s, 5, "preview")) {
        if (!tg_adm_method_is(r, "GET"))
            tg_adm_reply_error(res, 405, "method_not_allowed", "Use GET.");
        else if (tg_adm_load_customer(a, &s, 3, &c, res) == 0)
            tg_adm_plan_preview(a, &c, r, res);
        return;
    }
    if (tg_adm_seg_is(&s, 2, "customers") && s.n >= 4) {
        if (s.n == 4 && !tg_adm_method_is(r, "GET") && !tg_adm_method_is(r, "PATCH")) {
            tg_adm_reply_error(res, 405, "method_not_allowed", "Use GET or PATCH.");
            return;
        }
        if (s.n > 5 || (s.n == 5 && !tg_adm_seg_is(&s, 4, "keys") && !tg_adm_seg_is(&s, 4, "usage") && !tg_adm_seg_is(&s, 4, "cancel") &&
                              !tg_adm_seg_is(&s, 4, "resume") && !tg_adm_seg_is(&s, 4, "items") && !tg_adm_seg_is(&s, 4, "status_history") &&
                              !tg_adm_seg_is(&s, 4, "notification-marks") && !tg_adm_seg_is(&s, 4, "budget"))) {
            tg_adm_reply_error(res, 404, "route_not_found", "No such route.");
            return;
        }
        if (tg_adm_load_customer(a, &s, 3, &c, res) != 0)
            return;
        if (s.n == 4 && tg_adm_method_is(r, "GET"))
            tg_adm_reply_json(res, 200, tg_adm_customer_admin_json(a, &c));
        else if (s.n == 4)
            tg_adm_patch_customer(a, &c, r, res);
        else if (tg_adm_seg_is(&s, 4, "keys") && tg_adm_method_is(r, "POST"))
            tg_adm_create_key(a, &c, r, res);
        else if (tg_adm_seg_is(&s, 4, "keys") && tg_adm_method_is(r, "GET")) {
            tg_adm_list_keys(a, &c, r, res);
        } else if (tg_adm_seg_is(&s, 4, "usage") && tg_adm_method_is(r, "GET"))
            tg_adm_get_usage(a, &c, r, res);
        else if (tg_adm_seg_is(&s, 4, "cancel") && tg_adm_method_is(r, "POST"))
            tg_adm_cancel_customer(a, &c, r, res);
        else if (tg_adm_seg_is(&s, 4, "resume") && tg_adm_method_is(r, "POST"))
            tg_adm_resume_customer(a, &c, res);
        else if (tg_adm_seg_is(&s, 4, "items") && tg_adm_method_is(r, "POST"))
            tg_adm_add_item(a, &c, r, res);
        else if (tg_adm_seg_is(&s, 4, "status_history") && tg_adm_method_is(r, "GET"))
            tg_adm_get_status_history(a, &c, res);
        else if (tg_adm_seg_is(&s, 4, "notification-marks") && tg_adm_method_is(r, "GET"))
            tg_adm_notification_marks(a, &c, res);
        else if (tg_adm_seg_is(&s, 4, "budget"))
            tg_adm_budget(a, &c, r, res);
        else
            tg_adm_reply_error(res, 405, "method_not_allowed", "Method not allowed here.");
        return;
    }
    if (tg_adm_seg_is(&s, 2, "keys") && (s.n == 4 || (s.n == 5 && tg_adm_seg_is(&s, 4, "rotate")))) {
        if (s.n == 4 && !tg_adm_method_is(r, "DELETE") && !tg_adm_method_is(r, "GET")) {
            tg_adm_reply_error(res, 405, "method_not_allowed", "Use GET or DELETE.");
            return;
        }
        if (s.n == 5 && !tg_adm_method_is(r, "POST")) {
            tg_adm_reply_error(res, 405, "method_not_allowed", "Use POST.");
            return;
        }
        if (tg_adm_load_key(a, &s, 3, &k, res) != 0)
            return;
        if (s.n == 5)
            tg_adm_rotate_key(a, &k, r, res);
        else if (tg_adm_method_is(r, "DELETE"))
            tg_adm_revoke_key(a, &k, res);
        else
            tg_adm_reply_json(res, 200, tg_adm_key_json(a, &k));
        return;
    }
    tg_adm_reply_error(res, 404, "route_not_found", "No such route: %.*s", (int)(r->path_len > 200 ? 200 : r->path_len), r->path);
}
