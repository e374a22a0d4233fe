/* http1_server.c - tollgate's HTTP/1.1 server for the gateway port; see http1_server.h.
 *
 * Why not h2o 2.2's HTTP/1 server, which the admin port still uses: for any request with a
 * Content-Length or Transfer-Encoding, h2o 2.2 (lib/http1.c, handle_incoming_request) reads the
 * WHOLE body before any handler runs, spooling it to an mmap'd temporary file past a threshold,
 * and there is no hook between the head and the body. A 95 MB upload without a key was read
 * before its 401 (16 such uploads: 259 MB RSS, 1.5 GB of temporary files). h2o also keeps
 * Content-Length and Transfer-Encoding out of req->headers and resolves conflicts silently
 * (Transfer-Encoding wins, the first Content-Length wins), hands obs-fold lines over as nameless
 * headers, and accepts bare LF line ends and lenient chunk sizes ("0x10" is a last chunk).
 *
 * Here: the head is parsed with picohttpparser and checked strictly (RFC 9112 2.2, 3, 5, 6):
 * bare LF, control characters, obs-fold, non-token method or field names, a missing or repeated
 * Host in HTTP/1.1, Content-Length with Transfer-Encoding, differing Content-Lengths (identical
 * repeats are folded into one), any Transfer-Encoding but exactly "chunked", Transfer-Encoding
 * in HTTP/1.0, a request-target not in origin form, and the HTTP/2 preface are answered 400 and
 * the connection is closed; versions other than 1.0 and 1.1 get 505, a head over
 * server.max_header_bytes 431, a declared body over server.max_body_bytes 413. Then the
 * gateway's handler runs on the head alone. The body is read only when the forwarder asks for
 * it (tg_h1_body_read), one piece at a time, with the socket not read while a piece is out, so
 * memory per connection is bounded by one socket read; chunked bodies go through the strict
 * decoder in chunked.c. A response sent before the body was read whole (every refusal) says
 * Connection: close, and the connection then closes gracefully: write side shut down, input
 * discarded for at most TG_H1_LINGER_MS and TG_H1_LINGER_BYTES (nginx's lingering close), so
 * the client reads the answer instead of a reset.
 *
 * Objects: one h1_conn_t per connection (malloc'd, on its worker's list), holding one h2o_req_t
 * at a time; pipelined requests wait in the input buffer. Everything runs on the worker's loop.
 * While a request is processed and its body is not being read, the socket stays registered
 * for reading with h2o's DONT_READ flag (an EPOLL_CTL_DEL/ADD pair per request cost about 6% of
 * the process's CPU); if the client sends something meanwhile the socket is really stopped
 * until the response is done. */
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "gateway/gateway.h"
#include "http/chunked.h"
#include "http/http1_server.h"
#include "http/http_int.h"
#include "http/phr.h"
#include "http/request_id.h"
#include "log/access_log.h"
#include "metrics/metrics.h"
#include "util/ascii.h"
#include "util/clock.h"
#include "util/decimal.h"

#define MAX_HEADERS 128

enum conn_state { C_HEAD, C_BUSY, C_LINGER };

typedef struct h1_conn {
    h2o_conn_t super; /* first: req.conn points here */
    tg_worker_t *worker;
    h2o_socket_t *sock;
    h2o_linklist_t link; /* the worker's connections */
    h2o_timeout_entry_t timer;
    enum conn_state state;
    size_t prev_len; /* bytes picohttpparser has seen of an incomplete head */
    size_t linger_bytes;
    unsigned req_live : 1;    /* req is initialised and must be disposed */
    unsigned parked : 1;      /* registered for reading with DONT_READ set */
    unsigned sent_head : 1;   /* the response's head was written */
    unsigned writing : 1;     /* a write is in progress */
    unsigned expect_100 : 1;  /* the client waits for 100 Continue */
    unsigned body_done : 1;   /* the body was read whole */
    unsigned body_want : 1;   /* the forwarder waits for a piece */
    unsigned body_reading : 1;
    tg_h1_body_kind_t body_kind;
    uint64_t body_left; /* TG_H1_BODY_LENGTH: bytes not yet handed out */
    uint64_t body_total;
    uint64_t bytes_in, bytes_out; /* body bytes read from and sent to the client (access log) */
    int body_err;
    size_t body_given; /* bytes at the start of the input buffer handed out and not released */
    tg_chunked_t chunked;
    tg_h1_body_cb body_cb;
    void *body_arg;
    /* a response send that waits for the 100 Continue write to finish */
    h2o_iovec_t *stash;
    size_t stash_cnt;
    h2o_send_state_t stash_state;
    int has_stash;
    h2o_ostream_t ostr_final;
    char errbuf[1024]; /* an answer written by the front itself (reply_error) */
    /* While handle_head checks a parsed head: what reply_error needs for the X-Request-Id and
     * the access-log line of a refusal (pointers into the input buffer; NULL otherwise). */
    const struct phr_header *early_hdrs;
    size_t early_nh;
    const char *early_method, *early_path;
    size_t early_method_len, early_path_len;
    h2o_req_t req;    /* last: large */
} h1_conn_t;

