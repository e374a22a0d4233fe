/* test_events.c - the usage events' dedup index (src/metering/event_index.c) and RFC 3339 parser
 * (tg_events_parse_time in src/metering/events.c): a claimed key is a duplicate until withdrawn
 * or past the window; claims survive closing and reopening the file (the kill -9 case: the
 * mapping is the file); pending claims are listed for settling; the table grows by rebuilding
 * without losing a key; a damaged header is refused. What a power cut takes from the index is
 * claimed again at open: the event rows still in the metering logs, and for an index file that
 * was lost the ids the store kept, as prefix slots (63 bits) that hold every key with those bits,
 * also across a rebuild. Timestamps: accepted forms, every refused
 * form the service promises to refuse, and a cross-check against timegm. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "metering/event_index.h"
#include "metering/events.h"
#include "metering/usage_log.h"
#include "config/config.h"
#include "../support/tmpstore.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/tg-test-events-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/events.idx", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    rmdir(dir);
    return 0;
}

static void key_of(uint64_t i, uint8_t key[TG_EVENT_KEY_BYTES])
{
    /* spread like the keyed hashes events.c makes (splitmix64) */
    uint64_t z = i + UINT64_C(0x9e3779b97f4a7c15), w;
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    w = z ^ (z >> 31);
    memcpy(key, &w, 8);
    memcpy(key + 8, &i, 8);
}

static void test_claim_duplicate_withdraw(void **state)
{
    (void)state;
    tg_event_index_t *ix;
    tg_err_t err = {0};
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    uint8_t a[16], b[16];
    key_of(1, a);
    key_of(2, b);
    assert_int_equal(tg_event_index_claim(ix, a, 20000, NULL, &err), 1);
    assert_int_equal(tg_event_index_claim(ix, a, 20000, NULL, &err), 0); /* pending: a duplicate already */
    tg_event_index_commit(ix, a);
    assert_int_equal(tg_event_index_claim(ix, a, 20001, NULL, &err), 0);
    assert_int_equal(tg_event_index_claim(ix, b, 20000, NULL, &err), 1);
    tg_event_index_withdraw(ix, b); /* not logged: a retry counts */
    assert_int_equal(tg_event_index_claim(ix, b, 20000, NULL, &err), 1);
    /* within the window on its last day, then past it: counted again */
    assert_int_equal(tg_event_index_claim(ix, a, 20035, NULL, &err), 0);
    assert_int_equal(tg_event_index_claim(ix, a, 20036, NULL, &err), 1);
    tg_event_index_close(ix);
}

static void test_survives_reopen_and_lists_pending(void **state)
{
    (void)state;
    tg_event_index_t *ix;
    tg_err_t err = {0};
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    uint8_t k[16];
    for (uint64_t i = 0; i < 100; i++) {
        key_of(i, k);
        assert_int_equal(tg_event_index_claim(ix, k, 20000, NULL, &err), 1);
        if (i % 10 != 0)
            tg_event_index_commit(ix, k);
    }
    tg_event_index_close(ix); /* as a killed process leaves it: no flush of its own */
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    uint8_t(*pending)[TG_EVENT_KEY_BYTES];
    size_t n;
    assert_int_equal(tg_event_index_pending(ix, &pending, &n, &err), 0);
    assert_int_equal(n, 10);
    for (size_t i = 0; i < n; i++) {
        uint64_t id;
        memcpy(&id, pending[i] + 8, 8);
        assert_int_equal(id % 10, 0);
    }
    free(pending);
    for (uint64_t i = 0; i < 100; i++) {
        key_of(i, k);
        assert_int_equal(tg_event_index_claim(ix, k, 20000, NULL, &err), 0);
    }
    tg_event_index_close(ix);
}

static void test_grows_without_losing_a_key(void **state)
{
    (void)state;
    tg_event_index_t *ix;
    tg_err_t err = {0};
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    uint8_t k[16];
    const uint64_t n = 200000; /* past 70 % of 65,536 slots: two rebuilds */
    for (uint64_t i = 0; i < n; i++) {
        key_of(i, k);
        assert_int_equal(tg_event_index_claim(ix, k, 20000, NULL, &err), 1);
        tg_event_index_commit(ix, k);
    }
    uint64_t live, slots;
    tg_event_index_counts(ix, &live, &slots);
    assert_int_equal(live, n);
    assert_true(slots >= n * 10 / 7);
    tg_event_index_close(ix);
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    for (uint64_t i = 0; i < n; i++) {
        key_of(i, k);
        assert_int_equal(tg_event_index_claim(ix, k, 20000, NULL, &err), 0);
    }
    key_of(n, k);
    assert_int_equal(tg_event_index_claim(ix, k, 20000, NULL, &err), 1);
    tg_event_index_close(ix);
}

/* A commit at the slot its claim reported marks that key committed, also when a rebuild moved
 * the key since (the slot is then stale and the commit probes): nothing is left pending, and a
 * slot now holding another key is not touched. */
