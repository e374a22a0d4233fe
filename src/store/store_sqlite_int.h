/* store_sqlite_int.h - what the files of the SQLite backend share: the statement helpers of
 * store_sqlite.c, for the parts that live in their own files (store_sqlite_lists.c). Not for use
 * outside src/store. */
#ifndef TG_STORE_SQLITE_INT_H
#define TG_STORE_SQLITE_INT_H

#include <sqlite3.h>
#include <stddef.h>

#include "store/store_ops.h"
#include "store/store_page.h"

/* The statements prepared once per connection (hot_sql in store_sqlite.c). */
enum {
    ST_BATCH_INSERT, /* then ST_BATCH_INSERT_2, _4, _8 and _16: that many batch ids per statement */
    ST_BATCH_INSERT_2,
    ST_BATCH_INSERT_4,
    ST_BATCH_INSERT_8,
    ST_BATCH_INSERT_16,
    ST_USAGE_PERIOD,
    ST_USAGE_DAILY,
    ST_PERIOD_ADD,
    ST_DAILY_ADD,
    ST_PERIOD_MAX,
    ST_DAILY_MAX,
    ST_JOURNAL_INSERT,
    ST_JOURNAL_ANY,
    ST_REJECTED_INSERT,
    ST_HOURLY_UPSERT,
    ST_EXPORT_ON,
    ST_EVENT_ID_BLOCK_INSERT,
    ST_BEGIN_IMMEDIATE,
    ST_COMMIT,
    ST_COUNT
};

/* Statements prepared on first use and kept for the connection's life (tg_sqlite_cached): the
 * ones the period closer runs once or more per customer, so that closing a million customers'
 * month parses each of them once, not a million times. */
enum {
    SQ_INVOICE_BY_PERIOD,
    SQ_UNBILLED,
    SQ_PENDING_ITEMS,
    SQ_INVOICE_INSERT,
    SQ_USAGE_INVOICED,
    SQ_ITEM_INVOICED,
    SQ_SAVEPOINT_INVOICE,
    SQ_RELEASE_INVOICE,
    SQ_ROLLBACK_INVOICE,
    SQ_FAILURE_CLEAR,
    SQ_CUSTOMERS_DUE,
    SQ_SET_NEXT_END,
    SQ_COUNT
};

/* What the connections of this process to one database file share: who waits for its write
 * lock, and a wake-up when one of them ends a write transaction (store_sqlite.c, "the write
 * lock's queue"). */
typedef struct tg_sqlite_file tg_sqlite_file_t;

typedef struct tg_sqlite tg_sqlite_t;
struct tg_sqlite {
    tg_store_t base; /* first: a tg_store_t * is a tg_sqlite_t * */
    sqlite3 *db;
    char *path;
    tg_sqlite_file_t *file;
    int waiting;            /* this connection is counted in file's waiters */
    int64_t busy_since_ns;  /* monotonic: when its current wait for the write lock began */
    sqlite3_stmt *hot[ST_COUNT];
    sqlite3_stmt *cached[SQ_COUNT]; /* SQ_*, NULL until first used */
    unsigned journal_batches; /* batches journaled by this connection since it last folded */
    size_t journal_entries;   /* and the entries in them */
    int64_t folded_mono_ns;   /* when this connection last folded */
    int usage_writer;         /* stores usage (tg_sqlite_usage_record_many): its cache is sized for that */
};

static inline tg_sqlite_t *tg_sqlite(tg_store_t *st)
{
    return (tg_sqlite_t *)st;
}

extern const tg_store_ops_t tg_sqlite_ops;

/* After a COMMIT or ROLLBACK this connection ran itself: wakes the connections waiting for the
 * write lock now rather than at their next poll. */
void tg_sqlite_write_ended(tg_sqlite_t *st);

/* Prepares sql on st's connection; on failure fills err with `doing` and SQLite's message. */
int tg_sqlite_prepare(tg_sqlite_t *st, const char *sql, sqlite3_stmt **s, tg_err_t *err, const char *doing);
/* The cached statement id (SQ_*), prepared from sql on first use (sql must be the same text at
 * every call for that id), reset and unbound: ready to bind and step. Give it back with
 * tg_sqlite_done, never sqlite3_finalize. Not re-entrant per id: a cached statement is not
 * used again while it is stepping (no store call from inside a row callback). */
