/* records.h - the records tollgate keeps: customers, API keys, usage, sessions, invoices.
 *
 * Plain values shared by the layers that decide (gateway, billing, keys, metering) and the
 * storage backends that keep them (src/store). Nothing here knows where a record is stored, so
 * a domain module that only handles records includes this header and not the store's. */
#ifndef TG_RECORDS_H
#define TG_RECORDS_H

#include <stdint.h>
#include <string.h>

#define TG_ID_MAX 40 /* "cus_" / "key_" + 24 chars + NUL, with room */
#define TG_PLAN_ID_MAX 64
#define TG_EMAIL_MAX 256
#define TG_NAME_MAX 256
#define TG_METRIC_MAX 64
#define TG_ENDPOINT_MAX 128
#define TG_KEY_PREFIX_MAX 24
#define TG_STATUS_MAX 16
#define TG_NODE_ID_MAX 64 /* a gateway's id among several (cluster.node_id), with its NUL */

#define TG_TRIAL_AT_CARD 1 /* trial_end of an incomplete customer granted the trial */

typedef struct tg_customer {
    char id[TG_ID_MAX];
    char email[TG_EMAIL_MAX];
    char name[TG_NAME_MAX];
    char plan_id[TG_PLAN_ID_MAX];
    char status[TG_STATUS_MAX];           /* trialing | active | past_due | suspended | canceled */
    int64_t created_at;                   /* seconds since epoch */
    int64_t anchor_at;                    /* billing period anchor, seconds */
    int64_t trial_end;                    /* seconds; 0 = no trial; while status is "incomplete",
                                           * TG_TRIAL_AT_CARD = the plan's trial starts with the card */
    char pending_plan_id[TG_PLAN_ID_MAX]; /* a downgrade waiting for pending_at; "" = none */
    int64_t pending_at;
    int64_t cancel_at; /* access ends then (0 = not canceled) */
    int64_t email_confirmed_at; /* seconds; 0 = the address is not confirmed (migration 25). Written
                                 * by tg_store_customer_confirm_email only: customer_update keeps it */
} tg_customer_t;

typedef struct tg_key {
    char id[TG_ID_MAX];
    char customer_id[TG_ID_MAX];
    uint8_t hash[32];               /* HMAC-SHA-256(server secret, key) */
    char prefix[TG_KEY_PREFIX_MAX]; /* display prefix, e.g. "tg_live_Ab3x" */
    char name[TG_NAME_MAX];
    int64_t created_at;
    int64_t expires_at;   /* 0 = never */
    int64_t revoked_at;   /* 0 = not revoked */
    int64_t last_used_at; /* 0 = never */
} tg_key_t;

/* One metered quantity of one call. A call metering several metrics produces several records
 * with the same event_id. */
typedef struct tg_usage {
    uint64_t event_id;
    char customer_id[TG_ID_MAX];
    char key_id[TG_ID_MAX];
    char plan_id[TG_PLAN_ID_MAX];
    char metric[TG_METRIC_MAX];
    char endpoint[TG_ENDPOINT_MAX]; /* "METHOD /path" route or path, for breakdowns */
    uint64_t units;
    int64_t ts_ns;        /* when the call was decided */
    int64_t period_start; /* seconds: the customer's billing period it counts against */
    int status;           /* upstream HTTP status */
} tg_usage_t;

/* Rows of POST /v1/events (metering/events.h) are told apart from calls' rows by both marks:
 * their endpoint, and bit 63 of event_id (calls' ids, tg_meter_next_event_id, stay below it).
 * Their other 63 bits are a keyed BLAKE2b of (customer, event id), keyed from keys.secret, so
 * the same event gets the same event_id on every node: the store counts each (customer_id,
 * event_id) once, whichever node logged it (store.h, tg_store_usage_record_many). */
#define TG_USAGE_EVENT_ENDPOINT "POST /v1/events"
#define TG_USAGE_EVENT_BIT (UINT64_C(1) << 63)

static inline int tg_usage_is_event(const tg_usage_t *u)
{
    return (u->event_id & TG_USAGE_EVENT_BIT) != 0 &&
           strncmp(u->endpoint, TG_USAGE_EVENT_ENDPOINT, sizeof(u->endpoint)) == 0;
}

