/* test_thread_prio.c - util/thread_prio.h: the calling thread's priority is lowered and read
 * back from the kernel, no other thread's is touched, threads it starts afterwards inherit it
 * (the period closer's pool relies on it), a priority is never raised, bad values are refused,
 * and a system that forbids setpriority (a seccomp filter, as a strict container profile would
 * have) leaves the thread as it was with an error naming the call, logged once. And the outbound
 * senders (webhooks, mail, the Stripe outbox) run at TG_NICE_BACKGROUND. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config/config.h"
#include "notify/delivery.h"
#include "notify/mail_outbox.h"
#include "payments/outbox.h"
#include "util/clock.h"
#include "util/thread_prio.h"

#include "../support/tmpstore.h"

#define NICE_UNREADABLE (-100) /* no nice value: the test's threads assert nothing themselves */

/* The nice value of thread `tid`, read from the kernel; NICE_UNREADABLE if it cannot be. */
static int nice_of(pid_t tid)
{
    errno = 0;
    int n = getpriority(PRIO_PROCESS, (id_t)tid);
    return errno == 0 ? n : NICE_UNREADABLE;
}

/* Runs fn(arg) on a new thread of default attributes and waits for it. */
static void on_new_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fn, arg), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
}

/* ---- the caller's priority, and only the caller's ---- */

typedef struct sibling {
    pthread_barrier_t ready, done; /* both: the sibling and the test */
    pid_t tid;
} sibling_t;

static void *sibling_main(void *arg)
{
    sibling_t *s = arg;
    s->tid = gettid();
    pthread_barrier_wait(&s->ready);
    pthread_barrier_wait(&s->done); /* alive while the other thread lowers its priority */
    return NULL;
}

typedef struct lowered {
    int before, rc, after, child;
    pid_t tid;
} lowered_t;

static void *child_main(void *arg)
{
    *(int *)arg = nice_of(gettid());
    return NULL;
}

static void *lower_main(void *arg)
{
    lowered_t *l = arg;
    l->tid = gettid();
    l->before = nice_of(l->tid);
    tg_err_t err = {0};
    l->rc = tg_thread_lower_priority(TG_NICE_LOWEST, &err);
    l->after = nice_of(l->tid);
    pthread_t child; /* started after: inherits the lowered value (l->child stays 0 if not run) */
    if (pthread_create(&child, NULL, child_main, &l->child) == 0)
        pthread_join(child, NULL);
    return NULL;
}

static void test_lowers_the_caller_only(void **state)
{
    (void)state;
    int mine = nice_of(gettid());
    assert_int_not_equal(mine, NICE_UNREADABLE);
    if (mine >= TG_NICE_LOWEST)
        skip(); /* the test runs at the lowest priority already: nothing to lower */
    sibling_t s = {0};
    pthread_barrier_init(&s.ready, NULL, 2);
    pthread_barrier_init(&s.done, NULL, 2);
    pthread_t st;
    assert_int_equal(pthread_create(&st, NULL, sibling_main, &s), 0);
    pthread_barrier_wait(&s.ready);

    lowered_t l = {0};
    on_new_thread(lower_main, &l);
    assert_int_equal(l.rc, 0);
    assert_int_equal(l.before, mine);
    assert_int_equal(l.after, TG_NICE_LOWEST);
    assert_int_equal(l.child, TG_NICE_LOWEST);
    assert_int_equal(nice_of(gettid()), mine); /* the thread that started it */
    assert_int_equal(nice_of(s.tid), mine);    /* a thread running beside it */
    assert_int_equal(nice_of(getpid()), mine); /* the process's main thread */

    pthread_barrier_wait(&s.done);
    assert_int_equal(pthread_join(st, NULL), 0);
    pthread_barrier_destroy(&s.ready);
    pthread_barrier_destroy(&s.done);
}

/* ---- never raised; bad values refused ---- */

typedef struct attempt {
    int start, ask, rc, after;
    char msg[TG_ERR_MAX];
} attempt_t;

