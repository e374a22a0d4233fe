/* portal_account.c - the account mails of the developer portal (issue 13): the address
 * confirmation a sign-up sends, POST /v1/confirm-email, POST /v1/forgot-password and the two
 * halves of POST /v1/reset-password (the Argon2id hash between them runs on a hash worker:
 * portal.c's SLOW_RESET). Present only with an email: section; without one these routes are 404.
 *
 * Tokens are 256 random bits in base64url, mailed in a link's fragment (#token=..., never sent
 * to a server by the browser, so never in an access log or a Referer); only their SHA-256 is
 * stored. Each is single-use (used_at, set by an UPDATE that only one caller can win) and
 * expires: 24 h for a confirmation, 1 h for a reset. A new token of a purpose ends the older ones
 * of that customer. "Forgot password" answers 202 whatever the address: whether an account exists
 * is never revealed; it is rate limited per client address and per address asked about.
 * Runs on the admin back thread. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "admin/admin_int.h"
#include "admin/password_policy.h"
#include "notify/mail_outbox.h"
#include "store/store_mail.h"
#include "util/clock.h"
#include "util/throttle.h"
#include "util/log.h"

#define CONFIRM_TTL_S 86400
#define RESET_TTL_S 3600
#define TOKEN_TEXT_MAX 64
#define FORGOT_PER_ADDRESS 10 /* per hour */
#define FORGOT_PER_EMAIL 5    /* per hour */

static void token_hash(const char *token, uint8_t out[32])
{
    crypto_hash_sha256(out, (const unsigned char *)token, strlen(token));
}

