/* quota.c - the quota's public calls, dispatched to the backend (quota_int.h). */
#include "limits/quota_int.h"

int tg_quota_reserve(tg_quota_t *q, const char *customer_id, int64_t period_start, const char *metric,
                     uint64_t units, uint64_t included, int block, uint64_t *used_after)
{
    return q->ops->reserve(q, customer_id, period_start, metric, units, included, block, used_after);
}

void tg_quota_release(tg_quota_t *q, const char *customer_id, int64_t period_start, const char *metric,
                      uint64_t units)
{
    q->ops->release(q, customer_id, period_start, metric, units);
}

int tg_quota_add(tg_quota_t *q, const char *customer_id, int64_t period_start, const char *metric, uint64_t units)
{
    return q->ops->add(q, customer_id, period_start, metric, units);
}

int tg_quota_seed(tg_quota_t *q, const char *customer_id, int64_t period_start, const char *metric, uint64_t units)
{
    return q->ops->seed(q, customer_id, period_start, metric, units);
}

uint64_t tg_quota_used(tg_quota_t *q, const char *customer_id, int64_t period_start, const char *metric)
{
    return q->ops->used(q, customer_id, period_start, metric);
}

void tg_quota_free(tg_quota_t *q)
{
    if (q != NULL)
        q->ops->free(q);
}
