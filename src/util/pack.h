/* pack.h - little-endian integers and length-prefixed strings in byte buffers, for the formats
 * tollgate writes itself (the metering log's records, the usage journal's rows). The writers
 * size their buffers from the field limits, so packing does not check room; unpacking checks
 * every length against the end of the input. */
#ifndef TG_PACK_H
#define TG_PACK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline void tg_le_put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline void tg_le_put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t tg_le_get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static inline uint64_t tg_le_get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* s (at most cap bytes are read, cap <= 256) as a length byte and its bytes; returns the byte
 * after them. */
static inline unsigned char *tg_pack_str(unsigned char *p, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap < 256 ? cap : 255);
    *p++ = (unsigned char)n;
    memcpy(p, s, n);
    return p + n;
}

/* Reads a string packed by tg_pack_str into out[cap], NUL-terminated, and advances *p. -1 if it
 * runs past end or does not fit out. */
static inline int tg_unpack_str(const unsigned char **p, const unsigned char *end, char *out, size_t cap)
{
    if (*p >= end)
        return -1;
    size_t n = *(*p)++;
    if (n >= cap || (size_t)(end - *p) < n)
        return -1;
    memcpy(out, *p, n);
    out[n] = '\0';
    *p += n;
    return 0;
}

/* Reads 8 little-endian bytes and advances *p; -1 if fewer remain before end. */
static inline int tg_unpack_u64(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    if ((size_t)(end - *p) < 8)
        return -1;
    *v = tg_le_get64(*p);
    *p += 8;
    return 0;
}

#endif
