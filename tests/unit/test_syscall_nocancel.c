/* test_syscall_nocancel.c - util/syscall_nocancel.c: its read, write, writev and epoll_wait are
 * the ones the process uses (the dynamic linker's global lookup finds them, not glibc's), and each
 * behaves as glibc's does: the bytes, the counts, and -1 with the same errno for a bad descriptor,
 * a full or closed pipe, a timeout and a signal.
 *
 * The unit tests are built with ASan, where the file leaves glibc's functions alone (TSan and ASan
 * must intercept them); this test compiles the file itself as a release build does, so that what
 * the tollgate binary runs is what is tested here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define TG_SYSCALL_NOCANCEL_TEST 1
#include "../../src/util/syscall_nocancel.c"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

typedef ssize_t (*read_fn)(int, void *, size_t);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef int (*epoll_wait_fn)(int, struct epoll_event *, int, int);

/* glibc's own, found past this executable */
static read_fn libc_read;
static write_fn libc_write;
static writev_fn libc_writev;
static epoll_wait_fn libc_epoll_wait;

static int setup(void **state)
{
    (void)state;
    libc_read = (read_fn)dlsym(RTLD_NEXT, "read");
    libc_write = (write_fn)dlsym(RTLD_NEXT, "write");
    libc_writev = (writev_fn)dlsym(RTLD_NEXT, "writev");
    libc_epoll_wait = (epoll_wait_fn)dlsym(RTLD_NEXT, "epoll_wait");
    signal(SIGPIPE, SIG_IGN);
    return libc_read && libc_write && libc_writev && libc_epoll_wait ? 0 : -1;
}

/* A second thread is alive through every test: glibc's wrappers skip their cancellation switches
 * in a single-threaded process, and tollgate never is one. */
static pthread_t companion;
static int companion_pipe[2];

static void *companion_main(void *arg)
{
    (void)arg;
    char c;
    while (libc_read(companion_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    return NULL;
}

static void test_the_process_uses_these(void **state)
{
    (void)state;
    assert_int_equal(tg_syscalls_nocancel, 1);
    /* the global lookup, which binds every shared library's references, finds this file's */
    assert_ptr_equal(dlsym(RTLD_DEFAULT, "read"), (void *)read);
    assert_ptr_equal(dlsym(RTLD_DEFAULT, "write"), (void *)write);
    assert_ptr_equal(dlsym(RTLD_DEFAULT, "writev"), (void *)writev);
    assert_ptr_equal(dlsym(RTLD_DEFAULT, "epoll_wait"), (void *)epoll_wait);
    /* and glibc's are others (else the comparisons below compare a function with itself) */
    assert_ptr_not_equal((void *)libc_read, (void *)read);
    assert_ptr_not_equal((void *)libc_write, (void *)write);
    assert_ptr_not_equal((void *)libc_writev, (void *)writev);
    assert_ptr_not_equal((void *)libc_epoll_wait, (void *)epoll_wait);
}

static void test_bytes_and_counts(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "hello", 5), 5);
    struct iovec iov[3] = {{(void *)", ", 2}, {(void *)"", 0}, {(void *)"world", 5}};
    assert_int_equal(writev(p[1], iov, 3), 7);
    char buf[32] = {0};
    assert_int_equal(read(p[0], buf, 4), 4); /* a short read: what was asked */
    assert_memory_equal(buf, "hell", 4);
    assert_int_equal(read(p[0], buf, sizeof(buf)), 8); /* what there is */
    assert_memory_equal(buf, "o, world", 8);
    assert_int_equal(write(p[1], "", 0), 0);
    close(p[1]);
    assert_int_equal(read(p[0], buf, sizeof(buf)), 0); /* end of file */
    close(p[0]);
}

/* ret and errno of both implementations of one failing call */
#define SAME_FAILURE(ours, theirs, want_errno)                                                                         \
    do {                                                                                                               \
        errno = 0;                                                                                                     \
        long r1 = (long)(ours);                                                                                        \
        int e1 = errno;                                                                                                \
        errno = 0;                                                                                                     \
        long r2 = (long)(theirs);                                                                                      \
        int e2 = errno;                                                                                                \
        assert_int_equal(r1, -1);                                                                                      \
        assert_int_equal(r2, -1);                                                                                      \
        assert_int_equal(e1, want_errno);                                                                              \
        assert_int_equal(e2, want_errno);                                                                              \
    } while (0)

