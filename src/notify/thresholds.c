/* thresholds.c - see thresholds.h. */
#include "notify/thresholds.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "billing/pricing.h"
#include "notify/events.h"
#include "util/clock.h"
#include "util/thread_prio.h"
#include "util/money.h"
#include "util/log.h"

/* ---- the crossing (pure, on the request path) ---- */

unsigned tg_thresholds_reached(uint64_t used, uint64_t included, const tg_thresholds_cfg_t *t)
{
    if (included == 0 || included == TG_UNLIMITED)
        return 0;
    /* used >= included x pct / 100 exactly: used x 100 >= included x pct, in 128 bits. The
     * levels increase: the first one not reached ends the walk, so a counter below the first
     * level (nearly every call) costs one comparison. */
    unsigned __int128 u = (unsigned __int128)used * 100u;
    unsigned i = 0;
    while (i < t->n && u >= (unsigned __int128)included * t->pct[i])
        i++;
    return (1u << i) - 1;
}

unsigned tg_thresholds_crossed(uint64_t before, uint64_t after, uint64_t included, const tg_thresholds_cfg_t *t)
{
    if (after <= before)
        return 0;
    unsigned reached = tg_thresholds_reached(after, included, t);
    return reached == 0 ? 0 : reached & ~tg_thresholds_reached(before, included, t);
}

/* ---- the queue ---- */

/* Process-wide figures for /metrics (one notifier per process). */
static _Atomic uint64_t stat_fired, stat_repeated, stat_dropped, stat_failed;

void tg_thresholds_stats(tg_thresholds_stats_t *out)
{
    out->fired = atomic_load(&stat_fired);
    out->repeated = atomic_load(&stat_repeated);
    out->dropped = atomic_load(&stat_dropped);
    out->failed = atomic_load(&stat_failed);
}

#define EXHAUSTED_SLOTS 1024 /* power of two */

struct tg_thresholds {
    tg_thresholds_settings_t s;
    char *database;
    tg_store_t *st;
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    tg_crossing_t *ring;
    size_t cap, head, count;
    tg_crossing_t *backlog; /* levels found reached when the counters were warmed (start only) */
    size_t nbacklog, backlog_cap;
    _Atomic int stopping; /* set under mu (the wait's condition); read without it between records */
    /* quota.exhausted's filter: a fingerprint of each (customer, period, metric) refused lately;
     * a slot taken by another key only costs a second record, which the mark then refuses */
    _Atomic uint64_t exhausted_seen[EXHAUSTED_SLOTS];
    /* budget.exceeded decided this period (customer, period_start): the notifier thread's own,
     * so that the pass every interval does not open a transaction per customer over budget to
     * find its mark again; a slot lost to another key only costs that transaction */
    uint64_t budget_seen[EXHAUSTED_SLOTS];
};

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * UINT64_C(1099511628211);
    return h;
}

static uint64_t key_hash(const char *customer_id, int64_t period_start, const char *metric)
{
    uint64_t h = fnv1a(UINT64_C(14695981039346656037), customer_id, strlen(customer_id) + 1);
    h = fnv1a(h, &period_start, sizeof(period_start));
    h = fnv1a(h, metric, strlen(metric));
    return h | 1; /* 0 is an empty slot */
}