int tg_sqlite_cached(tg_sqlite_t *st, int id, const char *sql, sqlite3_stmt **s, tg_err_t *err, const char *doing);
/* Resets s (a SELECT left mid-way would keep its read transaction open) and its bindings. */
void tg_sqlite_done(sqlite3_stmt *s);
/* Steps a cached statement that returns no rows (SAVEPOINT, RELEASE, ...) and gives it back. */
int tg_sqlite_cached_exec(tg_sqlite_t *st, int id, const char *sql, tg_err_t *err, const char *doing);

/* The connection's last error as TG_ESTORE (TG_EEXIST for a uniqueness conflict). */
int tg_sqlite_error(tg_sqlite_t *st, tg_err_t *err, const char *doing);
/* Runs sql (one or more statements, no results); on failure fills err with `doing`. */
int tg_sqlite_exec(tg_sqlite_t *st, const char *sql, tg_err_t *err, const char *doing);
/* Column col as text into out (cap bytes, cut to fit, "" for NULL). */
void tg_sqlite_text(sqlite3_stmt *s, int col, char *out, size_t cap);

/* Steps s (prepared with LIMIT limit + 1) and hands each row of the page to row, which writes
 * the row's sort key; fills end. Finalizes s. */
typedef int (*tg_sqlite_page_row_fn)(sqlite3_stmt *s, void *ctx, char key[TG_PAGE_KEY_MAX]);
int tg_sqlite_run_page(tg_sqlite_t *st, sqlite3_stmt *s, size_t limit, tg_sqlite_page_row_fn row, void *ctx,
                       tg_page_end_t *end, const char *doing, tg_err_t *err);

/* The columns the row readers below expect, in their order. */
#define CUSTOMER_COLS                                                                                                  \
    "id, email, name, plan_id, status, created_at, anchor_at, trial_end, pending_plan_id, pending_at, cancel_at,"   \
    " email_confirmed_at"
/* the same, qualified by the alias c (a join with another table that has an id) */
#define CUSTOMER_COLS_C                                                                                                \
    "c.id, c.email, c.name, c.plan_id, c.status, c.created_at, c.anchor_at, c.trial_end, c.pending_plan_id,"       \
    " c.pending_at, c.cancel_at, c.email_confirmed_at"
#define KEY_COLS "id, customer_id, hash, prefix, name, created_at, expires_at, revoked_at, last_used_at"
#define INVOICE_COLS                                                                                                   \
    "id, customer_id, period_start, period_end, status, COALESCE(number, ''), currency, total, body, created_at,"      \
    " finalized_at, closed_at, held"

/* Shared by the backend's files: one row by id (TG_ENOTFOUND if none), the row readers of the
 * customer, key and invoice columns, and the fold of the usage journal into the totals. */
int tg_sqlite_get_by_id(tg_sqlite_t *st, const char *sql, const char *id, void (*read)(sqlite3_stmt *, void *),
                        void *out, const char *what, tg_err_t *err);
void tg_sqlite_read_customer(sqlite3_stmt *s, tg_customer_t *c);
void tg_sqlite_read_key(sqlite3_stmt *s, tg_key_t *k);
int tg_sqlite_read_invoice(sqlite3_stmt *s, tg_invoice_t *inv);
int tg_sqlite_fold_journal(tg_sqlite_t *st, tg_err_t *err);

/* The operations (store_ops.h), across the backend's files. */
void tg_sqlite_close(tg_store_t *st);
int tg_sqlite_migrate(tg_store_t *st, tg_err_t *err);
int tg_sqlite_schema_version(tg_store_t *st, int *version, tg_err_t *err);
int tg_sqlite_backup_to(tg_store_t *st, const char *dest_path, tg_err_t *err);
int tg_sqlite_restore_from(tg_store_t *st, const char *src_path, tg_err_t *err);
int tg_sqlite_customer_insert(tg_store_t *st, const tg_customer_t *c, tg_err_t *err);
int tg_sqlite_customer_get(tg_store_t *st, const char *id, tg_customer_t *out, tg_err_t *err);
int tg_sqlite_customer_update(tg_store_t *st, const tg_customer_t *c, tg_err_t *err);
int tg_sqlite_customer_list(tg_store_t *st, tg_customer_cb cb, void *arg, tg_err_t *err);
int tg_sqlite_key_insert(tg_store_t *st, const tg_key_t *k, tg_err_t *err);
int tg_sqlite_key_get(tg_store_t *st, const char *id, tg_key_t *out, tg_err_t *err);
int tg_sqlite_key_list(tg_store_t *st, const char *customer_id, tg_key_cb cb, void *arg, tg_err_t *err);
int tg_sqlite_key_set_revoked(tg_store_t *st, const char *id, int64_t revoked_at, tg_err_t *err);
int tg_sqlite_key_set_expires(tg_store_t *st, const char *id, int64_t expires_at, tg_err_t *err);
int tg_sqlite_key_touch(tg_store_t *st, const char *id, int64_t last_used_at, tg_err_t *err);
int tg_sqlite_usage_record(tg_store_t *st, uint64_t batch_id, const tg_usage_t *rows, size_t n, size_t *inserted,
                           tg_err_t *err);
