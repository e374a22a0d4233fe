/* admin_webhooks.c - POST /v1/webhooks/stripe: the adapter between Stripe's webhook deliveries
 * and the payments service (src/payments/stripe_events.h).
 *
 * It only answers: the signature is checked on the raw body as received (never a re-encoding of
 * its JSON), the event is recorded durably, and Stripe gets its 2xx at once; applying the event
 * happens after the answer left (tg_admin_after), so a slow application never makes Stripe time
 * out and retry. Anything that fails verification is a 400 that changed nothing. */
#include <stdio.h>
#include <string.h>

#include "admin/admin_int.h"
#include "payments/stripe_events.h"
#include "payments/stripe_signature.h"
#include "store/store_payments.h"
#include "util/clock.h"

/* The refusals are quick answers (any thread, no store): a request without a valid signature is
 * answered on the admin loop and never queues for the back thread, where it would wait behind
 * (and delay) real work. Returns 1 when it answered. */
int tg_adm_stripe_webhook_quick(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    const tg_config_t *cfg = tg_adm_cfg(a);
    if (!cfg->stripe.enabled) {
        tg_adm_reply_error(res, 404, "not_found", "Stripe is not configured (no stripe section).");
        return 1;
    }
    if (!tg_adm_method_is(r, "POST")) {
        tg_adm_reply_error(res, 405, "method_not_allowed", "Use POST.");
        return 1;
    }
    tg_err_t err = {0};
    tg_stripe_sig_result_t v = tg_stripe_signature_verify(
        (const char *const *)cfg->stripe.webhook_secrets, cfg->stripe.nwebhook_secrets, r->stripe_signature,
        r->stripe_signature_len, r->body != NULL ? r->body : "", r->body_len, tg_clock_now_ns() / TG_NS_PER_SEC,
        TG_STRIPE_SIG_TOLERANCE_S, NULL, &err);
    if (v == TG_STRIPE_SIG_OK)
        return 0;
    tg_adm_reply_error(res, 400, tg_stripe_sig_result_type(v), "%s", err.msg);
    return 1;
}

/* Back thread. tg_admin_handle runs the quick routes first, so the signature was verified there
 * (on this thread, on the request's own copy of the body) before this records the event. */
void tg_adm_stripe_webhook(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    const tg_config_t *cfg = tg_adm_cfg(a);
    int64_t now_s = tg_clock_now_ns() / TG_NS_PER_SEC;
    tg_err_t err = {0};
    tg_payments_deps_t d = {cfg, a->d.store, a->d.accounts};
    tg_stripe_recorded_t rec;
    int rc = tg_stripe_event_record(&d, r->body != NULL ? r->body : "", r->body_len, now_s, &rec, &err);
    if (rc == TG_EINVAL) {
        tg_adm_reply_error(res, 400, "bad_event", "%s", err.msg);
        return;
    }
    if (rc != 0) { /* Stripe retries a 5xx for three days */
        tg_adm_reply_error(res, 500, "internal_error", "The event could not be recorded: %s", err.msg);
        return;
    }
    if (!rec.duplicate)
        a->stripe_pending = 1;
    tg_adm_reply_json(res, 200, json_pack("{s:b,s:s,s:s,s:b}", "received", 1, "id", rec.id, "type", rec.type,
                                          "duplicate", rec.duplicate));
}

void tg_admin_after(tg_admin_t *a)
{
    if (!a->stripe_pending)
        return;
    tg_payments_deps_t d = {tg_adm_cfg(a), a->d.store, a->d.accounts};
    size_t n = 0;
    tg_err_t err = {0};
    /* Bounded, so that a burst of events does not keep the back thread from its requests; what
     * is left runs after the next request or at the next tick. */
    int rc = tg_stripe_events_run(&d, 32, tg_clock_now_ns() / TG_NS_PER_SEC, &n, &err);
    a->stripe_pending = rc == 0 && n == 32;
}

void tg_adm_payments_tick(tg_admin_t *a)
{
    if (!tg_adm_cfg(a)->stripe.enabled)
        return;
    tg_payments_deps_t d = {tg_adm_cfg(a), a->d.store, a->d.accounts};
    size_t n = 0;
    tg_err_t err = {0};
    int64_t now_s = tg_clock_now_ns() / TG_NS_PER_SEC;
    if (tg_stripe_events_run(&d, 256, now_s, &n, &err) == 0 && n == 256)
        a->stripe_pending = 1;
    tg_dunning_sweep(&d, now_s, &err); /* errors are retried on the next tick */
}

/* GET /v1/admin/stripe/events/{id}: what became of one webhook event. */
void tg_adm_get_stripe_event(tg_admin_t *a, const char *id, tg_admin_response_t *res)
{
    tg_stripe_event_row_t e;
    tg_err_t err = {0};
    int rc = tg_store_stripe_event_get(a->d.store, id, &e, &err);
    if (rc == TG_ENOTFOUND) {
        tg_adm_reply_error(res, 404, "not_found", "No such Stripe event.");
        return;
    }
    if (rc != 0) {
        tg_adm_reply_error(res, 500, "internal_error", "%s", err.msg);
        return;
    }
    json_t *j = json_pack("{s:s,s:s,s:I,s:s,s:o,s:o,s:s?,s:s?,s:s?}", "id", e.id, "type", e.type, "created",
                          (json_int_t)e.created, "object_id", e.object_id, "received_at", tg_adm_json_time(e.received_at),
                          "processed_at", e.processed_at ? tg_adm_json_time(e.processed_at) : json_null(), "customer",
                          e.customer_id[0] ? e.customer_id : NULL, "outcome", e.outcome[0] ? e.outcome : NULL, "error",
                          e.error[0] ? e.error : NULL);
    tg_adm_reply_json(res, 200, j);
}

static int history_cb(const tg_status_change_t *c, void *arg)
{
    json_array_append_new(arg, json_pack("{s:s,s:s,s:s,s:s,s:o}", "from", c->from, "to", c->to, "reason", c->reason,
                                         "source", c->source, "at", tg_adm_json_time(c->at)));
    return 0;
}

/* GET /v1/admin/customers/{id}/status_history: every status change made by payments, oldest first. */
void tg_adm_get_status_history(tg_admin_t *a, const tg_customer_t *c, tg_admin_response_t *res)
{
    json_t *arr = json_array();
    tg_err_t err = {0};
    if (tg_store_status_history_list(a->d.store, c->id, history_cb, arr, &err) != 0) {
        json_decref(arr);
        tg_adm_reply_error(res, 500, "internal_error", "%s", err.msg);
        return;
    }
    tg_adm_reply_json(res, 200, json_pack("{s:o}", "data", arr));
}
