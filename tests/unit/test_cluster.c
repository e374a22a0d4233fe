/* test_cluster.c - limits shared across nodes, against a real Redis: three simulated nodes in one
 * process (each its own cluster membership, Redis connection, sync thread, shared limiter and
 * quota) hammer one customer's key from three threads.
 *
 * Needs TG_TEST_REDIS_URL (scripts/run-tests.sh starts a throwaway redis-server with
 * scripts/redis-test.sh and sets it); the tests that stop and restart Redis mid-load also need
 * TG_TEST_REDIS_DIR, the directory that server was started with. Without them the tests skip.
 * Every test uses keys of its own (the process id in them), so a shared server is fine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis.h>

#include "limits/cluster.h"
#include "limits/lease.h"
#include "limits/limiter_shared.h"
#include "limits/quota_shared.h"
#include "metrics/metrics.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/redis_url.h"

#define NODES 3
#define MS INT64_C(1000000)
#define SEC INT64_C(1000000000)
#define SYNC_MS 20

static const char *redis_url, *redis_dir;
static _Atomic int logged_down, logged_back;

static void on_log(void *arg, const char *line)
{
    (void)arg;
    if (strstr(line, "unreachable") != NULL)
        atomic_fetch_add(&logged_down, 1);
    if (strstr(line, "answers again") != NULL)
        atomic_fetch_add(&logged_back, 1);
}

typedef struct node {
    tg_cluster_t *c;
    tg_limiter_t *l;
    tg_quota_t *q;
} node_t;

static int start_node(node_t *n, const char *id, tg_err_t *err)
{
    memset(n, 0, sizeof(*n));
    tg_cluster_settings_t s = {redis_url, id, SYNC_MS, on_log, NULL};
    int rc = tg_cluster_start(&s, &n->c, err);
    if (rc != 0)
        return rc;
    n->l = tg_limiter_shared_new(n->c);
    n->q = tg_quota_shared_new(n->c);
    assert_non_null(n->l);
    assert_non_null(n->q);
    return 0;
}

static void stop_node(node_t *n)
{
    tg_cluster_stop(n->c);
    tg_limiter_free(n->l);
    tg_quota_free(n->q);
    tg_cluster_free(n->c);
}

static void start_nodes(node_t nodes[NODES], const char *test)
{
    for (int i = 0; i < NODES; i++) {
        char id[64];
        snprintf(id, sizeof(id), "unit-%s-%d-%d", test, (int)getpid(), i);
        tg_err_t err = {0};
        if (start_node(&nodes[i], id, &err) != 0)
            fail_msg("node %d: %s", i, err.msg);
    }
    /* each node learns the others at its next heartbeat (about a second): wait for it */
    for (int spins = 0; spins < 400; spins++) {
        int all = 1;
        for (int i = 0; i < NODES; i++)
            all &= tg_cluster_live_nodes(nodes[i].c) >= NODES;
        if (all)
            return;
        struct timespec ts = {0, 10 * MS};
        nanosleep(&ts, NULL); /* poll interval of a bounded wait */
    }
    fail_msg("the nodes never saw each other");
}

static int skip_without_redis(void)
{
    if (redis_url == NULL || redis_url[0] == '\0') {
        print_message("TG_TEST_REDIS_URL is not set: skipped (scripts/run-tests.sh unit sets it)\n");
        return 1;
    }
    return 0;
}

/* ---- hammering ---- */

typedef struct hammer {
    node_t *node;
    char key[64];
    tg_rate_t rate;
    uint64_t burst;
    int quota; /* 1: reserve quota units instead of rate cells */
    uint64_t included;
    _Atomic int *stop;
    _Atomic uint64_t allowed, denied, run_of_denials;
    pthread_t thread;
} hammer_t;

static void *hammer_main(void *arg)
{
    hammer_t *h = arg;
    struct timespec pace = {0, 20000}; /* 20 us between calls: a client, not a synchronisation */
    while (!atomic_load(h->stop)) {
        int ok;
        if (h->quota) {
            ok = tg_quota_reserve(h->node->q, h->key, 1700000000, "api_calls", 1, h->included, 1, NULL) == 0;
        } else {
            tg_limit_result_t r;
            assert_int_equal(
                tg_limiter_take(h->node->l, h->key, strlen(h->key), &h->rate, h->burst, 1, tg_clock_mono_ns(), &r), 0);
            ok = r.allowed;
        }
        if (ok) {
            atomic_fetch_add(&h->allowed, 1);
            atomic_store(&h->run_of_denials, 0);
        } else {
            atomic_fetch_add(&h->denied, 1);
            atomic_fetch_add(&h->run_of_denials, 1);
        }
        nanosleep(&pace, NULL);
    }
    return NULL;
}

