/* test_store_retention.c - pruning finished notifications (store/store_retention.h) and the
 * retention policy over it (notify/retention.h), on the backend of TG_TEST_BACKEND (SQLite by
 * default, PostgreSQL with TG_TEST_BACKEND=postgres): old finished rows go with their attempts,
 * pending work and recent rows stay, a batch deletes at most its limit; and the usage_batches
 * rows of one node (tg_store_usage_batches_prune), through its primary key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "../support/tmpstore.h"
#include "notify/retention.h"
#include "store/store_mail.h"
#include "store/store_notify.h"
#include "store/store_retention.h"

#define NOW_S INT64_C(1772326800) /* 2026-03-01 01:00:00 UTC */
#define DAY INT64_C(86400)
#define OLD_S (NOW_S - 40 * DAY) /* past a 30-day retention */
#define CUTOFF_S (NOW_S - 30 * DAY)

typedef struct {
    tg_tmpstore_t db;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_int_equal(tg_tmpstore_open(&f->db, "sret"), 0);
    *state = f;
    tg_webhook_endpoint_t e;
    memset(&e, 0, sizeof(e));
    snprintf(e.id, sizeof(e.id), "we_1");
    snprintf(e.url, sizeof(e.url), "https://hooks.example.com/1");
    snprintf(e.events, sizeof(e.events), "*");
    snprintf(e.secret, sizeof(e.secret), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    snprintf(e.source, sizeof(e.source), "api");
    e.enabled = 1;
    e.created_at = e.updated_at = OLD_S;
    tg_err_t err = {0};
    assert_int_equal(tg_store_webhook_endpoint_insert(f->db.st, &e, &err), 0);
    snprintf(e.id, sizeof(e.id), "we_2");
    snprintf(e.url, sizeof(e.url), "https://hooks.example.com/2");
    assert_int_equal(tg_store_webhook_endpoint_insert(f->db.st, &e, &err), 0);
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int rc = tg_tmpstore_close(&f->db);
    free(f);
    return rc;
}

static void add_event(tg_store_t *st, const char *id, int64_t created_at)
{
    tg_event_row_t e;
    memset(&e, 0, sizeof(e));
    snprintf(e.id, sizeof(e.id), "%s", id);
    snprintf(e.type, sizeof(e.type), "key.created");
    e.created_at = created_at;
    e.data = "{}";
    tg_err_t err = {0};
    assert_int_equal(tg_store_event_insert(st, &e, NULL, &err), 0);
}

/* A delivery of event_id to endpoint we_1 (an id ending in "_2": we_2) created at created_at,
 * then (state not "pending") finished at updated_at after `attempts` attempts, each logged. */
static void add_delivery(tg_store_t *st, const char *id, const char *event_id, const char *state, int64_t created_at,
                         int64_t updated_at, int attempts)
{
    tg_webhook_delivery_t d;
    memset(&d, 0, sizeof(d));
    snprintf(d.id, sizeof(d.id), "%s", id);
    size_t idlen = strlen(id);
    const char *endpoint = idlen > 2 && strcmp(id + idlen - 2, "_2") == 0 ? "we_2" : "we_1";
    snprintf(d.endpoint_id, sizeof(d.endpoint_id), "%s", endpoint);
    snprintf(d.event_id, sizeof(d.event_id), "%s", event_id);
    snprintf(d.event_type, sizeof(d.event_type), "key.created");
    snprintf(d.state, sizeof(d.state), "pending");
    d.next_attempt_at_ms = created_at * 1000;
    d.created_at = d.updated_at = created_at;
    tg_err_t err = {0};
    assert_int_equal(tg_store_webhook_delivery_insert(st, &d, &err), 0);
    for (int i = 0; i < attempts; i++) {
        tg_webhook_attempt_t a;
        memset(&a, 0, sizeof(a));
        snprintf(a.delivery_id, sizeof(a.delivery_id), "%s", id);
        snprintf(a.endpoint_id, sizeof(a.endpoint_id), "%s", endpoint);
        a.at_ms = updated_at * 1000;
        a.status = i + 1 == attempts && strcmp(state, "delivered") == 0 ? 200 : 500;
        d.attempts++;
        d.updated_at = updated_at;
        if (i + 1 == attempts)
            snprintf(d.state, sizeof(d.state), "%s", state);
        assert_int_equal(tg_store_webhook_delivery_update(st, &d, &a, &err), 0);
    }
}

static int count_attempt(const tg_webhook_attempt_t *a, void *arg)
{
    (void)a;
    (*(size_t *)arg)++;
    return 0;
}

static size_t attempts_of(tg_store_t *st, const char *delivery_id)
{
    size_t n = 0;
    tg_err_t err = {0};
    assert_int_equal(tg_store_webhook_attempt_list(st, delivery_id, 100, count_attempt, &n, &err), 0);
    return n;
}

static int delivery_exists(tg_store_t *st, const char *id)
{
    tg_webhook_delivery_t d;
    tg_err_t err = {0};
    int rc = tg_store_webhook_delivery_get(st, id, &d, &err);
    assert_true(rc == 0 || rc == TG_ENOTFOUND);
    return rc == 0;
}

static int event_exists(tg_store_t *st, const char *id)
{
    tg_event_row_t e;
    tg_err_t err = {0};
    int rc = tg_store_event_get(st, id, &e, &err);
    assert_true(rc == 0 || rc == TG_ENOTFOUND);
    if (rc == 0)
        tg_event_row_clear(&e);
    return rc == 0;
}

static void test_deliveries_and_events(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    tg_err_t err = {0};
    add_event(st, "evt_old_done", OLD_S);
    add_event(st, "evt_old_pending", OLD_S);
    add_event(st, "evt_old_alone", OLD_S);
    add_event(st, "evt_old_resent", OLD_S);
    add_event(st, "evt_new", NOW_S - DAY);
    add_delivery(st, "msg_old_delivered", "evt_old_done", "delivered", OLD_S, OLD_S + 60, 3);
    add_delivery(st, "msg_old_failed_2", "evt_old_done", "failed", OLD_S, OLD_S + 3 * DAY, 2);
    /* retrying for 40 days (an endpoint that was re-enabled): never pruned, nor its event */
    add_delivery(st, "msg_old_pending", "evt_old_pending", "pending", OLD_S, NOW_S - 60, 2);
    /* created long ago but resent and delivered yesterday: recent */
    add_delivery(st, "msg_old_resent", "evt_old_resent", "delivered", OLD_S, NOW_S - DAY, 1);
    add_delivery(st, "msg_new", "evt_new", "delivered", NOW_S - DAY, NOW_S - DAY, 1);

    int64_t pending = -1;
    assert_int_equal(tg_store_notify_pending(st, TG_NOTIFY_DELIVERIES, &pending, &err), 0);
    assert_int_equal(pending, 1);

    /* events first: all old ones still have a delivery, nothing goes */
    size_t deleted = 99, attempts = 99;
    assert_int_equal(tg_store_notify_prune(st, TG_NOTIFY_EVENTS, CUTOFF_S, 100, &deleted, &attempts, &err), 0);
    assert_int_equal(deleted, 1); /* evt_old_alone only */
    assert_int_equal(attempts, 0);
    assert_false(event_exists(st, "evt_old_alone"));
    assert_true(event_exists(st, "evt_old_done"));

    assert_int_equal(tg_store_notify_prune(st, TG_NOTIFY_DELIVERIES, CUTOFF_S, 100, &deleted, &attempts, &err), 0);
    assert_int_equal(deleted, 2);
    assert_int_equal(attempts, 5);
    assert_false(delivery_exists(st, "msg_old_delivered"));
    assert_false(delivery_exists(st, "msg_old_failed_2"));
    assert_int_equal(attempts_of(st, "msg_old_delivered"), 0);
    assert_int_equal(attempts_of(st, "msg_old_failed_2"), 0);
    assert_true(delivery_exists(st, "msg_old_pending"));
    assert_int_equal(attempts_of(st, "msg_old_pending"), 2);
    assert_true(delivery_exists(st, "msg_old_resent"));
    assert_int_equal(attempts_of(st, "msg_old_resent"), 1);
    assert_true(delivery_exists(st, "msg_new"));

    /* now the event of the pruned deliveries goes; the pending one's and the recent stay */
    assert_int_equal(tg_store_notify_prune(st, TG_NOTIFY_EVENTS, CUTOFF_S, 100, &deleted, &attempts, &err), 0);
    assert_int_equal(deleted, 1);
    assert_false(event_exists(st, "evt_old_done"));
    assert_true(event_exists(st, "evt_old_pending"));
    assert_true(event_exists(st, "evt_old_resent"));
    assert_true(event_exists(st, "evt_new"));

    /* nothing left to do: a second pass deletes nothing */
    assert_int_equal(tg_store_notify_prune(st, TG_NOTIFY_DELIVERIES, CUTOFF_S, 100, &deleted, &attempts, &err), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(tg_store_notify_prune(st, TG_NOTIFY_EVENTS, CUTOFF_S, 100, &deleted, NULL, &err), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(tg_store_notify_pending(st, TG_NOTIFY_DELIVERIES, &pending, &err), 0);
    assert_int_equal(pending, 1);
    /* bad arguments */
    assert_int_equal(tg_store_notify_prune(st, TG_NOTIFY_EVENTS, CUTOFF_S, 0, &deleted, NULL, &err), TG_EINVAL);
    assert_int_equal(tg_store_notify_prune(st, TG_NOTIFY_EVENTS, CUTOFF_S, 10001, &deleted, NULL, &err), TG_EINVAL);
    assert_int_equal(tg_store_notify_pending(st, TG_NOTIFY_EVENTS, &pending, &err), TG_EINVAL);
}

static void test_batches_are_bounded(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    tg_err_t err = {0};
    char id[32];
    for (int i = 0; i < 25; i++) {
        snprintf(id, sizeof(id), "evt_%02d", i);
        add_event(st, id, OLD_S + i);
        char mid[32];
        snprintf(mid, sizeof(mid), "msg_%02d", i);
        add_delivery(st, mid, id, i % 2 ? "delivered" : "failed", OLD_S + i, OLD_S + i, 2);
    }
    size_t deleted = 0, attempts = 0;
    assert_int_equal(tg_store_notify_prune(st, TG_NOTIFY_DELIVERIES, CUTOFF_S, 10, &deleted, &attempts, &err), 0);
    assert_int_equal(deleted, 10);
    assert_int_equal(attempts, 20);
    /* the oldest went first */
    assert_false(delivery_exists(st, "msg_09"));
    assert_true(delivery_exists(st, "msg_10"));
    assert_int_equal(attempts_of(st, "msg_10"), 2);
    assert_int_equal(tg_store_notify_prune(st, TG_NOTIFY_DELIVERIES, CUTOFF_S, 10, &deleted, &attempts, &err), 0);
    assert_int_equal(deleted, 10);
    assert_int_equal(tg_store_notify_prune(st, TG_NOTIFY_DELIVERIES, CUTOFF_S, 10, &deleted, &attempts, &err), 0);
    assert_int_equal(deleted, 5);
    assert_int_equal(attempts, 10);
    assert_int_equal(tg_store_notify_prune(st, TG_NOTIFY_EVENTS, CUTOFF_S, 10, &deleted, NULL, &err), 0);
    assert_int_equal(deleted, 10);

    /* the policy: the rest in batches of 4 within one call; nothing when retention is 0 */
    tg_notify_prune_run_t run;
    assert_int_equal(tg_notify_prune(st, 0, NOW_S, 4, INT64_C(10000000000), &run, &err), 0);
    assert_int_equal(run.events + run.batches, 0);
    assert_true(event_exists(st, "evt_24"));
    assert_int_equal(tg_notify_prune(st, 30, NOW_S, 4, INT64_C(10000000000), &run, &err), 0);
    assert_int_equal(run.events, 15);
    assert_int_equal(run.deliveries, 0);
    assert_int_equal(run.more, 0);
    /* deliveries: 1 empty batch; mails: 1; events: 4+4+4+3 */
    assert_int_equal(run.batches, 6);
    assert_false(event_exists(st, "evt_24"));
    /* a budget already spent: one batch per table, and it says there is more */
    add_event(st, "evt_a", OLD_S);
    add_event(st, "evt_b", OLD_S);
    add_event(st, "evt_c", OLD_S);
    assert_int_equal(tg_notify_prune(st, 30, NOW_S, 2, 0, &run, &err), 0);
    assert_int_equal(run.events, 2);
    assert_int_equal(run.more, 1);
    assert_int_equal(tg_notify_prune(st, 30, NOW_S, 2, 0, &run, &err), 0);
    assert_int_equal(run.events, 1);
    assert_int_equal(run.more, 0);
}

static int64_t queue_mail(tg_store_t *st, int64_t now_s)
{
    tg_mail_row_t r;
    memset(&r, 0, sizeof(r));
    snprintf(r.to, sizeof(r.to), "a@example.com");
    snprintf(r.template_name, sizeof(r.template_name), "key.created");
    snprintf(r.customer_id, sizeof(r.customer_id), "cus_a");
    snprintf(r.subject, sizeof(r.subject), "Hello");
    snprintf(r.message_id, sizeof(r.message_id), "<x@example.com>");
    r.body = "Subject: Hello\r\n\r\nbody\r\n";
    r.body_len = strlen(r.body);
    int64_t id = 0;
    tg_err_t err = {0};
    assert_int_equal(tg_store_mail_insert(st, &r, now_s * 1000, &id, &err), 0);
    return id;
}

static size_t mail_attempts(tg_store_t *st, int64_t id)
{
    tg_mail_attempt_t a[8];
    size_t n = 0;
    tg_err_t err = {0};
    assert_int_equal(tg_store_mail_attempts(st, id, a, 8, &n, &err), 0);
    return n;
}

static int mail_exists(tg_store_t *st, int64_t id)
{
    tg_mail_row_t r;
    tg_err_t err = {0};
    int rc = tg_store_mail_get(st, id, &r, &err);
    assert_true(rc == 0 || rc == TG_ENOTFOUND);
    if (rc == 0)
        tg_mail_row_clear(&r);
    return rc == 0;
}

static void test_mails(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    tg_err_t err = {0};
    int64_t sent = queue_mail(st, OLD_S), failed = queue_mail(st, OLD_S), retrying = queue_mail(st, OLD_S),
            queued = queue_mail(st, OLD_S), recent = queue_mail(st, NOW_S - DAY);
    int64_t t = OLD_S * 1000;
    assert_int_equal(tg_store_mail_record(st, sent, "retry", t + 1000, 451, "later", t, &err), 0);
    assert_int_equal(tg_store_mail_record(st, sent, "sent", t, 250, "", t + 1000, &err), 0);
    assert_int_equal(tg_store_mail_record(st, failed, "failed", t, 550, "no such user", t, &err), 0);
    /* a mail server down for weeks: still retrying, never pruned */
    assert_int_equal(tg_store_mail_record(st, retrying, "retry", t + 60000, 451, "later", t, &err), 0);
    assert_int_equal(tg_store_mail_record(st, recent, "sent", 0, 250, "", (NOW_S - DAY) * 1000, &err), 0);

    int64_t pending = -1;
    assert_int_equal(tg_store_notify_pending(st, TG_NOTIFY_MAILS, &pending, &err), 0);
    assert_int_equal(pending, 2);

    size_t deleted = 0, attempts = 0;
    assert_int_equal(tg_store_notify_prune(st, TG_NOTIFY_MAILS, CUTOFF_S, 1, &deleted, &attempts, &err), 0);
    assert_int_equal(deleted, 1); /* a batch of one */
    assert_int_equal(attempts, 2);
    assert_false(mail_exists(st, sent));
    assert_int_equal(mail_attempts(st, sent), 0);
    assert_int_equal(tg_store_notify_prune(st, TG_NOTIFY_MAILS, CUTOFF_S, 100, &deleted, &attempts, &err), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(attempts, 1);
    assert_false(mail_exists(st, failed));
    assert_true(mail_exists(st, retrying));
    assert_int_equal(mail_attempts(st, retrying), 1);
    assert_true(mail_exists(st, queued));
    assert_true(mail_exists(st, recent));
    assert_int_equal(mail_attempts(st, recent), 1);
    assert_int_equal(tg_store_notify_prune(st, TG_NOTIFY_MAILS, CUTOFF_S, 100, &deleted, &attempts, &err), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(tg_store_notify_pending(st, TG_NOTIFY_MAILS, &pending, &err), 0);
    assert_int_equal(pending, 2);
}

/* ---- usage_batches (tg_store_usage_batches_prune) ---- */

static long long batches_where(fx_t *f, const char *where)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM usage_batches WHERE %s", where);
    if (tg_tmpstore_is_sqlite(&f->db)) {
        sqlite3 *db;
        sqlite3_stmt *s;
        assert_int_equal(sqlite3_open(f->db.url + strlen("sqlite:"), &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        long long v = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
        sqlite3_close(db);
        return v;
    }
    PGconn *c = PQconnectdb(f->db.url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return v;
}

/* A node's rows below the id bound and committed before the cut-off go, the lowest ids first, at
 * most limit per call; a row committed late (its id is old) and the other node's rows stay. */
static void test_usage_batches(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    tg_err_t err = {0};
    char sql[4096];
    size_t len = (size_t)snprintf(sql, sizeof(sql), "INSERT INTO usage_batches(batch_id, rows, committed_at, node) VALUES ");
    for (int i = 1; i <= 30; i++) {
        int64_t at = i == 3 || i == 4 ? NOW_S : OLD_S; /* 3 and 4 stored late, after an outage */
        len += (size_t)snprintf(sql + len, sizeof(sql) - len, "%s(%d,1,%lld,'a'),(%d,1,%lld,'b')", i > 1 ? "," : "",
                                i, (long long)at, i, (long long)OLD_S);
    }
    assert_int_equal(tg_tmpstore_exec(&f->db, sql), 0);
    size_t deleted = 0;
    assert_int_equal(tg_store_usage_batches_prune(st, "a", 20, CUTOFF_S, 10, &deleted, &err), 0);
    assert_int_equal(deleted, 10);
    assert_int_equal(batches_where(f, "node = 'a' AND batch_id <= 12"), 2); /* 1, 2, 5..12 went; 3, 4 stay */
    assert_int_equal(tg_store_usage_batches_prune(st, "a", 20, CUTOFF_S, 10, &deleted, &err), 0);
    assert_int_equal(deleted, 7); /* 13..19: fewer than the limit, nothing more is due */
    assert_int_equal(tg_store_usage_batches_prune(st, "a", 20, CUTOFF_S, 10, &deleted, &err), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(batches_where(f, "node = 'a'"), 2 + 11);
    assert_int_equal(batches_where(f, "node = 'a' AND batch_id IN (3, 4) OR node = 'a' AND batch_id >= 20"), 13);
    assert_int_equal(batches_where(f, "node = 'b'"), 30);
    assert_int_equal(tg_store_usage_batches_prune(st, "a", 20, CUTOFF_S, 0, &deleted, &err), TG_EINVAL);
    assert_int_equal(tg_store_usage_batches_prune(st, "a", 20, CUTOFF_S, 10001, &deleted, &err), TG_EINVAL);
    /* an id past 2^63-1 is every id */
    assert_int_equal(tg_store_usage_batches_prune(st, "b", UINT64_MAX, CUTOFF_S, 100, &deleted, &err), 0);
    assert_int_equal(deleted, 30);
}

/* Drained nodes (migration 38): a drain's time only moves forward; the list holds those at or
 * before its bound, the longest drained first, at most max; a forget takes one drain (a later
 * one stays) or, with TG_DRAINED_ANY, the node's. */
static void test_drained_nodes(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    tg_err_t err = {0};
    assert_int_equal(tg_store_node_drained(st, "gw-2", NOW_S - 10, &err), 0);
    assert_int_equal(tg_store_node_drained(st, "gw-1", NOW_S - 30, &err), 0);
    assert_int_equal(tg_store_node_drained(st, "gw-1", NOW_S - 20, &err), 0);
    assert_int_equal(tg_store_node_drained(st, "gw-1", NOW_S - 40, &err), 0); /* earlier: ignored */
    assert_int_equal(tg_store_node_drained(st, "", NOW_S, &err), 0);          /* the one SQLite node */
    tg_drained_node_t out[4];
    size_t n = 9;
    assert_int_equal(tg_store_drained_nodes(st, NOW_S - 1, out, 4, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].node, "gw-1");
    assert_int_equal(out[0].drained_at, NOW_S - 20);
    assert_string_equal(out[1].node, "gw-2");
    assert_int_equal(out[1].drained_at, NOW_S - 10);
    assert_int_equal(tg_store_drained_nodes(st, NOW_S, out, 1, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].node, "gw-1");
    assert_int_equal(tg_store_drained_nodes(st, NOW_S, out, 0, &n, &err), TG_EINVAL);
    assert_int_equal(tg_store_drained_nodes(st, NOW_S, out, 1001, &n, &err), TG_EINVAL);

    assert_int_equal(tg_store_drained_node_forget(st, "gw-1", NOW_S - 30, &err), 0); /* not its drain now */
    assert_int_equal(tg_store_drained_node_forget(st, "gw-2", NOW_S - 10, &err), 0);
    assert_int_equal(tg_store_drained_node_forget(st, "", TG_DRAINED_ANY, &err), 0);
    assert_int_equal(tg_store_drained_nodes(st, NOW_S, out, 4, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].node, "gw-1");
    assert_int_equal(out[0].drained_at, NOW_S - 20);
}

/* The delete reads one node's old rows through the primary key (node, batch_id), not the table:
 * no index is missing. PostgreSQL's planner is asked on a table big enough to prefer it. */
static void test_usage_batches_prune_uses_the_primary_key(void **state)
{
    fx_t *f = *state;
    /* as store_sqlite_retention.c and store_pg_retention.c write it */
    static const char *sqlite_del = "DELETE FROM usage_batches WHERE node = 'a' AND batch_id IN (SELECT batch_id FROM"
                                    " usage_batches WHERE node = 'a' AND batch_id < 19000 AND committed_at < 100"
                                    " ORDER BY batch_id LIMIT 10000)";
    static const char *pg_del = "DELETE FROM usage_batches WHERE node = 'a' AND batch_id = ANY(ARRAY(SELECT batch_id"
                                " FROM usage_batches WHERE node = 'a' AND batch_id < 19000 AND committed_at < 100"
                                " ORDER BY batch_id LIMIT 10000))";
    char plan[16384] = "";
    size_t len = 0;
    if (tg_tmpstore_is_sqlite(&f->db)) {
        sqlite3 *db;
        sqlite3_stmt *s;
        char sql[512];
        snprintf(sql, sizeof(sql), "EXPLAIN QUERY PLAN %s", sqlite_del);
        assert_int_equal(sqlite3_open(f->db.url + strlen("sqlite:"), &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
        while (sqlite3_step(s) == SQLITE_ROW)
            len += (size_t)snprintf(plan + len, sizeof(plan) - len, "%s\n", (const char *)sqlite3_column_text(s, 3));
        sqlite3_finalize(s);
        sqlite3_close(db);
        assert_non_null(strstr(plan, "SEARCH usage_batches USING PRIMARY KEY (node=? AND batch_id<?)"));
        assert_non_null(strstr(plan, "SEARCH usage_batches USING PRIMARY KEY (node=? AND batch_id=?)"));
        assert_null(strstr(plan, "SCAN usage_batches"));
        return;
    }
    assert_int_equal(tg_tmpstore_exec(&f->db, "INSERT INTO usage_batches(batch_id, rows, committed_at, node)"
                                              " SELECT i, 1, 50, n FROM generate_series(1, 20000) i,"
                                              " (VALUES ('a'), ('b'), ('c')) v(n);"
                                              " ANALYZE usage_batches"),
                     0);
    PGconn *c = PQconnectdb(f->db.url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    char sql[512];
    snprintf(sql, sizeof(sql), "EXPLAIN %s", pg_del);
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    for (int i = 0; i < PQntuples(r); i++)
        len += (size_t)snprintf(plan + len, sizeof(plan) - len, "%s\n", PQgetvalue(r, i, 0));
    PQclear(r);
    PQfinish(c);
    /* the rows below the bound, in key order, then each deleted by its key */
    assert_non_null(strstr(plan, "Index Cond: ((node = 'a'::text) AND (batch_id < 19000))"));
    assert_non_null(strstr(plan, "Index Cond: ((node = 'a'::text) AND (batch_id = ANY ($0)))"));
    assert_null(strstr(plan, "Seq Scan"));
    assert_null(strstr(plan, "Join"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deliveries_and_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batches_are_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_batches_prune_uses_the_primary_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drained_nodes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
