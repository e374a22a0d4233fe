/* store_sqlite_usage.c - usage in SQLite: batches recorded exactly once into a journal, folded
 * into the per-period, per-day and per-hour totals in bulk, and read back (store.h). */
#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/event_id_block.h"
#include "store/store_sqlite_int.h"
#include "store/usage_aggregate.h"
#include "util/period.h"
#include "util/clock.h"
#include "util/pack.h"

/* The ids of a transaction's batches go into usage_batches up to 16 per statement (1, 2, 4, 8
 * or 16 rows: ST_BATCH_INSERT_N). Each statement costs about 3,900 instructions besides its rows'
 * ~1,500 (callgrind, a WITHOUT ROWID table of 100,000 ids), and the applier stores one id per
 * event loop iteration's record: one statement per id was most of what storing a transaction
 * cost SQLite. */
#define BATCH_ROW "(?,?,?,?)"
#define BATCH_ROWS_2 BATCH_ROW "," BATCH_ROW
#define BATCH_ROWS_4 BATCH_ROWS_2 "," BATCH_ROWS_2
#define BATCH_ROWS_8 BATCH_ROWS_4 "," BATCH_ROWS_4
#define BATCH_ROWS_16 BATCH_ROWS_8 "," BATCH_ROWS_8
#define BATCH_INSERT(rows)                                                                                             \
    "INSERT INTO usage_batches(batch_id, rows, committed_at, node) VALUES " rows " ON CONFLICT DO NOTHING"
#define BATCH_INSERT_MAX 16

/* The statements of the hot path, prepared once per connection (prepare_hot). */
static const char *const hot_sql[ST_COUNT] = {
    BATCH_INSERT(BATCH_ROW),
    BATCH_INSERT(BATCH_ROWS_2),
    BATCH_INSERT(BATCH_ROWS_4),
    BATCH_INSERT(BATCH_ROWS_8),
    BATCH_INSERT(BATCH_ROWS_16),
    /* SQLite turns an integer sum that overflows into a REAL instead of failing, so an update
     * that would overflow is skipped by its WHERE; the writer sees no change and rolls the batch
     * back (TG_ERANGE). (Not RETURNING: it builds a temporary table on every execution, which
     * was a third of the writer's CPU under load.) */
    "INSERT INTO usage_period(customer_id, period_start, plan_id, metric, units) VALUES (?,?,?,?,?)"
    " ON CONFLICT(customer_id, period_start, metric, plan_id) DO UPDATE SET units = units + excluded.units"
    " WHERE units <= 9223372036854775807 - excluded.units",
    "INSERT INTO usage_daily(customer_id, day, metric, endpoint, units) VALUES (?,?,?,?,?)"
    " ON CONFLICT(customer_id, day, metric, endpoint) DO UPDATE SET units = units + excluded.units"
    " WHERE units <= 9223372036854775807 - excluded.units",
    /* Most totals exist already: a plain UPDATE is tried first (one seek instead of the
     * upsert's insert attempt then update); the upsert runs only when nothing was changed. */
    "UPDATE usage_period SET units = units + ?5 WHERE customer_id = ?1 AND period_start = ?2 AND plan_id = ?3"
    " AND metric = ?4 AND units <= 9223372036854775807 - ?5",
    "UPDATE usage_daily SET units = units + ?5 WHERE customer_id = ?1 AND day = ?2 AND metric = ?3"
    " AND endpoint = ?4 AND units <= 9223372036854775807 - ?5",
    /* A total that would pass 2^63-1 stays there (see tg_sqlite_fold_journal). */
    "UPDATE usage_period SET units = 9223372036854775807 WHERE customer_id = ?1 AND period_start = ?2"
    " AND plan_id = ?3 AND metric = ?4 AND ?5 >= 0",
    "UPDATE usage_daily SET units = 9223372036854775807 WHERE customer_id = ?1 AND day = ?2 AND metric = ?3"
    " AND endpoint = ?4 AND ?5 >= 0",
    /* The journal's key is its own insertion order (a rowid), not a batch id: batch ids are
     * unique per node only (migration 22). */
    "INSERT INTO usage_journal(batch_id, data) VALUES (NULL,?)",
    "SELECT 1 FROM usage_journal LIMIT 1",
    "INSERT INTO usage_rejected(batch_id, event_id, customer_id, key_id, plan_id, metric, endpoint, units,"
    " period_start, ts_ns, status, reason, rejected_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
    /* usage_hourly (billing: stripe, migration 17): a new row of a (customer, metric, ts) that
     * was sent before takes that group's seq, so the next send of the group gets a new
     * identifier; a total that would pass 2^63-1 stays there. */
    "INSERT INTO usage_hourly(customer_id, metric, hour_start, period_start, plan_id, ts, units, exported, seq)"
    " VALUES (?1,?2,?3,?4,?5,?6,?7,0,COALESCE((SELECT MAX(seq) FROM usage_hourly WHERE customer_id = ?1"
    " AND metric = ?2 AND ts = ?6),0))"
    " ON CONFLICT(customer_id, metric, hour_start, period_start, plan_id) DO UPDATE SET units ="
    " CASE WHEN units <= 9223372036854775807 - excluded.units THEN units + excluded.units"
    " ELSE 9223372036854775807 END",
    "SELECT 1 FROM meter_export",
    /* a batch's event ids, packed in one row (migration 35, event_id_block.h) */
    "INSERT INTO usage_event_id_blocks(ts_min, ts_max, n, data) VALUES (?,?,?,?)",
    /* the transactions of usage_record_many and the fold, prepared once: sqlite3_exec parsed
     * them anew each time, about 3,700 instructions per BEGIN or COMMIT under callgrind
     * (bench/callpath_instructions.sh), twice per applier transaction */
    "BEGIN IMMEDIATE",
    "COMMIT",
};

