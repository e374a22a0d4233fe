/* fuzz_admin.c - the admin API, the public plan and quote routes and the developer portal's
 * JSON API against arbitrary requests (libFuzzer), on a real SQLite store.
 *
 * Input: the first byte's bit 0 adds the admin token; then "METHOD PATH[?QUERY]" up to the
 * first newline; the rest is the body. Properties: every request gets a status from 200 to
 * 599; a JSON answer parses, and an error answer carries a string error.type and message;
 * nothing leaks or reads out of bounds (ASan, UBSan). State builds up over a run (customers,
 * keys, sessions), so later inputs meet a populated store. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin_api.h"
#include "fuzz_support.h"

#define ADMIN_TOKEN "fuzz-admin-token-0123456789"
#define KEY_SECRET "fuzz-key-secret-0123456789abcdef0123"

static const char *yaml = "upstream: {url: \"http://127.0.0.1:9\"}\n"
                          "admin: {token: \"" ADMIN_TOKEN "\"}\n"
                          "keys: {secret: \"" KEY_SECRET "\"}\n"
                          "plans:\n"
                          "  free: {price: \"0\", rate_limit: 10/min, included: {api_calls: 1000}, on_quota: block,"
                          " endpoints: [\"/v1/basic/*\"]}\n"
                          "  pro: {price: \"199\", trial_days: 14, included: {api_calls: 500000}, on_quota: bill,"
                          " charges: [{metric: api_calls, model: per_unit, unit_price: \"0.0005\"}]}\n";

static tg_admin_t *admin;

/* The objects live as long as the process, as in the server. */
static void setup(void)
{
    char url[128], errbuf[2048];
    fuzz_temp_db("admin", url, sizeof(url));
    static tg_config_t *cfg;
    tg_store_t *st = NULL;
    tg_accounts_t *accounts;
    tg_quota_t *quota;
    tg_meter_t *meter = NULL;
    tg_err_t err = {0};
    if (tg_config_load_string("fuzz.yaml", yaml, strlen(yaml), &cfg, errbuf, sizeof(errbuf)) != 0 ||
        tg_store_open(url, &st, &err) != 0 || tg_store_migrate(st, &err) != 0 ||
        (accounts = tg_accounts_new(cfg)) == NULL || (quota = tg_quota_new()) == NULL ||
        tg_accounts_load(accounts, st, &err) != 0 || tg_meter_start(url, 0, 5, &meter, &err) != 0) {
        fprintf(stderr, "fuzz_admin: setup: %s%s\n", errbuf, err.msg);
        abort();
    }
    tg_admin_deps_t d = {.cfg = cfg, .store = st, .accounts = accounts, .quota = quota, .meter = meter,
                         .key_secret = (const uint8_t *)KEY_SECRET, .key_secret_len = strlen(KEY_SECRET)};
    if ((admin = tg_admin_new(&d)) == NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (admin == NULL)
        setup();
    if (size < 2)
        return 0;
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *line_end = nl != NULL ? nl : end;
    const char *sp = memchr(p, ' ', (size_t)(line_end - p));
    if (sp == NULL)
        return 0;
    tg_admin_request_t r = {0};
    r.method = p;
    r.method_len = (size_t)(sp - p);
    r.path = sp + 1;
    const char *q = memchr(r.path, '?', (size_t)(line_end - r.path));
    r.path_len = (size_t)((q != NULL ? q : line_end) - r.path);
    if (q != NULL) {
        r.query = q + 1;
        r.query_len = (size_t)(line_end - q - 1);
    }
    if (data[0] & 1) {
        r.authorization = "Bearer " ADMIN_TOKEN;
        r.authorization_len = strlen(r.authorization);
    }
    if (nl != NULL) {
        r.body = nl + 1;
        r.body_len = (size_t)(end - nl - 1);
    }
    snprintf(r.remote_addr, sizeof(r.remote_addr), "127.0.0.%d", data[0] >> 1);
    tg_admin_response_t res = {0};
    tg_admin_handle(admin, &r, &res);
    if (res.slow != NULL) { /* what the hash workers and the back thread do, in line here */
        tg_admin_slow_t *slow = res.slow;
        tg_admin_slow_run(slow);
        tg_admin_slow_finish(admin, slow, 1, &res);
    }
    if (res.status < 200 || res.status > 599)
        abort();
    if (res.content_type != NULL && strncmp(res.content_type, "application/json", 16) == 0) {
        json_error_t jerr;
        json_t *j = json_loadb(res.body, res.body_len, 0, &jerr);
        if (j == NULL)
            abort();
        if (res.status >= 400) {
            json_t *e = json_object_get(j, "error");
            if (!json_is_string(json_object_get(e, "type")) || !json_is_string(json_object_get(e, "message")))
                abort();
        }
        json_decref(j);
    }
    free(res.body);
    return 0;
}
