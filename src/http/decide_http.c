/* decide_http.c - the decision API's HTTP adapter on the gateway listener (issue 16).
 *
 * For gateways and backends that forward calls themselves, tollgate decides without proxying:
 *   GET /v1/decide   nginx's auth_request: the original call is described by X-Original-Method
 *                    and X-Original-URI, its key is in the Authorization or X-API-Key header as
 *                    the client sent it. Allowed: 200, empty, with X-Tollgate-Reservation,
 *                    -Customer, -Plan, -Key-Id and the rate-limit and quota headers. Refused: 401
 *                    for key problems, 403 for every other refusal (nginx turns any status but
 *                    2xx, 401 and 403 into 500), with the real status in X-Tollgate-Status, the
 *                    error type in X-Tollgate-Error and Retry-After, for error_page to answer
 *                    (examples/nginx/tollgate.conf); so are this API's own refusals (400
 *                    bad_path, 503 decide_unavailable), which nginx would otherwise answer 500.
 *                    A path with a "." or ".." segment is refused (bad_path): nginx forwards the
 *                    client's path unresolved, so the upstream might serve another endpoint than
 *                    the one decided on (tg_http_dot_segment).
 *   POST /v1/check   {"key", "method", "path", "units"?} -> 200 {"allowed", ..., "reservation"} or
 *                    200 {"allowed": false, "status", "error", "retry_after"}. "units" ({"metric":
 *                    count}) reserves those instead of the route's units; metrics the
 *                    configuration does not name are refused (400), so none can be invented.
 *   POST /v1/report  {"reservation", "status", "units"} -> 200 {"billed"}, or 404 when that
 *                    reservation is not open (unknown, already reported, or expired), or 400
 *                    (the reservation left open) when "units" holds what could not be billed.
 * Every call needs the service token (decide.token) in X-Tollgate-Token, compared in constant
 * time and never logged: without it anyone could settle others' calls as failed and skip their
 * billing. The decision itself is tg_gateway_admit's, exactly as for proxied calls; the admitted
 * call waits in the reservations table (gateway/reservations.h) for its settlement.
 *
 * Durability: in strict and process modes POST /v1/report answers only once the usage is durable
 * (the meter's completion hops back to this loop through the worker's queue, as proxy.c's held
 * responses do); in batched mode at once. Memory: decide_req_t lives in the request's pool; a
 * report's wait is malloc'd and reference-counted between the request and the completion, both
 * dropped on the loop thread. */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "gateway/reservations.h"
#include "http/http1_server.h"
#include "http/http_int.h"
#include "metrics/metrics.h"
#include "util/clock.h"
#include "util/utf8.h"

#define DECIDE_MAX_BODY 8192  /* a check or report is a few hundred bytes */
#define DECIDE_MAX_UNITS 2048 /* the units of a report, as Tollgate-Units text */

typedef enum { ROUTE_DECIDE, ROUTE_CHECK, ROUTE_REPORT } decide_route_t;

typedef struct report_wait {
    h2o_multithread_message_t msg; /* first: the message is the object */
    tg_worker_t *worker;
    h2o_req_t *req; /* NULL once the request is gone */
    int refs;
    char json[128];
    size_t json_len;
} report_wait_t;

typedef struct decide_req {
    struct tg_server *srv;
    tg_worker_t *worker;
    h2o_req_t *req;
    decide_route_t route;
    size_t body_len;
    char *body; /* DECIDE_MAX_BODY + 1 bytes from the pool, for the POST routes */
    report_wait_t *wait;
    int64_t start_ns, start_mono_ns;        /* when the request arrived, for its access-log line */
    char request_id[TG_REQUEST_ID_MAX + 1]; /* the decision's (tg_http_decide_request_id); "" until admit */
} decide_req_t;

static void on_decide_req_dispose(void *p)
{
    decide_req_t *dr = p;
    if (dr->wait != NULL) {
        dr->wait->req = NULL;
        if (--dr->wait->refs == 0)
            free(dr->wait);
    }
    dr->worker->in_flight--;
}

/* ---- answering ---- */

static const char *reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Content Too Large";
    case 429:
        return "Too Many Requests";
    default:
        return "Service Unavailable";
    }
}

