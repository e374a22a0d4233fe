/* admin_front.c - the admin port's bridge between h2o and src/admin/: turns each request into a
 * tg_admin_request_t and sends back the tg_admin_response_t, without ever blocking the loop.
 *
 * Threads, and what each owns (see also src/admin/admin_api.h):
 *  - the admin event loop (thread "tg-admin") owns every h2o object: requests, sockets, pools.
 *    It answers the quick routes itself (health, metrics, plans, quotes, pages: no store), and
 *    hands every other request to the back thread as an admin_job_t holding a private copy of
 *    the request (the h2o_req_t is never touched off the loop);
 *  - one back thread ("tg-admin-back") owns the tg_admin_t: its store connection, portal
 *    sessions and throttles. It runs tg_admin_handle one job at a time and, every 10 s, the
 *    periodic tg_admin_tick (last-used times, closing billing periods into invoices);
 *  - HASH_WORKERS hash threads ("tg-admin-hash") run the Argon2id work a request left in
 *    res.slow (tg_admin_slow_run), touching only that object, then give the job back to the
 *    back thread, which completes it. They run at a lower priority (nice +10), so the loop and
 *    the back thread win the CPU from them.
 * A finished job goes back to the loop through an h2o_multithread queue (as the meter's
 * completions do in proxy.c). The request stays open until then; if the client goes away
 * first, h2o disposes the request, and the dispose hook in its pool unlinks the job, whose
 * answer is then dropped on arrival.
 *
 * Bounds: at most BACK_QUEUE_MAX jobs wait for the back thread and HASH_QUEUE_MAX for a hash
 * worker; past that the answer is 503 with Retry-After, at once. Sign-up and sign-in are also
 * throttled per client address before any hashing (src/admin/portal.c). */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/http_int.h"
#include "ops/reload.h"
#include "util/log.h"
#include "util/cidr.h"
#include "util/clock.h"
#include "util/thread_prio.h"

#define HASH_WORKERS 2
#define BACK_QUEUE_MAX 1024
#define HASH_QUEUE_MAX 64
#define TICK_NS (10 * TG_NS_PER_SEC)

typedef struct admin_job admin_job_t;

/* A FIFO of jobs under its own lock. */
typedef struct job_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    admin_job_t *head, *tail;
    size_t n;
} job_queue_t;

typedef struct tg_admin_front {
    struct tg_server *srv;
    tg_admin_t *admin;
    tg_worker_t *worker;             /* the admin loop's worker */
    h2o_multithread_receiver_t done; /* finished jobs, delivered on the loop */
    job_queue_t back, hash;
    pthread_t back_tid, hash_tid[HASH_WORKERS];
    int started;
    _Atomic int stopping;
    _Atomic int reload_pending; /* SIGHUP: tg_server_request_reload */
} tg_admin_front_t;

struct admin_job {
    h2o_multithread_message_t msg; /* first: the message is the object */
    admin_job_t *next;             /* in a job_queue_t */
    tg_admin_front_t *front;
    h2o_req_t *req;        /* loop thread only; NULL once the client went away */
    admin_job_t **hook;    /* in req->pool, points back here; loop thread only */
    tg_admin_request_t ar; /* its strings point into buf */
    char *buf;             /* may hold passwords and tokens: wiped when freed */
    size_t buf_len;
    tg_admin_response_t res;
    int ran; /* the slow part ran (hash worker) */
};

typedef struct admin_handler {
    h2o_handler_t super;
    struct tg_server *srv;
    tg_listener_kind_t kind; /* of the listener whose requests it answers */
} admin_handler_t;

/* ---- queues ---- */

static void queue_init(job_queue_t *q)
{
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->head = q->tail = NULL;
    q->n = 0;
}

