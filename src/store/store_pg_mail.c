/* store_pg_mail.c - the PostgreSQL backend of store_mail.h (store_sqlite_mail.c is the
 * reference: same results, same error codes, same orders). Several gateways may send from one
 * database: a claim takes due rows FOR UPDATE SKIP LOCKED and leases them in one statement, so
 * no message is taken by two nodes at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_mail.h"
#include "store/store_page.h"
#include "store/store_pg_int.h"

#define MAIL_COLS                                                                                                      \
    "id, to_addr, template, customer_id, subject, message_id, sensitive, state, attempts, next_attempt_at,"           \
    " last_code, last_error, created_at, updated_at, sent_at"

static void read_mail(const PGresult *res, int i, tg_mail_row_t *r)
{
    memset(r, 0, sizeof(*r));
    r->id = tg_pg_i64(res, i, 0);
    tg_pg_text(res, i, 1, r->to, sizeof(r->to));
    tg_pg_text(res, i, 2, r->template_name, sizeof(r->template_name));
    tg_pg_text(res, i, 3, r->customer_id, sizeof(r->customer_id));
    tg_pg_text(res, i, 4, r->subject, sizeof(r->subject));
    tg_pg_text(res, i, 5, r->message_id, sizeof(r->message_id));
    r->sensitive = (int)tg_pg_i64(res, i, 6);
    tg_pg_text(res, i, 7, r->state, sizeof(r->state));
    r->attempts = tg_pg_i64(res, i, 8);
    r->next_attempt_at_ms = tg_pg_i64(res, i, 9);
    r->last_code = tg_pg_i64(res, i, 10);
    tg_pg_text(res, i, 11, r->last_error, sizeof(r->last_error));
    r->created_at = tg_pg_i64(res, i, 12);
    r->updated_at = tg_pg_i64(res, i, 13);
    r->sent_at = tg_pg_i64(res, i, 14);
}

static int fits(const char *s, size_t cap)
{
    return s != NULL && strnlen(s, cap) < cap;
}

int tg_pg_mail_insert(tg_store_t *store, const tg_mail_row_t *row, int64_t now_ms, int64_t *id, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    if (!fits(row->to, sizeof(row->to)) || !fits(row->template_name, sizeof(row->template_name)) ||
        !fits(row->customer_id, sizeof(row->customer_id)) || !fits(row->subject, sizeof(row->subject)) ||
        !fits(row->message_id, sizeof(row->message_id)) || row->body == NULL || row->body_len > TG_MAIL_BODY_MAX ||
        strlen(row->body) != row->body_len)
        return tg_errf(err, TG_EINVAL, "a mail field is past its cap");
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, row->to);
    tg_pg_param_text(&p, row->template_name);
    tg_pg_param_text(&p, row->customer_id);
    tg_pg_param_text(&p, row->subject);
    tg_pg_param_text(&p, row->message_id);
    tg_pg_param_text(&p, row->body);
    tg_pg_param_i64(&p, row->sensitive ? 1 : 0);
    tg_pg_param_i64(&p, now_ms);
    tg_pg_param_i64(&p, now_ms / 1000);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "INSERT INTO mail_outbox(to_addr, template, customer_id, subject, message_id, body,"
                         " sensitive, state, attempts, next_attempt_at, created_at, updated_at)"
                         " VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $9, $9) RETURNING id",
                         &p, &r, err, "queuing a mail");
    if (rc != 0)
        return rc;
    if (id != NULL)
        *id = tg_pg_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

int tg_pg_mail_claim(tg_store_t *store, int64_t now_ms, int64_t lease_until_ms, tg_mail_row_t *out, size_t limit,
                     size_t *n, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    *n = 0;
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, now_ms);
    tg_pg_param_i64(&p, lease_until_ms);
    tg_pg_param_i64(&p, (int64_t)limit);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "UPDATE mail_outbox SET next_attempt_at = $2 WHERE id IN (SELECT id FROM mail_outbox"
                         " WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $3"
                         " FOR UPDATE SKIP LOCKED) RETURNING " MAIL_COLS ", body",
                         &p, &r, err, "claiming due mail");
    if (rc != 0)
        return rc;
    int rows = PQntuples(r);
    for (int i = 0; i < rows && *n < limit; i++) {
        tg_mail_row_t *m = &out[*n];
        read_mail(r, i, m);
        if ((m->body = tg_pg_strdup(r, i, 15, &m->body_len)) == NULL) {
            rc = tg_errf(err, TG_ENOMEM, "out of memory reading due mail");
            break;
        }
        (*n)++;
    }
    PQclear(r);
    if (rc != 0) {
        for (size_t i = 0; i < *n; i++)
            tg_mail_row_clear(&out[i]);
        *n = 0;
    }
    return rc;
}

int tg_pg_mail_next_due(tg_store_t *store, int64_t *at_ms, tg_err_t *err)
{
    PGresult *r;
    int rc = tg_pg_query(tg_pg(store), "SELECT MIN(next_attempt_at) FROM mail_outbox WHERE state = 'pending'", NULL,
                         &r, err, "reading the next mail due");
    if (rc != 0)
        return rc;
    if (PQgetisnull(r, 0, 0))
        rc = tg_errf(err, TG_ENOTFOUND, "no mail is pending");
    else
        *at_ms = tg_pg_i64(r, 0, 0);
    PQclear(r);
    return rc;
}

int tg_pg_mail_record(tg_store_t *store, int64_t id, const char *outcome, int64_t next_attempt_at_ms, int64_t smtp_code,
                      const char *error, int64_t now_ms, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    const char *state = strcmp(outcome, "sent") == 0 ? "sent" : strcmp(outcome, "failed") == 0 ? "failed" : "pending";
    int rc = tg_pg_savepoint(store, "mail_record", err);
    if (rc != 0)
        return rc;
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, id);
    tg_pg_param_text(&p, state);
    tg_pg_param_i64(&p, next_attempt_at_ms);
    tg_pg_param_i64(&p, smtp_code);
    tg_pg_param_text(&p, error != NULL ? error : "");
    tg_pg_param_i64(&p, now_ms / 1000);
    tg_pg_param_i64(&p, now_ms);
    tg_pg_param_text(&p, outcome);
    PGresult *r;
    /* the row and its log line in one statement */
    rc = tg_pg_query(st,
                     "WITH upd AS (UPDATE mail_outbox SET state = $2, attempts = attempts + 1, next_attempt_at = $3,"
                     " last_code = $4, last_error = $5, updated_at = $6,"
                     " sent_at = CASE WHEN $2 = 'sent' THEN $6 ELSE sent_at END,"
                     " body = CASE WHEN sensitive = 1 AND $2 <> 'pending' THEN '' ELSE body END"
                     " WHERE id = $1 AND state = 'pending' RETURNING id),"
                     " log AS (INSERT INTO mail_attempts(mail_id, at_ms, outcome, smtp_code, error)"
                     " SELECT id, $7, $8, $4, $5 FROM upd RETURNING 1)"
                     " SELECT COUNT(*) FROM log",
                     &p, &r, err, "recording a mail attempt");
    if (rc == 0) {
        if (tg_pg_i64(r, 0, 0) == 0)
            rc = tg_errf(err, TG_ENOTFOUND, "mail %lld is not pending", (long long)id);
        PQclear(r);
    }
    if (rc != 0) {
        tg_pg_savepoint_rollback(store, "mail_record");
        return rc;
    }
    return tg_pg_savepoint_release(store, "mail_record", err);
}

