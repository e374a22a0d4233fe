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
 * h2o may still be writing it after the connection has gone back to the idle list. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "http/http1_server.h"
#include "http/phr.h"
#include "http/upstream.h"

#define MAX_HEAD_BYTES (64 * 1024)
#define MAX_HEADERS 128
#define MAX_IDLE_PER_WORKER 1024
#define COPY_LAST_PIECE_MAX 16384

typedef struct up_conn up_conn_t;
typedef struct fwd fwd_t;

struct tg_upstream {
    h2o_loop_t *loop;
    h2o_iovec_t authority; /* Host header */
    h2o_iovec_t origin;    /* "http://authority", for rewriting Location */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    h2o_timeout_t io_timeout;
    h2o_timeout_t idle_timeout;
    h2o_linklist_t idle; /* most recently used last */
    size_t nidle;
};

struct up_conn {
    tg_upstream_t *up;
    h2o_socket_t *sock;
    fwd_t *fwd; /* NULL while idle or connecting for nobody */
    h2o_linklist_t idle_link;
    h2o_timeout_entry_t timer; /* I/O timeout while in use, idle timeout while idle */
    unsigned served;           /* responses completed on this connection */
    unsigned connected : 1;
};

enum framing { BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_UNTIL_CLOSE };

struct fwd {
    h2o_generator_t gen;
    tg_upstream_t *up;
    h2o_req_t *req;
    up_conn_t *conn;
    tg_upstream_failed_cb on_failed;
    void *arg;
    h2o_iovec_t head;  /* the request head, in the request's pool */
    h2o_iovec_t piece; /* the body piece to write next; in the client's input buffer */
    char chunk_line[24];
    tg_h1_body_kind_t body_kind;
    uint64_t body_length; /* TG_H1_BODY_LENGTH */
    unsigned head_sent : 1;   /* the head is written (or being written) on the current connection */
    unsigned has_piece : 1;   /* piece holds a piece not yet written whole */
    unsigned piece_last : 1;  /* it is the body's last */
    unsigned in_write : 1;    /* piece is part of the write in progress */
    unsigned writing : 1;     /* a write to the connection is in progress */
    unsigned body_asked : 1;  /* waiting for the client's next piece */
    unsigned body_sent : 1;   /* the request is written whole */
    unsigned body_released : 1; /* an earlier piece was released: the body cannot be sent again */
    unsigned body_stopped : 1;  /* the upstream answered first, or the client's body failed */
    unsigned retried : 1;
    unsigned started : 1;   /* h2o_start_response was called */
    unsigned done : 1;      /* the final (or error) send was made, or the client left */
    unsigned sending : 1;   /* in_flight bytes of the input buffer are with h2o */
    unsigned eof : 1;       /* the upstream closed its side */
    unsigned reusable : 1;  /* the upstream keeps the connection open */
    unsigned is_head : 1;
    unsigned idempotent : 1; /* RFC 9110 9.2.2: may be sent again */
    enum framing framing;
    size_t in_flight;
    size_t remaining; /* BODY_LENGTH */
    size_t decoded;   /* BODY_CHUNKED: payload bytes at the start of the input buffer */
    union {
        struct phr_chunked_decoder d;
        char room[64]; /* in case the library's struct grew */
    } chunked;
};

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

