/* store_sqlite_ingest.c - the SQLite backend of store_ingest.h (migrations 32 and 36). */
#include <stdio.h>
#include <string.h>

#include "store/store_ingest.h"
#include "store/store_page.h"
#include "store/store_sqlite_int.h"

#define INGEST_COLS "id, name, customer_id, hash, prefix, created_at, revoked_at"

static void read_token(sqlite3_stmt *s, tg_ingest_token_row_t *t)
{
    memset(t, 0, sizeof(*t));
    tg_sqlite_text(s, 0, t->id, sizeof(t->id));
    tg_sqlite_text(s, 1, t->name, sizeof(t->name));
    tg_sqlite_text(s, 2, t->customer_id, sizeof(t->customer_id));
    if (sqlite3_column_bytes(s, 3) == (int)sizeof(t->hash))
        memcpy(t->hash, sqlite3_column_blob(s, 3), sizeof(t->hash));
    tg_sqlite_text(s, 4, t->prefix, sizeof(t->prefix));
    t->created_at = sqlite3_column_int64(s, 5);
    t->revoked_at = sqlite3_column_int64(s, 6);
}

int tg_sqlite_ingest_token_insert(tg_store_t *store, const tg_ingest_token_row_t *t, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "INSERT INTO ingest_tokens(" INGEST_COLS ") VALUES (?,?,?,?,?,?,?)", &s, err,
                               "storing an ingest token");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, t->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, t->customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 4, t->hash, sizeof(t->hash), SQLITE_STATIC);
    sqlite3_bind_text(s, 5, t->prefix, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, t->created_at);
    sqlite3_bind_int64(s, 7, t->revoked_at);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "storing an ingest token");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_ingest_token_get(tg_store_t *store, const char *id, tg_ingest_token_row_t *out, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "SELECT " INGEST_COLS " FROM ingest_tokens WHERE id = ?", &s, err,
                               "reading an ingest token");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        read_token(s, out);
    else if (step == SQLITE_DONE)
        rc = tg_errf(err, TG_ENOTFOUND, "no ingest token %s", id);
    else
        rc = tg_sqlite_error(st, err, "reading an ingest token");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_ingest_token_set_revoked(tg_store_t *store, const char *id, int64_t revoked_at, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    /* the first revocation's time stays: a second DELETE finds the row and changes nothing */
    int rc =
        tg_sqlite_prepare(st,
                          "UPDATE ingest_tokens SET revoked_at = CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END"
                          " WHERE id = ?",
                          &s, err, "revoking an ingest token");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, revoked_at);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "revoking an ingest token");
    else if (sqlite3_changes(st->db) == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "no ingest token %s", id);
    sqlite3_finalize(s);
    return rc;
}

typedef struct {
    tg_ingest_token_cb cb;
    void *arg;
} page_ctx_t;

static int page_row(sqlite3_stmt *s, void *ctx, char key[TG_PAGE_KEY_MAX])
{
    page_ctx_t *c = ctx;
    tg_ingest_token_row_t t;
    read_token(s, &t);
    snprintf(key, TG_PAGE_KEY_MAX, "%lld/%s", (long long)t.created_at, t.id);
    return c->cb(&t, c->arg);
}

int tg_sqlite_ingest_token_page(tg_store_t *store, const tg_page_t *page, tg_ingest_token_cb cb, void *arg,
                                tg_page_end_t *end, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    int64_t after_at = INT64_MAX;
    char after_id[TG_ID_MAX] = "";
    if (page->after[0] != '\0' && tg_page_key_parse_num_id(page->after, &after_at, after_id) != 0)
        return tg_errf(err, TG_EINVAL, "the cursor does not belong to this list");
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT " INGEST_COLS " FROM ingest_tokens WHERE created_at <= ?1"
                               " AND (created_at < ?1 OR id > ?2) ORDER BY created_at DESC, id LIMIT ?3",
                               &s, err, "listing ingest tokens");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, after_at);
    sqlite3_bind_text(s, 2, after_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)page->limit + 1);
    page_ctx_t c = {cb, arg};
    return tg_sqlite_run_page(st, s, page->limit, page_row, &c, end, "listing ingest tokens", err);
}

int tg_sqlite_ingest_token_list_active(tg_store_t *store, tg_ingest_token_cb cb, void *arg, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "SELECT " INGEST_COLS " FROM ingest_tokens WHERE revoked_at = 0", &s, err,
                               "loading ingest tokens");
    if (rc != 0)
        return rc;
    int step;
    tg_ingest_token_row_t t;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        read_token(s, &t);
        if (cb(&t, arg) != 0)
            break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "loading ingest tokens");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_event_key_blake2b_until(tg_store_t *store, int64_t *until_s, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    *until_s = 0;
    int rc = tg_sqlite_prepare(st, "SELECT until_s FROM event_key_schemes WHERE scheme = 'blake2b'", &s, err,
                               "reading until when usage events keep the BLAKE2b key");
    if (rc != 0)
        return rc;
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        *until_s = sqlite3_column_int64(s, 0);
    else if (step != SQLITE_DONE) /* no row: a database that never held a BLAKE2b id */
        rc = tg_sqlite_error(st, err, "reading until when usage events keep the BLAKE2b key");
    sqlite3_finalize(s);
    return rc;
}
