// display_mail.test.mjs - issue 15 in the built-in mails: a usage threshold names the metric by
// its display name (metering.metrics) with counts grouped by thousands, and an invoice's mail
// gives its total in its currency ("$10.75"), through a real SMTP server on loopback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack } from './harness.mjs';
import { startSink } from '../notify/sink.mjs';

let s, sink;
const PLAN = `  small:
    price: "10"
    rate_limit: 1000/sec
    burst: 1000
    included: {api_calls: 1000}
    on_quota: bill
    charges: [{metric: api_calls, model: per_unit, unit_price: "0.25"}]
`;

before(async () => {
  sink = await startSink();
  s = await new Stack({
    testClock: true,
    meteringMetrics: '{api_calls: {name: "API calls", unit: call}}',
    extra: `email: {smtp_url: "smtp://127.0.0.1:${sink.port}", from: "API billing <billing@example.com>"}`,
    morePlans: PLAN,
  }).start();
});
after(async () => { await s.stop(); await sink.close(); });

test('threshold and invoice mails: the display name, grouped counts, money in its currency', async () => {
  const to = `mail-${Math.random().toString(36).slice(2)}@example.com`;
  const { key, customer } = await s.customer('small', to);
  // 800 calls: 80 % of the 1,000 included
  for (let i = 0; i < 800; i += 50)
    await Promise.all(Array.from({ length: 50 }, async () => assert.equal((await s.call('/v1/basic/x', { key })).status, 200)));
  const m = await sink.waitFor((x) => x.to.includes(to) && /allowance/.test(x.raw.toString()), `the 80 % mail to ${to}`);
  assert.equal(m.parsed.subject, 'You have used 80% of your API calls allowance');
  assert.match(m.parsed.text, /your usage of API calls reached 80% of the allowance included in your plan this period \(800 of 1,000\)/);
  assert.match(m.parsed.html, /<b>API calls<\/b>/);

  // 3 more calls over the allowance after 1,000: an invoice of 10.00 + 3 x 0.25
  for (let i = 0; i < 203; i++) assert.equal((await s.call('/v1/basic/x', { key })).status, 200);
  assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 })).status, 200);
  assert.equal((await s.adminCall('POST', '/v1/admin/invoices/run', { customer: customer.id })).json.created, 1);
  const inv = (await s.adminCall('GET', `/v1/admin/invoices?customer=${customer.id}`)).json.data[0];
  assert.equal(inv.total, '10.75');
  assert.equal((await s.adminCall('POST', `/v1/admin/invoices/${inv.id}/finalize`)).status, 200);
  const im = await sink.waitFor((x) => x.to.includes(to) && /Subject: Your invoice/.test(x.raw.toString()), `the invoice mail to ${to}`);
  assert.match(im.parsed.text, /for \$10\.75 is ready/);
  assert.doesNotMatch(im.parsed.text, /usd|USD/);
});
