/* store_pg_close.c - the period closer's batch in PostgreSQL (store.h, tg_store_invoice_close_batch):
 * a batch of customers' invoices with a few set-based statements instead of about seven round
 * trips per customer.
 *
 * Why: closing 1,000,000 customers one at a time (tg_pg_invoice_create, then the schedule and
 * the billing failure) took 1,535 s, about 450 us of round trips per customer (savepoint, usage,
 * items, insert, release, schedule, failure), with PostgreSQL itself mostly idle. Here a batch of
 * N customers takes, whatever N:
 *   1. one SELECT of the invoices that exist already for the batch's (customer, period): those
 *      customers are done (created 0) and nothing of theirs is read or marked;
 *   2. one UPDATE marking all the others' unbilled usage invoiced, returning what it marked;
 *   3. one UPDATE attaching their pending items to their drafts, returning them;
 *   (the C pricing code builds each invoice from what 2 and 3 returned: build)
 *   4. one UPDATE moving the next period ends (compare and set), one DELETE of billing failures;
 *   5. one INSERT of all the drafts built;
 *   6. only when an entry's build failed: one UPDATE giving its usage marks back and one giving
 *      its items back (what a savepoint rollback did per customer).
 * The batch is passed as arrays (tg_pg_array_t: every element quoted) joined with unnest, and the
 * whole batch is one savepoint: a crash or an error leaves nothing of it (the customers stay due
 * and the next run closes them again, once: the unique (customer_id, period_start) holds).
 *
 * The INSERT has no ON CONFLICT: statement 1 is the look, and the arbiter's speculative insertion
 * cost about 15% of the server's time of a close (bench/invoices.sh, 100,000 customers: 6.7 s of
 * PostgreSQL CPU with it, 5.7 s without). An invoice inserted by someone else between 1 and 5
 * (another node, a single customer's close through the admin API) makes 5 fail with a unique
 * violation: the batch's savepoint is rolled back and the batch starts again, and 1 then finds
 * that invoice (a few tries at most: each retry means someone else made progress).
 *
 * The same guarantees as tg_pg_invoice_create otherwise: the usage rows are locked (FOR UPDATE,
 * in key order) and marked by the statement that reads them, so a usage batch committed
 * meanwhile is wholly on an invoice or wholly left for the next. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_pg_int.h"

/* A usage row the batch marked: whose (entry i), which row, and what it held before. */
typedef struct {
    size_t i;
    int64_t period_start;
    char plan_id[TG_PLAN_ID_MAX];
    char metric[TG_METRIC_MAX];
    uint64_t units; /* billed now */
    int64_t before; /* invoiced_units before the mark */
    int quoted;     /* tg_unbilled_t.quoted */
} marked_t;

typedef struct {
    size_t i;
    tg_invoice_item_t item;
} marked_item_t;

static int cmp_marked(const void *a, const void *b)
{
    const marked_t *x = a, *y = b;
    if (x->i != y->i)
        return x->i < y->i ? -1 : 1;
    if (x->period_start != y->period_start)
        return x->period_start < y->period_start ? -1 : 1;
    int c = strcmp(x->plan_id, y->plan_id);
    return c != 0 ? c : strcmp(x->metric, y->metric);
}

static int cmp_marked_item(const void *a, const void *b)
{
    const marked_item_t *x = a, *y = b;
    if (x->i != y->i)
        return x->i < y->i ? -1 : 1;
    return (x->item.id > y->item.id) - (x->item.id < y->item.id);
}

/* Statement 2: marks every unbilled usage row of every active entry's customer up to its period
 * start and returns it, with the entry's ordinal (1-based) and the row's invoiced units before;
 * with, for an earlier period and plan that has late units, its other metrics' rows too (units
 * 0: marking them changes nothing), for the late lines' pricing (tg_invoice_build_cb), and
 * whether a late row's period billed its plan's minimum with nothing invoiced (quoted). */
