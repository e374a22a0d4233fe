/* fuzz_gateway.c - the gateway's decision on arbitrary requests (libFuzzer): key extraction and
 * format check, authentication, plan endpoints, routes, rate limit and quota, then settling
 * with an arbitrary upstream status and Tollgate-Units header. Real config, directory, limiter,
 * quota and meter (on a temporary SQLite file).
 *
 * Input: byte 0 picks the key (none, one of three real customers' - free, pro, suspended - or
 * the input's own text) and the header it goes in; byte 1 the upstream status; then
 * "METHOD PATH" up to a newline, the fuzzed key up to the next, and the Tollgate-Units value.
 * Properties: a refusal has a known status and type, a message that is valid UTF-8 and a JSON
 * body that parses with it; an admitted call has a terminated endpoint label; response header
 * values never hold CR, LF or NUL; settling returns 0 or 1. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/accounts.h"
#include "gateway/apikey.h"
#include "gateway/gateway.h"
#include "limits/limiter.h"
#include "store/store.h"
#include "util/clock.h"

#include "../support/customers.h"
#include "fuzz_support.h"

#define SECRET "fuzz-key-secret-0123456789abcdef0123"

static const char *yaml =
    "upstream: {url: \"http://127.0.0.1:9\"}\n"
    "admin: {token: \"fuzz-admin-token-0123456789\"}\n"
    "keys: {secret: \"" SECRET "\"}\n"
    "plans:\n"
    "  free: {price: \"0\", rate_limit: 100/sec, burst: 50, endpoints: [\"/v1/basic/*\", \"/v1/x\"],"
    " included: {api_calls: 100000}, on_quota: block}\n"
    "  pro: {price: \"199\", rate_limit: 1000/sec, burst: 1000, included: {api_calls: 2},"
    " on_quota: \"throttle:10/sec\"}\n"
    "routes:\n"
    "  - {match: \"POST /v1/vision/*\", weight: 10, meter: {api_calls: 1, images: 1}}\n"
    "  - {match: \"GET /v1/basic/*\", weight: 2}\n";

static tg_gateway_t *gw;
static char keys[3][TG_APIKEY_BUF];

/* The objects live as long as the process, as in the server. */
static void setup(void)
{
    char url[128], errbuf[2048];
    fuzz_temp_db("gateway", url, sizeof(url));
    tg_config_t *cfg;
    static tg_store_t *st; /* kept: the test customers' rows are written with it */
    tg_accounts_t *acc;
    tg_limiter_t *lim;
    tg_quota_t *quota;
    tg_meter_t *meter;
    tg_err_t err = {0};
    if (tg_config_load_string("fuzz.yaml", yaml, strlen(yaml), &cfg, errbuf, sizeof(errbuf)) != 0 ||
        tg_store_open(url, &st, &err) != 0 || tg_store_migrate(st, &err) != 0 || (acc = tg_accounts_new(cfg)) == NULL ||
        (lim = tg_limiter_local_new()) == NULL || (quota = tg_quota_new()) == NULL ||
        tg_meter_start(url, 0, 5, &meter, &err) != 0) {
        fprintf(stderr, "fuzz_gateway: setup: %s%s\n", errbuf, err.msg);
        abort();
    }
    if (tg_test_add_customer(cfg, st, acc, "cus_free", "free", "active", keys[0], &err) != 0 ||
        tg_test_add_customer(cfg, st, acc, "cus_pro", "pro", "active", keys[1], &err) != 0 ||
        tg_test_add_customer(cfg, st, acc, "cus_suspended", "free", "suspended", keys[2], &err) != 0) {
        fprintf(stderr, "fuzz_gateway: %s\n", err.msg);
        abort();
    }
    tg_gateway_deps_t d = {.cfg = cfg, .accounts = acc, .limiter = lim, .quota = quota, .meter = meter};
    if ((gw = tg_gateway_new(&d, (const uint8_t *)SECRET, strlen(SECRET))) == NULL)
        abort();
}

