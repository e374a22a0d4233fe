/* events.h - usage that is not an API call (issue 16): events reported by the owner's own jobs
 * (tokens generated in the background, images processed from a queue, storage held), counted
 * exactly like the usage of proxied calls.
 *
 * The domain service behind POST /v1/events (the HTTP adapter is src/http/events_http.c, which
 * parses JSON and answers; nothing here knows HTTP). For one batch it:
 *  1. authenticates the ingest token (tg_events_authenticate: a keyed hash compared in constant
 *     time with every configured token's and every stored token's - those created in the admin
 *     API, held in memory; a token scoped to one customer reports for no other);
 *  2. checks each event (tg_events_ingest) and gives it an outcome as a value: accepted,
 *     duplicate, or refused with the field and a sentence. The checks: id 1-128 printable
 *     bytes; exactly one of customer (an existing cus_ id) and key (an existing key id); a
 *     metric that is defined (tg_config_metric_defined); value 1 to metering.max_units_per_call
 *     (as a call's reported units: one event past it could make an invoice unpriceable); timestamp RFC
 *     3339, not older than events.dedup_window and not more than 5 minutes ahead;
 *  3. claims each checked event's key - a keyed hash of (customer, id): SipHash-2-4-128, or
 *     BLAKE2b-128 for an event dated up to the upgrade's switch time (tg_events_event_key) - in
 *     this node's on-disk index (event_index.h): a key held within the window is a duplicate, as
 *     is an id repeated inside the batch (the exact check on one node; across nodes the store's,
 *     below);
 *  4. turns each accepted event into one tg_usage_t row (endpoint "POST /v1/events", period:
 *     the customer's billing period containing the event's timestamp), adds its units to the
 *     quota counters and the usage notifications as a call's reported units are (summed per
 *     customer, period and metric within the batch: one counter update per group), and submits
 *     all rows of the batch to the meter at once;
 *  5. when the meter says they are in the metering log, marks the keys committed and fires the
 *     caller's callback: the caller answers then, so an accepted event is in the log before
 *     its answer, in every durability mode (batched mode only adds its flush_ms).
 * A batch whose rows could not be logged (the meter refused them) withdraws its claims and its
 * quota units and turns every accepted outcome into a refusal ("unavailable"): a batch is never
 * half-applied silently; the client retries it whole and nothing counts twice.
 *
 * One node (SQLite): the index is the whole check. What it could lose - a power cut takes the
 * pages the kernel had not written back - is recovered at open from what a power cut does not
 * take: the metering logs, and the store, which keeps every stored event id in blocks numbered
 * in the order stored (store.h, usage_event_id_blocks). A log is retired only once the store
 * holds all of it, so every accepted event is in a log or in a block. The index is made durable
 * by a checkpoint (tg_events_checkpoint: every tg_events_opts_t.checkpoint_ms, at open and at
 * close), not at each log reset: B, the last block id, is read first, then the index's slots
 * are synced, then B is written into its header. tg_events_open claims again the logs' event
 * rows and the ids of every block after the header's B; an index file that is gone is refilled
 * from all the ids the store keeps for the window. Why not a sync per log reset: it writes most
 * of a large index at random (0.4-1.0 s for 512 MiB), and a log switch comes every 8 MiB of log,
 * several a second at 500k events/s.
 * Several nodes (PostgreSQL) keep the sync before each log reset (tg_events_before_log_reset):
 * the store keeps no blocks there, so whatever the index lost must still be in a log.
 *
 * Across nodes (PostgreSQL): the index is this node's. The row's event_id is bit 63 and the
 * key's first 63 bits - keyed from keys.secret, which every node shares, so the same on every
 * node - and the store adds an event row to the totals only if its (customer, event_id) was not
 * applied before, in the batch's own transaction (store.h, tg_store_usage_record_many; ids kept
 * for events.dedup_window and a day, then pruned by the retention tick). So the same event
 * posted to two nodes, or retried on another node, is stored once. What that check cannot change:
 *  - the answer: each node answered "accepted" from its own index, before the store saw the
 *    row; a duplicate found at apply is dropped silently (no outcome is revised, no error);
 *  - the quota counters and usage notifications of the accepting node, which added the units at
 *    once (step 4): the counter of that customer's current period holds up to the value of each
 *    such duplicate too much (a block plan may refuse that much early), never stored usage or
 *    an invoice. Local counters are rebuilt from stored usage at the node's next start
 *    (tg_store_usage_load -> tg_quota_seed), which corrects them; the shared Redis counter only
 *    takes stored usage as a floor, so there the extra units stay until the period ends.
 * Two different events of one customer sharing a 63-bit id count once: with n events of a
 * customer in the window, at most n(n-1)/2^64 (10^6 events: 5e-8; 10^8: 5e-4), with either
 * hash (both are keyed PRFs: nobody without keys.secret can make two events collide).
 *
 * Late usage: an event dated in a closed period counts in that period (usage_period keeps per
 * period totals). While that period has no invoice it is priced there with the rest of its
 * usage. While its invoice is a draft, finalizing the draft prices it there too, on the period's
 * own usage lines (tg_periods_invoice_transition, tg_store_invoice_draft_refresh). Once that
 * invoice is finalized (or the next period's invoice was drafted first), the store's
 * invoiced_units mark leaves it for the customer's next invoice, where billing/invoice.c puts it
 * on a dated line of its own priced as that period would have priced it, its minimum and cap
 * included (tg_price_late_in_period),
 * as for any usage that arrives after its period was invoiced. Every unit is billed once.
 *
 * Threads: tg_events_ingest runs on gateway event loops; the index is behind one mutex, taken
 * once per batch. The callback fires on the meter's writer thread or on the loop that commits
 * the batch (process durability). With a checkpoint, a thread of its own runs it (it holds the
 * index's mutex only to note B and take the file, not for the sync). */
