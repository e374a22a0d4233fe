/* meter_export.h - billing: stripe: usage goes to Stripe as Billing meter events, once.
 *
 * What is sent. The fold that adds committed usage to the period totals adds it, in the same
 * transaction, to usage_hourly (store_meter.h): per customer, metric and UTC hour (and period
 * and plan), how many units there are and how many were exported. Once an hour has ended, plus
 * TG_METER_EXPORT_SETTLE_S so that an hour is usually complete and sent once, the exporter
 * queues for each (customer, metric, bucket) with unexported units, in ONE transaction with
 * marking those units exported:
 *   POST /v1/billing/meter_events  event_name=<metric>, payload[stripe_customer_id]=
 *   {stripe_customer}, payload[value]=<the unexported units>, identifier=
 *   tg_<customer>_<metric>_<bucket start>_<seq>, timestamp=<bucket start>
 * through the outbox, whose idempotency key is derived from the identifier
 * (tg_meter_event.create_<identifier>). A bucket starts at the hour's start, or at the period's
 * start when a billing period began inside the hour (the timestamp decides which Stripe period
 * bills the units, so the units of a new period must not carry the hour's earlier start). Units
 * that arrive for a bucket after it was sent (a metering log replayed after a crash, a database
 * that was down) go in a later event with seq + 1 carrying only the new units. An event Stripe
 * refused for its timestamp (400: nothing counted) whose bucket is now past the 33 days has its
 * units taken back (its outbox row closed as "sent again as late usage", so a requeue cannot
 * send it twice) and they go as late usage.
 *
 * Exactly once. Marking and queuing commit together: a crash before the commit leaves the units
 * unexported and nothing queued (the next pass queues the same identifier), after it the outbox
 * row is durable and is sent until Stripe answers, with the same Idempotency-Key (Stripe replays
 * its saved answer) and the same identifier (Stripe refuses a second event with it: a 400 that
 * tg_meter_event_duplicate recognises and the outbox records as done, not failed).
 *
 * Too late for a meter event. Stripe takes timestamps up to 35 days old, and bills a period's
 * meter events received until its invoice is finalized: the invoice is drafted when the period
 * ends and finalized after a grace period of 1 hour (Stripe's default). So a bucket is LATE when
 * it is older than TG_METER_EXPORT_MAX_AGE_S (33 days: 2 days of margin for an outbox that is
 * down) or its period ended TG_METER_EXPORT_GRACE_S (40 minutes: 20 of margin for the outbox's
 * queue) or more ago. Late units are never sent as events: they go on the customer's next Stripe
 * invoice as an invoice item (POST /v1/invoiceitems, pending, swept into the next invoice), one
 * per (customer, period, plan, metric) and pass, whose amount is tollgate's price of those extra
 * units in that period: price(X + L) - price(X), X the units of the period already sent (meter
 * events, which Stripe's invoice billed, and earlier late items), L the late units; exact in the
 * currency's minor unit (pricing.h), so Stripe's invoice plus the items equal tollgate's price of
 * the whole period. An item of amount 0 (units inside an allowance) is not sent; the units are
 * marked exported all the same.
 *
 * Why the admin thread's tick (every ~10 s, like billing.finalize_after) and not the outbox
 * thread: queuing is a write in the caller's transaction on the admin back thread's connection,
 * like every other enqueue, and the decisions follow the service clock (tg_sub_now), which the
 * test clock moves, as the period close does; the outbox thread stays the only one that talks to
 * Stripe and knows nothing of usage.
 *
 * Stripe's limits. About 1,000 meter event calls per second, and one concurrent call per customer
 * and meter: the outbox sends one call at a time, so neither can be passed (and a 429 pauses
 * every call). One event per customer, metric and hour keeps the volume at customers x metrics
 * per hour whatever the traffic. The same sequential outbox bounds it from the other side: at
 * ~100 ms a call (Stripe's usual latency) it sends ~36,000 calls an hour, so an hour's events
 * for more customer-metric pairs than that would fall behind (and, at a period's end, past the
 * 40 minutes); a parallel sender would be the next step there.
 *
 * Limits (not handled, said plainly):
 *  - Stripe keeps identifiers and idempotency keys for at least 24 hours. A meter event whose
 *    answer was lost and that is sent again more than a day later (tollgate down that long with
 *    the row pending) could be counted twice; the owner sees such rows in the outbox.
 *  - A meter event queued in time but still unsent when Stripe finalizes the period's invoice
 *    (the outbox stuck for the 20 minutes of margin) is accepted and billed by no invoice. (One
 *    queued near the 33-day limit and stuck past Stripe's 35 days is refused, which counts
 *    nothing: the next pass takes its units back and sends them as late usage.)
 *  - Late items are priced where the period's sent units stand when they are sent. For a monthly
 *    plan a late bucket's period is always over, so that is exact; in an open yearly period
 *    (33 days old, the period still running) with tiered prices, meter events sent after the
 *    item are priced by Stripe from zero, not after the item's units.
 *  - Usage folded while export was off (before billing: stripe was set) is never sent. */
