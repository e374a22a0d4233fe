/* store.h - durable state behind one interface: customers, API keys, usage, invoices.
 *
 * Every call here goes through the backend chosen by tg_store_open's URL scheme: the embedded
 * SQLite backend (store_sqlite*.c, "sqlite:PATH", the single-node default) or PostgreSQL
 * (store_pg*.c, "postgresql://..." or "postgres://...", for any number of gateways). Each
 * backend fills one operations table (store_ops.h); the functions below dispatch to it, so
 * callers never know which backend they talk to. The records themselves are in
 * model/records.h. A tg_store_t is one connection: use it from one thread at a time and open
 * one per thread that needs it (the metering writer, the admin thread). Every call blocks on
 * I/O, so none may run on a gateway event loop. */
#ifndef TG_STORE_H
#define TG_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "model/records.h"
#include "util/err.h"

typedef struct tg_store tg_store_t;

/* Opens "sqlite:PATH" (the directory is created if missing) or a PostgreSQL URL
 * ("postgresql://user:password@host:port/db?...", any libpq connection URI). TG_EINVAL names
 * the URL's problem (no scheme, an unknown one, an empty path). */
int tg_store_open(const char *url, tg_store_t **out, tg_err_t *err);
void tg_store_close(tg_store_t *st);
/* The backend behind st: "sqlite" or "postgresql". */
const char *tg_store_backend(const tg_store_t *st);

/* Applies every numbered migration not yet applied, each in its own transaction. */
int tg_store_migrate(tg_store_t *st, tg_err_t *err);
/* Highest migration applied (0 for an empty database). */
int tg_store_schema_version(tg_store_t *st, int *version, tg_err_t *err);

/* A consistent copy of the whole database into a new file at dest_path while other processes
 * keep writing (SQLite's online backup: one read transaction, so the copy is one moment of the
 * database), checked with integrity_check. tg_store_restore_from replaces the whole content of
 * st's database with the copy at src_path in one step (readers see the old or the new one);
 * close st after it and open the database again (tg_store_migrate brings an older copy up to
 * date).
 * PostgreSQL: TG_ESTATE (pg_dump, or base backups with WAL archiving: docs/operations.md). */
int tg_store_backup_to(tg_store_t *st, const char *dest_path, tg_err_t *err);
int tg_store_restore_from(tg_store_t *st, const char *src_path, tg_err_t *err);

/* Customers. insert: TG_EEXIST if id or email (case-insensitive) exists. get/update:
 * TG_ENOTFOUND if absent. */
int tg_store_customer_insert(tg_store_t *st, const tg_customer_t *c, tg_err_t *err);
int tg_store_customer_get(tg_store_t *st, const char *id, tg_customer_t *out, tg_err_t *err);
int tg_store_customer_update(tg_store_t *st, const tg_customer_t *c, tg_err_t *err);
typedef int (*tg_customer_cb)(const tg_customer_t *c, void *arg); /* non-zero stops */
int tg_store_customer_list(tg_store_t *st, tg_customer_cb cb, void *arg, tg_err_t *err);

/* API keys. */
int tg_store_key_insert(tg_store_t *st, const tg_key_t *k, tg_err_t *err);
int tg_store_key_get(tg_store_t *st, const char *id, tg_key_t *out, tg_err_t *err);
/* customer_id NULL lists every key (used to warm the in-memory key table). */
typedef int (*tg_key_cb)(const tg_key_t *k, void *arg);
int tg_store_key_list(tg_store_t *st, const char *customer_id, tg_key_cb cb, void *arg, tg_err_t *err);
int tg_store_key_set_revoked(tg_store_t *st, const char *id, int64_t revoked_at, tg_err_t *err);
int tg_store_key_set_expires(tg_store_t *st, const char *id, int64_t expires_at, tg_err_t *err);
int tg_store_key_touch(tg_store_t *st, const char *id, int64_t last_used_at, tg_err_t *err);

