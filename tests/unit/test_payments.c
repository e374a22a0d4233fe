/* test_payments.c - the Stripe events service and dunning (src/payments/stripe_events.c): the pure
 * decision, then recording and applying events on a real store (SQLite, or PostgreSQL with
 * TG_TEST_BACKEND=postgres: tests/support/tmpstore.h) with the gateway's directory, in and out of
 * order, and with another node sharing the database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "gateway/accounts.h"
#include "payments/stripe_events.h"
#include "payments/outbox.h"
#include "store/store.h"
#include "store/store_outbox.h"
#include "store/store_payments.h"
#include "../support/tmpstore.h"

#define DAY INT64_C(86400)
#define T0 INT64_C(1764720000)

static void decide(const char *status, int held, int64_t since, int64_t failed, int uncollectible, int action,
                   int64_t now, tg_dunning_decision_t *out)
{
    tg_dunning_input_t in = {status, 0, held, since, {failed, uncollectible, action, failed > 0}, now, 7, 3};
    tg_dunning_decide(&in, out);
}

static void test_decide(void **state)
{
    (void)state;
    tg_dunning_decision_t d;
    decide("active", 0, 0, 0, 0, 0, T0, &d); /* nothing owed, nothing to do */
    assert_int_equal(d.change, 0);
    decide("active", 0, 0, 1, 0, 0, T0, &d);
    assert_int_equal(d.change, 1);
    assert_string_equal(d.status, "past_due");
    assert_int_equal(d.held, 0);
    assert_int_equal(d.past_due_since, T0);
    assert_string_equal(d.reason, "payment failed (1 of 3 before suspension)");
    decide("past_due", 0, T0, 2, 0, 0, T0 + 60, &d); /* still past due, since kept */
    assert_int_equal(d.change, 0);
    decide("past_due", 0, T0, 3, 0, 0, T0 + 60, &d);
    assert_string_equal(d.status, "suspended");
    assert_int_equal(d.held, 1);
    assert_string_equal(d.reason, "3 failed payments (dunning.suspend_after_failures: 3)");
    decide("past_due", 0, T0, 1, 0, 0, T0 + 7 * DAY, &d); /* grace_days, whichever comes first */
    assert_string_equal(d.status, "suspended");
    assert_string_equal(d.reason, "past due for 7 days (dunning.grace_days)");
    decide("past_due", 0, T0, 1, 0, 0, T0 + 7 * DAY - 1, &d);
    assert_int_equal(d.change, 0);
    decide("active", 0, 0, 0, 1, 0, T0, &d);
    assert_string_equal(d.status, "suspended");
    assert_string_equal(d.reason, "an invoice was marked uncollectible");
    decide("trialing", 0, 0, 0, 0, 1, T0, &d);
    assert_string_equal(d.status, "past_due");
    assert_string_equal(d.reason, "the payment needs the customer's action");
    /* Paid: back to active, or to the trial while it lasts. */
    decide("suspended", 1, T0, 0, 0, 0, T0 + DAY, &d);
    assert_int_equal(d.change, 1);
    assert_string_equal(d.status, "active");
    assert_int_equal(d.past_due_since, 0);
    tg_dunning_input_t in = {"past_due", T0 + 3 * DAY, 0, T0, {0, 0, 0, 0}, T0 + DAY, 7, 3};
    tg_dunning_decide(&in, &d);
    assert_string_equal(d.status, "trialing");
    /* The owner's decisions are never undone. */
    decide("suspended", 0, 0, 0, 0, 0, T0, &d);
    assert_int_equal(d.change, 0);
    decide("suspended", 0, 0, 5, 0, 0, T0, &d);
    assert_int_equal(d.change, 0);
    decide("canceled", 0, 0, 5, 0, 0, T0, &d);
    assert_int_equal(d.change, 0);
    assert_non_null(strstr(d.reason, "by the owner"));
}

/* ---- the service on a real store ---- */

