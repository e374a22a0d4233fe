/* apikey.h - API key format, generation and hashing.
 *
 * A key is "tg_live_" or "tg_test_", then 43 base62 characters carrying 256 random bits, then a
 * 6-character base62 checksum (CRC-32 of everything before it). The fixed prefix lets secret
 * scanners recognise leaked keys; the checksum rejects typos without a database lookup. Only
 * HMAC-SHA-256(server secret, key) is ever stored, with a short display prefix. */
#ifndef TG_APIKEY_H
#define TG_APIKEY_H

#include <stddef.h>
#include <stdint.h>

#define TG_APIKEY_LEN 57     /* 8 + 43 + 6 */
#define TG_APIKEY_BUF 64     /* TG_APIKEY_LEN + NUL, rounded */
#define TG_APIKEY_PREFIX_LEN 12 /* "tg_live_" + 4 characters shown in listings */

/* Writes a new random key (NUL-terminated) into out[TG_APIKEY_BUF]. live: 1 = tg_live_, 0 = tg_test_. */
void tg_apikey_generate(int live, char out[TG_APIKEY_BUF]);

/* 0 if key has the right prefix, length, alphabet and checksum; -1 otherwise. Does not need the
 * key to exist. Runs in time independent of where a mismatch is. */
int tg_apikey_check_format(const char *key, size_t len);

/* HMAC-SHA-256 of the key under secret. */
void tg_apikey_hash(const uint8_t *secret, size_t secret_len, const char *key, size_t len,
                    uint8_t out[32]);

/* The same HMAC with the key schedule done once: the request path hashes every call's key, and
 * half of an HMAC of a short key is hashing the secret's pads. It runs on OpenSSL's SHA-256 (the
 * CPU's SHA instructions where it has them: about a quarter of the time of tg_apikey_hash's
 * libsodium); the MAC is the same. Safe to share between threads (each hash works on a copy of
 * the prepared state). */
typedef struct tg_apikey_hasher tg_apikey_hasher_t;
tg_apikey_hasher_t *tg_apikey_hasher_new(const uint8_t *secret, size_t secret_len);
void tg_apikey_hasher_hash(const tg_apikey_hasher_t *h, const char *key, size_t len, uint8_t out[32]);
void tg_apikey_hasher_free(tg_apikey_hasher_t *h);

/* The display prefix (first TG_APIKEY_PREFIX_LEN characters) into out (NUL-terminated). */
void tg_apikey_prefix(const char *key, size_t len, char *out, size_t cap);

#endif
