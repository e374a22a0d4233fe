/* main.c - the tollgate command: subcommand dispatch and the serve lifecycle.
 * Only this file and src/cli/ print or exit. */
#include <getopt.h>
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_api.h"
#include "billing/closer.h"
#include "billing/subscriptions.h"
#include "cluster/directory_sync.h"
#include "cli/admin_commands.h"
#include "cli/commands.h"
#include "config/config.h"
#include "config/config_live.h"
#include "gateway/accounts.h"
#include "gateway/gateway.h"
#include "gateway/reservations.h"
#include "gateway/reservation_file.h"
#include "http/decide_syslog.h"
#include "http/server.h"
#include "log/access_log.h"
#include "util/log.h"
#include "metrics/metrics.h"
#include "limits/limiter.h"
#include "limits/quota.h"
#include "limits/quota_shared.h"
#include "limits/limiter_shared.h"
#include "metering/events.h"
#include "metering/meter.h"
#include "ops/reload.h"
#include "payments/stripe_events.h"
#include "store/store.h"
#include "store/store_copy.h"
#include "store/store_meter.h"
#include "notify/delivery.h"
#include "notify/webhooks.h"
#include "notify/mail_outbox.h"
#include "payments/outbox.h"
#include "util/clock.h"

#define TG_VERSION "0.1.0"

static void usage_main(FILE *out)
{
    fprintf(out,
            "tollgate " TG_VERSION " - an API monetization gateway\n\n"
            "usage: tollgate <command> [options]   (tollgate <command> --help for details)\n\n"
            "  serve -c FILE          run the gateway and the admin API\n"
            "  check-config -c FILE   validate a configuration and print the effective plans\n"
            "  migrate -c FILE        create or upgrade the database schema\n"
            "  migrate --from sqlite:PATH --to postgresql://...  copy one node's data into an\n"
            "                         empty PostgreSQL database, verified\n"
            "  quote -c FILE --plan ID --usage METRIC=N   price a period's usage\n"
            "  customers add|list|show|set-plan|cancel|add-item|suspend|resume\n"
            "                                                    manage customers (admin API)\n"
            "  keys create|list|revoke|rotate                    manage API keys (admin API)\n"
            "  usage CUSTOMER_ID [--period YYYY-MM]               show a customer's usage\n"
            "  invoices run|list|show|upcoming|finalize|void|mark-paid\n"
            "                                                    billing periods and invoices\n"
            "  stripe sync-catalog -c FILE [--dry-run]           make Stripe's products, prices and\n"
            "                                                    meters match the plans (billing: stripe)\n"
            "  stripe reconcile -c FILE --period YYYY-MM         compare usage and invoices with\n"
            "                                                    Stripe's (billing: stripe)\n"
            "  metering recover -c FILE --log-dir DIR [--retire] store a lost gateway's metering logs,\n"
            "                                                    each batch exactly once (--retire: the\n"
            "                                                    node never runs again; its ids go)\n"
            "  reload -c FILE                                    re-read the running server's configuration\n"
            "                                                    (as SIGHUP; prints what it refused)\n"
            "  audit [--actor ID] [--action PREFIX] [--from T]   the audit log: who changed what, before\n"
            "                                                    and after (read-only)\n"
            "  backup -c FILE DEST                               an online copy of the SQLite database and\n"
            "                                                    the metering logs, while serving\n"
            "  restore -c FILE SRC                               put a backup back in place (stopped)\n"
            "  help                   this text\n"
            "  version                print the version\n");
}

/* Parses "-c FILE" for the config-only commands. Returns 0, 1 for --help shown, 2 on error. */
static int parse_config_flag(int argc, char **argv, const char *cmd, const char *help, const char **path)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    *path = NULL;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            *path = optarg;
            break;
        case 'h':
            printf("usage: tollgate %s -c FILE\n\n%s\n", cmd, help);
            return 1;
        case ':':
            fprintf(stderr, "tollgate %s: option %s needs a value\n", cmd, argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "tollgate %s: unknown option %s (see tollgate %s --help)\n", cmd, argv[optind - 1], cmd);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tollgate %s: unexpected argument \"%s\"\n", cmd, argv[optind]);
        return 2;
    }
    if (*path == NULL) {
        fprintf(stderr, "tollgate %s: -c FILE is required\n", cmd);
        return 2;
    }
    return 0;
}

