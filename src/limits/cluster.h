/* cluster.h - this node's membership of a cluster sharing limits through Redis, and the one
 * background thread that talks to Redis for the shared limiter and quota.
 *
 * Without cluster.redis there is no cluster and the local limiter and quota decide alone. With
 * it, main starts a cluster (which registers this node in Redis, refusing a node id another live
 * node holds), then makes the shared limiter and quota on it (limiter_shared.h, quota_shared.h).
 * Every cluster.sync_ms (or sooner, when a key runs low and kicks it) the sync thread walks the
 * per-key states in use; a key costs Redis something only when its lease runs below its low-water
 * mark (a script call to top it up), when it goes idle (one to give it back) or when it has spent
 * without a lease (one to merge or charge), and the `block` quotas' views of their shared totals
 * are read for all keys at once, one MGET per 256 keys. All of a round's script calls and reads
 * go to Redis pipelined: one round trip per round, however many keys need Redis (a second only
 * when Redis lost the scripts), besides the node's claim, renewed once a second. The request path
 * only reads and CASes the local balances: it never waits for Redis.
 *
 * Redis unreachable: the thread keeps going without it (fallback). Each key then draws from a
 * local budget of its limit divided by the live nodes last seen (lease.h), the metric
 * tollgate_cluster_fallback is 1 and the log says so once. When Redis answers again each key
 * hands over what it spent meanwhile before leasing anew, so the shared state resumes where the
 * nodes left it: no burst. */
#ifndef TG_CLUSTER_H
#define TG_CLUSTER_H

#include <stdint.h>

#include "limits/redis_lease.h"
#include "util/err.h"

typedef struct tg_cluster tg_cluster_t;

typedef struct tg_cluster_settings {
    const char *redis_url; /* cluster.redis (copied) */
    const char *node_id;   /* cluster.node_id (copied) */
    int sync_ms;           /* cluster.sync_ms */
    /* Called on the sync thread with one line when the fallback starts or ends (and on other
     * Redis trouble worth a line); NULL: nothing is said. */
    void (*log)(void *arg, const char *line);
    void *log_arg;
} tg_cluster_settings_t;

/* Connects, claims the node id and starts the sync thread. On success *out owns the cluster.
 * Returns 0; TG_EIO when Redis cannot be reached (a node that cannot check that its id is unique
 * does not start); TG_EEXIST when another live node holds the id; TG_ENOMEM. err says which. */
int tg_cluster_start(const tg_cluster_settings_t *s, tg_cluster_t **out, tg_err_t *err);

/* Stops the sync thread after one last round that gives every unspent lease back and removes
 * this node from the live nodes. Registered states stay valid (their owners free them after).
 * Safe to call twice. */
void tg_cluster_stop(tg_cluster_t *c);
void tg_cluster_free(tg_cluster_t *c);

/* 1 while Redis is unreachable and limits are split locally. Any thread. */
int tg_cluster_in_fallback(const tg_cluster_t *c);
/* The live nodes last seen in Redis (1 or more). Any thread. */
uint32_t tg_cluster_live_nodes(const tg_cluster_t *c);
/* Keys in the sync thread's rounds after its last one (keys in use on this node). Any thread. */
uint64_t tg_cluster_active_keys(const tg_cluster_t *c);
/* The sync interval, ns. */
int64_t tg_cluster_sync_ns(const tg_cluster_t *c);

/* ---- for the shared backends (limiter_shared.c, quota_shared.c) ---- */

typedef struct tg_lease_entry tg_lease_entry_t;

/* A sync step that wants the shared quota total of its key read this round adds its entry here
 * (tg_cluster_want_total); the round reads them all in one round trip afterwards. */
typedef struct tg_total_batch {
    tg_lease_entry_t *head;
} tg_total_batch_t;

