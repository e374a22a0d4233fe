/* test_meter_export.c - billing: stripe meter events (payments/meter_export.h): the identifier,
 * the late rule, the late price, the duplicate answer, and on a real store the hourly totals
 * the fold keeps and what a pass of the exporter queues in the outbox. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "config/config.h"
#include "payments/meter_export.h"
#include "payments/outbox.h"
#include "store/store_meter.h"
#include "store/store_outbox.h"
#include "util/pack.h"

#include "../support/tmpstore.h"

#define H0 INT64_C(1772326800) /* 2026-03-01 01:00:00 UTC */

static const char *yaml =
    "upstream: {url: \"http://127.0.0.1:3\"}\n"
    "admin: {token: \"0123456789abcdef0123\"}\n"
    "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"
    "plans:\n"
    "  metered: {price: \"10\", included: {api_calls: 2}, charges: [{metric: api_calls, model: per_unit, unit_price: "
    "\"0.25\"}]}\n"
    "  krona: {price: \"0\", currency: isk, charges: [{metric: api_calls, model: per_unit, unit_price: \"3\"}]}\n"
    "  tiered: {price: \"0\", charges: [{metric: tokens, model: graduated, tiers: [{up_to: 10, unit_price: \"1\"}, "
    "{up_to: inf, unit_price: \"0.1\"}]}]}\n";

static int64_t now_value;
static int64_t test_now(void)
{
    return now_value;
}

typedef struct {
    tg_tmpstore_t db;
    tg_config_t *cfg;
    tg_sub_ctx_t x;
    uint64_t batch;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    char errbuf[2048];
    assert_int_equal(tg_tmpstore_open(&f->db, "mexp"), 0);
    assert_int_equal(tg_config_load_string("t.yaml", yaml, strlen(yaml), &f->cfg, errbuf, sizeof(errbuf)), 0);
    f->x = (tg_sub_ctx_t){.cfg = f->cfg, .store = f->db.st, .now_s = test_now};
    tg_customer_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.id, sizeof(c.id), "cus_a");
    snprintf(c.email, sizeof(c.email), "a@example.com");
    snprintf(c.plan_id, sizeof(c.plan_id), "metered");
    snprintf(c.status, sizeof(c.status), "active");
    c.created_at = c.anchor_at = H0 - 3600; /* monthly periods from 2026-03-01 00:00 */
    tg_err_t err = {0};
    assert_int_equal(tg_store_customer_insert(f->db.st, &c, &err), 0);
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

/* n units of api_calls by cus_a at second ts of its period starting at ps, as one batch. */
static void use(fx_t *f, int64_t ts, int64_t ps, uint64_t n)
{
    tg_usage_t u;
    memset(&u, 0, sizeof(u));
    u.event_id = ++f->batch;
    snprintf(u.customer_id, sizeof(u.customer_id), "cus_a");
    snprintf(u.key_id, sizeof(u.key_id), "key_a");
    snprintf(u.plan_id, sizeof(u.plan_id), "metered");
    snprintf(u.metric, sizeof(u.metric), "api_calls");
    snprintf(u.endpoint, sizeof(u.endpoint), "GET /v1/x");
    u.units = n;
    u.ts_ns = ts * 1000000000;
    u.period_start = ps;
    u.status = 200;
    tg_err_t err = {0};
    assert_int_equal(tg_store_usage_record(f->db.st, f->batch, &u, 1, NULL, &err), 0);
}

/* The pending outbox rows, params included, in queue order; returns how many (at most cap). */
static size_t queued(fx_t *f, tg_outbox_row_t *rows, size_t cap)
{
    size_t n = 0;
    tg_err_t err = {0};
    assert_int_equal(tg_store_outbox_due(f->db.st, INT64_MAX, rows, cap, &n, &err), 0);
    return n;
}

static void clear_rows(tg_outbox_row_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tg_outbox_row_clear(&rows[i]);
}

