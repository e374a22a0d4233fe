/* test_subscriptions.c - the subscription services (billing/subscriptions.c, periods.c) on a real
 * SQLite file, with their own clock: exact proration of an upgrade, a downgrade waiting for the
 * period's end, a downgrade during a trial taking effect at once, cancellation now and at the
 * period's end, one-off items and credits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/tmpstore.h"
#include "billing/periods.h"
#include "billing/subscriptions.h"
#include "config/config.h"
#include "store/store.h"

#define JAN1_2026 INT64_C(1767225600)
#define FEB1_2026 INT64_C(1769904000)
#define DAY INT64_C(86400)

static const char *yaml = "upstream: {url: \"http://127.0.0.1:3\"}\n"
                          "admin: {token: \"0123456789abcdef0123\"}\n"
                          "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"
                          "plans:\n"
                          "  free: {name: Free, price: \"0\", included: {api_calls: 10}}\n"
                          "  starter: {name: Starter, price: \"49\", included: {api_calls: 100}}\n"
                          "  pro: {name: Pro, price: \"199\", trial_days: 14, included: {api_calls: 1000}}\n";

static int64_t clock_s;
static int64_t test_now(void)
{
    return clock_s;
}

typedef struct {
    tg_tmpstore_t db;
    tg_config_t *cfg;
    tg_sub_ctx_t x;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    char errbuf[2048];
    assert_int_equal(tg_config_load_string("t.yaml", yaml, strlen(yaml), &f->cfg, errbuf, sizeof(errbuf)), 0);
    assert_int_equal(tg_tmpstore_open(&f->db, "sub"), 0);
    f->x = (tg_sub_ctx_t){.cfg = f->cfg, .store = f->db.st, .now_s = test_now};
    clock_s = JAN1_2026;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    assert_int_equal(tg_tmpstore_close(&f->db), 0);
    tg_config_free(f->cfg);
    free(f);
    return 0;
}

static tg_customer_t new_customer(fx_t *f, const char *plan, int with_trial)
{
    tg_customer_t c;
    tg_err_t err = {0};
    char email[64];
    snprintf(email, sizeof(email), "%s-%d@example.com", plan, with_trial);
    assert_int_equal(
        tg_sub_customer_create(&f->x, email, "Test", tg_config_find_plan(f->cfg, plan), with_trial, &c, &err), 0);
    return c;
}

static tg_customer_t reload(fx_t *f, const char *id)
{
    tg_customer_t c;
    tg_err_t err = {0};
    assert_int_equal(tg_store_customer_get(f->db.st, id, &c, &err), 0);
    return c;
}

static int change(fx_t *f, tg_customer_t *c, const char *plan, tg_sub_when_t when, tg_err_t *err)
{
    tg_sub_update_t u = {tg_config_find_plan(f->cfg, plan), when, NULL, NULL};
    return tg_sub_update(&f->x, c, &u, err);
}

/* The upcoming invoice's line amounts, joined with ',' into out, and its total. */
static void upcoming(fx_t *f, const tg_customer_t *c, char *out, size_t cap, char *total, size_t tcap)
{
    tg_err_t err = {0};
    char *s = tg_sub_upcoming(&f->x, c, &err);
    assert_non_null(s);
    json_t *j = json_loads(s, 0, NULL), *l;
    assert_non_null(j);
    size_t i, used = 0;
    out[0] = '\0';
    json_array_foreach(json_object_get(j, "lines"), i, l)
    {
        int n = snprintf(out + used, cap - used, "%s%s:%s", i ? "," : "",
                         json_string_value(json_object_get(l, "description")),
                         json_string_value(json_object_get(l, "amount")));
        assert_true(n > 0 && (size_t)n < cap - used);
        used += (size_t)n;
    }
    snprintf(total, tcap, "%s", json_string_value(json_object_get(j, "total")));
    json_decref(j);
    free(s);
}

