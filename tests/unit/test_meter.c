/* test_meter.c - the metering writer against a real store (a temporary SQLite file with its logs
 * beside it, or with TG_TEST_BACKEND=postgres a fresh PostgreSQL database with the logs in the
 * test's folder: tests/support/tmpstore.h): group commit from many threads, exactly-once
 * callbacks, flush, stop, retry of a failing store, the metering log's replay at start, refusal of
 * a record that can never be stored, event ids, pruning usage_batches (metering/batch_prune.h:
 * what a log still holds stays, across a crash and a recover too); and process durability: batches committed by
 * several loop threads at once, and a process killed with SIGKILL right after its commits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "../support/tmpstore.h"
#include "metering/batch_prune.h"
#include "metering/meter.h"
#include "metering/usage_log.h"
#include "store/store.h"
#include "store/store_retention.h"

typedef struct {
    tg_tmpstore_t db;
    const char *dir, *url; /* db.dir, db.url */
    tg_store_t *st;        /* the test's own connection (db.st), for reading back */
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(tg_tmpstore_open(&f->db, "meter"), 0);
    f->dir = f->db.dir;
    f->url = f->db.url;
    f->st = f->db.st;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    assert_int_equal(tg_tmpstore_close(&f->db), 0);
    free(f);
    return 0;
}

static int is_sqlite(const fx_t *f)
{
    return tg_tmpstore_is_sqlite(&f->db);
}

/* The meter of the test's store: on SQLite its logs beside the file ("<db>-usagelog.N"), on
 * PostgreSQL in the test's folder ("usage-N.log"), as the gateway does by default. */
static int start_meter(fx_t *f, int strict, int flush_ms, tg_meter_t **m, tg_err_t *err)
{
    tg_meter_opts_t o = {
        .store_url = f->url, .log_dir = is_sqlite(f) ? NULL : f->dir, .durability = strict, .flush_ms = flush_ms};
    return tg_meter_start_opts(&o, m, err);
}

/* The path of metering log i (1 or 2), and a shell pattern of both. */
static void log_path(fx_t *f, int i, char *out, size_t cap)
{
    if (is_sqlite(f))
        snprintf(out, cap, "%s-usagelog.%d", f->url + strlen("sqlite:"), i);
    else
        snprintf(out, cap, "%s/usage-%d.log", f->dir, i);
}

static void log_glob(fx_t *f, char *out, size_t cap)
{
    if (is_sqlite(f))
        snprintf(out, cap, "%s-usagelog.*", f->url + strlen("sqlite:"));
    else
        snprintf(out, cap, "%s/usage-*.log", f->dir);
}

/* Plain SQL on the database from a separate connection (fault injection, counts). */
static void sql_exec(fx_t *f, const char *sql)
{
    assert_int_equal(tg_tmpstore_exec(&f->db, sql), 0);
}