static tg_config_t *load_config(const char *path)
{
    char errbuf[8192];
    tg_config_t *cfg = NULL;
    if (tg_config_load(path, &cfg, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, "%s", errbuf);
        if (errbuf[0] != '\0' && errbuf[strlen(errbuf) - 1] != '\n')
            fputc('\n', stderr);
        return NULL;
    }
    return cfg;
}

static int cmd_check_config(int argc, char **argv)
{
    const char *path;
    int rc = parse_config_flag(argc, argv, "check-config",
                               "Validates the configuration; prints the effective plans, or FILE:LINE: message\n"
                               "for every problem and exits 1.",
                               &path);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    tg_config_t *cfg = load_config(path);
    if (cfg == NULL)
        return 1;
    if (tg_stripe_catalog_report(cfg) != 0) { /* billing: stripe and a plan Stripe cannot bill */
        tg_config_free(cfg);
        return 1;
    }
    char *desc = tg_config_describe(cfg);
    printf("%s: configuration OK\n\n%s", path, desc != NULL ? desc : "");
    free(desc);
    tg_config_free(cfg);
    return 0;
}

#define MIGRATE_HELP                                                                                           \
    "usage: tollgate migrate -c FILE\n"                                                                          \
    "       tollgate migrate --from sqlite:PATH --to postgresql://USER@HOST:PORT/DB\n\n"                        \
    "-c FILE      create the schema of the configuration's storage.database, or apply the\n"                   \
    "             migrations it lacks\n"                                                                        \
    "--from --to  copy one node's SQLite database (customers, keys, usage, invoices, sessions,\n"               \
    "             Stripe state: every table) into an empty PostgreSQL database, in one\n"                      \
    "             transaction, after migrating it; compare every table's row count and sums\n"                 \
    "             on both sides before committing. Refuses a target that has any row. Stop\n"                  \
    "             the gateway that uses the SQLite file first.\n"

/* tollgate migrate --from sqlite:PATH --to postgresql://...: the copy, then what was verified. */
static int migrate_copy(const char *from, const char *to)
{
    tg_store_copy_report_t *rep = calloc(1, sizeof(*rep));
    if (rep == NULL) {
        fprintf(stderr, "tollgate migrate: out of memory\n");
        return 1;
    }
    tg_err_t err = {0};
    int rc = tg_store_copy(from, to, rep, &err);
    if (rc != 0) {
        fprintf(stderr, "tollgate migrate: %s\n", err.msg);
        free(rep);
        return 1;
    }
    printf("copied %s into PostgreSQL at %s (schema version %d)\n", from, rep->target, rep->schema_version);
    for (size_t i = 0; i < rep->ntables; i++)
        printf("%s: %llu rows\n", rep->tables[i].name, (unsigned long long)rep->tables[i].rows);
    printf("verified: row counts, non-null counts, sums or byte lengths of every column, and a SHA-256 digest of\n"
           "every row are equal on both sides\n");
    for (size_t i = 0; i < rep->ntotals; i++)
        printf("%s: %s\n", rep->totals[i].what, rep->totals[i].value);
    free(rep);
    return 0;
}

