/* store_pg_lists.c - the PostgreSQL backend's paged lists and the records of what could not be
 * stored or billed (usage_rejected, billing_failures); see store.h. The SQLite backend
 * (store_sqlite_lists.c) is the reference: same pages, same sort keys, same errors.
 *
 * Every list is keyset-paginated with LIMIT page+1 (the extra row only says that more follow),
 * so a page costs the same wherever it is. Two things are written for PostgreSQL:
 * - "after (num, id) in the order num DESC, id" is `num <= $n AND (num < $n OR id > $m)`: the
 *   first conjunct is an index bound (the scan starts at the cursor), where SQLite's
 *   `num < ? OR (num = ? AND id > ?)` would make PostgreSQL's scan start at the top and filter
 *   every earlier row out, page after page.
 * - ids are compared and sorted COLLATE "C" (bytewise, SQLite's BINARY): the database's own
 *   collation may order "cus_B" after "cus_a", and a page boundary compared in one order and
 *   sorted in another would skip or repeat rows. The list indexes are in the database's
 *   collation; ties on the time are few, and PostgreSQL sorts them incrementally after the
 *   index's order on the time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_pg_int.h"
#include "util/utf8.h"

int tg_pg_read_invoice(const PGresult *res, int row, tg_invoice_t *inv)
{
    memset(inv, 0, sizeof(*inv));
    tg_pg_text(res, row, 0, inv->id, sizeof(inv->id));
    tg_pg_text(res, row, 1, inv->customer_id, sizeof(inv->customer_id));
    inv->period_start = tg_pg_i64(res, row, 2);
    inv->period_end = tg_pg_i64(res, row, 3);
    tg_pg_text(res, row, 4, inv->status, sizeof(inv->status));
    tg_pg_text(res, row, 5, inv->number, sizeof(inv->number));
    tg_pg_text(res, row, 6, inv->currency, sizeof(inv->currency));
    inv->total = tg_pg_i64(res, row, 7);
    inv->body = PQgetisnull(res, row, 8) ? strdup("{}") : tg_pg_strdup(res, row, 8, NULL);
    inv->created_at = tg_pg_i64(res, row, 9);
    inv->finalized_at = tg_pg_i64(res, row, 10);
    inv->closed_at = tg_pg_i64(res, row, 11);
    inv->held = tg_pg_i64(res, row, 12) != 0;
    return inv->body != NULL ? 0 : TG_ENOMEM;
}

void tg_pg_run_page(PGresult *res, size_t limit, tg_pg_page_row_fn row, void *ctx, tg_page_end_t *end)
{
    memset(end, 0, sizeof(*end));
    char key[TG_PAGE_KEY_MAX] = "";
    size_t n = (size_t)PQntuples(res);
    for (size_t i = 0; i < n; i++) {
        if (i == limit) { /* the one past the page: there is more */
            end->has_more = 1;
            memcpy(end->next, key, sizeof(key));
            break;
        }
        if (row(res, (int)i, ctx, key) != 0)
            break;
    }
    PQclear(res);
}

/* ---- rejected usage ---- */

typedef struct {
    tg_usage_rejected_cb cb;
    void *arg;
} rejected_ctx_t;

static int rejected_row(const PGresult *res, int i, void *ctx, char key[TG_PAGE_KEY_MAX])
{
    rejected_ctx_t *c = ctx;
    tg_usage_rejected_t r;
    memset(&r, 0, sizeof(r));
    r.id = tg_pg_i64(res, i, 0);
    r.batch_id = (uint64_t)tg_pg_i64(res, i, 1); /* stored as the int64 of the same bits, as in SQLite */
    r.row.event_id = (uint64_t)tg_pg_i64(res, i, 2);
    tg_pg_text(res, i, 3, r.row.customer_id, sizeof(r.row.customer_id));
    tg_pg_text(res, i, 4, r.row.key_id, sizeof(r.row.key_id));
    tg_pg_text(res, i, 5, r.row.plan_id, sizeof(r.row.plan_id));
    tg_pg_text(res, i, 6, r.row.metric, sizeof(r.row.metric));
    tg_pg_text(res, i, 7, r.row.endpoint, sizeof(r.row.endpoint));
    /* units is text: a refused value may not fit a BIGINT; written by the store as a decimal
     * uint64, read back digit by digit (at most 20 of them, so no overflow check is needed) */
    char units[24];
    tg_pg_text(res, i, 8, units, sizeof(units));
    for (const char *u = units; *u >= '0' && *u <= '9'; u++)
        r.row.units = r.row.units * 10 + (uint64_t)(*u - '0');
    r.row.period_start = tg_pg_i64(res, i, 9);
    r.row.ts_ns = tg_pg_i64(res, i, 10);
    r.row.status = (int)tg_pg_i64(res, i, 11);
    tg_pg_text(res, i, 12, r.reason, sizeof(r.reason));
    r.rejected_at = tg_pg_i64(res, i, 13);
    snprintf(key, TG_PAGE_KEY_MAX, "%lld", (long long)r.id);
    return c->cb(&r, c->arg);
}

