/* store_sqlite_lists.c - the SQLite backend's paged lists and the records of what could not be
 * stored or billed (usage_rejected, billing_failures); see store.h.
 *
 * Every list is keyset-paginated: the query asks for the rows after the previous page's last
 * sort key, in the order of an index, with LIMIT page+1; the extra row only says that more
 * follow. A page costs the same on the first and the ten-thousandth page (OFFSET would read
 * and drop every earlier row), and rows added meanwhile neither repeat nor shift the pages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store_sqlite_int.h"

int tg_sqlite_run_page(tg_sqlite_t *st, sqlite3_stmt *s, size_t limit, tg_sqlite_page_row_fn row, void *ctx,
                       tg_page_end_t *end, const char *doing, tg_err_t *err)
{
    memset(end, 0, sizeof(*end));
    size_t n = 0;
    int step, rc = 0;
    char key[TG_PAGE_KEY_MAX] = "";
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == limit) { /* the one past the page: there is more */
            end->has_more = 1;
            memcpy(end->next, key, sizeof(key));
            break;
        }
        n++;
        if (row(s, ctx, key) != 0)
            break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, doing);
    sqlite3_finalize(s);
    return rc;
}

/* ---- rejected usage ---- */

typedef struct {
    tg_usage_rejected_cb cb;
    void *arg;
} rejected_ctx_t;

static int rejected_row(sqlite3_stmt *s, void *ctx, char key[TG_PAGE_KEY_MAX])
{
    rejected_ctx_t *c = ctx;
    tg_usage_rejected_t r;
    memset(&r, 0, sizeof(r));
    r.id = sqlite3_column_int64(s, 0);
    r.batch_id = (uint64_t)sqlite3_column_int64(s, 1);
    r.row.event_id = (uint64_t)sqlite3_column_int64(s, 2);
    tg_sqlite_text(s, 3, r.row.customer_id, sizeof(r.row.customer_id));
    tg_sqlite_text(s, 4, r.row.key_id, sizeof(r.row.key_id));
    tg_sqlite_text(s, 5, r.row.plan_id, sizeof(r.row.plan_id));
    tg_sqlite_text(s, 6, r.row.metric, sizeof(r.row.metric));
    tg_sqlite_text(s, 7, r.row.endpoint, sizeof(r.row.endpoint));
    const char *u = (const char *)sqlite3_column_text(s, 8);
    for (; u != NULL && *u >= '0' && *u <= '9'; u++) /* written by us as a decimal uint64 */
        r.row.units = r.row.units * 10 + (uint64_t)(*u - '0');
    r.row.period_start = sqlite3_column_int64(s, 9);
    r.row.ts_ns = sqlite3_column_int64(s, 10);
    r.row.status = sqlite3_column_int(s, 11);
    tg_sqlite_text(s, 12, r.reason, sizeof(r.reason));
    r.rejected_at = sqlite3_column_int64(s, 13);
    snprintf(key, TG_PAGE_KEY_MAX, "%lld", (long long)r.id);
    return c->cb(&r, c->arg);
}

int tg_sqlite_usage_rejected_list(tg_store_t *store, const tg_page_t *page, tg_usage_rejected_cb cb, void *arg,
                                  tg_page_end_t *end, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    int64_t after = 0;
    if (page->after[0] != '\0' && tg_page_key_parse_num(page->after, &after) != 0)
        return tg_errf(err, TG_EINVAL, "the cursor does not belong to this list");
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT id, batch_id, event_id, customer_id, key_id, plan_id, metric, endpoint, units,"
                               " period_start, ts_ns, status, reason, rejected_at FROM usage_rejected WHERE id > ?"
                               " ORDER BY id LIMIT ?",
                               &s, err, "listing rejected usage");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, after);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)page->limit + 1);
    rejected_ctx_t c = {cb, arg};
    return tg_sqlite_run_page(st, s, page->limit, rejected_row, &c, end, "listing rejected usage", err);
}

static int count_rows(tg_sqlite_t *st, const char *sql, uint64_t *count, const char *doing, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, sql, &s, err, doing);
    if (rc != 0)
        return rc;
    if (sqlite3_step(s) == SQLITE_ROW)
        *count = (uint64_t)sqlite3_column_int64(s, 0);
    else
        rc = tg_sqlite_error(st, err, doing);
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_usage_rejected_count(tg_store_t *store, uint64_t *count, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    return count_rows(st, "SELECT COUNT(*) FROM usage_rejected", count, "counting rejected usage", err);
}

int tg_sqlite_billing_failure_count(tg_store_t *store, uint64_t *count, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    return count_rows(st, "SELECT COUNT(*) FROM billing_failures", count, "counting billing failures", err);
}

