/* admin_api.h - the admin API, health and metrics, free of any HTTP library.
 *
 * src/http/ turns each admin-port request into a tg_admin_request_t and sends back the
 * tg_admin_response_t. Runs on the admin thread only: it owns a store connection of its own and
 * may block on it. Every write goes to the store first, then to the in-memory directory the
 * gateway reads, so what the gateway enforces is always something that is durable. */
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
    char remote_addr[64]; /* the client's IP address, for login throttling */
} tg_admin_request_t;

typedef struct tg_admin_response {
    int status;
    const char *content_type; /* static string */
    char *body;               /* malloc'd; the caller frees */
    size_t body_len;
    char set_cookie[256]; /* a Set-Cookie header value, or "" */
} tg_admin_response_t;

tg_admin_t *tg_admin_new(const tg_admin_deps_t *deps);
void tg_admin_free(tg_admin_t *a);

/* Periodic work of the admin thread (about every 10 s) and at shutdown: persists API keys'
 * last-used times, which the gateway only records in memory, and closes ended billing periods
 * into draft invoices. */
void tg_admin_tick(tg_admin_t *a);

/* Answers one request; always fills res (errors are JSON error bodies). */
void tg_admin_handle(tg_admin_t *a, const tg_admin_request_t *req, tg_admin_response_t *res);

#endif
