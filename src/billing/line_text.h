/* line_text.h - an invoice or quote line as people read it, composed when it is shown.
 *
 * A usage line is stored with its fields (metric, used, included, quantity, amount; invoice.c
 * and pricing.c) and a description naming the metric's id ("api_calls above 50000 included (per
 * unit)"). People read it through the configuration in force when it is shown: the metric's
 * display name and unit (metering.metrics) and the allowance grouped by thousands ("API calls
 * above 50,000 included (per call)"). Composing at display time, not storing the text, means a
 * display name changed after an invoice was issued shows on it, and invoices stored before this
 * existed render the same way: the stored JSON is unchanged. What a line is comes from its
 * "kind" (pricing.h, tg_line_kind_name): a "usage" line is composed from its fields, with the
 * pricing model its description ends in (a usage line whose description ends otherwise reads as
 * stored); a "late_usage" line reads as stored with the metric's display name in place of its id;
 * any other kind (the base fee, a proration, a minimum or cap, an item, a credit, a kind this
 * version does not know) is its stored description. Lines stored before kinds existed are read
 * by their shape: a usage line is one with a metric, an "included" count and a description
 * ending in its pricing model; a late line one with "late_period".
 *
 * Pure: no I/O, no globals; safe on any thread. */
#ifndef TG_LINE_TEXT_H
#define TG_LINE_TEXT_H

#include <jansson.h>
#include <stddef.h>

#include "billing/pricing.h"
#include "config/config.h"

/* The kind of a line of an invoice body (an object of its "lines"): 0 with *out set from its
 * "kind"; TG_ENOTFOUND when it has none (stored before kinds existed: the caller reads its shape
 * as it did then); TG_EINVAL when "kind" is not a name this version knows (the caller keeps the
 * line as it is). */
int tg_line_stored_kind(const json_t *line, tg_line_kind_t *out);

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
