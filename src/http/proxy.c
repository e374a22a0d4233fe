/* proxy.c - the gateway handler: decide, forward through the worker's upstream client, meter.
 *
 * Per request: on_gateway_req asks the gateway for a decision. A refusal is answered here as a
 * JSON error. An admitted call has its key stripped and identity headers added, gets a
 * request-scoped prefilter (on_setup_ostream) and is forwarded by upstream.c. When the
 * upstream's response head has arrived, the prefilter settles the call (meter or release),
 * adds the rate-limit headers, removes Tollgate-Units, and in strict and process modes inserts an
 * ostream that holds the response until its usage is committed: in strict mode by the meter's
 * writer thread (durable), in process mode by this loop itself at the end of its iteration, one
 * buffered write for all the calls it finished (on_commit_batch). An upstream that does not answer is
 * reported to on_upstream_failed instead, which answers 502/504 as JSON, unbilled.
 *
 * Memory: gw_req_t comes from the worker's free list (call_states) and lives as long as the
 * request: a pointer to it in the request's pool (shared, with a dispose hook that releases an
 * unsettled reservation and gives it back). The strict and process modes' hold (commit_wait_t)
 * comes from the worker's other free list (commit_holds) and is reference-counted between the
 * request and the meter's completion message, because either may end first; both references are
 * dropped on the worker's loop thread, so neither the count nor the lists need atomics. */
#include <netdb.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/events_http.h"
#include "http/http1_server.h"
#include "http/http_int.h"
#include "http/request_id.h"
#include "log/access_log.h"
#include "http/tls.h"
#include "metrics/metrics.h"
#include "util/clock.h"

typedef struct commit_wait {
    h2o_multithread_message_t msg; /* first: the message is the object */
    tg_worker_t *worker;
    h2o_req_t *req; /* NULL once the request is gone */
    struct hold_ostream *hold;
    int refs;
    int committed;
} commit_wait_t;

typedef struct hold_ostream {
    h2o_ostream_t super;
    commit_wait_t *wait;
    int has_stash;
    h2o_iovec_t *stash;
    size_t stash_cnt;
    h2o_send_state_t stash_state;
} hold_ostream_t;


/* Set up per call in two parts, so that its 2 KB are not cleared twice (on_gateway_req): the
 * call and the request id, written before anything reads them (call by tg_gateway_admit, which
 * clears it whole; request_id by request_id_of), and the rest, from `worker` on, cleared. */
typedef struct gw_req {
    tg_call_t call; /* only when decided; before, the answer's log line reads undecided_call */
    char request_id[TG_REQUEST_ID_MAX + 1]; /* X-Request-Id (http/request_id.h) */
    size_t request_id_len;
    tg_worker_t *worker; /* first of the part on_gateway_req clears */
    int decided;         /* tg_gateway_admit filled call */
    /* for the access log */
    h2o_req_t *req;
    int64_t start_ns, start_mono_ns;
    int64_t upstream_ns; /* -1: not forwarded */
    int status;          /* of our own answers; else req->res.status */
    int upstream_status; /* -1: the upstream did not answer */
    int refused;
    const char *error; /* static error type, or NULL */
    tg_forwarded_t *fw; /* when server.trusted_proxies is set; else NULL */
    int64_t forwarded_mono_ns;
    tg_upstream_fwd_t *fwd; /* forwarded: disposed with the call (on_gw_req_dispose); else NULL */
    commit_wait_t *wait;
    int failed; /* answered by on_upstream_failed; the prefilter has nothing to do */
    h2o_iovec_t cors_origin; /* the portal's origin when the call came from its Try it; else empty */
    int cors_enabled;        /* Try it is on (cors_enabled()): every answer then depends on Origin */
} gw_req_t;

typedef struct gw_prefilter {
    h2o_req_prefilter_t super;
    gw_req_t *gr;
} gw_prefilter_t;

typedef struct gateway_handler {
    h2o_handler_t super;
    struct tg_server *srv;
} gateway_handler_t;

static void wait_release(commit_wait_t *w)
{
    if (--w->refs == 0)
        tg_freelist_put(&w->worker->commit_holds, w);
}

static void log_call(gw_req_t *gr);

static void on_gw_req_dispose(void *p)
{
    gw_req_t *gr = *(gw_req_t **)p;
    tg_upstream_forward_dispose(gr->fwd); /* the forward has no hook of its own (upstream.h) */
    tg_metrics_observe_gateway(tg_clock_loop_mono_ns() - gr->start_mono_ns);
    if (tg_access_log_enabled(gr->worker->srv->deps.access_log))
        log_call(gr);
    if (gr->decided)
        tg_gateway_abandon(gr->worker->srv->deps.gateway, &gr->call);
    if (gr->wait != NULL) {
        gr->wait->req = NULL;
        gr->wait->hold = NULL;
        wait_release(gr->wait);
    }
    gr->worker->in_flight--;
    tg_freelist_put(&gr->worker->call_states, gr);
}

/* On the request's loop: its usage is committed; releases the response. */
static void release_held(commit_wait_t *w)
{
    w->committed = 1;
    if (w->req != NULL && w->hold != NULL && w->hold->has_stash) {
        hold_ostream_t *h = w->hold;
        h->has_stash = 0;
        h2o_ostream_send_next(&h->super, w->req, h->stash, h->stash_cnt, h->stash_state);
    }
    wait_release(w);
}

/* Set while this thread's loop commits its batch: completions then arrive on the loop itself. */
static __thread int committing_on_loop;

/* The usage of one response is committed: on the writer thread (strict, or a process-mode write
 * that failed and was retried there), hop to the request's loop; on the loop (process), release
 * the response now. */
static void on_usage_committed(void *arg, int status)
{
    (void)status; /* a failure at shutdown still releases the response: it was served */
    commit_wait_t *w = arg;
    if (committing_on_loop)
        release_held(w);
    else
        h2o_multithread_send_message(&w->worker->commits, &w->msg);
}

