/* upstream_head.c - the heads of a forwarded call: the request head tollgate writes to the
 * upstream, and the parsing of the upstream's response head (picohttpparser); see upstream.h. */
#include <string.h>
#include <strings.h>

#include "http/upstream_int.h"
#include "util/ascii.h"

/* The next token of a comma- or space-separated list from *i on (list.len - *i bytes), moving *i
 * past it: 1 with *tok set, 0 at the end. A token may be empty only at the list's very end
 * (after trailing separators), as the scan found it. */
static int next_list_token(h2o_iovec_t list, size_t *i, h2o_iovec_t *tok)
{
    if (*i >= list.len)
        return 0;
    while (*i < list.len && (list.base[*i] == ' ' || list.base[*i] == ',' || list.base[*i] == '\t'))
        (*i)++;
    size_t s = *i;
    while (*i < list.len && list.base[*i] != ',' && list.base[*i] != ' ' && list.base[*i] != '\t')
        (*i)++;
    *tok = h2o_iovec_init(list.base + s, *i - s);
    return 1;
}

static int token_in_list(h2o_iovec_t list, const char *name, size_t len)
{
    size_t i = 0;
    h2o_iovec_t tok;
    while (next_list_token(list, &i, &tok))
        if (tok.len == len && strncasecmp(tok.base, name, len) == 0)
            return 1;
    return 0;
}

/* A Connection list split once into its tokens, so that each header of the head is compared with
 * a few lengths rather than rescanning the list (token_in_list per header cost ~400 instructions
 * a call under callgrind with "Connection: keep-alive"). Lists of more tokens than fit are
 * scanned as before. */
#define CONNECTION_TOKENS_MAX 8

typedef struct connection_tokens {
    h2o_iovec_t list; /* the whole list; base NULL when there is no Connection header */
    h2o_iovec_t tokens[CONNECTION_TOKENS_MAX];
    size_t count;
    int overflow; /* more than CONNECTION_TOKENS_MAX tokens: use token_in_list on `list` */
} connection_tokens_t;

static void split_connection(connection_tokens_t *ct, h2o_iovec_t list)
{
    ct->list = list;
    ct->count = 0;
    ct->overflow = 0;
    size_t i = 0;
    h2o_iovec_t tok;
    while (next_list_token(list, &i, &tok)) {
        if (tok.len == 0)
            continue;
        if (ct->count == CONNECTION_TOKENS_MAX) {
            ct->overflow = 1;
            return;
        }
        ct->tokens[ct->count++] = tok;
    }
}

/* 1 when the Connection list names the header `name` (as token_in_list). */
static int connection_names(const connection_tokens_t *ct, const char *name, size_t len)
{
    if (ct->list.base == NULL)
        return 0;
    if (ct->overflow || len == 0) /* (token_in_list matches an empty name with an empty token) */
        return token_in_list(ct->list, name, len);
    for (size_t i = 0; i < ct->count; i++)
        if (ct->tokens[i].len == len && strncasecmp(ct->tokens[i].base, name, len) == 0)
            return 1;
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

enum head_result tg_upstream_parse_head(fwd_t *f)
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
        tg_ascii_lower((char *)hdrs[i].name, hdrs[i].name_len);
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
    connection_tokens_t named;
    split_connection(&named, connection);
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
        if (is_hop_by_hop(t, name, nlen) || connection_names(&named, name, nlen))
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
    f->reusable = minor >= 1 ? !connection_names(&named, H2O_STRLIT("close"))
                             : connection_names(&named, H2O_STRLIT("keep-alive"));
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

static char *append(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* The request head for the upstream: the request line, Host, the client's end-to-end headers
 * (not hop-by-hop ones, nor those its Connection header names), then the caller's own lines
 * (`extra`) LAST, so that nothing the client sent can name them away, then the framing. */
void tg_upstream_build_head(fwd_t *f, h2o_iovec_t path, h2o_iovec_t extra)
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