static void send_body(h2o_req_t *req, int status, const char *json, size_t len)
{
    req->res.status = status;
    req->res.reason = reason_of(status);
    if (len > 0)
        h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, H2O_STRLIT("application/json"), 1);
    req->res.content_length = len;
    tg_metrics_count_response(status);
    h2o_send_inline(req, h2o_strdup(&req->pool, json, len).base, len);
}

static void send_error(h2o_req_t *req, int status, const char *type, const char *message)
{
    char json[TG_ERROR_JSON_MAX];
    size_t n = tg_gateway_error_json(type, message, json, sizeof(json));
    send_body(req, status, json, n);
}

static void add_header(h2o_req_t *req, const char *name, const char *value, size_t len)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL,
                          h2o_strdup(&req->pool, value, len).base, len);
}

/* The rate-limit and quota headers of a call as JSON fields (POST /v1/check); RateLimit and
 * RateLimit-Policy repeat those numbers and have none. */
static void json_limits(json_t *o, const tg_call_t *call, const tg_refusal_t *refusal)
{
    static const char *const fields[TG_CALL_HEADER_COUNT] = {
        [TG_HDR_RATELIMIT_LIMIT] = "limit",   [TG_HDR_RATELIMIT_REMAINING] = "remaining",
        [TG_HDR_RATELIMIT_RESET] = "reset",   [TG_HDR_QUOTA_REMAINING] = "quota_remaining",
        [TG_HDR_QUOTA_RESET] = "quota_reset", [TG_HDR_RETRY_AFTER] = "retry_after",
    };
    char text[TG_CALL_HEADERS_TEXT_MAX];
    tg_call_headers_t h;
    tg_gateway_headers(call, refusal, text, &h);
    for (size_t i = 0; i < h.n; i++) {
        const char *field = fields[h.list[i].which];
        if (field == NULL)
            continue;
        char digits[24];
        size_t n = h.list[i].value_len < sizeof(digits) - 1 ? h.list[i].value_len : sizeof(digits) - 1;
        memcpy(digits, h.list[i].value, n);
        digits[n] = '\0';
        json_object_set_new(o, field, json_integer(strtoll(digits, NULL, 10)));
    }
}

/* ---- the service token ---- */

static int token_ok(const tg_config_t *cfg, h2o_req_t *req)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-tollgate-token"), -1);
    if (i == -1 || cfg->decide.token == NULL)
        return 0;
    /* Hashed first so that the comparison takes as long whatever the lengths. */
    uint8_t want[32], got[32];
    crypto_generichash(want, sizeof(want), (const uint8_t *)cfg->decide.token, strlen(cfg->decide.token), NULL, 0);
    crypto_generichash(got, sizeof(got), (const uint8_t *)req->headers.entries[i].value.base,
                       req->headers.entries[i].value.len, NULL, 0);
    return sodium_memcmp(want, got, sizeof(want)) == 0;
}

/* ---- the decision ---- */

/* Sets a refusal that is the decision API's own, not the gateway's: a 429 or 503 says to retry
 * in a second (reservations are settled in milliseconds when all goes well). */
static void own_refusal(tg_refusal_t *refusal, int status, const char *type, const char *message)
{
    memset(refusal, 0, sizeof(*refusal));
    refusal->status = status;
    refusal->type = type;
    snprintf(refusal->message, sizeof(refusal->message), "%s", message);
    refusal->retry_after_s = status == 503 || status == 429 ? 1 : 0;
}

/* Admits "method path" (path as sent: normalised here as the proxy does) with the given key
 * headers. Returns 1 and holds the call (id in rid); 0 refused for the caller's account (by the
 * gateway, or 429 too_many_pending: the customer's share of the table is full; refusal filled,
 * call->account set when authenticated); -1 refused by the decision API itself, with no
 * account: no original method or path (400 bad_request), a path that upstreams read
 * differently from its normalised form (400 bad_path) or a full table (503 decide_unavailable).
 * Each route answers a refusal its own way (serve_decide: nginx's). */
