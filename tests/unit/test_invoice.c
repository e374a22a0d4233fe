/* test_invoice.c - closing periods into invoices on a real store (a temporary SQLite file, or with
 * TG_TEST_BACKEND=postgres a fresh PostgreSQL database: tests/support/tmpstore.h): idempotency,
 * late usage (onto the draft of its period until it is finalized, then a dated line on the next
 * invoice), per-plan pricing after a plan change, trial proration, gapless numbering. */
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
#include "billing/invoice.h"
#include "billing/line_text.h"
#include "billing/periods.h"
#include "config/config.h"
#include "store/store.h"

#define JAN1_2026 INT64_C(1767225600)
#define FEB1_2026 INT64_C(1769904000)
#define MAR1_2026 INT64_C(1772323200)

static const char *yaml =
    "upstream: {url: \"http://127.0.0.1:3\"}\n"
    "admin: {token: \"0123456789abcdef0123\"}\n"
    "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"
    "metering: {metrics: {api_calls: {name: \"API calls\", unit: call}}}\n"
    "portal: {title: \"Acme <API>\"}\n"
    "plans:\n"
    "  starter: {price: \"49\", included: {api_calls: 100}, charges: [{metric: api_calls, model: per_unit, unit_price: \"0.01\"}]}\n"
    "  pro: {price: \"199\", included: {api_calls: 1000}, charges: [{metric: api_calls, model: per_unit, unit_price: \"0.001\"}]}\n";

