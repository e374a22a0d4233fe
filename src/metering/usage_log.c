/* usage_log.c - see usage_log.h. All integers are little-endian on the disk. */
#include "metering/usage_log.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "util/pack.h"

#define HEADER_SIZE 4096
#define HEADER_MAGIC "TGUSGLOG"
#define RECORD_MAGIC UINT32_C(0x31524754) /* "TGR1" */
#define RECORD_HEAD 32
#define GROW_BYTES (UINT64_C(1) << 20)
/* A row: event id, units, time, period start, status, then five strings with a length byte. */
#define ROW_FIXED (8 + 8 + 8 + 8 + 4)
#define ROW_MAX (ROW_FIXED + 5 + TG_ID_MAX * 2 + TG_PLAN_ID_MAX + TG_METRIC_MAX + TG_ENDPOINT_MAX)
#define RECORD_ROWS_MAX 1000000 /* far above the meter's 10,000 per transaction */

struct tg_usage_log {
    int fd;           /* header, replay, growth */
    int dfd;          /* appends: O_DIRECT | O_DSYNC, or -1 where the filesystem has no direct I/O */
    int buffered;     /* TG_USAGE_LOG_BUFFERED: appends are a pwrite each, no sync, no growth ahead */
    int whole_blocks; /* direct I/O and buffered: appends write whole BLOCKs (dbuf) */
    char *path;
    uint64_t generation;
    uint64_t offset;    /* where the next record goes */
    uint64_t allocated; /* the file's size: bytes written, zeros past the records */
    unsigned char *buf; /* the record being written */
    size_t bufcap;
    unsigned char *dbuf; /* direct I/O: the last partial block, then the record (aligned) */
    size_t dbufcap;
    size_t stale_lo, stale_hi; /* dbuf's bytes past the kept block are zeros except [stale_lo, stale_hi) */
};

/* Appends go straight to the disk with O_DIRECT | O_DSYNC: one write system call, no page cache
 * and no writeback machinery. Measured here against pwrite + fdatasync of the same bytes: about
 * 18-36 us of kernel time per append instead of 44-46, and the same or lower latency. Direct
 * I/O writes whole aligned blocks, so each append rewrites the block where the previous record
 * ended (same bytes there) and pads the last block with zeros.
 *
 * Buffered appends (process durability) write whole blocks the same way, for another reason: a
 * write that covers only part of a page the page cache does not hold makes the kernel read that
 * block from the disk first, synchronously, inside the write. After a reset every append
 * overwrites blocks of an older generation, and those are not cached whenever the kernel
 * dropped them, or a run in another durability wrote them with direct I/O (which evicts them):
 * bench/gateway.sh, which alternates the modes on one database, showed the event loops' pwrite
 * at 0.98 us per call against 0.36 with the pages cached, and the loop waiting for the disk
 * meanwhile. A write of whole blocks never needs the old bytes. */
#define BLOCK 4096

static uint32_t crc(const unsigned char *head, size_t headlen, const unsigned char *body, size_t bodylen)
{
    uLong c = crc32(0L, head, (uInt)headlen);
    return (uint32_t)crc32(c, body, (uInt)bodylen);
}

static int write_all(tg_usage_log_t *log, int fd, const void *buf, size_t len, uint64_t off, tg_err_t *err)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return tg_errf(err, TG_EIO, "writing the metering log %s: %s", log->path,
                           w < 0 ? strerror(errno) : "nothing written");
        p += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

