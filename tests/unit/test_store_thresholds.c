/* test_store_thresholds.c - store_thresholds.h on both backends (TG_TEST_BACKEND=postgres for
 * PostgreSQL): a mark is recorded once per (customer, period, kind, metric, level), also inside a
 * transaction and after the connection is reopened (a restart); budgets are set, replaced,
 * removed and listed in pages; trials about to end are found by their end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/tmpstore.h"
#include "notify/events.h"
#include "notify/thresholds.h"
#include "store/store_notify.h"
#include "store/store_thresholds.h"

static int setup(void **state)
{
    tg_tmpstore_t *t = calloc(1, sizeof(*t));
    assert_int_equal(tg_tmpstore_open(t, "thresholds"), 0);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    tg_tmpstore_t *t = *state;
    assert_int_equal(tg_tmpstore_close(t), 0);
    free(t);
    return 0;
}

static void add_customer(tg_store_t *st, const char *id, const char *status, int64_t trial_end)
{
    tg_customer_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.id, sizeof(c.id), "%s", id);
    snprintf(c.email, sizeof(c.email), "%s@example.com", id);
    snprintf(c.name, sizeof(c.name), "Name of %s", id);
    snprintf(c.plan_id, sizeof(c.plan_id), "free");
    snprintf(c.status, sizeof(c.status), "%s", status);
    c.created_at = c.anchor_at = 1000;
    c.trial_end = trial_end;
    tg_err_t err = {0};
    assert_int_equal(tg_store_customer_insert(st, &c, &err), 0);
}

static tg_mark_t mark(const char *customer, int64_t period, const char *kind, const char *metric, int64_t level)
{
    tg_mark_t m;
    memset(&m, 0, sizeof(m));
    snprintf(m.customer_id, sizeof(m.customer_id), "%s", customer);
    m.period_start = period;
    snprintf(m.kind, sizeof(m.kind), "%s", kind);
    snprintf(m.metric, sizeof(m.metric), "%s", metric);
    m.level = level;
    m.created_at = 5000;
    return m;
}

typedef struct {
    tg_mark_t m[16];
    size_t n;
} marks_t;

static int collect_mark(const tg_mark_t *m, void *arg)
{
    marks_t *s = arg;
    if (s->n < 16)
        s->m[s->n++] = *m;
    return 0;
}

static int insert(tg_store_t *st, tg_mark_t m)
{
    int inserted = -1;
    tg_err_t err = {0};
    assert_int_equal(tg_store_mark_insert(st, &m, &inserted, &err), 0);
    return inserted;
}

static void test_marks_once(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_err_t err = {0};
    assert_int_equal(insert(t->st, mark("cus_1", 100, TG_MARK_USAGE, "api_calls", 80)), 1);
    assert_int_equal(insert(t->st, mark("cus_1", 100, TG_MARK_USAGE, "api_calls", 80)), 0);
    /* any part of the key differing is another mark */
    assert_int_equal(insert(t->st, mark("cus_1", 100, TG_MARK_USAGE, "api_calls", 100)), 1);
    assert_int_equal(insert(t->st, mark("cus_1", 100, TG_MARK_USAGE, "tokens", 80)), 1);
    assert_int_equal(insert(t->st, mark("cus_1", 200, TG_MARK_USAGE, "api_calls", 80)), 1);
    assert_int_equal(insert(t->st, mark("cus_2", 100, TG_MARK_USAGE, "api_calls", 80)), 1);
    assert_int_equal(insert(t->st, mark("cus_1", 100, TG_MARK_EXHAUSTED, "api_calls", 100)), 1);
    assert_int_equal(insert(t->st, mark("cus_1", 100, TG_MARK_BUDGET, "", 100)), 1);
    assert_int_equal(insert(t->st, mark("cus_1", 100, TG_MARK_BUDGET, "", 100)), 0);

    /* a repeat inside a transaction leaves the transaction usable (PostgreSQL aborts on a
     * failed statement: the conflict must not be one) */
    assert_int_equal(tg_store_tx_begin(t->st, &err), 0);
    assert_int_equal(insert(t->st, mark("cus_1", 100, TG_MARK_USAGE, "api_calls", 80)), 0);
    assert_int_equal(insert(t->st, mark("cus_1", 100, TG_MARK_USAGE, "api_calls", 120)), 1);
    assert_int_equal(tg_store_tx_commit(t->st, &err), 0);
    /* a rolled-back mark is not there */
    assert_int_equal(tg_store_tx_begin(t->st, &err), 0);
    assert_int_equal(insert(t->st, mark("cus_1", 300, TG_MARK_USAGE, "api_calls", 80)), 1);
    tg_store_tx_rollback(t->st);

    /* after a restart (a new connection), the marks still refuse the same crossing */
    tg_store_close(t->st);
    assert_int_equal(tg_store_open(t->url, &t->st, &err), 0);
    assert_int_equal(insert(t->st, mark("cus_1", 100, TG_MARK_USAGE, "api_calls", 120)), 0);
    assert_int_equal(insert(t->st, mark("cus_1", 300, TG_MARK_USAGE, "api_calls", 80)), 1);

    marks_t s = {0};
    assert_int_equal(tg_store_marks_list(t->st, "cus_1", 100, collect_mark, &s, &err), 0);
    assert_int_equal(s.n, 8);
    assert_int_equal(s.m[0].period_start, 300); /* newest period first */
    assert_int_equal(s.m[1].period_start, 200);
    assert_string_equal(s.m[2].kind, TG_MARK_BUDGET);
    assert_string_equal(s.m[2].metric, "");
    assert_string_equal(s.m[3].kind, TG_MARK_EXHAUSTED);
    assert_string_equal(s.m[4].kind, TG_MARK_USAGE);
    assert_string_equal(s.m[4].metric, "api_calls");
    assert_int_equal(s.m[4].level, 80);
    assert_int_equal(s.m[4].created_at, 5000);
    assert_int_equal(s.m[6].level, 120);
    assert_string_equal(s.m[7].metric, "tokens");
    s.n = 0;
    assert_int_equal(tg_store_marks_list(t->st, "cus_1", 2, collect_mark, &s, &err), 0);
    assert_int_equal(s.n, 2);
}

