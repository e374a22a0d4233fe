/* http_int.h - what server.c and proxy.c share inside src/http/. Not for other folders. */
#ifndef TG_HTTP_INT_H
#define TG_HTTP_INT_H

#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>

#include "h2o.h"
#include "http/server.h"
#include "http/upstream.h"
#include "util/cidr.h"

#define ADMIN_MAX_BODY (1024 * 1024)

typedef struct tg_worker {
    struct tg_server *srv;
    pthread_t tid;
    int is_admin;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    int listen_fd;
    /* Meter completions (strict mode) arrive from the writer thread through this queue. */
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t commits;
    size_t in_flight; /* proxied requests not yet disposed; loop thread only */
    /* This worker's client to the upstream and its keep-alive connections (never shared:
     * h2o 2.2 sockets and their buffers belong to the thread that made them). */
    tg_upstream_t *upstream;
    /* Gateway port: tollgate's HTTP/1 connections (http1_server.c) and their timeouts. */
    h2o_linklist_t h1_conns;
    h2o_timeout_t h1_head_timeout, h1_body_timeout, h1_linger_timeout;
} tg_worker_t;

struct tg_server {
    tg_server_deps_t deps;
    h2o_globalconf_t gateway_conf;
    h2o_globalconf_t admin_conf;
    tg_worker_t *workers; /* nworkers gateway workers, then the admin worker */
    int nworkers;
    h2o_url_t upstream;
    pthread_barrier_t ready; /* workers, admin and the starting thread */
    _Atomic int stopping;
    _Atomic int64_t drain_deadline_ns;
    struct tg_admin_front *admin_front; /* the admin port's threads and queues (admin_front.c) */
};

/* Registers the gateway handler on pathconf (proxy.c). */
int tg_http_register_gateway(struct tg_server *srv, h2o_pathconf_t *pathconf, tg_err_t *err);
/* Sets up a gateway worker's own upstream client (proxy.c). */
void tg_http_init_upstream(struct tg_server *srv, tg_worker_t *w);
/* Registers the admin handler on the admin port's pathconf (admin_front.c). */
void tg_http_register_admin(struct tg_server *srv, h2o_pathconf_t *pathconf);
/* On the admin loop's thread, once its queue exists: starts the admin back thread (which owns
 * the tg_admin_t from then on, and runs its periodic tick) and the hash workers. */
int tg_http_admin_init_loop(struct tg_server *srv, tg_worker_t *w);
/* After the admin loop stopped: stops and joins those threads; the caller may use the
 * tg_admin_t again when it returns. */
void tg_http_admin_stop(struct tg_server *srv);
/* Receives meter completions on a worker's loop (proxy.c). */
void tg_http_on_commits(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);

/* The client as the trusted reverse proxies in front of tollgate describe it (forwarded.c).
 * X-Forwarded-For, Forwarded and X-Forwarded-Proto count only when the TCP peer is in
 * server.trusted_proxies; otherwise the peer is the client. */
typedef struct tg_forwarded {
    char peer[NI_MAXHOST];         /* the TCP peer, numeric; empty if unknown */
    char client[TG_CIDR_TEXT_MAX]; /* the right-most untrusted address of the chain, or the peer */
    int peer_trusted;
    int https;                     /* TLS, or X-Forwarded-Proto: https from a trusted peer */
    size_t chain_len;              /* chain: the joined X-Forwarded-For of a trusted peer (tail kept) */
    char chain[2048];
} tg_forwarded_t;
void tg_http_forwarded(const tg_config_t *cfg, h2o_req_t *req, tg_forwarded_t *out);

#endif
