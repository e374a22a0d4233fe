/* config.h - tollgate's configuration: one YAML file parsed once into plain, read-only data.
 *
 * The structs here are public on purpose (like nginx's conf structs): every subsystem reads its
 * own section directly. A loaded tg_config_t is immutable and may be read from any thread. */
#ifndef TG_CONFIG_H
#define TG_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "util/cidr.h"
#include "util/money.h"
#include "util/period.h"

#define TG_UNLIMITED UINT64_MAX

/* Usage thresholds that raise usage.threshold_reached, in percent of an included allowance
 * (notifications.usage_thresholds, plans.<p>.notify_thresholds): strictly increasing, 1-1000. */
#define TG_THRESHOLDS_MAX 8
typedef struct tg_thresholds_cfg {
    uint16_t pct[TG_THRESHOLDS_MAX];
    uint8_t n;   /* 0: no usage notifications */
    uint8_t set; /* written in the file (plans: else the global list applies) */
} tg_thresholds_cfg_t;

/* "N/sec|min|hour|day": count events per period_ns. count == 0 means no limit. */
typedef struct tg_rate {
    uint64_t count;
    int64_t period_ns;
} tg_rate_t;

typedef enum tg_quota_action {
    TG_QUOTA_BLOCK = 0,   /* 429 quota_exceeded once the allowance is used */
    TG_QUOTA_BILL = 1,    /* allowed and counted as overage */
    TG_QUOTA_THROTTLE = 2 /* allowed at the reduced rate throttle_rate */
} tg_quota_action_t;

typedef enum tg_price_model {
    TG_MODEL_PER_UNIT = 0,
    TG_MODEL_GRADUATED = 1,
    TG_MODEL_VOLUME = 2,
    TG_MODEL_PACKAGE = 3
} tg_price_model_t;

typedef struct tg_tier {
    uint64_t up_to; /* inclusive upper bound; TG_UNLIMITED for "inf" */
    tg_money_t unit_price;
    tg_money_t flat_price;
} tg_tier_t;

typedef struct tg_charge {
    char *metric;
    tg_price_model_t model;
    tg_money_t unit_price; /* per_unit */
    tg_tier_t *tiers;      /* graduated, volume: ascending up_to, last is TG_UNLIMITED */
    size_t ntiers;
    uint64_t package_size; /* package */
    tg_money_t package_price;
    int round_up; /* package: 1 = round partial packages up (default), 0 = down */
    int line;
} tg_charge_t;

typedef struct tg_allowance {
    char *metric;
    uint64_t amount;
} tg_allowance_t;

typedef struct tg_plan {
    char *id;   /* the key under plans: */
    char *name; /* display name; defaults to id */
    tg_money_t price;
    char currency[4];     /* lowercase ISO 4217 */
    int currency_digits;  /* minor unit digits, e.g. 2 for usd */
    tg_interval_t interval;
    int trial_days;
    tg_rate_t rate_limit; /* count 0 = unlimited */
    uint64_t burst;       /* defaults to rate_limit.count */
    char **endpoints;     /* path patterns; NULL (nendpoints 0) = every path allowed */
    size_t nendpoints;
    tg_allowance_t *included;
    size_t nincluded;
    tg_quota_action_t on_quota;
    tg_rate_t throttle_rate; /* on_quota: throttle:R */
    tg_charge_t *charges;
    size_t ncharges;
    tg_money_t minimum; /* 0 = none */
    tg_money_t maximum; /* 0 = none */
    int block_at_maximum;
    char **features;
    size_t nfeatures;
    int requires_payment_method; /* 1: the trial starts (and keys work) once a card is on file */
    int require_email_confirmation; /* 1: keys answer 403 email_unconfirmed until the address is confirmed */
    tg_thresholds_cfg_t notify_thresholds; /* notify_thresholds, else notifications.usage_thresholds */
    int line;
} tg_plan_t;

