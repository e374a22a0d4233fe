/* admin_stripe.c - what the owner sees of the Stripe sync: each customer's state (the latest
 * outbox row of the customer and the Stripe customer id once created) and the outbox itself,
 * paged. Read-only; the outbox thread (src/payments/outbox.c) does the sending. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_int.h"
#include "payments/outbox.h"
#include "store/store_meter.h"
#include "store/store_outbox.h"
#include "store/store_payments.h"

static json_t *ms_time(int64_t ms)
{
    return tg_adm_json_time(ms / 1000);
}

json_t *tg_adm_customer_admin_json(tg_admin_t *a, const tg_customer_t *c)
{
    json_t *j = tg_adm_customer_json(a, c);
    if (j == NULL || a->d.outbox == NULL) {
        json_object_set_new(j, "stripe", json_null());
        return j;
    }
    tg_err_t err = {0};
    char sid[TG_OUTBOX_RESPONSE_ID_MAX] = "";
    tg_outbox_row_t row;
    int have_sid = tg_store_stripe_customer_get(a->d.store, c->id, sid, sizeof(sid), &err) == 0;
    int rc = tg_store_outbox_customer_latest(a->d.store, c->id, &row, &err);
    json_t *s;
    if (rc == 0)
        s = json_pack("{s:o,s:s,s:I,s:o,s:o}", "customer_id", have_sid ? json_string(sid) : json_null(), "state",
                      row.state, "attempts", (json_int_t)row.attempts, "last_error",
                      row.last_error[0] ? json_string(row.last_error) : json_null(), "updated_at",
                      tg_adm_json_time(row.updated_at));
    else if (rc == TG_ENOTFOUND) /* created before the stripe section was added */
        s = json_pack("{s:o,s:s,s:i,s:n,s:n}", "customer_id", have_sid ? json_string(sid) : json_null(), "state",
                      have_sid ? "done" : "not_queued", "attempts", 0, "last_error", "updated_at");
    else
        s = json_pack("{s:n,s:s,s:i,s:s,s:n}", "customer_id", "state", "unknown", "attempts", 0, "last_error", err.msg,
                      "updated_at");
    /* billing: stripe: usage goes as one call per customer, metric and hour, so the latest row
     * is mostly a meter event; the owner sees them summed instead of listed (the outbox page
     * lists each) */
    if (s != NULL && tg_adm_cfg(a)->stripe.billing == TG_STRIPE_BILLING_STRIPE) {
        uint64_t pending = 0, failed = 0, hours = 0, units = 0;
        tg_err_t merr = {0};
        if (tg_store_meter_outbox_counts(a->d.store, c->id, &pending, &failed, &merr) == 0 &&
            tg_store_meter_customer_backlog(a->d.store, c->id, &hours, &units, &merr) == 0)
            json_object_set_new(s, "usage",
                                json_pack("{s:I,s:I,s:I,s:I}", "pending_calls", (json_int_t)pending, "failed_calls",
                                          (json_int_t)failed, "unsent_hours", (json_int_t)hours, "unsent_units",
                                          (json_int_t)units));
        else
            json_object_set_new(s, "usage", json_pack("{s:s}", "error", merr.msg));
    }
    /* billing: stripe - the customer's subscription as Stripe's events last told it (status ""
     * until one did: "created"); null when there is none. */
    tg_stripe_subscription_t sub;
    int found = 0;
    if (tg_adm_cfg(a)->stripe.billing == TG_STRIPE_BILLING_STRIPE &&
        tg_store_stripe_subscription_latest(a->d.store, c->id, &sub, &found, &err) == 0 && found)
        json_object_set_new(s, "subscription",
                            json_pack("{s:s,s:s,s:o}", "id", sub.subscription_id, "status",
                                      sub.status[0] ? sub.status : "created", "updated_at",
                                      tg_adm_json_time(sub.updated_at)));
    else
        json_object_set_new(s, "subscription", json_null());
    json_object_set_new(j, "stripe", s);
    return j;
}

char *tg_adm_stripe_metrics(tg_admin_t *a, char *body)
{
    if (body == NULL || a->d.outbox == NULL)
        return body;
    tg_outbox_stats_t s;
    tg_outbox_stats(a->d.outbox, &s);
    char more[1024];
    int n = snprintf(
        more, sizeof(more),
        "# HELP tollgate_stripe_calls_total Calls to Stripe by the outbox, by outcome.\n"
        "# TYPE tollgate_stripe_calls_total counter\n"
        "tollgate_stripe_calls_total{outcome=\"ok\"} %llu\n"
        "tollgate_stripe_calls_total{outcome=\"retry\"} %llu\n"
        "tollgate_stripe_calls_total{outcome=\"permanent\"} %llu\n"
        "# HELP tollgate_stripe_outbox_failed_total Outbox rows given up (permanent error or last attempt).\n"
        "# TYPE tollgate_stripe_outbox_failed_total counter\n"
        "tollgate_stripe_outbox_failed_total %llu\n"
        "# HELP tollgate_stripe_outbox_pending Outbox rows waiting to be sent or retried.\n"
        "# TYPE tollgate_stripe_outbox_pending gauge\n"
        "tollgate_stripe_outbox_pending %llu\n",
        (unsigned long long)s.calls_ok, (unsigned long long)s.calls_retry, (unsigned long long)s.calls_permanent,
        (unsigned long long)s.rows_failed, (unsigned long long)s.pending);
    size_t len = strlen(body);
    if (n < 0 || (size_t)n >= sizeof(more))
        return body;
    char *nb = realloc(body, len + (size_t)n + 1);
    if (nb == NULL) {
        free(body);
        return NULL;
    }
    memcpy(nb + len, more, (size_t)n + 1);
    return nb;
}

