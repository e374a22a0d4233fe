/* test_thread_affinity.c - util/thread_affinity.h: CPU lists are parsed as Linux prints them and
 * bad ones refused with a reason; a thread keeps itself to its CPUs (read back from the kernel),
 * no other thread is touched, threads it starts afterwards inherit them (the period closer's pool
 * relies on it); and the period closer keeps its thread to billing.close_cpus. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "billing/closer.h"
#include "config/config.h"
#include "util/clock.h"
#include "util/thread_affinity.h"

#include "../support/tmpstore.h"

/* ---- the CPU list ---- */

static void parses(const char *list, const int *cpus, size_t n)
{
    cpu_set_t set, want;
    char why[200] = "";
    CPU_ZERO(&want);
    for (size_t i = 0; i < n; i++)
        CPU_SET(cpus[i], &want);
    if (tg_cpu_list_parse(list, &set, why, sizeof(why)) != 0)
        fail_msg("\"%s\" refused: %s", list, why);
    assert_true(CPU_EQUAL(&set, &want));
}

static void refused(const char *list, const char *reason)
{
    cpu_set_t set;
    char why[200] = "";
    assert_int_equal(tg_cpu_list_parse(list, &set, why, sizeof(why)), -1);
    if (strstr(why, reason) == NULL)
        fail_msg("\"%s\": \"%s\" does not say \"%s\"", list, why, reason);
}

static void test_cpu_lists(void **state)
{
    (void)state;
    parses("0", (int[]){0}, 1);
    parses("3", (int[]){3}, 1);
    parses("0-1,3", (int[]){0, 1, 3}, 3);
    parses("2-2", (int[]){2}, 1);
    parses("5,1", (int[]){1, 5}, 2);
    parses("0,0", (int[]){0}, 1);
    char last[16];
    snprintf(last, sizeof(last), "%d", CPU_SETSIZE - 1);
    parses(last, (int[]){CPU_SETSIZE - 1}, 1);

    refused("", "is empty");
    refused("a", "a CPU number is expected at position 1");
    refused("3-1", "has the range 3-1, which runs backwards");
    char past[16];
    snprintf(past, sizeof(past), "%d", CPU_SETSIZE);
    refused(past, "names a CPU past");
    snprintf(past, sizeof(past), "0-%d", CPU_SETSIZE);
    refused(past, "names a CPU past");
    refused("99999999999999999999", "names a CPU past"); /* no overflow on the way */
    refused("0,", "a CPU number is expected at position 3");
    refused(",0", "a CPU number is expected at position 1");
    refused("0-", "a CPU number is expected at position 3");
    refused("-1", "a CPU number is expected at position 1");
    refused("0 1", "unexpected ' ' at position 2");
    refused("0;1", "unexpected ';' at position 2");
    refused("1-2-3", "unexpected '-' at position 4");
}

/* ---- the calling thread's CPUs ---- */

/* A CPU list naming one CPU the test may use, different from all it may use ("" when it may use
 * only one: a test could then not tell kept from untouched). */
static void one_of_mine(char *list, size_t cap)
{
    cpu_set_t mine;
    assert_int_equal(sched_getaffinity(0, sizeof(mine), &mine), 0);
    list[0] = '\0';
    if (CPU_COUNT(&mine) < 2)
        return;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &mine)) {
            snprintf(list, cap, "%d", c);
            return;
        }
}

typedef struct kept {
    const char *list;
    int rc;
    cpu_set_t after, child;
    char msg[TG_ERR_MAX];
} kept_t;

static void *child_main(void *arg)
{
    pthread_getaffinity_np(pthread_self(), sizeof(cpu_set_t), arg);
    return NULL;
}

static void *kept_main(void *arg)
{
    kept_t *k = arg;
    tg_err_t err = {0};
    k->rc = tg_thread_keep_to_cpus(k->list, &err);
    snprintf(k->msg, sizeof(k->msg), "%s", err.msg);
    pthread_getaffinity_np(pthread_self(), sizeof(k->after), &k->after);
    pthread_t t; /* a thread it starts afterwards, as the closer starts its pool */
    if (pthread_create(&t, NULL, child_main, &k->child) == 0)
        pthread_join(t, NULL);
    return NULL;
}

static void test_keeps_the_caller_and_its_children(void **state)
{
    (void)state;
    char list[16];
    one_of_mine(list, sizeof(list));
    if (list[0] == '\0')
        skip();
    cpu_set_t before, want, after;
    assert_int_equal(pthread_getaffinity_np(pthread_self(), sizeof(before), &before), 0);
    CPU_ZERO(&want);
    CPU_SET(atoi(list), &want);
    kept_t k = {.list = list};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, kept_main, &k), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(k.rc, 0);
    assert_true(CPU_EQUAL(&k.after, &want));
    assert_true(CPU_EQUAL(&k.child, &want));
    assert_int_equal(pthread_getaffinity_np(pthread_self(), sizeof(after), &after), 0);
    assert_true(CPU_EQUAL(&after, &before)); /* the thread that started it: untouched */

    kept_t bad = {.list = "3-1"};
    assert_int_equal(pthread_create(&t, NULL, kept_main, &bad), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(bad.rc, TG_EINVAL);
    assert_non_null(strstr(bad.msg, "\"3-1\" has the range 3-1, which runs backwards"));
    assert_true(CPU_EQUAL(&bad.after, &before));
}

