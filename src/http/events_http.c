/* events_http.c - POST /v1/events on the gateway listener: the HTTP adapter of the usage events
 * service (metering/events.h). It authenticates the ingest token from the head alone (a refused
 * request never has its body read), reads the body up to events.max_body_bytes, parses it with
 * jansson, hands the events to tg_events_ingest and answers from the service's completion - so
 * the answer leaves only once every accepted event is in the metering log.
 *
 * The path is answered only when the configuration has an events: section; without one,
 * /v1/events is an ordinary path proxied to the upstream (whose own /v1/events is then not
 * shadowed).
 *
 * The body is read by events_body.c (its caps are there), up to events.max_body_bytes. Answer 200: {"accepted",
 * "duplicates", "refused", "results": [{"index", "status", "field", "message"}]}, one result per event, in order.
 *
 * Memory: the request's state (events_req_t) is malloc'd and reference-counted between the
 * request and the service's completion, which may outlive the client: both drop their reference
 * on the worker's loop (the completion hops there through the worker's queue). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/events_body.h"
#include "http/events_http.h"
#include "http/http1_server.h"
#include "http/http_int.h"
#include "metering/events.h"
#include "metrics/metrics.h"
#include "util/clock.h"

typedef struct events_req {
    h2o_multithread_message_t msg; /* first: the completion message is the object */
    tg_worker_t *worker;
    h2o_req_t *req; /* NULL once the request is gone */
    int refs;
    int status; /* the service's completion status */
    char *body;
    size_t len, cap, max;
    json_t *doc;
    tg_ingest_auth_t who;
    tg_event_in_t *in;
    tg_event_result_t *results;
    size_t n;
} events_req_t;

static void er_release(events_req_t *er)
{
    if (--er->refs > 0)
        return;
    json_decref(er->doc);
    free(er->body);
    free(er->in);
    free(er->results);
    free(er);
}

static void on_req_dispose(void *p)
{
    events_req_t *er = *(events_req_t **)p;
    er->worker->in_flight--;
    er->req = NULL;
    er_release(er);
}

static void send_body(h2o_req_t *req, int status, const char *reason, char *json, size_t len)
{
    req->res.status = status;
    req->res.reason = reason;
    h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, H2O_STRLIT("application/json"), 1);
    req->res.content_length = len;
    h2o_send_inline(req, json, len);
    tg_metrics_count_response(status);
}

static void send_error(h2o_req_t *req, int status, const char *reason, const char *type, const char *message)
{
    char json[TG_ERROR_JSON_MAX];
    size_t n = tg_gateway_error_json(type, message, json, sizeof(json));
    send_body(req, status, reason, json, n);
}

/* ---- the answer ---- */

typedef struct outcome_name {
    const char *name;
    size_t len;
} outcome_name_t;

/* By tg_event_outcome_t, with the lengths: a strlen per result showed in the profile. */
static const outcome_name_t outcome_names[] = {[TG_EVENT_ACCEPTED] = {"accepted", 8},
                                               [TG_EVENT_DUPLICATE] = {"duplicate", 9},
                                               [TG_EVENT_REFUSED] = {"refused", 7}};

/* JSON string contents: '"', '\\' and control characters escaped (6 bytes at most per byte);
 * anything else as it is (jansson checked the body's UTF-8, and the service's messages are
 * ASCII). */
static char *put_escaped(char *p, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c < 0x20) {
            memcpy(p, "\\u00", 4);
            p[4] = hex[c >> 4];
            p[5] = hex[c & 15];
            p += 6;
        } else {
            *p++ = (char)c;
        }
    }
    return p;
}

