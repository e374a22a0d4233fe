/* openapi.h - the upstream API's OpenAPI document (portal.openapi), loaded once and enriched with
 * what tollgate's own configuration says about each operation.
 *
 * The document is read at configuration load (so `check-config` and a reload report a bad file
 * as FILE:LINE, like the configuration itself) and kept, immutable, beside the tg_config_t that
 * named it. The portal serves it through tg_openapi_enrich: every operation gains an
 * "x-tollgate" object saying which plans include it and what one call costs, computed with the
 * gateway's own matching (tg_plan_allows, tg_config_match_route), so the reference cannot
 * disagree with what the gateway answers. No I/O after load; no globals. */
#ifndef TG_OPENAPI_H
#define TG_OPENAPI_H

#include <jansson.h>
#include <stddef.h>

#include "config/config.h"

#define TG_OPENAPI_MAX_BYTES (4 * 1024 * 1024) /* the file */
#define TG_OPENAPI_MAX_OPERATIONS 2000         /* method + path pairs */
#define TG_OPENAPI_MAX_PLAN_WORDS 24           /* a plan's endpoints in words (tg_openapi_plan_words) */
#define TG_OPENAPI_MAX_WORD_BYTES 120          /* a summary or tag longer than this is not used */

typedef struct tg_openapi tg_openapi_t;

/* Reads and validates the OpenAPI 3.0 or 3.1 document at `path` (YAML, or JSON when the first
 * non-blank byte is '{'). On success *out owns it (free with tg_openapi_free) and 0 is returned.
 * Otherwise TG_ECONFIG (or TG_ENOMEM) with every problem found, one per line as
 * "PATH:LINE: message", in errbuf (truncated to errcap). Never prints; thread-safe. */
int tg_openapi_load(const char *path, tg_openapi_t **out, char *errbuf, size_t errcap);

/* Same from memory; `name` stands for the file in messages. */
int tg_openapi_load_string(const char *name, const char *text, size_t len, tg_openapi_t **out, char *errbuf,
                           size_t errcap);

void tg_openapi_free(tg_openapi_t *doc);

/* The number of operations (method + path) in the document. */
size_t tg_openapi_operations(const tg_openapi_t *doc);

/* A new JSON copy of the document (the caller owns it; NULL when out of memory) in which:
 *  - servers is [{url: cfg->public_urls.gateway}] (Try it calls the gateway, never the upstream);
 *  - every operation has "x-tollgate": {"plans": [ids of the plans whose endpoints allow the path,
 *    in configuration order], "weight": N, "meter": [{"metric","units"}]} from the first matching
 *    route (else weight 1 and one api_calls, as the gateway counts);
 *  - the root has "x-tollgate": {"gateway": URL, "plans": [{"id","name","self_service"}]}.
 * A path parameter is matched as its literal "{name}" text: a plan includes the operation only if
 * one of its patterns covers every value of the parameter (a '*'), the conservative answer.
 * Safe from any thread (reads only). */
json_t *tg_openapi_enrich(const tg_openapi_t *doc, const tg_config_t *cfg);

/* Renders the enriched document for cfg once, as the compact JSON the portal serves, and drops
 * the parsed tree (so a reloaded configuration keeps only the bytes). After it, tg_openapi_enrich
 * returns NULL. The configuration loader calls it once cfg is complete: the portal then answers
 * GET /v1/reference by copying bytes, not by rebuilding a document of up to 4 MiB on the admin
 * loop (measured: a 4 MiB, 2000-operation document took 170-600 ms per request to rebuild).
 * Returns 0, or TG_ENOMEM. */
int tg_openapi_prepare(tg_openapi_t *doc, const tg_config_t *cfg);

/* A plan's endpoints in words, for the pricing page: computed by tg_openapi_prepare for each
 * plan of cfg, from the operations each of the plan's endpoint patterns matches (the gateway's
 * own tg_path_match): their summaries when a pattern matches a few, their tags when it matches
 * more, the pattern itself when it matches none; no word twice, at most
 * TG_OPENAPI_MAX_PLAN_WORDS. Returns how many and points *words at them (owned by doc, immutable,
 * valid as long as doc); 0 and NULL for a plan with no endpoints list (every path) or an id the
 * configuration did not have. Safe from any thread (reads only). */
size_t tg_openapi_plan_words(const tg_openapi_t *doc, const char *plan_id, const char *const **words);

/* The bytes tg_openapi_prepare rendered (owned by doc), or NULL before it. */
const char *tg_openapi_body(const tg_openapi_t *doc, size_t *len);

#endif