static int admit(decide_req_t *dr, h2o_iovec_t method, h2o_iovec_t uri, h2o_iovec_t auth, h2o_iovec_t api_key,
                 const tg_meter_unit_t *units, size_t nunits, tg_call_t *call, tg_refusal_t *refusal,
                 char rid[TG_RESERVATION_ID_MAX])
{
    h2o_req_t *req = dr->req;
    memset(call, 0, sizeof(*call));
    if (uri.len == 0 || uri.base[0] != '/' || method.len == 0 || method.len > 32) {
        own_refusal(refusal, 400, "bad_request", "The original method and a path starting with '/' are required.");
        return -1;
    }
    size_t query_at = SIZE_MAX, *norm_indexes = NULL;
    h2o_iovec_t path = h2o_url_normalize_path(&req->pool, uri.base, uri.len, &query_at, &norm_indexes);
    /* The forwarder sends the upstream the path as the client sent it, not the normalised one
     * decided on here: a dot segment too is one the upstream may read differently. */
    if (tg_http_ambiguous_path(uri, query_at) || tg_http_dot_segment(uri, query_at)) {
        own_refusal(refusal, 400, "bad_path",
                    "The path has a '.', '..' or empty segment, an encoded slash or backslash, a double "
                    "encoding, a control character or a '#', which upstreams read differently.");
        return -1;
    }
    if (query_at != SIZE_MAX && query_at < path.len) /* the normalised path keeps no query, but be sure */
        path.len = query_at;
    tg_call_request_t rq = tg_http_call_request(method, path, auth, api_key);
    rq.units = units, rq.nunits = nunits;
    if (!tg_gateway_admit(dr->srv->deps.gateway, &rq, call, refusal))
        return 0;
    /* The settlement's access-log line names the call as the decision's does: the method, the
     * path as sent without its query (which may hold secrets), the request id. */
    size_t rid_len = tg_http_decide_request_id(req, dr->request_id);
    const char *q = uri.len > 0 ? memchr(uri.base, '?', uri.len) : NULL;
    tg_reservation_label_t label;
    tg_reservation_label_set(&label, method.base, method.len, uri.base, q != NULL ? (size_t)(q - uri.base) : uri.len,
                             dr->request_id, rid_len);
    tg_err_t err;
    int rc = tg_reservations_hold(dr->srv->deps.reservations, call, &label, tg_clock_mono_ns(), rid, &err);
    if (rc == TG_ESTATE) { /* this customer's own calls fill its share: its refusal, with its headers */
        tg_gateway_abandon(dr->srv->deps.gateway, call);
        call->has_quota = 0; /* its reservation was given back: the remaining count is stale */
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "This customer has %d calls waiting for their settlement (decide.max_pending_per_customer); this "
                 "call was not admitted.",
                 dr->srv->deps.cfg->decide.max_pending_per_customer);
        own_refusal(refusal, 429, "too_many_pending", msg);
        return 0;
    }
    if (rc != 0) {
        tg_gateway_abandon(dr->srv->deps.gateway, call);
        memset(call, 0, sizeof(*call)); /* given back: the refusal is the table's, not the customer's */
        own_refusal(refusal, 503, "decide_unavailable",
                    rc == TG_ELIMIT ? "Too many calls are waiting for their settlement (decide.max_pending); "
                                      "this call was not admitted."
                                    : "The gateway is out of memory; retry shortly.");
        return -1;
    }
    return 1;
}

/* The decision's access-log line: the decided call's method and path (without its query, which
 * may hold secrets, as for proxied calls). */
static void log_decision(const decide_req_t *dr, const char *via, h2o_iovec_t method, h2o_iovec_t uri,
                         const tg_call_t *call, const tg_refusal_t *refusal, const char *rid)
{
    /* no X-Original-URI (a forwarder's misconfiguration, refused): base is NULL, which memchr
     * must not be given even for 0 bytes */
    const char *q = uri.len > 0 ? memchr(uri.base, '?', uri.len) : NULL;
    tg_decide_line_t line = {.via = via,
                             .method = method,
                             .path = h2o_iovec_init(uri.base, q != NULL ? (size_t)(q - uri.base) : uri.len),
                             .call = call,
                             .refusal = refusal,
                             .reservation = rid,
                             .request_id = dr->request_id[0] != '\0' ? dr->request_id : NULL,
                             .start_ns = dr->start_ns,
                             .start_mono_ns = dr->start_mono_ns};
    tg_http_decide_log(dr->srv, dr->req, &line);
}

