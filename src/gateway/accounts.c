/* accounts.c - see accounts.h.
 *
 * Two chained hash tables under one rwlock: customers by id, keys by HMAC (and a second chain of
 * the same key entries by key id, for admin updates). Entries are allocated one by one and never
 * moved or freed before tg_accounts_free, so readers may keep pointers after unlocking. */
#include "gateway/accounts.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/period.h"
#include "store/store.h"

struct tg_account {
    struct tg_account *next; /* chain in the customer table */
    char id[TG_ID_MAX];
    _Atomic(const tg_plan_t *) plan;
    _Atomic int status;
    _Atomic int64_t trial_end;
    _Atomic int payment_hold; /* suspended by dunning: the gateway answers payment_required */
    _Atomic int email_confirmed; /* customers.email_confirmed_at != 0 */
    _Atomic uint32_t reservations; /* the decision API's open reservations (tg_account_reservation_take) */
    int64_t anchor_at;
};

typedef struct key_entry {
    struct key_entry *next_by_hash;
    struct key_entry *next_by_id;
    uint8_t hash[32];
    char id[TG_ID_MAX];
    tg_account_t *account;
    _Atomic int64_t expires_at;
    _Atomic int64_t revoked_at;
    _Atomic int64_t last_used_at;
    int64_t persisted_used_at; /* admin thread only */
} key_entry_t;

struct tg_accounts {
    const tg_config_t *cfg;
    pthread_rwlock_t lock;
    tg_account_t **customers;
    size_t ncustomer_buckets, ncustomers;
    key_entry_t **keys_by_hash, **keys_by_id;
    size_t nkey_buckets, nkeys;
    tg_plan_changed_cb on_plan_change;
    void *on_plan_change_arg;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: ids are random already */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static uint64_t hash_digest(const uint8_t d[32])
{
    uint64_t h;
    memcpy(&h, d, sizeof(h)); /* an HMAC output is uniformly distributed */
    return h;
}

tg_accounts_t *tg_accounts_new(const tg_config_t *cfg)
{
    tg_accounts_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->cfg = cfg;
    a->ncustomer_buckets = 1024;
    a->nkey_buckets = 1024;
    a->customers = calloc(a->ncustomer_buckets, sizeof(*a->customers));
    a->keys_by_hash = calloc(a->nkey_buckets, sizeof(*a->keys_by_hash));
    a->keys_by_id = calloc(a->nkey_buckets, sizeof(*a->keys_by_id));
    if (a->customers == NULL || a->keys_by_hash == NULL || a->keys_by_id == NULL ||
        pthread_rwlock_init(&a->lock, NULL) != 0) {
        free(a->customers);
        free(a->keys_by_hash);
        free(a->keys_by_id);
        free(a);
        return NULL;
    }
    return a;
}

void tg_accounts_free(tg_accounts_t *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->ncustomer_buckets; i++)
        for (tg_account_t *c = a->customers[i], *n; c != NULL; c = n) {
            n = c->next;
            free(c);
        }
    for (size_t i = 0; i < a->nkey_buckets; i++)
        for (key_entry_t *k = a->keys_by_hash[i], *n; k != NULL; k = n) {
            n = k->next_by_hash;
            sodium_memzero(k->hash, sizeof(k->hash));
            free(k);
        }
    free(a->customers);
    free(a->keys_by_hash);
    free(a->keys_by_id);
    pthread_rwlock_destroy(&a->lock);
    free(a);
}

static tg_account_t *find_customer_locked(tg_accounts_t *a, const char *id)
{
    for (tg_account_t *c = a->customers[hash_str(id) % a->ncustomer_buckets]; c != NULL; c = c->next)
        if (strcmp(c->id, id) == 0)
            return c;
    return NULL;
}

static key_entry_t *find_key_by_id_locked(tg_accounts_t *a, const char *id)
{
    for (key_entry_t *k = a->keys_by_id[hash_str(id) % a->nkey_buckets]; k != NULL; k = k->next_by_id)
        if (strcmp(k->id, id) == 0)
            return k;
    return NULL;
}

/* Doubles a table when its load passes 1; called with the write lock held. Failure to grow is
 * harmless (chains get longer), so it is not reported. */