static void test_upgrade_prorated_exactly(void **state)
{
    fx_t *f = *state;
    tg_customer_t c = new_customer(f, "starter", 1);
    clock_s = JAN1_2026 + 10 * DAY; /* 10 of January's 31 days on starter */
    tg_err_t err = {0};
    assert_int_equal(change(f, &c, "pro", TG_SUB_WHEN_DEFAULT, &err), 0);
    tg_customer_t r = reload(f, c.id);
    assert_string_equal(r.plan_id, "pro"); /* at once */
    assert_string_equal(r.pending_plan_id, "");
    char lines[1024], total[32];
    upcoming(f, &r, lines, sizeof(lines), total, sizeof(total));
    /* 49 x 10/31 = 15.806..., 199 x 10/31 = 64.193... */
    assert_string_equal(lines, "Pro plan, 1 month:199.00,"
                               "Starter plan until the change (10 of 31 days):15.81,"
                               "Pro plan credit for the time before the change:-64.19");
    assert_string_equal(total, "150.62");
}

static void test_downgrade_waits_for_period_end(void **state)
{
    fx_t *f = *state;
    tg_customer_t c = new_customer(f, "pro", 0); /* no trial */
    clock_s = JAN1_2026 + 10 * DAY;
    tg_err_t err = {0};
    assert_int_equal(change(f, &c, "starter", TG_SUB_WHEN_DEFAULT, &err), 0);
    tg_customer_t r = reload(f, c.id);
    assert_string_equal(r.plan_id, "pro");
    assert_string_equal(r.pending_plan_id, "starter");
    assert_int_equal(r.pending_at, FEB1_2026);
    char lines[1024], total[32];
    upcoming(f, &r, lines, sizeof(lines), total, sizeof(total));
    assert_string_equal(total, "199.00"); /* January is Pro's, in full, without proration */

    clock_s = FEB1_2026 + 60; /* the run invoices January under Pro, then switches */
    tg_periods_run_t run;
    assert_int_equal(tg_periods_close(&f->x, NULL, INT64_MAX, &run, &err), 0);
    assert_int_equal(run.created, 1);
    assert_int_equal(run.failures, 0);
    tg_periods_run_free(&run);
    r = reload(f, c.id);
    assert_string_equal(r.plan_id, "starter");
    assert_string_equal(r.pending_plan_id, "");
}

/* Issue 11, item 9: pro -> free during the trial was scheduled for the period's end, and the
 * upcoming invoice billed "Pro plan, 17 of 31 days after the trial - 109.13". */
static void test_downgrade_during_trial_is_at_once(void **state)
{
    fx_t *f = *state;
    tg_customer_t c = new_customer(f, "pro", 1); /* trial until Jan 15 */
    assert_string_equal(c.status, "trialing");
    clock_s = JAN1_2026 + 5 * DAY;
    tg_err_t err = {0};
    assert_int_equal(change(f, &c, "free", TG_SUB_WHEN_DEFAULT, &err), 0);
    tg_customer_t r = reload(f, c.id);
    assert_string_equal(r.plan_id, "free");
    assert_string_equal(r.pending_plan_id, "");
    char lines[1024], total[32];
    upcoming(f, &r, lines, sizeof(lines), total, sizeof(total));
    assert_null(strstr(lines, "Pro plan"));
    assert_string_equal(total, "0.00");

    /* also when the owner asks for the period's end: the higher plan is never billed after it */
    tg_customer_t d = new_customer(f, "pro", 2);
    assert_int_equal(change(f, &d, "starter", TG_SUB_WHEN_PERIOD_END, &err), 0);
    r = reload(f, d.id);
    assert_string_equal(r.plan_id, "starter");
    upcoming(f, &r, lines, sizeof(lines), total, sizeof(total));
    assert_null(strstr(lines, "Pro plan"));
    /* starter has no trial of its own, but the customer's trial still covers Jan 1-15 */
    assert_string_equal(lines, "Starter plan, 17 of 31 days after the trial:26.87"); /* 49 x 17/31 */

    /* after the trial a downgrade waits again */
    tg_customer_t e = new_customer(f, "pro", 3);
    clock_s = JAN1_2026 + 20 * DAY;
    assert_int_equal(change(f, &e, "free", TG_SUB_WHEN_DEFAULT, &err), 0);
    r = reload(f, e.id);
    assert_string_equal(r.plan_id, "pro");
    assert_string_equal(r.pending_plan_id, "free");
}

