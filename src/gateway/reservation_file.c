/* reservation_file.c - see reservation_file.h.
 *
 * The file: a 64-byte header (magic, version, slot size, slot count), then the slots, each
 * padded to a multiple of 64 bytes so that two threads holding at once do not share a cache
 * line. A new file is all zeroes: every slot free. Free slots are a stack, so the slots in use
 * are the few pages at its top, whatever max_pending is: the mapping is not populated up front
 * (a million slots would be a gigabyte of page cache); a page takes one minor fault when first
 * written, and another when written again after the kernel wrote it back (it tracks dirty
 * pages), about once per page per writeback interval. */
#include "gateway/reservation_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway/accounts.h"
#include "gateway/reservations.h"
#include "metering/usage_log.h"

#define MAGIC "TGRSVSL1"
#define VERSION 1
#define HEADER_SIZE 64
#define SLOT_FREE 0u
#define SLOT_OPEN 0x4f50454eu /* "OPEN": a stray non-zero word is not taken for an open slot */
#define STACK_EMPTY 0u

typedef struct file_header {
    char magic[8];
    uint32_t version;
    uint32_t slot_size;
    uint64_t nslots;
    uint8_t reserved[HEADER_SIZE - 24];
} file_header_t;

/* What tg_gateway_settle needs to bill the call with its own units, status 200, no header. */
typedef struct slot {
    _Atomic uint32_t state; /* written last when opened, first when freed */
    uint32_t nunits;
    uint64_t event_id;
    int64_t decided_ns;
    int64_t period_start;
    char id[TG_RESERVATION_ID_MAX];
    char customer_id[TG_ID_MAX];
    char key_id[TG_ID_MAX];
    char plan_id[TG_PLAN_ID_MAX];
    char endpoint[TG_ENDPOINT_MAX];
    struct {
        char metric[TG_METRIC_MAX];
        uint64_t units;
    } units[TG_CALL_MAX_METRICS];
} slot_t;

#define SLOT_SIZE ((sizeof(slot_t) + 63) & ~(size_t)63)
_Static_assert(sizeof(file_header_t) == HEADER_SIZE, "the header is 64 bytes");

typedef struct left {
    size_t slot;
    int logged; /* its event_id is in a metering log */
} left_t;

struct tg_reservation_file {
    char *path;
    int fd;
    uint8_t *map;
    size_t map_len;
    size_t nslots;
    left_t *left; /* the slots a dead process left open, until recovered */
    size_t nleft;
    /* Free slots: a lock-free stack. top is (tag << 32) | (index + 1); the tag changes on every
     * push and pop, so a pop that raced with a pop and push of the same slot fails its CAS. */
    _Atomic uint64_t top;
    _Atomic uint32_t *below; /* below[i]: index + 1 of the slot under slot i, 0 for none */
};

static slot_t *slot_at(const tg_reservation_file_t *f, size_t i)
{
    return (slot_t *)(void *)(f->map + HEADER_SIZE + i * SLOT_SIZE);
}

char *tg_reservation_file_path(const char *store_url, const char *log_dir, const char *node, tg_err_t *err)
{
    char *path = NULL;
    int n;
    if (log_dir != NULL)
        n = node != NULL && *node != '\0' ? asprintf(&path, "%s/reservations-%s.slots", log_dir, node)
                                          : asprintf(&path, "%s/reservations.slots", log_dir);
    else if (strncmp(store_url, "sqlite:", 7) == 0)
        n = asprintf(&path, "%s-reservations.slots", store_url + 7);
    else
        return tg_errf(err, TG_EINVAL, "the decision API needs a log directory (metering.log_dir) with PostgreSQL"),
               NULL;
    if (n < 0) {
        tg_errf(err, TG_ENOMEM, "out of memory");
        return NULL;
    }
    return path;
}

static int map_file(tg_reservation_file_t *f, tg_err_t *err)
{
    f->map_len = HEADER_SIZE + f->nslots * SLOT_SIZE;
    void *p = mmap(NULL, f->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, 0);
    if (p == MAP_FAILED) {
        f->map = NULL;
        return tg_errf(err, TG_EIO, "mapping %s: %s", f->path, strerror(errno));
    }
    f->map = p;
    return 0;
}