/* Usage. Adds n rows as one batch, in one transaction (one fsync), to the per-period totals
 * (customer, period, plan, metric) and the per-day totals (customer, day, metric, endpoint).
 * Exactly once: the batch id is stored in the same transaction, and a batch id already stored
 * is skipped whole, so a batch retried after an uncertain commit is never counted twice; a
 * failed transaction leaves nothing behind. The meter gives each transaction a fresh
 * tg_meter_next_event_id() and keeps it across retries. Totals, and the sums inside a batch,
 * saturate at INT64_MAX. A row the totals cannot take (units past INT64_MAX, a text field
 * without its terminator) does not refuse the batch: it is kept aside in the rejected usage
 * (tg_store_usage_rejected_list) in the same transaction and the other rows are stored.
 * TG_ERANGE (nothing stored) only for a batch id past INT64_MAX.
 * The batch lands in a journal that is folded into the totals later, in bulk; every function
 * here that reads the totals folds first, so readers always see every committed batch.
 * *inserted (may be NULL) receives how many rows were applied (0 for a repeated batch). */
int tg_store_usage_record(tg_store_t *st, uint64_t batch_id, const tg_usage_t *rows, size_t n, size_t *inserted,
                          tg_err_t *err);

/* Several batches in one transaction: each id is stored, and the rows of all of them are
 * summed together. Either all of the ids are new (everything is applied) or all were stored
 * before (nothing is); a mix is TG_EEXIST with nothing stored, and the caller applies the
 * batches one at a time. *out (may be NULL) says what happened to the rows. */
typedef struct tg_usage_batch {
    uint64_t id;
    const tg_usage_t *rows;
    size_t n;
    const char *node; /* the gateway that logged it (NULL or "": one node). A batch id is unique
                       * per node: the store keeps (node, id), so that nodes never stand for
                       * each other. */
} tg_usage_batch_t;
typedef struct tg_usage_stored {
    size_t inserted;   /* rows added to the totals (0 for batches stored before) */
    size_t rejected;   /* rows kept aside in the rejected usage */
    size_t duplicates; /* event rows whose (customer, event_id) was applied before: not added */
    char reason[160];  /* why the first of them was refused */
} tg_usage_stored_t;
/* Event rows (tg_usage_is_event: POST /v1/events): each one's id is kept in the applied event
 * ids (usage_event_ids, with the event's time, seconds), in the batch's transaction.
 * PostgreSQL (any number of nodes): they count once per (customer_id, event_id) across all
 * batches of all nodes: a row whose id was there already - applied from another node's batch,
 * an earlier batch, or earlier in this one - adds nothing to any total (period, day, hour) and
 * is counted in duplicates, not inserted. The first batch to commit wins; a concurrent one
 * waits for it, then skips the row. The id is 63 bits of a keyed hash (model/records.h): two
 * different events of one customer share it with probability n(n-1)/2^64 over the n events of
 * that customer in the window (10^6: 5e-8; 10^8: 5e-4), and then the later one is not counted.
 * SQLite (one node): the ids are appended, not looked up (a lookup by a hashed key cost a
 * random B-tree page per event: 15-20 us an event), all of one call's event rows as ONE row of
 * usage_event_id_blocks (event_id_block.h: one INSERT per call, where one per event cost ~2.5 us
 * of the applier per event); every row adds to the totals, duplicates is 0. The node's own dedup index (metering/event_index.h) is what
 * counts each event once there; the ids are what it is rebuilt from when its file is lost
 * (tg_store_usage_event_ids_each). Calls' rows are never looked up. */
int tg_store_usage_record_many(tg_store_t *st, const tg_usage_batch_t *batches, size_t nb, tg_usage_stored_t *out,
                               tg_err_t *err);

