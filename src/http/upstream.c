/* upstream.c - per-worker HTTP/1.1 client to the upstream API; see upstream.h.
 *
 * Objects: tg_upstream_t (one per worker loop) owns its connections (up_conn_t, malloc'd). A
 * forwarded request is a fwd_t in the request's pool. While a request uses a connection the
 * two point at each other; whichever ends first detaches them. Everything runs on the
 * worker's loop thread.
 *
 * Buffers: response bytes stay in the connection's input buffer until h2o has written them
 * (generator proceed), and the socket is not read meanwhile, so a slow client slows the
 * upstream instead of growing memory. The last piece of a response is copied into the
 * request's pool (or, when large, the input buffer itself is handed to the pool), because
 * h2o may still be writing it after the connection has gone back to the idle list.
 *
 * The heads (the request head written, the response head parsed) are in upstream_head.c. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "http/upstream_int.h"
#include "util/log.h"

#define MAX_IDLE_PER_WORKER 1024
#define COPY_LAST_PIECE_MAX 16384
#define TG_UPSTREAM_RCVBUF (256 * 1024) /* SO_RCVBUF of upstream connections: bounds one read */

static void on_read(h2o_socket_t *sock, const char *err);
static void pump(fwd_t *f);

/* ---- connections ---- */

static void timer_set(up_conn_t *c, h2o_timeout_t *which)
{
    if (h2o_timeout_is_linked(&c->timer))
        h2o_timeout_unlink(&c->timer);
    if (which != NULL)
        h2o_timeout_link(c->up->loop, which, &c->timer);
}

/* Closes c. If h2o may still be writing bytes of c's input buffer for its request, the buffer
 * is handed to the request's pool first (unless the request is being disposed). */
static void conn_close(up_conn_t *c, int request_alive)
{
    fwd_t *f = c->fwd;
    if (f != NULL) {
        if (f->sending && request_alive) {
            h2o_buffer_link_to_pool(c->sock->input, &f->req->pool);
            h2o_buffer_init(&c->sock->input, &h2o_socket_buffer_prototype);
        }
        f->conn = NULL;
        c->fwd = NULL;
    }
    if (h2o_linklist_is_linked(&c->idle_link)) {
        h2o_linklist_unlink(&c->idle_link);
        c->up->nidle--;
    }
    timer_set(c, NULL);
    h2o_socket_close(c->sock);
    free(c);
}

static void conn_release(up_conn_t *c)
{
    tg_upstream_t *up = c->up;
    c->fwd = NULL;
    c->served++;
    if (up->nidle >= MAX_IDLE_PER_WORKER) {
        conn_close(c, 0);
        return;
    }
    if (!h2o_socket_is_reading(c->sock))
        h2o_socket_read_start(c->sock, on_read);
    h2o_linklist_insert(&up->idle, &c->idle_link);
    up->nidle++;
    timer_set(c, &up->idle_timeout);
}

static void on_timer(h2o_timeout_entry_t *entry);

static up_conn_t *conn_take_idle(tg_upstream_t *up)
{
    if (h2o_linklist_is_empty(&up->idle))
        return NULL;
    up_conn_t *c = H2O_STRUCT_FROM_MEMBER(up_conn_t, idle_link, up->idle.prev);
    h2o_linklist_unlink(&c->idle_link);
    up->nidle--;
    timer_set(c, NULL);
    return c;
}

static void on_connect(h2o_socket_t *sock, const char *err);

