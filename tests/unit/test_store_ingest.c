/* test_store_ingest.c - ingest tokens made in the admin API (issue 16) on the backend of
 * TG_TEST_BACKEND (SQLite by default, PostgreSQL with TG_TEST_BACKEND=postgres):
 * - the store (store_ingest.h): insert and get keep every field; a second token with the same
 *   hash is refused; pages newest first with a cursor that visits each token once; a revocation
 *   keeps its first time; the tokens in force exclude revoked ones; unknown ids and foreign
 *   cursors are errors;
 * - the service (metering/ingest_tokens.h) with the events service's table: a made token
 *   authenticates at once and only its hash is stored, a scoped one carries its customer, a
 *   revoked one stops at once, a restart (tg_events_tokens_load) brings back exactly the tokens
 *   in force, and bad input names its field;
 * - threads: gateway loops authenticating while the admin thread makes, revokes and reloads
 *   tokens always see the configured token, and a token in force only as itself (build with
 *   SANITIZE=thread for the races). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/tmpstore.h"
#include "config/config.h"
#include "metering/events.h"
#include "metering/ingest_tokens.h"
#include "store/store_ingest.h"

#define SECRET "0123456789abcdef0123456789abcdef"

typedef struct {
    tg_tmpstore_t db;
    char idx[160];
    tg_config_t *cfg;
    tg_events_t *ev;
} fx_t;

static void add_customer(tg_store_t *st, const char *id)
{
    tg_customer_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.id, sizeof(c.id), "%s", id);
    snprintf(c.email, sizeof(c.email), "%s@example.com", id);
    snprintf(c.name, sizeof(c.name), "Name of %s", id);
    snprintf(c.plan_id, sizeof(c.plan_id), "free");
    snprintf(c.status, sizeof(c.status), "active");
    c.created_at = c.anchor_at = 1000;
    tg_err_t err = {0};
    assert_int_equal(tg_store_customer_insert(st, &c, &err), 0);
}

static void open_events(fx_t *f)
{
    tg_events_opts_t o = {
        .cfg = f->cfg, .index_path = f->idx, .secret = (const uint8_t *)SECRET, .secret_len = strlen(SECRET)};
    tg_err_t err = {0};
    assert_int_equal(tg_events_open(&o, &f->ev, &err), 0);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_int_equal(tg_tmpstore_open(&f->db, "singest"), 0);
    snprintf(f->idx, sizeof(f->idx), "%s/events.idx", f->db.dir);
    static const char yaml[] = "upstream: {url: \"http://127.0.0.1:9000\"}\n"
                               "admin: {token: \"0123456789abcdef0123\"}\n"
                               "keys: {secret: \"" SECRET "\"}\n"
                               "events: {tokens: [{name: jobs, token: \"configured-token-0123456789\"}]}\n"
                               "plans: {free: {}}\n";
    char errbuf[1024];
    assert_int_equal(tg_config_load_string("t.yaml", yaml, strlen(yaml), &f->cfg, errbuf, sizeof(errbuf)), 0);
    open_events(f);
    add_customer(f->db.st, "cus_a");
    add_customer(f->db.st, "cus_b");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    tg_events_close(f->ev);
    tg_config_free(f->cfg);
    unlink(f->idx);
    int rc = tg_tmpstore_close(&f->db);
    free(f);
    return rc;
}

static tg_ingest_token_row_t row(const char *id, const char *customer, uint8_t fill, int64_t created)
{
    tg_ingest_token_row_t t;
    memset(&t, 0, sizeof(t));
    snprintf(t.id, sizeof(t.id), "%s", id);
    snprintf(t.name, sizeof(t.name), "name of %s", id);
    snprintf(t.customer_id, sizeof(t.customer_id), "%s", customer);
    memset(t.hash, fill, sizeof(t.hash));
    snprintf(t.prefix, sizeof(t.prefix), "tg_ingest_%c%c%c%c", 'a' + fill % 26, 'b', 'c', 'd');
    t.created_at = created;
    return t;
}

typedef struct {
    char ids[16][TG_ID_MAX];
    size_t n;
} seen_t;

static int on_token(const tg_ingest_token_row_t *t, void *arg)
{
    seen_t *s = arg;
    if (s->n < 16)
        snprintf(s->ids[s->n++], TG_ID_MAX, "%s", t->id);
    return 0;
}

static void test_store_round_trip_and_pages(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    tg_err_t err = {0};
    tg_ingest_token_row_t a = row("itk_a", "", 1, 100), b = row("itk_b", "cus_a", 2, 200), c = row("itk_c", "", 3, 200);
    assert_int_equal(tg_store_ingest_token_insert(st, &a, &err), 0);
    assert_int_equal(tg_store_ingest_token_insert(st, &b, &err), 0);
    assert_int_equal(tg_store_ingest_token_insert(st, &c, &err), 0);
    tg_ingest_token_row_t dup = row("itk_d", "", 2, 300); /* b's hash */
    assert_int_equal(tg_store_ingest_token_insert(st, &dup, &err), TG_EEXIST);

    tg_ingest_token_row_t got;
    assert_int_equal(tg_store_ingest_token_get(st, "itk_b", &got, &err), 0);
    assert_memory_equal(&got, &b, sizeof(got));
    assert_int_equal(tg_store_ingest_token_get(st, "itk_zz", &got, &err), TG_ENOTFOUND);

    /* newest first, ties by id, two at a time: b, c then a */
    tg_page_t page = {.limit = 2};
    tg_page_end_t end;
    seen_t s = {0};
    assert_int_equal(tg_store_ingest_token_page(st, &page, on_token, &s, &end, &err), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.ids[0], "itk_b");
    assert_string_equal(s.ids[1], "itk_c");
    assert_true(end.has_more);
    snprintf(page.after, sizeof(page.after), "%s", end.next);
    assert_int_equal(tg_store_ingest_token_page(st, &page, on_token, &s, &end, &err), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.ids[2], "itk_a");
    assert_false(end.has_more);
    snprintf(page.after, sizeof(page.after), "not-a-cursor");
    assert_int_equal(tg_store_ingest_token_page(st, &page, on_token, &s, &end, &err), TG_EINVAL);

    /* a revocation keeps its first time */
    assert_int_equal(tg_store_ingest_token_set_revoked(st, "itk_b", 500, &err), 0);
    assert_int_equal(tg_store_ingest_token_set_revoked(st, "itk_b", 900, &err), 0);
    assert_int_equal(tg_store_ingest_token_get(st, "itk_b", &got, &err), 0);
    assert_int_equal(got.revoked_at, 500);
    assert_int_equal(tg_store_ingest_token_set_revoked(st, "itk_zz", 500, &err), TG_ENOTFOUND);

    seen_t active = {0};
    assert_int_equal(tg_store_ingest_token_list_active(st, on_token, &active, &err), 0);
    assert_int_equal(active.n, 2);
    assert_true(strcmp(active.ids[0], "itk_b") != 0 && strcmp(active.ids[1], "itk_b") != 0);
}