int tg_pg_usage_rejected_list(tg_store_t *store, const tg_page_t *page, tg_usage_rejected_cb cb, void *arg,
                              tg_page_end_t *end, tg_err_t *err)
{
    int64_t after = 0;
    if (page->after[0] != '\0' && tg_page_key_parse_num(page->after, &after) != 0)
        return tg_errf(err, TG_EINVAL, "the cursor does not belong to this list");
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, after);
    tg_pg_param_i64(&p, (int64_t)page->limit + 1);
    PGresult *r;
    int rc = tg_pg_query(tg_pg(store),
                         "SELECT id, batch_id, event_id, customer_id, key_id, plan_id, metric, endpoint, units,"
                         " period_start, ts_ns, status, reason, rejected_at FROM usage_rejected WHERE id > $1"
                         " ORDER BY id LIMIT $2",
                         &p, &r, err, "listing rejected usage");
    if (rc != 0)
        return rc;
    rejected_ctx_t c = {cb, arg};
    tg_pg_run_page(r, page->limit, rejected_row, &c, end);
    return 0;
}

static int count_rows(tg_store_t *store, const char *sql, uint64_t *count, const char *doing, tg_err_t *err)
{
    PGresult *r;
    int rc = tg_pg_query(tg_pg(store), sql, NULL, &r, err, doing);
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 1)
        *count = tg_pg_u64(r, 0, 0);
    else
        rc = tg_errf(err, TG_ESTORE, "%s: no count came back", doing);
    PQclear(r);
    return rc;
}

int tg_pg_usage_rejected_count(tg_store_t *store, uint64_t *count, tg_err_t *err)
{
    return count_rows(store, "SELECT COUNT(*) FROM usage_rejected", count, "counting rejected usage", err);
}

/* ---- billing failures ---- */

int tg_pg_billing_failure_count(tg_store_t *store, uint64_t *count, tg_err_t *err)
{
    return count_rows(store, "SELECT COUNT(*) FROM billing_failures", count, "counting billing failures", err);
}

/* s cut to cap - 1 bytes, as SQLite's backend stores it, and made valid UTF-8: PostgreSQL
 * refuses text that is not (a cut may split a character; a message may quote raw bytes). */
static void text_capped(char *out, size_t cap, const char *s)
{
    size_t n = strnlen(s, cap - 1);
    memcpy(out, s, n);
    out[n] = '\0';
    tg_utf8_scrub(out);
}

int tg_pg_billing_failure_set(tg_store_t *store, const char *customer_id, const char *type, const char *message,
                              int64_t at, tg_err_t *err)
{
    char t[TG_FAILURE_TYPE_MAX], m[TG_FAILURE_MSG_MAX];
    text_capped(t, sizeof(t), type);
    text_capped(m, sizeof(m), message);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    tg_pg_param_text(&p, t);
    tg_pg_param_text(&p, m);
    tg_pg_param_i64(&p, at);
    return tg_pg_query(tg_pg(store),
                       "INSERT INTO billing_failures(customer_id, type, message, first_at, last_at, runs)"
                       " VALUES ($1, $2, $3, $4, $4, 1) ON CONFLICT (customer_id) DO UPDATE SET"
                       " type = excluded.type, message = excluded.message, last_at = excluded.last_at,"
                       " runs = billing_failures.runs + 1",
                       &p, NULL, err, "recording a billing failure");
}

int tg_pg_billing_failure_clear(tg_store_t *store, const char *customer_id, tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    return tg_pg_query(tg_pg(store), "DELETE FROM billing_failures WHERE customer_id = $1", &p, NULL, err,
                       "clearing a billing failure");
}

