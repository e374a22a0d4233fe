/* test_store_payments.c - the store's payments calls (store_payments.h) on whichever backend the
 * environment picks (tests/support/tmpstore.h): the same results on SQLite and PostgreSQL, and on
 * a database that several gateways share, each webhook event recorded once and applied by one
 * node at a time. Rows that only other store calls make (customers, outbox rows) are set up with
 * plain SQL that both dialects accept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_payments.h"
#include "../support/tmpstore.h"

#define T0 INT64_C(1764720000)

static int setup(void **state)
{
    tg_tmpstore_t *t = calloc(1, sizeof(*t));
    if (t == NULL || tg_tmpstore_open(t, "storepay") != 0) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    tg_tmpstore_t *t = *state;
    int rc = tg_tmpstore_close(t);
    free(t);
    return rc;
}

/* A second connection to the same database: another gateway. */
static tg_store_t *other_node(const tg_tmpstore_t *t)
{
    tg_store_t *st = NULL;
    tg_err_t err = {0};
    if (tg_store_open(t->url, &st, &err) != 0)
        fail_msg("opening a second connection: %s", err.msg);
    return st;
}

static void event(const char *id, int64_t received_at, const char *payload, tg_stripe_event_row_t *e)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", id);
    snprintf(e->type, sizeof(e->type), "invoice.paid");
    e->created = received_at - 5;
    snprintf(e->object_id, sizeof(e->object_id), "in_%s", id + 4);
    e->received_at = received_at;
    e->payload = (char *)payload;
    e->payload_len = strlen(payload);
}

static void insert(tg_store_t *st, const char *id, int64_t received_at, const char *payload, int expect_inserted)
{
    tg_stripe_event_row_t e;
    tg_err_t err = {0};
    int inserted = -1;
    event(id, received_at, payload, &e);
    assert_int_equal(tg_store_stripe_event_insert(st, &e, &inserted, &err), 0);
    assert_int_equal(inserted, expect_inserted);
}

/* Recorded once by id, read back field by field; the oldest pending first (ties: the order of
 * arrival); marks processed and failed. */
static void test_events(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_store_t *st = t->st;
    tg_err_t err = {0};
    const char *body = "{\"id\":\"evt_1\",\"note\":\"caf\xc3\xa9\"}";
    /* The body need not end with a NUL: only payload_len bytes are stored. */
    char raw[64];
    memcpy(raw, "{\"id\":\"evt_3\"}XXXX", 18);
    tg_stripe_event_row_t e3;
    event("evt_3", T0, raw, &e3);
    e3.payload_len = 14;
    int inserted = 0;
    assert_int_equal(tg_store_stripe_event_insert(st, &e3, &inserted, &err), 0);
    assert_int_equal(inserted, 1);
    insert(st, "evt_1", T0 + 10, body, 1);
    insert(st, "evt_2", T0, "{}", 1);
    insert(st, "evt_1", T0 + 20, "{\"other\":1}", 0); /* Stripe's retry: nothing changes */
    uint64_t n = 0;
    assert_int_equal(tg_store_stripe_event_count(st, &n, &err), 0);
    assert_int_equal(n, 3);

    tg_stripe_event_row_t out;
    assert_int_equal(tg_store_stripe_event_get(st, "evt_1", &out, &err), 0);
    assert_string_equal(out.id, "evt_1");
    assert_string_equal(out.type, "invoice.paid");
    assert_int_equal(out.created, T0 + 5);
    assert_string_equal(out.object_id, "in_1");
    assert_int_equal(out.received_at, T0 + 10);
    assert_int_equal(out.processed_at, 0);
    assert_string_equal(out.customer_id, "");
    assert_null(out.payload);
    assert_int_equal(tg_store_stripe_event_get(st, "evt_9", &out, &err), TG_ENOTFOUND);

    int found = 0;
    assert_int_equal(tg_store_stripe_event_next(st, &out, &found, &err), 0);
    assert_int_equal(found, 1);
    assert_string_equal(out.id, "evt_3"); /* received at T0, before evt_2 */
    assert_int_equal(out.payload_len, 14);
    assert_string_equal(out.payload, "{\"id\":\"evt_3\"}");
    free(out.payload);
    assert_int_equal(tg_store_stripe_event_mark(st, "evt_3", T0 + 30, "cus_1", "applied", "", &err), 0);
    assert_int_equal(tg_store_stripe_event_next(st, &out, &found, &err), 0);
    assert_string_equal(out.id, "evt_2");
    free(out.payload);
    /* A failure keeps it pending, with its error. */
    assert_int_equal(tg_store_stripe_event_mark(st, "evt_2", T0 + 30, "", "", "the store was down", &err), 0);
    assert_int_equal(tg_store_stripe_event_get(st, "evt_2", &out, &err), 0);
    assert_int_equal(out.processed_at, 0);
    assert_string_equal(out.error, "the store was down");
    assert_int_equal(tg_store_stripe_event_next(st, &out, &found, &err), 0);
    assert_string_equal(out.id, "evt_2");
    free(out.payload);
    assert_int_equal(tg_store_stripe_event_mark(st, "evt_2", T0 + 40, "", "ignored", "", &err), 0);
    assert_int_equal(tg_store_stripe_event_get(st, "evt_2", &out, &err), 0);
    assert_int_equal(out.processed_at, T0 + 40);
    assert_string_equal(out.outcome, "ignored");
    assert_string_equal(out.error, "");
    assert_int_equal(tg_store_stripe_event_next(st, &out, &found, &err), 0);
    assert_string_equal(out.id, "evt_1");
    assert_int_equal(out.payload_len, strlen(body));
    assert_memory_equal(out.payload, body, out.payload_len);
    free(out.payload);
    assert_int_equal(tg_store_stripe_event_get(st, "evt_3", &out, &err), 0);
    assert_int_equal(out.processed_at, T0 + 30);
    assert_string_equal(out.customer_id, "cus_1");
    assert_string_equal(out.outcome, "applied");
    assert_int_equal(tg_store_stripe_event_mark(st, "evt_1", T0 + 50, "", "applied", "", &err), 0);
    assert_int_equal(tg_store_stripe_event_next(st, &out, &found, &err), 0);
    assert_int_equal(found, 0);
}