int tg_sqlite_usage_record_many(tg_store_t *st, const tg_usage_batch_t *batches, size_t nb, tg_usage_stored_t *out,
                                tg_err_t *err);
int tg_sqlite_usage_event_ids_prune(tg_store_t *st, int64_t before_s, size_t limit, size_t *deleted, tg_err_t *err);
int tg_sqlite_usage_event_ids_each(tg_store_t *st, int64_t since_s, tg_usage_event_id_cb cb, void *arg, tg_err_t *err);
int tg_sqlite_usage_event_id_blocks_last(tg_store_t *st, int64_t *last, tg_err_t *err);
int tg_sqlite_usage_event_id_blocks_after(tg_store_t *st, int64_t after_id, int64_t since_s, tg_usage_event_id_cb cb,
                                          void *arg, tg_err_t *err);
int tg_sqlite_usage_fold(tg_store_t *st, int force, tg_err_t *err);
int tg_sqlite_usage_period(tg_store_t *st, const char *customer_id, int64_t period_start, tg_usage_total_cb cb,
                           void *arg, tg_err_t *err);
int tg_sqlite_usage_daily(tg_store_t *st, const char *customer_id, int64_t from_s, int64_t to_s, tg_usage_day_cb cb,
                          void *arg, tg_err_t *err);
int tg_sqlite_usage_endpoints(tg_store_t *st, const char *customer_id, int64_t from_s, int64_t to_s,
                              tg_usage_endpoint_cb cb, void *arg, tg_err_t *err);
int tg_sqlite_usage_load(tg_store_t *st, int64_t since_s, tg_usage_load_cb cb, void *arg, tg_err_t *err);
int tg_sqlite_usage_total(tg_store_t *st, const char *metric, uint64_t *units, tg_err_t *err);
int tg_sqlite_customer_page(tg_store_t *st, const tg_page_t *page, tg_customer_cb cb, void *arg, tg_page_end_t *end,
                            tg_err_t *err);
int tg_sqlite_customer_search(tg_store_t *st, const tg_customer_query_t *q, const tg_page_t *page, tg_customer_cb cb,
    void *arg, tg_page_end_t *end, tg_err_t *err);
int tg_sqlite_invoice_search(tg_store_t *st, const tg_invoice_query_t *q, const tg_page_t *page, tg_invoice_cb cb,
    void *arg, tg_page_end_t *end, tg_err_t *err);
int tg_sqlite_invoice_search_totals(tg_store_t *st, const tg_invoice_query_t *q, tg_invoice_totals_cb cb, void *arg,
    tg_err_t *err);
int tg_sqlite_key_page(tg_store_t *st, const char *customer_id, const tg_page_t *page, tg_key_cb cb, void *arg,
                       tg_page_end_t *end, tg_err_t *err);
int tg_sqlite_key_count_active(tg_store_t *st, const char *customer_id, int64_t now, uint64_t *count, tg_err_t *err);
int tg_sqlite_usage_rejected_list(tg_store_t *st, const tg_page_t *page, tg_usage_rejected_cb cb, void *arg,
                                  tg_page_end_t *end, tg_err_t *err);
int tg_sqlite_usage_rejected_count(tg_store_t *st, uint64_t *count, tg_err_t *err);
int tg_sqlite_billing_failure_set(tg_store_t *st, const char *customer_id, const char *type, const char *message,
                                  int64_t at, tg_err_t *err);