/* The length of the string in a field of tg_usage_t (an array of cap bytes, cap a multiple of
 * 8), or cap when it has no terminator: strnlen, eight bytes a step and inline (five strnlen
 * calls per row, twice per row on the way to the metering log, were 4 % of tollgate's CPU in
 * bench/events.sh). The bytes after the terminator may be anything: the first zero byte is
 * found exactly (the lowest flagged byte of the "has a zero byte" trick is always a real zero). */
static inline size_t tg_usage_field_len(const char *s, size_t cap)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
    for (size_t i = 0; i + 8 <= cap; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap64(w);
#endif
        uint64_t zero = (w - ones) & ~w & highs;
        if (zero != 0)
            return i + (size_t)__builtin_ctzll(zero) / 8;
    }
    return cap;
}

_Static_assert(TG_ID_MAX % 8 == 0 && TG_PLAN_ID_MAX % 8 == 0 && TG_METRIC_MAX % 8 == 0 && TG_ENDPOINT_MAX % 8 == 0,
               "tg_usage_field_len reads the fields 8 bytes at a time");

/* 1 if every string field of u ends inside its array: a row that can be logged and stored.
 * The meter refuses other rows at submit; the log and the store check again at their edge. */
static inline int tg_usage_terminated(const tg_usage_t *u)
{
    return tg_usage_field_len(u->customer_id, TG_ID_MAX) < TG_ID_MAX &&
           tg_usage_field_len(u->key_id, TG_ID_MAX) < TG_ID_MAX &&
           tg_usage_field_len(u->plan_id, TG_PLAN_ID_MAX) < TG_PLAN_ID_MAX &&
           tg_usage_field_len(u->metric, TG_METRIC_MAX) < TG_METRIC_MAX &&
           tg_usage_field_len(u->endpoint, TG_ENDPOINT_MAX) < TG_ENDPOINT_MAX;
}

typedef struct tg_session {
    uint8_t token_hash[32];
    char customer_id[TG_ID_MAX];
    char csrf_token[72];
    int64_t created_at, expires_at;
} tg_session_t;

/* Invoices. Amounts are tg_money_t nano-units; body is the invoice's JSON (lines and totals),
 * written once and never changed after finalization. */
#define TG_INVOICE_NUMBER_MAX 32

typedef struct tg_invoice {
    char id[TG_ID_MAX];
    char customer_id[TG_ID_MAX];
    int64_t period_start, period_end;
    char status[TG_STATUS_MAX];         /* draft | open | paid | void | uncollectible */
    char number[TG_INVOICE_NUMBER_MAX]; /* "" until finalized */
    char currency[4];
    int64_t total;
    char *body; /* malloc'd JSON; tg_invoice_clear frees it */
    int64_t created_at, finalized_at, closed_at;
    int held; /* a draft the owner holds: billing.finalize_after leaves it */
} tg_invoice_t;

void tg_invoice_clear(tg_invoice_t *inv);

/* Unbilled usage of a customer for one period, plan and metric: units of that period not yet on
 * an invoice. A period before the invoice's own is late usage (it arrived after that period was
 * invoiced): invoiced says how many units of it the earlier invoice billed already, so that the
 * late units are priced after them (billing/invoice.c). */
typedef struct tg_unbilled {
    char plan_id[TG_PLAN_ID_MAX];
    char metric[TG_METRIC_MAX];
    uint64_t units;
    int64_t period_start; /* the period the usage was metered in */
    uint64_t invoiced;    /* units of that (period, plan, metric) on an invoice already */
    /* Late usage (a period before the invoice's) of which nothing was invoiced: 1 when that
     * period's invoice billed plan_id's minimum all the same (a line of kind "minimum" of that
     * plan: a period without usage billed at its minimum, billing/invoice.h), so that the late
     * units are priced on top of it (tg_price_late_in_period's quoted); 0 otherwise, and always
     * for usage of the invoice's own period. */
    int quoted;
} tg_unbilled_t;

/* A one-off amount for the next invoice (e.g. the proration of a plan change). */
typedef struct tg_invoice_item {
    int64_t id;
    char customer_id[TG_ID_MAX];
    int64_t created_at;
    char description[TG_NAME_MAX];
    int64_t amount;
    char currency[4];
} tg_invoice_item_t;

#endif
