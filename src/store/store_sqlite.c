/* store_sqlite.c - the embedded SQLite backend of store.h.
 *
 * Durability: WAL mode with synchronous=FULL. In WAL mode a COMMIT appends to the -wal file;
 * with synchronous=NORMAL that append sits in the OS page cache, which survives kill -9 of the
 * process but not a power cut or kernel crash, so the last commits could vanish after they were
 * reported (and, in strict metering, after the call was answered). FULL fsyncs the WAL before
 * COMMIT returns: a committed usage batch is on the disk. The metering writer commits whole
 * batches, so the fsync is paid once per group, not per call. WAL also lets the admin thread
 * read while the writer commits; a busy handler (up to 5 s; "the write lock's queue" below)
 * covers the short write-lock waits between the writer, the admin thread and a second process
 * (the CLI).
 *
 * The backend's files: this one (connections, migrations, transactions), store_sqlite_customers.c,
 * _usage.c, _invoices.c, _lists.c, _outbox.c, _payments.c and _meter.c, one concern each,
 * sharing store_sqlite_int.h. Hot statements (usage) are prepared once per connection and kept
 * in the tg_sqlite_t. */
#include "store/store.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "store/migrations.h"
#include "store/store_sqlite_int.h"
#include "util/clock.h"
#include "util/pack.h"

/* Fills err with what was being done and SQLite's own message ("storing usage: database is
 * locked"). Only a uniqueness conflict is TG_EEXIST; every other refusal is TG_ESTORE. */
int tg_sqlite_error(tg_sqlite_t *st, tg_err_t *err, const char *doing)
{
    int code = sqlite3_extended_errcode(st->db);
    int rc = code == SQLITE_CONSTRAINT_UNIQUE || code == SQLITE_CONSTRAINT_PRIMARYKEY ? TG_EEXIST : TG_ESTORE;
    return tg_errf(err, rc, "%s: %s", doing, sqlite3_errmsg(st->db));
}

static int mkdirs_for(const char *path, tg_err_t *err)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof(buf))
        return tg_errf(err, TG_EINVAL, "database path is too long");
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST)
            return tg_errf(err, TG_EIO, "creating directory %s: %s", buf, strerror(errno));
        *p = '/';
    }
    return 0;
}

int tg_sqlite_exec(tg_sqlite_t *st, const char *sql, tg_err_t *err, const char *doing)
{
    char *msg = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = tg_errf(err, TG_ESTORE, "%s: %s", doing, msg != NULL ? msg : sqlite3_errmsg(st->db));
        sqlite3_free(msg);
        return rc;
    }
    return 0;
}

/* TG_SUM(x): SUM over integers that saturates at the ends of int64 instead of failing the whole
 * query with "integer overflow" (SQLite's SUM), so that one saturated total (a customer's
 * absurd usage) cannot make every read of that customer's usage an error. */
static void sum_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    sqlite3_int64 *acc = sqlite3_aggregate_context(ctx, sizeof(*acc));
    if (acc == NULL || sqlite3_value_type(argv[0]) == SQLITE_NULL)
        return;
    sqlite3_int64 v = sqlite3_value_int64(argv[0]);
    if (__builtin_add_overflow(*acc, v, acc))
        *acc = v > 0 ? INT64_MAX : INT64_MIN;
}

static void sum_final(sqlite3_context *ctx)
{
    sqlite3_int64 *acc = sqlite3_aggregate_context(ctx, 0);
    sqlite3_result_int64(ctx, acc != NULL ? *acc : 0);
}

/* ---- the write lock's queue ----
 * SQLite lets one connection write at a time and has no queue for the lock: a connection that
 * finds it taken calls its busy handler, which sqlite3_busy_timeout makes sleep 1, 2, 5 ... up to
 * 100 ms between tries. A connection that commits and begins again at once (the period closer,
 * 500 customers a transaction) takes the lock back in between, so a waiter could poll for
 * seconds. Within one process the connections to a file share a tg_sqlite_file_t: a waiter
 * counts itself, sleeps on a condition variable that every write transaction's end signals (2 ms
 * at most, for writers in other processes), and tg_sqlite_let_writers_in makes the looping
 * connection wait until no waiter is left. Transactions end in SQLite's commit and rollback
 * hooks, which see every write, explicit or not. */

