// usage_integrity.test.mjs - what an upstream reports cannot drop other customers' usage nor stop
// invoicing (issue 10 item 7), against the real binary on loopback with an upstream of our own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { withStack, freePort, ADMIN_TOKEN } from '../integration/harness.mjs';

const ABSURD = '9223372036854775806'; // 2^63 - 2, as an upstream sent it

// An upstream that answers every call with 200, and on /v1/basic/absurd also with
// "Tollgate-Units: api_calls=<units>" (a bug, or an upstream that wants to hurt a customer).
async function withUpstream(units, fn) {
  const port = await freePort();
  const srv = createServer((req, res) => {
    const h = { 'content-type': 'application/json' };
    if (req.url.startsWith('/v1/basic/absurd')) h['tollgate-units'] = `api_calls=${units}`;
    res.writeHead(200, h);
    res.end('{"ok":true}');
  });
  await new Promise((r) => srv.listen(port, '127.0.0.1', r));
  try { await fn(port); } finally { await new Promise((r) => srv.close(r)); }
}

// Absurd calls of one customer and ordinary calls of two others, all at once, so that they
// share the metering log's records.
async function traffic(s, absurdCalls) {
  const victim = await s.customer('metered'), b = await s.customer('metered'), c = await s.customer('metered');
  const calls = [];
  for (let i = 0; i < absurdCalls; i++) calls.push(s.call('/v1/basic/absurd', { key: victim.key }));
  for (let i = 0; i < 20; i++) calls.push(s.call('/v1/basic/x', { key: i % 2 ? b.key : c.key }));
  for (const r of await Promise.all(calls)) assert.equal(r.status, 200, r.text);
  return { victim, b, c };
}

async function metric(s, name) {
  const text = await fetch(`${s.admin}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }).then((r) => r.text());
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

async function invoices(s, who) {
  const list = await s.adminCall('GET', `/v1/admin/invoices?customer=${who.customer.id}`);
  assert.equal(list.status, 200, list.text);
  return list.json.data.length;
}

test('API10:2023 unsafe consumption of APIs: an upstream\'s absurd Tollgate-Units (api_calls=2^63-2) is refused over metering.max_units_per_call, the call\'s own usage and everyone else\'s is kept, and invoicing goes on', async () => {
  await withUpstream(ABSURD, async (upPort) => {
    await withStack({ noUpstream: true, upstreamPort: upPort, testClock: true }, async (s) => {
      const { victim, b, c } = await traffic(s, 3);
      // every call billed once for its own api_call; the upstream's value is not billed
      assert.equal(await s.usage(victim.customer.id), 3);
      assert.equal(await s.usage(b.customer.id), 10);
      assert.equal(await s.usage(c.customer.id), 10);
      assert.equal(await metric(s, 'tollgate_upstream_units_refused_total'), 3);
      assert.match(s.server.output, /reported api_calls=9223372036854775806 for customer cus_\w+ .*over metering\.max_units_per_call \(1000000000\)/);
      assert.equal((await s.adminCall('GET', `/v1/admin/customers/${victim.customer.id}/invoices/upcoming`)).status, 200);
      await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 });
      const run = await s.adminCall('POST', '/v1/admin/invoices/run', {});
      assert.equal(run.status, 200, run.text);
      assert.equal(run.json.failed, 0, run.text);
      for (const who of [victim, b, c]) assert.equal(await invoices(s, who), 1);
    });
  });
});

test('API10:2023 unsafe consumption of APIs: a total past 2^63-1 saturates without losing anyone\'s usage; the invoice run invoices the others and names the failing customer; the upcoming invoice is a 422 naming the cause', async () => {
  // The bound raised to its maximum (10^18) and reached 12 times over one total: what a
  // database written before the bound existed holds, and a price that overflows the money range.
  const BIG = '1000000000000000000';
  await withUpstream(BIG, async (upPort) => {
    await withStack({ noUpstream: true, upstreamPort: upPort, testClock: true, maxUnitsPerCall: BIG }, async (s) => {
      const { victim, b, c } = await traffic(s, 12);
      const u = await s.adminCall('GET', `/v1/admin/customers/${victim.customer.id}/usage`);
      assert.match(u.text, /"used":\s*9223372036854775807\b/); // saturated, exactly
      assert.equal(await s.usage(b.customer.id), 10);
      assert.equal(await s.usage(c.customer.id), 10);
      assert.equal(await metric(s, 'tollgate_metering_rejected_records_total'), 0);

      const up = await s.adminCall('GET', `/v1/admin/customers/${victim.customer.id}/invoices/upcoming`);
      assert.equal(up.status, 422, up.text);
      assert.equal(up.json.error.type, 'money_out_of_range');
      assert.match(up.json.error.message, new RegExp(victim.customer.id));
      assert.equal((await s.adminCall('GET', `/v1/admin/customers/${b.customer.id}/invoices/upcoming`)).status, 200);

      await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 });
      const run = await s.adminCall('POST', '/v1/admin/invoices/run', {});
      assert.equal(run.status, 200, run.text);
      assert.equal(run.json.failed, 1, run.text);
      assert.equal(run.json.failures.length, 1);
      assert.equal(run.json.failures[0].customer, victim.customer.id);
      assert.equal(run.json.failures[0].type, 'money_out_of_range');
      assert.ok(run.json.failures[0].message.length > 0);
      for (const who of [b, c]) assert.equal(await invoices(s, who), 1);
      assert.equal(await invoices(s, victim), 0);
      const failures = await s.adminCall('GET', '/v1/admin/billing/failures');
      assert.equal(failures.status, 200, failures.text);
      assert.deepEqual(failures.json.data.map((f) => f.customer), [victim.customer.id]);
      assert.equal(failures.json.data[0].type, 'money_out_of_range');
      assert.equal(failures.json.has_more, false);
      const dash = await s.adminCall('GET', '/v1/admin/dashboard');
      assert.equal(dash.json.billing_failures, 1);
      assert.equal(dash.json.rejected_usage_rows, 0);
      // the others are invoiced once; the broken one keeps failing alone
      const again = await s.adminCall('POST', '/v1/admin/invoices/run', {});
      assert.equal(again.json.created, 0);
      assert.equal(again.json.failed, 1);
    });
  });
});
