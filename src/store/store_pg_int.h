/* store_pg_int.h - what the files of the PostgreSQL backend share. Not for use outside src/store.
 *
 * Every statement goes through tg_pg_query: parameters travel as text beside the SQL (never
 * spliced into it), and each distinct SQL text is prepared once per connection, on first use,
 * and reused (the SQL strings are constants: their address is the cache key). Results come back
 * as text (PQexecParams' text format): tg_pg_i64 / tg_pg_text / tg_pg_bytea read them.
 *
 * Differences from SQLite that every implementation must respect:
 * - A failed statement aborts the whole transaction in PostgreSQL: never "try the insert and
 *   see"; use INSERT ... ON CONFLICT and check the affected rows (tg_pg_affected).
 * - SAVEPOINT only exists inside a transaction: tg_pg_savepoint begins one when none is open
 *   and tg_pg_savepoint_release then commits it, like the SQLite backend's savepoints.
 * - Placeholders are $1, $2, ...; integers are BIGINT; blobs are BYTEA (tg_pg_param_bytea).
 * - The connection may drop (PostgreSQL restarted, network): the call fails with TG_EUNAVAIL
 *   and the next call reconnects (the prepared statements are prepared again). */
#ifndef TG_STORE_PG_INT_H
#define TG_STORE_PG_INT_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store_ops.h"
#include "store/store_page.h"

#define TG_PG_STMT_CACHE 256 /* distinct statements a connection prepares */
#define TG_PG_DEPTH_MAX 16   /* nested savepoints */

typedef struct tg_pg_stmt {
    const char *sql; /* NULL: free slot */
    char name[12];   /* "tg17" */
} tg_pg_stmt_t;

typedef struct tg_pg {
    tg_store_t base; /* first: a tg_store_t * is a tg_pg_t * */
    PGconn *conn;
    char *url;
    char where[128]; /* "127.0.0.1:5432/tollgate", for messages (no password) */
    tg_pg_stmt_t stmts[TG_PG_STMT_CACHE];
    unsigned nstmts;
    int depth;                   /* open transaction levels (BEGIN = 1, each SAVEPOINT + 1) */
    char owner[TG_PG_DEPTH_MAX]; /* level i began the transaction (its release commits) */
    int listening;               /* LISTEN tollgate_changes was issued on this session */
    int leader;                  /* this session holds the scheduler lock */
} tg_pg_t;

static inline tg_pg_t *tg_pg(tg_store_t *st)
{
    return (tg_pg_t *)st;
}

extern const tg_store_ops_t tg_pg_ops;

/* Up to TG_PG_PARAMS_MAX parameters of one statement, as text. Numbers are formatted into the
 * struct's own buffers; text and large values are referenced (they must outlive the call). */
#define TG_PG_PARAMS_MAX 24
typedef struct tg_pg_params {
    int n;
    const char *v[TG_PG_PARAMS_MAX];
    int len[TG_PG_PARAMS_MAX];    /* for bytea (binary format); 0 for text */
    int format[TG_PG_PARAMS_MAX]; /* 0 text, 1 binary */
    char num[TG_PG_PARAMS_MAX][24];
} tg_pg_params_t;

void tg_pg_param_text(tg_pg_params_t *p, const char *s); /* NULL: SQL NULL */
void tg_pg_param_i64(tg_pg_params_t *p, int64_t v);
void tg_pg_param_u64(tg_pg_params_t *p, uint64_t v); /* as text digits: for NUMERIC or checked BIGINT */
void tg_pg_param_bytea(tg_pg_params_t *p, const void *data, size_t n);

/* A PostgreSQL array literal built an element at a time ({"a","b"}), for the statements that
 * take a whole batch as arrays ($1::text[] in unnest(...)) instead of a round trip per row.
 * Every text element is quoted, with '"' and '\\' escaped, so that any text (commas, braces,
 * quotes, backslashes, spaces, an element spelled NULL, the empty string) reads back as itself;
 * numbers are written bare. A literal is capped at TG_PG_ARRAY_MAX bytes: past it, or out of
 * memory, the builder fails once and tg_pg_array_end says so. Zero-initialise, then free. */
#define TG_PG_ARRAY_MAX ((size_t)256 << 20)
typedef struct tg_pg_array {
    char *buf;
    size_t len, cap;
    size_t n;   /* elements */
    int failed; /* out of memory or over the cap */
} tg_pg_array_t;
void tg_pg_array_text(tg_pg_array_t *a, const char *s);
void tg_pg_array_i64(tg_pg_array_t *a, int64_t v);
/* The literal, owned by a (valid until the next call on a); NULL if the builder failed. */
const char *tg_pg_array_end(tg_pg_array_t *a);
void tg_pg_array_free(tg_pg_array_t *a);

