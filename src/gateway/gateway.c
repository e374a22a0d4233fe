/* gateway.c - see gateway.h. */
#include "gateway/gateway.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_live.h"
#include "gateway/apikey.h"
#include "gateway/key_cache.h"
#include "metrics/metrics.h"
#include "util/clock.h"
#include "util/decimal.h"
#include "util/utf8.h"
#include "util/log.h"

struct tg_gateway {
    tg_gateway_deps_t deps;
    tg_apikey_hasher_t *hasher;
    uint64_t key_cache_owner; /* names this gateway's hasher to the threads' key caches */
    char billing_url[320]; /* the portal's billing section, for 402 payment_required */
};

/* The request path formats a dozen small strings; these avoid printf's machinery there. */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* "METHOD path" (or the path alone without a method) into out[TG_ENDPOINT_MAX], cut to fit. */
static void join_endpoint(char *out, const char *method, size_t mlen, const char *path, size_t plen)
{
    size_t cap = TG_ENDPOINT_MAX - 1, n = 0;
    if (mlen > 0) {
        n = mlen < cap ? mlen : cap;
        memcpy(out, method, n);
        if (n < cap)
            out[n++] = ' ';
    }
    size_t k = plen < cap - n ? plen : cap - n;
    memcpy(out + n, path, k);
    out[n + k] = '\0';
}

static const tg_meter_unit_t default_units[] = {{"api_calls", 1}};

/* The limiter keys of a customer: "<id>" at the plan's rate, "<id>/t" at its throttle rate once
 * the period's allowance is used up (on_quota: throttle). Returns the length. */
static size_t rate_key(char out[TG_ID_MAX + 4], const char *customer_id, int throttled)
{
    copy_str(out, TG_ID_MAX, customer_id);
    size_t kl = strlen(out);
    if (throttled)
        memcpy(out + kl, "/t", 3), kl += 2;
    return kl;
}

/* A plan change converts what the customer used under the old plan's rate to the new one now,
 * not at the next call: the time in between would drain at the old plan's speed. */
static void on_plan_changed(const tg_account_t *acct, const tg_plan_t *from, const tg_plan_t *to, void *arg)
{
    (void)from;
    tg_gateway_t *gw = arg;
    int64_t now = tg_clock_mono_ns();
    char key[TG_ID_MAX + 4];
    size_t kl = rate_key(key, tg_account_id(acct), 0);
    tg_limiter_repolicy(gw->deps.limiter, key, kl, &to->rate_limit, to->burst, now);
    kl = rate_key(key, tg_account_id(acct), 1);
    tg_limiter_repolicy(gw->deps.limiter, key, kl, &to->throttle_rate, to->throttle_rate.count, now);
}

tg_gateway_t *tg_gateway_new(const tg_gateway_deps_t *deps, const uint8_t *secret, size_t secret_len)
{
    tg_gateway_t *gw = calloc(1, sizeof(*gw));
    if (gw == NULL || (gw->hasher = tg_apikey_hasher_new(secret, secret_len)) == NULL) {
        free(gw);
        return NULL;
    }
    /* keys.secret cannot change by a reload (config_live.c keeps it), so one hasher serves the
     * gateway's life; a new gateway (a restart in tests, another secret) gets a new number and the
     * threads' caches are emptied on their next call through it */
    static atomic_uint_fast64_t key_cache_owners;
    gw->key_cache_owner = atomic_fetch_add(&key_cache_owners, 1) + 1;
    gw->deps = *deps;
    snprintf(gw->billing_url, sizeof(gw->billing_url), "%s/portal/#billing",
             deps->cfg != NULL && deps->cfg->portal.public_url != NULL ? deps->cfg->portal.public_url : "");
    if (gw->deps.accounts != NULL && gw->deps.limiter != NULL)
        tg_accounts_on_plan_change(gw->deps.accounts, on_plan_changed, gw);
    return gw;
}

void tg_gateway_free(tg_gateway_t *gw)
{
    if (gw == NULL)
        return;
    if (gw->deps.accounts != NULL && gw->deps.limiter != NULL)
        tg_accounts_on_plan_change(gw->deps.accounts, NULL, NULL);
    tg_apikey_hasher_free(gw->hasher);
    free(gw);
}

