/* event_index.c - see event_index.h. Integers are little-endian on the disk (x86 and arm64 are;
 * the header's version check refuses a file written otherwise rather than misreading it). */
#include "metering/event_index.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/pack.h"

#define HEADER_SIZE 4096 /* a page: the slots start page-aligned */
#define MAGIC "TGEVIDX1"
#define VERSION 2        /* 2: the checkpoint at CHECKPOINT_AT; 1 had none (read as checkpoint 0) */
#define CHECKPOINT_AT 24 /* the header's checkpoint, 8 bytes (after magic, version, slot size, cap) */
#define MIN_SLOTS (UINT64_C(1) << 16)
#define MAX_SLOTS (UINT64_C(1) << 32) /* 128 GiB of slots: far beyond any disk this runs on */

/* S_PREFIX: committed, but known only by the 63 bits a metering log row or the store keeps of
 * the key (tg_event_index_claim_id): it holds every key with those bits. */
enum { S_EMPTY = 0, S_PENDING = 1, S_COMMITTED = 2, S_TOMBSTONE = 3, S_PREFIX = 4 };
#define ID_BIT (UINT64_C(1) << 63) /* set in every event row's id: not one of the key's bits */

typedef struct slot {
    uint8_t key[TG_EVENT_KEY_BYTES];
    uint32_t day;   /* days since the epoch of the claim */
    uint32_t state; /* S_* */
    uint64_t pad;   /* 32 bytes: two slots per cache line, never one across two */
} slot_t;
_Static_assert(sizeof(slot_t) == 32, "a slot is 32 bytes on the disk");

struct tg_event_index {
    char *path;
    int fd;
    unsigned char *map; /* header, then cap slots */
    size_t map_len;
    slot_t *slots;
    uint64_t cap;  /* a power of two */
    uint64_t used; /* slots not S_EMPTY (live, tombstones, expired) */
    uint64_t live; /* pending or committed, within the window, as of the last count */
    int window_days;
    uint32_t today;      /* the newest day seen: what "expired" is measured from */
    uint64_t generation; /* rebuilds so far: a tg_event_slot_t of an older table is stale */
    int created;         /* the file was made by this open: it holds nothing yet */
    uint64_t checkpoint; /* the header's at open, then the newest one noted: what a rebuild carries */
};

static uint64_t slot_hash(const uint8_t key[TG_EVENT_KEY_BYTES])
{
    /* The key is already a keyed hash (events.c): its bytes are uniform and not chosen by the
     * client, so its first eight bytes index the table directly. */
    return tg_le_get64(key);
}

static int expired(const tg_event_index_t *ix, const slot_t *s)
{
    return s->day + (uint32_t)ix->window_days < ix->today;
}

static int holds(const tg_event_index_t *ix, const slot_t *s)
{
    return (s->state == S_PENDING || s->state == S_COMMITTED || s->state == S_PREFIX) && !expired(ix, s);
}

/* Whether slot s is key's: the whole key, or for a prefix slot, or a probe by id (by_id), the
 * 63 bits a row keeps (the same first eight bytes, but for the top bit). */
static int matches(const slot_t *s, const uint8_t key[TG_EVENT_KEY_BYTES], int by_id)
{
    if (s->state == S_PREFIX || by_id)
        return ((tg_le_get64(s->key) ^ tg_le_get64(key)) & ~ID_BIT) == 0;
    return memcmp(s->key, key, TG_EVENT_KEY_BYTES) == 0;
}

static int map_file(tg_event_index_t *ix, int fd, uint64_t cap, tg_err_t *err)
{
    size_t len = HEADER_SIZE + (size_t)cap * sizeof(slot_t);
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return tg_errf(err, TG_EIO, "mapping the event index %s: %s", ix->path, strerror(errno));
    ix->map = m;
    ix->map_len = len;
    ix->slots = (slot_t *)(void *)(ix->map + HEADER_SIZE);
    ix->cap = cap;
    return 0;
}

/* A new file of cap empty slots at path (its whole size allocated, so that a full disk fails
 * here and not as SIGBUS on a write through the mapping). */