typedef struct {
    char ids[8][TG_ID_MAX];
    int64_t v[8];
    size_t n;
} pairs_t;

static int collect_pair(const char *id, int64_t v, void *arg)
{
    pairs_t *p = arg;
    if (p->n < 8) {
        snprintf(p->ids[p->n], TG_ID_MAX, "%s", id);
        p->v[p->n++] = v;
    }
    return 0;
}

static void test_budgets(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_err_t err = {0};
    add_customer(t->st, "cus_a", "active", 0);
    add_customer(t->st, "cus_b", "active", 0);
    add_customer(t->st, "cus_c", "active", 0);
    int64_t v = -1;
    assert_int_equal(tg_store_budget_get(t->st, "cus_a", &v, &err), 0);
    assert_int_equal(v, 0);
    assert_int_equal(tg_store_budget_set(t->st, "cus_a", 50000000000, 10, &err), 0);
    assert_int_equal(tg_store_budget_set(t->st, "cus_b", 7, 10, &err), 0);
    assert_int_equal(tg_store_budget_set(t->st, "cus_c", 9, 10, &err), 0);
    assert_int_equal(tg_store_budget_set(t->st, "cus_b", 8, 11, &err), 0); /* replaced */
    assert_int_equal(tg_store_budget_get(t->st, "cus_a", &v, &err), 0);
    assert_int_equal(v, 50000000000);
    assert_int_equal(tg_store_budget_get(t->st, "cus_b", &v, &err), 0);
    assert_int_equal(v, 8);
    assert_int_equal(tg_store_budget_set(t->st, "cus_c", 0, 12, &err), 0); /* removed */
    assert_int_equal(tg_store_budget_get(t->st, "cus_c", &v, &err), 0);
    assert_int_equal(v, 0);
    assert_int_equal(tg_store_budget_set(t->st, "cus_c", 0, 12, &err), 0); /* removing none: fine */
    /* an unknown customer has no budget to set */
    assert_int_not_equal(tg_store_budget_set(t->st, "cus_nobody", 5, 12, &err), 0);

    pairs_t p = {0};
    assert_int_equal(tg_store_budgets_list(t->st, "", 1, collect_pair, &p, &err), 0);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.ids[0], "cus_a");
    assert_int_equal(tg_store_budgets_list(t->st, "cus_a", 10, collect_pair, &p, &err), 0);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.ids[1], "cus_b");
    assert_int_equal(p.v[1], 8);
}