/* ---- billing failures ---- */

static int exec_bound(tg_sqlite_t *st, sqlite3_stmt *s, const char *doing, tg_err_t *err)
{
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : tg_sqlite_error(st, err, doing);
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_billing_failure_set(tg_store_t *store, const char *customer_id, const char *type, const char *message,
                                  int64_t at, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "INSERT INTO billing_failures(customer_id, type, message, first_at, last_at, runs)"
                               " VALUES (?1, ?2, ?3, ?4, ?4, 1) ON CONFLICT(customer_id) DO UPDATE SET"
                               " type = excluded.type, message = excluded.message, last_at = excluded.last_at,"
                               " runs = runs + 1",
                               &s, err, "recording a billing failure");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, type, (int)strnlen(type, TG_FAILURE_TYPE_MAX - 1), SQLITE_STATIC);
    sqlite3_bind_text(s, 3, message, (int)strnlen(message, TG_FAILURE_MSG_MAX - 1), SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, at);
    return exec_bound(st, s, "recording a billing failure", err);
}

int tg_sqlite_billing_failure_clear(tg_store_t *store, const char *customer_id, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    /* cached: the period closer clears every customer it invoices */
    int rc = tg_sqlite_cached(st, SQ_FAILURE_CLEAR, "DELETE FROM billing_failures WHERE customer_id = ?", &s, err,
                              "clearing a billing failure");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(s) == SQLITE_DONE ? 0 : tg_sqlite_error(st, err, "clearing a billing failure");
    tg_sqlite_done(s);
    return rc;
}

typedef struct {
    tg_billing_failure_cb cb;
    void *arg;
} failure_ctx_t;

static int failure_row(sqlite3_stmt *s, void *ctx, char key[TG_PAGE_KEY_MAX])
{
    failure_ctx_t *c = ctx;
    tg_billing_failure_t f;
    memset(&f, 0, sizeof(f));
    tg_sqlite_text(s, 0, f.customer_id, sizeof(f.customer_id));
    tg_sqlite_text(s, 1, f.type, sizeof(f.type));
    tg_sqlite_text(s, 2, f.message, sizeof(f.message));
    f.first_at = sqlite3_column_int64(s, 3);
    f.last_at = sqlite3_column_int64(s, 4);
    f.runs = sqlite3_column_int64(s, 5);
    snprintf(key, TG_PAGE_KEY_MAX, "%s", f.customer_id);
    return c->cb(&f, c->arg);
}

int tg_sqlite_billing_failure_list(tg_store_t *store, const tg_page_t *page, tg_billing_failure_cb cb, void *arg,
                                   tg_page_end_t *end, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    char after[TG_ID_MAX] = "";
    if (page->after[0] != '\0' && tg_page_key_parse_id(page->after, after) != 0)
        return tg_errf(err, TG_EINVAL, "the cursor does not belong to this list");
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT customer_id, type, message, first_at, last_at, runs FROM billing_failures"
                               " WHERE customer_id > ? ORDER BY customer_id LIMIT ?",
                               &s, err, "listing billing failures");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, after, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)page->limit + 1);
    failure_ctx_t c = {cb, arg};
    return tg_sqlite_run_page(st, s, page->limit, failure_row, &c, end, "listing billing failures", err);
}

/* ---- lists, one page at a time (store.h) ----
 * Each list keeps the order it always had, newest first: (num DESC, id) where num is created_at
 * or period_start; migration 9 adds an index in exactly that order, so a page is an index range
 * scan whatever its position. The key of a row is "<num>/<id>". */

typedef struct {
    tg_sqlite_t *st;
    int kind; /* 0 customers, 1 keys, 2 invoices */
    void *cb;
    void *arg;
    int failed; /* an invoice could not be read (out of memory) */
} page_ctx_t;

static int page_row(sqlite3_stmt *s, void *ctx, char key[TG_PAGE_KEY_MAX])
{
    page_ctx_t *c = ctx;
    if (c->kind == 0) {
        tg_customer_t cu;
        tg_sqlite_read_customer(s, &cu);
        snprintf(key, TG_PAGE_KEY_MAX, "%lld/%s", (long long)cu.created_at, cu.id);
        return ((tg_customer_cb)c->cb)(&cu, c->arg);
    }
    if (c->kind == 1) {
        tg_key_t k;
        tg_sqlite_read_key(s, &k);
        snprintf(key, TG_PAGE_KEY_MAX, "%lld/%s", (long long)k.created_at, k.id);
        return ((tg_key_cb)c->cb)(&k, c->arg);
    }
    tg_invoice_t inv;
    if (tg_sqlite_read_invoice(s, &inv) != 0) {
        c->failed = 1;
        return 1;
    }
    snprintf(key, TG_PAGE_KEY_MAX, "%lld/%s", (long long)inv.period_start, inv.id);
    int stop = ((tg_invoice_cb)c->cb)(&inv, c->arg);
    tg_invoice_clear(&inv);
    return stop;
}

