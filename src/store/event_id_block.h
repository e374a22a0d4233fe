/* event_id_block.h - the packed form of a stored batch's usage event ids (SQLite's
 * usage_event_id_blocks, migration 35): one row per batch instead of one per event, since on one
 * node the ids are only a record to rebuild the dedup index from (store.h,
 * tg_store_usage_record_many), and one INSERT per event was ~2.5 us of the applier's time per
 * event. The SQLite backend writes and reads blocks; tollgate migrate (store_copy.c) unpacks them
 * into PostgreSQL's usage_event_ids, which needs each id's customer.
 *
 * A block's data is its n entries back to back, each: the event id (bit 63 clear) as 8 bytes
 * little-endian, the event time in seconds as 8 bytes little-endian (two's complement), the
 * customer id as a length byte and its bytes (util/pack.h). The row beside it holds n and the
 * least and greatest time, so that a reader and the prune pick blocks by time without unpacking.
 * Pure: no I/O, no allocation. */
#ifndef TG_EVENT_ID_BLOCK_H
#define TG_EVENT_ID_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "model/records.h"
#include "util/err.h"

/* The most bytes one entry takes (customer ids are NUL-terminated in TG_ID_MAX). */
#define TG_EVENT_ID_ENTRY_MAX (8 + 8 + 1 + TG_ID_MAX)
/* The fewest: an empty customer id. */
#define TG_EVENT_ID_ENTRY_MIN (8 + 8 + 1)

/* A block as stored: id is its row id, named in errors. data is borrowed. */
typedef struct tg_event_id_block {
    int64_t id;
    int64_t ts_min, ts_max; /* seconds, over its entries */
    int64_t n;              /* entries */
    const unsigned char *data;
    size_t len;
} tg_event_id_block_t;

/* Appends one entry at p (room for TG_EVENT_ID_ENTRY_MAX bytes); returns the byte after it.
 * event_id's bit 63 is dropped (the event marker of tg_usage_t.event_id). */
unsigned char *tg_event_id_block_put(unsigned char *p, uint64_t event_id, int64_t ts_s, const char *customer_id);

/* Calls cb with each entry of b, in the order packed; a nonzero return from cb stops and is
 * returned. Before the first call the whole block is checked: exactly n entries (n >= 1) filling
 * data to its end, each id with bit 63 clear, each time within [ts_min, ts_max], each customer id
 * shorter than TG_ID_MAX and without NUL bytes. A block that fails is TG_ESTORE with err naming
 * the block's id and what is wrong, and cb is never called: a damaged block is refused whole,
 * never half read. */
typedef int (*tg_event_id_entry_cb)(void *arg, uint64_t event_id, int64_t ts_s, const char *customer_id);
int tg_event_id_block_each(const tg_event_id_block_t *b, tg_event_id_entry_cb cb, void *arg, tg_err_t *err);

#endif
