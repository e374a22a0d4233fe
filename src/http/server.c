/* server.c - listeners and worker threads; see server.h. The admin port's bridge to src/admin/ is
 * admin_front.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http1_server.h"
#include "http/events_http.h"
#include "http/http_int.h"
#include "http/tls.h"
#include "metrics/metrics.h"
#include "util/clock.h"
#include "util/log.h"

/* "host:port", "[v6]:port" or ":port" into a socket address. */
int tg_http_parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *len, tg_err_t *err)
{
    char host[128];
    const char *colon = strrchr(spec, ':');
    if (colon == NULL)
        return tg_errf(err, TG_ECONFIG, "listen address \"%s\" has no :port", spec);
    size_t hl = (size_t)(colon - spec);
    const char *h = spec;
    if (hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= sizeof(host))
        return tg_errf(err, TG_ECONFIG, "listen address \"%s\" is too long", spec);
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || end == colon + 1 || port < 0 || port > 65535)
        return tg_errf(err, TG_ECONFIG, "listen address \"%s\" has a bad port", spec);
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *v4 = (void *)ss;
    struct sockaddr_in6 *v6 = (void *)ss;
    if (hl == 0 || strcmp(host, "*") == 0) {
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl(INADDR_ANY);
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof(*v4);
    } else if (strcmp(host, "localhost") == 0 || inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        if (strcmp(host, "localhost") == 0)
            v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof(*v4);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*v6);
    } else {
        return tg_errf(err, TG_ECONFIG, "listen address \"%s\": \"%s\" is not an IP address", spec, host);
    }
    return 0;
}

static int open_listener(const char *spec, int reuseport, tg_err_t *err)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    int rc = tg_http_parse_listen(spec, &ss, &len, err);
    if (rc != 0)
        return rc;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd == -1)
        return tg_errf(err, TG_EIO, "socket for %s: %s", spec, strerror(errno));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, SOMAXCONN) != 0) {
        int e = errno;
        close(fd);
        return tg_errf(err, TG_EIO, "cannot listen on %s: %s", spec, strerror(e));
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* ---- accepting, with or without TLS ---- */

#define TLS_HANDSHAKE_TIMEOUT_MS 10000 /* a client that stalls its handshake is closed */

/* A connection between accept and the end of its TLS handshake. */
typedef struct tls_pending {
    tg_listener_t *listener;
    h2o_socket_t *sock;
    h2o_timeout_entry_t timer;
} tls_pending_t;

/* The listener's current TLS context with a reference for the caller, or NULL (plain). */
static SSL_CTX *tls_take(struct tg_server *srv, tg_listener_kind_t kind)
{
    if (!srv->tls_on[kind]) /* fixed at start (a reload cannot turn TLS on): plain needs no lock */
        return NULL;
    pthread_mutex_lock(&srv->tls_mu);
    SSL_CTX *ctx = srv->tls[kind];
    if (ctx != NULL)
        SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&srv->tls_mu);
    return ctx;
}

/* A connection ready for HTTP (handshake done, or plain): to the gateway's HTTP/1 server or to
 * h2o's, with the routes of the listener's kind. */
static void serve(tg_listener_t *l, h2o_socket_t *sock)
{
    if (l->kind == TG_LISTENER_GATEWAY)
        tg_h1_accept(l->worker, sock); /* the gateway has its own HTTP/1 server (http1_server.c) */
    else
        h2o_accept(&l->accept_ctx, sock);
}

static void on_tls_timeout(h2o_timeout_entry_t *entry)
{
    tls_pending_t *p = H2O_STRUCT_FROM_MEMBER(tls_pending_t, timer, entry);
    h2o_socket_close(p->sock);
    free(p);
}

