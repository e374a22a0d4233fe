/* decide_log.c - the decision API's access-log lines (log/access_log.h).
 *
 * A decided call is not a proxied one: tollgate does not see its answer. So each call decided by
 * GET /v1/decide, POST /v1/check or Envoy's check gets a line when it is decided ("via": "decide",
 * "check" or "envoy"; allowed, or refused with the status the client gets), and a call admitted
 * under a reservation gets one more when the reservation ends ("via": "settlement" with the
 * status the forwarder reported and the units billed, or "timeout" when decide.settle_timeout_ms
 * passed and decide.on_timeout decided), with the decided call's method, path and request id as
 * they were when it was held; the reservation id also joins the two lines. Envoy's calls
 * are billed when decided, so their one line has the units. Lines are sampled as proxied calls'
 * are: refusals and every 4xx and 5xx always, the rest by access_log.sample_success. */
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "http/http_int.h"
#include "http/request_id.h"
#include "log/access_log.h"
#include "util/clock.h"

/* The units a settlement billed, as the access record wants them. */
static size_t units_of(const tg_call_t *call, const char **metrics, uint64_t *counts)
{
    for (size_t i = 0; i < call->nmetered; i++) {
        metrics[i] = call->metered[i].metric;
        counts[i] = call->metered[i].units;
    }
    return call->nmetered;
}

static int sampled_out(tg_access_log_t *log, int status, const char *error)
{
    uint32_t ppm = tg_access_log_sample_ppm(log); /* a reload may change it */
    return status < 400 && error == NULL && ppm < 1000000 &&
           (ppm == 0 || tg_request_id_random_u32() % 1000000 >= ppm);
}

static void append(tg_access_log_t *log, const tg_access_record_t *r)
{
    char line[TG_ACCESS_LOG_LINE_MAX];
    size_t n = tg_access_log_format(r, line, sizeof(line));
    tg_access_log_append(log, line, n);
}

size_t tg_http_decide_request_id(h2o_req_t *req, char out[TG_REQUEST_ID_MAX + 1])
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    if (i != -1 && tg_request_id_ok(req->headers.entries[i].value.base, req->headers.entries[i].value.len)) {
        memcpy(out, req->headers.entries[i].value.base, req->headers.entries[i].value.len);
        out[req->headers.entries[i].value.len] = '\0';
    } else {
        tg_request_id_new(out);
    }
    return strlen(out);
}

void tg_http_decide_log(struct tg_server *srv, h2o_req_t *req, const tg_decide_line_t *l)
{
    tg_access_log_t *log = srv->deps.access_log;
    if (!tg_access_log_enabled(log))
        return;
    const tg_call_t *call = l->call;
    int status = l->refusal != NULL ? l->refusal->status : 200;
    const char *error = l->refusal != NULL ? l->refusal->type : NULL;
    if (sampled_out(log, status, error))
        return;
    /* The forwarder's own request id when it sent a well-formed one (nginx: $request_id in the
     * example configuration), so that its log and ours join. */
    char rid[TG_REQUEST_ID_MAX + 1];
    const char *request_id = l->request_id;
    if (request_id == NULL) {
        tg_http_decide_request_id(req, rid);
        request_id = rid;
    }
    char client[NI_MAXHOST + 1];
    int v6;
    client[tg_http_peer_address(req->conn, client, &v6)] = '\0';
    const char *metrics[TG_CALL_MAX_METRICS * 2];
    uint64_t counts[TG_CALL_MAX_METRICS * 2];
    tg_access_record_t r = {
        .time_ns = l->start_ns,
        .request_id = request_id,
        .client = client[0] != '\0' ? client : NULL,
        .method = l->method.base,
        .method_len = l->method.len,
        .path = l->path.base,
        .path_len = l->path.len,
        .route = call->route != NULL ? call->route->pattern : NULL,
        .customer = call->account != NULL ? tg_account_id(call->account) : NULL,
        .key_prefix = call->key_prefix[0] != '\0' ? call->key_prefix : NULL,
        .plan = call->plan != NULL ? call->plan->id : NULL,
        .decision = l->refusal != NULL ? "refused" : "allowed",
        .error = error,
        .via = l->via,
        .reservation = l->reservation,
        .status = status,
        .upstream_status = -1,
        .upstream_ns = -1,
        .total_ns = tg_clock_mono_ns() - l->start_mono_ns,
        .nunits = units_of(call, metrics, counts),
        .unit_metrics = metrics,
        .unit_counts = counts,
    };
    append(log, &r);
}

void tg_http_decide_log_end(void *access_log, const tg_call_t *call, const tg_reservation_label_t *label, const char *id,
                            int status, int expired)
{
    tg_access_log_t *log = access_log;
    if (!tg_access_log_enabled(log) || sampled_out(log, expired ? 0 : status, NULL))
        return;
    const char *metrics[TG_CALL_MAX_METRICS * 2];
    uint64_t counts[TG_CALL_MAX_METRICS * 2];
    tg_access_record_t r = {
        .time_ns = tg_clock_now_ns(),
        /* the decided call, as the forwarder named it when it was held (cut to the label's sizes) */
        .request_id = label->request_id[0] != '\0' ? label->request_id : NULL,
        .method = label->method[0] != '\0' ? label->method : NULL,
        .method_len = strlen(label->method),
        .path = label->path[0] != '\0' ? label->path : NULL,
        .path_len = strlen(label->path),
        .route = call->route != NULL ? call->route->pattern : NULL,
        .customer = call->account != NULL ? tg_account_id(call->account) : NULL,
        .key_prefix = call->key_prefix[0] != '\0' ? call->key_prefix : NULL,
        .plan = call->plan != NULL ? call->plan->id : NULL,
        .decision = "allowed",
        .via = expired ? "timeout" : "settlement",
        .reservation = id,
        .status = expired ? -1 : status,
        .upstream_status = -1,
        .upstream_ns = -1,
        .total_ns = -1,
        .nunits = units_of(call, metrics, counts),
        .unit_metrics = metrics,
        .unit_counts = counts,
    };
    append(log, &r);
}