typedef struct {
    tg_tmpstore_t db;
    tg_config_t *cfg;
    tg_store_t *st;
    tg_customer_t c;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    char errbuf[2048];
    assert_int_equal(tg_config_load_string("t.yaml", yaml, strlen(yaml), &f->cfg, errbuf, sizeof(errbuf)), 0);
    tg_err_t err = {0};
    assert_int_equal(tg_tmpstore_open(&f->db, "inv"), 0);
    f->st = f->db.st;
    snprintf(f->c.id, sizeof(f->c.id), "cus_1");
    snprintf(f->c.email, sizeof(f->c.email), "a@b.co");
    snprintf(f->c.plan_id, sizeof(f->c.plan_id), "starter");
    snprintf(f->c.status, sizeof(f->c.status), "active");
    f->c.created_at = f->c.anchor_at = JAN1_2026;
    assert_int_equal(tg_store_customer_insert(f->st, &f->c, &err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    tg_config_free(f->cfg);
    assert_int_equal(tg_tmpstore_close(&f->db), 0);
    free(f);
    return 0;
}

static void usage(fx_t *f, uint64_t batch, const char *plan, int64_t period, uint64_t units)
{
    tg_usage_t u = {0};
    u.event_id = batch;
    snprintf(u.customer_id, sizeof(u.customer_id), "cus_1");
    snprintf(u.plan_id, sizeof(u.plan_id), "%s", plan);
    snprintf(u.metric, sizeof(u.metric), "api_calls");
    snprintf(u.endpoint, sizeof(u.endpoint), "GET /x");
    u.units = units;
    u.ts_ns = period * 1000000000;
    u.period_start = period;
    tg_err_t err = {0};
    assert_int_equal(tg_store_usage_record(f->st, batch, &u, 1, NULL, &err), 0);
}

typedef struct {
    tg_invoice_t inv[8];
    size_t n;
} invs_t;

static int grab(const tg_invoice_t *inv, void *arg)
{
    invs_t *v = arg;
    v->inv[v->n] = *inv;
    v->inv[v->n].body = strdup(inv->body);
    v->n++;
    return 0;
}

static void list(fx_t *f, invs_t *v)
{
    tg_err_t err = {0};
    for (size_t i = 0; i < v->n; i++)
        tg_invoice_clear(&v->inv[i]);
    v->n = 0;
    assert_int_equal(tg_store_invoice_list(f->st, "cus_1", grab, v, &err), 0);
}

/* A line as people read it: a usage line composed from its fields (lines stored before the text
 * existed read the same), the unlimited allowance, other models keep their names; a line of any
 * other kind, or a usage line whose description ends otherwise, is its stored description; the
 * text is cut at a character boundary. */
static void line_text_is(const tg_config_t *cfg, const char *line, const char *want)
{
    json_t *l = json_loads(line, 0, NULL);
    assert_non_null(l);
    char out[TG_LINE_TEXT_MAX];
    assert_string_equal(tg_line_text(cfg, l, out, sizeof(out)), want);
    json_decref(l);
}

static void test_line_text(void **state)
{
    fx_t *f = *state;
    line_text_is(f->cfg,
                 "{\"description\":\"api_calls above 50000 included (per unit)\",\"plan\":\"starter\",\"metric\":"
                 "\"api_calls\",\"quantity\":3,\"amount\":\"0.01\",\"used\":50003,\"included\":50000}",
                 "API calls above 50,000 included (per call)");
    line_text_is(f->cfg, "{\"description\":\"api_calls, unlimited included (per unit)\",\"metric\":\"api_calls\",\"included\":-1}",
                 "API calls, unlimited included (per call)");
    line_text_is(f->cfg, "{\"description\":\"images (graduated)\",\"metric\":\"images\",\"included\":0}", "images (graduated)");
    line_text_is(NULL, "{\"description\":\"api_calls above 1234567 included (package)\",\"metric\":\"api_calls\",\"included\":1234567}",
                 "api_calls above 1,234,567 included (package)");
    /* not usage lines: the base fee, an item, a kind added later (no "included") */
    line_text_is(f->cfg, "{\"description\":\"Starter plan, 1 month\",\"metric\":null,\"amount\":\"49.00\"}",
                 "Starter plan, 1 month");
    line_text_is(f->cfg, "{\"description\":\"Late usage of api_calls for December\",\"metric\":\"api_calls\"}",
                 "Late usage of api_calls for December");
    line_text_is(f->cfg,
                 "{\"kind\":\"late\",\"description\":\"api_calls above 5 included (per unit), late\",\"metric\":"
                 "\"api_calls\",\"included\":5}",
                 "api_calls above 5 included (per unit), late");
    line_text_is(f->cfg,
                 "{\"kind\":\"late\",\"description\":\"api_calls above 5 included (per unit)\",\"metric\":"
                 "\"api_calls\",\"included\":5}",
                 "api_calls above 5 included (per unit)");
    line_text_is(f->cfg, "{\"description\":\"api_calls written elsewhere\",\"metric\":\"api_calls\",\"included\":5}",
                 "api_calls written elsewhere");
    /* late usage (a dated line): the display name in place of the id, the rest as stored */
    line_text_is(f->cfg,
                 "{\"description\":\"api_calls used 2026-01-01 to 2026-01-31, reported after that period's invoice\","
                 "\"metric\":\"api_calls\",\"quantity\":4,\"invoiced\":5,\"late_period\":{\"start\":"
                 "\"2026-01-01T00:00:00Z\",\"end\":\"2026-02-01T00:00:00Z\"}}",
                 "API calls used 2026-01-01 to 2026-01-31, reported after that period's invoice");
    line_text_is(f->cfg, "[]", "");
    /* cut inside a character: dropped whole */
    json_t *l = json_pack("{s:s}", "description", "\xc3\xa9\xc3\xa9");
    char small[4];
    assert_string_equal(tg_line_text(f->cfg, l, small, sizeof(small)), "\xc3\xa9");
    json_decref(l);
}

static void test_close_idempotent_and_late_usage(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    int created = 0;
    usage(f, 1, "starter", JAN1_2026, 150); /* 50 over the allowance: 0.50 */
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &f->c, FEB1_2026 - 1, &created, &err), 0);
    assert_int_equal(created, 0); /* January has not ended */
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &f->c, FEB1_2026, &created, &err), 0);
    assert_int_equal(created, 1);
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &f->c, FEB1_2026 + 5, &created, &err), 0);
    assert_int_equal(created, 0); /* run twice: no second invoice */
    invs_t v = {0};
    list(f, &v);
    assert_int_equal(v.n, 1);
    assert_int_equal(v.inv[0].total, INT64_C(49500000000)); /* 49.00 + 0.50 */
    /* the printable page: the metric's display name, counts and money for people, the issuer */
    char *html = tg_invoice_to_html(&v.inv[0], &f->c, f->cfg);
    assert_non_null(html);
    assert_non_null(strstr(html, "<td>API calls above 100 included (per call)</td><td class=\"n\">50</td><td class=\"n\">$0.50</td>"));
    assert_non_null(strstr(html, "<td class=\"n\" data-testid=\"total\">$49.50</td>"));
    assert_non_null(strstr(html, "<p class=\"muted\">Acme &lt;API&gt;</p>"));
    assert_null(strstr(html, "USD"));
    free(html);
    html = tg_invoice_to_html(&v.inv[0], &f->c, NULL); /* no config: the stored text as it is */
    assert_non_null(strstr(html, "<td>api_calls above 100 included (per unit)</td>"));
    free(html);

    /* Late usage for January arrives after its invoice, plus February's own usage. */
    usage(f, 2, "starter", JAN1_2026, 10);
    usage(f, 3, "starter", FEB1_2026, 100);
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &f->c, MAR1_2026, &created, &err), 0);
    assert_int_equal(created, 1);
    list(f, &v);
    assert_int_equal(v.n, 2);
    /* newest first: February bills its own 100 calls, all inside its allowance, and January's
     * 10 late calls on a dated line at what January would have charged for them on top of its
     * 150 (10 x 0.01): 49.00 + 0.00 + 0.10; January is unchanged */
    assert_int_equal(v.inv[0].period_start, FEB1_2026);
    assert_int_equal(v.inv[0].total, INT64_C(49100000000));
    assert_int_equal(v.inv[1].total, INT64_C(49500000000));
    json_t *body = json_loads(v.inv[0].body, 0, NULL);
    json_t *lines = json_object_get(body, "lines");
    assert_int_equal(json_array_size(lines), 3);
    json_t *own = json_array_get(lines, 1), *late = json_array_get(lines, 2);
    assert_int_equal(json_integer_value(json_object_get(own, "used")), 100); /* not 110 */
    assert_int_equal(json_integer_value(json_object_get(own, "quantity")), 0);
    assert_string_equal(json_string_value(json_object_get(late, "description")),
                        "api_calls used 2026-01-01 to 2026-01-31, reported after that period's invoice");
    assert_string_equal(json_string_value(json_object_get(late, "metric")), "api_calls");
    assert_string_equal(json_string_value(json_object_get(late, "plan")), "starter");
    assert_int_equal(json_integer_value(json_object_get(late, "quantity")), 10);
    assert_int_equal(json_integer_value(json_object_get(late, "invoiced")), 150);
    assert_string_equal(json_string_value(json_object_get(late, "amount")), "0.10");
    json_t *lp = json_object_get(late, "late_period");
    assert_string_equal(json_string_value(json_object_get(lp, "start")), "2026-01-01T00:00:00Z");
    assert_string_equal(json_string_value(json_object_get(lp, "end")), "2026-02-01T00:00:00Z");
    json_decref(body);
    html = tg_invoice_to_html(&v.inv[0], &f->c, f->cfg);
    assert_non_null(html);
    assert_non_null(strstr(html, "<td>API calls used 2026-01-01 to 2026-01-31, reported after that period's invoice"
                                 "</td><td class=\"n\">10</td><td class=\"n\">$0.10</td>"));
    free(html);

    /* More late January usage while February is only previewed: priced after the 160 billed */
    usage(f, 4, "starter", JAN1_2026, 5);
    char *up = tg_invoice_preview(f->st, f->cfg, &f->c, MAR1_2026 + 60, &err);
    assert_non_null(up);
    assert_non_null(strstr(up, "\"quantity\":5,\"amount\":\"0.05\",\"invoiced\":160"));
    free(up);
    list(f, &v);
    for (size_t i = 0; i < v.n; i++)
        tg_invoice_clear(&v.inv[i]);
}

