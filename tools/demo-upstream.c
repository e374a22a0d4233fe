/* demo-upstream.c - a small HTTP API to put tollgate in front of, for `make run`, the tests and
 * the benchmark. Endpoints (see README):
 *   /v1/basic/..., /v1/text/..., /v1/vision/...   200 JSON echo of what arrived; /v1/basic/geocode?q=
 *                                           adds a fake but plausible "result"
 *   /v1/units?tokens=N                      200 with "Tollgate-Units: tokens=N"
 *   /v1/status/NNN                          that status
 *   /v1/slow?ms=N                           answers after N ms (timer, not sleep)
 *   /v1/big?bytes=N                         streams N bytes in 64 KiB chunks
 *   POST /v1/upload                         {"bytes": N, "sum": <byte sum mod 2^32>}
 *   /healthz                                200
 *   anything else                           404 JSON */
#define H2O_USE_LIBUV 0
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "h2o.h"
#include "h2o/http1.h"

static h2o_globalconf_t config;
static h2o_context_t ctx;
static h2o_accept_ctx_t accept_ctx;

static h2o_iovec_t query_param(h2o_req_t *req, const char *name)
{
    if (req->query_at == SIZE_MAX)
        return h2o_iovec_init(NULL, 0);
    const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    size_t nl = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp != NULL ? amp : end;
        if ((size_t)(stop - q) > nl && memcmp(q, name, nl) == 0 && q[nl] == '=')
            return h2o_iovec_init(q + nl + 1, (size_t)(stop - q - nl - 1));
        q = stop + 1;
    }
    return h2o_iovec_init(NULL, 0);
}

static unsigned long long param_u64(h2o_req_t *req, const char *name, unsigned long long dflt)
{
    h2o_iovec_t v = query_param(req, name);
    if (v.base == NULL || v.len == 0 || v.len > 20)
        return dflt;
    char buf[24];
    memcpy(buf, v.base, v.len);
    buf[v.len] = '\0';
    char *end;
    unsigned long long n = strtoull(buf, &end, 10);
    return *end == '\0' ? n : dflt;
}

static const char *reason_phrase(int status)
{
    static const struct {
        int status;
        const char *reason;
    } reasons[] = {
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {409, "Conflict"},
        {422, "Unprocessable Entity"},
        {429, "Too Many Requests"},
        {500, "Internal Server Error"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
}

static void send_body(h2o_req_t *req, int status, const char *type, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    req->res.content_length = len;
    h2o_send_inline(req, body, len);
}

static const char *header_or_null(h2o_req_t *req, const char *name, char *buf, size_t cap)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i == -1)
        return NULL;
    h2o_iovec_t v = req->headers.entries[i].value;
    snprintf(buf, cap, "%.*s", (int)(v.len < cap - 1 ? v.len : cap - 1), v.base);
    return buf;
}

/* JSON string with the few characters that need escaping in what we echo. */
static void json_str(char *out, size_t cap, const char *s, size_t n)
{
    size_t o = 0;
    if (s == NULL) {
        snprintf(out, cap, "null");
        return;
    }
    out[o++] = '"';
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
}

/* Percent-decodes a query value ('+' is a space) into out (NUL-terminated, truncated to cap). */
static size_t url_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        unsigned char c;
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && h2o_hex_decode(&c, s + i + 1, 2) == 0) {
            out[o++] = (char)c;
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return o;
}

/* A fake but plausible geocoder: a few well-known places answer with their real coordinates,
 * anything else gets stable made-up ones derived from the query, with a lower confidence. */
