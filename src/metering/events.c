/* events.c - see events.h. */
#include "metering/events.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "metering/event_index.h"
#include "metering/usage_log.h"
#include "metrics/metrics.h"
#include "util/clock.h"
#include "util/period.h"
#include "util/log.h"
#include "util/pack.h"

#define NS_PER_S INT64_C(1000000000)
#define EVENT_ROW_BIT (UINT64_C(1) << 63) /* event rows' event_id; tg_meter_next_event_id's stay below */
#define PREFETCH_AHEAD 8                  /* keys whose index slots load while one is probed (event_index.h) */
#define CHECKPOINT_MS_DEFAULT 60000       /* tg_events_opts_t.checkpoint_ms */

typedef struct token_hash {
    uint8_t hash[32];
    const tg_ingest_token_t *conf;
} token_hash_t;

struct tg_events {
    const tg_config_t *cfg;
    tg_accounts_t *accounts;
    tg_quota_t *quota;
    tg_meter_t *meter;
    tg_thresholds_t *thresholds;
    uint8_t event_key[crypto_generichash_KEYBYTES];                  /* keys the BLAKE2b (customer, id) hashes */
    uint8_t event_siphash_key[crypto_shorthash_siphashx24_KEYBYTES]; /* keys the SipHash ones */
    int64_t blake2b_until_ns;                       /* events dated up to it keep the BLAKE2b key (store_ingest.h) */
    uint8_t token_key[crypto_generichash_KEYBYTES]; /* keys the token hashes */
    token_hash_t *tokens;                           /* events.tokens: fixed for the service's life */
    size_t ntokens;
    /* Stored tokens (admin API): replaced by tg_events_token_put / tg_events_tokens_load on the
     * admin thread, read by every gateway loop. */
    pthread_rwlock_t stored_mu;
    tg_ingest_token_row_t *stored;
    size_t nstored, stored_cap;
    pthread_mutex_t mu; /* the index */
    tg_event_index_t *index;
    /* The checkpoint (SQLite, one node; events.h): NULL store, none (the index is synced at each
     * log reset). ckpt_mu serialises checkpoints (the store is one connection) and guards the
     * thread's stop flag. */
    tg_store_t *ckpt_store;
    pthread_mutex_t ckpt_mu;
    pthread_cond_t ckpt_wake;
    pthread_t ckpt_thread;
    int ckpt_running, ckpt_stop;
    int ckpt_ms;
    int64_t ckpt_written; /* the checkpoint last written to the header (-1: none by this process) */
};

/* A submitted batch, until the meter says its rows are logged. */
typedef struct ticket {
    tg_events_t *ev;
    tg_events_done_cb cb;
    void *arg;
    tg_event_result_t *results;
    size_t n; /* accepted events */
    struct accepted {
        size_t at; /* index in the batch */
        uint8_t key[TG_EVENT_KEY_BYTES];
        tg_event_slot_t slot; /* where the claim put it */
    } * acc;
    tg_usage_t *rows; /* acc[i]'s row, for giving quota back on failure */
} ticket_t;

/* ---- keys ---- */

/* A key of out_len bytes for one purpose, from keys.secret: BLAKE2b keyed with the secret (its
 * first 64 bytes) over the purpose string, out_len bytes long (a different length is a
 * different hash, not a truncation). */
static void derive(const uint8_t *secret, size_t len, const char *purpose, uint8_t *out, size_t out_len)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, secret, len < crypto_generichash_KEYBYTES_MAX ? len : crypto_generichash_KEYBYTES_MAX,
                            out_len);
    crypto_generichash_update(&st, (const unsigned char *)purpose, strlen(purpose));
    crypto_generichash_final(&st, out, out_len);
}

_Static_assert(crypto_shorthash_siphashx24_BYTES == TG_EVENT_KEY_BYTES, "SipHash-128 fills an event key");

/* (customer, id) -> 16 bytes, the key the index claims and whose first 63 bits are the row's
 * event_id. The customer's NUL separates the two (an id cannot hold one).
 *
 * Two keyed functions, chosen by the event's own timestamp (so a retry gets the same key, on
 * every node): up to blake2b_until_ns (migration 36: 600 s after the upgrade, 0 for a database
 * that never held an event) BLAKE2b-128 as before the upgrade, so that an event sent before it
 * and retried after is still a duplicate in the index, in the logs and in the store; after it
 * SipHash-2-4-128 (crypto_shorthash_siphashx24), 49 ns an event against BLAKE2b's 407 (keyed
 * BLAKE2b compresses its key block first: two compressions for this input; SipHash, a few
 * rounds on 8-byte words). Both are PRFs under a key derived from keys.secret: without the
 * secret nobody can choose two events whose keys collide, so ids collide only by chance, 2^-63
 * per pair of one customer's events in the window on the 63 bits the row, the store and the
 * index's prefix slots keep (events.h: with n events of a customer in the window the chance of
 * any collision is about n^2/2^64). */
static void event_key(const tg_events_t *ev, const char *customer, const char *id, size_t id_len, int64_t ts_ns,
                      uint8_t out[TG_EVENT_KEY_BYTES])
{
    size_t customer_len = strnlen(customer, TG_ID_MAX - 1);
    if (ts_ns <= ev->blake2b_until_ns) {
        crypto_generichash_state st;
        crypto_generichash_init(&st, ev->event_key, sizeof(ev->event_key), TG_EVENT_KEY_BYTES);
        crypto_generichash_update(&st, (const unsigned char *)customer, customer_len + 1);
        crypto_generichash_update(&st, (const unsigned char *)id, id_len);
        crypto_generichash_final(&st, out, TG_EVENT_KEY_BYTES);
        return;
    }
    /* the same bytes in one buffer (SipHash takes its input at once) */
    unsigned char in[TG_ID_MAX + TG_EVENT_ID_MAX];
    if (id_len > TG_EVENT_ID_MAX) /* check_event refused it already; the cap keeps `in` safe */
        id_len = TG_EVENT_ID_MAX;
    memcpy(in, customer, customer_len);
    in[customer_len] = '\0';
    memcpy(in + customer_len + 1, id, id_len);
    crypto_shorthash_siphashx24(out, in, customer_len + 1 + id_len, ev->event_siphash_key);
}

void tg_events_event_key(const tg_events_t *ev, const char *customer, const char *id, size_t id_len, int64_t ts_ns,
                         uint8_t out[TG_EVENT_KEY_BYTES])
{
    event_key(ev, customer, id, id_len, ts_ns, out);
}

