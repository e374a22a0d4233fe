/* store_copy_int.h - what store_copy.c (reading, copying) and store_copy_verify.c (comparing
 * both sides) share. Not for use outside src/store. */
#ifndef TG_STORE_COPY_INT_H
#define TG_STORE_COPY_INT_H

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "store/store_copy.h"

#define TG_COPY_NAME_MAX 63          /* table and column names (PostgreSQL's identifier limit) */
#define TG_COPY_COLS_MAX 64          /* columns per table */
#define TG_COPY_SQL_CAP 16384        /* one generated statement */
#define TG_COPY_CHUNK (1u << 20)     /* bytes handed to libpq per PQputCopyData */
#define TG_COPY_ROW_CAP (512u << 20) /* one row's COPY text; larger is refused, not truncated */

enum { COL_INT, COL_TEXT, COL_BYTEA };

typedef struct col {
    char name[TG_COPY_NAME_MAX + 1];
    int kind;     /* COL_*, from the PostgreSQL type */
    int identity; /* PostgreSQL identity column: its sequence is moved past the copied values */
    int rowid;    /* PostgreSQL's explicit "rowid", filled from SQLite's implicit rowid */
} col_t;

typedef struct table {
    char name[TG_COPY_NAME_MAX + 1];
    col_t cols[TG_COPY_COLS_MAX];
    size_t ncols;
    uint64_t rows;
    unsigned char digest[16]; /* __int128: the sum of the digests of the rows sent */
} table_t;

typedef struct copy {
    sqlite3 *src;
    int src_tx;
    tg_store_t *dst;
    PGconn *pg; /* the target store's connection: the transaction is the store's */
    int dst_tx;
    table_t tables[TG_COPY_TABLES_MAX];
    size_t ntables;
    int event_id_blocks; /* the source has usage_event_id_blocks, unpacked into temp.usage_event_ids */
    char *buf;           /* COPY text waiting to be sent */
    size_t len, cap;
} copy_t;

/* Appends to the generated statement sql (capacity cap); TG_ESTATE when it would not fit. */
int tg_copy_sql_add(char *sql, size_t cap, tg_err_t *err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* SQLite's error on the source as TG_ESTORE, after `doing`. */
int tg_copy_src_error(copy_t *c, tg_err_t *err, const char *doing);
/* A PostgreSQL statement built at run time (names of tables and columns) on the target's
 * connection; *res (may be NULL) gets its rows. TG_ESTORE, or TG_EUNAVAIL if the connection is gone. */
int tg_copy_pg_run(copy_t *c, const char *sql, PGresult **res, tg_err_t *err, const char *doing);
/* The table named so in the source's list, or NULL. */
table_t *tg_copy_table_find(copy_t *c, const char *name);

/* store_copy_verify.c: registers tg_copy_sum(x), the exact (128-bit) sum of integers as decimal
 * text, on the source connection. 0 or SQLite's error code. */
int tg_copy_register_sum(sqlite3 *db);
/* Compares t on both sides: rows, per column non-NULL values and sum or byte length, then the
 * row digest. 0, or TG_ESTORE naming what differs. */
int tg_copy_verify_table(copy_t *c, const table_t *t, tg_err_t *err);
/* usage_event_ids in the target against the source's ids: its own rows plus the n of every
 * usage_event_id_blocks row, counted by SQLite over the stored tables (not over the unpacked
 * copy store_copy.c made of them), so that an id lost or doubled by the unpacking is caught; the
 * count of ids that came from blocks is added to rep. 0, or TG_ESTORE naming both counts. */
int tg_copy_verify_event_ids(copy_t *c, tg_store_copy_report_t *rep, tg_err_t *err);
/* The report's business totals (usage units; invoices and items per currency), compared on both
 * sides and added to rep. */
int tg_copy_verify_totals(copy_t *c, tg_store_copy_report_t *rep, tg_err_t *err);

#endif
