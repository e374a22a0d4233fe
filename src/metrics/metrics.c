/* metrics.c - see metrics.h. */
#include "metrics/metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const outcome_names[TG_OUT_COUNT] = {
    "allowed",      "missing_key",    "invalid_key",       "account_suspended",   "endpoint_not_in_plan",
    "rate_limited", "quota_exceeded", "request_too_large", "metering_unavailable"};

/* Upstream latency buckets in seconds, as Prometheus histograms want them (cumulative at render). */
static const double bucket_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                       0.25,   0.5,   1,      2.5,   5,    10,    30};
#define NBUCKETS (sizeof(bucket_bounds) / sizeof(bucket_bounds[0]))
static const int64_t bucket_ns[NBUCKETS] = {500000,     1000000,    2500000,    5000000,     10000000,
                                            25000000,   50000000,   100000000,  250000000,   500000000,
                                            1000000000, 2500000000, 5000000000, 10000000000, 30000000000};

static _Atomic uint64_t units_refused;
static _Atomic uint64_t decide_lines[4], decide_expired, decide_open, decide_full, decide_customer_full;
static _Atomic uint64_t access_log_dropped;
static const char *_Atomic build_version;

/* tollgate_plan_decisions_total: slots claimed by plan id (0 free, 1 being claimed, 2 ready); the
 * counts are in hot_counters_t.plan_decisions, by slot. */
#define PLAN_ID_MAX 64
static struct plan_slot {
    _Atomic int state;
    char id[PLAN_ID_MAX];
} plan_slots[TG_METRICS_MAX_PLANS];

/* The counters every proxied call moves (about ten per call), in a set per event-loop thread.
 * One set for the whole process made every call's increments locked adds on cache lines that both
 * cores write: each moved between the cores at nearly every call, 40-70 ns a move on this machine's
 * VM (two threads adding to one line against each to its own: 67 against 27 ns an add), where the
 * call's whole user time is about 5 us. A thread that has called tg_metrics_attach_thread adds to
 * its own set with plain loads and stores (relaxed atomics: only it writes them, /metrics reads
 * them from another thread); any other thread adds to `shared` with locked adds, as before. A
 * scrape sums the sets. A set outlives its thread: the next thread to attach adopts it and adds
 * on, so nothing counted is ever lost. */
typedef struct hot_counters {
    _Atomic uint64_t decisions[TG_OUT_COUNT];
    _Atomic uint64_t responses[6][100]; /* [class 0..5][code % 100] */
    _Atomic uint64_t responses_other;
    _Atomic uint64_t upstream_buckets[NBUCKETS + 1];
    _Atomic uint64_t upstream_sum_ns, upstream_count, upstream_failures;
    _Atomic uint64_t gateway_buckets[NBUCKETS + 1];
    _Atomic uint64_t gateway_sum_ns, gateway_count;
    _Atomic uint64_t billed[2];
    _Atomic uint64_t plan_decisions[TG_METRICS_MAX_PLANS][TG_OUT_COUNT]; /* by plan_slots' index */
    _Atomic int in_use;                                                  /* a thread owns this set */
} hot_counters_t;

#define MAX_THREAD_SETS 64 /* event loops: workers and the admin loop; more share `shared` */
static hot_counters_t shared;
static hot_counters_t *_Atomic thread_sets[MAX_THREAD_SETS];
static _Thread_local hot_counters_t *own_set; /* NULL: this thread adds to shared */
static pthread_once_t set_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t set_key; /* its destructor frees the set for the next thread to adopt */
static int set_key_once_failed;

/* Adds n to counter `field` of this thread's set, or of the shared one. */
#define COUNT(field, n)                                                                                               \
    do {                                                                                                               \
        hot_counters_t *set_ = own_set;                                                                                \
        if (set_ != NULL) {                                                                                            \
            _Atomic uint64_t *c_ = &set_->field;                                                                      \
            atomic_store_explicit(c_, atomic_load_explicit(c_, memory_order_relaxed) + (n), memory_order_relaxed);     \
        } else {                                                                                                       \
            atomic_fetch_add_explicit(&shared.field, (n), memory_order_relaxed);                                       \
        }                                                                                                              \
    } while (0)