/* metering.metrics.<id>: how people read a metric (issue 15): "API calls", priced "per call". */
typedef struct tg_metric_display {
    char *metric; /* the id, as in included, charges and routes[].meter */
    char *name;   /* display name; defaults to the id */
    char *unit;   /* one unit, singular ("call", "image", "GB"); defaults to "unit" */
    int line;
} tg_metric_display_t;

typedef struct tg_meter_unit {
    char *metric;
    uint64_t units;
} tg_meter_unit_t;

typedef struct tg_route {
    char *method;  /* NULL = any method */
    char *pattern; /* path pattern, '*' matches any run of characters */
    uint64_t weight;
    tg_meter_unit_t *meter; /* defaults to {api_calls: 1} */
    size_t nmeter;
    int line;
} tg_route_t;

/* stripe.billing: who computes the invoices. */
typedef enum tg_stripe_billing {
    TG_STRIPE_BILLING_TOLLGATE = 0, /* tollgate's invoices are copied to Stripe, which collects */
    TG_STRIPE_BILLING_STRIPE = 1    /* Stripe's usage-based billing: meter events, subscriptions */
} tg_stripe_billing_t;

/* stripe.collection: Stripe's invoice collection_method. */
typedef enum tg_stripe_collection {
    TG_STRIPE_CHARGE_AUTOMATICALLY = 0,
    TG_STRIPE_SEND_INVOICE = 1 /* with days_until_due */
} tg_stripe_collection_t;

#define TG_STRIPE_MAX_WEBHOOK_SECRETS 4 /* the current one and those being rolled */

/* notifications.endpoints[i] */
typedef struct tg_config_webhook {
    char *url;
    char *events; /* "*" or a comma-separated list of event types */
    char *secret; /* "whsec_..."; a secret: never printed */
    int line;
} tg_config_webhook_t;
/* events.tokens[i]: a token that may post usage events to POST /v1/events (issue 16). */
typedef struct tg_ingest_token {
    char *name;     /* how it is named in logs and answers (never the token itself) */
    char *token;    /* a secret: compared as a hash, never printed */
    char *customer; /* "cus_...": the only customer it may report for; NULL: any customer */
    int line;
} tg_ingest_token_t;

/* listeners: what each address serves (src/http/server.c; docs/configuration.md "Listeners and TLS"). */
typedef enum tg_listener_kind {
    TG_LISTENER_GATEWAY = 0, /* API calls, proxied to the upstream */
    TG_LISTENER_PORTAL,      /* pricing, sign-up, the developer portal and its JSON API, the Stripe webhook */
    TG_LISTENER_ADMIN,       /* the admin API and the owner's dashboard */
    TG_LISTENER_METRICS,     /* /metrics, /healthz, /readyz */
    TG_LISTENER_KINDS
} tg_listener_kind_t;

typedef struct tg_listener_conf {
    char *address;     /* "host:port"; NULL: this listener is off */
    char *certificate; /* PEM chain (leaf first); NULL: plain HTTP */
    char *key;         /* PEM private key; set exactly when certificate is */
    int line;          /* of the listener in the file */
    int tls_line;      /* of its tls: mapping, for errors found at start (unreadable files) */
} tg_listener_conf_t;