/* Runs hot statement `which` (BEGIN IMMEDIATE or COMMIT), as tg_sqlite_exec would: 0, or
 * TG_ESTORE with "doing: SQLite's message". */
static int exec_hot(tg_sqlite_t *st, int which, tg_err_t *err, const char *doing)
{
    sqlite3_stmt *s = st->hot[which];
    sqlite3_reset(s);
    int step = sqlite3_step(s);
    int rc = step == SQLITE_DONE ? 0 : tg_errf(err, TG_ESTORE, "%s: %s", doing, sqlite3_errmsg(st->db));
    sqlite3_reset(s);
    if (which == ST_COMMIT)
        tg_sqlite_write_ended(st);
    return rc;
}

/* ---- usage ----
 * The rows a batch refuses, the day and hour of a call and the sums of a batch by each total's
 * key are the store's, not SQLite's: usage_aggregate.h (the PostgreSQL backend uses them too). */

static int bind_total(sqlite3_stmt *s, const tg_usage_agg_row_t *r, int daily, uint64_t units)
{
    const tg_usage_t *u = r->u;
    sqlite3_reset(s);
    sqlite3_bind_text(s, 1, u->customer_id, -1, SQLITE_STATIC);
    if (daily) {
        sqlite3_bind_text(s, 2, r->day, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, u->metric, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, u->endpoint, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_int64(s, 2, u->period_start);
        sqlite3_bind_text(s, 3, u->plan_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, u->metric, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(s, 5, (sqlite3_int64)units);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE)
        rc = sqlite3_reset(s); /* the statement's error code and message */
    else
        sqlite3_reset(s);
    return rc == SQLITE_OK ? SQLITE_ERROR : rc;
}

/* Adds units to the usage_period (or, if daily, usage_daily) total of r's key. Totals saturate at
 * 2^63-1 like the sums (tg_usage_add_saturating): refusing one would block every later batch. */
static int upsert_one(tg_sqlite_t *st, const tg_usage_agg_row_t *r, int daily, uint64_t units)
{
    int rc = bind_total(st->hot[daily ? ST_DAILY_ADD : ST_PERIOD_ADD], r, daily, units);
    if (rc == SQLITE_DONE && sqlite3_changes(st->db) == 0) {
        /* no such total yet, or it would overflow: the upsert tells which */
        rc = bind_total(st->hot[daily ? ST_USAGE_DAILY : ST_USAGE_PERIOD], r, daily, units);
        if (rc == SQLITE_DONE && sqlite3_changes(st->db) == 0)
            rc = bind_total(st->hot[daily ? ST_DAILY_MAX : ST_PERIOD_MAX], r, daily, units);
    }
    return rc;
}

/* Adds units to the usage_hourly row of r's customer, metric, hour, period and plan. */
static int upsert_hourly(tg_sqlite_t *st, const tg_usage_agg_row_t *r, uint64_t units)
{
    const tg_usage_t *u = r->u;
    int64_t ts = tg_usage_bucket_ts(r);
    sqlite3_stmt *s = st->hot[ST_HOURLY_UPSERT];
    sqlite3_reset(s);
    sqlite3_bind_text(s, 1, u->customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, u->metric, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, r->hour);
    sqlite3_bind_int64(s, 4, u->period_start);
    sqlite3_bind_text(s, 5, u->plan_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, ts);
    sqlite3_bind_int64(s, 7, (sqlite3_int64)units);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE)
        rc = sqlite3_reset(s);
    else
        sqlite3_reset(s);
    return rc == SQLITE_OK ? SQLITE_ERROR : rc;
}

/* Sums refs by one total's key (usage_aggregate) and adds each sum to its total. */
static int fold_group(tg_sqlite_t *st, const tg_usage_agg_row_t *refs, size_t n, tg_usage_by_t by, tg_err_t *err)
{
    tg_usage_sum_t *sums;
    size_t ns;
    int rc = tg_usage_agg_sum(refs, n, by, 0, &sums, &ns, err);
    if (rc != 0)
        return rc;
    int step = SQLITE_DONE;
    for (size_t k = 0; k < ns && step == SQLITE_DONE; k++)
        step = by == TG_USAGE_BY_HOUR ? upsert_hourly(st, sums[k].key, sums[k].units)
                                      : upsert_one(st, sums[k].key, by == TG_USAGE_BY_DAY, sums[k].units);
    free(sums);
    return step == SQLITE_DONE ? 0 : tg_sqlite_error(st, err, "folding usage");
}

/* ---- the usage journal ----
 * A batch is stored as one journal row (its rows summed by key, packed in a blob): one small
 * insert and one fsync per batch, whatever the number of customers in it. The journal is
 * folded into usage_period and usage_daily in bulk (many batches per transaction, so a busy
 * customer's total is written once per fold, not once per batch), by the writer every
 * JOURNAL_FOLD_BATCHES batches or JOURNAL_FOLD_ENTRIES entries (or after JOURNAL_FOLD_NS when
 * traffic is light) and by every reader of the totals before it reads. Folding deletes the rows
 * it applied in the same transaction, so each batch counts exactly once. A fold holds the
 * writer (and strict responses) while it runs; measured in strict mode with 1,000 customers:
 * every 64 batches, 4.7 ms 20 times a second; every 256, 5.8 ms 6 times a second; every 1,024,
 * 22 ms twice a second (reading and deleting the journal rows starts to dominate). */
#define JOURNAL_FOLD_NS 1000000000LL
#define JOURNAL_FOLD_BATCHES 256
#define JOURNAL_FOLD_ENTRIES 32768
#define JOURNAL_FOLD_MAX_ROWS 256 /* journal rows per fold transaction */

/* Entry: customer, plan, metric, day, endpoint (each a length byte and bytes), period start,
 * units (little-endian 64-bit). The day is "YYYY-MM-DDTHH", the UTC hour of the calls (for
 * usage_hourly); entries journaled before the hour was added say "YYYY-MM-DD" and count in the
 * day's first hour. */
#define JOURNAL_ENTRY_MAX (5 + TG_ID_MAX + TG_PLAN_ID_MAX + TG_METRIC_MAX + 16 + TG_ENDPOINT_MAX + 16)

/* Packs the sums of refs[0..n) by the whole journal key into blob (room for n entries), its
 * length into *len and the number of entries into *entries. 0, or TG_ENOMEM. */
static int pack_journal(const tg_usage_agg_row_t *refs, size_t n, unsigned char *blob, size_t *len, size_t *entries,
                        tg_err_t *err)
{
    tg_usage_sum_t *sums;
    size_t nsums;
    int rc = tg_usage_agg_sum(refs, n, TG_USAGE_BY_ALL, 0, &sums, &nsums, err);
    if (rc != 0)
        return rc;
    unsigned char *p = blob;
    for (size_t i = 0; i < nsums; i++) {
        const tg_usage_agg_row_t *r = sums[i].key;
        const tg_usage_t *u = r->u;
        char day_hour[16];
        int64_t hour_of_day = (r->hour % 86400 + 86400) % 86400 / 3600;
        snprintf(day_hour, sizeof(day_hour), "%.10sT%02d", r->day, (int)hour_of_day);
        p = tg_pack_str(p, u->customer_id, TG_ID_MAX);
        p = tg_pack_str(p, u->plan_id, TG_PLAN_ID_MAX);
        p = tg_pack_str(p, u->metric, TG_METRIC_MAX);
        p = tg_pack_str(p, day_hour, sizeof(day_hour));
        p = tg_pack_str(p, u->endpoint, TG_ENDPOINT_MAX);
        tg_le_put64(p, (uint64_t)u->period_start);
        tg_le_put64(p + 8, sums[i].units);
        p += 16;
    }
    free(sums);
    *len = (size_t)(p - blob);
    *entries = nsums;
    return 0;
}

/* The ids of a batch's event rows, packed as one usage_event_id_blocks row (event_id_block.h):
 * data is malloc'd, NULL when the batch has no event row (n 0). */
typedef struct id_block {
    unsigned char *data;
    size_t len;
    int64_t n, ts_min, ts_max;
} id_block_t;

/* Packs the id, time and customer of every event row of refs[0..n) into *b, without looking any
 * up: on one node the dedup index already counted each event once (store.h). Calls' rows cost
 * one bit test each. 0, or TG_ENOMEM. */
static int pack_event_ids(const tg_usage_agg_row_t *refs, size_t n, id_block_t *b, tg_err_t *err)
{
    memset(b, 0, sizeof(*b));
    size_t events = 0;
    for (size_t i = 0; i < n; i++)
        events += tg_usage_is_event(refs[i].u);
    if (events == 0)
        return 0;
    /* n was capped by the caller (INT_MAX / JOURNAL_ENTRY_MAX rows), so this neither overflows
     * nor passes the int length a blob is bound with */
    _Static_assert(TG_EVENT_ID_ENTRY_MAX <= JOURNAL_ENTRY_MAX, "an event id entry fits a journal entry's room");
    if ((b->data = malloc(events * TG_EVENT_ID_ENTRY_MAX)) == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory packing %zu usage event ids", events);
    unsigned char *p = b->data;
    b->ts_min = INT64_MAX;
    b->ts_max = INT64_MIN;
    for (size_t i = 0; i < n; i++) {
        const tg_usage_t *u = refs[i].u;
        if (!tg_usage_is_event(u))
            continue;
        int64_t ts = tg_usage_ns_to_s(u->ts_ns);
        b->ts_min = ts < b->ts_min ? ts : b->ts_min;
        b->ts_max = ts > b->ts_max ? ts : b->ts_max;
        p = tg_event_id_block_put(p, u->event_id, ts, u->customer_id);
    }
    b->n = (int64_t)events;
    b->len = (size_t)(p - b->data);
    return 0;
}

/* Appends block b (inside the batch's transaction) as one row: one INSERT per batch, where one
 * per event cost ~2.5 us of the applier per event. An SQLite result code (SQLITE_DONE when it
 * went well). */
static int append_event_ids(tg_sqlite_t *st, const id_block_t *b)
{
    sqlite3_stmt *ins = st->hot[ST_EVENT_ID_BLOCK_INSERT];
    sqlite3_reset(ins);
    sqlite3_bind_int64(ins, 1, b->ts_min);
    sqlite3_bind_int64(ins, 2, b->ts_max);
    sqlite3_bind_int64(ins, 3, b->n);
    sqlite3_bind_blob(ins, 4, b->data, (int)b->len, SQLITE_STATIC);
    int step = sqlite3_step(ins);
    sqlite3_reset(ins);
    sqlite3_clear_bindings(ins);
    return step;
}

/* Pages the connection that stores usage keeps (SQLite's cache_size, in KiB when negative).
 * Sized when usage_event_ids was keyed by a hash (migration 33; 34 made it a table in applied
 * order), so that each event row's insert read and dirtied a page of its own, anywhere in the
 * table. With SQLite's default 2 MiB the pages of a table past that
 * were read back from the file for nearly every row (pread: a quarter of the applier's time);
 * measured with bench/events.sh (1.5M events, 2 cores, load 5-7), this cache took the CPU per
 * event including storing from 22.5 to 16.2 us. Memory is taken only as pages are read, up to
 * this bound, and only on the connection that stores usage (the meter's applier): only a store
 * that holds millions of event ids uses it all. */
#define USAGE_WRITER_CACHE_KIB 262144

/* The usage statements, prepared once per connection (the schema must be migrated first). */
static int prepare_hot(tg_sqlite_t *st, tg_err_t *err)
{
    int rc;
    for (int i = 0; i < ST_COUNT; i++)
        if (st->hot[i] == NULL &&
            (rc = tg_sqlite_prepare(st, hot_sql[i], &st->hot[i], err, "preparing usage statements")) != 0)
            return rc;
    return 0;
}

int tg_sqlite_usage_record(tg_store_t *store, uint64_t batch_id, const tg_usage_t *rows, size_t n, size_t *inserted,
                           tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    tg_usage_batch_t b = {batch_id, rows, n, NULL};
    tg_usage_stored_t out;
    int rc = tg_sqlite_usage_record_many(&st->base, &b, 1, &out, err);
    if (inserted != NULL)
        *inserted = rc == 0 ? out.inserted : 0;
    return rc;
}

/* Keeps row u of batch_id aside in usage_rejected (inside the caller's transaction). Fields
 * are read up to their capacity, since a refused row may lack a terminator. */
static int reject_row(sqlite3_stmt *ins, uint64_t batch_id, const tg_usage_t *u, const char *why)
{
    char units[24];
    snprintf(units, sizeof(units), "%llu", (unsigned long long)u->units);
    sqlite3_reset(ins);
    sqlite3_bind_int64(ins, 1, (sqlite3_int64)batch_id);
    sqlite3_bind_int64(ins, 2, (sqlite3_int64)(u->event_id & (uint64_t)INT64_MAX));
    sqlite3_bind_text(ins, 3, u->customer_id, (int)strnlen(u->customer_id, sizeof(u->customer_id)), SQLITE_STATIC);
    sqlite3_bind_text(ins, 4, u->key_id, (int)strnlen(u->key_id, sizeof(u->key_id)), SQLITE_STATIC);
    sqlite3_bind_text(ins, 5, u->plan_id, (int)strnlen(u->plan_id, sizeof(u->plan_id)), SQLITE_STATIC);
    sqlite3_bind_text(ins, 6, u->metric, (int)strnlen(u->metric, sizeof(u->metric)), SQLITE_STATIC);
    sqlite3_bind_text(ins, 7, u->endpoint, (int)strnlen(u->endpoint, sizeof(u->endpoint)), SQLITE_STATIC);
    sqlite3_bind_text(ins, 8, units, -1, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 9, u->period_start);
    sqlite3_bind_int64(ins, 10, u->ts_ns);
    sqlite3_bind_int(ins, 11, u->status);
    sqlite3_bind_text(ins, 12, why, -1, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 13, (sqlite3_int64)time(NULL));
    int step = sqlite3_step(ins);
    sqlite3_reset(ins);
    return step;
}

int tg_sqlite_usage_record_many(tg_store_t *store, const tg_usage_batch_t *batches, size_t nb, tg_usage_stored_t *out,
                                tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    int rc;
    size_t n = 0, nrejected = 0;
    tg_usage_stored_t ignored;
    if (out == NULL)
        out = &ignored;
    memset(out, 0, sizeof(*out));
    char why[sizeof(out->reason)];
    for (size_t k = 0; k < nb; k++) {
        if (batches[k].id > (uint64_t)INT64_MAX)
            return tg_errf(err, TG_ERANGE, "storing usage: batch id %llu does not fit",
                           (unsigned long long)batches[k].id);
        if (batches[k].n > INT_MAX / JOURNAL_ENTRY_MAX - n) /* the packed rows are bound as one blob (int length) */
            return tg_errf(err, TG_EINVAL, "storing usage: a batch of %zu rows is too large", n + batches[k].n);
        n += batches[k].n;
    }
    if (nb == 0)
        return 0;
    if (!st->usage_writer) { /* this connection stores usage: its cache is sized for that, once */
        char pragma[64];
        snprintf(pragma, sizeof(pragma), "PRAGMA cache_size=-%d", USAGE_WRITER_CACHE_KIB);
        if ((rc = tg_sqlite_exec(st, pragma, err, "sizing the usage writer's cache")) != 0)
            return rc;
        st->usage_writer = 1;
    }
    if ((rc = prepare_hot(st, err)) != 0)
        return rc;
    /* The rows the totals take (n of them), summed by the whole journal key, then packed. The
     * sums saturate like the stored totals (upsert_one): one absurd value in a batch must not
     * refuse the calls of everyone else in it. */
    tg_usage_agg_row_t *refs;
    size_t len = 0, entries = 0;
    if ((rc = tg_usage_agg_collect(batches, nb, &refs, &n, &nrejected, out->reason, sizeof(out->reason), err)) != 0)
        return rc;
    id_block_t ids;
    if ((rc = pack_event_ids(refs, n, &ids, err)) != 0) {
        free(refs);
        return rc;
    }
    unsigned char *blob = malloc((n ? n : 1) * JOURNAL_ENTRY_MAX);
    if (blob == NULL || (rc = pack_journal(refs, n, blob, &len, &entries, err)) != 0) {
        free(refs);
        free(blob);
        free(ids.data);
        return blob == NULL ? tg_errf(err, TG_ENOMEM, "out of memory storing %zu usage rows", n) : rc;
    }

    if ((rc = exec_hot(st, ST_BEGIN_IMMEDIATE, err, "storing usage")) != 0) {
        free(blob);
        free(refs);
        free(ids.data);
        return rc;
    }
    int step = SQLITE_DONE;
    size_t fresh = 0; /* batch ids not stored before */
    sqlite3_int64 now = (sqlite3_int64)time(NULL);
    _Static_assert(ST_BATCH_INSERT_16 - ST_BATCH_INSERT == 4 && BATCH_INSERT_MAX == 16,
                   "ST_BATCH_INSERT_N follow ST_BATCH_INSERT, N doubling");
    for (size_t k = 0; k < nb && step == SQLITE_DONE;) {
        int rows = BATCH_INSERT_MAX, which = ST_BATCH_INSERT_16;
        while ((size_t)rows > nb - k) /* the largest statement that fits */
            rows /= 2, which--;
        sqlite3_stmt *b = st->hot[which];
        sqlite3_reset(b);
        for (int i = 0; i < rows; i++, k++) {
            sqlite3_bind_int64(b, 4 * i + 1, (sqlite3_int64)batches[k].id);
            sqlite3_bind_int64(b, 4 * i + 2, (sqlite3_int64)batches[k].n);
            sqlite3_bind_int64(b, 4 * i + 3, now);
            sqlite3_bind_text(b, 4 * i + 4, batches[k].node != NULL ? batches[k].node : "", -1, SQLITE_STATIC);
        }
        step = sqlite3_step(b);
        sqlite3_reset(b);
        if (step == SQLITE_DONE) /* ON CONFLICT DO NOTHING: the ids stored before are not counted */
            fresh += (size_t)sqlite3_changes(st->db);
    }
    if (step != SQLITE_DONE)
        goto fail;
    if (fresh != nb) { /* committed before: apply nothing */
        free(blob);
        free(refs);
        free(ids.data);
        if (fresh != 0) {
            tg_sqlite_exec(st, "ROLLBACK", NULL, "");
            return tg_errf(err, TG_EEXIST, "storing usage: %zu of %zu batches were stored before", nb - fresh, nb);
        }
        if ((rc = exec_hot(st, ST_COMMIT, err, "committing usage")) != 0)
            tg_sqlite_exec(st, "ROLLBACK", NULL, "");
        return rc;
    }
    /* Rows the totals cannot take are kept aside in the same transaction as the batch id: the
     * rest of the batch is stored, and a replay of the batch adds neither twice. */
    if (nrejected > 0) {
        sqlite3_stmt *ins = st->hot[ST_REJECTED_INSERT];
        for (size_t k = 0; k < nb && step == SQLITE_DONE; k++)
            for (size_t i = 0; i < batches[k].n && step == SQLITE_DONE; i++)
                if (tg_usage_row_refused(&batches[k].rows[i], why, sizeof(why)))
                    step = reject_row(ins, batches[k].id, &batches[k].rows[i], why);
        if (step != SQLITE_DONE)
            goto fail;
    }
    /* Event rows: their ids appended as one block, every row counted (store.h: the node's index
     * counted each event once). */
    if (ids.n > 0 && (step = append_event_ids(st, &ids)) != SQLITE_DONE)
        goto fail;
    sqlite3_stmt *j = st->hot[ST_JOURNAL_INSERT];
    sqlite3_reset(j);
    sqlite3_bind_blob(j, 1, blob, (int)len, SQLITE_STATIC);
    step = n > 0 ? sqlite3_step(j) : SQLITE_DONE;
    sqlite3_reset(j);
    sqlite3_clear_bindings(j);
    if (step != SQLITE_DONE)
        goto fail;
    free(blob);
    free(refs);
    free(ids.data);
    blob = NULL;
    if ((rc = exec_hot(st, ST_COMMIT, err, "committing usage")) != 0) {
        tg_sqlite_exec(st, "ROLLBACK", NULL, "");
        return rc;
    }
    st->journal_batches += n > 0;
    st->journal_entries += entries;
    out->inserted = n;
    out->rejected = nrejected;
    return 0;
fail:
    free(blob);
    free(refs);
    free(ids.data);
    rc = tg_sqlite_error(st, err, "storing usage");
    tg_sqlite_exec(st, "ROLLBACK", NULL, "");
    return rc;
}

/* A journal entry's day field ("YYYY-MM-DDTHH", or "YYYY-MM-DD" from before the hour was
 * journaled: the day's first hour) -> the hour's start into *hour, and day cut (in place, zero
 * padded) to "YYYY-MM-DD" for usage_daily. The clamped ends of tg_usage_utc_day ("0000-00-00",
 * "9999-99-99") keep their text; their hour is only approximate. -1 if the text is no day. */
static int journal_hour(char day[16], int64_t *hour)
{
    size_t len = strnlen(day, 16);
    int64_t f[4] = {0, 0, 0, 0};
    static const int at[4] = {0, 5, 8, 11}, width[4] = {4, 2, 2, 2};
    if (len != 10 && !(len == 13 && day[10] == 'T'))
        return -1;
    for (int k = 0; k < (len == 13 ? 4 : 3); k++)
        for (int i = 0; i < width[k]; i++) {
            char c = day[at[k] + i];
            if (c < '0' || c > '9')
                return -1;
            f[k] = f[k] * 10 + (c - '0');
        }
    if (f[1] > 12)
        f[1] = 12;
    *hour = tg_days_from_civil(f[0], (int)(f[1] < 1 ? 1 : f[1]), (int)(f[2] < 1 ? 1 : f[2])) * 86400 + f[3] * 3600;
    memset(day + 10, 0, 6);
    return 0;
}

/* Applies up to JOURNAL_FOLD_MAX_ROWS journal rows in one transaction; *more is set when rows
 * remain. Inside a caller's transaction it does nothing (the caller folded before starting). */
static int fold_some(tg_sqlite_t *st, int *more, tg_err_t *err)
{
    *more = 0;
    sqlite3_stmt *sel = NULL;
    tg_usage_t *rows = NULL;
    tg_usage_agg_row_t *refs = NULL;
    size_t n = 0, cap = 0;
    int rc = exec_hot(st, ST_BEGIN_IMMEDIATE, err, "folding usage");
    if (rc != 0)
        return rc;
    if ((rc = tg_sqlite_prepare(st, "SELECT batch_id, data FROM usage_journal ORDER BY batch_id LIMIT ?", &sel, err,
                                "folding usage")) != 0)
        goto done;
    sqlite3_bind_int(sel, 1, JOURNAL_FOLD_MAX_ROWS);
    int step, nrows = 0;
    sqlite3_int64 last = 0;
    while ((step = sqlite3_step(sel)) == SQLITE_ROW) {
        nrows++;
        last = sqlite3_column_int64(sel, 0);
        const unsigned char *p = sqlite3_column_blob(sel, 1);
        const unsigned char *end = p != NULL ? p + sqlite3_column_bytes(sel, 1) : NULL;
        while (p != NULL && p < end) {
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 1024;
                tg_usage_t *r = realloc(rows, nc * sizeof(*r));
                tg_usage_agg_row_t *f = r != NULL ? realloc(refs, nc * sizeof(*f)) : NULL;
                if (r != NULL)
                    rows = r;
                if (f == NULL) {
                    rc = tg_errf(err, TG_ENOMEM, "out of memory folding usage");
                    goto done;
                }
                refs = f;
                cap = nc;
            }
            tg_usage_t *u = memset(&rows[n], 0, sizeof(rows[n]));
            memset(refs[n].day, 0, sizeof(refs[n].day));
            uint64_t ps;
            if (tg_unpack_str(&p, end, u->customer_id, sizeof(u->customer_id)) != 0 ||
                tg_unpack_str(&p, end, u->plan_id, sizeof(u->plan_id)) != 0 ||
                tg_unpack_str(&p, end, u->metric, sizeof(u->metric)) != 0 ||
                tg_unpack_str(&p, end, refs[n].day, sizeof(refs[n].day)) != 0 ||
                tg_unpack_str(&p, end, u->endpoint, sizeof(u->endpoint)) != 0 || tg_unpack_u64(&p, end, &ps) != 0 ||
                tg_unpack_u64(&p, end, &u->units) != 0) {
                rc = tg_errf(err, TG_ESTORE, "folding usage: journal row of batch %lld is malformed", (long long)last);
                goto done;
            }
            u->period_start = (int64_t)ps;
            if (journal_hour(refs[n].day, &refs[n].hour) != 0) {
                rc = tg_errf(err, TG_ESTORE, "folding usage: journal row of batch %lld has a bad day", (long long)last);
                goto done;
            }
            n++;
        }
    }
    if (step != SQLITE_DONE) {
        rc = tg_sqlite_error(st, err, "folding usage");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        refs[i].u = &rows[i];
    if (n != 0 && (rc = fold_group(st, refs, n, TG_USAGE_BY_PERIOD, err)) == 0)
        rc = fold_group(st, refs, n, TG_USAGE_BY_DAY, err);
    /* Hourly totals only while meter events are exported (billing: stripe). Measured with
     * 1,000 customers, batches of 1,000 rows folded 64 at a time: 66 ms per fold before the
     * hour was journaled, 66-69 ms now with export off, 69-74 ms with it on. */
    if (n != 0 && rc == 0) {
        sqlite3_stmt *on = st->hot[ST_EXPORT_ON];
        sqlite3_reset(on);
        step = sqlite3_step(on);
        sqlite3_reset(on);
        if (step == SQLITE_ROW)
            rc = fold_group(st, refs, n, TG_USAGE_BY_HOUR, err);
        else if (step != SQLITE_DONE)
            rc = tg_sqlite_error(st, err, "folding usage");
    }
    if (rc != 0)
        goto done;
    if (nrows != 0) {
        sqlite3_stmt *del;
        if ((rc = tg_sqlite_prepare(st, "DELETE FROM usage_journal WHERE batch_id <= ?", &del, err, "folding usage")) !=
            0)
            goto done;
        sqlite3_bind_int64(del, 1, last);
        step = sqlite3_step(del);
        sqlite3_finalize(del);
        if (step != SQLITE_DONE) {
            rc = tg_sqlite_error(st, err, "folding usage");
            goto done;
        }
    }
    *more = nrows == JOURNAL_FOLD_MAX_ROWS;
done:
    sqlite3_finalize(sel);
    free(rows);
    free(refs);
    if (rc == 0 && (rc = exec_hot(st, ST_COMMIT, err, "committing folded usage")) == 0)
        return 0;
    tg_sqlite_exec(st, "ROLLBACK", NULL, "");
    return rc;
}

int tg_sqlite_fold_journal(tg_sqlite_t *st, tg_err_t *err)
{
    if (!sqlite3_get_autocommit(st->db))
        return 0;
    int rc;
    if ((rc = prepare_hot(st, err)) != 0)
        return rc;
    /* Cheap when there is nothing to fold: a read, no write lock. */
    sqlite3_stmt *any = st->hot[ST_JOURNAL_ANY];
    sqlite3_reset(any);
    int step = sqlite3_step(any);
    sqlite3_reset(any);
    if (step == SQLITE_DONE)
        return 0;
    if (step != SQLITE_ROW)
        return tg_sqlite_error(st, err, "folding usage");
    int more = 1;
    while (more)
        if ((rc = fold_some(st, &more, err)) != 0)
            return rc;
    st->journal_batches = 0;
    st->journal_entries = 0;
    st->folded_mono_ns = tg_clock_mono_ns();
    return 0;
}

int tg_sqlite_usage_fold(tg_store_t *store, int force, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    if (!force && st->journal_batches < JOURNAL_FOLD_BATCHES && st->journal_entries < JOURNAL_FOLD_ENTRIES &&
        (st->journal_batches == 0 || tg_clock_mono_ns() - st->folded_mono_ns < JOURNAL_FOLD_NS))
        return 0;
    int rc = tg_sqlite_fold_journal(st, err);
    if (rc != 0) { /* the batches stay in the journal; try again in JOURNAL_FOLD_NS, not per batch */
        st->journal_batches = 1;
        st->journal_entries = 0;
        st->folded_mono_ns = tg_clock_mono_ns();
    }
    return rc;
}

int tg_sqlite_usage_period(tg_store_t *store, const char *customer_id, int64_t period_start, tg_usage_total_cb cb,
                           void *arg, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    int rc = tg_sqlite_fold_journal(st, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *s;
    rc = tg_sqlite_prepare(st,
                           "SELECT metric, TG_SUM(units) FROM usage_period WHERE customer_id = ? AND period_start = ?"
                           " GROUP BY metric ORDER BY metric",
                           &s, err, "reading usage");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, period_start);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW)
        if (cb((const char *)sqlite3_column_text(s, 0), (uint64_t)sqlite3_column_int64(s, 1), arg) != 0)
            break;
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "reading usage");
    sqlite3_finalize(s);
    return rc;
}

