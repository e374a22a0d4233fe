/* store_pg_usage.c - usage in PostgreSQL: each batch recorded exactly once, its rows summed in
 * memory (usage_aggregate.h) and added to the per-period, per-day and (while meter export is on)
 * per-hour totals in the batch's own transaction; and the totals read back (store.h).
 *
 * Unlike SQLite there is no journal: SQLite's single writer made a small journal insert plus a
 * bulk fold cheaper than upserts per batch, but PostgreSQL takes concurrent writers (several
 * nodes), and a journal would need a folder elected among them. Here the batch's key (usage_batches:
 * the node that logged it and its id) and the totals commit together, so a batch counts once
 * whoever applies it (its node, or tollgate metering recover elsewhere), however often: a second
 * insert of the same key waits for the first transaction and then finds it (ON CONFLICT DO
 * NOTHING, no row affected). Each total is one upsert of arrays (unnest), three
 * statements per batch whatever its size, its rows in key order so that concurrent writers take
 * the row locks in one order (no deadlocks between them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store_pg_int.h"
#include "store/usage_aggregate.h"
#include "util/utf8.h"

#define INT64_MAX_SQL "9223372036854775807"
/* A saturating sum of BIGINTs: SUM() of BIGINT is NUMERIC in PostgreSQL, capped back into BIGINT
 * (SQLite's TG_SUM), so one saturated total cannot make every read of a customer's usage fail. */
#define SAT_SUM "LEAST(COALESCE(SUM(units), 0), " INT64_MAX_SQL ")::BIGINT"
/* New units added to a stored total, stopping at 2^63-1 (excluded.units is never negative). */
#define SAT_ADD(t)                                                                                                     \
    "CASE WHEN " t ".units <= " INT64_MAX_SQL " - excluded.units THEN " t                                              \
    ".units + excluded.units ELSE " INT64_MAX_SQL " END"

/* ---- PostgreSQL array literals, the parameters of the bulk upserts ---- */

typedef struct pg_array {
    char *p;
    size_t len, cap;
    int failed; /* out of memory */
} pg_array_t;

static void arr_put(pg_array_t *a, const char *s, size_t n)
{
    if (a->failed)
        return;
    if (n + 1 > a->cap - a->len) {
        size_t cap = a->cap ? a->cap : 256;
        while (n + 1 > cap - a->len) {
            if (cap > SIZE_MAX / 2) {
                a->failed = 1;
                return;
            }
            cap *= 2;
        }
        char *np = realloc(a->p, cap);
        if (np == NULL) {
            a->failed = 1;
            return;
        }
        a->p = np;
        a->cap = cap;
    }
    memcpy(a->p + a->len, s, n);
    a->len += n;
    a->p[a->len] = '\0';
}

/* Before each element: "{" for the first, "," after. */
static void arr_next(pg_array_t *a)
{
    arr_put(a, a->len == 0 ? "{" : ",", 1);
}

/* s as a quoted element: quotes and backslashes escaped, so any text is one element. */
static void arr_text(pg_array_t *a, const char *s)
{
    arr_next(a);
    arr_put(a, "\"", 1);
    for (const char *q = s; *q != '\0'; q++) {
        size_t run = strcspn(q, "\"\\");
        arr_put(a, q, run);
        q += run;
        if (*q == '\0')
            break;
        arr_put(a, "\\", 1);
        arr_put(a, q, 1);
    }
    arr_put(a, "\"", 1);
}

static void arr_i64(pg_array_t *a, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%lld", (long long)v);
    arr_next(a);
    arr_put(a, num, (size_t)n);
}

/* The array closed ("{}" when empty) as a text parameter; NULL when memory ran out. */
static const char *arr_end(pg_array_t *a)
{
    if (a->len == 0)
        arr_put(a, "{", 1);
    arr_put(a, "}", 1);
    return a->failed ? NULL : a->p;
}

static void arrs_free(pg_array_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(a[i].p);
}

/* ---- recording ---- */

/* PostgreSQL text must be valid UTF-8 (SQLite stores any bytes): a raw request path cut at 100
 * bytes, or sent with bad bytes, would otherwise fail its whole batch, and every retry of it.
 * Rows whose text is not UTF-8 are replaced by copies scrubbed like error messages (tg_utf8_scrub:
 * bad bytes become '?', a character cut at the end is dropped) BEFORE they are grouped, so that
 * two paths that differ only in bad bytes are one key in the upsert. fixed[i] holds the copies. */
