/* commands.h - CLI subcommands that work offline (no running server). */
#ifndef TG_COMMANDS_H
#define TG_COMMANDS_H

/* tollgate quote -c CONFIG --plan ID [--usage METRIC=N ...] [--trial] [--json]; argv[0] == "quote".
 * Prints the quote (or --help) to stdout and problems to stderr. Returns the process exit code:
 * 0 quoted, 1 configuration or pricing error, 2 usage error. */
int tg_cmd_quote(int argc, char **argv);

/* tollgate stripe reconcile -c CONFIG --period YYYY-MM [--customer ID]; argv[0] == "reconcile".
 * Compares tollgate's usage and invoice computation with Stripe's invoices (billing: stripe) and
 * prints every difference. Returns 0 no differences, 1 differences, 2 usage, configuration,
 * store or Stripe error. */
int tg_cmd_stripe_reconcile(int argc, char **argv);

/* tollgate metering recover -c CONFIG --log-dir DIR; argv[0] == "metering". Stores a lost node's
 * metering logs (metering/meter.h, tg_meter_recover). Returns 0 done, 1 error, 2 usage. */
int tg_cmd_metering(int argc, char **argv);

/* tollgate backup -c CONFIG DEST | tollgate restore -c CONFIG SRC; argv[0] == "backup" or
 * "restore" (ops/backup.h). Returns 0 done, 1 error, 2 usage. */
int tg_cmd_backup(int argc, char **argv);

struct tg_config;

/* For the `tollgate stripe` subcommands: loads the configuration at path and checks it has a
 * stripe section with stripe.billing: stripe; prints why not (naming `cmd`) and returns NULL. */
struct tg_config *tg_stripe_cli_config(const char *cmd, const char *path);

/* tollgate stripe sync-catalog|reconcile ...; argv[0] == "stripe". sync-catalog makes Stripe's catalog
 * match the plans (stripe.billing: stripe), calling Stripe synchronously. Returns the exit code:
 * 0 done, 1 Stripe error, 2 usage or configuration error (refused plans included). */
int tg_cmd_stripe(int argc, char **argv);

/* With stripe.billing: stripe, prints to stderr, as "FILE:LINE: plans.P.FIELD: ...", every part
 * of a plan Stripe cannot bill exactly (payments/stripe_catalog.h), and returns how many; 0 with
 * any other configuration; -1 when out of memory (also printed). check-config, serve and
 * sync-catalog refuse such a configuration. */
int tg_stripe_catalog_report(const struct tg_config *cfg);

#endif
