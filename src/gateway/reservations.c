/* reservations.c - see reservations.h.
 *
 * 16 shards, each a chained hash table and a FIFO of its entries in the order they were held.
 * Every reservation has the same timeout, so the FIFO is also the order of their deadlines and
 * expiry only looks at each shard's head. The shard and bucket come from the id's random bytes,
 * so an attacker cannot crowd one bucket. The capacity is counted once for the whole table (an
 * atomic), so a small table is not refused early by an unlucky shard. An entry is unlinked under
 * its shard's lock and settled after the lock is dropped: the first to unlink it is the only one
 * to settle it, and the meter is never called under a lock.
 *
 * With a file, an entry also owns a slot (reservation_file.h), written before the entry is
 * linked. A billed entry's slot is freed by the meter's callback, once its rows are in the
 * metering log, so the entry then has two owners, the settling thread and the callback: the
 * last to let go frees it. A released entry's slot is freed at once; one whose usage the meter
 * refused (or could not log, at shutdown) stays open, for the next start to bill. */
#include "gateway/reservations.h"

#include "gateway/accounts.h"
#include "gateway/reservation_file.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define NSHARDS 16
#define ID_PREFIX "rsv_"
#define ID_PREFIX_LEN 4

typedef struct entry {
    struct entry *hnext;       /* bucket chain */
    struct entry *prev, *next; /* the shard's FIFO */
    int64_t deadline_ns;
    uint64_t hash;
    char id[TG_RESERVATION_ID_MAX];
    tg_call_t call;
    tg_reservation_label_t label;
    tg_reservation_file_t *file; /* NULL: no slot */
    int64_t slot;
    _Atomic int owners;  /* the settling thread, and the meter's callback while it is due */
    tg_meter_done_cb cb; /* the settlement's, called from on_logged */
    void *cb_arg;
} entry_t;

typedef struct shard {
    pthread_mutex_t mu;
    entry_t **buckets;
    size_t mask;
    entry_t *head, *tail; /* oldest first */
} shard_t;

struct tg_reservations {
    tg_gateway_t *gw;
    tg_reservations_opts_t opts;
    shard_t shards[NSHARDS];
    _Atomic uint64_t held, settled, expired, full, customer_full, unknown;
};

tg_reservations_t *tg_reservations_new(tg_gateway_t *gw, const tg_reservations_opts_t *opts)
{
    tg_reservations_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->gw = gw;
    r->opts = *opts;
    /* about two entries per bucket when full; at least 16 buckets a shard */
    size_t nb = 16;
    while (nb * NSHARDS * 2 < opts->capacity && nb < ((size_t)1 << 24))
        nb <<= 1;
    for (int i = 0; i < NSHARDS; i++) {
        shard_t *s = &r->shards[i];
        pthread_mutex_init(&s->mu, NULL);
        s->mask = nb - 1;
        if ((s->buckets = calloc(nb, sizeof(*s->buckets))) == NULL) {
            for (int j = 0; j <= i; j++) {
                free(r->shards[j].buckets);
                pthread_mutex_destroy(&r->shards[j].mu);
            }
            free(r);
            return NULL;
        }
    }
    return r;
}

static void let_go(entry_t *e)
{
    if (atomic_fetch_sub_explicit(&e->owners, 1, memory_order_acq_rel) == 1)
        free(e);
}

/* The meter's callback for a billed entry with a slot: its rows are in the metering log (status
 * 0), so the slot is free; if they could not be logged (shutdown), it stays open for the next
 * start. Then the settlement's own callback. */
static void on_logged(void *arg, int status)
{
    entry_t *e = arg;
    if (status == 0)
        tg_reservation_file_free_slot(e->file, e->slot);
    if (e->cb != NULL)
        e->cb(e->cb_arg, status);
    let_go(e);
}

/* tg_gateway_settle for an entry nobody else can reach any more, its slot handed on with the
 * usage (see the top of the file); the entry is still the caller's when it returns. */
static int settle_entry(tg_reservations_t *r, entry_t *e, int status, int upstream_failed, const char *units_header,
                        size_t units_len, tg_meter_done_cb cb, void *arg)
{
    if (e->file == NULL)
        return tg_gateway_settle(r->gw, &e->call, status, upstream_failed, units_header, units_len, cb, arg);
    e->cb = cb;
    e->cb_arg = arg;
    atomic_store_explicit(&e->owners, 2, memory_order_relaxed);
    int rc = tg_gateway_settle(r->gw, &e->call, status, upstream_failed, units_header, units_len, on_logged, e);
    if (rc != 1) { /* on_logged will not fire */
        atomic_store_explicit(&e->owners, 1, memory_order_relaxed);
        if (rc == 0) /* released; a refused usage leaves the slot open: billed at the next start */
            tg_reservation_file_free_slot(e->file, e->slot);
    }
    return rc;
}

