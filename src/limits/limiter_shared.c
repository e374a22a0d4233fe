/* limiter_shared.c - see limiter_shared.h.
 *
 * Per key, the request path touches only atomics: balance (cells held), consumed (since the last
 * sync: the lease's size follows it), the policy the balance was leased under, and the credit.
 * The sync thread owns everything else. Cells are never created locally except from the fallback
 * bucket while Redis is away, so every cell spent was granted by one GCRA (the shared one or this
 * node's 1/N share of it), or spent on credit and charged to the shared one afterwards.
 *
 * The credit: a node that holds no lease of a key (its first call here, or its first after the
 * node gave an idle lease back) would refuse the calls that come before its sync thread leases
 * (one round: a round trip, or the rest of an interval), though the shared bucket has room. So
 * while it holds no lease it may spend up to C = max(w, L / 4) cells on credit, as long as the
 * shared bucket had room for them as it last saw it (lease.h, tg_lease_rate_credit). The first
 * round that sees the key closes the credit, charges what was spent (in full: the bucket may owe
 * cells after) and leases; the give-back of an idle lease opens it again. */
#include "limits/limiter_shared.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "limits/lease.h"
#include "limits/limiter_int.h"
#include "metrics/metrics.h"
#include "util/err.h"
#include "util/shardmap.h"

#define KEY_CAP 96
#define CREDIT_OPEN (UINT64_C(1) << 63)
#define NOT_QUEUED INT_MIN /* a call this round did not need (a failed queueing leaves a negative code) */

typedef struct rate_entry {
    tg_lease_entry_t base;
    /* request path and sync thread */
    _Atomic int64_t balance;   /* cells this node may spend */
    _Atomic uint64_t consumed; /* cells spent since the last round */
    _Atomic uint64_t policy;   /* bumped when (T, burst) changes: cells held are then dropped */
    _Atomic int64_t T;         /* ns per cell */
    _Atomic uint64_t burst;
    _Atomic uint64_t max_weight; /* heaviest call seen: a lease is never smaller */
    _Atomic uint64_t credit;     /* CREDIT_OPEN while the credit is open; low bits: cells spent on it */
    _Atomic uint64_t debt;       /* cells spent on credit that a failed round could not charge */
    _Atomic uint64_t fill_seen;  /* cells in the shared bucket at the last reply (may exceed burst) */
    _Atomic int64_t fill_at;     /* when fill_seen was read (monotonic ns) */
    _Atomic int64_t low;         /* below this balance a call kicks the sync thread */
    _Atomic int starved;         /* a call was refused for want of cells since the last round */
    /* sync thread only */
    uint64_t target, seen_policy;
    unsigned idle;
    /* this round's queued calls (slots in the batch, NOT_QUEUED: none) and what they carry */
    int q_merge, q_charge, q_return, q_take, q_giveback;
    uint64_t q_debt, q_s0, q_policy;
    int64_t q_returned;
    int fallback;
    int64_t fb_tat, fb_T;
    uint64_t fb_burst;
    size_t klen;
    char key[KEY_CAP];
} rate_entry_t;

typedef struct shared_limiter {
    tg_limiter_t base;
    tg_cluster_t *cluster;
    tg_shardmap_t *states;
} shared_limiter_t;

static int64_t interval_of(const tg_rate_t *rate)
{
    int64_t T = rate->period_ns / (int64_t)rate->count;
    return T < 1 ? 1 : T;
}

typedef struct {
    const char *key;
    size_t klen;
} key_arg_t;

static void init_entry(tg_lease_entry_t *base, void *arg)
{
    rate_entry_t *e = (rate_entry_t *)base;
    const key_arg_t *k = arg;
    memcpy(e->key, k->key, k->klen);
    e->klen = k->klen;
    e->target = 1;
    atomic_store_explicit(&e->credit, CREDIT_OPEN, memory_order_relaxed); /* published by the entry's state */
}

