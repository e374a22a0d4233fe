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
 * tg_store_usage_event_ids_each lists the ids kept (both backends), pruned ones gone.
 * SQLite keeps a stored batch's ids as one usage_event_id_blocks row (migration 35):
 * - one block per record_many call that has event rows (none for calls only), read back exactly:
 *   every id with its time and customer;
 * - the since filter applies to each id, not to the block; the prune deletes a block only once
 *   its newest id is past the cut-off, and counts its ids;
 * - ids stored before migration 35 (rows of usage_event_ids) are still read and pruned;
 * - a malformed block is refused naming its id, and nothing of it is passed on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/tmpstore.h"
#include "store/event_id_block.h"
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
    /* a batch each: SQLite prunes a batch's ids together, once the newest is old enough
     * (test_sqlite_block_lives_until_its_newest_id_expires) */
    for (uint64_t i = 0; i < 3; i++) {
        tg_usage_batch_t b = {300 + i, &rows[i], 1, "node1"};
        assert_int_equal(tg_store_usage_record_many(t->st, &b, 1, NULL, &err), 0);
    }
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
    for (uint64_t i = 0; i < 4; i++) { /* a batch each, as in test_prune_forgets_old_ids_only */
        tg_usage_batch_t b = {400 + i, &rows[i], 1, "node1"};
        assert_int_equal(tg_store_usage_record_many(t->st, &b, 1, NULL, &err), 0);
    }
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

/* ---- SQLite's blocks (migration 35) ---- */