int tg_sqlite_billing_failure_clear(tg_store_t *st, const char *customer_id, tg_err_t *err);
int tg_sqlite_billing_failure_count(tg_store_t *st, uint64_t *count, tg_err_t *err);
int tg_sqlite_billing_failure_list(tg_store_t *st, const tg_page_t *page, tg_billing_failure_cb cb, void *arg,
                                   tg_page_end_t *end, tg_err_t *err);
int tg_sqlite_customers_due(tg_store_t *st, int64_t until, int64_t after_end, const char *after_id, size_t limit,
                            tg_customer_due_cb cb, void *arg, size_t *n, tg_err_t *err);
int tg_sqlite_customer_set_next_period_end(tg_store_t *st, const char *id, int64_t expected, int64_t next_end,
                                           tg_err_t *err);
int tg_sqlite_customer_set_password(tg_store_t *st, const char *id, const char *password_hash, tg_err_t *err);
int tg_sqlite_customer_by_email(tg_store_t *st, const char *email, tg_customer_t *out, char *password_hash, size_t cap,
                                tg_err_t *err);
int tg_sqlite_session_insert(tg_store_t *st, const tg_session_t *s, tg_err_t *err);
int tg_sqlite_session_get(tg_store_t *st, const uint8_t token_hash[32], tg_session_t *out, tg_err_t *err);
int tg_sqlite_session_delete(tg_store_t *st, const uint8_t token_hash[32], tg_err_t *err);
int tg_sqlite_session_delete_customer(tg_store_t *st, const char *customer_id, uint64_t *count, tg_err_t *err);
int tg_sqlite_owner_session_insert(tg_store_t *st, const tg_session_t *s, tg_err_t *err);
int tg_sqlite_owner_session_get(tg_store_t *st, const uint8_t token_hash[32], tg_session_t *out, tg_err_t *err);
int tg_sqlite_owner_session_delete(tg_store_t *st, const uint8_t token_hash[32], tg_err_t *err);
int tg_sqlite_trial_used(tg_store_t *st, const char *email_norm, const char *address, int64_t address_since,
                         int *by_email, int *by_address, tg_err_t *err);
int tg_sqlite_trial_record(tg_store_t *st, const char *email_norm, const char *address, const char *customer_id,
                           int64_t at, tg_err_t *err);
int tg_sqlite_plan_change_add(tg_store_t *st, const char *customer_id, const char *from_plan, const char *to_plan,
                              const char *kind, int64_t at, tg_err_t *err);
int tg_sqlite_plan_change_count(tg_store_t *st, const char *kind, int64_t since, int64_t until, uint64_t *count,
                                tg_err_t *err);
int tg_sqlite_invoice_item_add(tg_store_t *st, const tg_invoice_item_t *item, tg_err_t *err);
int tg_sqlite_invoice_create(tg_store_t *st, tg_invoice_t *draft, tg_invoice_build_cb build, void *arg, int *created,
                             tg_invoice_t *out, tg_err_t *err);
int tg_sqlite_invoice_close_batch(tg_store_t *st, tg_invoice_close_t *e, size_t n, tg_invoice_build_cb build,
                                  tg_err_t *err);
int tg_sqlite_invoice_preview(tg_store_t *st, tg_invoice_t *draft, tg_invoice_build_cb build, void *arg, tg_err_t *err);
int tg_sqlite_invoice_get(tg_store_t *st, const char *id, tg_invoice_t *out, tg_err_t *err);
int tg_sqlite_tx_begin(tg_store_t *st, tg_err_t *err);
int tg_sqlite_tx_commit(tg_store_t *st, tg_err_t *err);
void tg_sqlite_tx_rollback(tg_store_t *st);
int tg_sqlite_savepoint(tg_store_t *st, const char *name, tg_err_t *err);
int tg_sqlite_savepoint_release(tg_store_t *st, const char *name, tg_err_t *err);
void tg_sqlite_savepoint_rollback(tg_store_t *st, const char *name);
int tg_sqlite_invoice_list(tg_store_t *st, const char *customer_id, tg_invoice_cb cb, void *arg, tg_err_t *err);
int tg_sqlite_invoice_totals(tg_store_t *st, int64_t from, int64_t to, tg_invoice_totals_cb cb, void *arg,
                             tg_err_t *err);
int tg_sqlite_invoice_page(tg_store_t *st, const char *customer_id, const tg_page_t *page, tg_invoice_cb cb, void *arg,
                           tg_page_end_t *end, tg_err_t *err);