int64_t tg_events_blake2b_until(const tg_events_t *ev)
{
    return ev->blake2b_until_ns > 0 ? ev->blake2b_until_ns / NS_PER_S : 0;
}

/* The store knows event rows by this bit (model/records.h) */
_Static_assert(EVENT_ROW_BIT == TG_USAGE_EVENT_BIT, "event rows' mark");

static uint64_t row_event_id(const uint8_t key[TG_EVENT_KEY_BYTES])
{
    return tg_le_get64(key) | EVENT_ROW_BIT;
}

/* ---- open: settle what a crash left pending, claim again what a power cut lost ---- */

typedef struct logged_id {
    uint64_t id;  /* the row's event_id */
    uint32_t day; /* of the event's timestamp */
} logged_id_t;

typedef struct logged_ids {
    logged_id_t *ids;
    size_t n, cap;
    int oom;
} logged_ids_t;

static int collect_row_ids(void *arg, uint64_t batch_id, const tg_usage_t *rows, size_t n)
{
    (void)batch_id;
    logged_ids_t *l = arg;
    for (size_t i = 0; i < n; i++) {
        if (!tg_usage_is_event(&rows[i]))
            continue;
        if (l->n == l->cap) {
            size_t cap = l->cap != 0 ? l->cap * 2 : 1024;
            logged_id_t *ids = realloc(l->ids, cap * sizeof(*ids));
            if (ids == NULL) {
                l->oom = 1;
                return TG_ENOMEM;
            }
            l->ids = ids, l->cap = cap;
        }
        int64_t ts_s = rows[i].ts_ns / NS_PER_S;
        l->ids[l->n++] = (logged_id_t){rows[i].event_id, ts_s > 0 ? (uint32_t)(ts_s / 86400) : 0};
    }
    return 0;
}

static int cmp_id(const void *a, const void *b)
{
    uint64_t x = ((const logged_id_t *)a)->id, y = ((const logged_id_t *)b)->id;
    return x < y ? -1 : x > y;
}

/* The event rows of the metering logs this node left (what the meter replays next), sorted by
 * id. */
static int read_logged_ids(const tg_events_opts_t *o, logged_ids_t *l, tg_err_t *err)
{
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        if (o->log_paths[i] == NULL || access(o->log_paths[i], F_OK) != 0)
            continue;
        tg_usage_log_t *log;
        if ((rc = tg_usage_log_open(o->log_paths[i], &log, err)) != 0)
            break;
        rc = tg_usage_log_replay(log, collect_row_ids, l, err);
        if (l->oom)
            rc = tg_errf(err, TG_ENOMEM, "out of memory reading the metering log");
        tg_usage_log_close(log);
    }
    if (rc == 0 && l->n > 0)
        qsort(l->ids, l->n, sizeof(*l->ids), cmp_id);
    return rc;
}

/* A claim is pending when the process died between claiming it and hearing from the meter. Its
 * row is in a metering log if and only if it was logged: the log is reset only after its rows
 * are stored, which happens on the writer's next rounds, after the callbacks that would have
 * committed the claim (see README, "Metering usage that is not an API call"). */
static int settle_pending(tg_events_t *ev, const logged_ids_t *l, tg_err_t *err)
{
    uint8_t(*keys)[TG_EVENT_KEY_BYTES] = NULL;
    size_t n = 0;
    int rc = tg_event_index_pending(ev->index, &keys, &n, err);
    if (rc != 0 || n == 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        logged_id_t id = {row_event_id(keys[i]), 0};
        if (l->n > 0 && bsearch(&id, l->ids, l->n, sizeof(*l->ids), cmp_id) != NULL)
            tg_event_index_commit(ev->index, keys[i]);
        else
            tg_event_index_withdraw(ev->index, keys[i]);
    }
    free(keys);
    return 0;
}

/* Every event row still in a log is claimed (by its 63 bits) if the index lost it: after a
 * power cut the index file may be older than the log, which was synced before each answer
 * (strict) while the index is synced only before a log is retired (tg_events_sync_index). */
static int claim_logged(tg_events_t *ev, const logged_ids_t *l, size_t *claimed, tg_err_t *err)
{
    for (size_t i = 0; i < l->n; i++) {
        int rc = tg_event_index_claim_id(ev->index, l->ids[i].id, l->ids[i].day, err);
        if (rc < 0)
            return rc;
        *claimed += (size_t)rc;
    }
    return 0;
}

typedef struct stored_claims {
    tg_events_t *ev;
    size_t claimed;
    tg_err_t *err;
} stored_claims_t;

static int claim_stored(void *arg, uint64_t event_id, int64_t ts_s)
{
    stored_claims_t *c = arg;
    int rc = tg_event_index_claim_id(c->ev->index, event_id, ts_s > 0 ? (uint32_t)(ts_s / 86400) : 0, c->err);
    if (rc < 0)
        return rc;
    c->claimed += (size_t)rc;
    return 0;
}

/* A checkpoint at block `last` (read before this call): the slots synced, then `last` written
 * into the header (event_index.h). None when the header holds it already: the claims made since
 * are of rows not stored yet, which the metering logs still hold. Under ckpt_mu. */
static int checkpoint_at(tg_events_t *ev, int64_t last, tg_err_t *err)
{
    if (last == ev->ckpt_written)
        return 0;
    pthread_mutex_lock(&ev->mu);
    int fd = tg_event_index_checkpoint_fd(ev->index, (uint64_t)last, err);
    pthread_mutex_unlock(&ev->mu);
    int rc = fd < 0 ? fd : tg_event_index_checkpoint_write(fd, (uint64_t)last, err);
    if (rc == 0)
        ev->ckpt_written = last;
    return rc;
}

/* B first, the sync after: every block up to B was stored after its rows were logged, and they
 * were logged after their keys were claimed, so those claims are in the table when it syncs. */
static int checkpoint_locked(tg_events_t *ev, tg_err_t *err)
{
    int64_t last;
    int rc = tg_store_usage_event_id_blocks_last(ev->ckpt_store, &last, err);
    return rc != 0 ? rc : checkpoint_at(ev, last, err);
}

/* Opening the index: pending claims settled, then what the index may have lost claimed again
 * from the logs, and from the store: for an index this open made (the file was lost or
 * removed), the ids it kept for the window (store.h, tg_store_usage_event_ids_each); with a
 * checkpoint, the ids of the blocks stored after it (tg_store_usage_event_id_blocks_after).
 * Then made durable: a checkpoint at the last block (read before those claims, so that they
 * cover it), or a sync without one, as the meter retires the logs next. */
