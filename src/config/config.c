/* config.c - see config.h.
 *
 * libyaml loads the file into a document (every node keeps its line); validation then walks it
 * with one table of directives per section (name, type, bounds, where the value goes), the same
 * tables that docs/configuration.md describes. Every problem is collected as "FILE:LINE: message"
 * and all of them are reported, not just the first. */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_CONFIG_BYTES (1024 * 1024)
#define MAX_PLANS 256
#define MAX_ROUTES 1024

/* ---- diagnostics ---- */

typedef struct diag {
    const char *file;
    char *buf;
    size_t cap, len;
    int count;
} diag_t;

static void report(diag_t *d, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void report(diag_t *d, int line, const char *fmt, ...)
{
    d->count++;
    if (d->buf == NULL || d->len + 1 >= d->cap)
        return;
    int n = snprintf(d->buf + d->len, d->cap - d->len, "%s:%d: ", d->file, line);
    if (n < 0 || (size_t)n >= d->cap - d->len) {
        d->len = d->cap - 1;
        return;
    }
    d->len += (size_t)n;
    va_list ap;
    va_start(ap, fmt);
    n = vsnprintf(d->buf + d->len, d->cap - d->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= d->cap - d->len) {
        d->len = d->cap - 1;
        return;
    }
    d->len += (size_t)n;
    if (d->len + 1 < d->cap) {
        d->buf[d->len++] = '\n';
        d->buf[d->len] = '\0';
    }
}

/* ---- YAML access ---- */

typedef struct ctx {
    yaml_document_t *doc;
    diag_t *d;
} ctx_t;

static yaml_node_t *node(ctx_t *c, int id)
{
    return yaml_document_get_node(c->doc, id);
}

static int line_of(yaml_node_t *n)
{
    return n != NULL ? (int)n->start_mark.line + 1 : 0;
}

static const char *type_name(yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE: return "a scalar";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "nothing";
    }
}

/* The scalar's text with ${NAME} expanded from the environment; NULL (reported) on error. */
static char *scalar(ctx_t *c, yaml_node_t *n, const char *what)
{
    if (n->type != YAML_SCALAR_NODE) {
        report(c->d, line_of(n), "%s: expected a scalar, got %s", what, type_name(n));
        return NULL;
    }
    const char *s = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length, cap = len + 1, out = 0;
    char *r = malloc(cap);
    if (r == NULL)
        return NULL;
    for (size_t i = 0; i < len;) {
        if (s[i] == '$' && i + 1 < len && s[i + 1] == '{') {
            const char *end = memchr(s + i + 2, '}', len - i - 2);
            if (end == NULL) {
                report(c->d, line_of(n), "%s: unterminated ${ in \"%s\"", what, s);
                free(r);
                return NULL;
            }
            char name[128];
            size_t nl = (size_t)(end - (s + i + 2));
            if (nl == 0 || nl >= sizeof(name)) {
                report(c->d, line_of(n), "%s: bad variable name in \"%s\"", what, s);
                free(r);
                return NULL;
            }
            memcpy(name, s + i + 2, nl);
            name[nl] = '\0';
            const char *v = getenv(name);
            if (v == NULL) {
                report(c->d, line_of(n), "%s: environment variable %s is not set", what, name);
                free(r);
                return NULL;
            }
            size_t vl = strlen(v);
            if (out + vl + (len - i) + 1 > cap) {
                cap = out + vl + (len - i) + 1;
                char *nr = realloc(r, cap);
                if (nr == NULL) {
                    free(r);
                    return NULL;
                }
                r = nr;
            }
            memcpy(r + out, v, vl);
            out += vl;
            i = (size_t)(end - s) + 1;
        } else {
            if (out + 2 > cap) {
                cap = cap * 2 + 2;
                char *nr = realloc(r, cap);
                if (nr == NULL) {
                    free(r);
                    return NULL;
                }
                r = nr;
            }
            r[out++] = s[i++];
        }
    }
    r[out] = '\0';
    return r;
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (*s == '\0' || *s == '-' || *s == '+')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    if (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0 || strcmp(s, "on") == 0)
        *out = 1;
    else if (strcmp(s, "false") == 0 || strcmp(s, "no") == 0 || strcmp(s, "off") == 0)
        *out = 0;
    else
        return -1;
    return 0;
}

/* "N/sec|second|min|minute|hour|day" */
static int parse_rate(const char *s, tg_rate_t *r)
{
    const char *slash = strchr(s, '/');
    if (slash == NULL)
        return -1;
    char num[32];
    size_t nl = (size_t)(slash - s);
    if (nl == 0 || nl >= sizeof(num))
        return -1;
    memcpy(num, s, nl);
    num[nl] = '\0';
    uint64_t count;
    if (parse_u64(num, &count) != 0 || count == 0 || count > 1000000000)
        return -1;
    const char *u = slash + 1;
    int64_t p;
    if (strcmp(u, "sec") == 0 || strcmp(u, "second") == 0 || strcmp(u, "s") == 0)
        p = 1;
    else if (strcmp(u, "min") == 0 || strcmp(u, "minute") == 0)
        p = 60;
    else if (strcmp(u, "hour") == 0 || strcmp(u, "h") == 0)
        p = 3600;
    else if (strcmp(u, "day") == 0 || strcmp(u, "d") == 0)
        p = 86400;
    else
        return -1;
    r->count = count;
    r->period_ns = p * INT64_C(1000000000);
    return 0;
}

static int valid_ident(const char *s, int allow_dash)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_' ||
              (allow_dash && s[i] == '-')))
            return 0;
    return 1;
}

/* ---- directive tables ---- */

typedef enum { D_STRING, D_INT, D_BOOL, D_DURABILITY, D_STATUS_CLASSES, D_SIZE } dtype_t;

typedef struct directive {
    const char *name;
    dtype_t type;
    int64_t min, max;
    size_t offset; /* into tg_config_t */
} directive_t;

