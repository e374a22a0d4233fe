/* test_yaml_json.c - the YAML -> JSON conversion shared by portal.openapi and the build's
 * yaml2json (src/config/yaml_json.c): the core-schema scalar types, key order, the errors with
 * their lines, and the depth and node caps, which hold even for a tree the loader did not build. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "config/yaml_doc.h"
#include "config/yaml_json.h"
#include "util/err.h"

/* Loads text and converts it; the compact JSON (caller frees) or NULL with rc and e filled. */
static char *convert_text(const char *text, int *rc, tg_ydoc_error_t *e)
{
    tg_ynode_t *root = NULL;
    assert_int_equal(tg_ydoc_load(text, strlen(text), &root, e), 0);
    json_t *j = (json_t *)1;
    *rc = tg_yaml_to_json(root, &j, e);
    tg_ydoc_free(root);
    if (*rc != 0) {
        assert_null(j);
        return NULL;
    }
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    json_decref(j);
    assert_non_null(s);
    return s;
}

static void test_scalars_follow_the_core_schema(void **state)
{
    (void)state;
    static const struct {
        const char *yaml, *json;
    } cases[] = {
        {"a: 1", "{\"a\":1}"},
        {"a: -42", "{\"a\":-42}"},
        {"a: 0", "{\"a\":0}"},
        {"a: 007", "{\"a\":\"007\"}"}, /* not a YAML 1.2 integer */
        {"a: 1.5", "{\"a\":1.5}"},
        {"a: 2e3", "{\"a\":2000.0}"},
        {"a: 1.", "{\"a\":\"1.\"}"},
        {"a: 99999999999999999999", "{\"a\":1e20}"}, /* too big for an integer: a real */
        {"a: '1'", "{\"a\":\"1\"}"},                 /* quoted: a string */
        {"a: true\nb: false\nc: 'true'", "{\"a\":true,\"b\":false,\"c\":\"true\"}"},
        {"a: yes", "{\"a\":\"yes\"}"}, /* YAML 1.1's booleans are strings in 1.2 */
        {"a: ~\nb: null\nc:\nd: 'null'", "{\"a\":null,\"b\":null,\"c\":null,\"d\":\"null\"}"},
        {"200: ok\n1.5: x", "{\"200\":\"ok\",\"1.5\":\"x\"}"}, /* keys are always strings */
        {"z: 1\na: 2\nm: [3, x, {k: v}]", "{\"z\":1,\"a\":2,\"m\":[3,\"x\",{\"k\":\"v\"}]}"},
        {"[]", "[]"},
        {"hello", "\"hello\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc;
        tg_ydoc_error_t e;
        char *s = convert_text(cases[i].yaml, &rc, &e);
        assert_int_equal(rc, 0);
        assert_string_equal(s, cases[i].json);
        free(s);
    }
    /* an empty document is null */
    json_t *j = NULL;
    tg_ydoc_error_t e;
    assert_int_equal(tg_yaml_to_json(NULL, &j, &e), 0);
    assert_true(json_is_null(j));
    json_decref(j);
}

static void test_errors_name_the_line(void **state)
{
    (void)state;
    int rc;
    tg_ydoc_error_t e;
    assert_null(convert_text("a: 1\nb:\n  c: 2\n  c: 3\n", &rc, &e));
    assert_int_equal(rc, TG_ECONFIG);
    assert_int_equal(e.line, 4);
    assert_string_equal(e.msg, "duplicate key \"c\"");
    assert_null(convert_text("a: 1\n? [x, y]\n: 2\n", &rc, &e));
    assert_int_equal(rc, TG_ECONFIG);
    assert_int_equal(e.line, 2);
    assert_string_equal(e.msg, "a mapping key must be a scalar");
    /* the same key in two mappings is fine */
    char *s = convert_text("a: {k: 1}\nb: {k: 2}\n", &rc, &e);
    assert_int_equal(rc, 0);
    free(s);
}

/* A chain of `levels` one-item sequences ending in a scalar, built by hand (no loader caps). */
static tg_ynode_t *chain(int levels)
{
    tg_ynode_t *leaf = calloc(1, sizeof(*leaf));
    assert_non_null(leaf);
    leaf->type = TG_YNODE_SCALAR;
    leaf->line = levels + 1;
    leaf->plain = 1;
    leaf->text = strdup("x");
    leaf->len = 1;
    leaf->height = 1;
    tg_ynode_t *n = leaf;
    for (int i = levels; i >= 1; i--) {
        tg_ynode_t *seq = calloc(1, sizeof(*seq));
        assert_non_null(seq);
        seq->type = TG_YNODE_SEQ;
        seq->line = i;
        seq->items = malloc(sizeof(*seq->items));
        assert_non_null(seq->items);
        seq->items[0] = n;
        seq->n = seq->cap = 1;
        seq->height = n->height + 1;
        n = seq;
    }
    return n;
}

static void test_caps_hold_for_any_tree(void **state)
{
    (void)state;
    tg_ydoc_error_t e;
    json_t *j = NULL;
    tg_ynode_t *ok = chain(TG_YDOC_MAX_DEPTH);
    assert_int_equal(tg_yaml_to_json(ok, &j, &e), 0);
    json_decref(j);
    tg_ydoc_free(ok);
    tg_ynode_t *deep = chain(TG_YDOC_MAX_DEPTH + 1);
    j = (json_t *)1;
    assert_int_equal(tg_yaml_to_json(deep, &j, &e), TG_ECONFIG);
    assert_null(j);
    assert_int_equal(e.line, TG_YDOC_MAX_DEPTH + 1);
    assert_non_null(strstr(e.msg, "nested deeper than 32 levels"));
    tg_ydoc_free(deep);
    /* one sequence of more scalars than the node cap */
    tg_ynode_t *wide = chain(1);
    tg_ynode_t *leaf = wide->items[0];
    wide->cap = wide->n = TG_YDOC_MAX_NODES + 1;
    wide->items = realloc(wide->items, wide->n * sizeof(*wide->items));
    assert_non_null(wide->items);
    for (size_t i = 0; i < wide->n; i++)
        wide->items[i] = leaf; /* shared: converted once per item all the same */
    assert_int_equal(tg_yaml_to_json(wide, &j, &e), TG_ECONFIG);
    assert_non_null(strstr(e.msg, "more than 250000 nodes"));
    wide->n = 1; /* free the shared leaf once */
    tg_ydoc_free(wide);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars_follow_the_core_schema),
        cmocka_unit_test(test_errors_name_the_line),
        cmocka_unit_test(test_caps_hold_for_any_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
