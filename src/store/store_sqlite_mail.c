/* store_sqlite_mail.c - the SQLite backend of store_mail.h: mail_outbox, mail_attempts and
 * email_tokens of migration 25, and customers.email_confirmed_at. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_mail.h"
#include "store/store_page.h"
#include "store/store_sqlite_int.h"

#define MAIL_COLS                                                                                                      \
    "id, to_addr, template, customer_id, subject, message_id, sensitive, state, attempts, next_attempt_at,"           \
    " last_code, last_error, created_at, updated_at, sent_at"

static void read_mail(sqlite3_stmt *s, tg_mail_row_t *r)
{
    memset(r, 0, sizeof(*r));
    r->id = sqlite3_column_int64(s, 0);
    tg_sqlite_text(s, 1, r->to, sizeof(r->to));
    tg_sqlite_text(s, 2, r->template_name, sizeof(r->template_name));
    tg_sqlite_text(s, 3, r->customer_id, sizeof(r->customer_id));
    tg_sqlite_text(s, 4, r->subject, sizeof(r->subject));
    tg_sqlite_text(s, 5, r->message_id, sizeof(r->message_id));
    r->sensitive = sqlite3_column_int(s, 6);
    tg_sqlite_text(s, 7, r->state, sizeof(r->state));
    r->attempts = sqlite3_column_int64(s, 8);
    r->next_attempt_at_ms = sqlite3_column_int64(s, 9);
    r->last_code = sqlite3_column_int64(s, 10);
    tg_sqlite_text(s, 11, r->last_error, sizeof(r->last_error));
    r->created_at = sqlite3_column_int64(s, 12);
    r->updated_at = sqlite3_column_int64(s, 13);
    r->sent_at = sqlite3_column_int64(s, 14);
}

static int fits(const char *s, size_t cap)
{
    return s != NULL && strnlen(s, cap) < cap;
}

int tg_sqlite_mail_insert(tg_store_t *store, const tg_mail_row_t *row, int64_t now_ms, int64_t *id, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    if (!fits(row->to, sizeof(row->to)) || !fits(row->template_name, sizeof(row->template_name)) ||
        !fits(row->customer_id, sizeof(row->customer_id)) || !fits(row->subject, sizeof(row->subject)) ||
        !fits(row->message_id, sizeof(row->message_id)) || row->body == NULL || row->body_len > TG_MAIL_BODY_MAX)
        return tg_errf(err, TG_EINVAL, "a mail field is past its cap");
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "INSERT INTO mail_outbox(to_addr, template, customer_id, subject, message_id, body,"
                               " sensitive, state, attempts, next_attempt_at, created_at, updated_at)"
                               " VALUES (?,?,?,?,?,?,?,'pending',0,?,?,?)",
                               &s, err, "queuing a mail");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, row->to, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, row->template_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, row->customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, row->subject, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, row->message_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, row->body, (int)row->body_len, SQLITE_STATIC);
    sqlite3_bind_int(s, 7, row->sensitive ? 1 : 0);
    sqlite3_bind_int64(s, 8, now_ms);
    sqlite3_bind_int64(s, 9, now_ms / 1000);
    sqlite3_bind_int64(s, 10, now_ms / 1000);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "queuing a mail");
    else if (id != NULL)
        *id = (int64_t)sqlite3_last_insert_rowid(sqlite3_db_handle(s));
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_mail_claim(tg_store_t *store, int64_t now_ms, int64_t lease_until_ms, tg_mail_row_t *out, size_t limit,
                         size_t *n, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    *n = 0;
    sqlite3_stmt *s;
    /* one statement: what is returned is what was leased (RETURNING sees the new next_attempt_at) */
    int rc = tg_sqlite_prepare(st,
                               "UPDATE mail_outbox SET next_attempt_at = ?2 WHERE id IN (SELECT id FROM mail_outbox"
                               " WHERE state = 'pending' AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id"
                               " LIMIT ?3) RETURNING " MAIL_COLS ", body",
                               &s, err, "claiming due mail");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, now_ms);
    sqlite3_bind_int64(s, 2, lease_until_ms);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)limit);
    int step = SQLITE_DONE;
    while (*n < limit && (step = sqlite3_step(s)) == SQLITE_ROW) {
        tg_mail_row_t *r = &out[*n];
        read_mail(s, r);
        int len = sqlite3_column_bytes(s, 15);
        const unsigned char *p = sqlite3_column_text(s, 15);
        if ((r->body = malloc((size_t)len + 1)) == NULL) {
            rc = tg_errf(err, TG_ENOMEM, "out of memory reading due mail");
            break;
        }
        if (len > 0)
            memcpy(r->body, p, (size_t)len);
        r->body[len] = '\0';
        r->body_len = (size_t)len;
        (*n)++;
    }
    if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "claiming due mail");
    while (rc == 0 && step == SQLITE_ROW) /* finish the UPDATE */
        step = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != 0) {
        for (size_t i = 0; i < *n; i++)
            tg_mail_row_clear(&out[i]);
        *n = 0;
    }
    return rc;
}

