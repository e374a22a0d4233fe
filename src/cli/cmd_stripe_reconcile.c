/* cmd_stripe_reconcile.c - `tollgate stripe reconcile`: for stripe.billing: stripe, compares each
 * customer's period as tollgate metered and prices it with Stripe's invoice for the period, and
 * lists every difference.
 *
 * Offline like `quote` and `migrate`: it reads the configuration and the store directly (a
 * second SQLite connection beside a running server is fine: WAL readers do not block it) and
 * Stripe with GET requests only (payments/reconcile.h); it changes nothing anywhere. The
 * comparison itself is payments/reconcile.c; this file parses arguments, walks the customers
 * and prints. */
#include <ctype.h>
#include <curl/curl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "config/config.h"
#include "payments/reconcile.h"
#include "store/store.h"
#include "store/store_outbox.h"
#include "util/clock.h"
#include "util/period.h"

#define USAGE_MAX 256 /* metrics of one customer's period */
#define PAGE 200      /* customers read from the store at a time */

static const char reconcile_usage[] =
    "usage: tollgate stripe reconcile -c CONFIG --period YYYY-MM [--customer ID] [--json]\n"
    "\n"
    "For stripe.billing: stripe. For each customer whose billing period starts in the month\n"
    "(the same period `tollgate usage --period` shows), compares what tollgate metered and\n"
    "how it prices it (the plan's quote for that usage, as `tollgate quote` computes it) with\n"
    "Stripe's invoice for that period (the customer's invoice whose period overlaps it most),\n"
    "and prints one tab-separated row per difference:\n"
    "  usage    a metric's usage vs the quantity of the metered line (price tollgate_PLAN_METRIC)\n"
    "  amount   the amount of the base fee (tollgate_PLAN_base) or of a charge's line\n"
    "  line     a line on one side only (an invoice item, a proration, a minimum commitment)\n"
    "  total    the invoice totals\n"
    "  no_invoice, no_stripe_customer, currency\n"
    "Amounts are in the currency's minor unit (cents), exact. Reads only; changes nothing.\n"
    "Not recomputed: a plan change or a trial end inside the period, a cancellation's\n"
    "prorated final invoice; they show up as differences.\n"
    "\n"
    "  -c, --config FILE     configuration file (required; its stripe section is used)\n"
    "  -p, --period YYYY-MM  the month whose periods are compared (required)\n"
    "      --customer ID     only this customer\n"
    "  -j, --json            print {period, customers, differences: [{customer, stripe_invoice,\n"
    "                        difference, subject, tollgate, stripe}]} instead of rows\n"
    "  -h, --help            print this help\n"
    "\n"
    "Exit status: 0 no differences, 1 differences listed, 2 usage, configuration, store or\n"
    "Stripe error.\n";

/* "YYYY-MM" -> the first second of that month and of the next (UTC). -1 if malformed. */
static int parse_month(const char *s, int64_t *start, int64_t *end)
{
    if (strlen(s) != 7 || s[4] != '-')
        return -1;
    for (int i = 0; i < 7; i++)
        if (i != 4 && !isdigit((unsigned char)s[i]))
            return -1;
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int m = (s[5] - '0') * 10 + (s[6] - '0');
    if (m < 1 || m > 12 || y < 1970)
        return -1;
    int64_t n = (int64_t)(y - 1970) * 12 + (m - 1);
    *start = tg_period_boundary(0, TG_INTERVAL_MONTH, n);
    *end = tg_period_boundary(0, TG_INTERVAL_MONTH, n + 1);
    return 0;
}

typedef struct {
    const tg_config_t *cfg;
    tg_store_t *st;
    tg_recon_stripe_t *rs;
    int64_t month_start, month_end;
    int64_t now; /* seconds */
    size_t customers, with_diffs, diffs;
    const char *customer; /* the one being compared */
    const char *invoice;  /* its Stripe invoice, or "none" */
    int header_printed;
    json_t *json; /* --json: the differences, printed at the end; NULL: rows as they come */
} run_t;

static int print_diff(const tg_recon_diff_t *d, void *arg)
{
    run_t *r = arg;
    if (r->json != NULL) {
        json_array_append_new(json_object_get(r->json, "differences"),
                              json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "customer", r->customer, "stripe_invoice",
                                        r->invoice, "difference", tg_recon_kind_name(d->kind), "subject", d->subject,
                                        "tollgate", d->tollgate, "stripe", d->stripe));
        return 0;
    }
    if (!r->header_printed) {
        printf("customer\tstripe_invoice\tdifference\tsubject\ttollgate\tstripe\n");
        r->header_printed = 1;
    }
    printf("%s\t%s\t%s\t%s\t%s\t%s\n", r->customer, r->invoice, tg_recon_kind_name(d->kind),
           d->subject[0] ? d->subject : "-", d->tollgate, d->stripe);
    return 0;
}

