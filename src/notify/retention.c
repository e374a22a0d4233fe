/* retention.c - deleting finished notifications past their retention (retention.h). */
#include "notify/retention.h"

#include <string.h>

#include "store/store.h"
#include "store/store_retention.h"
#include "util/clock.h"

int tg_notify_prune(tg_store_t *st, int retention_days, int64_t now_s, size_t batch, int64_t budget_ns,
                    tg_notify_prune_run_t *run, tg_err_t *err)
{
    memset(run, 0, sizeof(*run));
    if (retention_days < 0 || batch == 0)
        return tg_errf(err, TG_EINVAL, "a retention of %d days in batches of %zu rows", retention_days, batch);
    if (retention_days == 0)
        return 0;
    int64_t cutoff = now_s - (int64_t)retention_days * 86400;
    int64_t deadline = tg_clock_mono_ns() + budget_ns;
    /* deliveries and mails first: an event goes once no delivery refers to it */
    static const tg_notify_table_t order[] = {TG_NOTIFY_DELIVERIES, TG_NOTIFY_MAILS, TG_NOTIFY_EVENTS};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        for (;;) {
            size_t rows = 0, attempts = 0;
            int rc = tg_store_notify_prune(st, order[i], cutoff, batch, &rows, &attempts, err);
            if (rc != 0)
                return rc;
            run->batches++;
            switch (order[i]) {
            case TG_NOTIFY_DELIVERIES:
                run->deliveries += rows;
                run->delivery_attempts += attempts;
                break;
            case TG_NOTIFY_MAILS:
                run->mails += rows;
                run->mail_attempts += attempts;
                break;
            case TG_NOTIFY_EVENTS:
                run->events += rows;
                break;
            }
            if (rows < batch)
                break; /* nothing more due in this table */
            if (tg_clock_mono_ns() >= deadline) {
                run->more = 1;
                break; /* the next table still gets its one batch */
            }
        }
    }
    return 0;
}

int tg_event_ids_prune(tg_store_t *st, int64_t window_s, int64_t now_s, size_t batch, int64_t budget_ns,
                       size_t *deleted, int *more, tg_err_t *err)
{
    *deleted = 0;
    *more = 0;
    if (window_s <= 0 || batch == 0)
        return tg_errf(err, TG_EINVAL, "a dedup window of %lld s in batches of %zu ids", (long long)window_s, batch);
    int64_t cutoff = now_s - window_s - TG_EVENT_IDS_MARGIN_S;
    int64_t deadline = tg_clock_mono_ns() + budget_ns;
    for (;;) {
        size_t rows = 0;
        int rc = tg_store_usage_event_ids_prune(st, cutoff, batch, &rows, err);
        if (rc != 0)
            return rc;
        *deleted += rows;
        if (rows < batch)
            return 0;
        if (tg_clock_mono_ns() >= deadline) {
            *more = 1;
            return 0;
        }
    }
}