/* Runs sql (prepared once per connection) with p (may be NULL). On success returns 0 and, if
 * res is not NULL, the result (the caller PQclear()s it); a statement returning no rows
 * (PGRES_COMMAND_OK) is success too. On failure: TG_EEXIST for a unique violation (23505),
 * TG_EUNAVAIL when the server cannot be reached, TG_ESTORE otherwise, with `doing` and the
 * server's message in err; *res is NULL. */
int tg_pg_query(tg_pg_t *st, const char *sql, const tg_pg_params_t *p, PGresult **res, tg_err_t *err,
                const char *doing);
/* As tg_pg_query for a statement built at run time (sql in a buffer: the statement cache is
 * keyed by the text's address, so it must not see one): planned for each call, with its values. */
int tg_pg_query_unprepared(tg_pg_t *st, const char *sql, const tg_pg_params_t *p, PGresult **res, tg_err_t *err,
                           const char *doing);
/* Runs one or more statements without parameters or results (DDL, BEGIN, ...), unprepared. */
int tg_pg_exec(tg_pg_t *st, const char *sql, tg_err_t *err, const char *doing);
/* Rows changed by the command that produced res. */
uint64_t tg_pg_affected(PGresult *res);

/* Reading a text-format result: NULL reads as 0 / "". */
int64_t tg_pg_i64(const PGresult *res, int row, int col);
uint64_t tg_pg_u64(const PGresult *res, int row, int col);
void tg_pg_text(const PGresult *res, int row, int col, char *out, size_t cap);
/* A bytea column into out (exactly n bytes; other lengths leave out zeroed and return -1). */
int tg_pg_bytea(const PGresult *res, int row, int col, void *out, size_t n);
/* A text column as a malloc'd string (NULL on ENOMEM); *len (may be NULL) gets its length. */
char *tg_pg_strdup(const PGresult *res, int row, int col, size_t *len);

/* Row readers shared by the backend's files (store_pg_customers.c, store_pg_lists.c, ...): the
 * columns of a result, from column 0, in the order of TG_PG_CUSTOMER_COLS / TG_PG_KEY_COLS /
 * the SQLite backend's INVOICE_COLS (store_sqlite_int.h), same names, same order. */
#define TG_PG_CUSTOMER_COLS                                                                                            \
    "id, email, name, plan_id, status, created_at, anchor_at, trial_end, pending_plan_id, pending_at, cancel_at,"   \
    " email_confirmed_at"
#define TG_PG_KEY_COLS "id, customer_id, hash, prefix, name, created_at, expires_at, revoked_at, last_used_at"
#define TG_PG_INVOICE_COLS                                                                                             \
    "id, customer_id, period_start, period_end, status, COALESCE(number, ''), currency, total, body, created_at,"      \
    " finalized_at, closed_at, held"
/* The quoted column of an invoice build's usage row (store.h, tg_unbilled_t.quoted): 1 for a late
 * row (its period ROW.period_start before PS, the invoice's) with nothing invoiced whose period's
 * invoice has a line of kind "minimum" of the row's plan, else 0. ROW is usage_period's name or
 * alias in the statement, CUSTOMER the customer's id. The nested CASE keeps the invoice's body
 * from being read for any other row (nearly all: the closer's usual rows); the LIKE keeps it from
 * being parsed as JSON unless it has a minimum line; jsonb_path_exists (lax) does not fail on a
 * body of another shape. As SQLite's unbilled query. */
#define TG_PG_LATE_QUOTED(ROW, PS, CUSTOMER)                                                                           \
    "CASE WHEN " ROW ".period_start < " PS " AND " ROW ".invoiced_units = 0 THEN CASE WHEN EXISTS (SELECT 1"           \
    " FROM invoices v WHERE v.customer_id = " CUSTOMER " AND v.period_start = " ROW ".period_start"                    \
    " AND CASE WHEN v.body LIKE '%\"minimum\"%' THEN jsonb_path_exists(v.body::jsonb,"                                \
    " '$.lines[*] ? (@.kind == \"minimum\" && @.plan == $plan)', jsonb_build_object('plan', " ROW ".plan_id))"         \
    " ELSE false END) THEN 1 ELSE 0 END ELSE 0 END"
