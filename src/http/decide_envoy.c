/* decide_envoy.c - Envoy's external authorization (ext_authz, HTTP mode) on the gateway port.
 *
 * Envoy in front of the upstream asks tollgate whether each call may pass, instead of sending the
 * call through tollgate. What Envoy sends (envoyproxy/envoy, ext_authz.proto: HttpService,
 * AuthorizationRequest; source/extensions/filters/common/ext_authz/ext_authz_http_impl.cc): the
 * client's ORIGINAL method, the path `path_prefix` + the client's path and query, the client's
 * Host, Authorization and the headers matched by allowed_headers, Content-Length: 0 (no body
 * unless with_request_body is set), and the headers_to_add of its configuration, here the
 * service token. What Envoy does with the answer: 200 lets the call through, copying the
 * headers matched by allowed_upstream_headers onto the upstream request (replacing the client's)
 * and those matched by allowed_client_headers_on_success onto the client's response, and removing
 * the request headers named in x-envoy-auth-headers-to-remove; any other status below 500 is
 * sent to the client with its body and the headers matched by allowed_client_headers; a 5xx or
 * no answer is an error (status_on_error, 403 by default, or the call passes with
 * failure_mode_allow, which must therefore stay off).
 *
 * So, with decide.token set, a request whose raw path is /v1/decide/envoy followed by '/', '?'
 * or nothing is answered here: the service token is checked (X-Tollgate-Token, compared
 * as digests in constant time; missing or wrong: 403 decide_token_invalid, as for nginx's
 * decision routes (decide_http.c), and nothing else happens),
 * the rest of the path is normalised as the proxy normalises a call's path (one with a "." or
 * ".." segment is refused: the upstream gets it from Envoy unresolved), and
 * tg_gateway_admit decides on the method, that path and the key, exactly as for a proxied call.
 * A refusal is answered with the proxy's status, JSON error, Retry-After and rate-limit headers.
 * An admitted call is metered at once - Envoy tells nobody how the upstream answered, so the
 * call is settled as if the upstream had answered 200: the units of the plan's route for that
 * method and path, never a Tollgate-Units header, and a call that then fails upstream is
 * billed all the same - and answered 200 with X-Tollgate-Customer, X-Tollgate-Plan and
 * X-Tollgate-Key-Id for the upstream, the rate-limit and quota headers for the client, and the
 * key headers to remove. In strict and process durability the 200 waits until the usage is
 * committed, as a proxied response does (proxy.c): the meter's completion comes back to the
 * worker's loop through a receiver of this module on the worker's queue.
 *
 * Any other path, and every path when decide.token is not set (the handler is then not
 * registered), goes on to the gateway handler: an upstream's own paths are not shadowed.
 *
 * Memory: envoy_req_t lives in the request's pool, with a dispose hook. The wait for the meter
 * (decide_wait_t) is malloc'd and reference-counted between the request and the completion
 * message, either of which may end first; both references are dropped on the worker's loop. */
#include <sodium.h>
#include <string.h>

#include "gateway/gateway.h"
#include "http/http_int.h"
#include "http/request_id.h"
#include "metering/meter.h"
#include "util/clock.h"

#define ENVOY_PREFIX "/v1/decide/envoy"
#define TOKEN_HEADER "x-tollgate-token"
/* Request headers that carried the customer's key: Envoy removes them before the upstream sees
 * the call, as the proxy strips them (the key is the customer's secret). */
#define KEY_HEADERS "authorization, x-api-key"

typedef struct envoy_handler {
    h2o_handler_t super;
    struct tg_server *srv;
    uint8_t token_digest[32]; /* of decide.token */
    /* One receiver per gateway worker, registered on that worker's queue by its loop the first
     * time it needs one (index: the worker's place in srv->workers). */
    h2o_multithread_receiver_t *receivers;
    uint8_t *registered;
} envoy_handler_t;

typedef struct decide_wait {
    h2o_multithread_message_t msg;        /* first: the message is the object */
    h2o_multithread_receiver_t *receiver; /* the worker's (receiver_of) */
    h2o_req_t *req;                       /* NULL once the request is gone */
    int refs;
} decide_wait_t;

