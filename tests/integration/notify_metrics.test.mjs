// notify_metrics.test.mjs - the notifications' figures on /metrics (metrics/notify_metrics.h)
// against the real binary: a receiver that fails then recovers, and one that fails for good,
// move tollgate_webhook_deliveries_total by exactly the attempts the delivery log shows; the
// response-time histogram counts every attempt; the queue gauge follows a held delivery;
// tollgate_events_total counts by type; a 451 from the SMTP server counts a retry, a 550 a
// failure, the mail that gets through a send.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Stack } from './harness.mjs';
import { startSink } from '../notify/sink.mjs';
import { OPEN, metrics, receiver, until } from './notify_ops_helpers.mjs';

const W = (r) => `tollgate_webhook_deliveries_total{result="${r}"}`;
const E = (r) => `tollgate_emails_total{result="${r}"}`;
const EV = (t) => `tollgate_events_total{type="${t}"}`;

test('webhook counters move exactly with a receiver that fails then recovers, and one that fails for good', async () => {
  const flaky = await receiver((n) => (n <= 3 ? 503 : 204)); // 3 failures, then a 2xx
  const down = await receiver(() => 500);
  const s = await new Stack({ extra: OPEN, testClock: true }).start();
  try {
    const m0 = await metrics(s);
    for (const name of [W('delivered'), W('retry'), W('failed'), 'tollgate_webhook_delivery_seconds_count',
      'tollgate_webhook_queue_pending', EV('key.created'), EV('customer.created'), E('sent')])
      assert.ok(m0.has(name), `${name} in\n${m0.text}`);
    assert.ok(m0.has('tollgate_webhook_delivery_seconds_bucket{le="+Inf"}'));
    // the label set is the fixed list of types, each present from the start
    assert.equal([...m0.keys()].filter((k) => k.startsWith('tollgate_events_total{')).length, 18);

    const a = await s.adminCall('POST', '/v1/admin/webhook-endpoints', { url: flaky.url, events: ['key.created'] });
    const b = await s.adminCall('POST', '/v1/admin/webhook-endpoints', { url: down.url, events: ['customer.created'] });
    assert.equal(a.status, 201, a.text);
    assert.equal(b.status, 201, b.text);
    await s.customer('free');
    const deliveryOf = async (ep) => {
      const l = await s.adminCall('GET', `/v1/admin/webhook-endpoints/${ep}/deliveries`);
      return l.json.data[0] ? (await s.adminCall('GET', `/v1/admin/webhook-deliveries/${l.json.data[0].id}`)).json : null;
    };
    const da = await until(async () => { const d = await deliveryOf(a.json.id); return d && d.state === 'delivered' ? d : null; }, 'a delivered');
    assert.equal(da.attempts.length, 4);
    await until(() => down.got.length >= 1, 'a first attempt at the failing receiver');
    // past the retry window (3 days): the next attempt fails the delivery for good
    assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 4 * 86400 })).status, 200);
    const db = await until(async () => { const d = await deliveryOf(b.json.id); return d && d.state === 'failed' ? d : null; }, 'b failed');
    const tries = db.attempts.length;
    assert.ok(tries >= 2);
    assert.equal(down.got.length, tries);

    const m1 = await until(async () => {
      const m = await metrics(s);
      return m.get(W('failed')) - m0.get(W('failed')) === 1 ? m : null;
    }, 'the failure counted');
    const d = (name) => m1.get(name) - m0.get(name);
    assert.equal(d(W('delivered')), 1);
    assert.equal(d(W('retry')), 3 + (tries - 1));
    assert.equal(d(W('failed')), 1);
    assert.equal(d('tollgate_webhook_delivery_seconds_count'), 4 + tries);
    assert.equal(d('tollgate_webhook_delivery_seconds_bucket{le="+Inf"}'), 4 + tries);
    assert.ok(m1.get('tollgate_webhook_delivery_seconds_sum') >= m0.get('tollgate_webhook_delivery_seconds_sum'));
    assert.equal(d(EV('customer.created')), 1);
    assert.equal(d(EV('key.created')), 1);
    assert.equal(d(EV('invoice.paid')), 0);
    // buckets are cumulative
    const buckets = [...m1.entries()].filter(([k]) => k.startsWith('tollgate_webhook_delivery_seconds_bucket')).map(([, v]) => v);
    assert.deepEqual(buckets, [...buckets].sort((x, y) => x - y));

    // the queue gauge: a delivery to a failing receiver stays pending (retrying), then goes
    assert.equal((await s.adminCall('DELETE', `/v1/admin/webhook-endpoints/${b.json.id}`)).status, 200);
    await until(async () => (await metrics(s)).get('tollgate_webhook_queue_pending') === 0, 'an empty queue');
    flaky.srv.status = () => 503;
    await s.customer('free');
    await until(async () => (await metrics(s)).get('tollgate_webhook_queue_pending') === 1, 'one pending delivery');
    const retriesBefore = (await metrics(s)).get(W('retry'));
    flaky.srv.status = () => 204;
    await until(async () => (await metrics(s)).get('tollgate_webhook_queue_pending') === 0, 'the queue empty again');
    const m2 = await metrics(s);
    assert.equal(m2.get(W('delivered')) - m1.get(W('delivered')), 1);
    assert.ok(m2.get(W('retry')) >= retriesBefore);
    assert.equal(m2.get(W('failed')), m1.get(W('failed')));
    assert.equal(m2.get(EV('key.created')) - m0.get(EV('key.created')), 2);
  } finally {
    await s.stop();
    await flaky.close();
    await down.close();
  }
});

test('mail counters: 451 counts a retry, 550 a failure, a delivered mail a send', async () => {
  const sink = await startSink();
  const s = await new Stack({ extra: `email: {smtp_url: "smtp://127.0.0.1:${sink.port}", from: "API billing <billing@example.com>"}` }).start();
  const signup = (to) => fetch(`${s.admin}/v1/signup`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: to, password: 'correct horse battery', plan: 'free' }),
  });
  const row = async (to, state) => {
    const r = await s.adminCall('GET', '/v1/admin/emails?limit=100');
    return r.json.data.find((m) => m.to === to && m.state === state);
  };
  try {
    const m0 = await metrics(s);
    sink.refuse(2, 451);
    const to = `dev-${Math.random().toString(36).slice(2)}@example.com`;
    assert.equal((await signup(to)).status, 201);
    const sent = await until(() => row(to, 'sent'), 'the mail sent after two 451s');
    assert.deepEqual(sent.attempt_log.map((x) => x.outcome), ['retry', 'retry', 'sent']);
    sink.refuse(1, 550);
    const to2 = `dev-${Math.random().toString(36).slice(2)}@example.com`;
    assert.equal((await signup(to2)).status, 201);
    await until(() => row(to2, 'failed'), 'the mail failed on a 550');
    const m1 = await until(async () => {
      const m = await metrics(s);
      return m.get(E('failed')) - m0.get(E('failed')) === 1 && m.get('tollgate_email_queue_pending') === 0 ? m : null;
    }, 'the counters and an empty mail queue');
    assert.equal(m1.get(E('retry')) - m0.get(E('retry')), 2);
    assert.equal(m1.get(E('sent')) - m0.get(E('sent')), 1);
    assert.equal(m1.get(E('failed')) - m0.get(E('failed')), 1);
    assert.equal(m1.get(EV('customer.created')) - m0.get(EV('customer.created')), 2);
  } finally {
    await s.stop();
    await sink.close();
  }
});