#define BUSY_TIMEOUT_NS (5000 * 1000000LL) /* then "database is locked", as busy_timeout was */
#define BUSY_POLL_NS (2 * 1000000LL)      /* a waiter tries again at least this often */
#define WAITER_STALE_NS (100 * 1000000LL) /* a count not refreshed for this long is not a waiter */
#define LET_IN_MAX_NS (250 * 1000000LL)   /* the looping connection goes on after this anyway */

struct tg_sqlite_file {
    char *path; /* as opened (two spellings of one file get two entries: less fair, still correct) */
    int refs;   /* under files_mu */
    pthread_mutex_t mu;
    pthread_cond_t ended; /* a write transaction ended (CLOCK_MONOTONIC) */
    atomic_int waiters;
    _Atomic int64_t waiter_seen_ns; /* monotonic: a waiter's latest poll */
    tg_sqlite_file_t *next;
};

static pthread_mutex_t files_mu = PTHREAD_MUTEX_INITIALIZER;
static tg_sqlite_file_t *files;

static tg_sqlite_file_t *file_acquire(const char *path)
{
    pthread_mutex_lock(&files_mu);
    tg_sqlite_file_t *f = files;
    while (f != NULL && strcmp(f->path, path) != 0)
        f = f->next;
    if (f == NULL && (f = calloc(1, sizeof(*f))) != NULL) {
        if ((f->path = strdup(path)) == NULL) {
            free(f);
            f = NULL;
        } else {
            pthread_mutex_init(&f->mu, NULL);
            tg_clock_cond_init(&f->ended);
            f->next = files;
            files = f;
        }
    }
    if (f != NULL)
        f->refs++;
    pthread_mutex_unlock(&files_mu);
    return f;
}

static void file_release(tg_sqlite_file_t *f)
{
    if (f == NULL)
        return;
    pthread_mutex_lock(&files_mu);
    if (--f->refs == 0) {
        tg_sqlite_file_t **p = &files;
        while (*p != f)
            p = &(*p)->next;
        *p = f->next;
        pthread_cond_destroy(&f->ended);
        pthread_mutex_destroy(&f->mu);
        free(f->path);
        free(f);
    }
    pthread_mutex_unlock(&files_mu);
}

static void stop_waiting(tg_sqlite_t *st)
{
    if (st->waiting) {
        st->waiting = 0;
        atomic_fetch_sub(&st->file->waiters, 1);
    }
}

/* Waits until tries are due again: at a write transaction's end in this process, or after
 * BUSY_POLL_NS. */
static void wait_for_an_end(tg_sqlite_file_t *f, int64_t ns)
{
    struct timespec until = tg_clock_deadline_ns(CLOCK_MONOTONIC, ns);
    pthread_mutex_lock(&f->mu);
    pthread_cond_timedwait(&f->ended, &f->mu, &until);
    pthread_mutex_unlock(&f->mu);
}

static int on_busy(void *arg, int tries)
{
    tg_sqlite_t *st = arg;
    int64_t now = tg_clock_mono_ns();
    if (tries == 0) {
        st->busy_since_ns = now;
        if (!st->waiting) {
            st->waiting = 1;
            atomic_fetch_add(&st->file->waiters, 1);
        }
    }
    if (now - st->busy_since_ns >= BUSY_TIMEOUT_NS) {
        stop_waiting(st);
        return 0; /* SQLITE_BUSY: "database is locked" */
    }
    atomic_store(&st->file->waiter_seen_ns, now);
    wait_for_an_end(st->file, BUSY_POLL_NS);
    return 1;
}

/* The hooks run as a write transaction ends, before its lock is released: a waiter stops
 * counting itself once it wrote; the wake-up comes after (tg_sqlite_write_ended). */
static int on_commit(void *arg)
{
    stop_waiting(arg);
    return 0;
}

static void on_rollback(void *arg)
{
    stop_waiting(arg);
}

void tg_sqlite_write_ended(tg_sqlite_t *st)
{
    pthread_mutex_lock(&st->file->mu);
    pthread_cond_broadcast(&st->file->ended);
    pthread_mutex_unlock(&st->file->mu);
}

