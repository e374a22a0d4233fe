/* events.c - recording events and fanning them out into webhook deliveries (events.h). */
#include "notify/events.h"

#include "metrics/notify_metrics.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "notify/mail_outbox.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"

const char *const tg_event_types[] = {
    TG_EVENT_USAGE_THRESHOLD_REACHED,
    TG_EVENT_QUOTA_EXHAUSTED,
    TG_EVENT_BUDGET_EXCEEDED,
    TG_EVENT_TRIAL_WILL_END,
    TG_EVENT_INVOICE_FINALIZED,
    TG_EVENT_INVOICE_PAID,
    TG_EVENT_INVOICE_PAYMENT_FAILED,
    TG_EVENT_ACCOUNT_PAST_DUE,
    TG_EVENT_ACCOUNT_SUSPENDED,
    TG_EVENT_ACCOUNT_RESUMED,
    TG_EVENT_KEY_CREATED,
    TG_EVENT_KEY_ROTATED,
    TG_EVENT_KEY_REVOKED,
    TG_EVENT_PLAN_CHANGED,
    TG_EVENT_CUSTOMER_CREATED,
    TG_EVENT_CUSTOMER_CANCELED,
    TG_EVENT_WEBHOOK_TEST,
    TG_EVENT_WEBHOOK_ENDPOINT_DISABLED,
    NULL,
};

int tg_event_type_known(const char *type)
{
    if (type == NULL)
        return 0;
    for (size_t i = 0; tg_event_types[i] != NULL; i++)
        if (strcmp(tg_event_types[i], type) == 0)
            return 1;
    return 0;
}

int tg_event_type_for_customer(const char *type, int owner_endpoint)
{
    if (owner_endpoint)
        return 1;
    return strcmp(type, TG_EVENT_CUSTOMER_CREATED) != 0 && strcmp(type, TG_EVENT_CUSTOMER_CANCELED) != 0;
}

int tg_event_list_has(const char *events, const char *type)
{
    if (events == NULL || type == NULL)
        return 0;
    size_t tl = strlen(type);
    const char *p = events;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        if ((n == 1 && p[0] == '*') || (n == tl && memcmp(p, type, n) == 0))
            return 1;
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

void tg_notify_random_id(const char *prefix, char *out, size_t cap)
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    char tail[25];
    for (size_t i = 0; i < 24; i++)
        tail[i] = alphabet[randombytes_uniform(62)];
    tail[24] = '\0';
    snprintf(out, cap, "%s%s", prefix, tail);
}

/* ---- the wake-up hook ---- */

static pthread_mutex_t wake_mu = PTHREAD_MUTEX_INITIALIZER;
static void (*wake_fn)(void *);
static void *wake_arg;

void tg_event_set_wake(void (*wake)(void *arg), void *arg)
{
    pthread_mutex_lock(&wake_mu);
    wake_fn = wake;
    wake_arg = arg;
    pthread_mutex_unlock(&wake_mu);
}

void tg_event_wake(void)
{
    pthread_mutex_lock(&wake_mu);
    if (wake_fn != NULL)
        wake_fn(wake_arg);
    pthread_mutex_unlock(&wake_mu);
}

/* ---- emit ---- */

typedef struct {
    tg_store_t *st;
    const tg_event_row_t *ev;
    const char *only_endpoint;
    int owner; /* listing the owner's endpoints */
    int64_t now_ms;
    int rc;
    tg_err_t *err;
} fanout_t;

static int on_endpoint(const tg_webhook_endpoint_t *e, void *arg)
{
    fanout_t *f = arg;
    if (f->only_endpoint != NULL) {
        if (strcmp(e->id, f->only_endpoint) != 0)
            return 0;
    } else if (!e->enabled || !tg_event_list_has(e->events, f->ev->type) ||
               !tg_event_type_for_customer(f->ev->type, f->owner))
        return 0;
    tg_webhook_delivery_t d;
    memset(&d, 0, sizeof(d));
    tg_notify_random_id("msg_", d.id, sizeof(d.id));
    snprintf(d.endpoint_id, sizeof(d.endpoint_id), "%s", e->id);
    snprintf(d.event_id, sizeof(d.event_id), "%s", f->ev->id);
    snprintf(d.event_type, sizeof(d.event_type), "%s", f->ev->type);
    snprintf(d.customer_id, sizeof(d.customer_id), "%s", e->customer_id);
    snprintf(d.state, sizeof(d.state), "pending");
    d.next_attempt_at_ms = f->now_ms;
    d.created_at = d.updated_at = f->now_ms / 1000;
    f->rc = tg_store_webhook_delivery_insert(f->st, &d, f->err);
    return f->rc != 0;
}