/* Sizes a file whose slots are all free for n slots, and maps it. */
static int size_file(tg_reservation_file_t *f, size_t n, tg_err_t *err)
{
    if (f->map != NULL)
        munmap(f->map, f->map_len);
    f->map = NULL;
    f->nslots = n;
    off_t len = (off_t)(HEADER_SIZE + n * SLOT_SIZE);
    /* truncating to 0 first: the slots of the old file are all free, start from zeroes */
    if (ftruncate(f->fd, 0) != 0 || ftruncate(f->fd, len) != 0)
        return tg_errf(err, TG_EIO, "sizing %s: %s", f->path, strerror(errno));
    int rc = posix_fallocate(f->fd, 0, len); /* a full disk fails now, not as SIGBUS later */
    if (rc != 0)
        return tg_errf(err, TG_EIO, "reserving %lld bytes for %s (decide.max_pending slots): %s", (long long)len,
                       f->path, strerror(rc));
    if ((rc = map_file(f, err)) != 0)
        return rc;
    file_header_t *h = (file_header_t *)(void *)f->map;
    memcpy(h->magic, MAGIC, sizeof(h->magic));
    h->version = VERSION;
    h->slot_size = (uint32_t)SLOT_SIZE;
    h->nslots = n;
    return 0;
}

static int terminated(const slot_t *s)
{
    if (s->nunits > TG_CALL_MAX_METRICS || strnlen(s->id, sizeof(s->id)) != TG_RESERVATION_ID_LEN ||
        strnlen(s->customer_id, sizeof(s->customer_id)) == sizeof(s->customer_id) ||
        strnlen(s->key_id, sizeof(s->key_id)) == sizeof(s->key_id) ||
        strnlen(s->plan_id, sizeof(s->plan_id)) == sizeof(s->plan_id) ||
        strnlen(s->endpoint, sizeof(s->endpoint)) == sizeof(s->endpoint))
        return 0;
    for (uint32_t i = 0; i < s->nunits; i++)
        if (strnlen(s->units[i].metric, sizeof(s->units[i].metric)) == sizeof(s->units[i].metric))
            return 0;
    return 1;
}

