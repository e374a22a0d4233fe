/* directory_sync.c - see directory_sync.h. */
#include "cluster/directory_sync.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metering/events.h"
#include "payments/stripe_events.h"
#include "store/store.h"
#include "store/store_cluster.h"
#include "store/store_payments.h"
#include "util/clock.h"
#include "util/log.h"

#define PENDING_MAX 1024 /* customers named since the last reload; more: resync in full */
#define BACKOFF_MAX_MS 5000

struct tg_dirsync {
    char *url;
    tg_accounts_t *accounts;
    int resync_s;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    int stopping;
    /* the thread's own */
    char (*pending)[TG_ID_MAX];
    size_t npending;
    int overflow;
    int tokens_changed; /* an ingest token was announced since the last reload */
    _Atomic(tg_events_t *) events;
    _Atomic int follow_from_now; /* set by tg_dirsync_follow_ingest_tokens: load once */
    _Atomic uint64_t notifications, reloads, resyncs, failures;
    _Atomic int connected;
};

/* Waits up to ms for stop; 1 if stopping. */
static int wait_stop(tg_dirsync_t *d, int ms)
{
    struct timespec ts = tg_clock_deadline(CLOCK_MONOTONIC, ms); /* d->wake's clock */
    pthread_mutex_lock(&d->mu);
    while (!d->stopping && pthread_cond_timedwait(&d->wake, &d->mu, &ts) == 0)
        ;
    int stop = d->stopping;
    pthread_mutex_unlock(&d->mu);
    return stop;
}

static int stopping(tg_dirsync_t *d)
{
    pthread_mutex_lock(&d->mu);
    int stop = d->stopping;
    pthread_mutex_unlock(&d->mu);
    return stop;
}

static void on_change(const char *kind, const char *id, void *arg)
{
    tg_dirsync_t *d = arg;
    atomic_fetch_add(&d->notifications, 1);
    if (strcmp(kind, "ingest_token") == 0) {
        d->tokens_changed = 1;
        return;
    }
    if (strcmp(kind, "customer") != 0 || strnlen(id, TG_ID_MAX) >= TG_ID_MAX)
        return;
    for (size_t i = 0; i < d->npending; i++)
        if (strcmp(d->pending[i], id) == 0)
            return;
    if (d->npending == PENDING_MAX) {
        d->overflow = 1;
        return;
    }
    memcpy(d->pending[d->npending++], id, strlen(id) + 1);
}

static int put_key_cb(const tg_key_t *k, void *arg)
{
    tg_err_t err = {0};
    return tg_accounts_put_key(arg, k, &err) != 0;
}

/* One customer as the database has it now: record, keys, payment hold. */
static int reload_customer(tg_dirsync_t *d, tg_store_t *st, const char *id, tg_err_t *err)
{
    tg_customer_t c;
    int rc = tg_store_customer_get(st, id, &c, err);
    if (rc == TG_ENOTFOUND)
        return 0; /* announced, then rolled back or removed: nothing to enforce */
    if (rc == 0)
        rc = tg_accounts_put_customer(d->accounts, &c, err);
    if (rc == 0)
        rc = tg_store_key_list(st, id, put_key_cb, d->accounts, err);
    tg_dunning_row_t dun;
    int found = 0;
    if (rc == 0 && (rc = tg_store_dunning_get(st, id, &dun, &found, err)) == 0)
        tg_accounts_set_payment_hold(d->accounts, id, found && dun.held);
    if (rc == 0)
        atomic_fetch_add(&d->reloads, 1);
    return rc;
}

static int reload_tokens(tg_dirsync_t *d, tg_store_t *st, tg_err_t *err)
{
    tg_events_t *ev = atomic_load(&d->events);
    if (ev == NULL)
        return 0;
    return tg_events_tokens_load(ev, st, err);
}

static int resync(tg_dirsync_t *d, tg_store_t *st, tg_err_t *err)
{
    int rc = tg_accounts_load(d->accounts, st, err);
    if (rc == 0)
        rc = tg_dunning_restore_holds(st, d->accounts, err);
    if (rc == 0)
        rc = reload_tokens(d, st, err);
    if (rc == 0)
        atomic_fetch_add(&d->resyncs, 1);
    return rc;
}

