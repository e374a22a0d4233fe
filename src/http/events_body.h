/* events_body.h - the body of POST /v1/events, read into the events service's input (no HTTP
 * here, so that it can be fuzzed alone: tests/fuzz/fuzz_events_body.c).
 *
 * {"events": [{"id", "customer" | "key", "metric", "value", "timestamp", "properties"}]}.
 * The JSON types are checked here and a wrong one is recorded in the event's bad_field and
 * bad_message (the service reports it as that event's refusal); the rules (lengths, ranges,
 * existence) are the service's (metering/events.h). properties must be an object of at most
 * 4 KiB serialised and 8 levels deep; they are checked and not kept (the metering has no use
 * for them yet). An unknown field refuses the event, so a typo ("metrc") is not silently lost. */
#ifndef TG_EVENTS_BODY_H
#define TG_EVENTS_BODY_H

#include <jansson.h>
#include <stddef.h>

#include "metering/events.h"
#include "util/err.h"

#define TG_EVENT_PROPERTIES_MAX_BYTES 4096
#define TG_EVENT_PROPERTIES_MAX_DEPTH 8

/* Parses body (len bytes, not NUL-terminated). 0 with *in (calloc'd, n events, n >= 1) whose
 * strings point into *doc when it is not NULL (json_decref it after in), else into body (a plain
 * batch is read in place: body must then outlive in); TG_EINVAL with err's message when the body
 * is not such an object or has no events; TG_ELIMIT when it has more than max_batch (*n says how
 * many); TG_ENOMEM. On an error nothing is left to free. */
int tg_events_body_parse(const char *body, size_t len, size_t max_batch, json_t **doc, tg_event_in_t **in, size_t *n,
                         tg_err_t *err);

/* The same through jansson's tree always (the path for every body the in-place reader gives up
 * on); for the fuzz target, which checks that both read the same events. */
int tg_events_body_parse_tree(const char *body, size_t len, size_t max_batch, json_t **doc, tg_event_in_t **in,
                              size_t *n, tg_err_t *err);

#endif
