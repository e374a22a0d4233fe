/* store_pg_billing.c - the period closer's schedule in PostgreSQL (store.h, migration 21): the
 * customers due, a page at a time in (next_period_end, id) order, and moving a customer's next
 * period end. The same contract and SQL as store_sqlite_billing.c; both statements are prepared
 * once per connection (tg_pg_query). The row comparison and the ORDER BY use the same collation,
 * so the position (after_end, after_id) and the order agree whatever the database's collation. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "store/store_pg_int.h"

/* The page is a range scan of customer_schedule_due (migration 31: the schedule's narrow table),
 * each row's customer by its primary key. */
static const char due_sql[] = "SELECT c.id, c.email, c.name, c.plan_id, c.status, c.created_at, c.anchor_at,"
                              " c.trial_end, c.pending_plan_id, c.pending_at, c.cancel_at, s.next_period_end"
                              " FROM customer_schedule s JOIN customers c ON c.id = s.customer_id"
                              " WHERE s.next_period_end <= $1 AND (s.next_period_end, s.customer_id) > ($2, $3)"
                              " ORDER BY s.next_period_end, s.customer_id LIMIT $4";

int tg_pg_customers_due(tg_store_t *store, int64_t until, int64_t after_end, const char *after_id, size_t limit,
                        tg_customer_due_cb cb, void *arg, size_t *n, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    PGresult *res;
    if (n != NULL)
        *n = 0;
    tg_pg_param_i64(&p, until);
    tg_pg_param_i64(&p, after_end);
    tg_pg_param_text(&p, after_id != NULL ? after_id : "");
    tg_pg_param_i64(&p, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
    int rc = tg_pg_query(st, due_sql, &p, &res, err, "listing the customers due");
    if (rc != 0)
        return rc;
    /* A page is at most `limit` rows (the closer's batch): the whole result is held once. */
    int rows = PQntuples(res);
    for (int r = 0; r < rows; r++) {
        tg_customer_t c;
        memset(&c, 0, sizeof(c));
        tg_pg_text(res, r, 0, c.id, sizeof(c.id));
        tg_pg_text(res, r, 1, c.email, sizeof(c.email));
        tg_pg_text(res, r, 2, c.name, sizeof(c.name));
        tg_pg_text(res, r, 3, c.plan_id, sizeof(c.plan_id));
        tg_pg_text(res, r, 4, c.status, sizeof(c.status));
        c.created_at = tg_pg_i64(res, r, 5);
        c.anchor_at = tg_pg_i64(res, r, 6);
        c.trial_end = tg_pg_i64(res, r, 7);
        tg_pg_text(res, r, 8, c.pending_plan_id, sizeof(c.pending_plan_id));
        c.pending_at = tg_pg_i64(res, r, 9);
        c.cancel_at = tg_pg_i64(res, r, 10);
        if (n != NULL)
            (*n)++;
        if (cb(&c, tg_pg_i64(res, r, 11), arg) != 0)
            break;
    }
    PQclear(res);
    return 0;
}

static const char set_sql[] =
    "UPDATE customer_schedule SET next_period_end = $3 WHERE customer_id = $1 AND next_period_end = $2";

int tg_pg_customer_set_next_period_end(tg_store_t *store, const char *id, int64_t expected, int64_t next_end,
                                       tg_err_t *err)
{
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, id);
    tg_pg_param_i64(&p, expected);
    tg_pg_param_i64(&p, next_end);
    return tg_pg_query(tg_pg(store), set_sql, &p, NULL, err, "scheduling a customer's next period");
}
