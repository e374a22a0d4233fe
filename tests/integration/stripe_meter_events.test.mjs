// stripe_meter_events.test.mjs - billing: stripe (issue 11 item 4): usage goes to Stripe as
// Billing meter events, exactly once, on the real binary against the fake Stripe.
//   - calls at the gateway -> once the hour has ended (test clock) the fake holds one meter event
//     per customer, metric and hour, identifier tg_<customer>_<metric>_<hour start>_<seq>,
//     timestamp = the hour's start, values summing to the metered usage exactly, even though the
//     fake answered 429, 500 and lost a processed answer on the way (same Idempotency-Key);
//   - usage arriving for an hour already sent -> a second event, seq 1, with only the new units;
//   - kill -9 of tollgate while the exporter's calls are in flight, restart -> still exact, no
//     identifier twice (the fake refuses duplicates, and the sum is asserted);
//   - a counted event whose answer was lost, sent again once Stripe forgot the idempotency key:
//     Stripe refuses the identifier (400 duplicate_meter_event) and the row is done, not failed;
//   - usage too late for a meter event (older than Stripe takes, its period invoiced) -> an
//     invoice item of tollgate's exact price for those units, never lost; an event Stripe refused
//     for its timestamp (nothing counted) -> its units go the same way.
// tollgate's clock moves with --test-clock (POST /v1/admin/clock); the fake's clock is moved to
// the same time (POST /__control/clock) so that it checks timestamps as Stripe would then. A
// restart puts tollgate's clock back to the real time, so the test moves it forward again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, sleep } from './harness.mjs';
import { startFakeStripe } from '../stripe/fake_stripe.mjs';

const SETTLE = 300; // TG_METER_EXPORT_SETTLE_S
let fake, s;
before(async () => {
  fake = await startFakeStripe();
  s = await new Stack({
    testClock: true,
    extra: `stripe: {secret_key: "sk_test_meter_events_0123", webhook_secret: "whsec_test_meter_events_0123", api_base: "${fake.url}", billing: stripe}`,
  }).start();
  // billing: stripe: the catalog first (the customers' subscriptions name its prices)
  const sync = await s.cliAsync(['stripe', 'sync-catalog', '-c', s.config]);
  assert.equal(sync.status, 0, sync.stderr + sync.stdout);
});
after(async () => { await s.stop(); await fake.close(); });

const control = (method, path, body) => fake.control(method, path, body);

async function until(fn, what, tries = 600) {
  for (let i = 0; i < tries; i++) {
    const v = await fn();
    if (v) return v;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// Moves tollgate's clock (forward only) and, unless tollgateOnly, the fake's to `target` seconds.
async function setClock(target, { tollgateOnly = false } = {}) {
  const cur = await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 0 });
  assert.equal(cur.status, 200, cur.text);
  const nowS = Math.floor(Date.parse(cur.json.now) / 1000);
  assert.ok(target >= nowS, `the clock only moves forward (${target} < ${nowS})`);
  const r = await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: target - nowS });
  assert.equal(r.status, 200, r.text);
  if (!tollgateOnly) await control('POST', '/__control/clock', { now: target });
}

async function restart({ kill = true } = {}) {
  if (kill) await s.kill9(); else await s.stopServer();
  await s.start();
}

// A customer on the `metered` plan (2 api_calls included, 0.25 each after) whose Stripe customer
// exists (the outbox made it).
async function meteredCustomer() {
  const c = await s.customer('metered');
  const stripeId = await until(async () => {
    const objs = await control('GET', '/__control/objects?type=customer');
    const sc = (objs.customer || []).find((o) => o.metadata && o.metadata.tollgate_customer === c.customer.id);
    return sc && sc.id;
  }, 'the Stripe customer');
  return { ...c, stripeId };
}

async function eventsOf(stripeId) {
  const objs = await control('GET', '/__control/objects?type=billing.meter_event');
  return (objs['billing.meter_event'] || []).filter((e) => e.payload.stripe_customer_id === stripeId);
}
const sum = (evs) => evs.reduce((a, e) => a + Number(e.payload.value), 0);