static h2o_iovec_t header_value(h2o_req_t *req, const char *name, size_t len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, len, -1);
    return i == -1 ? h2o_iovec_init(NULL, 0) : req->headers.entries[i].value;
}

static void identity_headers(h2o_req_t *req, const tg_call_t *call)
{
    const char *cid = tg_account_id(call->account);
    add_header(req, "x-tollgate-customer", cid, strlen(cid));
    add_header(req, "x-tollgate-plan", call->plan->id, strlen(call->plan->id));
    if (call->key_id[0] != '\0')
        add_header(req, "x-tollgate-key-id", call->key_id, strlen(call->key_id));
}

/* GET /v1/decide (nginx's auth_request). */
static void serve_decide(decide_req_t *dr)
{
    h2o_req_t *req = dr->req;
    tg_call_t call;
    tg_refusal_t refusal;
    char rid[TG_RESERVATION_ID_MAX];
    h2o_iovec_t method = header_value(req, H2O_STRLIT("x-original-method")),
                uri = header_value(req, H2O_STRLIT("x-original-uri"));
    int ok = admit(dr, method, uri, header_value(req, H2O_STRLIT("authorization")),
                   header_value(req, H2O_STRLIT("x-api-key")), NULL, 0, &call, &refusal, rid);
    log_decision(dr, "decide", method, uri, &call, ok == 1 ? NULL : &refusal, ok == 1 ? rid : NULL);
    if (ok < 0 && strcmp(refusal.type, "bad_request") == 0) {
        /* no X-Original-Method or -URI: nginx's configuration, not its client, is at fault, and
         * nginx answers the client 500 for this status */
        send_error(req, 400, refusal.type, refusal.message);
        return;
    }
    if (ok == 1) {
        add_header(req, "x-tollgate-reservation", rid, TG_RESERVATION_ID_LEN);
        identity_headers(req, &call);
        tg_http_add_call_headers(req, &call, NULL);
        send_body(req, 200, "", 0);
        return;
    }
    /* Every refusal, the decision API's own (bad_path, decide_unavailable) included, goes the
     * same way: any other status would reach nginx's client as a 500. */
    char status[8];
    int sl = snprintf(status, sizeof(status), "%d", refusal.status);
    add_header(req, "x-tollgate-status", status, (size_t)sl);
    add_header(req, "x-tollgate-error", refusal.type, strlen(refusal.type));
    if (call.account != NULL) {
        identity_headers(req, &call);
        tg_http_add_call_headers(req, &call, &refusal);
    } else if (refusal.retry_after_s > 0) {
        tg_http_add_call_headers(req, &call, &refusal); /* only Retry-After */
    }
    char json[TG_ERROR_JSON_MAX];
    size_t n = tg_gateway_error_json(refusal.type, refusal.message, json, sizeof(json));
    send_body(req, refusal.status == 401 ? 401 : 403, json, n);
}

/* A string member of at most cap bytes, or h2o_iovec_t{NULL, 0}. */
static h2o_iovec_t json_str(json_t *o, const char *name, size_t cap)
{
    json_t *v = json_object_get(o, name);
    if (!json_is_string(v) || json_string_length(v) > cap)
        return h2o_iovec_init(NULL, 0);
    return h2o_iovec_init(json_string_value(v), json_string_length(v));
}

static void send_json_obj(h2o_req_t *req, int status, json_t *o)
{
    char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    if (s == NULL) {
        send_error(req, 503, "service_unavailable", "The gateway is out of memory; retry shortly.");
    } else {
        send_body(req, status, s, strlen(s));
        free(s);
    }
    json_decref(o);
}

