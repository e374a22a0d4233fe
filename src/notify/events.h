/* events.h - the notification events: what happened (a key created, an invoice paid, a
 * threshold crossed), recorded durably and fanned out to the webhook endpoints that want it.
 *
 * tg_event_emit records an event in the caller's transaction (the change and its event commit
 * together, or neither does) and queues one webhook delivery per enabled endpoint subscribed to
 * the type: every owner endpoint (customer_id '') for every type, and the customer's own
 * endpoints for the customer's events except customer.created / customer.canceled (those are
 * the owner's). The delivery thread (delivery.h) sends them later, off every event loop.
 *
 * Threading: the caller's thread and store connection; nothing here blocks on the network. */
#ifndef TG_NOTIFY_EVENTS_H
#define TG_NOTIFY_EVENTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store_notify.h"
#include "util/err.h"

typedef struct tg_store tg_store_t;

#define TG_EVENT_USAGE_THRESHOLD_REACHED "usage.threshold_reached"
#define TG_EVENT_QUOTA_EXHAUSTED "quota.exhausted"
#define TG_EVENT_BUDGET_EXCEEDED "budget.exceeded"
#define TG_EVENT_TRIAL_WILL_END "trial.will_end"
#define TG_EVENT_INVOICE_FINALIZED "invoice.finalized"
#define TG_EVENT_INVOICE_PAID "invoice.paid"
#define TG_EVENT_INVOICE_PAYMENT_FAILED "invoice.payment_failed"
#define TG_EVENT_ACCOUNT_PAST_DUE "account.past_due"
#define TG_EVENT_ACCOUNT_SUSPENDED "account.suspended"
#define TG_EVENT_ACCOUNT_RESUMED "account.resumed"
#define TG_EVENT_KEY_CREATED "key.created"
#define TG_EVENT_KEY_ROTATED "key.rotated"
#define TG_EVENT_KEY_REVOKED "key.revoked"
#define TG_EVENT_PLAN_CHANGED "plan.changed"
#define TG_EVENT_CUSTOMER_CREATED "customer.created"
#define TG_EVENT_CUSTOMER_CANCELED "customer.canceled"
/* Sent only by a test-send (the admin API's and the portal's "send a test event"). */
#define TG_EVENT_WEBHOOK_TEST "webhook.test"
/* An endpoint was disabled after failing for days: told to the owner (and the customer). */
#define TG_EVENT_WEBHOOK_ENDPOINT_DISABLED "webhook_endpoint.disabled"

/* An event as stored (store_notify.h). */
typedef tg_event_row_t tg_event_t;

/* The known types, NULL-terminated, in the order above. */
extern const char *const tg_event_types[];

/* 1 if type is a known event type. */
int tg_event_type_known(const char *type);

/* 1 if a customer may choose to be told of type by email: every known type but the owner's
 * (customer.created, customer.canceled) and the webhooks' own (webhook.test,
 * webhook_endpoint.disabled). */
int tg_event_emailable(const char *type);

/* A customer's choice of events by email (notification_settings.email_events): all = 1 for every
 * customer-facing event (also those added later), else the n types listed (0 = none). TG_EINVAL
 * naming a type that is not a customer-facing event type. The store's errors. */
int tg_event_email_choice_put(tg_store_t *st, const char *customer_id, int all, const char *const *types, size_t n,
                              int64_t now, tg_err_t *err);
/* The customer's choice into *all and out (a comma-separated list, cap bytes): all = 1 when the
 * customer never chose. */
int tg_event_email_choice_get(tg_store_t *st, const char *customer_id, int *all, char *out, size_t cap, tg_err_t *err);
/* 1 if an endpoint of customer_id ("" = the owner's) may receive events of type: the owner's
 * every type; a customer's all but customer.created / customer.canceled. */
int tg_event_type_for_customer(const char *type, int owner_endpoint);
/* 1 if the endpoint's events list ("*" or "a,b,c") names type. */
int tg_event_list_has(const char *events, const char *type);

/* Records event `type` for customer_id (NULL/"" = an owner-only event) with `data` (a JSON
 * object, borrowed; serialised into the event's payload, at most TG_EVENT_DATA_MAX bytes) in the
 * caller's transaction (or a transaction of its own when none is open), and queues one delivery
 * per subscribed, enabled webhook endpoint (the customer's own, and the owner's for every
 * event). Returns 0, TG_EINVAL (unknown type, data not an object or too large), TG_ESTORE /
 * TG_EUNAVAIL. dedupe_key (may be NULL): when set, a second emit with the same key is TG_EEXIST
 * and writes nothing (exactly once across retries and restarts). The caller's transaction is
 * still usable after any error (the emit's writes are undone alone). */
int tg_event_emit(tg_store_t *st, const char *type, const char *customer_id, json_t *data, const char *dedupe_key,
                  tg_err_t *err);

/* The same, with the event's id written into id_out (may be NULL) and only to the endpoint
 * only_endpoint when that is not NULL (a test-send). */
int tg_event_emit_ex(tg_store_t *st, const char *type, const char *customer_id, json_t *data, const char *dedupe_key,
                     const char *only_endpoint, char id_out[TG_ID_MAX], tg_err_t *err);

/* Nudges the delivery thread after a commit (any thread; nothing if none runs). */
void tg_event_wake(void);
/* The delivery thread registers its wake-up here (NULL to unregister). */
void tg_event_set_wake(void (*wake)(void *arg), void *arg);

/* The payload sent for an event: {"id","type","created_at" (RFC 3339 UTC),"customer_id","data"}
 * as a malloc'd compact JSON text into *out (*len its length). TG_EINVAL if e->data is not JSON. */
int tg_event_payload(const tg_event_t *e, char **out, size_t *len, tg_err_t *err);

/* "<prefix>" + 24 random base62 characters into out (cap >= strlen(prefix) + 25). */
void tg_notify_random_id(const char *prefix, char *out, size_t cap);

#endif