int tg_sqlite_invoice_transition(tg_store_t *st, const char *id, const char *to, int64_t at, tg_err_t *err);
int tg_sqlite_invoice_draft_refresh(tg_store_t *st, const char *id, tg_invoice_build_cb build, void *arg, int *changed,
                                   tg_err_t *err);
int tg_sqlite_invoice_hold(tg_store_t *st, const char *id, int held, tg_err_t *err);
int tg_sqlite_invoice_drafts_due(tg_store_t *st, int64_t created_before, char (*ids)[TG_ID_MAX], size_t limit,
                                 size_t *n, tg_err_t *err);
int tg_sqlite_outbox_insert(tg_store_t *st, const tg_outbox_row_t *row, const char *params, size_t params_len,
                            int64_t now_ms, int64_t *id, tg_err_t *err);
int tg_sqlite_outbox_due(tg_store_t *st, int64_t now_ms, tg_outbox_row_t *out, size_t limit, size_t *n, tg_err_t *err);
int tg_sqlite_outbox_next_due(tg_store_t *st, int64_t *at_ms, uint64_t *pending, tg_err_t *err);
int tg_sqlite_outbox_done(tg_store_t *st, int64_t id, const char *response_id, int map_stripe_customer, int64_t now,
                          tg_err_t *err);
int tg_sqlite_outbox_retry(tg_store_t *st, int64_t id, int64_t next_attempt_at_ms, const char *last_error, int64_t now,
                           tg_err_t *err);
int tg_sqlite_outbox_fail(tg_store_t *st, int64_t id, const char *last_error, int64_t now, tg_err_t *err);
int tg_sqlite_outbox_defer(tg_store_t *st, int64_t id, int64_t next_attempt_at_ms, const char *why, int64_t now,
                           tg_err_t *err);
int tg_sqlite_outbox_requeue(tg_store_t *st, int64_t id, int64_t now_ms, tg_err_t *err);
int tg_sqlite_outbox_get(tg_store_t *st, int64_t id, tg_outbox_row_t *out, tg_err_t *err);
int tg_sqlite_outbox_get_by_key(tg_store_t *st, const char *idempotency_key, tg_outbox_row_t *out, tg_err_t *err);
int tg_sqlite_outbox_customers_missing(tg_store_t *st, const char *kind, tg_customer_t *out, size_t limit, size_t *n,
                                       tg_err_t *err);
int tg_sqlite_outbox_prune(tg_store_t *st, int64_t before_s, size_t limit, size_t *deleted, tg_err_t *err);
int tg_sqlite_outbox_pull_in(tg_store_t *st, int64_t latest_ms, int64_t now_ms, uint64_t *moved, tg_err_t *err);
int tg_sqlite_stripe_customer_get(tg_store_t *st, const char *customer_id, char *stripe_id, size_t cap, tg_err_t *err);
int tg_sqlite_stripe_customer_owner(tg_store_t *st, const char *stripe_id, char customer_id[TG_ID_MAX], tg_err_t *err);
int tg_sqlite_outbox_customer_latest(tg_store_t *st, const char *customer_id, tg_outbox_row_t *out, tg_err_t *err);
int tg_sqlite_outbox_earlier_pending(tg_store_t *st, const char *customer_id, int64_t id, int64_t *earlier_id,
                                     int64_t *next_ms, tg_err_t *err);
int tg_sqlite_outbox_customer_latest_of(tg_store_t *st, const char *customer_id, const char *kind, tg_outbox_row_t *out,
                                        tg_err_t *err);
int tg_sqlite_outbox_page(tg_store_t *st, const char *state, const tg_page_t *page, tg_outbox_row_cb cb, void *arg,
                          tg_page_end_t *end, tg_err_t *err);
int tg_sqlite_outbox_counts(tg_store_t *st, tg_outbox_counts_t *out, tg_err_t *err);
int tg_sqlite_stripe_event_insert(tg_store_t *st, const tg_stripe_event_row_t *e, int *inserted, tg_err_t *err);
int tg_sqlite_stripe_event_next(tg_store_t *st, tg_stripe_event_row_t *out, int *found, tg_err_t *err);
int tg_sqlite_stripe_event_mark(tg_store_t *st, const char *id, int64_t processed_at, const char *customer_id,
                                const char *outcome, const char *error, tg_err_t *err);
