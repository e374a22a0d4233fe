/* reservation_file.h - the decision API's open reservations, kept in a file so that they
 * outlive the process (reservations.h keeps the table; this keeps what is needed to bill it).
 *
 * A reservation admitted by GET /v1/decide or POST /v1/check is served by the API before
 * tollgate hears how it went; if the process dies first (kill -9, OOM, a crash), the memory that
 * held it is gone, and so would be the bill. So each open reservation also has a slot in a file
 * mapped MAP_SHARED: customer, key, plan, period, endpoint, the units of its route (or of its
 * check), the decision time, its id and the event_id its usage rows carry. A store into a shared
 * file mapping is in the kernel's page cache at once: it survives the process, with no syscall
 * on the decision path (the same guarantee as metering.durability: process, "kill -9 loses
 * nothing answered"). It does not survive a power cut or a kernel crash: the kernel writes the
 * pages back on its own schedule (vm.dirty_expire_centisecs, 30 s by default).
 *
 * A slot is written field by field and its state word last, with a release store; a slot is
 * open exactly when its state says so. The next start, before serving:
 *   1. tg_reservation_file_open (before tg_meter_start, which stores and then empties the
 *      metering logs) reads the slots a dead process left open and looks for their event_ids in
 *      the metering logs: a slot whose rows are there was billed just before the death (the
 *      settlement hands the usage to the meter, then clears the slot).
 *   2. tg_reservation_file_recover (after tg_meter_start, before the quota counters are loaded
 *      from the store) drops those, meters each other one by decide.on_timeout (bill: its stored
 *      units, through the meter, which stores each batch once; release: nothing), waits until the
 *      store holds them, then frees every slot and sizes the file for the table.
 * So a reservation is billed once across a death: by its settlement (and found in the log) or by
 * the restart, not both. The only gap: a settling thread stalled between its meter hand-off and
 * the slot clear for longer than the meter takes to store the rows and empty BOTH logs (two
 * writer rounds and an apply) would be billed again; the clear is the next instruction.
 *
 * One process uses the file (an exclusive flock, like the metering log); it lives beside the
 * metering logs (tg_reservation_file_path). Slots are taken and given back with a lock-free
 * stack: the decision path takes no lock and makes no syscall here. */
#ifndef TG_RESERVATION_FILE_H
#define TG_RESERVATION_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/gateway.h"
#include "metering/meter.h"
#include "util/err.h"

typedef struct tg_reservation_file tg_reservation_file_t;

/* The file of a node's reservations: "<log_dir>/reservations[-<node>].slots", else
 * "<database>-reservations.slots" beside a SQLite file. malloc'd; NULL with err set (no
 * metering.log_dir with PostgreSQL, ENOMEM). */
char *tg_reservation_file_path(const char *store_url, const char *log_dir, const char *node, tg_err_t *err);

/* Opens path (creating it, mode 0600), takes its lock (TG_ESTATE if another process holds it),
 * reads the slots left open and checks their event_ids against the metering logs log_paths
 * (a NULL entry or a missing file is skipped). Changes nothing yet. TG_ESTORE when the file is
 * not a reservations file or is damaged (nothing is lost: it is left as it is); TG_EIO; TG_ENOMEM. */
int tg_reservation_file_open(const char *path, const char *const log_paths[2], tg_reservation_file_t **out,
                             tg_err_t *err);

typedef struct tg_reservation_recovered {
    size_t left;     /* slots a dead process left open */
    size_t billed;   /* metered now, by decide.on_timeout: bill */
    size_t logged;   /* dropped: their usage was already in the metering log */
    size_t released; /* dropped by decide.on_timeout: release */
} tg_reservation_recovered_t;

/* The slots a file for a table of `capacity` reservations has: a quarter more, and 64, for the
 * calls settled as billed whose usage is still on its way to the metering log (batched
 * durability: up to metering.flush_ms), which keep their slot until it is there. When even
 * these run out, new calls are refused as when the table is full. */
size_t tg_reservation_file_slots(size_t capacity);

/* Settles the slots left open as described above (on_timeout: a tg_reservation_timeout_rule_t),
 * waits for the store (tg_meter_flush), frees every slot, then sizes the file for
 * tg_reservation_file_slots(capacity) slots (ftruncate and posix_fallocate: a full disk fails
 * here, not later). Before serving; the
 * meter must run. TG_EIO (disk full: the slots are kept), meter errors. */
int tg_reservation_file_recover(tg_reservation_file_t *f, tg_meter_t *meter, int on_timeout, size_t capacity,
                                tg_reservation_recovered_t *out, tg_err_t *err);

/* The decision path, any thread, lock-free, no syscall. */

/* A free slot's index, or -1 when none is free. */
int64_t tg_reservation_file_take(tg_reservation_file_t *f);

/* Writes an admitted call's slot (taken above) and opens it, the state last (release). */
void tg_reservation_file_open_slot(tg_reservation_file_t *f, int64_t slot, const tg_call_t *call, const char *id);

/* The call's usage was handed to the meter, or released: the slot is free again. */
void tg_reservation_file_free_slot(tg_reservation_file_t *f, int64_t slot);

/* Unmaps and closes (releasing the lock). Open slots stay open in the file, for the next start.
 * NULL is ignored. */
void tg_reservation_file_close(tg_reservation_file_t *f);

#endif
