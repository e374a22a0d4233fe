/* csv.c - RFC 4180 output with a cap and the formula-injection guard (csv.h). */
#include "util/csv.h"

#include <stdlib.h>
#include <string.h>

void tg_csv_init(tg_csv_t *w, size_t max)
{
    memset(w, 0, sizeof(*w));
    w->max = max;
}

/* Room for n more bytes and the NUL, growing by doubling up to max. */
static int reserve(tg_csv_t *w, size_t n)
{
    if (w->failed)
        return -1;
    if (n > w->max || w->len > w->max - n) {
        w->failed = TG_ERANGE;
        return -1;
    }
    if (w->len + n + 1 <= w->cap)
        return 0;
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < w->len + n + 1)
        cap = cap > w->max / 2 ? w->max + 1 : cap * 2;
    char *b = realloc(w->buf, cap);
    if (b == NULL) {
        w->failed = TG_ENOMEM;
        return -1;
    }
    w->buf = b;
    w->cap = cap;
    return 0;
}

static void put(tg_csv_t *w, const char *s, size_t n)
{
    if (reserve(w, n) != 0)
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

static void field(tg_csv_t *w, const char *s, int guard)
{
    if (w->fields++ > 0)
        put(w, ",", 1);
    size_t n = strlen(s);
    int quote = strpbrk(s, ",\"\r\n") != NULL;
    int apostrophe = guard && n > 0 && strchr("=+-@\t\r", s[0]) != NULL;
    if (quote)
        put(w, "\"", 1);
    if (apostrophe)
        put(w, "'", 1);
    for (const char *p = s, *q; *p != '\0'; p = q + 1) {
        q = strchr(p, '"');
        if (q == NULL) {
            put(w, p, strlen(p));
            break;
        }
        put(w, p, (size_t)(q - p) + 1); /* up to and with the quote, then the quote again */
        put(w, "\"", 1);
    }
    if (quote)
        put(w, "\"", 1);
}

void tg_csv_text(tg_csv_t *w, const char *s)
{
    field(w, s != NULL ? s : "", 1);
}

void tg_csv_number(tg_csv_t *w, const char *s)
{
    field(w, s != NULL ? s : "", 0);
}

void tg_csv_end(tg_csv_t *w)
{
    put(w, "\r\n", 2);
    w->fields = 0;
}

int tg_csv_status(const tg_csv_t *w)
{
    return w->failed;
}

char *tg_csv_take(tg_csv_t *w, size_t *len)
{
    if (w->buf == NULL && reserve(w, 0) != 0)
        return NULL;
    if (w->buf != NULL && w->len == 0)
        w->buf[0] = '\0';
    char *b = w->buf;
    *len = w->len;
    w->buf = NULL;
    w->len = w->cap = 0;
    return b;
}

void tg_csv_free(tg_csv_t *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}
