/* store_sqlite_invoices.c - invoices in SQLite: drafts built from unbilled usage in one
 * transaction, gapless numbering at finalization, state changes (store.h). */
#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store_sqlite_int.h"
#include "util/clock.h"
#include "util/pack.h"

/* ---- invoices ---- */

int tg_sqlite_read_invoice(sqlite3_stmt *s, tg_invoice_t *inv)
{
    memset(inv, 0, sizeof(*inv));
    tg_sqlite_text(s, 0, inv->id, sizeof(inv->id));
    tg_sqlite_text(s, 1, inv->customer_id, sizeof(inv->customer_id));
    inv->period_start = sqlite3_column_int64(s, 2);
    inv->period_end = sqlite3_column_int64(s, 3);
    tg_sqlite_text(s, 4, inv->status, sizeof(inv->status));
    tg_sqlite_text(s, 5, inv->number, sizeof(inv->number));
    tg_sqlite_text(s, 6, inv->currency, sizeof(inv->currency));
    inv->total = sqlite3_column_int64(s, 7);
    const unsigned char *b = sqlite3_column_text(s, 8);
    inv->body = strdup(b != NULL ? (const char *)b : "{}");
    inv->created_at = sqlite3_column_int64(s, 9);
    inv->finalized_at = sqlite3_column_int64(s, 10);
    inv->closed_at = sqlite3_column_int64(s, 11);
    inv->held = sqlite3_column_int(s, 12) != 0;
    return inv->body != NULL ? 0 : TG_ENOMEM;
}

static int find_invoice(tg_sqlite_t *st, const char *sql, const char *key, int64_t num, tg_invoice_t *out,
                        tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, sql, &s, err, "reading an invoice");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    if (num != INT64_MIN)
        sqlite3_bind_int64(s, 2, num);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        rc = tg_sqlite_read_invoice(s, out);
    else if (step == SQLITE_DONE)
        rc = TG_ENOTFOUND;
    else
        rc = tg_sqlite_error(st, err, "reading an invoice");
    sqlite3_finalize(s);
    if (rc == TG_ENOTFOUND)
        tg_errf(err, rc, "no invoice %s", key);
    return rc;
}

int tg_sqlite_invoice_get(tg_store_t *store, const char *id, tg_invoice_t *out, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    return find_invoice(st, "SELECT " INVOICE_COLS " FROM invoices WHERE id = ?", id, INT64_MIN, out, err);
}

typedef int (*tg_unbilled_cb)(const tg_unbilled_t *row, void *arg);

/* One row of (period_start, plan_id, metric, units, invoiced_units[, quoted]), in that column
 * order; quoted when the statement has a sixth column. */
static void read_unbilled(sqlite3_stmt *s, tg_unbilled_t *row)
{
    row->period_start = sqlite3_column_int64(s, 0);
    tg_sqlite_text(s, 1, row->plan_id, sizeof(row->plan_id));
    tg_sqlite_text(s, 2, row->metric, sizeof(row->metric));
    row->units = (uint64_t)sqlite3_column_int64(s, 3);
    row->invoiced = (uint64_t)sqlite3_column_int64(s, 4);
    row->quoted = sqlite3_column_count(s) > 5 && sqlite3_column_int(s, 5) != 0;
}

/* The unbilled rows (store.h, tg_invoice_build_cb): and, for an earlier period and plan with late
 * units, its other metrics too, with nothing unbilled (units 0) and their invoiced units, for the
 * late lines' pricing on top of the whole period as billed (its minimum and cap:
 * tg_price_late_in_period). A late row with nothing invoiced says whether its period's invoice
 * billed the plan's minimum all the same (quoted: a line of kind "minimum" of that plan; asked
 * only of those rows, which are rare, so that the closer's usual rows never read a body). A
 * body that is not JSON (none tollgate wrote) counts as no such line. */
