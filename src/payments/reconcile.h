/* reconcile.h - one customer's billing period as tollgate sees it against Stripe's invoice for
 * it (`tollgate stripe reconcile`, for stripe.billing: stripe).
 *
 * Two halves:
 *   - the comparison (tg_recon_compare, tg_recon_pick_invoice) is pure: no I/O, no clock, no
 *     globals; it takes tollgate's usage and plan and a Stripe invoice already read, and reports
 *     each difference through a callback. It prices the usage with the pricing core
 *     (tg_quote_build), so "tollgate's invoice" here is exactly what pricing.h computes;
 *   - the reading (tg_recon_stripe_*) fetches a customer's invoices, the chosen invoice's lines
 *     and the prices they name, with GET requests only (tg_stripe_call), and blocks: call it from
 *     the CLI or a worker thread, never an event loop.
 *
 * Matching follows the catalog `tollgate stripe sync-catalog` makes: the base fee of plan P is
 * the Stripe price with lookup_key tollgate_P_base, the charge of P on metric M is the metered
 * price tollgate_P_M, whose meter sums M. A Stripe line is matched when it comes from a
 * subscription item (parent type subscription_item_details), is not a proration and its price
 * has one of those lookup keys; every other line (invoice items, prorations, other prices) is
 * listed as a line tollgate does not have. Amounts are compared in the currency's minor unit,
 * exactly (tollgate rounds each line to the minor unit, as Stripe does).
 *
 * What a Stripe subscription_cycle invoice holds: the metered lines of the period that just
 * ended (in arrears) and the licensed base fee of the period that starts (in advance). The
 * amounts compare as long as the plan did not change at the period's end; the line periods are
 * not compared. */
#ifndef TG_RECONCILE_H
#define TG_RECONCILE_H

#include <stddef.h>
#include <stdint.h>

#include "billing/pricing.h"
#include "config/config.h"
#include "payments/stripe_client.h"
#include "util/err.h"

#define TG_RECON_KEY_MAX 256    /* Stripe's lookup_key is at most 200 characters */
#define TG_RECON_ID_MAX 256     /* Stripe ids (in_..., price_...) */
#define TG_RECON_VALUE_MAX 64   /* a value as text: an integer or "none" */
#define TG_RECON_LINES_MAX 1000 /* lines read from one invoice; more is an error */

/* One line of a Stripe invoice, as the comparison needs it. */
typedef struct tg_recon_line {
    char id[TG_RECON_ID_MAX];
    char lookup_key[TG_RECON_KEY_MAX]; /* the line's price's lookup_key; "" without price or key */
    char description[256];
    int subscription_item; /* 1: from a subscription item and not a proration */
    uint64_t quantity;     /* null in Stripe: 0 */
    int64_t amount;        /* minor units */
} tg_recon_line_t;

/* A Stripe invoice: its header, and (once read in full) its lines. */
typedef struct tg_recon_invoice {
    char id[TG_RECON_ID_MAX];
    char status[32]; /* draft | open | paid | uncollectible | void */
    char currency[8];
    int64_t period_start, period_end;
    int64_t created;
    int64_t total;          /* minor units: total_excluding_tax when Stripe gives it, else total */
    tg_recon_line_t *lines; /* owned (tg_recon_invoice_free) */
    size_t nlines;
} tg_recon_invoice_t;

void tg_recon_invoice_free(tg_recon_invoice_t *inv);

typedef enum tg_recon_kind {
    TG_RECON_NO_STRIPE_CUSTOMER = 0, /* the customer has no Stripe customer (yet): tollgate's total, "none" */
    TG_RECON_NO_INVOICE,             /* Stripe has no invoice for the period */
    TG_RECON_CURRENCY,               /* the invoice is in another currency (nothing else compared) */
    TG_RECON_USAGE,                  /* a metric's usage vs the metered line's quantity */
    TG_RECON_AMOUNT,                 /* a line's amount (base fee or a charge) */
    TG_RECON_LINE,                   /* a line on one side only */
    TG_RECON_TOTAL,                  /* the invoice total */
} tg_recon_kind_t;

