/* test_notify_metrics.c - the notifications' figures (metrics/notify_metrics.h): counts by
 * result and type, the histogram's cumulative buckets, the gauges, a bounded label set, and
 * exact counts from several threads at once (also built under ThreadSanitizer). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/notify_metrics.h"
#include "notify/events.h"

/* The value of the sample `name` (as printed, labels included) in text; -1 if absent. */
static long long sample(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; (p = strstr(p, name)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtoll(p + n + 1, NULL, 10);
    return -1;
}

static char *render(void)
{
    char *body = strdup("tollgate_decisions_total{outcome=\"allowed\"} 0\n");
    assert_non_null(body);
    body = tg_notify_metrics_append(body);
    assert_non_null(body);
    return body;
}

static void counts_and_render(void **state)
{
    (void)state;
    char *b0 = render();
    /* the line before is kept */
    assert_int_equal(strncmp(b0, "tollgate_decisions_total{outcome=\"allowed\"} 0\n", 46), 0);
    long long delivered = sample(b0, "tollgate_webhook_deliveries_total{result=\"delivered\"}");
    long long retry = sample(b0, "tollgate_webhook_deliveries_total{result=\"retry\"}");
    assert_true(delivered >= 0 && retry >= 0);

    tg_notify_metrics_webhook(TG_NOTIFY_RETRY, 1, 5);     /* bucket 0.010 */
    tg_notify_metrics_webhook(TG_NOTIFY_RETRY, 1, 15000); /* 15.000 */
    tg_notify_metrics_webhook(TG_NOTIFY_RETRY, 1, 90000); /* +Inf only */
    tg_notify_metrics_webhook(TG_NOTIFY_DONE, 1, 120);    /* 0.250 */
    tg_notify_metrics_webhook(TG_NOTIFY_FAILED, 0, 0);    /* not sent: no time */
    tg_notify_metrics_email(TG_NOTIFY_RETRY);
    tg_notify_metrics_email(TG_NOTIFY_DONE);
    tg_notify_metrics_event("key.created");
    tg_notify_metrics_event("key.created");
    tg_notify_metrics_event("no.such.type"); /* not a label */
    tg_notify_metrics_event(NULL);
    tg_notify_metrics_set_pending(TG_NOTIFY_QUEUE_WEBHOOKS, 7);
    tg_notify_metrics_set_pending(TG_NOTIFY_QUEUE_EMAILS, -3); /* never below 0 */

    char *b = render();
    assert_int_equal(sample(b, "tollgate_webhook_deliveries_total{result=\"delivered\"}"), delivered + 1);
    assert_int_equal(sample(b, "tollgate_webhook_deliveries_total{result=\"retry\"}"), retry + 3);
    assert_int_equal(sample(b, "tollgate_webhook_deliveries_total{result=\"failed\"}"),
                     sample(b0, "tollgate_webhook_deliveries_total{result=\"failed\"}") + 1);
    assert_int_equal(sample(b, "tollgate_webhook_delivery_seconds_count"),
                     sample(b0, "tollgate_webhook_delivery_seconds_count") + 4);
    assert_int_equal(sample(b, "tollgate_webhook_delivery_seconds_bucket{le=\"0.010\"}"),
                     sample(b0, "tollgate_webhook_delivery_seconds_bucket{le=\"0.010\"}") + 1);
    assert_int_equal(sample(b, "tollgate_webhook_delivery_seconds_bucket{le=\"0.250\"}"),
                     sample(b0, "tollgate_webhook_delivery_seconds_bucket{le=\"0.250\"}") + 2);
    assert_int_equal(sample(b, "tollgate_webhook_delivery_seconds_bucket{le=\"15.000\"}"),
                     sample(b0, "tollgate_webhook_delivery_seconds_bucket{le=\"15.000\"}") + 3);
    assert_int_equal(sample(b, "tollgate_webhook_delivery_seconds_bucket{le=\"60.000\"}"),
                     sample(b0, "tollgate_webhook_delivery_seconds_bucket{le=\"60.000\"}") + 3);
    assert_int_equal(sample(b, "tollgate_webhook_delivery_seconds_bucket{le=\"+Inf\"}"),
                     sample(b0, "tollgate_webhook_delivery_seconds_bucket{le=\"+Inf\"}") + 4);
    assert_non_null(strstr(b, "\ntollgate_webhook_delivery_seconds_sum "));
    assert_int_equal(sample(b, "tollgate_webhook_queue_pending"), 7);
    assert_int_equal(sample(b, "tollgate_email_queue_pending"), 0);
    assert_int_equal(sample(b, "tollgate_emails_total{result=\"retry\"}"),
                     sample(b0, "tollgate_emails_total{result=\"retry\"}") + 1);
    assert_int_equal(sample(b, "tollgate_emails_total{result=\"sent\"}"),
                     sample(b0, "tollgate_emails_total{result=\"sent\"}") + 1);
    assert_int_equal(sample(b, "tollgate_events_total{type=\"key.created\"}"),
                     sample(b0, "tollgate_events_total{type=\"key.created\"}") + 2);
    assert_null(strstr(b, "no.such.type"));
    /* one line per known type, and no other */
    size_t types = 0, lines = 0;
    for (; tg_event_types[types] != NULL; types++)
        assert_true(strstr(b, tg_event_types[types]) != NULL);
    assert_true(types <= 32);
    for (const char *p = b; (p = strstr(p, "\ntollgate_events_total{")) != NULL; p++)
        lines++;
    assert_int_equal(lines, types);
    free(b0);
    free(b);
    assert_null(tg_notify_metrics_append(NULL));
}

#define THREADS 4
#define PER_THREAD 20000

static void *hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        tg_notify_metrics_webhook(TG_NOTIFY_DONE, 1, i % 100);
        tg_notify_metrics_email(TG_NOTIFY_FAILED);
        tg_notify_metrics_event("invoice.paid");
        tg_notify_metrics_set_pending(TG_NOTIFY_QUEUE_EMAILS, i);
    }
    return NULL;
}

static void exact_across_threads(void **state)
{
    (void)state;
    char *b0 = render();
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, NULL), 0);
    for (int i = 0; i < 50; i++) /* scrapes while they count */
        free(render());
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    char *b = render();
    long long want = (long long)THREADS * PER_THREAD;
    assert_int_equal(sample(b, "tollgate_webhook_deliveries_total{result=\"delivered\"}") -
                         sample(b0, "tollgate_webhook_deliveries_total{result=\"delivered\"}"),
                     want);
    assert_int_equal(sample(b, "tollgate_webhook_delivery_seconds_count") -
                         sample(b0, "tollgate_webhook_delivery_seconds_count"),
                     want);
    assert_int_equal(sample(b, "tollgate_emails_total{result=\"failed\"}") -
                         sample(b0, "tollgate_emails_total{result=\"failed\"}"),
                     want);
    assert_int_equal(sample(b, "tollgate_events_total{type=\"invoice.paid\"}") -
                         sample(b0, "tollgate_events_total{type=\"invoice.paid\"}"),
                     want);
    assert_int_equal(sample(b, "tollgate_email_queue_pending"), PER_THREAD - 1);
    free(b0);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counts_and_render),
        cmocka_unit_test(exact_across_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
