/* test_store_event_dedup.c - usage events' ids in the store (issue 16), on the backend of
 * TG_TEST_BACKEND (SQLite by default, PostgreSQL with TG_TEST_BACKEND=postgres).
 * PostgreSQL, where every node's batches meet, counts each event once across nodes:
 * - two batches with different ids and nodes (as two gateways would log the same event posted
 *   to each) add the event's units once to every total: per period, per day, per hour;
 * - a repeated event inside one batch counts once too, and the other events of the batches
 *   still count;
 * - a call's row that happens to carry the same event_id (bit 63 clear: it cannot, but its
 *   endpoint differs too) is counted every time, as calls always are;
 * - pruning deletes the ids of events older than the cut-off, only those, and an event whose id
 *   was pruned counts again (the ingest refuses such old events before they reach the store);
 *   the retention tick's cut-off is events.dedup_window and a day.
 * SQLite (one node, whose own dedup index counts each event once: metering/event_index.h) looks
 * no id up: every event row counts, and its id is appended for rebuilding that index;
 * tg_store_usage_event_ids_each lists the ids kept (both backends), pruned ones gone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/tmpstore.h"
#include "store/store.h"
#include "notify/retention.h"
#include "store/store_meter.h"

#define EVENT_TS_S INT64_C(1769853600) /* 2026-01-31T10:00:00Z */

static int setup(void **state)
{
    tg_tmpstore_t *t = calloc(1, sizeof(*t));
    assert_int_equal(tg_tmpstore_open(t, "evdedup"), 0);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    tg_tmpstore_close(*state);
    free(*state);
    return 0;
}

/* The row a gateway logs for an accepted event of customer with the 63-bit id `id`. */
static tg_usage_t event_row(const char *customer, uint64_t id, const char *metric, uint64_t units, int64_t ts_s)
{
    tg_usage_t u = {0};
    u.event_id = id | TG_USAGE_EVENT_BIT;
    snprintf(u.customer_id, sizeof(u.customer_id), "%s", customer);
    snprintf(u.plan_id, sizeof(u.plan_id), "free");
    snprintf(u.metric, sizeof(u.metric), "%s", metric);
    snprintf(u.endpoint, sizeof(u.endpoint), "%s", TG_USAGE_EVENT_ENDPOINT);
    u.units = units;
    u.ts_ns = ts_s * 1000000000;
    u.period_start = 1000;
    u.status = 200;
    return u;
}

static uint64_t total(tg_store_t *st, const char *metric)
{
    uint64_t n = 0;
    tg_err_t err = {0};
    assert_int_equal(tg_store_usage_total(st, metric, &n, &err), 0);
    return n;
}

static int add_day(const char *day, const char *metric, uint64_t units, void *arg)
{
    (void)day;
    (void)metric;
    *(uint64_t *)arg += units;
    return 0;
}

static uint64_t daily(tg_store_t *st, const char *customer)
{
    uint64_t n = 0;
    tg_err_t err = {0};
    assert_int_equal(tg_store_usage_daily(st, customer, EVENT_TS_S - 86400, EVENT_TS_S + 86400, add_day, &n, &err), 0);
    return n;
}

static uint64_t hourly(tg_store_t *st, const char *customer)
{
    uint64_t hours = 0, units = 0;
    tg_err_t err = {0};
    assert_int_equal(tg_store_meter_customer_backlog(st, customer, &hours, &units, &err), 0);
    return units;
}

static int count_id(void *arg, uint64_t event_id, int64_t ts_s)
{
    (void)ts_s;
    assert_true(event_id < TG_USAGE_EVENT_BIT);
    (*(uint64_t *)arg)++;
    return 0;
}

/* The applied event ids kept with an event time at or after since_s. */
static uint64_t ids_kept(tg_store_t *st, int64_t since_s)
{
    uint64_t n = 0;
    tg_err_t err = {0};
    assert_int_equal(tg_store_usage_event_ids_each(st, since_s, count_id, &n, &err), 0);
    return n;
}

