/* test_openapi.c - portal.openapi: the document loader's checks and limits (YAML and JSON, every
 * problem with its line), the configuration key that names it, and the enrichment the portal
 * serves, which must agree with the gateway's own plan and route matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apiref/openapi.h"
#include "config/config.h"
#include "util/err.h"

static const char GOOD[] = "openapi: 3.0.3\n"
                           "info: {title: Demo, version: '1'}\n"
                           "paths:\n"
                           "  /v1/basic/echo/{word}:\n"
                           "    parameters: [{name: word, in: path, required: true}]\n"
                           "    get:\n"
                           "      tags: [basic]\n"
                           "      responses: {'200': {$ref: '#/components/responses/Ok'}}\n"
                           "  /v1/vision/classify:\n"
                           "    post: {tags: [vision], responses: {'200': {description: ok}}}\n"
                           "    get: {tags: [vision]}\n"
                           "components:\n"
                           "  responses:\n"
                           "    Ok: {description: fine}\n";

static int load(const char *text, char *err, size_t cap, tg_openapi_t **out)
{
    return tg_openapi_load_string("api.yaml", text, strlen(text), out, err, cap);
}

static void test_good_yaml_and_json(void **state)
{
    (void)state;
    char err[2048];
    tg_openapi_t *doc = NULL;
    assert_int_equal(load(GOOD, err, sizeof(err), &doc), 0);
    assert_int_equal(tg_openapi_operations(doc), 3);
    tg_openapi_free(doc);
    const char *json = "{\"openapi\": \"3.1.0\", \"info\": {\"title\": \"J\", \"version\": \"1\"},\n"
                       " \"paths\": {\"/a\": {\"get\": {\"responses\": {\"200\": {\"description\": \"x\"}}}}}}";
    assert_int_equal(tg_openapi_load_string("api.json", json, strlen(json), &doc, err, sizeof(err)), 0);
    assert_int_equal(tg_openapi_operations(doc), 1);
    tg_openapi_free(doc);
}

/* Each bad document: the error names the file and the line of the offending node. */
static void test_bad_documents(void **state)
{
    (void)state;
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"openapi: '2.0'\ninfo: {title: x}\npaths: {}\n", "api.yaml:1: openapi: \"2.0\" is not a 3.0.x or 3.1.x"},
        {"info: {title: x}\npaths: {}\n", "api.yaml:1: openapi is required"},
        {"openapi: 3.0.0\ninfo: {}\npaths: {}\n", "api.yaml:2: info.title is required"},
        {"openapi: 3.0.0\ninfo: {title: x}\n", "paths must be a mapping"},
        {"openapi: 3.0.0\ninfo: {title: x}\npaths:\n  v1/a: {}\n", "api.yaml:4: paths: \"v1/a\" must start with '/'"},
        {"openapi: 3.0.0\ninfo: {title: x}\npaths:\n  /a:\n    get: 3\n", "api.yaml:5: paths./a.get must be a mapping"},
        {"openapi: 3.0.0\ninfo: {title: x}\npaths:\n  /a:\n    get:\n      parameters:\n        - {name: q, in: "
         "body}\n",
         "api.yaml:7: paths./a.get.parameters[0].in must be path, query, header or cookie"},
        {"openapi: 3.0.0\ninfo: {title: x}\npaths:\n  /a:\n    get:\n      responses:\n        '200': {$ref: "
         "'#/nope'}\n",
         "api.yaml:7: $ref \"#/nope\" does not resolve"},
        {"openapi: 3.0.0\ninfo: {title: x}\npaths:\n  /a:\n    get:\n      responses:\n        '200': {$ref: "
         "'other.yaml#/x'}\n",
         "api.yaml:7: $ref \"other.yaml#/x\" points outside the document"},
        {"openapi: 3.0.0\ninfo: {title: x}\npaths:\n  /a: {get: {tags: x}}\n",
         "api.yaml:4: paths./a.get.tags must be a list"},
        {"openapi: 3.0.0\ninfo: {title: x\npaths: {}\n", "api.yaml:"}, /* YAML syntax: libyaml's words */
        {"openapi: 3.0.0\nopenapi: 3.0.1\ninfo: {title: x}\npaths: {}\n", "api.yaml:2: duplicate key \"openapi\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[2048] = "";
        tg_openapi_t *doc = NULL;
        int rc = load(cases[i].text, err, sizeof(err), &doc);
        if (rc != TG_ECONFIG || strstr(err, cases[i].want) == NULL)
            fail_msg("case %zu: rc %d, got \"%s\", wanted \"%s\"", i, rc, err, cases[i].want);
        assert_null(doc);
    }
}