static int create_file(const char *path, uint64_t cap, uint64_t checkpoint, int *fd_out, tg_err_t *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return tg_errf(err, TG_EIO, "creating the event index %s: %s", path, strerror(errno));
    unsigned char h[HEADER_SIZE] = {0};
    memcpy(h, MAGIC, 8);
    tg_le_put32(h + 8, VERSION);
    tg_le_put32(h + 12, (uint32_t)sizeof(slot_t));
    tg_le_put64(h + 16, cap);
    tg_le_put64(h + CHECKPOINT_AT, checkpoint);
    off_t len = (off_t)(HEADER_SIZE + cap * sizeof(slot_t));
    int rc = 0;
    if (pwrite(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) || (rc = posix_fallocate(fd, 0, len)) != 0) {
        int e = rc != 0 ? rc : errno;
        close(fd);
        unlink(path);
        return tg_errf(err, TG_EIO, "creating the event index %s: %s", path, strerror(e));
    }
    *fd_out = fd;
    return 0;
}

/* The slots for `keys` keys below the 70 % that triggers a rebuild (at least MIN_SLOTS), or 0
 * when no table is that large. */
static uint64_t slots_for(uint64_t keys)
{
    if (keys > MAX_SLOTS / 10 * 7)
        return 0;
    uint64_t cap = MIN_SLOTS;
    while (keys * 10 > cap * 7)
        cap <<= 1;
    return cap;
}

static int rebuild(tg_event_index_t *ix, uint64_t min_cap, tg_err_t *err);
static slot_t *probe_key(tg_event_index_t *ix, const uint8_t key[TG_EVENT_KEY_BYTES], int by_id, int *found);

static slot_t *probe(tg_event_index_t *ix, const uint8_t key[TG_EVENT_KEY_BYTES], int *found)
{
    return probe_key(ix, key, 0, found);
}

static void count(tg_event_index_t *ix)
{
    ix->used = ix->live = 0;
    for (uint64_t i = 0; i < ix->cap; i++) {
        const slot_t *s = &ix->slots[i];
        if (s->state == S_EMPTY)
            continue;
        ix->used++;
        if (s->day > ix->today && s->day != UINT32_MAX)
            ix->today = s->day;
    }
    for (uint64_t i = 0; i < ix->cap; i++)
        if (holds(ix, &ix->slots[i]))
            ix->live++;
}

int tg_event_index_open(const char *path, int window_days, uint64_t expected_keys, tg_event_index_t **out,
                        tg_err_t *err)
{
    *out = NULL;
    uint64_t want = slots_for(expected_keys);
    if (want == 0)
        return tg_errf(err, TG_ENOMEM, "the event index cannot be sized for %llu keys (at most %llu)",
                       (unsigned long long)expected_keys, (unsigned long long)(MAX_SLOTS / 10 * 7));
    tg_event_index_t *ix = calloc(1, sizeof(*ix));
    if (ix == NULL || (ix->path = strdup(path)) == NULL) {
        free(ix);
        return tg_errf(err, TG_ENOMEM, "out of memory opening the event index");
    }
    ix->fd = -1;
    ix->window_days = window_days;
    int rc = 0;
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp)) {
        rc = tg_errf(err, TG_EINVAL, "the event index path %s is too long", path);
        goto fail;
    }
    unlink(tmp); /* a rebuild that a crash interrupted: the old file is whole */
    ix->fd = open(path, O_RDWR | O_CLOEXEC);
    if (ix->fd < 0 && errno == ENOENT) {
        if ((rc = create_file(path, want, 0, &ix->fd, err)) != 0)
            goto fail;
        ix->created = 1;
    } else if (ix->fd < 0) {
        rc = tg_errf(err, TG_EIO, "opening the event index %s: %s", path, strerror(errno));
        goto fail;
    }
    if (flock(ix->fd, LOCK_EX | LOCK_NB) != 0) {
        rc = tg_errf(err, TG_ESTATE, "the event index %s is in use by another process", path);
        goto fail;
    }
    unsigned char h[32];
    struct stat st;
    if (pread(ix->fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) || fstat(ix->fd, &st) != 0) {
        rc = tg_errf(err, TG_ESTORE, "the event index %s has no header", path);
        goto fail;
    }
    uint64_t cap = tg_le_get64(h + 16);
    uint32_t version = tg_le_get32(h + 8);
    if (memcmp(h, MAGIC, 8) != 0 || (version != VERSION && version != 1) || tg_le_get32(h + 12) != sizeof(slot_t) ||
        cap < MIN_SLOTS || cap > MAX_SLOTS || (cap & (cap - 1)) != 0 ||
        (uint64_t)st.st_size < HEADER_SIZE + cap * sizeof(slot_t)) {
        rc = tg_errf(err, TG_ESTORE, "%s is not a tollgate event index (or its header is damaged)", path);
        goto fail;
    }
    /* Version 1 (before checkpoints) was synced at every log reset: all it holds is durable, but
     * which stored blocks that covers is unknown, so it reads as checkpoint 0 (every block is
     * claimed again) and is marked version 2 with that checkpoint. Its slots are the same. */
    ix->checkpoint = version == VERSION ? tg_le_get64(h + CHECKPOINT_AT) : 0;
    if (version != VERSION) {
        unsigned char v2[4 + 20] = {0};
        tg_le_put32(v2, VERSION); /* version, slot size and cap as they are, checkpoint 0 */
        memcpy(v2 + 4, h + 12, 12);
        tg_le_put64(v2 + 4 + 12, 0);
        if (pwrite(ix->fd, v2, sizeof(v2), 8) != (ssize_t)sizeof(v2)) {
            rc = tg_errf(err, TG_EIO, "upgrading the event index %s: %s", path, strerror(errno));
            goto fail;
        }
    }
    if ((rc = map_file(ix, ix->fd, cap, err)) != 0)
        goto fail;
    count(ix);
    if (ix->cap < want && (rc = rebuild(ix, want, err)) != 0)
        goto fail;
    *out = ix;
    return 0;
