/* test_reload.c - reloading the configuration: the generations kept (config_live.h), the
 * settings a reload keeps (tg_config_keep_restart_settings), the directory's move to the new
 * plans (tg_accounts_rebind) and tg_reload_run on a real file; readers racing a publish (run
 * under TSan too: Makefile TSAN_UNIT_BINS). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config_live.h"
#include "gateway/accounts.h"
#include "ops/reload.h"

#define BASE                                                                                                   \
    "upstream: {url: \"http://127.0.0.1:3\"}\n"                                                                \
    "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"                                                   \
    "routes:\n"                                                                                                \
    "  - {match: \"POST /v1/vision/*\", weight: 10}\n"

static const char *v1 = "server: {listen: \"127.0.0.1:1\", admin_listen: \"127.0.0.1:2\"}\n"
                        "admin: {token: \"0123456789abcdef0123\"}\n" BASE
                        "plans:\n"
                        "  free: {price: \"0\", rate_limit: 5/min, burst: 3}\n"
                        "  pro: {price: \"199\", rate_limit: 1000/sec, burst: 1000}\n";

/* the listener, the admin token and pro's rate changed */
static const char *v2 = "server: {listen: \"127.0.0.1:9\", admin_listen: \"127.0.0.1:2\"}\n"
                        "admin: {token: \"another-token-0123456789\"}\n" BASE
                        "plans:\n"
                        "  free: {price: \"0\", rate_limit: 5/min, burst: 3}\n"
                        "  pro: {price: \"199\", rate_limit: 2000/sec, burst: 2000}\n";

/* pro removed */
static const char *v3 = "server: {listen: \"127.0.0.1:1\", admin_listen: \"127.0.0.1:2\"}\n"
                        "admin: {token: \"0123456789abcdef0123\"}\n" BASE
                        "plans:\n"
                        "  free: {price: \"0\", rate_limit: 5/min, burst: 3}\n";

static tg_config_t *load(const char *yaml)
{
    char errbuf[2048];
    tg_config_t *cfg = NULL;
    int rc = tg_config_load_string("test.yaml", yaml, strlen(yaml), &cfg, errbuf, sizeof(errbuf));
    if (rc != 0)
        fprintf(stderr, "%s", errbuf);
    assert_int_equal(rc, 0);
    return cfg;
}

static void put(tg_accounts_t *a, const char *id, const char *plan)
{
    tg_customer_t c = {0};
    snprintf(c.id, sizeof(c.id), "%s", id);
    snprintf(c.plan_id, sizeof(c.plan_id), "%s", plan);
    snprintf(c.status, sizeof(c.status), "active");
    tg_err_t err = {0};
    assert_int_equal(tg_accounts_put_customer(a, &c, &err), 0);
}

static void test_keep_restart_settings(void **state)
{
    (void)state;
    tg_config_t *cur = load(v1), *next = load(v2);
    char names[256];
    assert_int_equal(tg_config_keep_restart_settings(next, cur, names, sizeof(names)), 2);
    assert_string_equal(names, "server.listen, admin.token");
    assert_string_equal(next->server.listen, "127.0.0.1:1");
    assert_string_equal(next->admin.token, "0123456789abcdef0123");
    /* what a reload changes is left as the file says */
    assert_int_equal(tg_config_find_plan(next, "pro")->rate_limit.count, 2000);
    /* same settings: nothing named */
    assert_int_equal(tg_config_keep_restart_settings(next, cur, names, sizeof(names)), 0);
    assert_string_equal(names, "");
    tg_config_free(cur);
    tg_config_free(next);

    /* decide: the decision paths (Envoy's among them) are registered, and their token hashed, at
     * start, so a reload neither turns them on or off nor changes the token */
    char with_decide[1024];
    snprintf(with_decide, sizeof(with_decide), "decide: {token: \"decide-token-0123456789\"}\n%s", v1);
    cur = load(v1), next = load(with_decide);
    assert_int_equal(tg_config_keep_restart_settings(next, cur, names, sizeof(names)), 2);
    assert_string_equal(names, "decide, decide.token");
    assert_int_equal(next->decide.enabled, 0);
    assert_null(next->decide.token);
    tg_config_free(next);
    next = load(with_decide);
    tg_config_t *other = load(v1);
    tg_config_free(cur);
    cur = next, next = other;
    assert_int_equal(tg_config_keep_restart_settings(next, cur, names, sizeof(names)), 2);
    assert_int_equal(next->decide.enabled, 1);
    assert_string_equal(next->decide.token, "decide-token-0123456789");
    tg_config_free(cur);
    tg_config_free(next);

    /* billing.close_connections and close_cpus: the closer's connections and its threads' CPUs
     * are set when it starts, so a reload keeps them and names them */
    char with_closer[1024];
    snprintf(with_closer, sizeof(with_closer), "billing: {close_connections: 3, close_cpus: \"0\"}\n%s", v1);
    cur = load(v1), next = load(with_closer);
    assert_int_equal(tg_config_keep_restart_settings(next, cur, names, sizeof(names)), 2);
    assert_string_equal(names, "billing.close_connections, billing.close_cpus");
    assert_int_equal(next->billing.close_connections, cur->billing.close_connections);
    assert_null(next->billing.close_cpus);
    tg_config_free(cur);
    tg_config_free(next);
}