static void on_read(h2o_socket_t *sock, const char *err);
static void handle_head(h1_conn_t *c);
static void body_pump(h1_conn_t *c);
static void park(h1_conn_t *c);
static void resume(h1_conn_t *c);

static const h2o_conn_callbacks_t conn_callbacks;

/* ---- connection life ---- */

static void timer_set(h1_conn_t *c, h2o_timeout_t *which, h2o_timeout_cb cb)
{
    if (h2o_timeout_is_linked(&c->timer))
        h2o_timeout_unlink(&c->timer);
    if (which != NULL) {
        c->timer.cb = cb;
        h2o_timeout_link(c->worker->ctx.loop, which, &c->timer);
    }
}

static void dispose_req(h1_conn_t *c)
{
    if (c->req_live) {
        c->req_live = 0;
        h2o_dispose_request(&c->req);
    }
}

static void close_conn(h1_conn_t *c)
{
    timer_set(c, NULL, NULL);
    dispose_req(c);
    h2o_linklist_unlink(&c->link);
    h2o_socket_close(c->sock);
    free(c);
}

static void on_linger_timeout(h2o_timeout_entry_t *entry)
{
    close_conn(H2O_STRUCT_FROM_MEMBER(h1_conn_t, timer, entry));
}

/* Closes after an answer the client may still be sending a body to: shuts the write side down
 * (the client sees the end of the response), discards at most TG_H1_LINGER_BYTES of input and
 * closes when the client does or after TG_H1_LINGER_MS. Closing at once with unread input
 * would reset the connection, and a reset can destroy the answer before the client read it. */
static void start_linger(h1_conn_t *c)
{
    dispose_req(c);
    c->state = C_LINGER;
    /* Over TLS the FIN comes without a close_notify: the answer was delimited by its
     * Content-Length, so the client knows it has all of it. */
    shutdown(h2o_socket_get_fd(c->sock), SHUT_WR);
    h2o_buffer_consume(&c->sock->input, c->sock->input->size);
    resume(c);
    timer_set(c, &c->worker->h1_linger_timeout, on_linger_timeout);
}

static void on_head_timeout(h2o_timeout_entry_t *entry)
{
    close_conn(H2O_STRUCT_FROM_MEMBER(h1_conn_t, timer, entry)); /* slowloris, or an idle keep-alive */
}

/* Waits for (or parses the already buffered) next request head. */
static void start_head(h1_conn_t *c)
{
    c->state = C_HEAD;
    c->prev_len = 0;
    c->sent_head = c->expect_100 = c->body_done = c->body_want = c->body_reading = 0;
    c->has_stash = 0;
    c->body_kind = TG_H1_BODY_NONE;
    c->body_left = c->body_total = 0;
    c->bytes_in = c->bytes_out = 0;
    c->body_err = 0;
    c->body_given = 0;
    c->body_cb = NULL;
    memset(&c->chunked, 0, sizeof(c->chunked));
    timer_set(c, &c->worker->h1_head_timeout, on_head_timeout);
    resume(c);
    if (c->sock->input->size != 0)
        handle_head(c);
}

/* Nothing is to be read now (the request is processed, or a body piece is out): the socket
 * stays registered but unread (see the top of the file). */
static void park(h1_conn_t *c)
{
    if (!c->parked && h2o_socket_is_reading(c->sock)) {
        h2o_socket_dont_read(c->sock, 1);
        c->parked = 1;
    }
}

static void resume(h1_conn_t *c)
{
    if (c->parked) {
        h2o_socket_dont_read(c->sock, 0);
        c->parked = 0;
    }
    if (!h2o_socket_is_reading(c->sock))
        h2o_socket_read_start(c->sock, on_read);
}

/* Answers a request that never reached the gateway (bad framing, too large) and closes. */
static void on_error_sent(h2o_socket_t *sock, const char *err)
{
    h1_conn_t *c = sock->data;
    c->writing = 0;
    if (err != NULL)
        close_conn(c);
    else
        start_linger(c);
}

