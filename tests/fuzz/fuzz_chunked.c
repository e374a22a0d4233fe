/* fuzz_chunked.c - the strict chunked request-body decoder against arbitrary bytes (libFuzzer).
 * Clients write these bytes, and the gateway forwards what the decoder makes of them.
 * Properties: the data never outgrows the input; fed in two pieces split at any point (the first
 * byte of the input chooses where), the decoder gives the same verdict, the same data and the
 * same bytes after the body as fed whole; and a body it accepts, re-encoded as one chunk,
 * decodes to the same data. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/chunked.h"

#define MAX_INPUT 65536

static ssize_t whole(const uint8_t *in, size_t n, char *out, size_t *out_len)
{
    tg_chunked_t d = {0};
    memcpy(out, in, n);
    *out_len = n;
    return tg_chunked_decode(&d, out, out_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char a[MAX_INPUT], b[MAX_INPUT], c[MAX_INPUT + 64];
    if (size < 1 || size > MAX_INPUT)
        return 0;
    size_t split = data[0] % size;
    data++, size--;

    size_t alen;
    ssize_t ra = whole(data, size, a, &alen);
    if (alen > size || (ra >= 0 && (size_t)ra > size - alen))
        abort();

    /* two pieces: the data of the first call is taken away before the second */
    tg_chunked_t d = {0};
    size_t blen = 0, n1 = split < size ? split : size, n2;
    memcpy(b, data, n1);
    size_t got = n1;
    ssize_t rb = tg_chunked_decode(&d, b, &got);
    blen = got;
    if (rb == -2) {
        n2 = size - n1;
        memcpy(b + blen, data + n1, n2);
        got = n2;
        rb = tg_chunked_decode(&d, b + blen, &got);
        blen += got;
    } else if (rb >= 0) {
        rb += (ssize_t)(size - n1); /* the second piece is all "after the body" */
    }
    if (ra == -1 ? rb != -1 : (rb != ra || blen != alen || memcmp(a, b, alen) != 0))
        abort();

    if (ra >= 0) { /* re-encode the data as one chunk and decode again */
        static const char hex[] = "0123456789abcdef";
        size_t k = 0, len = alen;
        char digits[20];
        do
            digits[k++] = hex[len & 15];
        while ((len >>= 4) != 0);
        size_t m = 0;
        if (alen != 0) {
            while (k > 0)
                c[m++] = digits[--k];
            c[m++] = '\r', c[m++] = '\n';
            memcpy(c + m, a, alen);
            m += alen;
            c[m++] = '\r', c[m++] = '\n';
        }
        memcpy(c + m, "0\r\n\r\n", 5);
        m += 5;
        tg_chunked_t e = {0};
        size_t clen = m;
        if (tg_chunked_decode(&e, c, &clen) != 0 || clen != alen || memcmp(c, a, alen) != 0)
            abort();
    }
    return 0;
}
