/* store.c - the store's front: picks the backend by URL scheme and dispatches every call to it.
 *
 * One indirect call per store call: the backends do I/O (a disk sync, a network round trip),
 * next to which the dispatch costs nothing. */
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#include "store/store_ops.h"

/* The scheme of url ("sqlite", "postgresql", ...) into out; 0 if url has none. */
static int url_scheme(const char *url, char *out, size_t cap)
{
    const char *colon = strchr(url, ':');
    if (colon == NULL || colon == url || (size_t)(colon - url) >= cap)
        return 0;
    for (const char *p = url; p < colon; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '+' ||
              *p == '-' || *p == '.'))
            return 0;
    memcpy(out, url, (size_t)(colon - url));
    out[colon - url] = '\0';
    return 1;
}

int tg_store_open(const char *url, tg_store_t **out, tg_err_t *err)
{
    char scheme[32];
    *out = NULL;
    if (url == NULL || *url == '\0')
        return tg_errf(err, TG_EINVAL, "no storage URL given (use sqlite:PATH or postgresql://...)");
    if (!url_scheme(url, scheme, sizeof(scheme)))
        return tg_errf(err, TG_EINVAL, "storage URL \"%.200s\" has no scheme (use sqlite:PATH or postgresql://...)",
                       url);
    if (strcmp(scheme, "sqlite") == 0)
        return tg_sqlite_open(url, out, err);
    if (strcmp(scheme, "postgresql") == 0 || strcmp(scheme, "postgres") == 0)
        return tg_pg_open(url, out, err);
    return tg_errf(err, TG_EINVAL,
                   "storage URL \"%.200s\": scheme \"%s\" is not supported (use sqlite:PATH or postgresql://...)", url,
                   scheme);
}

const char *tg_store_backend(const tg_store_t *st)
{
    return st->ops->name;
}

void tg_outbox_row_clear(tg_outbox_row_t *r)
{
    free(r->params);
    memset(r, 0, sizeof(*r));
}

/* ---- dispatch: one function per tg_store_ops_t member, in its order ---- */

void tg_store_close(tg_store_t *st)
{
    if (st != NULL) /* like free(): callers close what a failed open left NULL */
        st->ops->close(st);
}

int tg_store_migrate(tg_store_t *st, tg_err_t *err)
{
    return st->ops->migrate(st, err);
}

int tg_store_schema_version(tg_store_t *st, int *version, tg_err_t *err)
{
    return st->ops->schema_version(st, version, err);
}

int tg_store_backup_to(tg_store_t *st, const char *dest_path, tg_err_t *err)
{
    return st->ops->backup_to(st, dest_path, err);
}

int tg_store_restore_from(tg_store_t *st, const char *src_path, tg_err_t *err)
{
    return st->ops->restore_from(st, src_path, err);
}

int tg_store_customer_insert(tg_store_t *st, const tg_customer_t *c, tg_err_t *err)
{
    return st->ops->customer_insert(st, c, err);
}

int tg_store_customer_get(tg_store_t *st, const char *id, tg_customer_t *out, tg_err_t *err)
{
    return st->ops->customer_get(st, id, out, err);
}

int tg_store_customer_update(tg_store_t *st, const tg_customer_t *c, tg_err_t *err)
{
    return st->ops->customer_update(st, c, err);
}

int tg_store_customer_list(tg_store_t *st, tg_customer_cb cb, void *arg, tg_err_t *err)
{
    return st->ops->customer_list(st, cb, arg, err);
}

int tg_store_key_insert(tg_store_t *st, const tg_key_t *k, tg_err_t *err)
{
    return st->ops->key_insert(st, k, err);
}

int tg_store_key_get(tg_store_t *st, const char *id, tg_key_t *out, tg_err_t *err)
{
    return st->ops->key_get(st, id, out, err);
}

int tg_store_key_list(tg_store_t *st, const char *customer_id, tg_key_cb cb, void *arg, tg_err_t *err)
{
    return st->ops->key_list(st, customer_id, cb, arg, err);
}

int tg_store_key_set_revoked(tg_store_t *st, const char *id, int64_t revoked_at, tg_err_t *err)
{
    return st->ops->key_set_revoked(st, id, revoked_at, err);
}

int tg_store_key_set_expires(tg_store_t *st, const char *id, int64_t expires_at, tg_err_t *err)
{
    return st->ops->key_set_expires(st, id, expires_at, err);
}

int tg_store_key_touch(tg_store_t *st, const char *id, int64_t last_used_at, tg_err_t *err)
{
    return st->ops->key_touch(st, id, last_used_at, err);
}

int tg_store_usage_record(tg_store_t *st, uint64_t batch_id, const tg_usage_t *rows, size_t n, size_t *inserted,
                          tg_err_t *err)
{
    return st->ops->usage_record(st, batch_id, rows, n, inserted, err);
}

int tg_store_usage_record_many(tg_store_t *st, const tg_usage_batch_t *batches, size_t nb, tg_usage_stored_t *out,
                               tg_err_t *err)
{
    return st->ops->usage_record_many(st, batches, nb, out, err);
}

int tg_store_usage_event_ids_prune(tg_store_t *st, int64_t before_s, size_t limit, size_t *deleted, tg_err_t *err)
{
    *deleted = 0;
    if (limit == 0 || limit > 10000)
        return tg_errf(err, TG_EINVAL, "pruning event ids: a batch of %zu rows (1 to 10000)", limit);
    return st->ops->usage_event_ids_prune(st, before_s, limit, deleted, err);
}

int tg_store_usage_event_ids_each(tg_store_t *st, int64_t since_s, tg_usage_event_id_cb cb, void *arg, tg_err_t *err)
{
    return st->ops->usage_event_ids_each(st, since_s, cb, arg, err);
}

