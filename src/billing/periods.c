/* periods.c - see periods.h: the invoice run, called by the admin thread's tick and the
 * invoices/run adapter. */
#include "billing/periods.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/invoice.h"
#include "payments/outbox.h"

typedef struct {
    tg_customer_t *list;
    size_t n, cap;
} collect_t;

static int collect_cb(const tg_customer_t *c, void *arg)
{
    collect_t *cl = arg;
    if (cl->n == cl->cap) {
        size_t cap = cl->cap ? cl->cap * 2 : 64;
        tg_customer_t *l = realloc(cl->list, cap * sizeof(*l));
        if (l == NULL)
            return 1;
        cl->list = l;
        cl->cap = cap;
    }
    cl->list[cl->n++] = *c;
    return 0;
}

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

int tg_periods_close(const tg_sub_ctx_t *x, const char *customer_id, int64_t until, tg_periods_run_t *run,
                     tg_err_t *err)
{
    int rc;
    collect_t cl = {0};
    memset(run, 0, sizeof(*run));
    if (customer_id != NULL) {
        tg_customer_t c;
        if ((rc = tg_store_customer_get(x->store, customer_id, &c, err)) != 0) {
            if (rc == TG_ENOTFOUND)
                tg_errf(err, rc, "No customer %s.", customer_id);
            return rc;
        }
        if (collect_cb(&c, &cl) != 0)
            return tg_errf(err, TG_ENOMEM, "Out of memory listing customers.");
    } else if ((rc = tg_store_customer_list(x->store, collect_cb, &cl, err)) != 0) {
        free(cl.list);
        return rc;
    }
    int64_t now = tg_sub_now(x) < until ? tg_sub_now(x) : until;
    if (x->meter != NULL)
        tg_meter_flush(x->meter); /* calls answered before now are on this run's invoices */
    /* Commit every 500 customers: one fsync per batch, not per invoice, and the metering writer
     * waits at most one batch. Each invoice is a savepoint, so a failing customer rolls back
     * alone and the run can simply be repeated. */
    rc = 0;
    for (size_t i = 0; i < cl.n;) {
        if ((rc = tg_store_tx_begin(x->store, err)) != 0)
            break;
        size_t end = i + 500 < cl.n ? i + 500 : cl.n;
        int batch_created = 0;
        for (; i < end; i++) {
            int made = 0, frc;
            tg_err_t e = {0}, fe = {0};
            if ((frc = tg_invoice_close_periods(x->store, x->cfg, &cl.list[i], now, &made, &e)) != 0) {
                /* The failure is kept (billing_failures) until a run invoices the customer. */
                const char *type = tg_periods_failure_type(frc);
                note_failure(run, cl.list[i].id, type, e.msg);
                tg_store_billing_failure_set(x->store, cl.list[i].id, type, e.msg, tg_sub_now(x), &fe);
                continue;
            }
            tg_store_billing_failure_clear(x->store, cl.list[i].id, &fe);
            /* Only once its last period is invoiced under the old plan does a scheduled change
             * (downgrade, cancellation at period end) take effect; a failure is retried on the
             * next run. */
            tg_sub_apply_scheduled(x, &cl.list[i], &fe);
            batch_created += made;
        }
        if ((rc = tg_store_tx_commit(x->store, err)) != 0)
            break;
        run->created += batch_created;
    }
    free(cl.list);
    return rc;
}

int tg_periods_invoice_transition(const tg_sub_ctx_t *x, const char *id, const char *to, int *queued, tg_err_t *err)
{
    const tg_config_t *cfg = x->cfg;
    int to_stripe = strcmp(to, "open") == 0 && cfg->stripe.enabled && cfg->stripe.billing == TG_STRIPE_BILLING_TOLLGATE;
    if (queued != NULL)
        *queued = 0;
    if (!to_stripe)
        return tg_store_invoice_transition(x->store, id, to, tg_sub_now(x), err);
    tg_invoice_t inv;
    memset(&inv, 0, sizeof(inv));
    int rc = tg_store_tx_begin(x->store, err);
    if (rc != 0)
        return rc;
    if ((rc = tg_store_invoice_transition(x->store, id, to, tg_sub_now(x), err)) == 0 &&
        (rc = tg_store_invoice_get(x->store, id, &inv, err)) == 0 &&
        (rc = tg_outbox_enqueue_invoice(x->store, &inv, cfg->stripe.collection == TG_STRIPE_SEND_INVOICE,
                                        cfg->stripe.days_until_due, err)) == 0)
        rc = tg_store_tx_commit(x->store, err);
    if (rc != 0)
        tg_store_tx_rollback(x->store);
    else if (queued != NULL)
        *queued = 1;
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
