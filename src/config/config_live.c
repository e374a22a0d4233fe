/* config_live.c - see config_live.h. */
#include "config/config_live.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct tg_config_live {
    _Atomic(const tg_config_t *) current;
    pthread_mutex_t mu;   /* guards gens and ngens (publishers only; readers use current) */
    tg_config_t **gens;   /* every configuration ever in effect, oldest first */
    size_t ngens, capgens;
};

tg_config_live_t *tg_config_live_new(tg_config_t *first)
{
    tg_config_live_t *live = calloc(1, sizeof(*live));
    if (live == NULL || (live->gens = calloc(4, sizeof(*live->gens))) == NULL) {
        free(live);
        tg_config_free(first);
        return NULL;
    }
    live->capgens = 4;
    live->gens[live->ngens++] = first;
    pthread_mutex_init(&live->mu, NULL);
    atomic_store_explicit(&live->current, first, memory_order_release);
    return live;
}

void tg_config_live_free(tg_config_live_t *live)
{
    if (live == NULL)
        return;
    for (size_t i = 0; i < live->ngens; i++)
        tg_config_free(live->gens[i]);
    free(live->gens);
    pthread_mutex_destroy(&live->mu);
    free(live);
}

const tg_config_t *tg_config_live_get(const tg_config_live_t *live)
{
    return atomic_load_explicit(&((tg_config_live_t *)live)->current, memory_order_acquire);
}

int tg_config_live_publish(tg_config_live_t *live, tg_config_t *next, tg_err_t *err)
{
    pthread_mutex_lock(&live->mu);
    if (live->ngens >= TG_CONFIG_MAX_GENERATIONS) {
        pthread_mutex_unlock(&live->mu);
        return tg_errf(err, TG_ELIMIT,
                       "%d configurations are kept in memory since the start (calls may still point into "
                       "them); restart tollgate to reload again",
                       TG_CONFIG_MAX_GENERATIONS);
    }
    if (live->ngens == live->capgens) {
        tg_config_t **g = realloc(live->gens, live->capgens * 2 * sizeof(*g));
        if (g == NULL) {
            pthread_mutex_unlock(&live->mu);
            return tg_errf(err, TG_ENOMEM, "out of memory keeping the new configuration");
        }
        live->gens = g;
        live->capgens *= 2;
    }
    live->gens[live->ngens++] = next;
    atomic_store_explicit(&live->current, next, memory_order_release);
    pthread_mutex_unlock(&live->mu);
    return 0;
}

size_t tg_config_live_generations(const tg_config_live_t *live)
{
    tg_config_live_t *l = (tg_config_live_t *)live;
    pthread_mutex_lock(&l->mu);
    size_t n = l->ngens;
    pthread_mutex_unlock(&l->mu);
    return n;
}

/* ---- settings a reload keeps ---- */

static int str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void note(char *names, size_t cap, const char *name)
{
    size_t used = strnlen(names, cap);
    size_t need = (used > 0 ? 2 : 0) + strlen(name);
    if (cap == 0 || used + need >= cap)
        return;
    if (used > 0)
        memcpy(names + used, ", ", 2), used += 2;
    memcpy(names + used, name, strlen(name) + 1);
}

/* Replaces *dst (owned by next) with a copy of src; secrets are wiped before being freed. */
static int keep_str(char **dst, const char *src, int secret)
{
    char *copy = NULL;
    if (src != NULL && (copy = strdup(src)) == NULL)
        return TG_ENOMEM;
    if (*dst != NULL && secret)
        explicit_bzero(*dst, strlen(*dst));
    free(*dst);
    *dst = copy;
    return 0;
}

/* Each KEEP_* compares one field and, if it differs, notes its name and copies cur's value. */
#define KEEP_INT(field, name)                                                                                  \
    do {                                                                                                       \
        if (next->field != cur->field) {                                                                       \
            next->field = cur->field;                                                                          \
            note(names, cap, name);                                                                            \
            n++;                                                                                               \
        }                                                                                                      \
    } while (0)
#define KEEP_STR(field, name, secret)                                                                          \
    do {                                                                                                       \
        if (!str_eq(next->field, cur->field)) {                                                                \
            if (keep_str(&next->field, cur->field, secret) != 0)                                               \
                return TG_ENOMEM;                                                                              \
            note(names, cap, name);                                                                            \
            n++;                                                                                               \
        }                                                                                                      \
    } while (0)

