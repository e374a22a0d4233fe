/* yaml_doc.c - see yaml_doc.h.
 *
 * Built on libyaml's event parser: each collection is attached to its parent when it opens and
 * pushed on a fixed stack, so on any error freeing the root frees everything built so far. */
#include "config/yaml_doc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util/err.h"

typedef struct anchor {
    char *name;
    const tg_ynode_t *node; /* inside the tree or the graveyard, alive until the load ends */
} anchor_t;

typedef struct loader {
    tg_ynode_t *stack[TG_YDOC_MAX_DEPTH];
    char *stack_anchor[TG_YDOC_MAX_DEPTH]; /* anchor of each open collection, registered on close */
    int depth;
    tg_ynode_t *root;
    /* Merge-key pairs taken out of their mappings. They stay alive until the load ends because an
     * anchor may point into them. */
    tg_ynode_t graveyard;
    anchor_t *anchors;
    size_t nanchors, capanchors;
    size_t nodes;
    int docs;
    tg_ydoc_error_t *e;
} loader_t;

static int fail(loader_t *l, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(loader_t *l, int line, const char *fmt, ...)
{
    l->e->line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->e->msg, sizeof(l->e->msg), fmt, ap);
    va_end(ap);
    return TG_ECONFIG;
}

static int oom(loader_t *l, int line)
{
    fail(l, line, "out of memory reading the configuration");
    return TG_ENOMEM;
}

void tg_ydoc_free(tg_ynode_t *n)
{
    if (n == NULL)
        return;
    if (n->text != NULL) {
        explicit_bzero(n->text, n->len);
        free(n->text);
    }
    for (size_t i = 0; i < n->n; i++)
        tg_ydoc_free(n->items[i]);
    free(n->items);
    free(n);
}

int tg_ynode_is_null(const tg_ynode_t *n)
{
    return n != NULL && n->type == TG_YNODE_SCALAR && n->plain &&
           (n->len == 0 || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0 || strcmp(n->text, "Null") == 0 ||
            strcmp(n->text, "NULL") == 0);
}

size_t tg_ynode_count(const tg_ynode_t *n)
{
    if (n == NULL)
        return 0;
    return n->type == TG_YNODE_MAP ? n->n / 2 : n->type == TG_YNODE_SEQ ? n->n : 0;
}

static int new_node(loader_t *l, tg_ynode_type_t type, int line, tg_ynode_t **out)
{
    *out = NULL;
    if (l->nodes >= TG_YDOC_MAX_NODES)
        return fail(l, line, "more than %d YAML nodes (aliases count once per use)", TG_YDOC_MAX_NODES);
    tg_ynode_t *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return oom(l, line);
    n->type = type;
    n->line = line;
    n->height = 1;
    l->nodes++;
    *out = n;
    return 0;
}

static int append(loader_t *l, tg_ynode_t *parent, tg_ynode_t *child)
{
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 8;
        tg_ynode_t **items = realloc(parent->items, cap * sizeof(*items));
        if (items == NULL)
            return oom(l, child->line);
        parent->items = items;
        parent->cap = cap;
    }
    parent->items[parent->n++] = child;
    return 0;
}

/* Hands a new node to its parent (or makes it the root). On failure the node is freed. */
static int attach(loader_t *l, tg_ynode_t *n)
{
    if (l->depth == 0) {
        l->root = n;
        return 0;
    }
    int rc = append(l, l->stack[l->depth - 1], n);
    if (rc != 0)
        tg_ydoc_free(n);
    return rc;
}

static int copy_node(loader_t *l, const tg_ynode_t *src, tg_ynode_t **out)
{
    tg_ynode_t *n;
    int rc = new_node(l, src->type, src->line, &n);
    if (rc != 0)
        return rc;
    n->plain = src->plain;
    n->height = src->height;
    if (src->text != NULL) {
        if ((n->text = malloc(src->len + 1)) == NULL) {
            free(n);
            return oom(l, src->line);
        }
        memcpy(n->text, src->text, src->len + 1);
        n->len = src->len;
    }
    for (size_t i = 0; i < src->n; i++) {
        tg_ynode_t *c;
        if ((rc = copy_node(l, src->items[i], &c)) != 0) {
            tg_ydoc_free(n);
            return rc;
        }
        if ((rc = append(l, n, c)) != 0) {
            tg_ydoc_free(c);
            tg_ydoc_free(n);
            return rc;
        }
    }
    *out = n;
    return 0;
}

static const tg_ynode_t *find_anchor(const loader_t *l, const char *name)
{
    /* The latest definition wins, as YAML allows an anchor to be redefined. */
    for (size_t i = l->nanchors; i > 0; i--)
        if (strcmp(l->anchors[i - 1].name, name) == 0)
            return l->anchors[i - 1].node;
    return NULL;
}