static const char mark_usage_sql[] =
    "UPDATE usage_period u SET invoiced_units = u.units FROM (SELECT up.customer_id, up.period_start, up.metric,"
    " up.plan_id, up.invoiced_units AS before, d.i, " TG_PG_LATE_QUOTED("up", "d.ps", "up.customer_id") " AS quoted"
    " FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS d(cid, ps, i)"
    " JOIN usage_period up ON up.customer_id = d.cid AND up.period_start <= d.ps WHERE (up.units > up.invoiced_units"
    " OR (up.period_start < d.ps AND EXISTS (SELECT 1 FROM usage_period w WHERE w.customer_id = up.customer_id"
    " AND w.period_start = up.period_start AND w.plan_id = up.plan_id AND w.units > w.invoiced_units)))"
    " ORDER BY up.customer_id, up.period_start, up.metric, up.plan_id FOR UPDATE OF up) o"
    " WHERE u.customer_id = o.customer_id AND u.period_start = o.period_start AND u.metric = o.metric"
    " AND u.plan_id = o.plan_id RETURNING o.i, u.period_start, u.plan_id, u.metric, u.units - o.before, o.before,"
    " o.quoted";

/* Statement 3: attaches each customer's pending items created before its period end to its
 * draft, returning them. */
static const char mark_items_sql[] =
    "UPDATE invoice_items it SET invoice_id = d.id FROM unnest($1::text[], $2::bigint[], $3::text[])"
    " WITH ORDINALITY AS d(cid, pe, id, i) WHERE it.customer_id = d.cid AND it.invoice_id IS NULL"
    " AND it.created_at < d.pe RETURNING d.i, it.id, it.created_at, it.description, it.amount, it.currency";

static const char insert_sql[] =
    "INSERT INTO invoices(id, customer_id, period_start, period_end, status, currency, total, body, created_at)"
    " SELECT id, cid, ps, pe, 'draft', cur, tot, body, at FROM unnest($1::text[], $2::text[], $3::bigint[],"
    " $4::bigint[], $5::text[], $6::bigint[], $7::text[], $8::bigint[]) AS d(id, cid, ps, pe, cur, tot, body, at)";

static const char existing_sql[] = "SELECT d.i FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS d(cid, ps, i)"
                                   " JOIN invoices v ON v.customer_id = d.cid AND v.period_start = d.ps";

static const char unmark_usage_sql[] =
    "UPDATE usage_period u SET invoiced_units = r.before FROM unnest($1::text[], $2::bigint[], $3::text[],"
    " $4::text[], $5::bigint[]) AS r(cid, ps, metric, plan_id, before) WHERE u.customer_id = r.cid"
    " AND u.period_start = r.ps AND u.metric = r.metric AND u.plan_id = r.plan_id";

static const char unmark_items_sql[] = "UPDATE invoice_items SET invoice_id = NULL WHERE invoice_id = ANY($1::text[])";

static const char schedule_sql[] =
    "UPDATE customer_schedule c SET next_period_end = d.next FROM unnest($1::text[], $2::bigint[], $3::bigint[])"
    " AS d(id, expected, next) WHERE c.customer_id = d.id AND c.next_period_end = d.expected";

static const char failures_sql[] = "DELETE FROM billing_failures WHERE customer_id = ANY($1::text[])";

typedef struct {
    tg_pg_array_t a[8];
} arrays_t;

static void arrays_free(arrays_t *x)
{
    for (size_t k = 0; k < sizeof(x->a) / sizeof(x->a[0]); k++)
        tg_pg_array_free(&x->a[k]);
}

/* The first `count` arrays of x as text parameters of p; TG_ENOMEM if one could not be built. */
static int arrays_params(arrays_t *x, int count, tg_pg_params_t *p, tg_err_t *err)
{
    for (int k = 0; k < count; k++) {
        const char *lit = tg_pg_array_end(&x->a[k]);
        if (lit == NULL)
            return tg_errf(err, TG_ENOMEM, "out of memory (or over %zu MiB) passing a batch of invoices",
                           TG_PG_ARRAY_MAX >> 20);
        tg_pg_param_text(p, lit);
    }
    return 0;
}

/* Runs sql with the first `count` arrays of x; *res (may be NULL) gets the result. The arrays
 * are emptied for the next statement. */
static int run_arrays(tg_pg_t *st, const char *sql, arrays_t *x, int count, PGresult **res, tg_err_t *err,
                      const char *doing)
{
    tg_pg_params_t p = {0};
    int rc = arrays_params(x, count, &p, err);
    if (rc == 0)
        rc = tg_pg_query(st, sql, &p, res, err, doing);
    arrays_free(x);
    return rc;
}

/* The entry ordinal (1-based) in column col of row r, as an index below n; -1 if out of range
 * (which would be a bug: the statement returns only the ordinals it was given). */