int tg_sqlite_stripe_event_get(tg_store_t *st, const char *id, tg_stripe_event_row_t *out, tg_err_t *err);
int tg_sqlite_stripe_event_count(tg_store_t *st, uint64_t *count, tg_err_t *err);
int tg_sqlite_stripe_invoice_get(tg_store_t *st, const char *invoice_id, tg_stripe_invoice_state_t *out, int *found,
                                 tg_err_t *err);
int tg_sqlite_stripe_invoice_put(tg_store_t *st, const tg_stripe_invoice_state_t *s, tg_err_t *err);
int tg_sqlite_stripe_debt(tg_store_t *st, const char *customer_id, tg_stripe_debt_t *out, tg_err_t *err);
int tg_sqlite_dunning_get(tg_store_t *st, const char *customer_id, tg_dunning_row_t *out, int *found, tg_err_t *err);
int tg_sqlite_dunning_put(tg_store_t *st, const tg_dunning_row_t *d, tg_err_t *err);
int tg_sqlite_dunning_clear(tg_store_t *st, const char *customer_id, tg_err_t *err);
int tg_sqlite_dunning_list(tg_store_t *st, tg_dunning_cb cb, void *arg, tg_err_t *err);
int tg_sqlite_status_history_add(tg_store_t *st, const char *customer_id, const char *from, const char *to,
                                 const char *reason, const char *source, int64_t at, tg_err_t *err);
int tg_sqlite_status_history_list(tg_store_t *st, const char *customer_id, tg_status_change_cb cb, void *arg,
                                  tg_err_t *err);
int tg_sqlite_payment_method_put(tg_store_t *st, const char *customer_id, int64_t on_file_at, const char *session_id,
                                 const char *event_id, int *inserted, tg_err_t *err);
int tg_sqlite_payment_method_get(tg_store_t *st, const char *customer_id, int64_t *on_file_at, tg_err_t *err);
int tg_sqlite_stripe_subscription_map(tg_store_t *st, const char *customer_id, const char *subscription_id,
                                      int64_t now_s, tg_err_t *err);
int tg_sqlite_stripe_subscription_get(tg_store_t *st, const char *subscription_id, tg_stripe_subscription_t *out,
                                      int *found, tg_err_t *err);
int tg_sqlite_stripe_subscription_latest(tg_store_t *st, const char *customer_id, tg_stripe_subscription_t *out,
                                         int *found, tg_err_t *err);
int tg_sqlite_customers_without_subscription(tg_store_t *st, const char *kind, int64_t after_created,
                                             const char *after_id, char (*ids)[TG_ID_MAX], int64_t *created,
                                             size_t limit, size_t *n, tg_err_t *err);
int tg_sqlite_stripe_subscription_put(tg_store_t *st, const tg_stripe_subscription_t *s, tg_err_t *err);
int tg_sqlite_meter_export_set(tg_store_t *st, int on, int64_t since, tg_err_t *err);
int tg_sqlite_meter_due(tg_store_t *st, int64_t hour_before, const tg_meter_cursor_t *cursor, tg_meter_bucket_t *out,
                        size_t limit, size_t *n, tg_err_t *err);
int tg_sqlite_meter_mark(tg_store_t *st, const tg_meter_bucket_t *b, uint64_t exported, tg_err_t *err);
int tg_sqlite_meter_set_seq(tg_store_t *st, const char *customer_id, const char *metric, int64_t ts, int64_t seq,
                            tg_err_t *err);
int tg_sqlite_meter_period_exported(tg_store_t *st, const char *customer_id, int64_t period_start, const char *plan_id,
                                    const char *metric, uint64_t *units, tg_err_t *err);
int tg_sqlite_meter_prune(tg_store_t *st, int64_t before_s, size_t limit, size_t *deleted, tg_err_t *err);
int tg_sqlite_meter_customer_backlog(tg_store_t *st, const char *customer_id, uint64_t *hours, uint64_t *units,
                                     tg_err_t *err);
int tg_sqlite_meter_refused(tg_store_t *st, tg_meter_refused_t *out, size_t limit, size_t *n, tg_err_t *err);
int tg_sqlite_meter_take_back(tg_store_t *st, int64_t outbox_id, const char *customer_id, const char *metric,
                              int64_t ts, uint64_t units, int64_t now, tg_err_t *err);