/* A CPU the process may not use (past every one it may): the kernel refuses, the thread keeps its
 * CPUs and the error names the call. */
static void test_refused_by_the_system(void **state)
{
    (void)state;
    cpu_set_t mine;
    assert_int_equal(sched_getaffinity(0, sizeof(mine), &mine), 0);
    int top = -1;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &mine))
            top = c;
    if (top == CPU_SETSIZE - 1 || sysconf(_SC_NPROCESSORS_CONF) >= CPU_SETSIZE)
        skip();
    char list[16];
    snprintf(list, sizeof(list), "%d", CPU_SETSIZE - 1); /* no machine this test runs on has it */
    kept_t k = {.list = list};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, kept_main, &k), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(k.rc, TG_EIO);
    assert_non_null(strstr(k.msg, "pthread_setaffinity_np"));
    assert_true(CPU_EQUAL(&k.after, &mine));
}

/* ---- the period closer ---- */

/* The Cpus_allowed_list of this process's thread named `name` once it is `want`, polled for at
 * most 10 s (the thread keeps itself to its CPUs as it starts, after naming itself); the last
 * value read ("" with no such thread) when it never is. */
static void cpus_of_thread_named(const char *name, const char *want, char *seen, size_t cap)
{
    seen[0] = '\0';
    for (int64_t give_up = tg_clock_mono_ns() + 10 * TG_NS_PER_SEC;
         strcmp(seen, want) != 0 && tg_clock_mono_ns() < give_up;) {
        DIR *d = opendir("/proc/self/task");
        assert_non_null(d);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char path[300], line[256] = {0};
            snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
            FILE *f = fopen(path, "r");
            if (f == NULL)
                continue;
            int named = fgets(line, sizeof(line), f) != NULL && strcmp(strtok(line, "\n"), name) == 0;
            fclose(f);
            snprintf(path, sizeof(path), "/proc/self/task/%s/status", e->d_name);
            if (!named || (f = fopen(path, "r")) == NULL)
                continue;
            while (fgets(line, sizeof(line), f) != NULL)
                if (strncmp(line, "Cpus_allowed_list:", 18) == 0)
                    snprintf(seen, cap, "%s", strtok(line + 18, " \t\n"));
            fclose(f);
        }
        closedir(d);
        if (strcmp(seen, want) != 0)
            nanosleep(&(struct timespec){0, 2000000L}, NULL);
    }
}

static tg_config_t *closer_config(const char *billing)
{
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "server: {admin_listen: \"127.0.0.1:8081\"}\n"
             "upstream: {url: \"http://127.0.0.1:9000\"}\n"
             "admin: {token: \"0123456789abcdef0123\"}\n"
             "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"
             "%s"
             "plans: {free: {}}\n",
             billing);
    char errbuf[2048];
    tg_config_t *cfg = NULL;
    if (tg_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, errbuf, sizeof(errbuf)) != 0)
        fail_msg("%s", errbuf);
    return cfg;
}

/* billing.close_cpus: the closer's thread (tg-billing) runs on those CPUs, the thread that
 * started it where it was; without it, the closer's thread stays where the process may run. */
static void test_closer_keeps_to_close_cpus(void **state)
{
    (void)state;
    char list[16];
    one_of_mine(list, sizeof(list));
    if (list[0] == '\0')
        skip();
    cpu_set_t before, after;
    assert_int_equal(pthread_getaffinity_np(pthread_self(), sizeof(before), &before), 0);
    tg_tmpstore_t db;
    assert_int_equal(tg_tmpstore_open(&db, "affinity"), 0);
    char billing[64], seen[256];
    snprintf(billing, sizeof(billing), "billing: {close_cpus: \"%s\"}\n", list);
    tg_config_t *cfg = closer_config(billing);
    assert_string_equal(cfg->billing.close_cpus, list);
    tg_closer_settings_t s = {.database = db.url, .cfg = cfg, .interval_ms = 3600 * 1000};
    tg_closer_t *closer = NULL;
    tg_err_t err = {0};
    assert_int_equal(tg_closer_start(&s, &closer, &err), 0);
    cpus_of_thread_named("tg-billing", list, seen, sizeof(seen));
    assert_string_equal(seen, list);
    tg_closer_stop(closer);
    assert_int_equal(pthread_getaffinity_np(pthread_self(), sizeof(after), &after), 0);
    assert_true(CPU_EQUAL(&after, &before));
    tg_config_free(cfg);

    /* without the setting: the CPUs of the thread that started it (all the test's) */
    cfg = closer_config("");
    assert_null(cfg->billing.close_cpus);
    s.cfg = cfg;
    assert_int_equal(tg_closer_start(&s, &closer, &err), 0);
    char all[256] = "";
    FILE *f = fopen("/proc/thread-self/status", "r");
    assert_non_null(f);
    char line[256];
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "Cpus_allowed_list:", 18) == 0)
            snprintf(all, sizeof(all), "%s", strtok(line + 18, " \t\n"));
    fclose(f);
    cpus_of_thread_named("tg-billing", all, seen, sizeof(seen));
    assert_string_equal(seen, all);
    tg_closer_stop(closer);
    tg_config_free(cfg);
    assert_int_equal(tg_tmpstore_close(&db), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_lists),
        cmocka_unit_test(test_keeps_the_caller_and_its_children),
        cmocka_unit_test(test_refused_by_the_system),
        cmocka_unit_test(test_closer_keeps_to_close_cpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