static void hammer_start(hammer_t hs[NODES], node_t nodes[NODES], _Atomic int *stop, const char *key, int quota,
                         uint64_t included)
{
    for (int i = 0; i < NODES; i++) {
        memset(&hs[i], 0, sizeof(hs[i]));
        hs[i].node = &nodes[i];
        snprintf(hs[i].key, sizeof(hs[i].key), "%s", key);
        hs[i].rate = (tg_rate_t){100, SEC}; /* 100 a second */
        hs[i].burst = 60;
        hs[i].quota = quota;
        hs[i].included = included;
        hs[i].stop = stop;
        assert_int_equal(pthread_create(&hs[i].thread, NULL, hammer_main, &hs[i]), 0);
    }
}

static void hammer_join(hammer_t hs[NODES])
{
    for (int i = 0; i < NODES; i++)
        pthread_join(hs[i].thread, NULL);
}

static uint64_t allowed_total(hammer_t hs[NODES])
{
    uint64_t a = 0;
    for (int i = 0; i < NODES; i++)
        a += atomic_load(&hs[i].allowed);
    return a;
}

static void run_for(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / SEC), (long)(ns % SEC)};
    nanosleep(&ts, NULL); /* the length of a load phase, not a synchronisation */
}

/* The commands the Redis server has run (INFO's total_commands_processed: a script's own calls
 * count beside its EVALSHA). Shared servers make this a ceiling on what the tests' nodes did. */
static uint64_t redis_commands(void)
{
    tg_redis_url_t u;
    char why[160];
    assert_int_equal(tg_redis_url_parse(redis_url, &u, why, sizeof(why)), 0);
    redisContext *c = redisConnect(u.host, u.port);
    assert_true(c != NULL && c->err == 0);
    redisReply *rp = redisCommand(c, "INFO stats");
    assert_true(rp != NULL && rp->type == REDIS_REPLY_STRING);
    const char *at = strstr(rp->str, "total_commands_processed:");
    assert_non_null(at);
    uint64_t n = strtoull(at + strlen("total_commands_processed:"), NULL, 10);
    freeReplyObject(rp);
    redisFree(c);
    return n;
}

/* ---- tests ---- */

/* A hot key hammered through three nodes for two seconds: the calls allowed stay within the
 * GCRA's own allowance (burst + rate x time) plus the stated bound N L + N C (C = max(w, L / 4)), and close to it
 * (the nodes do not starve each other). */
static void test_rate_limit_shared_within_bound(void **state)
{
    (void)state;
    if (skip_without_redis())
        return;
    node_t nodes[NODES];
    start_nodes(nodes, "rate");
    char key[64];
    snprintf(key, sizeof(key), "cus_rate_%d", (int)getpid());
    _Atomic int stop = 0;
    hammer_t hs[NODES];
    uint64_t c0 = redis_commands();
    int64_t t0 = tg_clock_mono_ns();
    hammer_start(hs, nodes, &stop, key, 0, 0);
    run_for(2 * SEC);
    atomic_store(&stop, 1);
    hammer_join(hs);
    int64_t t1 = tg_clock_mono_ns();
    uint64_t allowed = allowed_total(hs), commands = redis_commands() - c0;
    double secs = (double)(t1 - t0) / SEC;
    uint64_t limit = 60 + (uint64_t)(100 * secs);
    uint64_t bound = tg_lease_rate_bound(NODES, tg_lease_rate_cap(60, NODES, 1), 1);
    print_message("rate: %.2f s, 3 nodes, 100/s burst 60: allowed %" PRIu64 ", GCRA allows %" PRIu64 ", bound +%" PRIu64
                  ", overshoot %+" PRId64 "\n",
                  secs, allowed, limit, bound, (int64_t)allowed - (int64_t)limit);
    /* A node whose lease ran dry tops up once the shared bucket refilled by half a lease (here
     * L = 10: 5 cells, 20 times a second, each seen by the three nodes at once; a script call is
     * 5 commands), not at every round it is kicked (up to 4 per interval per node: 600 script
     * calls a second, 23 commands per allowed call before). */
    print_message("rate: %" PRIu64 " Redis commands, %.2f per allowed call\n", commands, (double)commands / allowed);
    assert_true(commands < 6 * allowed);
    assert_true(allowed <= limit + bound + 1);
    assert_true(allowed + bound + limit / 10 >= limit);
    for (int i = 0; i < NODES; i++)
        assert_true(atomic_load(&hs[i].allowed) > 0); /* every node got a share */
    for (int i = 0; i < NODES; i++)
        stop_node(&nodes[i]);
}

/* A block quota of 1000 hammered through three nodes until every node is refused: exactly the
 * allowance is allowed (the bound without an outage is N u, one call of credit per node). */
