/* periods.c - see periods.h: the invoice run, called by the admin thread's tick and the
 * invoices/run adapter. */
#include "billing/periods.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/invoice.h"
#include "notify/events.h"
#include "payments/outbox.h"
#include "util/clock.h"
#include "util/money.h"

const char *tg_periods_failure_type(int rc)
{
    switch (rc) {
    case TG_ERANGE:
        return "money_out_of_range";
    case TG_ECONFIG:
        return "configuration";
    default:
        return "invoice_failed";
    }
}

void tg_periods_run_free(tg_periods_run_t *run)
{
    free(run->failed);
    run->failed = NULL;
    run->nfailed = 0;
}

static void note_failure(tg_periods_run_t *run, const char *customer_id, const char *type, const char *msg)
{
    if (run->failures++ == 0)
        snprintf(run->first_error, sizeof(run->first_error), "%s", msg);
    if (run->nfailed >= TG_PERIODS_FAILURES_LISTED)
        return;
    if (run->failed == NULL && (run->failed = calloc(TG_PERIODS_FAILURES_LISTED, sizeof(*run->failed))) == NULL)
        return;
    tg_period_failure_t *f = &run->failed[run->nfailed++];
    snprintf(f->customer_id, sizeof(f->customer_id), "%s", customer_id);
    snprintf(f->type, sizeof(f->type), "%s", type);
    snprintf(f->message, sizeof(f->message), "%s", msg);
}

/* Whether a change scheduled for c (a downgrade, a cancellation at the period's end) is to be
 * applied at t: close_one applies it after the customer's last invoice under the old plan. */
static int change_due(const tg_customer_t *c, int64_t t)
{
    return (c->pending_plan_id[0] != '\0' && t >= c->pending_at) ||
           (c->cancel_at != 0 && t >= c->cancel_at && strcmp(c->status, "canceled") != 0);
}

/* Closes c's periods (from from_end, see tg_invoice_close_due) inside the caller's batch
 * transaction; a failing customer rolls back alone (its invoice's savepoint) and is kept in the
 * store (billing_failures) until a run invoices it. With schedule, moves c's next period end
 * (compare and set against from_end) once nothing is left to do for it now. Returns the number
 * of invoices created. */
static int close_one(const tg_sub_ctx_t *x, const tg_customer_t *c, int64_t from_end, int schedule, int64_t now,
                     tg_periods_run_t *run)
{
    int made = 0, frc;
    int64_t next = 0;
    tg_err_t e = {0}, fe = {0};
    if ((frc = tg_invoice_close_due(x->store, x->cfg, c, from_end, now, &made, &next, &e)) != 0) {
        const char *type = tg_periods_failure_type(frc);
        note_failure(run, c->id, type, e.msg);
        tg_store_billing_failure_set(x->store, c->id, type, e.msg, tg_sub_now(x), &fe);
        return 0; /* stays due: the next run tries again */
    }
    tg_store_billing_failure_clear(x->store, c->id, &fe);
    /* Only once its last period is invoiced under the old plan does a scheduled change
     * (downgrade, cancellation at period end) take effect; a failure is retried on the next
     * run (the customer stays due). A change applied rewrites the customer, which resets its
     * next period end (store.h): the next run computes it from the new plan. */
    int changes = change_due(c, tg_sub_now(x));
    int applied = tg_sub_apply_scheduled(x, c, &fe) == 0;
    if (schedule && applied && !changes && next != from_end)
        tg_store_customer_set_next_period_end(x->store, c->id, from_end, next, &fe);
    return made;
}

typedef struct {
    tg_customer_t c;
    int64_t next_end;
} due_t;

typedef struct {
    due_t *list;
    size_t n;
} due_page_t;

static int due_cb(const tg_customer_t *c, int64_t next_end, void *arg)
{
    due_page_t *p = arg;
    p->list[p->n].c = *c;
    p->list[p->n++].next_end = next_end;
    return 0;
}

typedef struct {
    tg_invoice_close_t *e; /* TG_PERIODS_CHUNK */
    tg_invoice_build_arg_t args[TG_PERIODS_CHUNK];
} chunk_t;

