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
    "  starter: {price: \"49\", included: {api_calls: 100}, charges: [{metric: api_calls, model: per_unit, unit_price: "
    "\"0.01\"}]}\n"
    "  pro: {price: \"199\", included: {api_calls: 1000}, charges: [{metric: api_calls, model: per_unit, unit_price: "
    "\"0.001\"}]}\n"
    /* a minimum and no charges: its quote is the top-up line alone */
    "  floor: {price: \"10\", minimum: \"100\"}\n"
    "  committed: {price: \"10\", minimum: \"100\", charges: [{metric: api_calls, model: per_unit, unit_price: \"1\"},"
    " {metric: images, model: per_unit, unit_price: \"1\"}]}\n"
    "  capped: {price: \"10\", maximum: \"100\", charges: [{metric: api_calls, model: per_unit, unit_price: \"1\"}]}\n";

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

static void usage_of(fx_t *f, const char *customer, uint64_t batch, const char *plan, const char *metric,
                     int64_t period, uint64_t units)
{
    tg_usage_t u = {0};
    u.event_id = batch;
    snprintf(u.customer_id, sizeof(u.customer_id), "%s", customer);
    snprintf(u.plan_id, sizeof(u.plan_id), "%s", plan);
    snprintf(u.metric, sizeof(u.metric), "%s", metric);
    snprintf(u.endpoint, sizeof(u.endpoint), "GET /x");
    u.units = units;
    u.ts_ns = period * 1000000000;
    u.period_start = period;
    tg_err_t err = {0};
    assert_int_equal(tg_store_usage_record(f->st, batch, &u, 1, NULL, &err), 0);
}