/* Deletes up to limit (1 to 10000) applied event ids (see above) whose event time is before
 * before_s, in short transactions; *deleted gets how many (fewer than limit: none are left).
 * SQLite: limit counts rows, and a block (one stored call's ids) is a row that goes whole once
 * its newest id is before before_s, its ids all counted in *deleted: a block lives until its
 * newest id expires, so an id can stay longer by the spread of its batch's event times (at most
 * the dedup window, which the ingest enforces). Ids stored before blocks (one row each) go first.
 * The retention job calls it with now - events.dedup_window - a day of margin (notify/
 * retention.h): an older event is refused at ingest, so its id can no longer be needed. */
int tg_store_usage_event_ids_prune(tg_store_t *st, int64_t before_s, size_t limit, size_t *deleted, tg_err_t *err);

/* Calls cb with each applied event id (bit 63 clear) whose event time is at or after since_s,
 * and that time, in no particular order; a nonzero return from cb stops and is returned. The
 * dedup index reads them when its file was lost (metering/events.h). SQLite: a malformed block
 * is TG_ESTORE naming its row id (usage_event_id_blocks row N), before any of its ids is passed
 * to cb; ids of blocks read before it have been passed. */
typedef int (*tg_usage_event_id_cb)(void *arg, uint64_t event_id, int64_t ts_s);
int tg_store_usage_event_ids_each(tg_store_t *st, int64_t since_s, tg_usage_event_id_cb cb, void *arg, tg_err_t *err);

/* SQLite's event id blocks in the order stored, for the dedup index's checkpoint (metering/
 * events.h): a block's id (usage_event_id_blocks.id) is greater than every id handed out before
 * it, and never handed out again, even after the prune deleted its block (migration 37).
 * blocks_last: *last gets the greatest id handed out to a committed block (0: none yet).
 * blocks_after: like tg_store_usage_event_ids_each, but only the ids of the blocks whose id is
 * greater than after_id, block by block in id order (a malformed block: TG_ESTORE naming it).
 * PostgreSQL keeps no blocks (its nodes sync their index at each log reset): both are TG_ESTATE
 * there, saying so. */
int tg_store_usage_event_id_blocks_last(tg_store_t *st, int64_t *last, tg_err_t *err);
int tg_store_usage_event_id_blocks_after(tg_store_t *st, int64_t after_id, int64_t since_s, tg_usage_event_id_cb cb,
                                         void *arg, tg_err_t *err);

/* Folds the usage journal into the totals: always if force, else once enough batches have been
 * journaled by this connection (the metering writer calls it after each commit). */
int tg_store_usage_fold(tg_store_t *st, int force, tg_err_t *err);

/* Totals for one customer's period, by metric. */
typedef int (*tg_usage_total_cb)(const char *metric, uint64_t units, void *arg);
int tg_store_usage_period(tg_store_t *st, const char *customer_id, int64_t period_start, tg_usage_total_cb cb,
                          void *arg, tg_err_t *err);

/* Daily totals for one customer, days in [from_s, to_s) (UTC days as "YYYY-MM-DD"). */
typedef int (*tg_usage_day_cb)(const char *day, const char *metric, uint64_t units, void *arg);
int tg_store_usage_daily(tg_store_t *st, const char *customer_id, int64_t from_s, int64_t to_s, tg_usage_day_cb cb,
                         void *arg, tg_err_t *err);

/* Totals for one customer by endpoint (the route or path metered), days in [from_s, to_s). */
typedef int (*tg_usage_endpoint_cb)(const char *endpoint, const char *metric, uint64_t units, void *arg);
int tg_store_usage_endpoints(tg_store_t *st, const char *customer_id, int64_t from_s, int64_t to_s,
                             tg_usage_endpoint_cb cb, void *arg, tg_err_t *err);

/* Every customer's totals for periods starting at or after since_s (warms quota counters). */
typedef int (*tg_usage_load_cb)(const char *customer_id, int64_t period_start, const char *metric, uint64_t units,
                                void *arg);
int tg_store_usage_load(tg_store_t *st, int64_t since_s, tg_usage_load_cb cb, void *arg, tg_err_t *err);