void tg_http_on_commits(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        commit_wait_t *w = H2O_STRUCT_FROM_MEMBER(commit_wait_t, msg.link, messages->next);
        h2o_linklist_unlink(&w->msg.link);
        release_held(w);
    }
}

/* Process durability: h2o runs timeouts after the iteration's I/O callbacks, and a zero timeout
 * linked during the iteration fires in the same one. So every call whose upstream answered in
 * this iteration is written with one append, and released, before the loop polls again. */
static void commit_batch(tg_worker_t *w)
{
    committing_on_loop = 1;
    tg_meter_batch_commit(w->batch);
    committing_on_loop = 0;
}

void tg_http_schedule_commit(tg_worker_t *w)
{
    if (w->batch != NULL && !h2o_timeout_is_linked(&w->commit_entry))
        h2o_timeout_link(w->ctx.loop, &w->commit_timeout, &w->commit_entry);
}

static void on_commit_batch(h2o_timeout_entry_t *entry)
{
    commit_batch(H2O_STRUCT_FROM_MEMBER(tg_worker_t, commit_entry, entry));
}

static void hold_do_send(h2o_ostream_t *_self, h2o_req_t *req, h2o_iovec_t *bufs, size_t cnt,
                         h2o_send_state_t state)
{
    hold_ostream_t *self = (void *)_self;
    if (self->wait == NULL || self->wait->committed) {
        h2o_ostream_send_next(&self->super, req, bufs, cnt, state);
        return;
    }
    /* Not durable yet: keep the chunk (its bytes stay owned by the generator until we pass it
     * on, so only the vector is copied) and release it from on_commits. */
    self->stash = h2o_mem_alloc_pool(&req->pool, sizeof(*bufs) * (cnt ? cnt : 1));
    memcpy(self->stash, bufs, sizeof(*bufs) * cnt);
    self->stash_cnt = cnt;
    self->stash_state = state;
    self->has_stash = 1;
}

/* The names of the call headers, built from the gateway's own list at compile time: h2o keeps a
 * pointer to the name of each header, so a static one needs no allocation per call. Retry-After
 * is h2o's token (h2o_find_header finds it). */
#define CALL_HEADER_NAME(id, name) [id] = {name, sizeof(name) - 1},
static h2o_iovec_t call_header_names[TG_CALL_HEADER_COUNT] = {TG_CALL_HEADERS(CALL_HEADER_NAME)};
#undef CALL_HEADER_NAME

void tg_http_append_header(h2o_req_t *req, h2o_iovec_t *name, const char *value, size_t value_len)
{
    /* what h2o_add_header does (lib/core/headers.c, add_header), given a name that lasts */
    h2o_vector_reserve(&req->pool, &req->res.headers, req->res.headers.size + 1);
    req->res.headers.entries[req->res.headers.size++] =
        (h2o_header_t){.name = name, .orig_name = NULL, .value = h2o_iovec_init(value, value_len)};
}

void tg_http_add_call_headers(h2o_req_t *req, const tg_call_t *call, const tg_refusal_t *refusal)
{
    if (!call->has_rate && !call->has_quota && refusal == NULL)
        return; /* nothing to say: spare the pool its text */
    tg_call_headers_t h;
    tg_gateway_headers(call, refusal, h2o_mem_alloc_pool(&req->pool, TG_CALL_HEADERS_TEXT_MAX), &h);
    h2o_vector_reserve(&req->pool, &req->res.headers, req->res.headers.size + h.n);
    for (size_t i = 0; i < h.n; i++) {
        h2o_iovec_t *name = h.list[i].which == TG_HDR_RETRY_AFTER ? (h2o_iovec_t *)&H2O_TOKEN_RETRY_AFTER->buf
                                                                  : &call_header_names[h.list[i].which];
        tg_http_append_header(req, name, h.list[i].value, h.list[i].value_len);
    }
}

/* ---- X-Request-Id ---- */

/* The call's request id: the client's first X-Request-Id when well formed, else a new one. */
static void request_id_of(h2o_req_t *req, gw_req_t *gr)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    if (i != -1 && tg_request_id_ok(req->headers.entries[i].value.base, req->headers.entries[i].value.len)) {
        memcpy(gr->request_id, req->headers.entries[i].value.base, req->headers.entries[i].value.len);
        gr->request_id_len = req->headers.entries[i].value.len;
        gr->request_id[gr->request_id_len] = '\0';
        return;
    }
    gr->request_id_len = tg_request_id_new(gr->request_id);
}

/* ---- the access log ---- */


/* The line of one call, when the request ends (its pool is still whole: the shared entries of a
 * pool are disposed before its chunks are freed). Answers below 400 are sampled by
 * access_log.sample_success; refusals, failures and every 4xx and 5xx are always written. */