/* Sums of usage_daily over the UTC days of [from_s, to_s) for one customer, two text columns
 * and a sum per row (by day or by endpoint). */
static int daily_query(tg_sqlite_t *st, const char *sql, const char *doing, const char *customer_id, int64_t from_s,
                       int64_t to_s, tg_usage_day_cb cb, void *arg, tg_err_t *err)
{
    char from[16], to[16];
    if (to_s <= from_s)
        return 0;
    int frc = tg_sqlite_fold_journal(st, err);
    if (frc != 0)
        return frc;
    tg_usage_utc_day(from_s, from);
    tg_usage_utc_day(to_s - 1, to);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, sql, &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, from, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, to, -1, SQLITE_STATIC);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW)
        if (cb((const char *)sqlite3_column_text(s, 0), (const char *)sqlite3_column_text(s, 1),
               (uint64_t)sqlite3_column_int64(s, 2), arg) != 0)
            break;
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, doing);
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_usage_daily(tg_store_t *store, const char *customer_id, int64_t from_s, int64_t to_s, tg_usage_day_cb cb,
                          void *arg, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    return daily_query(st,
                       "SELECT day, metric, TG_SUM(units) FROM usage_daily WHERE customer_id = ? AND day >= ?"
                       " AND day <= ? GROUP BY day, metric ORDER BY day, metric",
                       "reading daily usage", customer_id, from_s, to_s, cb, arg, err);
}