fail:
    tg_event_index_close(ix);
    return rc;
}

void tg_event_index_close(tg_event_index_t *ix)
{
    if (ix == NULL)
        return;
    if (ix->map != NULL)
        munmap(ix->map, ix->map_len);
    if (ix->fd >= 0)
        close(ix->fd);
    free(ix->path);
    free(ix);
}

/* The slot holding key (live or not), or the first slot the key could be put in; *found says
 * which. by_id: key is an id's (tg_event_index_claim_id), and any slot with its 63 bits is
 * its. Never loops forever: the table is at most 70 % used, so an empty slot ends the probe. */
static slot_t *probe_key(tg_event_index_t *ix, const uint8_t key[TG_EVENT_KEY_BYTES], int by_id, int *found)
{
    uint64_t mask = ix->cap - 1, i = slot_hash(key) & mask;
    slot_t *reuse = NULL;
    for (;; i = (i + 1) & mask) {
        slot_t *s = &ix->slots[i];
        if (s->state == S_EMPTY) {
            *found = 0;
            return reuse != NULL ? reuse : s;
        }
        if (s->state != S_TOMBSTONE && matches(s, key, by_id)) {
            *found = 1;
            return s;
        }
        if (reuse == NULL && (s->state == S_TOMBSTONE || expired(ix, s)))
            reuse = s;
    }
}

/* fsyncs the directory holding path (best effort: a failure leaves the rename as durable as
 * the file system makes it by itself). */