#define OFF(field) offsetof(tg_config_t, field)
static const directive_t server_dirs[] = {
    {"listen", D_STRING, 0, 0, OFF(server.listen)},
    {"admin_listen", D_STRING, 0, 0, OFF(server.admin_listen)},
    {"workers", D_INT, 1, 64, OFF(server.workers)},
    {"max_header_bytes", D_SIZE, 1024, 1048576, OFF(server.max_header_bytes)},
    {"max_body_bytes", D_SIZE, 0, INT64_C(1099511627776), OFF(server.max_body_bytes)},
    {NULL, 0, 0, 0, 0}};
static const directive_t upstream_dirs[] = {
    {"url", D_STRING, 0, 0, OFF(upstream.url)},
    {"timeout_ms", D_INT, 1, 600000, OFF(upstream.timeout_ms)},
    {"keepalive_ms", D_INT, 0, 600000, OFF(upstream.keepalive_ms)},
    {NULL, 0, 0, 0, 0}};
static const directive_t storage_dirs[] = {{"database", D_STRING, 0, 0, OFF(storage.database)}, {NULL, 0, 0, 0, 0}};
static const directive_t admin_dirs[] = {
    {"token", D_STRING, 0, 0, OFF(admin.token)},
    {"key_grace_seconds", D_INT, 0, 31536000, OFF(admin.key_grace_seconds)},
    {NULL, 0, 0, 0, 0}};
static const directive_t keys_dirs[] = {{"secret", D_STRING, 0, 0, OFF(keys.secret)}, {NULL, 0, 0, 0, 0}};
static const directive_t metering_dirs[] = {
    {"durability", D_DURABILITY, 0, 0, OFF(metering.strict)},
    {"flush_ms", D_INT, 1, 10000, OFF(metering.flush_ms)},
    {"billable_status", D_STATUS_CLASSES, 0, 0, OFF(metering.billable_classes)},
    {"bill_429", D_BOOL, 0, 0, OFF(metering.bill_429)},
    {NULL, 0, 0, 0, 0}};

static void apply_directive(ctx_t *c, tg_config_t *cfg, const char *section, const directive_t *dir, yaml_node_t *v)
{
    char what[96];
    snprintf(what, sizeof(what), "%s.%s", section, dir->name);
    char *p = (char *)cfg + dir->offset;
    if (dir->type == D_STATUS_CLASSES) {
        if (v->type != YAML_SEQUENCE_NODE) {
            report(c->d, line_of(v), "%s: expected a list like [\"2xx\", \"4xx\"], got %s", what, type_name(v));
            return;
        }
        unsigned mask = 0;
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
            yaml_node_t *e = node(c, *it);
            char *s = scalar(c, e, what);
            if (s == NULL)
                continue;
            if (strlen(s) == 3 && s[0] >= '1' && s[0] <= '5' && s[1] == 'x' && s[2] == 'x')
                mask |= 1u << (s[0] - '0');
            else
                report(c->d, line_of(e), "%s: \"%s\" is not a status class (1xx..5xx)", what, s);
            free(s);
        }
        *(unsigned *)p = mask;
        return;
    }
    char *s = scalar(c, v, what);
    if (s == NULL)
        return;
    uint64_t u;
    int b;
    switch (dir->type) {
    case D_STRING:
        free(*(char **)p);
        *(char **)p = s;
        return;
    case D_INT:
    case D_SIZE:
        if (parse_u64(s, &u) != 0 || (int64_t)u < dir->min || (int64_t)u > dir->max || u > INT64_MAX)
            report(c->d, line_of(v), "%s: \"%s\" is not a whole number from %" PRId64 " to %" PRId64, what, s,
                   dir->min, dir->max);
        else if (dir->type == D_INT)
            *(int *)p = (int)u;
        else
            *(size_t *)p = (size_t)u;
        break;
    case D_BOOL:
        if (parse_bool(s, &b) != 0)
            report(c->d, line_of(v), "%s: \"%s\" is not true or false", what, s);
        else
            *(int *)p = b;
        break;
    case D_DURABILITY:
        if (strcmp(s, "strict") == 0)
            *(int *)p = 1;
        else if (strcmp(s, "batched") == 0)
            *(int *)p = 0;
        else
            report(c->d, line_of(v), "%s: \"%s\" is not strict or batched", what, s);
        break;
    default:
        break;
    }
    free(s);
}

static void parse_section(ctx_t *c, tg_config_t *cfg, const char *section, const directive_t *dirs, yaml_node_t *n)
{
    if (n->type != YAML_MAPPING_NODE) {
        report(c->d, line_of(n), "%s: expected a mapping, got %s", section, type_name(n));
        return;
    }
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = node(c, pr->key), *v = node(c, pr->value);
        const char *key = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "?";
        const directive_t *dir = dirs;
        while (dir->name != NULL && strcmp(dir->name, key) != 0)
            dir++;
        if (dir->name == NULL) {
            char known[256] = "";
            size_t used = 0;
            for (const directive_t *x = dirs; x->name != NULL; x++) {
                int w = snprintf(known + used, sizeof(known) - used, "%s%s", used ? ", " : "", x->name);
                if (w < 0 || (size_t)w >= sizeof(known) - used)
                    break;
                used += (size_t)w;
            }
            report(c->d, line_of(k), "unknown key \"%s\" in %s (known: %s)", key, section, known);
            continue;
        }
        apply_directive(c, cfg, section, dir, v);
    }
}

/* ---- plans ---- */

static int money_value(ctx_t *c, yaml_node_t *v, const char *what, tg_money_t *out, int allow_negative)
{
    char *s = scalar(c, v, what);
    if (s == NULL)
        return -1;
    tg_err_t err = {0};
    int rc = tg_money_parse(s, strlen(s), out, &err);
    if (rc != 0)
        report(c->d, line_of(v), "%s: %s", what, err.msg);
    else if (!allow_negative && *out < 0) {
        report(c->d, line_of(v), "%s: \"%s\" must not be negative", what, s);
        rc = -1;
    }
    free(s);
    return rc;
}

