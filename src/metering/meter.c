/* meter.c - see meter.h. Two threads, joined by queues under one mutex:
 *
 *   submits --> [writer: tg-meter] --> metering log (a durable append) --> callbacks
 *                                   \--> [applier: tg-meter-apply] --> store (bulk transactions)
 *
 * The writer takes everything queued at once (group commit), cuts it into records of at most
 * MAX_ROWS_PER_TX rows at submit boundaries (the rows of one call stay together), gives each
 * record a fresh batch id, appends it to the log and then runs the callbacks: a call is
 * answered (strict) once its usage is on the disk, and nothing else is on that path. The
 * applier stores what the writer logged every APPLY_NS, or sooner when asked (flush, stop, a
 * full log), several records per transaction with all their batch ids: the store applies a
 * batch id once, so a retried or replayed record never counts twice.
 *
 * There are two logs, appended to in turns (switch_logs): once the active one holds
 * LOG_SWITCH_BYTES, appends move to the other, and the full one is reset (a new generation,
 * written from its start) when everything in it is stored; the store commits with fsync, so at
 * that point the log is not needed. At the next start, whatever the logs still hold is replayed
 * into the store before anything else happens (tg_meter_start).
 *
 * Failures. A failed append is retried with backoff, 1 ms doubling to 1 s, and nothing is
 * dropped or answered meanwhile. A failed store transaction is retried the same way on a
 * freshly opened connection; the calls are already answered and safe in the log, which keeps
 * growing past LOG_SWITCH_BYTES until the store is back. Meanwhile at most HELD_ROWS_MAX rows
 * wait in memory: the writer then stops keeping copies and notes only where in the log the
 * records are (one entry, a spill, for a run of them), and the applier reads them back from
 * the log when it gets to them. At shutdown a failing log or store is
 * given STOP_GIVE_UP_NS: callbacks of calls that could not be logged get the error; records
 * logged but not stored stay in the log for the next start.
 *
 * Process durability moves the append onto the gateway's event loops: each loop commits its own
 * batch (tg_meter_batch_commit), one buffered write per loop iteration, and hands the record to
 * the applier as the writer does; the writer then only retries what a loop could not write,
 * switches the logs every flush_ms and fdatasyncs them every sync_ms. Appends to the active log, from any
 * thread, and the switch of the active log are serialised by log_mu; log_mu is taken before mu,
 * and a record is counted in records_logged under both (append_record), so that a log is never
 * reset while an append to it has not been counted. Nothing but the write happens under log_mu:
 * no sync, no backoff, no callback.
 *
 * Batch ids are taken under log_mu too, by the append that writes them (append_record): a node's
 * records then reach its logs in id order, and the oldest id a log holds is the first one
 * appended since its reset (oldest[]). tg_meter_oldest_replayable reads that, so that a node can
 * delete the usage_batches rows no replay will ask about again (metering/batch_prune.h): an id
 * taken outside the lock and appended later could fall below a bound already handed out. */
#include "metering/meter.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "metering/usage_log.h"
#include "util/clock.h"
#include "store/store.h"
#include "store/store_retention.h"
#include "util/log.h"
#include "util/thread_prio.h"

#define MAX_ROWS_PER_TX 10000            /* bounds one record's and one transaction's memory and lock time */
#define BATCH_WAKE_ROWS 4096             /* batched mode logs early once this much is waiting */
/* The store lags the log by about this much. The longer the wait, the more of a customer's calls
 * fold into one row of each total: at 50 ms the applier took 0.7 µs per call in bench/gateway.sh
 * (1,000 customers, 57,000 calls a second), at 200 ms 0.4-0.5 µs. Nothing reads the store's
 * totals on the request path (limits and quotas are in memory), and a flush (period closing, a
 * stop) does not wait for it. */
#define APPLY_NS (INT64_C(200) * 1000000)
#define LOG_SWITCH_BYTES (UINT64_C(8) << 20)
/* A process-mode batch's rows array starts at this many rows (tg_meter_batch_add). The applier
 * gives arrays of exactly this size back for the batches to reuse, at most SPARE_ROWS_MAX of them
 * (3 MiB): a new array per commit was a malloc of 24 KB on the event loop (past glibc's
 * per-thread cache: about 430 instructions) and its free on the applier, about 300 instructions
 * a call under callgrind (bench/callpath_instructions.sh). */
#define BATCH_ROWS_MIN 64
#define SPARE_ROWS_MAX 128
/* Rows logged and waiting for the store that are also kept in memory: about 24 MiB. Past this
 * (the database is down or far behind) records are kept only in the log and read back from it
 * when the store takes them, so an outage costs disk, not memory. Normally the store lags by
 * APPLY_NS, a few thousand rows. */
#define HELD_ROWS_MAX 65536
/* Rows submitted but not yet durable in the log, past which tg_meter_backlogged says so: about
 * 94 MiB, or five seconds of calls at 50,000 a second. Only a failing or full disk, or a disk
 * far slower than the calls, gets there; the gateway then refuses calls rather than serve
 * usage it could not record, and memory stays bounded. */
#define UNLOGGED_ROWS_MAX 262144
#define BACKOFF_MAX_MS 1000
#define STOP_GIVE_UP_NS (INT64_C(2) * 1000000000) /* at shutdown, retry a failing log or store this long */
#define LOG_SUFFIX "-usagelog.N"                  /* N: 1 or 2 */

typedef struct submit {
    tg_usage_t *rows; /* owned copy */
    size_t n;
    tg_meter_done_cb cb;
    void *arg;
    int64_t at_ns; /* monotonic submit time */
    int status;    /* writer only: 0 or the error that made it give up */
} submit_t;

/* A record on a log, waiting for the store, with its rows in memory; or a spill: a run of
 * consecutive records on one log whose rows were not kept in memory. */
typedef struct logged {
    uint64_t id;      /* a spill: 0 (its records' ids are in the log) */
    tg_usage_t *rows; /* owned; NULL when n is 0 and for a spill */
    size_t rows_cap;  /* rows allocated, when a batch's (BATCH_ROWS_MIN or more); else 0 */
    size_t n;         /* rows */
    uint64_t nsubs;   /* the submits it accounts for, for flush */
    int64_t at_ns;
    int log;              /* which of the two logs holds it */
    int done;             /* applier: stored, or refused for good; for a spill, how many of its records */
    size_t spilled;       /* a spill: its records (> 0) */
    uint64_t spill_start; /* a spill: where its records are in the log (tg_usage_log_used() values) */
    uint64_t spill_end;
} logged_t;

struct tg_meter {
    pthread_mutex_t log_mu; /* appends to the active log, `active`, `unsynced`; before mu */
    pthread_mutex_t mu;
    pthread_cond_t wake;       /* the writer waits here: work queued, flush or stop */
    pthread_cond_t apply_wake; /* the applier waits here: records logged, flush, reset or stop */
    pthread_cond_t done;       /* flushers and a resetting writer wait here for the applier */
    /* under mu */
    submit_t *q;
    size_t qlen, qcap, qrows;
    logged_t *a;
    size_t alen, acap, arows;
    size_t held_rows; /* rows of logged records kept in memory, in a and with the applier */
    tg_usage_t *spare_rows[SPARE_ROWS_MAX]; /* arrays of BATCH_ROWS_MIN rows for the batches */
    size_t nspare_rows;
    /* counted in submits, FIFO: seq_applied <= n means submits 1..n are stored; seq_called counts
     * the submits whose callbacks have fired (flush waits for them too) */
    uint64_t seq_submitted, seq_logged, seq_applied, seq_called, flush_seq;
    uint64_t records_logged[2], records_stored[2]; /* records with rows, per log, since the start */
    int stopping, writer_done, apply_now, store_failing;
    /* fixed after start */
    int durability, flush_ms, sync_ms;
    char *url;
    char *log_dir;             /* NULL: the logs sit beside the SQLite file */
    char node[TG_NODE_ID_MAX]; /* stored with every batch: ids are unique per node */
    pthread_t writer, applier;
    tg_usage_log_t *log[2];
    int (*before_log_reset)(void *arg, tg_err_t *err); /* tg_meter_opts_t */
    void *before_log_reset_arg;
    /* under log_mu */
    int active;      /* the log appended to; changed only by the writer */
    int unsynced[2]; /* process mode: buffered appends since the last fdatasync of that log */
    /* The smallest batch id in each log since its reset, NO_BATCH when it holds none: set under
     * log_mu by the first append after a reset; cleared once a reset is durable (reset_log, which
     * runs without log_mu while nobody appends to that log, hence atomic). */
    _Atomic uint64_t oldest[2];
    /* writer thread only */
    int64_t writer_stop_seen_ns, last_tick_ns, last_sync_ns;
    int sync_reported;
    /* applier thread only */
    tg_store_t *store;
    int64_t applier_stop_seen_ns;
    /* statistics, read by any thread */
    _Atomic uint64_t st_submitted, st_committed, st_applied, st_commits, st_failures, st_spilled, st_rejected, st_syncs;
    _Atomic int64_t st_lag;
    _Atomic int st_log_failing;
};

