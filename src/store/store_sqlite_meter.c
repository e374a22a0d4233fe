/* store_sqlite_meter.c - the SQLite backend of store_meter.h: the usage_hourly and meter_export
 * tables of migration 17 (the fold that fills usage_hourly is in store_sqlite.c). */
#include <stdio.h>
#include <string.h>

#include "store/store_meter.h"
#include "store/store_sqlite_int.h"

int tg_sqlite_meter_export_set(tg_store_t *store, int on, int64_t since, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               on ? "INSERT INTO meter_export(id, since) VALUES (1, ?) ON CONFLICT DO NOTHING"
                                  : "DELETE FROM meter_export",
                               &s, err, "turning meter export on or off");
    if (rc != 0)
        return rc;
    if (on)
        sqlite3_bind_int64(s, 1, since);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "turning meter export on or off");
    sqlite3_finalize(s);
    return rc;
}

static void read_bucket(sqlite3_stmt *s, tg_meter_bucket_t *b)
{
    memset(b, 0, sizeof(*b));
    tg_sqlite_text(s, 0, b->customer_id, sizeof(b->customer_id));
    tg_sqlite_text(s, 1, b->metric, sizeof(b->metric));
    b->hour_start = sqlite3_column_int64(s, 2);
    b->period_start = sqlite3_column_int64(s, 3);
    tg_sqlite_text(s, 4, b->plan_id, sizeof(b->plan_id));
    b->ts = sqlite3_column_int64(s, 5);
    b->units = (uint64_t)sqlite3_column_int64(s, 6);
    b->exported = (uint64_t)sqlite3_column_int64(s, 7);
    b->seq = sqlite3_column_int64(s, 8);
}