static void geocode(h2o_req_t *req, char *extra, size_t cap)
{
    static const struct {
        const char *name, *label, *country;
        double lat, lon;
    } known[] = {
        {"berlin", "Berlin, Germany", "DE", 52.5200, 13.4050},
        {"paris", "Paris, France", "FR", 48.8566, 2.3522},
        {"london", "London, United Kingdom", "GB", 51.5074, -0.1278},
        {"new york", "New York, NY, United States", "US", 40.7128, -74.0060},
        {"tokyo", "Tokyo, Japan", "JP", 35.6762, 139.6503},
        {"sydney", "Sydney NSW, Australia", "AU", -33.8688, 151.2093},
        {"sao paulo", "Sao Paulo, Brazil", "BR", -23.5558, -46.6396},
        {"nairobi", "Nairobi, Kenya", "KE", -1.2921, 36.8219},
    };
    h2o_iovec_t raw = query_param(req, "q");
    if (raw.base == NULL || raw.len == 0) {
        snprintf(extra, cap, ",\"result\":null,\"error\":\"pass the place to look up as ?q=\"");
        return;
    }
    char q[128], lower[128], qj[300];
    size_t n = url_decode(raw.base, raw.len, q, sizeof(q));
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)(q[i] >= 'A' && q[i] <= 'Z' ? q[i] - 'A' + 'a' : q[i]);
    json_str(qj, sizeof(qj), q, n);
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(lower, known[i].name) == 0) {
            snprintf(extra, cap,
                     ",\"result\":{\"query\":%s,\"label\":\"%s\",\"country\":\"%s\",\"lat\":%.4f,"
                     "\"lon\":%.4f,\"confidence\":0.97}",
                     qj, known[i].label, known[i].country, known[i].lat, known[i].lon);
            return;
        }
    }
    unsigned h = 5381;
    for (size_t i = 0; i < n; i++)
        h = h * 33 + (unsigned char)lower[i];
    snprintf(extra, cap,
             ",\"result\":{\"query\":%s,\"label\":%s,\"country\":null,\"lat\":%.4f,\"lon\":%.4f,"
             "\"confidence\":0.42}",
             qj, qj, (double)(h % 15000) / 100.0 - 60.0, (double)((h / 7) % 36000) / 100.0 - 180.0);
}

static int on_echo(h2o_req_t *req)
{
    char cust[128], plan[128], cj[160], pj[160], mj[64], pathj[600], qj[600], extra[900] = "";
    const char *c = header_or_null(req, "x-tollgate-customer", cust, sizeof(cust));
    const char *p = header_or_null(req, "x-tollgate-plan", plan, sizeof(plan));
    json_str(cj, sizeof(cj), c, c ? strlen(c) : 0);
    json_str(pj, sizeof(pj), p, p ? strlen(p) : 0);
    json_str(mj, sizeof(mj), req->method.base, req->method.len);
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    json_str(pathj, sizeof(pathj), req->path.base, plen > 400 ? 400 : plen);
    if (req->query_at != SIZE_MAX)
        json_str(qj, sizeof(qj), req->path.base + req->query_at + 1,
                 req->path.len - req->query_at - 1 > 400 ? 400 : req->path.len - req->query_at - 1);
    else
        snprintf(qj, sizeof(qj), "null");
    if (plen == sizeof("/v1/basic/geocode") - 1 && memcmp(req->path.base, "/v1/basic/geocode", plen) == 0)
        geocode(req, extra, sizeof(extra));
    char body[3200];
    int n = snprintf(body, sizeof(body),
                     "{\"ok\":true,\"method\":%s,\"path\":%s,\"query\":%s,\"customer\":%s,\"plan\":%s,"
                     "\"saw_authorization\":%s,\"saw_x_api_key\":%s,\"body_bytes\":%zu%s}",
                     mj, pathj, qj, cj, pj,
                     h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1) != -1 ? "true" : "false",
                     h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-api-key"), -1) != -1 ? "true" : "false",
                     req->entity.base != NULL ? req->entity.len : 0, extra);
    send_body(req, 200, "application/json", body, (size_t)n);
    return 0;
}

/* ---- /v1/slow ---- */
/* h2o 2.2's timeouts have one fixed duration each (entries are kept in firing order), so each
 * distinct delay asked for gets its own h2o_timeout_t, created once and kept for the life of the
 * process. Past SLOW_MAX_DISTINCT distinct delays, the nearest longer one (or the longest) is
 * used; the tests and demos use a handful. */