static long long sql_int(fx_t *f, const char *sql)
{
    long long v;
    if (is_sqlite(f)) {
        sqlite3 *db;
        sqlite3_stmt *s;
        assert_int_equal(sqlite3_open(f->url + strlen("sqlite:"), &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        v = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
        sqlite3_close(db);
        return v;
    }
    PGconn *c = PQconnectdb(f->url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return v;
}

static tg_usage_t row(const char *customer_id, const char *metric, uint64_t units)
{
    tg_usage_t u = {0};
    u.event_id = tg_meter_next_event_id();
    snprintf(u.customer_id, sizeof(u.customer_id), "%s", customer_id);
    snprintf(u.key_id, sizeof(u.key_id), "key_1");
    snprintf(u.plan_id, sizeof(u.plan_id), "free");
    snprintf(u.metric, sizeof(u.metric), "%s", metric);
    snprintf(u.endpoint, sizeof(u.endpoint), "GET /x");
    u.units = units;
    u.ts_ns = INT64_C(1769853600) * 1000000000; /* 2026-01-31 */
    u.period_start = 1000;
    u.status = 200;
    return u;
}

static uint64_t total(fx_t *f, const char *metric)
{
    tg_err_t err = {0};
    uint64_t n = 0;
    assert_int_equal(tg_store_usage_total(f->st, metric, &n, &err), 0);
    return n;
}

typedef struct {
    uint64_t api_calls, tokens;
} sums_t;

static int sum_cb(const char *metric, uint64_t units, void *arg)
{
    sums_t *s = arg;
    if (strcmp(metric, "api_calls") == 0)
        s->api_calls += units;
    else if (strcmp(metric, "tokens") == 0)
        s->tokens += units;
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- many threads ---- */

enum { THREADS = 8, PER_THREAD = 2000 };

/* One slot per submit: how often its callback fired, and the last status. */
typedef struct {
    _Atomic int fired;
    _Atomic int status;
} slot_t;

typedef struct {
    tg_meter_t *m;
    slot_t *slots;
    int thread;
    int refused; /* cmocka's asserts belong to the main thread: count here, assert there */
} worker_t;

static void on_slot(void *arg, int status)
{
    slot_t *s = arg;
    atomic_fetch_add(&s->fired, 1);
    atomic_store(&s->status, status);
}

/* Each submit carries one call: api_calls 1 and tokens 3, for customer cus_<thread>. */
static void *submitter(void *arg)
{
    worker_t *w = arg;
    char cus[16];
    snprintf(cus, sizeof(cus), "cus_%d", w->thread);
    for (int i = 0; i < PER_THREAD; i++) {
        tg_usage_t u[2] = {row(cus, "api_calls", 1), row(cus, "tokens", 3)};
        u[1].event_id = u[0].event_id;
        if (tg_meter_submit(w->m, u, 2, on_slot, &w->slots[w->thread * PER_THREAD + i]) != 0)
            w->refused++;
        if (i % 20 == 19) /* let commits interleave with submits: many groups, not one */
            sleep_ms(1);
    }
    return NULL;
}

static void run_threads(fx_t *f, int strict, int flush_ms)
{
    tg_err_t err = {0};
    tg_meter_t *m;
    assert_int_equal(start_meter(f, strict, flush_ms, &m, &err), 0);
    slot_t *slots = calloc(THREADS * PER_THREAD, sizeof(*slots));
    pthread_t t[THREADS];
    worker_t w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_t){m, slots, i, 0};
        assert_int_equal(pthread_create(&t[i], NULL, submitter, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].refused, 0);
    }
    assert_int_equal(tg_meter_flush(m), 0);
    /* flush returned: every callback has fired, and the rows are readable from elsewhere */
    for (int i = 0; i < THREADS * PER_THREAD; i++) {
        assert_int_equal(atomic_load(&slots[i].fired), 1);
        assert_int_equal(atomic_load(&slots[i].status), 0);
    }
    assert_int_equal(total(f, "api_calls"), THREADS * PER_THREAD);
    tg_meter_stats_t s;
    tg_meter_get_stats(m, &s);
    assert_int_equal(s.submitted, 2 * THREADS * PER_THREAD);
    assert_int_equal(s.committed, 2 * THREADS * PER_THREAD);
    assert_int_equal(s.queued, 0);
    assert_int_equal(s.failures, 0);
    assert_true(s.commits >= 1);
    assert_true(s.commits < THREADS * PER_THREAD); /* grouped, not one transaction per submit */
    assert_true(s.last_lag_ns > 0);
    print_message("%s: %d submits in %llu commits\n", strict ? "strict" : "batched", THREADS * PER_THREAD,
                  (unsigned long long)s.commits);
    tg_meter_stop(m);
    for (int i = 0; i < THREADS * PER_THREAD; i++)
        assert_int_equal(atomic_load(&slots[i].fired), 1); /* stop fires nothing twice */
    free(slots);

    assert_int_equal(total(f, "api_calls"), THREADS * PER_THREAD);
    assert_int_equal(total(f, "tokens"), 3 * THREADS * PER_THREAD);
    assert_int_equal(sql_int(f, "SELECT SUM(rows) FROM usage_batches"), 2 * THREADS * PER_THREAD);
    for (int i = 0; i < THREADS; i++) {
        char cus[16];
        snprintf(cus, sizeof(cus), "cus_%d", i);
        sums_t sums = {0};
        assert_int_equal(tg_store_usage_period(f->st, cus, 1000, sum_cb, &sums, &err), 0);
        assert_int_equal(sums.api_calls, PER_THREAD);
        assert_int_equal(sums.tokens, 3 * PER_THREAD);
    }
}

static void test_strict_threads(void **state)
{
    run_threads(*state, 1, 5);
}

static void test_batched_threads(void **state)
{
    run_threads(*state, 0, 5);
}

/* ---- flush, batching, stop ---- */

typedef struct {
    tg_meter_t *m;
    _Atomic int fired, errors, resubmit_rc;
} counter_t;

static void on_count(void *arg, int status)
{
    counter_t *c = arg;
    if (status != 0)
        atomic_fetch_add(&c->errors, 1);
    atomic_fetch_add(&c->fired, 1);
}

static void test_flush(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    counter_t c = {0};
    assert_int_equal(start_meter(f, 0, 60000, &c.m, &err), 0); /* batches of a minute */
    assert_int_equal(tg_meter_flush(c.m), 0);                  /* nothing queued: returns */
    for (int i = 0; i < 100; i++) {
        tg_usage_t u = row("cus_1", "api_calls", 1);
        assert_int_equal(tg_meter_submit(c.m, &u, 1, on_count, &c), 0);
    }
    int64_t t0 = mono_ms();
    assert_int_equal(tg_meter_flush(c.m), 0);
    assert_true(mono_ms() - t0 < 30000); /* did not wait for the minute */
    assert_int_equal(atomic_load(&c.fired), 100);
    assert_int_equal(atomic_load(&c.errors), 0);
    assert_int_equal(total(f, "api_calls"), 100);
    /* a zero-row submit still completes */
    assert_int_equal(tg_meter_submit(c.m, NULL, 0, on_count, &c), 0);
    assert_int_equal(tg_meter_flush(c.m), 0);
    assert_int_equal(atomic_load(&c.fired), 101);
    tg_meter_stop(c.m);
    assert_int_equal(total(f, "api_calls"), 100);
}

static void test_batched_commits_on_its_own(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    counter_t c = {0};
    assert_int_equal(start_meter(f, 0, 20, &c.m, &err), 0);
    tg_usage_t u = row("cus_1", "api_calls", 7);
    assert_int_equal(tg_meter_submit(c.m, &u, 1, on_count, &c), 0);
    tg_meter_stats_t s = {0};
    for (int i = 0; i < 500 && (atomic_load(&c.fired) == 0 || s.applied == 0); i++) { /* up to 5 s, no flush */
        sleep_ms(10);
        tg_meter_get_stats(c.m, &s);
    }
    assert_int_equal(atomic_load(&c.fired), 1); /* logged */
    assert_int_equal(s.applied, 1);             /* and stored */
    assert_int_equal(total(f, "api_calls"), 7);
    tg_meter_stop(c.m);
}

static void on_resubmit(void *arg, int status)
{
    counter_t *c = arg;
    tg_usage_t u = row("cus_1", "api_calls", 1);
    atomic_store(&c->resubmit_rc, tg_meter_submit(c->m, &u, 1, NULL, NULL)); /* during stop */
    on_count(arg, status);
}

static void test_stop_commits_everything(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    counter_t c = {0};
    assert_int_equal(start_meter(f, 0, 60000, &c.m, &err), 0);
    for (int i = 0; i < 99; i++) {
        tg_usage_t u = row("cus_1", "api_calls", 1);
        assert_int_equal(tg_meter_submit(c.m, &u, 1, on_count, &c), 0);
    }
    tg_usage_t u = row("cus_1", "api_calls", 1);
    assert_int_equal(tg_meter_submit(c.m, &u, 1, on_resubmit, &c), 0);
    int64_t t0 = mono_ms();
    tg_meter_stop(c.m); /* must not wait for the minute, must not drop anything */
    assert_true(mono_ms() - t0 < 30000);
    assert_int_equal(atomic_load(&c.fired), 100);
    assert_int_equal(atomic_load(&c.errors), 0);
    assert_int_equal(atomic_load(&c.resubmit_rc), TG_ESTATE);
    assert_int_equal(total(f, "api_calls"), 100);
}

static void test_submit_refuses_out_of_range(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    counter_t c = {0};
    assert_int_equal(start_meter(f, 1, 5, &c.m, &err), 0);
    tg_usage_t u[2] = {row("cus_1", "api_calls", 1), row("cus_1", "tokens", (uint64_t)INT64_MAX + 1)};
    assert_int_equal(tg_meter_submit(c.m, u, 2, on_count, &c), TG_ERANGE);
    assert_int_equal(tg_meter_flush(c.m), 0);
    tg_meter_stop(c.m);
    assert_int_equal(atomic_load(&c.fired), 0); /* a refused submit never calls back */
    assert_int_equal(total(f, "api_calls"), 0);

    tg_meter_t *m = NULL;
    assert_int_equal(tg_meter_start("mysql://x", 1, 5, &m, &err), TG_EINVAL);
    assert_null(m);
    assert_non_null(strstr(err.msg, "mysql"));
}

/* A record that cannot be stored (a field without its terminator) is refused at the submit and
 * never called back; the others commit. A stored total saturates instead of overflowing. */
static void test_bad_record_is_isolated(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    counter_t c = {0};
    slot_t slots[6] = {0};
    assert_int_equal(start_meter(f, 0, 60000, &c.m, &err), 0);
    tg_usage_t big = row("cus_big", "api_calls", (uint64_t)INT64_MAX);
    assert_int_equal(tg_meter_submit(c.m, &big, 1, on_slot, &slots[0]), 0);
    for (int i = 1; i < 6; i++) {
        tg_usage_t u = row(i == 3 ? "cus_big" : "cus_ok", "api_calls", 1);
        if (i == 3)
            memset(u.metric, 'x', sizeof(u.metric)); /* unterminated */
        assert_int_equal(tg_meter_submit(c.m, &u, 1, on_slot, &slots[i]), i == 3 ? TG_EINVAL : 0);
    }
    assert_int_equal(tg_meter_flush(c.m), 0); /* the other five in one group */
    for (int i = 0; i < 6; i++) {
        assert_int_equal(atomic_load(&slots[i].fired), i == 3 ? 0 : 1);
        assert_int_equal(atomic_load(&slots[i].status), 0);
    }
    tg_meter_stats_t s;
    tg_meter_get_stats(c.m, &s);
    assert_int_equal(s.committed, 5);
    assert_int_equal(s.applied, 5);
    tg_meter_stop(c.m);
    sums_t sums = {0};
    assert_int_equal(tg_store_usage_period(f->st, "cus_ok", 1000, sum_cb, &sums, &err), 0);
    assert_int_equal(sums.api_calls, 4);
    sums = (sums_t){0};
    assert_int_equal(tg_store_usage_period(f->st, "cus_big", 1000, sum_cb, &sums, &err), 0);
    assert_int_equal(sums.api_calls, (uint64_t)INT64_MAX);
}

/* ---- a failing store ---- */

/* Every insert into usage_batches fails while the trigger is there (each backend's dialect). */
static void fault(fx_t *f, int on)
{
    if (is_sqlite(f))
        sql_exec(f,
                 on ? "CREATE TRIGGER fault BEFORE INSERT ON usage_batches BEGIN SELECT RAISE(ABORT, 'injected fault');"
                      " END"
                    : "DROP TRIGGER fault");
    else
        sql_exec(f, on ? "CREATE FUNCTION fault() RETURNS trigger LANGUAGE plpgsql AS"
                         " $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$;"
                         " CREATE TRIGGER fault BEFORE INSERT ON usage_batches FOR EACH ROW EXECUTE FUNCTION fault()"
                       : "DROP TRIGGER fault ON usage_batches; DROP FUNCTION fault()");
}

/* The database failing does not hold calls: their usage is durable in the metering log, and
 * the applier retries until the database is back. */
static void test_retry_until_the_store_recovers(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    counter_t c = {0};
    assert_int_equal(start_meter(f, 1, 5, &c.m, &err), 0);
    fault(f, 1);
    for (int i = 0; i < 50; i++) {
        tg_usage_t u = row("cus_1", "api_calls", 1);
        assert_int_equal(tg_meter_submit(c.m, &u, 1, on_count, &c), 0);
    }
    tg_meter_stats_t s = {0};
    for (int i = 0; i < 500 && (s.failures < 4 || atomic_load(&c.fired) < 50); i++) { /* up to 5 s */
        sleep_ms(10);
        tg_meter_get_stats(c.m, &s);
    }
    assert_true(s.failures >= 4);
    assert_int_equal(atomic_load(&c.fired), 50); /* answered: on the disk in the log */
    assert_int_equal(atomic_load(&c.errors), 0);
    assert_int_equal(s.committed, 50);
    assert_int_equal(s.applied, 0); /* not in the database yet, and not dropped */
    assert_int_equal(s.queued, 0);
    fault(f, 0);
    assert_int_equal(tg_meter_flush(c.m), 0);
    tg_meter_get_stats(c.m, &s);
    assert_int_equal(s.applied, 50);
    tg_meter_stop(c.m);
    assert_int_equal(total(f, "api_calls"), 50); /* retried, counted once */
}

static void wait_fired(counter_t *c, int n)
{
    /* Up to 60 s: a bound, not a timing. Five seconds were not enough for an fsync-ed spill on a
     * loaded CI machine under ASan. */
    for (int i = 0; i < 6000 && atomic_load(&c->fired) < n; i++)
        sleep_ms(10);
    assert_int_equal(atomic_load(&c->fired), n);
}

/* A dead database at shutdown: the usage stays in the log and is stored at the next start,
 * once; the start after that finds nothing left to store. */
static void test_dead_store_at_stop_keeps_usage_for_the_next_start(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    counter_t c = {0};
    assert_int_equal(start_meter(f, 1, 5, &c.m, &err), 0);
    fault(f, 1);
    for (int i = 0; i < 10; i++) {
        tg_usage_t u = row("cus_1", "api_calls", 1);
        assert_int_equal(tg_meter_submit(c.m, &u, 1, on_count, &c), 0);
    }
    wait_fired(&c, 10);
    tg_meter_stop(c.m); /* bounded: a few seconds of retries */
    assert_int_equal(atomic_load(&c.errors), 0);
    assert_int_equal(total(f, "api_calls"), 0);
    fault(f, 0);
    for (int run = 0; run < 2; run++) {
        assert_int_equal(start_meter(f, 1, 5, &c.m, &err), 0);
        assert_int_equal(total(f, "api_calls"), 10);
        tg_meter_stop(c.m);
    }
    assert_int_equal(sql_int(f, "SELECT SUM(rows) FROM usage_batches"), 10);
}

static int count_rows(void *arg, uint64_t batch_id, const tg_usage_t *rows, size_t n)
{
    (void)batch_id;
    (void)rows;
    *(size_t *)arg += n;
    return 0;
}

/* Rows in the two logs (with no meter running). */
static size_t logged_rows(fx_t *f)
{
    size_t n = 0;
    for (int i = 1; i <= 2; i++) {
        char path[192];
        tg_usage_log_t *log;
        tg_err_t err = {0};
        log_path(f, i, path, sizeof(path));
        assert_int_equal(tg_usage_log_open(path, &log, &err), 0);
        assert_int_equal(tg_usage_log_replay(log, count_rows, &n, &err), 0);
        tg_usage_log_close(log);
    }
    return n;
}

static long long file_size(fx_t *f, int i)
{
    char path[192];
    struct stat sb;
    log_path(f, i, path, sizeof(path));
    assert_int_equal(stat(path, &sb), 0);
    return (long long)sb.st_size;
}

/* Past 8 MiB the writer moves to the other log, and back once the first is stored and reset;
 * every call is counted once throughout. */
static void logs_take_turns(fx_t *f, int durability)
{
    tg_err_t err = {0};
    counter_t c = {0};
    enum { ROWS = 1000, SUBMITS = 150 }; /* about 10 MB of log per round (70 bytes a row) */
    tg_usage_t *u = calloc(ROWS, sizeof(*u));
    for (int i = 0; i < ROWS; i++)
        u[i] = row("cus_1", "api_calls", 1);
    assert_int_equal(start_meter(f, durability, 5, &c.m, &err), 0);
    assert_int_equal(file_size(f, 2), 4096); /* just a header */
    long long first = 0;
    for (int round = 1; round <= 3; round++) {
        for (int i = 0; i < SUBMITS; i++)
            assert_int_equal(tg_meter_submit(c.m, u, ROWS, on_count, &c), 0);
        assert_int_equal(tg_meter_flush(c.m), 0);
        assert_int_equal(total(f, "api_calls"), (uint64_t)round * SUBMITS * ROWS);
        if (round == 1)
            first = file_size(f, 1);
    }
    assert_true(first > (8 << 20));      /* the first log filled up */
    assert_true(file_size(f, 2) > 4096); /* and appends went on in the second */
    tg_meter_stop(c.m);
    assert_int_equal(atomic_load(&c.fired), 3 * SUBMITS);
    assert_int_equal(atomic_load(&c.errors), 0);
    assert_int_equal(total(f, "api_calls"), 3 * SUBMITS * ROWS);
    assert_int_equal(logged_rows(f), 0); /* a clean stop leaves nothing to replay */
    free(u);
}

/* What must outlive a log's records is made durable first (tg_meter_opts_t.before_log_reset: the
 * events' dedup index): the hook runs before a log is reset, while the log still holds its
 * records; a hook that fails keeps the log, whose records the next start replays (counted once,
 * by batch id) and then resets, after the hook. */
typedef struct {
    fx_t *f;
    int calls, fail;
    long long log_size; /* log 1's size at the last call */
} reset_hook_t;

static int before_reset(void *arg, tg_err_t *err)
{
    reset_hook_t *h = arg;
    h->calls++;
    h->log_size = file_size(h->f, 1);
    return h->fail ? tg_errf(err, TG_EIO, "the hook failed") : 0;
}

static void test_log_reset_waits_for_its_hook(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    reset_hook_t h = {f, 0, 1, 0};
    tg_meter_opts_t o = {.store_url = f->url,
                         .log_dir = is_sqlite(f) ? NULL : f->dir,
                         .durability = TG_METER_STRICT,
                         .flush_ms = 5,
                         .before_log_reset = before_reset,
                         .before_log_reset_arg = &h};
    for (int run = 0; run < 2; run++) {
        counter_t c = {0};
        assert_int_equal(tg_meter_start_opts(&o, &c.m, &err), 0);
        tg_usage_t u[10];
        for (int i = 0; i < 10; i++)
            u[i] = row("cus_1", "api_calls", 1);
        assert_int_equal(tg_meter_submit(c.m, u, 10, on_count, &c), 0);
        assert_int_equal(tg_meter_flush(c.m), 0);
        h.calls = 0;
        tg_meter_stop(c.m);
        assert_int_equal(h.calls, 1);
        assert_true(h.log_size > 4096); /* called before the reset */
        assert_int_equal(total(f, "api_calls"), 10 * (run + 1));
        /* the first run's hook failed: its log kept the records; the second start replayed
         * them (nothing counted twice) and reset the log after its hook */
        assert_int_equal(logged_rows(f), h.fail ? 10 : 0);
        h.fail = 0;
    }
}

static void test_logs_take_turns(void **state)
{
    logs_take_turns(*state, TG_METER_BATCHED);
}

/* Process durability through tg_meter_submit: the writer thread's buffered appends (the path a
 * loop's failed write takes), and the switch its periodic tick makes. */
static void test_process_logs_take_turns(void **state)
{
    logs_take_turns(*state, TG_METER_PROCESS);
}

/* ---- process durability: the loops' own batches ---- */

enum { LOOPS = 4, ITERATIONS = 500, CALLS_PER_ITERATION = 8 };

typedef struct {
    tg_meter_t *m;
    slot_t *slots;
    int loop;
    int refused, early, late; /* counted here, asserted by the main thread */
} loop_t;

/* One event loop: each iteration finishes CALLS_PER_ITERATION calls (api_calls 1, tokens 3 each)
 * and commits them; every callback fires inside the commit, on this thread, once. */
static void *loop_main(void *arg)
{
    loop_t *l = arg;
    char cus[16];
    snprintf(cus, sizeof(cus), "cus_%d", l->loop);
    tg_meter_batch_t *b = tg_meter_batch_new(l->m);
    if (b == NULL) {
        l->refused++;
        return NULL;
    }
    for (int it = 0; it < ITERATIONS; it++) {
        slot_t *slots = &l->slots[(l->loop * ITERATIONS + it) * CALLS_PER_ITERATION];
        for (int i = 0; i < CALLS_PER_ITERATION; i++) {
            tg_usage_t u[2] = {row(cus, "api_calls", 1), row(cus, "tokens", 3)};
            u[1].event_id = u[0].event_id;
            if (tg_meter_batch_add(b, u, 2, on_slot, &slots[i]) != 0)
                l->refused++;
        }
        for (int i = 0; i < CALLS_PER_ITERATION; i++)
            l->early += atomic_load(&slots[i].fired) != 0;
        if (!tg_meter_batch_pending(b))
            l->refused++;
        tg_meter_batch_commit(b);
        for (int i = 0; i < CALLS_PER_ITERATION; i++)
            l->late += atomic_load(&slots[i].fired) != 1 || atomic_load(&slots[i].status) != 0;
    }
    tg_meter_batch_free(b); /* nothing pending */
    return NULL;
}

static void test_process_batches_from_many_loops(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    tg_meter_t *m;
    assert_int_equal(start_meter(f, TG_METER_PROCESS, 5, &m, &err), 0);
    enum { CALLS = LOOPS * ITERATIONS * CALLS_PER_ITERATION };
    slot_t *slots = calloc(CALLS, sizeof(*slots));
    pthread_t t[LOOPS];
    loop_t l[LOOPS];
    for (int i = 0; i < LOOPS; i++) {
        l[i] = (loop_t){.m = m, .slots = slots, .loop = i};
        assert_int_equal(pthread_create(&t[i], NULL, loop_main, &l[i]), 0);
    }
    for (int i = 0; i < LOOPS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(l[i].refused, 0);
        assert_int_equal(l[i].early, 0); /* nothing fires before the commit */
        assert_int_equal(l[i].late, 0);  /* everything fires in it, once, with 0 */
    }
    tg_meter_stats_t s;
    tg_meter_get_stats(m, &s);
    assert_int_equal(s.submitted, 2 * CALLS);
    assert_int_equal(s.committed, 2 * CALLS);
    assert_int_equal(s.commits, LOOPS * ITERATIONS); /* one append per iteration */
    assert_int_equal(s.failures, 0);
    assert_int_equal(tg_meter_flush(m), 0);
    assert_int_equal(total(f, "api_calls"), CALLS);
    tg_meter_stop(m);
    for (int i = 0; i < CALLS; i++)
        assert_int_equal(atomic_load(&slots[i].fired), 1);
    free(slots);
    assert_int_equal(total(f, "api_calls"), CALLS);
    assert_int_equal(total(f, "tokens"), 3 * CALLS);
    assert_int_equal(sql_int(f, "SELECT SUM(rows) FROM usage_batches"), 2 * CALLS);
    assert_int_equal(logged_rows(f), 0);
}

/* A callback that settles another call on the same loop (a released response leading to the
 * next call) adds to the batch being committed: that call stays for the next commit, once. */
typedef struct {
    tg_meter_batch_t *b;
    counter_t *c;
    int added, add_rc;
} readd_t;

static void on_readd(void *arg, int status)
{
    readd_t *r = arg;
    on_count(r->c, status);
    if (r->added++ == 0) {
        tg_usage_t u = row("cus_2", "api_calls", 5);
        r->add_rc = tg_meter_batch_add(r->b, &u, 1, on_count, r->c);
    }
}

static void test_process_callback_adds_to_the_batch(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    counter_t c = {0};
    assert_int_equal(start_meter(f, TG_METER_PROCESS, 5, &c.m, &err), 0);
    tg_meter_batch_t *b = tg_meter_batch_new(c.m);
    assert_non_null(b);
    readd_t r = {.b = b, .c = &c};
    for (int i = 0; i < 3; i++) {
        tg_usage_t u = row("cus_1", "api_calls", 1);
        assert_int_equal(tg_meter_batch_add(b, &u, 1, i == 0 ? on_readd : on_count, i == 0 ? (void *)&r : (void *)&c),
                         0);
    }
    tg_meter_batch_commit(b);
    assert_int_equal(r.add_rc, 0);
    assert_int_equal(atomic_load(&c.fired), 3); /* the three committed */
    assert_true(tg_meter_batch_pending(b));     /* the one added meanwhile waits */
    tg_meter_batch_commit(b);
    assert_int_equal(atomic_load(&c.fired), 4);
    assert_false(tg_meter_batch_pending(b));
    tg_meter_batch_free(b);
    assert_int_equal(tg_meter_flush(c.m), 0);
    assert_int_equal(total(f, "api_calls"), 3 + 5);
    tg_meter_stop(c.m);
    assert_int_equal(atomic_load(&c.errors), 0);
    assert_int_equal(total(f, "api_calls"), 3 + 5);
}

/* The applier gives a batch's rows array back for the next commits to reuse (meter.c,
 * BATCH_ROWS_MIN): rounds of commit and flush, so each commit after the first can take an array
 * the store already read; some rounds grow the array past its first size (such an array is freed,
 * not given back). Every round's rows are stored exactly, none twice, none stale; under TSan and
 * ASan an array written by the loop while the applier still read it, or after it was freed, is
 * reported. */
static void test_process_batch_rows_are_reused(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    counter_t c = {0};
    assert_int_equal(start_meter(f, TG_METER_PROCESS, 5, &c.m, &err), 0);
    tg_meter_batch_t *b = tg_meter_batch_new(c.m);
    assert_non_null(b);
    enum { ROUNDS = 24, BIG = 150 }; /* BIG: past BATCH_ROWS_MIN (64), and past its double */
    uint64_t want = 0;
    int calls = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int n = round % 5 == 3 ? BIG : 1 + round % 4;
        for (int i = 0; i < n; i++) {
            tg_usage_t u = row("cus_1", "api_calls", (uint64_t)round + 1);
            assert_int_equal(tg_meter_batch_add(b, &u, 1, on_count, &c), 0);
            want += (uint64_t)round + 1;
        }
        calls += n;
        tg_meter_batch_commit(b);
        assert_int_equal(atomic_load(&c.fired), calls);
        assert_int_equal(tg_meter_flush(c.m), 0); /* stored: the array is given back */
        assert_int_equal(total(f, "api_calls"), want);
    }
    tg_meter_batch_free(b);
    tg_meter_stop(c.m);
    assert_int_equal(atomic_load(&c.errors), 0);
    assert_int_equal(total(f, "api_calls"), want);
    assert_int_equal(sql_int(f, "SELECT SUM(rows) FROM usage_batches"), calls);
}

/* A process that committed batches and is killed with SIGKILL (no stop, no sync): the next
 * start stores every committed call, those the applier had stored before the kill once. */
/* Process durability: what the loops wrote is fdatasynced by the writer in the background every
 * sync_ms (metering.sync_ms), with no call waiting for it and without a stop. */
static void test_process_syncs_in_the_background(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    tg_meter_t *m;
    tg_meter_opts_t o = {.store_url = f->url,
                         .log_dir = is_sqlite(f) ? NULL : f->dir,
                         .durability = TG_METER_PROCESS,
                         .flush_ms = 1,
                         .sync_ms = 2};
    assert_int_equal(tg_meter_start_opts(&o, &m, &err), 0);
    tg_meter_batch_t *b = tg_meter_batch_new(m);
    assert_non_null(b);
    tg_usage_t u = row("cus_1", "api_calls", 1);
    assert_int_equal(tg_meter_batch_add(b, &u, 1, NULL, NULL), 0);
    tg_meter_batch_commit(b); /* written, not synced */
    tg_meter_stats_t s = {0};
    for (int i = 0; i < 500 && s.syncs == 0; i++) { /* bounded: 5 s */
        tg_meter_get_stats(m, &s);
        if (s.syncs == 0)
            sleep_ms(10);
    }
    assert_true(s.syncs >= 1);
    assert_int_equal(s.committed, 1);
    tg_meter_batch_free(b);
    tg_meter_stop(m);
    assert_int_equal(total(f, "api_calls"), 1);
}

/* sync_ms, not flush_ms, paces the fdatasyncs: with a 1 ms tick and a 60 s sync interval, a
 * record written by a loop is switched out and stored by the applier (tens of ms of ticks later)
 * without any fdatasync; every tick would have synced it at once when the tick paced them. */
static void test_process_does_not_sync_every_tick(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    tg_meter_t *m;
    tg_meter_opts_t o = {.store_url = f->url,
                         .log_dir = is_sqlite(f) ? NULL : f->dir,
                         .durability = TG_METER_PROCESS,
                         .flush_ms = 1,
                         .sync_ms = 60000};
    assert_int_equal(tg_meter_start_opts(&o, &m, &err), 0);
    tg_meter_batch_t *b = tg_meter_batch_new(m);
    assert_non_null(b);
    tg_usage_t u = row("cus_1", "api_calls", 1);
    assert_int_equal(tg_meter_batch_add(b, &u, 1, NULL, NULL), 0);
    tg_meter_batch_commit(b);
    tg_meter_stats_t s = {0};
    for (int i = 0; i < 500 && s.applied == 0; i++) { /* bounded: 5 s */
        tg_meter_get_stats(m, &s);
        if (s.applied == 0)
            sleep_ms(10);
    }
    assert_true(s.applied >= 1);
    assert_int_equal(s.syncs, 0);
    tg_meter_batch_free(b);
    tg_meter_stop(m); /* a clean stop syncs what is left */
    assert_int_equal(total(f, "api_calls"), 1);
}

static void test_process_kill_9_loses_nothing_committed(void **state)
{
    fx_t *f = *state;
    enum { COMMITS = 200, PER_COMMIT = 5 };
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* the gateway: commits, then dies at once */
        tg_err_t err = {0};
        tg_meter_t *m;
        if (start_meter(f, TG_METER_PROCESS, 5, &m, &err) != 0)
            _exit(1);
        tg_meter_batch_t *b = tg_meter_batch_new(m);
        for (int i = 0; b != NULL && i < COMMITS; i++) {
            for (int k = 0; k < PER_COMMIT; k++) {
                tg_usage_t u = row("cus_1", "api_calls", 1);
                if (tg_meter_batch_add(b, &u, 1, NULL, NULL) != 0)
                    _exit(1);
            }
            tg_meter_batch_commit(b);
            if (i % 50 == 49)
                sleep_ms(10); /* lets the applier store some of them before the kill */
        }
        raise(SIGKILL);
        _exit(1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    tg_err_t err = {0};
    for (int run = 0; run < 2; run++) { /* the second start finds nothing left */
        tg_meter_t *m;
        assert_int_equal(start_meter(f, TG_METER_PROCESS, 5, &m, &err), 0);
        assert_int_equal(total(f, "api_calls"), COMMITS * PER_COMMIT);
        tg_meter_stop(m);
    }
    assert_int_equal(sql_int(f, "SELECT SUM(rows) FROM usage_batches"), COMMITS * PER_COMMIT);
}

/* While the database is down, logged rows beyond 65,536 are not kept in memory: they are read
 * back from the log once the database is back (from both logs: the outage outlasts the switch at
 * 8 MiB), and everything is stored exactly once, whether the database comes back while the
 * meter runs or only at the next start. */
static void test_outage_spills_to_the_log_not_memory(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    counter_t c = {0};
    enum { ROWS = 1000, SUBMITS = 150 }; /* past the 65,536 rows kept in memory, and 10 MB of log */
    tg_usage_t *u = calloc(ROWS, sizeof(*u));
    for (int i = 0; i < ROWS; i++)
        u[i] = row("cus_1", "api_calls", 1);
    for (int run = 0; run < 2; run++) {
        assert_int_equal(start_meter(f, 1, 5, &c.m, &err), 0);
        fault(f, 1);
        atomic_store(&c.fired, 0);
        for (int i = 0; i < SUBMITS; i++) { /* one at a time: the writer may switch logs between them */
            assert_int_equal(tg_meter_submit(c.m, u, ROWS, on_count, &c), 0);
            wait_fired(&c, i + 1); /* answered: in the log */
        }
        /* The writer fires a group's callbacks, then files its rows as held or spilled: poll
         * (bounded) until the last group is filed before reading the figures. */
        tg_meter_stats_t s = {0};
        for (int i = 0; i < 6000; i++) {
            tg_meter_get_stats(c.m, &s);
            if (s.held + s.spilled >= SUBMITS * ROWS)
                break;
            sleep_ms(10);
        }
        assert_int_equal(s.committed, SUBMITS * ROWS);
        assert_int_equal(s.applied, 0);
        assert_true(s.held <= 65536);
        assert_int_equal(s.held + s.spilled, SUBMITS * ROWS); /* every row is one or the other */
        assert_true(file_size(f, 2) > 4096);                  /* the spill went on in the second log */
        if (run == 0) {                                       /* the database comes back while the meter runs */
            fault(f, 0);
            assert_int_equal(tg_meter_flush(c.m), 0);
            tg_meter_get_stats(c.m, &s);
            assert_int_equal(s.applied, SUBMITS * ROWS);
            assert_int_equal(s.held, 0);
            tg_meter_stop(c.m);
            assert_int_equal(total(f, "api_calls"), SUBMITS * ROWS);
        } else { /* it comes back only after the stop: the next start stores the rest */
            tg_meter_stop(c.m);
            assert_int_equal(total(f, "api_calls"), SUBMITS * ROWS);
            fault(f, 0);
            assert_int_equal(start_meter(f, 1, 5, &c.m, &err), 0);
            tg_meter_stop(c.m);
            assert_int_equal(total(f, "api_calls"), 2 * SUBMITS * ROWS);
        }
    }
    assert_int_equal(atomic_load(&c.errors), 0);
    assert_int_equal(sql_int(f, "SELECT SUM(rows) FROM usage_batches"), 2 * SUBMITS * ROWS);
    assert_int_equal(logged_rows(f), 0);
    free(u);
}

/* The process dies after the database stored a group but before the log was reset: the replay
 * finds the group in the log and counts nothing twice. */
static void test_replay_of_stored_usage_counts_once(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    counter_t c = {0};
    char cmd[512], logs[256];
    assert_int_equal(start_meter(f, 1, 5, &c.m, &err), 0);
    for (int i = 0; i < 100; i++) {
        tg_usage_t u = row("cus_1", "api_calls", 2);
        assert_int_equal(tg_meter_submit(c.m, &u, 1, on_count, &c), 0);
    }
    assert_int_equal(tg_meter_flush(c.m), 0); /* stored in the database */
    log_glob(f, logs, sizeof(logs));
    snprintf(cmd, sizeof(cmd), "mkdir %s/saved && cp %s %s/saved/", f->dir, logs, f->dir);
    assert_int_equal(system(cmd), 0); /* the logs as a crash would leave them */
    tg_meter_stop(c.m);               /* resets them */
    assert_int_equal(total(f, "api_calls"), 200);
    snprintf(cmd, sizeof(cmd), "cp %s/saved/* %s/", f->dir, f->dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(logged_rows(f), 100); /* what the replay below finds */
    assert_int_equal(start_meter(f, 1, 5, &c.m, &err), 0);
    tg_meter_stop(c.m);
    assert_int_equal(total(f, "api_calls"), 200);
}

/* issue 10 item 7: an upstream's absurd value (2^63-2 units) in one call of a group made the
 * store refuse the whole record ("can never be stored and is dropped"), losing every other
 * call logged with it. Now the record's sums saturate and the other calls are stored, once. */
static void test_absurd_value_does_not_drop_the_record(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    counter_t c = {0};
    assert_int_equal(start_meter(f, 0, 60000, &c.m, &err), 0);
    tg_usage_t big = row("cus_big", "api_calls", (uint64_t)INT64_MAX - 1);
    assert_int_equal(tg_meter_submit(c.m, &big, 1, on_count, &c), 0);
    for (int i = 0; i < 5; i++) {
        tg_usage_t u = row(i < 2 ? "cus_big" : "cus_ok", "api_calls", 1);
        assert_int_equal(tg_meter_submit(c.m, &u, 1, on_count, &c), 0);
    }
    assert_int_equal(tg_meter_flush(c.m), 0); /* all six in one record */
    tg_meter_stop(c.m);
    sums_t sums = {0};
    assert_int_equal(tg_store_usage_period(f->st, "cus_ok", 1000, sum_cb, &sums, &err), 0);
    assert_int_equal(sums.api_calls, 3);
    sums = (sums_t){0};
    assert_int_equal(tg_store_usage_period(f->st, "cus_big", 1000, sum_cb, &sums, &err), 0);
    assert_int_equal(sums.api_calls, (uint64_t)INT64_MAX); /* saturated */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM usage_rejected"), 0);
}

/* A record the store cannot total whole (a row past 2^63-1 units, written by an older build or
 * another writer into the metering log): at the replay, that row is kept aside in
 * usage_rejected, the record's other rows and the other records are stored, and a second
 * replay of the same log (a crash before the log was reset) adds none of it twice. */
static void test_replay_keeps_a_refused_row_aside_once(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    char path[192], cmd[512], logs[256];
    log_path(f, 1, path, sizeof(path));
    tg_usage_log_t *log;
    assert_int_equal(tg_usage_log_open(path, &log, &err), 0);
    tg_usage_t a[2] = {row("cus_1", "api_calls", 1), row("cus_2", "api_calls", 2)};
    tg_usage_t b[3] = {row("cus_1", "api_calls", 4), row("cus_3", "tokens", UINT64_MAX), row("cus_2", "api_calls", 8)};
    tg_usage_t c3 = row("cus_2", "api_calls", 16);
    assert_int_equal(tg_usage_log_append(log, tg_meter_next_event_id(), a, 2, &err), 0);
    assert_int_equal(tg_usage_log_append(log, tg_meter_next_event_id(), b, 3, &err), 0);
    assert_int_equal(tg_usage_log_append(log, tg_meter_next_event_id(), &c3, 1, &err), 0);
    tg_usage_log_close(log);
    log_glob(f, logs, sizeof(logs));
    snprintf(cmd, sizeof(cmd), "mkdir %s/saved && cp %s %s/saved/", f->dir, logs, f->dir);
    assert_int_equal(system(cmd), 0);
    for (int run = 0; run < 2; run++) {
        tg_meter_t *m = NULL;
        assert_int_equal(start_meter(f, 0, 5, &m, &err), 0);
        tg_meter_stats_t st;
        tg_meter_get_stats(m, &st);
        assert_int_equal(st.rejected, run == 0 ? 1 : 0);
        tg_meter_stop(m);
        assert_int_equal(total(f, "api_calls"), 1 + 2 + 4 + 8 + 16);
        assert_int_equal(total(f, "tokens"), 0);
        assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM usage_rejected"), 1);
        assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM usage_rejected WHERE customer_id = 'cus_3' AND"
                                    " units = '18446744073709551615' AND metric = 'tokens'"),
                         1);
        snprintf(cmd, sizeof(cmd), "cp %s/saved/* %s/", f->dir, f->dir); /* as a crash would leave them */
        assert_int_equal(system(cmd), 0);
    }
}

/* Two processes on one database would interleave their logs: the second start is refused. */
static void test_log_is_held_by_one_meter(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    tg_meter_t *a = NULL, *b = NULL;
    assert_int_equal(start_meter(f, 1, 5, &a, &err), 0);
    assert_int_equal(start_meter(f, 1, 5, &b, &err), TG_ESTATE);
    assert_null(b);
    assert_non_null(strstr(err.msg, "in use by another tollgate process"));
    assert_non_null(strstr(err.msg, is_sqlite(f) ? "-usagelog.1" : "usage-1.log"));
    tg_meter_stop(a);
}

/* ---- pruning usage_batches (metering/batch_prune.h) ---- */

/* Real seconds past which the one-hour margin lets every batch stored so far go. */
static int64_t past_margin_s(void)
{
    return (int64_t)time(NULL) + TG_USAGE_BATCHES_MARGIN_S + 60;
}

/* Prunes m's rows with its own connection to the test's store, as the admin tick does, at
 * now_s, with the logs as they are now observed TG_USAGE_BATCHES_LAG_S before (that first call
 * deletes nothing: the bound it would use is not old enough). */
static size_t prune(fx_t *f, tg_meter_t *m, int64_t now_s)
{
    tg_err_t err = {0};
    tg_batch_prune_run_t run;
    tg_batch_prune_lag_t lag = {0};
    assert_int_equal(tg_meter_prune_batches(m, f->st, &lag, now_s - TG_USAGE_BATCHES_LAG_S, 7,
                                            INT64_C(60) * 1000000000, &run, &err), 0);
    assert_int_equal(run.deleted, 0);
    assert_int_equal(tg_meter_prune_batches(m, f->st, &lag, now_s, 7, INT64_C(60) * 1000000000, &run, &err), 0);
    assert_int_equal(run.more, 0);
    return run.deleted;
}

/* n submits of one api_calls unit each, for customer cus, all stored. */
static void submit_stored(tg_meter_t *m, const char *cus, int n)
{
    counter_t c = {0};
    for (int i = 0; i < n; i++) {
        tg_usage_t u = row(cus, "api_calls", 1);
        assert_int_equal(tg_meter_submit(m, &u, 1, on_count, &c), 0);
        if (i % 4 == 3)
            assert_int_equal(tg_meter_flush(m), 0); /* several batches */
    }
    assert_int_equal(tg_meter_flush(m), 0);
    assert_int_equal(atomic_load(&c.errors), 0);
}

/* Stored batches whose log was reset since are pruned (in slices: 7 rows a statement here); a
 * prune with nothing due deletes nothing. */
static void test_prune_removes_the_rows_of_reset_logs(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    tg_meter_t *m;
    assert_int_equal(start_meter(f, 1, 5, &m, &err), 0);
    submit_stored(m, "cus_1", 40);
    long long rows = sql_int(f, "SELECT COUNT(*) FROM usage_batches");
    assert_true(rows >= 10);
    int in_log = 0;
    uint64_t oldest = tg_meter_oldest_replayable(m, &in_log);
    assert_int_equal(in_log, 1); /* stored, but the log is not reset yet */
    assert_int_equal(oldest, sql_int(f, "SELECT MIN(batch_id) FROM usage_batches"));
    assert_int_equal(prune(f, m, past_margin_s()), 0);
    tg_meter_stop(m); /* resets the logs */
    assert_int_equal(start_meter(f, 1, 5, &m, &err), 0);
    oldest = tg_meter_oldest_replayable(m, &in_log);
    assert_int_equal(in_log, 0);
    assert_true(oldest > (uint64_t)sql_int(f, "SELECT MAX(batch_id) FROM usage_batches"));
    assert_int_equal(prune(f, m, past_margin_s()), rows);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM usage_batches"), 0);
    assert_int_equal(prune(f, m, past_margin_s()), 0);
    tg_meter_stop(m);
    assert_int_equal(total(f, "api_calls"), 40); /* the totals are not the batches' */
}

/* A prune while records are still in a log keeps their rows, past the margin too: the process
 * killed right after it replays them at the next start and counts each once. Rows of an earlier
 * run, whose logs were reset, go. */
static void test_prune_keeps_what_a_crash_replays(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    tg_meter_t *m;
    assert_int_equal(start_meter(f, 1, 5, &m, &err), 0);
    submit_stored(m, "cus_1", 12);
    tg_meter_stop(m);
    long long earlier = sql_int(f, "SELECT COUNT(*) FROM usage_batches");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* the gateway: stores, prunes, dies before its logs are reset */
        tg_store_t *st = NULL;
        tg_batch_prune_run_t run;
        if (start_meter(f, 1, 5, &m, &err) != 0 || tg_store_open(f->url, &st, &err) != 0)
            _exit(1);
        for (int i = 0; i < 20; i++) {
            tg_usage_t u = row("cus_1", "api_calls", 1);
            if (tg_meter_submit(m, &u, 1, NULL, NULL) != 0 || (i % 5 == 4 && tg_meter_flush(m) != 0))
                _exit(1);
        }
        tg_batch_prune_lag_t lag = {0};
        if (tg_meter_prune_batches(m, st, &lag, past_margin_s() - TG_USAGE_BATCHES_LAG_S, 7,
                                   INT64_C(60) * 1000000000, &run, &err) != 0 ||
            tg_meter_prune_batches(m, st, &lag, past_margin_s(), 7, INT64_C(60) * 1000000000, &run, &err) != 0)
            _exit(2);
        if ((long long)run.deleted != earlier)
            _exit(3);
        raise(SIGKILL);
        _exit(1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL); /* not an _exit: the prune did as said */
    long long kept = sql_int(f, "SELECT COUNT(*) FROM usage_batches");
    assert_true(kept >= 4); /* the killed run's batches, all of them */
    assert_int_equal(sql_int(f, "SELECT SUM(rows) FROM usage_batches"), 20);
    assert_int_equal(logged_rows(f), 20); /* what the start below replays */
    assert_int_equal(start_meter(f, 1, 5, &m, &err), 0);
    tg_meter_stop(m);
    assert_int_equal(total(f, "api_calls"), 12 + 20);
}

/* The meter of another node, its logs in a folder of their own. */
static int start_node(fx_t *f, const char *node, const char *dir, tg_meter_t **m, tg_err_t *err)
{
    tg_meter_opts_t o = {.store_url = f->url, .log_dir = dir, .node_id = node, .durability = TG_METER_STRICT,
                         .flush_ms = 5};
    return tg_meter_start_opts(&o, m, err);
}

/* Node `node` (logs in dir) stores `stored` calls of one unit, then logs (answers) `unstored`
 * more that the database refuses, and is killed (SIGKILL) before it can store them. */
static void kill_node_with_unstored(fx_t *f, const char *node, const char *dir, int stored, int unstored)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        tg_err_t err = {0};
        tg_meter_t *m;
        counter_t c = {0};
        if (start_node(f, node, dir, &m, &err) != 0)
            _exit(1);
        for (int i = 0; i < stored; i++) {
            tg_usage_t u = row("cus_b", "api_calls", 1);
            if (tg_meter_submit(m, &u, 1, NULL, NULL) != 0 || (i % 3 == 2 && tg_meter_flush(m) != 0))
                _exit(1);
        }
        if (tg_meter_flush(m) != 0)
            _exit(1);
        fault(f, 1); /* what follows is logged (answered) but not stored */
        for (int i = 0; i < unstored; i++) {
            tg_usage_t u = row("cus_b", "api_calls", 1);
            if (tg_meter_submit(m, &u, 1, on_count, &c) != 0)
                _exit(1);
        }
        for (int i = 0; i < 6000 && atomic_load(&c.fired) < unstored; i++)
            sleep_ms(10);
        raise(SIGKILL);
        _exit(1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    fault(f, 0);
}

/* The usage_batches rows of one node. */
static long long rows_of(fx_t *f, const char *node)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM usage_batches WHERE node = '%s'", node);
    return sql_int(f, sql);
}

