/* mail_outbox.c - the mail queue and its sender thread (see mail_outbox.h).
 *
 * The message is built when it is queued, not when it is sent: the template, the values and the
 * date are those of the moment of the change, and a retry sends the very same bytes (same
 * Message-ID, so a receiving server that saw a first attempt whose answer was lost can tell).
 * A claim leases due rows for LEASE_MS by moving their next attempt ahead in the same statement
 * that reads them: a sender killed mid-send leaves its rows due again after the lease (the mail
 * may then go out twice, SMTP being at least once), and two nodes on one PostgreSQL never take
 * the same row at once. */
#include "notify/mail_outbox.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics/notify_metrics.h"
#include "notify/mail.h"
#include "notify/mail_template.h"
#include "payments/outbox.h" /* tg_outbox_backoff_ms: the same full-jitter schedule */
#include "store/store_mail.h"
#include "store/store_notify.h"
#include "store/store_retention.h"
#include "util/clock.h"
#include "util/thread_prio.h"
#include "util/money_text.h"

#define CLAIM_BATCH 8
#define LEASE_MS (5 * 60 * 1000) /* longer than any SMTP exchange (timeout_ms) */
#define PENDING_COUNT_MS 1000 /* the queue gauge is counted again at most this often */

static const tg_config_t *g_cfg;

void tg_mail_setup(const tg_config_t *cfg)
{
    g_cfg = cfg != NULL && cfg->email.enabled ? cfg : NULL;
}

int tg_mail_enabled(void)
{
    return g_cfg != NULL;
}

static int64_t wall_ms(void)
{
    return tg_clock_now_ns() / 1000000;
}

static void hex_random(char *out, size_t nbytes)
{
    unsigned char b[32];
    if (nbytes > sizeof(b))
        nbytes = sizeof(b);
    randombytes_buf(b, nbytes);
    sodium_bin2hex(out, nbytes * 2 + 1, b, nbytes);
}

static int is_sensitive(const char *template_name)
{
    return strcmp(template_name, "confirm_email") == 0 || strcmp(template_name, "reset_password") == 0;
}

/* What people read (issue 15), beside the raw values an owner's template may still use:
 * metric_name (metering.metrics), used_text and included_text ("50,000"), and for each amount
 * with a currency, <amount>_text ("$49.00"). */
static void add_display_vars(json_t *v, const tg_config_t *cfg)
{
    const char *metric = json_string_value(json_object_get(v, "metric"));
    if (metric != NULL && json_object_get(v, "metric_name") == NULL)
        json_object_set_new(v, "metric_name", json_string(tg_config_metric_name(cfg, metric)));
    static const char *const counts[] = {"used", "included"};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        json_t *n = json_object_get(v, counts[i]);
        char key[32], text[32];
        snprintf(key, sizeof(key), "%s_text", counts[i]);
        if (json_is_integer(n) && json_integer_value(n) >= 0 && json_object_get(v, key) == NULL &&
            tg_count_text((uint64_t)json_integer_value(n), text, sizeof(text)) >= 0)
            json_object_set_new(v, key, json_string(text));
    }
    const char *currency = json_string_value(json_object_get(v, "currency"));
    static const char *const amounts[] = {"total", "estimate", "budget", "amount"};
    for (size_t i = 0; currency != NULL && i < sizeof(amounts) / sizeof(amounts[0]); i++) {
        const char *a = json_string_value(json_object_get(v, amounts[i]));
        char key[32], text[80];
        snprintf(key, sizeof(key), "%s_text", amounts[i]);
        if (json_object_get(v, key) == NULL)
            json_object_set_new(v, key, json_string(a != NULL && tg_money_text(a, currency, text, sizeof(text)) >= 0
                                                        ? text
                                                        : a != NULL ? a : ""));
    }
}