static void usage(fx_t *f, uint64_t batch, const char *plan, int64_t period, uint64_t units)
{
    usage_of(f, "cus_1", batch, plan, "api_calls", period, units);
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

static void list_of(fx_t *f, const char *customer, invs_t *v)
{
    tg_err_t err = {0};
    for (size_t i = 0; i < v->n; i++)
        tg_invoice_clear(&v->inv[i]);
    v->n = 0;
    assert_int_equal(tg_store_invoice_list(f->st, customer, grab, v, &err), 0);
}

static void list(fx_t *f, invs_t *v)
{
    list_of(f, "cus_1", v);
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

/* The amount of body's line i; "(none)" when it has none. */
static const char *amount_of(json_t *body, size_t i)
{
    const char *a = json_string_value(json_object_get(line_of(body, i), "amount"));
    return a != NULL ? a : "(none)";
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
    /* lines with a kind go by it, not by their shape: a usage line is composed, a late line (even
     * without late_period) gets the display name, any other kind reads as stored even when it is
     * shaped like a usage line */
    line_text_is(f->cfg,
                 "{\"kind\":\"usage\",\"description\":\"api_calls above 100 included (per unit)\",\"metric\":"
                 "\"api_calls\",\"included\":100}",
                 "API calls above 100 included (per call)");
    line_text_is(f->cfg,
                 "{\"kind\":\"usage\",\"description\":\"api_calls written elsewhere\",\"metric\":\"api_calls\","
                 "\"included\":100}",
                 "api_calls written elsewhere");
    line_text_is(f->cfg,
                 "{\"kind\":\"late_usage\",\"description\":\"api_calls used 2026-01-01 to 2026-01-31, reported "
                 "after that period's invoice\",\"metric\":\"api_calls\",\"quantity\":4}",
                 "API calls used 2026-01-01 to 2026-01-31, reported after that period's invoice");
    line_text_is(f->cfg,
                 "{\"kind\":\"item\",\"description\":\"api_calls above 100 included (per unit)\",\"metric\":"
                 "\"api_calls\",\"included\":100}",
                 "api_calls above 100 included (per unit)");
    line_text_is(f->cfg,
                 "{\"kind\":\"minimum\",\"description\":\"Minimum commitment top-up (usage to 100.00)\","
                 "\"metric\":null}",
                 "Minimum commitment top-up (usage to 100.00)");
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

    /* More late January usage while January's invoice is still a draft: it is that draft's (its
     * finalization takes it), so March's upcoming invoice leaves it out */
    usage(f, 4, "starter", JAN1_2026, 5);
    char *up = tg_invoice_preview(f->st, f->cfg, &f->c, MAR1_2026 + 60, &err);
    assert_non_null(up);
    assert_null(strstr(up, "late_period"));
    assert_non_null(strstr(up, "\"total\":\"49.00\""));
    free(up);
    /* finalizing January takes those 5, and not the 10 billed on February's invoice already:
     * 150 + 5 = 155 calls, 55 over (0.55), each unit billed once */
    list(f, &v);
    clock_now = MAR1_2026 + 120;
    assert_int_equal(finalize(f, v.inv[1].id, &err), 0);
    list(f, &v);
    assert_string_equal(v.inv[1].status, "open");
    assert_int_equal(v.inv[1].total, INT64_C(49550000000));
    body = json_loads(v.inv[1].body, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(line_of(body, 1), "used")), 155);
    json_decref(body);
    /* and with January open, more January usage is the upcoming invoice's late line, priced on top
     * of the 165 billed (155 on January, 10 on February) */
    usage(f, 5, "starter", JAN1_2026, 5);
    up = tg_invoice_preview(f->st, f->cfg, &f->c, MAR1_2026 + 180, &err);
    assert_non_null(up);
    assert_non_null(strstr(up, "\"quantity\":5,\"amount\":\"0.05\",\"invoiced\":165"));
    free(up);
    list(f, &v);
    for (size_t i = 0; i < v.n; i++)
        tg_invoice_clear(&v.inv[i]);
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

    /* 70 January calls reported while January is a draft: 150 in all, 50 over the allowance.
     * They are the draft's: February's upcoming invoice does not list them as late usage. */
    usage(f, 2, "starter", JAN1_2026, 70);
    char *up = tg_invoice_preview(f->st, f->cfg, &f->c, FEB1_2026 + 1800, &err);
    assert_non_null(up);
    assert_null(strstr(up, "late_period"));
    assert_non_null(strstr(up, "\"total\":\"49.00\""));
    free(up);
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
    up = tg_invoice_preview(f->st, f->cfg, &f->c, FEB1_2026 + 7200, &err); /* January is open now */
    assert_non_null(up);
    assert_non_null(strstr(up, "\"quantity\":10,\"amount\":\"0.10\",\"invoiced\":150"));
    free(up);
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

/* The kinds a line can have (pricing.h), as stored. */
static int known_kind(const json_t *l)
{
    static const char *const kinds[] = {"base_fee", "proration", "usage",      "minimum",
                                        "maximum",  "item",      "late_usage", "credit"};
    const char *k = json_string_value(json_object_get(l, "kind"));
    for (size_t i = 0; k != NULL && i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(k, kinds[i]) == 0)
            return 1;
    return 0;
}

/* The kinds of body's lines, comma-separated, into out; fails if a line has none known. */
static const char *kinds_of(const char *body, char *out, size_t cap)
{
    json_t *b = json_loads(body, 0, NULL);
    assert_non_null(b);
    size_t i, len = 0;
    json_t *l;
    out[0] = '\0';
    json_array_foreach(json_object_get(b, "lines"), i, l)
    {
        if (!known_kind(l))
            fail_msg("line %zu has no known kind: %s", i, body);
        len +=
            (size_t)snprintf(out + len, cap - len, "%s%s", i ? "," : "", json_string_value(json_object_get(l, "kind")));
        assert_true(len < cap);
    }
    json_decref(b);
    return out;
}

static void add_item(fx_t *f, const char *customer, const char *desc, int64_t amount, int64_t at)
{
    tg_invoice_item_t it = {0};
    tg_err_t err = {0};
    snprintf(it.customer_id, sizeof(it.customer_id), "%s", customer);
    snprintf(it.description, sizeof(it.description), "%s", desc);
    snprintf(it.currency, sizeof(it.currency), "usd");
    it.created_at = at;
    it.amount = amount;
    assert_int_equal(tg_store_invoice_item_add(f->st, &it, &err), 0);
}

/* Every line of a new invoice says what it is; and late usage is priced with the period's
 * minimum over all its metrics (issue 16): a January billed at its $100 minimum for $50 of usage
 * (30 calls and 20 images at $1) pays $20 for 70 late images ($120 in all), not $70. */
static void test_kinds_and_late_minimum(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    int created = 0;
    snprintf(f->c.plan_id, sizeof(f->c.plan_id), "committed");
    f->c.trial_end = JAN1_2026 + 10 * 86400; /* the base fee is prorated: 21 of 31 days */
    usage_of(f, "cus_1", 1, "committed", "api_calls", JAN1_2026, 30);
    usage_of(f, "cus_1", 2, "committed", "images", JAN1_2026, 20);
    add_item(f, "cus_1", "Setup", INT64_C(5000000000), JAN1_2026 + 86400);
    add_item(f, "cus_1", "Goodwill credit", -INT64_C(3000000000), JAN1_2026 + 86400);
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &f->c, FEB1_2026, &created, &err), 0);
    invs_t v = {0};
    list(f, &v);
    char kinds[256];
    assert_string_equal(kinds_of(v.inv[0].body, kinds, sizeof(kinds)), "proration,usage,usage,minimum,item,credit");
    /* 10 x 21/31 = 6.77 + 30 + 20 + top-up 50 + 5 - 3 */
    assert_int_equal(v.inv[0].total, INT64_C(108770000000));
    clock_now = FEB1_2026 + 3600;
    assert_int_equal(finalize(f, v.inv[0].id, &err), 0);

    /* 70 January images after January's invoice was finalized */
    usage_of(f, "cus_1", 3, "committed", "images", JAN1_2026, 70);
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &f->c, MAR1_2026, &created, &err), 0);
    list(f, &v);
    assert_int_equal(v.inv[0].period_start, FEB1_2026);
    /* February: no usage of its own, billed at its minimum all the same (its charges at 0 and
     * the $100 top-up), then January's late line */
    assert_string_equal(kinds_of(v.inv[0].body, kinds, sizeof(kinds)), "base_fee,usage,usage,minimum,late_usage");
    json_t *body = json_loads(v.inv[0].body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(line_of(body, 3), "amount")), "100.00");
    json_t *late = line_of(body, 4);
    assert_string_equal(json_string_value(json_object_get(late, "metric")), "images");
    assert_int_equal(json_integer_value(json_object_get(late, "quantity")), 70);
    assert_int_equal(json_integer_value(json_object_get(late, "invoiced")), 20);
    assert_string_equal(json_string_value(json_object_get(late, "amount")), "20.00");
    assert_string_equal(json_string_value(json_object_get(body, "total")), "130.00");
    json_decref(body);
    for (size_t i = 0; i < v.n; i++)
        tg_invoice_clear(&v.inv[i]);
}