static int first_body_cb(const tg_invoice_t *inv, void *arg)
{
    snprintf(arg, 2048, "%s", inv->body != NULL ? inv->body : "");
    return 1;
}

static void test_cancel_at_period_end_and_now(void **state)
{
    fx_t *f = *state;
    tg_customer_t a = new_customer(f, "starter", 0), b = new_customer(f, "pro", 0);
    tg_err_t err = {0};
    clock_s = JAN1_2026 + 15 * DAY;
    assert_int_equal(tg_sub_cancel(&f->x, &a, 1, &err), 0);
    a = reload(f, a.id);
    assert_int_equal(a.cancel_at, FEB1_2026);
    assert_string_equal(a.status, "active"); /* access until then */

    assert_int_equal(tg_sub_cancel(&f->x, &b, 0, &err), 0);
    b = reload(f, b.id);
    assert_string_equal(b.status, "canceled");
    assert_int_equal(b.cancel_at, JAN1_2026 + 15 * DAY);
    /* the final invoice: the base fee up to now, 199 x 15/31 = 96.29 */
    char body[2048] = "";
    assert_int_equal(tg_store_invoice_list(f->db.st, b.id, first_body_cb, body, &err), 0);
    assert_non_null(strstr(body, "\"description\":\"Pro plan, 15 of 31 days until cancellation\""));
    assert_non_null(strstr(body, "\"total\":\"96.29\""));
    assert_int_equal(tg_sub_cancel(&f->x, &b, 0, &err), TG_ESTATE);
    assert_int_equal(tg_sub_cancel(&f->x, &b, 1, &err), TG_ESTATE);

    /* at the period's end the run invoices January and then cancels a */
    clock_s = FEB1_2026 + 60;
    tg_periods_run_t run;
    assert_int_equal(tg_periods_close(&f->x, a.id, INT64_MAX, &run, &err), 0);
    assert_int_equal(run.created, 1);
    tg_periods_run_free(&run);
    a = reload(f, a.id);
    assert_string_equal(a.status, "canceled");
}

/* Keeping the subscription: a cancellation at the period's end is undone while the period lasts
 * (the period then closes as usual and the customer stays active); nothing to undo, a customer
 * canceled at once and one whose period ended are TG_ESTATE, and nothing changes. */
static void test_resume(void **state)
{
    fx_t *f = *state;
    tg_customer_t a = new_customer(f, "starter", 0), b = new_customer(f, "pro", 0), c = new_customer(f, "free", 0);
    tg_err_t err = {0};
    clock_s = JAN1_2026 + 15 * DAY;
    assert_int_equal(tg_sub_resume(&f->x, &a, &err), TG_ESTATE); /* nothing scheduled */
    assert_int_equal(tg_sub_cancel(&f->x, &a, 1, &err), 0);
    assert_int_equal(tg_sub_resume(&f->x, &a, &err), 0);
    a = reload(f, a.id);
    assert_int_equal(a.cancel_at, 0);
    assert_string_equal(a.status, "active");
    assert_int_equal(tg_sub_resume(&f->x, &a, &err), TG_ESTATE);

    assert_int_equal(tg_sub_cancel(&f->x, &b, 0, &err), 0); /* at once: no way back */
    assert_int_equal(tg_sub_resume(&f->x, &b, &err), TG_ESTATE);
    b = reload(f, b.id);
    assert_string_equal(b.status, "canceled");

    assert_int_equal(tg_sub_cancel(&f->x, &c, 1, &err), 0);
    clock_s = FEB1_2026 + 60; /* the period ended: too late, even before the closer ran */
    assert_int_equal(tg_sub_resume(&f->x, &c, &err), TG_ESTATE);
    assert_int_equal(reload(f, c.id).cancel_at, FEB1_2026);

    tg_periods_run_t run;
    assert_int_equal(tg_periods_close(&f->x, a.id, INT64_MAX, &run, &err), 0);
    assert_int_equal(run.created, 1);
    tg_periods_run_free(&run);
    a = reload(f, a.id);
    assert_string_equal(a.status, "active"); /* resumed: the period's end changed nothing */
}