static void test_block_quota_shared_within_bound(void **state)
{
    (void)state;
    if (skip_without_redis())
        return;
    node_t nodes[NODES];
    start_nodes(nodes, "quota");
    char key[64];
    snprintf(key, sizeof(key), "cus_quota_%d", (int)getpid());
    _Atomic int stop = 0;
    hammer_t hs[NODES];
    hammer_start(hs, nodes, &stop, key, 1, 1000);
    /* until each node has been refused 5000 times in a row (at least 100 ms: several rounds of
     * the sync threads, which would have leased anything left) */
    for (int spins = 0; spins < 3000; spins++) {
        int done = 1;
        for (int i = 0; i < NODES; i++)
            done &= atomic_load(&hs[i].run_of_denials) >= 5000;
        if (done)
            break;
        run_for(10 * MS);
    }
    atomic_store(&stop, 1);
    hammer_join(hs);
    uint64_t allowed = allowed_total(hs), bound = tg_lease_quota_bound(NODES, 0, 1, 0);
    print_message("quota (block, 1000): allowed %" PRIu64 " over 3 nodes, bound +%" PRIu64 "\n", allowed, bound);
    assert_true(allowed <= 1000 + bound);
    assert_true(allowed >= 1000 - bound);
    for (int i = 0; i < NODES; i++)
        stop_node(&nodes[i]);
}

static int redis_script(const char *what)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "scripts/redis-test.sh %s '%s' >/dev/null", what, redis_dir);
    return system(cmd);
}

static int all_in_fallback(node_t nodes[NODES], int want)
{
    for (int spins = 0; spins < 1000; spins++) {
        int all = 1;
        for (int i = 0; i < NODES; i++)
            all &= tg_cluster_in_fallback(nodes[i].c) == want;
        if (all)
            return 1;
        run_for(10 * MS);
    }
    return 0;
}

/* Redis stopped mid-load: every node says so (metric, log) and enforces 1/3 of the limit, so
 * the three together stay within it. Redis started again (empty: no persistence): the nodes hand
 * over what they spent meanwhile, so the first second back allows the rate, not a new burst. */
static void test_redis_down_fallback_and_back(void **state)
{
    (void)state;
    if (skip_without_redis())
        return;
    if (redis_dir == NULL || redis_dir[0] == '\0') {
        print_message("TG_TEST_REDIS_DIR is not set: skipped\n");
        return;
    }
    node_t nodes[NODES];
    start_nodes(nodes, "fallback");
    char key[64];
    snprintf(key, sizeof(key), "cus_fallback_%d", (int)getpid());
    _Atomic int stop = 0;
    hammer_t hs[NODES];
    int down0 = atomic_load(&logged_down), back0 = atomic_load(&logged_back);
    hammer_start(hs, nodes, &stop, key, 0, 0);
    run_for(SEC); /* shared, and the bucket drawn dry */

    assert_int_equal(redis_script("stop"), 0);
    assert_true(all_in_fallback(nodes, 1));
    char *m = tg_metrics_render(NULL);
    assert_non_null(m);
    assert_non_null(strstr(m, "tollgate_cluster_fallback 1"));
    free(m);
    assert_true(atomic_load(&logged_down) >= down0 + 1);
    uint64_t a0 = allowed_total(hs);
    int64_t t0 = tg_clock_mono_ns();
    run_for(SEC);
    uint64_t in_fallback = allowed_total(hs) - a0;
    double fb_secs = (double)(tg_clock_mono_ns() - t0) / SEC;
    uint64_t bound = tg_lease_rate_bound(NODES, tg_lease_rate_cap(60, NODES, 1), 1);

    assert_int_equal(redis_script("start"), 0);
    assert_true(all_in_fallback(nodes, 0));
    assert_true(atomic_load(&logged_back) >= back0 + 1);
    uint64_t a1 = allowed_total(hs);
    int64_t t1 = tg_clock_mono_ns();
    run_for(SEC);
    atomic_store(&stop, 1);
    hammer_join(hs);
    uint64_t after = allowed_total(hs) - a1;
    double back_secs = (double)(tg_clock_mono_ns() - t1) / SEC;
    print_message("fallback: %.2f s at 1/3 each: allowed %" PRIu64 " (limit %.0f + burst 60, bound +%" PRIu64
                  "); back: %.2f s: allowed %" PRIu64 " (rate %.0f; a new burst would add 60)\n",
                  fb_secs, in_fallback, 100 * fb_secs, bound, back_secs, after, 100 * back_secs);
    /* fallback: each node 1/3 of the rate and of the burst, plus what it held when Redis left */
    assert_true(in_fallback <= (uint64_t)(100 * fb_secs) + 60 + bound + 1);
    assert_true(in_fallback >= (uint64_t)(100 * fb_secs) / 2);
    /* back: the merged spending leaves the shared bucket as drawn as the nodes left it */
    assert_true(after <= (uint64_t)(100 * back_secs) + bound + 1);
    for (int i = 0; i < NODES; i++)
        stop_node(&nodes[i]);
}

/* Until every node has been refused 5000 times in a row (at least 100 ms: several rounds of the
 * sync threads, which would have leased anything left), then stops the hammers. */
