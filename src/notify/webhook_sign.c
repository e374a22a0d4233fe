/* webhook_sign.c - see webhook_sign.h. libsodium's HMAC-SHA256 and base64 (original alphabet,
 * with padding, as the specification's reference libraries use). */
#include "notify/webhook_sign.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define PREFIX "whsec_"

void tg_webhook_secret_new(char *out, size_t cap)
{
    uint8_t key[TG_WEBHOOK_SECRET_BYTES];
    randombytes_buf(key, sizeof(key));
    char b64[sodium_base64_ENCODED_LEN(TG_WEBHOOK_SECRET_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64, sizeof(b64), key, sizeof(key), sodium_base64_VARIANT_ORIGINAL);
    snprintf(out, cap, PREFIX "%s", b64);
    sodium_memzero(key, sizeof(key));
    sodium_memzero(b64, sizeof(b64));
}

int tg_webhook_secret_key(const char *secret, uint8_t key[TG_WEBHOOK_KEY_MAX], size_t *len, tg_err_t *err)
{
    *len = 0;
    if (secret == NULL || strncmp(secret, PREFIX, strlen(PREFIX)) != 0)
        return tg_errf(err, TG_EINVAL, "a webhook secret starts with whsec_");
    const char *b64 = secret + strlen(PREFIX);
    size_t n = 0;
    if (sodium_base642bin(key, TG_WEBHOOK_KEY_MAX, b64, strlen(b64), NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) !=
        0) {
        sodium_memzero(key, TG_WEBHOOK_KEY_MAX);
        return tg_errf(err, TG_EINVAL, "a webhook secret is whsec_ then base64 of at most %d bytes",
                       TG_WEBHOOK_KEY_MAX);
    }
    if (n < TG_WEBHOOK_KEY_MIN) {
        sodium_memzero(key, TG_WEBHOOK_KEY_MAX);
        return tg_errf(err, TG_EINVAL, "a webhook secret's key is at least %d bytes (this one has %zu)",
                       TG_WEBHOOK_KEY_MIN, n);
    }
    *len = n;
    return 0;
}

int tg_webhook_sign(const char *secret, const char *msg_id, int64_t timestamp, const char *body, size_t body_len,
                    char out[TG_WEBHOOK_SIGNATURE_MAX], tg_err_t *err)
{
    uint8_t key[TG_WEBHOOK_KEY_MAX];
    size_t key_len;
    int rc = tg_webhook_secret_key(secret, key, &key_len, err);
    if (rc != 0)
        return rc;
    char ts[24];
    int tl = snprintf(ts, sizeof(ts), "%lld", (long long)timestamp);
    crypto_auth_hmacsha256_state h;
    crypto_auth_hmacsha256_init(&h, key, key_len);
    crypto_auth_hmacsha256_update(&h, (const unsigned char *)msg_id, strlen(msg_id));
    crypto_auth_hmacsha256_update(&h, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&h, (const unsigned char *)ts, (size_t)tl);
    crypto_auth_hmacsha256_update(&h, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&h, (const unsigned char *)body, body_len);
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_final(&h, mac);
    sodium_memzero(&h, sizeof(h));
    sodium_memzero(key, sizeof(key));
    memcpy(out, "v1,", 3);
    sodium_bin2base64(out + 3, TG_WEBHOOK_SIGNATURE_MAX - 3, mac, sizeof(mac), sodium_base64_VARIANT_ORIGINAL);
    return 0;
}
