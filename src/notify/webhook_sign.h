/* webhook_sign.h - Standard Webhooks signatures (https://www.standardwebhooks.com/): a secret
 * "whsec_" + base64 of the key bytes; a signature "v1," + base64 of HMAC-SHA256 over
 * "{webhook-id}.{webhook-timestamp}.{body}" keyed by the decoded key. Pure apart from the
 * random bytes of a new secret; any thread. */
#ifndef TG_NOTIFY_WEBHOOK_SIGN_H
#define TG_NOTIFY_WEBHOOK_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define TG_WEBHOOK_SECRET_BYTES 24 /* a new secret's key: 192 random bits */
#define TG_WEBHOOK_KEY_MIN 24      /* a configured secret's key: at least this many bytes */
#define TG_WEBHOOK_KEY_MAX 64
#define TG_WEBHOOK_SIGNATURE_MAX 48 /* "v1," + 44 base64 characters + NUL */

/* A new secret "whsec_" + base64(24 random bytes) into out (cap >= 40). */
void tg_webhook_secret_new(char *out, size_t cap);

/* The key bytes of a "whsec_..." secret into key (cap TG_WEBHOOK_KEY_MAX), *len their count.
 * TG_EINVAL when the prefix is missing, the base64 is not valid or the key is shorter than
 * TG_WEBHOOK_KEY_MIN or longer than TG_WEBHOOK_KEY_MAX. The caller wipes key. */
int tg_webhook_secret_key(const char *secret, uint8_t key[TG_WEBHOOK_KEY_MAX], size_t *len, tg_err_t *err);

/* "v1,<base64 signature>" of (msg_id, timestamp, body) under secret into out
 * (TG_WEBHOOK_SIGNATURE_MAX bytes). TG_EINVAL for a bad secret. */
int tg_webhook_sign(const char *secret, const char *msg_id, int64_t timestamp, const char *body, size_t body_len,
                    char out[TG_WEBHOOK_SIGNATURE_MAX], tg_err_t *err);

#endif
