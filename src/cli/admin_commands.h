/* admin_commands.h - CLI subcommands that act on a running server through its admin API. */
#ifndef TG_ADMIN_COMMANDS_H
#define TG_ADMIN_COMMANDS_H

/* Each returns the process exit code: 0 ok, 1 API or network error, 2 usage error.
 * argv[0] is the command name ("customers", "keys", "usage"). */
int tg_cmd_customers(int argc, char **argv);
int tg_cmd_keys(int argc, char **argv);
int tg_cmd_usage(int argc, char **argv);
int tg_cmd_invoices(int argc, char **argv);
/* tollgate reload -c FILE: POST /v1/admin/reload; 1 when the server refuses the file. */
int tg_cmd_reload(int argc, char **argv);
/* tollgate audit [filters]: GET /v1/admin/audit, every page. */
int tg_cmd_audit(int argc, char **argv);

#endif
