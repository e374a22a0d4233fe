/* test_invoice_close_batch.c - the period closer's batch (store.h, tg_store_invoice_close_batch)
 * on SQLite and, with TG_TEST_BACKEND=postgres, on PostgreSQL (where a batch is a few set-based
 * statements over arrays: store_pg_close.c):
 * - each customer's unbilled usage up to its period (summed over periods) and its items before
 *   the period's end are billed once, its schedule moves, its billing failure goes; customer ids
 *   and bodies with quotes, commas, backslashes, braces, spaces and "NULL" come back as they
 *   went (the array literals quote every element);
 * - the same batch again makes nothing and bills nothing twice; the next period bills only its
 *   own usage;
 * - an entry whose build fails leaves nothing behind and the others are made;
 * - an invoice made by someone else while a batch is being built (PostgreSQL: several writers)
 *   is kept, and the batch, tried again, makes the others once;
 * - a process killed in the middle of a batch (transaction open, nothing committed) leaves
 *   nothing, and the batch run again makes every invoice once, with all the usage;
 * - with the billing code's build: a period without usage bills its plan's minimum, and late
 *   usage of such a period is priced on top of that minimum (of one made before that rule: not). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "billing/invoice.h"
#include "config/config.h"
#include "store/store.h"
#include "../support/tmpstore.h"

#define DEC1_2025 INT64_C(1764547200)
#define JAN1_2026 INT64_C(1767225600)
#define FEB1_2026 INT64_C(1769904000)
#define MAR1_2026 INT64_C(1772323200)

/* Ids the array literals must carry intact (no single quote: the test's SQL quotes with it). */
static const char *const ids[] = {"cus_q\"uote", "cus_co,mma", "cus_back\\slash", "cus_{brace}", "NULL", "cus sp ace"};
#define NIDS (sizeof(ids) / sizeof(ids[0]))
/* A body with the same characters: it comes back byte for byte. */
static const char body[] = "{\"note\":\"a \\\"q\\\", b\\\\c {x} NULL\"}";

/* What build saw for an entry, and whether it fails (an injected TG_ERANGE). */
typedef struct {
    int fail;
    const tg_tmpstore_t *race; /* non-NULL: its first build inserts race_sql's invoice meanwhile */
    const char *race_sql;
    int calls;
    uint64_t units;
    uint64_t late_units, late_invoiced; /* rows of periods before the invoice's (late usage) */
    int64_t late_period;                /* the last such row's period */
    int ordered;                        /* rows came in (period, plan, metric) order, one per key */
    size_t nzero;                       /* rows with nothing unbilled (a late period's other metrics) */
    uint64_t zero_invoiced;             /* their invoiced units */
    char zero_key[80];                  /* the last one's "plan/metric" */
    size_t nitems;
    int64_t item_amount;
} seen_t;

/* Whether a comes strictly before b in (period, plan, metric) byte order: store.h's order. */
static int row_before(const tg_unbilled_t *a, const tg_unbilled_t *b)
{
    if (a->period_start != b->period_start)
        return a->period_start < b->period_start;
    int c = strcmp(a->plan_id, b->plan_id);
    return c != 0 ? c < 0 : strcmp(a->metric, b->metric) < 0;
}