static void scrub_rows(tg_usage_agg_row_t *rows, size_t n, tg_usage_t *fixed)
{
    for (size_t i = 0; i < n; i++) {
        tg_usage_t c = *rows[i].u;
        tg_utf8_scrub(c.customer_id);
        tg_utf8_scrub(c.key_id);
        tg_utf8_scrub(c.plan_id);
        tg_utf8_scrub(c.metric);
        tg_utf8_scrub(c.endpoint);
        const tg_usage_t *u = rows[i].u;
        if (strcmp(c.customer_id, u->customer_id) != 0 || strcmp(c.key_id, u->key_id) != 0 ||
            strcmp(c.plan_id, u->plan_id) != 0 || strcmp(c.metric, u->metric) != 0 ||
            strcmp(c.endpoint, u->endpoint) != 0) {
            fixed[i] = c;
            rows[i].u = &fixed[i];
        }
    }
}

/* Keeps row u of batch_id aside in usage_rejected, inside the batch's transaction. Its fields
 * are read up to their capacity (a refused row may lack a terminator) and made UTF-8. */
static int reject_row(tg_pg_t *st, uint64_t batch_id, const tg_usage_t *u, const char *why, tg_err_t *err)
{
    char customer[TG_ID_MAX + 1], key[TG_ID_MAX + 1], plan[TG_PLAN_ID_MAX + 1], metric[TG_METRIC_MAX + 1],
        endpoint[TG_ENDPOINT_MAX + 1];
    snprintf(customer, sizeof(customer), "%.*s", (int)TG_ID_MAX, u->customer_id);
    snprintf(key, sizeof(key), "%.*s", (int)TG_ID_MAX, u->key_id);
    snprintf(plan, sizeof(plan), "%.*s", (int)TG_PLAN_ID_MAX, u->plan_id);
    snprintf(metric, sizeof(metric), "%.*s", (int)TG_METRIC_MAX, u->metric);
    snprintf(endpoint, sizeof(endpoint), "%.*s", (int)TG_ENDPOINT_MAX, u->endpoint);
    char reason[160];
    snprintf(reason, sizeof(reason), "%s", why);
    char *text[] = {customer, key, plan, metric, endpoint, reason};
    for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
        tg_utf8_scrub(text[i]);
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, (int64_t)batch_id);
    tg_pg_param_i64(&p, (int64_t)(u->event_id & (uint64_t)INT64_MAX));
    tg_pg_param_text(&p, customer);
    tg_pg_param_text(&p, key);
    tg_pg_param_text(&p, plan);
    tg_pg_param_text(&p, metric);
    tg_pg_param_text(&p, endpoint);
    tg_pg_param_u64(&p, u->units);
    tg_pg_param_i64(&p, u->period_start);
    tg_pg_param_i64(&p, u->ts_ns);
    tg_pg_param_i64(&p, u->status);
    tg_pg_param_text(&p, reason);
    tg_pg_param_i64(&p, (int64_t)time(NULL));
    return tg_pg_query(st,
                       "INSERT INTO usage_rejected(batch_id, event_id, customer_id, key_id, plan_id, metric, endpoint,"
                       " units, period_start, ts_ns, status, reason, rejected_at)"
                       " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
                       &p, NULL, err, "keeping refused usage aside");
}

/* Sums rows by `by` and runs sql with one array per column of the total (in the order the
 * statements below take them). */