static void on_connect(h2o_socket_t *sock, const char *err)
{
    up_conn_t *c = sock->data;
    fwd_t *f = c->fwd;
    if (err != NULL) {
        if (f != NULL)
            fail(f, TG_UPSTREAM_DOWN);
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

static int token_in_list(h2o_iovec_t list, const char *name, size_t len)
{
    size_t i = 0;
    while (i < list.len) {
        while (i < list.len && (list.base[i] == ' ' || list.base[i] == ',' || list.base[i] == '\t'))
            i++;
        size_t s = i;
        while (i < list.len && list.base[i] != ',' && list.base[i] != ' ' && list.base[i] != '\t')
            i++;
        if (i - s == len && strncasecmp(list.base + s, name, len) == 0)
            return 1;
    }
    return 0;
}

static int is_hop_by_hop(const h2o_token_t *t, const char *name, size_t len)
{
    if (t == H2O_TOKEN_CONNECTION || t == H2O_TOKEN_KEEP_ALIVE || t == H2O_TOKEN_TE ||
        t == H2O_TOKEN_TRANSFER_ENCODING || t == H2O_TOKEN_UPGRADE || t == H2O_TOKEN_CONTENT_LENGTH)
        return 1;
    return h2o_lcstris(name, len, H2O_STRLIT("proxy-connection")) || h2o_lcstris(name, len, H2O_STRLIT("trailer"));
}

static int parse_length(const char *s, size_t len, size_t *out)
{
    size_t v = 0;
    if (len == 0 || len > 18)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (size_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

enum head_result { HEAD_WAIT, HEAD_BAD, HEAD_DONE };

/* Parses the response head at the start of the input buffer and, once complete, fills
 * req->res and starts the response. Interim 1xx responses are skipped. */
static enum head_result parse_head(fwd_t *f)
{
    h2o_req_t *req = f->req;
    h2o_buffer_t **in = &f->conn->sock->input;
    struct phr_header hdrs[MAX_HEADERS];
    size_t nh;
    int minor, status, rc;
    const char *msg;
    size_t msg_len;
    for (;;) {
        nh = MAX_HEADERS;
        rc = phr_parse_response((*in)->bytes, (*in)->size, &minor, &status, &msg, &msg_len, hdrs, &nh, 0);
        if (rc == -2)
            return (*in)->size > MAX_HEAD_BYTES ? HEAD_BAD : HEAD_WAIT;
        if (rc < 0 || status < 100 || status > 999)
            return HEAD_BAD;
        if (status >= 200)
            break;
        if (status == 101) /* upgrades are not proxied */
            return HEAD_BAD;
        h2o_buffer_consume(in, (size_t)rc);
    }

    /* The head is copied into the request's pool: the input buffer is reused for the body. */
    char *head = h2o_mem_alloc_pool(&req->pool, (size_t)rc);
    memcpy(head, (*in)->bytes, (size_t)rc);
    ptrdiff_t shift = head - (*in)->bytes;
    h2o_iovec_t connection = {NULL, 0};
    for (size_t i = 0; i < nh; i++) {
        if (hdrs[i].name == NULL) /* obsolete line folding */
            return HEAD_BAD;
        hdrs[i].name += shift;
        hdrs[i].value += shift;
        h2o_strtolower((char *)hdrs[i].name, hdrs[i].name_len);
        if (h2o_memis(hdrs[i].name, hdrs[i].name_len, H2O_STRLIT("connection"))) {
            /* several Connection fields are one list; the first is usually the only one */
            connection = connection.base == NULL ? h2o_iovec_init(hdrs[i].value, hdrs[i].value_len)
                                                 : h2o_concat(&req->pool, connection, h2o_iovec_init(H2O_STRLIT(",")),
                                                              h2o_iovec_init(hdrs[i].value, hdrs[i].value_len));
        }
    }

    size_t content_length = SIZE_MAX;
    int chunked = 0, other_coding = 0;
    req->res.status = status;
    req->res.reason = h2o_strdup(&req->pool, msg, msg_len).base;
    for (size_t i = 0; i < nh; i++) {
        const char *name = hdrs[i].name, *value = hdrs[i].value;
        size_t nlen = hdrs[i].name_len, vlen = hdrs[i].value_len;
        const h2o_token_t *t = h2o_lookup_token(name, nlen);
        if (t == H2O_TOKEN_CONTENT_LENGTH) {
            size_t v;
            if (parse_length(value, vlen, &v) != 0 || (content_length != SIZE_MAX && content_length != v))
                return HEAD_BAD;
            content_length = v;
            continue;
        }
        if (t == H2O_TOKEN_TRANSFER_ENCODING) {
            /* chunked must be the last coding; anything else is read until close */
            size_t end = vlen;
            while (end > 0 && (value[end - 1] == ' ' || value[end - 1] == '\t'))
                end--;
            if (end >= 7 && strncasecmp(value + end - 7, "chunked", 7) == 0 &&
                (end == 7 || value[end - 8] == ',' || value[end - 8] == ' '))
                chunked = 1;
            else
                other_coding = 1;
            continue;
        }
        if (is_hop_by_hop(t, name, nlen) || (connection.base != NULL && token_in_list(connection, name, nlen)))
            continue;
        if (t == H2O_TOKEN_DATE || t == H2O_TOKEN_SERVER)
            continue; /* h2o writes its own */
        if (t == H2O_TOKEN_LOCATION && vlen >= f->up->origin.len &&
            strncasecmp(value, f->up->origin.base, f->up->origin.len) == 0 &&
            (vlen == f->up->origin.len || value[f->up->origin.len] == '/')) {
            /* the upstream's own address means this gateway to the client */
            value += f->up->origin.len;
            vlen -= f->up->origin.len;
            if (vlen == 0)
                value = "/", vlen = 1;
        }
        if (t != NULL)
            h2o_add_header(&req->pool, &req->res.headers, t, NULL, value, vlen);
        else
            h2o_add_header_by_str(&req->pool, &req->res.headers, name, nlen, 0, NULL, value, vlen);
    }

    /* RFC 9112 6.3: framing of the response body, and whether the connection lives on. */
    f->reusable = minor >= 1 ? !(connection.base != NULL && token_in_list(connection, H2O_STRLIT("close")))
                             : (connection.base != NULL && token_in_list(connection, H2O_STRLIT("keep-alive")));
    if (f->is_head || status == 204 || status == 304) {
        f->framing = BODY_NONE;
        req->res.content_length = f->is_head ? content_length : SIZE_MAX;
    } else if (chunked || other_coding) {
        f->framing = chunked && !other_coding ? BODY_CHUNKED : BODY_UNTIL_CLOSE;
        if (f->framing == BODY_UNTIL_CLOSE)
            f->reusable = 0;
        req->res.content_length = SIZE_MAX;
    } else if (content_length != SIZE_MAX) {
        f->framing = BODY_LENGTH;
        f->remaining = content_length;
        req->res.content_length = content_length;
    } else {
        f->framing = BODY_UNTIL_CLOSE;
        f->reusable = 0;
        req->res.content_length = SIZE_MAX;
    }
    h2o_buffer_consume(in, (size_t)rc);
    f->started = 1;
    h2o_start_response(req, &f->gen);
    return HEAD_DONE;
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
        enum head_result r = parse_head(f);
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

static void on_fwd_dispose(void *p)
{
    fwd_t *f = p;
    if (f->conn != NULL)
        conn_close(f->conn, 0);
}

/* ---- the request head ---- */

static char *append(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* The request head for the upstream: the request line, Host, the client's end-to-end headers
 * (not hop-by-hop ones, nor those its Connection header names), then the caller's own lines
 * (`extra`) LAST, so that nothing the client sent can name them away, then the framing. */
static void build_request(fwd_t *f, h2o_iovec_t path, h2o_iovec_t extra)
{
    h2o_req_t *req = f->req;
    tg_upstream_t *up = f->up;

    h2o_iovec_t connection = {NULL, 0};
    for (ssize_t ci = -1; (ci = h2o_find_header(&req->headers, H2O_TOKEN_CONNECTION, ci)) != -1;) {
        h2o_iovec_t v = req->headers.entries[ci].value;
        connection = connection.base == NULL ? v : h2o_concat(&req->pool, connection, h2o_iovec_init(H2O_STRLIT(",")), v);
    }
    size_t cap = req->method.len + path.len + up->authority.len + extra.len + 96; /* + the fixed lines below */
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        cap += h->name->len + h->value.len + 4;
    }
    char *buf = h2o_mem_alloc_pool(&req->pool, cap), *p = buf;
    p = append(p, req->method.base, req->method.len);
    *p++ = ' ';
    p = append(p, path.base, path.len);
    p = append(p, H2O_STRLIT(" HTTP/1.1\r\nhost: "));
    p = append(p, up->authority.base, up->authority.len);
    p = append(p, H2O_STRLIT("\r\n"));
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        const h2o_token_t *t = h2o_iovec_is_token(h->name) ? (const h2o_token_t *)h->name : NULL;
        if (t == H2O_TOKEN_HOST || t == H2O_TOKEN_EXPECT || t == H2O_TOKEN_HTTP2_SETTINGS ||
            is_hop_by_hop(t, h->name->base, h->name->len) ||
            (connection.base != NULL && token_in_list(connection, h->name->base, h->name->len)))
            continue; /* (Expect: the body is complete already, there is no 100-continue to wait for) */
        p = append(p, h->name->base, h->name->len);
        p = append(p, H2O_STRLIT(": "));
        p = append(p, h->value.base, h->value.len);
        p = append(p, H2O_STRLIT("\r\n"));
    }
    p = append(p, extra.base, extra.len);
    /* tollgate frames the body itself: the length it checked, or chunks it decoded */
    if (f->body_kind == TG_H1_BODY_LENGTH) {
        char num[24], *q = num + sizeof(num);
        uint64_t v = f->body_length;
        do
            *--q = (char)('0' + v % 10);
        while ((v /= 10) != 0);
        p = append(p, H2O_STRLIT("content-length: "));
        p = append(p, q, (size_t)(num + sizeof(num) - q));
        p = append(p, H2O_STRLIT("\r\n"));
    } else if (f->body_kind == TG_H1_BODY_CHUNKED) {
        p = append(p, H2O_STRLIT("transfer-encoding: chunked\r\n"));
    }
    p = append(p, H2O_STRLIT("\r\n"));
    f->head = h2o_iovec_init(buf, (size_t)(p - buf));
}

/* ---- public ---- */

void tg_upstream_forward(tg_upstream_t *up, h2o_req_t *req, h2o_iovec_t path, h2o_iovec_t extra,
                         tg_upstream_failed_cb on_failed, void *arg)
{
    if (up == NULL) { /* the worker's client could not be created (out of memory at start) */
        on_failed(req, arg, TG_UPSTREAM_DOWN);
        return;
    }
    fwd_t *f = h2o_mem_alloc_shared(&req->pool, sizeof(*f), on_fwd_dispose);
    memset(f, 0, sizeof(*f));
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
    build_request(f, path, extra);
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

tg_upstream_t *tg_upstream_create(h2o_loop_t *loop, const h2o_url_t *url, uint64_t io_timeout_ms,
                                  uint64_t keepalive_ms)
{
    tg_upstream_t *up = calloc(1, sizeof(*up));
    if (up == NULL)
        return NULL;
    up->loop = loop;
    up->authority = url->authority;
    char origin[512];
    int n = snprintf(origin, sizeof(origin), "http://%.*s", (int)url->authority.len, url->authority.base);
    up->origin = h2o_strdup(NULL, origin, n > 0 && (size_t)n < sizeof(origin) ? (size_t)n : 0);
    h2o_timeout_init(loop, &up->io_timeout, io_timeout_ms);
    h2o_timeout_init(loop, &up->idle_timeout, keepalive_ms);
    h2o_linklist_init_anchor(&up->idle);

    /* Resolved once: the upstream is a fixed address; a name that does not resolve leaves every
     * call a 502 upstream_unavailable, which the operator sees in the log and the metrics. */
    char host[256], port[8];
    snprintf(host, sizeof(host), "%.*s", (int)url->host.len, url->host.base);
    snprintf(port, sizeof(port), "%u", (unsigned)h2o_url_get_port(url));
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc == 0 && res != NULL && res->ai_addrlen <= sizeof(up->addr)) {
        memcpy(&up->addr, res->ai_addr, res->ai_addrlen);
        up->addrlen = res->ai_addrlen;
    } else {
        fprintf(stderr, "tollgate: upstream host \"%s\" does not resolve: %s\n", host,
                rc != 0 ? gai_strerror(rc) : "no address");
    }
    if (res != NULL)
        freeaddrinfo(res);
    return up;
}