/* Sets the policy a key is limited under; a change drops what was leased under the old one. */
static void set_policy(rate_entry_t *e, int64_t T, uint64_t burst)
{
    if (atomic_load_explicit(&e->T, memory_order_relaxed) == T &&
        atomic_load_explicit(&e->burst, memory_order_relaxed) == burst)
        return;
    atomic_store(&e->T, T);
    atomic_store(&e->burst, burst);
    atomic_fetch_add(&e->policy, 1);
    atomic_store(&e->balance, 0);
}

static int sync_rate(tg_lease_entry_t *base, const tg_cluster_view_t *v);
static int done_rate(tg_lease_entry_t *base, const tg_cluster_view_t *v);

static int busy_rate(tg_lease_entry_t *base)
{
    rate_entry_t *e = (rate_entry_t *)base;
    return atomic_load(&e->consumed) > 0 || atomic_load(&e->starved) || atomic_load(&e->debt) > 0 ||
           atomic_load(&e->balance) > 0 || (atomic_load(&e->credit) & ~CREDIT_OPEN) > 0;
}

static const tg_lease_kind_t rate_kind = {sync_rate, done_rate, busy_rate, NULL, NULL};

static rate_entry_t *entry(shared_limiter_t *l, const char *key, size_t klen, int create)
{
    if (klen > KEY_CAP)
        return NULL;
    rate_entry_t *e = tg_shardmap_get(l->states, key, klen, create);
    if (e != NULL) {
        key_arg_t k = {key, klen};
        tg_lease_entry_init(&e->base, &rate_kind, init_entry, &k);
    }
    return e;
}

/* Spends weight cells on credit if it is open and the shared bucket, as this node last saw it
 * (drained since at one cell per T), has room for them besides what was spent on it already. */
static int spend_credit(shared_limiter_t *l, rate_entry_t *e, int64_t T, uint64_t burst, uint64_t weight, uint64_t mw,
                        int64_t now_ns)
{
    uint64_t c = atomic_load_explicit(&e->credit, memory_order_acquire);
    if (!(c & CREDIT_OPEN))
        return 0;
    int64_t since = now_ns - atomic_load_explicit(&e->fill_at, memory_order_relaxed);
    uint64_t lease = tg_lease_rate_cap(burst, tg_cluster_live_nodes(l->cluster), mw);
    uint64_t limit = tg_lease_rate_credit(lease, mw, burst, atomic_load_explicit(&e->fill_seen, memory_order_relaxed),
                                          since > 0 ? (uint64_t)(since / T) : 0);
    while ((c & CREDIT_OPEN) && (c & ~CREDIT_OPEN) + weight <= limit) {
        if (atomic_compare_exchange_weak_explicit(&e->credit, &c, c + weight, memory_order_acq_rel,
                                                  memory_order_acquire))
            return 1;
    }
    return 0;
}

