/* audit.c - the audit log's service: see audit.h. */
#include "ops/audit.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/clock.h"

const char *tg_audit_actor_kind_name(tg_audit_actor_kind_t kind)
{
    switch (kind) {
    case TG_AUDIT_ADMIN_TOKEN:
        return "admin_token";
    case TG_AUDIT_OWNER_SESSION:
        return "owner_session";
    case TG_AUDIT_CUSTOMER:
        return "customer";
    case TG_AUDIT_CLI:
        return "cli";
    case TG_AUDIT_SYSTEM:
        return "system";
    }
    return "system";
}

void tg_audit_fingerprint(const void *secret, size_t len, char out[TG_AUDIT_FINGERPRINT_MAX])
{
    /* keyed by a fixed label: a fingerprint is not a plain hash that a table of hashes of
     * guessed tokens would match, and it differs from the digests kept elsewhere */
    static const unsigned char label[] = "tollgate audit fingerprint v1...";
    unsigned char h[8];
    crypto_generichash(h, sizeof(h), secret, len, label, 32);
    memcpy(out, "fp_", 3);
    sodium_bin2hex(out + 3, TG_AUDIT_FINGERPRINT_MAX - 3, h, sizeof(h));
}

static int ends_with(const char *s, size_t n, const char *suffix)
{
    size_t m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int secret_name(const char *name)
{
    static const char *const exact[] = {"secret", "password", "token", "authorization", "cookie", "api_key"};
    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
        if (strcmp(name, exact[i]) == 0)
            return 1;
    size_t n = strlen(name);
    return ends_with(name, n, "_secret") || ends_with(name, n, "_password") || ends_with(name, n, "_token") ||
           ends_with(name, n, "_hash");
}

/* depth: JSON from our own handlers is shallow; the cap keeps a hostile document from recursing
 * deep (jansson's parser caps depth too, at 2048) */
static void redact(json_t *v, int depth)
{
    if (depth > 64)
        return;
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach(v, k, m)
        {
            if (secret_name(k) && !json_is_null(m))
                json_object_set_new(v, k, json_string("[redacted]"));
            else
                redact(m, depth + 1);
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m) redact(m, depth + 1);
    }
}

void tg_audit_redact(json_t *v)
{
    redact(v, 0);
}

/* The redacted, serialised form of v into *out (NULL for NULL); TG_ENOMEM. */
static int serialise(const json_t *v, char **out)
{
    *out = NULL;
    if (v == NULL)
        return 0;
    json_t *copy = json_deep_copy(v);
    if (copy == NULL)
        return TG_ENOMEM;
    redact(copy, 0);
    *out = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    json_decref(copy);
    if (*out == NULL)
        return TG_ENOMEM;
    if (strlen(*out) > TG_AUDIT_JSON_MAX) {
        free(*out);
        if ((*out = strdup("{\"truncated\":true}")) == NULL)
            return TG_ENOMEM;
    }
    return 0;
}

static int copy_field(char *dst, size_t cap, const char *src, const char *what, tg_err_t *err)
{
    if (src == NULL)
        src = "";
    if (strnlen(src, cap) >= cap)
        return tg_errf(err, TG_EINVAL, "the audit entry's %s is too long", what);
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

int tg_audit_record(tg_store_t *st, const tg_audit_actor_t *who, const char *action, const char *target_type,
                    const char *target_id, const json_t *before, const json_t *after, tg_err_t *err)
{
    tg_audit_row_t r;
    memset(&r, 0, sizeof(r));
    if (action == NULL || action[0] == '\0')
        return tg_errf(err, TG_EINVAL, "an audit entry needs an action");
    r.at_ms = tg_clock_now_ns() / 1000000;
    int rc = copy_field(r.actor_kind, sizeof(r.actor_kind), tg_audit_actor_kind_name(who->kind), "actor", err);
    if (rc == 0)
        rc = copy_field(r.actor_id, sizeof(r.actor_id), who->id, "actor id", err);
    if (rc == 0)
        rc = copy_field(r.source, sizeof(r.source), who->source, "source", err);
    if (rc == 0)
        rc = copy_field(r.request_id, sizeof(r.request_id), who->request_id, "request id", err);
    if (rc == 0)
        rc = copy_field(r.action, sizeof(r.action), action, "action", err);
    if (rc == 0)
        rc = copy_field(r.target_type, sizeof(r.target_type), target_type, "target type", err);
    if (rc == 0)
        rc = copy_field(r.target_id, sizeof(r.target_id), target_id, "target id", err);
    if (rc != 0)
        return rc;
    if (serialise(before, &r.before_json) != 0 || serialise(after, &r.after_json) != 0) {
        tg_audit_row_clear(&r);
        return tg_errf(err, TG_ENOMEM, "out of memory recording an audit entry");
    }
    rc = tg_store_audit_append(st, &r, NULL, err);
    tg_audit_row_clear(&r);
    return rc;
}

static json_t *parsed_or_null(const char *text)
{
    if (text == NULL)
        return json_null();
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    return v != NULL ? v : json_null();
}

json_t *tg_audit_row_json(const tg_audit_row_t *r)
{
    char at[40];
    time_t secs = (time_t)(r->at_ms / 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL)
        memset(&tm, 0, sizeof(tm));
    char day[24];
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(at, sizeof(at), "%s.%03dZ", day, (int)(r->at_ms % 1000));
    return json_pack("{s:I,s:s,s:I,s:{s:s,s:s},s:s,s:s,s:s,s:{s:s,s:s},s:o,s:o}", "id", (json_int_t)r->id, "at", at,
                     "at_ms", (json_int_t)r->at_ms, "actor", "kind", r->actor_kind, "id", r->actor_id, "source",
                     r->source, "request_id", r->request_id, "action", r->action, "target", "type", r->target_type,
                     "id", r->target_id, "before", parsed_or_null(r->before_json), "after",
                     parsed_or_null(r->after_json));
}
