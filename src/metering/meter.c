/* meter.c - see meter.h. One writer thread drains a mutex-protected FIFO of submits.
 *
 * Submits are copied on the caller's thread (no I/O there) and queued; the writer takes the whole
 * queue at once (group commit) and cuts it into transactions of at most MAX_ROWS_PER_TX rows at
 * submit boundaries, so the records of one call (several metrics) always commit together. Each
 * transaction gets a fresh batch id that it keeps across retries: the store applies a batch id
 * once, so a commit whose outcome was uncertain can be retried without counting twice.
 *
 * Failures. A transient one (locked, I/O, out of memory) is retried with backoff, 1 ms doubling
 * to 1 s, on a freshly opened connection, and nothing is dropped; the records stay in the writer's
 * hands and new submits keep queueing. A permanent one (a total that would pass 2^63 - 1) would
 * fail forever, so the transaction is split in halves until the offending submit fails alone:
 * one bad record neither stalls metering nor takes anyone else's usage with it. At shutdown a
 * store that keeps failing is given STOP_GIVE_UP_NS; the submits still uncommitted then get
 * their callbacks with the error. */
#include "metering/meter.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/clock.h"

#define MAX_ROWS_PER_TX 10000 /* bounds one transaction's memory and write-lock time */
#define BATCH_WAKE_ROWS 4096  /* batched mode commits early once this much is waiting */
#define BACKOFF_MAX_MS 1000
#define STOP_GIVE_UP_NS (INT64_C(2) * 1000000000) /* at shutdown, retry a failing store this long */

typedef struct submit {
    tg_usage_t *rows; /* owned copy */
    size_t n;
    tg_meter_done_cb cb;
    void *arg;
    int64_t at_ns; /* monotonic submit time */
    int status;    /* writer only: 0 or the error that made it give up */
} submit_t;

struct tg_meter {
    pthread_mutex_t mu;
    pthread_cond_t wake; /* the writer waits here: work queued, flush or stop */
    pthread_cond_t done; /* flushers wait here for seq_done to move */
    /* under mu */
    submit_t *q;
    size_t qlen, qcap, qrows;
    uint64_t seq_submitted, seq_done; /* counted in submits; FIFO, so done <= n means 1..n done */
    int flush_requested, stopping;
    /* fixed after start */
    int strict, flush_ms;
    char *url;
    pthread_t thread;
    /* writer thread only */
    tg_store_t *store;
    int64_t stop_seen_ns;
    /* statistics, read by any thread */
    _Atomic uint64_t st_submitted, st_committed, st_commits, st_failures;
    _Atomic int64_t st_lag;
};

/* ---- event ids ---- */

/* 2025-01-01T00:00:00Z: 51 bits of microseconds from here last until 2096 (from the Unix epoch
 * they would run out in 2041). */
#define EVENT_EPOCH_US INT64_C(1735689600000000)

static _Atomic uint64_t last_event_id;

/* Microseconds since EVENT_EPOCH_US in the high 51 bits, a sequence in the low 12 bits, made
 * strictly increasing in the process by an atomic max (compare-and-swap):
 * - unique in the process: every id is a distinct value of one CAS-advanced word, whatever the
 *   threads; when more than 4096 ids are taken in one microsecond, ids run ahead of the clock
 *   and the clock catches up;
 * - unique across restarts: a new process starts from the current time, above every id the last
 *   one issued, unless the clock was stepped back by more than the downtime;
 * - the real clock, not tg_clock_now_ns: the test clock override moves billing time, and ids
 *   issued under a clock shifted forward would meet the ids of a later run without the shift.
 * The meter uses them as batch ids, which the store applies once each. */
uint64_t tg_meter_next_event_id(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 - EVENT_EPOCH_US;
    uint64_t base = us > 0 ? (uint64_t)us << 12 : 0;
    uint64_t old = atomic_load(&last_event_id), next;
    do {
        next = old + 1 > base ? old + 1 : base;
    } while (!atomic_compare_exchange_weak(&last_event_id, &old, next));
    return next;
}

/* ---- writer ---- */

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

/* TG_ERANGE / TG_EINVAL come from the records themselves: the same rows fail every time. */
static int is_permanent(int rc)
{
    return rc == TG_ERANGE || rc == TG_EINVAL;
}

