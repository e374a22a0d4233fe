/* test_outbox.c - the Stripe outbox (src/payments/outbox.c, src/store/store_sqlite_outbox.c):
 * the backoff schedule (full jitter, doubling, the cap), enqueueing inside the caller's
 * transaction (rolled back: nothing; committed: one row with the operation's idempotency key;
 * twice: still one), the row transitions, and the processor thread against a scripted local
 * server: a 500 and a lost response then success are three attempts with ONE idempotency key
 * and one mapped Stripe customer; a 400 fails the row at once with Stripe's error kept; a
 * retryable failure past max_attempts fails the row. On PostgreSQL, two processors on one
 * database send each row once. Runs under TSan too (Makefile). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../support/tmpstore.h"
#include "../support/tiny_http.h"
#include "payments/outbox.h"
#include "store/store_outbox.h"
#include "util/clock.h"

typedef struct {
    tg_tmpstore_t db;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_int_equal(tg_tmpstore_open(&f->db, "outbox"), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (tg_tmpstore_close(&f->db) != 0)
        return -1;
    free(f);
    return 0;
}

static tg_customer_t customer(fx_t *f, const char *id, const char *email)
{
    tg_customer_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.id, sizeof(c.id), "%s", id);
    snprintf(c.email, sizeof(c.email), "%s", email);
    snprintf(c.name, sizeof(c.name), "Ada & Co");
    snprintf(c.plan_id, sizeof(c.plan_id), "free");
    snprintf(c.status, sizeof(c.status), "active");
    c.created_at = c.anchor_at = 1764547200;
    tg_err_t err = {0};
    assert_int_equal(tg_store_customer_insert(f->db.st, &c, &err), 0);
    return c;
}

static void test_backoff_schedule(void **state)
{
    (void)state;
    /* random 0 is the bottom of the window, UINT32_MAX its top: the top doubles from base up
     * to the cap and stays there */
    int64_t expect[] = {1000,   2000,   4000,   8000,    16000,   32000,   64000,
                        128000, 256000, 512000, 1024000, 2048000, 3600000, 3600000};
    for (int a = 1; a <= (int)(sizeof(expect) / sizeof(expect[0])); a++) {
        assert_int_equal(tg_outbox_backoff_ms(a, 1000, 3600000, 0), 0);
        assert_int_equal(tg_outbox_backoff_ms(a, 1000, 3600000, UINT32_MAX), expect[a - 1]);
        int64_t mid = tg_outbox_backoff_ms(a, 1000, 3600000, UINT32_MAX / 2);
        assert_true(mid >= expect[a - 1] / 2 - 1 && mid <= expect[a - 1] / 2 + 1);
    }
    /* no overflow far out, and odd inputs are tamed */
    assert_int_equal(tg_outbox_backoff_ms(1000000, 1000, 3600000, UINT32_MAX), 3600000);
    assert_int_equal(tg_outbox_backoff_ms(0, 1000, 3600000, UINT32_MAX), 1000);
    assert_int_equal(tg_outbox_backoff_ms(5, 5000, 100, UINT32_MAX), 5000); /* cap below base: base */
    int64_t huge = tg_outbox_backoff_ms(70, INT64_MAX / 2, INT64_MAX, UINT32_MAX);
    assert_true(huge > INT64_MAX / 2 && huge <= INT64_MAX);
}

static int on_row(const tg_outbox_row_t *r, void *arg)
{
    (void)r;
    (*(size_t *)arg)++;
    return 0;
}

static size_t count_rows(fx_t *f, const char *state)
{
    tg_page_t page = {.limit = 100};
    tg_page_end_t end;
    size_t n = 0;
    tg_err_t err = {0};
    assert_int_equal(tg_store_outbox_page(f->db.st, state, &page, on_row, &n, &end, &err), 0);
    return n;
}

static void test_enqueue_in_the_callers_transaction(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    /* rolled back with the customer: no customer, no call */
    assert_int_equal(tg_store_tx_begin(f->db.st, &err), 0);
    tg_customer_t c = customer(f, "cus_rolled", "r@example.com");
    assert_int_equal(tg_outbox_enqueue_customer(f->db.st, &c, &err), 0);
    tg_store_tx_rollback(f->db.st);
    assert_int_equal(count_rows(f, NULL), 0);

    /* committed: one row, due now, with the operation's key and the encoded form */
    assert_int_equal(tg_store_tx_begin(f->db.st, &err), 0);
    c = customer(f, "cus_kept", "k+1@example.com");
    assert_int_equal(tg_outbox_enqueue_customer(f->db.st, &c, &err), 0);
    assert_int_equal(tg_store_tx_commit(f->db.st, &err), 0);
    /* a second enqueue of the same operation adds nothing and is no error */
    assert_int_equal(tg_outbox_enqueue_customer(f->db.st, &c, &err), 0);
    assert_int_equal(count_rows(f, NULL), 1);

    tg_outbox_row_t rows[4];
    size_t n = 0;
    assert_int_equal(tg_store_outbox_due(f->db.st, tg_clock_now_ns() / 1000000 + 1000, rows, 4, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].kind, "customer.create");
    assert_string_equal(rows[0].customer_id, "cus_kept");
    assert_string_equal(rows[0].idempotency_key, "tg_customer.create_cus_kept");
    assert_string_equal(rows[0].method, "POST");
    assert_string_equal(rows[0].path, "/v1/customers");
    assert_string_equal(rows[0].params,
                        "email=k%2B1%40example.com&name=Ada+%26+Co&metadata[tollgate_customer]=cus_kept");
    assert_string_equal(rows[0].state, "pending");
    tg_outbox_row_clear(&rows[0]);

    /* a bad operation key never reaches the store */
    assert_int_equal(tg_outbox_enqueue(f->db.st, "x", "cus_kept", "a b", "POST", "/v1/x", NULL, &err), TG_EINVAL);
}