static void test_same_event_from_two_nodes_counts_once(void **state)
{
    tg_tmpstore_t *t = *state;
    if (!tg_tmpstore_backend_is_pg())
        skip(); /* one node on SQLite: its index dedups (test_sqlite_ids_appended_not_looked_up) */
    tg_err_t err = {0};
    assert_int_equal(tg_store_meter_export_set(t->st, 1, 0, &err), 0); /* so that usage_hourly is filled */
    tg_usage_t node1[2] = {event_row("cus_a", 42, "tokens", 500, EVENT_TS_S),
                           event_row("cus_a", 43, "tokens", 7, EVENT_TS_S)};
    /* node 2 got event 42 again (a client retry), and 44 twice in one batch */
    tg_usage_t node2[3] = {event_row("cus_a", 42, "tokens", 500, EVENT_TS_S),
                           event_row("cus_a", 44, "tokens", 30, EVENT_TS_S),
                           event_row("cus_a", 44, "tokens", 30, EVENT_TS_S)};
    tg_usage_batch_t b1 = {101, node1, 2, "node1"}, b2 = {9, node2, 3, "node2"};
    tg_usage_stored_t out;
    assert_int_equal(tg_store_usage_record_many(t->st, &b1, 1, &out, &err), 0);
    assert_int_equal(out.inserted, 2);
    assert_int_equal(out.duplicates, 0);
    assert_int_equal(tg_store_usage_record_many(t->st, &b2, 1, &out, &err), 0);
    assert_int_equal(out.inserted, 1);
    assert_int_equal(out.duplicates, 2);
    /* node 3 applies a third copy, in a transaction with a batch of its own */
    tg_usage_t node3 = event_row("cus_a", 42, "tokens", 500, EVENT_TS_S),
               other = event_row("cus_b", 42, "tokens", 1, EVENT_TS_S);
    tg_usage_batch_t b3[2] = {{7, &node3, 1, "node3"}, {8, &other, 1, "node3"}};
    assert_int_equal(tg_store_usage_record_many(t->st, b3, 2, &out, &err), 0);
    assert_int_equal(out.inserted, 1); /* cus_b's event 42 is another event */
    assert_int_equal(out.duplicates, 1);
    assert_int_equal(total(t->st, "tokens"), 500 + 7 + 30 + 1);
    assert_int_equal(daily(t->st, "cus_a"), 500 + 7 + 30);
    assert_int_equal(hourly(t->st, "cus_a"), 500 + 7 + 30);
    /* a replay of a whole batch is still skipped by its batch id */
    assert_int_equal(tg_store_usage_record_many(t->st, &b1, 1, &out, &err), 0);
    assert_int_equal(out.inserted, 0);
    assert_int_equal(total(t->st, "tokens"), 500 + 7 + 30 + 1);
    assert_int_equal(ids_kept(t->st, EVENT_TS_S), 4);
}

/* SQLite: no id is looked up (the node's index counted each event once before it was logged);
 * the same rows twice count twice, and every id is kept, in the order applied, for rebuilding
 * that index. A replayed batch is still skipped by its batch id. */
static void test_sqlite_ids_appended_not_looked_up(void **state)
{
    tg_tmpstore_t *t = *state;
    if (tg_tmpstore_backend_is_pg())
        skip();
    tg_err_t err = {0};
    tg_usage_t rows[2] = {event_row("cus_a", 42, "tokens", 500, EVENT_TS_S),
                          event_row("cus_a", 43, "tokens", 7, EVENT_TS_S - 86400)};
    tg_usage_batch_t b1 = {101, rows, 2, NULL}, b2 = {102, rows, 1, NULL};
    tg_usage_stored_t out;
    assert_int_equal(tg_store_usage_record_many(t->st, &b1, 1, &out, &err), 0);
    assert_int_equal(out.inserted, 2);
    assert_int_equal(tg_store_usage_record_many(t->st, &b2, 1, &out, &err), 0);
    assert_int_equal(out.inserted, 1);
    assert_int_equal(out.duplicates, 0);
    assert_int_equal(total(t->st, "tokens"), 500 + 7 + 500);
    assert_int_equal(tg_store_usage_record_many(t->st, &b1, 1, &out, &err), 0);
    assert_int_equal(out.inserted, 0);
    assert_int_equal(ids_kept(t->st, 0), 3);
    assert_int_equal(ids_kept(t->st, EVENT_TS_S), 2); /* 43 is a day older */
}