static void on_handshake(h2o_socket_t *sock, const char *err)
{
    tls_pending_t *p = sock->data;
    tg_listener_t *l = p->listener;
    h2o_timeout_unlink(&p->timer);
    free(p);
    sock->data = NULL;
    if (err != NULL) { /* an old protocol, no shared cipher, not TLS at all, or the client left */
        h2o_socket_close(sock);
        return;
    }
    serve(l, sock);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    tg_listener_t *l = listener->data;
    h2o_socket_t *sock;
    if (err != NULL)
        return;
    if ((sock = h2o_evloop_socket_accept(listener)) == NULL)
        return;
    SSL_CTX *tls = tls_take(l->worker->srv, l->kind);
    if (tls == NULL) {
        serve(l, sock);
        return;
    }
    tls_pending_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        SSL_CTX_free(tls);
        h2o_socket_close(sock);
        return;
    }
    p->listener = l;
    p->sock = sock;
    p->timer.cb = on_tls_timeout;
    sock->data = p;
    h2o_timeout_link(l->worker->ctx.loop, &l->worker->tls_handshake_timeout, &p->timer);
    h2o_socket_ssl_handshake(sock, tls, NULL, on_handshake); /* its SSL holds its own reference */
    SSL_CTX_free(tls);
}

/* ---- workers ---- */

/* Everything that owns h2o sockets is created on the thread that runs its loop: h2o 2.2 ties a
 * socket's buffers to the creating thread's (__thread) buffer recycler, so a socket made on the
 * main thread but read on a worker would have two workers racing on the main thread's free
 * list (seen as heap corruption under load in strict mode, through the commit queue's pipe). */
static void setup_loop(struct tg_server *srv, tg_worker_t *w)
{
    h2o_context_init(&w->ctx, h2o_evloop_create(),
                     w->is_admin ? &srv->kind_conf[TG_LISTENER_ADMIN] : &srv->gateway_conf);
    h2o_timeout_init(w->ctx.loop, &w->tls_handshake_timeout, TLS_HANDSHAKE_TIMEOUT_MS);
    for (int i = 0; i < w->nlisteners; i++) {
        tg_listener_t *l = &w->listeners[i];
        l->accept_ctx.ctx = &w->ctx;
        l->accept_ctx.hosts = srv->kind_conf[l->kind].hosts;
        l->sock = h2o_evloop_socket_create(w->ctx.loop, l->fd, H2O_SOCKET_FLAG_DONT_READ);
        l->sock->data = l;
        h2o_socket_read_start(l->sock, on_accept);
    }
    if (!w->is_admin) {
        tg_h1_init_worker(w);
        tg_http_init_upstream(srv, w);
    }
    w->queue = h2o_multithread_create_queue(w->ctx.loop);
    h2o_multithread_register_receiver(w->queue, &w->commits, tg_http_on_commits);
    h2o_multithread_register_receiver(w->queue, &w->reports, tg_http_on_reports);
    h2o_multithread_register_receiver(w->queue, &w->events_done, tg_http_on_events_done);
    if (w->is_admin && tg_http_admin_init_loop(srv, w) != 0) {
        tg_log(TG_LOG_ERROR, "cannot start the admin threads");
        abort();
    }
}

static void *worker_main(void *arg)
{
    tg_worker_t *w = arg;
    struct tg_server *srv = w->srv;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the main thread's */
    char name[16]; /* named for top -H, perf and gdb */
    if (w->is_admin)
        snprintf(name, sizeof(name), "tg-admin");
    else
        snprintf(name, sizeof(name), "tg-gw-%d", (int)(w - srv->workers));
    pthread_setname_np(pthread_self(), name);
    tg_metrics_attach_thread(); /* the per-call counters in a set of this thread's own */
    setup_loop(srv, w);
    pthread_barrier_wait(&srv->ready);

    int closed = 0;
    for (;;) {
        tg_clock_loop_begin(); /* the iteration's handlers share one clock reading (util/clock.h) */
        h2o_evloop_run(w->ctx.loop, 50);
        if (!atomic_load(&srv->stopping))
            continue;
        if (!closed) {
            for (int i = 0; i < w->nlisteners; i++) {
                h2o_socket_read_stop(w->listeners[i].sock);
                h2o_socket_close(w->listeners[i].sock);
                w->listeners[i].sock = NULL;
            }
            closed = 1;
        }
        if (w->in_flight == 0 || tg_clock_mono_ns() > atomic_load(&srv->drain_deadline_ns))
            break;
    }
    /* Deliver completions that arrived while draining, on this thread, so no hold is left. */
    tg_clock_loop_begin();
    h2o_evloop_run(w->ctx.loop, 0);
    if (!w->is_admin) {
        tg_http_fini_gateway(w);
        tg_h1_close_all(w);
    }
    return NULL;
}