static int u64_value(ctx_t *c, yaml_node_t *v, const char *what, uint64_t min, uint64_t max, uint64_t *out)
{
    char *s = scalar(c, v, what);
    if (s == NULL)
        return -1;
    int rc = 0;
    if (parse_u64(s, out) != 0 || *out < min || *out > max) {
        report(c->d, line_of(v), "%s: \"%s\" is not a whole number from %" PRIu64 " to %" PRIu64, what, s, min, max);
        rc = -1;
    }
    free(s);
    return rc;
}

static char **string_list(ctx_t *c, yaml_node_t *v, const char *what, size_t *count, int paths)
{
    *count = 0;
    if (v->type != YAML_SEQUENCE_NODE) {
        report(c->d, line_of(v), "%s: expected a list, got %s", what, type_name(v));
        return NULL;
    }
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    char **list = calloc(n ? n : 1, sizeof(char *));
    if (list == NULL)
        return NULL;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *e = node(c, *it);
        char *s = scalar(c, e, what);
        if (s == NULL)
            continue;
        if (paths && s[0] != '/') {
            report(c->d, line_of(e), "%s: \"%s\" must start with \"/\"", what, s);
            free(s);
            continue;
        }
        list[(*count)++] = s;
    }
    return list;
}

static void free_list(char **l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(l[i]);
    free(l);
}

static void parse_tiers(ctx_t *c, tg_charge_t *ch, yaml_node_t *v, const char *what)
{
    if (v->type != YAML_SEQUENCE_NODE) {
        report(c->d, line_of(v), "%s: expected a list of tiers, got %s", what, type_name(v));
        return;
    }
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if ((ch->tiers = calloc(n ? n : 1, sizeof(tg_tier_t))) == NULL)
        return;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *t = node(c, *it);
        tg_tier_t *tier = &ch->tiers[ch->ntiers];
        int has_up_to = 0;
        if (t->type != YAML_MAPPING_NODE) {
            report(c->d, line_of(t), "%s: a tier must be a mapping {up_to, unit_price, flat_price}", what);
            continue;
        }
        for (yaml_node_pair_t *pr = t->data.mapping.pairs.start; pr < t->data.mapping.pairs.top; pr++) {
            yaml_node_t *k = node(c, pr->key), *tv = node(c, pr->value);
            const char *key = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "?";
            if (strcmp(key, "up_to") == 0) {
                has_up_to = 1;
                if (tv->type == YAML_SCALAR_NODE && (strcmp((const char *)tv->data.scalar.value, "inf") == 0 ||
                                                     strcmp((const char *)tv->data.scalar.value, "null") == 0))
                    tier->up_to = TG_UNLIMITED;
                else
                    u64_value(c, tv, "up_to", 1, UINT64_MAX - 1, &tier->up_to);
            } else if (strcmp(key, "unit_price") == 0)
                money_value(c, tv, "unit_price", &tier->unit_price, 0);
            else if (strcmp(key, "flat_price") == 0)
                money_value(c, tv, "flat_price", &tier->flat_price, 0);
            else
                report(c->d, line_of(k), "unknown key \"%s\" in a tier of %s (known: up_to, unit_price, flat_price)",
                       key, what);
        }
        if (!has_up_to) {
            report(c->d, line_of(t), "%s: every tier needs up_to (a number, or inf for the last)", what);
            continue;
        }
        if (ch->ntiers > 0 && tier->up_to <= ch->tiers[ch->ntiers - 1].up_to)
            report(c->d, line_of(t), "%s: tier bounds must ascend (up_to %" PRIu64 " after %" PRIu64 ")", what,
                   tier->up_to, ch->tiers[ch->ntiers - 1].up_to);
        ch->ntiers++;
    }
    if (ch->ntiers == 0)
        report(c->d, line_of(v), "%s: at least one tier is required", what);
    else if (ch->tiers[ch->ntiers - 1].up_to != TG_UNLIMITED)
        report(c->d, line_of(v), "%s: the last tier must have up_to: inf", what);
}