static void *attempt_main(void *arg)
{
    attempt_t *a = arg;
    if (a->start > 0 && setpriority(PRIO_PROCESS, (id_t)gettid(), a->start) != 0)
        return NULL; /* a->after stays 0: the test fails on it */
    tg_err_t err = {0};
    a->rc = tg_thread_lower_priority(a->ask, &err);
    snprintf(a->msg, sizeof(a->msg), "%s", err.msg);
    a->after = nice_of(gettid());
    return NULL;
}

static void test_never_raises(void **state)
{
    (void)state;
    if (nice_of(gettid()) >= 15)
        skip();
    attempt_t a = {.start = 15, .ask = 10};
    on_new_thread(attempt_main, &a);
    assert_int_equal(a.rc, 0);
    assert_int_equal(a.after, 15); /* lowered further by someone: left there */
    attempt_t same = {.start = 15, .ask = 15};
    on_new_thread(attempt_main, &same);
    assert_int_equal(same.rc, 0);
    assert_int_equal(same.after, 15);
}

static void test_refuses_bad_values(void **state)
{
    (void)state;
    int mine = nice_of(gettid());
    int bad[] = {0, -1, -20, 20, 40};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        attempt_t a = {.ask = bad[i]};
        on_new_thread(attempt_main, &a);
        assert_int_equal(a.rc, TG_EINVAL);
        assert_non_null(strstr(a.msg, "nice value must be 1 to 19"));
        assert_int_equal(a.after, mine); /* untouched */
    }
}

/* ---- a system that refuses ---- */

/* Makes setpriority fail with EPERM on the calling thread alone (a seccomp filter applies to the
 * thread that installs it and the threads it starts later, not to its siblings). 0, or -1 where
 * this architecture's filter is not written here or the kernel has no seccomp. */
static int forbid_setpriority(void)
{
#if defined(__x86_64__)
    const unsigned arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
    const unsigned arch = AUDIT_ARCH_AARCH64;
#else
    return -1;
#endif
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_setpriority, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) /* this thread's, as the filter */
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) == 0 ? 0 : -1;
}

typedef struct refused {
    int supported, rc, before, after;
    char msg[TG_ERR_MAX];
} refused_t;

static void *refused_main(void *arg)
{
    refused_t *r = arg;
    if (forbid_setpriority() != 0)
        return NULL;
    r->supported = 1;
    r->before = nice_of(gettid());
    tg_err_t err = {0};
    r->rc = tg_thread_lower_priority(TG_NICE_LOWEST, &err);
    snprintf(r->msg, sizeof(r->msg), "%s", err.msg);
    r->after = nice_of(gettid());
    /* the warning: twice here, logged once (standard error is the test's, read back below) */
    tg_thread_lower_priority_or_warn(TG_NICE_LOWEST, "the test's thread");
    tg_thread_lower_priority_or_warn(TG_NICE_LOWEST, "the test's thread again");
    return NULL;
}

static void test_refused_by_the_system(void **state)
{
    (void)state;
    if (nice_of(gettid()) >= TG_NICE_LOWEST)
        skip();
    char path[] = "/tmp/tg-test-thread-prio-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    refused_t r = {0};
    on_new_thread(refused_main, &r);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    if (!r.supported) {
        close(fd);
        skip();
    }
    assert_int_equal(r.rc, TG_EIO);
    assert_non_null(strstr(r.msg, "setpriority"));
    assert_non_null(strstr(r.msg, strerror(EPERM)));
    assert_int_equal(r.after, r.before); /* left at its priority */

    char logged[4096] = {0};
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    ssize_t n = read(fd, logged, sizeof(logged) - 1);
    close(fd);
    assert_true(n > 0);
    const char *first = strstr(logged, "the test's thread keeps its CPU priority");
    assert_non_null(first);
    assert_non_null(strstr(first, strerror(EPERM)));
    assert_null(strstr(logged, "again")); /* once per process */
}

/* ---- the threads that lower themselves ---- */

