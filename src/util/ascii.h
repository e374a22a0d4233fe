/* ascii.h - ASCII case folding eight bytes at a time.
 *
 * Header names are lowercased on every call (the client's request head in http/http1_server.c,
 * the upstream's response head in http/upstream_head.c). h2o_strtolower goes a byte at a time,
 * ~7 instructions per byte under callgrind (~700 a call); this folds a 64-bit word with a few
 * arithmetic operations. Bytes outside 'A'..'Z', including those >= 0x80, are left as they are,
 * exactly as h2o_strtolower does. Pure; any thread. */
#ifndef TG_ASCII_H
#define TG_ASCII_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Lowercases the n bytes at s in place: 'A'..'Z' become 'a'..'z', every other byte is kept. */
static inline void tg_ascii_lower(char *s, size_t n)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = ones * 0x80;
    for (; n >= 8; s += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        /* Per byte b < 0x80 (no carries cross bytes: each sum stays below 0x100): its high bit
         * is set in b + (0x80 - 'A') when b >= 'A', and in b + (0x7f - 'Z') when b > 'Z'. */
        uint64_t low7 = w & ~highs;
        uint64_t upper = ((low7 + ones * (0x80 - 'A')) ^ (low7 + ones * (0x7f - 'Z'))) & ~w & highs;
        w |= upper >> 2; /* 0x80 >> 2 = 0x20, the case bit */
        memcpy(s, &w, 8);
    }
    for (; n > 0; s++, n--)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s + ('a' - 'A'));
}

#endif