async function calls(key, n) {
  for (let i = 0; i < n; i++) {
    const r = await s.call('/v1/basic/hello', { key });
    assert.equal(r.status, 200, r.text);
  }
}

// The start of an hour at least an hour after both clocks, so that both can be moved to it.
async function futureHour() {
  const cur = await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 0 });
  const nowS = Math.max(Math.floor(Date.parse(cur.json.now) / 1000), Math.floor(Date.now() / 1000));
  return (Math.floor(nowS / 3600) + 2) * 3600;
}

test('meter events: one per customer, metric and hour, summing to the usage exactly through 429, 500, a lost answer, kill -9 and late units (seq 1)', async () => {
  const a = await meteredCustomer();
  const b = await meteredCustomer();
  const H = await futureHour();
  await setClock(H + 10);
  await calls(a.key, 7);
  await calls(b.key, 2);
  assert.equal(await s.usage(a.customer.id), 7);
  // Stripe answers the first meter event calls badly: a 429, a 500, then one that it processes
  // but whose answer is lost. Each is sent again with the same Idempotency-Key.
  await control('POST', '/__control/fail', { count: 1, status: 429, path: '/v1/billing/meter_events' });
  await control('POST', '/__control/fail', { count: 1, status: 500, path: '/v1/billing/meter_events' });
  await control('POST', '/__control/fail', { count: 1, kind: 'lost', path: '/v1/billing/meter_events' });
  // Before the hour has ended (plus the settle delay) nothing is sent; the owner sees the usage
  // waiting, summed rather than listed.
  await setClock(H + 3600 + SETTLE - 60);
  assert.equal((await eventsOf(a.stripeId)).length, 0);
  let view = await s.adminCall('GET', `/v1/admin/customers/${a.customer.id}`);
  assert.equal(view.status, 200, view.text);
  assert.deepEqual(view.json.stripe.usage, { pending_calls: 0, failed_calls: 0, unsent_hours: 1, unsent_units: 7 });
  await setClock(H + 3600 + SETTLE + 5);
  await until(async () => sum(await eventsOf(a.stripeId)) === 7 && sum(await eventsOf(b.stripeId)) === 2, 'the meter events');
  const evA = await eventsOf(a.stripeId);
  assert.equal(evA.length, 1);
  assert.equal(evA[0].identifier, `tg_${a.customer.id}_api_calls_${H}_0`);
  assert.equal(evA[0].event_name, 'api_calls');
  assert.equal(evA[0].timestamp, H);
  assert.equal(evA[0].payload.value, '7');
  // (the event may be counted while its row still waits: its answer was lost, it goes again)
  view = await until(async () => {
    const v = await s.adminCall('GET', `/v1/admin/customers/${a.customer.id}`);
    return v.json.stripe.usage.pending_calls === 0 && v;
  }, "a's calls done");
  assert.deepEqual(view.json.stripe.usage, { pending_calls: 0, failed_calls: 0, unsent_hours: 0, unsent_units: 0 });
  const reqs = (await control('GET', '/__control/requests')).filter((r) => r.path === '/v1/billing/meter_events');
  const keysA = new Set(reqs.filter((r) => r.params.identifier === evA[0].identifier).map((r) => r.idempotency_key));
  assert.deepEqual([...keysA], [`tg_meter_event.create_${evA[0].identifier}`], 'one idempotency key, from the identifier');
  assert.ok(reqs.some((r) => r.status === 429) && reqs.some((r) => r.status === 500),
    `the failed calls were retried: ${JSON.stringify(reqs.map((r) => [r.params.identifier, r.status]))}`);

  // Usage that arrives for hour H after it was sent: tollgate restarts at the real time (its test
  // clock with it) and is moved back inside hour H; the new units go out as seq 1, alone.
  await restart();
  await setClock(H + 100);
  await calls(a.key, 3);
  await setClock(H + 3600 + SETTLE + 5);
  await until(async () => sum(await eventsOf(a.stripeId)) === 10, 'the second meter event');
  const byId = Object.fromEntries((await eventsOf(a.stripeId)).map((e) => [e.identifier, e.payload.value]));
  assert.deepEqual(byId, { [`tg_${a.customer.id}_api_calls_${H}_0`]: '7', [`tg_${a.customer.id}_api_calls_${H}_1`]: '3' });

  // kill -9 while the exporter's calls are in flight: many customers' hour H2, the fake loses
  // answers; tollgate is killed once the first events arrived, restarted, and finishes.
  await restart();
  const H2 = await futureHour();
  await setClock(H2 + 10);
  const many = [];
  for (let i = 0; i < 6; i++) many.push(await meteredCustomer());
  for (const [i, c] of many.entries()) await calls(c.key, i + 1);
  await calls(a.key, 4);
  await control('POST', '/__control/fail', { count: 3, kind: 'lost', path: '/v1/billing/meter_events' });
  await setClock(H2 + 3600 + SETTLE + 5);
  await until(async () => (await eventsOf(many[0].stripeId)).length + (await eventsOf(a.stripeId)).length > 2, 'the first events of hour H2', 1200);
  await s.kill9();
  await s.start();
  await setClock(H2 + 3600 + SETTLE + 5);
  for (const [i, c] of many.entries())
    await until(async () => sum(await eventsOf(c.stripeId)) >= i + 1, `customer ${i}'s events`);
  await until(async () => sum(await eventsOf(a.stripeId)) >= 14, "a's events of H2");
  // exact, and every identifier once (the fake keeps one event per identifier)
  for (const [i, c] of many.entries()) {
    const evs = await eventsOf(c.stripeId);
    assert.equal(sum(evs), i + 1, `customer ${i}`);
    // these customers signed up inside hour H2: their first period starts there, and so does
    // the bucket (its timestamp decides which Stripe period bills it)
    const ps = Math.floor(Date.parse(c.customer.current_period.start) / 1000);
    assert.ok(ps > H2 && ps < H2 + 3600);
    assert.deepEqual(evs.map((e) => [e.identifier, e.timestamp]), [[`tg_${c.customer.id}_api_calls_${ps}_0`, ps]]);
  }
  assert.equal(sum(await eventsOf(a.stripeId)), 14);
  // nothing failed in the outbox
  const failed = await s.adminCall('GET', '/v1/admin/stripe/outbox?state=failed');
  assert.equal(failed.status, 200, failed.text);
  assert.equal(failed.json.data.length, 0, failed.text);
});