/* Takes ownership of `name`. */
static int add_anchor(loader_t *l, char *name, const tg_ynode_t *n)
{
    if (l->nanchors == l->capanchors) {
        size_t cap = l->capanchors ? l->capanchors * 2 : 16;
        anchor_t *a = realloc(l->anchors, cap * sizeof(*a));
        if (a == NULL) {
            free(name);
            return oom(l, n->line);
        }
        l->anchors = a;
        l->capanchors = cap;
    }
    l->anchors[l->nanchors++] = (anchor_t){name, n};
    return 0;
}

static int dup_anchor(loader_t *l, const yaml_char_t *anchor, int line, char **out)
{
    *out = NULL;
    if (anchor == NULL)
        return 0;
    if ((*out = strdup((const char *)anchor)) == NULL)
        return oom(l, line);
    return 0;
}

static int is_merge_key(const tg_ynode_t *k)
{
    return k->type == TG_YNODE_SCALAR && k->plain && strcmp(k->text, "<<") == 0;
}

static int has_key(const tg_ynode_t *map, const tg_ynode_t *key)
{
    if (key->type != TG_YNODE_SCALAR)
        return 0;
    for (size_t i = 0; i + 1 < map->n; i += 2)
        if (map->items[i]->type == TG_YNODE_SCALAR && map->items[i]->len == key->len &&
            memcmp(map->items[i]->text, key->text, key->len) == 0)
            return 1;
    return 0;
}

static int merge_from(loader_t *l, tg_ynode_t *map, const tg_ynode_t *src)
{
    for (size_t i = 0; i + 1 < src->n; i += 2) {
        if (has_key(map, src->items[i]))
            continue; /* keys written in the mapping itself, or merged earlier, win */
        tg_ynode_t *k, *v;
        int rc = copy_node(l, src->items[i], &k);
        if (rc != 0)
            return rc;
        if ((rc = append(l, map, k)) != 0) {
            tg_ydoc_free(k);
            return rc;
        }
        if ((rc = copy_node(l, src->items[i + 1], &v)) != 0)
            return rc; /* the key alone stays; the load fails anyway */
        if ((rc = append(l, map, v)) != 0) {
            tg_ydoc_free(v);
            return rc;
        }
    }
    return 0;
}

/* Resolves `<<: *base` and `<<: [*a, *b]` (YAML 1.1 merge keys): explicit keys win, then earlier
 * sources. The merge pairs themselves move to the graveyard. */
static int resolve_merges(loader_t *l, tg_ynode_t *map)
{
    size_t nmerge = 0;
    for (size_t i = 0; i + 1 < map->n; i += 2)
        nmerge += is_merge_key(map->items[i]);
    if (nmerge == 0)
        return 0;
    tg_ynode_t **merges = malloc(nmerge * 2 * sizeof(*merges));
    if (merges == NULL)
        return oom(l, map->line);
    size_t m = 0, kept = 0;
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        if (is_merge_key(map->items[i])) {
            merges[m++] = map->items[i];
            merges[m++] = map->items[i + 1];
        } else {
            map->items[kept++] = map->items[i];
            map->items[kept++] = map->items[i + 1];
        }
    }
    map->n = kept;
    int rc = 0;
    for (size_t i = 0; i < m && rc == 0; i++)
        if ((rc = append(l, &l->graveyard, merges[i])) != 0)
            for (size_t j = i; j < m; j++)
                tg_ydoc_free(merges[j]);
    for (size_t i = 1; i < m && rc == 0; i += 2) {
        const tg_ynode_t *v = merges[i];
        if (v->type == TG_YNODE_MAP) {
            rc = merge_from(l, map, v);
        } else if (v->type == TG_YNODE_SEQ) {
            for (size_t j = 0; j < v->n && rc == 0; j++) {
                if (v->items[j]->type != TG_YNODE_MAP)
                    rc = fail(l, v->items[j]->line, "a merge key (<<) takes a mapping or a list of mappings");
                else
                    rc = merge_from(l, map, v->items[j]);
            }
        } else {
            rc = fail(l, v->line, "a merge key (<<) takes a mapping or a list of mappings");
        }
    }
    free(merges);
    return rc;
}

static int open_collection(loader_t *l, tg_ynode_type_t type, const yaml_event_t *ev, const yaml_char_t *anchor)
{
    int line = (int)ev->start_mark.line + 1;
    if (l->depth >= TG_YDOC_MAX_DEPTH)
        return fail(l, line, "nested deeper than %d levels", TG_YDOC_MAX_DEPTH);
    char *name;
    tg_ynode_t *n;
    int rc = dup_anchor(l, anchor, line, &name);
    if (rc != 0)
        return rc;
    if ((rc = new_node(l, type, line, &n)) != 0 || (rc = attach(l, n)) != 0) {
        free(name);
        return rc;
    }
    l->stack_anchor[l->depth] = name;
    l->stack[l->depth++] = n;
    return 0;
}

