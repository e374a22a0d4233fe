/* store_ingest.h - what the usage events service (metering/events.h) keeps in the store besides
 * the usage rows: ingest tokens created in the admin API (issue 16; migration 32), the
 * credentials of POST /v1/events that are not in the configuration's events.tokens; and until
 * when events keep the old BLAKE2b key (migration 36).
 *
 * As for API keys, only a keyed hash of the token is stored (tg_events_token_hash), with a
 * display prefix; the token itself is shown once, when it is made. A token is revoked, never
 * deleted, so that the audit log and the list keep naming it.
 *
 * Same contract as store.h: one tg_store_t per thread, every call blocks on I/O (never on a
 * gateway loop), 0 or a negative TG_E* with a sentence in err. */
#ifndef TG_STORE_INGEST_H
#define TG_STORE_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define TG_INGEST_PREFIX_MAX 16 /* "tg_ingest_" and 4 characters of the secret */

typedef struct tg_ingest_token_row {
    char id[TG_ID_MAX];          /* "itk_" and 24 hex digits */
    char name[TG_NAME_MAX];      /* the owner's name for it, 1 to TG_NAME_MAX - 1 bytes */
    char customer_id[TG_ID_MAX]; /* the only customer it reports for; "": any */
    uint8_t hash[32];
    char prefix[TG_INGEST_PREFIX_MAX];
    int64_t created_at; /* seconds */
    int64_t revoked_at; /* seconds; 0 = in force */
} tg_ingest_token_row_t;

/* insert: TG_EEXIST when the id is taken. get: TG_ENOTFOUND when absent. set_revoked: sets
 * revoked_at once (a revoked token keeps its first time); TG_ENOTFOUND when absent. */
int tg_store_ingest_token_insert(tg_store_t *st, const tg_ingest_token_row_t *t, tg_err_t *err);
int tg_store_ingest_token_get(tg_store_t *st, const char *id, tg_ingest_token_row_t *out, tg_err_t *err);
int tg_store_ingest_token_set_revoked(tg_store_t *st, const char *id, int64_t revoked_at, tg_err_t *err);

/* Newest first (sort key "<created_at>/<id>"), revoked ones included, a page at a time (store.h's
 * keyset pagination). list: every token in force, in no order (warms the events service's
 * table). cb returning non-zero stops. */
typedef int (*tg_ingest_token_cb)(const tg_ingest_token_row_t *t, void *arg);
int tg_store_ingest_token_page(tg_store_t *st, const tg_page_t *page, tg_ingest_token_cb cb, void *arg,
                               tg_page_end_t *end, tg_err_t *err);
int tg_store_ingest_token_list_active(tg_store_t *st, tg_ingest_token_cb cb, void *arg, tg_err_t *err);

/* The time S, in seconds, up to which an event (by its own timestamp) is keyed with BLAKE2b, as
 * before migration 36; a later one is keyed with SipHash (events.c, event_key). Set once, by
 * migration 36: its time + 600 s when the database may already have held BLAKE2b ids, else none
 * (*until_s = 0: every event gets SipHash). Read by tg_events_open. */
int tg_store_event_key_blake2b_until(tg_store_t *st, int64_t *until_s, tg_err_t *err);

#endif