static int cmd_migrate(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"from", required_argument, NULL, 'f'},
                                         {"to", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL, *from = NULL, *to = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'f':
            from = optarg;
            break;
        case 't':
            to = optarg;
            break;
        case 'h':
            printf("%s", MIGRATE_HELP);
            return 0;
        case ':':
            fprintf(stderr, "tollgate migrate: option %s needs a value\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "tollgate migrate: unknown option %s (see tollgate migrate --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tollgate migrate: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (from != NULL || to != NULL) {
        if (from == NULL || to == NULL || path != NULL) {
            fprintf(stderr, "tollgate migrate: --from and --to go together, without -c"
                            " (see tollgate migrate --help)\n");
            return 2;
        }
        return migrate_copy(from, to);
    }
    if (path == NULL) {
        fprintf(stderr, "tollgate migrate: -c FILE, or --from and --to, is required\n");
        return 2;
    }
    tg_config_t *cfg = load_config(path);
    if (cfg == NULL)
        return 1;
    tg_err_t err = {0};
    tg_store_t *st = NULL;
    int version = 0;
    int rc = tg_store_open(cfg->storage.database, &st, &err);
    if (rc == 0)
        rc = tg_store_migrate(st, &err);
    if (rc == 0)
        rc = tg_store_schema_version(st, &version, &err);
    if (rc != 0)
        fprintf(stderr, "tollgate migrate: %s\n", err.msg);
    else
        printf("%s: schema at version %d\n", cfg->storage.database, version);
    tg_store_close(st);
    tg_config_free(cfg);
    return rc == 0 ? 0 : 1;
}

static void cluster_log(void *arg, const char *line)
{
    (void)arg;
    tg_log(TG_LOG_INFO, "%s", line);
}

typedef struct {
    tg_quota_t *quota;
    tg_thresholds_t *thresholds;
    tg_accounts_t *accounts;
    int64_t now_s;
} warm_ctx_t;

/* A reload's hook: the listeners' certificates and keys read again (http/server.h). arg is an
 * atomic pointer to the server: a reload may run on the admin back thread (POST
 * /v1/admin/reload) as soon as the server's threads serve, before tg_server_start has returned
 * the pointer to cmd_serve; until then there is nothing to reload. */
static int reload_tls(const tg_config_t *next, void *arg, tg_err_t *err)
{
    tg_server_t *srv = atomic_load((_Atomic(tg_server_t *) *)arg);
    return srv != NULL ? tg_server_reload_tls(srv, next, err) : 0;
}

/* A reload's hook: the owner's webhook endpoints of the new file (notifications.endpoints)
 * synced into the store, as at start. Live rather than at the next restart because nothing
 * holds them but the store: the delivery thread reads an endpoint (URL, secret) per delivery
 * and the event fan-out lists them per event, and the sync is one transaction. arg is the admin
 * back thread's store connection: reloads run on that thread (ops/reload.h). */
static int reload_webhooks(const tg_config_t *next, void *arg, tg_err_t *err)
{
    tg_webhooks_ctx_t wx = {next, arg};
    tg_webhooks_sync_counts_t k;
    int rc = tg_webhooks_sync_config(&wx, &k, err);
    if (rc == 0 && k.added + k.changed + k.removed > 0)
        tg_log(TG_LOG_INFO, "reload: notifications.endpoints applied: %zu added, %zu changed, %zu removed", k.added,
               k.changed, k.removed);
    return rc;
}

/* A reload's hook: log.level and log.syslog of the new file, then the access log's destination
 * and sampling (access_log.path, .sample_success; a new file is opened before the switch, and
 * each line lands whole in the old file or the new one, log/access_log.h). arg: the access log.
 * Nothing of the logs needs a restart. */
static int reload_logs(const tg_config_t *next, void *arg, tg_err_t *err)
{
    tg_log_setup((tg_log_level_t)next->log.level, next->log.syslog);
    return tg_access_log_configure(arg, next->access_log.path, next->access_log.sample_ppm, err);
}

/* The reloader's log: the operator reads it on standard error (journald under systemd). */
static void reload_log(void *arg, const char *line)
{
    (void)arg;
    fprintf(stderr, "tollgate: %s\n", line);
}

static int warm_quota_cb(const char *customer_id, int64_t period_start, const char *metric, uint64_t units, void *arg)
{
    warm_ctx_t *w = arg;
    return tg_quota_seed(w->quota, customer_id, period_start, metric, units) != 0 ||
           tg_thresholds_warmed(w->thresholds, w->accounts, customer_id, period_start, metric, units, w->now_s) != 0;
}

static int cmd_serve(int argc, char **argv)
{
    const char *path;
    /* --test-clock lets the admin API move the clock (POST /v1/admin/clock) so tests can close
     * billing periods; it is a separate flag so that production never has it by accident. */
    int test_clock = 0;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--test-clock") == 0) {
            test_clock = 1;
            for (int j = i; j + 1 < argc; j++)
                argv[j] = argv[j + 1];
            argc--;
            break;
        }
    int rc = parse_config_flag(argc, argv, "serve",
                               "Runs the gateway (server.listen) and the admin API (server.admin_listen) until\n"
                               "SIGINT or SIGTERM, then drains requests in flight and commits all usage.\n"
                               "SIGHUP re-reads FILE: plans, routes and limits change without a restart.\n"
                               "--test-clock  allow POST /v1/admin/clock to move time (tests only)",
                               &path);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    tg_config_t *cfg = load_config(path);
    if (cfg == NULL)
        return 1;
    tg_log_setup((tg_log_level_t)cfg->log.level, cfg->log.syslog); /* before any thread */
    /* With billing: stripe, Stripe prices the usage: a plan it cannot bill exactly must not be
     * served, or customers would be billed other amounts than the plan says. */
    if (tg_stripe_catalog_report(cfg) != 0) {
        fprintf(stderr, "tollgate serve: refusing to start\n");
        tg_config_free(cfg);
        return 1;
    }

    /* The configuration in effect from now on; every generation a reload replaces is kept until
     * the end (config/config_live.h). cfg stays the one the server started with: what only a
     * restart changes (listeners, storage, cluster...) is read from it. */
    tg_config_live_t *live = tg_config_live_new(cfg);
    if (live == NULL) {
        fprintf(stderr, "tollgate serve: out of memory\n");
        return 1;
    }

    /* Signals go to this thread alone, through sigwait (so no signal handler runs at all);
     * workers inherit the mask. SIGHUP is passed on to the admin back thread as a request to
     * reload (tg_server_request_reload). */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1); /* reopen the access log (logrotate) */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    tg_err_t err = {0};
    tg_store_t *st = NULL;
    tg_accounts_t *accounts = NULL;
    tg_quota_t *quota = NULL;
    tg_limiter_t *limiter = NULL;
    tg_cluster_t *cluster = NULL;
    tg_meter_t *meter = NULL;
    tg_gateway_t *gw = NULL;
    tg_admin_t *admin = NULL;
    tg_server_t *srv = NULL;
    static _Atomic(tg_server_t *) tls_server; /* srv, for the reload hook (reload_tls) */
    tg_outbox_t *outbox = NULL;
    tg_closer_t *closer = NULL;
    tg_mail_sender_t *mailer = NULL;
    tg_dirsync_t *dirsync = NULL;
    tg_delivery_t *delivery = NULL;
    tg_thresholds_t *thresholds = NULL;
    tg_events_t *events = NULL;
    tg_reloader_t *reloader = NULL;
    tg_access_log_t *access_log = NULL;
    tg_reservations_t *reservations = NULL; /* the decision API's, when decide: is configured */
    tg_decide_receiver_t *decide_rx = NULL;
    tg_reservation_file_t *reservation_file = NULL; /* where they outlive the process */
    int exit_code = 1;

    if (sodium_init() < 0) {
        fprintf(stderr, "tollgate serve: libsodium failed to initialise\n");
        goto out;
    }
    /* libcurl's global state, once, before any thread (the Stripe outbox calls it). */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "tollgate serve: libcurl failed to initialise\n");
        goto out;
    }
    if (tg_store_open(cfg->storage.database, &st, &err) != 0 || tg_store_migrate(st, &err) != 0) {
        fprintf(stderr, "tollgate serve: %s\n", err.msg);
        goto out;
    }
    /* billing: stripe sends usage as meter events: from now on the fold keeps hourly totals
     * (store_meter.h); otherwise it stops keeping them. Before the meter starts, so that usage
     * the last run left in the metering log is counted under the same rule. */
    if (tg_store_meter_export_set(st, cfg->stripe.enabled && cfg->stripe.billing == TG_STRIPE_BILLING_STRIPE,
                                  tg_clock_now_ns() / TG_NS_PER_SEC, &err) != 0) {
        fprintf(stderr, "tollgate serve: %s\n", err.msg);
        goto out;
    }
    /* With cluster.redis, rate limits and quotas are shared by every node (limits/cluster.h);
     * a node that cannot reach Redis at start, or whose id another live node holds, does not start. */
    if (cfg->cluster.redis != NULL) {
        tg_cluster_settings_t cs = {cfg->cluster.redis, cfg->cluster.node_id, cfg->cluster.sync_ms, cluster_log, NULL};
        if (tg_cluster_start(&cs, &cluster, &err) != 0) {
            fprintf(stderr, "tollgate serve: %s\n", err.msg);
            goto out;
        }
        tg_log(TG_LOG_INFO, "node %s shares its limits through Redis with %u live node(s)",
                cfg->cluster.node_id, tg_cluster_live_nodes(cluster));
    }
    if ((accounts = tg_accounts_new(cfg)) == NULL ||
        (quota = cluster != NULL ? tg_quota_shared_new(cluster) : tg_quota_new()) == NULL ||
        (limiter = cluster != NULL ? tg_limiter_shared_new(cluster) : tg_limiter_local_new()) == NULL) {
        fprintf(stderr, "tollgate serve: out of memory\n");
        goto out;
    }
    if (tg_accounts_load(accounts, st, &err) != 0 || tg_dunning_restore_holds(st, accounts, &err) != 0) {
        fprintf(stderr, "tollgate serve: %s\n", err.msg);
        goto out;
    }
    /* Several gateways on one PostgreSQL: follow what the others write (cluster/directory_sync.h). */
    if (strcmp(tg_store_backend(st), "sqlite") != 0 &&
        tg_dirsync_start(cfg->storage.database, accounts, 30, &dirsync, &err) != 0) {
        fprintf(stderr, "tollgate serve: %s\n", err.msg);
        goto out;
    }
    /* The meter starts by storing what the last run left in the metering log; the quota
     * counters loaded next must include it. */
    tg_meter_opts_t mo = {.store_url = cfg->storage.database,
                          .log_dir = cfg->metering.log_dir,
                          /* one node on SQLite keeps the batch ids of its logs under no node
                           * name, as before migration 22, so a log written by an older
                           * version replays under the ids it was stored with */
                          .node_id = strcmp(tg_store_backend(st), "sqlite") == 0 ? "" : cfg->cluster.node_id,
                          .durability = cfg->metering.durability,
                          .flush_ms = cfg->metering.flush_ms,
                          .sync_ms = cfg->metering.sync_ms};
    /* Usage events (issue 16): the dedup index settles the claims a crash left pending against
     * the metering logs, so it opens before the meter replays and empties them. */
    char *logs[2] = {NULL, NULL};
    if (cfg->events.enabled || cfg->decide.enabled) {
        logs[0] = tg_meter_log_path(mo.store_url, mo.log_dir, mo.node_id, 0, &err);
        logs[1] = tg_meter_log_path(mo.store_url, mo.log_dir, mo.node_id, 1, &err);
    }
    if (cfg->events.enabled) {
        char *ipath = tg_events_index_path(mo.store_url, mo.log_dir, mo.node_id, &err);
        tg_events_opts_t eo = {.cfg = cfg,
                               .index_path = ipath,
                               .secret = (const uint8_t *)cfg->keys.secret,
                               .secret_len = strlen(cfg->keys.secret),
                               .log_paths = {logs[0], logs[1]},
                               /* one node on SQLite: the index is its only check, so a lost
                                * index file is refilled from the ids the store kept; on
                                * PostgreSQL the store checks every event (and holds every
                                * node's ids: not read at start) */
                               .store = strcmp(tg_store_backend(st), "sqlite") == 0 ? st : NULL,
                               .key_store = st, /* until when events keep BLAKE2b: every backend */
                               .now_s = tg_clock_now_ns() / TG_NS_PER_SEC,
                               /* one node on SQLite: the index is checkpointed against the
                                * store's event id blocks, not synced at each log reset */
                               .store_url = strcmp(tg_store_backend(st), "sqlite") == 0 ? cfg->storage.database : NULL};
        int erc = ipath == NULL ? TG_EINVAL : tg_events_open(&eo, &events, &err);
        free(ipath);
        if (erc != 0) {
            free(logs[0]);
            free(logs[1]);
            fprintf(stderr, "tollgate serve: %s\n", err.msg);
            goto out;
        }
    }
    /* The decision API's reservations a dead process left open (gateway/reservation_file.h):
     * checked against the metering logs before the meter replays and empties them. */
    if (cfg->decide.enabled) {
        char *rpath = tg_reservation_file_path(mo.store_url, mo.log_dir, mo.node_id, &err);
        int rrc = rpath == NULL ? TG_EINVAL
                                : tg_reservation_file_open(rpath, (const char *const[2]){logs[0], logs[1]},
                                                           &reservation_file, &err);
        free(rpath);
        if (rrc != 0) {
            free(logs[0]);
            free(logs[1]);
            fprintf(stderr, "tollgate serve: %s\n", err.msg);
            goto out;
        }
    }
    free(logs[0]);
    free(logs[1]);
    /* PostgreSQL: a metering log is retired only once the claims of its events are durable in
     * the index (SQLite: the hook writes nothing; metering/events.h) */
    if (events != NULL) {
        mo.before_log_reset = tg_events_before_log_reset;
        mo.before_log_reset_arg = events;
    }
    if (tg_meter_start_opts(&mo, &meter, &err) != 0) {
        fprintf(stderr, "tollgate serve: %s\n", err.msg);
        goto out;
    }
    /* ... and settled by decide.on_timeout before the quota counters are loaded, which then
     * include what they billed. */
    if (reservation_file != NULL) {
        tg_reservation_recovered_t rec;
        if (tg_reservation_file_recover(reservation_file, meter, cfg->decide.on_timeout, (size_t)cfg->decide.max_pending,
                                        &rec, &err) != 0) {
            fprintf(stderr, "tollgate serve: %s\n", err.msg);
            goto out;
        }
        if (rec.left > 0)
            tg_log(TG_LOG_INFO,
                   "decision API: %zu reservation(s) left open by the last run: %zu billed (decide.on_timeout), "
                   "%zu already in the metering log, %zu released",
                   rec.left, rec.billed, rec.logged, rec.released);
    }
    /* Usage notifications: crossings found on the counters, marks and events written on a
     * thread of its own (notify/thresholds.h). */
    tg_thresholds_settings_t ts = {.database = cfg->storage.database, .cfg = cfg, .quota = quota, .accounts = accounts};
    if (tg_thresholds_start(&ts, &thresholds, &err) != 0) {
        fprintf(stderr, "tollgate serve: %s\n", err.msg);
        goto out;
    }
    /* Quota counters restart from what is durable; a yearly period is the longest. The levels
     * they have reached are checked against the marks (thresholds.h: tg_thresholds_warmed). */
    int64_t since = tg_clock_now_ns() / TG_NS_PER_SEC - 367 * 86400;
    warm_ctx_t warm = {quota, thresholds, accounts, tg_clock_now_ns() / TG_NS_PER_SEC};
    if (tg_store_usage_load(st, since, warm_quota_cb, &warm, &err) != 0) {
        fprintf(stderr, "tollgate serve: %s\n", err.msg);
        goto out;
    }
    tg_gateway_deps_t gdeps = {.cfg = cfg, .accounts = accounts, .limiter = limiter, .quota = quota, .meter = meter,
                               .thresholds = thresholds, .live = live};
    gw = tg_gateway_new(&gdeps, (const uint8_t *)cfg->keys.secret, strlen(cfg->keys.secret));
    if (events != NULL)
        tg_events_attach(events, accounts, quota, meter, thresholds);
    /* the ingest tokens made in the admin API, held in memory for the gateway (ingest_tokens.h) */
    if (events != NULL && tg_events_tokens_load(events, st, &err) != 0) {
        fprintf(stderr, "tollgate serve: %s\n", err.msg);
        goto out;
    }
    if (events != NULL) /* several gateways: a token made or revoked on another node (PostgreSQL) */
        tg_dirsync_follow_ingest_tokens(dirsync, events);
    /* With a stripe section, the outbox thread sends what the admin thread queues (its own
     * store connection; see src/payments/outbox.h). */
    if (cfg->stripe.enabled) {
        tg_outbox_settings_t os = {.database = cfg->storage.database,
                                   .stripe = {cfg->stripe.secret_key, cfg->stripe.api_base, 30000}};
        size_t queued = 0;
        if (tg_outbox_backfill_customers(st, &queued, &err) != 0) {
            fprintf(stderr, "tollgate serve: %s\n", err.msg);
            goto out;
        }
        if (queued > 0)
            tg_log(TG_LOG_INFO, "%zu existing customers queued for Stripe", queued);
        /* billing: stripe: customers from before it (or before the catalog) get their
         * subscription; their Stripe customer is queued just above, and the subscription waits
         * for it in the outbox */
        tg_sub_ctx_t sx = {cfg, st, accounts, meter, NULL, 1};
        if (tg_sub_stripe_backfill(&sx, &queued, &err) != 0) {
            fprintf(stderr, "tollgate serve: %s\n", err.msg);
            goto out;
        }
        if (queued > 0)
            tg_log(TG_LOG_INFO, "%zu existing customers' Stripe subscriptions queued", queued);
        if (tg_outbox_start(&os, &outbox, &err) != 0) {
            fprintf(stderr, "tollgate serve: %s\n", err.msg);
            goto out;
        }
    }
    /* Webhooks out: the owner's endpoints of the configuration in the store, then the delivery
     * thread on a connection of its own (notify/delivery.h). */
    tg_webhooks_ctx_t wx = {cfg, st};
    if (tg_webhooks_sync_config(&wx, NULL, &err) != 0 || tg_delivery_start(cfg->storage.database, cfg, &delivery, &err) != 0) {
        fprintf(stderr, "tollgate serve: %s\n", err.msg);
        goto out;
    }
    /* With an email section, mail queued by any thread goes out from a sender thread with its own
     * store connection (notify/mail_outbox.h); a failing mail server only delays it. */
    tg_mail_setup(cfg);
    if (cfg->email.enabled) {
        tg_mail_sender_settings_t ms = {.database = cfg->storage.database, .cfg = cfg};
        if (tg_mail_sender_start(&ms, &mailer, &err) != 0) {
            fprintf(stderr, "tollgate serve: %s\n", err.msg);
            goto out;
        }
    }
    /* Opened even without access_log.path (off, its writer idle), so that a reload can turn it
     * on without a restart. */
    if (tg_access_log_open(cfg->access_log.path, cfg->access_log.sample_ppm, &access_log, &err) != 0) {
        fprintf(stderr, "tollgate serve: %s\n", err.msg);
        goto out;
    }
    /* Reloads run on the admin back thread (SIGHUP, POST /v1/admin/reload). TLS certificates
     * and log files register their reload with tg_reload_add_hook here, before serving. */
    tg_reload_deps_t rdeps = {.live = live, .accounts = accounts, .log = reload_log};
    if ((reloader = tg_reloader_new(&rdeps)) == NULL ||
        tg_reload_add_hook(reloader, "logs", reload_logs, access_log) != 0 ||
        tg_reload_add_hook(reloader, "tls certificates", reload_tls, &tls_server) != 0 ||
        tg_reload_add_hook(reloader, "webhook endpoints", reload_webhooks, st) != 0) {
        fprintf(stderr, "tollgate serve: out of memory\n");
        goto out;
    }
    tg_admin_deps_t adeps = {cfg, st, accounts, quota, meter, (const uint8_t *)cfg->keys.secret,
                             strlen(cfg->keys.secret), test_clock, outbox, dirsync, 1, live, reloader, events};
    admin = tg_admin_new(&adeps);
    if (gw == NULL || admin == NULL) {
        fprintf(stderr, "tollgate serve: out of memory\n");
        goto out;
    }
    /* The period closer on a thread and a connection of its own (billing/closer.h), on the node
     * that runs the schedulers (the admin tick holds the scheduler lock). */
    tg_closer_settings_t cs = {.database = cfg->storage.database, .cfg = cfg, .accounts = accounts, .meter = meter,
                               .may_run = tg_admin_leads, .may_run_arg = admin, .live = live};
    if (tg_closer_start(&cs, &closer, &err) != 0) {
        fprintf(stderr, "tollgate serve: %s\n", err.msg);
        goto out;
    }
    tg_metrics_set_version(TG_VERSION);
    /* The decision API (issue 16): admitted calls wait for their settlement here; the receiver
     * thread takes nginx's log lines and applies decide.on_timeout. */
    if (cfg->decide.enabled) {
        tg_reservations_opts_t ro = {.capacity = (size_t)cfg->decide.max_pending,
                                     .per_customer = (size_t)cfg->decide.max_pending_per_customer,
                                     .timeout_ns = (int64_t)cfg->decide.settle_timeout_ms * 1000000,
                                     .on_timeout = cfg->decide.on_timeout,
                                     .on_end = tg_http_decide_log_end,
                                     .on_end_arg = access_log,
                                     .file = reservation_file};
        if ((reservations = tg_reservations_new(gw, &ro)) == NULL) {
            fprintf(stderr, "tollgate serve: out of memory for decide.max_pending\n");
            goto out;
        }
        if (tg_decide_receiver_start(cfg->decide.syslog, cfg->decide.syslog_secret, reservations, &decide_rx, &err) !=
            0) {
            fprintf(stderr, "tollgate serve: %s\n", err.msg);
            goto out;
        }
        /* the configuration refuses a non-loopback address without a secret; on loopback it is
         * allowed (as before the secret existed), but any local process could settle calls */
        if (cfg->decide.syslog != NULL && cfg->decide.syslog_secret == NULL)
            tg_log(TG_LOG_WARN,
                   "decide.syslog %s takes settlement lines without decide.syslog_secret: any process on this "
                   "machine that learns an open reservation id could settle that call as failed (not billed) or "
                   "with other units; set decide.syslog_secret and put it in nginx's log_format",
                   cfg->decide.syslog);
    }
    tg_server_deps_t sdeps = {.cfg = cfg, .gateway = gw, .admin = admin, .meter = meter, .access_log = access_log,
                              .reservations = reservations, .events = events};
    if (tg_server_start(&sdeps, &srv, &err) != 0) {
        fprintf(stderr, "tollgate serve: %s\n", err.msg);
        goto out;
    }
    atomic_store(&tls_server, srv);
    char where[1024] = "";
    static const char *const kinds[TG_LISTENER_KINDS] = {"gateway", "portal", "admin", "metrics"};
    for (int k = 0, off = 0; k < TG_LISTENER_KINDS; k++) /* one line: what answers where */
        if (cfg->listeners[k].address != NULL && off >= 0 && (size_t)off < sizeof(where))
            off += snprintf(where + off, sizeof(where) - (size_t)off, "%s on %s://%s, ", kinds[k],
                            cfg->listeners[k].certificate != NULL ? "https" : "http", cfg->listeners[k].address);
    tg_log(TG_LOG_INFO, "%supstream %s, %d workers, metering %s", where, cfg->upstream.url, cfg->server.workers,
           cfg->metering.durability == TG_METER_STRICT    ? "strict"
           : cfg->metering.durability == TG_METER_PROCESS ? "process"
                                                          : "batched");

    int sig = 0;
    while (sigwait(&sigs, &sig) == 0 && (sig == SIGHUP || sig == SIGUSR1)) {
        if (sig == SIGUSR1) {
            tg_access_log_reopen(access_log);
            continue;
        }
        tg_log(TG_LOG_INFO, "SIGHUP received, reloading %s", cfg->path);
        tg_server_request_reload(srv);
    }
    tg_log(TG_LOG_INFO, "%s received, draining", sig == SIGINT ? "SIGINT" : "SIGTERM");
    atomic_store(&tls_server, NULL); /* no reload hook reaches a stopping server */
    tg_server_stop(srv, 5000);
    tg_admin_tick(admin); /* last-used times of keys, before the store closes */
    exit_code = 0;