/* POST /v1/check. */
static void serve_check(decide_req_t *dr, json_t *body)
{
    h2o_req_t *req = dr->req;
    h2o_iovec_t key = json_str(body, "key", 1024), method = json_str(body, "method", 32),
                path = json_str(body, "path", 8192);
    if (key.base == NULL || method.base == NULL || path.base == NULL) {
        send_error(req, 400, "bad_request", "The body needs the strings \"key\", \"method\" and \"path\".");
        return;
    }
    tg_meter_unit_t units[TG_CALL_MAX_METRICS];
    size_t nunits = 0;
    json_t *ju = json_object_get(body, "units");
    if (ju != NULL && !json_is_null(ju)) {
        const char *metric;
        json_t *v;
        uint64_t max = dr->srv->deps.cfg->metering.max_units_per_call;
        if (!json_is_object(ju) || json_object_size(ju) == 0 || json_object_size(ju) > TG_CALL_MAX_METRICS) {
            send_error(req, 400, "bad_request", "\"units\" is an object of 1 to 8 {\"metric\": count}.");
            return;
        }
        json_object_foreach(ju, metric, v)
        {
            const char *known = tg_gateway_config_metric(dr->srv->deps.gateway, metric, strlen(metric));
            if (known == NULL || !json_is_integer(v) || json_integer_value(v) < 1 ||
                (uint64_t)json_integer_value(v) > max) {
                char msg[256];
                snprintf(msg, sizeof(msg),
                         "\"units\": each metric must be one the configuration names (plans' included, routes' "
                         "meter, metering.metrics) with a count from 1 to metering.max_units_per_call (%llu).",
                         (unsigned long long)max);
                send_error(req, 400, "bad_request", msg);
                return;
            }
            units[nunits].metric = (char *)known; /* the configuration's string, never written */
            units[nunits].units = (uint64_t)json_integer_value(v);
            nunits++;
        }
    }
    tg_call_t call;
    tg_refusal_t refusal;
    char rid[TG_RESERVATION_ID_MAX];
    int ok =
        admit(dr, method, path, h2o_iovec_init(NULL, 0), key, nunits > 0 ? units : NULL, nunits, &call, &refusal, rid);
    if (ok < 0) {
        log_decision(dr, "check", method, path, &call, &refusal, NULL);
        if (refusal.retry_after_s > 0)
            tg_http_add_call_headers(req, &call, &refusal); /* only Retry-After */
        send_error(req, refusal.status, refusal.type, refusal.message);
        return;
    }
    log_decision(dr, "check", method, path, &call, ok == 1 ? NULL : &refusal, ok == 1 ? rid : NULL);
    json_t *o = json_object();
    json_object_set_new(o, "allowed", json_boolean(ok == 1));
    if (call.account != NULL) {
        json_object_set_new(o, "customer", json_string(tg_account_id(call.account)));
        json_object_set_new(o, "plan", json_string(call.plan->id));
        if (call.key_id[0] != '\0')
            json_object_set_new(o, "key_id", json_string(call.key_id));
        json_limits(o, &call, ok == 1 ? NULL : &refusal);
    }
    if (ok == 1) {
        json_object_set_new(o, "reservation", json_string(rid));
    } else {
        json_object_set_new(o, "status", json_integer(refusal.status));
        json_object_set_new(o, "error", json_pack("{s:s,s:s}", "type", refusal.type, "message", refusal.message));
        if (refusal.retry_after_s > 0)
            json_object_set_new(o, "retry_after", json_integer(refusal.retry_after_s));
    }
    send_json_obj(req, 200, o);
}

/* ---- POST /v1/report ---- */

static void release_wait(report_wait_t *w)
{
    if (w->req != NULL)
        send_body(w->req, 200, w->json, w->json_len);
    if (--w->refs == 0)
        free(w);
}

/* On the meter's writer thread: hop to the request's loop. */
static void on_report_durable(void *arg, int status)
{
    (void)status; /* a failure at shutdown still answers: the call was served */
    report_wait_t *w = arg;
    h2o_multithread_send_message(&w->worker->reports, &w->msg);
}

void tg_http_on_reports(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        report_wait_t *w = H2O_STRUCT_FROM_MEMBER(report_wait_t, msg.link, messages->next);
        h2o_linklist_unlink(&w->msg.link);
        release_wait(w);
    }
}

