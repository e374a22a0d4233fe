/* config.c - loading and validating tollgate.yaml (see config.h).
 *
 * Two steps, as in nginx. yaml_doc.c turns the text into a tree whose nodes know their lines.
 * Then one table of directives per section - name, setter (which is the type), field, bounds,
 * required, validator - walks that tree. The tables are the single description of the format:
 * they convert values, reject unknown and repeated keys (suggesting the nearest known one), report
 * required keys that are missing, and docs/configuration.md follows them row by row. Checks that
 * involve several keys (a charge's model and its prices, a plan's minimum and maximum) live in
 * each section's finish function. Every problem is collected with its line and all of them are
 * reported, sorted by line, as "FILE:LINE: message"; secrets are never echoed. */
#include "config/config.h"
#include "model/records.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "apiref/openapi.h"
#include "config/yaml_doc.h"
#include "notify/events.h"
#include "notify/retention.h"
#include "notify/webhook_sign.h"
#include "notify/webhook_url.h"
#include "util/clock.h"
#include "util/redis_url.h"
#include "util/thread_affinity.h"

#include <sodium.h>

#define MAX_CONFIG_BYTES (1024 * 1024)
#define MAX_PROBLEMS 200 /* kept for the report; all are counted */
#define MAX_STRING 4096  /* one value after ${NAME} expansion */
#define MAX_PATH 256     /* "plans.pro.charges[1].tiers[0].up_to" */
#define MAX_PLANS 256
#define MAX_ROUTES 1024
#define MAX_CHARGES 32
#define MAX_TIERS 32
#define MAX_ENDPOINTS 256
#define MAX_FEATURES 64
#define MAX_INCLUDED 64
#define MAX_METER 8 /* the gateway keeps at most TG_CALL_MAX_METRICS (8) units per call */
#define MAX_RATE_COUNT UINT64_C(1000000000)
#define MAX_QUANTITY UINT64_C(1000000000000000000) /* fits int64, far from TG_UNLIMITED */
#define NS_PER_SEC INT64_C(1000000000)

/* ---- diagnostics ---- */

typedef struct problem {
    int line;
    size_t seq; /* report order, to keep the sort stable */
    char *msg;
} problem_t;

typedef struct diag {
    const char *file;
    problem_t *v;
    size_t n, cap;
    size_t count; /* every problem, kept or not */
} diag_t;

static void report(diag_t *d, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void report(diag_t *d, int line, const char *fmt, ...)
{
    d->count++;
    if (d->n >= MAX_PROBLEMS)
        return;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        problem_t *v = realloc(d->v, cap * sizeof(*v));
        if (v == NULL)
            return; /* still counted: the load fails, only the sentence is lost */
        d->v = v;
        d->cap = cap;
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *c = msg; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?'; /* one problem, one line, whatever a value held (quote() escapes the usual ones) */
    char *m = strdup(msg);
    if (m == NULL)
        return;
    d->v[d->n] = (problem_t){line, d->n, m};
    d->n++;
}

static int cmp_problem(const void *a, const void *b)
{
    const problem_t *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Writes whole lines only, keeping room for a last line that says how many did not fit. */
static void write_report(diag_t *d, char *buf, size_t cap)
{
    if (buf == NULL || cap == 0)
        return;
    buf[0] = '\0';
    qsort(d->v, d->n, sizeof(*d->v), cmp_problem);
    const size_t reserve = 96;
    size_t used = 0, shown = 0;
    char line[1400];
    for (size_t i = 0; i < d->n; i++) {
        int n = d->v[i].line > 0 ? snprintf(line, sizeof(line), "%s:%d: %s\n", d->file, d->v[i].line, d->v[i].msg)
                                 : snprintf(line, sizeof(line), "%s: %s\n", d->file, d->v[i].msg);
        if (n < 0 || (size_t)n >= sizeof(line) || used + (size_t)n + reserve >= cap)
            break;
        memcpy(buf + used, line, (size_t)n + 1);
        used += (size_t)n;
        shown++;
    }
    if (shown < d->count && used < cap)
        snprintf(buf + used, cap - used, "%s: %zu more problem%s not shown\n", d->file, d->count - shown,
                 d->count - shown == 1 ? "" : "s");
}

static void diag_free(diag_t *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->v[i].msg);
    free(d->v);
}

/* A value quoted for a message: at most ~80 characters, control characters escaped (one problem
 * stays one line), and the user:password of a URL masked. */
static const char *quote(const char *s, char out[96])
{
    const char *scheme = strstr(s, "://"), *at = scheme != NULL ? strchr(scheme + 3, '@') : NULL;
    const char *slash = scheme != NULL ? strchr(scheme + 3, '/') : NULL;
    if (at != NULL && slash != NULL && slash < at)
        at = NULL;
    size_t o = 0;
    out[o++] = '"';
    for (const char *p = s; *p != '\0' && o < 80; p++) {
        if (at != NULL && p == scheme + 3) {
            memcpy(out + o, "***", 3);
            o += 3;
            p = at - 1;
            continue;
        }
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            o += (size_t)snprintf(out + o, 5, "\\x%02x", ch);
        } else {
            out[o++] = (char)ch;
        }
        if (o >= 80 && p[1] != '\0') {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

static const char *kind_of(const tg_ynode_t *n)
{
    return n->type == TG_YNODE_MAP ? "a mapping" : n->type == TG_YNODE_SEQ ? "a list" : "a single value";
}

static void join_path(char out[MAX_PATH], const char *path, const char *name)
{
    snprintf(out, MAX_PATH, "%s%s%s", path, path[0] != '\0' ? "." : "", name);
}

static void index_path(char out[MAX_PATH], const char *path, size_t i)
{
    snprintf(out, MAX_PATH, "%s[%zu]", path, i);
}

/* Line of `key` in mapping n, or `fallback`. */
static int key_line(const tg_ynode_t *n, const char *key, int fallback)
{
    if (n != NULL && n->type == TG_YNODE_MAP)
        for (size_t i = 0; i + 1 < n->n; i += 2)
            if (n->items[i]->type == TG_YNODE_SCALAR && strcmp(n->items[i]->text, key) == 0)
                return n->items[i]->line;
    return fallback;
}

/* ---- scalars ---- */

/* Frees a value being built; it may already hold an expanded secret. */
static void drop(char *r, size_t len)
{
    explicit_bzero(r, len);
    free(r);
}

/* ${NAME} expansion. Returns a new string, or NULL after reporting. */
static char *expand(diag_t *d, const tg_ynode_t *v, const char *path)
{
    const char *s = v->text;
    size_t cap = v->len + 1 > 64 ? v->len + 1 : 64, out = 0;
    char *r = malloc(cap);
    if (r == NULL) {
        report(d, v->line, "%s: out of memory", path);
        return NULL;
    }
    for (size_t i = 0; i < v->len;) {
        const char *piece = s + i;
        size_t plen = 1;
        if (s[i] == '$' && i + 1 < v->len && s[i + 1] == '{') {
            const char *end = memchr(s + i + 2, '}', v->len - i - 2);
            size_t nl = end != NULL ? (size_t)(end - (s + i + 2)) : 0;
            char name[128];
            int ok = end != NULL && nl > 0 && nl < sizeof(name);
            for (size_t k = 0; ok && k < nl; k++) {
                char ch = s[i + 2 + k];
                ok = ch == '_' || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                     (k > 0 && ch >= '0' && ch <= '9');
            }
            if (!ok) {
                report(d, v->line,
                       "%s: \"${\" must be followed by a variable name and \"}\", like ${TOLLGATE_ADMIN_TOKEN}", path);
                drop(r, out);
                return NULL;
            }
            memcpy(name, s + i + 2, nl);
            name[nl] = '\0';
            piece = getenv(name);
            if (piece == NULL) {
                report(d, v->line, "%s: environment variable %s is not set", path, name);
                drop(r, out);
                return NULL;
            }
            plen = strlen(piece);
            i += nl + 3;
        } else {
            i++;
        }
        if (out + plen >= MAX_STRING) {
            report(d, v->line, "%s: longer than %d characters after ${} expansion", path, MAX_STRING - 1);
            drop(r, out);
            return NULL;
        }
        if (out + plen + 1 > cap) {
            size_t ncap = (out + plen + 1) * 2;
            char *nr = malloc(ncap);
            if (nr == NULL) {
                report(d, v->line, "%s: out of memory", path);
                drop(r, out);
                return NULL;
            }
            memcpy(nr, r, out);
            drop(r, out); /* not realloc: the old copy may hold a secret */
            r = nr;
            cap = ncap;
        }
        memcpy(r + out, piece, plen);
        out += plen;
    }
    r[out] = '\0';
    return r;
}

static void free_secret(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

/* The text of a scalar value, expanded; NULL after reporting if v is not a scalar. */
static char *scalar(diag_t *d, const tg_ynode_t *v, const char *path, const char *expected)
{
    if (v->type != TG_YNODE_SCALAR) {
        report(d, v->line, "%s: expected %s, got %s", path, expected, kind_of(v));
        return NULL;
    }
    return expand(d, v, path);
}

static int parse_whole(const char *s, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int whole_value(diag_t *d, const tg_ynode_t *v, const char *path, uint64_t min, uint64_t max, uint64_t *out)
{
    char *s = scalar(d, v, path, "a whole number");
    if (s == NULL)
        return -1;
    char q[96];
    uint64_t u;
    int rc = 0;
    if (parse_whole(s, &u) != 0 || u < min || u > max) {
        report(d, v->line, "%s: %s is not a whole number from %" PRIu64 " to %" PRIu64, path, quote(s, q), min, max);
        rc = -1;
    } else {
        *out = u;
    }
    free(s);
    return rc;
}

/* "N/sec|second|min|minute|hour|day" */
static int parse_rate(const char *s, tg_rate_t *r)
{
    const char *slash = strchr(s, '/');
    if (slash == NULL || slash == s || (size_t)(slash - s) > 20)
        return -1;
    char num[24];
    memcpy(num, s, (size_t)(slash - s));
    num[slash - s] = '\0';
    uint64_t count;
    if (parse_whole(num, &count) != 0 || count == 0 || count > MAX_RATE_COUNT)
        return -1;
    static const struct {
        const char *unit;
        int64_t seconds;
    } units[] = {{"sec", 1}, {"second", 1}, {"min", 60}, {"minute", 60}, {"hour", 3600}, {"day", 86400}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(slash + 1, units[i].unit) == 0) {
            r->count = count;
            r->period_ns = units[i].seconds * NS_PER_SEC;
            return 0;
        }
    return -1;
}

/* ---- validators of strings: 0, or -1 with the end of a sentence in why ---- */

typedef int (*check_fn)(const char *s, char *why, size_t cap);

static int is_lower_ident(const char *s, int allow_dash)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              (allow_dash && s[i] == '-')))
            return 0;
    return 1;
}

static int check_metric(const char *s, char *why, size_t cap)
{
    if (is_lower_ident(s, 0))
        return 0;
    snprintf(why, cap, "is not a metric name (1 to 63 of a-z, 0-9, _)");
    return -1;
}

static int check_pattern(const char *s, char *why, size_t cap)
{
    if (s[0] != '/') {
        snprintf(why, cap, "must start with \"/\"");
        return -1;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            snprintf(why, cap, "must not contain spaces or control characters");
            return -1;
        }
        if (*p == '?' || *p == '#') {
            snprintf(why, cap, "must not contain '%c' (only the path is matched, never the query)", *p);
            return -1;
        }
    }
    return 0;
}

static int check_text(const char *s, char *why, size_t cap)
{
    for (const char *p = s; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            snprintf(why, cap, "must not contain control characters");
            return -1;
        }
    return 0;
}

/* decide.syslog_secret: nginx writes it as literal text in a log_format, between single quotes,
 * and sends it as one space-separated field; these characters need no escaping there (no quote,
 * backslash, '$', space or control byte) and cover hex, base64 and base64url. */
static int check_syslog_secret(const char *s, char *why, size_t cap)
{
    for (const char *p = s; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("-_.~+/=", *p) != NULL)) {
            snprintf(why, cap,
                     "may hold only letters, digits and - _ . ~ + / = (it is literal text in nginx's "
                     "log_format)");
            return -1;
        }
    return 0;
}

static int parse_port(const char *s, size_t len)
{
    if (len == 0 || len > 5)
        return -1;
    int port = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        port = port * 10 + (s[i] - '0');
    }
    return port >= 1 && port <= 65535 ? port : -1;
}

/* The forms src/http/server.c binds: IPv4, [IPv6], localhost, * or empty host; port 1-65535. */
static int check_listen(const char *s, char *why, size_t cap)
{
    const char *colon = strrchr(s, ':');
    char host[64];
    size_t hl = colon != NULL ? (size_t)(colon - s) : 0;
    int ok = colon != NULL && parse_port(colon + 1, strlen(colon + 1)) > 0 && hl < sizeof(host);
    if (ok) {
        memcpy(host, s, hl);
        host[hl] = '\0';
        unsigned char addr[16];
        if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
            host[hl - 1] = '\0';
            ok = inet_pton(AF_INET6, host + 1, addr) == 1;
        } else {
            ok = hl == 0 || strcmp(host, "*") == 0 || strcmp(host, "localhost") == 0 ||
                 inet_pton(AF_INET, host, addr) == 1;
        }
    }
    if (ok)
        return 0;
    snprintf(why, cap, "is not host:port (host: an IPv4 address, [IPv6], localhost, * or nothing; port 1-65535)");
    return -1;
}

/* http(s)://host[:port][/prefix] - what the proxy can forward to. */
static int check_upstream_url(const char *s, char *why, size_t cap)
{
    int tls = strncmp(s, "https://", 8) == 0; /* verified against upstream.ca_file or the system's CAs */
    int ok = tls || strncmp(s, "http://", 7) == 0;
    const char *h = s + (tls ? 8 : 7), *end = ok ? h + strcspn(h, "/") : s;
    if (ok) {
        const char *port = NULL;
        if (*h == '[') {
            const char *rb = memchr(h, ']', (size_t)(end - h));
            char v6[64];
            unsigned char addr[16];
            size_t n = rb != NULL ? (size_t)(rb - h - 1) : 0;
            ok = rb != NULL && n > 0 && n < sizeof(v6);
            if (ok) {
                memcpy(v6, h + 1, n);
                v6[n] = '\0';
                ok = inet_pton(AF_INET6, v6, addr) == 1 && (rb + 1 == end || rb[1] == ':');
                port = rb + 1 < end ? rb + 2 : NULL;
            }
        } else {
            const char *colon = memchr(h, ':', (size_t)(end - h));
            const char *hend = colon != NULL ? colon : end;
            ok = hend > h;
            for (const char *p = h; ok && p < hend; p++)
                ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
                     *p == '-' || *p == '_';
            port = colon != NULL ? colon + 1 : NULL;
        }
        if (ok && port != NULL)
            ok = parse_port(port, (size_t)(end - port)) > 0;
        for (const char *p = end; ok && *p != '\0'; p++)
            ok = (unsigned char)*p > 0x20 && *p != 0x7f && *p != '?' && *p != '#';
    }
    if (ok)
        return 0;
    snprintf(why, cap, "is not an http(s)://host[:port][/prefix] URL");
    return -1;
}

static int check_database(const char *s, char *why, size_t cap)
{
    if (strncmp(s, "sqlite:", 7) == 0 && s[7] != '\0')
        return 0;
    if ((strncmp(s, "postgres://", 11) == 0 && s[11] != '\0') || (strncmp(s, "postgresql://", 13) == 0 && s[13] != '\0'))
        return 0; /* libpq parses the rest, at start, and names what it refuses */
    snprintf(why, cap, "must be sqlite:PATH (like sqlite:var/tollgate.db) or postgresql://USER@HOST:PORT/DB");
    return -1;
}

/* metering.log_dir: a directory path (made at start if missing). */
static int check_log_dir(const char *s, char *why, size_t cap)
{
    for (const char *p = s; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            snprintf(why, cap, "must not contain control characters");
            return -1;
        }
    return 0;
}

/* cluster.redis: only the shape; whether the server answers is known at start. */
static int check_redis_url(const char *s, char *why, size_t cap)
{
    tg_redis_url_t u;
    int rc = tg_redis_url_parse(s, &u, why, cap);
    sodium_memzero(&u, sizeof(u));
    return rc;
}

/* cluster.node_id: it names the node in Redis keys and in the metering batch ids. */
static int check_node_id(const char *s, char *why, size_t cap)
{
    for (const char *p = s; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_' || *p == '.')) {
            snprintf(why, cap, "may hold only letters, digits, '-', '_' and '.'");
            return -1;
        }
    return 0;
}

/* billing.close_cpus: a CPU list as Linux prints them (util/thread_affinity.h). */
static int check_cpu_list(const char *s, char *why, size_t cap)
{
    cpu_set_t set;
    return tg_cpu_list_parse(s, &set, why, cap);
}

/* stripe.secret_key: a secret or restricted key, never a publishable key or a webhook secret. The
 * message names prefixes only (fixed strings), never the value. */
