/* customers.h - test support: a customer with one live API key, written to the store and to
 * the in-memory directory the gateway reads, as the admin API does. Used by the gateway's unit
 * tests and its fuzz target. */
#ifndef TG_TEST_CUSTOMERS_H
#define TG_TEST_CUSTOMERS_H

#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "gateway/accounts.h"
#include "gateway/apikey.h"
#include "store/store.h"
#include "util/clock.h"

/* Customer `id` (email id@example.com) on `plan` with `status`, and key "key_<id>" whose secret
 * goes to key_out. 0, or the store's or directory's error. */
static inline int tg_test_add_customer(const tg_config_t *cfg, tg_store_t *st, tg_accounts_t *acc, const char *id,
                                       const char *plan, const char *status, char key_out[TG_APIKEY_BUF], tg_err_t *err)
{
    tg_customer_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.id, sizeof(c.id), "%s", id);
    snprintf(c.email, sizeof(c.email), "%s@example.com", id);
    snprintf(c.plan_id, sizeof(c.plan_id), "%s", plan);
    snprintf(c.status, sizeof(c.status), "%s", status);
    c.created_at = c.anchor_at = tg_clock_now_ns() / TG_NS_PER_SEC - 10;
    tg_key_t k;
    memset(&k, 0, sizeof(k));
    tg_apikey_generate(1, key_out);
    snprintf(k.id, sizeof(k.id), "key_%s", id);
    snprintf(k.customer_id, sizeof(k.customer_id), "%s", id);
    tg_apikey_hash((const uint8_t *)cfg->keys.secret, strlen(cfg->keys.secret), key_out, strlen(key_out), k.hash);
    k.created_at = c.created_at;
    int rc;
    if ((rc = tg_store_customer_insert(st, &c, err)) != 0 || (rc = tg_accounts_put_customer(acc, &c, err)) != 0 ||
        (rc = tg_store_key_insert(st, &k, err)) != 0 || (rc = tg_accounts_put_key(acc, &k, err)) != 0)
        return rc;
    return 0;
}

#endif
