/* yaml_json.h - a YAML tree (yaml_doc.h) as a jansson value: the one conversion shared by the
 * library (apiref/openapi.c, for portal.openapi) and the build tool tools/gen/yaml2json.c (for
 * docs/openapi.yaml -> the /openapi.json built into the binary). The tool cannot link
 * libtollgate, so this file depends on nothing but yaml_doc.h, util/err.h's codes and jansson;
 * the Makefile compiles it into both.
 *
 * Scalars follow the YAML 1.2 core schema: a plain (unquoted) `null`/`~`/empty is null,
 * `true`/`false` booleans, decimal integers (that fit in a long long) integers and decimals
 * reals; everything quoted, every other plain scalar, and every mapping key, is a string
 * (OpenAPI's status-code keys such as 200 must stay strings). Keys keep their file order. */
#ifndef TG_YAML_JSON_H
#define TG_YAML_JSON_H

#include <jansson.h>

#include "config/yaml_doc.h"

/* Converts the tree under root (NULL, an empty document, becomes JSON null). On success *out
 * owns a new reference (json_decref it) and 0 is returned. On failure *out is NULL and the
 * return is TG_ECONFIG, with e->line (1-based) and e->msg saying what and where:
 *   - a mapping key that is not a scalar;
 *   - a duplicate key in one mapping;
 *   - nesting deeper than TG_YDOC_MAX_DEPTH or more than TG_YDOC_MAX_NODES nodes (the loader
 *     already refuses both; checked again here so that any tree converts in bounded stack and
 *     memory);
 * or TG_ENOMEM (e->line 0). The first problem stops the conversion. Never prints; thread-safe;
 * root is only read. */
int tg_yaml_to_json(const tg_ynode_t *root, json_t **out, tg_ydoc_error_t *e);

#endif
