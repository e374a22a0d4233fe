/* usage_aggregate.h - the part of storing usage that every backend shares: which rows the totals
 * refuse, the UTC day and hour a call counts in, and a batch summed by the key of each total
 * (usage_period, usage_daily, usage_hourly), saturating at INT64_MAX. No I/O, no clock, no
 * globals: the backends (store_sqlite_usage.c, store_pg_usage.c) only write the sums.
 *
 * Rows are grouped by their text fields up to the terminator, so they need not be zero padded;
 * a row's fields must be terminated (tg_usage_row_refused refuses the others first). */
#ifndef TG_STORE_USAGE_AGGREGATE_H
#define TG_STORE_USAGE_AGGREGATE_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* One call's row with the UTC day and hour it counts in. */
typedef struct tg_usage_agg_row {
    const tg_usage_t *u;
    char day[16]; /* "YYYY-MM-DD" (zero padded) */
    int64_t hour; /* start of the UTC hour, seconds */
} tg_usage_agg_row_t;

/* The key a batch is summed by. */
typedef enum tg_usage_by {
    TG_USAGE_BY_PERIOD, /* customer, period_start, plan, metric: usage_period */
    TG_USAGE_BY_DAY,    /* customer, day, metric, endpoint: usage_daily */
    TG_USAGE_BY_HOUR,   /* customer, metric, hour, period_start, plan: usage_hourly */
    TG_USAGE_BY_ALL,    /* all of them: a batch before the SQLite backend journals it */
} tg_usage_by_t;

/* One group: key points at the group's first row (its key fields), units is the group's sum. */
typedef struct tg_usage_sum {
    const tg_usage_agg_row_t *key;
    uint64_t units; /* at most INT64_MAX */
} tg_usage_sum_t;

/* 1 (and why, into why[cap]) if the totals cannot take row u: a text field without its
 * terminator, or units past INT64_MAX; else 0. The backends keep such rows aside in
 * usage_rejected and store the rest of the batch. */
int tg_usage_row_refused(const tg_usage_t *u, char *why, size_t cap);

/* a + b, or INT64_MAX when the sum would pass it. */
uint64_t tg_usage_add_saturating(uint64_t a, uint64_t b);

/* "YYYY-MM-DD" of the UTC day holding second s (floor). Seconds outside years 1000-9999 clamp to
 * "0000-00-00" / "9999-99-99", which still order correctly as text. */
void tg_usage_utc_day(int64_t s, char out[16]);

/* Floor of ns / 10^9: the second holding a nanosecond time, before 1970 too. */
int64_t tg_usage_ns_to_s(int64_t ns);

/* The start of r's usage_hourly bucket: the hour, or the period's start when a period began
 * inside the hour. */
int64_t tg_usage_bucket_ts(const tg_usage_agg_row_t *r);

/* The rows of batches[0..nb) that the totals take, each with its day and hour, into *rows (malloc'd,
 * the caller frees it; it points into batches, which must outlive it) and *n; the refused ones are
 * counted in *nrejected, and the reason of the first is put in reason[cap]. 0, or TG_ENOMEM. */
int tg_usage_agg_collect(const tg_usage_batch_t *batches, size_t nb, tg_usage_agg_row_t **rows, size_t *n,
                         size_t *nrejected, char *reason, size_t cap, tg_err_t *err);

/* Sums rows[0..n) by `by` into *sums (malloc'd, the caller frees it; it points into rows) and
 * *nsums. With sorted, the groups come in the order of their key (customer, then the other fields
 * of the key in the order listed above), so that writers that lock the totals take the locks in
 * one order; else in an order of their own. 0, or TG_ENOMEM. */
int tg_usage_agg_sum(const tg_usage_agg_row_t *rows, size_t n, tg_usage_by_t by, int sorted, tg_usage_sum_t **sums,
                     size_t *nsums, tg_err_t *err);

#endif