/* The log directory of node NAME in the fixture's directory. */
static void node_dir(const fx_t *f, const char *name, char dir[128])
{
    snprintf(dir, 128, "%s/node-%s", f->dir, name);
}

/* Node b dies with records in its logs, some stored, some not (the database refused them).
 * Node a prunes all it may: its own rows only. metering recover then applies b's logs, each
 * record once. */
static void test_recover_after_a_prune_counts_once(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    char dir_a[128], dir_b[128];
    node_dir(f, "a", dir_a);
    node_dir(f, "b", dir_b);
    kill_node_with_unstored(f, "b", dir_b, 10, 5);
    long long b_rows = rows_of(f, "b");
    assert_true(b_rows >= 4);
    assert_int_equal(total(f, "api_calls"), 10);

    tg_meter_t *a;
    assert_int_equal(start_node(f, "a", dir_a, &a, &err), 0);
    submit_stored(a, "cus_a", 8);
    tg_meter_stop(a);
    assert_int_equal(start_node(f, "a", dir_a, &a, &err), 0);
    long long a_rows = rows_of(f, "a");
    assert_true(a_rows >= 2);
    /* b's ids are all below a's bound and past the margin: only the node keeps them */
    assert_int_equal(prune(f, a, past_margin_s()), a_rows);
    assert_int_equal(rows_of(f, "b"), b_rows);
    tg_meter_stop(a);

    tg_meter_recovered_t rec;
    assert_int_equal(tg_meter_recover(f->url, dir_b, 0, &rec, &err), 0);
    assert_int_equal(rec.logs, 2);
    assert_int_equal(rec.rows, 5); /* the ones the database had refused; the others were there */
    assert_int_equal(total(f, "api_calls"), 10 + 5 + 8);
    assert_int_equal(tg_meter_recover(f->url, dir_b, 0, &rec, &err), 0); /* emptied: nothing twice */
    assert_int_equal(rec.rows, 0);
    assert_int_equal(total(f, "api_calls"), 10 + 5 + 8);
}

