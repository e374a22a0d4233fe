/* apikey.c - see apikey.h. */
#include "gateway/apikey.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

/* OpenSSL 3 marks its one-call SHA-256 functions deprecated in favour of EVP, whose context
 * copy allocates and frees on every call (measured below); they stay in every 3.x release. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
#define BODY_LEN 43 /* ceil(256 / log2(62)) */
#define SUM_LEN 6   /* 62^6 > 2^32 */
#define HEAD_LEN 8  /* "tg_live_" */

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static void init_sodium(void)
{
    if (sodium_init() < 0)
        abort(); /* no CSPRNG: issuing keys would be unsafe, so refuse to run at all */
}

/* Writes the base62 form of a big-endian number of `n` bytes into out[len], zero-padded. The
 * number is consumed (divided down to zero). */
static void base62(uint8_t *num, size_t n, char *out, size_t len)
{
    for (size_t pos = len; pos-- > 0;) {
        unsigned rem = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned cur = (rem << 8) | num[i];
            num[i] = (uint8_t)(cur / 62);
            rem = cur % 62;
        }
        out[pos] = alphabet[rem];
    }
}

/* The CRC-32 of the key's head and body in SUM_LEN base62 digits, zero-padded. Every call's key
 * is checked, so the 32-bit number is converted in a register (six divisions) rather than through
 * base62()'s byte-wise long division (24); the digits are the same. */
static void checksum(const char *key, char out[SUM_LEN])
{
    uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)key, HEAD_LEN + BODY_LEN);
    for (size_t pos = SUM_LEN; pos-- > 0; crc /= 62)
        out[pos] = alphabet[crc % 62];
}

void tg_apikey_generate(int live, char out[TG_APIKEY_BUF])
{
    pthread_once(&sodium_once, init_sodium);
    uint8_t raw[32];
    randombytes_buf(raw, sizeof(raw));
    memcpy(out, live ? "tg_live_" : "tg_test_", HEAD_LEN);
    base62(raw, sizeof(raw), out + HEAD_LEN, BODY_LEN);
    checksum(out, out + HEAD_LEN + BODY_LEN);
    out[TG_APIKEY_LEN] = '\0';
    sodium_memzero(raw, sizeof(raw));
}

int tg_apikey_check_format(const char *key, size_t len)
{
    if (len != TG_APIKEY_LEN)
        return -1;
    if (memcmp(key, "tg_live_", HEAD_LEN) != 0 && memcmp(key, "tg_test_", HEAD_LEN) != 0)
        return -1;
    unsigned bad = 0;
    for (size_t i = HEAD_LEN; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        bad |= !((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'));
    }
    char sum[SUM_LEN];
    checksum(key, sum);
    unsigned diff = 0; /* constant time; the checksum is not secret, but the key it ends is */
    for (size_t i = 0; i < SUM_LEN; i++)
        diff |= (unsigned)(unsigned char)(sum[i] ^ key[HEAD_LEN + BODY_LEN + i]);
    bad |= diff != 0;
    return bad ? -1 : 0;
}

void tg_apikey_hash(const uint8_t *secret, size_t secret_len, const char *key, size_t len, uint8_t out[32])
{
    pthread_once(&sodium_once, init_sodium);
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, secret, secret_len);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)key, len);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof(st));
}

/* The request path hashes every call's key, so the prepared HMAC runs on OpenSSL's SHA-256,
 * which uses the CPU's SHA instructions (SHA-NI) where there are some; libsodium's is portable
 * C. Measured on this machine (AMD EPYC, 2 cores, loaded), one HMAC of a 57-character key with
 * the pads prepared: libsodium 1.76-2.08 us, OpenSSL's SHA256_* 0.37-0.48 us, OpenSSL's EVP
 * with copied contexts 0.65-0.83 us. The MAC is the same (RFC 2104; test_limits.c checks the two
 * against each other and RFC 4231): stored digests made by tg_apikey_hash keep matching. */
struct tg_apikey_hasher {
    SHA256_CTX inner, outer; /* SHA-256 with the secret's ipad and opad blocks absorbed */
};

tg_apikey_hasher_t *tg_apikey_hasher_new(const uint8_t *secret, size_t secret_len)
{
    pthread_once(&sodium_once, init_sodium);
    tg_apikey_hasher_t *h = sodium_malloc(sizeof(*h)); /* guarded, and never swapped out */
    if (h == NULL)
        return NULL;
    uint8_t k[SHA256_CBLOCK] = {0}, pad[SHA256_CBLOCK];
    if (secret_len > sizeof(k)) /* RFC 2104: a key longer than a block is hashed first */
        SHA256(secret, secret_len, k);
    else
        memcpy(k, secret, secret_len);
    for (size_t i = 0; i < sizeof(pad); i++)
        pad[i] = k[i] ^ 0x36;
    SHA256_Init(&h->inner);
    SHA256_Update(&h->inner, pad, sizeof(pad));
    for (size_t i = 0; i < sizeof(pad); i++)
        pad[i] = k[i] ^ 0x5c;
    SHA256_Init(&h->outer);
    SHA256_Update(&h->outer, pad, sizeof(pad));
    sodium_memzero(k, sizeof(k));
    sodium_memzero(pad, sizeof(pad));
    return h;
}

void tg_apikey_hasher_hash(const tg_apikey_hasher_t *h, const char *key, size_t len, uint8_t out[32])
{
    SHA256_CTX st = h->inner;
    uint8_t inner[SHA256_DIGEST_LENGTH];
    SHA256_Update(&st, key, len);
    SHA256_Final(inner, &st);
    st = h->outer;
    SHA256_Update(&st, inner, sizeof(inner));
    SHA256_Final(out, &st);
    sodium_memzero(&st, sizeof(st));
    sodium_memzero(inner, sizeof(inner));
}

void tg_apikey_hasher_free(tg_apikey_hasher_t *h)
{
    if (h != NULL)
        sodium_free(h); /* zeroes it */
}

void tg_apikey_prefix(const char *key, size_t len, char *out, size_t cap)
{
    size_t n = len < TG_APIKEY_PREFIX_LEN ? len : TG_APIKEY_PREFIX_LEN;
    if (cap == 0)
        return;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, key, n);
    out[n] = '\0';
}
