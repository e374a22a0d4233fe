/* revenue.h - the owner's revenue figures, per currency: what was invoiced in a window and how
 * much of it was collected, is outstanding or was given up (uncollectible), and the monthly
 * recurring revenue (MRR) of the customers who pay.
 *
 * Money stays exact: every amount is a tg_money_t (nano-units) that is a whole number of the
 * currency's minor units (invoice totals are sums of lines rounded to the minor unit, and a
 * yearly fee is normalised to a month by rounding it to the minor unit, once per customer), and
 * sums are overflow-checked. Nothing here uses a double.
 *
 * Two layers: the pure accumulators (tg_revenue_add_invoices, tg_revenue_add_customer; no I/O,
 * no clock, unit-tested) and tg_revenue_compute, which feeds them from the store. The dashboard's
 * HTTP adapter renders the result; it decides nothing. */
#ifndef TG_REVENUE_H
#define TG_REVENUE_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "model/records.h"

typedef struct tg_store tg_store_t; /* a connection (store/store.h) */
#include "util/err.h"
#include "util/money.h"

#define TG_REVENUE_MAX_CURRENCIES 16 /* distinct currencies reported; more is TG_ERANGE */

/* Where a customer stands for MRR. Only TG_MRR_PAYING counts; the others are shown apart. */
typedef enum tg_mrr_class {
    TG_MRR_PAYING = 0,     /* active or past_due (still subscribed, still billed), on a paid plan */
    TG_MRR_TRIALING = 1,   /* in a trial period (status trialing, trial_end in the future) */
    TG_MRR_INCOMPLETE = 2, /* waiting for a card before the plan starts (requires_payment_method) */
    TG_MRR_SUSPENDED = 3,  /* suspended, by the owner or by dunning */
    TG_MRR_CANCELED = 4,
    TG_MRR_FREE = 5, /* a plan with no base fee and no usage charge: nothing to pay, ever */
    TG_MRR_NCLASSES = 6
} tg_mrr_class_t;

/* One currency's figures. Amounts are nano-units, each a whole number of minor units. */
typedef struct tg_revenue_currency {
    char currency[4]; /* lowercase ISO 4217 */
    int digits;       /* minor-unit digits (usd 2, jpy 0, kwd 3) */
    /* Invoices finalized in the window, by their state now (void ones are not counted):
     * invoiced = collected + outstanding + uncollectible. */
    tg_money_t invoiced, collected, outstanding, uncollectible;
    uint64_t n_invoiced, n_paid, n_open, n_uncollectible;
    /* Base fees normalised to a month: of paying customers (mrr), and what the customers in a
     * trial would add once it ends (trial_mrr). */
    tg_money_t mrr, trial_mrr;
    uint64_t paying, trialing;
    /* The usage lines of the invoices for periods that ended in the last 31 days (drafts
     * included), apart from MRR; added by the caller with tg_revenue_add_usage. */
    tg_money_t usage_last_period;
} tg_revenue_currency_t;

typedef struct tg_revenue {
    int64_t from, to; /* the window: invoices with from <= finalized_at < to */
    tg_revenue_currency_t cur[TG_REVENUE_MAX_CURRENCIES];
    size_t ncur;                        /* in order of first appearance; by code after tg_revenue_compute */
    uint64_t by_class[TG_MRR_NCLASSES]; /* customers per class, all currencies */
} tg_revenue_t;

/* One plan's share of the MRR (in the plan's currency): its paying customers and their fees. */
typedef struct tg_revenue_plan {
    tg_money_t mrr;
    uint64_t paying;
} tg_revenue_plan_t;

/* Empties rv and sets its window. */
void tg_revenue_init(tg_revenue_t *rv, int64_t from, int64_t to);

/* Adds `count` finalized invoices of one currency in one state (open, paid, uncollectible;
 * void and draft are ignored) whose totals sum to `total` (nano-units, a whole number of the
 * currency's minor units). TG_EINVAL for an unknown currency or a total with a fraction of a
 * minor unit, TG_ERANGE on overflow or too many currencies; rv is unchanged on error. */
int tg_revenue_add_invoices(tg_revenue_t *rv, const char *currency, const char *status, tg_money_t total,
                            uint64_t count, tg_err_t *err);

/* Which class a customer on `plan` is in at `now` (seconds). Pure. */
tg_mrr_class_t tg_mrr_classify(const tg_customer_t *c, const tg_plan_t *plan, int64_t now);

/* The plan's base fee for one month, rounded half away from zero to the currency's minor unit
 * (a yearly fee divided by 12). TG_ERANGE if it does not fit. */
int tg_mrr_monthly_fee(const tg_plan_t *plan, tg_money_t *out, tg_err_t *err);

/* Counts the customer in its class and, when paying or trialing, adds its plan's monthly fee to
 * the plan's currency. TG_ERANGE on overflow or too many currencies; rv unchanged on error. */
int tg_revenue_add_customer(tg_revenue_t *rv, const tg_customer_t *c, const tg_plan_t *plan, int64_t now,
                            tg_err_t *err);

/* Adds a customer's usage revenue of the last period, in the currency of its invoices (a whole
 * number of minor units). TG_EINVAL / TG_ERANGE as tg_revenue_add_invoices; rv unchanged on error. */
int tg_revenue_add_usage(tg_revenue_t *rv, const char *currency, tg_money_t amount, tg_err_t *err);

/* tg_revenue_compute in three steps, for a caller that has the customers in hand already (the
 * dashboard lists them for its other figures; reading them twice would double its I/O):
 * start: rv emptied and filled with the invoices finalized in [from, to), by_plan (NULL, or
 * cfg->nplans entries) zeroed; customer: one customer, as tg_revenue_add_customer, plus its
 * plan's entry in by_plan (a customer whose plan cfg lacks is skipped); finish: currencies
 * sorted by code. Errors as tg_revenue_compute. */
int tg_revenue_start(tg_store_t *st, const tg_config_t *cfg, int64_t from, int64_t to, tg_revenue_t *rv,
                     tg_revenue_plan_t *by_plan, tg_err_t *err);
int tg_revenue_customer(tg_revenue_t *rv, tg_revenue_plan_t *by_plan, const tg_config_t *cfg, const tg_customer_t *c,
                        int64_t now, tg_err_t *err);
void tg_revenue_finish(tg_revenue_t *rv);

/* Fills rv from the store: the invoices finalized in [from, to) and every customer's plan in
 * cfg at `now` (customers on a plan the configuration no longer has are skipped), currencies
 * sorted by code. by_plan, when not NULL, has cfg->nplans entries (caller-owned) and receives
 * each plan's paying customers and MRR: by_plan[i] is cfg->plans[i]'s. 0, or the store's error
 * or one of the errors above. Runs on the thread that owns the store. */
int tg_revenue_compute(tg_store_t *st, const tg_config_t *cfg, int64_t from, int64_t to, int64_t now, tg_revenue_t *rv,
                       tg_revenue_plan_t *by_plan, tg_err_t *err);

/* The currency's entry, or NULL. */
const tg_revenue_currency_t *tg_revenue_find(const tg_revenue_t *rv, const char *currency);

/* The class's name as the dashboard shows it ("paying", "trialing", ...). */
const char *tg_mrr_class_name(tg_mrr_class_t c);

#endif
