/* store_sqlite_int.h - what the files of the SQLite backend share: the statement helpers of
 * store_sqlite.c, for the parts that live in their own files (store_sqlite_lists.c). Not for use
 * outside src/store. */
#ifndef TG_STORE_SQLITE_INT_H
#define TG_STORE_SQLITE_INT_H

#include <sqlite3.h>
#include <stddef.h>

#include "store/store.h"

/* Prepares sql on st's connection; on failure fills err with `doing` and SQLite's message. */
int tg_sqlite_prepare(tg_store_t *st, const char *sql, sqlite3_stmt **s, tg_err_t *err, const char *doing);
/* The connection's last error as TG_ESTORE (TG_EEXIST for a uniqueness conflict). */
int tg_sqlite_error(tg_store_t *st, tg_err_t *err, const char *doing);
/* Column col as text into out (cap bytes, cut to fit, "" for NULL). */
void tg_sqlite_text(sqlite3_stmt *s, int col, char *out, size_t cap);

/* Sort keys of the paged lists: "<int64>", "<int64>/<id>", "<id>". TG_EINVAL if key is not one. */
int tg_page_key_parse_num(const char *key, int64_t *num);
int tg_page_key_parse_num_id(const char *key, int64_t *num, char id[TG_ID_MAX]);
int tg_page_key_parse_id(const char *key, char id[TG_ID_MAX]);

/* Steps s (prepared with LIMIT limit + 1) and hands each row of the page to row, which writes
 * the row's sort key; fills end. Finalizes s. */
typedef int (*tg_sqlite_page_row_fn)(sqlite3_stmt *s, void *ctx, char key[TG_PAGE_KEY_MAX]);
int tg_sqlite_run_page(tg_store_t *st, sqlite3_stmt *s, size_t limit, tg_sqlite_page_row_fn row, void *ctx,
                       tg_page_end_t *end, const char *doing, tg_err_t *err);

#endif