typedef struct fx {
    tg_tmpstore_t db;
    tg_config_t *cfg;
    tg_store_t *st;
    tg_accounts_t *acc;
    tg_payments_deps_t d;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    char yaml[1024], errbuf[2048];
    snprintf(yaml, sizeof(yaml),
             "upstream: {url: \"http://127.0.0.1:9000\"}\n"
             "admin: {token: \"0123456789abcdef0123\"}\n"
             "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"
             "stripe: {secret_key: sk_test_1, webhook_secret: whsec_1}\n"
             "dunning: {grace_days: 7, suspend_after_failures: 3}\n"
             "plans: {free: {}, pro: {trial_days: 14}, paid: {price: \"10\"}}\n");
    assert_int_equal(tg_config_load_string("t.yaml", yaml, strlen(yaml), &f->cfg, errbuf, sizeof(errbuf)), 0);
    assert_int_equal(tg_tmpstore_open(&f->db, "pay"), 0);
    f->st = f->db.st;
    assert_non_null(f->acc = tg_accounts_new(f->cfg));
    f->d = (tg_payments_deps_t){f->cfg, f->st, f->acc};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    tg_accounts_free(f->acc);
    tg_config_free(f->cfg);
    assert_int_equal(tg_tmpstore_close(&f->db), 0);
    free(f);
    return 0;
}

static void add_customer(fx_t *f, const char *id, const char *status)
{
    tg_customer_t c = {0};
    snprintf(c.id, sizeof(c.id), "%s", id);
    snprintf(c.email, sizeof(c.email), "%s@example.com", id);
    snprintf(c.plan_id, sizeof(c.plan_id), "free");
    snprintf(c.status, sizeof(c.status), "%s", status);
    c.created_at = c.anchor_at = T0 - DAY;
    tg_err_t err = {0};
    assert_int_equal(tg_store_customer_insert(f->st, &c, &err), 0);
    assert_int_equal(tg_accounts_put_customer(f->acc, &c, &err), 0);
}

static const char *status_of(fx_t *f, const char *id)
{
    static tg_customer_t c;
    tg_err_t err = {0};
    assert_int_equal(tg_store_customer_get(f->st, id, &c, &err), 0);
    return c.status;
}

/* Records an invoice event; returns 1 if it was new. */
static int send(fx_t *f, const char *evt, const char *type, const char *invoice, const char *status, int attempts,
                const char *customer, int64_t now)
{
    char body[1024];
    snprintf(body, sizeof(body),
             "{\n  \"id\": \"%s\",\n  \"object\": \"event\",\n  \"type\": \"%s\",\n  \"created\": %lld,\n"
             "  \"data\": {\"object\": {\"id\": \"%s\", \"object\": \"invoice\", \"status\": \"%s\","
             " \"attempt_count\": %d, \"metadata\": {\"tollgate_customer\": \"%s\"}}}\n}",
             evt, type, (long long)now, invoice, status, attempts, customer);
    tg_stripe_recorded_t rec;
    tg_err_t err = {0};
    assert_int_equal(tg_stripe_event_record(&f->d, body, strlen(body), now, &rec, &err), 0);
    return !rec.duplicate;
}

static void run(fx_t *f, int64_t now, size_t expect)
{
    size_t n = 99;
    tg_err_t err = {0};
    assert_int_equal(tg_stripe_events_run(&f->d, 100, now, &n, &err), 0);
    assert_int_equal(n, expect);
}

static tg_account_status_t gateway_status(fx_t *f, const char *id, int *hold)
{
    tg_account_t *a = tg_accounts_find(f->acc, id);
    assert_non_null(a);
    *hold = tg_account_payment_hold(a);
    return tg_account_status(a, T0);
}

static int history_count_cb(const tg_status_change_t *c, void *arg)
{
    (void)c;
    (*(int *)arg)++;
    return 0;
}

static int history_count(fx_t *f, const char *id)
{
    int n = 0;
    tg_err_t err = {0};
    assert_int_equal(tg_store_status_history_list(f->st, id, history_count_cb, &n, &err), 0);
    return n;
}

