/* log.h - tollgate's diagnostic log: one small logger that library code calls instead of
 * printing, with levels, to standard error or syslog(3).
 *
 * Configured by main (log: {level, syslog}) at start and again by each accepted reload;
 * tg_log may be called from any thread, also while a reload changes the settings. A line is formatted into a buffer of TG_LOG_LINE_MAX bytes (longer
 * messages are cut) and written with one write(2) (stderr) or one syslog(3) call, so lines of
 * different threads never interleave. Messages must not hold secrets. */
#ifndef TG_LOG_H
#define TG_LOG_H

typedef enum tg_log_level {
    TG_LOG_ERROR = 0, /* something failed: usage not stored, a thread not started */
    TG_LOG_WARN = 1,  /* tollgate works around it: retrying, a value refused */
    TG_LOG_INFO = 2,  /* start, stop, a state change an operator wants to see */
    TG_LOG_DEBUG = 3
} tg_log_level_t;

#define TG_LOG_LINE_MAX 2048

/* Sets the most detailed level written (default TG_LOG_INFO) and the destination: use_syslog 0
 * = standard error ("tollgate: [LEVEL: ]message"), 1 = syslog (ident "tollgate", facility
 * daemon, the level as its priority). Any thread; calls are serialised among themselves. */
void tg_log_setup(tg_log_level_t level, int use_syslog);

/* Whether a message at this level would be written (to skip building an expensive one). */
int tg_log_enabled(tg_log_level_t level);

void tg_log(tg_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