/* Units of `metric` stored over all customers and periods (for tests and benchmarks). */
int tg_store_usage_total(tg_store_t *st, const char *metric, uint64_t *units, tg_err_t *err);

/* ---- lists, one page at a time ----
 * Keyset pagination: a list returns up to page->limit items after the item whose sort key is
 * page->after ("" = from the start), in an order that does not change as items are added, so
 * following the pages visits every item that existed when the walk began exactly once. A sort
 * key is the list's own text (for example "1764547200/cus_abc"); one that does not parse is
 * TG_EINVAL. end->has_more says whether more items follow, end->next is the key to pass next. */
#define TG_PAGE_MAX 1000
#define TG_PAGE_KEY_MAX 600 /* room for an email or a name and an id (customer search) */
typedef struct tg_page {
    size_t limit;                /* 1..TG_PAGE_MAX */
    char after[TG_PAGE_KEY_MAX]; /* "" for the first page */
} tg_page_t;
typedef struct tg_page_end {
    int has_more;
    char next[TG_PAGE_KEY_MAX];
} tg_page_end_t;

/* Customers (newest first) and a customer's keys (newest first), a page at a time; invoices:
 * tg_store_invoice_page below. */
int tg_store_customer_page(tg_store_t *st, const tg_page_t *page, tg_customer_cb cb, void *arg, tg_page_end_t *end,
                           tg_err_t *err);
int tg_store_key_page(tg_store_t *st, const char *customer_id, const tg_page_t *page, tg_key_cb cb, void *arg,
                      tg_page_end_t *end, tg_err_t *err);
/* The owner's customer list (GET /v1/admin/customers with parameters): search, filters and an
 * order of the owner's choice, a page at a time.
 * - search: a case-insensitive substring of the email, the name or the id; LIKE's wildcards
 *   in it (%, _ and the backslash) match themselves. Substring, not prefix: owners look a
 *   customer up by a part of the address ("acme" in ops@acme.io) or of the company's name. It
 *   cannot use a B-tree index: the query walks the order's index and stops at limit + 1
 *   matches, so a common term costs a page, a rare one a scan of the table.
 * - plan_id, status: equality; status as the API shows it (tg_adm_display_status): "active"
 *   includes a "trialing" customer whose trial ended by `now`, "trialing" only those in trial.
 * - sort: created_at (sort key "<created_at>/<id>", the list's historical order when
 *   descending), or email or name, case-insensitive (":<id>/<text>"); ties by id
 *   ascending. Migration 30 indexes the two text orders.
 * TG_EINVAL for a key of another order or a search longer than TG_CUSTOMER_SEARCH_MAX - 1. */
#define TG_CUSTOMER_SEARCH_MAX 128
typedef enum tg_customer_sort {
    TG_CUSTOMER_SORT_CREATED = 0,
    TG_CUSTOMER_SORT_EMAIL = 1,
    TG_CUSTOMER_SORT_NAME = 2
} tg_customer_sort_t;
typedef struct tg_customer_query {
    const char *search;  /* NULL or "": every customer */
    const char *plan_id; /* NULL or "": any plan */
    const char *status;  /* NULL or "": any status */
    int64_t now;         /* seconds, for status */
    tg_customer_sort_t sort;
    int ascending;
} tg_customer_query_t;
int tg_store_customer_search(tg_store_t *st, const tg_customer_query_t *q, const tg_page_t *page, tg_customer_cb cb,
                             void *arg, tg_page_end_t *end, tg_err_t *err);
/* Keys of a customer that work at `now` (not revoked, not expired), for the key cap. */
int tg_store_key_count_active(tg_store_t *st, const char *customer_id, int64_t now, uint64_t *count, tg_err_t *err);

/* Usage rows kept aside (see tg_store_usage_record), oldest first. units is the value as it
 * came, which may not fit 63 bits. */