typedef struct tg_config {
    char *path;
    /* Filled from the listeners: section, or else from the shorthands server.listen (gateway)
     * and server.admin_listen (admin, which then also answers the portal and metrics routes). */
    tg_listener_conf_t listeners[TG_LISTENER_KINDS];
    int listeners_given; /* the listeners: section was written */
    struct {
        char *gateway; /* scheme://host[:port] of the gateway as clients reach it; default http://LISTEN */
        char *portal;  /* of the portal; same as portal.public_url (either may be written) */
    } public_urls;
    struct {
        char *listen;       /* "host:port" */
        char *admin_listen; /* "host:port" */
        int workers;
        size_t max_header_bytes;
        size_t max_body_bytes;
        /* Reverse proxies whose X-Forwarded-For / Forwarded / X-Forwarded-Proto are believed
         * (admin port: the client address for throttles, https for Secure cookies). */
        tg_cidr_t *trusted_proxies;
        size_t ntrusted_proxies;
    } server;
    struct {
        char *url;
        int timeout_ms;
        int keepalive_ms;
        char *ca_file; /* https:// upstreams: PEM CAs to trust instead of the system's; NULL: system */
    } upstream;
    struct {
        char *database; /* "sqlite:PATH" */
    } storage;
    struct {
        char *token;
        int key_grace_seconds; /* rotated keys keep working this long; default 86400 */
    } admin;
    struct {
        char *secret; /* HMAC key for API key hashes; >= 32 bytes */
        uint64_t max_active_per_customer; /* keys not revoked and not expired; default 20 */
    } keys;
    struct {
        /* Where customers reach the portal (scheme://host[:port], no path): links that leave the
         * admin port, like the billing link of a 402 payment_required, start with it. Default
         * http://ADMIN_LISTEN ("*" or no host: localhost). */
        char *public_url;
        struct {
            int enabled;                /* default 1; 0: POST /v1/signup answers 403 signup_disabled */
            char **plans;               /* plans open to self-service sign-up; NULL = every plan */
            size_t nplans;
            tg_rate_t per_address;      /* sign-ups per client address; default 10/hour */
            tg_rate_t global;           /* sign-ups in all; default 200/hour */
            int trial_address_days;     /* one trial per client address within this many days; 30 */
            int repeat_trial_refuse;    /* repeat_trial: skip (0, default: no trial) | refuse (1) */
        } signup;
        /* portal.openapi (issue 15): the upstream API's OpenAPI document, read and checked at load
         * (apiref/openapi.h) and served as the portal's API reference; NULL: no reference. */
        char *openapi;
        int openapi_line;
        struct tg_openapi *openapi_doc;
        /* Branding (issue 15); NULL: not set, the pages keep their own. */
        char *title;         /* the site's name, in page titles and the header */
        char *logo;          /* http(s) URL or a path on the portal's origin ("/...") */
        char *primary_color; /* "#rrggbb" */
        char *support_email; /* addr@host */
        char *terms_url;     /* http(s) URL */
        char *privacy_url;   /* http(s) URL */
        /* portal.highlight: the id of the plan the pricing page sets apart ("most popular");
         * NULL: none. Checked against the plans at load (FILE:LINE for an unknown id). */
        char *highlight;
        int highlight_line;
    } portal;
    struct {
        char *path;          /* NULL: no access log; "-": standard output */
        uint32_t sample_ppm; /* successful calls logged, per million; refusals always; default 1e6 */
    } access_log;
    struct {
        /* The decision API (issue 16): GET /v1/decide for nginx's auth_request, POST /v1/check
         * and /v1/report for any gateway or backend, on the gateway listener, only when the file
         * has a decide: section (otherwise those paths are the upstream's, proxied as any). */
        int enabled;
        char *token;           /* the service token callers send in X-Tollgate-Token; a secret */
        char *syslog;          /* "host:port": UDP receiver of nginx's access log; NULL: none */
        char *syslog_secret;   /* NULL, or the first field every settlement line must carry; a
                                * secret. Required when syslog is not a loopback address */
        int settle_timeout_ms; /* a reservation not settled within this follows on_timeout; 60000 */
        int on_timeout;        /* bill (0, default) | release (1): tg_reservation_timeout_rule_t */
        int max_pending;       /* reservations held at once; default 65536 */
        int max_pending_per_customer; /* ... by one customer; default max_pending / 4 (all below 64) */
    } decide;
    struct {
        int level;  /* a tg_log_level_t (util/log.h): 0 error, 1 warn, 2 info (default), 3 debug */
        int syslog; /* 1: to syslog(3) instead of standard error */
    } log;
    struct {
        char *token; /* a scraper's token for /metrics (the admin token works too) */
        int open;    /* 1: /metrics answers without a token */
    } metrics;
    struct {
        int durability; /* batched (0) | strict (1) | process (2): tg_meter_durability_t's values */
        int flush_ms;   /* batched: commit interval; process: how often the logs are looked at */
        int sync_ms;    /* process: fdatasync interval (the power-cut window) */
        unsigned billable_classes; /* bit n set = status class n xx billable; default 2,3,4 */
        int bill_429;              /* default 0: 429 from upstream is not billed */
        uint64_t max_units_per_call; /* per metric in Tollgate-Units; more is refused; default 1e9 */
        char *log_dir; /* the metering logs; NULL: beside the SQLite file (required with PostgreSQL) */
        tg_metric_display_t *metrics; /* display names and units (metering.metrics); may be empty */
        size_t nmetrics;
    } metering;
    struct {
        int enabled;              /* 1 when the file has a stripe: section; 0: nothing talks to Stripe */
        char *secret_key;         /* sk_test_, sk_live_, rk_test_ or rk_live_; a secret: never printed */
        char **webhook_secrets;   /* whsec_...; each is tried when verifying (rolling secrets) */
        size_t nwebhook_secrets;  /* 1 to TG_STRIPE_MAX_WEBHOOK_SECRETS when enabled */
        char *api_base;           /* "https://api.stripe.com" (no trailing slash); a local fake in tests */
        int billing;              /* a tg_stripe_billing_t */
        int collection;           /* a tg_stripe_collection_t */
        int days_until_due;       /* send_invoice only (required there); 0 otherwise */
    } stripe;
    struct {
        /* Limits shared by every node through Redis (src/limits/limiter.h); NULL: this node's
         * limits are its own, as on one machine. A secret (it may hold a password). */
        char *redis;
        char *node_id; /* unique per node; default: the host name */
        int sync_ms;   /* how often leases are topped up and returned; default 20 */
    } cluster;
    struct {
        int64_t finalize_after_s; /* drafts finalize themselves after this; 0 = by hand (default
                                   * without stripe), 3600 by default with stripe */
        int close_connections;    /* the period closer's store connections, each closing its own
                                   * customers (billing/periods.h, tg_periods_close_pool); default 2
                                   * on PostgreSQL, 1 on SQLite (always 1 there: one writer) */
        char *close_cpus; /* a CPU list ("0", "0-1,3") the period closer's threads keep to
                           * (util/thread_affinity.h); NULL: wherever the process may run */
    } billing;
    struct {
        int grace_days;             /* past_due this many days, then suspended; default 7 */
        int suspend_after_failures; /* or after this many failed payments; default 3 */
    } dunning;
    struct { /* notifications: (issue 13) - part A: webhooks out (src/notify/) */
        tg_config_webhook_t *endpoints; /* the owner's endpoints (source "config") */
        size_t nendpoints;
        tg_cidr_t *allow_private_networks; /* addresses a delivery may reach although not public */
        size_t nallow_private_networks;
        int allow_http;             /* 1: http:// endpoints are accepted (local set-ups, tests) */
        int timeout_ms;             /* a delivery attempt's whole time; default 15000 */
        int retry_base_ms;          /* first retry's backoff ceiling; default 5000 */
        int retry_cap_ms;           /* longest backoff; default 6 h */
        int retry_window_s;         /* retries stop this long after the first attempt; default 3 days */
        int breaker_failures;       /* consecutive failures that open an endpoint's breaker; default 5 */
        int breaker_cooldown_ms;    /* how long an open breaker holds the endpoint; default 60000 */
        int disable_after_s;        /* failing this long: the endpoint is disabled; default 5 days */
        /* part C: usage thresholds and trial reminders */
        tg_thresholds_cfg_t usage_thresholds; /* default 80, 100, 120 */
        int trial_will_end_days;              /* trial.will_end this many days before; default 3, 0 = off */
        int retention_days; /* finished events, deliveries, mails deleted after; default 30, 0 = kept */
    } notifications;
    struct {
        int enabled;      /* 1 when the file has an email: section; 0: no mail is queued or sent */
        char *smtp_url;   /* "smtp://host[:port]" or "smtps://host[:port]" (libcurl's SMTP) */
        char *from;       /* "Name <addr@host>" or "addr@host" */
        char *from_addr;  /* the addr-spec part of from (the envelope's MAIL FROM) */
        char *username;   /* NULL: no AUTH */
        char *password;   /* a secret: never printed */
        int starttls;     /* 1: STARTTLS required on smtp:// (CURLUSESSL_ALL); default 0 */
        char *templates;  /* a folder whose files override the built-in templates; NULL: built-ins only */
    } email;
    struct { /* events: usage that is not an API call (issue 16; src/metering/events.h) */
        int enabled;             /* 1 when the file has an events: section: POST /v1/events is answered */
        tg_ingest_token_t *tokens;
        size_t ntokens;
        int max_batch;           /* events in one request; default 1000 */
        int64_t dedup_window_s;  /* an event id counts once this long, and older events are refused; default 35 d */
        uint64_t max_body_bytes; /* a request body; default 4 MiB */
        uint64_t index_keys;     /* the dedup index is sized at start for this many ids; default 0 (grows) */
    } events;
    tg_plan_t *plans;
    size_t nplans;
    tg_route_t *routes;
    size_t nroutes;
} tg_config_t;

