/* store_pg_search.c - the PostgreSQL backend's customer search (store.h,
 * tg_store_customer_search): the statement of customer_search.c in PostgreSQL's dialect. Same
 * pages, same sort keys, same errors as the SQLite backend (store_sqlite_search.c). */
#include <stdio.h>
#include <string.h>

#include "store/list_search.h"
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

/* ---- invoices (tg_store_invoice_search) ---- */

static void bind(const tg_csearch_t *b, tg_pg_params_t *p)
{
    for (int i = 0; i < b->np; i++) {
        if (b->p[i].text != NULL)
            tg_pg_param_text(p, b->p[i].text);
        else
            tg_pg_param_i64(p, b->p[i].num);
    }
}

int tg_pg_invoice_search(tg_store_t *store, const tg_invoice_query_t *q, const tg_page_t *page, tg_invoice_cb cb,
                         void *arg, tg_page_end_t *end, tg_err_t *err)
{
    tg_csearch_t b;
    int rc = tg_isearch_build(&b, q, page, TG_PG_INVOICE_COLS, 1, 0, err);
    if (rc != 0)
        return rc;
    tg_pg_params_t p = {0};
    bind(&b, &p);
    PGresult *r;
    if ((rc = tg_pg_query_unprepared(tg_pg(store), b.sql, &p, &r, err, "listing invoices")) != 0)
        return rc;
    memset(end, 0, sizeof(*end));
    char key[TG_PAGE_KEY_MAX] = "";
    size_t n = (size_t)PQntuples(r);
    for (size_t i = 0; i < n; i++) {
        if (i == page->limit) {
            end->has_more = 1;
            memcpy(end->next, key, sizeof(key));
            break;
        }
        tg_invoice_t inv;
        if (tg_pg_read_invoice(r, (int)i, &inv) != 0) {
            tg_invoice_clear(&inv);
            rc = tg_errf(err, TG_ENOMEM, "listing invoices: out of memory");
            break;
        }
        snprintf(key, sizeof(key), "%lld/%s", (long long)inv.period_start, inv.id);
        int stop = cb(&inv, arg);
        tg_invoice_clear(&inv);
        if (stop)
            break;
    }
    PQclear(r);
    return rc;
}

/* A SUM (numeric) as int64; -1 if it is not an integer that fits. */
static int sum_i64(const char *s, int64_t *out)
{
    int neg = *s == '-';
    uint64_t v = 0;
    s += neg;
    if (*s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_C(1) << 63) / 10 ||
            (v = v * 10 + (uint64_t)(*s - '0')) > (UINT64_C(1) << 63) - !neg)
            return -1;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int tg_pg_invoice_search_totals(tg_store_t *store, const tg_invoice_query_t *q, tg_invoice_totals_cb cb, void *arg,
                                tg_err_t *err)
{
    tg_csearch_t b;
    int rc = tg_isearch_build(&b, q, NULL, NULL, 1, 1, err);
    if (rc != 0)
        return rc;
    tg_pg_params_t p = {0};
    bind(&b, &p);
    PGresult *r;
    if ((rc = tg_pg_query_unprepared(tg_pg(store), b.sql, &p, &r, err, "summing invoices")) != 0)
        return rc;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        char cur[8], status[TG_STATUS_MAX];
        int64_t total = 0;
        tg_pg_text(r, i, 0, cur, sizeof(cur));
        tg_pg_text(r, i, 1, status, sizeof(status));
        /* SUM(bigint) is numeric in PostgreSQL: exact, and checked here against int64 */
        if (sum_i64(PQgetvalue(r, i, 3), &total) != 0)
            rc = tg_errf(err, TG_ERANGE, "summing invoices: the %s total leaves the money range", cur);
        else if (cb(cur, status, total, tg_pg_u64(r, i, 2), arg) != 0)
            break;
    }
    PQclear(r);
    return rc;
}
