/* notify_metrics.c - see notify_metrics.h. */
#include "metrics/notify_metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify/events.h"

#define TYPES_MAX 32 /* slots for notify/events.h's types (test_notify_metrics checks they fit) */

/* Webhook response time, in milliseconds (an attempt lasts at most notifications.timeout_ms,
 * 60 s at most); the last slot is +Inf. */
static const int64_t bucket_ms[] = {10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 15000, 30000, 60000};
#define NBUCKETS (sizeof(bucket_ms) / sizeof(bucket_ms[0]))

static _Atomic uint64_t webhooks[TG_NOTIFY_RESULT_COUNT], emails[TG_NOTIFY_RESULT_COUNT];
static _Atomic uint64_t webhook_buckets[NBUCKETS + 1], webhook_sum_ms, webhook_count;
static _Atomic int64_t pending[TG_NOTIFY_QUEUE_COUNT];
static _Atomic uint64_t events[TYPES_MAX];

void tg_notify_metrics_webhook(tg_notify_result_t r, int sent, int64_t duration_ms)
{
    if ((unsigned)r < TG_NOTIFY_RESULT_COUNT)
        atomic_fetch_add_explicit(&webhooks[r], 1, memory_order_relaxed);
    if (!sent)
        return;
    if (duration_ms < 0)
        duration_ms = 0;
    size_t b = 0;
    while (b < NBUCKETS && duration_ms > bucket_ms[b])
        b++;
    atomic_fetch_add_explicit(&webhook_buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&webhook_sum_ms, (uint64_t)duration_ms, memory_order_relaxed);
    atomic_fetch_add_explicit(&webhook_count, 1, memory_order_relaxed);
}

void tg_notify_metrics_email(tg_notify_result_t r)
{
    if ((unsigned)r < TG_NOTIFY_RESULT_COUNT)
        atomic_fetch_add_explicit(&emails[r], 1, memory_order_relaxed);
}

void tg_notify_metrics_event(const char *type)
{
    if (type == NULL)
        return;
    for (size_t i = 0; i < TYPES_MAX && tg_event_types[i] != NULL; i++)
        if (strcmp(tg_event_types[i], type) == 0) {
            atomic_fetch_add_explicit(&events[i], 1, memory_order_relaxed);
            return;
        }
}

void tg_notify_metrics_set_pending(tg_notify_queue_t q, int64_t n)
{
    if ((unsigned)q < TG_NOTIFY_QUEUE_COUNT)
        atomic_store_explicit(&pending[q], n < 0 ? 0 : n, memory_order_relaxed);
}

/* ---- rendering ---- */

typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} out_t;

static void out(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(out_t *o, const char *fmt, ...)
{
    if (o->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = 1;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        if ((size_t)n > SIZE_MAX / 2 - o->cap) {
            o->failed = 1;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *nb = realloc(o->buf, cap);
        if (nb == NULL) {
            o->failed = 1;
            return;
        }
        o->buf = nb;
        o->cap = cap;
    }
}

static unsigned long long load(_Atomic uint64_t *v)
{
    return (unsigned long long)atomic_load_explicit(v, memory_order_relaxed);
}

char *tg_notify_metrics_append(char *body)
{
    if (body == NULL)
        return NULL;
    size_t len = strlen(body);
    out_t o = {body, len, len + 1, 0};
    static const char *const names[2][TG_NOTIFY_RESULT_COUNT] = {{"delivered", "failed", "retry"},
                                                                 {"sent", "failed", "retry"}};
    out(&o, "# HELP tollgate_webhook_deliveries_total Webhook delivery attempts recorded by this node, by result:"
            " delivered (a 2xx), retry (failed, tried again later), failed (failed for good).\n"
            "# TYPE tollgate_webhook_deliveries_total counter\n");
    for (int r = 0; r < TG_NOTIFY_RESULT_COUNT; r++)
        out(&o, "tollgate_webhook_deliveries_total{result=\"%s\"} %llu\n", names[0][r], load(&webhooks[r]));
    out(&o, "# HELP tollgate_webhook_delivery_seconds Time of a webhook attempt from its start to the answer (or"
            " the error, or the timeout).\n"
            "# TYPE tollgate_webhook_delivery_seconds histogram\n");
    unsigned long long cum = 0;
    for (size_t b = 0; b < NBUCKETS; b++) {
        cum += load(&webhook_buckets[b]);
        out(&o, "tollgate_webhook_delivery_seconds_bucket{le=\"%lld.%03lld\"} %llu\n", (long long)(bucket_ms[b] / 1000),
            (long long)(bucket_ms[b] % 1000), cum);
    }
    cum += load(&webhook_buckets[NBUCKETS]);
    unsigned long long sum = load(&webhook_sum_ms);
    out(&o,
        "tollgate_webhook_delivery_seconds_bucket{le=\"+Inf\"} %llu\n"
        "tollgate_webhook_delivery_seconds_sum %llu.%03llu\n"
        "tollgate_webhook_delivery_seconds_count %llu\n",
        cum, sum / 1000, sum % 1000, load(&webhook_count));
    out(&o,
        "# HELP tollgate_webhook_queue_pending Webhook deliveries pending (queued or waiting for a retry) in the"
        " database, as last counted by the delivery thread.\n"
        "# TYPE tollgate_webhook_queue_pending gauge\n"
        "tollgate_webhook_queue_pending %lld\n",
        (long long)atomic_load_explicit(&pending[TG_NOTIFY_QUEUE_WEBHOOKS], memory_order_relaxed));
    out(&o, "# HELP tollgate_emails_total Mail attempts recorded by this node, by result: sent, retry (a"
            " temporary failure such as a 4xx reply, tried again later), failed (for good).\n"
            "# TYPE tollgate_emails_total counter\n");
    for (int r = 0; r < TG_NOTIFY_RESULT_COUNT; r++)
        out(&o, "tollgate_emails_total{result=\"%s\"} %llu\n", names[1][r], load(&emails[r]));
    out(&o,
        "# HELP tollgate_email_queue_pending Mails pending (queued or waiting for a retry) in the database, as last"
        " counted by the mail sender.\n"
        "# TYPE tollgate_email_queue_pending gauge\n"
        "tollgate_email_queue_pending %lld\n",
        (long long)atomic_load_explicit(&pending[TG_NOTIFY_QUEUE_EMAILS], memory_order_relaxed));
    out(&o, "# HELP tollgate_events_total Notification events recorded by this node, by type.\n"
            "# TYPE tollgate_events_total counter\n");
    for (size_t i = 0; i < TYPES_MAX && tg_event_types[i] != NULL; i++)
        out(&o, "tollgate_events_total{type=\"%s\"} %llu\n", tg_event_types[i], load(&events[i]));
    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    return o.buf;
}
