/* http_int.h - what server.c and proxy.c share inside src/http/. Not for other folders. */
#ifndef TG_HTTP_INT_H
#define TG_HTTP_INT_H

#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>

#include "h2o.h"
#include "http/request_id.h"
#include "http/server.h"
#include "http/upstream.h"
#include "util/cidr.h"
#include "util/freelist.h"

#define ADMIN_MAX_BODY (1024 * 1024)

/* One listening socket on a worker's loop. Gateway workers have one each (SO_REUSEPORT, so the
 * kernel spreads connections); the admin worker has the portal, admin and metrics listeners
 * that are configured. */
typedef struct tg_listener {
    struct tg_worker *worker;
    tg_listener_kind_t kind;
    int fd;
    h2o_socket_t *sock;
    h2o_accept_ctx_t accept_ctx; /* admin loop: h2o's HTTP/1 server, with this kind's routes */
} tg_listener_t;

#define TG_MAX_LOOP_LISTENERS 3

typedef struct tg_worker {
    struct tg_server *srv;
    pthread_t tid;
    int is_admin;
    h2o_context_t ctx;
    tg_listener_t listeners[TG_MAX_LOOP_LISTENERS];
    int nlisteners;
    h2o_timeout_t tls_handshake_timeout;
    /* Meter completions (strict mode) arrive from the writer thread through this queue. */
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t commits;
    /* Strict and process durability: POST /v1/report answers once its usage is durable; the
     * meter's completions arrive here (decide_http.c). */
    h2o_multithread_receiver_t reports;
    h2o_multithread_receiver_t events_done; /* POST /v1/events answers (events_http.c) */
    /* Process durability (proxy.c): the usage of the calls this loop finished, written by the
     * loop once per iteration (a zero timeout, which h2o runs after the iteration's I/O) before
     * their responses are released. NULL in the other modes and on the admin loop. */
    tg_meter_batch_t *batch;
    h2o_timeout_t commit_timeout;
    h2o_timeout_entry_t commit_entry;
    size_t in_flight; /* proxied requests not yet disposed; loop thread only */
    /* The proxied calls' state (gw_req_t) and process and strict modes' commit holds, kept for
     * reuse by this loop (proxy.c; util/freelist.h says why); loop thread only. */
    tg_freelist_t call_states, commit_holds;
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
    /* The admin loop's context uses kind_conf[TG_LISTENER_ADMIN]; the portal and metrics
     * listeners accept into their own confs, whose handler knows which routes it may answer. */
    h2o_globalconf_t kind_conf[TG_LISTENER_KINDS];
    int has_listener[TG_LISTENER_KINDS];
    /* Each listener's TLS context (NULL: plain), swapped by tg_server_reload_tls; a loop takes a
     * reference under the lock for each handshake, so a swapped-out one lives until its last
     * connection's SSL is freed. */
    pthread_mutex_t tls_mu;
    SSL_CTX *tls[TG_LISTENER_KINDS];
    int tls_on[TG_LISTENER_KINDS]; /* tls[k] != NULL at start; read-only after */
    SSL_CTX *upstream_tls; /* https:// upstreams; read-only after start */
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
/* Sets up a gateway worker's own upstream client, its free lists of call state and, in process
 * durability, its metering batch (proxy.c). */
void tg_http_init_upstream(struct tg_server *srv, tg_worker_t *w);
/* Process durability: makes sure the worker's batch is committed at the end of this loop
 * iteration (proxy.c); for anything added to w->batch. */
void tg_http_schedule_commit(tg_worker_t *w);
/* After the worker's loop stopped, on its thread: commits and frees its batch and empties its free
 * lists; what requests still open give back later is freed (proxy.c). */
void tg_http_fini_gateway(tg_worker_t *w);
/* Registers the admin handler on the pathconf of a listener of `kind` (portal, admin or
 * metrics), which answers only that kind's routes (admin also those of absent listeners). */
void tg_http_register_admin(struct tg_server *srv, h2o_pathconf_t *pathconf, tg_listener_kind_t kind);
/* On the admin loop's thread, once its queue exists: starts the admin back thread (which owns
 * the tg_admin_t from then on, and runs its periodic tick) and the hash workers. */
int tg_http_admin_init_loop(struct tg_server *srv, tg_worker_t *w);
/* After the admin loop stopped: stops and joins those threads; the caller may use the
 * tg_admin_t again when it returns. */
void tg_http_admin_stop(struct tg_server *srv);
/* The connection's TCP peer as a numeric address into out (NI_MAXHOST bytes, no NUL); returns
 * its length, 0 if unknown; *is_v6 says IPv6 (proxy.c). */
size_t tg_http_peer_address(h2o_conn_t *conn, char *out, int *is_v6);
/* Receives meter completions on a worker's loop (proxy.c). */
void tg_http_on_commits(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);

/* "host:port", "[v6]:port" or ":port" into a socket address (server.c); TG_ECONFIG naming it. */
int tg_http_parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *len, tg_err_t *err);