/* The configuration for one call: one atomic load, and the pointer stays valid (config_live.h). */
static const tg_config_t *current_cfg(const tg_gateway_t *gw)
{
    return gw->deps.live != NULL ? tg_config_live_get(gw->deps.live) : gw->deps.cfg;
}

const tg_config_t *tg_gateway_config(const tg_gateway_t *gw)
{
    return current_cfg(gw);
}

static int refuse(tg_refusal_t *r, int status, const char *type, tg_outcome_t outcome, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int refuse(tg_refusal_t *r, int status, const char *type, tg_outcome_t outcome, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof(r->message), fmt, ap);
    va_end(ap);
    tg_utf8_scrub(r->message); /* it may quote the request's path */
    r->status = status;
    r->type = type;
    r->outcome = (int)outcome;
    tg_metrics_count_decision(outcome);
    return 0;
}

/* Finds the key in "Authorization: Bearer KEY" or "X-API-Key: KEY". */
static int extract_key(const tg_call_request_t *rq, const char **key, size_t *len)
{
    if (rq->authorization != NULL && rq->authorization_len > 7 && strncasecmp(rq->authorization, "Bearer ", 7) == 0) {
        const char *p = rq->authorization + 7, *end = rq->authorization + rq->authorization_len;
        while (p < end && *p == ' ')
            p++;
        while (end > p && end[-1] == ' ')
            end--;
        *key = p;
        *len = (size_t)(end - p);
        return *len > 0;
    }
    if (rq->api_key != NULL && rq->api_key_len > 0) {
        *key = rq->api_key;
        *len = rq->api_key_len;
        return 1;
    }
    return 0;
}

/* "pro, enterprise" - the plans whose endpoint lists include path. */
static void plans_allowing(const tg_config_t *cfg, const char *path, size_t len, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < cfg->nplans; i++) {
        if (!tg_plan_allows(&cfg->plans[i], path, len))
            continue;
        int n = snprintf(out + used, cap - used, "%s%s", used ? ", " : "", cfg->plans[i].id);
        if (n < 0 || (size_t)n >= cap - used)
            break;
        used += (size_t)n;
    }
}

/* Plans other than `current` whose allowance of metric is larger: the upgrade path. */
static void plans_with_more(const tg_config_t *cfg, const tg_plan_t *current, const char *metric, char *out, size_t cap)
{
    uint64_t have = tg_plan_included(current, metric);
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < cfg->nplans; i++) {
        const tg_plan_t *p = &cfg->plans[i];
        if (p == current || (tg_plan_included(p, metric) <= have && p->on_quota == TG_QUOTA_BLOCK))
            continue;
        int n = snprintf(out + used, cap - used, "%s%s", used ? ", " : "", p->id);
        if (n < 0 || (size_t)n >= cap - used)
            break;
        used += (size_t)n;
    }
}

/* ---- usage notifications (notify/thresholds.h) ----
 * A reservation that crosses a threshold is noted in the call (crossed[i]), and the event is
 * queued when the call settles as billed, not when it is reserved: a reservation is given back
 * when the upstream fails (5xx, timeout) or the client leaves, and a notification that 80 % is
 * used must not be sent for units that are never billed. When such a reservation is given back,
 * the notifier is asked to look again (RECHECK): other calls may have reached the level in the
 * meantime without crossing it themselves, and the level must not be missed. The cost on a
 * call that crosses nothing is a few multiplications and compares, on the call's own memory. */

static void queue_crossing(tg_gateway_t *gw, const tg_call_t *call, tg_crossing_kind_t kind, const char *metric,
                           unsigned mask, uint64_t used)
{
    tg_crossing_t c = {.kind = (uint8_t)kind,
                       .mask = (uint8_t)mask,
                       .plan = call->plan,
                       .period_start = call->period_start,
                       .period_end = call->period_end,
                       .used = used,
                       .included = tg_plan_included(call->plan, metric)};
    copy_str(c.customer_id, sizeof(c.customer_id), tg_account_id(call->account));
    copy_str(c.metric, sizeof(c.metric), metric);
    tg_thresholds_push(gw->deps.thresholds, &c); /* a full queue drops it, counted */
}

static void release_units(tg_gateway_t *gw, tg_call_t *call, size_t upto)
{
    for (size_t i = 0; i < upto; i++) {
        tg_quota_release(gw->deps.quota, tg_account_id(call->account), call->period_start, call->units[i].metric,
                         call->units[i].units);
        if (call->crossed[i] != 0)
            queue_crossing(gw, call, TG_CROSSING_RECHECK, call->units[i].metric, call->crossed[i], 0);
    }
}

