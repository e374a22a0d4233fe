/* test_reservations.c - the decision API's reservations (gateway/reservations.h) on the real
 * decision pipeline: config, directory, limiter, quota and a meter on a temporary store. Each
 * reservation settles once; the timeout rules bill or release; the table is bounded; threads
 * holding and settling at once lose nothing and count nothing twice (also built with TSan). The
 * reservation file (gateway/reservation_file.h): open slots outlive their writer and are billed
 * once at the next start, not when their rows already reached the metering log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/accounts.h"
#include "gateway/apikey.h"
#include "gateway/gateway.h"
#include "gateway/reservation_file.h"
#include "gateway/reservations.h"
#include "metering/usage_log.h"
#include "util/clock.h"

#include "../support/customers.h"
#include "../support/tmpstore.h"

static const char *yaml = "server: {listen: \"127.0.0.1:1\", admin_listen: \"127.0.0.1:2\"}\n"
                          "upstream: {url: \"http://127.0.0.1:3\"}\n"
                          "admin: {token: \"0123456789abcdef0123\"}\n"
                          "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"
                          "plans:\n"
                          "  big: {price: \"1\", rate_limit: 1000000/sec, burst: 1000000, included: {api_calls: "
                          "1000000, images: 100}, on_quota: block}\n"
                          "routes:\n"
                          "  - {match: \"POST /v1/vision/*\", meter: {api_calls: 1, images: 1}}\n";

typedef struct {
    tg_tmpstore_t db;
    tg_config_t *cfg;
    tg_accounts_t *acc;
    tg_limiter_t *lim;
    tg_quota_t *quota;
    tg_meter_t *meter;
    tg_gateway_t *gw;
    char key[TG_APIKEY_BUF];
    char auth[TG_APIKEY_BUF + 8];
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_int_equal(tg_tmpstore_open(&f->db, "rsv"), 0);
    char errbuf[2048];
    assert_int_equal(tg_config_load_string("test.yaml", yaml, strlen(yaml), &f->cfg, errbuf, sizeof(errbuf)), 0);
    free(f->cfg->storage.database);
    f->cfg->storage.database = strdup(f->db.url);
    tg_err_t err = {0};
    f->acc = tg_accounts_new(f->cfg);
    f->lim = tg_limiter_local_new();
    f->quota = tg_quota_new();
    tg_meter_opts_t mo = {.store_url = f->db.url, .log_dir = f->db.dir, .flush_ms = 2};
    assert_int_equal(tg_meter_start_opts(&mo, &f->meter, &err), 0);
    tg_gateway_deps_t d = {.cfg = f->cfg, .accounts = f->acc, .limiter = f->lim, .quota = f->quota, .meter = f->meter};
    f->gw = tg_gateway_new(&d, (const uint8_t *)f->cfg->keys.secret, strlen(f->cfg->keys.secret));
    assert_int_equal(tg_test_add_customer(f->cfg, f->db.st, f->acc, "cus_r", "big", "active", f->key, &err), 0);
    snprintf(f->auth, sizeof(f->auth), "Bearer %s", f->key);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    tg_meter_stop(f->meter);
    tg_gateway_free(f->gw);
    tg_quota_free(f->quota);
    tg_limiter_free(f->lim);
    tg_accounts_free(f->acc);
    tg_config_free(f->cfg);
    assert_int_equal(tg_tmpstore_close(&f->db), 0);
    free(f);
    return 0;
}

static void admit_ok(fx_t *f, const char *method, const char *path, tg_call_t *call)
{
    tg_call_request_t rq = {.method = method,
                            .method_len = strlen(method),
                            .path = path,
                            .path_len = strlen(path),
                            .authorization = f->auth,
                            .authorization_len = strlen(f->auth)};
    tg_refusal_t r;
    assert_int_equal(tg_gateway_admit(f->gw, &rq, call, &r), 1);
}

static uint64_t used(fx_t *f, const char *metric)
{
    tg_account_t *a = tg_accounts_find(f->acc, "cus_r");
    int64_t ps, pe;
    tg_account_period(a, tg_clock_now_ns() / TG_NS_PER_SEC, &ps, &pe);
    return tg_quota_used(f->quota, "cus_r", ps, metric);
}

static tg_reservations_t *table(fx_t *f, size_t cap, int rule)
{
    tg_reservations_opts_t o = {.capacity = cap, .timeout_ns = 1000 * TG_NS_PER_SEC, .on_timeout = rule};
    tg_reservations_t *r = tg_reservations_new(f->gw, &o);
    assert_non_null(r);
    return r;
}

static void hold_labelled(tg_reservations_t *r, tg_call_t *call, const tg_reservation_label_t *label, int64_t now,
                          char id[TG_RESERVATION_ID_MAX])
{
    tg_err_t err;
    assert_int_equal(tg_reservations_hold(r, call, label, now, id, &err), 0);
    assert_int_equal(strlen(id), TG_RESERVATION_ID_LEN);
    assert_memory_equal(id, "rsv_", 4);
}

static void hold(tg_reservations_t *r, tg_call_t *call, int64_t now, char id[TG_RESERVATION_ID_MAX])
{
    hold_labelled(r, call, NULL, now, id);
}

/* A call of the vision route admitted and held; the caller's copy is not needed afterwards. */
static void admit_and_hold(fx_t *f, tg_reservations_t *r, int64_t now, char id[TG_RESERVATION_ID_MAX])
{
    tg_call_t call;
    admit_ok(f, "POST", "/v1/vision/x", &call);
    hold(r, &call, now, id);
}

