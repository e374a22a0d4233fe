/* tmpstore.h - test support: a migrated store of its own for a test, and its removal. Used by the
 * unit tests of the modules that take a store (subscriptions, keys, the Stripe outbox), so that
 * each does not carry its own copy of this setup.
 *
 * The backend is chosen by the environment, so the same test runs on both:
 * - by default, SQLite: sqlite:<dir>/t.db in a fresh temporary folder;
 * - with TG_TEST_BACKEND=postgres, PostgreSQL: a fresh database tg_<pid>_<n> created on the server
 *   of TG_TEST_PG_URL (scripts/run-tests.sh starts one with scripts/pg-test.sh) and opened as
 *   postgresql://.../tg_<pid>_<n>; closing drops it. The temporary folder is made too, for the
 *   files a test keeps beside its store (usage logs).
 * A test that sets up rows the store's calls cannot make runs its SQL with tg_tmpstore_exec (on
 * either backend: keep it to SQL both accept); one that looks inside the SQLite file itself
 * checks tg_tmpstore_is_sqlite() first. */
#ifndef TG_TEST_TMPSTORE_H
#define TG_TEST_TMPSTORE_H

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"

typedef struct tg_tmpstore {
    char dir[64];    /* /tmp/tg_<tag>_XXXXXX */
    char url[512];   /* sqlite:<dir>/t.db, or postgresql://.../tg_<pid>_<n> */
    char pg_db[64];  /* PostgreSQL: the database made for this store; "" with SQLite */
    char pg_server[512]; /* PostgreSQL: TG_TEST_PG_URL, to drop pg_db from */
    tg_store_t *st;
} tg_tmpstore_t;

/* 1 when the tests run on PostgreSQL (TG_TEST_BACKEND=postgres), else 0. */
static inline int tg_tmpstore_backend_is_pg(void)
{
    const char *b = getenv("TG_TEST_BACKEND");
    return b != NULL && (strcmp(b, "postgres") == 0 || strcmp(b, "postgresql") == 0);
}

static inline int tg_tmpstore_is_sqlite(const tg_tmpstore_t *t)
{
    return t->pg_db[0] == '\0';
}

/* Runs one statement on the PostgreSQL server at url (its own database). 0, or -1 with the
 * server's message on stderr. */
static inline int tg_tmpstore_pg_exec(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    int rc = -1;
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "tmpstore: cannot connect to %s: %s", url, PQerrorMessage(c));
    } else {
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) == PGRES_COMMAND_OK)
            rc = 0;
        else
            fprintf(stderr, "tmpstore: %s: %s", sql, PQerrorMessage(c));
        PQclear(r);
    }
    PQfinish(c);
    return rc;
}

/* out = server with its database replaced by dbname: postgresql://u@h:p/postgres?x=y becomes
 * postgresql://u@h:p/dbname?x=y. 0, or -1 when server is not a URI or out is too small. */
static inline int tg_tmpstore_pg_url(const char *server, const char *dbname, char *out, size_t cap)
{
    const char *scheme_end = strstr(server, "://");
    if (scheme_end == NULL)
        return -1;
    const char *authority = scheme_end + 3;
    size_t auth_len = strcspn(authority, "/?");
    const char *rest = authority + auth_len; /* "/db?query", "?query" or "" */
    const char *query = strchr(rest, '?');
    int w = snprintf(out, cap, "%.*s/%s%s", (int)(rest - server), server, dbname, query != NULL ? query : "");
    return w > 0 && (size_t)w < cap ? 0 : -1;
}

/* Creates the database of a PostgreSQL tmpstore and sets t->url. 0 or -1 (message on stderr). */
static inline int tg_tmpstore_pg_create(tg_tmpstore_t *t)
{
    static unsigned counter; /* per test binary: with the pid, unique on the server */
    const char *server = getenv("TG_TEST_PG_URL");
    if (server == NULL || server[0] == '\0') {
        fprintf(stderr, "tmpstore: TG_TEST_BACKEND=postgres needs TG_TEST_PG_URL (scripts/pg-test.sh start DIR)\n");
        return -1;
    }
    char sql[128];
    snprintf(t->pg_server, sizeof(t->pg_server), "%s", server);
    snprintf(t->pg_db, sizeof(t->pg_db), "tg_%ld_%u", (long)getpid(), __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
    if (tg_tmpstore_pg_url(server, t->pg_db, t->url, sizeof(t->url)) != 0) {
        fprintf(stderr, "tmpstore: TG_TEST_PG_URL %s is not a postgresql:// URL\n", server);
        return -1;
    }
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", t->pg_db);
    return tg_tmpstore_pg_exec(server, sql);
}

/* Drops the database of a PostgreSQL tmpstore, with whatever connections are still on it. */
static inline int tg_tmpstore_pg_drop(tg_tmpstore_t *t)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", t->pg_db);
    return tg_tmpstore_pg_exec(t->pg_server, sql);
}

/* Runs sql (one or more statements, no results) on the store's database, beside the store's own
 * connection. 0, or -1 with the database's message on stderr. */
static inline int tg_tmpstore_exec(const tg_tmpstore_t *t, const char *sql)
{
    if (!tg_tmpstore_is_sqlite(t))
        return tg_tmpstore_pg_exec(t->url, sql);
    sqlite3 *db = NULL;
    char *msg = NULL;
    int rc = sqlite3_open(t->url + strlen("sqlite:"), &db);
    /* The code under test may hold the write lock (a meter storing a batch): wait for it, as the
     * store's own connections do, instead of failing with SQLITE_BUSY on a loaded machine. */
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(db, 30000);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "tmpstore: %s: %s\n", sql, msg != NULL ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

/* Makes the folder (and with PostgreSQL the database), opens and migrates the store. 0, or -1
 * with nothing to close. */
static inline int tg_tmpstore_open(tg_tmpstore_t *t, const char *tag)
{
    tg_err_t err = {0};
    char cmd[128];
    memset(t, 0, sizeof(*t));
    snprintf(t->dir, sizeof(t->dir), "/tmp/tg_%s_XXXXXX", tag);
    if (mkdtemp(t->dir) == NULL)
        return -1;
    if (tg_tmpstore_backend_is_pg()) {
        if (tg_tmpstore_pg_create(t) != 0)
            goto fail;
    } else {
        snprintf(t->url, sizeof(t->url), "sqlite:%s/t.db", t->dir);
    }
    if (tg_store_open(t->url, &t->st, &err) != 0) {
        fprintf(stderr, "tmpstore: opening %s: %s\n", t->url, err.msg);
        goto fail;
    }
    if (tg_store_migrate(t->st, &err) != 0) {
        fprintf(stderr, "tmpstore: migrating %s: %s\n", t->url, err.msg);
        tg_store_close(t->st);
        goto fail;
    }
    return 0;
fail:
    if (t->pg_db[0] != '\0')
        tg_tmpstore_pg_drop(t);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", t->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "tmpstore: could not remove %s\n", t->dir);
    return -1;
}

/* Closes the store, drops its PostgreSQL database and removes the folder. 0 or -1. */
static inline int tg_tmpstore_close(tg_tmpstore_t *t)
{
    char cmd[128];
    int rc = 0;
    tg_store_close(t->st);
    t->st = NULL;
    if (t->pg_db[0] != '\0' && tg_tmpstore_pg_drop(t) != 0)
        rc = -1;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", t->dir);
    return system(cmd) == 0 ? rc : -1;
}

#endif