static void *sync_main(void *arg)
{
    tg_dirsync_t *d = arg;
    tg_store_t *st = NULL;
    int backoff_ms = 100, reported = 0;
    int64_t next_resync = 0;
    while (!stopping(d)) {
        tg_err_t err = {0};
        if (st == NULL) {
            /* Listen first, then reload everything: a change committed in between is both
             * announced and reloaded, never missed. */
            if (tg_store_open(d->url, &st, &err) != 0 || tg_store_changes_listen(st, &err) != 0 ||
                resync(d, st, &err) != 0) {
                tg_store_close(st);
                st = NULL;
                atomic_fetch_add(&d->failures, 1);
                if (!reported++)
                    tg_log(TG_LOG_ERROR, "directory sync: %s (serving the directory in memory; retrying)",
                            err.msg);
                if (wait_stop(d, backoff_ms))
                    break;
                backoff_ms = backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff_ms * 2;
                continue;
            }
            if (reported)
                tg_log(TG_LOG_INFO, "directory sync: following the database's changes again");
            reported = 0;
            backoff_ms = 100;
            atomic_store(&d->connected, 1);
            next_resync = tg_clock_mono_ns() + (int64_t)d->resync_s * TG_NS_PER_SEC;
        }
        d->npending = 0;
        d->overflow = 0;
        d->tokens_changed = atomic_exchange(&d->follow_from_now, 0);
        /* short waits: a stop is noticed within 250 ms */
        int rc = tg_store_changes_wait(st, 250, on_change, d, NULL, &err);
        for (size_t i = 0; rc == 0 && !d->overflow && i < d->npending; i++)
            rc = reload_customer(d, st, d->pending[i], &err);
        if (rc == 0 && d->tokens_changed)
            rc = reload_tokens(d, st, &err);
        if (rc == 0 && (d->overflow || tg_clock_mono_ns() >= next_resync)) {
            rc = resync(d, st, &err);
            next_resync = tg_clock_mono_ns() + (int64_t)d->resync_s * TG_NS_PER_SEC;
        }
        if (rc != 0) { /* reconnect, listen again and resync in full */
            atomic_fetch_add(&d->failures, 1);
            atomic_store(&d->connected, 0);
            tg_log(TG_LOG_WARN, "directory sync: %s (reconnecting)", err.msg);
            reported = 1;
            tg_store_close(st);
            st = NULL;
        }
    }
    tg_store_close(st);
    return NULL;
}

int tg_dirsync_start(const char *store_url, tg_accounts_t *accounts, int resync_s, tg_dirsync_t **out, tg_err_t *err)
{
    *out = NULL;
    tg_dirsync_t *d = calloc(1, sizeof(*d));
    if (d == NULL || (d->url = strdup(store_url)) == NULL ||
        (d->pending = calloc(PENDING_MAX, sizeof(*d->pending))) == NULL) {
        if (d != NULL)
            free(d->url);
        free(d);
        return tg_errf(err, TG_ENOMEM, "out of memory starting the directory sync");
    }
    d->accounts = accounts;
    d->resync_s = resync_s > 0 ? resync_s : 30;
    pthread_mutex_init(&d->mu, NULL);
    tg_clock_cond_init(&d->wake);
    if (pthread_create(&d->thread, NULL, sync_main, d) != 0) {
        pthread_cond_destroy(&d->wake);
        pthread_mutex_destroy(&d->mu);
        free(d->pending);
        free(d->url);
        free(d);
        return tg_errf(err, TG_EIO, "cannot start the directory sync thread");
    }
    *out = d;
    return 0;
}

void tg_dirsync_stop(tg_dirsync_t *d)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    d->stopping = 1;
    pthread_cond_signal(&d->wake);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    pthread_cond_destroy(&d->wake);
    pthread_mutex_destroy(&d->mu);
    free(d->pending);
    free(d->url);
    free(d);
}

void tg_dirsync_follow_ingest_tokens(tg_dirsync_t *d, tg_events_t *ev)
{
    if (d == NULL)
        return;
    atomic_store(&d->events, ev);
    atomic_store(&d->follow_from_now, 1);
}

void tg_dirsync_stats(tg_dirsync_t *d, tg_dirsync_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (d == NULL)
        return;
    out->notifications = atomic_load(&d->notifications);
    out->reloads = atomic_load(&d->reloads);
    out->resyncs = atomic_load(&d->resyncs);
    out->failures = atomic_load(&d->failures);
    out->connected = atomic_load(&d->connected);
}