/* A period billed at its cap pays nothing for late usage; one billed at its minimum nothing until
 * its usage passes it ($80 of $100: $10 late is covered, $15 more is $5). */
static void test_late_usage_cap_and_minimum(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    int created = 0;
    tg_customer_t capped = f->c;
    snprintf(capped.id, sizeof(capped.id), "cus_2");
    snprintf(capped.email, sizeof(capped.email), "b@b.co");
    snprintf(capped.plan_id, sizeof(capped.plan_id), "capped");
    assert_int_equal(tg_store_customer_insert(f->st, &capped, &err), 0);
    snprintf(f->c.plan_id, sizeof(f->c.plan_id), "committed");
    usage_of(f, "cus_2", 1, "capped", "api_calls", JAN1_2026, 120);   /* $120, capped at $100 */
    usage_of(f, "cus_1", 2, "committed", "api_calls", JAN1_2026, 80); /* $80, topped up to $100 */
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &capped, FEB1_2026, &created, &err), 0);
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &f->c, FEB1_2026, &created, &err), 0);
    invs_t v = {0}, w = {0};
    list_of(f, "cus_2", &w);
    list(f, &v);
    char kinds[256];
    assert_string_equal(kinds_of(w.inv[0].body, kinds, sizeof(kinds)), "base_fee,usage,maximum");
    assert_int_equal(w.inv[0].total, INT64_C(110000000000));
    assert_string_equal(kinds_of(v.inv[0].body, kinds, sizeof(kinds)), "base_fee,usage,usage,minimum");
    assert_int_equal(v.inv[0].total, INT64_C(110000000000));
    clock_now = FEB1_2026 + 3600;
    assert_int_equal(finalize(f, w.inv[0].id, &err), 0);
    assert_int_equal(finalize(f, v.inv[0].id, &err), 0);

    usage_of(f, "cus_2", 3, "capped", "api_calls", JAN1_2026, 30);
    usage_of(f, "cus_1", 4, "committed", "api_calls", JAN1_2026, 10);
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &capped, MAR1_2026, &created, &err), 0);
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &f->c, MAR1_2026, &created, &err), 0);
    list_of(f, "cus_2", &w);
    list(f, &v);
    json_t *b = json_loads(w.inv[0].body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(line_of(b, 1), "kind")), "late_usage");
    assert_string_equal(json_string_value(json_object_get(line_of(b, 1), "amount")), "0.00");
    json_decref(b);
    b = json_loads(v.inv[0].body, 0, NULL);
    /* February's own minimum (no usage of its own) comes first: base fee, 0, 0, top-up */
    assert_non_null(json_string_value(json_object_get(line_of(b, 4), "kind")));
    assert_string_equal(json_string_value(json_object_get(line_of(b, 4), "kind")), "late_usage");
    assert_string_equal(amount_of(b, 4), "0.00");
    json_decref(b);

    /* March: 15 more January calls for cus_1, on top of the 90 billed: $105, $5 above the minimum */
    clock_now = MAR1_2026 + 3600;
    assert_int_equal(finalize(f, v.inv[0].id, &err), 0);
    usage_of(f, "cus_1", 5, "committed", "api_calls", JAN1_2026, 15);
    char *up = tg_invoice_preview(f->st, f->cfg, &f->c, MAR1_2026 + 7200, &err);
    assert_non_null(up);
    assert_non_null(strstr(up, "\"quantity\":15,\"amount\":\"5.00\",\"invoiced\":90"));
    free(up);
    for (size_t i = 0; i < v.n; i++)
        tg_invoice_clear(&v.inv[i]);
    for (size_t i = 0; i < w.n; i++)
        tg_invoice_clear(&w.inv[i]);
}

