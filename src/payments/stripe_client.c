/* stripe_client.c - one call to Stripe's API (see stripe_client.h).
 *
 * A fresh easy handle per call: the outbox makes a few calls a second at most, and a handle
 * kept across calls would be shared state between the processor and anyone else calling. The
 * secret key goes into a header buffer on the stack that is wiped before return. */
#include "payments/stripe_client.h"

#include <curl/curl.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEY_MAX 1024 /* the configuration's bound on stripe.secret_key */

void tg_stripe_result_clear(tg_stripe_result_t *r)
{
    json_decref(r->body);
    memset(r, 0, sizeof(*r));
    r->should_retry = -1;
}

tg_stripe_outcome_t tg_stripe_classify(long status, int should_retry, int transport_error, const char *error_type)
{
    if (transport_error || status == 0)
        return TG_STRIPE_RETRY;
    if (status >= 200 && status < 300)
        return TG_STRIPE_OK;
    if (should_retry == 1)
        return TG_STRIPE_RETRY;
    if (should_retry == 0)
        return TG_STRIPE_PERMANENT;
    if (status == 409)
        return error_type != NULL && strcmp(error_type, "idempotency_error") == 0 ? TG_STRIPE_PERMANENT
                                                                                  : TG_STRIPE_RETRY;
    if (status == 429 || (status >= 500 && status < 600))
        return TG_STRIPE_RETRY;
    return TG_STRIPE_PERMANENT;
}

static void copy_str(const json_t *o, const char *name, char *out, size_t cap)
{
    const char *s = json_string_value(json_object_get(o, name));
    snprintf(out, cap, "%s", s != NULL ? s : "");
}

void tg_stripe_parse_error(const json_t *body, tg_stripe_result_t *r)
{
    const json_t *e = json_object_get(body, "error");
    if (!json_is_object(e))
        return;
    copy_str(e, "type", r->error_type, sizeof(r->error_type));
    copy_str(e, "code", r->error_code, sizeof(r->error_code));
    copy_str(e, "param", r->error_param, sizeof(r->error_param));
    copy_str(e, "message", r->message, sizeof(r->message));
}

typedef struct body_buf {
    char *p;
    size_t len;
    int too_big;
} body_buf_t;

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    body_buf_t *b = arg;
    size_t add = size * n;
    if (add > TG_STRIPE_RESPONSE_MAX || b->len + add > TG_STRIPE_RESPONSE_MAX) {
        b->too_big = 1;
        return 0; /* curl stops: CURLE_WRITE_ERROR */
    }
    char *np = realloc(b->p, b->len + add + 1);
    if (np == NULL)
        return 0;
    b->p = np;
    memcpy(b->p + b->len, data, add);
    b->len += add;
    b->p[b->len] = '\0';
    return add;
}

/* Header value after "Name:", trimmed, into out; 1 if line is that header. */
static int header_value(const char *line, size_t n, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return 0;
    const char *v = line + nl + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t len = (size_t)(end - v) < cap - 1 ? (size_t)(end - v) : cap - 1;
    memcpy(out, v, len);
    out[len] = '\0';
    return 1;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    tg_stripe_result_t *r = arg;
    size_t len = size * n;
    char v[16];
    if (header_value(data, len, "Stripe-Should-Retry", v, sizeof(v)))
        r->should_retry = strcasecmp(v, "true") == 0 ? 1 : strcasecmp(v, "false") == 0 ? 0 : -1;
    else
        header_value(data, len, "Request-Id", r->request_id, sizeof(r->request_id));
    return len;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return atomic_load((const _Atomic int *)arg) != 0; /* non-zero: curl aborts the transfer */
}

/* Masks every copy of key in msg: its prefix ("sk_test_") stays, the rest becomes '*', in place
 * (the length does not change). The message is stored and shown to the owner; Stripe masks keys
 * in its own messages, and this does not rely on it. */
static void redact(char *msg, const char *key)
{
    size_t kl = strlen(key), keep = kl / 2 < 8 ? kl / 2 : 8;
    char *hit = msg;
    while (kl > 0 && (hit = strstr(hit, key)) != NULL) {
        memset(hit + keep, '*', kl - keep);
        hit += kl;
    }
}

/* Appends h to *list; on failure *list is unchanged (curl_slist_append returns NULL then and
 * the list would be lost, with the secret key in it). */
static int add_header(struct curl_slist **list, const char *h)
{
    struct curl_slist *n = curl_slist_append(*list, h);
    if (n == NULL)
        return -1;
    *list = n;
    return 0;
}

/* The list holds the secret key: each node's copy is wiped before it is freed. NULL-safe. */
static void wipe_headers(struct curl_slist *list)
{
    for (struct curl_slist *n = list; n != NULL; n = n->next)
        sodium_memzero(n->data, strlen(n->data));
    curl_slist_free_all(list);
}

/* The key may only hold printable ASCII without spaces: it goes into a header line. */
static int header_safe(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if (n >= max || (unsigned char)s[n] <= ' ' || (unsigned char)s[n] >= 0x7f)
            return 0;
    return n > 0;
}