/* A customer without a Stripe customer: the comparison without an invoice, named as such. */
static int no_customer_cb(const tg_recon_diff_t *d, void *arg)
{
    tg_recon_diff_t nd = *d;
    nd.kind = TG_RECON_NO_STRIPE_CUSTOMER;
    return print_diff(&nd, arg);
}

typedef struct {
    tg_usage_qty_t rows[USAGE_MAX];
    char names[USAGE_MAX][TG_METRIC_MAX];
    size_t n;
} usage_t;

static int usage_cb(const char *metric, uint64_t units, void *arg)
{
    usage_t *u = arg;
    if (u->n == USAGE_MAX)
        return 1;
    snprintf(u->names[u->n], TG_METRIC_MAX, "%s", metric);
    u->rows[u->n] = (tg_usage_qty_t){u->names[u->n], units};
    u->n++;
    return 0;
}

/* One customer. Returns 0, or a TG_E* with err set (the run stops: exit 2). */
static int reconcile_one(run_t *r, const tg_customer_t *c, tg_err_t *err)
{
    const tg_plan_t *plan = tg_config_find_plan(r->cfg, c->plan_id);
    if (plan == NULL)
        return tg_errf(err, TG_ECONFIG, "customer %s is on plan \"%s\", which the configuration lacks", c->id,
                       c->plan_id);
    /* The period that starts in the month, as `tollgate usage --period` takes it. */
    int64_t ps, pe;
    tg_period_bounds(c->anchor_at, plan->interval, r->month_start, &ps, &pe);
    if (ps < r->month_start)
        tg_period_bounds(c->anchor_at, plan->interval, pe, &ps, &pe);
    if (ps < r->month_start || ps >= r->month_end)
        return 0; /* no period of this customer starts in the month (a yearly plan, a later sign-up) */
    if (ps > r->now)
        return 0; /* a period that has not begun: nothing to compare yet */
    if (c->cancel_at != 0 && c->cancel_at <= ps)
        return 0; /* gone before the period */
    r->customers++;

    usage_t *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory");
    int rc = tg_store_usage_period(r->st, c->id, ps, usage_cb, u, err);
    if (rc == 0 && u->n == USAGE_MAX)
        rc = tg_errf(err, TG_ELIMIT, "customer %s has usage of more than %d metrics", c->id, USAGE_MAX - 1);
    /* No base fee while the plan has not started (no card yet) or for a period the trial
     * covers when it begins; a trial ending inside the period is prorated by tollgate's own
     * invoices, not by this comparison. */
    int include_base_fee = strcmp(c->status, "incomplete") != 0 && c->trial_end <= ps;

    char stripe_id[TG_RECON_ID_MAX];
    tg_recon_invoice_t inv = {0};
    int found = 0;
    size_t n = 0;
    r->customer = c->id;
    r->invoice = "none";
    if (rc == 0) {
        tg_err_t e2 = {0};
        int m = tg_store_stripe_customer_get(r->st, c->id, stripe_id, sizeof(stripe_id), &e2);
        if (m == TG_ENOTFOUND) {
            rc = tg_recon_compare(plan, u->rows, u->n, include_base_fee, NULL, no_customer_cb, r, &n, err);
        } else if (m != 0) {
            *err = e2;
            rc = m;
        } else if ((rc = tg_recon_stripe_invoice(r->rs, stripe_id, ps, pe, &inv, &found, err)) == 0) {
            if (found)
                r->invoice = inv.id;
            rc = tg_recon_compare(plan, u->rows, u->n, include_base_fee, found ? &inv : NULL, print_diff, r, &n, err);
        }
        if (rc != 0) {
            char msg[TG_ERR_MAX];
            snprintf(msg, sizeof(msg), "%s", err->msg);
            tg_errf(err, rc, "customer %s: %s", c->id, msg);
        }
    }
    if (n > 0) {
        r->with_diffs++;
        r->diffs += n;
    }
    tg_recon_invoice_free(&inv);
    free(u);
    return rc;
}

typedef struct {
    tg_customer_t *list;
    size_t n;
} page_t;

static int page_cb(const tg_customer_t *c, void *arg)
{
    page_t *p = arg;
    p->list[p->n++] = *c;
    return 0;
}

