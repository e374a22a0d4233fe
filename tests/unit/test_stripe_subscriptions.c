/* test_stripe_subscriptions.c - billing: stripe subscriptions: the pure item swap of the outbox
 * (src/payments/outbox_subscriptions.c: re-price by slot, delete, add, leave the owner's items,
 * nothing to do), and the subscription service's decisions on a real SQLite file with its own
 * clock (src/billing/subscriptions.c): what each customer change queues in the outbox (the
 * create with its items, trial and anchor; nothing for a plan without prices or with
 * billing: tollgate; the swap and tollgate's proration as Stripe invoice items on an upgrade;
 * the swap alone when a downgrade is applied; DELETE or cancel_at_period_end on cancellation). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/tmpstore.h"
#include "billing/periods.h"
#include "billing/subscriptions.h"
#include "config/config.h"
#include "payments/outbox.h"
#include "payments/outbox_int.h"
#include "store/store_outbox.h"
#include "util/clock.h"

#define JAN1_2026 INT64_C(1767225600)
#define FEB1_2026 INT64_C(1769904000)
#define DAY INT64_C(86400)

/* ---- the swap (pure) ---- */

static char *swap(const char *params, const tg_outbox_sub_item_t *cur, size_t ncur, int *changes, int *rc)
{
    tg_form_t f;
    tg_err_t err = {0};
    tg_form_init(&f, 0);
    *rc = tg_outbox_subscription_swap(params, strlen(params), cur, ncur, &f, changes, &err);
    size_t len;
    char *out = strdup(tg_form_data(&f, &len));
    tg_form_free(&f);
    return out;
}