static int build_sum(const tg_unbilled_t *rows, size_t n, const tg_invoice_item_t *items, size_t nitems,
                     tg_invoice_t *inv, void *arg, tg_err_t *err)
{
    seen_t *s = arg;
    if (s->race != NULL && s->calls == 0) /* another node, on its own connection, commits first */
        assert_int_equal(tg_tmpstore_exec(s->race, s->race_sql), 0);
    s->calls++;
    s->units = s->late_units = s->late_invoiced = 0;
    s->late_period = 0;
    s->ordered = 1;
    s->nzero = 0;
    s->zero_invoiced = 0;
    for (size_t i = 0; i < n; i++) {
        s->units += rows[i].units;
        if (rows[i].units == 0) {
            s->nzero++;
            s->zero_invoiced += rows[i].invoiced;
            snprintf(s->zero_key, sizeof(s->zero_key), "%s/%s", rows[i].plan_id, rows[i].metric);
        }
        if (rows[i].period_start < inv->period_start) {
            s->late_units += rows[i].units;
            s->late_invoiced += rows[i].invoiced;
            s->late_period = rows[i].period_start;
        }
        if (i > 0 && !row_before(&rows[i - 1], &rows[i]))
            s->ordered = 0;
    }
    s->nitems = nitems;
    s->item_amount = 0;
    for (size_t i = 0; i < nitems; i++)
        s->item_amount += items[i].amount;
    if (s->fail)
        return tg_errf(err, TG_ERANGE, "injected: the invoice overflows the money range");
    inv->total = (int64_t)s->units * 1000 + s->item_amount;
    snprintf(inv->currency, sizeof(inv->currency), "usd");
    inv->body = strdup(body);
    return inv->body != NULL ? 0 : tg_errf(err, TG_ENOMEM, "out of memory");
}

static int setup(void **state)
{
    tg_tmpstore_t *t = calloc(1, sizeof(*t));
    assert_int_equal(tg_tmpstore_open(t, "cbatch"), 0);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    tg_tmpstore_t *t = *state;
    assert_int_equal(tg_tmpstore_close(t), 0);
    free(t);
    return 0;
}

static void exec_sql(tg_tmpstore_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void exec_sql(tg_tmpstore_t *t, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    assert_true(len > 0 && (size_t)len < sizeof(sql));
    assert_int_equal(tg_tmpstore_exec(t, sql), 0);
}

/* Customer i of ids (anchored on January 1st, due February 1st) with usage in December, January
 * (both on its January invoice) and February, and an item before and one after February 1st. */
static void add_customer(tg_tmpstore_t *t, size_t i)
{
    tg_customer_t c = {0};
    tg_err_t err = {0};
    snprintf(c.id, sizeof(c.id), "%s", ids[i]);
    snprintf(c.email, sizeof(c.email), "c%zu@b.co", i);
    snprintf(c.plan_id, sizeof(c.plan_id), "starter");
    snprintf(c.status, sizeof(c.status), "active");
    c.created_at = c.anchor_at = JAN1_2026;
    assert_int_equal(tg_store_customer_insert(t->st, &c, &err), 0);
    assert_int_equal(tg_store_customer_set_next_period_end(t->st, ids[i], 0, FEB1_2026, &err), 0);
    exec_sql(t,
             "INSERT INTO usage_period(customer_id, period_start, plan_id, metric, units) VALUES"
             " ('%s', %lld, 'starter', 'api_calls', 5), ('%s', %lld, 'starter', 'api_calls', %zu),"
             " ('%s', %lld, 'starter', 'api_calls', 1000)",
             ids[i], (long long)DEC1_2025, ids[i], (long long)JAN1_2026, 10 + i, ids[i], (long long)FEB1_2026);
    tg_invoice_item_t it = {0};
    snprintf(it.customer_id, sizeof(it.customer_id), "%s", ids[i]);
    snprintf(it.description, sizeof(it.description), "setup, \"one\" \\ off");
    snprintf(it.currency, sizeof(it.currency), "usd");
    it.amount = 7;
    it.created_at = JAN1_2026 + 86400;
    assert_int_equal(tg_store_invoice_item_add(t->st, &it, &err), 0);
    it.amount = 100;
    it.created_at = FEB1_2026 + 86400; /* on February's invoice */
    assert_int_equal(tg_store_invoice_item_add(t->st, &it, &err), 0);
}

/* Entries for customers [0, n) for the period [ps, pe), each with seen[i] as its build arg. */
static void entries(tg_invoice_close_t *e, seen_t *seen, size_t n, int64_t ps, int64_t pe, const char *tag)
{
    memset(e, 0, n * sizeof(*e));
    for (size_t i = 0; i < n; i++) {
        snprintf(e[i].draft.id, sizeof(e[i].draft.id), "inv_%s_%zu", tag, i);
        snprintf(e[i].draft.customer_id, sizeof(e[i].draft.customer_id), "%s", ids[i]);
        e[i].draft.period_start = ps;
        e[i].draft.period_end = pe;
        e[i].draft.created_at = pe;
        e[i].build_arg = &seen[i];
        e[i].next_expected = pe;
        e[i].next_end = pe == FEB1_2026 ? MAR1_2026 : pe + 31 * 86400;
    }
}

static void free_bodies(tg_invoice_close_t *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].draft.body);
        e[i].draft.body = NULL;
    }
}

