// invoice_list.test.mjs - issue 15: the owner's invoice list with filters and totals per currency
// (GET /v1/admin/invoices?status=&customer=&from=&to=&currency=), on the real binary and either store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withStack } from './harness.mjs';

const EURO = `  euro:
    price: "20"
    currency: eur
    rate_limit: 1000/sec
    burst: 1000
`;

const day = (ms) => new Date(ms).toISOString().slice(0, 10);

test('invoices: filter by status, customer, currency and period; totals per currency, never added across', async () => {
  await withStack({ testClock: true, morePlans: EURO }, async (s) => {
    const u1 = await s.customer('metered'); // 10.00 usd a month
    const u2 = await s.customer('metered');
    const e1 = await s.customer('euro'); // 20.00 eur a month
    assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 })).status, 200);
    assert.equal((await s.adminCall('POST', '/v1/admin/invoices/run', {})).json.created, 3);
    const one = async (c) => (await s.adminCall('GET', `/v1/admin/invoices?customer=${c.customer.id}`)).json.data[0];
    const [i1, i2, i3] = [await one(u1), await one(u2), await one(e1)];
    for (const step of ['finalize', 'mark-paid']) assert.equal((await s.adminCall('POST', `/v1/admin/invoices/${i1.id}/${step}`)).status, 200);
    assert.equal((await s.adminCall('POST', `/v1/admin/invoices/${i3.id}/finalize`)).status, 200);

    // no filter: every invoice, and the totals of each currency apart
    const all = await s.adminCall('GET', '/v1/admin/invoices');
    assert.equal(all.status, 200, all.text);
    assert.equal(all.json.data.length, 3);
    assert.deepEqual(all.json.totals, {
      eur: { count: 1, invoiced: '20.00', by_status: { open: { count: 1, total: '20.00' } } },
      usd: {
        count: 2,
        invoiced: '10.00', // the paid one; a draft is not invoiced yet
        by_status: { draft: { count: 1, total: '10.00' }, paid: { count: 1, total: '10.00' } },
      },
    });

    const ids = async (q) => {
      const r = await s.adminCall('GET', `/v1/admin/invoices?${q}`);
      assert.equal(r.status, 200, `${q}: ${r.text}`);
      return r.json.data.map((i) => i.id).sort();
    };
    assert.deepEqual(await ids('currency=eur'), [i3.id]);
    assert.deepEqual(await ids('currency=USD'), [i1.id, i2.id].sort());
    assert.deepEqual(await ids('status=draft'), [i2.id]);
    assert.deepEqual(await ids('status=paid&currency=usd'), [i1.id]);
    assert.deepEqual(await ids(`customer=${u2.customer.id}`), [i2.id]);
    const start = Date.parse(i1.period.start);
    assert.deepEqual(await ids(`from=${day(start)}&to=${day(start + 86400e3)}`), [i1.id, i2.id, i3.id].sort());
    assert.deepEqual(await ids(`from=${day(start + 86400e3)}`), []); // period_start in [from, to)
    assert.deepEqual(await ids(`to=${day(start)}`), []);
    const eur = await s.adminCall('GET', '/v1/admin/invoices?currency=eur');
    assert.deepEqual(Object.keys(eur.json.totals), ['eur']);

    // the totals come with the first page only; the pages still visit every invoice once
    const p1 = await s.adminCall('GET', '/v1/admin/invoices?limit=2');
    assert.ok(p1.json.totals);
    const p2 = await s.adminCall('GET', `/v1/admin/invoices?limit=2&cursor=${p1.json.next_cursor}`);
    assert.equal(p2.json.totals, undefined);
    assert.equal(new Set([...p1.json.data, ...p2.json.data].map((i) => i.id)).size, 3);

    for (const [q, name] of [['status=late', 'status'], ['currency=xyz', 'currency'], ['currency=us', 'currency'],
      ['from=2026-02-30', 'from'], ['to=yesterday', 'to'], ['from=2026-1-01', 'from']]) {
      const r = await s.adminCall('GET', `/v1/admin/invoices?${q}`);
      assert.equal(r.status, 400, q);
      assert.ok(r.json.error.message.startsWith(`${name}:`), r.json.error.message);
    }
  });
});