static int64_t clock_now;
static int64_t test_clock(void)
{
    return clock_now;
}

/* Finalizes invoice id as the admin API and billing.finalize_after do, at clock_now. */
static int finalize(fx_t *f, const char *id, tg_err_t *err)
{
    tg_sub_ctx_t x = {.cfg = f->cfg, .store = f->st, .now_s = test_clock};
    return tg_periods_invoice_transition(&x, id, "open", NULL, err);
}

static json_t *line_of(json_t *body, size_t i)
{
    return json_array_get(json_object_get(body, "lines"), i);
}

/* Issue 16: usage of a period that arrives while its invoice is a draft goes onto that invoice
 * when it is finalized, on its own usage line at its own tiers (the allowance counted once), and
 * not again onto the next invoice as a late line; the draft's item is kept. Usage that arrives
 * after finalization is a dated line on the next invoice. */
static void test_late_usage_onto_draft(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    int created = 0;
    usage(f, 1, "starter", JAN1_2026, 80); /* inside the allowance of 100 */
    tg_invoice_item_t credit = {0};
    snprintf(credit.customer_id, sizeof(credit.customer_id), "cus_1");
    snprintf(credit.description, sizeof(credit.description), "Goodwill credit");
    snprintf(credit.currency, sizeof(credit.currency), "usd");
    credit.created_at = JAN1_2026 + 86400;
    credit.amount = -INT64_C(5000000000); /* -5.00 */
    assert_int_equal(tg_store_invoice_item_add(f->st, &credit, &err), 0);
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &f->c, FEB1_2026, &created, &err), 0);
    invs_t v = {0};
    list(f, &v);
    assert_int_equal(v.inv[0].total, INT64_C(44000000000)); /* 49.00 + 0.00 - 5.00 */
    char jan[TG_ID_MAX];
    snprintf(jan, sizeof(jan), "%s", v.inv[0].id);

    /* 70 January calls reported while January is a draft: 150 in all, 50 over the allowance */
    usage(f, 2, "starter", JAN1_2026, 70);
    clock_now = FEB1_2026 + 3600;
    assert_int_equal(finalize(f, jan, &err), 0);
    list(f, &v);
    assert_string_equal(v.inv[0].status, "open");
    assert_int_equal(v.inv[0].total, INT64_C(44500000000)); /* 49.00 + 0.50 - 5.00 */
    json_t *body = json_loads(v.inv[0].body, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(body, "lines")), 3);
    assert_string_equal(json_string_value(json_object_get(line_of(body, 0), "amount")), "49.00");
    assert_int_equal(json_integer_value(json_object_get(line_of(body, 1), "used")), 150);
    assert_int_equal(json_integer_value(json_object_get(line_of(body, 1), "quantity")), 50);
    assert_string_equal(json_string_value(json_object_get(line_of(body, 1), "amount")), "0.50");
    assert_string_equal(json_string_value(json_object_get(line_of(body, 2), "description")), "Goodwill credit");
    assert_string_equal(json_string_value(json_object_get(line_of(body, 2), "amount")), "-5.00");
    assert_string_equal(json_string_value(json_object_get(body, "total")), "44.50");
    json_decref(body);

    /* after finalization: 10 more January calls are a dated line on February's invoice, priced
     * on top of the 150 January billed; the 70 are not billed again */
    usage(f, 3, "starter", JAN1_2026, 10);
    usage(f, 4, "starter", FEB1_2026, 20);
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &f->c, MAR1_2026, &created, &err), 0);
    list(f, &v);
    assert_int_equal(v.n, 2);
    assert_int_equal(v.inv[0].period_start, FEB1_2026);
    assert_int_equal(v.inv[0].total, INT64_C(49100000000)); /* 49.00 + 0.00 + 0.10 */
    body = json_loads(v.inv[0].body, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(body, "lines")), 3);
    json_t *late = line_of(body, 2);
    assert_non_null(json_object_get(late, "late_period"));
    assert_int_equal(json_integer_value(json_object_get(late, "quantity")), 10);
    assert_int_equal(json_integer_value(json_object_get(late, "invoiced")), 150);
    json_decref(body);

    /* finalizing February with nothing new leaves its lines as the closer drafted them */
    char *before = strdup(v.inv[0].body);
    clock_now = MAR1_2026 + 3600;
    assert_int_equal(finalize(f, v.inv[0].id, &err), 0);
    list(f, &v);
    assert_string_equal(v.inv[0].status, "open");
    assert_string_equal(v.inv[0].body, before);
    assert_int_equal(v.inv[0].total, INT64_C(49100000000));
    free(before);
    assert_int_equal(finalize(f, v.inv[0].id, &err), TG_ESTATE); /* once */
    for (size_t i = 0; i < v.n; i++)
        tg_invoice_clear(&v.inv[i]);
}