static void test_settles_once(void **state)
{
    fx_t *f = *state;
    tg_reservations_t *r = table(f, 16, TG_RESERVATION_BILL);
    tg_call_t call;
    char id[TG_RESERVATION_ID_MAX], other[TG_RESERVATION_ID_MAX];
    admit_ok(f, "POST", "/v1/vision/x", &call);
    hold(r, &call, 0, id);
    assert_int_equal(call.settled, 1); /* the caller's copy no longer releases anything */
    tg_gateway_abandon(f->gw, &call);
    assert_int_equal(used(f, "images"), 1);

    admit_ok(f, "GET", "/v1/basic/x", &call);
    hold(r, &call, 0, other);
    assert_string_not_equal(id, other);

    assert_int_equal(tg_reservations_settle(r, id, strlen(id), 200, 0, "images=2", 8, NULL, NULL), 1);
    assert_int_equal(used(f, "images"), 3); /* the reservation's 1 and the reported 2 */
    assert_int_equal(tg_reservations_settle(r, id, strlen(id), 200, 0, "images=2", 8, NULL, NULL), TG_ENOTFOUND);
    assert_int_equal(used(f, "images"), 3);

    char forged[TG_RESERVATION_ID_MAX];
    memcpy(forged, other, sizeof(forged));
    forged[TG_RESERVATION_ID_LEN - 1] = forged[TG_RESERVATION_ID_LEN - 1] == '0' ? '1' : '0';
    assert_int_equal(tg_reservations_settle(r, forged, strlen(forged), 200, 0, NULL, 0, NULL, NULL), TG_ENOTFOUND);
    assert_int_equal(tg_reservations_settle(r, "rsv_", 4, 200, 0, NULL, 0, NULL, NULL), TG_ENOTFOUND);
    assert_int_equal(tg_reservations_settle(r, "RSV_0123", 8, 200, 0, NULL, 0, NULL, NULL), TG_ENOTFOUND);

    /* a 5xx gives the reservation back, as for proxied calls */
    assert_int_equal(used(f, "api_calls"), 2);
    assert_int_equal(tg_reservations_settle(r, other, strlen(other), 503, 0, NULL, 0, NULL, NULL), 0);
    assert_int_equal(used(f, "api_calls"), 1);

    tg_reservations_stats_t st;
    tg_reservations_get_stats(r, &st);
    assert_int_equal(st.held, 0);
    assert_int_equal(st.settled, 2);
    assert_int_equal(st.unknown, 4);
    tg_reservations_free(r);
}