static void test_identifier(void **state)
{
    (void)state;
    char id[TG_METER_IDENTIFIER_MAX + 1];
    assert_int_equal(tg_meter_identifier("cus_abc", "api_calls", 1772326800, 0, id, sizeof(id)), 0);
    assert_string_equal(id, "tg_cus_abc_api_calls_1772326800_0");
    assert_int_equal(tg_meter_identifier("cus_abc", "api_calls", 1772326800, 12, id, sizeof(id)), 0);
    assert_string_equal(id, "tg_cus_abc_api_calls_1772326800_12");
    /* a 63-character metric with a 28-character customer passes Stripe's 100: the metric is
     * replaced by a stable hash */
    const char *cus = "cus_0123456789abcdef01234567";
    const char *longm = "m23456789_123456789_123456789_123456789_123456789_123456789_123";
    char again[TG_METER_IDENTIFIER_MAX + 1];
    assert_int_equal(tg_meter_identifier(cus, longm, 1772326800, 3, id, sizeof(id)), 0);
    assert_true(strlen(id) <= TG_METER_IDENTIFIER_MAX);
    assert_null(strstr(id, longm));
    assert_int_equal(strncmp(id, "tg_cus_0123456789abcdef01234567_m", 33), 0);
    assert_int_equal(tg_meter_identifier(cus, longm, 1772326800, 3, again, sizeof(again)), 0);
    assert_string_equal(id, again);
    /* a buffer too small is refused, not cut */
    char small[16];
    assert_int_equal(tg_meter_identifier("cus_abc", "api_calls", 1772326800, 0, small, sizeof(small)), TG_EINVAL);
}

static void test_late_rule(void **state)
{
    (void)state;
    int64_t end = H0 + 30 * 86400;
    /* an ended hour of an open period, recent: a meter event */
    assert_int_equal(tg_meter_is_late(H0 + 3600 + 300, H0, end), 0);
    /* 33 days is the limit (Stripe: 35) */
    assert_int_equal(tg_meter_is_late(H0 + 33 * 86400, H0, H0 + 400 * 86400), 0);
    assert_int_equal(tg_meter_is_late(H0 + 33 * 86400 + 1, H0, H0 + 400 * 86400), 1);
    /* the period ended: events until 40 minutes after (Stripe finalizes after 1 hour) */
    assert_int_equal(tg_meter_is_late(end + 40 * 60 - 1, end - 3600, end), 0);
    assert_int_equal(tg_meter_is_late(end + 40 * 60, end - 3600, end), 1);
}

static void test_period_end(void **state)
{
    (void)state;
    /* anchor 2026-01-31: the period from 2026-02-28 ends 2026-03-31 (clamped, from the anchor) */
    int64_t jan31 = INT64_C(1769817600), feb28 = INT64_C(1772236800), mar31 = INT64_C(1774915200);
    assert_int_equal(tg_meter_period_end(jan31, TG_INTERVAL_MONTH, feb28), mar31);
    /* a plan change moved the anchor past the period: it ended there */
    assert_int_equal(tg_meter_period_end(feb28 + 86400, TG_INTERVAL_MONTH, feb28), feb28 + 86400);
}

static void test_late_amount(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    int64_t cents = -1;
    const tg_plan_t *m = tg_config_find_plan(f->cfg, "metered"), *t = tg_config_find_plan(f->cfg, "tiered");
    /* 2 included, 0.25 each after: 4 late units after 1 sent = price(5) - price(1) = 0.75 */
    assert_int_equal(tg_meter_late_amount(m, "api_calls", 1, 4, &cents, &err), 0);
    assert_int_equal(cents, 75);
    /* inside the allowance: nothing */
    assert_int_equal(tg_meter_late_amount(m, "api_calls", 0, 2, &cents, &err), 0);
    assert_int_equal(cents, 0);
    /* graduated 1.00 up to 10, then 0.10: 5 late after 8 = 2 x 1.00 + 3 x 0.10 = 2.30 */
    assert_int_equal(tg_meter_late_amount(t, "tokens", 8, 5, &cents, &err), 0);
    assert_int_equal(cents, 230);
    /* ISK: whole krona in tollgate, hundredths in Stripe's API: 2 units x 3 ISK = 600 */
    assert_int_equal(tg_meter_late_amount(tg_config_find_plan(f->cfg, "krona"), "api_calls", 0, 2, &cents, &err), 0);
    assert_int_equal(cents, 600);
    /* a metric no charge prices costs nothing */
    assert_int_equal(tg_meter_late_amount(m, "images", 0, 5, &cents, &err), 0);
    assert_int_equal(cents, 0);
    assert_int_equal(tg_meter_late_amount(m, "api_calls", UINT64_MAX - 1, 5, &cents, &err), TG_ERANGE);
}

