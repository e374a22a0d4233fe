/* line_text.h - an invoice or quote line as people read it, composed when it is shown.
 *
 * A usage line is stored with its fields (metric, used, included, quantity, amount; invoice.c
 * and pricing.c) and a description naming the metric's id ("api_calls above 50000 included (per
 * unit)"). People read it through the configuration in force when it is shown: the metric's
 * display name and unit (metering.metrics) and the allowance grouped by thousands ("API calls
 * above 50,000 included (per call)"). Composing at display time, not storing the text, means a
 * display name changed after an invoice was issued shows on it, and invoices stored before this
 * existed render the same way: the stored JSON is unchanged. A usage line is one with a metric,
 * an "included" count and a description ending in its pricing model, and no "kind" other than
 * "usage". A late usage line (one with "late_period") reads as stored with the metric's display
 * name in place of its id. Any other line (the base fee, a minimum or cap, a one-off item, a kind added later,
 * which says so in "kind") is shown as its stored description.
 *
 * Pure: no I/O, no globals; safe on any thread. */
#ifndef TG_LINE_TEXT_H
#define TG_LINE_TEXT_H

#include <jansson.h>
#include <stddef.h>

#include "config/config.h"

/* Longest text written (NUL included); longer is cut at a character boundary. */
#define TG_LINE_TEXT_MAX 320

/* Writes the text of line (an object of an invoice body's or quote's "lines") into out (cap > 0
 * bytes, always NUL-terminated, cut at a UTF-8 character boundary). cfg may be NULL: metric ids
 * then stand for their names and "unit" for the unit. A line that is not an object gives "".
 * Returns out. */
const char *tg_line_text(const tg_config_t *cfg, const json_t *line, char *out, size_t cap);

/* Sets "text" (tg_line_text) on every object of the array lines, for the APIs that hand lines to
 * pages; lines that are not an array are left alone. Returns 0, or -1 when out of memory. */
int tg_lines_add_text(const tg_config_t *cfg, json_t *lines);

/* The quote as JSON (tg_quote_to_json) with each line's "text": what the calculator's API and
 * `tollgate quote --json` answer, the same for both. NULL when out of memory. */
struct tg_quote;
json_t *tg_quote_json_for_people(const tg_config_t *cfg, const struct tg_quote *q);

#endif