int tg_store_usage_event_id_blocks_last(tg_store_t *st, int64_t *last, tg_err_t *err)
{
    *last = 0;
    return st->ops->usage_event_id_blocks_last(st, last, err);
}

int tg_store_usage_event_id_blocks_after(tg_store_t *st, int64_t after_id, int64_t since_s, tg_usage_event_id_cb cb,
                                         void *arg, tg_err_t *err)
{
    return st->ops->usage_event_id_blocks_after(st, after_id, since_s, cb, arg, err);
}

int tg_store_usage_fold(tg_store_t *st, int force, tg_err_t *err)
{
    return st->ops->usage_fold(st, force, err);
}

int tg_store_usage_period(tg_store_t *st, const char *customer_id, int64_t period_start, tg_usage_total_cb cb,
                          void *arg, tg_err_t *err)
{
    return st->ops->usage_period(st, customer_id, period_start, cb, arg, err);
}

int tg_store_usage_daily(tg_store_t *st, const char *customer_id, int64_t from_s, int64_t to_s, tg_usage_day_cb cb,
                         void *arg, tg_err_t *err)
{
    return st->ops->usage_daily(st, customer_id, from_s, to_s, cb, arg, err);
}

int tg_store_usage_endpoints(tg_store_t *st, const char *customer_id, int64_t from_s, int64_t to_s,
                             tg_usage_endpoint_cb cb, void *arg, tg_err_t *err)
{
    return st->ops->usage_endpoints(st, customer_id, from_s, to_s, cb, arg, err);
}

int tg_store_usage_load(tg_store_t *st, int64_t since_s, tg_usage_load_cb cb, void *arg, tg_err_t *err)
{
    return st->ops->usage_load(st, since_s, cb, arg, err);
}

int tg_store_usage_total(tg_store_t *st, const char *metric, uint64_t *units, tg_err_t *err)
{
    return st->ops->usage_total(st, metric, units, err);
}

int tg_store_customer_page(tg_store_t *st, const tg_page_t *page, tg_customer_cb cb, void *arg, tg_page_end_t *end,
                           tg_err_t *err)
{
    return st->ops->customer_page(st, page, cb, arg, end, err);
}

int tg_store_customer_search(tg_store_t *st, const tg_customer_query_t *q, const tg_page_t *page, tg_customer_cb cb,
                             void *arg, tg_page_end_t *end, tg_err_t *err)
{
    return st->ops->customer_search(st, q, page, cb, arg, end, err);
}

int tg_store_invoice_search(tg_store_t *st, const tg_invoice_query_t *q, const tg_page_t *page, tg_invoice_cb cb,
                            void *arg, tg_page_end_t *end, tg_err_t *err)
{
    return st->ops->invoice_search(st, q, page, cb, arg, end, err);
}

int tg_store_invoice_search_totals(tg_store_t *st, const tg_invoice_query_t *q, tg_invoice_totals_cb cb, void *arg,
                                   tg_err_t *err)
{
    return st->ops->invoice_search_totals(st, q, cb, arg, err);
}

int tg_store_key_page(tg_store_t *st, const char *customer_id, const tg_page_t *page, tg_key_cb cb, void *arg,
                      tg_page_end_t *end, tg_err_t *err)
{
    return st->ops->key_page(st, customer_id, page, cb, arg, end, err);
}

int tg_store_key_count_active(tg_store_t *st, const char *customer_id, int64_t now, uint64_t *count, tg_err_t *err)
{
    return st->ops->key_count_active(st, customer_id, now, count, err);
}

int tg_store_usage_rejected_list(tg_store_t *st, const tg_page_t *page, tg_usage_rejected_cb cb, void *arg,
                                 tg_page_end_t *end, tg_err_t *err)
{
    return st->ops->usage_rejected_list(st, page, cb, arg, end, err);
}

int tg_store_usage_rejected_count(tg_store_t *st, uint64_t *count, tg_err_t *err)
{
    return st->ops->usage_rejected_count(st, count, err);
}

int tg_store_billing_failure_set(tg_store_t *st, const char *customer_id, const char *type, const char *message,
                                 int64_t at, tg_err_t *err)
{
    return st->ops->billing_failure_set(st, customer_id, type, message, at, err);
}

int tg_store_billing_failure_clear(tg_store_t *st, const char *customer_id, tg_err_t *err)
{
    return st->ops->billing_failure_clear(st, customer_id, err);
}

int tg_store_billing_failure_count(tg_store_t *st, uint64_t *count, tg_err_t *err)
{
    return st->ops->billing_failure_count(st, count, err);
}

int tg_store_billing_failure_list(tg_store_t *st, const tg_page_t *page, tg_billing_failure_cb cb, void *arg,
                                  tg_page_end_t *end, tg_err_t *err)
{
    return st->ops->billing_failure_list(st, page, cb, arg, end, err);
}

int tg_store_customers_due(tg_store_t *st, int64_t until, int64_t after_end, const char *after_id, size_t limit,
                           tg_customer_due_cb cb, void *arg, size_t *n, tg_err_t *err)
{
    if (st->ops->customers_due == NULL) /* a backend still without the schedule of migration 21 */
        return tg_errf(err, TG_ESTORE, "the %s store cannot list the customers due", st->ops->name);
    return st->ops->customers_due(st, until, after_end, after_id, limit, cb, arg, n, err);
}

