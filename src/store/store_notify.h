/* store_notify.h - the rows of notifications (migration 24): events, webhook endpoints, the
 * webhook deliveries outbox and its attempts log, and customers' notification settings. The
 * notify module (src/notify/) decides; these functions only read and write rows. Same threading
 * rule as store.h: one connection per thread.
 *
 * Times: events' and endpoints' created_at/updated_at and prev_secret_until are seconds; the
 * delivery fields that drive retries (next_attempt_at, first_attempt_at, hold_until,
 * failing_since, attempts' at) are milliseconds. Lists are keyset-paged (store.h) by the
 * insertion sequence, newest first; a page key is "<seq>". */
#ifndef TG_STORE_NOTIFY_H
#define TG_STORE_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define TG_EVENT_TYPE_MAX 48
#define TG_EVENT_DATA_MAX (64 * 1024) /* the serialised data object */
#define TG_EVENT_DEDUPE_MAX 160
#define TG_WEBHOOK_URL_MAX 2048
#define TG_WEBHOOK_EVENTS_MAX 1024 /* "*" or a comma-separated list of types */
#define TG_WEBHOOK_SECRET_MAX 96   /* "whsec_" + base64 of up to 64 bytes */
#define TG_WEBHOOK_REASON_MAX 256
#define TG_WEBHOOK_ERROR_MAX 512
#define TG_WEBHOOK_RESPONSE_MAX 1025 /* the first 1 KiB of a response body, NUL-terminated */

/* ---- events ---- */

typedef struct tg_event_row {
    int64_t seq; /* insertion order, set by the store */
    char id[TG_ID_MAX];
    char type[TG_EVENT_TYPE_MAX];
    char customer_id[TG_ID_MAX]; /* "" for an owner-only event */
    int64_t created_at;          /* seconds */
    char *data;                  /* malloc'd JSON object text (tg_event_row_clear frees it) */
} tg_event_row_t;

void tg_event_row_clear(tg_event_row_t *e);

/* Inserts e (data: e->data, at most TG_EVENT_DATA_MAX bytes). dedupe_key (may be NULL): a
 * second insert with the same key is TG_EEXIST and writes nothing, without aborting the
 * caller's transaction (on PostgreSQL too). TG_EEXIST also for an id stored already; TG_EINVAL
 * for a field past its cap. */
int tg_store_event_insert(tg_store_t *st, const tg_event_row_t *e, const char *dedupe_key, tg_err_t *err);
/* One event by id (data malloc'd); TG_ENOTFOUND. */
int tg_store_event_get(tg_store_t *st, const char *id, tg_event_row_t *out, tg_err_t *err);
/* Events newest first; customer_id NULL = every event, else that customer's. The row handed to
 * cb is valid during the call only (its data too). cb returning non-zero stops the walk. */
typedef int (*tg_event_row_cb)(const tg_event_row_t *e, void *arg);
int tg_store_event_page(tg_store_t *st, const char *customer_id, const tg_page_t *page, tg_event_row_cb cb, void *arg,
                        tg_page_end_t *end, tg_err_t *err);

/* ---- webhook endpoints ---- */

typedef struct tg_webhook_endpoint {
    char id[TG_ID_MAX];          /* "we_..." */
    char customer_id[TG_ID_MAX]; /* "" = the owner's */
    char url[TG_WEBHOOK_URL_MAX];
    char events[TG_WEBHOOK_EVENTS_MAX];
    char secret[TG_WEBHOOK_SECRET_MAX];      /* "whsec_..." */
    char prev_secret[TG_WEBHOOK_SECRET_MAX]; /* "" unless a rotation is under way */
    int64_t prev_secret_until;               /* seconds: prev_secret signs until then */
    char source[16];                         /* "api", "portal", "config" */
    int enabled;
    char disabled_reason[TG_WEBHOOK_REASON_MAX];
    int64_t failing_since_ms; /* first failed attempt of the current run of failures; 0 healthy */
    int64_t consecutive_failures;
    int64_t hold_until_ms; /* circuit breaker: no attempt to it before then */
    int64_t created_at, updated_at;
} tg_webhook_endpoint_t;

/* TG_EEXIST for an id stored already; TG_EINVAL for a field past its cap. */
int tg_store_webhook_endpoint_insert(tg_store_t *st, const tg_webhook_endpoint_t *e, tg_err_t *err);
int tg_store_webhook_endpoint_get(tg_store_t *st, const char *id, tg_webhook_endpoint_t *out, tg_err_t *err);
/* Writes every field but id, customer_id, source and created_at; TG_ENOTFOUND. */
int tg_store_webhook_endpoint_update(tg_store_t *st, const tg_webhook_endpoint_t *e, tg_err_t *err);
/* Deletes the endpoint with its deliveries and their attempts; TG_ENOTFOUND. */
int tg_store_webhook_endpoint_delete(tg_store_t *st, const char *id, tg_err_t *err);
/* The endpoints of customer_id ("" = the owner's; NULL = everyone's), oldest first. */
typedef int (*tg_webhook_endpoint_cb)(const tg_webhook_endpoint_t *e, void *arg);
int tg_store_webhook_endpoint_list(tg_store_t *st, const char *customer_id, tg_webhook_endpoint_cb cb, void *arg,
                                   tg_err_t *err);