static int decide(tg_gateway_t *gw, const tg_call_request_t *rq, tg_call_t *call, tg_refusal_t *refusal);

static int same_metric(const char *name, const char *metric, size_t len)
{
    return name != NULL && strncmp(name, metric, len) == 0 && name[len] == '\0';
}

/* Configurations replaced by a reload live until exit (config_live.h), so their strings do. */
const char *tg_gateway_config_metric(tg_gateway_t *gw, const char *metric, size_t len)
{
    const tg_config_t *cfg = current_cfg(gw);
    if (same_metric(default_units[0].metric, metric, len))
        return default_units[0].metric;
    for (size_t i = 0; i < cfg->nplans; i++)
        for (size_t j = 0; j < cfg->plans[i].nincluded; j++)
            if (same_metric(cfg->plans[i].included[j].metric, metric, len))
                return cfg->plans[i].included[j].metric;
    for (size_t i = 0; i < cfg->nroutes; i++)
        for (size_t j = 0; j < cfg->routes[i].nmeter; j++)
            if (same_metric(cfg->routes[i].meter[j].metric, metric, len))
                return cfg->routes[i].meter[j].metric;
    for (size_t i = 0; i < cfg->metering.nmetrics; i++)
        if (same_metric(cfg->metering.metrics[i].metric, metric, len))
            return cfg->metering.metrics[i].metric;
    return NULL;
}

/* The decision, also counted by plan once the caller's plan is known (metrics/metrics.h). */
int tg_gateway_admit(tg_gateway_t *gw, const tg_call_request_t *rq, tg_call_t *call, tg_refusal_t *refusal)
{
    int ok = decide(gw, rq, call, refusal);
    if (call->plan != NULL)
        tg_metrics_count_plan_decision(call->plan->id, ok ? TG_OUT_ALLOWED : (tg_outcome_t)refusal->outcome);
    return ok;
}

/* The key's digest, HMAC-SHA-256 under keys.secret, as the directory stores it: from this
 * thread's key cache when the key was seen before (returns 1), else checked and hashed (returns
 * 0), or -1 when it is malformed. A hit skips tg_apikey_check_format and the HMAC: only keys of
 * the right format that the directory knew are cached (by decide, below), and a hit means the
 * same key (key_cache.h). Measured per call under callgrind (bench/callpath_instructions.sh,
 * which hides SHA-NI): the check's 1,216 and the HMAC's 6,737 instructions become a hit's 516
 * (SipHash 424), decide() 10,809 -> 3,364 and the whole call 40,600-42,300 -> 32,600-33,700;
 * natively (bench/key_cache.sh, loaded 2-core EPYC) 421 ns -> 65 ns per key.
 * *cache is the thread's cache (NULL when memory is short) and fp the key's fingerprint in it,
 * for tg_key_cache_insert once the directory has answered. */
static int digest_of_key(const tg_gateway_t *gw, const char *key, size_t key_len, uint8_t hash[TG_KEY_DIGEST_LEN],
                         tg_key_cache_t **cache, uint8_t fp[TG_KEY_FINGERPRINT_LEN])
{
    if ((*cache = tg_key_cache_of_thread(gw->key_cache_owner)) != NULL) {
        tg_key_cache_fingerprint(*cache, key, key_len, fp);
        if (tg_key_cache_find(*cache, fp, hash))
            return 1;
    }
    if (tg_apikey_check_format(key, key_len) != 0)
        return -1;
    tg_apikey_hasher_hash(gw->hasher, key, key_len, hash);
    return 0;
}

