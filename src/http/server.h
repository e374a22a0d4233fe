/* server.h - the HTTP front of tollgate, the only code that includes h2o.
 *
 * Gateway port: one event loop per worker thread, each with its own SO_REUSEPORT listener, running
 * the gateway handler (src/http/proxy.c) in front of tollgate's upstream client with a keep-alive
 * pool (http or https). Admin loop: one more event loop thread with the portal, admin and metrics
 * listeners (each optional, each answering only its own routes; without a portal or metrics
 * listener the admin listener answers those routes too), through src/admin/; it answers health, metrics, plans and pages itself and hands
 * everything that touches the store to the admin back thread, and password hashing to two hash
 * workers (admin_front.c), so nothing slow runs on the loop and no customer traffic waits behind
 * the admin API. */
#ifndef TG_SERVER_H
#define TG_SERVER_H

#include "admin/admin_api.h"
#include "config/config.h"
#include "gateway/gateway.h"
#include "gateway/reservations.h"
#include "util/err.h"

typedef struct tg_server tg_server_t;

typedef struct tg_server_deps {
    const tg_config_t *cfg;
    tg_gateway_t *gateway;
    tg_admin_t *admin;
    tg_meter_t *meter;
    struct tg_access_log *access_log; /* NULL: no access log (log/access_log.h); not owned */
    /* The decision API's admitted calls (gateway/reservations.h); NULL: decide: is not
     * configured and /v1/decide, /v1/check, /v1/report are proxied like any path. Not owned. */
    struct tg_reservations *reservations;
    struct tg_events *events; /* POST /v1/events (metering/events.h); NULL: not answered; not owned */
} tg_server_deps_t;

/* The end of a decision API reservation as an access-log line (decide_log.c): the
 * tg_reservations_opts_t.on_end hook, with the access log (NULL: none) as its argument. */
void tg_http_decide_log_end(void *access_log, const tg_call_t *call, const tg_reservation_label_t *label, const char *id,
                            int status, int expired);

/* Binds the configured listeners (cfg->listeners), loads their TLS certificates and starts the
 * threads. Errors name the address or the FILE:LINE of the certificate that failed. */
int tg_server_start(const tg_server_deps_t *deps, tg_server_t **out, tg_err_t *err);

/* Asks the admin back thread to reload the configuration (admin_api.h, tg_admin_reload) between
 * two of its jobs, and returns at once. Any thread. */
void tg_server_request_reload(tg_server_t *srv);
/* Re-reads the certificate and key files of every listener in cfg (the addresses are those the
 * server started with; cfg may be a newly loaded configuration) and swaps them in: connections
 * accepted afterwards get the new certificates, connections already open keep theirs. All or
 * nothing: on an error (TG_EIO unreadable, TG_ECONFIG not PEM or a key that does not match, each
 * naming FILE:LINE; TG_ESTATE when TLS would be turned on or off on an open listener) nothing
 * changes and the old certificates stay. Any thread, while the server runs (SIGHUP's handler
 * thread, not the signal handler itself: it allocates and takes a lock), one call at a time.
 * cfg is only read during the call; relative file names are taken as cfg holds them. */
int tg_server_reload_tls(tg_server_t *srv, const tg_config_t *cfg, tg_err_t *err);

/* Stops accepting, lets requests in flight finish (up to drain_ms), joins the threads and frees
 * the server. The meter must still be running (strict responses wait on it). */
void tg_server_stop(tg_server_t *srv, int drain_ms);

/* After the meter stopped: delivers its last completions to the loops and frees them. */
void tg_server_free(tg_server_t *srv);

#endif
