/* store_pg_thresholds.c - store_thresholds.h on PostgreSQL (migration 26). */
#include <stdio.h>
#include <string.h>

#include "store/store_pg_int.h"
#include "util/err.h"

int tg_pg_mark_insert(tg_store_t *store, const tg_mark_t *m, int *inserted, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, m->customer_id);
    tg_pg_param_i64(&p, m->period_start);
    tg_pg_param_text(&p, m->kind);
    tg_pg_param_text(&p, m->metric);
    tg_pg_param_i64(&p, m->level);
    tg_pg_param_i64(&p, m->created_at);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "INSERT INTO notification_marks(customer_id, period_start, kind, metric, level, created_at)"
                         " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                         &p, &r, err, "recording a notification mark");
    if (rc != 0)
        return rc;
    if (inserted != NULL)
        *inserted = tg_pg_affected(r) > 0;
    PQclear(r);
    return 0;
}

int tg_pg_marks_list(tg_store_t *store, const char *customer_id, size_t limit, tg_mark_cb cb, void *arg,
                     tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    tg_pg_param_i64(&p, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "SELECT customer_id, period_start, kind, metric, level, created_at FROM notification_marks"
                         " WHERE customer_id = $1 ORDER BY period_start DESC, kind, metric, level LIMIT $2",
                         &p, &r, err, "listing notification marks");
    if (rc != 0)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        tg_mark_t m;
        tg_pg_text(r, i, 0, m.customer_id, sizeof(m.customer_id));
        m.period_start = tg_pg_i64(r, i, 1);
        tg_pg_text(r, i, 2, m.kind, sizeof(m.kind));
        tg_pg_text(r, i, 3, m.metric, sizeof(m.metric));
        m.level = tg_pg_i64(r, i, 4);
        m.created_at = tg_pg_i64(r, i, 5);
        if (cb(&m, arg) != 0)
            break;
    }
    PQclear(r);
    return 0;
}

int tg_pg_budget_set(tg_store_t *store, const char *customer_id, int64_t amount, int64_t now_s, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    if (amount > 0) {
        tg_pg_param_i64(&p, amount);
        tg_pg_param_i64(&p, now_s);
    }
    return tg_pg_query(st,
                       amount > 0 ? "INSERT INTO customer_budgets(customer_id, amount, updated_at) VALUES ($1, $2, $3)"
                                    " ON CONFLICT (customer_id) DO UPDATE SET amount = $2, updated_at = $3"
                                  : "DELETE FROM customer_budgets WHERE customer_id = $1",
                       &p, NULL, err, "setting a budget");
}

int tg_pg_budget_get(tg_store_t *store, const char *customer_id, int64_t *amount, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    *amount = 0;
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, customer_id);
    PGresult *r;
    int rc = tg_pg_query(st, "SELECT amount FROM customer_budgets WHERE customer_id = $1", &p, &r, err,
                         "reading a budget");
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 1)
        *amount = tg_pg_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

int tg_pg_budgets_list(tg_store_t *store, const char *after_id, size_t limit, tg_budget_cb cb, void *arg,
                       tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_text(&p, after_id);
    tg_pg_param_i64(&p, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
    PGresult *r;
    /* COLLATE "C": the same byte order as SQLite's, so that after_id pages the same way */
    int rc = tg_pg_query(st,
                         "SELECT customer_id, amount FROM customer_budgets WHERE customer_id > $1 COLLATE \"C\""
                         " ORDER BY customer_id COLLATE \"C\" LIMIT $2",
                         &p, &r, err, "listing budgets");
    if (rc != 0)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        char id[TG_ID_MAX];
        tg_pg_text(r, i, 0, id, sizeof(id));
        if (cb(id, tg_pg_i64(r, i, 1), arg) != 0)
            break;
    }
    PQclear(r);
    return 0;
}

int tg_pg_trials_ending(tg_store_t *store, int64_t after, int64_t until, size_t limit, tg_trial_cb cb, void *arg,
                        tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    tg_pg_params_t p = {0};
    tg_pg_param_i64(&p, after);
    tg_pg_param_i64(&p, until);
    tg_pg_param_i64(&p, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
    PGresult *r;
    int rc = tg_pg_query(st,
                         "SELECT id, trial_end FROM customers c WHERE trial_end > $1 AND trial_end <= $2"
                         " AND status = 'trialing' AND NOT EXISTS (SELECT 1 FROM notification_marks m"
                         " WHERE m.customer_id = c.id AND m.period_start = c.trial_end AND m.kind = 'trial')"
                         " ORDER BY trial_end, id COLLATE \"C\" LIMIT $3",
                         &p, &r, err, "listing trials about to end");
    if (rc != 0)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        char id[TG_ID_MAX];
        tg_pg_text(r, i, 0, id, sizeof(id));
        if (cb(id, tg_pg_i64(r, i, 1), arg) != 0)
            break;
    }
    PQclear(r);
    return 0;
}
