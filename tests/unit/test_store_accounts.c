/* test_store_accounts.c - the store's accounts side on both backends (a SQLite file, or with
 * TG_TEST_BACKEND=postgres a fresh PostgreSQL database: tests/support/tmpstore.h): portal logins
 * and sessions, sign-up trials, plan-change history, billing failures, whole-table walks and
 * paged lists past one internal chunk, ids whose byte order differs from a locale's, and
 * conflicts that must leave the caller's transaction usable. test_store.c has the rest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/tmpstore.h"
#include "store/store.h"

static int setup(void **state)
{
    tg_tmpstore_t *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    assert_int_equal(tg_tmpstore_open(t, "accounts"), 0);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    tg_tmpstore_t *t = *state;
    assert_int_equal(tg_tmpstore_close(t), 0);
    free(t);
    return 0;
}

static tg_customer_t customer(const char *id, int64_t created_at)
{
    tg_customer_t c = {0};
    snprintf(c.id, sizeof(c.id), "%s", id);
    snprintf(c.email, sizeof(c.email), "%s@example.com", id);
    snprintf(c.name, sizeof(c.name), "Name of %s", id);
    snprintf(c.plan_id, sizeof(c.plan_id), "free");
    snprintf(c.status, sizeof(c.status), "active");
    c.created_at = c.anchor_at = created_at;
    return c;
}

static void add_customer(tg_store_t *st, const char *id, int64_t created_at)
{
    tg_customer_t c = customer(id, created_at);
    tg_err_t err = {0};
    assert_int_equal(tg_store_customer_insert(st, &c, &err), 0);
}

static tg_key_t key(const char *id, const char *customer_id, unsigned n, int64_t created_at)
{
    tg_key_t k = {0};
    snprintf(k.id, sizeof(k.id), "%s", id);
    snprintf(k.customer_id, sizeof(k.customer_id), "%s", customer_id);
    memcpy(k.hash, &n, sizeof(n)); /* unique per n */
    k.hash[31] = 0xA5;
    snprintf(k.prefix, sizeof(k.prefix), "tg_live_%04u", n % 10000);
    k.created_at = created_at;
    return k;
}

/* Portal logins: the email matches whatever its case; the hash travels only through these two
 * calls; sessions by token hash, deleted one by one or all of a customer's. */