static void hammer_until_refused(hammer_t hs[NODES], _Atomic int *stop)
{
    for (int spins = 0; spins < 3000; spins++) {
        int done = 1;
        for (int i = 0; i < NODES; i++)
            done &= atomic_load(&hs[i].run_of_denials) >= 5000;
        if (done)
            break;
        run_for(10 * MS);
    }
    atomic_store(stop, 1);
    hammer_join(hs);
}

/* A block quota of 1000, 600 used, then Redis restarted empty (no persistence): the nodes start
 * the counter again from the total they last saw, plus what they spent meanwhile, so the
 * customer does not get a second allowance. The bound is N u + 2 (N - 1) L for the outage. */
static void test_block_quota_survives_redis_restart(void **state)
{
    (void)state;
    if (skip_without_redis())
        return;
    if (redis_dir == NULL || redis_dir[0] == '\0') {
        print_message("TG_TEST_REDIS_DIR is not set: skipped\n");
        return;
    }
    node_t nodes[NODES];
    start_nodes(nodes, "restart");
    char key[64];
    snprintf(key, sizeof(key), "cus_restart_%d", (int)getpid());
    _Atomic int stop = 0;
    hammer_t hs[NODES];
    hammer_start(hs, nodes, &stop, key, 1, 1000);
    for (int spins = 0; spins < 3000 && allowed_total(hs) < 600; spins++)
        run_for(MS);
    atomic_store(&stop, 1);
    hammer_join(hs);
    uint64_t before = allowed_total(hs);
    run_for(100 * MS); /* a few rounds: the nodes' views of the shared total catch up */
    assert_int_equal(redis_script("stop"), 0);
    assert_true(all_in_fallback(nodes, 1));
    assert_int_equal(redis_script("start"), 0);
    assert_true(all_in_fallback(nodes, 0));
    _Atomic int stop2 = 0;
    hammer_t hs2[NODES];
    hammer_start(hs2, nodes, &stop2, key, 1, 1000);
    hammer_until_refused(hs2, &stop2);
    uint64_t allowed = before + allowed_total(hs2);
    uint64_t bound = tg_lease_quota_bound(NODES, tg_lease_quota_cap(1000, NODES, 1), 1, 1);
    print_message("quota (block, 1000), Redis restarted empty after %" PRIu64 ": allowed %" PRIu64
                  " in all, bound +%" PRIu64 "\n",
                  before, allowed, bound);
    assert_true(allowed <= 1000 + bound);
    assert_true(allowed >= 1000 - NODES);
    for (int i = 0; i < NODES; i++)
        stop_node(&nodes[i]);
}

/* A counter of this process's metrics ("name{labels} " as rendered), 0 when absent. */
static uint64_t metric(const char *name)
{
    char *m = tg_metrics_render(NULL);
    assert_non_null(m);
    char line[128];
    snprintf(line, sizeof(line), "\n%s ", name);
    const char *p = strstr(m, line);
    uint64_t n = p != NULL ? strtoull(p + strlen(line), NULL, 10) : 0;
    free(m);
    return n;
}

static uint64_t leases_returned(void)
{
    return metric("tollgate_cluster_leases_total{op=\"returned\"}");
}

/* A key left alone gives its lease back after about a second; used again, it gets a new one.
 * (Regression: a key whose lease had gone back counted as idle as long as its calls were refused,
 * so it never leased again and its customer was refused for good.) */
static void test_idle_key_gives_back_and_resumes(void **state)
{
    (void)state;
    if (skip_without_redis())
        return;
    node_t n;
    tg_err_t err = {0};
    char id[64], key[64];
    snprintf(id, sizeof(id), "unit-idle-%d", (int)getpid());
    snprintf(key, sizeof(key), "cus_idle_%d", (int)getpid());
    assert_int_equal(start_node(&n, id, &err), 0);
    tg_rate_t rate = {1000, SEC};
    tg_limit_result_t r;
    uint64_t returned0 = leases_returned(), allowed = 0, units_ok = 0;
    /* use both until each holds a lease (a few rounds) */
    for (int i = 0; i < 200; i++) {
        assert_int_equal(tg_limiter_take(n.l, key, strlen(key), &rate, 100, 1, 0, &r), 0);
        allowed += (uint64_t)r.allowed;
        units_ok += tg_quota_reserve(n.q, key, 1700000000, "api_calls", 1, 100000, 1, NULL) == 0;
        run_for(MS);
    }
    assert_true(allowed > 100);
    assert_true(units_ok > 100);
    /* left alone: both leases go back (bounded wait on the metric) */
    for (int spins = 0; spins < 500 && leases_returned() < returned0 + 2; spins++)
        run_for(10 * MS);
    assert_true(leases_returned() >= returned0 + 2);
    /* used again: allowed again within a few rounds */
    int back = 0, qback = 0;
    for (int i = 0; i < 500 && !(back && qback); i++) {
        assert_int_equal(tg_limiter_take(n.l, key, strlen(key), &rate, 100, 1, 0, &r), 0);
        back |= r.allowed;
        qback |= tg_quota_reserve(n.q, key, 1700000000, "api_calls", 1, 100000, 1, NULL) == 0;
        run_for(MS);
    }
    assert_true(back);
    assert_true(qback);
    stop_node(&n);
}