static void sync_dir(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL ? 1 : (size_t)(slash - path);
    if (n == 0)
        n = 1; /* "/x" */
    if (n >= sizeof(dir))
        return;
    memcpy(dir, slash == NULL ? "." : path, n);
    dir[n] = '\0';
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

/* Rebuilds into a table about four times the live keys (at least min_cap slots, a power of two
 * not below MIN_SLOTS): tombstones and expired keys are dropped. The new file is complete and
 * synced before it replaces the old. */
static int rebuild(tg_event_index_t *ix, uint64_t min_cap, tg_err_t *err)
{
    uint64_t live = 0;
    for (uint64_t i = 0; i < ix->cap; i++)
        live += holds(ix, &ix->slots[i]);
    uint64_t cap = min_cap;
    while (cap < live * 4 && cap < MAX_SLOTS)
        cap <<= 1;
    if (live * 10 >= cap * 7)
        return tg_errf(err, TG_ENOMEM, "the event index %s is full (%llu keys)", ix->path, (unsigned long long)live);
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.new", ix->path);
    int fd;
    /* the checkpoint carried is covered: every claim of the blocks up to it was in this
     * table before it was noted, and the whole table is copied and synced below */
    int rc = create_file(tmp, cap, ix->checkpoint, &fd, err);
    if (rc != 0)
        return rc;
    tg_event_index_t next = *ix;
    next.map = NULL;
    if ((rc = map_file(&next, fd, cap, err)) != 0) {
        close(fd);
        unlink(tmp);
        return rc;
    }
    for (uint64_t i = 0; i < ix->cap; i++) {
        const slot_t *s = &ix->slots[i];
        if (!holds(ix, s))
            continue;
        int found;
        *probe(&next, s->key, &found) = *s;
    }
    if (msync(next.map, next.map_len, MS_SYNC) != 0 || rename(tmp, ix->path) != 0) {
        rc = tg_errf(err, TG_EIO, "replacing the event index %s: %s", ix->path, strerror(errno));
        munmap(next.map, next.map_len);
        close(fd);
        unlink(tmp);
        return rc;
    }
    /* the lock moves with the new file; the old one is gone from the directory. The rename is
     * made durable too: a power cut must not bring back the old file, whose last syncs
     * (tg_event_index_sync) the metering logs' resets relied on and which no longer gets them. */
    flock(fd, LOCK_EX | LOCK_NB);
    sync_dir(ix->path);
    munmap(ix->map, ix->map_len);
    close(ix->fd);
    ix->fd = fd;
    ix->map = next.map;
    ix->map_len = next.map_len;
    ix->slots = next.slots;
    ix->cap = cap;
    ix->used = ix->live = live;
    ix->generation++;
    return 0;
}

void tg_event_index_prefetch(const tg_event_index_t *ix, const uint8_t key[TG_EVENT_KEY_BYTES])
{
    /* a prefetch never faults: an address of a table a rebuild since replaced costs nothing */
    __builtin_prefetch(&ix->slots[slot_hash(key) & (ix->cap - 1)], 1, 3);
}

int tg_event_index_claim(tg_event_index_t *ix, const uint8_t key[TG_EVENT_KEY_BYTES], uint32_t today,
                         tg_event_slot_t *where, tg_err_t *err)
{
    if (today > ix->today)
        ix->today = today;
    if ((ix->used + 1) * 10 > ix->cap * 7) {
        int rc = rebuild(ix, MIN_SLOTS, err);
        if (rc != 0)
            return rc;
    }
    int found;
    slot_t *s = probe(ix, key, &found);
    if (found && holds(ix, s))
        return 0;
    if (s->state == S_EMPTY)
        ix->used++;
    /* the key first, the state last: a slot is never seen live with another key's bytes */
    memcpy(s->key, key, TG_EVENT_KEY_BYTES);
    s->day = ix->today;
    s->state = S_PENDING;
    ix->live++;
    if (where != NULL)
        *where = (tg_event_slot_t){(uint64_t)(s - ix->slots), ix->generation};
    return 1;
}

void tg_event_index_commit(tg_event_index_t *ix, const uint8_t key[TG_EVENT_KEY_BYTES])
{
    int found;
    slot_t *s = probe(ix, key, &found);
    if (found && s->state == S_PENDING)
        s->state = S_COMMITTED;
}

void tg_event_index_commit_at(tg_event_index_t *ix, const tg_event_slot_t *where, const uint8_t key[TG_EVENT_KEY_BYTES])
{
    if (where->generation == ix->generation && where->slot < ix->cap) {
        slot_t *s = &ix->slots[where->slot];
        if (s->state == S_PENDING && memcmp(s->key, key, TG_EVENT_KEY_BYTES) == 0) {
            s->state = S_COMMITTED;
            return;
        }
    }
    tg_event_index_commit(ix, key);
}

void tg_event_index_prefetch_at(const tg_event_index_t *ix, const tg_event_slot_t *where)
{
    if (where->generation == ix->generation && where->slot < ix->cap)
        __builtin_prefetch(&ix->slots[where->slot], 1, 3);
}

void tg_event_index_withdraw(tg_event_index_t *ix, const uint8_t key[TG_EVENT_KEY_BYTES])
{
    int found;
    slot_t *s = probe(ix, key, &found);
    if (found && s->state == S_PENDING) {
        s->state = S_TOMBSTONE;
        if (ix->live > 0)
            ix->live--;
    }
}

int tg_event_index_pending(tg_event_index_t *ix, uint8_t (**keys)[TG_EVENT_KEY_BYTES], size_t *n, tg_err_t *err)
{
    *keys = NULL;
    *n = 0;
    size_t cnt = 0, k = 0;
    for (uint64_t i = 0; i < ix->cap; i++)
        cnt += ix->slots[i].state == S_PENDING;
    if (cnt == 0)
        return 0;
    uint8_t(*out)[TG_EVENT_KEY_BYTES] = malloc(cnt * sizeof(*out));
    if (out == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory reading the event index");
    for (uint64_t i = 0; i < ix->cap && k < cnt; i++)
        if (ix->slots[i].state == S_PENDING)
            memcpy(out[k++], ix->slots[i].key, TG_EVENT_KEY_BYTES);
    *keys = out;
    *n = k;
    return 0;
}

int tg_event_index_claim_id(tg_event_index_t *ix, uint64_t event_id, uint32_t day, tg_err_t *err)
{
    uint8_t key[TG_EVENT_KEY_BYTES] = {0};
    tg_le_put64(key, event_id | ID_BIT);
    if (day > ix->today)
        ix->today = day;
    if ((ix->used + 1) * 10 > ix->cap * 7) {
        int rc = rebuild(ix, MIN_SLOTS, err);
        if (rc != 0)
            return rc;
    }
    int found;
    slot_t *s = probe_key(ix, key, 1, &found);
    if (found && holds(ix, s)) {
        if (s->day < day) /* held from an older day: the later event's day keeps it longer */
            s->day = day;
        return 0;
    }
    if (s->state == S_EMPTY)
        ix->used++;
    memcpy(s->key, key, TG_EVENT_KEY_BYTES);
    s->day = day;
    s->state = S_PREFIX;
    ix->live++;
    return 1;
}

int tg_event_index_created(const tg_event_index_t *ix)
{
    return ix->created;
}

int tg_event_index_sync_fd(tg_event_index_t *ix, tg_err_t *err)
{
    int fd = dup(ix->fd);
    if (fd < 0)
        return tg_errf(err, TG_EIO, "syncing the event index %s: %s", ix->path, strerror(errno));
    return fd;
}

int tg_event_index_sync(int fd, tg_err_t *err)
{
    /* Linux writes a shared mapping's dirty pages back with the file's: fdatasync covers them
     * (msync(MS_SYNC) is the same call underneath), and needs no mapping that a rebuild could
     * unmap meanwhile. */
    int rc = fdatasync(fd) == 0 ? 0 : tg_errf(err, TG_EIO, "syncing the event index: %s", strerror(errno));
    close(fd);
    return rc;
}

uint64_t tg_event_index_checkpoint(const tg_event_index_t *ix)
{
    return ix->checkpoint;
}

int tg_event_index_checkpoint_fd(tg_event_index_t *ix, uint64_t checkpoint, tg_err_t *err)
{
    /* as given, not the greatest seen: a database restored from a backup hands out block ids
     * below the old checkpoint again, and the next rebuild must not carry the old one */
    ix->checkpoint = checkpoint;
    return tg_event_index_sync_fd(ix, err);
}

int tg_event_index_checkpoint_write(int fd, uint64_t checkpoint, tg_err_t *err)
{
    /* the slots first: the header's new checkpoint is written only once the data it stands for
     * is on the disk, so a power cut at any point leaves a checkpoint the data covers (the
     * header is its own page, written back on its own) */
    int rc = fdatasync(fd) == 0 ? 0 : tg_errf(err, TG_EIO, "syncing the event index: %s", strerror(errno));
    unsigned char b[8];
    tg_le_put64(b, checkpoint);
    if (rc == 0 && pwrite(fd, b, sizeof(b), CHECKPOINT_AT) != (ssize_t)sizeof(b))
        rc = tg_errf(err, TG_EIO, "writing the event index's checkpoint: %s", strerror(errno));
    if (rc == 0 && fdatasync(fd) != 0)
        rc = tg_errf(err, TG_EIO, "syncing the event index's checkpoint: %s", strerror(errno));
    close(fd);
    return rc;
}

void tg_event_index_counts(const tg_event_index_t *ix, uint64_t *live, uint64_t *slots)
{
    *live = ix->live;
    *slots = ix->cap;
}