static void parse_charge(ctx_t *c, const tg_plan_t *plan, tg_charge_t *ch, yaml_node_t *n)
{
    char what[128];
    snprintf(what, sizeof(what), "plans.%s.charges", plan->id);
    ch->line = line_of(n);
    ch->round_up = 1;
    if (n->type != YAML_MAPPING_NODE) {
        report(c->d, line_of(n), "%s: a charge must be a mapping, got %s", what, type_name(n));
        return;
    }
    int has_model = 0, has_unit = 0, has_pkg_size = 0, has_pkg_price = 0;
    yaml_node_t *tiers = NULL;
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = node(c, pr->key), *v = node(c, pr->value);
        const char *key = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "?";
        char *s;
        if (strcmp(key, "metric") == 0) {
            if ((s = scalar(c, v, "metric")) != NULL) {
                if (!valid_ident(s, 0))
                    report(c->d, line_of(v), "%s: metric \"%s\" must be 1-63 of a-z, 0-9, _", what, s);
                free(ch->metric);
                ch->metric = s;
            }
        } else if (strcmp(key, "model") == 0) {
            if ((s = scalar(c, v, "model")) != NULL) {
                has_model = 1;
                if (strcmp(s, "per_unit") == 0)
                    ch->model = TG_MODEL_PER_UNIT;
                else if (strcmp(s, "graduated") == 0)
                    ch->model = TG_MODEL_GRADUATED;
                else if (strcmp(s, "volume") == 0)
                    ch->model = TG_MODEL_VOLUME;
                else if (strcmp(s, "package") == 0)
                    ch->model = TG_MODEL_PACKAGE;
                else
                    report(c->d, line_of(v), "%s: model \"%s\" is not per_unit, graduated, volume or package", what,
                           s);
                free(s);
            }
        } else if (strcmp(key, "unit_price") == 0) {
            has_unit = money_value(c, v, "unit_price", &ch->unit_price, 0) == 0;
        } else if (strcmp(key, "tiers") == 0) {
            tiers = v;
        } else if (strcmp(key, "package_size") == 0) {
            has_pkg_size = u64_value(c, v, "package_size", 1, UINT64_MAX - 1, &ch->package_size) == 0;
        } else if (strcmp(key, "package_price") == 0) {
            has_pkg_price = money_value(c, v, "package_price", &ch->package_price, 0) == 0;
        } else if (strcmp(key, "round") == 0) {
            if ((s = scalar(c, v, "round")) != NULL) {
                if (strcmp(s, "up") == 0)
                    ch->round_up = 1;
                else if (strcmp(s, "down") == 0)
                    ch->round_up = 0;
                else
                    report(c->d, line_of(v), "%s: round \"%s\" is not up or down", what, s);
                free(s);
            }
        } else {
            report(c->d, line_of(k),
                   "unknown key \"%s\" in %s (known: metric, model, unit_price, tiers, package_size, package_price, "
                   "round)",
                   key, what);
        }
    }
    if (ch->metric == NULL)
        report(c->d, line_of(n), "%s: a charge needs a metric", what);
    if (!has_model) {
        report(c->d, line_of(n), "%s: a charge needs a model (per_unit, graduated, volume or package)", what);
        return;
    }
    if (ch->model == TG_MODEL_PER_UNIT && !has_unit)
        report(c->d, line_of(n), "%s: model per_unit needs unit_price", what);
    if ((ch->model == TG_MODEL_GRADUATED || ch->model == TG_MODEL_VOLUME)) {
        if (tiers == NULL)
            report(c->d, line_of(n), "%s: model %s needs tiers", what,
                   ch->model == TG_MODEL_GRADUATED ? "graduated" : "volume");
        else
            parse_tiers(c, ch, tiers, what);
    }
    if (ch->model == TG_MODEL_PACKAGE && (!has_pkg_size || !has_pkg_price))
        report(c->d, line_of(n), "%s: model package needs package_size and package_price", what);
}

static void parse_plan(ctx_t *c, tg_plan_t *p, yaml_node_t *n)
{
    char what[128];
    p->line = line_of(n);
    snprintf(p->currency, sizeof(p->currency), "usd");
    p->currency_digits = 2;
    p->interval = TG_INTERVAL_MONTH;
    p->on_quota = TG_QUOTA_BLOCK;
    int has_burst = 0;
    if (n->type != YAML_MAPPING_NODE) {
        report(c->d, line_of(n), "plans.%s: expected a mapping, got %s", p->id, type_name(n));
        return;
    }
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = node(c, pr->key), *v = node(c, pr->value);
        const char *key = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "?";
        snprintf(what, sizeof(what), "plans.%s.%s", p->id, key);
        char *s = NULL;
        if (strcmp(key, "name") == 0) {
            if ((s = scalar(c, v, what)) != NULL) {
                free(p->name);
                p->name = s;
            }
        } else if (strcmp(key, "price") == 0) {
            money_value(c, v, what, &p->price, 0);
        } else if (strcmp(key, "minimum") == 0) {
            money_value(c, v, what, &p->minimum, 0);
        } else if (strcmp(key, "maximum") == 0) {
            money_value(c, v, what, &p->maximum, 0);
        } else if (strcmp(key, "block_at_maximum") == 0) {
            if ((s = scalar(c, v, what)) != NULL && parse_bool(s, &p->block_at_maximum) != 0)
                report(c->d, line_of(v), "%s: \"%s\" is not true or false", what, s);
            free(s);
        } else if (strcmp(key, "currency") == 0) {
            if ((s = scalar(c, v, what)) != NULL) {
                int digits = tg_currency_digits(s);
                if (digits < 0 || strlen(s) != 3)
                    report(c->d, line_of(v), "%s: \"%s\" is not a supported ISO 4217 currency code", what, s);
                else {
                    for (int i = 0; i < 3; i++)
                        p->currency[i] = (char)tolower((unsigned char)s[i]);
                    p->currency[3] = '\0';
                    p->currency_digits = digits;
                }
            }
            free(s);
        } else if (strcmp(key, "interval") == 0) {
            if ((s = scalar(c, v, what)) != NULL) {
                if (strcmp(s, "month") == 0)
                    p->interval = TG_INTERVAL_MONTH;
                else if (strcmp(s, "year") == 0)
                    p->interval = TG_INTERVAL_YEAR;
                else
                    report(c->d, line_of(v), "%s: \"%s\" is not month or year", what, s);
            }
            free(s);
        } else if (strcmp(key, "trial_days") == 0) {
            uint64_t d;
            if (u64_value(c, v, what, 0, 365, &d) == 0)
                p->trial_days = (int)d;
        } else if (strcmp(key, "rate_limit") == 0) {
            if ((s = scalar(c, v, what)) != NULL && parse_rate(s, &p->rate_limit) != 0)
                report(c->d, line_of(v), "%s: \"%s\" is not N/sec|min|hour|day", what, s);
            free(s);
        } else if (strcmp(key, "burst") == 0) {
            has_burst = u64_value(c, v, what, 1, 1000000000, &p->burst) == 0;
        } else if (strcmp(key, "endpoints") == 0) {
            free_list(p->endpoints, p->nendpoints);
            p->endpoints = string_list(c, v, what, &p->nendpoints, 1);
        } else if (strcmp(key, "features") == 0) {
            free_list(p->features, p->nfeatures);
            p->features = string_list(c, v, what, &p->nfeatures, 0);
        } else if (strcmp(key, "included") == 0) {
            if (v->type != YAML_MAPPING_NODE) {
                report(c->d, line_of(v), "%s: expected a mapping of metric: amount, got %s", what, type_name(v));
                continue;
            }
            size_t cnt = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
            free(p->included);
            p->nincluded = 0;
            if ((p->included = calloc(cnt ? cnt : 1, sizeof(tg_allowance_t))) == NULL)
                continue;
            for (yaml_node_pair_t *ip = v->data.mapping.pairs.start; ip < v->data.mapping.pairs.top; ip++) {
                yaml_node_t *mk = node(c, ip->key), *mv = node(c, ip->value);
                char *metric = scalar(c, mk, what);
                uint64_t amount;
                if (metric == NULL)
                    continue;
                if (!valid_ident(metric, 0)) {
                    report(c->d, line_of(mk), "%s: metric \"%s\" must be 1-63 of a-z, 0-9, _", what, metric);
                    free(metric);
                    continue;
                }
                if (u64_value(c, mv, what, 0, UINT64_MAX - 1, &amount) != 0) {
                    free(metric);
                    continue;
                }
                p->included[p->nincluded++] = (tg_allowance_t){metric, amount};
            }
        } else if (strcmp(key, "on_quota") == 0) {
            if ((s = scalar(c, v, what)) != NULL) {
                if (strcmp(s, "block") == 0)
                    p->on_quota = TG_QUOTA_BLOCK;
                else if (strcmp(s, "bill") == 0)
                    p->on_quota = TG_QUOTA_BILL;
                else if (strncmp(s, "throttle:", 9) == 0 && parse_rate(s + 9, &p->throttle_rate) == 0)
                    p->on_quota = TG_QUOTA_THROTTLE;
                else
                    report(c->d, line_of(v), "%s: \"%s\" is not block, bill or throttle:N/sec|min|hour|day", what, s);
            }
            free(s);
        } else if (strcmp(key, "charges") == 0) {
            if (v->type != YAML_SEQUENCE_NODE) {
                report(c->d, line_of(v), "%s: expected a list of charges, got %s", what, type_name(v));
                continue;
            }
            size_t cnt = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
            if (p->charges != NULL)
                continue;
            if ((p->charges = calloc(cnt ? cnt : 1, sizeof(tg_charge_t))) == NULL)
                continue;
            for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++)
                parse_charge(c, p, &p->charges[p->ncharges++], node(c, *it));
        } else {
            report(c->d, line_of(k),
                   "unknown key \"%s\" in plans.%s (known: name, price, currency, interval, trial_days, rate_limit, "
                   "burst, endpoints, included, on_quota, charges, minimum, maximum, block_at_maximum, features)",
                   key, p->id);
        }
    }
    if (p->name == NULL)
        p->name = strdup(p->id);
    if (!has_burst)
        p->burst = p->rate_limit.count > 0 ? p->rate_limit.count : 1;
    if (p->maximum != 0 && p->minimum > p->maximum)
        report(c->d, p->line, "plans.%s: minimum is larger than maximum", p->id);
}