/* "no_stripe_customer", "no_invoice", "currency", "usage", "amount", "line", "total". */
const char *tg_recon_kind_name(tg_recon_kind_t k);

/* One difference. subject names what differs: the metric (usage; amount of a charge), "base fee"
 * (amount of the base fee), the Stripe lookup key or the line's description (line), "" (total,
 * no_invoice, no_stripe_customer). Values are decimal integers (usage in units, amounts in minor
 * units), a currency code for currency, or "none" for the side that has no such thing. */
typedef struct tg_recon_diff {
    tg_recon_kind_t kind;
    char subject[TG_RECON_KEY_MAX];
    char tollgate[TG_RECON_VALUE_MAX];
    char stripe[TG_RECON_VALUE_MAX];
} tg_recon_diff_t;

/* Called once per difference, in a stable order (currency; base fee; each charge in the plan's
 * order: usage then amount; minimum/maximum lines; unmatched Stripe lines in invoice order;
 * total). Non-zero stops the comparison (tg_recon_compare then returns TG_ESTATE). */
typedef int (*tg_recon_diff_cb)(const tg_recon_diff_t *d, void *arg);

/* Compares one period: tollgate's usage (nusage entries; several of one metric add up) priced
 * under plan (include_base_fee 0 for a period the trial covers) against inv (NULL: Stripe has no
 * invoice for the period: one TG_RECON_NO_INVOICE difference with tollgate's total).
 * *ndiffs (may be NULL) receives the number reported. Pure. Returns 0, TG_EINVAL/TG_ERANGE/
 * TG_ENOMEM from pricing (err says which), TG_ESTATE when cb stopped it. */
int tg_recon_compare(const tg_plan_t *plan, const tg_usage_qty_t *usage, size_t nusage, int include_base_fee,
                     const tg_recon_invoice_t *inv, tg_recon_diff_cb cb, void *arg, size_t *ndiffs, tg_err_t *err);

/* The invoice of invs (headers; lines not needed) that bills the period [ps, pe): not void, and
 * of those the one whose [period_start, period_end) overlaps [ps, pe) the most, the first of
 * equals (Stripe lists newest first). -1 when none overlaps. Pure. The overlap rule tolerates
 * the seconds between tollgate's period anchor and the Stripe subscription's. */
long tg_recon_pick_invoice(const tg_recon_invoice_t *invs, size_t n, int64_t ps, int64_t pe);

/* ---- reading Stripe (blocking; GET only) ---- */

typedef struct tg_recon_stripe tg_recon_stripe_t;

/* A reader over settings s (borrowed: must outlive it). It caches the prices it looked up, so
 * that one run asks for each price once. TG_ENOMEM. */
int tg_recon_stripe_new(const tg_stripe_settings_t *s, tg_recon_stripe_t **out, tg_err_t *err);
void tg_recon_stripe_free(tg_recon_stripe_t *rs);

/* The Stripe invoice of stripe_customer that bills [ps, pe) (tg_recon_pick_invoice over every
 * invoice of the customer), with all its lines and their prices' lookup keys, into *out (free
 * with tg_recon_invoice_free); *found = 0 (out empty) when there is none. Retries a call Stripe
 * says to retry (429, 5xx, no answer) twice. Returns 0; TG_EIO (Stripe unreachable or failing),
 * TG_ESTATE (Stripe refused: bad key, unknown customer), TG_EINVAL (an answer not shaped as
 * Stripe documents it, or more than TG_RECON_LINES_MAX lines), TG_ENOMEM; err says which. */
int tg_recon_stripe_invoice(tg_recon_stripe_t *rs, const char *stripe_customer, int64_t ps, int64_t pe,
                            tg_recon_invoice_t *out, int *found, tg_err_t *err);

#endif