static void test_items_and_errors(void **state)
{
    fx_t *f = *state;
    tg_customer_t c = new_customer(f, "starter", 0);
    tg_err_t err = {0};
    assert_int_equal(tg_sub_add_item(&f->x, &c, "Setup", 25 * TG_MONEY_SCALE, &err), 0);
    assert_int_equal(tg_sub_add_item(&f->x, &c, "Goodwill credit", -10 * TG_MONEY_SCALE, &err), 0);
    assert_int_equal(tg_sub_add_item(&f->x, &c, "", 1, &err), TG_EINVAL);
    assert_int_equal(tg_sub_add_item(&f->x, &c, "zero", 0, &err), TG_EINVAL);
    char lines[1024], total[32];
    upcoming(f, &c, lines, sizeof(lines), total, sizeof(total));
    assert_string_equal(lines, "Starter plan, 1 month:49.00,Setup:25.00,Goodwill credit:-10.00");
    assert_string_equal(total, "64.00");

    tg_customer_t dup;
    assert_int_equal(tg_sub_customer_create(&f->x, c.email, NULL, tg_config_find_plan(f->cfg, "free"), 1, &dup, &err),
                     TG_EEXIST);
    tg_sub_when_t w;
    assert_int_equal(tg_sub_when_parse("tomorrow", &w, &err), TG_EINVAL);
    tg_sub_update_t u = {NULL, TG_SUB_WHEN_DEFAULT, "frozen", NULL};
    assert_int_equal(tg_sub_update(&f->x, &c, &u, &err), TG_EINVAL);
    tg_periods_run_t run;
    assert_int_equal(tg_periods_close(&f->x, "cus_nobody", INT64_MAX, &run, &err), TG_ENOTFOUND);
    tg_periods_run_free(&run);
}

static int first_invoice_cb(const tg_invoice_t *inv, void *arg)
{
    tg_invoice_t *out = arg;
    *out = *inv;
    out->body = NULL; /* the list frees its own */
    return 1;
}

static tg_invoice_t invoice_of(fx_t *f, const char *customer_id)
{
    tg_invoice_t inv;
    tg_err_t err = {0};
    memset(&inv, 0, sizeof(inv));
    assert_int_equal(tg_store_invoice_list(f->db.st, customer_id, first_invoice_cb, &inv, &err), 0);
    return inv;
}

/* billing.finalize_after on the service's clock: a draft is finalized once it is that old, not
 * before; a held one is left a draft until released; only drafts can be held. */
static void test_finalize_after_and_hold(void **state)
{
    fx_t *f = *state;
    f->cfg->billing.finalize_after_s = 3600;
    tg_customer_t a = new_customer(f, "starter", 0), b = new_customer(f, "free", 0);
    tg_err_t err = {0};
    tg_periods_run_t run;
    clock_s = FEB1_2026 + 60;
    assert_int_equal(tg_periods_close(&f->x, NULL, INT64_MAX, &run, &err), 0);
    assert_int_equal(run.created, 2);
    tg_periods_run_free(&run);
    tg_invoice_t ia = invoice_of(f, a.id), ib = invoice_of(f, b.id);
    assert_string_equal(ia.status, "draft");
    assert_int_equal(ia.held, 0);
    assert_int_equal(tg_store_invoice_hold(f->db.st, ib.id, 1, &err), 0);

    int finalized = -1, queued = -1;
    clock_s += 3599; /* a second short of an hour */
    assert_int_equal(tg_periods_finalize_due(&f->x, &finalized, &queued, &err), 0);
    assert_int_equal(finalized, 0);
    assert_string_equal(invoice_of(f, a.id).status, "draft");

    clock_s += 1;
    assert_int_equal(tg_periods_finalize_due(&f->x, &finalized, &queued, &err), 0);
    assert_int_equal(finalized, 1);
    assert_int_equal(queued, 0); /* no stripe section: nothing for the outbox */
    ia = invoice_of(f, a.id);
    assert_string_equal(ia.status, "open");
    assert_string_equal(ia.number, "TG-2026-000001");
    ib = invoice_of(f, b.id);
    assert_string_equal(ib.status, "draft");
    assert_int_equal(ib.held, 1);
    assert_int_equal(tg_store_invoice_hold(f->db.st, ia.id, 1, &err), TG_ESTATE);

    clock_s += 30 * DAY; /* held: however old */
    assert_int_equal(tg_periods_finalize_due(&f->x, &finalized, &queued, &err), 0);
    assert_int_equal(finalized, 0);
    assert_int_equal(tg_store_invoice_hold(f->db.st, ib.id, 0, &err), 0);
    assert_int_equal(tg_periods_finalize_due(&f->x, &finalized, &queued, &err), 0);
    assert_int_equal(finalized, 1);
    assert_string_equal(invoice_of(f, b.id).status, "open");

    f->cfg->billing.finalize_after_s = 0; /* by hand: the service does nothing */
    assert_int_equal(tg_periods_finalize_due(&f->x, &finalized, &queued, &err), 0);
    assert_int_equal(finalized, 0);
}