static int shared_take(tg_limiter_t *base, const char *key, size_t klen, const tg_rate_t *rate, uint64_t burst,
                       uint64_t weight, int64_t now_ns, tg_limit_result_t *out)
{
    shared_limiter_t *l = (shared_limiter_t *)base;
    if (rate->count == 0) {
        *out = (tg_limit_result_t){1, UINT64_MAX, UINT64_MAX, 0, 0};
        return 0;
    }
    rate_entry_t *e = entry(l, key, klen, 1);
    if (e == NULL)
        return klen > KEY_CAP ? TG_EINVAL : TG_ENOMEM;
    int64_t T = interval_of(rate);
    if (burst == 0)
        burst = 1;
    if (weight == 0)
        weight = 1;
    set_policy(e, T, burst);
    uint64_t mw = atomic_load_explicit(&e->max_weight, memory_order_relaxed);
    while (mw < weight && !atomic_compare_exchange_weak(&e->max_weight, &mw, weight))
        ;

    int allowed = 0;
    int64_t b = atomic_load_explicit(&e->balance, memory_order_relaxed), after = b;
    while (b >= (int64_t)weight) {
        if (atomic_compare_exchange_weak_explicit(&e->balance, &b, b - (int64_t)weight, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            allowed = 1;
            after = b - (int64_t)weight;
            break;
        }
    }
    if (!allowed)
        allowed = spend_credit(l, e, T, burst, weight, mw < weight ? weight : mw, now_ns);
    int64_t low = atomic_load_explicit(&e->low, memory_order_relaxed);
    if (allowed)
        atomic_fetch_add_explicit(&e->consumed, weight, memory_order_relaxed);
    if (!allowed)
        atomic_store_explicit(&e->starved, 1, memory_order_relaxed);
    tg_cluster_touch(l->cluster, &e->base);
    if (after <= low || !allowed) /* running low: an early round (the cluster caps them at 4 an interval) */
        tg_cluster_kick(l->cluster);

    uint64_t fill = atomic_load_explicit(&e->fill_seen, memory_order_relaxed);
    uint64_t rem = fill < burst ? burst - fill : 0;
    if (after > 0 && (uint64_t)after > rem)
        rem = (uint64_t)after;
    out->allowed = allowed;
    out->limit = burst;
    out->remaining = rem > burst ? burst : rem;
    __int128 reset = (__int128)T * fill;
    out->reset_ns = reset > INT64_MAX ? INT64_MAX : (int64_t)reset;
    if (allowed) {
        out->retry_after_ns = 0;
    } else {
        /* The next cells come with a round of the sync thread, once the bucket refilled by one. */
        __int128 wait = (__int128)T * weight;
        int64_t s = tg_cluster_sync_ns(l->cluster);
        out->retry_after_ns = wait > INT64_MAX ? INT64_MAX : wait < s ? s : (int64_t)wait;
    }
    return 0;
}

static void shared_repolicy(tg_limiter_t *base, const char *key, size_t klen, const tg_rate_t *rate, uint64_t burst,
                            int64_t now_ns)
{
    (void)now_ns;
    shared_limiter_t *l = (shared_limiter_t *)base;
    if (rate->count == 0)
        return;
    rate_entry_t *e = entry(l, key, klen, 0);
    if (e != NULL) /* the Redis state converts itself at the next lease */
        set_policy(e, interval_of(rate), burst == 0 ? 1 : burst);
}

/* ---- the sync thread ---- */

/* Whether a top-up of want cells is worth a Redis call now. A key at its limit finds the shared
 * bucket nearly full: taking what trickled in since the last reply would cost a script call for a
 * cell or two, up to 4 times an interval on every node (bench/cluster.sh's hot key: about 15
 * Redis commands per allowed call). So a node waits until the bucket has room, as far as it can
 * tell from its last reply (the fill then, drained at one cell per T since), for half its lease or
 * its heaviest call. The cells wait in the shared bucket, so no allowance is lost; a give-back by
 * another node goes unseen until then, a wait of at most half a lease's refill (L/2 x T). */
static int worth_taking(const rate_entry_t *e, int64_t T, uint64_t burst, uint64_t want, uint64_t mw, int64_t now)
{
    uint64_t fill = atomic_load(&e->fill_seen);
    int64_t since = now - atomic_load(&e->fill_at);
    uint64_t drained = since > 0 ? (uint64_t)(since / T) : 0;
    uint64_t room = burst - (fill < burst ? fill : burst);
    room = drained > burst - room ? burst : room + drained;
    uint64_t need = e->target / 2 > mw ? e->target / 2 : mw;
    return room >= (need < want ? need : want);
}

/* Closes the credit (calls then wait for the lease) and owes what was spent on it beyond the
 * `charged` cells this round charged already. */
static void close_credit(rate_entry_t *e, uint64_t charged)
{
    uint64_t c = atomic_exchange(&e->credit, 0) & ~CREDIT_OPEN;
    if (c > charged)
        atomic_fetch_add(&e->debt, c - charged);
}

static int finish_rate(rate_entry_t *e, uint64_t charged);

static int sync_rate(tg_lease_entry_t *base, const tg_cluster_view_t *v)
{
    rate_entry_t *e = (rate_entry_t *)base;
    int64_t T = atomic_load(&e->T);
    uint64_t burst = atomic_load(&e->burst);
    if (T == 0)
        return 0; /* never used */
    uint64_t policy = atomic_load(&e->policy);
    uint64_t consumed = atomic_exchange(&e->consumed, 0);
    uint64_t mw = atomic_load(&e->max_weight), cap = tg_lease_rate_cap(burst, v->nodes, mw);
    int starved = atomic_exchange(&e->starved, 0);
    /* The credit stays open until this round's lease has landed, so that the calls meanwhile are
     * not refused; what it spent so far (s0) is charged now, the rest at the next round. */
    uint64_t c0 = atomic_load(&e->credit), s0 = c0 & ~CREDIT_OPEN;
    /* Idle means no demand: a key whose calls are all refused (its lease ran dry) is not idle. */
    e->idle = consumed > 0 || starved ? 0 : e->idle + 1;
    e->target = tg_lease_target(starved ? 2 * e->target : consumed, e->target, tg_lease_floor(cap, mw), cap);
    if ((c0 & CREDIT_OPEN) && e->target < tg_lease_rate_credit_cap(cap, mw)) /* the lease takes the credit over */
        e->target = tg_lease_rate_credit_cap(cap, mw);
    atomic_store(&e->low, (int64_t)(e->target / 2));

    if (v->r == NULL) { /* fallback: this node's 1/N share of the limit, starting as full as the shared one */
        if (!e->fallback || policy != e->seen_policy) {
            tg_lease_fallback_rate(T, burst, v->nodes, &e->fb_T, &e->fb_burst);
            if (!e->fallback) { /* the shared fill as last seen, drained since at the full rate */
                uint64_t was = atomic_load(&e->fill_seen);
                uint64_t drained = (uint64_t)((v->now_ns - atomic_load(&e->fill_at)) / T);
                uint64_t share = (was > drained ? was - drained : 0) / v->nodes;
                e->fb_tat = v->now_ns + (int64_t)(share > e->fb_burst ? e->fb_burst : share) * e->fb_T;
            }
            e->fallback = 1;
            e->seen_policy = policy;
        }
        close_credit(e, 0); /* the local bucket grants at once: no wait to bridge */
        uint64_t debt = atomic_exchange(&e->debt, 0);
        if (debt > 0)
            e->fb_tat += (int64_t)debt * e->fb_T;
        int64_t b = atomic_load(&e->balance);
        if (!v->leaving && b < (int64_t)e->target && (b <= atomic_load(&e->low) || b < (int64_t)mw)) {
            uint64_t g = tg_lease_gcra_grant(&e->fb_tat, e->fb_T, e->fb_burst, e->target - (uint64_t)b, v->now_ns);
            if (g > 0 && atomic_load(&e->policy) == policy)
                atomic_fetch_add(&e->balance, (int64_t)g);
        }
        return 1; /* in the rounds until Redis is back and its spending merged */
    }

    /* Redis reachable: queue this round's calls, in the order they must run; done_rate applies
     * their replies, each on its own. */
    int queued = 0;
    e->q_merge = e->q_charge = e->q_return = e->q_take = NOT_QUEUED;
    e->q_giveback = 0;
    e->q_returned = 0;
    if (e->fallback) { /* Redis is back: what this node's bucket holds was spent meanwhile */
        uint64_t spent = tg_lease_gcra_fill(e->fb_tat, e->fb_T, v->now_ns);
        if (spent > 0) {
            e->q_merge = tg_redis_batch_rate(v->batch, e->key, e->klen, TG_LEASE_MERGE, T, burst, spent);
            queued = 1;
        } else {
            e->fallback = 0;
        }
    }
    /* What was spent on credit: charged in full (the bucket may owe cells after). */
    e->q_debt = atomic_exchange(&e->debt, 0);
    e->q_s0 = s0;
    if (e->q_debt + s0 > 0) {
        e->q_charge = tg_redis_batch_rate(v->batch, e->key, e->klen, TG_LEASE_CHARGE, T, burst, e->q_debt + s0);
        queued = 1;
    }
    if (v->leaving || e->idle >= v->idle_ticks) {
        e->q_giveback = 1;
        e->q_returned = atomic_exchange(&e->balance, 0);
        if (e->q_returned > 0) {
            e->q_return =
                tg_redis_batch_rate(v->batch, e->key, e->klen, TG_LEASE_RETURN, T, burst, (uint64_t)e->q_returned);
            queued = 1;
        }
    } else {
        int64_t b = atomic_load(&e->balance);
        if ((b <= atomic_load(&e->low) || b < (int64_t)mw) && b < (int64_t)e->target &&
            worth_taking(e, T, burst, e->target - (uint64_t)b, mw, v->now_ns)) {
            e->q_policy = policy;
            e->q_take =
                tg_redis_batch_rate(v->batch, e->key, e->klen, TG_LEASE_TAKE, T, burst, e->target - (uint64_t)b);
            queued = 1;
        }
    }
    if (queued)
        return TG_LEASE_PENDING;
    return finish_rate(e, 0);
}

/* The end of a round for e: the credit closes, or opens again after a give-back. */
static int finish_rate(rate_entry_t *e, uint64_t charged)
{
    close_credit(e, charged);
    if (!e->q_giveback)
        return 1;
    /* No lease held: the key's next calls here may spend on credit until a round leases,
     * measured against the last reply (or an older view, drained since at the full rate). */
    atomic_store_explicit(&e->credit, CREDIT_OPEN, memory_order_release);
    return 0; /* idle and empty: out of the rounds until a call touches it (round_all asks busy) */
}

static void saw_fill(rate_entry_t *e, uint64_t fill, int64_t now)
{
    atomic_store(&e->fill_seen, fill);
    atomic_store(&e->fill_at, now);
}

static int done_rate(tg_lease_entry_t *base, const tg_cluster_view_t *v)
{
    rate_entry_t *e = (rate_entry_t *)base;
    uint64_t granted = 0, fill = 0, charged = 0;
    int rc;
    if (e->fallback) { /* a merge was due */
        if (tg_redis_batch_result(v->batch, e->q_merge, &granted, &fill) == 0) {
            e->fallback = 0;
            saw_fill(e, fill, v->now_ns);
        } else {
            tg_metrics_count_redis_error(); /* still in fallback: merged next round */
        }
    }
    if (e->q_debt + e->q_s0 > 0) {
        if (tg_redis_batch_result(v->batch, e->q_charge, &granted, &fill) == 0) {
            charged = e->q_s0;
            saw_fill(e, fill, v->now_ns);
        } else { /* charged next round (may count twice if it ran without a reply: errs towards refusing) */
            tg_metrics_count_redis_error();
            atomic_fetch_add(&e->debt, e->q_debt);
        }
    }
    if (e->q_returned > 0) {
        rc = tg_redis_batch_result(v->batch, e->q_return, &granted, &fill);
        if (rc == 0) {
            tg_metrics_count_lease(1);
            saw_fill(e, fill, v->now_ns);
        } else {
            tg_metrics_count_redis_error();
            if (rc != TG_EIO) { /* it did not run: the cells are still this node's */
                atomic_fetch_add(&e->balance, e->q_returned);
                e->q_giveback = 0;
            } /* else it may have run: lost to this node, errs towards refusing */
        }
    }
    if (e->q_take != NOT_QUEUED) {
        rc = tg_redis_batch_result(v->batch, e->q_take, &granted, &fill);
        if (rc == 0) {
            if (granted > 0) {
                tg_metrics_count_lease(0);
                if (atomic_load(&e->policy) == e->q_policy)
                    atomic_fetch_add(&e->balance, (int64_t)granted);
            }
            saw_fill(e, fill, v->now_ns);
        } else {
            tg_metrics_count_redis_error();
        }
    }
    return finish_rate(e, charged);
}

static void shared_free(tg_limiter_t *base)
{
    shared_limiter_t *l = (shared_limiter_t *)base;
    tg_shardmap_free(l->states);
    free(l);
}

static const tg_limiter_ops_t shared_ops = {shared_take, shared_repolicy, shared_free};

tg_limiter_t *tg_limiter_shared_new(tg_cluster_t *c)
{
    shared_limiter_t *l = calloc(1, sizeof(*l));
    if (l == NULL || (l->states = tg_shardmap_new(sizeof(rate_entry_t))) == NULL) {
        free(l);
        return NULL;
    }
    l->base.ops = &shared_ops;
    l->cluster = c;
    return &l->base;
}