/* Closes the nb customers of e (one period each, nothing scheduled) in the caller's batch
 * transaction: what close_one does for each, with one store call. A customer that fails is
 * listed (run, billing_failures) and stays due. An error of the store ends the batch (the
 * caller rolls it back: nothing of it is kept). */
static int close_chunk(const tg_sub_ctx_t *x, tg_invoice_close_t *e, size_t nb, tg_periods_run_t *run, int *created,
                       tg_err_t *err)
{
    int rc = tg_store_invoice_close_batch(x->store, e, nb, tg_invoice_on_build, err);
    for (size_t i = 0; i < nb; i++) {
        if (rc == 0 && e[i].rc != 0) {
            tg_err_t fe = {0};
            const char *type = tg_periods_failure_type(e[i].rc);
            note_failure(run, e[i].draft.customer_id, type, e[i].err.msg);
            tg_store_billing_failure_set(x->store, e[i].draft.customer_id, type, e[i].err.msg, tg_sub_now(x), &fe);
        } else if (rc == 0) {
            *created += e[i].created;
        }
        free(e[i].draft.body);
        e[i].draft.body = NULL;
    }
    return rc;
}

/* Closes page->list[*done ..] inside the caller's open transaction until the page ends or
 * TG_PERIODS_BATCH_NS of wall time has passed since tb: the closer may run at a low CPU priority
 * (billing/closer.h), and a starved thread must not hold the store's write lock (the metering
 * writer, the admin API) for seconds. The customers with one period to close and nothing
 * scheduled (nearly all, at a month's end) go to the store TG_PERIODS_CHUNK at a time
 * (tg_store_invoice_close_batch: on PostgreSQL a few statements per chunk instead of about seven
 * round trips per customer); the others one by one (close_one). *created counts the invoices
 * made; an error of the store ends the batch (the caller rolls it back). */
static int close_batch(const tg_sub_ctx_t *x, due_page_t *page, size_t *done, int64_t now, int64_t tb, chunk_t *chunk,
                       tg_periods_run_t *run, int *created, tg_err_t *err)
{
    int late = 0;
    while (*done < page->n && !late) {
        size_t nb = 0;
        int64_t t = tg_sub_now(x);
        while (*done < page->n && nb < TG_PERIODS_CHUNK && !late) {
            due_t *d = &page->list[(*done)++];
            tg_invoice_close_t *e = &chunk->e[nb];
            if (!change_due(&d->c, t) &&
                tg_invoice_due_single(x->cfg, &d->c, d->next_end, now, &e->draft, &e->next_end)) {
                chunk->args[nb] = (tg_invoice_build_arg_t){x->cfg, &d->c};
                e->build_arg = &chunk->args[nb];
                e->next_expected = d->next_end;
                nb++;
            } else {
                *created += close_one(x, &d->c, d->next_end, 1, now, run);
                late = tg_clock_mono_ns() - tb >= TG_PERIODS_BATCH_NS;
            }
        }
        int rc = close_chunk(x, chunk->e, nb, run, created, err);
        if (rc != 0)
            return rc;
        late = late || tg_clock_mono_ns() - tb >= TG_PERIODS_BATCH_NS;
    }
    return 0;
}

