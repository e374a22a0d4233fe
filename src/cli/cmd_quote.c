/* cmd_quote.c - `tollgate quote`: what a plan charges for one full period of given usage.
 * Offline: reads the configuration and runs the same pricing code (billing/pricing.h) that the
 * public calculator and invoice closing use, so the three always agree. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/line_text.h"
#include "billing/pricing.h"
#include "cli/commands.h"
#include "config/config.h"
#include "util/money_text.h"

#define MAX_USAGE 64  /* --usage options; a plan prices at most as many metrics as it has charges */
#define METRIC_MAX 64 /* as tg_line_t.metric */

static const char quote_usage[] =
    "usage: tollgate quote -c CONFIG --plan ID [--usage METRIC=N ...] [--trial] [--json]\n"
    "\n"
    "Prices one full period of the given usage under a plan: the base fee, one line per charge\n"
    "(the usage above the plan's included allowance, priced by the charge's model), a minimum\n"
    "commitment top-up or spending cap adjustment, and the total. Each line is rounded once to\n"
    "the currency's minor unit; the total is the sum of the rounded lines.\n"
    "\n"
    "  -c, --config FILE     configuration file (required)\n"
    "  -p, --plan ID         plan to price (required)\n"
    "  -u, --usage METRIC=N  usage of one metric in the period; repeat for more metrics\n"
    "                        (metrics not given count 0; repeats of one metric add up)\n"
    "  -t, --trial           a trial period: no base fee\n"
    "  -j, --json            print the quote as JSON\n"
    "  -h, --help            print this help\n"
    "\n"
    "Exit status: 0 quoted, 1 configuration or pricing error, 2 usage error.\n";

/* Parses METRIC=N into name/used. Returns 0 or prints why not and returns -1. */
static int parse_usage(const char *arg, char name[METRIC_MAX], uint64_t *used)
{
    const char *eq = strchr(arg, '=');
    if (eq == NULL || eq == arg) {
        fprintf(stderr, "tollgate quote: --usage wants METRIC=N, not \"%s\"\n", arg);
        return -1;
    }
    size_t nlen = (size_t)(eq - arg);
    if (nlen >= METRIC_MAX) {
        fprintf(stderr, "tollgate quote: --usage %.*s...: metric names have at most %d characters\n", 20, arg,
                METRIC_MAX - 1);
        return -1;
    }
    const char *num = eq + 1;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(num, &end, 10);
    /* strtoull alone would accept " 5", "-5" (wrapped) and, with ERANGE, clamp to the maximum */
    if (!isdigit((unsigned char)num[0]) || *end != '\0' || errno == ERANGE) {
        fprintf(stderr, "tollgate quote: --usage %s: \"%s\" is not a whole number of units up to %" PRIu64 "\n", arg,
                num, UINT64_MAX);
        return -1;
    }
    memcpy(name, arg, nlen);
    name[nlen] = '\0';
    *used = (uint64_t)n;
    return 0;
}

static void upper(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src[i] != '\0' && i + 1 < cap; i++)
        dst[i] = (char)toupper((unsigned char)src[i]);
    dst[i] = '\0';
}

/* The human table: one row per line, an indented row explaining each usage line, the total. */
/* "$49.00" right-aligned in 14 columns (a symbol may take several bytes for one column). */
static void print_money(const char *amount, const char *currency)
{
    char text[80];
    const char *t = tg_money_text(amount, currency, text, sizeof(text)) >= 0 ? text : amount;
    int cols = 0;
    for (const char *p = t; *p != '\0'; p++)
        cols += ((unsigned char)*p & 0xC0) != 0x80;
    printf("%*s%s\n", cols < 14 ? 14 - cols : 0, "", t);
}

