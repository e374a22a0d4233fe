/* quota_int.h - what a quota backend implements (private to src/limits); see limiter_int.h. */
#ifndef TG_QUOTA_INT_H
#define TG_QUOTA_INT_H

#include "limits/quota.h"

typedef struct tg_quota_ops {
    int (*reserve)(tg_quota_t *q, const char *customer_id, int64_t period_start, const char *metric, uint64_t units,
                   uint64_t included, int block, uint64_t *used_after);
    void (*release)(tg_quota_t *q, const char *customer_id, int64_t period_start, const char *metric, uint64_t units);
    int (*add)(tg_quota_t *q, const char *customer_id, int64_t period_start, const char *metric, uint64_t units);
    int (*seed)(tg_quota_t *q, const char *customer_id, int64_t period_start, const char *metric, uint64_t units);
    uint64_t (*used)(tg_quota_t *q, const char *customer_id, int64_t period_start, const char *metric);
    void (*free)(tg_quota_t *q);
} tg_quota_ops_t;

struct tg_quota {
    const tg_quota_ops_t *ops;
};

#endif
