/* store_thresholds.h - the store's part for the notifications decided from usage and time
 * (issue 13, part C; migration 26): the marks that make each of them fire once, customers'
 * monthly budgets, and the trials about to end.
 *
 * A mark is the durable record that a notification was decided: one row per (customer,
 * period_start, kind, metric, level), unique. The notifier inserts it in the same transaction
 * as the event it emits, so that a crossing seen again (after a restart, whose counters are
 * warmed from the store, or on another node) finds the mark and emits nothing.
 *
 * Same contract as store.h: one tg_store_t per thread, every call blocks on I/O (never on a
 * gateway loop), 0 or a negative TG_E* with a sentence in err. */
#ifndef TG_STORE_THRESHOLDS_H
#define TG_STORE_THRESHOLDS_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define TG_MARK_KIND_MAX 16

/* kinds */
#define TG_MARK_USAGE "usage"         /* usage.threshold_reached: level = percent of the allowance */
#define TG_MARK_EXHAUSTED "exhausted" /* quota.exhausted: level 100 */
#define TG_MARK_BUDGET "budget"       /* budget.exceeded: metric "", level 100 */
#define TG_MARK_TRIAL "trial"         /* trial.will_end: period_start = trial_end, metric "", level = days */

typedef struct tg_mark {
    char customer_id[TG_ID_MAX];
    int64_t period_start; /* the period's start (seconds); trial marks: the trial's end */
    char kind[TG_MARK_KIND_MAX];
    char metric[TG_METRIC_MAX]; /* "" when the kind has none */
    int64_t level;
    int64_t created_at;
} tg_mark_t;

/* Records m once: *inserted = 1, or 0 when the same (customer_id, period_start, kind, metric,
 * level) is there already (nothing changes then). Inside the caller's transaction if one is
 * open. */
int tg_store_mark_insert(tg_store_t *st, const tg_mark_t *m, int *inserted, tg_err_t *err);

/* The customer's marks, newest period first, at most `limit`. cb returning non-zero stops. */
typedef int (*tg_mark_cb)(const tg_mark_t *m, void *arg);
int tg_store_marks_list(tg_store_t *st, const char *customer_id, size_t limit, tg_mark_cb cb, void *arg,
                        tg_err_t *err);

/* The customer's monthly budget, a tg_money_t (nano-units of the plan's currency,
 * util/money.h): amount > 0 sets it, 0 removes it. */
int tg_store_budget_set(tg_store_t *st, const char *customer_id, int64_t amount, int64_t now_s, tg_err_t *err);
/* *amount = the budget, 0 when none is set. */
int tg_store_budget_get(tg_store_t *st, const char *customer_id, int64_t *amount, tg_err_t *err);
/* Every customer with a budget, in id order from after_id ("" = the start), at most `limit`. */
typedef int (*tg_budget_cb)(const char *customer_id, int64_t amount, void *arg);
int tg_store_budgets_list(tg_store_t *st, const char *after_id, size_t limit, tg_budget_cb cb, void *arg,
                          tg_err_t *err);

/* Customers in their trial (status trialing) whose trial ends in (after, until] and who have no
 * trial mark for that end yet (TG_MARK_TRIAL, period_start = trial_end), at most `limit`,
 * ordered by trial end: each tick reads only the reminders still due. */
typedef int (*tg_trial_cb)(const char *customer_id, int64_t trial_end, void *arg);
int tg_store_trials_ending(tg_store_t *st, int64_t after, int64_t until, size_t limit, tg_trial_cb cb, void *arg,
                           tg_err_t *err);

#endif