out:
    tg_closer_stop(closer); /* between two batches; before the meter it flushes stops */
    tg_decide_receiver_stop(decide_rx); /* after the loops that hold; what nginx sent is settled */
    tg_reservations_free(reservations); /* the open ones by decide.on_timeout; the meter still runs */
    if (meter != NULL)
        tg_meter_stop(meter); /* commits everything queued */
    tg_reservation_file_close(reservation_file); /* after the meter, whose callbacks free its slots */
    if (srv != NULL)
        tg_server_free(srv);
    tg_thresholds_stop(thresholds); /* after the gateway's loops, which queue to it */
    tg_dirsync_stop(dirsync);       /* before the directory it updates and the events' token table */
    tg_events_close(events);        /* after the meter, whose callbacks commit its claims */
    tg_access_log_close(access_log); /* after the workers, its only writers */
    tg_outbox_stop(outbox); /* after the admin thread, which wakes it */
    tg_delivery_stop(delivery);
    tg_mail_sender_stop(mailer);
    tg_admin_free(admin);
    tg_gateway_free(gw);
    tg_cluster_stop(cluster); /* gives the leases back; before the states it walks are freed */
    tg_limiter_free(limiter);
    tg_quota_free(quota);
    tg_cluster_free(cluster);
    tg_accounts_free(accounts);
    tg_store_close(st);
    tg_reloader_free(reloader);
    tg_config_live_free(live); /* cfg and every configuration a reload replaced */
    if (exit_code == 0)
        tg_log(TG_LOG_INFO, "stopped");
    return exit_code;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage_main(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    argc--;
    argv++;
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc, argv);
    if (strcmp(cmd, "check-config") == 0)
        return cmd_check_config(argc, argv);
    if (strcmp(cmd, "migrate") == 0)
        return cmd_migrate(argc, argv);
    if (strcmp(cmd, "quote") == 0)
        return tg_cmd_quote(argc, argv);
    if (strcmp(cmd, "customers") == 0)
        return tg_cmd_customers(argc, argv);
    if (strcmp(cmd, "keys") == 0)
        return tg_cmd_keys(argc, argv);
    if (strcmp(cmd, "usage") == 0)
        return tg_cmd_usage(argc, argv);
    if (strcmp(cmd, "invoices") == 0)
        return tg_cmd_invoices(argc, argv);
    if (strcmp(cmd, "stripe") == 0)
        return tg_cmd_stripe(argc, argv);
    if (strcmp(cmd, "metering") == 0)
        return tg_cmd_metering(argc, argv);
    if (strcmp(cmd, "reload") == 0)
        return tg_cmd_reload(argc, argv);
    if (strcmp(cmd, "audit") == 0)
        return tg_cmd_audit(argc, argv);
    if (strcmp(cmd, "backup") == 0 || strcmp(cmd, "restore") == 0)
        return tg_cmd_backup(argc, argv);
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage_main(stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("tollgate %s\n", TG_VERSION);
        return 0;
    }
    fprintf(stderr, "tollgate: unknown command \"%s\"\n\n", cmd);
    usage_main(stderr);
    return 2;
}
