/* keys.c - see keys.h: the API key rules, called by the admin API and portal adapters. */
#include "keys/keys.h"

#include <jansson.h>
#include <sodium.h>
#include <time.h>
#include <stdio.h>
#include <string.h>

#include "notify/events.h"
#include "store/store.h"
#include "util/clock.h"

static int64_t now_s(const tg_keys_ctx_t *x)
{
    return x->now_s != NULL ? x->now_s() : tg_clock_now_ns() / TG_NS_PER_SEC;
}

static int put_key(const tg_keys_ctx_t *x, const tg_key_t *k, tg_err_t *err)
{
    return x->accounts != NULL ? tg_accounts_put_key(x->accounts, k, err) : 0;
}

const char *tg_keys_status(const tg_key_t *k, int64_t now)
{
    if (k->revoked_at != 0 && k->revoked_at <= now)
        return "revoked";
    if (k->expires_at != 0 && k->expires_at <= now)
        return "expired";
    if (k->expires_at != 0)
        return "expiring";
    return "active";
}

int tg_keys_room(const tg_keys_ctx_t *x, const char *customer_id, int replacing, tg_err_t *err)
{
    uint64_t n = 0, cap = x->cfg->keys.max_active_per_customer;
    tg_err_t e = {0};
    int rc = tg_store_key_count_active(x->store, customer_id, now_s(x), &n, &e);
    if (rc != 0)
        return tg_errf(err, rc, "Counting the keys failed: %s", e.msg);
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

/* key.created / key.rotated / key.revoked for k (replaces: the rotated key, or NULL), in the
 * caller's transaction or savepoint. */
static int key_event(const tg_keys_ctx_t *x, const char *type, const tg_key_t *k, const tg_key_t *replaces,
                     int first_key, tg_err_t *err)
{
    char expires[32] = "";
    if (replaces != NULL && replaces->expires_at != 0) {
        time_t t = (time_t)replaces->expires_at;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(expires, sizeof(expires), "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    json_t *data = json_pack("{s:s,s:s,s:s,s:s}", "key_id", k->id, "name", k->name, "prefix", k->prefix, "mode",
                             strncmp(k->prefix, "tg_live_", 8) == 0 ? "live" : "test");
    if (data == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory");
    if (strcmp(type, TG_EVENT_KEY_CREATED) == 0) /* the sign-up's own: the customer is looking at it */
        json_object_set_new(data, "first_key", json_boolean(first_key));
    if (replaces != NULL) {
        json_object_set_new(data, "replaces_key_id", json_string(replaces->id));
        json_object_set_new(data, "replaced_key_expires_at", expires[0] != '\0' ? json_string(expires) : json_null());
    }
    int rc = tg_event_emit(x->store, type, k->customer_id, data, NULL, err);
    json_decref(data);
    return rc;
}

/* emit_created: 0 no key.created (a rotation tells its own event), 1 key.created, 2 key.created
 * for a new customer's first key (first_key: true in its data). */
static int issue(const tg_keys_ctx_t *x, const char *customer_id, const char *name, int live, tg_key_t *k,
                 char secret[TG_APIKEY_BUF], int emit_created, tg_err_t *err);

int tg_keys_issue(const tg_keys_ctx_t *x, const char *customer_id, const char *name, int live, tg_key_t *k,
                  char secret[TG_APIKEY_BUF], tg_err_t *err)
{
    return issue(x, customer_id, name, live, k, secret, 2, err);
}

static int issue(const tg_keys_ctx_t *x, const char *customer_id, const char *name, int live, tg_key_t *k,
                 char secret[TG_APIKEY_BUF], int emit_created, tg_err_t *err)
{
    memset(k, 0, sizeof(*k));
    if (name != NULL && strlen(name) >= sizeof(k->name))
        return tg_errf(err, TG_EINVAL, "name: at most %d characters.", (int)sizeof(k->name) - 1);
    tg_apikey_generate(live, secret);
    uint8_t raw[12];
    char hex[sizeof(raw) * 2 + 1];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
    snprintf(k->id, sizeof(k->id), "key_%s", hex);
    snprintf(k->customer_id, sizeof(k->customer_id), "%s", customer_id);
    snprintf(k->name, sizeof(k->name), "%s", name != NULL ? name : "");
    tg_apikey_hash(x->key_secret, x->key_secret_len, secret, strlen(secret), k->hash);
    tg_apikey_prefix(secret, strlen(secret), k->prefix, sizeof(k->prefix));
    k->created_at = now_s(x);
    tg_err_t e = {0};
    /* the key and its key.created event commit together */
    int rc = tg_store_savepoint(x->store, "tg_key_issue", &e);
    if (rc == 0) {
        rc = tg_store_key_insert(x->store, k, &e);
        if (rc == 0 && emit_created)
            rc = key_event(x, TG_EVENT_KEY_CREATED, k, NULL, emit_created == 2, &e);
        if (rc == 0)
            rc = tg_store_savepoint_release(x->store, "tg_key_issue", &e);
        else
            tg_store_savepoint_rollback(x->store, "tg_key_issue");
    }
    if (rc == 0)
        rc = put_key(x, k, &e);
    if (rc != 0) {
        sodium_memzero(secret, TG_APIKEY_BUF);
        return tg_errf(err, rc, "Storing the key failed: %s", e.msg);
    }
    tg_event_wake();
    return 0;
}

int tg_keys_create(const tg_keys_ctx_t *x, const char *customer_id, const char *name, int live, tg_key_t *k,
                   char secret[TG_APIKEY_BUF], tg_err_t *err)
{
    int rc = tg_keys_room(x, customer_id, 0, err);
    return rc != 0 ? rc : issue(x, customer_id, name, live, k, secret, 1, err);
}

int tg_keys_revoke(const tg_keys_ctx_t *x, tg_key_t *k, tg_err_t *err)
{
    if (k->revoked_at != 0)
        return 0;
    tg_err_t e = {0};
    k->revoked_at = now_s(x);
    int rc = tg_store_savepoint(x->store, "tg_key_revoke", &e);
    if (rc == 0) {
        rc = tg_store_key_set_revoked(x->store, k->id, k->revoked_at, &e);
        if (rc == 0)
            rc = key_event(x, TG_EVENT_KEY_REVOKED, k, NULL, 0, &e);
        if (rc == 0)
            rc = tg_store_savepoint_release(x->store, "tg_key_revoke", &e);
        else
            tg_store_savepoint_rollback(x->store, "tg_key_revoke");
    }
    if (rc == 0)
        rc = put_key(x, k, &e);
    if (rc != 0) {
        k->revoked_at = 0;
        return tg_errf(err, rc, "Revoking the key failed: %s", e.msg);
    }
    tg_event_wake();
    return 0;
}

/* The replacing key's name: the old key's, without an earlier " (rotated DATE)", plus
 * " (rotated DATE)" (UTC), so the old key in its grace period and its replacement are told apart
 * and repeated rotations do not stack suffixes. The base is cut to fit the name's size. */
static void rotated_name(const char *old, int64_t now, char out[TG_NAME_MAX])
{
    static const char tag[] = " (rotated ";
    size_t n = strlen(old);
    const char *t = strstr(old, tag);
    for (const char *q = t; q != NULL; q = strstr(q + 1, tag))
        t = q;
    if (t != NULL && n > 0 && old[n - 1] == ')' && (size_t)(old + n - t) == sizeof(tag) - 1 + 10 + 1)
        n = (size_t)(t - old);
    char date[16];
    time_t tt = (time_t)now;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(date, sizeof(date), "%Y-%m-%d", &tm);
    size_t room = TG_NAME_MAX - 1 - (n > 0 ? sizeof(tag) - 1 : sizeof("rotated ") - 1) - strlen(date) - (n > 0 ? 1 : 0);
    if (n > room)
        n = room;
    if (n > 0)
        snprintf(out, TG_NAME_MAX, "%.*s%s%s)", (int)n, old, tag, date);
    else
        snprintf(out, TG_NAME_MAX, "rotated %s", date);
}

int tg_keys_rotate(const tg_keys_ctx_t *x, tg_key_t *old, int64_t grace_s, tg_key_t *k, char secret[TG_APIKEY_BUF],
                   tg_err_t *err)
{
    int64_t now = now_s(x);
    const char *st = tg_keys_status(old, now);
    if (strcmp(st, "revoked") == 0 || strcmp(st, "expired") == 0)
        return tg_errf(err, TG_ESTATE, "Key %s is %s; only a working key can be rotated.", old->id, st);
    if (grace_s < 0)
        grace_s = x->cfg->admin.key_grace_seconds;
    int live = strncmp(old->prefix, "tg_live_", 8) == 0, rc;
    /* Checked before the old key is touched: a refused rotation changes nothing. */
    if ((rc = tg_keys_room(x, old->customer_id, 1, err)) != 0)
        return rc;
    int64_t expires = now + grace_s;
    char name[TG_NAME_MAX];
    rotated_name(old->name, now, name);
    if (old->expires_at == 0 || old->expires_at > expires)
        old->expires_at = expires;
    tg_err_t e = {0};
    /* the old key's expiry, the new key and key.rotated commit together */
    if ((rc = tg_store_savepoint(x->store, "tg_key_rotate", &e)) != 0)
        return tg_errf(err, rc, "Rotating the key failed: %s", e.msg);
    if ((rc = tg_store_key_set_expires(x->store, old->id, old->expires_at, &e)) == 0 &&
        (rc = issue(x, old->customer_id, name, live, k, secret, 0, &e)) == 0 &&
        (rc = key_event(x, TG_EVENT_KEY_ROTATED, k, old, 0, &e)) == 0)
        rc = tg_store_savepoint_release(x->store, "tg_key_rotate", &e);
    else
        tg_store_savepoint_rollback(x->store, "tg_key_rotate");
    if (rc == 0)
        rc = put_key(x, old, &e);
    if (rc != 0) {
        sodium_memzero(secret, TG_APIKEY_BUF);
        return tg_errf(err, rc, "Rotating the key failed: %s", e.msg);
    }
    return 0;
}
