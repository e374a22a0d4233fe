/* openapi.c - loading, checking and enriching the upstream's OpenAPI document (see openapi.h).
 *
 * YAML goes through the configuration's own reader (config/yaml_doc.c: depth and node caps,
 * aliases copied under the cap, one document) so that every node knows its line; JSON is parsed
 * by jansson first, for its exact LINE:COLUMN on a syntax error, and then read by the same YAML
 * reader (JSON is YAML's flow style) for the lines of what the checks below find. The checks are
 * those the portal's renderer relies on, not a full schema validation: the version, info.title,
 * the shape of paths and operations, parameters, and every local $ref resolving (external ones
 * are refused: the document must be bundled, tollgate fetches nothing). */
#include "apiref/openapi.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/yaml_doc.h"
#include "util/err.h"

#define MAX_PROBLEMS 50

/* One plan's endpoints in words (tg_openapi_plan_words), computed by tg_openapi_prepare. */
typedef struct plan_words {
    char *plan; /* the plan's id */
    char **words;
    size_t nwords;
} plan_words_t;

struct tg_openapi {
    json_t *doc; /* the document as JSON, keys in file order; NULL once prepared */
    size_t noperations;
    char *body; /* tg_openapi_prepare's rendering, or NULL */
    size_t body_len;
    plan_words_t *plans; /* one per plan of the configuration prepared for */
    size_t nplans;
};

static const char *const METHODS[] = {"get", "put", "post", "delete", "options", "head", "patch", "trace"};
#define NMETHODS (sizeof(METHODS) / sizeof(METHODS[0]))

/* ---- diagnostics: "NAME:LINE: message" lines, all of them (up to MAX_PROBLEMS kept) ---- */

typedef struct diag {
    const char *name;
    char *buf;
    size_t cap, len;
    size_t count;
} diag_t;

