/* store_ops.h - what a storage backend implements: one function per store call.
 *
 * tg_store_open picks a backend by the URL's scheme and the backend's open function returns a
 * connection whose first member is a tg_store_t pointing at its operations table; every
 * tg_store_* call (store.h, store_audit.h, store_outbox.h, store_payments.h, store_meter.h, store_cluster.h, store_notify.h) is a one-line
 * dispatch through it (store.c). Each member has the signature and the contract of the
 * tg_store_* function of the same name, documented in those headers. Not for use outside
 * src/store: callers go through the tg_store_* functions. */
#ifndef TG_STORE_OPS_H
#define TG_STORE_OPS_H

#include "store/store.h"
#include "store/store_audit.h"
#include "store/store_cluster.h"
#include "store/store_ingest.h"
#include "store/store_mail.h"
#include "store/store_meter.h"
#include "store/store_notify.h"
#include "store/store_retention.h"
#include "store/store_outbox.h"
#include "store/store_payments.h"
#include "store/store_thresholds.h"

typedef struct tg_store_ops {
    const char *name; /* "sqlite", "postgresql": for messages */
    /* store.h */
    void (*close)(tg_store_t *st);
    int (*migrate)(tg_store_t *st, tg_err_t *err);
    int (*schema_version)(tg_store_t *st, int *version, tg_err_t *err);
    int (*backup_to)(tg_store_t *st, const char *dest_path, tg_err_t *err);
    int (*restore_from)(tg_store_t *st, const char *src_path, tg_err_t *err);
    int (*customer_insert)(tg_store_t *st, const tg_customer_t *c, tg_err_t *err);
    int (*customer_get)(tg_store_t *st, const char *id, tg_customer_t *out, tg_err_t *err);
    int (*customer_update)(tg_store_t *st, const tg_customer_t *c, tg_err_t *err);
    int (*customer_list)(tg_store_t *st, tg_customer_cb cb, void *arg, tg_err_t *err);
    int (*key_insert)(tg_store_t *st, const tg_key_t *k, tg_err_t *err);
    int (*key_get)(tg_store_t *st, const char *id, tg_key_t *out, tg_err_t *err);
    int (*key_list)(tg_store_t *st, const char *customer_id, tg_key_cb cb, void *arg, tg_err_t *err);
    int (*key_set_revoked)(tg_store_t *st, const char *id, int64_t revoked_at, tg_err_t *err);
    int (*key_set_expires)(tg_store_t *st, const char *id, int64_t expires_at, tg_err_t *err);
    int (*key_touch)(tg_store_t *st, const char *id, int64_t last_used_at, tg_err_t *err);
    int (*usage_record)(tg_store_t *st, uint64_t batch_id, const tg_usage_t *rows, size_t n, size_t *inserted,
                        tg_err_t *err);
    int (*usage_record_many)(tg_store_t *st, const tg_usage_batch_t *batches, size_t nb, tg_usage_stored_t *out,
                             tg_err_t *err);
    int (*usage_event_ids_prune)(tg_store_t *st, int64_t before_s, size_t limit, size_t *deleted, tg_err_t *err);
    int (*usage_event_ids_each)(tg_store_t *st, int64_t since_s, tg_usage_event_id_cb cb, void *arg, tg_err_t *err);
    int (*usage_event_id_blocks_last)(tg_store_t *st, int64_t *last, tg_err_t *err);
    int (*usage_event_id_blocks_after)(tg_store_t *st, int64_t after_id, int64_t since_s, tg_usage_event_id_cb cb,
                                       void *arg, tg_err_t *err);
    int (*usage_fold)(tg_store_t *st, int force, tg_err_t *err);
    int (*usage_period)(tg_store_t *st, const char *customer_id, int64_t period_start, tg_usage_total_cb cb, void *arg,
                        tg_err_t *err);
    int (*usage_daily)(tg_store_t *st, const char *customer_id, int64_t from_s, int64_t to_s, tg_usage_day_cb cb,
                       void *arg, tg_err_t *err);
    int (*usage_endpoints)(tg_store_t *st, const char *customer_id, int64_t from_s, int64_t to_s,
                           tg_usage_endpoint_cb cb, void *arg, tg_err_t *err);
    int (*usage_load)(tg_store_t *st, int64_t since_s, tg_usage_load_cb cb, void *arg, tg_err_t *err);
    int (*usage_total)(tg_store_t *st, const char *metric, uint64_t *units, tg_err_t *err);
    int (*customer_page)(tg_store_t *st, const tg_page_t *page, tg_customer_cb cb, void *arg, tg_page_end_t *end,
                         tg_err_t *err);
    int (*customer_search)(tg_store_t *st, const tg_customer_query_t *q, const tg_page_t *page, tg_customer_cb cb,
                           void *arg, tg_page_end_t *end, tg_err_t *err);
    int (*invoice_search)(tg_store_t *st, const tg_invoice_query_t *q, const tg_page_t *page, tg_invoice_cb cb,
                          void *arg, tg_page_end_t *end, tg_err_t *err);
    int (*invoice_search_totals)(tg_store_t *st, const tg_invoice_query_t *q, tg_invoice_totals_cb cb, void *arg,
                                 tg_err_t *err);
    int (*key_page)(tg_store_t *st, const char *customer_id, const tg_page_t *page, tg_key_cb cb, void *arg,
                    tg_page_end_t *end, tg_err_t *err);
    int (*key_count_active)(tg_store_t *st, const char *customer_id, int64_t now, uint64_t *count, tg_err_t *err);
    int (*usage_rejected_list)(tg_store_t *st, const tg_page_t *page, tg_usage_rejected_cb cb, void *arg,
                               tg_page_end_t *end, tg_err_t *err);
    int (*usage_rejected_count)(tg_store_t *st, uint64_t *count, tg_err_t *err);
    int (*billing_failure_set)(tg_store_t *st, const char *customer_id, const char *type, const char *message,
                               int64_t at, tg_err_t *err);
    int (*billing_failure_clear)(tg_store_t *st, const char *customer_id, tg_err_t *err);
    int (*billing_failure_count)(tg_store_t *st, uint64_t *count, tg_err_t *err);
    int (*billing_failure_list)(tg_store_t *st, const tg_page_t *page, tg_billing_failure_cb cb, void *arg,
                                tg_page_end_t *end, tg_err_t *err);
    int (*customers_due)(tg_store_t *st, int64_t until, int64_t after_end, const char *after_id, size_t limit,
                         tg_customer_due_cb cb, void *arg, size_t *n, tg_err_t *err);
    int (*customer_set_next_period_end)(tg_store_t *st, const char *id, int64_t expected, int64_t next_end,
                                        tg_err_t *err);
    int (*customer_set_password)(tg_store_t *st, const char *id, const char *password_hash, tg_err_t *err);
    int (*customer_by_email)(tg_store_t *st, const char *email, tg_customer_t *out, char *password_hash, size_t cap,
                             tg_err_t *err);
    int (*session_insert)(tg_store_t *st, const tg_session_t *s, tg_err_t *err);
    int (*session_get)(tg_store_t *st, const uint8_t token_hash[32], tg_session_t *out, tg_err_t *err);
    int (*session_delete)(tg_store_t *st, const uint8_t token_hash[32], tg_err_t *err);
    int (*session_delete_customer)(tg_store_t *st, const char *customer_id, uint64_t *count, tg_err_t *err);
    int (*owner_session_insert)(tg_store_t *st, const tg_session_t *s, tg_err_t *err);
    int (*owner_session_get)(tg_store_t *st, const uint8_t token_hash[32], tg_session_t *out, tg_err_t *err);
    int (*owner_session_delete)(tg_store_t *st, const uint8_t token_hash[32], tg_err_t *err);
    int (*trial_used)(tg_store_t *st, const char *email_norm, const char *address, int64_t address_since, int *by_email,
                      int *by_address, tg_err_t *err);
    int (*trial_record)(tg_store_t *st, const char *email_norm, const char *address, const char *customer_id,
                        int64_t at, tg_err_t *err);
    int (*plan_change_add)(tg_store_t *st, const char *customer_id, const char *from_plan, const char *to_plan,
                           const char *kind, int64_t at, tg_err_t *err);
    int (*plan_change_count)(tg_store_t *st, const char *kind, int64_t since, int64_t until, uint64_t *count,
                             tg_err_t *err);
    int (*invoice_item_add)(tg_store_t *st, const tg_invoice_item_t *item, tg_err_t *err);
    int (*invoice_create)(tg_store_t *st, tg_invoice_t *draft, tg_invoice_build_cb build, void *arg, int *created,
                          tg_invoice_t *out, tg_err_t *err);
    int (*invoice_close_batch)(tg_store_t *st, tg_invoice_close_t *e, size_t n, tg_invoice_build_cb build,
                               tg_err_t *err);
    int (*invoice_preview)(tg_store_t *st, tg_invoice_t *draft, tg_invoice_build_cb build, void *arg, tg_err_t *err);
    int (*invoice_get)(tg_store_t *st, const char *id, tg_invoice_t *out, tg_err_t *err);
    int (*tx_begin)(tg_store_t *st, tg_err_t *err);
    int (*tx_commit)(tg_store_t *st, tg_err_t *err);
    void (*tx_rollback)(tg_store_t *st);
    void (*let_writers_in)(tg_store_t *st); /* NULL: nothing to do (tg_store_let_writers_in) */
    int (*writers_waiting)(tg_store_t *st);  /* NULL: none ever */
    int (*savepoint)(tg_store_t *st, const char *name, tg_err_t *err);
    int (*savepoint_release)(tg_store_t *st, const char *name, tg_err_t *err);
    void (*savepoint_rollback)(tg_store_t *st, const char *name);
    int (*invoice_list)(tg_store_t *st, const char *customer_id, tg_invoice_cb cb, void *arg, tg_err_t *err);
    int (*invoice_totals)(tg_store_t *st, int64_t from, int64_t to, tg_invoice_totals_cb cb, void *arg, tg_err_t *err);
    int (*invoice_page)(tg_store_t *st, const char *customer_id, const tg_page_t *page, tg_invoice_cb cb, void *arg,
                        tg_page_end_t *end, tg_err_t *err);
    int (*invoice_transition)(tg_store_t *st, const char *id, const char *to, int64_t at, tg_err_t *err);
    int (*invoice_draft_refresh)(tg_store_t *st, const char *id, tg_invoice_build_cb build, void *arg, int *changed,
                                 tg_err_t *err);
    int (*invoice_hold)(tg_store_t *st, const char *id, int held, tg_err_t *err);
    int (*invoice_drafts_due)(tg_store_t *st, int64_t created_before, char (*ids)[TG_ID_MAX], size_t limit, size_t *n,
                              tg_err_t *err);
    /* store_outbox.h */
    int (*outbox_insert)(tg_store_t *st, const tg_outbox_row_t *row, const char *params, size_t params_len,
                         int64_t now_ms, int64_t *id, tg_err_t *err);
    int (*outbox_due)(tg_store_t *st, int64_t now_ms, tg_outbox_row_t *out, size_t limit, size_t *n, tg_err_t *err);
    int (*outbox_next_due)(tg_store_t *st, int64_t *at_ms, uint64_t *pending, tg_err_t *err);
    int (*outbox_done)(tg_store_t *st, int64_t id, const char *response_id, int map_stripe_customer, int64_t now,
                       tg_err_t *err);
    int (*outbox_retry)(tg_store_t *st, int64_t id, int64_t next_attempt_at_ms, const char *last_error, int64_t now,
                        tg_err_t *err);
    int (*outbox_fail)(tg_store_t *st, int64_t id, const char *last_error, int64_t now, tg_err_t *err);
    int (*outbox_defer)(tg_store_t *st, int64_t id, int64_t next_attempt_at_ms, const char *why, int64_t now,
                        tg_err_t *err);
    int (*outbox_requeue)(tg_store_t *st, int64_t id, int64_t now_ms, tg_err_t *err);
    int (*outbox_get)(tg_store_t *st, int64_t id, tg_outbox_row_t *out, tg_err_t *err);
    int (*outbox_get_by_key)(tg_store_t *st, const char *idempotency_key, tg_outbox_row_t *out, tg_err_t *err);
    int (*outbox_customers_missing)(tg_store_t *st, const char *kind, tg_customer_t *out, size_t limit, size_t *n,
                                    tg_err_t *err);
    int (*outbox_prune)(tg_store_t *st, int64_t before_s, size_t limit, size_t *deleted, tg_err_t *err);
    int (*outbox_pull_in)(tg_store_t *st, int64_t latest_ms, int64_t now_ms, uint64_t *moved, tg_err_t *err);
    int (*stripe_customer_get)(tg_store_t *st, const char *customer_id, char *stripe_id, size_t cap, tg_err_t *err);
    int (*stripe_customer_owner)(tg_store_t *st, const char *stripe_id, char customer_id[TG_ID_MAX], tg_err_t *err);
    int (*outbox_customer_latest)(tg_store_t *st, const char *customer_id, tg_outbox_row_t *out, tg_err_t *err);
    int (*outbox_earlier_pending)(tg_store_t *st, const char *customer_id, int64_t id, int64_t *earlier_id,
                                  int64_t *next_ms, tg_err_t *err);
    int (*outbox_customer_latest_of)(tg_store_t *st, const char *customer_id, const char *kind, tg_outbox_row_t *out,
                                     tg_err_t *err);
    int (*outbox_page)(tg_store_t *st, const char *state, const tg_page_t *page, tg_outbox_row_cb cb, void *arg,
                       tg_page_end_t *end, tg_err_t *err);
    int (*outbox_counts)(tg_store_t *st, tg_outbox_counts_t *out, tg_err_t *err);
    /* store_payments.h */
    int (*stripe_event_insert)(tg_store_t *st, const tg_stripe_event_row_t *e, int *inserted, tg_err_t *err);
    int (*stripe_event_next)(tg_store_t *st, tg_stripe_event_row_t *out, int *found, tg_err_t *err);
    int (*stripe_event_mark)(tg_store_t *st, const char *id, int64_t processed_at, const char *customer_id,
                             const char *outcome, const char *error, tg_err_t *err);
    int (*stripe_event_get)(tg_store_t *st, const char *id, tg_stripe_event_row_t *out, tg_err_t *err);
    int (*stripe_event_count)(tg_store_t *st, uint64_t *count, tg_err_t *err);
    int (*stripe_invoice_get)(tg_store_t *st, const char *invoice_id, tg_stripe_invoice_state_t *out, int *found,
                              tg_err_t *err);
    int (*stripe_invoice_put)(tg_store_t *st, const tg_stripe_invoice_state_t *s, tg_err_t *err);
    int (*stripe_debt)(tg_store_t *st, const char *customer_id, tg_stripe_debt_t *out, tg_err_t *err);
    int (*dunning_get)(tg_store_t *st, const char *customer_id, tg_dunning_row_t *out, int *found, tg_err_t *err);
    int (*dunning_put)(tg_store_t *st, const tg_dunning_row_t *d, tg_err_t *err);
    int (*dunning_clear)(tg_store_t *st, const char *customer_id, tg_err_t *err);
    int (*dunning_list)(tg_store_t *st, tg_dunning_cb cb, void *arg, tg_err_t *err);
    int (*status_history_add)(tg_store_t *st, const char *customer_id, const char *from, const char *to,
                              const char *reason, const char *source, int64_t at, tg_err_t *err);
    int (*status_history_list)(tg_store_t *st, const char *customer_id, tg_status_change_cb cb, void *arg,
                               tg_err_t *err);
    int (*payment_method_put)(tg_store_t *st, const char *customer_id, int64_t on_file_at, const char *session_id,
                              const char *event_id, int *inserted, tg_err_t *err);
    int (*payment_method_get)(tg_store_t *st, const char *customer_id, int64_t *on_file_at, tg_err_t *err);
    int (*stripe_subscription_map)(tg_store_t *st, const char *customer_id, const char *subscription_id, int64_t now_s,
                                   tg_err_t *err);
    int (*stripe_subscription_get)(tg_store_t *st, const char *subscription_id, tg_stripe_subscription_t *out,
                                   int *found, tg_err_t *err);
    int (*stripe_subscription_latest)(tg_store_t *st, const char *customer_id, tg_stripe_subscription_t *out,
                                      int *found, tg_err_t *err);
    int (*customers_without_subscription)(tg_store_t *st, const char *kind, int64_t after_created, const char *after_id,
                                          char (*ids)[TG_ID_MAX], int64_t *created, size_t limit, size_t *n,
                                          tg_err_t *err);
    int (*stripe_subscription_put)(tg_store_t *st, const tg_stripe_subscription_t *s, tg_err_t *err);
    /* store_meter.h */
    int (*meter_export_set)(tg_store_t *st, int on, int64_t since, tg_err_t *err);
    int (*meter_due)(tg_store_t *st, int64_t hour_before, const tg_meter_cursor_t *cursor, tg_meter_bucket_t *out,
                     size_t limit, size_t *n, tg_err_t *err);
    int (*meter_mark)(tg_store_t *st, const tg_meter_bucket_t *b, uint64_t exported, tg_err_t *err);
    int (*meter_set_seq)(tg_store_t *st, const char *customer_id, const char *metric, int64_t ts, int64_t seq,
                         tg_err_t *err);
    int (*meter_period_exported)(tg_store_t *st, const char *customer_id, int64_t period_start, const char *plan_id,
                                 const char *metric, uint64_t *units, tg_err_t *err);
    int (*meter_prune)(tg_store_t *st, int64_t before_s, size_t limit, size_t *deleted, tg_err_t *err);
    int (*meter_customer_backlog)(tg_store_t *st, const char *customer_id, uint64_t *hours, uint64_t *units,
                                  tg_err_t *err);
    int (*meter_refused)(tg_store_t *st, tg_meter_refused_t *out, size_t limit, size_t *n, tg_err_t *err);
    int (*meter_take_back)(tg_store_t *st, int64_t outbox_id, const char *customer_id, const char *metric, int64_t ts,
                           uint64_t units, int64_t now, tg_err_t *err);
    int (*meter_outbox_counts)(tg_store_t *st, const char *customer_id, uint64_t *pending, uint64_t *failed,
                               tg_err_t *err);
    /* store_cluster.h */
    int (*changes_listen)(tg_store_t *st, tg_err_t *err);
    int (*changes_wait)(tg_store_t *st, int timeout_ms, tg_change_cb cb, void *arg, size_t *count, tg_err_t *err);
    int (*leader_try)(tg_store_t *st, int *leader, tg_err_t *err);
    /* part A (issue 13): store_notify.h */
    int (*event_insert)(tg_store_t *st, const tg_event_row_t *e, const char *dedupe_key, tg_err_t *err);
    int (*event_get)(tg_store_t *st, const char *id, tg_event_row_t *out, tg_err_t *err);
    int (*event_page)(tg_store_t *st, const char *customer_id, const tg_page_t *page, tg_event_row_cb cb, void *arg,
                      tg_page_end_t *end, tg_err_t *err);
    int (*webhook_endpoint_insert)(tg_store_t *st, const tg_webhook_endpoint_t *e, tg_err_t *err);
    int (*webhook_endpoint_get)(tg_store_t *st, const char *id, tg_webhook_endpoint_t *out, tg_err_t *err);
    int (*webhook_endpoint_update)(tg_store_t *st, const tg_webhook_endpoint_t *e, tg_err_t *err);
    int (*webhook_endpoint_delete)(tg_store_t *st, const char *id, tg_err_t *err);
    int (*webhook_endpoint_list)(tg_store_t *st, const char *customer_id, tg_webhook_endpoint_cb cb, void *arg,
                                 tg_err_t *err);
    int (*webhook_delivery_insert)(tg_store_t *st, const tg_webhook_delivery_t *d, tg_err_t *err);
    int (*webhook_delivery_get)(tg_store_t *st, const char *id, tg_webhook_delivery_t *out, tg_err_t *err);
    int (*webhook_delivery_claim)(tg_store_t *st, int64_t now_ms, int64_t lease_ms, tg_webhook_delivery_t *out,
                                  size_t limit, size_t *n, tg_err_t *err);
    int (*webhook_delivery_next_due)(tg_store_t *st, int64_t *at_ms, tg_err_t *err);
    int (*webhook_delivery_update)(tg_store_t *st, const tg_webhook_delivery_t *d, const tg_webhook_attempt_t *a,
                                   tg_err_t *err);
    int (*webhook_delivery_page)(tg_store_t *st, const char *endpoint_id, const char *customer_id,
                                 const tg_page_t *page, tg_webhook_delivery_cb cb, void *arg, tg_page_end_t *end,
                                 tg_err_t *err);
    int (*webhook_attempt_list)(tg_store_t *st, const char *delivery_id, size_t limit, tg_webhook_attempt_cb cb,
                                void *arg, tg_err_t *err);
    int (*notification_settings_get)(tg_store_t *st, const char *customer_id, char *email_events, size_t cap,
                                     tg_err_t *err);
    int (*notification_settings_put)(tg_store_t *st, const char *customer_id, const char *email_events, int64_t now,
                                     tg_err_t *err);
    /* store_mail.h (issue 13 part B: email) */
    int (*mail_insert)(tg_store_t *st, const tg_mail_row_t *row, int64_t now_ms, int64_t *id, tg_err_t *err);
    int (*mail_claim)(tg_store_t *st, int64_t now_ms, int64_t lease_until_ms, tg_mail_row_t *out, size_t limit, size_t *n, tg_err_t *err);
    int (*mail_next_due)(tg_store_t *st, int64_t *at_ms, tg_err_t *err);
    int (*mail_record)(tg_store_t *st, int64_t id, const char *outcome, int64_t next_attempt_at_ms, int64_t smtp_code, const char *error, int64_t now_ms, tg_err_t *err);
    int (*mail_requeue)(tg_store_t *st, int64_t id, int64_t now_ms, tg_err_t *err);
    int (*mail_get)(tg_store_t *st, int64_t id, tg_mail_row_t *out, tg_err_t *err);
    int (*mail_page)(tg_store_t *st, const char *state, const tg_page_t *page, tg_mail_row_cb cb, void *arg, tg_page_end_t *end, tg_err_t *err);
    int (*mail_attempts)(tg_store_t *st, int64_t mail_id, tg_mail_attempt_t *out, size_t limit, size_t *n, tg_err_t *err);
    int (*email_token_insert)(tg_store_t *st, const uint8_t hash[32], const char *customer_id, const char *purpose, int64_t now, int64_t expires_at, tg_err_t *err);
    int (*email_token_use)(tg_store_t *st, const uint8_t hash[32], const char *purpose, int64_t now, char customer_id[TG_ID_MAX], tg_err_t *err);
    int (*email_token_revoke)(tg_store_t *st, const char *customer_id, const char *purpose, int64_t now, tg_err_t *err);
    int (*customer_confirm_email)(tg_store_t *st, const char *customer_id, int64_t at, tg_err_t *err);
    /* part C (issue 13): store_thresholds.h */
    int (*mark_insert)(tg_store_t *st, const tg_mark_t *m, int *inserted, tg_err_t *err);
    int (*marks_list)(tg_store_t *st, const char *customer_id, size_t limit, tg_mark_cb cb, void *arg, tg_err_t *err);
    int (*budget_set)(tg_store_t *st, const char *customer_id, int64_t amount, int64_t now_s, tg_err_t *err);
    int (*budget_get)(tg_store_t *st, const char *customer_id, int64_t *amount, tg_err_t *err);
    int (*budgets_list)(tg_store_t *st, const char *after_id, size_t limit, tg_budget_cb cb, void *arg, tg_err_t *err);
    int (*trials_ending)(tg_store_t *st, int64_t after, int64_t until, size_t limit, tg_trial_cb cb, void *arg, tg_err_t *err);
    /* store_retention.h (issue 13: pruning and queue sizes) */
    int (*notify_prune)(tg_store_t *st, tg_notify_table_t what, int64_t cutoff_s, size_t limit, size_t *deleted,
                        size_t *attempts, tg_err_t *err);
    int (*notify_pending)(tg_store_t *st, tg_notify_table_t what, int64_t *n, tg_err_t *err);
    int (*usage_batches_prune)(tg_store_t *st, const char *node, uint64_t below_id, int64_t committed_before_s,
                               size_t limit, size_t *deleted, tg_err_t *err);
    int (*node_drained)(tg_store_t *st, const char *node, int64_t drained_at, tg_err_t *err);
    int (*drained_nodes)(tg_store_t *st, int64_t before_s, tg_drained_node_t *out, size_t max, size_t *n,
                         tg_err_t *err);
    int (*drained_node_forget)(tg_store_t *st, const char *node, int64_t drained_at, tg_err_t *err);
    /* issue 14: store_audit.h */
    int (*audit_append)(tg_store_t *st, const tg_audit_row_t *r, int64_t *id, tg_err_t *err);
    int (*audit_page)(tg_store_t *st, const tg_audit_filter_t *f, const tg_page_t *page, tg_audit_row_cb cb, void *arg,
                      tg_page_end_t *end, tg_err_t *err);
    /* issue 16: store_ingest.h */
    int (*ingest_token_insert)(tg_store_t *st, const tg_ingest_token_row_t *t, tg_err_t *err);
    int (*ingest_token_get)(tg_store_t *st, const char *id, tg_ingest_token_row_t *out, tg_err_t *err);
    int (*ingest_token_set_revoked)(tg_store_t *st, const char *id, int64_t revoked_at, tg_err_t *err);
    int (*ingest_token_page)(tg_store_t *st, const tg_page_t *page, tg_ingest_token_cb cb, void *arg, tg_page_end_t *end,
                             tg_err_t *err);
    int (*ingest_token_list_active)(tg_store_t *st, tg_ingest_token_cb cb, void *arg, tg_err_t *err);
    int (*event_key_blake2b_until)(tg_store_t *st, int64_t *until_s, tg_err_t *err);
} tg_store_ops_t;

/* The part of a connection that every backend shares: its struct starts with it. */
struct tg_store {
    const tg_store_ops_t *ops;
};

/* The backends (store_sqlite.c, store_pg.c): open url (already known to have their scheme). */
int tg_sqlite_open(const char *url, tg_store_t **out, tg_err_t *err);
int tg_pg_open(const char *url, tg_store_t **out, tg_err_t *err);

#endif