int tg_mail_enqueue_id(tg_store_t *st, const char *to, const char *template_name, json_t *vars, const char *customer_id,
                       int64_t *mail_id, tg_err_t *err)
{
    const tg_config_t *cfg = g_cfg;
    if (cfg == NULL)
        return tg_errf(err, TG_ESTATE, "email is not configured (no email: section)");
    if (to == NULL || !tg_mail_addr_ok(to, strlen(to)))
        return tg_errf(err, TG_EINVAL, "the recipient is not an address mail is sent to");
    json_t *v = json_is_object(vars) ? json_copy(vars) : json_object();
    if (v == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory queuing a mail");
    if (json_object_get(v, "portal_url") == NULL) {
        char portal[600];
        snprintf(portal, sizeof(portal), "%s/portal/", cfg->portal.public_url != NULL ? cfg->portal.public_url : "");
        json_object_set_new(v, "portal_url", json_string(portal));
    }
    add_display_vars(v, cfg);
    tg_mail_rendered_t r;
    int rc = tg_mail_template_render(cfg->email.templates, template_name, v, &r, err);
    json_decref(v);
    if (rc != 0)
        return rc;
    const char *at = strchr(cfg->email.from_addr, '@');
    char rnd[33], bnd[33], msgid[TG_MAIL_MSGID_MAX], boundary[64];
    hex_random(rnd, 16);
    hex_random(bnd, 12);
    snprintf(msgid, sizeof(msgid), "<%s.tollgate@%.80s>", rnd, at != NULL ? at + 1 : "localhost");
    snprintf(boundary, sizeof(boundary), "=_tg_%s", bnd);
    int64_t now_ms = wall_ms();
    tg_mail_msg_t m = {.from = cfg->email.from,
                       .to = to,
                       .subject = r.subject,
                       .text = r.text,
                       .html = r.html,
                       .date = now_ms / 1000,
                       .message_id = msgid,
                       .boundary = boundary};
    char *body = NULL;
    size_t body_len = 0;
    rc = tg_mail_build(&m, &body, &body_len, err);
    if (rc == 0) {
        tg_mail_row_t row;
        memset(&row, 0, sizeof(row));
        snprintf(row.to, sizeof(row.to), "%s", to);
        snprintf(row.template_name, sizeof(row.template_name), "%s", template_name);
        snprintf(row.customer_id, sizeof(row.customer_id), "%s", customer_id != NULL ? customer_id : "");
        snprintf(row.subject, sizeof(row.subject), "%s", r.subject);
        snprintf(row.message_id, sizeof(row.message_id), "%s", msgid);
        row.body = body;
        row.body_len = body_len;
        row.sensitive = is_sensitive(template_name);
        rc = tg_store_mail_insert(st, &row, now_ms, mail_id, err);
        if (row.sensitive)
            sodium_memzero(body, body_len);
        free(body);
    }
    tg_mail_rendered_free(&r);
    return rc;
}

int tg_mail_enqueue(tg_store_t *st, const char *to, const char *template_name, json_t *vars, tg_err_t *err)
{
    return tg_mail_enqueue_id(st, to, template_name, vars, NULL, NULL, err);
}

int tg_mail_event_wanted(const char *email_events, const char *type)
{
    if (strcmp(email_events, "*") == 0)
        return 1;
    size_t n = strlen(type);
    for (const char *p = email_events; *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, type, n) == 0)
            return 1;
        p += len + (comma != NULL);
    }
    return 0;
}