/* A new token for (customer, purpose), stored as its hash; older unused ones of the purpose end. */
static int token_issue(tg_store_t *st, const char *customer_id, const char *purpose, int64_t ttl_s,
                       char out[TOKEN_TEXT_MAX], tg_err_t *err)
{
    uint8_t raw[32], h[32];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(out, TOKEN_TEXT_MAX, raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
    token_hash(out, h);
    int64_t now = tg_adm_now_s();
    int rc = tg_store_email_token_revoke(st, customer_id, purpose, now, err);
    if (rc == 0)
        rc = tg_store_email_token_insert(st, h, customer_id, purpose, now, now + ttl_s, err);
    return rc;
}

/* Queues the mail of template `tmpl` for c with a fresh token's link to page. */
static int mail_link(tg_admin_t *a, const tg_customer_t *c, const char *tmpl, const char *purpose, int64_t ttl_s,
                     const char *page, tg_err_t *err)
{
    char token[TOKEN_TEXT_MAX], link[1024];
    int rc = token_issue(a->d.store, c->id, purpose, ttl_s, token, err);
    if (rc != 0)
        return rc;
    snprintf(link, sizeof(link), "%s/portal/%s#token=%s", a->d.cfg->portal.public_url, page, token);
    json_t *vars = json_pack("{s:s,s:s,s:s}", "customer_name", c->name[0] ? c->name : c->email, "customer_email",
                             c->email, "link", link);
    rc = vars != NULL ? tg_mail_enqueue_id(a->d.store, c->email, tmpl, vars, c->id, NULL, err)
                      : tg_errf(err, TG_ENOMEM, "out of memory");
    json_decref(vars);
    sodium_memzero(token, sizeof(token));
    sodium_memzero(link, sizeof(link));
    return rc;
}

int tg_portal_mail_confirmation(tg_admin_t *a, const tg_customer_t *c, tg_err_t *err)
{
    if (!tg_mail_enabled())
        return 0;
    tg_err_t e = {0};
    int rc = mail_link(a, c, "confirm_email", "confirm_email", CONFIRM_TTL_S, "confirm-email.html", &e);
    if (rc == TG_EINVAL || rc == TG_ENOTFOUND || rc == TG_EIO || rc == TG_ELIMIT) {
        /* a template the owner broke: the sign-up goes on without the mail, the owner is told */
        tg_log(TG_LOG_WARN, "the confirmation mail for %s could not be built: %s", c->id, e.msg);
        return 0;
    }
    if (rc != 0)
        tg_errf(err, rc, "%s", e.msg);
    return rc;
}

/* The body's "token" if it is a string of a plausible size; NULL after replying 400. */
/* An account change's audit entry, in its transaction: the customer the link belongs to is the
 * actor (whoever holds the link acts for it). Takes after (may be NULL: out of memory). */
static int audit_account(tg_admin_t *a, tg_audit_actor_t *who, const char *customer_id, const char *action,
                         json_t *after, tg_err_t *err)
{
    snprintf(who->id, sizeof(who->id), "%s", customer_id);
    int rc = after != NULL ? tg_audit_record(a->d.store, who, action, "customer", customer_id, NULL, after, err)
                           : tg_errf(err, TG_ENOMEM, "out of memory recording %s", action);
    json_decref(after);
    return rc;
}

static const char *body_token(json_t *body, tg_admin_response_t *res)
{
    int bad = 0;
    const char *t = tg_adm_opt_string(body, "token", &bad);
    if (bad || t == NULL || strlen(t) == 0 || strlen(t) >= TOKEN_TEXT_MAX) {
        tg_adm_reply_error(res, 400, "invalid_token", "This link is not valid: it was used, it expired or it was never issued.");
        return NULL;
    }
    return t;
}

void tg_portal_confirm_email(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    const char *token = body_token(body, res);
    if (token == NULL) {
        json_decref(body);
        return;
    }
    uint8_t h[32];
    token_hash(token, h);
    json_decref(body);
    char cid[TG_ID_MAX];
    tg_customer_t c;
    tg_err_t err = {0};
    int64_t now = tg_adm_now_s();
    tg_audit_actor_t who;
    tg_adm_audit_actor(r, TG_AUDIT_CUSTOMER, "", &who);
    int rc = tg_store_tx_begin(a->d.store, &err);
    if (rc == 0 && (rc = tg_store_email_token_use(a->d.store, h, "confirm_email", now, cid, &err)) == 0 &&
        (rc = tg_store_customer_confirm_email(a->d.store, cid, now, &err)) == 0 &&
        (rc = tg_store_customer_get(a->d.store, cid, &c, &err)) == 0 &&
        (rc = audit_account(a, &who, cid, "customer.email_confirm",
                            json_pack("{s:s,s:I}", "email", c.email, "email_confirmed_at", (json_int_t)now), &err)) == 0)
        rc = tg_store_tx_commit(a->d.store, &err);
    if (rc != 0) {
        tg_store_tx_rollback(a->d.store);
        if (rc == TG_ENOTFOUND)
            tg_adm_reply_error(res, 400, "invalid_token",
                               "This link is not valid: it was used, it expired or it was never issued.");
        else
            tg_adm_reply_error(res, 500, "internal_error", "Confirming the address failed: %s", err.msg);
        return;
    }
    tg_accounts_put_customer(a->d.accounts, &c, NULL); /* the gateway lets its keys through now */
    tg_adm_reply_json(res, 200, json_pack("{s:b,s:s}", "email_confirmed", 1, "email", c.email));
}

void tg_portal_forgot_password(tg_admin_t *a, tg_throttle_t *limits, const char *address, const tg_admin_request_t *r,
                               tg_admin_response_t *res)
{
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    int bad = 0;
    const char *email = tg_adm_opt_string(body, "email", &bad);
    if (bad || email == NULL || strlen(email) >= TG_EMAIL_MAX || !tg_adm_valid_email(email)) {
        tg_adm_reply_error(res, 400, "bad_request", "email: a valid email address is required.");
        json_decref(body);
        return;
    }
    char key[TG_EMAIL_MAX + 8];
    int64_t now = tg_clock_mono_ns(), hour = 3600 * TG_NS_PER_SEC;
    snprintf(key, sizeof(key), "a:%s", address);
    int64_t wait = tg_throttle_hit(limits, key, FORGOT_PER_ADDRESS, hour, now);
    if (wait == 0) {
        size_t i = 0;
        key[i++] = 'e';
        key[i++] = ':';
        for (const char *p = email; *p != '\0' && i + 1 < sizeof(key); p++)
            key[i++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        key[i] = '\0';
        wait = tg_throttle_hit(limits, key, FORGOT_PER_EMAIL, hour, now);
    }
    if (wait > 0) {
        int64_t s = (wait + TG_NS_PER_SEC - 1) / TG_NS_PER_SEC;
        res->retry_after = s < 1 ? 1 : s > 3600 ? 3600 : (int)s;
        tg_adm_reply_error(res, 429, "rate_limited", "Too many password resets asked for; retry in %d seconds.",
                           res->retry_after);
        json_decref(body);
        return;
    }
    tg_customer_t c;
    char hash[crypto_pwhash_STRBYTES];
    tg_err_t err = {0};
    int queued = 0;
    /* Only an account with a password (a portal account) gets a reset link. Whatever happens, the
     * answer is the same 202: an error is the owner's to see in the log, not the caller's. */
    if (tg_store_customer_by_email(a->d.store, email, &c, hash, sizeof(hash), &err) == 0 && hash[0] != '\0') {
        if (tg_store_tx_begin(a->d.store, &err) == 0) {
            if (mail_link(a, &c, "reset_password", "reset_password", RESET_TTL_S, "reset-password.html", &err) == 0 &&
                tg_store_tx_commit(a->d.store, &err) == 0)
                queued = 1;
            else
                tg_store_tx_rollback(a->d.store);
        }
        if (!queued)
            tg_log(TG_LOG_WARN, "a password reset mail could not be queued: %s", err.msg);
    }
    sodium_memzero(hash, sizeof(hash));
    json_decref(body);
    if (queued)
        tg_mail_wake();
    tg_adm_reply_json(res, 202,
                      json_pack("{s:s}", "message",
                                "If an account uses this address, a link to choose a new password is on its way."));
}

/* Finds the token's customer without using the token up (in a transaction rolled back), so that
 * a password the policy refuses leaves the link usable. 1 and *c, or 0 after replying. */
int tg_portal_reset_check(tg_admin_t *a, const char *token, const char *password, tg_customer_t *c,
                          tg_admin_response_t *res)
{
    uint8_t h[32];
    char cid[TG_ID_MAX];
    tg_err_t err = {0};
    if (token == NULL || strlen(token) == 0 || strlen(token) >= TOKEN_TEXT_MAX) {
        tg_adm_reply_error(res, 400, "invalid_token", "This link is not valid: it was used, it expired or it was never issued.");
        return 0;
    }
    token_hash(token, h);
    int rc = tg_store_tx_begin(a->d.store, &err);
    if (rc == 0) {
        rc = tg_store_email_token_use(a->d.store, h, "reset_password", tg_adm_now_s(), cid, &err);
        if (rc == 0)
            rc = tg_store_customer_get(a->d.store, cid, c, &err);
        tg_store_tx_rollback(a->d.store);
    }
    if (rc == TG_ENOTFOUND) {
        tg_adm_reply_error(res, 400, "invalid_token", "This link is not valid: it was used, it expired or it was never issued.");
        return 0;
    }
    if (rc != 0) {
        tg_adm_reply_error(res, 500, "internal_error", "%s", err.msg);
        return 0;
    }
    if (password == NULL) {
        tg_adm_reply_error(res, 400, "weak_password", "password: required.");
        return 0;
    }
    if (tg_password_check(password, c->email, &err) != 0) {
        tg_adm_reply_error(res, 400, "weak_password", "%s", err.msg);
        return 0;
    }
    return 1;
}

/* After the hash: uses the token (now for good), sets the password, ends every session of the
 * customer and every other reset link, in one transaction. */
void tg_portal_reset_finish(tg_admin_t *a, const char *token, const char *new_hash, tg_audit_actor_t *who,
                            tg_admin_response_t *res)
{
    uint8_t h[32];
    char cid[TG_ID_MAX];
    tg_err_t err = {0};
    uint64_t ended = 0;
    int64_t now = tg_adm_now_s();
    token_hash(token, h);
    if (new_hash[0] == '\0') {
        tg_adm_reply_error(res, 503, "service_unavailable", "Out of memory hashing the password; retry.");
        return;
    }
    int rc = tg_store_tx_begin(a->d.store, &err);
    if (rc == 0 && (rc = tg_store_email_token_use(a->d.store, h, "reset_password", now, cid, &err)) == 0 &&
        (rc = tg_store_customer_set_password(a->d.store, cid, new_hash, &err)) == 0 &&
        (rc = tg_store_session_delete_customer(a->d.store, cid, &ended, &err)) == 0 &&
        (rc = tg_store_email_token_revoke(a->d.store, cid, "reset_password", now, &err)) == 0 &&
        (rc = audit_account(a, who, cid, "customer.password_reset",
                            json_pack("{s:b,s:I}", "password_reset", 1, "sessions_ended", (json_int_t)ended), &err)) == 0)
        rc = tg_store_tx_commit(a->d.store, &err);
    if (rc != 0) {
        tg_store_tx_rollback(a->d.store);
        if (rc == TG_ENOTFOUND) /* used meanwhile by a concurrent request */
            tg_adm_reply_error(res, 400, "invalid_token",
                               "This link is not valid: it was used, it expired or it was never issued.");
        else
            tg_adm_reply_error(res, 500, "internal_error", "Resetting the password failed: %s", err.msg);
        return;
    }
    tg_adm_reply_json(res, 200,
                      json_pack("{s:b,s:I}", "password_reset", 1, "sessions_ended", (json_int_t)ended));
}
