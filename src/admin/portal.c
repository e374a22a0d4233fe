/* portal.c - the developer portal's JSON API: self-service signup, login sessions, and a
 * customer's own keys, usage, invoices and plan.
 *
 * Passwords follow admin/password_policy.h and are stored as Argon2id strings (libsodium,
 * interactive limits), hashed by the admin port's hash workers (tg_admin_slow_t), never on the
 * back thread. A session is a random 256-bit token in an HttpOnly, SameSite=Strict cookie (Secure
 * over https); only its BLAKE2b hash is stored. Every state-changing call made with the cookie
 * must carry the session's X-CSRF-Token, compared in constant time. A customer reaches only its
 * own objects: another customer's ids answer 404, exactly like ids that do not exist.
 *
 * Abuse controls (issue 10), all checked before any password hashing:
 *  - sign-up: portal.signup.enabled, .plans (self-service plans), sign-ups per client address
 *    and in all (.per_address, .global), and one trial per normalised email (ever) and per
 *    client address (within .trial_address_days); a repeated trial is skipped (the account is
 *    created without one) or refused (.repeat_trial);
 *  - sign-in: exponential delays (429 with Retry-After) per (account, address) pair, per address
 *    and, much more loosely, per account, in exact-key throttle maps (util/throttle.h). Every
 *    attempt counts as a failure up front (so parallel guesses cannot slip past the check) and a
 *    correct password takes it back. Failures from other addresses do not delay an owner at a
 *    new address unless the account saw more than ACCOUNT_FREE failures, and then by at most
 *    ACCOUNT_MAX_S seconds: the per-account bound is soft on purpose, so that guessing cannot lock
 *    the owner out. IPv6 clients are keyed by their /64.
 * Runs on the admin back thread, which owns struct tg_portal. */
#include <arpa/inet.h>
#include <ctype.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin/admin_int.h"
#include "notify/mail.h"
#include "notify/mail_outbox.h"
#include "payments/outbox.h"
#include "payments/stripe_client.h"
#include "payments/stripe_form.h"
#include "store/store_outbox.h"
#include "store/store_payments.h"
#include "admin/password_policy.h"
#include "billing/invoice.h"
#include "util/cidr.h"
#include "util/clock.h"
#include "util/throttle.h"

#define SESSION_SECONDS (7 * 86400)
#define PASSWORD_MAX TG_PASSWORD_MAX_BYTES
#define THROTTLE_ENTRIES 65536
#define PAIR_FREE 4 /* (account, address): the 5th failure in a row waits 1 s, then 2, 4, ... */
#define ADDRESS_FREE 20
#define ACCOUNT_FREE 100
#define MAX_DELAY_S 900
#define ACCOUNT_MAX_S 30
#define FORGET_S 3600

struct tg_portal {
    tg_throttle_t *pair, *address, *account; /* sign-in failures */
    tg_throttle_t *signups;                  /* sign-ups per address ("a:ADDR") and in all ("*") */
    tg_throttle_t *resets; /* "forgot password" per address ("a:ADDR") and per email ("e:EMAIL"); new
                            * confirmation links per customer ("c:ID") and per address ("r:ADDR") */
};

tg_portal_t *tg_portal_new(void)
{
    tg_portal_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    tg_throttle_policy_t pol = {THROTTLE_ENTRIES, FORGET_S * TG_NS_PER_SEC, PAIR_FREE, TG_NS_PER_SEC,
                                MAX_DELAY_S * TG_NS_PER_SEC};
    p->pair = tg_throttle_new(&pol);
    pol.free_failures = ADDRESS_FREE;
    p->address = tg_throttle_new(&pol);
    pol.free_failures = ACCOUNT_FREE;
    pol.max_ns = ACCOUNT_MAX_S * TG_NS_PER_SEC;
    p->account = tg_throttle_new(&pol);
    pol.forget_ns = 86400 * TG_NS_PER_SEC; /* longer than any sign-up window (per day at most) */
    p->signups = tg_throttle_new(&pol);
    p->resets = tg_throttle_new(&pol);
    if (p->pair == NULL || p->address == NULL || p->account == NULL || p->signups == NULL || p->resets == NULL) {
        tg_portal_free(p);
        return NULL;
    }
    return p;
}

void tg_portal_free(tg_portal_t *p)
{
    if (p == NULL)
        return;
    tg_throttle_free(p->pair);
    tg_throttle_free(p->address);
    tg_throttle_free(p->account);
    tg_throttle_free(p->signups);
    tg_throttle_free(p->resets);
    free(p);
}

/* The throttle key of a client address: IPv4 as is, IPv6 by its /64 (one subscriber's block). */
static void address_key(const char *addr, char *out, size_t cap)
{
    tg_cidr_t c;
    if (tg_cidr_parse_addr(addr, strlen(addr), &c) != 0 || !c.v6) {
        snprintf(out, cap, "%s", addr);
        return;
    }
    memset(c.addr + 8, 0, 8);
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, c.addr, buf, sizeof(buf));
    snprintf(out, cap, "%s/64", buf);
}