int tg_sqlite_meter_outbox_counts(tg_store_t *st, const char *customer_id, uint64_t *pending, uint64_t *failed,
                                  tg_err_t *err);
int tg_sqlite_changes_listen(tg_store_t *st, tg_err_t *err);
int tg_sqlite_changes_wait(tg_store_t *st, int timeout_ms, tg_change_cb cb, void *arg, size_t *count, tg_err_t *err);
int tg_sqlite_leader_try(tg_store_t *st, int *leader, tg_err_t *err);

/* store_notify.h (issue 13, part A) */
int tg_sqlite_event_insert(tg_store_t *st, const tg_event_row_t *e, const char *dedupe_key, tg_err_t *err);
int tg_sqlite_event_get(tg_store_t *st, const char *id, tg_event_row_t *out, tg_err_t *err);
int tg_sqlite_event_page(tg_store_t *st, const char *customer_id, const tg_page_t *page, tg_event_row_cb cb, void *arg, tg_page_end_t *end, tg_err_t *err);
int tg_sqlite_webhook_endpoint_insert(tg_store_t *st, const tg_webhook_endpoint_t *e, tg_err_t *err);
int tg_sqlite_webhook_endpoint_get(tg_store_t *st, const char *id, tg_webhook_endpoint_t *out, tg_err_t *err);
int tg_sqlite_webhook_endpoint_update(tg_store_t *st, const tg_webhook_endpoint_t *e, tg_err_t *err);
int tg_sqlite_webhook_endpoint_delete(tg_store_t *st, const char *id, tg_err_t *err);
int tg_sqlite_webhook_endpoint_list(tg_store_t *st, const char *customer_id, tg_webhook_endpoint_cb cb, void *arg, tg_err_t *err);
int tg_sqlite_webhook_delivery_insert(tg_store_t *st, const tg_webhook_delivery_t *d, tg_err_t *err);
int tg_sqlite_webhook_delivery_get(tg_store_t *st, const char *id, tg_webhook_delivery_t *out, tg_err_t *err);
int tg_sqlite_webhook_delivery_claim(tg_store_t *st, int64_t now_ms, int64_t lease_ms, tg_webhook_delivery_t *out, size_t limit, size_t *n, tg_err_t *err);
int tg_sqlite_webhook_delivery_next_due(tg_store_t *st, int64_t *at_ms, tg_err_t *err);
int tg_sqlite_webhook_delivery_update(tg_store_t *st, const tg_webhook_delivery_t *d, const tg_webhook_attempt_t *a, tg_err_t *err);
int tg_sqlite_webhook_delivery_page(tg_store_t *st, const char *endpoint_id, const char *customer_id, const tg_page_t *page, tg_webhook_delivery_cb cb, void *arg, tg_page_end_t *end, tg_err_t *err);
int tg_sqlite_webhook_attempt_list(tg_store_t *st, const char *delivery_id, size_t limit, tg_webhook_attempt_cb cb, void *arg, tg_err_t *err);
int tg_sqlite_notification_settings_get(tg_store_t *st, const char *customer_id, char *email_events, size_t cap, tg_err_t *err);
int tg_sqlite_notification_settings_put(tg_store_t *st, const char *customer_id, const char *email_events, int64_t now, tg_err_t *err);
/* part C (issue 13): store_thresholds.h (store_sqlite_thresholds.c) */
int tg_sqlite_mark_insert(tg_store_t *st, const tg_mark_t *m, int *inserted, tg_err_t *err);
int tg_sqlite_marks_list(tg_store_t *st, const char *customer_id, size_t limit, tg_mark_cb cb, void *arg, tg_err_t *err);
int tg_sqlite_budget_set(tg_store_t *st, const char *customer_id, int64_t amount, int64_t now_s, tg_err_t *err);
int tg_sqlite_budget_get(tg_store_t *st, const char *customer_id, int64_t *amount, tg_err_t *err);
int tg_sqlite_budgets_list(tg_store_t *st, const char *after_id, size_t limit, tg_budget_cb cb, void *arg, tg_err_t *err);
int tg_sqlite_trials_ending(tg_store_t *st, int64_t after, int64_t until, size_t limit, tg_trial_cb cb, void *arg, tg_err_t *err);