/* select: "SELECT cols FROM table WHERE <filter>" (the filter's parameter, if any, is ?1 and is
 * filter_value); num: the ordering column. */
static int list_page(tg_sqlite_t *st, const char *select, const char *filter_value, const char *num,
                     const tg_page_t *page, page_ctx_t *ctx, tg_page_end_t *end, const char *doing, tg_err_t *err)
{
    int64_t after_num = 0;
    char after_id[TG_ID_MAX] = "";
    int after = page->after[0] != '\0';
    if (after && tg_page_key_parse_num_id(page->after, &after_num, after_id) != 0)
        return tg_errf(err, TG_EINVAL, "the cursor does not belong to this list");
    if (page->limit < 1 || page->limit > TG_PAGE_MAX)
        return tg_errf(err, TG_EINVAL, "a page holds 1 to %d items", TG_PAGE_MAX);
    char sql[1024];
    int n = after
                ? snprintf(sql, sizeof(sql), "%s AND (%s < ?2 OR (%s = ?2 AND id > ?3)) ORDER BY %s DESC, id LIMIT ?4",
                           select, num, num, num)
                : snprintf(sql, sizeof(sql), "%s ORDER BY %s DESC, id LIMIT ?4", select, num);
    if (n < 0 || (size_t)n >= sizeof(sql))
        return tg_errf(err, TG_EINVAL, "%s: query too long", doing);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, sql, &s, err, doing);
    if (rc != 0)
        return rc;
    if (filter_value != NULL)
        sqlite3_bind_text(s, 1, filter_value, -1, SQLITE_STATIC);
    if (after) {
        sqlite3_bind_int64(s, 2, after_num);
        sqlite3_bind_text(s, 3, after_id, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(s, 4, (sqlite3_int64)page->limit + 1);
    rc = tg_sqlite_run_page(st, s, page->limit, page_row, ctx, end, doing, err);
    if (rc == 0 && ctx->failed)
        rc = tg_errf(err, TG_ENOMEM, "%s: out of memory", doing);
    return rc;
}

int tg_sqlite_customer_page(tg_store_t *store, const tg_page_t *page, tg_customer_cb cb, void *arg, tg_page_end_t *end,
                            tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    page_ctx_t c = {st, 0, (void *)cb, arg, 0};
    return list_page(st, "SELECT " CUSTOMER_COLS " FROM customers WHERE 1", NULL, "created_at", page, &c, end,
                     "listing customers", err);
}

int tg_sqlite_key_page(tg_store_t *store, const char *customer_id, const tg_page_t *page, tg_key_cb cb, void *arg,
                       tg_page_end_t *end, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    page_ctx_t c = {st, 1, (void *)cb, arg, 0};
    return list_page(st, "SELECT " KEY_COLS " FROM api_keys WHERE customer_id = ?1", customer_id, "created_at", page,
                     &c, end, "listing keys", err);
}

int tg_sqlite_invoice_page(tg_store_t *store, const char *customer_id, const tg_page_t *page, tg_invoice_cb cb,
                           void *arg, tg_page_end_t *end, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    page_ctx_t c = {st, 2, (void *)cb, arg, 0};
    return list_page(st,
                     customer_id != NULL ? "SELECT " INVOICE_COLS " FROM invoices WHERE customer_id = ?1"
                                         : "SELECT " INVOICE_COLS " FROM invoices WHERE 1",
                     customer_id, "period_start", page, &c, end, "listing invoices", err);
}

int tg_sqlite_key_count_active(tg_store_t *store, const char *customer_id, int64_t now, uint64_t *count, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc =
        tg_sqlite_prepare(st,
                          "SELECT COUNT(*) FROM api_keys WHERE customer_id = ? AND (revoked_at = 0 OR revoked_at > ?2)"
                          " AND (expires_at = 0 OR expires_at > ?2)",
                          &s, err, "counting keys");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, now);
    if (sqlite3_step(s) == SQLITE_ROW)
        *count = (uint64_t)sqlite3_column_int64(s, 0);
    else
        rc = tg_sqlite_error(st, err, "counting keys");
    sqlite3_finalize(s);
    return rc;
}
