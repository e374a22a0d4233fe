/* stripe_form.c - Stripe's nested form encoding (see stripe_form.h).
 *
 * Every append is all or nothing: the length before it is remembered and restored on failure,
 * so a caller that gets TG_ELIMIT or TG_EINVAL still holds the valid form it had. */
#include "payments/stripe_form.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/money.h"

#define KEY_MAX 512 /* a nested key, before encoding: Stripe's deepest are far shorter */

void tg_form_init(tg_form_t *f, size_t max)
{
    memset(f, 0, sizeof(*f));
    f->max = max != 0 ? max : TG_FORM_MAX_DEFAULT;
}

void tg_form_free(tg_form_t *f)
{
    free(f->buf);
    size_t max = f->max;
    tg_form_init(f, max);
}

const char *tg_form_data(const tg_form_t *f, size_t *len)
{
    if (len != NULL)
        *len = f->len;
    return f->buf != NULL ? f->buf : "";
}

static int unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '*' || c == '-' ||
           c == '.' || c == '_';
}

/* Encoded size of n bytes of s, without the NUL. */
static size_t encoded_len(const char *s, size_t n, int keep_brackets)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        m += unreserved(c) || c == ' ' || (keep_brackets && (c == '[' || c == ']')) ? 1 : 3;
    }
    return m;
}

/* Writes the encoding of s (size m from encoded_len) at out; no NUL. */
static void encode_into(const char *s, size_t n, int keep_brackets, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (keep_brackets && (c == '[' || c == ']'))) {
            *out++ = (char)c;
        } else if (c == ' ') {
            *out++ = '+';
        } else {
            *out++ = '%';
            *out++ = hex[c >> 4];
            *out++ = hex[c & 15];
        }
    }
}

size_t tg_form_encode(const char *s, size_t n, int keep_brackets, char *out, size_t cap)
{
    size_t m = encoded_len(s, n, keep_brackets);
    if (cap == 0)
        return (size_t)-1;
    if (m >= cap) {
        out[0] = '\0';
        return (size_t)-1;
    }
    encode_into(s, n, keep_brackets, out);
    out[m] = '\0';
    return m;
}

/* 1 if key is `name` or `name[seg]...[seg]` with a non-empty name and no stray bracket (an
 * empty seg, "a[]", is Rack's array append: Stripe does not use it, so it is refused too). */
static int key_well_formed(const char *key)
{
    const char *p = key;
    size_t name = strcspn(p, "[]");
    if (name == 0)
        return 0;
    p += name;
    while (*p != '\0') {
        if (*p != '[')
            return 0;
        size_t seg = strcspn(p + 1, "[]");
        if (seg == 0 || p[1 + seg] != ']')
            return 0;
        p += seg + 2;
    }
    return 1;
}

static int append(tg_form_t *f, const char *key, size_t klen, const char *value, size_t vlen, tg_err_t *err)
{
    size_t kenc = encoded_len(key, klen, 1), venc = encoded_len(value, vlen, 0);
    size_t need = f->len + (f->len > 0 ? 1 : 0);
    if (__builtin_add_overflow(need, kenc, &need) || __builtin_add_overflow(need, venc + 1, &need) || need > f->max)
        return tg_errf(err, TG_ELIMIT, "a Stripe request body is limited to %zu bytes; field \"%.64s\" does not fit",
                       f->max, key);
    if (need + 1 > f->cap) {
        size_t cap = f->cap > 0 ? f->cap : f->max < 256 ? f->max + 1 : 256;
        while (cap < need + 1)
            cap = cap > f->max / 2 ? f->max + 1 : cap * 2;
        char *nb = realloc(f->buf, cap);
        if (nb == NULL)
            return tg_errf(err, TG_ENOMEM, "out of memory encoding a Stripe request");
        f->buf = nb;
        f->cap = cap;
    }
    char *w = f->buf + f->len;
    if (f->len > 0)
        *w++ = '&';
    encode_into(key, klen, 1, w);
    w += kenc;
    *w++ = '=';
    encode_into(value, vlen, 0, w);
    w += venc;
    *w = '\0';
    f->len = need;
    return 0;
}

int tg_form_add(tg_form_t *f, const char *key, const char *value, tg_err_t *err)
{
    if (key == NULL || !key_well_formed(key))
        return tg_errf(err, TG_EINVAL, "\"%.64s\" is not a form key (name or name[field]...)", key != NULL ? key : "");
    if (value == NULL)
        value = "";
    return append(f, key, strlen(key), value, strlen(value), err);
}

