/* store_pg_cluster.c - change notifications and the scheduler lock on PostgreSQL
 * (store_cluster.h). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "store/store_pg_int.h"
#include "util/clock.h"

#define CHANGES_CHANNEL "tollgate_changes"
/* The scheduler lock's key (any constant other than the migrations' one). */
#define LEADER_LOCK "7021893395784053"

int tg_pg_changes_listen(tg_store_t *store, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    int rc = tg_pg_exec(st, "LISTEN " CHANGES_CHANNEL, err, "listening for changes");
    if (rc == 0)
        st->listening = 1;
    return rc;
}

/* Hands every notification libpq holds to cb. */
static size_t drain(tg_pg_t *st, tg_change_cb cb, void *arg)
{
    size_t n = 0;
    PGnotify *note;
    while ((note = PQnotifies(st->conn)) != NULL) {
        char kind[32] = "";
        const char *colon = strchr(note->extra, ':');
        if (colon != NULL && (size_t)(colon - note->extra) < sizeof(kind)) {
            memcpy(kind, note->extra, (size_t)(colon - note->extra));
            kind[colon - note->extra] = '\0';
            cb(kind, colon + 1, arg);
            n++;
        }
        PQfreemem(note);
    }
    return n;
}

int tg_pg_changes_wait(tg_store_t *store, int timeout_ms, tg_change_cb cb, void *arg, size_t *count, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    if (count != NULL)
        *count = 0;
    if (!st->listening || st->conn == NULL || PQstatus(st->conn) != CONNECTION_OK) {
        st->listening = 0;
        return tg_errf(err, TG_EUNAVAIL, "not listening to PostgreSQL at %s (connection lost)", st->where);
    }
    size_t n = drain(st, cb, arg); /* some may have arrived with earlier results */
    int64_t deadline = tg_clock_mono_ns() + (int64_t)timeout_ms * 1000000;
    while (n == 0) {
        int64_t left_ms = (deadline - tg_clock_mono_ns()) / 1000000;
        if (left_ms <= 0)
            break;
        struct pollfd pfd = {.fd = PQsocket(st->conn), .events = POLLIN};
        int pr = poll(&pfd, 1, (int)left_ms);
        if (pr < 0 && errno != EINTR)
            return tg_errf(err, TG_EIO, "waiting for changes: %s", strerror(errno));
        if (pr > 0 && PQconsumeInput(st->conn) == 0) {
            st->listening = 0;
            return tg_errf(err, TG_EUNAVAIL, "waiting for changes: PostgreSQL at %s: %s", st->where,
                           PQerrorMessage(st->conn));
        }
        n += drain(st, cb, arg);
    }
    if (count != NULL)
        *count = n;
    return 0;
}

int tg_pg_leader_try(tg_store_t *store, int *leader, tg_err_t *err)
{
    tg_pg_t *st = tg_pg(store);
    *leader = 0;
    PGresult *r;
    /* Held: check the session is still alive (a lost session lost the lock; the reconnect
     * inside tg_pg_query clears st->leader, and the lock is tried again at the next call). */
    int held = st->leader;
    int rc = tg_pg_query(st, held ? "SELECT true" : "SELECT pg_try_advisory_lock(" LEADER_LOCK ")", NULL, &r, err,
                         "taking the scheduler lock");
    if (rc != 0)
        return rc;
    if (!held)
        st->leader = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    *leader = st->leader;
    return 0;
}
