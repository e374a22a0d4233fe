// stripe_subscriptions.test.mjs - with `stripe.billing: stripe`, Stripe subscriptions follow each
// customer's plan (issue 11 item 4, second bullet, and item 5's subscription events), on the real
// binary against the fake Stripe (tests/stripe/fake_stripe.mjs). The catalog that
// `tollgate stripe sync-catalog` would make is created in the fake directly: prices with the
// lookup keys tollgate_<plan>_base and tollgate_<plan>_<metric> (metered, on a meter per metric).
//   1. sign-up (and the admin API) -> one subscription: the plan's prices, trial_end, metadata;
//   2. an upgrade re-prices the same items (proration_behavior=none) and sends tollgate's
//      proration as two invoice items on the subscription, equal to tollgate's own lines;
//   3. a downgrade waits for the period's end (test clock) and is sent when tollgate applies it;
//   4. cancellation: at once is a DELETE (subscription canceled), at period end is
//      cancel_at_period_end, and keeping the subscription sets it back to false; a plan without prices has no subscription, and leaving it creates one
//      anchored on tollgate's period;
//   5. 429 and lost responses on create and swap, and kill -9 mid-way: one subscription, right
//      prices, no idempotency error;
//   6. customer.subscription.updated/deleted, signed by the fake, in any order: the status follows
//      the object's state; a subscription deleted in Stripe while the customer is active is
//      recorded in the status history (the customer stays active); an unknown one is marked.
// Polls use bounded loops (until), never a sleep as synchronisation.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, sleep } from './harness.mjs';
import { startFakeStripe } from '../stripe/fake_stripe.mjs';

const KEY = 'sk_test_tollgate_subscriptions_0123';
const SECRET = 'whsec_test_subscriptions_0123';
const DAY = 86400;

const MORE_PLANS = `  basic:
    price: "10"
    rate_limit: 1000/sec
    burst: 1000
    included: {api_calls: 2}
    on_quota: bill
    charges: [{metric: api_calls, model: per_unit, unit_price: "0.25"}]
  plus:
    price: "40"
    rate_limit: 1000/sec
    burst: 1000
    included: {api_calls: 2}
    on_quota: bill
    charges: [{metric: api_calls, model: per_unit, unit_price: "0.10"}]
  trialpro:
    price: "100"
    trial_days: 14
    rate_limit: 1000/sec
    burst: 1000
    included: {api_calls: 2}
    on_quota: bill
    charges: [{metric: api_calls, model: per_unit, unit_price: "0.05"}]
  cardpro:
    price: "100"
    trial_days: 14
    requires_payment_method: true
    rate_limit: 1000/sec
    burst: 1000
    included: {api_calls: 2}
    on_quota: bill
    charges: [{metric: api_calls, model: per_unit, unit_price: "0.05"}]
`;

let fake;
before(async () => { fake = await startFakeStripe(); });
after(async () => { await fake.close(); });

const control = (method, path, body) => fake.control(method, path, body);