/* Appends j unless the queue holds cap jobs already; returns 0 or -1 (full). */
static int queue_push(job_queue_t *q, admin_job_t *j, size_t cap)
{
    pthread_mutex_lock(&q->mu);
    if (q->n >= cap) {
        pthread_mutex_unlock(&q->mu);
        return -1;
    }
    j->next = NULL;
    if (q->tail != NULL)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->n++;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

/* Caller holds q->mu. */
static admin_job_t *queue_pop_locked(job_queue_t *q)
{
    admin_job_t *j = q->head;
    if (j != NULL) {
        q->head = j->next;
        if (q->head == NULL)
            q->tail = NULL;
        q->n--;
    }
    return j;
}

static void job_free(admin_job_t *j)
{
    if (j->res.slow != NULL) /* abandoned at shutdown: completing it would need the back thread */
        tg_admin_slow_finish(j->front->admin, j->res.slow, 0, &j->res);
    if (j->res.body != NULL) /* a new API key's secret, a CSRF token */
        explicit_bzero(j->res.body, j->res.body_len);
    free(j->res.body);
    explicit_bzero(j->buf, j->buf_len);
    free(j->buf);
    free(j);
}

/* ---- answering (loop thread) ---- */

static const char *reason_of(int status)
{
    return status < 300    ? "OK"
           : status == 400 ? "Bad Request"
           : status == 401 ? "Unauthorized"
           : status == 403 ? "Forbidden"
           : status == 404 ? "Not Found"
           : status == 405 ? "Method Not Allowed"
           : status == 409 ? "Conflict"
           : status == 415 ? "Unsupported Media Type"
           : status == 429 ? "Too Many Requests"
           : status == 503 ? "Service Unavailable"
           : status < 500  ? "Client Error"
                           : "Server Error";
}

/* A header whose name and value are string literals (h2o keeps the pointers). */
static void add_header(h2o_req_t *req, const char *name, const char *value)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, value, strlen(value));
}

static void respond(h2o_req_t *req, const tg_admin_response_t *res)
{
    req->res.status = res->status;
    req->res.reason = reason_of(res->status);
    const char *ct = res->content_type != NULL ? res->content_type : "application/json";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ct, strlen(ct));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    /* Every answer, pages and API alike: scripts only from files of this origin (no inline
     * script or handler anywhere in web/), no framing, no plugins, no <base> games; the invoice
     * page alone has an inline <style>. */
#define CSP_HEAD "default-src 'self'; script-src 'self'; "
#define CSP_REST "frame-ancestors 'none'; object-src 'none'; base-uri 'none'; form-action 'self'"
#define CSP_TAIL "img-src 'self' data:; connect-src 'self'; " CSP_REST
    if (res->connect_src != NULL || res->img_origin[0] != '\0') {
        /* the API reference: Try it calls the gateway (public_urls.gateway); portal.logo on another
         * origin (checked by the config: a bare scheme://host[:port]) */
        char csp[1024];
        int n = snprintf(csp, sizeof(csp),
                         CSP_HEAD "style-src 'self'%s; img-src 'self' data:%s%s; connect-src 'self'%s%s; " CSP_REST,
                         res->inline_style ? " 'unsafe-inline'" : "", res->img_origin[0] != '\0' ? " " : "",
                         res->img_origin, res->connect_src != NULL ? " " : "",
                         res->connect_src != NULL ? res->connect_src : "");
        if (n > 0 && (size_t)n < sizeof(csp))
            h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("content-security-policy"), 0, NULL,
                                  h2o_strdup(&req->pool, csp, (size_t)n).base, (size_t)n);
        else
            add_header(req, "content-security-policy", CSP_HEAD "style-src 'self'; " CSP_TAIL);
    } else if (res->inline_style)
        add_header(req, "content-security-policy", CSP_HEAD "style-src 'self' 'unsafe-inline'; " CSP_TAIL);
    else
        add_header(req, "content-security-policy", CSP_HEAD "style-src 'self'; " CSP_TAIL);
    add_header(req, "x-content-type-options", "nosniff");
    add_header(req, "x-frame-options", "DENY");
    add_header(req, "referrer-policy", "same-origin");
    if (res->set_cookie[0] != '\0')
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL,
                       h2o_strdup(&req->pool, res->set_cookie, SIZE_MAX).base, strlen(res->set_cookie));
    if (res->retry_after > 0) {
        char ra[16];
        int n = snprintf(ra, sizeof(ra), "%d", res->retry_after);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL,
                       h2o_strdup(&req->pool, ra, (size_t)n).base, (size_t)n);
    }
    req->res.content_length = res->body_len; /* keeps the connection alive */
    /* h2o_send_inline copies the body into the request's pool: the caller may free it. */
    h2o_send_inline(req, res->body != NULL ? res->body : "", res->body_len);
}