static void test_plan_change_and_numbering(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    int created = 0;
    /* 300 calls under starter, then an upgrade: 2000 under pro, same period */
    usage(f, 1, "starter", JAN1_2026, 300);
    usage(f, 2, "pro", JAN1_2026, 2000);
    snprintf(f->c.plan_id, sizeof(f->c.plan_id), "pro");
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &f->c, FEB1_2026, &created, &err), 0);
    invs_t v = {0};
    list(f, &v);
    /* base of the plan at period end (199) + starter usage 200 x 0.01 + pro usage 1000 x 0.001 */
    assert_int_equal(v.inv[0].total, INT64_C(202000000000));
    assert_non_null(strstr(v.inv[0].body, "\"plan\":\"starter\""));
    char id[TG_ID_MAX];
    snprintf(id, sizeof(id), "%s", v.inv[0].id);
    assert_int_equal(tg_store_invoice_transition(f->st, id, "paid", FEB1_2026, &err), TG_ESTATE); /* draft */
    assert_int_equal(tg_store_invoice_transition(f->st, id, "open", FEB1_2026, &err), 0);
    assert_int_equal(tg_store_invoice_transition(f->st, id, "open", FEB1_2026, &err), TG_ESTATE);
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &f->c, MAR1_2026, &created, &err), 0);
    list(f, &v);
    assert_int_equal(tg_store_invoice_transition(f->st, v.inv[0].id, "open", MAR1_2026, &err), 0);
    list(f, &v);
    assert_string_equal(v.inv[1].number, "TG-2026-000001");
    assert_string_equal(v.inv[0].number, "TG-2026-000002"); /* gapless, in order of finalization */
    for (size_t i = 0; i < v.n; i++)
        tg_invoice_clear(&v.inv[i]);
}

