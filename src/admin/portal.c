/* portal.c - the developer portal's JSON API: self-service signup, login sessions, and a
 * customer's own keys, usage, invoices and plan.
 *
 * Passwords are stored as Argon2id strings (libsodium, interactive limits). A session is a
 * random 256-bit token in an HttpOnly, SameSite=Strict cookie; only its BLAKE2b hash is stored.
 * Every state-changing call made with the cookie must carry the session's X-CSRF-Token, compared
 * in constant time. Logins are throttled per account and per client address (5 failures in 15
 * minutes, then 429). A customer reaches only its own objects: another customer's ids answer 404,
 * exactly like ids that do not exist. Runs on the admin thread; the throttle table is its own. */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin/admin_int.h"
#include "billing/invoice.h"
#include "util/clock.h"

#define SESSION_SECONDS (7 * 86400)
#define THROTTLE_SLOTS 4096
#define THROTTLE_WINDOW 900
#define THROTTLE_MAX_FAILURES 5
#define PASSWORD_MIN 10
#define PASSWORD_MAX 1024

typedef struct throttle_slot {
    char key[TG_EMAIL_MAX + 8];
    int failures;
    int64_t window_start;
} throttle_slot_t;

/* Small direct-mapped tables: a collision only forgets an entry. One table per kind, so that
 * the two entries one login consults (its email's and its address's) never evict each other. */
struct tg_portal {
    throttle_slot_t by_email[THROTTLE_SLOTS];
    throttle_slot_t by_ip[THROTTLE_SLOTS];
};

tg_portal_t *tg_portal_new(void)
{
    return calloc(1, sizeof(tg_portal_t));
}

void tg_portal_free(tg_portal_t *p)
{
    free(p);
}