int tg_periods_close_some(const tg_sub_ctx_t *x, tg_periods_cursor_t *cur, int64_t budget_ns, tg_periods_run_t *run,
                          int *more, tg_err_t *err)
{
    memset(run, 0, sizeof(*run));
    *more = 0;
    if (!cur->active) {
        cur->active = 1;
        cur->now = tg_sub_now(x);
        cur->after_end = INT64_MIN;
        cur->after_id[0] = '\0';
        if (x->meter != NULL)
            tg_meter_flush(x->meter); /* calls answered before now are on this run's invoices */
    }
    due_page_t page = {calloc(TG_PERIODS_BATCH, sizeof(due_t)), 0};
    chunk_t chunk = {calloc(TG_PERIODS_CHUNK, sizeof(tg_invoice_close_t)), {{0}}};
    if (page.list == NULL || chunk.e == NULL) {
        cur->active = 0;
        free(page.list);
        free(chunk.e);
        return tg_errf(err, TG_ENOMEM, "Out of memory closing periods.");
    }
    int64_t t0 = tg_clock_mono_ns();
    int rc = 0;
    /* One transaction per batch: one fsync per batch, not per invoice, and the metering writer
     * waits at most one batch. The page is read inside the batch's transaction. Customers
     * invoiced move past the run's clock; the ones that failed stay where they were, and the
     * cursor steps over them. A batch cut short by TG_PERIODS_BATCH_NS leaves the rest of its
     * page to be read again by the next batch. */
    for (;;) {
        if ((rc = tg_store_tx_begin(x->store, err)) != 0)
            break;
        page.n = 0;
        if ((rc = tg_store_customers_due(x->store, cur->now, cur->after_end, cur->after_id, TG_PERIODS_BATCH, due_cb,
                                         &page, NULL, err)) != 0) {
            tg_store_tx_rollback(x->store);
            break;
        }
        int batch_created = 0;
        size_t done = 0;
        if ((rc = close_batch(x, &page, &done, cur->now, tg_clock_mono_ns(), &chunk, run, &batch_created, err)) != 0) {
            tg_store_tx_rollback(x->store);
            break;
        }
        if ((rc = tg_store_tx_commit(x->store, err)) != 0)
            break;
        /* an admin write or the metering applier waiting for SQLite's write lock goes before the
         * next batch, so that it waits one batch at most, not the whole close */
        tg_store_let_writers_in(x->store);
        run->created += batch_created;
        if (done == page.n && page.n < TG_PERIODS_BATCH)
            break; /* the run is complete */
        cur->after_end = page.list[done - 1].next_end;
        snprintf(cur->after_id, sizeof(cur->after_id), "%s", page.list[done - 1].c.id);
        if (budget_ns > 0 && tg_clock_mono_ns() - t0 >= budget_ns) {
            *more = 1;
            break;
        }
    }
    if (!*more)
        cur->active = 0;
    free(page.list);
    free(chunk.e);
    return rc;
}

/* ---- several connections (billing.close_connections) ---- */

/* What the workers of one pooled run share: the cursor over the customers due, moved a page at
 * a time under mu, so that the pages, and so the customers, are disjoint. */
typedef struct {
    pthread_mutex_t mu;
    int64_t now;
    int64_t after_end;
    char after_id[TG_ID_MAX];
    int done; /* the last page has been handed out, or a worker failed or was told to stop */
    int (*keep_going)(void *arg);
    void *keep_going_arg;
} pool_share_t;

typedef struct {
    pool_share_t *sh;
    tg_sub_ctx_t x; /* with the worker's own store */
    tg_periods_run_t run;
    int rc;
    tg_err_t err;
} pool_worker_t;

/* Takes the next page of the run for w (on w's own connection, outside any transaction: on
 * PostgreSQL at read committed a page read inside the batch's transaction is no fresher), and
 * moves the shared cursor past it. 0 with page->n == 0 when the run is over for everyone. */
static int pool_take_page(pool_worker_t *w, due_page_t *page, tg_err_t *err)
{
    pool_share_t *sh = w->sh;
    int rc = 0;
    page->n = 0;
    pthread_mutex_lock(&sh->mu);
    if (!sh->done && sh->keep_going != NULL && !sh->keep_going(sh->keep_going_arg))
        sh->done = 1;
    if (!sh->done) {
        rc = tg_store_customers_due(w->x.store, sh->now, sh->after_end, sh->after_id, TG_PERIODS_BATCH, due_cb, page,
                                    NULL, err);
        if (rc != 0 || page->n < TG_PERIODS_BATCH) {
            sh->done = 1; /* the last page (or an error: the next run starts again) */
        } else {
            sh->after_end = page->list[page->n - 1].next_end;
            snprintf(sh->after_id, sizeof(sh->after_id), "%s", page->list[page->n - 1].c.id);
        }
    }
    pthread_mutex_unlock(&sh->mu);
    return rc;
}

