/* delivery.h - the webhook delivery thread: sends the queued deliveries (store_notify.h), signed
 * the Standard Webhooks way, and records every attempt.
 *
 * At least once: a delivery row is written with its event, in the emitting transaction
 * (events.h); this thread claims due rows (the claim is a lease: a thread or a node that dies
 * mid-send leaves the row due again when the lease ends), POSTs the event's payload with
 * webhook-id = the delivery's id (the same on every retry), webhook-timestamp and
 * webhook-signature (one v1 signature per secret: two during a rotation), and records the
 * result. A 2xx within notifications.timeout_ms is delivered; anything else is retried with
 * exponential backoff and full jitter (retry_base_ms doubling up to retry_cap_ms) until
 * retry_window_seconds after the first attempt, then failed.
 *
 * Endpoints: breaker_failures consecutive failures open the endpoint's circuit breaker (no
 * attempt to it for breaker_cooldown_ms; its rows wait without using attempts); an endpoint
 * failing for disable_after_seconds is disabled with the reason, and a
 * webhook_endpoint.disabled event tells its owner.
 *
 * SSRF guard: the host is resolved here (getaddrinfo), each address checked
 * (webhook_url.h), and the connection pinned to the checked address (CURLOPT_RESOLVE), so
 * curl cannot resolve the name again to somewhere else; redirects are not followed, proxies
 * from the environment are not used. A refused address is an attempt that failed, logged with
 * the reason.
 *
 * Threads: the thread owns its own store connection and never runs on an event loop;
 * tg_delivery_wake may be called from any thread. */
#ifndef TG_NOTIFY_DELIVERY_H
#define TG_NOTIFY_DELIVERY_H

#include <stdint.h>

#include "config/config.h"
#include "util/err.h"

typedef struct tg_delivery tg_delivery_t;

/* Starts the thread on a connection of its own to database, with cfg's notifications section
 * (borrowed: it outlives the thread). */
int tg_delivery_start(const char *database, const tg_config_t *cfg, tg_delivery_t **out, tg_err_t *err);
void tg_delivery_wake(tg_delivery_t *d);
/* Stops and joins the thread (an attempt in flight is cut short); NULL is fine. */
void tg_delivery_stop(tg_delivery_t *d);

/* One attempt's outcome (for tests and the delivery thread). */
typedef struct tg_delivery_result {
    long status; /* HTTP status, 0 if none */
    int64_t duration_ms;
    char response[1025]; /* first 1 KiB of the body */
    char error[512];     /* "" on a 2xx */
} tg_delivery_result_t;

#endif
