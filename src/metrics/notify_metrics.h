/* notify_metrics.h - the notifications' figures on /metrics: webhook deliveries and mails by
 * result, the response time of webhook attempts, the size of both queues, and the events
 * recorded by type.
 *
 * Counters are per node (this process's attempts and events), relaxed atomics like metrics.h's:
 * each is exact, a scrape is not a snapshot across them. The queue gauges are the database's
 * counts (shared by every node on one PostgreSQL), refreshed by the sender threads about once
 * a second (tg_notify_metrics_set_pending), so that a scrape, answered on the admin event loop,
 * never waits for the database. Every function: any thread. */
#ifndef TG_NOTIFY_METRICS_H
#define TG_NOTIFY_METRICS_H

#include <stdint.h>

typedef enum tg_notify_result {
    TG_NOTIFY_DONE = 0, /* a webhook delivered (2xx), a mail sent */
    TG_NOTIFY_FAILED,   /* failed for good: no more attempts */
    TG_NOTIFY_RETRY,    /* an attempt failed; another follows */
    TG_NOTIFY_RESULT_COUNT
} tg_notify_result_t;

typedef enum tg_notify_queue {
    TG_NOTIFY_QUEUE_WEBHOOKS = 0,
    TG_NOTIFY_QUEUE_EMAILS,
    TG_NOTIFY_QUEUE_COUNT
} tg_notify_queue_t;

/* One recorded webhook attempt (tollgate_webhook_deliveries_total{result}) and, when the request
 * was sent (sent != 0), its time to the answer or the error (tollgate_webhook_delivery_seconds). */
void tg_notify_metrics_webhook(tg_notify_result_t r, int sent, int64_t duration_ms);
/* One recorded mail attempt (tollgate_emails_total{result}). */
void tg_notify_metrics_email(tg_notify_result_t r);
/* An event recorded (tollgate_events_total{type}); types outside notify/events.h's list are
 * not counted (the label set stays bounded). */
void tg_notify_metrics_event(const char *type);
/* The pending rows of a queue, as last counted (tollgate_webhook_queue_pending,
 * tollgate_email_queue_pending). */
void tg_notify_metrics_set_pending(tg_notify_queue_t q, int64_t n);

/* Appends the figures above to body (a malloc'd /metrics text; realloc'd). On ENOMEM frees body
 * and returns NULL; NULL in, NULL out. */
char *tg_notify_metrics_append(char *body);

#endif
