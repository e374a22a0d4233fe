/* admin_api.h - the admin API, health and metrics, free of any HTTP library.
 *
 * src/http/admin_front.c turns each admin-port request into a tg_admin_request_t and sends back
 * the tg_admin_response_t. Threads (who owns what):
 *  - the admin port's event loop calls only tg_admin_handle_quick: health, metrics, plans,
 *    quotes and pages, which read the immutable configuration and atomic counters, never the
 *    store and never a lock that slow work holds;
 *  - ONE admin back thread owns everything else in tg_admin_t: the store connection, portal
 *    sessions and throttles. It calls tg_admin_handle, tg_admin_slow_finish and tg_admin_tick,
 *    and may block on the store;
 *  - slow CPU work (Argon2id password hashing, ~100 ms each) is handed out as a tg_admin_slow_t
 *    that tg_admin_slow_run computes on any other thread (a hash worker): it touches only the
 *    memory of that object.
 * Every write goes to the store first, then to the in-memory directory the gateway reads, so
 * what the gateway enforces is always something that is durable. */
#ifndef TG_ADMIN_API_H
#define TG_ADMIN_API_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "gateway/accounts.h"
#include "limits/quota.h"
#include "metering/meter.h"
#include "store/store.h"

typedef struct tg_admin tg_admin_t;

typedef struct tg_admin_deps {
    const tg_config_t *cfg;
    tg_store_t *store; /* owned by the caller; used only from the admin thread */
    tg_accounts_t *accounts;
    tg_quota_t *quota;
    tg_meter_t *meter;
    const uint8_t *key_secret;
    size_t key_secret_len;
    int test_clock; /* serve --test-clock: POST /v1/admin/clock may move time (tests only) */
    /* The Stripe outbox (a stripe section is configured), or NULL: then nothing is sent to
     * Stripe. New customers get a "create the Stripe customer" row in their transaction. */
    struct tg_outbox *outbox;
    /* Several gateways on PostgreSQL: the thread following the others' changes (for /metrics),
     * or NULL on one node. */
    struct tg_dirsync *dirsync;
    /* tollgate serve closes periods on a thread of its own (billing/closer.h), which asks
     * tg_admin_leads whether this node runs the schedulers; 0: the admin thread's tick closes
     * periods itself, in slices (tg_admin_billing_slice). */
    int billing_thread;
    /* The configuration in effect (config/config_live.h): when set, every handler reads it
     * instead of cfg, so plans and the rest follow a reload. May be NULL (tests, tools). */
    struct tg_config_live *live;
    /* POST /v1/admin/reload and tg_admin_reload run it (ops/reload.h); NULL: the route answers
     * 404. */
    struct tg_reloader *reloader;
    /* The usage events service (an events section is configured), or NULL: ingest tokens made
     * or revoked in the admin API update its in-memory table (metering/ingest_tokens.h). */
    struct tg_events *events;
} tg_admin_deps_t;

typedef struct tg_admin_request {
    const char *method;
    size_t method_len;
    const char *path; /* without the query */
    size_t path_len;
    const char *query; /* after '?', or NULL */
    size_t query_len;
    const char *authorization;
    size_t authorization_len;
    const char *body;
    size_t body_len;
    const char *cookie; /* Cookie header value, or NULL */
    size_t cookie_len;
    const char *csrf_token; /* X-CSRF-Token header value, or NULL */
    size_t csrf_token_len;
    const char *content_type; /* Content-Type header value, or NULL */
    size_t content_type_len;
    const char *origin; /* Origin header value, or NULL */
    size_t origin_len;
    const char *referer; /* Referer header value, or NULL */
    size_t referer_len;
    const char *stripe_signature; /* Stripe-Signature header value, or NULL */
    size_t stripe_signature_len;
    const char *host; /* the request's authority (Host), or NULL */
    size_t host_len;
    int secure; /* over TLS, or a trusted proxy said X-Forwarded-Proto: https: cookies get Secure */
    /* The client's IP address, for throttles and trials: the TCP peer, or what a trusted proxy
     * (server.trusted_proxies) forwarded (see tg_client_addr in util/cidr.h). */
    char remote_addr[64];
    /* For the audit log (ops/audit.h): the client's X-Request-Id when well formed (1 to 128 of
     * [A-Za-z0-9._:-]), else ""; and X-Tollgate-Client ("cli" from the tollgate command: a
     * claim, which only names the admin token's user), else "". */
    char request_id[129];
    char client[16];
} tg_admin_request_t;