int tg_store_customer_set_next_period_end(tg_store_t *st, const char *id, int64_t expected, int64_t next_end,
                                          tg_err_t *err)
{
    if (st->ops->customer_set_next_period_end == NULL)
        return tg_errf(err, TG_ESTORE, "the %s store cannot keep the customers' next period end", st->ops->name);
    return st->ops->customer_set_next_period_end(st, id, expected, next_end, err);
}

int tg_store_customer_set_password(tg_store_t *st, const char *id, const char *password_hash, tg_err_t *err)
{
    return st->ops->customer_set_password(st, id, password_hash, err);
}

int tg_store_customer_by_email(tg_store_t *st, const char *email, tg_customer_t *out, char *password_hash, size_t cap,
                               tg_err_t *err)
{
    return st->ops->customer_by_email(st, email, out, password_hash, cap, err);
}

int tg_store_session_insert(tg_store_t *st, const tg_session_t *s, tg_err_t *err)
{
    return st->ops->session_insert(st, s, err);
}

int tg_store_session_get(tg_store_t *st, const uint8_t token_hash[32], tg_session_t *out, tg_err_t *err)
{
    return st->ops->session_get(st, token_hash, out, err);
}

int tg_store_session_delete(tg_store_t *st, const uint8_t token_hash[32], tg_err_t *err)
{
    return st->ops->session_delete(st, token_hash, err);
}

int tg_store_session_delete_customer(tg_store_t *st, const char *customer_id, uint64_t *count, tg_err_t *err)
{
    return st->ops->session_delete_customer(st, customer_id, count, err);
}

int tg_store_owner_session_insert(tg_store_t *st, const tg_session_t *s, tg_err_t *err)
{
    return st->ops->owner_session_insert(st, s, err);
}

int tg_store_owner_session_get(tg_store_t *st, const uint8_t token_hash[32], tg_session_t *out, tg_err_t *err)
{
    return st->ops->owner_session_get(st, token_hash, out, err);
}

int tg_store_owner_session_delete(tg_store_t *st, const uint8_t token_hash[32], tg_err_t *err)
{
    return st->ops->owner_session_delete(st, token_hash, err);
}

int tg_store_trial_used(tg_store_t *st, const char *email_norm, const char *address, int64_t address_since,
                        int *by_email, int *by_address, tg_err_t *err)
{
    return st->ops->trial_used(st, email_norm, address, address_since, by_email, by_address, err);
}

int tg_store_trial_record(tg_store_t *st, const char *email_norm, const char *address, const char *customer_id,
                          int64_t at, tg_err_t *err)
{
    return st->ops->trial_record(st, email_norm, address, customer_id, at, err);
}

int tg_store_plan_change_add(tg_store_t *st, const char *customer_id, const char *from_plan, const char *to_plan,
                             const char *kind, int64_t at, tg_err_t *err)
{
    return st->ops->plan_change_add(st, customer_id, from_plan, to_plan, kind, at, err);
}

int tg_store_plan_change_count(tg_store_t *st, const char *kind, int64_t since, int64_t until, uint64_t *count,
                               tg_err_t *err)
{
    return st->ops->plan_change_count(st, kind, since, until, count, err);
}

int tg_store_invoice_item_add(tg_store_t *st, const tg_invoice_item_t *item, tg_err_t *err)
{
    return st->ops->invoice_item_add(st, item, err);
}

int tg_store_invoice_create(tg_store_t *st, tg_invoice_t *draft, tg_invoice_build_cb build, void *arg, int *created,
                            tg_invoice_t *out, tg_err_t *err)
{
    return st->ops->invoice_create(st, draft, build, arg, created, out, err);
}

int tg_store_invoice_close_batch(tg_store_t *st, tg_invoice_close_t *e, size_t n, tg_invoice_build_cb build,
                                 tg_err_t *err)
{
    for (size_t i = 0; i < n; i++) {
        e[i].rc = 0;
        e[i].created = 0;
        e[i].err.code = 0;
        e[i].err.msg[0] = '\0';
    }
    return n == 0 ? 0 : st->ops->invoice_close_batch(st, e, n, build, err);
}

int tg_store_invoice_preview(tg_store_t *st, tg_invoice_t *draft, tg_invoice_build_cb build, void *arg, tg_err_t *err)
{
    return st->ops->invoice_preview(st, draft, build, arg, err);
}

int tg_store_invoice_get(tg_store_t *st, const char *id, tg_invoice_t *out, tg_err_t *err)
{
    return st->ops->invoice_get(st, id, out, err);
}

int tg_store_tx_begin(tg_store_t *st, tg_err_t *err)
{
    return st->ops->tx_begin(st, err);
}

int tg_store_tx_commit(tg_store_t *st, tg_err_t *err)
{
    return st->ops->tx_commit(st, err);
}

void tg_store_tx_rollback(tg_store_t *st)
{
    st->ops->tx_rollback(st);
}

void tg_store_let_writers_in(tg_store_t *st)
{
    if (st->ops->let_writers_in != NULL)
        st->ops->let_writers_in(st);
}

int tg_store_writers_waiting(tg_store_t *st)
{
    return st->ops->writers_waiting != NULL ? st->ops->writers_waiting(st) : 0;
}

int tg_store_savepoint(tg_store_t *st, const char *name, tg_err_t *err)
{
    return st->ops->savepoint(st, name, err);
}

int tg_store_savepoint_release(tg_store_t *st, const char *name, tg_err_t *err)
{
    return st->ops->savepoint_release(st, name, err);
}

void tg_store_savepoint_rollback(tg_store_t *st, const char *name)
{
    st->ops->savepoint_rollback(st, name);
}

int tg_store_invoice_list(tg_store_t *st, const char *customer_id, tg_invoice_cb cb, void *arg, tg_err_t *err)
{
    return st->ops->invoice_list(st, customer_id, cb, arg, err);
}

