/* test_store_outbox.c - the store's Stripe outbox and hourly meter rows (store_outbox.h,
 * store_meter.h) on the backend of TG_TEST_BACKEND (SQLite by default, PostgreSQL with
 * TG_TEST_BACKEND=postgres and TG_TEST_PG_URL): the same calls give the same rows, errors and
 * orders on both. Customers and hourly rows are set up with plain SQL both dialects accept, so
 * that these tests need nothing of the store but the calls they are about.
 *
 * PostgreSQL only (several gateways on one database): a due row read by one connection is not
 * handed to another until the first reads the queue again or goes away; two exporters marking
 * the same hour at once: the second changes nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../support/tmpstore.h"
#include "store/store_meter.h"
#include "store/store_outbox.h"

#define NOW_MS INT64_C(1772326800000) /* 2026-03-01 01:00:00 UTC */

typedef struct {
    tg_tmpstore_t db;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_int_equal(tg_tmpstore_open(&f->db, "sobx"), 0);
    assert_int_equal(tg_tmpstore_exec(&f->db,
                                      "INSERT INTO customers(id, email, name, plan_id, status, created_at,"
                                      " anchor_at) VALUES ('cus_b', 'b@example.com', 'B', 'free', 'active', 5, 5),"
                                      " ('cus_a', 'a@example.com', 'A', 'free', 'active', 5, 5),"
                                      " ('cus_old', 'o@example.com', 'O', 'free', 'active', 1, 1)"),
                     0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int rc = tg_tmpstore_close(&f->db);
    free(f);
    return rc;
}

static int64_t enqueue(tg_store_t *st, const char *kind, const char *customer, const char *key, int64_t now_ms)
{
    tg_outbox_row_t row;
    memset(&row, 0, sizeof(row));
    snprintf(row.kind, sizeof(row.kind), "%s", kind);
    snprintf(row.customer_id, sizeof(row.customer_id), "%s", customer);
    snprintf(row.idempotency_key, sizeof(row.idempotency_key), "%s", key);
    snprintf(row.method, sizeof(row.method), "POST");
    snprintf(row.path, sizeof(row.path), "/v1/customers");
    const char params[] = "email=a%40example.com&name=A";
    int64_t id = 0;
    tg_err_t err = {0};
    assert_int_equal(tg_store_outbox_insert(st, &row, params, strlen(params), now_ms, &id, &err), 0);
    assert_true(id > 0);
    return id;
}

static void clear_rows(tg_outbox_row_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tg_outbox_row_clear(&rows[i]);
}

static int collect(const tg_outbox_row_t *r, void *arg)
{
    char *out = arg;
    size_t len = strlen(out);
    snprintf(out + len, 128 - len, "%lld:%s;", (long long)r->id, r->state);
    return 0;
}

/* Every outbox call once, with the results SQLite's backend gives. */
static void test_outbox_rows(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    tg_err_t err = {0};
    /* a key enqueued twice inside the caller's transaction: TG_EEXIST, and the transaction goes
     * on (PostgreSQL would abort it on a unique violation) */
    assert_int_equal(tg_store_tx_begin(st, &err), 0);
    int64_t a1 = enqueue(st, "customer.create", "cus_a", "k_a1", NOW_MS);
    tg_outbox_row_t row;
    memset(&row, 0, sizeof(row));
    snprintf(row.kind, sizeof(row.kind), "customer.create");
    snprintf(row.customer_id, sizeof(row.customer_id), "cus_a");
    snprintf(row.idempotency_key, sizeof(row.idempotency_key), "k_a1");
    snprintf(row.method, sizeof(row.method), "POST");
    snprintf(row.path, sizeof(row.path), "/v1/x");
    assert_int_equal(tg_store_outbox_insert(st, &row, "x=1", 3, NOW_MS, NULL, &err), TG_EEXIST);
    int64_t a2 = enqueue(st, "customer.update", "cus_a", "k_a2", NOW_MS);
    assert_int_equal(tg_store_tx_commit(st, &err), 0);
    int64_t b1 = enqueue(st, "customer.create", "cus_b", "k_b1", NOW_MS - 5);
    /* a field past its cap, and a form past its cap */
    memset(row.idempotency_key, 'k', sizeof(row.idempotency_key));
    assert_int_equal(tg_store_outbox_insert(st, &row, "x=1", 3, NOW_MS, NULL, &err), TG_EINVAL);
    snprintf(row.idempotency_key, sizeof(row.idempotency_key), "k_big");
    assert_int_equal(tg_store_outbox_insert(st, &row, "x", TG_OUTBOX_PARAMS_MAX + 1, NOW_MS, NULL, &err), TG_EINVAL);

    /* due: earliest first, then by id; params with their length */
    tg_outbox_row_t rows[8];
    size_t n = 0;
    assert_int_equal(tg_store_outbox_due(st, NOW_MS - 6, rows, 8, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(tg_store_outbox_due(st, NOW_MS, rows, 8, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(rows[0].id, b1);
    assert_int_equal(rows[1].id, a1);
    assert_int_equal(rows[2].id, a2);
    assert_string_equal(rows[1].params, "email=a%40example.com&name=A");
    assert_int_equal(rows[1].params_len, strlen("email=a%40example.com&name=A"));
    assert_string_equal(rows[1].idempotency_key, "k_a1");
    assert_string_equal(rows[1].state, "pending");
    assert_int_equal(rows[1].next_attempt_at_ms, NOW_MS);
    assert_int_equal(rows[1].created_at, NOW_MS / 1000);
    clear_rows(rows, n);
    assert_int_equal(tg_store_outbox_due(st, NOW_MS, rows, 2, &n, &err), 0);
    assert_int_equal(n, 2);
    clear_rows(rows, n);
    int64_t at = 0;
    uint64_t pending = 0;
    assert_int_equal(tg_store_outbox_next_due(st, &at, &pending, &err), 0);
    assert_int_equal(at, NOW_MS - 5);
    assert_int_equal(pending, 3);

    /* the calls of one customer in order; a deferral is no attempt, a retry is */
    int64_t earlier = 0, next = 0;
    assert_int_equal(tg_store_outbox_earlier_pending(st, "cus_a", a2, &earlier, &next, &err), 0);
    assert_int_equal(earlier, a1);
    assert_int_equal(next, NOW_MS);
    assert_int_equal(tg_store_outbox_earlier_pending(st, "cus_a", a1, &earlier, &next, &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_outbox_defer(st, a2, NOW_MS + 500, "waiting", NOW_MS / 1000, &err), 0);
    assert_int_equal(tg_store_outbox_retry(st, a1, NOW_MS + 1000, "Stripe 503", NOW_MS / 1000 + 1, &err), 0);
    assert_int_equal(tg_store_outbox_get(st, a2, &row, &err), 0);
    assert_int_equal(row.attempts, 0);
    assert_string_equal(row.last_error, "waiting");
    assert_int_equal(row.next_attempt_at_ms, NOW_MS + 500);
    assert_int_equal(tg_store_outbox_get_by_key(st, "k_a1", &row, &err), 0);
    assert_int_equal(row.id, a1);
    assert_int_equal(row.attempts, 1);
    assert_string_equal(row.last_error, "Stripe 503");
    assert_int_equal(row.updated_at, NOW_MS / 1000 + 1);
    assert_null(row.params);
    assert_int_equal(tg_store_outbox_get_by_key(st, "k_none", &row, &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_outbox_get(st, 9999, &row, &err), TG_ENOTFOUND);

    /* latest rows of a customer, of a kind */
    assert_int_equal(tg_store_outbox_customer_latest(st, "cus_a", &row, &err), 0);
    assert_int_equal(row.id, a2);
    assert_int_equal(tg_store_outbox_customer_latest_of(st, "cus_a", "customer.create", &row, &err), 0);
    assert_int_equal(row.id, a1);
    assert_int_equal(tg_store_outbox_customer_latest_of(st, "cus_b", "customer.update", &row, &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_outbox_customer_latest(st, "cus_none", &row, &err), TG_ENOTFOUND);

    /* customers without a Stripe customer nor a create row: oldest first */
    tg_customer_t miss[4];
    assert_int_equal(tg_store_outbox_customers_missing(st, "customer.create", miss, 4, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(miss[0].id, "cus_old");
    assert_string_equal(miss[0].email, "o@example.com");
    assert_int_equal(tg_store_outbox_customers_missing(st, "customer.update", miss, 4, &n, &err), 0);
    assert_int_equal(n, 2); /* cus_a has an update row */
    assert_string_equal(miss[0].id, "cus_old");
    assert_string_equal(miss[1].id, "cus_b");

    /* done with the customer map; a second completion or a failure changes nothing */
    assert_int_equal(tg_store_outbox_done(st, b1, "cus_StripeB", 1, NOW_MS / 1000, &err), 0);
    assert_int_equal(tg_store_outbox_done(st, b1, "cus_Other", 1, NOW_MS / 1000, &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_outbox_fail(st, b1, "late", NOW_MS / 1000, &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_outbox_retry(st, b1, 0, "late", NOW_MS / 1000, &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_outbox_defer(st, b1, 0, "late", NOW_MS / 1000, &err), TG_ENOTFOUND);
    char sid[64], owner[TG_ID_MAX];
    assert_int_equal(tg_store_stripe_customer_get(st, "cus_b", sid, sizeof(sid), &err), 0);
    assert_string_equal(sid, "cus_StripeB");
    assert_int_equal(tg_store_stripe_customer_owner(st, "cus_StripeB", owner, &err), 0);
    assert_string_equal(owner, "cus_b");
    assert_int_equal(tg_store_stripe_customer_get(st, "cus_a", sid, sizeof(sid), &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_stripe_customer_owner(st, "cus_None", owner, &err), TG_ENOTFOUND);
    /* a map that cannot be written (another customer has that Stripe id) leaves the row pending */
    assert_int_equal(tg_store_outbox_done(st, a1, "cus_StripeB", 1, NOW_MS / 1000, &err), TG_EEXIST);
    assert_int_equal(tg_store_outbox_get(st, a1, &row, &err), 0);
    assert_string_equal(row.state, "pending");
    assert_int_equal(tg_store_outbox_done(st, a1, "cus_StripeA", 0, NOW_MS / 1000, &err), 0); /* no map */
    assert_int_equal(tg_store_stripe_customer_get(st, "cus_a", sid, sizeof(sid), &err), TG_ENOTFOUND);

    /* failed, then requeued from 0 attempts; requeue of a row not failed / unknown */
    assert_int_equal(tg_store_outbox_fail(st, a2, "Stripe 400", NOW_MS / 1000, &err), 0);
    assert_int_equal(tg_store_outbox_next_due(st, &at, &pending, &err), TG_ENOTFOUND);
    assert_int_equal(pending, 0);
    tg_outbox_counts_t counts;
    assert_int_equal(tg_store_outbox_counts(st, &counts, &err), 0);
    assert_int_equal(counts.pending, 0);
    assert_int_equal(counts.done, 2);
    assert_int_equal(counts.failed, 1);
    assert_int_equal(tg_store_outbox_requeue(st, a1, NOW_MS, &err), TG_ESTATE);
    assert_int_equal(tg_store_outbox_requeue(st, 9999, NOW_MS, &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_outbox_requeue(st, a2, NOW_MS + 2000, &err), 0);
    assert_int_equal(tg_store_outbox_get(st, a2, &row, &err), 0);
    assert_string_equal(row.state, "pending");
    assert_int_equal(row.attempts, 0);
    assert_int_equal(row.next_attempt_at_ms, NOW_MS + 2000);

    /* a clock that went back: rows due after latest come in to now */
    uint64_t moved = 9;
    assert_int_equal(tg_store_outbox_pull_in(st, NOW_MS + 2000, NOW_MS, &moved, &err), 0);
    assert_int_equal(moved, 0);
    assert_int_equal(tg_store_outbox_pull_in(st, NOW_MS + 1000, NOW_MS, &moved, &err), 0);
    assert_int_equal(moved, 1);
    assert_int_equal(tg_store_outbox_next_due(st, &at, &pending, &err), 0);
    assert_int_equal(at, NOW_MS);
    assert_int_equal(pending, 1);

    /* pages, newest first, by state; a cursor from elsewhere is refused */
    char seen[128] = "";
    tg_page_t page = {.limit = 2};
    tg_page_end_t end;
    assert_int_equal(tg_store_outbox_page(st, NULL, &page, collect, seen, &end, &err), 0);
    char expect[128];
    snprintf(expect, sizeof(expect), "%lld:done;%lld:pending;", (long long)b1, (long long)a2);
    assert_string_equal(seen, expect);
    assert_true(end.has_more);
    snprintf(page.after, sizeof(page.after), "%s", end.next);
    seen[0] = '\0';
    assert_int_equal(tg_store_outbox_page(st, NULL, &page, collect, seen, &end, &err), 0);
    snprintf(expect, sizeof(expect), "%lld:done;", (long long)a1);
    assert_string_equal(seen, expect);
    assert_false(end.has_more);
    page.after[0] = '\0';
    seen[0] = '\0';
    assert_int_equal(tg_store_outbox_page(st, "done", &page, collect, seen, &end, &err), 0);
    snprintf(expect, sizeof(expect), "%lld:done;%lld:done;", (long long)b1, (long long)a1);
    assert_string_equal(seen, expect);
    assert_false(end.has_more);
    snprintf(page.after, sizeof(page.after), "cus_a");
    assert_int_equal(tg_store_outbox_page(st, NULL, &page, collect, seen, &end, &err), TG_EINVAL);

    /* pruning: done rows changed before the bound, up to the limit; the map stays */
    size_t deleted = 9;
    assert_int_equal(tg_store_outbox_prune(st, NOW_MS / 1000, 10, &deleted, &err), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(tg_store_outbox_prune(st, NOW_MS / 1000 + 1, 1, &deleted, &err), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(tg_store_outbox_prune(st, NOW_MS / 1000 + 1, 10, &deleted, &err), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(tg_store_outbox_counts(st, &counts, &err), 0);
    assert_int_equal(counts.done, 0);
    assert_int_equal(counts.pending, 1);
    assert_int_equal(tg_store_stripe_customer_get(st, "cus_b", sid, sizeof(sid), &err), 0);
}

/* Stripe's error messages come from outside: a byte that is not UTF-8 and a message cut at its
 * cap inside a character are recorded (PostgreSQL's TEXT refuses invalid UTF-8: without the
 * scrub the row could never be recorded, and would be sent again and again). */
static void test_outside_text_is_recorded(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    tg_err_t err = {0};
    int64_t id = enqueue(st, "customer.create", "cus_a", "k_text", NOW_MS);
    assert_int_equal(tg_store_outbox_retry(st, id, NOW_MS, "Stripe 400: bad \xff\xfe byte", NOW_MS / 1000, &err), 0);
    tg_outbox_row_t row;
    assert_int_equal(tg_store_outbox_get(st, id, &row, &err), 0);
    assert_int_equal(strncmp(row.last_error, "Stripe 400: bad ", 16), 0);
    if (!tg_tmpstore_is_sqlite(&f->db))
        assert_string_equal(row.last_error, "Stripe 400: bad ?? byte");
    char big[TG_OUTBOX_ERROR_MAX + 32];
    memset(big, 'x', sizeof(big));
    memcpy(big + TG_OUTBOX_ERROR_MAX - 2, "\xc3\xa9", 2); /* "é" across the 511-byte cut */
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(tg_store_outbox_defer(st, id, NOW_MS, big, NOW_MS / 1000, &err), 0);
    assert_int_equal(tg_store_outbox_get(st, id, &row, &err), 0);
    assert_int_equal(strncmp(row.last_error, big, TG_OUTBOX_ERROR_MAX - 2), 0);
    if (!tg_tmpstore_is_sqlite(&f->db))
        assert_int_equal(strlen(row.last_error), TG_OUTBOX_ERROR_MAX - 2); /* the cut character dropped */
    assert_int_equal(tg_store_outbox_done(st, id, "cus_\xe2\x82", 1, NOW_MS / 1000, &err), 0);
}

/* The tests of several gateways on one database: SQLite serves one node. */
static void skip_on_sqlite(const fx_t *f, const char *why)
{
    if (tg_tmpstore_is_sqlite(&f->db)) {
        print_message("%s: PostgreSQL only (SQLite serves one node)\n", why);
        skip();
    }
}

/* Two gateways on one database: each due row goes to one connection at a time. A connection's
 * claim lasts until it reads the queue again or closes; the other one's next_due does not count
 * claimed rows as due (its processor would spin on them). Without claims the second connection
 * got all three rows at once. */
static void test_claims_between_connections(void **state)
{
    fx_t *f = *state;
    skip_on_sqlite(f, "claims between connections");
    tg_store_t *a = f->db.st, *b = NULL;
    tg_err_t err = {0};
    assert_int_equal(tg_store_open(f->db.url, &b, &err), 0);
    int64_t r1 = enqueue(a, "customer.create", "cus_a", "k_c1", NOW_MS - 3);
    int64_t r2 = enqueue(a, "customer.create", "cus_b", "k_c2", NOW_MS - 2);
    int64_t r3 = enqueue(a, "customer.create", "cus_old", "k_c3", NOW_MS - 1);
    tg_outbox_row_t rows[8];
    size_t n = 0;
    assert_int_equal(tg_store_outbox_due(a, NOW_MS, rows, 2, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(rows[0].id, r1);
    assert_int_equal(rows[1].id, r2);
    clear_rows(rows, n);
    assert_int_equal(tg_store_outbox_due(b, NOW_MS, rows, 8, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].id, r3);
    clear_rows(rows, n);
    /* a reads again: its own rows come back, b's do not */
    assert_int_equal(tg_store_outbox_due(a, NOW_MS, rows, 8, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(rows[0].id, r1);
    assert_int_equal(rows[1].id, r2);
    clear_rows(rows, n);
    int64_t at = 0;
    uint64_t pending = 0;
    assert_int_equal(tg_store_outbox_next_due(b, &at, &pending, &err), 0);
    assert_int_equal(at, NOW_MS - 1); /* its own row; a's are a's to record */
    assert_int_equal(pending, 3);
    /* a records its rows and reads again: its claims end, nothing of b's comes to it */
    assert_int_equal(tg_store_outbox_done(a, r1, "cus_S1", 0, NOW_MS / 1000, &err), 0);
    assert_int_equal(tg_store_outbox_retry(a, r2, NOW_MS + 60000, "Stripe 503", NOW_MS / 1000, &err), 0);
    assert_int_equal(tg_store_outbox_due(a, NOW_MS, rows, 8, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(tg_store_outbox_next_due(a, &at, &pending, &err), 0);
    assert_int_equal(at, NOW_MS + 60000);
    assert_int_equal(pending, 2);
    assert_int_equal(tg_store_outbox_due(b, NOW_MS + 60000, rows, 8, &n, &err), 0);
    assert_int_equal(n, 2); /* r2 is free again */
    assert_int_equal(rows[0].id, r3);
    assert_int_equal(rows[1].id, r2);
    clear_rows(rows, n);
    assert_int_equal(tg_store_outbox_next_due(a, &at, &pending, &err), TG_ENOTFOUND); /* all b's */
    assert_int_equal(pending, 2);
    /* b goes away (a node killed): its rows are a's as soon as the server sees the session end */
    tg_store_close(b);
    for (int i = 0; i < 500; i++) {
        assert_int_equal(tg_store_outbox_due(a, NOW_MS + 60000, rows, 8, &n, &err), 0);
        clear_rows(rows, n);
        if (n == 2)
            break;
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    assert_int_equal(n, 2);
}

/* ---- hourly meter rows ---- */

static void hourly(fx_t *f, const char *customer, const char *metric, int64_t hour, int64_t period, const char *plan,
                   int64_t ts, const char *units, const char *exported, int64_t seq)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO usage_hourly(customer_id, metric, hour_start, period_start, plan_id, ts, units, exported,"
             " seq) VALUES ('%s', '%s', %lld, %lld, '%s', %lld, %s, %s, %lld)",
             customer, metric, (long long)hour, (long long)period, plan, (long long)ts, units, exported,
             (long long)seq);
    assert_int_equal(tg_tmpstore_exec(&f->db, sql), 0);
}

#define H0 INT64_C(1772326800)
#define P0 (H0 - 3600)

static void test_meter_rows(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    tg_err_t err = {0};
    assert_int_equal(tg_store_meter_export_set(st, 1, H0, &err), 0);
    assert_int_equal(tg_store_meter_export_set(st, 1, H0 + 99, &err), 0); /* idempotent */
    /* uppercase sorts before lowercase, as bytes */
    hourly(f, "cus_a", "api_calls", H0, P0, "metered", H0, "5", "0", 0);
    hourly(f, "cus_a", "api_calls", H0 + 3600, P0, "metered", H0 + 3600, "2", "1", 0);
    hourly(f, "cus_a", "api_calls", H0 + 1800 - 1800, H0 + 1800, "pro", H0 + 1800, "7", "0", 0);
    hourly(f, "cus_B", "api_calls", H0, P0, "metered", H0, "3", "0", 0);
    hourly(f, "cus_a", "Tokens", H0, P0, "metered", H0, "9223372036854775807", "0", 0);
    hourly(f, "cus_a", "images", H0, P0, "metered", H0, "4", "4", 0); /* sent: not due */
    hourly(f, "cus_a", "images", H0 - 7200, P0 - 86400, "old", H0 - 7200, "9223372036854775807", "9223372036854775807",
           3);

    /* a page at a time, by customer, metric, ts, period, plan */
    const struct {
        const char *customer, *metric;
        int64_t ts;
    } order[] = {{"cus_B", "api_calls", H0},
                 {"cus_a", "Tokens", H0},
                 {"cus_a", "api_calls", H0},
                 {"cus_a", "api_calls", H0 + 1800},
                 {"cus_a", "api_calls", H0 + 3600}};
    tg_meter_cursor_t cur;
    memset(&cur, 0, sizeof(cur));
    tg_meter_bucket_t b[8];
    size_t n = 0, seen = 0;
    for (;;) {
        assert_int_equal(tg_store_meter_due(st, INT64_MAX, &cur, b, 2, &n, &err), 0);
        for (size_t i = 0; i < n; i++, seen++) {
            assert_true(seen < 5);
            assert_string_equal(b[i].customer_id, order[seen].customer);
            assert_string_equal(b[i].metric, order[seen].metric);
            assert_int_equal(b[i].ts, order[seen].ts);
        }
        if (n < 2)
            break;
        snprintf(cur.customer_id, sizeof(cur.customer_id), "%s", b[n - 1].customer_id);
        snprintf(cur.metric, sizeof(cur.metric), "%s", b[n - 1].metric);
        cur.ts = b[n - 1].ts;
        cur.period_start = b[n - 1].period_start;
        snprintf(cur.plan_id, sizeof(cur.plan_id), "%s", b[n - 1].plan_id);
    }
    assert_int_equal(seen, 5);
    memset(&cur, 0, sizeof(cur));
    assert_int_equal(tg_store_meter_due(st, H0 + 1, &cur, b, 8, &n, &err), 0);
    assert_int_equal(n, 4); /* the hour H0 + 3600 has not begun before H0 + 1 */
    assert_string_equal(b[1].metric, "Tokens");
    assert_int_equal(b[1].units, INT64_MAX);
    assert_string_equal(b[3].plan_id, "pro");
    assert_int_equal(b[3].period_start, H0 + 1800);
    assert_int_equal(b[3].units, 7);

    /* marking: only from the exported count read; seq only goes up */
    tg_meter_bucket_t m = b[2]; /* cus_a api_calls H0, 5 units */
    assert_int_equal(tg_store_meter_mark(st, &m, 5, &err), 0);
    assert_int_equal(tg_store_meter_mark(st, &m, 5, &err), TG_ESTATE);
    assert_int_equal(tg_store_meter_set_seq(st, "cus_a", "api_calls", H0, 2, &err), 0);
    assert_int_equal(tg_store_meter_set_seq(st, "cus_a", "api_calls", H0, 1, &err), 0);
    assert_int_equal(tg_store_meter_due(st, INT64_MAX, &cur, b, 8, &n, &err), 0);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++)
        assert_false(strcmp(b[i].customer_id, "cus_a") == 0 && strcmp(b[i].metric, "api_calls") == 0 && b[i].ts == H0);

    /* sums: exported of a period and plan; backlog of a customer, saturating */
    uint64_t units = 9, hours = 0;
    assert_int_equal(tg_store_meter_period_exported(st, "cus_a", P0, "metered", "api_calls", &units, &err), 0);
    assert_int_equal(units, 6);
    assert_int_equal(tg_store_meter_period_exported(st, "cus_a", P0, "metered", "none", &units, &err), 0);
    assert_int_equal(units, 0);
    hourly(f, "cus_a", "images", H0 + 3600, P0, "metered", H0 + 3600, "9223372036854775807", "9223372036854775807", 0);
    assert_int_equal(tg_store_meter_period_exported(st, "cus_a", P0, "metered", "images", &units, &err), 0);
    assert_int_equal(units, INT64_MAX); /* 4 + INT64_MAX */
    assert_int_equal(tg_store_meter_customer_backlog(st, "cus_a", &hours, &units, &err), 0);
    assert_int_equal(hours, 3);         /* Tokens H0, api_calls H0+3600, pro */
    assert_int_equal(units, INT64_MAX); /* INT64_MAX + 1 + 7 */
    assert_int_equal(tg_store_meter_customer_backlog(st, "cus_B", &hours, &units, &err), 0);
    assert_int_equal(hours, 1);
    assert_int_equal(units, 3);
    assert_int_equal(tg_store_meter_customer_backlog(st, "cus_none", &hours, &units, &err), 0);
    assert_int_equal(hours + units, 0);

    /* pruning: fully sent hours before the bound */
    size_t deleted = 9;
    assert_int_equal(tg_store_meter_prune(st, H0 - 7200, 10, &deleted, &err), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(tg_store_meter_prune(st, H0 + 1, 1, &deleted, &err), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(tg_store_meter_prune(st, H0 + 1, 10, &deleted, &err), 0);
    assert_int_equal(deleted, 2); /* of images H0, images H0-7200, api_calls H0; not images H0+3600 */
    assert_int_equal(tg_store_meter_export_set(st, 0, 0, &err), 0);
}

/* A meter event refused for its timestamp is taken back once: its units come off the exported
 * counts of its bucket, newest period first, and its row is closed. */
static void test_meter_refused_taken_back(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    tg_err_t err = {0};
    hourly(f, "cus_a", "api_calls", H0, P0, "metered", H0, "5", "5", 1);
    hourly(f, "cus_a", "api_calls", H0, H0 + 600, "pro", H0, "3", "3", 1);
    tg_outbox_row_t row;
    memset(&row, 0, sizeof(row));
    snprintf(row.kind, sizeof(row.kind), "meter_event.create");
    snprintf(row.customer_id, sizeof(row.customer_id), "cus_a");
    snprintf(row.method, sizeof(row.method), "POST");
    snprintf(row.path, sizeof(row.path), "/v1/billing/meter_events");
    const char form[] = "event_name=api_calls&payload[value]=6&timestamp=1772326800";
    int64_t ids[3];
    for (int i = 0; i < 3; i++) {
        snprintf(row.idempotency_key, sizeof(row.idempotency_key), "k_m%d", i);
        assert_int_equal(tg_store_outbox_insert(st, &row, form, strlen(form), NOW_MS, &ids[i], &err), 0);
    }
    assert_int_equal(tg_store_outbox_fail(st, ids[0], "Stripe 400 x/timestamp_too_far_in_past: old", 1, &err), 0);
    assert_int_equal(tg_store_outbox_fail(st, ids[1], "stripe 400 TIMESTAMP", 1, &err), 0); /* LIKE ignores case */
    assert_int_equal(tg_store_outbox_fail(st, ids[2], "Stripe 400 invalid customer", 1, &err), 0);
    uint64_t pending = 9, failed = 0;
    assert_int_equal(tg_store_meter_outbox_counts(st, "cus_a", &pending, &failed, &err), 0);
    assert_int_equal(pending, 0);
    assert_int_equal(failed, 3);
    tg_meter_refused_t r[4];
    size_t n = 0;
    assert_int_equal(tg_store_meter_refused(st, r, 4, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(r[0].outbox_id, ids[0]);
    assert_int_equal(r[1].outbox_id, ids[1]);
    assert_string_equal(r[0].customer_id, "cus_a");
    assert_string_equal(r[0].params, form);
    assert_int_equal(tg_store_tx_begin(st, &err), 0);
    assert_int_equal(tg_store_meter_take_back(st, ids[0], "cus_a", "api_calls", H0, 6, 77, &err), 0);
    assert_int_equal(tg_store_tx_commit(st, &err), 0);
    assert_int_equal(tg_store_meter_take_back(st, ids[0], "cus_a", "api_calls", H0, 6, 78, &err), TG_ESTATE);
    assert_int_equal(tg_store_outbox_get(st, ids[0], &row, &err), 0);
    assert_string_equal(row.state, "done");
    assert_string_equal(row.response_id, "sent again as late usage");
    assert_int_equal(row.updated_at, 77);
    /* 6 off: 3 from the newer period (pro), 3 from metered */
    uint64_t units = 0;
    assert_int_equal(tg_store_meter_period_exported(st, "cus_a", H0 + 600, "pro", "api_calls", &units, &err), 0);
    assert_int_equal(units, 0);
    assert_int_equal(tg_store_meter_period_exported(st, "cus_a", P0, "metered", "api_calls", &units, &err), 0);
    assert_int_equal(units, 2);
    assert_int_equal(tg_store_meter_refused(st, r, 4, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(tg_store_meter_outbox_counts(st, "cus_a", &pending, &failed, &err), 0);
    assert_int_equal(failed, 2);
}

typedef struct {
    tg_store_t *st;
    tg_meter_bucket_t b;
    int rc;
} marker_t;

static void *mark_in_tx(void *arg)
{
    marker_t *m = arg;
    tg_err_t err = {0};
    m->rc = tg_store_meter_mark(m->st, &m->b, m->b.units, &err);
    tg_store_tx_rollback(m->st);
    return NULL;
}

/* 1 when a session of the database waits for a row lock. */
static int someone_waits(const fx_t *f)
{
    PGconn *c = PQconnectdb(f->db.url);
    PGresult *r = PQexec(c, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                            " AND wait_event_type = 'Lock'");
    int waits = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "0") != 0;
    PQclear(r);
    PQfinish(c);
    return waits;
}

/* Two exporters (two nodes) read the same hour and mark it at once: the second waits for the
 * first to commit, then finds the count changed and marks nothing (TG_ESTATE), so the hour is
 * sent once. */
static void test_two_exporters_mark_once(void **state)
{
    fx_t *f = *state;
    skip_on_sqlite(f, "two exporters at once");
    tg_err_t err = {0};
    hourly(f, "cus_a", "api_calls", H0, P0, "metered", H0, "5", "0", 0);
    marker_t second = {.rc = 1};
    assert_int_equal(tg_store_open(f->db.url, &second.st, &err), 0);
    tg_meter_cursor_t cur;
    memset(&cur, 0, sizeof(cur));
    tg_meter_bucket_t first;
    size_t n = 0;
    assert_int_equal(tg_store_tx_begin(f->db.st, &err), 0);
    assert_int_equal(tg_store_meter_due(f->db.st, INT64_MAX, &cur, &first, 1, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(tg_store_tx_begin(second.st, &err), 0);
    assert_int_equal(tg_store_meter_due(second.st, INT64_MAX, &cur, &second.b, 1, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(tg_store_meter_mark(f->db.st, &first, first.units, &err), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, mark_in_tx, &second), 0);
    int waited = 0;
    for (int i = 0; i < 500 && !(waited = someone_waits(f)); i++)
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    assert_true(waited);
    assert_int_equal(tg_store_tx_commit(f->db.st, &err), 0);
    pthread_join(t, NULL);
    assert_int_equal(second.rc, TG_ESTATE);
    tg_store_close(second.st);
    uint64_t units = 0;
    assert_int_equal(tg_store_meter_period_exported(f->db.st, "cus_a", P0, "metered", "api_calls", &units, &err), 0);
    assert_int_equal(units, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_outbox_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outside_text_is_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claims_between_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meter_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meter_refused_taken_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_exporters_mark_once, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