int tg_sqlite_usage_endpoints(tg_store_t *store, const char *customer_id, int64_t from_s, int64_t to_s,
                              tg_usage_endpoint_cb cb, void *arg, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    /* tg_usage_endpoint_cb has the shape of tg_usage_day_cb: (endpoint, metric, units, arg). */
    return daily_query(st,
                       "SELECT endpoint, metric, TG_SUM(units) FROM usage_daily WHERE customer_id = ? AND day >= ?"
                       " AND day <= ? GROUP BY endpoint, metric ORDER BY TG_SUM(units) DESC, endpoint",
                       "reading usage by endpoint", customer_id, from_s, to_s, cb, arg, err);
}

int tg_sqlite_usage_load(tg_store_t *store, int64_t since_s, tg_usage_load_cb cb, void *arg, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_fold_journal(st, err);
    if (rc != 0)
        return rc;
    rc = tg_sqlite_prepare(
        st,
        "SELECT customer_id, period_start, metric, TG_SUM(units) FROM usage_period WHERE period_start >= ?"
        " GROUP BY customer_id, period_start, metric",
        &s, err, "loading usage totals");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, since_s);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW)
        if (cb((const char *)sqlite3_column_text(s, 0), sqlite3_column_int64(s, 1),
               (const char *)sqlite3_column_text(s, 2), (uint64_t)sqlite3_column_int64(s, 3), arg) != 0)
            break;
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "loading usage totals");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_usage_total(tg_store_t *store, const char *metric, uint64_t *units, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_fold_journal(st, err);
    if (rc != 0)
        return rc;
    rc = tg_sqlite_prepare(st, "SELECT TG_SUM(units) FROM usage_period WHERE metric = ?", &s, err, "totalling usage");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, metric, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW)
        *units = (uint64_t)sqlite3_column_int64(s, 0);
    else
        rc = tg_sqlite_error(st, err, "totalling usage");
    sqlite3_finalize(s);
    return rc;
}