/* {"tokens": 120, "images": 2} as Tollgate-Units text into out. Everything the settlement
 * would drop is refused here instead (-1, msg says which metric and why), while the reservation
 * is still open for a corrected report: a name Tollgate-Units cannot carry (an upper-case letter,
 * '=' or ',' would even name another metric), a count that is not a whole number from 0, or one
 * over metering.max_units_per_call. Otherwise a report answered "billed" would have lost them. */
static int units_text(json_t *units, uint64_t max, char *out, size_t cap, size_t *len, char *msg, size_t msg_cap)
{
    *len = 0;
    if (units == NULL || json_is_null(units))
        return 0;
    if (!json_is_object(units) || json_object_size(units) > TG_CALL_MAX_METRICS) {
        snprintf(msg, msg_cap, "\"units\" must be an object of at most %d {\"metric\": count}.", TG_CALL_MAX_METRICS);
        return -1;
    }
    const char *metric;
    json_t *v;
    json_object_foreach(units, metric, v)
    {
        if (!tg_gateway_metric_name_ok(metric, strlen(metric))) {
            snprintf(msg, msg_cap,
                     "\"units\": \"%.40s\" is not a metric name (1 to %d lowercase letters, digits and '_').", metric,
                     TG_METRIC_MAX - 1);
            tg_utf8_scrub(msg);
            return -1;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max) {
            snprintf(msg, msg_cap,
                     "\"units\": \"%s\" must be a whole number from 0 to metering.max_units_per_call (%llu).", metric,
                     (unsigned long long)max);
            return -1;
        }
        int n =
            snprintf(out + *len, cap - *len, "%s%s=%lld", *len ? ", " : "", metric, (long long)json_integer_value(v));
        if (n < 0 || (size_t)n >= cap - *len) { /* 8 metrics of 31 bytes and 19 digits fit */
            snprintf(msg, msg_cap, "\"units\" is too long.");
            return -1;
        }
        *len += (size_t)n;
    }
    return 0;
}

static void serve_report(decide_req_t *dr, json_t *body)
{
    h2o_req_t *req = dr->req;
    h2o_iovec_t id = json_str(body, "reservation", 64);
    json_t *st = json_object_get(body, "status");
    char units[DECIDE_MAX_UNITS], msg[256];
    size_t units_len;
    if (id.base == NULL || !json_is_integer(st) || json_integer_value(st) < 100 || json_integer_value(st) > 599) {
        send_error(req, 400, "bad_request",
                   "The body needs \"reservation\" (a string), \"status\" (100 to 599) and optionally \"units\" "
                   "({\"metric\": count}, at most 8).");
        return;
    }
    if (units_text(json_object_get(body, "units"),
                   tg_gateway_config(dr->srv->deps.gateway)->metering.max_units_per_call, units, sizeof(units),
                   &units_len, msg, sizeof(msg)) != 0) {
        send_error(req, 400, "bad_request", msg); /* the reservation stays open for a corrected report */
        return;
    }
    int durable_wait = dr->worker->batch != NULL || dr->srv->deps.cfg->metering.durability == TG_METER_STRICT;
    report_wait_t *w = durable_wait ? calloc(1, sizeof(*w)) : NULL;
    if (w != NULL) {
        w->worker = dr->worker;
        w->req = req;
        w->refs = 2; /* the request, and the meter's completion */
    }
    int rc = tg_reservations_settle(dr->srv->deps.reservations, id.base, id.len, (int)json_integer_value(st), 0,
                                    units_len > 0 ? units : NULL, units_len, w != NULL ? on_report_durable : NULL, w);
    if (rc == TG_ENOTFOUND) {
        free(w);
        send_error(req, 404, "reservation_not_found",
                   "No open reservation has this id: it was never given, was reported already, or expired "
                   "(decide.settle_timeout_ms).");
        return;
    }
    char json[128];
    int n = snprintf(json, sizeof(json), "{\"reservation\":\"%.*s\",\"billed\":%s}", (int)id.len, id.base,
                     rc == 1 ? "true" : "false");
    if (w != NULL && rc == 1) { /* answered when durable */
        memcpy(w->json, json, (size_t)n);
        w->json_len = (size_t)n;
        dr->wait = w;
        return;
    }
    free(w); /* released, or the usage could not be queued: cb never fires */
    send_body(req, 200, json, (size_t)n);
}