/* The refusal's request id into out (TG_REQUEST_ID_MAX + 1 bytes): the client's first
 * X-Request-Id when the head parsed and the value is well formed, else a new one. */
static size_t early_request_id(const h1_conn_t *c, char *out)
{
    for (size_t i = 0; c->early_hdrs != NULL && i < c->early_nh; i++) {
        const struct phr_header *h = &c->early_hdrs[i];
        if (h->name == NULL || h->name_len != 12 || strncasecmp(h->name, "x-request-id", 12) != 0)
            continue;
        if (!tg_request_id_ok(h->value, h->value_len))
            break;
        memcpy(out, h->value, h->value_len);
        out[h->value_len] = '\0';
        return h->value_len;
    }
    return tg_request_id_new(out);
}

/* The access-log line of a refusal answered here, before routing: always written (refusals are
 * not sampled). Method and path are the client's when the request line parsed, else null; the
 * client is the TCP peer (the forwarding headers of a refused head are not read). */
static void log_refusal(h1_conn_t *c, int status, const char *type, const char *rid, uint64_t bytes_out)
{
    tg_access_log_t *log = c->worker->srv->deps.access_log;
    if (!tg_access_log_enabled(log))
        return;
    char client[NI_MAXHOST];
    int v6;
    client[tg_http_peer_address(&c->super, client, &v6)] = '\0';
    size_t path_len = c->early_path_len;
    const char *q = c->early_path != NULL ? memchr(c->early_path, '?', path_len) : NULL;
    if (q != NULL)
        path_len = (size_t)(q - c->early_path);
    tg_access_record_t r = {
        .time_ns = tg_clock_now_ns(),
        .request_id = rid,
        .client = client[0] != '\0' ? client : NULL,
        .method = c->early_method,
        .method_len = c->early_method_len,
        .path = c->early_path,
        .path_len = path_len,
        .decision = "refused",
        .error = type,
        .status = status,
        .upstream_status = -1,
        .upstream_ns = -1,
        .total_ns = 0,
        .bytes_out = bytes_out,
    };
    char line[TG_ACCESS_LOG_LINE_MAX];
    size_t n = tg_access_log_format(&r, line, sizeof(line));
    tg_access_log_append(log, line, n);
}

static void reply_error(h1_conn_t *c, int status, const char *reason, const char *type, const char *message)
{
    char json[512], rid[TG_REQUEST_ID_MAX + 1];
    size_t n = tg_gateway_error_json(type, message, json, sizeof(json));
    size_t rid_len = early_request_id(c, rid);
    /* head at most ~150 bytes + the id: within errbuf beside the JSON */
    int len = snprintf(c->errbuf, sizeof(c->errbuf) - sizeof(json),
                       "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: application/json\r\n"
                       "Content-Length: %zu\r\nX-Request-Id: %.*s\r\nServer: tollgate\r\n\r\n",
                       status, reason, n, (int)rid_len, rid);
    memcpy(c->errbuf + len, json, n);
    log_refusal(c, status, type, rid, n);
    h2o_iovec_t v = h2o_iovec_init(c->errbuf, (size_t)len + n);
    tg_metrics_count_response(status);
    timer_set(c, NULL, NULL);
    park(c);
    c->state = C_BUSY;
    c->writing = 1;
    h2o_socket_write(c->sock, &v, 1, on_error_sent);
}

/* ---- the request head ---- */

/* RFC 9110 5.6.2 tchar, as a table: it runs on every byte of every header name. */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1,
    ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1,
    ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1,
    ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1,
    ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1,
    ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static int all_tchar(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!tchar[(unsigned char)s[i]])
            return 0;
    return n != 0;
}

/* Every line ends in CRLF (RFC 9112 2.2: picohttpparser also takes a bare LF). Control
 * characters elsewhere in the head (but HTAB in values) are refused by picohttpparser itself. */
static int clean_head(const char *s, size_t n)
{
    const char *p = s, *end = s + n, *lf;
    while ((lf = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        if (lf == s || lf[-1] != '\r')
            return 0;
        p = lf + 1;
    }
    return 1;
}

/* A Content-Length value: digits only, no more than 18 of them. */
static int parse_length(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 18)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Host: a reg-name or IP literal with an optional port; no userinfo, path or blanks. */
static int valid_host(const char *s, size_t n)
{
    if (n == 0 || n > 255)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              strchr(".-_~:[]%!$&'()*+,;=", ch) != NULL))
            return 0;
    }
    return 1;
}

