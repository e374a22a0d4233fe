/* chunked.h - a strict decoder of HTTP/1.1 chunked request bodies (RFC 9112 7.1).
 *
 * Why not picohttpparser's phr_decode_chunked (which tollgate uses for upstream responses): it
 * is lenient in ways a front door must not be. It reads "0x10" as a last chunk of size 0 followed
 * by an extension "x10", accepts bare LF and any bytes in chunk extensions and trailers, and
 * skips any number of CRs. A request smuggled past tollgate with such a body would be framed
 * differently by a stricter upstream; here any of those is an error and the connection closes.
 *
 * Accepted: 1 to 15 hex digits (no sign, prefix or blanks before them), optional extensions
 * (blanks, then ';' and visible characters, blanks and obs-text, up to TG_CHUNKED_MAX_LINE
 * bytes), CRLF, the data, CRLF; after the last chunk, trailer lines that start with a token
 * character (no obs-fold), up to TG_CHUNKED_MAX_TRAILERS bytes in all, then CRLF. Trailers are
 * dropped (tollgate forwards none). Pure code: no I/O, no allocation. */
#ifndef TG_CHUNKED_H
#define TG_CHUNKED_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TG_CHUNKED_MAX_LINE 4096
#define TG_CHUNKED_MAX_TRAILERS 8192

typedef struct tg_chunked {
    int state;
    unsigned digits;
    uint64_t left;     /* data bytes left in the current chunk */
    uint64_t declared; /* sum of the chunk sizes seen so far (saturating) */
    size_t line;       /* bytes of the current size line or trailer section */
} tg_chunked_t;

/* Decodes buf[0..*len) in place: the data bytes are moved to the start of buf and *len is set to
 * their count. Returns -2 if the body is not complete yet (call again with the next bytes, after
 * the caller took the data), -1 on a framing error, or the number of bytes that followed the
 * body (they now sit at buf + *len, e.g. a pipelined request) when the body is complete. */
ssize_t tg_chunked_decode(tg_chunked_t *d, char *buf, size_t *len);

#endif