#ifndef TG_EVENTS_H
#define TG_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "gateway/accounts.h"
#include "limits/quota.h"
#include "metering/meter.h"
#include "notify/thresholds.h"
#include "store/store.h"
#include "store/store_ingest.h"
#include "util/err.h"

#define TG_EVENT_ID_MAX 128   /* bytes of an event id */
#define TG_EVENT_FUTURE_S 300 /* how far ahead of this node's clock a timestamp may be */
/* model/records.h: the store knows event rows by it */
#define TG_EVENT_ENDPOINT TG_USAGE_EVENT_ENDPOINT

typedef struct tg_events tg_events_t;

typedef struct tg_events_opts {
    const tg_config_t *cfg; /* events: section, plans, metrics; outlives the service */
    const char *index_path; /* the on-disk dedup index (tg_events_index_path) */
    const uint8_t *secret;  /* keys.secret: keys the event hashes and the token hashes */
    size_t secret_len;
    /* The metering logs this node left (tg_meter_log_path 0 and 1), read at open to settle the
     * claims a crash left pending: an event whose row is in a log was logged (committed), any
     * other was not (withdrawn). NULL entries are skipped. Must be read before tg_meter_start
     * replays and empties them. Their event rows are claimed again too (what a power cut may
     * have taken from the index). */
    const char *log_paths[2];
    /* The node's store, read only when the index file is new (lost or removed): the event ids
     * it kept for the window (tg_store_usage_event_ids_each) are claimed again. NULL: not read. */
    tg_store_t *store;
    /* The store until when events keep the BLAKE2b key is read from, once, here
     * (tg_store_event_key_blake2b_until; every backend, every node). NULL: no event keeps it (a
     * database that never held one: tests only). */
    tg_store_t *key_store;
    int64_t now_s; /* the wall clock at open, seconds: where that window ends */
    /* SQLite, one node: the database whose event id blocks the index is checkpointed against
     * (opened here once more: the checkpoint thread's own connection). NULL: no checkpoint, the
     * index is synced before each log reset (PostgreSQL). */
    const char *store_url;
    int checkpoint_ms; /* how often the checkpoint thread runs; 0: every 60 s */
} tg_events_opts_t;

