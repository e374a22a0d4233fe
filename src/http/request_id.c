/* request_id.c - see request_id.h. */
#include "http/request_id.h"

#include <sodium.h>
#include <string.h>

static _Thread_local struct {
    unsigned char key[crypto_stream_chacha20_KEYBYTES];
    uint64_t counter;
    int seeded;
} id_stream;

/* The next n bytes (n <= 64) of this thread's stream. */
static void stream_bytes(unsigned char *out, size_t n)
{
    unsigned char nonce[crypto_stream_chacha20_NONCEBYTES] = {0};
    if (!id_stream.seeded) {
        randombytes_buf(id_stream.key, sizeof(id_stream.key));
        id_stream.seeded = 1;
    }
    uint64_t c = id_stream.counter++;
    memcpy(nonce, &c, sizeof(c) < sizeof(nonce) ? sizeof(c) : sizeof(nonce));
    crypto_stream_chacha20(out, n, nonce, id_stream.key);
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
    unsigned char bin[TG_REQUEST_ID_NEW_LEN / 2];
    stream_bytes(bin, sizeof(bin));
    sodium_bin2hex(out, TG_REQUEST_ID_NEW_LEN + 1, bin, sizeof(bin));
    return TG_REQUEST_ID_NEW_LEN;
}

uint32_t tg_request_id_random_u32(void)
{
    unsigned char b[4];
    stream_bytes(b, sizeof(b));
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