async function api(path, form) {
  const r = await fetch(fake.url + path, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
  assert.equal(r.status, 200, await r.clone().text());
  return r.json();
}

// The catalog sync-catalog would make: {lookup key: price id}.
async function catalog() {
  const meter = await api('/v1/billing/meters', {
    event_name: 'api_calls', display_name: 'API calls', 'default_aggregation[formula]': 'sum',
    'customer_mapping[event_payload_key]': 'stripe_customer_id', 'customer_mapping[type]': 'by_id',
    'value_settings[event_payload_key]': 'value',
  });
  const prices = {};
  for (const [plan, base, unit] of [['basic', 1000, 25], ['plus', 4000, 10], ['trialpro', 10000, 5], ['cardpro', 10000, 5]]) {
    const prod = await api('/v1/products', { name: plan, 'metadata[tollgate_plan]': plan });
    prices[`tollgate_${plan}_base`] = (await api('/v1/prices', {
      product: prod.id, currency: 'usd', unit_amount: String(base), 'recurring[interval]': 'month',
      lookup_key: `tollgate_${plan}_base`,
    })).id;
    prices[`tollgate_${plan}_api_calls`] = (await api('/v1/prices', {
      product: prod.id, currency: 'usd', unit_amount: String(unit), 'recurring[interval]': 'month',
      'recurring[usage_type]': 'metered', 'recurring[meter]': meter.id, lookup_key: `tollgate_${plan}_api_calls`,
    })).id;
  }
  return prices;
}

async function startStack(opts = {}) {
  return new Stack({
    testClock: true,
    morePlans: MORE_PLANS,
    extra: `stripe: {secret_key: "${KEY}", webhook_secret: "${SECRET}", api_base: "${fake.url}", billing: stripe}`,
    ...opts,
  }).start();
}

// Polls fn until it returns a truthy value (bounded: 60 s, enough for a few backoff rounds).
async function until(fn, what) {
  for (let i = 0; i < 600; i++) {
    const v = await fn();
    if (v) return v;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function subsOf(tg) {
  const objs = await control('GET', '/__control/objects?type=subscription');
  return (objs.subscription || []).filter((s) => s.metadata && s.metadata.tollgate_customer === tg);
}

// Every outbox row of a customer (newest first).
async function rowsOf(s, tg) {
  const rows = [];
  let cursor = '';
  for (let i = 0; i < 50; i++) {
    const r = await s.adminCall('GET', `/v1/admin/stripe/outbox?limit=100${cursor ? `&cursor=${cursor}` : ''}`);
    assert.equal(r.status, 200, r.text);
    rows.push(...r.json.data.filter((x) => x.customer === tg));
    if (!r.json.has_more) break;
    cursor = r.json.next_cursor;
  }
  return rows;
}

// Waits until every outbox row of tg is done (none pending or failed) and returns them.
async function synced(s, tg, atLeast = 1) {
  try {
    return await until(async () => {
      const rows = await rowsOf(s, tg);
      if (rows.some((r) => r.state === 'failed')) throw new Error(`a row failed: ${JSON.stringify(rows)}`);
      return rows.length >= atLeast && rows.every((r) => r.state === 'done') && rows;
    }, `the outbox rows of ${tg}`);
  } catch (e) {
    throw new Error(`${e.message}; rows: ${JSON.stringify(await rowsOf(s, tg))}`);
  }
}

const itemPrices = (sub) => sub.items.data.map((i) => i.price.id).sort();
const email = (tag) => `${tag}-${Math.random().toString(36).slice(2)}@example.com`;

async function serverNow(s) {
  const c = await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 0 });
  assert.equal(c.status, 200, c.text);
  return Math.floor(Date.parse(c.json.now) / 1000);
}

test('sign-up and the admin API: one subscription with the plan\'s prices, trial_end and metadata; a plan without prices has none', async () => {
  await control('POST', '/__control/reset');
  const prices = await catalog();
  const s = await startStack();
  try {
    const mail = email('signup');
    const su = await fetch(s.admin + '/v1/signup', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: mail, company: 'Sub Inc', password: 'correct horse battery', plan: 'trialpro' }),
    });
    assert.equal(su.status, 201, await su.text());
    const listed = await s.adminCall('GET', '/v1/admin/customers?limit=1000');
    const tg = listed.json.data.find((c) => c.email === mail);
    assert.equal(tg.status, 'trialing');
    await synced(s, tg.id, 2);
    const subs = await subsOf(tg.id);
    assert.equal(subs.length, 1, 'one subscription');
    const sub = subs[0];
    assert.deepEqual(itemPrices(sub), [prices.tollgate_trialpro_api_calls, prices.tollgate_trialpro_base].sort());
    assert.equal(sub.status, 'trialing');
    assert.equal(sub.trial_end, Math.floor(Date.parse(tg.trial_end) / 1000));
    assert.equal(sub.metadata.tollgate_plan, 'trialpro');
    const metered = sub.items.data.find((i) => i.price.id === prices.tollgate_trialpro_api_calls);
    assert.equal(metered.quantity, undefined, 'a metered item has no quantity');
    assert.equal(metered.metadata.tollgate_slot, 'api_calls');
    const req = (await control('GET', '/__control/requests')).find((r) => r.method === 'POST' && r.path === '/v1/subscriptions');
    assert.equal(req.params.collection_method, 'charge_automatically');
    // The trial ends inside tollgate's first period: Stripe's cycle is anchored on that period's end,
    // and the part after the trial billed prorated (tollgate bills "N of M days after the trial").
    assert.equal(Number(req.params.billing_cycle_anchor), Math.floor(Date.parse(tg.current_period.end) / 1000));
    assert.equal(req.params.proration_behavior, 'create_prorations');
    assert.match(req.idempotency_key, new RegExp(`^tg_subscription\\.create_${tg.id}$`));
    const shown = await s.adminCall('GET', `/v1/admin/customers/${tg.id}`);
    assert.equal(shown.json.stripe.subscription.id, sub.id);

    // The admin API: a plan without a trial; and a plan with nothing to bill in Stripe (free).
    const a = await s.adminCall('POST', '/v1/admin/customers', { email: email('api'), name: 'Api', plan: 'basic' });
    assert.equal(a.status, 201, a.text);
    await synced(s, a.json.id, 2);
    const [asub] = await subsOf(a.json.id);
    assert.equal(asub.status, 'active');
    assert.deepEqual(itemPrices(asub), [prices.tollgate_basic_api_calls, prices.tollgate_basic_base].sort());
    const base = asub.items.data.find((i) => i.price.id === prices.tollgate_basic_base);
    assert.equal(base.quantity, 1);
    const areq = (await control('GET', '/__control/requests')).find((r) => r.method === 'POST' && r.path === '/v1/subscriptions' && r.params.metadata.tollgate_customer === a.json.id);
    assert.equal(areq.params.proration_behavior, 'none', 'no trial, starts with its period: nothing to prorate');
    assert.equal(areq.params.billing_cycle_anchor, undefined);
    assert.equal(areq.params.trial_end, undefined);
    const free = await s.adminCall('POST', '/v1/admin/customers', { email: email('free'), name: 'Free', plan: 'free' });
    await synced(s, free.json.id, 1);
    assert.equal((await rowsOf(s, free.json.id)).length, 1, 'only the Stripe customer');
    assert.equal((await subsOf(free.json.id)).length, 0);
    assert.equal((await s.adminCall('GET', `/v1/admin/customers/${free.json.id}`)).json.stripe.subscription, null);

    // Leaving the free plan mid-period creates the subscription, anchored on tollgate's period end
    // (Stripe bills the rest of the period prorated, as tollgate does).
    await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 10 * DAY });
    const up = await s.adminCall('PATCH', `/v1/admin/customers/${free.json.id}`, { plan: 'basic' });
    assert.equal(up.status, 200, up.text);
    await synced(s, free.json.id, 2);
    assert.equal((await subsOf(free.json.id)).length, 1);
    const create = (await control('GET', '/__control/requests')).filter((r) => r.method === 'POST' && r.path === '/v1/subscriptions' && r.params.metadata.tollgate_customer === free.json.id);
    assert.equal(create.length, 1);
    const created = Math.floor(Date.parse(free.json.created_at) / 1000);
    assert.ok(Number(create[0].params.billing_cycle_anchor) > created + 27 * DAY, 'anchored on the period end');
    assert.equal(create[0].params.proration_behavior, 'create_prorations');
  } finally { await s.stop(); }
});