static void log_call(gw_req_t *gr)
{
    struct tg_server *srv = gr->worker->srv;
    h2o_req_t *req = gr->req;
    if (req == NULL)
        return;
    int status = gr->status != 0 ? gr->status : req->res.status;
    uint32_t ppm = tg_access_log_sample_ppm(srv->deps.access_log); /* a reload may change it */
    if (status < 400 && gr->error == NULL && ppm < 1000000 && (ppm == 0 || tg_request_id_random_u32() % 1000000 >= ppm))
        return;

    char client[NI_MAXHOST];
    int v6;
    if (gr->fw != NULL && gr->fw->peer_trusted)
        snprintf(client, sizeof(client), "%s", gr->fw->client);
    else
        client[tg_http_peer_address(req->conn, client, &v6)] = '\0';
    /* an answer given before the decision (a preflight, a bad path) has no call: nobody, no route */
    static const tg_call_t undecided_call = {.settled = 1};
    const tg_call_t *call = gr->decided ? &gr->call : &undecided_call;
    const char *metrics[TG_CALL_MAX_METRICS * 2];
    uint64_t counts[TG_CALL_MAX_METRICS * 2];
    for (size_t i = 0; i < call->nmetered; i++) {
        metrics[i] = call->metered[i].metric;
        counts[i] = call->metered[i].units;
    }
    uint64_t in = 0, out = 0;
    tg_h1_byte_counts(req, &in, &out);
    size_t path_len = req->query_at != SIZE_MAX && req->query_at < req->path.len ? req->query_at : req->path.len;
    tg_access_record_t r = {
        .time_ns = gr->start_ns != 0 ? gr->start_ns /* 0: the log was turned on during the call */
                                     : tg_clock_now_at(gr->start_mono_ns),
        .request_id = gr->request_id,
        .client = client[0] != '\0' ? client : NULL,
        .method = req->method.base,
        .method_len = req->method.len,
        .path = req->path.base,
        .path_len = path_len,
        .route = call->route != NULL ? call->route->pattern : NULL,
        .customer = call->account != NULL ? tg_account_id(call->account) : NULL,
        .key_prefix = call->key_prefix[0] != '\0' ? call->key_prefix : NULL,
        .plan = call->plan != NULL ? call->plan->id : NULL,
        .decision = gr->refused ? "refused" : "allowed",
        .error = gr->error,
        .status = status,
        .upstream_status = gr->upstream_status,
        .upstream_ns = gr->upstream_ns,
        .total_ns = tg_clock_loop_mono_ns() - gr->start_mono_ns,
        .bytes_in = in,
        .bytes_out = out,
        .nunits = call->nmetered,
        .unit_metrics = metrics,
        .unit_counts = counts,
    };
    char line[TG_ACCESS_LOG_LINE_MAX];
    size_t n = tg_access_log_format(&r, line, sizeof(line));
    tg_access_log_append(srv->deps.access_log, line, n);
}

/* Every answer carries the call's id, the upstream's own X-Request-Id replaced by it. */
static void set_request_id(h2o_req_t *req, const gw_req_t *gr)
{
    ssize_t i;
    while ((i = h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("x-request-id"), -1)) != -1)
        h2o_delete_header(&req->res.headers, i);
    static h2o_iovec_t name = {H2O_STRLIT("x-request-id")};
    tg_http_append_header(req, &name, gr->request_id, gr->request_id_len);
}

static void send_json(h2o_req_t *req, int status, const char *reason, const char *json, size_t len)
{
    req->res.status = status;
    req->res.reason = reason;
    h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, H2O_STRLIT("application/json"), 1);
    req->res.content_length = len; /* without it h2o 2.2 closes the connection after the reply */
    h2o_send_inline(req, json, len);
}

/* ---- CORS, for the portal's "Try it" (issue 15) ----
 * The API reference page (portal origin) calls the gateway from the browser with the customer's
 * key in a header. The gateway allows exactly that origin - portal.public_url, and only while a
 * reference is published (portal.openapi) - and no other: no credentials (the key is a header,
 * never a cookie), a fixed list of request headers, and the rate-limit and quota headers exposed
 * so the page can explain them. A preflight is answered here, unbilled and before any key check;
 * an upstream's own Access-Control-* headers are dropped on those calls so the answer is ours.
 * While Try it is on, every answer says `Vary: Origin`, the portal's and everyone else's: they
 * differ by Origin (Access-Control-* or not, a preflight or a call), so a shared cache must not
 * serve the one kept for a request without Origin to the portal, nor the portal's to others. */
#define CORS_EXPOSE                                                                                                    \
    "x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset, ratelimit, ratelimit-policy, x-quota-remaining, "     \
    "x-quota-reset, retry-after, x-request-id"

/* Try it is on: a reference is published and the portal has an origin to allow. */
static int cors_enabled(const tg_config_t *cfg)
{
    return cfg->portal.openapi_doc != NULL && cfg->portal.public_url != NULL;
}

static h2o_iovec_t cors_origin_of(const tg_config_t *cfg, h2o_req_t *req)
{
    if (!cors_enabled(cfg)) /* before the search: 53 instructions per call under callgrind (stop 27) */
        return h2o_iovec_init(NULL, 0);
    const char *portal = cfg->portal.public_url;
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1);
    if (i == -1)
        return h2o_iovec_init(NULL, 0);
    h2o_iovec_t o = req->headers.entries[i].value;
    return o.len == strlen(portal) && memcmp(o.base, portal, o.len) == 0 ? o : h2o_iovec_init(NULL, 0);
}

static void add_cors_headers(h2o_req_t *req, const gw_req_t *gr)
{
    if (gr->cors_enabled)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("origin"));
    if (gr->cors_origin.len == 0)
        return;
    for (size_t k = 0; k < req->res.headers.size;) {
        const h2o_iovec_t *name = req->res.headers.entries[k].name;
        if (name->len >= 15 && strncasecmp(name->base, "access-control-", 15) == 0)
            h2o_delete_header(&req->res.headers, (ssize_t)k);
        else
            k++;
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL, gr->cors_origin.base,
                   gr->cors_origin.len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-expose-headers"), 0, NULL,
                          H2O_STRLIT(CORS_EXPOSE));
}

