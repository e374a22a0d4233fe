/* quota_shared.c - see quota_shared.h.
 *
 * Per key, the request path touches only atomics: balance (units leased and not spent), pending
 * (units spent beyond a lease, to add to Redis), consumed (for the lease size), the plan's
 * allowance and mode as last seen, the store's floor (seed) and the shared total last seen. The
 * sync thread leases at most once per interval per key: that is what bounds the overshoot of a
 * Redis outage to 2 (N - 1) L (README). */
#include "limits/quota_shared.h"

#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits/lease.h"
#include "limits/quota_int.h"
#include "metrics/metrics.h"
#include "store/store.h"
#include "util/err.h"
#include "util/shardmap.h"

#define KEY_CAP (TG_ID_MAX + 24 + TG_METRIC_MAX)
#define NOT_QUEUED INT_MIN /* a call this round did not need (a failed queueing leaves a negative code) */

typedef struct quota_entry {
    tg_lease_entry_t base;
    /* request path and sync thread */
    _Atomic int64_t balance;   /* units leased, not spent (a release adds back) */
    _Atomic uint64_t pending;  /* units spent without a lease, to add to the shared counter */
    _Atomic uint64_t consumed; /* units spent since the last round */
    _Atomic uint64_t included; /* the plan's allowance, as the last call saw it */
    _Atomic int block;
    _Atomic uint64_t seed;       /* what the store said was used when this node started */
    _Atomic uint64_t total_seen; /* units granted to all nodes at the last round */
    _Atomic uint64_t max_units;
    _Atomic int credit_used;
    _Atomic int64_t low;
    _Atomic int used;    /* a call has touched it (seeding alone does not) */
    _Atomic int starved; /* a call was refused for want of a lease since the last round */
    /* sync thread only */
    uint64_t target, fb_budget, fb_spent;
    uint64_t since_lease; /* units spent since the last lease: the lease follows it */
    int64_t last_lease, last_contact;
    unsigned idle;
    int fallback;
    /* this round's queued calls (slots in the batch, NOT_QUEUED: none) and what they carry */
    int q_fb, q_merge, q_return, q_take, q_giveback;
    uint64_t q_fb_spent, q_pending;
    int64_t q_returned;
    size_t klen;
    char key[KEY_CAP];
} quota_entry_t;

typedef struct shared_quota {
    tg_quota_t base;
    tg_cluster_t *cluster;
    tg_shardmap_t *entries;
} shared_quota_t;

typedef struct {
    const char *key;
    size_t klen;
} key_arg_t;

static void init_entry(tg_lease_entry_t *base, void *arg)
{
    quota_entry_t *e = (quota_entry_t *)base;
    const key_arg_t *k = arg;
    memcpy(e->key, k->key, k->klen);
    e->klen = k->klen;
    e->target = 1;
    e->last_lease = e->last_contact = INT64_MIN / 2;
}

static int sync_quota(tg_lease_entry_t *base, const tg_cluster_view_t *v);
static int done_quota(tg_lease_entry_t *base, const tg_cluster_view_t *v);

static int busy_quota(tg_lease_entry_t *base)
{
    quota_entry_t *e = (quota_entry_t *)base;
    return atomic_load(&e->consumed) > 0 || atomic_load(&e->starved) || atomic_load(&e->pending) > 0 ||
           atomic_load(&e->balance) > 0;
}

static void total_key(tg_lease_entry_t *base, const char **key, size_t *klen)
{
    quota_entry_t *e = (quota_entry_t *)base;
    *key = e->key;
    *klen = e->klen;
}

static void on_total(tg_lease_entry_t *base, int found, uint64_t total, int64_t now_ns)
{
    quota_entry_t *e = (quota_entry_t *)base;
    if (found) /* a counter Redis lost is created again by this key's next lease or merge */
        atomic_store(&e->total_seen, total);
    e->last_contact = now_ns;
}

static const tg_lease_kind_t quota_kind = {sync_quota, done_quota, busy_quota, total_key, on_total};

/* "customer:period:metric", readable in redis-cli. Customer ids and metric names hold no ':'
 * (ids are generated; metrics are identifiers), so the key is unambiguous. */
static quota_entry_t *entry(shared_quota_t *q, const char *customer, int64_t period, const char *metric, int create)
{
    char key[KEY_CAP];
    int n = snprintf(key, sizeof(key), "%.*s:%020" PRId64 ":%.*s", TG_ID_MAX - 1, customer, period, TG_METRIC_MAX - 1,
                     metric);
    if (n < 0 || (size_t)n >= sizeof(key))
        return NULL;
    quota_entry_t *e = tg_shardmap_get(q->entries, key, (size_t)n, create);
    if (e != NULL) {
        key_arg_t k = {key, (size_t)n};
        tg_lease_entry_init(&e->base, &quota_kind, init_entry, &k);
    }
    return e;
}