/* ---- event ids ---- */

/* 2025-01-01T00:00:00Z: 51 bits of microseconds from here last until 2096 (from the Unix epoch
 * they would run out in 2041). */
#define EVENT_EPOCH_US INT64_C(1735689600000000)

static _Atomic uint64_t last_event_id;

#define NO_BATCH UINT64_MAX /* oldest[i]: the log holds no record */

/* Microseconds since EVENT_EPOCH_US in the high 51 bits, a sequence in the low 12 bits, made
 * strictly increasing in the process by an atomic max (compare-and-swap):
 * - unique in the process: every id is a distinct value of one CAS-advanced word, whatever the
 *   threads; when more than 4096 ids are taken in one microsecond, ids run ahead of the clock
 *   and the clock catches up;
 * - unique across restarts: a new process starts from the current time, above every id the last
 *   one issued, unless the clock was stepped back by more than the downtime;
 * - the real clock, not tg_clock_now_ns: the test clock override moves billing time, and ids
 *   issued under a clock shifted forward would meet the ids of a later run without the shift;
 * - its coarse reading (the kernel's last tick, 1 to 4 ms old; 24 ns against 79 for the precise
 *   one on this VM under load, one read per proxied call): the time part then lags, never leads,
 *   so ids still never run ahead of the precise clock unless more than 4096 are taken in one
 *   microsecond, and a restart, which takes longer than a tick, still starts above them.
 * The meter uses them as batch ids, which the store applies once each. */
uint64_t tg_meter_next_event_id(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    int64_t us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 - EVENT_EPOCH_US;
    uint64_t base = us > 0 ? (uint64_t)us << 12 : 0;
    uint64_t old = atomic_load(&last_event_id), next;
    do {
        next = old + 1 > base ? old + 1 : base;
    } while (!atomic_compare_exchange_weak(&last_event_id, &old, next));
    return next;
}

uint64_t tg_meter_event_id_at(int64_t unix_s)
{
    if (unix_s > INT64_MAX / 1000000)
        return UINT64_MAX;
    int64_t us = unix_s * 1000000 - EVENT_EPOCH_US;
    return us > 0 ? (uint64_t)us << 12 : 0;
}

/* ---- both threads ---- */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int is_permanent(int rc)
{
    return rc == TG_ERANGE || rc == TG_EINVAL;
}

/* After a failure: 1 to give up (stopping for longer than STOP_GIVE_UP_NS). */
static int give_up(tg_meter_t *m, int64_t *stop_seen_ns)
{
    pthread_mutex_lock(&m->mu);
    int stopping = m->stopping;
    pthread_mutex_unlock(&m->mu);
    if (!stopping)
        return 0;
    int64_t now = tg_clock_mono_ns();
    if (*stop_seen_ns == 0)
        *stop_seen_ns = now;
    return now - *stop_seen_ns >= STOP_GIVE_UP_NS;
}

/* Sleeps *ms, then doubles it up to BACKOFF_MAX_MS. */
static void backoff(int *ms)
{
    sleep_ms(*ms);
    *ms = *ms * 2 < BACKOFF_MAX_MS ? *ms * 2 : BACKOFF_MAX_MS;
}

/* Storing, and in batched mode logging, is background work: no response waits for it. On a busy
 * machine a thread at normal priority takes its bursts (a fold is several milliseconds of CPU)
 * from the event loops and shows up in the gateway's tail latency; at nice 10 it runs in their
 * gaps. Measured on 2 cores in batched mode (bench/gateway.sh, medians of 3 rounds): the applier
 * at nice 10 took the gateway from 0.86 to 0.91 of nginx's throughput and its p99 from +0.62 to
 * +0.29 ms over nginx's; the writer too, 0.89 -> 0.90. Not 19, the closer's: the applier must
 * keep up with the usage the gateway records (util/thread_prio.h: a refusal is logged once and
 * leaves the thread at normal priority). */
static void lower_priority(void)
{
    tg_thread_lower_priority_or_warn(10, "the metering writer and applier (tg-meter, tg-meter-apply)");
}

/* ---- writer ---- */

/* Appends a record to the active log under a fresh batch id (*id), with log_mu held only for
 * the write: 0 with *li the log and [*pos, *end) where the record is in it (tg_usage_log_used()
 * values), or an error (a retry takes a new id: a failed append leaves nothing in the log). The
 * id is taken under log_mu (see the top of the file) and the record is counted in
 * records_logged before log_mu is released, so switch_logs never resets a log holding a record
 * the applier has not been given yet. */
static int append_record(tg_meter_t *m, uint64_t *id, const tg_usage_t *rows, size_t n, int *li, uint64_t *pos,
                         uint64_t *end, tg_err_t *err)
{
    pthread_mutex_lock(&m->log_mu);
    *li = m->active;
    *pos = tg_usage_log_used(m->log[*li]);
    *id = tg_meter_next_event_id();
    int rc = tg_usage_log_append(m->log[*li], *id, rows, n, err);
    if (rc == 0) {
        *end = tg_usage_log_used(m->log[*li]);
        m->unsynced[*li] = 1;
        if (atomic_load(&m->oldest[*li]) == NO_BATCH)
            atomic_store(&m->oldest[*li], *id);
        pthread_mutex_lock(&m->mu);
        m->records_logged[*li]++;
        pthread_mutex_unlock(&m->mu);
    }
    pthread_mutex_unlock(&m->log_mu);
    return rc;
}

/* Hands record `id` (n rows at [pos, end) of log li, counted by append_record), or a record that
 * was not logged (n == 0), to the applier. flat (owned, may be NULL; flat_cap rows allocated when
 * it is a batch's array, else 0) becomes the record's rows; NULL, or more rows than HELD_ROWS_MAX
 * allows, makes it a spill (read back from the log). With spare non-NULL, *spare is set to an
 * array of BATCH_ROWS_MIN rows the applier gave back (owned by the caller), or NULL. nsubs
 * submits are logged by it (flush counts them once the applier is done); `batch` says they were
 * never queued and are counted as submitted now, their callbacks already fired (a batch's fire
 * before this, on the loop); the writer counts its callbacks in seq_called after firing them. */
