/* backup.c - online backup and restore of a single SQLite node (backup.h). */
#include "ops/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "metering/batch_prune.h"
#include "metering/meter.h"
#include "metering/usage_log.h"
#include "store/store.h"
#include "util/clock.h"

#define MANIFEST "manifest.json"
#define DB_FILE "tollgate.db"
#define LOGS_DIR "metering"
#define FORMAT 1 /* manifest.json's "format": a later layout gets a new number */

static int is_sqlite(const char *url)
{
    return strncmp(url, "sqlite:", 7) == 0;
}

/* dir exists and holds nothing, or is made now (0700: a backup holds password hashes). */
static int empty_dir(const char *dir, tg_err_t *err)
{
    if (mkdir(dir, 0700) == 0)
        return 0;
    if (errno != EEXIST)
        return tg_errf(err, TG_EIO, "creating %s: %s", dir, strerror(errno));
    DIR *d = opendir(dir);
    if (d == NULL)
        return tg_errf(err, TG_EIO, "reading %s: %s", dir, strerror(errno));
    int rc = 0;
    for (struct dirent *de; rc == 0 && (de = readdir(d)) != NULL;)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            rc = tg_errf(err, TG_EEXIST, "%s is not empty (%s): a backup goes into a new directory", dir, de->d_name);
    closedir(d);
    return rc;
}

/* SHA-256 of the file at path, as hex, and its size. */
static int file_sha256(const char *path, char hex[65], uint64_t *size, tg_err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tg_errf(err, TG_EIO, "reading %s: %s", path, strerror(errno));
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    unsigned char buf[65536], digest[crypto_hash_sha256_BYTES];
    ssize_t n;
    *size = 0;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        crypto_hash_sha256_update(&h, buf, (unsigned long long)n);
        *size += (uint64_t)n;
    }
    close(fd);
    if (n < 0)
        return tg_errf(err, TG_EIO, "reading %s: %s", path, strerror(errno));
    crypto_hash_sha256_final(&h, digest);
    sodium_bin2hex(hex, 65, digest, sizeof(digest));
    return 0;
}

static int join_path(char *out, size_t cap, const char *dir, const char *name, tg_err_t *err)
{
    if (snprintf(out, cap, "%s/%s", dir, name) >= (int)cap)
        return tg_errf(err, TG_EINVAL, "the path %s/%s is too long", dir, name);
    return 0;
}