int tg_store_invoice_totals(tg_store_t *st, int64_t from, int64_t to, tg_invoice_totals_cb cb, void *arg, tg_err_t *err)
{
    return st->ops->invoice_totals(st, from, to, cb, arg, err);
}

int tg_store_invoice_page(tg_store_t *st, const char *customer_id, const tg_page_t *page, tg_invoice_cb cb, void *arg,
                          tg_page_end_t *end, tg_err_t *err)
{
    return st->ops->invoice_page(st, customer_id, page, cb, arg, end, err);
}

int tg_store_invoice_transition(tg_store_t *st, const char *id, const char *to, int64_t at, tg_err_t *err)
{
    return st->ops->invoice_transition(st, id, to, at, err);
}

int tg_store_invoice_draft_refresh(tg_store_t *st, const char *id, tg_invoice_build_cb build, void *arg, int *changed,
                                   tg_err_t *err)
{
    return st->ops->invoice_draft_refresh(st, id, build, arg, changed, err);
}

int tg_store_invoice_hold(tg_store_t *st, const char *id, int held, tg_err_t *err)
{
    return st->ops->invoice_hold(st, id, held, err);
}

int tg_store_invoice_drafts_due(tg_store_t *st, int64_t created_before, char (*ids)[TG_ID_MAX], size_t limit, size_t *n,
                                tg_err_t *err)
{
    return st->ops->invoice_drafts_due(st, created_before, ids, limit, n, err);
}

int tg_store_outbox_insert(tg_store_t *st, const tg_outbox_row_t *row, const char *params, size_t params_len,
                           int64_t now_ms, int64_t *id, tg_err_t *err)
{
    return st->ops->outbox_insert(st, row, params, params_len, now_ms, id, err);
}

int tg_store_outbox_due(tg_store_t *st, int64_t now_ms, tg_outbox_row_t *out, size_t limit, size_t *n, tg_err_t *err)
{
    return st->ops->outbox_due(st, now_ms, out, limit, n, err);
}

int tg_store_outbox_next_due(tg_store_t *st, int64_t *at_ms, uint64_t *pending, tg_err_t *err)
{
    return st->ops->outbox_next_due(st, at_ms, pending, err);
}

int tg_store_outbox_done(tg_store_t *st, int64_t id, const char *response_id, int map_stripe_customer, int64_t now,
                         tg_err_t *err)
{
    return st->ops->outbox_done(st, id, response_id, map_stripe_customer, now, err);
}

int tg_store_outbox_retry(tg_store_t *st, int64_t id, int64_t next_attempt_at_ms, const char *last_error, int64_t now,
                          tg_err_t *err)
{
    return st->ops->outbox_retry(st, id, next_attempt_at_ms, last_error, now, err);
}

int tg_store_outbox_fail(tg_store_t *st, int64_t id, const char *last_error, int64_t now, tg_err_t *err)
{
    return st->ops->outbox_fail(st, id, last_error, now, err);
}

int tg_store_outbox_defer(tg_store_t *st, int64_t id, int64_t next_attempt_at_ms, const char *why, int64_t now,
                          tg_err_t *err)
{
    return st->ops->outbox_defer(st, id, next_attempt_at_ms, why, now, err);
}

int tg_store_outbox_requeue(tg_store_t *st, int64_t id, int64_t now_ms, tg_err_t *err)
{
    return st->ops->outbox_requeue(st, id, now_ms, err);
}

int tg_store_outbox_get(tg_store_t *st, int64_t id, tg_outbox_row_t *out, tg_err_t *err)
{
    return st->ops->outbox_get(st, id, out, err);
}

int tg_store_outbox_get_by_key(tg_store_t *st, const char *idempotency_key, tg_outbox_row_t *out, tg_err_t *err)
{
    return st->ops->outbox_get_by_key(st, idempotency_key, out, err);
}

int tg_store_outbox_customers_missing(tg_store_t *st, const char *kind, tg_customer_t *out, size_t limit, size_t *n,
                                      tg_err_t *err)
{
    return st->ops->outbox_customers_missing(st, kind, out, limit, n, err);
}

int tg_store_outbox_prune(tg_store_t *st, int64_t before_s, size_t limit, size_t *deleted, tg_err_t *err)
{
    return st->ops->outbox_prune(st, before_s, limit, deleted, err);
}

int tg_store_outbox_pull_in(tg_store_t *st, int64_t latest_ms, int64_t now_ms, uint64_t *moved, tg_err_t *err)
{
    return st->ops->outbox_pull_in(st, latest_ms, now_ms, moved, err);
}

int tg_store_stripe_customer_get(tg_store_t *st, const char *customer_id, char *stripe_id, size_t cap, tg_err_t *err)
{
    return st->ops->stripe_customer_get(st, customer_id, stripe_id, cap, err);
}

int tg_store_stripe_customer_owner(tg_store_t *st, const char *stripe_id, char customer_id[TG_ID_MAX], tg_err_t *err)
{
    return st->ops->stripe_customer_owner(st, stripe_id, customer_id, err);
}

int tg_store_outbox_customer_latest(tg_store_t *st, const char *customer_id, tg_outbox_row_t *out, tg_err_t *err)
{
    return st->ops->outbox_customer_latest(st, customer_id, out, err);
}

int tg_store_outbox_earlier_pending(tg_store_t *st, const char *customer_id, int64_t id, int64_t *earlier_id,
                                    int64_t *next_ms, tg_err_t *err)
{
    return st->ops->outbox_earlier_pending(st, customer_id, id, earlier_id, next_ms, err);
}