static int on_failure(const tg_billing_failure_t *bf, void *arg)
{
    *(tg_billing_failure_t *)arg = *bf;
    return 0;
}

/* A draft the finalizer cannot take (here a body without lines, as a damaged row would have) is
 * listed with the billing failures, and leaves the list once it is finalized. */
static void test_finalize_failure_is_listed(void **state)
{
    fx_t *f = *state;
    f->cfg->billing.finalize_after_s = 3600;
    f->cfg->stripe.enabled = 1; /* billing: tollgate: finalizing also queues the Stripe copy */
    tg_customer_t a = new_customer(f, "starter", 0);
    tg_err_t err = {0};
    tg_periods_run_t run;
    clock_s = FEB1_2026 + 60;
    assert_int_equal(tg_periods_close(&f->x, NULL, INT64_MAX, &run, &err), 0);
    tg_periods_run_free(&run);
    tg_invoice_t listed = invoice_of(f, a.id), ia;
    assert_int_equal(tg_store_invoice_get(f->db.st, listed.id, &ia, &err), 0);
    tg_invoice_clear(&listed);
    assert_non_null(ia.body);
    /* the body broken behind the store's back (kept aside to repair it below); SQL that both
     * backends take, so this runs on PostgreSQL too */
    char sql[320];
    snprintf(sql, sizeof(sql),
             "CREATE TABLE saved_body AS SELECT id, body FROM invoices WHERE id = '%s';"
             " UPDATE invoices SET body = '{}' WHERE id = '%s'",
             ia.id, ia.id);
    assert_int_equal(tg_tmpstore_exec(&f->db, sql), 0);

    int finalized = -1, queued = -1;
    clock_s += 3600;
    assert_int_equal(tg_periods_finalize_due(&f->x, &finalized, &queued, &err), TG_EINVAL);
    assert_int_equal(finalized, 0);
    uint64_t count = 0;
    assert_int_equal(tg_store_billing_failure_count(f->db.st, &count, &err), 0);
    assert_int_equal(count, 1);
    tg_billing_failure_t bf;
    memset(&bf, 0, sizeof(bf));
    tg_page_t page = {.limit = 10};
    tg_page_end_t end;
    assert_int_equal(tg_store_billing_failure_list(f->db.st, &page, on_failure, &bf, &end, &err), 0);
    assert_string_equal(bf.customer_id, a.id);
    assert_string_equal(bf.type, "finalize_failed");
    assert_non_null(strstr(bf.message, ia.id));

    /* repaired: finalized on the next tick, and no longer listed */
    assert_int_equal(tg_tmpstore_exec(&f->db, "UPDATE invoices SET body = (SELECT body FROM saved_body"
                                              " WHERE saved_body.id = invoices.id) WHERE id IN (SELECT id FROM saved_body);"
                                              " DROP TABLE saved_body"),
                     0);
    tg_invoice_clear(&ia);
    assert_int_equal(tg_periods_finalize_due(&f->x, &finalized, &queued, &err), 0);
    assert_int_equal(finalized, 1);
    assert_int_equal(tg_store_billing_failure_count(f->db.st, &count, &err), 0);
    assert_int_equal(count, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_upgrade_prorated_exactly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_downgrade_waits_for_period_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_downgrade_during_trial_is_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_at_period_end_and_now, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_items_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_after_and_hold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finalize_failure_is_listed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