static int upsert_totals(tg_pg_t *st, const tg_usage_agg_row_t *rows, size_t n, tg_usage_by_t by, const char *sql,
                         tg_err_t *err, const char *doing)
{
    tg_usage_sum_t *sums;
    size_t ns;
    int rc = tg_usage_agg_sum(rows, n, by, 1, &sums, &ns, err);
    if (rc != 0 || ns == 0) {
        free(sums);
        return rc;
    }
    enum { COLS = 7 };
    pg_array_t a[COLS];
    memset(a, 0, sizeof(a));
    int cols = 0;
    for (size_t i = 0; i < ns; i++) {
        const tg_usage_agg_row_t *k = sums[i].key;
        const tg_usage_t *u = k->u;
        int64_t units = (int64_t)sums[i].units;
        switch (by) {
        case TG_USAGE_BY_PERIOD: /* customer, period_start, plan, metric, units */
            arr_text(&a[0], u->customer_id);
            arr_i64(&a[1], u->period_start);
            arr_text(&a[2], u->plan_id);
            arr_text(&a[3], u->metric);
            arr_i64(&a[4], units);
            cols = 5;
            break;
        case TG_USAGE_BY_DAY: /* customer, day, metric, endpoint, units */
            arr_text(&a[0], u->customer_id);
            arr_text(&a[1], k->day);
            arr_text(&a[2], u->metric);
            arr_text(&a[3], u->endpoint);
            arr_i64(&a[4], units);
            cols = 5;
            break;
        case TG_USAGE_BY_HOUR: /* customer, metric, hour, period_start, plan, ts, units */
        default:
            arr_text(&a[0], u->customer_id);
            arr_text(&a[1], u->metric);
            arr_i64(&a[2], k->hour);
            arr_i64(&a[3], u->period_start);
            arr_text(&a[4], u->plan_id);
            arr_i64(&a[5], tg_usage_bucket_ts(k));
            arr_i64(&a[6], units);
            cols = 7;
            break;
        }
    }
    free(sums);
    tg_pg_params_t p = {0};
    for (int c = 0; c < cols; c++) {
        const char *v = arr_end(&a[c]);
        if (v == NULL) {
            arrs_free(a, COLS);
            return tg_errf(err, TG_ENOMEM, "%s: out of memory", doing);
        }
        tg_pg_param_text(&p, v);
    }
    if (by == TG_USAGE_BY_HOUR) {
        /* The seq rule (a new row of a group sent before takes the group's seq) reads the group's
         * rows: lock them first, so that an exporter raising their seq (tg_store_meter_set_seq)
         * either commits before this batch reads them or waits for it. */
        tg_pg_params_t lock = {0};
        tg_pg_param_text(&lock, a[0].p);
        tg_pg_param_text(&lock, a[1].p);
        tg_pg_param_text(&lock, a[5].p);
        rc = tg_pg_query(st,
                         "SELECT 1 FROM usage_hourly h, unnest($1::text[], $2::text[], $3::bigint[]) AS v(c, m, ts)"
                         " WHERE h.customer_id = v.c AND h.metric = v.m AND h.ts = v.ts"
                         " ORDER BY h.customer_id, h.metric, h.hour_start, h.period_start, h.plan_id FOR UPDATE OF h",
                         &lock, NULL, err, doing);
    }
    if (rc == 0)
        rc = tg_pg_query(st, sql, &p, NULL, err, doing);
    arrs_free(a, COLS);
    return rc;
}

/* One applied event id of a batch: the key PostgreSQL said it inserted. */
typedef struct fresh_id {
    int64_t event_id;
    const char *customer_id; /* into the result */
    int used;                /* taken by a row of the batch already */
} fresh_id_t;

static int cmp_fresh(const void *a, const void *b)
{
    const fresh_id_t *x = a, *y = b;
    if (x->event_id != y->event_id)
        return x->event_id < y->event_id ? -1 : 1;
    return strcmp(x->customer_id, y->customer_id);
}

/* Records the id of every event row of rows[0..*n) in usage_event_ids, in the batch's
 * transaction, and drops from rows, in place, the rows whose id was there already (applied by
 * any node before, or earlier in this batch); *n becomes the rows kept, *dups the rows dropped.
 * One statement for the batch; nothing at all for a batch of calls only. The ids go in key order
 * (event_id, customer_id): two nodes applying the same events wait for each other in one order,
 * never in a cycle. A second insert of an id waits for the transaction that holds it, then finds it
 * committed (skipped) or rolled back (inserted): exact. */