/* Opens the index, settles pending claims against the metering logs, claims again the event
 * rows the logs hold and the ids the store kept (a new index file: all of the window's; with a
 * store_url: those of the blocks after the index's checkpoint), and makes the index durable (a
 * checkpoint, or a sync without store_url); with store_url, starts the checkpoint thread. Call
 * before the meter starts, and give the meter tg_events_before_log_reset. TG_EIO, TG_ESTORE,
 * TG_ESTATE (another process holds the index), TG_ENOMEM, the store's errors. */
int tg_events_open(const tg_events_opts_t *o, tg_events_t **out, tg_err_t *err);

/* The 16-byte key of the event (customer, id) dated ts_ns: what the index claims, and bit 63 with
 * its first 63 bits the row's event_id (the metering log, the store). A keyed PRF of the customer,
 * a NUL and the id, under a key derived from keys.secret, so the same on every node:
 *  - dated up to tg_events_blake2b_until (S): BLAKE2b-128, the key every event had before
 *    migration 36, so that an event sent before the upgrade and retried after it is a duplicate
 *    (in the index, the metering logs and, across nodes, the store's ids);
 *  - dated after S: SipHash-2-4-128 (8 times cheaper).
 * S is migration 36's time + 600 s when the database may have held events, else 0 (none): the
 * old code refused events dated more than 5 minutes ahead, so each event it accepted is dated
 * before S as long as every old node stopped within 5 minutes of the migration (a rolling
 * upgrade: see README, "Metering usage that is not an API call"). The choice depends only on the
 * event's fields: a retry gets the same key whenever and wherever it is sent. No I/O; any thread. */
void tg_events_event_key(const tg_events_t *ev, const char *customer, const char *id, size_t id_len, int64_t ts_ns,
                         uint8_t out[16]);
/* S, seconds (0: none), as read at open. */
int64_t tg_events_blake2b_until(const tg_events_t *ev);

/* What the service counts with, once they exist (after tg_events_open, before serving). None
 * owned. thresholds may be NULL. */
void tg_events_attach(tg_events_t *ev, tg_accounts_t *accounts, tg_quota_t *quota, tg_meter_t *meter,
                      tg_thresholds_t *thresholds);

void tg_events_close(tg_events_t *ev);

/* Makes every claim made so far durable in the index file (fdatasync; the claims' lock is held
 * only to take the file, not for the sync). TG_EIO. Any thread. */
int tg_events_sync_index(tg_events_t *ev, tg_err_t *err);

/* A checkpoint now (opened with store_url; else TG_ESTATE): B, the store's last event id block,
 * is read, the index synced, then B written into its header, so that after a power cut only the
 * blocks after B are claimed again. Nothing is written when B is the header's already (the
 * claims since are of rows not stored yet: still in a log). The thread calls it every
 * checkpoint_ms, tg_events_close once more. TG_EIO, the store's errors (the header keeps its
 * older checkpoint). Any thread; one checkpoint at a time. */
int tg_events_checkpoint(tg_events_t *ev, tg_err_t *err);

/* The meter's hook before it retires a metering log (tg_meter_opts_t.before_log_reset, arg the
 * tg_events_t). With a checkpoint (store_url: SQLite) it writes nothing: the log's rows are in
 * the store's blocks by then, and a claim the index lost to a power cut is claimed again from
 * them at open. Without one (PostgreSQL) the index is synced, so that no claim whose row leaves
 * the logs can be lost to a power cut; a failure keeps the log (the meter retries later). */
int tg_events_before_log_reset(void *arg, tg_err_t *err);

/* Where a node keeps its dedup index: beside its first metering log, "events-<node>.idx" in
 * log_dir ("events.idx" for node ""), else "<database>-events.idx". malloc'd; NULL with err set. */
char *tg_events_index_path(const char *store_url, const char *log_dir, const char *node, tg_err_t *err);

/* The ingest token that authenticates a request: a copy, so that it outlives a revocation that
 * happens while its batch is in flight. */
typedef struct tg_ingest_auth {
    char name[TG_NAME_MAX];   /* the token's name (configuration or admin API) */
    char customer[TG_ID_MAX]; /* the only customer it reports for; "": any */
} tg_ingest_auth_t;

