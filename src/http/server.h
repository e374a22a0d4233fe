/* server.h - the HTTP front of tollgate, the only code that includes h2o.
 *
 * Gateway port: one event loop per worker thread, each with its own SO_REUSEPORT listener, running
 * the gateway handler (src/http/proxy.c) in front of h2o's reverse proxy with a keep-alive pool
 * to the upstream. Admin port: one more event loop thread answering the admin API, health and
 * metrics through src/admin/; it answers health, metrics, plans and pages itself and hands
 * everything that touches the store to the admin back thread, and password hashing to two hash
 * workers (admin_front.c), so nothing slow runs on the loop and no customer traffic waits behind
 * the admin API. */
#ifndef TG_SERVER_H
#define TG_SERVER_H

#include "admin/admin_api.h"
#include "config/config.h"
#include "gateway/gateway.h"
#include "util/err.h"

typedef struct tg_server tg_server_t;

typedef struct tg_server_deps {
    const tg_config_t *cfg;
    tg_gateway_t *gateway;
    tg_admin_t *admin;
    tg_meter_t *meter;
    struct tg_access_log *access_log; /* NULL: no access log (log/access_log.h); not owned */
} tg_server_deps_t;

/* Binds both listeners and starts the threads. Errors name the address that failed. */
int tg_server_start(const tg_server_deps_t *deps, tg_server_t **out, tg_err_t *err);

/* Asks the admin back thread to reload the configuration (admin_api.h, tg_admin_reload) between
 * two of its jobs, and returns at once. Any thread. */
void tg_server_request_reload(tg_server_t *srv);

/* Stops accepting, lets requests in flight finish (up to drain_ms), joins the threads and frees
 * the server. The meter must still be running (strict responses wait on it). */
void tg_server_stop(tg_server_t *srv, int drain_ms);

/* After the meter stopped: delivers its last completions to the loops and frees them. */
void tg_server_free(tg_server_t *srv);

#endif
