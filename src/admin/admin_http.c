/* admin_http.c - request and reply helpers of the admin port: JSON replies and errors, path
 * segments, bodies. */
#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "admin/admin_int.h"
#include "billing/invoice.h"
#include "billing/pricing.h"
#include "gateway/apikey.h"
#include "metrics/metrics.h"
#include "util/clock.h"
#include "util/period.h"
#include "util/utf8.h"

/* ---- small helpers ---- */

void tg_adm_fmt_time(int64_t t, char *buf, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_t *tg_adm_json_time(int64_t t)
{
    if (t == 0)
        return json_null();
    char buf[32];
    tg_adm_fmt_time(t, buf, sizeof(buf));
    return json_string(buf);
}

int64_t tg_adm_now_s(void)
{
    return tg_clock_now_ns() / TG_NS_PER_SEC;
}

void tg_adm_reply_json(tg_admin_response_t *res, int status, json_t *j)
{
    res->status = status;
    res->content_type = "application/json";
    res->body = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (res->body == NULL) { /* out of memory, or a value jansson refused: never an empty body */
        static const char failed[] =
            "{\"error\":{\"type\":\"internal_error\",\"message\":\"The answer could not be encoded as JSON.\"}}";
        res->status = 500;
        res->body = strdup(failed);
    }
    res->body_len = res->body != NULL ? strlen(res->body) : 0;
}

void tg_adm_reply_error(tg_admin_response_t *res, int status, const char *type, const char *fmt, ...)
{
    char msg[512], docs[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    tg_utf8_scrub(msg); /* messages quote what the client sent */
    snprintf(docs, sizeof(docs), "https://tollgate.dev/docs/errors#%s", type);
    tg_adm_reply_json(res, status, json_pack("{s:{s:s,s:s,s:s}}", "error", "type", type, "message", msg, "docs", docs));
}

/* Service errors to statuses. TG_ELIMIT: the one limit the services enforce on a request is the
 * key cap (keys/keys.h); a new limit gets its own code or row here. */
static const struct {
    int code, status;
    const char *type;
} svc_errors[] = {
    {TG_EINVAL, 400, "bad_request"},
    {TG_ENOTFOUND, 404, "not_found"},
    {TG_EEXIST, 409, "conflict"},
    {TG_ESTATE, 409, "conflict"},
    {TG_EPAYMENT, 409, "payment_method_required"},
    {TG_EUNAVAIL, 503, "store_unavailable"},
    {TG_ELIMIT, 409, "key_limit_reached"},
    {TG_ERANGE, 422, "money_out_of_range"}, /* the customer's data, not the server */
};

void tg_adm_reply_svc_error(tg_admin_response_t *res, int rc, const tg_err_t *err)
{
    int status = 500;
    const char *type = "internal_error";
    for (size_t i = 0; i < sizeof(svc_errors) / sizeof(svc_errors[0]); i++)
        if (svc_errors[i].code == rc) {
            status = svc_errors[i].status;
            type = svc_errors[i].type;
        }
    tg_adm_reply_error(res, status, type, "%s", err != NULL && err->msg[0] ? err->msg : tg_strerror(rc));
}

void tg_adm_random_id(const char *prefix, char *out, size_t cap)
{
    uint8_t raw[12];
    char hex[sizeof(raw) * 2 + 1];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
    snprintf(out, cap, "%s%s", prefix, hex);
}

int tg_adm_split_path(const char *path, size_t len, tg_adm_segs_t *s)
{
    s->n = 0;
    size_t i = 0;
    while (i < len) {
        if (path[i] == '/') {
            i++;
            continue;
        }
        size_t start = i;
        while (i < len && path[i] != '/')
            i++;
        if (s->n == 6)
            return -1;
        s->seg[s->n] = path + start;
        s->len[s->n++] = i - start;
    }
    return 0;
}

int tg_adm_seg_is(const tg_adm_segs_t *s, size_t i, const char *lit)
{
    return i < s->n && s->len[i] == strlen(lit) && memcmp(s->seg[i], lit, s->len[i]) == 0;
}

int tg_adm_seg_copy(const tg_adm_segs_t *s, size_t i, char *out, size_t cap)
{
    if (i >= s->n || s->len[i] == 0 || s->len[i] >= cap)
        return -1;
    for (size_t k = 0; k < s->len[i]; k++) {
        char c = s->seg[i][k];
        if (!(isalnum((unsigned char)c) || c == '_' || c == '-'))
            return -1;
    }
    memcpy(out, s->seg[i], s->len[i]);
    out[s->len[i]] = '\0';
    return 0;
}

int tg_adm_method_is(const tg_admin_request_t *r, const char *m)
{
    return r->method_len == strlen(m) && memcmp(r->method, m, r->method_len) == 0;
}

/* 1 if the Content-Type is application/json (parameters allowed). */
static int is_json(const tg_admin_request_t *r)
{
    static const char json[] = "application/json";
    size_t n = sizeof(json) - 1;
    if (r->content_type == NULL || r->content_type_len < n || strncasecmp(r->content_type, json, n) != 0)
        return 0;
    return r->content_type_len == n || r->content_type[n] == ';' || r->content_type[n] == ' ';
}

/* Parses the body as a JSON object; an empty body is an empty object. A body must be declared
 * application/json: a cross-site form (text/plain, urlencoded, multipart) is refused before it is
 * read as JSON, and a browser cannot send application/json cross-site without a CORS preflight,
 * which this port never approves. */
json_t *tg_adm_parse_body(const tg_admin_request_t *r, tg_admin_response_t *res)
{
    if (r->body_len == 0)
        return json_object();
    if (!is_json(r)) {
        tg_adm_reply_error(res, 415, "unsupported_media_type", "The body must be JSON, sent as Content-Type: application/json.");
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL) {
        tg_adm_reply_error(res, 400, "bad_request", "The body is not valid JSON: %s at line %d column %d.", je.text,
                           je.line, je.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        tg_adm_reply_error(res, 400, "bad_request", "The body must be a JSON object.");
        return NULL;
    }
    return j;
}

int tg_adm_cookie(const tg_admin_request_t *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *c = r->cookie, *end = r->cookie != NULL ? r->cookie + r->cookie_len : NULL;
    while (c != NULL && c < end) {
        while (c < end && (*c == ' ' || *c == ';'))
            c++;
        const char *semi = memchr(c, ';', (size_t)(end - c)), *stop = semi != NULL ? semi : end;
        if ((size_t)(stop - c) > nl + 1 && memcmp(c, name, nl) == 0 && c[nl] == '=') {
            size_t n = (size_t)(stop - c - nl - 1);
            if (n >= cap)
                return 0;
            memcpy(out, c + nl + 1, n);
            out[n] = '\0';
            return 1;
        }
        c = stop;
    }
    return 0;
}

int tg_adm_same_origin(const tg_admin_request_t *r)
{
    const char *scheme = r->secure ? "https://" : "http://";
    size_t sl = strlen(scheme);
    if (r->host == NULL || r->host_len == 0)
        return r->origin == NULL && r->referer == NULL;
    const char *src = r->origin != NULL ? r->origin : r->referer;
    size_t n = r->origin != NULL ? r->origin_len : r->referer_len;
    if (src == NULL)
        return 1; /* not a browser: browsers send Origin on every cross-origin POST, PATCH and DELETE */
    if (n < sl + r->host_len || strncasecmp(src, scheme, sl) != 0 || strncasecmp(src + sl, r->host, r->host_len) != 0)
        return 0;
    size_t end = sl + r->host_len;
    if (r->origin != NULL)
        return n == end;
    return n == end || src[end] == '/'; /* a Referer: the origin, then the path */
}

/* Optional string field: NULL if absent; sets *bad when present but not a string. */
const char *tg_adm_opt_string(json_t *obj, const char *name, int *bad)
{
    json_t *v = json_object_get(obj, name);
    if (v == NULL || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        *bad = 1;
        return NULL;
    }
    return json_string_value(v);
}
