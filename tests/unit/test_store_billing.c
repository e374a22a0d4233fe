/* test_store_billing.c - the period closer's schedule in the store (store.h, migration 21):
 * customers_due pages in (next_period_end, id) order after a position and up to a time,
 * customer_set_next_period_end is a compare-and-set, and a customer update that changes when
 * its periods end resets the schedule. Runs on the backend tmpstore.h opens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "store/store.h"
#include "../support/tmpstore.h"

typedef struct {
    char ids[16][TG_ID_MAX];
    int64_t ends[16];
    size_t n;
} seen_t;

static int seen_cb(const tg_customer_t *c, int64_t next_end, void *arg)
{
    seen_t *s = arg;
    if (s->n < 16) {
        snprintf(s->ids[s->n], TG_ID_MAX, "%s", c->id);
        s->ends[s->n++] = next_end;
    }
    return 0;
}

static void add(tg_store_t *st, const char *id, int64_t next_end)
{
    tg_customer_t c = {0};
    tg_err_t err = {0};
    snprintf(c.id, sizeof(c.id), "%s", id);
    snprintf(c.email, sizeof(c.email), "%s@b.co", id);
    snprintf(c.plan_id, sizeof(c.plan_id), "starter");
    snprintf(c.status, sizeof(c.status), "active");
    c.created_at = c.anchor_at = 1000;
    assert_int_equal(tg_store_customer_insert(st, &c, &err), 0);
    if (next_end != 0)
        assert_int_equal(tg_store_customer_set_next_period_end(st, id, 0, next_end, &err), 0);
}

static void due(tg_store_t *st, int64_t until, int64_t after_end, const char *after_id, size_t limit, seen_t *s)
{
    tg_err_t err = {0};
    size_t n = 99;
    memset(s, 0, sizeof(*s));
    assert_int_equal(tg_store_customers_due(st, until, after_end, after_id, limit, seen_cb, s, &n, &err), 0);
    assert_int_equal(n, s->n);
}

static void test_due_pages_in_order(void **state)
{
    (void)state;
    tg_tmpstore_t t;
    assert_int_equal(tg_tmpstore_open(&t, "stbill"), 0);
    add(t.st, "cus_c", 300);
    add(t.st, "cus_a", 300);
    add(t.st, "cus_new", 0); /* never looked at: due at once */
    add(t.st, "cus_b", 200);
    add(t.st, "cus_late", 900);
    seen_t s;
    /* due by 300: the new one, then by end, then by id; not the one due at 900 */
    due(t.st, 300, INT64_MIN, "", 10, &s);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.ids[0], "cus_new");
    assert_int_equal(s.ends[0], 0);
    assert_string_equal(s.ids[1], "cus_b");
    assert_int_equal(s.ends[1], 200);
    assert_string_equal(s.ids[2], "cus_a");
    assert_string_equal(s.ids[3], "cus_c");
    /* a page of two, then the next page from the last one handed over */
    due(t.st, 300, INT64_MIN, "", 2, &s);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.ids[1], "cus_b");
    due(t.st, 300, 200, "cus_b", 2, &s);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.ids[0], "cus_a");
    assert_string_equal(s.ids[1], "cus_c");
    due(t.st, 300, 300, "cus_c", 2, &s);
    assert_int_equal(s.n, 0);
    /* an end with no id: everything at that end and after */
    due(t.st, INT64_MAX, 300, "", 10, &s);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.ids[2], "cus_late");
    assert_int_equal(tg_tmpstore_close(&t), 0);
}

static void test_set_next_end_is_compare_and_set(void **state)
{
    (void)state;
    tg_tmpstore_t t;
    tg_err_t err = {0};
    assert_int_equal(tg_tmpstore_open(&t, "stbill"), 0);
    add(t.st, "cus_a", 0);
    assert_int_equal(tg_store_customer_set_next_period_end(t.st, "cus_a", 0, 500, &err), 0);
    /* a writer that read an older value changes nothing */
    assert_int_equal(tg_store_customer_set_next_period_end(t.st, "cus_a", 0, 700, &err), 0);
    seen_t s;
    due(t.st, INT64_MAX, INT64_MIN, "", 10, &s);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ends[0], 500);
    /* nobody: not an error */
    assert_int_equal(tg_store_customer_set_next_period_end(t.st, "cus_none", 0, 700, &err), 0);
    assert_int_equal(tg_tmpstore_close(&t), 0);
}

static void test_update_resets_schedule(void **state)
{
    (void)state;
    tg_tmpstore_t t;
    tg_err_t err = {0};
    assert_int_equal(tg_tmpstore_open(&t, "stbill"), 0);
    add(t.st, "cus_a", 500);
    tg_customer_t c;
    seen_t s;
    /* a name or email changes nothing about the periods: the schedule stays */
    assert_int_equal(tg_store_customer_get(t.st, "cus_a", &c, &err), 0);
    snprintf(c.name, sizeof(c.name), "Ada");
    assert_int_equal(tg_store_customer_update(t.st, &c, &err), 0);
    due(t.st, INT64_MAX, INT64_MIN, "", 10, &s);
    assert_int_equal(s.ends[0], 500);
    /* each of these does: plan, anchor, status, scheduled change, cancellation */
    for (int k = 0; k < 5; k++) {
        assert_int_equal(tg_store_customer_set_next_period_end(t.st, "cus_a", s.ends[0], 500, &err), 0);
        assert_int_equal(tg_store_customer_get(t.st, "cus_a", &c, &err), 0);
        switch (k) {
        case 0: snprintf(c.plan_id, sizeof(c.plan_id), "pro%d", k); break;
        case 1: c.anchor_at += 86400; break;
        case 2: snprintf(c.status, sizeof(c.status), "past_due"); break;
        case 3: snprintf(c.pending_plan_id, sizeof(c.pending_plan_id), "free"), c.pending_at = 400; break;
        default: c.cancel_at = 450; break;
        }
        assert_int_equal(tg_store_customer_update(t.st, &c, &err), 0);
        due(t.st, INT64_MAX, INT64_MIN, "", 10, &s);
        assert_int_equal(s.n, 1);
        assert_int_equal(s.ends[0], 0);
    }
    assert_int_equal(tg_tmpstore_close(&t), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_due_pages_in_order),
        cmocka_unit_test(test_set_next_end_is_compare_and_set),
        cmocka_unit_test(test_update_resets_schedule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
