/* store_sqlite_retention.c - the SQLite backend of store_retention.h: deleting finished
 * notification rows in bounded batches, counting pending ones.
 *
 * A batch is two DELETEs (the attempts, then their parents) choosing the same rows: the first
 * takes the database's write lock, so no other connection changes a row's state between them.
 * Both walk the table by its primary key below the first row created after the cut-off
 * ("seq < IFNULL((SELECT seq ... created_at >= cutoff ORDER BY seq LIMIT 1), max)"): the
 * primary key range makes a batch read the old rows only, not the whole table (there is no index
 * on (state, updated_at), and adding one would take a migration). */
#include <stdio.h>
#include <string.h>

#include "store/store_retention.h"
#include "store/store_sqlite_int.h"

#define PRUNE_LIMIT_MAX 10000

/* SQL text reads best as written: */
/* clang-format off */
/* The rows of a table below the first one created at or after ?1 (seconds). */
#define BELOW_CUTOFF(table, key)                                                                                       \
    key " < IFNULL((SELECT " key " FROM " table " WHERE created_at >= ?1 ORDER BY " key " LIMIT 1),"                   \
        " 9223372036854775807)"

#define DELIVERIES_DONE                                                                                                \
    " FROM webhook_deliveries WHERE " BELOW_CUTOFF("webhook_deliveries", "seq")                                        \
    " AND state IN ('delivered', 'failed') AND updated_at < ?1 ORDER BY seq LIMIT ?2"
#define MAILS_DONE                                                                                                     \
    " FROM mail_outbox WHERE " BELOW_CUTOFF("mail_outbox", "id")                                                       \
    " AND state IN ('sent', 'failed') AND updated_at < ?1 ORDER BY id LIMIT ?2"

/* Per table: the attempts' DELETE (NULL: none) and the rows' own. */
static const struct {
    const char *attempts, *rows, *doing;
} prune_sql[] = {
    [TG_NOTIFY_EVENTS] = {NULL,
                          "DELETE FROM events WHERE seq IN (SELECT e.seq FROM events e WHERE e."
                          BELOW_CUTOFF("events", "seq") " AND e.created_at < ?1 AND NOT EXISTS"
                          " (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id) ORDER BY e.seq LIMIT ?2)",
                          "pruning old events"},
    [TG_NOTIFY_DELIVERIES] = {"DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id" DELIVERIES_DONE ")",
                              "DELETE FROM webhook_deliveries WHERE seq IN (SELECT seq" DELIVERIES_DONE ")",
                              "pruning finished webhook deliveries"},
    [TG_NOTIFY_MAILS] = {"DELETE FROM mail_attempts WHERE mail_id IN (SELECT id" MAILS_DONE ")",
                         "DELETE FROM mail_outbox WHERE id IN (SELECT id" MAILS_DONE ")", "pruning finished mail"},
};
/* clang-format on */

static int run_delete(tg_sqlite_t *st, const char *sql, int64_t cutoff_s, size_t limit, size_t *changed,
                      const char *doing, tg_err_t *err)
{
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, sql, &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, cutoff_s);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, doing);
    else
        *changed = (size_t)sqlite3_changes(st->db);
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_notify_prune(tg_store_t *store, tg_notify_table_t what, int64_t cutoff_s, size_t limit, size_t *deleted,
                           size_t *attempts, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    *deleted = 0;
    if (attempts != NULL)
        *attempts = 0;
    if ((unsigned)what >= sizeof(prune_sql) / sizeof(prune_sql[0]) || limit == 0 || limit > PRUNE_LIMIT_MAX)
        return tg_errf(err, TG_EINVAL, "pruning: no such table, or a batch of %zu rows (1 to %d)", limit,
                       PRUNE_LIMIT_MAX);
    int rc = tg_sqlite_savepoint(store, "tg_notify_prune", err);
    if (rc != 0)
        return rc;
    size_t att = 0, rows = 0;
    if (prune_sql[what].attempts != NULL)
        rc = run_delete(st, prune_sql[what].attempts, cutoff_s, limit, &att, prune_sql[what].doing, err);
    if (rc == 0)
        rc = run_delete(st, prune_sql[what].rows, cutoff_s, limit, &rows, prune_sql[what].doing, err);
    if (rc != 0) {
        tg_sqlite_savepoint_rollback(store, "tg_notify_prune");
        return rc;
    }
    if ((rc = tg_sqlite_savepoint_release(store, "tg_notify_prune", err)) != 0)
        return rc;
    *deleted = rows;
    if (attempts != NULL)
        *attempts = att;
    return 0;
}

