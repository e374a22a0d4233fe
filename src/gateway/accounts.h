/* accounts.h - the in-memory directory the gateway decides from: customers and their API keys.
 *
 * The store is the durable truth; this directory is its hot copy, loaded at start and updated by
 * the admin thread right after each store write, so the request path never touches the disk.
 * Readers (gateway event loops) take a read lock only for the key lookup; per-customer fields
 * that change at run time (plan, status, key revocation) are atomics, so a plan change or a
 * revocation is seen by the very next request on every thread.
 * Accounts are never freed while the directory lives, so a tg_account_t pointer obtained from
 * tg_accounts_authenticate stays valid until tg_accounts_free (at shutdown). */
#ifndef TG_ACCOUNTS_H
#define TG_ACCOUNTS_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "model/records.h"

typedef struct tg_store tg_store_t; /* a connection (store/store.h) */

typedef struct tg_accounts tg_accounts_t;
typedef struct tg_account tg_account_t;

typedef enum tg_account_status {
    TG_ACCT_ACTIVE = 0,
    TG_ACCT_TRIALING = 1,
    TG_ACCT_PAST_DUE = 2,
    TG_ACCT_SUSPENDED = 3,
    TG_ACCT_CANCELED = 4,
    TG_ACCT_INCOMPLETE = 5, /* a requires_payment_method plan waiting for its card: keys refused */
} tg_account_status_t;

typedef enum tg_auth_result {
    TG_AUTH_OK = 0,
    TG_AUTH_UNKNOWN = 1,
    TG_AUTH_REVOKED = 2,
    TG_AUTH_EXPIRED = 3,
} tg_auth_result_t;

typedef struct tg_auth {
    tg_auth_result_t result;
    tg_account_t *account;   /* set when result is TG_AUTH_OK */
    char key_id[TG_ID_MAX];
} tg_auth_t;

/* cfg must outlive the directory (plans are referenced, not copied); see tg_accounts_rebind. */
tg_accounts_t *tg_accounts_new(const tg_config_t *cfg);
void tg_accounts_free(tg_accounts_t *a);

/* Called on the thread of tg_accounts_put_customer, after the directory is updated and no lock
 * is held, when an existing customer's plan changes: the gateway converts the customer's rate
 * limiter state to the new plan's rate at that moment (tg_limiter_repolicy). One listener; cb
 * NULL removes it. Set it before the directory is shared between threads. */
typedef void (*tg_plan_changed_cb)(const tg_account_t *acct, const tg_plan_t *from, const tg_plan_t *to, void *arg);
void tg_accounts_on_plan_change(tg_accounts_t *a, tg_plan_changed_cb cb, void *arg);

/* Loads every customer and key from the store. Admin thread / start-up only. */
int tg_accounts_load(tg_accounts_t *a, tg_store_t *st, tg_err_t *err);

/* Adds a customer or updates its plan, status and trial end. TG_EINVAL for an unknown plan. */
int tg_accounts_put_customer(tg_accounts_t *a, const tg_customer_t *c, tg_err_t *err);
/* A reload: points every customer at the plan of the same id in `next`, and looks plans up in
 * next from now on. Refused with TG_ESTATE, nothing changed, when a customer's plan is not in
 * next, or is there with another interval or currency (which would split or reprice a period
 * already partly used); the message names each such plan and how many customers are on it.
 * next must outlive the directory. Thread-safe (takes the write lock). */
int tg_accounts_rebind(tg_accounts_t *a, const tg_config_t *next, tg_err_t *err);
/* Adds a key or updates its expiry and revocation. TG_ENOTFOUND if its customer is unknown. */
int tg_accounts_put_key(tg_accounts_t *a, const tg_key_t *k, tg_err_t *err);

/* Looks up the key whose HMAC is `hash` at wall time now_s. Thread-safe. The comparison of the
 * hash itself is constant-time. */
void tg_accounts_authenticate(tg_accounts_t *a, const uint8_t hash[32], int64_t now_s,
                              tg_auth_t *out);

/* Marks a customer as suspended by dunning (hold 1) or not (0): a suspended account with the
 * hold is refused with 402 payment_required (pay to restore), without it with 402
 * account_suspended (the owner's decision). Set the hold before storing the suspended status,
 * clear it after storing the resumed one. TG_ENOTFOUND for an unknown customer. Thread-safe. */
int tg_accounts_set_payment_hold(tg_accounts_t *a, const char *customer_id, int hold);
int tg_account_payment_hold(const tg_account_t *acct);
/* 1 when the customer's address is confirmed (customers.email_confirmed_at, as last put). A plan
 * with require_email_confirmation refuses calls until then. Thread-safe. */
int tg_account_email_confirmed(const tg_account_t *acct);

/* The decision API's open reservations of this customer (gateway/reservations.h), so that one
 * customer cannot hold the whole table: take counts one more and returns 1 when fewer than cap
 * were held, else 0 (nothing counted); give counts one fewer (once per successful take).
 * Thread-safe, lock-free. */
int tg_account_reservation_take(tg_account_t *acct, uint32_t cap);
void tg_account_reservation_give(tg_account_t *acct);

/* Sets every customer's hold to held(id, arg): the whole directory matches the store at once,
 * holds lifted elsewhere included (a periodic resync after a missed change notice). Each hold
 * moves straight from its old value to its new one, so a held customer is never served in
 * between. held runs under the directory's read lock: it must not call back into a. */
void tg_accounts_replace_holds(tg_accounts_t *a, int (*held)(const char *customer_id, void *arg), void *arg);

/* Customer by id, or NULL. Thread-safe. */
tg_account_t *tg_accounts_find(tg_accounts_t *a, const char *customer_id);

/* The customer owning the key whose id is key_id (revoked and expired keys included: usage
 * reported for an earlier call still belongs to it), or NULL. Thread-safe. */
tg_account_t *tg_accounts_find_by_key_id(tg_accounts_t *a, const char *key_id);

/* Last-used time (seconds) recorded in memory for a key, 0 if never. */
int64_t tg_accounts_key_last_used(tg_accounts_t *a, const char *key_id);

/* Calls cb for every key used since the previous call (last-used time changed), so the admin
 * thread can persist last-used times without touching the store on the request path. */
typedef int (*tg_key_used_cb)(const char *key_id, int64_t last_used_at, void *arg);
void tg_accounts_collect_used(tg_accounts_t *a, tg_key_used_cb cb, void *arg);

/* Accessors; all thread-safe. */
const char *tg_account_id(const tg_account_t *acct);
const tg_plan_t *tg_account_plan(const tg_account_t *acct);
tg_account_status_t tg_account_status(const tg_account_t *acct, int64_t now_s);
/* The billing period containing now_s, from the customer's anchor and plan interval. */
void tg_account_period(tg_account_t *acct, int64_t now_s, int64_t *start_s, int64_t *end_s);

tg_account_status_t tg_account_status_parse(const char *s);
const char *tg_account_status_name(tg_account_status_t st);

#endif