/* The sum over every set of the counter at `field`, a counter of `shared`. */
static uint64_t total(const _Atomic uint64_t *field)
{
    size_t at = (size_t)((const char *)field - (const char *)&shared);
    uint64_t sum = atomic_load_explicit(field, memory_order_relaxed);
    for (size_t i = 0; i < MAX_THREAD_SETS; i++) {
        hot_counters_t *set = atomic_load_explicit(&thread_sets[i], memory_order_acquire);
        if (set != NULL)
            sum += atomic_load_explicit((const _Atomic uint64_t *)((const char *)set + at), memory_order_relaxed);
    }
    return sum;
}

/* The key's destructor, on the ending thread: what it still counts (in another destructor) goes
 * to the shared set, since the next thread to attach may adopt this one at once. */
static void release_set(void *set)
{
    own_set = NULL;
    atomic_store_explicit(&((hot_counters_t *)set)->in_use, 0, memory_order_release);
}

static void make_set_key(void)
{
    if (pthread_key_create(&set_key, release_set) != 0)
        set_key_once_failed = 1;
}

/* A set for this thread: one no thread owns (its thread ended: its counts are kept and added to),
 * else a new one in a free slot. NULL when every slot's set is owned, or memory runs out. */
static hot_counters_t *claim_set(void)
{
    for (size_t i = 0; i < MAX_THREAD_SETS; i++) {
        hot_counters_t *set = atomic_load_explicit(&thread_sets[i], memory_order_acquire);
        if (set == NULL) {
            hot_counters_t *fresh = aligned_alloc(64, (sizeof(*fresh) + 63) / 64 * 64);
            if (fresh == NULL)
                return NULL;
            memset(fresh, 0, sizeof(*fresh));
            atomic_init(&fresh->in_use, 1);
            if (atomic_compare_exchange_strong(&thread_sets[i], &set, fresh))
                return fresh; /* published zeroed, and owned */
            free(fresh);      /* another thread filled the slot first: set is now its set */
        }
        int idle = 0;
        if (atomic_compare_exchange_strong(&set->in_use, &idle, 1))
            return set;
    }
    return NULL;
}

void tg_metrics_attach_thread(void)
{
    if (own_set != NULL)
        return;
    pthread_once(&set_key_once, make_set_key);
    if (set_key_once_failed)
        return;
    hot_counters_t *set = claim_set();
    if (set == NULL)
        return;
    if (pthread_setspecific(set_key, set) != 0) { /* no destructor to give it back: not ours */
        release_set(set);
        return;
    }
    own_set = set;
}

static _Atomic uint64_t leases[2]; /* [0] taken, [1] returned */
static _Atomic uint64_t redis_errors, redis_trips;
static _Atomic int cluster_on, cluster_fallback;
static _Atomic uint32_t cluster_nodes;
static _Atomic uint64_t cluster_keys;

void tg_metrics_count_decision(tg_outcome_t outcome)
{
    if ((unsigned)outcome < TG_OUT_COUNT)
        COUNT(decisions[outcome], 1);
}

void tg_metrics_count_plan_decision(const char *plan_id, tg_outcome_t outcome)
{
    if ((unsigned)outcome >= TG_OUT_COUNT || plan_id == NULL)
        return;
    for (size_t i = 0; i < TG_METRICS_MAX_PLANS; i++) {
        struct plan_slot *s = &plan_slots[i];
        int st = atomic_load_explicit(&s->state, memory_order_acquire);
        if (st == 0) {
            int zero = 0;
            if (atomic_compare_exchange_strong(&s->state, &zero, 1)) {
                snprintf(s->id, sizeof(s->id), "%s", plan_id);
                atomic_store_explicit(&s->state, 2, memory_order_release);
                st = 2;
            } else {
                st = zero;
            }
        }
        while (st == 1) /* another thread is writing this slot's id: a few stores away */
            st = atomic_load_explicit(&s->state, memory_order_acquire);
        if (strncmp(s->id, plan_id, sizeof(s->id) - 1) == 0) {
            COUNT(plan_decisions[i][outcome], 1);
            return;
        }
    }
}