static void test_timeout_rules(void **state)
{
    fx_t *f = *state;
    for (int rule = TG_RESERVATION_BILL; rule <= TG_RESERVATION_RELEASE; rule++) {
        tg_reservations_t *r = table(f, 16, rule);
        uint64_t before = used(f, "images");
        tg_call_t call;
        char a[TG_RESERVATION_ID_MAX], b[TG_RESERVATION_ID_MAX];
        admit_ok(f, "POST", "/v1/vision/x", &call);
        hold(r, &call, 0, a);
        admit_ok(f, "POST", "/v1/vision/x", &call);
        hold(r, &call, 500 * TG_NS_PER_SEC, b);
        assert_int_equal(tg_reservations_expire(r, 999 * TG_NS_PER_SEC), 0);  /* not yet */
        assert_int_equal(tg_reservations_expire(r, 1000 * TG_NS_PER_SEC), 1); /* a's deadline */
        assert_int_equal(used(f, "images"), before + (rule == TG_RESERVATION_BILL ? 2 : 1));
        /* a late settlement finds nothing */
        assert_int_equal(tg_reservations_settle(r, a, strlen(a), 200, 0, NULL, 0, NULL, NULL), TG_ENOTFOUND);
        tg_reservations_stats_t st;
        tg_reservations_get_stats(r, &st);
        assert_int_equal(st.expired, 1);
        assert_int_equal(st.held, 1);
        tg_reservations_free(r); /* b is settled by the same rule */
        assert_int_equal(used(f, "images"), before + (rule == TG_RESERVATION_BILL ? 2 : 0));
    }
}

/* What the on_end hook saw (the access log's view). */
typedef struct ends {
    int n;
    char ids[4][TG_RESERVATION_ID_MAX];
    int status[4], expired[4];
    uint64_t images[4]; /* units billed for "images" */
    tg_reservation_label_t labels[4];
} ends_t;

static void on_end(void *arg, const tg_call_t *call, const tg_reservation_label_t *label, const char *id, int status,
                   int expired)
{
    ends_t *e = arg;
    assert_true(e->n < 4);
    memcpy(e->ids[e->n], id, TG_RESERVATION_ID_MAX);
    e->labels[e->n] = *label;
    e->status[e->n] = status;
    e->expired[e->n] = expired;
    for (size_t i = 0; i < call->nmetered; i++)
        if (strcmp(call->metered[i].metric, "images") == 0)
            e->images[e->n] = call->metered[i].units;
    e->n++;
}