static int apply_event_ids(tg_pg_t *st, tg_usage_agg_row_t *rows, size_t *n, size_t *dups, tg_err_t *err)
{
    *dups = 0;
    pg_array_t a[3];
    memset(a, 0, sizeof(a));
    size_t events = 0;
    for (size_t i = 0; i < *n; i++) {
        const tg_usage_t *u = rows[i].u;
        if (!tg_usage_is_event(u))
            continue;
        arr_text(&a[0], u->customer_id);
        arr_i64(&a[1], (int64_t)(u->event_id & (uint64_t)INT64_MAX));
        arr_i64(&a[2], tg_usage_ns_to_s(u->ts_ns));
        events++;
    }
    if (events == 0)
        return 0;
    tg_pg_params_t p = {0};
    for (int c = 0; c < 3; c++) {
        const char *v = arr_end(&a[c]);
        if (v == NULL) {
            arrs_free(a, 3);
            return tg_errf(err, TG_ENOMEM, "storing usage events: out of memory");
        }
        tg_pg_param_text(&p, v);
    }
    PGresult *r;
    int rc = tg_pg_query(st,
                         "INSERT INTO usage_event_ids(customer_id, event_id, ts)"
                         " SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS v(c, e, t)"
                         " ORDER BY v.e, v.c ON CONFLICT DO NOTHING RETURNING customer_id, event_id",
                         &p, &r, err, "storing usage events");
    arrs_free(a, 3);
    if (rc != 0)
        return rc;
    size_t nf = (size_t)PQntuples(r);
    fresh_id_t *fresh = malloc((nf ? nf : 1) * sizeof(*fresh));
    if (fresh == NULL) {
        PQclear(r);
        return tg_errf(err, TG_ENOMEM, "storing usage events: out of memory");
    }
    for (size_t i = 0; i < nf; i++)
        fresh[i] = (fresh_id_t){tg_pg_i64(r, (int)i, 1), PQgetvalue(r, (int)i, 0), 0};
    qsort(fresh, nf, sizeof(*fresh), cmp_fresh);
    size_t kept = 0;
    for (size_t i = 0; i < *n; i++) {
        const tg_usage_t *u = rows[i].u;
        if (tg_usage_is_event(u)) {
            fresh_id_t key = {(int64_t)(u->event_id & (uint64_t)INT64_MAX), u->customer_id, 0};
            fresh_id_t *f = nf > 0 ? bsearch(&key, fresh, nf, sizeof(*fresh), cmp_fresh) : NULL;
            if (f == NULL || f->used) { /* applied before, or a second row of the same event */
                (*dups)++;
                continue;
            }
            f->used = 1;
        }
        rows[kept++] = rows[i];
    }
    *n = kept;
    free(fresh);
    PQclear(r);
    return 0;
}

int tg_pg_usage_record(tg_store_t *store, uint64_t batch_id, const tg_usage_t *rows, size_t n, size_t *inserted,
                       tg_err_t *err)
{
    tg_usage_batch_t b = {batch_id, rows, n, NULL};
    tg_usage_stored_t out;
    int rc = tg_pg_usage_record_many(store, &b, 1, &out, err);
    if (inserted != NULL)
        *inserted = rc == 0 ? out.inserted : 0;
    return rc;
}

