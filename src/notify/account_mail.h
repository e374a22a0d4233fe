/* account_mail.h - the account mails' single-use links (issue 13): the confirmation of a
 * customer's address (mailed at sign-up, and again when the customer asks for a new link) and
 * the "forgot password" link. The rules live here; the portal adapter (admin/portal_account.c)
 * parses requests, rate limits them and turns these errors into answers.
 *
 * A token is 256 random bits in base64url, mailed in a link's fragment (#token=..., which a
 * browser never sends to a server, so it is in no access log and no Referer); only its SHA-256
 * is stored. Each is single-use (store_mail.h's tg_store_email_token_use: of two concurrent
 * uses, one wins) and expires (TG_CONFIRM_TTL_S, TG_RESET_TTL_S). Issuing a token of a purpose
 * ends the customer's older unused ones of that purpose: only the newest link works.
 *
 * Threading: the caller's thread and store connection (the admin back thread); the mail is
 * queued in the database (mail_outbox.h), nothing here talks to a mail server. */
#ifndef TG_NOTIFY_ACCOUNT_MAIL_H
#define TG_NOTIFY_ACCOUNT_MAIL_H

#include <stdint.h>

#include "model/records.h"
#include "ops/audit.h"
#include "util/err.h"

typedef struct tg_store tg_store_t;

#define TG_ACCOUNT_TOKEN_MAX 64 /* a token's text with its NUL: 43 base64url characters today */
#define TG_CONFIRM_TTL_S 86400  /* a confirmation link works for a day */
#define TG_RESET_TTL_S 3600     /* a password reset link for an hour */

#define TG_PURPOSE_CONFIRM_EMAIL "confirm_email"
#define TG_PURPOSE_RESET_PASSWORD "reset_password"

/* SHA-256 of a token's text: what the store keeps and looks up. */
void tg_account_token_hash(const char *token, uint8_t out[32]);

/* Issues a new token for (c, purpose) valid ttl_s from now (ending the older unused ones of the
 * purpose) and queues the mail of template tmpl (the template names equal the purposes) to c's
 * address, with the link public_url + "/portal/" + page + "#token=...". Runs in the caller's
 * transaction when one is open (the token and its mail commit together). The token's text is
 * wiped before returning; it exists only in the queued mail. Returns 0, the errors of
 * tg_mail_enqueue (TG_EINVAL, TG_ENOTFOUND, TG_EIO: a template the owner broke) and the
 * store's. */
int tg_account_mail_link(tg_store_t *st, const char *public_url, const tg_customer_t *c, const char *purpose,
                         int64_t ttl_s, const char *page, int64_t now, tg_err_t *err);

/* Mails customer_id a new confirmation link (the page confirm-email.html), in a transaction of
 * its own: the new token, the end of the older links and the mail commit together. Returns 0
 * when a link was queued; TG_EEXIST when the address is confirmed already (nothing is sent:
 * there is nothing left to confirm); TG_ENOTFOUND for an unknown customer; TG_ESTATE when email
 * is not configured; the errors of tg_account_mail_link. The caller decides what the customer
 * is told (the portal answers alike in every case). */
int tg_email_confirmation_resend(tg_store_t *st, const char *public_url, const char *customer_id, int64_t now,
                                 tg_err_t *err);

/* Uses a confirmation token: marks it used and the customer's address confirmed (the first
 * time is kept), in one transaction, and writes the customer as it is now into *out. Returns
 * 0; TG_ENOTFOUND for a token that is unknown, used, expired or of another purpose (not told
 * apart); the store's errors. */
int tg_email_confirm(tg_store_t *st, const char *token, int64_t now, tg_audit_actor_t *who, tg_customer_t *out,
                     tg_err_t *err);

#endif