static void test_trials_ending(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_err_t err = {0};
    add_customer(t->st, "cus_t1", "trialing", 10000);
    add_customer(t->st, "cus_t2", "trialing", 20000);
    add_customer(t->st, "cus_t3", "trialing", 30000);
    add_customer(t->st, "cus_over", "active", 15000); /* converted: not a trial any more */
    add_customer(t->st, "cus_none", "active", 0);
    pairs_t p = {0};
    assert_int_equal(tg_store_trials_ending(t->st, 5000, 20000, 10, collect_pair, &p, &err), 0);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.ids[0], "cus_t1");
    assert_int_equal(p.v[0], 10000);
    assert_string_equal(p.ids[1], "cus_t2");
    p.n = 0; /* ends already past are not "about to end"; the bound is exclusive below */
    assert_int_equal(tg_store_trials_ending(t->st, 10000, 40000, 1, collect_pair, &p, &err), 0);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.ids[0], "cus_t2");
    /* a trial reminded already (its mark) is not listed again; another end is another trial */
    assert_int_equal(insert(t->st, mark("cus_t1", 10000, TG_MARK_TRIAL, "", 3)), 1);
    assert_int_equal(insert(t->st, mark("cus_t2", 19999, TG_MARK_TRIAL, "", 3)), 1);
    p.n = 0;
    assert_int_equal(tg_store_trials_ending(t->st, 5000, 20000, 10, collect_pair, &p, &err), 0);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.ids[0], "cus_t2");
}

typedef struct {
    char types[8][48];
    char data[8][256];
    size_t n;
} evs_t;

static int collect_event(const tg_event_row_t *e, void *arg)
{
    evs_t *v = arg;
    if (v->n < 8) {
        snprintf(v->types[v->n], sizeof(v->types[0]), "%s", e->type);
        snprintf(v->data[v->n], sizeof(v->data[0]), "%s", e->data);
        v->n++;
    }
    return 0;
}

static size_t count_events(tg_store_t *st, const char *customer, evs_t *v)
{
    tg_page_t page = {.limit = 100, .after = ""};
    tg_page_end_t end;
    tg_err_t err = {0};
    memset(v, 0, sizeof(*v));
    assert_int_equal(tg_store_event_page(st, customer, &page, collect_event, v, &end, &err), 0);
    return v->n;
}

/* tg_thresholds_fire: the mark and the event in one transaction, once. A repeat writes nothing;
 * an event already there under the same dedupe key (without its mark) is not written again;
 * inside a caller's transaction that is rolled back, neither stays. */
static void test_fire_once(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_err_t err = {0};
    add_customer(t->st, "cus_f", "active", 0);
    tg_mark_t m = mark("cus_f", 100, TG_MARK_USAGE, "api_calls", 80);
    json_t *data = json_pack("{s:s,s:i}", "metric", "api_calls", "threshold_percent", 80);
    int fired = -1;
    assert_int_equal(tg_thresholds_fire(t->st, &m, TG_EVENT_USAGE_THRESHOLD_REACHED, data, &fired, &err), 0);
    assert_int_equal(fired, 1);
    assert_int_equal(tg_thresholds_fire(t->st, &m, TG_EVENT_USAGE_THRESHOLD_REACHED, data, &fired, &err), 0);
    assert_int_equal(fired, 0);
    evs_t v;
    assert_int_equal(count_events(t->st, "cus_f", &v), 1);
    assert_string_equal(v.types[0], "usage.threshold_reached");
    assert_non_null(strstr(v.data[0], "\"threshold_percent\":80"));

    /* the event is there, its mark is not (a repair by hand): the dedupe key refuses it */
    assert_int_equal(tg_tmpstore_exec(t, "DELETE FROM notification_marks"), 0);
    assert_int_equal(tg_thresholds_fire(t->st, &m, TG_EVENT_USAGE_THRESHOLD_REACHED, data, &fired, &err), 0);
    assert_int_equal(fired, 0);
    assert_int_equal(count_events(t->st, "cus_f", &v), 1);
    marks_t s = {0};
    assert_int_equal(tg_store_marks_list(t->st, "cus_f", 10, collect_mark, &s, &err), 0);
    assert_int_equal(s.n, 1); /* the mark is back */

    /* an unknown event type fails the whole: no mark is left behind */
    tg_mark_t m2 = mark("cus_f", 100, TG_MARK_USAGE, "api_calls", 100);
    assert_int_not_equal(tg_thresholds_fire(t->st, &m2, "no.such_type", data, &fired, &err), 0);
    s.n = 0;
    assert_int_equal(tg_store_marks_list(t->st, "cus_f", 10, collect_mark, &s, &err), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(tg_thresholds_fire(t->st, &m2, TG_EVENT_USAGE_THRESHOLD_REACHED, data, &fired, &err), 0);
    assert_int_equal(fired, 1);
    assert_int_equal(count_events(t->st, "cus_f", &v), 2);
    json_decref(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_marks_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budgets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trials_ending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fire_once, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