static int check_stripe_key(const char *s, char *why, size_t cap)
{
    static const char *const ok[] = {"sk_test_", "sk_live_", "rk_test_", "rk_live_"};
    static const struct {
        const char *prefix, *what;
    } wrong[] = {{"pk_test_", "a publishable key"},
                 {"pk_live_", "a publishable key"},
                 {"whsec_", "a webhook signing secret (it goes in stripe.webhook_secret)"}};
    for (const char *p = s; *p != '\0'; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            snprintf(why, cap, "must not contain spaces or control characters");
            return -1;
        }
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strncmp(s, ok[i], strlen(ok[i])) == 0 && s[strlen(ok[i])] != '\0')
            return 0;
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++)
        if (strncmp(s, wrong[i].prefix, strlen(wrong[i].prefix)) == 0) {
            snprintf(why, cap,
                     "starts with %s: %s; expected a secret key (sk_test_..., sk_live_...) or a restricted key "
                     "(rk_test_..., rk_live_...)",
                     wrong[i].prefix, wrong[i].what);
            return -1;
        }
    snprintf(why, cap, "does not start with sk_test_, sk_live_, rk_test_ or rk_live_ (a Stripe secret or restricted key)");
    return -1;
}

static int is_loopback_host(const char *h, size_t n)
{
    if (n == 9 && strncmp(h, "localhost", 9) == 0)
        return 1;
    if (n == 5 && strncmp(h, "[::1]", 5) == 0)
        return 1;
    return n >= 4 && strncmp(h, "127.", 4) == 0;
}

/* A listen address (check_listen's forms) that only this machine can reach: 127.x.x.x, [::1],
 * localhost. An empty host or "*" is every interface. */
static int listen_is_loopback(const char *s)
{
    const char *colon = strrchr(s, ':');
    return colon != NULL && is_loopback_host(s, (size_t)(colon - s));
}

/* stripe.api_base: https://host[:port][/prefix], or http:// to a loopback host (a local fake): the
 * secret key travels in every request's Authorization header. No trailing '/', no query. */
static int check_api_base(const char *s, char *why, size_t cap)
{
    int https = strncmp(s, "https://", 8) == 0;
    char as_http[2100];
    if (!https && strncmp(s, "http://", 7) != 0) {
        snprintf(why, cap, "is not an https://host[:port] URL");
        return -1;
    }
    if (snprintf(as_http, sizeof(as_http), "http://%s", s + (https ? 8 : 7)) >= (int)sizeof(as_http) ||
        check_upstream_url(as_http, why, cap) != 0) {
        snprintf(why, cap, "is not an https://host[:port][/prefix] URL");
        return -1;
    }
    const char *h = as_http + 7;
    size_t hl = strcspn(h, "/");
    if (h[hl] != '\0' && h[strlen(h) - 1] == '/') {
        snprintf(why, cap, "must not end with \"/\" (paths like /v1/customers are appended to it)");
        return -1;
    }
    if (!https) {
        const char *colon = h[0] == '[' ? memchr(h, ']', hl) : memchr(h, ':', hl);
        size_t host_len = colon == NULL ? hl : (size_t)(colon - h) + (h[0] == '[');
        if (!is_loopback_host(h, host_len)) {
            snprintf(why, cap, "is http:// to a host that is not loopback; the secret key would travel in clear "
                               "(http:// is for a local test server only)");
            return -1;
        }
    }
    return 0;
}

/* portal.public_url: http(s)://host[:port], no path, no trailing '/'. */
static int check_public_url(const char *s, char *why, size_t cap)
{
    int https = strncmp(s, "https://", 8) == 0;
    char as_http[600];
    if ((https || strncmp(s, "http://", 7) == 0) &&
        snprintf(as_http, sizeof(as_http), "http://%s", s + (https ? 8 : 7)) < (int)sizeof(as_http) &&
        check_upstream_url(as_http, why, cap) == 0 && strchr(as_http + 7, '/') == NULL)
        return 0;
    snprintf(why, cap, "is not an http(s)://host[:port] URL without a path");
    return -1;
}

/* "90s", "30m", "1h", "7d"; "off" = 0. Seconds from 1 to 365 days. */
static int parse_duration(const char *s, int64_t *out)
{
    if (strcmp(s, "off") == 0) {
        *out = 0;
        return 0;
    }
    size_t n = strlen(s);
    if (n < 2 || n > 12)
        return -1;
    char num[16];
    memcpy(num, s, n - 1);
    num[n - 1] = '\0';
    uint64_t v;
    if (parse_whole(num, &v) != 0 || v == 0 || v > 365 * 86400)
        return -1;
    int64_t unit = s[n - 1] == 's' ? 1 : s[n - 1] == 'm' ? 60 : s[n - 1] == 'h' ? 3600 : s[n - 1] == 'd' ? 86400 : 0;
    if (unit == 0 || (int64_t)v * unit > 365 * 86400)
        return -1;
    *out = (int64_t)v * unit;
    return 0;
}

/* ---- directive tables ---- */

typedef struct directive directive_t;
typedef struct section section_t;

/* A setter converts one value and stores it in obj: 0, or -1 after reporting what is wrong. */
typedef int (*set_fn)(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path);

enum {
    REQUIRED = 1, /* absent -> "PATH is required" */
    SECRET = 2,   /* never echoed in a message; wiped when freed */
};

struct directive {
    const char *name;
    set_fn set;    /* the type */
    size_t offset; /* of the field in the section's struct (setters of a specific struct ignore it) */
    uint64_t min;  /* numbers: bounds; strings: length; lists: item count (max only) */
    uint64_t max;
    unsigned flags;
    check_fn check;   /* strings and list items: extra validation */
    const void *arg;  /* set_section: the section; set_choice: the names */
    const char *hint; /* completes "PATH is required" */
};

struct section {
    const directive_t *dirs;
    int extensions; /* keys starting with "x-" are skipped (to hold YAML anchors), as docker-compose does */
    /* Defaults that depend on other keys, and checks across keys. Bit i of `given` is set when
     * dirs[i] was written, of `valid` when its value was also accepted. n is the mapping (NULL
     * when the section was absent). */
    void (*finish)(diag_t *d, void *obj, const tg_ynode_t *n, int line, const char *path, uint64_t given,
                   uint64_t valid);
};

/* Offset of a field whose type must be T: a setter and its field cannot disagree silently. */
#define AT(T, st, m) _Generic(((st *)0)->m, T : offsetof(st, m))

#define FIELD(T, obj, dir) ((T *)(void *)((char *)(obj) + (dir)->offset))

static int apply_section(diag_t *d, const section_t *sec, const tg_ynode_t *n, int line, void *obj, const char *path);

static int set_section(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    return apply_section(d, dir->arg, v, v->line, obj, path);
}

static int set_str(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    char *s = scalar(d, v, path, "a string");
    if (s == NULL)
        return -1;
    size_t len = strlen(s);
    char q[96], why[256];
    if (len < dir->min) {
        if (len == 0)
            report(d, v->line, "%s must not be empty", path);
        else
            report(d, v->line, "%s is too short (%zu characters; at least %" PRIu64 ")", path, len, dir->min);
    } else if (dir->max != 0 && len > dir->max) {
        report(d, v->line, "%s is too long (%zu characters; at most %" PRIu64 ")", path, len, dir->max);
    } else if (dir->check != NULL && dir->check(s, why, sizeof(why)) != 0) {
        report(d, v->line, "%s: %s %s", path, (dir->flags & SECRET) ? "the value" : quote(s, q), why);
    } else {
        char **field = FIELD(char *, obj, dir);
        free_secret(*field);
        *field = s;
        return 0;
    }
    free_secret(s);
    return -1;
}

static int set_int(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    uint64_t u;
    if (whole_value(d, v, path, dir->min, dir->max, &u) != 0)
        return -1;
    *FIELD(int, obj, dir) = (int)u; /* every table bound of an int field is below INT_MAX */
    return 0;
}

static int set_size(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    uint64_t u;
    if (whole_value(d, v, path, dir->min, dir->max, &u) != 0)
        return -1;
    *FIELD(size_t, obj, dir) = (size_t)u;
    return 0;
}

static int set_u64(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    uint64_t u;
    if (whole_value(d, v, path, dir->min, dir->max, &u) != 0)
        return -1;
    *FIELD(uint64_t, obj, dir) = u;
    return 0;
}

static int set_bool(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    char *s = scalar(d, v, path, "true or false");
    if (s == NULL)
        return -1;
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    int b = -1;
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            b = 1;
        if (strcasecmp(s, no[i]) == 0)
            b = 0;
    }
    char q[96];
    if (b < 0)
        report(d, v->line, "%s: %s is not true or false", path, quote(s, q));
    else
        *FIELD(int, obj, dir) = b;
    free(s);
    return b < 0 ? -1 : 0;
}

/* Money is parsed from the scalar's text, never through a double: 0.1 stays exactly 0.1. */
static int set_money(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    char *s = scalar(d, v, path, "an amount");
    if (s == NULL)
        return -1;
    tg_err_t err = {0};
    tg_money_t m = 0;
    char q[96];
    int rc = -1;
    if (tg_money_parse(s, strlen(s), &m, &err) != 0)
        report(d, v->line, "%s: %s", path, err.msg);
    else if (m < 0)
        report(d, v->line, "%s: %s must not be negative", path, quote(s, q));
    else {
        *FIELD(tg_money_t, obj, dir) = m;
        rc = 0;
    }
    free(s);
    return rc;
}

static int set_rate(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    char *s = scalar(d, v, path, "a rate like 100/min");
    if (s == NULL)
        return -1;
    char q[96];
    int rc = parse_rate(s, FIELD(tg_rate_t, obj, dir));
    if (rc != 0)
        report(d, v->line, "%s: %s is not N/sec|min|hour|day (N from 1 to %" PRIu64 ")", path, quote(s, q),
               MAX_RATE_COUNT);
    free(s);
    return rc;
}

/* One of dir->arg's names (NULL-terminated); returns its index or -1 after reporting. */
static int choose(diag_t *d, const directive_t *dir, const tg_ynode_t *v, const char *path)
{
    const char *const *names = dir->arg;
    char *s = scalar(d, v, path, "a word");
    if (s == NULL)
        return -1;
    int found = -1, n = 0;
    for (; names[n] != NULL; n++)
        if (strcmp(s, names[n]) == 0)
            found = n;
    if (found < 0) {
        char list[160] = "", q[96];
        size_t used = 0;
        for (int i = 0; i < n; i++) {
            int w = snprintf(list + used, sizeof(list) - used, "%s%s",
                             i == 0       ? ""
                             : i == n - 1 ? " or "
                                          : ", ",
                             names[i]);
            if (w < 0 || (size_t)w >= sizeof(list) - used)
                break;
            used += (size_t)w;
        }
        report(d, v->line, "%s: %s is not %s", path, quote(s, q), list);
    }
    free(s);
    return found;
}

/* int field = index of the name: durability {batched, strict, process} -> durability, round {down, up} -> round_up. */
static int set_choice(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    int i = choose(d, dir, v, path);
    if (i >= 0)
        *FIELD(int, obj, dir) = i;
    return i >= 0 ? 0 : -1;
}

static int set_interval(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    int i = choose(d, dir, v, path);
    if (i >= 0)
        *FIELD(tg_interval_t, obj, dir) = i == 1 ? TG_INTERVAL_YEAR : TG_INTERVAL_MONTH;
    return i >= 0 ? 0 : -1;
}

static int set_model(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    static const tg_price_model_t models[] = {TG_MODEL_PER_UNIT, TG_MODEL_GRADUATED, TG_MODEL_VOLUME, TG_MODEL_PACKAGE};
    int i = choose(d, dir, v, path);
    if (i >= 0)
        *FIELD(tg_price_model_t, obj, dir) = models[i];
    return i >= 0 ? 0 : -1;
}

/* A list: reports and returns -1 unless v is a sequence of at most dir->max items. */
static int list_of(diag_t *d, const directive_t *dir, const tg_ynode_t *v, const char *path, const char *what)
{
    if (v->type != TG_YNODE_SEQ) {
        report(d, v->line, "%s: expected a list of %s, got %s", path, what, kind_of(v));
        return -1;
    }
    if (v->n > dir->max) {
        report(d, v->line, "%s: at most %" PRIu64 " %s (found %zu)", path, dir->max, what, v->n);
        return -1;
    }
    return 0;
}

/* A key whose value must differ between the items of a list of sections: the item's string at
 * `offset` (a char *), named `key` in the error's path and `noun` in its sentence. */
typedef struct {
    const char *key;
    size_t offset;
    const char *noun;
} list_key_t;

/* A list of mappings, each item read by one section into an array of structs (webhook
 * endpoints, ingest tokens): the arg of a set_section_list directive, whose offset is that of
 * the array's pointer. */
typedef struct {
    const section_t *item;
    size_t item_size;
    size_t line_offset;       /* of the item's int line, kept for checks made after the list */
    size_t count_offset;      /* of the size_t count beside the array */
    const char *what;         /* the list's noun: "expected a list of WHAT" */
    const char *shape;        /* an item's keys: "expected a mapping SHAPE" */
    const list_key_t *unique; /* ended by a NULL key */
} section_list_t;

/* The items of `v` read into a new array of v->n structs (plus a zeroed one), which the caller
 * owns and frees as the list's owner does (each item's strings, then the array). A problem in
 * an item is reported at its FILE:LINE and the next item is read, so every problem is listed;
 * an item that is not a mapping stays zeroed but for its line. A unique key equal to an earlier
 * item's is reported at the later item, naming the earlier one (never echoing the value: it may
 * be a secret). NULL, after reporting, when `v` is not a list, is too long, or memory ran out. */
static void *apply_section_list(diag_t *d, const directive_t *dir, const tg_ynode_t *v, const char *path,
                                const section_list_t *spec)
{
    if (list_of(d, dir, v, path, spec->what) != 0)
        return NULL;
    char *list = calloc(v->n + 1, spec->item_size);
    if (list == NULL) {
        report(d, v->line, "%s: out of memory", path);
        return NULL;
    }
    for (size_t i = 0; i < v->n; i++) {
        char sub[MAX_PATH];
        index_path(sub, path, i);
        const tg_ynode_t *item = v->items[i];
        char *obj = list + i * spec->item_size;
        *(int *)(void *)(obj + spec->line_offset) = item->line;
        if (item->type != TG_YNODE_MAP) {
            report(d, item->line, "%s: expected a mapping %s, got %s", sub, spec->shape, kind_of(item));
            continue;
        }
        apply_section(d, spec->item, item, item->line, obj, sub);
        for (size_t j = 0; j < i; j++)
            for (const list_key_t *u = spec->unique; u->key != NULL; u++) {
                const char *mine = *(char **)(void *)(obj + u->offset);
                const char *theirs = *(char **)(void *)(list + j * spec->item_size + u->offset);
                if (mine != NULL && theirs != NULL && strcmp(mine, theirs) == 0)
                    report(d, item->line, "%s.%s: the same %s as %s[%zu]", sub, u->key, u->noun, path, j);
            }
    }
    return list;
}

/* A list of sections (dir->arg, a section_list_t) stored as its array and count. */
static int set_section_list(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    const section_list_t *spec = dir->arg;
    void *list = apply_section_list(d, dir, v, path, spec);
    if (list == NULL)
        return -1;
    /* the field is a pointer to the item's type: copied as bytes, not written through a void ** */
    memcpy((char *)obj + dir->offset, &list, sizeof(list));
    *(size_t *)(void *)((char *)obj + spec->count_offset) = v->n;
    return 0;
}

/* A list of strings, each checked with dir->check; NULL (count 0) if nothing valid. */
static char **string_list(diag_t *d, const directive_t *dir, const tg_ynode_t *v, const char *path, size_t *count)
{
    *count = 0;
    if (list_of(d, dir, v, path, "strings") != 0)
        return NULL;
    char **list = calloc(v->n + 1, sizeof(*list));
    if (list == NULL) {
        report(d, v->line, "%s: out of memory", path);
        return NULL;
    }
    for (size_t i = 0; i < v->n; i++) {
        char sub[MAX_PATH], why[160], q[96];
        index_path(sub, path, i);
        char *s = scalar(d, v->items[i], sub, "a string");
        if (s == NULL)
            continue;
        if (s[0] == '\0')
            report(d, v->items[i]->line, "%s must not be empty", sub);
        else if (strlen(s) > 1024)
            report(d, v->items[i]->line, "%s is too long (at most 1024 characters)", sub);
        else if (dir->check != NULL && dir->check(s, why, sizeof(why)) != 0)
            report(d, v->items[i]->line, "%s: %s %s", sub, quote(s, q), why);
        else {
            list[(*count)++] = s;
            continue;
        }
        free(s);
    }
    return list;
}

static void free_list(char **l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(l[i]);
    free(l);
}