static void test_commit_at_the_claims_slot(void **state)
{
    (void)state;
    tg_event_index_t *ix;
    tg_err_t err = {0};
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    enum { N = 60000 }; /* past 70 % of 65,536 slots: the claims after the first rebuild */
    static tg_event_slot_t where[N];
    uint8_t k[16];
    for (uint64_t i = 0; i < N; i++) {
        key_of(i, k);
        assert_int_equal(tg_event_index_claim(ix, k, 20000, &where[i], &err), 1);
    }
    uint64_t live, slots;
    tg_event_index_counts(ix, &live, &slots);
    assert_true(slots > 65536);                                  /* rebuilt while claiming */
    assert_true(where[0].generation != where[N - 1].generation); /* the first claims' slots are stale */
    /* a slot that holds another key: the commit finds its own key by probing */
    tg_event_slot_t wrong = where[N - 1];
    key_of(0, k);
    tg_event_index_commit_at(ix, &wrong, k);
    uint8_t(*pending)[TG_EVENT_KEY_BYTES];
    size_t npending;
    assert_int_equal(tg_event_index_pending(ix, &pending, &npending, &err), 0);
    assert_int_equal(npending, N - 1); /* key 0 committed, key N-1 (at that slot) still pending */
    free(pending);
    for (uint64_t i = 1; i < N; i++) {
        key_of(i, k);
        tg_event_index_prefetch_at(ix, &where[i]);
        tg_event_index_commit_at(ix, &where[i], k);
    }
    assert_int_equal(tg_event_index_pending(ix, &pending, &npending, &err), 0);
    assert_int_equal(npending, 0);
    free(pending);
    tg_event_index_close(ix);
}

/* expected_keys sizes the table at open so that a run of that many keys never rebuilds (a
 * rebuild holds the claim lock while it writes the whole new file); an existing smaller index is
 * rebuilt to that size at open, keeping every key. */
static void test_sized_at_open_for_expected_keys(void **state)
{
    (void)state;
    tg_event_index_t *ix;
    tg_err_t err = {0};
    const uint64_t first = 1000, n = 300000;
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    uint8_t k[16];
    for (uint64_t i = 0; i < first; i++) {
        key_of(i, k);
        assert_int_equal(tg_event_index_claim(ix, k, 20000, NULL, &err), 1);
        if (i % 2 == 0)
            tg_event_index_commit(ix, k); /* the odd ones stay pending, as a crash leaves them */
    }
    uint64_t live, slots;
    tg_event_index_counts(ix, &live, &slots);
    assert_int_equal(slots, 65536);
    tg_event_index_close(ix);

    assert_int_equal(tg_event_index_open(path, 35, n, &ix, &err), 0);
    tg_event_index_counts(ix, &live, &slots);
    assert_int_equal(live, first);
    assert_true(n * 10 <= slots * 7);
    const uint64_t sized = slots;
    uint8_t(*pending)[TG_EVENT_KEY_BYTES];
    size_t npending;
    assert_int_equal(tg_event_index_pending(ix, &pending, &npending, &err), 0);
    assert_int_equal(npending, first / 2);
    free(pending);
    for (uint64_t i = 0; i < n; i++) {
        key_of(i, k);
        assert_int_equal(tg_event_index_claim(ix, k, 20000, NULL, &err), i < first ? 0 : 1);
    }
    tg_event_index_counts(ix, &live, &slots);
    assert_int_equal(live, n);
    assert_int_equal(slots, sized); /* n keys in, no rebuild */
    tg_event_index_close(ix);

    /* a larger file than asked for is kept as it is, keys and all */
    assert_int_equal(tg_event_index_open(path, 35, 10, &ix, &err), 0);
    tg_event_index_counts(ix, &live, &slots);
    assert_int_equal(slots, sized);
    key_of(n - 1, k);
    assert_int_equal(tg_event_index_claim(ix, k, 20000, NULL, &err), 0);
    tg_event_index_close(ix);

    /* beyond the largest table: refused at open, naming the count */
    assert_int_equal(tg_event_index_open(path, 35, UINT64_C(4000000000), &ix, &err), TG_ENOMEM);
    assert_non_null(strstr(err.msg, "4000000000"));
}

static void test_refuses_foreign_file_and_second_opener(void **state)
{
    (void)state;
    tg_event_index_t *ix, *ix2;
    tg_err_t err = {0};
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix2, &err), TG_ESTATE);
    tg_event_index_close(ix);
    FILE *f = fopen(path, "r+");
    assert_non_null(f);
    fputs("NOTANIDX", f);
    fclose(f);
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), TG_ESTORE);
    assert_non_null(strstr(err.msg, "not a tollgate event index"));
}

static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s};
    return (int64_t)timegm(&tm);
}

