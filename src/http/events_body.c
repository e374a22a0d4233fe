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
            bad(e, "value", "must be a whole number from 1 to 9223372036854775807");
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

int tg_events_body_parse(const char *body, size_t len, size_t max_batch, json_t **doc, tg_event_in_t **in,
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