static long entry_of(const PGresult *res, int r, int col, size_t n)
{
    int64_t i = tg_pg_i64(res, r, col);
    return i >= 1 && (uint64_t)i <= n ? (long)(i - 1) : -1;
}

/* Statement 2's rows into *out (*nout), sorted by (entry, period, plan, metric); act maps the statement's
 * ordinals to entries. */
static int read_marked(const PGresult *res, const size_t *act, size_t na, marked_t **out, size_t *nout, tg_err_t *err)
{
    int rows = PQntuples(res);
    marked_t *m = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*m));
    if (m == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory reading a batch's usage");
    for (int r = 0; r < rows; r++) {
        long i = entry_of(res, r, 0, na);
        if (i < 0) {
            free(m);
            return tg_errf(err, TG_ESTORE, "a batch's usage came back for an entry it did not have");
        }
        m[r].i = act[i];
        m[r].period_start = tg_pg_i64(res, r, 1);
        tg_pg_text(res, r, 2, m[r].plan_id, sizeof(m[r].plan_id));
        tg_pg_text(res, r, 3, m[r].metric, sizeof(m[r].metric));
        m[r].units = tg_pg_u64(res, r, 4);
        m[r].before = tg_pg_i64(res, r, 5);
        m[r].quoted = tg_pg_i64(res, r, 6) != 0;
    }
    qsort(m, (size_t)rows, sizeof(*m), cmp_marked);
    *out = m;
    *nout = (size_t)rows;
    return 0;
}

/* Statement 3's rows into *out (*nout), sorted by (entry, item id). */
static int read_items(const PGresult *res, const tg_invoice_close_t *e, const size_t *act, size_t na,
                      marked_item_t **out, size_t *nout, tg_err_t *err)
{
    int rows = PQntuples(res);
    marked_item_t *m = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*m));
    if (m == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory reading a batch's invoice items");
    for (int r = 0; r < rows; r++) {
        long i = entry_of(res, r, 0, na);
        if (i < 0) {
            free(m);
            return tg_errf(err, TG_ESTORE, "a batch's items came back for an entry it did not have");
        }
        m[r].i = act[i];
        tg_invoice_item_t *it = &m[r].item;
        it->id = tg_pg_i64(res, r, 1);
        snprintf(it->customer_id, sizeof(it->customer_id), "%s", e[act[i]].draft.customer_id);
        it->created_at = tg_pg_i64(res, r, 2);
        tg_pg_text(res, r, 3, it->description, sizeof(it->description));
        it->amount = tg_pg_i64(res, r, 4);
        tg_pg_text(res, r, 5, it->currency, sizeof(it->currency));
    }
    qsort(m, (size_t)rows, sizeof(*m), cmp_marked_item);
    *out = m;
    *nout = (size_t)rows;
    return 0;
}

/* Builds every active entry's draft (act, na: in entry order) with build from its marked usage
 * (one row per period, plan and metric, with the units invoiced before, in (period, plan,
 * metric) byte order as tg_pg_invoice_create hands them: late usage of earlier periods apart)
 * and its items (by id). A build error is the entry's alone. */
static int build_all(tg_invoice_close_t *e, const size_t *act, size_t na, const marked_t *m, size_t nm,
                     const marked_item_t *mi, size_t nmi, tg_invoice_build_cb build, tg_err_t *err)
{
    tg_unbilled_t *rows = calloc(nm > 0 ? nm : 1, sizeof(*rows));
    tg_invoice_item_t *items = calloc(nmi > 0 ? nmi : 1, sizeof(*items));
    if (rows == NULL || items == NULL) {
        free(rows);
        free(items);
        return tg_errf(err, TG_ENOMEM, "out of memory building a batch of invoices");
    }
    size_t um = 0, ui = 0;
    for (size_t k = 0; k < na; k++) {
        size_t i = act[k], nr = 0, ni = 0;
        for (; um < nm && m[um].i == i; um++) {
            tg_unbilled_t *u = &rows[nr++];
            memcpy(u->plan_id, m[um].plan_id, sizeof(u->plan_id));
            memcpy(u->metric, m[um].metric, sizeof(u->metric));
            u->units = m[um].units;
            u->period_start = m[um].period_start;
            u->invoiced = m[um].before > 0 ? (uint64_t)m[um].before : 0;
            u->quoted = m[um].quoted;
        }
        for (; ui < nmi && mi[ui].i == i; ui++)
            items[ni++] = mi[ui].item;
        e[i].rc = build(rows, nr, items, ni, &e[i].draft, e[i].build_arg, &e[i].err);
    }
    free(rows);
    free(items);
    return 0;
}

