/* usage_aggregate.c - a batch of usage summed by the key of each total, shared by the store's
 * backends (usage_aggregate.h). Grouping is an open-addressing hash table over the key (one pass,
 * no sort of the rows: sorting thousands of rows by their strings was most of the SQLite fold's
 * CPU); only the groups are sorted, and only when the caller asks. */
#include "store/usage_aggregate.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int tg_usage_row_refused(const tg_usage_t *u, char *why, size_t cap)
{
    if (!tg_usage_terminated(u)) {
        snprintf(why, cap, "a text field of the row has no terminator");
        return 1;
    }
    if (u->units > (uint64_t)INT64_MAX) {
        snprintf(why, cap, "%llu units of %s do not fit in 63 bits", (unsigned long long)u->units, u->metric);
        return 1;
    }
    return 0;
}

/* Sums saturate at 2^63-1: usage reaching nine quintillion units is not a real account, and
 * refusing it would block every later batch behind it. */
uint64_t tg_usage_add_saturating(uint64_t a, uint64_t b)
{
    uint64_t s;
    return __builtin_add_overflow(a, b, &s) || s > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : s;
}

void tg_usage_utc_day(int64_t s, char out[16])
{
    int64_t day = s / 86400 - (s % 86400 < 0);
    time_t t = (time_t)(day * 86400);
    struct tm tm;
    memset(out, 0, 16);
    if (day < -354285) /* before 1000-01-01, where %Y would stop giving four digits */
        snprintf(out, 16, "0000-00-00");
    else if (day > 2932896 || gmtime_r(&t, &tm) == NULL) /* after 9999-12-31 */
        snprintf(out, 16, "9999-99-99");
    else
        strftime(out, 16, "%Y-%m-%d", &tm);
}

int64_t tg_usage_ns_to_s(int64_t ns)
{
    return ns / 1000000000 - (ns % 1000000000 < 0);
}

int64_t tg_usage_bucket_ts(const tg_usage_agg_row_t *r)
{
    int64_t ps = r->u->period_start;
    return ps > r->hour && ps - r->hour < 3600 ? ps : r->hour;
}