/* Work that a request left to do off the back thread (see above). Opaque. */
typedef struct tg_admin_slow tg_admin_slow_t;

typedef struct tg_admin_response {
    int status;
    const char *content_type; /* static string */
    char *body;               /* malloc'd; the caller frees */
    size_t body_len;
    char set_cookie[256]; /* a Set-Cookie header value, or "" */
    int retry_after;      /* > 0: a Retry-After header (seconds) */
    int inline_style;     /* the page has a <style> element (invoices): CSP allows inline styles */
    /* Non-NULL: one more origin the page may fetch from (CSP connect-src), e.g. the gateway for
     * the API reference's Try it. Points into the configuration, which outlives the response. */
    const char *connect_src;
    char img_origin[300]; /* "" or "https://host[:port]": the CSP's img-src also allows it (portal.logo) */
    /* Non-NULL: not answered yet. The caller runs tg_admin_slow_run on a worker, then
     * tg_admin_slow_finish on the back thread, which fills this response. */
    tg_admin_slow_t *slow;
} tg_admin_response_t;

tg_admin_t *tg_admin_new(const tg_admin_deps_t *deps);
void tg_admin_free(tg_admin_t *a);

/* Periodic work of the admin thread (about every 10 s) and at shutdown: persists API keys'
 * last-used times, which the gateway only records in memory, and closes ended billing periods
 * into draft invoices, unless the period closer has its own thread (deps.closer, as in
 * tollgate serve). Here the closer runs in slices of about TG_ADMIN_BILLING_SLICE_NS
 * (billing/periods.h, tg_periods_close_some): returns 1 when customers due remain, and the
 * caller then calls tg_admin_billing_slice between its other jobs until it returns 0, so that a
 * run over a million customers never holds the admin API for more than a slice. */
#define TG_ADMIN_BILLING_SLICE_NS (50 * 1000000LL)
/* The tick also deletes finished notifications past their retention (notify/retention.h) and,
 * on every node, the usage_batches rows its metering logs no longer need (metering/
 * batch_prune.h), for about this long at most each per tick; a backlog goes on at the next
 * ticks. */
#define TG_ADMIN_PRUNE_BUDGET_NS (50 * 1000000LL)
int tg_admin_tick(tg_admin_t *a);
int tg_admin_billing_slice(tg_admin_t *a);
/* 1 when this node ran the schedulers at the last tick (the scheduler lock, store_cluster.h):
 * the closer's thread runs only then. Any thread; a is a tg_admin_t *. */
int tg_admin_leads(void *a);

/* Back thread: re-reads the configuration (ops/reload.h, which logs the outcome) and points the
 * admin's services at the new one. What SIGHUP runs (http/admin_front.c); POST
 * /v1/admin/reload answers with the same result. TG_ENOTFOUND without a reloader. */
struct tg_reload_result;
int tg_admin_reload(tg_admin_t *a, struct tg_reload_result *out);

/* Back thread, after each answer was handed back to the loop: work that requests queued and that
 * must not delay their answers (applying recorded Stripe events). */
void tg_admin_after(tg_admin_t *a);

/* Answers the requests that need neither the store nor the back thread's state (health,
 * metrics, plans and quotes, pages, and every refusal of a Stripe webhook: a request without a
 * valid signature never reaches the back thread). Returns 1 with res filled, 0 if the request is not one of
 * them. Any thread; meant for the event loop. */
int tg_admin_handle_quick(tg_admin_t *a, const tg_admin_request_t *req, tg_admin_response_t *res);

/* Answers one request (any route, quick ones included); back thread only. Fills res, or sets
 * res->slow when part of the work (password hashing) must run elsewhere first. */
void tg_admin_handle(tg_admin_t *a, const tg_admin_request_t *req, tg_admin_response_t *res);

/* The slow part of a request: CPU only, on any thread; touches nothing but s. */
void tg_admin_slow_run(tg_admin_slow_t *s);

/* Back thread: completes the request whose slow part ran (ran = 1) or was refused because the
 * workers are saturated (ran = 0: answers 503 with Retry-After), fills res and frees s. */
void tg_admin_slow_finish(tg_admin_t *a, tg_admin_slow_t *s, int ran, tg_admin_response_t *res);

#endif
