/* invoice.h - period invoices: build, close periods, preview, render.
 *
 * Building is pure (config + customer + unbilled usage -> lines and totals); storing and the
 * exactly-once bookkeeping are the store's (tg_store_invoice_create). Usage is priced under the
 * plan it was metered under (usage totals are kept per plan), so a mid-period plan change does
 * not reprice what happened before it. The base fee is the plan in force at the period's end;
 * a trial covering part of the period prorates it by seconds, a trial covering all of it waives
 * it. That plan's minimum commitment is billed whenever its base fee would be (even when its
 * price is 0), usage or not: a period without usage under it gets its quote all the same, every
 * metric at 0, that is its charges' lines at 0.00 and the top-up line (kind "minimum") to the
 * minimum, so that a customer pays the same minimum for no call as for one cheap call. Not
 * prorated: the minimum is whole in a period that a trial ends in or a cancellation cuts short,
 * as it was for a period with usage; waived with the base fee in a period the trial (or a plan
 * not started yet, status incomplete) covers whole. A period with usage under several plans (a
 * plan change inside it) bills each plan's quote as before, the period's plan among them at most
 * once; a plan without a minimum gets no lines of 0.00.
 *
 * Usage of a period that arrived while its invoice is a draft goes onto that invoice when it is
 * finalized (tg_invoice_refresh_usage). Usage that arrived after its own period's invoice was
 * finalized (or after the next period's was drafted) is billed on the next invoice, one
 * dated line per earlier (period, plan, metric) apart from the period's own usage (it takes
 * none of its allowance): "api_calls used 2026-01-01 to 2026-01-31, reported after that
 * period's invoice", with late_period {start, end}, quantity, invoiced (units of it billed
 * before) and amount = tg_price_late_in_period under the plan it was metered under: what that
 * period's usage total (its usage lines and its minimum top-up or cap adjustment, over all its
 * metrics) grows by, the late lines of one period and plan taken one after the other. A period
 * billed at its minimum without usage counts as billed at its minimum: late units inside it cost
 * nothing more. The store says so (tg_unbilled_t.quoted) from the "minimum" line of the plan on
 * that period's invoice; an invoice made before this rule, without usage and so without that
 * line, billed no minimum, and its late usage pays the plan's whole quote as it did then.
 *
 * Every line written says what it is in "kind" (pricing.h, tg_line_kind_name): "base_fee", or
 * "proration" for a base fee prorated by a trial or a cancellation; "usage", "minimum" and
 * "maximum" for a usage plan's quote; "late_usage"; "item" and "credit" (a negative item) for the
 * pending items, such as a plan change's prorations. Invoices stored before kinds existed have
 * none; their readers go by the lines' shape as they did then. */
#ifndef TG_INVOICE_H
#define TG_INVOICE_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "model/records.h"

typedef struct tg_store tg_store_t; /* a connection (store/store.h) */
#include "util/err.h"

/* Fills inv->currency, inv->total and inv->body (malloc'd JSON: lines, subtotal, total) for the
 * period [inv->period_start, inv->period_end) of customer c, with its unbilled usage and pending
 * items. A period cut short (final invoice at cancellation) prorates the base fee. */
int tg_invoice_build(const tg_config_t *cfg, const tg_customer_t *c, const tg_unbilled_t *rows, size_t n,
                     const tg_invoice_item_t *items, size_t nitems, tg_invoice_t *inv, tg_err_t *err);

/* The build callback of the store's invoice calls (store.h, tg_invoice_build_cb) for a customer
 * priced with a configuration: arg is a tg_invoice_build_arg_t, both of which outlive the call. */
typedef struct tg_invoice_build_arg {
    const tg_config_t *cfg;
    const tg_customer_t *c;
} tg_invoice_build_arg_t;
int tg_invoice_on_build(const tg_unbilled_t *rows, size_t n, const tg_invoice_item_t *items, size_t nitems,
                        tg_invoice_t *inv, void *arg, tg_err_t *err);