test('meter events: a call Stripe counted whose answer was lost, sent again after Stripe forgot the idempotency key, is refused as a duplicate identifier and recorded as done, not failed', async () => {
  const d = await meteredCustomer();
  const H = await futureHour();
  await setClock(H + 10);
  await calls(d.key, 4);
  // every answer to a meter event is lost (Stripe processed the first)
  await control('POST', '/__control/fail', { count: 1000, kind: 'lost', path: '/v1/billing/meter_events' });
  await setClock(H + 3600 + SETTLE + 5);
  await until(async () => (await eventsOf(d.stripeId)).length === 1, 'the event counted by Stripe');
  // tollgate goes down; a day later Stripe has forgotten the key but not the identifier
  await s.kill9();
  await control('POST', '/__control/forget_idempotency', { clear_failures: true });
  await s.start();
  await setClock(H + 3600 + SETTLE + 5 + 86400);
  const id = `tg_${d.customer.id}_api_calls_${H}_0`;
  const row = await until(async () => {
    const r = await s.adminCall('GET', '/v1/admin/stripe/outbox');
    const mine = r.json.data.find((o) => o.idempotency_key === `tg_meter_event.create_${id}`);
    return mine && mine.state !== 'pending' && mine;
  }, 'the meter event row settled');
  assert.equal(row.state, 'done', JSON.stringify(row));
  assert.equal(row.stripe_id, 'duplicate identifier');
  const reqs = (await control('GET', '/__control/requests')).filter((r) => r.path === '/v1/billing/meter_events' &&
    r.params.identifier === id);
  assert.ok(reqs.some((r) => r.status === 400), 'Stripe refused the identifier once');
  const evs = await eventsOf(d.stripeId);
  assert.equal(sum(evs), 4);
  const view = await s.adminCall('GET', `/v1/admin/customers/${d.customer.id}`);
  assert.equal(view.json.stripe.usage.failed_calls, 0);
});

