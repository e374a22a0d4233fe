/* syscall_nocancel.h - read, write, writev and epoll_wait as bare system calls, for the whole
 * process (syscall_nocancel.c says why and how).
 *
 * The tollgate executable links util/syscall_nocancel.o explicitly (Makefile), ahead of the
 * library, so its definitions replace glibc's for tollgate and for every shared library it loads;
 * another program linking libtollgate.a gets them as soon as one of its objects calls read or
 * write (the archive comes before libc). Cancellation points are what is lost: no thread of
 * tollgate is ever cancelled. */
#ifndef TG_SYSCALL_NOCANCEL_H
#define TG_SYSCALL_NOCANCEL_H

/* 1 where this build replaces glibc's functions (Linux, no ASan or TSan), else 0. */
extern const int tg_syscalls_nocancel;

#endif
