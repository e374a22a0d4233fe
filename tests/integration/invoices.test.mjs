// invoices.test.mjs - a period closes into an exact invoice: real calls, a moved clock, states.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { COMMITTED_PLAN, withStack } from './harness.mjs';

test('usage through the gateway becomes an exact, numbered invoice', async () => {
  await withStack({ testClock: true }, async (s) => {
    const { key, customer } = await s.customer('metered');
    for (let i = 0; i < 5; i++) assert.equal((await s.call('/v1/basic/x', { key })).status, 200);

    // the upcoming invoice is the same computation, before the period ends
    const up = await s.adminCall('GET', `/v1/admin/customers/${customer.id}/invoices/upcoming`);
    assert.equal(up.status, 200);
    assert.equal(up.json.status, 'upcoming');
    assert.equal(up.json.total, '10.75'); // 10.00 base + (5 - 2 included) x 0.25
    let run = await s.adminCall('POST', '/v1/admin/invoices/run', { customer: customer.id });
    assert.equal(run.json.created, 0); // the period has not ended

    const clock = await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 });
    assert.equal(clock.status, 200);
    for (let i = 0; i < 2; i++) assert.equal((await s.call('/v1/basic/x', { key })).status, 200); // next period

    // --period: only periods that ended by the end of that month (here: a month long past)
    run = await s.adminCall('POST', '/v1/admin/invoices/run', { customer: customer.id, period: '2020-01' });
    assert.equal(run.json.created, 0);
    assert.equal((await s.adminCall('POST', '/v1/admin/invoices/run', { period: '2020-13' })).status, 400);
    run = await s.adminCall('POST', '/v1/admin/invoices/run', { customer: customer.id });
    assert.equal(run.json.created, 1);
    run = await s.adminCall('POST', '/v1/admin/invoices/run', { customer: customer.id });
    assert.equal(run.json.created, 0); // idempotent

    const list = await s.adminCall('GET', `/v1/admin/invoices?customer=${customer.id}`);
    assert.equal(list.json.data.length, 1);
    const id = list.json.data[0].id;
    let inv = await s.adminCall('GET', `/v1/admin/invoices/${id}`);
    assert.equal(inv.json.status, 'draft');
    assert.equal(inv.json.number, null);
    assert.equal(inv.json.total, '10.75');
    assert.deepEqual(inv.json.lines.map((l) => l.amount), ['10.00', '0.75']);
    assert.equal(inv.json.lines[1].quantity, 3);
    assert.equal(inv.json.lines[1].used, 5);

    inv = await s.adminCall('POST', `/v1/admin/invoices/${id}/finalize`);
    assert.equal(inv.status, 200);
    assert.equal(inv.json.status, 'open');
    assert.match(inv.json.number, /^TG-\d{4}-000001$/);
    assert.equal((await s.adminCall('POST', `/v1/admin/invoices/${id}/finalize`)).status, 409);
    inv = await s.adminCall('POST', `/v1/admin/invoices/${id}/mark-paid`);
    assert.equal(inv.json.status, 'paid');
    assert.equal((await s.adminCall('POST', `/v1/admin/invoices/${id}/void`)).status, 409);

    const html = await fetch(`${s.admin}/v1/admin/invoices/${id}/html`, {
      headers: { authorization: `Bearer ${(await import('./harness.mjs')).ADMIN_TOKEN}` },
    });
    assert.match(html.headers.get('content-type'), /text\/html/);
    const page = await html.text();
    assert.match(page, new RegExp(inv.json.number));
    assert.match(page, /10\.75/);

    // the dashboard shows last period's usage revenue apart from MRR: 0.75 of usage on this invoice
    const dash = await s.adminCall('GET', '/v1/admin/dashboard');
    assert.equal(dash.json.usage_revenue_last_period, '0.75');

    // the CLI shows the same invoice
    const cli = s.cli(['invoices', 'list', '--customer', customer.id, '--server', s.admin]);
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(cli.stdout, new RegExp(`${inv.json.number}\\s+${customer.id}\\s+\\S+\\s+paid\\s+10\\.75`));
    const show = s.cli(['invoices', 'show', id, '--server', s.admin]);
    assert.match(show.stdout, /Total\s+\$10\.75\n/);

    // the next period's upcoming invoice has the two later calls, within the allowance
    let next = await s.adminCall('GET', `/v1/admin/customers/${customer.id}/invoices/upcoming`);
    assert.equal(next.json.total, '10.00');
    // a correction: finalized invoices never change, a credit goes on the next one
    const item = await s.adminCall('POST', `/v1/admin/customers/${customer.id}/items`, { description: 'Goodwill credit', amount: '-2.50' });
    assert.equal(item.status, 201);
    assert.equal((await s.adminCall('POST', `/v1/admin/customers/${customer.id}/items`, { description: 'x', amount: '0.0000000001' })).status, 400);
    // a line is a whole number of cents: 1.005 would be billed as 1.01, so it is refused, saying why
    const odd = await s.adminCall('POST', `/v1/admin/customers/${customer.id}/items`, { description: 'x', amount: '1.005' });
    assert.equal(odd.status, 400, odd.text);
    assert.match(odd.json.error.message, /usd amounts have 2 decimal places at most/);
    next = await s.adminCall('GET', `/v1/admin/customers/${customer.id}/invoices/upcoming`);
    assert.equal(next.json.total, '7.50');
    assert.equal((await s.adminCall('GET', `/v1/admin/invoices/${id}`)).json.total, '10.75'); // unchanged
  });
});