/* A node whose attempt failed (and rolled back) marks the event failed after another node
 * applied it: the event stays applied, or it would be applied a second time. */
static void test_failure_mark_keeps_an_applied_event(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_store_t *st = t->st;
    tg_err_t err = {0};
    insert(st, "evt_a", T0, "{}", 1);
    assert_int_equal(tg_store_stripe_event_mark(st, "evt_a", T0 + 1, "cus_1", "applied", "", &err), 0);
    assert_int_equal(tg_store_stripe_event_mark(st, "evt_a", 0, "", "", "could not commit", &err), 0);
    tg_stripe_event_row_t out;
    assert_int_equal(tg_store_stripe_event_get(st, "evt_a", &out, &err), 0);
    assert_int_equal(out.processed_at, T0 + 1);
    assert_string_equal(out.outcome, "applied");
    assert_string_equal(out.error, "");
    int found = 1;
    assert_int_equal(tg_store_stripe_event_next(st, &out, &found, &err), 0);
    assert_int_equal(found, 0);
}

/* Two nodes record the same event (Stripe retried to the other one): one row. */
static void test_event_recorded_once_across_nodes(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_store_t *b = other_node(t);
    insert(t->st, "evt_x", T0, "{\"n\":1}", 1);
    insert(b, "evt_x", T0 + 1, "{\"n\":2}", 0);
    uint64_t n = 0;
    tg_err_t err = {0};
    assert_int_equal(tg_store_stripe_event_count(b, &n, &err), 0);
    assert_int_equal(n, 1);
    tg_store_close(b);
}

/* While one node holds the events inside its transaction, another node taking the next event
 * gets none (not the same one, nor a later one of maybe the same customer); once the first
 * commits, the other takes what is left. A look outside a transaction is not a claim. */
