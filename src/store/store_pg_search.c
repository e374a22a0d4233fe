/* store_pg_search.c - the PostgreSQL backend's customer search (store.h,
 * tg_store_customer_search): the statement of customer_search.c in PostgreSQL's dialect. Same
 * pages, same sort keys, same errors as the SQLite backend (store_sqlite_search.c). */
#include <string.h>

#include "store/customer_search.h"
#include "store/store_pg_int.h"

int tg_pg_customer_search(tg_store_t *store, const tg_customer_query_t *q, const tg_page_t *page, tg_customer_cb cb,
                          void *arg, tg_page_end_t *end, tg_err_t *err)
{
    tg_csearch_t b;
    int rc = tg_csearch_build(&b, q, page, TG_PG_CUSTOMER_COLS, 1, err);
    if (rc != 0)
        return rc;
    tg_pg_params_t p = {0};
    for (int i = 0; i < b.np; i++) {
        if (b.p[i].text != NULL)
            tg_pg_param_text(&p, b.p[i].text);
        else
            tg_pg_param_i64(&p, b.p[i].num);
    }
    PGresult *r;
    if ((rc = tg_pg_query_unprepared(tg_pg(store), b.sql, &p, &r, err, "searching customers")) != 0)
        return rc;
    /* as store_pg_lists.c's pages: the row past the limit only says that more follow */
    memset(end, 0, sizeof(*end));
    char key[TG_PAGE_KEY_MAX] = "";
    size_t n = (size_t)PQntuples(r);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i == page->limit) {
            end->has_more = 1;
            memcpy(end->next, key, sizeof(key));
            break;
        }
        tg_customer_t cu;
        tg_pg_read_customer(r, (int)i, &cu);
        if (tg_csearch_key(&b, cu.id, cu.created_at, PQgetvalue(r, (int)i, 12), key) != 0)
            rc = tg_errf(err, TG_ERANGE, "searching customers: a sort key does not fit a cursor");
        else if (cb(&cu, arg) != 0)
            break;
    }
    PQclear(r);
    return rc;
}
