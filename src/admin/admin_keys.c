/* admin_keys.c - the HTTP adapters of API keys: create (the secret is returned once), list,
 * revoke, rotate with a grace period. The rules are keys/keys.c's. */
#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/admin_int.h"
#include "billing/invoice.h"
#include "billing/pricing.h"
#include "gateway/apikey.h"
#include "metrics/metrics.h"
#include "util/clock.h"
#include "util/period.h"

/* ---- keys ---- */

json_t *tg_adm_key_json(tg_admin_t *a, const tg_key_t *k)
{
    int64_t last = tg_accounts_key_last_used(a->d.accounts, k->id);
    if (last < k->last_used_at)
        last = k->last_used_at;
    return json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:s}", "id", k->id, "customer", k->customer_id, "name", k->name,
                     "prefix", k->prefix, "created_at", tg_adm_json_time(k->created_at), "expires_at",
                     tg_adm_json_time(k->expires_at), "revoked_at", tg_adm_json_time(k->revoked_at), "last_used_at",
                     tg_adm_json_time(last), "status", tg_keys_status(k, tg_adm_now_s()));
}

void tg_adm_create_key(tg_admin_t *a, const tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    int bad = 0;
    const char *name = tg_adm_opt_string(body, "name", &bad), *mode = tg_adm_opt_string(body, "mode", &bad);
    if (bad || (mode != NULL && strcmp(mode, "live") != 0 && strcmp(mode, "test") != 0))
        tg_adm_reply_error(res, 400, "bad_request", "name must be a string and mode \"live\" or \"test\".");
    else if (name != NULL && strlen(name) >= TG_NAME_MAX)
        tg_adm_reply_error(res, 400, "bad_request", "name: at most %d characters.", TG_NAME_MAX - 1);
    else {
        tg_key_t k;
        char secret[TG_APIKEY_BUF] = "";
        tg_err_t err = {0};
        int rc = tg_keys_create(&a->keys, c->id, name, mode == NULL || strcmp(mode, "live") == 0, &k, secret, &err);
        if (rc != 0) {
            tg_adm_reply_svc_error(res, rc, &err);
        } else {
            json_t *j = tg_adm_key_json(a, &k);
            json_object_set_new(j, "secret", json_string(secret));
            tg_adm_reply_json(res, 201, j);
        }
        sodium_memzero(secret, sizeof(secret));
    }
    json_decref(body);
}

int tg_adm_list_key_cb(const tg_key_t *k, void *arg)
{
    tg_adm_list_ctx_t *lc = arg;
    json_array_append_new(lc->arr, tg_adm_key_json(lc->a, k));
    return 0;
}

int tg_adm_load_key(tg_admin_t *a, const tg_adm_segs_t *s, size_t idx, tg_key_t *k, tg_admin_response_t *res)
{
    char id[TG_ID_MAX];
    tg_err_t err = {0};
    if (tg_adm_seg_copy(s, idx, id, sizeof(id)) != 0) {
        tg_adm_reply_error(res, 404, "not_found", "No such key.");
        return -1;
    }
    int rc = tg_store_key_get(a->d.store, id, k, &err);
    if (rc == TG_ENOTFOUND) {
        tg_adm_reply_error(res, 404, "not_found", "No key %s.", id);
        return -1;
    }
    if (rc != 0) {
        tg_adm_reply_error(res, 500, "internal_error", "Reading the key failed: %s", err.msg);
        return -1;
    }
    return 0;
}

void tg_adm_revoke_key(tg_admin_t *a, tg_key_t *k, tg_admin_response_t *res)
{
    tg_err_t err = {0};
    int rc = tg_keys_revoke(&a->keys, k, &err);
    if (rc != 0)
        tg_adm_reply_svc_error(res, rc, &err);
    else
        tg_adm_reply_json(res, 200, tg_adm_key_json(a, k));
}

void tg_adm_rotate_key(tg_admin_t *a, tg_key_t *old, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    json_t *g = json_object_get(body, "grace_seconds");
    if (g != NULL && (!json_is_integer(g) || json_integer_value(g) < 0 || json_integer_value(g) > 31536000)) {
        tg_adm_reply_error(res, 400, "bad_request", "grace_seconds: an integer from 0 to 31536000.");
    } else {
        tg_err_t err = {0};
        tg_key_t k;
        char secret[TG_APIKEY_BUF] = "";
        int rc = tg_keys_rotate(&a->keys, old, g != NULL ? json_integer_value(g) : -1, &k, secret, &err);
        if (rc != 0) {
            tg_adm_reply_svc_error(res, rc, &err);
        } else {
            json_t *j = tg_adm_key_json(a, &k);
            json_object_set_new(j, "secret", json_string(secret));
            json_object_set_new(j, "replaces", json_string(old->id));
            json_object_set_new(j, "old_key_expires_at", tg_adm_json_time(old->expires_at));
            tg_adm_reply_json(res, 201, j);
        }
        sodium_memzero(secret, sizeof(secret));
    }
    json_decref(body);
}
