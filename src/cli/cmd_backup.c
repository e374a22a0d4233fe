/* cmd_backup.c - tollgate backup and tollgate restore (ops/backup.h): parse, call, print. */
#include <getopt.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "config/config.h"
#include "ops/audit.h"
#include "ops/backup.h"

static void usage_backup(FILE *f)
{
    fprintf(f, "usage: tollgate backup -c FILE DEST\n\n"
               "Copies the configuration's SQLite database and its metering logs into the new directory\n"
               "DEST while the gateway serves: a consistent copy of the database (SQLite's online backup),\n"
               "the metering logs copied before it so that no unit of usage falls between the two, and\n"
               "DEST/manifest.json (schema version, SHA-256). For PostgreSQL see docs/operations.md.\n");
}

static void usage_restore(FILE *f)
{
    fprintf(f, "usage: tollgate restore -c FILE SRC\n\n"
               "Puts the backup in SRC in place of the configuration's SQLite database (the gateway must\n"
               "be stopped), then stores the backup's metering logs into it, each batch exactly once. A\n"
               "database and metering logs already there are kept, renamed *.before-restore-<time>.\n");
}

/* Parses "-c FILE ARG"; 0 ok, 1 --help shown, 2 usage error (printed). */
static int parse(int argc, char **argv, void (*usage)(FILE *), const char **config, const char **dir)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    *config = *dir = NULL;
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1;) {
        if (c == 'c')
            *config = optarg;
        else if (c == 'h') {
            usage(stdout);
            return 1;
        } else {
            fprintf(stderr, "tollgate %s: %s %s\n", argv[0], c == ':' ? "option needs a value:" : "unknown option",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (*config == NULL || optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    *dir = argv[optind];
    return 0;
}

/* The restore's entry in the audit log of the database just put back (whose log ends at the
 * backup): who restored what, so that the gap after it is explained. Only on a schema that has
 * the log (28 on); a failure is reported, the restore stands. */
static void audit_restore(const char *store_url, const char *dir, const tg_restore_summary_t *s)
{
    tg_store_t *st = NULL;
    tg_err_t err = {0};
    int version = 0;
    if (tg_store_open(store_url, &st, &err) != 0 || tg_store_schema_version(st, &version, &err) != 0) {
        fprintf(stderr, "tollgate restore: the restore is not in the audit log: %s\n", err.msg);
        tg_store_close(st);
        return;
    }
    if (version >= 28) {
        tg_audit_actor_t who = {.kind = TG_AUDIT_CLI};
        const struct passwd *pw = getpwuid(geteuid());
        snprintf(who.id, sizeof(who.id), "%s", pw != NULL ? pw->pw_name : "");
        json_t *after = json_pack("{s:s,s:i,s:I,s:I,s:s}", "backup", dir, "schema", s->backup.schema_version, "batches",
                                  (json_int_t)s->batches, "rows", (json_int_t)s->rows, "set_aside",
                                  s->set_aside ? s->aside_suffix : "");
        if (tg_audit_record(st, &who, "database.restore", "database", "", NULL, after, &err) != 0)
            fprintf(stderr, "tollgate restore: the restore is not in the audit log: %s\n", err.msg);
        json_decref(after);
    }
    tg_store_close(st);
}

int tg_cmd_backup(int argc, char **argv)
{
    int restore = strcmp(argv[0], "restore") == 0;
    const char *path, *dir;
    int rc = parse(argc, argv, restore ? usage_restore : usage_backup, &path, &dir);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    char errbuf[8192];
    tg_config_t *cfg = NULL;
    if (tg_config_load(path, &cfg, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, "%s\n", errbuf);
        return 1;
    }
    tg_err_t err = {0};
    if (!restore) {
        tg_backup_summary_t s;
        rc = tg_backup_make(cfg->storage.database, cfg->metering.log_dir, dir, &s, &err);
        if (rc == 0)
            printf("%s: database (schema %d, %llu bytes, sha256 %.16s...) and %zu metering logs (%zu batches, %zu "
                   "rows not yet in the database when copied)\n",
                   dir, s.schema_version, (unsigned long long)s.database_bytes, s.database_sha256, s.logs, s.batches,
                   s.rows);
    } else {
        tg_restore_summary_t s;
        rc = tg_backup_restore(cfg->storage.database, cfg->metering.log_dir, dir, &s, &err);
        if (rc == 0) {
            printf("restored %s (schema %d) into %s; stored %zu batches (%zu rows) from its metering logs\n", dir,
                   s.backup.schema_version, cfg->storage.database, s.batches, s.rows);
            if (s.set_aside)
                printf("what was there is kept with the suffix %s\n", s.aside_suffix);
            audit_restore(cfg->storage.database, dir, &s);
        }
    }
    if (rc != 0)
        fprintf(stderr, "tollgate %s: %s\n", restore ? "restore" : "backup", err.msg);
    tg_config_free(cfg);
    return rc == 0 ? 0 : 1;
}