static int lists_eq(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (!str_eq(a[i], b[i]))
            return 0;
    return 1;
}

/* CIDR lists compare by value, in order (tg_cidr_t is plain bytes, parsed the same way). */
static int cidrs_eq(const tg_cidr_t *a, size_t na, const tg_cidr_t *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof(*a)) == 0);
}

/* Replaces the list (owned by next) with a copy of src. */
static int keep_cidrs(tg_cidr_t **dst, size_t *ndst, const tg_cidr_t *src, size_t n)
{
    tg_cidr_t *copy = NULL;
    if (n > 0) {
        if ((copy = malloc(n * sizeof(*copy))) == NULL)
            return TG_ENOMEM;
        memcpy(copy, src, n * sizeof(*copy));
    }
    free(*dst);
    *dst = copy;
    *ndst = n;
    return 0;
}

static int keep_webhook_secrets(tg_config_t *next, const tg_config_t *cur)
{
    char **copy = cur->stripe.nwebhook_secrets > 0 ? calloc(cur->stripe.nwebhook_secrets, sizeof(*copy)) : NULL;
    if (cur->stripe.nwebhook_secrets > 0 && copy == NULL)
        return TG_ENOMEM;
    for (size_t i = 0; i < cur->stripe.nwebhook_secrets; i++)
        if ((copy[i] = strdup(cur->stripe.webhook_secrets[i])) == NULL) {
            for (size_t j = 0; j < i; j++)
                explicit_bzero(copy[j], strlen(copy[j])), free(copy[j]);
            free(copy);
            return TG_ENOMEM;
        }
    for (size_t i = 0; i < next->stripe.nwebhook_secrets; i++)
        explicit_bzero(next->stripe.webhook_secrets[i], strlen(next->stripe.webhook_secrets[i])),
            free(next->stripe.webhook_secrets[i]);
    free(next->stripe.webhook_secrets);
    next->stripe.webhook_secrets = copy;
    next->stripe.nwebhook_secrets = cur->stripe.nwebhook_secrets;
    return 0;
}

