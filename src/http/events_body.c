/* events_body.c - see events_body.h. */
#include "http/events_body.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int depth_ok(json_t *v, int depth)
{
    if (depth > TG_EVENT_PROPERTIES_MAX_DEPTH)
        return 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) if (!depth_ok(x, depth + 1)) return 0;
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) if (!depth_ok(x, depth + 1)) return 0;
    }
    return 1;
}

static void bad(tg_event_in_t *e, const char *field, const char *message)
{
    if (e->bad_field == NULL) {
        e->bad_field = field;
        e->bad_message = message;
    }
}

static void read_string(json_t *o, const char *name, tg_event_in_t *e, const char **s, size_t *len)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL || json_is_null(v))
        return;
    if (!json_is_string(v)) {
        bad(e, name, "must be a string");
        return;
    }
    *s = json_string_value(v);
    *len = json_string_length(v);
    if (memchr(*s, '\0', *len) != NULL)
        bad(e, name, "must not contain a NUL character");
}

/* One element of "events" into e. Types are checked here; the rules are the service's. */
static void read_event(json_t *o, tg_event_in_t *e)
{
    memset(e, 0, sizeof(*e));
    if (!json_is_object(o)) {
        bad(e, "", "each event must be a JSON object");
        return;
    }
    read_string(o, "id", e, &e->id, &e->id_len);
    read_string(o, "customer", e, &e->customer, &e->customer_len);
    read_string(o, "key", e, &e->key, &e->key_len);
    read_string(o, "metric", e, &e->metric, &e->metric_len);
    read_string(o, "timestamp", e, &e->timestamp, &e->timestamp_len);
    json_t *v = json_object_get(o, "value");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_integer(v)) /* jansson refuses integers past INT64's range at parse time */
            bad(e, "value", "must be a whole number from 1 to metering.max_units_per_call");
        else
            e->has_value = 1, e->value = (int64_t)json_integer_value(v);
    }
    json_t *p = json_object_get(o, "properties");
    if (p != NULL && !json_is_null(p)) {
        if (!json_is_object(p))
            bad(e, "properties", "must be a JSON object");
        else if (!depth_ok(p, 1))
            bad(e, "properties", "is nested more than 8 levels deep");
        else if (json_dumpb(p, NULL, 0, JSON_COMPACT) > TG_EVENT_PROPERTIES_MAX_BYTES)
            bad(e, "properties", "is larger than 4096 bytes");
    }
    const char *k;
    json_t *x;
    json_object_foreach(o, k, x)
    {
        if (strcmp(k, "id") != 0 && strcmp(k, "customer") != 0 && strcmp(k, "key") != 0 && strcmp(k, "metric") != 0 &&
            strcmp(k, "value") != 0 && strcmp(k, "timestamp") != 0 && strcmp(k, "properties") != 0) {
            bad(e, "", "has an unknown field (allowed: id, customer, key, metric, value, timestamp, properties)");
            break;
        }
    }
}

int tg_events_body_parse_tree(const char *body, size_t len, size_t max_batch, json_t **doc, tg_event_in_t **in,
                              size_t *n, tg_err_t *err)
{
    *doc = NULL;
    *in = NULL;
    *n = 0;
    json_error_t jerr;
    /* jansson's own depth limit (2048) bounds the recursion of the parse; duplicate keys are
     * refused so that "value" cannot mean two things */
    json_t *d = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (d == NULL)
        return tg_errf(err, TG_EINVAL, "The body is not JSON: %.200s (line %d, column %d).", jerr.text, jerr.line,
                       jerr.column);
    json_t *list = json_object_get(d, "events");
    if (!json_is_object(d) || !json_is_array(list) || json_object_size(d) != 1) {
        json_decref(d);
        return tg_errf(err, TG_EINVAL, "The body must be a JSON object {\"events\": [...]} and nothing else.");
    }
    size_t count = json_array_size(list);
    if (count == 0) {
        json_decref(d);
        return tg_errf(err, TG_EINVAL, "The batch has no events.");
    }
    if (count > max_batch) {
        json_decref(d);
        *n = count;
        return tg_errf(err, TG_ELIMIT, "The batch has %zu events; at most %zu are taken at once (events.max_batch).",
                       count, max_batch);
    }
    tg_event_in_t *events = calloc(count, sizeof(*events));
    if (events == NULL) {
        json_decref(d);
        return tg_errf(err, TG_ENOMEM, "Out of memory: send the batch again.");
    }
    for (size_t i = 0; i < count; i++)
        read_event(json_array_get(list, i), &events[i]);
    *doc = d;
    *in = events;
    *n = count;
    return 0;
}

/* ---- the fast path: this one schema, read in place ----
 * jansson builds a tree of every batch: about 3.5 us an event here, most of the gateway's time
 * on this route (README, "Metering usage that is not an API call"). Nearly every batch is plain:
 * the six fields, strings of printable ASCII without escapes, whole numbers. Those are read here
 * in one pass, the strings left where they are in the body; anything else (an escape, another
 * byte, properties, another field or type, a repeated field, an empty or too large batch, a
 * syntax error) makes the scanner give up and jansson read the body, so both paths give the same
 * events for every body this one takes (tests/fuzz/fuzz_events_body.c checks it). */

typedef struct scan {
    const char *p, *end;
} scan_t;

