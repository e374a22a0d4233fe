/* upstream.h - tollgate's HTTP/1.1 client to the upstream API, one per gateway worker.
 *
 * Why not h2o 2.2's proxy: its socket pool detaches a pooled connection from the event loop
 * when it is returned and re-attaches it when it is taken again (export/import), which costs
 * about four epoll_ctl and two fcntl calls per request and held tollgate to 0.6x of nginx.
 * Here a keep-alive connection stays registered in its worker's loop for its whole life: an
 * idle connection keeps reading (so an upstream close is seen at once) and a request simply
 * writes to it.
 *
 * What it does per request: writes the request head, then streams the client's body as the
 * HTTP/1 front (http1_server.h) hands it over, piece by piece (the next piece is asked for only
 * when the previous one is written: backpressure), framed by Content-Length or chunked;
 * parses the response head with picohttpparser, drops hop-by-hop headers (RFC 9110 7.6.1),
 * and streams the body with Content-Length, chunked or close-delimited framing to the client,
 * reading the upstream only as fast as the client takes the data. A request that finds its
 * pooled connection already closed by the upstream is retried once on a new connection (only an
 * idempotent one if it had been written whole: the upstream may have acted on it).
 * Internal to src/http/. */
#ifndef TG_UPSTREAM_H
#define TG_UPSTREAM_H

#include "h2o.h"

typedef struct tg_upstream tg_upstream_t;

/* DOWN: refused, closed or garbage; TIMEOUT: no answer in time; CLIENT: the client's body
 * failed (tg_h1_body_error says how) before the upstream answered; TLS: the https:// upstream's
 * certificate did not verify (unknown CA, wrong name, expired) or the handshake failed. */
typedef enum {
    TG_UPSTREAM_DOWN = 1,
    TG_UPSTREAM_TIMEOUT = 2,
    TG_UPSTREAM_CLIENT = 3,
    TG_UPSTREAM_TLS = 4
} tg_upstream_failure_t;

/* Called instead of a response when the upstream did not answer: the callee must respond to
 * req. Not called once a response has started (a failure then ends the response short). */
typedef void (*tg_upstream_failed_cb)(h2o_req_t *req, void *arg, tg_upstream_failure_t why);

/* Creates the client of one worker; call on that worker's loop thread. tls (shared, read-only,
 * owned by the caller and kept while the client lives) makes it an https:// client: each new
 * connection does a verified TLS handshake with url's host as SNI. io_timeout_ms bounds each
 * wait on the upstream (connect and handshake, the response head, each read of the body);
 * keepalive_ms closes connections idle for that long. Resolves url's host once, now. */
tg_upstream_t *tg_upstream_create(h2o_loop_t *loop, const h2o_url_t *url, SSL_CTX *tls, uint64_t io_timeout_ms,
                                  uint64_t keepalive_ms);

/* Forwards req (its method, the given path with query, end-to-end headers and body) and
 * responds to it with the upstream's answer: status, end-to-end headers, then the body.
 * `extra` is zero or more complete header lines ("name: value\r\n", in req's pool or static)
 * written after the client's headers and after hop-by-hop processing, so a client's
 * Connection header cannot remove them; the caller has removed any client header that could
 * be mistaken for them. h2o_start_response is called when the head has arrived, so
 * prefilters see the upstream's status and headers.
 * The forward's state is in req's pool, with no dispose hook of its own: the caller's, which it
 * has anyway, calls tg_upstream_forward_dispose(*fwd) when req's pool is cleared (a hook is a
 * malloc and a free per call: h2o_mem_alloc_shared). *fwd is set before anything that could end
 * the request runs, to NULL when nothing was started (up NULL: on_failed has been called). */
typedef struct fwd tg_upstream_fwd_t;
void tg_upstream_forward(tg_upstream_t *up, h2o_req_t *req, h2o_iovec_t path, h2o_iovec_t extra,
                         tg_upstream_failed_cb on_failed, void *arg, tg_upstream_fwd_t **fwd);

/* The end of f's request (its pool being cleared): gives back or closes the upstream connection
 * f still holds. f may be NULL. */
void tg_upstream_forward_dispose(tg_upstream_fwd_t *f);

#endif