void tg_pg_read_customer(const PGresult *res, int row, tg_customer_t *c);
void tg_pg_read_key(const PGresult *res, int row, tg_key_t *k);
/* 0, or TG_ENOMEM (inv->body is malloc'd: tg_invoice_clear frees it). */
int tg_pg_read_invoice(const PGresult *res, int row, tg_invoice_t *inv);

/* The operations (store_ops.h), across the backend's files. */
void tg_pg_close(tg_store_t *st);
int tg_pg_migrate(tg_store_t *st, tg_err_t *err);
int tg_pg_schema_version(tg_store_t *st, int *version, tg_err_t *err);
int tg_pg_backup_to(tg_store_t *st, const char *dest_path, tg_err_t *err);
int tg_pg_restore_from(tg_store_t *st, const char *src_path, tg_err_t *err);
int tg_pg_customer_insert(tg_store_t *st, const tg_customer_t *c, tg_err_t *err);
int tg_pg_customer_get(tg_store_t *st, const char *id, tg_customer_t *out, tg_err_t *err);
int tg_pg_customer_update(tg_store_t *st, const tg_customer_t *c, tg_err_t *err);
int tg_pg_customer_list(tg_store_t *st, tg_customer_cb cb, void *arg, tg_err_t *err);
int tg_pg_customers_due(tg_store_t *st, int64_t until, int64_t after_end, const char *after_id, size_t limit,
                        tg_customer_due_cb cb, void *arg, size_t *n, tg_err_t *err);
int tg_pg_customer_set_next_period_end(tg_store_t *st, const char *id, int64_t expected, int64_t next_end,
                                       tg_err_t *err);
int tg_pg_key_insert(tg_store_t *st, const tg_key_t *k, tg_err_t *err);
int tg_pg_key_get(tg_store_t *st, const char *id, tg_key_t *out, tg_err_t *err);
int tg_pg_key_list(tg_store_t *st, const char *customer_id, tg_key_cb cb, void *arg, tg_err_t *err);
int tg_pg_key_set_revoked(tg_store_t *st, const char *id, int64_t revoked_at, tg_err_t *err);
int tg_pg_key_set_expires(tg_store_t *st, const char *id, int64_t expires_at, tg_err_t *err);
int tg_pg_key_touch(tg_store_t *st, const char *id, int64_t last_used_at, tg_err_t *err);
int tg_pg_usage_record(tg_store_t *st, uint64_t batch_id, const tg_usage_t *rows, size_t n, size_t *inserted,
                       tg_err_t *err);
int tg_pg_usage_record_many(tg_store_t *st, const tg_usage_batch_t *batches, size_t nb, tg_usage_stored_t *out,
                            tg_err_t *err);
int tg_pg_usage_event_ids_prune(tg_store_t *st, int64_t before_s, size_t limit, size_t *deleted, tg_err_t *err);
int tg_pg_usage_event_ids_each(tg_store_t *st, int64_t since_s, tg_usage_event_id_cb cb, void *arg, tg_err_t *err);
int tg_pg_usage_event_id_blocks_last(tg_store_t *st, int64_t *last, tg_err_t *err);
int tg_pg_usage_event_id_blocks_after(tg_store_t *st, int64_t after_id, int64_t since_s, tg_usage_event_id_cb cb,
                                      void *arg, tg_err_t *err);
int tg_pg_usage_fold(tg_store_t *st, int force, tg_err_t *err);
int tg_pg_usage_period(tg_store_t *st, const char *customer_id, int64_t period_start, tg_usage_total_cb cb, void *arg,
                       tg_err_t *err);
int tg_pg_usage_daily(tg_store_t *st, const char *customer_id, int64_t from_s, int64_t to_s, tg_usage_day_cb cb,
                      void *arg, tg_err_t *err);
int tg_pg_usage_endpoints(tg_store_t *st, const char *customer_id, int64_t from_s, int64_t to_s,
                          tg_usage_endpoint_cb cb, void *arg, tg_err_t *err);
int tg_pg_usage_load(tg_store_t *st, int64_t since_s, tg_usage_load_cb cb, void *arg, tg_err_t *err);
int tg_pg_usage_total(tg_store_t *st, const char *metric, uint64_t *units, tg_err_t *err);
int tg_pg_customer_page(tg_store_t *st, const tg_page_t *page, tg_customer_cb cb, void *arg, tg_page_end_t *end,
                        tg_err_t *err);
