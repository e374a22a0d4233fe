/* fuzz_openapi.c - the OpenAPI document loader (portal.openapi) against arbitrary text, YAML and
 * JSON (libFuzzer). Properties: it either loads a document or refuses with at least one message,
 * every message line starting with "fuzz.yaml:<line>:"; a loaded document has at most
 * TG_OPENAPI_MAX_OPERATIONS operations, and its enrichment for a configuration renders as JSON
 * that parses back, with "x-tollgate" at the root; nothing leaks or reads out of bounds. */
#include <ctype.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apiref/openapi.h"
#include "config/config.h"

static tg_config_t *config(void)
{
    static tg_config_t *cfg;
    static const char yaml[] = "upstream: {url: 'http://127.0.0.1:9'}\n"
                               "admin: {token: 'tok-0123456789abcdef'}\n"
                               "keys: {secret: '0123456789abcdef0123456789abcdef'}\n"
                               "plans:\n"
                               "  free: {price: '0', endpoints: ['/v1/basic/*', '/a/*']}\n"
                               "  pro: {price: '9'}\n"
                               "routes: [{match: 'POST /v1/*', weight: 10, meter: {api_calls: 1, images: 2}}]\n";
    char err[1024];
    if (cfg == NULL && tg_config_load_string("fuzz-config.yaml", yaml, sizeof(yaml) - 1, &cfg, err, sizeof(err)) != 0)
        abort();
    return cfg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char errbuf[8192];
    tg_openapi_t *doc = NULL;
    errbuf[0] = '\0';
    int rc = tg_openapi_load_string("fuzz.yaml", (const char *)data, size, &doc, errbuf, sizeof(errbuf));
    if (rc == 0) {
        if (doc == NULL || tg_openapi_operations(doc) > TG_OPENAPI_MAX_OPERATIONS)
            abort();
        if (tg_openapi_prepare(doc, config()) != 0)
            abort();
        size_t len;
        const char *body = tg_openapi_body(doc, &len);
        json_t *j = body != NULL ? json_loadb(body, len, 0, NULL) : NULL;
        if (j == NULL || !json_is_object(json_object_get(j, "x-tollgate")))
            abort();
        json_decref(j);
        tg_openapi_free(doc);
        return 0;
    }
    if (doc != NULL || errbuf[0] == '\0')
        abort();
    if (strncmp(errbuf, "fuzz.yaml:", 10) != 0 || !isdigit((unsigned char)errbuf[10]))
        abort();
    return 0;
}