int tg_store_outbox_customer_latest_of(tg_store_t *st, const char *customer_id, const char *kind, tg_outbox_row_t *out,
                                       tg_err_t *err)
{
    return st->ops->outbox_customer_latest_of(st, customer_id, kind, out, err);
}

int tg_store_outbox_page(tg_store_t *st, const char *state, const tg_page_t *page, tg_outbox_row_cb cb, void *arg,
                         tg_page_end_t *end, tg_err_t *err)
{
    return st->ops->outbox_page(st, state, page, cb, arg, end, err);
}

int tg_store_outbox_counts(tg_store_t *st, tg_outbox_counts_t *out, tg_err_t *err)
{
    return st->ops->outbox_counts(st, out, err);
}

int tg_store_stripe_event_insert(tg_store_t *st, const tg_stripe_event_row_t *e, int *inserted, tg_err_t *err)
{
    return st->ops->stripe_event_insert(st, e, inserted, err);
}

int tg_store_stripe_event_next(tg_store_t *st, tg_stripe_event_row_t *out, int *found, tg_err_t *err)
{
    return st->ops->stripe_event_next(st, out, found, err);
}

int tg_store_stripe_event_mark(tg_store_t *st, const char *id, int64_t processed_at, const char *customer_id,
                               const char *outcome, const char *error, tg_err_t *err)
{
    return st->ops->stripe_event_mark(st, id, processed_at, customer_id, outcome, error, err);
}

int tg_store_stripe_event_get(tg_store_t *st, const char *id, tg_stripe_event_row_t *out, tg_err_t *err)
{
    return st->ops->stripe_event_get(st, id, out, err);
}

int tg_store_stripe_event_count(tg_store_t *st, uint64_t *count, tg_err_t *err)
{
    return st->ops->stripe_event_count(st, count, err);
}

int tg_store_stripe_invoice_get(tg_store_t *st, const char *invoice_id, tg_stripe_invoice_state_t *out, int *found,
                                tg_err_t *err)
{
    return st->ops->stripe_invoice_get(st, invoice_id, out, found, err);
}

int tg_store_stripe_invoice_put(tg_store_t *st, const tg_stripe_invoice_state_t *s, tg_err_t *err)
{
    return st->ops->stripe_invoice_put(st, s, err);
}

int tg_store_stripe_debt(tg_store_t *st, const char *customer_id, tg_stripe_debt_t *out, tg_err_t *err)
{
    return st->ops->stripe_debt(st, customer_id, out, err);
}

int tg_store_dunning_get(tg_store_t *st, const char *customer_id, tg_dunning_row_t *out, int *found, tg_err_t *err)
{
    return st->ops->dunning_get(st, customer_id, out, found, err);
}

int tg_store_dunning_put(tg_store_t *st, const tg_dunning_row_t *d, tg_err_t *err)
{
    return st->ops->dunning_put(st, d, err);
}

int tg_store_dunning_clear(tg_store_t *st, const char *customer_id, tg_err_t *err)
{
    return st->ops->dunning_clear(st, customer_id, err);
}

int tg_store_dunning_list(tg_store_t *st, tg_dunning_cb cb, void *arg, tg_err_t *err)
{
    return st->ops->dunning_list(st, cb, arg, err);
}

int tg_store_status_history_add(tg_store_t *st, const char *customer_id, const char *from, const char *to,
                                const char *reason, const char *source, int64_t at, tg_err_t *err)
{
    return st->ops->status_history_add(st, customer_id, from, to, reason, source, at, err);
}

int tg_store_status_history_list(tg_store_t *st, const char *customer_id, tg_status_change_cb cb, void *arg,
                                 tg_err_t *err)
{
    return st->ops->status_history_list(st, customer_id, cb, arg, err);
}

int tg_store_payment_method_put(tg_store_t *st, const char *customer_id, int64_t on_file_at, const char *session_id,
                                const char *event_id, int *inserted, tg_err_t *err)
{
    return st->ops->payment_method_put(st, customer_id, on_file_at, session_id, event_id, inserted, err);
}

int tg_store_payment_method_get(tg_store_t *st, const char *customer_id, int64_t *on_file_at, tg_err_t *err)
{
    return st->ops->payment_method_get(st, customer_id, on_file_at, err);
}

int tg_store_stripe_subscription_map(tg_store_t *st, const char *customer_id, const char *subscription_id,
                                     int64_t now_s, tg_err_t *err)
{
    return st->ops->stripe_subscription_map(st, customer_id, subscription_id, now_s, err);
}

int tg_store_stripe_subscription_get(tg_store_t *st, const char *subscription_id, tg_stripe_subscription_t *out,
                                     int *found, tg_err_t *err)
{
    return st->ops->stripe_subscription_get(st, subscription_id, out, found, err);
}

int tg_store_stripe_subscription_latest(tg_store_t *st, const char *customer_id, tg_stripe_subscription_t *out,
                                        int *found, tg_err_t *err)
{
    return st->ops->stripe_subscription_latest(st, customer_id, out, found, err);
}

int tg_store_customers_without_subscription(tg_store_t *st, const char *kind, int64_t after_created,
                                            const char *after_id, char (*ids)[TG_ID_MAX], int64_t *created,
                                            size_t limit, size_t *n, tg_err_t *err)
{
    return st->ops->customers_without_subscription(st, kind, after_created, after_id, ids, created, limit, n, err);
}

int tg_store_stripe_subscription_put(tg_store_t *st, const tg_stripe_subscription_t *s, tg_err_t *err)
{
    return st->ops->stripe_subscription_put(st, s, err);
}

int tg_store_meter_export_set(tg_store_t *st, int on, int64_t since, tg_err_t *err)
{
    return st->ops->meter_export_set(st, on, since, err);
}