typedef struct {
    int n;
    int64_t total;
} sum_t;

static int sum_cb(const tg_invoice_t *inv, void *arg)
{
    sum_t *s = arg;
    s->n++;
    s->total += inv->total;
    return 0;
}

static sum_t invoices_of(tg_tmpstore_t *t, const char *customer_id)
{
    sum_t s = {0, 0};
    tg_err_t err = {0};
    assert_int_equal(tg_store_invoice_list(t->st, customer_id, sum_cb, &s, &err), 0);
    return s;
}

typedef struct {
    const char *id;
    int64_t end;
} find_t;

static int find_cb(const tg_customer_t *c, int64_t next_end, void *arg)
{
    find_t *q = arg;
    if (strcmp(c->id, q->id) == 0)
        q->end = next_end;
    return 0;
}

static int64_t next_end(tg_tmpstore_t *t, const char *id)
{
    find_t q = {id, -1};
    tg_err_t err = {0};
    assert_int_equal(tg_store_customers_due(t->st, INT64_MAX, INT64_MIN, "", 1000, find_cb, &q, NULL, &err), 0);
    return q.end;
}

static void test_batch_bills_each_once(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_err_t err = {0};
    tg_invoice_close_t e[NIDS];
    seen_t seen[NIDS];
    uint64_t failures = 0;
    for (size_t i = 0; i < NIDS; i++)
        add_customer(t, i);
    assert_int_equal(tg_store_billing_failure_set(t->st, ids[1], "invoice_failed", "earlier", FEB1_2026, &err), 0);

    memset(seen, 0, sizeof(seen));
    entries(e, seen, NIDS, JAN1_2026, FEB1_2026, "jan");
    assert_int_equal(tg_store_invoice_close_batch(t->st, e, NIDS, build_sum, &err), 0);
    for (size_t i = 0; i < NIDS; i++) {
        assert_int_equal(e[i].rc, 0);
        assert_int_equal(e[i].created, 1);
        assert_int_equal(seen[i].units, 15 + i); /* December and January, not February */
        assert_true(seen[i].ordered);
        assert_int_equal(seen[i].late_units, 5); /* December's row apart, nothing of it billed before */
        assert_int_equal(seen[i].late_invoiced, 0);
        assert_int_equal(seen[i].late_period, DEC1_2025);
        assert_int_equal(seen[i].nitems, 1); /* the item before February 1st */
        assert_int_equal(seen[i].item_amount, 7);
        sum_t s = invoices_of(t, ids[i]);
        assert_int_equal(s.n, 1);
        assert_int_equal(s.total, (int64_t)(15 + i) * 1000 + 7);
        tg_invoice_t inv = {0};
        assert_int_equal(tg_store_invoice_get(t->st, e[i].draft.id, &inv, &err), 0);
        assert_string_equal(inv.customer_id, ids[i]);
        assert_string_equal(inv.body, body);
        assert_string_equal(inv.status, "draft");
        tg_invoice_clear(&inv);
        assert_int_equal(next_end(t, ids[i]), MAR1_2026);
    }
    free_bodies(e, NIDS);
    assert_int_equal(tg_store_billing_failure_count(t->st, &failures, &err), 0);
    assert_int_equal(failures, 0);

    /* again (a rerun, another node): nothing made, nothing billed twice */
    memset(seen, 0, sizeof(seen));
    entries(e, seen, NIDS, JAN1_2026, FEB1_2026, "again");
    assert_int_equal(tg_store_invoice_close_batch(t->st, e, NIDS, build_sum, &err), 0);
    for (size_t i = 0; i < NIDS; i++) {
        assert_int_equal(e[i].rc, 0);
        assert_int_equal(e[i].created, 0);
        sum_t s = invoices_of(t, ids[i]);
        assert_int_equal(s.n, 1);
        assert_int_equal(s.total, (int64_t)(15 + i) * 1000 + 7);
        assert_int_equal(next_end(t, ids[i]), MAR1_2026);
    }
    free_bodies(e, NIDS);

    /* February bills February's usage and item, and January's late usage apart with what
     * January billed of it (issue 16) */
    exec_sql(t, "UPDATE usage_period SET units = units + 3 WHERE period_start = %lld", (long long)JAN1_2026);
    memset(seen, 0, sizeof(seen));
    entries(e, seen, NIDS, FEB1_2026, MAR1_2026, "feb");
    for (size_t i = 0; i < NIDS; i++)
        e[i].next_expected = MAR1_2026;
    assert_int_equal(tg_store_invoice_close_batch(t->st, e, NIDS, build_sum, &err), 0);
    for (size_t i = 0; i < NIDS; i++) {
        assert_int_equal(e[i].created, 1);
        assert_int_equal(seen[i].units, 1003);
        assert_true(seen[i].ordered);
        assert_int_equal(seen[i].late_units, 3);
        assert_int_equal(seen[i].late_invoiced, 10 + i);
        assert_int_equal(seen[i].late_period, JAN1_2026);
        assert_int_equal(seen[i].item_amount, 100);
        assert_int_equal(invoices_of(t, ids[i]).n, 2);
    }
    free_bodies(e, NIDS);
}