static int write_manifest(const char *dest_dir, const tg_backup_summary_t *s, tg_err_t *err)
{
    char path[4096], tmp[4200], when[32];
    int rc = join_path(path, sizeof(path), dest_dir, MANIFEST, err);
    if (rc != 0)
        return rc;
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    json_t *m = json_pack("{s:i,s:s,s:i,s:{s:s,s:I,s:s},s:{s:s,s:I,s:I,s:I}}", "format", FORMAT, "created_at", when,
                          "schema_version", s->schema_version, "database", "file", DB_FILE, "bytes",
                          (json_int_t)s->database_bytes, "sha256", s->database_sha256, "metering", "directory",
                          LOGS_DIR, "logs", (json_int_t)s->logs, "batches", (json_int_t)s->batches, "rows",
                          (json_int_t)s->rows);
    if (m == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory writing the manifest");
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (json_dump_file(m, tmp, JSON_INDENT(2) | JSON_SORT_KEYS) != 0 || rename(tmp, path) != 0)
        rc = tg_errf(err, TG_EIO, "writing %s: %s", path, strerror(errno));
    json_decref(m);
    return rc;
}

int tg_backup_make(const char *store_url, const char *log_dir, const char *dest_dir, tg_backup_summary_t *out,
                   tg_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (!is_sqlite(store_url))
        return tg_errf(err, TG_ESTATE,
                       "tollgate backup copies a SQLite database; for PostgreSQL use pg_dump or base backups with "
                       "WAL archiving, and copy each node's metering.log_dir (docs/operations.md)");
    char db[4096], logs[4096];
    int rc = empty_dir(dest_dir, err);
    if (rc == 0)
        rc = join_path(db, sizeof(db), dest_dir, DB_FILE, err);
    if (rc == 0)
        rc = join_path(logs, sizeof(logs), dest_dir, LOGS_DIR, err);
    if (rc == 0 && mkdir(logs, 0700) != 0)
        rc = tg_errf(err, TG_EIO, "creating %s: %s", logs, strerror(errno));
    /* The logs first, then the database: see backup.h for why the order matters. */
    int64_t logs_begun_ns = tg_clock_mono_ns();
    tg_meter_copied_t copied;
    if (rc == 0 && (rc = tg_meter_copy_logs(store_url, log_dir, "", logs, &copied, err)) == 0) {
        out->logs = copied.logs;
        out->batches = copied.batches;
        out->rows = copied.rows;
    }
    tg_store_t *st = NULL;
    if (rc == 0)
        rc = tg_store_open(store_url, &st, err);
    if (rc == 0)
        rc = tg_store_schema_version(st, &out->schema_version, err);
    if (rc == 0)
        rc = tg_store_backup_to(st, db, err);
    tg_store_close(st);
    /* The gateway keeps the usage_batches rows of what its logs held for TG_USAGE_BATCHES_LAG_S
     * after a reset (metering/batch_prune.h): a database copied later than that after the logs
     * may lack the row of a record the log copy holds, which a restore would count twice. */
    int64_t took_s = (tg_clock_mono_ns() - logs_begun_ns) / 1000000000;
    if (rc == 0 && took_s >= TG_USAGE_BATCHES_LAG_S)
        rc = tg_errf(err, TG_ESTATE,
                     "the database copy ended %lld s after the metering logs' copy began; a backup must take less "
                     "than %d s (a restore could count usage twice): %s is not a backup",
                     (long long)took_s, TG_USAGE_BATCHES_LAG_S, dest_dir);
    if (rc == 0)
        rc = file_sha256(db, out->database_sha256, &out->database_bytes, err);
    if (rc == 0)
        rc = write_manifest(dest_dir, out, err);
    return rc;
}

/* ---- restore ---- */

static int read_manifest(const char *src_dir, tg_backup_summary_t *s, tg_err_t *err)
{
    char path[4096];
    int rc = join_path(path, sizeof(path), src_dir, MANIFEST, err);
    if (rc != 0)
        return rc;
    json_error_t je;
    json_t *m = json_load_file(path, 0, &je);
    if (m == NULL)
        return tg_errf(err, TG_EINVAL, "%s:%d: %s (is %s a tollgate backup?)", path, je.line, je.text, src_dir);
    json_int_t format = 0, version = 0, bytes = 0;
    const char *sha = NULL;
    if (json_unpack_ex(m, &je, 0, "{s:I,s:I,s:{s:I,s:s}}", "format", &format, "schema_version", &version, "database",
                       "bytes", &bytes, "sha256", &sha) != 0)
        rc = tg_errf(err, TG_EINVAL, "%s: %s", path, je.text);
    else if (format != FORMAT)
        rc = tg_errf(err, TG_EINVAL, "%s: format %lld is not one this tollgate reads (%d)", path, (long long)format,
                     FORMAT);
    else if (strlen(sha) != 64)
        rc = tg_errf(err, TG_EINVAL, "%s: database.sha256 is not a SHA-256", path);
    else {
        s->schema_version = (int)version;
        s->database_bytes = (uint64_t)bytes;
        memcpy(s->database_sha256, sha, 65);
    }
    json_decref(m);
    return rc;
}

/* Renames path to path+suffix if it exists; *moved is set when it did. */
static int set_aside(const char *path, const char *suffix, int *moved, tg_err_t *err)
{
    char to[4200];
    snprintf(to, sizeof(to), "%s%s", path, suffix);
    if (rename(path, to) == 0) {
        *moved = 1;
        return 0;
    }
    return errno == ENOENT ? 0 : tg_errf(err, TG_EIO, "moving %s aside: %s", path, strerror(errno));
}

/* Copies the backup's log copies into a fresh directory beside the database, so that storing
 * them (which empties them) leaves the backup as it was. */
static int stage_logs(const char *src_dir, const char *db_path, char *stage, size_t cap, tg_err_t *err)
{
    if (snprintf(stage, cap, "%s.restore-XXXXXX", db_path) >= (int)cap || mkdtemp(stage) == NULL)
        return tg_errf(err, TG_EIO, "creating a directory beside %s: %s", db_path, strerror(errno));
    int rc = 0;
    for (int i = 1; i <= 2 && rc == 0; i++) {
        char from[4200], to[4300];
        if (snprintf(from, sizeof(from), "%s/%s/usage-%d.log", src_dir, LOGS_DIR, i) >= (int)sizeof(from))
            return tg_errf(err, TG_EINVAL, "the backup directory's path is too long");
        snprintf(to, sizeof(to), "%s/usage-%d.log", stage, i);
        FILE *in = fopen(from, "rb");
        if (in == NULL) {
            if (errno != ENOENT)
                rc = tg_errf(err, TG_EIO, "reading %s: %s", from, strerror(errno));
            continue;
        }
        FILE *out = fopen(to, "wb");
        char buf[65536];
        size_t n;
        if (out == NULL)
            rc = tg_errf(err, TG_EIO, "creating %s: %s", to, strerror(errno));
        while (rc == 0 && (n = fread(buf, 1, sizeof(buf), in)) > 0)
            if (fwrite(buf, 1, n, out) != n)
                rc = tg_errf(err, TG_EIO, "writing %s: %s", to, strerror(errno));
        if (rc == 0 && ferror(in))
            rc = tg_errf(err, TG_EIO, "reading %s", from);
        if (out != NULL && fclose(out) != 0 && rc == 0)
            rc = tg_errf(err, TG_EIO, "writing %s: %s", to, strerror(errno));
        fclose(in);
    }
    return rc;
}

static void remove_stage(const char *stage)
{
    for (int i = 1; i <= 2; i++) {
        char p[4300];
        snprintf(p, sizeof(p), "%s/usage-%d.log", stage, i);
        unlink(p);
    }
    rmdir(stage);
}

/* ".before-restore-<UTC time>", with "-N" when a restore in the same second used it already. */
static int pick_suffix(const char *db_path, char *suffix, size_t cap, tg_err_t *err)
{
    char stamp[36], probe[4200];
    time_t now = time(NULL);
    struct tm tm;
    strftime(stamp, sizeof(stamp), ".before-restore-%Y%m%dT%H%M%SZ", gmtime_r(&now, &tm));
    for (int n = 1; n < 100; n++) {
        if (n == 1)
            snprintf(suffix, cap, "%s", stamp);
        else
            snprintf(suffix, cap, "%s-%d", stamp, n);
        snprintf(probe, sizeof(probe), "%s%s", db_path, suffix);
        if (access(probe, F_OK) != 0)
            return 0;
    }
    return tg_errf(err, TG_EEXIST, "%s%s and 98 more exist: remove old copies set aside by restores", db_path, stamp);
}

int tg_backup_restore(const char *store_url, const char *log_dir, const char *src_dir, tg_restore_summary_t *out,
                      tg_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (!is_sqlite(store_url))
        return tg_errf(err, TG_ESTATE,
                       "tollgate restore puts back a SQLite database; for PostgreSQL use pg_restore or point-in-time "
                       "recovery (docs/operations.md)");
    const char *db_path = store_url + 7;
    char backup_db[4096];
    int rc = read_manifest(src_dir, &out->backup, err);
    if (rc == 0)
        rc = join_path(backup_db, sizeof(backup_db), src_dir, DB_FILE, err);
    char sha[65];
    uint64_t bytes;
    if (rc == 0)
        rc = file_sha256(backup_db, sha, &bytes, err);
    if (rc == 0 && (strcmp(sha, out->backup.database_sha256) != 0 || bytes != out->backup.database_bytes))
        rc = tg_errf(err, TG_ESTORE, "%s does not match its manifest (SHA-256 or size differ): the backup is damaged",
                     backup_db);
    if (rc != 0)
        return rc;

    if ((rc = pick_suffix(db_path, out->aside_suffix, sizeof(out->aside_suffix), err)) != 0)
        return rc;

    /* A gateway running on this database holds its metering logs: holding them here both
     * proves none runs and keeps one from starting until the restore is done. */
    tg_usage_log_t *held[2] = {NULL, NULL};
    char *log_paths[2] = {NULL, NULL};
    for (int i = 0; i < 2 && rc == 0; i++) {
        log_paths[i] = tg_meter_log_path(store_url, log_dir, "", i, err);
        if (log_paths[i] == NULL) {
            rc = err->code;
            break;
        }
        if (access(log_paths[i], F_OK) != 0)
            continue;
        rc = tg_usage_log_open(log_paths[i], &held[i], err);
        if (rc == TG_ESTATE)
            rc = tg_errf(err, TG_ESTATE, "a gateway is running on %s (it holds %s): stop it before restoring", db_path,
                         log_paths[i]);
    }
    /* What is there now is kept, renamed: the logs (usage after the backup, which
     * `tollgate metering recover` can still store) and the database, -wal and -shm with it. */
    for (int i = 0; i < 2 && rc == 0; i++)
        rc = set_aside(log_paths[i], out->aside_suffix, &out->set_aside, err);
    tg_store_t *st = NULL;
    if (rc == 0 && access(db_path, F_OK) == 0) {
        /* a consistent copy aside (its WAL folded in), then the live file is replaced below */
        char aside[4200];
        snprintf(aside, sizeof(aside), "%s%s", db_path, out->aside_suffix);
        if ((rc = tg_store_open(store_url, &st, err)) == 0 && (rc = tg_store_backup_to(st, aside, err)) == 0)
            out->set_aside = 1;
    }
    if (rc == 0 && st == NULL)
        rc = tg_store_open(store_url, &st, err);
    if (rc == 0)
        rc = tg_store_restore_from(st, backup_db, err);
    tg_store_close(st);
    st = NULL;
    if (rc == 0 && (rc = tg_store_open(store_url, &st, err)) == 0)
        rc = tg_store_migrate(st, err);
    tg_store_close(st);

    /* Release the old logs (set aside) before storing the backup's copies. */
    for (int i = 0; i < 2; i++)
        tg_usage_log_close(held[i]);
    char stage[4200];
    if (rc == 0 && (rc = stage_logs(src_dir, db_path, stage, sizeof(stage), err)) == 0) {
        tg_meter_recovered_t rec;
        if ((rc = tg_meter_recover(store_url, stage, 0, &rec, err)) == 0) {
            out->batches = rec.batches;
            out->rows = rec.rows;
        }
        remove_stage(stage);
    }
    free(log_paths[0]);
    free(log_paths[1]);
    return rc;
}