static void print_table(const tg_plan_t *plan, const tg_quote_t *q)
{
    int d = plan->currency_digits;
    char cur[8], amount[TG_MONEY_FMT_MAX], unit[TG_MONEY_FMT_MAX], exact[TG_MONEY_FMT_MAX];
    upper(cur, sizeof(cur), plan->currency);
    printf("%s (%s), per %s, in %s\n\n", plan->name, plan->id, plan->interval == TG_INTERVAL_YEAR ? "year" : "month",
           cur);
    for (size_t i = 0; i < q->nlines; i++) {
        const tg_line_t *l = &q->lines[i];
        tg_money_format(l->amount, d, amount, sizeof(amount));
        printf("  %-52s ", l->description);
        print_money(amount, plan->currency);
        if (l->kind != TG_LINE_USAGE)
            continue;
        printf("      %" PRIu64 " used", l->used);
        if (l->included == TG_UNLIMITED)
            printf(", all included");
        else if (l->included > 0)
            printf(", %" PRIu64 " included", l->included);
        printf(", %" PRIu64 " billable", l->quantity);
        tg_money_format(l->exact, d, exact, sizeof(exact));
        const tg_charge_t *c = NULL;
        for (size_t k = 0; k < plan->ncharges && c == NULL; k++)
            if (strcmp(plan->charges[k].metric, l->metric) == 0)
                c = &plan->charges[k];
        if (c != NULL && c->model == TG_MODEL_PER_UNIT && l->quantity > 0) {
            tg_money_format(l->unit_price, d, unit, sizeof(unit));
            printf(" x %s = %s", unit, exact);
        }
        printf("\n");
        for (size_t k = 0; k < l->nparts; k++) {
            const tg_tier_part_t *p = &l->parts[k];
            tg_money_format(p->unit_price, d, unit, sizeof(unit));
            tg_money_format(p->amount, d, exact, sizeof(exact));
            if (c != NULL && c->model == TG_MODEL_PACKAGE) {
                printf("      %" PRIu64 " package%s of %" PRIu64 " x %s = %s\n", p->quantity,
                       p->quantity == 1 ? "" : "s", c->package_size, unit, exact);
                continue;
            }
            if (p->from == p->to)
                printf("      unit %" PRIu64, p->from);
            else
                printf("      units %" PRIu64 "-%" PRIu64, p->from, p->to);
            printf(": %" PRIu64 " x %s", p->quantity, unit);
            if (p->flat_price != 0) {
                char flat[TG_MONEY_FMT_MAX];
                tg_money_format(p->flat_price, d, flat, sizeof(flat));
                printf(" + %s flat", flat);
            }
            printf(" = %s\n", exact);
        }
    }
    tg_money_format(q->total, d, amount, sizeof(amount));
    printf("  %-52s ", "Total");
    print_money(amount, plan->currency);
    for (size_t i = 0; i < q->nblocked; i++)
        printf("\n  Blocked after %" PRIu64 " %s on this plan: calls past the allowance are refused (429), not "
               "billed.\n",
               q->blocked[i].after, q->blocked[i].metric);
}

int tg_cmd_quote(int argc, char **argv)
{
    static const struct option lo[] = {{"config", required_argument, NULL, 'c'},
                                       {"plan", required_argument, NULL, 'p'},
                                       {"usage", required_argument, NULL, 'u'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"trial", no_argument, NULL, 't'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *config = NULL, *plan_id = NULL;
    int json = 0, trial = 0, c;
    tg_usage_qty_t usage[MAX_USAGE];
    char names[MAX_USAGE][METRIC_MAX];
    size_t nusage = 0;
    optind = 0; /* glibc: a full reset, in case getopt ran before in this process (tests) */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:p:u:jth", lo, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'p':
            plan_id = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 't':
            trial = 1;
            break;
        case 'h':
            printf("%s", quote_usage);
            return 0;
        case 'u':
            if (nusage == MAX_USAGE) {
                fprintf(stderr, "tollgate quote: at most %d --usage options\n", MAX_USAGE);
                return 2;
            }
            if (parse_usage(optarg, names[nusage], &usage[nusage].used) != 0)
                return 2;
            usage[nusage].metric = names[nusage];
            nusage++;
            break;
        case ':':
            fprintf(stderr, "tollgate quote: option %s needs a value\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "tollgate quote: unknown option %s\n%s", argv[optind - 1], quote_usage);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tollgate quote: unexpected argument \"%s\"\n%s", argv[optind], quote_usage);
        return 2;
    }
    if (config == NULL || plan_id == NULL) {
        fprintf(stderr, "tollgate quote: -c CONFIG and --plan ID are required\n%s", quote_usage);
        return 2;
    }

    char errbuf[8192];
    tg_config_t *cfg = NULL;
    if (tg_config_load(config, &cfg, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, "%s%s", errbuf, errbuf[0] != '\0' && errbuf[strlen(errbuf) - 1] == '\n' ? "" : "\n");
        return 1;
    }
    const tg_plan_t *plan = tg_config_find_plan(cfg, plan_id);
    if (plan == NULL) {
        fprintf(stderr, "tollgate quote: no plan \"%s\" in %s\n", plan_id, config);
        tg_config_free(cfg);
        return 1;
    }
    tg_quote_t q;
    tg_err_t err = {0};
    if (tg_quote_estimate(plan, usage, nusage, !trial, &q, &err) != 0) {
        fprintf(stderr, "tollgate quote: %s\n", err.msg);
        tg_config_free(cfg);
        return 1;
    }
    int rc = 0;
    if (json) {
        json_t *j = tg_quote_json_for_people(cfg, &q); /* the calculator API's answer */
        char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
        if (s != NULL)
            printf("%s\n", s);
        else {
            fprintf(stderr, "tollgate quote: out of memory writing JSON\n");
            rc = 1;
        }
        free(s);
        json_decref(j);
    } else {
        print_table(plan, &q);
    }
    tg_quote_free(&q);
    tg_config_free(cfg);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "tollgate quote: cannot write the quote: %s\n", strerror(errno));
        rc = 1;
    }
    return rc;
}