/* After a transient failure: 1 to give up (stopping for longer than STOP_GIVE_UP_NS). */
static int give_up(tg_meter_t *m)
{
    pthread_mutex_lock(&m->mu);
    int stopping = m->stopping;
    pthread_mutex_unlock(&m->mu);
    if (!stopping)
        return 0;
    int64_t now = tg_clock_mono_ns();
    if (m->stop_seen_ns == 0)
        m->stop_seen_ns = now;
    return now - m->stop_seen_ns >= STOP_GIVE_UP_NS;
}

/* Stores the rows of subs[lo, hi) in one transaction, retrying transient failures. Returns 0, a
 * permanent error, or a transient one after give_up. */
static int store_range(tg_meter_t *m, const submit_t *subs, size_t lo, size_t hi)
{
    size_t n = 0;
    for (size_t i = lo; i < hi; i++)
        n += subs[i].n;
    if (n == 0)
        return 0;
    /* One submit is stored from its own copy; several are gathered into one array. */
    tg_usage_t *flat = hi - lo == 1 ? subs[lo].rows : NULL;
    uint64_t batch_id = tg_meter_next_event_id(); /* kept across retries: applied at most once */
    int backoff_ms = 1;
    for (;;) {
        tg_err_t err = {0};
        int rc = 0;
        if (flat == NULL && (flat = malloc(n * sizeof(*flat))) != NULL) {
            size_t k = 0;
            for (size_t i = lo; i < hi; i++) {
                if (subs[i].n > 0)
                    memcpy(flat + k, subs[i].rows, subs[i].n * sizeof(*flat));
                k += subs[i].n;
            }
        }
        if (flat == NULL)
            rc = TG_ENOMEM;
        else if (m->store == NULL)
            rc = tg_store_open(m->url, &m->store, &err);
        if (rc == 0)
            rc = tg_store_usage_record(m->store, batch_id, flat, n, NULL, &err);
        if (rc == 0) {
            atomic_fetch_add(&m->st_commits, 1);
            atomic_fetch_add(&m->st_committed, n);
            atomic_store(&m->st_lag, tg_clock_mono_ns() - subs[lo].at_ns);
        } else {
            atomic_fetch_add(&m->st_failures, 1);
        }
        if (rc == 0 || is_permanent(rc) || give_up(m)) {
            if (flat != subs[lo].rows)
                free(flat);
            return rc;
        }
        /* A fresh connection for the retry: whatever state the failure left the old one in (an
         * unfinished transaction, a broken file handle) cannot make every retry fail. */
        if (rc != TG_ENOMEM) {
            tg_store_close(m->store);
            m->store = NULL;
        }
        sleep_ms(backoff_ms);
        backoff_ms = backoff_ms * 2 < BACKOFF_MAX_MS ? backoff_ms * 2 : BACKOFF_MAX_MS;
    }
}

/* Stores subs[lo, hi) and sets each submit's status. A permanent failure of several submits is
 * narrowed down by halves (log2(MAX_ROWS_PER_TX) levels at most). */
static void store_group(tg_meter_t *m, submit_t *subs, size_t lo, size_t hi)
{
    int rc = store_range(m, subs, lo, hi);
    if (rc != 0 && is_permanent(rc) && hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        store_group(m, subs, lo, mid);
        store_group(m, subs, mid, hi);
        return;
    }
    for (size_t i = lo; i < hi; i++)
        subs[i].status = rc;
}

/* Batched mode: with mu held and the queue not empty, waits until the oldest submit is flush_ms
 * old, the queue holds BATCH_WAKE_ROWS, or a flush or stop asks for it now. */
static void wait_for_batch(tg_meter_t *m)
{
    int64_t deadline = m->q[0].at_ns + (int64_t)m->flush_ms * 1000000;
    for (;;) {
        int64_t now = tg_clock_mono_ns();
        if (now >= deadline || m->flush_requested || m->stopping || m->qrows >= BATCH_WAKE_ROWS)
            return;
        /* wake uses CLOCK_MONOTONIC (see tg_meter_start), the clock of tg_clock_mono_ns. */
        struct timespec abs_ts = {(time_t)(deadline / 1000000000), (long)(deadline % 1000000000)};
        pthread_cond_timedwait(&m->wake, &m->mu, &abs_ts);
    }
}

