/* webhooks.h - the rules of webhook endpoints: adding one (a new secret, shown once), changing,
 * deleting, rotating its secret (the previous one keeps signing for 24 hours), re-enabling, a
 * manual resend of a delivery, a test event; and the owner's endpoints from the configuration.
 *
 * Every call is scoped by owner: customer_id "" acts on the owner's endpoints, a customer id on
 * that customer's; an endpoint or delivery of someone else is TG_ENOTFOUND, as if it did not
 * exist. Errors: TG_EINVAL (a bad URL, an unknown event type: the message says which),
 * TG_ELIMIT (too many endpoints), TG_ENOTFOUND, store errors. Nothing here knows HTTP; runs on
 * the caller's thread with the caller's store connection. */
#ifndef TG_NOTIFY_WEBHOOKS_H
#define TG_NOTIFY_WEBHOOKS_H

#include <jansson.h>

#include "config/config.h"
#include "store/store_notify.h"
#include "util/err.h"

#define TG_WEBHOOKS_MAX_PER_CUSTOMER 10
#define TG_WEBHOOKS_MAX_OWNER 50
#define TG_WEBHOOK_ROTATION_S 86400 /* the previous secret signs this long after a rotation */

typedef struct tg_webhooks_ctx {
    const tg_config_t *cfg; /* notifications.allow_http */
    tg_store_t *store;
} tg_webhooks_ctx_t;

/* events: NULL, "*" or a JSON array of type names (or the string "*") -> the stored list into
 * out. TG_EINVAL naming an unknown type. Owner-only types are refused for customers. */
int tg_webhooks_events_from_json(json_t *events, int owner, char out[TG_WEBHOOK_EVENTS_MAX], tg_err_t *err);

/* Adds an endpoint (source "api" for the owner, "portal" for a customer); *out gets it, its
 * secret included (the only time it is shown). */
int tg_webhooks_create(const tg_webhooks_ctx_t *x, const char *customer_id, const char *url, json_t *events,
                       tg_webhook_endpoint_t *out, tg_err_t *err);
/* The endpoint id of customer_id into *out. */
int tg_webhooks_get(const tg_webhooks_ctx_t *x, const char *customer_id, const char *id, tg_webhook_endpoint_t *out,
                    tg_err_t *err);
/* Changes url and/or events (NULL: unchanged), enabled (-1: unchanged; 1 re-enables and clears
 * the failure record and breaker). Endpoints from the configuration change only there
 * (TG_ESTATE) except enabled. */
int tg_webhooks_update(const tg_webhooks_ctx_t *x, const char *customer_id, const char *id, const char *url,
                       json_t *events, int enabled, tg_webhook_endpoint_t *out, tg_err_t *err);
int tg_webhooks_delete(const tg_webhooks_ctx_t *x, const char *customer_id, const char *id, tg_err_t *err);
/* A new secret; the current one becomes the previous, valid TG_WEBHOOK_ROTATION_S more. */
int tg_webhooks_rotate(const tg_webhooks_ctx_t *x, const char *customer_id, const char *id, tg_webhook_endpoint_t *out,
                       tg_err_t *err);
/* The delivery id of one of customer_id's endpoints, due again now (its attempts so far kept,
 * its retry window restarted). */
int tg_webhooks_resend(const tg_webhooks_ctx_t *x, const char *customer_id, const char *delivery_id,
                       tg_webhook_delivery_t *out, tg_err_t *err);
/* Queues a webhook.test event to the endpoint alone; its id into event_id. */
int tg_webhooks_test(const tg_webhooks_ctx_t *x, const char *customer_id, const char *id, char event_id[TG_ID_MAX],
                     tg_err_t *err);
/* What tg_webhooks_sync_config changed in the store. */
typedef struct tg_webhooks_sync_counts {
    size_t added, changed, removed;
} tg_webhooks_sync_counts_t;

/* Makes the owner's "config" endpoints those of notifications.endpoints: adds the new ones,
 * updates events and secret of the kept ones (matched by URL; a new secret leaves the old one
 * signing for TG_WEBHOOK_ROTATION_S), deletes the ones gone; in one transaction, so the
 * delivery thread and the event fan-out (which read the store per event) see the old set or
 * the new one. Run at start and by every accepted reload (main.c), on the thread that owns
 * x->store. counts (may be NULL) gets what changed, on success. */
int tg_webhooks_sync_config(const tg_webhooks_ctx_t *x, tg_webhooks_sync_counts_t *counts, tg_err_t *err);

#endif