static void test_rfc3339(void **state)
{
    (void)state;
    int64_t ns;
    assert_int_equal(tg_events_parse_time("2026-12-04T14:20:45Z", 20, &ns), 0);
    assert_int_equal(ns, utc(2026, 12, 4, 14, 20, 45) * INT64_C(1000000000));
    assert_int_equal(tg_events_parse_time("2026-12-04t14:20:45.5z", 22, &ns), 0);
    assert_int_equal(ns, utc(2026, 12, 4, 14, 20, 45) * INT64_C(1000000000) + 500000000);
    assert_int_equal(tg_events_parse_time("2026-12-04T16:20:45.123456789+02:00", 35, &ns), 0);
    assert_int_equal(ns, utc(2026, 12, 4, 14, 20, 45) * INT64_C(1000000000) + 123456789);
    assert_int_equal(tg_events_parse_time("2024-02-29T00:00:00-00:30", 25, &ns), 0);
    assert_int_equal(ns, utc(2024, 2, 29, 0, 30, 0) * INT64_C(1000000000));
    static const char *const bad[] = {
        "2026-02-29T00:00:00Z",            /* not a leap year */
        "2026-04-31T00:00:00Z",            /* April has 30 days */
        "2026-12-04 14:20:45Z",            /* a space is not RFC 3339's 'T' */
        "2026-12-04T14:20:45",             /* no offset */
        "2026-12-04T24:00:00Z",            /* hour 24 */
        "2026-12-04T14:20:60Z",            /* leap seconds are not taken */
        "2026-12-04T14:20:45.Z",           /* empty fraction */
        "2026-12-04T14:20:45.1234567891Z", /* past nanoseconds */
        "2026-12-04T14:20:45+0200",        /* offset without ':' */
        "1969-12-31T23:59:59Z",            /* before the epoch */
        "2026-12-04T14:20:45Zjunk",
        "+2026-12-04T14:20:45Z",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(tg_events_parse_time(bad[i], strlen(bad[i]), &ns), -1);
    /* every day of 1970-2100 at noon, against timegm */
    char buf[32];
    for (int64_t t = utc(1970, 1, 1, 12, 0, 0); t < utc(2100, 1, 1, 0, 0, 0); t += 86400) {
        time_t tt = (time_t)t;
        struct tm tm;
        gmtime_r(&tt, &tm);
        size_t len = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
        assert_int_equal(tg_events_parse_time(buf, len, &ns), 0);
        assert_int_equal(ns, t * INT64_C(1000000000));
    }
}

/* A crash between a claim and its commit leaves it pending; tg_events_open settles it against the
 * metering log: a claim whose row is in the log is committed (a retry is a duplicate), any other
 * withdrawn (a retry counts). */
static void test_pending_settled_against_the_log(void **state)
{
    (void)state;
    tg_event_index_t *ix;
    tg_err_t err = {0};
    uint8_t logged[16], lost[16], done[16];
    key_of(7, logged);
    key_of(8, lost);
    key_of(9, done);
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    uint32_t today = (uint32_t)(time(NULL) / 86400);
    assert_int_equal(tg_event_index_claim(ix, logged, today, NULL, &err), 1);
    assert_int_equal(tg_event_index_claim(ix, lost, today, NULL, &err), 1);
    assert_int_equal(tg_event_index_claim(ix, done, today, NULL, &err), 1);
    tg_event_index_commit(ix, done);
    tg_event_index_close(ix); /* the process died here */

    char log_path[160];
    snprintf(log_path, sizeof(log_path), "%s/usage-1.log", dir);
    tg_usage_log_t *log;
    assert_int_equal(tg_usage_log_open(log_path, &log, &err), 0);
    tg_usage_t row = {0};
    uint64_t id;
    memcpy(&id, logged, 8);
    row.event_id = id | (UINT64_C(1) << 63); /* events.c's row id: the key's first 64 bits */
    snprintf(row.customer_id, sizeof(row.customer_id), "cus_x");
    snprintf(row.metric, sizeof(row.metric), "tokens");
    snprintf(row.endpoint, sizeof(row.endpoint), "%s", TG_EVENT_ENDPOINT);
    row.units = 5;
    assert_int_equal(tg_usage_log_append(log, 1, &row, 1, &err), 0);
    tg_usage_log_close(log);

    static const char yaml[] = "upstream: {url: \"http://127.0.0.1:9000\"}\n"
                               "admin: {token: \"0123456789abcdef0123\"}\n"
                               "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"
                               "events: {}\nplans: {p: {}}\n";
    tg_config_t *cfg;
    char errbuf[1024];
    assert_int_equal(tg_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, errbuf, sizeof(errbuf)), 0);
    tg_events_opts_t o = {.cfg = cfg,
                          .index_path = path,
                          .secret = (const uint8_t *)"0123456789abcdef0123456789abcdef",
                          .secret_len = 32,
                          .log_paths = {log_path, NULL}};
    tg_events_t *ev;
    assert_int_equal(tg_events_open(&o, &ev, &err), 0);
    tg_events_close(ev);
    tg_config_free(cfg);

    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    uint8_t(*pending)[TG_EVENT_KEY_BYTES];
    size_t n;
    assert_int_equal(tg_event_index_pending(ix, &pending, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(tg_event_index_claim(ix, logged, today, NULL, &err), 0); /* in the log: counted */
    assert_int_equal(tg_event_index_claim(ix, done, today, NULL, &err), 0);
    assert_int_equal(tg_event_index_claim(ix, lost, today, NULL, &err), 1); /* never logged: counts on retry */
    tg_event_index_close(ix);
    unlink(log_path);
}

/* The 63 bits a metering row or the store keeps of key k (events.c: row_event_id without bit 63) */
static uint64_t id_of(const uint8_t key[TG_EVENT_KEY_BYTES])
{
    uint64_t id;
    memcpy(&id, key, 8); /* little-endian, as the index reads it */
    return id & ~(UINT64_C(1) << 63);
}

/* A slot claimed by an id holds every key with those 63 bits (the full key, and one differing
 * only in bit 63 or in its last 8 bytes), not a key that differs in any of them; it expires as
 * a key's slot does, and claiming an id twice adds nothing. */
static void test_prefix_slot_holds_every_key_with_its_63_bits(void **state)
{
    (void)state;
    tg_event_index_t *ix;
    tg_err_t err = {0};
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    assert_int_equal(tg_event_index_created(ix), 1);
    uint8_t a[16], same_bits[16], other[16];
    key_of(1, a);
    memcpy(same_bits, a, 16);
    same_bits[7] ^= 0x80; /* bit 63: not one the row keeps */
    same_bits[12] ^= 0x5a;
    memcpy(other, a, 16);
    other[6] ^= 0x01; /* one of the 63 bits */
    assert_int_equal(tg_event_index_claim_id(ix, id_of(a), 20000, &err), 1);
    assert_int_equal(tg_event_index_claim_id(ix, id_of(a) | (UINT64_C(1) << 63), 20000, &err), 0);
    assert_int_equal(tg_event_index_claim(ix, a, 20000, NULL, &err), 0);
    assert_int_equal(tg_event_index_claim(ix, same_bits, 20000, NULL, &err), 0);
    assert_int_equal(tg_event_index_claim(ix, other, 20000, NULL, &err), 1);
    /* a key claimed whole already: its id adds nothing */
    assert_int_equal(tg_event_index_claim_id(ix, id_of(other), 20000, &err), 0);
    /* nothing pending: a prefix slot is committed */
    uint8_t(*pending)[TG_EVENT_KEY_BYTES];
    size_t n;
    tg_event_index_commit(ix, other);
    assert_int_equal(tg_event_index_pending(ix, &pending, &n, &err), 0);
    assert_int_equal(n, 0);
    /* the window: held on its last day, free after it */
    assert_int_equal(tg_event_index_claim(ix, a, 20035, NULL, &err), 0);
    assert_int_equal(tg_event_index_claim(ix, a, 20036, NULL, &err), 1);
    tg_event_index_close(ix);
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    assert_int_equal(tg_event_index_created(ix), 0);
    tg_event_index_close(ix);
}

/* Prefix slots survive the table's rebuilds (200,000 ids: two of them) and a reopen: every key
 * is still a duplicate, and a key of none of them is not. */
static void test_prefix_slots_survive_rebuilds(void **state)
{
    (void)state;
    tg_event_index_t *ix;
    tg_err_t err = {0};
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    uint8_t k[16];
    const uint64_t n = 200000;
    uint64_t slots_before, slots, live;
    tg_event_index_counts(ix, &live, &slots_before);
    for (uint64_t i = 0; i < n; i++) {
        key_of(i, k);
        assert_int_equal(tg_event_index_claim_id(ix, id_of(k), 20000, &err), 1);
    }
    tg_event_index_counts(ix, &live, &slots);
    assert_int_equal(live, n);
    assert_true(slots > slots_before);
    for (int reopen = 0; reopen < 2; reopen++) {
        for (uint64_t i = 0; i < n; i++) {
            key_of(i, k);
            assert_int_equal(tg_event_index_claim(ix, k, 20000, NULL, &err), 0);
        }
        tg_event_index_close(ix);
        assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    }
    key_of(n, k);
    assert_int_equal(tg_event_index_claim(ix, k, 20000, NULL, &err), 1);
    tg_event_index_close(ix);
}

static const char events_yaml[] = "upstream: {url: \"http://127.0.0.1:9000\"}\n"
                                  "admin: {token: \"0123456789abcdef0123\"}\n"
                                  "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"
                                  "events: {}\nplans: {p: {}}\n";

/* tg_events_open on `path` with the metering log log_path (NULL: none) and store st (NULL: none). */
static void open_events(const char *log_path, tg_store_t *st)
{
    tg_config_t *cfg;
    char errbuf[1024];
    tg_err_t err = {0};
    assert_int_equal(tg_config_load_string("t.yaml", events_yaml, strlen(events_yaml), &cfg, errbuf, sizeof(errbuf)),
                     0);
    tg_events_opts_t o = {.cfg = cfg,
                          .index_path = path,
                          .secret = (const uint8_t *)"0123456789abcdef0123456789abcdef",
                          .secret_len = 32,
                          .log_paths = {log_path, NULL},
                          .store = st,
                          .now_s = time(NULL)};
    tg_events_t *ev;
    assert_int_equal(tg_events_open(&o, &ev, &err), 0);
    tg_events_close(ev);
    tg_config_free(cfg);
}

/* The row a gateway logs for the event of key k, dated now. */
static tg_usage_t logged_row(const uint8_t k[TG_EVENT_KEY_BYTES])
{
    tg_usage_t row = {0};
    row.event_id = id_of(k) | (UINT64_C(1) << 63);
    snprintf(row.customer_id, sizeof(row.customer_id), "cus_x");
    snprintf(row.plan_id, sizeof(row.plan_id), "p");
    snprintf(row.metric, sizeof(row.metric), "tokens");
    snprintf(row.endpoint, sizeof(row.endpoint), "%s", TG_EVENT_ENDPOINT);
    row.units = 5;
    row.status = 200;
    row.ts_ns = (int64_t)time(NULL) * 1000000000;
    row.period_start = 1000;
    return row;
}

/* A power cut can leave an index file older than the metering log (the log was synced before
 * the answer, the index's pages were not): here the index never got the claim at all, as if its
 * page was lost. tg_events_open claims the logged row again, so a retry of the event is a
 * duplicate; before, it was claimed anew and counted again at the node. */
static void test_logged_rows_claimed_again_at_open(void **state)
{
    (void)state;
    tg_err_t err = {0};
    uint8_t logged[16], fresh[16];
    key_of(21, logged);
    key_of(22, fresh);
    char log_path[160];
    snprintf(log_path, sizeof(log_path), "%s/usage-1.log", dir);
    tg_usage_log_t *log;
    assert_int_equal(tg_usage_log_open(log_path, &log, &err), 0);
    tg_usage_t row = logged_row(logged);
    assert_int_equal(tg_usage_log_append(log, 1, &row, 1, &err), 0);
    tg_usage_log_close(log);
    tg_event_index_t *ix;
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0); /* the older copy: empty */
    tg_event_index_close(ix);

    open_events(log_path, NULL);

    uint32_t today = (uint32_t)(time(NULL) / 86400);
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    assert_int_equal(tg_event_index_claim(ix, logged, today, NULL, &err), 0);
    assert_int_equal(tg_event_index_claim(ix, fresh, today, NULL, &err), 1);
    tg_event_index_close(ix);
    unlink(log_path);
}

/* An index file that is gone (deleted, a new disk) is made anew at open and filled from the ids
 * the store kept for the window: a retry of a stored event is a duplicate. An existing index is
 * not refilled (the store is not read). */
static void test_new_index_rebuilt_from_the_store(void **state)
{
    (void)state;
    tg_tmpstore_t ts;
    assert_int_equal(tg_tmpstore_open(&ts, "evidx"), 0);
    tg_err_t err = {0};
    uint8_t stored[16], old[16], fresh[16];
    key_of(31, stored);
    key_of(32, old);
    key_of(33, fresh);
    tg_usage_t rows[2] = {logged_row(stored), logged_row(old)};
    rows[1].ts_ns -= INT64_C(40) * 86400 * 1000000000; /* before the window: refused at ingest anyway */
    tg_usage_batch_t b = {7, rows, 2, NULL};
    tg_usage_stored_t out;
    assert_int_equal(tg_store_usage_record_many(ts.st, &b, 1, &out, &err), 0);

    open_events(NULL, ts.st);

    uint32_t today = (uint32_t)(time(NULL) / 86400);
    tg_event_index_t *ix;
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    assert_int_equal(tg_event_index_claim(ix, stored, today, NULL, &err), 0);
    assert_int_equal(tg_event_index_claim(ix, old, today, NULL, &err), 1);
    assert_int_equal(tg_event_index_claim(ix, fresh, today, NULL, &err), 1);
    tg_event_index_withdraw(ix, fresh);
    tg_event_index_close(ix);
    /* a second event stored later is not read into an index that exists */
    tg_usage_t later = logged_row(fresh);
    b = (tg_usage_batch_t){8, &later, 1, NULL};
    assert_int_equal(tg_store_usage_record_many(ts.st, &b, 1, &out, &err), 0);
    open_events(NULL, ts.st);
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    assert_int_equal(tg_event_index_claim(ix, fresh, today, NULL, &err), 1);
    tg_event_index_close(ix);
    tg_tmpstore_close(&ts);
}

/* ---- the checkpoint (SQLite: the index against the store's event id blocks) ---- */

/* The events service of events_yaml on `path`, checkpointed against ts's store every
 * checkpoint_ms (0: the default, 60 s: not during a test). */
static tg_events_t *open_checkpointed_every(tg_tmpstore_t *ts, int checkpoint_ms, tg_config_t **cfg)
{
    char errbuf[1024];
    tg_err_t err = {0};
    assert_int_equal(tg_config_load_string("t.yaml", events_yaml, strlen(events_yaml), cfg, errbuf, sizeof(errbuf)), 0);
    tg_events_opts_t o = {.cfg = *cfg,
                          .index_path = path,
                          .secret = (const uint8_t *)"0123456789abcdef0123456789abcdef",
                          .secret_len = 32,
                          .store = ts->st,
                          .now_s = time(NULL),
                          .store_url = ts->url,
                          .checkpoint_ms = checkpoint_ms};
    tg_events_t *ev;
    assert_int_equal(tg_events_open(&o, &ev, &err), 0);
    return ev;
}

static tg_events_t *open_checkpointed(tg_tmpstore_t *ts, tg_config_t **cfg)
{
    return open_checkpointed_every(ts, 0, cfg);
}

static void close_checkpointed(tg_events_t *ev, tg_config_t *cfg)
{
    tg_events_close(ev);
    tg_config_free(cfg);
}

/* The index file's header: its version and its checkpoint (event_index.c's layout). */
static uint32_t header_version(void)
{
    unsigned char b[4];
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 8, SEEK_SET), 0);
    assert_int_equal(fread(b, 1, 4, f), 4);
    fclose(f);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t header_checkpoint(void)
{
    unsigned char b[8];
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 24, SEEK_SET), 0);
    assert_int_equal(fread(b, 1, 8, f), 8);
    fclose(f);
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