/* A late period's (period, plan) with late units comes with its other metrics too, billed
 * already and with nothing new (units 0, their invoiced units), so that the late lines can be
 * priced on top of the whole period (its minimum and cap); a (period, plan) without late units
 * does not come. Both backends' batch statements. */
static void test_batch_late_group_rows(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_invoice_close_t e[2];
    seen_t seen[2];
    tg_err_t err = {0};
    add_customer(t, 0);
    add_customer(t, 1);
    exec_sql(t,
             "INSERT INTO usage_period(customer_id, period_start, plan_id, metric, units, invoiced_units) VALUES"
             " ('%s', %lld, 'starter', 'images', 4, 4), ('%s', %lld, 'pro', 'images', 6, 6)",
             ids[0], (long long)DEC1_2025, ids[1], (long long)DEC1_2025);
    memset(seen, 0, sizeof(seen));
    entries(e, seen, 2, JAN1_2026, FEB1_2026, "jan");
    assert_int_equal(tg_store_invoice_close_batch(t->st, e, 2, build_sum, &err), 0);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(e[i].rc, 0);
        assert_int_equal(e[i].created, 1);
        assert_true(seen[i].ordered);
        assert_int_equal(seen[i].late_units, 5);
        assert_int_equal(seen[i].units, 15 + i);
    }
    /* customer 0: December's starter images, billed before, beside its late api_calls */
    assert_int_equal(seen[0].nzero, 1);
    assert_int_equal(seen[0].zero_invoiced, 4);
    assert_string_equal(seen[0].zero_key, "starter/images");
    assert_int_equal(seen[0].late_invoiced, 4);
    /* customer 1: December under pro has nothing late: not handed over */
    assert_int_equal(seen[1].nzero, 0);
    assert_int_equal(seen[1].late_invoiced, 0);
    free_bodies(e, 2);
}

