// notify_order.test.mjs - what docs/api.md ("Order is not guaranteed") promises about the order
// of deliveries to one endpoint: a later event is not held back while an earlier one to the
// same endpoint waits for a retry, and the earlier one still arrives once the receiver takes it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Stack } from './harness.mjs';
import { OPEN, receiver, until } from './notify_ops_helpers.mjs';

test('a later event is delivered while an earlier one to the same endpoint is retrying', async () => {
  let takeCreated = false;
  // refuses key.created until told otherwise, takes everything else
  const rx = await receiver((n) => (JSON.parse(rx.got[n - 1].body).type === 'key.created' && !takeCreated ? 503 : 204));
  const s = await new Stack({ extra: OPEN }).start();
  try {
    const ep = await s.adminCall('POST', '/v1/admin/webhook-endpoints', { url: rx.url, events: ['key.created', 'key.rotated'] });
    assert.equal(ep.status, 201, ep.text);
    const { keyId } = await s.customer('free');
    await until(() => rx.got.some((r) => JSON.parse(r.body).type === 'key.created'), 'a first attempt of key.created');
    assert.equal((await s.adminCall('POST', `/v1/admin/keys/${keyId}/rotate`, {})).status, 201);
    const list = async () => (await s.adminCall('GET', `/v1/admin/webhook-endpoints/${ep.json.id}/deliveries`)).json.data;
    const ds = await until(async () => {
      const l = await list();
      return l.find((d) => d.event_type === 'key.rotated' && d.state === 'delivered') ? l : null;
    }, 'key.rotated delivered');
    assert.equal(ds.find((d) => d.event_type === 'key.created').state, 'pending', 'the earlier event is still retrying');
    takeCreated = true;
    await until(async () => (await list()).every((d) => d.state === 'delivered'), 'key.created delivered at last');
    const accepted = rx.got.map((r) => JSON.parse(r.body).type);
    assert.ok(accepted.lastIndexOf('key.created') > accepted.indexOf('key.rotated'), `arrival order ${accepted}`);
  } finally {
    await s.stop();
    await rx.close();
  }
});
