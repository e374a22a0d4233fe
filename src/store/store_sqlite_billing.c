/* store_sqlite_billing.c - the period closer's schedule in SQLite (store.h, migration 21): the
 * customers due, a page at a time in (next_period_end, id) order, and moving a customer's next
 * period end once its periods are closed. Both statements are prepared once per connection. */
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

#include "store/store_sqlite_int.h"

int tg_sqlite_customers_due(tg_store_t *store, int64_t until, int64_t after_end, const char *after_id, size_t limit,
                            tg_customer_due_cb cb, void *arg, size_t *n, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    if (n != NULL)
        *n = 0;
    /* (next_period_end, customer_id) > (?2, ?3) as a row value: one seek into
     * customer_schedule_due (migration 31), then a range scan; the page is the LIMIT. */
    int rc = tg_sqlite_cached(st, SQ_CUSTOMERS_DUE,
                              "SELECT " CUSTOMER_COLS_C ", s.next_period_end FROM customer_schedule s"
                              " JOIN customers c ON c.id = s.customer_id"
                              " WHERE s.next_period_end <= ?1 AND (s.next_period_end, s.customer_id) > (?2, ?3)"
                              " ORDER BY s.next_period_end, s.customer_id LIMIT ?4",
                              &s, err, "listing the customers due");
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(s, 1, until);
    sqlite3_bind_int64(s, 2, after_end);
    sqlite3_bind_text(s, 3, after_id != NULL ? after_id : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, limit > INT64_MAX ? INT64_MAX : (sqlite3_int64)limit);
    int step;
    tg_customer_t c;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        tg_sqlite_read_customer(s, &c);
        if (n != NULL)
            (*n)++;
        if (cb(&c, sqlite3_column_int64(s, 12), arg) != 0)
            break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "listing the customers due");
    tg_sqlite_done(s);
    return rc;
}

int tg_sqlite_customer_set_next_period_end(tg_store_t *store, const char *id, int64_t expected, int64_t next_end,
                                           tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3_stmt *s;
    int rc = tg_sqlite_cached(st, SQ_SET_NEXT_END,
                              "UPDATE customer_schedule SET next_period_end = ?3"
                              " WHERE customer_id = ?1 AND next_period_end = ?2",
                              &s, err, "scheduling a customer's next period");
    if (rc != 0)
        return rc;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, expected);
    sqlite3_bind_int64(s, 3, next_end);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = tg_sqlite_error(st, err, "scheduling a customer's next period");
    tg_sqlite_done(s);
    return rc;
}

/* The closer's batch (store.h) as the per-customer path in one savepoint: in SQLite each
 * statement is a function call on prepared statements, not a round trip, so three calls per
 * customer cost what a set-based statement would (bench/invoices.sh). A failing entry rolls
 * back alone inside tg_sqlite_invoice_create (its own savepoint). */
int tg_sqlite_invoice_close_batch(tg_store_t *store, tg_invoice_close_t *e, size_t n, tg_invoice_build_cb build,
                                  tg_err_t *err)
{
    int rc = tg_sqlite_savepoint(store, "close_batch", err);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        e[i].rc = tg_sqlite_invoice_create(store, &e[i].draft, build, e[i].build_arg, &e[i].created, NULL, &e[i].err);
        if (e[i].rc != 0)
            continue;
        if (e[i].next_end != e[i].next_expected)
            rc = tg_sqlite_customer_set_next_period_end(store, e[i].draft.customer_id, e[i].next_expected,
                                                        e[i].next_end, err);
        if (rc == 0)
            rc = tg_sqlite_billing_failure_clear(store, e[i].draft.customer_id, err);
    }
    if (rc == 0)
        rc = tg_sqlite_savepoint_release(store, "close_batch", err);
    if (rc != 0)
        tg_sqlite_savepoint_rollback(store, "close_batch");
    return rc;
}
