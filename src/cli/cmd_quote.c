/* cmd_quote.c - `tollgate quote`: what a plan charges for a full period of given usage.
 * Offline: reads the config and runs the same pricing code that builds invoices. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/pricing.h"
#include "cli/commands.h"
#include "config/config.h"

#define MAX_USAGE 32

static const char quote_usage[] =
    "usage: tollgate quote -c CONFIG --plan ID [--usage METRIC=N ...] [--trial] [--json]\n"
    "Prices one full period of the given usage under a plan: base fee, one line per charge\n"
    "(usage above the included allowance), minimum and maximum adjustments, and the total.\n";

int tg_cmd_quote(int argc, char **argv)
{
    static const struct option lo[] = {{"config", required_argument, NULL, 'c'}, {"plan", required_argument, NULL, 'p'},
                                       {"usage", required_argument, NULL, 'u'},  {"json", no_argument, NULL, 'j'},
                                       {"trial", no_argument, NULL, 't'},        {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *config = NULL, *plan_id = NULL;
    int json = 0, trial = 0, c;
    tg_usage_qty_t usage[MAX_USAGE];
    char names[MAX_USAGE][64];
    size_t nusage = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:p:u:jh", lo, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'p': plan_id = optarg; break;
        case 'j': json = 1; break;
        case 't': trial = 1; break;
        case 'h': printf("%s", quote_usage); return 0;
        case 'u': {
            const char *eq = strchr(optarg, '=');
            char *end;
            if (eq == NULL || eq == optarg || (size_t)(eq - optarg) >= sizeof(names[0]) || nusage == MAX_USAGE) {
                fprintf(stderr, "tollgate quote: --usage wants METRIC=N, not \"%s\"\n", optarg);
                return 2;
            }
            unsigned long long n = strtoull(eq + 1, &end, 10);
            if (eq[1] == '\0' || eq[1] == '-' || *end != '\0') {
                fprintf(stderr, "tollgate quote: --usage %s: \"%s\" is not a whole number\n", optarg, eq + 1);
                return 2;
            }
            memcpy(names[nusage], optarg, (size_t)(eq - optarg));
            names[nusage][eq - optarg] = '\0';
            usage[nusage].metric = names[nusage];
            usage[nusage].used = n;
            nusage++;
            break;
        }
        case ':': fprintf(stderr, "tollgate quote: option %s needs a value\n", argv[optind - 1]); return 2;
        default: fprintf(stderr, "tollgate quote: unknown option %s\n%s", argv[optind - 1], quote_usage); return 2;
        }
    }
    if (config == NULL || plan_id == NULL || optind < argc) {
        fprintf(stderr, "tollgate quote: -c CONFIG and --plan ID are required\n%s", quote_usage);
        return 2;
    }
    char errbuf[8192];
    tg_config_t *cfg = NULL;
    if (tg_config_load(config, &cfg, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, "%s", errbuf);
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
    if (tg_quote_build(plan, usage, nusage, !trial, &q, &err) != 0) {
        fprintf(stderr, "tollgate quote: %s\n", err.msg);
        tg_config_free(cfg);
        return 1;
    }
    if (json) {
        char *s = tg_quote_to_json(&q);
        printf("%s\n", s != NULL ? s : "{}");
        free(s);
    } else {
        char amount[TG_MONEY_FMT_MAX], unit[TG_MONEY_FMT_MAX];
        printf("%s (%s), per %s, in %s\n\n", plan->name, plan->id, plan->interval == TG_INTERVAL_YEAR ? "year" : "month",
               plan->currency);
        for (size_t i = 0; i < q.nlines; i++) {
            const tg_line_t *l = &q.lines[i];
            tg_money_format(l->amount, plan->currency_digits, amount, sizeof(amount));
            printf("  %-52s %14s\n", l->description, amount);
            if (l->kind == TG_LINE_USAGE && l->quantity > 0 && l->nparts == 0) {
                tg_money_format(l->unit_price, plan->currency_digits, unit, sizeof(unit));
                printf("    %" PRIu64 " used, %" PRIu64 " billable x %s\n", l->used, l->quantity, unit);
            }
            for (size_t k = 0; k < l->nparts; k++) {
                tg_money_format(l->parts[k].unit_price, plan->currency_digits, unit, sizeof(unit));
                tg_money_format(l->parts[k].amount, plan->currency_digits, amount, sizeof(amount));
                printf("    units %" PRIu64 "-%" PRIu64 ": %" PRIu64 " x %s%s = %s\n", l->parts[k].from, l->parts[k].to,
                       l->parts[k].quantity, unit, l->parts[k].flat_price ? " + flat" : "", amount);
            }
        }
        tg_money_format(q.total, plan->currency_digits, amount, sizeof(amount));
        printf("\n  %-52s %14s %s\n", "Total", amount, plan->currency);
    }
    tg_quote_free(&q);
    tg_config_free(cfg);
    return 0;
}
