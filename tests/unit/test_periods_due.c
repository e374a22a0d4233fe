/* test_periods_due.c - the period closer at scale (billing/periods.c): it reads only the
 * customers due and moves each one's next period end; a customer never looked at is closed from
 * its anchor; a failing customer stays due while the run goes on; a run in slices closes every
 * customer once; a cancellation ends the schedule; several connections (tg_periods_close_pool)
 * close every customer once. On a real SQLite file, or PostgreSQL (TG_TEST_BACKEND). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/periods.h"
#include "config/config.h"
#include "store/store.h"
#include "../support/tmpstore.h"

#define NOV1_2025 INT64_C(1761955200)
#define JAN1_2026 INT64_C(1767225600)
#define FEB1_2026 INT64_C(1769904000)
#define FEB15_2026 INT64_C(1771113600)
#define MAR1_2026 INT64_C(1772323200)
#define APR1_2026 INT64_C(1775001600)

static const char *yaml = "upstream: {url: \"http://127.0.0.1:3\"}\n"
                          "admin: {token: \"0123456789abcdef0123\"}\n"
                          "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"
                          "plans:\n"
                          "  starter: {price: \"49\", included: {api_calls: 100}}\n"
                          "  free: {price: \"0\"}\n";

static int64_t clock_s;
static int64_t test_now(void)
{
    return clock_s;
}

typedef struct {
    tg_tmpstore_t t;
    tg_config_t *cfg;
    tg_sub_ctx_t x;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    char errbuf[2048];
    assert_int_equal(tg_tmpstore_open(&f->t, "pdue"), 0);
    assert_int_equal(tg_config_load_string("t.yaml", yaml, strlen(yaml), &f->cfg, errbuf, sizeof(errbuf)), 0);
    f->x = (tg_sub_ctx_t){.cfg = f->cfg, .store = f->t.st, .now_s = test_now};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    tg_config_free(f->cfg);
    assert_int_equal(tg_tmpstore_close(&f->t), 0);
    free(f);
    return 0;
}

static void add(fx_t *f, const char *id, const char *plan, int64_t anchor)
{
    tg_customer_t c = {0};
    tg_err_t err = {0};
    snprintf(c.id, sizeof(c.id), "%s", id);
    snprintf(c.email, sizeof(c.email), "%s@b.co", id);
    snprintf(c.plan_id, sizeof(c.plan_id), "%s", plan);
    snprintf(c.status, sizeof(c.status), "active");
    c.created_at = c.anchor_at = anchor;
    assert_int_equal(tg_store_customer_insert(f->t.st, &c, &err), 0);
}

static int run_at(fx_t *f, int64_t at, int *failures)
{
    tg_periods_run_t run;
    tg_err_t err = {0};
    clock_s = at;
    assert_int_equal(tg_periods_close(&f->x, NULL, INT64_MAX, &run, &err), 0);
    if (failures != NULL)
        *failures = run.failures;
    tg_periods_run_free(&run);
    return run.created;
}

typedef struct {
    const char *id;
    int64_t end;
    int found;
} find_t;

static int find_cb(const tg_customer_t *c, int64_t next_end, void *arg)
{
    find_t *q = arg;
    if (strcmp(c->id, q->id) == 0) {
        q->end = next_end;
        q->found = 1;
    }
    return 0;
}

/* The customer's next period end as the store keeps it. */
static int64_t next_end(fx_t *f, const char *id)
{
    find_t q = {id, -1, 0};
    tg_err_t err = {0};
    assert_int_equal(tg_store_customers_due(f->t.st, INT64_MAX, INT64_MIN, "", 100000, find_cb, &q, NULL, &err), 0);
    assert_true(q.found);
    return q.end;
}

static int count_cb(const tg_invoice_t *inv, void *arg)
{
    (void)inv;
    (*(int *)arg)++;
    return 0;
}

static int invoices(fx_t *f, const char *customer_id)
{
    int n = 0;
    tg_err_t err = {0};
    assert_int_equal(tg_store_invoice_list(f->t.st, customer_id, count_cb, &n, &err), 0);
    return n;
}

static void test_only_customers_due_are_read(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    add(f, "cus_a", "starter", JAN1_2026);
    add(f, "cus_b", "starter", JAN1_2026);
    assert_int_equal(run_at(f, FEB1_2026, NULL), 2);
    assert_int_equal(next_end(f, "cus_a"), MAR1_2026);
    assert_int_equal(next_end(f, "cus_b"), MAR1_2026);
    /* cus_b's schedule says April: a run in March does not look at it, although its February
     * ended (before the schedule, every run walked every customer and invoiced it) */
    assert_int_equal(tg_store_customer_set_next_period_end(f->t.st, "cus_b", MAR1_2026, APR1_2026, &err), 0);
    assert_int_equal(run_at(f, MAR1_2026, NULL), 1);
    assert_int_equal(invoices(f, "cus_a"), 2);
    assert_int_equal(invoices(f, "cus_b"), 1);
    /* and the same run again finds nobody due */
    assert_int_equal(run_at(f, MAR1_2026, NULL), 0);
}