/* A worker: pages from the shared cursor until there are none, each page in one or more
 * transactions (a new one after TG_PERIODS_BATCH_NS; the rest of the page stays this worker's,
 * as no other can take it). An error stops every worker after its current page. */
static void *pool_worker_main(void *arg)
{
    pool_worker_t *w = arg;
    due_page_t page = {calloc(TG_PERIODS_BATCH, sizeof(due_t)), 0};
    chunk_t *chunk = calloc(1, sizeof(*chunk));
    if (chunk != NULL)
        chunk->e = calloc(TG_PERIODS_CHUNK, sizeof(tg_invoice_close_t));
    if (page.list == NULL || chunk == NULL || chunk->e == NULL) {
        w->rc = tg_errf(&w->err, TG_ENOMEM, "Out of memory closing periods.");
    }
    while (w->rc == 0) {
        if ((w->rc = pool_take_page(w, &page, &w->err)) != 0 || page.n == 0)
            break;
        size_t done = 0;
        while (done < page.n && w->rc == 0) {
            int created = 0;
            if ((w->rc = tg_store_tx_begin(w->x.store, &w->err)) != 0)
                break;
            w->rc = close_batch(&w->x, &page, &done, w->sh->now, tg_clock_mono_ns(), chunk, &w->run, &created, &w->err);
            if (w->rc == 0)
                w->rc = tg_store_tx_commit(w->x.store, &w->err);
            else
                tg_store_tx_rollback(w->x.store);
            if (w->rc == 0)
                w->run.created += created;
        }
    }
    if (w->rc != 0) { /* the others stop after their page: the next run starts again */
        pthread_mutex_lock(&w->sh->mu);
        w->sh->done = 1;
        pthread_mutex_unlock(&w->sh->mu);
    }
    free(page.list);
    if (chunk != NULL)
        free(chunk->e);
    free(chunk);
    return NULL;
}

static void *pool_thread_main(void *arg)
{
    pthread_setname_np(pthread_self(), "tg-billing");
    return pool_worker_main(arg);
}

/* Adds w's run to run: the counts, the first error, the listed failures (up to the cap). */
static void run_merge(tg_periods_run_t *run, const tg_periods_run_t *w)
{
    run->created += w->created;
    if (run->failures == 0 && w->failures > 0)
        snprintf(run->first_error, sizeof(run->first_error), "%s", w->first_error);
    for (size_t i = 0; i < w->nfailed; i++)
        note_failure(run, w->failed[i].customer_id, w->failed[i].type, w->failed[i].message);
    run->failures += w->failures - (int)w->nfailed; /* note_failure counted the listed ones */
}

int tg_periods_close_pool(const tg_sub_ctx_t *x, tg_store_t *const *more, size_t nmore, int64_t now,
                          int (*keep_going)(void *arg), void *arg, tg_periods_run_t *run, tg_err_t *err)
{
    memset(run, 0, sizeof(*run));
    pool_share_t sh = {.now = now, .after_end = INT64_MIN, .keep_going = keep_going, .keep_going_arg = arg};
    pool_worker_t *w = calloc(nmore + 1, sizeof(*w));
    pthread_t *tid = calloc(nmore + 1, sizeof(*tid));
    int *started = calloc(nmore + 1, sizeof(*started));
    if (w == NULL || tid == NULL || started == NULL) {
        free(w);
        free(tid);
        free(started);
        return tg_errf(err, TG_ENOMEM, "Out of memory closing periods.");
    }
    pthread_mutex_init(&sh.mu, NULL);
    if (x->meter != NULL)
        tg_meter_flush(x->meter); /* calls answered before now are on this run's invoices */
    for (size_t k = 0; k <= nmore; k++) {
        w[k].sh = &sh;
        w[k].x = *x;
        if (k > 0)
            w[k].x.store = more[k - 1];
    }
    /* worker 0 is the calling thread, on x->store; a thread that cannot start leaves its share
     * to the others */
    for (size_t k = 1; k <= nmore; k++)
        started[k] = pthread_create(&tid[k], NULL, pool_thread_main, &w[k]) == 0;
    pool_worker_main(&w[0]);
    int rc = 0;
    for (size_t k = 0; k <= nmore; k++) {
        if (k > 0 && !started[k])
            continue;
        if (k > 0)
            pthread_join(tid[k], NULL);
        run_merge(run, &w[k].run);
        tg_periods_run_free(&w[k].run);
        if (rc == 0 && w[k].rc != 0) {
            rc = w[k].rc;
            if (err != NULL)
                *err = w[k].err;
        }
    }
    pthread_mutex_destroy(&sh.mu);
    free(w);
    free(tid);
    free(started);
    return rc;
}