typedef struct envoy_req {
    tg_call_t call;
    tg_worker_t *worker;
    decide_wait_t *wait; /* the allow answer waits for the meter; NULL otherwise */
    char request_id[TG_REQUEST_ID_MAX + 1];
    int64_t start_ns, start_mono_ns; /* when the check arrived, for its access-log line */
} envoy_req_t;

/* The check's access-log line (decide_log.c): the client's method and path, without its query. */
static void log_check(struct tg_server *srv, h2o_req_t *req, const envoy_req_t *er, h2o_iovec_t raw,
                      const tg_refusal_t *refusal)
{
    const char *q = raw.len > 0 ? memchr(raw.base, '?', raw.len) : NULL;
    tg_decide_line_t line = {.via = "envoy",
                             .method = req->method,
                             .path = h2o_iovec_init(raw.base, q != NULL ? (size_t)(q - raw.base) : raw.len),
                             .call = &er->call,
                             .refusal = refusal,
                             .request_id = er->request_id,
                             .start_ns = er->start_ns,
                             .start_mono_ns = er->start_mono_ns};
    tg_http_decide_log(srv, req, &line);
}

static void wait_release(decide_wait_t *w)
{
    if (--w->refs == 0)
        free(w);
}

static void on_envoy_req_dispose(void *p)
{
    envoy_req_t *er = p;
    tg_gateway_abandon(er->worker->srv->deps.gateway, &er->call); /* nothing, once settled */
    if (er->wait != NULL) {
        er->wait->req = NULL;
        wait_release(er->wait);
    }
    er->worker->in_flight--;
}

static void add_header(h2o_req_t *req, const char *name, const char *value, size_t value_len)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL,
                          h2o_strdup(&req->pool, value, value_len).base, value_len);
}

static void add_str(h2o_req_t *req, const char *name, const char *value)
{
    add_header(req, name, value, strlen(value));
}

/* Envoy passes HEAD on as the method: the HTTP/1 front (http1_server.c) then sends the
 * Content-Length and not the body, so the connection stays in step. */
static void send_answer(h2o_req_t *req, int status, const char *reason, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = len; /* without it h2o 2.2 closes the connection after the reply */
    h2o_send_inline(req, body, len);
}

static void send_error(h2o_req_t *req, int status, const char *type, const char *message)
{
    char json[TG_ERROR_JSON_MAX];
    size_t n = tg_gateway_error_json(type, message, json, sizeof(json));
    const char *reason = status == 400   ? "Bad Request"
                         : status == 401 ? "Unauthorized"
                         : status == 402 ? "Payment Required"
                         : status == 403 ? "Forbidden"
                         : status == 429 ? "Too Many Requests"
                                         : "Service Unavailable";
    h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, H2O_STRLIT("application/json"), 1);
    send_answer(req, status, reason, json, n);
}

/* ---- the meter's completion (strict and process durability) ---- */

/* On the worker's loop: the usage is committed; the allow answer goes out now. */
static void on_committed_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        decide_wait_t *w = H2O_STRUCT_FROM_MEMBER(decide_wait_t, msg.link, messages->next);
        h2o_linklist_unlink(&w->msg.link);
        if (w->req != NULL)
            send_answer(w->req, 200, "OK", "", 0);
        wait_release(w);
    }
}

/* On the meter's writer thread (strict; a process-mode write retried there) or on the loop while
 * it commits its batch (process): either way through the queue, so the answer is sent from the
 * loop's own iteration. A failure at shutdown is answered too: the call was admitted. */
static void on_usage_committed(void *arg, int status)
{
    (void)status;
    decide_wait_t *w = arg;
    h2o_multithread_send_message(w->receiver, &w->msg);
}

/* ---- the handler ---- */

static h2o_iovec_t header_value(h2o_req_t *req, const h2o_token_t *token, const char *name, size_t name_len)
{
    ssize_t i = token != NULL ? h2o_find_header(&req->headers, token, -1)
                              : h2o_find_header_by_str(&req->headers, name, name_len, -1);
    return i == -1 ? h2o_iovec_init(NULL, 0) : req->headers.entries[i].value;
}