/* A preflight from the portal: 204 with what Try it may send. */
static void send_preflight(h2o_req_t *req, const gw_req_t *gr)
{
    req->res.status = 204;
    req->res.reason = "No Content";
    add_cors_headers(req, gr);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-methods"), 0, NULL,
                          H2O_STRLIT("GET, POST, PUT, PATCH, DELETE, HEAD"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-headers"), 0, NULL,
                          H2O_STRLIT("authorization, x-api-key, content-type, x-request-id"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-max-age"), 0, NULL,
                          H2O_STRLIT("600"));
    req->res.content_length = 0;
    h2o_send_inline(req, "", 0);
}

/* ---- what the upstream may rely on (docs/api.md "What the upstream sees") ---- */

/* Paths that upstreams read differently from tollgate's normalised form, refused (400
 * bad_path) rather than guessed at: an encoded '/' or '\' (%2F, %5C) or a raw '\' (IIS and
 * some frameworks treat them as separators), a double encoding (%25 followed by two hex
 * digits: an upstream that decodes again sees a different path), an encoded control character
 * (%00-%1F, %7F), and a "." or ".." segment carrying ';' parameters ("..;/", which Tomcat and
 * Spring resolve as ".."), a '#' (a request target has no fragment: nginx and URL parsers
 * end the path there, h2o does not, so "/v1/vision#/x" would be decided as one endpoint and
 * served as another), and an empty segment ("//": h2o keeps it, so "/v1//vision/x" matches no
 * route for the prefix "/v1/vision/" and is billed as a plain call, while nginx, Tomcat and
 * Spring merge the slashes and serve vision). Anything else is forwarded as the normalised path the decision
 * used. */
static int hexv(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

int tg_http_ambiguous_path(h2o_iovec_t path, size_t query_at)
{
    size_t n = query_at != SIZE_MAX && query_at < path.len ? query_at : path.len;
    const char *s = path.base;
    size_t seg = 0; /* start of the current segment */
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' || s[i] == '#')
            return 1;
        if (s[i] == '/') {
            if (i + 1 < n && s[i + 1] == '/')
                return 1;
            seg = i + 1;
        } else if (s[i] == '%') {
            int hi = i + 2 < n ? hexv(s[i + 1]) : -1, lo = i + 2 < n ? hexv(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                continue; /* not an escape; h2o's normalisation keeps it as is */
            int v = hi * 16 + lo;
            if (v == '/' || v == '\\' || v < 0x20 || v == 0x7f)
                return 1;
            if (v == '%' && i + 4 < n && hexv(s[i + 3]) >= 0 && hexv(s[i + 4]) >= 0)
                return 1;
        } else if (s[i] == ';') {
            /* the segment before ';', with %2e read as '.', must not be "." or ".." */
            size_t dots = 0, j = seg;
            while (j < i) {
                if (s[j] == '.')
                    j++;
                else if (j + 2 < i + 1 && s[j] == '%' && s[j + 1] == '2' && (s[j + 2] == 'e' || s[j + 2] == 'E'))
                    j += 3;
                else
                    break;
                dots++;
            }
            if (j == i && (dots == 1 || dots == 2))
                return 1;
        }
    }
    return 0;
}

/* The decision API's forwarders send the upstream the path as the client sent it (nginx's
 * proxy_pass without a URI passes $request_uri; so do Envoy without normalize_path and an API
 * that asks POST /v1/check about its own raw path), not the normalised one tollgate decided
 * on. Many upstreams do not resolve "." and ".." segments, least of all percent-encoded ones
 * ("%2e%2e"): "/v1/vision/../basic/x" is decided as /v1/basic/x while a router matching the
 * prefix "/v1/vision/" serves vision. So a path with such a segment is refused there (400 bad_path)
 * rather than decided as something the upstream may not serve; clients never need one (curl and
 * browsers resolve them before sending). */
int tg_http_dot_segment(h2o_iovec_t path, size_t query_at)
{
    size_t n = query_at != SIZE_MAX && query_at < path.len ? query_at : path.len;
    const char *s = path.base;
    size_t dots = 0, other = 0; /* in the current segment */
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '/') {
            if (other == 0 && (dots == 1 || dots == 2))
                return 1;
            dots = other = 0;
        } else if (s[i] == '.') {
            dots++;
        } else if (s[i] == '%' && i + 2 < n && s[i + 1] == '2' && (s[i + 2] == 'e' || s[i + 2] == 'E')) {
            dots++;
            i += 2;
        } else {
            other++;
        }
    }
    return 0;
}

/* How CGI, WSGI, PHP and Rack read a header name: they fold '-' and '_' (PHP also '.') into one
 * character and ignore case. Writes the first `cap` bytes of `name` so folded (lowercase
 * letters and digits, every other byte '-'), after trimming surrounding blanks, and returns the
 * trimmed name's whole length. */
static size_t fold_name(const char *name, size_t n, char *out, size_t cap)
{
    while (n > 0 && (name[0] == ' ' || name[0] == '\t'))
        name++, n--;
    while (n > 0 && (name[n - 1] == ' ' || name[n - 1] == '\t'))
        n--;
    for (size_t i = 0; i < n && i < cap; i++) {
        unsigned char c = (unsigned char)name[i];
        out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a')
                 : ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) ? (char)c
                                                                      : '-';
    }
    return n;
}

/* The first character fold_name would write, lowercased ('-' for others); 0 for a blank name. The
 * checks below look at it first: every name they look for starts with one of two or three
 * letters, and folding a whole name cost ~40 instructions for each header of each call. */
static char folded_first(const char *name, size_t n)
{
    size_t i = 0;
    while (i < n && (name[i] == ' ' || name[i] == '\t'))
        i++;
    if (i == n)
        return 0;
    unsigned char c = (unsigned char)name[i];
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : (char)c;
}

#define FOLDED_IS(f, n, lit) ((n) == sizeof(lit) - 1 && memcmp((f), (lit), sizeof(lit) - 1) == 0)
#define FOLDED_STARTS(f, n, lit) ((n) >= sizeof(lit) - 1 && memcmp((f), (lit), sizeof(lit) - 1) == 0)

/* Request headers the upstream can only ever get from tollgate: the identity it adds, the
 * forwarding headers it writes itself, the request id it checked (request_id_of), and the
 * customer's key (a secret). */
