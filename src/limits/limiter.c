/* limiter.c - the limiter's public calls, dispatched to the backend (limiter_int.h). */
#include "limits/limiter_int.h"

int tg_limiter_take(tg_limiter_t *l, const char *key, size_t klen, const tg_rate_t *rate, uint64_t burst,
                    uint64_t weight, int64_t now_ns, tg_limit_result_t *out)
{
    return l->ops->take(l, key, klen, rate, burst, weight, now_ns, out);
}

void tg_limiter_repolicy(tg_limiter_t *l, const char *key, size_t klen, const tg_rate_t *rate, uint64_t burst,
                         int64_t now_ns)
{
    l->ops->repolicy(l, key, klen, rate, burst, now_ns);
}

void tg_limiter_free(tg_limiter_t *l)
{
    if (l != NULL)
        l->ops->free(l);
}