int tg_form_add_int(tg_form_t *f, const char *key, int64_t value, tg_err_t *err)
{
    char num[24];
    snprintf(num, sizeof(num), "%" PRId64, value);
    return tg_form_add(f, key, num, err);
}

/* Appends v under key (klen bytes used of a KEY_MAX buffer that the recursion extends). */
static int add_value(tg_form_t *f, char *key, size_t klen, const json_t *v, int depth, tg_err_t *err)
{
    if (depth > TG_FORM_DEPTH_MAX)
        return tg_errf(err, TG_EINVAL, "parameter \"%.64s\" is nested deeper than %d levels", key, TG_FORM_DEPTH_MAX);
    char num[24];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *name;
        const json_t *m;
        json_object_foreach((json_t *)v, name, m)
        {
            size_t nlen = strlen(name);
            if (nlen == 0 || strpbrk(name, "[]") != NULL)
                return tg_errf(err, TG_EINVAL, "parameter name \"%.64s\" is empty or has a square bracket", name);
            size_t add = klen > 0 ? nlen + 2 : nlen;
            if (klen + add >= KEY_MAX)
                return tg_errf(err, TG_ELIMIT, "parameter \"%.64s...\" has a key longer than %d bytes", key,
                               KEY_MAX - 1);
            if (klen > 0)
                snprintf(key + klen, KEY_MAX - klen, "[%s]", name);
            else
                memcpy(key, name, nlen + 1);
            int rc = add_value(f, key, klen + add, m, depth + 1, err);
            key[klen] = '\0';
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    case JSON_ARRAY: {
        if (klen == 0)
            return tg_errf(err, TG_EINVAL, "an array needs a parameter name");
        size_t i;
        const json_t *m;
        json_array_foreach(v, i, m)
        {
            int n = snprintf(key + klen, KEY_MAX - klen, "[%zu]", i);
            if (n < 0 || (size_t)n >= KEY_MAX - klen) {
                key[klen] = '\0';
                return tg_errf(err, TG_ELIMIT, "parameter \"%.64s...\" has a key longer than %d bytes", key,
                               KEY_MAX - 1);
            }
            int rc = add_value(f, key, klen + (size_t)n, m, depth + 1, err);
            key[klen] = '\0';
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    case JSON_STRING:
        break;
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return klen > 0 ? append(f, key, klen, num, strlen(num), err)
                        : tg_errf(err, TG_EINVAL, "a value needs a parameter name");
    case JSON_TRUE:
    case JSON_FALSE:
    case JSON_NULL: {
        const char *s = json_is_true(v) ? "true" : json_is_false(v) ? "false" : "";
        return klen > 0 ? append(f, key, klen, s, strlen(s), err)
                        : tg_errf(err, TG_EINVAL, "a value needs a parameter name");
    }
    case JSON_REAL:
    default:
        return tg_errf(err, TG_EINVAL,
                       "parameter \"%.64s\" is a real number; Stripe amounts are integers in the minor unit", key);
    }
    if (klen == 0)
        return tg_errf(err, TG_EINVAL, "a value needs a parameter name");
    return append(f, key, klen, json_string_value(v), json_string_length(v), err);
}

int tg_form_add_json(tg_form_t *f, const char *prefix, const json_t *v, tg_err_t *err)
{
    char key[KEY_MAX];
    size_t klen = prefix != NULL ? strlen(prefix) : 0;
    if (v == NULL)
        return tg_errf(err, TG_EINVAL, "no value to encode");
    if (klen >= KEY_MAX)
        return tg_errf(err, TG_ELIMIT, "parameter name longer than %d bytes", KEY_MAX - 1);
    if (klen > 0 && !key_well_formed(prefix))
        return tg_errf(err, TG_EINVAL, "\"%.64s\" is not a form key (name or name[field]...)", prefix);
    memcpy(key, prefix != NULL ? prefix : "", klen + 1);
    size_t before = f->len;
    int rc = add_value(f, key, klen, v, 0, err);
    if (rc != 0) {
        f->len = before;
        if (f->buf != NULL)
            f->buf[before] = '\0';
    }
    return rc;
}

int tg_stripe_currency_digits(const char *currency)
{
    if (currency == NULL || strlen(currency) != 3)
        return -1;
    char lower[4];
    for (int i = 0; i < 4; i++)
        lower[i] = (char)(currency[i] >= 'A' && currency[i] <= 'Z' ? currency[i] + 32 : currency[i]);
    if (strcmp(lower, "isk") == 0)
        return 2;
    return tg_currency_digits(lower);
}