static void lower(const char *in, char *out, size_t cap)
{
    size_t i = 0;
    for (; in[i] != '\0' && i + 1 < cap; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[i] = '\0';
}

/* One trial per person, not per spelling: lowercase, the local part cut at the first '+', and
 * for Gmail (gmail.com, googlemail.com), which ignores dots in the local part, no dots. Other
 * providers' dots are significant, so they stay. */
static void normalise_email(const char *email, char *out, size_t cap)
{
    char e[TG_EMAIL_MAX];
    lower(email, e, sizeof(e));
    char *at = strrchr(e, '@');
    if (at == NULL) {
        snprintf(out, cap, "%s", e);
        return;
    }
    *at = '\0';
    const char *domain = at + 1;
    char *plus = strchr(e, '+');
    if (plus != NULL)
        *plus = '\0';
    int gmail = strcmp(domain, "gmail.com") == 0 || strcmp(domain, "googlemail.com") == 0;
    char local[TG_EMAIL_MAX];
    size_t n = 0;
    for (const char *c = e; *c != '\0' && n + 1 < sizeof(local); c++)
        if (!(gmail && *c == '.'))
            local[n++] = *c;
    local[n] = '\0';
    if (snprintf(out, cap, "%s@%s", local, gmail ? "gmail.com" : domain) >= (int)cap)
        out[0] = '\0'; /* cannot happen: both parts came from one email of TG_EMAIL_MAX */
}

static int retry_seconds(int64_t wait_ns)
{
    int64_t s = (wait_ns + TG_NS_PER_SEC - 1) / TG_NS_PER_SEC;
    return s < 1 ? 1 : s > 86400 ? 86400 : (int)s;
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
static int start_session(tg_admin_t *a, const tg_customer_t *c, int secure, tg_admin_response_t *res, char csrf[72],
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
                 "tg_session=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Strict%s", token, SESSION_SECONDS,
                 secure ? "; Secure" : "");
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

/* The slow half of a sign-up or a sign-in: the Argon2id work, run by a hash worker (see
 * admin_api.h). The password is copied here, wiped as soon as the hash is done, and this object
 * is the only memory the worker touches. */
enum { SLOW_SIGNUP, SLOW_LOGIN, SLOW_PASSWORD, SLOW_STRIPE, SLOW_RESET };

/* The portal's interactive Stripe calls (a Checkout Session to add a card, a customer portal
 * session): the customer waits for the URL, so they are not queued in the outbox (which is for
 * work that must happen once, whenever). The back thread builds the request, a hash worker makes
 * the one call (bounded by STRIPE_INTERACTIVE_TIMEOUT_MS), the back thread answers: neither the
 * event loops nor the back thread ever wait on the network. A session nobody opens expires in
 * Stripe by itself, so a repeated click just makes another one (a fresh idempotency key each). */
#define STRIPE_INTERACTIVE_TIMEOUT_MS 10000
#define STRIPE_FORM_MAX 4096
#define STRIPE_URL_MAX 2048

struct tg_admin_slow {
    int kind;
    int verified;                         /* SLOW_LOGIN: the password matched */
    int found;                            /* SLOW_LOGIN: the email has an account with a password */
    int with_trial;                       /* SLOW_SIGNUP: grant the plan's trial */
    int secure;                           /* the session cookie gets Secure */
    char password[PASSWORD_MAX + 1];      /* wiped by tg_admin_slow_run */
    char new_password[PASSWORD_MAX + 1];  /* SLOW_PASSWORD: wiped by tg_admin_slow_run */
    char hash[crypto_pwhash_STRBYTES];    /* SLOW_SIGNUP: out; SLOW_LOGIN, SLOW_PASSWORD: the stored hash */
    char new_hash[crypto_pwhash_STRBYTES]; /* SLOW_PASSWORD: out */
    char email[TG_EMAIL_MAX];             /* SLOW_LOGIN: lowercased */
    char email_norm[TG_EMAIL_MAX];        /* SLOW_SIGNUP: for the trial record */
    char company[TG_NAME_MAX];
    char plan_id[TG_PLAN_ID_MAX];
    char trial_note[32];                  /* SLOW_SIGNUP: "granted", "not_offered", "already_used" */
    char address[TG_CIDR_TEXT_MAX + 4];   /* the throttle key of the client address */
    char token[64];                       /* SLOW_RESET: the reset link's token (wiped by slow_free) */
    tg_audit_actor_t who;                 /* the audit log's actor (its id set once known) */
    tg_customer_t customer;               /* SLOW_LOGIN: the account, when found */
    /* SLOW_STRIPE: the call (built on the back thread), its outcome (from the worker) */
    tg_stripe_settings_t stripe;          /* points into the configuration, which outlives us */
    char stripe_path[64];
    char stripe_form[STRIPE_FORM_MAX];
    size_t stripe_form_len;
    char stripe_idem[80];
    int stripe_ok;
    long stripe_status;
    char stripe_url[STRIPE_URL_MAX];
    char stripe_message[512];
};

static tg_admin_slow_t *slow_new(int kind, const char *password, const tg_admin_request_t *r)
{
    tg_admin_slow_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->kind = kind;
    w->secure = r->secure;
    snprintf(w->password, sizeof(w->password), "%s", password);
    address_key(r->remote_addr, w->address, sizeof(w->address));
    tg_adm_audit_actor(r, TG_AUDIT_CUSTOMER, "", &w->who);
    return w;
}

static void slow_free(tg_admin_slow_t *w)
{
    sodium_memzero(w, sizeof(*w));
    free(w);
}

void tg_admin_slow_run(tg_admin_slow_t *w)
{
    size_t n = strlen(w->password);
    if (w->kind == SLOW_STRIPE) {
        tg_stripe_result_t out;
        tg_err_t err = {0};
        memset(&out, 0, sizeof(out));
        int rc = tg_stripe_call(&w->stripe, "POST", w->stripe_path, w->stripe_form, w->stripe_form_len, w->stripe_idem,
                                &out, &err);
        const char *url = out.body != NULL ? json_string_value(json_object_get(out.body, "url")) : NULL;
        w->stripe_status = out.status;
        if (rc == 0 && url != NULL && strncmp(url, "https://", 8) == 0 && strlen(url) < sizeof(w->stripe_url)) {
            w->stripe_ok = 1;
            snprintf(w->stripe_url, sizeof(w->stripe_url), "%s", url);
        } else {
            snprintf(w->stripe_message, sizeof(w->stripe_message), "%s",
                     rc != 0 ? err.msg : "Stripe's answer has no https url");
        }
        tg_stripe_result_clear(&out);
        return;
    }
    if (w->kind == SLOW_PASSWORD) {
        /* the current password first; the new one is hashed only if it matched */
        w->verified = crypto_pwhash_str_verify(w->hash, w->password, n) == 0;
        if (w->verified && crypto_pwhash_str(w->new_hash, w->new_password, strlen(w->new_password),
                                             crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
            w->new_hash[0] = '\0';
        sodium_memzero(w->new_password, sizeof(w->new_password));
    } else if (w->kind == SLOW_SIGNUP || w->kind == SLOW_RESET) {
        if (crypto_pwhash_str(w->hash, w->password, n, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
            w->hash[0] = '\0';
    } else if (w->found) {
        w->verified = crypto_pwhash_str_verify(w->hash, w->password, n) == 0;
    } else {
        /* An unknown email costs the same Argon2 work as a wrong password, so timing tells
         * nothing about which emails have accounts. */
        char dummy[crypto_pwhash_STRBYTES];
        if (crypto_pwhash_str(dummy, w->password, n, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0)
            sodium_memzero(dummy, sizeof(dummy));
        w->verified = 0;
    }
    sodium_memzero(w->password, sizeof(w->password));
}

/* Sign-ups per client address and in all; 0 or after replying 429. Counts this one. */
static int signup_allowed(tg_admin_t *a, const char *address, tg_admin_response_t *res)
{
    const tg_config_t *cfg = tg_adm_cfg(a);
    int64_t now = tg_clock_mono_ns();
    char key[TG_CIDR_TEXT_MAX + 8];
    snprintf(key, sizeof(key), "a:%s", address);
    int64_t wait = tg_throttle_hit(a->portal->signups, key, cfg->portal.signup.per_address.count,
                                   cfg->portal.signup.per_address.period_ns, now);
    const char *what = "from this address";
    if (wait == 0) {
        wait = tg_throttle_hit(a->portal->signups, "*", cfg->portal.signup.global.count,
                               cfg->portal.signup.global.period_ns, now);
        what = "right now";
    }
    if (wait == 0)
        return 1;
    res->retry_after = retry_seconds(wait);
    tg_adm_reply_error(res, 429, "signup_rate_limited", "Too many sign-ups %s; retry in %d seconds.", what,
                       res->retry_after);
    return 0;
}

/* Cheap checks first (the switch, the body, the password rules, the plan, the sign-up limits,
 * an existing account, the trial), then the hash is handed to a worker. */
static void signup(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    const tg_config_t *cfg = tg_adm_cfg(a);
    if (!cfg->portal.signup.enabled) {
        tg_adm_reply_error(res, 403, "signup_disabled", "Self-service sign-up is switched off; contact us for an account.");
        return;
    }
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    int bad = 0;
    const char *email = tg_adm_opt_string(body, "email", &bad), *company = tg_adm_opt_string(body, "company", &bad),
               *password = tg_adm_opt_string(body, "password", &bad), *plan_id = tg_adm_opt_string(body, "plan", &bad);
    const tg_plan_t *plan = plan_id != NULL ? tg_config_find_plan(cfg, plan_id) : NULL;
    tg_customer_t existing;
    tg_err_t err = {0};
    char hash[crypto_pwhash_STRBYTES], address[TG_CIDR_TEXT_MAX + 4], norm[TG_EMAIL_MAX];
    address_key(r->remote_addr, address, sizeof(address));
    normalise_email(email != NULL && !bad ? email : "", norm, sizeof(norm));
    int by_email = 0, by_address = 0;
    if (bad)
        tg_adm_reply_error(res, 400, "bad_request", "email, company, password and plan must be strings.");
    else if (email == NULL || !tg_adm_valid_email(email))
        tg_adm_reply_error(res, 400, "bad_request", "email: a valid email address is required.");
    else if (tg_mail_enabled() && !tg_mail_addr_ok(email, strlen(email)))
        tg_adm_reply_error(res, 400, "bad_request",
                           "email: an address mail can be sent to is required (no quotes, spaces, brackets, "
                           "commas, semicolons, colons or backslashes).");
    else if (password == NULL)
        tg_adm_reply_error(res, 400, "weak_password", "password: required.");
    else if (tg_password_check(password, email, &err) != 0)
        tg_adm_reply_error(res, 400, "weak_password", "%s", err.msg);
    else if (company != NULL && strlen(company) >= TG_NAME_MAX)
        tg_adm_reply_error(res, 400, "bad_request", "company: at most %d characters.", TG_NAME_MAX - 1);
    else if (plan == NULL)
        tg_adm_reply_error(res, 400, "bad_request", "plan: \"%s\" is not one of the plans.", plan_id ? plan_id : "");
    else if (!tg_config_self_service(cfg, plan->id)) /* sign-up is on: checked above */
        tg_adm_reply_error(res, 403, "plan_not_available",
                           "plan: \"%s\" is not open to self-service sign-up; contact us for it.", plan->id);
    else if (!signup_allowed(a, address, res))
        ; /* 429 given */
    else if (tg_store_customer_by_email(a->d.store, email, &existing, hash, sizeof(hash), &err) == 0)
        tg_adm_reply_error(res, 409, "conflict", "A customer with the email %s exists already.", email);
    else if (plan->trial_days > 0 &&
             tg_store_trial_used(a->d.store, norm, address,
                                     cfg->portal.signup.trial_address_days > 0
                                         ? tg_adm_now_s() - (int64_t)cfg->portal.signup.trial_address_days * 86400
                                         : INT64_MAX,
                                     &by_email, &by_address, &err) != 0)
        tg_adm_reply_error(res, 500, "internal_error", "%s", err.msg);
    else if ((by_email || by_address) && cfg->portal.signup.repeat_trial_refuse)
        tg_adm_reply_error(res, 403, "trial_already_used", "A free trial was used already %s; sign up for a plan without one.",
                           by_email ? "with this email address" : "from this address");
    else if ((res->slow = slow_new(SLOW_SIGNUP, password, r)) == NULL)
        tg_adm_reply_error(res, 503, "service_unavailable", "Out of memory; retry.");
    else {
        tg_admin_slow_t *w = res->slow;
        w->with_trial = plan->trial_days > 0 && !by_email && !by_address;
        snprintf(w->trial_note, sizeof(w->trial_note), "%s",
                 plan->trial_days == 0 ? "not_offered" : w->with_trial ? "granted" : "already_used");
        snprintf(w->email, sizeof(w->email), "%s", email);
        snprintf(w->email_norm, sizeof(w->email_norm), "%s", norm);
        snprintf(w->company, sizeof(w->company), "%s", company != NULL ? company : "");
        snprintf(w->plan_id, sizeof(w->plan_id), "%s", plan->id);
    }
    sodium_memzero(hash, sizeof(hash));
    json_decref(body);
}

/* The sign-up's audit entry, in its transaction: the new customer (and its first key's id) as
 * the actor and the target. */
static int audit_signup(tg_admin_t *a, tg_admin_slow_t *w, const tg_customer_t *c, const tg_key_t *k, tg_err_t *err)
{
    snprintf(w->who.id, sizeof(w->who.id), "%s", c->id);
    json_t *after = tg_adm_customer_json(a, c);
    if (after != NULL) {
        json_object_set_new(after, "first_key", json_string(k->id));
        json_object_set_new(after, "trial", json_string(w->trial_note));
    }
    int rc = after != NULL ? tg_audit_record(a->d.store, &w->who, "customer.signup", "customer", c->id, NULL, after, err)
                           : tg_errf(err, TG_ENOMEM, "out of memory recording the sign-up");
    json_decref(after);
    return rc;
}

/* Back thread, after the hash: the account, its password, its trial record, its first key, the
 * session and the audit entry, in one transaction. The email may have been taken meanwhile: 409
 * then. */
static void signup_finish(tg_admin_t *a, tg_admin_slow_t *w, tg_admin_response_t *res)
{
    const tg_plan_t *plan = tg_config_find_plan(tg_adm_cfg(a), w->plan_id);
    tg_customer_t c;
    tg_key_t k;
    memset(&k, 0, sizeof(k));
    char secret[TG_APIKEY_BUF], csrf[72];
    tg_err_t err = {0};
    int rc;
    if (w->hash[0] == '\0' || plan == NULL)
        tg_adm_reply_error(res, 503, "service_unavailable", "Out of memory hashing the password; retry.");
    else if (tg_store_tx_begin(a->d.store, &err) != 0)
        tg_adm_reply_error(res, 500, "internal_error", "%s", err.msg);
    else if ((rc = tg_sub_customer_create(&a->sub, w->email, w->company[0] ? w->company : NULL, plan, w->with_trial,
                                          &c, &err)) != 0) {
        tg_store_tx_rollback(a->d.store);
        tg_adm_reply_svc_error(res, rc, &err);
    } else if (tg_store_customer_set_password(a->d.store, c.id, w->hash, &err) != 0 ||
             (w->with_trial && tg_store_trial_record(a->d.store, w->email_norm, w->address, c.id, c.created_at, &err) != 0) ||
             tg_keys_issue(&a->keys, c.id, "default", 1, &k, secret, &err) != 0 ||
             tg_portal_mail_confirmation(a, &c, &err) != 0 || /* with email: the link, in this transaction */
             start_session(a, &c, w->secure, res, csrf, &err) != 0 || audit_signup(a, w, &c, &k, &err) != 0 ||
             tg_store_tx_commit(a->d.store, &err) != 0) {
        tg_store_tx_rollback(a->d.store);
        if (k.id[0] != '\0') { /* the key reached the gateway's memory: take it back there too */
            k.revoked_at = tg_adm_now_s();
            tg_accounts_put_key(a->d.accounts, &k, NULL);
        }
        res->set_cookie[0] = '\0';
        tg_adm_reply_error(res, 500, "internal_error", "Signing up failed: %s", err.msg);
    } else {
        tg_outbox_wake(a->d.outbox); /* the Stripe customer queued with the account */
        tg_mail_wake();
        json_t *key = tg_adm_key_json(a, &k);
        json_object_set_new(key, "secret", json_string(secret));
        json_t *j = session_reply(a, &c, csrf);
        json_object_set_new(j, "key", key);
        json_object_set_new(j, "trial", json_string(w->trial_note));
        json_object_set_new(j, "email_confirmation",
                            json_string(!tg_mail_enabled() ? "off" : plan->require_email_confirmation ? "required" : "sent"));
        /* where the new key is used (public_urls.gateway): the portal's curl example */
        json_object_set_new(j, "gateway_url", a->d.cfg->public_urls.gateway != NULL
                                                  ? json_string(a->d.cfg->public_urls.gateway) : json_null());
        tg_adm_reply_json(res, 201, j);
    }
    sodium_memzero(secret, sizeof(secret));
}

/* The three throttle keys of a sign-in: the pair, the address, the account. */
static void login_keys(const char *email_lower, const char *address, char *pair, size_t pcap, char *acct, size_t acap)
{
    snprintf(pair, pcap, "%s %s", email_lower, address);
    snprintf(acct, acap, "%s", email_lower);
}

static void login(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    int bad = 0;
    const char *email = tg_adm_opt_string(body, "email", &bad), *password = tg_adm_opt_string(body, "password", &bad);
    if (bad || email == NULL || password == NULL || strlen(password) > PASSWORD_MAX || strlen(email) >= TG_EMAIL_MAX) {
        tg_adm_reply_error(res, 400, "bad_request", "email and password are required strings.");
        json_decref(body);
        return;
    }
    tg_admin_slow_t *w = slow_new(SLOW_LOGIN, password, r);
    if (w == NULL) {
        tg_adm_reply_error(res, 503, "service_unavailable", "Out of memory; retry.");
        json_decref(body);
        return;
    }
    lower(email, w->email, sizeof(w->email));
    json_decref(body); /* email and password are copied into w */
    char pair[TG_EMAIL_MAX + TG_CIDR_TEXT_MAX + 8], acct[TG_EMAIL_MAX];
    login_keys(w->email, w->address, pair, sizeof(pair), acct, sizeof(acct));
    tg_portal_t *p = a->portal;
    int64_t now = tg_clock_mono_ns(), wait = tg_throttle_wait_ns(p->pair, pair, now);
    int64_t wa = tg_throttle_wait_ns(p->address, w->address, now), wc = tg_throttle_wait_ns(p->account, acct, now);
    wait = wa > wait ? wa : wait;
    wait = wc > wait ? wc : wait;
    if (wait > 0) {
        slow_free(w);
        res->retry_after = retry_seconds(wait);
        tg_adm_reply_error(res, 429, "rate_limited", "Too many failed sign-ins; retry in %d seconds.", res->retry_after);
        return;
    }
    /* Counted up front; a correct password takes it back (login_finish). */
    tg_throttle_fail(p->pair, pair, now);
    tg_throttle_fail(p->address, w->address, now);
    tg_throttle_fail(p->account, acct, now);
    tg_err_t err = {0};
    w->found = tg_store_customer_by_email(a->d.store, w->email, &w->customer, w->hash, sizeof(w->hash), &err) == 0 &&
               w->hash[0] != '\0';
    res->slow = w;
}

/* Back thread, after the verification. */
static void login_finish(tg_admin_t *a, tg_admin_slow_t *w, tg_admin_response_t *res)
{
    char pair[TG_EMAIL_MAX + TG_CIDR_TEXT_MAX + 8], acct[TG_EMAIL_MAX], csrf[72];
    login_keys(w->email, w->address, pair, sizeof(pair), acct, sizeof(acct));
    tg_err_t err = {0};
    if (!w->verified || !w->found) {
        tg_adm_reply_error(res, 401, "invalid_credentials", "The email or the password is wrong.");
    } else if (start_session(a, &w->customer, w->secure, res, csrf, &err) != 0) {
        tg_adm_reply_error(res, 500, "internal_error", "Signing in failed: %s", err.msg);
    } else {
        int64_t now = tg_clock_mono_ns();
        tg_throttle_reset(a->portal->pair, pair);
        tg_throttle_forgive(a->portal->address, w->address, now);
        tg_throttle_forgive(a->portal->account, acct, now);
        tg_adm_reply_json(res, 200, session_reply(a, &w->customer, csrf));
    }
}

/* POST /v1/me/password {current_password, new_password}: the new one follows the policy, the
 * current one is verified (a wrong one counts like a failed sign-in, so this is no way around
 * the throttle), and every session of the account ends; this one gets a new session. */
static void change_password(tg_admin_t *a, const tg_customer_t *c, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    int bad = 0;
    const char *cur = tg_adm_opt_string(body, "current_password", &bad), *next = tg_adm_opt_string(body, "new_password", &bad);
    tg_err_t err = {0};
    tg_customer_t again;
    tg_admin_slow_t *w = NULL;
    char pair[TG_EMAIL_MAX + TG_CIDR_TEXT_MAX + 8], acct[TG_EMAIL_MAX];
    if (bad || cur == NULL || next == NULL || strlen(cur) > PASSWORD_MAX)
        tg_adm_reply_error(res, 400, "bad_request", "current_password and new_password are required strings.");
    else if (tg_password_check(next, c->email, &err) != 0)
        tg_adm_reply_error(res, 400, "weak_password", "new_%s", err.msg);
    else if ((w = slow_new(SLOW_PASSWORD, cur, r)) == NULL)
        tg_adm_reply_error(res, 503, "service_unavailable", "Out of memory; retry.");
    else {
        snprintf(w->new_password, sizeof(w->new_password), "%s", next);
        lower(c->email, w->email, sizeof(w->email));
        login_keys(w->email, w->address, pair, sizeof(pair), acct, sizeof(acct));
        int64_t now = tg_clock_mono_ns(), wait = tg_throttle_wait_ns(a->portal->pair, pair, now);
        if (wait > 0) {
            res->retry_after = retry_seconds(wait);
            tg_adm_reply_error(res, 429, "rate_limited", "Too many wrong passwords; retry in %d seconds.", res->retry_after);
        } else if (tg_store_customer_by_email(a->d.store, c->email, &again, w->hash, sizeof(w->hash), &err) != 0 ||
                   w->hash[0] == '\0') {
            tg_adm_reply_error(res, 400, "bad_request", "This account has no password to change.");
        } else {
            tg_throttle_fail(a->portal->pair, pair, now); /* taken back if the current password is right */
            w->customer = again;
            res->slow = w;
            w = NULL;
        }
        if (w != NULL)
            slow_free(w);
    }
    json_decref(body);
}

/* A password's audit entry, in the change's transaction: that it changed and how many sessions
 * ended; never the password nor its hash. */
static int audit_password(tg_admin_t *a, tg_admin_slow_t *w, const char *action, uint64_t ended, tg_err_t *err)
{
    snprintf(w->who.id, sizeof(w->who.id), "%s", w->customer.id);
    json_t *after = json_pack("{s:b,s:I}", "password_changed", 1, "sessions_ended", (json_int_t)ended);
    int rc = tg_audit_record(a->d.store, &w->who, action, "customer", w->customer.id, NULL, after, err);
    json_decref(after);
    return rc;
}

static void change_password_finish(tg_admin_t *a, tg_admin_slow_t *w, tg_admin_response_t *res)
{
    char pair[TG_EMAIL_MAX + TG_CIDR_TEXT_MAX + 8], acct[TG_EMAIL_MAX], csrf[72];
    login_keys(w->email, w->address, pair, sizeof(pair), acct, sizeof(acct));
    tg_err_t err = {0};
    uint64_t ended = 0;
    if (!w->verified) {
        tg_adm_reply_error(res, 403, "invalid_credentials", "current_password: wrong.");
        return;
    }
    tg_throttle_reset(a->portal->pair, pair);
    if (w->new_hash[0] == '\0')
        tg_adm_reply_error(res, 503, "service_unavailable", "Out of memory hashing the password; retry.");
    else if (tg_store_tx_begin(a->d.store, &err) != 0)
        tg_adm_reply_error(res, 500, "internal_error", "%s", err.msg);
    else if (tg_store_customer_set_password(a->d.store, w->customer.id, w->new_hash, &err) != 0 ||
             tg_store_session_delete_customer(a->d.store, w->customer.id, &ended, &err) != 0 ||
             start_session(a, &w->customer, w->secure, res, csrf, &err) != 0 ||
             audit_password(a, w, "customer.password_change", ended, &err) != 0 ||
             tg_store_tx_commit(a->d.store, &err) != 0) {
        tg_store_tx_rollback(a->d.store);
        res->set_cookie[0] = '\0';
        tg_adm_reply_error(res, 500, "internal_error", "Changing the password failed: %s", err.msg);
    } else {
        tg_adm_reply_json(res, 200, json_pack("{s:b,s:I,s:s}", "password_changed", 1, "sessions_ended", (json_int_t)ended,
                                              "csrf_token", csrf));
    }
}

/* POST /v1/reset-password {token, password}: the token and the policy are checked first (the
 * link stays usable if the password is refused), the hash runs on a worker, then
 * tg_portal_reset_finish uses the token and ends every session. */
static void reset_password(tg_admin_t *a, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    json_t *body = tg_adm_parse_body(r, res);
    if (body == NULL)
        return;
    int bad = 0;
    const char *token = tg_adm_opt_string(body, "token", &bad), *password = tg_adm_opt_string(body, "password", &bad);
    tg_customer_t c;
    if (bad)
        tg_adm_reply_error(res, 400, "bad_request", "token and password must be strings.");
    else if (password != NULL && strlen(password) > PASSWORD_MAX)
        tg_adm_reply_error(res, 400, "weak_password", "password: at most %d bytes.", PASSWORD_MAX);
    else if (tg_portal_reset_check(a, token, password, &c, res)) {
        if ((res->slow = slow_new(SLOW_RESET, password, r)) == NULL)
            tg_adm_reply_error(res, 503, "service_unavailable", "Out of memory; retry.");
        else
            snprintf(res->slow->token, sizeof(res->slow->token), "%s", token);
    }
    json_decref(body);
}

void tg_admin_slow_finish(tg_admin_t *a, tg_admin_slow_t *w, int ran, tg_admin_response_t *res)
{
    memset(res, 0, sizeof(*res));
    if (!ran) {
        res->retry_after = 1;
        tg_adm_reply_error(res, 503, "busy", "Too many requests at once; retry in a second.");
    } else if (w->kind == SLOW_STRIPE) {
        if (w->stripe_ok)
            tg_adm_reply_json(res, 200, json_pack("{s:s}", "url", w->stripe_url));
        else {
            res->retry_after = 5;
            tg_adm_reply_error(res, 503, "stripe_unavailable", "Stripe did not give a page to open (%s); retry later.",
                               w->stripe_message);
        }
    } else if (w->kind == SLOW_SIGNUP)
        signup_finish(a, w, res);
    else if (w->kind == SLOW_PASSWORD)
        change_password_finish(a, w, res);
    else if (w->kind == SLOW_RESET)
        tg_portal_reset_finish(a, w->token, w->hash, &w->who, res);
    else
        login_finish(a, w, res);
    slow_free(w);
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
    /* A plan that needs a card is refused without one by the service (TG_EPAYMENT), whichever
     * door the change comes through. */
    if (!json_is_string(json_object_get(body, "plan")))
        tg_adm_reply_error(res, 400, "bad_request", "plan: required.");
    else
        tg_adm_patch_customer(a, c, r, res);
    json_decref(body);
}

/* POST /v1/me/billing/setup (a Checkout Session in setup mode: add a card) and
 * POST /v1/me/billing/portal (Stripe's customer portal: manage cards, see receipts). Both come
 * back to the portal's billing section. 409 while there is nothing to open; the call itself is
 * a hash worker's (see SLOW_STRIPE). */
static void billing_session(tg_admin_t *a, const tg_customer_t *c, const tg_admin_request_t *r, int setup,
                            tg_admin_response_t *res)
{
    const tg_config_t *cfg = tg_adm_cfg(a);
    char stripe_id[256];
    tg_err_t err = {0};
    if (!cfg->stripe.enabled) {
        tg_adm_reply_error(res, 409, "stripe_not_configured", "Payments are not set up on this service (no stripe section).");
        return;
    }
    int rc = tg_store_stripe_customer_get(a->d.store, c->id, stripe_id, sizeof(stripe_id), &err);
    if (rc == TG_ENOTFOUND) {
        res->retry_after = 5;
        tg_adm_reply_error(res, 409, "stripe_customer_pending",
                           "Your account is not in Stripe yet (it is being created); retry in a few seconds.");
        return;
    }
    if (rc != 0) {
        tg_adm_reply_error(res, 500, "internal_error", "Reading the Stripe customer failed: %s", err.msg);
        return;
    }
    const tg_plan_t *plan = tg_config_find_plan(cfg, c->plan_id);
    char back[STRIPE_URL_MAX];
    snprintf(back, sizeof(back), "%s/portal/app.html#billing", cfg->portal.public_url);
    tg_form_t f;
    tg_form_init(&f, STRIPE_FORM_MAX);
    rc = tg_form_add(&f, "customer", stripe_id, &err);
    if (setup) {
        /* 2025-03-31.basil: setup mode needs currency unless payment_method_types is given; the
         * currency picks the payment methods that can pay the plan's invoices. */
        if (rc == 0)
            rc = tg_form_add(&f, "mode", "setup", &err);
        if (rc == 0)
            rc = tg_form_add(&f, "currency", plan != NULL ? plan->currency : "usd", &err);
        if (rc == 0)
            rc = tg_form_add(&f, "success_url", back, &err);
        if (rc == 0)
            rc = tg_form_add(&f, "cancel_url", back, &err);
        if (rc == 0)
            rc = tg_form_add(&f, "metadata[tollgate_customer]", c->id, &err);
    } else if (rc == 0) {
        rc = tg_form_add(&f, "return_url", back, &err);
    }
    size_t len = 0;
    const char *data = rc == 0 ? tg_form_data(&f, &len) : NULL;
    tg_admin_slow_t *w = data != NULL && len < STRIPE_FORM_MAX ? calloc(1, sizeof(*w)) : NULL;
    if (w == NULL) {
        tg_form_free(&f);
        tg_adm_reply_error(res, 500, "internal_error", "Building the Stripe request failed: %s",
                           err.msg[0] ? err.msg : "out of memory");
        return;
    }
    w->kind = SLOW_STRIPE;
    w->secure = r->secure;
    w->stripe.secret_key = cfg->stripe.secret_key;
    w->stripe.api_base = cfg->stripe.api_base;
    w->stripe.timeout_ms = STRIPE_INTERACTIVE_TIMEOUT_MS;
    snprintf(w->stripe_path, sizeof(w->stripe_path), "%s",
             setup ? "/v1/checkout/sessions" : "/v1/billing_portal/sessions");
    memcpy(w->stripe_form, data, len);
    w->stripe_form_len = len;
    uint8_t nonce[16];
    char hex[33];
    randombytes_buf(nonce, sizeof(nonce));
    sodium_bin2hex(hex, sizeof(hex), nonce, sizeof(nonce));
    snprintf(w->stripe_idem, sizeof(w->stripe_idem), "tg-%s-%s", setup ? "setup" : "portal", hex);
    tg_form_free(&f);
    res->slow = w;
}

int tg_portal_handle(tg_admin_t *a, const tg_adm_segs_t *s, const tg_admin_request_t *r, tg_admin_response_t *res)
{
    if (!tg_adm_seg_is(s, 0, "v1"))
        return 0;
    int account = s->n == 2 && (tg_adm_seg_is(s, 1, "confirm-email") || tg_adm_seg_is(s, 1, "forgot-password") ||
                                tg_adm_seg_is(s, 1, "reset-password"));
    if (account && !tg_mail_enabled())
        return 0; /* without email there is no link to confirm or reset with: 404 */
    int portal = tg_adm_seg_is(s, 1, "signup") || tg_adm_seg_is(s, 1, "login") || tg_adm_seg_is(s, 1, "logout") ||
                 tg_adm_seg_is(s, 1, "me") || account;
    if (portal && !tg_adm_method_is(r, "GET") && !tg_adm_method_is(r, "HEAD") && !tg_adm_same_origin(r)) {
        /* A page elsewhere posting here (login CSRF, sign-ups from someone else's site). */
        tg_adm_reply_error(res, 403, "origin_refused", "State changes must come from the portal's own pages (Origin).");
        return 1;
    }
    if (s->n == 2 && tg_adm_seg_is(s, 1, "signup") && tg_adm_method_is(r, "POST")) {
        signup(a, r, res);
        return 1;
    }
    if (s->n == 2 && tg_adm_seg_is(s, 1, "login") && tg_adm_method_is(r, "POST")) {
        login(a, r, res);
        return 1;
    }
    if (account && !tg_adm_method_is(r, "POST")) {
        tg_adm_reply_error(res, 405, "method_not_allowed", "Use POST.");
        return 1;
    }
    if (account && tg_adm_seg_is(s, 1, "confirm-email")) {
        tg_portal_confirm_email(a, r, res);
        return 1;
    }
    if (account && tg_adm_seg_is(s, 1, "forgot-password")) {
        char address[TG_CIDR_TEXT_MAX + 4];
        address_key(r->remote_addr, address, sizeof(address));
        tg_portal_forgot_password(a, a->portal->resets, address, r, res);
        return 1;
    }
    if (account) { /* reset-password */
        reset_password(a, r, res);
        return 1;
    }
    int logout = tg_adm_seg_is(s, 1, "logout") && (s->n == 2 || (s->n == 3 && tg_adm_seg_is(s, 2, "all")));
    if (!logout && !tg_adm_seg_is(s, 1, "me"))
        return 0;
    if (logout && !tg_adm_method_is(r, "POST")) { /* never a way to read the account (or to sign out by a link) */
        tg_adm_reply_error(res, 405, "method_not_allowed", "Sign out with POST (and the X-CSRF-Token header).");
        return 1;
    }
    int changing = !tg_adm_method_is(r, "GET") && !tg_adm_method_is(r, "HEAD");
    tg_customer_t c;
    tg_session_t ses;
    if (!authenticate(a, r, changing, &c, &ses, res))
        return 1;
    tg_err_t err = {0};
    /* Suspended and canceled customers may sign in to read their invoices and pay, but not
     * create keys (or rotate them, which creates one) nor change plans. */
    const char *status = tg_adm_display_status(&c, tg_adm_now_s());
    int inactive = strcmp(status, "suspended") == 0 || strcmp(status, "canceled") == 0;
    int creates = tg_adm_method_is(r, "POST") && ((s->n == 3 && tg_adm_seg_is(s, 2, "keys")) ||
                                                  (s->n == 5 && tg_adm_seg_is(s, 2, "keys")) ||
                                                  (s->n == 3 && tg_adm_seg_is(s, 2, "plan")));
    tg_audit_actor_t who;
    tg_adm_audit_actor(r, TG_AUDIT_CUSTOMER, c.id, &who);
    tg_adm_audit_t au;
    tg_adm_audit_begin(a, &au, &who, 1, c.id, s, 2, r);
    if (logout) {
        uint64_t ended = 1;
        if (s->n == 3) /* sign out everywhere */
            tg_store_session_delete_customer(a->d.store, c.id, &ended, &err);
        else
            tg_store_session_delete(a->d.store, ses.token_hash, &err);
        if (err.code != 0) {
            tg_adm_reply_error(res, 500, "internal_error", "Signing out failed: %s", err.msg);
            return 1;
        }
        snprintf(res->set_cookie, sizeof(res->set_cookie), "tg_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict%s",
                 r->secure ? "; Secure" : "");
        tg_adm_reply_json(res, 200, json_pack("{s:b,s:I}", "signed_out", 1, "sessions_ended", (json_int_t)ended));
    } else if (inactive && creates) {
        tg_adm_reply_error(res, 403, "account_inactive",
                           "The account is %s: it can read its invoices, but not create keys or change plans.", status);
    } else if (s->n == 3 && tg_adm_seg_is(s, 2, "password") && tg_adm_method_is(r, "POST")) {
        change_password(a, &c, r, res);
    } else if (s->n == 3 && tg_adm_seg_is(s, 2, "confirmation") && tg_mail_enabled()) {
        /* a new confirmation link (portal_account.c); without email there is none: 404 below */
        char address[TG_CIDR_TEXT_MAX + 4];
        address_key(r->remote_addr, address, sizeof(address));
        if (!tg_adm_method_is(r, "POST"))
            tg_adm_reply_error(res, 405, "method_not_allowed", "Use POST.");
        else
            tg_portal_resend_confirmation(a, a->portal->resets, address, &c, res);
    } else if (s->n == 2 && tg_adm_method_is(r, "GET")) {
        json_t *j = tg_adm_customer_json(a, &c);
        json_object_set_new(j, "csrf_token", json_string(ses.csrf_token));
        /* where the keys are used (public_urls.gateway): the account page's "Getting started" */
        json_object_set_new(j, "gateway_url", a->d.cfg->public_urls.gateway != NULL
                                                  ? json_string(a->d.cfg->public_urls.gateway) : json_null());
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
    } else if (s->n == 3 && tg_adm_seg_is(s, 2, "budget")) {
        tg_adm_budget(a, &c, r, res);
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
                tg_adm_reply_invoice(a, res, 200, &inv);
            else {
                res->status = 200;
                res->content_type = "text/html; charset=utf-8";
                res->inline_style = 1;
                res->body = tg_invoice_to_html(&inv, &c, tg_adm_cfg(a));
                res->body_len = res->body != NULL ? strlen(res->body) : 0;
            }
            tg_invoice_clear(&inv);
        }
    } else if (s->n == 4 && tg_adm_seg_is(s, 2, "plan") && tg_adm_seg_is(s, 3, "preview") &&
               tg_adm_method_is(r, "GET")) {
        tg_adm_plan_preview(a, &c, r, res);
    } else if (s->n == 3 && tg_adm_seg_is(s, 2, "plan") && tg_adm_method_is(r, "POST")) {
        me_plan(a, &c, r, res);
    } else if (s->n == 3 && tg_adm_seg_is(s, 2, "cancel") && tg_adm_method_is(r, "POST")) {
        /* self-service cancellation: always at the period's end, by the admin route's service */
        int rc = tg_sub_cancel(&a->sub, &c, 1, &err);
        if (rc != 0)
            tg_adm_reply_svc_error(res, rc, &err);
        else {
            tg_outbox_wake(a->d.outbox); /* billing: stripe: the subscription's cancellation */
            tg_adm_reply_json(res, 200, tg_adm_customer_json(a, &c));
        }
    } else if (s->n == 3 && tg_adm_seg_is(s, 2, "resume") && tg_adm_method_is(r, "POST")) {
        tg_adm_resume_customer(a, &c, res); /* "Keep my subscription", until the period ends */
    } else if (s->n == 4 && tg_adm_seg_is(s, 2, "billing") &&
               (tg_adm_seg_is(s, 3, "setup") || tg_adm_seg_is(s, 3, "portal")) && tg_adm_method_is(r, "POST")) {
        billing_session(a, &c, r, tg_adm_seg_is(s, 3, "setup"), res);
    } else if (s->n >= 3 && tg_adm_notify_route(a, c.id, s, 2, r, res)) {
        /* events and webhook endpoints (admin_notify.c) */
    } else {
        tg_adm_reply_error(res, 404, "route_not_found", "No such route.");
    }
    tg_adm_audit_end(a, &au, res);
    return 1;
}
