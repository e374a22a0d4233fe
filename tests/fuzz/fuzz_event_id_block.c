/* fuzz_event_id_block.c - the packed usage event ids of a stored batch (store/event_id_block.h)
 * against arbitrary bytes (libFuzzer).
 *
 * The blocks are read back when a node's dedup index is refilled and when tollgate migrate
 * copies them to PostgreSQL, after whatever a damaged disk or a hand edit left in the file.
 * Input: byte 0 is the block's n; bytes 1-2 and 3-4 (little-endian, signed) its ts_min and
 * ts_max; the rest is data. With bit 7 of byte 0 set, n, ts_min and ts_max are instead taken
 * from the data as far as it reads as entries, so that the fuzzer also explores blocks that
 * pass. Properties on any input:
 *   - a refused block is TG_ESTORE whose message names the block's row id, and no entry of it
 *     was handed over;
 *   - a block that passes hands over exactly n entries, each id with bit 63 clear, each time in
 *     ts_min..ts_max, each customer id terminated and shorter than TG_ID_MAX; packed again with
 *     tg_event_id_block_put, they give back the very bytes read (nothing skipped or invented);
 *   - nothing reads outside the data (ASan, UBSan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/event_id_block.h"
#include "util/pack.h"

#define DATA_MAX 4096

typedef struct {
    const tg_event_id_block_t *b;
    unsigned char repacked[DATA_MAX + TG_EVENT_ID_ENTRY_MAX];
    size_t len;
    int64_t n;
} seen_t;

static int on_entry(void *arg, uint64_t event_id, int64_t ts_s, const char *customer_id)
{
    seen_t *s = arg;
    size_t clen = strnlen(customer_id, TG_ID_MAX);
    if (event_id > (uint64_t)INT64_MAX || ts_s < s->b->ts_min || ts_s > s->b->ts_max || clen >= TG_ID_MAX ||
        s->len > DATA_MAX)
        abort();
    s->len = (size_t)(tg_event_id_block_put(s->repacked + s->len, event_id, ts_s, customer_id) - s->repacked);
    s->n++;
    return 0;
}

/* n and the time bounds of the entries data reads as, from its start. */
static void derive(tg_event_id_block_t *b)
{
    const unsigned char *p = b->data, *end = b->data + b->len;
    b->n = 0;
    b->ts_min = INT64_MAX;
    b->ts_max = INT64_MIN;
    for (;;) {
        uint64_t id, ts;
        char customer[TG_ID_MAX];
        if (tg_unpack_u64(&p, end, &id) != 0 || tg_unpack_u64(&p, end, &ts) != 0 ||
            tg_unpack_str(&p, end, customer, sizeof(customer)) != 0)
            break;
        b->n++;
        b->ts_min = (int64_t)ts < b->ts_min ? (int64_t)ts : b->ts_min;
        b->ts_max = (int64_t)ts > b->ts_max ? (int64_t)ts : b->ts_max;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    if (size < 5 || size - 5 > DATA_MAX)
        return 0;
    tg_event_id_block_t b = {
        7, (int16_t)(in[1] | in[2] << 8), (int16_t)(in[3] | in[4] << 8), in[0] & 0x7f, in + 5, size - 5};
    if (in[0] & 0x80)
        derive(&b);
    seen_t s = {&b, {0}, 0, 0};
    tg_err_t err = {0};
    int rc = tg_event_id_block_each(&b, on_entry, &s, &err);
    if (rc != 0) {
        if (rc != TG_ESTORE || strstr(err.msg, "usage_event_id_blocks row 7 is malformed") == NULL || s.n != 0)
            abort();
        return 0;
    }
    if (s.n != b.n || s.len != b.len || memcmp(s.repacked, b.data, b.len) != 0)
        abort();
    return 0;
}