static json_t *row_json(const tg_outbox_row_t *r)
{
    return json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:o,s:o,s:o,s:o,s:o}", "id", (json_int_t)r->id, "kind", r->kind,
                     "customer", r->customer_id, "idempotency_key", r->idempotency_key, "method", r->method, "path",
                     r->path, "state", r->state, "attempts", (json_int_t)r->attempts, "next_attempt_at",
                     strcmp(r->state, "pending") == 0 ? ms_time(r->next_attempt_at_ms) : json_null(), "last_error",
                     r->last_error[0] ? json_string(r->last_error) : json_null(), "stripe_id",
                     r->response_id[0] ? json_string(r->response_id) : json_null(), "created_at",
                     tg_adm_json_time(r->created_at), "updated_at", tg_adm_json_time(r->updated_at));
}

static int on_row(const tg_outbox_row_t *r, void *arg)
{
    json_array_append_new(arg, row_json(r));
    return 0;
}

static void list_outbox(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    char state[16];
    int got = tg_adm_query_param(r, "state", state, sizeof(state));
    if (got < 0 ||
        (got > 0 && strcmp(state, "pending") != 0 && strcmp(state, "done") != 0 && strcmp(state, "failed") != 0)) {
        tg_adm_reply_error(res, 400, "invalid_parameter", "state: one of pending, done, failed.");
        return;
    }
    char list[32]; /* a cursor of one filter is refused on another */
    snprintf(list, sizeof(list), "stripe_outbox%s%s", got > 0 ? "_" : "", got > 0 ? state : "");
    tg_page_t page;
    if (tg_adm_page_parse(r, list, &page, res) != 0)
        return;
    tg_err_t err = {0};
    tg_page_end_t end;
    json_t *arr = json_array();
    int rc = tg_store_outbox_page(a->d.store, got > 0 ? state : NULL, &page, on_row, arr, &end, &err);
    if (rc != 0) {
        json_decref(arr);
        tg_adm_reply_list_error(res, rc, "Stripe calls", &err);
        return;
    }
    tg_adm_reply_page(res, list, arr, &end);
}

static void retry_row(tg_admin_t *a, const tg_adm_segs_t *s, tg_admin_response_t *res)
{
    char num[24];
    int64_t id = 0;
    size_t i = 0;
    if (tg_adm_seg_copy(s, 4, num, sizeof(num)) == 0)
        for (; num[i] >= '0' && num[i] <= '9' && id < INT64_MAX / 10 - 1; i++)
            id = id * 10 + (num[i] - '0');
    if (i == 0 || num[i] != '\0') {
        tg_adm_reply_error(res, 404, "not_found", "No such outbox row.");
        return;
    }
    tg_err_t err = {0};
    tg_outbox_row_t row;
    int rc = tg_store_outbox_requeue(a->d.store, id, tg_adm_now_s() * 1000, &err);
    if (rc == TG_ENOTFOUND)
        tg_adm_reply_error(res, 404, "not_found", "No outbox row %lld.", (long long)id);
    else if (rc == TG_ESTATE)
        tg_adm_reply_error(res, 409, "conflict", "%s; only a failed row can be retried.", err.msg);
    else if (rc != 0 || (rc = tg_store_outbox_get(a->d.store, id, &row, &err)) != 0)
        tg_adm_reply_error(res, 500, "internal_error", "Requeuing the Stripe call failed: %s", err.msg);
    else {
        tg_outbox_wake(a->d.outbox);
        tg_adm_reply_json(res, 200, row_json(&row));
    }
}

void tg_adm_stripe_outbox_route(tg_admin_t *a, const tg_adm_segs_t *s, const tg_admin_request_t *r,
                                tg_admin_response_t *res)
{
    if (s->n == 4 && tg_adm_method_is(r, "GET"))
        list_outbox(a, r, res);
    else if (s->n == 6 && tg_adm_seg_is(s, 5, "retry") && tg_adm_method_is(r, "POST"))
        retry_row(a, s, res);
    else if (s->n == 4 || (s->n == 6 && tg_adm_seg_is(s, 5, "retry")))
        tg_adm_reply_error(res, 405, "method_not_allowed", "Use %s.", s->n == 4 ? "GET" : "POST");
    else
        tg_adm_reply_error(res, 404, "route_not_found", "No such route.");
}
