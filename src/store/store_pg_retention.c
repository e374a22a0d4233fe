/* store_pg_retention.c - the PostgreSQL backend of store_retention.h (store_sqlite_retention.c
 * is the reference: same rows deleted, same counts).
 *
 * Several gateways may share the database, though only the scheduler's leader prunes: one
 * statement per batch, whose first step locks the chosen rows (FOR UPDATE SKIP LOCKED), so a
 * row that a sender or a manual resend is changing at that moment is left for the next batch,
 * and the DELETE checks the state again on the row it locked (READ COMMITTED re-evaluates the
 * outer condition on a row changed meanwhile). The attempts are deleted in the same statement,
 * from the ids the DELETE returned. The batch walks the primary key below the first row
 * created after the cut-off, as on SQLite. */
#include <stdio.h>
#include <string.h>

#include "store/store_pg_int.h"
#include "store/store_retention.h"

#define PRUNE_LIMIT_MAX 10000

/* SQL text reads best as written: */
/* clang-format off */
#define BELOW_CUTOFF(table, key)                                                                                       \
    key " < COALESCE((SELECT " key " FROM " table " WHERE created_at >= $1 ORDER BY " key " LIMIT 1),"                 \
        " 9223372036854775807)"

static const struct {
    const char *sql, *doing;
} prune_sql[] = {
    [TG_NOTIFY_EVENTS] = {"WITH b AS (SELECT e.seq FROM events e WHERE e." BELOW_CUTOFF("events", "seq")
                          " AND e.created_at < $1 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d"
                          " WHERE d.event_id = e.id) ORDER BY e.seq LIMIT $2 FOR UPDATE SKIP LOCKED),"
                          " x AS (DELETE FROM events WHERE seq IN (SELECT seq FROM b) RETURNING 1)"
                          " SELECT (SELECT count(*) FROM x), 0",
                          "pruning old events"},
    [TG_NOTIFY_DELIVERIES] = {"WITH b AS (SELECT seq FROM webhook_deliveries WHERE "
                              BELOW_CUTOFF("webhook_deliveries", "seq")
                              " AND state IN ('delivered', 'failed') AND updated_at < $1 ORDER BY seq LIMIT $2"
                              " FOR UPDATE SKIP LOCKED),"
                              " x AS (DELETE FROM webhook_deliveries WHERE seq IN (SELECT seq FROM b)"
                              " AND state IN ('delivered', 'failed') AND updated_at < $1 RETURNING id),"
                              " a AS (DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM x) RETURNING 1)"
                              " SELECT (SELECT count(*) FROM x), (SELECT count(*) FROM a)",
                              "pruning finished webhook deliveries"},
    [TG_NOTIFY_MAILS] = {"WITH b AS (SELECT id FROM mail_outbox WHERE " BELOW_CUTOFF("mail_outbox", "id")
                         " AND state IN ('sent', 'failed') AND updated_at < $1 ORDER BY id LIMIT $2"
                         " FOR UPDATE SKIP LOCKED),"
                         " a AS (DELETE FROM mail_attempts WHERE mail_id IN (SELECT id FROM b) RETURNING 1),"
                         " x AS (DELETE FROM mail_outbox WHERE id IN (SELECT id FROM b)"
                         " AND state IN ('sent', 'failed') AND updated_at < $1 RETURNING 1)"
                         " SELECT (SELECT count(*) FROM x), (SELECT count(*) FROM a)",
                         "pruning finished mail"},
};
/* clang-format on */

int tg_pg_notify_prune(tg_store_t *store, tg_notify_table_t what, int64_t cutoff_s, size_t limit, size_t *deleted,
                       size_t *attempts, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    *deleted = 0;
    if (attempts != NULL)
        *attempts = 0;
    if ((unsigned)what >= sizeof(prune_sql) / sizeof(prune_sql[0]) || limit == 0 || limit > PRUNE_LIMIT_MAX)
        return tg_errf(err, TG_EINVAL, "pruning: no such table, or a batch of %zu rows (1 to %d)", limit,
                       PRUNE_LIMIT_MAX);
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, cutoff_s);
    tg_pg_param_i64(&p, (int64_t)limit);
    PGresult *r;
    /* one statement: its own transaction, or part of the caller's */
    int rc = tg_pg_query(st, prune_sql[what].sql, &p, &r, err, prune_sql[what].doing);
    if (rc != 0)
        return rc;
    *deleted = (size_t)tg_pg_i64(r, 0, 0);
    if (attempts != NULL)
        *attempts = (size_t)tg_pg_i64(r, 0, 1);
    PQclear(r);
    return 0;
}