int tg_pg_customer_search(tg_store_t *st, const tg_customer_query_t *q, const tg_page_t *page, tg_customer_cb cb,
    void *arg, tg_page_end_t *end, tg_err_t *err);
int tg_pg_invoice_search(tg_store_t *st, const tg_invoice_query_t *q, const tg_page_t *page, tg_invoice_cb cb,
    void *arg, tg_page_end_t *end, tg_err_t *err);
int tg_pg_invoice_search_totals(tg_store_t *st, const tg_invoice_query_t *q, tg_invoice_totals_cb cb, void *arg,
    tg_err_t *err);
int tg_pg_key_page(tg_store_t *st, const char *customer_id, const tg_page_t *page, tg_key_cb cb, void *arg,
                   tg_page_end_t *end, tg_err_t *err);
int tg_pg_key_count_active(tg_store_t *st, const char *customer_id, int64_t now, uint64_t *count, tg_err_t *err);
int tg_pg_usage_rejected_list(tg_store_t *st, const tg_page_t *page, tg_usage_rejected_cb cb, void *arg,
                              tg_page_end_t *end, tg_err_t *err);
int tg_pg_usage_rejected_count(tg_store_t *st, uint64_t *count, tg_err_t *err);
int tg_pg_billing_failure_set(tg_store_t *st, const char *customer_id, const char *type, const char *message,
                              int64_t at, tg_err_t *err);
int tg_pg_billing_failure_clear(tg_store_t *st, const char *customer_id, tg_err_t *err);
int tg_pg_billing_failure_count(tg_store_t *st, uint64_t *count, tg_err_t *err);
int tg_pg_billing_failure_list(tg_store_t *st, const tg_page_t *page, tg_billing_failure_cb cb, void *arg,
                               tg_page_end_t *end, tg_err_t *err);
int tg_pg_customer_set_password(tg_store_t *st, const char *id, const char *password_hash, tg_err_t *err);
int tg_pg_customer_by_email(tg_store_t *st, const char *email, tg_customer_t *out, char *password_hash, size_t cap,
                            tg_err_t *err);
int tg_pg_session_insert(tg_store_t *st, const tg_session_t *s, tg_err_t *err);
int tg_pg_session_get(tg_store_t *st, const uint8_t token_hash[32], tg_session_t *out, tg_err_t *err);
int tg_pg_session_delete(tg_store_t *st, const uint8_t token_hash[32], tg_err_t *err);
int tg_pg_session_delete_customer(tg_store_t *st, const char *customer_id, uint64_t *count, tg_err_t *err);
int tg_pg_owner_session_insert(tg_store_t *st, const tg_session_t *s, tg_err_t *err);
int tg_pg_owner_session_get(tg_store_t *st, const uint8_t token_hash[32], tg_session_t *out, tg_err_t *err);
int tg_pg_owner_session_delete(tg_store_t *st, const uint8_t token_hash[32], tg_err_t *err);
int tg_pg_trial_used(tg_store_t *st, const char *email_norm, const char *address, int64_t address_since, int *by_email,
                     int *by_address, tg_err_t *err);
int tg_pg_trial_record(tg_store_t *st, const char *email_norm, const char *address, const char *customer_id, int64_t at,
                       tg_err_t *err);
int tg_pg_plan_change_add(tg_store_t *st, const char *customer_id, const char *from_plan, const char *to_plan,
                          const char *kind, int64_t at, tg_err_t *err);
int tg_pg_plan_change_count(tg_store_t *st, const char *kind, int64_t since, int64_t until, uint64_t *count,
                            tg_err_t *err);
int tg_pg_invoice_item_add(tg_store_t *st, const tg_invoice_item_t *item, tg_err_t *err);
int tg_pg_invoice_create(tg_store_t *st, tg_invoice_t *draft, tg_invoice_build_cb build, void *arg, int *created,
                         tg_invoice_t *out, tg_err_t *err);
int tg_pg_invoice_close_batch(tg_store_t *st, tg_invoice_close_t *e, size_t n, tg_invoice_build_cb build,
                              tg_err_t *err);
