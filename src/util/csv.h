/* csv.h - writing CSV (RFC 4180) into a growable buffer with a hard cap, for the owner's exports.
 *
 * Fields are quoted when they hold a comma, a double quote, CR or LF (quotes doubled); records
 * end with CRLF. Text from people (emails, names) is also guarded against formula injection: a
 * spreadsheet would run a cell that starts with = + - @ (or a tab or CR, which some strip before
 * looking) as a formula, so such a cell gets a leading apostrophe (OWASP, "CSV Injection").
 * Numbers the exporter formats itself go through tg_csv_number unguarded, so "-12.50" stays a
 * number. Pure: no I/O. */
#ifndef TG_CSV_H
#define TG_CSV_H

#include <stddef.h>

#include "util/err.h"

typedef struct tg_csv {
    char *buf; /* malloc'd; NUL-terminated; the caller takes it (tg_csv_take) or frees it */
    size_t len, cap, max;
    int fields; /* in the current record */
    int failed; /* TG_ENOMEM or TG_ERANGE (max reached): every later call does nothing */
} tg_csv_t;

/* An empty writer that refuses to grow past max bytes. */
void tg_csv_init(tg_csv_t *w, size_t max);
/* A text field (guarded), a number field written as it is (digits, '-', '.'), the end of a record. */
void tg_csv_text(tg_csv_t *w, const char *s);
void tg_csv_number(tg_csv_t *w, const char *s);
void tg_csv_end(tg_csv_t *w);
/* 0, TG_ENOMEM, or TG_ERANGE when the output would pass max. */
int tg_csv_status(const tg_csv_t *w);
/* The text (malloc'd, the caller frees) and its length; the writer is empty after it. */
char *tg_csv_take(tg_csv_t *w, size_t *len);
void tg_csv_free(tg_csv_t *w);

#endif
