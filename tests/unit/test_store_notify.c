/* test_store_notify.c - events, webhook endpoints, deliveries and attempts (store_notify.h) and
 * tg_event_emit's fan-out (notify/events.h), on the backend of TG_TEST_BACKEND (SQLite by
 * default, PostgreSQL with TG_TEST_BACKEND=postgres): the same calls give the same rows, errors
 * and orders on both. */
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
#include "store/store_notify.h"
#include "util/clock.h"

#define NOW_MS INT64_C(1772326800000) /* 2026-03-01 01:00:00 UTC */

typedef struct {
    tg_tmpstore_t db;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_int_equal(tg_tmpstore_open(&f->db, "snot"), 0);
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

static void add_endpoint(tg_store_t *st, const char *id, const char *customer, const char *events, int enabled)
{
    tg_webhook_endpoint_t e;
    memset(&e, 0, sizeof(e));
    snprintf(e.id, sizeof(e.id), "%s", id);
    snprintf(e.customer_id, sizeof(e.customer_id), "%s", customer);
    snprintf(e.url, sizeof(e.url), "https://hooks.example.com/%s", id);
    snprintf(e.events, sizeof(e.events), "%s", events);
    snprintf(e.secret, sizeof(e.secret), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    snprintf(e.source, sizeof(e.source), "api");
    e.enabled = enabled;
    e.created_at = e.updated_at = NOW_MS / 1000;
    tg_err_t err = {0};
    assert_int_equal(tg_store_webhook_endpoint_insert(st, &e, &err), 0);
}

typedef struct {
    char ids[16][TG_EVENT_TYPE_MAX];
    char eps[16][TG_ID_MAX];
    size_t n;
} seen_t;

static int on_delivery(const tg_webhook_delivery_t *d, void *arg)
{
    seen_t *s = arg;
    if (s->n < 16) {
        snprintf(s->ids[s->n], TG_EVENT_TYPE_MAX, "%s", d->event_type);
        snprintf(s->eps[s->n], TG_ID_MAX, "%s", d->endpoint_id);
        s->n++;
    }
    return 0;
}

static size_t deliveries_of(tg_store_t *st, const char *endpoint, seen_t *s)
{
    memset(s, 0, sizeof(*s));
    tg_page_t page = {.limit = 50};
    tg_page_end_t end;
    tg_err_t err = {0};
    assert_int_equal(tg_store_webhook_delivery_page(st, endpoint, NULL, &page, on_delivery, s, &end, &err), 0);
    return s->n;
}

static int on_event(const tg_event_row_t *e, void *arg)
{
    seen_t *s = arg;
    if (s->n < 16) {
        snprintf(s->ids[s->n], TG_EVENT_TYPE_MAX, "%s", e->type);
        snprintf(s->eps[s->n], TG_ID_MAX, "%s", e->customer_id);
        s->n++;
    }
    return 0;
}

/* An event is stored with its data; a dedupe key makes a second emit TG_EEXIST that writes
 * nothing and leaves the caller's transaction usable; unknown types are refused. */
static void test_emit_and_dedupe(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    tg_err_t err = {0};
    json_t *data = json_pack("{s:s}", "key_id", "key_1");
    char id[TG_ID_MAX];
    assert_int_equal(tg_event_emit_ex(st, TG_EVENT_KEY_CREATED, "cus_a", data, "k1", NULL, id, &err), 0);
    assert_memory_equal(id, "evt_", 4);
    assert_int_equal(strlen(id), 28);

    assert_int_equal(tg_store_tx_begin(st, &err), 0);
    assert_int_equal(tg_event_emit(st, TG_EVENT_KEY_CREATED, "cus_a", data, "k1", &err), TG_EEXIST);
    /* the transaction goes on after the duplicate */
    assert_int_equal(tg_event_emit(st, TG_EVENT_KEY_REVOKED, "cus_a", data, "k2", &err), 0);
    assert_int_equal(tg_store_tx_commit(st, &err), 0);
    assert_int_equal(tg_event_emit(st, "no.such", "cus_a", data, NULL, &err), TG_EINVAL);
    /* no dedupe key: every emit is its own event */
    assert_int_equal(tg_event_emit(st, TG_EVENT_CUSTOMER_CREATED, "cus_b", data, NULL, &err), 0);
    assert_int_equal(tg_event_emit(st, TG_EVENT_CUSTOMER_CREATED, "cus_b", data, NULL, &err), 0);
    json_decref(data);

    tg_event_row_t e;
    assert_int_equal(tg_store_event_get(st, id, &e, &err), 0);
    assert_string_equal(e.type, "key.created");
    assert_string_equal(e.customer_id, "cus_a");
    assert_string_equal(e.data, "{\"key_id\":\"key_1\"}");
    char *payload;
    size_t len;
    assert_int_equal(tg_event_payload(&e, &payload, &len, &err), 0);
    assert_non_null(strstr(payload, "\"type\":\"key.created\""));
    assert_non_null(strstr(payload, "\"data\":{\"key_id\":\"key_1\"}"));
    free(payload);
    tg_event_row_clear(&e);
    assert_int_equal(tg_store_event_get(st, "evt_nope", &e, &err), TG_ENOTFOUND);

    /* the feed, newest first, a page at a time; and one customer's */
    seen_t s = {0};
    tg_page_t page = {.limit = 3};
    tg_page_end_t end;
    assert_int_equal(tg_store_event_page(st, NULL, &page, on_event, &s, &end, &err), 0);
    assert_int_equal(s.n, 3);
    assert_true(end.has_more);
    assert_string_equal(s.ids[2], "key.revoked");
    snprintf(page.after, sizeof(page.after), "%s", end.next);
    memset(&s, 0, sizeof(s));
    assert_int_equal(tg_store_event_page(st, NULL, &page, on_event, &s, &end, &err), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.ids[0], "key.created");
    assert_false(end.has_more);
    memset(&s, 0, sizeof(s));
    page = (tg_page_t){.limit = 10};
    assert_int_equal(tg_store_event_page(st, "cus_b", &page, on_event, &s, &end, &err), 0);
    assert_int_equal(s.n, 2);
    snprintf(page.after, sizeof(page.after), "not-a-key");
    assert_int_equal(tg_store_event_page(st, NULL, &page, on_event, &s, &end, &err), TG_EINVAL);
}

/* Owner endpoints get every type; a customer's get their own events but not customer.*; a
 * disabled endpoint or one not subscribed gets nothing; a failed emit leaves no delivery. */
static void test_fanout(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    tg_err_t err = {0};
    add_endpoint(st, "we_owner", "", "*", 1);
    add_endpoint(st, "we_a", "cus_a", "*", 1);
    add_endpoint(st, "we_a_keys", "cus_a", "key.created,key.revoked", 1);
    add_endpoint(st, "we_a_off", "cus_a", "*", 0);
    add_endpoint(st, "we_b", "cus_b", "*", 1);
    assert_int_equal(tg_event_emit(st, TG_EVENT_KEY_CREATED, "cus_a", NULL, NULL, &err), 0);
    assert_int_equal(tg_event_emit(st, TG_EVENT_PLAN_CHANGED, "cus_a", NULL, NULL, &err), 0);
    assert_int_equal(tg_event_emit(st, TG_EVENT_CUSTOMER_CREATED, "cus_a", NULL, NULL, &err), 0);
    assert_int_equal(tg_event_emit(st, TG_EVENT_INVOICE_PAID, "", NULL, NULL, &err), 0);
    seen_t s;
    assert_int_equal(deliveries_of(st, "we_owner", &s), 4);
    assert_int_equal(deliveries_of(st, "we_a", &s), 2);
    assert_string_equal(s.ids[0], "plan.changed");
    assert_string_equal(s.ids[1], "key.created");
    assert_int_equal(deliveries_of(st, "we_a_keys", &s), 1);
    assert_int_equal(deliveries_of(st, "we_a_off", &s), 0);
    assert_int_equal(deliveries_of(st, "we_b", &s), 0);
    /* a customer's whole log (every endpoint of theirs) */
    memset(&s, 0, sizeof(s));
    tg_page_t page = {.limit = 50};
    tg_page_end_t end;
    assert_int_equal(tg_store_webhook_delivery_page(st, NULL, "cus_a", &page, on_delivery, &s, &end, &err), 0);
    assert_int_equal(s.n, 3);

    /* a rolled-back transaction takes its events and deliveries with it */
    assert_int_equal(tg_store_tx_begin(st, &err), 0);
    assert_int_equal(tg_event_emit(st, TG_EVENT_KEY_REVOKED, "cus_a", NULL, NULL, &err), 0);
    tg_store_tx_rollback(st);
    assert_int_equal(deliveries_of(st, "we_a_keys", &s), 1);

    /* a test-send goes to the one endpoint named, whatever it subscribes to */
    char id[TG_ID_MAX];
    assert_int_equal(tg_event_emit_ex(st, TG_EVENT_WEBHOOK_TEST, "cus_b", NULL, NULL, "we_b", id, &err), 0);
    assert_int_equal(deliveries_of(st, "we_b", &s), 1);
    assert_int_equal(deliveries_of(st, "we_owner", &s), 4);

    /* the endpoint list: the owner's, a customer's, everyone's */
    tg_webhook_endpoint_t e;
    assert_int_equal(tg_store_webhook_endpoint_get(st, "we_a_keys", &e, &err), 0);
    assert_string_equal(e.events, "key.created,key.revoked");
    assert_string_equal(e.customer_id, "cus_a");
    assert_true(e.enabled);
    e.enabled = 0;
    snprintf(e.disabled_reason, sizeof(e.disabled_reason), "failing since yesterday");
    snprintf(e.prev_secret, sizeof(e.prev_secret), "%s", e.secret);
    snprintf(e.secret, sizeof(e.secret), "whsec_bmV3");
    e.prev_secret_until = 99;
    assert_int_equal(tg_store_webhook_endpoint_update(st, &e, &err), 0);
    tg_webhook_endpoint_t g;
    assert_int_equal(tg_store_webhook_endpoint_get(st, "we_a_keys", &g, &err), 0);
    assert_false(g.enabled);
    assert_string_equal(g.disabled_reason, "failing since yesterday");
    assert_string_equal(g.secret, "whsec_bmV3");
    assert_int_equal(g.prev_secret_until, 99);
    assert_int_equal(tg_store_webhook_endpoint_delete(st, "we_a_keys", &err), 0);
    assert_int_equal(tg_store_webhook_endpoint_get(st, "we_a_keys", &g, &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_webhook_endpoint_delete(st, "we_a_keys", &err), TG_ENOTFOUND);
    assert_int_equal(deliveries_of(st, "we_a_keys", &s), 0);
    snprintf(e.id, sizeof(e.id), "we_gone");
    assert_int_equal(tg_store_webhook_endpoint_update(st, &e, &err), TG_ENOTFOUND);
}

/* Claims: due rows of enabled, unheld endpoints, earliest first; a claimed row is not claimed
 * again until its lease ends; recording an attempt writes the row and the log. */
static void test_claim_and_record(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    tg_err_t err = {0};
    add_endpoint(st, "we_1", "", "*", 1);
    add_endpoint(st, "we_2", "", "*", 1);
    assert_int_equal(tg_event_emit(st, TG_EVENT_KEY_CREATED, "cus_a", NULL, NULL, &err), 0);
    /* hold we_2 (circuit breaker) */
    tg_webhook_endpoint_t e;
    assert_int_equal(tg_store_webhook_endpoint_get(st, "we_2", &e, &err), 0);
    int64_t now = tg_clock_now_ns() / 1000000 + 1000;
    e.hold_until_ms = now + 60000;
    assert_int_equal(tg_store_webhook_endpoint_update(st, &e, &err), 0);

    tg_webhook_delivery_t out[4];
    size_t n = 0;
    assert_int_equal(tg_store_webhook_delivery_claim(st, now, 30000, out, 4, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].endpoint_id, "we_1");
    assert_string_equal(out[0].state, "pending");
    assert_int_equal(out[0].next_attempt_at_ms, now + 30000);
    /* claimed: not again before the lease ends, again after it */
    assert_int_equal(tg_store_webhook_delivery_claim(st, now + 1, 30000, out + 1, 3, &n, &err), 0);
    assert_int_equal(n, 0);
    int64_t at = 0;
    assert_int_equal(tg_store_webhook_delivery_next_due(st, &at, &err), 0);
    assert_int_equal(at, now + 30000);

    tg_webhook_delivery_t d = out[0];
    tg_webhook_attempt_t a;
    memset(&a, 0, sizeof(a));
    a.at_ms = now;
    a.status = 500;
    a.duration_ms = 12;
    snprintf(a.response, sizeof(a.response), "oops");
    snprintf(a.error, sizeof(a.error), "HTTP 500");
    d.attempts = 1;
    d.first_attempt_at_ms = now;
    d.next_attempt_at_ms = now + 5000;
    d.last_status = 500;
    snprintf(d.last_error, sizeof(d.last_error), "HTTP 500");
    assert_int_equal(tg_store_webhook_delivery_update(st, &d, &a, &err), 0);
    a.status = 204;
    a.error[0] = '\0';
    a.response[0] = '\0';
    d.attempts = 2;
    snprintf(d.state, sizeof(d.state), "delivered");
    d.delivered_at = now / 1000;
    d.last_status = 204;
    assert_int_equal(tg_store_webhook_delivery_update(st, &d, &a, &err), 0);
    tg_webhook_delivery_t g;
    assert_int_equal(tg_store_webhook_delivery_get(st, d.id, &g, &err), 0);
    assert_string_equal(g.state, "delivered");
    assert_int_equal(g.attempts, 2);
    assert_int_equal(g.first_attempt_at_ms, now);
    assert_int_equal(g.last_status, 204);
    assert_int_equal(tg_store_webhook_delivery_get(st, "msg_none", &g, &err), TG_ENOTFOUND);
    snprintf(g.id, sizeof(g.id), "msg_none");
    assert_int_equal(tg_store_webhook_delivery_update(st, &g, NULL, &err), TG_ENOTFOUND);

}

static int on_attempt(const tg_webhook_attempt_t *a, void *arg)
{
    int64_t *st = arg;
    for (int i = 0; i < 4; i++)
        if (st[i] == 0) {
            st[i] = a->status;
            break;
        }
    return 0;
}

/* The attempt log of a delivery, newest first, with its response excerpt and error; held and
 * disabled endpoints' rows wait. */
static void test_attempt_log(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    tg_err_t err = {0};
    add_endpoint(st, "we_1", "", "*", 1);
    assert_int_equal(tg_event_emit(st, TG_EVENT_KEY_CREATED, "cus_a", NULL, NULL, &err), 0);
    int64_t now = tg_clock_now_ns() / 1000000 + 1000;
    tg_webhook_delivery_t d;
    size_t n = 0;
    assert_int_equal(tg_store_webhook_delivery_claim(st, now, 1000, &d, 1, &n, &err), 0);
    assert_int_equal(n, 1);
    static const int64_t codes[] = {500, 503, 200};
    for (int i = 0; i < 3; i++) {
        tg_webhook_attempt_t a;
        memset(&a, 0, sizeof(a));
        a.at_ms = now + i;
        a.status = codes[i];
        snprintf(a.response, sizeof(a.response), "body %d \xff", i); /* not UTF-8: kept as far as it goes */
        d.attempts = i + 1;
        assert_int_equal(tg_store_webhook_delivery_update(st, &d, &a, &err), 0);
    }
    int64_t statuses[4] = {0};
    assert_int_equal(tg_store_webhook_attempt_list(st, d.id, 10, on_attempt, statuses, &err), 0);
    assert_int_equal(statuses[0], 200);
    assert_int_equal(statuses[1], 503);
    assert_int_equal(statuses[2], 500);
    assert_int_equal(statuses[3], 0);

    /* disabled: nothing due, nothing claimed */
    tg_webhook_endpoint_t e;
    assert_int_equal(tg_store_webhook_endpoint_get(st, "we_1", &e, &err), 0);
    e.enabled = 0;
    assert_int_equal(tg_store_webhook_endpoint_update(st, &e, &err), 0);
    int64_t at;
    assert_int_equal(tg_store_webhook_delivery_next_due(st, &at, &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_webhook_delivery_claim(st, now + 10000, 1000, &d, 1, &n, &err), 0);
    assert_int_equal(n, 0);

    /* notification settings */
    char ev[64];
    assert_int_equal(tg_store_notification_settings_get(st, "cus_a", ev, sizeof(ev), &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_notification_settings_put(st, "cus_a", "invoice.paid", 5, &err), 0);
    assert_int_equal(tg_store_notification_settings_put(st, "cus_a", "*", 6, &err), 0);
    assert_int_equal(tg_store_notification_settings_get(st, "cus_a", ev, sizeof(ev), &err), 0);
    assert_string_equal(ev, "*");
}

static void test_event_lists(void **state)
{
    (void)state;
    assert_true(tg_event_list_has("*", "key.created"));
    assert_true(tg_event_list_has("a.b,key.created", "key.created"));
    assert_false(tg_event_list_has("key.created2", "key.created"));
    assert_false(tg_event_list_has("", "key.created"));
    assert_false(tg_event_type_for_customer("customer.created", 0));
    assert_true(tg_event_type_for_customer("customer.created", 1));
    assert_true(tg_event_type_known("usage.threshold_reached"));
    assert_false(tg_event_type_known("usage"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_emit_and_dedupe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fanout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_and_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attempt_log, setup, teardown),
        cmocka_unit_test(test_event_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