/* Stores the event of key k as one batch (one block of the store's). */
static void store_event(tg_tmpstore_t *ts, const uint8_t k[16], uint64_t batch)
{
    tg_err_t err = {0};
    tg_usage_t row = logged_row(k);
    tg_usage_batch_t b = {batch, &row, 1, NULL};
    assert_int_equal(tg_store_usage_record_many(ts->st, &b, 1, NULL, &err), 0);
}

/* 1 if each of the n keys is held (a claim of it is a duplicate), checked on the closed index. */
static void assert_held(const uint8_t (*keys)[16], size_t n, int held)
{
    tg_err_t err = {0};
    tg_event_index_t *ix;
    uint32_t today = (uint32_t)(time(NULL) / 86400);
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    for (size_t i = 0; i < n; i++) {
        int claimed = tg_event_index_claim(ix, keys[i], today, NULL, &err);
        assert_int_equal(claimed, held ? 0 : 1);
        if (claimed == 1)
            tg_event_index_withdraw(ix, keys[i]);
    }
    tg_event_index_close(ix);
}

static void copy_file(const char *from, const char *to)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "cp %s %s", from, to);
    assert_int_equal(system(cmd), 0);
}

/* A checkpoint writes into the header the store's last block, read before the index is synced;
 * after a power cut that left an older index file (its checkpoint older too), the ids of the
 * blocks after that checkpoint are claimed again at open - the events whose rows left the
 * metering logs since - so their retries are duplicates. Only the blocks after it: an index
 * whose header says block 2 does not get block 2's id back. */
