/* limiter.h - rate limiting behind one interface with two backends: local (in-process, below)
 * and shared across nodes (limiter_shared.h: each node spends cells leased from one GCRA state per
 * key in Redis, topped up in the background; never a round trip on the request path).
 *
 * The algorithm is GCRA (the generic cell rate algorithm, equivalent to a token bucket that
 * refills continuously): one 64-bit "theoretical arrival time" per key, updated with a
 * compare-and-swap, so decisions are exact under any number of threads and cost no lock.
 * A rate of `count` per `period_ns` with `burst` allows `burst` back-to-back calls, then one
 * every period_ns/count. A call of weight w consumes w cells. A denied call consumes nothing.
 * Each key remembers the policy (rate, burst) its state was written under; a call under another
 * policy converts the state first (tg_gcra_convert), so a plan change, or a change of a plan's
 * limits, never carries the old plan's refill speed over. */
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
/* Frees any backend (NULL is fine). */
void tg_limiter_free(tg_limiter_t *l);

/* Decides one call for `key` at monotonic time now_ns. rate->count == 0 means unlimited
 * (always allowed, limit/remaining = UINT64_MAX). Thread-safe, lock-free on the hot path after
 * the key's first use. Returns 0, or TG_ENOMEM if a new key could not be added. */
int tg_limiter_take(tg_limiter_t *l, const char *key, size_t klen, const tg_rate_t *rate,
                    uint64_t burst, uint64_t weight, int64_t now_ns, tg_limit_result_t *out);

/* Converts the state of `key` to the policy (rate, burst) at once, as the next call under that
 * policy would: the admin thread calls it when a customer's plan changes, so that the change
 * takes effect at the moment it is made rather than at the next call. A key never used is left
 * alone (its bucket is full under any policy). Thread-safe. */
void tg_limiter_repolicy(tg_limiter_t *l, const char *key, size_t klen, const tg_rate_t *rate, uint64_t burst,
                         int64_t now_ns);

/* The pure GCRA step on one state word, exposed for tests and other backends. */
int tg_gcra_take(int64_t *tat, const tg_rate_t *rate, uint64_t burst, uint64_t weight,
                 int64_t now_ns, tg_limit_result_t *out);

/* Policy change. A state word tat written under `from` holds (tat - now) / T_from cells: the
 * calls of the current window that have not drained yet. Under `to` the same cells are kept,
 * measured in T_to, and cut at the new bucket's size (to_burst cells). So after an upgrade a
 * customer has the new burst minus what they used, at once (never the old plan's debt, which in
 * the old plan's slow interval could mean a minute of 429s), and after a downgrade never more
 * than the new burst minus what they used, refilling at the new rate. An empty bucket stays
 * empty. Returns the word to store; from->count or to->count 0 (unlimited) keeps tat. */
int64_t tg_gcra_convert(int64_t tat, const tg_rate_t *from, const tg_rate_t *to, uint64_t to_burst, int64_t now_ns);

#endif