static int unbilled_query(tg_sqlite_t *st, const char *customer_id, int64_t period_start, tg_unbilled_cb cb, void *arg,
                          tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = tg_sqlite_fold_journal(st, err); /* (inside a transaction the caller folded already) */
    if (rc != 0)
        return rc;
    rc = tg_sqlite_cached(st, SQ_UNBILLED,
                          "SELECT period_start, plan_id, metric, units - invoiced_units, invoiced_units,"
                          " CASE WHEN period_start < ?2 AND invoiced_units = 0 THEN EXISTS (SELECT 1 FROM invoices v,"
                          " json_each(CASE WHEN json_valid(v.body) THEN v.body ELSE '{}' END, '$.lines') l"
                          " WHERE v.customer_id = ?1 AND v.period_start = usage_period.period_start"
                          " AND json_extract(l.value, '$.kind') = 'minimum'"
                          " AND json_extract(l.value, '$.plan') = usage_period.plan_id) ELSE 0 END"
                          " FROM usage_period WHERE customer_id = ?1 AND period_start <= ?2 AND (units > invoiced_units"
                          " OR (period_start < ?2 AND (period_start, plan_id) IN (SELECT period_start, plan_id"
                          " FROM usage_period WHERE customer_id = ?1 AND period_start < ?2"
                          " AND units > invoiced_units))) ORDER BY period_start, plan_id, metric",
                          &s, err, "reading unbilled usage");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, period_start);
    int step;
    tg_unbilled_t row;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        read_unbilled(s, &row);
        if (cb(&row, arg) != 0) { /* out of memory: a partial list must not be billed and marked */
            rc = tg_errf(err, TG_ENOMEM, "out of memory reading unbilled usage");
            break;
        }
    }
    if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "reading unbilled usage");
    tg_sqlite_done(s);
    return rc;
}

int tg_sqlite_invoice_item_add(tg_store_t *store, const tg_invoice_item_t *item, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "INSERT INTO invoice_items(customer_id, created_at, description, amount, currency)"
                               " VALUES (?,?,?,?,?)",
                               &s, err, "storing an invoice item");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, item->customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, item->created_at);
    sqlite3_bind_text(s, 3, item->description, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, item->amount);
    sqlite3_bind_text(s, 5, item->currency, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "storing an invoice item");
    sqlite3_finalize(s);
    return rc;
}

typedef struct {
    tg_invoice_item_t *items;
    size_t n, cap;
} item_vec_t;

static int pending_items(tg_sqlite_t *st, const char *customer_id, int64_t before, item_vec_t *v, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = tg_sqlite_cached(st, SQ_PENDING_ITEMS,
                              "SELECT id, created_at, description, amount, currency FROM invoice_items"
                              " WHERE customer_id = ? AND invoice_id IS NULL AND created_at < ? ORDER BY id",
                              &s, err, "reading invoice items");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, before);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (v->n == v->cap) {
            size_t cap = v->cap ? v->cap * 2 : 8;
            tg_invoice_item_t *ni = realloc(v->items, cap * sizeof(*ni));
            if (ni == NULL) {
                rc = tg_errf(err, TG_ENOMEM, "out of memory reading invoice items");
                break;
            }
            v->items = ni;
            v->cap = cap;
        }
        tg_invoice_item_t *it = &v->items[v->n++];
        memset(it, 0, sizeof(*it));
        it->id = sqlite3_column_int64(s, 0);
        snprintf(it->customer_id, sizeof(it->customer_id), "%s", customer_id);
        it->created_at = sqlite3_column_int64(s, 1);
        tg_sqlite_text(s, 2, it->description, sizeof(it->description));
        it->amount = sqlite3_column_int64(s, 3);
        tg_sqlite_text(s, 4, it->currency, sizeof(it->currency));
    }
    if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "reading invoice items");
    tg_sqlite_done(s);
    return rc;
}

typedef struct {
    tg_unbilled_t *rows;
    size_t n, cap;
} unbilled_vec_t;

static int collect_unbilled(const tg_unbilled_t *row, void *arg)
{
    unbilled_vec_t *v = arg;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        tg_unbilled_t *r = realloc(v->rows, cap * sizeof(*r));
        if (r == NULL)
            return 1;
        v->rows = r;
        v->cap = cap;
    }
    v->rows[v->n++] = *row;
    return 0;
}

/* The existing invoice of (customer, period_start) into out (may be NULL: only whether there is
 * one); TG_ENOTFOUND if none. A cached statement: the period closer asks this for every period
 * it closes. */