int tg_periods_close(const tg_sub_ctx_t *x, const char *customer_id, int64_t until, tg_periods_run_t *run,
                     tg_err_t *err)
{
    int rc;
    memset(run, 0, sizeof(*run));
    int64_t now = tg_sub_now(x) < until ? tg_sub_now(x) : until;
    if (customer_id == NULL) {
        tg_periods_cursor_t cur = {.active = 1, .now = now, .after_end = INT64_MIN};
        int more = 0;
        if (x->meter != NULL)
            tg_meter_flush(x->meter); /* calls answered before now are on this run's invoices */
        return tg_periods_close_some(x, &cur, 0, run, &more, err);
    }
    tg_customer_t c;
    if ((rc = tg_store_customer_get(x->store, customer_id, &c, err)) != 0) {
        if (rc == TG_ENOTFOUND)
            tg_errf(err, rc, "No customer %s.", customer_id);
        return rc;
    }
    if (x->meter != NULL)
        tg_meter_flush(x->meter); /* calls answered before now are on this run's invoices */
    /* One customer: every period since its anchor (the schedule is left to the run over every
     * customer, which meets this one at its next period end and finds its invoices made). */
    if ((rc = tg_store_tx_begin(x->store, err)) != 0)
        return rc;
    int made = close_one(x, &c, 0, 0, now, run);
    if ((rc = tg_store_tx_commit(x->store, err)) == 0)
        run->created += made;
    return rc;
}

/* invoice.finalized / invoice.paid for inv (notify/events.h), once per invoice (the dedupe key
 * is the invoice's id), in the caller's transaction. */
static int invoice_event(const tg_sub_ctx_t *x, const char *type, const tg_invoice_t *inv, tg_err_t *err)
{
    char total[48], key[TG_EVENT_DEDUPE_MAX];
    tg_money_format(inv->total, tg_currency_digits(inv->currency), total, sizeof(total));
    json_t *data = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I}", "invoice_id", inv->id, "number", inv->number, "currency",
                             inv->currency, "total", total, "period_start", (json_int_t)inv->period_start, "period_end",
                             (json_int_t)inv->period_end);
    snprintf(key, sizeof(key), "%s:%s", type, inv->id);
    int rc = tg_event_emit(x->store, type, inv->customer_id, data, key, err);
    json_decref(data);
    return rc == TG_EEXIST ? 0 : rc;
}

/* Before draft id is finalized, in the finalizing transaction: the usage of its period that
 * arrived while it was a draft goes onto it (tg_store_invoice_draft_refresh), not onto the next
 * invoice as a late line. An id that is not a draft is left to the transition to refuse. */
static int refresh_draft(const tg_sub_ctx_t *x, const char *id, tg_err_t *err)
{
    tg_invoice_t inv;
    memset(&inv, 0, sizeof(inv));
    int rc = tg_store_invoice_get(x->store, id, &inv, err);
    if (rc != 0 || strcmp(inv.status, "draft") != 0) {
        tg_invoice_clear(&inv);
        return rc == TG_ENOTFOUND ? 0 : rc; /* the transition says so */
    }
    tg_customer_t c;
    rc = tg_store_customer_get(x->store, inv.customer_id, &c, err);
    tg_invoice_clear(&inv);
    if (rc != 0)
        return rc;
    tg_invoice_build_arg_t b = {x->cfg, &c};
    int changed = 0;
    return tg_store_invoice_draft_refresh(x->store, id, tg_invoice_on_refresh, &b, &changed, err);
}