/* A plan with a minimum and no charges: its draft's quote is the top-up line alone. Usage
 * arriving while it is a draft prices that line again on finalization, rather than keeping it
 * beside a fresh one (before kinds, it was taken for a base fee and billed twice). */
static void test_minimum_only_plan_refresh(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    int created = 0;
    snprintf(f->c.plan_id, sizeof(f->c.plan_id), "floor");
    usage_of(f, "cus_1", 1, "floor", "api_calls", JAN1_2026, 5);
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &f->c, FEB1_2026, &created, &err), 0);
    invs_t v = {0};
    list(f, &v);
    char kinds[256];
    assert_string_equal(kinds_of(v.inv[0].body, kinds, sizeof(kinds)), "base_fee,minimum");
    assert_int_equal(v.inv[0].total, INT64_C(110000000000));
    usage_of(f, "cus_1", 2, "floor", "api_calls", JAN1_2026, 7); /* while January is a draft */
    clock_now = FEB1_2026 + 3600;
    assert_int_equal(finalize(f, v.inv[0].id, &err), 0);
    list(f, &v);
    assert_string_equal(v.inv[0].status, "open");
    assert_string_equal(kinds_of(v.inv[0].body, kinds, sizeof(kinds)), "base_fee,minimum");
    assert_int_equal(v.inv[0].total, INT64_C(110000000000));
    tg_invoice_clear(&v.inv[0]);
}

