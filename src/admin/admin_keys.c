/* admin_keys.c - API keys: issue (the secret is returned once), list, revoke, rotate with a grace
 * period. The store is written first, then the in-memory directory the gateway reads. */
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

const char *tg_adm_key_status(const tg_key_t *k, int64_t now)
{
    if (k->revoked_at != 0 && k->revoked_at <= now)
        return "revoked";
    if (k->expires_at != 0 && k->expires_at <= now)
        return "expired";
    if (k->expires_at != 0)
        return "expiring";
    return "active";
}

json_t *tg_adm_key_json(tg_admin_t *a, const tg_key_t *k)
{
    int64_t last = tg_accounts_key_last_used(a->d.accounts, k->id);
    if (last < k->last_used_at)
        last = k->last_used_at;
    return json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:s}", "id", k->id, "customer", k->customer_id, "name", k->name,
                     "prefix", k->prefix, "created_at", tg_adm_json_time(k->created_at), "expires_at",
                     tg_adm_json_time(k->expires_at), "revoked_at", tg_adm_json_time(k->revoked_at), "last_used_at",
                     tg_adm_json_time(last), "status", tg_adm_key_status(k, tg_adm_now_s()));
}

/* Creates and stores a key for customer; fills *k and the secret (caller wipes it). */
int tg_adm_issue_key(tg_admin_t *a, const char *customer_id, const char *name, int live, tg_key_t *k,
                     char secret[TG_APIKEY_BUF], tg_err_t *err)
{
    memset(k, 0, sizeof(*k));
    tg_apikey_generate(live, secret);
    tg_adm_random_id("key_", k->id, sizeof(k->id));
    snprintf(k->customer_id, sizeof(k->customer_id), "%s", customer_id);
    snprintf(k->name, sizeof(k->name), "%s", name != NULL ? name : "");
    tg_apikey_hash(a->d.key_secret, a->d.key_secret_len, secret, strlen(secret), k->hash);
    tg_apikey_prefix(secret, strlen(secret), k->prefix, sizeof(k->prefix));
    k->created_at = tg_adm_now_s();
    int rc = tg_store_key_insert(a->d.store, k, err);
    if (rc == 0)
        rc = tg_accounts_put_key(a->d.accounts, k, err);
    return rc;
}

int tg_adm_key_room(tg_admin_t *a, const char *customer_id, int replacing, tg_err_t *err)
{
    uint64_t n = 0, cap = a->d.cfg->keys.max_active_per_customer;
    int rc = tg_store_key_count_active(a->d.store, customer_id, tg_adm_now_s(), &n, err);
    if (rc != 0)
        return rc;
    if (n < cap + (replacing ? 1 : 0))
        return 0;
    if (replacing)
        return tg_errf(err, TG_ELIMIT,
                       "Customer %s has %llu working keys, the most allowed (%llu) plus one being replaced; wait "
                       "for a rotated key's grace period to end, or revoke a key, then rotate.",
                       customer_id, (unsigned long long)n, (unsigned long long)cap);
    return tg_errf(err, TG_ELIMIT,
                   "Customer %s has %llu working keys, the most allowed (%llu); revoke one to create another.",
                   customer_id, (unsigned long long)n, (unsigned long long)cap);
}

/* A refused key: over the cap is the client's (409), anything else the server's. */
static void reply_key_error(tg_admin_response_t *res, int rc, const char *doing, const tg_err_t *err)
{
    if (rc == TG_ELIMIT)
        tg_adm_reply_error(res, 409, "key_limit_reached", "%s", err->msg);
    else
        tg_adm_reply_error(res, 500, "internal_error", "%s failed: %s", doing, err->msg);
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
        int rc = tg_adm_key_room(a, c->id, 0, &err);
        if (rc == 0)
            rc = tg_adm_issue_key(a, c->id, name, mode == NULL || strcmp(mode, "live") == 0, &k, secret, &err);
        if (rc != 0) {
            reply_key_error(res, rc, "Storing the key", &err);
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
    if (k->revoked_at == 0) {
        k->revoked_at = tg_adm_now_s();
        if (tg_store_key_set_revoked(a->d.store, k->id, k->revoked_at, &err) != 0 ||
            tg_accounts_put_key(a->d.accounts, k, &err) != 0) {
            tg_adm_reply_error(res, 500, "internal_error", "Revoking the key failed: %s", err.msg);
            return;
        }
    }
    tg_adm_reply_json(res, 200, tg_adm_key_json(a, k));
}

void tg_adm_rotate_key(tg_admin_t *a, tg_key_t *old, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    json_t *g = json_object_get(body, "grace_seconds");
    int64_t grace = a->d.cfg->admin.key_grace_seconds;
    int64_t now = tg_adm_now_s();
    if (g != NULL && (!json_is_integer(g) || json_integer_value(g) < 0 || json_integer_value(g) > 31536000)) {
        tg_adm_reply_error(res, 400, "bad_request", "grace_seconds: an integer from 0 to 31536000.");
    } else if (strcmp(tg_adm_key_status(old, now), "revoked") == 0 || strcmp(tg_adm_key_status(old, now), "expired") == 0) {
        tg_adm_reply_error(res, 409, "conflict", "Key %s is %s; only a working key can be rotated.", old->id,
                    tg_adm_key_status(old, now));
    } else {
        if (g != NULL)
            grace = json_integer_value(g);
        tg_err_t err = {0};
        tg_key_t k;
        char secret[TG_APIKEY_BUF] = "";
        int64_t expires = now + grace;
        int live = strncmp(old->prefix, "tg_live_", 8) == 0, rc;
        /* Checked before the old key is touched: a refused rotation changes nothing. */
        if ((rc = tg_adm_key_room(a, old->customer_id, 1, &err)) == 0) {
            if (old->expires_at == 0 || old->expires_at > expires)
                old->expires_at = expires;
            if ((rc = tg_store_key_set_expires(a->d.store, old->id, old->expires_at, &err)) == 0 &&
                (rc = tg_accounts_put_key(a->d.accounts, old, &err)) == 0)
                rc = tg_adm_issue_key(a, old->customer_id, old->name, live, &k, secret, &err);
        }
        if (rc != 0) {
            reply_key_error(res, rc, "Rotating the key", &err);
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

