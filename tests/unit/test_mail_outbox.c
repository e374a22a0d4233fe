/* test_mail_outbox.c - src/notify/mail_outbox.c's queueing, on both backends: a mail is written
 * in the caller's transaction (rolled back: nothing), rendered from the event's template with the
 * customer's name and the portal's links, built as a whole message; owner-only and unknown
 * events queue nothing; link mails are marked sensitive; without an email section nothing is
 * queued. (The sender thread is exercised against a real SMTP server by
 * tests/integration/notify_email.test.mjs.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "../support/tmpstore.h"
#include "config/config.h"
#include "notify/mail_outbox.h"
#include "store/store_mail.h"

typedef struct {
    tg_tmpstore_t db;
    tg_config_t *cfg;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_int_equal(tg_tmpstore_open(&f->db, "mailq"), 0);
    assert_int_equal(tg_tmpstore_exec(&f->db,
                                      "INSERT INTO customers(id, email, name, plan_id, status, created_at,"
                                      " anchor_at) VALUES ('cus_a', 'ada@example.org', 'Ada <Lovelace>', 'free',"
                                      " 'active', 5, 5)"),
                     0);
    const char *yaml = "server: {admin_listen: \"127.0.0.1:8081\"}\n"
                       "upstream: {url: \"http://127.0.0.1:9000\"}\n"
                       "admin: {token: \"0123456789abcdef0123\"}\n"
                       "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"
                       "email: {smtp_url: \"smtp://127.0.0.1:2525\", from: \"API billing <billing@example.com>\"}\n"
                       "plans: {free: {}}\n";
    char errbuf[2048];
    assert_int_equal(tg_config_load_string("t.yaml", yaml, strlen(yaml), &f->cfg, errbuf, sizeof(errbuf)), 0);
    tg_mail_setup(f->cfg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    tg_mail_setup(NULL);
    tg_config_free(f->cfg);
    int rc = tg_tmpstore_close(&f->db);
    free(f);
    return rc;
}

/* Claims everything due (far in the future; leased further still, so a claimed row is not claimed
 * again) into out; returns how many. */
static size_t claim_all(tg_store_t *st, tg_mail_row_t *out, size_t cap)
{
    size_t n = 0;
    tg_err_t err = {0};
    assert_int_equal(tg_store_mail_claim(st, INT64_MAX / 4, INT64_MAX / 2, out, cap, &n, &err), 0);
    return n;
}

static void test_event_mail(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    tg_err_t err = {0};
    json_t *data = json_pack("{s:s,s:s,s:s}", "number", "INV-7", "total", "10.00", "currency", "USD");
    /* in a transaction that rolls back: nothing */
    assert_int_equal(tg_store_tx_begin(st, &err), 0);
    assert_int_equal(tg_mail_enqueue_event(st, "invoice.paid", "cus_a", data, &err), 0);
    tg_store_tx_rollback(st);
    int64_t at;
    assert_int_equal(tg_store_mail_next_due(st, &at, &err), TG_ENOTFOUND);
    /* committed: one message, built whole */
    assert_int_equal(tg_store_tx_begin(st, &err), 0);
    assert_int_equal(tg_mail_enqueue_event(st, "invoice.paid", "cus_a", data, &err), 0);
    assert_int_equal(tg_store_tx_commit(st, &err), 0);
    tg_mail_row_t rows[4];
    assert_int_equal(claim_all(st, rows, 4), 1);
    tg_mail_row_t *m = &rows[0];
    assert_string_equal(m->to, "ada@example.org");
    assert_string_equal(m->template_name, "invoice.paid");
    assert_string_equal(m->customer_id, "cus_a");
    assert_string_equal(m->subject, "Payment received for invoice INV-7");
    assert_int_equal(m->sensitive, 0);
    assert_non_null(strstr(m->body, "From: API billing <billing@example.com>\r\n"));
    assert_non_null(strstr(m->body, "To: <ada@example.org>\r\n"));
    assert_non_null(strstr(m->body, "Subject: Payment received for invoice INV-7\r\n"));
    assert_non_null(strstr(m->body, m->message_id));
    assert_non_null(strstr(m->body, "multipart/alternative"));
    assert_non_null(strstr(m->body, "Hello Ada <Lovelace>,"));         /* text part: as is */
    assert_non_null(strstr(m->body, "Hello Ada &lt;Lovelace&gt;,"));   /* HTML part: escaped */
    assert_non_null(strstr(m->body, "http://127.0.0.1:8081/portal/app.html#invoices")); /* the portal's link */
    tg_mail_row_clear(m);

    /* owner-only and unknown events, and the account templates by event: nothing */
    assert_int_equal(tg_mail_enqueue_event(st, "customer.created", "cus_a", data, &err), 0);
    assert_int_equal(tg_mail_enqueue_event(st, "no.such_event", "cus_a", data, &err), 0);
    assert_int_equal(tg_mail_enqueue_event(st, "reset_password", "cus_a", data, &err), 0);
    assert_int_equal(claim_all(st, rows, 4), 0);
    assert_int_equal(tg_mail_enqueue_event(st, "invoice.paid", "cus_nobody", data, &err), TG_ENOTFOUND);

    /* a link mail is sensitive; an unknown template or a bad address is refused */
    json_t *vars = json_pack("{s:s}", "link", "http://x/#token=abc");
    assert_int_equal(tg_mail_enqueue(st, "ada@example.org", "reset_password", vars, &err), 0);
    assert_int_equal(claim_all(st, rows, 4), 1);
    assert_int_equal(rows[0].sensitive, 1);
    tg_mail_row_clear(&rows[0]);
    assert_int_equal(tg_mail_enqueue(st, "ada@example.org", "no_such_template", vars, &err), TG_ENOTFOUND);
    assert_int_equal(tg_mail_enqueue(st, "ada@example.org>\r\nRCPT TO:<x@y.z", "reset_password", vars, &err),
                     TG_EINVAL);

    /* without an email section: nothing is queued */
    tg_mail_setup(NULL);
    assert_false(tg_mail_enabled());
    assert_int_equal(tg_mail_enqueue_event(st, "invoice.paid", "cus_a", data, &err), 0);
    assert_int_equal(tg_mail_enqueue(st, "ada@example.org", "reset_password", vars, &err), TG_ESTATE);
    assert_int_equal(claim_all(st, rows, 4), 0);
    json_decref(vars);
    json_decref(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_event_mail, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
