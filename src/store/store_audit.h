/* store_audit.h - the audit log's rows (migration 28): who changed what through the admin API,
 * the portal or the CLI, with the target's state before and after. The audit service
 * (ops/audit.h) decides what goes in (and redacts secrets); these functions only append and read.
 *
 * Append-only: there is no call that updates or deletes a row, and the database refuses one
 * itself (a trigger in each dialect raises "audit_log is append-only"). An append joins the
 * caller's transaction when one is open on the connection, so that a change and its audit row
 * commit together. Same threading rule as store.h: one connection per thread. Lists are
 * keyset-paged (store.h) by id, newest first; a page key is "<id>". */
#ifndef TG_STORE_AUDIT_H
#define TG_STORE_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define TG_AUDIT_KIND_MAX 24   /* admin_token | owner_session | customer | cli | system */
#define TG_AUDIT_ACTOR_MAX 160 /* a token's fingerprint, a customer id, an email */
#define TG_AUDIT_SOURCE_MAX 64 /* the client's address */
#define TG_AUDIT_REQUEST_ID_MAX 129
#define TG_AUDIT_ACTION_MAX 64 /* "customer.plan_change", "key.revoke", ... */
#define TG_AUDIT_TYPE_MAX 32   /* "customer", "key", "invoice", ... */
#define TG_AUDIT_TARGET_MAX 128
#define TG_AUDIT_JSON_MAX (64 * 1024) /* each of before and after, serialised */

typedef struct tg_audit_row {
    int64_t id; /* set by the store: insertion order */
    int64_t at_ms;
    char actor_kind[TG_AUDIT_KIND_MAX];
    char actor_id[TG_AUDIT_ACTOR_MAX];
    char source[TG_AUDIT_SOURCE_MAX];
    char request_id[TG_AUDIT_REQUEST_ID_MAX];
    char action[TG_AUDIT_ACTION_MAX];
    char target_type[TG_AUDIT_TYPE_MAX];
    char target_id[TG_AUDIT_TARGET_MAX];
    char *before_json; /* JSON text or NULL (nothing before: a creation); malloc'd when read */
    char *after_json;  /* JSON text or NULL (nothing after: a deletion); malloc'd when read */
} tg_audit_row_t;

/* Frees a read row's before_json and after_json. */
void tg_audit_row_clear(tg_audit_row_t *r);

/* 1 if r's text fields fit their caps and its action is set (the backends check it). */
int tg_audit_row_fits(const tg_audit_row_t *r);

/* Appends r (its id is ignored) and writes the new id into *id (may be NULL). TG_EINVAL for a
 * field past its cap or an empty action; the store's errors. */
int tg_store_audit_append(tg_store_t *st, const tg_audit_row_t *r, int64_t *id, tg_err_t *err);

/* What a page keeps: every member NULL/""/0 means "any". action_prefix matches the action's
 * start ("key." = every key action); from_ms <= at < to_ms (to_ms 0: no end). */
typedef struct tg_audit_filter {
    const char *actor_id;
    const char *action_prefix;
    const char *target_type;
    const char *target_id;
    int64_t from_ms, to_ms;
} tg_audit_filter_t;

/* Rows that match f, newest first. The row handed to cb is valid during the call only (its JSON
 * too); cb must not call the store on this connection; non-zero stops the walk. */
typedef int (*tg_audit_row_cb)(const tg_audit_row_t *r, void *arg);
int tg_store_audit_page(tg_store_t *st, const tg_audit_filter_t *f, const tg_page_t *page, tg_audit_row_cb cb,
                        void *arg, tg_page_end_t *end, tg_err_t *err);

#endif