static void test_end_hook(void **state)
{
    fx_t *f = *state;
    ends_t ends = {0};
    tg_reservations_opts_t o = {.capacity = 16,
                                .timeout_ns = 1000 * TG_NS_PER_SEC,
                                .on_timeout = TG_RESERVATION_RELEASE,
                                .on_end = on_end,
                                .on_end_arg = &ends};
    tg_reservations_t *r = tg_reservations_new(f->gw, &o);
    assert_non_null(r);
    char a[TG_RESERVATION_ID_MAX], b[TG_RESERVATION_ID_MAX], c[TG_RESERVATION_ID_MAX];
    /* a is held with the forwarder's names for the call: its end carries them, cut to size */
    char long_path[600], long_method[40];
    memset(long_path, 'p', sizeof(long_path));
    long_path[0] = '/';
    memset(long_method, 'M', sizeof(long_method));
    tg_reservation_label_t label;
    tg_reservation_label_set(&label, "POST", 4, "/v1/vision/x", 12, "req-42", 6);
    tg_call_t call;
    admit_ok(f, "POST", "/v1/vision/x", &call);
    hold_labelled(r, &call, &label, 0, a);
    tg_reservation_label_set(&label, long_method, sizeof(long_method), long_path, sizeof(long_path), NULL, 0);
    admit_ok(f, "POST", "/v1/vision/x", &call);
    hold_labelled(r, &call, &label, 0, b);
    admit_and_hold(f, r, 10 * TG_NS_PER_SEC, c);
    assert_int_equal(ends.n, 0);

    /* settled: once, with the reported status and the units billed */
    assert_int_equal(tg_reservations_settle(r, a, strlen(a), 201, 0, "images=2", 8, NULL, NULL), 1);
    assert_int_equal(tg_reservations_settle(r, a, strlen(a), 201, 0, NULL, 0, NULL, NULL), TG_ENOTFOUND);
    assert_int_equal(ends.n, 1);
    assert_string_equal(ends.ids[0], a);
    assert_int_equal(ends.status[0], 201);
    assert_int_equal(ends.expired[0], 0);
    assert_int_equal(ends.images[0], 3); /* the route's 1 and the reported 2 */
    assert_string_equal(ends.labels[0].method, "POST");
    assert_string_equal(ends.labels[0].path, "/v1/vision/x");
    assert_string_equal(ends.labels[0].request_id, "req-42");

    /* expired by the rule (release): nothing billed */
    assert_int_equal(tg_reservations_expire(r, 1000 * TG_NS_PER_SEC), 1);
    assert_int_equal(ends.n, 2);
    assert_string_equal(ends.ids[1], b);
    assert_int_equal(ends.expired[1], 1);
    assert_int_equal(ends.images[1], 0);
    assert_int_equal(strlen(ends.labels[1].method), TG_RESERVATION_METHOD_MAX - 1);
    assert_int_equal(strlen(ends.labels[1].path), TG_RESERVATION_PATH_MAX - 1);
    assert_memory_equal(ends.labels[1].path, long_path, TG_RESERVATION_PATH_MAX - 1);
    assert_string_equal(ends.labels[1].request_id, "");

    /* still open when the table is freed: ended by the rule too */
    tg_reservations_free(r);
    assert_int_equal(ends.n, 3);
    assert_string_equal(ends.ids[2], c);
    assert_int_equal(ends.expired[2], 1);
    assert_string_equal(ends.labels[2].method, ""); /* held without a label */
    assert_string_equal(ends.labels[2].path, "");
}

static void test_bounded(void **state)
{
    fx_t *f = *state;
    tg_reservations_t *r = table(f, 2, TG_RESERVATION_BILL);
    tg_call_t call;
    char a[TG_RESERVATION_ID_MAX], b[TG_RESERVATION_ID_MAX], c[TG_RESERVATION_ID_MAX];
    admit_ok(f, "GET", "/v1/basic/x", &call);
    hold(r, &call, 0, a);
    admit_ok(f, "GET", "/v1/basic/x", &call);
    hold(r, &call, 0, b);
    uint64_t before = used(f, "api_calls");
    admit_ok(f, "GET", "/v1/basic/x", &call);
    tg_err_t err;
    assert_int_equal(tg_reservations_hold(r, &call, NULL, 0, c, &err), TG_ELIMIT);
    assert_non_null(strstr(err.msg, "decide.max_pending"));
    assert_int_equal(call.settled, 0); /* still the caller's to release */
    tg_gateway_abandon(f->gw, &call);
    assert_int_equal(used(f, "api_calls"), before); /* its reservation given back */
    assert_int_equal(tg_reservations_settle(r, a, strlen(a), 200, 0, NULL, 0, NULL, NULL), 1);
    admit_ok(f, "GET", "/v1/basic/x", &call);
    hold(r, &call, 0, c);
    tg_reservations_stats_t st;
    tg_reservations_get_stats(r, &st);
    assert_int_equal(st.full, 1);
    tg_reservations_free(r);
}

/* One customer cannot hold the whole table: past decide.max_pending_per_customer its next call
 * is refused (TG_ESTATE, left to the caller), while another customer's is held; every way out of
 * the table (settled, expired, freed) gives the share back. */