int tg_pg_invoice_preview(tg_store_t *st, tg_invoice_t *draft, tg_invoice_build_cb build, void *arg, tg_err_t *err);
int tg_pg_invoice_get(tg_store_t *st, const char *id, tg_invoice_t *out, tg_err_t *err);
int tg_pg_tx_begin(tg_store_t *st, tg_err_t *err);
int tg_pg_tx_commit(tg_store_t *st, tg_err_t *err);
void tg_pg_tx_rollback(tg_store_t *st);
int tg_pg_savepoint(tg_store_t *st, const char *name, tg_err_t *err);
int tg_pg_savepoint_release(tg_store_t *st, const char *name, tg_err_t *err);
void tg_pg_savepoint_rollback(tg_store_t *st, const char *name);
int tg_pg_invoice_list(tg_store_t *st, const char *customer_id, tg_invoice_cb cb, void *arg, tg_err_t *err);
int tg_pg_invoice_totals(tg_store_t *st, int64_t from, int64_t to, tg_invoice_totals_cb cb, void *arg, tg_err_t *err);
int tg_pg_invoice_page(tg_store_t *st, const char *customer_id, const tg_page_t *page, tg_invoice_cb cb, void *arg,
                       tg_page_end_t *end, tg_err_t *err);
int tg_pg_invoice_transition(tg_store_t *st, const char *id, const char *to, int64_t at, tg_err_t *err);
int tg_pg_invoice_draft_refresh(tg_store_t *st, const char *id, tg_invoice_build_cb build, void *arg, int *changed,
                                   tg_err_t *err);
int tg_pg_invoice_hold(tg_store_t *st, const char *id, int held, tg_err_t *err);
int tg_pg_invoice_drafts_due(tg_store_t *st, int64_t created_before, char (*ids)[TG_ID_MAX], size_t limit, size_t *n,
                             tg_err_t *err);
int tg_pg_outbox_insert(tg_store_t *st, const tg_outbox_row_t *row, const char *params, size_t params_len,
                        int64_t now_ms, int64_t *id, tg_err_t *err);
int tg_pg_outbox_due(tg_store_t *st, int64_t now_ms, tg_outbox_row_t *out, size_t limit, size_t *n, tg_err_t *err);
int tg_pg_outbox_next_due(tg_store_t *st, int64_t *at_ms, uint64_t *pending, tg_err_t *err);
int tg_pg_outbox_done(tg_store_t *st, int64_t id, const char *response_id, int map_stripe_customer, int64_t now,
                      tg_err_t *err);
int tg_pg_outbox_retry(tg_store_t *st, int64_t id, int64_t next_attempt_at_ms, const char *last_error, int64_t now,
                       tg_err_t *err);
int tg_pg_outbox_fail(tg_store_t *st, int64_t id, const char *last_error, int64_t now, tg_err_t *err);
int tg_pg_outbox_defer(tg_store_t *st, int64_t id, int64_t next_attempt_at_ms, const char *why, int64_t now,
                       tg_err_t *err);
int tg_pg_outbox_requeue(tg_store_t *st, int64_t id, int64_t now_ms, tg_err_t *err);
int tg_pg_outbox_get(tg_store_t *st, int64_t id, tg_outbox_row_t *out, tg_err_t *err);
int tg_pg_outbox_get_by_key(tg_store_t *st, const char *idempotency_key, tg_outbox_row_t *out, tg_err_t *err);
int tg_pg_outbox_customers_missing(tg_store_t *st, const char *kind, tg_customer_t *out, size_t limit, size_t *n,
                                   tg_err_t *err);
int tg_pg_outbox_prune(tg_store_t *st, int64_t before_s, size_t limit, size_t *deleted, tg_err_t *err);
int tg_pg_outbox_pull_in(tg_store_t *st, int64_t latest_ms, int64_t now_ms, uint64_t *moved, tg_err_t *err);
int tg_pg_stripe_customer_get(tg_store_t *st, const char *customer_id, char *stripe_id, size_t cap, tg_err_t *err);
int tg_pg_stripe_customer_owner(tg_store_t *st, const char *stripe_id, char customer_id[TG_ID_MAX], tg_err_t *err);
int tg_pg_outbox_customer_latest(tg_store_t *st, const char *customer_id, tg_outbox_row_t *out, tg_err_t *err);
int tg_pg_outbox_earlier_pending(tg_store_t *st, const char *customer_id, int64_t id, int64_t *earlier_id,
                                 int64_t *next_ms, tg_err_t *err);
int tg_pg_outbox_customer_latest_of(tg_store_t *st, const char *customer_id, const char *kind, tg_outbox_row_t *out,
                                    tg_err_t *err);
int tg_pg_outbox_page(tg_store_t *st, const char *state, const tg_page_t *page, tg_outbox_row_cb cb, void *arg,
                      tg_page_end_t *end, tg_err_t *err);
