/* test_store_audit.c - the audit log (store_audit.h, ops/audit.h) on the backend of
 * TG_TEST_BACKEND (SQLite by default, PostgreSQL with TG_TEST_BACKEND=postgres): appends, pages
 * with every filter, joins the caller's transaction, redacts secrets, and the database itself
 * refuses UPDATE and DELETE on the table (not only the store, which has no such call). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/tmpstore.h"
#include "ops/audit.h"
#include "store/store_audit.h"

typedef struct {
    tg_tmpstore_t db;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_int_equal(tg_tmpstore_open(&f->db, "saud"), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int rc = tg_tmpstore_close(&f->db);
    free(f);
    return rc;
}

static void append(tg_store_t *st, int64_t at, const char *actor, const char *action, const char *type, const char *id,
                   const char *before, const char *after)
{
    tg_audit_row_t r;
    memset(&r, 0, sizeof(r));
    r.at_ms = at;
    snprintf(r.actor_kind, sizeof(r.actor_kind), "admin_token");
    snprintf(r.actor_id, sizeof(r.actor_id), "%s", actor);
    snprintf(r.source, sizeof(r.source), "127.0.0.1");
    snprintf(r.action, sizeof(r.action), "%s", action);
    snprintf(r.target_type, sizeof(r.target_type), "%s", type);
    snprintf(r.target_id, sizeof(r.target_id), "%s", id);
    r.before_json = (char *)before;
    r.after_json = (char *)after;
    tg_err_t err = {0};
    int64_t rid = 0;
    assert_int_equal(tg_store_audit_append(st, &r, &rid, &err), 0);
    assert_true(rid > 0);
}

typedef struct {
    char actions[64][TG_AUDIT_ACTION_MAX];
    int64_t ids[64];
    char after[64][128];
    int has_before[64];
    size_t n;
} seen_t;

static int on_row(const tg_audit_row_t *r, void *arg)
{
    seen_t *s = arg;
    if (s->n < 64) {
        snprintf(s->actions[s->n], TG_AUDIT_ACTION_MAX, "%s", r->action);
        snprintf(s->after[s->n], 128, "%s", r->after_json != NULL ? r->after_json : "(null)");
        s->has_before[s->n] = r->before_json != NULL;
        s->ids[s->n] = r->id;
        s->n++;
    }
    return 0;
}

static size_t list(tg_store_t *st, const tg_audit_filter_t *f, seen_t *s)
{
    memset(s, 0, sizeof(*s));
    tg_page_t page = {.limit = 100};
    tg_page_end_t end;
    tg_err_t err = {0};
    assert_int_equal(tg_store_audit_page(st, f, &page, on_row, s, &end, &err), 0);
    assert_false(end.has_more);
    return s->n;
}

static void seed(tg_store_t *st)
{
    append(st, 1000, "fp_a", "customer.create", "customer", "cus_1", NULL, "{\"plan\":\"free\"}");
    append(st, 2000, "fp_a", "customer.plan_change", "customer", "cus_1", "{\"plan\":\"free\"}", "{\"plan\":\"pro\"}");
    append(st, 3000, "cus_1", "key.create", "key", "key_1", NULL, "{\"name\":\"ci\"}");
    append(st, 4000, "fp_b", "key.revoke", "key", "key_1", "{\"revoked\":false}", "{\"revoked\":true}");
    append(st, 5000, "fp_b", "config.reload", "config", "", NULL, NULL);
}

static void test_filters(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    seed(st);
    seen_t s;
    tg_audit_filter_t all = {0};
    assert_int_equal(list(st, &all, &s), 5);
    assert_string_equal(s.actions[0], "config.reload"); /* newest first */
    assert_string_equal(s.actions[4], "customer.create");
    assert_false(s.has_before[4]);
    assert_string_equal(s.after[4], "{\"plan\":\"free\"}");
    assert_string_equal(s.after[0], "(null)");

    tg_audit_filter_t by_actor = {.actor_id = "fp_b"};
    assert_int_equal(list(st, &by_actor, &s), 2);
    tg_audit_filter_t by_action = {.action_prefix = "key."};
    assert_int_equal(list(st, &by_action, &s), 2);
    assert_string_equal(s.actions[0], "key.revoke");
    /* '_' is not a wildcard: "customer.plan_" matches only itself */
    tg_audit_filter_t underscore = {.action_prefix = "customer.plan_"};
    assert_int_equal(list(st, &underscore, &s), 1);
    tg_audit_filter_t no_match = {.action_prefix = "customer.plan%"};
    assert_int_equal(list(st, &no_match, &s), 0);
    tg_audit_filter_t by_target = {.target_type = "customer", .target_id = "cus_1"};
    assert_int_equal(list(st, &by_target, &s), 2);
    tg_audit_filter_t by_type = {.target_type = "key"};
    assert_int_equal(list(st, &by_type, &s), 2);
    /* times in milliseconds do not fit 32 bits: the bounds must be bound as 64-bit values */
    append(st, INT64_C(1796357376223), "fp_c", "clock.advance", "clock", "", NULL, NULL);
    tg_audit_filter_t late = {.from_ms = INT64_C(1796357376000), .to_ms = INT64_C(1796357377000)};
    assert_int_equal(list(st, &late, &s), 1);
    assert_string_equal(s.actions[0], "clock.advance");
    tg_audit_filter_t by_time = {.from_ms = 2000, .to_ms = 4000}; /* [from, to) */
    assert_int_equal(list(st, &by_time, &s), 2);
    assert_string_equal(s.actions[0], "key.create");
    assert_string_equal(s.actions[1], "customer.plan_change");
}