static void test_duplicate_answer(void **state)
{
    (void)state;
    assert_true(tg_meter_event_duplicate(TG_OUTBOX_KIND_METER_EVENT, 400, "duplicate_meter_event", "", "x"));
    assert_true(tg_meter_event_duplicate(TG_OUTBOX_KIND_METER_EVENT, 400, "", "identifier",
                                         "An event already exists with identifier tg_x."));
    /* other refusals of a meter event fail the row */
    assert_false(tg_meter_event_duplicate(TG_OUTBOX_KIND_METER_EVENT, 400, "timestamp_too_far_in_past", "timestamp",
                                          "Timestamp must be within the past 35 calendar days."));
    assert_false(tg_meter_event_duplicate(TG_OUTBOX_KIND_METER_EVENT, 409, "duplicate_meter_event", "", ""));
    /* and the same words on another call mean nothing */
    assert_false(tg_meter_event_duplicate(TG_OUTBOX_KIND_CUSTOMER_CREATE, 400, "duplicate_meter_event", "", ""));
}

static void test_hourly_only_while_on(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    tg_meter_bucket_t b[4];
    tg_meter_cursor_t cur;
    memset(&cur, 0, sizeof(cur));
    size_t n = 9;
    use(f, H0 + 10, H0 - 3600, 5); /* export off: period totals only */
    assert_int_equal(tg_store_usage_fold(f->db.st, 1, &err), 0);
    assert_int_equal(tg_store_meter_due(f->db.st, INT64_MAX, &cur, b, 4, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(tg_store_meter_export_set(f->db.st, 1, H0, &err), 0);
    use(f, H0 + 20, H0 - 3600, 3);
    use(f, H0 + 3599, H0 - 3600, 1);
    use(f, H0 + 3600, H0 - 3600, 2); /* the next hour */
    assert_int_equal(tg_store_usage_fold(f->db.st, 1, &err), 0);
    assert_int_equal(tg_store_meter_due(f->db.st, INT64_MAX, &cur, b, 4, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(b[0].hour_start, H0);
    assert_int_equal(b[0].ts, H0);
    assert_int_equal(b[0].units, 4);
    assert_int_equal(b[1].hour_start, H0 + 3600);
    assert_int_equal(b[1].units, 2);
    /* a batch replayed (same id) counts once here too */
    tg_usage_t u;
    memset(&u, 0, sizeof(u));
    snprintf(u.customer_id, sizeof(u.customer_id), "cus_a");
    snprintf(u.plan_id, sizeof(u.plan_id), "metered");
    snprintf(u.metric, sizeof(u.metric), "api_calls");
    u.units = 100;
    u.ts_ns = (H0 + 30) * 1000000000;
    u.period_start = H0 - 3600;
    assert_int_equal(tg_store_usage_record(f->db.st, f->batch, &u, 1, NULL, &err), 0);
    assert_int_equal(tg_store_meter_due(f->db.st, INT64_MAX, &cur, b, 4, &n, &err), 0);
    assert_int_equal(b[0].units, 4);
    /* a period that begins inside the hour starts its own bucket */
    use(f, H0 + 1900, H0 + 1800, 7);
    assert_int_equal(tg_store_usage_fold(f->db.st, 1, &err), 0);
    assert_int_equal(tg_store_meter_due(f->db.st, H0 + 1, &cur, b, 4, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(b[1].ts, H0 + 1800);
    assert_int_equal(b[1].period_start, H0 + 1800);
    assert_int_equal(b[1].units, 7);
}

static int day_cb(const char *day, const char *metric, uint64_t units, void *arg)
{
    char *out = arg;
    (void)metric;
    size_t len = strlen(out);
    snprintf(out + len, 64 - len, "%s=%llu;", day, (unsigned long long)units);
    return 0;
}

/* A journal row written by a binary from before the hour was journaled (day "YYYY-MM-DD"), left
 * unfolded by a crash, is folded by this one: its units count in the day's first hour, and the
 * daily totals keep the plain day. */
static void test_old_journal_entry(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    if (!tg_tmpstore_is_sqlite(&f->db)) { /* the usage journal is the SQLite backend's own */
        print_message("a SQLite journal entry: skipped on PostgreSQL\n");
        skip();
    }
    assert_int_equal(tg_store_meter_export_set(f->db.st, 1, H0, &err), 0);
    unsigned char blob[512], *p = blob;
    p = tg_pack_str(p, "cus_a", TG_ID_MAX);
    p = tg_pack_str(p, "metered", TG_PLAN_ID_MAX);
    p = tg_pack_str(p, "api_calls", TG_METRIC_MAX);
    p = tg_pack_str(p, "2026-03-01", 16);
    p = tg_pack_str(p, "GET /v1/x", TG_ENDPOINT_MAX);
    tg_le_put64(p, (uint64_t)(H0 - 3600));
    tg_le_put64(p + 8, 9);
    p += 16;
    char path[192];
    snprintf(path, sizeof(path), "%s/t.db", f->db.dir);
    sqlite3 *db;
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO usage_journal(batch_id, data) VALUES (77, ?)", -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_blob(s, 1, blob, (int)(p - blob), SQLITE_STATIC);
    assert_int_equal(sqlite3_step(s), SQLITE_DONE);
    sqlite3_finalize(s);
    sqlite3_close(db);
    assert_int_equal(tg_store_usage_fold(f->db.st, 1, &err), 0);
    tg_meter_bucket_t b[2];
    tg_meter_cursor_t cur;
    memset(&cur, 0, sizeof(cur));
    size_t n = 0;
    assert_int_equal(tg_store_meter_due(f->db.st, INT64_MAX, &cur, b, 2, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(b[0].hour_start, H0 - 3600);
    assert_int_equal(b[0].units, 9);
    char days[64] = "";
    assert_int_equal(tg_store_usage_daily(f->db.st, "cus_a", H0 - 3600, H0 + 86400, day_cb, days, &err), 0);
    assert_string_equal(days, "2026-03-01=9;");
}

static void test_export_pass(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    tg_meter_export_run_t run;
    tg_outbox_row_t rows[8];
    assert_int_equal(tg_store_meter_export_set(f->db.st, 1, H0, &err), 0);
    use(f, H0 + 10, H0 - 3600, 5);
    use(f, H0 + 20, H0 - 3600, 2);
    /* the hour has not ended plus the settle delay: nothing */
    now_value = H0 + 3600 + TG_METER_EXPORT_SETTLE_S - 1;
    assert_int_equal(tg_meter_export_run(&f->x, &run, &err), 0);
    assert_int_equal(run.events, 0);
    assert_int_equal(queued(f, rows, 8), 0);
    now_value = H0 + 3600 + TG_METER_EXPORT_SETTLE_S;
    assert_int_equal(tg_meter_export_run(&f->x, &run, &err), 0);
    assert_int_equal(run.events, 1);
    size_t n = queued(f, rows, 8);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].kind, TG_OUTBOX_KIND_METER_EVENT);
    assert_string_equal(rows[0].idempotency_key, "tg_meter_event.create_tg_cus_a_api_calls_1772326800_0");
    assert_string_equal(rows[0].path, "/v1/billing/meter_events");
    assert_string_equal(rows[0].params, "event_name=api_calls&payload[stripe_customer_id]=%7Bstripe_customer%7D"
                                        "&payload[value]=7&identifier=tg_cus_a_api_calls_1772326800_0"
                                        "&timestamp=1772326800");
    clear_rows(rows, n);
    /* a second pass sends nothing again */
    assert_int_equal(tg_meter_export_run(&f->x, &run, &err), 0);
    assert_int_equal(run.events + run.items, 0);
    assert_int_equal(queued(f, rows, 8), 1);
    clear_rows(rows, 1);
    /* units arriving later for the sent hour: seq 1 with only them */
    use(f, H0 + 30, H0 - 3600, 3);
    assert_int_equal(tg_meter_export_run(&f->x, &run, &err), 0);
    assert_int_equal(run.events, 1);
    n = queued(f, rows, 8);
    assert_int_equal(n, 2);
    assert_string_equal(rows[1].idempotency_key, "tg_meter_event.create_tg_cus_a_api_calls_1772326800_1");
    assert_non_null(strstr(rows[1].params, "&payload[value]=3&identifier=tg_cus_a_api_calls_1772326800_1&"));
    clear_rows(rows, n);
    /* then the period is over and invoiced: 6 more units of hour H0 go as an invoice item priced
     * after the 10 sent: price(16) - price(10) = 6 x 0.25 = 1.50 */
    use(f, H0 + 40, H0 - 3600, 6);
    now_value = H0 - 3600 + 31 * 86400 + TG_METER_EXPORT_GRACE_S;
    assert_int_equal(tg_meter_export_run(&f->x, &run, &err), 0);
    assert_int_equal(run.events, 0);
    assert_int_equal(run.items, 1);
    n = queued(f, rows, 8);
    assert_int_equal(n, 3);
    assert_string_equal(rows[2].kind, TG_OUTBOX_KIND_LATE_USAGE);
    assert_string_equal(rows[2].path, "/v1/invoiceitems");
    assert_string_equal(rows[2].idempotency_key, "tg_late_usage.item_tg_cus_a_api_calls_1772326800_2");
    assert_non_null(strstr(rows[2].params, "customer=%7Bstripe_customer%7D&amount=150&currency=usd&"));
    assert_non_null(strstr(rows[2].params, "&metadata[tollgate_units]=6&"));
    clear_rows(rows, n);
    assert_int_equal(tg_meter_export_run(&f->x, &run, &err), 0);
    assert_int_equal(run.events + run.items, 0);
}

/* An event Stripe refused for its timestamp (the outbox was stuck past 35 days) counted nothing:
 * once its hour is past 33 days its units go as late usage, and its row can no longer be sent. */
static void test_refused_event_taken_back(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    tg_meter_export_run_t run;
    tg_outbox_row_t rows[4];
    assert_int_equal(tg_store_meter_export_set(f->db.st, 1, H0, &err), 0);
    use(f, H0 + 10, H0 - 3600, 5);
    now_value = H0 + 3600 + TG_METER_EXPORT_SETTLE_S;
    assert_int_equal(tg_meter_export_run(&f->x, &run, &err), 0);
    assert_int_equal(run.events, 1);
    size_t n = queued(f, rows, 4);
    assert_int_equal(n, 1);
    int64_t id = rows[0].id;
    clear_rows(rows, n);
    assert_int_equal(
        tg_store_outbox_fail(f->db.st, id,
                             "Stripe 400 invalid_request_error/timestamp_too_far_in_past: Timestamp must be "
                             "within the past 35 calendar days.",
                             now_value, &err),
        0);
    /* not yet past 33 days: it stays failed */
    now_value = H0 + 20 * 86400;
    assert_int_equal(tg_meter_export_run(&f->x, &run, &err), 0);
    assert_int_equal(run.events + run.items, 0);
    tg_outbox_row_t r;
    assert_int_equal(tg_store_outbox_get(f->db.st, id, &r, &err), 0);
    assert_string_equal(r.state, "failed");
    /* past 33 days: taken back, and 5 units after 0 sent = 3 x 0.25 */
    now_value = H0 + 36 * 86400;
    assert_int_equal(tg_meter_export_run(&f->x, &run, &err), 0);
    assert_int_equal(run.items, 1);
    assert_int_equal(tg_store_outbox_get(f->db.st, id, &r, &err), 0);
    assert_string_equal(r.state, "done");
    assert_string_equal(r.response_id, "sent again as late usage");
    assert_int_equal(tg_store_outbox_requeue(f->db.st, id, now_value * 1000, &err), TG_ESTATE);
    n = queued(f, rows, 4);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].kind, TG_OUTBOX_KIND_LATE_USAGE);
    assert_non_null(strstr(rows[0].params, "&amount=75&"));
    assert_non_null(strstr(rows[0].params, "&metadata[tollgate_units]=5&"));
    clear_rows(rows, n);
    assert_int_equal(tg_meter_export_run(&f->x, &run, &err), 0);
    assert_int_equal(run.events + run.items, 0);
}

static void test_unknown_customer_does_not_block(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    tg_meter_export_run_t run;
    tg_outbox_row_t rows[4];
    assert_int_equal(tg_store_meter_export_set(f->db.st, 1, H0, &err), 0);
    tg_usage_t u;
    memset(&u, 0, sizeof(u));
    snprintf(u.customer_id, sizeof(u.customer_id), "cus_0gone"); /* sorts before cus_a */
    snprintf(u.plan_id, sizeof(u.plan_id), "metered");
    snprintf(u.metric, sizeof(u.metric), "api_calls");
    u.units = 4;
    u.ts_ns = (H0 + 5) * 1000000000;
    u.period_start = H0 - 3600;
    assert_int_equal(tg_store_usage_record(f->db.st, ++f->batch, &u, 1, NULL, &err), 0);
    use(f, H0 + 10, H0 - 3600, 5);
    now_value = H0 + 3600 + TG_METER_EXPORT_SETTLE_S;
    assert_int_equal(tg_meter_export_run(&f->x, &run, &err), 0);
    assert_int_equal(run.events, 1);
    assert_int_equal(run.skipped, 1);
    assert_non_null(strstr(run.first_skip, "cus_0gone"));
    size_t n = queued(f, rows, 4);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].customer_id, "cus_a");
    clear_rows(rows, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identifier),
        cmocka_unit_test(test_late_rule),
        cmocka_unit_test(test_period_end),
        cmocka_unit_test_setup_teardown(test_late_amount, setup, teardown),
        cmocka_unit_test(test_duplicate_answer),
        cmocka_unit_test_setup_teardown(test_hourly_only_while_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_journal_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_export_pass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_event_taken_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_customer_does_not_block, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