static int tg_sqlite_writers_waiting(tg_store_t *store)
{
    tg_sqlite_t *st = tg_sqlite(store);
    return atomic_load(&st->file->waiters) - st->waiting;
}

static void tg_sqlite_let_writers_in(tg_store_t *store)
{
    tg_sqlite_t *st = tg_sqlite(store);
    tg_sqlite_file_t *f = st->file;
    int64_t start = tg_clock_mono_ns(), now = start;
    while (tg_sqlite_writers_waiting(store) > 0 && now - atomic_load(&f->waiter_seen_ns) < WAITER_STALE_NS &&
           now - start < LET_IN_MAX_NS) {
        wait_for_an_end(f, BUSY_POLL_NS);
        now = tg_clock_mono_ns();
    }
}

int tg_sqlite_open(const char *url, tg_store_t **out, tg_err_t *err)
{
    *out = NULL;
    const char *path = url + 7;
    if (*path == '\0')
        return tg_errf(err, TG_EINVAL, "storage URL \"%s\" has no file path", url);
    int rc = mkdirs_for(path, err);
    if (rc != 0)
        return rc;
    tg_sqlite_t *st = calloc(1, sizeof(*st));
    if (st == NULL || (st->path = strdup(path)) == NULL || (st->file = file_acquire(path)) == NULL) {
        if (st != NULL)
            free(st->path);
        free(st);
        return tg_errf(err, TG_ENOMEM, "out of memory opening %s", path);
    }
    st->base.ops = &tg_sqlite_ops;
    st->folded_mono_ns = tg_clock_mono_ns();
    if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        rc = tg_errf(err, TG_ESTORE, "opening database %s: %s", path,
                     st->db != NULL ? sqlite3_errmsg(st->db) : "out of memory");
        tg_sqlite_close(&st->base);
        return rc;
    }
    sqlite3_busy_handler(st->db, on_busy, st);
    sqlite3_commit_hook(st->db, on_commit, st);
    sqlite3_rollback_hook(st->db, on_rollback, st);
    if (sqlite3_create_function_v2(st->db, "TG_SUM", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, NULL, sum_step,
                                   sum_final, NULL) != SQLITE_OK) {
        rc = tg_errf(err, TG_ESTORE, "opening database %s: %s", path, sqlite3_errmsg(st->db));
        tg_sqlite_close(&st->base);
        return rc;
    }
    if ((rc = tg_sqlite_exec(st, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", err,
                             "configuring the database")) != 0) {
        tg_sqlite_close(&st->base);
        return rc;
    }
    *out = &st->base;
    return 0;
}

void tg_sqlite_close(tg_store_t *store)
{
    tg_sqlite_t *st = tg_sqlite(store);
    if (st == NULL)
        return;
    if (st->journal_batches != 0) /* leave the totals whole for other readers; best effort */
        tg_sqlite_fold_journal(st, NULL);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(st->hot[i]);
    for (int i = 0; i < SQ_COUNT; i++)
        sqlite3_finalize(st->cached[i]);
    sqlite3_close(st->db);
    stop_waiting(st);
    file_release(st->file);
    free(st->path);
    free(st);
}

