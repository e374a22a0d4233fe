/* period.c - see period.h. Calendar arithmetic is done by hand on int64 days (Howard Hinnant's
 * civil-from-days algorithm) rather than through timegm/gmtime, which are not thread-safe
 * everywhere and go through time_t. */
#include "util/period.h"

int64_t tg_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

int tg_days_in_month(int64_t year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
        return 29;
    return days[month - 1];
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Month counts beyond this put the boundary past the int64 range of seconds (about 292 billion
 * years either way); they saturate instead of overflowing. */
#define MAX_MONTHS (INT64_C(300000000000) * 12)

int64_t tg_period_boundary(int64_t anchor_s, tg_interval_t interval, int64_t n)
{
    int64_t day = floor_div(anchor_s, 86400), secs = anchor_s - day * 86400;
    int64_t y;
    int m, d;
    civil_from_days(day, &y, &m, &d);
    int64_t step = interval == TG_INTERVAL_YEAR ? 12 : 1;
    if (n > MAX_MONTHS / step)
        return INT64_MAX;
    if (n < -MAX_MONTHS / step)
        return INT64_MIN;
    int64_t months = (int64_t)(m - 1) + n * step;
    int64_t ny = y + floor_div(months, 12);
    int nm = (int)(months - floor_div(months, 12) * 12) + 1;
    int dim = tg_days_in_month(ny, nm);
    int nd = d > dim ? dim : d;
    /* The day count fits easily; only its conversion to seconds can leave int64. */
    int64_t s;
    if (__builtin_mul_overflow(tg_days_from_civil(ny, nm, nd), INT64_C(86400), &s) ||
        __builtin_add_overflow(s, secs, &s))
        return n > 0 ? INT64_MAX : INT64_MIN;
    return s;
}

static void compute_bounds(int64_t anchor_s, tg_interval_t interval, int64_t now_s, int64_t *start_s, int64_t *end_s)
{
    int64_t n = 0;
    if (now_s > anchor_s) {
        /* Estimate from the average Gregorian month (or year), then correct by a step or two.
         * The difference is taken unsigned: now - anchor can exceed INT64_MAX. */
        uint64_t per = interval == TG_INTERVAL_YEAR ? 31556952 : 2629746;
        n = (int64_t)(((uint64_t)now_s - (uint64_t)anchor_s) / per);
        while (n > 0 && tg_period_boundary(anchor_s, interval, n) > now_s)
            n--;
        /* A saturated boundary (INT64_MAX) ends the last representable period. */
        for (int64_t next; (next = tg_period_boundary(anchor_s, interval, n + 1)) <= now_s && next != INT64_MAX;)
            n++;
    }
    *start_s = tg_period_boundary(anchor_s, interval, n);
    *end_s = tg_period_boundary(anchor_s, interval, n + 1);
}

/* The bounds are a pure function of (anchor, interval) and which period `now` falls in, and the
 * request path asks for them on every call (gateway.c's decide): about 470 instructions each
 * under callgrind, for an answer that changes once a month. So each thread keeps the last
 * period it computed per (anchor, interval), in a small direct-mapped table, and answers from it
 * while `now` stays inside [start, end). Nothing to invalidate: a plan change or a new anchor is
 * another key, and a cached answer is exactly what the computation would return for any `now`
 * in its range (the boundaries increase with n, so one period holds each instant). Only periods
 * that contain the `now` they were computed for are kept. */
#define BOUNDS_MEMO_SLOTS 64 /* a power of two; collisions only cost a recomputation */

struct bounds_memo {
    int64_t anchor_s, start_s, end_s; /* end_s > start_s marks a used slot */
    tg_interval_t interval;
};

_Static_assert(BOUNDS_MEMO_SLOTS == 64, "tg_period_bounds indexes the memo with the top 6 bits of a hash");
static _Thread_local struct bounds_memo bounds_memo[BOUNDS_MEMO_SLOTS];

void tg_period_bounds(int64_t anchor_s, tg_interval_t interval, int64_t now_s, int64_t *start_s, int64_t *end_s)
{
    uint64_t h = ((uint64_t)anchor_s ^ (uint64_t)interval) * UINT64_C(0x9E3779B97F4A7C15);
    struct bounds_memo *m = &bounds_memo[h >> 58]; /* the top 6 bits: BOUNDS_MEMO_SLOTS = 64 */
    if (m->anchor_s == anchor_s && m->interval == interval && m->start_s <= now_s && now_s < m->end_s) {
        *start_s = m->start_s;
        *end_s = m->end_s;
        return;
    }
    compute_bounds(anchor_s, interval, now_s, start_s, end_s);
    if (*start_s <= now_s && now_s < *end_s)
        *m = (struct bounds_memo){.anchor_s = anchor_s, .start_s = *start_s, .end_s = *end_s, .interval = interval};
}
