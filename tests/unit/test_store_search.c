/* test_store_search.c - the owner's customer search (tg_store_customer_search, issue 15) on a real
 * database: SQLite by default, PostgreSQL with TG_TEST_BACKEND=postgres (tests/support/tmpstore.h);
 * the same assertions on both. What matches (substring of email, name or id, case-insensitive,
 * LIKE's wildcards literal), the filters, every order walked a page at a time (each customer
 * once, in order), and cursors that are not this order's. */
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

#define NOW 100000

typedef struct {
    const char *id, *email, *name, *plan, *status;
    int64_t created_at, trial_end;
} row_t;

/* created_at ties (1000, 1000) and name ties ("Same Name") to check the order's tie-break by id */
static const row_t rows[] = {
    {"cus_ada", "ops@ACME.io", "Acme Corp", "pro", "active", 1000, 0},
    {"cus_bob", "bob@example.com", "Bob's 100% Shop", "free", "active", 1000, 0},
    {"cus_cid", "a_b@example.com", "Same Name", "free", "past_due", 1001, 0},
    {"cus_dan", "axb@example.com", "Same Name", "pro", "suspended", 1002, 0},
    {"cus_eve", "Eve@Example.com", "zeta", "free", "trialing", 1003, NOW + 10},      /* in trial */
    {"cus_fay", "fay@example.com", "Ärger GmbH", "pro", "trialing", 1004, NOW - 10}, /* trial over: active */
    {"cus_gus", "gus@acme-partners.net", "", "free", "canceled", 1005, 0},
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

typedef struct {
    char ids[32][TG_ID_MAX];
    int n;
} seen_t;

static int on_customer(const tg_customer_t *c, void *arg)
{
    seen_t *s = arg;
    assert_true(s->n < 32);
    snprintf(s->ids[s->n++], TG_ID_MAX, "%s", c->id);
    return 0;
}

static int setup(void **state)
{
    tg_tmpstore_t *db = calloc(1, sizeof(*db));
    assert_non_null(db);
    assert_int_equal(tg_tmpstore_open(db, "search"), 0);
    tg_err_t err = {0};
    for (size_t i = 0; i < NROWS; i++) {
        tg_customer_t c = {0};
        snprintf(c.id, sizeof(c.id), "%s", rows[i].id);
        snprintf(c.email, sizeof(c.email), "%s", rows[i].email);
        snprintf(c.name, sizeof(c.name), "%s", rows[i].name);
        snprintf(c.plan_id, sizeof(c.plan_id), "%s", rows[i].plan);
        snprintf(c.status, sizeof(c.status), "%s", rows[i].status);
        c.created_at = c.anchor_at = rows[i].created_at;
        c.trial_end = rows[i].trial_end;
        assert_int_equal(tg_store_customer_insert(db->st, &c, &err), 0);
    }
    *state = db;
    return 0;
}

static int teardown(void **state)
{
    tg_tmpstore_t *db = *state;
    assert_int_equal(tg_tmpstore_close(db), 0);
    free(db);
    return 0;
}

/* Every page of q with `limit`, into seen; the number of pages. */
static int walk(tg_store_t *st, const tg_customer_query_t *q, size_t limit, seen_t *seen)
{
    tg_err_t err = {0};
    tg_page_t page = {limit, ""};
    tg_page_end_t end;
    int pages = 0;
    memset(seen, 0, sizeof(*seen));
    do {
        int rc = tg_store_customer_search(st, q, &page, on_customer, seen, &end, &err);
        if (rc != 0)
            fprintf(stderr, "%s\n", err.msg);
        assert_int_equal(rc, 0);
        memcpy(page.after, end.next, sizeof(page.after));
        pages++;
    } while (end.has_more && pages < 40);
    assert_false(end.has_more);
    return pages;
}

static void expect(tg_store_t *st, const tg_customer_query_t *q, const char *const *want, int nwant)
{
    for (size_t limit = 1; limit <= NROWS + 1; limit++) {
        seen_t seen;
        walk(st, q, limit, &seen);
        assert_int_equal(seen.n, nwant);
        for (int i = 0; i < nwant; i++)
            assert_string_equal(seen.ids[i], want[i]);
    }
}

static void test_search_matches(void **state)
{
    tg_tmpstore_t *db = *state;
    tg_customer_query_t q = {.now = NOW, .sort = TG_CUSTOMER_SORT_EMAIL, .ascending = 1};
    /* case-insensitive substring of the email or the name */
    q.search = "acme";
    expect(db->st, &q, (const char *const[]){"cus_gus", "cus_ada"}, 2);
    q.search = "EXAMPLE.COM";
    expect(db->st, &q, (const char *const[]){"cus_cid", "cus_dan", "cus_bob", "cus_eve", "cus_fay"}, 5);
    /* of the id */
    q.search = "cus_da";
    expect(db->st, &q, (const char *const[]){"cus_dan"}, 1);
    /* LIKE's wildcards match themselves: "a_b" is not "axb", "100%" is not "100 anything" */
    q.search = "a_b";
    expect(db->st, &q, (const char *const[]){"cus_cid"}, 1);
    q.search = "100%";
    expect(db->st, &q, (const char *const[]){"cus_bob"}, 1);
    q.search = "%";
    expect(db->st, &q, (const char *const[]){"cus_bob"}, 1);
    q.search = "\\";
    expect(db->st, &q, NULL, 0);
    q.search = "' OR 1=1 --";
    expect(db->st, &q, NULL, 0);
    /* too long a search is refused, not cut */
    char longq[TG_CUSTOMER_SEARCH_MAX + 1];
    memset(longq, 'a', sizeof(longq) - 1);
    longq[sizeof(longq) - 1] = '\0';
    q.search = longq;
    tg_page_t page = {10, ""};
    tg_page_end_t end;
    seen_t seen = {0};
    tg_err_t err = {0};
    assert_int_equal(tg_store_customer_search(db->st, &q, &page, on_customer, &seen, &end, &err), TG_EINVAL);
}

static void test_search_filters(void **state)
{
    tg_tmpstore_t *db = *state;
    tg_customer_query_t q = {.now = NOW, .sort = TG_CUSTOMER_SORT_CREATED, .ascending = 1};
    q.plan_id = "pro";
    expect(db->st, &q, (const char *const[]){"cus_ada", "cus_dan", "cus_fay"}, 3);
    q.plan_id = "gold";
    expect(db->st, &q, NULL, 0);
    q.plan_id = NULL;
    /* as the API shows the status: a trial that ended is active */
    q.status = "active";
    expect(db->st, &q, (const char *const[]){"cus_ada", "cus_bob", "cus_fay"}, 3);
    q.status = "trialing";
    expect(db->st, &q, (const char *const[]){"cus_eve"}, 1);
    q.status = "canceled";
    expect(db->st, &q, (const char *const[]){"cus_gus"}, 1);
    /* together */
    q.status = "active";
    q.plan_id = "pro";
    q.search = "ACME";
    expect(db->st, &q, (const char *const[]){"cus_ada"}, 1);
}

static void test_search_orders(void **state)
{
    tg_tmpstore_t *db = *state;
    tg_customer_query_t q = {.now = NOW};
    /* created, newest first, ties by id: the list's historical order */
    q.sort = TG_CUSTOMER_SORT_CREATED;
    q.ascending = 0;
    expect(db->st, &q,
           (const char *const[]){"cus_gus", "cus_fay", "cus_eve", "cus_dan", "cus_cid", "cus_ada", "cus_bob"}, 7);
    q.ascending = 1;
    expect(db->st, &q,
           (const char *const[]){"cus_ada", "cus_bob", "cus_cid", "cus_dan", "cus_eve", "cus_fay", "cus_gus"}, 7);
    /* email, case-insensitive */
    q.sort = TG_CUSTOMER_SORT_EMAIL;
    expect(db->st, &q,
           (const char *const[]){"cus_cid", "cus_dan", "cus_bob", "cus_eve", "cus_fay", "cus_gus", "cus_ada"}, 7);
    q.ascending = 0;
    expect(db->st, &q,
           (const char *const[]){"cus_ada", "cus_gus", "cus_fay", "cus_eve", "cus_bob", "cus_dan", "cus_cid"}, 7);
    /* name: equal names tie by id (ascending in both directions); "" first; "Ärger" bytewise after z */
    q.sort = TG_CUSTOMER_SORT_NAME;
    q.ascending = 1;
    expect(db->st, &q,
           (const char *const[]){"cus_gus", "cus_ada", "cus_bob", "cus_cid", "cus_dan", "cus_eve", "cus_fay"}, 7);
    q.ascending = 0;
    expect(db->st, &q,
           (const char *const[]){"cus_fay", "cus_eve", "cus_cid", "cus_dan", "cus_bob", "cus_ada", "cus_gus"}, 7);
}

static void test_search_cursors(void **state)
{
    tg_tmpstore_t *db = *state;
    tg_err_t err = {0};
    seen_t seen = {0};
    tg_page_end_t end;
    tg_customer_query_t by_email = {.now = NOW, .sort = TG_CUSTOMER_SORT_EMAIL, .ascending = 1};
    tg_customer_query_t by_created = {.now = NOW, .sort = TG_CUSTOMER_SORT_CREATED};
    /* a created key is not an email key, and the other way round */
    tg_page_t page = {2, "1000/cus_ada"};
    assert_int_equal(tg_store_customer_search(db->st, &by_email, &page, on_customer, &seen, &end, &err), TG_EINVAL);
    snprintf(page.after, sizeof(page.after), ":cus_ada/ops@acme.io");
    assert_int_equal(tg_store_customer_search(db->st, &by_created, &page, on_customer, &seen, &end, &err), TG_EINVAL);
    static const char *const bad[] = {"cus_ada/ops@acme.io", ":/ops@acme.io", ":cus ada/x", ":cus_ada' OR 1=1/x",
                                      ":noslash"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(page.after, sizeof(page.after), "%s", bad[i]);
        assert_int_equal(tg_store_customer_search(db->st, &by_email, &page, on_customer, &seen, &end, &err), TG_EINVAL);
    }
    assert_int_equal(seen.n, 0);
    /* a key with '/' and quotes in its text is a position like any other */
    snprintf(page.after, sizeof(page.after), ":cus_zzz/eve@example.com' --/x");
    assert_int_equal(tg_store_customer_search(db->st, &by_email, &page, on_customer, &seen, &end, &err), 0);
    assert_int_equal(seen.n, 2);
    assert_string_equal(seen.ids[0], "cus_fay");
    assert_string_equal(seen.ids[1], "cus_gus");
}

/* ---- invoices ---- */

typedef struct {
    char ids[16][TG_ID_MAX];
    int n;
} inv_seen_t;

static int on_invoice(const tg_invoice_t *inv, void *arg)
{
    inv_seen_t *s = arg;
    assert_true(s->n < 16);
    snprintf(s->ids[s->n++], TG_ID_MAX, "%s", inv->id);
    return 0;
}

static void add_invoices(tg_tmpstore_t *db)
{
    /* cus_ada: usd; cus_bob: usd and eur (a plan change across currencies is refused, but the
     * store does not know that); periods 100..600 */
    assert_int_equal(tg_tmpstore_exec(db,
                                      "INSERT INTO invoices (id, customer_id, period_start, period_end, status,"
                                      " number, currency, total, body, created_at, finalized_at) VALUES"
                                      " ('in_1', 'cus_ada', 100, 200, 'paid', 'N1', 'usd', 10000000000, '{}', 1, 2),"
                                      " ('in_2', 'cus_ada', 200, 300, 'open', 'N2', 'usd', 2500000000, '{}', 1, 2),"
                                      " ('in_3', 'cus_bob', 200, 300, 'paid', 'N3', 'eur', 7000000000, '{}', 1, 2),"
                                      " ('in_4', 'cus_bob', 300, 400, 'void', 'N4', 'eur', 1000000000, '{}', 1, 2),"
                                      " ('in_5', 'cus_ada', 400, 500, 'draft', NULL, 'usd', 500000000, '{}', 1, 0),"
                                      " ('in_6', 'cus_bob', 500, 600, 'uncollectible', 'N6', 'usd', 300000000,"
                                      " '{}', 1, 2)"),
                     0);
}

static void expect_invoices(tg_store_t *st, const tg_invoice_query_t *q, const char *const *want, int nwant)
{
    for (size_t limit = 1; limit <= 7; limit++) {
        inv_seen_t seen = {0};
        tg_err_t err = {0};
        tg_page_t page = {limit, ""};
        tg_page_end_t end;
        int pages = 0;
        do {
            assert_int_equal(tg_store_invoice_search(st, q, &page, on_invoice, &seen, &end, &err), 0);
            memcpy(page.after, end.next, sizeof(page.after));
        } while (end.has_more && ++pages < 20);
        assert_int_equal(seen.n, nwant);
        for (int i = 0; i < nwant; i++)
            assert_string_equal(seen.ids[i], want[i]);
    }
}

typedef struct {
    char line[8][64];
    int n;
} sums_t;

static int on_sum(const char *currency, const char *status, int64_t total, uint64_t count, void *arg)
{
    sums_t *s = arg;
    assert_true(s->n < 8);
    snprintf(s->line[s->n++], 64, "%s %s %lld x%llu", currency, status, (long long)total, (unsigned long long)count);
    return 0;
}

static void test_invoice_search(void **state)
{
    tg_tmpstore_t *db = *state;
    add_invoices(db);
    /* no filter: the invoices list's order, newest period first, ties by id */
    tg_invoice_query_t q = {0};
    expect_invoices(db->st, &q, (const char *const[]){"in_6", "in_5", "in_4", "in_2", "in_3", "in_1"}, 6);
    q.customer_id = "cus_bob";
    expect_invoices(db->st, &q, (const char *const[]){"in_6", "in_4", "in_3"}, 3);
    q.currency = "eur";
    expect_invoices(db->st, &q, (const char *const[]){"in_4", "in_3"}, 2);
    q = (tg_invoice_query_t){.status = "paid"};
    expect_invoices(db->st, &q, (const char *const[]){"in_3", "in_1"}, 2);
    q = (tg_invoice_query_t){.period_from = 200, .period_to = 400}; /* [from, to) */
    expect_invoices(db->st, &q, (const char *const[]){"in_4", "in_2", "in_3"}, 3);
    q.status = "' OR 1=1 --";
    expect_invoices(db->st, &q, NULL, 0);

    /* totals: per currency and status, never across currencies */
    sums_t sums = {0};
    tg_err_t err = {0};
    q = (tg_invoice_query_t){0};
    assert_int_equal(tg_store_invoice_search_totals(db->st, &q, on_sum, &sums, &err), 0);
    assert_int_equal(sums.n, 6);
    static const char *const want[] = {"eur paid 7000000000 x1",  "eur void 1000000000 x1",
                                       "usd draft 500000000 x1",  "usd open 2500000000 x1",
                                       "usd paid 10000000000 x1", "usd uncollectible 300000000 x1"};
    for (int i = 0; i < 6; i++)
        assert_string_equal(sums.line[i], want[i]);
    sums.n = 0;
    q.customer_id = "cus_ada";
    q.period_to = 400;
    assert_int_equal(tg_store_invoice_search_totals(db->st, &q, on_sum, &sums, &err), 0);
    assert_int_equal(sums.n, 2);
    assert_string_equal(sums.line[0], "usd open 2500000000 x1");
    assert_string_equal(sums.line[1], "usd paid 10000000000 x1");

    /* a sum past int64 is an error, not a wrapped figure */
    assert_int_equal(tg_tmpstore_exec(db, "INSERT INTO invoices (id, customer_id, period_start, period_end, status,"
                                          " number, currency, total, body, created_at, finalized_at) VALUES"
                                          " ('in_7', 'cus_ada', 700, 800, 'paid', 'N7', 'usd', 9000000000000000000,"
                                          " '{}', 1, 2), ('in_8', 'cus_ada', 800, 900, 'paid', 'N8', 'usd',"
                                          " 9000000000000000000, '{}', 1, 2)"),
                     0);
    q = (tg_invoice_query_t){0};
    sums.n = 0;
    assert_true(tg_store_invoice_search_totals(db->st, &q, on_sum, &sums, &err) != 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_search_matches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_orders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_cursors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invoice_search, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