typedef struct tg_usage_rejected {
    int64_t id;
    uint64_t batch_id;
    tg_usage_t row;
    char reason[160];
    int64_t rejected_at; /* seconds */
} tg_usage_rejected_t;
typedef int (*tg_usage_rejected_cb)(const tg_usage_rejected_t *r, void *arg);
int tg_store_usage_rejected_list(tg_store_t *st, const tg_page_t *page, tg_usage_rejected_cb cb, void *arg,
                                 tg_page_end_t *end, tg_err_t *err);
/* How many rows are kept aside in all (for the dashboard and tests). */
int tg_store_usage_rejected_count(tg_store_t *st, uint64_t *count, tg_err_t *err);

/* Billing failures: the customers whose invoice the last run could not make, and why (a type
 * such as "money_out_of_range" and a sentence). set records one (first_at stays, runs counts
 * the runs it failed in); clear removes it once a run invoices the customer. Listed by
 * customer id. */
#define TG_FAILURE_TYPE_MAX 40
#define TG_FAILURE_MSG_MAX 512
typedef struct tg_billing_failure {
    char customer_id[TG_ID_MAX];
    char type[TG_FAILURE_TYPE_MAX];
    char message[TG_FAILURE_MSG_MAX];
    int64_t first_at, last_at; /* seconds */
    int64_t runs;
} tg_billing_failure_t;
int tg_store_billing_failure_set(tg_store_t *st, const char *customer_id, const char *type, const char *message,
                                 int64_t at, tg_err_t *err);
int tg_store_billing_failure_clear(tg_store_t *st, const char *customer_id, tg_err_t *err);
int tg_store_billing_failure_count(tg_store_t *st, uint64_t *count, tg_err_t *err);
typedef int (*tg_billing_failure_cb)(const tg_billing_failure_t *f, void *arg);
int tg_store_billing_failure_list(tg_store_t *st, const tg_page_t *page, tg_billing_failure_cb cb, void *arg,
                                  tg_page_end_t *end, tg_err_t *err);

/* The period closer's schedule (billing/periods.c, migrations 21 and 31). Each customer keeps the
 * end of its first billing period not yet closed, next_period_end (seconds; 0 = not known yet: a
 * new customer, or one whose anchor, plan, status, scheduled change or cancellation changed,
 * which resets it so that the closer looks again). It lives in a narrow table of its own,
 * customer_schedule (one row per customer, made with the customer by tg_store_customer_insert),
 * so that moving it does not rewrite the customer's row and its many indexes.
 *
 * customers_due hands cb (non-zero stops) the customers whose next_period_end <= until, in
 * (next_period_end, id) order, strictly after the position (after_end, after_id) (after_id ""
 * = from the start of after_end), at most limit of them; a page is a range scan of an index,
 * so a run over a million customers reads only the ones due, a page at a time, in bounded
 * memory. *n (may be NULL) gets how many were handed over. cb must not call the store on this
 * connection (the page may still be being read): copy what it needs.
 *
 * customer_set_next_period_end moves it for one customer, only while it still holds expected
 * (compare and set: a concurrent tg_store_customer_update that reset it to 0 wins). Setting a
 * customer that does not exist, or that moved meanwhile, changes nothing and is not an error.
 * Both run on the caller's thread, inside its transaction if one is open. */
typedef int (*tg_customer_due_cb)(const tg_customer_t *c, int64_t next_period_end, void *arg);
int tg_store_customers_due(tg_store_t *st, int64_t until, int64_t after_end, const char *after_id, size_t limit,
                           tg_customer_due_cb cb, void *arg, size_t *n, tg_err_t *err);
int tg_store_customer_set_next_period_end(tg_store_t *st, const char *id, int64_t expected, int64_t next_end,
                                          tg_err_t *err);

/* Portal logins. The password hash is an encoded Argon2id string; it is kept out of
 * tg_customer_t so that it travels no further than the login code. */
int tg_store_customer_set_password(tg_store_t *st, const char *id, const char *password_hash, tg_err_t *err);
/* Customer by email (case-insensitive) and its password hash (cap bytes). TG_ENOTFOUND if none. */
int tg_store_customer_by_email(tg_store_t *st, const char *email, tg_customer_t *out, char *password_hash, size_t cap,
                               tg_err_t *err);