int tg_pg_outbox_counts(tg_store_t *st, tg_outbox_counts_t *out, tg_err_t *err);
int tg_pg_stripe_event_insert(tg_store_t *st, const tg_stripe_event_row_t *e, int *inserted, tg_err_t *err);
int tg_pg_stripe_event_next(tg_store_t *st, tg_stripe_event_row_t *out, int *found, tg_err_t *err);
int tg_pg_stripe_event_mark(tg_store_t *st, const char *id, int64_t processed_at, const char *customer_id,
                            const char *outcome, const char *error, tg_err_t *err);
int tg_pg_stripe_event_get(tg_store_t *st, const char *id, tg_stripe_event_row_t *out, tg_err_t *err);
int tg_pg_stripe_event_count(tg_store_t *st, uint64_t *count, tg_err_t *err);
int tg_pg_stripe_invoice_get(tg_store_t *st, const char *invoice_id, tg_stripe_invoice_state_t *out, int *found,
                             tg_err_t *err);
int tg_pg_stripe_invoice_put(tg_store_t *st, const tg_stripe_invoice_state_t *s, tg_err_t *err);
int tg_pg_stripe_debt(tg_store_t *st, const char *customer_id, tg_stripe_debt_t *out, tg_err_t *err);
int tg_pg_dunning_get(tg_store_t *st, const char *customer_id, tg_dunning_row_t *out, int *found, tg_err_t *err);
int tg_pg_dunning_put(tg_store_t *st, const tg_dunning_row_t *d, tg_err_t *err);
int tg_pg_dunning_clear(tg_store_t *st, const char *customer_id, tg_err_t *err);
int tg_pg_dunning_list(tg_store_t *st, tg_dunning_cb cb, void *arg, tg_err_t *err);
int tg_pg_status_history_add(tg_store_t *st, const char *customer_id, const char *from, const char *to,
                             const char *reason, const char *source, int64_t at, tg_err_t *err);
int tg_pg_status_history_list(tg_store_t *st, const char *customer_id, tg_status_change_cb cb, void *arg,
                              tg_err_t *err);
int tg_pg_payment_method_put(tg_store_t *st, const char *customer_id, int64_t on_file_at, const char *session_id,
                             const char *event_id, int *inserted, tg_err_t *err);
int tg_pg_payment_method_get(tg_store_t *st, const char *customer_id, int64_t *on_file_at, tg_err_t *err);
int tg_pg_stripe_subscription_map(tg_store_t *st, const char *customer_id, const char *subscription_id, int64_t now_s,
                                  tg_err_t *err);
int tg_pg_stripe_subscription_get(tg_store_t *st, const char *subscription_id, tg_stripe_subscription_t *out,
                                  int *found, tg_err_t *err);
int tg_pg_stripe_subscription_latest(tg_store_t *st, const char *customer_id, tg_stripe_subscription_t *out, int *found,
                                     tg_err_t *err);
int tg_pg_customers_without_subscription(tg_store_t *st, const char *kind, int64_t after_created, const char *after_id,
                                         char (*ids)[TG_ID_MAX], int64_t *created, size_t limit, size_t *n,
                                         tg_err_t *err);
int tg_pg_stripe_subscription_put(tg_store_t *st, const tg_stripe_subscription_t *s, tg_err_t *err);
int tg_pg_meter_export_set(tg_store_t *st, int on, int64_t since, tg_err_t *err);
int tg_pg_meter_due(tg_store_t *st, int64_t hour_before, const tg_meter_cursor_t *cursor, tg_meter_bucket_t *out,
                    size_t limit, size_t *n, tg_err_t *err);
int tg_pg_meter_mark(tg_store_t *st, const tg_meter_bucket_t *b, uint64_t exported, tg_err_t *err);
int tg_pg_meter_set_seq(tg_store_t *st, const char *customer_id, const char *metric, int64_t ts, int64_t seq,
                        tg_err_t *err);
int tg_pg_meter_period_exported(tg_store_t *st, const char *customer_id, int64_t period_start, const char *plan_id,
                                const char *metric, uint64_t *units, tg_err_t *err);
int tg_pg_meter_prune(tg_store_t *st, int64_t before_s, size_t limit, size_t *deleted, tg_err_t *err);
int tg_pg_meter_customer_backlog(tg_store_t *st, const char *customer_id, uint64_t *hours, uint64_t *units,
                                 tg_err_t *err);
int tg_pg_meter_refused(tg_store_t *st, tg_meter_refused_t *out, size_t limit, size_t *n, tg_err_t *err);
int tg_pg_meter_take_back(tg_store_t *st, int64_t outbox_id, const char *customer_id, const char *metric, int64_t ts,
                          uint64_t units, int64_t now, tg_err_t *err);