static int auth(fx_t *f, const char *token, tg_ingest_auth_t *who)
{
    return tg_events_authenticate(f->ev, token, strlen(token), who);
}

static void test_service_create_authenticate_revoke(void **state)
{
    fx_t *f = *state;
    tg_ingest_tokens_ctx_t x = {f->db.st, f->ev, (const uint8_t *)SECRET, strlen(SECRET)};
    tg_err_t err = {0};
    tg_ingest_token_row_t any, scoped, got;
    char s_any[TG_INGEST_SECRET_BUF], s_scoped[TG_INGEST_SECRET_BUF];
    tg_ingest_auth_t who;

    assert_int_equal(tg_ingest_token_create(&x, "nightly jobs", NULL, 1000, &any, s_any, &err), 0);
    assert_int_equal(tg_ingest_token_create(&x, "acme queue", "cus_a", 1001, &scoped, s_scoped, &err), 0);
    assert_int_equal(strncmp(s_any, TG_INGEST_TOKEN_PREFIX, strlen(TG_INGEST_TOKEN_PREFIX)), 0);
    assert_int_equal(strlen(s_any), strlen(TG_INGEST_TOKEN_PREFIX) + 32);
    assert_string_not_equal(s_any, s_scoped);
    assert_int_equal(strncmp(any.prefix, s_any, strlen(any.prefix)), 0);

    /* only the keyed hash is stored */
    assert_int_equal(tg_store_ingest_token_get(f->db.st, any.id, &got, &err), 0);
    uint8_t h[32];
    tg_events_token_hash((const uint8_t *)SECRET, strlen(SECRET), s_any, strlen(s_any), h);
    assert_memory_equal(got.hash, h, sizeof(h));
    assert_null(memmem(&got, sizeof(got), s_any + strlen(TG_INGEST_TOKEN_PREFIX), 16));

    /* at once, with no store in the way */
    assert_int_equal(auth(f, s_any, &who), 0);
    assert_string_equal(who.name, "nightly jobs");
    assert_string_equal(who.customer, "");
    assert_int_equal(auth(f, s_scoped, &who), 0);
    assert_string_equal(who.customer, "cus_a");
    assert_int_equal(auth(f, "configured-token-0123456789", &who), 0);
    assert_string_equal(who.name, "jobs");
    assert_int_equal(auth(f, "tg_ingest_wrong", &who), TG_ENOTFOUND);

    assert_int_equal(tg_ingest_token_revoke(&x, any.id, 2000, &got, &err), 0);
    assert_int_equal(got.revoked_at, 2000);
    assert_int_equal(auth(f, s_any, &who), TG_ENOTFOUND);
    assert_int_equal(auth(f, s_scoped, &who), 0);
    assert_int_equal(tg_ingest_token_revoke(&x, "itk_nope", 2000, &got, &err), TG_ENOTFOUND);

    /* a restart: the table comes back from the store, the revoked token stays out */
    tg_events_close(f->ev);
    unlink(f->idx);
    open_events(f);
    assert_int_equal(auth(f, s_scoped, &who), TG_ENOTFOUND); /* not loaded yet */
    assert_int_equal(tg_events_tokens_load(f->ev, f->db.st, &err), 0);
    assert_int_equal(auth(f, s_scoped, &who), 0);
    assert_string_equal(who.customer, "cus_a");
    assert_int_equal(auth(f, s_any, &who), TG_ENOTFOUND);
}