/* The Connection options of a request that matter here, from one pass over the list: "close"
 * and "keep-alive" (compared without case). Two scans (one per option) cost ~200 instructions
 * a call under callgrind. */
static void connection_options(const char *v, size_t n, int *close, int *keep_alive)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (i - s == 5 && strncasecmp(v + s, "close", 5) == 0)
            *close = 1;
        else if (i - s == 10 && strncasecmp(v + s, "keep-alive", 10) == 0)
            *keep_alive = 1;
    }
}

#define BAD(msg) (reply_error(c, 400, "Bad Request", "bad_request", msg), -1)

/* Checks the parsed head and fills the request. Returns 0, or -1 when it answered already. */
static int build_request(h1_conn_t *c, size_t head_len, const char *method, size_t method_len, const char *path,
                         size_t path_len, int minor, struct phr_header *hdrs, size_t nh)
{
    const tg_config_t *cfg = c->worker->srv->deps.cfg;
    h2o_req_t *req = &c->req;
    if (!clean_head(c->sock->input->bytes, head_len))
        return BAD("The request head has a bare LF or a control character.");
    if (minor != 0 && minor != 1) {
        reply_error(c, 505, "HTTP Version Not Supported", "http_version_not_supported",
                    "Only HTTP/1.0 and HTTP/1.1 are served.");
        return -1;
    }
    if (!all_tchar(method, method_len))
        return BAD("The request method is not a token.");
    if (path_len == 0 || path[0] != '/')
        return BAD("The request target must be an absolute path (origin form).");

    /* The head moves to the request's pool: the input buffer is reused for the body. */
    char *head = h2o_mem_alloc_pool(&req->pool, head_len);
    memcpy(head, c->sock->input->bytes, head_len);
    ptrdiff_t shift = head - c->sock->input->bytes;

    h2o_vector_reserve(&req->pool, &req->headers, nh);
    h2o_iovec_t host = {NULL, 0};
    int hosts = 0, te = 0, cls = 0, close = 0, keep_alive = 0;
    uint64_t cl = 0;
    for (size_t i = 0; i < nh; i++) {
        if (hdrs[i].name == NULL)
            return BAD("Obsolete line folding is not accepted.");
        char *name = (char *)hdrs[i].name + shift;
        const char *value = hdrs[i].value + shift;
        size_t nlen = hdrs[i].name_len, vlen = hdrs[i].value_len;
        if (!all_tchar(name, nlen))
            return BAD("A header name is not a token.");
        tg_ascii_lower(name, nlen);
        const h2o_token_t *t = h2o_lookup_token(name, nlen);
        if (t == H2O_TOKEN_CONTENT_LENGTH) {
            uint64_t v;
            if (parse_length(value, vlen, &v) != 0 || (cls != 0 && v != cl))
                return BAD("Content-Length is not a number, or two differ.");
            cl = v;
            cls++;
        } else if (t == H2O_TOKEN_TRANSFER_ENCODING) {
            if (te++ != 0 || vlen != 7 || strncasecmp(value, "chunked", 7) != 0)
                return BAD("Transfer-Encoding must be exactly \"chunked\", once.");
        } else if (t == H2O_TOKEN_HOST) {
            if (hosts++ != 0 || !valid_host(value, vlen))
                return BAD("Host is invalid or repeated.");
            host = h2o_iovec_init(value, vlen);
            h2o_add_header(&req->pool, &req->headers, t, NULL, value, vlen); /* not forwarded (upstream.c) */
        } else if (t == H2O_TOKEN_EXPECT) {
            if (vlen != 12 || strncasecmp(value, "100-continue", 12) != 0) {
                reply_error(c, 417, "Expectation Failed", "expectation_failed", "Only Expect: 100-continue is known.");
                return -1;
            }
            c->expect_100 = minor >= 1;
        } else if (t == H2O_TOKEN_UPGRADE || t == H2O_TOKEN_HTTP2_SETTINGS) {
            continue; /* no upgrades: answered over HTTP/1.1 (h2c is not served) */
        } else {
            if (t == H2O_TOKEN_CONNECTION) {
                connection_options(value, vlen, &close, &keep_alive);
            }
            if (t != NULL)
                h2o_add_header(&req->pool, &req->headers, t, NULL, value, vlen);
            else
                h2o_add_header_by_str(&req->pool, &req->headers, name, nlen, 0, NULL, value, vlen);
        }
    }
    if (minor == 1 && hosts == 0)
        return BAD("An HTTP/1.1 request needs a Host header.");
    if (te != 0 && (cls != 0 || minor == 0))
        return BAD("Transfer-Encoding with Content-Length, or in HTTP/1.0, is ambiguous framing.");
    if (te != 0) {
        c->body_kind = TG_H1_BODY_CHUNKED;
    } else if (cls != 0) {
        if (cfg->server.max_body_bytes != 0 && cl > cfg->server.max_body_bytes) {
            tg_metrics_count_decision(TG_OUT_TOO_LARGE);
            reply_error(c, 413, "Content Too Large", "request_too_large",
                        "The request body exceeds the gateway's limit (server.max_body_bytes).");
            return -1;
        }
        c->body_kind = TG_H1_BODY_LENGTH;
        c->body_left = cl;
        c->body_done = cl == 0; /* nothing to read: forwarded with Content-Length: 0 */
    }
    if (c->body_kind == TG_H1_BODY_NONE)
        c->expect_100 = 0;

    req->input.method = h2o_iovec_init(method + shift, method_len);
    req->input.path = h2o_iovec_init(path + shift, path_len);
    req->input.scheme = c->sock->ssl != NULL ? &H2O_URL_SCHEME_HTTPS : &H2O_URL_SCHEME_HTTP;
    if (host.base != NULL)
        req->input.authority = host;
    req->version = 0x100 | minor;
    req->http1_is_persistent = minor == 1 ? !close : keep_alive && !close;
    return 0;
}