typedef struct {
    tg_billing_failure_cb cb;
    void *arg;
} failure_ctx_t;

static int failure_row(const PGresult *res, int i, void *ctx, char key[TG_PAGE_KEY_MAX])
{
    failure_ctx_t *c = ctx;
    tg_billing_failure_t f;
    memset(&f, 0, sizeof(f));
    tg_pg_text(res, i, 0, f.customer_id, sizeof(f.customer_id));
    tg_pg_text(res, i, 1, f.type, sizeof(f.type));
    tg_pg_text(res, i, 2, f.message, sizeof(f.message));
    f.first_at = tg_pg_i64(res, i, 3);
    f.last_at = tg_pg_i64(res, i, 4);
    f.runs = tg_pg_i64(res, i, 5);
    snprintf(key, TG_PAGE_KEY_MAX, "%s", f.customer_id);
    return c->cb(&f, c->arg);
}

int tg_pg_billing_failure_list(tg_store_t *store, const tg_page_t *page, tg_billing_failure_cb cb, void *arg,
                               tg_page_end_t *end, tg_err_t *err)
{
    char after[TG_ID_MAX] = "";
    if (page->after[0] != '\0' && tg_page_key_parse_id(page->after, after) != 0)
        return tg_errf(err, TG_EINVAL, "the cursor does not belong to this list");
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, after);
    tg_pg_param_i64(&p, (int64_t)page->limit + 1);
    PGresult *r;
    int rc = tg_pg_query(tg_pg(store),
                         "SELECT customer_id, type, message, first_at, last_at, runs FROM billing_failures"
                         " WHERE customer_id COLLATE \"C\" > $1 ORDER BY customer_id COLLATE \"C\" LIMIT $2",
                         &p, &r, err, "listing billing failures");
    if (rc != 0)
        return rc;
    failure_ctx_t c = {cb, arg};
    tg_pg_run_page(r, page->limit, failure_row, &c, end);
    return 0;
}

/* ---- lists, one page at a time (store.h) ----
 * Each list keeps the order it always had, newest first: (num DESC, id) where num is created_at
 * or period_start (indexes of migration 9). The key of a row is "<num>/<id>". */

typedef struct {
    int kind; /* 0 customers, 1 keys, 2 invoices */
    void *cb;
    void *arg;
    int failed; /* an invoice could not be read (out of memory) */
} page_ctx_t;

static int page_row(const PGresult *res, int i, void *ctx, char key[TG_PAGE_KEY_MAX])
{
    page_ctx_t *c = ctx;
    if (c->kind == 0) {
        tg_customer_t cu;
        tg_pg_read_customer(res, i, &cu);
        snprintf(key, TG_PAGE_KEY_MAX, "%lld/%s", (long long)cu.created_at, cu.id);
        return ((tg_customer_cb)c->cb)(&cu, c->arg);
    }
    if (c->kind == 1) {
        tg_key_t k;
        tg_pg_read_key(res, i, &k);
        snprintf(key, TG_PAGE_KEY_MAX, "%lld/%s", (long long)k.created_at, k.id);
        return ((tg_key_cb)c->cb)(&k, c->arg);
    }
    tg_invoice_t inv;
    if (tg_pg_read_invoice(res, i, &inv) != 0) {
        c->failed = 1;
        return 1;
    }
    snprintf(key, TG_PAGE_KEY_MAX, "%lld/%s", (long long)inv.period_start, inv.id);
    int stop = ((tg_invoice_cb)c->cb)(&inv, c->arg);
    tg_invoice_clear(&inv);
    return stop;
}

/* One page of a list. Parameters: $1 the LIMIT (page + 1), then filter_value if not NULL, then
 * the cursor's num and id if page->after is set; first is the statement of a first page, next
 * of a page after a cursor. */
