/* closer.c - see closer.h: the period closer's thread. */
#include "billing/closer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "billing/periods.h"
#include "config/config_live.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/thread_affinity.h"
#include "util/thread_prio.h"

/* A slice between two looks at the stop flag: a stop waits at most this and a batch. */
#define SLICE_NS (200 * 1000000LL)

struct tg_closer {
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    int stopping;
    tg_store_t *st;
    tg_sub_ctx_t x;
    const tg_config_live_t *live;
    int64_t interval_ns;
    int nice;
    const char *close_cpus; /* billing.close_cpus of the start configuration (it outlives c); or NULL */
    int (*may_run)(void *arg);
    void *may_run_arg;
    /* billing.close_connections - 1 more connections (PostgreSQL only), each used by one of the
     * pool's threads during a run (tg_periods_close_pool); none: one connection, in slices */
    tg_store_t **more;
    size_t nmore;
};

/* The pool's keep_going (any of its threads): not stopping, and still the node that closes. */
static int closer_keep_going(void *arg)
{
    tg_closer_t *c = arg;
    pthread_mutex_lock(&c->mu);
    int stop = c->stopping;
    pthread_mutex_unlock(&c->mu);
    return !stop && (c->may_run == NULL || c->may_run(c->may_run_arg));
}

/* One run with the pool: 0 when this node may not close now (another does). */
static int closer_run_pool(tg_closer_t *c)
{
    if (c->may_run != NULL && !c->may_run(c->may_run_arg))
        return 0;
    if (c->live != NULL) /* the run prices with the plans in effect at its start */
        c->x.cfg = tg_config_live_get(c->live);
    tg_periods_run_t run;
    tg_err_t err = {0};
    /* an error ends the run; the next one starts again */
    tg_periods_close_pool(&c->x, c->more, c->nmore, tg_sub_now(&c->x), closer_keep_going, c, &run, &err);
    tg_periods_run_free(&run);
    return 1;
}

static void *closer_main(void *arg)
{
    tg_closer_t *c = arg;
    pthread_setname_np(pthread_self(), "tg-billing");
    /* 19, the lowest (util/thread_prio.h; the pool's threads inherit it): on 2 cores at nice 10
     * the gateway's p99 about doubled during a close. SCHED_IDLE was tried: no better for the
     * gateway in the same runs, and on a saturated node it would hardly progress at all (weight
     * 3 against 1,024 per runnable thread; nice 19 has 15). Either way a closer starved of CPU
     * keeps its batch's write lock meanwhile: on a machine at load 15-20 admin writes waited
     * seconds (README, "Closing a month"). */
    tg_thread_lower_priority_or_warn(c->nice, "the period closer (tg-billing)");
    /* billing.close_cpus: off the gateway's cores (util/thread_affinity.h); the pool's threads,
     * started by this one for each run, inherit the CPUs as they inherit the nice value */
    if (c->close_cpus != NULL)
        tg_thread_keep_to_cpus_or_warn(c->close_cpus, "the period closer (tg-billing)");
    tg_periods_cursor_t cur = {0};
    for (int first = 1;; first = 0) {
        int more = !first; /* the first run one interval after start, as the admin tick's was */
        int64_t wait_ns = c->interval_ns;
        if (more && c->nmore > 0) {
            more = 0; /* the pool runs to the end (it asks closer_keep_going before every page) */
            if (!closer_run_pool(c))
                wait_ns = 1000000000LL; /* another node closes periods: look again in a second */
        }
        while (more) {
            pthread_mutex_lock(&c->mu);
            int stop = c->stopping;
            pthread_mutex_unlock(&c->mu);
            if (stop)
                return NULL;
            if (c->may_run != NULL && !c->may_run(c->may_run_arg)) {
                cur.active = 0; /* another node closes periods: this run ends here */
                wait_ns = 1000000000LL; /* and this node looks again in a second, not an interval */
                break;
            }
            tg_periods_run_t run;
            tg_err_t err = {0};
            /* an error ends the run (more = 0); the next run starts again */
            if (c->live != NULL) /* each slice prices with the plans in effect (a reload) */
                c->x.cfg = tg_config_live_get(c->live);
            tg_periods_close_some(&c->x, &cur, SLICE_NS, &run, &more, &err);
            tg_periods_run_free(&run);
        }
        struct timespec until = tg_clock_deadline_ns(CLOCK_MONOTONIC, wait_ns); /* c->cv's clock */
        pthread_mutex_lock(&c->mu);
        while (!c->stopping && pthread_cond_timedwait(&c->cv, &c->mu, &until) == 0)
            ;
        int stop = c->stopping;
        pthread_mutex_unlock(&c->mu);
        if (stop)
            return NULL;
    }
}

/* Closes c's connections and frees it (its thread has ended, or never started). */
static void closer_free(tg_closer_t *c)
{
    for (size_t k = 0; k < c->nmore; k++)
        tg_store_close(c->more[k]);
    free(c->more);
    tg_store_close(c->st);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

int tg_closer_start(const tg_closer_settings_t *s, tg_closer_t **out, tg_err_t *err)
{
    *out = NULL;
    tg_closer_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return tg_errf(err, TG_ENOMEM, "out of memory starting the period closer");
    int rc = tg_store_open(s->database, &c->st, err);
    if (rc != 0) {
        free(c);
        return rc;
    }
    pthread_mutex_init(&c->mu, NULL);
    tg_clock_cond_init(&c->cv);
    c->x = (tg_sub_ctx_t){.cfg = s->cfg, .store = c->st, .accounts = s->accounts, .meter = s->meter};
    c->live = s->live;
    c->interval_ns = (s->interval_ms > 0 ? s->interval_ms : 10000) * 1000000LL;
    c->nice = s->nice > 0 ? s->nice : TG_NICE_LOWEST;
    c->close_cpus = s->cfg->billing.close_cpus;
    c->may_run = s->may_run;
    c->may_run_arg = s->may_run_arg;
    /* SQLite has one writer: more connections would only wait for it */
    int conns = strcmp(tg_store_backend(c->st), "sqlite") == 0 ? 1 : s->cfg->billing.close_connections;
    if (conns > 1 && (c->more = calloc((size_t)conns - 1, sizeof(*c->more))) == NULL)
        rc = tg_errf(err, TG_ENOMEM, "out of memory starting the period closer");
    for (int k = 1; k < conns && rc == 0; k++)
        if ((rc = tg_store_open(s->database, &c->more[c->nmore], err)) == 0)
            c->nmore++;
    if (rc != 0) {
        closer_free(c);
        return rc;
    }
    if (pthread_create(&c->tid, NULL, closer_main, c) != 0) {
        closer_free(c);
        return tg_errf(err, TG_ENOMEM, "cannot start the period closer's thread");
    }
    *out = c;
    return 0;
}

void tg_closer_stop(tg_closer_t *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->tid, NULL);
    closer_free(c);
}