#define SLOW_MAX_DISTINCT 64
#define SLOW_MAX_MS 600000ULL
typedef struct {
    h2o_timeout_entry_t entry;
    h2o_req_t *req;
    uint64_t ms;
} slow_t;
static h2o_timeout_t slow_timeouts[SLOW_MAX_DISTINCT];
static uint64_t slow_ms[SLOW_MAX_DISTINCT];
static size_t slow_n;

static h2o_timeout_t *slow_timeout_for(uint64_t ms)
{
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < slow_n; i++) {
        if (slow_ms[i] == ms)
            return &slow_timeouts[i];
        if (slow_ms[i] > ms && (best == SIZE_MAX || slow_ms[i] < slow_ms[best]))
            best = i;
    }
    if (slow_n < SLOW_MAX_DISTINCT) {
        h2o_timeout_init(ctx.loop, &slow_timeouts[slow_n], ms);
        slow_ms[slow_n] = ms;
        return &slow_timeouts[slow_n++];
    }
    if (best == SIZE_MAX) /* longer than all: use the longest */
        for (size_t i = 0; i < slow_n; i++)
            if (best == SIZE_MAX || slow_ms[i] > slow_ms[best])
                best = i;
    return &slow_timeouts[best];
}

static void on_slow_done(h2o_timeout_entry_t *entry)
{
    slow_t *s = H2O_STRUCT_FROM_MEMBER(slow_t, entry, entry);
    char body[64];
    int n = snprintf(body, sizeof(body), "{\"ok\":true,\"slow_ms\":%llu}", (unsigned long long)s->ms);
    send_body(s->req, 200, "application/json", body, (size_t)n);
}

/* Runs when the request's pool is freed: if the client went away first, the timer must not fire
 * into a dead request. */
static void on_slow_dispose(void *p)
{
    slow_t *s = p;
    if (h2o_timeout_is_linked(&s->entry))
        h2o_timeout_unlink(&s->entry);
}

static int on_slow(h2o_req_t *req)
{
    unsigned long long ms = param_u64(req, "ms", 1000);
    if (ms > SLOW_MAX_MS)
        ms = SLOW_MAX_MS;
    slow_t *s = h2o_mem_alloc_shared(&req->pool, sizeof(*s), on_slow_dispose);
    memset(s, 0, sizeof(*s));
    s->req = req;
    s->ms = ms;
    s->entry.cb = on_slow_done;
    h2o_timeout_link(ctx.loop, slow_timeout_for(ms), &s->entry);
    return 0;
}

/* ---- /v1/big ---- */
typedef struct {
    h2o_generator_t super;
    unsigned long long left;
} big_t;
static char chunk[65536];