int tg_config_keep_restart_settings(tg_config_t *next, const tg_config_t *cur, char *names, size_t cap)
{
    int n = 0;
    if (cap > 0)
        names[0] = '\0';
    /* sockets and worker threads (http/server.c) */
    KEEP_STR(server.listen, "server.listen", 0);
    KEEP_STR(server.admin_listen, "server.admin_listen", 0);
    KEEP_INT(server.workers, "server.workers");
    KEEP_INT(server.max_header_bytes, "server.max_header_bytes");
    KEEP_INT(server.max_body_bytes, "server.max_body_bytes");
    if (!cidrs_eq(next->server.trusted_proxies, next->server.ntrusted_proxies, cur->server.trusted_proxies,
                  cur->server.ntrusted_proxies)) {
        if (keep_cidrs(&next->server.trusted_proxies, &next->server.ntrusted_proxies, cur->server.trusted_proxies,
                       cur->server.ntrusted_proxies) != 0)
            return TG_ENOMEM;
        note(names, cap, "server.trusted_proxies");
        n++;
    }
    /* the upstream pool of every worker (http/proxy.c) */
    KEEP_STR(upstream.url, "upstream.url", 0);
    KEEP_INT(upstream.timeout_ms, "upstream.timeout_ms");
    KEEP_INT(upstream.keepalive_ms, "upstream.keepalive_ms");
    /* connections and threads opened at start */
    KEEP_STR(storage.database, "storage.database", 0);
    KEEP_INT(metering.durability, "metering.durability");
    KEEP_INT(metering.flush_ms, "metering.flush_ms");
    KEEP_INT(metering.sync_ms, "metering.sync_ms");
    KEEP_STR(metering.log_dir, "metering.log_dir", 0);
    KEEP_STR(cluster.redis, "cluster.redis", 1);
    KEEP_STR(cluster.node_id, "cluster.node_id", 0);
    KEEP_INT(cluster.sync_ms, "cluster.sync_ms");
    /* the period closer's connections and its threads' CPUs, set at start (billing/closer.c) */
    KEEP_INT(billing.close_connections, "billing.close_connections");
    KEEP_STR(billing.close_cpus, "billing.close_cpus", 0);
    /* digests and hashers computed at start (admin/admin_api.c, gateway/apikey.c): a changed
     * secret would also turn every stored key hash invalid */
    KEEP_STR(admin.token, "admin.token", 1);
    KEEP_STR(metrics.token, "metrics.token", 1);
    KEEP_STR(keys.secret, "keys.secret", 1);
    KEEP_STR(portal.public_url, "portal.public_url", 0);
    /* the decision API: its table, receiver socket and thread are made at start (main.c); its
     * handler reads the token of the start configuration */
    KEEP_INT(decide.enabled, "decide");
    KEEP_STR(decide.token, "decide.token", 1);
    KEEP_STR(decide.syslog, "decide.syslog", 0);
    KEEP_STR(decide.syslog_secret, "decide.syslog_secret", 1);
    KEEP_INT(decide.settle_timeout_ms, "decide.settle_timeout_ms");
    KEEP_INT(decide.on_timeout, "decide.on_timeout");
    KEEP_INT(decide.max_pending, "decide.max_pending");
    /* the Stripe outbox thread and its client settings (payments/outbox.h) */
    KEEP_INT(stripe.enabled, "stripe");
    KEEP_STR(stripe.secret_key, "stripe.secret_key", 1);
    KEEP_STR(stripe.api_base, "stripe.api_base", 0);
    KEEP_INT(stripe.billing, "stripe.billing");
    KEEP_INT(stripe.collection, "stripe.collection");
    KEEP_INT(stripe.days_until_due, "stripe.days_until_due");
    /* the mail sender and the webhook delivery thread are set up from the configuration of the
     * start (notify/mail_outbox.h, notify/delivery.h); the owner's endpoints are synced then */
    KEEP_INT(email.enabled, "email");
    KEEP_STR(email.smtp_url, "email.smtp_url", 0);
    if (!str_eq(next->email.from, cur->email.from)) {
        if (keep_str(&next->email.from_addr, cur->email.from_addr, 0) != 0)
            return TG_ENOMEM;
    }
    KEEP_STR(email.from, "email.from", 0);
    KEEP_STR(email.username, "email.username", 0);
    KEEP_STR(email.password, "email.password", 1);
    KEEP_INT(email.starttls, "email.starttls");
    KEEP_STR(email.templates, "email.templates", 0);
    KEEP_INT(notifications.allow_http, "notifications.allow_http");
    KEEP_INT(notifications.timeout_ms, "notifications.timeout_ms");
    KEEP_INT(notifications.retry_base_ms, "notifications.retry_base_ms");
    KEEP_INT(notifications.retry_cap_ms, "notifications.retry_cap_ms");
    KEEP_INT(notifications.retry_window_s, "notifications.retry_window_seconds");
    KEEP_INT(notifications.breaker_failures, "notifications.breaker_failures");
    KEEP_INT(notifications.breaker_cooldown_ms, "notifications.breaker_cooldown_ms");
    KEEP_INT(notifications.disable_after_s, "notifications.disable_after_seconds");
    /* notifications.endpoints are not kept: a reload hook (main.c, reload_webhooks) syncs them
     * into the store, where the delivery thread and the event fan-out read them per event. The
     * private networks a delivery may reach are read by the delivery thread from its start
     * configuration. */
    if (!cidrs_eq(next->notifications.allow_private_networks, next->notifications.nallow_private_networks,
                  cur->notifications.allow_private_networks, cur->notifications.nallow_private_networks)) {
        if (keep_cidrs(&next->notifications.allow_private_networks, &next->notifications.nallow_private_networks,
                       cur->notifications.allow_private_networks, cur->notifications.nallow_private_networks) != 0)
            return TG_ENOMEM;
        note(names, cap, "notifications.allow_private_networks");
        n++;
    }
    if (!lists_eq(next->stripe.webhook_secrets, next->stripe.nwebhook_secrets, cur->stripe.webhook_secrets,
                  cur->stripe.nwebhook_secrets)) {
        if (keep_webhook_secrets(next, cur) != 0)
            return TG_ENOMEM;
        note(names, cap, "stripe.webhook_secrets");
        n++;
    }
    return n;
}