int tg_store_session_insert(tg_store_t *st, const tg_session_t *s, tg_err_t *err);
/* TG_ENOTFOUND if there is no such session. Expiry is the caller's check. */
int tg_store_session_get(tg_store_t *st, const uint8_t token_hash[32], tg_session_t *out, tg_err_t *err);
int tg_store_session_delete(tg_store_t *st, const uint8_t token_hash[32], tg_err_t *err);
/* Ends every session of a customer ("sign out everywhere"); *count gets how many (may be NULL). */
int tg_store_session_delete_customer(tg_store_t *st, const char *customer_id, uint64_t *count, tg_err_t *err);

/* The owner's dashboard sessions, kept in the database so that every gateway sharing it honours
 * a sign-in (and a sign-out) made on any of them. Only the token's hash is stored; customer_id is
 * unused. Inserting also removes the sessions expired by s->created_at. TG_ENOTFOUND from get
 * when there is no such session; expiry is the caller's check. */
int tg_store_owner_session_insert(tg_store_t *st, const tg_session_t *s, tg_err_t *err);
int tg_store_owner_session_get(tg_store_t *st, const uint8_t token_hash[32], tg_session_t *out, tg_err_t *err);
int tg_store_owner_session_delete(tg_store_t *st, const uint8_t token_hash[32], tg_err_t *err);

/* Trials granted by self-service sign-up: one per normalised email (ever) and per client address
 * (within a window). trial_used: *by_email / *by_address set to 1 when a trial was recorded for
 * email_norm (at any time) / for address at or after address_since. */
int tg_store_trial_used(tg_store_t *st, const char *email_norm, const char *address, int64_t address_since,
                        int *by_email, int *by_address, tg_err_t *err);
int tg_store_trial_record(tg_store_t *st, const char *email_norm, const char *address, const char *customer_id,
                          int64_t at, tg_err_t *err);

/* Plan change history (upgrades and downgrades, for the dashboard). kind: "upgrade" | "downgrade". */
int tg_store_plan_change_add(tg_store_t *st, const char *customer_id, const char *from_plan, const char *to_plan,
                             const char *kind, int64_t at, tg_err_t *err);
int tg_store_plan_change_count(tg_store_t *st, const char *kind, int64_t since, int64_t until, uint64_t *count,
                               tg_err_t *err);

int tg_store_invoice_item_add(tg_store_t *st, const tg_invoice_item_t *item, tg_err_t *err);

/* Builds an invoice from the unbilled usage and the pending items (billing code): fills
 * inv->total, inv->currency and inv->body (malloc'd). Returns 0 or an error. The usage comes
 * one row per (period_start, plan_id, metric) with units not yet invoiced, in that order (byte
 * order for the ids), both backends alike: the invoice's own period apart from earlier ones
 * (late usage), each with the units of it invoiced already and, for late rows with none
 * invoiced, whether their period's invoice billed their plan's minimum all the same (quoted: that
 * invoice has a line of kind "minimum" of the plan, billing/invoice.h). */
typedef int (*tg_invoice_build_cb)(const tg_unbilled_t *rows, size_t n, const tg_invoice_item_t *items, size_t nitems,
                                   tg_invoice_t *inv, void *arg, tg_err_t *err);

/* In one transaction: if the customer has no invoice for period_start, gathers the usage of
 * periods up to period_start not yet invoiced and the items created before period_end, calls
 * build, stores the draft invoice and marks that usage and those items invoiced. *created is 1 if an invoice was made,
 * 0 if one existed (idempotent); *out (may be NULL) receives the (new or existing) invoice. */
int tg_store_invoice_create(tg_store_t *st, tg_invoice_t *draft, tg_invoice_build_cb build, void *arg, int *created,
                            tg_invoice_t *out, tg_err_t *err);

