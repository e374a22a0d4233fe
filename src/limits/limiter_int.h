/* limiter_int.h - what a limiter backend implements (private to src/limits).
 *
 * A backend's struct starts with a tg_limiter_t whose ops point at its functions; limiter.c's
 * public calls dispatch through them, so the gateway never knows which backend decides. */
#ifndef TG_LIMITER_INT_H
#define TG_LIMITER_INT_H

#include "limits/limiter.h"

typedef struct tg_limiter_ops {
    int (*take)(tg_limiter_t *l, const char *key, size_t klen, const tg_rate_t *rate, uint64_t burst, uint64_t weight,
                int64_t now_ns, tg_limit_result_t *out);
    void (*repolicy)(tg_limiter_t *l, const char *key, size_t klen, const tg_rate_t *rate, uint64_t burst,
                     int64_t now_ns);
    void (*free)(tg_limiter_t *l);
} tg_limiter_ops_t;

struct tg_limiter {
    const tg_limiter_ops_t *ops;
};

#endif