int tg_pg_mail_get(tg_store_t *store, int64_t id, tg_mail_row_t *out, tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, id);
    PGresult *r;
    int rc = tg_pg_query(tg_pg(store), "SELECT " MAIL_COLS " FROM mail_outbox WHERE id = $1", &p, &r, err,
                         "reading a mail");
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 1)
        read_mail(r, 0, out);
    else
        rc = tg_errf(err, TG_ENOTFOUND, "no mail %lld", (long long)id);
    PQclear(r);
    return rc;
}

int tg_pg_mail_requeue(tg_store_t *store, int64_t id, int64_t now_ms, tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, id);
    tg_pg_param_i64(&p, now_ms);
    tg_pg_param_i64(&p, now_ms / 1000);
    PGresult *r;
    int rc = tg_pg_query(tg_pg(store),
                         "UPDATE mail_outbox SET state = 'pending', attempts = 0, next_attempt_at = $2, updated_at = $3"
                         " WHERE id = $1 AND state <> 'pending' AND length(body) > 0",
                         &p, &r, err, "queuing a mail again");
    if (rc != 0)
        return rc;
    uint64_t changed = tg_pg_affected(r);
    PQclear(r);
    if (changed == 1)
        return 0;
    tg_mail_row_t m;
    if ((rc = tg_pg_mail_get(store, id, &m, err)) != 0)
        return rc;
    if (strcmp(m.state, "pending") == 0)
        return tg_errf(err, TG_ESTATE, "mail %lld is queued already", (long long)id);
    return tg_errf(err, TG_ESTATE, "mail %lld held a single-use link and was erased once sent; ask for a new link",
                   (long long)id);
}