/* An invoice stored before kinds existed (lines as tg_invoice_build wrote them then): its draft
 * refresh replaces its usage line by its shape, keeping the base fee, the late line and the credit
 * byte for byte; and it renders exactly as the same invoice with kinds. */
#define OLD_BASE                                                                                                       \
    "{\"description\":\"Starter plan, 1 month\",\"plan\":\"starter\",\"metric\":null,"                                 \
    "\"quantity\":1,\"amount\":\"49.00\"}"
#define OLD_USAGE                                                                                                      \
    "{\"description\":\"api_calls above 100 included (per unit)\",\"plan\":\"starter\",\"metric\":\"api_calls\","      \
    "\"quantity\":50,\"amount\":\"0.50\",\"used\":150,\"included\":100,\"unit_price\":\"0.01\"}"
#define OLD_LATE                                                                                                       \
    "{\"description\":\"api_calls used 2025-12-01 to 2025-12-31, reported after that period's invoice\",\"plan\":"     \
    "\"starter\",\"metric\":\"api_calls\",\"quantity\":4,\"amount\":\"0.04\",\"invoiced\":200,\"late_period\":"        \
    "{\"start\":\"2025-12-01T00:00:00Z\",\"end\":\"2026-01-01T00:00:00Z\"}}"
#define OLD_CREDIT                                                                                                     \
    "{\"description\":\"Goodwill credit\",\"plan\":null,\"metric\":null,\"quantity\":1,\"amount\":\"-5.00\"}"

static char *with_kinds(const char *body, const char *const *kinds)
{
    json_t *b = json_loads(body, 0, NULL);
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(b, "lines"), i, l) json_object_set_new(l, "kind", json_string(kinds[i]));
    char *s = json_dumps(b, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(b);
    return s;
}

static void test_old_body_without_kinds(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    const char *old_body = "{\"customer\":\"cus_1\",\"plan\":\"starter\",\"lines\":[" OLD_BASE "," OLD_USAGE
                           "," OLD_LATE "," OLD_CREDIT "],\"subtotal\":\"44.54\",\"total\":\"44.54\"}";
    tg_invoice_t inv = {0};
    snprintf(inv.id, sizeof(inv.id), "inv_old");
    snprintf(inv.customer_id, sizeof(inv.customer_id), "cus_1");
    snprintf(inv.currency, sizeof(inv.currency), "usd");
    snprintf(inv.status, sizeof(inv.status), "draft");
    inv.period_start = JAN1_2026;
    inv.period_end = FEB1_2026;
    inv.body = strdup(old_body);

    /* it renders as the same invoice with kinds does, line for line */
    static const char *const kinds[] = {"base_fee", "usage", "late_usage", "credit"};
    tg_invoice_t kinded = inv;
    kinded.body = with_kinds(old_body, kinds);
    char *html_old = tg_invoice_to_html(&inv, &f->c, f->cfg), *html_new = tg_invoice_to_html(&kinded, &f->c, f->cfg);
    assert_non_null(strstr(html_old, "<td>API calls above 100 included (per call)</td>"));
    assert_non_null(
        strstr(html_old, "<td>API calls used 2025-12-01 to 2025-12-31, reported after that period's invoice</td>"));
    assert_non_null(strstr(html_old, "<td>Starter plan, 1 month</td>"));
    assert_string_equal(html_old, html_new);
    free(html_old);
    free(html_new);
    free(kinded.body);

    /* 20 more January calls while it is a draft: 170 in all, 70 over */
    tg_unbilled_t rows[] = {{"starter", "api_calls", 170, JAN1_2026, 150, 0}};
    assert_int_equal(tg_invoice_refresh_usage(f->cfg, &f->c, rows, 1, &inv, &err), 0);
    json_t *b = json_loads(inv.body, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(b, "lines")), 4);
    json_t *want = json_loads(OLD_BASE, 0, NULL);
    assert_true(json_equal(line_of(b, 0), want));
    json_decref(want);
    assert_int_equal(json_integer_value(json_object_get(line_of(b, 1), "used")), 170);
    assert_int_equal(json_integer_value(json_object_get(line_of(b, 1), "quantity")), 70);
    assert_string_equal(json_string_value(json_object_get(line_of(b, 1), "amount")), "0.70");
    want = json_loads(OLD_LATE, 0, NULL);
    assert_true(json_equal(line_of(b, 2), want));
    json_decref(want);
    want = json_loads(OLD_CREDIT, 0, NULL);
    assert_true(json_equal(line_of(b, 3), want));
    json_decref(want);
    assert_string_equal(json_string_value(json_object_get(b, "total")), "44.74"); /* 49 + 0.70 + 0.04 - 5 */
    assert_int_equal(inv.total, INT64_C(44740000000));
    json_decref(b);
    free(inv.body);
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