static int recover_index(tg_events_t *ev, const tg_events_opts_t *o, tg_err_t *err)
{
    logged_ids_t l = {0};
    size_t from_logs = 0;
    int64_t last = 0;
    int rc = ev->ckpt_store != NULL ? tg_store_usage_event_id_blocks_last(ev->ckpt_store, &last, err) : 0;
    if (rc == 0)
        rc = read_logged_ids(o, &l, err);
    if (rc == 0)
        rc = settle_pending(ev, &l, err);
    if (rc == 0)
        rc = claim_logged(ev, &l, &from_logs, err);
    free(l.ids);
    stored_claims_t c = {ev, 0, err};
    int64_t since = o->now_s - o->cfg->events.dedup_window_s - 86400;
    uint64_t checkpoint = tg_event_index_checkpoint(ev->index);
    if (rc == 0 && o->store != NULL && tg_event_index_created(ev->index))
        rc = tg_store_usage_event_ids_each(o->store, since, claim_stored, &c, err);
    else if (rc == 0 && ev->ckpt_store != NULL && checkpoint < (uint64_t)last)
        rc = tg_store_usage_event_id_blocks_after(ev->ckpt_store, (int64_t)checkpoint, since, claim_stored, &c, err);
    if (rc == 0 && ev->ckpt_store != NULL && checkpoint > (uint64_t)last)
        tg_log(TG_LOG_WARN,
               "usage events: the dedup index's checkpoint (event id block %llu) is past the store's last block "
               "(%lld): a database restored from a backup? The checkpoint is set back to the store's",
               (unsigned long long)checkpoint, (long long)last);
    if (rc == 0 && (from_logs > 0 || c.claimed > 0))
        tg_log(TG_LOG_INFO,
               "usage events: the dedup index took back %zu event id(s) from the metering logs and %zu "
               "from the store (blocks after %llu)",
               from_logs, c.claimed, (unsigned long long)checkpoint);
    if (rc == 0 && ev->ckpt_store != NULL) {
        ev->ckpt_written = tg_event_index_created(ev->index) ? -1 : (int64_t)checkpoint;
        rc = checkpoint_at(ev, last, err);
    } else if (rc == 0) {
        rc = tg_events_sync_index(ev, err);
    }
    return rc;
}

int tg_events_checkpoint(tg_events_t *ev, tg_err_t *err)
{
    if (ev->ckpt_store == NULL)
        return tg_errf(err, TG_ESTATE,
                       "the dedup index has no checkpoint here (PostgreSQL syncs it at each log reset)");
    pthread_mutex_lock(&ev->ckpt_mu);
    int rc = checkpoint_locked(ev, err);
    pthread_mutex_unlock(&ev->ckpt_mu);
    return rc;
}

/* Every ckpt_ms until tg_events_close stops it. A failure is logged and retried at the next
 * round: meanwhile the header keeps an older checkpoint, which only means more blocks to claim
 * again after a power cut. */
static void *checkpoint_main(void *arg)
{
    tg_events_t *ev = arg;
    pthread_mutex_lock(&ev->ckpt_mu);
    while (!ev->ckpt_stop) {
        struct timespec until = tg_clock_deadline(CLOCK_MONOTONIC, ev->ckpt_ms); /* ckpt_wake's clock */
        while (!ev->ckpt_stop && pthread_cond_timedwait(&ev->ckpt_wake, &ev->ckpt_mu, &until) == 0)
            ;
        if (ev->ckpt_stop)
            break;
        tg_err_t err = {0};
        if (checkpoint_locked(ev, &err) != 0)
            tg_log(TG_LOG_WARN, "usage events: the dedup index's checkpoint: %s (retried in %d ms)", err.msg,
                   ev->ckpt_ms);
    }
    pthread_mutex_unlock(&ev->ckpt_mu);
    return NULL;
}

/* The locks of a new tg_events_t; 0, or -1 with none made. The checkpoint thread's clock is
 * monotonic. */
static int locks_init(tg_events_t *ev)
{
    if (pthread_mutex_init(&ev->mu, NULL) != 0)
        return -1;
    if (pthread_rwlock_init(&ev->stored_mu, NULL) != 0)
        goto no_rwlock;
    if (pthread_mutex_init(&ev->ckpt_mu, NULL) != 0)
        goto no_ckpt_mu;
    if (tg_clock_cond_init(&ev->ckpt_wake) == 0)
        return 0;
    pthread_mutex_destroy(&ev->ckpt_mu);
no_ckpt_mu:
    pthread_rwlock_destroy(&ev->stored_mu);
no_rwlock:
    pthread_mutex_destroy(&ev->mu);
    return -1;
}

int tg_events_sync_index(tg_events_t *ev, tg_err_t *err)
{
    pthread_mutex_lock(&ev->mu);
    int fd = tg_event_index_sync_fd(ev->index, err);
    pthread_mutex_unlock(&ev->mu);
    return fd < 0 ? fd : tg_event_index_sync(fd, err);
}

int tg_events_before_log_reset(void *arg, tg_err_t *err)
{
    tg_events_t *ev = arg;
    /* with a checkpoint, a retired log's rows are in the store's blocks, which a power cut
     * does not take: claimed again from there at open */
    return ev->ckpt_store != NULL ? 0 : tg_events_sync_index(ev, err);
}

