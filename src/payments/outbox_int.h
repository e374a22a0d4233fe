/* outbox_int.h - what outbox.c (enqueue, the processor loop) and outbox_subscriptions.c (the
 * subscription calls of billing: stripe) share. Private to src/payments/. */
#ifndef TG_OUTBOX_INT_H
#define TG_OUTBOX_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "payments/outbox.h"

#define TG_OUTBOX_PRICE_CACHE 64 /* lookup keys remembered during one pass of the processor */

typedef struct tg_outbox_price {
    char lookup_key[256]; /* Stripe allows 200 characters */
    char id[TG_OUTBOX_RESPONSE_ID_MAX];
} tg_outbox_price_t;

struct tg_outbox {
    tg_store_t *st;
    char *secret_key, *api_base;
    tg_stripe_settings_t stripe;
    int64_t base_ms, cap_ms, poll_ms;
    int max_attempts;
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    int stopping, wake;
    _Atomic uint64_t calls_ok, calls_retry, calls_permanent, rows_failed, pending;
    _Atomic int cancel; /* set by tg_outbox_stop: cuts the call in flight short */
    _Atomic uint64_t passes;
    int64_t pause_until_ms; /* processor only: after a 429, no call before this */
    int64_t pruned_at_ms;   /* processor only */
    /* processor only: {stripe_price:<key>} resolved during the current pass (emptied at the
     * start of each pass, so a price that sync-catalog replaced is looked up again) */
    tg_outbox_price_t prices[TG_OUTBOX_PRICE_CACHE];
    size_t nprices;
};

/* A copy of s (n bytes) with every `from` replaced by `to` (*out_len gets its length); NULL when
 * out of memory. */
char *tg_outbox_replace_all(const char *s, size_t n, const char *from, const char *to, size_t *out_len);

/* Resolves a placeholder in a row about to be sent: every from_path in its path and every
 * from_params (the placeholder's form-encoded spelling) in its params becomes `to` (NULL: that
 * side has none). 0, or -1 when out of memory or the path would pass its cap (row unchanged: the
 * caller defers it). */
int tg_outbox_row_substitute(tg_outbox_row_t *row, const char *from_path, const char *from_params, const char *to);

/* What tg_outbox_prepare_subscription decided about a row. */
typedef enum tg_outbox_prep {
    TG_OUTBOX_PREP_SEND = 0,   /* send the row as it now is (placeholders resolved, params rewritten) */
    TG_OUTBOX_PREP_HANDLED,    /* the row was deferred or failed here: nothing more to do */
    TG_OUTBOX_PREP_DONE,       /* Stripe is already as the row wants it: done, response id in done_id */
    TG_OUTBOX_PREP_CALL_FAILED /* a lookup call failed: *res and err say how; record it as an attempt */
} tg_outbox_prep_t;

/* The processor's step for the subscription calls, run after {stripe_customer} and before the
 * call: resolves {stripe_subscription} and every {stripe_price:<key>} (GET /v1/prices, cached
 * for the pass), then for a "subscription.items" row reads the subscription and rewrites the
 * params into the item changes that make it match (tg_outbox_subscription_swap), and for a
 * DELETE of a subscription checks that it is not canceled already. Processor thread only. */
tg_outbox_prep_t tg_outbox_prepare_subscription(tg_outbox_t *ob, tg_outbox_row_t *row, int64_t now_ms,
                                                tg_stripe_result_t *res, char *done_id, size_t done_cap,
                                                tg_err_t *err);

/* After a "subscription.create" row was answered with subscription id sub_id: records it as the
 * customer's (before the row is marked done, so a crash in between only replays the call). */
int tg_outbox_subscription_created(tg_outbox_t *ob, const tg_outbox_row_t *row, const char *sub_id, int64_t now_s,
                                   tg_err_t *err);

/* One item of a Stripe subscription as read back from Stripe. */
typedef struct tg_outbox_sub_item {
    char id[TG_OUTBOX_RESPONSE_ID_MAX];    /* si_... */
    char price[TG_OUTBOX_RESPONSE_ID_MAX]; /* price_... */
    char slot[128];                        /* metadata[tollgate_slot]; "" on an item tollgate did not make */
} tg_outbox_sub_item_t;
#define TG_OUTBOX_SUB_ITEMS_MAX 20 /* Stripe's limit on a subscription's items */

/* Pure. params (len bytes): a "subscription.items" row's form, prices resolved: the wanted items
 * as items[i][price] with items[i][metadata][tollgate_slot], and other fields, which are copied.
 * cur (ncur): the subscription's items now. Appends to out the update that makes the items
 * match, per slot: an item of a wanted slot with another price gets items[k][id] +
 * items[k][price] (the item, and the usage Stripe keeps on it, stays; only its price changes); an
 * item whose slot is no longer wanted gets items[k][id] + items[k][deleted]=true; a wanted slot
 * without an item is added (items[k][price] + its slot). Items without a slot (added in Stripe by
 * the owner) are left alone. *changes gets the number of item entries written: 0 means the
 * subscription is as wanted already. TG_EINVAL for a malformed form, TG_ELIMIT past the caps. */
int tg_outbox_subscription_swap(const char *params, size_t len, const tg_outbox_sub_item_t *cur, size_t ncur,
                                tg_form_t *out, int *changes, tg_err_t *err);

#endif
