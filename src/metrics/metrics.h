/* metrics.h - process-wide counters rendered in the Prometheus text format at GET /metrics.
 *
 * Counters are relaxed atomics: each is exact, but a scrape is not a consistent snapshot across
 * counters, which Prometheus does not need. The counters of every proxied call are kept per event
 * loop thread (tg_metrics_attach_thread) and summed by a scrape. */
#ifndef TG_METRICS_H
#define TG_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "metering/meter.h"

/* Gateway decisions, one counter each. */
typedef enum tg_outcome {
    TG_OUT_ALLOWED = 0,
    TG_OUT_MISSING_KEY,
    TG_OUT_INVALID_KEY,
    TG_OUT_SUSPENDED,
    TG_OUT_ENDPOINT,
    TG_OUT_RATE_LIMITED,
    TG_OUT_QUOTA_EXCEEDED,
    TG_OUT_TOO_LARGE,
    TG_OUT_METERING_UNAVAILABLE,
    TG_OUT_COUNT
} tg_outcome_t;

/* Gives the calling thread its own set of the per-call counters (decisions, responses, latencies,
 * billed calls), so that its counts are plain stores to memory no other thread writes rather than
 * locked adds to lines every worker writes. For event-loop threads, once at their start; a thread
 * that never calls it counts into the shared set. When the thread ends its set is kept, with its
 * counts, for the next thread that attaches. Past 64 sets, or if memory runs out, the thread
 * keeps counting into the shared set. */
void tg_metrics_attach_thread(void);

void tg_metrics_count_decision(tg_outcome_t outcome);
/* The same decision, by the caller's plan (tollgate_plan_decisions_total). Plans are counted in
 * up to TG_METRICS_MAX_PLANS slots claimed by id on first use (they outlive a configuration
 * reload); calls of plans past that are not counted here. Any thread. */
#define TG_METRICS_MAX_PLANS 128
void tg_metrics_count_plan_decision(const char *plan_id, tg_outcome_t outcome);
/* One call through the gateway handler, from its head to the end of its answer, refusals
 * included (tollgate_gateway_latency_seconds). */
void tg_metrics_observe_gateway(int64_t latency_ns);
/* The version in tollgate_build_info; a string that outlives the process's metrics (a literal). */
void tg_metrics_set_version(const char *version);
/* A response sent to a client of the gateway port, by status code. */
void tg_metrics_count_response(int status);
/* One upstream exchange: its latency, and whether the upstream failed (502/504 from us). */
void tg_metrics_observe_upstream(int64_t latency_ns, int failed);
void tg_metrics_count_billed(int billable);
/* A Tollgate-Units value from the upstream over metering.max_units_per_call, not billed. */
void tg_metrics_count_units_refused(void);
/* Settlement lines received by the decision API's syslog receiver (http/decide_syslog.h), by
 * what became of them. */
enum {
    TG_DECIDE_LINE_SETTLED = 0,
    TG_DECIDE_LINE_MALFORMED = 1,  /* not tollgate's format, or not a settlement */
    TG_DECIDE_LINE_UNKNOWN = 2,    /* no open reservation: unknown, settled already, or expired */
    TG_DECIDE_LINE_BAD_SECRET = 3, /* decide.syslog_secret missing or wrong: settled nothing */
};
void tg_metrics_count_decide_line(int outcome);
/* Reservations settled by decide.on_timeout because no settlement came in time. */
void tg_metrics_count_decide_expired(uint64_t n);
/* The decision API's table, as its receiver thread last saw it (every 100 ms): reservations open,
 * and calls refused so far because it was full (decide.max_pending) or their customer's share
 * was (decide.max_pending_per_customer). */
void tg_metrics_decide_table(uint64_t open, uint64_t refused_full, uint64_t refused_customer_full);
/* An access-log line lost: its buffer was full, or the write failed (log/access_log.h). */
void tg_metrics_count_access_log_dropped(void);

/* Shared limits (cluster.redis; limits/cluster.h). Leases taken from and given back to Redis,
 * Redis calls that failed, and the cluster's state: whether the node enforces its split of the
 * limits alone (Redis unreachable) and how many live nodes it last saw. Rendered only once
 * tg_metrics_cluster_state was called (a node in a cluster). */
void tg_metrics_count_lease(int returned);
void tg_metrics_count_redis_error(void);
/* Redis round trips made (a pipeline of several commands is one). */
void tg_metrics_count_redis_trips(uint64_t n);
void tg_metrics_cluster_state(int fallback, uint32_t live_nodes);
/* 1 while this node shares limits through Redis and Redis is unreachable (the last state the
 * cluster's sync thread reported). Any thread. */
int tg_metrics_cluster_fallback(void);
void tg_metrics_cluster_keys(uint64_t keys_in_use);

/* Renders every metric (plus the meter's stats, if m is not NULL) into a new malloc'd string. */
char *tg_metrics_render(tg_meter_t *m);

#endif
