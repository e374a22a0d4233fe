/* cluster.c - see cluster.h.
 *
 * One thread, one Redis connection. A round: connect if needed (at most every 250 ms while Redis
 * is away), renew this node's claim about once a second (it expires after three seconds without
 * one, and the live-node count comes back with it), then one sync step per key in use, each of
 * which queues the script calls it needs; then the batch of them all and the reads of the quota
 * totals the steps asked for, pipelined: one round trip; then each step's done() with its
 * results. An error reply fails that call only; a connection that fails drops (the keys whose
 * replies did not come treat them as failed, and go on in fallback next round). The fallback ends
 * at the end of the first round in which every key reached Redis. */
#include "limits/cluster.h"

#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics/metrics.h"
#include "util/clock.h"
#include "util/log.h"

#define BEAT_NS (1000 * 1000000LL) /* renew the node's claim this often */
#define NODE_TTL_MS 3000           /* a node not renewed this long is not live */
#define RECONNECT_NS (250 * 1000000LL)
#define IDLE_NS (1000 * 1000000LL) /* a lease unused this long goes back */

struct tg_cluster {
    char *url, *node_id;
    char token[33];
    int64_t sync_ns;
    int timeout_ms;
    void (*log)(void *arg, const char *line);
    void *log_arg;

    pthread_t thread;
    int started;
    pthread_mutex_t mu; /* guards stop (and pairs with cond) */
    pthread_cond_t cond;
    int stop;
    _Atomic int kicked;
    tg_lease_entry_t *_Atomic touched; /* a Treiber stack: calls push, the sync thread takes it all */
    tg_lease_entry_t *active;          /* the sync thread's rounds */

    _Atomic int fallback;
    _Atomic uint32_t nodes;
    _Atomic uint64_t nactive;
    tg_redis_t *r;           /* the sync thread's */
    tg_redis_batch_t *batch; /* the sync thread's: a round's script calls */
    uint64_t trips_seen;
};