static void skip_ws(scan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int take(scan_t *s, char c)
{
    skip_ws(s);
    if (s->p >= s->end || *s->p != c)
        return 0;
    s->p++;
    return 1;
}

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* Non-zero when one of the 8 bytes of w is below 0x20, above 0x7e, '"' or '\\' (the classic
 * "has a zero byte" bit tricks: exact as a yes or no). */
static uint64_t stops_in(uint64_t w)
{
    uint64_t quote = w ^ (ONES * '"'), backslash = w ^ (ONES * '\\');
    uint64_t below = (w - ONES * 0x20) & ~w, above = (w + ONES * (0x80 - 0x7f)) | w;
    return (below | above | ((quote - ONES) & ~quote) | ((backslash - ONES) & ~backslash)) & HIGHS;
}

/* A string of printable ASCII without escapes: its bytes in place. */
static int plain_string(scan_t *s, const char **str, size_t *len)
{
    if (!take(s, '"'))
        return 0;
    const char *start = s->p;
    /* eight bytes a step while none of them ends the string or needs a look (a byte a step was
     * 5 % of tollgate's CPU in bench/events.sh); the bytes one at a time from the first that does */
    while (s->end - s->p >= 8) {
        uint64_t w;
        memcpy(&w, s->p, 8);
        if (stops_in(w) != 0)
            break;
        s->p += 8;
    }
    while (s->p < s->end && *s->p != '"') {
        unsigned char c = (unsigned char)*s->p;
        if (c < 0x20 || c > 0x7e || c == '\\')
            return 0;
        s->p++;
    }
    if (s->p >= s->end)
        return 0;
    *str = start;
    *len = (size_t)(s->p - start);
    s->p++;
    return 1;
}

/* A JSON integer (no fraction, no exponent) that fits int64_t. */
static int plain_integer(scan_t *s, int64_t *out)
{
    skip_ws(s);
    int neg = s->p < s->end && *s->p == '-';
    s->p += neg;
    if (s->p >= s->end || *s->p < '0' || *s->p > '9' ||
        (*s->p == '0' && s->p + 1 < s->end && s->p[1] >= '0' && s->p[1] <= '9'))
        return 0;
    uint64_t v = 0;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
        unsigned d = (unsigned)(*s->p++ - '0');
        if (v > (UINT64_C(9223372036854775808) - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    if (s->p < s->end && (*s->p == '.' || *s->p == 'e' || *s->p == 'E'))
        return 0;
    if (!neg && v > (uint64_t)INT64_MAX)
        return 0;
    *out = neg ? (v == UINT64_C(9223372036854775808) ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return 1;
}

static int fast_event(scan_t *s, tg_event_in_t *e)
{
    memset(e, 0, sizeof(*e));
    if (!take(s, '{'))
        return 0;
    if (take(s, '}'))
        return 1;
    unsigned seen = 0;
    do {
        const char *k;
        size_t kl;
        if (!plain_string(s, &k, &kl) || !take(s, ':'))
            return 0;
        /* The six names have six lengths: one comparison of a constant size each, which the
         * compiler inlines (a memcmp call per field was 3 % of tollgate's CPU in bench/events.sh). */
        unsigned which = 6;
        switch (kl) {
        case 2:
            which = memcmp(k, "id", 2) == 0 ? 0 : 6;
            break;
        case 8:
            which = memcmp(k, "customer", 8) == 0 ? 1 : 6;
            break;
        case 3:
            which = memcmp(k, "key", 3) == 0 ? 2 : 6;
            break;
        case 6:
            which = memcmp(k, "metric", 6) == 0 ? 3 : 6;
            break;
        case 9:
            which = memcmp(k, "timestamp", 9) == 0 ? 4 : 6;
            break;
        case 5:
            which = memcmp(k, "value", 5) == 0 ? 5 : 6;
            break;
        default:
            break;
        }
        if (which == 6 || (seen & (1u << which)) != 0)
            return 0;
        seen |= 1u << which;
        const char **str[] = {&e->id, &e->customer, &e->key, &e->metric, &e->timestamp};
        size_t *lens[] = {&e->id_len, &e->customer_len, &e->key_len, &e->metric_len, &e->timestamp_len};
        if (which == 5) {
            if (!plain_integer(s, &e->value))
                return 0;
            e->has_value = 1;
        } else if (!plain_string(s, str[which], lens[which])) {
            return 0;
        }
    } while (take(s, ','));
    e->plain = 1; /* plain_string took printable ASCII without '"' or '\\' only */
    return take(s, '}');
}

static int fast_parse(const char *body, size_t len, size_t max_batch, tg_event_in_t **in, size_t *n)
{
    scan_t s = {body, body + len};
    const char *k;
    size_t kl, cap = 0, count = 0;
    tg_event_in_t *events = NULL;
    if (!take(&s, '{') || !plain_string(&s, &k, &kl) || kl != 6 || memcmp(k, "events", 6) != 0 || !take(&s, ':') ||
        !take(&s, '['))
        return 0;
    do {
        if (count == max_batch)
            goto give_up;
        if (count == cap) {
            cap = cap != 0 ? cap * 2 : 64;
            cap = cap < max_batch ? cap : max_batch;
            tg_event_in_t *grown = realloc(events, cap * sizeof(*events));
            if (grown == NULL)
                goto give_up;
            events = grown;
        }
        if (!fast_event(&s, &events[count++]))
            goto give_up;
    } while (take(&s, ','));
    if (!take(&s, ']') || !take(&s, '}'))
        goto give_up;
    skip_ws(&s);
    if (s.p != s.end)
        goto give_up;
    *in = events;
    *n = count;
    return 1;
give_up:
    free(events);
    return 0;
}

int tg_events_body_parse(const char *body, size_t len, size_t max_batch, json_t **doc, tg_event_in_t **in, size_t *n,
                         tg_err_t *err)
{
    *doc = NULL;
    if (fast_parse(body, len, max_batch, in, n))
        return 0;
    return tg_events_body_parse_tree(body, len, max_batch, doc, in, n, err);
}