/* The call's headers: each listed once at most, in TG_CALL_HEADERS' order, with a value inside
 * the text buffer that holds no CR, LF or NUL (they become response headers). */
static void check_headers(const tg_call_t *call, const tg_refusal_t *refusal)
{
    char text[TG_CALL_HEADERS_TEXT_MAX];
    tg_call_headers_t h;
    tg_gateway_headers(call, refusal, text, &h);
    if (h.n > TG_CALL_HEADER_COUNT)
        abort();
    for (size_t k = 0; k < h.n; k++) {
        const char *value = h.list[k].value;
        size_t len = h.list[k].value_len;
        if ((unsigned)h.list[k].which >= TG_CALL_HEADER_COUNT || (k > 0 && h.list[k].which <= h.list[k - 1].which) ||
            len == 0 || value < text || value + len > text + sizeof(text))
            abort();
        for (size_t i = 0; i < len; i++)
            if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0')
                abort();
    }
}

/* Splits off the text up to the next newline (or the end). */
static const char *next_line(const char **p, const char *end, size_t *len)
{
    const char *start = *p, *nl = memchr(start, '\n', (size_t)(end - start));
    *len = (size_t)((nl != NULL ? nl : end) - start);
    *p = nl != NULL ? nl + 1 : end;
    return start;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (gw == NULL)
        setup();
    if (size < 3)
        return 0;
    int which = data[0] % 5, x_api_key = data[0] & 0x80;
    int status = 100 + data[1] % 500;
    const char *p = (const char *)data + 2, *end = (const char *)data + size;
    size_t line_len, key_len, units_len;
    const char *line = next_line(&p, end, &line_len);
    const char *fkey = next_line(&p, end, &key_len);
    const char *units = next_line(&p, end, &units_len);
    const char *sp = memchr(line, ' ', line_len);
    if (sp == NULL)
        return 0;
    const char *key = which == 0 ? NULL : which == 4 ? fkey : keys[which - 1];
    size_t klen = which == 0 ? 0 : which == 4 ? key_len : strlen(key);
    char auth[512];
    tg_call_request_t rq = {.method = line, .method_len = (size_t)(sp - line), .path = sp + 1,
                            .path_len = (size_t)(line + line_len - sp - 1)};
    if (key != NULL && x_api_key) {
        rq.api_key = key;
        rq.api_key_len = klen;
    } else if (key != NULL && klen < sizeof(auth) - 8) {
        memcpy(auth, "Bearer ", 7);
        memcpy(auth + 7, key, klen);
        rq.authorization = auth;
        rq.authorization_len = 7 + klen;
    }
    tg_call_t call;
    tg_refusal_t r;
    int ok = tg_gateway_admit(gw, &rq, &call, &r);
    if (ok == 0) {
        if ((r.status != 401 && r.status != 402 && r.status != 403 && r.status != 429 && r.status != 503) ||
            r.type == NULL)
            abort();
        json_t *m = json_string(r.message); /* NULL if the message is not valid UTF-8 */
        if (m == NULL)
            abort();
        json_decref(m);
        char body[TG_ERROR_JSON_MAX];
        size_t n = tg_gateway_error_json(r.type, r.message, body, sizeof(body));
        json_t *j = json_loadb(body, n, 0, NULL);
        if (j == NULL || !json_is_string(json_object_get(json_object_get(j, "error"), "message")))
            abort();
        json_decref(j);
        if (call.account != NULL)
            check_headers(&call, &r);
        return 0;
    }
    if (ok != 1 || memchr(call.endpoint, '\0', sizeof(call.endpoint)) == NULL)
        abort();
    int billed = tg_gateway_settle(gw, &call, status, data[1] & 1 ? 0 : 1, units, units_len, NULL, NULL);
    if (billed != 0 && billed != 1)
        abort();
    check_headers(&call, NULL);
    return 0;
}
