/* list_search.c - the owner's customer and invoice searches as parameterised statements for either
 * backend (list_search.h). Nothing the client sent becomes SQL text: the search, the plan,
 * the status and the cursor's key are bound as values; only the choice of order (an enum) and
 * of the filters present picks fragments written here.
 *
 * The keyset condition "after (v, id) in the order v DESC, id" is written
 * `v <= $v AND (v < $v OR id > $id)` (and with >= / > ascending): the first conjunct is an
 * index bound, so PostgreSQL starts the scan at the cursor (store_pg_lists.c says why), and
 * SQLite reads it as well. */
#include "store/list_search.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "store/store_page.h"

typedef struct {
    char *buf;
    size_t cap, len;
    int over;
} sqlbuf_t;

__attribute__((format(printf, 2, 3))) static void put(sqlbuf_t *s, const char *fmt, ...);

static void put(sqlbuf_t *s, const char *fmt, ...)
{
    if (s->over)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->buf + s->len, s->cap - s->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= s->cap - s->len)
        s->over = 1;
    else
        s->len += (size_t)n;
}

/* Adds a parameter and writes its placeholder ("?3" or "$3") into out; returns out. */
typedef char ph_t[16];
static const char *ph(tg_csearch_t *b, int pg, const char *text, int64_t num, ph_t out)
{
    b->p[b->np].text = text;
    b->p[b->np].num = num;
    b->np++; /* at most 6 of TG_CSEARCH_PARAMS_MAX: plan, status, search, cursor (2), limit */
    snprintf(out, sizeof(ph_t), "%c%d", pg ? '$' : '?', b->np);
    return out;
}

/* "%<s with % _ \ escaped by \>%"; -1 if it does not fit. */
static int like_pattern(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    if (cap < 3)
        return -1;
    out[n++] = '%';
    for (; *s != '\0'; s++) {
        if (n + 3 >= cap)
            return -1;
        if (*s == '%' || *s == '_' || *s == '\\')
            out[n++] = '\\';
        out[n++] = *s;
    }
    out[n++] = '%';
    out[n] = '\0';
    return 0;
}

int tg_csearch_build(tg_csearch_t *b, const tg_customer_query_t *q, const tg_page_t *page, const char *cols, int pg,
                     tg_err_t *err)
{
    memset(b, 0, sizeof(*b));
    if (page->limit < 1 || page->limit > TG_PAGE_MAX)
        return tg_errf(err, TG_EINVAL, "a page holds 1 to %d items", TG_PAGE_MAX);
    b->text_key = q->sort != TG_CUSTOMER_SORT_CREATED;
    int after = page->after[0] != '\0';
    if (after &&
        (b->text_key ? tg_page_key_parse_id_text(page->after, b->after_id, b->after_text, sizeof(b->after_text))
                     : tg_page_key_parse_num_id(page->after, &b->after_num, b->after_id)) != 0)
        return tg_errf(err, TG_EINVAL, "the cursor does not belong to this list");
    const char *collate = pg ? " COLLATE \"C\"" : "";
    char key[64];
    /* case-insensitive: SQLite's NOCASE is lower() on ASCII, the index's collation (migration 30) */
    const char *text = q->sort == TG_CUSTOMER_SORT_EMAIL ? "email" : "name";
    if (q->sort != TG_CUSTOMER_SORT_CREATED && pg)
        snprintf(key, sizeof(key), "lower(%s) COLLATE \"C\"", text);
    else if (q->sort != TG_CUSTOMER_SORT_CREATED)
        snprintf(key, sizeof(key), "%s COLLATE NOCASE", text);
    else
        snprintf(key, sizeof(key), "created_at");
    sqlbuf_t s = {b->sql, sizeof(b->sql), 0, 0};
    ph_t n, v;
    put(&s, "SELECT %s, %s FROM customers WHERE TRUE", cols, key);
    if (q->plan_id != NULL && q->plan_id[0] != '\0')
        put(&s, " AND plan_id = %s", ph(b, pg, q->plan_id, 0, n));
    if (q->status != NULL && q->status[0] != '\0') {
        if (strcmp(q->status, "active") == 0) /* a trial that ended shows as active */
            put(&s, " AND (status = 'active' OR (status = 'trialing' AND trial_end <= %s))",
                ph(b, pg, NULL, q->now, n));
        else if (strcmp(q->status, "trialing") == 0)
            put(&s, " AND status = 'trialing' AND trial_end > %s", ph(b, pg, NULL, q->now, n));
        else
            put(&s, " AND status = %s", ph(b, pg, q->status, 0, n));
    }
    if (q->search != NULL && q->search[0] != '\0') {
        if (strlen(q->search) >= TG_CUSTOMER_SEARCH_MAX || like_pattern(q->search, b->pattern, sizeof(b->pattern)) != 0)
            return tg_errf(err, TG_EINVAL, "a search holds at most %d bytes", TG_CUSTOMER_SEARCH_MAX - 1);
        ph(b, pg, b->pattern, 0, n);
        put(&s,
            " AND (lower(email) LIKE lower(%s) ESCAPE '\\' OR lower(name) LIKE lower(%s) ESCAPE '\\'"
            " OR lower(id) LIKE lower(%s) ESCAPE '\\')",
            n, n, n);
    }
    const char *cmp = q->ascending ? ">" : "<";
    if (after) {
        if (b->text_key)
            ph(b, pg, b->after_text, 0, v);
        else
            ph(b, pg, NULL, b->after_num, v);
        put(&s, " AND %s %s= %s AND (%s %s %s OR id%s > %s)", key, cmp, v, key, cmp, v, collate,
            ph(b, pg, b->after_id, 0, n));
    }
    b->limit_plus_one = (int64_t)page->limit + 1;
    put(&s, " ORDER BY %s %s, id%s LIMIT %s", key, q->ascending ? "ASC" : "DESC", collate,
        ph(b, pg, NULL, b->limit_plus_one, n));
    if (s.over)
        return tg_errf(err, TG_EINVAL, "listing customers: query too long");
    return 0;
}

