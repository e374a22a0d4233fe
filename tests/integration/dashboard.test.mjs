// dashboard.test.mjs - the owner's revenue dashboard figures, from the same store as invoices.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withStack } from './harness.mjs';

test('MRR, customers by plan and status, calls, top customers and quota alerts', async () => {
  await withStack({}, async (s) => {
    // No customers yet: the figures are zeros (the ASan/UBSan build aborted here on qsort(NULL, 0)).
    const empty = await s.adminCall('GET', '/v1/admin/dashboard');
    assert.equal(empty.status, 200);
    assert.equal(empty.json.mrr, '0.00');
    assert.deepEqual(empty.json.top_by_calls, []);
    const m1 = await s.customer('metered'); // active, 10.00 a month
    const m2 = await s.customer('metered');
    const st = await s.customer('starter'); // trialing: no MRR yet
    const tiny = await s.customer('tiny'); // 5 calls included
    await s.customer('free');
    for (let i = 0; i < 5; i++) await s.call('/v1/basic/x', { key: tiny.key });
    for (let i = 0; i < 12; i++) await s.call('/v1/basic/x', { key: m1.key });
    await s.call('/v1/basic/x', { key: st.key });
    await s.adminCall('PATCH', `/v1/admin/customers/${m2.customer.id}`, { status: 'suspended' });
    const f = await s.customer('free');
    await s.adminCall('PATCH', `/v1/admin/customers/${f.customer.id}`, { plan: 'metered' }); // an upgrade

    const d = (await s.adminCall('GET', '/v1/admin/dashboard')).json;
    assert.ok(Date.parse(d.as_of) > 0);
    assert.equal(d.mrr, '21.00'); // metered 10 x 2 + tiny 1 (m2 suspended, starter trialing, free 0)
    assert.equal(d.arr, '252.00');
    assert.deepEqual(d.customers_by_plan, { metered: 3, starter: 1, tiny: 1, free: 1 });
    assert.equal(d.upgrades_this_month, 1);
    assert.equal(d.downgrades_this_month, 0);
    assert.equal(d.customers_by_status.trialing, 1);
    assert.equal(d.customers_by_status.suspended, 1);
    assert.equal(d.customers_by_status.active, 4);
    assert.equal(d.signups_this_month, 6);
    assert.equal(d.calls_this_period, 18);
    assert.equal(Object.values(d.calls_per_day).reduce((a, b) => a + b, 0), 18);
    assert.equal(d.top_by_calls[0].id, m1.customer.id);
    assert.equal(d.top_by_calls[0].calls, 12);
    const alert = d.near_quota.find((x) => x.id === tiny.customer.id);
    assert.deepEqual([alert.calls, alert.included, alert.over], [5, 5, false]);
    assert.ok(d.near_quota.find((x) => x.id === m1.customer.id).over); // 12 of 2 included
    assert.equal((await s.adminCall('GET', '/v1/admin/dashboard', undefined, null)).status, 401);
  });
});