/* ---- routes ---- */

static void parse_route(ctx_t *c, tg_route_t *r, yaml_node_t *n)
{
    r->line = line_of(n);
    r->weight = 1;
    if (n->type != YAML_MAPPING_NODE) {
        report(c->d, line_of(n), "routes: a route must be a mapping {match, weight, meter}, got %s", type_name(n));
        return;
    }
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = node(c, pr->key), *v = node(c, pr->value);
        const char *key = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "?";
        if (strcmp(key, "match") == 0) {
            char *s = scalar(c, v, "routes.match");
            if (s == NULL)
                continue;
            char *sp = strchr(s, ' ');
            const char *pat = s;
            if (sp != NULL) {
                *sp = '\0';
                for (char *m = s; *m; m++)
                    if (!isupper((unsigned char)*m))
                        report(c->d, line_of(v), "routes.match: method \"%s\" must be upper case, like GET", s);
                free(r->method);
                r->method = strdup(s);
                pat = sp + 1;
                while (*pat == ' ')
                    pat++;
            }
            if (*pat != '/')
                report(c->d, line_of(v), "routes.match: path \"%s\" must start with \"/\"", pat);
            free(r->pattern);
            r->pattern = strdup(pat);
            free(s);
        } else if (strcmp(key, "weight") == 0) {
            u64_value(c, v, "routes.weight", 1, 1000000, &r->weight);
        } else if (strcmp(key, "meter") == 0) {
            if (v->type != YAML_MAPPING_NODE) {
                report(c->d, line_of(v), "routes.meter: expected a mapping of metric: units, got %s", type_name(v));
                continue;
            }
            size_t cnt = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
            if (r->meter != NULL || (r->meter = calloc(cnt ? cnt : 1, sizeof(tg_meter_unit_t))) == NULL)
                continue;
            for (yaml_node_pair_t *mp = v->data.mapping.pairs.start; mp < v->data.mapping.pairs.top; mp++) {
                char *metric = scalar(c, node(c, mp->key), "routes.meter");
                uint64_t units;
                if (metric == NULL)
                    continue;
                if (!valid_ident(metric, 0)) {
                    report(c->d, line_of(node(c, mp->key)), "routes.meter: metric \"%s\" must be 1-63 of a-z, 0-9, _",
                           metric);
                    free(metric);
                } else if (u64_value(c, node(c, mp->value), "routes.meter", 0, 1000000000, &units) != 0) {
                    free(metric);
                } else if (r->nmeter >= 8) {
                    report(c->d, line_of(node(c, mp->key)), "routes.meter: at most 8 metrics per route");
                    free(metric);
                } else
                    r->meter[r->nmeter++] = (tg_meter_unit_t){metric, units};
            }
        } else {
            report(c->d, line_of(k), "unknown key \"%s\" in a route (known: match, weight, meter)", key);
        }
    }
    if (r->pattern == NULL)
        report(c->d, line_of(n), "routes: a route needs match: \"[METHOD] /path\"");
    if (r->meter == NULL) {
        if ((r->meter = calloc(1, sizeof(tg_meter_unit_t))) != NULL) {
            r->meter[0] = (tg_meter_unit_t){strdup("api_calls"), 1};
            r->nmeter = 1;
        }
    }
}