static int decide(tg_gateway_t *gw, const tg_call_request_t *rq, tg_call_t *call, tg_refusal_t *refusal)
{
    const tg_config_t *cfg = current_cfg(gw);
    const char *key;
    size_t key_len;

    memset(call, 0, sizeof(*call));
    /* not the whole refusal (its 512-byte message) for every admitted call: refuse() sets the
     * rest, and only a refused call's refusal is read (gateway.h) */
    refusal->retry_after_s = 0;
    call->request_id = rq->request_id;
    int64_t mono = rq->arrived_mono_ns != 0 ? rq->arrived_mono_ns : tg_clock_mono_ns();
    call->decided_ns = tg_clock_now_at(mono);
    int64_t now_s = call->decided_ns / TG_NS_PER_SEC;

    if (!extract_key(rq, &key, &key_len))
        return refuse(refusal, 401, "missing_key", TG_OUT_MISSING_KEY,
                      "No API key. Send it as \"Authorization: Bearer <key>\" or \"X-API-Key: <key>\".");
    uint8_t hash[TG_KEY_DIGEST_LEN];
    tg_key_cache_t *key_cache;
    uint8_t fp[TG_KEY_FINGERPRINT_LEN];
    int cached = digest_of_key(gw, key, key_len, hash, &key_cache, fp);
    if (cached < 0)
        return refuse(refusal, 401, "invalid_key", TG_OUT_INVALID_KEY,
                      "The API key is malformed (wrong prefix, length or checksum); check it for a typo.");
    tg_apikey_prefix(key, key_len, call->key_prefix, sizeof(call->key_prefix));
    tg_auth_t auth;
    tg_accounts_authenticate(gw->deps.accounts, hash, now_s, &auth);
    /* Only a digest the directory knew (OK, revoked or expired) is cached, and only the digest:
     * the lookup above runs on every call, so revocation and the rest apply to the next one. A
     * made-up key is never known, so an attacker trying keys neither fills the cache nor evicts
     * real keys from it. */
    if (cached == 0 && key_cache != NULL && auth.result != TG_AUTH_UNKNOWN)
        tg_key_cache_insert(key_cache, fp, hash);
    switch (auth.result) {
    case TG_AUTH_OK:
        break;
    case TG_AUTH_REVOKED:
        return refuse(refusal, 401, "invalid_key", TG_OUT_INVALID_KEY, "This API key has been revoked.");
    case TG_AUTH_EXPIRED:
        return refuse(refusal, 401, "invalid_key", TG_OUT_INVALID_KEY,
                      "This API key has expired (it was rotated); use its replacement.");
    default:
        return refuse(refusal, 401, "invalid_key", TG_OUT_INVALID_KEY, "This API key does not exist.");
    }

    call->account = auth.account;
    memcpy(call->key_id, auth.key_id, sizeof(call->key_id));
    const tg_plan_t *plan = call->plan = tg_account_plan(auth.account);
    tg_account_status_t status = tg_account_status(auth.account, now_s);
    if (status == TG_ACCT_SUSPENDED && tg_account_payment_hold(auth.account))
        return refuse(refusal, 402, "payment_required", TG_OUT_SUSPENDED,
                      "Payment for this account failed; update the payment method at %s to restore access.",
                      gw->billing_url);
    if (status == TG_ACCT_INCOMPLETE)
        return refuse(refusal, 402, "payment_method_required", TG_OUT_SUSPENDED,
                      "This plan needs a payment method before its keys work; add a card at %s.", gw->billing_url);
    if (status == TG_ACCT_SUSPENDED || status == TG_ACCT_CANCELED)
        return refuse(refusal, 402, "account_suspended", TG_OUT_SUSPENDED,
                      "This account is %s; contact the API provider to restore access.",
                      status == TG_ACCT_SUSPENDED ? "suspended" : "canceled");
    if (plan->require_email_confirmation && !tg_account_email_confirmed(auth.account))
        return refuse(refusal, 403, "email_unconfirmed", TG_OUT_SUSPENDED,
                      "Confirm the account's email address first: open the link mailed to it at sign-up.");

    if (!tg_plan_allows(plan, rq->path, rq->path_len)) {
        char others[256];
        plans_allowing(cfg, rq->path, rq->path_len, others, sizeof(others));
        return refuse(refusal, 403, "endpoint_not_in_plan", TG_OUT_ENDPOINT,
                      "The %s plan does not include %.*s. %s%s%s", plan->id,
                      (int)(rq->path_len > 200 ? 200 : rq->path_len), rq->path,
                      others[0] ? "Plans that include it: " : "No plan includes it.", others, others[0] ? "." : "");
    }

    /* Before any budget is used: a call whose usage could not be recorded is not made. */
    if (tg_meter_backlogged(gw->deps.meter)) {
        refusal->retry_after_s = 1;
        return refuse(refusal, 503, "metering_unavailable", TG_OUT_METERING_UNAVAILABLE,
                      "Usage cannot be recorded right now, so this call was not made and not billed. "
                      "Retry in a few seconds.");
    }

    /* What the call costs: the first matching route, else one api_call of weight 1. */
    const tg_route_t *route = call->route =
        tg_config_match_route(cfg, rq->method, rq->method_len, rq->path, rq->path_len);
    uint64_t weight = route != NULL ? route->weight : 1;
    const tg_meter_unit_t *units = default_units;
    size_t nunits = 1;
    if (rq->units != NULL && rq->nunits > 0) {
        units = rq->units;
        nunits = rq->nunits < TG_CALL_MAX_METRICS ? rq->nunits : TG_CALL_MAX_METRICS;
    } else if (route != NULL && route->nmeter > 0) {
        units = route->meter;
        nunits = route->nmeter < TG_CALL_MAX_METRICS ? route->nmeter : TG_CALL_MAX_METRICS;
    }
    memcpy(call->units, units, nunits * sizeof(*units));
    call->nunits = nunits;
    if (route != NULL)
        join_endpoint(call->endpoint, route->method, route->method ? strlen(route->method) : 0, route->pattern,
                      strlen(route->pattern));
    else
        join_endpoint(call->endpoint, rq->method, rq->method_len, rq->path, rq->path_len > 100 ? 100 : rq->path_len);

    tg_account_period(auth.account, now_s, &call->period_start, &call->period_end);

    /* Quota first: its reservation can be returned exactly, a rate-limit cell cannot. */
    int throttled = 0;
    const char *acct_id = tg_account_id(auth.account);
    for (size_t i = 0; i < nunits; i++) {
        uint64_t included = tg_plan_included(plan, units[i].metric), used = 0;
        int block = plan->on_quota == TG_QUOTA_BLOCK && included != TG_UNLIMITED;
        int rc = tg_quota_reserve(gw->deps.quota, acct_id, call->period_start, units[i].metric, units[i].units,
                                  included, block, &used);
        if (rc == TG_ELIMIT) {
            release_units(gw, call, i);
            tg_thresholds_exhausted(gw->deps.thresholds, acct_id, plan, units[i].metric, call->period_start,
                                    call->period_end, included);
            char more[256];
            plans_with_more(cfg, plan, units[i].metric, more, sizeof(more));
            call->has_quota = 1;
            call->quota_remaining = 0;
            refusal->retry_after_s = call->period_end - now_s;
            return refuse(refusal, 429, "quota_exceeded", TG_OUT_QUOTA_EXCEEDED,
                          "The %s plan's %" PRIu64 " %s for this period are used up; the allowance resets "
                          "in %" PRId64 " seconds. %s%s%s",
                          plan->id, included, units[i].metric, call->period_end - now_s, more[0] ? "Upgrade to " : "",
                          more, more[0] ? " for more." : "");
        }
        if (rc != 0) {
            release_units(gw, call, i);
            return refuse(refusal, 503, "service_unavailable", TG_OUT_QUOTA_EXCEEDED,
                          "The gateway is out of memory; retry shortly.");
        }
        call->used_after[i] = used;
        if (gw->deps.thresholds != NULL && included != TG_UNLIMITED)
            call->crossed[i] = (uint8_t)tg_thresholds_crossed(used > units[i].units ? used - units[i].units : 0, used,
                                                              included, &plan->notify_thresholds);
        if (i == 0 && included != TG_UNLIMITED) {
            call->has_quota = 1;
            call->quota_remaining = used >= included ? 0 : included - used;
        }
        if (plan->on_quota == TG_QUOTA_THROTTLE && included != TG_UNLIMITED && used > included)
            throttled = 1;
    }

    /* Rate limit: the plan's rate, or once over quota on a throttle plan, the reduced rate. */
    call->rate_policy = throttled ? plan->throttle_rate : plan->rate_limit;
    uint64_t burst = throttled ? plan->throttle_rate.count : plan->burst;
    char rl_key[TG_ID_MAX + 4];
    size_t kl = rate_key(rl_key, acct_id, throttled);
    if (tg_limiter_take(gw->deps.limiter, rl_key, kl, &call->rate_policy, burst, weight, mono, &call->rate) != 0) {
        release_units(gw, call, nunits);
        return refuse(refusal, 503, "service_unavailable", TG_OUT_RATE_LIMITED,
                      "The gateway is out of memory; retry shortly.");
    }
    call->has_rate = call->rate_policy.count != 0;
    if (!call->rate.allowed) {
        release_units(gw, call, nunits);
        if (call->has_quota) /* the reservation was returned */
            call->quota_remaining += call->quota_remaining < UINT64_MAX ? units[0].units : 0;
        int64_t ra = (call->rate.retry_after_ns + TG_NS_PER_SEC - 1) / TG_NS_PER_SEC;
        refusal->retry_after_s = ra < 1 ? 1 : ra;
        return refuse(refusal, 429, "rate_limited", TG_OUT_RATE_LIMITED,
                      "Rate limit of the %s plan exceeded%s; retry in %" PRId64 " seconds.", plan->id,
                      throttled ? " (throttled: this period's allowance is used up)" : "", refusal->retry_after_s);
    }
    tg_metrics_count_decision(TG_OUT_ALLOWED);
    return 1;
}