static int is_reserved_request_header(const char *name, size_t len)
{
    char f[16];
    if (len < 9)
        return 0; /* shorter than any of them (and most headers) */
    char first = folded_first(name, len);
    if (first != 'x' && first != 'f' && first != 'a')
        return 0;
    size_t n = fold_name(name, len, f, sizeof(f));
    return FOLDED_STARTS(f, n, "x-tollgate-") || FOLDED_STARTS(f, n, "x-forwarded-") || FOLDED_IS(f, n, "forwarded") ||
           FOLDED_IS(f, n, "x-real-ip") || FOLDED_IS(f, n, "authorization") || FOLDED_IS(f, n, "x-api-key") ||
           FOLDED_IS(f, n, "x-request-id");
}

/* Cookies whose names start with this (after a __Host- or __Secure- prefix) are tollgate's: the
 * portal's session cookie is "tg_session" (src/admin/portal.c). Cookies are not scoped by port,
 * so one set by the upstream through the gateway port would reach the admin port. */
#define TG_COOKIE_PREFIX "tg_"

static int is_tollgate_cookie(h2o_iovec_t v)
{
    size_t i = 0;
    while (i < v.len && (v.base[i] == ' ' || v.base[i] == '\t'))
        i++;
    const char *name = v.base + i;
    size_t n = v.len - i;
    if (n >= 7 && strncasecmp(name, "__Host-", 7) == 0)
        name += 7, n -= 7;
    else if (n >= 9 && strncasecmp(name, "__Secure-", 9) == 0)
        name += 9, n -= 9;
    return n >= strlen(TG_COOKIE_PREFIX) && strncasecmp(name, TG_COOKIE_PREFIX, strlen(TG_COOKIE_PREFIX)) == 0;
}

/* Response headers the upstream may not set: tollgate's rate-limit and quota headers win, a
 * Retry-After only means something on the upstream's own 429, and tollgate's cookies are not
 * the upstream's to set. */
static int upstream_may_not_set(const h2o_header_t *h, int status)
{
    char f[16];
    if (h->name == &H2O_TOKEN_SET_COOKIE->buf)
        return is_tollgate_cookie(h->value);
    if (h->name->len < 8)
        return 0;
    char first = folded_first(h->name->base, h->name->len);
    if (first != 'x' && first != 'r')
        return 0;
    size_t n = fold_name(h->name->base, h->name->len, f, sizeof(f));
    return FOLDED_STARTS(f, n, "x-ratelimit") || FOLDED_STARTS(f, n, "ratelimit") || FOLDED_STARTS(f, n, "x-quota-") ||
           (status != 429 && FOLDED_IS(f, n, "retry-after"));
}

/* The peer's numeric address into out (NI_MAXHOST); IPv4 by hand: getnameinfo formats through
 * sprintf, which was a visible part of a proxied request's CPU. Returns its length, 0 if none. */
size_t tg_http_peer_address(h2o_conn_t *conn, char *out, int *is_v6)
{
    struct sockaddr_storage ss;
    socklen_t sl = conn->callbacks->get_peername(conn, (struct sockaddr *)&ss);
    *is_v6 = 0;
    if (sl == 0)
        return 0;
    if (ss.ss_family == AF_INET) {
        const unsigned char *a = (const unsigned char *)&((struct sockaddr_in *)&ss)->sin_addr;
        char *p = out;
        for (int i = 0; i < 4; i++) {
            if (i > 0)
                *p++ = '.';
            if (a[i] >= 100)
                *p++ = (char)('0' + a[i] / 100);
            if (a[i] >= 10)
                *p++ = (char)('0' + a[i] / 10 % 10);
            *p++ = (char)('0' + a[i] % 10);
        }
        return (size_t)(p - out);
    }
    *is_v6 = ss.ss_family == AF_INET6;
    size_t n = h2o_socket_getnumerichost((struct sockaddr *)&ss, sl, out);
    return n == SIZE_MAX ? 0 : n;
}

/* A Host value safe to repeat in X-Forwarded-Host and Forwarded: reg-name or IP, optional port. */
static int plain_host(h2o_iovec_t h)
{
    if (h.len == 0 || h.len > 255)
        return 0;
    for (size_t i = 0; i < h.len; i++) {
        char c = h.base[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
              c == ':' || c == '[' || c == ']'))
            return 0;
    }
    return 1;
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* The header lines tollgate sets on every forwarded call, in the request's pool. Client-sent
 * forwarding headers were removed with the other reserved names; what a trusted proxy said
 * (fw, NULL when server.trusted_proxies is empty) is carried over: its X-Forwarded-For chain
 * before the peer, its https, and the client it names in Forwarded's for=. */
