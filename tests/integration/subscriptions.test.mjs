// subscriptions.test.mjs - plan changes and cancellation, priced exactly, with a moved clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withStack } from './harness.mjs';

const DAY = 86400;
const cents = (x) => (Math.round(x * 100) / 100).toFixed(2);

test('upgrade mid-period is prorated; usage keeps the plan it happened under; downgrade waits', async () => {
  await withStack({ testClock: true }, async (s) => {
    const { key, customer } = await s.customer('metered');
    const periodDays = (Date.parse(customer.current_period.end) - Date.parse(customer.current_period.start)) / 1000 / DAY;
    await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 10 * DAY });
    for (let i = 0; i < 3; i++) assert.equal((await s.call('/v1/basic/x', { key })).status, 200);

    const up = await s.adminCall('PATCH', `/v1/admin/customers/${customer.id}`, { plan: 'pro' });
    assert.equal(up.status, 200);
    assert.equal(up.json.plan, 'pro'); // an upgrade takes effect at once
    assert.equal((await s.call('/v1/vision/x', { key, method: 'GET' })).status, 200); // pro's endpoints
    for (let i = 0; i < 4; i++) assert.equal((await s.call('/v1/basic/x', { key })).status, 200);

    const preview = await s.adminCall('GET', `/v1/admin/customers/${customer.id}/invoices/upcoming`);
    const oldPart = cents(10 * 10 / periodDays), newCredit = cents(199 * 10 / periodDays);
    const amounts = preview.json.lines.map((l) => l.amount);
    assert.deepEqual(amounts, ['199.00', '0.25', '0.00', oldPart, `-${newCredit}`]); // base, metered usage (1 over), pro usage, prorations
    const total = (199 + 0.25 + Number(oldPart) - Number(newCredit)).toFixed(2);
    assert.equal(preview.json.total, total);

    // a downgrade is scheduled for the next period
    const down = await s.adminCall('PATCH', `/v1/admin/customers/${customer.id}`, { plan: 'metered' });
    assert.equal(down.json.plan, 'pro');
    assert.equal(down.json.pending_plan, 'metered');
    assert.equal(down.json.pending_at, down.json.current_period.end);

    await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: (periodDays - 10) * DAY + 60 });
    const run = await s.adminCall('POST', '/v1/admin/invoices/run', { customer: customer.id });
    assert.equal(run.json.created, 1);
    const list = await s.adminCall('GET', `/v1/admin/invoices?customer=${customer.id}`);
    assert.equal(list.json.data[0].total, total); // the invoice is the preview, computed the same way
    const after = await s.adminCall('GET', `/v1/admin/customers/${customer.id}`);
    assert.equal(after.json.plan, 'metered');
    assert.equal(after.json.pending_plan, null);
    assert.equal((await s.call('/v1/basic/x', { key })).json.plan, 'metered'); // the gateway switched too
  });
});

test('cancel at once: access stops and a final invoice bills usage and base fee to date', async () => {
  await withStack({ testClock: true }, async (s) => {
    const { key, customer } = await s.customer('metered');
    const periodDays = (Date.parse(customer.current_period.end) - Date.parse(customer.current_period.start)) / 1000 / DAY;
    for (let i = 0; i < 6; i++) assert.equal((await s.call('/v1/basic/x', { key })).status, 200);
    await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 15 * DAY });
    const c = await s.adminCall('POST', `/v1/admin/customers/${customer.id}/cancel`, { at_period_end: false });
    assert.equal(c.status, 200);
    assert.equal(c.json.status, 'canceled');
    const r = await s.call('/v1/basic/x', { key });
    assert.equal(r.status, 402);
    const list = await s.adminCall('GET', `/v1/admin/invoices?customer=${customer.id}`);
    assert.equal(list.json.data.length, 1);
    const inv = await s.adminCall('GET', `/v1/admin/invoices/${list.json.data[0].id}`);
    assert.deepEqual(inv.json.lines.map((l) => l.amount), [cents(10 * 15 / periodDays), '1.00']); // 4 over x 0.25
    assert.equal((await s.adminCall('POST', `/v1/admin/customers/${customer.id}/cancel`, {})).status, 409);
    // later period closing adds nothing for a canceled customer
    await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 40 * DAY });
    const run = await s.adminCall('POST', '/v1/admin/invoices/run', { customer: customer.id });
    assert.equal(run.json.created, 0);
  });
});

test('cancel at period end keeps access until then', async () => {
  await withStack({ testClock: true }, async (s) => {
    const { key, customer } = await s.customer('metered');
    const c = await s.adminCall('POST', `/v1/admin/customers/${customer.id}/cancel`, { at_period_end: true });
    assert.equal(c.json.cancel_at, c.json.current_period.end);
    assert.equal((await s.call('/v1/basic/x', { key })).status, 200);
    await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * DAY });
    const run = await s.adminCall('POST', '/v1/admin/invoices/run', { customer: customer.id });
    assert.equal(run.json.created, 1);
    assert.equal((await s.call('/v1/basic/x', { key })).status, 402);
  });
});

// Issue 11, item 9: pro -> free during the trial was scheduled for the period's end, and the
// upcoming invoice then billed "Pro plan, 17 of 31 days after the trial".
test('a downgrade during the trial takes effect at once; the higher plan is never billed after it', async () => {
  await withStack({ testClock: true }, async (s) => {
    const { key, customer } = await s.customer('pro');
    assert.equal(customer.status, 'trialing');
    await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 5 * DAY });
    const down = await s.adminCall('PATCH', `/v1/admin/customers/${customer.id}`, { plan: 'free' });
    assert.equal(down.status, 200);
    assert.equal(down.json.plan, 'free');
    assert.equal(down.json.pending_plan, null);
    assert.equal((await s.call('/v1/basic/x', { key })).json.plan, 'free'); // the gateway switched too
    const preview = await s.adminCall('GET', `/v1/admin/customers/${customer.id}/invoices/upcoming`);
    assert.equal(preview.status, 200);
    assert.deepEqual(preview.json.lines.filter((l) => /Pro plan/.test(l.description)), []);
    assert.equal(preview.json.total, '0.00');
    // the period closes with nothing billed for Pro
    await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * DAY });
    assert.equal((await s.adminCall('POST', '/v1/admin/invoices/run', { customer: customer.id })).status, 200);
    const list = await s.adminCall('GET', `/v1/admin/invoices?customer=${customer.id}`);
    for (const inv of list.json.data) assert.equal(inv.total, '0.00');
  });
});
