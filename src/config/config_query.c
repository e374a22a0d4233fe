/* config_query.c - reading a loaded configuration: plan lookup, path and route matching, and the
 * human summary `tollgate check-config` prints (see config.h).
 *
 * These run on the request path (tg_plan_allows, tg_config_match_route) from many threads at
 * once; they only read the immutable config and allocate nothing. */
#include "config/config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/db_url.h"
#include "util/redis_url.h"

const tg_plan_t *tg_config_find_plan(const tg_config_t *cfg, const char *id)
{
    if (cfg == NULL || id == NULL)
        return NULL;
    for (size_t i = 0; i < cfg->nplans; i++)
        if (cfg->plans[i].id != NULL && strcmp(cfg->plans[i].id, id) == 0)
            return &cfg->plans[i];
    return NULL;
}

static const tg_metric_display_t *metric_display(const tg_config_t *cfg, const char *metric)
{
    for (size_t i = 0; cfg != NULL && metric != NULL && i < cfg->metering.nmetrics; i++)
        if (strcmp(cfg->metering.metrics[i].metric, metric) == 0)
            return &cfg->metering.metrics[i];
    return NULL;
}

const char *tg_config_metric_name(const tg_config_t *cfg, const char *metric)
{
    const tg_metric_display_t *m = metric_display(cfg, metric);
    return m != NULL && m->name != NULL ? m->name : metric != NULL ? metric : "";
}

const char *tg_config_metric_unit(const tg_config_t *cfg, const char *metric)
{
    const tg_metric_display_t *m = metric_display(cfg, metric);
    return m != NULL && m->unit != NULL ? m->unit : "unit";
}

uint64_t tg_plan_included(const tg_plan_t *plan, const char *metric)
{
    for (size_t i = 0; i < plan->nincluded; i++)
        if (strcmp(plan->included[i].metric, metric) == 0)
            return plan->included[i].amount;
    return TG_UNLIMITED;
}

int tg_plan_blocks_before(const tg_plan_t *plan, const char *metric, uint64_t used, uint64_t *allowance)
{
    uint64_t included = tg_plan_included(plan, metric);
    if (plan->on_quota != TG_QUOTA_BLOCK || included == TG_UNLIMITED || used <= included)
        return 0;
    if (allowance != NULL)
        *allowance = included;
    return 1;
}

int tg_config_self_service(const tg_config_t *cfg, const char *plan_id)
{
    if (!cfg->portal.signup.enabled)
        return 0;
    if (cfg->portal.signup.plans == NULL)
        return 1;
    for (size_t i = 0; i < cfg->portal.signup.nplans; i++)
        if (strcmp(cfg->portal.signup.plans[i], plan_id) == 0)
            return 1;
    return 0;
}

