/* thresholds.h - the notifications decided from usage and time (issue 13, part C):
 * usage.threshold_reached, quota.exhausted and budget.exceeded, decided from the gateway's
 * in-memory quota counters (limits/quota.h), and trial.will_end, found by the scheduler tick.
 *
 * How a crossing travels:
 *  1. The gateway (gateway.c), on its event loop, compares the counter before and after the
 *     units a call reserved with the plan's thresholds (tg_thresholds_crossed: integer
 *     arithmetic, no allocation, no lock). Nothing else happens on a call that crosses nothing,
 *     which is nearly every call.
 *  2. A crossing pushes one fixed-size record into a bounded queue (tg_thresholds_push: a mutex
 *     held for a copy, taken only on a crossing). A full queue drops the record and counts it.
 *  3. The notifier thread, with its own store connection, turns each record into a mark
 *     (store_thresholds.h) and the event, in one transaction: the mark's unique key makes the
 *     notification fire once per (customer, period, kind, metric, level), also when the same
 *     crossing is seen again after a restart (the counters are warmed from the store) or on
 *     another node sharing the database.
 * The notifier also estimates the open period's bill of the customers who set a budget (on
 * each crossing of theirs and every interval) and fires budget.exceeded once per period. */
#ifndef TG_THRESHOLDS_H
#define TG_THRESHOLDS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "gateway/accounts.h"
#include "limits/quota.h"
#include "model/records.h"
#include "store/store.h"
#include "store/store_thresholds.h"
#include "util/err.h"


/* Bit i set when t->pct[i] percent of `included` was reached by moving a counter from before
 * to after (before < level <= after, level = included x pct / 100 exactly, in 128 bits). 0 when
 * included is 0 or TG_UNLIMITED, or when after <= before. Pure; any thread. */
unsigned tg_thresholds_crossed(uint64_t before, uint64_t after, uint64_t included, const tg_thresholds_cfg_t *t);

/* Bit i set when `used` has reached t->pct[i] percent of included. Pure. */
unsigned tg_thresholds_reached(uint64_t used, uint64_t included, const tg_thresholds_cfg_t *t);

typedef enum tg_crossing_kind {
    TG_CROSSING_USAGE = 0,   /* units were committed (billed) across the levels in mask */
    TG_CROSSING_RECHECK = 1, /* a reservation that crossed the levels in mask was released: the
                              * notifier fires those the counter still reaches */
    TG_CROSSING_EXHAUSTED = 2, /* a block plan refused a call for this metric */
} tg_crossing_kind_t;

/* One record of the queue; plan points into the configuration (it outlives the notifier). */
typedef struct tg_crossing {
    uint8_t kind; /* tg_crossing_kind_t */
    uint8_t mask; /* levels (bits of plan->notify_thresholds) */
    char customer_id[TG_ID_MAX];
    char metric[TG_METRIC_MAX];
    const tg_plan_t *plan;
    int64_t period_start, period_end;
    uint64_t used, included;
} tg_crossing_t;

typedef struct tg_thresholds tg_thresholds_t;

typedef struct tg_thresholds_settings {
    const char *database;    /* store URL: the thread opens its own connection */
    const tg_config_t *cfg;  /* outlives the notifier */
    tg_quota_t *quota;       /* the gateway's counters (read only) */
    tg_accounts_t *accounts; /* customers' plans, status and periods */
    int64_t budget_interval_ms; /* between two passes over the budgets; 0: 10000 */
    size_t queue_cap;           /* records; 0: 4096 */
    /* Tests only (NULL in the product): called on the notifier thread as it begins a record of
     * the start-up backlog, before processing it, with on_backlog_record_arg; a test holds the
     * notifier there to stop it with the rest of the backlog not yet processed. */
    void (*on_backlog_record)(void *arg);
    void *on_backlog_record_arg;
} tg_thresholds_settings_t;

/* Opens the connection and starts the notifier thread. 0, or the store's error / TG_ENOMEM with
 * nothing started. */
int tg_thresholds_start(const tg_thresholds_settings_t *s, tg_thresholds_t **out, tg_err_t *err);