/* An idle key gives its lease back; its next calls on that node, with the shared bucket full, are
 * allowed at once, before the sync thread can lease again (a credit of C = max(w, L / 4) cells,
 * charged at the next round). Before the credit was reopened at the give-back, the first call
 * after it was refused: the node held no lease and had spent its one credit long before. Then the
 * charge is exact: once the node is idle again, the shared bucket holds what the node spent. */
static void test_idle_key_first_calls_allowed(void **state)
{
    (void)state;
    if (skip_without_redis())
        return;
    node_t n;
    tg_err_t err = {0};
    char id[64], key[64];
    snprintf(id, sizeof(id), "unit-credit-%d", (int)getpid());
    snprintf(key, sizeof(key), "cus_credit_%d", (int)getpid());
    assert_int_equal(start_node(&n, id, &err), 0);
    /* one cell every 10 s, burst 40: L = 20 on one node, C = 5; the first call's cell has not
     * drained when the lease goes back, so the shared bucket then holds 39 of its 40 cells */
    tg_rate_t rate = {1, 10 * SEC};
    const uint64_t burst = 40;
    tg_limit_result_t r;
    uint64_t returned0 = leases_returned();
    assert_int_equal(tg_limiter_take(n.l, key, strlen(key), &rate, burst, 1, tg_clock_mono_ns(), &r), 0);
    assert_true(r.allowed);
    /* left alone: the lease goes back (bounded wait on the metric), then the bucket refills */
    for (int spins = 0; spins < 500 && leases_returned() < returned0 + 1; spins++)
        run_for(10 * MS);
    assert_true(leases_returned() >= returned0 + 1);
    uint64_t credit = tg_lease_rate_credit_cap(tg_lease_rate_cap(burst, tg_cluster_live_nodes(n.c), 1), 1);
    assert_int_equal(credit, 5);
    for (uint64_t i = 0; i < credit; i++) {
        assert_int_equal(tg_limiter_take(n.l, key, strlen(key), &rate, burst, 1, tg_clock_mono_ns(), &r), 0);
        assert_true(r.allowed);
    }
    /* idle again: what the node spent on credit is charged, in full, and what it leased since
     * is given back: the shared bucket holds the credit's cells and what is left of the first
     * call's (less what drained since, a cell per 10 s) */
    uint64_t returned1 = leases_returned();
    int64_t spent_at = tg_clock_mono_ns();
    for (int spins = 0; spins < 500 && leases_returned() < returned1 + 1; spins++)
        run_for(10 * MS);
    tg_redis_t *rc = NULL;
    assert_int_equal(tg_redis_connect(redis_url, 1000, &rc, &err), 0);
    uint64_t granted = 0, fill = 0;
    assert_int_equal(tg_redis_rate(rc, key, strlen(key), TG_LEASE_GET, 10 * SEC, burst, 0, &granted, &fill, &err), 0);
    uint64_t drained = (uint64_t)((tg_clock_mono_ns() - spent_at) / (10 * SEC));
    print_message("credit: %" PRIu64 " calls allowed at once after the give-back; shared fill %" PRIu64 " (%" PRIu64
                  " on credit + what is left of 1; %" PRIu64 " drained since)\n",
                  credit, fill, credit, drained);
    assert_true(fill <= credit + 1 && fill + drained >= credit);
    tg_redis_close(rc);
    stop_node(&n);
}

/* The same for a block quota: after the node gave an idle lease back, the key's next call is
 * allowed at once on credit (the total it read leaves room), not refused until a round leases.
 * Before, the one call of credit was a cold key's only, once per process. */
static void test_idle_quota_first_call_allowed(void **state)
{
    (void)state;
    if (skip_without_redis())
        return;
    node_t n;
    tg_err_t err = {0};
    char id[64], key[64];
    snprintf(id, sizeof(id), "unit-qcredit-%d", (int)getpid());
    snprintf(key, sizeof(key), "cus_qcredit_%d", (int)getpid());
    assert_int_equal(start_node(&n, id, &err), 0);
    for (int round = 0; round < 2; round++) {
        uint64_t returned0 = leases_returned();
        assert_int_equal(tg_quota_reserve(n.q, key, 1700000000, "api_calls", 1, 1000, 1, NULL), 0);
        /* left alone: the lease goes back (bounded wait on the metric) */
        for (int spins = 0; spins < 500 && leases_returned() < returned0 + 1; spins++)
            run_for(10 * MS);
        assert_true(leases_returned() >= returned0 + 1);
    }
    /* once more, at once after the give-back */
    assert_int_equal(tg_quota_reserve(n.q, key, 1700000000, "api_calls", 1, 1000, 1, NULL), 0);
    stop_node(&n);
    /* exact: three units used, all leases given back */
    tg_redis_t *rc = NULL;
    assert_int_equal(tg_redis_connect(redis_url, 1000, &rc, &err), 0);
    char qkey[96];
    int len = snprintf(qkey, sizeof(qkey), "%s:%020d:api_calls", key, 1700000000);
    uint64_t granted = 0, total = 0;
    assert_int_equal(tg_redis_quota(rc, qkey, (size_t)len, TG_LEASE_GET, 0, 1000, 0, &granted, &total, &err), 0);
    assert_int_equal(total, 3);
    tg_redis_close(rc);
}