static void grow_customers_locked(tg_accounts_t *a)
{
    if (a->ncustomers < a->ncustomer_buckets)
        return;
    size_t n = a->ncustomer_buckets * 2;
    tg_account_t **t = calloc(n, sizeof(*t));
    if (t == NULL)
        return;
    for (size_t i = 0; i < a->ncustomer_buckets; i++)
        for (tg_account_t *c = a->customers[i], *next; c != NULL; c = next) {
            next = c->next;
            size_t b = hash_str(c->id) % n;
            c->next = t[b];
            t[b] = c;
        }
    free(a->customers);
    a->customers = t;
    a->ncustomer_buckets = n;
}

static void grow_keys_locked(tg_accounts_t *a)
{
    if (a->nkeys < a->nkey_buckets)
        return;
    size_t n = a->nkey_buckets * 2;
    key_entry_t **by_hash = calloc(n, sizeof(*by_hash)), **by_id = calloc(n, sizeof(*by_id));
    if (by_hash == NULL || by_id == NULL) {
        free(by_hash);
        free(by_id);
        return;
    }
    for (size_t i = 0; i < a->nkey_buckets; i++)
        for (key_entry_t *k = a->keys_by_hash[i], *next; k != NULL; k = next) {
            next = k->next_by_hash;
            size_t bh = hash_digest(k->hash) % n, bi = hash_str(k->id) % n;
            k->next_by_hash = by_hash[bh];
            by_hash[bh] = k;
            k->next_by_id = by_id[bi];
            by_id[bi] = k;
        }
    free(a->keys_by_hash);
    free(a->keys_by_id);
    a->keys_by_hash = by_hash;
    a->keys_by_id = by_id;
    a->nkey_buckets = n;
}

int tg_accounts_put_customer(tg_accounts_t *a, const tg_customer_t *c, tg_err_t *err)
{
    if (strlen(c->id) >= TG_ID_MAX)
        return tg_errf(err, TG_EINVAL, "customer id too long");
    pthread_rwlock_wrlock(&a->lock);
    /* under the lock: a reload (tg_accounts_rebind) replaces a->cfg and every plan pointer at once */
    const tg_plan_t *plan = tg_config_find_plan(a->cfg, c->plan_id);
    if (plan == NULL) {
        pthread_rwlock_unlock(&a->lock);
        return tg_errf(err, TG_EINVAL, "customer %s has plan \"%s\", which the configuration does not define",
                       c->id, c->plan_id);
    }
    tg_account_t *acct = find_customer_locked(a, c->id);
    const tg_plan_t *was = NULL;
    if (acct == NULL) {
        if ((acct = calloc(1, sizeof(*acct))) == NULL) {
            pthread_rwlock_unlock(&a->lock);
            return tg_errf(err, TG_ENOMEM, "out of memory adding customer %s", c->id);
        }
        memcpy(acct->id, c->id, strlen(c->id) + 1);
        acct->anchor_at = c->anchor_at;
        grow_customers_locked(a);
        size_t b = hash_str(acct->id) % a->ncustomer_buckets;
        acct->next = a->customers[b];
        a->customers[b] = acct;
        a->ncustomers++;
        atomic_store(&acct->plan, plan);
    } else {
        was = atomic_exchange(&acct->plan, plan);
    }
    atomic_store(&acct->status, (int)tg_account_status_parse(c->status));
    atomic_store(&acct->trial_end, c->trial_end);
    atomic_store(&acct->email_confirmed, c->email_confirmed_at != 0);
    pthread_rwlock_unlock(&a->lock);
    if (was != NULL && was != plan && a->on_plan_change != NULL)
        a->on_plan_change(acct, was, plan, a->on_plan_change_arg);
    return 0;
}

/* Why a customer's plan cannot move to `to` (NULL: removed), or NULL if it can. The interval
 * and the currency decide the customer's billing periods, quota counters and invoices: changing
 * them under customers mid-period would split or reprice a period already partly used. */
static const char *rebind_problem(const tg_plan_t *from, const tg_plan_t *to)
{
    if (to == NULL)
        return "is removed";
    if (to->interval != from->interval)
        return "changes its interval";
    if (strcmp(to->currency, from->currency) != 0)
        return "changes its currency";
    return NULL;
}