int tg_events_open(const tg_events_opts_t *o, tg_events_t **out, tg_err_t *err)
{
    *out = NULL;
    tg_events_t *ev = calloc(1, sizeof(*ev));
    if (ev == NULL || locks_init(ev) != 0) {
        free(ev);
        return tg_errf(err, TG_ENOMEM, "out of memory starting usage events");
    }
    ev->cfg = o->cfg;
    ev->ckpt_ms = o->checkpoint_ms > 0 ? o->checkpoint_ms : CHECKPOINT_MS_DEFAULT;
    ev->ckpt_written = -1;
    derive(o->secret, o->secret_len, "tollgate usage event id v1", ev->event_key, sizeof(ev->event_key));
    derive(o->secret, o->secret_len, "tollgate usage event id siphash v2", ev->event_siphash_key,
           sizeof(ev->event_siphash_key));
    derive(o->secret, o->secret_len, "tollgate ingest token v1", ev->token_key, sizeof(ev->token_key));
    int rc = 0;
    int64_t until_s = 0;
    if (o->key_store != NULL && (rc = tg_store_event_key_blake2b_until(o->key_store, &until_s, err)) != 0)
        goto fail;
    if (until_s < 0 || until_s > INT64_MAX / NS_PER_S - 1) {
        rc = tg_errf(err, TG_ESTATE, "the store's event_key_schemes holds %lld, not a time in seconds",
                     (long long)until_s);
        goto fail;
    }
    ev->blake2b_until_ns = until_s > 0 ? until_s * NS_PER_S : -1; /* 0: none (a timestamp is >= 0) */
    ev->ntokens = o->cfg->events.ntokens;
    if (ev->ntokens > 0 && (ev->tokens = calloc(ev->ntokens, sizeof(*ev->tokens))) == NULL) {
        rc = tg_errf(err, TG_ENOMEM, "out of memory starting usage events");
        goto fail;
    }
    for (size_t i = 0; i < ev->ntokens; i++) {
        const tg_ingest_token_t *t = &o->cfg->events.tokens[i];
        ev->tokens[i].conf = t;
        crypto_generichash(ev->tokens[i].hash, sizeof(ev->tokens[i].hash), (const unsigned char *)t->token,
                           strlen(t->token), ev->token_key, sizeof(ev->token_key));
    }
    int window_days = (int)((o->cfg->events.dedup_window_s + 86399) / 86400);
    if (o->store_url != NULL && (rc = tg_store_open(o->store_url, &ev->ckpt_store, err)) != 0)
        goto fail;
    if ((rc = tg_event_index_open(o->index_path, window_days, o->cfg->events.index_keys, &ev->index, err)) != 0 ||
        (rc = recover_index(ev, o, err)) != 0)
        goto fail;
    if (ev->ckpt_store != NULL) {
        if (pthread_create(&ev->ckpt_thread, NULL, checkpoint_main, ev) != 0) {
            rc = tg_errf(err, TG_ENOMEM, "starting the dedup index's checkpoint thread");
            goto fail;
        }
        ev->ckpt_running = 1;
    }
    *out = ev;
    return 0;
fail:
    tg_events_close(ev);
    return rc;
}

void tg_events_attach(tg_events_t *ev, tg_accounts_t *accounts, tg_quota_t *quota, tg_meter_t *meter,
                      tg_thresholds_t *thresholds)
{
    ev->accounts = accounts;
    ev->quota = quota;
    ev->meter = meter;
    ev->thresholds = thresholds;
}

void tg_events_close(tg_events_t *ev)
{
    if (ev == NULL)
        return;
    if (ev->ckpt_running) { /* the thread stopped, then a last checkpoint: a restart claims less */
        pthread_mutex_lock(&ev->ckpt_mu);
        ev->ckpt_stop = 1;
        pthread_cond_signal(&ev->ckpt_wake);
        pthread_mutex_unlock(&ev->ckpt_mu);
        pthread_join(ev->ckpt_thread, NULL);
        tg_err_t err = {0};
        if (tg_events_checkpoint(ev, &err) != 0)
            tg_log(TG_LOG_WARN, "usage events: the dedup index's last checkpoint: %s", err.msg);
    }
    tg_store_close(ev->ckpt_store);
    pthread_cond_destroy(&ev->ckpt_wake);
    pthread_mutex_destroy(&ev->ckpt_mu);
    tg_event_index_close(ev->index);
    sodium_memzero(ev->event_key, sizeof(ev->event_key));
    sodium_memzero(ev->event_siphash_key, sizeof(ev->event_siphash_key));
    sodium_memzero(ev->token_key, sizeof(ev->token_key));
    free(ev->tokens);
    if (ev->stored != NULL)
        sodium_memzero(ev->stored, ev->stored_cap * sizeof(*ev->stored));
    free(ev->stored);
    pthread_rwlock_destroy(&ev->stored_mu);
    pthread_mutex_destroy(&ev->mu);
    free(ev);
}

char *tg_events_index_path(const char *store_url, const char *log_dir, const char *node, tg_err_t *err)
{
    char *path = NULL;
    int n;
    if (log_dir != NULL)
        n = node != NULL && *node != '\0' ? asprintf(&path, "%s/events-%s.idx", log_dir, node)
                                          : asprintf(&path, "%s/events.idx", log_dir);
    else if (strncmp(store_url, "sqlite:", 7) == 0)
        n = asprintf(&path, "%s-events.idx", store_url + 7);
    else
        return tg_errf(err, TG_EINVAL, "usage events need a log directory (metering.log_dir) with PostgreSQL"), NULL;
    if (n < 0) {
        tg_errf(err, TG_ENOMEM, "out of memory");
        return NULL;
    }
    return path;
}

/* ---- tokens ---- */

int tg_events_authenticate(tg_events_t *ev, const char *token, size_t len, tg_ingest_auth_t *out)
{
    uint8_t h[32];
    crypto_generichash(h, sizeof(h), (const unsigned char *)token, len, ev->token_key, sizeof(ev->token_key));
    const tg_ingest_token_t *match = NULL;
    for (size_t i = 0; i < ev->ntokens; i++) /* every one, so the time does not say which matched */
        if (sodium_memcmp(h, ev->tokens[i].hash, sizeof(h)) == 0)
            match = ev->tokens[i].conf;
    int found = match != NULL;
    if (match != NULL) {
        snprintf(out->name, sizeof(out->name), "%s", match->name);
        snprintf(out->customer, sizeof(out->customer), "%s", match->customer != NULL ? match->customer : "");
    }
    pthread_rwlock_rdlock(&ev->stored_mu);
    for (size_t i = 0; i < ev->nstored; i++)
        if (sodium_memcmp(h, ev->stored[i].hash, sizeof(h)) == 0 && !found) {
            found = 1;
            memcpy(out->name, ev->stored[i].name, sizeof(out->name));
            memcpy(out->customer, ev->stored[i].customer_id, sizeof(out->customer));
        }
    pthread_rwlock_unlock(&ev->stored_mu);
    sodium_memzero(h, sizeof(h));
    return found ? 0 : TG_ENOTFOUND;
}

void tg_events_token_hash(const uint8_t *secret, size_t secret_len, const char *token, size_t len, uint8_t out[32])
{
    uint8_t key[crypto_generichash_KEYBYTES];
    derive(secret, secret_len, "tollgate ingest token v1", key, sizeof(key));
    crypto_generichash(out, 32, (const unsigned char *)token, len, key, sizeof(key));
    sodium_memzero(key, sizeof(key));
}