static h2o_iovec_t identity_headers(h2o_req_t *req, const gw_req_t *gr, h2o_iovec_t client_host,
                                    const tg_forwarded_t *fw)
{
    const tg_call_t *call = &gr->call;
    char peer[NI_MAXHOST];
    int v6;
    size_t peer_len = tg_http_peer_address(req->conn, peer, &v6);
    const char *cid = tg_account_id(call->account), *plan = call->plan->id;
    size_t cid_len = strlen(cid), plan_len = strlen(plan), kid_len = strnlen(call->key_id, sizeof(call->key_id));
    const char *client = peer;
    size_t client_len = peer_len, chain_len = 0;
    int https = 0, client_v6 = v6;
    if (fw != NULL && fw->peer_trusted) {
        chain_len = fw->chain_len;
        https = fw->https;
        client = fw->client;
        client_len = strlen(fw->client);
        client_v6 = memchr(client, ':', client_len) != NULL;
    }
    if (!plain_host(client_host))
        client_host = h2o_iovec_init(NULL, 0);
    size_t cap = 256 + cid_len + plan_len + kid_len + chain_len + peer_len + client_len + 2 * client_host.len +
                 gr->request_id_len;
    char *buf = h2o_mem_alloc_pool(&req->pool, cap), *p = buf;
    p = put(p, H2O_STRLIT("x-request-id: "));
    p = put(p, gr->request_id, gr->request_id_len);
    p = put(p, H2O_STRLIT("\r\nx-tollgate-customer: "));
    p = put(p, cid, cid_len);
    p = put(p, H2O_STRLIT("\r\nx-tollgate-plan: "));
    p = put(p, plan, plan_len);
    if (kid_len != 0) {
        p = put(p, H2O_STRLIT("\r\nx-tollgate-key-id: "));
        p = put(p, call->key_id, kid_len);
    }
    p = put(p, H2O_STRLIT("\r\n"));
    if (peer_len != 0 || chain_len != 0) {
        p = put(p, H2O_STRLIT("x-forwarded-for: "));
        if (chain_len != 0) {
            p = put(p, fw->chain, chain_len);
            if (peer_len != 0)
                p = put(p, H2O_STRLIT(", "));
        }
        p = put(p, peer, peer_len);
        p = put(p, H2O_STRLIT("\r\n"));
    }
    p = https ? put(p, H2O_STRLIT("x-forwarded-proto: https\r\n")) : put(p, H2O_STRLIT("x-forwarded-proto: http\r\n"));
    if (client_host.len != 0) {
        p = put(p, H2O_STRLIT("x-forwarded-host: "));
        p = put(p, client_host.base, client_host.len);
        p = put(p, H2O_STRLIT("\r\n"));
    }
    /* RFC 7239: an IPv6 node and a host with a port are quoted strings */
    p = https ? put(p, H2O_STRLIT("forwarded: proto=https")) : put(p, H2O_STRLIT("forwarded: proto=http"));
    if (client_len != 0) {
        p = put(p, client_v6 ? ";for=\"[" : ";for=", client_v6 ? 7 : 5);
        p = put(p, client, client_len);
        if (client_v6)
            p = put(p, H2O_STRLIT("]\""));
    }
    if (client_host.len != 0) {
        p = put(p, H2O_STRLIT(";host=\""));
        p = put(p, client_host.base, client_host.len);
        p = put(p, H2O_STRLIT("\""));
    }
    p = put(p, H2O_STRLIT("\r\n"));
    return h2o_iovec_init(buf, (size_t)(p - buf));
}

static void on_setup_ostream(h2o_req_prefilter_t *_self, h2o_req_t *req, h2o_ostream_t **slot)
{
    gw_prefilter_t *self = (void *)_self;
    gw_req_t *gr = self->gr;
    struct tg_server *srv = gr->worker->srv;
    if (gr->failed) { /* our own 502/504, already settled */
        h2o_setup_next_prefilter(&self->super, req, slot);
        return;
    }
    gr->upstream_ns = tg_clock_loop_mono_ns() - gr->forwarded_mono_ns;
    gr->upstream_status = req->res.status;
    tg_metrics_observe_upstream(gr->upstream_ns, 0);

    /* Units the upstream reports are ours, not the client's. */
    const char *units = NULL;
    size_t units_len = 0;
    ssize_t ui;
    while ((ui = h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("tollgate-units"), -1)) != -1) {
        if (units == NULL) {
            units = req->res.headers.entries[ui].value.base;
            units_len = req->res.headers.entries[ui].value.len;
        }
        h2o_delete_header(&req->res.headers, ui);
    }
    for (size_t k = 0; k < req->res.headers.size;) {
        if (upstream_may_not_set(&req->res.headers.entries[k], req->res.status))
            h2o_delete_header(&req->res.headers, (ssize_t)k);
        else
            k++;
    }

    commit_wait_t *w = NULL;
    tg_meter_batch_t *batch = gr->worker->batch; /* process durability */
    if ((batch != NULL || srv->deps.cfg->metering.durability == TG_METER_STRICT) &&
        (w = tg_freelist_get(&gr->worker->commit_holds)) != NULL) {
        /* two references: the request, and the meter's completion */
        *w = (commit_wait_t){.worker = gr->worker, .req = req, .refs = 2};
    }
    /* Without the hold (out of memory) a process-mode call is submitted as in batched mode. */
    int billed = tg_gateway_settle_to(srv->deps.gateway, &gr->call, req->res.status, 0, units, units_len,
                                      w != NULL ? batch : NULL, w != NULL ? on_usage_committed : NULL, w);
    if (w != NULL && batch != NULL && billed == 1)
        tg_http_schedule_commit(gr->worker);
    if (w != NULL && billed == 1) {
        gr->wait = w;
        hold_ostream_t *h = (void *)h2o_add_ostream(req, sizeof(*h), slot);
        h->super.do_send = hold_do_send;
        h->wait = w;
        h->has_stash = 0;
        w->hold = h;
        slot = &h->super.next;
    } else if (w != NULL) {
        tg_freelist_put(&gr->worker->commit_holds, w); /* not billed (or not queued): nothing to wait for */
    }
    tg_http_add_call_headers(req, &gr->call, NULL);
    add_cors_headers(req, gr);
    set_request_id(req, gr);
    tg_metrics_count_response(req->res.status);
    h2o_setup_next_prefilter(&self->super, req, slot);
}

