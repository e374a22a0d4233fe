/* gateway.h - the decision for each API call, free of any HTTP library.
 *
 * src/http/ hands over the method, path and key of a request; tg_gateway_admit authenticates it,
 * checks the plan's endpoints, reserves quota and takes a rate-limit cell, in an order chosen so
 * that a refused call consumes nothing: quota is reserved before the rate limiter is asked and
 * released again if the limiter refuses. When the upstream's status is known,
 * tg_gateway_settle either meters the call (exactly once, through the meter) or releases its
 * reservation. Everything here runs on gateway event loops and never blocks; admit, settle and
 * abandon are thread-safe (several loops call them at once, and the decision API's receiver
 * thread settles calls held in gateway/reservations.h). */
#ifndef TG_GATEWAY_H
#define TG_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "gateway/accounts.h"
#include "limits/limiter.h"
#include "limits/quota.h"
#include "metering/meter.h"
#include "notify/thresholds.h"

#define TG_CALL_MAX_METRICS 8

typedef struct tg_gateway tg_gateway_t;

/* Shared by all workers; none of these are owned by the gateway. */
typedef struct tg_gateway_deps {
    const tg_config_t *cfg; /* used when live is NULL (tests, tools) */
    tg_accounts_t *accounts;
    tg_limiter_t *limiter;
    tg_quota_t *quota;
    tg_meter_t *meter;
    tg_thresholds_t *thresholds; /* usage notifications (notify/thresholds.h); NULL: none */
    /* The configuration in effect (config/config_live.h), read once per call: routes, metering
     * rules and the other plans named in refusals follow a reload. May be NULL. */
    struct tg_config_live *live;
} tg_gateway_deps_t;

typedef struct tg_call_request {
    const char *method;
    size_t method_len;
    const char *path; /* without the query string */
    size_t path_len;
    const char *authorization; /* Authorization header value, or NULL */
    size_t authorization_len;
    const char *api_key; /* X-API-Key header value, or NULL */
    size_t api_key_len;
    const char *request_id; /* NUL-terminated, for log lines about the call; NULL if none */
    /* What the call reserves instead of its route's units (POST /v1/check's "units"); NULL: the
     * route's. Each metric must be the configuration's own string (tg_gateway_config_metric):
     * the call keeps the pointer. At most TG_CALL_MAX_METRICS are used. */
    const tg_meter_unit_t *units;
    size_t nunits;
    /* tg_clock_mono_ns() when the call arrived, or 0: the decision reads the clock itself. The
     * decision time and the rate limiter use it (saves two clock reads per call). */
    int64_t arrived_mono_ns;
} tg_call_request_t;

/* Per-call state, owned by the caller (lives in the request's memory). */
typedef struct tg_call {
    tg_account_t *account; /* NULL until authenticated */
    const tg_plan_t *plan;
    const tg_route_t *route;
    char key_id[TG_ID_MAX];
    char endpoint[TG_ENDPOINT_MAX];
    int64_t decided_ns; /* wall clock */
    int64_t period_start, period_end;
    int has_rate;
    tg_limit_result_t rate;
    tg_rate_t rate_policy; /* the rate that applied (plan's, or the throttle rate) */
    int has_quota;
    uint64_t quota_remaining;
    size_t nunits;
    tg_meter_unit_t units[TG_CALL_MAX_METRICS]; /* metric names point into the config */
    uint64_t used_after[TG_CALL_MAX_METRICS];   /* each metric's counter after its reservation */
    uint8_t crossed[TG_CALL_MAX_METRICS];       /* thresholds the reservation crossed (bits) */
    int settled;
    /* Its usage rows' event_id: 0 draws one at settlement (tg_meter_next_event_id); a reservation
     * draws it when held, as its file keeps it (reservation_file.h). */
    uint64_t event_id;
    const char *request_id; /* tg_call_request_t's; the caller keeps it alive as long as the call */
    char key_prefix[16]; /* the presented key's display prefix once its format checked; else "" */
    /* What tg_gateway_settle metered (the route's units and the upstream's, merged), for the
     * access log; nmetered is 0 when the call was not billed. */
    size_t nmetered;
    struct {
        char metric[TG_METRIC_MAX];
        uint64_t units;
    } metered[TG_CALL_MAX_METRICS * 2];
} tg_call_t;

typedef struct tg_refusal {
    int status;       /* 401, 402, 403, 429, 503 */
    const char *type; /* stable error type, e.g. "invalid_key" */
    char message[512];
    int64_t retry_after_s; /* for 429 and 503; else 0 */
    int outcome;           /* its tg_outcome_t (metrics/metrics.h) */
} tg_refusal_t;

tg_gateway_t *tg_gateway_new(const tg_gateway_deps_t *deps, const uint8_t *secret, size_t secret_len);
void tg_gateway_free(tg_gateway_t *gw);

/* The configuration in effect for the next call (the latest reload's, config/config_live.h): one
 * atomic load; the pointer stays valid until shutdown. Any thread. */
const tg_config_t *tg_gateway_config(const tg_gateway_t *gw);

/* The configuration's own copy of a metric's name (a plan's included, a route's meter,
 * metering.metrics, or "api_calls"), which stays valid as long as the process; NULL when the
 * configuration names no such metric. Any thread. */
const char *tg_gateway_config_metric(tg_gateway_t *gw, const char *metric, size_t len);

