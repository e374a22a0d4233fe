/* store_pg_meter.c - the PostgreSQL backend of store_meter.h: the usage_hourly and meter_export
 * tables of migration 17 (the fold that fills usage_hourly is with the usage operations). Same
 * results, errors and orders as store_sqlite_meter.c.
 *
 * Several nodes: the exporter reads due rows and marks them in one transaction, and
 * tg_pg_meter_mark only changes a row whose exported count is still the one read. In READ
 * COMMITTED, an UPDATE that meets a row another transaction changed waits for it, then checks
 * its WHERE against the committed row: the second of two exporters marking the same hour
 * changes nothing and gets TG_ESTATE, and rolls back the calls it queued. Sums saturate at
 * INT64_MAX like SQLite's TG_SUM (SUM of BIGINT is NUMERIC in PostgreSQL: it cannot overflow,
 * LEAST caps it), and text keys sort COLLATE "C", SQLite's BINARY, so that the pages of
 * tg_pg_meter_due follow the same order as SQLite's and its cursor means the same. */
#include <stdio.h>
#include <string.h>

#include "store/store_meter.h"
#include "store/store_pg_int.h"

/* Sums of BIGINTs below: LEAST(COALESCE(SUM(x), 0), INT64_MAX)::bigint, 0 for no rows and
 * INT64_MAX past it (SUM of BIGINT is NUMERIC: it does not overflow on the way). */

int tg_pg_meter_export_set(tg_store_t *store, int on, int64_t since, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    if (!on)
        return tg_pg_query(st, "DELETE FROM meter_export", NULL, NULL, err, "turning meter export on or off");
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, since);
    return tg_pg_query(st, "INSERT INTO meter_export(id, since) VALUES (1, $1) ON CONFLICT DO NOTHING", &p, NULL, err,
                       "turning meter export on or off");
}

static void read_bucket(const PGresult *res, int i, tg_meter_bucket_t *b)
{
    memset(b, 0, sizeof(*b));
    tg_pg_text(res, i, 0, b->customer_id, sizeof(b->customer_id));
    tg_pg_text(res, i, 1, b->metric, sizeof(b->metric));
    b->hour_start = tg_pg_i64(res, i, 2);
    b->period_start = tg_pg_i64(res, i, 3);
    tg_pg_text(res, i, 4, b->plan_id, sizeof(b->plan_id));
    b->ts = tg_pg_i64(res, i, 5);
    b->units = tg_pg_u64(res, i, 6);
    b->exported = tg_pg_u64(res, i, 7);
    b->seq = tg_pg_i64(res, i, 8);
}

int tg_pg_meter_due(tg_store_t *store, int64_t hour_before, const tg_meter_cursor_t *cursor, tg_meter_bucket_t *out,
                    size_t limit, size_t *n, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    *n = 0;
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, hour_before);
    tg_pg_param_text(&p, cursor->customer_id);
    tg_pg_param_text(&p, cursor->metric);
    tg_pg_param_i64(&p, cursor->ts);
    tg_pg_param_i64(&p, cursor->period_start);
    tg_pg_param_text(&p, cursor->plan_id);
    tg_pg_param_i64(&p, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
    PGresult *r;
    /* the partial index usage_hourly_unexported holds only rows with something to send */
    int rc = tg_pg_query(st,
                         "SELECT customer_id, metric, hour_start, period_start, plan_id, ts, units, exported, seq"
                         " FROM usage_hourly WHERE units > exported AND hour_start < $1"
                         " AND (customer_id COLLATE \"C\", metric COLLATE \"C\", ts, period_start,"
                         " plan_id COLLATE \"C\") > ($2, $3, $4, $5, $6)"
                         " ORDER BY customer_id COLLATE \"C\", metric COLLATE \"C\", ts, period_start,"
                         " plan_id COLLATE \"C\" LIMIT $7",
                         &p, &r, err, "reading usage to send to Stripe");
    if (rc != 0)
        return rc;
    for (int i = 0; i < PQntuples(r) && *n < limit; i++)
        read_bucket(r, i, &out[(*n)++]);
    PQclear(r);
    return 0;
}