static void test_rebind_moves_plans_by_id(void **state)
{
    (void)state;
    tg_config_t *cur = load(v1), *next = load(v2), *gone = load(v3);
    tg_accounts_t *a = tg_accounts_new(cur);
    put(a, "cus_1", "pro");
    put(a, "cus_2", "pro");
    put(a, "cus_3", "free");
    tg_err_t err = {0};
    /* pro has two customers: refused, and nothing moved */
    assert_int_equal(tg_accounts_rebind(a, gone, &err), TG_ESTATE);
    assert_non_null(strstr(err.msg, "plan \"pro\" is removed but 2 customers are on it"));
    assert_ptr_equal(tg_account_plan(tg_accounts_find(a, "cus_1")), tg_config_find_plan(cur, "pro"));
    assert_ptr_equal(tg_account_plan(tg_accounts_find(a, "cus_3")), tg_config_find_plan(cur, "free"));

    /* pro billed yearly, or in euros: refused too (periods and invoices already under way) */
    tg_config_t *yearly = load("server: {listen: \"127.0.0.1:1\", admin_listen: \"127.0.0.1:2\"}\n"
                               "admin: {token: \"0123456789abcdef0123\"}\n" BASE
                               "plans:\n"
                               "  free: {price: \"0\", rate_limit: 5/min, burst: 3}\n"
                               "  pro: {price: \"1999\", interval: year}\n");
    assert_int_equal(tg_accounts_rebind(a, yearly, &err), TG_ESTATE);
    assert_non_null(strstr(err.msg, "plan \"pro\" changes its interval but 2 customers are on it"));
    tg_config_t *euros = load("server: {listen: \"127.0.0.1:1\", admin_listen: \"127.0.0.1:2\"}\n"
                              "admin: {token: \"0123456789abcdef0123\"}\n" BASE
                              "plans:\n"
                              "  free: {price: \"0\", rate_limit: 5/min, burst: 3}\n"
                              "  pro: {price: \"199\", currency: eur}\n");
    assert_int_equal(tg_accounts_rebind(a, euros, &err), TG_ESTATE);
    assert_non_null(strstr(err.msg, "plan \"pro\" changes its currency but 2 customers are on it"));
    assert_ptr_equal(tg_account_plan(tg_accounts_find(a, "cus_1")), tg_config_find_plan(cur, "pro"));

    assert_int_equal(tg_accounts_rebind(a, next, &err), 0);
    assert_ptr_equal(tg_account_plan(tg_accounts_find(a, "cus_1")), tg_config_find_plan(next, "pro"));
    assert_int_equal(tg_account_plan(tg_accounts_find(a, "cus_2"))->rate_limit.count, 2000);
    assert_ptr_equal(tg_account_plan(tg_accounts_find(a, "cus_3")), tg_config_find_plan(next, "free"));
    /* plan look-ups now use next */
    put(a, "cus_4", "pro");
    assert_ptr_equal(tg_account_plan(tg_accounts_find(a, "cus_4")), tg_config_find_plan(next, "pro"));
    tg_accounts_free(a);
    tg_config_free(cur);
    tg_config_free(next);
    tg_config_free(gone);
    tg_config_free(yearly);
    tg_config_free(euros);
}

typedef struct {
    char path[64];
    int hook_calls;
    char log[4096];
} run_fx_t;

static void on_log(void *arg, const char *line)
{
    run_fx_t *f = arg;
    size_t used = strlen(f->log);
    snprintf(f->log + used, sizeof(f->log) - used, "%s\n", line);
}