static void test_unknown_schedule_walks_from_anchor(void **state)
{
    fx_t *f = *state;
    add(f, "cus_old", "starter", NOV1_2025); /* migrated customer: next period end 0 */
    assert_int_equal(run_at(f, FEB1_2026, NULL), 3); /* November, December, January */
    assert_int_equal(next_end(f, "cus_old"), MAR1_2026);
    assert_int_equal(run_at(f, FEB1_2026 + 86400, NULL), 0);
    assert_int_equal(run_at(f, MAR1_2026, NULL), 1);
    assert_int_equal(invoices(f, "cus_old"), 4);
}

static void test_failure_stays_due_run_goes_on(void **state)
{
    fx_t *f = *state;
    int failures = 0;
    uint64_t listed = 0;
    tg_err_t err = {0};
    add(f, "cus_a", "starter", JAN1_2026);
    add(f, "cus_gone", "removed_plan", JAN1_2026);
    add(f, "cus_z", "starter", JAN1_2026);
    assert_int_equal(run_at(f, FEB1_2026, &failures), 2);
    assert_int_equal(failures, 1);
    assert_int_equal(next_end(f, "cus_gone"), 0); /* still due: the next run tries again */
    assert_int_equal(next_end(f, "cus_z"), MAR1_2026);
    assert_int_equal(tg_store_billing_failure_count(f->t.st, &listed, &err), 0);
    assert_int_equal(listed, 1);
    assert_int_equal(run_at(f, FEB1_2026 + 60, &failures), 0);
    assert_int_equal(failures, 1);
}

static void test_slices_close_every_customer_once(void **state)
{
    fx_t *f = *state;
    enum { N = 2 * TG_PERIODS_BATCH + 37 };
    tg_err_t err = {0};
    assert_int_equal(tg_store_tx_begin(f->t.st, &err), 0);
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof(id), "cus_%05d", i);
        add(f, id, "starter", JAN1_2026);
    }
    assert_int_equal(tg_store_tx_commit(f->t.st, &err), 0);
    clock_s = FEB1_2026;
    tg_periods_cursor_t cur = {0};
    int more = 1, slices = 0, created = 0;
    while (more) {
        tg_periods_run_t run;
        /* a budget of 1 ns: one batch per slice, as a busy admin thread would get */
        assert_int_equal(tg_periods_close_some(&f->x, &cur, 1, &run, &more, &err), 0);
        created += run.created;
        tg_periods_run_free(&run);
        slices++;
        assert_true(created <= slices * TG_PERIODS_BATCH); /* one batch per slice */
        /* a customer added during the run, due at once, is met by this run or the next */
        if (slices == 1)
            add(f, "cus_late", "starter", JAN1_2026);
    }
    assert_true(slices >= 3);
    assert_true(created == N || created == N + 1);
    assert_int_equal(created + run_at(f, FEB1_2026, NULL), N + 1);
    assert_int_equal(invoices(f, NULL), N + 1);
    assert_int_equal(invoices(f, "cus_late"), 1);
}

static void test_cancellation_ends_schedule(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    add(f, "cus_c", "starter", JAN1_2026);
    tg_customer_t c;
    assert_int_equal(tg_store_customer_get(f->t.st, "cus_c", &c, &err), 0);
    c.cancel_at = FEB15_2026; /* at the end of a (shortened) period, status still active */
    assert_int_equal(tg_store_customer_update(f->t.st, &c, &err), 0);
    assert_int_equal(run_at(f, FEB1_2026, NULL), 1);
    assert_int_equal(next_end(f, "cus_c"), FEB15_2026); /* the cancellation takes effect then */
    assert_int_equal(run_at(f, FEB15_2026, NULL), 0);
    assert_int_equal(tg_store_customer_get(f->t.st, "cus_c", &c, &err), 0);
    assert_string_equal(c.status, "canceled");
    assert_int_equal(run_at(f, MAR1_2026, NULL), 1); /* February, the last period */
    assert_int_equal(next_end(f, "cus_c"), INT64_MAX);
    assert_int_equal(run_at(f, APR1_2026, NULL), 0);
    assert_int_equal(invoices(f, "cus_c"), 2);
}

/* One run, one batch: the customers with one period to close go to the store together
 * (tg_store_invoice_close_batch), the others one by one (several periods, a change scheduled at
 * the period's end), in the same transaction; each is closed once either way. */