static int close_collection(loader_t *l)
{
    tg_ynode_t *n = l->stack[--l->depth];
    char *name = l->stack_anchor[l->depth];
    l->stack_anchor[l->depth] = NULL;
    int rc = n->type == TG_YNODE_MAP ? resolve_merges(l, n) : 0;
    n->height = 1;
    for (size_t i = 0; i < n->n; i++)
        if (n->items[i]->height + 1 > n->height)
            n->height = n->items[i]->height + 1;
    if (rc == 0 && n->height > TG_YDOC_MAX_DEPTH)
        rc = fail(l, n->line, "nested deeper than %d levels", TG_YDOC_MAX_DEPTH);
    if (name != NULL) {
        if (rc == 0)
            return add_anchor(l, name, n);
        free(name);
    }
    return rc;
}

static int on_scalar(loader_t *l, const yaml_event_t *ev)
{
    int line = (int)ev->start_mark.line + 1;
    const char *v = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    if (memchr(v, '\0', len) != NULL)
        return fail(l, line, "a value contains a NUL character");
    tg_ynode_t *n;
    int rc = new_node(l, TG_YNODE_SCALAR, line, &n);
    if (rc != 0)
        return rc;
    if ((n->text = malloc(len + 1)) == NULL) {
        free(n);
        return oom(l, line);
    }
    memcpy(n->text, v, len);
    n->text[len] = '\0';
    n->len = len;
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    char *name;
    if ((rc = dup_anchor(l, ev->data.scalar.anchor, line, &name)) != 0) {
        tg_ydoc_free(n);
        return rc;
    }
    if ((rc = attach(l, n)) != 0) {
        free(name);
        return rc;
    }
    return name != NULL ? add_anchor(l, name, n) : 0;
}

static int on_alias(loader_t *l, const yaml_event_t *ev)
{
    int line = (int)ev->start_mark.line + 1;
    const char *name = (const char *)ev->data.alias.anchor;
    const tg_ynode_t *src = find_anchor(l, name);
    if (src == NULL)
        return fail(l, line, "alias *%s names no anchor defined before it", name);
    if (l->depth + src->height > TG_YDOC_MAX_DEPTH)
        return fail(l, line, "nested deeper than %d levels (through alias *%s)", TG_YDOC_MAX_DEPTH, name);
    tg_ynode_t *n;
    int rc = copy_node(l, src, &n);
    if (rc != 0)
        return rc;
    n->line = line; /* messages about the copy point at the use; its children keep their lines */
    return attach(l, n);
}

/* Line (1-based) of byte `offset`, for reader errors that carry only an offset. */
static int line_at(const char *yaml, size_t len, size_t offset)
{
    int line = 1;
    for (size_t i = 0; i < offset && i < len; i++)
        line += yaml[i] == '\n';
    return line;
}

static int syntax_error(loader_t *l, const yaml_parser_t *p, const char *yaml, size_t len)
{
    if (p->error == YAML_MEMORY_ERROR)
        return oom(l, 1);
    if (p->error == YAML_READER_ERROR)
        return fail(l, line_at(yaml, len, p->problem_offset), "YAML syntax error: %s",
                    p->problem ? p->problem : "cannot read the input");
    int line = (int)p->problem_mark.line + 1;
    if (p->context != NULL && p->context_mark.line != p->problem_mark.line)
        return fail(l, line, "YAML syntax error: %s %s (opened on line %d)", p->problem ? p->problem : "", p->context,
                    (int)p->context_mark.line + 1);
    return fail(l, line, "YAML syntax error: %s%s%s", p->problem ? p->problem : "unexpected input",
                p->context ? " " : "", p->context ? p->context : "");
}

int tg_ydoc_load(const char *yaml, size_t len, tg_ynode_t **root, tg_ydoc_error_t *e)
{
    loader_t l;
    memset(&l, 0, sizeof(l));
    memset(e, 0, sizeof(*e));
    l.e = e;
    l.graveyard.type = TG_YNODE_SEQ;
    *root = NULL;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return oom(&l, 1);
    yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
    int rc = 0, done = 0;
    while (rc == 0 && !done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = syntax_error(&l, &p, yaml, len);
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++l.docs > 1)
                rc = fail(&l, (int)ev.start_mark.line + 1, "only one YAML document is allowed (this is a second one)");
            break;
        case YAML_SCALAR_EVENT:
            rc = on_scalar(&l, &ev);
            break;
        case YAML_ALIAS_EVENT:
            rc = on_alias(&l, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
            rc = open_collection(&l, TG_YNODE_SEQ, &ev, ev.data.sequence_start.anchor);
            break;
        case YAML_MAPPING_START_EVENT:
            rc = open_collection(&l, TG_YNODE_MAP, &ev, ev.data.mapping_start.anchor);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            rc = close_collection(&l);
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    for (int i = 0; i < l.depth; i++)
        free(l.stack_anchor[i]);
    for (size_t i = 0; i < l.nanchors; i++)
        free(l.anchors[i].name);
    free(l.anchors);
    for (size_t i = 0; i < l.graveyard.n; i++)
        tg_ydoc_free(l.graveyard.items[i]);
    free(l.graveyard.items);
    if (rc != 0) {
        tg_ydoc_free(l.root);
        return rc == TG_ENOMEM ? TG_ENOMEM : TG_ECONFIG;
    }
    *root = l.root;
    return 0;
}
