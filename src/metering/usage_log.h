/* usage_log.h - the metering log: an append-only file that makes usage durable with one small
 * write and one fdatasync per group of calls.
 *
 * The meter appends each group of usage records here before anything else; once the append
 * returns, the records survive kill -9 and power loss, and the calls may be answered. The
 * records are stored in the database later, in bulk, and replayed from the log at the next
 * start if the process died first (the store applies each record's batch id once, so a replay
 * of records that did reach the store counts nothing twice).
 *
 * Layout: a 4 KiB header (magic, generation, CRC-32), then records, each with a 32-byte head
 * (magic, payload length, generation, batch id, row count, CRC-32 of head and payload) and its
 * rows. Replay reads records of the header's generation from the start and stops at the first
 * one that is torn, of an older generation, or fails its CRC: that is where the last append
 * ended. Reset starts a new generation at the start of the file, which retires every record
 * in it at once; the meter resets only when every record is in the database durably. The file
 * is grown a megabyte at a time and then reused, so an append does not change its size and
 * fdatasync has no metadata to write. An exclusive flock keeps a second process off the log.
 *
 * A log opened TG_USAGE_LOG_BUFFERED (process durability) appends with one pwrite into the page
 * cache and no sync: the record survives the death of the process once the append returns, and
 * a power cut once tg_usage_log_sync or the kernel's writeback has put it on the disk. The file
 * then grows with its appends (nothing is written ahead), a 4 KiB block at a time: as with direct
 * I/O, each append rewrites the block the previous record ended in and pads its last block with
 * zeros, so that the kernel never has to read a block from the disk to complete a partial one.
 * A record torn by the crash or by a writeback that stopped half-way fails its CRC at replay
 * like any other. */
#ifndef TG_USAGE_LOG_H
#define TG_USAGE_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "model/records.h"
#include "util/err.h"

typedef struct tg_usage_log tg_usage_log_t;

/* How appends reach the file. */
typedef enum tg_usage_log_mode {
    TG_USAGE_LOG_DURABLE = 0, /* on the disk when the append returns (direct I/O, or write + fdatasync) */
    TG_USAGE_LOG_BUFFERED = 1 /* written (one pwrite, page cache) when it returns; tg_usage_log_sync */
} tg_usage_log_mode_t;

/* Opens or creates the log at path, durable. TG_ESTATE if another process holds it; TG_ESTORE if
 * the header is damaged; TG_EIO. */
int tg_usage_log_open(const char *path, tg_usage_log_t **out, tg_err_t *err);
/* The same, with appends made as mode says. The header (creation, reset) is always synced. */
int tg_usage_log_open_mode(const char *path, tg_usage_log_mode_t mode, tg_usage_log_t **out, tg_err_t *err);
void tg_usage_log_close(tg_usage_log_t *log);

/* Called for each intact record in order; a non-zero return stops the replay and is returned. */
typedef int (*tg_usage_log_replay_cb)(void *arg, uint64_t batch_id, const tg_usage_t *rows, size_t n);

/* Reads the records of the current generation from the start; appends then continue after the
 * last intact one. */
int tg_usage_log_replay(tg_usage_log_t *log, tg_usage_log_replay_cb cb, void *arg, tg_err_t *err);

/* Appends one record and waits for it to be on the disk (buffered: written to the file, in the
 * page cache). A failed append leaves the log as it was (the record may be retried); TG_EINVAL
 * for a row the format cannot hold. */
int tg_usage_log_append(tg_usage_log_t *log, uint64_t batch_id, const tg_usage_t *rows, size_t n, tg_err_t *err);

/* Reads back the record that was appended when tg_usage_log_used() was *pos: its batch id, and
 * its rows into *rows (the caller frees) and *n; advances *pos past it. Safe while another
 * thread appends to the same log, as it reads only what an append never changes; the record
 * must not have been retired by a reset. TG_ESTORE if no intact record is there; TG_ENOMEM. */
int tg_usage_log_read(const tg_usage_log_t *log, uint64_t *pos, uint64_t *batch_id, tg_usage_t **rows, size_t *n,
                      tg_err_t *err);

/* fdatasync: puts what buffered appends wrote on the disk. Safe while another thread appends
 * (it uses only the file descriptor). TG_EIO. */
int tg_usage_log_sync(tg_usage_log_t *log, tg_err_t *err);

/* Starts a new, empty generation (durably). Only when every record is stored elsewhere. */
int tg_usage_log_reset(tg_usage_log_t *log, tg_err_t *err);

/* Bytes of records in the current generation. */
uint64_t tg_usage_log_used(const tg_usage_log_t *log);

const char *tg_usage_log_path(const tg_usage_log_t *log);

#endif