/* One statement: the subquery walks the primary key (node, batch_id) from the node's lowest id
 * and stops after limit rows that qualify; the DELETE finds each by its key. (DELETE ... LIMIT
 * needs SQLITE_ENABLE_UPDATE_DELETE_LIMIT, which distributions' builds lack.) */
int tg_sqlite_usage_batches_prune(tg_store_t *store, const char *node, uint64_t below_id, int64_t committed_before_s,
                                  size_t limit, size_t *deleted, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    *deleted = 0;
    if (limit == 0 || limit > PRUNE_LIMIT_MAX)
        return tg_errf(err, TG_EINVAL, "pruning usage batches: a batch of %zu rows (1 to %d)", limit, PRUNE_LIMIT_MAX);
    if (below_id > (uint64_t)INT64_MAX) /* batch ids are stored as signed 64-bit integers */
        below_id = (uint64_t)INT64_MAX;
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "DELETE FROM usage_batches WHERE node = ?1 AND batch_id IN (SELECT batch_id FROM"
                               " usage_batches WHERE node = ?1 AND batch_id < ?2 AND committed_at < ?3"
                               " ORDER BY batch_id LIMIT ?4)",
                               &s, err, "pruning usage batches");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, node, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)below_id);
    sqlite3_bind_int64(s, 3, committed_before_s);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)limit);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "pruning usage batches");
    else
        *deleted = (size_t)sqlite3_changes(st->db);
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_node_drained(tg_store_t *store, const char *node, int64_t drained_at, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "INSERT INTO metering_drained_nodes(node, drained_at) VALUES (?1, ?2)"
                               " ON CONFLICT(node) DO UPDATE SET drained_at = MAX(drained_at, excluded.drained_at)",
                               &s, err, "recording a drained metering node");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, node, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, drained_at);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "recording a drained metering node");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_drained_nodes(tg_store_t *store, int64_t before_s, tg_drained_node_t *out, size_t max, size_t *n,
                            tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st,
                               "SELECT node, drained_at FROM metering_drained_nodes WHERE drained_at <= ?1"
                               " ORDER BY drained_at, node LIMIT ?2",
                               &s, err, "listing drained metering nodes");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, before_s);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)max);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW && *n < max) {
        tg_sqlite_text(s, 0, out[*n].node, sizeof(out[*n].node));
        out[*n].drained_at = sqlite3_column_int64(s, 1);
        (*n)++;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        *n = 0;
        rc = tg_sqlite_error(st, err, "listing drained metering nodes");
    }
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_drained_node_forget(tg_store_t *store, const char *node, int64_t drained_at, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, "DELETE FROM metering_drained_nodes WHERE node = ?1 AND (drained_at = ?2 OR ?2 < 0)",
                               &s, err, "forgetting a drained metering node");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, node, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, drained_at);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "forgetting a drained metering node");
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_notify_pending(tg_store_t *store, tg_notify_table_t what, int64_t *n, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    *n = 0;
    const char *sql = what == TG_NOTIFY_DELIVERIES ? "SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'"
                      : what == TG_NOTIFY_MAILS    ? "SELECT count(*) FROM mail_outbox WHERE state = 'pending'"
                                                   : NULL;
    if (sql == NULL)
        return tg_errf(err, TG_EINVAL, "only deliveries and mails have pending rows");
    sqlite3_stmt *s;
    int rc = tg_sqlite_prepare(st, sql, &s, err, "counting pending notifications");
    if (rc != 0)
        return rc;
    if (sqlite3_step(s) == SQLITE_ROW)
        *n = sqlite3_column_int64(s, 0);
    else
        rc = tg_sqlite_error(st, err, "counting pending notifications");
    sqlite3_finalize(s);
    return rc;
}