/* What a sync step knows. r and batch are NULL while Redis is unreachable. */
typedef struct tg_cluster_view {
    tg_redis_t *r;
    /* The round's script calls: a step queues its own (tg_redis_batch_rate / _quota), keeps their
     * slots, returns TG_LEASE_PENDING, and gets the results in its kind's done(). */
    tg_redis_batch_t *batch;
    int64_t now_ns; /* monotonic */
    int64_t sync_ns;
    uint32_t nodes;      /* live nodes last seen, >= 1 */
    int leaving;         /* the last round: give everything back */
    unsigned idle_ticks; /* rounds without use after which a lease is given back (about 1 s) */
    tg_total_batch_t *totals;
} tg_cluster_view_t;

/* A sync step that queued script calls: its done() decides once their replies are in. */
#define TG_LEASE_PENDING 2

typedef struct tg_lease_kind {
    /* One round for e on the sync thread. Returns 1 to be looked at again next round, 0 when e
     * holds nothing and needs nothing (it leaves the rounds until a call touches it again), or
     * TG_LEASE_PENDING when it queued calls in v->batch (only with Redis reachable). */
    int (*sync)(tg_lease_entry_t *e, const tg_cluster_view_t *v);
    /* After the round's batch ran (all its replies read, or the connection failed: then
     * v->r is NULL and the calls without a reply say TG_EIO), for each entry whose sync returned
     * TG_LEASE_PENDING: applies the results, each call's on its own. Returns 1 or 0 as sync. */
    int (*done)(tg_lease_entry_t *e, const tg_cluster_view_t *v);
    /* Whether a call left something for the sync thread since its last round (spent, refused,
     * owed). Any thread. */
    int (*busy)(tg_lease_entry_t *e);
    /* Only for kinds that call tg_cluster_want_total (else NULL): e's key as tg_redis_quota names
     * it, and the total read for it (found 0: Redis has no counter for it; now_ns of the round).
     * Called on the sync thread after the round's sync steps. */
    void (*total_key)(tg_lease_entry_t *e, const char **key, size_t *klen);
    void (*on_total)(tg_lease_entry_t *e, int found, uint64_t total, int64_t now_ns);
} tg_lease_kind_t;

/* The first member of a shared backend's per-key state (a shardmap value: zeroed at first, never
 * freed before the cluster stops). The sync thread's rounds visit only the keys in use: a call
 * touches its key, which puts it on a lock-free list the thread takes at its next round; the key
 * stays in the rounds while it holds or owes anything, and leaves when idle and empty. So the
 * cost of a round follows the keys in use, not the customers known. */
struct tg_lease_entry {
    const tg_lease_kind_t *kind;
    _Atomic int state;   /* 0 new, 1 being initialised, 2 ready */
    _Atomic int touched; /* on the touched list */
    _Atomic int active;  /* in the sync thread's rounds */
    tg_lease_entry_t *_Atomic next_touched;
    tg_lease_entry_t *next_active;  /* sync thread only */
    tg_lease_entry_t *next_total;   /* sync thread only: in the round's tg_total_batch_t */
    tg_lease_entry_t *next_pending; /* sync thread only: waiting for the round's replies */
    int leave;                      /* sync thread only: done() let it go */
};

/* Initialises e once: the first caller sets kind and runs init(e, arg) (copying the key in);
 * others wait the few instructions that takes. Thread-safe, lock-free. */
void tg_lease_entry_init(tg_lease_entry_t *e, const tg_lease_kind_t *kind, void (*init)(tg_lease_entry_t *e, void *arg),
                         void *arg);

/* Makes sure the sync thread looks at e at its next round: nothing when e is in the rounds
 * already, else one CAS and a push. Any thread; call it after updating e's atomics. */
void tg_cluster_touch(tg_cluster_t *c, tg_lease_entry_t *e);

/* From a sync step, with Redis reachable: reads e's shared quota total at the end of this round,
 * with the other keys' in one round trip (e->kind->on_total gets it). Once per round per entry. */
void tg_cluster_want_total(const tg_cluster_view_t *v, tg_lease_entry_t *e);

/* Wakes the sync thread for an early round (a key ran low). Cheap; any thread. */
void tg_cluster_kick(tg_cluster_t *c);

#endif
