// plan_change_limits.test.mjs - a plan change converts the rate limiter's state at once (issue 10
// item 9): an upgrade is not throttled at the old plan's rate, a downgrade gives no more room than
// the lower plan.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack } from './harness.mjs';

let s;
before(async () => { s = await new Stack().start(); });
after(async () => { await s.stop(); });

test('upgrade: a free customer who used the burst and moves to pro has pro\'s burst minus what was used at once', async () => {
  const { key, customer } = await s.customer('free');
  for (let i = 0; i < 10; i++) assert.equal((await s.call('/v1/basic/x', { key })).status, 200);
  assert.equal((await s.call('/v1/basic/x', { key })).status, 429);
  const up = await s.adminCall('PATCH', `/v1/admin/customers/${customer.id}`, { plan: 'pro' });
  assert.equal(up.status, 200, up.text);
  assert.equal(up.json.plan, 'pro');
  const codes = [];
  let first;
  for (let i = 0; i < 20; i++) {
    const r = await s.call('/v1/basic/x', { key });
    codes.push(r.status);
    first = first || r;
  }
  assert.deepEqual(codes, Array(20).fill(200));
  assert.equal(first.headers.get('x-ratelimit-limit'), '500');
  // 10 used under free, this one: 489 left (a partly drained cell may add one)
  assert.ok(Number(first.headers.get('x-ratelimit-remaining')) >= 489, first.headers.get('x-ratelimit-remaining'));
});

test('downgrade: a pro customer moved to free has no more room than free\'s burst minus what was used', async () => {
  const { key, customer } = await s.customer('pro');
  for (let i = 0; i < 30; i++) assert.equal((await s.call('/v1/basic/x', { key })).status, 200);
  const t0 = Date.now();
  const down = await s.adminCall('PATCH', `/v1/admin/customers/${customer.id}`, { plan: 'free', when: 'now' });
  assert.equal(down.status, 200, down.text);
  assert.equal(down.json.plan, 'free');
  let allowed = 0, last;
  for (let i = 0; i < 10; i++) {
    last = await s.call('/v1/basic/x', { key });
    allowed += last.status === 200;
  }
  // 30 calls used, free allows 10: none left; free refills one call every 6 s, so a slow run may
  // see one per 6 s that passed (never a timed assertion: the bound follows the elapsed time).
  const refilled = Math.floor((Date.now() - t0) / 6000);
  assert.ok(allowed <= refilled, `${allowed} calls passed after the downgrade, ${refilled} refilled`);
  assert.equal(last.status, 429);
  assert.equal(last.json.error.type, 'rate_limited');
  assert.equal(last.headers.get('x-ratelimit-limit'), '10');
});