static void *writer_main(void *arg)
{
    tg_meter_t *m = arg;
    pthread_setname_np(pthread_self(), "tg-meter");
    pthread_mutex_lock(&m->mu);
    for (;;) {
        while (m->qlen == 0 && !m->stopping)
            pthread_cond_wait(&m->wake, &m->mu);
        if (m->qlen == 0) /* stopping, and everything is stored */
            break;
        if (!m->strict && !m->stopping)
            wait_for_batch(m);
        /* Group commit: take everything queued so far; what arrives meanwhile is the next group. */
        submit_t *subs = m->q;
        size_t nsubs = m->qlen;
        m->q = NULL;
        m->qlen = m->qcap = m->qrows = 0;
        m->flush_requested = 0;
        pthread_mutex_unlock(&m->mu);

        for (size_t lo = 0; lo < nsubs;) {
            size_t hi = lo, rows = 0;
            while (hi < nsubs && (hi == lo || rows + subs[hi].n <= MAX_ROWS_PER_TX))
                rows += subs[hi++].n;
            store_group(m, subs, lo, hi);
            for (size_t i = lo; i < hi; i++)
                if (subs[i].cb != NULL)
                    subs[i].cb(subs[i].arg, subs[i].status);
            pthread_mutex_lock(&m->mu);
            m->seq_done += hi - lo;
            pthread_cond_broadcast(&m->done);
            pthread_mutex_unlock(&m->mu);
            lo = hi;
        }
        free_submits(subs, nsubs);
        /* After the completions: a fold is off the strict-mode path of the calls above. A
         * failed fold leaves the batches in the journal, where readers still find them. */
        if (m->store != NULL) {
            tg_err_t ferr = {0};
            if (tg_store_usage_fold(m->store, 0, &ferr) != 0)
                fprintf(stderr, "tollgate: meter: %s (retried in a second)\n", ferr.msg);
        }
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* ---- API ---- */

int tg_meter_start(const char *store_url, int strict, int flush_ms, tg_meter_t **out, tg_err_t *err)
{
    *out = NULL;
    if (store_url == NULL)
        return tg_errf(err, TG_EINVAL, "the meter needs a storage URL");
    tg_meter_t *m = calloc(1, sizeof(*m));
    if (m == NULL || (m->url = strdup(store_url)) == NULL) {
        free(m);
        return tg_errf(err, TG_ENOMEM, "out of memory starting the meter");
    }
    m->strict = strict;
    m->flush_ms = flush_ms > 0 ? flush_ms : 1;
    /* Opened here so that a bad URL or an unreadable database fails the start, not the first
     * commit; from now on only the writer thread uses it. */
    int rc = tg_store_open(store_url, &m->store, err);
    if (rc != 0) {
        free(m->url);
        free(m);
        return rc;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->wake, &ca);
    pthread_cond_init(&m->done, NULL);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&m->thread, NULL, writer_main, m) != 0) {
        pthread_cond_destroy(&m->wake);
        pthread_cond_destroy(&m->done);
        pthread_mutex_destroy(&m->mu);
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
    /* Refused here, not in the writer: a record that can never be stored must not wait for it. */
    for (size_t i = 0; i < n; i++)
        if (rows[i].units > (uint64_t)INT64_MAX)
            return TG_ERANGE;
    tg_usage_t *copy = NULL;
    if (n > 0) {
        if (n > SIZE_MAX / sizeof(*copy) || (copy = malloc(n * sizeof(*copy))) == NULL)
            return TG_ENOMEM;
        memcpy(copy, rows, n * sizeof(*copy));
    }
    int64_t now = tg_clock_mono_ns();
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
    m->q[m->qlen++] = (submit_t){copy, n, cb, arg, now, 0};
    m->qrows += n;
    m->seq_submitted++;
    atomic_fetch_add(&m->st_submitted, n);
    /* The writer sleeps on an empty queue, or (batched) until its deadline: wake it for the first
     * submit, or when a batched queue is full enough to commit early. */
    if (m->qlen == 1 || m->qrows >= BATCH_WAKE_ROWS)
        pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

int tg_meter_flush(tg_meter_t *m)
{
    pthread_mutex_lock(&m->mu);
    uint64_t target = m->seq_submitted;
    if (m->seq_done < target) {
        m->flush_requested = 1; /* batched mode: commit now rather than at the deadline */
        pthread_cond_signal(&m->wake);
    }
    while (m->seq_done < target)
        pthread_cond_wait(&m->done, &m->mu);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

void tg_meter_get_stats(tg_meter_t *m, tg_meter_stats_t *out)
{
    out->committed = atomic_load(&m->st_committed);
    out->submitted = atomic_load(&m->st_submitted); /* after committed: never below it */
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
    free_submits(m->q, m->qlen); /* empty: the writer leaves only with an empty queue */
    tg_store_close(m->store);
    pthread_cond_destroy(&m->wake);
    pthread_cond_destroy(&m->done);
    pthread_mutex_destroy(&m->mu);
    free(m->url);
    free(m);
}