test('an upgrade re-prices the items with proration_behavior=none and sends tollgate\'s proration as invoice items; a downgrade waits for the period\'s end', async () => {
  await control('POST', '/__control/reset');
  const prices = await catalog();
  const s = await startStack();
  try {
    const c = await s.adminCall('POST', '/v1/admin/customers', { email: email('up'), name: 'Up', plan: 'basic' });
    const tg = c.json.id;
    await synced(s, tg, 2);
    const [before] = await subsOf(tg);
    const itemIds = before.items.data.map((i) => i.id).sort();

    await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 10 * DAY });
    const up = await s.adminCall('PATCH', `/v1/admin/customers/${tg}`, { plan: 'plus' });
    assert.equal(up.status, 200, up.text);
    await synced(s, tg, 5); // customer, subscription, the swap, two invoice items
    const [after] = await subsOf(tg);
    assert.equal(after.id, before.id);
    assert.deepEqual(itemPrices(after), [prices.tollgate_plus_api_calls, prices.tollgate_plus_base].sort());
    assert.deepEqual(after.items.data.map((i) => i.id).sort(), itemIds, 'the same items, re-priced');
    const reqs = await control('GET', '/__control/requests');
    const swap = reqs.filter((r) => r.method === 'POST' && r.path === `/v1/subscriptions/${before.id}`);
    assert.equal(swap.length, 1);
    assert.equal(swap[0].params.proration_behavior, 'none', 'no Stripe proration');
    assert.equal(swap[0].params.metadata.tollgate_plan, 'plus');

    // tollgate's proration lines (its own invoice) and the Stripe items: Stripe billed Basic's 10.00
    // for this period in advance, so the items are Plus for the rest (40.00 + Plus's credit) and
    // Basic's unused time (Basic's part - 10.00): Stripe's period total = tollgate's.
    const upcoming = await s.adminCall('GET', `/v1/admin/customers/${tg}/invoices/upcoming`);
    assert.equal(upcoming.status, 200, upcoming.text);
    const cents = (d) => Math.round(Number(upcoming.json.lines.find((l) => l.description.startsWith(d)).amount) * 100);
    const oldPart = cents('basic plan until the change'), newCredit = cents('plus plan credit');
    assert.ok(oldPart > 0 && newCredit < 0, JSON.stringify(upcoming.json.lines));
    const items = reqs.filter((r) => r.method === 'POST' && r.path === '/v1/invoiceitems');
    assert.equal(items.length, 2);
    const made = (await control('GET', '/__control/objects?type=invoiceitem')).invoiceitem || [];
    assert.equal(made.length, 2);
    for (const ii of made) assert.equal(ii.parent.subscription_details.subscription, before.id);
    for (const it of items) {
      assert.equal(it.params.subscription, before.id);
      assert.equal(it.params.customer, before.customer);
      assert.equal(it.params.currency, 'usd');
    }
    const amounts = items.map((i) => Number(i.params.amount)).sort((x, y) => x - y);
    assert.deepEqual(amounts, [oldPart - 1000, 4000 + newCredit]);
    assert.equal(amounts[0] + amounts[1] + 1000, 4000 + oldPart + newCredit, 'Stripe\'s period = tollgate\'s');

    // A downgrade is scheduled for the period's end: nothing is sent until tollgate applies it.
    const down = await s.adminCall('PATCH', `/v1/admin/customers/${tg}`, { plan: 'basic' });
    assert.equal(down.status, 200, down.text);
    assert.equal(down.json.pending_plan, 'basic');
    await synced(s, tg, 5);
    assert.deepEqual(itemPrices((await subsOf(tg))[0]), [prices.tollgate_plus_api_calls, prices.tollgate_plus_base].sort());
    await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 25 * DAY });
    const run = await s.adminCall('POST', '/v1/admin/invoices/run');
    assert.equal(run.status, 200, run.text);
    await until(async () => (await s.adminCall('GET', `/v1/admin/customers/${tg}`)).json.plan === 'basic', 'the downgrade applied');
    // (the clock moved past 30 days: the outbox pruned its first done rows, the subscription map stays)
    const want = [prices.tollgate_basic_api_calls, prices.tollgate_basic_base].sort();
    await until(async () => JSON.stringify(itemPrices((await subsOf(tg))[0])) === JSON.stringify(want), 'the swap back');
    await synced(s, tg, 1);
    assert.equal((await control('GET', '/__control/requests')).filter((r) => r.path === '/v1/invoiceitems').length, 2,
      'no proration for a change at the period\'s end');
  } finally { await s.stop(); }
});