static void test_row_transitions(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    tg_customer_t c = customer(f, "cus_t", "t@example.com");
    assert_int_equal(tg_outbox_enqueue_customer(f->db.st, &c, &err), 0);
    int64_t now = tg_clock_now_ns() / 1000000;
    tg_outbox_row_t rows[2];
    size_t n = 0;
    assert_int_equal(tg_store_outbox_due(f->db.st, now + 10, rows, 2, &n, &err), 0);
    assert_int_equal(n, 1);
    int64_t id = rows[0].id;
    tg_outbox_row_clear(&rows[0]);

    /* retried: not due before its time, due after; attempts and the error recorded */
    assert_int_equal(tg_store_outbox_retry(f->db.st, id, now + 60000, "Stripe 429 rate_limit", now / 1000, &err), 0);
    assert_int_equal(tg_store_outbox_due(f->db.st, now + 59000, rows, 2, &n, &err), 0);
    assert_int_equal(n, 0);
    int64_t next = 0;
    uint64_t pending = 0;
    assert_int_equal(tg_store_outbox_next_due(f->db.st, &next, &pending, &err), 0);
    assert_int_equal(next, now + 60000);
    assert_int_equal(pending, 1);
    assert_int_equal(tg_store_outbox_due(f->db.st, now + 60000, rows, 2, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].attempts, 1);
    assert_string_equal(rows[0].last_error, "Stripe 429 rate_limit");
    tg_outbox_row_clear(&rows[0]);

    /* done: mapped, no longer pending; a second completion changes nothing */
    char sid[64];
    assert_int_equal(tg_store_stripe_customer_get(f->db.st, "cus_t", sid, sizeof(sid), &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_outbox_done(f->db.st, id, "cus_Stripe1", 1, now / 1000, &err), 0);
    assert_int_equal(tg_store_stripe_customer_get(f->db.st, "cus_t", sid, sizeof(sid), &err), 0);
    assert_string_equal(sid, "cus_Stripe1");
    char owner[TG_ID_MAX];
    assert_int_equal(tg_store_stripe_customer_owner(f->db.st, "cus_Stripe1", owner, &err), 0);
    assert_string_equal(owner, "cus_t");
    assert_int_equal(tg_store_stripe_customer_owner(f->db.st, "cus_Other", owner, &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_outbox_done(f->db.st, id, "cus_Stripe2", 1, now / 1000, &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_stripe_customer_get(f->db.st, "cus_t", sid, sizeof(sid), &err), 0);
    assert_string_equal(sid, "cus_Stripe1");
    assert_int_equal(tg_store_outbox_fail(f->db.st, id, "late", now / 1000, &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_outbox_next_due(f->db.st, &next, NULL, &err), TG_ENOTFOUND);

    tg_outbox_row_t latest;
    assert_int_equal(tg_store_outbox_customer_latest(f->db.st, "cus_t", &latest, &err), 0);
    assert_string_equal(latest.state, "done");
    assert_int_equal(latest.attempts, 2);
    assert_string_equal(latest.response_id, "cus_Stripe1");
    assert_string_equal(latest.last_error, "");
    tg_outbox_counts_t counts;
    assert_int_equal(tg_store_outbox_counts(f->db.st, &counts, &err), 0);
    assert_int_equal(counts.done, 1);
    assert_int_equal(counts.pending, 0);

    /* pruning: done rows changed before the bound go, the map stays; pending and failed stay */
    tg_customer_t p = customer(f, "cus_pend", "pend@example.com"), q = customer(f, "cus_fail", "fail@example.com");
    assert_int_equal(tg_outbox_enqueue_customer(f->db.st, &p, &err), 0);
    assert_int_equal(tg_outbox_enqueue_customer(f->db.st, &q, &err), 0);
    tg_outbox_row_t fr;
    assert_int_equal(tg_store_outbox_customer_latest(f->db.st, "cus_fail", &fr, &err), 0);
    assert_int_equal(tg_store_outbox_fail(f->db.st, fr.id, "x", now / 1000 - 100, &err), 0);
    size_t deleted = 99;
    assert_int_equal(tg_store_outbox_prune(f->db.st, now / 1000 - 10, 10, &deleted, &err), 0);
    assert_int_equal(deleted, 0); /* the done row changed at now: newer than the bound */
    assert_int_equal(tg_store_outbox_prune(f->db.st, now / 1000 + 10, 10, &deleted, &err), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(tg_store_outbox_counts(f->db.st, &counts, &err), 0);
    assert_int_equal(counts.done, 0);
    assert_int_equal(counts.pending, 1);
    assert_int_equal(counts.failed, 1);
    assert_int_equal(tg_store_stripe_customer_get(f->db.st, "cus_t", sid, sizeof(sid), &err), 0);
}

/* Polls cond for up to 20 s (the processor wakes every poll_ms). */
#define WAIT_FOR(cond)                                                                                                 \
    do {                                                                                                               \
        int ok_ = 0;                                                                                                   \
        for (int i_ = 0; i_ < 2000 && !(ok_ = (cond)); i_++)                                                           \
            nanosleep(&(struct timespec){0, 10000000}, NULL);                                                          \
        if (!ok_)                                                                                                      \
            fail_msg("timed out waiting for " #cond);                                                                  \
    } while (0)

static int row_state_is(fx_t *f, const char *customer_id, const char *state)
{
    tg_outbox_row_t r;
    tg_err_t err = {0};
    return tg_store_outbox_customer_latest(f->db.st, customer_id, &r, &err) == 0 && strcmp(r.state, state) == 0;
}

static tg_outbox_t *start(fx_t *f, tiny_http_t *t, char *base, size_t cap, int max_attempts)
{
    snprintf(base, cap, "http://127.0.0.1:%d", t->port);
    tg_outbox_settings_t s = {
        .database = f->db.url,
        .stripe = {"sk_test_outbox", base, 5000},
        .backoff_base_ms = 1,
        .backoff_cap_ms = 5,
        .max_attempts = max_attempts,
        .poll_ms = 10,
    };
    tg_outbox_t *ob = NULL;
    tg_err_t err = {0};
    assert_int_equal(tg_outbox_start(&s, &ob, &err), 0);
    return ob;
}

static void test_processor_replays_with_one_key(void **state)
{
    fx_t *f = *state;
    tiny_http_t t;
    assert_int_equal(tiny_start(&t), 0);
    tiny_push(&t, "HTTP/1.1 500 Internal Server Error\r\n",
              "{\"error\":{\"type\":\"api_error\",\"message\":\"boom\"}}");
    tiny_push(&t, NULL, NULL); /* processed, but the answer is lost */
    tiny_push(&t, "HTTP/1.1 200 OK\r\nIdempotent-Replayed: true\r\n", "{\"id\":\"cus_SR1\",\"object\":\"customer\"}");
    tg_err_t err = {0};
    tg_customer_t c = customer(f, "cus_p", "p@example.com");
    char base[64];
    tg_outbox_t *ob = start(f, &t, base, sizeof(base), 12);
    assert_int_equal(tg_outbox_enqueue_customer(f->db.st, &c, &err), 0);
    tg_outbox_wake(ob);
    WAIT_FOR(row_state_is(f, "cus_p", "done"));
    tg_outbox_stats_t stats;
    tg_outbox_stats(ob, &stats);
    tg_outbox_stop(ob);
    tiny_stop(&t);

    char sid[64];
    assert_int_equal(tg_store_stripe_customer_get(f->db.st, "cus_p", sid, sizeof(sid), &err), 0);
    assert_string_equal(sid, "cus_SR1");
    assert_int_equal(t.nreq, 3);
    for (size_t i = 0; i < t.nreq; i++) {
        assert_non_null(strstr(t.requests[i], "\r\nIdempotency-Key: tg_customer.create_cus_p\r\n"));
        assert_non_null(strstr(t.requests[i], "metadata[tollgate_customer]=cus_p"));
    }
    assert_int_equal(stats.calls_ok, 1);
    assert_int_equal(stats.calls_retry, 2);
    tg_outbox_row_t r;
    assert_int_equal(tg_store_outbox_customer_latest(f->db.st, "cus_p", &r, &err), 0);
    assert_int_equal(r.attempts, 3);
}

static void test_processor_keeps_a_permanent_error(void **state)
{
    fx_t *f = *state;
    tiny_http_t t;
    assert_int_equal(tiny_start(&t), 0);
    tiny_push(&t, "HTTP/1.1 400 Bad Request\r\n",
              "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"email_invalid\",\"param\":\"email\","
              "\"message\":\"Invalid email address: x\"}}");
    tiny_push(&t, "HTTP/1.1 503 Service Unavailable\r\n", "{\"error\":{\"type\":\"api_error\",\"message\":\"busy\"}}");
    tiny_push(&t, "HTTP/1.1 503 Service Unavailable\r\n", "{\"error\":{\"type\":\"api_error\",\"message\":\"busy\"}}");
    tg_err_t err = {0};
    tg_customer_t bad = customer(f, "cus_bad", "bad@example.com");
    char base[64];
    tg_outbox_t *ob = start(f, &t, base, sizeof(base), 2);
    assert_int_equal(tg_outbox_enqueue_customer(f->db.st, &bad, &err), 0);
    WAIT_FOR(row_state_is(f, "cus_bad", "failed"));
    tg_customer_t busy = customer(f, "cus_busy", "busy@example.com");
    assert_int_equal(tg_outbox_enqueue_customer(f->db.st, &busy, &err), 0);
    WAIT_FOR(row_state_is(f, "cus_busy", "failed"));
    tg_outbox_stop(ob);
    tiny_stop(&t);

    tg_outbox_row_t r;
    assert_int_equal(tg_store_outbox_customer_latest(f->db.st, "cus_bad", &r, &err), 0);
    assert_int_equal(r.attempts, 1); /* a 400 is not retried */
    assert_non_null(strstr(r.last_error, "invalid_request_error/email_invalid: Invalid email address: x"));
    assert_int_equal(tg_store_outbox_customer_latest(f->db.st, "cus_busy", &r, &err), 0);
    assert_int_equal(r.attempts, 2); /* max_attempts */
    assert_non_null(strstr(r.last_error, "gave up after the last attempt"));
    char sid[64];
    assert_int_equal(tg_store_stripe_customer_get(f->db.st, "cus_bad", sid, sizeof(sid), &err), TG_ENOTFOUND);
    assert_int_equal(t.nreq, 3);
}

/* A "create customer" row older than Stripe's idempotency window (tollgate was down a day)
 * first searches Stripe by metadata[tollgate_customer]: found, it is adopted and nothing is
 * created; not found, the customer is created. */
static void test_old_row_searches_first(void **state)
{
    fx_t *f = *state;
    tiny_http_t t;
    assert_int_equal(tiny_start(&t), 0);
    tiny_push(&t, "HTTP/1.1 200 OK\r\n",
              "{\"object\":\"search_result\",\"data\":[{\"id\":\"cus_Adopted\",\"object\":\"customer\"}]}");
    tiny_push(&t, "HTTP/1.1 200 OK\r\n", "{\"object\":\"search_result\",\"data\":[]}");
    tiny_push(&t, "HTTP/1.1 200 OK\r\n", "{\"id\":\"cus_New\",\"object\":\"customer\"}");
    tg_err_t err = {0};
    tg_customer_t c1 = customer(f, "cus_old1", "o1@example.com"), c2 = customer(f, "cus_old2", "o2@example.com");
    assert_int_equal(tg_outbox_enqueue_customer(f->db.st, &c1, &err), 0);
    tg_clock_set_offset((int64_t)25 * 3600 * 1000000000);
    char base[64];
    tg_outbox_t *ob = start(f, &t, base, sizeof(base), 12);
    WAIT_FOR(row_state_is(f, "cus_old1", "done"));
    tg_clock_set_offset(0);
    assert_int_equal(tg_outbox_enqueue_customer(f->db.st, &c2, &err), 0);
    tg_clock_set_offset((int64_t)25 * 3600 * 1000000000);
    tg_outbox_wake(ob);
    WAIT_FOR(row_state_is(f, "cus_old2", "done"));
    tg_outbox_stop(ob);
    tg_clock_set_offset(0);
    tiny_stop(&t);
    char sid[64];
    assert_int_equal(tg_store_stripe_customer_get(f->db.st, "cus_old1", sid, sizeof(sid), &err), 0);
    assert_string_equal(sid, "cus_Adopted");
    assert_int_equal(tg_store_stripe_customer_get(f->db.st, "cus_old2", sid, sizeof(sid), &err), 0);
    assert_string_equal(sid, "cus_New");
    assert_int_equal(t.nreq, 3);
    assert_non_null(strstr(t.requests[0], "GET /v1/customers/search?query="
                                          "metadata%5B%27tollgate_customer%27%5D%3A%27cus_old1%27 HTTP/1.1\r\n"));
    assert_non_null(strstr(t.requests[1], "GET /v1/customers/search?query="));
    assert_non_null(strstr(t.requests[2], "POST /v1/customers HTTP/1.1\r\n"));
}

/* A call for a customer queued in the customer's own transaction names the Stripe customer by
 * the placeholder: it waits, without using its attempts, until the customer's row is done, then
 * goes with the Stripe id in its form; when the customer's row fails, so does it. */
static void test_call_waits_for_its_customer(void **state)
{
    fx_t *f = *state;
    tiny_http_t t;
    assert_int_equal(tiny_start(&t), 0);
    tiny_push(&t, "HTTP/1.1 503 Service Unavailable\r\n", "{\"error\":{\"type\":\"api_error\",\"message\":\"busy\"}}");
    tiny_push(&t, "HTTP/1.1 200 OK\r\n", "{\"id\":\"cus_Dep\",\"object\":\"customer\"}");
    tiny_push(&t, "HTTP/1.1 200 OK\r\n", "{\"id\":\"ii_1\",\"object\":\"invoiceitem\"}");
    tiny_push(&t, "HTTP/1.1 400 Bad Request\r\n",
              "{\"error\":{\"type\":\"invalid_request_error\",\"message\":\"Invalid email\"}}");
    tg_err_t err = {0};
    tg_form_t form;
    tg_form_init(&form, 0);
    assert_int_equal(tg_form_add(&form, "customer", TG_OUTBOX_STRIPE_CUSTOMER, &err), 0);
    assert_int_equal(tg_form_add_int(&form, "amount", 500, &err), 0);
    assert_int_equal(tg_store_tx_begin(f->db.st, &err), 0);
    tg_customer_t c = customer(f, "cus_dep", "dep@example.com");
    assert_int_equal(tg_outbox_enqueue_customer(f->db.st, &c, &err), 0);
    assert_int_equal(
        tg_outbox_enqueue(f->db.st, "invoiceitem.create", c.id, "cus_dep_1", "POST", "/v1/invoiceitems", &form, &err), 0);
    assert_int_equal(tg_store_tx_commit(f->db.st, &err), 0);
    char base[64];
    tg_outbox_t *ob = start(f, &t, base, sizeof(base), 12);
    WAIT_FOR(row_state_is(f, "cus_dep", "done") && tiny_nreq(&t) == 3);
    tg_outbox_row_t r;
    assert_int_equal(tg_store_outbox_customer_latest(f->db.st, "cus_dep", &r, &err), 0);
    assert_string_equal(r.kind, "invoiceitem.create");
    assert_int_equal(r.attempts, 1); /* the waits were not attempts */
    assert_string_equal(r.response_id, "ii_1");

    /* the customer's row fails: the call for it fails too, without being sent */
    assert_int_equal(tg_store_tx_begin(f->db.st, &err), 0);
    tg_customer_t bad = customer(f, "cus_nodep", "nodep@example.com");
    assert_int_equal(tg_outbox_enqueue_customer(f->db.st, &bad, &err), 0);
    assert_int_equal(
        tg_outbox_enqueue(f->db.st, "invoiceitem.create", bad.id, "cus_nodep_1", "POST", "/v1/invoiceitems", &form, &err),
        0);
    assert_int_equal(tg_store_tx_commit(f->db.st, &err), 0);
    tg_outbox_wake(ob);
    WAIT_FOR(row_state_is(f, "cus_nodep", "failed"));
    tg_outbox_stop(ob);
    tiny_stop(&t);
    tg_form_free(&form);
    assert_int_equal(tg_store_outbox_customer_latest(f->db.st, "cus_nodep", &r, &err), 0);
    assert_string_equal(r.kind, "invoiceitem.create");
    assert_non_null(strstr(r.last_error, "could not be created"));
    assert_int_equal(t.nreq, 4);
    assert_non_null(strstr(t.requests[2], "POST /v1/invoiceitems HTTP/1.1\r\n"));
    assert_non_null(strstr(t.requests[2], "\r\n\r\ncustomer=cus_Dep&amount=500"));
    assert_non_null(strstr(t.requests[2], "Idempotency-Key: tg_invoiceitem.create_cus_dep_1\r\n"));
}

static uint64_t passes(tg_outbox_t *ob)
{
    tg_outbox_stats_t s;
    tg_outbox_stats(ob, &s);
    return s.passes;
}

/* A 429 is the account's rate limit, not the row's: after it, the other due rows wait too (the
 * pause is at least backoff_base_ms, an hour here). The processor keeps looking at the queue
 * (its passes count up) and sends nothing. Without the pause the second row went in the same
 * pass as the first. */
static void test_429_pauses_every_call(void **state)
{
    fx_t *f = *state;
    tiny_http_t t;
    assert_int_equal(tiny_start(&t), 0);
    tiny_push(&t, "HTTP/1.1 429 Too Many Requests\r\n",
              "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"rate_limit\",\"message\":\"slow\"}}");
    tg_err_t err = {0};
    tg_customer_t a = customer(f, "cus_ra", "ra@example.com"), b = customer(f, "cus_rb", "rb@example.com");
    assert_int_equal(tg_outbox_enqueue_customer(f->db.st, &a, &err), 0);
    assert_int_equal(tg_outbox_enqueue_customer(f->db.st, &b, &err), 0);
    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", t.port);
    tg_outbox_settings_t s = {.database = f->db.url,
                              .stripe = {.secret_key = "sk_test_outbox", .api_base = base, .timeout_ms = 5000},
                              .backoff_base_ms = 3600 * 1000,
                              .poll_ms = 10};
    tg_outbox_t *ob = NULL;
    assert_int_equal(tg_outbox_start(&s, &ob, &err), 0);
    WAIT_FOR(tiny_nreq(&t) >= 1);
    WAIT_FOR(row_state_is(f, "cus_ra", "pending") && passes(ob) > 0);
    uint64_t seen = passes(ob);
    WAIT_FOR(passes(ob) >= seen + 3); /* three more looks at the queue */
    tg_outbox_stop(ob);
    tiny_stop(&t);
    assert_int_equal(t.nreq, 1);
    tg_outbox_row_t r;
    assert_int_equal(tg_store_outbox_customer_latest(f->db.st, "cus_rb", &r, &err), 0);
    assert_int_equal(r.attempts, 0);
}

/* Calls for one customer go in the order they were queued: when the first of two renames meets a
 * 503, the second waits for it instead of going first and being overwritten by the retry (the
 * Stripe customer would end with the older name). */
static void test_calls_of_a_customer_keep_their_order(void **state)
{
    fx_t *f = *state;
    tiny_http_t t;
    assert_int_equal(tiny_start(&t), 0);
    tiny_push(&t, "HTTP/1.1 503 Service Unavailable\r\n", "{\"error\":{\"type\":\"api_error\",\"message\":\"busy\"}}");
    tiny_push(&t, "HTTP/1.1 200 OK\r\n", "{\"id\":\"cus_Ord\",\"object\":\"customer\"}");
    tiny_push(&t, "HTTP/1.1 200 OK\r\n", "{\"id\":\"cus_Ord\",\"object\":\"customer\"}");
    tg_err_t err = {0};
    tg_customer_t c = customer(f, "cus_ord", "ord@example.com");
    tg_outbox_row_t done;
    assert_int_equal(tg_outbox_enqueue_customer(f->db.st, &c, &err), 0);
    assert_int_equal(tg_store_outbox_customer_latest(f->db.st, "cus_ord", &done, &err), 0);
    assert_int_equal(tg_store_outbox_done(f->db.st, done.id, "cus_Ord", 1, 0, &err), 0); /* created before */
    snprintf(c.name, sizeof(c.name), "First");
    assert_int_equal(tg_outbox_enqueue_customer_update(f->db.st, &c, &err), 0);
    snprintf(c.name, sizeof(c.name), "Second");
    assert_int_equal(tg_outbox_enqueue_customer_update(f->db.st, &c, &err), 0);
    char base[64];
    tg_outbox_t *ob = start(f, &t, base, sizeof(base), 12);
    WAIT_FOR(tiny_nreq(&t) == 3 && row_state_is(f, "cus_ord", "done"));
    tg_outbox_stop(ob);
    tiny_stop(&t);
    for (size_t i = 0; i < 3; i++)
        assert_non_null(strstr(t.requests[i], "POST /v1/customers/cus_Ord HTTP/1.1\r\n"));
    assert_non_null(strstr(t.requests[0], "name=First"));
    assert_non_null(strstr(t.requests[1], "name=First")); /* the retry, before the second */
    assert_non_null(strstr(t.requests[2], "name=Second"));
    char k0[80], k2[80];
    const char *p0 = strstr(t.requests[0], "Idempotency-Key: "), *p2 = strstr(t.requests[2], "Idempotency-Key: ");
    assert_non_null(p0);
    assert_non_null(p2);
    snprintf(k0, sizeof(k0), "%.*s", (int)strcspn(p0, "\r"), p0);
    snprintf(k2, sizeof(k2), "%.*s", (int)strcspn(p2, "\r"), p2);
    assert_non_null(strstr(t.requests[1], k0)); /* the retry kept its key */
    assert_string_not_equal(k0, k2);            /* each change is its own operation */
}

/* Shutdown with a call in flight (the server took the connection and never answers): stop cuts
 * the call short and leaves the row exactly as it was, pending and due, for the next start to
 * send with the same key. Without the cut, stop would wait out the 30 s timeout and then record
 * a retry (attempts 1). */
static void test_stop_cuts_a_call_in_flight(void **state)
{
    fx_t *f = *state;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", ntohs(sa.sin_port));
    tg_outbox_settings_t s = {.database = f->db.url, .stripe = {"sk_test_outbox", base, 30000}, .poll_ms = 10};
    tg_outbox_t *ob = NULL;
    tg_err_t err = {0};
    tg_customer_t c = customer(f, "cus_fly", "fly@example.com");
    assert_int_equal(tg_outbox_enqueue_customer(f->db.st, &c, &err), 0);
    assert_int_equal(tg_outbox_start(&s, &ob, &err), 0);
    int conn = -1;
    WAIT_FOR((conn = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0); /* the call is in flight */
    tg_outbox_stop(ob);
    close(conn);
    close(lfd);
    tg_outbox_row_t r;
    assert_int_equal(tg_store_outbox_customer_latest(f->db.st, "cus_fly", &r, &err), 0);
    assert_string_equal(r.state, "pending");
    assert_int_equal(r.attempts, 0);
    assert_string_equal(r.last_error, "");
}

/* billing: tollgate: a finalized invoice is queued as create, one item per line (minor units,
 * negative credits, the line's index, a usage line described for people: its metric's display
 * name and unit, the allowance grouped), finalize; the items and the finalize name the invoice by
 * placeholder; a late usage line's item is dated with its own period (issue 16); an amount that
 * is not whole minor units or an unknown currency is refused. */
static void test_enqueue_invoice(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    tg_invoice_t inv;
    memset(&inv, 0, sizeof(inv));
    snprintf(inv.id, sizeof(inv.id), "inv_t1");
    snprintf(inv.customer_id, sizeof(inv.customer_id), "cus_t1");
    snprintf(inv.currency, sizeof(inv.currency), "USD");
    inv.period_start = 1767225600;
    inv.period_end = 1769904000;
    char body[] = "{\"lines\":[{\"description\":\"Starter plan, 1 month\",\"amount\":\"49.00\"},"
                  "{\"description\":\"Credit\",\"amount\":\"-3.50\"},"
                  "{\"description\":\"api_calls above 50000 included (per unit)\",\"metric\":\"api_calls\","
                  "\"quantity\":2,\"amount\":\"0.50\",\"used\":50002,\"included\":50000},"
                  "{\"description\":\"api_calls used 2025-12-01 to 2025-12-31, reported after that period's invoice\","
                  "\"metric\":\"api_calls\",\"quantity\":4,\"amount\":\"1.00\",\"invoiced\":5,"
                  "\"late_period\":{\"start\":\"2025-12-01T00:00:00Z\",\"end\":\"2026-01-01T00:00:00Z\"}}],"
                  "\"total\":\"47.00\"}";
    inv.body = body;
    tg_metric_display_t calls = {.metric = "api_calls", .name = "API calls", .unit = "call"};
    tg_config_t cfg = {0};
    cfg.metering.metrics = &calls;
    cfg.metering.nmetrics = 1;
    assert_int_equal(tg_store_tx_begin(f->db.st, &err), 0);
    assert_int_equal(tg_outbox_enqueue_invoice(f->db.st, &cfg, &inv, 1, 30, &err), 0);
    assert_int_equal(tg_store_tx_commit(f->db.st, &err), 0);
    assert_int_equal(tg_outbox_enqueue_invoice(f->db.st, &cfg, &inv, 1, 30, &err), TG_EEXIST); /* once */

    tg_outbox_row_t rows[16];
    size_t n = 0;
    assert_int_equal(tg_store_outbox_due(f->db.st, tg_clock_now_ns() / 1000000 + 1000, rows, 16, &n, &err), 0);
    assert_int_equal(n, 6);
    assert_string_equal(rows[0].idempotency_key, "tg_invoice.create_inv_t1");
    assert_string_equal(rows[0].path, "/v1/invoices");
    assert_string_equal(rows[0].params,
                        "customer=%7Bstripe_customer%7D&collection_method=send_invoice&days_until_due=30&currency=usd"
                        "&pending_invoice_items_behavior=exclude&auto_advance=true&metadata[tollgate_invoice]=inv_t1"
                        "&metadata[tollgate_customer]=cus_t1");
    assert_string_equal(rows[1].idempotency_key, "tg_invoice.item_inv_t1_0");
    assert_non_null(strstr(rows[1].params, "invoice=%7Bstripe_invoice%3Ainv_t1%7D&amount=4900&currency=usd"));
    assert_string_equal(rows[2].idempotency_key, "tg_invoice.item_inv_t1_1");
    assert_non_null(strstr(rows[2].params, "&amount=-350&"));
    assert_non_null(strstr(rows[2].params, "period[start]=1767225600&period[end]=1769904000"));
    assert_non_null(strstr(rows[2].params, "metadata[tollgate_line]=1"));
    assert_string_equal(rows[3].idempotency_key, "tg_invoice.item_inv_t1_2");
    assert_non_null(strstr(rows[3].params, "&description=API+calls+above+50%2C000+included+%28per+call%29&"));
    assert_string_equal(rows[4].idempotency_key, "tg_invoice.item_inv_t1_3");
    assert_non_null(strstr(rows[4].params, "&amount=100&"));
    assert_non_null(strstr(rows[4].params, "period[start]=1764547200&period[end]=1767225600"));
    assert_non_null(strstr(rows[4].params, "description=API+calls+used+2025-12-01+to+2025-12-31"));
    assert_string_equal(rows[5].idempotency_key, "tg_invoice.finalize_inv_t1");
    assert_string_equal(rows[5].path, "/v1/invoices/{stripe_invoice:inv_t1}/finalize");
    for (size_t i = 0; i < n; i++)
        tg_outbox_row_clear(&rows[i]);

    /* a tenth of a cent is not a Stripe amount; an unknown currency neither */
    char bad[] = "{\"lines\":[{\"description\":\"x\",\"amount\":\"1.005\"}]}";
    snprintf(inv.id, sizeof(inv.id), "inv_t2");
    inv.body = bad;
    assert_int_equal(tg_outbox_enqueue_invoice(f->db.st, NULL, &inv, 0, 0, &err), TG_EINVAL);
    snprintf(inv.id, sizeof(inv.id), "inv_t3");
    snprintf(inv.currency, sizeof(inv.currency), "XQQ");
    inv.body = body;
    assert_int_equal(tg_outbox_enqueue_invoice(f->db.st, NULL, &inv, 0, 0, &err), TG_EINVAL);

    /* ISK has no minor unit in ISO 4217, but Stripe's API counts it in hundredths: 1200 krona is
     * amount=120000 (1200 would be billed as 12 krona) */
    char krona[] = "{\"lines\":[{\"description\":\"Base\",\"amount\":\"1200\"}]}";
    snprintf(inv.id, sizeof(inv.id), "inv_t4");
    snprintf(inv.currency, sizeof(inv.currency), "isk");
    inv.body = krona;
    assert_int_equal(tg_outbox_enqueue_invoice(f->db.st, NULL, &inv, 0, 0, &err), 0);
    assert_int_equal(tg_store_outbox_due(f->db.st, tg_clock_now_ns() / 1000000 + 1000, rows, 16, &n, &err), 0);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rows[i].idempotency_key, "tg_invoice.item_inv_t4_0") == 0) {
            assert_non_null(strstr(rows[i].params, "&amount=120000&currency=isk"));
            seen = 1;
        }
        tg_outbox_row_clear(&rows[i]);
    }
    assert_true(seen);
}

/* This session's view of the outbox claims other connections hold (store_pg_outbox.c). */
static int claims_held(fx_t *f)
{
    PGconn *c = PQconnectdb(f->db.url);
    PGresult *r = PQexec(c, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1413959490"
                            " AND objsubid = 2 AND database = (SELECT oid FROM pg_database"
                            " WHERE datname = current_database())");
    int n = PQresultStatus(r) == PGRES_TUPLES_OK ? (int)strtol(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    PQfinish(c);
    return n;
}

/* Two gateways on one PostgreSQL, each with its outbox processor: every row is sent once. The
 * Stripe stand-in is held (its thread blocks on its lock) while the first processor is inside
 * its first call with its batch read; the second processor then reads the queue and, the rows
 * being claimed, sends nothing and keeps looking (its passes count up). Without claims it read
 * the same rows and sent the first one again, blocked in the same call (its passes stayed). */
static void test_two_processors_send_each_row_once(void **state)
{
    fx_t *f = *state;
    if (tg_tmpstore_is_sqlite(&f->db)) {
        print_message("several processors on one database: PostgreSQL only (SQLite serves one node)\n");
        skip();
    }
    enum { ROWS = 12 };
    tiny_http_t t;
    assert_int_equal(tiny_start(&t), 0);
    for (int i = 0; i < ROWS; i++)
        tiny_push(&t, "HTTP/1.1 200 OK\r\n", "{\"id\":\"ii_x\",\"object\":\"invoiceitem\"}");
    tg_err_t err = {0};
    int64_t now = tg_clock_now_ns() / 1000000;
    for (int i = 0; i < ROWS; i++) {
        tg_outbox_row_t row;
        memset(&row, 0, sizeof(row));
        snprintf(row.kind, sizeof(row.kind), "invoiceitem.create");
        snprintf(row.idempotency_key, sizeof(row.idempotency_key), "tg_two_%d", i);
        snprintf(row.method, sizeof(row.method), "POST");
        snprintf(row.path, sizeof(row.path), "/v1/invoiceitems");
        assert_int_equal(tg_store_outbox_insert(f->db.st, &row, "amount=1", 8, now, NULL, &err), 0);
    }
    pthread_mutex_lock(&t.mu); /* the stand-in accepts one call, then waits */
    char base[64];
    tg_outbox_t *a = start(f, &t, base, sizeof(base), 12);
    WAIT_FOR(claims_held(f) == ROWS);
    tg_outbox_t *b = start(f, &t, base, sizeof(base), 12);
    WAIT_FOR(passes(b) >= 3);
    pthread_mutex_unlock(&t.mu);
    tg_outbox_counts_t counts;
    WAIT_FOR(tg_store_outbox_counts(f->db.st, &counts, &err) == 0 && counts.done == ROWS);
    tg_outbox_stop(a);
    tg_outbox_stop(b);
    tiny_stop(&t);
    assert_int_equal(t.nreq, ROWS);
    for (size_t i = 0; i < t.nreq; i++)
        for (size_t j = i + 1; j < t.nreq; j++) {
            const char *ki = strstr(t.requests[i], "Idempotency-Key: "), *kj = strstr(t.requests[j], "Idempotency-Key: ");
            assert_non_null(ki);
            assert_non_null(kj);
            assert_true(strncmp(ki, kj, strcspn(ki, "\r") + 1) != 0); /* no key twice (CR included) */
        }
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_schedule),
        cmocka_unit_test_setup_teardown(test_enqueue_in_the_callers_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row_transitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_processor_replays_with_one_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_processor_keeps_a_permanent_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_cuts_a_call_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_row_searches_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_waits_for_its_customer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_429_pauses_every_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_of_a_customer_keep_their_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enqueue_invoice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_processors_send_each_row_once, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