static void test_checkpoint_refills_the_blocks_after_it(void **state)
{
    (void)state;
    if (tg_tmpstore_backend_is_pg())
        skip(); /* PostgreSQL keeps no blocks: its index is synced at each log reset */
    tg_tmpstore_t ts;
    assert_int_equal(tg_tmpstore_open(&ts, "evckpt"), 0);
    tg_err_t err = {0};
    uint8_t k[4][16];
    for (int i = 0; i < 4; i++)
        key_of(40 + (uint64_t)i, k[i]);
    store_event(&ts, k[0], 1); /* block 1 */
    tg_config_t *cfg;
    tg_events_t *ev = open_checkpointed(&ts, &cfg); /* a new file: refilled from the store */
    assert_int_equal(header_version(), 2);
    assert_int_equal(header_checkpoint(), 1);
    char old[160];
    snprintf(old, sizeof(old), "%s.old", path);
    copy_file(path, old); /* what a power cut could leave: checkpoint 1, no claim after it */
    store_event(&ts, k[1], 2);
    store_event(&ts, k[2], 3);
    assert_int_equal(tg_events_checkpoint(ev, &err), 0);
    assert_int_equal(header_checkpoint(), 3);
    close_checkpointed(ev, cfg);

    assert_int_equal(rename(old, path), 0);
    assert_int_equal(header_checkpoint(), 1);
    ev = open_checkpointed(&ts, &cfg);
    close_checkpointed(ev, cfg);
    assert_held((const uint8_t(*)[16])k, 3, 1);
    assert_held((const uint8_t(*)[16]) & k[3], 1, 0);
    assert_int_equal(header_checkpoint(), 3);

    /* an empty index whose checkpoint is block 2: only block 3 is read */
    unlink(path);
    tg_event_index_t *ix;
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    int fd = tg_event_index_checkpoint_fd(ix, 2, &err);
    assert_true(fd >= 0);
    assert_int_equal(tg_event_index_checkpoint_write(fd, 2, &err), 0);
    tg_event_index_close(ix);
    ev = open_checkpointed(&ts, &cfg);
    close_checkpointed(ev, cfg);
    assert_held((const uint8_t(*)[16]) & k[2], 1, 1);
    assert_held((const uint8_t(*)[16])k, 2, 0);
    tg_tmpstore_close(&ts);
}

