/* budget.c - see budget.h. */
#include "notify/budget.h"

#include <string.h>

#include "notify/thresholds.h"
#include "store/store_thresholds.h"

#define BUDGET_MAX (INT64_C(1000000000) * TG_MONEY_SCALE) /* a billion major units */

int tg_budget_parse(const tg_plan_t *plan, const char *text, tg_money_t *out, tg_err_t *err)
{
    size_t len = strnlen(text, 64);
    if (len == 0 || len >= 64)
        return tg_errf(err, TG_EINVAL, "amount: a decimal amount of %s, like \"50.00\"", plan->currency);
    tg_money_t v;
    tg_err_t perr = {0};
    int rc = tg_money_parse(text, len, &v, &perr);
    if (rc != 0)
        return tg_errf(err, rc == TG_ERANGE ? TG_ERANGE : TG_EINVAL, "amount: %s", perr.msg);
    if (v <= 0)
        return tg_errf(err, TG_EINVAL, "amount: must be above zero (remove the budget with null)");
    if (v > BUDGET_MAX)
        return tg_errf(err, TG_ERANGE, "amount: at most 1000000000 %s", plan->currency);
    if (tg_money_round(v, plan->currency_digits) != v)
        return tg_errf(err, TG_EINVAL, "amount: %s has %d decimal digits at most", plan->currency,
                       plan->currency_digits);
    *out = v;
    return 0;
}

/* Nano-units per minor unit of a currency with `digits` minor digits (0 to 9). */
static int64_t minor_scale(int digits)
{
    int64_t k = 1;
    for (int i = digits; i < TG_MONEY_DIGITS; i++)
        k *= 10;
    return k;
}

int tg_budget_from_minor(const tg_plan_t *plan, int64_t minor, tg_money_t *out, tg_err_t *err)
{
    int64_t k = minor_scale(plan->currency_digits);
    if (minor <= 0)
        return tg_errf(err, TG_EINVAL, "amount_minor: must be above zero (remove the budget with null)");
    if (minor > BUDGET_MAX / k) /* checked before multiplying: no overflow */
        return tg_errf(err, TG_ERANGE, "amount_minor: at most 1000000000 %s", plan->currency);
    *out = minor * k;
    return 0;
}

int64_t tg_budget_minor(const tg_plan_t *plan, tg_money_t v)
{
    return v / minor_scale(plan->currency_digits);
}

int tg_budget_set_value(tg_store_t *st, const char *customer_id, tg_money_t v, int64_t now_s, tg_err_t *err)
{
    return tg_store_budget_set(st, customer_id, v, now_s, err);
}

int tg_budget_set(tg_store_t *st, const tg_plan_t *plan, const char *customer_id, const char *text, int64_t now_s,
                  tg_err_t *err)
{
    tg_money_t v = 0;
    if (text != NULL) {
        int rc = tg_budget_parse(plan, text, &v, err);
        if (rc != 0)
            return rc;
    }
    return tg_store_budget_set(st, customer_id, v, now_s, err);
}

int tg_budget_view(tg_store_t *st, tg_quota_t *quota, tg_accounts_t *accounts, const char *customer_id, int64_t now_s,
                   tg_budget_view_t *out, tg_err_t *err)
{
    memset(out, 0, sizeof(*out));
    tg_account_t *acct = tg_accounts_find(accounts, customer_id);
    if (acct == NULL)
        return tg_errf(err, TG_ENOTFOUND, "customer %s is not in the gateway's directory", customer_id);
    int rc = tg_store_budget_get(st, customer_id, &out->budget, err);
    if (rc == 0)
        rc = tg_thresholds_estimate(quota, acct, now_s, &out->estimate, &out->period_start, &out->period_end, err);
    out->exceeded = rc == 0 && out->budget > 0 && out->estimate > out->budget;
    return rc;
}