int tg_pg_usage_record_many(tg_store_t *store, const tg_usage_batch_t *batches, size_t nb, tg_usage_stored_t *out,
                            tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_usage_stored_t ignored;
    if (out == NULL)
        out = &ignored;
    memset(out, 0, sizeof(*out));
    for (size_t k = 0; k < nb; k++)
        if (batches[k].id > (uint64_t)INT64_MAX)
            return tg_errf(err, TG_ERANGE, "storing usage: batch id %llu does not fit",
                           (unsigned long long)batches[k].id);
    if (nb == 0)
        return 0;
    tg_usage_agg_row_t *rows;
    size_t n, nrejected;
    int rc = tg_usage_agg_collect(batches, nb, &rows, &n, &nrejected, out->reason, sizeof(out->reason), err);
    if (rc != 0)
        return rc;
    tg_usage_t *fixed = malloc((n ? n : 1) * sizeof(*fixed));
    if (fixed == NULL) {
        free(rows);
        return tg_errf(err, TG_ENOMEM, "out of memory storing %zu usage rows", n);
    }
    scrub_rows(rows, n, fixed);
    if ((rc = tg_pg_savepoint(store, "usage", err)) != 0)
        goto done;
    size_t fresh = 0;
    for (size_t k = 0; k < nb && rc == 0; k++) {
        tg_pg_params_t p = {0};
        PGresult *r;
        tg_pg_param_i64(&p, (int64_t)batches[k].id);
        tg_pg_param_i64(&p, (int64_t)batches[k].n);
        tg_pg_param_i64(&p, (int64_t)time(NULL));
        tg_pg_param_text(&p, batches[k].node != NULL ? batches[k].node : "");
        rc = tg_pg_query(st,
                         "INSERT INTO usage_batches(batch_id, rows, committed_at, node) VALUES ($1,$2,$3,$4)"
                         " ON CONFLICT DO NOTHING",
                         &p, &r, err, "storing usage");
        if (rc == 0) {
            fresh += tg_pg_affected(r) != 0;
            PQclear(r);
        }
    }
    if (rc != 0)
        goto fail;
    if (fresh != nb) { /* committed before: apply nothing */
        if (fresh != 0) {
            rc = tg_errf(err, TG_EEXIST, "storing usage: %zu of %zu batches were stored before", nb - fresh, nb);
            goto fail;
        }
        memset(out->reason, 0, sizeof(out->reason));
        rc = tg_pg_savepoint_release(store, "usage", err);
        goto done;
    }
    /* Rows the totals cannot take are kept aside in the same transaction as the batch id: the
     * rest of the batch is stored, and a replay adds neither twice. */
    if (nrejected > 0) {
        char why[160];
        for (size_t k = 0; k < nb && rc == 0; k++)
            for (size_t i = 0; i < batches[k].n && rc == 0; i++)
                if (tg_usage_row_refused(&batches[k].rows[i], why, sizeof(why)))
                    rc = reject_row(st, batches[k].id, &batches[k].rows[i], why, err);
        if (rc != 0)
            goto fail;
    }
    size_t dups = 0;
    if ((rc = apply_event_ids(st, rows, &n, &dups, err)) != 0)
        goto fail;
    if (n > 0) {
        rc = upsert_totals(
            st, rows, n, TG_USAGE_BY_PERIOD,
            "INSERT INTO usage_period AS t (customer_id, period_start, plan_id, metric, units)"
            " SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[])"
            " ON CONFLICT (customer_id, period_start, metric, plan_id) DO UPDATE SET units = " SAT_ADD("t"),
            err, "storing usage");
        if (rc == 0)
            rc = upsert_totals(st, rows, n, TG_USAGE_BY_DAY,
                               "INSERT INTO usage_daily AS t (customer_id, day, metric, endpoint, units)"
                               " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])"
                               " ON CONFLICT (customer_id, day, metric, endpoint) DO UPDATE SET units = " SAT_ADD("t"),
                               err, "storing daily usage");
        /* Hourly totals only while meter events are exported (billing: stripe, store_meter.h). */
        PGresult *on = NULL;
        if (rc == 0)
            rc = tg_pg_query(st, "SELECT 1 FROM meter_export", NULL, &on, err, "storing usage");
        if (rc == 0 && PQntuples(on) > 0)
            rc = upsert_totals(
                st, rows, n, TG_USAGE_BY_HOUR,
                "INSERT INTO usage_hourly AS t (customer_id, metric, hour_start, period_start, plan_id, ts, units,"
                " exported, seq)"
                " SELECT v.c, v.m, v.h, v.p, v.pl, v.ts, v.u, 0, COALESCE((SELECT MAX(x.seq) FROM usage_hourly x"
                " WHERE x.customer_id = v.c AND x.metric = v.m AND x.ts = v.ts), 0)"
                " FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::bigint[],"
                " $7::bigint[]) AS v(c, m, h, p, pl, ts, u)"
                " ON CONFLICT (customer_id, metric, hour_start, period_start, plan_id) DO UPDATE SET units = " SAT_ADD(
                    "t"),
                err, "storing hourly usage");
        PQclear(on);
        if (rc != 0)
            goto fail;
    }
    if ((rc = tg_pg_savepoint_release(store, "usage", err)) != 0)
        goto done; /* the transaction is gone: nothing was stored */
    out->inserted = n;
    out->rejected = nrejected;
    out->duplicates = dups;
    goto done;
fail:
    tg_pg_savepoint_rollback(store, "usage");
done:
    free(fixed);
    free(rows);
    return rc;
}

/* Nothing to fold: each batch reached the totals in its own transaction (see the top of this
 * file). The metering writer calls this after every commit on either backend. */
int tg_pg_usage_fold(tg_store_t *store, int force, tg_err_t *err)
{
    (void)store;
    (void)force;
    (void)err;
    return 0;
}

/* ---- reading ---- */