static void test_logins_and_sessions(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_err_t err = {0};
    tg_customer_t c = customer("cus_1", 100);
    memset(c.email, 0, sizeof(c.email)); /* compared whole below */
    snprintf(c.email, sizeof(c.email), "Dev@Example.com");
    assert_int_equal(tg_store_customer_insert(t->st, &c, &err), 0);
    add_customer(t->st, "cus_2", 200);

    assert_int_equal(tg_store_customer_set_password(t->st, "cus_1", "$argon2id$v=19$m=65536,t=2,p=1$x$y", &err), 0);
    assert_int_equal(tg_store_customer_set_password(t->st, "cus_404", "h", &err), TG_ENOTFOUND);
    assert_non_null(strstr(err.msg, "cus_404"));
    tg_customer_t got;
    char hash[128];
    assert_int_equal(tg_store_customer_by_email(t->st, "dev@EXAMPLE.com", &got, hash, sizeof(hash), &err), 0);
    assert_memory_equal(&got, &c, sizeof(c));
    assert_string_equal(hash, "$argon2id$v=19$m=65536,t=2,p=1$x$y");
    char small[8]; /* cut to the caller's buffer */
    assert_int_equal(tg_store_customer_by_email(t->st, "Dev@Example.com", &got, small, sizeof(small), &err), 0);
    assert_string_equal(small, "$argon2");
    assert_int_equal(tg_store_customer_by_email(t->st, "cus_2@example.com", &got, hash, sizeof(hash), &err), 0);
    assert_string_equal(got.id, "cus_2");
    assert_string_equal(hash, ""); /* no password set */
    assert_int_equal(tg_store_customer_by_email(t->st, "nobody@example.com", &got, hash, sizeof(hash), &err),
                     TG_ENOTFOUND);
    assert_non_null(strstr(err.msg, "nobody@example.com"));

    tg_session_t s[3];
    for (int i = 0; i < 3; i++) {
        memset(&s[i], 0, sizeof(s[i]));
        memset(s[i].token_hash, 0x10 + i, sizeof(s[i].token_hash));
        s[i].token_hash[0] = 0; /* a zero byte inside the hash travels too */
        snprintf(s[i].customer_id, sizeof(s[i].customer_id), "%s", i < 2 ? "cus_1" : "cus_2");
        snprintf(s[i].csrf_token, sizeof(s[i].csrf_token), "csrf-%d", i);
        s[i].created_at = 1000 + i;
        s[i].expires_at = 5000 + i;
        assert_int_equal(tg_store_session_insert(t->st, &s[i], &err), 0);
    }
    assert_int_equal(tg_store_session_insert(t->st, &s[0], &err), TG_EEXIST);
    tg_session_t g;
    assert_int_equal(tg_store_session_get(t->st, s[1].token_hash, &g, &err), 0);
    assert_memory_equal(&g, &s[1], sizeof(g));
    uint8_t unknown[32];
    memset(unknown, 0x7f, sizeof(unknown));
    assert_int_equal(tg_store_session_get(t->st, unknown, &g, &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_session_delete(t->st, s[0].token_hash, &err), 0);
    assert_int_equal(tg_store_session_delete(t->st, s[0].token_hash, &err), 0); /* gone already: fine */
    assert_int_equal(tg_store_session_get(t->st, s[0].token_hash, &g, &err), TG_ENOTFOUND);
    uint64_t n = 99;
    assert_int_equal(tg_store_session_delete_customer(t->st, "cus_1", &n, &err), 0);
    assert_int_equal(n, 1); /* s[1]; s[0] was deleted before */
    assert_int_equal(tg_store_session_get(t->st, s[1].token_hash, &g, &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_session_get(t->st, s[2].token_hash, &g, &err), 0); /* another customer's */
    assert_int_equal(tg_store_session_delete_customer(t->st, "cus_1", NULL, &err), 0);

    /* The owner's dashboard sessions: their own table (no customer), by hash; a new one removes
     * those expired by its creation time. */
    tg_session_t o[2];
    for (int i = 0; i < 2; i++) {
        memset(&o[i], 0, sizeof(o[i]));
        memset(o[i].token_hash, 0x40 + i, sizeof(o[i].token_hash));
        snprintf(o[i].csrf_token, sizeof(o[i].csrf_token), "owner-csrf-%d", i);
        o[i].created_at = 1000 + 100 * i;
        o[i].expires_at = 1050 + 100 * i;
    }
    assert_int_equal(tg_store_owner_session_insert(t->st, &o[0], &err), 0);
    assert_int_equal(tg_store_owner_session_get(t->st, o[0].token_hash, &g, &err), 0);
    assert_memory_equal(&g, &o[0], sizeof(g));
    assert_int_equal(tg_store_owner_session_get(t->st, s[2].token_hash, &g, &err), TG_ENOTFOUND); /* a portal one */
    assert_int_equal(tg_store_owner_session_insert(t->st, &o[1], &err), 0);                      /* at 1100 > 1050 */
    assert_int_equal(tg_store_owner_session_get(t->st, o[0].token_hash, &g, &err), TG_ENOTFOUND);
    assert_int_equal(tg_store_owner_session_get(t->st, o[1].token_hash, &g, &err), 0);
    assert_int_equal(tg_store_owner_session_delete(t->st, o[1].token_hash, &err), 0);
    assert_int_equal(tg_store_owner_session_get(t->st, o[1].token_hash, &g, &err), TG_ENOTFOUND);
}

static void test_trials_and_plan_changes(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_err_t err = {0};
    add_customer(t->st, "cus_1", 100);
    int by_email = -1, by_address = -1;
    assert_int_equal(tg_store_trial_used(t->st, "dev@example.com", "203.0.113.0/24", 0, &by_email, &by_address, &err),
                     0);
    assert_int_equal(by_email, 0);
    assert_int_equal(by_address, 0);
    assert_int_equal(tg_store_trial_record(t->st, "dev@example.com", "203.0.113.0/24", "cus_1", 1000, &err), 0);
    assert_int_equal(tg_store_trial_used(t->st, "dev@example.com", "198.51.100.0/24", 0, &by_email, &by_address, &err),
                     0);
    assert_int_equal(by_email, 1);
    assert_int_equal(by_address, 0);
    /* the address counts from address_since on (inclusive) */
    assert_int_equal(
        tg_store_trial_used(t->st, "other@example.com", "203.0.113.0/24", 1000, &by_email, &by_address, &err), 0);
    assert_int_equal(by_email, 0);
    assert_int_equal(by_address, 1);
    assert_int_equal(
        tg_store_trial_used(t->st, "other@example.com", "203.0.113.0/24", 1001, &by_email, &by_address, &err), 0);
    assert_int_equal(by_address, 0);

    assert_int_equal(tg_store_plan_change_add(t->st, "cus_1", "free", "pro", "upgrade", 10, &err), 0);
    assert_int_equal(tg_store_plan_change_add(t->st, "cus_1", "pro", "free", "downgrade", 20, &err), 0);
    assert_int_equal(tg_store_plan_change_add(t->st, "cus_1", "free", "pro", "upgrade", 30, &err), 0);
    uint64_t n = 99;
    assert_int_equal(tg_store_plan_change_count(t->st, "upgrade", 10, 30, &n, &err), 0);
    assert_int_equal(n, 2); /* [since, until] inclusive */
    assert_int_equal(tg_store_plan_change_count(t->st, "upgrade", 11, 29, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(tg_store_plan_change_count(t->st, "downgrade", 0, 100, &n, &err), 0);
    assert_int_equal(n, 1);
}

typedef struct {
    tg_billing_failure_t f[8];
    int n;
} failures_t;

static int on_failure(const tg_billing_failure_t *f, void *arg)
{
    failures_t *s = arg;
    assert_true(s->n < 8);
    s->f[s->n++] = *f;
    return 0;
}

/* One row per customer: a repeat counts its runs and keeps the first time; pages in id order. */
static void test_billing_failures(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_err_t err = {0};
    assert_int_equal(tg_store_billing_failure_set(t->st, "cus_b", "store", "first", 100, &err), 0);
    assert_int_equal(tg_store_billing_failure_set(t->st, "cus_b", "pricing", "second", 200, &err), 0);
    assert_int_equal(tg_store_billing_failure_set(t->st, "cus_a", "store", "a", 150, &err), 0);
    /* a message past its cap is cut; a character the cut would split is not kept half */
    char longmsg[2 * TG_FAILURE_MSG_MAX];
    size_t i = 0;
    for (; i + 2 < sizeof(longmsg); i += 2)
        memcpy(longmsg + i, "\xc3\xa9", 2); /* é */
    longmsg[i] = '\0';
    assert_int_equal(tg_store_billing_failure_set(t->st, "cus_c", "store", longmsg, 300, &err), 0);
    uint64_t n = 0;
    assert_int_equal(tg_store_billing_failure_count(t->st, &n, &err), 0);
    assert_int_equal(n, 3);

    failures_t seen = {0};
    tg_page_t page = {2, ""};
    tg_page_end_t end;
    assert_int_equal(tg_store_billing_failure_list(t->st, &page, on_failure, &seen, &end, &err), 0);
    assert_true(end.has_more);
    assert_string_equal(end.next, "cus_b");
    memcpy(page.after, end.next, sizeof(page.after));
    assert_int_equal(tg_store_billing_failure_list(t->st, &page, on_failure, &seen, &end, &err), 0);
    assert_false(end.has_more);
    assert_int_equal(seen.n, 3);
    assert_string_equal(seen.f[0].customer_id, "cus_a");
    assert_string_equal(seen.f[1].customer_id, "cus_b");
    assert_string_equal(seen.f[1].type, "pricing");
    assert_string_equal(seen.f[1].message, "second");
    assert_int_equal(seen.f[1].first_at, 100);
    assert_int_equal(seen.f[1].last_at, 200);
    assert_int_equal(seen.f[1].runs, 2);
    assert_string_equal(seen.f[2].customer_id, "cus_c");
    size_t len = strlen(seen.f[2].message);
    assert_true(len >= TG_FAILURE_MSG_MAX - 2 && len <= TG_FAILURE_MSG_MAX - 1);
    assert_memory_equal(seen.f[2].message, longmsg, TG_FAILURE_MSG_MAX - 2); /* whole characters kept */

    snprintf(page.after, sizeof(page.after), "1000/cus_a"); /* another list's cursor */
    assert_int_equal(tg_store_billing_failure_list(t->st, &page, on_failure, &seen, &end, &err), TG_EINVAL);
    assert_int_equal(tg_store_billing_failure_clear(t->st, "cus_b", &err), 0);
    assert_int_equal(tg_store_billing_failure_clear(t->st, "cus_b", &err), 0); /* nothing to clear: fine */
    assert_int_equal(tg_store_billing_failure_count(t->st, &n, &err), 0);
    assert_int_equal(n, 2);
}

/* ---- whole-table walks and pages ---- */

#define MANY 1203 /* past the PostgreSQL backend's 500-row chunks, and not a multiple of them */

typedef struct {
    char (*ids)[TG_ID_MAX];
    int64_t *nums;
    int n, stop_after;
} walked_t;

static int on_customer(const tg_customer_t *c, void *arg)
{
    walked_t *w = arg;
    assert_true(w->n < MANY + 1);
    snprintf(w->ids[w->n], TG_ID_MAX, "%s", c->id);
    w->nums[w->n++] = c->created_at;
    return w->n == w->stop_after;
}

static int on_key(const tg_key_t *k, void *arg)
{
    walked_t *w = arg;
    assert_true(w->n < MANY + 1);
    snprintf(w->ids[w->n], TG_ID_MAX, "%s", k->id);
    w->nums[w->n++] = k->created_at;
    return w->n == w->stop_after;
}

static walked_t walked_new(void)
{
    walked_t w = {calloc(MANY + 1, TG_ID_MAX), calloc(MANY + 1, sizeof(int64_t)), 0, -1};
    assert_non_null(w.ids);
    assert_non_null(w.nums);
    return w;
}

static void walked_free(walked_t *w)
{
    free(w->ids);
    free(w->nums);
}

/* n items, each once, ordered by (num, then id bytewise): newest first when desc. */
static void assert_ordered(const walked_t *w, int desc, int n)
{
    assert_int_equal(w->n, n);
    for (int i = 1; i < w->n; i++) {
        int64_t a = w->nums[i - 1], b = w->nums[i];
        assert_true(desc ? a >= b : a <= b);
        if (a == b)
            assert_true(strcmp(w->ids[i - 1], w->ids[i]) < 0); /* strictly: no repeats */
    }
}

/* An id whose byte order differs from a locale's: upper case sorts before lower case. */
static void many_id(char out[TG_ID_MAX], const char *prefix, int i)
{
    snprintf(out, TG_ID_MAX, "%s_%c%04d", prefix, i % 2 ? 'a' : 'B', i);
}

static void test_walks_and_pages(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_err_t err = {0};
    add_customer(t->st, "cus_keys", 1);
    for (int i = 0; i < MANY; i++) {
        char id[TG_ID_MAX];
        many_id(id, "cus", i);
        add_customer(t->st, id, 1000 + i / 7); /* seven share each second */
        many_id(id, "key", i);
        tg_key_t k = key(id, "cus_keys", (unsigned)i, 5000 - i / 5);
        assert_int_equal(tg_store_key_insert(t->st, &k, &err), 0);
    }

    /* customers: newest first, then id (bytewise: upper case first) */
    walked_t w = walked_new();
    assert_int_equal(tg_store_customer_list(t->st, on_customer, &w, &err), 0);
    assert_ordered(&w, 1, MANY + 1);
    assert_string_equal(w.ids[0], "cus_B1198"); /* 1197..1202 share the newest second */
    assert_string_equal(w.ids[1], "cus_B1200");
    assert_string_equal(w.ids[2], "cus_B1202");
    assert_string_equal(w.ids[3], "cus_a1197");
    assert_string_equal(w.ids[MANY], "cus_keys");
    /* the same order page by page */
    tg_page_t page = {TG_PAGE_MAX, ""};
    tg_page_end_t end;
    walked_t p = walked_new();
    assert_int_equal(tg_store_customer_page(t->st, &page, on_customer, &p, &end, &err), 0);
    assert_true(end.has_more);
    memcpy(page.after, end.next, sizeof(page.after));
    assert_int_equal(tg_store_customer_page(t->st, &page, on_customer, &p, &end, &err), 0);
    assert_false(end.has_more);
    assert_int_equal(p.n, MANY + 1);
    for (int i = 0; i <= MANY; i++)
        assert_string_equal(p.ids[i], w.ids[i]);
    walked_free(&p);
    /* a non-zero return stops the walk, in the middle of a chunk too */
    w.n = 0;
    w.stop_after = 777;
    assert_int_equal(tg_store_customer_list(t->st, on_customer, &w, &err), 0);
    assert_int_equal(w.n, 777);
    walked_free(&w);

    /* everyone's keys oldest first; one customer's newest first, and page by page the same */
    w = walked_new();
    assert_int_equal(tg_store_key_list(t->st, NULL, on_key, &w, &err), 0);
    assert_ordered(&w, 0, MANY);
    walked_free(&w);
    w = walked_new();
    assert_int_equal(tg_store_key_list(t->st, "cus_keys", on_key, &w, &err), 0);
    assert_ordered(&w, 1, MANY);
    p = walked_new();
    tg_page_t kp = {100, ""};
    int pages = 0;
    do {
        assert_int_equal(tg_store_key_page(t->st, "cus_keys", &kp, on_key, &p, &end, &err), 0);
        memcpy(kp.after, end.next, sizeof(kp.after));
        pages++;
    } while (end.has_more && pages < 20);
    assert_int_equal(pages, (MANY + 99) / 100);
    assert_int_equal(p.n, MANY);
    for (int i = 0; i < MANY; i++)
        assert_string_equal(p.ids[i], w.ids[i]);
    walked_free(&p);
    walked_free(&w);
    kp = (tg_page_t){0, ""};
    assert_int_equal(tg_store_key_page(t->st, "cus_keys", &kp, on_key, &w, &end, &err), TG_EINVAL);
}

/* Lists in byte order of ids whatever the database's collation: on PostgreSQL a database made
 * with an ICU en-US collation (which puts "cus_a" before "cus_B"), on SQLite the usual file. A
 * page boundary compared in one order and rows sorted in another would skip or repeat rows. */
static void test_lists_in_byte_order_under_a_locale(void **state)
{
    tg_tmpstore_t *t = *state, icu = {0};
    tg_store_t *st = t->st;
    tg_err_t err = {0};
    if (!tg_tmpstore_is_sqlite(t)) {
        char sql[256];
        snprintf(icu.pg_server, sizeof(icu.pg_server), "%s", t->pg_server);
        snprintf(icu.pg_db, sizeof(icu.pg_db), "%.40s_icu", t->pg_db);
        assert_int_equal(tg_tmpstore_pg_url(icu.pg_server, icu.pg_db, icu.url, sizeof(icu.url)), 0);
        snprintf(sql, sizeof(sql),
                 "CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8' LOCALE_PROVIDER icu"
                 " ICU_LOCALE 'en-US'",
                 icu.pg_db);
        assert_int_equal(tg_tmpstore_pg_drop(&icu), 0); /* a failed run's leftover */
        assert_int_equal(tg_tmpstore_pg_exec(icu.pg_server, sql), 0);
        assert_int_equal(tg_store_open(icu.url, &icu.st, &err), 0);
        assert_int_equal(tg_store_migrate(icu.st, &err), 0);
        st = icu.st;
    }
    static const char *const ids[] = {"cus_a", "cus_B", "cus_c", "cus_D", "cus_e"};
    for (size_t i = 0; i < 5; i++) {
        add_customer(st, ids[i], 1000); /* one second: the ids alone decide the order */
        char kid[TG_ID_MAX];
        snprintf(kid, sizeof(kid), "key%s", ids[i] + 3);
        tg_key_t k = key(kid, "cus_a", (unsigned)i, 2000);
        assert_int_equal(tg_store_key_insert(st, &k, &err), 0);
    }
    static const char *const want[] = {"cus_B", "cus_D", "cus_a", "cus_c", "cus_e"};
    walked_t w = walked_new();
    assert_int_equal(tg_store_customer_list(st, on_customer, &w, &err), 0);
    assert_int_equal(w.n, 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(w.ids[i], want[i]);
    w.n = 0; /* pages of two: each customer once, in the same order */
    tg_page_t page = {2, ""};
    tg_page_end_t end;
    int pages = 0;
    do {
        assert_int_equal(tg_store_customer_page(st, &page, on_customer, &w, &end, &err), 0);
        memcpy(page.after, end.next, sizeof(page.after));
    } while (end.has_more && ++pages < 5);
    assert_int_equal(w.n, 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(w.ids[i], want[i]);
    w.n = 0;
    tg_page_t kp = {2, ""};
    pages = 0;
    do {
        assert_int_equal(tg_store_key_page(st, "cus_a", &kp, on_key, &w, &end, &err), 0);
        memcpy(kp.after, end.next, sizeof(kp.after));
    } while (end.has_more && ++pages < 5);
    assert_int_equal(w.n, 5);
    assert_string_equal(w.ids[0], "key_B");
    assert_string_equal(w.ids[4], "key_e");
    w.n = 0;
    assert_int_equal(tg_store_key_list(st, NULL, on_key, &w, &err), 0);
    assert_int_equal(w.n, 5);
    assert_string_equal(w.ids[0], "key_B");
    assert_string_equal(w.ids[1], "key_D");
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(tg_store_billing_failure_set(st, ids[i], "store", "x", 1, &err), 0);
    tg_page_t fp = {2, "cus_B"};
    failures_t seen = {0};
    assert_int_equal(tg_store_billing_failure_list(st, &fp, on_failure, &seen, &end, &err), 0);
    assert_int_equal(seen.n, 2);
    assert_string_equal(seen.f[0].customer_id, "cus_D");
    assert_string_equal(seen.f[1].customer_id, "cus_a");
    walked_free(&w);
    if (icu.st != NULL) {
        tg_store_close(icu.st);
        assert_int_equal(tg_tmpstore_pg_drop(&icu), 0);
    }
}

typedef struct {
    tg_invoice_t inv[8];
    int n;
} invoices_t;

static int on_invoice(const tg_invoice_t *inv, void *arg)
{
    invoices_t *s = arg;
    assert_true(s->n < 8);
    s->inv[s->n] = *inv;
    s->inv[s->n].body = strdup(inv->body); /* the store frees its copy after the callback */
    s->n++;
    return 0;
}

static void invoices_free(invoices_t *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->inv[i].body);
    s->n = 0;
}

/* Invoices newest period first, then id; every column read back; a customer's only. */
static void test_invoice_page(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_err_t err = {0};
    add_customer(t->st, "cus_1", 1);
    add_customer(t->st, "cus_2", 1);
    assert_int_equal(tg_tmpstore_exec(t, "INSERT INTO invoices (id, customer_id, period_start, period_end, status,"
                                         " number, currency, total, body, created_at, finalized_at, closed_at, held)"
                                         " VALUES"
                                         " ('in_a', 'cus_1', 100, 200, 'paid', 'TG-2026-000001', 'usd', 1500,"
                                         "  '{\"lines\":[]}', 210, 220, 230, 0),"
                                         " ('in_B', 'cus_2', 200, 300, 'draft', NULL, 'eur', 7, '{}', 310, 0, 0, 1),"
                                         " ('in_c', 'cus_1', 200, 300, 'open', 'TG-2026-000002', 'usd', 9, '{}',"
                                         "  310, 320, 0, 0)"),
                     0);
    invoices_t s = {0};
    tg_page_t page = {2, ""};
    tg_page_end_t end;
    assert_int_equal(tg_store_invoice_page(t->st, NULL, &page, on_invoice, &s, &end, &err), 0);
    assert_true(end.has_more);
    assert_string_equal(end.next, "200/in_c");
    memcpy(page.after, end.next, sizeof(page.after));
    assert_int_equal(tg_store_invoice_page(t->st, NULL, &page, on_invoice, &s, &end, &err), 0);
    assert_false(end.has_more);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.inv[0].id, "in_B"); /* 'B' < 'c' bytewise */
    assert_string_equal(s.inv[0].number, "");
    assert_true(s.inv[0].held);
    assert_string_equal(s.inv[0].currency, "eur");
    assert_string_equal(s.inv[1].id, "in_c");
    assert_string_equal(s.inv[2].id, "in_a");
    assert_string_equal(s.inv[2].customer_id, "cus_1");
    assert_int_equal(s.inv[2].period_start, 100);
    assert_int_equal(s.inv[2].period_end, 200);
    assert_string_equal(s.inv[2].status, "paid");
    assert_string_equal(s.inv[2].number, "TG-2026-000001");
    assert_int_equal(s.inv[2].total, 1500);
    assert_string_equal(s.inv[2].body, "{\"lines\":[]}");
    assert_int_equal(s.inv[2].created_at, 210);
    assert_int_equal(s.inv[2].finalized_at, 220);
    assert_int_equal(s.inv[2].closed_at, 230);
    assert_false(s.inv[2].held);
    invoices_free(&s);

    page = (tg_page_t){10, ""};
    assert_int_equal(tg_store_invoice_page(t->st, "cus_1", &page, on_invoice, &s, &end, &err), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.inv[0].id, "in_c");
    assert_string_equal(s.inv[1].id, "in_a");
    invoices_free(&s);
    snprintf(page.after, sizeof(page.after), "cus_1");
    assert_int_equal(tg_store_invoice_page(t->st, "cus_1", &page, on_invoice, &s, &end, &err), TG_EINVAL);
}

/* A refused write inside a transaction is an answer, not the end of the transaction: SQLite
 * fails the statement only, and PostgreSQL (which aborts a transaction on any failed statement)
 * must not be led into one by a conflict the store can foresee. */
static void test_conflicts_keep_the_transaction(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_err_t err = {0};
    add_customer(t->st, "cus_1", 1);
    tg_key_t k = key("key_1", "cus_1", 1, 1);
    assert_int_equal(tg_store_key_insert(t->st, &k, &err), 0);

    assert_int_equal(tg_store_tx_begin(t->st, &err), 0);
    tg_customer_t dup = customer("cus_1", 2);
    assert_int_equal(tg_store_customer_insert(t->st, &dup, &err), TG_EEXIST);
    assert_non_null(strstr(err.msg, "email cus_1@example.com")); /* both taken: the email is named */
    snprintf(dup.email, sizeof(dup.email), "new@example.com");
    assert_int_equal(tg_store_customer_insert(t->st, &dup, &err), TG_EEXIST);
    assert_non_null(strstr(err.msg, "id cus_1"));
    dup = customer("cus_9", 2);
    snprintf(dup.email, sizeof(dup.email), "CUS_1@example.com");
    assert_int_equal(tg_store_customer_insert(t->st, &dup, &err), TG_EEXIST);
    assert_non_null(strstr(err.msg, "email CUS_1@example.com"));
    tg_key_t same = key("key_1", "cus_1", 2, 1);
    assert_int_equal(tg_store_key_insert(t->st, &same, &err), TG_EEXIST);
    tg_key_t orphan = key("key_2", "cus_nobody", 3, 1);
    assert_int_equal(tg_store_key_insert(t->st, &orphan, &err), TG_ENOTFOUND);
    add_customer(t->st, "cus_2", 3);
    tg_customer_t second = customer("cus_2", 3);
    snprintf(second.email, sizeof(second.email), "Cus_1@Example.com");
    assert_int_equal(tg_store_customer_update(t->st, &second, &err), TG_EEXIST);
    assert_non_null(strstr(err.msg, "Cus_1@Example.com"));
    tg_session_t s = {0};
    snprintf(s.customer_id, sizeof(s.customer_id), "cus_2");
    assert_int_equal(tg_store_session_insert(t->st, &s, &err), 0);
    assert_int_equal(tg_store_session_insert(t->st, &s, &err), TG_EEXIST);
    tg_key_t k2 = key("key_2", "cus_2", 4, 3);
    assert_int_equal(tg_store_key_insert(t->st, &k2, &err), 0); /* the transaction still works */
    assert_int_equal(tg_store_tx_commit(t->st, &err), 0);

    tg_customer_t got;
    assert_int_equal(tg_store_customer_get(t->st, "cus_2", &got, &err), 0);
    assert_string_equal(got.email, "cus_2@example.com"); /* the refused update changed nothing */
    tg_key_t gk;
    assert_int_equal(tg_store_key_get(t->st, "key_2", &gk, &err), 0);
    assert_memory_equal(&gk, &k2, sizeof(gk));
    assert_int_equal(tg_store_customer_get(t->st, "cus_9", &got, &err), TG_ENOTFOUND);
}

typedef struct {
    tg_store_t *st;
    tg_customer_t c;
    int rc;
    tg_err_t err;
} racer_t;

static void *insert_racer(void *arg)
{
    racer_t *r = arg;
    r->rc = tg_store_customer_insert(r->st, &r->c, &r->err);
    return NULL;
}

/* 1 once a session of this database waits for a lock (the racer behind the open transaction);
 * a bounded poll, not a sleep: 0 if that never happens within about 10 s of polling. */
static int pg_someone_waits(const char *url)
{
    PGconn *c = PQconnectdb(url);
    int seen = 0;
    for (int i = 0; i < 20000 && !seen && PQstatus(c) == CONNECTION_OK; i++) {
        PGresult *r = PQexec(c, "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()"
                                " AND wait_event_type = 'Lock'");
        seen = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "0") != 0;
        PQclear(r);
    }
    PQfinish(c);
    return seen;
}

/* Two nodes sign up the same email at once: the second is told the email is taken (TG_EEXIST
 * naming the email), whether its insert ran before or after the first one's commit. On
 * PostgreSQL the race is made certain: the first commits only once the second waits for it. */
static void test_same_email_from_two_connections(void **state)
{
    tg_tmpstore_t *t = *state;
    tg_err_t err = {0};
    racer_t r = {0};
    r.c = customer("cus_2", 2);
    snprintf(r.c.email, sizeof(r.c.email), "Same@Example.com");
    assert_int_equal(tg_store_open(t->url, &r.st, &err), 0);
    tg_customer_t first = customer("cus_1", 1);
    snprintf(first.email, sizeof(first.email), "same@example.com");
    assert_int_equal(tg_store_tx_begin(t->st, &err), 0);
    assert_int_equal(tg_store_customer_insert(t->st, &first, &err), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, insert_racer, &r), 0);
    if (!tg_tmpstore_is_sqlite(t))
        assert_true(pg_someone_waits(t->url));
    assert_int_equal(tg_store_tx_commit(t->st, &err), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(r.rc, TG_EEXIST);
    assert_non_null(strstr(r.err.msg, "email Same@Example.com"));
    tg_store_close(r.st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_logins_and_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trials_and_plan_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_billing_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_walks_and_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lists_in_byte_order_under_a_locale, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invoice_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflicts_keep_the_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_email_from_two_connections, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
