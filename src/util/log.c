/* log.c - see log.h. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>
#include <unistd.h>

static tg_log_level_t max_level = TG_LOG_INFO;
static int to_syslog;

void tg_log_setup(tg_log_level_t level, int use_syslog)
{
    max_level = level;
    if (use_syslog && !to_syslog)
        openlog("tollgate", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    else if (!use_syslog && to_syslog)
        closelog();
    to_syslog = use_syslog;
}

int tg_log_enabled(tg_log_level_t level)
{
    return level <= max_level;
}

void tg_log(tg_log_level_t level, const char *fmt, ...)
{
    if (level > max_level)
        return;
    static const char *const prefix[] = {"tollgate: error: ", "tollgate: warning: ", "tollgate: ", "tollgate: debug: "};
    static const int priority[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    char line[TG_LOG_LINE_MAX];
    size_t n = 0;
    if (!to_syslog) {
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
    if (to_syslog) {
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