static void report(diag_t *d, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void report(diag_t *d, int line, const char *fmt, ...)
{
    d->count++;
    if (d->buf == NULL || d->cap == 0 || d->count > MAX_PROBLEMS || d->len + 1 >= d->cap)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int n = snprintf(d->buf + d->len, d->cap - d->len, "%s:%d: %s\n", d->name, line, msg);
    if (n > 0)
        d->len = (size_t)n >= d->cap - d->len ? d->cap - 1 : d->len + (size_t)n;
}

/* ---- the tree ---- */

static const tg_ynode_t *map_get(const tg_ynode_t *m, const char *key)
{
    if (m == NULL || m->type != TG_YNODE_MAP)
        return NULL;
    for (size_t i = 0; i + 1 < m->n; i += 2)
        if (m->items[i]->type == TG_YNODE_SCALAR && strcmp(m->items[i]->text, key) == 0)
            return m->items[i + 1];
    return NULL;
}

/* The node a local reference "#/a/b~1c" names, or NULL. */
static const tg_ynode_t *resolve_ref(const tg_ynode_t *root, const char *ref)
{
    if (ref[0] != '#')
        return NULL;
    const tg_ynode_t *n = root;
    const char *p = ref + 1;
    while (*p == '/' && n != NULL) {
        p++;
        const char *end = strchr(p, '/');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        char key[256];
        size_t k = 0;
        for (size_t i = 0; i < len; i++) {
            if (k + 1 >= sizeof(key))
                return NULL;
            if (p[i] == '~' && i + 1 < len && (p[i + 1] == '0' || p[i + 1] == '1')) {
                key[k++] = p[i + 1] == '0' ? '~' : '/';
                i++;
            } else {
                key[k++] = p[i];
            }
        }
        key[k] = '\0';
        if (n->type == TG_YNODE_MAP) {
            n = map_get(n, key);
        } else if (n->type == TG_YNODE_SEQ) {
            char *e;
            errno = 0;
            unsigned long idx = strtoul(key, &e, 10);
            n = (k > 0 && *e == '\0' && errno == 0 && idx < n->n) ? n->items[idx] : NULL;
        } else {
            n = NULL;
        }
        p += len;
    }
    return *p == '\0' ? n : NULL;
}

/* Every $ref below n resolves locally. */
static void check_refs(diag_t *d, const tg_ynode_t *root, const tg_ynode_t *n)
{
    if (n == NULL || n->type == TG_YNODE_SCALAR)
        return;
    for (size_t i = 0; i < n->n; i++) {
        const tg_ynode_t *c = n->items[i];
        if (n->type == TG_YNODE_MAP && i % 2 == 0) {
            if (c->type == TG_YNODE_SCALAR && strcmp(c->text, "$ref") == 0) {
                const tg_ynode_t *v = n->items[i + 1];
                if (v->type != TG_YNODE_SCALAR)
                    report(d, v->line, "$ref must be a string");
                else if (v->text[0] != '#')
                    report(d, v->line, "$ref \"%.200s\" points outside the document: bundle it into one file", v->text);
                else if (resolve_ref(root, v->text) == NULL)
                    report(d, v->line, "$ref \"%.200s\" does not resolve", v->text);
            }
            continue; /* keys are scalars or not walked */
        }
        check_refs(d, root, c);
    }
}

static int is_method(const char *s)
{
    for (size_t i = 0; i < NMETHODS; i++)
        if (strcmp(s, METHODS[i]) == 0)
            return 1;
    return 0;
}

static void check_parameters(diag_t *d, const tg_ynode_t *ps, const char *where)
{
    if (ps->type != TG_YNODE_SEQ) {
        report(d, ps->line, "%s.parameters must be a list", where);
        return;
    }
    for (size_t i = 0; i < ps->n; i++) {
        const tg_ynode_t *p = ps->items[i];
        if (p->type != TG_YNODE_MAP) {
            report(d, p->line, "%s.parameters[%zu] must be a mapping", where, i);
            continue;
        }
        if (map_get(p, "$ref") != NULL)
            continue;
        const tg_ynode_t *name = map_get(p, "name"), *in = map_get(p, "in");
        if (name == NULL || name->type != TG_YNODE_SCALAR)
            report(d, p->line, "%s.parameters[%zu] needs a name", where, i);
        if (in == NULL || in->type != TG_YNODE_SCALAR ||
            (strcmp(in->text, "path") != 0 && strcmp(in->text, "query") != 0 && strcmp(in->text, "header") != 0 &&
             strcmp(in->text, "cookie") != 0))
            report(d, in != NULL ? in->line : p->line, "%s.parameters[%zu].in must be path, query, header or cookie",
                   where, i);
    }
}

static size_t check_document(diag_t *d, const tg_ynode_t *root)
{
    if (root == NULL || root->type != TG_YNODE_MAP) {
        report(d, root != NULL ? root->line : 1, "an OpenAPI document must be a mapping");
        return 0;
    }
    const tg_ynode_t *v = map_get(root, "openapi");
    if (v == NULL)
        report(d, root->line, "openapi is required (\"3.0.3\" or \"3.1.0\"; Swagger 2.0 documents need converting)");
    else if (v->type != TG_YNODE_SCALAR || (strncmp(v->text, "3.0.", 4) != 0 && strncmp(v->text, "3.1.", 4) != 0))
        report(d, v->line, "openapi: \"%.32s\" is not a 3.0.x or 3.1.x version",
               v->type == TG_YNODE_SCALAR ? v->text : "");
    const tg_ynode_t *info = map_get(root, "info");
    const tg_ynode_t *title = map_get(info, "title");
    if (info == NULL || info->type != TG_YNODE_MAP)
        report(d, info != NULL ? info->line : root->line, "info must be a mapping with a title");
    else if (title == NULL || title->type != TG_YNODE_SCALAR)
        report(d, info->line, "info.title is required");
    const tg_ynode_t *paths = map_get(root, "paths");
    if (paths == NULL || paths->type != TG_YNODE_MAP) {
        report(d, paths != NULL ? paths->line : root->line, "paths must be a mapping of paths to operations");
        return 0;
    }
    size_t nops = 0;
    for (size_t i = 0; i + 1 < paths->n; i += 2) {
        const tg_ynode_t *k = paths->items[i], *item = paths->items[i + 1];
        if (k->type != TG_YNODE_SCALAR || k->text[0] != '/') {
            report(d, k->line, "paths: \"%.200s\" must start with '/'", k->type == TG_YNODE_SCALAR ? k->text : "");
            continue;
        }
        if (item->type != TG_YNODE_MAP) {
            report(d, item->line, "paths.%.200s must be a mapping of methods to operations", k->text);
            continue;
        }
        char where[300];
        for (size_t j = 0; j + 1 < item->n; j += 2) {
            const tg_ynode_t *mk = item->items[j], *op = item->items[j + 1];
            if (mk->type != TG_YNODE_SCALAR)
                continue;
            snprintf(where, sizeof(where), "paths.%.200s.%s", k->text, mk->text);
            if (strcmp(mk->text, "parameters") == 0) {
                check_parameters(d, op, where);
                continue;
            }
            if (!is_method(mk->text))
                continue; /* summary, description, servers, $ref, x-... */
            if (op->type != TG_YNODE_MAP) {
                report(d, op->line, "%s must be a mapping (an operation)", where);
                continue;
            }
            if (++nops == TG_OPENAPI_MAX_OPERATIONS + 1)
                report(d, mk->line, "more than %d operations", TG_OPENAPI_MAX_OPERATIONS);
            const tg_ynode_t *tags = map_get(op, "tags"), *ps = map_get(op, "parameters"),
                             *rs = map_get(op, "responses");
            if (tags != NULL && tags->type != TG_YNODE_SEQ)
                report(d, tags->line, "%s.tags must be a list of names", where);
            for (size_t t = 0; tags != NULL && tags->type == TG_YNODE_SEQ && t < tags->n; t++)
                if (tags->items[t]->type != TG_YNODE_SCALAR)
                    report(d, tags->items[t]->line, "%s.tags[%zu] must be a name", where, t);
            if (ps != NULL)
                check_parameters(d, ps, where);
            if (rs != NULL && rs->type != TG_YNODE_MAP)
                report(d, rs->line, "%s.responses must be a mapping of status codes", where);
        }
    }
    check_refs(d, root, root);
    return nops;
}

/* ---- YAML to JSON (YAML 1.2 core schema for plain scalars; keys are strings) ---- */

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

static json_t *convert(diag_t *d, const tg_ynode_t *n)
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
    json_t *out = n->type == TG_YNODE_SEQ ? json_array() : json_object();
    for (size_t i = 0; out != NULL && i < n->n; i += n->type == TG_YNODE_SEQ ? 1 : 2) {
        if (n->type == TG_YNODE_SEQ) {
            json_t *v = convert(d, n->items[i]);
            if (v == NULL || json_array_append_new(out, v) != 0) {
                json_decref(out);
                return NULL;
            }
            continue;
        }
        const tg_ynode_t *k = n->items[i];
        if (k->type != TG_YNODE_SCALAR) {
            report(d, k->line, "a mapping key must be a scalar");
            json_decref(out);
            return NULL;
        }
        if (json_object_get(out, k->text) != NULL) {
            report(d, k->line, "duplicate key \"%.200s\"", k->text);
            json_decref(out);
            return NULL;
        }
        json_t *v = convert(d, n->items[i + 1]);
        if (v == NULL || json_object_set_new(out, k->text, v) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* ---- loading ---- */

int tg_openapi_load_string(const char *name, const char *text, size_t len, tg_openapi_t **out, char *errbuf,
                           size_t errcap)
{
    diag_t d = {name != NULL ? name : "<openapi>", errbuf, errcap, 0, 0};
    *out = NULL;
    if (errbuf != NULL && errcap > 0)
        errbuf[0] = '\0';
    if (len > TG_OPENAPI_MAX_BYTES) {
        report(&d, 0, "larger than %d MiB (%zu bytes)", TG_OPENAPI_MAX_BYTES / (1024 * 1024), len);
        return TG_ECONFIG;
    }
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
        i++;
    json_t *doc = NULL;
    if (i < len && text[i] == '{') { /* JSON: jansson's own words and position on a syntax error */
        json_error_t je;
        doc = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
        if (doc == NULL) {
            report(&d, je.line, "column %d: %s", je.column, je.text);
            return TG_ECONFIG;
        }
    }
    tg_ynode_t *root = NULL;
    tg_ydoc_error_t ye = {0};
    int rc = tg_ydoc_load(text, len, &root, &ye);
    if (rc != 0) {
        json_decref(doc);
        report(&d, ye.line, "%s", ye.msg);
        return rc == TG_ENOMEM ? TG_ENOMEM : TG_ECONFIG;
    }
    size_t nops = check_document(&d, root);
    if (d.count == 0 && doc == NULL && (doc = convert(&d, root)) == NULL && d.count == 0)
        report(&d, 0, "out of memory");
    tg_ydoc_free(root);
    tg_openapi_t *o = d.count == 0 ? calloc(1, sizeof(*o)) : NULL;
    if (o == NULL) {
        if (d.count == 0)
            report(&d, 0, "out of memory");
        json_decref(doc);
        return TG_ECONFIG;
    }
    o->doc = doc;
    o->noperations = nops;
    *out = o;
    return 0;
}

int tg_openapi_load(const char *path, tg_openapi_t **out, char *errbuf, size_t errcap)
{
    *out = NULL;
    /* A regular file only: a FIFO or a device (/dev/stdin, /dev/zero) named by mistake would
     * block the load or feed it forever; O_NONBLOCK keeps even the open from waiting on a FIFO. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = errno;
        if (errbuf != NULL && errcap > 0)
            snprintf(errbuf, errcap, "%s: cannot open: %s\n", path, fd < 0 ? strerror(e) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return TG_ECONFIG;
    }
    FILE *f = fdopen(fd, "rb");
    if (f == NULL) {
        close(fd);
        if (errbuf != NULL && errcap > 0)
            snprintf(errbuf, errcap, "%s: out of memory\n", path);
        return TG_ENOMEM;
    }
    char *buf = malloc(TG_OPENAPI_MAX_BYTES + 1); /* one byte past the cap tells "larger" */
    size_t n = buf != NULL ? fread(buf, 1, TG_OPENAPI_MAX_BYTES + 1, f) : 0;
    int failed = ferror(f);
    fclose(f);
    if (buf == NULL || failed) {
        if (errbuf != NULL && errcap > 0)
            snprintf(errbuf, errcap, "%s: %s\n", path, buf == NULL ? "out of memory" : "read error");
        free(buf);
        return buf == NULL ? TG_ENOMEM : TG_ECONFIG;
    }
    int rc = tg_openapi_load_string(path, buf, n, out, errbuf, errcap);
    free(buf);
    return rc;
}

static void free_plan_words(tg_openapi_t *doc)
{
    for (size_t i = 0; i < doc->nplans; i++) {
        for (size_t j = 0; j < doc->plans[i].nwords; j++)
            free(doc->plans[i].words[j]);
        free(doc->plans[i].words);
        free(doc->plans[i].plan);
    }
    free(doc->plans);
    doc->plans = NULL;
    doc->nplans = 0;
}

void tg_openapi_free(tg_openapi_t *doc)
{
    if (doc == NULL)
        return;
    free_plan_words(doc);
    json_decref(doc->doc);
    free(doc->body);
    free(doc);
}

size_t tg_openapi_operations(const tg_openapi_t *doc)
{
    return doc != NULL ? doc->noperations : 0;
}

/* ---- enrichment ---- */

static json_t *operation_info(const tg_config_t *cfg, const char *method, const char *path)
{
    char upper[8];
    size_t ml = strlen(method);
    for (size_t i = 0; i < ml && i + 1 < sizeof(upper); i++)
        upper[i] = (char)(method[i] - 'a' + 'A');
    upper[ml < sizeof(upper) ? ml : sizeof(upper) - 1] = '\0';
    size_t pl = strlen(path);
    json_t *plans = json_array(), *meter = json_array();
    for (size_t i = 0; plans != NULL && i < cfg->nplans; i++)
        if (tg_plan_allows(&cfg->plans[i], path, pl))
            json_array_append_new(plans, json_string(cfg->plans[i].id));
    const tg_route_t *r = tg_config_match_route(cfg, upper, strlen(upper), path, pl);
    if (r != NULL && r->nmeter > 0)
        for (size_t i = 0; meter != NULL && i < r->nmeter; i++)
            json_array_append_new(
                meter, json_pack("{s:s,s:I}", "metric", r->meter[i].metric, "units", (json_int_t)r->meter[i].units));
    else if (meter != NULL)
        json_array_append_new(meter, json_pack("{s:s,s:i}", "metric", "api_calls", "units", 1));
    json_t *o =
        json_pack("{s:o*,s:I,s:o*}", "plans", plans, "weight", (json_int_t)(r != NULL ? r->weight : 1), "meter", meter);
    if (o != NULL && r != NULL && r->pattern != NULL)
        json_object_set_new(
            o, "route",
            json_sprintf("%s%s%s", r->method != NULL ? r->method : "", r->method != NULL ? " " : "", r->pattern));
    return o;
}

json_t *tg_openapi_enrich(const tg_openapi_t *doc, const tg_config_t *cfg)
{
    if (doc->doc == NULL)
        return NULL; /* prepared: only the rendered bytes remain */
    json_t *out = json_deep_copy(doc->doc);
    if (out == NULL)
        return NULL;
    const char *gw = cfg->public_urls.gateway != NULL ? cfg->public_urls.gateway : "";
    json_object_set_new(out, "servers", json_pack("[{s:s,s:s}]", "url", gw, "description", "the gateway"));
    json_t *paths = json_object_get(out, "paths");
    const char *path;
    json_t *item;
    json_object_foreach(paths, path, item)
    {
        const char *method;
        json_t *op;
        json_object_foreach(item, method, op)
        {
            if (!is_method(method) || !json_is_object(op))
                continue;
            json_t *info = operation_info(cfg, method, path);
            if (info == NULL || json_object_set_new(op, "x-tollgate", info) != 0) {
                json_decref(out);
                return NULL;
            }
        }
    }
    json_t *plans = json_array();
    for (size_t i = 0; plans != NULL && i < cfg->nplans; i++)
        json_array_append_new(plans, json_pack("{s:s,s:s,s:b}", "id", cfg->plans[i].id, "name",
                                               cfg->plans[i].name != NULL ? cfg->plans[i].name : cfg->plans[i].id,
                                               "self_service", tg_config_self_service(cfg, cfg->plans[i].id)));
    json_t *x = json_pack("{s:s,s:o*}", "gateway", gw, "plans", plans);
    if (x == NULL || json_object_set_new(out, "x-tollgate", x) != 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* ---- a plan's endpoints in words ---- */

/* Adds `word` to w unless it is there already or w is full. 0, or TG_ENOMEM. */
static int add_word(plan_words_t *w, const char *word)
{
    if (w->nwords >= TG_OPENAPI_MAX_PLAN_WORDS)
        return 0;
    for (size_t i = 0; i < w->nwords; i++)
        if (strcmp(w->words[i], word) == 0)
            return 0;
    if (w->words == NULL && (w->words = calloc(TG_OPENAPI_MAX_PLAN_WORDS, sizeof(*w->words))) == NULL)
        return TG_ENOMEM;
    if ((w->words[w->nwords] = strdup(word)) == NULL)
        return TG_ENOMEM;
    w->nwords++;
    return 0;
}

/* A short text of the operation, or NULL: a longer one would not fit a plan's card. */
static const char *short_text(const json_t *s)
{
    const char *t = json_string_value(s);
    return t != NULL && t[0] != '\0' && strlen(t) <= TG_OPENAPI_MAX_WORD_BYTES ? t : NULL;
}

static const char *first_tag(const json_t *op)
{
    return short_text(json_array_get(json_object_get(op, "tags"), 0));
}

/* The words for one endpoint pattern of a plan. A few operations (up to WORDS_BY_SUMMARY) are
 * named by their summaries ("Geocode a place name"); more by their tags ("text"), which is what
 * the document groups them under, so a card does not list a whole API. An operation with neither
 * adds nothing, and a pattern that no operation matches is shown as written. */
static int pattern_words(plan_words_t *w, const json_t *paths, const char *pattern)
{
    enum { WORDS_BY_SUMMARY = 4 };
    size_t matched = 0;
    const char *path;
    json_t *item;
    json_object_foreach((json_t *)paths, path, item)
    {
        if (!tg_path_match(pattern, path, strlen(path)))
            continue;
        const char *method;
        json_t *op;
        json_object_foreach(item, method, op) if (is_method(method) && json_is_object(op)) matched++;
    }
    if (matched == 0)
        return add_word(w, pattern);
    int rc = 0;
    json_object_foreach((json_t *)paths, path, item)
    {
        if (!tg_path_match(pattern, path, strlen(path)))
            continue;
        const char *method;
        json_t *op;
        json_object_foreach(item, method, op)
        {
            if (!is_method(method) || !json_is_object(op))
                continue;
            const char *summary = short_text(json_object_get(op, "summary")), *tag = first_tag(op);
            const char *word =
                matched <= WORDS_BY_SUMMARY ? (summary != NULL ? summary : tag) : (tag != NULL ? tag : summary);
            if (word != NULL && (rc = add_word(w, word)) != 0)
                return rc;
        }
    }
    return rc;
}

/* Every plan's endpoints in words, into doc->plans. 0, or TG_ENOMEM (doc->plans then empty). */
static int prepare_plan_words(tg_openapi_t *doc, const tg_config_t *cfg)
{
    free_plan_words(doc);
    if (cfg->nplans == 0)
        return 0;
    if ((doc->plans = calloc(cfg->nplans, sizeof(*doc->plans))) == NULL)
        return TG_ENOMEM;
    doc->nplans = cfg->nplans;
    const json_t *paths = json_object_get(doc->doc, "paths");
    for (size_t i = 0; i < cfg->nplans; i++) {
        const tg_plan_t *p = &cfg->plans[i];
        if ((doc->plans[i].plan = strdup(p->id)) == NULL)
            goto oom;
        for (size_t j = 0; j < p->nendpoints; j++)
            if (pattern_words(&doc->plans[i], paths, p->endpoints[j]) != 0)
                goto oom;
    }
    return 0;
oom:
    free_plan_words(doc);
    return TG_ENOMEM;
}

size_t tg_openapi_plan_words(const tg_openapi_t *doc, const char *plan_id, const char *const **words)
{
    *words = NULL;
    for (size_t i = 0; doc != NULL && i < doc->nplans; i++)
        if (strcmp(doc->plans[i].plan, plan_id) == 0) {
            *words = (const char *const *)doc->plans[i].words;
            return doc->plans[i].nwords;
        }
    return 0;
}

int tg_openapi_prepare(tg_openapi_t *doc, const tg_config_t *cfg)
{
    if (doc->doc != NULL && prepare_plan_words(doc, cfg) != 0)
        return TG_ENOMEM;
    json_t *j = tg_openapi_enrich(doc, cfg);
    char *body = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (body == NULL)
        return TG_ENOMEM;
    free(doc->body);
    doc->body = body;
    doc->body_len = strlen(body);
    json_decref(doc->doc);
    doc->doc = NULL;
    return 0;
}

const char *tg_openapi_body(const tg_openapi_t *doc, size_t *len)
{
    *len = doc->body_len;
    return doc->body;
}