int tg_pg_usage_period(tg_store_t *store, const char *customer_id, int64_t period_start, tg_usage_total_cb cb,
                       void *arg, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    PGresult *r;
    tg_pg_param_text(&p, customer_id);
    tg_pg_param_i64(&p, period_start);
    /* COLLATE "C": byte order, as SQLite's, whatever the database's locale */
    int rc = tg_pg_query(st,
                         "SELECT metric, " SAT_SUM " FROM usage_period WHERE customer_id = $1 AND period_start = $2"
                         " GROUP BY metric ORDER BY metric COLLATE \"C\"",
                         &p, &r, err, "reading usage");
    if (rc != 0)
        return rc;
    for (int i = 0; i < PQntuples(r); i++)
        if (cb(PQgetvalue(r, i, 0), tg_pg_u64(r, i, 1), arg) != 0)
            break;
    PQclear(r);
    return 0;
}

/* Sums of usage_daily over the UTC days of [from_s, to_s) for one customer: two text columns
 * and a sum per row (by day or by endpoint). */
static int daily_query(tg_pg_t *st, const char *sql, const char *doing, const char *customer_id, int64_t from_s,
                       int64_t to_s, tg_usage_day_cb cb, void *arg, tg_err_t *err)
{
    char from[16], to[16];
    if (to_s <= from_s)
        return 0;
    tg_usage_utc_day(from_s, from);
    tg_usage_utc_day(to_s - 1, to);
    tg_pg_params_t p = {0};
    PGresult *r;
    tg_pg_param_text(&p, customer_id);
    tg_pg_param_text(&p, from);
    tg_pg_param_text(&p, to);
    int rc = tg_pg_query(st, sql, &p, &r, err, doing);
    if (rc != 0)
        return rc;
    for (int i = 0; i < PQntuples(r); i++)
        if (cb(PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), tg_pg_u64(r, i, 2), arg) != 0)
            break;
    PQclear(r);
    return 0;
}

int tg_pg_usage_daily(tg_store_t *store, const char *customer_id, int64_t from_s, int64_t to_s, tg_usage_day_cb cb,
                      void *arg, tg_err_t *err)
{
    return daily_query(tg_pg(store),
                       "SELECT day, metric, " SAT_SUM " FROM usage_daily WHERE customer_id = $1"
                       " AND day COLLATE \"C\" >= $2 AND day COLLATE \"C\" <= $3"
                       " GROUP BY day, metric ORDER BY day COLLATE \"C\", metric COLLATE \"C\"",
                       "reading daily usage", customer_id, from_s, to_s, cb, arg, err);
}

int tg_pg_usage_endpoints(tg_store_t *store, const char *customer_id, int64_t from_s, int64_t to_s,
                          tg_usage_endpoint_cb cb, void *arg, tg_err_t *err)
{
    /* tg_usage_endpoint_cb has the shape of tg_usage_day_cb: (endpoint, metric, units, arg). */
    return daily_query(tg_pg(store),
                       "SELECT endpoint, metric, " SAT_SUM " AS total FROM usage_daily WHERE customer_id = $1"
                       " AND day COLLATE \"C\" >= $2 AND day COLLATE \"C\" <= $3"
                       " GROUP BY endpoint, metric ORDER BY total DESC, endpoint COLLATE \"C\", metric COLLATE \"C\"",
                       "reading usage by endpoint", customer_id, from_s, to_s, cb, arg, err);
}

/* Read in pages along the primary key (customer_id, period_start, metric, plan_id), whose prefix
 * is the group: memory stays bounded however many customers there are. */
#define LOAD_PAGE 4096

int tg_pg_usage_load(tg_store_t *store, int64_t since_s, tg_usage_load_cb cb, void *arg, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    char after_customer[TG_ID_MAX] = "", after_metric[TG_METRIC_MAX] = "";
    int64_t after_period = INT64_MIN;
    int first = 1;
    for (;;) {
        tg_pg_params_t p = {0};
        PGresult *r;
        tg_pg_param_i64(&p, since_s);
        tg_pg_param_i64(&p, first);
        tg_pg_param_text(&p, after_customer);
        tg_pg_param_i64(&p, after_period);
        tg_pg_param_text(&p, after_metric);
        tg_pg_param_i64(&p, LOAD_PAGE);
        int rc =
            tg_pg_query(st,
                        "SELECT customer_id, period_start, metric, " SAT_SUM " FROM usage_period"
                        " WHERE period_start >= $1 AND ($2 = 1 OR (customer_id, period_start, metric) > ($3, $4, $5))"
                        " GROUP BY customer_id, period_start, metric ORDER BY customer_id, period_start, metric"
                        " LIMIT $6",
                        &p, &r, err, "loading usage totals");
        if (rc != 0)
            return rc;
        int rows = PQntuples(r), stop = 0;
        for (int i = 0; i < rows && !stop; i++)
            stop = cb(PQgetvalue(r, i, 0), tg_pg_i64(r, i, 1), PQgetvalue(r, i, 2), tg_pg_u64(r, i, 3), arg) != 0;
        if (rows > 0) {
            tg_pg_text(r, rows - 1, 0, after_customer, sizeof(after_customer));
            after_period = tg_pg_i64(r, rows - 1, 1);
            tg_pg_text(r, rows - 1, 2, after_metric, sizeof(after_metric));
        }
        PQclear(r);
        if (stop || rows < LOAD_PAGE)
            return 0;
        first = 0;
    }
}

