/* store_sqlite_thresholds.c - store_thresholds.h on SQLite (migration 26). */
#include <stdio.h>
#include <string.h>

#include "store/store_sqlite_int.h"
#include "util/err.h"

static void copy_col(sqlite3_stmt *s, int col, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(out, cap, "%s", t != NULL ? (const char *)t : "");
}

int tg_sqlite_mark_insert(tg_store_t *store, const tg_mark_t *m, int *inserted, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "recording a notification mark";
    int rc = tg_sqlite_prepare(st,
                               "INSERT INTO notification_marks(customer_id, period_start, kind, metric, level, created_at)"
                               " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                               &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, m->customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, m->period_start);
    sqlite3_bind_text(s, 3, m->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, m->metric, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, m->level);
    sqlite3_bind_int64(s, 6, m->created_at);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, doing);
    else if (inserted != NULL)
        *inserted = sqlite3_changes(st->db) > 0;
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_marks_list(tg_store_t *store, const char *customer_id, size_t limit, tg_mark_cb cb, void *arg,
                         tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "listing notification marks";
    int rc = tg_sqlite_prepare(st,
                               "SELECT customer_id, period_start, kind, metric, level, created_at FROM notification_marks"
                               " WHERE customer_id = ?1 ORDER BY period_start DESC, kind, metric, level LIMIT ?2",
                               &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        tg_mark_t m;
        copy_col(s, 0, m.customer_id, sizeof(m.customer_id));
        m.period_start = sqlite3_column_int64(s, 1);
        copy_col(s, 2, m.kind, sizeof(m.kind));
        copy_col(s, 3, m.metric, sizeof(m.metric));
        m.level = sqlite3_column_int64(s, 4);
        m.created_at = sqlite3_column_int64(s, 5);
        if (cb(&m, arg) != 0)
            break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, doing);
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_budget_set(tg_store_t *store, const char *customer_id, int64_t amount, int64_t now_s, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "setting a budget";
    int rc = tg_sqlite_prepare(st,
                               amount > 0 ? "INSERT INTO customer_budgets(customer_id, amount, updated_at) VALUES (?1, ?2, ?3)"
                                            " ON CONFLICT(customer_id) DO UPDATE SET amount = ?2, updated_at = ?3"
                                          : "DELETE FROM customer_budgets WHERE customer_id = ?1",
                               &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    if (amount > 0) {
        sqlite3_bind_int64(s, 2, amount);
        sqlite3_bind_int64(s, 3, now_s);
    }
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, doing);
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_budget_get(tg_store_t *store, const char *customer_id, int64_t *amount, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "reading a budget";
    *amount = 0;
    int rc = tg_sqlite_prepare(st, "SELECT amount FROM customer_budgets WHERE customer_id = ?1", &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, customer_id, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        *amount = sqlite3_column_int64(s, 0);
    else if (step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, doing);
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_budgets_list(tg_store_t *store, const char *after_id, size_t limit, tg_budget_cb cb, void *arg,
                           tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "listing budgets";
    int rc = tg_sqlite_prepare(st,
                               "SELECT customer_id, amount FROM customer_budgets WHERE customer_id > ?1"
                               " ORDER BY customer_id LIMIT ?2",
                               &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, after_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        char id[TG_ID_MAX];
        copy_col(s, 0, id, sizeof(id));
        if (cb(id, sqlite3_column_int64(s, 1), arg) != 0)
            break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, doing);
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_trials_ending(tg_store_t *store, int64_t after, int64_t until, size_t limit, tg_trial_cb cb, void *arg,
                            tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    const char *doing = "listing trials about to end";
    int rc = tg_sqlite_prepare(st,
                               "SELECT id, trial_end FROM customers c WHERE trial_end > ?1 AND trial_end <= ?2"
                               " AND status = 'trialing' AND NOT EXISTS (SELECT 1 FROM notification_marks m"
                               " WHERE m.customer_id = c.id AND m.period_start = c.trial_end AND m.kind = 'trial')"
                               " ORDER BY trial_end, id LIMIT ?3",
                               &s, err, doing);
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, after);
    sqlite3_bind_int64(s, 2, until);
    sqlite3_bind_int64(s, 3, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        char id[TG_ID_MAX];
        copy_col(s, 0, id, sizeof(id));
        if (cb(id, sqlite3_column_int64(s, 1), arg) != 0)
            break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, doing);
    sqlite3_finalize(s);
    return rc;
}