/* The service token, in constant time whatever was sent. */
static int token_ok(const envoy_handler_t *self, h2o_req_t *req)
{
    h2o_iovec_t t = header_value(req, NULL, H2O_STRLIT(TOKEN_HEADER));
    uint8_t d[32];
    crypto_generichash(d, sizeof(d), (const uint8_t *)t.base, t.len, NULL, 0);
    return t.base != NULL && sodium_memcmp(d, self->token_digest, sizeof(d)) == 0;
}

/* Envoy's X-Request-Id when it sent a well-formed one (allowed_headers), else a new one. */
static void request_id_of(h2o_req_t *req, envoy_req_t *er)
{
    h2o_iovec_t v = header_value(req, NULL, H2O_STRLIT("x-request-id"));
    size_t n;
    if (v.base != NULL && tg_request_id_ok(v.base, v.len)) {
        memcpy(er->request_id, v.base, v.len);
        n = v.len;
    } else {
        n = tg_request_id_new(er->request_id);
    }
    er->request_id[n] = '\0';
}

/* The worker's receiver for meter completions, registered on first use (on its loop). */
static h2o_multithread_receiver_t *receiver_of(envoy_handler_t *self, tg_worker_t *w)
{
    size_t i = (size_t)(w - self->srv->workers);
    if (!self->registered[i]) {
        h2o_multithread_register_receiver(w->queue, &self->receivers[i], on_committed_messages);
        self->registered[i] = 1;
    }
    return &self->receivers[i];
}

/* The allow answer: identity for the upstream, the budget for the client, the key removed. */
static void allow_headers(h2o_req_t *req, const envoy_req_t *er)
{
    const tg_call_t *call = &er->call;
    add_str(req, "x-tollgate-customer", tg_account_id(call->account));
    add_str(req, "x-tollgate-plan", call->plan->id);
    size_t kid = strnlen(call->key_id, sizeof(call->key_id));
    if (kid != 0)
        add_header(req, "x-tollgate-key-id", call->key_id, kid);
    add_str(req, "x-envoy-auth-headers-to-remove", KEY_HEADERS);
    tg_http_add_call_headers(req, call, NULL);
}