static void test_paging(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    for (int i = 0; i < 7; i++)
        append(st, 1000 + i, "fp_a", "key.create", "key", "key_x", NULL, "{}");
    tg_audit_filter_t all = {0};
    tg_page_t page = {.limit = 3};
    tg_page_end_t end;
    tg_err_t err = {0};
    int64_t last = INT64_MAX;
    size_t total = 0, pages = 0;
    do {
        seen_t s;
        memset(&s, 0, sizeof(s));
        assert_int_equal(tg_store_audit_page(st, &all, &page, on_row, &s, &end, &err), 0);
        for (size_t i = 0; i < s.n; i++) {
            assert_true(s.ids[i] < last); /* strictly newest first, none twice */
            last = s.ids[i];
        }
        total += s.n;
        pages++;
        snprintf(page.after, sizeof(page.after), "%s", end.next);
    } while (end.has_more);
    assert_int_equal(total, 7);
    assert_int_equal(pages, 3);
    snprintf(page.after, sizeof(page.after), "cus_1");
    assert_int_equal(tg_store_audit_page(st, &all, &page, on_row, NULL, &end, &err), TG_EINVAL);
}

static void test_append_only(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    seed(st);
    /* another connection, straight SQL: the database refuses */
    assert_int_not_equal(tg_tmpstore_exec(&f->db, "UPDATE audit_log SET after_json = '{}' WHERE action = 'key.revoke'"),
                         0);
    assert_int_not_equal(tg_tmpstore_exec(&f->db, "DELETE FROM audit_log WHERE action = 'key.revoke'"), 0);
    assert_int_not_equal(tg_tmpstore_exec(&f->db, "DELETE FROM audit_log"), 0);
    if (!tg_tmpstore_is_sqlite(&f->db))
        assert_int_not_equal(tg_tmpstore_exec(&f->db, "TRUNCATE audit_log"), 0);
    seen_t s;
    tg_audit_filter_t all = {0};
    assert_int_equal(list(st, &all, &s), 5);
    tg_audit_filter_t revoke = {.action_prefix = "key.revoke"};
    assert_int_equal(list(st, &revoke, &s), 1);
    assert_string_equal(s.after[0], "{\"revoked\":true}");
}