/* Parses and validates the YAML file at `path`. On success *out owns a new config (free with
 * tg_config_free). On failure returns TG_ECONFIG and writes every problem found, one per line as
 * "FILE:LINE: message", into errbuf (truncated to errcap). `${NAME}` in scalar strings expands
 * from the environment; an unset variable is an error. */
int tg_config_load(const char *path, tg_config_t **out, char *errbuf, size_t errcap);

/* Same, from a string in memory; `name` is used in messages in place of the file name. */
int tg_config_load_string(const char *name, const char *yaml, size_t len, tg_config_t **out,
                          char *errbuf, size_t errcap);

void tg_config_free(tg_config_t *cfg);

const tg_plan_t *tg_config_find_plan(const tg_config_t *cfg, const char *id);

/* Allowance of `metric` under plan, or TG_UNLIMITED if the plan has none for it. */
uint64_t tg_plan_included(const tg_plan_t *plan, const char *metric);
/* Whether `plan` refuses calls (429 quota_exceeded) once a period's usage of `metric` reaches its
 * allowance, and that allowance is below `used`: on_quota block and an included amount for the
 * metric (a metric with none is unlimited, as the gateway counts). Returns 1 and sets *allowance
 * (NULL allowed) to the included amount, the last unit the gateway lets through; 0 otherwise. */