static int is_billable(const tg_config_t *cfg, int status)
{
    if (status == 429)
        return cfg->metering.bill_429;
    if (status < 100 || status > 599)
        return 0;
    return (cfg->metering.billable_classes >> (status / 100)) & 1;
}

int tg_gateway_metric_name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= TG_METRIC_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_'))
            return 0;
    return 1;
}

size_t tg_gateway_parse_units(const char *h, size_t len, tg_usage_t *rows, size_t cap)
{
    size_t n = 0, i = 0;
    while (i < len && n < cap) {
        while (i < len && (h[i] == ' ' || h[i] == ','))
            i++;
        size_t name = i;
        while (i < len && h[i] != '=' && h[i] != ',')
            i++;
        size_t name_len = i - name;
        while (name_len > 0 && h[name + name_len - 1] == ' ')
            name_len--;
        if (i >= len || h[i] != '=') {
            while (i < len && h[i] != ',')
                i++;
            continue;
        }
        i++;
        while (i < len && h[i] == ' ')
            i++;
        uint64_t v = 0;
        int digits = 0, overflow = 0;
        while (i < len && isdigit((unsigned char)h[i])) {
            if (v > (UINT64_MAX - 9) / 10)
                overflow = 1;
            v = v * 10 + (uint64_t)(h[i] - '0');
            i++;
            digits++;
        }
        while (i < len && h[i] == ' ')
            i++;
        int ok = digits > 0 && !overflow && v <= INT64_MAX && (i >= len || h[i] == ',') &&
                 tg_gateway_metric_name_ok(h + name, name_len);
        while (i < len && h[i] != ',')
            i++;
        if (!ok || v == 0)
            continue;
        memcpy(rows[n].metric, h + name, name_len);
        rows[n].metric[name_len] = '\0';
        rows[n].units = v;
        n++;
    }
    return n;
}