static void handle_head(h1_conn_t *c)
{
    const tg_config_t *cfg = c->worker->srv->deps.cfg;
    h2o_buffer_t *in = c->sock->input;
    size_t cap = cfg->server.max_header_bytes;
    size_t len = in->size < cap ? in->size : cap;
    const char *method, *path;
    size_t method_len, path_len, nh = MAX_HEADERS;
    int minor;
    struct phr_header hdrs[MAX_HEADERS];
    int rc = phr_parse_request(in->bytes, len, &method, &method_len, &path, &path_len, &minor, hdrs, &nh, c->prev_len);
    if (rc == -2) {
        if (in->size >= cap) {
            tg_metrics_count_decision(TG_OUT_TOO_LARGE);
            reply_error(c, 431, "Request Header Fields Too Large", "request_header_too_large",
                        "The request headers exceed the gateway's limit (server.max_header_bytes).");
        } else {
            c->prev_len = len;
        }
        return;
    }
    if (rc < 0) {
        static const char preface[] = "PRI * HTTP/2";
        if (len >= sizeof(preface) - 1 && memcmp(in->bytes, preface, sizeof(preface) - 1) == 0)
            reply_error(c, 400, "Bad Request", "bad_request", "HTTP/2 is not served; use HTTP/1.1.");
        else
            reply_error(c, 400, "Bad Request", "bad_request", "The request head is malformed.");
        return;
    }

    h2o_init_request(&c->req, &c->super, NULL);
    c->req_live = 1;
    c->req._ostr_top = &c->ostr_final;
    c->early_hdrs = hdrs;
    c->early_nh = nh;
    c->early_method = method, c->early_method_len = method_len;
    c->early_path = path, c->early_path_len = path_len;
    int refused = build_request(c, (size_t)rc, method, method_len, path, path_len, minor, hdrs, nh);
    c->early_hdrs = NULL; /* hdrs is on this stack frame */
    c->early_method = c->early_path = NULL;
    c->early_nh = c->early_method_len = c->early_path_len = 0;
    if (refused != 0)
        return;
    h2o_buffer_consume(&c->sock->input, (size_t)rc);
    c->state = C_BUSY;
    timer_set(c, NULL, NULL);
    park(c); /* and not a byte of the body before the gateway admits the call */
    h2o_process_request(&c->req);
}

/* ---- the response ---- */

static void on_send_complete(h2o_socket_t *sock, const char *err);
static void on_send_next(h2o_socket_t *sock, const char *err);

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* Exactly v's digits: flatten_head's 160 bytes for the fixed text hold both numbers. */
static char *put_u64(char *p, uint64_t v)
{
    return p + tg_decimal_u64(p, v);
}