int tg_path_match(const char *pattern, const char *path, size_t len)
{
    /* Glob with one backtrack point: on a mismatch, let the last '*' swallow one more character.
     * That is enough when '*' is the only wildcard, and it is O(len * pattern) at worst with no
     * recursion, so a hostile path cannot make it explode. */
    const char *p = pattern, *star = NULL;
    size_t i = 0, mark = 0;
    while (i < len) {
        if (*p == '*') {
            star = p++;
            mark = i;
        } else if (*p != '\0' && *p == path[i]) {
            p++;
            i++;
        } else if (star != NULL) {
            p = star + 1;
            i = ++mark;
        } else {
            return 0;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

int tg_plan_allows(const tg_plan_t *plan, const char *path, size_t len)
{
    if (plan->endpoints == NULL && plan->nendpoints == 0)
        return 1; /* no endpoints list: every path */
    for (size_t i = 0; i < plan->nendpoints; i++)
        if (tg_path_match(plan->endpoints[i], path, len))
            return 1;
    return 0;
}

const tg_route_t *tg_config_match_route(const tg_config_t *cfg, const char *method, size_t mlen, const char *path,
                                        size_t plen)
{
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const tg_route_t *r = &cfg->routes[i];
        if (r->method != NULL && (method == NULL || strlen(r->method) != mlen || memcmp(r->method, method, mlen) != 0))
            continue;
        if (r->pattern != NULL && tg_path_match(r->pattern, path, plen))
            return r;
    }
    return NULL;
}

/* ---- describe ---- */

typedef struct sbuf {
    char *b;
    size_t len, cap;
} sbuf_t;

/* Appends; on allocation failure frees the buffer and leaves b NULL, so the result is NULL. */
static void put(sbuf_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf_t *s, const char *fmt, ...)
{
    if (s->b == NULL)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(s->b + s->len, s->cap - s->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < s->cap - s->len) {
            s->len += (size_t)n;
            return;
        }
        size_t cap = s->cap * 2 + (size_t)n;
        char *nb = realloc(s->b, cap);
        if (nb == NULL) {
            free(s->b);
            s->b = NULL;
            return;
        }
        s->b = nb;
        s->cap = cap;
    }
}

static const char *rate_unit(int64_t period_ns)
{
    switch (period_ns / INT64_C(1000000000)) {
    case 1:
        return "sec";
    case 60:
        return "min";
    case 3600:
        return "hour";
    default:
        return "day";
    }
}

static void put_money(sbuf_t *s, tg_money_t m, const tg_plan_t *p)
{
    char buf[TG_MONEY_FMT_MAX];
    if (tg_money_format(m, p->currency_digits, buf, sizeof(buf)) < 0)
        snprintf(buf, sizeof(buf), "?");
    put(s, "%s %s", buf, p->currency);
}

const char *tg_price_model_name(tg_price_model_t m)
{
    switch (m) {
    case TG_MODEL_PER_UNIT:
        return "per unit";
    case TG_MODEL_GRADUATED:
        return "graduated";
    case TG_MODEL_VOLUME:
        return "volume";
    case TG_MODEL_PACKAGE:
        return "package";
    }
    return "unknown";
}

static void put_charge(sbuf_t *s, const tg_plan_t *p, const tg_charge_t *ch)
{
    uint64_t inc = tg_plan_included(p, ch->metric);
    put(s, "  charge %s (%s", ch->metric, tg_price_model_name(ch->model));
    if (inc != TG_UNLIMITED && inc > 0)
        put(s, ", above the %" PRIu64 " included", inc);
    put(s, "): ");
    switch (ch->model) {
    case TG_MODEL_PER_UNIT:
        put_money(s, ch->unit_price, p);
        put(s, " per unit\n");
        break;
    case TG_MODEL_PACKAGE:
        put_money(s, ch->package_price, p);
        put(s, " per %" PRIu64 " units, partial packages rounded %s\n", ch->package_size, ch->round_up ? "up" : "down");
        break;
    default:
        put(s, "%s\n",
            ch->model == TG_MODEL_VOLUME ? "every unit at the tier the total reaches"
                                         : "each unit at the tier it falls in");
        for (size_t t = 0; t < ch->ntiers; t++) {
            const tg_tier_t *tier = &ch->tiers[t];
            if (tier->up_to == TG_UNLIMITED)
                put(s, "    up to inf: ");
            else
                put(s, "    up to %" PRIu64 ": ", tier->up_to);
            put_money(s, tier->unit_price, p);
            put(s, " per unit");
            if (tier->flat_price != 0) {
                put(s, " + ");
                put_money(s, tier->flat_price, p);
                put(s, " flat");
            }
            put(s, "\n");
        }
    }
}

static void put_plan(sbuf_t *s, const tg_plan_t *p)
{
    put(s, "plan %s \"%s\": ", p->id, p->name);
    put_money(s, p->price, p);
    put(s, " per %s", p->interval == TG_INTERVAL_YEAR ? "year" : "month");
    if (p->trial_days > 0)
        put(s, ", %d-day trial", p->trial_days);
    if (p->requires_payment_method)
        put(s, ", card on file required");
    put(s, "\n  rate limit: ");
    if (p->rate_limit.count == 0)
        put(s, "unlimited\n");
    else
        put(s, "%" PRIu64 "/%s, burst %" PRIu64 "\n", p->rate_limit.count, rate_unit(p->rate_limit.period_ns),
            p->burst);
    put(s, "  endpoints: ");
    if (p->endpoints == NULL && p->nendpoints == 0)
        put(s, "all");
    for (size_t j = 0; j < p->nendpoints; j++)
        put(s, "%s%s", j ? ", " : "", p->endpoints[j]);
    put(s, "\n  included: ");
    if (p->nincluded == 0)
        put(s, "no allowance (every metric unlimited)");
    for (size_t j = 0; j < p->nincluded; j++)
        put(s, "%s%" PRIu64 " %s", j ? ", " : "", p->included[j].amount, p->included[j].metric);
    put(s, " per period\n  over quota: ");
    if (p->on_quota == TG_QUOTA_BLOCK)
        put(s, "block (429 quota_exceeded)\n");
    else if (p->on_quota == TG_QUOTA_BILL)
        put(s, "bill as overage\n");
    else
        put(s, "throttle to %" PRIu64 "/%s\n", p->throttle_rate.count, rate_unit(p->throttle_rate.period_ns));
    if (p->ncharges == 0)
        put(s, "  charges: none\n");
    for (size_t j = 0; j < p->ncharges; j++)
        put_charge(s, p, &p->charges[j]);
    if (p->minimum != 0) {
        put(s, "  minimum usage charge: ");
        put_money(s, p->minimum, p);
        put(s, "\n");
    }
    if (p->maximum != 0) {
        put(s, "  usage charges capped at ");
        put_money(s, p->maximum, p);
        put(s, "%s\n", p->block_at_maximum ? " (block at the cap)" : "");
    }
    for (size_t j = 0; j < p->nfeatures; j++)
        put(s, "  * %s\n", p->features[j]);
}

char *tg_config_describe(const tg_config_t *cfg)
{
    sbuf_t s = {malloc(4096), 0, 4096};
    put(&s, "gateway %s, admin %s, %d worker%s\n", cfg->server.listen, cfg->server.admin_listen, cfg->server.workers,
        cfg->server.workers == 1 ? "" : "s");
    /* paths as resolved (relative to the file's folder), the database's password never */
    char db[1024];
    tg_db_url_redact(cfg->storage.database, db, sizeof(db));
    put(&s, "upstream %s (timeout %d ms)\nstorage %s\n", cfg->upstream.url, cfg->upstream.timeout_ms, db);
    if (cfg->metering.log_dir != NULL)
        put(&s, "metering logs in %s\n", cfg->metering.log_dir);
    else if (strncmp(cfg->storage.database, "sqlite:", 7) == 0)
        put(&s, "metering logs beside the database: %s-usagelog.1 and .2\n", cfg->storage.database + 7);
    static const char *const durability[] = {"batched", "strict", "process"};
    put(&s, "metering %s", durability[cfg->metering.durability]);
    if (cfg->metering.durability == 0)
        put(&s, " (commit every %d ms)", cfg->metering.flush_ms);
    else if (cfg->metering.durability == 2)
        put(&s, " (fdatasync every %d ms)", cfg->metering.sync_ms);
    put(&s, "; billed statuses:");
    int any = 0;
    for (int c = 1; c <= 5; c++)
        if ((cfg->metering.billable_classes >> c) & 1) {
            put(&s, " %dxx", c);
            any = 1;
        }
    put(&s, "%s%s\n", any ? "" : " none", cfg->metering.bill_429 ? " (429 included)" : " (429 excluded)");
    /* Stripe: the mode and the counts only; the keys and secrets are never printed. */
    if (cfg->stripe.enabled) {
        put(&s, "stripe %s mode, %s, billing %s, collection %s", strncmp(cfg->stripe.secret_key + 3, "live", 4) == 0 ? "live" : "test",
            cfg->stripe.secret_key[0] == 'r' ? "restricted key" : "secret key",
            cfg->stripe.billing == TG_STRIPE_BILLING_STRIPE ? "stripe" : "tollgate",
            cfg->stripe.collection == TG_STRIPE_SEND_INVOICE ? "send_invoice" : "charge_automatically");
        if (cfg->stripe.collection == TG_STRIPE_SEND_INVOICE)
            put(&s, " (due in %d days)", cfg->stripe.days_until_due);
        put(&s, ", api %s, %zu webhook secret%s\n", cfg->stripe.api_base, cfg->stripe.nwebhook_secrets,
            cfg->stripe.nwebhook_secrets == 1 ? "" : "s");
        put(&s, "dunning: suspended after %d failed payments or %d days past due\n",
            cfg->dunning.suspend_after_failures, cfg->dunning.grace_days);
    } else {
        put(&s, "stripe off (invoices are finalized and marked paid by the owner)\n");
    }
    /* cluster: where the limits are shared, never the URL itself (it may hold a password) */
    tg_redis_url_t ru;
    char why[160];
    if (cfg->cluster.redis != NULL && tg_redis_url_parse(cfg->cluster.redis, &ru, why, sizeof(why)) == 0)
        put(&s, "limits shared through Redis %s:%d/%d as node %s (sync every %d ms)\n", ru.host, ru.port, ru.db,
            cfg->cluster.node_id, cfg->cluster.sync_ms);
    else
        put(&s, "limits local to this node (no cluster.redis)\n");
    memset(&ru, 0, sizeof(ru));
    if (cfg->billing.finalize_after_s > 0)
        put(&s, "drafts finalized after %" PRId64 " s\n", cfg->billing.finalize_after_s);
    else
        put(&s, "drafts finalized by hand\n");
    if (cfg->decide.enabled) /* never the token itself */
        put(&s, "decision API on the gateway port: GET /v1/decide, POST /v1/check and /v1/report, Envoy ext_authz "
                "at /v1/decide/envoy (token in X-Tollgate-Token)\n");
    if (cfg->decide.enabled && cfg->decide.syslog != NULL) /* whether a secret is set, never the secret */
        put(&s, "settlements from nginx over syslog on udp %s, %s\n", cfg->decide.syslog,
            cfg->decide.syslog_secret != NULL ? "lines carry decide.syslog_secret"
                                              : "without decide.syslog_secret (loopback only)");
    for (size_t i = 0; i < cfg->nplans; i++) {
        put(&s, "\n");
        put_plan(&s, &cfg->plans[i]);
    }
    put(&s, "\nroutes (first match wins):\n");
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const tg_route_t *r = &cfg->routes[i];
        put(&s, "  %s%s%s: weight %" PRIu64 ", meters", r->method != NULL ? r->method : "",
            r->method != NULL ? " " : "", r->pattern, r->weight);
        for (size_t j = 0; j < r->nmeter; j++)
            put(&s, " %s=%" PRIu64, r->meter[j].metric, r->meter[j].units);
        put(&s, "\n");
    }
    put(&s, "  anything else: weight 1, meters api_calls=1\n");
    if (cfg->metering.nmetrics > 0) {
        put(&s, "\nmetrics as people read them (metering.metrics):\n");
        for (size_t i = 0; i < cfg->metering.nmetrics; i++)
            put(&s, "  %s: \"%s\", priced per %s\n", cfg->metering.metrics[i].metric,
                tg_config_metric_name(cfg, cfg->metering.metrics[i].metric),
                tg_config_metric_unit(cfg, cfg->metering.metrics[i].metric));
    }
    if (cfg->portal.title != NULL)
        put(&s, "portal title \"%s\"\n", cfg->portal.title);
    return s.b;
}
