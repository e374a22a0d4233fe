/* list_search.h - the owner's searches (tg_store_customer_search, tg_store_invoice_search and
 * tg_store_invoice_search_totals, store.h) as SQL statements, written once for both backends: they differ only in the
 * placeholder ("?3" or
 * "$3") and in PostgreSQL's COLLATE "C" (bytewise, SQLite's BINARY: a page boundary compared in
 * one order and sorted in another would skip or repeat rows). Not for use outside src/store. */
#ifndef TG_LIST_SEARCH_H
#define TG_LIST_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define TG_CSEARCH_PARAMS_MAX 8

/* One value to bind, in placeholder order (1, 2, ...): text if text != NULL, else num. */
typedef struct tg_csearch_param {
    const char *text;
    int64_t num;
} tg_csearch_param_t;

typedef struct tg_csearch {
    char sql[2048];
    tg_csearch_param_t p[TG_CSEARCH_PARAMS_MAX];
    int np;
    int text_key;                                 /* the sort key is ":<id>/<text>" (else "<created_at>/<id>") */
    char pattern[2 * TG_CUSTOMER_SEARCH_MAX + 3]; /* "%...%", wildcards escaped with '\' */
    char after_text[TG_PAGE_KEY_MAX];
    char after_id[TG_ID_MAX];
    int64_t after_num;
    int64_t limit_plus_one;
} tg_csearch_t;

/* Fills b (which the params point into: keep it alive until the statement ran) with the
 * statement "SELECT <cols>, <sort value> FROM customers WHERE ... ORDER BY ... LIMIT n": the
 * customer columns `cols` from column 0, the row's sort value (created_at, or the email or name
 * as compared: SQLite's as stored and compared NOCASE, PostgreSQL's lower-cased) after them. pg: PostgreSQL's dialect,
 * else SQLite's. TG_EINVAL for a cursor key that is not one of this order's, a search too long, a page size out of
 * range. Pure. */
int tg_csearch_build(tg_csearch_t *b, const tg_customer_query_t *q, const tg_page_t *page, const char *cols, int pg,
                     tg_err_t *err);

/* A row's sort key into key (TG_PAGE_KEY_MAX bytes): "<created_at>/<id>" or ":<id>/<text>".
 * TG_ERANGE if it does not fit (the cursor would then be wrong: the page fails instead). */
int tg_csearch_key(const tg_csearch_t *b, const char *id, int64_t created_at, const char *text,
                   char key[TG_PAGE_KEY_MAX]);

/* The invoice search's page (INVOICE_COLS from column 0, in the invoices list's order: period_start
 * DESC, id; sort key "<period_start>/<id>") or, totals set, its sums: "SELECT currency, status,
 * COUNT(*), SUM(total) ... GROUP BY currency, status ORDER BY currency, status" (page unused).
 * TG_EINVAL for a bad cursor or page size. Pure. */
int tg_isearch_build(tg_csearch_t *b, const tg_invoice_query_t *q, const tg_page_t *page, const char *cols, int pg,
                     int totals, tg_err_t *err);

#endif
