/* fuzz_events_body.c - the body of POST /v1/events (http/events_body.c) and the RFC 3339
 * timestamps in it (tg_events_parse_time) against arbitrary bytes (libFuzzer). The body comes
 * from whoever holds an ingest token. Properties: a parse that succeeds gives 1 to MAX_BATCH
 * events; every string it points to lies inside the document and has no NUL in the length given;
 * an event the parser did not refuse has no field of a wrong type (its value is set only when it
 * was an integer); a timestamp that parses is at or after 1970 and parses again to the same
 * instant; an error leaves nothing to free (LeakSanitizer checks); and the in-place reader
 * (tg_events_body_parse) reads exactly the events jansson's tree does
 * (tg_events_body_parse_tree), field by field, or gives the same error; an event it marks
 * plain has printable ASCII (0x20-0x7e) without '"' or '\\' in every string, which the
 * service then does not check again and the answer does not escape. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/events_body.h"

#define MAX_BATCH 64

static void check_string(const char *s, size_t len, const uint8_t *data, size_t size, const json_t *doc)
{
    if (s == NULL)
        return;
    if (memchr(s, '\0', len) != NULL)
        abort();
    /* in place: inside the body; else in the tree (NUL-terminated there) */
    if (doc == NULL ? (s < (const char *)data || s + len > (const char *)data + size) : strlen(s) != len)
        abort();
}

/* s, where set, is what tg_event_in_t.plain promises. */
static void check_plain(const char *s, size_t len)
{
    for (size_t i = 0; s != NULL && i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
            abort();
}

static int same_str(const char *a, size_t al, const char *b, size_t bl)
{
    return (a == NULL) == (b == NULL) && (a == NULL || (al == bl && memcmp(a, b, al) == 0));
}

static int same_event(const tg_event_in_t *a, const tg_event_in_t *b)
{
    return same_str(a->id, a->id_len, b->id, b->id_len) &&
           same_str(a->customer, a->customer_len, b->customer, b->customer_len) &&
           same_str(a->key, a->key_len, b->key, b->key_len) &&
           same_str(a->metric, a->metric_len, b->metric, b->metric_len) &&
           same_str(a->timestamp, a->timestamp_len, b->timestamp, b->timestamp_len) && a->has_value == b->has_value &&
           (!a->has_value || a->value == b->value) && (a->bad_field == NULL) == (b->bad_field == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t ns, again;
    if (tg_events_parse_time((const char *)data, size, &ns) == 0) {
        if (ns < 0 || tg_events_parse_time((const char *)data, size, &again) != 0 || again != ns)
            abort();
    }
    json_t *doc;
    tg_event_in_t *in;
    size_t n;
    tg_err_t err = {0};
    int rc = tg_events_body_parse((const char *)data, size, MAX_BATCH, &doc, &in, &n, &err);
    json_t *tdoc;
    tg_event_in_t *tin;
    size_t tn;
    tg_err_t terr = {0};
    int trc = tg_events_body_parse_tree((const char *)data, size, MAX_BATCH, &tdoc, &tin, &tn, &terr);
    if (trc != rc)
        abort();
    if (rc != 0) {
        if (doc != NULL || in != NULL || err.msg[0] == '\0' || tdoc != NULL || tin != NULL)
            abort();
        return 0;
    }
    if (tn != n)
        abort();
    for (size_t i = 0; i < n; i++)
        if (!same_event(&in[i], &tin[i]))
            abort();
    free(tin);
    json_decref(tdoc);
    if (n == 0 || n > MAX_BATCH)
        abort();
    for (size_t i = 0; i < n; i++) {
        const tg_event_in_t *e = &in[i];
        if (e->bad_field != NULL) {
            if (e->bad_message == NULL)
                abort();
            continue;
        }
        check_string(e->id, e->id_len, data, size, doc);
        check_string(e->customer, e->customer_len, data, size, doc);
        check_string(e->key, e->key_len, data, size, doc);
        check_string(e->metric, e->metric_len, data, size, doc);
        check_string(e->timestamp, e->timestamp_len, data, size, doc);
        if (e->timestamp != NULL && tg_events_parse_time(e->timestamp, e->timestamp_len, &ns) == 0 && ns < 0)
            abort();
        if (e->plain) {
            check_plain(e->id, e->id_len);
            check_plain(e->customer, e->customer_len);
            check_plain(e->key, e->key_len);
            check_plain(e->metric, e->metric_len);
            check_plain(e->timestamp, e->timestamp_len);
        }
    }
    free(in);
    json_decref(doc);
    return 0;
}
