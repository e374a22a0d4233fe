/* http1_server.h - tollgate's HTTP/1.1 server for the gateway port (src/http/http1_server.c).
 *
 * It reads and checks a request head, runs the gateway's handler on the head alone (through an
 * h2o_req_t, so h2o's request object, memory pool, prefilters and ostreams are used as before),
 * and hands the request body to whoever forwards it, piece by piece, only when asked: a call
 * that is refused never has its body read. Internal to src/http/. */
#ifndef TG_HTTP1_SERVER_H
#define TG_HTTP1_SERVER_H

#include <stdint.h>

#include "h2o.h"

struct tg_worker;

/* Bounds of what a client can make tollgate hold or wait for (docs/configuration.md). */
#define TG_H1_HEAD_TIMEOUT_MS 10000   /* a request head, or the next one on a keep-alive connection */
#define TG_H1_BODY_TIMEOUT_MS 10000   /* between two reads of an admitted request's body */
#define TG_H1_LINGER_MS 2000          /* closing after an answer sent before the body was read */
#define TG_H1_RCVBUF (256 * 1024)     /* SO_RCVBUF of client sockets: h2o reads a socket until
                                       * EAGAIN, so this bounds one read, and so the buffer */
#define TG_H1_LINGER_BYTES (1024 * 1024) /* input read and discarded while lingering, at most */

/* Per worker: call on the worker's loop thread before accepting. */
void tg_h1_init_worker(struct tg_worker *w);
/* Takes over an accepted gateway connection (worker's loop thread). */
void tg_h1_accept(struct tg_worker *w, h2o_socket_t *sock);
/* Closes every connection of the worker (at the end of its thread). */
void tg_h1_close_all(struct tg_worker *w);

typedef enum { TG_H1_BODY_NONE = 0, TG_H1_BODY_LENGTH, TG_H1_BODY_CHUNKED } tg_h1_body_kind_t;

/* How the request's body is framed; *length is set for TG_H1_BODY_LENGTH. */
tg_h1_body_kind_t tg_h1_body_kind(h2o_req_t *req, uint64_t *length);

/* Receives the next piece of the body: `data` stays valid (it is in the connection's input
 * buffer) until the next tg_h1_body_read or the end of the request. `last` is set on the final
 * piece (which may be empty). On an error (`status` 400 bad chunked framing, 413 over
 * server.max_body_bytes, 408 the client stopped sending, or 499 the client went away) nothing
 * more comes and the connection is closed after the response. */
typedef void (*tg_h1_body_cb)(void *arg, h2o_iovec_t data, int last, int status);

/* Releases the previous piece and asks for the next; cb fires once, possibly before this
 * returns (when the bytes are already buffered). Sends "100 Continue" first if the client asked
 * for it. Only for a request whose body is not NONE, and not after the last piece. */
void tg_h1_body_read(h2o_req_t *req, tg_h1_body_cb cb, void *arg);

/* The forwarder no longer wants the body (the upstream answered or failed first): nothing more
 * is read, and the connection closes after the response. */
void tg_h1_body_abandon(h2o_req_t *req);

/* The body error that ended the request (see tg_h1_body_cb), or 0. */
int tg_h1_body_error(h2o_req_t *req);

/* The request's body bytes read so far, and the response's body bytes sent (the head not
 * counted, as nginx's $body_bytes_sent). */
void tg_h1_byte_counts(h2o_req_t *req, uint64_t *in, uint64_t *out);

#endif