/* Statement 5: inserts the drafts of the active entries built (rc 0): each is made (created 1).
 * TG_EEXIST if one exists meanwhile (the caller starts the batch again). */
static int insert_built(tg_pg_t *st, tg_invoice_close_t *e, const size_t *act, size_t na, tg_err_t *err)
{
    arrays_t x = {0};
    uint64_t nb = 0;
    for (size_t k = 0; k < na; k++) {
        const tg_invoice_t *d = &e[act[k]].draft;
        if (e[act[k]].rc != 0)
            continue;
        tg_pg_array_text(&x.a[0], d->id);
        tg_pg_array_text(&x.a[1], d->customer_id);
        tg_pg_array_i64(&x.a[2], d->period_start);
        tg_pg_array_i64(&x.a[3], d->period_end);
        tg_pg_array_text(&x.a[4], d->currency);
        tg_pg_array_i64(&x.a[5], d->total);
        tg_pg_array_text(&x.a[6], d->body != NULL ? d->body : "");
        tg_pg_array_i64(&x.a[7], d->created_at);
        nb++;
    }
    if (nb == 0) {
        arrays_free(&x);
        return 0;
    }
    PGresult *res = NULL;
    int rc = run_arrays(st, insert_sql, &x, 8, &res, err, "storing a batch of invoices");
    if (rc != 0)
        return rc;
    if (tg_pg_affected(res) != nb)
        rc = tg_errf(err, TG_ESTORE, "a batch of %llu invoices stored %llu", (unsigned long long)nb,
                     (unsigned long long)tg_pg_affected(res));
    PQclear(res);
    for (size_t k = 0; k < na && rc == 0; k++)
        e[act[k]].created = e[act[k]].rc == 0;
    return rc;
}

/* Statement 1: the entries whose invoice exists already get skip[i] = 1 (done: created 0). */
static int find_existing(tg_pg_t *st, const tg_invoice_close_t *e, size_t n, unsigned char *skip, tg_err_t *err)
{
    arrays_t x = {0};
    for (size_t i = 0; i < n; i++) {
        tg_pg_array_text(&x.a[0], e[i].draft.customer_id);
        tg_pg_array_i64(&x.a[1], e[i].draft.period_start);
    }
    PGresult *res = NULL;
    int rc = run_arrays(st, existing_sql, &x, 2, &res, err, "looking for a batch's invoices");
    if (rc != 0)
        return rc;
    for (int r = 0; r < PQntuples(res); r++) {
        long i = entry_of(res, r, 0, n);
        if (i >= 0)
            skip[i] = 1;
    }
    PQclear(res);
    return 0;
}

/* Statement 6: the marks of the entries whose build failed go back. */
static int unmark(tg_pg_t *st, const tg_invoice_close_t *e, const marked_t *m, size_t nm, size_t n, tg_err_t *err)
{
    arrays_t x = {0};
    int rc = 0;
    for (size_t k = 0; k < nm; k++)
        if (e[m[k].i].rc != 0) {
            tg_pg_array_text(&x.a[0], e[m[k].i].draft.customer_id);
            tg_pg_array_i64(&x.a[1], m[k].period_start);
            tg_pg_array_text(&x.a[2], m[k].metric);
            tg_pg_array_text(&x.a[3], m[k].plan_id);
            tg_pg_array_i64(&x.a[4], m[k].before);
        }
    if (x.a[0].n > 0)
        rc = run_arrays(st, unmark_usage_sql, &x, 5, NULL, err, "giving a batch's usage back");
    arrays_free(&x);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (e[i].rc != 0)
            tg_pg_array_text(&x.a[0], e[i].draft.id);
    if (x.a[0].n > 0)
        rc = run_arrays(st, unmark_items_sql, &x, 1, NULL, err, "giving a batch's items back");
    arrays_free(&x);
    return rc;
}

/* Statement 4: the schedule moves and the billing failures go, for the entries done (made now,
 * or before: skipped). */