/* ---- top level ---- */

static void set_defaults(tg_config_t *cfg)
{
    cfg->server.listen = strdup("127.0.0.1:8080");
    cfg->server.admin_listen = strdup("127.0.0.1:8081");
    cfg->server.workers = 2;
    cfg->server.max_header_bytes = 65536;
    cfg->server.max_body_bytes = 104857600;
    cfg->upstream.timeout_ms = 30000;
    cfg->upstream.keepalive_ms = 30000;
    cfg->storage.database = strdup("sqlite:var/tollgate.db");
    cfg->admin.key_grace_seconds = 86400;
    cfg->metering.strict = 0;
    cfg->metering.flush_ms = 5;
    cfg->metering.billable_classes = (1u << 2) | (1u << 3) | (1u << 4);
}

static void validate(ctx_t *c, tg_config_t *cfg, int top_line)
{
    if (cfg->upstream.url == NULL)
        report(c->d, top_line, "upstream.url is required");
    else if (strncmp(cfg->upstream.url, "http://", 7) != 0 || cfg->upstream.url[7] == '\0' ||
             cfg->upstream.url[7] == '/')
        report(c->d, top_line, "upstream.url \"%s\" must be an http:// URL with a host", cfg->upstream.url);
    if (cfg->admin.token == NULL)
        report(c->d, top_line, "admin.token is required (at least 16 characters)");
    else if (strlen(cfg->admin.token) < 16)
        report(c->d, top_line, "admin.token is too short (%zu characters; at least 16)", strlen(cfg->admin.token));
    if (cfg->keys.secret == NULL)
        report(c->d, top_line, "keys.secret is required (at least 32 characters; it keys the stored API key hashes)");
    else if (strlen(cfg->keys.secret) < 32)
        report(c->d, top_line, "keys.secret is too short (%zu characters; at least 32)", strlen(cfg->keys.secret));
    if (strncmp(cfg->storage.database, "sqlite:", 7) != 0 || cfg->storage.database[7] == '\0')
        report(c->d, top_line, "storage.database \"%s\" must be sqlite:PATH (PostgreSQL comes in a later release)",
               cfg->storage.database);
    if (strchr(cfg->server.listen, ':') == NULL)
        report(c->d, top_line, "server.listen \"%s\" must be host:port", cfg->server.listen);
    if (strchr(cfg->server.admin_listen, ':') == NULL)
        report(c->d, top_line, "server.admin_listen \"%s\" must be host:port", cfg->server.admin_listen);
    if (cfg->nplans == 0)
        report(c->d, top_line, "plans: at least one plan is required");
}

static int load(const char *name, const char *yaml, size_t len, tg_config_t **out, char *errbuf, size_t errcap)
{
    diag_t d = {name, errbuf, errcap, 0, 0};
    if (errbuf != NULL && errcap > 0)
        errbuf[0] = '\0';
    *out = NULL;
    tg_config_t *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL)
        return TG_ENOMEM;
    cfg->path = strdup(name);
    set_defaults(cfg);

    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        report(&d, (int)parser.problem_mark.line + 1, "YAML syntax error: %s%s%s",
               parser.problem ? parser.problem : "unknown", parser.context ? " " : "",
               parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        tg_config_free(cfg);
        return TG_ECONFIG;
    }
    ctx_t c = {&doc, &d};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root == NULL || root->type != YAML_MAPPING_NODE) {
        report(&d, root != NULL ? line_of(root) : 1, "the configuration must be a mapping of sections");
    } else {
        for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
            yaml_node_t *k = node(&c, pr->key), *v = node(&c, pr->value);
            const char *key = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "?";
            if (strcmp(key, "server") == 0)
                parse_section(&c, cfg, "server", server_dirs, v);
            else if (strcmp(key, "upstream") == 0)
                parse_section(&c, cfg, "upstream", upstream_dirs, v);
            else if (strcmp(key, "storage") == 0)
                parse_section(&c, cfg, "storage", storage_dirs, v);
            else if (strcmp(key, "admin") == 0)
                parse_section(&c, cfg, "admin", admin_dirs, v);
            else if (strcmp(key, "keys") == 0)
                parse_section(&c, cfg, "keys", keys_dirs, v);
            else if (strcmp(key, "metering") == 0)
                parse_section(&c, cfg, "metering", metering_dirs, v);
            else if (strcmp(key, "plans") == 0) {
                if (v->type != YAML_MAPPING_NODE) {
                    report(&d, line_of(v), "plans: expected a mapping of plan id: plan, got %s", type_name(v));
                    continue;
                }
                size_t cnt = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
                if (cnt > MAX_PLANS) {
                    report(&d, line_of(v), "plans: at most %d plans", MAX_PLANS);
                    continue;
                }
                if (cfg->plans != NULL || (cfg->plans = calloc(cnt ? cnt : 1, sizeof(tg_plan_t))) == NULL)
                    continue;
                for (yaml_node_pair_t *pp = v->data.mapping.pairs.start; pp < v->data.mapping.pairs.top; pp++) {
                    char *id = scalar(&c, node(&c, pp->key), "plans");
                    if (id == NULL)
                        continue;
                    if (!valid_ident(id, 1)) {
                        report(&d, line_of(node(&c, pp->key)), "plans: id \"%s\" must be 1-63 of a-z, 0-9, _, -", id);
                        free(id);
                        continue;
                    }
                    if (tg_config_find_plan(cfg, id) != NULL) {
                        report(&d, line_of(node(&c, pp->key)), "plans: plan \"%s\" is defined twice", id);
                        free(id);
                        continue;
                    }
                    tg_plan_t *p = &cfg->plans[cfg->nplans++];
                    p->id = id;
                    parse_plan(&c, p, node(&c, pp->value));
                }
            } else if (strcmp(key, "routes") == 0) {
                if (v->type != YAML_SEQUENCE_NODE) {
                    report(&d, line_of(v), "routes: expected a list, got %s", type_name(v));
                    continue;
                }
                size_t cnt = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
                if (cnt > MAX_ROUTES) {
                    report(&d, line_of(v), "routes: at most %d routes", MAX_ROUTES);
                    continue;
                }
                if (cfg->routes != NULL || (cfg->routes = calloc(cnt ? cnt : 1, sizeof(tg_route_t))) == NULL)
                    continue;
                for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++)
                    parse_route(&c, &cfg->routes[cfg->nroutes++], node(&c, *it));
            } else {
                report(&d, line_of(k),
                       "unknown section \"%s\" (known: server, upstream, storage, admin, keys, metering, plans, "
                       "routes)",
                       key);
            }
        }
        validate(&c, cfg, line_of(root));
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (d.count > 0) {
        tg_config_free(cfg);
        return TG_ECONFIG;
    }
    *out = cfg;
    return 0;
}

