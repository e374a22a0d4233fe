/* request_id.c - see request_id.h. */
#include "http/request_id.h"

#include <sodium.h>
#include <string.h>

/* The thread's ChaCha20 stream is drawn STREAM_BLOCK bytes at a time, one crypto_stream_chacha20
 * call (a new nonce, the counter) per block: one call per id cost 1,101 instructions per proxied
 * call under callgrind (stop 27), most of it the cipher's setup and a whole 64-byte block for 16
 * bytes; now 311. 512 bytes are 32 ids, and the eight 64-byte blocks libsodium's AVX2 code does
 * at once.
 * The bytes are handed out in order and never twice, so ids stay 128 bits of the keystream:
 * unpredictable without the key, which never leaves the thread. */
#define STREAM_BLOCK 512

static _Thread_local struct {
    unsigned char key[crypto_stream_chacha20_KEYBYTES];
    uint64_t counter; /* the nonce of the next block */
    unsigned char block[STREAM_BLOCK];
    size_t left; /* bytes of block not handed out yet, at its end */
    int seeded;
} id_stream;

/* The next n bytes (n <= STREAM_BLOCK) of this thread's stream. A remainder shorter than n is
 * skipped, never reused. */
static void stream_bytes(unsigned char *out, size_t n)
{
    if (id_stream.left < n) {
        unsigned char nonce[crypto_stream_chacha20_NONCEBYTES] = {0};
        if (!id_stream.seeded) {
            randombytes_buf(id_stream.key, sizeof(id_stream.key));
            id_stream.seeded = 1;
        }
        uint64_t c = id_stream.counter++;
        memcpy(nonce, &c, sizeof(c) < sizeof(nonce) ? sizeof(c) : sizeof(nonce));
        crypto_stream_chacha20(id_stream.block, sizeof(id_stream.block), nonce, id_stream.key);
        id_stream.left = sizeof(id_stream.block);
    }
    memcpy(out, id_stream.block + sizeof(id_stream.block) - id_stream.left, n);
    id_stream.left -= n;
}

int tg_request_id_ok(const char *s, size_t n)
{
    if (n == 0 || n > TG_REQUEST_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

size_t tg_request_id_new(char *out)
{
    /* A table, not sodium_bin2hex's constant-time arithmetic: a request id is no secret. It is
     * sent to the client in X-Request-Id and written to the access log; settlement goes by the
     * reservation id (gateway/reservations.c: its own randombytes_buf, res_ + 32 hex), never by
     * a request id. What a cache-timing observer of this loop could learn, the response tells. */
    static const char hex[16] = "0123456789abcdef";
    unsigned char bin[TG_REQUEST_ID_NEW_LEN / 2];
    stream_bytes(bin, sizeof(bin));
    for (size_t i = 0; i < sizeof(bin); i++) {
        out[2 * i] = hex[bin[i] >> 4];
        out[2 * i + 1] = hex[bin[i] & 15];
    }
    out[TG_REQUEST_ID_NEW_LEN] = '\0';
    return TG_REQUEST_ID_NEW_LEN;
}

uint32_t tg_request_id_random_u32(void)
{
    unsigned char b[4];
    stream_bytes(b, sizeof(b));
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
