/* reload.c - see reload.h. */
#include "ops/reload.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_live.h"
#include "gateway/accounts.h"

typedef struct reload_hook {
    const char *name;
    tg_reload_hook_cb cb;
    void *arg;
} reload_hook_t;

struct tg_reloader {
    tg_reload_deps_t d;
    pthread_mutex_t mu; /* one reload at a time, whoever asks */
    reload_hook_t hooks[TG_RELOAD_MAX_HOOKS];
    size_t nhooks;
};

tg_reloader_t *tg_reloader_new(const tg_reload_deps_t *deps)
{
    tg_reloader_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->d = *deps;
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

void tg_reloader_free(tg_reloader_t *r)
{
    if (r == NULL)
        return;
    pthread_mutex_destroy(&r->mu);
    free(r);
}

int tg_reload_add_hook(tg_reloader_t *r, const char *name, tg_reload_hook_cb cb, void *arg)
{
    if (r->nhooks >= TG_RELOAD_MAX_HOOKS)
        return TG_ELIMIT;
    r->hooks[r->nhooks++] = (reload_hook_t){name, cb, arg};
    return 0;
}

static void logf_line(const tg_reloader_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_line(const tg_reloader_t *r, const char *fmt, ...)
{
    if (r->d.log == NULL)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    r->d.log(r->d.log_arg, line);
}

/* Logs each "FILE:LINE: message" line of a refused file on its own line. */
static void log_errors(const tg_reloader_t *r, const char *path, const char *errors)
{
    logf_line(r, "reload of %s refused, the configuration in effect stays:", path);
    for (const char *p = errors; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
        if (n > 0)
            logf_line(r, "  %.*s", (int)(n > 1900 ? 1900 : n), p);
        p += n + (nl != NULL);
    }
}

static int refuse(tg_reloader_t *r, tg_reload_result_t *out, const char *path, int code, tg_config_t *next)
{
    tg_config_free(next);
    out->code = code;
    log_errors(r, path, out->errors);
    return code;
}

static void append(char *buf, size_t cap, const char *sep, const char *s)
{
    size_t used = strnlen(buf, cap);
    if (used + 1 >= cap)
        return;
    snprintf(buf + used, cap - used, "%s%s", used > 0 ? sep : "", s);
}

int tg_reload_run(tg_reloader_t *r, tg_reload_result_t *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&r->mu);
    const tg_config_t *cur = tg_config_live_get(r->d.live);
    const char *path = cur->path;
    tg_config_t *next = NULL;
    tg_err_t err = {0};
    int rc = tg_config_load(path, &next, out->errors, sizeof(out->errors));
    if (rc != 0) {
        rc = refuse(r, out, path, rc, NULL);
        pthread_mutex_unlock(&r->mu);
        return rc;
    }
    int kept = tg_config_keep_restart_settings(next, cur, out->restart_required, sizeof(out->restart_required));
    if (kept < 0) {
        snprintf(out->errors, sizeof(out->errors), "out of memory reading %s", path);
        rc = refuse(r, out, path, TG_ENOMEM, next);
        pthread_mutex_unlock(&r->mu);
        return rc;
    }
    /* The directory first: it is where a removed plan with customers is found, and nothing has
     * changed yet if it refuses. Between the two steps calls may see a customer on a new plan
     * and the old routes: both generations are whole and valid. */
    if (r->d.accounts != NULL && (rc = tg_accounts_rebind(r->d.accounts, next, &err)) != 0) {
        snprintf(out->errors, sizeof(out->errors), "%s: %s", path, err.msg);
        rc = refuse(r, out, path, rc, next);
        pthread_mutex_unlock(&r->mu);
        return rc;
    }
    if ((rc = tg_config_live_publish(r->d.live, next, &err)) != 0) {
        if (r->d.accounts != NULL) /* back to the plans in effect: they are still in cur */
            tg_accounts_rebind(r->d.accounts, cur, NULL);
        snprintf(out->errors, sizeof(out->errors), "%s: %s", path, err.msg);
        rc = refuse(r, out, path, rc, next);
        pthread_mutex_unlock(&r->mu);
        return rc;
    }
    out->generation = tg_config_live_generations(r->d.live);
    logf_line(r, "reloaded %s (configuration %zu since the start): %zu plans, %zu routes", path, out->generation,
              next->nplans, next->nroutes);
    if (kept > 0)
        logf_line(r, "reload: changed but kept until a restart: %s", out->restart_required);
    for (size_t i = 0; i < r->nhooks; i++) {
        tg_err_t herr = {0};
        if (r->hooks[i].cb(next, r->hooks[i].arg, &herr) == 0)
            continue;
        char item[TG_ERR_MAX + 64];
        snprintf(item, sizeof(item), "%s: %s", r->hooks[i].name, herr.msg);
        append(out->hook_errors, sizeof(out->hook_errors), "; ", item);
        logf_line(r, "reload: %s kept its previous state: %s", r->hooks[i].name, herr.msg);
    }
    pthread_mutex_unlock(&r->mu);
    return 0;
}
