/* portal_account.c - the account mails of the developer portal (issue 13): the address
 * confirmation a sign-up sends, POST /v1/confirm-email, POST /v1/me/confirmation (a new
 * confirmation link), POST /v1/forgot-password and the two halves of POST /v1/reset-password
 * (the Argon2id hash between them runs on a hash worker: portal.c's SLOW_RESET). Present only
 * with an email: section; without one these routes are 404.
 *
 * The tokens' rules (single use, expiry, a new link ending the older ones) are
 * notify/account_mail.c's; this file parses, rate limits and answers. "Forgot password" answers
 * 202 whatever the address: whether an account exists is never revealed; it is rate limited
 * per client address and per address asked about. A new confirmation link answers 202 whether
 * or not one was sent, rate limited per account and per client address.
 * Runs on the admin back thread. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "admin/admin_int.h"
#include "admin/password_policy.h"
#include "notify/account_mail.h"
#include "notify/mail_outbox.h"
#include "store/store_mail.h"
#include "util/cidr.h"
#include "util/clock.h"
#include "util/throttle.h"
#include "util/log.h"

#define FORGOT_PER_ADDRESS 10 /* per hour */
#define FORGOT_PER_EMAIL 5    /* per hour */
#define RESEND_PER_ACCOUNT 5  /* new confirmation links per hour */
#define RESEND_PER_ADDRESS 10 /* per hour, from one client address */

int tg_portal_mail_confirmation(tg_admin_t *a, const tg_customer_t *c, tg_err_t *err)
{
    if (!tg_mail_enabled())
        return 0;
    tg_err_t e = {0};
    int rc = tg_account_mail_link(a->d.store, a->d.cfg->portal.public_url, c, TG_PURPOSE_CONFIRM_EMAIL,
                                  TG_CONFIRM_TTL_S, "confirm-email.html", tg_adm_now_s(), &e);
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
    if (bad || t == NULL || strlen(t) == 0 || strlen(t) >= TG_ACCOUNT_TOKEN_MAX) {
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
    tg_customer_t c;
    tg_err_t err = {0};
    tg_audit_actor_t who;
    tg_adm_audit_actor(r, TG_AUDIT_CUSTOMER, "", &who);
    int rc = token != NULL ? tg_email_confirm(a->d.store, token, tg_adm_now_s(), &who, &c, &err) : 1;
    json_decref(body);
    if (rc == 1)
        return; /* body_token replied */
    if (rc == TG_ENOTFOUND) {
        tg_adm_reply_error(res, 400, "invalid_token", "This link is not valid: it was used, it expired or it was never issued.");
        return;
    }
    if (rc != 0) {
        tg_adm_reply_error(res, 500, "internal_error", "Confirming the address failed: %s", err.msg);
        return;
    }
    tg_accounts_put_customer(a->d.accounts, &c, NULL); /* the gateway lets its keys through now */
    tg_adm_reply_json(res, 200, json_pack("{s:b,s:s}", "email_confirmed", 1, "email", c.email));
}

/* Seconds to wait from a throttle's answer in nanoseconds, for Retry-After (1 s to 1 hour). */
static int retry_seconds(int64_t wait_ns)
{
    int64_t s = (wait_ns + TG_NS_PER_SEC - 1) / TG_NS_PER_SEC;
    return s < 1 ? 1 : s > 3600 ? 3600 : (int)s;
}

void tg_portal_resend_confirmation(tg_admin_t *a, tg_throttle_t *limits, const char *address, const tg_customer_t *c,
                                   tg_admin_response_t *res)
{
    /* Limited per account and per client address, like "forgot password": a session cannot be
     * used to flood its own inbox (or the mail server's reputation), nor can one client with
     * many accounts. Every request counts, sent or not. */
    char key[TG_ID_MAX + TG_CIDR_TEXT_MAX + 8];
    int64_t now = tg_clock_mono_ns(), hour = 3600 * TG_NS_PER_SEC;
    snprintf(key, sizeof(key), "c:%s", c->id);
    int64_t wait = tg_throttle_hit(limits, key, RESEND_PER_ACCOUNT, hour, now);
    if (wait == 0) {
        snprintf(key, sizeof(key), "r:%s", address);
        wait = tg_throttle_hit(limits, key, RESEND_PER_ADDRESS, hour, now);
    }
    if (wait > 0) {
        res->retry_after = retry_seconds(wait);
        tg_adm_reply_error(res, 429, "rate_limited", "Too many confirmation links asked for; retry in %d seconds.",
                           res->retry_after);
        return;
    }
    tg_err_t err = {0};
    int rc = tg_email_confirmation_resend(a->d.store, a->d.cfg->portal.public_url, c->id, tg_adm_now_s(), &err);
    /* Confirmed already: nothing is sent, and the answer is the same (the page knows the state
     * from GET /v1/me; this answer never says more than that). Other errors are the owner's to
     * see in the log. */
    if (rc != 0 && rc != TG_EEXIST)
        tg_log(TG_LOG_WARN, "a new confirmation link for %s could not be queued: %s", c->id, err.msg);
    tg_adm_reply_json(res, 202,
                      json_pack("{s:s}", "message",
                                "If your address is not confirmed yet, a new link is on its way; earlier links no longer work."));
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
        res->retry_after = retry_seconds(wait);
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
            if (tg_account_mail_link(a->d.store, a->d.cfg->portal.public_url, &c, TG_PURPOSE_RESET_PASSWORD,
                                     TG_RESET_TTL_S, "reset-password.html", tg_adm_now_s(), &err) == 0 &&
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
    if (token == NULL || strlen(token) == 0 || strlen(token) >= TG_ACCOUNT_TOKEN_MAX) {
        tg_adm_reply_error(res, 400, "invalid_token", "This link is not valid: it was used, it expired or it was never issued.");
        return 0;
    }
    tg_account_token_hash(token, h);
    int rc = tg_store_tx_begin(a->d.store, &err);
    if (rc == 0) {
        rc = tg_store_email_token_use(a->d.store, h, TG_PURPOSE_RESET_PASSWORD, tg_adm_now_s(), cid, &err);
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
    tg_account_token_hash(token, h);
    if (new_hash[0] == '\0') {
        tg_adm_reply_error(res, 503, "service_unavailable", "Out of memory hashing the password; retry.");
        return;
    }
    int rc = tg_store_tx_begin(a->d.store, &err);
    if (rc == 0 && (rc = tg_store_email_token_use(a->d.store, h, TG_PURPOSE_RESET_PASSWORD, now, cid, &err)) == 0 &&
        (rc = tg_store_customer_set_password(a->d.store, cid, new_hash, &err)) == 0 &&
        (rc = tg_store_session_delete_customer(a->d.store, cid, &ended, &err)) == 0 &&
        (rc = tg_store_email_token_revoke(a->d.store, cid, TG_PURPOSE_RESET_PASSWORD, now, &err)) == 0 &&
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