int tg_pg_mail_page(tg_store_t *store, const char *state, const tg_page_t *page, tg_mail_row_cb cb, void *arg,
                    tg_page_end_t *end, tg_err_t *err)
{
    memset(end, 0, sizeof(*end));
    int64_t before = INT64_MAX;
    if (page->after[0] != '\0' && tg_page_key_parse_num(page->after, &before) != 0)
        return tg_errf(err, TG_EINVAL, "the cursor does not belong to this list");
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, before);
    tg_pg_param_text(&p, state);
    tg_pg_param_i64(&p, (int64_t)page->limit + 1);
    PGresult *r;
    int rc = tg_pg_query(tg_pg(store),
                         "SELECT " MAIL_COLS " FROM mail_outbox WHERE id < $1 AND ($2::text IS NULL OR state = $2)"
                         " ORDER BY id DESC LIMIT $3",
                         &p, &r, err, "listing mail");
    if (rc != 0)
        return rc;
    int rows = PQntuples(r);
    char key[TG_PAGE_KEY_MAX] = "";
    for (int i = 0; i < rows; i++) {
        if ((size_t)i == page->limit) {
            end->has_more = 1;
            memcpy(end->next, key, sizeof(key));
            break;
        }
        tg_mail_row_t m;
        read_mail(r, i, &m);
        snprintf(key, sizeof(key), "%lld", (long long)m.id);
        if (cb(&m, arg) != 0)
            break;
    }
    PQclear(r);
    return 0;
}

int tg_pg_mail_attempts(tg_store_t *store, int64_t mail_id, tg_mail_attempt_t *out, size_t limit, size_t *n,
                        tg_err_t *err)
{
    *n = 0;
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, mail_id);
    tg_pg_param_i64(&p, (int64_t)limit);
    PGresult *r;
    int rc = tg_pg_query(tg_pg(store),
                         "SELECT at_ms, outcome, smtp_code, error FROM mail_attempts WHERE mail_id = $1"
                         " ORDER BY at_ms, rowid LIMIT $2",
                         &p, &r, err, "reading mail attempts");
    if (rc != 0)
        return rc;
    int rows = PQntuples(r);
    for (int i = 0; i < rows && *n < limit; i++) {
        tg_mail_attempt_t *a = &out[*n];
        memset(a, 0, sizeof(*a));
        a->at_ms = tg_pg_i64(r, i, 0);
        tg_pg_text(r, i, 1, a->outcome, sizeof(a->outcome));
        a->smtp_code = tg_pg_i64(r, i, 2);
        tg_pg_text(r, i, 3, a->error, sizeof(a->error));
        (*n)++;
    }
    PQclear(r);
    return 0;
}

int tg_pg_email_token_insert(tg_store_t *store, const uint8_t hash[32], const char *customer_id, const char *purpose,
                             int64_t now, int64_t expires_at, tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_bytea(&p, hash, 32);
    tg_pg_param_text(&p, customer_id);
    tg_pg_param_text(&p, purpose);
    tg_pg_param_i64(&p, now);
    tg_pg_param_i64(&p, expires_at);
    return tg_pg_query(tg_pg(store),
                       "INSERT INTO email_tokens(token_hash, customer_id, purpose, created_at, expires_at)"
                       " VALUES ($1, $2, $3, $4, $5)",
                       &p, NULL, err, "storing an email token");
}

int tg_pg_email_token_use(tg_store_t *store, const uint8_t hash[32], const char *purpose, int64_t now,
                          char customer_id[TG_ID_MAX], tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_bytea(&p, hash, 32);
    tg_pg_param_text(&p, purpose);
    tg_pg_param_i64(&p, now);
    PGresult *r;
    int rc = tg_pg_query(tg_pg(store),
                         "UPDATE email_tokens SET used_at = $3 WHERE token_hash = $1 AND purpose = $2"
                         " AND used_at = 0 AND expires_at > $3 RETURNING customer_id",
                         &p, &r, err, "using an email token");
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 1)
        tg_pg_text(r, 0, 0, customer_id, TG_ID_MAX);
    else
        rc = tg_errf(err, TG_ENOTFOUND, "the link is not valid (unknown, used or expired)");
    PQclear(r);
    return rc;
}

int tg_pg_email_token_revoke(tg_store_t *store, const char *customer_id, const char *purpose, int64_t now,
                             tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    tg_pg_param_text(&p, purpose);
    tg_pg_param_i64(&p, now);
    return tg_pg_query(tg_pg(store),
                       "UPDATE email_tokens SET used_at = $3 WHERE customer_id = $1 AND purpose = $2 AND used_at = 0",
                       &p, NULL, err, "revoking email tokens");
}

int tg_pg_customer_confirm_email(tg_store_t *store, const char *customer_id, int64_t at, tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    tg_pg_param_i64(&p, at);
    PGresult *r;
    int rc = tg_pg_query(tg_pg(store),
                         "UPDATE customers SET email_confirmed_at = CASE WHEN email_confirmed_at = 0 THEN $2"
                         " ELSE email_confirmed_at END WHERE id = $1",
                         &p, &r, err, "confirming an address");
    if (rc != 0)
        return rc;
    if (tg_pg_affected(r) == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "no customer %s", customer_id);
    PQclear(r);
    return rc;
}
