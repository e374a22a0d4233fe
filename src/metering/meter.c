/* meter.c - see meter.h. One writer thread, one mutex-protected queue of submits. */
#include "metering/meter.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/clock.h"

#define MAX_ROWS_PER_TX 10000
#define BATCH_WAKE_ROWS 4096  /* batched mode commits early once this much is waiting */
#define STOP_RETRIES 20       /* at shutdown, give up on a failing store after this many tries */

typedef struct submit {
    tg_usage_t *rows;
    size_t n;
    tg_meter_done_cb cb;
    void *arg;
    int64_t at_ns;
} submit_t;

struct tg_meter {
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    submit_t *q;
    size_t qlen, qcap, qrows;
    uint64_t seq_submitted, seq_committed; /* counted in submits */
    int flush_requested, stopping;
    int strict, flush_ms;
    char *url;
    tg_store_t *store;
    pthread_t thread;
    _Atomic uint64_t st_submitted, st_committed, st_commits, st_failures;
    _Atomic int64_t st_lag;
};

static _Atomic uint64_t last_event_id;

uint64_t tg_meter_next_event_id(void)
{
    /* Wall-clock microseconds in the high bits, a sequence in the low 12: unique within the
     * process (strictly increasing) and across restarts as long as the clock does not step back
     * by more than the downtime. */
    uint64_t base = (uint64_t)(tg_clock_now_ns() / 1000) << 12;
    uint64_t old = atomic_load(&last_event_id), next;
    do {
        next = old + 1 > base ? old + 1 : base;
    } while (!atomic_compare_exchange_weak(&last_event_id, &old, next));
    return next & (uint64_t)INT64_MAX;
}

static void free_submits(submit_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s[i].rows);
    free(s);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Stores all rows of the taken submits; retries with backoff. Returns 0 or the last error. */
static int commit_all(tg_meter_t *m, submit_t *subs, size_t nsubs, size_t nrows)
{
    tg_usage_t *flat = malloc((nrows ? nrows : 1) * sizeof(*flat));
    size_t k = 0;
    int backoff = 1, tries = 0, rc = 0;
    if (flat == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < nsubs; i++) {
        memcpy(flat + k, subs[i].rows, subs[i].n * sizeof(*flat));
        k += subs[i].n;
    }
    uint64_t batch_id = 0;
    for (size_t off = 0; off < nrows;) {
        size_t n = nrows - off > MAX_ROWS_PER_TX ? MAX_ROWS_PER_TX : nrows - off;
        if (batch_id == 0) /* fixed per chunk, so a retry of an uncertain commit is recognised */
            batch_id = tg_meter_next_event_id();
        tg_err_t err = {0};
        if (m->store == NULL)
            rc = tg_store_open(m->url, &m->store, &err);
        if (rc == 0 && m->store != NULL)
            rc = tg_store_usage_record(m->store, batch_id, flat + off, n, NULL, &err);
        if (rc == 0) {
            off += n;
            batch_id = 0;
            atomic_fetch_add(&m->st_commits, 1);
            continue;
        }
        atomic_fetch_add(&m->st_failures, 1);
        pthread_mutex_lock(&m->mu);
        int stopping = m->stopping;
        pthread_mutex_unlock(&m->mu);
        if (stopping && ++tries >= STOP_RETRIES)
            break;
        /* Usage is never dropped: wait and try the same rows again (idempotent by event id). */
        sleep_ms(backoff);
        backoff = backoff < 1000 ? backoff * 2 : 1000;
        rc = 0;
    }
    free(flat);
    return rc;
}

