/* store_sqlite_backup.c - consistent copies of a live SQLite database (store.h:
 * tg_store_backup_to, tg_store_restore_from), with SQLite's online backup API.
 *
 * Why not cp: in WAL mode the newest pages live in the -wal file until a checkpoint, so a copy
 * of the main file alone can be old or, caught mid-checkpoint, torn. The backup API reads every
 * page through one read transaction, which sees one moment of the database, while the gateway
 * keeps committing (WAL lets it write past a reader). */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store/store_sqlite_int.h"

/* A writer holding the destination's lock makes a step answer BUSY: wait, up to about 30 s. */
#define BUSY_WAIT_MS 10
#define BUSY_WAITS 3000

static int copy_pages(sqlite3 *to, sqlite3 *from, const char *doing, tg_err_t *err)
{
    sqlite3_backup *b = sqlite3_backup_init(to, "main", from, "main");
    if (b == NULL)
        return tg_errf(err, TG_ESTORE, "%s: %s", doing, sqlite3_errmsg(to));
    int rc, waits = 0;
    /* -1: every page in one step, so one read transaction covers the whole copy */
    while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY || rc == SQLITE_LOCKED) {
        if (++waits > BUSY_WAITS)
            break;
        sqlite3_sleep(BUSY_WAIT_MS);
    }
    int fin = sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE)
        return tg_errf(err, rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? TG_EUNAVAIL : TG_ESTORE, "%s: %s", doing,
                       sqlite3_errstr(rc));
    if (fin != SQLITE_OK)
        return tg_errf(err, TG_ESTORE, "%s: %s", doing, sqlite3_errmsg(to));
    return 0;
}

/* 1 if "NULL value in TABLE.COLUMN" (from integrity_check) is false: the column has no NULL.
 * SQLite 3.40.0 to 3.41.0 report NOT NULL columns of WITHOUT ROWID tables whose primary key is
 * not declared in column order (usage_period, usage_batches) as NULL when they are not; a query
 * tells. Anything else, or a NULL that is there, is a real problem (0). */
static int false_null_report(sqlite3 *db, const char *msg)
{
    const char *prefix = "NULL value in ";
    if (strncmp(msg, prefix, strlen(prefix)) != 0)
        return 0;
    const char *name = msg + strlen(prefix), *dot = strchr(name, '.');
    if (dot == NULL || dot == name || dot[1] == '\0' || strlen(name) > 128)
        return 0;
    for (const char *c = name; *c != '\0'; c++)
        if (c != dot && !((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_'))
            return 0;
    char sql[400];
    snprintf(sql, sizeof(sql), "SELECT 1 FROM \"%.*s\" WHERE \"%s\" IS NULL LIMIT 1", (int)(dot - name), name, dot + 1);
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        return 0;
    int none = sqlite3_step(s) == SQLITE_DONE;
    sqlite3_finalize(s);
    return none;
}

/* PRAGMA integrity_check answers one row "ok", or the problems (each checked as above). */
static int check_integrity(sqlite3 *db, const char *path, tg_err_t *err)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL) != SQLITE_OK)
        return tg_errf(err, TG_ESTORE, "checking %s: %s", path, sqlite3_errmsg(db));
    int rc = 0, step;
    while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
        const char *msg = (const char *)sqlite3_column_text(s, 0);
        if (msg != NULL && strcmp(msg, "ok") != 0 && !false_null_report(db, msg))
            rc = tg_errf(err, TG_ESTORE, "%s is damaged: %.300s", path, msg);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = tg_errf(err, TG_ESTORE, "checking %s: %s", path, sqlite3_errmsg(db));
    sqlite3_finalize(s);
    return rc;
}

int tg_sqlite_backup_to(tg_store_t *store, const char *dest_path, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    if (access(dest_path, F_OK) == 0)
        return tg_errf(err, TG_EEXIST, "%s exists already: a backup goes into a new file", dest_path);
    sqlite3 *to = NULL;
    if (sqlite3_open_v2(dest_path, &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_EXCLUSIVE, NULL) !=
        SQLITE_OK) {
        int rc = tg_errf(err, TG_EIO, "creating %s: %s", dest_path, to != NULL ? sqlite3_errmsg(to) : "out of memory");
        sqlite3_close(to);
        return rc;
    }
    int rc = copy_pages(to, st->db, "copying the database", err);
    /* One self-contained file: the copy took the live database's WAL mode with its pages. */
    if (rc == 0 && sqlite3_exec(to, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL) != SQLITE_OK)
        rc = tg_errf(err, TG_ESTORE, "finishing %s: %s", dest_path, sqlite3_errmsg(to));
    if (rc == 0)
        rc = check_integrity(to, dest_path, err);
    if (sqlite3_close(to) != SQLITE_OK && rc == 0)
        rc = tg_errf(err, TG_EIO, "closing %s", dest_path);
    if (rc != 0)
        unlink(dest_path); /* never leave half a backup that looks like one */
    return rc;
}

int tg_sqlite_restore_from(tg_store_t *store, const char *src_path, tg_err_t *err)
{
    tg_sqlite_t *st = tg_sqlite(store);
    sqlite3 *from = NULL;
    if (sqlite3_open_v2(src_path, &from, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        int rc = tg_errf(err, TG_EIO, "opening %s: %s", src_path, from != NULL ? sqlite3_errmsg(from) : "out of memory");
        sqlite3_close(from);
        return rc;
    }
    int rc = check_integrity(from, src_path, err);
    if (rc == 0)
        rc = copy_pages(st->db, from, "restoring the database", err);
    sqlite3_close(from);
    return rc;
}
