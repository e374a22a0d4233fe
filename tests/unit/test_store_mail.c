/* test_store_mail.c - store_mail.h on both backends (TG_TEST_BACKEND=postgres for PostgreSQL):
 * the mail queue (insert in a transaction that rolls back leaves nothing; a claim leases rows so
 * a second claim, from another connection too, does not take them until the lease ends; an
 * attempt is recorded with its log line; a sensitive body is erased once sent and cannot be
 * resent; resend of a failed message; what one claim takes comes in the order it was queued),
 * single-use tokens (used once; expired; wrong purpose;
 * revoked), and the customer's confirmed address. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "../support/tmpstore.h"
#include "store/store_mail.h"

typedef struct {
    tg_tmpstore_t db;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_int_equal(tg_tmpstore_open(&f->db, "smail"), 0);
    assert_int_equal(tg_tmpstore_exec(&f->db,
                                      "INSERT INTO customers(id, email, name, plan_id, status, created_at,"
                                      " anchor_at) VALUES ('cus_a', 'a@example.com', 'A', 'free', 'active', 5, 5)"),
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

static int64_t queue(tg_store_t *st, const char *tmpl, int sensitive, int64_t now_ms)
{
    tg_mail_row_t r;
    memset(&r, 0, sizeof(r));
    strcpy(r.to, "a@example.com");
    snprintf(r.template_name, sizeof(r.template_name), "%s", tmpl);
    strcpy(r.customer_id, "cus_a");
    strcpy(r.subject, "Hello");
    strcpy(r.message_id, "<x@example.com>");
    r.body = "Subject: Hello\r\n\r\nbody\r\n";
    r.body_len = strlen(r.body);
    r.sensitive = sensitive;
    int64_t id = 0;
    tg_err_t err = {0};
    assert_int_equal(tg_store_mail_insert(st, &r, now_ms, &id, &err), 0);
    assert_true(id > 0);
    return id;
}

typedef struct {
    int64_t *ids;
    size_t *k;
} ids_t;

static int cb(const tg_mail_row_t *r, void *arg)
{
    ids_t *c = arg;
    c->ids[(*c->k)++] = r->id;
    return 0;
}

static void test_queue(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    tg_err_t err = {0};
    /* written in a transaction that rolls back: nothing */
    assert_int_equal(tg_store_tx_begin(st, &err), 0);
    queue(st, "invoice.paid", 0, 1000);
    tg_store_tx_rollback(st);
    int64_t at = 0;
    assert_int_equal(tg_store_mail_next_due(st, &at, &err), TG_ENOTFOUND);

    int64_t a = queue(st, "invoice.paid", 0, 1000);
    int64_t b = queue(st, "reset_password", 1, 2000);
    assert_int_equal(tg_store_mail_next_due(st, &at, &err), 0);
    assert_int_equal(at, 1000);
    /* a claim at 1500 takes only a, with its body, and leases it until 60000 */
    tg_mail_row_t rows[4];
    tg_mail_attempt_t log[4];
    size_t n = 0;
    assert_int_equal(tg_store_mail_claim(st, 1500, 60000, rows, 4, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].id, a);
    assert_string_equal(rows[0].body, "Subject: Hello\r\n\r\nbody\r\n");
    tg_mail_row_clear(&rows[0]);
    /* another connection claims at 3000: b only (a is leased) */
    tg_store_t *other;
    assert_int_equal(tg_store_open(f->db.url, &other, &err), 0);
    assert_int_equal(tg_store_mail_claim(other, 3000, 60000, rows, 4, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].id, b);
    assert_int_equal(rows[0].sensitive, 1);
    tg_mail_row_clear(&rows[0]);
    assert_int_equal(tg_store_mail_claim(other, 4000, 60000, rows, 4, &n, &err), 0);
    assert_int_equal(n, 0);
    /* after the lease, a is due again (its sender died) */
    assert_int_equal(tg_store_mail_claim(other, 60000, 120000, rows, 4, &n, &err), 0);
    assert_int_equal(n, 2);
    tg_mail_row_clear(&rows[0]);
    tg_mail_row_clear(&rows[1]);
    tg_store_close(other);

    /* a: 451 then sent; the log has both, in order */
    assert_int_equal(tg_store_mail_record(st, a, "retry", 70000, 451, "SMTP: try later", 61000, &err), 0);
    tg_mail_row_t m;
    assert_int_equal(tg_store_mail_get(st, a, &m, &err), 0);
    assert_string_equal(m.state, "pending");
    assert_int_equal(m.attempts, 1);
    assert_int_equal(m.next_attempt_at_ms, 70000);
    assert_int_equal(m.last_code, 451);
    assert_int_equal(tg_store_mail_record(st, a, "sent", 70000, 250, "", 71000, &err), 0);
    assert_int_equal(tg_store_mail_get(st, a, &m, &err), 0);
    assert_string_equal(m.state, "sent");
    assert_int_equal(m.attempts, 2);
    assert_int_equal(m.sent_at, 71);
    assert_int_equal(tg_store_mail_record(st, a, "sent", 0, 250, "", 72000, &err), TG_ENOTFOUND); /* not pending */
    assert_int_equal(tg_store_mail_attempts(st, a, log, 4, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(log[0].outcome, "retry");
    assert_int_equal(log[0].smtp_code, 451);
    assert_string_equal(log[0].error, "SMTP: try later");
    assert_string_equal(log[1].outcome, "sent");
    assert_int_equal(log[1].at_ms, 71000);
    /* a sent message can be resent (the owner asks); then it is pending and due */
    assert_int_equal(tg_store_mail_requeue(st, a, 80000, &err), 0);
    assert_int_equal(tg_store_mail_requeue(st, a, 80000, &err), TG_ESTATE);
    assert_int_equal(tg_store_mail_get(st, a, &m, &err), 0);
    assert_string_equal(m.state, "pending");
    assert_int_equal(m.attempts, 0); /* a fresh set of retries; the log keeps the old attempts */
    assert_int_equal(tg_store_mail_attempts(st, a, log, 4, &n, &err), 0);
    assert_int_equal(n, 2);

    /* b (sensitive): failed for good; its body is erased; a resend is refused */
    assert_int_equal(tg_store_mail_record(st, b, "failed", 0, 550, "no such user", 61000, &err), 0);
    assert_int_equal(tg_store_mail_requeue(st, b, 80000, &err), TG_ESTATE);
    assert_int_equal(tg_store_mail_requeue(st, 999999, 80000, &err), TG_ENOTFOUND);

    /* the list, newest first, filtered by state, a page at a time */
    queue(st, "key.created", 0, 90000);
    tg_page_t page = {.limit = 2};
    page.after[0] = '\0';
    tg_page_end_t end;
    int64_t ids[8];
    size_t k = 0;
    ids_t c = {ids, &k};
    assert_int_equal(tg_store_mail_page(st, NULL, &page, cb, &c, &end, &err), 0);
    assert_int_equal(k, 2);
    assert_true(ids[0] > ids[1]);
    assert_int_equal(end.has_more, 1);
    memcpy(page.after, end.next, sizeof(page.after));
    assert_int_equal(tg_store_mail_page(st, NULL, &page, cb, &c, &end, &err), 0);
    assert_int_equal(k, 3);
    assert_int_equal(end.has_more, 0);
    k = 0;
    page.after[0] = '\0';
    page.limit = 10;
    assert_int_equal(tg_store_mail_page(st, "failed", &page, cb, &c, &end, &err), 0);
    assert_int_equal(k, 1);
    assert_int_equal(ids[0], b);
}

/* A claim sends in queue order. The bug this pins: PostgreSQL returned an UPDATE's rows in the
 * order of the hash it had put the claimed ids in, so a sign-up's confirmation could go out
 * after the reset link asked for a moment later. */
static void test_claim_in_queue_order(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    tg_err_t err = {0};
    enum { queued = 12 };
    int64_t ids[queued];
    for (size_t i = 0; i < queued; i++)
        ids[i] = queue(st, i % 2 ? "reset_password" : "confirm_email", 1, 1000);
    tg_mail_row_t rows[queued];
    size_t n = 0;
    assert_int_equal(tg_store_mail_claim(st, 1000, 9000, rows, queued, &n, &err), 0);
    assert_int_equal(n, queued);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rows[i].id, ids[i]);
        tg_mail_row_clear(&rows[i]);
    }
}

