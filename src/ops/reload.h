/* reload.h - re-reading the configuration file while serving (SIGHUP, POST /v1/admin/reload).
 *
 * tg_reload_run parses the file the server was started with, and if it is valid swaps it in as a
 * whole: plans, routes, limits, quota settings and metering rules (config/config_live.h). Calls
 * in flight keep the configuration they were admitted under; the next call reads the new one.
 * The customers' plans move to the plans of the same id (tg_accounts_rebind); rate-limit
 * states convert to a changed rate at their next call (limits/limiter.h); quota counters, usage,
 * keys and customers are not touched. Settings that are built into sockets, threads and
 * connections at start keep their running value and are named (tg_config_keep_restart_settings).
 *
 * Refused, with the old configuration still in effect: a file that does not parse or validate
 * (every FILE:LINE problem in the result), a file that removes a plan customers are on, and a
 * reload past TG_CONFIG_MAX_GENERATIONS.
 *
 * Hooks: other parts (TLS certificates, log files) register a callback run after each accepted
 * reload, with the new configuration (tg_reload_add_hook). A hook's failure does not undo the
 * swap: it is logged and returned in the result, and the hook's part keeps what it had.
 *
 * Threads: tg_reload_run is serialised by the caller (tollgate serve runs every reload on the
 * admin back thread, admin_front.c) and takes a lock of its own besides; hooks run on that
 * thread. It blocks on the file system only (reading one file). */
#ifndef TG_RELOAD_H
#define TG_RELOAD_H

#include <stddef.h>

#include "config/config.h"
#include "util/err.h"

struct tg_config_live;
struct tg_accounts;

typedef struct tg_reloader tg_reloader_t;

/* One line for the operator's log (no trailing newline). */
typedef void (*tg_reload_log_cb)(void *arg, const char *line);

/* Called after a reload was accepted and published; 0, or a negative TG_E code with err
 * filled. next stays valid until shutdown. */
typedef int (*tg_reload_hook_cb)(const tg_config_t *next, void *arg, tg_err_t *err);

typedef struct tg_reload_deps {
    struct tg_config_live *live;  /* the configuration in effect; its path is re-read */
    struct tg_accounts *accounts; /* rebound to each new configuration; may be NULL (tests) */
    tg_reload_log_cb log;         /* NULL: nothing is logged */
    void *log_arg;
} tg_reload_deps_t;

#define TG_RELOAD_MAX_HOOKS 8

typedef struct tg_reload_result {
    int code;             /* what tg_reload_run returned */
    char errors[8192];    /* refused: "FILE:LINE: message" lines (TG_ECONFIG) or one sentence */
    char restart_required[1024]; /* accepted: settings that differ and were kept, ", "-separated */
    char hook_errors[1024];      /* accepted: "name: message" per failed hook, "; "-separated */
    size_t generation;    /* accepted: 1 + reloads accepted since the start */
} tg_reload_result_t;

/* NULL on ENOMEM. The deps' objects must outlive the reloader. */
tg_reloader_t *tg_reloader_new(const tg_reload_deps_t *deps);
void tg_reloader_free(tg_reloader_t *r);

/* Registers cb under `name` (a static string, in logs). Before serving starts. TG_ELIMIT past
 * TG_RELOAD_MAX_HOOKS. */
int tg_reload_add_hook(tg_reloader_t *r, const char *name, tg_reload_hook_cb cb, void *arg);

/* Re-reads and applies the configuration file (see above); logs the outcome. Returns 0,
 * TG_ECONFIG (invalid file), TG_ESTATE (a removed plan has customers), TG_ELIMIT (too many
 * generations) or TG_ENOMEM; out is filled in every case. */
int tg_reload_run(tg_reloader_t *r, tg_reload_result_t *out);

#endif