int tg_csearch_key(const tg_csearch_t *b, const char *id, int64_t created_at, const char *text,
                   char key[TG_PAGE_KEY_MAX])
{
    int n = b->text_key ? snprintf(key, TG_PAGE_KEY_MAX, ":%s/%s", id, text != NULL ? text : "")
                        : snprintf(key, TG_PAGE_KEY_MAX, "%lld/%s", (long long)created_at, id);
    return n >= 0 && n < TG_PAGE_KEY_MAX ? 0 : TG_ERANGE;
}

/* The invoice filters as " AND ..." conditions. */
static void invoice_filters(sqlbuf_t *s, tg_csearch_t *b, const tg_invoice_query_t *q, int pg)
{
    ph_t n;
    if (q->customer_id != NULL && q->customer_id[0] != '\0')
        put(s, " AND customer_id = %s", ph(b, pg, q->customer_id, 0, n));
    if (q->status != NULL && q->status[0] != '\0')
        put(s, " AND status = %s", ph(b, pg, q->status, 0, n));
    if (q->currency != NULL && q->currency[0] != '\0')
        put(s, " AND currency = %s", ph(b, pg, q->currency, 0, n));
    if (q->period_from != 0)
        put(s, " AND period_start >= %s", ph(b, pg, NULL, q->period_from, n));
    if (q->period_to != 0)
        put(s, " AND period_start < %s", ph(b, pg, NULL, q->period_to, n));
}

int tg_isearch_build(tg_csearch_t *b, const tg_invoice_query_t *q, const tg_page_t *page, const char *cols, int pg,
                     int totals, tg_err_t *err)
{
    memset(b, 0, sizeof(*b));
    sqlbuf_t s = {b->sql, sizeof(b->sql), 0, 0};
    ph_t n, v;
    if (totals) {
        put(&s, "SELECT currency, status, COUNT(*), SUM(total) FROM invoices WHERE TRUE");
        invoice_filters(&s, b, q, pg);
        put(&s, " GROUP BY currency, status ORDER BY currency, status");
        return s.over ? tg_errf(err, TG_EINVAL, "summing invoices: query too long") : 0;
    }
    if (page->limit < 1 || page->limit > TG_PAGE_MAX)
        return tg_errf(err, TG_EINVAL, "a page holds 1 to %d items", TG_PAGE_MAX);
    int after = page->after[0] != '\0';
    if (after && tg_page_key_parse_num_id(page->after, &b->after_num, b->after_id) != 0)
        return tg_errf(err, TG_EINVAL, "the cursor does not belong to this list");
    const char *collate = pg ? " COLLATE \"C\"" : "";
    put(&s, "SELECT %s FROM invoices WHERE TRUE", cols);
    invoice_filters(&s, b, q, pg);
    if (after) {
        ph(b, pg, NULL, b->after_num, v);
        put(&s, " AND period_start <= %s AND (period_start < %s OR id%s > %s)", v, v, collate,
            ph(b, pg, b->after_id, 0, n));
    }
    b->limit_plus_one = (int64_t)page->limit + 1;
    put(&s, " ORDER BY period_start DESC, id%s LIMIT %s", collate, ph(b, pg, NULL, b->limit_plus_one, n));
    return s.over ? tg_errf(err, TG_EINVAL, "listing invoices: query too long") : 0;
}