static void reply_busy(h2o_req_t *req)
{
    static const char body[] = "{\"error\":{\"type\":\"busy\",\"message\":\"The admin API is saturated; retry in a "
                               "second.\",\"docs\":\"https://tollgate.dev/docs/errors#busy\"}}";
    tg_admin_response_t res = {.status = 503, .body = (char *)body, .body_len = sizeof(body) - 1, .retry_after = 1};
    respond(req, &res);
}

/* The request's pool is being cleared (answered, or the client went away). */
static void on_req_dispose(void *p)
{
    admin_job_t **hook = p;
    if (*hook != NULL)
        (*hook)->req = NULL;
}

/* Finished jobs, on the loop. */
static void on_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    tg_admin_front_t *f = H2O_STRUCT_FROM_MEMBER(tg_admin_front_t, done, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        admin_job_t *j = H2O_STRUCT_FROM_MEMBER(admin_job_t, msg.link, messages->next);
        h2o_linklist_unlink(&j->msg.link);
        f->worker->in_flight--;
        if (j->req != NULL) {
            *j->hook = NULL;
            respond(j->req, &j->res);
        }
        job_free(j);
    }
}

/* ---- the request ---- */

static h2o_iovec_t header_value(h2o_req_t *req, const h2o_token_t *token, const char *name, size_t len)
{
    ssize_t i = token != NULL ? h2o_find_header(&req->headers, token, -1)
                              : h2o_find_header_by_str(&req->headers, name, len, -1);
    return i != -1 ? req->headers.entries[i].value : h2o_iovec_init(NULL, 0);
}

/* 1 if v is 1 or more of [A-Za-z0-9._:-] (a request id, a client's name). */
static int header_token_ok(h2o_iovec_t v)
{
    for (size_t i = 0; i < v.len; i++) {
        char c = v.base[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == ':' || c == '-'))
            return 0;
    }
    return v.len > 0;
}

/* Fills ar from req; its strings point into req's memory. */
static void read_request(struct tg_server *srv, h2o_req_t *req, tg_admin_request_t *ar)
{
    memset(ar, 0, sizeof(*ar));
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    ar->method = req->method.base;
    ar->method_len = req->method.len;
    ar->path = req->path.base;
    ar->path_len = plen;
    ar->query = req->query_at != SIZE_MAX ? req->path.base + req->query_at + 1 : NULL;
    ar->query_len = req->query_at != SIZE_MAX ? req->path.len - req->query_at - 1 : 0;
    h2o_iovec_t v = header_value(req, H2O_TOKEN_AUTHORIZATION, NULL, 0);
    ar->authorization = v.base;
    ar->authorization_len = v.len;
    ar->body = req->entity.base;
    ar->body_len = req->entity.base != NULL ? req->entity.len : 0;
    v = header_value(req, H2O_TOKEN_COOKIE, NULL, 0);
    ar->cookie = v.base;
    ar->cookie_len = v.len;
    v = header_value(req, NULL, H2O_STRLIT("x-csrf-token"));
    ar->csrf_token = v.base;
    ar->csrf_token_len = v.len;
    v = header_value(req, H2O_TOKEN_CONTENT_TYPE, NULL, 0);
    ar->content_type = v.base;
    ar->content_type_len = v.len;
    v = header_value(req, NULL, H2O_STRLIT("origin"));
    ar->origin = v.base;
    ar->origin_len = v.len;
    v = header_value(req, H2O_TOKEN_REFERER, NULL, 0);
    ar->referer = v.base;
    ar->referer_len = v.len;
    v = header_value(req, NULL, H2O_STRLIT("stripe-signature"));
    ar->stripe_signature = v.base;
    ar->stripe_signature_len = v.len;
    ar->host = req->input.authority.base;
    ar->host_len = req->input.authority.len;
    /* for the audit log only: copied when well formed, never trusted for anything else */
    v = header_value(req, NULL, H2O_STRLIT("x-request-id"));
    if (v.len > 0 && v.len < sizeof(ar->request_id) && header_token_ok(v)) {
        memcpy(ar->request_id, v.base, v.len);
        ar->request_id[v.len] = '\0';
    }
    v = header_value(req, NULL, H2O_STRLIT("x-tollgate-client"));
    if (v.len > 0 && v.len < sizeof(ar->client) && header_token_ok(v)) {
        memcpy(ar->client, v.base, v.len);
        ar->client[v.len] = '\0';
    }

    /* The client: the TCP peer, or what a trusted proxy says (util/cidr.h). */
    const tg_config_t *cfg = srv->deps.cfg;
    tg_forwarded_t fw;
    tg_http_forwarded(cfg, req, &fw);
    snprintf(ar->remote_addr, sizeof(ar->remote_addr), "%s", fw.client);
    ar->secure = fw.https;
}