static void test_dunning_through_events(void **state)
{
    fx_t *f = *state;
    int hold;
    add_customer(f, "cus_a", "active");
    assert_true(send(f, "evt_1", "invoice.payment_failed", "in_1", "open", 1, "cus_a", T0));
    assert_false(send(f, "evt_1", "invoice.payment_failed", "in_1", "open", 1, "cus_a", T0)); /* duplicate */
    run(f, T0, 1);
    assert_string_equal(status_of(f, "cus_a"), "past_due");
    assert_int_equal(gateway_status(f, "cus_a", &hold), TG_ACCT_PAST_DUE);
    assert_int_equal(hold, 0);

    send(f, "evt_2", "invoice.payment_failed", "in_1", "open", 2, "cus_a", T0 + 10);
    send(f, "evt_3", "invoice.payment_failed", "in_1", "open", 3, "cus_a", T0 + 20);
    run(f, T0 + 20, 2);
    assert_string_equal(status_of(f, "cus_a"), "suspended");
    assert_int_equal(gateway_status(f, "cus_a", &hold), TG_ACCT_SUSPENDED);
    assert_int_equal(hold, 1);

    send(f, "evt_4", "invoice.paid", "in_1", "paid", 4, "cus_a", T0 + 30);
    run(f, T0 + 30, 1);
    assert_string_equal(status_of(f, "cus_a"), "active");
    assert_int_equal(gateway_status(f, "cus_a", &hold), TG_ACCT_ACTIVE);
    assert_int_equal(hold, 0);
    assert_int_equal(history_count(f, "cus_a"), 3);

    /* Late: attempt 2's event, delivered after the payment, changes nothing. */
    send(f, "evt_late", "invoice.payment_failed", "in_1", "open", 2, "cus_a", T0 + 40);
    run(f, T0 + 40, 1);
    assert_string_equal(status_of(f, "cus_a"), "active");
    tg_stripe_event_row_t e;
    tg_err_t err = {0};
    assert_int_equal(tg_store_stripe_event_get(f->st, "evt_late", &e, &err), 0);
    assert_string_equal(e.outcome, "stale: invoice in_1 is already paid; customer stays active");
    assert_int_equal(e.processed_at, T0 + 40);
    assert_int_equal(history_count(f, "cus_a"), 3);
    uint64_t count = 0;
    assert_int_equal(tg_store_stripe_event_count(f->st, &count, &err), 0);
    assert_int_equal(count, 5);
}

static void test_order_independence(void **state)
{
    fx_t *f = *state;
    add_customer(f, "cus_b", "active");
    /* Paid first, the failures after: the invoice is paid, the customer never leaves active. */
    send(f, "evt_b4", "invoice.paid", "in_b", "paid", 3, "cus_b", T0 + 30);
    send(f, "evt_b1", "invoice.payment_failed", "in_b", "open", 1, "cus_b", T0 + 31);
    send(f, "evt_b3", "invoice.payment_failed", "in_b", "open", 3, "cus_b", T0 + 32);
    run(f, T0 + 40, 3);
    assert_string_equal(status_of(f, "cus_b"), "active");
    assert_int_equal(history_count(f, "cus_b"), 0);
    /* Two invoices: paying one leaves the other's failures owed. */
    send(f, "evt_c1", "invoice.payment_failed", "in_c1", "open", 1, "cus_b", T0 + 50);
    send(f, "evt_c2", "invoice.payment_failed", "in_c2", "open", 2, "cus_b", T0 + 51);
    run(f, T0 + 51, 2);
    assert_string_equal(status_of(f, "cus_b"), "suspended");
    send(f, "evt_c3", "invoice.paid", "in_c2", "paid", 2, "cus_b", T0 + 52);
    run(f, T0 + 52, 1);
    assert_string_equal(status_of(f, "cus_b"), "past_due"); /* in_c1 is still unpaid */
    /* Attempts only grow: an attempt-1 event after attempt 3 does not lower the count. */
    send(f, "evt_c4", "invoice.payment_failed", "in_c1", "open", 3, "cus_b", T0 + 53);
    send(f, "evt_c5", "invoice.payment_failed", "in_c1", "open", 1, "cus_b", T0 + 54);
    run(f, T0 + 54, 2);
    assert_string_equal(status_of(f, "cus_b"), "suspended");
}

