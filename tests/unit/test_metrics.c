/* test_metrics.c - the per-call counters of metrics/metrics.h kept per event-loop thread: a scrape
 * sums the threads' sets and the shared one exactly, while threads count; a set outlives its
 * thread and is adopted, counts kept, by the next thread to attach; threads past the last set
 * count into the shared one; plan decisions by slot. Also built under ThreadSanitizer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"

/* The value of the sample `name` (as printed, labels included) in a scrape; -1 if absent. */
static long long sample(const char *name)
{
    char *text = tg_metrics_render(NULL);
    assert_non_null(text);
    long long v = -1;
    size_t n = strlen(name);
    for (const char *p = text; (p = strstr(p, name)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == ' ') {
            v = strtoll(p + n + 1, NULL, 10);
            break;
        }
    free(text);
    return v;
}

static long long sample_or_zero(const char *name)
{
    long long v = sample(name);
    return v < 0 ? 0 : v;
}

#define CALLS 20000

typedef struct {
    int attach;
    pthread_barrier_t *all_counted; /* NULL: end at once */
} counter_arg_t;

/* One proxied call's counts, as the gateway makes them. */
static void count_call(void)
{
    tg_metrics_count_decision(TG_OUT_ALLOWED);
    tg_metrics_count_plan_decision("metrics-test-plan", TG_OUT_ALLOWED);
    tg_metrics_count_response(200);
    tg_metrics_observe_upstream(700000, 0); /* 0.7 ms: the 1 ms bucket */
    tg_metrics_observe_gateway(800000);
    tg_metrics_count_billed(1);
}

static void *counter(void *p)
{
    const counter_arg_t *a = p;
    if (a->attach)
        tg_metrics_attach_thread();
    for (int i = 0; i < CALLS; i++)
        count_call();
    if (a->all_counted != NULL) /* every thread alive at once: none can adopt another's set */
        pthread_barrier_wait(a->all_counted);
    return NULL;
}

typedef struct {
    long long allowed, plan, ok, upstream_count, upstream_1ms, gateway_count, billed;
} snapshot_t;

static snapshot_t snapshot(void)
{
    return (snapshot_t){
        .allowed = sample_or_zero("tollgate_decisions_total{outcome=\"allowed\"}"),
        .plan = sample_or_zero("tollgate_plan_decisions_total{plan=\"metrics-test-plan\",decision=\"allowed\"}"),
        .ok = sample_or_zero("tollgate_requests_total{status=\"200\"}"),
        .upstream_count = sample_or_zero("tollgate_upstream_latency_seconds_count"),
        .upstream_1ms = sample_or_zero("tollgate_upstream_latency_seconds_bucket{le=\"0.001\"}"),
        .gateway_count = sample_or_zero("tollgate_gateway_latency_seconds_count"),
        .billed = sample_or_zero("tollgate_calls_total{billable=\"true\"}"),
    };
}

/* Every counter moved by exactly calls since `before`. */
static void assert_moved(snapshot_t before, long long calls)
{
    snapshot_t after = snapshot();
    assert_int_equal(after.allowed - before.allowed, calls);
    assert_int_equal(after.plan - before.plan, calls);
    assert_int_equal(after.ok - before.ok, calls);
    assert_int_equal(after.upstream_count - before.upstream_count, calls);
    assert_int_equal(after.upstream_1ms - before.upstream_1ms, calls);
    assert_int_equal(after.gateway_count - before.gateway_count, calls);
    assert_int_equal(after.billed - before.billed, calls);
}

/* Runs n threads (the first `attached` of them attach) that all stay alive until all have
 * counted, scraping meanwhile from this one. */
static void run_threads(int n, int attached)
{
    pthread_t *t = calloc((size_t)n, sizeof(*t));
    counter_arg_t *args = calloc((size_t)n, sizeof(*args));
    assert_non_null(t);
    assert_non_null(args);
    pthread_barrier_t all_counted;
    pthread_barrier_init(&all_counted, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        args[i] = (counter_arg_t){.attach = i < attached, .all_counted = &all_counted};
        assert_int_equal(pthread_create(&t[i], NULL, counter, &args[i]), 0);
    }
    (void)snapshot(); /* a scrape while they count: reads, never writes, their sets */
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&all_counted);
    free(args);
    free(t);
}

static void test_sets_and_shared_sum_exactly(void **state)
{
    (void)state;
    snapshot_t before = snapshot();
    run_threads(4, 2); /* two with sets of their own, two on the shared set */
    assert_moved(before, 4LL * CALLS);
}

static void test_an_ended_threads_counts_are_kept_and_its_set_adopted(void **state)
{
    (void)state;
    snapshot_t before = snapshot();
    for (int round = 0; round < 3; round++) { /* each thread adopts the set the one before left */
        pthread_t t;
        counter_arg_t a = {.attach = 1};
        assert_int_equal(pthread_create(&t, NULL, counter, &a), 0);
        pthread_join(t, NULL);
        assert_moved(before, (round + 1LL) * CALLS);
    }
}

static void test_threads_past_the_last_set_count_into_the_shared_one(void **state)
{
    (void)state;
    snapshot_t before = snapshot();
    run_threads(80, 80); /* 64 sets at most: 16 or more of these count into the shared set */
    assert_moved(before, 80LL * CALLS);
}

static void test_attaching_twice_keeps_one_set(void **state)
{
    (void)state;
    snapshot_t before = snapshot();
    tg_metrics_attach_thread();
    tg_metrics_attach_thread();
    count_call();
    assert_moved(before, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sets_and_shared_sum_exactly),
        cmocka_unit_test(test_an_ended_threads_counts_are_kept_and_its_set_adopted),
        cmocka_unit_test(test_threads_past_the_last_set_count_into_the_shared_one),
        cmocka_unit_test(test_attaching_twice_keeps_one_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
