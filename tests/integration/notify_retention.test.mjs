// notify_retention.test.mjs - notifications.retention_days on the real binary: the scheduler
// tick deletes delivered deliveries and their events once they are older than the retention,
// and keeps a pending delivery (and its event) however old, and everything recent. The clock
// moves with serve --test-clock; the tick runs every 10 s, so the test polls for up to 40 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Stack } from './harness.mjs';
import { OPEN, receiver, until } from './notify_ops_helpers.mjs';

test('old finished deliveries and their events are pruned; pending ones and recent ones stay', async () => {
  const ok = await receiver();
  const bad = await receiver(() => 500);
  // b keeps failing, and keeps retrying across the 8-day jump (a 30-day window, never disabled)
  const extra = `${OPEN}  retention_days: 7\n  retry_window_seconds: 2592000\n  disable_after_seconds: 7776000\n`;
  const s = await new Stack({ extra, testClock: true }).start();
  try {
    const a = await s.adminCall('POST', '/v1/admin/webhook-endpoints', { url: ok.url });
    assert.equal(a.status, 201, a.text);
    const b = await s.adminCall('POST', '/v1/admin/webhook-endpoints', { url: bad.url, events: ['key.created'] });
    assert.equal(b.status, 201, b.text);
    const { keyId } = await s.customer('free'); // customer.created (a only), key.created (a and b)
    const deliveries = async (ep) => (await s.adminCall('GET', `/v1/admin/webhook-endpoints/${ep}/deliveries?limit=100`)).json.data;
    await until(async () => (await deliveries(a.json.id)).filter((d) => d.state === 'delivered').length === 2, 'both delivered to a');
    await until(() => bad.got.length >= 1, 'a first failed attempt at b');
    const [pending] = await deliveries(b.json.id);
    assert.equal(pending.state, 'pending');
    const events = async () => (await s.adminCall('GET', '/v1/admin/events?limit=100')).json.data;
    const before = await events();
    const created = before.find((e) => e.type === 'customer.created');
    const keyCreated = before.find((e) => e.type === 'key.created');
    assert.ok(created && keyCreated, JSON.stringify(before));

    const oldIds = (await deliveries(a.json.id)).map((d) => d.id);
    assert.equal(oldIds.length, 2);
    assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 8 * 86400 })).status, 200);
    // an event after the jump: recent, it stays
    assert.equal((await s.adminCall('POST', `/v1/admin/keys/${keyId}/rotate`, {})).status, 201);
    const left = await until(async () => {
      const l = await deliveries(a.json.id);
      return l.some((d) => oldIds.includes(d.id)) ? null : l;
    }, 'a\'s old deliveries pruned', 40000);
    assert.ok(left.some((d) => d.event_type === 'key.rotated'), 'a recent delivery stays');
    const after = await until(async () => {
      const e = await events();
      return e.some((x) => x.id === created.id) ? null : e;
    }, 'customer.created pruned', 40000);
    // key.created stays: b's delivery of it is still pending (retrying)
    assert.ok(after.some((x) => x.id === keyCreated.id), 'the event of a pending delivery stays');
    assert.ok(after.some((x) => x.type === 'key.rotated'), 'a recent event stays');
    const still = await s.adminCall('GET', `/v1/admin/webhook-deliveries/${pending.id}`);
    assert.equal(still.status, 200, still.text);
    assert.equal(still.json.state, 'pending');
    assert.ok(still.json.attempts.length >= 1, 'its attempt log stays');
    for (const id of oldIds) assert.equal((await s.adminCall('GET', `/v1/admin/webhook-deliveries/${id}`)).status, 404);
  } finally {
    await s.stop();
    await ok.close();
    await bad.close();
  }
});