/* Reads an existing file's header and maps it; the slots open in it become f->left. */
static int read_file(tg_reservation_file_t *f, off_t size, tg_err_t *err)
{
    file_header_t h;
    if (size < HEADER_SIZE || pread(f->fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
        memcmp(h.magic, MAGIC, sizeof(h.magic)) != 0)
        return tg_errf(err, TG_ESTORE, "%s is not a reservations file (move it away if it is not)", f->path);
    if (h.version != VERSION || h.slot_size != SLOT_SIZE || h.nslots > (size_t)(size - HEADER_SIZE) / SLOT_SIZE)
        return tg_errf(err, TG_ESTORE,
                       "%s: version %u, slots of %u bytes, %llu slots in %lld bytes: written by another version "
                       "of tollgate or cut short; its open reservations are not billed until it is read",
                       f->path, h.version, h.slot_size, (unsigned long long)h.nslots, (long long)size);
    f->nslots = (size_t)h.nslots;
    int rc = map_file(f, err);
    if (rc != 0)
        return rc;
    size_t n = 0;
    for (size_t i = 0; i < f->nslots; i++)
        n += atomic_load_explicit(&slot_at(f, i)->state, memory_order_acquire) == SLOT_OPEN;
    if (n > 0 && (f->left = calloc(n, sizeof(*f->left))) == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory reading %s", f->path);
    for (size_t i = 0; i < f->nslots; i++)
        if (atomic_load_explicit(&slot_at(f, i)->state, memory_order_acquire) == SLOT_OPEN)
            f->left[f->nleft++].slot = i;
    return 0;
}

typedef struct find_ctx {
    tg_reservation_file_t *f;
    const uint64_t *ids; /* the left slots' event ids, sorted */
    const size_t *order; /* their index in f->left, in the same order */
} find_ctx_t;

static int cmp_by_event(const void *a, const void *b, void *arg)
{
    const tg_reservation_file_t *f = arg;
    uint64_t x = slot_at(f, f->left[*(const size_t *)a].slot)->event_id;
    uint64_t y = slot_at(f, f->left[*(const size_t *)b].slot)->event_id;
    return x < y ? -1 : x > y;
}

/* Marks the left slots whose event_id a logged row carries. */
static int find_logged(void *arg, uint64_t batch_id, const tg_usage_t *rows, size_t n)
{
    (void)batch_id;
    find_ctx_t *c = arg;
    for (size_t r = 0; r < n; r++) {
        size_t lo = 0, hi = c->f->nleft;
        while (lo < hi) { /* the first id >= the row's */
            size_t mid = lo + (hi - lo) / 2;
            if (c->ids[mid] < rows[r].event_id)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (; lo < c->f->nleft && c->ids[lo] == rows[r].event_id; lo++)
            c->f->left[c->order[lo]].logged = 1;
    }
    return 0;
}

/* The rows are in a log until they are stored and both logs have moved on, which is long after
 * the meter's callback freed the slot (see the header). */
static int check_logs(tg_reservation_file_t *f, const char *const log_paths[2], tg_err_t *err)
{
    size_t *order = malloc(f->nleft * sizeof(*order));
    uint64_t *ids = malloc(f->nleft * sizeof(*ids));
    int rc = 0;
    if (order == NULL || ids == NULL) {
        rc = tg_errf(err, TG_ENOMEM, "out of memory reading %s", f->path);
        goto out;
    }
    for (size_t i = 0; i < f->nleft; i++)
        order[i] = i;
    qsort_r(order, f->nleft, sizeof(*order), cmp_by_event, f);
    for (size_t i = 0; i < f->nleft; i++)
        ids[i] = slot_at(f, f->left[order[i]].slot)->event_id;
    find_ctx_t c = {f, ids, order};
    for (int i = 0; i < 2 && rc == 0; i++) {
        if (log_paths[i] == NULL || access(log_paths[i], F_OK) != 0)
            continue;
        tg_usage_log_t *log;
        if ((rc = tg_usage_log_open(log_paths[i], &log, err)) != 0)
            break;
        rc = tg_usage_log_replay(log, find_logged, &c, err);
        tg_usage_log_close(log);
    }
out:
    free(order);
    free(ids);
    return rc;
}

int tg_reservation_file_open(const char *path, const char *const log_paths[2], tg_reservation_file_t **out,
                             tg_err_t *err)
{
    *out = NULL;
    tg_reservation_file_t *f = calloc(1, sizeof(*f));
    if (f == NULL || (f->path = strdup(path)) == NULL) {
        free(f);
        return tg_errf(err, TG_ENOMEM, "out of memory");
    }
    int rc = 0;
    struct stat st;
    if ((f->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
        rc = tg_errf(err, TG_EIO, "opening %s: %s", path, strerror(errno));
    } else if (flock(f->fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? tg_errf(err, TG_ESTATE, "%s is in use by another tollgate process", path)
                                  : tg_errf(err, TG_EIO, "locking %s: %s", path, strerror(errno));
    } else if (fstat(f->fd, &st) != 0) {
        rc = tg_errf(err, TG_EIO, "reading %s: %s", path, strerror(errno));
    } else if (st.st_size > 0) {
        if ((rc = read_file(f, st.st_size, err)) == 0 && f->nleft > 0)
            rc = check_logs(f, log_paths, err);
    }
    if (rc != 0) {
        tg_reservation_file_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

/* The usage rows the settlement of this slot's call would have written by the timeout rule
 * bill (tg_gateway_settle, status 200, no Tollgate-Units): one per metric, merged by name. */
static size_t slot_rows(const slot_t *s, tg_usage_t rows[TG_CALL_MAX_METRICS])
{
    size_t n = 0;
    for (uint32_t i = 0; i < s->nunits; i++) {
        size_t j = 0;
        while (j < n && strcmp(rows[j].metric, s->units[i].metric) != 0)
            j++;
        if (j < n) { /* saturating, as the settlement does */
            rows[j].units = rows[j].units > (uint64_t)INT64_MAX - s->units[i].units ? (uint64_t)INT64_MAX
                                                                                    : rows[j].units + s->units[i].units;
            continue;
        }
        tg_usage_t *u = &rows[n++];
        memset(u, 0, sizeof(*u));
        u->event_id = s->event_id;
        memcpy(u->customer_id, s->customer_id, sizeof(u->customer_id));
        memcpy(u->key_id, s->key_id, sizeof(u->key_id));
        memcpy(u->plan_id, s->plan_id, sizeof(u->plan_id));
        memcpy(u->metric, s->units[i].metric, sizeof(u->metric));
        memcpy(u->endpoint, s->endpoint, sizeof(u->endpoint));
        u->units = s->units[i].units;
        u->ts_ns = s->decided_ns;
        u->period_start = s->period_start;
        u->status = 200;
    }
    return n;
}

static void push_free(tg_reservation_file_t *f, uint32_t i)
{
    uint64_t old = atomic_load_explicit(&f->top, memory_order_relaxed), next;
    do {
        atomic_store_explicit(&f->below[i], (uint32_t)old, memory_order_relaxed);
        next = (((old >> 32) + 1) << 32) | (uint64_t)(i + 1);
    } while (!atomic_compare_exchange_weak_explicit(&f->top, &old, next, memory_order_release, memory_order_relaxed));
}

size_t tg_reservation_file_slots(size_t capacity)
{
    return capacity + capacity / 4 + 64;
}

int tg_reservation_file_recover(tg_reservation_file_t *f, tg_meter_t *meter, int on_timeout, size_t capacity,
                                tg_reservation_recovered_t *out, tg_err_t *err)
{
    memset(out, 0, sizeof(*out));
    out->left = f->nleft;
    int rc = 0;
    for (size_t i = 0; i < f->nleft && rc == 0; i++) {
        const slot_t *s = slot_at(f, f->left[i].slot);
        if (f->left[i].logged) {
            out->logged++;
        } else if (on_timeout == TG_RESERVATION_RELEASE) {
            out->released++;
        } else if (!terminated(s)) {
            rc = tg_errf(err, TG_ESTORE, "%s: slot %zu is damaged (open, with unterminated fields)", f->path,
                         f->left[i].slot);
        } else {
            tg_usage_t rows[TG_CALL_MAX_METRICS];
            size_t n = slot_rows(s, rows);
            if (n > 0 && (rc = tg_meter_submit(meter, rows, n, NULL, NULL)) != 0)
                rc = tg_errf(err, rc, "the meter refused the usage of the reservation %s left open (error %d)", s->id,
                             rc);
            out->billed++;
        }
    }
    /* the slots are freed only once the store holds what they billed */
    if (rc == 0 && out->billed > 0 && (rc = tg_meter_flush(meter)) != 0)
        rc = tg_errf(err, rc, "storing the reservations left open");
    if (rc != 0)
        return rc;
    if (capacity > (UINT32_MAX - 65) / 5 * 4)
        return tg_errf(err, TG_EINVAL, "decide.max_pending: %zu is too many for the reservations file", capacity);
    size_t nslots = tg_reservation_file_slots(capacity);
    if (f->nslots != nslots || f->map == NULL) {
        if ((rc = size_file(f, nslots, err)) != 0)
            return rc;
    } else {
        for (size_t i = 0; i < f->nleft; i++) /* the only open ones: the logged and released too */
            atomic_store_explicit(&slot_at(f, f->left[i].slot)->state, SLOT_FREE, memory_order_release);
    }
    free(f->left);
    f->left = NULL;
    f->nleft = 0;
    free((void *)f->below);
    if ((f->below = calloc(nslots, sizeof(*f->below))) == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory for decide.max_pending");
    atomic_store(&f->top, STACK_EMPTY);
    for (size_t i = nslots; i-- > 0;) /* slot 0 on top: the file is written from its start */
        push_free(f, (uint32_t)i);
    return 0;
}

int64_t tg_reservation_file_take(tg_reservation_file_t *f)
{
    uint64_t old = atomic_load_explicit(&f->top, memory_order_acquire), next;
    do {
        uint32_t i1 = (uint32_t)old;
        if (i1 == STACK_EMPTY)
            return -1;
        next = (((old >> 32) + 1) << 32) | atomic_load_explicit(&f->below[i1 - 1], memory_order_relaxed);
    } while (!atomic_compare_exchange_weak_explicit(&f->top, &old, next, memory_order_acquire, memory_order_acquire));
    return (int64_t)(uint32_t)old - 1;
}

/* strlen capped at cap - 1, then the copy and its NUL: the config's and the call's strings are
 * all shorter than the slot's fields, but a cut one must still end. */
static void copy_field(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void tg_reservation_file_open_slot(tg_reservation_file_t *f, int64_t slot, const tg_call_t *call, const char *id)
{
    slot_t *s = slot_at(f, (size_t)slot);
    s->event_id = call->event_id;
    s->decided_ns = call->decided_ns;
    s->period_start = call->period_start;
    copy_field(s->id, sizeof(s->id), id);
    copy_field(s->customer_id, sizeof(s->customer_id), tg_account_id(call->account));
    copy_field(s->key_id, sizeof(s->key_id), call->key_id);
    copy_field(s->plan_id, sizeof(s->plan_id), call->plan->id);
    copy_field(s->endpoint, sizeof(s->endpoint), call->endpoint);
    s->nunits = (uint32_t)(call->nunits < TG_CALL_MAX_METRICS ? call->nunits : TG_CALL_MAX_METRICS);
    for (uint32_t i = 0; i < s->nunits; i++) {
        copy_field(s->units[i].metric, sizeof(s->units[i].metric), call->units[i].metric);
        s->units[i].units = call->units[i].units;
    }
    /* last: a slot is open only once everything above is in it */
    atomic_store_explicit(&s->state, SLOT_OPEN, memory_order_release);
}

void tg_reservation_file_free_slot(tg_reservation_file_t *f, int64_t slot)
{
    atomic_store_explicit(&slot_at(f, (size_t)slot)->state, SLOT_FREE, memory_order_release);
    push_free(f, (uint32_t)slot);
}

void tg_reservation_file_close(tg_reservation_file_t *f)
{
    if (f == NULL)
        return;
    if (f->map != NULL)
        munmap(f->map, f->map_len);
    if (f->fd >= 0)
        close(f->fd); /* releases the lock */
    free((void *)f->below);
    free(f->left);
    free(f->path);
    free(f);
}
