/* test_store_cluster.c - what several gateways need from the shared database (store_cluster.h):
 * change notifications for what the gateway enforces (customers, keys, dunning), none for
 * bookkeeping (the closer's schedule, keys' last-used times), and one holder of the scheduler
 * lock at a time, handed over when its connection ends. PostgreSQL (TG_TEST_BACKEND=postgres);
 * on SQLite only the one-node answers are checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../support/tmpstore.h"
#include "store/store_cluster.h"
#include "store/store_payments.h"

typedef struct {
    tg_tmpstore_t t;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_int_equal(tg_tmpstore_open(&f->t, "cluster"), 0);
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

typedef struct {
    char ids[16][TG_ID_MAX];
    size_t n;
} seen_t;

static void on_change(const char *kind, const char *id, void *arg)
{
    seen_t *s = arg;
    assert_string_equal(kind, "customer");
    if (s->n < 16)
        snprintf(s->ids[s->n++], TG_ID_MAX, "%s", id);
}

/* What the listener receives within 2 s of a committed write (0 or 1 notification expected:
 * PostgreSQL delivers at commit, so a notification that is due is there at once). */
static size_t wait_changes(tg_store_t *listener, seen_t *s, int ms)
{
    tg_err_t err = {0};
    size_t n = 0;
    s->n = 0;
    assert_int_equal(tg_store_changes_wait(listener, ms, on_change, s, &n, &err), 0);
    return n;
}

static tg_customer_t customer(const char *id)
{
    tg_customer_t c = {0};
    snprintf(c.id, sizeof(c.id), "%s", id);
    snprintf(c.email, sizeof(c.email), "%s@example.com", id);
    snprintf(c.plan_id, sizeof(c.plan_id), "starter");
    snprintf(c.status, sizeof(c.status), "active");
    c.created_at = c.anchor_at = 1767225600;
    return c;
}

static void test_notifications(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    tg_store_t *listener;
    assert_int_equal(tg_store_open(f->t.url, &listener, &err), 0);
    if (tg_tmpstore_is_sqlite(&f->t)) {
        assert_int_equal(tg_store_changes_listen(listener, &err), TG_ESTATE);
        tg_store_close(listener);
        return;
    }
    assert_int_equal(tg_store_changes_listen(listener, &err), 0);
    seen_t s;

    tg_customer_t c = customer("cus_n1");
    assert_int_equal(tg_store_customer_insert(f->t.st, &c, &err), 0);
    assert_int_equal(wait_changes(listener, &s, 2000), 1);
    assert_string_equal(s.ids[0], "cus_n1");

    snprintf(c.plan_id, sizeof(c.plan_id), "pro"); /* a plan change */
    assert_int_equal(tg_store_customer_update(f->t.st, &c, &err), 0);
    assert_int_equal(wait_changes(listener, &s, 2000), 1);

    tg_key_t k = {0};
    snprintf(k.id, sizeof(k.id), "key_n1");
    snprintf(k.customer_id, sizeof(k.customer_id), "cus_n1");
    k.hash[0] = 1;
    k.created_at = 1767225600;
    assert_int_equal(tg_store_key_insert(f->t.st, &k, &err), 0);
    assert_int_equal(wait_changes(listener, &s, 2000), 1);
    assert_int_equal(tg_store_key_set_revoked(f->t.st, "key_n1", 1767225700, &err), 0);
    assert_int_equal(wait_changes(listener, &s, 2000), 1);

    tg_dunning_row_t d = {0};
    snprintf(d.customer_id, sizeof(d.customer_id), "cus_n1");
    d.past_due_since = 1767225600;
    d.held = 1;
    assert_int_equal(tg_store_dunning_put(f->t.st, &d, &err), 0);
    assert_int_equal(wait_changes(listener, &s, 2000), 1);

    /* bookkeeping announces nothing: the closer's schedule (a million updates at a month's
     * end) and a key's last use */
    assert_int_equal(tg_store_customer_set_next_period_end(f->t.st, "cus_n1", 0, 1769904000, &err), 0);
    assert_int_equal(tg_store_key_touch(f->t.st, "key_n1", 1767225800, &err), 0);
    assert_int_equal(wait_changes(listener, &s, 300), 0);

    /* a rolled-back write announces nothing either */
    assert_int_equal(tg_store_tx_begin(f->t.st, &err), 0);
    tg_customer_t c2 = customer("cus_n2");
    assert_int_equal(tg_store_customer_insert(f->t.st, &c2, &err), 0);
    tg_store_tx_rollback(f->t.st);
    assert_int_equal(wait_changes(listener, &s, 300), 0);
    tg_store_close(listener);
}

static void test_one_leader(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    tg_store_t *a, *b;
    assert_int_equal(tg_store_open(f->t.url, &a, &err), 0);
    assert_int_equal(tg_store_open(f->t.url, &b, &err), 0);
    int la = 0, lb = 0;
    assert_int_equal(tg_store_leader_try(a, &la, &err), 0);
    assert_int_equal(tg_store_leader_try(b, &lb, &err), 0);
    if (tg_tmpstore_is_sqlite(&f->t)) { /* one node: always */
        assert_true(la && lb);
    } else {
        assert_int_equal(la, 1);
        assert_int_equal(lb, 0);
        assert_int_equal(tg_store_leader_try(a, &la, &err), 0); /* still held */
        assert_int_equal(la, 1);
        tg_store_close(a); /* the holder's connection ends: the lock is free */
        a = NULL;
        /* PQfinish does not wait for the server's backend to exit and drop its locks: poll, bounded. */
        for (int i = 0; i < 1000; i++) {
            assert_int_equal(tg_store_leader_try(b, &lb, &err), 0);
            if (lb)
                break;
            nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
        }
        assert_int_equal(lb, 1);
    }
    tg_store_close(a);
    tg_store_close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_notifications, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_leader, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