/* An index file of version 1 (written before checkpoints, synced at every log reset) reads as
 * checkpoint 0: every block is claimed again, and the header becomes version 2 with the last
 * block. (main refused nothing here but claimed no block: the stored events were new.) */
static void test_index_of_version_1_reads_as_checkpoint_0(void **state)
{
    (void)state;
    if (tg_tmpstore_backend_is_pg())
        skip();
    tg_tmpstore_t ts;
    assert_int_equal(tg_tmpstore_open(&ts, "evv1"), 0);
    tg_err_t err = {0};
    uint8_t k[2][16];
    key_of(50, k[0]);
    key_of(51, k[1]);
    store_event(&ts, k[0], 1);
    store_event(&ts, k[1], 2);
    tg_event_index_t *ix;
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    tg_event_index_close(ix);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    const unsigned char v1[4] = {1, 0, 0, 0};
    assert_int_equal(fseek(f, 8, SEEK_SET), 0);
    assert_int_equal(fwrite(v1, 1, 4, f), 4); /* the version; bytes 24-31 were zero in version 1 */
    fclose(f);
    assert_int_equal(header_version(), 1);

    tg_config_t *cfg;
    tg_events_t *ev = open_checkpointed(&ts, &cfg);
    close_checkpointed(ev, cfg);
    assert_int_equal(header_version(), 2);
    assert_int_equal(header_checkpoint(), 2);
    assert_held((const uint8_t(*)[16])k, 2, 1);
    tg_tmpstore_close(&ts);
}

/* The thread checkpoints by itself every checkpoint_ms: a block stored after the start reaches
 * the header without a call, while checkpoints asked for meanwhile (and syncs) wait their turn
 * (one at a time). Polled with a bound, no sleep as synchronisation. */
static void test_checkpoint_thread_writes_new_blocks(void **state)
{
    (void)state;
    if (tg_tmpstore_backend_is_pg())
        skip();
    tg_tmpstore_t ts;
    assert_int_equal(tg_tmpstore_open(&ts, "evthr"), 0);
    tg_err_t err = {0};
    uint8_t k[3][16];
    for (int i = 0; i < 3; i++)
        key_of(60 + (uint64_t)i, k[i]);
    store_event(&ts, k[0], 1);
    tg_config_t *cfg;
    tg_events_t *ev = open_checkpointed_every(&ts, 20, &cfg);
    assert_int_equal(header_checkpoint(), 1);
    store_event(&ts, k[1], 2);
    store_event(&ts, k[2], 3);
    time_t until = time(NULL) + 30;
    int calls = 0;
    while (header_checkpoint() != 3 && time(NULL) < until)
        if (calls++ % 2 == 0) /* contend with the thread, which may also be the one that gets there */
            assert_int_equal(tg_events_sync_index(ev, &err), 0);
    assert_int_equal(header_checkpoint(), 3);
    assert_int_equal(tg_events_checkpoint(ev, &err), 0); /* nothing new: nothing written */
    assert_int_equal(header_checkpoint(), 3);
    close_checkpointed(ev, cfg);
    tg_tmpstore_close(&ts);
}

/* A checkpoint past the store's last block (the database restored from an older backup, which
 * hands those block ids out again) is set back to the store's at open, so that the blocks
 * stored next, numbered at or below the old checkpoint, are claimed again after a power cut. */
static void test_checkpoint_past_the_store_set_back(void **state)
{
    (void)state;
    if (tg_tmpstore_backend_is_pg())
        skip();
    tg_tmpstore_t ts;
    assert_int_equal(tg_tmpstore_open(&ts, "evrst"), 0);
    tg_err_t err = {0};
    uint8_t k[16];
    key_of(70, k);
    tg_event_index_t *ix;
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    int fd = tg_event_index_checkpoint_fd(ix, 10, &err);
    assert_true(fd >= 0);
    assert_int_equal(tg_event_index_checkpoint_write(fd, 10, &err), 0);
    tg_event_index_close(ix);
    tg_config_t *cfg;
    tg_events_t *ev = open_checkpointed(&ts, &cfg);
    assert_int_equal(header_checkpoint(), 0);
    store_event(&ts, k, 1); /* block 1, below the old checkpoint */
    close_checkpointed(ev, cfg);
    assert_int_equal(header_checkpoint(), 1);
    tg_tmpstore_close(&ts);
}