int tg_pg_meter_mark(tg_store_t *store, const tg_meter_bucket_t *b, uint64_t exported, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_u64(&p, exported);
    tg_pg_param_text(&p, b->customer_id);
    tg_pg_param_text(&p, b->metric);
    tg_pg_param_i64(&p, b->hour_start);
    tg_pg_param_i64(&p, b->period_start);
    tg_pg_param_text(&p, b->plan_id);
    tg_pg_param_u64(&p, b->exported);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "UPDATE usage_hourly SET exported = $1 WHERE customer_id = $2 AND metric = $3"
                         " AND hour_start = $4 AND period_start = $5 AND plan_id = $6 AND exported = $7",
                         &p, &r, err, "marking usage sent to Stripe");
    if (rc != 0)
        return rc;
    if (tg_pg_affected(r) != 1)
        rc = tg_errf(err, TG_ESTATE, "the usage of %.40s in hour %lld changed while it was being sent", b->customer_id,
                     (long long)b->hour_start);
    PQclear(r);
    return rc;
}

int tg_pg_meter_set_seq(tg_store_t *store, const char *customer_id, const char *metric, int64_t ts, int64_t seq,
                        tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, seq);
    tg_pg_param_text(&p, customer_id);
    tg_pg_param_text(&p, metric);
    tg_pg_param_i64(&p, ts);
    return tg_pg_query(tg_pg(store),
                       "UPDATE usage_hourly SET seq = GREATEST(seq, $1) WHERE customer_id = $2 AND metric = $3"
                       " AND ts = $4",
                       &p, NULL, err, "numbering usage sent to Stripe");
}

int tg_pg_meter_period_exported(tg_store_t *store, const char *customer_id, int64_t period_start, const char *plan_id,
                                const char *metric, uint64_t *units, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    *units = 0;
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    tg_pg_param_i64(&p, period_start);
    tg_pg_param_text(&p, plan_id);
    tg_pg_param_text(&p, metric);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "SELECT LEAST(COALESCE(SUM(exported), 0), 9223372036854775807)::bigint FROM usage_hourly"
                         " WHERE customer_id = $1 AND period_start = $2 AND plan_id = $3 AND metric = $4",
                         &p, &r, err, "reading a period's usage");
    if (rc != 0)
        return rc;
    *units = tg_pg_u64(r, 0, 0);
    PQclear(r);
    return 0;
}

int tg_pg_meter_prune(tg_store_t *store, int64_t before_s, size_t limit, size_t *deleted, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    if (deleted != NULL)
        *deleted = 0;
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, before_s);
    tg_pg_param_i64(&p, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "DELETE FROM usage_hourly WHERE (customer_id, metric, hour_start, period_start, plan_id)"
                         " IN (SELECT customer_id, metric, hour_start, period_start, plan_id FROM usage_hourly"
                         " WHERE hour_start < $1 AND units = exported LIMIT $2)",
                         &p, &r, err, "pruning hourly usage");
    if (rc != 0)
        return rc;
    if (deleted != NULL)
        *deleted = (size_t)tg_pg_affected(r);
    PQclear(r);
    return 0;
}

int tg_pg_meter_customer_backlog(tg_store_t *store, const char *customer_id, uint64_t *hours, uint64_t *units,
                                 tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    *hours = *units = 0;
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "SELECT COUNT(*), LEAST(COALESCE(SUM(units - exported), 0), 9223372036854775807)::bigint"
                         " FROM usage_hourly WHERE customer_id = $1 AND units > exported",
                         &p, &r, err, "reading usage not yet sent to Stripe");
    if (rc != 0)
        return rc;
    *hours = tg_pg_u64(r, 0, 0);
    *units = tg_pg_u64(r, 0, 1);
    PQclear(r);
    return 0;
}

int tg_pg_meter_outbox_counts(tg_store_t *store, const char *customer_id, uint64_t *pending, uint64_t *failed,
                              tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    *pending = *failed = 0;
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "SELECT COUNT(*) FILTER (WHERE state = 'pending'), COUNT(*) FILTER (WHERE state = 'failed')"
                         " FROM stripe_outbox WHERE customer_id = $1 AND state IN ('pending', 'failed')"
                         " AND kind IN ('meter_event.create', 'late_usage.item')",
                         &p, &r, err, "counting a customer's usage calls to Stripe");
    if (rc != 0)
        return rc;
    *pending = tg_pg_u64(r, 0, 0);
    *failed = tg_pg_u64(r, 0, 1);
    PQclear(r);
    return 0;
}