static void test_json_syntax_error_has_line(void **state)
{
    (void)state;
    const char *json = "{\"openapi\": \"3.0.0\",\n \"info\": {\"title\": \"x\"},\n \"paths\": {,}\n}";
    char err[1024];
    tg_openapi_t *doc = NULL;
    assert_int_equal(tg_openapi_load_string("api.json", json, strlen(json), &doc, err, sizeof(err)), TG_ECONFIG);
    assert_non_null(strstr(err, "api.json:3: column"));
    /* duplicate keys, which jansson refuses when asked */
    json = "{\"openapi\": \"3.0.0\", \"openapi\": \"3.1.0\", \"info\": {\"title\": \"x\"}, \"paths\": {}}";
    assert_int_equal(tg_openapi_load_string("api.json", json, strlen(json), &doc, err, sizeof(err)), TG_ECONFIG);
    assert_non_null(strstr(err, "api.json:1:"));
}

/* Every problem is reported, not only the first. */
static void test_all_problems_reported(void **state)
{
    (void)state;
    char err[4096];
    tg_openapi_t *doc = NULL;
    assert_int_equal(load("openapi: '2.0'\ninfo: {}\npaths:\n  x: {}\n", err, sizeof(err), &doc), TG_ECONFIG);
    assert_non_null(strstr(err, "api.yaml:1: openapi"));
    assert_non_null(strstr(err, "api.yaml:2: info.title"));
    assert_non_null(strstr(err, "api.yaml:4: paths: \"x\""));
}

static void test_limits(void **state)
{
    (void)state;
    char err[1024];
    tg_openapi_t *doc = NULL;
    /* the size cap: one byte over is refused before parsing */
    size_t big = TG_OPENAPI_MAX_BYTES + 1;
    char *text = malloc(big + 1);
    assert_non_null(text);
    memset(text, '#', big);
    text[big] = '\0';
    assert_int_equal(tg_openapi_load_string("big.yaml", text, big, &doc, err, sizeof(err)), TG_ECONFIG);
    assert_non_null(strstr(err, "big.yaml:0: larger than 4 MiB"));
    free(text);
    /* nesting deeper than the YAML reader's cap */
    char deep[4096];
    size_t n = (size_t)snprintf(deep, sizeof(deep), "openapi: 3.0.0\ninfo: {title: x}\npaths: {/a: {get: {x-d: ");
    for (int i = 0; i < 60; i++)
        deep[n++] = '[';
    for (int i = 0; i < 60; i++)
        deep[n++] = ']';
    n += (size_t)snprintf(deep + n, sizeof(deep) - n, "}}}\n");
    assert_int_equal(tg_openapi_load_string("deep.yaml", deep, n, &doc, err, sizeof(err)), TG_ECONFIG);
    assert_non_null(strstr(err, "deep.yaml:3:"));
    /* the operation cap */
    size_t cap = 64 + (size_t)(TG_OPENAPI_MAX_OPERATIONS + 1) * 40;
    char *many = malloc(cap);
    assert_non_null(many);
    size_t m = (size_t)snprintf(many, cap, "openapi: 3.0.0\ninfo: {title: x}\npaths:\n");
    for (int i = 0; i <= TG_OPENAPI_MAX_OPERATIONS; i++)
        m += (size_t)snprintf(many + m, cap - m, "  /p%d: {get: {}}\n", i);
    assert_int_equal(tg_openapi_load_string("many.yaml", many, m, &doc, err, sizeof(err)), TG_ECONFIG);
    assert_non_null(strstr(err, "more than 2000 operations"));
    free(many);
    /* a file that does not exist */
    assert_int_equal(tg_openapi_load("/nonexistent/api.yaml", &doc, err, sizeof(err)), TG_ECONFIG);
    assert_non_null(strstr(err, "/nonexistent/api.yaml: cannot open"));
    /* not a regular file: refused at once, not read (a device) nor waited on (a FIFO) */
    assert_int_equal(tg_openapi_load("/dev/zero", &doc, err, sizeof(err)), TG_ECONFIG);
    assert_non_null(strstr(err, "/dev/zero: cannot open: not a regular file"));
    char fifo[] = "/tmp/tg-openapi-fifo-XXXXXX";
    assert_non_null(mkdtemp(fifo));
    char fifo_path[64];
    snprintf(fifo_path, sizeof(fifo_path), "%s/p", fifo);
    assert_int_equal(mkfifo(fifo_path, 0600), 0);
    assert_int_equal(tg_openapi_load(fifo_path, &doc, err, sizeof(err)), TG_ECONFIG);
    assert_non_null(strstr(err, "not a regular file"));
    unlink(fifo_path);
    rmdir(fifo);
}

