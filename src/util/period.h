/* period.h - billing periods anchored at a subscription's start, in UTC.
 *
 * A monthly period starting on the 31st ends on the last day of shorter months (Jan 31 -> Feb 28
 * or 29 -> Mar 31): each boundary is computed from the anchor, never from the previous boundary,
 * so clamping does not drift. */
#ifndef TG_PERIOD_H
#define TG_PERIOD_H

#include <stdint.h>

typedef enum tg_interval { TG_INTERVAL_MONTH = 0, TG_INTERVAL_YEAR = 1 } tg_interval_t;

/* The n-th boundary after `anchor_s` (n = 0 is the anchor itself), seconds since the epoch. */
int64_t tg_period_boundary(int64_t anchor_s, tg_interval_t interval, int64_t n);

/* The period containing `now_s`: [*start_s, *end_s). For now_s before the anchor, the first
 * period is returned. */
void tg_period_bounds(int64_t anchor_s, tg_interval_t interval, int64_t now_s, int64_t *start_s,
                      int64_t *end_s);

/* Days in a month (month 1..12) of a proleptic Gregorian year. */
int tg_days_in_month(int64_t year, int month);

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar (negative before it); m is
 * 1..12, d 1..31, not checked against the month. Howard Hinnant's days_from_civil. */
int64_t tg_days_from_civil(int64_t y, int m, int d);

#endif