int tg_stripe_call(const tg_stripe_settings_t *s, const char *method, const char *path, const char *form,
                   size_t form_len, const char *idempotency_key, tg_stripe_result_t *out, tg_err_t *err)
{
    memset(out, 0, sizeof(*out));
    out->should_retry = -1;
    out->outcome = TG_STRIPE_PERMANENT; /* a call refused before it is sent would fail the same again */
    int post = strcmp(method, "POST") == 0;
    if (!post && strcmp(method, "GET") != 0 && strcmp(method, "DELETE") != 0)
        return tg_errf(err, TG_EINVAL, "Stripe call: method %.16s is not GET, POST or DELETE", method);
    if (s->secret_key == NULL || !header_safe(s->secret_key, KEY_MAX))
        return tg_errf(err, TG_EINVAL, "Stripe call: no usable secret key");
    if (path[0] != '/' || !header_safe(path, 1024))
        return tg_errf(err, TG_EINVAL, "Stripe call: bad path \"%.64s\"", path);
    if (post && (idempotency_key == NULL || !header_safe(idempotency_key, TG_STRIPE_IDEMPOTENCY_KEY_MAX)))
        return tg_errf(err, TG_EINVAL, "Stripe call: POST %.64s without a valid Idempotency-Key", path);

    const char *base = s->api_base != NULL && s->api_base[0] != '\0' ? s->api_base : TG_STRIPE_API_BASE;
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    size_t ulen = blen + strlen(path) + (post ? 0 : form_len + 1) + 1;
    char *url = malloc(ulen);
    if (url == NULL) {
        out->outcome = TG_STRIPE_RETRY;
        return tg_errf(err, TG_ENOMEM, "out of memory calling Stripe");
    }
    if (!post && form_len > 0)
        snprintf(url, ulen, "%.*s%s?%.*s", (int)blen, base, path, (int)form_len, form);
    else
        snprintf(url, ulen, "%.*s%s", (int)blen, base, path);

    char auth[KEY_MAX + 32], idem[TG_STRIPE_IDEMPOTENCY_KEY_MAX + 32];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", s->secret_key);
    struct curl_slist *hdrs = NULL;
    int ok = add_header(&hdrs, auth) == 0;
    sodium_memzero(auth, sizeof(auth)); /* curl copied it */
    ok = ok && add_header(&hdrs, "Stripe-Version: " TG_STRIPE_VERSION) == 0;
    if (post) {
        snprintf(idem, sizeof(idem), "Idempotency-Key: %s", idempotency_key);
        ok = ok && add_header(&hdrs, idem) == 0 &&
             add_header(&hdrs, "Content-Type: application/x-www-form-urlencoded") == 0;
    }
    ok = ok && add_header(&hdrs, "Expect:") == 0; /* no "100-continue" round trip on larger bodies */
    CURL *h = ok ? curl_easy_init() : NULL;
    if (h == NULL) {
        wipe_headers(hdrs);
        free(url);
        out->outcome = TG_STRIPE_RETRY;
        return tg_errf(err, TG_ENOMEM, "out of memory calling Stripe");
    }
    body_buf_t body = {0};
    char curl_msg[CURL_ERROR_SIZE] = "";
    long timeout = s->timeout_ms > 0 ? s->timeout_ms : 30000;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout < 10000 ? timeout : 10000);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "tollgate (+stripe outbox)");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_msg);
    if (s->cancel != NULL) {
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)s->cancel);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    }
    if (post) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, form != NULL ? form : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(form != NULL ? form_len : 0));
    } else if (strcmp(method, "DELETE") == 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
    }
    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_cleanup(h);
    wipe_headers(hdrs);
    free(url);

    int transport = cc != CURLE_OK;
    if (transport) {
        out->status = 0; /* an answer cut short is no answer: the call may or may not have run */
        snprintf(out->message, sizeof(out->message), "%s %s: %s", method, path,
                 body.too_big          ? "the response was larger than 1 MiB"
                 : curl_msg[0] != '\0' ? curl_msg
                                       : curl_easy_strerror(cc));
    } else if (body.len > 0) {
        json_error_t je;
        out->body = json_loadb(body.p, body.len, 0, &je);
        if (json_is_object(out->body)) {
            copy_str(out->body, "id", out->id, sizeof(out->id));
            tg_stripe_parse_error(out->body, out);
            redact(out->message, s->secret_key);
        }
    }
    free(body.p);
    out->outcome = tg_stripe_classify(out->status, out->should_retry, transport, out->error_type);
    if (out->outcome == TG_STRIPE_OK) {
        if (!json_is_object(out->body)) {
            /* 2xx without a JSON object: not Stripe (a proxy's page?). Retry: the key replays. */
            out->outcome = TG_STRIPE_RETRY;
            snprintf(out->message, sizeof(out->message), "%s %s: HTTP %ld without a JSON object", method, path,
                     out->status);
            return tg_errf(err, TG_EIO, "%s", out->message);
        }
        return 0;
    }
    if (!transport && out->message[0] == '\0')
        snprintf(out->message, sizeof(out->message), "%s %s: HTTP %ld", method, path, out->status);
    if (!transport && out->error_type[0] != '\0')
        return tg_errf(err, out->outcome == TG_STRIPE_RETRY ? TG_EIO : TG_ESTATE, "Stripe %ld %s%s%s: %s", out->status,
                       out->error_type, out->error_code[0] ? "/" : "", out->error_code, out->message);
    return tg_errf(err, out->outcome == TG_STRIPE_RETRY ? TG_EIO : TG_ESTATE, "%s", out->message);
}