void tg_metrics_observe_gateway(int64_t latency_ns)
{
    size_t b = 0;
    while (b < NBUCKETS && latency_ns > bucket_ns[b])
        b++;
    COUNT(gateway_buckets[b], 1);
    COUNT(gateway_sum_ns, (uint64_t)(latency_ns > 0 ? latency_ns : 0));
    COUNT(gateway_count, 1);
}

void tg_metrics_set_version(const char *version)
{
    atomic_store(&build_version, version);
}

void tg_metrics_count_response(int status)
{
    if (status >= 100 && status < 600)
        COUNT(responses[status / 100][status % 100], 1);
    else
        COUNT(responses_other, 1);
}

void tg_metrics_observe_upstream(int64_t latency_ns, int failed)
{
    size_t b = 0;
    while (b < NBUCKETS && latency_ns > bucket_ns[b])
        b++;
    COUNT(upstream_buckets[b], 1);
    COUNT(upstream_sum_ns, (uint64_t)(latency_ns > 0 ? latency_ns : 0));
    COUNT(upstream_count, 1);
    if (failed)
        COUNT(upstream_failures, 1);
}

void tg_metrics_count_billed(int billable)
{
    COUNT(billed[billable ? 1 : 0], 1);
}

void tg_metrics_count_decide_line(int outcome)
{
    if (outcome >= 0 && outcome < 4)
        atomic_fetch_add_explicit(&decide_lines[outcome], 1, memory_order_relaxed);
}

void tg_metrics_count_decide_expired(uint64_t n)
{
    atomic_fetch_add_explicit(&decide_expired, n, memory_order_relaxed);
}

void tg_metrics_decide_table(uint64_t open, uint64_t refused_full, uint64_t refused_customer_full)
{
    atomic_store_explicit(&decide_open, open, memory_order_relaxed);
    atomic_store_explicit(&decide_full, refused_full, memory_order_relaxed);
    atomic_store_explicit(&decide_customer_full, refused_customer_full, memory_order_relaxed);
}

void tg_metrics_count_units_refused(void)
{
    atomic_fetch_add_explicit(&units_refused, 1, memory_order_relaxed);
}

void tg_metrics_count_access_log_dropped(void)
{
    atomic_fetch_add_explicit(&access_log_dropped, 1, memory_order_relaxed);
}

void tg_metrics_count_lease(int returned)
{
    atomic_fetch_add_explicit(&leases[returned != 0], 1, memory_order_relaxed);
}

void tg_metrics_count_redis_error(void)
{
    atomic_fetch_add_explicit(&redis_errors, 1, memory_order_relaxed);
}

void tg_metrics_count_redis_trips(uint64_t n)
{
    atomic_fetch_add_explicit(&redis_trips, n, memory_order_relaxed);
}

void tg_metrics_cluster_state(int fallback, uint32_t live_nodes)
{
    atomic_store_explicit(&cluster_fallback, fallback, memory_order_relaxed);
    atomic_store_explicit(&cluster_nodes, live_nodes, memory_order_relaxed);
    atomic_store_explicit(&cluster_on, 1, memory_order_relaxed);
}

int tg_metrics_cluster_fallback(void)
{
    return atomic_load_explicit(&cluster_on, memory_order_relaxed) &&
           atomic_load_explicit(&cluster_fallback, memory_order_relaxed);
}

void tg_metrics_cluster_keys(uint64_t keys_in_use)
{
    atomic_store_explicit(&cluster_keys, keys_in_use, memory_order_relaxed);
}

typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} out_t;

static void out_printf(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(out_t *o, const char *fmt, ...)
{
    if (o->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = 1;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *nb = realloc(o->buf, cap);
        if (nb == NULL) {
            o->failed = 1;
            return;
        }
        o->buf = nb;
        o->cap = cap;
    }
}

/* A label value: backslash, quote and newline escaped (the text format's rules). */
static void out_label(out_t *o, const char *v)
{
    char buf[2 * PLAN_ID_MAX + 1];
    size_t n = 0;
    for (; *v != '\0' && n + 2 < sizeof(buf); v++) {
        if (*v == '\\' || *v == '"')
            buf[n++] = '\\', buf[n++] = *v;
        else if (*v == '\n')
            buf[n++] = '\\', buf[n++] = 'n';
        else
            buf[n++] = *v;
    }
    buf[n] = '\0';
    out_printf(o, "%s", buf);
}

/* process_* from /proc/self, as Prometheus's client libraries name them. */
static void render_process(out_t *o)
{
    long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f != NULL ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f != NULL)
        fclose(f);
    buf[n] = '\0';
    /* fields after the command name, which is in parentheses and may hold spaces */
    char *p = strrchr(buf, ')');
    unsigned long long utime = 0, stime = 0, start = 0;
    if (p != NULL && hz > 0 &&
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu", &utime,
               &stime, &start) == 3) {
        out_printf(o,
                   "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
                   "# TYPE process_cpu_seconds_total counter\n"
                   "process_cpu_seconds_total %.2f\n",
                   (double)(utime + stime) / (double)hz);
        unsigned long long btime = 0;
        char line[256];
        if ((f = fopen("/proc/stat", "r")) != NULL) {
            while (fgets(line, sizeof(line), f) != NULL)
                if (sscanf(line, "btime %llu", &btime) == 1)
                    break;
            fclose(f);
        }
        if (btime != 0)
            out_printf(o,
                       "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
                       "# TYPE process_start_time_seconds gauge\n"
                       "process_start_time_seconds %.2f\n",
                       (double)btime + (double)start / (double)hz);
    }
    unsigned long long pages = 0;
    if ((f = fopen("/proc/self/statm", "r")) != NULL) {
        if (fscanf(f, "%*u %llu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    if (pages != 0 && page > 0)
        out_printf(o,
                   "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                   "# TYPE process_resident_memory_bytes gauge\n"
                   "process_resident_memory_bytes %llu\n",
                   pages * (unsigned long long)page);
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        unsigned long long fds = 0;
        for (struct dirent *e; (e = readdir(d)) != NULL;)
            if (e->d_name[0] != '.')
                fds++;
        closedir(d);
        out_printf(o,
                   "# HELP process_open_fds Number of open file descriptors.\n"
                   "# TYPE process_open_fds gauge\n"
                   "process_open_fds %llu\n",
                   fds - 1); /* not the one opendir holds */
    }
}

char *tg_metrics_render(tg_meter_t *m)
{
    out_t o = {malloc(8192), 0, 8192, 0};
    if (o.buf == NULL)
        return NULL;
    out_printf(&o, "# HELP tollgate_decisions_total Gateway decisions by outcome.\n"
                   "# TYPE tollgate_decisions_total counter\n");
    for (int i = 0; i < TG_OUT_COUNT; i++)
        out_printf(&o, "tollgate_decisions_total{outcome=\"%s\"} %llu\n", outcome_names[i],
                   (unsigned long long)total(&shared.decisions[i]));
    const char *version = atomic_load(&build_version);
    out_printf(&o, "# HELP tollgate_build_info The running build.\n"
                   "# TYPE tollgate_build_info gauge\n"
                   "tollgate_build_info{version=\"");
    out_label(&o, version != NULL ? version : "unknown");
    out_printf(&o, "\"} 1\n");
    render_process(&o);
    out_printf(&o, "# HELP tollgate_plan_decisions_total Gateway decisions of authenticated calls by plan.\n"
                   "# TYPE tollgate_plan_decisions_total counter\n");
    for (size_t i = 0; i < TG_METRICS_MAX_PLANS && atomic_load(&plan_slots[i].state) == 2; i++)
        for (int k = 0; k < TG_OUT_COUNT; k++) {
            uint64_t v = total(&shared.plan_decisions[i][k]);
            if (v == 0)
                continue;
            out_printf(&o, "tollgate_plan_decisions_total{plan=\"");
            out_label(&o, plan_slots[i].id);
            out_printf(&o, "\",decision=\"%s\"} %llu\n", outcome_names[k], (unsigned long long)v);
        }
    out_printf(&o, "# HELP tollgate_gateway_latency_seconds Time from a call's request head to the end of its "
                   "answer, refusals included.\n"
                   "# TYPE tollgate_gateway_latency_seconds histogram\n");
    uint64_t gcum = 0;
    for (size_t b = 0; b < NBUCKETS; b++) {
        gcum += total(&shared.gateway_buckets[b]);
        out_printf(&o, "tollgate_gateway_latency_seconds_bucket{le=\"%g\"} %llu\n", bucket_bounds[b],
                   (unsigned long long)gcum);
    }
    gcum += total(&shared.gateway_buckets[NBUCKETS]);
    out_printf(&o, "tollgate_gateway_latency_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)gcum);
    uint64_t gsum = total(&shared.gateway_sum_ns);
    out_printf(&o, "tollgate_gateway_latency_seconds_sum %llu.%09llu\n", (unsigned long long)(gsum / 1000000000u),
               (unsigned long long)(gsum % 1000000000u));
    out_printf(&o, "tollgate_gateway_latency_seconds_count %llu\n", (unsigned long long)total(&shared.gateway_count));
    out_printf(&o, "# HELP tollgate_requests_total Gateway responses by status code.\n"
                   "# TYPE tollgate_requests_total counter\n");
    for (int c = 1; c < 6; c++)
        for (int r = 0; r < 100; r++) {
            uint64_t v = total(&shared.responses[c][r]);
            if (v != 0)
                out_printf(&o, "tollgate_requests_total{status=\"%d\"} %llu\n", c * 100 + r, (unsigned long long)v);
        }
    out_printf(
        &o, "# HELP tollgate_upstream_latency_seconds Time from forwarding a call to the upstream's response headers.\n"
            "# TYPE tollgate_upstream_latency_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t b = 0; b < NBUCKETS; b++) {
        cum += total(&shared.upstream_buckets[b]);
        out_printf(&o, "tollgate_upstream_latency_seconds_bucket{le=\"%g\"} %llu\n", bucket_bounds[b],
                   (unsigned long long)cum);
    }
    cum += total(&shared.upstream_buckets[NBUCKETS]);
    out_printf(&o, "tollgate_upstream_latency_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    uint64_t sum_ns = total(&shared.upstream_sum_ns);
    out_printf(&o, "tollgate_upstream_latency_seconds_sum %llu.%09llu\n", (unsigned long long)(sum_ns / 1000000000u),
               (unsigned long long)(sum_ns % 1000000000u));
    out_printf(&o, "tollgate_upstream_latency_seconds_count %llu\n", (unsigned long long)total(&shared.upstream_count));
    out_printf(&o,
               "# HELP tollgate_upstream_failures_total Upstream connections refused, broken or timed out.\n"
               "# TYPE tollgate_upstream_failures_total counter\n"
               "tollgate_upstream_failures_total %llu\n",
               (unsigned long long)total(&shared.upstream_failures));
    out_printf(&o,
               "# HELP tollgate_calls_total Proxied calls by whether they were billable.\n"
               "# TYPE tollgate_calls_total counter\n"
               "tollgate_calls_total{billable=\"true\"} %llu\n"
               "tollgate_calls_total{billable=\"false\"} %llu\n",
               (unsigned long long)total(&shared.billed[1]), (unsigned long long)total(&shared.billed[0]));
    out_printf(&o,
               "# HELP tollgate_upstream_units_refused_total Tollgate-Units values from the upstream over "
               "metering.max_units_per_call, not billed.\n"
               "# TYPE tollgate_upstream_units_refused_total counter\n"
               "tollgate_upstream_units_refused_total %llu\n",
               (unsigned long long)atomic_load(&units_refused));
    out_printf(&o,
               "# HELP tollgate_decide_settlement_lines_total Lines the decision API's syslog receiver got "
               "(decide.syslog), by result: settled, malformed (ignored), unknown (no open reservation: "
               "never given, settled already, or expired), bad_secret (decide.syslog_secret missing or wrong: "
               "ignored).\n"
               "# TYPE tollgate_decide_settlement_lines_total counter\n"
               "tollgate_decide_settlement_lines_total{result=\"settled\"} %llu\n"
               "tollgate_decide_settlement_lines_total{result=\"malformed\"} %llu\n"
               "tollgate_decide_settlement_lines_total{result=\"unknown\"} %llu\n"
               "tollgate_decide_settlement_lines_total{result=\"bad_secret\"} %llu\n"
               "# HELP tollgate_decide_expired_total Reservations settled by decide.on_timeout: no settlement "
               "came within decide.settle_timeout_ms.\n"
               "# TYPE tollgate_decide_expired_total counter\n"
               "tollgate_decide_expired_total %llu\n"
               "# HELP tollgate_decide_reservations_open Calls the decision API admitted that wait for their "
               "settlement (decide.max_pending at most).\n"
               "# TYPE tollgate_decide_reservations_open gauge\n"
               "tollgate_decide_reservations_open %llu\n"
               "# HELP tollgate_decide_refused_full_total Calls refused (503 decide_unavailable) because "
               "decide.max_pending reservations were open.\n"
               "# TYPE tollgate_decide_refused_full_total counter\n"
               "tollgate_decide_refused_full_total %llu\n"
               "# HELP tollgate_decide_refused_customer_full_total Calls refused (429 too_many_pending) because "
               "their customer had decide.max_pending_per_customer reservations open.\n"
               "# TYPE tollgate_decide_refused_customer_full_total counter\n"
               "tollgate_decide_refused_customer_full_total %llu\n",
               (unsigned long long)atomic_load(&decide_lines[0]), (unsigned long long)atomic_load(&decide_lines[1]),
               (unsigned long long)atomic_load(&decide_lines[2]), (unsigned long long)atomic_load(&decide_lines[3]),
               (unsigned long long)atomic_load(&decide_expired), (unsigned long long)atomic_load(&decide_open),
               (unsigned long long)atomic_load(&decide_full), (unsigned long long)atomic_load(&decide_customer_full));
    out_printf(&o,
               "# HELP tollgate_access_log_dropped_total Access-log lines lost: the writer's buffer was full "
               "(the request was not held up for it) or the write failed.\n"
               "# TYPE tollgate_access_log_dropped_total counter\n"
               "tollgate_access_log_dropped_total %llu\n",
               (unsigned long long)atomic_load(&access_log_dropped));
    if (atomic_load(&cluster_on))
        out_printf(&o,
                   "# HELP tollgate_cluster_leases_total Budget leases taken from and given back to Redis.\n"
                   "# TYPE tollgate_cluster_leases_total counter\n"
                   "tollgate_cluster_leases_total{op=\"taken\"} %llu\n"
                   "tollgate_cluster_leases_total{op=\"returned\"} %llu\n"
                   "# HELP tollgate_cluster_redis_errors_total Redis calls that failed (connect, timeout, error).\n"
                   "# TYPE tollgate_cluster_redis_errors_total counter\n"
                   "tollgate_cluster_redis_errors_total %llu\n"
                   "# HELP tollgate_cluster_redis_round_trips_total Round trips to Redis (a pipeline of several "
                   "commands is one).\n"
                   "# TYPE tollgate_cluster_redis_round_trips_total counter\n"
                   "tollgate_cluster_redis_round_trips_total %llu\n"
                   "# HELP tollgate_cluster_fallback 1 while Redis is unreachable and this node enforces "
                   "limit / live nodes alone.\n"
                   "# TYPE tollgate_cluster_fallback gauge\n"
                   "tollgate_cluster_fallback %d\n"
                   "# HELP tollgate_cluster_live_nodes Live nodes last seen in Redis.\n"
                   "# TYPE tollgate_cluster_live_nodes gauge\n"
                   "tollgate_cluster_live_nodes %u\n"
                   "# HELP tollgate_cluster_keys_in_use Keys whose leases the sync thread tends (used within "
                   "about a second, or holding a lease).\n"
                   "# TYPE tollgate_cluster_keys_in_use gauge\n"
                   "tollgate_cluster_keys_in_use %llu\n",
                   (unsigned long long)atomic_load(&leases[0]), (unsigned long long)atomic_load(&leases[1]),
                   (unsigned long long)atomic_load(&redis_errors), (unsigned long long)atomic_load(&redis_trips),
                   atomic_load(&cluster_fallback),
                   (unsigned)atomic_load(&cluster_nodes), (unsigned long long)atomic_load(&cluster_keys));
    if (m != NULL) {
        tg_meter_stats_t s;
        tg_meter_get_stats(m, &s);
        out_printf(
            &o,
            "# HELP tollgate_metering_records_total Usage records by stage.\n"
            "# TYPE tollgate_metering_records_total counter\n"
            "tollgate_metering_records_total{stage=\"submitted\"} %llu\n"
            "tollgate_metering_records_total{stage=\"committed\"} %llu\n"
            "tollgate_metering_records_total{stage=\"stored\"} %llu\n"
            "# HELP tollgate_metering_commits_total Appends to the metering log.\n"
            "# TYPE tollgate_metering_commits_total counter\n"
            "tollgate_metering_commits_total %llu\n"
            "# HELP tollgate_metering_commit_failures_total Log appends and database transactions that failed and were "
            "retried.\n"
            "# TYPE tollgate_metering_commit_failures_total counter\n"
            "tollgate_metering_commit_failures_total %llu\n"
            "# HELP tollgate_metering_queued Usage records waiting for commit.\n"
            "# TYPE tollgate_metering_queued gauge\n"
            "tollgate_metering_queued %llu\n"
            "# HELP tollgate_metering_lag_seconds Submit-to-commit time of the newest batch.\n"
            "# TYPE tollgate_metering_lag_seconds gauge\n"
            "tollgate_metering_lag_seconds %.6f\n"
            "# HELP tollgate_metering_held_records Logged usage records waiting for the database, kept in memory.\n"
            "# TYPE tollgate_metering_held_records gauge\n"
            "tollgate_metering_held_records %llu\n"
            "# HELP tollgate_metering_spilled_records_total Logged usage records not kept in memory because the "
            "database was behind; read back from the metering log to be stored.\n"
            "# TYPE tollgate_metering_spilled_records_total counter\n"
            "tollgate_metering_spilled_records_total %llu\n"
            "# HELP tollgate_metering_rejected_records_total Usage records no total can take (units past 2^63-1), "
            "kept aside in the database instead (GET /v1/admin/metering/rejected).\n"
            "# TYPE tollgate_metering_rejected_records_total counter\n"
            "tollgate_metering_rejected_records_total %llu\n",
            (unsigned long long)s.submitted, (unsigned long long)s.committed, (unsigned long long)s.applied,
            (unsigned long long)s.commits, (unsigned long long)s.failures, (unsigned long long)s.queued,
            (double)s.last_lag_ns / 1e9, (unsigned long long)s.held, (unsigned long long)s.spilled,
            (unsigned long long)s.rejected);
    }
    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    return o.buf;
}