int tg_config_load_string(const char *name, const char *yaml, size_t len, tg_config_t **out, char *errbuf,
                          size_t errcap)
{
    return load(name, yaml, len, out, errbuf, errcap);
}

int tg_config_load(const char *path, tg_config_t **out, char *errbuf, size_t errcap)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        if (errbuf != NULL)
            snprintf(errbuf, errcap, "%s: cannot open: %s\n", path, strerror(errno));
        return TG_ECONFIG;
    }
    char *buf = malloc(MAX_CONFIG_BYTES + 1);
    size_t n = buf != NULL ? fread(buf, 1, MAX_CONFIG_BYTES + 1, f) : 0;
    int rerr = ferror(f);
    fclose(f);
    if (buf == NULL || rerr || n > MAX_CONFIG_BYTES) {
        if (errbuf != NULL)
            snprintf(errbuf, errcap, "%s: %s\n", path,
                     buf == NULL ? "out of memory" : rerr ? "read error" : "larger than 1 MiB");
        free(buf);
        return TG_ECONFIG;
    }
    int rc = load(path, buf, n, out, errbuf, errcap);
    free(buf);
    return rc;
}

static void free_charges(tg_plan_t *p)
{
    for (size_t i = 0; i < p->ncharges; i++) {
        free(p->charges[i].metric);
        free(p->charges[i].tiers);
    }
    free(p->charges);
}

void tg_config_free(tg_config_t *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->nplans; i++) {
        tg_plan_t *p = &cfg->plans[i];
        free(p->id);
        free(p->name);
        free_list(p->endpoints, p->nendpoints);
        free_list(p->features, p->nfeatures);
        for (size_t j = 0; j < p->nincluded; j++)
            free(p->included[j].metric);
        free(p->included);
        free_charges(p);
    }
    free(cfg->plans);
    for (size_t i = 0; i < cfg->nroutes; i++) {
        tg_route_t *r = &cfg->routes[i];
        free(r->method);
        free(r->pattern);
        for (size_t j = 0; j < r->nmeter; j++)
            free(r->meter[j].metric);
        free(r->meter);
    }
    free(cfg->routes);
    free(cfg->server.listen);
    free(cfg->server.admin_listen);
    free(cfg->upstream.url);
    free(cfg->storage.database);
    free(cfg->admin.token);
    free(cfg->keys.secret);
    free(cfg->path);
    free(cfg);
}

const tg_plan_t *tg_config_find_plan(const tg_config_t *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->nplans; i++)
        if (cfg->plans[i].id != NULL && strcmp(cfg->plans[i].id, id) == 0)
            return &cfg->plans[i];
    return NULL;
}

uint64_t tg_plan_included(const tg_plan_t *plan, const char *metric)
{
    for (size_t i = 0; i < plan->nincluded; i++)
        if (strcmp(plan->included[i].metric, metric) == 0)
            return plan->included[i].amount;
    return TG_UNLIMITED;
}