/* The upstream did not answer (refused, closed, garbage, or timed out): a JSON error, unbilled. */
static void on_upstream_failed(h2o_req_t *req, void *arg, tg_upstream_failure_t why)
{
    gw_req_t *gr = arg;
    struct tg_server *srv = gr->worker->srv;
    static const char msg_timeout[] = "The upstream API did not answer in time. This call was not billed.";
    static const char msg_down[] = "The upstream API could not be reached. This call was not billed.";
    const char *type = "upstream_unavailable", *msg = msg_down, *reason = "Bad Gateway";
    int status = 502;
    if (why == TG_UPSTREAM_TIMEOUT) {
        type = "upstream_timeout", msg = msg_timeout, reason = "Gateway Timeout", status = 504;
    } else if (why == TG_UPSTREAM_TLS) {
        type = "upstream_tls_error";
        msg = "The upstream API's TLS certificate could not be verified (upstream.ca_file). This call was not billed.";
    } else if (why == TG_UPSTREAM_CLIENT) {
        /* the client's body failed while it was being forwarded (http1_server.c says how) */
        switch (tg_h1_body_error(req)) {
        case 413:
            type = "request_too_large", reason = "Content Too Large", status = 413;
            msg = "The request body exceeds the gateway's limit (server.max_body_bytes). This call was not billed.";
            break;
        case 408:
            type = "request_timeout", reason = "Request Timeout", status = 408;
            msg = "The request body stopped arriving. This call was not billed.";
            break;
        default: /* 400 bad chunked framing; 499 the client left (nobody reads this answer) */
            type = "bad_request", reason = "Bad Request", status = 400;
            msg = "The request body's chunked framing is invalid. This call was not billed.";
            break;
        }
    }
    char json[512];
    size_t n = tg_gateway_error_json(type, msg, json, sizeof(json));
    gr->upstream_ns = tg_clock_loop_mono_ns() - gr->forwarded_mono_ns;
    gr->status = status;
    gr->error = type;
    tg_metrics_observe_upstream(gr->upstream_ns, why != TG_UPSTREAM_CLIENT);
    tg_gateway_settle(srv->deps.gateway, &gr->call, status, 1, NULL, 0, NULL, NULL);
    gr->failed = 1;
    tg_http_add_call_headers(req, &gr->call, NULL);
    add_cors_headers(req, gr);
    set_request_id(req, gr);
    tg_metrics_count_response(status);
    send_json(req, status, reason, json, n);
}

static h2o_iovec_t header_value(h2o_req_t *req, const h2o_token_t *token, const char *name, size_t name_len)
{
    ssize_t i = token != NULL ? h2o_find_header(&req->headers, token, -1)
                              : h2o_find_header_by_str(&req->headers, name, name_len, -1);
    return i == -1 ? h2o_iovec_init(NULL, 0) : req->headers.entries[i].value;
}

tg_call_request_t tg_http_call_request(h2o_iovec_t method, h2o_iovec_t path, h2o_iovec_t authorization,
                                       h2o_iovec_t api_key)
{
    return (tg_call_request_t){.method = method.base,
                               .method_len = method.len,
                               .path = path.base,
                               .path_len = path.len,
                               .authorization = authorization.base,
                               .authorization_len = authorization.len,
                               .api_key = api_key.base,
                               .api_key_len = api_key.len};
}

static int on_gateway_req(h2o_handler_t *_self, h2o_req_t *req)
{
    gateway_handler_t *self = (void *)_self;
    struct tg_server *srv = self->srv;
    tg_worker_t *worker = H2O_STRUCT_FROM_MEMBER(tg_worker_t, ctx, req->conn->ctx);
    if (srv->deps.reservations != NULL && tg_http_decide(srv, worker, req)) /* decide_http.c */
        return 0;
    if (tg_http_is_events_path(srv, req)) { /* usage events: tollgate's own, not the upstream's */
        tg_http_events_req(worker, req);
        return 0;
    }

    /* The pool holds a pointer to the state, not the state: the state's 2 KB would make the
     * pool's allocation a malloc and free of that size per call (util/freelist.h). */
    gw_req_t **state = h2o_mem_alloc_shared(&req->pool, sizeof(*state), on_gw_req_dispose);
    gw_req_t *gr = tg_freelist_get(&worker->call_states);
    if (gr == NULL) /* as h2o_mem_alloc_shared does when memory runs out */
        h2o_fatal("no memory");
    *state = gr;
    /* call is left as the previous call left it until tg_gateway_admit clears it (decided) */
    memset(&gr->worker, 0, sizeof(*gr) - offsetof(gw_req_t, worker));
    gr->worker = worker;
    gr->req = req;
    gr->upstream_ns = -1;
    gr->upstream_status = -1;
    worker->in_flight++;
    request_id_of(req, gr);
    gr->start_mono_ns = tg_clock_loop_mono_ns(); /* tollgate_gateway_latency_seconds */
    if (tg_access_log_enabled(srv->deps.access_log))
        gr->start_ns = tg_clock_now_at(gr->start_mono_ns);
    if (srv->deps.cfg->server.ntrusted_proxies > 0) { /* read before the client's copies go */
        gr->fw = h2o_mem_alloc_pool(&req->pool, sizeof(*gr->fw));
        tg_http_forwarded(srv->deps.cfg, req, gr->fw);
    }
    /* Try it follows a reload (portal.openapi published or withdrawn): the configuration in
     * effect for this call, not the one the server started with */
    const tg_config_t *live = srv->deps.gateway != NULL ? tg_gateway_config(srv->deps.gateway) : srv->deps.cfg;
    gr->cors_enabled = cors_enabled(live);
    gr->cors_origin = cors_origin_of(live, req);
    if (gr->cors_origin.len > 0 && h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS")) &&
        h2o_find_header_by_str(&req->headers, H2O_STRLIT("access-control-request-method"), -1) != -1) {
        gr->status = 204, gr->refused = 1; /* not a call: never admitted, metered or forwarded */
        tg_metrics_count_response(204);
        send_preflight(req, gr);
        return 0;
    }

    /* The head was checked by the HTTP/1 front (http1_server.c): framing, sizes, names. */
    if (tg_http_ambiguous_path(req->path, req->query_at)) {
        char json[512];
        size_t n = tg_gateway_error_json("bad_path",
                                         "The path has an encoded slash or backslash, a double encoding, a control "
                                         "character, a dot segment with parameters, an empty segment or a '#', which "
                                         "upstreams read differently.",
                                         json, sizeof(json));
        tg_metrics_count_response(400);
        gr->status = 400, gr->error = "bad_path", gr->refused = 1;
        add_cors_headers(req, gr);
        set_request_id(req, gr);
        send_json(req, 400, "Bad Request", json, n);
        return 0;
    }

    /* Decide on the normalized path (percent-decoded, dot segments resolved) so that
     * "/v1/basic/../vision" cannot slip past the plan's endpoint list. */
    tg_call_request_t rq = tg_http_call_request(req->method, req->path_normalized,
                                                header_value(req, H2O_TOKEN_AUTHORIZATION, NULL, 0),
                                                header_value(req, NULL, H2O_STRLIT("x-api-key")));
    rq.request_id = gr->request_id;
    rq.arrived_mono_ns = gr->start_mono_ns;

    tg_refusal_t refusal;
    gr->decided = 1; /* whatever it says, tg_gateway_admit sets every field of the call */
    if (!tg_gateway_admit(srv->deps.gateway, &rq, &gr->call, &refusal)) {
        char json[TG_ERROR_JSON_MAX];
        size_t n = tg_gateway_error_json(refusal.type, refusal.message, json, sizeof(json));
        if (gr->call.account != NULL)
            tg_http_add_call_headers(req, &gr->call, &refusal);
        tg_metrics_count_response(refusal.status);
        const char *reason = refusal.status == 401   ? "Unauthorized"
                             : refusal.status == 402 ? "Payment Required"
                             : refusal.status == 403 ? "Forbidden"
                             : refusal.status == 429 ? "Too Many Requests"
                                                     : "Service Unavailable";
        gr->call.settled = 1; /* nothing was reserved */
        gr->status = refusal.status, gr->error = refusal.type, gr->refused = 1;
        add_cors_headers(req, gr);
        set_request_id(req, gr);
        /* Refused from the head alone: a body is never read, and the front (http1_server.c)
         * then answers with Connection: close; a call without a body keeps its connection. */
        send_json(req, refusal.status, reason, json, n);
        return 0;
    }

    /* The key is the customer's secret: it never reaches the upstream; identity and forwarding
     * headers are tollgate's alone. Client headers an upstream could read as either are dropped
     * here, and tollgate's own lines are written after hop-by-hop processing (upstream.c), so a
     * client's Connection header cannot name them away. */
    tg_forwarded_t *fw = gr->fw;
    for (size_t k = 0; k < req->headers.size;) {
        const h2o_iovec_t *name = req->headers.entries[k].name;
        if (is_reserved_request_header(name->base, name->len))
            h2o_delete_header(&req->headers, (ssize_t)k);
        else
            k++;
    }
    h2o_iovec_t extra = identity_headers(req, gr, header_value(req, H2O_TOKEN_HOST, NULL, 0), fw);

    gw_prefilter_t *pf = (void *)h2o_add_prefilter(req, sizeof(*pf));
    pf->super.on_setup_ostream = on_setup_ostream;
    pf->gr = gr;
    gr->forwarded_mono_ns = tg_clock_loop_mono_ns();

    /* The upstream gets the normalized path the decision was made on (plus the query), so it
     * cannot serve anything but what the plan allowed. */
    h2o_url_t *up = &srv->upstream;
    tg_upstream_forward(worker->upstream, req, h2o_build_destination(req, up->path.base, up->path.len, 1), extra,
                        on_upstream_failed, gr, &gr->fwd);
    return 0;
}

