/* admin_int.h - what the files of src/admin/ share: the admin object, request helpers and the
 * operations several routes (admin and portal) use. Not for other folders. All of it runs on
 * the admin thread. */
#ifndef TG_ADMIN_INT_H
#define TG_ADMIN_INT_H

#include "store/store_ingest.h"
#include <jansson.h>
#include <stdint.h>

#include "admin/admin_api.h"
#include "config/config.h"
#include "store/store.h"
#include "gateway/apikey.h"
#include "billing/periods.h"
#include "billing/subscriptions.h"
#include "keys/keys.h"
#include "ops/audit.h"
#include "metering/batch_prune.h"

typedef struct tg_portal tg_portal_t;
typedef struct tg_throttle tg_throttle_t;

struct tg_admin {
    tg_admin_deps_t d;
    uint8_t token_digest[32];
    uint8_t metrics_digest[32]; /* metrics.token's, when set */
    tg_portal_t *portal; /* developer portal sessions and login throttling (portal.c) */
    tg_throttle_t *owner_failures; /* failed owner sign-ins per client address */
    tg_sub_ctx_t sub;   /* the subscription and invoice services' view of d */
    tg_keys_ctx_t keys; /* the key service's */
    int stripe_pending; /* Stripe events were recorded: apply them after the answer (tg_admin_after) */
    tg_periods_cursor_t billing; /* the period closer's run in slices (tg_admin_billing_slice) */
    tg_batch_prune_lag_t batch_prune; /* the usage_batches prune's lagging bound (metering/batch_prune.h) */
    _Atomic int leader; /* this node ran the schedulers at the last tick (store_cluster.h); read by /metrics */
};

/* The configuration in effect (deps.live, else deps.cfg): one atomic load; the pointer stays
 * valid until shutdown (config/config_live.h). Load it once per request where several fields
 * must agree. Any thread. */
const tg_config_t *tg_adm_cfg(const tg_admin_t *a);

/* POST /v1/webhooks/stripe (admin_webhooks.c): the quick part (not configured, method, signature:
 * 1 when it answered), then, on the back thread, recording. */
int tg_adm_stripe_webhook_quick(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res);
void tg_adm_stripe_webhook(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res);
/* /metrics: appends the cluster's figures (scheduler lock, directory sync) to body (admin_cluster.c). */
/* GET /readyz (admin_cluster.c): 200 {"status": "ready", "checks": {...}} while the metering log
 * takes appends, the database takes usage (and, on several nodes, its change notices arrive) and
 * Redis answers when limits are shared; else 503 "not_ready" naming what fails. Reads only
 * atomics and counters: safe on the admin loop. /healthz stays liveness only. */
void tg_adm_readyz(tg_admin_t *a, tg_admin_response_t *res);
char *tg_adm_cluster_metrics(tg_admin_t *a, char *body);
/* The tick's share of payments: pending events (recorded before a crash), dunning.grace_days. */
void tg_adm_payments_tick(tg_admin_t *a);
void tg_adm_get_stripe_event(tg_admin_t *a, const char *id, tg_admin_response_t *res);
void tg_adm_get_status_history(tg_admin_t *a, const tg_customer_t *c, tg_admin_response_t *res);


/* Splits "/v1/admin/customers/cus_1/keys" into segments after the prefix. */
typedef struct {
    const char *seg[6];
    size_t len[6];
    size_t n;
} tg_adm_segs_t;

typedef struct {
    tg_admin_t *a;
    json_t *arr;
} tg_adm_list_ctx_t;

void tg_adm_reply_error(tg_admin_response_t *res, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The one place where a service's error (billing/subscriptions.h, billing/periods.h,
 * keys/keys.h) becomes an HTTP status and an error type; the message is err's. */
void tg_adm_reply_svc_error(tg_admin_response_t *res, int rc, const tg_err_t *err);