static void test_per_customer_share(void **state)
{
    fx_t *f = *state;
    tg_reservations_opts_t o = {
        .capacity = 16, .per_customer = 2, .timeout_ns = 1000 * TG_NS_PER_SEC, .on_timeout = TG_RESERVATION_BILL};
    tg_reservations_t *r = tg_reservations_new(f->gw, &o);
    assert_non_null(r);
    char other_key[TG_APIKEY_BUF], other_auth[TG_APIKEY_BUF + 8];
    tg_err_t err = {0};
    assert_int_equal(tg_test_add_customer(f->cfg, f->db.st, f->acc, "cus_s", "big", "active", other_key, &err), 0);
    snprintf(other_auth, sizeof(other_auth), "Bearer %s", other_key);

    tg_call_t call;
    char a[TG_RESERVATION_ID_MAX], b[TG_RESERVATION_ID_MAX], c[TG_RESERVATION_ID_MAX];
    admit_ok(f, "GET", "/v1/basic/x", &call);
    hold(r, &call, 0, a);
    admit_ok(f, "GET", "/v1/basic/x", &call);
    hold(r, &call, 500 * TG_NS_PER_SEC, b);
    uint64_t before = used(f, "api_calls");
    admit_ok(f, "GET", "/v1/basic/x", &call);
    assert_int_equal(tg_reservations_hold(r, &call, NULL, 0, c, &err), TG_ESTATE);
    assert_non_null(strstr(err.msg, "cus_r"));
    assert_non_null(strstr(err.msg, "decide.max_pending_per_customer"));
    assert_int_equal(call.settled, 0); /* still the caller's to release */
    tg_gateway_abandon(f->gw, &call);
    assert_int_equal(used(f, "api_calls"), before);

    /* the other customer is not refused for cus_r's calls */
    tg_call_request_t rq = {.method = "GET",
                            .method_len = 3,
                            .path = "/v1/basic/x",
                            .path_len = 11,
                            .authorization = other_auth,
                            .authorization_len = strlen(other_auth)};
    tg_refusal_t refusal;
    tg_call_t theirs;
    assert_int_equal(tg_gateway_admit(f->gw, &rq, &theirs, &refusal), 1);
    hold(r, &theirs, 500 * TG_NS_PER_SEC, c);

    /* settled, expired: the share is back each time. Hold times only grow, as the monotonic
     * clock's do: each shard expires its entries in the order they were held. */
    assert_int_equal(tg_reservations_settle(r, a, strlen(a), 200, 0, NULL, 0, NULL, NULL), 1);
    admit_ok(f, "GET", "/v1/basic/x", &call);
    hold(r, &call, 600 * TG_NS_PER_SEC, a);
    assert_int_equal(tg_reservations_expire(r, 1500 * TG_NS_PER_SEC), 2); /* b and c; a is younger */
    admit_ok(f, "GET", "/v1/basic/x", &call);
    hold(r, &call, 1500 * TG_NS_PER_SEC, a);
    tg_reservations_stats_t st;
    tg_reservations_get_stats(r, &st);
    assert_int_equal(st.customer_full, 1);
    assert_int_equal(st.full, 0);
    assert_int_equal(st.held, 2);
    tg_reservations_free(r);
    /* freed: a new table starts from nothing held */
    r = tg_reservations_new(f->gw, &o);
    assert_non_null(r);
    admit_ok(f, "GET", "/v1/basic/x", &call);
    hold(r, &call, 0, a);
    admit_ok(f, "GET", "/v1/basic/x", &call);
    hold(r, &call, 0, b);
    tg_reservations_free(r);
}