static h2o_iovec_t flatten_head(h1_conn_t *c)
{
    h2o_req_t *req = &c->req;
    h2o_timestamp_t ts;
    h2o_get_timestamp(req->conn->ctx, &req->pool, &ts);
    const char *reason = req->res.reason != NULL ? req->res.reason : "";
    size_t rlen = strnlen(reason, 256);
    size_t cap = 160 + rlen + H2O_TIMESTR_RFC1123_LEN;
    for (size_t i = 0; i < req->res.headers.size; i++)
        cap += req->res.headers.entries[i].name->len + req->res.headers.entries[i].value.len + 4;
    char *buf = h2o_mem_alloc_pool(&req->pool, cap), *p = buf;
    int status = req->res.status >= 100 && req->res.status <= 999 ? req->res.status : 500;
    p = put(p, H2O_STRLIT("HTTP/1.1 "));
    p = put_u64(p, (uint64_t)status);
    *p++ = ' ';
    p = put(p, reason, rlen);
    p = put(p, H2O_STRLIT("\r\nDate: "));
    p = put(p, ts.str->rfc1123, strlen(ts.str->rfc1123));
    p = req->http1_is_persistent ? put(p, H2O_STRLIT("\r\nConnection: keep-alive"))
                                 : put(p, H2O_STRLIT("\r\nConnection: close"));
    if (req->res.content_length != SIZE_MAX) {
        p = put(p, H2O_STRLIT("\r\nContent-Length: "));
        p = put_u64(p, req->res.content_length);
    }
    p = put(p, H2O_STRLIT("\r\nServer: tollgate\r\n"));
    for (size_t i = 0; i < req->res.headers.size; i++) {
        const h2o_header_t *h = &req->res.headers.entries[i];
        p = put(p, h->name->base, h->name->len);
        p = put(p, H2O_STRLIT(": "));
        p = put(p, h->value.base, h->value.len);
        p = put(p, H2O_STRLIT("\r\n"));
    }
    p = put(p, H2O_STRLIT("\r\n"));
    return h2o_iovec_init(buf, (size_t)(p - buf));
}

/* Whether the response can only end by closing: no length, not chunked, and a body allowed. */
static int close_delimited(h2o_req_t *req)
{
    int st = req->res.status;
    if (req->res.content_length != SIZE_MAX || st < 200 || st == 204 || st == 304 ||
        h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD")))
        return 0;
    return h2o_find_header(&req->res.headers, H2O_TOKEN_TRANSFER_ENCODING, -1) == -1;
}

static void final_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t cnt, h2o_send_state_t state)
{
    h1_conn_t *c = H2O_STRUCT_FROM_MEMBER(h1_conn_t, ostr_final, self);
    if (c->writing) { /* the 100 Continue is being written: send when it is done */
        c->stash = h2o_mem_alloc_pool(&req->pool, sizeof(*bufs) * (cnt != 0 ? cnt : 1));
        if (cnt != 0)
            memcpy(c->stash, bufs, sizeof(*bufs) * cnt);
        c->stash_cnt = cnt;
        c->stash_state = state;
        c->has_stash = 1;
        return;
    }
    h2o_iovec_t *v = h2o_mem_alloc_pool(&req->pool, sizeof(*v) * (cnt + 1));
    size_t n = 0;
    if (state == H2O_SEND_STATE_ERROR)
        req->http1_is_persistent = 0;
    if (!c->sent_head) {
        /* a body not read whole (a refusal, or an early answer) ends the connection */
        if ((c->body_kind != TG_H1_BODY_NONE && !c->body_done) || close_delimited(req))
            req->http1_is_persistent = 0;
        v[n++] = flatten_head(c);
        c->sent_head = 1;
    }
    if (cnt != 0)
        memcpy(v + n, bufs, sizeof(*bufs) * cnt);
    for (size_t i = 0; i < cnt; i++)
        c->bytes_out += bufs[i].len;
    n += cnt;
    int more = h2o_send_state_is_in_progress(state);
    c->writing = 1;
    h2o_socket_write(c->sock, v, n, more ? on_send_next : on_send_complete);
}

static void on_send_next(h2o_socket_t *sock, const char *err)
{
    h1_conn_t *c = sock->data;
    c->writing = 0;
    if (err != NULL)
        close_conn(c); /* the client went away: disposing the request stops the generator */
    else
        h2o_proceed_response(&c->req);
}

static void on_send_complete(h2o_socket_t *sock, const char *err)
{
    h1_conn_t *c = sock->data;
    c->writing = 0;
    if (err != NULL) {
        close_conn(c);
        return;
    }
    int body_whole = c->body_kind == TG_H1_BODY_NONE || c->body_done;
    if (!c->req.http1_is_persistent || !body_whole) {
        start_linger(c);
        return;
    }
    /* The last piece of the body (and any decoded chunk data) leaves the buffer now: pipelined
     * bytes after it are the next request. */
    h2o_buffer_consume(&c->sock->input, c->body_given);
    dispose_req(c);
    start_head(c);
}