/* Copies one string of ar into the job's buffer at *off. */
static const char *copy_in(char *buf, size_t *off, const char *s, size_t n)
{
    if (s == NULL)
        return NULL;
    char *d = buf + *off;
    memcpy(d, s, n);
    d[n] = '\0';
    *off += n + 1;
    return d;
}

/* A job owning a copy of ar (the back thread must not read h2o's memory), or NULL. */
static admin_job_t *job_new(tg_admin_front_t *f, const tg_admin_request_t *ar)
{
    size_t total = ar->method_len + ar->path_len + ar->query_len + ar->authorization_len + ar->body_len +
                   ar->cookie_len + ar->csrf_token_len + ar->content_type_len + ar->origin_len + ar->referer_len +
                   ar->host_len + ar->stripe_signature_len + 12;
    admin_job_t *j = calloc(1, sizeof(*j));
    char *buf = malloc(total);
    if (j == NULL || buf == NULL) {
        free(j);
        free(buf);
        return NULL;
    }
    size_t off = 0;
    j->front = f;
    j->buf = buf;
    j->buf_len = total;
    j->ar = *ar;
    j->ar.method = copy_in(buf, &off, ar->method, ar->method_len);
    j->ar.path = copy_in(buf, &off, ar->path, ar->path_len);
    j->ar.query = copy_in(buf, &off, ar->query, ar->query_len);
    j->ar.authorization = copy_in(buf, &off, ar->authorization, ar->authorization_len);
    j->ar.body = copy_in(buf, &off, ar->body, ar->body_len);
    j->ar.cookie = copy_in(buf, &off, ar->cookie, ar->cookie_len);
    j->ar.csrf_token = copy_in(buf, &off, ar->csrf_token, ar->csrf_token_len);
    j->ar.content_type = copy_in(buf, &off, ar->content_type, ar->content_type_len);
    j->ar.origin = copy_in(buf, &off, ar->origin, ar->origin_len);
    j->ar.referer = copy_in(buf, &off, ar->referer, ar->referer_len);
    j->ar.host = copy_in(buf, &off, ar->host, ar->host_len);
    j->ar.stripe_signature = copy_in(buf, &off, ar->stripe_signature, ar->stripe_signature_len);
    return j;
}

static int path_is(const char *p, size_t n, const char *s, int prefix)
{
    size_t sl = strlen(s);
    return n >= sl && memcmp(p, s, sl) == 0 && (n == sl || (prefix && p[sl] == '/'));
}

/* Which listener a path belongs to: metrics and probes, the owner's API and dashboard (and the
 * API description, /openapi.json), and everything else (pages, the portal's JSON API, plans, the
 * Stripe webhook) is the portal's. */
static tg_listener_kind_t route_kind(const char *p, size_t n)
{
    if (path_is(p, n, "/metrics", 0) || path_is(p, n, "/healthz", 0) || path_is(p, n, "/readyz", 0))
        return TG_LISTENER_METRICS;
    if (path_is(p, n, "/v1/admin", 1) || path_is(p, n, "/admin", 1) || path_is(p, n, "/openapi.json", 0))
        return TG_LISTENER_ADMIN;
    return TG_LISTENER_PORTAL;
}

