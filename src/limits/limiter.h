/* limiter.h - rate limiting behind one interface (local in-process now, Redis later).
 *
 * The algorithm is GCRA (the generic cell rate algorithm, equivalent to a token bucket that
 * refills continuously): one 64-bit "theoretical arrival time" per key, updated with a
 * compare-and-swap, so decisions are exact under any number of threads and cost no lock.
 * A rate of `count` per `period_ns` with `burst` allows `burst` back-to-back calls, then one
 * every period_ns/count. A call of weight w consumes w cells. A denied call consumes nothing. */
#ifndef TG_LIMITER_H
#define TG_LIMITER_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

typedef struct tg_limiter tg_limiter_t;

typedef struct tg_limit_result {
    int allowed;
    uint64_t limit;      /* burst capacity, for X-RateLimit-Limit */
    uint64_t remaining;  /* cells left right after this decision */
    int64_t reset_ns;    /* until the bucket is full again */
    int64_t retry_after_ns; /* when denied: until this call would be allowed; else 0 */
} tg_limit_result_t;

/* A local limiter; keys are arbitrary byte strings (e.g. customer id). Returns NULL on ENOMEM. */
tg_limiter_t *tg_limiter_local_new(void);
void tg_limiter_free(tg_limiter_t *l);

/* Decides one call for `key` at monotonic time now_ns. rate->count == 0 means unlimited
 * (always allowed, limit/remaining = UINT64_MAX). Thread-safe, lock-free on the hot path after
 * the key's first use. Returns 0, or TG_ENOMEM if a new key could not be added. */
int tg_limiter_take(tg_limiter_t *l, const char *key, size_t klen, const tg_rate_t *rate,
                    uint64_t burst, uint64_t weight, int64_t now_ns, tg_limit_result_t *out);

/* The pure GCRA step on one state word, exposed for tests and other backends. */
int tg_gcra_take(int64_t *tat, const tg_rate_t *rate, uint64_t burst, uint64_t weight,
                 int64_t now_ns, tg_limit_result_t *out);

#endif