int tg_sqlite_schema_version(tg_store_t *store, int *version, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    *version = 0;
    if (sqlite3_prepare_v2(st->db, "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_migrations'", -1,
                           &s, NULL) != SQLITE_OK)
        return tg_sqlite_error(st, err, "reading the schema version");
    int exists = sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    if (!exists)
        return 0;
    if (sqlite3_prepare_v2(st->db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", -1, &s, NULL) !=
        SQLITE_OK)
        return tg_sqlite_error(st, err, "reading the schema version");
    if (sqlite3_step(s) == SQLITE_ROW)
        *version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return 0;
}

int tg_sqlite_migrate(tg_store_t *store, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    int rc =
        tg_sqlite_exec(st,
                       "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                       " applied_at INTEGER NOT NULL)",
                       err, "creating schema_migrations");
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < tg_sqlite_migrations_count; i++) {
        const tg_migration_t *m = &tg_sqlite_migrations[i];
        /* BEGIN IMMEDIATE: two processes migrating at once serialise here, and the second
         * sees the version the first applied. */
        if ((rc = tg_sqlite_exec(st, "BEGIN IMMEDIATE", err, "starting a migration")) != 0)
            return rc;
        int version = 0;
        if ((rc = tg_sqlite_schema_version(&st->base, &version, err)) != 0) {
            tg_sqlite_exec(st, "ROLLBACK", NULL, "");
            return rc;
        }
        if (version >= m->version) {
            tg_sqlite_exec(st, "COMMIT", NULL, "");
            continue;
        }
        char doing[128], ins[160];
        snprintf(doing, sizeof(doing), "applying migration %d (%s)", m->version, m->name);
        snprintf(ins, sizeof(ins), "INSERT INTO schema_migrations(version, name, applied_at) VALUES (%d, '%s', %lld)",
                 m->version, m->name, (long long)time(NULL));
        if ((rc = tg_sqlite_exec(st, m->sql, err, doing)) != 0 || (rc = tg_sqlite_exec(st, ins, err, doing)) != 0 ||
            (rc = tg_sqlite_exec(st, "COMMIT", err, doing)) != 0) {
            tg_sqlite_exec(st, "ROLLBACK", NULL, "");
            return rc;
        }
    }
    return 0;
}

/* ---- statements and transactions ---- */

int tg_sqlite_prepare(tg_sqlite_t *st, const char *sql, sqlite3_stmt **s, tg_err_t *err, const char *doing)
{
    if (sqlite3_prepare_v2(st->db, sql, -1, s, NULL) != SQLITE_OK)
        return tg_sqlite_error(st, err, doing);
    return 0;
}

int tg_sqlite_cached(tg_sqlite_t *st, int id, const char *sql, sqlite3_stmt **s, tg_err_t *err, const char *doing)
{
    if (st->cached[id] == NULL &&
        sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st->cached[id], NULL) != SQLITE_OK) {
        st->cached[id] = NULL;
        return tg_sqlite_error(st, err, doing);
    }
    *s = st->cached[id];
    return 0;
}

void tg_sqlite_done(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

int tg_sqlite_cached_exec(tg_sqlite_t *st, int id, const char *sql, tg_err_t *err, const char *doing)
{
    sqlite3_stmt *s = NULL;
    int rc = tg_sqlite_cached(st, id, sql, &s, err, doing);
    if (rc != 0)
        return rc;
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, doing);
    tg_sqlite_done(s);
    return rc;
}

void tg_sqlite_text(sqlite3_stmt *s, int col, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(out, cap, "%s", t != NULL ? (const char *)t : "");
}

int tg_sqlite_tx_begin(tg_store_t *store, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    int rc = tg_sqlite_fold_journal(st, err); /* the transaction sees every committed batch in the totals */
    if (rc != 0)
        return rc;
    return tg_sqlite_exec(st, "BEGIN IMMEDIATE", err, "starting a transaction");
}

/* The savepoint's name is one of the caller's constants (an SQL identifier), never outside data. */
int tg_sqlite_savepoint(tg_store_t *store, const char *name, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    char sql[96];
    snprintf(sql, sizeof(sql), "SAVEPOINT %s", name);
    return tg_sqlite_exec(st, sql, err, "starting a savepoint");
}

int tg_sqlite_savepoint_release(tg_store_t *store, const char *name, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    char sql[96];
    snprintf(sql, sizeof(sql), "RELEASE %s", name);
    return tg_sqlite_exec(st, sql, err, "releasing a savepoint");
}

void tg_sqlite_savepoint_rollback(tg_store_t *store, const char *name)
{
    tg_sqlite_t *st = tg_sqlite(store);
    char sql[160];
    snprintf(sql, sizeof(sql), "ROLLBACK TO %s; RELEASE %s", name, name);
    tg_sqlite_exec(st, sql, NULL, "");
}

int tg_sqlite_tx_commit(tg_store_t *store, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    int rc = tg_sqlite_exec(st, "COMMIT", err, "committing a transaction");
    if (rc != 0)
        tg_sqlite_exec(st, "ROLLBACK", NULL, "");
    tg_sqlite_write_ended(st);
    return rc;
}

void tg_sqlite_tx_rollback(tg_store_t *store)
{
    tg_sqlite_t *st = tg_sqlite(store);
    if (!sqlite3_get_autocommit(st->db)) {
        tg_sqlite_exec(st, "ROLLBACK", NULL, "");
        tg_sqlite_write_ended(st);
    }
}