/* The period closer's batch (billing/periods.c): for each entry e[i], what
 * tg_store_invoice_create does for its draft (with build and e[i].build_arg), and then, for an
 * entry whose invoice was made or existed already, what the closer does for a customer done
 * for now: moves its next period end from next_expected to next_end (compare and set, as
 * tg_store_customer_set_next_period_end; nothing when they are equal) and clears its billing
 * failure. The caller sets each draft's id, customer_id, period_start, period_end and
 * created_at; the customers are distinct. An entry that fails alone (build's error: money out of
 * range, an unknown plan) gets e[i].rc and e[i].err, and leaves nothing behind (its usage and
 * items stay unbilled, its schedule where it was); the others are unaffected. The whole batch
 * is one savepoint (a transaction of its own outside one): the backend may read all the
 * entries' usage and write all their invoices with a few statements, so that a batch costs a
 * few round trips, not several per customer. Returns 0 when every entry has its outcome
 * (e[i].rc, e[i].created; e[i].draft.body is malloc'd for the caller to free), or an error of
 * the store, after which nothing of the batch is kept (the caller rolls its transaction back).
 * On the caller's thread. */
typedef struct tg_invoice_close {
    tg_invoice_t draft;
    void *build_arg;
    int64_t next_expected, next_end;
    int rc;      /* out: 0 or this entry's error (err) */
    int created; /* out: 1 made, 0 existed */
    tg_err_t err;
} tg_invoice_close_t;
int tg_store_invoice_close_batch(tg_store_t *st, tg_invoice_close_t *e, size_t n, tg_invoice_build_cb build,
                                 tg_err_t *err);

/* The unbilled usage up to period_start and the pending items, without changing anything
 * (previews): build is called as tg_store_invoice_create would, nothing is stored. */
int tg_store_invoice_preview(tg_store_t *st, tg_invoice_t *draft, tg_invoice_build_cb build, void *arg, tg_err_t *err);

int tg_store_invoice_get(tg_store_t *st, const char *id, tg_invoice_t *out, tg_err_t *err);

/* An explicit write transaction around many calls (period closing for thousands of customers
 * commits once per batch instead of once per invoice). Calls made inside nest as savepoints. */
int tg_store_tx_begin(tg_store_t *st, tg_err_t *err);
int tg_store_tx_commit(tg_store_t *st, tg_err_t *err);
void tg_store_tx_rollback(tg_store_t *st);
/* Between two of its transactions, a connection that writes in a loop (the period closer) lets
 * the other connections of this process that wait for the database's write lock go first.
 * SQLite has one write lock and no queue for it: a waiter polls, and a loop that commits and
 * begins again at once took the lock back before a poll saw it free (admin writes waited 3-4 s
 * through a 100,000-customer close). Returns at once when nobody waits, after at most 250 ms
 * otherwise; nothing on PostgreSQL, whose locks are per row and queued. */
void tg_store_let_writers_in(tg_store_t *st);
/* How many other connections of this process wait for the write lock now (SQLite; 0 on
 * PostgreSQL). */
int tg_store_writers_waiting(tg_store_t *st);
/* A savepoint `name` (a constant SQL identifier): inside a transaction, a part of it that can be
 * undone alone (tg_store_savepoint_rollback) without undoing the rest; outside one, a
 * transaction of its own that tg_store_savepoint_release commits. */
int tg_store_savepoint(tg_store_t *st, const char *name, tg_err_t *err);
int tg_store_savepoint_release(tg_store_t *st, const char *name, tg_err_t *err);
void tg_store_savepoint_rollback(tg_store_t *st, const char *name);
typedef int (*tg_invoice_cb)(const tg_invoice_t *inv, void *arg);
/* customer_id NULL lists all, newest period first. */
int tg_store_invoice_list(tg_store_t *st, const char *customer_id, tg_invoice_cb cb, void *arg, tg_err_t *err);
/* Totals of the finalized invoices (finalized_at in [from, to)), one call per (currency, status)
 * in that order: status is open, paid, uncollectible or void, total the sum of their totals
 * (nano-units), count how many. SQLite's SUM of integers is exact and refuses to overflow (the
 * call fails then). cb returns non-zero to stop. For the owner's revenue figures. */
