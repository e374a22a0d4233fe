/* upstream_int.h - what upstream.c (connections, streaming) and upstream_head.c (the request
 * head written, the response head parsed) share. Internal to src/http/. */
#ifndef TG_UPSTREAM_INT_H
#define TG_UPSTREAM_INT_H

#include "http/http1_server.h"
#include "http/phr.h"
#include "http/upstream.h"

#define MAX_HEAD_BYTES (64 * 1024)
#define MAX_HEADERS 128

typedef struct up_conn up_conn_t;
typedef struct fwd fwd_t;

struct tg_upstream {
    h2o_loop_t *loop;
    h2o_iovec_t authority; /* Host header */
    h2o_iovec_t origin;    /* "http(s)://authority", for rewriting Location */
    SSL_CTX *tls;          /* https://: verifies the upstream (tls.c); NULL: plain HTTP */
    char *server_name;     /* https://: the host, sent as SNI and checked against the certificate */
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

/* Writes f's request head (request line, Host, the client's end-to-end headers, `extra`, the
 * framing) into f->head, in the request's pool. */
void tg_upstream_build_head(fwd_t *f, h2o_iovec_t path, h2o_iovec_t extra);

enum head_result { HEAD_WAIT, HEAD_BAD, HEAD_DONE };

/* Parses the response head at the start of f's connection's input buffer and, once complete,
 * fills req->res and starts the response. Interim 1xx responses are skipped. */
enum head_result tg_upstream_parse_head(fwd_t *f);

#endif
