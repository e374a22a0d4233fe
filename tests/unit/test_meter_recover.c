/* test_meter_recover.c - the metering logs of a node in metering.log_dir: named after the node,
 * replayed at its start, and applied from another process by tg_meter_recover (tollgate
 * metering recover) exactly once, refusing a log a running gateway holds. Through the store
 * interface only, so it runs on every backend tmpstore.h opens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../support/tmpstore.h"
#include "metering/meter.h"
#include "metering/usage_log.h"

typedef struct {
    tg_tmpstore_t t;
    char logs[128];
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_int_equal(tg_tmpstore_open(&f->t, "recover"), 0);
    snprintf(f->logs, sizeof(f->logs), "%s/logs", f->t.dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    assert_int_equal(tg_tmpstore_close(&f->t), 0);
    free(f);
    return 0;
}

static tg_usage_t row(const char *customer_id, uint64_t units)
{
    tg_usage_t u = {0};
    u.event_id = tg_meter_next_event_id();
    snprintf(u.customer_id, sizeof(u.customer_id), "%s", customer_id);
    snprintf(u.key_id, sizeof(u.key_id), "key_1");
    snprintf(u.plan_id, sizeof(u.plan_id), "basic");
    snprintf(u.metric, sizeof(u.metric), "api_calls");
    snprintf(u.endpoint, sizeof(u.endpoint), "GET /v1/x");
    u.units = units;
    u.ts_ns = INT64_C(1767225600) * 1000000000; /* 2026-01-01 */
    u.period_start = 1767225600;
    u.status = 200;
    return u;
}

static uint64_t calls(fx_t *f)
{
    tg_err_t err = {0};
    uint64_t n = 0;
    assert_int_equal(tg_store_usage_total(f->t.st, "api_calls", &n, &err), 0);
    return n;
}

/* Writes what a node that died before storing it leaves behind: records in its log. */
static void leave_log(fx_t *f, const char *name, uint64_t batch_id, uint64_t units)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", f->logs, name);
    tg_usage_log_t *log;
    tg_err_t err = {0};
    assert_int_equal(tg_usage_log_open(path, &log, &err), 0);
    tg_usage_t u = row("cus_a", units);
    assert_int_equal(tg_usage_log_append(log, batch_id, &u, 1, &err), 0);
    tg_usage_log_close(log);
}

static void test_logs_named_after_the_node(void **state)
{
    fx_t *f = *state;
    tg_meter_opts_t o = {.store_url = f->t.url, .log_dir = f->logs, .node_id = "gw-1", .flush_ms = 1};
    tg_meter_t *m;
    tg_err_t err = {0};
    assert_int_equal(tg_meter_start_opts(&o, &m, &err), 0);
    tg_usage_t u = row("cus_a", 3);
    assert_int_equal(tg_meter_submit(m, &u, 1, NULL, NULL), 0);
    assert_int_equal(tg_meter_flush(m), 0);
    tg_meter_stop(m);
    assert_int_equal(calls(f), 3);
    char path[256];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/usage-gw-1-1.log", f->logs);
    assert_int_equal(stat(path, &sb), 0);
    snprintf(path, sizeof(path), "%s/usage-gw-1-2.log", f->logs);
    assert_int_equal(stat(path, &sb), 0);

    o.node_id = "gw/1"; /* it becomes part of a file name */
    assert_int_equal(tg_meter_start_opts(&o, &m, &err), TG_EINVAL);
    assert_non_null(strstr(err.msg, "gw/1"));
    /* no log directory and a database without a file beside which to put one */
    o = (tg_meter_opts_t){.store_url = "postgresql://127.0.0.1:1/x", .node_id = "gw-1", .flush_ms = 1};
    assert_int_not_equal(tg_meter_start_opts(&o, &m, &err), 0);
}

static void test_recover_applies_each_batch_once(void **state)
{
    fx_t *f = *state;
    assert_int_equal(mkdir(f->logs, 0700), 0);
    leave_log(f, "usage-gw-2-1.log", 1001, 5);
    leave_log(f, "usage-gw-2-2.log", 1002, 7);
    leave_log(f, "usage-gw-3-1.log", 1001, 11); /* same batch id, another node: another batch */
    leave_log(f, "notes.txt.log", 1003, 13);    /* not a metering log's name: left alone */

    tg_meter_recovered_t rec;
    tg_err_t err = {0};
    assert_int_equal(tg_meter_recover(f->t.url, f->logs, 0, &rec, &err), 0);
    assert_int_equal(rec.logs, 3);
    assert_int_equal(rec.batches, 3);
    assert_int_equal(rec.rows, 3);
    assert_int_equal(calls(f), 5 + 7 + 11);

    /* again: the logs were emptied */
    assert_int_equal(tg_meter_recover(f->t.url, f->logs, 0, &rec, &err), 0);
    assert_int_equal(rec.batches, 0);
    assert_int_equal(calls(f), 23);

    /* a log written again with a batch the store already has (the node had stored it, then
     * died before emptying its log): skipped, not counted twice */
    leave_log(f, "usage-gw-2-1.log", 1001, 5);
    assert_int_equal(tg_meter_recover(f->t.url, f->logs, 0, &rec, &err), 0);
    assert_int_equal(rec.batches, 0);
    assert_int_equal(calls(f), 23);
}

static void test_recover_refuses_a_held_log(void **state)
{
    fx_t *f = *state;
    tg_meter_opts_t o = {.store_url = f->t.url, .log_dir = f->logs, .node_id = "gw-4", .flush_ms = 1};
    tg_meter_t *m;
    tg_err_t err = {0};
    assert_int_equal(tg_meter_start_opts(&o, &m, &err), 0); /* a running gateway holds its logs */
    tg_meter_recovered_t rec;
    assert_int_equal(tg_meter_recover(f->t.url, f->logs, 0, &rec, &err), TG_ESTATE);
    tg_meter_stop(m);
    assert_int_equal(tg_meter_recover(f->t.url, f->logs, 0, &rec, &err), 0);
    assert_int_equal(rec.logs, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_logs_named_after_the_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_applies_each_batch_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_refuses_a_held_log, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