static void test_one_applier_at_a_time(void **state)
{
    tg_tmpstore_t *t = *state;
    if (tg_tmpstore_is_sqlite(t))
        skip(); /* SQLite: one writer per file (BEGIN IMMEDIATE); a second node cannot even begin */
    tg_store_t *a = t->st, *b = other_node(t);
    tg_err_t err = {0};
    insert(a, "evt_1", T0, "{}", 1);
    insert(a, "evt_2", T0 + 1, "{}", 1);
    tg_stripe_event_row_t ea, eb;
    int found = 0;
    assert_int_equal(tg_store_tx_begin(a, &err), 0);
    assert_int_equal(tg_store_stripe_event_next(a, &ea, &found, &err), 0);
    assert_int_equal(found, 1);
    assert_string_equal(ea.id, "evt_1");
    free(ea.payload);

    assert_int_equal(tg_store_tx_begin(b, &err), 0);
    assert_int_equal(tg_store_stripe_event_next(b, &eb, &found, &err), 0);
    assert_int_equal(found, 0);
    tg_store_tx_rollback(b);
    /* a look (no transaction) still sees it pending */
    assert_int_equal(tg_store_stripe_event_next(b, &eb, &found, &err), 0);
    assert_int_equal(found, 1);
    assert_string_equal(eb.id, "evt_1");
    free(eb.payload);
    assert_int_equal(tg_store_stripe_event_mark(a, "evt_1", T0 + 5, "", "applied", "", &err), 0);
    assert_int_equal(tg_store_tx_commit(a, &err), 0);

    assert_int_equal(tg_store_tx_begin(b, &err), 0);
    assert_int_equal(tg_store_stripe_event_next(b, &eb, &found, &err), 0);
    assert_int_equal(found, 1);
    assert_string_equal(eb.id, "evt_2");
    free(eb.payload);
    /* and now a is the one that waits its turn */
    assert_int_equal(tg_store_tx_begin(a, &err), 0);
    assert_int_equal(tg_store_stripe_event_next(a, &ea, &found, &err), 0);
    assert_int_equal(found, 0);
    tg_store_tx_rollback(a);
    tg_store_tx_rollback(b); /* b gave up: the event is pending again, for anyone */
    assert_int_equal(tg_store_tx_begin(a, &err), 0);
    assert_int_equal(tg_store_stripe_event_next(a, &ea, &found, &err), 0);
    assert_int_equal(found, 1);
    assert_string_equal(ea.id, "evt_2");
    free(ea.payload);
    tg_store_tx_rollback(a);
    tg_store_close(b);
}

static void test_invoice_states_and_debt(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_store_t *st = t->st;
    tg_err_t err = {0};
    tg_stripe_invoice_state_t s = {0}, out;
    int found = 1;
    assert_int_equal(tg_store_stripe_invoice_get(st, "in_1", &out, &found, &err), 0);
    assert_int_equal(found, 0);
    tg_stripe_debt_t d;
    assert_int_equal(tg_store_stripe_debt(st, "cus_1", &d, &err), 0);
    assert_int_equal(d.failed_attempts, 0);
    assert_int_equal(d.uncollectible + d.action_required + d.open_failed, 0);

    snprintf(s.invoice_id, sizeof(s.invoice_id), "in_1");
    snprintf(s.customer_id, sizeof(s.customer_id), "cus_1");
    snprintf(s.status, sizeof(s.status), "open");
    s.failed_attempts = 2;
    s.action_required = 1;
    snprintf(s.event_id, sizeof(s.event_id), "evt_1");
    s.updated_at = T0;
    assert_int_equal(tg_store_stripe_invoice_put(st, &s, &err), 0);
    assert_int_equal(tg_store_stripe_invoice_get(st, "in_1", &out, &found, &err), 0);
    assert_int_equal(found, 1);
    assert_string_equal(out.invoice_id, "in_1");
    assert_string_equal(out.customer_id, "cus_1");
    assert_string_equal(out.status, "open");
    assert_int_equal(out.failed_attempts, 2);
    assert_int_equal(out.action_required, 1);
    assert_string_equal(out.event_id, "evt_1");
    assert_int_equal(out.updated_at, T0);

    snprintf(s.invoice_id, sizeof(s.invoice_id), "in_2");
    snprintf(s.status, sizeof(s.status), "uncollectible");
    s.failed_attempts = 4;
    s.action_required = 0;
    assert_int_equal(tg_store_stripe_invoice_put(st, &s, &err), 0);
    snprintf(s.invoice_id, sizeof(s.invoice_id), "in_3"); /* paid: owes nothing */
    snprintf(s.status, sizeof(s.status), "paid");
    s.failed_attempts = 7;
    assert_int_equal(tg_store_stripe_invoice_put(st, &s, &err), 0);
    snprintf(s.invoice_id, sizeof(s.invoice_id), "in_4"); /* another customer's */
    snprintf(s.customer_id, sizeof(s.customer_id), "cus_2");
    snprintf(s.status, sizeof(s.status), "open");
    assert_int_equal(tg_store_stripe_invoice_put(st, &s, &err), 0);
    assert_int_equal(tg_store_stripe_debt(st, "cus_1", &d, &err), 0);
    assert_int_equal(d.failed_attempts, 6);
    assert_int_equal(d.uncollectible, 1);
    assert_int_equal(d.action_required, 1);
    assert_int_equal(d.open_failed, 1);

    /* replaced as a whole */
    snprintf(s.invoice_id, sizeof(s.invoice_id), "in_1");
    snprintf(s.customer_id, sizeof(s.customer_id), "cus_1");
    snprintf(s.status, sizeof(s.status), "paid");
    s.failed_attempts = 2;
    s.action_required = 0;
    snprintf(s.event_id, sizeof(s.event_id), "evt_9");
    s.updated_at = T0 + 9;
    assert_int_equal(tg_store_stripe_invoice_put(st, &s, &err), 0);
    assert_int_equal(tg_store_stripe_invoice_get(st, "in_1", &out, &found, &err), 0);
    assert_string_equal(out.status, "paid");
    assert_int_equal(out.action_required, 0);
    assert_string_equal(out.event_id, "evt_9");
    assert_int_equal(out.updated_at, T0 + 9);
    assert_int_equal(tg_store_stripe_debt(st, "cus_1", &d, &err), 0);
    assert_int_equal(d.failed_attempts, 4);
    assert_int_equal(d.uncollectible, 1);
    assert_int_equal(d.action_required, 0);
    assert_int_equal(d.open_failed, 0);
}