void tg_adm_fmt_time(int64_t t, char *buf, size_t cap);
json_t *tg_adm_json_time(int64_t t);
int64_t tg_adm_now_s(void);
void tg_adm_reply_json(tg_admin_response_t *res, int status, json_t *j);
void tg_adm_random_id(const char *prefix, char *out, size_t cap);
int tg_adm_split_path(const char *path, size_t len, tg_adm_segs_t *s);
int tg_adm_seg_is(const tg_adm_segs_t *s, size_t i, const char *lit);
int tg_adm_seg_copy(const tg_adm_segs_t *s, size_t i, char *out, size_t cap);
int tg_adm_method_is(const tg_admin_request_t *r, const char *m);
json_t *tg_adm_parse_body(const tg_admin_request_t *r, tg_admin_response_t *res);
/* 1 if the request's Origin (or, without one, its Referer) is this port's own origin (scheme by
 * r->secure, then the Host), or if it has neither (not a browser). Browsers send Origin with
 * every cross-origin state-changing request, so a page elsewhere cannot pass. */
int tg_adm_same_origin(const tg_admin_request_t *r);
/* The value of cookie `name` into out (cap bytes); 0 if absent or too long. */
int tg_adm_cookie(const tg_admin_request_t *r, const char *name, char *out, size_t cap);
const char *tg_adm_opt_string(json_t *obj, const char *name, int *bad);
const char *tg_adm_display_status(const tg_customer_t *c, int64_t now);
json_t *tg_adm_customer_json(tg_admin_t *a, const tg_customer_t *c);
/* The owner's view of a customer: tg_adm_customer_json and its Stripe sync state (admin_stripe.c):
 * "stripe": {"customer_id", "state", "attempts", "last_error", "updated_at"}, or null when no
 * stripe section is configured. The developer portal does not show it. */
json_t *tg_adm_customer_admin_json(tg_admin_t *a, const tg_customer_t *c);
/* Appends the outbox's metrics (atomics only: any thread) to body, a malloc'd metrics text;
 * returns the new text (body itself when there is no outbox; NULL, with body freed, when out of
 * memory). */
char *tg_adm_stripe_metrics(tg_admin_t *a, char *body);
/* /v1/admin/stripe/outbox...: GET the outbox ([?state=pending|done|failed], newest first,
 * paged); POST /v1/admin/stripe/outbox/{id}/retry puts a failed row back in the queue. */
void tg_adm_stripe_outbox_route(tg_admin_t *a, const tg_adm_segs_t *s, const tg_admin_request_t *r,
                                tg_admin_response_t *res);
int tg_adm_valid_email(const char *e);
void tg_adm_create_customer(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res);
int tg_adm_list_customer_cb(const tg_customer_t *c, void *arg);
int tg_adm_load_customer(tg_admin_t *a, const tg_adm_segs_t *s, size_t idx, tg_customer_t *c, tg_admin_response_t *res);
void tg_adm_patch_customer(tg_admin_t *a, tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res);
/* GET .../plan/preview?plan=ID[&when=now|period_end] (the portal's /v1/me and the owner's
 * /v1/admin/customers/{id}): the PlanPreview of changing c to that plan, changing nothing; 400 for
 * an unknown plan or when, the service's error otherwise (tg_sub_change_compute). Admin loop. */
