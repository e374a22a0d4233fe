/* backup.h - online backups of a single node on SQLite, and putting one back.
 *
 * A backup is a directory: tollgate.db (a consistent copy of the database, SQLite's online
 * backup API, checked with integrity_check), metering/usage-1.log and usage-2.log (copies of the
 * gateway's metering logs, taken BEFORE the database copy), and manifest.json (when, the schema
 * version, the database's SHA-256, what the logs hold). Usage recorded before the backup began
 * is in the database copy or in the log copies, never in neither: a log is emptied only after
 * the database holds all of it, and the database is copied after the logs (metering/meter.h,
 * tg_meter_copy_logs). Restoring puts the database copy in place, then stores the log copies
 * into it, each batch exactly once (the batch ids the database holds are skipped).
 *
 * PostgreSQL is backed up with its own tools (pg_dump, or base backups with WAL archiving) plus
 * each node's metering.log_dir: docs/operations.md. */
#ifndef TG_OPS_BACKUP_H
#define TG_OPS_BACKUP_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

typedef struct tg_backup_summary {
    int schema_version;
    uint64_t database_bytes;
    char database_sha256[65]; /* hex */
    size_t logs, batches, rows; /* in the metering log copies */
} tg_backup_summary_t;

/* Backs up the database at store_url (sqlite:PATH) and the metering logs of log_dir (NULL: beside
 * the database) into dest_dir, which must not exist or be empty, while a gateway serves.
 * TG_ESTATE for PostgreSQL; TG_EEXIST for a dest_dir with files in it. */
int tg_backup_make(const char *store_url, const char *log_dir, const char *dest_dir, tg_backup_summary_t *out,
                   tg_err_t *err);

typedef struct tg_restore_summary {
    tg_backup_summary_t backup;  /* as the manifest says, checked */
    int set_aside;               /* the database and logs that were there were moved aside */
    char aside_suffix[64];       /* ".before-restore-YYYYmmddTHHMMSSZ" */
    size_t batches, rows;        /* stored from the log copies now (the rest was in the copy) */
} tg_restore_summary_t;

/* Puts the backup in src_dir in place of the database at store_url (sqlite:PATH) and its
 * metering logs (log_dir as above). Refuses (TG_ESTATE) while a gateway runs on it (it holds
 * the logs). A database or logs already there are kept beside, renamed with aside_suffix, never
 * overwritten. The backup's database must match its manifest's SHA-256 (TG_ESTORE otherwise).
 * The restored database is migrated to this version's schema. */
int tg_backup_restore(const char *store_url, const char *log_dir, const char *src_dir, tg_restore_summary_t *out,
                      tg_err_t *err);

#endif