/* Decides one call. Returns 1 if it may be forwarded (call filled; refusal's fields are then
 * unspecified: read it only after a 0), 0 if refused (refusal filled; call->account is set when
 * the caller was authenticated, so its headers can still be emitted). Every field of call is set
 * either way. */
int tg_gateway_admit(tg_gateway_t *gw, const tg_call_request_t *rq, tg_call_t *call, tg_refusal_t *refusal);

/* The upstream answered with `status` (or the call failed: pass 502/504 with upstream_failed).
 * units_header is the upstream's Tollgate-Units value or NULL. If the call is billable its usage
 * is submitted to the meter and 1 is returned: cb(arg, status) fires once the usage is durable.
 * Otherwise its reservation is released and 0 is returned (cb is not called). Negative on a
 * meter error (usage could not be queued; the reservation is kept, as the call was served). */
int tg_gateway_settle(tg_gateway_t *gw, tg_call_t *call, int status, int upstream_failed, const char *units_header,
                      size_t units_len, tg_meter_done_cb cb, void *arg);
/* The same, with the usage added to batch (process durability: the calling loop's own, see
 * meter.h) instead of submitted to the meter, when batch is not NULL; cb then fires when the
 * loop commits the batch. */
int tg_gateway_settle_to(tg_gateway_t *gw, tg_call_t *call, int status, int upstream_failed, const char *units_header,
                         size_t units_len, tg_meter_batch_t *batch, tg_meter_done_cb cb, void *arg);

/* The request ended without a response (client went away): releases the reservation. */
void tg_gateway_abandon(tg_gateway_t *gw, tg_call_t *call);

/* Parses a Tollgate-Units header value ("tokens=1234, images=2") into rows[0..cap): for each
 * item, the metric (lowercase letters, digits and '_', under TG_METRIC_MAX bytes) and units
 * (1 to INT64_MAX); only those two fields are written. Malformed, zero and overflowing items
 * are skipped: the upstream is trusted, but not with our memory. Returns the rows written. */
size_t tg_gateway_parse_units(const char *h, size_t len, tg_usage_t *rows, size_t cap);

/* 1 when s (n bytes) is a metric name as Tollgate-Units takes it: 1 to TG_METRIC_MAX - 1
 * lowercase letters, digits and '_'; else 0 (tg_gateway_parse_units skips such an item). */
int tg_gateway_metric_name_ok(const char *s, size_t n);

/* The response headers a call's limits are told in: X(id, lowercase name), in the order
 * tg_gateway_headers lists them. A list rather than names in gateway.c, so that an adapter can
 * build its own table of names at compile time (proxy.c: h2o's, with no copy or strlen per call)
 * and the decision API its JSON fields (decide_http.c), from this one place. */
#define TG_CALL_HEADERS(X)                                                                                             \
    X(TG_HDR_RATELIMIT_LIMIT, "x-ratelimit-limit")                                                                     \
    X(TG_HDR_RATELIMIT_REMAINING, "x-ratelimit-remaining")                                                             \
    X(TG_HDR_RATELIMIT_RESET, "x-ratelimit-reset")                                                                     \
    X(TG_HDR_RATELIMIT_POLICY, "ratelimit-policy") /* draft-ietf-httpapi-ratelimit-headers */                          \
    X(TG_HDR_RATELIMIT, "ratelimit")                                                                                   \
    X(TG_HDR_QUOTA_REMAINING, "x-quota-remaining")                                                                     \
    X(TG_HDR_QUOTA_RESET, "x-quota-reset")                                                                             \
    X(TG_HDR_RETRY_AFTER, "retry-after")

#define TG_CALL_HEADER_ID(id, name) id,
typedef enum { TG_CALL_HEADERS(TG_CALL_HEADER_ID) TG_CALL_HEADER_COUNT } tg_call_header_t;
#undef TG_CALL_HEADER_ID

/* Room for every value of one call's headers: 5 numbers of up to 20 digits and two
 * "default";a=<20>;b=<20> items of 55 bytes, with room to spare. */
#define TG_CALL_HEADERS_TEXT_MAX 256

/* One call's headers: list[0..n) in TG_CALL_HEADERS' order, each value (no NUL) in the text
 * buffer the caller passed to tg_gateway_headers. */
typedef struct {
    size_t n;
    struct {
        tg_call_header_t which;
        const char *value;
        size_t value_len;
    } list[TG_CALL_HEADER_COUNT];
} tg_call_headers_t;

/* Lists the rate-limit and quota headers of this call (when it has a rate or a quota) and
 * Retry-After (when refusal is a 429 or 503 that names a wait) into out, their values written
 * into text, which the caller owns and keeps as long as it uses out (the transport allocates it
 * from the request's memory, so the values need no copy). Any thread; no allocation. */
void tg_gateway_headers(const tg_call_t *call, const tg_refusal_t *refusal, char text[TG_CALL_HEADERS_TEXT_MAX],
                        tg_call_headers_t *out);

/* Room for any refusal's JSON: a message of up to 511 bytes, each escaped to at most 6. */
#define TG_ERROR_JSON_MAX 4096

/* Renders {"error":{"type","message","docs"}} into buf; returns its length. Below
 * TG_ERROR_JSON_MAX bytes of room a long message may not fit, and the body then has no message. */
size_t tg_gateway_error_json(const char *type, const char *message, char *buf, size_t cap);

#endif
