/* events_http.h - POST /v1/events on the gateway listener (src/http/events_http.c). Internal to
 * src/http/. */
#ifndef TG_EVENTS_HTTP_H
#define TG_EVENTS_HTTP_H

#include "h2o.h"

struct tg_server;
struct tg_worker;

/* 1 when req is for /v1/events and the server answers it (an events: section is configured). */
int tg_http_is_events_path(const struct tg_server *srv, h2o_req_t *req);

/* Answers one POST /v1/events (worker's loop thread). */
void tg_http_events_req(struct tg_worker *worker, h2o_req_t *req);

/* Receives the events service's completions on a worker's loop. */
void tg_http_on_events_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);

#endif