/* Under the write lock. */
static int stored_put_locked(tg_events_t *ev, const tg_ingest_token_row_t *t)
{
    size_t i = 0;
    while (i < ev->nstored && strcmp(ev->stored[i].id, t->id) != 0)
        i++;
    if (t->revoked_at != 0) {
        if (i < ev->nstored) {
            ev->stored[i] = ev->stored[--ev->nstored];
            sodium_memzero(&ev->stored[ev->nstored], sizeof(ev->stored[0]));
        }
        return 0;
    }
    if (i == ev->nstored) {
        if (ev->nstored == ev->stored_cap) {
            size_t cap = ev->stored_cap != 0 ? ev->stored_cap * 2 : 16;
            tg_ingest_token_row_t *p = calloc(cap, sizeof(*p));
            if (p == NULL)
                return TG_ENOMEM;
            if (ev->nstored > 0)
                memcpy(p, ev->stored, ev->nstored * sizeof(*p));
            if (ev->stored != NULL)
                sodium_memzero(ev->stored, ev->stored_cap * sizeof(*ev->stored));
            free(ev->stored);
            ev->stored = p, ev->stored_cap = cap;
        }
        ev->nstored++;
    }
    ev->stored[i] = *t;
    return 0;
}

int tg_events_token_put(tg_events_t *ev, const tg_ingest_token_row_t *t)
{
    pthread_rwlock_wrlock(&ev->stored_mu);
    int rc = stored_put_locked(ev, t);
    pthread_rwlock_unlock(&ev->stored_mu);
    return rc;
}

typedef struct load_ctx {
    tg_ingest_token_row_t *rows;
    size_t n, cap;
    int oom;
} load_ctx_t;

static int load_one(const tg_ingest_token_row_t *t, void *arg)
{
    load_ctx_t *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap != 0 ? l->cap * 2 : 16;
        tg_ingest_token_row_t *p = calloc(cap, sizeof(*p));
        if (p == NULL) {
            l->oom = 1;
            return 1;
        }
        if (l->n > 0)
            memcpy(p, l->rows, l->n * sizeof(*p));
        if (l->rows != NULL)
            sodium_memzero(l->rows, l->cap * sizeof(*l->rows));
        free(l->rows);
        l->rows = p, l->cap = cap;
    }
    l->rows[l->n++] = *t;
    return 0;
}

int tg_events_tokens_load(tg_events_t *ev, tg_store_t *st, tg_err_t *err)
{
    /* read without the lock (the store may take milliseconds), swap under it */
    load_ctx_t l = {0};
    int rc = tg_store_ingest_token_list_active(st, load_one, &l, err);
    if (rc == 0 && l.oom)
        rc = tg_errf(err, TG_ENOMEM, "out of memory loading the ingest tokens");
    if (rc == 0) {
        pthread_rwlock_wrlock(&ev->stored_mu);
        tg_ingest_token_row_t *old = ev->stored;
        size_t old_cap = ev->stored_cap;
        ev->stored = l.rows, ev->nstored = l.n, ev->stored_cap = l.cap;
        pthread_rwlock_unlock(&ev->stored_mu);
        l.rows = old, l.cap = old_cap;
    }
    if (l.rows != NULL)
        sodium_memzero(l.rows, l.cap * sizeof(*l.rows));
    free(l.rows);
    return rc;
}

/* ---- RFC 3339 ---- */

static int digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int tg_events_parse_time(const char *s, size_t len, int64_t *ns)
{
    int y, mo, d, h, mi, sec;
    if (len < 20 || len > 35 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':' || digits(s, 4, &y) != 0 || digits(s + 5, 2, &mo) != 0 || digits(s + 8, 2, &d) != 0 ||
        digits(s + 11, 2, &h) != 0 || digits(s + 14, 2, &mi) != 0 || digits(s + 17, 2, &sec) != 0)
        return -1;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 || mi > 59 ||
        sec > 59)
        return -1;
    size_t i = 19;
    int64_t frac = 0;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        size_t nd = i - start;
        if (nd == 0 || nd > 9)
            return -1;
        for (size_t k = 0; k < 9; k++)
            frac = frac * 10 + (k < nd ? s[start + k] - '0' : 0);
    }
    int64_t offset_s = 0;
    if (i + 1 == len && (s[i] == 'Z' || s[i] == 'z')) {
        offset_s = 0;
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh, om;
        if (digits(s + i + 1, 2, &oh) != 0 || digits(s + i + 4, 2, &om) != 0 || oh > 23 || om > 59)
            return -1;
        offset_s = (int64_t)(oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
    } else {
        return -1;
    }
    int64_t secs = tg_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_s;
    if (secs < 0 || secs > INT64_MAX / NS_PER_S - 1)
        return -1;
    *ns = secs * NS_PER_S + frac;
    return 0;
}

/* ---- one event ---- */

static int refuse(tg_event_result_t *r, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(tg_event_result_t *r, const char *field, const char *fmt, ...)
{
    r->outcome = TG_EVENT_REFUSED;
    r->field = field;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof(r->message), fmt, ap);
    va_end(ap);
    return -1;
}

static int printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

