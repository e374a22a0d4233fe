/* request_id.h - X-Request-Id values for the gateway port (internal to src/http/).
 *
 * A client's value is kept when it is 1-TG_REQUEST_ID_MAX characters of [A-Za-z0-9._:-] (what
 * request ids look like: UUIDs, hex, ULIDs, "trace:span"); anything else, which could carry
 * header or log injection, is replaced by one of ours: 32 hex digits from a ChaCha20 stream per
 * thread, keyed once from the system's random source (randombytes_buf itself is a getrandom(2)
 * system call per request) and drawn 512 bytes at a time. Ids are not secrets (the client and
 * the access log see them; settlement goes by reservation id), but they are unpredictable. Used by the proxy (proxy.c) and by the HTTP/1 front for the
 * refusals it answers itself (http1_server.c). Any thread; the stream is per thread. */
#ifndef TG_REQUEST_ID_H
#define TG_REQUEST_ID_H

#include <stddef.h>
#include <stdint.h>

#define TG_REQUEST_ID_MAX 128
#define TG_REQUEST_ID_NEW_LEN 32 /* a generated id's length */

/* 1 when s[0..n) is a request id to keep. */
int tg_request_id_ok(const char *s, size_t n);

/* Writes a new id and a NUL into out (at least TG_REQUEST_ID_NEW_LEN + 1 bytes); returns its
 * length. */
size_t tg_request_id_new(char *out);

/* A uniform 32-bit number from the same per-thread stream (access-log sampling). */
uint32_t tg_request_id_random_u32(void);

#endif