/* Stops the thread, closes its connection, frees t. NULL allowed. What the gateway queued
 * (tg_thresholds_push: at most queue_cap records) is processed first; the rest of the start-up
 * backlog (tg_thresholds_warmed) is not: with many customers it is minutes of transactions,
 * longer than a service manager waits for a stop, and dropping it loses nothing, since the next
 * start derives it again from the stored usage and the marks fire each level once (a level
 * whose period has closed by then is not news and is not fired, as after a kill -9). Waits at
 * most for the backlog record being processed. */
void tg_thresholds_stop(tg_thresholds_t *t);

/* Queues c (copied) for the notifier (t NULL: nothing). Any thread; holds a mutex for the copy.
 * 0, or TG_ELIMIT when the queue is full or the notifier stops (the record is dropped and
 * counted in tg_thresholds_stats' dropped). */
int tg_thresholds_push(tg_thresholds_t *t, const tg_crossing_t *c);

/* A block plan refused a call of customer_id for metric in the period starting period_start:
 * queues TG_CROSSING_EXHAUSTED the first time this process sees that (customer, period,
 * metric), and nothing (no lock, no allocation) for the refusals after it, which on a customer
 * hammering a used-up allowance are every call. Any thread. */
void tg_thresholds_exhausted(tg_thresholds_t *t, const char *customer_id, const tg_plan_t *plan, const char *metric,
                             int64_t period_start, int64_t period_end, uint64_t included);

/* A counter warmed from the store at start (used units of metric in the period starting
 * period_start): when it is the customer's open period and it has reached levels already, they
 * are queued for the notifier, which fires those whose mark is missing. That is how a crossing
 * queued but not yet marked when the process died (kill -9) still fires once, and how the ones
 * marked before are not fired again. Called before the gateway serves; may allocate. 0 or
 * TG_ENOMEM. */
int tg_thresholds_warmed(tg_thresholds_t *t, tg_accounts_t *accounts, const char *customer_id, int64_t period_start,
                         const char *metric, uint64_t used, int64_t now_s);

/* Process-wide figures, for /metrics. */
typedef struct tg_thresholds_stats {
    uint64_t fired;    /* events emitted (marks inserted) */
    uint64_t repeated; /* crossings whose mark existed: nothing emitted */
    uint64_t dropped;  /* records dropped on a full queue */
    uint64_t failed;   /* store errors (the record is lost; a later crossing or the warm pass retries) */
} tg_thresholds_stats_t;
void tg_thresholds_stats(tg_thresholds_stats_t *out);

/* Fires one notification: in one transaction, inserts mark m and, if it was not there yet,
 * emits event `type` (notify/events.h) with `data` (borrowed) for m->customer_id, with the
 * dedupe key "threshold:<customer>:<period_start>:<metric>:<level>" (usage; the mark's kind in
 * place of "threshold" for the others). *fired = 1 when the event was
 * emitted, 0 when the mark existed already (a repeat: nothing written). The caller's thread
 * and store connection (the notifier thread, the admin tick). */
int tg_thresholds_fire(tg_store_t *st, const tg_mark_t *m, const char *type, json_t *data, int *fired, tg_err_t *err);

/* The open period's estimated bill of customer `acct` at now_s from the in-memory counters:
 * the plan's base fee (not during a trial) and the price of the usage so far (billing/pricing.h),
 * rounded as an invoice is. 0 or the pricing error. */
int tg_thresholds_estimate(tg_quota_t *quota, tg_account_t *acct, int64_t now_s, tg_money_t *total,
                           int64_t *period_start, int64_t *period_end, tg_err_t *err);

/* trial.will_end: fires for every trialing customer whose trial ends within
 * cfg->notifications.trial_will_end_days of now_s (once per trial: a mark keyed by its end).
 * Run by the scheduler tick on the node that holds the scheduler lock. *fired counts events. */
int tg_thresholds_trials(tg_store_t *st, const tg_config_t *cfg, tg_accounts_t *accounts, int64_t now_s,
                         size_t *fired, tg_err_t *err);

#endif