/* ---- drained nodes (metering/batch_prune.h, tg_meter_prune_drained) ---- */

static tg_drained_prune_run_t prune_drained(fx_t *f, int64_t now_s)
{
    tg_err_t err = {0};
    tg_drained_prune_run_t run;
    assert_int_equal(tg_meter_prune_drained(f->st, now_s, 7, INT64_C(60) * 1000000000, &run, &err), 0);
    assert_int_equal(run.more, 0);
    return run;
}

static long long drains_of(fx_t *f, const char *node)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM metering_drained_nodes WHERE node = '%s'", node);
    return sql_int(f, sql);
}

/* A node that stops cleanly (both logs empty, every record stored) is drained: an hour later
 * the schedulers' node deletes its rows, in slices, and forgets the drain. A running node's
 * rows stay: its own prune is bounded by its own logs. */
static void test_drained_node_rows_go_an_hour_after_its_stop(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    char dir_a[128], dir_b[128];
    node_dir(f, "a", dir_a);
    node_dir(f, "b", dir_b);
    tg_meter_t *a, *b;
    assert_int_equal(start_node(f, "a", dir_a, &a, &err), 0);
    submit_stored(a, "cus_a", 6); /* stored, still in a's log */
    assert_int_equal(start_node(f, "b", dir_b, &b, &err), 0);
    submit_stored(b, "cus_b", 40);
    long long a_rows = rows_of(f, "a"), b_rows = rows_of(f, "b");
    assert_true(a_rows >= 2);
    assert_true(b_rows > 7); /* more than one slice */
    assert_int_equal(drains_of(f, "b"), 0);
    tg_meter_stop(b);
    assert_int_equal(drains_of(f, "b"), 1);
    long long drained_at = sql_int(f, "SELECT drained_at FROM metering_drained_nodes WHERE node = 'b'");
    assert_true(drained_at >= sql_int(f, "SELECT MAX(committed_at) FROM usage_batches WHERE node = 'b'"));

    tg_drained_prune_run_t run = prune_drained(f, drained_at + TG_USAGE_BATCHES_LAG_S - 1);
    assert_int_equal(run.deleted, 0); /* not an hour yet: a backup's log copy may hold them */
    assert_int_equal(rows_of(f, "b"), b_rows);
    run = prune_drained(f, drained_at + TG_USAGE_BATCHES_LAG_S);
    assert_int_equal(run.deleted, b_rows);
    assert_true(run.slices >= 2);
    assert_int_equal(run.nodes, 1);
    assert_int_equal(rows_of(f, "b"), 0);
    assert_int_equal(drains_of(f, "b"), 0);
    assert_int_equal(rows_of(f, "a"), a_rows);
    run = prune_drained(f, past_margin_s() + TG_USAGE_BATCHES_LAG_S);
    assert_int_equal(run.deleted, 0);
    assert_int_equal(run.nodes, 0);
    tg_meter_stop(a);
    assert_int_equal(total(f, "api_calls"), 6 + 40); /* the totals are not the batches' */
}

