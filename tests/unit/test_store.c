/* test_store.c - the SQLite store and the metering writer on real temporary database files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metering/meter.h"
#include "store/store.h"

typedef struct {
    char dir[64], url[128];
    tg_store_t *st;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/tg_store_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->url, sizeof(f->url), "sqlite:%s/sub/dir/t.db", f->dir); /* directories are created */
    tg_err_t err = {0};
    assert_int_equal(tg_store_open(f->url, &f->st, &err), 0);
    assert_int_equal(tg_store_migrate(f->st, &err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    tg_store_close(f->st);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void add_customer(fx_t *f, const char *id, const char *email)
{
    tg_customer_t c = {0};
    snprintf(c.id, sizeof(c.id), "%s", id);
    snprintf(c.email, sizeof(c.email), "%s", email);
    snprintf(c.plan_id, sizeof(c.plan_id), "free");
    snprintf(c.status, sizeof(c.status), "active");
    c.created_at = c.anchor_at = 1000;
    tg_err_t err = {0};
    assert_int_equal(tg_store_customer_insert(f->st, &c, &err), 0);
}

static void test_migrations(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    int v = 0;
    assert_int_equal(tg_store_schema_version(f->st, &v, &err), 0);
    assert_true(v >= 1);
    assert_int_equal(tg_store_migrate(f->st, &err), 0); /* idempotent */
    int v2 = 0;
    assert_int_equal(tg_store_schema_version(f->st, &v2, &err), 0);
    assert_int_equal(v, v2);
    tg_store_t *bad = NULL;
    assert_int_equal(tg_store_open("postgres://x", &bad, &err), TG_EINVAL);
    assert_non_null(strstr(err.msg, "\"postgres\""));
}

static void test_customers_and_keys(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    add_customer(f, "cus_1", "Dev@Example.com");
    tg_customer_t c = {0};
    snprintf(c.id, sizeof(c.id), "cus_2");
    snprintf(c.email, sizeof(c.email), "dev@example.COM");
    snprintf(c.plan_id, sizeof(c.plan_id), "free");
    snprintf(c.status, sizeof(c.status), "active");
    assert_int_equal(tg_store_customer_insert(f->st, &c, &err), TG_EEXIST); /* email, any case */
    assert_non_null(strstr(err.msg, "dev@example.COM"));
    tg_customer_t got;
    assert_int_equal(tg_store_customer_get(f->st, "cus_1", &got, &err), 0);
    assert_string_equal(got.email, "Dev@Example.com");
    snprintf(got.plan_id, sizeof(got.plan_id), "pro");
    assert_int_equal(tg_store_customer_update(f->st, &got, &err), 0);
    assert_int_equal(tg_store_customer_get(f->st, "cus_1", &got, &err), 0);
    assert_string_equal(got.plan_id, "pro");
    assert_int_equal(tg_store_customer_get(f->st, "cus_404", &got, &err), TG_ENOTFOUND);

    tg_key_t k = {0};
    snprintf(k.id, sizeof(k.id), "key_1");
    snprintf(k.customer_id, sizeof(k.customer_id), "cus_1");
    memset(k.hash, 7, sizeof(k.hash));
    snprintf(k.prefix, sizeof(k.prefix), "tg_live_abcd");
    k.created_at = 5;
    assert_int_equal(tg_store_key_insert(f->st, &k, &err), 0);
    assert_int_equal(tg_store_key_set_revoked(f->st, "key_1", 99, &err), 0);
    assert_int_equal(tg_store_key_set_expires(f->st, "key_1", 77, &err), 0);
    assert_int_equal(tg_store_key_touch(f->st, "key_1", 50, &err), 0);
    assert_int_equal(tg_store_key_touch(f->st, "key_1", 40, &err), 0); /* never moves back */
    tg_key_t g;
    assert_int_equal(tg_store_key_get(f->st, "key_1", &g, &err), 0);
    assert_memory_equal(g.hash, k.hash, 32);
    assert_int_equal(g.revoked_at, 99);
    assert_int_equal(g.expires_at, 77);
    assert_int_equal(g.last_used_at, 50);
    assert_int_equal(tg_store_key_set_revoked(f->st, "key_404", 1, &err), TG_ENOTFOUND);
    k.hash[0] = 8;
    snprintf(k.customer_id, sizeof(k.customer_id), "cus_nobody");
    snprintf(k.id, sizeof(k.id), "key_2");
    assert_int_not_equal(tg_store_key_insert(f->st, &k, &err), 0); /* foreign key */
}

static tg_usage_t row(uint64_t id, const char *metric, uint64_t units)
{
    tg_usage_t u = {0};
    u.event_id = id;
    snprintf(u.customer_id, sizeof(u.customer_id), "cus_1");
    snprintf(u.key_id, sizeof(u.key_id), "key_1");
    snprintf(u.plan_id, sizeof(u.plan_id), "free");
    snprintf(u.metric, sizeof(u.metric), "%s", metric);
    snprintf(u.endpoint, sizeof(u.endpoint), "GET /x");
    u.units = units;
    u.ts_ns = INT64_C(1769853600) * 1000000000; /* 2026-01-31 */
    u.period_start = 1000;
    u.status = 200;
    return u;
}

static int sum_cb(const char *metric, uint64_t units, void *arg)
{
    if (strcmp(metric, "api_calls") == 0)
        *(uint64_t *)arg += units;
    return 0;
}

static int day_cb(const char *day, const char *metric, uint64_t units, void *arg)
{
    (void)metric;
    if (strcmp(day, "2026-01-31") == 0)
        *(uint64_t *)arg += units;
    return 0;
}

static void test_usage_exactly_once(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    add_customer(f, "cus_1", "a@b.co");
    tg_usage_t rows[4] = {row(1, "api_calls", 1), row(1, "tokens", 500), row(2, "api_calls", 1),
                          row(3, "api_calls", 1)};
    snprintf(rows[3].plan_id, sizeof(rows[3].plan_id), "pro"); /* after a plan change */
    size_t ins = 0;
    assert_int_equal(tg_store_usage_record(f->st, 77, rows, 4, &ins, &err), 0);
    assert_int_equal(ins, 4);
    assert_int_equal(tg_store_usage_record(f->st, 77, rows, 4, &ins, &err), 0); /* a retried batch */
    assert_int_equal(ins, 0);
    uint64_t n = 0, total = 0, daily = 0;
    assert_int_equal(tg_store_usage_total(f->st, "api_calls", &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(tg_store_usage_period(f->st, "cus_1", 1000, sum_cb, &total, &err), 0);
    assert_int_equal(total, 3); /* summed over both plans */
    assert_int_equal(tg_store_usage_daily(f->st, "cus_1", INT64_C(1769817600), INT64_C(1769904000), day_cb, &daily,
                                          &err),
                     0);
    assert_int_equal(daily, 503);
    rows[0].units = (uint64_t)INT64_MAX + 1;
    assert_int_equal(tg_store_usage_record(f->st, 78, rows, 1, &ins, &err), TG_ERANGE);
    /* a failed batch leaves nothing behind: two rows whose sum overflows */
    rows[0].units = (uint64_t)INT64_MAX;
    rows[1] = row(9, "api_calls", 5);
    assert_int_not_equal(tg_store_usage_record(f->st, 79, rows, 2, &ins, &err), 0);
    assert_int_equal(tg_store_usage_total(f->st, "api_calls", &n, &err), 0);
    assert_int_equal(n, 3);
}

typedef struct {
    tg_meter_t *m;
    _Atomic int callbacks, errors;
    int base;
} meter_ctx_t;

static void on_done(void *arg, int status)
{
    meter_ctx_t *c = arg;
    atomic_fetch_add(&c->callbacks, 1);
    if (status != 0)
        atomic_fetch_add(&c->errors, 1);
}

static void *submitter(void *arg)
{
    meter_ctx_t *c = arg;
    for (int i = 0; i < 2000; i++) {
        tg_usage_t u = row(tg_meter_next_event_id(), "api_calls", 1);
        assert_int_equal(tg_meter_submit(c->m, &u, 1, on_done, c), 0);
    }
    return NULL;
}

static void run_meter(fx_t *f, int strict)
{
    tg_err_t err = {0};
    add_customer(f, "cus_1", "a@b.co");
    meter_ctx_t c = {0};
    assert_int_equal(tg_meter_start(f->url, strict, 5, &c.m, &err), 0);
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, submitter, &c);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(tg_meter_flush(c.m), 0);
    tg_meter_stats_t s;
    tg_meter_get_stats(c.m, &s);
    assert_int_equal(s.submitted, 16000);
    assert_int_equal(s.committed, 16000);
    assert_true(s.commits < 16000); /* grouped */
    tg_meter_stop(c.m);
    assert_int_equal(atomic_load(&c.callbacks), 16000);
    assert_int_equal(atomic_load(&c.errors), 0);
    uint64_t n = 0, total = 0;
    assert_int_equal(tg_store_usage_total(f->st, "api_calls", &n, &err), 0);
    assert_int_equal(n, 16000);
    assert_int_equal(tg_store_usage_period(f->st, "cus_1", 1000, sum_cb, &total, &err), 0);
    assert_int_equal(total, 16000);
}

static void test_meter_strict(void **state)
{
    run_meter(*state, 1);
}

static void test_meter_batched(void **state)
{
    run_meter(*state, 0);
}

static void test_meter_stop_commits_queue(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    add_customer(f, "cus_1", "a@b.co");
    tg_meter_t *m;
    assert_int_equal(tg_meter_start(f->url, 0, 10000, &m, &err), 0); /* 10 s batches */
    for (int i = 0; i < 100; i++) {
        tg_usage_t u = row(tg_meter_next_event_id(), "api_calls", 1);
        assert_int_equal(tg_meter_submit(m, &u, 1, NULL, NULL), 0);
    }
    tg_meter_stop(m); /* must not wait 10 s, must not drop anything */
    uint64_t n = 0;
    assert_int_equal(tg_store_usage_total(f->st, "api_calls", &n, &err), 0);
    assert_int_equal(n, 100);
    uint64_t a = tg_meter_next_event_id(), b = tg_meter_next_event_id();
    assert_true(b > a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_customers_and_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meter_strict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meter_batched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meter_stop_commits_queue, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