static void test_units_override(void **state)
{
    fx_t *f = *state;
    assert_null(tg_gateway_config_metric(f->gw, "invented", 8));
    const char *images = tg_gateway_config_metric(f->gw, "images", 6);
    assert_non_null(images);
    assert_string_equal(images, "images");
    tg_meter_unit_t units[1] = {{(char *)images, 7}};
    tg_call_request_t rq = {.method = "GET",
                            .method_len = 3,
                            .path = "/v1/basic/x",
                            .path_len = 11,
                            .authorization = f->auth,
                            .authorization_len = strlen(f->auth),
                            .units = units,
                            .nunits = 1};
    tg_call_t call;
    tg_refusal_t rf;
    uint64_t before = used(f, "images"), calls = used(f, "api_calls");
    assert_int_equal(tg_gateway_admit(f->gw, &rq, &call, &rf), 1);
    assert_int_equal(used(f, "images"), before + 7);
    assert_int_equal(used(f, "api_calls"), calls); /* instead of the route's units, not beside them */
    tg_gateway_abandon(f->gw, &call);
    /* more than the allowance is refused as any call over quota */
    units[0].units = 1000;
    assert_int_equal(tg_gateway_admit(f->gw, &rq, &call, &rf), 0);
    assert_int_equal(rf.status, 429);
}

/* Threads hold and settle at once (each its own ids, plus every id settled by two threads). */
#define THREADS 4
#define PER_THREAD 2000
typedef struct {
    fx_t *f;
    tg_reservations_t *r;
    char (*ids)[TG_RESERVATION_ID_MAX];
    int billed;
} worker_t;

static void *hold_settle(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        tg_call_t call;
        admit_ok(w->f, "GET", "/v1/basic/x", &call);
        tg_err_t err;
        if (tg_reservations_hold(w->r, &call, NULL, 0, w->ids[i], &err) != 0)
            abort();
    }
    return NULL;
}

static void *settle_all(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < THREADS * PER_THREAD; i++)
        if (tg_reservations_settle(w->r, w->ids[i], TG_RESERVATION_ID_LEN, 200, 0, NULL, 0, NULL, NULL) == 1)
            w->billed++;
    return NULL;
}

static tg_reservation_file_t *file_open(fx_t *f, const char *log_path);
static tg_reservation_recovered_t file_recover(fx_t *f, tg_reservation_file_t *rf, int rule, size_t cap);

/* Also with the reservation file: its slots are taken and freed by every thread at once, and
 * none is left open afterwards. */