/* metric -> whole number, for included and meter. Fills parallel arrays; returns the count. */
static size_t metric_map(diag_t *d, const directive_t *dir, const tg_ynode_t *v, const char *path, char **names,
                         uint64_t *values, size_t cap, uint64_t max_value)
{
    size_t n = 0;
    for (size_t i = 0; i + 1 < v->n && n < cap; i += 2) {
        const tg_ynode_t *k = v->items[i];
        char sub[MAX_PATH], why[160], q[96];
        if (k->type != TG_YNODE_SCALAR) {
            report(d, k->line, "%s: a metric name must be a single word, not %s", path, kind_of(k));
            continue;
        }
        join_path(sub, path, k->text);
        if (dir->check(k->text, why, sizeof(why)) != 0) {
            report(d, k->line, "%s: %s %s", path, quote(k->text, q), why);
            continue;
        }
        int dup = 0;
        for (size_t j = 0; j < n; j++)
            dup |= strcmp(names[j], k->text) == 0;
        if (dup) {
            report(d, k->line, "%s: metric %s is listed twice", path, quote(k->text, q));
            continue;
        }
        uint64_t amount;
        if (whole_value(d, v->items[i + 1], sub, 0, max_value, &amount) != 0)
            continue;
        if ((names[n] = strdup(k->text)) == NULL) {
            report(d, k->line, "%s: out of memory", sub);
            continue;
        }
        values[n++] = amount;
    }
    return n;
}

static int metric_map_ok(diag_t *d, const tg_ynode_t *v, const char *path, size_t cap)
{
    if (v->type != TG_YNODE_MAP) {
        report(d, v->line, "%s: expected a mapping of metric: number, got %s", path, kind_of(v));
        return -1;
    }
    if (v->n / 2 > cap) {
        report(d, v->line, "%s: at most %zu metrics (found %zu)", path, cap, v->n / 2);
        return -1;
    }
    return 0;
}

/* ---- sections: server, upstream, storage, admin, keys, metering ---- */

static const char *const durability_names[] = {"batched", "strict", "process", NULL};

static int set_status_classes(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    if (list_of(d, dir, v, path, "status classes") != 0)
        return -1;
    unsigned mask = 0;
    int ok = 1;
    for (size_t i = 0; i < v->n; i++) {
        char sub[MAX_PATH], q[96];
        index_path(sub, path, i);
        char *s = scalar(d, v->items[i], sub, "a status class like \"2xx\"");
        if (s == NULL) {
            ok = 0;
            continue;
        }
        if (strlen(s) == 3 && s[0] >= '1' && s[0] <= '5' && (s[1] == 'x' || s[1] == 'X') &&
            (s[2] == 'x' || s[2] == 'X'))
            mask |= 1u << (s[0] - '0');
        else {
            report(d, v->items[i]->line, "%s: %s is not a status class (1xx to 5xx)", sub, quote(s, q));
            ok = 0;
        }
        free(s);
    }
    if (ok)
        *FIELD(unsigned, obj, dir) = mask;
    return ok ? 0 : -1;
}

/* server.trusted_proxies: a list of CIDRs ("10.0.0.0/8", "::1", ...). */
static int set_cidrs(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    tg_config_t *cfg = obj;
    if (list_of(d, dir, v, path, "address ranges") != 0)
        return -1;
    tg_cidr_t *list = calloc(v->n + 1, sizeof(*list));
    if (list == NULL) {
        report(d, v->line, "%s: out of memory", path);
        return -1;
    }
    size_t n = 0;
    int ok = 1;
    for (size_t i = 0; i < v->n; i++) {
        char sub[MAX_PATH], q[96];
        index_path(sub, path, i);
        char *s = scalar(d, v->items[i], sub, "an address range like 10.0.0.0/8");
        if (s == NULL) {
            ok = 0;
            continue;
        }
        if (tg_cidr_parse(s, &list[n]) == 0)
            n++;
        else {
            report(d, v->items[i]->line,
                   "%s: %s is not an IPv4 or IPv6 address or range (like 10.0.0.0/8 or fd00::/8, host bits zero)",
                   sub, quote(s, q));
            ok = 0;
        }
        free(s);
    }
    free(cfg->server.trusted_proxies);
    cfg->server.trusted_proxies = list;
    cfg->server.ntrusted_proxies = n;
    return ok ? 0 : -1;
}

static int set_signup_plans(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    tg_config_t *cfg = obj;
    free_list(cfg->portal.signup.plans, cfg->portal.signup.nplans);
    cfg->portal.signup.plans = string_list(d, dir, v, path, &cfg->portal.signup.nplans);
    return cfg->portal.signup.plans != NULL ? 0 : -1;
}


/* notifications.usage_thresholds, plans.<p>.notify_thresholds: a list of percentages of an
 * included allowance, each 1 to 1000, strictly increasing (each fires once per period). */
static int set_thresholds(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    if (list_of(d, dir, v, path, "percentages") != 0)
        return -1;
    tg_thresholds_cfg_t t = {{0}, 0, 1};
    int ok = 1;
    for (size_t i = 0; i < v->n; i++) {
        char sub[MAX_PATH];
        index_path(sub, path, i);
        uint64_t u;
        if (whole_value(d, v->items[i], sub, 1, 1000, &u) != 0) {
            ok = 0;
            continue;
        }
        if (t.n > 0 && u <= t.pct[t.n - 1]) {
            report(d, v->items[i]->line, "%s: %" PRIu64 " is not above the threshold before it (%u); list them in increasing order",
                   sub, u, (unsigned)t.pct[t.n - 1]);
            ok = 0;
            continue;
        }
        t.pct[t.n++] = (uint16_t)u;
    }
    if (!ok)
        return -1;
    *FIELD(tg_thresholds_cfg_t, obj, dir) = t;
    return 0;
}

/* ---- display: metric names and units, portal branding (issue 15) ----
 * Only what people read: none of it changes what is metered, priced or billed. */

#define MAX_DISPLAY_METRICS 64

static int is_addr_spec(const char *s, size_t n);

/* portal.primary_color: "#rrggbb" (it becomes a CSS custom property as is). */
static int check_color(const char *s, char *why, size_t cap)
{
    int ok = strlen(s) == 7 && s[0] == '#';
    for (size_t i = 1; ok && i < 7; i++)
        ok = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F');
    if (!ok)
        snprintf(why, cap, "is not a color like \"#2457d6\" (#rrggbb)");
    return ok ? 0 : -1;
}

/* portal.terms_url, portal.privacy_url, an absolute portal.logo: http(s)://host[:port][/path].
 * The host is letters, digits, '.' and '-' (or a bracketed IPv6 address): the logo's origin goes
 * into the Content-Security-Policy header as is. The path is printable ASCII without spaces,
 * quotes, angle brackets or backslashes (it goes into an HTML attribute and a link). */