/* n in decimal at p; the end. (snprintf per result was 1.5 % of bench/events.sh's profile.) */
static char *put_decimal(char *p, size_t n)
{
    char digits[20];
    size_t k = 0;
    do {
        digits[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n != 0);
    while (k > 0)
        *p++ = digits[--k];
    return p;
}

/* Room for one result: the fixed text, an index, an id of up to TG_EVENT_ID_MAX bytes, a field
 * name and a message, each byte escaped to at most 6. */
#define RESULT_MAX (96 + 20 + TG_EVENT_ID_MAX * 6 + 32 + sizeof(((tg_event_result_t *)0)->message) * 6)

/* Written by hand rather than built as a jansson tree: one result per event, a thousand per batch,
 * and the tree cost more than the events' own checks (bench/events.sh). */
static void answer(events_req_t *er)
{
    h2o_req_t *req = er->req;
    size_t counts[3] = {0, 0, 0};
    for (size_t i = 0; i < er->n; i++)
        counts[er->results[i].outcome]++;
    size_t cap = 160 + er->n * RESULT_MAX;
    char *buf = h2o_mem_alloc_pool(&req->pool, cap), *p = buf, *end = buf + cap;
    p += snprintf(p, (size_t)(end - p), "{\"accepted\":%zu,\"duplicates\":%zu,\"refused\":%zu,\"results\":[", counts[0],
                  counts[1], counts[2]);
    for (size_t i = 0; i < er->n; i++) {
        const tg_event_result_t *r = &er->results[i];
        if (i > 0)
            *p++ = ',';
        memcpy(p, "{\"index\":", 9);
        p = put_decimal(p + 9, i);
        const outcome_name_t *status = &outcome_names[r->outcome];
        memcpy(p, ",\"status\":\"", 11);
        memcpy(p + 11, status->name, status->len);
        p += 11 + status->len;
        *p++ = '"';
        const tg_event_in_t *e = &er->in[i];
        if (e->id != NULL && e->id_len <= TG_EVENT_ID_MAX) {
            memcpy(p, ",\"id\":\"", 7);
            if (e->plain) { /* nothing to escape (tg_event_in_t.plain) */
                memcpy(p + 7, e->id, e->id_len);
                p += 7 + e->id_len;
            } else {
                p = put_escaped(p + 7, e->id, e->id_len);
            }
            *p++ = '"';
        }
        if (r->outcome == TG_EVENT_REFUSED) {
            const char *field = r->field != NULL ? r->field : "";
            memcpy(p, ",\"field\":\"", 10);
            p = put_escaped(p + 10, field, strnlen(field, 32));
            memcpy(p, "\",\"message\":\"", 13);
            p = put_escaped(p + 13, r->message, strnlen(r->message, sizeof(r->message)));
            *p++ = '"';
        }
        *p++ = '}';
    }
    memcpy(p, "]}", 2);
    p += 2;
    /* Every accepted event logged: 200, whatever the others. None could be logged: 503. */
    if (er->status < 0)
        send_body(req, 503, "Service Unavailable", buf, (size_t)(p - buf));
    else
        send_body(req, 200, "OK", buf, (size_t)(p - buf));
}

/* On the worker's loop: the batch's rows are in the metering log (or could not be). */
void tg_http_on_events_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        events_req_t *er = H2O_STRUCT_FROM_MEMBER(events_req_t, msg.link, messages->next);
        h2o_linklist_unlink(&er->msg.link);
        if (er->req != NULL)
            answer(er);
        er_release(er);
    }
}

/* The service's completion, on the meter's writer thread or on the loop committing its batch:
 * the answer is always sent from the loop's queue, so both cases are one path. */
static void on_ingested(void *arg, int status)
{
    events_req_t *er = arg;
    er->status = status;
    h2o_multithread_send_message(&er->worker->events_done, &er->msg);
}

/* ---- the body ---- */

static void take_batch(events_req_t *er)
{
    h2o_req_t *req = er->req;
    struct tg_server *srv = er->worker->srv;
    const tg_config_t *cfg = srv->deps.cfg;
    tg_err_t perr = {0};
    int prc = tg_events_body_parse(er->body, er->len, (size_t)cfg->events.max_batch, &er->doc, &er->in, &er->n, &perr);
    if (prc == TG_ELIMIT) {
        send_error(req, 413, "Content Too Large", "batch_too_large", perr.msg);
        return;
    }
    if (prc != 0) {
        send_error(req, prc == TG_ENOMEM ? 503 : 400, prc == TG_ENOMEM ? "Service Unavailable" : "Bad Request",
                   prc == TG_ENOMEM ? "unavailable" : "invalid_body", perr.msg);
        return;
    }
    /* not cleared: tg_events_ingest writes every result (a thousand of 200 bytes were memset) */
    er->results = malloc(er->n * sizeof(*er->results));
    if (er->results == NULL) {
        send_error(req, 503, "Service Unavailable", "unavailable", "Out of memory: send the batch again.");
        return;
    }
    tg_err_t err = {0};
    tg_meter_batch_t *batch = er->worker->batch; /* process durability: this loop's own */
    er->refs++;                                  /* the service's completion */
    int rc = tg_events_ingest(srv->deps.events, &er->who, er->in, er->n, tg_clock_now_ns(), er->results, batch,
                              on_ingested, er, &err);
    if (rc == 1) {
        if (batch != NULL)
            tg_http_schedule_commit(er->worker);
        return;
    }
    er->refs--;
    if (rc < 0) {
        send_error(req, 503, "Service Unavailable", "unavailable", err.msg);
        return;
    }
    er->status = 0;
    answer(er); /* nothing to log: every event a duplicate or refused */
}

