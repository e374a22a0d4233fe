/* fuzz_usage_log.c - the metering log against arbitrary file contents (libFuzzer).
 *
 * The log is read back at every start, after whatever a crash, a torn write or a damaged disk
 * left in it. The first input byte says how the rest becomes the file: bit 0 set puts a valid
 * header (generation 1) before it, so that the fuzzer works on records rather than on the
 * header's CRC; bit 1 set also gives every record-shaped run of bytes a correct CRC, so that
 * row decoding sees arbitrary bytes too. Properties checked on any file:
 *   - opening either works or fails with a message that names the file;
 *   - replay never reads outside what it decodes, and every row it hands over has terminated
 *     strings (ASan and UBSan watch the rest);
 *   - after a replay, an append lands where the intact records end: a second replay finds the
 *     same records again and then the appended one. (What follows it is the old file's bytes; a
 *     hand-made file can have a valid record there, which the running meter never writes:
 *     it resets the logs to a new generation after every replay.) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "metering/usage_log.h"
#include "util/pack.h"

#define HEADER 4096
#define HEAD 32
#define RECORD_MAGIC UINT32_C(0x31524754)

static uint32_t crc(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
    return (uint32_t)crc32(crc32(0L, a, (uInt)alen), b, (uInt)blen);
}

/* Gives each record head that fits in the file (magic, a length that fits) a correct CRC. */
static void fix_crcs(unsigned char *f, size_t size)
{
    for (size_t off = HEADER; off + HEAD <= size;) {
        uint32_t len = tg_le_get32(f + off + 4);
        if (tg_le_get32(f + off) != RECORD_MAGIC || len > size - off - HEAD)
            return;
        tg_le_put32(f + off + 28, crc(f + off, 28, f + off + HEAD, len));
        off += HEAD + len;
    }
}

typedef struct {
    size_t records, rows;
    size_t probe;       /* index of the record to note */
    uint64_t probe_id;  /* its batch id */
    size_t probe_n;     /* its rows */
    size_t rows_before; /* rows in the records before it */
} seen_t;

static int on_record(void *arg, uint64_t batch_id, const tg_usage_t *rows, size_t n)
{
    seen_t *s = arg;
    for (size_t i = 0; i < n; i++)
        if (!tg_usage_terminated(&rows[i]))
            abort();
    if (s->records == s->probe) {
        s->probe_id = batch_id;
        s->probe_n = n;
        s->rows_before = s->rows;
    }
    s->records++;
    s->rows += n;
    return 0;
}

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (path[0] == '\0') {
        snprintf(path, sizeof(path), "/tmp/tg_fuzz_ulog_%d", (int)getpid());
        setenv("TOLLGATE_USAGE_LOG_BUFFERED", "1", 1); /* tmpfs may have no direct I/O */
    }
    if (size == 0)
        return 0;
    int mode = data[0];
    size_t body = size - 1, fsize = (mode & 1 ? HEADER : 0) + body;
    unsigned char *file = calloc(1, fsize + 1);
    if (file == NULL)
        abort();
    if (mode & 1) {
        memcpy(file, "TGUSGLOG", 8);
        tg_le_put64(file + 8, 1);
        tg_le_put32(file + 16, crc(file, 16, NULL, 0));
    }
    memcpy(file + (mode & 1 ? HEADER : 0), data + 1, body);
    if ((mode & 3) == 3)
        fix_crcs(file, fsize);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(file, 1, fsize, f) != fsize || fclose(f) != 0)
        abort();
    free(file);
    tg_usage_log_t *log = NULL;
    tg_err_t err = {0};
    if (tg_usage_log_open(path, &log, &err) != 0) {
        if (strstr(err.msg, path) == NULL) /* the error names the file */
            abort();
        unlink(path);
        return 0;
    }
    seen_t first = {.probe = SIZE_MAX};
    if (tg_usage_log_replay(log, on_record, &first, &err) != 0) {
        if (strstr(err.msg, path) == NULL)
            abort();
        tg_usage_log_close(log);
        unlink(path);
        return 0;
    }
    tg_usage_t row = {0};
    row.event_id = 7;
    snprintf(row.customer_id, sizeof(row.customer_id), "cus_fuzz");
    snprintf(row.metric, sizeof(row.metric), "api_calls");
    row.units = 1;
    uint64_t id = UINT64_C(0xF0220000000000) + first.records;
    if (tg_usage_log_append(log, id, &row, 1, &err) != 0)
        abort();
    tg_usage_log_close(log);
    if (tg_usage_log_open(path, &log, &err) != 0)
        abort();
    seen_t second = {.probe = first.records};
    if (tg_usage_log_replay(log, on_record, &second, &err) != 0 || second.records < first.records + 1 ||
        second.probe_id != id || second.probe_n != 1 || second.rows_before != first.rows)
        abort();
    tg_usage_log_close(log);
    unlink(path);
    return 0;
}