static int check_web_url(const char *s, char *why, size_t cap)
{
    const char *h = strncmp(s, "https://", 8) == 0 ? s + 8 : strncmp(s, "http://", 7) == 0 ? s + 7 : NULL;
    if (h == NULL) {
        snprintf(why, cap, "is not an http:// or https:// URL");
        return -1;
    }
    size_t hl = strcspn(h, "/?#");
    size_t port_at = hl;
    int ok = hl > 0;
    if (ok && h[0] == '[') {
        const char *rb = memchr(h, ']', hl);
        ok = rb != NULL && rb > h + 1;
        for (const char *p = h + 1; ok && p < rb; p++)
            ok = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F') || *p == ':' ||
                 *p == '.';
        port_at = ok ? (size_t)(rb - h) + 1 : hl;
    } else {
        const char *colon = memchr(h, ':', hl);
        port_at = colon != NULL ? (size_t)(colon - h) : hl;
        for (size_t i = 0; ok && i < port_at; i++)
            ok = (h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' && h[i] <= 'Z') || (h[i] >= '0' && h[i] <= '9') ||
                 h[i] == '.' || h[i] == '-';
        ok = ok && port_at > 0;
    }
    if (ok && port_at < hl)
        ok = h[port_at] == ':' && parse_port(h + port_at + 1, hl - port_at - 1) > 0;
    if (!ok) {
        snprintf(why, cap, "has no valid host[:port] after the scheme");
        return -1;
    }
    for (const char *p = h + hl; *p != '\0'; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || strchr("\"'<>\\`", *p) != NULL) {
            snprintf(why, cap, "must not contain spaces, quotes, angle brackets, backslashes or non-ASCII characters "
                               "(percent-encode them)");
            return -1;
        }
    return 0;
}

/* portal.logo: an http(s) URL, or a path on the portal's own origin ("/static/logo.svg"). */
static int check_logo(const char *s, char *why, size_t cap)
{
    if (s[0] != '/') {
        const char *h = strstr(s, "://");
        if (h != NULL && h[3] == '[') { /* CSP host-sources have no IPv6 literals: the logo would be blocked */
            snprintf(why, cap, "names an IPv6 address, which a Content-Security-Policy cannot allow; use a host name");
            return -1;
        }
        return check_web_url(s, why, cap);
    }
    if (s[1] == '/') {
        snprintf(why, cap, "is a scheme-relative URL; write https://HOST/... or a path starting with one '/'");
        return -1;
    }
    for (const char *p = s; *p != '\0'; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || strchr("\"'<>\\`", *p) != NULL) {
            snprintf(why, cap, "must not contain spaces, quotes, angle brackets, backslashes or non-ASCII characters");
            return -1;
        }
    return 0;
}

static int check_support_email(const char *s, char *why, size_t cap)
{
    if (is_addr_spec(s, strlen(s)))
        return 0;
    snprintf(why, cap, "is not an address like support@example.com");
    return -1;
}

static const directive_t metric_display_dirs[] = {
    {"name", set_str, AT(char *, tg_metric_display_t, name), 1, 100, 0, check_text, NULL, NULL},
    {"unit", set_str, AT(char *, tg_metric_display_t, unit), 1, 40, 0, check_text, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};
static const section_t metric_display_sec = {metric_display_dirs, 0, NULL};

/* metering.metrics: metric id -> {name, unit}. */
static int set_metric_display(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    (void)dir;
    tg_config_t *cfg = obj;
    if (v->type != TG_YNODE_MAP) {
        report(d, v->line, "%s: expected a mapping of metric: {name, unit}, got %s", path, kind_of(v));
        return -1;
    }
    if (v->n / 2 > MAX_DISPLAY_METRICS) {
        report(d, v->line, "%s: at most %d metrics (found %zu)", path, MAX_DISPLAY_METRICS, v->n / 2);
        return -1;
    }
    tg_metric_display_t *list = calloc(v->n / 2 + 1, sizeof(*list));
    if (list == NULL) {
        report(d, v->line, "%s: out of memory", path);
        return -1;
    }
    size_t n = 0;
    int ok = 1;
    for (size_t i = 0; i + 1 < v->n; i += 2) {
        const tg_ynode_t *k = v->items[i], *mv = v->items[i + 1];
        char sub[MAX_PATH], why[160], q[96];
        if (k->type != TG_YNODE_SCALAR) {
            report(d, k->line, "%s: a metric name must be a single word, not %s", path, kind_of(k));
            ok = 0;
            continue;
        }
        if (check_metric(k->text, why, sizeof(why)) != 0) {
            report(d, k->line, "%s: %s %s", path, quote(k->text, q), why);
            ok = 0;
            continue;
        }
        int dup = 0;
        for (size_t j = 0; j < n; j++)
            dup |= strcmp(list[j].metric, k->text) == 0;
        if (dup) {
            report(d, k->line, "%s: metric %s is listed twice", path, quote(k->text, q));
            ok = 0;
            continue;
        }
        tg_metric_display_t *m = &list[n];
        if ((m->metric = strdup(k->text)) == NULL) {
            report(d, k->line, "%s: out of memory", path);
            ok = 0;
            continue;
        }
        m->line = k->line;
        n++;
        join_path(sub, path, m->metric);
        apply_section(d, &metric_display_sec, tg_ynode_is_null(mv) ? NULL : mv, k->line, m, sub);
    }
    cfg->metering.metrics = list;
    cfg->metering.nmetrics = n;
    return ok ? 0 : -1;
}

static int metric_known(const tg_config_t *cfg, const char *metric)
{
    if (strcmp(metric, "api_calls") == 0) /* every route meters it unless told otherwise */
        return 1;
    for (size_t i = 0; i < cfg->nplans; i++) {
        const tg_plan_t *p = &cfg->plans[i];
        for (size_t j = 0; j < p->nincluded; j++)
            if (strcmp(p->included[j].metric, metric) == 0)
                return 1;
        for (size_t j = 0; j < p->ncharges; j++)
            if (p->charges[j].metric != NULL && strcmp(p->charges[j].metric, metric) == 0)
                return 1;
    }
    for (size_t i = 0; i < cfg->nroutes; i++)
        for (size_t j = 0; j < cfg->routes[i].nmeter; j++)
            if (strcmp(cfg->routes[i].meter[j].metric, metric) == 0)
                return 1;
    return 0;
}

int tg_config_metric_defined(const tg_config_t *cfg, const char *metric)
{
    if (metric_known(cfg, metric))
        return 1;
    for (size_t i = 0; i < cfg->metering.nmetrics; i++)
        if (strcmp(cfg->metering.metrics[i].metric, metric) == 0)
            return 1;
    return 0;
}

/* A name for a metric nothing meters or prices is a typo more often than not. */
static void finish_display(diag_t *d, const tg_config_t *cfg)
{
    for (size_t i = 0; i < cfg->metering.nmetrics; i++)
        if (!metric_known(cfg, cfg->metering.metrics[i].metric))
            report(d, cfg->metering.metrics[i].line,
                   "metering.metrics.%s: no route meters it and no plan includes or prices it (a typo?)",
                   cfg->metering.metrics[i].metric);
}

static void free_display(tg_config_t *cfg)
{
    for (size_t i = 0; i < cfg->metering.nmetrics; i++) {
        free(cfg->metering.metrics[i].metric);
        free(cfg->metering.metrics[i].name);
        free(cfg->metering.metrics[i].unit);
    }
    free(cfg->metering.metrics);
    free(cfg->portal.title);
    free(cfg->portal.logo);
    free(cfg->portal.primary_color);
    free(cfg->portal.support_email);
    free(cfg->portal.terms_url);
    free(cfg->portal.privacy_url);
    free(cfg->portal.highlight);
}

static const char *const repeat_trial_names[] = {"skip", "refuse", NULL};

static const directive_t server_dirs[] = {
    {"listen", set_str, AT(char *, tg_config_t, server.listen), 1, 255, 0, check_listen, NULL, NULL},
    {"admin_listen", set_str, AT(char *, tg_config_t, server.admin_listen), 1, 255, 0, check_listen, NULL, NULL},
    {"workers", set_int, AT(int, tg_config_t, server.workers), 1, 64, 0, NULL, NULL, NULL},
    {"max_header_bytes", set_size, AT(size_t, tg_config_t, server.max_header_bytes), 1024, 1048576, 0, NULL, NULL,
     NULL},
    {"max_body_bytes", set_size, AT(size_t, tg_config_t, server.max_body_bytes), 0, UINT64_C(1) << 40, 0, NULL, NULL,
     NULL},
    {"trusted_proxies", set_cidrs, 0, 0, 256, 0, NULL, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};

static const directive_t signup_dirs[] = {
    {"enabled", set_bool, AT(int, tg_config_t, portal.signup.enabled), 0, 0, 0, NULL, NULL, NULL},
    {"plans", set_signup_plans, 0, 0, 256, 0, NULL, NULL, NULL},
    {"per_address", set_rate, AT(tg_rate_t, tg_config_t, portal.signup.per_address), 0, 0, 0, NULL, NULL, NULL},
    {"global", set_rate, AT(tg_rate_t, tg_config_t, portal.signup.global), 0, 0, 0, NULL, NULL, NULL},
    {"trial_address_days", set_int, AT(int, tg_config_t, portal.signup.trial_address_days), 0, 3650, 0, NULL, NULL,
     NULL},
    {"repeat_trial", set_choice, AT(int, tg_config_t, portal.signup.repeat_trial_refuse), 0, 0, 0, NULL,
     repeat_trial_names, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};
static const section_t signup_sec = {signup_dirs, 0, NULL};

/* portal.openapi: a file name, kept with its line; the document is read once the paths are
 * resolved (load_portal_openapi). */
static int set_portal_openapi(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    tg_config_t *cfg = obj;
    if (set_str(d, dir, v, obj, path) != 0)
        return -1;
    cfg->portal.openapi_line = v->line;
    return 0;
}

/* portal.highlight: a plan id, kept with its line: the plans may be declared after the portal
 * section, so the id is checked once every plan is known (check_cross). */
static int set_portal_highlight(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    tg_config_t *cfg = obj;
    if (set_str(d, dir, v, obj, path) != 0)
        return -1;
    cfg->portal.highlight_line = v->line;
    return 0;
}

static const directive_t portal_dirs[] = {{"signup", set_section, 0, 0, 0, 0, NULL, &signup_sec, NULL},
                                          {"openapi", set_portal_openapi, AT(char *, tg_config_t, portal.openapi), 1,
                                           1024, 0, NULL, NULL, NULL},
                                          {"public_url", set_str, AT(char *, tg_config_t, portal.public_url), 1, 512, 0,
                                           check_public_url, NULL, NULL},
                                          /* branding (issue 15) */
                                          {"title", set_str, AT(char *, tg_config_t, portal.title), 1, 100, 0,
                                           check_text, NULL, NULL},
                                          {"logo", set_str, AT(char *, tg_config_t, portal.logo), 1, 2048, 0,
                                           check_logo, NULL, NULL},
                                          {"primary_color", set_str, AT(char *, tg_config_t, portal.primary_color), 1,
                                           100, 0, check_color, NULL, NULL},
                                          {"support_email", set_str, AT(char *, tg_config_t, portal.support_email), 3,
                                           254, 0, check_support_email, NULL, NULL},
                                          {"terms_url", set_str, AT(char *, tg_config_t, portal.terms_url), 1, 2048, 0,
                                           check_web_url, NULL, NULL},
                                          {"privacy_url", set_str, AT(char *, tg_config_t, portal.privacy_url), 1, 2048,
                                           0, check_web_url, NULL, NULL},
                                          {"highlight", set_portal_highlight, AT(char *, tg_config_t, portal.highlight),
                                           1, TG_PLAN_ID_MAX - 1, 0, check_text, NULL, NULL},
                                          {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};

static const directive_t metrics_dirs[] = {
    {"token", set_str, AT(char *, tg_config_t, metrics.token), 16, 1024, SECRET, check_text, NULL, NULL},
    {"open", set_bool, AT(int, tg_config_t, metrics.open), 0, 0, 0, NULL, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};

static const directive_t upstream_dirs[] = {
    {"url", set_str, AT(char *, tg_config_t, upstream.url), 1, 2048, REQUIRED, check_upstream_url, NULL,
     " (the API being sold, like http://127.0.0.1:9000)"},
    {"timeout_ms", set_int, AT(int, tg_config_t, upstream.timeout_ms), 1, 600000, 0, NULL, NULL, NULL},
    {"keepalive_ms", set_int, AT(int, tg_config_t, upstream.keepalive_ms), 0, 600000, 0, NULL, NULL, NULL},
    {"ca_file", set_str, AT(char *, tg_config_t, upstream.ca_file), 1, 4096, 0, NULL, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};

/* ---- listeners and public_urls (TLS: src/http/tls.c reads the files at start) ---- */

static void finish_listener(diag_t *d, tg_listener_conf_t *l, int line, const char *path, uint64_t given)
{
    l->line = line;
    if (given != 0 && l->address == NULL)
        report(d, line, "%s.address is required (host:port)", path);
}

static void finish_tls(diag_t *d, tg_listener_conf_t *l, int line, const char *path)
{
    l->tls_line = line;
    if ((l->certificate == NULL) != (l->key == NULL))
        report(d, line, "%s: certificate and key go together (a PEM chain and its private key)", path);
}

#define LISTENER_TABLES(K, name)                                                                                        \
    static void finish_tls_##name(diag_t *d, void *obj, const tg_ynode_t *n, int line, const char *path,              \
                                  uint64_t given, uint64_t valid)                                                       \
    {                                                                                                                   \
        (void)given, (void)valid;                                                                                       \
        if (n != NULL)                                                                                                  \
            finish_tls(d, &((tg_config_t *)obj)->listeners[K], line, path);                                             \
    }                                                                                                                   \
    static const directive_t tls_dirs_##name[] = {                                                                      \
        {"certificate", set_str, AT(char *, tg_config_t, listeners[K].certificate), 1, 4096, 0, NULL, NULL, NULL},   \
        {"key", set_str, AT(char *, tg_config_t, listeners[K].key), 1, 4096, 0, NULL, NULL, NULL},                   \
        {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};                                                                    \
    static const section_t tls_sec_##name = {tls_dirs_##name, 0, finish_tls_##name};                                    \
    static void finish_listener_##name(diag_t *d, void *obj, const tg_ynode_t *n, int line, const char *path,         \
                                       uint64_t given, uint64_t valid)                                                  \
    {                                                                                                                   \
        (void)valid;                                                                                                    \
        if (n != NULL)                                                                                                  \
            finish_listener(d, &((tg_config_t *)obj)->listeners[K], line, path, given | 1);                             \
    }                                                                                                                   \
    static const directive_t listener_dirs_##name[] = {                                                                 \
        {"address", set_str, AT(char *, tg_config_t, listeners[K].address), 1, 255, 0, check_listen, NULL, NULL},    \
        {"tls", set_section, 0, 0, 0, 0, NULL, &tls_sec_##name, NULL},                                                  \
        {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};                                                                    \
    static const section_t listener_sec_##name = {listener_dirs_##name, 0, finish_listener_##name};

LISTENER_TABLES(TG_LISTENER_GATEWAY, gateway)
LISTENER_TABLES(TG_LISTENER_PORTAL, portal)
LISTENER_TABLES(TG_LISTENER_ADMIN, admin)
LISTENER_TABLES(TG_LISTENER_METRICS, metrics)

static const directive_t listeners_dirs[] = {
    {"gateway", set_section, 0, 0, 0, 0, NULL, &listener_sec_gateway, NULL},
    {"portal", set_section, 0, 0, 0, 0, NULL, &listener_sec_portal, NULL},
    {"admin", set_section, 0, 0, 0, 0, NULL, &listener_sec_admin, NULL},
    {"metrics", set_section, 0, 0, 0, 0, NULL, &listener_sec_metrics, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};

static void finish_listeners(diag_t *d, void *obj, const tg_ynode_t *n, int line, const char *path, uint64_t given,
                             uint64_t valid)
{
    (void)valid;
    if (n == NULL)
        return;
    ((tg_config_t *)obj)->listeners_given = 1;
    if (given == 0)
        report(d, line, "%s: needs at least one of gateway, portal, admin, metrics", path);
}
static const section_t listeners_sec = {listeners_dirs, 0, finish_listeners};

static int check_public_url(const char *s, char *why, size_t cap);
static const directive_t public_urls_dirs[] = {
    {"gateway", set_str, AT(char *, tg_config_t, public_urls.gateway), 1, 512, 0, check_public_url, NULL, NULL},
    {"portal", set_str, AT(char *, tg_config_t, public_urls.portal), 1, 512, 0, check_public_url, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};
static const section_t public_urls_sec = {public_urls_dirs, 0, NULL};

static const directive_t storage_dirs[] = {
    {"database", set_str, AT(char *, tg_config_t, storage.database), 1, 4096, 0, check_database, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};

static const directive_t admin_dirs[] = {
    {"token", set_str, AT(char *, tg_config_t, admin.token), 16, 1024, REQUIRED | SECRET, check_text, NULL,
     " (at least 16 characters; use \"${TOLLGATE_ADMIN_TOKEN}\")"},
    {"key_grace_seconds", set_int, AT(int, tg_config_t, admin.key_grace_seconds), 0, 31536000, 0, NULL, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};

static const directive_t keys_dirs[] = {
    {"secret", set_str, AT(char *, tg_config_t, keys.secret), 32, 1024, REQUIRED | SECRET, NULL, NULL,
     " (32+ characters; it keys the stored API key hashes; use \"${TOLLGATE_KEY_SECRET}\")"},
    {"max_active_per_customer", set_u64, AT(uint64_t, tg_config_t, keys.max_active_per_customer), 1, 100000, 0, NULL,
     NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};

static const directive_t metering_dirs[] = {
    {"durability", set_choice, AT(int, tg_config_t, metering.durability), 0, 0, 0, NULL, durability_names, NULL},
    {"flush_ms", set_int, AT(int, tg_config_t, metering.flush_ms), 1, 10000, 0, NULL, NULL, NULL},
    {"sync_ms", set_int, AT(int, tg_config_t, metering.sync_ms), 1, 60000, 0, NULL, NULL, NULL},
    {"billable_status", set_status_classes, AT(unsigned, tg_config_t, metering.billable_classes), 0, 5, 0, NULL, NULL,
     NULL},
    {"bill_429", set_bool, AT(int, tg_config_t, metering.bill_429), 0, 0, 0, NULL, NULL, NULL},
    {"max_units_per_call", set_u64, AT(uint64_t, tg_config_t, metering.max_units_per_call), 1, MAX_QUANTITY, 0, NULL,
     NULL, NULL},
    {"log_dir", set_str, AT(char *, tg_config_t, metering.log_dir), 1, 1024, 0, check_log_dir, NULL, NULL},
    {"metrics", set_metric_display, 0, 0, MAX_DISPLAY_METRICS, 0, NULL, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};

static const directive_t cluster_dirs[] = {
    {"redis", set_str, AT(char *, tg_config_t, cluster.redis), 9, 1024, SECRET, check_redis_url, NULL, NULL},
    {"node_id", set_str, AT(char *, tg_config_t, cluster.node_id), 1, TG_NODE_ID_MAX - 1, 0, check_node_id, NULL, NULL},
    {"sync_ms", set_int, AT(int, tg_config_t, cluster.sync_ms), 1, 1000, 0, NULL, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};

static const section_t server_sec = {server_dirs, 0, NULL};
static const section_t cluster_sec = {cluster_dirs, 0, NULL};
static const section_t upstream_sec = {upstream_dirs, 0, NULL};
static const section_t storage_sec = {storage_dirs, 0, NULL};
static const section_t admin_sec = {admin_dirs, 0, NULL};
static const section_t keys_sec = {keys_dirs, 0, NULL};
static const section_t metering_sec = {metering_dirs, 0, NULL};
static const section_t portal_sec = {portal_dirs, 0, NULL};
static const section_t metrics_sec = {metrics_dirs, 0, NULL};

/* ---- access_log (log/access_log.h) ---- */

/* A share from 0 to 1 ("0.25", "1", "0"), kept as parts per million: 1e-6 is as fine as a
 * sampling rate needs, and the request path then compares integers. */
static int set_share(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    char *s = scalar(d, v, path, "a number from 0 to 1");
    if (s == NULL)
        return -1;
    char *end = NULL;
    errno = 0;
    double x = (*s >= '0' && *s <= '9') || *s == '.' ? strtod(s, &end) : -1;
    int ok = errno == 0 && end != NULL && *end == '\0' && x >= 0 && x <= 1;
    if (!ok) {
        char q[96];
        report(d, v->line, "%s: %s is not a number from 0 to 1", path, quote(s, q));
        free(s);
        return -1;
    }
    free(s);
    *FIELD(uint32_t, obj, dir) = (uint32_t)(x * 1000000.0 + 0.5);
    return 0;
}

static const directive_t access_log_dirs[] = {
    {"path", set_str, AT(char *, tg_config_t, access_log.path), 1, 1024, 0, check_text, NULL, NULL},
    {"sample_success", set_share, AT(uint32_t, tg_config_t, access_log.sample_ppm), 0, 0, 0, NULL, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};


/* The section is optional, its path is not: an access_log without one is a mistake to name. */
static void finish_access_log(diag_t *d, void *obj, const tg_ynode_t *n, int line, const char *path, uint64_t given_,
                              uint64_t valid)
{
    (void)obj, (void)valid;
    if (n != NULL && !(given_ & 1))
        report(d, line, "%s.path is required (a file, or \"-\" for standard output)", path);
}
static const section_t access_log_sec = {access_log_dirs, 0, finish_access_log};

/* ---- decide (gateway/reservations.h, http/decide_http.c): the decision API ---- */

static const char *const on_timeout_names[] = {"bill", "release", NULL}; /* tg_reservation_timeout_rule_t */

static const directive_t decide_dirs[] = {
    {"token", set_str, AT(char *, tg_config_t, decide.token), 16, 1024, SECRET, check_text, NULL, NULL},
    {"syslog", set_str, AT(char *, tg_config_t, decide.syslog), 1, 255, 0, check_listen, NULL, NULL},
    {"settle_timeout_ms", set_int, AT(int, tg_config_t, decide.settle_timeout_ms), 100, 86400000, 0, NULL, NULL, NULL},
    {"on_timeout", set_choice, AT(int, tg_config_t, decide.on_timeout), 0, 0, 0, NULL, on_timeout_names, NULL},
    {"max_pending", set_int, AT(int, tg_config_t, decide.max_pending), 1, 10000000, 0, NULL, NULL, NULL},
    {"max_pending_per_customer", set_int, AT(int, tg_config_t, decide.max_pending_per_customer), 1, 10000000, 0, NULL,
     NULL, NULL},
    {"syslog_secret", set_str, AT(char *, tg_config_t, decide.syslog_secret), 16, 256, SECRET, check_syslog_secret,
     NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};

/* Written at all: the decision API's paths are answered (and an upstream's own are shadowed).
 * The section is optional, its token is not: without one anybody could settle calls. */
static void finish_decide(diag_t *d, void *obj, const tg_ynode_t *n, int line, const char *path, uint64_t given_,
                          uint64_t valid)
{
    if (n == NULL)
        return;
    tg_config_t *cfg = obj;
    cfg->decide.enabled = 1;
    if (!(given_ & 1))
        report(d, line, "%s.token is required (at least 16 characters; use \"${TOLLGATE_DECIDE_TOKEN}\")", path);
    /* Not written: a quarter of the table, so that one customer holding calls open cannot
     * refuse everybody else's; the whole table when it is that small. */
    if (!(given_ & (1u << 5))) /* bit 5: max_pending_per_customer, its place in decide_dirs */
        cfg->decide.max_pending_per_customer =
            cfg->decide.max_pending < 64 ? cfg->decide.max_pending : cfg->decide.max_pending / 4;
    /* Bits 1 (syslog) and 6 (syslog_secret). Without a secret, the reservation id in a line is
     * all that settles a call: on loopback only local processes can send one (main.c warns);
     * from the network, anybody who learns an open id could settle it as failed, unbilled. */
    if ((valid & (1u << 1)) && !(given_ & (1u << 6)) && !listen_is_loopback(cfg->decide.syslog))
        report(d, line,
               "%s.syslog: \"%s\" is not a loopback address, and %s.syslog_secret is not set: anybody who can "
               "reach it could settle calls; set syslog_secret (use \"${TOLLGATE_SYSLOG_SECRET}\") and put it in "
               "nginx's log_format",
               path, cfg->decide.syslog, path);
}
static const section_t decide_sec = {decide_dirs, 0, finish_decide};

/* ---- log (util/log.h): the diagnostic log ---- */

static const char *const log_level_names[] = {"error", "warn", "info", "debug", NULL}; /* tg_log_level_t order */

static const directive_t log_dirs[] = {
    {"level", set_choice, AT(int, tg_config_t, log.level), 0, 0, 0, NULL, log_level_names, NULL},
    {"syslog", set_bool, AT(int, tg_config_t, log.syslog), 0, 0, 0, NULL, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};
static const section_t log_sec = {log_dirs, 0, NULL};

/* ---- stripe, billing, dunning ---- */

static int given(const directive_t *dirs, uint64_t seen, const char *name);

static int set_duration(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    char *s = scalar(d, v, path, "a duration like 1h");
    if (s == NULL)
        return -1;
    char q[96];
    int rc = parse_duration(s, FIELD(int64_t, obj, dir));
    if (rc != 0)
        report(d, v->line, "%s: %s is not a duration (N followed by s, m, h or d, up to 365d; or off)", path,
               quote(s, q));
    free(s);
    return rc;
}

/* stripe.webhook_secret: one whsec_ string, or a list of them while a secret is being rolled. The
 * values are never echoed. */
static int set_webhook_secrets(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    tg_config_t *cfg = obj;
    const tg_ynode_t *const *items = &v;
    size_t n = 1;
    if (v->type == TG_YNODE_SEQ) {
        if (list_of(d, dir, v, path, "webhook secrets") != 0)
            return -1;
        if (v->n == 0) {
            report(d, v->line, "%s: the list is empty (give at least one whsec_... secret)", path);
            return -1;
        }
        items = (const tg_ynode_t *const *)v->items;
        n = v->n;
    }
    char **list = calloc(n, sizeof(*list));
    if (list == NULL) {
        report(d, v->line, "%s: out of memory", path);
        return -1;
    }
    size_t got = 0;
    for (size_t i = 0; i < n; i++) {
        char sub[MAX_PATH];
        if (v->type == TG_YNODE_SEQ)
            index_path(sub, path, i);
        else
            snprintf(sub, sizeof(sub), "%s", path);
        char *s = scalar(d, items[i], sub, "a string (or a list of strings)");
        if (s == NULL)
            continue;
        int bad_char = 0;
        for (const char *p = s; *p != '\0'; p++)
            bad_char |= (unsigned char)*p <= 0x20 || *p == 0x7f;
        if (strncmp(s, "whsec_", 6) != 0 || s[6] == '\0')
            report(d, items[i]->line, "%s: the value does not start with whsec_ (a Stripe webhook signing secret)", sub);
        else if (bad_char)
            report(d, items[i]->line, "%s: the value must not contain spaces or control characters", sub);
        else if (strlen(s) > 1024)
            report(d, items[i]->line, "%s is too long (at most 1024 characters)", sub);
        else {
            list[got++] = s;
            continue;
        }
        free_secret(s);
    }
    for (size_t i = 0; i < cfg->stripe.nwebhook_secrets; i++)
        free_secret(cfg->stripe.webhook_secrets[i]);
    free(cfg->stripe.webhook_secrets);
    cfg->stripe.webhook_secrets = list;
    cfg->stripe.nwebhook_secrets = got;
    return got == n ? 0 : -1;
}

static const char *const stripe_billing_names[] = {"tollgate", "stripe", NULL};
static const char *const collection_names[] = {"charge_automatically", "send_invoice", NULL};

static void finish_stripe(diag_t *d, void *obj, const tg_ynode_t *n, int line, const char *path, uint64_t seen,
                          uint64_t valid);

static const directive_t stripe_dirs[] = {
    {"secret_key", set_str, AT(char *, tg_config_t, stripe.secret_key), 9, 1024, REQUIRED | SECRET, check_stripe_key,
     NULL, " (sk_test_..., sk_live_... or a restricted rk_...; use \"${STRIPE_SECRET_KEY}\")"},
    {"webhook_secret", set_webhook_secrets, 0, 0, TG_STRIPE_MAX_WEBHOOK_SECRETS, REQUIRED | SECRET, NULL, NULL,
     " (the endpoint's whsec_... signing secret; use \"${STRIPE_WEBHOOK_SECRET}\")"},
    {"api_base", set_str, AT(char *, tg_config_t, stripe.api_base), 1, 2048, 0, check_api_base, NULL, NULL},
    {"billing", set_choice, AT(int, tg_config_t, stripe.billing), 0, 0, 0, NULL, stripe_billing_names, NULL},
    {"collection", set_choice, AT(int, tg_config_t, stripe.collection), 0, 0, 0, NULL, collection_names, NULL},
    {"days_until_due", set_int, AT(int, tg_config_t, stripe.days_until_due), 1, 365, 0, NULL, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};
static const section_t stripe_sec = {stripe_dirs, 0, finish_stripe};

static void finish_stripe(diag_t *d, void *obj, const tg_ynode_t *n, int line, const char *path, uint64_t seen,
                          uint64_t valid)
{
    (void)valid;
    const tg_config_t *cfg = obj;
    if (cfg->stripe.collection == TG_STRIPE_SEND_INVOICE && !given(stripe_dirs, seen, "days_until_due"))
        report(d, key_line(n, "collection", line), "%s.days_until_due is required with collection: send_invoice", path);
    if (cfg->stripe.collection != TG_STRIPE_SEND_INVOICE && given(stripe_dirs, seen, "days_until_due"))
        report(d, key_line(n, "days_until_due", line),
               "%s.days_until_due: has no effect with collection: charge_automatically (only with send_invoice)",
               path);
}

/* The stripe: section turns Stripe on; it is not a set_section so that an absent section stays
 * off without its required keys being asked for, and "stripe:" with nothing is an error. */
static int set_stripe(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    (void)dir;
    tg_config_t *cfg = obj;
    if (v->type != TG_YNODE_MAP) {
        report(d, v->line, "%s: expected a mapping, got %s", path, kind_of(v));
        return -1;
    }
    cfg->stripe.enabled = 1;
    return apply_section(d, &stripe_sec, v, v->line, obj, path);
}

static const directive_t billing_dirs[] = {
    {"finalize_after", set_duration, AT(int64_t, tg_config_t, billing.finalize_after_s), 0, 0, 0, NULL, NULL, NULL},
    {"close_connections", set_int, AT(int, tg_config_t, billing.close_connections), 1, 16, 0, NULL, NULL, NULL},
    {"close_cpus", set_str, AT(char *, tg_config_t, billing.close_cpus), 1, 255, 0, check_cpu_list, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};
static const section_t billing_sec = {billing_dirs, 0, NULL};

static const directive_t dunning_dirs[] = {
    {"grace_days", set_int, AT(int, tg_config_t, dunning.grace_days), 0, 365, 0, NULL, NULL, NULL},
    {"suspend_after_failures", set_int, AT(int, tg_config_t, dunning.suspend_after_failures), 1, 100, 0, NULL, NULL,
     NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};
static const section_t dunning_sec = {dunning_dirs, 0, NULL};

/* ---- notifications (issue 13, part A: webhooks out) ---- */

/* notifications.endpoints[i].events: "*" (every type), one type, or a list of types. */
static int set_event_list(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    (void)dir;
    tg_config_webhook_t *w = obj;
    char joined[TG_WEBHOOK_EVENTS_MAX] = "";
    size_t used = 0;
    int ok = 1;
    size_t n = v->type == TG_YNODE_SEQ ? v->n : 1;
    if (v->type == TG_YNODE_MAP) {
        report(d, v->line, "%s: expected \"*\" or a list of event types, got %s", path, kind_of(v));
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const tg_ynode_t *item = v->type == TG_YNODE_SEQ ? v->items[i] : v;
        char sub[MAX_PATH], q[96];
        index_path(sub, path, i);
        char *t = scalar(d, item, v->type == TG_YNODE_SEQ ? sub : path, "an event type");
        if (t == NULL) {
            ok = 0;
            continue;
        }
        if (strcmp(t, "*") != 0 && !tg_event_type_known(t)) {
            report(d, item->line, "%s: %s is not an event type (see docs/api.md, Events and webhooks)",
                   v->type == TG_YNODE_SEQ ? sub : path, quote(t, q));
            ok = 0;
        } else {
            int w2 = snprintf(joined + used, sizeof(joined) - used, "%s%s", used > 0 ? "," : "", t);
            if (w2 < 0 || (size_t)w2 >= sizeof(joined) - used) {
                report(d, item->line, "%s: too many event types", path);
                ok = 0;
            } else
                used += (size_t)w2;
        }
        free(t);
    }
    if (!ok)
        return -1;
    if (used == 0) {
        report(d, v->line, "%s: name at least one event type, or \"*\"", path);
        return -1;
    }
    char *copy = strdup(joined);
    if (copy == NULL) {
        report(d, v->line, "%s: out of memory", path);
        return -1;
    }
    free(w->events);
    w->events = copy;
    return 0;
}

static int check_whsec(const char *s, char *why, size_t cap)
{
    uint8_t key[TG_WEBHOOK_KEY_MAX];
    size_t len;
    tg_err_t err = {0};
    int rc = tg_webhook_secret_key(s, key, &len, &err);
    sodium_memzero(key, sizeof(key));
    if (rc != 0)
        snprintf(why, cap, "is not valid: %s", err.msg);
    return rc;
}

static const directive_t webhook_endpoint_dirs[] = {
    {"url", set_str, AT(char *, tg_config_webhook_t, url), 1, TG_WEBHOOK_URL_MAX - 1, REQUIRED, NULL, NULL, NULL},
    {"events", set_event_list, 0, 0, 0, 0, NULL, NULL, NULL},
    {"secret", set_str, AT(char *, tg_config_webhook_t, secret), 1, TG_WEBHOOK_SECRET_MAX - 1, REQUIRED | SECRET,
     check_whsec, NULL, " (whsec_ and base64 of 24 or more random bytes)"},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};
static const section_t webhook_endpoint_sec = {webhook_endpoint_dirs, 0, NULL};

#define MAX_WEBHOOK_ENDPOINTS 50

static const list_key_t webhook_endpoint_unique[] = {{"url", AT(char *, tg_config_webhook_t, url), "URL"},
                                                     {NULL, 0, NULL}};
static const section_list_t webhook_endpoint_list = {&webhook_endpoint_sec,
                                                     sizeof(tg_config_webhook_t),
                                                     AT(int, tg_config_webhook_t, line),
                                                     AT(size_t, tg_config_t, notifications.nendpoints),
                                                     "endpoints",
                                                     "{url, events, secret}",
                                                     webhook_endpoint_unique};

/* notifications.allow_private_networks: ranges a delivery may reach though not public. */
static int set_allow_private(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    tg_config_t *cfg = obj;
    if (list_of(d, dir, v, path, "address ranges") != 0)
        return -1;
    tg_cidr_t *list = calloc(v->n + 1, sizeof(*list));
    if (list == NULL) {
        report(d, v->line, "%s: out of memory", path);
        return -1;
    }
    size_t n = 0;
    int ok = 1;
    for (size_t i = 0; i < v->n; i++) {
        char sub[MAX_PATH], q[96];
        index_path(sub, path, i);
        char *s = scalar(d, v->items[i], sub, "an address range like 127.0.0.0/8");
        if (s == NULL) {
            ok = 0;
            continue;
        }
        if (tg_cidr_parse(s, &list[n]) == 0)
            n++;
        else {
            report(d, v->items[i]->line, "%s: %s is not an IPv4 or IPv6 address or range (like 127.0.0.0/8 or ::1/128)",
                   sub, quote(s, q));
            ok = 0;
        }
        free(s);
    }
    free(cfg->notifications.allow_private_networks);
    cfg->notifications.allow_private_networks = list;
    cfg->notifications.nallow_private_networks = n;
    return ok ? 0 : -1;
}

static void finish_notifications(diag_t *d, void *obj, const tg_ynode_t *n, int line, const char *path, uint64_t seen,
                                 uint64_t valid)
{
    (void)seen;
    (void)valid;
    tg_config_t *cfg = obj;
    for (size_t i = 0; i < cfg->notifications.nendpoints; i++) {
        tg_config_webhook_t *w = &cfg->notifications.endpoints[i];
        tg_err_t err = {0};
        if (w->url != NULL && tg_webhook_url_check(w->url, cfg->notifications.allow_http, NULL, &err) != 0)
            report(d, w->line, "%s.endpoints[%zu].url: %s", path, i, err.msg);
        if (w->events == NULL && (w->events = strdup("*")) == NULL)
            report(d, w->line, "out of memory");
    }
    if (cfg->notifications.retry_cap_ms < cfg->notifications.retry_base_ms)
        report(d, line, "%s.retry_cap_ms (%d) is below retry_base_ms (%d)", path, cfg->notifications.retry_cap_ms,
               cfg->notifications.retry_base_ms);
    /* An event's dedupe key lives as long as the event: a week covers every source that may
     * emit the same event again (Stripe resends its events for three days). */
    int keep = cfg->notifications.retention_days;
    if (keep > 0 && keep < TG_NOTIFY_RETENTION_MIN_DAYS)
        report(d, key_line(n, "retention_days", line), "%s.retention_days: %d is below %d days (0 keeps everything)",
               path, keep, TG_NOTIFY_RETENTION_MIN_DAYS);
}

static const directive_t notifications_dirs[] = {
    {"endpoints", set_section_list, AT(tg_config_webhook_t *, tg_config_t, notifications.endpoints), 0,
     MAX_WEBHOOK_ENDPOINTS, 0, NULL, &webhook_endpoint_list, NULL},
    {"allow_private_networks", set_allow_private, 0, 0, 64, 0, NULL, NULL, NULL},
    {"allow_http", set_bool, AT(int, tg_config_t, notifications.allow_http), 0, 0, 0, NULL, NULL, NULL},
    {"timeout_ms", set_int, AT(int, tg_config_t, notifications.timeout_ms), 100, 60000, 0, NULL, NULL, NULL},
    {"retry_base_ms", set_int, AT(int, tg_config_t, notifications.retry_base_ms), 1, 3600000, 0, NULL, NULL, NULL},
    {"retry_cap_ms", set_int, AT(int, tg_config_t, notifications.retry_cap_ms), 1, 86400000, 0, NULL, NULL, NULL},
    {"retry_window_seconds", set_int, AT(int, tg_config_t, notifications.retry_window_s), 1, 30 * 86400, 0, NULL, NULL,
     NULL},
    {"breaker_failures", set_int, AT(int, tg_config_t, notifications.breaker_failures), 1, 1000, 0, NULL, NULL, NULL},
    {"breaker_cooldown_ms", set_int, AT(int, tg_config_t, notifications.breaker_cooldown_ms), 1, 86400000, 0, NULL,
     NULL, NULL},
    {"disable_after_seconds", set_int, AT(int, tg_config_t, notifications.disable_after_s), 1, 90 * 86400, 0, NULL,
     NULL, NULL},
    /* part C: usage thresholds and trial reminders */
    {"usage_thresholds", set_thresholds, AT(tg_thresholds_cfg_t, tg_config_t, notifications.usage_thresholds), 0,
     TG_THRESHOLDS_MAX, 0, NULL, NULL, NULL},
    {"trial_will_end_days", set_int, AT(int, tg_config_t, notifications.trial_will_end_days), 0, 365, 0, NULL, NULL,
     NULL},
    /* finished events, deliveries and mails are deleted this long after (notify/retention.h) */
    {"retention_days", set_int, AT(int, tg_config_t, notifications.retention_days), 0, 3650, 0, NULL, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};
static const section_t notifications_sec = {notifications_dirs, 0, finish_notifications};
/* ---- email ---- */

/* email.smtp_url: smtp:// or smtps:// with a host; libcurl reads the rest. No user:password in
 * the URL (they go in username/password, which are secrets), no path beyond an optional "/". */
static int check_smtp_url(const char *s, char *why, size_t cap)
{
    const char *rest = strncmp(s, "smtp://", 7) == 0 ? s + 7 : strncmp(s, "smtps://", 8) == 0 ? s + 8 : NULL;
    if (rest == NULL || *rest == '\0' || *rest == ':' || *rest == '/') {
        snprintf(why, cap, "is not an smtp://host[:port] or smtps://host[:port] URL");
        return -1;
    }
    for (const char *p = rest; *p != '\0'; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            snprintf(why, cap, "must not contain spaces or control characters");
            return -1;
        }
        if (*p == '@') {
            snprintf(why, cap, "must not hold a user or password (use email.username and email.password)");
            return -1;
        }
        if (*p == '/' && p[1] != '\0') {
            snprintf(why, cap, "must not have a path (smtp://host[:port])");
            return -1;
        }
    }
    const char *colon = strrchr(rest, ':');
    if (colon != NULL) {
        size_t pl = strcspn(colon + 1, "/");
        if (parse_port(colon + 1, pl) < 0) {
            snprintf(why, cap, "has a port that is not 1-65535");
            return -1;
        }
    }
    return 0;
}

/* A conservative addr-spec: local@domain, printable ASCII without spaces, quotes, angle brackets,
 * commas or semicolons (what a header and an SMTP envelope both carry as is). */
static int is_addr_spec(const char *s, size_t n)
{
    if (n < 3 || n > 254)
        return 0;
    const char *at = memchr(s, '@', n);
    if (at == NULL || at == s || at == s + n - 1 || memchr(at + 1, '@', (size_t)(s + n - at - 1)) != NULL)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || strchr("\"<>(),;:\\[]", c) != NULL)
            return 0;
    }
    return 1;
}

/* email.from: "Display Name <addr@host>" or "addr@host"; the display name has no control
 * characters, quotes or angle brackets (it goes into a header as an encoded word if not ASCII). */
static int check_from(const char *s, char *why, size_t cap)
{
    const char *lt = strchr(s, '<');
    int ok;
    if (lt == NULL) {
        ok = is_addr_spec(s, strlen(s));
    } else {
        const char *gt = strchr(lt, '>');
        ok = gt != NULL && gt[1] == '\0' && is_addr_spec(lt + 1, (size_t)(gt - lt - 1));
        for (const char *p = s; ok && p < lt; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '"' || *p == '>' || *p == '\\')
                ok = 0;
    }
    if (!ok)
        snprintf(why, cap, "is not \"Name <address@host>\" or \"address@host\"");
    return ok ? 0 : -1;
}

static void finish_email(diag_t *d, void *obj, const tg_ynode_t *n, int line, const char *path, uint64_t seen,
                         uint64_t valid);

static const directive_t email_dirs[] = {
    {"smtp_url", set_str, AT(char *, tg_config_t, email.smtp_url), 8, 1024, REQUIRED, check_smtp_url, NULL,
     " (like smtp://127.0.0.1:2525 or smtps://mail.example.com)"},
    {"from", set_str, AT(char *, tg_config_t, email.from), 3, 512, REQUIRED, check_from, NULL,
     " (like \"API billing <billing@example.com>\")"},
    {"username", set_str, AT(char *, tg_config_t, email.username), 1, 512, 0, check_text, NULL, NULL},
    {"password", set_str, AT(char *, tg_config_t, email.password), 1, 1024, SECRET, check_text, NULL, NULL},
    {"starttls", set_bool, AT(int, tg_config_t, email.starttls), 0, 0, 0, NULL, NULL, NULL},
    {"templates", set_str, AT(char *, tg_config_t, email.templates), 1, 1024, 0, check_log_dir, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};
static const section_t email_sec = {email_dirs, 0, finish_email};

static void finish_email(diag_t *d, void *obj, const tg_ynode_t *n, int line, const char *path, uint64_t seen,
                         uint64_t valid)
{
    (void)valid;
    tg_config_t *cfg = obj;
    if (given(email_dirs, seen, "password") && !given(email_dirs, seen, "username"))
        report(d, key_line(n, "password", line), "%s.password: needs %s.username", path, path);
    if (cfg->email.username != NULL && !cfg->email.starttls && cfg->email.smtp_url != NULL &&
        strncmp(cfg->email.smtp_url, "smtp://", 7) == 0 && strncmp(cfg->email.smtp_url + 7, "127.0.0.1", 9) != 0 &&
        strncmp(cfg->email.smtp_url + 7, "localhost", 9) != 0 && strncmp(cfg->email.smtp_url + 7, "[::1]", 5) != 0)
        report(d, key_line(n, "username", line),
               "%s.username: the password would cross the network in clear over smtp:// without TLS; set "
               "%s.starttls: true or use smtps://",
               path, path);
    if (cfg->email.starttls && cfg->email.smtp_url != NULL && strncmp(cfg->email.smtp_url, "smtps://", 8) == 0)
        report(d, key_line(n, "starttls", line),
               "%s.starttls: has no effect with smtps:// (TLS from the first byte); use smtp:// for STARTTLS", path);
    if (cfg->email.from != NULL) {
        const char *lt = strchr(cfg->email.from, '<');
        size_t alen = lt != NULL ? strcspn(lt + 1, ">") : strlen(cfg->email.from);
        free(cfg->email.from_addr);
        cfg->email.from_addr = strndup(lt != NULL ? lt + 1 : cfg->email.from, alen);
        if (cfg->email.from_addr == NULL)
            report(d, line, "out of memory");
    }
}

/* The email: section turns mail on (like stripe:): absent, nothing asks for its required keys. */
static int set_email(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    (void)dir;
    tg_config_t *cfg = obj;
    if (v->type != TG_YNODE_MAP) {
        report(d, v->line, "%s: expected a mapping, got %s", path, kind_of(v));
        return -1;
    }
    cfg->email.enabled = 1;
    return apply_section(d, &email_sec, v, v->line, obj, path);
}

/* ---- tiers and charges ---- */

static int set_up_to(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    if (v->type == TG_YNODE_SCALAR && strcmp(v->text, "inf") == 0) {
        *FIELD(uint64_t, obj, dir) = TG_UNLIMITED;
        return 0;
    }
    char *s = scalar(d, v, path, "a whole number or inf");
    if (s == NULL)
        return -1;
    uint64_t u;
    char q[96];
    int rc = -1;
    if (parse_whole(s, &u) != 0 || u < dir->min || u > dir->max)
        report(d, v->line, "%s: %s is not a whole number from %" PRIu64 " to %" PRIu64 " or inf", path, quote(s, q),
               dir->min, dir->max);
    else {
        *FIELD(uint64_t, obj, dir) = u;
        rc = 0;
    }
    free(s);
    return rc;
}

static const directive_t tier_dirs[] = {
    {"up_to", set_up_to, AT(uint64_t, tg_tier_t, up_to), 1, MAX_QUANTITY, REQUIRED, NULL, NULL,
     " (a whole number, or inf for the last tier)"},
    {"unit_price", set_money, AT(tg_money_t, tg_tier_t, unit_price), 0, 0, 0, NULL, NULL, NULL},
    {"flat_price", set_money, AT(tg_money_t, tg_tier_t, flat_price), 0, 0, 0, NULL, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};
static const section_t tier_sec = {tier_dirs, 0, NULL};

static int set_tiers(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    tg_charge_t *ch = obj;
    if (list_of(d, dir, v, path, "tiers") != 0)
        return -1;
    if (v->n == 0) {
        report(d, v->line, "%s: at least one tier is required", path);
        return -1;
    }
    if ((ch->tiers = calloc(v->n, sizeof(*ch->tiers))) == NULL) {
        report(d, v->line, "%s: out of memory", path);
        return -1;
    }
    ch->ntiers = v->n;
    for (size_t i = 0; i < v->n; i++) {
        char sub[MAX_PATH];
        index_path(sub, path, i);
        apply_section(d, &tier_sec, v->items[i], v->items[i]->line, &ch->tiers[i], sub);
    }
    /* up_to is 0 only where it was missing or invalid (already reported): skip those. */
    for (size_t i = 1; i < v->n; i++) {
        uint64_t prev = ch->tiers[i - 1].up_to, cur = ch->tiers[i].up_to;
        int line = key_line(v->items[i], "up_to", v->items[i]->line);
        if (prev == TG_UNLIMITED)
            report(d, key_line(v->items[i - 1], "up_to", line), "%s[%zu].up_to: only the last tier can be inf", path,
                   i - 1);
        else if (prev != 0 && cur != 0 && cur != TG_UNLIMITED && cur <= prev)
            report(d, line,
                   "%s[%zu].up_to: %" PRIu64 " is not above the previous tier's %" PRIu64 " (tier bounds must ascend)",
                   path, i, cur, prev);
    }
    uint64_t last = ch->tiers[v->n - 1].up_to;
    if (last != 0 && last != TG_UNLIMITED)
        report(d, key_line(v->items[v->n - 1], "up_to", v->items[v->n - 1]->line),
               "%s[%zu].up_to: the last tier must be up_to: inf (found %" PRIu64 ")", path, v->n - 1, last);
    return 0;
}

static const char *const model_names[] = {"per_unit", "graduated", "volume", "package", NULL};
static const char *const round_names[] = {"down", "up", NULL};

static const directive_t charge_dirs[] = {
    {"metric", set_str, AT(char *, tg_charge_t, metric), 1, 63, REQUIRED, check_metric, NULL, " (like api_calls)"},
    {"model", set_model, AT(tg_price_model_t, tg_charge_t, model), 0, 0, REQUIRED, NULL, model_names,
     " (per_unit, graduated, volume or package)"},
    {"unit_price", set_money, AT(tg_money_t, tg_charge_t, unit_price), 0, 0, 0, NULL, NULL, NULL},
    {"tiers", set_tiers, 0, 0, MAX_TIERS, 0, NULL, NULL, NULL},
    {"package_size", set_u64, AT(uint64_t, tg_charge_t, package_size), 1, MAX_QUANTITY, 0, NULL, NULL, NULL},
    {"package_price", set_money, AT(tg_money_t, tg_charge_t, package_price), 0, 0, 0, NULL, NULL, NULL},
    {"round", set_choice, AT(int, tg_charge_t, round_up), 0, 0, 0, NULL, round_names, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};

static int given(const directive_t *dirs, uint64_t seen, const char *name)
{
    for (size_t i = 0; dirs[i].name != NULL; i++)
        if (strcmp(dirs[i].name, name) == 0)
            return (seen >> i) & 1;
    return 0;
}

/* Which keys each model needs and which it would silently ignore. */
static void finish_charge(diag_t *d, void *obj, const tg_ynode_t *n, int line, const char *path, uint64_t seen,
                          uint64_t valid)
{
    const tg_charge_t *ch = obj;
    if (!given(charge_dirs, valid, "model"))
        return;
    static const struct {
        tg_price_model_t model;
        const char *needs[2];
        const char *ignores[4];
    } rules[] = {
        {TG_MODEL_PER_UNIT, {"unit_price", NULL}, {"tiers", "package_size", "package_price", "round"}},
        {TG_MODEL_GRADUATED, {"tiers", NULL}, {"unit_price", "package_size", "package_price", "round"}},
        {TG_MODEL_VOLUME, {"tiers", NULL}, {"unit_price", "package_size", "package_price", "round"}},
        {TG_MODEL_PACKAGE, {"package_size", "package_price"}, {"unit_price", "tiers", NULL, NULL}},
    };
    for (size_t r = 0; r < sizeof(rules) / sizeof(rules[0]); r++) {
        if (rules[r].model != ch->model)
            continue;
        const char *model = model_names[r];
        for (size_t i = 0; i < 2 && rules[r].needs[i] != NULL; i++)
            if (!given(charge_dirs, seen, rules[r].needs[i]))
                report(d, line, "%s: model %s needs %s", path, model, rules[r].needs[i]);
        for (size_t i = 0; i < 4 && rules[r].ignores[i] != NULL; i++)
            if (given(charge_dirs, seen, rules[r].ignores[i]))
                report(d, key_line(n, rules[r].ignores[i], line), "%s: %s does not apply to model %s", path,
                       rules[r].ignores[i], model);
    }
}
static const section_t charge_sec = {charge_dirs, 0, finish_charge};

static int set_charges(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    tg_plan_t *p = obj;
    if (list_of(d, dir, v, path, "charges") != 0)
        return -1;
    if ((p->charges = calloc(v->n + 1, sizeof(*p->charges))) == NULL) {
        report(d, v->line, "%s: out of memory", path);
        return -1;
    }
    p->ncharges = v->n;
    for (size_t i = 0; i < v->n; i++) {
        char sub[MAX_PATH];
        index_path(sub, path, i);
        p->charges[i].round_up = 1;
        p->charges[i].line = v->items[i]->line;
        apply_section(d, &charge_sec, v->items[i], v->items[i]->line, &p->charges[i], sub);
    }
    return 0;
}

/* ---- plans ---- */

static int set_currency(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    (void)dir;
    tg_plan_t *p = obj;
    char *s = scalar(d, v, path, "a currency code");
    if (s == NULL)
        return -1;
    int digits = strlen(s) == 3 ? tg_currency_digits(s) : -1;
    char q[96];
    if (digits < 0) {
        report(d, v->line, "%s: %s is not a supported ISO 4217 currency code", path, quote(s, q));
    } else {
        for (int i = 0; i < 3; i++)
            p->currency[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
        p->currency[3] = '\0';
        p->currency_digits = digits;
    }
    free(s);
    return digits < 0 ? -1 : 0;
}

static int set_on_quota(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    (void)dir;
    tg_plan_t *p = obj;
    char *s = scalar(d, v, path, "block, bill or throttle:RATE");
    if (s == NULL)
        return -1;
    char q[96];
    int rc = 0;
    if (strcmp(s, "block") == 0)
        p->on_quota = TG_QUOTA_BLOCK;
    else if (strcmp(s, "bill") == 0)
        p->on_quota = TG_QUOTA_BILL;
    else if (strncmp(s, "throttle:", 9) == 0 && parse_rate(s + 9, &p->throttle_rate) == 0)
        p->on_quota = TG_QUOTA_THROTTLE;
    else {
        report(d, v->line, "%s: %s is not block, bill or throttle:N/sec|min|hour|day", path, quote(s, q));
        rc = -1;
    }
    free(s);
    return rc;
}

static int set_endpoints(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    tg_plan_t *p = obj;
    p->endpoints = string_list(d, dir, v, path, &p->nendpoints);
    return p->endpoints != NULL ? 0 : -1;
}

static int set_features(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    tg_plan_t *p = obj;
    p->features = string_list(d, dir, v, path, &p->nfeatures);
    return p->features != NULL ? 0 : -1;
}

static int set_included(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    tg_plan_t *p = obj;
    char *names[MAX_INCLUDED];
    uint64_t values[MAX_INCLUDED];
    if (metric_map_ok(d, v, path, MAX_INCLUDED) != 0)
        return -1;
    size_t n = metric_map(d, dir, v, path, names, values, MAX_INCLUDED, MAX_QUANTITY);
    if ((p->included = calloc(n + 1, sizeof(*p->included))) == NULL) {
        report(d, v->line, "%s: out of memory", path);
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        p->included[i] = (tg_allowance_t){names[i], values[i]};
    p->nincluded = n;
    return 0;
}

static const char *const interval_names[] = {"month", "year", NULL};

static void finish_plan(diag_t *d, void *obj, const tg_ynode_t *n, int line, const char *path, uint64_t seen,
                        uint64_t valid);

static const directive_t plan_dirs[] = {
    {"name", set_str, AT(char *, tg_plan_t, name), 1, 200, 0, check_text, NULL, NULL},
    {"price", set_money, AT(tg_money_t, tg_plan_t, price), 0, 0, 0, NULL, NULL, NULL},
    {"currency", set_currency, 0, 0, 0, 0, NULL, NULL, NULL},
    {"interval", set_interval, AT(tg_interval_t, tg_plan_t, interval), 0, 0, 0, NULL, interval_names, NULL},
    {"trial_days", set_int, AT(int, tg_plan_t, trial_days), 0, 365, 0, NULL, NULL, NULL},
    {"rate_limit", set_rate, AT(tg_rate_t, tg_plan_t, rate_limit), 0, 0, 0, NULL, NULL, NULL},
    {"burst", set_u64, AT(uint64_t, tg_plan_t, burst), 1, MAX_RATE_COUNT, 0, NULL, NULL, NULL},
    {"endpoints", set_endpoints, 0, 0, MAX_ENDPOINTS, 0, check_pattern, NULL, NULL},
    {"included", set_included, 0, 0, MAX_INCLUDED, 0, check_metric, NULL, NULL},
    {"on_quota", set_on_quota, 0, 0, 0, 0, NULL, NULL, NULL},
    {"charges", set_charges, 0, 0, MAX_CHARGES, 0, NULL, NULL, NULL},
    {"minimum", set_money, AT(tg_money_t, tg_plan_t, minimum), 0, 0, 0, NULL, NULL, NULL},
    {"maximum", set_money, AT(tg_money_t, tg_plan_t, maximum), 0, 0, 0, NULL, NULL, NULL},
    {"block_at_maximum", set_bool, AT(int, tg_plan_t, block_at_maximum), 0, 0, 0, NULL, NULL, NULL},
    {"features", set_features, 0, 0, MAX_FEATURES, 0, check_text, NULL, NULL},
    {"requires_payment_method", set_bool, AT(int, tg_plan_t, requires_payment_method), 0, 0, 0, NULL, NULL, NULL},
    {"require_email_confirmation", set_bool, AT(int, tg_plan_t, require_email_confirmation), 0, 0, 0, NULL, NULL,
     NULL},
    {"notify_thresholds", set_thresholds, AT(tg_thresholds_cfg_t, tg_plan_t, notify_thresholds), 0,
     TG_THRESHOLDS_MAX, 0, NULL, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};
static const section_t plan_sec = {plan_dirs, 0, finish_plan};

static void finish_plan(diag_t *d, void *obj, const tg_ynode_t *n, int line, const char *path, uint64_t seen,
                        uint64_t valid)
{
    (void)valid;
    tg_plan_t *p = obj;
    if (p->name == NULL && (p->name = strdup(p->id)) == NULL)
        report(d, line, "%s: out of memory", path);
    if (!given(plan_dirs, seen, "burst"))
        p->burst = p->rate_limit.count;
    else if (!given(plan_dirs, seen, "rate_limit"))
        report(d, key_line(n, "burst", line), "%s.burst: has no effect without rate_limit", path);
    if (p->maximum != 0 && p->minimum > p->maximum)
        report(d, key_line(n, "minimum", line), "%s.minimum: is larger than maximum", path);
    if (p->block_at_maximum && p->maximum == 0)
        report(d, key_line(n, "block_at_maximum", line), "%s.block_at_maximum: needs maximum", path);
    for (size_t i = 0; i < p->ncharges; i++)
        for (size_t j = 0; j < i; j++)
            if (p->charges[i].metric != NULL && p->charges[j].metric != NULL &&
                strcmp(p->charges[i].metric, p->charges[j].metric) == 0)
                report(d, p->charges[i].line, "%s.charges[%zu]: metric %s is already priced by charges[%zu]", path, i,
                       p->charges[i].metric, j);
}

static int set_plans(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    (void)dir;
    tg_config_t *cfg = obj;
    if (v->type != TG_YNODE_MAP) {
        report(d, v->line, "%s: expected a mapping of plan id: plan, got %s", path, kind_of(v));
        return -1;
    }
    size_t count = v->n / 2;
    if (count == 0) {
        report(d, v->line, "%s: at least one plan is required", path);
        return -1;
    }
    if (count > MAX_PLANS) {
        report(d, v->line, "%s: at most %d plans (found %zu)", path, MAX_PLANS, count);
        return -1;
    }
    if ((cfg->plans = calloc(count, sizeof(*cfg->plans))) == NULL) {
        report(d, v->line, "%s: out of memory", path);
        return -1;
    }
    for (size_t i = 0; i + 1 < v->n; i += 2) {
        const tg_ynode_t *k = v->items[i], *pv = v->items[i + 1];
        char q[96];
        if (k->type != TG_YNODE_SCALAR || !is_lower_ident(k->text, 1)) {
            if (k->type != TG_YNODE_SCALAR)
                report(d, k->line, "%s: a plan id must be a single word, not %s", path, kind_of(k));
            else
                report(d, k->line, "%s: plan id %s must be 1 to 63 of a-z, 0-9, _ and -", path, quote(k->text, q));
            continue;
        }
        if (tg_config_find_plan(cfg, k->text) != NULL) {
            report(d, k->line, "%s: plan %s is defined twice", path, quote(k->text, q));
            continue;
        }
        tg_plan_t *p = &cfg->plans[cfg->nplans];
        if ((p->id = strdup(k->text)) == NULL) {
            report(d, k->line, "%s: out of memory", path);
            continue;
        }
        cfg->nplans++;
        memcpy(p->currency, "usd", 4);
        p->currency_digits = tg_currency_digits("usd");
        p->interval = TG_INTERVAL_MONTH;
        p->on_quota = TG_QUOTA_BLOCK;
        p->line = k->line;
        char sub[MAX_PATH];
        join_path(sub, path, p->id);
        apply_section(d, &plan_sec, tg_ynode_is_null(pv) ? NULL : pv, k->line, p, sub);
    }
    return 0;
}

/* ---- routes ---- */

static int set_match(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    (void)dir;
    tg_route_t *r = obj;
    char *s = scalar(d, v, path, "\"[METHOD] /pattern\"");
    if (s == NULL)
        return -1;
    char *pat = s, *method = NULL, why[160], q[96];
    char *sp = strchr(s, ' ');
    if (sp != NULL) {
        *sp = '\0';
        method = s;
        for (pat = sp + 1; *pat == ' '; pat++)
            ;
        size_t ml = strlen(method);
        int ok = ml >= 1 && ml <= 16;
        for (size_t i = 0; ok && i < ml; i++)
            ok = method[i] >= 'A' && method[i] <= 'Z';
        if (!ok) {
            report(d, v->line, "%s: method %s must be an upper-case word like GET or POST", path, quote(method, q));
            free(s);
            return -1;
        }
    }
    int rc = -1;
    if (check_pattern(pat, why, sizeof(why)) != 0)
        report(d, v->line, "%s: path %s %s", path, quote(pat, q), why);
    else if (strlen(pat) > 1024)
        report(d, v->line, "%s: path is too long (at most 1024 characters)", path);
    else if ((r->pattern = strdup(pat)) == NULL || (method != NULL && (r->method = strdup(method)) == NULL))
        report(d, v->line, "%s: out of memory", path);
    else
        rc = 0;
    free(s);
    return rc;
}

static int set_meter(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    tg_route_t *r = obj;
    char *names[MAX_METER];
    uint64_t values[MAX_METER];
    if (metric_map_ok(d, v, path, MAX_METER) != 0)
        return -1;
    if (v->n == 0) {
        report(d, v->line, "%s: at least one metric is required (leave meter out for {api_calls: 1})", path);
        return -1;
    }
    size_t n = metric_map(d, dir, v, path, names, values, MAX_METER, MAX_RATE_COUNT);
    if ((r->meter = calloc(n + 1, sizeof(*r->meter))) == NULL) {
        report(d, v->line, "%s: out of memory", path);
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        r->meter[i] = (tg_meter_unit_t){names[i], values[i]};
    r->nmeter = n;
    return 0;
}

static void finish_route(diag_t *d, void *obj, const tg_ynode_t *n, int line, const char *path, uint64_t seen,
                         uint64_t valid)
{
    (void)n;
    (void)seen;
    (void)valid;
    tg_route_t *r = obj;
    if (r->meter != NULL)
        return;
    if ((r->meter = calloc(1, sizeof(*r->meter))) == NULL || (r->meter[0].metric = strdup("api_calls")) == NULL) {
        report(d, line, "%s: out of memory", path);
        return;
    }
    r->meter[0].units = 1;
    r->nmeter = 1;
}

static const directive_t route_dirs[] = {
    {"match", set_match, 0, 0, 0, REQUIRED, NULL, NULL, " (like \"POST /v1/vision/*\")"},
    {"weight", set_u64, AT(uint64_t, tg_route_t, weight), 1, 1000000, 0, NULL, NULL, NULL},
    {"meter", set_meter, 0, 0, MAX_METER, 0, check_metric, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};
static const section_t route_sec = {route_dirs, 0, finish_route};

static int set_routes(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    tg_config_t *cfg = obj;
    if (list_of(d, dir, v, path, "routes") != 0)
        return -1;
    if ((cfg->routes = calloc(v->n + 1, sizeof(*cfg->routes))) == NULL) {
        report(d, v->line, "%s: out of memory", path);
        return -1;
    }
    cfg->nroutes = v->n;
    for (size_t i = 0; i < v->n; i++) {
        char sub[MAX_PATH];
        index_path(sub, path, i);
        cfg->routes[i].weight = 1;
        cfg->routes[i].line = v->items[i]->line;
        apply_section(d, &route_sec, v->items[i], v->items[i]->line, &cfg->routes[i], sub);
    }
    return 0;
}

/* ---- events: usage reported by the owner's own jobs (issue 16) ---- */

static int check_customer_id(const char *s, char *why, size_t cap)
{
    if (strncmp(s, "cus_", 4) != 0 || strlen(s) >= TG_ID_MAX) {
        snprintf(why, cap, "is not a customer id (cus_...)");
        return -1;
    }
    return 0;
}

static const directive_t ingest_token_dirs[] = {
    {"name", set_str, AT(char *, tg_ingest_token_t, name), 1, 64, REQUIRED, check_text, NULL, NULL},
    {"token", set_str, AT(char *, tg_ingest_token_t, token), 24, 1024, REQUIRED | SECRET, check_text, NULL,
     " (24+ characters; use \"${TOLLGATE_INGEST_TOKEN}\")"},
    {"customer", set_str, AT(char *, tg_ingest_token_t, customer), 5, TG_ID_MAX - 1, 0, check_customer_id, NULL,
     NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};
static const section_t ingest_token_sec = {ingest_token_dirs, 0, NULL};

#define MAX_INGEST_TOKENS 100

static const list_key_t ingest_token_unique[] = {{"name", AT(char *, tg_ingest_token_t, name), "name"},
                                                 {"token", AT(char *, tg_ingest_token_t, token), "token"},
                                                 {NULL, 0, NULL}};
static const section_list_t ingest_token_list = {&ingest_token_sec,
                                                 sizeof(tg_ingest_token_t),
                                                 AT(int, tg_ingest_token_t, line),
                                                 AT(size_t, tg_config_t, events.ntokens),
                                                 "tokens",
                                                 "{name, token, customer}",
                                                 ingest_token_unique};

static void finish_events(diag_t *d, void *obj, const tg_ynode_t *n, int line, const char *path, uint64_t seen,
                          uint64_t valid)
{
    (void)seen;
    (void)valid;
    tg_config_t *cfg = obj;
    /* Stripe takes meter events up to 35 days back; a longer window would keep ids that no
     * later export could use, a shorter one under a day would let a retried batch count twice. */
    if (cfg->events.dedup_window_s < 86400 || cfg->events.dedup_window_s > 365 * 86400)
        report(d, key_line(n, "dedup_window", line), "%s.dedup_window: must be between 1d and 365d", path);
}

static const directive_t events_dirs[] = {
    {"tokens", set_section_list, AT(tg_ingest_token_t *, tg_config_t, events.tokens), 0, MAX_INGEST_TOKENS, 0, NULL,
     &ingest_token_list, NULL},
    {"max_batch", set_int, AT(int, tg_config_t, events.max_batch), 1, 100000, 0, NULL, NULL, NULL},
    {"dedup_window", set_duration, AT(int64_t, tg_config_t, events.dedup_window_s), 0, 0, 0, NULL, NULL, NULL},
    {"max_body_bytes", set_u64, AT(uint64_t, tg_config_t, events.max_body_bytes), 1024, 268435456, 0, NULL, NULL,
     NULL},
    /* a billion ids: a 64 GiB index file, already beyond the disks this is meant for */
    {"index_keys", set_u64, AT(uint64_t, tg_config_t, events.index_keys), 0, 1000000000, 0, NULL, NULL, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};
static const section_t events_sec = {events_dirs, 0, finish_events};

/* The events: section turns POST /v1/events on: absent, the path is the upstream's. */
static int set_events(diag_t *d, const directive_t *dir, const tg_ynode_t *v, void *obj, const char *path)
{
    (void)dir;
    tg_config_t *cfg = obj;
    if (v->type != TG_YNODE_MAP && !tg_ynode_is_null(v)) {
        report(d, v->line, "%s: expected a mapping, got %s", path, kind_of(v));
        return -1;
    }
    cfg->events.enabled = 1;
    return apply_section(d, &events_sec, tg_ynode_is_null(v) ? NULL : v, v->line, obj, path);
}

/* ---- the top level ---- */

static void finish_root(diag_t *d, void *obj, const tg_ynode_t *n, int line, const char *path, uint64_t seen,
                        uint64_t valid);

static const directive_t root_dirs[] = {{"server", set_section, 0, 0, 0, 0, NULL, &server_sec, NULL},
                                        {"listeners", set_section, 0, 0, 0, 0, NULL, &listeners_sec, NULL},
                                        {"public_urls", set_section, 0, 0, 0, 0, NULL, &public_urls_sec, NULL},
                                        {"upstream", set_section, 0, 0, 0, 0, NULL, &upstream_sec, NULL},
                                        {"storage", set_section, 0, 0, 0, 0, NULL, &storage_sec, NULL},
                                        {"admin", set_section, 0, 0, 0, 0, NULL, &admin_sec, NULL},
                                        {"keys", set_section, 0, 0, 0, 0, NULL, &keys_sec, NULL},
                                        {"metering", set_section, 0, 0, 0, 0, NULL, &metering_sec, NULL},
                                        {"portal", set_section, 0, 0, 0, 0, NULL, &portal_sec, NULL},
                                        {"metrics", set_section, 0, 0, 0, 0, NULL, &metrics_sec, NULL},
                                        {"access_log", set_section, 0, 0, 0, 0, NULL, &access_log_sec, NULL},
                                        {"log", set_section, 0, 0, 0, 0, NULL, &log_sec, NULL},
                                        {"decide", set_section, 0, 0, 0, 0, NULL, &decide_sec, NULL},
                                        {"stripe", set_stripe, 0, 0, 0, 0, NULL, NULL, NULL},
                                        {"billing", set_section, 0, 0, 0, 0, NULL, &billing_sec, NULL},
                                        {"dunning", set_section, 0, 0, 0, 0, NULL, &dunning_sec, NULL},
                                        {"cluster", set_section, 0, 0, 0, 0, NULL, &cluster_sec, NULL},
                                        {"notifications", set_section, 0, 0, 0, 0, NULL, &notifications_sec, NULL},
                                        {"email", set_email, 0, 0, 0, 0, NULL, NULL, NULL},
                                        {"events", set_events, 0, 0, 0, 0, NULL, NULL, NULL},
                                        {"plans", set_plans, 0, 0, 0, REQUIRED, NULL, NULL, " (at least one plan)"},
                                        {"routes", set_routes, 0, 0, MAX_ROUTES, 0, NULL, NULL, NULL},
                                        {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};
static const section_t root_sec = {root_dirs, 1, finish_root};

/* "http://" + a listen address as this host reaches it ("*" or no host: localhost). */
static char *url_of_listen(const char *listen, int tls)
{
    const char *colon = strrchr(listen, ':');
    size_t hl = colon != NULL ? (size_t)(colon - listen) : 0;
    int anyhost = hl == 0 || (hl == 1 && listen[0] == '*');
    char url[300];
    snprintf(url, sizeof(url), "%s://%.*s%s", tls ? "https" : "http", anyhost ? 9 : (int)hl,
             anyhost ? "localhost" : listen, colon != NULL ? colon : "");
    return strdup(url);
}

/* The listeners: section, or the shorthands server.listen and server.admin_listen; the public
 * URLs that default from them. */
static void finish_root_listeners(diag_t *d, tg_config_t *cfg, const tg_ynode_t *n, int line)
{
    tg_listener_conf_t *ls = cfg->listeners;
    if (!cfg->listeners_given) {
        ls[TG_LISTENER_GATEWAY].address = cfg->server.listen != NULL ? strdup(cfg->server.listen) : NULL;
        ls[TG_LISTENER_ADMIN].address = cfg->server.admin_listen != NULL ? strdup(cfg->server.admin_listen) : NULL;
    } else {
        /* server.listen and server.admin_listen keep naming the addresses for the CLI and logs */
        for (int k = TG_LISTENER_GATEWAY; k <= TG_LISTENER_ADMIN; k += TG_LISTENER_ADMIN) {
            char **shorthand = k == TG_LISTENER_GATEWAY ? &cfg->server.listen : &cfg->server.admin_listen;
            if (ls[k].address != NULL) {
                free(*shorthand);
                *shorthand = strdup(ls[k].address);
            }
        }
    }
    int lline = key_line(n, "listeners", line);
    static const char *const names[] = {"gateway", "portal", "admin", "metrics"};
    for (int a = 0; a < TG_LISTENER_KINDS; a++)
        for (int b = a + 1; b < TG_LISTENER_KINDS; b++)
            if (ls[a].address != NULL && ls[b].address != NULL && strcmp(ls[a].address, ls[b].address) == 0)
            {
                if (cfg->listeners_given)
                    report(d, lline, "listeners.%s.address: must differ from listeners.%s.address (both %s)",
                           names[b], names[a], ls[a].address);
                else
                    report(d, key_line(n, "server", line),
                           "server.admin_listen: must differ from server.listen (both %s)", ls[a].address);
            }
    if (cfg->public_urls.gateway == NULL && ls[TG_LISTENER_GATEWAY].address != NULL &&
        (cfg->public_urls.gateway =
             url_of_listen(ls[TG_LISTENER_GATEWAY].address, ls[TG_LISTENER_GATEWAY].certificate != NULL)) == NULL)
        report(d, line, "out of memory");
    if (cfg->public_urls.portal == NULL && cfg->portal.public_url == NULL) {
        const tg_listener_conf_t *p = ls[TG_LISTENER_PORTAL].address != NULL ? &ls[TG_LISTENER_PORTAL]
                                                                               : &ls[TG_LISTENER_ADMIN];
        if (p->address != NULL && (cfg->portal.public_url = url_of_listen(p->address, p->certificate != NULL)) == NULL)
            report(d, line, "out of memory");
    }
}

static void finish_root(diag_t *d, void *obj, const tg_ynode_t *n, int line, const char *path, uint64_t seen,
                        uint64_t valid)
{
    (void)path;
    (void)valid;
    tg_config_t *cfg = obj;
    finish_root_listeners(d, cfg, n, line);
    if (cfg->portal.public_url == NULL && cfg->public_urls.portal != NULL &&
        (cfg->portal.public_url = strdup(cfg->public_urls.portal)) == NULL)
        report(d, line, "out of memory");
    if (cfg->portal.public_url == NULL && cfg->server.admin_listen != NULL) {
        /* the admin port as this host knows it: right on one machine, set portal.public_url behind a proxy */
        const char *colon = strrchr(cfg->server.admin_listen, ':');
        size_t hl = colon != NULL ? (size_t)(colon - cfg->server.admin_listen) : 0;
        int anyhost = hl == 0 || (hl == 1 && cfg->server.admin_listen[0] == '*');
        char url[300];
        snprintf(url, sizeof(url), "http://%.*s%s", anyhost ? 9 : (int)hl, anyhost ? "localhost" : cfg->server.admin_listen,
                 colon != NULL ? colon : "");
        if ((cfg->portal.public_url = strdup(url)) == NULL)
            report(d, line, "out of memory");
    }
    if (cfg->cluster.node_id == NULL) { /* the host name, cut to the characters a node id may hold */
        char host[65] = "";
        if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
            snprintf(host, sizeof(host), "localhost");
        for (char *c = host; *c != '\0'; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' ||
                  *c == '_' || *c == '.'))
                *c = '-';
        if ((cfg->cluster.node_id = strdup(host)) == NULL)
            report(d, line, "out of memory");
    }
    for (size_t i = 0; i < cfg->nplans; i++) /* a plan without its own list: the global one */
        if (!cfg->plans[i].notify_thresholds.set)
            cfg->plans[i].notify_thresholds = cfg->notifications.usage_thresholds;
    if (cfg->billing.finalize_after_s < 0) /* not given: by hand as before Stripe, automatic with it */
        cfg->billing.finalize_after_s = cfg->stripe.enabled ? 3600 : 0;
    /* not given: 2 on PostgreSQL (one connection keeps about one core busy at a time, server and
     * closer taking turns), 1 on SQLite (one writer: more connections would only wait) */
    if (cfg->billing.close_connections == 0)
        cfg->billing.close_connections = (cfg->storage.database != NULL && strncmp(cfg->storage.database, "postgres", 8) == 0) ? 2 : 1;
    for (size_t i = 0; i < cfg->nplans && !cfg->stripe.enabled; i++)
        if (cfg->plans[i].requires_payment_method)
            report(d, cfg->plans[i].line,
                   "plans.%s.requires_payment_method: needs a stripe section (a card is added through Stripe)",
                   cfg->plans[i].id);
    for (size_t i = 0; i < cfg->nplans && !cfg->email.enabled; i++)
        if (cfg->plans[i].require_email_confirmation)
            report(d, cfg->plans[i].line,
                   "plans.%s.require_email_confirmation: needs an email section (the confirmation is sent by mail)",
                   cfg->plans[i].id);
    if (cfg->storage.database != NULL && strncmp(cfg->storage.database, "sqlite:", 7) != 0 &&
        cfg->metering.log_dir == NULL)
        report(d, key_line(n, "storage", line),
               "metering.log_dir: is required with PostgreSQL (each gateway keeps its metering log on its own disk, "
               "for example /var/lib/tollgate/metering)");
    if (!cfg->stripe.enabled && given(root_dirs, seen, "dunning"))
        report(d, key_line(n, "dunning", line), "dunning: has no effect without a stripe section (no payment can fail)");
    for (size_t i = 0; i < cfg->portal.signup.nplans; i++)
        if (cfg->nplans > 0 && tg_config_find_plan(cfg, cfg->portal.signup.plans[i]) == NULL)
            report(d, key_line(n, "portal", line), "portal.signup.plans[%zu]: \"%.64s\" is not one of the plans", i,
                   cfg->portal.signup.plans[i]);
    if (cfg->portal.highlight != NULL && cfg->nplans > 0 && tg_config_find_plan(cfg, cfg->portal.highlight) == NULL)
        report(d, cfg->portal.highlight_line, "portal.highlight: \"%.64s\" is not one of the plans",
               cfg->portal.highlight);
    finish_display(d, cfg);
}

/* ---- the engine ---- */

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[65];
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t corner = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = corner + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            corner = up;
            row[j] = best;
        }
    }
    return row[lb];
}

static void unknown_key(diag_t *d, const directive_t *dirs, const tg_ynode_t *k, const char *path)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    char known[512] = "", q[96];
    size_t used = 0;
    for (size_t i = 0; dirs[i].name != NULL; i++) {
        size_t e = edit_distance(k->text, dirs[i].name);
        if (e < best_d) {
            best_d = e;
            best = dirs[i].name;
        }
        int w = snprintf(known + used, sizeof(known) - used, "%s%s", i ? ", " : "", dirs[i].name);
        if (w > 0 && (size_t)w < sizeof(known) - used)
            used += (size_t)w;
    }
    quote(k->text, q);
    int is_near = best != NULL && best_d <= 2 && best_d < strlen(k->text);
    if (path[0] == '\0' && is_near)
        report(d, k->line, "unknown section %s (did you mean \"%s\"?)", q, best);
    else if (path[0] == '\0')
        report(d, k->line, "unknown section %s (known: %s)", q, known);
    else if (is_near)
        report(d, k->line, "unknown key %s in %s (did you mean \"%s\"?)", q, path, best);
    else
        report(d, k->line, "unknown key %s in %s (known: %s)", q, path, known);
}

/* Applies mapping n (NULL when absent: only required keys and absent sub-sections are checked,
 * at `line`) to obj through sec's directives. -1 if n is not a mapping at all. */
static int apply_section(diag_t *d, const section_t *sec, const tg_ynode_t *n, int line, void *obj, const char *path)
{
    uint64_t seen = 0, valid = 0;
    if (n != NULL && n->type != TG_YNODE_MAP) {
        report(d, n->line, "%s: expected a mapping, got %s", path[0] != '\0' ? path : "the configuration", kind_of(n));
        return -1;
    }
    if (n != NULL)
        line = n->line;
    for (size_t i = 0; n != NULL && i + 1 < n->n; i += 2) {
        const tg_ynode_t *k = n->items[i], *v = n->items[i + 1];
        if (k->type != TG_YNODE_SCALAR) {
            report(d, k->line, "%s: a key must be a single word, not %s", path[0] != '\0' ? path : "the top level",
                   kind_of(k));
            continue;
        }
        if (sec->extensions && strncmp(k->text, "x-", 2) == 0)
            continue;
        size_t j = 0;
        while (sec->dirs[j].name != NULL && strcmp(sec->dirs[j].name, k->text) != 0)
            j++;
        const directive_t *dir = &sec->dirs[j];
        if (dir->name == NULL) {
            unknown_key(d, sec->dirs, k, path);
            continue;
        }
        char sub[MAX_PATH];
        join_path(sub, path, dir->name);
        if ((seen >> j) & 1) {
            report(d, k->line, "%s is given twice (first on line %d)", sub, key_line(n, dir->name, 0));
            continue;
        }
        seen |= UINT64_C(1) << j;
        if (tg_ynode_is_null(v)) {
            if (dir->set == set_section)
                apply_section(d, dir->arg, NULL, k->line, obj, sub); /* "server:" alone = all defaults */
            else
                report(d, k->line, "%s has no value", sub);
            continue;
        }
        if (dir->set(d, dir, v, obj, sub) == 0)
            valid |= UINT64_C(1) << j;
    }
    for (size_t j = 0; sec->dirs[j].name != NULL; j++) {
        const directive_t *dir = &sec->dirs[j];
        if ((seen >> j) & 1)
            continue;
        char sub[MAX_PATH];
        join_path(sub, path, dir->name);
        if (dir->flags & REQUIRED)
            report(d, line, "%s is required%s", sub, dir->hint != NULL ? dir->hint : "");
        else if (dir->set == set_section)
            apply_section(d, dir->arg, NULL, line, obj, sub);
    }
    if (sec->finish != NULL)
        sec->finish(d, obj, n, line, path, seen, valid);
    return 0;
}

/* The seen bit set holds 64 directives per section. */
_Static_assert(sizeof(plan_dirs) / sizeof(plan_dirs[0]) <= 64, "too many plan directives");
_Static_assert(sizeof(root_dirs) / sizeof(root_dirs[0]) <= 64, "too many top-level directives");

static int set_defaults(tg_config_t *cfg)
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
    cfg->metering.durability = 0;
    cfg->metering.flush_ms = 5;
    cfg->metering.sync_ms = 1000;
    cfg->metering.billable_classes = (1u << 2) | (1u << 3) | (1u << 4);
    cfg->metering.bill_429 = 0;
    cfg->portal.signup.enabled = 1;
    cfg->portal.signup.per_address = (tg_rate_t){10, 3600 * TG_NS_PER_SEC};
    cfg->portal.signup.global = (tg_rate_t){200, 3600 * TG_NS_PER_SEC};
    cfg->portal.signup.trial_address_days = 30;
    cfg->metering.max_units_per_call = UINT64_C(1000000000);
    cfg->keys.max_active_per_customer = 20;
    cfg->access_log.sample_ppm = 1000000;
    cfg->decide.settle_timeout_ms = 60000;
    cfg->decide.max_pending = 65536;
    cfg->log.level = 2; /* info */
    cfg->stripe.api_base = strdup("https://api.stripe.com");
    cfg->billing.finalize_after_s = -1; /* finish_root picks the default */
    cfg->dunning.grace_days = 7;
    cfg->cluster.sync_ms = 20;
    cfg->dunning.suspend_after_failures = 3;
    cfg->notifications.timeout_ms = 15000;
    cfg->notifications.retry_base_ms = 5000;
    cfg->notifications.retry_cap_ms = 6 * 3600 * 1000;
    cfg->notifications.retry_window_s = 3 * 86400;
    cfg->notifications.breaker_failures = 5;
    cfg->notifications.breaker_cooldown_ms = 60000;
    cfg->notifications.disable_after_s = 5 * 86400;
    cfg->notifications.usage_thresholds = (tg_thresholds_cfg_t){{80, 100, 120}, 3, 0};
    cfg->notifications.trial_will_end_days = 3;
    cfg->notifications.retention_days = 30;
    cfg->events.max_batch = 1000;
    cfg->events.dedup_window_s = 35 * 86400;
    cfg->events.max_body_bytes = 4 * 1024 * 1024;
    return cfg->server.listen != NULL && cfg->server.admin_listen != NULL && cfg->storage.database != NULL &&
                   cfg->stripe.api_base != NULL
               ? 0
               : TG_ENOMEM;
}

static int load(const char *name, const char *yaml, size_t len, tg_config_t **out, char *errbuf, size_t errcap)
{
    diag_t d = {name, NULL, 0, 0, 0};
    *out = NULL;
    if (errbuf != NULL && errcap > 0)
        errbuf[0] = '\0';
    if (len > MAX_CONFIG_BYTES) {
        report(&d, 0, "larger than 1 MiB (%zu bytes)", len);
        write_report(&d, errbuf, errcap);
        diag_free(&d);
        return TG_ECONFIG;
    }
    tg_ynode_t *root = NULL;
    tg_ydoc_error_t ye;
    int rc = tg_ydoc_load(yaml, len, &root, &ye);
    if (rc != 0) {
        report(&d, ye.line, "%s", ye.msg);
        write_report(&d, errbuf, errcap);
        diag_free(&d);
        return rc == TG_ENOMEM ? TG_ENOMEM : TG_ECONFIG;
    }
    tg_config_t *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL || (cfg->path = strdup(name)) == NULL || set_defaults(cfg) != 0) {
        tg_config_free(cfg);
        tg_ydoc_free(root);
        report(&d, 0, "out of memory");
        write_report(&d, errbuf, errcap);
        diag_free(&d);
        return TG_ENOMEM;
    }
    apply_section(&d, &root_sec, tg_ynode_is_null(root) ? NULL : root, 1, cfg, "");
    tg_ydoc_free(root);
    if (d.count > 0) {
        write_report(&d, errbuf, errcap);
        diag_free(&d);
        tg_config_free(cfg);
        return TG_ECONFIG;
    }
    diag_free(&d);
    *out = cfg;
    return 0;
}

/* portal.openapi: reads the document the (resolved) file name names; its problems are reported as
 * "CONFIG:LINE: portal.openapi: DOC:LINE: message", one per line. On failure *cfg is freed. */
static int load_portal_openapi(tg_config_t **cfg, char *errbuf, size_t errcap)
{
    tg_config_t *c = *cfg;
    if (c->portal.openapi == NULL)
        return 0;
    char inner[4096];
    int rc = tg_openapi_load(c->portal.openapi, &c->portal.openapi_doc, inner, sizeof(inner));
    if (rc == 0 && (rc = tg_openapi_prepare(c->portal.openapi_doc, c)) == 0)
        return 0;
    if (rc == TG_ENOMEM)
        snprintf(inner, sizeof(inner), "%s: out of memory\n", c->portal.openapi);
    if (errbuf != NULL && errcap > 0) {
        size_t len = 0;
        errbuf[0] = '\0';
        for (const char *line = inner; *line != '\0' && len + 1 < errcap;) {
            const char *nl = strchr(line, '\n');
            int n = nl != NULL ? (int)(nl - line) : (int)strlen(line);
            int w = snprintf(errbuf + len, errcap - len, "%s:%d: portal.openapi: %.*s\n", c->path,
                             c->portal.openapi_line, n, line);
            len = w < 0 ? len : (size_t)w >= errcap - len ? errcap - 1 : len + (size_t)w;
            line += n + (nl != NULL);
        }
    }
    tg_config_free(c);
    *cfg = NULL;
    return rc == TG_ENOMEM ? TG_ENOMEM : TG_ECONFIG;
}

int tg_config_load_string(const char *name, const char *yaml, size_t len, tg_config_t **out, char *errbuf,
                          size_t errcap)
{
    int rc = load(name != NULL ? name : "<config>", yaml, len, out, errbuf, errcap);
    return rc == 0 ? load_portal_openapi(out, errbuf, errcap) : rc;
}

/* ---- paths ----
 * A relative path in a configuration file (the SQLite database, the metering logs, ...) is
 * relative to the file's own folder, not to the working directory: the same file means the same
 * files whether tollgate is started from the source tree, from /, or by systemd. A configuration
 * given as a string (tg_config_load_string) has no folder; its paths stay as written. */

/* The field becomes dir + "/" + the field (prefix kept in front, e.g. "sqlite:") when it is relative. */
static int resolve_one(char **field, const char *prefix, const char *dir)
{
    size_t np = strlen(prefix);
    if (*field == NULL || strncmp(*field, prefix, np) != 0)
        return 0;
    const char *rel = *field + np;
    if (*rel == '/' || *rel == '\0' || strcmp(rel, ":memory:") == 0)
        return 0;
    while (strncmp(rel, "./", 2) == 0)
        rel += 2;
    char *joined = NULL;
    if (asprintf(&joined, "%s%s/%s", prefix, dir, rel) < 0)
        return TG_ENOMEM;
    free(*field);
    *field = joined;
    return 0;
}

static int resolve_paths(tg_config_t *cfg, const char *file)
{
    char *copy = strdup(file), *dir = NULL;
    if (copy == NULL)
        return TG_ENOMEM;
    char *slash = strrchr(copy, '/');
    if (slash == copy)
        slash[1] = '\0';
    else if (slash != NULL)
        *slash = '\0';
    /* the absolute folder: a later chdir (none today) or a relative -c cannot change what it names */
    dir = realpath(slash != NULL ? copy : ".", NULL);
    free(copy);
    if (dir == NULL)
        return errno == ENOMEM ? TG_ENOMEM : 0; /* the file was just read: only a race gets here */
    int rc = resolve_one(&cfg->storage.database, "sqlite:", dir);
    if (rc == 0)
        rc = resolve_one(&cfg->metering.log_dir, "", dir);
    if (rc == 0)
        rc = resolve_one(&cfg->email.templates, "", dir);
    for (int k = 0; rc == 0 && k < TG_LISTENER_KINDS; k++) {
        rc = resolve_one(&cfg->listeners[k].certificate, "", dir);
        if (rc == 0)
            rc = resolve_one(&cfg->listeners[k].key, "", dir);
    }
    if (rc == 0)
        rc = resolve_one(&cfg->upstream.ca_file, "", dir);
    if (rc == 0)
        rc = resolve_one(&cfg->portal.openapi, "", dir);
    if (rc == 0 && cfg->access_log.path != NULL && strcmp(cfg->access_log.path, "-") != 0) /* "-": stdout */
        rc = resolve_one(&cfg->access_log.path, "", dir);
    free(dir);
    return rc;
}

int tg_config_load(const char *path, tg_config_t **out, char *errbuf, size_t errcap)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        if (errbuf != NULL && errcap > 0)
            snprintf(errbuf, errcap, "%s: cannot open: %s\n", path, strerror(errno));
        return TG_ECONFIG;
    }
    /* Read one byte past the cap to tell "exactly 1 MiB" from "larger". */
    char *buf = malloc(MAX_CONFIG_BYTES + 1);
    size_t n = buf != NULL ? fread(buf, 1, MAX_CONFIG_BYTES + 1, f) : 0;
    int failed = ferror(f);
    fclose(f);
    if (buf == NULL || failed || n > MAX_CONFIG_BYTES) {
        if (errbuf != NULL && errcap > 0)
            snprintf(errbuf, errcap, "%s: %s\n", path,
                     buf == NULL ? "out of memory"
                     : failed    ? "read error"
                                 : "larger than 1 MiB");
        free(buf);
        return buf == NULL ? TG_ENOMEM : TG_ECONFIG;
    }
    int rc = load(path, buf, n, out, errbuf, errcap);
    explicit_bzero(buf, n); /* the file may hold secrets inline */
    free(buf);
    if (rc == 0 && (rc = resolve_paths(*out, path)) != 0) {
        tg_config_free(*out);
        *out = NULL;
        if (errbuf != NULL && errcap > 0)
            snprintf(errbuf, errcap, "%s: out of memory\n", path);
    }
    if (rc == 0)
        rc = load_portal_openapi(out, errbuf, errcap);
    return rc;
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
        for (size_t j = 0; j < p->ncharges; j++) {
            free(p->charges[j].metric);
            free(p->charges[j].tiers);
        }
        free(p->charges);
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
    for (int k = 0; k < TG_LISTENER_KINDS; k++) {
        free(cfg->listeners[k].address);
        free(cfg->listeners[k].certificate);
        free(cfg->listeners[k].key);
    }
    free(cfg->public_urls.gateway);
    free(cfg->public_urls.portal);
    free(cfg->upstream.ca_file);
    free(cfg->server.trusted_proxies);
    free_list(cfg->portal.signup.plans, cfg->portal.signup.nplans);
    free(cfg->portal.public_url);
    free(cfg->portal.openapi);
    tg_openapi_free(cfg->portal.openapi_doc);
    free_display(cfg);
    free_secret(cfg->metrics.token);
    free_secret(cfg->decide.token);
    free_secret(cfg->decide.syslog_secret);
    free(cfg->decide.syslog);
    free(cfg->access_log.path);
    free(cfg->upstream.url);
    free(cfg->storage.database);
    free(cfg->metering.log_dir);
    free_secret(cfg->cluster.redis);
    free(cfg->cluster.node_id);
    free(cfg->billing.close_cpus);
    free_secret(cfg->admin.token);
    free_secret(cfg->keys.secret);
    free_secret(cfg->stripe.secret_key);
    for (size_t i = 0; i < cfg->stripe.nwebhook_secrets; i++)
        free_secret(cfg->stripe.webhook_secrets[i]);
    free(cfg->stripe.webhook_secrets);
    free(cfg->stripe.api_base);
    for (size_t i = 0; i < cfg->notifications.nendpoints; i++) {
        free(cfg->notifications.endpoints[i].url);
        free(cfg->notifications.endpoints[i].events);
        free_secret(cfg->notifications.endpoints[i].secret);
    }
    free(cfg->notifications.endpoints);
    for (size_t i = 0; i < cfg->events.ntokens; i++) {
        free(cfg->events.tokens[i].name);
        free_secret(cfg->events.tokens[i].token);
        free(cfg->events.tokens[i].customer);
    }
    free(cfg->events.tokens);
    free(cfg->notifications.allow_private_networks);
    free(cfg->email.smtp_url);
    free(cfg->email.from);
    free(cfg->email.from_addr);
    free(cfg->email.username);
    free_secret(cfg->email.password);
    free(cfg->email.templates);
    free(cfg->path);
    free(cfg);
}