static void on_body(void *arg, h2o_iovec_t data, int last, int status)
{
    events_req_t *er = arg;
    if (er->req == NULL)
        return;
    if (status != 0) {
        if (status == 413)
            send_error(er->req, 413, "Content Too Large", "request_too_large",
                       "The request body exceeds the gateway's limit (server.max_body_bytes).");
        else
            send_error(er->req, status == 408 ? 408 : 400, status == 408 ? "Request Timeout" : "Bad Request",
                       "bad_request", "The request body could not be read.");
        return;
    }
    if (data.len > er->max - er->len) {
        tg_h1_body_abandon(er->req);
        send_error(er->req, 413, "Content Too Large", "request_too_large",
                   "The request body exceeds events.max_body_bytes.");
        return;
    }
    if (er->len + data.len > er->cap) {
        size_t cap = er->cap ? er->cap : 65536;
        while (cap < er->len + data.len)
            cap *= 2;
        cap = cap < er->max ? cap : er->max;
        char *b = realloc(er->body, cap);
        if (b == NULL) {
            tg_h1_body_abandon(er->req);
            send_error(er->req, 503, "Service Unavailable", "unavailable", "Out of memory: send the batch again.");
            return;
        }
        er->body = b, er->cap = cap;
    }
    if (data.len > 0) /* an empty body has no buffer yet: memcpy must not see NULL */
        memcpy(er->body + er->len, data.base, data.len);
    er->len += data.len;
    if (last)
        take_batch(er);
    else
        tg_h1_body_read(er->req, on_body, er);
}

/* ---- the handler ---- */

int tg_http_is_events_path(const struct tg_server *srv, h2o_req_t *req)
{
    size_t n = req->query_at != SIZE_MAX && req->query_at < req->path.len ? req->query_at : req->path.len;
    return srv->deps.events != NULL && n == 10 && memcmp(req->path.base, "/v1/events", 10) == 0;
}

void tg_http_events_req(tg_worker_t *worker, h2o_req_t *req)
{
    struct tg_server *srv = worker->srv;
    const tg_config_t *cfg = srv->deps.cfg;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("POST"));
        send_error(req, 405, "Method Not Allowed", "method_not_allowed", "/v1/events takes POST only.");
        return;
    }
    ssize_t ai = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    h2o_iovec_t auth = ai != -1 ? req->headers.entries[ai].value : h2o_iovec_init(NULL, 0);
    tg_ingest_auth_t who;
    if (auth.len <= 7 || strncasecmp(auth.base, "Bearer ", 7) != 0 ||
        tg_events_authenticate(srv->deps.events, auth.base + 7, auth.len - 7, &who) != 0) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, H2O_STRLIT("Bearer"));
        send_error(req, 401, "Unauthorized", "invalid_ingest_token",
                   "POST /v1/events needs an ingest token (events.tokens) as Authorization: Bearer TOKEN.");
        return;
    }
    uint64_t length = 0;
    tg_h1_body_kind_t kind = tg_h1_body_kind(req, &length);
    if (kind == TG_H1_BODY_NONE) {
        send_error(req, 400, "Bad Request", "invalid_body", "The body must be a JSON object {\"events\": [...]}.");
        return;
    }
    if (kind == TG_H1_BODY_LENGTH && length > cfg->events.max_body_bytes) {
        send_error(req, 413, "Content Too Large", "request_too_large",
                   "The request body exceeds events.max_body_bytes.");
        return;
    }
    events_req_t *er = calloc(1, sizeof(*er));
    events_req_t **slot = er != NULL ? h2o_mem_alloc_shared(&req->pool, sizeof(*slot), on_req_dispose) : NULL;
    if (slot == NULL) {
        free(er);
        send_error(req, 503, "Service Unavailable", "unavailable", "Out of memory: send the batch again.");
        return;
    }
    *slot = er;
    er->worker = worker;
    er->req = req;
    er->refs = 1; /* the request's */
    er->who = who;
    er->max = (size_t)cfg->events.max_body_bytes;
    worker->in_flight++;
    tg_h1_body_read(req, on_body, er);
}