/* A rebuild (growth) writes the checkpoint noted last into its new file, even one noted before
 * the rebuild and written after it to the old file: the new file copies the whole table, which
 * holds every claim of the blocks up to it, and is synced before it replaces the old. */
static void test_rebuild_carries_the_checkpoint(void **state)
{
    (void)state;
    tg_err_t err = {0};
    tg_event_index_t *ix;
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    assert_int_equal(tg_event_index_checkpoint(ix), 0);
    int fd = tg_event_index_checkpoint_fd(ix, 7, &err);
    assert_true(fd >= 0);
    assert_int_equal(tg_event_index_checkpoint_write(fd, 7, &err), 0);
    fd = tg_event_index_checkpoint_fd(ix, 9, &err); /* noted; the sync comes after the rebuild */
    assert_true(fd >= 0);
    uint64_t live, slots0, slots;
    tg_event_index_counts(ix, &live, &slots0);
    uint8_t k[16];
    for (uint64_t i = 0; i < slots0; i++) { /* past 70 %: at least one rebuild */
        key_of(1000 + i, k);
        assert_int_equal(tg_event_index_claim(ix, k, 20000, NULL, &err), 1);
    }
    tg_event_index_counts(ix, &live, &slots);
    assert_true(slots > slots0);
    assert_int_equal(tg_event_index_checkpoint_write(fd, 9, &err), 0); /* into the replaced file */
    tg_event_index_close(ix);
    assert_int_equal(header_checkpoint(), 9);
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    assert_int_equal(tg_event_index_checkpoint(ix), 9);
    tg_event_index_close(ix);
}

/* ---- the event key across the upgrade to SipHash (migration 36) ---- */

/* What main's code (events.c at ff96455: keyed BLAKE2b-128 under the key derived as "tollgate
 * usage event id v1") gives the event "evt-1" of customer cus_x with events_yaml's keys.secret:
 * computed with a copy of that code, pinned here. Ids indexed, logged and stored before the
 * upgrade are these. */
static const uint8_t MAIN_KEY_CUS_X_EVT_1[16] = {0x9e, 0x12, 0x1e, 0x82, 0xcc, 0xd6, 0x85, 0x0f,
                                                 0x8f, 0xf6, 0x02, 0x3a, 0xe3, 0x35, 0x5f, 0x76};
/* SipHash-2-4-128 of "cus_x\0evt-1" under the key derived as "tollgate usage event id siphash
 * v2" (16 bytes of BLAKE2b keyed with the secret): crypto_shorthash_siphashx24, pinned. */
static const uint8_t SIPHASH_KEY_CUS_X_EVT_1[16] = {0x68, 0xc1, 0x3e, 0xc9, 0x23, 0x1d, 0x7e, 0xaa,
                                                    0x8f, 0xa5, 0x8f, 0xc7, 0x2f, 0xb5, 0x0f, 0xec};

#define NS INT64_C(1000000000)

/* The events service of events_yaml on `path`, S read from key_store (NULL: none). */
static tg_events_t *events_keyed_by(tg_store_t *key_store, tg_config_t **cfg)
{
    char errbuf[1024];
    tg_err_t err = {0};
    assert_int_equal(tg_config_load_string("t.yaml", events_yaml, strlen(events_yaml), cfg, errbuf, sizeof(errbuf)), 0);
    tg_events_opts_t o = {.cfg = *cfg,
                          .index_path = path,
                          .secret = (const uint8_t *)"0123456789abcdef0123456789abcdef",
                          .secret_len = 32,
                          .key_store = key_store,
                          .now_s = time(NULL)};
    tg_events_t *ev;
    assert_int_equal(tg_events_open(&o, &ev, &err), 0);
    return ev;
}

static void assert_key(tg_events_t *ev, int64_t ts_ns, const uint8_t want[16])
{
    uint8_t k[16];
    tg_events_event_key(ev, "cus_x", "evt-1", 5, ts_ns, k);
    assert_memory_equal(k, want, 16);
}

/* Brings ts's database back to before migration 36 (its table and its row in schema_migrations
 * gone, and those of the later migrations, which migrate applies again after it), runs setup_sql
 * there as the old code would have left it, migrates again and returns S. */
static int64_t migrated_from_before_36(tg_tmpstore_t *ts, const char *setup_sql)
{
    tg_err_t err = {0};
    assert_int_equal(tg_tmpstore_exec(ts,
                                      "DROP TABLE event_key_schemes; DROP TABLE metering_drained_nodes;" /* 36, 38 */
                                      " DELETE FROM schema_migrations WHERE version >= 36"),
                     0);
    if (setup_sql != NULL)
        assert_int_equal(tg_tmpstore_exec(ts, setup_sql), 0);
    assert_int_equal(tg_store_migrate(ts->st, &err), 0);
    int64_t until = -1;
    assert_int_equal(tg_store_event_key_blake2b_until(ts->st, &until, &err), 0);
    return until;
}

/* A fresh database never held a BLAKE2b id: S = 0 and every event, whatever its date, gets the
 * SipHash key. One migrated while it held event ids, or customers (an event's row may be in a
 * metering log only, not yet stored, when the new binary migrates): S = the migration's time +
 * 600 s; an event dated up to S gets the very key main's code gave it (so a retry of an event
 * sent before the upgrade meets the id indexed, logged and stored then), a later one SipHash.
 * Both backends (TG_TEST_BACKEND). */