/* A drained node that starts again takes its drain back: its rows are then its own prune's to
 * delete, which keeps whatever its logs could replay. */
static void test_a_restarted_node_takes_its_drain_back(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    char dir_b[128];
    node_dir(f, "b", dir_b);
    tg_meter_t *b;
    assert_int_equal(start_node(f, "b", dir_b, &b, &err), 0);
    submit_stored(b, "cus_b", 5);
    tg_meter_stop(b);
    assert_int_equal(drains_of(f, "b"), 1);
    assert_int_equal(start_node(f, "b", dir_b, &b, &err), 0);
    assert_int_equal(drains_of(f, "b"), 0);
    submit_stored(b, "cus_b", 5);
    long long b_rows = rows_of(f, "b");
    assert_int_equal(prune_drained(f, past_margin_s() + TG_USAGE_BATCHES_LAG_S).deleted, 0);
    assert_int_equal(rows_of(f, "b"), b_rows);
    tg_meter_stop(b);
    assert_int_equal(drains_of(f, "b"), 1);
}

/* Only rows stored by the drain go, by committed_at and by the time in their id: a row stored
 * after it (here written by hand; a node's start takes its drain back first) stays, and so does
 * a row whose id was taken later. A later drain of the same node wins over an earlier one. */
static void test_drained_prune_keeps_what_came_after_the_drain(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    int64_t t = (int64_t)time(NULL) - 2 * 86400;
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO usage_batches(batch_id, rows, committed_at, node) VALUES"
             " (%llu, 1, %lld, 'c'), (%llu, 1, %lld, 'c'), (%llu, 1, %lld, 'c'), (%llu, 1, %lld, 'c')",
             (unsigned long long)tg_meter_event_id_at(t - 100), (long long)(t - 90), /* before: goes */
             (unsigned long long)tg_meter_event_id_at(t - 1), (long long)t,          /* by then: goes */
             (unsigned long long)tg_meter_event_id_at(t - 5), (long long)(t + 1),    /* stored after */
             (unsigned long long)tg_meter_event_id_at(t + 1), (long long)(t - 2));   /* id after */
    sql_exec(f, sql);
    assert_int_equal(tg_store_node_drained(f->st, "c", t - 1000, &err), 0);
    assert_int_equal(tg_store_node_drained(f->st, "c", t, &err), 0);
    assert_int_equal(tg_store_node_drained(f->st, "c", t - 500, &err), 0); /* never back */
    assert_int_equal(sql_int(f, "SELECT drained_at FROM metering_drained_nodes WHERE node = 'c'"), t);
    tg_drained_prune_run_t run = prune_drained(f, t + TG_USAGE_BATCHES_LAG_S);
    assert_int_equal(run.deleted, 2);
    assert_int_equal(run.nodes, 1);
    assert_int_equal(rows_of(f, "c"), 2);
    assert_int_equal(drains_of(f, "c"), 0);
}