void tg_adm_plan_preview(tg_admin_t *a, const tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res);
void tg_adm_cancel_customer(tg_admin_t *a, tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res);
void tg_adm_resume_customer(tg_admin_t *a, tg_customer_t *c, tg_admin_response_t *res);
json_t *tg_adm_key_json(tg_admin_t *a, const tg_key_t *k);
void tg_adm_create_key(tg_admin_t *a, const tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res);
int tg_adm_list_key_cb(const tg_key_t *k, void *arg);
int tg_adm_load_key(tg_admin_t *a, const tg_adm_segs_t *s, size_t idx, tg_key_t *k, tg_admin_response_t *res);
void tg_adm_revoke_key(tg_admin_t *a, tg_key_t *k, tg_admin_response_t *res);
void tg_adm_rotate_key(tg_admin_t *a, tg_key_t *old, const tg_admin_request_t *r, tg_admin_response_t *res);
int tg_adm_usage_total_cb(const char *metric, uint64_t units, void *arg);
int tg_adm_usage_day_cb(const char *day, const char *metric, uint64_t units, void *arg);
int tg_adm_parse_month(const char *q, size_t len, int64_t *out);
void tg_adm_get_usage(tg_admin_t *a, const tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res);
json_t *tg_adm_money_json(tg_money_t v, int digits);
const char *tg_adm_rate_unit(int64_t period_ns);
json_t *tg_adm_plan_json(const tg_plan_t *p);
/* admin_display.c (issue 15): {id: {name, unit}} for every metric the configuration names; the
 * portal's branding {title, logo, primary_color, support_email, terms_url, privacy_url, highlight} (null
 * when unset); and, for an HTML answer (the caller passes the portal's pages only),
 * res->img_origin = the logo's origin when it is an absolute URL (the CSP's img-src then allows
 * it). Admin loop. */
json_t *tg_adm_metrics_json(const tg_config_t *cfg);
json_t *tg_adm_portal_brand_json(const tg_config_t *cfg);
/* A plan as GET /v1/plans shows it: tg_adm_plan_json plus "endpoint_names", its endpoints in
 * words (apiref/openapi.h's tg_openapi_plan_words; the patterns themselves without portal.openapi),
 * null for a plan with no endpoints list (every path), and "self_service" (sign-up may choose it:
 * tg_config_self_service). NULL when out of memory. Admin loop. */
json_t *tg_adm_public_plan_json(const tg_config_t *cfg, const tg_plan_t *p);
void tg_adm_brand_csp(const tg_config_t *cfg, tg_admin_response_t *res);
void tg_adm_quote_plan(tg_admin_t *a, const tg_plan_t *plan, const tg_admin_request_t *r, tg_admin_response_t *res);
void tg_adm_reply_invoice(const tg_admin_t *a, tg_admin_response_t *res, int status, const tg_invoice_t *inv);
int tg_adm_list_invoice_cb(const tg_invoice_t *inv, void *arg);
void tg_adm_invoices_route(tg_admin_t *a, const tg_adm_segs_t *s, const tg_admin_request_t *r, tg_admin_response_t *res);
/* admin_mail.c (issue 13 part B): /v1/admin/emails */
/* portal_reference.c (issue 15): GET /v1/reference; 0 when the path is another one */
int tg_adm_reference(tg_admin_t *a, const tg_adm_segs_t *s, const tg_admin_request_t *r, tg_admin_response_t *res);
/* The reference page itself (a static file, already in res): lets it fetch from the gateway. */
void tg_adm_reference_page(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res);
/* portal_account.c (issue 13 part B): address confirmation and password reset by mail */
struct tg_throttle;
int tg_portal_mail_confirmation(tg_admin_t *a, const tg_customer_t *c, tg_err_t *err);
void tg_portal_confirm_email(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res);
/* POST /v1/me/confirmation: a new confirmation link for the signed-in customer c (address: the
 * client's, as the throttle keys it). */
void tg_portal_resend_confirmation(tg_admin_t *a, struct tg_throttle *limits, const char *address,
                                   const tg_customer_t *c, tg_admin_response_t *res);
void tg_portal_forgot_password(tg_admin_t *a, struct tg_throttle *limits, const char *address,
                               const tg_admin_request_t *r, tg_admin_response_t *res);
int tg_portal_reset_check(tg_admin_t *a, const char *token, const char *password, tg_customer_t *c,
                          tg_admin_response_t *res);
/* who: the audit log's actor (its id becomes the customer's); the entry commits with the reset. */
void tg_portal_reset_finish(tg_admin_t *a, const char *token, const char *new_hash, tg_audit_actor_t *who,
                            tg_admin_response_t *res);
void tg_adm_emails_route(tg_admin_t *a, const tg_adm_segs_t *s, const tg_admin_request_t *r, tg_admin_response_t *res);