static int invoice_by_period(tg_sqlite_t *st, const char *customer_id, int64_t period_start, tg_invoice_t *out,
                             tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = tg_sqlite_cached(st, SQ_INVOICE_BY_PERIOD,
                              "SELECT " INVOICE_COLS " FROM invoices WHERE customer_id = ? AND period_start = ?", &s,
                              err, "reading an invoice");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, period_start);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        rc = out != NULL ? tg_sqlite_read_invoice(s, out) : 0;
    else if (step == SQLITE_DONE)
        rc = tg_errf(err, TG_ENOTFOUND, "no invoice %s", customer_id);
    else
        rc = tg_sqlite_error(st, err, "reading an invoice");
    tg_sqlite_done(s);
    return rc;
}

/* Steps a cached write statement once and gives it back. */
static int step_done(tg_sqlite_t *st, sqlite3_stmt *s, const char *doing, tg_err_t *err)
{
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : tg_sqlite_error(st, err, doing);
    tg_sqlite_done(s);
    return rc;
}

/* Stores the draft and marks what it bills (usage up to its period, its pending items) invoiced. */
static int invoice_store(tg_sqlite_t *st, const tg_invoice_t *draft, const item_vec_t *items, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = tg_sqlite_cached(st, SQ_INVOICE_INSERT,
                              "INSERT INTO invoices(id, customer_id, period_start, period_end, status, currency, total,"
                              " body, created_at) VALUES (?,?,?,?,'draft',?,?,?,?)",
                              &s, err, "storing an invoice");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, draft->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, draft->customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, draft->period_start);
    sqlite3_bind_int64(s, 4, draft->period_end);
    sqlite3_bind_text(s, 5, draft->currency, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, draft->total);
    sqlite3_bind_text(s, 7, draft->body, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 8, draft->created_at);
    if ((rc = step_done(st, s, "storing an invoice", err)) != 0)
        return rc;
    if ((rc = tg_sqlite_cached(st, SQ_USAGE_INVOICED,
                               "UPDATE usage_period SET invoiced_units = units WHERE customer_id = ?"
                               " AND period_start <= ? AND units > invoiced_units",
                               &s, err, "marking usage invoiced")) != 0)
        return rc;
    sqlite3_bind_text(s, 1, draft->customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, draft->period_start);
    if ((rc = step_done(st, s, "marking usage invoiced", err)) != 0)
        return rc;
    for (size_t i = 0; i < items->n; i++) {
        if ((rc = tg_sqlite_cached(st, SQ_ITEM_INVOICED, "UPDATE invoice_items SET invoice_id = ? WHERE id = ?", &s,
                                   err, "marking items invoiced")) != 0)
            return rc;
        sqlite3_bind_text(s, 1, draft->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, items->items[i].id);
        if ((rc = step_done(st, s, "marking items invoiced", err)) != 0)
            return rc;
    }
    return 0;
}

int tg_sqlite_invoice_create(tg_store_t *store, tg_invoice_t *draft, tg_invoice_build_cb build, void *arg, int *created,
                             tg_invoice_t *out, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    *created = 0;
    /* Inside a caller's transaction (the period closer's batch) this is a savepoint, through
     * statements prepared once per connection; alone it is its own write transaction. */
    int outer = !sqlite3_get_autocommit(st->db);
    int rc = tg_sqlite_fold_journal(st, err);
    if (rc == 0)
        rc = outer ? tg_sqlite_cached_exec(st, SQ_SAVEPOINT_INVOICE, "SAVEPOINT invoice", err, "creating an invoice")
                   : tg_sqlite_exec(st, "BEGIN IMMEDIATE", err, "creating an invoice");
    if (rc != 0)
        return rc;
    unbilled_vec_t v = {0};
    item_vec_t items = {0};
    rc = invoice_by_period(st, draft->customer_id, draft->period_start, out, err);
    if (rc == 0 || rc != TG_ENOTFOUND) /* exists already (idempotent), or failed */
        goto end;
    if ((rc = unbilled_query(st, draft->customer_id, draft->period_start, collect_unbilled, &v, err)) != 0 ||
        (rc = pending_items(st, draft->customer_id, draft->period_end, &items, err)) != 0 ||
        (rc = build(v.rows, v.n, items.items, items.n, draft, arg, err)) != 0 ||
        (rc = invoice_store(st, draft, &items, err)) != 0)
        goto end;
    *created = 1;
end:
    free(v.rows);
    free(items.items);
    if (rc == 0)
        rc = outer ? tg_sqlite_cached_exec(st, SQ_RELEASE_INVOICE, "RELEASE invoice", err, "committing an invoice")
                   : tg_sqlite_exec(st, "COMMIT", err, "committing an invoice");
    if (rc != 0) {
        *created = 0;
        if (outer) {
            tg_sqlite_cached_exec(st, SQ_ROLLBACK_INVOICE, "ROLLBACK TO invoice", NULL, "");
            tg_sqlite_cached_exec(st, SQ_RELEASE_INVOICE, "RELEASE invoice", NULL, "");
        } else {
            tg_sqlite_exec(st, "ROLLBACK", NULL, "");
        }
        return rc;
    }
    return *created && out != NULL ? tg_sqlite_invoice_get(&st->base, draft->id, out, err) : 0;
}