/* A minimum commitment is billed for a period without usage (review: a customer escaped it by not
 * calling, while one cheap call paid it whole): the base fee, the charges at 0 and the $100
 * top-up, on the draft, in the upcoming invoice, and after the draft's refresh. */
static void test_zero_usage_bills_minimum(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    int created = 0;
    snprintf(f->c.plan_id, sizeof(f->c.plan_id), "committed");
    /* the upcoming invoice of January, nothing used yet */
    char *up = tg_invoice_preview(f->st, f->cfg, &f->c, JAN1_2026 + 86400, &err);
    assert_non_null(up);
    json_t *b = json_loads(up, 0, NULL);
    char kinds[256];
    char *text = json_dumps(b, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(kinds_of(text, kinds, sizeof(kinds)), "base_fee,usage,usage,minimum");
    assert_string_equal(amount_of(b, 3), "100.00");
    assert_string_equal(json_string_value(json_object_get(b, "total")), "110.00");
    free(text);
    json_decref(b);
    free(up);

    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &f->c, FEB1_2026, &created, &err), 0);
    assert_int_equal(created, 1);
    invs_t v = {0};
    list(f, &v);
    assert_string_equal(kinds_of(v.inv[0].body, kinds, sizeof(kinds)), "base_fee,usage,usage,minimum");
    assert_int_equal(v.inv[0].total, INT64_C(110000000000));
    /* 40 January calls while it is a draft: priced on it at finalization, still $100 in all */
    usage(f, 1, "committed", JAN1_2026, 40);
    clock_now = FEB1_2026 + 3600;
    assert_int_equal(finalize(f, v.inv[0].id, &err), 0);
    list(f, &v);
    assert_string_equal(kinds_of(v.inv[0].body, kinds, sizeof(kinds)), "base_fee,usage,usage,minimum");
    b = json_loads(v.inv[0].body, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(line_of(b, 1), "used")), 40);
    assert_string_equal(amount_of(b, 3), "60.00");
    json_decref(b);
    assert_int_equal(v.inv[0].total, INT64_C(110000000000));
    for (size_t i = 0; i < v.n; i++)
        tg_invoice_clear(&v.inv[i]);
}

/* Late usage of a period billed at its minimum without usage is priced on top of that minimum:
 * 40 late calls ($40) are inside January's $100 and cost nothing, 70 more take it to $110: $10.
 * A period invoiced before this rule (a zero-usage invoice without a minimum line) billed no
 * minimum, and its late usage pays the whole quote as it did then: $100 for 40 calls. */