int tg_mail_enqueue_event(tg_store_t *st, const char *type, const char *customer_id, json_t *data, tg_err_t *err)
{
    if (g_cfg == NULL || type == NULL || !tg_mail_template_known(type) || strcmp(type, "confirm_email") == 0 ||
        strcmp(type, "reset_password") == 0 || customer_id == NULL || customer_id[0] == '\0')
        return 0;
    /* A new customer's first key is on their screen, beside the sign-up's confirmation mail: an
     * email "a key was created, revoke it if it was not you" then is noise. */
    if (strcmp(type, "key.created") == 0 && json_is_true(json_object_get(data, "first_key")))
        return 0;
    tg_customer_t c;
    int rc = tg_store_customer_get(st, customer_id, &c, err);
    if (rc != 0)
        return rc;
    /* The customer's choice of events by email (notification_settings; none saved: all). */
    char wanted[2048];
    rc = tg_store_notification_settings_get(st, customer_id, wanted, sizeof(wanted), err);
    if (rc == TG_ENOTFOUND)
        snprintf(wanted, sizeof(wanted), "*");
    else if (rc != 0)
        return rc;
    if (!tg_mail_event_wanted(wanted, type))
        return 0;
    json_t *v = json_is_object(data) ? json_copy(data) : json_object();
    if (v == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory queuing a mail");
    json_object_set_new(v, "customer_name", json_string(c.name[0] != '\0' ? c.name : c.email));
    json_object_set_new(v, "customer_email", json_string(c.email));
    rc = tg_mail_enqueue_id(st, c.email, type, v, c.id, NULL, err);
    json_decref(v);
    return rc;
}

/* ---- the sender ---- */

struct tg_mail_sender {
    tg_store_t *st;
    tg_mail_server_t server;
    const char *from_addr;
    int64_t base_ms, cap_ms, poll_ms;
    int max_attempts;
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping, wake;
    _Atomic int cancel;
};

static pthread_mutex_t g_sender_mu = PTHREAD_MUTEX_INITIALIZER;
static tg_mail_sender_t *g_sender; /* for tg_mail_wake; under g_sender_mu */

static void send_one(tg_mail_sender_t *ms, tg_mail_row_t *row)
{
    tg_err_t err = {0};
    long code = 0;
    int rc = tg_mail_send(&ms->server, ms->from_addr, row->to, row->body, row->body_len, &code, &err);
    int64_t now = wall_ms();
    const char *outcome = "sent";
    int64_t next = now;
    if (rc == TG_EIO && row->attempts + 1 < ms->max_attempts) {
        outcome = "retry";
        next = now + tg_outbox_backoff_ms((int)(row->attempts + 1), ms->base_ms, ms->cap_ms, randombytes_random());
    } else if (rc != 0) {
        outcome = "failed";
    }
    tg_err_t rerr = {0};
    /* on error the row stays pending; its lease runs out and it is sent again */
    if (tg_store_mail_record(ms->st, row->id, outcome, next, code, rc != 0 ? err.msg : "", now, &rerr) == 0)
        tg_notify_metrics_email(outcome[0] == 's'   ? TG_NOTIFY_DONE
                                : outcome[0] == 'r' ? TG_NOTIFY_RETRY
                                                    : TG_NOTIFY_FAILED);
}

static void wait_until(tg_mail_sender_t *ms, int64_t at_ms)
{
    int64_t wait_ms = at_ms - wall_ms();
    if (wait_ms > ms->poll_ms)
        wait_ms = ms->poll_ms;
    pthread_mutex_lock(&ms->mu);
    if (wait_ms > 0 && !ms->stopping && !ms->wake) {
        struct timespec ts = tg_clock_deadline(CLOCK_MONOTONIC, wait_ms); /* the cv's clock */
        while (!ms->stopping && !ms->wake && pthread_cond_timedwait(&ms->cv, &ms->mu, &ts) != ETIMEDOUT) {
        }
    }
    ms->wake = 0;
    pthread_mutex_unlock(&ms->mu);
}

static int stopping(tg_mail_sender_t *ms)
{
    pthread_mutex_lock(&ms->mu);
    int s = ms->stopping;
    pthread_mutex_unlock(&ms->mu);
    return s;
}

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

static void *sender_main(void *arg)
{
    tg_mail_sender_t *ms = arg;
    pthread_setname_np(pthread_self(), "tg-mail");
    /* As the webhook deliveries (delivery.c): below the request path, not starved by it, since a
     * person waits for the mail (a sign-up's confirmation) and a slow SMTP dialogue times out. */
    tg_thread_lower_priority_or_warn(TG_NICE_BACKGROUND, "the mail sender (tg-mail)");
    tg_mail_row_t rows[CLAIM_BATCH];
    int64_t counted_at = 0; /* monotonic ms of the last count for the queue gauge */
    while (!stopping(ms)) {
        size_t n = 0;
        tg_err_t err = {0};
        counted_at = count_pending(ms->st, TG_NOTIFY_QUEUE_EMAILS, counted_at);
        int64_t now = wall_ms();
        if (tg_store_mail_claim(ms->st, now, now + LEASE_MS, rows, CLAIM_BATCH, &n, &err) != 0)
            n = 0;
        for (size_t i = 0; i < n; i++) {
            if (!stopping(ms))
                send_one(ms, &rows[i]); /* one left unsent at a stop is due again after its lease */
            tg_mail_row_clear(&rows[i]);
        }
        if (n == CLAIM_BATCH)
            continue;
        int64_t next = 0;
        if (tg_store_mail_next_due(ms->st, &next, &err) != 0)
            next = wall_ms() + ms->poll_ms;
        wait_until(ms, next);
    }
    return NULL;
}

static void free_sender(tg_mail_sender_t *ms)
{
    tg_store_close(ms->st);
    pthread_cond_destroy(&ms->cv);
    pthread_mutex_destroy(&ms->mu);
    free(ms);
}

int tg_mail_sender_start(const tg_mail_sender_settings_t *s, tg_mail_sender_t **out, tg_err_t *err)
{
    *out = NULL;
    if (s->cfg == NULL || !s->cfg->email.enabled)
        return tg_errf(err, TG_ECONFIG, "the mail sender needs an email section");
    tg_mail_sender_t *ms = calloc(1, sizeof(*ms));
    if (ms == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory starting the mail sender");
    pthread_mutex_init(&ms->mu, NULL);
    tg_clock_cond_init(&ms->cv);
    const tg_config_t *cfg = s->cfg;
    ms->server = (tg_mail_server_t){.url = cfg->email.smtp_url,
                                    .username = cfg->email.username,
                                    .password = cfg->email.password,
                                    .starttls = cfg->email.starttls,
                                    .timeout_ms = s->timeout_ms > 0 ? s->timeout_ms : 30000,
                                    .cancel = &ms->cancel};
    ms->from_addr = cfg->email.from_addr;
    ms->base_ms = s->backoff_base_ms > 0 ? s->backoff_base_ms : 1000;
    ms->cap_ms = s->backoff_cap_ms > 0 ? s->backoff_cap_ms : 3600 * 1000;
    ms->max_attempts = s->max_attempts > 0 ? s->max_attempts : 15;
    ms->poll_ms = s->poll_ms > 0 ? s->poll_ms : 1000;
    int rc = tg_store_open(s->database, &ms->st, err);
    if (rc != 0) {
        free_sender(ms);
        return rc;
    }
    if (pthread_create(&ms->tid, NULL, sender_main, ms) != 0) {
        free_sender(ms);
        return tg_errf(err, TG_ENOMEM, "cannot start the mail sender thread");
    }
    pthread_mutex_lock(&g_sender_mu);
    g_sender = ms;
    pthread_mutex_unlock(&g_sender_mu);
    *out = ms;
    return 0;
}

void tg_mail_wake(void)
{
    pthread_mutex_lock(&g_sender_mu);
    tg_mail_sender_t *ms = g_sender;
    if (ms != NULL) {
        pthread_mutex_lock(&ms->mu);
        ms->wake = 1;
        pthread_cond_signal(&ms->cv);
        pthread_mutex_unlock(&ms->mu);
    }
    pthread_mutex_unlock(&g_sender_mu);
}

void tg_mail_sender_stop(tg_mail_sender_t *ms)
{
    if (ms == NULL)
        return;
    pthread_mutex_lock(&g_sender_mu);
    if (g_sender == ms)
        g_sender = NULL;
    pthread_mutex_unlock(&g_sender_mu);
    atomic_store(&ms->cancel, 1);
    pthread_mutex_lock(&ms->mu);
    ms->stopping = 1;
    pthread_cond_signal(&ms->cv);
    pthread_mutex_unlock(&ms->mu);
    pthread_join(ms->tid, NULL);
    free_sender(ms);
}