int tg_plan_blocks_before(const tg_plan_t *plan, const char *metric, uint64_t used, uint64_t *allowance);
/* Whether a customer may sign up for plan_id on the portal: portal.signup.enabled and the plan in
 * portal.signup.plans (every plan when that list is not set). */
int tg_config_self_service(const tg_config_t *cfg, const char *plan_id);

/* 1 if usage of `metric` can be reported as events: a route meters it, a plan includes or
 * prices it, or metering.metrics names it. */
int tg_config_metric_defined(const tg_config_t *cfg, const char *metric);

/* How people read a metric: its metering.metrics name (else the id itself) and unit (else
 * "unit"). Never NULL; the strings live as long as cfg. */
const char *tg_config_metric_name(const tg_config_t *cfg, const char *metric);
const char *tg_config_metric_unit(const tg_config_t *cfg, const char *metric);

/* 1 if plan allows `path` (its endpoints list, or no list). */
int tg_plan_allows(const tg_plan_t *plan, const char *path, size_t len);

/* First route matching method and path, or NULL. */
const tg_route_t *tg_config_match_route(const tg_config_t *cfg, const char *method, size_t mlen,
                                        const char *path, size_t plen);

/* Glob match of `pattern` ('*' = any run of characters, including '/') against path. */
int tg_path_match(const char *pattern, const char *path, size_t len);

/* "per unit", "graduated", "volume" or "package": a model's name for people (check-config, invoice
 * lines). */
const char *tg_price_model_name(tg_price_model_t m);

/* Writes a human-readable summary of the effective plans (for check-config) into a new
 * malloc'd string, or NULL on allocation failure. */
char *tg_config_describe(const tg_config_t *cfg);

#endif
