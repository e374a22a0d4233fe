// dashboard_currency.test.mjs - issue 15 "figures per currency": the dashboard never ranks nor adds
// amounts of two currencies together; each figure says its currency.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withStack } from './harness.mjs';

const EURO = `  euro:
    price: "5"
    currency: eur
    rate_limit: 1000/sec
    burst: 1000
`;

test('top customers by revenue are ranked within each currency; MRR by plan names its currency', async () => {
  await withStack({ testClock: true, morePlans: EURO }, async (s) => {
    const u1 = await s.customer('metered'); // 10.00 usd
    const u2 = await s.customer('metered'); // 10.00 + 3 x 0.25 usd
    const e1 = await s.customer('euro'); // 5.00 eur: fewer units than either dollar amount
    for (let i = 0; i < 5; i++) assert.equal((await s.call('/v1/basic/x', { key: u2.key })).status, 200);
    assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 })).status, 200);
    assert.equal((await s.adminCall('POST', '/v1/admin/invoices/run', {})).json.created, 3);
    const list = await s.adminCall('GET', '/v1/admin/invoices');
    for (const inv of list.json.data) assert.equal((await s.adminCall('POST', `/v1/admin/invoices/${inv.id}/finalize`)).status, 200);

    const d = (await s.adminCall('GET', '/v1/admin/dashboard')).json;
    // each currency's own ranking, currencies in code order; before, 10.75 usd > 10.00 usd > 5.00 eur
    // were compared as plain numbers across currencies
    assert.deepEqual(d.top_by_revenue.map((x) => [x.id, x.billed, x.currency]), [
      [e1.customer.id, '5.00', 'eur'],
      [u2.customer.id, '10.75', 'usd'],
      [u1.customer.id, '10.00', 'usd'],
    ]);
    assert.deepEqual(d.mrr_by_plan, { metered: '20.00', euro: '5.00' });
    assert.deepEqual(d.mrr_by_plan_currency, { metered: 'usd', euro: 'eur' });
    assert.deepEqual([d.mrr, d.arr, d.usage_revenue_last_period], [null, null, null]); // no single figure
    assert.equal(d.revenue.currencies.usd.mrr, '20.00');
    assert.equal(d.revenue.currencies.eur.mrr, '5.00');
    assert.equal(d.revenue.currencies.usd.invoiced, '20.75');
    assert.equal(d.revenue.currencies.eur.invoiced, '5.00');
  });
});