typedef int (*tg_invoice_totals_cb)(const char *currency, const char *status, int64_t total, uint64_t count, void *arg);
int tg_store_invoice_totals(tg_store_t *st, int64_t from, int64_t to, tg_invoice_totals_cb cb, void *arg,
                            tg_err_t *err);
/* Invoices of one customer, or all (customer_id NULL), newest period first, a page at a time. */
int tg_store_invoice_page(tg_store_t *st, const char *customer_id, const tg_page_t *page, tg_invoice_cb cb, void *arg,
                          tg_page_end_t *end, tg_err_t *err);

/* The owner's invoice list with filters (GET /v1/admin/invoices, issue 15): the invoices of
 * tg_store_invoice_page (the same order and sort keys) that match every filter set: customer,
 * status and currency by equality, period_start in [period_from, period_to) (0: unbounded).
 * search_totals hands cb (non-zero stops) one call per (currency, status) of every matching
 * invoice, ordered by currency then status: how many and the sum of their totals (nano-units).
 * Currencies are never added together. A sum past int64 is TG_ERANGE (SQLite: TG_ESTORE). */
typedef struct tg_invoice_query {
    const char *customer_id; /* NULL or "": any */
    const char *status;      /* NULL or "": any */
    const char *currency;    /* NULL or "": any; lowercase */
    int64_t period_from, period_to;
} tg_invoice_query_t;
int tg_store_invoice_search(tg_store_t *st, const tg_invoice_query_t *q, const tg_page_t *page, tg_invoice_cb cb,
                            void *arg, tg_page_end_t *end, tg_err_t *err);
int tg_store_invoice_search_totals(tg_store_t *st, const tg_invoice_query_t *q, tg_invoice_totals_cb cb, void *arg,
                                   tg_err_t *err);

/* State changes. finalize: draft -> open with the next number of the year of `at`
 * ("TG-2026-000042"), gapless. void: draft|open -> void. paid / uncollectible: open -> that.
 * TG_ESTATE for any other transition. */
int tg_store_invoice_transition(tg_store_t *st, const char *id, const char *to, int64_t at, tg_err_t *err);

/* Late usage while an invoice is a draft (issue 16): usage of the draft's own period stored after
 * it was drafted belongs on it, at its own tiers, not on the next invoice. Called before the
 * draft is finalized, in the finalizing transaction. In one savepoint (a transaction of its own
 * outside one): when invoice id is a draft and some (plan, metric) of its customer's usage for
 * its period_start has units not yet invoiced, calls build with every row of that period (units:
 * all of the period's units; invoiced: the units marked before), no items, and inv = the stored
 * invoice; build replaces inv->body (freeing the old one) and inv->total. The store then writes
 * them to the draft and marks that period's usage invoiced, so that it is not billed again as
 * late usage. *changed is 1 then; 0 (nothing written) when the invoice is not a draft or nothing
 * arrived since. TG_ENOTFOUND, build's error (nothing changes), TG_ESTORE. */
int tg_store_invoice_draft_refresh(tg_store_t *st, const char *id, tg_invoice_build_cb build, void *arg, int *changed,
                                   tg_err_t *err);

/* Holds (held 1) or releases (0) a draft: a held draft is not finalized by billing.finalize_after.
 * TG_ENOTFOUND, TG_ESTATE if the invoice is not a draft. */
int tg_store_invoice_hold(tg_store_t *st, const char *id, int held, tg_err_t *err);

/* Up to limit drafts, not held, created at or before created_before, oldest first, into ids;
 * *n gets how many. */
int tg_store_invoice_drafts_due(tg_store_t *st, int64_t created_before, char (*ids)[TG_ID_MAX], size_t limit, size_t *n,
                                tg_err_t *err);

#endif