static void test_failing_entry_leaves_nothing(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_err_t err = {0};
    tg_invoice_close_t e[3];
    seen_t seen[3];
    uint64_t failures = 0;
    for (size_t i = 0; i < 3; i++)
        add_customer(t, i);
    assert_int_equal(tg_store_billing_failure_set(t->st, ids[1], "invoice_failed", "earlier", FEB1_2026, &err), 0);
    memset(seen, 0, sizeof(seen));
    seen[1].fail = 1;
    entries(e, seen, 3, JAN1_2026, FEB1_2026, "jan");
    assert_int_equal(tg_store_invoice_close_batch(t->st, e, 3, build_sum, &err), 0);
    assert_int_equal(e[0].created, 1);
    assert_int_equal(e[2].created, 1);
    assert_int_equal(e[1].rc, TG_ERANGE);
    assert_int_equal(e[1].created, 0);
    assert_non_null(strstr(e[1].err.msg, "injected"));
    assert_int_equal(invoices_of(t, ids[1]).n, 0);
    assert_int_equal(next_end(t, ids[1]), FEB1_2026); /* still due */
    assert_int_equal(next_end(t, ids[0]), MAR1_2026);
    assert_int_equal(tg_store_billing_failure_count(t->st, &failures, &err), 0);
    assert_int_equal(failures, 1); /* kept: the caller lists it again */
    free_bodies(e, 3);

    /* its usage and item were given back: the next try bills them */
    memset(seen, 0, sizeof(seen));
    entries(e, seen, 2, JAN1_2026, FEB1_2026, "retry");
    assert_int_equal(tg_store_invoice_close_batch(t->st, e + 1, 1, build_sum, &err), 0);
    assert_int_equal(e[1].created, 1);
    assert_int_equal(seen[1].units, 16);
    assert_int_equal(seen[1].item_amount, 7);
    assert_int_equal(invoices_of(t, ids[1]).total, 16 * 1000 + 7);
    assert_int_equal(tg_store_billing_failure_count(t->st, &failures, &err), 0);
    assert_int_equal(failures, 0);
    free_bodies(e, 3);
}

/* The child: its own connection, a batch transaction with every invoice written, then killed
 * before the commit. Exits 1 (a failure the parent sees) if it could not get that far. */
static void killed_mid_batch(const char *url)
{
    tg_store_t *st = NULL;
    tg_err_t err = {0};
    tg_invoice_close_t e[NIDS];
    seen_t seen[NIDS];
    memset(seen, 0, sizeof(seen));
    entries(e, seen, NIDS, JAN1_2026, FEB1_2026, "killed");
    if (tg_store_open(url, &st, &err) != 0 || tg_store_tx_begin(st, &err) != 0 ||
        tg_store_invoice_close_batch(st, e, NIDS, build_sum, &err) != 0)
        _exit(1);
    for (size_t i = 0; i < NIDS; i++)
        if (e[i].created != 1)
            _exit(1);
    raise(SIGKILL);
    _exit(1);
}

static void test_killed_mid_batch_leaves_nothing(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_err_t err = {0};
    tg_invoice_close_t e[NIDS];
    seen_t seen[NIDS];
    for (size_t i = 0; i < NIDS; i++)
        add_customer(t, i);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        killed_mid_batch(t->url);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    for (size_t i = 0; i < NIDS; i++) {
        assert_int_equal(invoices_of(t, ids[i]).n, 0);
        assert_int_equal(next_end(t, ids[i]), FEB1_2026);
    }
    /* the run again: every invoice once, with all its usage and its item */
    memset(seen, 0, sizeof(seen));
    entries(e, seen, NIDS, JAN1_2026, FEB1_2026, "rerun");
    assert_int_equal(tg_store_tx_begin(t->st, &err), 0);
    assert_int_equal(tg_store_invoice_close_batch(t->st, e, NIDS, build_sum, &err), 0);
    assert_int_equal(tg_store_tx_commit(t->st, &err), 0);
    for (size_t i = 0; i < NIDS; i++) {
        assert_int_equal(e[i].created, 1);
        assert_int_equal(seen[i].units, 15 + i);
        sum_t s = invoices_of(t, ids[i]);
        assert_int_equal(s.n, 1);
        assert_int_equal(s.total, (int64_t)(15 + i) * 1000 + 7);
        assert_int_equal(next_end(t, ids[i]), MAR1_2026);
    }
    free_bodies(e, NIDS);
}