int tg_accounts_rebind(tg_accounts_t *a, const tg_config_t *next, tg_err_t *err)
{
    pthread_rwlock_wrlock(&a->lock);
    const tg_config_t *cur = a->cfg;
    size_t *blocked = calloc(cur->nplans > 0 ? cur->nplans : 1, sizeof(*blocked)), nblocked = 0;
    if (blocked == NULL) {
        pthread_rwlock_unlock(&a->lock);
        return tg_errf(err, TG_ENOMEM, "out of memory checking the customers' plans");
    }
    /* First pass: every customer's plan must be in next, billed the same way, or nothing
     * changes. Every plan pointer is one of cur's (put_customer and earlier rebinds). */
    for (size_t i = 0; i < a->ncustomer_buckets; i++)
        for (tg_account_t *c = a->customers[i]; c != NULL; c = c->next) {
            const tg_plan_t *p = atomic_load(&c->plan);
            if (p < cur->plans || p >= cur->plans + cur->nplans) /* the invariant above, broken */
                abort();
            if (rebind_problem(p, tg_config_find_plan(next, p->id)) != NULL) {
                blocked[p - cur->plans]++;
                nblocked++;
            }
        }
    if (nblocked > 0) {
        char msg[TG_ERR_MAX] = "";
        size_t used = 0;
        for (size_t i = 0; i < cur->nplans && used < sizeof(msg); i++) {
            if (blocked[i] == 0)
                continue;
            const tg_plan_t *p = &cur->plans[i];
            int w = snprintf(msg + used, sizeof(msg) - used, "%splan \"%s\" %s but %zu customer%s on it",
                             used > 0 ? "; " : "", p->id, rebind_problem(p, tg_config_find_plan(next, p->id)),
                             blocked[i], blocked[i] == 1 ? " is" : "s are");
            if (w < 0)
                break;
            used += (size_t)w;
        }
        free(blocked);
        pthread_rwlock_unlock(&a->lock);
        return tg_errf(err, TG_ESTATE,
                       "%s; move them to another plan first (tollgate customers set-plan), or add a new plan "
                       "rather than change this one",
                       msg);
    }
    free(blocked);
    /* Second pass: the same plans, by id, in next. Readers see the old plan or the new one, both
     * valid (the old configuration is kept, config_live.h). */
    for (size_t i = 0; i < a->ncustomer_buckets; i++)
        for (tg_account_t *c = a->customers[i]; c != NULL; c = c->next)
            atomic_store(&c->plan, tg_config_find_plan(next, atomic_load(&c->plan)->id));
    a->cfg = next;
    pthread_rwlock_unlock(&a->lock);
    return 0;
}

void tg_accounts_on_plan_change(tg_accounts_t *a, tg_plan_changed_cb cb, void *arg)
{
    a->on_plan_change = cb;
    a->on_plan_change_arg = arg;
}

int tg_accounts_put_key(tg_accounts_t *a, const tg_key_t *k, tg_err_t *err)
{
    if (strlen(k->id) >= TG_ID_MAX)
        return tg_errf(err, TG_EINVAL, "key id too long");
    pthread_rwlock_wrlock(&a->lock);
    tg_account_t *acct = find_customer_locked(a, k->customer_id);
    if (acct == NULL) {
        pthread_rwlock_unlock(&a->lock);
        return tg_errf(err, TG_ENOTFOUND, "key %s belongs to unknown customer %s", k->id, k->customer_id);
    }
    key_entry_t *e = find_key_by_id_locked(a, k->id);
    if (e == NULL) {
        if ((e = calloc(1, sizeof(*e))) == NULL) {
            pthread_rwlock_unlock(&a->lock);
            return tg_errf(err, TG_ENOMEM, "out of memory adding key %s", k->id);
        }
        memcpy(e->hash, k->hash, sizeof(e->hash));
        memcpy(e->id, k->id, strlen(k->id) + 1);
        e->account = acct;
        atomic_store(&e->last_used_at, k->last_used_at);
        e->persisted_used_at = k->last_used_at;
        grow_keys_locked(a);
        size_t bh = hash_digest(e->hash) % a->nkey_buckets, bi = hash_str(e->id) % a->nkey_buckets;
        e->next_by_hash = a->keys_by_hash[bh];
        a->keys_by_hash[bh] = e;
        e->next_by_id = a->keys_by_id[bi];
        a->keys_by_id[bi] = e;
        a->nkeys++;
    }
    atomic_store(&e->expires_at, k->expires_at);
    atomic_store(&e->revoked_at, k->revoked_at);
    pthread_rwlock_unlock(&a->lock);
    return 0;
}