static throttle_slot_t *slot_for(throttle_slot_t *slots, const char *kind, const char *id)
{
    char key[TG_EMAIL_MAX + 8];
    snprintf(key, sizeof(key), "%s:%s", kind, id);
    for (char *c = key; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a'); /* emails are case-insensitive */
    uint64_t h = 1469598103934665603ULL;
    for (const char *c = key; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    throttle_slot_t *s = &slots[h % THROTTLE_SLOTS];
    if (strcmp(s->key, key) != 0) {
        memset(s, 0, sizeof(*s));
        snprintf(s->key, sizeof(s->key), "%s", key);
    }
    if (tg_adm_now_s() - s->window_start >= THROTTLE_WINDOW) {
        s->failures = 0;
        s->window_start = tg_adm_now_s();
    }
    return s;
}

/* ---- sessions ---- */

static int cookie_token(const tg_admin_request_t *r, char *out, size_t cap)
{
    const char *c = r->cookie, *end = r->cookie != NULL ? r->cookie + r->cookie_len : NULL;
    while (c != NULL && c < end) {
        while (c < end && (*c == ' ' || *c == ';'))
            c++;
        const char *semi = memchr(c, ';', (size_t)(end - c)), *stop = semi != NULL ? semi : end;
        if ((size_t)(stop - c) > 11 && memcmp(c, "tg_session=", 11) == 0) {
            size_t n = (size_t)(stop - c - 11);
            if (n == 0 || n >= cap)
                return 0;
            memcpy(out, c + 11, n);
            out[n] = '\0';
            return 1;
        }
        c = stop;
    }
    return 0;
}

static void hash_token(const char *token, uint8_t out[32])
{
    crypto_generichash(out, 32, (const uint8_t *)token, strlen(token), NULL, 0);
}

/* Creates a session for c: sets the cookie on res and returns the CSRF token in csrf. */
static int start_session(tg_admin_t *a, const tg_customer_t *c, tg_admin_response_t *res, char csrf[72],
                         tg_err_t *err)
{
    uint8_t raw[32], craw[32];
    char token[64];
    randombytes_buf(raw, sizeof(raw));
    randombytes_buf(craw, sizeof(craw));
    sodium_bin2base64(token, sizeof(token), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_bin2hex(csrf, 72, craw, sizeof(craw));
    tg_session_t s = {0};
    hash_token(token, s.token_hash);
    snprintf(s.customer_id, sizeof(s.customer_id), "%s", c->id);
    snprintf(s.csrf_token, sizeof(s.csrf_token), "%s", csrf);
    s.created_at = tg_adm_now_s();
    s.expires_at = s.created_at + SESSION_SECONDS;
    int rc = tg_store_session_insert(a->d.store, &s, err);
    if (rc == 0)
        snprintf(res->set_cookie, sizeof(res->set_cookie),
                 "tg_session=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Strict", token, SESSION_SECONDS);
    sodium_memzero(token, sizeof(token));
    sodium_memzero(raw, sizeof(raw));
    return rc;
}

/* The signed-in customer, or 0 after replying 401 (no session) / 403 (missing CSRF token). */
static int authenticate(tg_admin_t *a, const tg_admin_request_t *r, int state_changing, tg_customer_t *c,
                        tg_session_t *ses, tg_admin_response_t *res)
{
    char token[128];
    tg_err_t err = {0};
    if (!cookie_token(r, token, sizeof(token))) {
        tg_adm_reply_error(res, 401, "unauthorized", "Sign in first (POST /v1/login).");
        return 0;
    }
    uint8_t h[32];
    hash_token(token, h);
    sodium_memzero(token, sizeof(token));
    if (tg_store_session_get(a->d.store, h, ses, &err) != 0 || ses->expires_at <= tg_adm_now_s() ||
        tg_store_customer_get(a->d.store, ses->customer_id, c, &err) != 0) {
        tg_adm_reply_error(res, 401, "unauthorized", "The session has expired; sign in again.");
        return 0;
    }
    if (state_changing) {
        size_t n = strlen(ses->csrf_token);
        if (r->csrf_token == NULL || r->csrf_token_len != n ||
            sodium_memcmp(r->csrf_token, ses->csrf_token, n) != 0) {
            tg_adm_reply_error(res, 403, "csrf_failed",
                               "State-changing calls need the X-CSRF-Token header given at sign-in.");
            return 0;
        }
    }
    return 1;
}

/* ---- signup and login ---- */

static json_t *session_reply(tg_admin_t *a, const tg_customer_t *c, const char *csrf)
{
    return json_pack("{s:o,s:s}", "customer", tg_adm_customer_json(a, c), "csrf_token", csrf);
}

static void signup(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    int bad = 0;
    const char *email = tg_adm_opt_string(body, "email", &bad), *company = tg_adm_opt_string(body, "company", &bad),
               *password = tg_adm_opt_string(body, "password", &bad), *plan_id = tg_adm_opt_string(body, "plan", &bad);
    const tg_plan_t *plan = plan_id != NULL ? tg_config_find_plan(a->d.cfg, plan_id) : NULL;
    char hash[crypto_pwhash_STRBYTES];
    if (bad)
        tg_adm_reply_error(res, 400, "bad_request", "email, company, password and plan must be strings.");
    else if (email == NULL || !tg_adm_valid_email(email))
        tg_adm_reply_error(res, 400, "bad_request", "email: a valid email address is required.");
    else if (password == NULL || strlen(password) < PASSWORD_MIN || strlen(password) > PASSWORD_MAX)
        tg_adm_reply_error(res, 400, "bad_request", "password: %d to %d characters.", PASSWORD_MIN, PASSWORD_MAX);
    else if (company != NULL && strlen(company) >= TG_NAME_MAX)
        tg_adm_reply_error(res, 400, "bad_request", "company: at most %d characters.", TG_NAME_MAX - 1);
    else if (plan == NULL)
        tg_adm_reply_error(res, 400, "bad_request", "plan: \"%s\" is not one of the plans.", plan_id ? plan_id : "");
    else if (crypto_pwhash_str(hash, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                               crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        tg_adm_reply_error(res, 503, "service_unavailable", "Out of memory hashing the password; retry.");
    else {
        tg_customer_t c;
        tg_key_t k;
        memset(&k, 0, sizeof(k));
        char secret[TG_APIKEY_BUF], csrf[72];
        tg_err_t err = {0};
        /* One transaction: the account, its password, its first key and the session together. */
        if (tg_store_tx_begin(a->d.store, &err) != 0)
            tg_adm_reply_error(res, 500, "internal_error", "%s", err.msg);
        else if (tg_adm_new_customer(a, email, company, plan, &c, res) != 0)
            tg_store_tx_rollback(a->d.store);
        else if (tg_store_customer_set_password(a->d.store, c.id, hash, &err) != 0 ||
                 tg_adm_issue_key(a, c.id, "default", 1, &k, secret, &err) != 0 ||
                 start_session(a, &c, res, csrf, &err) != 0 || tg_store_tx_commit(a->d.store, &err) != 0) {
            tg_store_tx_rollback(a->d.store);
            if (k.id[0] != '\0') { /* the key reached the gateway's memory: take it back there too */
                k.revoked_at = tg_adm_now_s();
                tg_accounts_put_key(a->d.accounts, &k, NULL);
            }
            res->set_cookie[0] = '\0';
            tg_adm_reply_error(res, 500, "internal_error", "Signing up failed: %s", err.msg);
        } else {
            json_t *key = tg_adm_key_json(a, &k);
            json_object_set_new(key, "secret", json_string(secret));
            json_t *j = session_reply(a, &c, csrf);
            json_object_set_new(j, "key", key);
            tg_adm_reply_json(res, 201, j);
        }
        sodium_memzero(secret, sizeof(secret));
    }
    sodium_memzero(hash, sizeof(hash));
    json_decref(body);
}

static void login(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    int bad = 0;
    const char *email = tg_adm_opt_string(body, "email", &bad), *password = tg_adm_opt_string(body, "password", &bad);
    if (bad || email == NULL || password == NULL || strlen(password) > PASSWORD_MAX) {
        tg_adm_reply_error(res, 400, "bad_request", "email and password are required strings.");
        json_decref(body);
        return;
    }
    throttle_slot_t *by_email = slot_for(a->portal->by_email, "email", email);
    throttle_slot_t *by_ip = slot_for(a->portal->by_ip, "ip", r->remote_addr);
    if (by_email->failures >= THROTTLE_MAX_FAILURES || by_ip->failures >= THROTTLE_MAX_FAILURES * 4) {
        tg_adm_reply_error(res, 429, "rate_limited", "Too many failed sign-ins; wait %d minutes.", THROTTLE_WINDOW / 60);
        json_decref(body);
        return;
    }
    tg_customer_t c;
    char hash[crypto_pwhash_STRBYTES] = "";
    tg_err_t err = {0};
    int found = tg_store_customer_by_email(a->d.store, email, &c, hash, sizeof(hash), &err) == 0 && hash[0] != '\0';
    /* An unknown email costs the same Argon2 work as a wrong password, so timing tells nothing. */
    static char dummy[crypto_pwhash_STRBYTES];
    if (dummy[0] == '\0' && crypto_pwhash_str(dummy, "not a password", 14, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                              crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        dummy[0] = '\0';
    int ok = crypto_pwhash_str_verify(found ? hash : dummy, password, strlen(password)) == 0 && found;
    char csrf[72];
    if (!ok) {
        by_email->failures++;
        by_ip->failures++;
        tg_adm_reply_error(res, 401, "invalid_credentials", "The email or the password is wrong.");
    } else if (start_session(a, &c, res, csrf, &err) != 0) {
        tg_adm_reply_error(res, 500, "internal_error", "Signing in failed: %s", err.msg);
    } else {
        by_email->failures = 0;
        tg_adm_reply_json(res, 200, session_reply(a, &c, csrf));
    }
    sodium_memzero(hash, sizeof(hash));
    json_decref(body);
}

/* ---- the signed-in customer's objects ---- */

static int own_key(tg_admin_t *a, const tg_customer_t *c, const tg_adm_segs_t *s, tg_key_t *k, tg_admin_response_t *res)
{
    char id[TG_ID_MAX];
    tg_err_t err = {0};
    if (tg_adm_seg_copy(s, 3, id, sizeof(id)) != 0 || tg_store_key_get(a->d.store, id, k, &err) != 0 ||
        strcmp(k->customer_id, c->id) != 0) {
        tg_adm_reply_error(res, 404, "not_found", "No such key.");
        return 0;
    }
    return 1;
}

static void me_plan(tg_admin_t *a, tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    /* Only a plan (and when) may change here: status and name are the operator's. */
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) if (strcmp(key, "plan") != 0 && strcmp(key, "when") != 0)
    {
        tg_adm_reply_error(res, 400, "bad_request", "%s: only plan and when can be changed here.", key);
        json_decref(body);
        return;
    }
    if (!json_is_string(json_object_get(body, "plan")))
        tg_adm_reply_error(res, 400, "bad_request", "plan: required.");
    else
        tg_adm_patch_customer(a, c, r, res);
    json_decref(body);
}

/* GET /v1/me/plan/preview?plan=pro[&when=period_end]: what a change would do, before confirming. */
static void plan_preview(tg_admin_t *a, const tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    char plan_id[TG_PLAN_ID_MAX] = "", when[16] = "";
    const char *q = r->query, *end = r->query != NULL ? r->query + r->query_len : NULL;
    while (q != NULL && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q)), *stop = amp != NULL ? amp : end;
        if ((size_t)(stop - q) > 5 && memcmp(q, "plan=", 5) == 0 && (size_t)(stop - q - 5) < sizeof(plan_id))
            memcpy(plan_id, q + 5, (size_t)(stop - q - 5));
        if ((size_t)(stop - q) > 5 && memcmp(q, "when=", 5) == 0 && (size_t)(stop - q - 5) < sizeof(when))
            memcpy(when, q + 5, (size_t)(stop - q - 5));
        q = stop + 1;
    }
    const tg_plan_t *to = tg_config_find_plan(a->d.cfg, plan_id);
    tg_adm_plan_change_t pc;
    if (to == NULL) {
        tg_adm_reply_error(res, 400, "bad_request", "plan: \"%s\" is not one of the plans.", plan_id);
        return;
    }
    if (when[0] != '\0' && strcmp(when, "now") != 0 && strcmp(when, "period_end") != 0) {
        tg_adm_reply_error(res, 400, "bad_request", "when: \"now\" or \"period_end\".");
        return;
    }
    if (tg_adm_plan_change_compute(a, c, to, when[0] ? when : NULL, &pc, res) != 0)
        return;
    json_t *items = json_array();
    char buf[TG_MONEY_FMT_MAX];
    if (pc.prorated) {
        tg_money_format(tg_money_round(pc.old_part, to->currency_digits), to->currency_digits, buf, sizeof(buf));
        json_array_append_new(items, json_pack("{s:s,s:s}", "description", pc.old_desc, "amount", buf));
        tg_money_format(tg_money_round(pc.new_credit, to->currency_digits), to->currency_digits, buf, sizeof(buf));
        json_array_append_new(items, json_pack("{s:s,s:s}", "description", pc.new_desc, "amount", buf));
    }
    tg_adm_reply_json(res, 200,
                      json_pack("{s:s,s:s,s:s,s:o,s:o,s:o}", "from", c->plan_id, "to", to->id, "effective",
                                pc.at_period_end ? "period_end" : "now", "effective_at", tg_adm_json_time(pc.effective_at),
                                "proration", items, "plan", tg_adm_plan_json(to)));
}

int tg_portal_handle(tg_admin_t *a, const tg_adm_segs_t *s, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    if (!tg_adm_seg_is(s, 0, "v1"))
        return 0;
    if (s->n == 2 && tg_adm_seg_is(s, 1, "signup") && tg_adm_method_is(r, "POST")) {
        signup(a, r, res);
        return 1;
    }
    if (s->n == 2 && tg_adm_seg_is(s, 1, "login") && tg_adm_method_is(r, "POST")) {
        login(a, r, res);
        return 1;
    }
    int logout = s->n == 2 && tg_adm_seg_is(s, 1, "logout");
    if (!logout && !tg_adm_seg_is(s, 1, "me"))
        return 0;
    int changing = !tg_adm_method_is(r, "GET") && !tg_adm_method_is(r, "HEAD");
    tg_customer_t c;
    tg_session_t ses;
    if (!authenticate(a, r, changing, &c, &ses, res))
        return 1;
    tg_err_t err = {0};
    if (logout && tg_adm_method_is(r, "POST")) {
        tg_store_session_delete(a->d.store, ses.token_hash, &err);
        snprintf(res->set_cookie, sizeof(res->set_cookie), "tg_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
        tg_adm_reply_json(res, 200, json_pack("{s:b}", "signed_out", 1));
    } else if (s->n == 2 && tg_adm_method_is(r, "GET")) {
        json_t *j = tg_adm_customer_json(a, &c);
        json_object_set_new(j, "csrf_token", json_string(ses.csrf_token));
        tg_adm_reply_json(res, 200, j);
    } else if (s->n == 3 && tg_adm_seg_is(s, 2, "keys") && tg_adm_method_is(r, "GET")) {
        tg_adm_list_keys(a, &c, r, res);
    } else if (s->n == 3 && tg_adm_seg_is(s, 2, "keys") && tg_adm_method_is(r, "POST")) {
        tg_adm_create_key(a, &c, r, res);
    } else if (s->n == 4 && tg_adm_seg_is(s, 2, "keys") && tg_adm_method_is(r, "DELETE")) {
        tg_key_t k;
        if (own_key(a, &c, s, &k, res))
            tg_adm_revoke_key(a, &k, res);
    } else if (s->n == 5 && tg_adm_seg_is(s, 2, "keys") && tg_adm_seg_is(s, 4, "rotate") &&
               tg_adm_method_is(r, "POST")) {
        tg_key_t k;
        if (own_key(a, &c, s, &k, res))
            tg_adm_rotate_key(a, &k, r, res);
    } else if (s->n == 3 && tg_adm_seg_is(s, 2, "usage") && tg_adm_method_is(r, "GET")) {
        tg_adm_get_usage(a, &c, r, res);
    } else if (s->n == 3 && tg_adm_seg_is(s, 2, "invoices") && tg_adm_method_is(r, "GET")) {
        tg_adm_list_invoices(a, c.id, 1, r, res);
    } else if (s->n == 4 && tg_adm_seg_is(s, 2, "invoices") && tg_adm_seg_is(s, 3, "upcoming") &&
               tg_adm_method_is(r, "GET")) {
        tg_adm_reply_upcoming(a, &c, res);
    } else if ((s->n == 4 || (s->n == 5 && tg_adm_seg_is(s, 4, "html"))) && tg_adm_seg_is(s, 2, "invoices") &&
               tg_adm_method_is(r, "GET")) {
        char id[TG_ID_MAX];
        tg_invoice_t inv;
        if (tg_adm_seg_copy(s, 3, id, sizeof(id)) != 0 || tg_store_invoice_get(a->d.store, id, &inv, &err) != 0) {
            tg_adm_reply_error(res, 404, "not_found", "No such invoice.");
        } else {
            if (strcmp(inv.customer_id, c.id) != 0 || strcmp(inv.status, "draft") == 0)
                tg_adm_reply_error(res, 404, "not_found", "No such invoice."); /* drafts are the owner's */
            else if (s->n == 4)
                tg_adm_reply_invoice(res, 200, &inv);
            else {
                res->status = 200;
                res->content_type = "text/html; charset=utf-8";
                res->body = tg_invoice_to_html(&inv, &c);
                res->body_len = res->body != NULL ? strlen(res->body) : 0;
            }
            tg_invoice_clear(&inv);
        }
    } else if (s->n == 4 && tg_adm_seg_is(s, 2, "plan") && tg_adm_seg_is(s, 3, "preview") &&
               tg_adm_method_is(r, "GET")) {
        plan_preview(a, &c, r, res);
    } else if (s->n == 3 && tg_adm_seg_is(s, 2, "plan") && tg_adm_method_is(r, "POST")) {
        me_plan(a, &c, r, res);
    } else {
        tg_adm_reply_error(res, 404, "not_found", "No such route.");
    }
    return 1;
}
