/* delivery.c - the webhook delivery thread (delivery.h). */
#include "notify/delivery.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics/notify_metrics.h"
#include "notify/events.h"
#include "notify/webhook_sign.h"
#include "notify/webhook_url.h"
#include "store/store.h"
#include "store/store_notify.h"
#include "store/store_retention.h"
#include "util/backoff.h"
#include "util/clock.h"
#include "util/thread_prio.h"

#define CLAIM_BATCH 16
#define LEASE_SLACK_MS 5000         /* a claim lasts the attempt's timeout and this (recording an attempt is quick) */
#define POLL_MS 500                 /* deliveries queued by another node (or without a wake) */
#define BODY_READ_MAX (1024 * 1024) /* a response body is read this far, then the attempt ends */
#define PENDING_COUNT_MS 1000     /* the queue gauge is counted again at most this often */

struct tg_delivery {
    const tg_config_t *cfg;
    tg_store_t *st;
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int wake, stopping;
    atomic_int cancel;
};

static int64_t wall_ms(void)
{
    return tg_clock_now_ns() / 1000000;
}

/* ---- one HTTP attempt ---- */

typedef struct {
    char *buf;
    size_t cap, len, total;
} body_t;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    body_t *b = arg;
    size_t got = size * n;
    if (b->len + 1 < b->cap) {
        size_t take = b->cap - 1 - b->len;
        if (take > got)
            take = got;
        memcpy(b->buf + b->len, p, take);
        b->len += take;
        b->buf[b->len] = '\0';
    }
    b->total += got;
    return b->total > BODY_READ_MAX ? 0 : got; /* enough: a receiver's body is not ours to store */
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt;
    (void)dn;
    (void)ut;
    (void)un;
    return atomic_load((atomic_int *)arg) ? 1 : 0;
}

/* Resolves target's host and picks the first address a delivery may reach into addr; the
 * refusal's reason into out otherwise. */
static int pick_address(const tg_delivery_t *d, const tg_webhook_target_t *t, char addr[INET6_ADDRSTRLEN],
                        tg_delivery_result_t *out)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char port[8];
    snprintf(port, sizeof(port), "%d", t->port);
    int gai = getaddrinfo(t->host, port, &hints, &res);
    if (gai != 0) {
        snprintf(out->error, sizeof(out->error), "cannot resolve %.200s: %s", t->host, gai_strerror(gai));
        return -1;
    }
    char refused[INET6_ADDRSTRLEN] = "";
    int found = 0;
    for (struct addrinfo *ai = res; ai != NULL && !found; ai = ai->ai_next) {
        char text[INET6_ADDRSTRLEN] = "";
        const void *a = ai->ai_family == AF_INET    ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                        : ai->ai_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                                                    : NULL;
        if (a == NULL || inet_ntop(ai->ai_family, a, text, sizeof(text)) == NULL)
            continue;
        if (tg_webhook_addr_allowed(text, d->cfg->notifications.allow_private_networks,
                                    d->cfg->notifications.nallow_private_networks)) {
            snprintf(addr, INET6_ADDRSTRLEN, "%s", text);
            found = 1;
        } else if (refused[0] == '\0')
            snprintf(refused, sizeof(refused), "%s", text);
    }
    freeaddrinfo(res);
    if (!found)
        snprintf(out->error, sizeof(out->error),
                 "refused: %.200s resolves to %s, a private, loopback, link-local or reserved address"
                 " (notifications.allow_private_networks opens one)",
                 t->host, refused[0] != '\0' ? refused : "no usable address");
    return found ? 0 : -1;
}