int tg_sqlite_invoice_preview(tg_store_t *store, tg_invoice_t *draft, tg_invoice_build_cb build, void *arg,
                              tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    unbilled_vec_t v = {0};
    item_vec_t items = {0};
    int rc = unbilled_query(st, draft->customer_id, draft->period_start, collect_unbilled, &v, err);
    if (rc == 0)
        rc = pending_items(st, draft->customer_id, draft->period_end, &items, err);
    if (rc == 0)
        rc = build(v.rows, v.n, items.items, items.n, draft, arg, err);
    free(v.rows);
    free(items.items);
    return rc;
}

int tg_sqlite_invoice_list(tg_store_t *store, const char *customer_id, tg_invoice_cb cb, void *arg, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc =
        tg_sqlite_prepare(st,
                          customer_id != NULL ? "SELECT " INVOICE_COLS
                                                " FROM invoices WHERE customer_id = ? ORDER BY period_start DESC, id"
                                              : "SELECT " INVOICE_COLS " FROM invoices ORDER BY period_start DESC, id",
                          &s, err, "listing invoices");
    if (rc != 0)
        return rc;
    if (customer_id != NULL)
        sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    int step;
    tg_invoice_t inv;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (tg_sqlite_read_invoice(s, &inv) != 0) {
            rc = tg_errf(err, TG_ENOMEM, "out of memory listing invoices");
            break;
        }
        int stop = cb(&inv, arg);
        tg_invoice_clear(&inv);
        if (stop)
            break;
    }
    if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "listing invoices");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_invoice_totals(tg_store_t *store, int64_t from, int64_t to, tg_invoice_totals_cb cb, void *arg,
                             tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    /* finalized_at is 0 for a draft and for a draft voided before it was finalized; migration 20
     * indexes it, so a month's invoices are a range scan. */
    int rc =
        tg_sqlite_prepare(st,
                          "SELECT currency, status, SUM(total), COUNT(*) FROM invoices"
                          " WHERE finalized_at >= ? AND finalized_at < ? AND finalized_at > 0 AND status <> 'draft'"
                          " GROUP BY currency, status ORDER BY currency, status",
                          &s, err, "summing invoices");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, from);
    sqlite3_bind_int64(s, 2, to);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        const char *currency = (const char *)sqlite3_column_text(s, 0);
        const char *status = (const char *)sqlite3_column_text(s, 1);
        if (cb(currency != NULL ? currency : "", status != NULL ? status : "", sqlite3_column_int64(s, 2),
               (uint64_t)sqlite3_column_int64(s, 3), arg) != 0)
            break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "summing invoices"); /* SUM's "integer overflow" included */
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_invoice_transition(tg_store_t *store, const char *id, const char *to, int64_t at, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    /* Inside a caller's transaction (a webhook event applied with its mark) this is a savepoint. */
    int outer = !sqlite3_get_autocommit(st->db);
    const char *commit = outer ? "RELEASE invoice_change" : "COMMIT";
    const char *rollback = outer ? "ROLLBACK TO invoice_change; RELEASE invoice_change" : "ROLLBACK";
    int rc = tg_sqlite_exec(st, outer ? "SAVEPOINT invoice_change" : "BEGIN IMMEDIATE", err, "changing an invoice");
    if (rc != 0)
        return rc;
    tg_invoice_t inv;
    if ((rc = tg_sqlite_invoice_get(&st->base, id, &inv, err)) != 0) {
        tg_sqlite_exec(st, rollback, NULL, "");
        return rc;
    }
    const char *from = inv.status;
    int ok = (strcmp(to, "open") == 0 && strcmp(from, "draft") == 0) ||
             (strcmp(to, "void") == 0 && (strcmp(from, "draft") == 0 || strcmp(from, "open") == 0)) ||
             ((strcmp(to, "paid") == 0 || strcmp(to, "uncollectible") == 0) && strcmp(from, "open") == 0);
    if (!ok) {
        rc = tg_errf(err, TG_ESTATE, "invoice %s is %s; it cannot become %s", id, from, to);
        tg_invoice_clear(&inv);
        tg_sqlite_exec(st, rollback, NULL, "");
        return rc;
    }
    tg_invoice_clear(&inv);
    sqlite3_stmt *s;
    char number[TG_INVOICE_NUMBER_MAX] = "";
    if (strcmp(to, "open") == 0) {
        time_t t = (time_t)at;
        struct tm tm;
        gmtime_r(&t, &tm);
        int year = tm.tm_year + 1900;
        if ((rc = tg_sqlite_prepare(st,
                                    "INSERT INTO invoice_numbers(year, last) VALUES (?, 1)"
                                    " ON CONFLICT(year) DO UPDATE SET last = last + 1 RETURNING last",
                                    &s, err, "numbering an invoice")) != 0)
            goto fail;
        sqlite3_bind_int(s, 1, year);
        if (sqlite3_step(s) != SQLITE_ROW) {
            sqlite3_finalize(s);
            rc = tg_sqlite_error(st, err, "numbering an invoice");
            goto fail;
        }
        snprintf(number, sizeof(number), "TG-%d-%06lld", year, (long long)sqlite3_column_int64(s, 0));
        sqlite3_finalize(s);
        rc = tg_sqlite_prepare(st, "UPDATE invoices SET status = 'open', number = ?, finalized_at = ? WHERE id = ?", &s,
                               err, "finalizing an invoice");
        if (rc != 0)
            goto fail;
        sqlite3_bind_text(s, 1, number, -1, SQLITE_STATIC);
    } else {
        rc = tg_sqlite_prepare(st, "UPDATE invoices SET status = ?, closed_at = ? WHERE id = ?", &s, err,
                               "changing an invoice");
        if (rc != 0)
            goto fail;
        sqlite3_bind_text(s, 1, to, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(s, 2, at);
    sqlite3_bind_text(s, 3, id, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    sqlite3_finalize(s);
    if (step != SQLITE_DONE) {
        rc = tg_sqlite_error(st, err, "changing an invoice");
        goto fail;
    }
    return tg_sqlite_exec(st, commit, err, "committing an invoice change");
fail:
    tg_sqlite_exec(st, rollback, NULL, "");
    return rc;
}

/* Every (plan, metric) row of customer_id's usage for period_start into v: all its units, and
 * the units marked invoiced before. */
static int period_usage(tg_sqlite_t *st, const char *customer_id, int64_t period_start, unbilled_vec_t *v,
                        tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT period_start, plan_id, metric, units, invoiced_units FROM usage_period"
                               " WHERE customer_id = ? AND period_start = ? ORDER BY plan_id, metric",
                               &s, err, "reading a period's usage");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, period_start);
    int step;
    tg_unbilled_t row;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        read_unbilled(s, &row);
        if (collect_unbilled(&row, v) != 0) {
            rc = tg_errf(err, TG_ENOMEM, "out of memory reading a period's usage");
            break;
        }
    }
    if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "reading a period's usage");
    sqlite3_finalize(s);
    return rc;
}