static int schedule(tg_pg_t *st, const tg_invoice_close_t *e, size_t n, tg_err_t *err)
{
    arrays_t x = {0};
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        if (e[i].rc == 0 && e[i].next_end != e[i].next_expected) {
            tg_pg_array_text(&x.a[0], e[i].draft.customer_id);
            tg_pg_array_i64(&x.a[1], e[i].next_expected);
            tg_pg_array_i64(&x.a[2], e[i].next_end);
        }
    if (x.a[0].n > 0)
        rc = run_arrays(st, schedule_sql, &x, 3, NULL, err, "scheduling a batch's next periods");
    arrays_free(&x);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (e[i].rc == 0)
            tg_pg_array_text(&x.a[0], e[i].draft.customer_id);
    if (x.a[0].n > 0)
        rc = run_arrays(st, failures_sql, &x, 1, NULL, err, "clearing a batch's billing failures");
    arrays_free(&x);
    return rc;
}

/* One try at the batch (see the top of the file), inside the savepoint the caller made. */
static int close_once(tg_pg_t *st, tg_invoice_close_t *e, size_t n, tg_invoice_build_cb build, tg_err_t *err)
{
    marked_t *m = NULL;
    marked_item_t *mi = NULL;
    size_t nm = 0, nmi = 0, na = 0;
    PGresult *res = NULL;
    arrays_t x = {0};
    unsigned char *skip = calloc(n, 1);
    size_t *act = calloc(n, sizeof(*act));
    int rc = skip != NULL && act != NULL ? 0 : tg_errf(err, TG_ENOMEM, "out of memory closing a batch");
    if (rc == 0)
        rc = find_existing(st, e, n, skip, err);
    for (size_t i = 0; i < n && rc == 0; i++)
        if (!skip[i]) {
            act[na++] = i;
            tg_pg_array_text(&x.a[0], e[i].draft.customer_id);
            tg_pg_array_i64(&x.a[1], e[i].draft.period_start);
        }
    if (rc == 0 && na > 0 &&
        (rc = run_arrays(st, mark_usage_sql, &x, 2, &res, err, "reading a batch's unbilled usage")) == 0) {
        rc = read_marked(res, act, na, &m, &nm, err);
        PQclear(res);
        res = NULL;
    }
    if (rc == 0 && na > 0) {
        for (size_t k = 0; k < na; k++) {
            tg_pg_array_text(&x.a[0], e[act[k]].draft.customer_id);
            tg_pg_array_i64(&x.a[1], e[act[k]].draft.period_end);
            tg_pg_array_text(&x.a[2], e[act[k]].draft.id);
        }
        if ((rc = run_arrays(st, mark_items_sql, &x, 3, &res, err, "reading a batch's invoice items")) == 0) {
            rc = read_items(res, e, act, na, &mi, &nmi, err);
            PQclear(res);
        }
    }
    if (rc == 0)
        rc = build_all(e, act, na, m, nm, mi, nmi, build, err);
    free(mi);
    if (rc == 0)
        rc = schedule(st, e, n, err);
    if (rc == 0)
        rc = insert_built(st, e, act, na, err);
    if (rc == 0)
        rc = unmark(st, e, m, nm, n, err);
    free(m);
    free(skip);
    free(act);
    arrays_free(&x);
    return rc;
}

/* Tries the batch; a unique violation on the invoices (one made meanwhile by someone else) rolls
 * the try back and starts again, at most TRIES times. */
#define TRIES 4

int tg_pg_invoice_close_batch(tg_store_t *store, tg_invoice_close_t *e, size_t n, tg_invoice_build_cb build,
                              tg_err_t *err)
{
    int rc = TG_EEXIST;
    for (int t = 0; t < TRIES && rc == TG_EEXIST; t++) {
        for (size_t i = 0; i < n; i++) {
            free(e[i].draft.body);
            e[i].draft.body = NULL;
            e[i].rc = e[i].created = 0;
            e[i].err.code = 0;
            e[i].err.msg[0] = '\0';
        }
        if ((rc = tg_pg_savepoint(store, "close_batch", err)) != 0)
            return rc;
        if ((rc = close_once(tg_pg(store), e, n, build, err)) == 0)
            rc = tg_pg_savepoint_release(store, "close_batch", err);
        if (rc != 0)
            tg_pg_savepoint_rollback(store, "close_batch");
    }
    if (rc != 0)
        for (size_t i = 0; i < n; i++)
            e[i].created = 0; /* nothing of the batch is kept */
    return rc;
}