static void test_service_names_the_field(void **state)
{
    fx_t *f = *state;
    tg_ingest_tokens_ctx_t x = {f->db.st, f->ev, (const uint8_t *)SECRET, strlen(SECRET)};
    tg_err_t err = {0};
    tg_ingest_token_row_t t;
    char secret[TG_INGEST_SECRET_BUF];
    char long_name[TG_NAME_MAX + 1];
    memset(long_name, 'n', TG_NAME_MAX);
    long_name[TG_NAME_MAX] = '\0';
    const char *bad_names[] = {NULL, "", "tab\there", long_name};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        assert_int_equal(tg_ingest_token_create(&x, bad_names[i], NULL, 1000, &t, secret, &err), TG_EINVAL);
        assert_int_equal(strncmp(err.msg, "name:", 5), 0);
    }
    assert_int_equal(tg_ingest_token_create(&x, "ok", "cus_missing", 1000, &t, secret, &err), TG_EINVAL);
    assert_int_equal(strncmp(err.msg, "customer:", 9), 0);
    seen_t s = {0};
    assert_int_equal(tg_store_ingest_token_list_active(f->db.st, on_token, &s, &err), 0);
    assert_int_equal(s.n, 0); /* nothing stored for a refusal */
}

typedef struct {
    fx_t *f;
    const char *stable;
    _Atomic int stop;
    _Atomic long checks, wrong;
} race_t;

static void *authenticate_loop(void *arg)
{
    race_t *r = arg;
    tg_ingest_auth_t who;
    while (!atomic_load(&r->stop)) {
        if (auth(r->f, "configured-token-0123456789", &who) != 0 || strcmp(who.name, "jobs") != 0)
            atomic_fetch_add(&r->wrong, 1);
        if (auth(r->f, r->stable, &who) != 0 || strcmp(who.name, "stable") != 0 || strcmp(who.customer, "cus_b") != 0)
            atomic_fetch_add(&r->wrong, 1);
        atomic_fetch_add(&r->checks, 1);
    }
    return NULL;
}

static void test_tokens_change_while_gateways_read(void **state)
{
    fx_t *f = *state;
    tg_ingest_tokens_ctx_t x = {f->db.st, f->ev, (const uint8_t *)SECRET, strlen(SECRET)};
    tg_err_t err = {0};
    tg_ingest_token_row_t t;
    char stable[TG_INGEST_SECRET_BUF], other[TG_INGEST_SECRET_BUF];
    assert_int_equal(tg_ingest_token_create(&x, "stable", "cus_b", 1000, &t, stable, &err), 0);
    race_t r = {.f = f, .stable = stable};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, authenticate_loop, &r), 0);
    for (int i = 0; i < 60; i++) { /* grows the table past its first capacity (16) and back */
        assert_int_equal(tg_ingest_token_create(&x, "churn", NULL, 1000 + i, &t, other, &err), 0);
        if (i % 3 == 0)
            assert_int_equal(tg_ingest_token_revoke(&x, t.id, 2000 + i, &t, &err), 0);
        if (i % 20 == 0)
            assert_int_equal(tg_events_tokens_load(f->ev, f->db.st, &err), 0);
    }
    while (atomic_load(&r.checks) < 1000) /* bounded by the threads' progress, not by time */
        sched_yield();
    atomic_store(&r.stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&r.wrong), 0);
    tg_ingest_auth_t who;
    assert_int_equal(auth(f, other, &who), 0); /* the last one, i = 59, is in force */
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_round_trip_and_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_create_authenticate_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_names_the_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens_change_while_gateways_read, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