int tg_pg_usage_total(tg_store_t *store, const char *metric, uint64_t *units, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    PGresult *r;
    tg_pg_param_text(&p, metric);
    int rc = tg_pg_query(st, "SELECT " SAT_SUM " FROM usage_period WHERE metric = $1", &p, &r, err, "totalling usage");
    if (rc != 0)
        return rc;
    *units = tg_pg_u64(r, 0, 0);
    PQclear(r);
    return 0;
}

int tg_pg_usage_event_ids_prune(tg_store_t *store, int64_t before_s, size_t limit, size_t *deleted, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    *deleted = 0;
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, before_s);
    tg_pg_param_i64(&p, (int64_t)limit);
    PGresult *r;
    /* the oldest first, by the ts index; SKIP LOCKED: an id a batch is inserting right now is not
     * waited for (it is not old anyway) */
    int rc = tg_pg_query(st,
                         "DELETE FROM usage_event_ids WHERE (customer_id, event_id) IN (SELECT customer_id, event_id"
                         " FROM usage_event_ids WHERE ts < $1 ORDER BY ts LIMIT $2 FOR UPDATE SKIP LOCKED)",
                         &p, &r, err, "pruning applied event ids");
    if (rc != 0)
        return rc;
    *deleted = (size_t)tg_pg_affected(r);
    PQclear(r);
    return 0;
}

/* PostgreSQL keeps every id as a row, checked across nodes, and no blocks: a node's index is
 * synced at each log reset instead of checkpointed against them (metering/events.h). */
int tg_pg_usage_event_id_blocks_last(tg_store_t *store, int64_t *last, tg_err_t *err)
{
    (void)store;
    *last = 0;
    return tg_errf(err, TG_ESTATE, "PostgreSQL keeps no usage event id blocks (SQLite only)");
}

int tg_pg_usage_event_id_blocks_after(tg_store_t *store, int64_t after_id, int64_t since_s, tg_usage_event_id_cb cb,
                                      void *arg, tg_err_t *err)
{
    (void)store, (void)after_id, (void)since_s, (void)cb, (void)arg;
    return tg_errf(err, TG_ESTATE, "PostgreSQL keeps no usage event id blocks (SQLite only)");
}

/* Paged along the primary key: memory stays bounded however many ids the window holds. */
int tg_pg_usage_event_ids_each(tg_store_t *store, int64_t since_s, tg_usage_event_id_cb cb, void *arg, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    char after_customer[TG_ID_MAX] = "";
    int64_t after_id = -1;
    for (;;) {
        tg_pg_params_t p = {0};
        PGresult *r;
        tg_pg_param_i64(&p, since_s);
        tg_pg_param_i64(&p, after_id);
        tg_pg_param_text(&p, after_customer);
        tg_pg_param_i64(&p, LOAD_PAGE);
        int rc = tg_pg_query(st,
                             "SELECT event_id, ts, customer_id FROM usage_event_ids WHERE ts >= $1"
                             " AND (event_id, customer_id) > ($2, $3) ORDER BY event_id, customer_id LIMIT $4",
                             &p, &r, err, "reading applied event ids");
        if (rc != 0)
            return rc;
        int rows = PQntuples(r);
        for (int i = 0; i < rows && rc == 0; i++)
            rc = cb(arg, (uint64_t)tg_pg_i64(r, i, 0), tg_pg_i64(r, i, 1));
        if (rows > 0) {
            after_id = tg_pg_i64(r, rows - 1, 0);
            tg_pg_text(r, rows - 1, 2, after_customer, sizeof(after_customer));
        }
        PQclear(r);
        if (rc != 0 || rows < LOAD_PAGE)
            return rc;
    }
}
