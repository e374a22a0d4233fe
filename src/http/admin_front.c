/* admin_front.c - the admin port's bridge between h2o and src/admin/: turns each request into a
 * tg_admin_request_t and sends back the tg_admin_response_t. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http/http_int.h"

typedef struct admin_handler {
    h2o_handler_t super;
    struct tg_server *srv;
} admin_handler_t;

static int on_admin_req(h2o_handler_t *_self, h2o_req_t *req)
{
    admin_handler_t *self = (void *)_self;
    h2o_iovec_t auth = {NULL, 0};
    ssize_t ai = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (ai != -1)
        auth = req->headers.entries[ai].value;
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    tg_admin_request_t ar = {
        .method = req->method.base,
        .method_len = req->method.len,
        .path = req->path.base,
        .path_len = plen,
        .query = req->query_at != SIZE_MAX ? req->path.base + req->query_at + 1 : NULL,
        .query_len = req->query_at != SIZE_MAX ? req->path.len - req->query_at - 1 : 0,
        .authorization = auth.base,
        .authorization_len = auth.len,
        .body = req->entity.base,
        .body_len = req->entity.base != NULL ? req->entity.len : 0,
    };
    ssize_t ci = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, -1);
    if (ci != -1) {
        ar.cookie = req->headers.entries[ci].value.base;
        ar.cookie_len = req->headers.entries[ci].value.len;
    }
    ssize_t xi = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-csrf-token"), -1);
    if (xi != -1) {
        ar.csrf_token = req->headers.entries[xi].value.base;
        ar.csrf_token_len = req->headers.entries[xi].value.len;
    }
    struct sockaddr_storage peer;
    socklen_t plen2 = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&peer);
    char host[NI_MAXHOST]; /* what h2o_socket_getnumerichost may write */
    if (plen2 != 0 && h2o_socket_getnumerichost((struct sockaddr *)&peer, plen2, host) != SIZE_MAX)
        snprintf(ar.remote_addr, sizeof(ar.remote_addr), "%.63s", host);
    tg_admin_response_t res = {0};
    tg_admin_handle(self->srv->deps.admin, &ar, &res);
    req->res.status = res.status;
    req->res.reason = res.status < 300 ? "OK"
                      : res.status == 400 ? "Bad Request"
                      : res.status == 401 ? "Unauthorized"
                      : res.status == 403 ? "Forbidden"
                      : res.status == 404 ? "Not Found"
                      : res.status == 405 ? "Method Not Allowed"
                      : res.status == 409 ? "Conflict"
                      : res.status == 429 ? "Too Many Requests"
                      : res.status < 500 ? "Client Error"
                                          : "Server Error";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   res.content_type != NULL ? res.content_type : "application/json",
                   strlen(res.content_type != NULL ? res.content_type : "application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    if (res.set_cookie[0] != '\0')
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL,
                       h2o_strdup(&req->pool, res.set_cookie, SIZE_MAX).base, strlen(res.set_cookie));
    req->res.content_length = res.body_len; /* keeps the connection alive */
    h2o_send_inline(req, res.body != NULL ? res.body : "", res.body_len);
    free(res.body);
    return 0;
}

void tg_http_register_admin(struct tg_server *srv, h2o_pathconf_t *pathconf)
{
    admin_handler_t *handler = (void *)h2o_create_handler(pathconf, sizeof(*handler));
    handler->super.on_req = on_admin_req;
    handler->srv = srv;
}
