/* forwarded.c - the client behind trusted reverse proxies, for both ports; see http_int.h.
 *
 * Both the admin port (throttles, trials, Secure cookies) and the gateway (the X-Forwarded-For
 * chain and Forwarded it passes on) believe X-Forwarded-For, Forwarded and X-Forwarded-Proto
 * only from a TCP peer in server.trusted_proxies; the address logic itself is util/cidr.c. */
#include <string.h>

#include "http/http_int.h"

static h2o_iovec_t find_value(h2o_req_t *req, const char *name, size_t len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, len, -1);
    return i == -1 ? h2o_iovec_init(NULL, 0) : req->headers.entries[i].value;
}

/* Several X-Forwarded-For headers are one list (RFC 9110 5.3). Only its right end matters (what
 * the trusted proxies appended), so a list longer than the buffer keeps its last complete
 * entries: a client cannot push its own address out by padding the header. */
static size_t join_xff(h2o_req_t *req, char *xff, size_t cap)
{
    size_t xl = 0;
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_X_FORWARDED_FOR, i)) != -1;) {
        h2o_iovec_t x = req->headers.entries[i].value;
        if (xl > 0 && xl + 1 < cap)
            xff[xl++] = ',';
        if (xl + x.len >= cap) { /* keep the tail, from an entry boundary */
            size_t keep = x.len < cap / 2 ? x.len : cap / 2, drop = x.len - keep;
            const char *tail = x.base + drop, *comma = drop > 0 ? memchr(tail, ',', keep) : tail - 1;
            size_t tl = comma != NULL ? keep - (size_t)(comma + 1 - tail) : 0;
            memmove(xff, x.base + x.len - tl, tl);
            xl = tl;
            continue;
        }
        memcpy(xff + xl, x.base, x.len);
        xl += x.len;
    }
    return xl;
}

void tg_http_forwarded(const tg_config_t *cfg, h2o_req_t *req, tg_forwarded_t *out)
{
    struct sockaddr_storage peer;
    socklen_t sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&peer);
    memset(out, 0, offsetof(tg_forwarded_t, chain));
    out->chain_len = 0;
    if (sl == 0 || h2o_socket_getnumerichost((struct sockaddr *)&peer, sl, out->peer) == SIZE_MAX)
        out->peer[0] = '\0';
    tg_cidr_t pa;
    out->peer_trusted = cfg->server.ntrusted_proxies > 0 && out->peer[0] != '\0' &&
                        tg_cidr_parse_addr(out->peer, strlen(out->peer), &pa) == 0 &&
                        tg_cidr_list_match(cfg->server.trusted_proxies, cfg->server.ntrusted_proxies, &pa);
    if (out->peer_trusted)
        out->chain_len = join_xff(req, out->chain, sizeof(out->chain));
    h2o_iovec_t fwd = find_value(req, H2O_STRLIT("forwarded"));
    tg_client_addr(out->peer, cfg->server.trusted_proxies, cfg->server.ntrusted_proxies, out->chain, out->chain_len,
                   fwd.base, fwd.len, out->client, sizeof(out->client));
    h2o_iovec_t proto = find_value(req, H2O_STRLIT("x-forwarded-proto"));
    out->https = req->scheme == &H2O_URL_SCHEME_HTTPS ||
                 (out->peer_trusted && proto.len == 5 && h2o_lcstris(proto.base, proto.len, H2O_STRLIT("https")));
}