static void big_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    big_t *b = (void *)g;
    size_t n = b->left < sizeof(chunk) ? (size_t)b->left : sizeof(chunk);
    b->left -= n;
    h2o_iovec_t buf = h2o_iovec_init(chunk, n);
    h2o_send(req, &buf, 1, b->left == 0 ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static int on_big(h2o_req_t *req)
{
    big_t *b = h2o_mem_alloc_pool(&req->pool, sizeof(*b));
    b->super.proceed = big_proceed;
    b->super.stop = NULL;
    b->left = param_u64(req, "bytes", 1024);
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = (size_t)b->left;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/octet-stream"));
    h2o_start_response(req, &b->super);
    big_proceed(&b->super, req);
    return 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    h2o_iovec_t path = req->path_normalized;
#define IS(p) (path.len >= sizeof(p) - 1 && memcmp(path.base, p, sizeof(p) - 1) == 0)
#define EQ(p) (path.len == sizeof(p) - 1 && memcmp(path.base, p, sizeof(p) - 1) == 0)
    char body[256];
    if (EQ("/healthz"))
        send_body(req, 200, "text/plain", "ok", 2);
    else if (IS("/v1/basic/") || IS("/v1/text/") || IS("/v1/vision/"))
        return on_echo(req);
    else if (EQ("/v1/units")) {
        unsigned long long t = param_u64(req, "tokens", 0);
        int n = snprintf(body, sizeof(body), "tokens=%llu", t);
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("tollgate-units"), 0, NULL,
                              h2o_strdup(&req->pool, body, (size_t)n).base, (size_t)n);
        n = snprintf(body, sizeof(body), "{\"ok\":true,\"tokens\":%llu}", t);
        send_body(req, 200, "application/json", body, (size_t)n);
    } else if (IS("/v1/status/")) {
        char *end;
        long st = strtol(h2o_strdup(&req->pool, path.base + 11, path.len - 11).base, &end, 10);
        if (st < 200 || st > 599)
            st = 400;
        int n = snprintf(body, sizeof(body), "{\"status\":%ld}", st);
        if (st == 204 || st == 304)
            n = 0; /* these statuses carry no body */
        send_body(req, (int)st, "application/json", body, (size_t)n);
    } else if (EQ("/v1/slow"))
        return on_slow(req);
    else if (EQ("/v1/big"))
        return on_big(req);
    else if (EQ("/v1/upload")) {
        unsigned sum = 0;
        size_t len = req->entity.base != NULL ? req->entity.len : 0;
        for (size_t i = 0; i < len; i++)
            sum += (unsigned char)req->entity.base[i];
        int n = snprintf(body, sizeof(body), "{\"bytes\":%zu,\"sum\":%u}", len, sum);
        send_body(req, 200, "application/json", body, (size_t)n);
    } else
        send_body(req, 404, "application/json", "{\"error\":\"not found\"}", 21);
    return 0;
#undef IS
#undef EQ
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    h2o_socket_t *sock;
    if (err != NULL || (sock = h2o_evloop_socket_accept(listener)) == NULL)
        return;
    h2o_accept(&accept_ctx, sock);
}

int main(int argc, char **argv)
{
    const char *listen_on = "127.0.0.1:9000";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen_on = argv[++i];
        else {
            fprintf(stderr, "usage: demo-upstream [--listen HOST:PORT]\n");
            return 2;
        }
    }
    const char *colon = strrchr(listen_on, ':');
    if (colon == NULL) {
        fprintf(stderr, "demo-upstream: --listen needs HOST:PORT\n");
        return 2;
    }
    char host[64];
    snprintf(host, sizeof(host), "%.*s", (int)(colon - listen_on), listen_on);
    char *pend;
    long port = strtol(colon + 1, &pend, 10);
    if (*pend != '\0' || port < 1 || port > 65535) {
        fprintf(stderr, "demo-upstream: bad port in %s\n", listen_on);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    memset(chunk, 'x', sizeof(chunk));
    h2o_socket_buffer_mmap_settings.threshold = 1 << 20;
    h2o_config_init(&config);
    config.max_request_entity_size = (size_t)1 << 30;
    h2o_hostconf_t *hc = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pc = h2o_config_register_path(hc, "/", 0);
    h2o_create_handler(pc, sizeof(h2o_handler_t))->on_req = on_req;
    h2o_context_init(&ctx, h2o_evloop_create(), &config);
    accept_ctx.ctx = &ctx;
    accept_ctx.hosts = config.hosts;

    struct sockaddr_in addr;
    int fd, one = 1;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    if (inet_pton(AF_INET, strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, &addr.sin_addr) != 1) {
        fprintf(stderr, "demo-upstream: %s is not an IPv4 address\n", host);
        return 2;
    }
    addr.sin_port = htons((uint16_t)port);
    if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, SOMAXCONN) != 0) {
        perror("demo-upstream: listen");
        return 1;
    }
    h2o_socket_t *sock = h2o_evloop_socket_create(ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(sock, on_accept);
    fprintf(stderr, "demo-upstream listening on %s\n", listen_on);
    while (h2o_evloop_run(ctx.loop, INT32_MAX) == 0)
        ;
    return 0;
}