static void test_joins_transaction(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    tg_err_t err = {0};
    tg_audit_actor_t who = {.kind = TG_AUDIT_ADMIN_TOKEN, .id = "fp_a"};
    assert_int_equal(tg_store_tx_begin(st, &err), 0);
    assert_int_equal(tg_audit_record(st, &who, "customer.update", "customer", "cus_9", NULL, NULL, &err), 0);
    tg_store_tx_rollback(st); /* the change failed: its audit row goes with it */
    seen_t s;
    tg_audit_filter_t all = {0};
    assert_int_equal(list(st, &all, &s), 0);
    assert_int_equal(tg_store_tx_begin(st, &err), 0);
    assert_int_equal(tg_audit_record(st, &who, "customer.update", "customer", "cus_9", NULL, NULL, &err), 0);
    assert_int_equal(tg_store_tx_commit(st, &err), 0);
    assert_int_equal(list(st, &all, &s), 1);
    /* an action is required; a field past its cap is refused */
    assert_int_equal(tg_audit_record(st, &who, "", "customer", "cus_9", NULL, NULL, &err), TG_EINVAL);
    char big[TG_AUDIT_TARGET_MAX + 8];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(tg_audit_record(st, &who, "customer.update", "customer", big, NULL, NULL, &err), TG_EINVAL);
}

typedef struct {
    char before[1024], after[1024];
} one_t;

static int on_one(const tg_audit_row_t *r, void *arg)
{
    one_t *o = arg;
    snprintf(o->before, sizeof(o->before), "%s", r->before_json != NULL ? r->before_json : "");
    snprintf(o->after, sizeof(o->after), "%s", r->after_json != NULL ? r->after_json : "");
    return 1;
}

static void test_redaction(void **state)
{
    fx_t *f = *state;
    tg_store_t *st = f->db.st;
    tg_err_t err = {0};
    tg_audit_actor_t who = {.kind = TG_AUDIT_CUSTOMER, .id = "cus_1", .source = "192.0.2.1"};
    json_t *before = json_pack("{s:s,s:s,s:{s:s,s:s}}", "url", "https://h.example/x", "secret", "whsec_TOPSECRET1",
                               "key", "id", "key_1", "secret", "tg_live_TOPSECRET2");
    json_t *after = json_pack("{s:s,s:s,s:s,s:[{s:s}],s:n}", "password", "hunter2-TOPSECRET3", "csrf_token",
                              "TOPSECRET4", "signing_secret", "TOPSECRET5", "items", "password_hash", "TOPSECRET6",
                              "token", "" /* null stays null */);
    json_object_set_new(after, "token", json_null());
    assert_int_equal(
        tg_audit_record(st, &who, "webhook_endpoint.rotate_secret", "webhook_endpoint", "we_1", before, after, &err),
        0);
    /* the caller's objects are not changed */
    assert_string_equal(json_string_value(json_object_get(before, "secret")), "whsec_TOPSECRET1");
    json_decref(before);
    json_decref(after);
    one_t o;
    memset(&o, 0, sizeof(o));
    tg_page_t page = {.limit = 1};
    tg_page_end_t end;
    tg_audit_filter_t all = {0};
    assert_int_equal(tg_store_audit_page(st, &all, &page, on_one, &o, &end, &err), 0);
    assert_null(strstr(o.before, "TOPSECRET"));
    assert_null(strstr(o.after, "TOPSECRET"));
    assert_non_null(strstr(o.before, "\"url\":\"https://h.example/x\""));
    assert_non_null(strstr(o.before, "\"id\":\"key_1\""));
    assert_non_null(strstr(o.after, "\"token\":null"));
    assert_non_null(strstr(o.after, "[redacted]"));

    char fp1[TG_AUDIT_FINGERPRINT_MAX], fp2[TG_AUDIT_FINGERPRINT_MAX], fp3[TG_AUDIT_FINGERPRINT_MAX];
    tg_audit_fingerprint("admin-token-1", 13, fp1);
    tg_audit_fingerprint("admin-token-1", 13, fp2);
    tg_audit_fingerprint("admin-token-2", 13, fp3);
    assert_string_equal(fp1, fp2);
    assert_string_not_equal(fp1, fp3);
    assert_int_equal(strlen(fp1), 19);
    assert_null(strstr(fp1, "admin"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_joins_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redaction, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