static void hand_to_applier(tg_meter_t *m, int li, uint64_t id, tg_usage_t *flat, size_t flat_cap, size_t n,
                            uint64_t nsubs, int64_t at_ns, uint64_t pos, uint64_t end, int batch, tg_usage_t **spare)
{
    pthread_mutex_lock(&m->mu);
    if (spare != NULL)
        *spare = m->nspare_rows > 0 ? m->spare_rows[--m->nspare_rows] : NULL;
    if (m->alen == m->acap) { /* rare: grows by doubling; a failed growth waits and retries */
        size_t cap = m->acap ? m->acap * 2 : 64;
        logged_t *a;
        while ((a = realloc(m->a, cap * sizeof(*a))) == NULL) {
            pthread_mutex_unlock(&m->mu);
            sleep_ms(10);
            pthread_mutex_lock(&m->mu);
        }
        m->a = a;
        m->acap = cap;
    }
    logged_t *last = m->alen > 0 ? &m->a[m->alen - 1] : NULL;
    if (n > 0 && (flat == NULL || m->held_rows + n > HELD_ROWS_MAX)) { /* a spill: the rows stay only in the log */
        free(flat);
        flat = NULL;
        atomic_fetch_add(&m->st_spilled, n);
        if (last != NULL && last->spilled > 0 && last->log == li && last->spill_end == pos) {
            last->n += n; /* extends the spill before it: one entry however long the outage */
            last->nsubs += nsubs;
            last->spilled++;
            last->spill_end = end;
        } else {
            m->a[m->alen++] = (logged_t){
                .n = n, .nsubs = nsubs, .at_ns = at_ns, .log = li, .spilled = 1, .spill_start = pos, .spill_end = end};
        }
    } else {
        m->held_rows += n;
        m->a[m->alen++] = (logged_t){
            .id = id, .rows = flat, .rows_cap = flat_cap, .n = n, .nsubs = nsubs, .at_ns = at_ns, .log = li};
    }
    m->arows += n;
    if (batch) {
        m->seq_submitted += nsubs;
        m->seq_called += nsubs;
    }
    m->seq_logged += nsubs;
    if (m->alen == 1 || m->arows >= MAX_ROWS_PER_TX || m->flush_seq > m->seq_applied)
        pthread_cond_signal(&m->apply_wake);
    pthread_mutex_unlock(&m->mu);
}

/* Appends the rows of subs[lo, hi) as one record, retrying failures; hands the record to the
 * applier and fires the callbacks. */
static void log_group(tg_meter_t *m, submit_t *subs, size_t lo, size_t hi)
{
    size_t n = 0;
    for (size_t i = lo; i < hi; i++)
        n += subs[i].n;
    tg_usage_t *flat = NULL;
    if (hi - lo == 1) { /* one submit: its copy becomes the record */
        flat = subs[lo].rows;
        subs[lo].rows = NULL;
    }
    uint64_t id = 0, pos = 0, end = 0;
    int rc = 0, backoff_ms = 1, reported = 0, li = 0;
    while (n > 0) {
        tg_err_t err = {0};
        if (flat == NULL && (flat = malloc(n * sizeof(*flat))) != NULL)
            for (size_t i = lo, k = 0; i < hi; k += subs[i].n, i++)
                if (subs[i].n > 0)
                    memcpy(flat + k, subs[i].rows, subs[i].n * sizeof(*flat));
        rc = flat == NULL ? tg_errf(&err, TG_ENOMEM, "out of memory logging usage")
                          : append_record(m, &id, flat, n, &li, &pos, &end, &err);
        atomic_store(&m->st_log_failing, rc != 0);
        if (rc == 0) {
            atomic_fetch_add(&m->st_commits, 1);
            atomic_fetch_add(&m->st_committed, n);
            atomic_store(&m->st_lag, tg_clock_mono_ns() - subs[lo].at_ns);
            if (reported)
                tg_log(TG_LOG_INFO, "meter: the metering log works again");
            break;
        }
        atomic_fetch_add(&m->st_failures, 1);
        if (!reported++)
            tg_log(TG_LOG_ERROR, "meter: %s (retrying; calls wait)", err.msg);
        if (is_permanent(rc) || give_up(m, &m->writer_stop_seen_ns))
            break;
        backoff(&backoff_ms);
    }
    if (rc != 0) { /* given up on: still counted as done for flush */
        free(flat);
        flat = NULL;
        n = 0;
    }
    /* Handed over before the callbacks fire, so that a call answered from its callback is
     * already held or spilled (the statistics add up); flush waits for the callbacks anyway. */
    hand_to_applier(m, li, id, flat, 0, n, hi - lo, subs[lo].at_ns, pos, end, 0, NULL);
    for (size_t i = lo; i < hi; i++)
        if (subs[i].cb != NULL)
            subs[i].cb(subs[i].arg, rc);
    pthread_mutex_lock(&m->mu);
    m->seq_called += hi - lo;
    pthread_cond_broadcast(&m->done);
    pthread_mutex_unlock(&m->mu);
}

/* Resets log i, whose records are all stored, once the caller's hook made durable what must
 * outlive them (tg_meter_opts_t.before_log_reset). */
static int reset_log(tg_meter_t *m, int i, tg_err_t *err)
{
    if (m->before_log_reset != NULL && tg_usage_log_used(m->log[i]) > 0) {
        int rc = m->before_log_reset(m->before_log_reset_arg, err);
        if (rc != 0)
            return rc;
    }
    int rc = tg_usage_log_reset(m->log[i], err);
    if (rc == 0)
        atomic_store(&m->oldest[i], NO_BATCH);
    return rc;
}

uint64_t tg_meter_oldest_replayable(tg_meter_t *m, int *in_log)
{
    /* Under log_mu no append is between taking its id and counting it in oldest[]. With both logs
     * empty, an id is taken (not last_event_id read: after a restart that is 0 until a first
     * append): every batch id taken after it is above it, as ids only grow. */
    pthread_mutex_lock(&m->log_mu);
    uint64_t a = atomic_load(&m->oldest[0]), b = atomic_load(&m->oldest[1]);
    uint64_t oldest = a < b ? a : b;
    *in_log = oldest != NO_BATCH;
    if (oldest == NO_BATCH)
        oldest = tg_meter_next_event_id();
    pthread_mutex_unlock(&m->log_mu);
    return oldest;
}

const char *tg_meter_node(const tg_meter_t *m)
{
    return m->node;
}

/* Two logs take turns, so that retiring one never holds an append: once the active log holds
 * LOG_SWITCH_BYTES and the other is empty, appends move to the other; the full one is reset as
 * soon as the applier has stored all of it. If the applier is behind (or the database is down),
 * the active log just grows. */
static void switch_logs(tg_meter_t *m)
{
    /* Under log_mu every append to `other` has been counted in records_logged (it is not the
     * active log, and only this thread makes it so); it is then reset without the lock, as
     * nobody appends to it, so the loops' appends never wait for the reset's sync. */
    pthread_mutex_lock(&m->log_mu);
    int other = 1 - m->active;
    int full = tg_usage_log_used(m->log[m->active]) >= LOG_SWITCH_BYTES;
    pthread_mutex_lock(&m->mu);
    int other_stored = m->records_stored[other] == m->records_logged[other];
    if (full) { /* store the full log now rather than at the deadline */
        m->apply_now = 1;
        pthread_cond_signal(&m->apply_wake);
    }
    pthread_mutex_unlock(&m->mu);
    pthread_mutex_unlock(&m->log_mu);
    tg_err_t err = {0};
    if (other_stored && tg_usage_log_used(m->log[other]) > 0 && reset_log(m, other, &err) != 0)
        tg_log(TG_LOG_WARN, "meter: %s (the log keeps its records; retried later)", err.msg);
    pthread_mutex_lock(&m->log_mu);
    if (full && tg_usage_log_used(m->log[other]) == 0)
        m->active = other;
    pthread_mutex_unlock(&m->log_mu);
}

/* Process mode, writer thread: fdatasyncs each log that buffered appends wrote to since its last
 * sync, so that a power cut loses at most about sync_ms of answered calls. A failed sync is
 * said once and retried at the next tick (the appends stay in the page cache meanwhile). */