/* ---- deliveries (the outbox) and attempts ---- */

typedef struct tg_webhook_delivery {
    int64_t seq;
    char id[TG_ID_MAX]; /* "msg_...": the webhook-id of every attempt */
    char endpoint_id[TG_ID_MAX];
    char event_id[TG_ID_MAX];
    char event_type[TG_EVENT_TYPE_MAX];
    char customer_id[TG_ID_MAX]; /* the endpoint's owner ("" = the owner's endpoint) */
    char state[16];              /* pending | delivered | failed */
    int64_t attempts;
    int64_t next_attempt_at_ms;
    int64_t first_attempt_at_ms; /* 0 until attempted */
    int64_t last_status;         /* HTTP status of the last attempt, 0 for none */
    char last_error[TG_WEBHOOK_ERROR_MAX];
    int64_t created_at, updated_at, delivered_at; /* seconds */
} tg_webhook_delivery_t;

typedef struct tg_webhook_attempt {
    int64_t id;
    char delivery_id[TG_ID_MAX];
    char endpoint_id[TG_ID_MAX];
    int64_t at_ms;
    int64_t status; /* 0: no HTTP answer */
    int64_t duration_ms;
    char response[TG_WEBHOOK_RESPONSE_MAX];
    char error[TG_WEBHOOK_ERROR_MAX];
} tg_webhook_attempt_t;

/* Inserts a pending delivery (state and attempts from d). TG_EEXIST if the id, or the pair
 * (event, endpoint), is stored already. */
int tg_store_webhook_delivery_insert(tg_store_t *st, const tg_webhook_delivery_t *d, tg_err_t *err);
int tg_store_webhook_delivery_get(tg_store_t *st, const char *id, tg_webhook_delivery_t *out, tg_err_t *err);

/* Claims up to limit pending deliveries due at now_ms whose endpoint is enabled and not held
 * (hold_until <= now_ms), earliest first, into out in the order they were queued (seq); *n gets
 * how many. A claimed row's
 * next_attempt_at moves to now_ms + lease_ms in the same statement, so that another connection
 * (another gateway on PostgreSQL) does not take it while this one sends it, and a claimer that
 * dies before recording leaves it due again after the lease: at least once. */
int tg_store_webhook_delivery_claim(tg_store_t *st, int64_t now_ms, int64_t lease_ms, tg_webhook_delivery_t *out,
                                    size_t limit, size_t *n, tg_err_t *err);
/* When the next pending delivery of an enabled endpoint falls due (the later of its
 * next_attempt_at and its endpoint's hold) into *at_ms; TG_ENOTFOUND if none is pending. */
int tg_store_webhook_delivery_next_due(tg_store_t *st, int64_t *at_ms, tg_err_t *err);
/* Records an attempt: writes d's state, attempts, next_attempt_at, first_attempt_at,
 * last_status, last_error, updated_at and delivered_at, and appends a (NULL: no attempt, e.g. a
 * manual resend). Run it in a transaction when both must land together. TG_ENOTFOUND. */
int tg_store_webhook_delivery_update(tg_store_t *st, const tg_webhook_delivery_t *d, const tg_webhook_attempt_t *a,
                                     tg_err_t *err);
/* Deliveries newest first: of endpoint_id, or (endpoint_id NULL) of every endpoint of
 * customer_id ("" = the owner's). */
typedef int (*tg_webhook_delivery_cb)(const tg_webhook_delivery_t *d, void *arg);
int tg_store_webhook_delivery_page(tg_store_t *st, const char *endpoint_id, const char *customer_id,
                                   const tg_page_t *page, tg_webhook_delivery_cb cb, void *arg, tg_page_end_t *end,
                                   tg_err_t *err);
/* Up to limit attempts of a delivery, newest first. */
typedef int (*tg_webhook_attempt_cb)(const tg_webhook_attempt_t *a, void *arg);
int tg_store_webhook_attempt_list(tg_store_t *st, const char *delivery_id, size_t limit, tg_webhook_attempt_cb cb,
                                  void *arg, tg_err_t *err);

/* ---- notification settings ---- */

/* The customer's email_events ("*" = all, "" = none, or a comma-separated list of types) into
 * out; TG_ENOTFOUND when the customer never saved settings. put inserts or replaces. */
int tg_store_notification_settings_get(tg_store_t *st, const char *customer_id, char *email_events, size_t cap,
                                       tg_err_t *err);
int tg_store_notification_settings_put(tg_store_t *st, const char *customer_id, const char *email_events, int64_t now,
                                       tg_err_t *err);

#endif