/* POSTs body to url with the Standard Webhooks headers; fills out. */
static void send_once(tg_delivery_t *d, const char *url, const char *msg_id, int64_t ts, const char *signatures,
                      const char *body, size_t body_len, tg_delivery_result_t *out)
{
    memset(out, 0, sizeof(*out));
    tg_webhook_target_t t;
    tg_err_t err = {0};
    if (tg_webhook_url_check(url, d->cfg->notifications.allow_http, &t, &err) != 0) {
        snprintf(out->error, sizeof(out->error), "refused: %.400s", err.msg);
        return;
    }
    char addr[INET6_ADDRSTRLEN];
    if (pick_address(d, &t, addr, out) != 0)
        return;
    /* the connection goes to the address checked above and nowhere else */
    char pin[TG_WEBHOOK_HOST_MAX + INET6_ADDRSTRLEN + 16];
    int v6 = strchr(addr, ':') != NULL;
    snprintf(pin, sizeof(pin), "%s:%d:%s%s%s", t.host, t.port, v6 ? "[" : "", addr, v6 ? "]" : "");
    CURL *c = curl_easy_init();
    if (c == NULL) {
        snprintf(out->error, sizeof(out->error), "out of memory");
        return;
    }
    struct curl_slist *resolve = curl_slist_append(NULL, pin);
    struct curl_slist *h = NULL;
    char line[1024];
    h = curl_slist_append(h, "Content-Type: application/json");
    snprintf(line, sizeof(line), "webhook-id: %s", msg_id);
    h = curl_slist_append(h, line);
    snprintf(line, sizeof(line), "webhook-timestamp: %lld", (long long)ts);
    h = curl_slist_append(h, line);
    snprintf(line, sizeof(line), "webhook-signature: %s", signatures);
    h = curl_slist_append(h, line);
    h = curl_slist_append(h, "User-Agent: tollgate-webhooks/1");
    h = curl_slist_append(h, "Expect:");
    body_t b = {out->response, sizeof(out->response), 0, 0};
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, d->cfg->notifications.allow_http ? "http,https" : "https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never a proxy from the environment */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)d->cfg->notifications.timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)d->cfg->notifications.timeout_ms);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &d->cancel);
    int64_t t0 = tg_clock_mono_ns();
    CURLcode cc = curl_easy_perform(c);
    out->duration_ms = (tg_clock_mono_ns() - t0) / 1000000;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    if (cc != CURLE_OK && !(cc == CURLE_WRITE_ERROR && out->status != 0))
        snprintf(out->error, sizeof(out->error), "%s", errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc));
    else if (out->status < 200 || out->status > 299)
        snprintf(out->error, sizeof(out->error), "HTTP %ld", out->status);
    curl_slist_free_all(h);
    curl_slist_free_all(resolve);
    curl_easy_cleanup(c);
}

/* ---- recording ---- */