typedef struct rows {
    tg_dunning_row_t d[8];
    tg_status_change_t c[8];
    size_t n;
    size_t stop_at; /* the callback asks to stop after this many; 0: never */
} rows_t;

static int on_dunning(const tg_dunning_row_t *d, void *arg)
{
    rows_t *r = arg;
    r->d[r->n++] = *d;
    return r->n == r->stop_at || r->n == 8;
}

static int on_change(const tg_status_change_t *c, void *arg)
{
    rows_t *r = arg;
    r->c[r->n++] = *c;
    return r->n == 8;
}

static void test_dunning(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_store_t *st = t->st;
    tg_err_t err = {0};
    tg_dunning_row_t d = {.past_due_since = T0, .held = 0}, out;
    int found = 1;
    assert_int_equal(tg_store_dunning_get(st, "cus_b", &out, &found, &err), 0);
    assert_int_equal(found, 0);
    snprintf(d.customer_id, sizeof(d.customer_id), "cus_b");
    assert_int_equal(tg_store_dunning_put(st, &d, &err), 0);
    snprintf(d.customer_id, sizeof(d.customer_id), "cus_a");
    d.held = 1;
    d.past_due_since = T0 - 100;
    assert_int_equal(tg_store_dunning_put(st, &d, &err), 0);
    snprintf(d.customer_id, sizeof(d.customer_id), "cus_b"); /* replaces */
    d.held = 1;
    d.past_due_since = T0 + 1;
    assert_int_equal(tg_store_dunning_put(st, &d, &err), 0);
    assert_int_equal(tg_store_dunning_get(st, "cus_b", &out, &found, &err), 0);
    assert_int_equal(found, 1);
    assert_string_equal(out.customer_id, "cus_b");
    assert_int_equal(out.past_due_since, T0 + 1);
    assert_int_equal(out.held, 1);

    rows_t r = {0};
    assert_int_equal(tg_store_dunning_list(st, on_dunning, &r, &err), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.d[0].customer_id, "cus_a"); /* by customer id */
    assert_int_equal(r.d[0].past_due_since, T0 - 100);
    assert_string_equal(r.d[1].customer_id, "cus_b");
    memset(&r, 0, sizeof(r));
    r.stop_at = 1;
    assert_int_equal(tg_store_dunning_list(st, on_dunning, &r, &err), 0);
    assert_int_equal(r.n, 1);

    assert_int_equal(tg_store_dunning_clear(st, "cus_a", &err), 0);
    assert_int_equal(tg_store_dunning_clear(st, "cus_zz", &err), 0); /* none: fine */
    assert_int_equal(tg_store_dunning_get(st, "cus_a", &out, &found, &err), 0);
    assert_int_equal(found, 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(tg_store_dunning_list(st, on_dunning, &r, &err), 0);
    assert_int_equal(r.n, 1);
}

static void test_status_history(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_store_t *st = t->st;
    tg_err_t err = {0};
    /* A reason longer than the field: stored cut to it. */
    char reason[TG_OUTCOME_MAX + 16];
    memset(reason, 'r', sizeof(reason) - 1);
    reason[sizeof(reason) - 1] = '\0';
    assert_int_equal(tg_store_status_history_add(st, "cus_1", "active", "past_due", "payment failed", "evt_1", T0,
                                                 &err),
                     0);
    assert_int_equal(tg_store_status_history_add(st, "cus_2", "active", "canceled", "x", "admin", T0, &err), 0);
    assert_int_equal(tg_store_status_history_add(st, "cus_1", "past_due", "active", reason, "evt_2", T0 - 50, &err), 0);
    rows_t r = {0};
    assert_int_equal(tg_store_status_history_list(st, "cus_1", on_change, &r, &err), 0);
    assert_int_equal(r.n, 2); /* in the order recorded, not by time */
    assert_string_equal(r.c[0].from, "active");
    assert_string_equal(r.c[0].to, "past_due");
    assert_string_equal(r.c[0].reason, "payment failed");
    assert_string_equal(r.c[0].source, "evt_1");
    assert_int_equal(r.c[0].at, T0);
    assert_string_equal(r.c[1].to, "active");
    assert_int_equal(strlen(r.c[1].reason), TG_OUTCOME_MAX - 1);
    assert_int_equal(r.c[1].at, T0 - 50);
    memset(&r, 0, sizeof(r));
    assert_int_equal(tg_store_status_history_list(st, "cus_9", on_change, &r, &err), 0);
    assert_int_equal(r.n, 0);
}

static void test_payment_methods(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_store_t *st = t->st;
    tg_err_t err = {0};
    int64_t at = -1;
    int inserted = -1;
    assert_int_equal(tg_store_payment_method_get(st, "cus_1", &at, &err), 0);
    assert_int_equal(at, 0);
    assert_int_equal(tg_store_payment_method_put(st, "cus_1", T0, "cs_1", "evt_1", &inserted, &err), 0);
    assert_int_equal(inserted, 1);
    assert_int_equal(tg_store_payment_method_put(st, "cus_1", T0 + 9, "cs_2", "evt_2", &inserted, &err), 0);
    assert_int_equal(inserted, 0); /* the first stays */
    assert_int_equal(tg_store_payment_method_put(st, "cus_1", T0 + 9, "cs_2", "evt_2", NULL, &err), 0);
    assert_int_equal(tg_store_payment_method_get(st, "cus_1", &at, &err), 0);
    assert_int_equal(at, T0);
}

static void sub(const char *id, const char *customer, const char *status, int64_t at, tg_stripe_subscription_t *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->subscription_id, sizeof(s->subscription_id), "%s", id);
    snprintf(s->customer_id, sizeof(s->customer_id), "%s", customer);
    snprintf(s->status, sizeof(s->status), "%s", status);
    s->status_at = at;
    snprintf(s->event_id, sizeof(s->event_id), "evt_%lld", (long long)at);
    s->updated_at = at + 1;
}