static void test_failures_as_glibc(void **state)
{
    (void)state;
    char buf[8];
    struct iovec iov = {buf, sizeof(buf)};
    struct epoll_event ev;
    int bad = 1000000; /* far above any open descriptor */
    SAME_FAILURE(read(bad, buf, 1), libc_read(bad, buf, 1), EBADF);
    SAME_FAILURE(write(bad, buf, 1), libc_write(bad, buf, 1), EBADF);
    SAME_FAILURE(writev(bad, &iov, 1), libc_writev(bad, &iov, 1), EBADF);
    SAME_FAILURE(epoll_wait(bad, &ev, 1, 0), libc_epoll_wait(bad, &ev, 1, 0), EBADF);
    SAME_FAILURE(epoll_wait(0, &ev, 0, 0), libc_epoll_wait(0, &ev, 0, 0), EINVAL); /* maxevents 0 */

    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK), 0);
    SAME_FAILURE(read(p[0], buf, 1), libc_read(p[0], buf, 1), EAGAIN); /* empty */
    ssize_t n;
    while ((n = write(p[1], buf, sizeof(buf))) > 0) { /* fill it */
    }
    assert_int_equal(errno, EAGAIN);
    SAME_FAILURE(write(p[1], buf, 1), libc_write(p[1], buf, 1), EAGAIN);
    SAME_FAILURE(writev(p[1], &iov, 1), libc_writev(p[1], &iov, 1), EAGAIN);
    close(p[0]); /* no reader: EPIPE (SIGPIPE ignored, as tollgate does) */
    SAME_FAILURE(write(p[1], buf, 1), libc_write(p[1], buf, 1), EPIPE);
    SAME_FAILURE(writev(p[1], &iov, 1), libc_writev(p[1], &iov, 1), EPIPE);
    close(p[1]);
}

static void test_epoll_wait(void **state)
{
    (void)state;
    int ep = epoll_create1(EPOLL_CLOEXEC), p[2];
    assert_true(ep >= 0);
    assert_int_equal(pipe(p), 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 42};
    assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev), 0);
    struct epoll_event got[4];
    assert_int_equal(epoll_wait(ep, got, 4, 0), 0); /* nothing yet: the timeout */
    assert_int_equal(write(p[1], "x", 1), 1);
    memset(got, 0, sizeof(got));
    assert_int_equal(epoll_wait(ep, got, 4, -1), 1);
    assert_int_equal(got[0].data.u64, 42);
    assert_true(got[0].events & EPOLLIN);
    close(p[0]);
    close(p[1]);
    close(ep);
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

/* A signal handled without SA_RESTART ends a blocked call with EINTR, as glibc's would: the event
 * loops count on it to notice a stop. The timer fires while read and epoll_wait block on nothing
 * that could ever arrive. */
static void test_interrupted_by_a_signal(void **state)
{
    (void)state;
    struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    struct sigaction old;
    assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
    int p[2], ep = epoll_create1(EPOLL_CLOEXEC);
    assert_int_equal(pipe(p), 0);
    struct epoll_event ev = {.events = EPOLLIN};
    assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev), 0);
    struct itimerval in_50ms = {.it_value = {0, 50000}};
    char c;

    alarms = 0;
    assert_int_equal(setitimer(ITIMER_REAL, &in_50ms, NULL), 0);
    errno = 0;
    assert_int_equal(read(p[0], &c, 1), -1);
    assert_int_equal(errno, EINTR);
    assert_int_equal(alarms, 1);

    alarms = 0;
    assert_int_equal(setitimer(ITIMER_REAL, &in_50ms, NULL), 0);
    errno = 0;
    assert_int_equal(epoll_wait(ep, &ev, 1, -1), -1);
    assert_int_equal(errno, EINTR);
    assert_int_equal(alarms, 1);

    sigaction(SIGALRM, &old, NULL);
    close(p[0]);
    close(p[1]);
    close(ep);
}

int main(void)
{
    if (setup(NULL) != 0)
        return 1;
    /* the timer's signal must reach this thread, not the companion */
    sigset_t alrm;
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alrm, NULL);
    if (pipe(companion_pipe) != 0 || pthread_create(&companion, NULL, companion_main, NULL) != 0)
        return 1;
    pthread_sigmask(SIG_UNBLOCK, &alrm, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_process_uses_these),  cmocka_unit_test(test_bytes_and_counts),
        cmocka_unit_test(test_failures_as_glibc),       cmocka_unit_test(test_epoll_wait),
        cmocka_unit_test(test_interrupted_by_a_signal),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    libc_write(companion_pipe[1], "", 1);
    pthread_join(companion, NULL);
    return failed;
}