static void sync_logs(tg_meter_t *m)
{
    m->last_sync_ns = tg_clock_mono_ns();
    for (int i = 0; i < 2; i++) {
        pthread_mutex_lock(&m->log_mu);
        int dirty = m->unsynced[i];
        m->unsynced[i] = 0;
        pthread_mutex_unlock(&m->log_mu);
        tg_err_t err = {0};
        if (!dirty)
            continue;
        if (tg_usage_log_sync(m->log[i], &err) == 0) {
            atomic_fetch_add(&m->st_syncs, 1);
            if (m->sync_reported) {
                tg_log(TG_LOG_INFO, "meter: syncing the metering log works again");
                m->sync_reported = 0;
            }
            continue;
        }
        atomic_fetch_add(&m->st_failures, 1);
        if (!m->sync_reported++)
            tg_log(TG_LOG_ERROR, "meter: %s (retried every sync_ms; answered calls are in the page cache)", err.msg);
        pthread_mutex_lock(&m->log_mu);
        m->unsynced[i] = 1;
        pthread_mutex_unlock(&m->log_mu);
    }
}

/* Batched mode: with mu held and the queue not empty, waits until the oldest submit is flush_ms
 * old, the queue holds BATCH_WAKE_ROWS, or a flush or stop asks for it now. */
static void wait_for_batch(tg_meter_t *m)
{
    int64_t deadline = m->q[0].at_ns + (int64_t)m->flush_ms * 1000000;
    for (;;) {
        int64_t now = tg_clock_mono_ns();
        if (now >= deadline || m->flush_seq > m->seq_logged || m->stopping || m->qrows >= BATCH_WAKE_ROWS)
            return;
        /* wake uses CLOCK_MONOTONIC (see tg_meter_start), the clock of tg_clock_mono_ns. */
        struct timespec abs_ts = {(time_t)(deadline / 1000000000), (long)(deadline % 1000000000)};
        pthread_cond_timedwait(&m->wake, &m->mu, &abs_ts);
    }
}

static void free_submits(submit_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s[i].rows);
    free(s);
}

