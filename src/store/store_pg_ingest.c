/* store_pg_ingest.c - the PostgreSQL backend of store_ingest.h (migrations 32 and 36). Same results,
 * errors and order as store_sqlite_ingest.c. Names come from the owner: scrubbed to valid UTF-8
 * (PostgreSQL refuses invalid text). */
#include <stdio.h>
#include <string.h>

#include "store/store_ingest.h"
#include "store/store_page.h"
#include "store/store_pg_int.h"
#include "util/utf8.h"

#define INGEST_COLS "id, name, customer_id, hash, prefix, created_at, revoked_at"

static void read_token(const PGresult *res, int i, tg_ingest_token_row_t *t)
{
    memset(t, 0, sizeof(*t));
    tg_pg_text(res, i, 0, t->id, sizeof(t->id));
    tg_pg_text(res, i, 1, t->name, sizeof(t->name));
    tg_pg_text(res, i, 2, t->customer_id, sizeof(t->customer_id));
    tg_pg_bytea(res, i, 3, t->hash, sizeof(t->hash));
    tg_pg_text(res, i, 4, t->prefix, sizeof(t->prefix));
    t->created_at = tg_pg_i64(res, i, 5);
    t->revoked_at = tg_pg_i64(res, i, 6);
}

int tg_pg_ingest_token_insert(tg_store_t *store, const tg_ingest_token_row_t *t, tg_err_t *err)
{
    char name[TG_NAME_MAX];
    snprintf(name, sizeof(name), "%s", t->name);
    tg_utf8_scrub(name);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, t->id);
    tg_pg_param_text(&p, name);
    tg_pg_param_text(&p, t->customer_id);
    tg_pg_param_bytea(&p, t->hash, sizeof(t->hash));
    tg_pg_param_text(&p, t->prefix);
    tg_pg_param_i64(&p, t->created_at);
    tg_pg_param_i64(&p, t->revoked_at);
    PGresult *r;
    int rc = tg_pg_query(tg_pg(store),
                         "INSERT INTO ingest_tokens(" INGEST_COLS ") VALUES ($1,$2,$3,$4,$5,$6,$7)"
                         " ON CONFLICT DO NOTHING",
                         &p, &r, err, "storing an ingest token");
    if (rc != 0)
        return rc;
    uint64_t n = tg_pg_affected(r);
    PQclear(r);
    return n == 1 ? 0 : tg_errf(err, TG_EEXIST, "storing ingest token %s: its id or secret exists already", t->id);
}

int tg_pg_ingest_token_get(tg_store_t *store, const char *id, tg_ingest_token_row_t *out, tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, id);
    PGresult *r;
    int rc = tg_pg_query(tg_pg(store), "SELECT " INGEST_COLS " FROM ingest_tokens WHERE id = $1", &p, &r, err,
                         "reading an ingest token");
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "no ingest token %s", id);
    else
        read_token(r, 0, out);
    PQclear(r);
    return rc;
}

int tg_pg_ingest_token_set_revoked(tg_store_t *store, const char *id, int64_t revoked_at, tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, revoked_at);
    tg_pg_param_text(&p, id);
    PGresult *r;
    int rc = tg_pg_query(tg_pg(store),
                         "UPDATE ingest_tokens SET revoked_at = CASE WHEN revoked_at = 0 THEN $1 ELSE revoked_at END"
                         " WHERE id = $2",
                         &p, &r, err, "revoking an ingest token");
    if (rc != 0)
        return rc;
    if (tg_pg_affected(r) == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "no ingest token %s", id);
    PQclear(r);
    return rc;
}

typedef struct {
    tg_ingest_token_cb cb;
    void *arg;
} page_ctx_t;

static int page_row(const PGresult *res, int i, void *ctx, char key[TG_PAGE_KEY_MAX])
{
    page_ctx_t *c = ctx;
    tg_ingest_token_row_t t;
    read_token(res, i, &t);
    snprintf(key, TG_PAGE_KEY_MAX, "%lld/%s", (long long)t.created_at, t.id);
    return c->cb(&t, c->arg);
}

int tg_pg_ingest_token_page(tg_store_t *store, const tg_page_t *page, tg_ingest_token_cb cb, void *arg,
                            tg_page_end_t *end, tg_err_t *err)
{
    memset(end, 0, sizeof(*end));
    int64_t after_at = INT64_MAX;
    char after_id[TG_ID_MAX] = "";
    if (page->after[0] != '\0' && tg_page_key_parse_num_id(page->after, &after_at, after_id) != 0)
        return tg_errf(err, TG_EINVAL, "the cursor does not belong to this list");
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, after_at);
    tg_pg_param_text(&p, after_id);
    tg_pg_param_i64(&p, (int64_t)page->limit + 1);
    PGresult *r;
    int rc = tg_pg_query(tg_pg(store),
                         "SELECT " INGEST_COLS " FROM ingest_tokens WHERE created_at <= $1::bigint"
                         " AND (created_at < $1::bigint OR id COLLATE \"C\" > $2::text)"
                         " ORDER BY created_at DESC, id COLLATE \"C\" LIMIT $3",
                         &p, &r, err, "listing ingest tokens");
    if (rc != 0)
        return rc;
    page_ctx_t c = {cb, arg};
    tg_pg_run_page(r, page->limit, page_row, &c, end);
    return 0;
}

int tg_pg_ingest_token_list_active(tg_store_t *store, tg_ingest_token_cb cb, void *arg, tg_err_t *err)
{
    PGresult *r;
    int rc = tg_pg_query(tg_pg(store), "SELECT " INGEST_COLS " FROM ingest_tokens WHERE revoked_at = 0", NULL, &r, err,
                         "loading ingest tokens");
    if (rc != 0)
        return rc;
    int rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        tg_ingest_token_row_t t;
        read_token(r, i, &t);
        if (cb(&t, arg) != 0)
            break;
    }
    PQclear(r);
    return 0;
}

int tg_pg_event_key_blake2b_until(tg_store_t *store, int64_t *until_s, tg_err_t *err)
{
    PGresult *r;
    *until_s = 0;
    int rc = tg_pg_query(tg_pg(store), "SELECT until_s FROM event_key_schemes WHERE scheme = 'blake2b'", NULL, &r, err,
                         "reading until when usage events keep the BLAKE2b key");
    if (rc != 0)
        return rc;
    if (PQntuples(r) > 0) /* no row: a database that never held a BLAKE2b id */
        *until_s = tg_pg_i64(r, 0, 0);
    PQclear(r);
    return rc;
}