int tg_sqlite_mail_next_due(tg_store_t *store, int64_t *at_ms, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "SELECT MIN(next_attempt_at) FROM mail_outbox WHERE state = 'pending'", &s, err,
                               "reading the next mail due");
    if (rc != 0)
        return rc;
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
        *at_ms = sqlite3_column_int64(s, 0);
    else if (step == SQLITE_ROW)
        rc = tg_errf(err, TG_ENOTFOUND, "no mail is pending");
    else
        rc = tg_sqlite_error(st, err, "reading the next mail due");
    sqlite3_finalize(s);
    return rc;
}

static int step_changes(tg_sqlite_t *st, sqlite3_stmt *s, int *changed, tg_err_t *err, const char *doing)
{
    int rc = 0;
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, doing);
    else if (changed != NULL)
        *changed = sqlite3_changes(st->db);
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_mail_record(tg_store_t *store, int64_t id, const char *outcome, int64_t next_attempt_at_ms,
                          int64_t smtp_code, const char *error, int64_t now_ms, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    const char *state = strcmp(outcome, "sent") == 0 ? "sent" : strcmp(outcome, "failed") == 0 ? "failed" : "pending";
    int rc = tg_sqlite_exec(st, "SAVEPOINT mail_record", err, "recording a mail attempt");
    if (rc != 0)
        return rc;
    sqlite3_stmt *s;
    int changed = 0;
    rc = tg_sqlite_prepare(st,
                           "UPDATE mail_outbox SET state = ?2, attempts = attempts + 1, next_attempt_at = ?3,"
                           " last_code = ?4, last_error = ?5, updated_at = ?6,"
                           " sent_at = CASE WHEN ?2 = 'sent' THEN ?6 ELSE sent_at END,"
                           " body = CASE WHEN sensitive = 1 AND ?2 <> 'pending' THEN '' ELSE body END"
                           " WHERE id = ?1 AND state = 'pending'",
                           &s, err, "recording a mail attempt");
    if (rc == 0) {
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_text(s, 2, state, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, next_attempt_at_ms);
        sqlite3_bind_int64(s, 4, smtp_code);
        sqlite3_bind_text(s, 5, error != NULL ? error : "", -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 6, now_ms / 1000);
        rc = step_changes(st, s, &changed, err, "recording a mail attempt");
        if (rc == 0 && changed == 0)
            rc = tg_errf(err, TG_ENOTFOUND, "mail %lld is not pending", (long long)id);
    }
    if (rc == 0 && (rc = tg_sqlite_prepare(st,
                                           "INSERT INTO mail_attempts(mail_id, at_ms, outcome, smtp_code, error)"
                                           " VALUES (?,?,?,?,?)",
                                           &s, err, "logging a mail attempt")) == 0) {
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_int64(s, 2, now_ms);
        sqlite3_bind_text(s, 3, outcome, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 4, smtp_code);
        sqlite3_bind_text(s, 5, error != NULL ? error : "", -1, SQLITE_STATIC);
        rc = step_changes(st, s, NULL, err, "logging a mail attempt");
    }
    if (rc == 0 && (rc = tg_sqlite_exec(st, "RELEASE mail_record", err, "recording a mail attempt")) == 0)
        return 0;
    tg_sqlite_exec(st, "ROLLBACK TO mail_record", NULL, "");
    tg_sqlite_exec(st, "RELEASE mail_record", NULL, "");
    return rc;
}

int tg_sqlite_mail_requeue(tg_store_t *store, int64_t id, int64_t now_ms, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int changed = 0;
    int rc = tg_sqlite_prepare(st,
                               "UPDATE mail_outbox SET state = 'pending', attempts = 0, next_attempt_at = ?2, updated_at = ?3"
                               " WHERE id = ?1 AND state <> 'pending' AND length(body) > 0",
                               &s, err, "queuing a mail again");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, now_ms);
    sqlite3_bind_int64(s, 3, now_ms / 1000);
    if ((rc = step_changes(st, s, &changed, err, "queuing a mail again")) != 0 || changed == 1)
        return rc;
    tg_mail_row_t r;
    if ((rc = tg_sqlite_mail_get(store, id, &r, err)) != 0)
        return rc;
    if (strcmp(r.state, "pending") == 0)
        return tg_errf(err, TG_ESTATE, "mail %lld is queued already", (long long)id);
    return tg_errf(err, TG_ESTATE, "mail %lld held a single-use link and was erased once sent; ask for a new link",
                   (long long)id);
}

int tg_sqlite_mail_get(tg_store_t *store, int64_t id, tg_mail_row_t *out, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "SELECT " MAIL_COLS " FROM mail_outbox WHERE id = ?", &s, err, "reading a mail");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, id);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        read_mail(s, out);
    else if (step == SQLITE_DONE)
        rc = tg_errf(err, TG_ENOTFOUND, "no mail %lld", (long long)id);
    else
        rc = tg_sqlite_error(st, err, "reading a mail");
    sqlite3_finalize(s);
    return rc;
}