/* A failed attempt's effect on its endpoint: the breaker, and disabling after days. */
static void endpoint_failed(tg_delivery_t *d, tg_webhook_endpoint_t *e, const char *why, int64_t now)
{
    const tg_config_t *cfg = d->cfg;
    e->consecutive_failures++;
    if (e->failing_since_ms == 0)
        e->failing_since_ms = now;
    if (e->consecutive_failures >= cfg->notifications.breaker_failures)
        e->hold_until_ms = now + cfg->notifications.breaker_cooldown_ms;
    e->updated_at = now / 1000;
    int disable = now - e->failing_since_ms >= (int64_t)cfg->notifications.disable_after_s * 1000;
    tg_err_t err = {0};
    if (disable) {
        e->enabled = 0;
        char since[32];
        time_t t = (time_t)(e->failing_since_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
        snprintf(e->disabled_reason, sizeof(e->disabled_reason), "failing since %s (%lld attempts in a row): %.150s",
                 since, (long long)e->consecutive_failures, why);
    }
    if (tg_store_webhook_endpoint_update(d->st, e, &err) != 0 || !disable)
        return;
    json_t *data = json_pack("{s:s,s:s,s:s}", "endpoint_id", e->id, "url", e->url, "reason", e->disabled_reason);
    char key[TG_EVENT_DEDUPE_MAX];
    snprintf(key, sizeof(key), "webhook_endpoint.disabled:%s:%lld", e->id, (long long)e->failing_since_ms);
    (void)tg_event_emit(d->st, TG_EVENT_WEBHOOK_ENDPOINT_DISABLED, e->customer_id, data, key, &err);
    json_decref(data);
}

static void endpoint_ok(tg_delivery_t *d, tg_webhook_endpoint_t *e, int64_t now)
{
    if (e->consecutive_failures == 0 && e->failing_since_ms == 0 && e->hold_until_ms == 0)
        return;
    e->consecutive_failures = 0;
    e->failing_since_ms = 0;
    e->hold_until_ms = 0;
    e->updated_at = now / 1000;
    tg_err_t err = {0};
    (void)tg_store_webhook_endpoint_update(d->st, e, &err);
}

/* The signatures header: v1 under the secret, and under the previous one while it is valid. */
static int sign_all(const tg_webhook_endpoint_t *e, const char *msg_id, int64_t ts, int64_t now_s, const char *body,
                    size_t len, char *out, size_t cap, tg_err_t *err)
{
    char sig[TG_WEBHOOK_SIGNATURE_MAX];
    int rc = tg_webhook_sign(e->secret, msg_id, ts, body, len, sig, err);
    if (rc != 0)
        return rc;
    snprintf(out, cap, "%s", sig);
    if (e->prev_secret[0] != '\0' && e->prev_secret_until > now_s &&
        tg_webhook_sign(e->prev_secret, msg_id, ts, body, len, sig, err) == 0) {
        size_t used = strlen(out);
        snprintf(out + used, cap - used, " %s", sig);
    }
    return 0;
}

static void deliver(tg_delivery_t *d, tg_webhook_delivery_t *row)
{
    tg_err_t err = {0};
    tg_webhook_endpoint_t *e = malloc(sizeof(*e));
    if (e == NULL)
        return;
    int64_t now = wall_ms();
    if (tg_store_webhook_endpoint_get(d->st, row->endpoint_id, e, &err) != 0 || !e->enabled) {
        free(e); /* deleted or disabled meanwhile: the row waits (enabled again, it is due) */
        return;
    }
    if (e->hold_until_ms > now) { /* the breaker opened for an earlier row of this batch */
        row->next_attempt_at_ms = e->hold_until_ms;
        row->updated_at = now / 1000;
        (void)tg_store_webhook_delivery_update(d->st, row, NULL, &err);
        free(e);
        return;
    }
    tg_event_t ev;
    char *payload = NULL;
    size_t len = 0;
    tg_delivery_result_t res;
    memset(&res, 0, sizeof(res));
    int rc = tg_store_event_get(d->st, row->event_id, &ev, &err);
    if (rc == 0) {
        rc = tg_event_payload(&ev, &payload, &len, &err);
        tg_event_row_clear(&ev);
    }
    char sigs[2 * TG_WEBHOOK_SIGNATURE_MAX + 2];
    /* the receiver compares webhook-timestamp with its own clock: the real time, not the test
     * clock (serve --test-clock) that moves billing */
    struct timespec real;
    clock_gettime(CLOCK_REALTIME, &real);
    int64_t ts = (int64_t)real.tv_sec;
    if (rc == 0)
        rc = sign_all(e, row->id, ts, now / 1000, payload, len, sigs, sizeof(sigs), &err);
    if (rc == TG_ESTORE || rc == TG_EUNAVAIL || rc == TG_ENOMEM) {
        free(payload); /* the store will answer later: the lease makes the row due again */
        free(e);
        return;
    }
    int sent = rc == 0;
    if (rc != 0)
        snprintf(res.error, sizeof(res.error), "cannot build the request: %.400s", err.msg);
    else
        send_once(d, e->url, row->id, ts, sigs, payload, len, &res);
    free(payload);
    now = wall_ms();

    tg_webhook_attempt_t a;
    memset(&a, 0, sizeof(a));
    a.at_ms = now;
    a.status = res.status;
    a.duration_ms = res.duration_ms;
    snprintf(a.response, sizeof(a.response), "%s", res.response);
    snprintf(a.error, sizeof(a.error), "%s", res.error);
    if (row->first_attempt_at_ms == 0)
        row->first_attempt_at_ms = now;
    row->attempts++;
    row->last_status = res.status;
    snprintf(row->last_error, sizeof(row->last_error), "%s", res.error);
    row->updated_at = now / 1000;
    int ok = res.error[0] == '\0';
    tg_notify_result_t result = TG_NOTIFY_RETRY;
    if (ok) {
        snprintf(row->state, sizeof(row->state), "delivered");
        row->delivered_at = now / 1000;
        result = TG_NOTIFY_DONE;
    } else if (now - row->first_attempt_at_ms >= (int64_t)d->cfg->notifications.retry_window_s * 1000) {
        snprintf(row->state, sizeof(row->state), "failed");
        result = TG_NOTIFY_FAILED;
    } else {
        int attempts = row->attempts > 1000 ? 1000 : (int)row->attempts;
        row->next_attempt_at_ms = now + tg_backoff_ms(attempts, d->cfg->notifications.retry_base_ms,
                                                      d->cfg->notifications.retry_cap_ms, randombytes_random());
    }
    /* the attempt, its row and its endpoint's health land together */
    if (tg_store_tx_begin(d->st, &err) == 0) {
        rc = tg_store_webhook_delivery_update(d->st, row, &a, &err);
        if (rc == 0) {
            if (ok)
                endpoint_ok(d, e, now);
            else
                endpoint_failed(d, e, res.error, now);
        }
        if (rc == 0)
            rc = tg_store_tx_commit(d->st, &err);
        else
            tg_store_tx_rollback(d->st);
        /* counted once recorded: an attempt whose record failed is made again after its lease,
         * and counted then */
        if (rc == 0)
            tg_notify_metrics_webhook(result, sent, res.duration_ms);
    }
    free(e);
}

/* ---- the thread ---- */

/* The queue gauge (metrics/notify_metrics.h): counted again when a second has passed since
 * last_ms (monotonic ms); returns the time of the count in effect. A failed count keeps the last
 * value (tried again next time). */
static int64_t count_pending(tg_store_t *st, tg_notify_queue_t q, int64_t last_ms)
{
    int64_t now = tg_clock_mono_ns() / 1000000;
    if (last_ms != 0 && now - last_ms < PENDING_COUNT_MS)
        return last_ms;
    int64_t n = 0;
    tg_err_t err = {0};
    tg_notify_table_t t = q == TG_NOTIFY_QUEUE_WEBHOOKS ? TG_NOTIFY_DELIVERIES : TG_NOTIFY_MAILS;
    if (tg_store_notify_pending(st, t, &n, &err) == 0)
        tg_notify_metrics_set_pending(q, n);
    return now;
}

static int stopping(tg_delivery_t *d)
{
    pthread_mutex_lock(&d->mu);
    int s = d->stopping;
    pthread_mutex_unlock(&d->mu);
    return s;
}

static void wait_until(tg_delivery_t *d, int64_t ms)
{
    int64_t wait_ms = ms - wall_ms();
    if (wait_ms > POLL_MS)
        wait_ms = POLL_MS;
    pthread_mutex_lock(&d->mu);
    if (wait_ms > 0 && !d->stopping && !d->wake) {
        struct timespec ts = tg_clock_deadline(CLOCK_MONOTONIC, wait_ms); /* the cv's clock */
        while (!d->stopping && !d->wake && pthread_cond_timedwait(&d->cv, &d->mu, &ts) != ETIMEDOUT) {
        }
    }
    d->wake = 0;
    pthread_mutex_unlock(&d->mu);
}

static void *delivery_main(void *arg)
{
    tg_delivery_t *d = arg;
    pthread_setname_np(pthread_self(), "tg-webhooks");
    /* No answer waits for a delivery, so below the request path; but not at the notifier's 19:
     * an owner's endpoint waits for the event, the thread is mostly blocked on the network (its
     * CPU is signing and TLS handshakes), and at 19 a saturated node would starve it long enough
     * for handshakes to outlast notifications.timeout_ms and turn into retries. */
    tg_thread_lower_priority_or_warn(TG_NICE_BACKGROUND, "the webhook deliveries (tg-webhooks)");
    tg_webhook_delivery_t *rows = calloc(CLAIM_BATCH, sizeof(*rows));
    if (rows == NULL)
        return NULL;
    int64_t lease = (int64_t)d->cfg->notifications.timeout_ms + LEASE_SLACK_MS;
    int64_t counted_at = 0; /* monotonic ms of the last count for the queue gauge */
    while (!stopping(d)) {
        size_t n = 0;
        tg_err_t err = {0};
        counted_at = count_pending(d->st, TG_NOTIFY_QUEUE_WEBHOOKS, counted_at);
        /* A read first: the claim is a write, and on SQLite a write takes the database's write
         * lock even when it changes nothing; an idle gateway should not contend with the admin
         * thread's writes twice a second. */
        int64_t next = 0, now = wall_ms();
        int rc = tg_store_webhook_delivery_next_due(d->st, &next, &err);
        if (rc == 0 && next <= now &&
            tg_store_webhook_delivery_claim(d->st, now, lease, rows, CLAIM_BATCH, &n, &err) != 0)
            n = 0;
        for (size_t i = 0; i < n && !stopping(d); i++)
            deliver(d, &rows[i]);
        if (n == CLAIM_BATCH)
            continue;
        if (n > 0 && tg_store_webhook_delivery_next_due(d->st, &next, &err) != 0)
            rc = TG_ENOTFOUND;
        else if (n == 0 && rc == 0 && next <= now)
            next = now + 50; /* due but taken by another node (or a store error): not a busy loop */
        wait_until(d, rc == 0 ? next : wall_ms() + POLL_MS);
    }
    free(rows);
    return NULL;
}

static void on_wake(void *arg)
{
    tg_delivery_wake(arg);
}

int tg_delivery_start(const char *database, const tg_config_t *cfg, tg_delivery_t **out, tg_err_t *err)
{
    *out = NULL;
    tg_delivery_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory starting the webhook deliveries");
    d->cfg = cfg;
    pthread_mutex_init(&d->mu, NULL);
    tg_clock_cond_init(&d->cv);
    int rc = tg_store_open(database, &d->st, err);
    if (rc == 0 && pthread_create(&d->tid, NULL, delivery_main, d) != 0)
        rc = tg_errf(err, TG_ENOMEM, "cannot start the webhook delivery thread");
    if (rc != 0) {
        tg_store_close(d->st);
        pthread_cond_destroy(&d->cv);
        pthread_mutex_destroy(&d->mu);
        free(d);
        return rc;
    }
    tg_event_set_wake(on_wake, d);
    *out = d;
    return 0;
}

void tg_delivery_wake(tg_delivery_t *d)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    d->wake = 1;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

void tg_delivery_stop(tg_delivery_t *d)
{
    if (d == NULL)
        return;
    tg_event_set_wake(NULL, NULL);
    atomic_store(&d->cancel, 1);
    pthread_mutex_lock(&d->mu);
    d->stopping = 1;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->tid, NULL);
    tg_store_close(d->st);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
}
