/* event_id_block.c - packing and unpacking a batch's usage event ids; see event_id_block.h. */
#include "store/event_id_block.h"

#include <string.h>

#include "util/pack.h"

unsigned char *tg_event_id_block_put(unsigned char *p, uint64_t event_id, int64_t ts_s, const char *customer_id)
{
    tg_le_put64(p, event_id & (uint64_t)INT64_MAX);
    tg_le_put64(p + 8, (uint64_t)ts_s);
    return tg_pack_str(p + 16, customer_id, TG_ID_MAX);
}

/* Reads the entry at *p (before end) and advances *p; NULL, or what is wrong with it. */
static const char *next_entry(const unsigned char **p, const unsigned char *end, const tg_event_id_block_t *b,
                              uint64_t *event_id, int64_t *ts_s, char customer_id[TG_ID_MAX])
{
    uint64_t ts;
    if (tg_unpack_u64(p, end, event_id) != 0 || tg_unpack_u64(p, end, &ts) != 0)
        return "an entry is cut short";
    size_t len = *p < end ? **p : 0;
    if (tg_unpack_str(p, end, customer_id, TG_ID_MAX) != 0)
        return "an entry is cut short or its customer id is too long";
    if (strlen(customer_id) != len)
        return "a customer id holds a NUL byte";
    if (*event_id > (uint64_t)INT64_MAX)
        return "an event id has bit 63 set";
    *ts_s = (int64_t)ts;
    if (*ts_s < b->ts_min || *ts_s > b->ts_max)
        return "an event time is outside the block's ts_min..ts_max";
    return NULL;
}

/* NULL when the whole of b reads as its n entries, else what is wrong. */
static const char *check_block(const tg_event_id_block_t *b)
{
    if (b->n < 1 || (b->data == NULL && b->len > 0))
        return "it holds no entries";
    if ((uint64_t)b->n > b->len / TG_EVENT_ID_ENTRY_MIN)
        return "its data is shorter than its n entries";
    const unsigned char *p = b->data, *end = b->data + b->len;
    for (int64_t i = 0; i < b->n; i++) {
        uint64_t event_id;
        int64_t ts_s;
        char customer_id[TG_ID_MAX];
        const char *why = next_entry(&p, end, b, &event_id, &ts_s, customer_id);
        if (why != NULL)
            return why;
    }
    return p == end ? NULL : "bytes follow its n entries";
}

int tg_event_id_block_each(const tg_event_id_block_t *b, tg_event_id_entry_cb cb, void *arg, tg_err_t *err)
{
    const char *why = check_block(b);
    if (why != NULL)
        return tg_errf(err, TG_ESTORE,
                       "usage_event_id_blocks row %lld is malformed (n %lld, %zu bytes): %s; the ids of that batch "
                       "cannot be read",
                       (long long)b->id, (long long)b->n, b->len, why);
    const unsigned char *p = b->data, *end = b->data + b->len;
    for (int64_t i = 0; i < b->n; i++) {
        uint64_t event_id;
        int64_t ts_s;
        char customer_id[TG_ID_MAX];
        next_entry(&p, end, b, &event_id, &ts_s, customer_id); /* checked above */
        int rc = cb(arg, event_id, ts_s, customer_id);
        if (rc != 0)
            return rc;
    }
    return 0;
}