/* Opens the listener of `kind` on w (if that listener is configured). */
static int add_listener(struct tg_server *srv, tg_worker_t *w, tg_listener_kind_t kind, tg_err_t *err)
{
    const tg_listener_conf_t *lc = &srv->deps.cfg->listeners[kind];
    if (lc->address == NULL)
        return 0;
    int fd = open_listener(lc->address, kind == TG_LISTENER_GATEWAY, err);
    if (fd < 0)
        return fd;
    tg_listener_t *l = &w->listeners[w->nlisteners++];
    l->worker = w;
    l->kind = kind;
    l->fd = fd;
    return 0;
}

static int init_worker(struct tg_server *srv, tg_worker_t *w, int is_admin, tg_err_t *err)
{
    w->srv = srv;
    w->is_admin = is_admin;
    if (!is_admin)
        return add_listener(srv, w, TG_LISTENER_GATEWAY, err);
    int rc = 0;
    for (int k = TG_LISTENER_PORTAL; k <= TG_LISTENER_METRICS && rc == 0; k++)
        rc = add_listener(srv, w, (tg_listener_kind_t)k, err);
    return rc;
}

static const char *const kind_names[TG_LISTENER_KINDS] = {"gateway", "portal", "admin", "metrics"};

/* Builds every listener's TLS context from the files in cfg. All or nothing: on an error
 * (which names FILE:LINE of the listener) ctxs is left as it was. */
static int load_tls(const tg_config_t *cfg, SSL_CTX *ctxs[TG_LISTENER_KINDS], tg_err_t *err)
{
    SSL_CTX *fresh[TG_LISTENER_KINDS] = {NULL};
    for (int k = 0; k < TG_LISTENER_KINDS; k++) {
        const tg_listener_conf_t *lc = &cfg->listeners[k];
        if (lc->address == NULL || lc->certificate == NULL)
            continue;
        tg_err_t e;
        int rc = tg_tls_server_ctx(lc->certificate, lc->key, &fresh[k], &e);
        if (rc != 0) {
            for (int j = 0; j < k; j++)
                SSL_CTX_free(fresh[j]);
            return tg_errf(err, rc, "%s:%d: listeners.%s.tls: %s", cfg->path != NULL ? cfg->path : "-", lc->tls_line,
                           kind_names[k], e.msg);
        }
    }
    memcpy(ctxs, fresh, sizeof(fresh));
    return 0;
}

int tg_server_reload_tls(tg_server_t *srv, const tg_config_t *cfg, tg_err_t *err)
{
    SSL_CTX *fresh[TG_LISTENER_KINDS];
    int rc = load_tls(cfg, fresh, err);
    if (rc != 0)
        return rc;
    for (int k = 0; k < TG_LISTENER_KINDS; k++)
        if (srv->has_listener[k] && (fresh[k] == NULL) != !srv->tls_on[k]) {
            for (int j = 0; j < TG_LISTENER_KINDS; j++)
                SSL_CTX_free(fresh[j]);
            return tg_errf(err, TG_ESTATE, "listeners.%s: turning TLS %s needs a restart", kind_names[k],
                           srv->tls_on[k] ? "off" : "on");
        }
    SSL_CTX *old[TG_LISTENER_KINDS];
    pthread_mutex_lock(&srv->tls_mu);
    for (int k = 0; k < TG_LISTENER_KINDS; k++) {
        old[k] = srv->tls[k];
        srv->tls[k] = srv->has_listener[k] ? fresh[k] : NULL;
        if (!srv->has_listener[k])
            old[k] = fresh[k]; /* a listener that is not open gets no context */
    }
    pthread_mutex_unlock(&srv->tls_mu);
    for (int k = 0; k < TG_LISTENER_KINDS; k++)
        SSL_CTX_free(old[k]); /* connections using it hold their own references */
    return 0;
}