static void test_late_usage_after_zero_usage_minimum(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    int created = 0;
    snprintf(f->c.plan_id, sizeof(f->c.plan_id), "committed");
    tg_customer_t old = f->c;
    snprintf(old.id, sizeof(old.id), "cus_old");
    snprintf(old.email, sizeof(old.email), "old@b.co");
    assert_int_equal(tg_store_customer_insert(f->st, &old, &err), 0);
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &f->c, FEB1_2026, &created, &err), 0);
    /* cus_old's January as the version before made it: the base fee alone */
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "INSERT INTO invoices(id, customer_id, period_start, period_end, status, currency, total, body,"
             " created_at) VALUES ('inv_old', 'cus_old', %lld, %lld, 'open', 'usd', 10000000000,"
             " '{\"customer\":\"cus_old\",\"plan\":\"committed\",\"lines\":[{\"kind\":\"base_fee\","
             "\"description\":\"committed plan, 1 month\",\"plan\":\"committed\",\"metric\":null,"
             "\"quantity\":1,\"amount\":\"10.00\"}],\"subtotal\":\"10.00\",\"total\":\"10.00\"}', %lld)",
             (long long)JAN1_2026, (long long)FEB1_2026, (long long)FEB1_2026);
    assert_int_equal(tg_tmpstore_exec(&f->db, sql), 0);
    invs_t v = {0};
    list(f, &v);
    clock_now = FEB1_2026 + 3600;
    assert_int_equal(finalize(f, v.inv[0].id, &err), 0);

    usage(f, 1, "committed", JAN1_2026, 40);
    usage_of(f, "cus_old", 2, "committed", "api_calls", JAN1_2026, 40);
    /* the upcoming February shows it as the invoice will */
    char *up = tg_invoice_preview(f->st, f->cfg, &f->c, FEB1_2026 + 7200, &err);
    assert_non_null(up);
    assert_non_null(strstr(up, "\"quantity\":40,\"amount\":\"0.00\",\"invoiced\":0"));
    free(up);
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &f->c, MAR1_2026, &created, &err), 0);
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &old, MAR1_2026, &created, &err), 0);
    char kinds[256];
    list(f, &v);
    assert_string_equal(kinds_of(v.inv[0].body, kinds, sizeof(kinds)), "base_fee,usage,usage,minimum,late_usage");
    json_t *b = json_loads(v.inv[0].body, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(line_of(b, 4), "quantity")), 40);
    assert_string_equal(amount_of(b, 4), "0.00");
    assert_string_equal(json_string_value(json_object_get(b, "total")), "110.00");
    json_decref(b);
    invs_t w = {0};
    list_of(f, "cus_old", &w);
    b = json_loads(w.inv[0].body, 0, NULL);
    assert_string_equal(amount_of(b, 4), "100.00");
    json_decref(b);

    /* March: 70 more January calls, on top of the 40 billed: $110, $10 above the minimum */
    clock_now = MAR1_2026 + 3600;
    assert_int_equal(finalize(f, v.inv[0].id, &err), 0);
    usage(f, 3, "committed", JAN1_2026, 70);
    up = tg_invoice_preview(f->st, f->cfg, &f->c, MAR1_2026 + 7200, &err);
    assert_non_null(up);
    assert_non_null(strstr(up, "\"quantity\":70,\"amount\":\"10.00\",\"invoiced\":40"));
    free(up);
    for (size_t i = 0; i < v.n; i++)
        tg_invoice_clear(&v.inv[i]);
    for (size_t i = 0; i < w.n; i++)
        tg_invoice_clear(&w.inv[i]);
}

/* The minimum follows the base fee through a trial: a trial covering the whole period waives
 * both; a trial ending inside it prorates the base fee and bills the minimum whole, as a period
 * with usage always did (one call then paid it whole). */