/* ---- the request body ---- */

static void on_continue_sent(h2o_socket_t *sock, const char *err)
{
    h1_conn_t *c = sock->data;
    c->writing = 0;
    if (err != NULL) {
        close_conn(c);
        return;
    }
    if (c->has_stash) { /* the response overtook the body */
        c->has_stash = 0;
        final_send(&c->ostr_final, &c->req, c->stash, c->stash_cnt, c->stash_state);
        return;
    }
    body_pump(c);
}

static void on_body_timeout(h2o_timeout_entry_t *entry);

static void body_fail(h1_conn_t *c, int status)
{
    c->body_err = status;
    c->req.http1_is_persistent = 0;
    timer_set(c, NULL, NULL);
    c->body_reading = 0;
    park(c);
    if (c->body_want && c->body_cb != NULL) {
        c->body_want = 0;
        c->body_cb(c->body_arg, h2o_iovec_init(NULL, 0), 0, status);
    }
}

static void on_body_timeout(h2o_timeout_entry_t *entry)
{
    body_fail(H2O_STRUCT_FROM_MEMBER(h1_conn_t, timer, entry), 408);
}

static void deliver(h1_conn_t *c, size_t n, int last)
{
    c->body_given = n;
    c->bytes_in += n;
    c->body_want = 0;
    c->body_done = last;
    timer_set(c, NULL, NULL); /* while the piece is out, the upstream is waited on, not the client */
    c->body_reading = 0;
    park(c); /* backpressure: nothing more is read while the piece is out */
    c->body_cb(c->body_arg, h2o_iovec_init(c->sock->input->bytes, n), last, 0);
}

/* Hands the forwarder the next piece if one is buffered; otherwise reads for it. */
static void body_pump(h1_conn_t *c)
{
    if (!c->body_want || c->body_err != 0 || c->writing)
        return;
    const tg_config_t *cfg = c->worker->srv->deps.cfg;
    uint64_t max = cfg->server.max_body_bytes != 0 ? cfg->server.max_body_bytes : UINT64_MAX;
    h2o_buffer_t *in = c->sock->input;
    if (c->body_kind == TG_H1_BODY_LENGTH) {
        size_t n = in->size < c->body_left ? in->size : (size_t)c->body_left;
        if (n != 0 || c->body_left == 0) {
            c->body_left -= n;
            deliver(c, n, c->body_left == 0);
            return;
        }
    } else if (in->size != 0) {
        size_t n = in->size;
        ssize_t rc = tg_chunked_decode(&c->chunked, in->bytes, &n);
        if (rc == -1) {
            body_fail(c, 400);
            return;
        }
        c->body_total += n;
        if (c->body_total > max || c->chunked.declared > max) {
            body_fail(c, 413);
            return;
        }
        in->size = n + (rc > 0 ? (size_t)rc : 0);
        if (rc >= 0 || n != 0) {
            deliver(c, n, rc >= 0);
            return;
        }
    }
    c->body_reading = 1;
    resume(c);
    timer_set(c, &c->worker->h1_body_timeout, on_body_timeout);
}

static h1_conn_t *conn_of(h2o_req_t *req)
{
    return (h1_conn_t *)req->conn;
}

tg_h1_body_kind_t tg_h1_body_kind(h2o_req_t *req, uint64_t *length)
{
    h1_conn_t *c = conn_of(req);
    *length = c->body_kind == TG_H1_BODY_LENGTH ? c->body_left + c->body_given : 0;
    return c->body_kind;
}

void tg_h1_body_read(h2o_req_t *req, tg_h1_body_cb cb, void *arg)
{
    h1_conn_t *c = conn_of(req);
    h2o_buffer_consume(&c->sock->input, c->body_given);
    c->body_given = 0;
    c->body_cb = cb;
    c->body_arg = arg;
    c->body_want = 1;
    if (c->body_err != 0) {
        body_fail(c, c->body_err);
        return;
    }
    if (c->expect_100 && c->sock->input->size == 0 && !c->sent_head) {
        static h2o_iovec_t cont = {H2O_STRLIT("HTTP/1.1 100 Continue\r\n\r\n")};
        c->expect_100 = 0;
        c->writing = 1;
        h2o_socket_write(c->sock, &cont, 1, on_continue_sent);
        return;
    }
    c->expect_100 = 0;
    body_pump(c);
}