static const char CONFIG[] = "upstream: {url: 'http://127.0.0.1:9'}\n"
                             "admin: {token: 'tok-0123456789abcdef'}\n"
                             "keys: {secret: '0123456789abcdef0123456789abcdef'}\n"
                             "public_urls: {gateway: 'https://api.example.com'}\n"
                             "portal:\n"
                             "  openapi: %s\n"
                             "  signup: {plans: [free, starter]}\n"
                             "plans:\n"
                             "  free: {price: '0', endpoints: ['/v1/basic/*']}\n"
                             "  starter: {price: '9', endpoints: ['/v1/basic/*', '/v1/vision/*']}\n"
                             "  exact: {price: '9', endpoints: ['/v1/basic/echo/hello']}\n"
                             "  pro: {price: '99'}\n"
                             "routes:\n"
                             "  - {match: 'POST /v1/vision/*', weight: 10, meter: {api_calls: 1, images: 2}}\n";

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static json_t *op_of(json_t *doc, const char *path, const char *method)
{
    json_t *x =
        json_object_get(json_object_get(json_object_get(json_object_get(doc, "paths"), path), method), "x-tollgate");
    assert_non_null(x);
    return x;
}

static int has_plan(json_t *x, const char *id)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(x, "plans"), i, v) if (strcmp(json_string_value(v), id) == 0) return 1;
    return 0;
}

/* The portal's answer per operation is what the gateway decides: tg_plan_allows and the first
 * matching route, for every plan and operation of the document. */
static void test_config_key_and_enrich(void **state)
{
    (void)state;
    char dir[] = "/tmp/tg-openapi-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char api[300], cfgpath[300], yaml[2048], err[4096];
    snprintf(api, sizeof(api), "%s/api.yaml", dir);
    snprintf(cfgpath, sizeof(cfgpath), "%s/tollgate.yaml", dir);
    write_file(api, GOOD);
    snprintf(yaml, sizeof(yaml), CONFIG, "api.yaml"); /* relative to the configuration's folder */
    write_file(cfgpath, yaml);
    tg_config_t *cfg = NULL;
    if (tg_config_load(cfgpath, &cfg, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_non_null(cfg->portal.openapi_doc);
    /* the loader rendered the served bytes once (tg_openapi_prepare) and dropped the tree */
    assert_null(tg_openapi_enrich(cfg->portal.openapi_doc, cfg));
    size_t len;
    const char *body = tg_openapi_body(cfg->portal.openapi_doc, &len);
    assert_non_null(body);
    json_t *doc = json_loadb(body, len, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(doc, "servers"), 0), "url")),
                        "https://api.example.com");
    static const struct {
        const char *path, *method, *gw_method, *concrete;
    } ops[] = {{"/v1/basic/echo/{word}", "get", "GET", "/v1/basic/echo/{word}"},
               {"/v1/vision/classify", "post", "POST", "/v1/vision/classify"},
               {"/v1/vision/classify", "get", "GET", "/v1/vision/classify"}};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        json_t *x = op_of(doc, ops[i].path, ops[i].method);
        for (size_t p = 0; p < cfg->nplans; p++)
            assert_int_equal(has_plan(x, cfg->plans[p].id),
                             tg_plan_allows(&cfg->plans[p], ops[i].concrete, strlen(ops[i].concrete)));
        const tg_route_t *r = tg_config_match_route(cfg, ops[i].gw_method, strlen(ops[i].gw_method), ops[i].concrete,
                                                    strlen(ops[i].concrete));
        assert_int_equal(json_integer_value(json_object_get(x, "weight")), r != NULL ? (json_int_t)r->weight : 1);
        json_t *meter = json_object_get(x, "meter");
        assert_int_equal(json_array_size(meter), r != NULL ? r->nmeter : 1);
    }
    /* the conservative answer for a path parameter: an exact pattern does not cover {word} */
    assert_false(has_plan(op_of(doc, "/v1/basic/echo/{word}", "get"), "exact"));
    assert_true(has_plan(op_of(doc, "/v1/basic/echo/{word}", "get"), "free"));
    /* the plans, with which of them a customer may switch to on their own */
    json_t *plans = json_object_get(json_object_get(doc, "x-tollgate"), "plans");
    assert_int_equal(json_array_size(plans), cfg->nplans);
    assert_true(json_is_true(json_object_get(json_array_get(plans, 1), "self_service")));  /* starter */
    assert_false(json_is_true(json_object_get(json_array_get(plans, 3), "self_service"))); /* pro */
    json_decref(doc);
    tg_config_free(cfg);

    /* a bad document fails the configuration: the key's line, then the document's */
    write_file(api, "openapi: 3.0.0\ninfo: {title: x}\npaths:\n  /a: {get: 7}\n");
    assert_int_not_equal(tg_config_load(cfgpath, &cfg, err, sizeof(err)), 0);
    assert_null(cfg);
    char want[800];
    snprintf(want, sizeof(want), "%s:6: portal.openapi: %s:4: paths./a.get must be a mapping", cfgpath, api);
    if (strstr(err, want) == NULL)
        fail_msg("got \"%s\", wanted \"%s\"", err, want);
    unlink(api);
    assert_int_not_equal(tg_config_load(cfgpath, &cfg, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "portal.openapi: "));
    assert_non_null(strstr(err, "cannot open"));
    unlink(cfgpath);
    rmdir(dir);
}