/* A value in the upstream's Tollgate-Units over metering.max_units_per_call is a bug of the
 * upstream, not usage: it is not billed (the call's own units from its route still are), and the
 * owner sees it in tollgate_upstream_units_refused_total and in the log, at most once a second
 * so that an upstream that sends it on every call does not flood the log. */
static void refuse_units(tg_gateway_t *gw, const tg_call_t *call, const tg_usage_t *row)
{
    static _Atomic int64_t last_logged_s;
    tg_metrics_count_units_refused();
    int64_t now = call->decided_ns / TG_NS_PER_SEC, last = atomic_load_explicit(&last_logged_s, memory_order_relaxed);
    if (now != last && atomic_compare_exchange_strong(&last_logged_s, &last, now))
        tg_log(TG_LOG_WARN,
               "the upstream reported %s=%llu for customer %s on %s (request %s), over "
               "metering.max_units_per_call (%llu): that value is not billed, the call's own units are",
               row->metric, (unsigned long long)row->units, tg_account_id(call->account), call->endpoint,
               call->request_id != NULL ? call->request_id : "-",
               (unsigned long long)current_cfg(gw)->metering.max_units_per_call);
}

int tg_gateway_settle(tg_gateway_t *gw, tg_call_t *call, int status, int upstream_failed, const char *units_header,
                      size_t units_len, tg_meter_done_cb cb, void *arg)
{
    return tg_gateway_settle_to(gw, call, status, upstream_failed, units_header, units_len, NULL, cb, arg);
}