int tg_pg_meter_outbox_counts(tg_store_t *st, const char *customer_id, uint64_t *pending, uint64_t *failed,
                              tg_err_t *err);
int tg_pg_changes_listen(tg_store_t *st, tg_err_t *err);
int tg_pg_changes_wait(tg_store_t *st, int timeout_ms, tg_change_cb cb, void *arg, size_t *count, tg_err_t *err);
int tg_pg_leader_try(tg_store_t *st, int *leader, tg_err_t *err);

/* store_notify.h (issue 13, part A) */
int tg_pg_event_insert(tg_store_t *st, const tg_event_row_t *e, const char *dedupe_key, tg_err_t *err);
int tg_pg_event_get(tg_store_t *st, const char *id, tg_event_row_t *out, tg_err_t *err);
int tg_pg_event_page(tg_store_t *st, const char *customer_id, const tg_page_t *page, tg_event_row_cb cb, void *arg, tg_page_end_t *end, tg_err_t *err);
int tg_pg_webhook_endpoint_insert(tg_store_t *st, const tg_webhook_endpoint_t *e, tg_err_t *err);
int tg_pg_webhook_endpoint_get(tg_store_t *st, const char *id, tg_webhook_endpoint_t *out, tg_err_t *err);
int tg_pg_webhook_endpoint_update(tg_store_t *st, const tg_webhook_endpoint_t *e, tg_err_t *err);
int tg_pg_webhook_endpoint_delete(tg_store_t *st, const char *id, tg_err_t *err);
int tg_pg_webhook_endpoint_list(tg_store_t *st, const char *customer_id, tg_webhook_endpoint_cb cb, void *arg, tg_err_t *err);
int tg_pg_webhook_delivery_insert(tg_store_t *st, const tg_webhook_delivery_t *d, tg_err_t *err);
int tg_pg_webhook_delivery_get(tg_store_t *st, const char *id, tg_webhook_delivery_t *out, tg_err_t *err);
int tg_pg_webhook_delivery_claim(tg_store_t *st, int64_t now_ms, int64_t lease_ms, tg_webhook_delivery_t *out, size_t limit, size_t *n, tg_err_t *err);
int tg_pg_webhook_delivery_next_due(tg_store_t *st, int64_t *at_ms, tg_err_t *err);
int tg_pg_webhook_delivery_update(tg_store_t *st, const tg_webhook_delivery_t *d, const tg_webhook_attempt_t *a, tg_err_t *err);
int tg_pg_webhook_delivery_page(tg_store_t *st, const char *endpoint_id, const char *customer_id, const tg_page_t *page, tg_webhook_delivery_cb cb, void *arg, tg_page_end_t *end, tg_err_t *err);
int tg_pg_webhook_attempt_list(tg_store_t *st, const char *delivery_id, size_t limit, tg_webhook_attempt_cb cb, void *arg, tg_err_t *err);
int tg_pg_notification_settings_get(tg_store_t *st, const char *customer_id, char *email_events, size_t cap, tg_err_t *err);
int tg_pg_notification_settings_put(tg_store_t *st, const char *customer_id, const char *email_events, int64_t now, tg_err_t *err);
/* part C (issue 13): store_thresholds.h (store_pg_thresholds.c) */
int tg_pg_mark_insert(tg_store_t *st, const tg_mark_t *m, int *inserted, tg_err_t *err);
int tg_pg_marks_list(tg_store_t *st, const char *customer_id, size_t limit, tg_mark_cb cb, void *arg, tg_err_t *err);
int tg_pg_budget_set(tg_store_t *st, const char *customer_id, int64_t amount, int64_t now_s, tg_err_t *err);
int tg_pg_budget_get(tg_store_t *st, const char *customer_id, int64_t *amount, tg_err_t *err);
int tg_pg_budgets_list(tg_store_t *st, const char *after_id, size_t limit, tg_budget_cb cb, void *arg, tg_err_t *err);
int tg_pg_trials_ending(tg_store_t *st, int64_t after, int64_t until, size_t limit, tg_trial_cb cb, void *arg, tg_err_t *err);