void tg_http_init_upstream(struct tg_server *srv, tg_worker_t *w)
{
    const tg_config_t *cfg = srv->deps.cfg;
    /* as many as the loop has calls in flight at a time, at most (the rest are malloc'd and freed) */
    w->call_states = tg_freelist_init(sizeof(gw_req_t), 256);
    w->commit_holds = tg_freelist_init(sizeof(commit_wait_t), 256);
    w->upstream = tg_upstream_create(w->ctx.loop, &srv->upstream, srv->upstream_tls, (uint64_t)cfg->upstream.timeout_ms,
                                     (uint64_t)cfg->upstream.keepalive_ms);
    if (cfg->metering.durability == TG_METER_PROCESS) {
        /* Without a batch (out of memory) the loop submits to the meter as in batched mode. */
        w->batch = tg_meter_batch_new(srv->deps.meter);
        h2o_timeout_init(w->ctx.loop, &w->commit_timeout, 0);
        w->commit_entry = (h2o_timeout_entry_t){.cb = on_commit_batch};
    }
}

void tg_http_fini_gateway(tg_worker_t *w)
{
    tg_freelist_drain(&w->call_states); /* requests still open give theirs back later: freed then */
    tg_freelist_drain(&w->commit_holds);
    if (w->batch == NULL)
        return;
    if (h2o_timeout_is_linked(&w->commit_entry))
        h2o_timeout_unlink(&w->commit_entry);
    commit_batch(w); /* nothing is left by a drained loop; a timed-out drain may leave some */
    tg_meter_batch_free(w->batch);
    w->batch = NULL;
}

int tg_http_register_gateway(struct tg_server *srv, h2o_pathconf_t *pathconf, tg_err_t *err)
{
    const tg_config_t *cfg = srv->deps.cfg;
    gateway_handler_t *gh = (void *)h2o_create_handler(pathconf, sizeof(*gh));
    gh->super.on_req = on_gateway_req;
    gh->srv = srv;

    if (h2o_url_parse(cfg->upstream.url, SIZE_MAX, &srv->upstream) != 0)
        return tg_errf(err, TG_ECONFIG, "upstream.url \"%s\" is not a valid URL", cfg->upstream.url);
    if (srv->upstream.scheme == &H2O_URL_SCHEME_HTTPS) {
        char host[256];
        snprintf(host, sizeof(host), "%.*s", (int)srv->upstream.host.len, srv->upstream.host.base);
        tg_err_t e;
        int rc = tg_tls_client_ctx(cfg->upstream.ca_file, host, &srv->upstream_tls, &e);
        if (rc != 0)
            return tg_errf(err, rc, "upstream.ca_file: %s", e.msg);
    }
    return 0;
}