/* 0 with *out filled when token (len bytes, the Bearer credential) is one of events.tokens or
 * one of the stored tokens in force (tg_events_token_put), else TG_ENOTFOUND. Compares every
 * token's hash in constant time; no I/O (stored tokens are held in memory). Any thread. */
int tg_events_authenticate(tg_events_t *ev, const char *token, size_t len, tg_ingest_auth_t *out);

/* The keyed hash a stored ingest token is kept and compared as (store_ingest.h): BLAKE2b-256
 * keyed with a key derived from keys.secret, the same key tg_events_authenticate uses. */
void tg_events_token_hash(const uint8_t *secret, size_t secret_len, const char *token, size_t len, uint8_t out[32]);

/* The table of stored tokens, refreshed on change (the admin thread calls put after each
 * create or revoke, before it answers): a row with revoked_at 0 is added (or replaced, by id),
 * a revoked one removed. load replaces the table with the store's tokens in force (at start, and
 * on the directory sync's thread when another node changed one): it reads the store without the
 * lock and swaps the table under it, so requests never wait on the database. TG_ENOMEM / the
 * store's errors, with the table unchanged. Any thread; requests in flight keep
 * the copy they authenticated with. */
int tg_events_token_put(tg_events_t *ev, const tg_ingest_token_row_t *t);
int tg_events_tokens_load(tg_events_t *ev, tg_store_t *st, tg_err_t *err);

/* One event as the adapter read it. Strings are borrowed and need not be NUL-terminated; a NULL
 * pointer is a field that was absent. bad_field/bad_message: the adapter already refused it (a
 * field of the wrong JSON type); the service then only reports that. */
typedef struct tg_event_in {
    const char *id;
    size_t id_len;
    const char *customer;
    size_t customer_len;
    const char *key;
    size_t key_len;
    const char *metric;
    size_t metric_len;
    int has_value;
    int64_t value;
    const char *timestamp;
    size_t timestamp_len;
    const char *bad_field;
    const char *bad_message;
    /* 1: the adapter saw every byte of every string: printable ASCII (0x20-0x7e) without '"' or
     * '\\', so the service does not check the ids' bytes again and the answer need not escape
     * them; 0: unknown (the service checks). */
    int plain;
} tg_event_in_t;

typedef enum tg_event_outcome {
    TG_EVENT_ACCEPTED = 0,
    TG_EVENT_DUPLICATE = 1,
    TG_EVENT_REFUSED = 2,
} tg_event_outcome_t;

typedef struct tg_event_result {
    tg_event_outcome_t outcome;
    const char *field; /* refused: the field at fault ("customer", "value", ...), static */
    char message[192]; /* refused: why, for people */
} tg_event_result_t;

/* Fires once the batch's accepted events are in the metering log (status 0), or could not be
 * (status < 0; their outcomes were turned into refusals). results is the array passed in. */
typedef void (*tg_events_done_cb)(void *arg, int status);

/* Checks, dedups and submits n events (n <= events.max_batch) for `who` at wall time now_ns,
 * writing results[0..n). The rows go into batch when it is not NULL (process durability: the
 * calling loop commits it), else to the meter. Returns 1 when rows were submitted: cb fires
 * later, and results must stay alive until it does; 0 when nothing was accepted (every event a
 * duplicate or refused): results are final and cb never fires; negative TG_E* when the batch
 * could not be taken at all (the index could not grow: TG_EIO/TG_ENOMEM; err says why), with
 * cb never fired and nothing counted. */
int tg_events_ingest(tg_events_t *ev, const tg_ingest_auth_t *who, const tg_event_in_t *in, size_t n, int64_t now_ns,
                     tg_event_result_t *results, tg_meter_batch_t *batch, tg_events_done_cb cb, void *arg,
                     tg_err_t *err);

/* Parses an RFC 3339 date-time strictly ("2026-12-04T14:20:45Z", fractional seconds up to
 * nanoseconds, "Z" or "+hh:mm"/"-hh:mm"; 'T' and 'Z' in either case) into nanoseconds since the
 * epoch. 0, or -1 for anything else (including a date that does not exist, or a leap second). */
int tg_events_parse_time(const char *s, size_t len, int64_t *ns);

#endif
