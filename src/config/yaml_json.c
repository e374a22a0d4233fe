/* yaml_json.c - see yaml_json.h. Recursive, bounded by the depth cap checked on entry. */
#include "config/yaml_json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

typedef struct conversion {
    tg_ydoc_error_t *e;
    size_t nodes; /* converted so far, against TG_YDOC_MAX_NODES */
    int rc;       /* 0, or the first error */
} conversion_t;

static void fail(conversion_t *c, int rc, int line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void fail(conversion_t *c, int rc, int line, const char *fmt, ...)
{
    if (c->rc != 0)
        return;
    c->rc = rc;
    c->e->line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->e->msg, sizeof(c->e->msg), fmt, ap);
    va_end(ap);
}

/* -?(0|[1-9][0-9]*) */
static int is_int(const char *s)
{
    const char *p = s + (*s == '-');
    if (*p == '0')
        return p[1] == '\0';
    if (*p < '1' || *p > '9')
        return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    return *p == '\0';
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)? */
static int is_decimal(const char *s)
{
    const char *p = s + (*s == '-');
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return 0;
    if (*p == '.') {
        if (!(*++p >= '0' && *p <= '9'))
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

static json_t *scalar(const tg_ynode_t *n)
{
    if (!n->plain)
        return json_stringn(n->text, n->len);
    if (tg_ynode_is_null(n))
        return json_null();
    if (strcmp(n->text, "true") == 0 || strcmp(n->text, "false") == 0)
        return json_boolean(n->text[0] == 't');
    if (is_int(n->text)) {
        errno = 0;
        long long v = strtoll(n->text, NULL, 10);
        if (errno == 0)
            return json_integer((json_int_t)v);
    }
    if (is_decimal(n->text))
        return json_real(strtod(n->text, NULL));
    return json_stringn(n->text, n->len);
}

/* The JSON value of n at nesting `depth` (the root's is 1), or NULL with c->rc set. */
static json_t *convert(conversion_t *c, const tg_ynode_t *n, int depth)
{
    if (n == NULL)
        return json_null();
    if (++c->nodes > TG_YDOC_MAX_NODES) {
        fail(c, TG_ECONFIG, n->line, "more than %d nodes", TG_YDOC_MAX_NODES);
        return NULL;
    }
    if (n->type == TG_YNODE_SCALAR) {
        json_t *v = scalar(n);
        if (v == NULL) /* jansson refuses text that is not UTF-8, or ran out of memory */
            fail(c, TG_ECONFIG, n->line, "a scalar that is not valid UTF-8 (or out of memory)");
        return v;
    }
    if (depth > TG_YDOC_MAX_DEPTH) {
        fail(c, TG_ECONFIG, n->line, "nested deeper than %d levels", TG_YDOC_MAX_DEPTH);
        return NULL;
    }
    int seq = n->type == TG_YNODE_SEQ;
    json_t *out = seq ? json_array() : json_object();
    if (out == NULL) {
        fail(c, TG_ENOMEM, 0, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n->n; i += seq ? 1 : 2) {
        const tg_ynode_t *k = seq ? NULL : n->items[i];
        if (k != NULL && k->type != TG_YNODE_SCALAR) {
            fail(c, TG_ECONFIG, k->line, "a mapping key must be a scalar");
            break;
        }
        if (k != NULL && json_object_get(out, k->text) != NULL) {
            fail(c, TG_ECONFIG, k->line, "duplicate key \"%.200s\"", k->text);
            break;
        }
        json_t *v = convert(c, n->items[seq ? i : i + 1], depth + 1);
        if (v == NULL)
            break;
        if ((seq ? json_array_append_new(out, v) : json_object_set_new(out, k->text, v)) != 0) {
            fail(c, TG_ENOMEM, 0, "out of memory");
            break;
        }
    }
    if (c->rc != 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

int tg_yaml_to_json(const tg_ynode_t *root, json_t **out, tg_ydoc_error_t *e)
{
    conversion_t c = {e, 0, 0};
    e->line = 0;
    e->msg[0] = '\0';
    *out = convert(&c, root, 1);
    return *out != NULL ? 0 : (c.rc != 0 ? c.rc : TG_ENOMEM);
}
