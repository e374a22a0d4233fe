/* log.c - see log.h. */
#include "util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <syslog.h>
#include <unistd.h>

/* Atomics: a reload changes them (tg_log_setup) while every thread logs. A line that races the
 * change goes by the old setting or the new one, whole either way. */
static _Atomic int max_level = TG_LOG_INFO;
static _Atomic int to_syslog;
static pthread_mutex_t setup_mu = PTHREAD_MUTEX_INITIALIZER; /* openlog/closelog pairs */

void tg_log_setup(tg_log_level_t level, int use_syslog)
{
    pthread_mutex_lock(&setup_mu);
    int was = atomic_load(&to_syslog);
    if (use_syslog && !was)
        openlog("tollgate", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    atomic_store(&to_syslog, use_syslog);
    if (!use_syslog && was)
        closelog(); /* a line still on its way to syslog(3) reopens it: glibc serialises both */
    atomic_store(&max_level, (int)level);
    pthread_mutex_unlock(&setup_mu);
}

int tg_log_enabled(tg_log_level_t level)
{
    return (int)level <= atomic_load_explicit(&max_level, memory_order_relaxed);
}

void tg_log(tg_log_level_t level, const char *fmt, ...)
{
    if (!tg_log_enabled(level))
        return;
    int syslogged = atomic_load_explicit(&to_syslog, memory_order_relaxed);
    static const char *const prefix[] = {"tollgate: error: ", "tollgate: warning: ", "tollgate: ", "tollgate: debug: "};
    static const int priority[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    char line[TG_LOG_LINE_MAX];
    size_t n = 0;
    if (!syslogged) {
        int p = snprintf(line, sizeof(line), "%s", prefix[level]);
        n = p > 0 ? (size_t)p : 0;
    }
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap); /* room for the newline */
    va_end(ap);
    if (m < 0)
        return;
    n += (size_t)m < sizeof(line) - n - 1 ? (size_t)m : sizeof(line) - n - 2;
    if (syslogged) {
        syslog(priority[level], "%s", line);
        return;
    }
    line[n++] = '\n';
    for (size_t off = 0; off < n;) { /* stderr is unbuffered: one write keeps the line whole */
        ssize_t w = write(STDERR_FILENO, line + off, n - off);
        if (w <= 0)
            return;
        off += (size_t)w;
    }
}