/* The SQLite file of t, opened beside the store to look inside it. */
static sqlite3 *open_file(const tg_tmpstore_t *t)
{
    sqlite3 *db = NULL;
    assert_int_equal(strncmp(t->url, "sqlite:", 7), 0);
    assert_int_equal(sqlite3_open(t->url + 7, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static int64_t file_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

#define SEEN_MAX 16
typedef struct seen {
    uint64_t id[SEEN_MAX];
    int64_t ts[SEEN_MAX];
    char customer[SEEN_MAX][TG_ID_MAX];
    size_t n;
} seen_t;

static int collect_id(void *arg, uint64_t event_id, int64_t ts_s)
{
    seen_t *v = arg;
    assert_true(v->n < SEEN_MAX);
    v->id[v->n] = event_id;
    v->ts[v->n++] = ts_s;
    return 0;
}

static int collect_entry(void *arg, uint64_t event_id, int64_t ts_s, const char *customer_id)
{
    seen_t *v = arg;
    snprintf(v->customer[v->n], TG_ID_MAX, "%s", customer_id);
    return collect_id(arg, event_id, ts_s);
}

/* The ids kept with an event time at or after since_s, sorted by id. */
static seen_t ids_read(tg_store_t *st, int64_t since_s)
{
    seen_t v = {0};
    tg_err_t err = {0};
    assert_int_equal(tg_store_usage_event_ids_each(st, since_s, collect_id, &v, &err), 0);
    for (size_t i = 1; i < v.n; i++) /* insertion sort: a few ids */
        for (size_t j = i; j > 0 && v.id[j - 1] > v.id[j]; j--) {
            uint64_t id = v.id[j];
            int64_t ts = v.ts[j];
            v.id[j] = v.id[j - 1];
            v.ts[j] = v.ts[j - 1];
            v.id[j - 1] = id;
            v.ts[j - 1] = ts;
        }
    return v;
}

static void test_sqlite_one_block_per_batch_read_back_exactly(void **state)
{
    tg_tmpstore_t *t = *state;
    if (tg_tmpstore_backend_is_pg())
        skip();
    tg_err_t err = {0};
    tg_usage_t first[3] = {event_row("cus_a", 42, "tokens", 5, EVENT_TS_S),
                           event_row("cus_bb", 43, "tokens", 7, EVENT_TS_S - 3600),
                           event_row("cus_a", 44, "tokens", 1, EVENT_TS_S + 60)};
    tg_usage_t call = event_row("cus_a", 45, "tokens", 1, EVENT_TS_S);
    call.event_id = 45; /* a call's row: no id kept */
    snprintf(call.endpoint, sizeof(call.endpoint), "POST /v1/chat");
    tg_usage_t second = event_row("cus_c", (UINT64_C(1) << 62) + 7, "tokens", 2, EVENT_TS_S);
    tg_usage_batch_t b1 = {1, first, 3, NULL}, calls = {2, &call, 1, NULL};
    tg_usage_batch_t two[2] = {{3, &second, 1, NULL}, {4, &call, 1, NULL}}; /* one call, one block */
    assert_int_equal(tg_store_usage_record_many(t->st, &b1, 1, NULL, &err), 0);
    assert_int_equal(tg_store_usage_record_many(t->st, &calls, 1, NULL, &err), 0);
    assert_int_equal(tg_store_usage_record_many(t->st, two, 2, NULL, &err), 0);

    sqlite3 *db = open_file(t);
    assert_int_equal(file_int(db, "SELECT count(*) FROM usage_event_id_blocks"), 2);
    assert_int_equal(file_int(db, "SELECT count(*) FROM usage_event_ids"), 0); /* no row per event */
    assert_int_equal(file_int(db, "SELECT n FROM usage_event_id_blocks ORDER BY id LIMIT 1"), 3);
    assert_int_equal(file_int(db, "SELECT ts_min FROM usage_event_id_blocks ORDER BY id LIMIT 1"), EVENT_TS_S - 3600);
    assert_int_equal(file_int(db, "SELECT ts_max FROM usage_event_id_blocks ORDER BY id LIMIT 1"), EVENT_TS_S + 60);
    /* the first block's entries as packed: ids, times and customers in the batch's order */
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT id, ts_min, ts_max, n, data FROM usage_event_id_blocks ORDER BY id",
                                        -1, &s, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    tg_event_id_block_t b = {sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
                             sqlite3_column_int64(s, 2), sqlite3_column_int64(s, 3),
                             sqlite3_column_blob(s, 4),  (size_t)sqlite3_column_bytes(s, 4)};
    seen_t e = {0};
    assert_int_equal(tg_event_id_block_each(&b, collect_entry, &e, &err), 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    assert_int_equal(e.n, 3);
    assert_int_equal(e.id[0], 42);
    assert_int_equal(e.id[1], 43);
    assert_int_equal(e.id[2], 44);
    assert_int_equal(e.ts[1], EVENT_TS_S - 3600);
    assert_string_equal(e.customer[0], "cus_a");
    assert_string_equal(e.customer[1], "cus_bb");

    seen_t v = ids_read(t->st, 0);
    assert_int_equal(v.n, 4);
    const uint64_t want_id[4] = {42, 43, 44, (UINT64_C(1) << 62) + 7};
    const int64_t want_ts[4] = {EVENT_TS_S, EVENT_TS_S - 3600, EVENT_TS_S + 60, EVENT_TS_S};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(v.id[i], want_id[i]);
        assert_int_equal(v.ts[i], want_ts[i]);
    }
    /* the since filter applies to each id: 43 is older than the block's newest */
    v = ids_read(t->st, EVENT_TS_S);
    assert_int_equal(v.n, 3);
    assert_int_equal(v.id[0], 42);
    assert_int_equal(v.id[1], 44);
    assert_int_equal(ids_kept(t->st, EVENT_TS_S + 61), 0);
}

static void test_sqlite_block_lives_until_its_newest_id_expires(void **state)
{
    tg_tmpstore_t *t = *state;
    if (tg_tmpstore_backend_is_pg())
        skip();
    tg_err_t err = {0};
    tg_usage_t spread[3] = {event_row("cus_a", 1, "tokens", 1, EVENT_TS_S - 40 * 86400),
                            event_row("cus_a", 2, "tokens", 1, EVENT_TS_S - 40 * 86400),
                            event_row("cus_a", 3, "tokens", 1, EVENT_TS_S)};
    tg_usage_t old = event_row("cus_b", 4, "tokens", 1, EVENT_TS_S - 50 * 86400);
    tg_usage_batch_t b1 = {1, spread, 3, NULL}, b2 = {2, &old, 1, NULL};
    assert_int_equal(tg_store_usage_record_many(t->st, &b1, 1, NULL, &err), 0);
    assert_int_equal(tg_store_usage_record_many(t->st, &b2, 1, NULL, &err), 0);
    size_t deleted = 99;
    /* the spread block's newest id is recent: only the old block goes */
    assert_int_equal(tg_store_usage_event_ids_prune(t->st, EVENT_TS_S - 35 * 86400, 1000, &deleted, &err), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(ids_kept(t->st, 0), 3); /* 1 and 2 outlive their cut-off with 3 */
    assert_int_equal(ids_kept(t->st, EVENT_TS_S - 35 * 86400), 1);
    /* once 3 is past the cut-off the whole block goes, its 3 ids counted */
    assert_int_equal(tg_store_usage_event_ids_prune(t->st, EVENT_TS_S + 1, 1000, &deleted, &err), 0);
    assert_int_equal(deleted, 3);
    assert_int_equal(ids_kept(t->st, 0), 0);
    assert_int_equal(tg_store_usage_event_ids_prune(t->st, EVENT_TS_S + 1, 1000, &deleted, &err), 0);
    assert_int_equal(deleted, 0);
}

/* A store upgraded from schema 34 holds one row per id in usage_event_ids: still read beside
 * the blocks and pruned first (the oldest), limit counting rows. */
static void test_sqlite_ids_stored_before_blocks_read_and_pruned(void **state)
{
    tg_tmpstore_t *t = *state;
    if (tg_tmpstore_backend_is_pg())
        skip();
    tg_err_t err = {0};
    char sql[256];
    snprintf(sql, sizeof(sql),
             "INSERT INTO usage_event_ids(event_id, customer_id, ts) VALUES (7, 'cus_a', %lld), (8, 'cus_a', %lld),"
             " (9, 'cus_b', %lld)",
             (long long)(EVENT_TS_S - 40 * 86400), (long long)(EVENT_TS_S - 39 * 86400), (long long)EVENT_TS_S);
    assert_int_equal(tg_tmpstore_exec(t, sql), 0);
    tg_usage_t old = event_row("cus_a", 10, "tokens", 1, EVENT_TS_S - 38 * 86400),
               recent = event_row("cus_a", 11, "tokens", 1, EVENT_TS_S);
    tg_usage_batch_t b1 = {1, &old, 1, NULL}, b2 = {2, &recent, 1, NULL};
    assert_int_equal(tg_store_usage_record_many(t->st, &b1, 1, NULL, &err), 0);
    assert_int_equal(tg_store_usage_record_many(t->st, &b2, 1, NULL, &err), 0);
    seen_t v = ids_read(t->st, 0);
    assert_int_equal(v.n, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(v.id[i], 7 + i);
    assert_int_equal(ids_kept(t->st, EVENT_TS_S), 2);
    size_t deleted = 0;
    assert_int_equal(tg_store_usage_event_ids_prune(t->st, EVENT_TS_S - 35 * 86400, 1, &deleted, &err), 0);
    assert_int_equal(deleted, 1); /* 7: an old row, the oldest */
    assert_int_equal(tg_store_usage_event_ids_prune(t->st, EVENT_TS_S - 35 * 86400, 2, &deleted, &err), 0);
    assert_int_equal(deleted, 2); /* 8, then the block of 10 */
    assert_int_equal(tg_store_usage_event_ids_prune(t->st, EVENT_TS_S - 35 * 86400, 2, &deleted, &err), 0);
    assert_int_equal(deleted, 0);
    v = ids_read(t->st, 0);
    assert_int_equal(v.n, 2);
    assert_int_equal(v.id[0], 9);
    assert_int_equal(v.id[1], 11);
}

static int never_called(void *arg, uint64_t event_id, int64_t ts_s)
{
    (void)arg;
    (void)event_id;
    (void)ts_s;
    fail_msg("an id of a malformed block was passed on");
    return 0;
}

/* Damaged blocks (written here by hand; the store writes them whole in the batch's transaction)
 * are refused with their row id: none crashes, none is skipped. */
static void test_sqlite_malformed_block_refused_with_its_id(void **state)
{
    tg_tmpstore_t *t = *state;
    if (tg_tmpstore_backend_is_pg())
        skip();
    /* one good entry: id 1, ts 0x10, customer "ab" */
    const char *good = "0100000000000000"
                       "1000000000000000"
                       "026162";
    static const struct {
        const char *data_hex; /* after the good entry */
        int64_t n, ts_min, ts_max;
        const char *why;
    } cases[] = {
        {"", 2, 0, 100, "shorter than its n entries"},
        {"0200000000000000"
         "1000000000000000"
         "0361",
         2, 0, 100, "cut short"}, /* customer runs past the end */
        {"00", 1, 0, 100, "bytes follow"},
        {"", 0, 0, 100, "no entries"},
        {"", 1, 0x11, 100, "outside the block's ts_min..ts_max"},
        {"0200000000000080"
         "1000000000000000"
         "00",
         2, 0, 100, "bit 63"},
        {"0200000000000000"
         "1000000000000000"
         "28"
         "61616161616161616161616161616161616161616161616161616161616161616161616161616161",
         2, 0, 100, "too long"},
        {"0200000000000000"
         "1000000000000000"
         "026100",
         2, 0, 100, "NUL byte"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char sql[512];
        assert_int_equal(tg_tmpstore_exec(t, "DELETE FROM usage_event_id_blocks"), 0);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO usage_event_id_blocks(id, ts_min, ts_max, n, data) VALUES (%zu, %lld, %lld, %lld,"
                 " X'%s%s')",
                 70 + i, (long long)cases[i].ts_min, (long long)cases[i].ts_max, (long long)cases[i].n, good,
                 cases[i].data_hex);
        assert_int_equal(tg_tmpstore_exec(t, sql), 0);
        tg_err_t err = {0};
        assert_int_equal(tg_store_usage_event_ids_each(t->st, 0, never_called, NULL, &err), TG_ESTORE);
        char want[64];
        snprintf(want, sizeof(want), "usage_event_id_blocks row %zu is malformed", 70 + i);
        if (strstr(err.msg, want) == NULL || strstr(err.msg, cases[i].why) == NULL)
            fail_msg("case %zu: %s", i, err.msg);
    }
    /* the good entry alone reads */
    char sql[256];
    assert_int_equal(tg_tmpstore_exec(t, "DELETE FROM usage_event_id_blocks"), 0);
    snprintf(sql, sizeof(sql),
             "INSERT INTO usage_event_id_blocks(id, ts_min, ts_max, n, data) VALUES (9, 16, 16, 1, X'%s')", good);
    assert_int_equal(tg_tmpstore_exec(t, sql), 0);
    seen_t v = ids_read(t->st, 0);
    assert_int_equal(v.n, 1);
    assert_int_equal(v.id[0], 1);
    assert_int_equal(v.ts[0], 16);
}

/* The dedup index's checkpoint names a block id and claims again the blocks after it
 * (metering/events.h): an id is never handed out twice, even once the prune deleted the newest
 * block (migration 37; a plain INTEGER PRIMARY KEY handed max(id) + 1 out again). PostgreSQL
 * keeps no blocks: both calls say so. */
static void test_block_ids_never_handed_out_twice(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_err_t err = {0};
    int64_t last = -1;
    uint64_t n = 0;
    if (tg_tmpstore_backend_is_pg()) {
        assert_int_equal(tg_store_usage_event_id_blocks_last(t->st, &last, &err), TG_ESTATE);
        assert_int_equal(tg_store_usage_event_id_blocks_after(t->st, 0, 0, count_id, &n, &err), TG_ESTATE);
        return;
    }
    assert_int_equal(tg_store_usage_event_id_blocks_last(t->st, &last, &err), 0);
    assert_int_equal(last, 0); /* none yet */
    tg_usage_t rows[3] = {event_row("cus_a", 1, "tokens", 1, EVENT_TS_S),
                          event_row("cus_a", 2, "tokens", 1, EVENT_TS_S),
                          event_row("cus_a", 3, "tokens", 1, EVENT_TS_S)};
    for (uint64_t i = 0; i < 2; i++) {
        tg_usage_batch_t b = {500 + i, &rows[i], 1, NULL};
        assert_int_equal(tg_store_usage_record_many(t->st, &b, 1, NULL, &err), 0);
    }
    assert_int_equal(tg_store_usage_event_id_blocks_last(t->st, &last, &err), 0);
    assert_int_equal(last, 2);
    assert_int_equal(tg_store_usage_event_id_blocks_after(t->st, 1, 0, count_id, &n, &err), 0);
    assert_int_equal(n, 1); /* block 2 only */
    size_t deleted = 0;
    assert_int_equal(tg_store_usage_event_ids_prune(t->st, EVENT_TS_S + 1, 1000, &deleted, &err), 0);
    assert_int_equal(deleted, 2);
    assert_int_equal(tg_store_usage_event_id_blocks_last(t->st, &last, &err), 0);
    assert_int_equal(last, 2); /* the newest block is gone, its id still handed out */
    tg_usage_batch_t b = {502, &rows[2], 1, NULL};
    assert_int_equal(tg_store_usage_record_many(t->st, &b, 1, NULL, &err), 0);
    assert_int_equal(tg_store_usage_event_id_blocks_last(t->st, &last, &err), 0);
    assert_int_equal(last, 3);
    n = 0;
    assert_int_equal(tg_store_usage_event_id_blocks_after(t->st, 2, 0, count_id, &n, &err), 0);
    assert_int_equal(n, 1); /* the new block is after a checkpoint taken before the prune */
    n = 0;
    assert_int_equal(tg_store_usage_event_id_blocks_after(t->st, 2, EVENT_TS_S + 1, count_id, &n, &err), 0);
    assert_int_equal(n, 0); /* ids before since_s are left out, as in tg_store_usage_event_ids_each */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_same_event_from_two_nodes_counts_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_ids_appended_not_looked_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_are_not_deduplicated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_forgets_old_ids_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_keeps_window_and_margin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_one_block_per_batch_read_back_exactly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_block_lives_until_its_newest_id_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_ids_stored_before_blocks_read_and_pruned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_malformed_block_refused_with_its_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_block_ids_never_handed_out_twice, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
