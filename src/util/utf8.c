/* utf8.c - see utf8.h. */
#include "util/utf8.h"

#include <stddef.h>
#include <string.h>

#define CUT_SHORT ((size_t)-1)

/* The length of the well-formed sequence at s (n bytes left): 1 to 4; 0 if there is none;
 * CUT_SHORT if s holds the valid start of a sequence that the end of the text cuts off. */
static size_t sequence_at(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* past U+10FFFF */
    } else {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if (i == n)
            return CUT_SHORT;
        if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xBF))
            return 0;
    }
    return len;
}

void tg_utf8_scrub(char *s)
{
    unsigned char *p = (unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t len = sequence_at(p + i, n - i);
        if (len == CUT_SHORT) {
            p[i] = '\0';
            return;
        }
        if (len == 0) {
            p[i++] = '?';
            continue;
        }
        i += len;
    }
}
