/* store_sqlite_audit.c - the SQLite backend of store_audit.h (migration 28). The table's triggers
 * refuse UPDATE and DELETE; this file only inserts and reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_audit.h"
#include "store/store_sqlite_int.h"

#define AUDIT_COLS                                                                                                     \
    "id, at, actor_kind, actor_id, source, request_id, action, target_type, target_id, before_json, after_json"

/* Column col as malloc'd text, or NULL for SQL NULL; *oom set when the copy failed. */
static char *dup_col(sqlite3_stmt *s, int col, int *oom)
{
    if (sqlite3_column_type(s, col) == SQLITE_NULL)
        return NULL;
    const unsigned char *p = sqlite3_column_text(s, col);
    int len = sqlite3_column_bytes(s, col);
    char *out = malloc((size_t)len + 1);
    if (out == NULL) {
        *oom = 1;
        return NULL;
    }
    memcpy(out, p != NULL ? (const char *)p : "", (size_t)len);
    out[len] = '\0';
    return out;
}

static int read_row(sqlite3_stmt *s, tg_audit_row_t *r)
{
    memset(r, 0, sizeof(*r));
    r->id = sqlite3_column_int64(s, 0);
    r->at_ms = sqlite3_column_int64(s, 1);
    tg_sqlite_text(s, 2, r->actor_kind, sizeof(r->actor_kind));
    tg_sqlite_text(s, 3, r->actor_id, sizeof(r->actor_id));
    tg_sqlite_text(s, 4, r->source, sizeof(r->source));
    tg_sqlite_text(s, 5, r->request_id, sizeof(r->request_id));
    tg_sqlite_text(s, 6, r->action, sizeof(r->action));
    tg_sqlite_text(s, 7, r->target_type, sizeof(r->target_type));
    tg_sqlite_text(s, 8, r->target_id, sizeof(r->target_id));
    int oom = 0;
    r->before_json = dup_col(s, 9, &oom);
    r->after_json = dup_col(s, 10, &oom);
    if (oom) {
        tg_audit_row_clear(r);
        return TG_ENOMEM;
    }
    return 0;
}

static void bind_opt(sqlite3_stmt *s, int i, const char *v)
{
    if (v != NULL)
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

int tg_sqlite_audit_append(tg_store_t *store, const tg_audit_row_t *r, int64_t *id, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    if (!tg_audit_row_fits(r))
        return tg_errf(err, TG_EINVAL, "an audit field is empty or past its cap");
    sqlite3_stmt *s;
    int rc =
        tg_sqlite_prepare(st,
                          "INSERT INTO audit_log(at, actor_kind, actor_id, source, request_id, action, target_type,"
                          " target_id, before_json, after_json) VALUES (?,?,?,?,?,?,?,?,?,?)",
                          &s, err, "recording an audit entry");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, r->at_ms);
    sqlite3_bind_text(s, 2, r->actor_kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, r->actor_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, r->source, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, r->request_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, r->action, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 7, r->target_type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 8, r->target_id, -1, SQLITE_STATIC);
    bind_opt(s, 9, r->before_json);
    bind_opt(s, 10, r->after_json);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "recording an audit entry");
    else if (id != NULL)
        *id = sqlite3_last_insert_rowid(st->db);
    sqlite3_finalize(s);
    return rc;
}

typedef struct {
    tg_audit_row_cb cb;
    void *arg;
    int rc;
} page_ctx_t;

static int page_row(sqlite3_stmt *s, void *ctx, char key[TG_PAGE_KEY_MAX])
{
    page_ctx_t *c = ctx;
    tg_audit_row_t r;
    if (read_row(s, &r) != 0) {
        c->rc = TG_ENOMEM;
        return 1;
    }
    snprintf(key, TG_PAGE_KEY_MAX, "%lld", (long long)r.id);
    int stop = c->cb(&r, c->arg);
    tg_audit_row_clear(&r);
    return stop;
}

static void bind_filter(sqlite3_stmt *s, int i, const char *v)
{
    bind_opt(s, i, v != NULL && v[0] != '\0' ? v : NULL);
}

int tg_sqlite_audit_page(tg_store_t *store, const tg_audit_filter_t *f, const tg_page_t *page, tg_audit_row_cb cb,
                         void *arg, tg_page_end_t *end, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    int64_t before = INT64_MAX;
    if (page->after[0] != '\0' && tg_page_key_parse_num(page->after, &before) != 0)
        return tg_errf(err, TG_EINVAL, "the cursor does not belong to this list");
    sqlite3_stmt *s;
    /* The prefix by substr, not LIKE: an action may hold '_' (LIKE's wildcard). */
    int rc = tg_sqlite_prepare(st,
                               "SELECT " AUDIT_COLS " FROM audit_log WHERE id < ?1"
                               " AND (?2 IS NULL OR actor_id = ?2)"
                               " AND (?3 IS NULL OR substr(action, 1, length(?3)) = ?3)"
                               " AND (?4 IS NULL OR target_type = ?4)"
                               " AND (?5 IS NULL OR target_id = ?5)"
                               " AND at >= ?6 AND (?7 = 0 OR at < ?7)"
                               " ORDER BY id DESC LIMIT ?8",
                               &s, err, "listing the audit log");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, before);
    bind_filter(s, 2, f->actor_id);
    bind_filter(s, 3, f->action_prefix);
    bind_filter(s, 4, f->target_type);
    bind_filter(s, 5, f->target_id);
    sqlite3_bind_int64(s, 6, f->from_ms);
    sqlite3_bind_int64(s, 7, f->to_ms);
    sqlite3_bind_int64(s, 8, (sqlite3_int64)page->limit + 1);
    page_ctx_t c = {cb, arg, 0};
    rc = tg_sqlite_run_page(st, s, page->limit, page_row, &c, end, "listing the audit log", err);
    if (rc == 0 && c.rc != 0)
        rc = tg_errf(err, c.rc, "out of memory listing the audit log");
    return rc;
}