/* An entry left the table: its customer's share is free again. */
static void unhold(tg_reservations_t *r, entry_t *e)
{
    if (r->opts.per_customer > 0)
        tg_account_reservation_give(e->call.account);
}

/* Settles an entry that nobody else can reach any more by the timeout rule, and lets it go. */
static void settle_by_rule(tg_reservations_t *r, entry_t *e)
{
    unhold(r, e);
    if (r->opts.on_timeout == TG_RESERVATION_RELEASE) {
        tg_gateway_abandon(r->gw, &e->call);
        if (e->file != NULL)
            tg_reservation_file_free_slot(e->file, e->slot);
    } else { /* answered, as far as anyone knows: billed with the route's units */
        settle_entry(r, e, 200, 0, NULL, 0, NULL, NULL);
    }
    if (r->opts.on_end != NULL)
        r->opts.on_end(r->opts.on_end_arg, &e->call, &e->label, e->id, 0, 1);
    let_go(e);
}

void tg_reservations_free(tg_reservations_t *r)
{
    if (r == NULL)
        return;
    for (int i = 0; i < NSHARDS; i++) {
        shard_t *s = &r->shards[i];
        for (entry_t *e = s->head, *next; e != NULL; e = next) {
            next = e->next;
            settle_by_rule(r, e);
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    free(r);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The hash of a well-formed id (its first 8 random bytes); 0 and *ok = 0 if it is not one. */
static uint64_t id_hash(const char *id, size_t len, int *ok)
{
    *ok = 0;
    if (len != TG_RESERVATION_ID_LEN || memcmp(id, ID_PREFIX, ID_PREFIX_LEN) != 0)
        return 0;
    uint64_t h = 0;
    for (size_t i = ID_PREFIX_LEN; i < len; i++) {
        int v = hexval(id[i]);
        if (v < 0)
            return 0;
        if (i < ID_PREFIX_LEN + 16)
            h = h << 4 | (uint64_t)v;
    }
    *ok = 1;
    return h;
}

static void fifo_unlink(shard_t *s, entry_t *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        s->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        s->tail = e->prev;
}

static void bucket_unlink(shard_t *s, entry_t *e)
{
    entry_t **p = &s->buckets[(e->hash >> 4) & s->mask];
    while (*p != e)
        p = &(*p)->hnext;
    *p = e->hnext;
}

static void copy_cut(char *dst, size_t cap, const char *src, size_t len)
{
    if (src == NULL)
        len = 0;
    if (len > cap - 1)
        len = cap - 1;
    if (len > 0)
        memcpy(dst, src, len);
    dst[len] = '\0';
}

void tg_reservation_label_set(tg_reservation_label_t *label, const char *method, size_t method_len, const char *path,
                              size_t path_len, const char *request_id, size_t request_id_len)
{
    copy_cut(label->method, sizeof(label->method), method, method_len);
    copy_cut(label->path, sizeof(label->path), path, path_len);
    copy_cut(label->request_id, sizeof(label->request_id), request_id, request_id_len);
}

int tg_reservations_hold(tg_reservations_t *r, tg_call_t *call, const tg_reservation_label_t *label,
                         int64_t now_mono_ns, char id_out[TG_RESERVATION_ID_MAX], tg_err_t *err)
{
    if (atomic_fetch_add(&r->held, 1) >= r->opts.capacity) {
        atomic_fetch_sub(&r->held, 1);
        atomic_fetch_add(&r->full, 1);
        return tg_errf(err, TG_ELIMIT, "%zu calls are waiting for their settlement (decide.max_pending)",
                       r->opts.capacity);
    }
    uint32_t per_customer = r->opts.per_customer > UINT32_MAX ? UINT32_MAX : (uint32_t)r->opts.per_customer;
    if (per_customer > 0 && !tg_account_reservation_take(call->account, per_customer)) {
        atomic_fetch_sub(&r->held, 1);
        atomic_fetch_add(&r->customer_full, 1);
        return tg_errf(err, TG_ESTATE,
                       "customer %s has %zu calls waiting for their settlement (decide.max_pending_per_customer)",
                       tg_account_id(call->account), r->opts.per_customer);
    }
    entry_t *e = malloc(sizeof(*e));
    if (e == NULL) {
        atomic_fetch_sub(&r->held, 1);
        if (per_customer > 0)
            tg_account_reservation_give(call->account);
        return tg_errf(err, TG_ENOMEM, "out of memory holding a reservation");
    }
    e->file = r->opts.file;
    e->slot = -1;
    atomic_init(&e->owners, 1);
    /* A slot left open by a refused usage (see the top) is not given back: then fewer are free
     * than the count says. */
    if (e->file != NULL && (e->slot = tg_reservation_file_take(e->file)) < 0) {
        free(e);
        atomic_fetch_sub(&r->held, 1);
        if (per_customer > 0)
            tg_account_reservation_give(call->account);
        atomic_fetch_add(&r->full, 1);
        return tg_errf(err, TG_ELIMIT, "no free slot for a reservation (decide.max_pending)");
    }
    uint8_t raw[16];
    randombytes_buf(raw, sizeof(raw));
    memcpy(e->id, ID_PREFIX, ID_PREFIX_LEN);
    sodium_bin2hex(e->id + ID_PREFIX_LEN, TG_RESERVATION_ID_MAX - ID_PREFIX_LEN, raw, sizeof(raw));
    int ok;
    e->hash = id_hash(e->id, TG_RESERVATION_ID_LEN, &ok);
    e->deadline_ns = now_mono_ns + r->opts.timeout_ns;
    e->call = *call;
    e->call.request_id = NULL; /* the caller's memory; the call now outlives its request */
    if (label != NULL)
        e->label = *label;
    else
        tg_reservation_label_set(&e->label, NULL, 0, NULL, 0, NULL, 0);
    call->settled = 1; /* ours from now on: the caller's abandon does nothing */
    memcpy(id_out, e->id, TG_RESERVATION_ID_MAX);
    /* drawn now, so that the slot and the usage rows carry the same one (checked at restart) */
    e->call.event_id = tg_meter_next_event_id();
    if (e->file != NULL)
        tg_reservation_file_open_slot(e->file, e->slot, &e->call, e->id);

    shard_t *s = &r->shards[e->hash & (NSHARDS - 1)];
    pthread_mutex_lock(&s->mu);
    entry_t **b = &s->buckets[(e->hash >> 4) & s->mask];
    e->hnext = *b;
    *b = e;
    e->next = NULL;
    e->prev = s->tail;
    if (s->tail != NULL)
        s->tail->next = e;
    else
        s->head = e;
    s->tail = e;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* Unlinks and returns the entry with this id, or NULL. */
static entry_t *take(tg_reservations_t *r, const char *id, size_t id_len)
{
    int ok;
    uint64_t h = id_hash(id, id_len, &ok);
    if (!ok)
        return NULL;
    shard_t *s = &r->shards[h & (NSHARDS - 1)];
    pthread_mutex_lock(&s->mu);
    entry_t *e = s->buckets[(h >> 4) & s->mask];
    while (e != NULL && !(e->hash == h && sodium_memcmp(e->id, id, TG_RESERVATION_ID_LEN) == 0))
        e = e->hnext;
    if (e != NULL) {
        bucket_unlink(s, e);
        fifo_unlink(s, e);
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

int tg_reservations_settle(tg_reservations_t *r, const char *id, size_t id_len, int status, int upstream_failed,
                           const char *units_header, size_t units_len, tg_meter_done_cb cb, void *arg)
{
    entry_t *e = take(r, id, id_len);
    if (e == NULL) {
        atomic_fetch_add(&r->unknown, 1);
        return TG_ENOTFOUND;
    }
    atomic_fetch_sub(&r->held, 1);
    atomic_fetch_add(&r->settled, 1);
    unhold(r, e);
    int rc = settle_entry(r, e, status, upstream_failed, units_header, units_len, cb, arg);
    if (r->opts.on_end != NULL)
        r->opts.on_end(r->opts.on_end_arg, &e->call, &e->label, e->id, status, 0);
    let_go(e);
    return rc;
}

size_t tg_reservations_expire(tg_reservations_t *r, int64_t now_mono_ns)
{
    size_t n = 0;
    for (int i = 0; i < NSHARDS; i++) {
        shard_t *s = &r->shards[i];
        entry_t *due = NULL, **tail = &due;
        pthread_mutex_lock(&s->mu);
        while (s->head != NULL && s->head->deadline_ns <= now_mono_ns) {
            entry_t *e = s->head;
            bucket_unlink(s, e);
            fifo_unlink(s, e);
            e->next = NULL;
            *tail = e;
            tail = &e->next;
        }
        pthread_mutex_unlock(&s->mu);
        for (entry_t *e = due, *next; e != NULL; e = next) {
            next = e->next;
            atomic_fetch_sub(&r->held, 1);
            atomic_fetch_add(&r->expired, 1);
            settle_by_rule(r, e);
            n++;
        }
    }
    return n;
}

void tg_reservations_get_stats(tg_reservations_t *r, tg_reservations_stats_t *out)
{
    out->held = atomic_load(&r->held);
    out->settled = atomic_load(&r->settled);
    out->expired = atomic_load(&r->expired);
    out->full = atomic_load(&r->full);
    out->customer_full = atomic_load(&r->customer_full);
    out->unknown = atomic_load(&r->unknown);
}
