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
 * The conversion itself (scalar types, duplicate keys, caps) is src/config/yaml_json.c, the same
 * file the library uses for portal.openapi documents; the Makefile compiles it into this tool. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/yaml_doc.h"
#include "config/yaml_json.h"

#define MAX_INPUT (4 * 1024 * 1024)

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
    json_t *doc = NULL;
    rc = tg_yaml_to_json(root, &doc, &e);
    tg_ydoc_free(root);
    if (rc != 0) {
        fprintf(stderr, "%s:%d: %s\n", argv[1], e.line, e.msg);
        return 1;
    }
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