void tg_adm_add_item(tg_admin_t *a, const tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res);
/* Paged lists (admin_lists.c). tg_adm_query_param copies query parameter `name` (raw, not
 * percent-decoded) into out: 1 found, 0 absent, -1 longer than cap-1. tg_adm_page_parse reads
 * `limit` (1..1000, default 100) and `cursor` (of the list named `list`) into page, or replies
 * 400 invalid_parameter naming the parameter and returns -1. tg_adm_reply_page answers
 * {"data": data, "has_more": bool, "next_cursor": string|null} and takes data. */
int tg_adm_query_param(const tg_admin_request_t *r, const char *name, char *out, size_t cap);
int tg_adm_page_parse(const tg_admin_request_t *r, const char *list, tg_page_t *page, tg_admin_response_t *res);
void tg_adm_reply_page(tg_admin_response_t *res, const char *list, json_t *data, const tg_page_end_t *end);
/* The same with one more member `name` (takes value; NULL: none). */
void tg_adm_reply_page_with(tg_admin_response_t *res, const char *list, json_t *data, const tg_page_end_t *end,
                            const char *name, json_t *value);
void tg_adm_reply_list_error(tg_admin_response_t *res, int rc, const char *what, const tg_err_t *err);
/* Events and webhooks (admin_notify.c): the routes under /v1/admin (customer_id "": the owner's)
 * and /v1/me (the signed-in customer's), from segment `at` on. 1 if it answered, 0 if the
 * route is not one of them. */
int tg_adm_notify_route(tg_admin_t *a, const char *customer_id, const tg_adm_segs_t *s, size_t at,
                        const tg_admin_request_t *r, tg_admin_response_t *res);
/* admin_ingest.c (issue 16): /v1/admin/ingest-tokens[/{id}] (segment 2 is "ingest-tokens") */
void tg_adm_ingest_tokens_route(tg_admin_t *a, const tg_adm_segs_t *s, const tg_admin_request_t *r,
                                tg_admin_response_t *res);
json_t *tg_adm_ingest_token_json(const tg_ingest_token_row_t *t);
void tg_adm_list_rejected(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res);
void tg_adm_list_billing_failures(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res);
void tg_adm_list_customers(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res);
/* admin_search.c (issue 15): the customer list with q, plan, status, sort, order; and a query
 * parameter percent-decoded ('+' a space) into out: 1 found, 0 absent, -1 longer than cap-1, a
 * bad escape, a NUL or not UTF-8. */
/* The customer list's parameters (q, plan, status, sort, order) parsed into q_, which points
 * into the struct's own buffers; list is the cursors' list name. -1 after a 400 reply. */
typedef struct tg_adm_customer_params {
    char q[TG_CUSTOMER_SEARCH_MAX], plan[TG_PLAN_ID_MAX], status[TG_STATUS_MAX], sort[16], list[40];
    tg_customer_query_t q_;
} tg_adm_customer_params_t;
int tg_adm_customer_query_parse(const tg_admin_request_t *r, tg_adm_customer_params_t *p, tg_admin_response_t *res);
/* The invoice list's filters (customer, status, currency, from, to), the same way. */
typedef struct tg_adm_invoice_params {
    char customer[TG_ID_MAX], status[TG_STATUS_MAX], currency[8];
    tg_invoice_query_t q_;
} tg_adm_invoice_params_t;
int tg_adm_invoice_query_parse(const tg_admin_request_t *r, tg_adm_invoice_params_t *p, tg_admin_response_t *res);
/* GET /v1/admin/export/{customers,invoices,usage}.csv (admin_export.c). */
void tg_adm_export(tg_admin_t *a, const tg_adm_segs_t *s, const tg_admin_request_t *r, tg_admin_response_t *res);
void tg_adm_search_customers(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res);
/* GET /v1/admin/invoices?customer=&status=&currency=&from=&to= (admin_search.c): the page, and on
 * the first page the totals of every matching invoice per currency. */