int tg_usage_agg_collect(const tg_usage_batch_t *batches, size_t nb, tg_usage_agg_row_t **rows, size_t *n,
                         size_t *nrejected, char *reason, size_t cap, tg_err_t *err)
{
    size_t total = 0;
    *rows = NULL;
    *n = *nrejected = 0;
    for (size_t k = 0; k < nb; k++) {
        if (batches[k].n > SIZE_MAX / sizeof(tg_usage_agg_row_t) - total)
            return tg_errf(err, TG_ENOMEM, "a batch of usage is too large");
        total += batches[k].n;
    }
    tg_usage_agg_row_t *out = malloc((total ? total : 1) * sizeof(*out));
    if (out == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory summing %zu usage rows", total);
    char why[160];
    int64_t last_day = INT64_MIN;
    size_t at = 0;
    for (size_t k = 0; k < nb; k++)
        for (size_t i = 0; i < batches[k].n; i++) {
            const tg_usage_t *u = &batches[k].rows[i];
            if (tg_usage_row_refused(u, why, sizeof(why))) {
                if ((*nrejected)++ == 0 && cap > 0)
                    snprintf(reason, cap, "%s", why);
                continue;
            }
            int64_t sec = tg_usage_ns_to_s(u->ts_ns), day = sec / 86400 - (sec % 86400 < 0);
            out[at].u = u;
            out[at].hour = sec / 3600 * 3600 - (sec % 3600 < 0 ? 3600 : 0);
            if (at > 0 && day == last_day) /* a batch spans a few milliseconds: nearly always one day */
                memcpy(out[at].day, out[at - 1].day, sizeof(out[at].day));
            else
                tg_usage_utc_day(sec, out[at].day);
            last_day = day;
            at++;
        }
    *rows = out;
    *n = at;
    return 0;
}

/* ---- grouping ---- */

#define MIX_K 0x9E3779B97F4A7C15ULL

/* s and its length into h, eight bytes at a time (byte-wise FNV-1a over the four strings of a
 * row was 1.5 % of tollgate's CPU in bench/events.sh, in the applier). Only s's own bytes are
 * read: the bytes after its terminator in the row's array may be anything. */
static uint64_t mix_str(uint64_t h, const char *s)
{
    size_t n = strlen(s);
    h = (h ^ n) * MIX_K;
    for (; n >= 8; s += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * MIX_K;
        h ^= h >> 32;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * MIX_K;
    return h ^ (h >> 32);
}

static uint64_t mix_i64(uint64_t h, int64_t v)
{
    h = (h ^ (uint64_t)v) * MIX_K;
    return h ^ (h >> 29);
}

static uint64_t key_hash(const tg_usage_agg_row_t *r, tg_usage_by_t by)
{
    const tg_usage_t *u = r->u;
    uint64_t h = mix_str(mix_str(1469598103934665603ULL, u->customer_id), u->metric);
    if (by == TG_USAGE_BY_DAY || by == TG_USAGE_BY_ALL)
        h = mix_str(mix_str(h, r->day), u->endpoint);
    if (by != TG_USAGE_BY_DAY)
        h = mix_i64(mix_str(h, u->plan_id), u->period_start);
    if (by == TG_USAGE_BY_HOUR || by == TG_USAGE_BY_ALL)
        h = mix_i64(h, r->hour);
    return h;
}

static int cmp_i64(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

/* The order of two rows' keys (0: the same key), fields in the order of usage_aggregate.h. */
static int key_cmp(const tg_usage_agg_row_t *a, const tg_usage_agg_row_t *b, tg_usage_by_t by)
{
    const tg_usage_t *x = a->u, *y = b->u;
    int c = strcmp(x->customer_id, y->customer_id);
    switch (by) {
    case TG_USAGE_BY_PERIOD:
        if (c == 0 && (c = cmp_i64(x->period_start, y->period_start)) == 0 && (c = strcmp(x->plan_id, y->plan_id)) == 0)
            c = strcmp(x->metric, y->metric);
        return c;
    case TG_USAGE_BY_DAY:
        if (c == 0 && (c = strcmp(a->day, b->day)) == 0 && (c = strcmp(x->metric, y->metric)) == 0)
            c = strcmp(x->endpoint, y->endpoint);
        return c;
    case TG_USAGE_BY_HOUR:
        if (c == 0 && (c = strcmp(x->metric, y->metric)) == 0 && (c = cmp_i64(a->hour, b->hour)) == 0 &&
            (c = cmp_i64(x->period_start, y->period_start)) == 0)
            c = strcmp(x->plan_id, y->plan_id);
        return c;
    case TG_USAGE_BY_ALL:
    default:
        if (c == 0 && (c = cmp_i64(x->period_start, y->period_start)) == 0 &&
            (c = strcmp(x->plan_id, y->plan_id)) == 0 && (c = strcmp(x->metric, y->metric)) == 0 &&
            (c = strcmp(a->day, b->day)) == 0 && (c = cmp_i64(a->hour, b->hour)) == 0)
            c = strcmp(x->endpoint, y->endpoint);
        return c;
    }
}

/* qsort passes no argument to its comparison: the key is set just before, per thread (each
 * thread has its own store connection, and so its own writer). */
static _Thread_local tg_usage_by_t sort_by;

static int cmp_sum(const void *a, const void *b)
{
    return key_cmp(((const tg_usage_sum_t *)a)->key, ((const tg_usage_sum_t *)b)->key, sort_by);
}

int tg_usage_agg_sum(const tg_usage_agg_row_t *rows, size_t n, tg_usage_by_t by, int sorted, tg_usage_sum_t **sums,
                     size_t *nsums, tg_err_t *err)
{
    *sums = NULL;
    *nsums = 0;
    size_t cap = 16;
    while (cap < 2 * n && cap < SIZE_MAX / 4)
        cap *= 2;
    tg_usage_sum_t *out = malloc((n ? n : 1) * sizeof(*out));
    size_t *table = calloc(cap, sizeof(*table)); /* index + 1 into out; 0: empty */
    if (out == NULL || table == NULL || cap < 2 * n) {
        free(out);
        free(table);
        return tg_errf(err, TG_ENOMEM, "out of memory summing %zu usage rows", n);
    }
    size_t groups = 0;
    tg_usage_sum_t *s = NULL; /* the group of the row before */
    for (size_t i = 0; i < n; i++) {
        /* Rows come in runs of one key (a customer's calls, logged together by the event loop
         * that served them): a row of the previous row's group is added without hashing. Under
         * callgrind with one customer (bench/callpath_instructions.sh, 64 connections) the
         * applier's sum went from 691 to 236 instructions per row; a row of another key costs
         * one more comparison, which stops at the first field that differs. */
        if (s == NULL || key_cmp(s->key, &rows[i], by) != 0) {
            size_t k = (size_t)key_hash(&rows[i], by) & (cap - 1);
            while (table[k] != 0 && key_cmp(out[table[k] - 1].key, &rows[i], by) != 0)
                k = (k + 1) & (cap - 1);
            if (table[k] == 0) {
                out[groups] = (tg_usage_sum_t){&rows[i], 0};
                table[k] = ++groups;
            }
            s = &out[table[k] - 1];
        }
        s->units = tg_usage_add_saturating(s->units, rows[i].u->units);
    }
    free(table);
    if (sorted && groups > 1) {
        sort_by = by;
        qsort(out, groups, sizeof(*out), cmp_sum);
    }
    *sums = out;
    *nsums = groups;
    return 0;
}
