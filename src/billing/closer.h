/* closer.h - the period closer's own thread (tollgate serve): every interval it runs
 * tg_periods_close_some (billing/periods.h) over the customers due, on its own store connection
 * and at a lower CPU priority than the gateway's workers.
 *
 * Why a thread of its own: closing a million customers' month is about a minute of CPU. On the
 * admin thread it delayed the admin API (even in slices, by one slice per job), and at the
 * admin thread's priority it took a full core from the gateway's workers on a small machine.
 * Here it holds nobody's thread; at nice 19 it yields the CPU to the request path under load
 * and takes what is idle otherwise (at nice 10 the gateway's p99 about doubled during a close
 * on 2 cores: bench/invoices-under-load.sh, README); and the store
 * serialises it with the other writers a batch (one transaction, TG_PERIODS_BATCH customers or
 * TG_PERIODS_BATCH_NS) at a time. Errors and failing customers are retried by the next run
 * (periods.h).
 *
 * With billing.close_connections N > 1 on PostgreSQL the closer opens N - 1 more connections at
 * start, and each run is tg_periods_close_pool over all N: this thread and N - 1 threads started
 * for the run (inheriting its nice value), each closing its own pages of the customers due;
 * the stop flag and may_run are asked before every page. SQLite keeps one connection. */
#ifndef TG_CLOSER_H
#define TG_CLOSER_H

#include <stdint.h>

#include "billing/subscriptions.h"
#include "config/config.h"
#include "util/err.h"

typedef struct tg_closer tg_closer_t;

typedef struct tg_closer_settings {
    const char *database;    /* store URL: the thread opens its own connection (copied) */
    const tg_config_t *cfg;  /* must outlive the closer */
    tg_accounts_t *accounts; /* the gateway's directory (scheduled changes); may be NULL */
    tg_meter_t *meter;       /* flushed at the start of each run; may be NULL */
    int64_t interval_ms;     /* between the starts of two runs; 0: 10000 */
    int nice;                /* the thread's nice value; 0: 19 (negative values are not taken) */
    /* Whether this node may close periods now (several gateways: only the one holding the
     * scheduler lock, store_cluster.h), asked before each run and between its slices; a run
     * stops when it says no. NULL: always. Called on the closer's thread. */
    int (*may_run)(void *arg);
    void *may_run_arg;
    /* The configuration in effect (config/config_live.h), read before each slice; NULL: cfg. */
    const struct tg_config_live *live;
} tg_closer_settings_t;

/* Opens the connection and starts the thread; its first run starts one interval later (as the
 * admin tick's did: tests that move the clock and then run invoices themselves rely on it).
 * 0, or TG_ENOMEM / the store's error with nothing started. */
int tg_closer_start(const tg_closer_settings_t *s, tg_closer_t **out, tg_err_t *err);

/* Stops the thread between two batches (a batch in flight commits), closes its connection,
 * frees c. NULL is allowed. */
void tg_closer_stop(tg_closer_t *c);

#endif