/* PostgreSQL only (SQLite has one writer: nobody can insert while a batch holds the lock): a
 * node inserts the invoice of one of the batch's customers after the batch looked for existing
 * ones and before it inserts its own. The batch's insert meets the unique (customer_id,
 * period_start), tries again, finds that invoice and makes the others once. */
static void test_invoice_made_meanwhile_is_kept(void **state)
{
    tg_tmpstore_t *t = *state;
    if (tg_tmpstore_is_sqlite(t))
        skip();
    tg_err_t err = {0};
    tg_invoice_close_t e[3];
    seen_t seen[3];
    char sql[512];
    for (size_t i = 0; i < 3; i++)
        add_customer(t, i);
    snprintf(sql, sizeof(sql),
             "INSERT INTO invoices(id, customer_id, period_start, period_end, status, currency, total, body,"
             " created_at) VALUES ('inv_other', '%s', %lld, %lld, 'draft', 'usd', 1, '{}', %lld)",
             ids[1], (long long)JAN1_2026, (long long)FEB1_2026, (long long)FEB1_2026);
    memset(seen, 0, sizeof(seen));
    seen[0].race = t;
    seen[0].race_sql = sql;
    entries(e, seen, 3, JAN1_2026, FEB1_2026, "race");
    assert_int_equal(tg_store_invoice_close_batch(t->st, e, 3, build_sum, &err), 0);
    assert_int_equal(e[0].created, 1);
    assert_int_equal(e[1].created, 0); /* theirs */
    assert_int_equal(e[1].rc, 0);
    assert_int_equal(e[2].created, 1);
    assert_int_equal(seen[0].calls, 2);  /* built, rolled back, built again */
    assert_int_equal(seen[0].units, 15); /* all of it on the second try: the first try's marks went back */
    sum_t s = invoices_of(t, ids[1]);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.total, 1);
    assert_int_equal(next_end(t, ids[1]), MAR1_2026); /* done for now: its invoice exists */
    assert_int_equal(invoices_of(t, ids[0]).n, 1);
    assert_int_equal(invoices_of(t, ids[2]).n, 1);
    free_bodies(e, 3);
}

/* The batch with the billing code's build (tg_invoice_on_build), as the period closer runs it. */
static const char minimum_yaml[] =
    "upstream: {url: \"http://127.0.0.1:3\"}\n"
    "admin: {token: \"0123456789abcdef0123\"}\n"
    "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"
    "plans:\n"
    "  committed: {price: \"10\", minimum: \"100\", charges: [{metric: api_calls, model: per_unit, unit_price: \"1\"}]}\n";

/* Customer id on committed, anchored on January 1st, due February 1st, into *c. */
static void add_committed(tg_tmpstore_t *t, const char *id, tg_customer_t *c)
{
    tg_err_t err = {0};
    memset(c, 0, sizeof(*c));
    snprintf(c->id, sizeof(c->id), "%s", id);
    snprintf(c->email, sizeof(c->email), "%s@b.co", id);
    snprintf(c->plan_id, sizeof(c->plan_id), "committed");
    snprintf(c->status, sizeof(c->status), "active");
    c->created_at = c->anchor_at = JAN1_2026;
    assert_int_equal(tg_store_customer_insert(t->st, c, &err), 0);
    assert_int_equal(tg_store_customer_set_next_period_end(t->st, id, 0, FEB1_2026, &err), 0);
}

/* Closes [ps, pe) for customers c[0..n) in one batch with the billing code's build; every entry
 * is made. */