/* ---- one node (store_cluster.h) ---- */

int tg_sqlite_changes_listen(tg_store_t *store, tg_err_t *err)
{
    (void)store;
    return tg_errf(err, TG_ESTATE, "SQLite serves one node: there are no changes from other nodes to listen to");
}

int tg_sqlite_changes_wait(tg_store_t *store, int timeout_ms, tg_change_cb cb, void *arg, size_t *count,
                           tg_err_t *err)
{
    (void)timeout_ms, (void)cb, (void)arg;
    if (count != NULL)
        *count = 0;
    return tg_sqlite_changes_listen(store, err);
}

int tg_sqlite_leader_try(tg_store_t *store, int *leader, tg_err_t *err)
{
    (void)store, (void)err;
    *leader = 1; /* the only node; a second process (the CLI) runs no scheduler */
    return 0;
}

const tg_store_ops_t tg_sqlite_ops = {
    .name = "sqlite",
    .close = tg_sqlite_close,
    .migrate = tg_sqlite_migrate,
    .schema_version = tg_sqlite_schema_version,
    .backup_to = tg_sqlite_backup_to,
    .restore_from = tg_sqlite_restore_from,
    .customer_insert = tg_sqlite_customer_insert,
    .customer_get = tg_sqlite_customer_get,
    .customer_update = tg_sqlite_customer_update,
    .customer_list = tg_sqlite_customer_list,
    .key_insert = tg_sqlite_key_insert,
    .key_get = tg_sqlite_key_get,
    .key_list = tg_sqlite_key_list,
    .key_set_revoked = tg_sqlite_key_set_revoked,
    .key_set_expires = tg_sqlite_key_set_expires,
    .key_touch = tg_sqlite_key_touch,
    .usage_record = tg_sqlite_usage_record,
    .usage_record_many = tg_sqlite_usage_record_many,
    .usage_event_ids_prune = tg_sqlite_usage_event_ids_prune,
    .usage_event_ids_each = tg_sqlite_usage_event_ids_each,
    .usage_event_id_blocks_last = tg_sqlite_usage_event_id_blocks_last,
    .usage_event_id_blocks_after = tg_sqlite_usage_event_id_blocks_after,
    .usage_fold = tg_sqlite_usage_fold,
    .usage_period = tg_sqlite_usage_period,
    .usage_daily = tg_sqlite_usage_daily,
    .usage_endpoints = tg_sqlite_usage_endpoints,
    .usage_load = tg_sqlite_usage_load,
    .usage_total = tg_sqlite_usage_total,
    .customer_page = tg_sqlite_customer_page,
    .customer_search = tg_sqlite_customer_search,
    .invoice_search = tg_sqlite_invoice_search,
    .invoice_search_totals = tg_sqlite_invoice_search_totals,
    .key_page = tg_sqlite_key_page,
    .key_count_active = tg_sqlite_key_count_active,
    .usage_rejected_list = tg_sqlite_usage_rejected_list,
    .usage_rejected_count = tg_sqlite_usage_rejected_count,
    .billing_failure_set = tg_sqlite_billing_failure_set,
    .billing_failure_clear = tg_sqlite_billing_failure_clear,
    .billing_failure_count = tg_sqlite_billing_failure_count,
    .billing_failure_list = tg_sqlite_billing_failure_list,
    .customers_due = tg_sqlite_customers_due,
    .customer_set_next_period_end = tg_sqlite_customer_set_next_period_end,
    .customer_set_password = tg_sqlite_customer_set_password,
    .customer_by_email = tg_sqlite_customer_by_email,
    .session_insert = tg_sqlite_session_insert,
    .session_get = tg_sqlite_session_get,
    .session_delete = tg_sqlite_session_delete,
    .session_delete_customer = tg_sqlite_session_delete_customer,
    .owner_session_insert = tg_sqlite_owner_session_insert,
    .owner_session_get = tg_sqlite_owner_session_get,
    .owner_session_delete = tg_sqlite_owner_session_delete,
    .trial_used = tg_sqlite_trial_used,
    .trial_record = tg_sqlite_trial_record,
    .plan_change_add = tg_sqlite_plan_change_add,
    .plan_change_count = tg_sqlite_plan_change_count,
    .invoice_item_add = tg_sqlite_invoice_item_add,
    .invoice_create = tg_sqlite_invoice_create,
    .invoice_preview = tg_sqlite_invoice_preview,
    .invoice_close_batch = tg_sqlite_invoice_close_batch,
    .invoice_get = tg_sqlite_invoice_get,
    .tx_begin = tg_sqlite_tx_begin,
    .tx_commit = tg_sqlite_tx_commit,
    .tx_rollback = tg_sqlite_tx_rollback,
    .let_writers_in = tg_sqlite_let_writers_in,
    .writers_waiting = tg_sqlite_writers_waiting,
    .savepoint = tg_sqlite_savepoint,
    .savepoint_release = tg_sqlite_savepoint_release,
    .savepoint_rollback = tg_sqlite_savepoint_rollback,
    .invoice_list = tg_sqlite_invoice_list,
    .invoice_totals = tg_sqlite_invoice_totals,
    .invoice_page = tg_sqlite_invoice_page,
    .invoice_transition = tg_sqlite_invoice_transition,
    .invoice_draft_refresh = tg_sqlite_invoice_draft_refresh,
    .invoice_hold = tg_sqlite_invoice_hold,
    .invoice_drafts_due = tg_sqlite_invoice_drafts_due,
    .outbox_insert = tg_sqlite_outbox_insert,
    .outbox_due = tg_sqlite_outbox_due,
    .outbox_next_due = tg_sqlite_outbox_next_due,
    .outbox_done = tg_sqlite_outbox_done,
    .outbox_retry = tg_sqlite_outbox_retry,
    .outbox_fail = tg_sqlite_outbox_fail,
    .outbox_defer = tg_sqlite_outbox_defer,
    .outbox_requeue = tg_sqlite_outbox_requeue,
    .outbox_get = tg_sqlite_outbox_get,
    .outbox_get_by_key = tg_sqlite_outbox_get_by_key,
    .outbox_customers_missing = tg_sqlite_outbox_customers_missing,
    .outbox_prune = tg_sqlite_outbox_prune,
    .outbox_pull_in = tg_sqlite_outbox_pull_in,
    .stripe_customer_get = tg_sqlite_stripe_customer_get,
    .stripe_customer_owner = tg_sqlite_stripe_customer_owner,
    .outbox_customer_latest = tg_sqlite_outbox_customer_latest,
    .outbox_earlier_pending = tg_sqlite_outbox_earlier_pending,
    .outbox_customer_latest_of = tg_sqlite_outbox_customer_latest_of,
    .outbox_page = tg_sqlite_outbox_page,
    .outbox_counts = tg_sqlite_outbox_counts,
    .stripe_event_insert = tg_sqlite_stripe_event_insert,
    .stripe_event_next = tg_sqlite_stripe_event_next,
    .stripe_event_mark = tg_sqlite_stripe_event_mark,
    .stripe_event_get = tg_sqlite_stripe_event_get,
    .stripe_event_count = tg_sqlite_stripe_event_count,
    .stripe_invoice_get = tg_sqlite_stripe_invoice_get,
    .stripe_invoice_put = tg_sqlite_stripe_invoice_put,
    .stripe_debt = tg_sqlite_stripe_debt,
    .dunning_get = tg_sqlite_dunning_get,
    .dunning_put = tg_sqlite_dunning_put,
    .dunning_clear = tg_sqlite_dunning_clear,
    .dunning_list = tg_sqlite_dunning_list,
    .status_history_add = tg_sqlite_status_history_add,
    .status_history_list = tg_sqlite_status_history_list,
    .payment_method_put = tg_sqlite_payment_method_put,
    .payment_method_get = tg_sqlite_payment_method_get,
    .stripe_subscription_map = tg_sqlite_stripe_subscription_map,
    .stripe_subscription_get = tg_sqlite_stripe_subscription_get,
    .stripe_subscription_latest = tg_sqlite_stripe_subscription_latest,
    .customers_without_subscription = tg_sqlite_customers_without_subscription,
    .stripe_subscription_put = tg_sqlite_stripe_subscription_put,
    .meter_export_set = tg_sqlite_meter_export_set,
    .meter_due = tg_sqlite_meter_due,
    .meter_mark = tg_sqlite_meter_mark,
    .meter_set_seq = tg_sqlite_meter_set_seq,
    .meter_period_exported = tg_sqlite_meter_period_exported,
    .meter_prune = tg_sqlite_meter_prune,
    .meter_customer_backlog = tg_sqlite_meter_customer_backlog,
    .meter_refused = tg_sqlite_meter_refused,
    .meter_take_back = tg_sqlite_meter_take_back,
    .meter_outbox_counts = tg_sqlite_meter_outbox_counts,
    .changes_listen = tg_sqlite_changes_listen,
    .changes_wait = tg_sqlite_changes_wait,
    .leader_try = tg_sqlite_leader_try,
    /* store_notify.h (issue 13, part A) */
    .event_insert = tg_sqlite_event_insert,
    .event_get = tg_sqlite_event_get,
    .event_page = tg_sqlite_event_page,
    .webhook_endpoint_insert = tg_sqlite_webhook_endpoint_insert,
    .webhook_endpoint_get = tg_sqlite_webhook_endpoint_get,
    .webhook_endpoint_update = tg_sqlite_webhook_endpoint_update,
    .webhook_endpoint_delete = tg_sqlite_webhook_endpoint_delete,
    .webhook_endpoint_list = tg_sqlite_webhook_endpoint_list,
    .webhook_delivery_insert = tg_sqlite_webhook_delivery_insert,
    .webhook_delivery_get = tg_sqlite_webhook_delivery_get,
    .webhook_delivery_claim = tg_sqlite_webhook_delivery_claim,
    .webhook_delivery_next_due = tg_sqlite_webhook_delivery_next_due,
    .webhook_delivery_update = tg_sqlite_webhook_delivery_update,
    .webhook_delivery_page = tg_sqlite_webhook_delivery_page,
    .webhook_attempt_list = tg_sqlite_webhook_attempt_list,
    .notification_settings_get = tg_sqlite_notification_settings_get,
    .notification_settings_put = tg_sqlite_notification_settings_put,
    .mail_insert = tg_sqlite_mail_insert,
    .mail_claim = tg_sqlite_mail_claim,
    .mail_next_due = tg_sqlite_mail_next_due,
    .mail_record = tg_sqlite_mail_record,
    .mail_requeue = tg_sqlite_mail_requeue,
    .mail_get = tg_sqlite_mail_get,
    .mail_page = tg_sqlite_mail_page,
    .mail_attempts = tg_sqlite_mail_attempts,
    .email_token_insert = tg_sqlite_email_token_insert,
    .email_token_use = tg_sqlite_email_token_use,
    .email_token_revoke = tg_sqlite_email_token_revoke,
    .customer_confirm_email = tg_sqlite_customer_confirm_email,
    /* part C (issue 13) */
    .mark_insert = tg_sqlite_mark_insert,
    .marks_list = tg_sqlite_marks_list,
    .budget_set = tg_sqlite_budget_set,
    .budget_get = tg_sqlite_budget_get,
    .budgets_list = tg_sqlite_budgets_list,
    .trials_ending = tg_sqlite_trials_ending,
    .notify_prune = tg_sqlite_notify_prune,
    .usage_batches_prune = tg_sqlite_usage_batches_prune,
    .node_drained = tg_sqlite_node_drained,
    .drained_nodes = tg_sqlite_drained_nodes,
    .drained_node_forget = tg_sqlite_drained_node_forget,
    .notify_pending = tg_sqlite_notify_pending,
    /* issue 14 */
    .audit_append = tg_sqlite_audit_append,
    .audit_page = tg_sqlite_audit_page,
    .ingest_token_insert = tg_sqlite_ingest_token_insert,
    .ingest_token_get = tg_sqlite_ingest_token_get,
    .ingest_token_set_revoked = tg_sqlite_ingest_token_set_revoked,
    .ingest_token_page = tg_sqlite_ingest_token_page,
    .ingest_token_list_active = tg_sqlite_ingest_token_list_active,
    .event_key_blake2b_until = tg_sqlite_event_key_blake2b_until,
};
