/* commands.h - CLI subcommands that work offline (no running server). */
#ifndef TG_COMMANDS_H
#define TG_COMMANDS_H

/* tollgate quote -c CONFIG --plan ID --usage METRIC=N [--usage ...] [--json]; argv[0] == "quote".
 * Returns the process exit code (0 ok, 1 config/pricing error, 2 usage error). */
int tg_cmd_quote(int argc, char **argv);

#endif