/* A plan's endpoints in words (tg_openapi_plan_words): the summaries of the few operations a
 * pattern matches, the tags of many, the pattern itself when none matches; each word once. */
static const char WORDS_DOC[] = "openapi: 3.0.3\n"
                                "info: {title: Words, version: '1'}\n"
                                "paths:\n"
                                "  /v1/few/a: {get: {summary: Read an A, tags: [few]}, post: {summary: Write an A}}\n"
                                "  /v1/few/b: {get: {tags: [few]}}\n"
                                "  /v1/many/1: {get: {summary: One, tags: [Bulk data]}}\n"
                                "  /v1/many/2: {get: {summary: Two, tags: [Bulk data]}}\n"
                                "  /v1/many/3: {get: {summary: Three, tags: [Exports]}}\n"
                                "  /v1/many/4: {get: {summary: Four}}\n"
                                "  /v1/many/5: {get: {summary: Five, tags: [Bulk data]}}\n"
                                "  /v1/plain: {get: {}}\n";
static const char WORDS_CONFIG[] = "upstream: {url: 'http://127.0.0.1:9'}\n"
                                   "admin: {token: 'tok-0123456789abcdef'}\n"
                                   "keys: {secret: '0123456789abcdef0123456789abcdef'}\n"
                                   "portal: {openapi: words.yaml}\n"
                                   "plans:\n"
                                   "  few: {endpoints: ['/v1/few/*', '/v1/few/a', '/v1/none/*']}\n"
                                   "  many: {endpoints: ['/v1/many/*', '/v1/plain']}\n"
                                   "  none: {endpoints: []}\n"
                                   "  all: {}\n";

static void assert_words(const tg_config_t *cfg, const char *plan, const char *const *want, size_t n)
{
    const char *const *words;
    size_t got = tg_openapi_plan_words(cfg->portal.openapi_doc, plan, &words);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(words[i], want[i]);
}

static void test_plan_words(void **state)
{
    (void)state;
    char dir[] = "/tmp/tg-openapi-words-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char api[300], cfgpath[300], err[4096];
    snprintf(api, sizeof(api), "%s/words.yaml", dir);
    snprintf(cfgpath, sizeof(cfgpath), "%s/tollgate.yaml", dir);
    write_file(api, WORDS_DOC);
    write_file(cfgpath, WORDS_CONFIG);
    tg_config_t *cfg = NULL;
    if (tg_config_load(cfgpath, &cfg, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    /* 3 operations: their summaries (the tag for the one without), then the pattern no operation matches */
    static const char *const few[] = {"Read an A", "Write an A", "few", "/v1/none/*"};
    assert_words(cfg, "few", few, 4);
    /* 5 operations: their tags (the summary for the one without); an operation with neither adds nothing */
    static const char *const many[] = {"Bulk data", "Exports", "Four"};
    assert_words(cfg, "many", many, 3);
    assert_words(cfg, "none", NULL, 0);
    const char *const *words;
    assert_int_equal(tg_openapi_plan_words(cfg->portal.openapi_doc, "all", &words), 0); /* every path */
    assert_null(words);
    assert_int_equal(tg_openapi_plan_words(cfg->portal.openapi_doc, "nosuch", &words), 0);
    assert_int_equal(tg_openapi_plan_words(NULL, "few", &words), 0);
    tg_config_free(cfg);
    unlink(api);
    unlink(cfgpath);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_yaml_and_json),
        cmocka_unit_test(test_bad_documents),
        cmocka_unit_test(test_json_syntax_error_has_line),
        cmocka_unit_test(test_all_problems_reported),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_config_key_and_enrich),
        cmocka_unit_test(test_plan_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