test('meter events: an event Stripe refuses for its timestamp counted nothing: its units go as late usage, and its row cannot be sent again', async () => {
  const e = await meteredCustomer();
  const H = await futureHour();
  await setClock(H + 10);
  await calls(e.key, 3);
  // Stripe's clock is 36 days ahead of the event when it arrives (the outbox was stuck that long)
  await control('POST', '/__control/clock', { now: H + 36 * 86400 });
  await setClock(H + 3600 + SETTLE + 5, { tollgateOnly: true });
  const id = `tg_${e.customer.id}_api_calls_${H}_0`;
  const rowOf = async () => {
    const r = await s.adminCall('GET', '/v1/admin/stripe/outbox');
    return r.json.data.find((o) => o.idempotency_key === `tg_meter_event.create_${id}`);
  };
  const failed = await until(async () => { const o = await rowOf(); return o && o.state === 'failed' && o; }, 'the refused event');
  assert.match(failed.last_error, /timestamp/);
  // tollgate's clock catches up: the hour is past 33 days, the 3 units go as an item:
  // price(3) - price(0) = 1 x 0.25 -> 25 cents
  await setClock(H + 36 * 86400);
  const item = await until(async () => {
    const objs = await control('GET', '/__control/objects?type=invoiceitem');
    return (objs.invoiceitem || []).find((i) => i.metadata && i.metadata.tollgate_customer === e.customer.id);
  }, 'the late usage item');
  assert.equal(item.amount, 25);
  assert.equal(item.metadata.tollgate_units, '3');
  const row = await rowOf();
  assert.equal(row.state, 'done');
  assert.equal(row.stripe_id, 'sent again as late usage');
  assert.equal((await eventsOf(e.stripeId)).length, 0);
});

test('late usage: units too late for a meter event go on the next invoice as an item of the exact price', async () => {
  await restart({ kill: false });
  const c = await meteredCustomer();
  const H = await futureHour();
  await setClock(H + 10);
  await calls(c.key, 1); // inside the allowance of 2
  await setClock(H + 3600 + SETTLE + 5);
  await until(async () => sum(await eventsOf(c.stripeId)) === 1, 'the in-time meter event');
  // 4 more units for hour H arrive, then tollgate is down for 36 days: hour H is past Stripe's
  // 35 days and its period was invoiced. They are priced after the 1 unit sent:
  // price(5) - price(1) = 3 x 0.25 - 0 = 0.75 -> 75 cents.
  await restart();
  await setClock(H + 200);
  await calls(c.key, 4);
  await restart({ kill: false });
  await setClock(H + 36 * 86400);
  const item = await until(async () => {
    const objs = await control('GET', '/__control/objects?type=invoiceitem');
    return (objs.invoiceitem || []).find((i) => i.metadata && i.metadata.tollgate_customer === c.customer.id &&
      i.metadata.tollgate_metric === 'api_calls');
  }, 'the late usage item');
  assert.equal(item.amount, 75);
  assert.equal(item.currency, 'usd');
  assert.equal(item.customer, c.stripeId);
  assert.equal(item.metadata.tollgate_units, '4');
  assert.match(item.description, /api_calls: 4 units used/);
  assert.equal(item.invoice, null, 'pending: swept into the next invoice');
  // and no meter event for them
  assert.equal(sum(await eventsOf(c.stripeId)), 1);
});
