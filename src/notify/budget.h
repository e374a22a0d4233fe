/* budget.h - a customer's monthly budget (issue 13, part C): an amount of their plan's currency
 * that their estimated bill for the open period should not pass; budget.exceeded fires once per
 * period when it does (the notifier, notify/thresholds.h). The service behind the portal's and
 * the admin API's budget routes: it decides and returns errors as values. Admin thread. */
#ifndef TG_BUDGET_H
#define TG_BUDGET_H

#include <stdint.h>

#include "config/config.h"
#include "gateway/accounts.h"
#include "limits/quota.h"
#include "store/store.h"
#include "util/err.h"
#include "util/money.h"

/* Parses text ("50", "50.00") as a budget in plan's currency: positive, at most the currency's
 * minor digits, under a billion major units. TG_EINVAL / TG_ERANGE with a sentence in err. */
int tg_budget_parse(const tg_plan_t *plan, const char *text, tg_money_t *out, tg_err_t *err);

/* The same from an amount in minor units of plan's currency (4950 = 49.50 usd; 5000 = 5000 jpy):
 * what the portal sends, having parsed the customer's decimal text itself, so that no
 * floating-point number stands between the text and the amount. Positive, under a billion major
 * units; TG_EINVAL / TG_ERANGE with a sentence in err. */
int tg_budget_from_minor(const tg_plan_t *plan, int64_t minor, tg_money_t *out, tg_err_t *err);

/* v (a whole number of plan's minor units, as every budget and estimate is) in minor units. */
int64_t tg_budget_minor(const tg_plan_t *plan, tg_money_t v);

/* Sets customer_id's budget to v (from tg_budget_parse or tg_budget_from_minor; 0 removes it).
 * The store's error. */
int tg_budget_set_value(tg_store_t *st, const char *customer_id, tg_money_t v, int64_t now_s, tg_err_t *err);

/* Sets customer_id's budget to text (NULL removes it). TG_EINVAL for a bad amount, or the
 * store's error. */
int tg_budget_set(tg_store_t *st, const tg_plan_t *plan, const char *customer_id, const char *text, int64_t now_s,
                  tg_err_t *err);

typedef struct tg_budget_view {
    tg_money_t budget;   /* 0: none set */
    tg_money_t estimate; /* the open period's bill so far (base fee + usage priced) */
    int64_t period_start, period_end;
    int exceeded; /* budget set and estimate above it */
} tg_budget_view_t;

/* The budget and the estimate from the gateway's counters. TG_ENOTFOUND when the customer is
 * not in the directory; the store's or the pricing's error. */
int tg_budget_view(tg_store_t *st, tg_quota_t *quota, tg_accounts_t *accounts, const char *customer_id, int64_t now_s,
                   tg_budget_view_t *out, tg_err_t *err);

#endif