/* Late usage while inv is a draft (issue 16): replaces the usage lines of inv's own period (kinds
 * "usage", "minimum", "maximum"; in a body without kinds, told by their shape) in its body with
 * fresh ones priced from rows (every row of that period with all its units, as
 * tg_store_invoice_draft_refresh hands them) as tg_invoice_build prices them, under the plan the
 * draft was made with (its body's "plan"; c's current one if the configuration lacks it), and
 * sets the body's subtotal and total and inv->total to the sum of its lines. Units of a row that
 * another invoice billed meanwhile (the next period's, as late usage, while this one stayed a
 * draft: the row's invoiced units beyond what the draft's own usage lines say they "used") are
 * left out, so that no unit is billed twice. The draft's plan keeps its quote (and so its
 * minimum) when the draft had one, with usage or without (tg_invoice_build); a draft made before
 * periods without usage were billed at their minimum keeps not billing it until usage of its
 * plan comes. The base fee, the late lines and the items (credits) on the draft are kept as they
 * are. inv->body is replaced
 * (the old one freed) on success only. TG_EINVAL (a body without lines or with a bad amount),
 * TG_ECONFIG (no plan in the invoice's currency), TG_ERANGE, TG_ENOMEM. */
int tg_invoice_refresh_usage(const tg_config_t *cfg, const tg_customer_t *c, const tg_unbilled_t *rows, size_t n,
                             tg_invoice_t *inv, tg_err_t *err);
/* tg_invoice_refresh_usage as the store's callback (tg_store_invoice_draft_refresh); arg is a
 * tg_invoice_build_arg_t. */
int tg_invoice_on_refresh(const tg_unbilled_t *rows, size_t n, const tg_invoice_item_t *items, size_t nitems,
                          tg_invoice_t *inv, void *arg, tg_err_t *err);

/* The final invoice of a customer canceled at once: the current period up to now_s. */
int tg_invoice_close_final(tg_store_t *st, const tg_config_t *cfg, const tg_customer_t *c, int64_t now_s,
                           tg_err_t *err);

/* Creates the draft invoices of every period of c that ended at or before now_s and has none
 * (periods starting after a cancellation are skipped). Idempotent and restartable: each
 * invoice is its own transaction, or savepoint inside the caller's. *created counts new ones. */
int tg_invoice_close_periods(tg_store_t *st, const tg_config_t *cfg, const tg_customer_t *c, int64_t now_s,
                             int *created, tg_err_t *err);

/* The same, starting at the period of c that ends at from_end (the customer's next_period_end
 * kept by the period closer, store.h; 0 or a time that is not one of c's boundaries = from
 * the anchor): the closer then looks only at the periods not yet closed, not at every period
 * since the anchor. *next_end (may be NULL) gets when c next needs the closer: the end of its
 * first period still open, or earlier a scheduled change or cancellation after now_s;
 * INT64_MAX when no period will be closed any more (canceled). Set on success only. */
int tg_invoice_close_due(tg_store_t *st, const tg_config_t *cfg, const tg_customer_t *c, int64_t from_end,
                         int64_t now_s, int *created, int64_t *next_end, tg_err_t *err);

/* For the period closer's batches: 1 when c has exactly one period to close at now_s from
 * from_end (as tg_invoice_close_due would see it), with *draft set for it (a new id, c's id, the
 * period, created at now_s; no body) and *next_end what tg_invoice_close_due would give once it
 * is closed; 0 when c has none, several, or an unknown plan (tg_invoice_close_due then). Pure:
 * no store. */
int tg_invoice_due_single(const tg_config_t *cfg, const tg_customer_t *c, int64_t from_end, int64_t now_s,
                          tg_invoice_t *draft, int64_t *next_end);

/* The upcoming invoice of c's current period: the same build, over the usage not yet invoiced,
 * nothing stored. Usage of a period whose invoice is still a draft is left out: finalizing that
 * draft puts it there (tg_invoice_refresh_usage), so it is not the upcoming invoice's. Returns a
 * malloc'd JSON string (caller frees) or NULL with err set (TG_ECONFIG, the store's errors). */
char *tg_invoice_preview(tg_store_t *st, const tg_config_t *cfg, const tg_customer_t *c, int64_t now_s,
                         tg_err_t *err);

/* Public JSON of a stored invoice (body plus id, number, status, dates). malloc'd, or NULL. */
char *tg_invoice_to_json(const tg_invoice_t *inv);

/* A printable HTML page for a stored invoice, for people: amounts in the invoice's currency
 * ("$49.00"), counts grouped by thousands, each usage line under its metric's display name
 * (metering.metrics) and the issuer's name (portal.title) when cfg gives them (cfg may be NULL).
 * malloc'd, or NULL. */
char *tg_invoice_to_html(const tg_invoice_t *inv, const tg_customer_t *c, const tg_config_t *cfg);

#endif
