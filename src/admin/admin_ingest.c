/* admin_ingest.c - the HTTP adapters of ingest tokens (issue 16): POST /v1/admin/ingest-tokens
 * (the token is in the answer once), GET (a page, never a token), DELETE .../{id} (revoke). The
 * rules are metering/ingest_tokens.c's; the audit entries are admin_audit.c's. */
#include <jansson.h>
#include <sodium.h>
#include <string.h>

#include "admin/admin_int.h"
#include "metering/ingest_tokens.h"

json_t *tg_adm_ingest_token_json(const tg_ingest_token_row_t *t)
{
    return json_pack("{s:s,s:s,s:o,s:s,s:o,s:o,s:s}", "id", t->id, "name", t->name, "customer",
                     t->customer_id[0] != '\0' ? json_string(t->customer_id) : json_null(), "prefix", t->prefix,
                     "created_at", tg_adm_json_time(t->created_at), "revoked_at", tg_adm_json_time(t->revoked_at),
                     "status", t->revoked_at != 0 ? "revoked" : "active");
}

static tg_ingest_tokens_ctx_t ctx(tg_admin_t *a)
{
    return (tg_ingest_tokens_ctx_t){a->d.store, a->d.events, a->d.key_secret, a->d.key_secret_len};
}

static void create(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    int bad_name = 0, bad_customer = 0;
    const char *name = tg_adm_opt_string(body, "name", &bad_name);
    const char *customer = tg_adm_opt_string(body, "customer", &bad_customer);
    if (bad_name) {
        tg_adm_reply_error(res, 400, "bad_request", "name: a string.");
    } else if (bad_customer) {
        tg_adm_reply_error(res, 400, "bad_request", "customer: a customer id (a string), or null for any customer.");
    } else {
        tg_ingest_tokens_ctx_t x = ctx(a);
        tg_ingest_token_row_t t;
        char secret[TG_INGEST_SECRET_BUF] = "";
        tg_err_t err = {0};
        int rc = tg_ingest_token_create(&x, name, customer, tg_adm_now_s(), &t, secret, &err);
        if (rc != 0) {
            tg_adm_reply_svc_error(res, rc, &err);
        } else {
            json_t *j = tg_adm_ingest_token_json(&t);
            json_object_set_new(j, "token", json_string(secret));
            tg_adm_reply_json(res, 201, j);
        }
        sodium_memzero(secret, sizeof(secret));
    }
    json_decref(body);
}

static int on_token(const tg_ingest_token_row_t *t, void *arg)
{
    json_array_append_new(arg, tg_adm_ingest_token_json(t));
    return 0;
}

static void list(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    tg_page_t page;
    if (tg_adm_page_parse(r, "ingest_tokens", &page, res) != 0)
        return;
    tg_err_t err = {0};
    tg_page_end_t end;
    json_t *arr = json_array();
    int rc = tg_store_ingest_token_page(a->d.store, &page, on_token, arr, &end, &err);
    if (rc != 0) {
        json_decref(arr);
        tg_adm_reply_list_error(res, rc, "ingest tokens", &err);
        return;
    }
    tg_adm_reply_page(res, "ingest_tokens", arr, &end);
}

static void revoke(tg_admin_t *a, const tg_adm_segs_t *s, tg_admin_response_t *res)
{
    char id[TG_ID_MAX];
    if (tg_adm_seg_copy(s, 3, id, sizeof(id)) != 0) {
        tg_adm_reply_error(res, 404, "not_found", "No such ingest token.");
        return;
    }
    tg_ingest_tokens_ctx_t x = ctx(a);
    tg_ingest_token_row_t t;
    tg_err_t err = {0};
    int rc = tg_ingest_token_revoke(&x, id, tg_adm_now_s(), &t, &err);
    if (rc != 0)
        tg_adm_reply_svc_error(res, rc, &err);
    else
        tg_adm_reply_json(res, 200, tg_adm_ingest_token_json(&t));
}

void tg_adm_ingest_tokens_route(tg_admin_t *a, const tg_adm_segs_t *s, const tg_admin_request_t *r,
                                tg_admin_response_t *res)
{
    if (s->n == 3 && tg_adm_method_is(r, "POST"))
        create(a, r, res);
    else if (s->n == 3 && tg_adm_method_is(r, "GET"))
        list(a, r, res);
    else if (s->n == 3)
        tg_adm_reply_error(res, 405, "method_not_allowed", "Use GET or POST.");
    else if (s->n == 4 && tg_adm_method_is(r, "DELETE"))
        revoke(a, s, res);
    else if (s->n == 4)
        tg_adm_reply_error(res, 405, "method_not_allowed", "Use DELETE.");
    else
        tg_adm_reply_error(res, 404, "route_not_found", "No such route.");
}
