/* yaml_doc.h - a YAML document as a small tree whose every node remembers its line (private to
 * src/config).
 *
 * libyaml's own document API keeps no limits and leaves aliases and merge keys to the caller, so
 * the loader here builds the tree from libyaml's events itself: it caps nesting depth and node
 * count (an alias is copied, so "billion laughs" stops at the cap), resolves `<<: *anchor` merge
 * keys, accepts exactly one document, and refuses NUL bytes inside scalars. Validation of what
 * the keys mean is config.c's job; this file only knows YAML. */
#ifndef TG_YAML_DOC_H
#define TG_YAML_DOC_H

#include <stddef.h>

#define TG_YDOC_MAX_DEPTH 32     /* nested collections; a valid tollgate.yaml needs 7 */
#define TG_YDOC_MAX_NODES 250000 /* after alias expansion */

typedef enum tg_ynode_type { TG_YNODE_SCALAR = 0, TG_YNODE_SEQ = 1, TG_YNODE_MAP = 2 } tg_ynode_type_t;

typedef struct tg_ynode tg_ynode_t;
struct tg_ynode {
    tg_ynode_type_t type;
    int line;   /* 1-based line where the node starts */
    int plain;  /* scalar written without quotes (so `~`, `null`, `inf` can be keywords) */
    int height; /* 1 for a scalar, 1 + the tallest child for a collection */
    char *text; /* scalar: NUL-terminated, no NUL inside */
    size_t len;
    /* SEQ: items[0..n); MAP: items[2i] is a key, items[2i+1] its value, n = 2 * pairs. */
    tg_ynode_t **items;
    size_t n, cap;
};

typedef struct tg_ydoc_error {
    int line;
    char msg[256];
} tg_ydoc_error_t;

/* Parses `len` bytes of YAML. On success *root owns the tree (NULL for an empty document; free
 * with tg_ydoc_free) and 0 is returned. On failure returns TG_ECONFIG with the line and a
 * sentence in *e (or TG_ENOMEM). Never prints; thread-safe. */
int tg_ydoc_load(const char *yaml, size_t len, tg_ynode_t **root, tg_ydoc_error_t *e);

/* Frees a tree; scalar text is wiped first because configuration files carry secrets. */
void tg_ydoc_free(tg_ynode_t *n);

/* 1 if the node is YAML null: a plain empty scalar, `~` or `null`. */
int tg_ynode_is_null(const tg_ynode_t *n);

/* Number of key/value pairs of a mapping, or items of a sequence; 0 for a scalar. */
size_t tg_ynode_count(const tg_ynode_t *n);

#endif
