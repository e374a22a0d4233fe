/* ingest_tokens.h - ingest tokens made in the admin API (issue 16): the credentials of
 * POST /v1/events besides the configuration's events.tokens.
 *
 * The domain service behind POST/GET/DELETE /v1/admin/ingest-tokens (the adapter is
 * src/admin/admin_ingest.c). A token is made with 24 random bytes (libsodium), shown to the
 * caller once and stored only as its keyed hash (tg_events_token_hash) with a display prefix;
 * it reports usage for every customer or, scoped, for one. After each change the events
 * service's in-memory table is updated before the call returns, so a new token works on this
 * node's gateway at once and a revoked one stops at once; requests never read the database.
 * Other nodes on the same PostgreSQL load the table when they start (not followed live: see
 * docs/api.md, "Ingest tokens").
 *
 * Errors are values: TG_EINVAL with a message that starts with the field at fault ("name: ...",
 * "customer: ..."), TG_ENOTFOUND for an unknown token, the store's errors otherwise. On the
 * admin thread (the store blocks). */
#ifndef TG_INGEST_TOKENS_H
#define TG_INGEST_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "metering/events.h"
#include "store/store_ingest.h"
#include "util/err.h"

#define TG_INGEST_TOKEN_PREFIX "tg_ingest_"
#define TG_INGEST_SECRET_BUF 48 /* "tg_ingest_" + 32 base64url characters + NUL */

typedef struct tg_ingest_tokens_ctx {
    tg_store_t *store;
    tg_events_t *events; /* the service whose table follows; NULL: no events section (stored only) */
    const uint8_t *key_secret;
    size_t key_secret_len;
} tg_ingest_tokens_ctx_t;

/* Makes a token named name (1 to TG_NAME_MAX - 1 bytes, no control characters) for customer_id
 * (an existing customer) or, when NULL, for any customer, at now_s. *out gets the stored row,
 * secret the token (to show once; the caller wipes it). */
int tg_ingest_token_create(const tg_ingest_tokens_ctx_t *x, const char *name, const char *customer_id, int64_t now_s,
                           tg_ingest_token_row_t *out, char secret[TG_INGEST_SECRET_BUF], tg_err_t *err);

/* Revokes token id at now_s (revoking it again changes nothing); *out gets the row after. */
int tg_ingest_token_revoke(const tg_ingest_tokens_ctx_t *x, const char *id, int64_t now_s, tg_ingest_token_row_t *out,
                           tg_err_t *err);

#endif
