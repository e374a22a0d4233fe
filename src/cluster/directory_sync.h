/* directory_sync.h - keeps this node's in-memory directory (customers, keys, payment holds:
 * gateway/accounts.h) and, once followed, its table of ingest tokens (metering/events.h) in
 * step with what every other node writes to the shared database.
 *
 * A thread with its own store connection listens for change notifications (store_cluster.h)
 * and reloads each customer named, with its keys and payment hold, within milliseconds of the
 * writing transaction's commit; every resync_s it reloads everything as the safety net (a
 * notification lost while the connection was down, a write made by hand). The gateway never
 * waits for it: requests read the directory in memory. When the database is unreachable the
 * node keeps enforcing the directory it has, retries, and resynchronises in full once back. */
#ifndef TG_DIRECTORY_SYNC_H
#define TG_DIRECTORY_SYNC_H

#include <stdint.h>

#include "gateway/accounts.h"
#include "util/err.h"

typedef struct tg_dirsync tg_dirsync_t;

typedef struct tg_dirsync_stats {
    uint64_t notifications; /* changes announced by the database */
    uint64_t reloads;       /* customers reloaded for them */
    uint64_t resyncs;       /* full reloads */
    uint64_t failures;      /* connection losses and failed reloads */
    int connected;          /* listening now */
} tg_dirsync_stats_t;

/* Starts the thread on store_url, a backend with change notifications (the caller asks
 * tg_store_backend: SQLite serves one node, which has nothing to follow). The first connection
 * is made by the thread, so a database down at this moment is retried, not an error. */
int tg_dirsync_start(const char *store_url, tg_accounts_t *accounts, int resync_s, tg_dirsync_t **out, tg_err_t *err);
void tg_dirsync_stop(tg_dirsync_t *d);
/* From now on also reload ev's ingest tokens (tg_events_tokens_load) when one is made or revoked
 * on any node, and at each full resync; once at once, to cover what changed before. ev must
 * outlive d (stop d first). d NULL: nothing. */
struct tg_events;
void tg_dirsync_follow_ingest_tokens(tg_dirsync_t *d, struct tg_events *ev);
void tg_dirsync_stats(tg_dirsync_t *d, tg_dirsync_stats_t *out);

#endif