/* Writes the refreshed draft inv and marks its period's usage invoiced. */
static int draft_store(tg_sqlite_t *st, const tg_invoice_t *inv, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "UPDATE invoices SET body = ?, total = ? WHERE id = ? AND status = 'draft'", &s, err,
                               "updating a draft");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, inv->body, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, inv->total);
    sqlite3_bind_text(s, 3, inv->id, -1, SQLITE_STATIC);
    rc = sqlite3_step(s) == SQLITE_DONE ? 0 : tg_sqlite_error(st, err, "updating a draft");
    sqlite3_finalize(s);
    if (rc != 0)
        return rc;
    if ((rc = tg_sqlite_prepare(st,
                                "UPDATE usage_period SET invoiced_units = units WHERE customer_id = ?"
                                " AND period_start = ? AND units > invoiced_units",
                                &s, err, "marking usage invoiced")) != 0)
        return rc;
    sqlite3_bind_text(s, 1, inv->customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, inv->period_start);
    rc = sqlite3_step(s) == SQLITE_DONE ? 0 : tg_sqlite_error(st, err, "marking usage invoiced");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_invoice_draft_refresh(tg_store_t *store, const char *id, tg_invoice_build_cb build, void *arg,
                                    int *changed, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    *changed = 0;
    /* Inside a caller's transaction (the finalization) this is a savepoint. */
    int outer = !sqlite3_get_autocommit(st->db);
    const char *commit = outer ? "RELEASE draft_refresh" : "COMMIT";
    const char *rollback = outer ? "ROLLBACK TO draft_refresh; RELEASE draft_refresh" : "ROLLBACK";
    int rc = tg_sqlite_fold_journal(st, err); /* the usage counted so far is in usage_period */
    if (rc == 0)
        rc = tg_sqlite_exec(st, outer ? "SAVEPOINT draft_refresh" : "BEGIN IMMEDIATE", err, "refreshing a draft");
    if (rc != 0)
        return rc;
    tg_invoice_t inv;
    unbilled_vec_t v = {0};
    if ((rc = tg_sqlite_invoice_get(&st->base, id, &inv, err)) != 0) {
        tg_sqlite_exec(st, rollback, NULL, "");
        return rc;
    }
    int fresh = 0;
    if (strcmp(inv.status, "draft") == 0 && (rc = period_usage(st, inv.customer_id, inv.period_start, &v, err)) == 0)
        for (size_t i = 0; i < v.n; i++)
            fresh |= v.rows[i].units > v.rows[i].invoiced;
    if (rc == 0 && fresh && (rc = build(v.rows, v.n, NULL, 0, &inv, arg, err)) == 0 &&
        (rc = draft_store(st, &inv, err)) == 0)
        *changed = 1;
    free(v.rows);
    tg_invoice_clear(&inv);
    if (rc == 0)
        rc = tg_sqlite_exec(st, commit, err, "committing a draft");
    if (rc != 0) {
        *changed = 0;
        tg_sqlite_exec(st, rollback, NULL, "");
    }
    return rc;
}