static int on_envoy_req(h2o_handler_t *_self, h2o_req_t *req)
{
    envoy_handler_t *self = (void *)_self;
    size_t plen = sizeof(ENVOY_PREFIX) - 1;
    /* The raw path: a prefix that normalisation would produce ("/v1/decide/x/../envoy") is an
     * ordinary call to the upstream, decided as such. */
    if (req->path.len < plen || memcmp(req->path.base, ENVOY_PREFIX, plen) != 0 ||
        (req->path.len > plen && req->path.base[plen] != '/' && req->path.base[plen] != '?'))
        return -1;

    struct tg_server *srv = self->srv;
    tg_worker_t *worker = H2O_STRUCT_FROM_MEMBER(tg_worker_t, ctx, req->conn->ctx);
    envoy_req_t *er = h2o_mem_alloc_shared(&req->pool, sizeof(*er), on_envoy_req_dispose);
    memset(er, 0, sizeof(*er));
    er->worker = worker;
    er->call.settled = 1; /* nothing is reserved until tg_gateway_admit says so */
    er->start_ns = tg_clock_now_ns();
    er->start_mono_ns = tg_clock_mono_ns();
    worker->in_flight++;
    request_id_of(req, er);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, er->request_id,
                          strlen(er->request_id));

    if (!token_ok(self, req)) {
        send_error(req, 403, "decide_token_invalid",
                   "The decision API needs the proxy's service token (decide.token) in X-Tollgate-Token.");
        return 0;
    }

    /* The client's path as Envoy sent it after path_prefix; "" (and a bare query) is "/". */
    h2o_iovec_t raw = h2o_iovec_init(req->path.base + plen, req->path.len - plen);
    if (raw.len == 0 || raw.base[0] != '/') {
        char *p = h2o_mem_alloc_pool(&req->pool, raw.len + 1);
        p[0] = '/';
        memcpy(p + 1, raw.base, raw.len);
        raw = h2o_iovec_init(p, raw.len + 1);
    }
    size_t query_at, *norm_indexes;
    h2o_iovec_t path = h2o_url_normalize_path(&req->pool, raw.base, raw.len, &query_at, &norm_indexes);
    /* Envoy forwards the path it sent here: unresolved unless its normalize_path is on, so a
     * dot segment is one the upstream may read differently too (proxy.c, tg_http_dot_segment). */
    if (tg_http_ambiguous_path(raw, query_at) || tg_http_dot_segment(raw, query_at) || path.len == 0 ||
        path.base[0] != '/') {
        send_error(req, 400, "bad_path",
                   "The path has a '.', '..' or empty segment, an encoded slash or backslash, a double "
                   "encoding, a control character or a '#', which upstreams read differently.");
        return 0;
    }

    tg_call_request_t rq = tg_http_call_request(req->method, path, header_value(req, H2O_TOKEN_AUTHORIZATION, NULL, 0),
                                                header_value(req, NULL, H2O_STRLIT("x-api-key")));
    rq.request_id = er->request_id;
    tg_refusal_t refusal;
    if (!tg_gateway_admit(srv->deps.gateway, &rq, &er->call, &refusal)) {
        er->call.settled = 1; /* nothing was reserved */
        log_check(srv, req, er, raw, &refusal);
        if (er->call.account != NULL)
            tg_http_add_call_headers(req, &er->call, &refusal);
        send_error(req, refusal.status, refusal.type, refusal.message);
        return 0;
    }

    /* Metered now, as a call the upstream answered 200 (no Tollgate-Units). Strict and process
     * durability hold the answer until the usage is committed. */
    const tg_config_t *cfg = srv->deps.cfg;
    tg_meter_batch_t *batch = worker->batch; /* process durability */
    decide_wait_t *w = NULL;
    if ((batch != NULL || cfg->metering.durability == TG_METER_STRICT) && (w = calloc(1, sizeof(*w))) != NULL) {
        w->receiver = receiver_of(self, worker);
        w->req = req;
        w->refs = 2; /* the request, and the meter's completion */
    }
    /* Without the wait (out of memory) a process-mode call is submitted as in batched mode. */
    int billed = tg_gateway_settle_to(srv->deps.gateway, &er->call, 200, 0, NULL, 0, w != NULL ? batch : NULL,
                                      w != NULL ? on_usage_committed : NULL, w);
    if (billed < 0) {
        free(w); /* not queued: the callback never fires */
        send_error(req, 503, "metering_unavailable",
                   "Usage cannot be recorded right now, so this call is not allowed. Retry in a few seconds.");
        return 0;
    }
    log_check(srv, req, er, raw, NULL);
    allow_headers(req, er);
    if (w != NULL && billed == 1) {
        er->wait = w;
        if (batch != NULL && !h2o_timeout_is_linked(&worker->commit_entry))
            h2o_timeout_link(worker->ctx.loop, &worker->commit_timeout, &worker->commit_entry);
        return 0; /* on_committed_messages answers */
    }
    free(w); /* not billed (billable_status without 2xx): nothing to wait for */
    send_answer(req, 200, "OK", "", 0);
    return 0;
}

void tg_http_register_decide_envoy(struct tg_server *srv, h2o_pathconf_t *pathconf)
{
    envoy_handler_t *self = (void *)h2o_create_handler(pathconf, sizeof(*self));
    self->super.on_req = on_envoy_req;
    self->srv = srv;
    const char *tok = srv->deps.cfg->decide.token;
    crypto_generichash(self->token_digest, sizeof(self->token_digest), (const uint8_t *)tok, strlen(tok), NULL, 0);
    size_t n = (size_t)srv->nworkers + 1;
    self->receivers = h2o_mem_alloc(n * sizeof(*self->receivers));
    self->registered = h2o_mem_alloc(n);
    memset(self->receivers, 0, n * sizeof(*self->receivers));
    memset(self->registered, 0, n);
}