void tg_h1_body_abandon(h2o_req_t *req)
{
    h1_conn_t *c = conn_of(req);
    c->body_want = 0;
    c->body_cb = NULL;
    c->req.http1_is_persistent = 0;
    if (c->body_reading) {
        c->body_reading = 0;
        timer_set(c, NULL, NULL);
        park(c);
    }
}

int tg_h1_body_error(h2o_req_t *req)
{
    return conn_of(req)->body_err;
}

void tg_h1_byte_counts(h2o_req_t *req, uint64_t *in, uint64_t *out)
{
    h1_conn_t *c = conn_of(req);
    *in = c->bytes_in;
    *out = c->bytes_out;
}

/* ---- reading ---- */

static void on_read(h2o_socket_t *sock, const char *err)
{
    h1_conn_t *c = sock->data;
    switch (c->state) {
    case C_HEAD:
        if (err != NULL)
            close_conn(c);
        else
            handle_head(c);
        return;
    case C_BUSY:
        if (c->parked) { /* the client sent something (or closed) while we work: stop for real */
            h2o_socket_dont_read(sock, 0);
            h2o_socket_read_stop(sock);
            c->parked = 0;
            return;
        }
        if (!c->body_reading) { /* not expected: nothing wants the bytes */
            h2o_socket_read_stop(sock);
            return;
        }
        if (err != NULL) {
            body_fail(c, 499);
            return;
        }
        timer_set(c, &c->worker->h1_body_timeout, on_body_timeout);
        body_pump(c);
        return;
    case C_LINGER:
        c->linger_bytes += c->sock->input->size;
        h2o_buffer_consume(&c->sock->input, c->sock->input->size);
        if (err != NULL)
            close_conn(c); /* the client closed: it has the answer */
        else if (c->linger_bytes > TG_H1_LINGER_BYTES)
            h2o_socket_read_stop(sock); /* read no more; the close waits for the timer so that
                                         * the client can still read the answer before a reset */
        return;
    }
}

/* ---- connections ---- */

static socklen_t get_sockname(h2o_conn_t *conn, struct sockaddr *sa)
{
    return h2o_socket_getsockname(((h1_conn_t *)conn)->sock, sa);
}

static socklen_t get_peername(h2o_conn_t *conn, struct sockaddr *sa)
{
    return h2o_socket_getpeername(((h1_conn_t *)conn)->sock, sa);
}

static h2o_socket_t *get_socket(h2o_conn_t *conn)
{
    return ((h1_conn_t *)conn)->sock;
}

static const h2o_conn_callbacks_t conn_callbacks = {
    .get_sockname = get_sockname,
    .get_peername = get_peername,
    .get_socket = get_socket,
};

void tg_h1_init_worker(tg_worker_t *w)
{
    h2o_linklist_init_anchor(&w->h1_conns);
    h2o_timeout_init(w->ctx.loop, &w->h1_head_timeout, TG_H1_HEAD_TIMEOUT_MS);
    h2o_timeout_init(w->ctx.loop, &w->h1_body_timeout, TG_H1_BODY_TIMEOUT_MS);
    h2o_timeout_init(w->ctx.loop, &w->h1_linger_timeout, TG_H1_LINGER_MS);
}

void tg_h1_accept(tg_worker_t *w, h2o_socket_t *sock)
{
    h1_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        h2o_socket_close(sock);
        return;
    }
    c->super.ctx = &w->ctx;
    c->super.hosts = w->ctx.globalconf->hosts;
    gettimeofday(&c->super.connected_at, NULL);
    c->super.callbacks = &conn_callbacks;
    c->worker = w;
    c->sock = sock;
    sock->data = c;
    /* Without a fixed receive buffer the kernel grows it (to tcp_rmem's maximum, 32 MB here) as
     * a fast upload is read, and h2o's read loop then takes all of it into our buffer at once:
     * a 50 MB upload grew anonymous memory by 25 MB. */
    int rcvbuf = TG_H1_RCVBUF;
    setsockopt(h2o_socket_get_fd(sock), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    c->ostr_final.do_send = final_send;
    h2o_linklist_insert(&w->h1_conns, &c->link);
    start_head(c);
}

void tg_h1_close_all(tg_worker_t *w)
{
    while (!h2o_linklist_is_empty(&w->h1_conns))
        close_conn(H2O_STRUCT_FROM_MEMBER(h1_conn_t, link, w->h1_conns.next));
}