static void test_subscriptions(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_store_t *st = t->st;
    tg_err_t err = {0};
    tg_stripe_subscription_t s, out;
    int found = 1;
    assert_int_equal(tg_store_stripe_subscription_get(st, "sub_1", &out, &found, &err), 0);
    assert_int_equal(found, 0);
    assert_int_equal(tg_store_stripe_subscription_latest(st, "cus_1", &out, &found, &err), 0);
    assert_int_equal(found, 0);
    assert_int_equal(tg_store_stripe_subscription_map(st, "cus_1", "sub_1", T0, &err), 0);
    assert_int_equal(tg_store_stripe_subscription_map(st, "cus_other", "sub_1", T0 + 5, &err), 0); /* kept */
    assert_int_equal(tg_store_stripe_subscription_get(st, "sub_1", &out, &found, &err), 0);
    assert_int_equal(found, 1);
    assert_string_equal(out.customer_id, "cus_1");
    assert_string_equal(out.status, "");
    assert_int_equal(out.status_at, 0);
    assert_int_equal(out.created_at, T0);
    assert_int_equal(out.updated_at, T0);

    sub("sub_1", "cus_ignored", "active", T0 + 10, &s);
    assert_int_equal(tg_store_stripe_subscription_put(st, &s, &err), 0);
    assert_int_equal(tg_store_stripe_subscription_get(st, "sub_1", &out, &found, &err), 0);
    assert_string_equal(out.customer_id, "cus_1"); /* an existing row keeps its customer */
    assert_string_equal(out.status, "active");
    assert_int_equal(out.status_at, T0 + 10);
    assert_string_equal(out.event_id, s.event_id);
    assert_int_equal(out.created_at, T0); /* kept */
    assert_int_equal(out.updated_at, T0 + 11);

    /* new through put: created_at is its updated_at */
    sub("sub_2", "cus_1", "past_due", T0 + 20, &s);
    assert_int_equal(tg_store_stripe_subscription_put(st, &s, &err), 0);
    assert_int_equal(tg_store_stripe_subscription_get(st, "sub_2", &out, &found, &err), 0);
    assert_string_equal(out.customer_id, "cus_1");
    assert_int_equal(out.created_at, T0 + 21);
    assert_int_equal(tg_store_stripe_subscription_latest(st, "cus_1", &out, &found, &err), 0);
    assert_int_equal(found, 1);
    assert_string_equal(out.subscription_id, "sub_2");
    /* equal created_at: the one recorded last */
    assert_int_equal(tg_store_stripe_subscription_map(st, "cus_1", "sub_3", T0 + 21, &err), 0);
    assert_int_equal(tg_store_stripe_subscription_latest(st, "cus_1", &out, &found, &err), 0);
    assert_string_equal(out.subscription_id, "sub_3");
}