static int read_all(const tg_usage_log_t *log, void *buf, size_t len, uint64_t off)
{
    char *p = buf;
    while (len > 0) {
        ssize_t r = pread(log->fd, p, len, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1; /* an error or the end of the file: either way, no intact record here */
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int sync_log(tg_usage_log_t *log, tg_err_t *err)
{
    while (fdatasync(log->fd) != 0)
        if (errno != EINTR)
            return tg_errf(err, TG_EIO, "syncing the metering log %s: %s", log->path, strerror(errno));
    return 0;
}

static int write_header(tg_usage_log_t *log, uint64_t generation, tg_err_t *err)
{
    unsigned char h[HEADER_SIZE] = {0};
    memcpy(h, HEADER_MAGIC, 8);
    tg_le_put64(h + 8, generation);
    tg_le_put32(h + 16, crc(h, 16, NULL, 0));
    int rc = write_all(log, log->fd, h, sizeof(h), 0, err);
    return rc != 0 ? rc : sync_log(log, err);
}

/* A new file's name must be durable too, or a power cut could take the whole log with it. */
static int sync_dir(const char *path, tg_err_t *err)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory");
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;
    if (fd < 0 || fsync(fd) != 0)
        rc = tg_errf(err, TG_EIO, "syncing the directory of %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(copy);
    return rc;
}

int tg_usage_log_open(const char *path, tg_usage_log_t **out, tg_err_t *err)
{
    return tg_usage_log_open_mode(path, TG_USAGE_LOG_DURABLE, out, err);
}

int tg_usage_log_open_mode(const char *path, tg_usage_log_mode_t mode, tg_usage_log_t **out, tg_err_t *err)
{
    *out = NULL;
    tg_usage_log_t *log = calloc(1, sizeof(*log));
    if (log == NULL || (log->path = strdup(path)) == NULL) {
        free(log);
        return tg_errf(err, TG_ENOMEM, "out of memory opening the metering log");
    }
    int rc = 0;
    log->dfd = -1;
    log->buffered = mode == TG_USAGE_LOG_BUFFERED;
    if ((log->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
        rc = tg_errf(err, TG_EIO, "opening the metering log %s: %s", path, strerror(errno));
        goto fail;
    }
    if (flock(log->fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK
                 ? tg_errf(err, TG_ESTATE, "the metering log %s is in use by another tollgate process", path)
                 : tg_errf(err, TG_EIO, "locking the metering log %s: %s", path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(log->fd, &sb) != 0) {
        rc = tg_errf(err, TG_EIO, "reading the metering log %s: %s", path, strerror(errno));
        goto fail;
    }
    log->offset = HEADER_SIZE;
    if (sb.st_size == 0) {
        log->generation = 1;
        log->allocated = HEADER_SIZE;
        if ((rc = write_header(log, log->generation, err)) != 0 || (rc = sync_dir(path, err)) != 0)
            goto fail;
    } else {
        unsigned char h[20];
        if (sb.st_size < HEADER_SIZE || read_all(log, h, sizeof(h), 0) != 0 || memcmp(h, HEADER_MAGIC, 8) != 0 ||
            tg_le_get32(h + 16) != crc(h, 16, NULL, 0)) {
            rc = tg_errf(err, TG_ESTORE,
                         "%s is not a tollgate metering log or its header is damaged; "
                         "move it aside to start (calls recorded in it are then not stored)",
                         path);
            goto fail;
        }
        log->generation = tg_le_get64(h + 8);
        log->allocated = (uint64_t)sb.st_size;
    }
    const char *buffered = getenv("TOLLGATE_USAGE_LOG_BUFFERED"); /* an escape hatch, and the tests' */
    if (!log->buffered && (buffered == NULL || strcmp(buffered, "1") != 0) &&
        (log->dfd = open(path, O_RDWR | O_CLOEXEC | O_DIRECT | O_DSYNC)) < 0 && errno != EINVAL) {
        rc = tg_errf(err, TG_EIO, "opening the metering log %s: %s", path, strerror(errno));
        goto fail;
    }
    log->whole_blocks = log->dfd >= 0 || log->buffered;
    *out = log;
    return 0;
fail:
    tg_usage_log_close(log);
    return rc;
}

void tg_usage_log_close(tg_usage_log_t *log)
{
    if (log == NULL)
        return;
    if (log->dfd >= 0)
        close(log->dfd);
    if (log->fd >= 0)
        close(log->fd); /* releases the flock */
    free(log->path);
    free(log->buf);
    free(log->dbuf);
    free(log);
}

static int decode_rows(const unsigned char *p, const unsigned char *end, tg_usage_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tg_usage_t *u = &rows[i];
        if ((size_t)(end - p) < ROW_FIXED)
            return -1;
        u->event_id = tg_le_get64(p);
        u->units = tg_le_get64(p + 8);
        u->ts_ns = (int64_t)tg_le_get64(p + 16);
        u->period_start = (int64_t)tg_le_get64(p + 24);
        u->status = (int)(int32_t)tg_le_get32(p + 32);
        p += ROW_FIXED;
        if (tg_unpack_str(&p, end, u->customer_id, sizeof(u->customer_id)) != 0 ||
            tg_unpack_str(&p, end, u->key_id, sizeof(u->key_id)) != 0 ||
            tg_unpack_str(&p, end, u->plan_id, sizeof(u->plan_id)) != 0 ||
            tg_unpack_str(&p, end, u->metric, sizeof(u->metric)) != 0 ||
            tg_unpack_str(&p, end, u->endpoint, sizeof(u->endpoint)) != 0)
            return -1;
    }
    return p == end ? 0 : -1;
}

static int reserve_dbuf(tg_usage_log_t *log, size_t cap, tg_err_t *err);

/* Reads the record at off, no further than limit, into a new array of rows. 0 when read; 1 when
 * there is no intact record there (torn, past the end, or of another generation when generation
 * is not 0); TG_ENOMEM; TG_ESTORE for a record that passes its CRC but
 * does not decode. Uses nothing an append or a reset changes, so one thread may read records
 * while another appends. */
static int read_record(const tg_usage_log_t *log, uint64_t off, uint64_t limit, uint64_t generation, uint64_t *len_out,
                       uint64_t *batch_out, tg_usage_t **rows_out, size_t *n_out, tg_err_t *err)
{
    unsigned char h[RECORD_HEAD];
    if (read_all(log, h, sizeof(h), off) != 0 || tg_le_get32(h) != RECORD_MAGIC ||
        (generation != 0 && tg_le_get64(h + 8) != generation))
        return 1;
    uint32_t len = tg_le_get32(h + 4), n = tg_le_get32(h + 24);
    if (n == 0 || n > RECORD_ROWS_MAX || len < (uint64_t)n * (ROW_FIXED + 5) || len > (uint64_t)n * ROW_MAX ||
        off + RECORD_HEAD + len > limit)
        return 1;
    unsigned char *body = malloc(len);
    tg_usage_t *rows = calloc(n, sizeof(*rows));
    int rc = 0;
    if (body == NULL || rows == NULL)
        rc = tg_errf(err, TG_ENOMEM, "out of memory reading the metering log");
    else if (read_all(log, body, len, off + RECORD_HEAD) != 0 || tg_le_get32(h + 28) != crc(h, 28, body, len))
        rc = 1; /* torn: the append that was running when the process stopped */
    else if (decode_rows(body, body + len, rows, n) != 0)
        rc = tg_errf(err, TG_ESTORE, "the metering log %s has a malformed record at offset %llu", log->path,
                     (unsigned long long)off);
    free(body);
    if (rc != 0) {
        free(rows);
        return rc;
    }
    *len_out = RECORD_HEAD + len;
    *batch_out = tg_le_get64(h + 16);
    *rows_out = rows;
    *n_out = n;
    return 0;
}

int tg_usage_log_replay(tg_usage_log_t *log, tg_usage_log_replay_cb cb, void *arg, tg_err_t *err)
{
    uint64_t off = HEADER_SIZE;
    int rc = 0;
    for (;;) {
        uint64_t len, batch_id;
        tg_usage_t *rows;
        size_t n;
        if ((rc = read_record(log, off, log->allocated, log->generation, &len, &batch_id, &rows, &n, err)) != 0)
            break;
        int cb_rc = cb(arg, batch_id, rows, n);
        free(rows);
        if (cb_rc != 0)
            return cb_rc;
        off += len;
    }
    if (rc < 0)
        return rc;
    log->offset = off;
    /* Whole-block appends rewrite the block the last record ends in: start from its bytes. */
    size_t head = (size_t)(off % BLOCK);
    if (log->whole_blocks && head > 0) {
        if ((rc = reserve_dbuf(log, BLOCK, err)) != 0)
            return rc;
        if (read_all(log, log->dbuf, head, off - head) != 0)
            return tg_errf(err, TG_EIO, "reading the metering log %s: its last block is cut short", log->path);
        log->stale_lo = head; /* whatever dbuf held past the block read back */
        log->stale_hi = log->stale_hi > BLOCK ? log->stale_hi : BLOCK;
    }
    return 0;
}

/* Whole-block appends: makes dbuf hold at least cap bytes, keeping the partial block at its
 * start (at most BLOCK bytes); the bytes past it are zeros. */
static int reserve_dbuf(tg_usage_log_t *log, size_t cap, tg_err_t *err)
{
    if (cap <= log->dbufcap)
        return 0;
    size_t n = (cap + BLOCK - 1) / BLOCK * BLOCK;
    void *p;
    if (posix_memalign(&p, BLOCK, n) != 0)
        return tg_errf(err, TG_ENOMEM, "out of memory writing the metering log");
    memset(p, 0, n);
    if (log->dbuf != NULL)
        memcpy(p, log->dbuf, BLOCK);
    free(log->dbuf);
    log->dbuf = p;
    log->dbufcap = n;
    log->stale_lo = 0;
    log->stale_hi = BLOCK; /* what the copy brought past the partial block */
    return 0;
}

/* s (a field of cap bytes, cap < 256) packed as tg_pack_str does, or NULL when s does not end
 * inside its field (tg_usage_terminated's check, with one pass per field instead of two: the
 * meter's writer spent 2 % of tollgate's CPU in strnlen in bench/events.sh's profile). */
static unsigned char *pack_field(unsigned char *p, const char *s, size_t cap)
{
    size_t n = tg_usage_field_len(s, cap);
    if (n >= cap)
        return NULL;
    *p++ = (unsigned char)n;
    memcpy(p, s, n);
    return p + n;
}

/* Writes the record in buf (RECORD_HEAD + len bytes), which goes at log->offset, as whole
 * blocks: from `block` (the block log->offset is in; its first `head` bytes, the end of the
 * previous record, are kept in dbuf) to `padded` bytes later, zeros after the record. Then
 * advances the offset and keeps the block the record ends in for the next append.
 *
 * dbuf is zero past the record but for [stale_lo, stale_hi), what earlier records left there, so
 * only that part of the padding is cleared: about the rest of a block once per block of log,
 * when a record has moved on to a new one. Zeroing the rest of the block on every append was
 * 1,580 instructions per append under callgrind (bench/callpath_instructions.sh, 4 connections,
 * 1.9 calls per append), more than encoding the record. The bytes written are the same. */
static int write_blocks(tg_usage_log_t *log, int fd, uint64_t block, size_t head, size_t padded, size_t len,
                        tg_err_t *err)
{
    int rc = reserve_dbuf(log, padded, err);
    if (rc != 0)
        return rc;
    size_t used = head + RECORD_HEAD + len;
    memcpy(log->dbuf + head, log->buf, RECORD_HEAD + len);
    size_t lo = log->stale_lo > used ? log->stale_lo : used, hi = log->stale_hi < padded ? log->stale_hi : padded;
    if (lo < hi)
        memset(log->dbuf + lo, 0, hi - lo);
    /* what stays stale: past this write's blocks */
    size_t left_lo = log->stale_hi > padded ? (log->stale_lo > padded ? log->stale_lo : padded) : 0;
    size_t left_hi = log->stale_hi > padded ? log->stale_hi : 0;
    if ((rc = write_all(log, fd, log->dbuf, padded, block, err)) != 0) {
        log->stale_lo = head; /* the record's bytes, for a retry that may be shorter */
        log->stale_hi = left_hi > used ? left_hi : used;
        return rc;
    }
    uint64_t end = log->offset + RECORD_HEAD + len, last = end / BLOCK * BLOCK;
    size_t from = (size_t)(last - block), tail = (size_t)(end - last);
    if (from > 0) { /* the record ends in a later block: keep that one; the rest is stale */
        memmove(log->dbuf, log->dbuf + from, tail);
        log->stale_lo = tail;
        log->stale_hi = left_hi > used ? left_hi : used;
    } else {
        log->stale_lo = left_lo;
        log->stale_hi = left_hi;
    }
    log->offset = end;
    return 0;
}

int tg_usage_log_append(tg_usage_log_t *log, uint64_t batch_id, const tg_usage_t *rows, size_t n, tg_err_t *err)
{
    if (n == 0 || n > RECORD_ROWS_MAX)
        return tg_errf(err, TG_EINVAL, "a metering log record holds 1 to %d rows, not %zu", RECORD_ROWS_MAX, n);
    size_t need = RECORD_HEAD + n * ROW_MAX;
    if (need > log->bufcap) {
        unsigned char *b = realloc(log->buf, need);
        if (b == NULL)
            return tg_errf(err, TG_ENOMEM, "out of memory writing the metering log");
        log->buf = b;
        log->bufcap = need;
    }
    unsigned char *p = log->buf + RECORD_HEAD;
    for (size_t i = 0; i < n; i++) {
        const tg_usage_t *u = &rows[i];
        tg_le_put64(p, u->event_id);
        tg_le_put64(p + 8, u->units);
        tg_le_put64(p + 16, (uint64_t)u->ts_ns);
        tg_le_put64(p + 24, (uint64_t)u->period_start);
        tg_le_put32(p + 32, (uint32_t)u->status);
        p += ROW_FIXED;
        if ((p = pack_field(p, u->customer_id, TG_ID_MAX)) == NULL ||
            (p = pack_field(p, u->key_id, TG_ID_MAX)) == NULL ||
            (p = pack_field(p, u->plan_id, TG_PLAN_ID_MAX)) == NULL ||
            (p = pack_field(p, u->metric, TG_METRIC_MAX)) == NULL ||
            (p = pack_field(p, u->endpoint, TG_ENDPOINT_MAX)) == NULL)
            return tg_errf(err, TG_EINVAL, "usage row %zu has an unterminated field", i);
    }
    size_t len = (size_t)(p - log->buf) - RECORD_HEAD;
    unsigned char *h = log->buf;
    tg_le_put32(h, RECORD_MAGIC);
    tg_le_put32(h + 4, (uint32_t)len);
    tg_le_put64(h + 8, log->generation);
    tg_le_put64(h + 16, batch_id);
    tg_le_put32(h + 24, (uint32_t)n);
    tg_le_put32(h + 28, crc(h, 28, h + RECORD_HEAD, len));
    uint64_t end = log->offset + RECORD_HEAD + len;
    int rc;
    uint64_t block = log->offset / BLOCK * BLOCK; /* whole-block appends write from here */
    size_t head = (size_t)(log->offset - block), padded = (head + RECORD_HEAD + len + BLOCK - 1) / BLOCK * BLOCK;
    uint64_t file_end = log->whole_blocks ? block + padded : end;
    if (log->buffered) {
        /* Process durability: one write into the page cache, nothing else on the caller's path
         * (the caller is a gateway event loop). Nothing is written ahead: growing by a megabyte
         * of zeros is there so that fdatasync has no metadata to write, and no append syncs here.
         * Measured (bench/durable_append.sh): a page-cache write of an 11-row group costs about
         * 3.5 us, a durable append 86 us. */
        if ((rc = write_blocks(log, log->fd, block, head, padded, len, err)) != 0)
            return rc;
        if (file_end > log->allocated)
            log->allocated = file_end;
        return 0;
    }
    if (file_end > log->allocated) { /* grow by zeros ahead of the records, so most appends keep the size */
        static const unsigned char zeros[65536];
        uint64_t to = file_end + GROW_BYTES - file_end % GROW_BYTES;
        for (uint64_t at = log->allocated; at < to; at += sizeof(zeros))
            if ((rc = write_all(log, log->fd, zeros, to - at < sizeof(zeros) ? (size_t)(to - at) : sizeof(zeros), at,
                                err)) != 0)
                return rc;
        if ((rc = sync_log(log, err)) != 0)
            return rc;
        log->allocated = to;
    }
    if (log->dfd < 0) {
        /* A failed write or sync is retried by writing the whole record again: after a failed
         * fdatasync the kernel may have dropped the dirty pages, and a second sync alone could
         * report success for data that is not there. */
        if ((rc = write_all(log, log->fd, log->buf, RECORD_HEAD + len, log->offset, err)) != 0 ||
            (rc = sync_log(log, err)) != 0)
            return rc;
        log->offset = end;
        return 0;
    }
    return write_blocks(log, log->dfd, block, head, padded, len, err);
}

int tg_usage_log_sync(tg_usage_log_t *log, tg_err_t *err)
{
    return sync_log(log, err);
}

int tg_usage_log_reset(tg_usage_log_t *log, tg_err_t *err)
{
    int rc = write_header(log, log->generation + 1, err);
    if (rc != 0)
        return rc;
    log->generation++;
    log->offset = HEADER_SIZE;
    if (log->dbuf != NULL) { /* the block kept for the next append is the old generation's */
        log->stale_lo = 0;
        log->stale_hi = log->stale_hi > BLOCK ? log->stale_hi : BLOCK;
    }
    return 0;
}

int tg_usage_log_read(const tg_usage_log_t *log, uint64_t *pos, uint64_t *batch_id, tg_usage_t **rows, size_t *n,
                      tg_err_t *err)
{
    uint64_t len;
    int rc = read_record(log, HEADER_SIZE + *pos, UINT64_MAX, 0, &len, batch_id, rows, n, err);
    if (rc == 1)
        return tg_errf(err, TG_ESTORE, "the metering log %s has no intact record at offset %llu", log->path,
                       (unsigned long long)(HEADER_SIZE + *pos));
    if (rc == 0)
        *pos += len;
    return rc;
}

uint64_t tg_usage_log_used(const tg_usage_log_t *log)
{
    return log->offset - HEADER_SIZE;
}

const char *tg_usage_log_path(const tg_usage_log_t *log)
{
    return log->path;
}