int tg_store_meter_due(tg_store_t *st, int64_t hour_before, const tg_meter_cursor_t *cursor, tg_meter_bucket_t *out,
                       size_t limit, size_t *n, tg_err_t *err)
{
    return st->ops->meter_due(st, hour_before, cursor, out, limit, n, err);
}

int tg_store_meter_mark(tg_store_t *st, const tg_meter_bucket_t *b, uint64_t exported, tg_err_t *err)
{
    return st->ops->meter_mark(st, b, exported, err);
}

int tg_store_meter_set_seq(tg_store_t *st, const char *customer_id, const char *metric, int64_t ts, int64_t seq,
                           tg_err_t *err)
{
    return st->ops->meter_set_seq(st, customer_id, metric, ts, seq, err);
}

int tg_store_meter_period_exported(tg_store_t *st, const char *customer_id, int64_t period_start, const char *plan_id,
                                   const char *metric, uint64_t *units, tg_err_t *err)
{
    return st->ops->meter_period_exported(st, customer_id, period_start, plan_id, metric, units, err);
}

int tg_store_meter_prune(tg_store_t *st, int64_t before_s, size_t limit, size_t *deleted, tg_err_t *err)
{
    return st->ops->meter_prune(st, before_s, limit, deleted, err);
}

int tg_store_meter_customer_backlog(tg_store_t *st, const char *customer_id, uint64_t *hours, uint64_t *units,
                                    tg_err_t *err)
{
    return st->ops->meter_customer_backlog(st, customer_id, hours, units, err);
}

int tg_store_meter_refused(tg_store_t *st, tg_meter_refused_t *out, size_t limit, size_t *n, tg_err_t *err)
{
    return st->ops->meter_refused(st, out, limit, n, err);
}

int tg_store_meter_take_back(tg_store_t *st, int64_t outbox_id, const char *customer_id, const char *metric, int64_t ts,
                             uint64_t units, int64_t now, tg_err_t *err)
{
    return st->ops->meter_take_back(st, outbox_id, customer_id, metric, ts, units, now, err);
}

int tg_store_meter_outbox_counts(tg_store_t *st, const char *customer_id, uint64_t *pending, uint64_t *failed,
                                 tg_err_t *err)
{
    return st->ops->meter_outbox_counts(st, customer_id, pending, failed, err);
}

int tg_store_changes_listen(tg_store_t *st, tg_err_t *err)
{
    return st->ops->changes_listen(st, err);
}

int tg_store_changes_wait(tg_store_t *st, int timeout_ms, tg_change_cb cb, void *arg, size_t *count, tg_err_t *err)
{
    return st->ops->changes_wait(st, timeout_ms, cb, arg, count, err);
}

int tg_store_leader_try(tg_store_t *st, int *leader, tg_err_t *err)
{
    return st->ops->leader_try(st, leader, err);
}

/* ---- store_notify.h (issue 13, part A) ---- */

int tg_store_event_insert(tg_store_t *st, const tg_event_row_t *e, const char *dedupe_key, tg_err_t *err)
{
    return st->ops->event_insert(st, e, dedupe_key, err);
}

int tg_store_event_get(tg_store_t *st, const char *id, tg_event_row_t *out, tg_err_t *err)
{
    return st->ops->event_get(st, id, out, err);
}

int tg_store_event_page(tg_store_t *st, const char *customer_id, const tg_page_t *page, tg_event_row_cb cb, void *arg, tg_page_end_t *end, tg_err_t *err)
{
    return st->ops->event_page(st, customer_id, page, cb, arg, end, err);
}

int tg_store_webhook_endpoint_insert(tg_store_t *st, const tg_webhook_endpoint_t *e, tg_err_t *err)
{
    return st->ops->webhook_endpoint_insert(st, e, err);
}

int tg_store_webhook_endpoint_get(tg_store_t *st, const char *id, tg_webhook_endpoint_t *out, tg_err_t *err)
{
    return st->ops->webhook_endpoint_get(st, id, out, err);
}

int tg_store_webhook_endpoint_update(tg_store_t *st, const tg_webhook_endpoint_t *e, tg_err_t *err)
{
    return st->ops->webhook_endpoint_update(st, e, err);
}

int tg_store_webhook_endpoint_delete(tg_store_t *st, const char *id, tg_err_t *err)
{
    return st->ops->webhook_endpoint_delete(st, id, err);
}

int tg_store_webhook_endpoint_list(tg_store_t *st, const char *customer_id, tg_webhook_endpoint_cb cb, void *arg, tg_err_t *err)
{
    return st->ops->webhook_endpoint_list(st, customer_id, cb, arg, err);
}

int tg_store_webhook_delivery_insert(tg_store_t *st, const tg_webhook_delivery_t *d, tg_err_t *err)
{
    return st->ops->webhook_delivery_insert(st, d, err);
}

int tg_store_webhook_delivery_get(tg_store_t *st, const char *id, tg_webhook_delivery_t *out, tg_err_t *err)
{
    return st->ops->webhook_delivery_get(st, id, out, err);
}

/* A claim is one UPDATE ... RETURNING, and neither backend returns its rows in the order the
 * statement chose them (PostgreSQL in the order it met them in the table, where an updated row
 * has moved to the end): a claimer sends what it took in the order it was queued. */