/* An invoice made in Stripe's dashboard has no metadata[tollgate_customer]: its customer is found
 * through invoice.customer and the map the outbox wrote when it created the Stripe customer. */
static void test_invoice_by_stripe_customer(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    add_customer(f, "cus_m", "active");
    tg_customer_t c;
    assert_int_equal(tg_store_customer_get(f->st, "cus_m", &c, &err), 0);
    assert_int_equal(tg_outbox_enqueue_customer(f->st, &c, &err), 0);
    tg_outbox_row_t rows[1];
    size_t n = 0;
    assert_int_equal(tg_store_outbox_due(f->st, INT64_MAX, rows, 1, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(tg_store_outbox_done(f->st, rows[0].id, "cus_StripeM", 1, T0, &err), 0);
    tg_outbox_row_clear(&rows[0]);
    const char *body =
        "{\"id\": \"evt_m\", \"object\": \"event\", \"type\": \"invoice.payment_failed\","
        " \"created\": 1764720000, \"data\": {\"object\": {\"id\": \"in_m\", \"object\": \"invoice\","
        " \"status\": \"open\", \"attempt_count\": 1, \"customer\": \"cus_StripeM\", \"metadata\": {}}}}";
    tg_stripe_recorded_t rec;
    assert_int_equal(tg_stripe_event_record(&f->d, body, strlen(body), T0, &rec, &err), 0);
    run(f, T0, 1);
    assert_string_equal(status_of(f, "cus_m"), "past_due");
}

static void test_unknown_and_owner(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    tg_stripe_event_row_t e;
    send(f, "evt_u", "invoice.payment_failed", "in_u", "open", 1, "cus_nobody", T0);
    run(f, T0, 1);
    assert_int_equal(tg_store_stripe_event_get(f->st, "evt_u", &e, &err), 0);
    assert_string_equal(e.outcome, "unknown_customer: cus_nobody");
    assert_int_equal(e.processed_at, T0);

    add_customer(f, "cus_o", "suspended"); /* by the owner */
    send(f, "evt_o", "invoice.paid", "in_o", "paid", 1, "cus_o", T0);
    run(f, T0, 1);
    assert_string_equal(status_of(f, "cus_o"), "suspended");
    int hold;
    assert_int_equal(gateway_status(f, "cus_o", &hold), TG_ACCT_SUSPENDED);
    assert_int_equal(hold, 0); /* account_suspended, not payment_required */

    /* Not an event: refused before anything is stored. */
    tg_stripe_recorded_t rec;
    assert_int_equal(tg_stripe_event_record(&f->d, "[1]", 3, T0, &rec, &err), TG_EINVAL);
    assert_int_equal(tg_stripe_event_record(&f->d, "{\"id\":\"x\"}", 10, T0, &rec, &err), TG_EINVAL);
    assert_int_equal(tg_stripe_event_record(&f->d, "{\"id\":\"evt_1\",\"type\":\"a\",\"created\":1}", 38, T0, &rec, &err),
                     TG_EINVAL);
    /* A subscription tollgate did not make (not recorded, no metadata[tollgate_customer]) is
     * recorded and marked, not an error. */
    const char *other = "{\"id\":\"evt_x\",\"type\":\"customer.subscription.updated\",\"created\":1,\"data\":{\"object\":"
                        "{\"id\":\"sub_1\",\"status\":\"active\"}}}";
    assert_int_equal(tg_stripe_event_record(&f->d, other, strlen(other), T0, &rec, &err), 0);
    run(f, T0, 1);
    assert_int_equal(tg_store_stripe_event_get(f->st, "evt_x", &e, &err), 0);
    assert_string_equal(e.outcome, "unknown_subscription: sub_1 was not made by tollgate");
    assert_string_equal(e.error, "");
}

/* Records a customer.subscription.* event for sub (customer NULL: no metadata). */
static void send_sub(fx_t *f, const char *evt, const char *type, const char *sub, const char *status,
                     const char *customer, int64_t created)
{
    char body[1024], meta[128] = "{}";
    if (customer != NULL)
        snprintf(meta, sizeof(meta), "{\"tollgate_customer\": \"%s\"}", customer);
    snprintf(body, sizeof(body),
             "{\"id\": \"%s\", \"object\": \"event\", \"type\": \"%s\", \"created\": %lld, \"data\": {\"object\":"
             " {\"id\": \"%s\", \"object\": \"subscription\", \"status\": \"%s\", \"metadata\": %s}}}",
             evt, type, (long long)created, sub, status, meta);
    tg_stripe_recorded_t rec;
    tg_err_t err = {0};
    assert_int_equal(tg_stripe_event_record(&f->d, body, strlen(body), T0, &rec, &err), 0);
}

static const char *outcome_of(fx_t *f, const char *evt)
{
    static tg_stripe_event_row_t e;
    tg_err_t err = {0};
    assert_int_equal(tg_store_stripe_event_get(f->st, evt, &e, &err), 0);
    assert_string_equal(e.error, "");
    return e.outcome;
}

/* customer.subscription.*: the status follows the object, not the arrival order (the later event
 * wins, canceled is final); a deletion in Stripe while the customer still has a plan billed there
 * is put in the status history and does not cancel the customer; one tollgate asked for is not. */
static void test_subscription_events(void **state)
{
    fx_t *f = *state;
    add_customer(f, "cus_s", "active");
    add_customer(f, "cus_c", "canceled");
    tg_customer_t c;
    tg_err_t err = {0};
    assert_int_equal(tg_store_customer_get(f->st, "cus_s", &c, &err), 0);
    snprintf(c.plan_id, sizeof(c.plan_id), "paid");
    assert_int_equal(tg_store_customer_update(f->st, &c, &err), 0);
    send_sub(f, "evt_s1", "customer.subscription.updated", "sub_s", "active", "cus_s", T0 + 10);
    send_sub(f, "evt_s2", "customer.subscription.updated", "sub_s", "past_due", "cus_s", T0 + 5);
    run(f, T0, 2);
    assert_string_equal(outcome_of(f, "evt_s1"), "subscription sub_s active");
    assert_string_equal(outcome_of(f, "evt_s2"), "stale: subscription sub_s was active at a later event");
    int before = history_count(f, "cus_s");
    send_sub(f, "evt_s3", "customer.subscription.deleted", "sub_s", "canceled", "cus_s", T0 + 20);
    send_sub(f, "evt_s4", "customer.subscription.updated", "sub_s", "active", "cus_s", T0 + 30);
    run(f, T0, 2);
    assert_non_null(strstr(outcome_of(f, "evt_s3"), "canceled outside tollgate: the customer stays active"));
    assert_string_equal(outcome_of(f, "evt_s4"), "stale: subscription sub_s is canceled already");
    assert_string_equal(status_of(f, "cus_s"), "active");
    assert_int_equal(history_count(f, "cus_s"), before + 1);
    tg_stripe_subscription_t sub;
    int found = 0;
    assert_int_equal(tg_store_stripe_subscription_get(f->st, "sub_s", &sub, &found, &err), 0);
    assert_true(found);
    assert_string_equal(sub.status, "canceled");
    assert_int_equal(sub.status_at, T0 + 20);
    /* the customer was canceled in tollgate: the deletion is what tollgate asked for */
    send_sub(f, "evt_c1", "customer.subscription.deleted", "sub_c", "canceled", "cus_c", T0);
    run(f, T0, 1);
    assert_string_equal(outcome_of(f, "evt_c1"), "subscription sub_c canceled; as tollgate asked");
    assert_int_equal(history_count(f, "cus_c"), 0);
    /* metadata naming nobody: marked */
    send_sub(f, "evt_n1", "customer.subscription.updated", "sub_n", "active", "cus_nobody", T0);
    run(f, T0, 1);
    assert_string_equal(outcome_of(f, "evt_n1"), "unknown_subscription: sub_n names the unknown customer cus_nobody");
}

static void test_grace_days_and_restart(void **state)
{
    fx_t *f = *state;
    add_customer(f, "cus_g", "active");
    send(f, "evt_g1", "invoice.payment_failed", "in_g", "open", 1, "cus_g", T0);
    run(f, T0, 1);
    assert_string_equal(status_of(f, "cus_g"), "past_due");
    tg_err_t err = {0};
    assert_int_equal(tg_dunning_sweep(&f->d, T0 + 7 * DAY - 1, &err), 0);
    assert_string_equal(status_of(f, "cus_g"), "past_due");
    assert_int_equal(tg_dunning_sweep(&f->d, T0 + 7 * DAY, &err), 0);
    assert_string_equal(status_of(f, "cus_g"), "suspended");
    /* A restart: a new directory gets its holds back from the store. */
    tg_accounts_t *fresh = tg_accounts_new(f->cfg);
    assert_int_equal(tg_accounts_load(fresh, f->st, &err), 0);
    assert_int_equal(tg_dunning_restore_holds(f->st, fresh, &err), 0);
    assert_int_equal(tg_account_payment_hold(tg_accounts_find(fresh, "cus_g")), 1);
    /* The hold is lifted in the store by another node and this one missed the change notice:
     * the next full resync lifts it here too (it used to set holds only, never clear one). */
    assert_int_equal(tg_store_dunning_clear(f->st, "cus_g", &err), 0);
    assert_int_equal(tg_dunning_restore_holds(f->st, fresh, &err), 0);
    assert_int_equal(tg_account_payment_hold(tg_accounts_find(fresh, "cus_g")), 0);
    tg_accounts_free(fresh);
}

/* Several gateways share a PostgreSQL database, and the webhook that recorded an event may have
 * reached any of them: while another node is applying events (it took one inside its
 * transaction), this node's run applies none, not even the same one a second time; once the
 * other gives up (rollback), this node applies it, once. */
static void test_one_node_applies_at_a_time(void **state)
{
    fx_t *f = *state;
    if (tg_tmpstore_is_sqlite(&f->db))
        skip(); /* SQLite: one writer per file; a second node's transaction cannot even begin */
    tg_store_t *other = NULL;
    tg_err_t err = {0};
    assert_int_equal(tg_store_open(f->db.url, &other, &err), 0);
    assert_true(send(f, "evt_1", "charge.refunded", "ch_1", "", 0, "", T0));
    tg_stripe_event_row_t e;
    int found = 0;
    assert_int_equal(tg_store_tx_begin(other, &err), 0);
    assert_int_equal(tg_store_stripe_event_next(other, &e, &found, &err), 0);
    assert_int_equal(found, 1);
    free(e.payload);
    run(f, T0 + 1, 0);
    assert_int_equal(tg_store_stripe_event_get(f->st, "evt_1", &e, &err), 0);
    assert_int_equal(e.processed_at, 0);
    tg_store_tx_rollback(other);
    run(f, T0 + 2, 1);
    assert_int_equal(tg_store_stripe_event_get(f->st, "evt_1", &e, &err), 0);
    assert_int_equal(e.processed_at, T0 + 2);
    assert_non_null(strstr(e.outcome, "ignored"));
    tg_store_close(other);
}

/* ---- two nodes applying at once (PostgreSQL) ---- */

#define NODE_CUSTOMERS 12

typedef struct node {
    const fx_t *f;
    tg_store_t *st;
    tg_accounts_t *acc;
    size_t applied;
    int rc;
    tg_err_t err;
} node_t;

/* One gateway's admin back thread: runs events until none is pending (bounded: the other node
 * may hold the turn for a while, in which case this one goes round again). */
static void *node_main(void *arg)
{
    node_t *n = arg;
    tg_payments_deps_t d = {n->f->cfg, n->st, n->acc};
    for (int round = 0; round < 200000; round++) {
        tg_stripe_event_row_t e;
        int found = 0;
        size_t applied = 0;
        if ((n->rc = tg_store_stripe_event_next(n->st, &e, &found, &n->err)) != 0)
            return NULL;
        if (found)
            free(e.payload);
        if (found && (n->rc = tg_stripe_events_run(&d, 1, T0 + 60, &applied, &n->err)) != 0)
            return NULL;
        if (!found)
            return NULL;
        n->applied += applied;
    }
    n->rc = tg_errf(&n->err, TG_ESTATE, "events still pending after the last round");
    return NULL;
}

/* Two gateways on one PostgreSQL database apply a backlog of payment failures at once (three per
 * customer, each customer's in order): every event is applied exactly once, and each customer
 * ends as one node alone would leave it: past due at the first failure, suspended at the third,
 * two status changes. Two nodes applying the same event, or two events of one customer at once,
 * would record a transition twice. */
static void test_two_nodes_apply_each_event_once(void **state)
{
    fx_t *f = *state;
    if (tg_tmpstore_is_sqlite(&f->db))
        skip(); /* SQLite: one gateway per database file */
    char id[32], evt[32], inv[32];
    for (int c = 0; c < NODE_CUSTOMERS; c++) {
        snprintf(id, sizeof(id), "cus_%02d", c);
        add_customer(f, id, "active");
    }
    for (int attempt = 1; attempt <= 3; attempt++)
        for (int c = 0; c < NODE_CUSTOMERS; c++) {
            snprintf(id, sizeof(id), "cus_%02d", c);
            snprintf(evt, sizeof(evt), "evt_%02d_%d", c, attempt);
            snprintf(inv, sizeof(inv), "in_%02d", c);
            assert_true(send(f, evt, "invoice.payment_failed", inv, "open", attempt, id, T0 + attempt));
        }
    node_t nodes[2];
    pthread_t th[2];
    tg_err_t err = {0};
    for (int i = 0; i < 2; i++) {
        memset(&nodes[i], 0, sizeof(nodes[i]));
        nodes[i].f = f;
        assert_int_equal(tg_store_open(f->db.url, &nodes[i].st, &err), 0);
        assert_non_null(nodes[i].acc = tg_accounts_new(f->cfg));
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, node_main, &nodes[i]), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        if (nodes[i].rc != 0)
            fail_msg("node %d: %d %s", i, nodes[i].rc, nodes[i].err.msg);
    }
    assert_int_equal(nodes[0].applied + nodes[1].applied, 3 * NODE_CUSTOMERS);
    for (int c = 0; c < NODE_CUSTOMERS; c++) {
        snprintf(id, sizeof(id), "cus_%02d", c);
        assert_string_equal(status_of(f, id), "suspended");
        assert_int_equal(history_count(f, id), 2);
        tg_dunning_row_t dr;
        int found = 0;
        assert_int_equal(tg_store_dunning_get(f->st, id, &dr, &found, &err), 0);
        assert_int_equal(found, 1);
        assert_int_equal(dr.held, 1);
        assert_int_equal(dr.past_due_since, T0 + 60);
    }
    for (int i = 0; i < 2; i++) {
        tg_accounts_free(nodes[i].acc);
        tg_store_close(nodes[i].st);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide),
        cmocka_unit_test_setup_teardown(test_dunning_through_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_independence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invoice_by_stripe_customer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_and_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grace_days_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscription_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_node_applies_at_a_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_nodes_apply_each_event_once, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