static up_conn_t *conn_open(tg_upstream_t *up)
{
    if (up->addrlen == 0)
        return NULL;
    up_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->up = up;
    c->timer.cb = on_timer;
    if ((c->sock = h2o_socket_connect(up->loop, (struct sockaddr *)&up->addr, up->addrlen, on_connect)) == NULL) {
        free(c);
        return NULL;
    }
    c->sock->data = c;
    /* As for client sockets (http1_server.h): h2o reads a socket until EAGAIN, and the kernel
     * grows an unfixed receive buffer to tcp_rmem's maximum (32 MB here) under a fast download,
     * which then lands in our buffer in one read while the client is slower: a 50 MB download
     * grew anonymous memory by 32 MB. A fixed buffer bounds one read. */
    int rcvbuf = TG_UPSTREAM_RCVBUF;
    setsockopt(h2o_socket_get_fd(c->sock), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    return c;
}

/* ---- the request's side ---- */

/* The client's body is no longer wanted (the upstream answered or failed before it was sent
 * whole): the client's side stops reading it and closes the connection after the response. */
static void stop_body(fwd_t *f)
{
    if (f->body_kind == TG_H1_BODY_NONE || f->body_sent || f->body_stopped)
        return;
    f->body_stopped = 1;
    f->reusable = 0;
    f->body_asked = 0;
    tg_h1_body_abandon(f->req);
}

static void fail(fwd_t *f, tg_upstream_failure_t why)
{
    if (f->conn != NULL)
        conn_close(f->conn, 1);
    f->done = 1;
    stop_body(f);
    f->on_failed(f->req, f->arg, why);
}

/* The response had started and cannot be completed: end it short (the client sees a broken
 * transfer, never a truncated body passed off as whole). */
static void abort_response(fwd_t *f)
{
    if (f->conn != NULL)
        conn_close(f->conn, 1);
    f->done = 1;
    h2o_send(f->req, NULL, 0, H2O_SEND_STATE_ERROR);
}

static void flush(fwd_t *f);

/* Opens a new connection for f, which sends the request once connected; or fails f. */
static void attach_new_conn(fwd_t *f)
{
    up_conn_t *c = conn_open(f->up);
    if (c == NULL) {
        fail(f, TG_UPSTREAM_DOWN);
        return;
    }
    c->fwd = f;
    f->conn = c;
    timer_set(c, &f->up->io_timeout);
}

/* f's connection failed before any of the response arrived. A pooled one was most likely closed
 * by the upstream while idle, so the request is tried once more on a new connection; but once
 * it was written whole the upstream may have acted on it before closing, so then only an
 * idempotent method is sent again (as nginx does) and anything else gets 502. A body of which a
 * piece was already released (streamed) cannot be sent again either. */
static void retry_or_fail(fwd_t *f, int written)
{
    up_conn_t *c = f->conn;
    if (c->served == 0 || f->retried || (written && !f->idempotent) || f->body_released || f->body_stopped) {
        fail(f, TG_UPSTREAM_DOWN);
        return;
    }
    f->retried = 1;
    f->eof = 0;
    f->head_sent = f->in_write = f->writing = f->body_sent = 0;
    conn_close(c, 1);
    attach_new_conn(f);
}

static void on_body(void *arg, h2o_iovec_t data, int last, int status);

/* Asks the client's side for the next piece of the body (the previous one is released). */
static void ask_body(fwd_t *f)
{
    if (f->has_piece)
        f->body_released = 1;
    f->has_piece = 0;
    f->body_asked = 1;
    tg_h1_body_read(f->req, on_body, f);
}

static void on_write_done(h2o_socket_t *sock, const char *err)
{
    up_conn_t *c = sock->data;
    fwd_t *f = c->fwd;
    if (f == NULL)
        return;
    f->writing = 0;
    int wrote_piece = f->in_write;
    f->in_write = 0;
    if (err != NULL) {
        if (!f->started)
            retry_or_fail(f, 0);
        return;
    }
    if (f->started || f->body_stopped)
        return; /* the upstream answered already: the rest of the body is not sent */
    if (wrote_piece) {
        if (f->piece_last)
            f->body_sent = 1; /* the last piece stays held: the request may be sent again */
        else
            ask_body(f);
    }
    if (!f->done && f->conn != NULL)
        flush(f);
}

/* Writes what is ready: the head (once per connection) and the current body piece, framed as
 * the head said (Content-Length, or chunked when the client's body was chunked). */
static void flush(fwd_t *f)
{
    up_conn_t *c = f->conn;
    if (c == NULL || f->writing || f->done || !c->connected)
        return;
    h2o_iovec_t v[5];
    size_t n = 0;
    if (!f->head_sent)
        v[n++] = f->head;
    int piece = f->has_piece && !f->body_sent && !f->body_stopped;
    if (piece) {
        if (f->body_kind == TG_H1_BODY_CHUNKED && f->piece.len != 0) {
            static const char hex[] = "0123456789abcdef";
            char tmp[20], *p = f->chunk_line;
            size_t k = 0, len = f->piece.len;
            do
                tmp[k++] = hex[len & 15];
            while ((len >>= 4) != 0);
            while (k > 0)
                *p++ = tmp[--k];
            *p++ = '\r';
            *p++ = '\n';
            v[n++] = h2o_iovec_init(f->chunk_line, (size_t)(p - f->chunk_line));
            v[n++] = f->piece;
            v[n++] = h2o_iovec_init(H2O_STRLIT("\r\n"));
        } else if (f->piece.len != 0) {
            v[n++] = f->piece;
        }
        if (f->body_kind == TG_H1_BODY_CHUNKED && f->piece_last)
            v[n++] = h2o_iovec_init(H2O_STRLIT("0\r\n\r\n"));
    }
    if (n == 0)
        return;
    f->head_sent = 1;
    f->in_write = piece;
    f->writing = 1;
    if (f->body_kind == TG_H1_BODY_NONE)
        f->body_sent = 1;
    timer_set(c, &f->up->io_timeout);
    h2o_socket_write(c->sock, v, n, on_write_done);
}

/* The client's side has the next piece of the body (or failed). */
static void on_body(void *arg, h2o_iovec_t data, int last, int status)
{
    fwd_t *f = arg;
    f->body_asked = 0;
    if (status != 0) {
        f->body_stopped = 1;
        if (!f->started && !f->done)
            fail(f, TG_UPSTREAM_CLIENT); /* the upstream got half a request: its connection closes */
        else
            f->reusable = 0;
        return;
    }
    f->piece = data;
    f->has_piece = 1;
    f->piece_last = last;
    flush(f);
}

static void send_request(fwd_t *f)
{
    flush(f);
}

static void on_ready(h2o_socket_t *sock, const char *err, tg_upstream_failure_t why);

/* https:// upstreams: the TCP connection is up, the TLS handshake is next. */
static void on_handshake(h2o_socket_t *sock, const char *err)
{
    /* OpenSSL verified the chain and the name (tls.c puts the host in the context's verify
     * parameters); h2o 2.2's own name check after it knows DNS names only, so its mismatch
     * report for an IP address upstream is not a failure. */
    if (err == h2o_socket_error_ssl_cert_name_mismatch)
        err = NULL;
    on_ready(sock, err, TG_UPSTREAM_TLS);
}

static void on_connect(h2o_socket_t *sock, const char *err)
{
    up_conn_t *c = sock->data;
    if (err == NULL && c->up->tls != NULL) {
        h2o_socket_ssl_handshake(sock, c->up->tls, c->up->server_name, on_handshake);
        return;
    }
    on_ready(sock, err, TG_UPSTREAM_DOWN);
}

static void on_ready(h2o_socket_t *sock, const char *err, tg_upstream_failure_t why)
{
    up_conn_t *c = sock->data;
    fwd_t *f = c->fwd;
    if (err != NULL) {
        if (f != NULL)
            fail(f, why);
        else
            conn_close(c, 0);
        return;
    }
    c->connected = 1;
    h2o_socket_read_start(sock, on_read);
    if (f != NULL)
        send_request(f);
    else
        conn_release(c);
}

/* Passes the first n bytes of the input buffer to h2o and waits for proceed. */
static void send_piece(fwd_t *f, size_t n)
{
    up_conn_t *c = f->conn;
    f->sending = 1;
    f->in_flight = n;
    h2o_socket_read_stop(c->sock);
    timer_set(c, NULL); /* waiting on the client now, which h2o times */
    h2o_iovec_t b = h2o_iovec_init(c->sock->input->bytes, n);
    h2o_send(f->req, &b, 1, H2O_SEND_STATE_IN_PROGRESS);
}

/* The last n bytes at the start of the input buffer end the response. */
static void send_last(fwd_t *f, size_t n)
{
    up_conn_t *c = f->conn;
    h2o_req_t *req = f->req;
    h2o_iovec_t b = {NULL, 0};
    if ((c->sock->input->size != n || f->eof) && f->reusable)
        f->reusable = 0; /* bytes past the response, or closed: not reusable */
    if (n <= COPY_LAST_PIECE_MAX) {
        if (n != 0)
            b = h2o_strdup(&req->pool, c->sock->input->bytes, n);
        h2o_buffer_consume(&c->sock->input, n);
    } else {
        h2o_buffer_t *buf = c->sock->input;
        h2o_buffer_link_to_pool(buf, &req->pool);
        h2o_buffer_init(&c->sock->input, &h2o_socket_buffer_prototype);
        b = h2o_iovec_init(buf->bytes, n);
    }
    f->conn = NULL;
    if (f->reusable) {
        conn_release(c);
    } else {
        c->fwd = NULL;
        conn_close(c, 0);
    }
    f->done = 1;
    h2o_send(req, &b, b.len != 0 ? 1 : 0, H2O_SEND_STATE_FINAL);
}

static void pump(fwd_t *f)
{
    if (f->sending || f->done || f->conn == NULL)
        return;
    h2o_buffer_t *in = f->conn->sock->input;
    switch (f->framing) {
    case BODY_NONE:
        send_last(f, 0);
        return;
    case BODY_LENGTH: {
        size_t avail = in->size < f->remaining ? in->size : f->remaining;
        if (avail == f->remaining) {
            send_last(f, avail);
        } else if (f->eof) {
            abort_response(f); /* closed before Content-Length bytes */
        } else if (avail != 0) {
            f->remaining -= avail;
            send_piece(f, avail);
        }
        return;
    }
    case BODY_CHUNKED:
        if (in->size > f->decoded) {
            size_t n = in->size - f->decoded;
            ssize_t rc = phr_decode_chunked(&f->chunked.d, in->bytes + f->decoded, &n);
            if (rc == -1) {
                abort_response(f);
                return;
            }
            in->size = f->decoded + n + (rc > 0 ? (size_t)rc : 0);
            f->decoded += n;
            if (rc >= 0) {
                if (rc > 0)
                    f->reusable = 0;
                size_t last = f->decoded;
                f->decoded = 0;
                send_last(f, last);
                return;
            }
        }
        if (f->eof)
            abort_response(f);
        else if (f->decoded != 0)
            send_piece(f, f->decoded);
        return;
    case BODY_UNTIL_CLOSE:
        if (f->eof)
            send_last(f, in->size);
        else if (in->size != 0)
            send_piece(f, in->size);
        return;
    }
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    up_conn_t *c = sock->data;
    fwd_t *f = c->fwd;
    if (f == NULL) { /* idle: the upstream closed it, or sent what nobody asked for */
        conn_close(c, 0);
        return;
    }
    if (err != NULL) {
        f->eof = 1;
        h2o_socket_read_stop(sock);
    }
    timer_set(c, f->eof ? NULL : &f->up->io_timeout);
    if (!f->started) {
        enum head_result r = tg_upstream_parse_head(f);
        if (r == HEAD_BAD) {
            fail(f, TG_UPSTREAM_DOWN);
            return;
        }
        if (r == HEAD_WAIT) {
            if (!f->eof)
                return;
            if (sock->input->size == 0)
                retry_or_fail(f, 1); /* closed without a byte of answer */
            else
                fail(f, TG_UPSTREAM_DOWN); /* closed in the middle of the head */
            return;
        }
        stop_body(f); /* an answer before the whole body: the rest is not sent */
    }
    pump(f);
}

static void on_timer(h2o_timeout_entry_t *entry)
{
    up_conn_t *c = H2O_STRUCT_FROM_MEMBER(up_conn_t, timer, entry);
    fwd_t *f = c->fwd;
    if (f == NULL)
        conn_close(c, 0); /* idle too long */
    else if (!f->started)
        fail(f, TG_UPSTREAM_TIMEOUT);
    else
        abort_response(f);
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    fwd_t *f = H2O_STRUCT_FROM_MEMBER(fwd_t, gen, gen);
    up_conn_t *c = f->conn;
    if (c == NULL || f->done)
        return;
    h2o_buffer_consume(&c->sock->input, f->in_flight);
    if (f->framing == BODY_CHUNKED)
        f->decoded -= f->in_flight;
    f->in_flight = 0;
    f->sending = 0;
    if (!f->eof) {
        h2o_socket_read_start(c->sock, on_read);
        timer_set(c, &f->up->io_timeout);
    }
    pump(f);
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    fwd_t *f = H2O_STRUCT_FROM_MEMBER(fwd_t, gen, gen);
    f->done = 1;
    if (f->conn != NULL)
        conn_close(f->conn, 1);
}

/* ---- public ---- */

void tg_upstream_forward_dispose(tg_upstream_fwd_t *f)
{
    if (f != NULL && f->conn != NULL)
        conn_close(f->conn, 0);
}

void tg_upstream_forward(tg_upstream_t *up, h2o_req_t *req, h2o_iovec_t path, h2o_iovec_t extra,
                         tg_upstream_failed_cb on_failed, void *arg, tg_upstream_fwd_t **fwd)
{
    *fwd = NULL;
    if (up == NULL) { /* the worker's client could not be created (out of memory at start) */
        on_failed(req, arg, TG_UPSTREAM_DOWN);
        return;
    }
    fwd_t *f = h2o_mem_alloc_pool(&req->pool, sizeof(*f)); /* disposed by the caller's hook */
    memset(f, 0, sizeof(*f));
    *fwd = f;
    f->gen.proceed = on_proceed;
    f->gen.stop = on_stop;
    f->up = up;
    f->req = req;
    f->on_failed = on_failed;
    f->arg = arg;
    h2o_iovec_t m = req->method;
    f->is_head = h2o_memis(m.base, m.len, H2O_STRLIT("HEAD"));
    f->idempotent = f->is_head || h2o_memis(m.base, m.len, H2O_STRLIT("GET")) ||
                    h2o_memis(m.base, m.len, H2O_STRLIT("PUT")) || h2o_memis(m.base, m.len, H2O_STRLIT("DELETE")) ||
                    h2o_memis(m.base, m.len, H2O_STRLIT("OPTIONS")) || h2o_memis(m.base, m.len, H2O_STRLIT("TRACE"));
    f->body_kind = tg_h1_body_kind(req, &f->body_length);
    tg_upstream_build_head(f, path, extra);
    if (f->body_kind == TG_H1_BODY_LENGTH && f->body_length == 0)
        f->body_kind = TG_H1_BODY_NONE, f->body_sent = 1; /* "content-length: 0" is in the head */
    if (f->body_kind != TG_H1_BODY_NONE) {
        ask_body(f); /* a body already buffered arrives now, and goes out with the head */
        if (f->done)
            return;
    }

    up_conn_t *c = conn_take_idle(up);
    if (c == NULL) {
        attach_new_conn(f);
        return;
    }
    c->fwd = f;
    f->conn = c;
    send_request(f);
}

tg_upstream_t *tg_upstream_create(h2o_loop_t *loop, const h2o_url_t *url, SSL_CTX *tls, uint64_t io_timeout_ms,
                                  uint64_t keepalive_ms)
{
    tg_upstream_t *up = calloc(1, sizeof(*up));
    if (up == NULL)
        return NULL;
    up->loop = loop;
    up->authority = url->authority;
    up->tls = tls;
    char origin[512];
    int n = snprintf(origin, sizeof(origin), "%s://%.*s", tls != NULL ? "https" : "http", (int)url->authority.len,
                     url->authority.base);
    up->origin = h2o_strdup(NULL, origin, n > 0 && (size_t)n < sizeof(origin) ? (size_t)n : 0);
    h2o_timeout_init(loop, &up->io_timeout, io_timeout_ms);
    h2o_timeout_init(loop, &up->idle_timeout, keepalive_ms);
    h2o_linklist_init_anchor(&up->idle);

    /* Resolved once: the upstream is a fixed address; a name that does not resolve leaves every
     * call a 502 upstream_unavailable, which the operator sees in the log and the metrics. */
    char host[256], port[8];
    snprintf(host, sizeof(host), "%.*s", (int)url->host.len, url->host.base);
    if (tls != NULL && (up->server_name = strdup(host)) == NULL)
        up->tls = NULL, up->addrlen = 0; /* out of memory: every call a 502 rather than plain text */
    snprintf(port, sizeof(port), "%u", (unsigned)h2o_url_get_port(url));
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc == 0 && res != NULL && res->ai_addrlen <= sizeof(up->addr)) {
        memcpy(&up->addr, res->ai_addr, res->ai_addrlen);
        up->addrlen = res->ai_addrlen;
    } else {
        tg_log(TG_LOG_ERROR, "upstream host \"%s\" does not resolve: %s", host,
                rc != 0 ? gai_strerror(rc) : "no address");
    }
    if (res != NULL)
        freeaddrinfo(res);
    return up;
}
