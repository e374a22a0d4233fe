/* config_live.h - the configuration in effect, replaced as a whole by a reload (SIGHUP or
 * POST /v1/admin/reload, see ops/reload.h).
 *
 * Readers take the current tg_config_t with one atomic load and may keep the pointer, and every
 * pointer into it (plans, routes, metric names), as long as they like: a configuration replaced
 * by a reload is kept, unchanged, until tg_config_live_free at shutdown.
 *
 * Why keep every generation rather than count references: a call holds pointers into its
 * configuration from the moment it is admitted until its usage is durable (tg_call_t's plan,
 * route and metric names, through the upstream round trip and the meter's completion), the
 * directory's accounts point at plans and are read lock-free, the admin loop, its back thread
 * and the period closer each read the configuration on their own schedule. A reference count
 * would have to be taken and dropped correctly on every one of those paths, and one missed drop
 * is a use-after-free on the request path; keeping the old ones costs one parsed file (a few
 * kilobytes to a few hundred for a large catalogue) per reload, and reloads are rare (a person
 * or a deploy runs them). The number kept is capped at TG_CONFIG_MAX_GENERATIONS: past it a
 * reload is refused and names the restart that frees them. */
#ifndef TG_CONFIG_LIVE_H
#define TG_CONFIG_LIVE_H

#include <stddef.h>

#include "config/config.h"
#include "util/err.h"

#define TG_CONFIG_MAX_GENERATIONS 1000

typedef struct tg_config_live tg_config_live_t;

/* Takes ownership of `first` (freed by tg_config_live_free, or here when NULL is returned on
 * ENOMEM). */
tg_config_live_t *tg_config_live_new(tg_config_t *first);

/* Frees every generation. Only once no thread reads any of them (after the server stopped). */
void tg_config_live_free(tg_config_live_t *live);

/* The configuration in effect. Thread-safe, one atomic load; valid until tg_config_live_free. */
const tg_config_t *tg_config_live_get(const tg_config_live_t *live);

/* Makes `next` the configuration in effect (release store: a reader that sees it sees it whole)
 * and keeps the previous one. Takes ownership of next on success; on TG_ELIMIT (too many
 * generations) or TG_ENOMEM the caller still owns it. Callers serialise publishes among
 * themselves (the admin back thread does them all); readers need no lock. */
int tg_config_live_publish(tg_config_live_t *live, tg_config_t *next, tg_err_t *err);

/* How many configurations are kept (1 + successful reloads). */
size_t tg_config_live_generations(const tg_config_live_t *live);

/* What a reload cannot change: listener addresses and workers, the upstream, storage.database,
 * metering durability and logs, cluster, stripe, the admin and metrics tokens, keys.secret and
 * portal.public_url are built into threads, sockets, hashers and connections at start. For
 * each of them that differs between `cur` and `next`, its name is appended to `names`
 * (", "-separated, truncated to cap) and next gets a copy of cur's value, so that the
 * configuration in effect says what is in effect. Returns how many differed, or TG_ENOMEM
 * (next is then partly updated; free it). Values are compared, never written into names
 * (several are secrets). */
int tg_config_keep_restart_settings(tg_config_t *next, const tg_config_t *cur, char *names, size_t cap);

#endif
