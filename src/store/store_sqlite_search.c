/* store_sqlite_search.c - the SQLite backend's customer search (store.h,
 * tg_store_customer_search): the statement of customer_search.c, bound and paged like the other
 * lists (store_sqlite_lists.c). */
#include <string.h>

#include "store/customer_search.h"
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