test('cancellation: at once deletes the subscription, at the period\'s end sets cancel_at_period_end', async () => {
  await control('POST', '/__control/reset');
  await catalog();
  const s = await startStack();
  try {
    const a = (await s.adminCall('POST', '/v1/admin/customers', { email: email('now'), name: 'Now', plan: 'basic' })).json;
    const b = (await s.adminCall('POST', '/v1/admin/customers', { email: email('end'), name: 'End', plan: 'plus' })).json;
    await synced(s, a.id, 2);
    await synced(s, b.id, 2);
    assert.equal((await s.adminCall('POST', `/v1/admin/customers/${a.id}/cancel`, { at_period_end: false })).status, 200);
    assert.equal((await s.adminCall('POST', `/v1/admin/customers/${b.id}/cancel`, { at_period_end: true })).status, 200);
    await synced(s, a.id, 3);
    await synced(s, b.id, 3);
    const [sa] = await subsOf(a.id), [sb] = await subsOf(b.id);
    assert.equal(sa.status, 'canceled');
    assert.equal(sb.status, 'active');
    assert.equal(sb.cancel_at_period_end, true);
    const del = (await control('GET', '/__control/requests')).filter((r) => r.method === 'DELETE');
    assert.equal(del.length, 1);
    assert.equal(del[0].path, `/v1/subscriptions/${sa.id}`);
    assert.equal(del[0].params.invoice_now, 'true');
    assert.equal(del[0].params.prorate, 'true');

    // keeping the subscription before the period ends: cancel_at_period_end=false on the same one
    const kept = await s.adminCall('POST', `/v1/admin/customers/${b.id}/resume`);
    assert.equal(kept.status, 200, kept.text);
    assert.equal(kept.json.cancel_at, null);
    await synced(s, b.id, 4);
    const [kb] = await subsOf(b.id);
    assert.equal(kb.id, sb.id);
    assert.equal(kb.status, 'active');
    assert.equal(kb.cancel_at_period_end, false);
    const sent = (await control('GET', '/__control/requests')).filter((r) => r.path === `/v1/subscriptions/${sb.id}` && r.method === 'POST');
    assert.deepEqual(sent.map((r) => r.params.cancel_at_period_end), ['true', 'false']);
  } finally { await s.stop(); }
});