/* A command on a connection of the test's own (SCRIPT FLUSH, ...). */
static void redis_do(const char *cmd)
{
    tg_redis_url_t u;
    char why[160];
    assert_int_equal(tg_redis_url_parse(redis_url, &u, why, sizeof(why)), 0);
    redisContext *c = redisConnect(u.host, u.port);
    assert_true(c != NULL && c->err == 0);
    redisReply *rp = redisCommand(c, cmd);
    assert_true(rp != NULL && rp->type != REDIS_REPLY_ERROR);
    freeReplyObject(rp);
    redisFree(c);
}

/* Uses `keys` fresh keys once each, as a rate limit and a block quota, and waits until the node
 * leased for all of them: each key's first call is on credit, so the next round charges it and
 * takes a lease (a rate limit) or merges it and takes a lease (a quota): four script calls a key.
 * Returns the Redis round trips the node made meanwhile. */
static uint64_t cold_keys(node_t *n, const char *tag, int keys, const tg_rate_t *rate, uint64_t burst)
{
    uint64_t trips0 = metric("tollgate_cluster_redis_round_trips_total");
    uint64_t taken0 = metric("tollgate_cluster_leases_total{op=\"taken\"}");
    char key[64];
    for (int k = 0; k < keys; k++) {
        tg_limit_result_t r;
        snprintf(key, sizeof(key), "cus_pipe_%s_%d_%d", tag, (int)getpid(), k);
        assert_int_equal(tg_limiter_take(n->l, key, strlen(key), rate, burst, 1, tg_clock_mono_ns(), &r), 0);
        assert_true(r.allowed);
        assert_int_equal(tg_quota_reserve(n->q, key, 1700000000, "api_calls", 1, 1000, 1, NULL), 0);
    }
    for (int spins = 0; spins < 500 && metric("tollgate_cluster_leases_total{op=\"taken\"}") < taken0 + 2 * keys;
         spins++)
        run_for(10 * MS);
    assert_true(metric("tollgate_cluster_leases_total{op=\"taken\"}") >= taken0 + 2 * (uint64_t)keys);
    return metric("tollgate_cluster_redis_round_trips_total") - trips0;
}

/* After the node stopped (its last round gave every lease back): each key's rate state holds the
 * one cell it spent and its quota counter the one unit, exactly. */
static void check_cold_keys_exact(const char *tag, int keys, const tg_rate_t *rate, uint64_t burst)
{
    tg_redis_t *rc = NULL;
    tg_err_t err = {0};
    assert_int_equal(tg_redis_connect(redis_url, 1000, &rc, &err), 0);
    char key[96];
    for (int k = 0; k < keys; k++) {
        uint64_t granted = 0, fill = 0, total = 0;
        int len = snprintf(key, sizeof(key), "cus_pipe_%s_%d_%d", tag, (int)getpid(), k);
        assert_int_equal(tg_redis_rate(rc, key, (size_t)len, TG_LEASE_GET, rate->period_ns / (int64_t)rate->count,
                                       burst, 0, &granted, &fill, &err),
                         0);
        assert_int_equal(fill, 1); /* a cell per minute: not drained yet */
        len = snprintf(key, sizeof(key), "cus_pipe_%s_%d_%d:%020d:api_calls", tag, (int)getpid(), k, 1700000000);
        assert_int_equal(tg_redis_quota(rc, key, (size_t)len, TG_LEASE_GET, 0, 1000, 0, &granted, &total, &err), 0);
        assert_int_equal(total, 1);
    }
    tg_redis_close(rc);
}

/* Two hundred keys that need Redis in the same rounds (a charge and a lease each, as a rate limit
 * and as a quota: 800 script calls) cost a round trip per round, not one per call: the node's
 * rounds pipeline them. Then the server loses its scripts (SCRIPT FLUSH): the next rounds load
 * them again and send the refused calls once more, without falling back. Every key's totals are
 * exact afterwards: nothing lost, nothing counted twice. */