#ifndef TG_METER_EXPORT_H
#define TG_METER_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "billing/subscriptions.h"
#include "config/config.h"
#include "util/err.h"

#define TG_METER_EXPORT_SETTLE_S 300           /* after an hour's end before it is sent */
#define TG_METER_EXPORT_MAX_AGE_S (33 * 86400) /* Stripe: 35 days */
#define TG_METER_EXPORT_GRACE_S (40 * 60)      /* Stripe: finalization 1 hour after the period */
#define TG_METER_EXPORT_KEEP_S (40 * 86400)    /* fully sent hours are deleted after this */
#define TG_METER_IDENTIFIER_MAX 100            /* Stripe's limit on identifier */

/* The meter event identifier of (customer_id, metric, ts, seq) into out (cap bytes):
 * "tg_<customer>_<metric>_<ts>_<seq>". When that passes TG_METER_IDENTIFIER_MAX characters
 * (a long metric name), the metric is replaced by "m" and 16 hex digits of its FNV-1a hash, so
 * the identifier stays a stable function of the four. Pure. 0, or TG_EINVAL if it cannot fit. */
int tg_meter_identifier(const char *customer_id, const char *metric, int64_t ts, int64_t seq, char *out, size_t cap);

/* When the period that starts at period_start ended, for a customer whose period anchor is
 * anchor_s on a plan billed every `interval`: the boundary after period_start from the anchor;
 * when the anchor is after period_start (a plan change started a new period), the earlier of
 * the anchor and one interval after period_start. Pure. */
int64_t tg_meter_period_end(int64_t anchor_s, tg_interval_t interval, int64_t period_start);

/* 1 if the units of a bucket starting at ts, in a period ending at period_end, are too late for
 * a meter event at now_s (see above), 0 if they go as one. Pure. */
int tg_meter_is_late(int64_t now_s, int64_t ts, int64_t period_end);

/* The price of `late` more units of metric on plan after `before` units of the same period:
 * price(before + late) - price(before), each the charge's usage line as an invoice prices it
 * (allowance, tiers, packages; rounded to the minor unit), into *minor in the unit Stripe counts
 * the currency in (tg_stripe_currency_digits: ISK in hundredths). A metric no charge prices
 * costs 0. Pure. 0, TG_EINVAL, TG_ERANGE. */
int tg_meter_late_amount(const tg_plan_t *plan, const char *metric, uint64_t before, uint64_t late, int64_t *minor,
                         tg_err_t *err);

/* 1 if Stripe's answer to a call of outbox kind `kind` says that a meter event with the same
 * identifier was counted before: a 400 on TG_OUTBOX_KIND_METER_EVENT whose error code is
 * duplicate_meter_event (the code Stripe's API specification documents), or that names the
 * identifier parameter with "already exists" (what some answers carry instead). The outbox
 * records such a row as done. Pure. */
int tg_meter_event_duplicate(const char *kind, long status, const char *error_code, const char *error_param,
                             const char *message);

/* What a pass did. */
typedef struct tg_meter_export_run {
    size_t events;  /* meter events queued */
    size_t items;   /* late-usage invoice items queued */
    size_t skipped; /* buckets left for a later pass (their customer or plan is unknown) */
    char first_skip[TG_ERR_MAX];
} tg_meter_export_run_t;

/* One pass of the exporter at tg_sub_now(x), on x->store (the admin back thread's connection),
 * in transactions of a few hundred buckets; call it from the admin tick when stripe.billing is
 * stripe. Flushes x->meter first when something is due. *run is filled on every return; run->
 * events + run->items > 0 means the outbox has work (wake it). Returns the first error (the
 * batch it broke rolls back whole and is tried again next pass). */
int tg_meter_export_run(const tg_sub_ctx_t *x, tg_meter_export_run_t *run, tg_err_t *err);

#endif