int tg_pg_meter_refused(tg_store_t *store, tg_meter_refused_t *out, size_t limit, size_t *n, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    *n = 0;
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
    PGresult *r;
    /* ILIKE: SQLite's LIKE ignores the case of ASCII letters */
    int rc = tg_pg_query(st,
                         "SELECT id, customer_id, params FROM stripe_outbox WHERE state = 'failed'"
                         " AND kind = 'meter_event.create' AND last_error ILIKE 'Stripe 400 %timestamp%'"
                         " ORDER BY id LIMIT $1",
                         &p, &r, err, "reading refused meter events");
    if (rc != 0)
        return rc;
    for (int i = 0; i < PQntuples(r) && *n < limit; i++) {
        tg_meter_refused_t *o = &out[*n];
        memset(o, 0, sizeof(*o));
        int len = PQgetlength(r, i, 2);
        if (PQgetisnull(r, i, 2) || len <= 0 || (size_t)len >= sizeof(o->params))
            continue; /* not a form this module wrote */
        o->outbox_id = tg_pg_i64(r, i, 0);
        tg_pg_text(r, i, 1, o->customer_id, sizeof(o->customer_id));
        memcpy(o->params, PQgetvalue(r, i, 2), (size_t)len);
        (*n)++;
    }
    PQclear(r);
    return 0;
}

int tg_pg_meter_take_back(tg_store_t *store, int64_t outbox_id, const char *customer_id, const char *metric, int64_t ts,
                          uint64_t units, int64_t now, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, now);
    tg_pg_param_i64(&p, outbox_id);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "UPDATE stripe_outbox SET state = 'done', response_id = 'sent again as late usage',"
                         " updated_at = $1 WHERE id = $2 AND state = 'failed'",
                         &p, &r, err, "taking back a refused meter event");
    if (rc != 0)
        return rc;
    uint64_t changed = tg_pg_affected(r);
    PQclear(r);
    if (changed != 1)
        return tg_errf(err, TG_ESTATE, "outbox row %lld is no longer failed", (long long)outbox_id);
    /* the bucket's rows, newest period and plan first: the units come off their exported counts
     * (locked: another node's mark of them waits for this transaction, then sees the change) */
    tg_pg_params_t q = {0};
    tg_pg_param_text(&q, customer_id);
    tg_pg_param_text(&q, metric);
    tg_pg_param_i64(&q, ts);
    rc = tg_pg_query(st,
                     "SELECT hour_start, period_start, plan_id, exported FROM usage_hourly WHERE customer_id = $1"
                     " AND metric = $2 AND ts = $3 AND exported > 0"
                     " ORDER BY period_start DESC, plan_id COLLATE \"C\" DESC FOR UPDATE",
                     &q, &r, err, "taking back a refused meter event");
    if (rc != 0)
        return rc;
    for (int i = 0; i < PQntuples(r) && units > 0 && rc == 0; i++) {
        uint64_t had = tg_pg_u64(r, i, 3), off = had < units ? had : units;
        char plan[TG_PLAN_ID_MAX];
        tg_pg_text(r, i, 2, plan, sizeof(plan));
        tg_pg_params_t u = {0};
        tg_pg_param_u64(&u, off);
        tg_pg_param_text(&u, customer_id);
        tg_pg_param_text(&u, metric);
        tg_pg_param_i64(&u, tg_pg_i64(r, i, 0));
        tg_pg_param_i64(&u, tg_pg_i64(r, i, 1));
        tg_pg_param_text(&u, plan);
        rc = tg_pg_query(st,
                         "UPDATE usage_hourly SET exported = exported - $1 WHERE customer_id = $2 AND metric = $3"
                         " AND hour_start = $4 AND period_start = $5 AND plan_id = $6",
                         &u, NULL, err, "taking back a refused meter event");
        units -= off;
    }
    PQclear(r);
    return rc;
}