static void close_real(tg_tmpstore_t *t, const tg_config_t *cfg, const tg_customer_t *c, size_t n, int64_t ps,
                       int64_t pe, tg_invoice_close_t *e)
{
    tg_invoice_build_arg_t args[4];
    tg_err_t err = {0};
    assert_true(n <= 4);
    memset(e, 0, n * sizeof(*e));
    for (size_t i = 0; i < n; i++) {
        args[i] = (tg_invoice_build_arg_t){cfg, &c[i]};
        snprintf(e[i].draft.id, sizeof(e[i].draft.id), "inv_%s_%lld", c[i].id, (long long)ps);
        snprintf(e[i].draft.customer_id, sizeof(e[i].draft.customer_id), "%s", c[i].id);
        e[i].draft.period_start = ps;
        e[i].draft.period_end = e[i].draft.created_at = pe;
        e[i].build_arg = &args[i];
        e[i].next_expected = pe;
        e[i].next_end = pe == FEB1_2026 ? MAR1_2026 : pe + 31 * 86400;
    }
    assert_int_equal(tg_store_invoice_close_batch(t->st, e, n, tg_invoice_on_build, &err), 0);
    for (size_t i = 0; i < n; i++) {
        if (e[i].rc != 0)
            fail_msg("%s: %s", c[i].id, e[i].err.msg);
        assert_int_equal(e[i].created, 1);
    }
}

/* The amount of the line of kind `kind` in invoice's body (the first one), or "(none)". */
static const char *line_amount(json_t *invoice, const char *kind)
{
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(invoice, "lines"), i, l)
    {
        const char *k = json_string_value(json_object_get(l, "kind"));
        const char *amount = json_string_value(json_object_get(l, "amount"));
        if (k != NULL && strcmp(k, kind) == 0)
            return amount != NULL ? amount : "(no amount)";
    }
    return "(none)";
}

/* A period without usage bills its plan's minimum ($10 base fee and $100 top-up); 40 late calls
 * of it ($40) are inside that minimum and cost nothing. A January invoiced before this rule (its
 * body without a minimum line) billed none, and its 40 late calls pay the whole quote, $100. */
static void test_batch_zero_usage_minimum(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_config_t *cfg = NULL;
    char errbuf[2048];
    assert_int_equal(tg_config_load_string("t.yaml", minimum_yaml, strlen(minimum_yaml), &cfg, errbuf, sizeof(errbuf)),
                     0);
    tg_customer_t c[2];
    tg_invoice_close_t e[2];
    add_committed(t, "cus_new", &c[0]);
    add_committed(t, "cus_old", &c[1]);
    close_real(t, cfg, c, 1, JAN1_2026, FEB1_2026, e);
    json_t *b = json_loads(e[0].draft.body, 0, NULL);
    assert_string_equal(line_amount(b, "minimum"), "100.00");
    assert_string_equal(json_string_value(json_object_get(b, "total")), "110.00");
    json_decref(b);
    free_bodies(e, 1);
    exec_sql(t,
             "INSERT INTO invoices(id, customer_id, period_start, period_end, status, currency, total, body,"
             " created_at) VALUES ('inv_old', 'cus_old', %lld, %lld, 'open', 'usd', 10000000000,"
             " '{\"plan\":\"committed\",\"lines\":[{\"kind\":\"base_fee\",\"plan\":\"committed\","
             "\"metric\":null,\"quantity\":1,\"amount\":\"10.00\"}],\"total\":\"10.00\"}', %lld)",
             (long long)JAN1_2026, (long long)FEB1_2026, (long long)FEB1_2026);
    exec_sql(t,
             "INSERT INTO usage_period(customer_id, period_start, plan_id, metric, units) VALUES"
             " ('cus_new', %lld, 'committed', 'api_calls', 40), ('cus_old', %lld, 'committed', 'api_calls', 40)",
             (long long)JAN1_2026, (long long)JAN1_2026);
    close_real(t, cfg, c, 2, FEB1_2026, MAR1_2026, e);
    const char *want_late[] = {"0.00", "100.00"}, *want_total[] = {"110.00", "210.00"};
    for (size_t i = 0; i < 2; i++) {
        b = json_loads(e[i].draft.body, 0, NULL);
        assert_string_equal(line_amount(b, "minimum"), "100.00"); /* February's own, without usage */
        assert_string_equal(line_amount(b, "late_usage"), want_late[i]);
        assert_string_equal(json_string_value(json_object_get(b, "total")), want_total[i]);
        json_decref(b);
    }
    free_bodies(e, 2);
    tg_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batch_bills_each_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_late_group_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_zero_usage_minimum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_entry_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invoice_made_meanwhile_is_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_mid_batch_leaves_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