/* tollgate metering recover --retire: a node that died with records in its logs has them
 * stored once, and is drained only then, so its rows go an hour later. Without --retire (a
 * backup's copies at restore) nothing is drained. */
static void test_recover_retire_drains_the_node(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    char dir_b[128];
    node_dir(f, "b", dir_b);
    kill_node_with_unstored(f, "b", dir_b, 9, 4);
    assert_int_equal(drains_of(f, "b"), 0); /* killed: it never drained */
    assert_int_equal(total(f, "api_calls"), 9);

    /* a copy of b's logs, recovered as tollgate restore does: stored, nothing drained */
    char copy[160], cmd[512];
    snprintf(copy, sizeof(copy), "%s/copy-b", f->dir);
    snprintf(cmd, sizeof(cmd), "cp -r '%s' '%s'", dir_b, copy);
    assert_int_equal(system(cmd), 0);
    tg_meter_recovered_t rec;
    assert_int_equal(tg_meter_recover(f->url, copy, 0, &rec, &err), 0);
    assert_int_equal(rec.rows, 4);
    assert_int_equal(rec.nnodes, 1);
    assert_string_equal(rec.nodes[0], "b");
    assert_int_equal(rec.retired, 0);
    assert_int_equal(drains_of(f, "b"), 0);

    int64_t before = (int64_t)time(NULL);
    assert_int_equal(tg_meter_recover(f->url, dir_b, TG_METER_RECOVER_RETIRE, &rec, &err), 0);
    assert_int_equal(rec.rows, 0); /* stored once, from the copy */
    assert_int_equal(rec.retired, 1);
    assert_int_equal(total(f, "api_calls"), 13);
    long long drained_at = sql_int(f, "SELECT drained_at FROM metering_drained_nodes WHERE node = 'b'");
    assert_true(drained_at >= before);
    long long b_rows = rows_of(f, "b");
    assert_true(b_rows >= 4);
    assert_int_equal(prune_drained(f, drained_at + TG_USAGE_BATCHES_LAG_S - 1).deleted, 0);
    assert_int_equal(prune_drained(f, drained_at + TG_USAGE_BATCHES_LAG_S).deleted, b_rows);
    assert_int_equal(total(f, "api_calls"), 13);
}

