/* yaml2json.c - a build step: `yaml2json IN.yaml OUT.json` writes the YAML document IN as compact
 * JSON (keys in their order), for docs/openapi.yaml -> the /openapi.json built into the binary.
 *
 * Why at build time and in C: the admin listener then serves fixed bytes (no YAML parser on the
 * request path, nothing to fail at start), a broken docs/openapi.yaml breaks `make` rather than a
 * running gateway, and the build needs only what it already has (libyaml through the config
 * loader's src/config/yaml_doc.c, which caps depth and node count, and jansson); no node. The tool
 * is built for the build host with the plain flags, not the sanitizer or fuzzer ones, since it
 * runs as part of those builds.
 *
 * Scalars follow the YAML 1.2 core schema: a plain (unquoted) `null`/`~`/empty is null,
 * `true`/`false` booleans, decimal integers and decimals numbers; everything quoted, and every
 * mapping key, is a string (OpenAPI's status-code keys such as 200 must be strings). A duplicate
 * key is an error. */
#include <errno.h>
#include <jansson.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/yaml_doc.h"

#define MAX_INPUT (4 * 1024 * 1024)

static int matches(const char *pattern, const char *s)
{
    regex_t re;
    if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
        return 0;
    int ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

/* The JSON value of n, or NULL with a sentence on stderr. */
static json_t *convert(const tg_ynode_t *n, const char *file)
{
    if (n == NULL)
        return json_null();
    if (n->type == TG_YNODE_SCALAR) {
        if (!n->plain)
            return json_stringn(n->text, n->len);
        if (tg_ynode_is_null(n))
            return json_null();
        if (strcmp(n->text, "true") == 0 || strcmp(n->text, "false") == 0)
            return json_boolean(n->text[0] == 't');
        if (matches("^-?(0|[1-9][0-9]*)$", n->text)) {
            errno = 0;
            long long v = strtoll(n->text, NULL, 10);
            if (errno == 0)
                return json_integer((json_int_t)v);
        }
        if (matches("^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][-+]?[0-9]+)?$", n->text))
            return json_real(strtod(n->text, NULL));
        return json_stringn(n->text, n->len);
    }
    json_t *out = n->type == TG_YNODE_SEQ ? json_array() : json_object();
    for (size_t i = 0; out != NULL && i < n->n; i += n->type == TG_YNODE_SEQ ? 1 : 2) {
        if (n->type == TG_YNODE_SEQ) {
            json_t *v = convert(n->items[i], file);
            if (v == NULL || json_array_append_new(out, v) != 0) {
                json_decref(out);
                return NULL;
            }
            continue;
        }
        const tg_ynode_t *k = n->items[i];
        if (k->type != TG_YNODE_SCALAR) {
            fprintf(stderr, "%s:%d: a mapping key must be a scalar\n", file, k->line);
            json_decref(out);
            return NULL;
        }
        if (json_object_get(out, k->text) != NULL) {
            fprintf(stderr, "%s:%d: duplicate key \"%s\"\n", file, k->line, k->text);
            json_decref(out);
            return NULL;
        }
        json_t *v = convert(n->items[i + 1], file);
        if (v == NULL || json_object_set_new(out, k->text, v) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: yaml2json IN.yaml OUT.json\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    char *buf = malloc(MAX_INPUT + 1);
    size_t len = f != NULL && buf != NULL ? fread(buf, 1, MAX_INPUT + 1, f) : 0;
    if (f == NULL || buf == NULL || ferror(f) || len > MAX_INPUT) {
        fprintf(stderr, "%s: %s\n", argv[1], len > MAX_INPUT ? "larger than 4 MiB" : strerror(errno));
        if (f != NULL)
            fclose(f);
        free(buf);
        return 1;
    }
    fclose(f);
    tg_ynode_t *root = NULL;
    tg_ydoc_error_t e = {0};
    int rc = tg_ydoc_load(buf, len, &root, &e);
    free(buf);
    if (rc != 0) {
        fprintf(stderr, "%s:%d: %s\n", argv[1], e.line, e.msg);
        return 1;
    }
    json_t *doc = convert(root, argv[1]);
    tg_ydoc_free(root);
    if (doc == NULL)
        return 1;
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", argv[2]) >= (int)sizeof(tmp)) {
        json_decref(doc);
        return 1;
    }
    rc = json_dump_file(doc, tmp, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (rc != 0 || rename(tmp, argv[2]) != 0) {
        fprintf(stderr, "%s: cannot write\n", argv[2]);
        return 1;
    }
    return 0;
}