int tg_path_match(const char *pattern, const char *path, size_t len)
{
    /* Iterative glob with one backtrack point: linear in practice, no recursion. */
    const char *p = pattern, *star = NULL;
    size_t i = 0, mark = 0;
    while (i < len) {
        if (*p == '*') {
            star = p++;
            mark = i;
        } else if (*p != '\0' && *p == path[i]) {
            p++;
            i++;
        } else if (star != NULL) {
            p = star + 1;
            i = ++mark;
        } else {
            return 0;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

int tg_plan_allows(const tg_plan_t *plan, const char *path, size_t len)
{
    if (plan->nendpoints == 0 && plan->endpoints == NULL)
        return 1;
    for (size_t i = 0; i < plan->nendpoints; i++)
        if (tg_path_match(plan->endpoints[i], path, len))
            return 1;
    return 0;
}

const tg_route_t *tg_config_match_route(const tg_config_t *cfg, const char *method, size_t mlen, const char *path,
                                        size_t plen)
{
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const tg_route_t *r = &cfg->routes[i];
        if (r->method != NULL && (strlen(r->method) != mlen || memcmp(r->method, method, mlen) != 0))
            continue;
        if (r->pattern != NULL && tg_path_match(r->pattern, path, plen))
            return r;
    }
    return NULL;
}

/* ---- describe ---- */

typedef struct sbuf {
    char *b;
    size_t len, cap;
} sbuf_t;

static void sb_printf(sbuf_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *s, const char *fmt, ...)
{
    if (s->b == NULL)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(s->b + s->len, s->cap - s->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < s->cap - s->len) {
            s->len += (size_t)n;
            return;
        }
        char *nb = realloc(s->b, s->cap * 2 + (size_t)n);
        if (nb == NULL) {
            free(s->b);
            s->b = NULL;
            return;
        }
        s->b = nb;
        s->cap = s->cap * 2 + (size_t)n;
    }
}

static const char *rate_unit(int64_t period_ns)
{
    switch (period_ns / INT64_C(1000000000)) {
    case 1: return "sec";
    case 60: return "min";
    case 3600: return "hour";
    default: return "day";
    }
}

char *tg_config_describe(const tg_config_t *cfg)
{
    sbuf_t s = {malloc(4096), 0, 4096};
    char m1[TG_MONEY_FMT_MAX], m2[TG_MONEY_FMT_MAX];
    sb_printf(&s, "gateway %s -> %s (timeout %d ms), admin %s, %d workers\nstorage %s, metering %s",
              cfg->server.listen, cfg->upstream.url, cfg->upstream.timeout_ms, cfg->server.admin_listen,
              cfg->server.workers, cfg->storage.database, cfg->metering.strict ? "strict" : "batched");
    if (!cfg->metering.strict)
        sb_printf(&s, " (flush every %d ms)", cfg->metering.flush_ms);
    sb_printf(&s, "\n\n");
    for (size_t i = 0; i < cfg->nplans; i++) {
        const tg_plan_t *p = &cfg->plans[i];
        tg_money_format(p->price, p->currency_digits, m1, sizeof(m1));
        sb_printf(&s, "plan %s (%s): %s %s per %s", p->id, p->name, m1, p->currency,
                  p->interval == TG_INTERVAL_YEAR ? "year" : "month");
        if (p->trial_days > 0)
            sb_printf(&s, ", %d-day trial", p->trial_days);
        sb_printf(&s, "\n  rate limit: ");
        if (p->rate_limit.count == 0)
            sb_printf(&s, "unlimited\n");
        else
            sb_printf(&s, "%" PRIu64 "/%s, burst %" PRIu64 "\n", p->rate_limit.count, rate_unit(p->rate_limit.period_ns),
                      p->burst);
        sb_printf(&s, "  endpoints: ");
        if (p->nendpoints == 0 && p->endpoints == NULL)
            sb_printf(&s, "all");
        for (size_t j = 0; j < p->nendpoints; j++)
            sb_printf(&s, "%s%s", j ? ", " : "", p->endpoints[j]);
        sb_printf(&s, "\n  included: ");
        if (p->nincluded == 0)
            sb_printf(&s, "nothing metered is limited");
        for (size_t j = 0; j < p->nincluded; j++)
            sb_printf(&s, "%s%" PRIu64 " %s", j ? ", " : "", p->included[j].amount, p->included[j].metric);
        sb_printf(&s, "\n  over quota: ");
        if (p->on_quota == TG_QUOTA_BLOCK)
            sb_printf(&s, "block\n");
        else if (p->on_quota == TG_QUOTA_BILL)
            sb_printf(&s, "bill as overage\n");
        else
            sb_printf(&s, "throttle to %" PRIu64 "/%s\n", p->throttle_rate.count, rate_unit(p->throttle_rate.period_ns));
        for (size_t j = 0; j < p->ncharges; j++) {
            const tg_charge_t *ch = &p->charges[j];
            sb_printf(&s, "  charge %s: ", ch->metric != NULL ? ch->metric : "?");
            switch (ch->model) {
            case TG_MODEL_PER_UNIT:
                tg_money_format(ch->unit_price, p->currency_digits, m1, sizeof(m1));
                sb_printf(&s, "per unit %s %s\n", m1, p->currency);
                break;
            case TG_MODEL_PACKAGE:
                tg_money_format(ch->package_price, p->currency_digits, m1, sizeof(m1));
                sb_printf(&s, "%s %s per package of %" PRIu64 " (rounded %s)\n", m1, p->currency, ch->package_size,
                          ch->round_up ? "up" : "down");
                break;
            default:
                sb_printf(&s, "%s tiers\n", ch->model == TG_MODEL_GRADUATED ? "graduated" : "volume");
                for (size_t t = 0; t < ch->ntiers; t++) {
                    tg_money_format(ch->tiers[t].unit_price, p->currency_digits, m1, sizeof(m1));
                    tg_money_format(ch->tiers[t].flat_price, p->currency_digits, m2, sizeof(m2));
                    if (ch->tiers[t].up_to == TG_UNLIMITED)
                        sb_printf(&s, "    up to inf: %s per unit + %s flat\n", m1, m2);
                    else
                        sb_printf(&s, "    up to %" PRIu64 ": %s per unit + %s flat\n", ch->tiers[t].up_to, m1, m2);
                }
            }
        }
        if (p->minimum != 0) {
            tg_money_format(p->minimum, p->currency_digits, m1, sizeof(m1));
            sb_printf(&s, "  minimum usage charge: %s %s\n", m1, p->currency);
        }
        if (p->maximum != 0) {
            tg_money_format(p->maximum, p->currency_digits, m1, sizeof(m1));
            sb_printf(&s, "  usage charges capped at %s %s%s\n", m1, p->currency,
                      p->block_at_maximum ? " (calls blocked at the cap)" : "");
        }
        for (size_t j = 0; j < p->nfeatures; j++)
            sb_printf(&s, "  * %s\n", p->features[j]);
        sb_printf(&s, "\n");
    }
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const tg_route_t *r = &cfg->routes[i];
        sb_printf(&s, "route %s%s%s: weight %" PRIu64 ", meters", r->method ? r->method : "", r->method ? " " : "",
                  r->pattern ? r->pattern : "?", r->weight);
        for (size_t j = 0; j < r->nmeter; j++)
            sb_printf(&s, " %s=%" PRIu64, r->meter[j].metric, r->meter[j].units);
        sb_printf(&s, "\n");
    }
    return s.b;
}