static void test_trial_prorates_base_fee(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    int created = 0;
    f->c.trial_end = JAN1_2026 + 14 * 86400; /* 14 of January's 31 days on trial */
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &f->c, FEB1_2026, &created, &err), 0);
    invs_t v = {0};
    list(f, &v);
    /* 49.00 x 17/31 = 26.870967... -> 26.87 */
    assert_int_equal(v.inv[0].total, INT64_C(26870000000));
    tg_invoice_clear(&v.inv[0]);
    f->c.trial_end = FEB1_2026 + 86400; /* a trial covering the whole period: no base fee */
    tg_customer_t c2 = f->c;
    snprintf(c2.id, sizeof(c2.id), "cus_2");
    snprintf(c2.email, sizeof(c2.email), "b@b.co");
    assert_int_equal(tg_store_customer_insert(f->st, &c2, &err), 0);
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &c2, FEB1_2026, &created, &err), 0);
    assert_int_equal(created, 1);
    invs_t w = {0};
    assert_int_equal(tg_store_invoice_list(f->st, "cus_2", grab, &w, &err), 0);
    assert_int_equal(w.inv[0].total, 0);
    tg_invoice_clear(&w.inv[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_close_idempotent_and_late_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_usage_onto_draft, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_change_and_numbering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trial_prorates_base_fee, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