static void test_calls_are_not_deduplicated(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_err_t err = {0};
    tg_usage_t ev = event_row("cus_a", 42, "tokens", 5, EVENT_TS_S);
    /* calls' rows: the same event id without bit 63, then with it but a call's endpoint */
    tg_usage_t call = ev, call_bit = ev;
    call.event_id = 42;
    snprintf(call.endpoint, sizeof(call.endpoint), "POST /v1/chat");
    snprintf(call_bit.endpoint, sizeof(call_bit.endpoint), "POST /v1/chat");
    for (uint64_t i = 0; i < 3; i++) {
        tg_usage_t rows[3] = {ev, call, call_bit};
        tg_usage_batch_t b = {200 + i, rows, 3, "node1"};
        tg_usage_stored_t out;
        assert_int_equal(tg_store_usage_record_many(t->st, &b, 1, &out, &err), 0);
        /* the event row: once on PostgreSQL; SQLite looks none up (its node's index does) */
        int dup = i > 0 && tg_tmpstore_backend_is_pg();
        assert_int_equal(out.inserted, dup ? 2 : 3);
        assert_int_equal(out.duplicates, dup);
    }
    assert_int_equal(total(t->st, "tokens"), (tg_tmpstore_backend_is_pg() ? 5 : 3 * 5) + 3 * (5 + 5));
}

static void test_prune_forgets_old_ids_only(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_err_t err = {0};
    tg_usage_t rows[3] = {event_row("cus_a", 1, "tokens", 1, EVENT_TS_S - 40 * 86400),
                          event_row("cus_a", 2, "tokens", 10, EVENT_TS_S - 40 * 86400),
                          event_row("cus_a", 3, "tokens", 100, EVENT_TS_S)};
    tg_usage_batch_t b = {300, rows, 3, "node1"};
    assert_int_equal(tg_store_usage_record_many(t->st, &b, 1, NULL, &err), 0);
    size_t deleted = 99;
    assert_int_equal(tg_store_usage_event_ids_prune(t->st, EVENT_TS_S - 35 * 86400, 1, &deleted, &err), 0);
    assert_int_equal(deleted, 1); /* the batch's limit */
    assert_int_equal(tg_store_usage_event_ids_prune(t->st, EVENT_TS_S - 35 * 86400, 1000, &deleted, &err), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(tg_store_usage_event_ids_prune(t->st, EVENT_TS_S - 35 * 86400, 1000, &deleted, &err), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(tg_store_usage_event_ids_prune(t->st, 0, 0, &deleted, &err), TG_EINVAL);
    assert_int_equal(ids_kept(t->st, 0), 1);
    if (!tg_tmpstore_backend_is_pg())
        return;
    /* the same three events again from another node: the recent one is still known */
    tg_usage_batch_t again = {1, rows, 3, "node2"};
    tg_usage_stored_t out;
    assert_int_equal(tg_store_usage_record_many(t->st, &again, 1, &out, &err), 0);
    assert_int_equal(out.duplicates, 1);
    assert_int_equal(out.inserted, 2);
    assert_int_equal(total(t->st, "tokens"), 111 + 11);
}

/* The retention tick's policy: events.dedup_window and a day of margin, in batches until none
 * are due. */
static void test_retention_keeps_window_and_margin(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_err_t err = {0};
    const int64_t window = 35 * 86400, now = EVENT_TS_S;
    tg_usage_t rows[4] = {event_row("cus_a", 1, "tokens", 1, now - window - TG_EVENT_IDS_MARGIN_S - 1),
                          event_row("cus_a", 2, "tokens", 1, now - window - TG_EVENT_IDS_MARGIN_S - 60),
                          event_row("cus_b", 3, "tokens", 1, now - window - TG_EVENT_IDS_MARGIN_S), /* kept */
                          event_row("cus_b", 4, "tokens", 1, now - window - 1)};                    /* kept */
    tg_usage_batch_t b = {400, rows, 4, "node1"};
    assert_int_equal(tg_store_usage_record_many(t->st, &b, 1, NULL, &err), 0);
    size_t deleted = 0;
    int more = 1;
    assert_int_equal(tg_event_ids_prune(t->st, window, now, 1, INT64_C(1000000000), &deleted, &more, &err), 0);
    assert_int_equal(deleted, 2);
    assert_int_equal(more, 0);
    assert_int_equal(ids_kept(t->st, 0), 2);
    assert_int_equal(tg_event_ids_prune(t->st, 0, now, 1, 0, &deleted, &more, &err), TG_EINVAL);
    if (!tg_tmpstore_backend_is_pg())
        return;
    tg_usage_batch_t again = {1, rows, 4, "node2"};
    tg_usage_stored_t out;
    assert_int_equal(tg_store_usage_record_many(t->st, &again, 1, &out, &err), 0);
    assert_int_equal(out.inserted, 2); /* the two pruned ones */
    assert_int_equal(out.duplicates, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_same_event_from_two_nodes_counts_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_ids_appended_not_looked_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_are_not_deduplicated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_forgets_old_ids_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_keeps_window_and_margin, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