/* store_mail.h (issue 13 part B) */
int tg_pg_mail_insert(tg_store_t *st, const tg_mail_row_t *row, int64_t now_ms, int64_t *id, tg_err_t *err);
int tg_pg_mail_claim(tg_store_t *st, int64_t now_ms, int64_t lease_until_ms, tg_mail_row_t *out, size_t limit, size_t *n, tg_err_t *err);
int tg_pg_mail_next_due(tg_store_t *st, int64_t *at_ms, tg_err_t *err);
int tg_pg_mail_record(tg_store_t *st, int64_t id, const char *outcome, int64_t next_attempt_at_ms, int64_t smtp_code, const char *error, int64_t now_ms, tg_err_t *err);
int tg_pg_mail_requeue(tg_store_t *st, int64_t id, int64_t now_ms, tg_err_t *err);
int tg_pg_mail_get(tg_store_t *st, int64_t id, tg_mail_row_t *out, tg_err_t *err);
int tg_pg_mail_page(tg_store_t *st, const char *state, const tg_page_t *page, tg_mail_row_cb cb, void *arg, tg_page_end_t *end, tg_err_t *err);
int tg_pg_mail_attempts(tg_store_t *st, int64_t mail_id, tg_mail_attempt_t *out, size_t limit, size_t *n, tg_err_t *err);
int tg_pg_email_token_insert(tg_store_t *st, const uint8_t hash[32], const char *customer_id, const char *purpose, int64_t now, int64_t expires_at, tg_err_t *err);
int tg_pg_email_token_use(tg_store_t *st, const uint8_t hash[32], const char *purpose, int64_t now, char customer_id[TG_ID_MAX], tg_err_t *err);
int tg_pg_email_token_revoke(tg_store_t *st, const char *customer_id, const char *purpose, int64_t now, tg_err_t *err);
int tg_pg_customer_confirm_email(tg_store_t *st, const char *customer_id, int64_t at, tg_err_t *err);

/* store_retention.h */
int tg_pg_notify_prune(tg_store_t *st, tg_notify_table_t what, int64_t cutoff_s, size_t limit, size_t *deleted,
                       size_t *attempts, tg_err_t *err);
int tg_pg_notify_pending(tg_store_t *st, tg_notify_table_t what, int64_t *n, tg_err_t *err);
int tg_pg_usage_batches_prune(tg_store_t *st, const char *node, uint64_t below_id, int64_t committed_before_s,
                               size_t limit, size_t *deleted, tg_err_t *err);
int tg_pg_node_drained(tg_store_t *st, const char *node, int64_t drained_at, tg_err_t *err);
int tg_pg_drained_nodes(tg_store_t *st, int64_t before_s, tg_drained_node_t *out, size_t max, size_t *n, tg_err_t *err);
int tg_pg_drained_node_forget(tg_store_t *st, const char *node, int64_t drained_at, tg_err_t *err);
/* store_pg_audit.c (issue 14) */
int tg_pg_audit_append(tg_store_t *st, const tg_audit_row_t *r, int64_t *id, tg_err_t *err);
int tg_pg_audit_page(tg_store_t *st, const tg_audit_filter_t *f, const tg_page_t *page, tg_audit_row_cb cb, void *arg,
                     tg_page_end_t *end, tg_err_t *err);

/* store_pg_lists.c: hands the rows of res (fetched with LIMIT limit + 1) to row, which writes each
 * row's sort key; a row past limit only sets end->has_more, with the key of the page's last row.
 * A non-zero return of row stops the page. Clears res. */
typedef int (*tg_pg_page_row_fn)(const PGresult *res, int i, void *ctx, char key[TG_PAGE_KEY_MAX]);
void tg_pg_run_page(PGresult *res, size_t limit, tg_pg_page_row_fn row, void *ctx, tg_page_end_t *end);

/* store_pg_ingest.c (issue 16) */
#include "store/store_ingest.h"
int tg_pg_ingest_token_insert(tg_store_t *st, const tg_ingest_token_row_t *t, tg_err_t *err);
int tg_pg_ingest_token_get(tg_store_t *st, const char *id, tg_ingest_token_row_t *out, tg_err_t *err);
int tg_pg_ingest_token_set_revoked(tg_store_t *st, const char *id, int64_t revoked_at, tg_err_t *err);
int tg_pg_ingest_token_page(tg_store_t *st, const tg_page_t *page, tg_ingest_token_cb cb, void *arg, tg_page_end_t *end, tg_err_t *err);
int tg_pg_ingest_token_list_active(tg_store_t *st, tg_ingest_token_cb cb, void *arg, tg_err_t *err);
int tg_pg_event_key_blake2b_until(tg_store_t *st, int64_t *until_s, tg_err_t *err);

#endif