static int on_admin_req(h2o_handler_t *_self, h2o_req_t *req)
{
    admin_handler_t *self = (void *)_self;
    tg_admin_front_t *f = self->srv->admin_front;
    tg_admin_request_t ar;
    read_request(self->srv, req, &ar);
    tg_admin_response_t res;
    /* A listener answers its own routes; the admin listener also those of a listener that is
     * not configured (server.admin_listen alone serves everything, as before listeners). */
    tg_listener_kind_t kind = route_kind(ar.path, ar.path_len);
    if (kind != self->kind && !(self->kind == TG_LISTENER_ADMIN && !self->srv->has_listener[kind])) {
        static const char body[] = "{\"error\":{\"type\":\"route_not_found\",\"message\":\"No such route on this "
                                   "listener.\",\"docs\":\"https://tollgate.dev/docs/errors#route_not_found\"}}";
        tg_admin_response_t nf = {.status = 404, .body = (char *)body, .body_len = sizeof(body) - 1};
        respond(req, &nf);
        return 0;
    }
    if (tg_admin_handle_quick(f->admin, &ar, &res)) {
        respond(req, &res);
        free(res.body);
        return 0;
    }
    admin_job_t *j = job_new(f, &ar);
    if (j == NULL) {
        reply_busy(req);
        return 0;
    }
    j->req = req;
    j->hook = h2o_mem_alloc_shared(&req->pool, sizeof(*j->hook), on_req_dispose);
    *j->hook = j;
    if (queue_push(&f->back, j, BACK_QUEUE_MAX) != 0) {
        *j->hook = NULL;
        job_free(j);
        reply_busy(req);
        return 0;
    }
    f->worker->in_flight++;
    return 0;
}

/* ---- the back thread and the hash workers ---- */

static void *back_main(void *arg)
{
    tg_admin_front_t *f = arg;
    job_queue_t *q = &f->back;
    pthread_setname_np(pthread_self(), "tg-admin-back");
    int64_t next_tick = tg_clock_mono_ns() + TICK_NS;
    int billing_more = 0; /* the period closer has customers left: a slice after each job */
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (!atomic_load(&f->stopping) && q->head == NULL && !billing_more && !atomic_load(&f->reload_pending) &&
               tg_clock_mono_ns() < next_tick) {
            /* q->cv waits on the default clock; wake up at least every 100 ms for the tick */
            struct timespec ts = tg_clock_deadline(CLOCK_REALTIME, 100);
            pthread_cond_timedwait(&q->cv, &q->mu, &ts);
        }
        admin_job_t *j = atomic_load(&f->stopping) ? NULL : queue_pop_locked(q);
        pthread_mutex_unlock(&q->mu);
        if (atomic_load(&f->stopping))
            break;
        if (atomic_exchange(&f->reload_pending, 0)) {
            /* Here, between two jobs: a reload never runs beside an admin request that reads
             * the services' configuration, and customers' plans move under the directory's
             * lock (ops/reload.h). The outcome is logged by the reloader. */
            tg_reload_result_t *rr = malloc(sizeof(*rr));
            if (rr != NULL)
                tg_admin_reload(f->admin, rr);
            free(rr);
        }
        if (j != NULL) {
            tg_admin_slow_t *slow = j->res.slow;
            if (slow != NULL) { /* back from a hash worker */
                j->res.slow = NULL;
                tg_admin_slow_finish(f->admin, slow, j->ran, &j->res);
            } else {
                tg_admin_handle(f->admin, &j->ar, &j->res);
            }
            if (j->res.slow != NULL && queue_push(&f->hash, j, HASH_QUEUE_MAX) == 0)
                continue;
            if (j->res.slow != NULL) { /* the hash workers are saturated: 503 now */
                slow = j->res.slow;
                j->res.slow = NULL;
                tg_admin_slow_finish(f->admin, slow, 0, &j->res);
            }
            if (tg_log_enabled(TG_LOG_DEBUG)) /* the path without its query: no tokens */
                tg_log(TG_LOG_DEBUG, "admin: %.*s %.*s -> %d", (int)(j->ar.method_len > 16 ? 16 : j->ar.method_len),
                       j->ar.method, (int)(j->ar.path_len > 256 ? 256 : j->ar.path_len), j->ar.path, j->res.status);
            h2o_multithread_send_message(&f->done, &j->msg);
            tg_admin_after(f->admin); /* the answer is on its way: now the work it queued */
        }
        if (tg_clock_mono_ns() >= next_tick) {
            billing_more = tg_admin_tick(f->admin); /* blocks on the store: here, never on the loop */
            next_tick = tg_clock_mono_ns() + TICK_NS;
        } else if (billing_more) {
            /* one slice (~50 ms) of a long invoice run, then the next job waiting, if any */
            billing_more = tg_admin_billing_slice(f->admin);
        }
    }
    return NULL;
}