static void say(tg_cluster_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(tg_cluster_t *c, const char *fmt, ...)
{
    if (c->log == NULL)
        return;
    char line[TG_ERR_MAX + 200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    c->log(c->log_arg, line);
}

int tg_cluster_in_fallback(const tg_cluster_t *c)
{
    return atomic_load_explicit(&c->fallback, memory_order_relaxed);
}

uint32_t tg_cluster_live_nodes(const tg_cluster_t *c)
{
    uint32_t n = atomic_load_explicit(&c->nodes, memory_order_relaxed);
    return n == 0 ? 1 : n;
}

uint64_t tg_cluster_active_keys(const tg_cluster_t *c)
{
    return atomic_load_explicit(&c->nactive, memory_order_relaxed);
}

int64_t tg_cluster_sync_ns(const tg_cluster_t *c)
{
    return c->sync_ns;
}

void tg_cluster_kick(tg_cluster_t *c)
{
    /* Only the first kick of a round signals: the others find the flag set, by a plain load
     * first, so that worker threads kicking a hot key do not fight over the flag's cache line. */
    if (atomic_load_explicit(&c->kicked, memory_order_relaxed) == 0 &&
        atomic_exchange_explicit(&c->kicked, 1, memory_order_acq_rel) == 0)
        pthread_cond_signal(&c->cond);
}

void tg_lease_entry_init(tg_lease_entry_t *e, const tg_lease_kind_t *kind, void (*init)(tg_lease_entry_t *e, void *arg),
                         void *arg)
{
    if (atomic_load_explicit(&e->state, memory_order_acquire) == 2)
        return;
    int expect = 0;
    if (atomic_compare_exchange_strong(&e->state, &expect, 1)) {
        e->kind = kind;
        if (init != NULL)
            init(e, arg);
        atomic_store_explicit(&e->state, 2, memory_order_release);
        return;
    }
    while (atomic_load_explicit(&e->state, memory_order_acquire) != 2) /* another thread copies the key in */
        sched_yield();
}

void tg_cluster_touch(tg_cluster_t *c, tg_lease_entry_t *e)
{
    /* seq_cst: pairs with the sync thread clearing active and then asking busy() (leave_rounds) */
    if (atomic_load(&e->active) || atomic_load(&e->touched) || atomic_exchange(&e->touched, 1))
        return;
    tg_lease_entry_t *head = atomic_load(&c->touched);
    do {
        atomic_store_explicit(&e->next_touched, head, memory_order_relaxed);
    } while (!atomic_compare_exchange_weak(&c->touched, &head, e));
}

/* Moves the touched keys into the rounds (the stack is taken whole: no ABA). */
static void take_touched(tg_cluster_t *c)
{
    tg_lease_entry_t *e = atomic_exchange(&c->touched, NULL);
    while (e != NULL) {
        tg_lease_entry_t *next = atomic_load_explicit(&e->next_touched, memory_order_relaxed);
        atomic_store(&e->touched, 0);
        if (!atomic_load(&e->active)) {
            atomic_store(&e->active, 1);
            e->next_active = c->active;
            c->active = e;
        }
        e = next;
    }
}

static void set_fallback(tg_cluster_t *c, int on, const char *why)
{
    if (atomic_exchange(&c->fallback, on) == on)
        return;
    uint32_t n = tg_cluster_live_nodes(c);
    tg_metrics_cluster_state(on, n);
    if (on)
        say(c,
            "cluster: Redis unreachable (%s); limits are split locally: this node enforces each limit / %u "
            "(the live nodes it last saw) until Redis answers again",
            why, n);
    else
        say(c, "cluster: Redis answers again; limits are shared across the %u live nodes again", n);
}

/* Adds the connection's round trips since the last call to the metric. */
static void count_trips(tg_cluster_t *c)
{
    uint64_t t = tg_redis_round_trips(c->r);
    if (t > c->trips_seen)
        tg_metrics_count_redis_trips(t - c->trips_seen);
    c->trips_seen = t;
}

static void drop(tg_cluster_t *c, const tg_err_t *err)
{
    count_trips(c);
    c->trips_seen = 0;
    tg_metrics_count_redis_error();
    tg_redis_close(c->r);
    c->r = NULL;
    set_fallback(c, 1, err->msg);
}

void tg_cluster_want_total(const tg_cluster_view_t *v, tg_lease_entry_t *e)
{
    e->next_total = v->totals->head;
    v->totals->head = e;
}

/* Sends the round's script calls and the reads of the totals its steps asked for, in one round
 * trip, and hands the totals out. Returns 0, or TG_EIO when the connection failed (the entries
 * keep their older views; the calls without a reply report TG_EIO). */
static int run_batch(tg_cluster_t *c, tg_total_batch_t *b, int64_t now, tg_err_t *err)
{
    size_t n = 0;
    for (tg_lease_entry_t *e = b->head; e != NULL; e = e->next_total)
        n++;
    if (n == 0 && tg_redis_batch_size(c->batch) == 0)
        return 0;
    const char **keys = NULL;
    size_t *lens = NULL;
    uint64_t *totals = NULL;
    int *found = NULL;
    if (n > 0) {
        keys = malloc(n * sizeof(*keys));
        lens = malloc(n * sizeof(*lens));
        totals = malloc(n * sizeof(*totals));
        found = malloc(n * sizeof(*found));
        if (keys == NULL || lens == NULL || totals == NULL || found == NULL)
            n = 0; /* out of memory: the views are read next round, the calls go now */
    }
    size_t i = 0;
    for (tg_lease_entry_t *e = b->head; n > 0 && e != NULL; e = e->next_total, i++)
        e->kind->total_key(e, &keys[i], &lens[i]);
    int rc = tg_redis_batch_run(c->r, c->batch, keys, lens, n, totals, found, err);
    i = 0;
    for (tg_lease_entry_t *e = b->head; rc == 0 && n > 0 && e != NULL; e = e->next_total, i++)
        e->kind->on_total(e, found[i], totals[i], now);
    free(keys), free(lens), free(totals), free(found);
    b->head = NULL;
    /* Only a connection failure drops it; anything else (a key too long, which the quota's key
     * cap rules out) leaves the views as they were, to be read next round. */
    return rc == TG_EIO ? TG_EIO : 0;
}

/* Takes e out of the rounds unless a call updated it meanwhile: one that still saw it active did
 * not push it, so ask after clearing the flag (seq_cst both sides) and keep it if one did.
 * Returns 1 when it left. */
static int leave_rounds(tg_lease_entry_t *e)
{
    atomic_store(&e->active, 0);
    if (!e->kind->busy(e))
        return 1;
    atomic_store(&e->active, 1);
    return 0;
}

/* One round over the keys in use. Returns 1 when every key reached Redis. */
static int round_all(tg_cluster_t *c, int leaving, int64_t now)
{
    take_touched(c);
    tg_total_batch_t totals = {NULL};
    tg_redis_batch_reset(c->batch);
    tg_cluster_view_t v = {c->r,
                           c->r != NULL ? c->batch : NULL,
                           now,
                           c->sync_ns,
                           tg_cluster_live_nodes(c),
                           leaving,
                           (unsigned)(IDLE_NS / c->sync_ns < 2 ? 2 : IDLE_NS / c->sync_ns),
                           &totals};
    int all = c->r != NULL, some_leave = 0;
    uint64_t n = 0;
    tg_lease_entry_t *pending = NULL;
    tg_lease_entry_t **link = &c->active;
    while (*link != NULL) {
        tg_lease_entry_t *e = *link;
        int rc = e->kind->sync(e, &v);
        if (rc == TG_LEASE_PENDING) { /* stays until its done() says */
            e->next_pending = pending;
            pending = e;
        } else if (rc == 0 && leave_rounds(e)) {
            *link = e->next_active;
            continue;
        }
        link = &e->next_active;
        n++;
    }
    if (v.r != NULL) {
        tg_err_t err = {0};
        if (run_batch(c, &totals, now, &err) != 0) {
            drop(c, &err);
            v.r = NULL;
            all = 0;
        }
    }
    for (tg_lease_entry_t *e = pending; e != NULL; e = e->next_pending) {
        e->leave = e->kind->done(e, &v) == 0;
        some_leave |= e->leave;
    }
    for (link = &c->active; some_leave && *link != NULL;) {
        tg_lease_entry_t *e = *link;
        if (e->leave) {
            e->leave = 0;
            if (leave_rounds(e)) {
                *link = e->next_active;
                n--;
                continue;
            }
        }
        link = &e->next_active;
    }
    if (c->r != NULL)
        count_trips(c);
    atomic_store_explicit(&c->nactive, n, memory_order_relaxed);
    tg_metrics_cluster_keys(n);
    return all;
}

static void *sync_main(void *arg)
{
    tg_cluster_t *c = arg;
    int64_t next_beat = 0, next_connect = 0, last_round = 0;
    int id_taken = 0; /* said once, not every second */
    for (;;) {
        /* A round every interval, or sooner when kicked, but at most 4 per interval: a storm
         * of kicks (keys running dry at their limit) must not turn into a Redis storm. */
        pthread_mutex_lock(&c->mu);
        int64_t now;
        while (!c->stop) {
            now = tg_clock_mono_ns();
            int64_t due = last_round + (atomic_load(&c->kicked) ? c->sync_ns / 4 : c->sync_ns);
            if (now >= due)
                break;
            struct timespec ts = tg_clock_deadline_ns(CLOCK_MONOTONIC, due - now); /* c->cond's clock */
            pthread_cond_timedwait(&c->cond, &c->mu, &ts);
        }
        int stopping = c->stop;
        pthread_mutex_unlock(&c->mu);
        now = tg_clock_mono_ns();
        atomic_store(&c->kicked, 0);
        last_round = now;

        tg_err_t err = {0};
        if (c->r == NULL && now >= next_connect) {
            next_connect = now + RECONNECT_NS;
            if (tg_redis_connect(c->url, c->timeout_ms, &c->r, &err) != 0) {
                drop(c, &err);
            } else {
                next_beat = 0;
            }
        }
        if (c->r != NULL && now >= next_beat) {
            uint32_t live = 1;
            int rc = tg_redis_node(c->r, c->node_id, c->token, NODE_TTL_MS, 0, &live, &err);
            if (rc == TG_EEXIST) { /* our claim expired (Redis restarted, or we stalled) and was taken */
                if (!id_taken)
                    say(c, "cluster: %s (it expired while this node could not renew it)", err.msg);
                id_taken = 1;
                rc = 0;
            } else if (rc == 0) {
                id_taken = 0;
            }
            if (rc != 0) {
                drop(c, &err);
            } else {
                next_beat = now + BEAT_NS;
                atomic_store(&c->nodes, live);
                tg_metrics_cluster_state(tg_cluster_in_fallback(c), live);
            }
        }
        int all = round_all(c, stopping, now);
        if (all)
            set_fallback(c, 0, NULL);
        if (stopping) {
            if (c->r != NULL)
                tg_redis_node(c->r, c->node_id, c->token, NODE_TTL_MS, 1, NULL, &err);
            break;
        }
    }
    return NULL;
}

int tg_cluster_start(const tg_cluster_settings_t *s, tg_cluster_t **out, tg_err_t *err)
{
    *out = NULL;
    if (sodium_init() < 0)
        return tg_errf(err, TG_EIO, "libsodium failed to initialise");
    tg_cluster_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory");
    pthread_mutex_init(&c->mu, NULL);
    tg_clock_cond_init(&c->cond);
    if ((c->url = strdup(s->redis_url)) == NULL || (c->node_id = strdup(s->node_id)) == NULL ||
        (c->batch = tg_redis_batch_new()) == NULL) {
        tg_cluster_free(c);
        return tg_errf(err, TG_ENOMEM, "out of memory");
    }
    c->sync_ns = (int64_t)(s->sync_ms > 0 ? s->sync_ms : 20) * 1000000LL;
    /* A Redis call may take a few intervals, never long enough to stall the fallback for long. */
    c->timeout_ms = s->sync_ms * 5 < 100 ? 100 : s->sync_ms * 5 > 1000 ? 1000 : s->sync_ms * 5;
    c->log = s->log;
    c->log_arg = s->log_arg;
    uint8_t rnd[16];
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(c->token, sizeof(c->token), rnd, sizeof(rnd));

    int rc = tg_redis_connect(c->url, c->timeout_ms < 1000 ? 1000 : c->timeout_ms, &c->r, err);
    uint32_t live = 1;
    if (rc == 0)
        rc = tg_redis_node(c->r, c->node_id, c->token, NODE_TTL_MS, 0, &live, err);
    /* A node restarted at once after a crash (kill -9, a supervisor's restart) finds its own
     * last claim, which nobody renews any more: it expires within the TTL. Only a claim still
     * renewed after that belongs to another live node. */
    if (rc == TG_EEXIST) {
        tg_log(TG_LOG_WARN, "cluster.node_id \"%s\" is claimed; waiting up to %d ms for a dead node's claim to "
                        "expire", c->node_id, NODE_TTL_MS + 1000);
        int64_t until = tg_clock_mono_ns() + (int64_t)(NODE_TTL_MS + 1000) * 1000000;
        while (rc == TG_EEXIST && tg_clock_mono_ns() < until) {
            struct timespec ts = {0, 200 * 1000000L};
            nanosleep(&ts, NULL);
            rc = tg_redis_node(c->r, c->node_id, c->token, NODE_TTL_MS, 0, &live, err);
        }
    }
    if (rc != 0) {
        tg_cluster_free(c);
        return rc;
    }
    atomic_store(&c->nodes, live);
    tg_metrics_cluster_state(0, live);
    if (pthread_create(&c->thread, NULL, sync_main, c) != 0) {
        tg_cluster_free(c);
        return tg_errf(err, TG_EIO, "cannot start the cluster sync thread");
    }
    c->started = 1;
    *out = c;
    return 0;
}

void tg_cluster_stop(tg_cluster_t *c)
{
    if (c == NULL || !c->started)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    c->started = 0;
}

void tg_cluster_free(tg_cluster_t *c)
{
    if (c == NULL)
        return;
    tg_cluster_stop(c);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cond);
    tg_redis_close(c->r);
    tg_redis_batch_free(c->batch);
    if (c->url != NULL)
        sodium_memzero(c->url, strlen(c->url));
    free(c->url);
    free(c->node_id);
    free(c);
}