/* ---- the body of the POST routes ---- */

static void on_body(void *arg, h2o_iovec_t data, int last, int status)
{
    decide_req_t *dr = arg;
    h2o_req_t *req = dr->req;
    if (status != 0) {
        send_error(req, status == 413 ? 413 : 400, "bad_request", "The request body could not be read.");
        return;
    }
    if (data.len > DECIDE_MAX_BODY - dr->body_len) {
        tg_h1_body_abandon(req);
        send_error(req, 413, "request_too_large", "The body of a decision call is at most 8192 bytes.");
        return;
    }
    memcpy(dr->body + dr->body_len, data.base, data.len);
    dr->body_len += data.len;
    if (!last) {
        tg_h1_body_read(req, on_body, dr);
        return;
    }
    json_error_t jerr;
    json_t *body = json_loadb(dr->body, dr->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(body)) {
        /* what and where: a duplicate key, an integer past 64 bits, nesting, a syntax error */
        char msg[320];
        if (body == NULL)
            snprintf(msg, sizeof(msg), "The body is not valid JSON: %.200s (line %d, column %d).", jerr.text,
                     jerr.line, jerr.column);
        else
            snprintf(msg, sizeof(msg), "The body is not a JSON object.");
        tg_utf8_scrub(msg);
        json_decref(body);
        send_error(req, 400, "bad_request", msg);
        return;
    }
    if (dr->route == ROUTE_CHECK)
        serve_check(dr, body);
    else
        serve_report(dr, body);
    json_decref(body);
}

/* ---- routing ---- */

int tg_http_decide(struct tg_server *srv, tg_worker_t *worker, h2o_req_t *req)
{
    size_t plen = req->query_at != SIZE_MAX && req->query_at < req->path.len ? req->query_at : req->path.len;
    h2o_iovec_t p = h2o_iovec_init(req->path.base, plen);
    decide_route_t route;
    const char *want;
    if (h2o_memis(p.base, p.len, H2O_STRLIT("/v1/decide")))
        route = ROUTE_DECIDE, want = "GET";
    else if (h2o_memis(p.base, p.len, H2O_STRLIT("/v1/check")))
        route = ROUTE_CHECK, want = "POST";
    else if (h2o_memis(p.base, p.len, H2O_STRLIT("/v1/report")))
        route = ROUTE_REPORT, want = "POST";
    else
        return 0;

    decide_req_t *dr = h2o_mem_alloc_shared(&req->pool, sizeof(*dr), on_decide_req_dispose);
    memset(dr, 0, sizeof(*dr));
    dr->srv = srv;
    dr->worker = worker;
    dr->req = req;
    dr->route = route;
    dr->start_ns = tg_clock_now_ns();
    dr->start_mono_ns = tg_clock_mono_ns();
    worker->in_flight++;
    if (!token_ok(srv->deps.cfg, req)) {
        send_error(req, 403, "decide_token_invalid",
                   "The decision API needs the service token (decide.token) in X-Tollgate-Token.");
        return 1;
    }
    if (!h2o_memis(req->method.base, req->method.len, want, strlen(want))) {
        add_header(req, "allow", want, strlen(want));
        send_error(req, 405, "method_not_allowed", route == ROUTE_DECIDE ? "Use GET." : "Use POST.");
        return 1;
    }
    if (route == ROUTE_DECIDE) {
        serve_decide(dr);
        return 1;
    }
    uint64_t length = 0;
    tg_h1_body_kind_t kind = tg_h1_body_kind(req, &length);
    if (kind == TG_H1_BODY_NONE || (kind == TG_H1_BODY_LENGTH && length == 0)) {
        send_error(req, 400, "bad_request", "The body is not a JSON object.");
        return 1;
    }
    if (kind == TG_H1_BODY_LENGTH && length > DECIDE_MAX_BODY) {
        send_error(req, 413, "request_too_large", "The body of a decision call is at most 8192 bytes.");
        return 1;
    }
    dr->body = h2o_mem_alloc_pool(&req->pool, DECIDE_MAX_BODY + 1);
    tg_h1_body_read(req, on_body, dr);
    return 1;
}