int tg_cmd_stripe_reconcile(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},   {"period", required_argument, NULL, 'p'},
        {"customer", required_argument, NULL, 'C'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    const char *path = NULL, *period = NULL, *only = NULL;
    int ch, as_json = 0;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":c:p:jh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            path = optarg;
            break;
        case 'p':
            period = optarg;
            break;
        case 'C':
            only = optarg;
            break;
        case 'j':
            as_json = 1;
            break;
        case 'h':
            printf("%s", reconcile_usage);
            return 0;
        case ':':
            fprintf(stderr, "tollgate stripe reconcile: option %s needs a value\n%s", argv[optind - 1],
                    reconcile_usage);
            return 2;
        default:
            fprintf(stderr, "tollgate stripe reconcile: unknown option %s\n%s", argv[optind - 1], reconcile_usage);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tollgate stripe reconcile: unexpected argument \"%s\"\n%s", argv[optind], reconcile_usage);
        return 2;
    }
    run_t r = {0};
    if (path == NULL || period == NULL) {
        fprintf(stderr, "tollgate stripe reconcile: -c FILE and --period YYYY-MM are required\n%s", reconcile_usage);
        return 2;
    }
    if (parse_month(period, &r.month_start, &r.month_end) != 0) {
        fprintf(stderr, "tollgate stripe reconcile: --period %s: expected YYYY-MM\n", period);
        return 2;
    }

    tg_config_t *cfg = tg_stripe_cli_config("tollgate stripe reconcile", path);
    if (cfg == NULL)
        return 2;
    int exit_code = 2;
    tg_err_t err = {0};
    tg_store_t *st = NULL;
    tg_recon_stripe_t *rs = NULL;
    page_t pg = {0};
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "tollgate stripe reconcile: libcurl failed to initialise\n");
        goto out;
    }
    tg_stripe_settings_t ss = {cfg->stripe.secret_key, cfg->stripe.api_base, 30000, NULL};
    int version = 0;
    if (tg_store_open(cfg->storage.database, &st, &err) != 0 || tg_store_schema_version(st, &version, &err) != 0 ||
        tg_recon_stripe_new(&ss, &rs, &err) != 0) {
        fprintf(stderr, "tollgate stripe reconcile: %s\n", err.msg);
        goto out_curl;
    }
    if (version == 0) {
        fprintf(stderr, "tollgate stripe reconcile: %s has no tollgate schema (wrong storage.database?)\n",
                cfg->storage.database);
        goto out_curl;
    }
    if (as_json && (r.json = json_pack("{s:s,s:[]}", "period", period, "differences")) == NULL) {
        fprintf(stderr, "tollgate stripe reconcile: out of memory\n");
        goto out_curl;
    }
    r.cfg = cfg;
    r.now = tg_clock_now_ns() / TG_NS_PER_SEC;
    r.st = st;
    r.rs = rs;
    int rc = 0;
    if (only != NULL) {
        tg_customer_t c;
        if ((rc = tg_store_customer_get(st, only, &c, &err)) == 0)
            rc = reconcile_one(&r, &c, &err);
    } else if ((pg.list = calloc(PAGE, sizeof(*pg.list))) == NULL) {
        rc = tg_errf(&err, TG_ENOMEM, "out of memory");
    } else {
        /* A page of customers at a time, read before comparing them (no statement stays open
         * across the Stripe calls). */
        tg_page_t page = {.limit = PAGE};
        tg_page_end_t end = {0};
        do {
            pg.n = 0;
            if ((rc = tg_store_customer_page(st, &page, page_cb, &pg, &end, &err)) != 0)
                break;
            for (size_t i = 0; i < pg.n && rc == 0; i++)
                rc = reconcile_one(&r, &pg.list[i], &err);
            snprintf(page.after, sizeof(page.after), "%s", end.next);
        } while (rc == 0 && end.has_more);
    }
    if (rc != 0) {
        fflush(stdout);
        fprintf(stderr, "tollgate stripe reconcile: %s\n", err.msg);
    } else if (r.json != NULL) {
        json_object_set_new(r.json, "customers", json_integer((json_int_t)r.customers));
        char *text = json_dumps(r.json, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text == NULL) {
            fprintf(stderr, "tollgate stripe reconcile: out of memory\n");
        } else {
            printf("%s\n", text);
            free(text);
            exit_code = r.diffs == 0 ? 0 : 1;
        }
    } else if (r.diffs == 0) {
        printf("no differences: %zu customer%s with a period starting in %s\n", r.customers,
               r.customers == 1 ? "" : "s", period);
        exit_code = 0;
    } else {
        printf("%zu difference%s in %zu of %zu customer%s with a period starting in %s (amounts in minor units)\n",
               r.diffs, r.diffs == 1 ? "" : "s", r.with_diffs, r.customers, r.customers == 1 ? "" : "s", period);
        exit_code = 1;
    }
out_curl:
    curl_global_cleanup();
out:
    json_decref(r.json);
    free(pg.list);
    tg_recon_stripe_free(rs);
    tg_store_close(st);
    tg_config_free(cfg);
    return exit_code;
}