/* A batch stays an hour after it was stored, whatever its id says: here a record logged two
 * hours ago (an outage) and stored by the replay at start, its log reset since. */
static void test_prune_keeps_an_hour_of_batches(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    char path[192];
    log_path(f, 1, path, sizeof(path));
    tg_usage_log_t *log;
    assert_int_equal(tg_usage_log_open(path, &log, &err), 0);
    uint64_t old_id = tg_meter_event_id_at((int64_t)time(NULL) - 2 * 3600);
    tg_usage_t u = row("cus_1", "api_calls", 1);
    assert_int_equal(tg_usage_log_append(log, old_id, &u, 1, &err), 0);
    tg_usage_log_close(log);
    tg_meter_t *m;
    assert_int_equal(start_meter(f, 1, 5, &m, &err), 0); /* stores it and resets the log */
    submit_stored(m, "cus_1", 4);                          /* and fresh ones, still in the log */
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM usage_batches WHERE batch_id = %llu", (unsigned long long)old_id);
    assert_int_equal(sql_int(f, sql), 1);
    long long stored_at = sql_int(f, "SELECT MIN(committed_at) FROM usage_batches");
    long long rows = sql_int(f, "SELECT COUNT(*) FROM usage_batches");
    int in_log = 0;
    assert_true(tg_meter_oldest_replayable(m, &in_log) > old_id); /* its id allows it */
    assert_int_equal(prune(f, m, (int64_t)time(NULL)), 0);
    assert_int_equal(prune(f, m, stored_at + TG_USAGE_BATCHES_MARGIN_S), 0); /* an hour to the second */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM usage_batches"), rows);
    assert_int_equal(prune(f, m, stored_at + TG_USAGE_BATCHES_MARGIN_S + 1), 1); /* only the replayed one */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM usage_batches"), rows - 1);
    tg_meter_stop(m);
    assert_int_equal(total(f, "api_calls"), 5);
}