static int load_customer_cb(const tg_customer_t *c, void *arg)
{
    void **ctx = arg;
    return tg_accounts_put_customer(ctx[0], c, ctx[1]) != 0;
}

static int load_key_cb(const tg_key_t *k, void *arg)
{
    void **ctx = arg;
    return tg_accounts_put_key(ctx[0], k, ctx[1]) != 0;
}

int tg_accounts_load(tg_accounts_t *a, tg_store_t *st, tg_err_t *err)
{
    tg_err_t inner = {0};
    void *ctx[2] = {a, &inner};
    int rc = tg_store_customer_list(st, load_customer_cb, ctx, err);
    if (rc == 0 && inner.code != 0)
        return tg_errf(err, inner.code, "loading customers: %s", inner.msg);
    if (rc != 0)
        return rc;
    rc = tg_store_key_list(st, NULL, load_key_cb, ctx, err);
    if (rc == 0 && inner.code != 0)
        return tg_errf(err, inner.code, "loading keys: %s", inner.msg);
    return rc;
}

void tg_accounts_authenticate(tg_accounts_t *a, const uint8_t hash[32], int64_t now_s, tg_auth_t *out)
{
    out->result = TG_AUTH_UNKNOWN;
    out->account = NULL;
    out->key_id[0] = '\0';
    pthread_rwlock_rdlock(&a->lock);
    for (key_entry_t *k = a->keys_by_hash[hash_digest(hash) % a->nkey_buckets]; k != NULL; k = k->next_by_hash) {
        if (crypto_verify_32(k->hash, hash) != 0) /* constant time, and vectorised */
            continue;
        int64_t revoked = atomic_load(&k->revoked_at), expires = atomic_load(&k->expires_at);
        if (revoked != 0 && revoked <= now_s)
            out->result = TG_AUTH_REVOKED;
        else if (expires != 0 && expires <= now_s)
            out->result = TG_AUTH_EXPIRED;
        else {
            out->result = TG_AUTH_OK;
            out->account = k->account;
            if (atomic_load_explicit(&k->last_used_at, memory_order_relaxed) != now_s)
                atomic_store_explicit(&k->last_used_at, now_s, memory_order_relaxed);
        }
        memcpy(out->key_id, k->id, sizeof(out->key_id));
        break;
    }
    pthread_rwlock_unlock(&a->lock);
}

int tg_accounts_set_payment_hold(tg_accounts_t *a, const char *customer_id, int hold)
{
    tg_account_t *acct = tg_accounts_find(a, customer_id);
    if (acct == NULL)
        return TG_ENOTFOUND;
    atomic_store(&acct->payment_hold, hold != 0);
    return 0;
}

void tg_accounts_replace_holds(tg_accounts_t *a, int (*held)(const char *customer_id, void *arg), void *arg)
{
    pthread_rwlock_rdlock(&a->lock);
    for (size_t i = 0; i < a->ncustomer_buckets; i++)
        for (tg_account_t *c = a->customers[i]; c != NULL; c = c->next)
            atomic_store(&c->payment_hold, held(c->id, arg) != 0);
    pthread_rwlock_unlock(&a->lock);
}

int tg_account_email_confirmed(const tg_account_t *acct)
{
    return atomic_load(&((tg_account_t *)acct)->email_confirmed);
}

int tg_account_payment_hold(const tg_account_t *acct)
{
    return atomic_load(&((tg_account_t *)acct)->payment_hold);
}