static void test_tokens(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    tg_err_t err = {0};
    uint8_t h1[32], h2[32], h3[32];
    memset(h1, 1, 32);
    memset(h2, 2, 32);
    memset(h3, 3, 32);
    assert_int_equal(tg_store_email_token_insert(st, h1, "cus_a", "confirm_email", 100, 200, &err), 0);
    assert_int_equal(tg_store_email_token_insert(st, h2, "cus_a", "reset_password", 100, 200, &err), 0);
    assert_int_equal(tg_store_email_token_insert(st, h3, "cus_a", "reset_password", 100, 200, &err), 0);
    char cus[TG_ID_MAX] = "";
    /* the wrong purpose, an unknown hash, an expired token: refused, and nothing is used up */
    assert_int_equal(tg_store_email_token_use(st, h1, "reset_password", 150, cus, &err), TG_ENOTFOUND);
    uint8_t unknown[32] = {9};
    assert_int_equal(tg_store_email_token_use(st, unknown, "confirm_email", 150, cus, &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_email_token_use(st, h1, "confirm_email", 200, cus, &err), TG_ENOTFOUND);
    /* within its time: once */
    assert_int_equal(tg_store_email_token_use(st, h1, "confirm_email", 199, cus, &err), 0);
    assert_string_equal(cus, "cus_a");
    assert_int_equal(tg_store_email_token_use(st, h1, "confirm_email", 199, cus, &err), TG_ENOTFOUND);
    /* revoking a purpose ends every unused token of it */
    assert_int_equal(tg_store_email_token_revoke(st, "cus_a", "reset_password", 160, &err), 0);
    assert_int_equal(tg_store_email_token_use(st, h2, "reset_password", 170, cus, &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_email_token_use(st, h3, "reset_password", 170, cus, &err), TG_ENOTFOUND);

    /* the confirmed address: set once, read with the customer, kept by a customer update */
    tg_customer_t c;
    assert_int_equal(tg_store_customer_get(st, "cus_a", &c, &err), 0);
    assert_int_equal(c.email_confirmed_at, 0);
    assert_int_equal(tg_store_customer_confirm_email(st, "cus_a", 500, &err), 0);
    assert_int_equal(tg_store_customer_confirm_email(st, "cus_a", 600, &err), 0);
    assert_int_equal(tg_store_customer_confirm_email(st, "cus_nope", 600, &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_customer_get(st, "cus_a", &c, &err), 0);
    assert_int_equal(c.email_confirmed_at, 500);
    strcpy(c.name, "A2");
    c.email_confirmed_at = 0;
    assert_int_equal(tg_store_customer_update(st, &c, &err), 0);
    assert_int_equal(tg_store_customer_get(st, "cus_a", &c, &err), 0);
    assert_int_equal(c.email_confirmed_at, 500);
    assert_string_equal(c.name, "A2");
    /* a new customer can be stored confirmed (or not) */
    tg_customer_t n = c;
    strcpy(n.id, "cus_n");
    strcpy(n.email, "n@example.com");
    n.email_confirmed_at = 0;
    assert_int_equal(tg_store_customer_insert(st, &n, &err), 0);
    assert_int_equal(tg_store_customer_get(st, "cus_n", &n, &err), 0);
    assert_int_equal(n.email_confirmed_at, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_in_queue_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