static int metric_chars(const char *s, size_t n)
{
    if (n == 0 || n >= TG_METRIC_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* ---- what one batch learns once ----
 * A batch names few customers, one or two metrics and one timestamp many times over (a thousand
 * events of bench/events.sh: a hundred customers, one metric, one timestamp). Each customer or
 * key is looked up, each metric validated and each timestamp parsed on its first event, and
 * remembered for the rest of the batch only: the memo lives in one call of tg_events_ingest, so
 * a customer, key or plan changed between two batches is seen by the second, as before. (Per
 * event, the directory's lock and lookup, the token's scope, the plan's id and the period were
 * 9 % of tollgate's CPU in bench/events.sh's profile.) */

/* A customer or key id as a batch names it, and what it resolved to. */
typedef struct ref_memo {
    const char *ref; /* the event's bytes (the body outlives the call) */
    size_t len;
    int by_key;                   /* ref is an API key's id */
    tg_account_t *acct;           /* NULL: nothing has that id */
    int other_customer;           /* a scoped token's refusal: not its customer (or nothing) */
    size_t id_len;                /* of tg_account_id(acct) */
    char key_id[TG_ID_MAX];       /* the row's key_id: ref by key, else "" */
    char plan_id[TG_PLAN_ID_MAX]; /* the account's plan's, when the batch first named it */
    size_t key_len, plan_len;
    int64_t start, end; /* the billing period met last, [start, end) seconds; start == end: none */
} ref_memo_t;

#define METRIC_MEMO 8 /* distinct metrics remembered; a batch naming more validates the rest each time */

typedef struct batch_memo {
    uint32_t *slots; /* open addressing, a power of two >= 2 x refs: 1 + index into refs, 0 free */
    size_t nslots;
    ref_memo_t *refs; /* at most one per event */
    size_t nrefs;
    struct {
        char name[TG_METRIC_MAX];
        size_t len;
    } metrics[METRIC_MEMO]; /* defined metrics met */
    size_t nmetrics;
    const char *ts; /* the last timestamp parsed (NULL: none) and its value */
    size_t ts_len;
    int64_t ts_ns;
} batch_memo_t;

static int memo_init(batch_memo_t *m, size_t n)
{
    memset(m, 0, sizeof(*m));
    m->nslots = 16;
    while (m->nslots < n * 2)
        m->nslots <<= 1;
    m->slots = calloc(m->nslots, sizeof(*m->slots));
    m->refs = malloc((n ? n : 1) * sizeof(*m->refs));
    if (m->slots == NULL || m->refs == NULL) {
        free(m->slots);
        free(m->refs);
        return TG_ENOMEM;
    }
    return 0;
}

static void memo_free(batch_memo_t *m)
{
    free(m->slots);
    free(m->refs);
}

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33; /* murmur3's finaliser: the low bits depend on every bit of the input */
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    return h;
}

static uint64_t bytes_hash(const char *s, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * UINT64_C(0x100000001b3); /* FNV-1a */
    return mix64(h);
}

/* Who a customer or key id (ref_len < TG_ID_MAX, printable) names, looked up once a batch. The
 * scope of a scoped token is decided here too, once. */
static ref_memo_t *resolve_ref(tg_events_t *ev, const tg_ingest_auth_t *who, batch_memo_t *m, const char *ref,
                               size_t len, int by_key)
{
    size_t i =
        bytes_hash(ref, len, by_key ? UINT64_C(0xcbf29ce484222325) : UINT64_C(0x84222325cbf29ce4)) & (m->nslots - 1);
    for (; m->slots[i] != 0; i = (i + 1) & (m->nslots - 1)) {
        ref_memo_t *r = &m->refs[m->slots[i] - 1];
        if (r->len == len && r->by_key == by_key && memcmp(r->ref, ref, len) == 0)
            return r;
    }
    ref_memo_t *r = &m->refs[m->nrefs];
    m->slots[i] = (uint32_t)++m->nrefs;
    *r = (ref_memo_t){.ref = ref, .len = len, .by_key = by_key};
    char id[TG_ID_MAX];
    memcpy(id, ref, len);
    id[len] = '\0';
    r->acct = by_key ? tg_accounts_find_by_key_id(ev->accounts, id) : tg_accounts_find(ev->accounts, id);
    /* A token scoped to one customer learns nothing about the others: an id that is not its
     * customer's gets one answer, whether it exists or not. */
    r->other_customer =
        who->customer[0] != '\0' && (r->acct == NULL || strcmp(who->customer, tg_account_id(r->acct)) != 0);
    r->key_len = by_key ? len : 0;
    memcpy(r->key_id, id, r->key_len);
    r->key_id[r->key_len] = '\0';
    if (r->acct != NULL) {
        r->id_len = strlen(tg_account_id(r->acct));
        const char *plan = tg_account_plan(r->acct)->id;
        r->plan_len = strnlen(plan, sizeof(r->plan_id) - 1);
        memcpy(r->plan_id, plan, r->plan_len);
        r->plan_id[r->plan_len] = '\0';
    }
    return r;
}

/* The start of the billing period of r's account containing ts_s: most of a batch's events fall
 * in the period its customer's first event met (a period is a calendar computation). */
static int64_t period_start(ref_memo_t *r, int64_t ts_s)
{
    if (ts_s < r->start || ts_s >= r->end)
        tg_account_period(r->acct, ts_s, &r->start, &r->end);
    return r->start;
}

/* 1 when the metric (its bytes, metric_chars already checked) is defined; remembered. */
static int metric_defined(tg_events_t *ev, batch_memo_t *m, const char *metric, size_t len)
{
    for (size_t i = 0; i < m->nmetrics; i++)
        if (m->metrics[i].len == len && memcmp(m->metrics[i].name, metric, len) == 0)
            return 1;
    char name[TG_METRIC_MAX];
    memcpy(name, metric, len);
    name[len] = '\0';
    if (!tg_config_metric_defined(ev->cfg, name))
        return 0;
    if (m->nmetrics < METRIC_MEMO) {
        memcpy(m->metrics[m->nmetrics].name, name, len + 1);
        m->metrics[m->nmetrics++].len = len;
    }
    return 1;
}

/* tg_events_parse_time, the last timestamp's value again when the bytes are the same. */
static int parse_time(batch_memo_t *m, const char *s, size_t len, int64_t *ns)
{
    if (m->ts != NULL && m->ts_len == len && memcmp(m->ts, s, len) == 0) {
        *ns = m->ts_ns;
        return 0;
    }
    if (tg_events_parse_time(s, len, ns) != 0)
        return -1;
    m->ts = s, m->ts_len = len, m->ts_ns = *ns;
    return 0;
}

/* An event that passed its checks: what its row is made of, once its claim is kept. */
typedef struct checked {
    const ref_memo_t *ref;
    const char *metric; /* the event's bytes */
    size_t metric_len;
    uint64_t units;
    int64_t ts_ns, period_start;
} checked_t;

static void fill_row(tg_usage_t *row, const checked_t *c, uint64_t event_id)
{
    const ref_memo_t *r = c->ref;
    row->event_id = event_id;
    memcpy(row->customer_id, tg_account_id(r->acct), r->id_len + 1);
    memcpy(row->key_id, r->key_id, r->key_len + 1);
    memcpy(row->plan_id, r->plan_id, r->plan_len + 1);
    memcpy(row->metric, c->metric, c->metric_len);
    row->metric[c->metric_len] = '\0';
    memcpy(row->endpoint, TG_EVENT_ENDPOINT, sizeof(TG_EVENT_ENDPOINT));
    row->units = c->units;
    row->ts_ns = c->ts_ns;
    row->period_start = c->period_start;
    row->status = 200;
}

/* Checks e; on success fills *c and marks r accepted. -1 with r refused otherwise. */
static int check_event(tg_events_t *ev, const tg_ingest_auth_t *who, const tg_event_in_t *e, int64_t now_ns,
                       batch_memo_t *memo, tg_event_result_t *r, checked_t *c)
{
    if (e->bad_field != NULL)
        return refuse(r, e->bad_field, "%s", e->bad_message != NULL ? e->bad_message : "is not valid");
    if (e->id == NULL)
        return refuse(r, "id",
                      "is required: a unique id for this event (1 to %d characters), so that a retry "
                      "counts once",
                      TG_EVENT_ID_MAX);
    if (e->id_len == 0 || e->id_len > TG_EVENT_ID_MAX || (!e->plain && !printable(e->id, e->id_len)))
        return refuse(r, "id", "must be 1 to %d printable ASCII characters", TG_EVENT_ID_MAX);
    if ((e->customer == NULL) == (e->key == NULL))
        return refuse(r, e->customer == NULL ? "customer" : "key",
                      "give exactly one of customer (a cus_ id) and key (the id of one of the customer's keys)");
    const char *field = e->customer != NULL ? "customer" : "key";
    const char *ref = e->customer != NULL ? e->customer : e->key;
    size_t ref_len = e->customer != NULL ? e->customer_len : e->key_len;
    if (ref_len == 0 || ref_len >= TG_ID_MAX || (!e->plain && !printable(ref, ref_len)))
        return refuse(r, field, "is not a %s id", field);
    ref_memo_t *who_ref = resolve_ref(ev, who, memo, ref, ref_len, e->key != NULL);
    if (who_ref->other_customer)
        return refuse(r, field, "the ingest token \"%s\" reports usage for %s only", who->name, who->customer);
    if (who_ref->acct == NULL)
        return refuse(r, field, "no %s has the id \"%.*s\"", e->customer != NULL ? "customer" : "API key", (int)ref_len,
                      ref);
    if (e->metric == NULL)
        return refuse(r, "metric", "is required");
    if (!metric_chars(e->metric, e->metric_len))
        return refuse(r, "metric", "must be lowercase letters, digits and '_' (under %d characters)", TG_METRIC_MAX);
    if (!metric_defined(ev, memo, e->metric, e->metric_len))
        return refuse(r, "metric",
                      "\"%.*s\" is not defined: no plan includes or prices it, no route meters it and "
                      "metering.metrics does not name it",
                      (int)e->metric_len, e->metric);
    if (!e->has_value)
        return refuse(r, "value", "is required");
    /* The bound of a call's reported units (Tollgate-Units): one mistaken event of 2^63-1 would
     * leave its customer's invoice unpriceable (money_out_of_range) with the usage kept. */
    uint64_t max = ev->cfg->metering.max_units_per_call;
    if (e->value < 1 || (uint64_t)e->value > max)
        return refuse(r, "value", "must be a whole number from 1 to metering.max_units_per_call (%llu)",
                      (unsigned long long)max);
    if (e->timestamp == NULL)
        return refuse(r, "timestamp", "is required (RFC 3339, for example 2026-12-04T14:20:45Z)");
    int64_t ts;
    if (parse_time(memo, e->timestamp, e->timestamp_len, &ts) != 0)
        return refuse(r, "timestamp", "is not an RFC 3339 date-time (for example 2026-12-04T14:20:45Z)");
    if (ts > now_ns + (int64_t)TG_EVENT_FUTURE_S * NS_PER_S)
        return refuse(r, "timestamp", "is more than %d minutes ahead of the gateway's clock", TG_EVENT_FUTURE_S / 60);
    if (ts < now_ns - ev->cfg->events.dedup_window_s * NS_PER_S)
        return refuse(r, "timestamp",
                      "is older than the dedup window (events.dedup_window, %lld days): it can no "
                      "longer be counted exactly once",
                      (long long)(ev->cfg->events.dedup_window_s / 86400));
    *c = (checked_t){who_ref, e->metric, e->metric_len, (uint64_t)e->value, ts, period_start(who_ref, ts / NS_PER_S)};
    r->outcome = TG_EVENT_ACCEPTED;
    r->field = NULL;
    r->message[0] = '\0';
    return 0;
}

/* `units` (one event's, or a group's of one batch) count against the quota now, as a call's
 * reported units do; a crossing of a notification level is queued as the gateway queues it
 * (gateway.c). row gives the customer, period, metric and timestamp. */
static void count_units(tg_events_t *ev, tg_account_t *acct, const tg_usage_t *row, uint64_t units)
{
    tg_quota_add(ev->quota, row->customer_id, row->period_start, row->metric, units);
    const tg_plan_t *plan = tg_account_plan(acct);
    uint64_t included = tg_plan_included(plan, row->metric);
    if (ev->thresholds == NULL || included == TG_UNLIMITED || plan->notify_thresholds.n == 0)
        return;
    uint64_t after = tg_quota_used(ev->quota, row->customer_id, row->period_start, row->metric);
    uint64_t before = after > units ? after - units : 0;
    unsigned mask = tg_thresholds_crossed(before, after, included, &plan->notify_thresholds);
    if (mask == 0)
        return;
    tg_crossing_t c = {.kind = TG_CROSSING_USAGE,
                       .mask = (uint8_t)mask,
                       .plan = plan,
                       .period_start = row->period_start,
                       .used = after,
                       .included = included};
    int64_t start;
    tg_account_period(acct, row->ts_ns / NS_PER_S, &start, &c.period_end);
    snprintf(c.customer_id, sizeof(c.customer_id), "%s", row->customer_id);
    snprintf(c.metric, sizeof(c.metric), "%s", row->metric);
    tg_thresholds_push(ev->thresholds, &c);
}

/* The events of one batch with the same account, period and metric: their units are counted
 * at once. A thousand events naming a hundred customers touch the quota counters a hundred
 * times rather than a thousand (the counters' lookups were 7 % of bench/events.sh's profile).
 * The counters saturate at UINT64_MAX, and so does a group's sum: the same totals. */
typedef struct unit_group {
    tg_account_t *acct;    /* NULL: a free slot */
    const tg_usage_t *row; /* the group's first row */
    uint64_t units;
} unit_group_t;

static uint64_t group_hash(const tg_account_t *acct, int64_t period, const char *metric)
{
    uint64_t h = (uint64_t)(uintptr_t)acct ^ (uint64_t)period * UINT64_C(0x9e3779b97f4a7c15);
    for (const char *m = metric; *m != '\0'; m++)
        h = (h ^ (unsigned char)*m) * UINT64_C(0x100000001b3);
    return mix64(h);
}

static void count_batch(tg_events_t *ev, const checked_t *chk, const tg_usage_t *rows, size_t n)
{
    size_t cap = 16;
    while (cap < n * 2)
        cap <<= 1;
    unit_group_t *g = calloc(cap, sizeof(*g));
    if (g == NULL) { /* the same counts, event by event */
        for (size_t k = 0; k < n; k++)
            count_units(ev, chk[k].ref->acct, &rows[k], rows[k].units);
        return;
    }
    for (size_t k = 0; k < n; k++) {
        const tg_usage_t *r = &rows[k];
        tg_account_t *acct = chk[k].ref->acct;
        size_t i = group_hash(acct, r->period_start, r->metric) & (cap - 1);
        while (g[i].acct != NULL && (g[i].acct != acct || g[i].row->period_start != r->period_start ||
                                     strcmp(g[i].row->metric, r->metric) != 0))
            i = (i + 1) & (cap - 1);
        if (g[i].acct == NULL)
            g[i] = (unit_group_t){acct, r, 0};
        if (__builtin_add_overflow(g[i].units, r->units, &g[i].units))
            g[i].units = UINT64_MAX;
    }
    for (size_t i = 0; i < cap; i++)
        if (g[i].acct != NULL)
            count_units(ev, g[i].acct, g[i].row, g[i].units);
    free(g);
}

/* The rows are not logged: claims withdrawn, quota given back, accepted outcomes refused. */
static void unwind(ticket_t *t)
{
    pthread_mutex_lock(&t->ev->mu);
    for (size_t i = 0; i < t->n; i++)
        tg_event_index_withdraw(t->ev->index, t->acc[i].key);
    pthread_mutex_unlock(&t->ev->mu);
    for (size_t i = 0; i < t->n; i++) {
        const tg_usage_t *u = &t->rows[i];
        tg_quota_release(t->ev->quota, u->customer_id, u->period_start, u->metric, u->units);
        refuse(&t->results[t->acc[i].at], "",
               "could not be recorded now (the metering log is unavailable); "
               "nothing in this batch was counted: send it again");
    }
}

static void ticket_free(ticket_t *t)
{
    free(t->acc);
    free(t->rows);
    free(t);
}

static void on_logged(void *arg, int status)
{
    ticket_t *t = arg;
    if (status == 0) {
        pthread_mutex_lock(&t->ev->mu);
        for (size_t i = 0; i < t->n; i++) {
            if (i + PREFETCH_AHEAD < t->n)
                tg_event_index_prefetch_at(t->ev->index, &t->acc[i + PREFETCH_AHEAD].slot);
            tg_event_index_commit_at(t->ev->index, &t->acc[i].slot, t->acc[i].key);
        }
        pthread_mutex_unlock(&t->ev->mu);
    } else {
        unwind(t);
    }
    tg_events_done_cb cb = t->cb;
    void *cb_arg = t->arg;
    ticket_free(t);
    cb(cb_arg, status);
}

int tg_events_ingest(tg_events_t *ev, const tg_ingest_auth_t *who, const tg_event_in_t *in, size_t n, int64_t now_ns,
                     tg_event_result_t *results, tg_meter_batch_t *batch, tg_events_done_cb cb, void *arg,
                     tg_err_t *err)
{
    ticket_t *t = calloc(1, sizeof(*t));
    checked_t *chk = malloc((n ? n : 1) * sizeof(*chk));
    batch_memo_t memo;
    int memo_rc = memo_init(&memo, n);
    if (t == NULL || chk == NULL || memo_rc != 0 ||
        (n > 0 &&
         ((t->acc = malloc(n * sizeof(*t->acc))) == NULL || (t->rows = malloc(n * sizeof(*t->rows))) == NULL))) {
        free(chk);
        if (memo_rc == 0)
            memo_free(&memo);
        if (t != NULL)
            ticket_free(t);
        return tg_errf(err, TG_ENOMEM, "out of memory taking %zu events", n);
    }
    *t = (ticket_t){ev, cb, arg, results, 0, t->acc, t->rows};
    /* check every event first, without the lock */
    for (size_t i = 0; i < n; i++) {
        if (check_event(ev, who, &in[i], now_ns, &memo, &results[i], &chk[t->n]) != 0)
            continue;
        t->acc[t->n].at = i;
        event_key(ev, tg_account_id(chk[t->n].ref->acct), in[i].id, in[i].id_len, chk[t->n].ts_ns, t->acc[t->n].key);
        t->n++;
    }
    /* then claim them all under one lock: a key held (or repeated in this batch) is a duplicate */
    uint32_t today = (uint32_t)(now_ns / NS_PER_S / 86400);
    size_t kept = 0;
    int rc = 0;
    pthread_mutex_lock(&ev->mu);
    for (size_t k = 0; k < t->n; k++) {
        if (k + PREFETCH_AHEAD < t->n)
            tg_event_index_prefetch(ev->index, t->acc[k + PREFETCH_AHEAD].key);
        int claimed = tg_event_index_claim(ev->index, t->acc[k].key, today, &t->acc[k].slot, err);
        if (claimed < 0) {
            rc = claimed;
            for (size_t j = 0; j < kept; j++)
                tg_event_index_withdraw(ev->index, t->acc[j].key);
            break;
        }
        if (claimed == 0) {
            results[t->acc[k].at].outcome = TG_EVENT_DUPLICATE;
            continue;
        }
        if (kept != k) {
            t->acc[kept] = t->acc[k];
            chk[kept] = chk[k];
        }
        kept++;
    }
    pthread_mutex_unlock(&ev->mu);
    t->n = kept;
    if (rc != 0 || kept == 0) {
        free(chk);
        memo_free(&memo);
        ticket_free(t);
        return rc;
    }
    /* rows for the kept events only: a duplicate costs no row, and no row moves */
    for (size_t k = 0; k < kept; k++)
        fill_row(&t->rows[k], &chk[k], row_event_id(t->acc[k].key));
    count_batch(ev, chk, t->rows, kept);
    free(chk);
    memo_free(&memo);
    rc = batch != NULL ? tg_meter_batch_add(batch, t->rows, kept, on_logged, t)
                       : tg_meter_submit(ev->meter, t->rows, kept, on_logged, t);
    if (rc != 0) { /* not queued: nothing of it is counted, and the answer says so */
        unwind(t);
        ticket_free(t);
        return 0;
    }
    return 1;
}