static void test_batch_and_one_by_one_in_one_run(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    add(f, "cus_a", "starter", JAN1_2026);
    assert_int_equal(tg_store_customer_set_next_period_end(f->t.st, "cus_a", 0, FEB1_2026, &err), 0);
    add(f, "cus_old", "starter", NOV1_2025); /* three periods */
    add(f, "cus_down", "starter", JAN1_2026);
    tg_customer_t c;
    assert_int_equal(tg_store_customer_get(f->t.st, "cus_down", &c, &err), 0);
    snprintf(c.pending_plan_id, sizeof(c.pending_plan_id), "free");
    c.pending_at = FEB1_2026;
    assert_int_equal(tg_store_customer_update(f->t.st, &c, &err), 0);
    assert_int_equal(run_at(f, FEB1_2026, NULL), 1 + 3 + 1);
    assert_int_equal(next_end(f, "cus_a"), MAR1_2026);
    assert_int_equal(next_end(f, "cus_old"), MAR1_2026);
    assert_int_equal(tg_store_customer_get(f->t.st, "cus_down", &c, &err), 0);
    assert_string_equal(c.plan_id, "free"); /* applied after its last invoice under starter */
    assert_int_equal(run_at(f, FEB1_2026, NULL), 0);
    assert_int_equal(invoices(f, "cus_a"), 1);
    assert_int_equal(invoices(f, "cus_old"), 3);
    assert_int_equal(invoices(f, "cus_down"), 1);
    assert_int_equal(run_at(f, MAR1_2026, NULL), 3);
}

/* Counts the calls and says no from the `stop_at`-th on (0: never). Called from every worker. */
typedef struct {
    pthread_mutex_t mu;
    int calls;
    int stop_at;
} keep_t;

static int keep_cb(void *arg)
{
    keep_t *k = arg;
    pthread_mutex_lock(&k->mu);
    int go = k->stop_at == 0 || ++k->calls < k->stop_at;
    pthread_mutex_unlock(&k->mu);
    return go;
}

/* Three connections on one run, pages taken from one cursor: every customer due is closed by
 * exactly one of them (a customer handed to two would fail twice or be made once and found
 * once), the one that fails is listed once and stays due, the customers with several periods
 * or a change scheduled go one by one as with one connection, and the run again finds nobody.
 * A run told to stop (keep_going) leaves the rest due for the next, which closes it. */
static void test_pool_closes_every_customer_once(void **state)
{
    fx_t *f = *state;
    enum { N = 3 * TG_PERIODS_BATCH + 37 };
    tg_err_t err = {0};
    tg_store_t *more[2];
    for (int k = 0; k < 2; k++)
        assert_int_equal(tg_store_open(f->t.url, &more[k], &err), 0);
    assert_int_equal(tg_store_tx_begin(f->t.st, &err), 0);
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof(id), "cus_%05d", i);
        add(f, id, "starter", JAN1_2026);
    }
    add(f, "cus_gone", "removed_plan", JAN1_2026);
    add(f, "cus_old", "starter", NOV1_2025); /* three periods: one by one */
    assert_int_equal(tg_store_tx_commit(f->t.st, &err), 0);
    clock_s = FEB1_2026;
    tg_periods_run_t run;
    assert_int_equal(tg_periods_close_pool(&f->x, more, 2, FEB1_2026, NULL, NULL, &run, &err), 0);
    assert_int_equal(run.created, N + 3);
    assert_int_equal(run.failures, 1);
    assert_int_equal(run.nfailed, 1);
    assert_string_equal(run.failed[0].customer_id, "cus_gone");
    tg_periods_run_free(&run);
    assert_int_equal(invoices(f, NULL), N + 3);
    assert_int_equal(invoices(f, "cus_old"), 3);
    assert_int_equal(next_end(f, "cus_00000"), MAR1_2026);
    assert_int_equal(next_end(f, "cus_00999"), MAR1_2026);
    assert_int_equal(next_end(f, "cus_gone"), 0); /* still due */
    assert_int_equal(tg_periods_close_pool(&f->x, more, 2, FEB1_2026, NULL, NULL, &run, &err), 0);
    assert_int_equal(run.created, 0);
    assert_int_equal(run.failures, 1);
    tg_periods_run_free(&run);

    /* March, stopped after two pages handed out: some left due, closed by the next run */
    keep_t k = {.stop_at = 3};
    pthread_mutex_init(&k.mu, NULL);
    clock_s = MAR1_2026;
    assert_int_equal(tg_periods_close_pool(&f->x, more, 2, MAR1_2026, keep_cb, &k, &run, &err), 0);
    int first = run.created;
    tg_periods_run_free(&run);
    assert_true(first > 0 && first <= 2 * TG_PERIODS_BATCH);
    assert_int_equal(tg_periods_close_pool(&f->x, more, 2, MAR1_2026, NULL, NULL, &run, &err), 0);
    assert_int_equal(first + run.created, N + 1);
    tg_periods_run_free(&run);
    assert_int_equal(invoices(f, NULL), (N + 3) + (N + 1));
    pthread_mutex_destroy(&k.mu);
    for (int i = 0; i < 2; i++)
        tg_store_close(more[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_only_customers_due_are_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_schedule_walks_from_anchor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_stays_due_run_goes_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slices_close_every_customer_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancellation_ends_schedule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_and_one_by_one_in_one_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_closes_every_customer_once, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