test('429s and lost responses on create and on the swap: still one subscription, the right prices, no idempotency error', async () => {
  await control('POST', '/__control/reset');
  const prices = await catalog();
  await control('POST', '/__control/fail', { count: 1, status: 429, path: '/v1/subscriptions', method: 'POST' });
  await control('POST', '/__control/fail', { count: 1, kind: 'lost', path: '/v1/subscriptions', method: 'POST' });
  await control('POST', '/__control/fail', { count: 1, status: 429, path: '/v1/prices', method: 'GET' });
  const s = await startStack();
  try {
    const tg = (await s.adminCall('POST', '/v1/admin/customers', { email: email('lost'), name: 'Lost', plan: 'basic' })).json.id;
    await synced(s, tg, 2);
    assert.equal((await subsOf(tg)).length, 1, 'one subscription after a 429 and a lost answer');
    const [sub] = await subsOf(tg);
    // The swap's answer is lost after Stripe made it: the retry reads a subscription that has the
    // new prices already and sends nothing more.
    await control('POST', '/__control/fail', { count: 1, kind: 'lost', path: `/v1/subscriptions/${sub.id}`, method: 'POST' });
    assert.equal((await s.adminCall('PATCH', `/v1/admin/customers/${tg}`, { plan: 'plus', when: 'now' })).status, 200);
    await synced(s, tg, 3);
    assert.deepEqual(itemPrices((await subsOf(tg))[0]), [prices.tollgate_plus_api_calls, prices.tollgate_plus_base].sort());
    const reqs = await control('GET', '/__control/requests');
    const swaps = reqs.filter((r) => r.method === 'POST' && r.path === `/v1/subscriptions/${sub.id}`);
    assert.deepEqual(swaps.map((r) => r.status), ['lost'], 'one swap, not repeated');
    assert.ok(!reqs.some((r) => r.status === 400), 'no idempotency or other error');
    const creates = reqs.filter((r) => r.method === 'POST' && r.path === '/v1/subscriptions');
    assert.ok(creates.length >= 3, 'the create was retried');
    assert.equal(new Set(creates.map((r) => r.idempotency_key)).size, 1, 'with one key');
  } finally { await s.stop(); }
});