/* The h2o configuration of a listener kind on the admin loop: one host, its routes' handler. */
static void init_kind_conf(struct tg_server *srv, tg_listener_kind_t kind)
{
    h2o_globalconf_t *conf = &srv->kind_conf[kind];
    h2o_config_init(conf);
    conf->max_request_entity_size = ADMIN_MAX_BODY;
    conf->server_name = h2o_iovec_init(H2O_STRLIT("tollgate"));
    conf->http1.upgrade_to_http2 = 0;
    h2o_hostconf_t *host = h2o_config_register_host(conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    tg_http_register_admin(srv, h2o_config_register_path(host, "/", 0), kind);
}

int tg_server_start(const tg_server_deps_t *deps, tg_server_t **out, tg_err_t *err)
{
    const tg_config_t *cfg = deps->cfg;
    struct tg_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory starting the server");
    srv->deps = *deps;
    srv->nworkers = cfg->server.workers;
    srv->workers = calloc((size_t)srv->nworkers + 1, sizeof(*srv->workers));
    if (srv->workers == NULL) {
        free(srv);
        return tg_errf(err, TG_ENOMEM, "out of memory starting the server");
    }
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&srv->tls_mu, NULL);
    for (int k = 0; k < TG_LISTENER_KINDS; k++)
        srv->has_listener[k] = cfg->listeners[k].address != NULL;
    int rc = load_tls(cfg, srv->tls, err);
    if (rc != 0)
        return rc; /* the process exits */
    for (int k = 0; k < TG_LISTENER_KINDS; k++)
        srv->tls_on[k] = srv->tls[k] != NULL;

    h2o_config_init(&srv->gateway_conf);
    srv->gateway_conf.server_name = h2o_iovec_init(H2O_STRLIT("tollgate"));
    /* HTTP/1.1 only (docs/api.md): h2o would otherwise answer "PRI * HTTP/2" and Upgrade: h2c. */
    srv->gateway_conf.http1.upgrade_to_http2 = 0;
    h2o_hostconf_t *gh = h2o_config_register_host(&srv->gateway_conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *gp = h2o_config_register_path(gh, "/", 0);
    if (cfg->decide.enabled && cfg->decide.token != NULL) /* first: it passes other paths on */
        tg_http_register_decide_envoy(srv, gp);
    if ((rc = tg_http_register_gateway(srv, gp, err)) != 0)
        return rc;

    for (int k = TG_LISTENER_PORTAL; k <= TG_LISTENER_METRICS; k++)
        init_kind_conf(srv, (tg_listener_kind_t)k);

    for (int i = 0; i <= srv->nworkers; i++)
        if ((rc = init_worker(srv, &srv->workers[i], i == srv->nworkers, err)) != 0)
            return rc; /* bind failure: the process exits; nothing to unwind worth the code */
    pthread_barrier_init(&srv->ready, NULL, (unsigned)srv->nworkers + 2);
    for (int i = 0; i <= srv->nworkers; i++)
        if (pthread_create(&srv->workers[i].tid, NULL, worker_main, &srv->workers[i]) != 0)
            return tg_errf(err, TG_EIO, "cannot start worker thread %d", i);
    pthread_barrier_wait(&srv->ready); /* every loop is listening when start returns */
    *out = srv;
    return 0;
}

void tg_server_stop(tg_server_t *srv, int drain_ms)
{
    atomic_store(&srv->drain_deadline_ns, tg_clock_mono_ns() + (int64_t)drain_ms * 1000000);
    atomic_store(&srv->stopping, 1);
    for (int i = 0; i <= srv->nworkers; i++)
        pthread_join(srv->workers[i].tid, NULL);
    tg_http_admin_stop(srv); /* the admin back thread ran the periodic tick; the caller may now */
}

void tg_server_free(tg_server_t *srv)
{
    /* The meter has stopped, and each worker ran its loop once more before exiting, so no
     * commit_wait_t is pending. Contexts, loops, idle keep-alive connections and the h2o configs
     * are left to process exit: h2o 2.2 has no API to close the connections it accepted, and
     * disposing a context under open connections is unsafe. They stay reachable from `kept`, so
     * leak checkers do not flag them. */
    static struct tg_server *volatile kept; /* volatile: the store must not be optimised away */
    kept = srv;
    (void)kept;
}
