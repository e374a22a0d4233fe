/* stripe_client.h - one synchronous call to Stripe's API over libcurl, and what its outcome
 * means for a retry.
 *
 * Every request carries `Authorization: Bearer <secret key>` and the pinned Stripe-Version
 * (TG_STRIPE_VERSION: the shape of every object we read is that version's, whatever the
 * account's default is); every POST carries the Idempotency-Key the caller gives, which must
 * stay the same across retries and restarts of the same operation (the outbox derives it from
 * its row), so that Stripe answers a repeated call with the response it saved instead of doing
 * the work twice.
 *
 * Threads: tg_stripe_call blocks for up to the timeout; call it from a worker thread (the
 * outbox processor), never from an event loop. It keeps no state between calls, so any thread
 * may call it; curl_global_init must have run (main does it before starting threads). */
#ifndef TG_STRIPE_CLIENT_H
#define TG_STRIPE_CLIENT_H

#include <jansson.h>
#include <stddef.h>

#include "util/err.h"

/* The API version every request asks for. Changing it changes the objects we parse: read
 * Stripe's upgrade notes for every version in between first. (2025-03-31.basil removed the
 * legacy usage records; meter events replace them.) */
#define TG_STRIPE_VERSION "2025-03-31.basil"
#define TG_STRIPE_API_BASE "https://api.stripe.com"
#define TG_STRIPE_RESPONSE_MAX (1024 * 1024) /* a response body past this is a failed call */
#define TG_STRIPE_IDEMPOTENCY_KEY_MAX 255    /* Stripe's limit */

typedef struct tg_stripe_settings {
    const char *secret_key;    /* sk_test_..., sk_live_..., rk_...; never logged */
    const char *api_base;      /* NULL: TG_STRIPE_API_BASE; tests point it at a local fake */
    long timeout_ms;           /* whole call, connect included; 0: 30 s */
    const _Atomic int *cancel; /* NULL, or a flag that, once non-zero, cuts a call short (shutdown):
                                * the call then ends as a transport error, RETRY */
} tg_stripe_settings_t;

typedef enum tg_stripe_outcome {
    TG_STRIPE_OK = 0,        /* 2xx */
    TG_STRIPE_RETRY = 1,     /* try again later with the same idempotency key */
    TG_STRIPE_PERMANENT = 2, /* Stripe refused the request as it is: retrying gives the same */
} tg_stripe_outcome_t;

/* What a call produced. tg_stripe_result_clear frees body. */
typedef struct tg_stripe_result {
    tg_stripe_outcome_t outcome;
    long status;           /* HTTP status; 0 when no response arrived (timeout, connection error) */
    int should_retry;      /* Stripe-Should-Retry: 1 true, 0 false, -1 absent */
    json_t *body;          /* the parsed JSON response, or NULL */
    char id[128];          /* body's "id" when it has one (the object Stripe created or changed) */
    char request_id[128];  /* Request-Id header, for support */
    char error_type[64];   /* error.type: api_error, card_error, idempotency_error, invalid_request_error, ... */
    char error_code[64];   /* error.code: lock_timeout, resource_missing, ... ("" if none) */
    char error_param[128]; /* error.param ("" if none) */
    char message[512];     /* a sentence: Stripe's error.message, or what went wrong on the way */
} tg_stripe_result_t;

void tg_stripe_result_clear(tg_stripe_result_t *r);

/* Decides what an answer means (pure; the rules, in order):
 *  - no response (transport_error: timeout, DNS, connection refused or reset) -> RETRY;
 *  - 2xx -> OK;
 *  - Stripe-Should-Retry: true -> RETRY, false -> PERMANENT (Stripe knows best: it says false
 *    for a 5xx whose request must not be repeated);
 *  - 409: RETRY unless error.type is idempotency_error (the key was used with other
 *    parameters: repeating it is refused forever); lock_timeout is the common retryable 409;
 *  - 429 and 5xx -> RETRY;
 *  - any other status (400, 401, 402, 403, 404, ...) -> PERMANENT. */
tg_stripe_outcome_t tg_stripe_classify(long status, int should_retry, int transport_error, const char *error_type);

/* Reads Stripe's error object ({"error": {"type", "code", "message", "param"}}) from body into
 * r's error fields and message; leaves them empty when body has none. */
void tg_stripe_parse_error(const json_t *body, tg_stripe_result_t *r);

/* One call: method "GET", "POST" or "DELETE" on api_base + path ("/v1/customers"), with form
 * (form_len bytes, application/x-www-form-urlencoded) as the body of a POST or the query of a
 * GET/DELETE. idempotency_key is required for a POST (TG_EINVAL without it), ignored
 * otherwise. Fills *out (clear it with tg_stripe_result_clear, also on error).
 * Returns 0 when Stripe answered 2xx; TG_EIO when the outcome is RETRY, TG_ESTATE when it is
 * PERMANENT, TG_EINVAL for bad arguments (nothing sent), TG_ENOMEM; err gets the sentence. */
int tg_stripe_call(const tg_stripe_settings_t *s, const char *method, const char *path, const char *form,
                   size_t form_len, const char *idempotency_key, tg_stripe_result_t *out, tg_err_t *err);

#endif