test('kill -9 while subscriptions are being created, then restart: one subscription per customer', async () => {
  await control('POST', '/__control/reset');
  await catalog();
  await control('POST', '/__control/fail', { count: 4, kind: 'lost', path: '/v1/subscriptions', method: 'POST' });
  const s = await startStack();
  try {
    const ids = [];
    for (let i = 0; i < 8; i++) {
      const c = await s.adminCall('POST', '/v1/admin/customers', { email: email(`crash${i}`), name: `Crash ${i}`, plan: i % 2 ? 'plus' : 'basic' });
      assert.equal(c.status, 201, c.text);
      ids.push(c.json.id);
    }
    await until(async () => (await control('GET', '/__control/requests')).filter((r) => r.path === '/v1/subscriptions').length >= 3, 'the outbox at work');
    await s.kill9();
    await s.start();
    for (const id of ids) await synced(s, id, 2);
    const all = (await control('GET', '/__control/objects?type=subscription')).subscription || [];
    assert.equal(all.length, ids.length, 'no duplicate subscription');
    for (const id of ids) assert.equal((await subsOf(id)).length, 1, id);
  } finally { await s.stop(); }
});

test('customer.subscription.updated/deleted in any order: the object\'s state wins; deleted in Stripe is shown, the customer stays active; unknown ones are marked', async () => {
  await control('POST', '/__control/reset');
  await catalog();
  const s = await startStack();
  const hook = `${s.admin}/v1/webhooks/stripe`;
  const send = async (type, object, created) => {
    const r = await control('POST', '/__control/send_webhook', { url: hook, secret: SECRET, type, object, created });
    assert.equal(r.delivery.status, 200, r.delivery.body);
    return r.event.id;
  };
  const outcome = async (id) => until(async () => {
    const r = await s.adminCall('GET', `/v1/admin/stripe/events/${id}`);
    return r.status === 200 && r.json.processed_at ? r.json : null;
  }, `event ${id}`);
  const subStatus = async (tg) => (await s.adminCall('GET', `/v1/admin/customers/${tg}`)).json.stripe.subscription;
  try {
    const a = (await s.adminCall('POST', '/v1/admin/customers', { email: email('hooks'), name: 'Hooks', plan: 'basic' })).json;
    await synced(s, a.id, 2);
    const [sub] = await subsOf(a.id);
    const t = Math.floor(Date.now() / 1000);
    // Newer first, older after: the older (past_due) changes nothing.
    let e = await send('customer.subscription.updated', { ...sub, status: 'active' }, t + 10);
    assert.match((await outcome(e)).outcome, /subscription sub_\w+ active/);
    e = await send('customer.subscription.updated', { ...sub, status: 'past_due' }, t + 5);
    assert.match((await outcome(e)).outcome, /^stale/);
    assert.equal((await subStatus(a.id)).status, 'active');
    // Deleted (canceled is final), then a late "updated" from before it: still canceled.
    e = await send('customer.subscription.deleted', { ...sub, status: 'canceled', canceled_at: t + 20, ended_at: t + 20 }, t + 20);
    const del = await outcome(e);
    assert.match(del.outcome, /canceled outside tollgate: the customer stays active/);
    e = await send('customer.subscription.updated', { ...sub, status: 'active' }, t + 30);
    assert.match((await outcome(e)).outcome, /canceled already/);
    assert.equal((await subStatus(a.id)).status, 'canceled');
    const cust = await s.adminCall('GET', `/v1/admin/customers/${a.id}`);
    assert.equal(cust.json.status, 'active', 'a deletion in Stripe does not cancel the customer');
    const hist = await s.adminCall('GET', `/v1/admin/customers/${a.id}/status_history`);
    assert.equal(hist.status, 200, hist.text);
    const h = JSON.stringify(hist.json);
    assert.match(h, /was canceled in Stripe: the customer stays active/);

    // A subscription tollgate did not make is recorded and marked, not an error.
    e = await send('customer.subscription.updated', { ...sub, id: 'sub_notours123', metadata: {} }, t);
    const unknown = await outcome(e);
    assert.match(unknown.outcome, /^unknown_subscription/);
    assert.ok(!unknown.error, JSON.stringify(unknown));

    // Tollgate's own cancellation, delivered by the fake's endpoint: expected, no history entry.
    const b = (await s.adminCall('POST', '/v1/admin/customers', { email: email('own'), name: 'Own', plan: 'basic' })).json;
    await synced(s, b.id, 2);
    await control('POST', '/__control/webhook_endpoint', { url: hook, secret: SECRET });
    assert.equal((await s.adminCall('POST', `/v1/admin/customers/${b.id}/cancel`, { at_period_end: false })).status, 200);
    await synced(s, b.id, 3);
    await until(async () => (await subStatus(b.id)).status === 'canceled', 'the deletion recorded');
    const bh = JSON.stringify((await s.adminCall('GET', `/v1/admin/customers/${b.id}/status_history`)).json);
    assert.doesNotMatch(bh, /canceled in Stripe/);
    await control('POST', '/__control/webhook_endpoint', { url: null });
  } finally { await s.stop(); }
});

