/* audit.h - the audit log: every change made through the admin API, the portal and the CLI, with
 * who made it, what it was, and the target's state before and after (issue 14).
 *
 * The transport adapters (src/admin for the admin API, the dashboard and the portal; the CLI
 * reaches the server through the admin API and says so) call tg_audit_record once a change has
 * succeeded. It runs on the caller's store connection: inside a transaction the caller holds
 * open, the audit row commits with the change or not at all; otherwise it is its own statement,
 * right after the change. Secrets never reach the store: before and after are copied and every
 * member whose name says it holds a secret (secret, password, token, ...: tg_audit_redact) is
 * replaced by "[redacted]" first. Actors are named by what is not secret: an admin token by a
 * fingerprint (tg_audit_fingerprint), a customer by its id.
 *
 * The rows are append-only (store_audit.h: the database itself refuses UPDATE and DELETE).
 *
 * Threading: the caller's thread and store connection; nothing here blocks but the store. */
#ifndef TG_OPS_AUDIT_H
#define TG_OPS_AUDIT_H

#include <jansson.h>
#include <stddef.h>

#include "store/store_audit.h"
#include "util/err.h"

typedef enum tg_audit_actor_kind {
    TG_AUDIT_ADMIN_TOKEN,   /* the admin token as a Bearer (scripts) */
    TG_AUDIT_OWNER_SESSION, /* the owner's dashboard, signed in */
    TG_AUDIT_CUSTOMER,      /* a customer, through the portal */
    TG_AUDIT_CLI,           /* the tollgate command (the admin token, through the admin API) */
    TG_AUDIT_SYSTEM,        /* tollgate itself (SIGHUP reload) */
} tg_audit_actor_kind_t;

typedef struct tg_audit_actor {
    tg_audit_actor_kind_t kind;
    char id[TG_AUDIT_ACTOR_MAX];              /* never a secret; "" if none */
    char source[TG_AUDIT_SOURCE_MAX];         /* the client's address, or "" */
    char request_id[TG_AUDIT_REQUEST_ID_MAX]; /* X-Request-Id, or "" */
} tg_audit_actor_t;

/* "admin_token", "owner_session", "customer", "cli", "system". */
const char *tg_audit_actor_kind_name(tg_audit_actor_kind_t kind);

/* A name for a secret that cannot be turned back into it: "fp_" and 16 hex digits of a keyed
 * BLAKE2b hash of the secret's bytes. The same secret always gives the same name, so that the
 * log tells one admin token from another (after a rotation) without holding either. */
#define TG_AUDIT_FINGERPRINT_MAX 20
void tg_audit_fingerprint(const void *secret, size_t len, char out[TG_AUDIT_FINGERPRINT_MAX]);

/* Replaces, in place and at any depth, the value of every object member whose name holds a
 * secret ("secret", "password", "token", "authorization", "cookie", or a name ending in
 * "_secret", "_password", "_token", "_hash") by the string "[redacted]". */
void tg_audit_redact(json_t *v);

/* Appends one entry: who did action (e.g. "customer.plan_change") to target_type/target_id
 * (either may be "" for none), with the target's state before (NULL: nothing before, a creation)
 * and after (NULL: nothing after, a deletion). before and after are borrowed and not changed
 * (redaction works on copies); one that serialises past TG_AUDIT_JSON_MAX is stored as
 * {"truncated": true}. Returns 0, TG_EINVAL (no action, a field past its cap), TG_ENOMEM, or
 * the store's errors (the change it describes is then not audited: the caller decides). */
int tg_audit_record(tg_store_t *st, const tg_audit_actor_t *who, const char *action, const char *target_type,
                    const char *target_id, const json_t *before, const json_t *after, tg_err_t *err);

/* An entry as the API shows it: {id, at (RFC 3339 with milliseconds), actor: {kind, id},
 * source, request_id, action, target: {type, id}, before, after}. NULL when out of memory. */
json_t *tg_audit_row_json(const tg_audit_row_t *r);

#endif
