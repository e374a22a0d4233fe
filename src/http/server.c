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
#include "http/http_int.h"
#include "util/clock.h"
#include "util/log.h"

/* "host:port", "[v6]:port" or ":port" into a socket address. */
static int parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *len, tg_err_t *err)
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
    int rc = parse_listen(spec, &ss, &len, err);
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

static void on_accept(h2o_socket_t *listener, const char *err)
{
    tg_worker_t *w = listener->data;
    h2o_socket_t *sock;
    if (err != NULL)
        return;
    if ((sock = h2o_evloop_socket_accept(listener)) == NULL)
        return;
    if (w->is_admin)
        h2o_accept(&w->accept_ctx, sock);
    else
        tg_h1_accept(w, sock); /* the gateway port has its own HTTP/1 server (http1_server.c) */
}

/* ---- workers ---- */

/* Everything that owns h2o sockets is created on the thread that runs its loop: h2o 2.2 ties a
 * socket's buffers to the creating thread's (__thread) buffer recycler, so a socket made on the
 * main thread but read on a worker would have two workers racing on the main thread's free
 * list (seen as heap corruption under load in strict mode, through the commit queue's pipe). */
static void setup_loop(struct tg_server *srv, tg_worker_t *w)
{
    h2o_context_init(&w->ctx, h2o_evloop_create(), w->is_admin ? &srv->admin_conf : &srv->gateway_conf);
    w->accept_ctx.ctx = &w->ctx;
    w->accept_ctx.hosts = w->is_admin ? srv->admin_conf.hosts : srv->gateway_conf.hosts;
    w->listener = h2o_evloop_socket_create(w->ctx.loop, w->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    w->listener->data = w;
    h2o_socket_read_start(w->listener, on_accept);
    if (!w->is_admin) {
        tg_h1_init_worker(w);
        tg_http_init_upstream(srv, w);
    }
    w->queue = h2o_multithread_create_queue(w->ctx.loop);
    h2o_multithread_register_receiver(w->queue, &w->commits, tg_http_on_commits);
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
    setup_loop(srv, w);
    pthread_barrier_wait(&srv->ready);

    int closed = 0;
    for (;;) {
        h2o_evloop_run(w->ctx.loop, 50);
        if (!atomic_load(&srv->stopping))
            continue;
        if (!closed) {
            h2o_socket_read_stop(w->listener);
            h2o_socket_close(w->listener);
            w->listener = NULL;
            closed = 1;
        }
        if (w->in_flight == 0 || tg_clock_mono_ns() > atomic_load(&srv->drain_deadline_ns))
            break;
    }
    /* Deliver completions that arrived while draining, on this thread, so no hold is left. */
    h2o_evloop_run(w->ctx.loop, 0);
    if (!w->is_admin)
        tg_h1_close_all(w);
    return NULL;
}

static int init_worker(struct tg_server *srv, tg_worker_t *w, int is_admin, tg_err_t *err)
{
    const tg_config_t *cfg = srv->deps.cfg;
    w->srv = srv;
    w->is_admin = is_admin;
    int fd = open_listener(is_admin ? cfg->server.admin_listen : cfg->server.listen, !is_admin, err);
    if (fd < 0)
        return fd;
    w->listen_fd = fd;
    return 0;
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

    h2o_config_init(&srv->gateway_conf);
    srv->gateway_conf.server_name = h2o_iovec_init(H2O_STRLIT("tollgate"));
    /* HTTP/1.1 only (docs/api.md): h2o would otherwise answer "PRI * HTTP/2" and Upgrade: h2c. */
    srv->gateway_conf.http1.upgrade_to_http2 = 0;
    h2o_hostconf_t *gh = h2o_config_register_host(&srv->gateway_conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *gp = h2o_config_register_path(gh, "/", 0);
    int rc = tg_http_register_gateway(srv, gp, err);
    if (rc != 0)
        return rc; /* config was validated already; not reached in practice */

    h2o_config_init(&srv->admin_conf);
    srv->admin_conf.max_request_entity_size = ADMIN_MAX_BODY;
    srv->admin_conf.server_name = h2o_iovec_init(H2O_STRLIT("tollgate"));
    srv->admin_conf.http1.upgrade_to_http2 = 0;
    h2o_hostconf_t *ah = h2o_config_register_host(&srv->admin_conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *ap = h2o_config_register_path(ah, "/", 0);
    tg_http_register_admin(srv, ap);

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