typedef struct {
    tg_mail_row_cb cb;
    void *arg;
} page_ctx_t;

static int page_row(sqlite3_stmt *s, void *ctx, char key[TG_PAGE_KEY_MAX])
{
    page_ctx_t *c = ctx;
    tg_mail_row_t r;
    read_mail(s, &r);
    snprintf(key, TG_PAGE_KEY_MAX, "%lld", (long long)r.id);
    return c->cb(&r, c->arg);
}

int tg_sqlite_mail_page(tg_store_t *store, const char *state, const tg_page_t *page, tg_mail_row_cb cb, void *arg,
                        tg_page_end_t *end, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    int64_t before = INT64_MAX;
    if (page->after[0] != '\0' && tg_page_key_parse_num(page->after, &before) != 0)
        return tg_errf(err, TG_EINVAL, "the cursor does not belong to this list");
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT " MAIL_COLS " FROM mail_outbox WHERE id < ?1 AND (?2 IS NULL OR state = ?2)"
                               " ORDER BY id DESC LIMIT ?3",
                               &s, err, "listing mail");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, before);
    if (state != NULL)
        sqlite3_bind_text(s, 2, state, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 2);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)page->limit + 1);
    page_ctx_t c = {cb, arg};
    return tg_sqlite_run_page(st, s, page->limit, page_row, &c, end, "listing mail", err);
}

int tg_sqlite_mail_attempts(tg_store_t *store, int64_t mail_id, tg_mail_attempt_t *out, size_t limit, size_t *n,
                            tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    *n = 0;
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT at_ms, outcome, smtp_code, error FROM mail_attempts WHERE mail_id = ?"
                               " ORDER BY at_ms, rowid LIMIT ?",
                               &s, err, "reading mail attempts");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, mail_id);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
    int step = SQLITE_DONE;
    while (*n < limit && (step = sqlite3_step(s)) == SQLITE_ROW) {
        tg_mail_attempt_t *a = &out[*n];
        memset(a, 0, sizeof(*a));
        a->at_ms = sqlite3_column_int64(s, 0);
        tg_sqlite_text(s, 1, a->outcome, sizeof(a->outcome));
        a->smtp_code = sqlite3_column_int64(s, 2);
        tg_sqlite_text(s, 3, a->error, sizeof(a->error));
        (*n)++;
    }
    if (*n < limit && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "reading mail attempts");
    sqlite3_finalize(s);
    return rc;
}

/* ---- tokens ---- */

int tg_sqlite_email_token_insert(tg_store_t *store, const uint8_t hash[32], const char *customer_id,
                                 const char *purpose, int64_t now, int64_t expires_at, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "INSERT INTO email_tokens(token_hash, customer_id, purpose, created_at, expires_at)"
                               " VALUES (?,?,?,?,?)",
                               &s, err, "storing an email token");
    if (rc != 0)
        return rc;
    sqlite3_bind_blob(s, 1, hash, 32, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, purpose, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, now);
    sqlite3_bind_int64(s, 5, expires_at);
    return step_changes(st, s, NULL, err, "storing an email token");
}

int tg_sqlite_email_token_use(tg_store_t *store, const uint8_t hash[32], const char *purpose, int64_t now,
                              char customer_id[TG_ID_MAX], tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "UPDATE email_tokens SET used_at = ?3 WHERE token_hash = ?1 AND purpose = ?2"
                               " AND used_at = 0 AND expires_at > ?3 RETURNING customer_id",
                               &s, err, "using an email token");
    if (rc != 0)
        return rc;
    sqlite3_bind_blob(s, 1, hash, 32, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, purpose, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
        tg_sqlite_text(s, 0, customer_id, TG_ID_MAX);
        step = sqlite3_step(s);
    } else if (step == SQLITE_DONE) {
        rc = tg_errf(err, TG_ENOTFOUND, "the link is not valid (unknown, used or expired)");
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "using an email token");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_email_token_revoke(tg_store_t *store, const char *customer_id, const char *purpose, int64_t now,
                                 tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "UPDATE email_tokens SET used_at = ?3 WHERE customer_id = ?1 AND purpose = ?2"
                               " AND used_at = 0",
                               &s, err, "revoking email tokens");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, purpose, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now);
    return step_changes(st, s, NULL, err, "revoking email tokens");
}

int tg_sqlite_customer_confirm_email(tg_store_t *store, const char *customer_id, int64_t at, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "UPDATE customers SET email_confirmed_at = CASE WHEN email_confirmed_at = 0 THEN ?2"
                               " ELSE email_confirmed_at END WHERE id = ?1",
                               &s, err, "confirming an address");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, at);
    int changed = 0;
    if ((rc = step_changes(st, s, &changed, err, "confirming an address")) == 0 && changed == 0)
        rc = tg_errf(err, TG_ENOTFOUND, "no customer %s", customer_id);
    return rc;
}