/* As on SQLite, the subquery walks the primary key (node, batch_id) of one node from its lowest
 * id; the ids it returns go as an array (= ANY), which the DELETE looks up in the primary key.
 * With "batch_id IN (subquery)" the planner hash-joined the subquery with every row of the node
 * (a bitmap scan of the whole node: EXPLAIN in test_store_retention). Only that node deletes
 * its rows, so no lock is waited for but its own applier's inserts, which are above below_id. */
int tg_pg_usage_batches_prune(tg_store_t *store, const char *node, uint64_t below_id, int64_t committed_before_s,
                              size_t limit, size_t *deleted, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    *deleted = 0;
    if (limit == 0 || limit > PRUNE_LIMIT_MAX)
        return tg_errf(err, TG_EINVAL, "pruning usage batches: a batch of %zu rows (1 to %d)", limit, PRUNE_LIMIT_MAX);
    if (below_id > (uint64_t)INT64_MAX) /* BIGINT */
        below_id = (uint64_t)INT64_MAX;
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, node);
    tg_pg_param_i64(&p, (int64_t)below_id);
    tg_pg_param_i64(&p, committed_before_s);
    tg_pg_param_i64(&p, (int64_t)limit);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "DELETE FROM usage_batches WHERE node = $1 AND batch_id = ANY(ARRAY(SELECT batch_id FROM"
                         " usage_batches WHERE node = $1 AND batch_id < $2 AND committed_at < $3"
                         " ORDER BY batch_id LIMIT $4))",
                         &p, &r, err, "pruning usage batches");
    if (rc != 0)
        return rc;
    *deleted = (size_t)tg_pg_affected(r);
    PQclear(r);
    return 0;
}

int tg_pg_node_drained(tg_store_t *store, const char *node, int64_t drained_at, tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, node);
    tg_pg_param_i64(&p, drained_at);
    PGresult *r;
    int rc = tg_pg_query(tg_pg(store),
                         "INSERT INTO metering_drained_nodes(node, drained_at) VALUES ($1, $2)"
                         " ON CONFLICT (node) DO UPDATE SET"
                         " drained_at = GREATEST(metering_drained_nodes.drained_at, EXCLUDED.drained_at)",
                         &p, &r, err, "recording a drained metering node");
    if (rc == 0)
        PQclear(r);
    return rc;
}

int tg_pg_drained_nodes(tg_store_t *store, int64_t before_s, tg_drained_node_t *out, size_t max, size_t *n,
                        tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, before_s);
    tg_pg_param_i64(&p, (int64_t)max);
    PGresult *r;
    int rc = tg_pg_query(tg_pg(store),
                         "SELECT node, drained_at FROM metering_drained_nodes WHERE drained_at <= $1"
                         " ORDER BY drained_at, node LIMIT $2",
                         &p, &r, err, "listing drained metering nodes");
    if (rc != 0)
        return rc;
    for (int i = 0; i < PQntuples(r) && *n < max; i++) {
        tg_pg_text(r, i, 0, out[*n].node, sizeof(out[*n].node));
        out[*n].drained_at = tg_pg_i64(r, i, 1);
        (*n)++;
    }
    PQclear(r);
    return 0;
}

int tg_pg_drained_node_forget(tg_store_t *store, const char *node, int64_t drained_at, tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, node);
    tg_pg_param_i64(&p, drained_at);
    PGresult *r;
    int rc =
        tg_pg_query(tg_pg(store), "DELETE FROM metering_drained_nodes WHERE node = $1 AND (drained_at = $2 OR $2 < 0)",
                    &p, &r, err, "forgetting a drained metering node");
    if (rc == 0)
        PQclear(r);
    return rc;
}

int tg_pg_notify_pending(tg_store_t *store, tg_notify_table_t what, int64_t *n, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    *n = 0;
    const char *sql = what == TG_NOTIFY_DELIVERIES ? "SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'"
                      : what == TG_NOTIFY_MAILS    ? "SELECT count(*) FROM mail_outbox WHERE state = 'pending'"
                                                   : NULL;
    if (sql == NULL)
        return tg_errf(err, TG_EINVAL, "only deliveries and mails have pending rows");
    PGresult *r;
    int rc = tg_pg_query(st, sql, NULL, &r, err, "counting pending notifications");
    if (rc != 0)
        return rc;
    *n = tg_pg_i64(r, 0, 0);
    PQclear(r);
    return 0;
}
