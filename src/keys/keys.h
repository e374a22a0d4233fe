/* keys.h - the API key rules: issue (the secret exists only in the caller's buffer, once), the
 * key cap (keys.max_active_per_customer), rotation with a grace period, revocation.
 *
 * Called by the admin API and portal adapters (src/admin/admin_keys.c, portal.c: sign-up issues
 * the first key) and reached by the CLI through the admin API. Nothing here knows HTTP: 0 or a
 * negative TG_E… with a sentence in err:
 *   TG_ELIMIT   the key cap is reached (the client's doing; the adapter answers 409)
 *   TG_ESTATE   only a working key can be rotated
 *   others      the store or the directory failed.
 * Runs on the thread that owns the store connection (the admin back thread). The store is
 * written first, then the gateway's in-memory directory. */
#ifndef TG_KEYS_H
#define TG_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "gateway/accounts.h"
#include "gateway/apikey.h"
#include "model/records.h"

typedef struct tg_store tg_store_t; /* a connection (store/store.h) */
#include "util/err.h"

typedef struct tg_keys_ctx {
    const tg_config_t *cfg; /* keys.max_active_per_customer, admin.key_grace_seconds */
    tg_store_t *store;
    tg_accounts_t *accounts;   /* may be NULL (tests, tools) */
    const uint8_t *key_secret; /* the HMAC key of the stored key hashes */
    size_t key_secret_len;
    int64_t (*now_s)(void); /* NULL: tg_clock_now_ns (moved by --test-clock) */
} tg_keys_ctx_t;

/* "active", "expiring" (rotated, in its grace period), "expired" or "revoked" at `now`. */
const char *tg_keys_status(const tg_key_t *k, int64_t now);

/* The cap: 0 if customer_id may get one more working key, TG_ELIMIT if not. A rotation
 * (replacing = 1) may exceed the cap by the one key it retires, which stops working after the
 * grace period: a customer at the cap can rotate one key at a time, never grow past cap + 1. */
int tg_keys_room(const tg_keys_ctx_t *x, const char *customer_id, int replacing, tg_err_t *err);

/* Issues a key without looking at the cap (a new customer's first key). Fills *k and secret
 * (the caller wipes it with sodium_memzero once shown). */
int tg_keys_issue(const tg_keys_ctx_t *x, const char *customer_id, const char *name, int live, tg_key_t *k,
                  char secret[TG_APIKEY_BUF], tg_err_t *err);

/* tg_keys_room, then tg_keys_issue: TG_ELIMIT changes nothing. */
int tg_keys_create(const tg_keys_ctx_t *x, const char *customer_id, const char *name, int live, tg_key_t *k,
                   char secret[TG_APIKEY_BUF], tg_err_t *err);

/* Revokes *k now (stops working within a second); revoking a revoked key changes nothing. */
int tg_keys_revoke(const tg_keys_ctx_t *x, tg_key_t *k, tg_err_t *err);

/* Issues a replacement of *old (same customer, name and mode) and makes *old expire after
 * grace_s seconds (< 0: admin.key_grace_seconds; an earlier expiry is kept). The cap is checked
 * first: a refused rotation changes nothing. TG_ESTATE if *old is revoked or expired. */
int tg_keys_rotate(const tg_keys_ctx_t *x, tg_key_t *old, int64_t grace_s, tg_key_t *k, char secret[TG_APIKEY_BUF],
                   tg_err_t *err);

#endif