/* The nice value of this process's thread named `name` (pthread_setname_np, 15 bytes at most)
 * once it is `want`, polled for at most 10 s: a thread lowers its priority as it starts, after
 * naming itself. The last value read (NICE_UNREADABLE: no such thread) when it never is. */
static int nice_of_thread_named(const char *name, int want)
{
    int seen = NICE_UNREADABLE;
    for (int64_t give_up = tg_clock_mono_ns() + 10 * TG_NS_PER_SEC; seen != want && tg_clock_mono_ns() < give_up;) {
        DIR *d = opendir("/proc/self/task");
        assert_non_null(d);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char path[300], comm[64] = {0};
            snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
            FILE *f = fopen(path, "r");
            if (f == NULL)
                continue;
            if (fgets(comm, sizeof(comm), f) != NULL) {
                comm[strcspn(comm, "\n")] = '\0';
                if (strcmp(comm, name) == 0)
                    seen = nice_of((pid_t)strtol(e->d_name, NULL, 10)); /* a task id: digits only */
            }
            fclose(f);
        }
        closedir(d);
        if (seen != want)
            nanosleep(&(struct timespec){0, 2000000L}, NULL);
    }
    return seen;
}

/* Webhook deliveries, mail and the Stripe outbox: each thread at TG_NICE_BACKGROUND (nothing is
 * queued, so none of them calls out), the thread that started them untouched. */
static void test_senders_run_in_the_background(void **state)
{
    (void)state;
    int mine = nice_of(gettid());
    if (mine >= TG_NICE_BACKGROUND)
        skip();
    tg_tmpstore_t db;
    assert_int_equal(tg_tmpstore_open(&db, "prio"), 0);
    const char *yaml = "server: {admin_listen: \"127.0.0.1:8081\"}\n"
                       "upstream: {url: \"http://127.0.0.1:9000\"}\n"
                       "admin: {token: \"0123456789abcdef0123\"}\n"
                       "keys: {secret: \"0123456789abcdef0123456789abcdef\"}\n"
                       "email: {smtp_url: \"smtp://127.0.0.1:1\", from: \"API billing <billing@example.com>\"}\n"
                       "plans: {free: {}}\n";
    char errbuf[2048];
    tg_config_t *cfg = NULL;
    assert_int_equal(tg_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, errbuf, sizeof(errbuf)), 0);
    tg_err_t err = {0};

    tg_delivery_t *webhooks = NULL;
    assert_int_equal(tg_delivery_start(db.url, cfg, &webhooks, &err), 0);
    assert_int_equal(nice_of_thread_named("tg-webhooks", TG_NICE_BACKGROUND), TG_NICE_BACKGROUND);
    tg_delivery_stop(webhooks);

    tg_mail_sender_settings_t ms = {.database = db.url, .cfg = cfg};
    tg_mail_sender_t *mail = NULL;
    assert_int_equal(tg_mail_sender_start(&ms, &mail, &err), 0);
    assert_int_equal(nice_of_thread_named("tg-mail", TG_NICE_BACKGROUND), TG_NICE_BACKGROUND);
    tg_mail_sender_stop(mail);

    tg_outbox_settings_t os = {.database = db.url, .stripe = {"sk_test_prio", "http://127.0.0.1:1", 1000}};
    tg_outbox_t *outbox = NULL;
    assert_int_equal(tg_outbox_start(&os, &outbox, &err), 0);
    assert_int_equal(nice_of_thread_named("tg-stripe-outbx", TG_NICE_BACKGROUND), TG_NICE_BACKGROUND);
    tg_outbox_stop(outbox);

    assert_int_equal(nice_of(gettid()), mine);
    assert_int_equal(nice_of(getpid()), mine);
    tg_config_free(cfg);
    assert_int_equal(tg_tmpstore_close(&db), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lowers_the_caller_only),
        cmocka_unit_test(test_never_raises),
        cmocka_unit_test(test_refuses_bad_values),
        cmocka_unit_test(test_refused_by_the_system),
        cmocka_unit_test(test_senders_run_in_the_background),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