static void test_lease_calls_pipelined(void **state)
{
    (void)state;
    if (skip_without_redis())
        return;
    enum { KEYS = 200 };
    node_t n;
    tg_err_t err = {0};
    char id[64];
    snprintf(id, sizeof(id), "unit-pipe-%d", (int)getpid());
    assert_int_equal(start_node(&n, id, &err), 0);
    tg_rate_t rate = {1, 60 * SEC}; /* a cell a minute, burst 40: L = 20, C = 5 */
    uint64_t errors0 = metric("tollgate_cluster_redis_errors_total");
    uint64_t trips = cold_keys(&n, "a", KEYS, &rate, 40);
    print_message("pipelined: %d keys x 4 script calls: %" PRIu64 " round trips\n", KEYS, trips);
    assert_true(trips <= 40); /* a round trip per round with work (a few), a heartbeat; one per call: 800 */
    redis_do("SCRIPT FLUSH");
    trips = cold_keys(&n, "b", KEYS, &rate, 40);
    print_message("after SCRIPT FLUSH: %d keys x 4 script calls: %" PRIu64 " round trips\n", KEYS, trips);
    assert_true(trips <= 45); /* + one per round that found the scripts gone, and their loading (3) */
    assert_false(tg_cluster_in_fallback(n.c));
    assert_int_equal(metric("tollgate_cluster_redis_errors_total"), errors0);
    stop_node(&n);
    check_cold_keys_exact("a", KEYS, &rate, 40);
    check_cold_keys_exact("b", KEYS, &rate, 40);
}

/* A hundred block quotas in use on three nodes, each used every interval: their views of the
 * shared totals are read in one MGET per round, not a script call (three commands) per key per
 * round: well under half a Redis command per key, node and interval. */
static void test_block_quota_views_batched(void **state)
{
    (void)state;
    if (skip_without_redis())
        return;
    enum { KEYS = 100, ROUNDS = 50 };
    node_t nodes[NODES];
    start_nodes(nodes, "views");
    char key[64];
    uint64_t c0 = redis_commands(), allowed = 0;
    int64_t t0 = tg_clock_mono_ns();
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < NODES; i++)
            for (int k = 0; k < KEYS; k++) {
                snprintf(key, sizeof(key), "cus_views_%d_%d", (int)getpid(), k);
                /* refused only while a cold key waits for its first lease (a slow machine) */
                int rc = tg_quota_reserve(nodes[i].q, key, 1700000000, "api_calls", 1, 1000000000, 1, NULL);
                assert_true(rc == 0 || rc == TG_ELIMIT);
                allowed += rc == 0;
            }
        run_for(SYNC_MS * MS); /* a client's pace: each key is used in every interval */
    }
    uint64_t commands = redis_commands() - c0;
    double intervals = (double)(tg_clock_mono_ns() - t0) / (SYNC_MS * MS);
    double per = (double)commands / (NODES * KEYS * intervals);
    print_message("views: %d keys x %d nodes over %.0f intervals: %" PRIu64 " Redis commands, %.3f per key, node "
                  "and interval\n",
                  KEYS, NODES, intervals, commands, per);
    assert_true(per < 0.5);
    assert_true(allowed > (uint64_t)NODES * KEYS * ROUNDS / 2);
    for (int i = 0; i < NODES; i++)
        stop_node(&nodes[i]);
}

/* A block quota spent, hammered on three nodes: a node that saw the total at the allowance reads
 * it (batched, one command a round) instead of asking for a lease that cannot be granted (a
 * script call of three commands per node and interval). */
static void test_spent_quota_costs_little(void **state)
{
    (void)state;
    if (skip_without_redis())
        return;
    node_t nodes[NODES];
    start_nodes(nodes, "spent");
    char key[64];
    snprintf(key, sizeof(key), "cus_spent_%d", (int)getpid());
    _Atomic int stop = 0;
    hammer_t hs[NODES];
    hammer_start(hs, nodes, &stop, key, 1, 10);
    int refused = 0;
    for (int spins = 0; spins < 3000 && !refused; spins++) {
        refused = 1;
        for (int i = 0; i < NODES; i++)
            refused &= atomic_load(&hs[i].run_of_denials) >= 1000;
        run_for(10 * MS);
    }
    assert_true(refused);
    uint64_t c0 = redis_commands();
    int64_t t0 = tg_clock_mono_ns();
    run_for(SEC);
    uint64_t commands = redis_commands() - c0;
    double intervals = (double)(tg_clock_mono_ns() - t0) / (SYNC_MS * MS);
    atomic_store(&stop, 1);
    hammer_join(hs);
    double per = (double)commands / (NODES * intervals);
    print_message("spent quota: %" PRIu64 " Redis commands in %.0f intervals, %.2f per node and interval\n", commands,
                  intervals, per);
    assert_true(per < 2);
    assert_true(allowed_total(hs) <= 10 + tg_lease_quota_bound(NODES, 0, 1, 0));
    for (int i = 0; i < NODES; i++)
        stop_node(&nodes[i]);
}

/* The sync thread's rounds follow the keys in use, not the customers known: 10,000 keys seeded
 * from the store cost nothing; two used keys are tended, and leave the rounds once idle. */
