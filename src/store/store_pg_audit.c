/* store_pg_audit.c - the PostgreSQL backend of store_audit.h (migration 28). Same results, errors
 * and order as store_sqlite_audit.c; the table's trigger refuses UPDATE, DELETE and TRUNCATE.
 * Text is scrubbed to valid UTF-8 (an actor's address or a request id comes from outside, and
 * PostgreSQL refuses invalid text). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_audit.h"
#include "store/store_pg_int.h"
#include "util/utf8.h"

#define AUDIT_COLS                                                                                                     \
    "id, at, actor_kind, actor_id, source, request_id, action, target_type, target_id, before_json, after_json"

static int read_row(const PGresult *res, int i, tg_audit_row_t *r)
{
    memset(r, 0, sizeof(*r));
    r->id = tg_pg_i64(res, i, 0);
    r->at_ms = tg_pg_i64(res, i, 1);
    tg_pg_text(res, i, 2, r->actor_kind, sizeof(r->actor_kind));
    tg_pg_text(res, i, 3, r->actor_id, sizeof(r->actor_id));
    tg_pg_text(res, i, 4, r->source, sizeof(r->source));
    tg_pg_text(res, i, 5, r->request_id, sizeof(r->request_id));
    tg_pg_text(res, i, 6, r->action, sizeof(r->action));
    tg_pg_text(res, i, 7, r->target_type, sizeof(r->target_type));
    tg_pg_text(res, i, 8, r->target_id, sizeof(r->target_id));
    if (!PQgetisnull(res, i, 9) && (r->before_json = tg_pg_strdup(res, i, 9, NULL)) == NULL)
        return TG_ENOMEM;
    if (!PQgetisnull(res, i, 10) && (r->after_json = tg_pg_strdup(res, i, 10, NULL)) == NULL) {
        tg_audit_row_clear(r);
        return TG_ENOMEM;
    }
    return 0;
}

int tg_pg_audit_append(tg_store_t *store, const tg_audit_row_t *r, int64_t *id, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    if (!tg_audit_row_fits(r))
        return tg_errf(err, TG_EINVAL, "an audit field is empty or past its cap");
    char source[TG_AUDIT_SOURCE_MAX], request_id[TG_AUDIT_REQUEST_ID_MAX];
    snprintf(source, sizeof(source), "%s", r->source);
    snprintf(request_id, sizeof(request_id), "%s", r->request_id);
    tg_utf8_scrub(source);
    tg_utf8_scrub(request_id);
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, r->at_ms);
    tg_pg_param_text(&p, r->actor_kind);
    tg_pg_param_text(&p, r->actor_id);
    tg_pg_param_text(&p, source);
    tg_pg_param_text(&p, request_id);
    tg_pg_param_text(&p, r->action);
    tg_pg_param_text(&p, r->target_type);
    tg_pg_param_text(&p, r->target_id);
    tg_pg_param_text(&p, r->before_json);
    tg_pg_param_text(&p, r->after_json);
    PGresult *res;
    int rc = tg_pg_query(st,
                         "INSERT INTO audit_log(at, actor_kind, actor_id, source, request_id, action, target_type,"
                         " target_id, before_json, after_json) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) RETURNING id",
                         &p, &res, err, "recording an audit entry");
    if (rc != 0)
        return rc;
    if (id != NULL)
        *id = PQntuples(res) > 0 ? tg_pg_i64(res, 0, 0) : 0;
    PQclear(res);
    return 0;
}

static const char *opt(const char *v)
{
    return v != NULL && v[0] != '\0' ? v : NULL;
}

int tg_pg_audit_page(tg_store_t *store, const tg_audit_filter_t *f, const tg_page_t *page, tg_audit_row_cb cb,
                     void *arg, tg_page_end_t *end, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    memset(end, 0, sizeof(*end));
    int64_t before = INT64_MAX;
    if (page->after[0] != '\0' && tg_page_key_parse_num(page->after, &before) != 0)
        return tg_errf(err, TG_EINVAL, "the cursor does not belong to this list");
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, before);
    tg_pg_param_text(&p, opt(f->actor_id));
    tg_pg_param_text(&p, opt(f->action_prefix));
    tg_pg_param_text(&p, opt(f->target_type));
    tg_pg_param_text(&p, opt(f->target_id));
    tg_pg_param_i64(&p, f->from_ms);
    tg_pg_param_i64(&p, f->to_ms);
    tg_pg_param_i64(&p, (int64_t)page->limit + 1);
    PGresult *res;
    int rc = tg_pg_query(st,
                         "SELECT " AUDIT_COLS " FROM audit_log WHERE id < $1"
                         " AND ($2::text IS NULL OR actor_id = $2)"
                         " AND ($3::text IS NULL OR substr(action, 1, length($3)) = $3)"
                         " AND ($4::text IS NULL OR target_type = $4)"
                         " AND ($5::text IS NULL OR target_id = $5)"
                         " AND at >= $6::bigint AND ($7::bigint = 0 OR at < $7::bigint)"
                         " ORDER BY id DESC LIMIT $8",
                         &p, &res, err, "listing the audit log");
    if (rc != 0)
        return rc;
    int rows = PQntuples(res);
    char key[TG_PAGE_KEY_MAX] = "";
    for (int i = 0; i < rows; i++) {
        if ((size_t)i == page->limit) {
            end->has_more = 1;
            memcpy(end->next, key, sizeof(key));
            break;
        }
        tg_audit_row_t r;
        if (read_row(res, i, &r) != 0) {
            rc = tg_errf(err, TG_ENOMEM, "out of memory listing the audit log");
            break;
        }
        snprintf(key, sizeof(key), "%lld", (long long)r.id);
        int stop = cb(&r, arg);
        tg_audit_row_clear(&r);
        if (stop)
            break;
    }
    PQclear(res);
    return rc;
}