int tg_sqlite_meter_due(tg_store_t *store, int64_t hour_before, const tg_meter_cursor_t *cursor, tg_meter_bucket_t *out,
                        size_t limit, size_t *n, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    *n = 0;
    sqlite3_stmt *s;
    /* the partial index usage_hourly_unexported holds only rows with something to send */
    int rc = tg_sqlite_prepare(st,
                               "SELECT customer_id, metric, hour_start, period_start, plan_id, ts, units, exported, seq"
                               " FROM usage_hourly WHERE units > exported AND hour_start < ?"
                               " AND (customer_id, metric, ts, period_start, plan_id) > (?, ?, ?, ?, ?)"
                               " ORDER BY customer_id, metric, ts, period_start, plan_id LIMIT ?",
                               &s, err, "reading usage to send to Stripe");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, hour_before);
    sqlite3_bind_text(s, 2, cursor->customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, cursor->metric, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, cursor->ts);
    sqlite3_bind_int64(s, 5, cursor->period_start);
    sqlite3_bind_text(s, 6, cursor->plan_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, (sqlite3_int64)limit);
    int step = SQLITE_DONE;
    while (*n < limit && (step = sqlite3_step(s)) == SQLITE_ROW)
        read_bucket(s, &out[(*n)++]);
    if (*n < limit && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "reading usage to send to Stripe");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_meter_mark(tg_store_t *store, const tg_meter_bucket_t *b, uint64_t exported, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "UPDATE usage_hourly SET exported = ? WHERE customer_id = ? AND metric = ?"
                               " AND hour_start = ? AND period_start = ? AND plan_id = ? AND exported = ?",
                               &s, err, "marking usage sent to Stripe");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)exported);
    sqlite3_bind_text(s, 2, b->customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, b->metric, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, b->hour_start);
    sqlite3_bind_int64(s, 5, b->period_start);
    sqlite3_bind_text(s, 6, b->plan_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, (sqlite3_int64)b->exported);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "marking usage sent to Stripe");
    else if (sqlite3_changes(sqlite3_db_handle(s)) != 1)
        rc = tg_errf(err, TG_ESTATE, "the usage of %.40s in hour %lld changed while it was being sent", b->customer_id,
                     (long long)b->hour_start);
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_meter_set_seq(tg_store_t *store, const char *customer_id, const char *metric, int64_t ts, int64_t seq,
                            tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(
        st, "UPDATE usage_hourly SET seq = MAX(seq, ?) WHERE customer_id = ? AND metric = ? AND ts = ?", &s, err,
        "numbering usage sent to Stripe");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, seq);
    sqlite3_bind_text(s, 2, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, metric, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, ts);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "numbering usage sent to Stripe");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_meter_period_exported(tg_store_t *store, const char *customer_id, int64_t period_start,
                                    const char *plan_id, const char *metric, uint64_t *units, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    *units = 0;
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT TG_SUM(exported) FROM usage_hourly WHERE customer_id = ? AND period_start = ?"
                               " AND plan_id = ? AND metric = ?",
                               &s, err, "reading a period's usage");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, period_start);
    sqlite3_bind_text(s, 3, plan_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, metric, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW) {
        sqlite3_int64 v = sqlite3_column_int64(s, 0);
        *units = v > 0 ? (uint64_t)v : 0;
    } else {
        rc = tg_sqlite_error(st, err, "reading a period's usage");
    }
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_meter_prune(tg_store_t *store, int64_t before_s, size_t limit, size_t *deleted, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    if (deleted != NULL)
        *deleted = 0;
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "DELETE FROM usage_hourly WHERE (customer_id, metric, hour_start, period_start, plan_id)"
                               " IN (SELECT customer_id, metric, hour_start, period_start, plan_id FROM usage_hourly"
                               " WHERE hour_start < ? AND units = exported LIMIT ?)",
                               &s, err, "pruning hourly usage");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, before_s);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "pruning hourly usage");
    else if (deleted != NULL)
        *deleted = (size_t)sqlite3_changes(sqlite3_db_handle(s));
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_meter_customer_backlog(tg_store_t *store, const char *customer_id, uint64_t *hours, uint64_t *units,
                                     tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    *hours = *units = 0;
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT COUNT(*), TG_SUM(units - exported) FROM usage_hourly"
                               " WHERE customer_id = ? AND units > exported",
                               &s, err, "reading usage not yet sent to Stripe");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW) {
        *hours = (uint64_t)sqlite3_column_int64(s, 0);
        sqlite3_int64 v = sqlite3_column_int64(s, 1);
        *units = v > 0 ? (uint64_t)v : 0;
    } else {
        rc = tg_sqlite_error(st, err, "reading usage not yet sent to Stripe");
    }
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_meter_outbox_counts(tg_store_t *store, const char *customer_id, uint64_t *pending, uint64_t *failed,
                                  tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    *pending = *failed = 0;
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT COALESCE(SUM(state = 'pending'), 0), COALESCE(SUM(state = 'failed'), 0)"
                               " FROM stripe_outbox WHERE customer_id = ? AND state IN ('pending', 'failed')"
                               " AND kind IN ('meter_event.create', 'late_usage.item')",
                               &s, err, "counting a customer's usage calls to Stripe");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW) {
        *pending = (uint64_t)sqlite3_column_int64(s, 0);
        *failed = (uint64_t)sqlite3_column_int64(s, 1);
    } else {
        rc = tg_sqlite_error(st, err, "counting a customer's usage calls to Stripe");
    }
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_meter_refused(tg_store_t *store, tg_meter_refused_t *out, size_t limit, size_t *n, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    *n = 0;
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT id, customer_id, params FROM stripe_outbox WHERE state = 'failed'"
                               " AND kind = 'meter_event.create' AND last_error LIKE 'Stripe 400 %timestamp%'"
                               " ORDER BY id LIMIT ?",
                               &s, err, "reading refused meter events");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)limit);
    int step = SQLITE_DONE;
    while (*n < limit && (step = sqlite3_step(s)) == SQLITE_ROW) {
        tg_meter_refused_t *r = &out[*n];
        memset(r, 0, sizeof(*r));
        r->outbox_id = sqlite3_column_int64(s, 0);
        tg_sqlite_text(s, 1, r->customer_id, sizeof(r->customer_id));
        const unsigned char *b = sqlite3_column_blob(s, 2);
        int len = sqlite3_column_bytes(s, 2);
        if (b == NULL || len <= 0 || (size_t)len >= sizeof(r->params))
            continue; /* not a form this module wrote */
        memcpy(r->params, b, (size_t)len);
        (*n)++;
    }
    if (*n < limit && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "reading refused meter events");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_meter_take_back(tg_store_t *store, int64_t outbox_id, const char *customer_id, const char *metric,
                              int64_t ts, uint64_t units, int64_t now, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "UPDATE stripe_outbox SET state = 'done', response_id = 'sent again as late usage',"
                               " updated_at = ? WHERE id = ? AND state = 'failed'",
                               &s, err, "taking back a refused meter event");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 2, outbox_id);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "taking back a refused meter event");
    else if (sqlite3_changes(sqlite3_db_handle(s)) != 1)
        rc = tg_errf(err, TG_ESTATE, "outbox row %lld is no longer failed", (long long)outbox_id);
    sqlite3_finalize(s);
    /* the bucket's rows, newest period and plan first: the units came off their exported counts */
    sqlite3_stmt *sel = NULL, *upd = NULL;
    if (rc == 0)
        rc = tg_sqlite_prepare(
            st,
            "SELECT hour_start, period_start, plan_id, exported FROM usage_hourly WHERE customer_id = ?"
            " AND metric = ? AND ts = ? AND exported > 0 ORDER BY period_start DESC, plan_id DESC",
            &sel, err, "taking back a refused meter event");
    if (rc == 0)
        rc = tg_sqlite_prepare(st,
                               "UPDATE usage_hourly SET exported = exported - ? WHERE customer_id = ? AND metric = ?"
                               " AND hour_start = ? AND period_start = ? AND plan_id = ?",
                               &upd, err, "taking back a refused meter event");
    if (rc == 0) {
        sqlite3_bind_text(sel, 1, customer_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(sel, 2, metric, -1, SQLITE_STATIC);
        sqlite3_bind_int64(sel, 3, ts);
        int step = SQLITE_DONE;
        while (units > 0 && (step = sqlite3_step(sel)) == SQLITE_ROW) {
            uint64_t had = (uint64_t)sqlite3_column_int64(sel, 3), off = had < units ? had : units;
            sqlite3_reset(upd);
            sqlite3_bind_int64(upd, 1, (sqlite3_int64)off);
            sqlite3_bind_text(upd, 2, customer_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(upd, 3, metric, -1, SQLITE_STATIC);
            sqlite3_bind_int64(upd, 4, sqlite3_column_int64(sel, 0));
            sqlite3_bind_int64(upd, 5, sqlite3_column_int64(sel, 1));
            sqlite3_bind_text(upd, 6, (const char *)sqlite3_column_text(sel, 2), -1, SQLITE_TRANSIENT);
            if (sqlite3_step(upd) != SQLITE_DONE) {
                rc = tg_sqlite_error(st, err, "taking back a refused meter event");
                break;
            }
            units -= off;
        }
        if (rc == 0 && units > 0 && step != SQLITE_DONE)
            rc = tg_sqlite_error(st, err, "taking back a refused meter event");
    }
    sqlite3_finalize(sel);
    sqlite3_finalize(upd);
    return rc;
}