static void test_event_key_blake2b_until_the_switch_then_siphash(void **state)
{
    (void)state;
    tg_tmpstore_t ts;
    assert_int_equal(tg_tmpstore_open(&ts, "evkey"), 0);
    tg_err_t err = {0};
    int64_t until = -1;
    assert_int_equal(tg_store_event_key_blake2b_until(ts.st, &until, &err), 0);
    assert_int_equal(until, 0);
    tg_config_t *cfg;
    tg_events_t *ev = events_keyed_by(ts.st, &cfg);
    assert_int_equal(tg_events_blake2b_until(ev), 0);
    int64_t now_ns = (int64_t)time(NULL) * NS;
    assert_key(ev, now_ns, SIPHASH_KEY_CUS_X_EVT_1);
    assert_key(ev, now_ns - INT64_C(30) * 86400 * NS, SIPHASH_KEY_CUS_X_EVT_1);
    assert_key(ev, 0, SIPHASH_KEY_CUS_X_EVT_1);
    tg_events_close(ev);
    tg_config_free(cfg);

    /* a database that held event ids */
    int64_t before = time(NULL);
    until =
        migrated_from_before_36(&ts, "INSERT INTO usage_event_ids(event_id, customer_id, ts)"
                                     " VALUES (-8104835780538658146, 'cus_x', 1764900000)"); /* main's id of evt-1 */
    int64_t after = time(NULL);
    assert_true(until >= before + 600 && until <= after + 600);
    ev = events_keyed_by(ts.st, &cfg);
    assert_int_equal(tg_events_blake2b_until(ev), until);
    assert_key(ev, now_ns, MAIN_KEY_CUS_X_EVT_1); /* sent before the upgrade */
    assert_key(ev, now_ns - INT64_C(30) * 86400 * NS, MAIN_KEY_CUS_X_EVT_1);
    assert_key(ev, until * NS, MAIN_KEY_CUS_X_EVT_1);        /* up to S, included */
    assert_key(ev, until * NS + 1, SIPHASH_KEY_CUS_X_EVT_1); /* after S */
    assert_key(ev, (until + 86400) * NS, SIPHASH_KEY_CUS_X_EVT_1);
    tg_events_close(ev);
    tg_config_free(cfg);

    /* no ids stored yet, but a customer: its events may be in a metering log only */
    before = time(NULL);
    until = migrated_from_before_36(&ts, "DELETE FROM usage_event_ids;"
                                         "INSERT INTO customers(id, email, plan_id, status, created_at, anchor_at)"
                                         " VALUES ('cus_x', 'a@example.com', 'p', 'active', 1, 1)");
    after = time(NULL);
    assert_true(until >= before + 600 && until <= after + 600);

    /* neither: a database that never took an event */
    assert_int_equal(migrated_from_before_36(&ts, "DELETE FROM customers"), 0);
    tg_tmpstore_close(&ts);
}

/* The same event before and after the upgrade: main's node claimed (and committed) its BLAKE2b
 * key in the dedup index; the upgraded node, S after the event's date, computes the same key, so
 * the index answers duplicate (the claim finds it). An event dated after S is another key. */
static void test_duplicate_across_the_upgrade(void **state)
{
    (void)state;
    tg_err_t err = {0};
    uint32_t today = (uint32_t)(time(NULL) / 86400);
    tg_event_index_t *ix;
    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    assert_int_equal(tg_event_index_claim(ix, MAIN_KEY_CUS_X_EVT_1, today, NULL, &err), 1); /* main's node */
    tg_event_index_commit(ix, MAIN_KEY_CUS_X_EVT_1);
    tg_event_index_close(ix);

    tg_tmpstore_t ts;
    assert_int_equal(tg_tmpstore_open(&ts, "evdup"), 0);
    int64_t until =
        migrated_from_before_36(&ts, "INSERT INTO usage_event_ids(event_id, customer_id, ts)"
                                     " VALUES (-8104835780538658146, 'cus_x', 1764900000)"); /* main's id of evt-1 */
    tg_config_t *cfg;
    tg_events_t *ev = events_keyed_by(ts.st, &cfg);
    uint8_t retried[16], later[16];
    int64_t sent_ns = (int64_t)time(NULL) * NS - 60 * NS; /* dated a minute before the upgrade */
    tg_events_event_key(ev, "cus_x", "evt-1", 5, sent_ns, retried);
    tg_events_event_key(ev, "cus_x", "evt-1", 5, (until + 1) * NS, later);
    tg_events_close(ev);
    tg_config_free(cfg);
    tg_tmpstore_close(&ts);

    assert_int_equal(tg_event_index_open(path, 35, 0, &ix, &err), 0);
    assert_int_equal(tg_event_index_claim(ix, retried, today, NULL, &err), 0); /* duplicate */
    assert_int_equal(tg_event_index_claim(ix, later, today, NULL, &err), 1);
    tg_event_index_close(ix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_claim_duplicate_withdraw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_survives_reopen_and_lists_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grows_without_losing_a_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sized_at_open_for_expected_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_at_the_claims_slot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_foreign_file_and_second_opener, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_settled_against_the_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefix_slot_holds_every_key_with_its_63_bits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefix_slots_survive_rebuilds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logged_rows_claimed_again_at_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_index_rebuilt_from_the_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_refills_the_blocks_after_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_of_version_1_reads_as_checkpoint_0, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_carries_the_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_thread_writes_new_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_past_the_store_set_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_key_blake2b_until_the_switch_then_siphash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_across_the_upgrade, setup, teardown),
        cmocka_unit_test(test_rfc3339),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