static void *writer_main(void *arg)
{
    tg_meter_t *m = arg;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        while (m->qlen == 0 && !m->stopping)
            pthread_cond_wait(&m->wake, &m->mu);
        if (m->qlen == 0 && m->stopping)
            break;
        if (!m->strict && !m->stopping) {
            /* Batched: let a batch gather for flush_ms after its first record. */
            int64_t deadline = m->q[0].at_ns + (int64_t)m->flush_ms * 1000000;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
            while (now < deadline && !m->flush_requested && !m->stopping && m->qrows < BATCH_WAKE_ROWS) {
                struct timespec abs_ts;
                clock_gettime(CLOCK_REALTIME, &abs_ts);
                int64_t wait_ns = deadline - now;
                abs_ts.tv_sec += (time_t)(wait_ns / 1000000000);
                abs_ts.tv_nsec += (long)(wait_ns % 1000000000);
                if (abs_ts.tv_nsec >= 1000000000) {
                    abs_ts.tv_sec++;
                    abs_ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&m->wake, &m->mu, &abs_ts);
                clock_gettime(CLOCK_MONOTONIC, &ts);
                now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
            }
        }
        /* Group commit: take everything queued so far. */
        submit_t *subs = m->q;
        size_t nsubs = m->qlen, nrows = m->qrows;
        m->q = NULL;
        m->qlen = m->qcap = m->qrows = 0;
        m->flush_requested = 0;
        pthread_mutex_unlock(&m->mu);

        int rc = commit_all(m, subs, nsubs, nrows);
        int64_t now = tg_clock_mono_ns();
        if (rc == 0) {
            atomic_fetch_add(&m->st_committed, nrows);
            if (nsubs > 0)
                atomic_store(&m->st_lag, now - subs[0].at_ns);
        }
        for (size_t i = 0; i < nsubs; i++)
            if (subs[i].cb != NULL)
                subs[i].cb(subs[i].arg, rc);
        free_submits(subs, nsubs);

        pthread_mutex_lock(&m->mu);
        m->seq_committed += nsubs;
        pthread_cond_broadcast(&m->done);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

int tg_meter_start(const char *store_url, int strict, int flush_ms, tg_meter_t **out, tg_err_t *err)
{
    tg_meter_t *m = calloc(1, sizeof(*m));
    if (m == NULL || (m->url = strdup(store_url)) == NULL) {
        free(m);
        return tg_errf(err, TG_ENOMEM, "out of memory starting the meter");
    }
    m->strict = strict;
    m->flush_ms = flush_ms > 0 ? flush_ms : 1;
    int rc = tg_store_open(store_url, &m->store, err);
    if (rc != 0) {
        free(m->url);
        free(m);
        return rc;
    }
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->wake, NULL);
    pthread_cond_init(&m->done, NULL);
    if (pthread_create(&m->thread, NULL, writer_main, m) != 0) {
        tg_store_close(m->store);
        free(m->url);
        free(m);
        return tg_errf(err, TG_EIO, "cannot start the metering writer thread");
    }
    *out = m;
    return 0;
}

int tg_meter_submit(tg_meter_t *m, const tg_usage_t *rows, size_t n, tg_meter_done_cb cb, void *arg)
{
    tg_usage_t *copy = malloc((n ? n : 1) * sizeof(*copy));
    if (copy == NULL)
        return TG_ENOMEM;
    memcpy(copy, rows, n * sizeof(*copy));
    pthread_mutex_lock(&m->mu);
    if (m->stopping) {
        pthread_mutex_unlock(&m->mu);
        free(copy);
        return TG_ESTATE;
    }
    if (m->qlen == m->qcap) {
        size_t cap = m->qcap ? m->qcap * 2 : 256;
        submit_t *q = realloc(m->q, cap * sizeof(*q));
        if (q == NULL) {
            pthread_mutex_unlock(&m->mu);
            free(copy);
            return TG_ENOMEM;
        }
        m->q = q;
        m->qcap = cap;
    }
    m->q[m->qlen++] = (submit_t){copy, n, cb, arg, tg_clock_mono_ns()};
    m->qrows += n;
    m->seq_submitted++;
    /* The writer sleeps only on an empty queue (or, batched, until its deadline): wake it for
     * the first submit, or when a batched queue fills. */
    if (m->qlen == 1 || m->strict || m->qrows >= BATCH_WAKE_ROWS)
        pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->mu);
    atomic_fetch_add_explicit(&m->st_submitted, n, memory_order_relaxed);
    return 0;
}

int tg_meter_flush(tg_meter_t *m)
{
    pthread_mutex_lock(&m->mu);
    uint64_t target = m->seq_submitted;
    m->flush_requested = 1;
    pthread_cond_signal(&m->wake);
    while (m->seq_committed < target)
        pthread_cond_wait(&m->done, &m->mu);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

void tg_meter_get_stats(tg_meter_t *m, tg_meter_stats_t *out)
{
    out->submitted = atomic_load(&m->st_submitted);
    out->committed = atomic_load(&m->st_committed);
    out->commits = atomic_load(&m->st_commits);
    out->failures = atomic_load(&m->st_failures);
    out->last_lag_ns = atomic_load(&m->st_lag);
    out->queued = out->submitted > out->committed ? out->submitted - out->committed : 0;
}

void tg_meter_stop(tg_meter_t *m)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    m->stopping = 1;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->thread, NULL);
    free_submits(m->q, m->qlen);
    tg_store_close(m->store);
    pthread_cond_destroy(&m->wake);
    pthread_cond_destroy(&m->done);
    pthread_mutex_destroy(&m->mu);
    free(m->url);
    free(m);
}