int tg_gateway_settle_to(tg_gateway_t *gw, tg_call_t *call, int status, int upstream_failed, const char *units_header,
                         size_t units_len, tg_meter_batch_t *batch, tg_meter_done_cb cb, void *arg)
{
    if (call->settled || call->account == NULL)
        return 0;
    call->settled = 1;
    if (upstream_failed || !is_billable(current_cfg(gw), status)) {
        release_units(gw, call, call->nunits);
        tg_metrics_count_billed(0);
        return 0;
    }
    tg_metrics_count_billed(1);
    for (size_t i = 0; i < call->nunits; i++) /* the reservations are billed: their crossings stand */
        if (call->crossed[i] != 0)
            queue_crossing(gw, call, TG_CROSSING_USAGE, call->units[i].metric, call->crossed[i], call->used_after[i]);
    tg_usage_t rows[TG_CALL_MAX_METRICS * 2]; /* every field of rows[0, n) is set below */
    size_t n = call->nunits;
    for (size_t i = 0; i < n; i++) {
        copy_str(rows[i].metric, sizeof(rows[i].metric), call->units[i].metric);
        rows[i].units = call->units[i].units;
    }
    if (units_header != NULL && units_len > 0) {
        size_t extra = tg_gateway_parse_units(units_header, units_len, rows + n, TG_CALL_MAX_METRICS);
        for (size_t i = n; i < n + extra;) {
            if (rows[i].units > current_cfg(gw)->metering.max_units_per_call) {
                refuse_units(gw, call, &rows[i]);
                rows[i] = rows[n + --extra];
                continue;
            }
            tg_quota_add(gw->deps.quota, tg_account_id(call->account), call->period_start, rows[i].metric,
                         rows[i].units);
            uint64_t included = tg_plan_included(call->plan, rows[i].metric);
            if (gw->deps.thresholds != NULL && included != TG_UNLIMITED && call->plan->notify_thresholds.n > 0) {
                /* added, hence billed at once; the counter is read back (another call may have
                 * added in between: then one of the two sees the level crossed, the mark keeps
                 * it to one event) */
                uint64_t after =
                    tg_quota_used(gw->deps.quota, tg_account_id(call->account), call->period_start, rows[i].metric);
                uint64_t before = after > rows[i].units ? after - rows[i].units : 0;
                unsigned mask = tg_thresholds_crossed(before, after, included, &call->plan->notify_thresholds);
                if (mask != 0)
                    queue_crossing(gw, call, TG_CROSSING_USAGE, rows[i].metric, mask, after);
            }
            i++;
        }
        n += extra;
    }
    /* A metric named twice (route and header) would collide on (event_id, metric): merge. The
     * sum saturates, as the stored totals do. */
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n;)
            if (strcmp(rows[i].metric, rows[j].metric) == 0) {
                rows[i].units = rows[i].units > (uint64_t)INT64_MAX - rows[j].units ? (uint64_t)INT64_MAX
                                                                                    : rows[i].units + rows[j].units;
                rows[j] = rows[--n];
            } else {
                j++;
            }
    call->nmetered = n;
    for (size_t i = 0; i < n; i++) {
        copy_str(call->metered[i].metric, sizeof(call->metered[i].metric), rows[i].metric);
        call->metered[i].units = rows[i].units;
    }
    uint64_t event_id = call->event_id != 0 ? call->event_id : tg_meter_next_event_id();
    for (size_t i = 0; i < n; i++) {
        rows[i].event_id = event_id;
        copy_str(rows[i].customer_id, sizeof(rows[i].customer_id), tg_account_id(call->account));
        copy_str(rows[i].key_id, sizeof(rows[i].key_id), call->key_id);
        copy_str(rows[i].plan_id, sizeof(rows[i].plan_id), call->plan->id);
        copy_str(rows[i].endpoint, sizeof(rows[i].endpoint), call->endpoint);
        rows[i].ts_ns = call->decided_ns;
        rows[i].period_start = call->period_start;
        rows[i].status = status;
    }
    int rc =
        batch != NULL ? tg_meter_batch_add(batch, rows, n, cb, arg) : tg_meter_submit(gw->deps.meter, rows, n, cb, arg);
    return rc == 0 ? 1 : rc;
}

void tg_gateway_abandon(tg_gateway_t *gw, tg_call_t *call)
{
    if (call->settled || call->account == NULL)
        return;
    call->settled = 1;
    release_units(gw, call, call->nunits);
}