int tg_event_emit_ex(tg_store_t *st, const char *type, const char *customer_id, json_t *data, const char *dedupe_key,
                     const char *only_endpoint, char id_out[TG_ID_MAX], tg_err_t *err)
{
    if (!tg_event_type_known(type))
        return tg_errf(err, TG_EINVAL, "unknown event type %.60s", type != NULL ? type : "(null)");
    if (customer_id == NULL)
        customer_id = "";
    if (strnlen(customer_id, TG_ID_MAX) >= TG_ID_MAX)
        return tg_errf(err, TG_EINVAL, "the customer id is too long");
    if (data != NULL && !json_is_object(data))
        return tg_errf(err, TG_EINVAL, "an event's data is a JSON object");
    tg_event_row_t ev;
    memset(&ev, 0, sizeof(ev));
    tg_notify_random_id("evt_", ev.id, sizeof(ev.id));
    snprintf(ev.type, sizeof(ev.type), "%s", type);
    snprintf(ev.customer_id, sizeof(ev.customer_id), "%s", customer_id);
    int64_t now_ms = tg_clock_now_ns() / 1000000;
    ev.created_at = now_ms / 1000;
    ev.data = data != NULL ? json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS) : strdup("{}");
    if (ev.data == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory serialising an event");
    if (strlen(ev.data) > TG_EVENT_DATA_MAX) {
        free(ev.data);
        return tg_errf(err, TG_EINVAL, "an event's data is larger than %d bytes", TG_EVENT_DATA_MAX);
    }
    /* a savepoint: inside the caller's transaction the emit's writes can be undone alone; outside
     * one, the event and its deliveries are a transaction of their own */
    int rc = tg_store_savepoint(st, "tg_event_emit", err);
    if (rc == 0) {
        rc = tg_store_event_insert(st, &ev, dedupe_key, err);
        fanout_t f = {st, &ev, only_endpoint, 1, now_ms, 0, err};
        if (rc == 0)
            rc = tg_store_webhook_endpoint_list(st, "", on_endpoint, &f, err);
        if (rc == 0)
            rc = f.rc;
        if (rc == 0 && customer_id[0] != '\0') {
            f.owner = 0;
            rc = tg_store_webhook_endpoint_list(st, customer_id, on_endpoint, &f, err);
            if (rc == 0)
                rc = f.rc;
        }
        /* The customer's email for it (when email is configured and they want this type). Only
         * the database's refusal undoes the event: an address the mail code cannot take must not
         * undo the change (a key, a plan) the event tells of; the mail log would be the wrong
         * place to learn of it, so it is said here. */
        if (rc == 0 && customer_id[0] != '\0' && only_endpoint == NULL) {
            tg_err_t merr = {0};
            int mrc = tg_mail_enqueue_event(st, type, customer_id, data, &merr);
            if (mrc == TG_ESTORE || mrc == TG_EUNAVAIL || mrc == TG_ENOMEM) {
                *err = merr;
                rc = mrc;
            } else if (mrc != 0)
                tg_log(TG_LOG_WARN, "event %s for %s: no email: %s", ev.id, customer_id, merr.msg);
        }
        if (rc == 0)
            rc = tg_store_savepoint_release(st, "tg_event_emit", err);
        else
            tg_store_savepoint_rollback(st, "tg_event_emit");
        if (rc == 0)
            tg_notify_metrics_event(type); /* a caller's transaction rolled back later still counts */
    }
    if (rc == 0 && id_out != NULL)
        snprintf(id_out, TG_ID_MAX, "%s", ev.id);
    free(ev.data);
    return rc;
}

int tg_event_emit(tg_store_t *st, const char *type, const char *customer_id, json_t *data, const char *dedupe_key,
                  tg_err_t *err)
{
    return tg_event_emit_ex(st, type, customer_id, data, dedupe_key, NULL, NULL, err);
}

int tg_event_payload(const tg_event_t *e, char **out, size_t *len, tg_err_t *err)
{
    *out = NULL;
    *len = 0;
    json_error_t jerr;
    json_t *data = json_loads(e->data != NULL ? e->data : "{}", 0, &jerr);
    if (data == NULL)
        return tg_errf(err, TG_EINVAL, "the stored data of event %s is not JSON: %s", e->id, jerr.text);
    char when[32];
    time_t t = (time_t)e->created_at;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s?, s:o}", "id", e->id, "type", e->type, "created_at", when, "customer_id",
                          e->customer_id[0] != '\0' ? e->customer_id : NULL, "data", data);
    if (o == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory building an event's payload");
    *out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (*out == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory building an event's payload");
    *len = strlen(*out);
    return 0;
}

/* ---- the customer's choice of events by email ---- */

int tg_event_emailable(const char *type)
{
    return tg_event_type_known(type) && strcmp(type, TG_EVENT_CUSTOMER_CREATED) != 0 &&
           strcmp(type, TG_EVENT_CUSTOMER_CANCELED) != 0 && strcmp(type, TG_EVENT_WEBHOOK_TEST) != 0 &&
           strcmp(type, TG_EVENT_WEBHOOK_ENDPOINT_DISABLED) != 0;
}

int tg_event_email_choice_put(tg_store_t *st, const char *customer_id, int all, const char *const *types, size_t n,
                              int64_t now, tg_err_t *err)
{
    char joined[2048] = "";
    size_t used = 0;
    if (all)
        snprintf(joined, sizeof(joined), "*");
    for (size_t i = 0; !all && i < n; i++) {
        if (types[i] == NULL || !tg_event_emailable(types[i]))
            return tg_errf(err, TG_EINVAL, "email_events[%zu]: %.60s is not an event a customer is emailed about", i,
                           types[i] != NULL ? types[i] : "(not a string)");
        int w = snprintf(joined + used, sizeof(joined) - used, "%s%s", used > 0 ? "," : "", types[i]);
        if (w < 0 || (size_t)w >= sizeof(joined) - used)
            return tg_errf(err, TG_EINVAL, "email_events: too many types");
        used += (size_t)w;
    }
    return tg_store_notification_settings_put(st, customer_id, joined, now, err);
}

int tg_event_email_choice_get(tg_store_t *st, const char *customer_id, int *all, char *out, size_t cap, tg_err_t *err)
{
    int rc = tg_store_notification_settings_get(st, customer_id, out, cap, err);
    if (rc == TG_ENOTFOUND) {
        snprintf(out, cap, "*");
        rc = 0;
    }
    *all = rc == 0 && strcmp(out, "*") == 0;
    return rc;
}