/* The bound lags the logs by TG_USAGE_BATCHES_LAG_S: records in a log when it was observed keep
 * their rows for that long after the log is reset. A backup copies the logs, then the database:
 * a reset and a prune between the two copies would otherwise leave the backup's log copy a
 * record whose row its database copy lacks, replayed twice at restore. */
static void test_prune_bound_lags_a_reset(void **state)
{
    fx_t *f = *state;
    tg_err_t err = {0};
    tg_meter_t *m;
    assert_int_equal(start_meter(f, 1, 5, &m, &err), 0);
    submit_stored(m, "cus_1", 20); /* stored, still in the log (a backup's log copy would hold them) */
    long long rows = sql_int(f, "SELECT COUNT(*) FROM usage_batches");
    assert_true(rows >= 5);
    tg_batch_prune_lag_t lag = {0};
    tg_batch_prune_run_t run;
    int64_t t = past_margin_s();
    assert_int_equal(tg_meter_prune_batches(m, f->st, &lag, t, 7, INT64_C(60) * 1000000000, &run, &err), 0);
    assert_int_equal(run.deleted, 0);
    tg_meter_stop(m); /* resets the logs: nothing replays those records any more */
    assert_int_equal(start_meter(f, 1, 5, &m, &err), 0);
    assert_int_equal(tg_meter_prune_batches(m, f->st, &lag, t + TG_USAGE_BATCHES_LAG_S - 1, 7,
                                            INT64_C(60) * 1000000000, &run, &err), 0);
    assert_int_equal(run.deleted, 0); /* the bound is not an hour old yet */
    assert_int_equal(tg_meter_prune_batches(m, f->st, &lag, t + TG_USAGE_BATCHES_LAG_S, 7, INT64_C(60) * 1000000000,
                                            &run, &err), 0);
    assert_int_equal(run.deleted, 0); /* the bound of t: those records were in the log then */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM usage_batches"), rows);
    assert_int_equal(tg_meter_prune_batches(m, f->st, &lag, t + 2 * TG_USAGE_BATCHES_LAG_S, 7,
                                            INT64_C(60) * 1000000000, &run, &err), 0);
    assert_int_equal(run.deleted, rows); /* the bound of t + lag, after the reset */
    tg_meter_stop(m);
    assert_int_equal(total(f, "api_calls"), 20);
}

/* ---- event ids ---- */

enum { ID_THREADS = 8, IDS_PER_THREAD = 20000 };

static void *take_ids(void *arg)
{
    uint64_t *ids = arg;
    for (int i = 0; i < IDS_PER_THREAD; i++)
        ids[i] = tg_meter_next_event_id();
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void test_event_ids(void **state)
{
    (void)state;
    uint64_t *ids = malloc(sizeof(uint64_t) * ID_THREADS * IDS_PER_THREAD);
    pthread_t t[ID_THREADS];
    for (int i = 0; i < ID_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, take_ids, ids + (size_t)i * IDS_PER_THREAD), 0);
    for (int i = 0; i < ID_THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < ID_THREADS; i++) /* increasing within each thread */
        for (int j = 1; j < IDS_PER_THREAD; j++)
            assert_true(ids[i * IDS_PER_THREAD + j] > ids[i * IDS_PER_THREAD + j - 1]);
    qsort(ids, ID_THREADS * IDS_PER_THREAD, sizeof(uint64_t), cmp_u64);
    for (int i = 1; i < ID_THREADS * IDS_PER_THREAD; i++) /* unique across threads */
        assert_true(ids[i] > ids[i - 1]);
    assert_true(ids[0] > 0);
    assert_true(ids[ID_THREADS * IDS_PER_THREAD - 1] <= (uint64_t)INT64_MAX); /* fits the store */
    /* time-ordered: ids read the coarse clock, so ids taken a tick of it (1 to 4 ms) plus 2 ms
     * apart are at least 1 ms of microseconds apart */
    struct timespec res, now;
    clock_getres(CLOCK_REALTIME_COARSE, &res);
    uint64_t before = tg_meter_next_event_id();
    sleep_ms((int)(res.tv_nsec / 1000000) + 2);
    uint64_t after = tg_meter_next_event_id();
    assert_true(after - before >= (uint64_t)1000 << 12);
    /* and never ahead of the precise clock: the time part lags it by a tick (the bound allows a
     * second, for a preempted test) */
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t now_us = (uint64_t)now.tv_sec * 1000000 + (uint64_t)now.tv_nsec / 1000 - UINT64_C(1735689600000000);
    assert_true((after >> 12) <= now_us);
    assert_true((after >> 12) + 1000000 >= now_us);
    free(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_strict_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batched_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batched_commits_on_its_own, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_commits_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_refuses_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_record_is_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_until_the_store_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_store_at_stop_keeps_usage_for_the_next_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outage_spills_to_the_log_not_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_of_stored_usage_counts_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absurd_value_does_not_drop_the_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_keeps_a_refused_row_aside_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logs_take_turns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_reset_waits_for_its_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_logs_take_turns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_batches_from_many_loops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_batch_rows_are_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_kill_9_loses_nothing_committed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_syncs_in_the_background, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_does_not_sync_every_tick, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_callback_adds_to_the_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_is_held_by_one_meter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_removes_the_rows_of_reset_logs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_keeps_what_a_crash_replays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_after_a_prune_counts_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_keeps_an_hour_of_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_bound_lags_a_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drained_node_rows_go_an_hour_after_its_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_restarted_node_takes_its_drain_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drained_prune_keeps_what_came_after_the_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_retire_drains_the_node, setup, teardown),
        cmocka_unit_test(test_event_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