static int list_page(tg_pg_t *st, const char *first, const char *next, const char *filter_value, const tg_page_t *page,
                     page_ctx_t *ctx, tg_page_end_t *end, const char *doing, tg_err_t *err)
{
    int64_t after_num = 0;
    char after_id[TG_ID_MAX] = "";
    int after = page->after[0] != '\0';
    if (after && tg_page_key_parse_num_id(page->after, &after_num, after_id) != 0)
        return tg_errf(err, TG_EINVAL, "the cursor does not belong to this list");
    if (page->limit < 1 || page->limit > TG_PAGE_MAX)
        return tg_errf(err, TG_EINVAL, "a page holds 1 to %d items", TG_PAGE_MAX);
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, (int64_t)page->limit + 1);
    if (filter_value != NULL)
        tg_pg_param_text(&p, filter_value);
    if (after) {
        tg_pg_param_i64(&p, after_num);
        tg_pg_param_text(&p, after_id);
    }
    PGresult *r;
    int rc = tg_pg_query(st, after ? next : first, &p, &r, err, doing);
    if (rc != 0)
        return rc;
    tg_pg_run_page(r, page->limit, page_row, ctx, end);
    if (ctx->failed)
        return tg_errf(err, TG_ENOMEM, "%s: out of memory", doing);
    return 0;
}

#define AFTER_DESC(num, a, b) num " <= " a " AND (" num " < " a " OR id COLLATE \"C\" > " b ")"
#define ORDER_DESC(num) " ORDER BY " num " DESC, id COLLATE \"C\" LIMIT $1"

int tg_pg_customer_page(tg_store_t *store, const tg_page_t *page, tg_customer_cb cb, void *arg, tg_page_end_t *end,
                        tg_err_t *err)
{
    page_ctx_t c = {0, (void *)cb, arg, 0};
    return list_page(tg_pg(store), "SELECT " TG_PG_CUSTOMER_COLS " FROM customers" ORDER_DESC("created_at"),
                     "SELECT " TG_PG_CUSTOMER_COLS " FROM customers WHERE " AFTER_DESC("created_at", "$2", "$3")
                         ORDER_DESC("created_at"),
                     NULL, page, &c, end, "listing customers", err);
}

int tg_pg_key_page(tg_store_t *store, const char *customer_id, const tg_page_t *page, tg_key_cb cb, void *arg,
                   tg_page_end_t *end, tg_err_t *err)
{
    page_ctx_t c = {1, (void *)cb, arg, 0};
    return list_page(tg_pg(store),
                     "SELECT " TG_PG_KEY_COLS " FROM api_keys WHERE customer_id = $2" ORDER_DESC("created_at"),
                     "SELECT " TG_PG_KEY_COLS " FROM api_keys WHERE customer_id = $2"
                     " AND " AFTER_DESC("created_at", "$3", "$4") ORDER_DESC("created_at"),
                     customer_id, page, &c, end, "listing keys", err);
}

int tg_pg_invoice_page(tg_store_t *store, const char *customer_id, const tg_page_t *page, tg_invoice_cb cb, void *arg,
                       tg_page_end_t *end, tg_err_t *err)
{
    page_ctx_t c = {2, (void *)cb, arg, 0};
    if (customer_id != NULL)
        return list_page(tg_pg(store),
                         "SELECT " TG_PG_INVOICE_COLS
                         " FROM invoices WHERE customer_id = $2" ORDER_DESC("period_start"),
                         "SELECT " TG_PG_INVOICE_COLS " FROM invoices WHERE customer_id = $2"
                         " AND " AFTER_DESC("period_start", "$3", "$4") ORDER_DESC("period_start"),
                         customer_id, page, &c, end, "listing invoices", err);
    return list_page(tg_pg(store), "SELECT " TG_PG_INVOICE_COLS " FROM invoices" ORDER_DESC("period_start"),
                     "SELECT " TG_PG_INVOICE_COLS " FROM invoices WHERE " AFTER_DESC("period_start", "$2", "$3")
                         ORDER_DESC("period_start"),
                     NULL, page, &c, end, "listing invoices", err);
}

int tg_pg_key_count_active(tg_store_t *store, const char *customer_id, int64_t now, uint64_t *count, tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    tg_pg_param_i64(&p, now);
    PGresult *r;
    int rc = tg_pg_query(tg_pg(store),
                         "SELECT COUNT(*) FROM api_keys WHERE customer_id = $1 AND (revoked_at = 0 OR revoked_at > $2)"
                         " AND (expires_at = 0 OR expires_at > $2)",
                         &p, &r, err, "counting keys");
    if (rc != 0)
        return rc;
    *count = tg_pg_u64(r, 0, 0);
    PQclear(r);
    return 0;
}
