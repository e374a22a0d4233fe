// billing_thread.test.mjs - the server closes ended periods by itself on a thread of its own
// (src/billing/closer.h: "tg-billing", at nice 19), not on the admin thread: the admin API
// answers while it runs. Before, the admin thread's tick closed them (no such thread); then the
// thread ran at nice 10, which still doubled the gateway's p99 during a close on 2 cores.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { withStack } from './harness.mjs';

// The threads of pid: [{ tid, name, nice, policy }].
function threads(pid) {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // after "pid (comm) "
    return {
      tid,
      name: readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim(),
      nice: Number(fields[16]), // field 19 of proc(5)
      policy: Number(fields[38]), // field 41
    };
  });
}

test('ended periods close by themselves on the billing thread, at the lowest priority (nice 19)', async () => {
  await withStack({ testClock: true }, async (s) => {
    const billing = threads(s.server.pid).filter((t) => t.name === 'tg-billing');
    assert.equal(billing.length, 1);
    // its nice value is set by the thread itself once it runs: poll a bounded while
    const billingNice = () => threads(s.server.pid).find((t) => t.name === 'tg-billing').nice;
    for (let i = 0; i < 100 && billingNice() !== 19; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(billingNice(), 19);
    // that thread only: the gateway's workers keep nice 0 and the normal policy
    for (const t of threads(s.server.pid).filter((x) => x.name.startsWith('tg-gw-'))) {
      assert.equal(t.nice, 0, t.name);
      assert.equal(t.policy, 0, t.name);
    }

    const { key, customer } = await s.customer('metered');
    for (let i = 0; i < 3; i++) assert.equal((await s.call('/v1/basic/x', { key })).status, 200);
    assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 })).status, 200);
    // no invoices/run: the thread's next run (within 10 s) makes the invoice
    let list;
    for (let i = 0; i < 300; i++) {
      list = await s.adminCall('GET', `/v1/admin/invoices?customer=${customer.id}`);
      assert.equal(list.status, 200);
      if (list.json.data.length > 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(list.json.data.length, 1);
    assert.equal(list.json.data[0].total, '10.25'); // 10.00 base + (3 - 2 included) x 0.25
    // and an explicit run finds it made: the same invoice, not a second one
    const run = await s.adminCall('POST', '/v1/admin/invoices/run', { customer: customer.id });
    assert.equal(run.json.created, 0);
  });
});

// billing.close_connections: 3 (on PostgreSQL three connections take the customers due a page
// at a time from one cursor; SQLite, one writer, ignores it): every customer is invoiced once.
test('with billing.close_connections 3 every customer due is invoiced once', async () => {
  await withStack({ testClock: true, extra: 'billing: {close_connections: 3}' }, async (s) => {
    const customers = [];
    for (let i = 0; i < 6; i++) {
      const { key, customer } = await s.customer('metered');
      for (let j = 0; j < i; j++) assert.equal((await s.call('/v1/basic/x', { key })).status, 200);
      customers.push(customer);
    }
    assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 })).status, 200);
    const invoicesOf = async (id) => {
      const list = await s.adminCall('GET', `/v1/admin/invoices?customer=${id}`);
      assert.equal(list.status, 200);
      return list.json.data;
    };
    for (let i = 0; i < 300; i++) {
      if ((await invoicesOf(customers.at(-1).id)).length > 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const [i, c] of customers.entries()) {
      let got = [];
      for (let t = 0; t < 100 && got.length === 0; t++) {
        got = await invoicesOf(c.id);
        if (got.length === 0) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(got.length, 1, c.id);
      // 10.00 base + the calls over the 2 included at 0.25
      assert.equal(got[0].total, (10 + Math.max(0, i - 2) * 0.25).toFixed(2), c.id);
    }
    const run = await s.adminCall('POST', '/v1/admin/invoices/run', {});
    assert.equal(run.json.created, 0);
  });
});