static uint64_t view_used(quota_entry_t *e)
{
    uint64_t seed = atomic_load(&e->seed), total = atomic_load(&e->total_seen);
    uint64_t u = total > seed ? total : seed, p = atomic_load(&e->pending);
    int64_t b = atomic_load(&e->balance);
    u = u > UINT64_MAX - p ? UINT64_MAX : u + p;
    if (b > 0)
        u = u > (uint64_t)b ? u - (uint64_t)b : 0;
    return u;
}

static int take_balance(quota_entry_t *e, uint64_t units, int64_t *after)
{
    int64_t b = atomic_load_explicit(&e->balance, memory_order_relaxed);
    while (b >= 0 && (uint64_t)b >= units) {
        if (atomic_compare_exchange_weak_explicit(&e->balance, &b, b - (int64_t)units, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            *after = b - (int64_t)units;
            return 1;
        }
    }
    *after = b;
    return 0;
}

static int shared_reserve(tg_quota_t *base, const char *customer_id, int64_t period_start, const char *metric,
                          uint64_t units, uint64_t included, int block, uint64_t *used_after)
{
    shared_quota_t *q = (shared_quota_t *)base;
    if (units > (uint64_t)INT64_MAX)
        return TG_ERANGE;
    quota_entry_t *e = entry(q, customer_id, period_start, metric, 1);
    if (e == NULL)
        return TG_ENOMEM;
    atomic_store_explicit(&e->included, included, memory_order_relaxed);
    atomic_store_explicit(&e->block, block, memory_order_relaxed);
    atomic_store_explicit(&e->used, 1, memory_order_relaxed);
    uint64_t mu = atomic_load_explicit(&e->max_units, memory_order_relaxed);
    while (mu < units && !atomic_compare_exchange_weak(&e->max_units, &mu, units))
        ;
    int64_t after = 0;
    int ok = take_balance(e, units, &after);
    if (!ok && !block) { /* never refused: counted, added to the shared counter in the background */
        atomic_fetch_add(&e->pending, units);
        ok = 1;
    }
    if (!ok && atomic_load(&e->credit_used) == 0) {
        /* A key's first call on this node since it last held a lease (its first here, or its
         * first after the node gave an idle lease back): allowed if what the store and Redis
         * said leaves room for it, rather than refused until the sync thread leases. */
        uint64_t seed = atomic_load(&e->seed), total = atomic_load(&e->total_seen);
        uint64_t known = total > seed ? total : seed;
        if (known <= included && units <= included - known && atomic_exchange(&e->credit_used, 1) == 0) {
            atomic_fetch_add(&e->pending, units);
            ok = 1;
        }
    }
    if (ok)
        atomic_fetch_add_explicit(&e->consumed, units, memory_order_relaxed);
    else
        atomic_store_explicit(&e->starved, 1, memory_order_relaxed);
    tg_cluster_touch(q->cluster, &e->base);
    if (block && (after <= atomic_load_explicit(&e->low, memory_order_relaxed) || !ok))
        tg_cluster_kick(q->cluster);
    if (used_after != NULL)
        *used_after = view_used(e);
    return ok ? 0 : TG_ELIMIT;
}

static void shared_release(tg_quota_t *base, const char *customer_id, int64_t period_start, const char *metric,
                           uint64_t units)
{
    shared_quota_t *q = (shared_quota_t *)base;
    quota_entry_t *e = entry(q, customer_id, period_start, metric, 1);
    if (e != NULL && units <= (uint64_t)INT64_MAX) { /* back into the lease: spent again, or given back idle */
        atomic_fetch_add(&e->balance, (int64_t)units);
        tg_cluster_touch(q->cluster, &e->base);
    }
}

static int shared_add(tg_quota_t *base, const char *customer_id, int64_t period_start, const char *metric,
                      uint64_t units)
{
    shared_quota_t *q = (shared_quota_t *)base;
    quota_entry_t *e = entry(q, customer_id, period_start, metric, 1);
    if (e == NULL)
        return TG_ENOMEM;
    atomic_store_explicit(&e->used, 1, memory_order_relaxed);
    atomic_fetch_add(&e->pending, units);
    atomic_fetch_add_explicit(&e->consumed, units, memory_order_relaxed);
    tg_cluster_touch(q->cluster, &e->base);
    return 0;
}

static int shared_seed(tg_quota_t *base, const char *customer_id, int64_t period_start, const char *metric,
                       uint64_t units)
{
    shared_quota_t *q = (shared_quota_t *)base;
    quota_entry_t *e = entry(q, customer_id, period_start, metric, 1);
    if (e == NULL)
        return TG_ENOMEM;
    uint64_t s = atomic_load(&e->seed), next;
    do {
        next = s > UINT64_MAX - units ? UINT64_MAX : s + units;
    } while (!atomic_compare_exchange_weak(&e->seed, &s, next));
    return 0;
}

static uint64_t shared_used(tg_quota_t *base, const char *customer_id, int64_t period_start, const char *metric)
{
    shared_quota_t *q = (shared_quota_t *)base;
    quota_entry_t *e = entry(q, customer_id, period_start, metric, 0);
    return e != NULL ? view_used(e) : 0;
}

/* ---- the sync thread ---- */

static int sync_quota(tg_lease_entry_t *base, const tg_cluster_view_t *v)
{
    quota_entry_t *e = (quota_entry_t *)base;
    if (!atomic_load(&e->used))
        return 0; /* only seeded: nothing to share yet */
    uint64_t included = atomic_load(&e->included);
    /* Where a counter Redis lost starts again: the most this node knows was used. */
    uint64_t seed = atomic_load(&e->seed), seen = atomic_load(&e->total_seen);
    if (seed < seen)
        seed = seen;
    int block = atomic_load(&e->block);
    uint64_t consumed = atomic_exchange(&e->consumed, 0), mu = atomic_load(&e->max_units);
    int starved = atomic_exchange(&e->starved, 0);
    /* Idle means no demand: a key whose calls are all refused (its lease ran dry) is not idle. */
    e->idle = consumed > 0 || starved ? 0 : e->idle + 1;
    e->since_lease += consumed;
    int may_lease = v->now_ns - e->last_lease >= v->sync_ns;
    if (may_lease) { /* sized on the use of a whole interval (leases come once an interval) */
        /* the floor a sixteenth of the rate limiter's: units a killed node takes with it are lost */
        uint64_t cap = tg_lease_quota_cap(included, v->nodes, mu);
        e->target = tg_lease_target(starved ? 2 * e->target + e->since_lease : e->since_lease, e->target,
                                    tg_lease_floor(cap / 16, mu), cap);
        atomic_store(&e->low, (int64_t)(e->target / 2));
    }
    /* Units of keys that never refuse (bill, throttle) go to Redis every 10 intervals, not every
     * round: their shared total only decides throttling and headers. */
    int defer = !block && !v->leaving && v->now_ns - e->last_contact < 10 * v->sync_ns;
    uint64_t pending = defer ? 0 : atomic_exchange(&e->pending, 0);

    if (v->r == NULL) { /* fallback: a 1/N share of what was left when last seen */
        if (!e->fallback) {
            e->fallback = 1;
            e->fb_budget = tg_lease_fallback_quota(included, atomic_load(&e->total_seen), v->nodes);
            e->fb_spent = 0;
        }
        e->fb_spent += pending;
        e->fb_budget = e->fb_budget > pending ? e->fb_budget - pending : 0;
        int64_t b = atomic_load(&e->balance);
        if (block && !v->leaving && may_lease && b < (int64_t)e->target &&
            (b <= atomic_load(&e->low) || b < (int64_t)mu)) {
            uint64_t g = e->target - (uint64_t)b;
            if (g > e->fb_budget)
                g = e->fb_budget;
            e->fb_budget -= g;
            e->fb_spent += g;
            e->last_lease = v->now_ns;
            e->since_lease = 0;
            if (g > 0)
                atomic_fetch_add(&e->balance, (int64_t)g);
        }
        return 1; /* in the rounds until Redis is back and its spending merged */
    }

    /* Redis reachable: queue this round's calls, in the order they must run; done_quota applies
     * their replies, each on its own. */
    int queued = 0;
    e->q_fb = e->q_merge = e->q_return = e->q_take = NOT_QUEUED;
    e->q_giveback = 0;
    e->q_returned = 0;
    e->q_fb_spent = 0;
    e->q_pending = pending;
    if (e->fallback) { /* Redis is back: add what this node granted itself meanwhile */
        e->q_fb_spent = e->fb_spent;
        if (e->fb_spent > 0) {
            e->q_fb = tg_redis_batch_quota(v->batch, e->key, e->klen, TG_LEASE_MERGE, e->fb_spent, included, seed);
            queued = 1;
        }
    }
    if (pending > 0) {
        e->q_merge = tg_redis_batch_quota(v->batch, e->key, e->klen, TG_LEASE_MERGE, pending, included, seed);
        queued = 1;
    }
    if (v->leaving || e->idle >= v->idle_ticks) {
        e->q_giveback = 1;
        e->q_returned = atomic_exchange(&e->balance, 0);
        if (e->q_returned > 0) {
            e->q_return = tg_redis_batch_quota(v->batch, e->key, e->klen, TG_LEASE_RETURN, (uint64_t)e->q_returned,
                                               included, seed);
            queued = 1;
        }
        if (!queued) {
            e->fallback = 0;
            atomic_store(&e->credit_used, 0); /* no lease held: the next call may go on credit */
            return 0;                         /* idle and empty: out of the rounds until a call touches it */
        }
        return TG_LEASE_PENDING;
    }
    int64_t b = atomic_load(&e->balance);
    int want_lease = block && may_lease && b < (int64_t)e->target && (b <= atomic_load(&e->low) || b < (int64_t)mu);
    /* Spent when last seen: nothing can be granted until another node gives units back (or the
     * plan's allowance grows), which the batched read of the total shows. A key hammered past its
     * allowance on every node would otherwise cost a script call per node per interval. */
    int spent = atomic_load(&e->total_seen) >= included;
    if (want_lease && spent && !queued) {
        e->last_lease = v->now_ns;
        tg_cluster_want_total(v, &e->base);
        e->fallback = 0;
        return 1;
    }
    if (want_lease && !spent) {
        e->q_take =
            tg_redis_batch_quota(v->batch, e->key, e->klen, TG_LEASE_TAKE, e->target - (uint64_t)b, included, seed);
        e->last_lease = v->now_ns;
        e->since_lease = 0;
        queued = 1;
    }
    if (queued)
        return TG_LEASE_PENDING;
    e->fallback = 0; /* nothing spent in it to merge */
    /* A block key in use keeps its view of the shared total at most one interval old: the
     * fallback's share is computed from it. (Other modes never refuse: their view only decides
     * throttling and headers, and is refreshed by their merges.) The read is batched with the
     * other keys' of this round: one MGET in the round's one round trip, where a script call per
     * key cost three Redis commands (bench/cluster.sh: most of Redis' work). */
    if (block && consumed > 0 && v->now_ns - e->last_contact >= v->sync_ns)
        tg_cluster_want_total(v, &e->base);
    return 1;
}

static int done_quota(tg_lease_entry_t *base, const tg_cluster_view_t *v)
{
    quota_entry_t *e = (quota_entry_t *)base;
    uint64_t granted = 0, total = 0;
    int talked = 0, rc;
    if (e->q_fb_spent > 0) {
        if (tg_redis_batch_result(v->batch, e->q_fb, &granted, &total) == 0) {
            e->fallback = 0;
            e->fb_spent = 0;
            atomic_store(&e->total_seen, total);
            talked = 1;
        } else {
            tg_metrics_count_redis_error(); /* still in fallback: merged next round */
        }
    } else {
        e->fallback = 0;
    }
    if (e->q_pending > 0) {
        if (tg_redis_batch_result(v->batch, e->q_merge, &granted, &total) == 0) {
            atomic_store(&e->total_seen, total);
            talked = 1;
        } else { /* merged next round (may count twice if it ran without a reply: errs towards refusing) */
            tg_metrics_count_redis_error();
            atomic_fetch_add(&e->pending, e->q_pending);
        }
    }
    if (e->q_returned > 0) {
        rc = tg_redis_batch_result(v->batch, e->q_return, &granted, &total);
        if (rc == 0) {
            tg_metrics_count_lease(1);
            atomic_store(&e->total_seen, total);
            talked = 1;
        } else {
            tg_metrics_count_redis_error();
            if (rc != TG_EIO) { /* it did not run: the units are still this node's */
                atomic_fetch_add(&e->balance, e->q_returned);
                e->q_giveback = 0;
            } /* else it may have run: lost to this node, errs towards refusing */
        }
    }
    if (e->q_take != NOT_QUEUED) {
        if (tg_redis_batch_result(v->batch, e->q_take, &granted, &total) == 0) {
            if (granted > 0) {
                tg_metrics_count_lease(0);
                atomic_fetch_add(&e->balance, (int64_t)granted);
            }
            atomic_store(&e->total_seen, total);
            talked = 1;
        } else {
            tg_metrics_count_redis_error();
        }
    }
    if (talked)
        e->last_contact = v->now_ns;
    if (!e->q_giveback)
        return 1;
    /* No lease held: the key's next call here may go on credit, checked against the total just
     * read (one call per node, as a cold key's: the bound stays allowance + N u). */
    atomic_store(&e->credit_used, 0);
    return 0;
}

static void shared_free(tg_quota_t *base)
{
    shared_quota_t *q = (shared_quota_t *)base;
    tg_shardmap_free(q->entries);
    free(q);
}

static const tg_quota_ops_t shared_ops = {shared_reserve, shared_release, shared_add,
                                          shared_seed,    shared_used,    shared_free};

tg_quota_t *tg_quota_shared_new(tg_cluster_t *c)
{
    shared_quota_t *q = calloc(1, sizeof(*q));
    if (q == NULL || (q->entries = tg_shardmap_new(sizeof(quota_entry_t))) == NULL) {
        free(q);
        return NULL;
    }
    q->base.ops = &shared_ops;
    q->cluster = c;
    return &q->base;
}