/* The response headers of a call cost 2,784 instructions per proxied call under callgrind (stop
 * 27) when each was formatted on its own and handed to the transport by name (a strlen, a name
 * and a value copied into the request's pool per header). Now the values are written once into
 * the caller's text (the request's pool: no copy), the two numbers RateLimit shares with
 * X-RateLimit-Remaining and -Reset are written once and pointed at twice, and the names are the
 * transport's compile-time table (TG_CALL_HEADERS): 934 instructions with the transport's part,
 * 625 of them here. */
static void list_header(tg_call_headers_t *out, tg_call_header_t which, const char *value, size_t value_len)
{
    out->list[out->n].which = which;
    out->list[out->n].value = value;
    out->list[out->n].value_len = value_len;
    out->n++;
}

#define PUT_LIT(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) + sizeof(lit) - 1)

/* One number header: its digits at *p, which moves past them. */
static void list_u64(tg_call_headers_t *out, tg_call_header_t which, char **p, uint64_t v)
{
    size_t n = tg_decimal_u64(*p, v);
    list_header(out, which, *p, n);
    *p += n;
}

void tg_gateway_headers(const tg_call_t *call, const tg_refusal_t *refusal, char text[TG_CALL_HEADERS_TEXT_MAX],
                        tg_call_headers_t *out)
{
    char *p = text; /* at most 55 + 20 + 55 + 20 + 20 + 20 = 190 bytes are written */
    out->n = 0;
    if (call->has_rate) {
        uint64_t reset_s = (uint64_t)((call->rate.reset_ns + TG_NS_PER_SEC - 1) / TG_NS_PER_SEC);
        uint64_t window_s = (uint64_t)(call->rate_policy.period_ns / TG_NS_PER_SEC);
        /* RateLimit: "default";r=<remaining>;t=<reset> (draft-ietf-httpapi-ratelimit-headers) */
        const char *item = p;
        p = PUT_LIT(p, "\"default\";r=");
        const char *remaining = p;
        size_t remaining_len = tg_decimal_u64(p, call->rate.remaining);
        p = PUT_LIT(p + remaining_len, ";t=");
        const char *reset = p;
        size_t reset_len = tg_decimal_u64(p, reset_s);
        p += reset_len;
        size_t item_len = (size_t)(p - item);
        list_u64(out, TG_HDR_RATELIMIT_LIMIT, &p, call->rate.limit);
        list_header(out, TG_HDR_RATELIMIT_REMAINING, remaining, remaining_len);
        list_header(out, TG_HDR_RATELIMIT_RESET, reset, reset_len);
        /* RateLimit-Policy: "default";q=<count>;w=<window> */
        const char *policy = p;
        p = PUT_LIT(p, "\"default\";q=");
        p += tg_decimal_u64(p, call->rate_policy.count);
        p = PUT_LIT(p, ";w=");
        p += tg_decimal_u64(p, window_s);
        list_header(out, TG_HDR_RATELIMIT_POLICY, policy, (size_t)(p - policy));
        list_header(out, TG_HDR_RATELIMIT, item, item_len);
    }
    if (call->has_quota) {
        list_u64(out, TG_HDR_QUOTA_REMAINING, &p, call->quota_remaining);
        int64_t reset = call->period_end - call->decided_ns / TG_NS_PER_SEC;
        list_u64(out, TG_HDR_QUOTA_RESET, &p, (uint64_t)(reset > 0 ? reset : 0));
    }
    if (refusal != NULL && (refusal->status == 429 || refusal->status == 503) && refusal->retry_after_s > 0)
        list_u64(out, TG_HDR_RETRY_AFTER, &p, (uint64_t)refusal->retry_after_s);
}

size_t tg_gateway_error_json(const char *type, const char *message, char *buf, size_t cap)
{
    char docs[128];
    snprintf(docs, sizeof(docs), "https://tollgate.dev/docs/errors#%s", type);
    json_t *j = json_pack("{s:{s:s,s:s,s:s}}", "error", "type", type, "message", message, "docs", docs);
    size_t n = j != NULL ? json_dumpb(j, buf, cap, JSON_COMPACT) : 0;
    json_decref(j);
    if (n == 0 || n > cap) { /* cannot happen with our messages; keep the reply well-formed */
        n = (size_t)snprintf(buf, cap, "{\"error\":{\"type\":\"%s\"}}", type);
        if (n >= cap)
            n = cap - 1;
    }
    return n;
}