static void test_rounds_follow_keys_in_use(void **state)
{
    (void)state;
    if (skip_without_redis())
        return;
    node_t n;
    tg_err_t err = {0};
    char id[64], key[64];
    snprintf(id, sizeof(id), "unit-rounds-%d", (int)getpid());
    assert_int_equal(start_node(&n, id, &err), 0);
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof(key), "cus_seed_%d_%d", (int)getpid(), i);
        assert_int_equal(tg_quota_seed(n.q, key, 1700000000, "api_calls", 5), 0);
    }
    snprintf(key, sizeof(key), "cus_seed_%d_7", (int)getpid());
    assert_int_equal(tg_quota_reserve(n.q, key, 1700000000, "api_calls", 1, 1000, 1, NULL), 0);
    tg_rate_t rate = {10, SEC};
    tg_limit_result_t r;
    assert_int_equal(tg_limiter_take(n.l, key, strlen(key), &rate, 10, 1, 0, &r), 0);
    assert_true(r.allowed);
    int seen = 0;
    for (int spins = 0; spins < 200 && !seen; spins++) {
        seen = tg_cluster_active_keys(n.c) == 2;
        run_for(5 * MS);
    }
    assert_true(seen);
    assert_int_equal(tg_quota_used(n.q, key, 1700000000, "api_calls"), 6); /* the seed of 5, and this call */
    int left = 0;
    for (int spins = 0; spins < 500 && !left; spins++) {
        left = tg_cluster_active_keys(n.c) == 0;
        run_for(10 * MS);
    }
    assert_true(left);
    stop_node(&n);
}

/* A quota that never refuses (bill, throttle) counts every node's use: a node in use sees the
 * others' within a few hundred milliseconds (it decides throttling), and nothing is refused. */
static void test_bill_quota_counts_all_nodes(void **state)
{
    (void)state;
    if (skip_without_redis())
        return;
    node_t nodes[NODES];
    start_nodes(nodes, "bill");
    char key[64];
    snprintf(key, sizeof(key), "cus_bill_%d", (int)getpid());
    for (int i = 0; i < NODES; i++)
        for (int k = 0; k < 100; k++)
            assert_int_equal(tg_quota_reserve(nodes[i].q, key, 1700000000, "api_calls", 1, 50, 0, NULL), 0);
    int all = 0;
    for (int spins = 0; spins < 300 && !all; spins++) {
        all = 1;
        for (int i = 0; i < NODES; i++) { /* one more call each: the nodes keep using the key */
            uint64_t used = 0;
            assert_int_equal(tg_quota_reserve(nodes[i].q, key, 1700000000, "api_calls", 1, 50, 0, &used), 0);
            all &= used >= 300;
        }
        run_for(10 * MS);
    }
    assert_true(all);
    for (int i = 0; i < NODES; i++)
        stop_node(&nodes[i]);
}

/* Node ids are unique: a second live node with the same id is refused at start; once the first
 * leaves, the id is free. */
static void test_node_id_unique(void **state)
{
    (void)state;
    if (skip_without_redis())
        return;
    char id[64];
    snprintf(id, sizeof(id), "unit-dup-%d", (int)getpid());
    node_t a, b;
    tg_err_t err = {0};
    assert_int_equal(start_node(&a, id, &err), 0);
    assert_int_equal(start_node(&b, id, &err), TG_EEXIST);
    assert_non_null(strstr(err.msg, "held by another live node"));
    stop_node(&a);
    assert_int_equal(start_node(&b, id, &err), 0);
    stop_node(&b);
    /* an unreachable Redis refuses the start too (the id could not be checked) */
    tg_cluster_settings_t s = {"redis://127.0.0.1:1/0", "unit-nowhere", SYNC_MS, NULL, NULL};
    tg_cluster_t *c = NULL;
    assert_int_equal(tg_cluster_start(&s, &c, &err), TG_EIO);
    assert_null(c);
}

int main(void)
{
    redis_url = getenv("TG_TEST_REDIS_URL");
    redis_dir = getenv("TG_TEST_REDIS_DIR");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_id_unique),
        cmocka_unit_test(test_rate_limit_shared_within_bound),
        cmocka_unit_test(test_block_quota_shared_within_bound),
        cmocka_unit_test(test_redis_down_fallback_and_back),
        cmocka_unit_test(test_block_quota_survives_redis_restart),
        cmocka_unit_test(test_idle_key_gives_back_and_resumes),
        cmocka_unit_test(test_idle_key_first_calls_allowed),
        cmocka_unit_test(test_lease_calls_pipelined),
        cmocka_unit_test(test_idle_quota_first_call_allowed),
        cmocka_unit_test(test_block_quota_views_batched),
        cmocka_unit_test(test_spent_quota_costs_little),
        cmocka_unit_test(test_rounds_follow_keys_in_use),
        cmocka_unit_test(test_bill_quota_counts_all_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