/* The customers from before billing: stripe, by (created_at, id) pages. */
static void test_customers_without_subscription(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_store_t *st = t->st;
    tg_err_t err = {0};
    assert_int_equal(
        tg_tmpstore_exec(t, "INSERT INTO customers(id, email, plan_id, status, created_at, anchor_at) VALUES"
                            " ('cus_a', 'a@x.test', 'p', 'active', 100, 100),"
                            " ('cus_b', 'b@x.test', 'p', 'trialing', 100, 100),"
                            " ('cus_c', 'c@x.test', 'p', 'canceled', 100, 100),"
                            " ('cus_d', 'd@x.test', 'p', 'incomplete', 100, 100),"
                            " ('cus_e', 'e@x.test', 'p', 'active', 50, 50),"
                            " ('cus_f', 'f@x.test', 'p', 'past_due', 200, 200),"
                            " ('cus_g', 'g@x.test', 'p', 'active', 300, 300),"
                            " ('cus_h', 'h@x.test', 'p', 'suspended', 400, 400);"
                            "INSERT INTO stripe_outbox(kind, customer_id, idempotency_key, method, path, params,"
                            " next_attempt_at, created_at, updated_at) VALUES"
                            " ('subscription_create', 'cus_g', 'k1', 'POST', '/v1/subscriptions', '', 0, 0, 0),"
                            " ('customer_create', 'cus_h', 'k2', 'POST', '/v1/customers', '', 0, 0, 0)"),
        0);
    assert_int_equal(tg_store_stripe_subscription_map(st, "cus_b", "sub_b", T0, &err), 0);
    char ids[3][TG_ID_MAX];
    int64_t created[3];
    size_t n = 99;
    assert_int_equal(tg_store_customers_without_subscription(st, "subscription_create", 0, "", ids, created, 2, &n,
                                                             &err),
                     0);
    assert_int_equal(n, 2);
    assert_string_equal(ids[0], "cus_e");
    assert_int_equal(created[0], 50);
    assert_string_equal(ids[1], "cus_a");
    assert_int_equal(created[1], 100);
    assert_int_equal(tg_store_customers_without_subscription(st, "subscription_create", created[1], ids[1], ids,
                                                             created, 3, &n, &err),
                     0);
    assert_int_equal(n, 2);
    assert_string_equal(ids[0], "cus_f");
    assert_string_equal(ids[1], "cus_h"); /* its outbox row is of another kind */
    assert_int_equal(tg_store_customers_without_subscription(st, "subscription_create", 400, "cus_h", ids, created, 3,
                                                             &n, &err),
                     0);
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_mark_keeps_an_applied_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_recorded_once_across_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_applier_at_a_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invoice_states_and_debt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dunning, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_payment_methods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscriptions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_customers_without_subscription, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
