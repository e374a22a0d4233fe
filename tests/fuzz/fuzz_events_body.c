/* fuzz_events_body.c - the body of POST /v1/events (http/events_body.c) and the RFC 3339
 * timestamps in it (tg_events_parse_time) against arbitrary bytes (libFuzzer). The body comes
 * from whoever holds an ingest token. Properties: a parse that succeeds gives 1 to MAX_BATCH
 * events; every string it points to lies inside the document and has no NUL in the length given;
 * an event the parser did not refuse has no field of a wrong type (its value is set only when it
 * was an integer); a timestamp that parses is at or after 1970 and parses again to the same
 * instant; an error leaves nothing to free (LeakSanitizer checks). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/events_body.h"

#define MAX_BATCH 64

static void check_string(const char *s, size_t len)
{
    if (s != NULL && (memchr(s, '\0', len) != NULL || strlen(s) != len))
        abort();
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
    if (rc != 0) {
        if (doc != NULL || in != NULL || err.msg[0] == '\0')
            abort();
        return 0;
    }
    if (n == 0 || n > MAX_BATCH)
        abort();
    for (size_t i = 0; i < n; i++) {
        const tg_event_in_t *e = &in[i];
        if (e->bad_field != NULL) {
            if (e->bad_message == NULL)
                abort();
            continue;
        }
        check_string(e->id, e->id_len);
        check_string(e->customer, e->customer_len);
        check_string(e->key, e->key_len);
        check_string(e->metric, e->metric_len);
        check_string(e->timestamp, e->timestamp_len);
        if (e->timestamp != NULL && tg_events_parse_time(e->timestamp, e->timestamp_len, &ns) == 0 && ns < 0)
            abort();
    }
    free(in);
    json_decref(doc);
    return 0;
}