void tg_adm_search_invoices(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res);
int tg_adm_query_text(const tg_admin_request_t *r, const char *name, char *out, size_t cap);
/* "YYYY-MM-DD" as the seconds of that UTC midnight; -1 if it is not such a date (1970 to 9999). */
int64_t tg_adm_parse_day(const char *s);
void tg_adm_list_keys(tg_admin_t *a, const tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res);
/* customer_id NULL: every customer's; hide_drafts: the portal's view (drafts are the owner's). A
 * page may then hold fewer than `limit` items; has_more still tells whether to go on. */
void tg_adm_list_invoices(tg_admin_t *a, const char *customer_id, int hide_drafts, const tg_admin_request_t *r,
                          tg_admin_response_t *res);

/* The upcoming invoice of c's current period (admin and portal). */
void tg_adm_reply_upcoming(tg_admin_t *a, const tg_customer_t *c, tg_admin_response_t *res);

/* GET /openapi.json: this port's API description (docs/openapi.yaml, built in as JSON). Always
 * answers (1). Admin loop. */
int tg_adm_openapi(const tg_admin_request_t *r, tg_admin_response_t *res);

/* The portal and dashboard pages (admin_static.c). Returns 1 if it handled the request. */
int tg_adm_static(const tg_admin_request_t *r, tg_admin_response_t *res);

/* GET /v1/admin/dashboard[?period=YYYY-MM] (admin_dashboard.c). */
void tg_adm_dashboard(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res);

/* Developer portal (portal.c): the self-service JSON API under /v1/signup, /v1/login,
 * /v1/logout and /v1/me. Returns 1 if it handled the request. */
tg_portal_t *tg_portal_new(void);
void tg_portal_free(tg_portal_t *p);
int tg_portal_handle(tg_admin_t *a, const tg_adm_segs_t *s, const tg_admin_request_t *r, tg_admin_response_t *res);

/* issue 13 part C (admin_thresholds.c): GET .../notification-marks; GET/PUT a budget (admin
 * API and portal). */
void tg_adm_notification_marks(tg_admin_t *a, const tg_customer_t *c, tg_admin_response_t *res);
void tg_adm_budget(tg_admin_t *a, const tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res);
/* Appends the notifier's figures to body (as tg_adm_cluster_metrics). */
char *tg_adm_thresholds_metrics(char *body);

/* The audit log (admin_audit.c, issue 14). The routers call begin before dispatching a request
 * and end after it: when the request is one of the changes the tables there name and it
 * succeeded (2xx, not left to a slow worker), end records who did what to which target, with
 * its state before and after. tg_adm_audit_now records one entry directly (changes finished
 * elsewhere: sign-up, passwords, sign-in). tg_adm_audit_actor fills who from the request (the
 * CLI's X-Tollgate-Client turns an admin token into "cli"). GET /v1/admin/audit:
 * tg_adm_audit_list. */
typedef struct tg_adm_audit {
    int on;
    tg_audit_actor_t who;
    char action[TG_AUDIT_ACTION_MAX];
    char target_type[TG_AUDIT_TYPE_MAX];
    char target_id[TG_AUDIT_TARGET_MAX];
    int snap, after_body, id_from_response;
    json_t *before;
} tg_adm_audit_t;
void tg_adm_audit_actor(const tg_admin_request_t *r, tg_audit_actor_kind_t kind, const char *id,
                        tg_audit_actor_t *who);
void tg_adm_audit_begin(tg_admin_t *a, tg_adm_audit_t *au, const tg_audit_actor_t *who, int portal,
                        const char *self_id, const tg_adm_segs_t *s, size_t at, const tg_admin_request_t *r);
void tg_adm_audit_end(tg_admin_t *a, tg_adm_audit_t *au, const tg_admin_response_t *res);
void tg_adm_audit_now(tg_admin_t *a, const tg_audit_actor_t *who, const char *action, const char *target_type,
                      const char *target_id, const json_t *before, const json_t *after);
void tg_adm_audit_list(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res);

#endif