/* The path of a request (query at query_at, SIZE_MAX: none) has a form that upstreams read
 * differently from tollgate's normalised one: an encoded '/' or '\\', a double encoding, an
 * encoded control character, a dot segment with ';' parameters, a '#', an empty segment ("//")
 * (proxy.c says why). */
int tg_http_ambiguous_path(h2o_iovec_t path, size_t query_at);

/* The path (query at query_at, SIZE_MAX: none) has a "." or ".." segment, literal or
 * percent-encoded (%2e, either case). The decision API refuses those: its forwarders pass the
 * client's path on as sent, unresolved (proxy.c says why). */
int tg_http_dot_segment(h2o_iovec_t path, size_t query_at);

/* The call a client's request describes, for tg_gateway_admit: its method, its path (normalised
 * by the caller, no query) and its Authorization and X-API-Key values (empty: absent). The result
 * points into them; request_id, units and nunits are left for the caller (NULL, 0). The proxy and
 * Envoy's check read these from the request itself, /v1/decide and /v1/check from X-Original-*
 * headers or a JSON body (proxy.c). */
tg_call_request_t tg_http_call_request(h2o_iovec_t method, h2o_iovec_t path, h2o_iovec_t authorization,
                                       h2o_iovec_t api_key);

/* Adds the call's rate-limit and quota headers, and Retry-After for a refusal that names a wait
 * (tg_gateway_headers), to req's response; their text is in req's pool (proxy.c). */
void tg_http_add_call_headers(h2o_req_t *req, const tg_call_t *call, const tg_refusal_t *refusal);
/* Appends a response header whose name (lowercase, static storage: never copied) and value
 * (req's pool, or static) outlive the request: h2o_add_header_by_str without the copy of the
 * name it makes per call (proxy.c). */
void tg_http_append_header(h2o_req_t *req, h2o_iovec_t *name, const char *value, size_t value_len);

/* The decision API (decide_http.c), when decide: is configured: answers GET /v1/decide, POST
 * /v1/check and POST /v1/report on the gateway listener and returns 1; 0 for any other path
 * (the caller proxies it). On the worker's loop. */
int tg_http_decide(struct tg_server *srv, tg_worker_t *worker, h2o_req_t *req);
/* One decided call's access-log line (decide_log.c): via "decide", "check" or "envoy"; method and
 * path are the decided call's (not the decision request's); refusal NULL when allowed;
 * reservation NULL when none is held (refused, or Envoy's, billed at once); request_id NULL: the
 * decision request's well-formed X-Request-Id, else a new id. Sampled as proxied calls' lines. */
typedef struct tg_decide_line {
    const char *via;
    h2o_iovec_t method, path;
    const tg_call_t *call;
    const tg_refusal_t *refusal;
    const char *reservation;
    const char *request_id;
    int64_t start_ns;      /* wall clock when the decision request arrived */
    int64_t start_mono_ns; /* the same instant, monotonic */
} tg_decide_line_t;
void tg_http_decide_log(struct tg_server *srv, h2o_req_t *req, const tg_decide_line_t *line);
/* The request id of a decision (decide_log.c): the request's X-Request-Id when well formed (the
 * forwarder's, e.g. nginx's $request_id), else a new one, into out (NUL-terminated); its length.
 * The decision's line and, through the reservation's label, its settlement's line carry it. */
size_t tg_http_decide_request_id(h2o_req_t *req, char out[TG_REQUEST_ID_MAX + 1]);
/* Receives the meter's completions of /v1/report on a worker's loop (decide_http.c). */
void tg_http_on_reports(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);
/* Registers, on the gateway's pathconf and before the gateway handler, the handler of Envoy's
 * ext_authz checks under /v1/decide/envoy (decide_envoy.c). Only when decide: is configured. */
void tg_http_register_decide_envoy(struct tg_server *srv, h2o_pathconf_t *pathconf);

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