int tg_periods_invoice_transition(const tg_sub_ctx_t *x, const char *id, const char *to, int *queued, tg_err_t *err)
{
    const tg_config_t *cfg = x->cfg;
    int to_stripe = strcmp(to, "open") == 0 && cfg->stripe.enabled && cfg->stripe.billing == TG_STRIPE_BILLING_TOLLGATE;
    const char *type = strcmp(to, "open") == 0   ? TG_EVENT_INVOICE_FINALIZED
                       : strcmp(to, "paid") == 0 ? TG_EVENT_INVOICE_PAID
                                                 : NULL;
    if (queued != NULL)
        *queued = 0;
    if (!to_stripe && type == NULL)
        return tg_store_invoice_transition(x->store, id, to, tg_sub_now(x), err);
    tg_invoice_t inv;
    memset(&inv, 0, sizeof(inv));
    int rc = tg_store_tx_begin(x->store, err);
    if (rc != 0)
        return rc;
    /* the draft brought up to date (finalizing), the transition, its event and (tollgate billing
     * through Stripe) the Stripe invoice commit together */
    if ((strcmp(to, "open") != 0 || (rc = refresh_draft(x, id, err)) == 0) &&
        (rc = tg_store_invoice_transition(x->store, id, to, tg_sub_now(x), err)) == 0 &&
        (rc = tg_store_invoice_get(x->store, id, &inv, err)) == 0 &&
        (type == NULL || (rc = invoice_event(x, type, &inv, err)) == 0) &&
        (!to_stripe || (rc = tg_outbox_enqueue_invoice(x->store, cfg, &inv, cfg->stripe.collection == TG_STRIPE_SEND_INVOICE,
                                                       cfg->stripe.days_until_due, err)) == 0))
        rc = tg_store_tx_commit(x->store, err);
    if (rc != 0)
        tg_store_tx_rollback(x->store);
    else if (queued != NULL)
        *queued = to_stripe;
    tg_invoice_clear(&inv);
    return rc;
}

int tg_periods_finalize_due(const tg_sub_ctx_t *x, int *finalized, int *queued, tg_err_t *err)
{
    enum { BATCH = 64 };
    *finalized = 0;
    if (queued != NULL)
        *queued = 0;
    int64_t after = x->cfg->billing.finalize_after_s;
    if (after <= 0)
        return 0;
    char ids[BATCH][TG_ID_MAX];
    size_t n = 0;
    /* one batch per call (a tick): a draft that fails stays first in line, so looping here
     * would only retry it */
    int rc = tg_store_invoice_drafts_due(x->store, tg_sub_now(x) - after, ids, BATCH, &n, err), first = rc;
    for (size_t i = 0; i < n; i++) {
        int q = 0;
        tg_err_t e = {0};
        rc = tg_periods_invoice_transition(x, ids[i], "open", &q, &e);
        if (rc == 0) {
            (*finalized)++;
            if (q && queued != NULL)
                *queued = 1;
        } else if (first == 0) {
            first = rc;
            if (err != NULL)
                *err = e;
        }
        /* Nobody waits on a tick: a draft that cannot be finalized is listed with the billing
         * failures (the dashboard counts them) until it can, instead of failing in silence. */
        tg_invoice_t inv;
        memset(&inv, 0, sizeof(inv));
        tg_err_t fe = {0};
        if (tg_store_invoice_get(x->store, ids[i], &inv, &fe) == 0) {
            if (rc == 0) {
                tg_store_billing_failure_clear(x->store, inv.customer_id, &fe);
            } else {
                char msg[TG_FAILURE_MSG_MAX];
                snprintf(msg, sizeof(msg), "Invoice %s could not be finalized: %.400s", ids[i], e.msg);
                tg_store_billing_failure_set(x->store, inv.customer_id, "finalize_failed", msg, tg_sub_now(x), &fe);
            }
            tg_invoice_clear(&inv);
        }
    }
    return first;
}