static void *writer_main(void *arg)
{
    tg_meter_t *m = arg;
    pthread_setname_np(pthread_self(), "tg-meter");
    if (m->durability != TG_METER_STRICT) /* in strict mode responses wait for the writer */
        lower_priority();
    int process = m->durability == TG_METER_PROCESS;
    m->last_tick_ns = m->last_sync_ns = tg_clock_mono_ns();
    pthread_mutex_lock(&m->mu);
    for (;;) {
        while (m->qlen == 0 && !m->stopping) {
            if (!process) {
                pthread_cond_wait(&m->wake, &m->mu);
                continue;
            }
            /* process: a tick every flush_ms switches the logs, and every sync_ms it first
             * syncs what the loops wrote */
            int64_t deadline = m->last_tick_ns + (int64_t)m->flush_ms * 1000000, now = tg_clock_mono_ns();
            if (now >= deadline) {
                pthread_mutex_unlock(&m->mu);
                m->last_tick_ns = now;
                if (now - m->last_sync_ns >= (int64_t)m->sync_ms * 1000000)
                    sync_logs(m);
                switch_logs(m);
                pthread_mutex_lock(&m->mu);
                continue;
            }
            struct timespec abs_ts = {(time_t)(deadline / 1000000000), (long)(deadline % 1000000000)};
            pthread_cond_timedwait(&m->wake, &m->mu, &abs_ts);
        }
        if (m->qlen == 0) /* stopping, and everything is logged */
            break;
        if (m->durability == TG_METER_BATCHED && !m->stopping)
            wait_for_batch(m);
        /* Group commit: take everything queued so far; what arrives meanwhile is the next group. */
        submit_t *subs = m->q;
        size_t nsubs = m->qlen;
        m->q = NULL;
        m->qlen = m->qcap = m->qrows = 0;
        pthread_mutex_unlock(&m->mu);
        for (size_t lo = 0; lo < nsubs;) {
            size_t hi = lo, rows = 0;
            while (hi < nsubs && (hi == lo || rows + subs[hi].n <= MAX_ROWS_PER_TX))
                rows += subs[hi++].n;
            log_group(m, subs, lo, hi);
            lo = hi;
        }
        free_submits(subs, nsubs);
        switch_logs(m);
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    if (process) /* a clean stop leaves nothing the disk lacks */
        sync_logs(m);
    pthread_mutex_lock(&m->mu);
    m->writer_done = 1;
    pthread_cond_signal(&m->apply_wake);
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* ---- applier ---- */

/* Rows the store kept aside rather than adding them to the totals (a value no total can take):
 * said once per transaction, with the first reason, and counted; the rest of the batch is
 * stored, and nothing is retried (the batch id is stored with them). */
static void report_rejected(tg_meter_t *m, size_t rejected, uint64_t first_batch, size_t nbatches, const char *reason)
{
    atomic_fetch_add(&m->st_rejected, rejected);
    tg_log(TG_LOG_WARN,
            "meter: %zu usage row(s) of batch %llu%s cannot be added to the totals and were kept aside "
            "(GET /v1/admin/metering/rejected): %s; the rest of the batch is stored",
            rejected, (unsigned long long)first_batch, nbatches > 1 ? " and the batches stored with it" : "", reason);
}

/* Stores records [lo, hi) in one transaction, retrying transient failures on a fresh
 * connection. Returns 0, a permanent error, or a transient one after give_up. */
static int store_records(tg_meter_t *m, const logged_t *recs, size_t lo, size_t hi, int *reported)
{
    tg_usage_batch_t *b = malloc((hi - lo) * sizeof(*b));
    size_t nb = 0;
    for (size_t i = lo; b != NULL && i < hi; i++)
        if (recs[i].n > 0)
            b[nb++] = (tg_usage_batch_t){recs[i].id, recs[i].rows, recs[i].n, m->node};
    int backoff_ms = 1;
    for (;;) {
        tg_err_t err = {0};
        int rc = 0;
        size_t rows = 0;
        if (b == NULL)
            rc = tg_errf(&err, TG_ENOMEM, "out of memory storing usage");
        else if (m->store == NULL)
            rc = tg_store_open(m->url, &m->store, &err);
        tg_usage_stored_t stored = {0};
        if (rc == 0 && nb > 0)
            rc = tg_store_usage_record_many(m->store, b, nb, &stored, &err);
        for (size_t i = 0; rc == 0 && i < nb; i++)
            rows += b[i].n;
        if (rc == 0) {
            atomic_fetch_add(&m->st_applied, rows);
            if (stored.rejected > 0)
                report_rejected(m, stored.rejected, b[0].id, nb, stored.reason);
            if (*reported) {
                tg_log(TG_LOG_INFO, "meter: storing usage works again");
                *reported = 0;
            }
        } else if (rc != TG_EEXIST) {
            atomic_fetch_add(&m->st_failures, 1);
            if (!(*reported)++)
                tg_log(TG_LOG_ERROR, "meter: %s (retrying; the calls are safe in the metering log)", err.msg);
        }
        pthread_mutex_lock(&m->mu);
        m->store_failing = rc != 0 && rc != TG_EEXIST && !is_permanent(rc);
        if (m->store_failing)
            pthread_cond_broadcast(&m->done); /* a writer waiting to reset the log stops waiting */
        pthread_mutex_unlock(&m->mu);
        if (rc == 0 || rc == TG_EEXIST || is_permanent(rc) || give_up(m, &m->applier_stop_seen_ns)) {
            free(b);
            return rc;
        }
        if (rc != TG_ENOMEM) {
            tg_store_close(m->store);
            m->store = NULL;
        }
        backoff(&backoff_ms);
    }
}

/* Stores records held in memory in transactions of up to MAX_ROWS_PER_TX rows and marks each
 * one done that is stored or refused for good. Records stored before (a retry after an
 * uncertain commit) or refused for good are narrowed down to one record at a time. Returns the
 * rows not stored because the meter is stopping. */
static size_t store_held(tg_meter_t *m, logged_t *recs, size_t nrecs, int *reported)
{
    size_t left = 0;
    for (size_t lo = 0; lo < nrecs;) {
        size_t hi = lo, rows = 0;
        while (hi < nrecs && (hi == lo || rows + recs[hi].n <= MAX_ROWS_PER_TX))
            rows += recs[hi++].n;
        int rc = store_records(m, recs, lo, hi, reported);
        if (rc == 0) {
            for (size_t i = lo; i < hi; i++)
                recs[i].done = 1;
        } else if (rc == TG_EEXIST || is_permanent(rc)) {
            for (size_t i = lo; i < hi; i++) {
                if (recs[i].n == 0)
                    continue;
                int one = hi - lo > 1 ? store_records(m, recs, i, i + 1, reported) : rc;
                /* The store keeps rows it cannot total aside (usage_rejected) and stores the
                 * rest, so what it refuses for good is only a record no run of this meter
                 * writes: a batch id past 2^63-1 or more rows than MAX_ROWS_PER_TX. */
                if (is_permanent(one))
                    tg_log(TG_LOG_ERROR, "meter: usage batch %llu can never be stored and is dropped",
                            (unsigned long long)recs[i].id);
                recs[i].done = one == 0 || is_permanent(one);
            }
        } else {
            left += rows;
        }
        lo = hi;
    }
    return left;
}

/* Stores the records of a spill, reading them back from the log about MAX_ROWS_PER_TX rows at
 * a time, so that only that much of an outage's usage is in memory at once. A failed read is
 * retried with backoff (the records are on the disk: the log was written and synced). Sets
 * spill->done to the number of its records stored or refused for good; returns the rows not
 * stored because the meter is stopping. */
static size_t store_spill(tg_meter_t *m, logged_t *spill, int *reported)
{
    logged_t *recs = NULL;
    size_t nrecs = 0, cap = 0, rows = 0, handed = 0, left = 0;
    uint64_t pos = spill->spill_start;
    int backoff_ms = 1;
    for (;;) {
        if (pos < spill->spill_end && rows < MAX_ROWS_PER_TX) {
            tg_err_t err = {0};
            uint64_t next = pos, id = 0;
            tg_usage_t *r = NULL;
            size_t n = 0;
            int rc = 0;
            if (nrecs == cap) {
                size_t c = cap ? cap * 2 : 64;
                logged_t *g = realloc(recs, c * sizeof(*g));
                if (g == NULL)
                    rc = tg_errf(&err, TG_ENOMEM, "out of memory reading usage back from the metering log");
                else
                    recs = g, cap = c;
            }
            if (rc == 0 && (rc = tg_usage_log_read(m->log[spill->log], &next, &id, &r, &n, &err)) == 0 &&
                next > spill->spill_end) {
                free(r);
                rc = tg_errf(&err, TG_ESTORE, "the metering log %s has a record past the usage it was given",
                             tg_usage_log_path(m->log[spill->log]));
            }
            if (rc == 0) {
                recs[nrecs++] = (logged_t){.id = id, .rows = r, .n = n, .log = spill->log};
                rows += n;
                pos = next;
                backoff_ms = 1;
                continue;
            }
            atomic_fetch_add(&m->st_failures, 1);
            if (!(*reported)++)
                tg_log(TG_LOG_ERROR, "meter: %s (retrying; the calls are safe in the metering log)", err.msg);
            if (give_up(m, &m->applier_stop_seen_ns))
                break;
            backoff(&backoff_ms);
            continue;
        }
        if (nrecs == 0)
            break;
        size_t not_stored = store_held(m, recs, nrecs, reported);
        for (size_t i = 0; i < nrecs; i++) {
            spill->done += recs[i].done;
            free(recs[i].rows);
        }
        handed += rows;
        nrecs = rows = 0;
        if (not_stored > 0) { /* stopping, and the store is failing: the rest stays in the log */
            left = not_stored;
            break;
        }
    }
    for (size_t i = 0; i < nrecs; i++)
        free(recs[i].rows);
    free(recs);
    return left + (spill->n - handed);
}

/* Stores everything the applier took: the records held in memory, and the spills read back. */
static void store_all(tg_meter_t *m, logged_t *recs, size_t nrecs, int *reported)
{
    size_t left = 0; /* rows not stored before the stop */
    for (size_t i = 0; i < nrecs;) {
        size_t j = i;
        while (j < nrecs && recs[j].spilled == 0)
            j++;
        left += store_held(m, recs + i, j - i, reported);
        if (j < nrecs)
            left += store_spill(m, &recs[j++], reported);
        i = j;
    }
    if (left > 0)
        tg_log(TG_LOG_WARN,
                "meter: %zu usage rows could not be stored before the stop; they stay in the metering log "
                "and are stored at the next start",
                left);
}

static void *applier_main(void *arg)
{
    tg_meter_t *m = arg;
    pthread_setname_np(pthread_self(), "tg-meter-apply");
    lower_priority();
    int reported = 0;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        while (m->alen == 0 && !m->writer_done)
            pthread_cond_wait(&m->apply_wake, &m->mu);
        if (m->alen == 0) /* the writer is done and everything is stored */
            break;
        int64_t deadline = m->a[0].at_ns + APPLY_NS;
        while (!m->writer_done && !m->apply_now && m->flush_seq <= m->seq_applied && m->arows < MAX_ROWS_PER_TX &&
               tg_clock_mono_ns() < deadline) {
            struct timespec abs_ts = {(time_t)(deadline / 1000000000), (long)(deadline % 1000000000)};
            pthread_cond_timedwait(&m->apply_wake, &m->mu, &abs_ts);
        }
        logged_t *recs = m->a;
        size_t nrecs = m->alen;
        m->a = NULL;
        m->alen = m->acap = m->arows = 0;
        m->apply_now = 0;
        pthread_mutex_unlock(&m->mu);

        store_all(m, recs, nrecs, &reported);
        uint64_t nsubs = 0, stored[2] = {0, 0};
        size_t held = 0, nkeep = 0;
        tg_usage_t *keep[SPARE_ROWS_MAX]; /* batch arrays to give back (under mu, below) */
        for (size_t i = 0; i < nrecs; i++) {
            nsubs += recs[i].nsubs;
            held += recs[i].spilled ? 0 : recs[i].n;
            stored[recs[i].log] += recs[i].spilled ? (size_t)recs[i].done : (size_t)(recs[i].n > 0 && recs[i].done);
            if (recs[i].rows_cap == BATCH_ROWS_MIN && nkeep < SPARE_ROWS_MAX)
                keep[nkeep++] = recs[i].rows;
            else
                free(recs[i].rows);
        }
        free(recs);
        /* A failed fold leaves the batches in the journal, where readers still find them. */
        if (m->store != NULL) {
            tg_err_t ferr = {0};
            if (tg_store_usage_fold(m->store, 0, &ferr) != 0)
                tg_log(TG_LOG_ERROR, "meter: %s (retried in a second)", ferr.msg);
        }
        pthread_mutex_lock(&m->mu);
        while (nkeep > 0 && m->nspare_rows < SPARE_ROWS_MAX)
            m->spare_rows[m->nspare_rows++] = keep[--nkeep];
        while (nkeep > 0) /* the spares are full: the batches are not taking them */
            free(keep[--nkeep]);
        m->seq_applied += nsubs;
        m->held_rows -= held;
        m->records_stored[0] += stored[0];
        m->records_stored[1] += stored[1];
        pthread_cond_broadcast(&m->done);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* ---- start: replay what the last run left in the log ---- */

typedef struct replay {
    tg_meter_t *m;
    const char *node;
    tg_err_t *err;
    size_t records, rows;
    uint64_t oldest; /* the smallest batch id read, NO_BATCH if none */
} replay_t;

static int replay_record(void *arg, uint64_t batch_id, const tg_usage_t *rows, size_t n)
{
    replay_t *r = arg;
    if (batch_id < r->oldest)
        r->oldest = batch_id;
    tg_usage_batch_t b = {batch_id, rows, n, r->node};
    tg_usage_stored_t stored = {0};
    int rc = tg_store_usage_record_many(r->m->store, &b, 1, &stored, r->err);
    size_t inserted = rc == 0 ? stored.inserted : 0;
    if (rc == 0 && stored.rejected > 0)
        report_rejected(r->m, stored.rejected, batch_id, 1, stored.reason);
    if (is_permanent(rc)) { /* the same refusal every start: it must not keep the gateway down */
        tg_log(TG_LOG_ERROR, "meter: usage batch %llu in the metering log can never be stored: %s",
                (unsigned long long)batch_id, r->err->msg);
        return 0;
    }
    r->records += inserted > 0;
    r->rows += inserted;
    return rc;
}

/* The path of log i (0 or 1): "<db>-usagelog.N" beside a SQLite file, or in log_dir
 * "usage-<node>-N.log" ("usage-N.log" for a node without an id), so that the node a log
 * belongs to can be read from its name when another machine recovers it. */
char *tg_meter_log_path(const char *url, const char *log_dir, const char *node, int i, tg_err_t *err)
{
    char *path = NULL;
    int n;
    if (log_dir != NULL)
        n = *node != '\0' ? asprintf(&path, "%s/usage-%s-%d.log", log_dir, node, i + 1)
                          : asprintf(&path, "%s/usage-%d.log", log_dir, i + 1);
    else if (strncmp(url, "sqlite:", 7) == 0)
        n = asprintf(&path, "%s-usagelog.%d", url + 7, i + 1);
    else {
        tg_errf(err, TG_EINVAL, "metering needs a log directory (metering.log_dir) with %.40s...", url);
        return NULL;
    }
    if (n < 0) {
        tg_errf(err, TG_ENOMEM, "out of memory");
        return NULL;
    }
    return path;
}

/* Applies every record of log to st under `node`, then resets the log. */
static int replay_log(tg_meter_t *m, tg_usage_log_t *log, const char *node, replay_t *r, tg_err_t *err)
{
    *r = (replay_t){m, node, err, 0, 0, NO_BATCH};
    int rc = tg_usage_log_replay(log, replay_record, r, err);
    if (rc == 0 && r->records > 0)
        tg_log(TG_LOG_INFO, "meter: stored the usage the last run left in %s (%zu rows, %zu batches)",
                tg_usage_log_path(log), r->rows, r->records);
    return rc;
}

static int open_and_replay_logs(tg_meter_t *m, tg_err_t *err)
{
    int rc = 0;
    if (m->log_dir != NULL && mkdir(m->log_dir, 0750) != 0 && errno != EEXIST)
        return tg_errf(err, TG_EIO, "creating the metering log directory %s: %s", m->log_dir, strerror(errno));
    tg_usage_log_mode_t mode = m->durability == TG_METER_PROCESS ? TG_USAGE_LOG_BUFFERED : TG_USAGE_LOG_DURABLE;
    for (int i = 0; i < 2 && rc == 0; i++) {
        char *path = tg_meter_log_path(m->url, m->log_dir, m->node, i, err);
        rc = path == NULL ? err->code : tg_usage_log_open_mode(path, mode, &m->log[i], err);
        free(path);
    }
    /* Records are applied once each by batch id, in any order: the two logs replay one after
     * the other. */
    for (int i = 0; i < 2 && rc == 0; i++) {
        replay_t r;
        rc = replay_log(m, m->log[i], m->node, &r, err);
        atomic_store(&m->oldest[i], r.oldest); /* NO_BATCH again once reset below */
    }
    /* Everything replayed is committed (with fsync) in the store: the logs start over. */
    for (int i = 0; i < 2 && rc == 0; i++)
        rc = reset_log(m, i, err);
    return rc;
}

static void free_meter(tg_meter_t *m);
static int valid_node(const char *s);

/* ---- recovering another node's logs ---- */

/* The node a log file in a log directory belongs to, from its name: "usage-<node>-N.log" ->
 * node, "usage-N.log" -> "", "<db>-usagelog.N" -> "". 0 if the name is not a metering log's. */
static int log_file_node(const char *name, char node[TG_NODE_ID_MAX])
{
    size_t n = strlen(name);
    node[0] = '\0';
    if (n > 11 && strncmp(name + n - 11, "-usagelog.", 10) == 0 && (name[n - 1] == '1' || name[n - 1] == '2'))
        return 1;
    if (n < 11 || strncmp(name, "usage-", 6) != 0 || strcmp(name + n - 4, ".log") != 0 ||
        (name[n - 5] != '1' && name[n - 5] != '2'))
        return 0;
    if (n == 11) /* usage-N.log */
        return 1;
    size_t len = n - 6 - 6; /* between "usage-" and "-N.log" */
    if (name[n - 6] != '-' || len == 0 || len >= TG_NODE_ID_MAX)
        return 0;
    memcpy(node, name + 6, len);
    node[len] = '\0';
    return valid_node(node);
}

/* Adds node to out->nodes unless it is there: 0, or -1 when the list is full. */
static int recovered_node(tg_meter_recovered_t *out, const char *node)
{
    for (size_t i = 0; i < out->nnodes; i++)
        if (strcmp(out->nodes[i], node) == 0)
            return 0;
    if (out->nnodes == TG_METER_RECOVER_NODES_MAX)
        return -1;
    memcpy(out->nodes[out->nnodes++], node, strlen(node) + 1);
    return 0;
}

int tg_meter_recover(const char *store_url, const char *log_dir, int flags, tg_meter_recovered_t *out, tg_err_t *err)
{
    memset(out, 0, sizeof(*out));
    DIR *dir = opendir(log_dir);
    if (dir == NULL)
        return tg_errf(err, TG_EIO, "reading the metering log directory %s: %s", log_dir, strerror(errno));
    tg_meter_t *m = calloc(1, sizeof(*m));
    int rc = m == NULL ? tg_errf(err, TG_ENOMEM, "out of memory") : tg_store_open(store_url, &m->store, err);
    struct dirent *de;
    while (rc == 0 && (de = readdir(dir)) != NULL) {
        char node[TG_NODE_ID_MAX], *path = NULL;
        if (!log_file_node(de->d_name, node))
            continue;
        if (recovered_node(out, node) < 0) {
            rc = tg_errf(err, TG_EINVAL, "%s holds the metering logs of more than %d nodes: recover them from one directory per node",
                         log_dir, TG_METER_RECOVER_NODES_MAX);
            break;
        }
        if (asprintf(&path, "%s/%s", log_dir, de->d_name) < 0) {
            rc = tg_errf(err, TG_ENOMEM, "out of memory");
            break;
        }
        tg_usage_log_t *log = NULL;
        replay_t r;
        rc = tg_usage_log_open(path, &log, err); /* TG_ESTATE: a running gateway holds it */
        if (rc == 0)
            rc = replay_log(m, log, node, &r, err);
        if (rc == 0)
            rc = tg_usage_log_reset(log, err); /* every record is stored, durably */
        if (rc == 0) {
            out->logs++;
            out->batches += r.records;
            out->rows += r.rows;
        }
        tg_usage_log_close(log);
        free(path);
    }
    closedir(dir);
    /* Every log of these nodes is empty now, each of its records stored: with RETIRE, the
     * nodes are drained (store_retention.h), and their usage_batches rows go an hour later
     * (metering/batch_prune.h). Only after the resets: a drain recorded before them could let
     * the rows of records still in a log go. */
    int64_t now_s = (int64_t)time(NULL);
    for (size_t i = 0; rc == 0 && (flags & TG_METER_RECOVER_RETIRE) && i < out->nnodes; i++)
        if ((rc = tg_store_node_drained(m->store, out->nodes[i], now_s, err)) == 0)
            out->retired++;
    if (m != NULL)
        free_meter(m);
    return rc;
}

/* ---- API ---- */

static void free_meter(tg_meter_t *m)
{
    for (size_t i = 0; i < m->nspare_rows; i++)
        free(m->spare_rows[i]);
    tg_usage_log_close(m->log[0]);
    tg_usage_log_close(m->log[1]);
    tg_store_close(m->store);
    free(m->url);
    free(m->log_dir);
    free(m);
}

int tg_meter_start(const char *store_url, int durability, int flush_ms, tg_meter_t **out, tg_err_t *err)
{
    tg_meter_opts_t o = {.store_url = store_url, .durability = durability, .flush_ms = flush_ms};
    return tg_meter_start_opts(&o, out, err);
}

/* A node id as it may appear in a file name and a batch key. */
static int valid_node(const char *s)
{
    size_t n = strlen(s);
    if (n >= TG_NODE_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '-' || s[i] == '_' || s[i] == '.'))
            return 0;
    return 1;
}

int tg_meter_start_opts(const tg_meter_opts_t *o, tg_meter_t **out, tg_err_t *err)
{
    *out = NULL;
    const char *store_url = o->store_url;
    int durability = o->durability, flush_ms = o->flush_ms;
    const char *node = o->node_id != NULL ? o->node_id : "";
    if (store_url == NULL)
        return tg_errf(err, TG_EINVAL, "the meter needs a storage URL");
    if (durability != TG_METER_BATCHED && durability != TG_METER_STRICT && durability != TG_METER_PROCESS)
        return tg_errf(err, TG_EINVAL, "durability %d: batched (0), strict (1) or process (2)", durability);
    if (!valid_node(node))
        return tg_errf(err, TG_EINVAL, "node id \"%.80s\": use up to %d letters, digits, '-', '_' or '.'", node,
                       TG_NODE_ID_MAX - 1);
    tg_meter_t *m = calloc(1, sizeof(*m));
    if (m == NULL || (m->url = strdup(store_url)) == NULL ||
        (o->log_dir != NULL && (m->log_dir = strdup(o->log_dir)) == NULL)) {
        if (m != NULL)
            free(m->url);
        free(m);
        return tg_errf(err, TG_ENOMEM, "out of memory starting the meter");
    }
    memcpy(m->node, node, strlen(node) + 1);
    atomic_init(&m->oldest[0], NO_BATCH);
    atomic_init(&m->oldest[1], NO_BATCH);
    m->durability = durability;
    m->flush_ms = flush_ms > 0 ? flush_ms : 1;
    m->sync_ms = o->sync_ms > 0 ? o->sync_ms : TG_METER_SYNC_MS_DEFAULT;
    m->before_log_reset = o->before_log_reset;
    m->before_log_reset_arg = o->before_log_reset_arg;
    /* Opened here so that a bad URL, an unreadable database or a log held by another process
     * fails the start, not the first call; from now on only the applier uses the store. */
    int rc = tg_store_open(store_url, &m->store, err);
    if (rc == 0)
        rc = open_and_replay_logs(m, err);
    if (rc != 0) {
        free_meter(m);
        return rc;
    }
    /* Running again: this node prunes its own rows, as far as its logs allow, so a drain
     * recorded at its last stop must not let another node prune them (metering/batch_prune.h). */
    tg_err_t ferr = {0};
    if (tg_store_drained_node_forget(m->store, m->node, TG_DRAINED_ANY, &ferr) != 0)
        tg_log(TG_LOG_WARN, "meter: taking back this node's drain: %s", ferr.msg);
    pthread_mutex_init(&m->log_mu, NULL);
    pthread_mutex_init(&m->mu, NULL);
    tg_clock_cond_init(&m->wake);
    tg_clock_cond_init(&m->apply_wake);
    pthread_cond_init(&m->done, NULL);
    if (pthread_create(&m->applier, NULL, applier_main, m) != 0) {
        rc = tg_errf(err, TG_EIO, "cannot start the metering threads");
    } else if (pthread_create(&m->writer, NULL, writer_main, m) != 0) {
        pthread_mutex_lock(&m->mu);
        m->writer_done = 1;
        pthread_cond_signal(&m->apply_wake);
        pthread_mutex_unlock(&m->mu);
        pthread_join(m->applier, NULL);
        rc = tg_errf(err, TG_EIO, "cannot start the metering threads");
    }
    if (rc != 0) {
        pthread_cond_destroy(&m->wake);
        pthread_cond_destroy(&m->apply_wake);
        pthread_cond_destroy(&m->done);
        pthread_mutex_destroy(&m->mu);
        pthread_mutex_destroy(&m->log_mu);
        free_meter(m);
        return rc;
    }
    *out = m;
    return 0;
}

int tg_meter_submit(tg_meter_t *m, const tg_usage_t *rows, size_t n, tg_meter_done_cb cb, void *arg)
{
    /* Refused here, not in the writer: a record that can never be stored must not wait for it. */
    for (size_t i = 0; i < n; i++) {
        if (rows[i].units > (uint64_t)INT64_MAX)
            return TG_ERANGE;
        if (!tg_usage_terminated(&rows[i]))
            return TG_EINVAL;
    }
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
     * submit, or when a batched queue is full enough to log early. */
    if (m->qlen == 1 || m->qrows >= BATCH_WAKE_ROWS)
        pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

/* ---- process durability: a loop's own batch ---- */

typedef struct batch_call {
    size_t lo, n; /* its rows in the batch */
    tg_meter_done_cb cb;
    void *arg;
} batch_call_t;

struct tg_meter_batch {
    tg_meter_t *m;
    tg_usage_t *rows; /* until a commit hands them to the applier; NULL: none yet */
    size_t n, cap;
    batch_call_t *calls;
    size_t ncalls, callcap;
    int64_t first_ns; /* monotonic time of the first add since the last commit */
    int reported;     /* a failed append was said; said again when one works */
};

tg_meter_batch_t *tg_meter_batch_new(tg_meter_t *m)
{
    tg_meter_batch_t *b = calloc(1, sizeof(*b));
    if (b != NULL)
        b->m = m;
    return b;
}

int tg_meter_batch_add(tg_meter_batch_t *b, const tg_usage_t *rows, size_t n, tg_meter_done_cb cb, void *arg)
{
    for (size_t i = 0; i < n; i++) { /* as tg_meter_submit */
        if (rows[i].units > (uint64_t)INT64_MAX)
            return TG_ERANGE;
        if (!tg_usage_terminated(&rows[i]))
            return TG_EINVAL;
    }
    if (n > SIZE_MAX / sizeof(*rows) / 2 - b->n)
        return TG_ENOMEM;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : BATCH_ROWS_MIN;
        while (cap < b->n + n)
            cap *= 2;
        tg_usage_t *r = realloc(b->rows, cap * sizeof(*r));
        if (r == NULL)
            return TG_ENOMEM;
        b->rows = r;
        b->cap = cap;
    }
    if (b->ncalls == b->callcap) {
        size_t cap = b->callcap ? b->callcap * 2 : 64;
        batch_call_t *c = realloc(b->calls, cap * sizeof(*c));
        if (c == NULL)
            return TG_ENOMEM;
        b->calls = c;
        b->callcap = cap;
    }
    if (b->ncalls == 0)
        b->first_ns = tg_clock_mono_ns();
    if (n > 0)
        memcpy(b->rows + b->n, rows, n * sizeof(*rows));
    b->calls[b->ncalls++] = (batch_call_t){b->n, n, cb, arg};
    b->n += n;
    return 0;
}

int tg_meter_batch_pending(const tg_meter_batch_t *b)
{
    return b->ncalls > 0;
}

/* Fires the callbacks of calls [0, ncalls) with status. b->calls is read afresh each time: a
 * callback may add to the batch (a response released from it that leads to another call being
 * settled on the same loop), which may move the array. */
static void batch_fire(tg_meter_batch_t *b, size_t ncalls, int status)
{
    for (size_t i = 0; i < ncalls; i++)
        if (b->calls[i].cb != NULL)
            b->calls[i].cb(b->calls[i].arg, status);
}

void tg_meter_batch_commit(tg_meter_batch_t *b)
{
    tg_meter_t *m = b->m;
    size_t ncalls = b->ncalls, n = b->n; /* what this commit writes; adds from callbacks wait */
    if (ncalls == 0)
        return;
    size_t consumed = n; /* rows of b->rows this commit used (0: the array went to the applier) */
    int rc = 0;
    tg_err_t err = {0};
    if (n > 0) {
        /* The applier takes the batch's array as the record's rows (copying them was 1 % of
         * tollgate's CPU in bench/events.sh) and the batch starts a new one at its next add,
         * sized for what that add and those after it bring: the memory held for the store
         * stays within twice the rows held (HELD_ROWS_MAX). Nothing but the write runs under
         * log_mu. */
        uint64_t id = 0, pos = 0, end = 0;
        int li = 0;
        rc = append_record(m, &id, b->rows, n, &li, &pos, &end, &err);
        if (rc == 0) {
            tg_usage_t *flat = b->rows; /* before the callbacks, which may add to the batch */
            size_t flat_cap = b->cap;
            b->rows = NULL;
            b->n = b->cap = 0;
            consumed = 0;
            atomic_fetch_add(&m->st_submitted, n);
            atomic_fetch_add(&m->st_committed, n);
            atomic_fetch_add(&m->st_commits, 1);
            atomic_store(&m->st_lag, tg_clock_mono_ns() - b->first_ns);
            batch_fire(b, ncalls, 0);
            /* Callbacks that added to the batch started a new array; else an array the applier
             * gave back is reused (BATCH_ROWS_MIN). */
            tg_usage_t *spare = NULL;
            hand_to_applier(m, li, id, flat, flat_cap, n, ncalls, b->first_ns, pos, end, 1,
                            b->rows == NULL ? &spare : NULL);
            if (spare != NULL) {
                b->rows = spare;
                b->cap = BATCH_ROWS_MIN;
            }
        }
    } else { /* calls without rows: nothing to write, done at once */
        batch_fire(b, ncalls, 0);
        hand_to_applier(m, 0, 0, NULL, 0, 0, ncalls, b->first_ns, 0, 0, 1, NULL);
    }
    if (rc == 0) {
        if (b->reported) {
            atomic_store(&m->st_log_failing, 0);
            tg_log(TG_LOG_INFO, "meter: writing the metering log works again");
            b->reported = 0;
        }
    } else {
        /* The writer thread retries with backoff, which must not happen on an event loop; the
         * calls wait for it, as in strict mode. */
        atomic_fetch_add(&m->st_failures, 1);
        atomic_store(&m->st_log_failing, 1);
        if (!b->reported++)
            tg_log(TG_LOG_ERROR, "meter: %s (the writer thread retries; calls wait)", err.msg);
        for (size_t i = 0; i < ncalls; i++) {
            batch_call_t c = b->calls[i];
            int src = tg_meter_submit(m, b->rows + c.lo, c.n, c.cb, c.arg);
            if (src != 0 && c.cb != NULL)
                c.cb(c.arg, src);
        }
    }
    /* Keeps what callbacks added meanwhile, for the next commit. */
    size_t keep_calls = b->ncalls - ncalls, keep_rows = b->n - consumed;
    if (keep_calls > 0) {
        memmove(b->calls, b->calls + ncalls, keep_calls * sizeof(*b->calls));
        for (size_t i = 0; i < keep_calls; i++)
            b->calls[i].lo -= consumed;
        if (keep_rows > 0 && consumed > 0)
            memmove(b->rows, b->rows + consumed, keep_rows * sizeof(*b->rows));
        b->first_ns = tg_clock_mono_ns();
    }
    b->ncalls = keep_calls;
    b->n = keep_rows;
}

void tg_meter_batch_free(tg_meter_batch_t *b)
{
    if (b == NULL)
        return;
    while (b->ncalls > 0) /* callbacks may add more */
        tg_meter_batch_commit(b);
    free(b->rows);
    free(b->calls);
    free(b);
}

int tg_meter_flush(tg_meter_t *m)
{
    pthread_mutex_lock(&m->mu);
    uint64_t target = m->seq_submitted;
    if (m->seq_applied < target) { /* log and store now rather than at the deadlines */
        m->flush_seq = m->flush_seq > target ? m->flush_seq : target;
        pthread_cond_signal(&m->wake);
        pthread_cond_signal(&m->apply_wake);
    }
    while (m->seq_applied < target || m->seq_called < target)
        pthread_cond_wait(&m->done, &m->mu);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

int tg_meter_backlogged(tg_meter_t *m)
{
    uint64_t committed = atomic_load_explicit(&m->st_committed, memory_order_relaxed);
    uint64_t submitted = atomic_load_explicit(&m->st_submitted, memory_order_relaxed);
    return submitted > committed && submitted - committed >= UNLOGGED_ROWS_MAX;
}

void tg_meter_get_stats(tg_meter_t *m, tg_meter_stats_t *out)
{
    out->applied = atomic_load(&m->st_applied);
    out->committed = atomic_load(&m->st_committed); /* after applied: never below it */
    out->submitted = atomic_load(&m->st_submitted); /* after committed: never below it */
    out->commits = atomic_load(&m->st_commits);
    out->failures = atomic_load(&m->st_failures);
    out->last_lag_ns = atomic_load(&m->st_lag);
    out->queued = out->submitted > out->committed ? out->submitted - out->committed : 0;
    out->spilled = atomic_load(&m->st_spilled);
    out->rejected = atomic_load(&m->st_rejected);
    out->syncs = atomic_load(&m->st_syncs);
    out->log_failing = atomic_load(&m->st_log_failing);
    pthread_mutex_lock(&m->mu);
    out->held = m->held_rows;
    out->store_failing = m->store_failing;
    pthread_mutex_unlock(&m->mu);
}

void tg_meter_stop(tg_meter_t *m)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    m->stopping = 1;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->writer, NULL);
    pthread_join(m->applier, NULL);
    free_submits(m->q, m->qlen); /* empty: the writer leaves only with an empty queue */
    /* Everything stored: a clean stop leaves nothing to replay. */
    tg_err_t err = {0};
    for (int i = 0; i < 2; i++)
        if (m->records_stored[i] == m->records_logged[i] && tg_usage_log_used(m->log[i]) > 0 &&
            reset_log(m, i, &err) != 0)
            tg_log(TG_LOG_WARN, "meter: %s (the log is replayed at the next start)", err.msg);
    /* Both logs empty: this node is drained (store_retention.h). If it never starts again, the
     * schedulers' node prunes its usage_batches rows an hour from now (metering/batch_prune.h);
     * if it does, its start takes the drain back and its own prunes go on. */
    if (tg_usage_log_used(m->log[0]) == 0 && tg_usage_log_used(m->log[1]) == 0 &&
        tg_store_node_drained(m->store, m->node, (int64_t)time(NULL), &err) != 0)
        tg_log(TG_LOG_WARN, "meter: recording this node's drained logs: %s (its usage batch ids stay)", err.msg);
    pthread_cond_destroy(&m->wake);
    pthread_cond_destroy(&m->apply_wake);
    pthread_cond_destroy(&m->done);
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->log_mu);
    free_meter(m);
}