test('a plan that requires a card: no subscription while incomplete; checkout.session.completed starts it, with the trial from the card', async () => {
  await control('POST', '/__control/reset');
  const prices = await catalog();
  const s = await startStack();
  try {
    const c = (await s.adminCall('POST', '/v1/admin/customers', { email: email('card'), name: 'Card', plan: 'cardpro' })).json;
    assert.equal(c.status, 'incomplete');
    await synced(s, c.id, 1);
    assert.equal((await rowsOf(s, c.id)).length, 1, 'the Stripe customer only');
    const stripeCustomer = (await s.adminCall('GET', `/v1/admin/customers/${c.id}`)).json.stripe.customer_id;
    const r = await control('POST', '/__control/send_webhook', {
      url: `${s.admin}/v1/webhooks/stripe`, secret: SECRET, type: 'checkout.session.completed',
      object: { id: 'cs_test_card_subscriptions_1', object: 'checkout.session', mode: 'setup', status: 'complete',
        customer: stripeCustomer, metadata: { tollgate_customer: c.id } },
    });
    assert.equal(r.delivery.status, 200, r.delivery.body);
    const started = await until(async () => {
      const x = (await s.adminCall('GET', `/v1/admin/customers/${c.id}`)).json;
      return x.status === 'trialing' && x;
    }, 'the trial started by the card');
    await synced(s, c.id, 2);
    const subs = await subsOf(c.id);
    assert.equal(subs.length, 1);
    assert.equal(subs[0].trial_end, Math.floor(Date.parse(started.trial_end) / 1000));
    assert.deepEqual(itemPrices(subs[0]), [prices.tollgate_cardpro_api_calls, prices.tollgate_cardpro_base].sort());
  } finally { await s.stop(); }
});

test('customers from before billing: stripe get their subscription when it is turned on, once; free plans get none', async () => {
  await control('POST', '/__control/reset');
  const prices = await catalog();
  const s = await startStack({
    extra: `stripe: {secret_key: "${KEY}", webhook_secret: "${SECRET}", api_base: "${fake.url}", billing: tollgate}`,
  });
  try {
    const paid = [], free = [];
    for (let i = 0; i < 2; i++) {
      const c = await s.adminCall('POST', '/v1/admin/customers', { email: email('before'), plan: 'basic' });
      assert.equal(c.status, 201, c.text);
      paid.push(c.json.id);
    }
    const f = await s.adminCall('POST', '/v1/admin/customers', { email: email('before-free'), plan: 'free' });
    assert.equal(f.status, 201, f.text);
    free.push(f.json.id);
    for (const id of [...paid, ...free]) await synced(s, id); // their Stripe customers exist
    assert.equal(((await control('GET', '/__control/objects?type=subscription')).subscription || []).length, 0,
      'billing: tollgate keeps no subscription');

    // The owner switches to billing: stripe and restarts.
    await s.stopServer();
    s.opts.extra = `stripe: {secret_key: "${KEY}", webhook_secret: "${SECRET}", api_base: "${fake.url}", billing: stripe}`;
    await s.start();
    for (const id of paid) {
      await synced(s, id, 2);
      const subs = await subsOf(id);
      assert.equal(subs.length, 1, id);
      assert.deepEqual(itemPrices(subs[0]), [prices.tollgate_basic_api_calls, prices.tollgate_basic_base].sort());
    }
    assert.equal((await subsOf(free[0])).length, 0, 'a free plan has nothing to bill in Stripe');
    // Another restart queues nothing new.
    await s.stopServer();
    await s.start();
    for (const id of paid) {
      await synced(s, id, 2);
      assert.equal((await subsOf(id)).length, 1, id);
      assert.equal((await rowsOf(s, id)).filter((r) => r.kind === 'subscription.create').length, 1, id);
    }
  } finally { await s.stop(); }
});
