/* admin_mail.c - the owner's view of the mail queue: GET /v1/admin/emails (paged, ?state=) with
 * each message's attempts, and POST /v1/admin/emails/{id}/resend. Sending is the mail sender's
 * (src/notify/mail_outbox.c); this only reads rows and queues one again. */
#include <stdio.h>
#include <string.h>

#include "admin/admin_int.h"
#include "notify/mail_outbox.h"
#include "store/store_mail.h"

#define MAX_ATTEMPTS_SHOWN 20

static json_t *mail_json(tg_admin_t *a, const tg_mail_row_t *m)
{
    json_t *attempts = json_array();
    tg_mail_attempt_t at[MAX_ATTEMPTS_SHOWN];
    size_t n = 0;
    tg_err_t err = {0};
    if (tg_store_mail_attempts(a->d.store, m->id, at, MAX_ATTEMPTS_SHOWN, &n, &err) == 0)
        for (size_t i = 0; i < n; i++)
            json_array_append_new(attempts,
                                  json_pack("{s:o,s:s,s:o,s:o}", "at", tg_adm_json_time(at[i].at_ms / 1000), "outcome",
                                            at[i].outcome, "smtp_code",
                                            at[i].smtp_code > 0 ? json_integer(at[i].smtp_code) : json_null(), "error",
                                            at[i].error[0] ? json_string(at[i].error) : json_null()));
    return json_pack("{s:I,s:s,s:s,s:o,s:s,s:s,s:s,s:I,s:o,s:o,s:o,s:o,s:o,s:o}", "id", (json_int_t)m->id, "to", m->to,
                     "template", m->template_name, "customer", m->customer_id[0] ? json_string(m->customer_id) : json_null(),
                     "subject", m->subject, "message_id", m->message_id, "state", m->state, "attempts",
                     (json_int_t)m->attempts, "next_attempt_at",
                     strcmp(m->state, "pending") == 0 ? tg_adm_json_time(m->next_attempt_at_ms / 1000) : json_null(),
                     "last_error", m->last_error[0] ? json_string(m->last_error) : json_null(), "sent_at",
                     m->sent_at > 0 ? tg_adm_json_time(m->sent_at) : json_null(), "created_at",
                     tg_adm_json_time(m->created_at), "updated_at", tg_adm_json_time(m->updated_at), "attempt_log",
                     attempts);
}

typedef struct {
    tg_admin_t *a;
    json_t *arr;
} list_ctx_t;

static int on_mail(const tg_mail_row_t *m, void *arg)
{
    list_ctx_t *c = arg;
    json_array_append_new(c->arr, mail_json(c->a, m));
    return 0;
}

static void list_mail(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    char state[16];
    int got = tg_adm_query_param(r, "state", state, sizeof(state));
    if (got < 0 ||
        (got > 0 && strcmp(state, "pending") != 0 && strcmp(state, "sent") != 0 && strcmp(state, "failed") != 0)) {
        tg_adm_reply_error(res, 400, "invalid_parameter", "state: one of pending, sent, failed.");
        return;
    }
    char list[32]; /* a cursor of one filter is refused on another */
    snprintf(list, sizeof(list), "emails%s%s", got > 0 ? "_" : "", got > 0 ? state : "");
    tg_page_t page;
    if (tg_adm_page_parse(r, list, &page, res) != 0)
        return;
    tg_err_t err = {0};
    tg_page_end_t end;
    list_ctx_t c = {a, json_array()};
    int rc = tg_store_mail_page(a->d.store, got > 0 ? state : NULL, &page, on_mail, &c, &end, &err);
    if (rc != 0) {
        json_decref(c.arr);
        tg_adm_reply_list_error(res, rc, "emails", &err);
        return;
    }
    tg_adm_reply_page(res, list, c.arr, &end);
}

static void resend(tg_admin_t *a, const tg_adm_segs_t *s, tg_admin_response_t *res)
{
    char num[24];
    int64_t id = 0;
    size_t i = 0;
    if (tg_adm_seg_copy(s, 3, num, sizeof(num)) == 0)
        for (; num[i] >= '0' && num[i] <= '9' && id < INT64_MAX / 10 - 1; i++)
            id = id * 10 + (num[i] - '0');
    if (i == 0 || num[i] != '\0') {
        tg_adm_reply_error(res, 404, "not_found", "No such email.");
        return;
    }
    tg_err_t err = {0};
    tg_mail_row_t m;
    int rc = tg_store_mail_requeue(a->d.store, id, tg_adm_now_s() * 1000, &err);
    if (rc == TG_ENOTFOUND)
        tg_adm_reply_error(res, 404, "not_found", "No email %lld.", (long long)id);
    else if (rc == TG_ESTATE)
        tg_adm_reply_error(res, 409, "conflict", "%s.", err.msg);
    else if (rc != 0 || (rc = tg_store_mail_get(a->d.store, id, &m, &err)) != 0)
        tg_adm_reply_error(res, 500, "internal_error", "Queuing the email again failed: %s", err.msg);
    else {
        tg_mail_wake();
        tg_adm_reply_json(res, 200, mail_json(a, &m));
    }
}

void tg_adm_emails_route(tg_admin_t *a, const tg_adm_segs_t *s, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    if (s->n == 3 && tg_adm_method_is(r, "GET"))
        list_mail(a, r, res);
    else if (s->n == 5 && tg_adm_seg_is(s, 4, "resend") && tg_adm_method_is(r, "POST"))
        resend(a, s, res);
    else if (s->n == 3 || (s->n == 5 && tg_adm_seg_is(s, 4, "resend")))
        tg_adm_reply_error(res, 405, "method_not_allowed", "Use %s.", s->n == 3 ? "GET" : "POST");
    else
        tg_adm_reply_error(res, 404, "route_not_found", "No such route.");
}