static int by_delivery_seq(const void *a, const void *b)
{
    const tg_webhook_delivery_t *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int tg_store_webhook_delivery_claim(tg_store_t *st, int64_t now_ms, int64_t lease_ms, tg_webhook_delivery_t *out, size_t limit, size_t *n, tg_err_t *err)
{
    int rc = st->ops->webhook_delivery_claim(st, now_ms, lease_ms, out, limit, n, err);
    if (rc == 0)
        qsort(out, *n, sizeof(*out), by_delivery_seq);
    return rc;
}

int tg_store_webhook_delivery_next_due(tg_store_t *st, int64_t *at_ms, tg_err_t *err)
{
    return st->ops->webhook_delivery_next_due(st, at_ms, err);
}

int tg_store_webhook_delivery_update(tg_store_t *st, const tg_webhook_delivery_t *d, const tg_webhook_attempt_t *a, tg_err_t *err)
{
    return st->ops->webhook_delivery_update(st, d, a, err);
}

int tg_store_webhook_delivery_page(tg_store_t *st, const char *endpoint_id, const char *customer_id, const tg_page_t *page, tg_webhook_delivery_cb cb, void *arg, tg_page_end_t *end, tg_err_t *err)
{
    return st->ops->webhook_delivery_page(st, endpoint_id, customer_id, page, cb, arg, end, err);
}

int tg_store_webhook_attempt_list(tg_store_t *st, const char *delivery_id, size_t limit, tg_webhook_attempt_cb cb, void *arg, tg_err_t *err)
{
    return st->ops->webhook_attempt_list(st, delivery_id, limit, cb, arg, err);
}

int tg_store_notification_settings_get(tg_store_t *st, const char *customer_id, char *email_events, size_t cap, tg_err_t *err)
{
    return st->ops->notification_settings_get(st, customer_id, email_events, cap, err);
}

int tg_store_notification_settings_put(tg_store_t *st, const char *customer_id, const char *email_events, int64_t now, tg_err_t *err)
{
    return st->ops->notification_settings_put(st, customer_id, email_events, now, err);
}

void tg_event_row_clear(tg_event_row_t *e)
{
    if (e == NULL)
        return;
    free(e->data);
    e->data = NULL;
}

/* ---- store_mail.h (issue 13 part B) ---- */

void tg_mail_row_clear(tg_mail_row_t *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

int tg_store_mail_insert(tg_store_t *st, const tg_mail_row_t *row, int64_t now_ms, int64_t *id, tg_err_t *err)
{
    return st->ops->mail_insert(st, row, now_ms, id, err);
}

static int by_mail_id(const void *a, const void *b)
{
    const tg_mail_row_t *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* In queue order, as the webhook deliveries above: a sign-up's confirmation before the reset
 * link asked for a moment later. */
int tg_store_mail_claim(tg_store_t *st, int64_t now_ms, int64_t lease_until_ms, tg_mail_row_t *out, size_t limit, size_t *n, tg_err_t *err)
{
    int rc = st->ops->mail_claim(st, now_ms, lease_until_ms, out, limit, n, err);
    if (rc == 0)
        qsort(out, *n, sizeof(*out), by_mail_id);
    return rc;
}

int tg_store_mail_next_due(tg_store_t *st, int64_t *at_ms, tg_err_t *err)
{
    return st->ops->mail_next_due(st, at_ms, err);
}

int tg_store_mail_record(tg_store_t *st, int64_t id, const char *outcome, int64_t next_attempt_at_ms, int64_t smtp_code, const char *error, int64_t now_ms, tg_err_t *err)
{
    return st->ops->mail_record(st, id, outcome, next_attempt_at_ms, smtp_code, error, now_ms, err);
}

int tg_store_mail_requeue(tg_store_t *st, int64_t id, int64_t now_ms, tg_err_t *err)
{
    return st->ops->mail_requeue(st, id, now_ms, err);
}

int tg_store_mail_get(tg_store_t *st, int64_t id, tg_mail_row_t *out, tg_err_t *err)
{
    return st->ops->mail_get(st, id, out, err);
}

int tg_store_mail_page(tg_store_t *st, const char *state, const tg_page_t *page, tg_mail_row_cb cb, void *arg, tg_page_end_t *end, tg_err_t *err)
{
    return st->ops->mail_page(st, state, page, cb, arg, end, err);
}

int tg_store_mail_attempts(tg_store_t *st, int64_t mail_id, tg_mail_attempt_t *out, size_t limit, size_t *n, tg_err_t *err)
{
    return st->ops->mail_attempts(st, mail_id, out, limit, n, err);
}

int tg_store_email_token_insert(tg_store_t *st, const uint8_t hash[32], const char *customer_id, const char *purpose, int64_t now, int64_t expires_at, tg_err_t *err)
{
    return st->ops->email_token_insert(st, hash, customer_id, purpose, now, expires_at, err);
}

int tg_store_email_token_use(tg_store_t *st, const uint8_t hash[32], const char *purpose, int64_t now, char customer_id[TG_ID_MAX], tg_err_t *err)
{
    return st->ops->email_token_use(st, hash, purpose, now, customer_id, err);
}

int tg_store_email_token_revoke(tg_store_t *st, const char *customer_id, const char *purpose, int64_t now, tg_err_t *err)
{
    return st->ops->email_token_revoke(st, customer_id, purpose, now, err);
}

int tg_store_customer_confirm_email(tg_store_t *st, const char *customer_id, int64_t at, tg_err_t *err)
{
    return st->ops->customer_confirm_email(st, customer_id, at, err);
}

/* ---- part C (issue 13): store_thresholds.h ---- */

int tg_store_mark_insert(tg_store_t *st, const tg_mark_t *m, int *inserted, tg_err_t *err)
{
    return st->ops->mark_insert(st, m, inserted, err);
}

int tg_store_marks_list(tg_store_t *st, const char *customer_id, size_t limit, tg_mark_cb cb, void *arg, tg_err_t *err)
{
    return st->ops->marks_list(st, customer_id, limit, cb, arg, err);
}

int tg_store_budget_set(tg_store_t *st, const char *customer_id, int64_t amount, int64_t now_s, tg_err_t *err)
{
    return st->ops->budget_set(st, customer_id, amount, now_s, err);
}

int tg_store_budget_get(tg_store_t *st, const char *customer_id, int64_t *amount, tg_err_t *err)
{
    return st->ops->budget_get(st, customer_id, amount, err);
}

int tg_store_budgets_list(tg_store_t *st, const char *after_id, size_t limit, tg_budget_cb cb, void *arg, tg_err_t *err)
{
    return st->ops->budgets_list(st, after_id, limit, cb, arg, err);
}

int tg_store_trials_ending(tg_store_t *st, int64_t after, int64_t until, size_t limit, tg_trial_cb cb, void *arg, tg_err_t *err)
{
    return st->ops->trials_ending(st, after, until, limit, cb, arg, err);
}

/* ---- store_retention.h ---- */

int tg_store_notify_prune(tg_store_t *st, tg_notify_table_t what, int64_t cutoff_s, size_t limit, size_t *deleted,
                          size_t *attempts, tg_err_t *err)
{
    return st->ops->notify_prune(st, what, cutoff_s, limit, deleted, attempts, err);
}

int tg_store_usage_batches_prune(tg_store_t *st, const char *node, uint64_t below_id, int64_t committed_before_s,
                                 size_t limit, size_t *deleted, tg_err_t *err)
{
    return st->ops->usage_batches_prune(st, node, below_id, committed_before_s, limit, deleted, err);
}

int tg_store_node_drained(tg_store_t *st, const char *node, int64_t drained_at, tg_err_t *err)
{
    return st->ops->node_drained(st, node, drained_at, err);
}

int tg_store_drained_nodes(tg_store_t *st, int64_t before_s, tg_drained_node_t *out, size_t max, size_t *n,
                           tg_err_t *err)
{
    *n = 0;
    if (max == 0 || max > 1000)
        return tg_errf(err, TG_EINVAL, "listing drained nodes: %zu at a time (1 to 1000)", max);
    return st->ops->drained_nodes(st, before_s, out, max, n, err);
}

int tg_store_drained_node_forget(tg_store_t *st, const char *node, int64_t drained_at, tg_err_t *err)
{
    return st->ops->drained_node_forget(st, node, drained_at, err);
}

int tg_store_notify_pending(tg_store_t *st, tg_notify_table_t what, int64_t *n, tg_err_t *err)
{
    return st->ops->notify_pending(st, what, n, err);
}
/* ---- store_audit.h (issue 14) ---- */

int tg_store_audit_append(tg_store_t *st, const tg_audit_row_t *r, int64_t *id, tg_err_t *err)
{
    return st->ops->audit_append(st, r, id, err);
}

int tg_store_audit_page(tg_store_t *st, const tg_audit_filter_t *f, const tg_page_t *page, tg_audit_row_cb cb,
                        void *arg, tg_page_end_t *end, tg_err_t *err)
{
    return st->ops->audit_page(st, f, page, cb, arg, end, err);
}

void tg_audit_row_clear(tg_audit_row_t *r)
{
    free(r->before_json);
    free(r->after_json);
    r->before_json = r->after_json = NULL;
}

static int audit_fits(const char *s, size_t cap)
{
    return s != NULL && strnlen(s, cap) < cap;
}

int tg_audit_row_fits(const tg_audit_row_t *r)
{
    return r->action[0] != '\0' && audit_fits(r->actor_kind, sizeof(r->actor_kind)) &&
           audit_fits(r->actor_id, sizeof(r->actor_id)) && audit_fits(r->source, sizeof(r->source)) &&
           audit_fits(r->request_id, sizeof(r->request_id)) && audit_fits(r->action, sizeof(r->action)) &&
           audit_fits(r->target_type, sizeof(r->target_type)) && audit_fits(r->target_id, sizeof(r->target_id)) &&
           (r->before_json == NULL || strnlen(r->before_json, TG_AUDIT_JSON_MAX + 1) <= TG_AUDIT_JSON_MAX) &&
           (r->after_json == NULL || strnlen(r->after_json, TG_AUDIT_JSON_MAX + 1) <= TG_AUDIT_JSON_MAX);
}


/* ---- issue 16: store_ingest.h ---- */

int tg_store_ingest_token_insert(tg_store_t *st, const tg_ingest_token_row_t *t, tg_err_t *err)
{
    return st->ops->ingest_token_insert(st, t, err);
}

int tg_store_ingest_token_get(tg_store_t *st, const char *id, tg_ingest_token_row_t *out, tg_err_t *err)
{
    return st->ops->ingest_token_get(st, id, out, err);
}

int tg_store_ingest_token_set_revoked(tg_store_t *st, const char *id, int64_t revoked_at, tg_err_t *err)
{
    return st->ops->ingest_token_set_revoked(st, id, revoked_at, err);
}

int tg_store_ingest_token_page(tg_store_t *st, const tg_page_t *page, tg_ingest_token_cb cb, void *arg,
                               tg_page_end_t *end, tg_err_t *err)
{
    return st->ops->ingest_token_page(st, page, cb, arg, end, err);
}

int tg_store_ingest_token_list_active(tg_store_t *st, tg_ingest_token_cb cb, void *arg, tg_err_t *err)
{
    return st->ops->ingest_token_list_active(st, cb, arg, err);
}

int tg_store_event_key_blake2b_until(tg_store_t *st, int64_t *until_s, tg_err_t *err)
{
    return st->ops->event_key_blake2b_until(st, until_s, err);
}
