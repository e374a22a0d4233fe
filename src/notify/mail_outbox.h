/* mail_outbox.h - email queued durably and sent by a thread of its own.
 *
 * A change that should tell someone by mail (a sign-up's confirmation link, an invoice, ...)
 * renders and builds the message and writes it to the mail queue in its own transaction
 * (tg_mail_enqueue*): the change and the promise of the mail commit together, and nothing on the
 * request path talks to the mail server. The sender thread (tg_mail_sender_start) claims due
 * messages, sends each over SMTP (notify/mail.h) and records the attempt: sent; retried later
 * with exponential backoff and full jitter (no answer, a 4xx reply, a dropped connection); or
 * failed (a 5xx reply, or max_attempts reached). Every attempt is logged (time, outcome, SMTP
 * reply code, error) and listed by the admin API; a failed or sent message can be queued again.
 *
 * A message holding a single-use link (confirm_email, reset_password) is "sensitive": its body
 * is erased once it is sent or fails, so the database keeps the link only while it is needed.
 *
 * Threads: tg_mail_setup runs once in main before any thread uses this module (it keeps the
 * configuration pointer: the configuration is immutable and outlives every thread). The enqueue
 * functions run on the caller's thread with the caller's connection. The sender owns its own
 * store connection. tg_mail_wake may be called from any thread. */
#ifndef TG_MAIL_OUTBOX_H
#define TG_MAIL_OUTBOX_H

#include <jansson.h>
#include <stdint.h>

#include "config/config.h"
#include "store/store.h"
#include "util/err.h"

/* Keeps cfg for the enqueue functions (NULL: mail off). Call before starting threads. */
void tg_mail_setup(const tg_config_t *cfg);

/* 1 when an email: section is configured (tg_mail_setup was given one). */
int tg_mail_enabled(void);

/* Renders template_name (notify/mail_template.h) with vars (borrowed; may be NULL) plus
 * portal_url, builds the message from email.from to `to`, and queues it on st (in the caller's
 * transaction if one is open). *mail_id (may be NULL) gets its id. Returns 0; TG_ESTATE when email
 * is not configured; TG_ENOTFOUND for an unknown template; TG_EINVAL for a bad address or a
 * header value with CR/LF; TG_EIO for an unreadable override template; TG_ESTORE/TG_EUNAVAIL. */
int tg_mail_enqueue(tg_store_t *st, const char *to, const char *template_name, json_t *vars, tg_err_t *err);
int tg_mail_enqueue_id(tg_store_t *st, const char *to, const char *template_name, json_t *vars, const char *customer_id,
                       int64_t *mail_id, tg_err_t *err);

/* Queues the email for event `type` to the customer's address when email is configured, the
 * type has a customer template, and the customer's settings want it (notification_settings.email_events;
 * a customer who never chose gets every customer-facing event). vars = data (borrowed; may be NULL) plus
 * customer_name, customer_email and portal_url. Returns 0 also when nothing is to be sent;
 * TG_ENOTFOUND for an unknown customer; the errors of tg_mail_enqueue. */
int tg_mail_enqueue_event(tg_store_t *st, const char *type, const char *customer_id, json_t *data, tg_err_t *err);

/* 1 if email_events (a customer's notification settings: "*", "" or a comma-separated list of
 * event types) asks for type by email. Pure. */
int tg_mail_event_wanted(const char *email_events, const char *type);

/* ---- the sender thread ---- */

typedef struct tg_mail_sender tg_mail_sender_t;

typedef struct tg_mail_sender_settings {
    const char *database;    /* the store URL: the sender opens its own connection */
    const tg_config_t *cfg;  /* email.*: the server and its credentials */
    int64_t backoff_base_ms; /* first retry within this; 0: 1000 */
    int64_t backoff_cap_ms;  /* no wait longer than this; 0: 1 hour */
    int max_attempts;        /* then the message fails; 0: 15 (about a day with the cap) */
    int64_t poll_ms;         /* how often it looks for new messages without a wake; 0: 1000 */
    long timeout_ms;         /* one SMTP exchange; 0: 30 s */
} tg_mail_sender_settings_t;

/* Starts the sender. Returns 0, TG_ECONFIG without an email section, the store's errors. */
int tg_mail_sender_start(const tg_mail_sender_settings_t *s, tg_mail_sender_t **out, tg_err_t *err);
/* Cuts a send in progress short and joins the thread. NULL is fine. */
void tg_mail_sender_stop(tg_mail_sender_t *ms);
/* Nudges the running sender (after a commit that queued mail). Any thread; no-op when none runs. */
void tg_mail_wake(void);

#endif