static void test_swap(void **state)
{
    (void)state;
    const char *want = "proration_behavior=none&metadata[tollgate_plan]=pro"
                       "&items[0][price]=price_pro_base&items[0][metadata][tollgate_slot]=base"
                       "&items[1][price]=price_pro_calls&items[1][metadata][tollgate_slot]=api_calls";
    int changes = -1, rc = -1;
    /* from starter (base + api_calls): both items re-priced in place, nothing added or deleted */
    tg_outbox_sub_item_t starter[] = {{"si_1", "price_st_base", "base"}, {"si_2", "price_st_calls", "api_calls"}};
    char *out = swap(want, starter, 2, &changes, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(changes, 2);
    assert_string_equal(out, "proration_behavior=none&metadata[tollgate_plan]=pro"
                             "&items[0][id]=si_1&items[0][price]=price_pro_base"
                             "&items[1][id]=si_2&items[1][price]=price_pro_calls");
    free(out);
    /* already as wanted (a replay after a lost answer): nothing */
    tg_outbox_sub_item_t done[] = {{"si_1", "price_pro_base", "base"}, {"si_2", "price_pro_calls", "api_calls"}};
    out = swap(want, done, 2, &changes, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(changes, 0);
    free(out);
    /* an old slot not wanted is deleted, a new one added; an item without a slot (the owner's,
     * made in Stripe) is left alone */
    tg_outbox_sub_item_t mixed[] = {{"si_1", "price_pro_base", "base"}, {"si_3", "price_x_images", "images"},
                                    {"si_9", "price_owner", ""}};
    out = swap(want, mixed, 3, &changes, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(changes, 2);
    assert_string_equal(out, "proration_behavior=none&metadata[tollgate_plan]=pro"
                             "&items[0][id]=si_3&items[0][deleted]=true"
                             "&items[1][price]=price_pro_calls&items[1][metadata][tollgate_slot]=api_calls");
    free(out);
    /* malformed rows are refused, not guessed at */
    out = swap("items[0][price]=p", NULL, 0, &changes, &rc);
    assert_int_equal(rc, TG_EINVAL); /* no slot */
    free(out);
    out = swap("items[0][quantity]=2", NULL, 0, &changes, &rc);
    assert_int_equal(rc, TG_EINVAL);
    free(out);
    out = swap("items[99][price]=p", NULL, 0, &changes, &rc);
    assert_int_equal(rc, TG_ELIMIT);
    free(out);
    out = swap("a=%zz", NULL, 0, &changes, &rc);
    assert_int_equal(rc, TG_EINVAL);
    free(out);
}

/* ---- the service ---- */

#define BASE_YAML                                                                                                      \
    "upstream: {url: \"http://127.0.0.1:3\"}\n"                                                                        \
    "admin: {token: \"0123456789abcdef0123\"}\n"                                                                       \
    "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"                                                           \
    "plans:\n"                                                                                                         \
    "  free: {name: Free, price: \"0\", included: {api_calls: 10}}\n"                                                  \
    "  starter: {name: Starter, price: \"49\", included: {api_calls: 100},"                                            \
    " charges: [{metric: api_calls, model: per_unit, unit_price: \"0.01\"}]}\n"                                        \
    "  pro: {name: Pro, price: \"199\", trial_days: 14, included: {api_calls: 1000},"                                  \
    " charges: [{metric: api_calls, model: per_unit, unit_price: \"0.001\"}]}\n"

static const char *yaml_stripe =
    BASE_YAML "stripe: {secret_key: sk_test_abc123, webhook_secret: whsec_xyz, billing: stripe}\n";
static const char *yaml_tollgate = BASE_YAML "stripe: {secret_key: sk_test_abc123, webhook_secret: whsec_xyz}\n";

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

static int setup_with(void **state, const char *yaml)
{
    fx_t *f = calloc(1, sizeof(*f));
    char errbuf[2048];
    assert_int_equal(tg_config_load_string("t.yaml", yaml, strlen(yaml), &f->cfg, errbuf, sizeof(errbuf)), 0);
    assert_int_equal(tg_tmpstore_open(&f->db, "ssub"), 0);
    f->x = (tg_sub_ctx_t){.cfg = f->cfg, .store = f->db.st, .now_s = test_now, .stripe_customers = 1};
    clock_s = JAN1_2026;
    *state = f;
    return 0;
}
static int setup(void **state)
{
    return setup_with(state, yaml_stripe);
}
static int setup_tollgate(void **state)
{
    return setup_with(state, yaml_tollgate);
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
    assert_int_equal(tg_store_tx_begin(f->db.st, &err), 0);
    assert_int_equal(
        tg_sub_customer_create(&f->x, email, "Test", tg_config_find_plan(f->cfg, plan), with_trial, &c, &err), 0);
    assert_int_equal(tg_store_tx_commit(f->db.st, &err), 0);
    return c;
}

/* The pending outbox rows (oldest first) of customer id into rows; returns how many. */
static size_t rows_of(fx_t *f, const char *id, tg_outbox_row_t *rows, size_t cap)
{
    tg_outbox_row_t all[32];
    size_t n = 0, k = 0;
    tg_err_t err = {0};
    assert_int_equal(tg_store_outbox_due(f->db.st, INT64_MAX / 2, all, 32, &n, &err), 0);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(all[i].customer_id, id) == 0 && k < cap)
            rows[k++] = all[i];
        else
            tg_outbox_row_clear(&all[i]);
    }
    return k;
}

static void clear_rows(tg_outbox_row_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tg_outbox_row_clear(&rows[i]);
}

static void test_create_queues_the_subscription(void **state)
{
    fx_t *f = *state;
    tg_outbox_row_t r[8];
    char want[1024];
    /* starter, no trial: from its period's start, nothing to prorate */
    tg_customer_t s = new_customer(f, "starter", 0);
    size_t n = rows_of(f, s.id, r, 8);
    assert_int_equal(n, 2);
    assert_string_equal(r[0].kind, TG_OUTBOX_KIND_CUSTOMER_CREATE);
    assert_string_equal(r[1].kind, TG_OUTBOX_KIND_SUBSCRIPTION_CREATE);
    snprintf(want, sizeof(want), "tg_subscription.create_%s", s.id);
    assert_string_equal(r[1].idempotency_key, want);
    snprintf(want, sizeof(want),
             "customer=%%7Bstripe_customer%%7D"
             "&items[0][price]=%%7Bstripe_price%%3Atollgate_starter_base%%7D&items[0][metadata][tollgate_slot]=base"
             "&items[1][price]=%%7Bstripe_price%%3Atollgate_starter_api_calls%%7D"
             "&items[1][metadata][tollgate_slot]=api_calls"
             "&collection_method=charge_automatically&proration_behavior=none"
             "&metadata[tollgate_customer]=%s&metadata[tollgate_plan]=starter",
             s.id);
    assert_string_equal(r[1].params, want);
    clear_rows(r, n);
    /* pro with its 14-day trial: trial_end, and the part of January after it billed prorated up
     * to tollgate's period end (the anchor) */
    tg_customer_t p = new_customer(f, "pro", 1);
    n = rows_of(f, p.id, r, 8);
    assert_int_equal(n, 2);
    snprintf(want, sizeof(want), "&trial_end=%lld&billing_cycle_anchor=%lld&proration_behavior=create_prorations&",
             (long long)(JAN1_2026 + 14 * DAY), (long long)FEB1_2026);
    assert_non_null(strstr(r[1].params, want));
    clear_rows(r, n);
    /* free: nothing to bill in Stripe, no subscription */
    tg_customer_t fr = new_customer(f, "free", 0);
    n = rows_of(f, fr.id, r, 8);
    assert_int_equal(n, 1);
    clear_rows(r, n);
}

static void test_tollgate_billing_keeps_no_subscription(void **state)
{
    fx_t *f = *state;
    tg_outbox_row_t r[8];
    tg_customer_t s = new_customer(f, "starter", 0);
    size_t n = rows_of(f, s.id, r, 8);
    assert_int_equal(n, 1); /* the Stripe customer only */
    assert_string_equal(r[0].kind, TG_OUTBOX_KIND_CUSTOMER_CREATE);
    clear_rows(r, n);
}

static void test_upgrade_sends_tollgates_proration(void **state)
{
    fx_t *f = *state;
    tg_customer_t c = new_customer(f, "starter", 0);
    clock_s = JAN1_2026 + 10 * DAY;
    /* tollgate's lines: Starter 49 x 10/31 = 15.81, Pro credit -199 x 10/31 = -64.19, Pro 199.
     * Stripe billed Starter's 49.00 for January in advance: the items are Pro for the rest
     * (199.00 - 64.19 = 134.81) and Starter's unused time (15.81 - 49.00 = -33.19). */
    tg_sub_change_t pc;
    tg_err_t err = {0};
    assert_int_equal(tg_sub_change_compute(&f->x, &c, tg_config_find_plan(f->cfg, "pro"), TG_SUB_WHEN_DEFAULT, &pc,
                                           &err),
                     0);
    assert_true(pc.prorated);
    assert_true(pc.stripe_new_rest == INT64_C(134810000000));
    assert_true(pc.stripe_old_unused == INT64_C(-33190000000));
    tg_sub_update_t u = {tg_config_find_plan(f->cfg, "pro"), TG_SUB_WHEN_DEFAULT, NULL, NULL};
    assert_int_equal(tg_sub_update(&f->x, &c, &u, &err), 0);
    tg_outbox_row_t r[8];
    size_t n = rows_of(f, c.id, r, 8);
    assert_int_equal(n, 5);
    assert_string_equal(r[2].kind, TG_OUTBOX_KIND_SUBSCRIPTION_ITEMS);
    assert_string_equal(r[2].path, "/v1/subscriptions/{stripe_subscription}");
    assert_non_null(strstr(r[2].params, "proration_behavior=none&metadata[tollgate_plan]=pro&items[0][price]="
                                        "%7Bstripe_price%3Atollgate_pro_base%7D"));
    assert_string_equal(r[3].kind, TG_OUTBOX_KIND_SUBSCRIPTION_INVOICE_ITEM);
    assert_non_null(strstr(r[3].params, "customer=%7Bstripe_customer%7D&subscription=%7Bstripe_subscription%7D"
                                        "&amount=13481&currency=usd"));
    assert_non_null(strstr(r[4].params, "&amount=-3319&currency=usd"));
    clear_rows(r, n);
}

static void test_downgrade_and_cancel(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    tg_customer_t c = new_customer(f, "pro", 0);
    tg_customer_t d = new_customer(f, "starter", 0);
    clock_s = JAN1_2026 + 10 * DAY;
    tg_sub_update_t u = {tg_config_find_plan(f->cfg, "starter"), TG_SUB_WHEN_DEFAULT, NULL, NULL};
    assert_int_equal(tg_sub_update(&f->x, &c, &u, &err), 0);
    tg_outbox_row_t r[8];
    size_t n = rows_of(f, c.id, r, 8);
    assert_int_equal(n, 2); /* a downgrade waits: nothing sent yet */
    clear_rows(r, n);
    /* the period closes: the scheduled downgrade is applied, and only then sent, without proration */
    clock_s = FEB1_2026 + 60;
    tg_periods_run_t run;
    assert_int_equal(tg_periods_close(&f->x, NULL, INT64_MAX, &run, &err), 0);
    tg_periods_run_free(&run);
    n = rows_of(f, c.id, r, 8);
    assert_int_equal(n, 3);
    assert_string_equal(r[2].kind, TG_OUTBOX_KIND_SUBSCRIPTION_ITEMS);
    assert_non_null(strstr(r[2].params, "tollgate_starter_base"));
    clear_rows(r, n);
    /* cancel now: DELETE, the usage invoiced and the unused base credited; at period end: a flag */
    assert_int_equal(tg_sub_cancel(&f->x, &c, 0, &err), 0);
    n = rows_of(f, c.id, r, 8);
    assert_int_equal(n, 4);
    assert_string_equal(r[3].kind, TG_OUTBOX_KIND_SUBSCRIPTION_CANCEL);
    assert_string_equal(r[3].method, "DELETE");
    assert_string_equal(r[3].params, "invoice_now=true&prorate=true");
    clear_rows(r, n);
    assert_int_equal(tg_sub_cancel(&f->x, &d, 1, &err), 0);
    n = rows_of(f, d.id, r, 8);
    assert_int_equal(n, 3);
    assert_string_equal(r[2].method, "POST");
    assert_string_equal(r[2].params, "cancel_at_period_end=true");
    clear_rows(r, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swap),
        cmocka_unit_test_setup_teardown(test_create_queues_the_subscription, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tollgate_billing_keeps_no_subscription, setup_tollgate, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_sends_tollgates_proration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_downgrade_and_cancel, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