static void test_zero_usage_minimum_and_trial(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    int created = 0;
    snprintf(f->c.plan_id, sizeof(f->c.plan_id), "committed");
    f->c.trial_end = FEB1_2026 + 86400;
    tg_customer_t part = f->c;
    snprintf(part.id, sizeof(part.id), "cus_2");
    snprintf(part.email, sizeof(part.email), "b@b.co");
    part.trial_end = JAN1_2026 + 10 * 86400; /* 21 of 31 days paid */
    assert_int_equal(tg_store_customer_insert(f->st, &part, &err), 0);
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &f->c, FEB1_2026, &created, &err), 0);
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &part, FEB1_2026, &created, &err), 0);
    invs_t v = {0}, w = {0};
    list(f, &v);
    list_of(f, "cus_2", &w);
    char kinds[256];
    assert_string_equal(kinds_of(v.inv[0].body, kinds, sizeof(kinds)), "");
    assert_int_equal(v.inv[0].total, 0);
    assert_string_equal(kinds_of(w.inv[0].body, kinds, sizeof(kinds)), "proration,usage,usage,minimum");
    assert_int_equal(w.inv[0].total, INT64_C(106770000000)); /* 10 x 21/31 = 6.77, and 100 */
    for (size_t i = 0; i < v.n; i++)
        tg_invoice_clear(&v.inv[i]);
    for (size_t i = 0; i < w.n; i++)
        tg_invoice_clear(&w.inv[i]);
}

/* A plan change inside a period: each plan's usage is its own quote, as before; the period's
 * plan (the base fee's) bills its minimum once: with usage under it, its quote's top-up; without,
 * its quote at 0. A plan without a minimum gets no lines of 0.00. */
static void test_minimum_once_across_plan_change(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    int created = 0;
    usage(f, 1, "starter", JAN1_2026, 300); /* 200 above starter's allowance: $2 */
    snprintf(f->c.plan_id, sizeof(f->c.plan_id), "committed");
    tg_customer_t both = f->c;
    snprintf(both.id, sizeof(both.id), "cus_2");
    snprintf(both.email, sizeof(both.email), "b@b.co");
    assert_int_equal(tg_store_customer_insert(f->st, &both, &err), 0);
    usage_of(f, "cus_2", 2, "starter", "api_calls", JAN1_2026, 300);
    usage_of(f, "cus_2", 3, "committed", "api_calls", JAN1_2026, 30);
    tg_customer_t free_plan = f->c;
    snprintf(free_plan.id, sizeof(free_plan.id), "cus_3");
    snprintf(free_plan.email, sizeof(free_plan.email), "c@b.co");
    snprintf(free_plan.plan_id, sizeof(free_plan.plan_id), "starter");
    assert_int_equal(tg_store_customer_insert(f->st, &free_plan, &err), 0);
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &f->c, FEB1_2026, &created, &err), 0);
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &both, FEB1_2026, &created, &err), 0);
    assert_int_equal(tg_invoice_close_periods(f->st, f->cfg, &free_plan, FEB1_2026, &created, &err), 0);
    invs_t v = {0};
    char kinds[256];
    list(f, &v);
    /* starter's usage, then committed at 0 topped up: 10 + 2 + 100 */
    assert_string_equal(kinds_of(v.inv[0].body, kinds, sizeof(kinds)), "base_fee,usage,usage,usage,minimum");
    assert_int_equal(v.inv[0].total, INT64_C(112000000000));
    list_of(f, "cus_2", &v);
    /* committed's 30 calls topped up once ($70), starter's $2 beside: 10 + 30 + 70 + 2 */
    assert_string_equal(kinds_of(v.inv[0].body, kinds, sizeof(kinds)), "base_fee,usage,usage,minimum,usage");
    assert_int_equal(v.inv[0].total, INT64_C(112000000000));
    list_of(f, "cus_3", &v);
    assert_string_equal(kinds_of(v.inv[0].body, kinds, sizeof(kinds)), "base_fee");
    assert_int_equal(v.inv[0].total, INT64_C(49000000000));
    for (size_t i = 0; i < v.n; i++)
        tg_invoice_clear(&v.inv[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_close_idempotent_and_late_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_usage_onto_draft, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kinds_and_late_minimum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_usage_cap_and_minimum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_minimum_only_plan_refresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_body_without_kinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_change_and_numbering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trial_prorates_base_fee, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_usage_bills_minimum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_usage_after_zero_usage_minimum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_usage_minimum_and_trial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_minimum_once_across_plan_change, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
