/* store_sqlite_search.c - the SQLite backend's customer search (store.h,
 * tg_store_customer_search): the statement of customer_search.c, bound and paged like the other
 * lists (store_sqlite_lists.c). */
#include <stdio.h>
#include <string.h>

#include "store/list_search.h"
#include "store/store_sqlite_int.h"

typedef struct {
    const tg_csearch_t *b;
    tg_customer_cb cb;
    void *arg;
    int too_long; /* a sort key did not fit a cursor */
} search_ctx_t;

static int search_row(sqlite3_stmt *s, void *ctx, char key[TG_PAGE_KEY_MAX])
{
    search_ctx_t *c = ctx;
    tg_customer_t cu;
    tg_sqlite_read_customer(s, &cu);
    if (tg_csearch_key(c->b, cu.id, cu.created_at, (const char *)sqlite3_column_text(s, 12), key) != 0) {
        c->too_long = 1;
        return 1;
    }
    return c->cb(&cu, c->arg);
}

int tg_sqlite_customer_search(tg_store_t *store, const tg_customer_query_t *q, const tg_page_t *page, tg_customer_cb cb,
                              void *arg, tg_page_end_t *end, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    tg_csearch_t b;
    int rc = tg_csearch_build(&b, q, page, CUSTOMER_COLS, 0, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *s;
    if ((rc = tg_sqlite_prepare(st, b.sql, &s, err, "searching customers")) != 0)
        return rc;
    for (int i = 0; i < b.np; i++) {
        if (b.p[i].text != NULL)
            sqlite3_bind_text(s, i + 1, b.p[i].text, -1, SQLITE_STATIC);
        else
            sqlite3_bind_int64(s, i + 1, b.p[i].num);
    }
    search_ctx_t c = {&b, cb, arg, 0};
    rc = tg_sqlite_run_page(st, s, page->limit, search_row, &c, end, "searching customers", err);
    if (rc == 0 && c.too_long)
        rc = tg_errf(err, TG_ERANGE, "searching customers: a sort key does not fit a cursor");
    return rc;
}

/* ---- invoices (tg_store_invoice_search) ---- */

typedef struct {
    tg_invoice_cb cb;
    void *arg;
    int failed; /* an invoice could not be read (out of memory) */
} invoice_ctx_t;

static int invoice_row(sqlite3_stmt *s, void *ctx, char key[TG_PAGE_KEY_MAX])
{
    invoice_ctx_t *c = ctx;
    tg_invoice_t inv;
    if (tg_sqlite_read_invoice(s, &inv) != 0) {
        c->failed = 1;
        return 1;
    }
    snprintf(key, TG_PAGE_KEY_MAX, "%lld/%s", (long long)inv.period_start, inv.id);
    int stop = c->cb(&inv, c->arg);
    tg_invoice_clear(&inv);
    return stop;
}

static int prepare_bound(tg_sqlite_t *st, const tg_csearch_t *b, sqlite3_stmt **s, const char *doing, tg_err_t *err)
{
    int rc = tg_sqlite_prepare(st, b->sql, s, err, doing);
    if (rc != 0)
        return rc;
    for (int i = 0; i < b->np; i++) {
        if (b->p[i].text != NULL)
            sqlite3_bind_text(*s, i + 1, b->p[i].text, -1, SQLITE_STATIC);
        else
            sqlite3_bind_int64(*s, i + 1, b->p[i].num);
    }
    return 0;
}

int tg_sqlite_invoice_search(tg_store_t *store, const tg_invoice_query_t *q, const tg_page_t *page, tg_invoice_cb cb,
                             void *arg, tg_page_end_t *end, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    tg_csearch_t b;
    sqlite3_stmt *s;
    int rc = tg_isearch_build(&b, q, page, INVOICE_COLS, 0, 0, err);
    if (rc != 0 || (rc = prepare_bound(st, &b, &s, "listing invoices", err)) != 0)
        return rc;
    invoice_ctx_t c = {cb, arg, 0};
    rc = tg_sqlite_run_page(st, s, page->limit, invoice_row, &c, end, "listing invoices", err);
    if (rc == 0 && c.failed)
        rc = tg_errf(err, TG_ENOMEM, "listing invoices: out of memory");
    return rc;
}

int tg_sqlite_invoice_search_totals(tg_store_t *store, const tg_invoice_query_t *q, tg_invoice_totals_cb cb, void *arg,
                                    tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    tg_csearch_t b;
    sqlite3_stmt *s;
    int rc = tg_isearch_build(&b, q, NULL, NULL, 0, 1, err);
    if (rc != 0 || (rc = prepare_bound(st, &b, &s, "summing invoices", err)) != 0)
        return rc;
    int step;
    /* SQLite's SUM of integers is exact and fails ("integer overflow") rather than wrap */
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        char cur[8], status[TG_STATUS_MAX];
        tg_sqlite_text(s, 0, cur, sizeof(cur));
        tg_sqlite_text(s, 1, status, sizeof(status));
        if (cb(cur, status, sqlite3_column_int64(s, 3), (uint64_t)sqlite3_column_int64(s, 2), arg) != 0)
            break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "summing invoices");
    sqlite3_finalize(s);
    return rc;
}
