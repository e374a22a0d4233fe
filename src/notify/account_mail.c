/* account_mail.c - the account mails' single-use links (account_mail.h). */
#include "notify/account_mail.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "notify/mail_outbox.h"
#include "store/store.h"
#include "store/store_mail.h"

void tg_account_token_hash(const char *token, uint8_t out[32])
{
    crypto_hash_sha256(out, (const unsigned char *)token, strlen(token));
}

/* A new token for (customer, purpose) into out, stored as its hash; older unused ones end. */
static int token_issue(tg_store_t *st, const char *customer_id, const char *purpose, int64_t ttl_s, int64_t now,
                       char out[TG_ACCOUNT_TOKEN_MAX], tg_err_t *err)
{
    uint8_t raw[32], h[32];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(out, TG_ACCOUNT_TOKEN_MAX, raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
    tg_account_token_hash(out, h);
    int rc = tg_store_email_token_revoke(st, customer_id, purpose, now, err);
    if (rc == 0)
        rc = tg_store_email_token_insert(st, h, customer_id, purpose, now, now + ttl_s, err);
    return rc;
}

int tg_account_mail_link(tg_store_t *st, const char *public_url, const tg_customer_t *c, const char *purpose,
                         int64_t ttl_s, const char *page, int64_t now, tg_err_t *err)
{
    char token[TG_ACCOUNT_TOKEN_MAX], link[1024];
    int rc = token_issue(st, c->id, purpose, ttl_s, now, token, err);
    if (rc != 0)
        return rc;
    int w = snprintf(link, sizeof(link), "%s/portal/%s#token=%s", public_url, page, token);
    sodium_memzero(token, sizeof(token));
    if (w < 0 || (size_t)w >= sizeof(link)) {
        sodium_memzero(link, sizeof(link));
        return tg_errf(err, TG_EINVAL, "portal.public_url is too long for a link");
    }
    json_t *vars = json_pack("{s:s,s:s,s:s}", "customer_name", c->name[0] ? c->name : c->email, "customer_email",
                             c->email, "link", link);
    rc = vars != NULL ? tg_mail_enqueue_id(st, c->email, purpose, vars, c->id, NULL, err)
                      : tg_errf(err, TG_ENOMEM, "out of memory");
    json_decref(vars);
    sodium_memzero(link, sizeof(link));
    return rc;
}

int tg_email_confirmation_resend(tg_store_t *st, const char *public_url, const char *customer_id, int64_t now,
                                 tg_err_t *err)
{
    if (!tg_mail_enabled())
        return tg_errf(err, TG_ESTATE, "email is not configured: there is no link to send");
    tg_customer_t c;
    int rc = tg_store_tx_begin(st, err);
    if (rc != 0)
        return rc;
    /* Read inside the transaction: a confirmation committing meanwhile is seen, or waits. */
    rc = tg_store_customer_get(st, customer_id, &c, err);
    if (rc == 0 && c.email_confirmed_at != 0)
        rc = tg_errf(err, TG_EEXIST, "%s is confirmed already", c.email);
    if (rc == 0)
        rc = tg_account_mail_link(st, public_url, &c, TG_PURPOSE_CONFIRM_EMAIL, TG_CONFIRM_TTL_S, "confirm-email.html",
                                  now, err);
    if (rc == 0)
        rc = tg_store_tx_commit(st, err);
    if (rc != 0) {
        tg_store_tx_rollback(st);
        return rc;
    }
    tg_mail_wake();
    return 0;
}

/* The audit entry joins the confirmation's transaction: both are kept, or neither. */
static int audit_confirm(tg_store_t *st, tg_audit_actor_t *who, const tg_customer_t *c, int64_t now, tg_err_t *err)
{
    if (who == NULL)
        return 0;
    snprintf(who->id, sizeof(who->id), "%s", c->id);
    json_t *after = json_pack("{s:s,s:I}", "email", c->email, "email_confirmed_at", (json_int_t)now);
    int rc = after != NULL ? tg_audit_record(st, who, "customer.email_confirm", "customer", c->id, NULL, after, err)
                           : tg_errf(err, TG_ENOMEM, "out of memory recording the confirmation");
    json_decref(after);
    return rc;
}

int tg_email_confirm(tg_store_t *st, const char *token, int64_t now, tg_audit_actor_t *who, tg_customer_t *out,
                     tg_err_t *err)
{
    if (token == NULL || token[0] == '\0' || strlen(token) >= TG_ACCOUNT_TOKEN_MAX)
        return tg_errf(err, TG_ENOTFOUND, "no such token");
    uint8_t h[32];
    char cid[TG_ID_MAX];
    tg_account_token_hash(token, h);
    int rc = tg_store_tx_begin(st, err);
    if (rc != 0)
        return rc;
    if ((rc = tg_store_email_token_use(st, h, TG_PURPOSE_CONFIRM_EMAIL, now, cid, err)) == 0 &&
        (rc = tg_store_customer_confirm_email(st, cid, now, err)) == 0 &&
        (rc = tg_store_customer_get(st, cid, out, err)) == 0 && (rc = audit_confirm(st, who, out, now, err)) == 0)
        rc = tg_store_tx_commit(st, err);
    if (rc != 0)
        tg_store_tx_rollback(st);
    return rc;
}
