/* store_cluster.h - what several gateways sharing one database need from it: change
 * notifications and one scheduler at a time. Same threading rule as store.h: one connection
 * per thread.
 *
 * On PostgreSQL, triggers (migration 23) publish "customer:<id>" on the channel
 * tollgate_changes whenever a customer, one of its keys (created, revoked, expiry changed) or
 * its dunning state changes, and (migration 32) "ingest_token:<id>" when an ingest token is made
 * or revoked, delivered to every listening connection when the writing
 * transaction commits, whichever node or process wrote. On SQLite (one node) there is nothing
 * to listen to: the node that writes also updates its own memory. */
#ifndef TG_STORE_CLUSTER_H
#define TG_STORE_CLUSTER_H

#include <stddef.h>

#include "store/store.h"

/* Starts listening for changes on this connection. TG_ESTATE on a backend without them
 * (SQLite); TG_EUNAVAIL when the database cannot be reached. Listen again after a failure:
 * notifications sent while the connection was down are lost (resynchronise in full). */
int tg_store_changes_listen(tg_store_t *st, tg_err_t *err);

/* Waits up to timeout_ms for notifications and hands each to cb (what changed, e.g.
 * "customer", and its id). *count (may be NULL) gets how many were handed. Returns 0 (also on
 * timeout), TG_EUNAVAIL when the connection broke, or TG_ESTATE as above. */
typedef void (*tg_change_cb)(const char *kind, const char *id, void *arg);
int tg_store_changes_wait(tg_store_t *st, int timeout_ms, tg_change_cb cb, void *arg, size_t *count, tg_err_t *err);

/* The scheduler lease: *leader = 1 if this connection holds the one lock that lets a node run
 * the schedulers (period closing, invoicing, the Stripe outbox, dunning), taking it if free.
 * PostgreSQL: a session advisory lock, released by the server when the holder's connection
 * ends (a node that dies hands over as soon as PostgreSQL notices: at once for a killed
 * process, within the TCP keepalive for a lost machine). SQLite: always 1. */
int tg_store_leader_try(tg_store_t *st, int *leader, tg_err_t *err);

#endif
