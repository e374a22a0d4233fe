/* store_mail.h - email's durable state (migration 25): the mail queue and its log of attempts,
 * single-use email tokens (address confirmation, password reset; only their hashes), and a
 * customer's confirmed address. The mail outbox (src/notify/mail_outbox.h) decides; these
 * functions read and write rows. Same threading rule as store.h: one connection per thread. */
#ifndef TG_STORE_MAIL_H
#define TG_STORE_MAIL_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define TG_MAIL_TEMPLATE_NAME_MAX 48
#define TG_MAIL_TO_MAX 256
#define TG_MAIL_SUBJECT_STORE_MAX 1024
#define TG_MAIL_MSGID_MAX 128
#define TG_MAIL_ERROR_MAX 512
#define TG_MAIL_BODY_MAX (1024 * 1024)

typedef struct tg_mail_row {
    int64_t id;
    char to[TG_MAIL_TO_MAX];
    char template_name[TG_MAIL_TEMPLATE_NAME_MAX];
    char customer_id[TG_ID_MAX]; /* "" when the mail is to no customer */
    char subject[TG_MAIL_SUBJECT_STORE_MAX];
    char message_id[TG_MAIL_MSGID_MAX];
    char *body; /* the whole RFC 5322 message (malloc'd; tg_mail_row_clear frees it); NULL in lists */
    size_t body_len;
    int sensitive; /* 1: the body holds a secret link; it is erased once sent or failed */
    char state[16]; /* pending | sent | failed */
    int64_t attempts;
    int64_t next_attempt_at_ms;
    int64_t last_code; /* the SMTP server's last reply code; 0 = none */
    char last_error[TG_MAIL_ERROR_MAX];
    int64_t created_at, updated_at, sent_at; /* seconds; sent_at 0 = not sent */
} tg_mail_row_t;

void tg_mail_row_clear(tg_mail_row_t *r);

/* Inserts a pending message due at now_ms (in the caller's transaction if one is open). Fields
 * past their caps are TG_EINVAL. *id (may be NULL) gets the row id. */
int tg_store_mail_insert(tg_store_t *st, const tg_mail_row_t *row, int64_t now_ms, int64_t *id, tg_err_t *err);

/* Claims up to limit pending messages due at now_ms (next_attempt_at <= now_ms), earliest
 * first, into out (bodies included; clear each): each claimed row's next_attempt_at moves to
 * lease_until_ms in the same statement, so another sender (another node on PostgreSQL) does not
 * take it, and a sender that dies before recording the attempt leaves it due again at
 * lease_until_ms. *n gets how many; out is in the order they were queued (id). */
int tg_store_mail_claim(tg_store_t *st, int64_t now_ms, int64_t lease_until_ms, tg_mail_row_t *out, size_t limit,
                        size_t *n, tg_err_t *err);

/* The earliest next_attempt_at of a pending message into *at_ms; TG_ENOTFOUND if none. */
int tg_store_mail_next_due(tg_store_t *st, int64_t *at_ms, tg_err_t *err);

/* The outcome of one attempt, in one transaction: a row in mail_attempts (at now_ms, outcome
 * "sent" | "retry" | "failed", the SMTP reply code, error) and the message's new state: sent
 * (sent_at), pending again at next_attempt_at_ms (retry), or failed. attempts + 1. A sensitive
 * message's body is erased when it becomes sent or failed. TG_ENOTFOUND if the message is not
 * pending. */
int tg_store_mail_record(tg_store_t *st, int64_t id, const char *outcome, int64_t next_attempt_at_ms, int64_t smtp_code,
                         const char *error, int64_t now_ms, tg_err_t *err);

/* A sent or failed message back to pending, due at now_ms, its attempts from 0 again (manual
 * resend; the attempt log keeps the earlier ones). TG_ENOTFOUND;
 * TG_ESTATE if it is pending already or its body was erased (a secret link: ask for a new one). */
int tg_store_mail_requeue(tg_store_t *st, int64_t id, int64_t now_ms, tg_err_t *err);

/* One message (without its body); TG_ENOTFOUND. */
int tg_store_mail_get(tg_store_t *st, int64_t id, tg_mail_row_t *out, tg_err_t *err);

/* Messages newest first (sort key: the id), optionally only those in state (NULL: all), a page
 * at a time (see store.h); bodies are not read. */
typedef int (*tg_mail_row_cb)(const tg_mail_row_t *r, void *arg);
int tg_store_mail_page(tg_store_t *st, const char *state, const tg_page_t *page, tg_mail_row_cb cb, void *arg,
                       tg_page_end_t *end, tg_err_t *err);

/* A message's attempts, oldest first (at most limit). */
typedef struct tg_mail_attempt {
    int64_t at_ms;
    char outcome[16];
    int64_t smtp_code;
    char error[TG_MAIL_ERROR_MAX];
} tg_mail_attempt_t;
int tg_store_mail_attempts(tg_store_t *st, int64_t mail_id, tg_mail_attempt_t *out, size_t limit, size_t *n,
                           tg_err_t *err);

/* ---- single-use tokens ---- */

/* Stores a token's SHA-256 for customer_id and purpose ("confirm_email", "reset_password"),
 * valid until expires_at (seconds). */
int tg_store_email_token_insert(tg_store_t *st, const uint8_t hash[32], const char *customer_id, const char *purpose,
                                int64_t now, int64_t expires_at, tg_err_t *err);

/* Uses a token once: when a token with this hash and purpose exists, is unused and has not
 * expired at now, marks it used (now) and writes its customer into customer_id; otherwise
 * TG_ENOTFOUND (unknown, used before, expired: the caller does not tell them apart). Atomic: of
 * two concurrent uses, one wins. */
int tg_store_email_token_use(tg_store_t *st, const uint8_t hash[32], const char *purpose, int64_t now,
                             char customer_id[TG_ID_MAX], tg_err_t *err);

/* Marks every unused token of customer_id and purpose used (a new one replaces them, a reset
 * ends the others). */
int tg_store_email_token_revoke(tg_store_t *st, const char *customer_id, const char *purpose, int64_t now,
                                tg_err_t *err);

/* Sets the customer's email_confirmed_at to at when it is 0 (confirming twice keeps the first
 * time). TG_ENOTFOUND for an unknown customer. */
int tg_store_customer_confirm_email(tg_store_t *st, const char *customer_id, int64_t at, tg_err_t *err);

#endif
