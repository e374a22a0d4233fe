/* event_index.h - the usage events this node has counted (issue 16): an on-disk set of 16-byte
 * keys (keyed hashes of customer and event id, made by src/metering/events.c), so that an event
 * posted again within the dedup window is answered "duplicate" and counted once.
 *
 * Why on disk, and why this shape: at a million events a second a database round trip per
 * event is out of the question, and 35 days of ids do not belong in the heap. The set is one
 * file, mmap'd: an open-addressing table (linear probing) of 32-byte slots {key, day, state}.
 * A lookup is one hash and, nearly always, one cache line. Slots are written in place through
 * the shared mapping, so they are in the kernel's page cache the moment they are written: a
 * killed process (kill -9) loses none of them; a power cut may lose those not yet written back
 * (see the README). Expiry needs no sweep: a slot whose day is older than the window counts as
 * free and is reused by the probe that meets it; when the table is 70 % full (live, tombstones
 * and expired slots together) it is rebuilt into a new file four times the live size, written
 * beside it and renamed over it, so a crash during a rebuild leaves the old table whole.
 * A rebuild runs under the caller's lock and writes the whole new file out (a table of 16 Mi
 * slots is 512 MiB: 1.7 s measured on a loaded 2-core machine), so every claim waits for it;
 * a table sized at open for the keys expected in the window (expected_keys) never rebuilds
 * below that many.
 *
 * States: a claimed key is PENDING until its usage is in the metering log, then COMMITTED; a
 * claim whose usage could not be logged is withdrawn (a tombstone). At open, PENDING slots are
 * what a crash left between the claim and the answer: the caller resolves each one against
 * the metering log (tg_event_index_pending, then commit or withdraw).
 *
 * A power cut: the slots are written through the mapping and reach the disk when the kernel
 * writes the pages back, so the file a power cut leaves may miss recent claims. The caller
 * makes that loss recoverable, in one of two ways:
 *  - a checkpoint (SQLite, one node: the store keeps every stored event id in blocks numbered
 *    in the order stored): the header holds the id of the last block whose ids are all in the
 *    file's durable state (tg_event_index_checkpoint). The caller notes B, a block id read
 *    before it starts, and syncs (tg_event_index_checkpoint_fd, _write): the slots are synced
 *    first, B written to the header after, so a power cut at any point leaves a header whose
 *    checkpoint the slots on the disk cover. At start it claims again the ids of every block
 *    after the checkpoint. A file of version 1 (before checkpoints) reads as checkpoint 0.
 *  - a sync before each metering log is retired (PostgreSQL: tg_event_index_sync), so every
 *    claim whose row is no longer in a log is on the disk.
 * Either way, at start it claims again the event rows still in the logs
 * (tg_event_index_claim_id), and rebuilds a table made by this open (tg_event_index_created:
 * the file was lost) from the ids the store kept. Those claims know only the 63 bits of the key
 * that a row carries (its event_id): such a PREFIX slot holds every key with those bits, and is
 * found by the full key's probe because the probe starts at the key's first 64 bits masked by
 * the table's size (at most 2^32 slots, so bits the row keeps). A rebuild keeps prefix slots as
 * they are.
 *
 * Not thread-safe: the caller (events.c) serialises calls with its own lock. */
#ifndef TG_EVENT_INDEX_H
#define TG_EVENT_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define TG_EVENT_KEY_BYTES 16

typedef struct tg_event_index tg_event_index_t;

/* Opens (or creates) the index file at path; window_days is the dedup window. expected_keys
 * (0: none) sizes the table so that this many keys fit without a rebuild: a new file is made
 * that large, a smaller existing one is rebuilt to it here, at open, rather than while claims
 * wait (a larger one is kept as it is). TG_EIO, TG_ESTORE for a file that is not an index or is
 * damaged (its header), TG_ENOMEM (also for expected_keys beyond the largest table). */
int tg_event_index_open(const char *path, int window_days, uint64_t expected_keys, tg_event_index_t **out,
                        tg_err_t *err);
void tg_event_index_close(tg_event_index_t *ix);

/* Where a claim put its key, so that its commit needs no second probe: valid until the table is
 * rebuilt (the generation says which table it was). */
typedef struct tg_event_slot {
    uint64_t slot;
    uint64_t generation;
} tg_event_slot_t;

/* Claims key on `today` (days since the epoch): 1 if it was new (now PENDING; *where, when not
 * NULL, says where), 0 if it is held within the window (a duplicate), negative TG_EIO /
 * TG_ENOMEM if the table could not grow. */