/* store_mail.h (issue 13 part B) */
int tg_sqlite_mail_insert(tg_store_t *st, const tg_mail_row_t *row, int64_t now_ms, int64_t *id, tg_err_t *err);
int tg_sqlite_mail_claim(tg_store_t *st, int64_t now_ms, int64_t lease_until_ms, tg_mail_row_t *out, size_t limit, size_t *n, tg_err_t *err);
int tg_sqlite_mail_next_due(tg_store_t *st, int64_t *at_ms, tg_err_t *err);
int tg_sqlite_mail_record(tg_store_t *st, int64_t id, const char *outcome, int64_t next_attempt_at_ms, int64_t smtp_code, const char *error, int64_t now_ms, tg_err_t *err);
int tg_sqlite_mail_requeue(tg_store_t *st, int64_t id, int64_t now_ms, tg_err_t *err);
int tg_sqlite_mail_get(tg_store_t *st, int64_t id, tg_mail_row_t *out, tg_err_t *err);
int tg_sqlite_mail_page(tg_store_t *st, const char *state, const tg_page_t *page, tg_mail_row_cb cb, void *arg, tg_page_end_t *end, tg_err_t *err);
int tg_sqlite_mail_attempts(tg_store_t *st, int64_t mail_id, tg_mail_attempt_t *out, size_t limit, size_t *n, tg_err_t *err);
int tg_sqlite_email_token_insert(tg_store_t *st, const uint8_t hash[32], const char *customer_id, const char *purpose, int64_t now, int64_t expires_at, tg_err_t *err);
int tg_sqlite_email_token_use(tg_store_t *st, const uint8_t hash[32], const char *purpose, int64_t now, char customer_id[TG_ID_MAX], tg_err_t *err);
int tg_sqlite_email_token_revoke(tg_store_t *st, const char *customer_id, const char *purpose, int64_t now, tg_err_t *err);
int tg_sqlite_customer_confirm_email(tg_store_t *st, const char *customer_id, int64_t at, tg_err_t *err);

/* store_retention.h */
int tg_sqlite_notify_prune(tg_store_t *st, tg_notify_table_t what, int64_t cutoff_s, size_t limit, size_t *deleted,
                       size_t *attempts, tg_err_t *err);
int tg_sqlite_notify_pending(tg_store_t *st, tg_notify_table_t what, int64_t *n, tg_err_t *err);
int tg_sqlite_usage_batches_prune(tg_store_t *st, const char *node, uint64_t below_id, int64_t committed_before_s,
                               size_t limit, size_t *deleted, tg_err_t *err);
int tg_sqlite_node_drained(tg_store_t *st, const char *node, int64_t drained_at, tg_err_t *err);
int tg_sqlite_drained_nodes(tg_store_t *st, int64_t before_s, tg_drained_node_t *out, size_t max, size_t *n, tg_err_t *err);
int tg_sqlite_drained_node_forget(tg_store_t *st, const char *node, int64_t drained_at, tg_err_t *err);
/* store_sqlite_audit.c (issue 14) */
int tg_sqlite_audit_append(tg_store_t *st, const tg_audit_row_t *r, int64_t *id, tg_err_t *err);
int tg_sqlite_audit_page(tg_store_t *st, const tg_audit_filter_t *f, const tg_page_t *page, tg_audit_row_cb cb, void *arg,
                     tg_page_end_t *end, tg_err_t *err);

/* store_sqlite_ingest.c (issue 16) */
#include "store/store_ingest.h"
int tg_sqlite_ingest_token_insert(tg_store_t *st, const tg_ingest_token_row_t *t, tg_err_t *err);
int tg_sqlite_ingest_token_get(tg_store_t *st, const char *id, tg_ingest_token_row_t *out, tg_err_t *err);
int tg_sqlite_ingest_token_set_revoked(tg_store_t *st, const char *id, int64_t revoked_at, tg_err_t *err);
int tg_sqlite_ingest_token_page(tg_store_t *st, const tg_page_t *page, tg_ingest_token_cb cb, void *arg, tg_page_end_t *end, tg_err_t *err);
int tg_sqlite_ingest_token_list_active(tg_store_t *st, tg_ingest_token_cb cb, void *arg, tg_err_t *err);
int tg_sqlite_event_key_blake2b_until(tg_store_t *st, int64_t *until_s, tg_err_t *err);

#endif