int tg_sqlite_invoice_hold(tg_store_t *store, const char *id, int held, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "UPDATE invoices SET held = ? WHERE id = ? AND status = 'draft'", &s, err,
                               "holding an invoice");
    if (rc != 0)
        return rc;
    sqlite3_bind_int(s, 1, held ? 1 : 0);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    sqlite3_finalize(s);
    if (step != SQLITE_DONE)
        return tg_sqlite_error(st, err, "holding an invoice");
    if (sqlite3_changes(st->db) == 1)
        return 0;
    tg_invoice_t inv;
    if ((rc = tg_sqlite_invoice_get(&st->base, id, &inv, err)) != 0)
        return rc;
    rc = tg_errf(err, TG_ESTATE, "invoice %s is %s; only a draft can be held or released", id, inv.status);
    tg_invoice_clear(&inv);
    return rc;
}

int tg_sqlite_invoice_drafts_due(tg_store_t *store, int64_t created_before, char (*ids)[TG_ID_MAX], size_t limit,
                                 size_t *n, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    *n = 0;
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT id FROM invoices WHERE status = 'draft' AND held = 0 AND created_at <= ?"
                               " ORDER BY created_at, id LIMIT ?",
                               &s, err, "finding drafts to finalize");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, created_before);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
    int step = SQLITE_DONE;
    while (*n < limit && (step = sqlite3_step(s)) == SQLITE_ROW)
        tg_sqlite_text(s, 0, ids[(*n)++], TG_ID_MAX);
    if (*n < limit && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "finding drafts to finalize");
    sqlite3_finalize(s);
    return rc;
}
