/* test_keys.c - the key service (keys/keys.c) on a real SQLite file with its own clock: the cap,
 * rotation keeping the old key for the grace period, revocation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/tmpstore.h"
#include "config/config.h"
#include "keys/keys.h"
#include "store/store.h"

#define T0 INT64_C(1767225600)

static const char *yaml = "upstream: {url: \"http://127.0.0.1:3\"}\n"
                          "admin: {token: \"0123456789abcdef0123\", key_grace_seconds: 3600}\n"
                          "keys: {secret: \"0123456789abcdef0123456789abcdef\", max_active_per_customer: 2}\n"
                          "plans:\n"
                          "  free: {price: \"0\"}\n";

static int64_t clock_s;
static int64_t test_now(void)
{
    return clock_s;
}

typedef struct {
    tg_tmpstore_t db;
    tg_config_t *cfg;
    tg_keys_ctx_t x;
} fx_t;

static const uint8_t secret_key[32] = {1, 2, 3};

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    char errbuf[2048];
    assert_int_equal(tg_config_load_string("t.yaml", yaml, strlen(yaml), &f->cfg, errbuf, sizeof(errbuf)), 0);
    assert_int_equal(tg_tmpstore_open(&f->db, "keys"), 0);
    tg_err_t err = {0};
    tg_customer_t c = {0};
    snprintf(c.id, sizeof(c.id), "cus_1");
    snprintf(c.email, sizeof(c.email), "a@b.co");
    snprintf(c.plan_id, sizeof(c.plan_id), "free");
    snprintf(c.status, sizeof(c.status), "active");
    c.created_at = c.anchor_at = T0;
    assert_int_equal(tg_store_customer_insert(f->db.st, &c, &err), 0);
    f->x = (tg_keys_ctx_t){f->cfg, f->db.st, NULL, secret_key, sizeof(secret_key), test_now};
    clock_s = T0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    assert_int_equal(tg_tmpstore_close(&f->db), 0);
    tg_config_free(f->cfg);
    free(f);
    return 0;
}

static uint64_t working(fx_t *f)
{
    uint64_t n = 0;
    tg_err_t err = {0};
    assert_int_equal(tg_store_key_count_active(f->db.st, "cus_1", clock_s, &n, &err), 0);
    return n;
}

static void test_cap(void **state)
{
    fx_t *f = *state;
    tg_key_t k1, k2, k3;
    char s[TG_APIKEY_BUF];
    tg_err_t err = {0};
    assert_int_equal(tg_keys_create(&f->x, "cus_1", "one", 1, &k1, s, &err), 0);
    assert_int_equal(strncmp(s, "tg_live_", 8), 0);
    assert_int_equal(tg_keys_create(&f->x, "cus_1", "two", 0, &k2, s, &err), 0);
    assert_int_equal(strncmp(s, "tg_test_", 8), 0);
    assert_int_equal(tg_keys_create(&f->x, "cus_1", "three", 1, &k3, s, &err), TG_ELIMIT);
    assert_non_null(strstr(err.msg, "the most allowed (2)"));
    assert_int_equal(working(f), 2); /* the refused key was not stored */
    /* a revoked key frees its place */
    assert_int_equal(tg_keys_revoke(&f->x, &k1, &err), 0);
    assert_int_equal(tg_keys_create(&f->x, "cus_1", "three", 1, &k3, s, &err), 0);
}

