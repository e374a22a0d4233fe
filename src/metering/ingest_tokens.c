/* ingest_tokens.c - see ingest_tokens.h. */
#include "metering/ingest_tokens.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "model/records.h"

static int name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= TG_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return 0;
    return 1;
}

int tg_ingest_token_create(const tg_ingest_tokens_ctx_t *x, const char *name, const char *customer_id, int64_t now_s,
                           tg_ingest_token_row_t *out, char secret[TG_INGEST_SECRET_BUF], tg_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (name == NULL || !name_ok(name))
        return tg_errf(err, TG_EINVAL, "name: required, 1 to %d bytes without control characters.", TG_NAME_MAX - 1);
    if (customer_id != NULL) {
        tg_customer_t c;
        tg_err_t e = {0};
        int rc = strlen(customer_id) < TG_ID_MAX ? tg_store_customer_get(x->store, customer_id, &c, &e) : TG_ENOTFOUND;
        if (rc == TG_ENOTFOUND)
            return tg_errf(err, TG_EINVAL, "customer: no customer %.*s.", TG_ID_MAX, customer_id);
        if (rc != 0)
            return tg_errf(err, rc, "Reading the customer failed: %s", e.msg);
        snprintf(out->customer_id, sizeof(out->customer_id), "%s", customer_id);
    }
    uint8_t raw[24], id_raw[12];
    char id_hex[sizeof(id_raw) * 2 + 1];
    randombytes_buf(raw, sizeof(raw));
    randombytes_buf(id_raw, sizeof(id_raw));
    sodium_bin2hex(id_hex, sizeof(id_hex), id_raw, sizeof(id_raw));
    snprintf(out->id, sizeof(out->id), "itk_%s", id_hex);
    size_t pre = sizeof(TG_INGEST_TOKEN_PREFIX) - 1;
    memcpy(secret, TG_INGEST_TOKEN_PREFIX, pre);
    sodium_bin2base64(secret + pre, TG_INGEST_SECRET_BUF - pre, raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
    snprintf(out->name, sizeof(out->name), "%s", name);
    snprintf(out->prefix, sizeof(out->prefix), "%.*s", (int)pre + 4, secret);
    tg_events_token_hash(x->key_secret, x->key_secret_len, secret, strlen(secret), out->hash);
    out->created_at = now_s;
    tg_err_t e = {0};
    int rc = tg_store_ingest_token_insert(x->store, out, &e);
    if (rc == 0 && x->events != NULL && tg_events_token_put(x->events, out) != 0) {
        /* not in force here: take it back rather than hand out a token that does not work */
        tg_store_ingest_token_set_revoked(x->store, out->id, now_s, &e);
        rc = tg_errf(&e, TG_ENOMEM, "out of memory");
    }
    if (rc != 0) {
        sodium_memzero(secret, TG_INGEST_SECRET_BUF);
        return tg_errf(err, rc, "Storing the ingest token failed: %s", e.msg);
    }
    return 0;
}

int tg_ingest_token_revoke(const tg_ingest_tokens_ctx_t *x, const char *id, int64_t now_s, tg_ingest_token_row_t *out,
                           tg_err_t *err)
{
    tg_err_t e = {0};
    int rc = tg_store_ingest_token_set_revoked(x->store, id, now_s, &e);
    if (rc == 0)
        rc = tg_store_ingest_token_get(x->store, id, out, &e);
    if (rc == TG_ENOTFOUND)
        return tg_errf(err, rc, "No ingest token %s.", id);
    if (rc != 0)
        return tg_errf(err, rc, "Revoking the ingest token failed: %s", e.msg);
    if (x->events != NULL)
        tg_events_token_put(x->events, out); /* a removal: cannot fail */
    return 0;
}
