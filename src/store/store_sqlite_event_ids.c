/* store_sqlite_event_ids.c - the applied usage event ids on SQLite (store.h): read back to
 * rebuild the node's dedup index when its file is lost, and pruned past the dedup window.
 *
 * They live in two tables: usage_event_id_blocks (migration 35), one row per stored batch with
 * all its ids packed (event_id_block.h; tg_sqlite_usage_record_many appends it), and
 * usage_event_ids (migrations 33, 34), one row per id, which holds the ids stored before
 * migration 35. Those rows are left where they are, not repacked: packing needs the C encoder,
 * and they leave by themselves as the retention job prunes them, one dedup window after the
 * upgrade. Both are read and pruned here.
 *
 * A block lives until its newest id expires: it is pruned whole once ts_max is before the
 * cut-off, so its older ids outlive their own cut-off by at most the spread of one batch's event
 * times, which the ingest bounds by events.dedup_window. The reader filters each id by its own
 * time, so that never shows. */
#include <sqlite3.h>
#include <stdint.h>

#include "store/event_id_block.h"
#include "store/store_sqlite_int.h"

/* The oldest first, by their time indexes: a call reads only the rows it deletes. Old single
 * rows go first (they are the oldest), then blocks; *deleted counts ids, limit counts rows. */
int tg_sqlite_usage_event_ids_prune(tg_store_t *store, int64_t before_s, size_t limit, size_t *deleted, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    *deleted = 0;
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "DELETE FROM usage_event_ids WHERE rowid IN (SELECT rowid FROM usage_event_ids"
                               " WHERE ts < ? ORDER BY ts LIMIT ?)",
                               &s, err, "pruning applied event ids");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, before_s);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
    size_t rows = 0;
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "pruning applied event ids");
    else
        rows = (size_t)sqlite3_changes(st->db);
    sqlite3_finalize(s);
    *deleted = rows;
    if (rc != 0 || rows >= limit)
        return rc;
    /* Each block holds at least one id: fewer than limit ids deleted still means none are left
     * (store.h), and a full call of limit blocks deletes at least limit ids. */
    rc = tg_sqlite_prepare(st,
                           "DELETE FROM usage_event_id_blocks WHERE id IN (SELECT id FROM usage_event_id_blocks"
                           " WHERE ts_max < ? ORDER BY ts_max LIMIT ?) RETURNING n",
                           &s, err, "pruning applied event ids");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, before_s);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)(limit - rows));
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        sqlite3_int64 n = sqlite3_column_int64(s, 0);
        *deleted += n > 0 ? (size_t)n : 1;
    }
    if (step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "pruning applied event ids");
    sqlite3_finalize(s);
    if (rc != 0)
        *deleted = rows; /* the statement's changes are rolled back */
    return rc;
}

typedef struct since_filter {
    int64_t since_s;
    tg_usage_event_id_cb cb;
    void *arg;
} since_filter_t;

/* An id of a block: passed on when its own time is in the window (a block is read when its
 * newest id is). */
static int on_block_entry(void *arg, uint64_t event_id, int64_t ts_s, const char *customer_id)
{
    (void)customer_id;
    const since_filter_t *f = arg;
    return ts_s >= f->since_s ? f->cb(f->arg, event_id, ts_s) : 0;
}

/* The blocks after after_id (-1: all) holding an id of the window, in id order. */
static int each_in_blocks(tg_sqlite_t *st, int64_t after_id, const since_filter_t *f, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT id, ts_min, ts_max, n, data FROM usage_event_id_blocks WHERE id > ?"
                               " AND ts_max >= ? ORDER BY id",
                               &s, err, "reading applied event ids");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, after_id);
    sqlite3_bind_int64(s, 2, f->since_s);
    int step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
        tg_event_id_block_t b = {sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
                                 sqlite3_column_int64(s, 2), sqlite3_column_int64(s, 3),
                                 sqlite3_column_blob(s, 4),  (size_t)sqlite3_column_bytes(s, 4)};
        rc = tg_event_id_block_each(&b, on_block_entry, (void *)f, err);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "reading applied event ids");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_usage_event_ids_each(tg_store_t *store, int64_t since_s, tg_usage_event_id_cb cb, void *arg,
                                   tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "SELECT event_id, ts FROM usage_event_ids WHERE ts >= ?", &s, err,
                               "reading applied event ids");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, since_s);
    int step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW)
        rc = cb(arg, (uint64_t)sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1));
    if (rc == 0 && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "reading applied event ids");
    sqlite3_finalize(s);
    if (rc != 0)
        return rc;
    since_filter_t f = {since_s, cb, arg};
    return each_in_blocks(st, -1, &f, err);
}

int tg_sqlite_usage_event_id_blocks_after(tg_store_t *store, int64_t after_id, int64_t since_s, tg_usage_event_id_cb cb,
                                          void *arg, tg_err_t *err)
{
    since_filter_t f = {since_s, cb, arg};
    return each_in_blocks(tg_sqlite(store), after_id, &f, err);
}

/* sqlite_sequence: the greatest id AUTOINCREMENT handed out (migration 37), kept when the prune
 * deletes that block; no row until the first block. */
int tg_sqlite_usage_event_id_blocks_last(tg_store_t *store, int64_t *last, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    *last = 0;
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "SELECT seq FROM sqlite_sequence WHERE name = 'usage_event_id_blocks'", &s, err,
                               "reading the last usage event id block");
    if (rc != 0)
        return rc;
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        *last = sqlite3_column_int64(s, 0);
    else if (step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "reading the last usage event id block");
    sqlite3_finalize(s);
    return rc;
}