int tg_event_index_claim(tg_event_index_t *ix, const uint8_t key[TG_EVENT_KEY_BYTES], uint32_t today,
                         tg_event_slot_t *where, tg_err_t *err);

/* A hint, no effect on the set: starts loading the cache line key's probe will read first. A
 * caller with many keys at hand (a batch) calls it some keys ahead of claim/commit/withdraw, so
 * that the table's cache and TLB misses (a large table is far beyond the caches: one miss per
 * key, the index's 22 % of bench/events.sh's profile was mostly these) overlap instead of
 * queueing. */
void tg_event_index_prefetch(const tg_event_index_t *ix, const uint8_t key[TG_EVENT_KEY_BYTES]);

/* A claimed key's usage is in the metering log: PENDING -> COMMITTED. */
void tg_event_index_commit(tg_event_index_t *ix, const uint8_t key[TG_EVENT_KEY_BYTES]);

/* The same, for a key claimed at *where: one slot read when the table is the claim's and the
 * slot still holds the key pending (always, unless a rebuild came between), else commit's
 * probe. */
void tg_event_index_commit_at(tg_event_index_t *ix, const tg_event_slot_t *where,
                              const uint8_t key[TG_EVENT_KEY_BYTES]);

/* A hint like tg_event_index_prefetch, for a commit at *where. */
void tg_event_index_prefetch_at(const tg_event_index_t *ix, const tg_event_slot_t *where);

/* A claimed key's usage could not be logged: the claim is withdrawn (a later post counts). */
void tg_event_index_withdraw(tg_event_index_t *ix, const uint8_t key[TG_EVENT_KEY_BYTES]);

/* The keys left PENDING (by a crash), into a malloc'd array of n keys (NULL, 0 when none).
 * TG_ENOMEM. */
int tg_event_index_pending(tg_event_index_t *ix, uint8_t (**keys)[TG_EVENT_KEY_BYTES], size_t *n, tg_err_t *err);

/* Claims, committed, the event whose metering row or stored id is event_id (its top bit is
 * ignored: the key's first 64 bits, little-endian, but for bit 63), on `day` (days since the
 * epoch of the event; a slot expires window_days after it): 1 if added, 0 if a key with those
 * bits was held already, negative TG_EIO / TG_ENOMEM if the table could not grow. Every key
 * with those 63 bits is then a duplicate, the odds the store's ids accept (n(n-1)/2^64 over
 * the n events re-claimed so; keys claimed whole still compare all 128 bits). */
int tg_event_index_claim_id(tg_event_index_t *ix, uint64_t event_id, uint32_t day, tg_err_t *err);

/* 1 if the file did not exist and this open made it: whatever was claimed before is not in it. */
int tg_event_index_created(const tg_event_index_t *ix);

/* Makes every slot written so far durable (a power cut keeps them), in two steps so that the
 * caller's lock is held only for the first: sync_fd (under the lock) returns a descriptor of
 * the file (or negative TG_EIO), sync (without the lock) fdatasyncs and closes it. A rebuild
 * meanwhile is harmless: it syncs the new file before it renames it over the old. */
int tg_event_index_sync_fd(tg_event_index_t *ix, tg_err_t *err);
int tg_event_index_sync(int fd, tg_err_t *err);

/* The checkpoint of the file as opened (0: a new file, or one of version 1), or the newest one
 * noted since: the caller claims again the store's blocks after it (see above). */
uint64_t tg_event_index_checkpoint(const tg_event_index_t *ix);

/* A checkpoint, in two steps like the sync: checkpoint_fd (under the caller's lock) notes
 * checkpoint - a block id every claim of whose blocks is in the table already, read before this
 * call - and returns a descriptor of the file (or negative TG_EIO); checkpoint_write (without
 * the lock) fdatasyncs the slots, then writes checkpoint into the header and fdatasyncs it, and
 * closes the descriptor. A rebuild meanwhile writes the noted checkpoint into the new file's
 * header (its whole table is copied and synced: it covers it); the old file's header, written
 * here, is then gone with it. TG_EIO, the header left as it was or with the checkpoint. */
int tg_event_index_checkpoint_fd(tg_event_index_t *ix, uint64_t checkpoint, tg_err_t *err);
int tg_event_index_checkpoint_write(int fd, uint64_t checkpoint, tg_err_t *err);

/* Live keys (pending and committed, within the window) and slots, for stats and tests. */
void tg_event_index_counts(const tg_event_index_t *ix, uint64_t *live, uint64_t *slots);

#endif
