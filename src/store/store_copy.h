/* store_copy.h - copying one node's SQLite database into an empty PostgreSQL database
 * (`tollgate migrate --from sqlite:PATH --to postgresql://...`).
 *
 * A storage-layer tool that knows both backends: it reads SQLite with the sqlite3 API and writes
 * PostgreSQL with libpq, table by table and column by column, so that every table the migrations
 * create (schema_migrations apart) arrives whole: customers, keys, usage totals and the batch ids
 * that make the metering log's replay exactly-once, invoices and their numbering counters, the
 * Stripe outbox and mirrors, sessions, trials. Nothing is converted: ids stay as they are (the
 * identity sequences are then moved past them), blobs become bytea. */
#ifndef TG_STORE_COPY_H
#define TG_STORE_COPY_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define TG_COPY_TABLES_MAX 64
#define TG_COPY_TOTALS_MAX 64

typedef struct tg_store_copy_table {
    char name[64];
    uint64_t rows;
} tg_store_copy_table_t;

/* A verified total: the same exact sum on both sides ("usage_period.units", "invoices.total usd"). */
typedef struct tg_store_copy_total {
    char what[96];
    char value[64]; /* decimal, exact (a sum of 64-bit values can pass 2^63) */
} tg_store_copy_total_t;

typedef struct tg_store_copy_report {
    int schema_version;
    char target[128]; /* "127.0.0.1:5432/tollgate": where the copy went, without the password */
    size_t ntables;   /* by name */
    tg_store_copy_table_t tables[TG_COPY_TABLES_MAX];
    size_t ntotals;
    tg_store_copy_total_t totals[TG_COPY_TOTALS_MAX];
} tg_store_copy_report_t;

/* Copies the database at from_url ("sqlite:PATH", an existing file) into the one at to_url
 * ("postgresql://..." or "postgres://...").
 *
 * - The source is read in one read transaction: a consistent snapshot even if a gateway still
 *   writes to it (it should be stopped: what it writes after the snapshot is not copied). Usage
 *   batches journaled but not yet added to the totals are folded first, as any reader of the
 *   totals does (the only write to the source); if a running gateway journals more before the
 *   snapshot, the copy is refused (TG_ESTATE) rather than copying totals without them.
 * - The source must be at this build's schema version (else TG_ESTATE: `tollgate migrate -c`
 *   first). The target is migrated (tg_store_migrate) and must then be at the same version.
 * - Tables and columns must match by name on both sides (a table or column missing on one side
 *   is TG_ESTATE naming it), but for PostgreSQL's explicit "rowid" identity columns, which take
 *   SQLite's implicit rowid.
 * - The target must hold no row in any table but schema_migrations: else TG_ESTATE naming a
 *   table that has rows, and nothing is written. Its tables are locked for the copy (EXCLUSIVE
 *   mode: a gateway on the target waits), in one transaction.
 * - After the copy and before COMMIT, every table's row count and, per column, the number of
 *   non-NULL values and the exact sum (integers) or total byte length (text, bytea) are compared
 *   on both sides, and a digest of every row's values (SHA-256 per row, summed); any difference
 *   rolls everything back (TG_ESTORE naming the table, and the column and both values).
 * report (caller-owned, may not be NULL) gets the tables with their row counts and the business
 * totals (usage units, invoice totals and invoice items per currency), filled on success only.
 * Returns 0, TG_EINVAL (bad URL), TG_ENOTFOUND (no source file), TG_ESTATE, TG_ESTORE,
 * TG_EUNAVAIL (PostgreSQL unreachable) or TG_ENOMEM, with a message in err. Blocking: run it from
 * the CLI, never on an event loop. */
int tg_store_copy(const char *from_url, const char *to_url, tg_store_copy_report_t *report, tg_err_t *err);

#endif
