/* test_store_ops.c - every backend implements every store call: no member of an operations
 * table is left NULL (a NULL would crash the first caller of that call on that backend). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store/store_ops.h"

extern const tg_store_ops_t tg_sqlite_ops;
extern const tg_store_ops_t tg_pg_ops;

static void check_complete(const tg_store_ops_t *ops)
{
    assert_non_null(ops->name);
#define OP(m)                                                                                                          \
    if (ops->m == NULL)                                                                                                \
        fail_msg("the %s backend does not implement %s", ops->name, #m);
    OP(close)
    OP(migrate)
    OP(schema_version)
    OP(backup_to)
    OP(restore_from)
    OP(customer_insert)
    OP(customer_get)
    OP(customer_update)
    OP(customer_list)
    OP(key_insert)
    OP(key_get)
    OP(key_list)
    OP(key_set_revoked)
    OP(key_set_expires)
    OP(key_touch)
    OP(usage_record)
    OP(usage_record_many)
    OP(usage_event_ids_prune)
    OP(usage_event_ids_each)
    OP(usage_event_id_blocks_last)
    OP(usage_event_id_blocks_after)
    OP(usage_fold)
    OP(usage_period)
    OP(usage_daily)
    OP(usage_endpoints)
    OP(usage_load)
    OP(usage_total)
    OP(customer_page)
    OP(key_page)
    OP(key_count_active)
    OP(usage_rejected_list)
    OP(usage_rejected_count)
    OP(billing_failure_set)
    OP(billing_failure_clear)
    OP(billing_failure_count)
    OP(billing_failure_list)
    OP(customer_set_password)
    OP(customer_by_email)
    OP(session_insert)
    OP(session_get)
    OP(session_delete)
    OP(session_delete_customer)
    OP(owner_session_insert)
    OP(owner_session_get)
    OP(owner_session_delete)
    OP(trial_used)
    OP(trial_record)
    OP(plan_change_add)
    OP(plan_change_count)
    OP(invoice_item_add)
    OP(invoice_create)
    OP(invoice_preview)
    OP(invoice_get)
    OP(tx_begin)
    OP(tx_commit)
    OP(tx_rollback)
    OP(savepoint)
    OP(savepoint_release)
    OP(savepoint_rollback)
    OP(invoice_list)
    OP(invoice_totals)
    OP(invoice_page)
    OP(invoice_transition)
    OP(invoice_draft_refresh)
    OP(invoice_hold)
    OP(invoice_drafts_due)
    OP(outbox_insert)
    OP(outbox_due)
    OP(outbox_next_due)
    OP(outbox_done)
    OP(outbox_retry)
    OP(outbox_fail)
    OP(outbox_defer)
    OP(outbox_requeue)
    OP(outbox_get)
    OP(outbox_get_by_key)
    OP(outbox_customers_missing)
    OP(outbox_prune)
    OP(outbox_pull_in)
    OP(stripe_customer_get)
    OP(stripe_customer_owner)
    OP(outbox_customer_latest)
    OP(outbox_earlier_pending)
    OP(outbox_customer_latest_of)
    OP(outbox_page)
    OP(outbox_counts)
    OP(stripe_event_insert)
    OP(stripe_event_next)
    OP(stripe_event_mark)
    OP(stripe_event_get)
    OP(stripe_event_count)
    OP(stripe_invoice_get)
    OP(stripe_invoice_put)
    OP(stripe_debt)
    OP(dunning_get)
    OP(dunning_put)
    OP(dunning_clear)
    OP(dunning_list)
    OP(status_history_add)
    OP(status_history_list)
    OP(payment_method_put)
    OP(payment_method_get)
    OP(stripe_subscription_map)
    OP(stripe_subscription_get)
    OP(stripe_subscription_latest)
    OP(customers_without_subscription)
    OP(stripe_subscription_put)
    OP(meter_export_set)
    OP(meter_due)
    OP(meter_mark)
    OP(meter_set_seq)
    OP(meter_period_exported)
    OP(meter_prune)
    OP(meter_customer_backlog)
    OP(meter_refused)
    OP(meter_take_back)
    OP(meter_outbox_counts)
    OP(usage_batches_prune)
    OP(node_drained)
    OP(drained_nodes)
    OP(drained_node_forget)
    OP(audit_append)
    OP(audit_page)
#undef OP
}

static void test_sqlite_complete(void **state)
{
    (void)state;
    check_complete(&tg_sqlite_ops);
}

static void test_pg_complete(void **state)
{
    (void)state;
    check_complete(&tg_pg_ops);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sqlite_complete),
        cmocka_unit_test(test_pg_complete),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
