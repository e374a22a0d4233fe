/* syscall_nocancel.c - the event loops' system calls without glibc's thread-cancellation
 * bookkeeping (util/syscall_nocancel.h).
 *
 * glibc makes read, write, writev and epoll_wait cancellation points: in a process with more than
 * one thread, each call switches the thread to asynchronous cancellation before the system call
 * and back after it, a compare-and-swap on the thread's descriptor each time. A single-threaded
 * process skips both, as each nginx worker does. tollgate never cancels a thread (neither it nor
 * its libraries call pthread_cancel), so the switches buy nothing here, and the event loops make
 * four to six of these calls per proxied call (h2o: read the request, write it upstream, read the
 * answer, write it back, wait for events).
 *
 * Measured on this VM: writev of 64 bytes to /dev/null took 150-155 ns through glibc with a
 * second thread alive against 124-133 ns as a bare system call (122 ns both ways with one
 * thread), and perf put the two switches at 2.0 % of tollgate's CPU in bench/gateway.sh's
 * process mode (README, "Performance").
 *
 * Defining the functions in the executable is enough for every library to use them: the dynamic
 * linker looks symbols up in the executable first, so h2o's calls bind here as tollgate's do
 * (ld exports an executable's definition that a linked shared library references). Each is the
 * bare system call, with errno set and -1 returned as glibc does.
 *
 * Left out of sanitizer builds: ASan and TSan intercept these functions, and TSan draws
 * happens-before edges from a write and a read on the same pipe or eventfd, which h2o's
 * cross-thread wake-ups use. Those builds keep glibc's. */
#undef _FORTIFY_SOURCE /* its inline wrappers of read would clash with the definition below */
#include "util/syscall_nocancel.h"

/* gcc says a sanitizer is on with these macros, clang (before 16) only through __has_feature */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TG_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TG_SANITIZED 1
#endif
#endif

/* TG_SYSCALL_NOCANCEL_TEST: the unit test, built with ASan, compiles this file as a release build
 * would, to test what the tollgate binary runs */
#if defined(__linux__) && (!defined(TG_SANITIZED) || defined(TG_SYSCALL_NOCANCEL_TEST))

#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

const int tg_syscalls_nocancel = 1;

ssize_t read(int fd, void *buf, size_t count)
{
    return syscall(SYS_read, fd, buf, count);
}

ssize_t write(int fd, const void *buf, size_t count)
{
    return syscall(SYS_write, fd, buf, count);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    return syscall(SYS_writev, fd, iov, iovcnt);
}

int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
#ifdef SYS_epoll_wait
    return (int)syscall(SYS_epoll_wait, epfd, events, maxevents, timeout);
#else /* architectures newer than x86-64 have only epoll_pwait, which without a mask is the same */
    return (int)syscall(SYS_epoll_pwait, epfd, events, maxevents, timeout, NULL, (size_t)8);
#endif
}

#else

const int tg_syscalls_nocancel = 0;

#endif