int tg_account_reservation_take(tg_account_t *acct, uint32_t cap)
{
    uint32_t held = atomic_load_explicit(&acct->reservations, memory_order_relaxed);
    do {
        if (held >= cap)
            return 0;
    } while (!atomic_compare_exchange_weak_explicit(&acct->reservations, &held, held + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    return 1;
}

void tg_account_reservation_give(tg_account_t *acct)
{
    atomic_fetch_sub_explicit(&acct->reservations, 1, memory_order_relaxed);
}

tg_account_t *tg_accounts_find(tg_accounts_t *a, const char *customer_id)
{
    pthread_rwlock_rdlock(&a->lock);
    tg_account_t *acct = find_customer_locked(a, customer_id);
    pthread_rwlock_unlock(&a->lock);
    return acct;
}

tg_account_t *tg_accounts_find_by_key_id(tg_accounts_t *a, const char *key_id)
{
    pthread_rwlock_rdlock(&a->lock);
    key_entry_t *k = find_key_by_id_locked(a, key_id);
    tg_account_t *acct = k != NULL ? k->account : NULL;
    pthread_rwlock_unlock(&a->lock);
    return acct;
}

int64_t tg_accounts_key_last_used(tg_accounts_t *a, const char *key_id)
{
    pthread_rwlock_rdlock(&a->lock);
    key_entry_t *k = find_key_by_id_locked(a, key_id);
    int64_t t = k != NULL ? atomic_load(&k->last_used_at) : 0;
    pthread_rwlock_unlock(&a->lock);
    return t;
}

void tg_accounts_collect_used(tg_accounts_t *a, tg_key_used_cb cb, void *arg)
{
    /* Copy what changed under the lock and call back (which writes to the store) after it, so
     * no lock is held across disk I/O. Last-used times are best-effort: one that fails to be
     * stored waits for the key's next use. */
    typedef struct {
        char id[TG_ID_MAX];
        int64_t used;
    } used_t;
    used_t *list = NULL;
    size_t n = 0, cap = 0;
    pthread_rwlock_rdlock(&a->lock);
    for (size_t i = 0; i < a->nkey_buckets; i++)
        for (key_entry_t *k = a->keys_by_hash[i]; k != NULL; k = k->next_by_hash) {
            int64_t used = atomic_load(&k->last_used_at);
            if (used <= k->persisted_used_at)
                continue;
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 64;
                used_t *nl = realloc(list, nc * sizeof(*nl));
                if (nl == NULL)
                    break;
                list = nl;
                cap = nc;
            }
            memcpy(list[n].id, k->id, sizeof(list[n].id));
            list[n++].used = used;
            k->persisted_used_at = used; /* only the admin thread reads or writes this field */
        }
    pthread_rwlock_unlock(&a->lock);
    for (size_t i = 0; i < n; i++)
        cb(list[i].id, list[i].used, arg);
    free(list);
}

const char *tg_account_id(const tg_account_t *acct)
{
    return acct->id;
}

const tg_plan_t *tg_account_plan(const tg_account_t *acct)
{
    return atomic_load(&((tg_account_t *)acct)->plan);
}

tg_account_status_t tg_account_status(const tg_account_t *acct, int64_t now_s)
{
    tg_account_t *m = (tg_account_t *)acct;
    tg_account_status_t st = (tg_account_status_t)atomic_load(&m->status);
    if (st == TG_ACCT_TRIALING && atomic_load(&m->trial_end) <= now_s)
        return TG_ACCT_ACTIVE; /* a trial that ran out is a paying subscription */
    return st;
}

void tg_account_period(tg_account_t *acct, int64_t now_s, int64_t *start_s, int64_t *end_s)
{
    const tg_plan_t *plan = tg_account_plan(acct);
    tg_period_bounds(acct->anchor_at, plan->interval, now_s, start_s, end_s);
}

static const char *const status_names[] = {"active", "trialing", "past_due", "suspended", "canceled",
                                              "incomplete"};

tg_account_status_t tg_account_status_parse(const char *s)
{
    for (size_t i = 0; i < sizeof(status_names) / sizeof(status_names[0]); i++)
        if (strcmp(s, status_names[i]) == 0)
            return (tg_account_status_t)i;
    return TG_ACCT_ACTIVE;
}

const char *tg_account_status_name(tg_account_status_t st)
{
    if ((unsigned)st < sizeof(status_names) / sizeof(status_names[0]))
        return status_names[st];
    return "active";
}