static void test_threads(void **state)
{
    fx_t *f = *state;
    tg_reservation_file_t *rf = file_open(f, NULL);
    file_recover(f, rf, TG_RESERVATION_RELEASE, THREADS * PER_THREAD);
    tg_reservations_opts_t o = {.capacity = THREADS * PER_THREAD,
                                .timeout_ns = 1000 * TG_NS_PER_SEC,
                                .on_timeout = TG_RESERVATION_RELEASE,
                                .file = rf};
    tg_reservations_t *r = tg_reservations_new(f->gw, &o);
    assert_non_null(r);
    char(*ids)[TG_RESERVATION_ID_MAX] = calloc(THREADS * PER_THREAD, TG_RESERVATION_ID_MAX);
    uint64_t before = used(f, "api_calls");
    pthread_t t[THREADS];
    worker_t w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_t){f, r, ids + i * PER_THREAD, 0};
        pthread_create(&t[i], NULL, hold_settle, &w[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) { /* two settlers race over every id */
        w[i] = (worker_t){f, r, ids, 0};
        pthread_create(&t[i], NULL, settle_all, &w[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(w[0].billed + w[1].billed, THREADS * PER_THREAD);
    assert_int_equal(used(f, "api_calls"), before + THREADS * PER_THREAD);
    tg_reservations_stats_t st;
    tg_reservations_get_stats(r, &st);
    assert_int_equal(st.held, 0);
    assert_int_equal(st.unknown, THREADS * PER_THREAD);
    assert_int_equal(tg_meter_flush(f->meter), 0); /* the meter's callbacks freed the billed slots */
    tg_reservations_free(r);
    free(ids);
    tg_reservation_file_close(rf);
    rf = file_open(f, NULL);
    assert_int_equal(file_recover(f, rf, TG_RESERVATION_RELEASE, THREADS * PER_THREAD).left, 0);
    tg_reservation_file_close(rf);
}

/* ---- the reservation file ---- */

static char *slots_path(fx_t *f)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/reservations.slots", f->db.dir);
    return path;
}

/* Opens the file, checking it against the metering log at log_path (NULL: none). */
static tg_reservation_file_t *file_open(fx_t *f, const char *log_path)
{
    tg_err_t err = {0};
    tg_reservation_file_t *rf = NULL;
    const char *const logs[2] = {log_path, NULL};
    assert_int_equal(tg_reservation_file_open(slots_path(f), logs, &rf, &err), 0);
    return rf;
}

static tg_reservation_recovered_t file_recover(fx_t *f, tg_reservation_file_t *rf, int rule, size_t cap)
{
    tg_err_t err = {0};
    tg_reservation_recovered_t rec;
    assert_int_equal(tg_reservation_file_recover(rf, f->meter, rule, cap, &rec, &err), 0);
    return rec;
}

static uint64_t submitted(fx_t *f)
{
    tg_meter_stats_t ms;
    tg_meter_get_stats(f->meter, &ms);
    return ms.submitted;
}

/* An admitted call of the vision route (api_calls 1, images 1) in a slot, as a hold writes it. */
static uint64_t open_slot(fx_t *f, tg_reservation_file_t *rf, const char *id)
{
    tg_call_t call;
    admit_ok(f, "POST", "/v1/vision/x", &call);
    call.event_id = tg_meter_next_event_id();
    int64_t slot = tg_reservation_file_take(rf);
    assert_true(slot >= 0);
    tg_reservation_file_open_slot(rf, slot, &call, id);
    return call.event_id;
}

static void test_file_slots_survive_reopen(void **state)
{
    fx_t *f = *state;
    tg_reservation_file_t *rf = file_open(f, NULL);
    tg_reservation_recovered_t rec = file_recover(f, rf, TG_RESERVATION_BILL, 4);
    assert_int_equal(rec.left, 0);
    open_slot(f, rf, "rsv_00000000000000000000000000000001");
    open_slot(f, rf, "rsv_00000000000000000000000000000002");
    int64_t slot = tg_reservation_file_take(rf);
    tg_call_t call;
    admit_ok(f, "POST", "/v1/vision/x", &call);
    tg_reservation_file_open_slot(rf, slot, &call, "rsv_00000000000000000000000000000003");
    tg_reservation_file_free_slot(rf, slot); /* settled: not left open */
    /* the process dies: its slots are never freed, the file is just closed */
    tg_reservation_file_close(rf);

    uint64_t before = submitted(f);
    rf = file_open(f, NULL);
    rec = file_recover(f, rf, TG_RESERVATION_BILL, 4);
    assert_int_equal(rec.left, 2);
    assert_int_equal(rec.billed, 2);
    assert_int_equal(rec.logged, 0);
    assert_int_equal(submitted(f), before + 4); /* api_calls and images, each */
    tg_reservation_file_close(rf);

    rf = file_open(f, NULL); /* billed once: nothing is left for the start after */
    rec = file_recover(f, rf, TG_RESERVATION_BILL, 8);
    assert_int_equal(rec.left, 0);
    assert_int_equal(submitted(f), before + 4);
    assert_int_equal(tg_reservation_file_slots(8), 8 + 2 + 64);
    for (size_t i = 0; i < tg_reservation_file_slots(8); i++) /* resized for the new capacity */
        assert_true(tg_reservation_file_take(rf) >= 0);
    assert_int_equal(tg_reservation_file_take(rf), -1);
    tg_reservation_file_close(rf);
}

static void test_file_logged_not_billed_again(void **state)
{
    fx_t *f = *state;
    tg_reservation_file_t *rf = file_open(f, NULL);
    file_recover(f, rf, TG_RESERVATION_BILL, 4);
    uint64_t logged_id = open_slot(f, rf, "rsv_00000000000000000000000000000001");
    open_slot(f, rf, "rsv_00000000000000000000000000000002");
    tg_reservation_file_close(rf);

    /* the first one's usage reached a metering log just before the death */
    char log_path[128];
    snprintf(log_path, sizeof(log_path), "%s/dead-usage.log", f->db.dir);
    tg_err_t err = {0};
    tg_usage_log_t *log;
    assert_int_equal(tg_usage_log_open(log_path, &log, &err), 0);
    tg_usage_t row = {.event_id = logged_id, .units = 1, .status = 200};
    strcpy(row.customer_id, "cus_r");
    strcpy(row.metric, "api_calls");
    assert_int_equal(tg_usage_log_append(log, 7, &row, 1, &err), 0);
    tg_usage_log_close(log);

    uint64_t before = submitted(f);
    rf = file_open(f, log_path);
    tg_reservation_recovered_t rec = file_recover(f, rf, TG_RESERVATION_BILL, 4);
    assert_int_equal(rec.left, 2);
    assert_int_equal(rec.logged, 1);
    assert_int_equal(rec.billed, 1);
    assert_int_equal(submitted(f), before + 2); /* the second one's two metrics only */
    tg_reservation_file_close(rf);
}

static void test_file_release_rule(void **state)
{
    fx_t *f = *state;
    tg_reservation_file_t *rf = file_open(f, NULL);
    file_recover(f, rf, TG_RESERVATION_RELEASE, 2);
    open_slot(f, rf, "rsv_00000000000000000000000000000001");
    tg_reservation_file_close(rf);
    uint64_t before = submitted(f);
    rf = file_open(f, NULL);
    tg_reservation_recovered_t rec = file_recover(f, rf, TG_RESERVATION_RELEASE, 2);
    assert_int_equal(rec.left, 1);
    assert_int_equal(rec.released, 1);
    assert_int_equal(submitted(f), before);
    tg_reservation_file_close(rf);
}

/* The table frees a billed call's slot once the meter logged it, a released one at once; a
 * second process on the same file is refused. */
static void test_file_table_frees_slots(void **state)
{
    fx_t *f = *state;
    tg_reservation_file_t *rf = file_open(f, NULL);
    file_recover(f, rf, TG_RESERVATION_BILL, 4);
    tg_err_t err = {0};
    tg_reservation_file_t *second = NULL;
    const char *const none[2] = {NULL, NULL};
    assert_int_equal(tg_reservation_file_open(slots_path(f), none, &second, &err), TG_ESTATE);
    assert_null(second);

    tg_reservations_opts_t o = {.capacity = 4, .timeout_ns = 1000, .on_timeout = TG_RESERVATION_BILL, .file = rf};
    tg_reservations_t *r = tg_reservations_new(f->gw, &o);
    assert_non_null(r);
    char a[TG_RESERVATION_ID_MAX], b[TG_RESERVATION_ID_MAX], c[TG_RESERVATION_ID_MAX];
    admit_and_hold(f, r, 0, a);
    admit_and_hold(f, r, 0, b);
    admit_and_hold(f, r, 0, c);
    assert_int_equal(tg_reservations_settle(r, a, strlen(a), 200, 0, NULL, 0, NULL, NULL), 1);
    assert_int_equal(tg_reservations_settle(r, b, strlen(b), 503, 0, NULL, 0, NULL, NULL), 0);
    assert_int_equal(tg_reservations_expire(r, 10000), 1); /* c, billed by the rule */
    assert_int_equal(tg_meter_flush(f->meter), 0);
    tg_reservations_free(r);
    tg_reservation_file_close(rf);

    rf = file_open(f, NULL);
    tg_reservation_recovered_t rec = file_recover(f, rf, TG_RESERVATION_BILL, 4);
    assert_int_equal(rec.left, 0);
    tg_reservation_file_close(rf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_settles_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_end_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_customer_share, setup, teardown),
        cmocka_unit_test_setup_teardown(test_units_override, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_slots_survive_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_logged_not_billed_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_release_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_table_frees_slots, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