test('the test clock is refused unless serve was started with --test-clock', async () => {
  await withStack({}, async (s) => {
    const r = await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 1 });
    assert.equal(r.status, 404);
  });
});

test('a customer on each of the four example plans gets the exact invoice', async () => {
  await withStack({ testClock: true }, async (s) => {
    const DAY = 86400;
    const made = {};
    for (const plan of ['free', 'starter', 'pro', 'enterprise']) made[plan] = await s.customer(plan);
    const calls = { free: 7, starter: 5, pro: 9, enterprise: 3 };
    for (const [plan, n] of Object.entries(calls))
      for (let i = 0; i < n; i++) assert.equal((await s.call('/v1/basic/x', { key: made[plan].key })).status, 200);
    const v = await s.call('/v1/vision/tag', { key: made.pro.key, method: 'POST', body: 'x' });
    assert.equal(v.status, 200);
    await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * DAY });
    const run = await s.adminCall('POST', '/v1/admin/invoices/run', {});
    assert.ok(run.json.created >= 4);
    // base fees after each plan's trial, by seconds: price x (period - trial) / period
    const trial = { free: 0, starter: 14, pro: 14, enterprise: 30 };
    const price = { free: 0, starter: 49, pro: 199, enterprise: 999 };
    for (const plan of Object.keys(calls)) {
      const c = made[plan].customer;
      const days = (Date.parse(c.current_period.end) - Date.parse(c.current_period.start)) / 1000 / DAY;
      const paidDays = Math.max(0, days - trial[plan]);
      const list = await s.adminCall('GET', `/v1/admin/invoices?customer=${c.id}`);
      assert.equal(list.json.data.length, 1, plan);
      const inv = await s.adminCall('GET', `/v1/admin/invoices/${list.json.data[0].id}`);
      const base = (Math.round(price[plan] * paidDays / days * 100) / 100).toFixed(2);
      assert.equal(inv.json.total, base, `${plan}: ${JSON.stringify(inv.json.lines)}`);
      const usage = inv.json.lines.filter((l) => l.metric === 'api_calls');
      if (plan !== 'free') assert.equal(usage[0].used, calls[plan] + (plan === 'pro' ? 1 : 0), plan);
    }
  });
});

// A minimum commitment is billed for a period without usage (a customer escaped it by not calling,
// while one cheap call paid it whole): the upcoming invoice and the period's invoice have the
// charge at 0.00 and the top-up line (admin API).
test('a plan minimum is billed for a period without usage', async () => {
  await withStack({ testClock: true, morePlans: COMMITTED_PLAN }, async (s) => {
    const { customer } = await s.customer('committed');
    const up = await s.adminCall('GET', `/v1/admin/customers/${customer.id}/invoices/upcoming`);
    assert.equal(up.status, 200, up.text);
    assert.deepEqual(up.json.lines.map((l) => [l.kind, l.amount]),
      [['base_fee', '10.00'], ['usage', '0.00'], ['minimum', '100.00']]);
    assert.equal(up.json.total, '110.00');

    await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 });
    const run = await s.adminCall('POST', '/v1/admin/invoices/run', { customer: customer.id });
    assert.equal(run.json.created, 1);
    const list = await s.adminCall('GET', `/v1/admin/invoices?customer=${customer.id}`);
    const inv = await s.adminCall('GET', `/v1/admin/invoices/${list.json.data[0].id}`);
    assert.deepEqual(inv.json.lines.map((l) => [l.kind, l.amount]),
      [['base_fee', '10.00'], ['usage', '0.00'], ['minimum', '100.00']]);
    assert.equal(inv.json.total, '110.00');
  });
});