static void *hash_main(void *arg)
{
    tg_admin_front_t *f = arg;
    job_queue_t *q = &f->hash;
    pthread_setname_np(pthread_self(), "tg-admin-hash");
    tg_thread_lower_priority_or_warn(TG_NICE_BACKGROUND, "the admin API's password hashing (tg-admin-hash)");
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (!atomic_load(&f->stopping) && q->head == NULL)
            pthread_cond_wait(&q->cv, &q->mu);
        admin_job_t *j = atomic_load(&f->stopping) ? NULL : queue_pop_locked(q);
        pthread_mutex_unlock(&q->mu);
        if (j == NULL)
            break;
        tg_admin_slow_run(j->res.slow);
        j->ran = 1;
        queue_push(&f->back, j, SIZE_MAX); /* never refused: the job holds its place already */
    }
    return NULL;
}

/* ---- life cycle ---- */

void tg_http_register_admin(struct tg_server *srv, h2o_pathconf_t *pathconf, tg_listener_kind_t kind)
{
    admin_handler_t *handler = (void *)h2o_create_handler(pathconf, sizeof(*handler));
    handler->super.on_req = on_admin_req;
    handler->srv = srv;
    handler->kind = kind;
}

/* Any thread (tollgate serve's signal thread, which takes SIGHUP with sigwait: no signal handler
 * runs, so nothing here is limited to async-signal-safe calls). Reloads asked for while one is
 * pending are one reload: it reads the file as it is then. */
void tg_server_request_reload(tg_server_t *srv)
{
    tg_admin_front_t *f = srv->admin_front;
    if (f == NULL || !f->started)
        return;
    pthread_mutex_lock(&f->back.mu);
    atomic_store(&f->reload_pending, 1);
    pthread_cond_signal(&f->back.cv);
    pthread_mutex_unlock(&f->back.mu);
}

int tg_http_admin_init_loop(struct tg_server *srv, tg_worker_t *w)
{
    tg_admin_front_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    f->srv = srv;
    f->admin = srv->deps.admin;
    f->worker = w;
    queue_init(&f->back);
    queue_init(&f->hash);
    h2o_multithread_register_receiver(w->queue, &f->done, on_done);
    srv->admin_front = f;
    if (pthread_create(&f->back_tid, NULL, back_main, f) != 0)
        return -1;
    for (int i = 0; i < HASH_WORKERS; i++)
        if (pthread_create(&f->hash_tid[i], NULL, hash_main, f) != 0)
            return -1; /* the process exits: nothing to unwind worth the code */
    f->started = 1;
    return 0;
}

void tg_http_admin_stop(struct tg_server *srv)
{
    tg_admin_front_t *f = srv->admin_front;
    if (f == NULL || !f->started)
        return;
    atomic_store(&f->stopping, 1);
    job_queue_t *qs[2] = {&f->back, &f->hash};
    for (int i = 0; i < 2; i++) {
        pthread_mutex_lock(&qs[i]->mu);
        pthread_cond_broadcast(&qs[i]->cv);
        pthread_mutex_unlock(&qs[i]->mu);
    }
    pthread_join(f->back_tid, NULL);
    for (int i = 0; i < HASH_WORKERS; i++)
        pthread_join(f->hash_tid[i], NULL);
    /* Only when the drain deadline passed are jobs left: their clients get no answer (the loop
     * has stopped). Free them here, on the one thread left that may touch the admin. */
    for (int i = 0; i < 2; i++) {
        admin_job_t *j;
        while ((j = queue_pop_locked(qs[i])) != NULL)
            job_free(j);
    }
    f->started = 0;
}
