/* line_text.c - see line_text.h. */
#include "billing/line_text.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/pricing.h"
#include "util/money_text.h"
#include "util/utf8.h"

/* The pricing model a usage line was priced under, for people: pricing.c ends the stored
 * description with it in parentheses (tg_price_model_name), the only place a line records it.
 * "per unit" reads as "per call" with the metric's unit; the others keep their names. NULL when
 * the description ends otherwise (a line written by something else: shown as stored). */
static const char *usage_model(const char *desc)
{
    static const char *const models[] = {"per unit", "graduated", "volume", "package"};
    size_t n = strlen(desc);
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++) {
        size_t m = strlen(models[i]);
        if (n >= m + 2 && desc[n - 1] == ')' && desc[n - m - 2] == '(' && strncmp(desc + n - m - 1, models[i], m) == 0)
            return models[i];
    }
    return NULL;
}

/* The kind of a line for its text: its "kind" (-1 for a name this version does not know); for a
 * line stored without one, guessed from its shape as before kinds existed: a late line has
 * "late_period", a usage line a metric, an "included" count and a description ending in its
 * pricing model; anything else reads as stored (TG_LINE_ITEM stands for those). */
static int text_kind(const json_t *line, const char *desc, const char *metric)
{
    tg_line_kind_t kind;
    int rc = tg_line_stored_kind(line, &kind);
    if (rc != TG_ENOTFOUND)
        return rc == 0 ? (int)kind : -1;
    if (json_is_object(json_object_get(line, "late_period")))
        return TG_LINE_LATE_USAGE;
    if (metric != NULL && json_is_integer(json_object_get(line, "included")) && desc != NULL &&
        usage_model(desc) != NULL)
        return TG_LINE_USAGE;
    return TG_LINE_ITEM;
}

int tg_line_stored_kind(const json_t *line, tg_line_kind_t *out)
{
    const json_t *named = json_object_get(line, "kind");
    if (named == NULL)
        return TG_ENOTFOUND;
    return tg_line_kind_parse(json_string_value(named), out);
}

const char *tg_line_text(const tg_config_t *cfg, const json_t *line, char *out, size_t cap)
{
    out[0] = '\0';
    if (!json_is_object(line))
        return out;
    const char *desc = json_string_value(json_object_get(line, "description"));
    const char *metric = json_string_value(json_object_get(line, "metric"));
    const json_t *included = json_object_get(line, "included");
    int kind = text_kind(line, desc, metric);
    /* the pricing model is only in the description's ending (pricing.c): a usage line written
     * otherwise reads as stored */
    const char *model = desc != NULL ? usage_model(desc) : NULL;
    size_t mlen = metric != NULL ? strlen(metric) : 0;
    if (kind == TG_LINE_LATE_USAGE && metric != NULL && desc != NULL && strncmp(desc, metric, mlen) == 0 &&
        desc[mlen] == ' ') {
        /* late usage (invoice.c): "api_calls used 2026-01-01 to 2026-01-31, reported after ...",
         * its dates already for people; only the metric's id becomes its name */
        snprintf(out, cap, "%s%s", tg_config_metric_name(cfg, metric), desc + mlen);
    } else if (kind != TG_LINE_USAGE || metric == NULL || !json_is_integer(included) || model == NULL) {
        snprintf(out, cap, "%s", desc != NULL ? desc : "");
    } else {
        /* included is a uint64 in the body: the unlimited allowance (UINT64_MAX) reads back as -1 */
        uint64_t allowance = (uint64_t)json_integer_value(included);
        const char *name = tg_config_metric_name(cfg, metric);
        char count[32], allowance_text[48] = "";
        if (allowance == TG_UNLIMITED)
            snprintf(allowance_text, sizeof(allowance_text), ", unlimited included");
        else if (allowance > 0 && tg_count_text(allowance, count, sizeof(count)) >= 0)
            snprintf(allowance_text, sizeof(allowance_text), " above %s included", count);
        if (strcmp(model, "per unit") == 0)
            snprintf(out, cap, "%s%s (per %s)", name, allowance_text, tg_config_metric_unit(cfg, metric));
        else
            snprintf(out, cap, "%s%s (%s)", name, allowance_text, model);
    }
    tg_utf8_scrub(out); /* snprintf may have cut a long name inside a character */
    return out;
}

int tg_lines_add_text(const tg_config_t *cfg, json_t *lines)
{
    size_t i;
    json_t *l;
    char text[TG_LINE_TEXT_MAX];
    json_array_foreach(lines, i, l)
    {
        if (json_is_object(l) &&
            json_object_set_new(l, "text", json_string(tg_line_text(cfg, l, text, sizeof(text)))) != 0)
            return -1;
    }
    return 0;
}

json_t *tg_quote_json_for_people(const tg_config_t *cfg, const struct tg_quote *q)
{
    char *text = tg_quote_to_json(q);
    json_t *body = text != NULL ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (body != NULL && tg_lines_add_text(cfg, json_object_get(body, "lines")) != 0) {
        json_decref(body);
        body = NULL;
    }
    return body;
}