int tg_thresholds_push(tg_thresholds_t *t, const tg_crossing_t *c)
{
    if (t == NULL)
        return 0;
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    if (t->count == t->cap || t->stopping) {
        rc = TG_ELIMIT;
    } else {
        t->ring[(t->head + t->count) % t->cap] = *c;
        t->count++;
        pthread_cond_signal(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
    if (rc != 0)
        atomic_fetch_add_explicit(&stat_dropped, 1, memory_order_relaxed);
    return rc;
}

void tg_thresholds_exhausted(tg_thresholds_t *t, const char *customer_id, const tg_plan_t *plan, const char *metric,
                             int64_t period_start, int64_t period_end, uint64_t included)
{
    if (t == NULL)
        return;
    uint64_t h = key_hash(customer_id, period_start, metric);
    _Atomic uint64_t *slot = &t->exhausted_seen[(h >> 32) & (EXHAUSTED_SLOTS - 1)];
    if (atomic_load_explicit(slot, memory_order_relaxed) == h || atomic_exchange(slot, h) == h)
        return;
    tg_crossing_t c = {.kind = TG_CROSSING_EXHAUSTED,
                       .plan = plan,
                       .period_start = period_start,
                       .period_end = period_end,
                       .used = included,
                       .included = included};
    snprintf(c.customer_id, sizeof(c.customer_id), "%s", customer_id);
    snprintf(c.metric, sizeof(c.metric), "%s", metric);
    if (tg_thresholds_push(t, &c) != 0)
        atomic_store(slot, 0); /* dropped: the next refusal tries again */
}

int tg_thresholds_warmed(tg_thresholds_t *t, tg_accounts_t *accounts, const char *customer_id, int64_t period_start,
                         const char *metric, uint64_t used, int64_t now_s)
{
    if (t == NULL)
        return 0;
    tg_account_t *acct = tg_accounts_find(accounts, customer_id);
    if (acct == NULL)
        return 0;
    int64_t ps, pe;
    tg_account_period(acct, now_s, &ps, &pe);
    const tg_plan_t *plan = tg_account_plan(acct);
    uint64_t included = tg_plan_included(plan, metric);
    if (ps != period_start || included == TG_UNLIMITED)
        return 0; /* a closed period's levels are not news */
    unsigned mask = tg_thresholds_reached(used, included, &plan->notify_thresholds);
    if (mask == 0)
        return 0;
    tg_crossing_t c = {.kind = TG_CROSSING_USAGE,
                       .mask = (uint8_t)mask,
                       .plan = plan,
                       .period_start = ps,
                       .period_end = pe,
                       .used = used,
                       .included = included};
    snprintf(c.customer_id, sizeof(c.customer_id), "%s", customer_id);
    snprintf(c.metric, sizeof(c.metric), "%s", metric);
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    if (t->nbacklog == t->backlog_cap) {
        size_t ncap = t->backlog_cap ? t->backlog_cap * 2 : 64;
        tg_crossing_t *nb = ncap < SIZE_MAX / sizeof(*nb) ? realloc(t->backlog, ncap * sizeof(*nb)) : NULL;
        if (nb == NULL)
            rc = TG_ENOMEM;
        else {
            t->backlog = nb;
            t->backlog_cap = ncap;
        }
    }
    if (rc == 0) {
        t->backlog[t->nbacklog++] = c;
        pthread_cond_signal(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

/* ---- firing ---- */

static json_t *json_time(int64_t t)
{
    char buf[32];
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return json_null();
    return json_string(buf);
}

int tg_thresholds_fire(tg_store_t *st, const tg_mark_t *m, const char *type, json_t *data, int *fired, tg_err_t *err)
{
    *fired = 0;
    char dedupe[TG_ID_MAX + TG_METRIC_MAX + 96];
    /* "threshold:<customer>:<period>:<metric>:<level>" for usage; the kind in front otherwise */
    snprintf(dedupe, sizeof(dedupe), "%s:%s:%" PRId64 ":%s:%" PRId64,
             strcmp(m->kind, TG_MARK_USAGE) == 0 ? "threshold" : m->kind, m->customer_id, m->period_start, m->metric,
             m->level);
    int rc = tg_store_tx_begin(st, err);
    if (rc != 0)
        return rc;
    int inserted = 0;
    rc = tg_store_mark_insert(st, m, &inserted, err);
    if (rc == 0 && inserted) {
        /* the dedupe key as well: an event emitted by a path that wrote no mark (an older
         * version, a repair by hand) is not emitted twice either */
        rc = tg_event_emit(st, type, m->customer_id, data, dedupe, err);
        if (rc == TG_EEXIST) {
            rc = 0;
            inserted = 0;
        }
    }
    if (rc == 0)
        rc = tg_store_tx_commit(st, err);
    else
        tg_store_tx_rollback(st);
    if (rc == 0)
        *fired = inserted;
    atomic_fetch_add(rc != 0 ? &stat_failed : inserted ? &stat_fired : &stat_repeated, 1);
    if (rc == 0 && inserted)
        tg_event_wake(); /* the delivery thread, if one runs, sends it now */
    return rc;
}

/* ---- the notifier's work ---- */

static void log_error(const char *what, const tg_err_t *err)
{
    tg_log(TG_LOG_WARN, "notifications: %s: %s", what, err->msg);
}

static void fire_usage(tg_thresholds_t *t, const tg_crossing_t *c, unsigned mask, uint64_t used, int64_t now)
{
    const tg_thresholds_cfg_t *th = &c->plan->notify_thresholds;
    for (unsigned i = 0; i < th->n; i++) {
        if (!(mask & (1u << i)))
            continue;
        tg_mark_t m = {.period_start = c->period_start, .level = th->pct[i], .created_at = now};
        snprintf(m.customer_id, sizeof(m.customer_id), "%s", c->customer_id);
        snprintf(m.kind, sizeof(m.kind), "%s", TG_MARK_USAGE);
        snprintf(m.metric, sizeof(m.metric), "%s", c->metric);
        json_t *data = json_pack("{s:s,s:I,s:I,s:I,s:s,s:o,s:o}", "metric", c->metric, "threshold_percent",
                                 (json_int_t)th->pct[i], "used", (json_int_t)(used > INT64_MAX ? INT64_MAX : used),
                                 "included", (json_int_t)c->included, "plan", c->plan->id, "period_start",
                                 json_time(c->period_start), "period_end", json_time(c->period_end));
        tg_err_t err = {0};
        int fired = 0;
        if (data == NULL || tg_thresholds_fire(t->st, &m, TG_EVENT_USAGE_THRESHOLD_REACHED, data, &fired, &err) != 0)
            log_error("usage.threshold_reached", &err);
        json_decref(data);
    }
}

static void fire_exhausted(tg_thresholds_t *t, const tg_crossing_t *c, int64_t now)
{
    tg_mark_t m = {.period_start = c->period_start, .level = 100, .created_at = now};
    snprintf(m.customer_id, sizeof(m.customer_id), "%s", c->customer_id);
    snprintf(m.kind, sizeof(m.kind), "%s", TG_MARK_EXHAUSTED);
    snprintf(m.metric, sizeof(m.metric), "%s", c->metric);
    json_t *data = json_pack("{s:s,s:I,s:s,s:o,s:o}", "metric", c->metric, "included", (json_int_t)c->included, "plan",
                             c->plan->id, "period_start", json_time(c->period_start), "resets_at",
                             json_time(c->period_end));
    tg_err_t err = {0};
    int fired = 0;
    if (data == NULL || tg_thresholds_fire(t->st, &m, TG_EVENT_QUOTA_EXHAUSTED, data, &fired, &err) != 0)
        log_error("quota.exhausted", &err);
    json_decref(data);
}

int tg_thresholds_estimate(tg_quota_t *quota, tg_account_t *acct, int64_t now_s, tg_money_t *total,
                           int64_t *period_start, int64_t *period_end, tg_err_t *err)
{
    const tg_plan_t *plan = tg_account_plan(acct);
    const char *id = tg_account_id(acct);
    tg_account_period(acct, now_s, period_start, period_end);
    tg_usage_qty_t usage[32];
    size_t n = 0;
    for (size_t i = 0; i < plan->ncharges && n < sizeof(usage) / sizeof(usage[0]); i++)
        usage[n++] = (tg_usage_qty_t){plan->charges[i].metric,
                                      tg_quota_used(quota, id, *period_start, plan->charges[i].metric)};
    tg_quote_t q = {0};
    int rc = tg_quote_build(plan, usage, n, tg_account_status(acct, now_s) != TG_ACCT_TRIALING, &q, err);
    if (rc == 0)
        *total = q.total;
    tg_quote_free(&q);
    return rc;
}

static void check_budget(tg_thresholds_t *t, const char *customer_id, int64_t budget, int64_t now)
{
    tg_account_t *acct = tg_accounts_find(t->s.accounts, customer_id);
    if (acct == NULL || budget <= 0)
        return;
    tg_money_t total = 0;
    int64_t ps, pe;
    tg_err_t err = {0};
    if (tg_thresholds_estimate(t->s.quota, acct, now, &total, &ps, &pe, &err) != 0) {
        log_error("estimating a bill", &err);
        return;
    }
    if (total <= budget)
        return;
    uint64_t *seen = &t->budget_seen[(key_hash(customer_id, ps, "") >> 32) & (EXHAUSTED_SLOTS - 1)];
    if (*seen == key_hash(customer_id, ps, ""))
        return; /* fired (or found fired) this period */
    const tg_plan_t *plan = tg_account_plan(acct);
    char b[TG_MONEY_FMT_MAX], e[TG_MONEY_FMT_MAX];
    /* a budget has at most the currency's digits (the API refuses more) */
    if (tg_money_format(budget, plan->currency_digits, b, sizeof(b)) < 0 ||
        tg_money_format(total, plan->currency_digits, e, sizeof(e)) < 0)
        return;
    tg_mark_t m = {.period_start = ps, .level = 100, .created_at = now};
    snprintf(m.customer_id, sizeof(m.customer_id), "%s", customer_id);
    snprintf(m.kind, sizeof(m.kind), "%s", TG_MARK_BUDGET);
    json_t *data = json_pack("{s:s,s:s,s:s,s:s,s:o,s:o}", "budget", b, "estimate", e, "currency", plan->currency,
                             "plan", plan->id, "period_start", json_time(ps), "period_end", json_time(pe));
    int fired = 0;
    if (data == NULL || tg_thresholds_fire(t->st, &m, TG_EVENT_BUDGET_EXCEEDED, data, &fired, &err) != 0)
        log_error("budget.exceeded", &err);
    else
        *seen = key_hash(customer_id, ps, "");
    json_decref(data);
}

typedef struct {
    tg_thresholds_t *t;
    int64_t now;
    char last[TG_ID_MAX];
    size_t n;
} budget_pass_t;

static int budget_cb(const char *customer_id, int64_t amount, void *arg)
{
    budget_pass_t *p = arg;
    snprintf(p->last, sizeof(p->last), "%s", customer_id);
    p->n++;
    check_budget(p->t, customer_id, amount, p->now);
    return 0;
}

/* Every customer with a budget, 256 at a time (each page one query). */
static void budget_pass(tg_thresholds_t *t, int64_t now)
{
    budget_pass_t p = {t, now, "", 0};
    for (;;) {
        size_t before = p.n;
        tg_err_t err = {0};
        if (tg_store_budgets_list(t->st, p.last, 256, budget_cb, &p, &err) != 0) {
            log_error("listing budgets", &err);
            return;
        }
        if (p.n - before < 256)
            return;
    }
}

static void process(tg_thresholds_t *t, const tg_crossing_t *c, int64_t now)
{
    switch (c->kind) {
    case TG_CROSSING_USAGE:
        fire_usage(t, c, c->mask, c->used, now);
        break;
    case TG_CROSSING_RECHECK: {
        /* The reservation that crossed was given back; the levels stand if the counter still
         * reaches them (other calls in between), else the next call to reach them fires them. */
        uint64_t used = tg_quota_used(t->s.quota, c->customer_id, c->period_start, c->metric);
        unsigned mask = c->mask & tg_thresholds_reached(used, c->included, &c->plan->notify_thresholds);
        if (mask != 0)
            fire_usage(t, c, mask, used, now);
        break;
    }
    case TG_CROSSING_EXHAUSTED:
        fire_exhausted(t, c, now);
        break;
    default:
        break;
    }
    if (c->kind != TG_CROSSING_EXHAUSTED) { /* usage moved: the budget, if any, now */
        int64_t budget = 0;
        tg_err_t err = {0};
        if (tg_store_budget_get(t->st, c->customer_id, &budget, &err) != 0)
            log_error("reading a budget", &err);
        else if (budget > 0)
            check_budget(t, c->customer_id, budget, now);
    }
}

static void *notifier_main(void *arg)
{
    tg_thresholds_t *t = arg;
    pthread_setname_np(pthread_self(), "tg-thresholds");
    /* Background work: no answer waits for a notification, and at start the levels found reached
     * when the counters were warmed are a backlog of one transaction each (over 70,000 for
     * bench/invoices-under-load.sh's 100,000 customers with usage: 22 s of this thread's CPU in
     * its first 100 s, at normal priority beside the gateway's workers). At the lowest priority it takes the
     * CPU the gateway leaves idle; a crossing's notification waits while the node is saturated. */
    tg_thread_lower_priority_or_warn(TG_NICE_LOWEST, "the thresholds notifier (tg-thresholds)");
    struct timespec next_pass = tg_clock_deadline(CLOCK_MONOTONIC, t->s.budget_interval_ms); /* t->cv's clock */
    tg_crossing_t batch[32];
    size_t unchecked = 0; /* records of the start-up backlog dropped by a stop */
    for (;;) {
        pthread_mutex_lock(&t->mu);
        int timed_out = 0;
        while (t->count == 0 && t->nbacklog == 0 && !t->stopping && !timed_out)
            timed_out = pthread_cond_timedwait(&t->cv, &t->mu, &next_pass) != 0;
        /* A stop drops the rest of the start-up backlog (tg_thresholds_stop says why that is
         * safe); the gateway's queue is bounded and still processed. */
        if (t->stopping) {
            unchecked += t->nbacklog;
            t->nbacklog = 0;
        }
        size_t n = 0;
        while (t->nbacklog > 0 && n < sizeof(batch) / sizeof(batch[0]))
            batch[n++] = t->backlog[--t->nbacklog];
        size_t from_backlog = n;
        while (t->count > 0 && n < sizeof(batch) / sizeof(batch[0])) {
            batch[n++] = t->ring[t->head];
            t->head = (t->head + 1) % t->cap;
            t->count--;
        }
        int stop = t->stopping && t->count == 0;
        pthread_mutex_unlock(&t->mu);
        int64_t now = tg_clock_now_ns() / TG_NS_PER_SEC;
        size_t i = 0;
        for (; i < from_backlog && !atomic_load(&t->stopping); i++) { /* a stop asked meanwhile drops the rest */
            if (t->s.on_backlog_record != NULL)
                t->s.on_backlog_record(t->s.on_backlog_record_arg);
            process(t, &batch[i], now);
        }
        unchecked += from_backlog - i;
        for (i = from_backlog; i < n; i++)
            process(t, &batch[i], now);
        if (stop)
            break;
        if (atomic_load(&t->stopping))
            continue; /* no budget pass: the stop waits for the queue only */
        struct timespec mono;
        clock_gettime(CLOCK_MONOTONIC, &mono);
        if (mono.tv_sec > next_pass.tv_sec || (mono.tv_sec == next_pass.tv_sec && mono.tv_nsec >= next_pass.tv_nsec)) {
            budget_pass(t, now);
            next_pass = tg_clock_deadline(CLOCK_MONOTONIC, t->s.budget_interval_ms);
        }
    }
    if (unchecked > 0)
        tg_log(TG_LOG_INFO,
               "notifications: stopped before checking %zu of the counters found at start with levels "
               "reached: the next start finds them again",
               unchecked);
    return NULL;
}

int tg_thresholds_start(const tg_thresholds_settings_t *s, tg_thresholds_t **out, tg_err_t *err)
{
    *out = NULL;
    tg_thresholds_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory");
    t->s = *s;
    t->cap = s->queue_cap > 0 ? s->queue_cap : 4096;
    if (t->s.budget_interval_ms <= 0)
        t->s.budget_interval_ms = 10000;
    if ((t->ring = calloc(t->cap, sizeof(*t->ring))) == NULL || (t->database = strdup(s->database)) == NULL) {
        free(t->ring);
        free(t);
        return tg_errf(err, TG_ENOMEM, "out of memory");
    }
    t->s.database = t->database;
    int rc = tg_store_open(t->database, &t->st, err);
    if (rc != 0) {
        free(t->database);
        free(t->ring);
        free(t);
        return rc;
    }
    pthread_mutex_init(&t->mu, NULL);
    tg_clock_cond_init(&t->cv);
    if (pthread_create(&t->tid, NULL, notifier_main, t) != 0) {
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        tg_store_close(t->st);
        free(t->database);
        free(t->ring);
        free(t);
        return tg_errf(err, TG_ENOMEM, "could not start the notifier thread");
    }
    *out = t;
    return 0;
}

void tg_thresholds_stop(tg_thresholds_t *t)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    t->stopping = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->tid, NULL);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    tg_store_close(t->st);
    free(t->backlog);
    free(t->database);
    free(t->ring);
    free(t);
}

/* ---- trial.will_end (the scheduler tick) ---- */

typedef struct {
    tg_store_t *st;
    tg_accounts_t *accounts;
    int64_t now;
    int days;
    size_t fired, seen;
    int64_t last_end;
} trials_t;

static int trial_cb(const char *customer_id, int64_t trial_end, void *arg)
{
    trials_t *p = arg;
    p->seen++;
    p->last_end = trial_end;
    tg_mark_t m = {.period_start = trial_end, .level = p->days, .created_at = p->now};
    snprintf(m.customer_id, sizeof(m.customer_id), "%s", customer_id);
    snprintf(m.kind, sizeof(m.kind), "%s", TG_MARK_TRIAL);
    tg_account_t *acct = p->accounts != NULL ? tg_accounts_find(p->accounts, customer_id) : NULL;
    int64_t left = trial_end - p->now;
    json_t *data = json_pack("{s:o,s:I,s:s?}", "trial_end", json_time(trial_end), "days_left",
                             (json_int_t)((left + 86399) / 86400), "plan",
                             acct != NULL ? tg_account_plan(acct)->id : NULL);
    tg_err_t err = {0};
    int fired = 0;
    if (data == NULL || tg_thresholds_fire(p->st, &m, TG_EVENT_TRIAL_WILL_END, data, &fired, &err) != 0)
        log_error("trial.will_end", &err);
    json_decref(data);
    p->fired += (size_t)fired;
    return 0;
}

int tg_thresholds_trials(tg_store_t *st, const tg_config_t *cfg, tg_accounts_t *accounts, int64_t now_s,
                         size_t *fired, tg_err_t *err)
{
    *fired = 0;
    int days = cfg->notifications.trial_will_end_days;
    if (days <= 0)
        return 0;
    trials_t p = {st, accounts, now_s, days, 0, 0, now_s};
    /* pages ordered by trial end; trials ending at the same second as a page's last are few */
    for (int pages = 0; pages < 64; pages++) {
        size_t before = p.seen;
        int64_t after = p.last_end;
        int rc = tg_store_trials_ending(st, after, now_s + (int64_t)days * 86400, 256, trial_cb, &p, err);
        if (rc != 0)
            return rc;
        if (p.seen - before < 256 || p.last_end == after)
            break;
    }
    *fired = p.fired;
    return 0;
}