static void test_rotate_keeps_old_key_for_grace(void **state)
{
    fx_t *f = *state;
    tg_key_t k1, k2, n1, n2;
    char s[TG_APIKEY_BUF];
    tg_err_t err = {0};
    assert_int_equal(tg_keys_create(&f->x, "cus_1", "main", 1, &k1, s, &err), 0);
    assert_int_equal(tg_keys_create(&f->x, "cus_1", "other", 1, &k2, s, &err), 0);
    clock_s = T0 + 100;
    /* at the cap, one rotation at a time: the old key works until the grace ends */
    assert_int_equal(tg_keys_rotate(&f->x, &k1, -1, &n1, s, &err), 0);
    assert_int_equal(k1.expires_at, T0 + 100 + 3600); /* admin.key_grace_seconds */
    assert_string_equal(n1.name, "main (rotated 2026-01-01)"); /* told apart from the old "main" */
    assert_string_equal(n1.customer_id, "cus_1");
    tg_key_t stored;
    assert_int_equal(tg_store_key_get(f->db.st, k1.id, &stored, &err), 0);
    assert_int_equal(stored.expires_at, T0 + 100 + 3600);
    assert_string_equal(tg_keys_status(&stored, clock_s), "expiring");
    assert_int_equal(working(f), 3);
    /* a second rotation would grow past cap + 1: refused, and nothing changed */
    assert_int_equal(tg_keys_rotate(&f->x, &k2, 60, &n2, s, &err), TG_ELIMIT);
    assert_int_equal(tg_store_key_get(f->db.st, k2.id, &stored, &err), 0);
    assert_int_equal(stored.expires_at, 0);
    /* once the grace is over the old key is expired, cannot be rotated, and room is back */
    clock_s = T0 + 100 + 3600;
    assert_int_equal(tg_store_key_get(f->db.st, k1.id, &stored, &err), 0);
    assert_string_equal(tg_keys_status(&stored, clock_s), "expired");
    assert_int_equal(tg_keys_rotate(&f->x, &stored, 60, &n2, s, &err), TG_ESTATE);
    assert_int_equal(working(f), 2);
    assert_int_equal(tg_keys_rotate(&f->x, &k2, 60, &n2, s, &err), 0);
    assert_int_equal(k2.expires_at, clock_s + 60);
}

/* The replacement's name: one " (rotated DATE)" suffix (an earlier one replaced), the base cut to
 * fit; an unnamed key's replacement is "rotated DATE". */
static void test_rotated_names(void **state)
{
    fx_t *f = *state;
    tg_key_t k, n, m;
    char s[TG_APIKEY_BUF], longname[TG_NAME_MAX];
    tg_err_t err = {0};
    assert_int_equal(tg_keys_create(&f->x, "cus_1", "main", 1, &k, s, &err), 0);
    assert_int_equal(tg_keys_rotate(&f->x, &k, 0, &n, s, &err), 0);
    clock_s = T0 + 86400 * 2; /* 2026-01-03 */
    assert_int_equal(tg_keys_rotate(&f->x, &n, 0, &m, s, &err), 0);
    assert_string_equal(m.name, "main (rotated 2026-01-03)");
    assert_int_equal(tg_keys_revoke(&f->x, &m, &err), 0);
    /* a name that only looks alike keeps its text */
    assert_int_equal(tg_keys_create(&f->x, "cus_1", "x (rotated soon)", 1, &k, s, &err), 0);
    assert_int_equal(tg_keys_rotate(&f->x, &k, 0, &n, s, &err), 0);
    assert_string_equal(n.name, "x (rotated soon) (rotated 2026-01-03)");
    assert_int_equal(tg_keys_revoke(&f->x, &n, &err), 0);
    assert_int_equal(tg_keys_create(&f->x, "cus_1", NULL, 1, &k, s, &err), 0);
    assert_int_equal(tg_keys_rotate(&f->x, &k, 0, &n, s, &err), 0);
    assert_string_equal(n.name, "rotated 2026-01-03");
    assert_int_equal(tg_keys_revoke(&f->x, &n, &err), 0);
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(tg_keys_create(&f->x, "cus_1", longname, 1, &k, s, &err), 0);
    assert_int_equal(tg_keys_rotate(&f->x, &k, 0, &n, s, &err), 0);
    assert_int_equal(strlen(n.name), TG_NAME_MAX - 1);
    assert_string_equal(n.name + TG_NAME_MAX - 1 - strlen(" (rotated 2026-01-03)"), " (rotated 2026-01-03)");
}

static void test_revoke(void **state)
{
    fx_t *f = *state;
    tg_key_t k, n;
    char s[TG_APIKEY_BUF];
    tg_err_t err = {0};
    assert_int_equal(tg_keys_create(&f->x, "cus_1", "main", 1, &k, s, &err), 0);
    clock_s = T0 + 5;
    assert_int_equal(tg_keys_revoke(&f->x, &k, &err), 0);
    tg_key_t stored;
    assert_int_equal(tg_store_key_get(f->db.st, k.id, &stored, &err), 0);
    assert_int_equal(stored.revoked_at, T0 + 5);
    assert_string_equal(tg_keys_status(&stored, clock_s), "revoked");
    clock_s = T0 + 50; /* revoking again changes nothing */
    assert_int_equal(tg_keys_revoke(&f->x, &stored, &err), 0);
    assert_int_equal(stored.revoked_at, T0 + 5);
    assert_int_equal(tg_keys_rotate(&f->x, &stored, -1, &n, s, &err), TG_ESTATE);
    assert_int_equal(working(f), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotated_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotate_keeps_old_key_for_grace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