static int on_hook(const tg_config_t *next, void *arg, tg_err_t *err)
{
    run_fx_t *f = arg;
    f->hook_calls++;
    return tg_config_find_plan(next, "pro") != NULL ? 0 : tg_errf(err, TG_EIO, "no pro plan");
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_reload_run(void **state)
{
    (void)state;
    run_fx_t f = {0};
    snprintf(f.path, sizeof(f.path), "/tmp/tg-reload-XXXXXX");
    int fd = mkstemp(f.path);
    assert_true(fd >= 0);
    close(fd);
    write_file(f.path, v1);
    char errbuf[2048];
    tg_config_t *first = NULL;
    assert_int_equal(tg_config_load(f.path, &first, errbuf, sizeof(errbuf)), 0);
    tg_config_live_t *live = tg_config_live_new(first);
    tg_accounts_t *a = tg_accounts_new(first);
    put(a, "cus_1", "pro");
    tg_reload_deps_t d = {.live = live, .accounts = a, .log = on_log, .log_arg = &f};
    tg_reloader_t *r = tg_reloader_new(&d);
    assert_int_equal(tg_reload_add_hook(r, "test", on_hook, &f), 0);
    tg_reload_result_t *res = malloc(sizeof(*res));

    /* invalid: FILE:LINE, nothing changes, no hook */
    write_file(f.path, "plans:\n  pro: {price: \"1\", rate_limt: 5/sec}\n");
    assert_int_equal(tg_reload_run(r, res), TG_ECONFIG);
    char want[128];
    snprintf(want, sizeof(want), "%s:2:", f.path);
    assert_non_null(strstr(res->errors, want));
    assert_non_null(strstr(f.log, want));
    assert_ptr_equal(tg_config_live_get(live), first);
    assert_int_equal(f.hook_calls, 0);

    /* removes pro, which cus_1 is on */
    write_file(f.path, v3);
    assert_int_equal(tg_reload_run(r, res), TG_ESTATE);
    assert_non_null(strstr(res->errors, "plan \"pro\" is removed but 1 customer is on it"));
    assert_ptr_equal(tg_config_live_get(live), first);

    /* valid: swapped in, the listener and token kept and named, the hook run */
    const tg_plan_t *old_pro = tg_config_find_plan(first, "pro");
    write_file(f.path, v2);
    assert_int_equal(tg_reload_run(r, res), 0);
    const tg_config_t *now = tg_config_live_get(live);
    assert_ptr_not_equal(now, first);
    assert_int_equal(res->generation, 2);
    assert_string_equal(res->restart_required, "server.listen, admin.token");
    assert_string_equal(now->server.listen, "127.0.0.1:1");
    assert_int_equal(tg_account_plan(tg_accounts_find(a, "cus_1"))->rate_limit.count, 2000);
    assert_int_equal(f.hook_calls, 1);
    /* the old generation is still readable (calls in flight point into it) */
    assert_int_equal(old_pro->rate_limit.count, 1000);
    assert_int_equal(tg_config_live_generations(live), 2);

    free(res);
    tg_reloader_free(r);
    tg_accounts_free(a);
    tg_config_live_free(live);
    unlink(f.path);
}

/* Readers take the current configuration and read a plan from it while a writer publishes new
 * ones: every read sees a whole configuration (TSan checks the ordering). */
typedef struct {
    tg_config_live_t *live;
    _Atomic int stop;
    _Atomic uint64_t reads, torn; /* torn: a read that found no "pro" or a half-written plan */
} race_t;

static void *reader(void *arg)
{
    race_t *r = arg;
    while (!atomic_load(&r->stop)) {
        const tg_config_t *c = tg_config_live_get(r->live);
        const tg_plan_t *p = tg_config_find_plan(c, "pro");
        /* cmocka's asserts belong to the main thread: count, check there */
        if (p == NULL || p->rate_limit.count != p->burst)
            atomic_fetch_add(&r->torn, 1);
        atomic_fetch_add(&r->reads, 1);
    }
    return NULL;
}

static void test_publish_races_readers(void **state)
{
    (void)state;
    race_t r = {.live = tg_config_live_new(load(v1))};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, reader, &r), 0);
    while (atomic_load(&r.reads) == 0) /* both sides run at once, not one after the other */
        sched_yield();
    tg_err_t err = {0};
    for (int i = 0; i < 50; i++)
        assert_int_equal(tg_config_live_publish(r.live, load(i % 2 ? v1 : v2), &err), 0);
    atomic_store(&r.stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(tg_config_live_generations(r.live), 51);
    assert_true(atomic_load(&r.reads) > 0);
    assert_int_equal(atomic_load(&r.torn), 0);
    tg_config_live_free(r.live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep_restart_settings),
        cmocka_unit_test(test_rebind_moves_plans_by_id),
        cmocka_unit_test(test_reload_run),
        cmocka_unit_test(test_publish_races_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
