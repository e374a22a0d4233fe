// stripe_end_to_end.test.mjs - issue 11's whole story with `billing: tollgate`, on the real binary
// against the fake Stripe, with nobody touching anything between the customer's own steps:
// sign-up on the portal (a plan that requires a card: the key answers 402 until one is on file)
// -> a card through Checkout (checkout.session.completed, signed by the fake) -> calls at the
// gateway -> the period ends and the admin thread's own tick closes it and, after
// billing.finalize_after, finalizes the draft and sends it to Stripe -> the Stripe invoice's
// total equals tollgate's to the cent -> three failed payments (invoice.payment_failed, signed)
// -> 402 payment_required at the gateway -> invoice.paid -> 200 within a second, and the tollgate
// invoice is paid. The only admin calls move the test clock and read state.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, sleep } from './harness.mjs';
import { startFakeStripe } from '../stripe/fake_stripe.mjs';

const SECRET = 'whsec_test_end_to_end_0123456789';
// A plan that needs a card before its key works: 20 a month, 2 calls included, 0.35 a call after.
const CARDED = `  carded:
    price: "20"
    requires_payment_method: true
    rate_limit: 1000/sec
    burst: 1000
    included: {api_calls: 2}
    on_quota: bill
    charges: [{metric: api_calls, model: per_unit, unit_price: "0.35"}]
`;
let fake, s;

before(async () => {
  fake = await startFakeStripe();
  s = await new Stack({
    testClock: true,
    extra: `stripe: {secret_key: "sk_test_end_to_end_0123456789", webhook_secret: "${SECRET}", api_base: "${fake.url}", billing: tollgate}
billing: {finalize_after: 1h}
dunning: {grace_days: 7, suspend_after_failures: 3}`,
    morePlans: CARDED,
  }).start();
});
after(async () => {
  if (s) await s.stop();
  if (fake) await fake.close();
});

const control = (method, path, body) => fake.control(method, path, body);

// Polls fn until it returns a truthy value, for at most `ms`.
async function until(fn, what, ms = 40000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

// A cookie-keeping portal client (the sign-up and billing routes need the session and CSRF token).
function portal(base) {
  let cookie = '', csrf = '';
  return async (method, path, body) => {
    const headers = { 'content-type': 'application/json', origin: base };
    if (cookie) headers.cookie = cookie;
    if (csrf) headers['x-csrf-token'] = csrf;
    const r = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const set = r.headers.get('set-cookie');
    if (set) cookie = set.split(';')[0];
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    if (json && json.csrf_token) csrf = json.csrf_token;
    return { status: r.status, json, text };
  };
}

let serverNow = Math.floor(Date.now() / 1000);
async function advance(seconds, stack = s) {
  const c = await stack.adminCall('POST', '/v1/admin/clock', { advance_seconds: seconds });
  assert.equal(c.status, 200, c.text);
  serverNow = Math.floor(Date.parse(c.json.now) / 1000);
}

// Sends a Stripe event about a stored fake object, signed at the server's (test) time.
async function webhook(type, id, stack = s) {
  const d = await control('POST', '/__control/send_webhook', {
    url: `${stack.admin}/v1/webhooks/stripe`, secret: SECRET, type, object: id, created: serverNow, timestamp: serverNow,
  });
  assert.equal(d.delivery.status, 200, JSON.stringify(d));
  return d.event;
}

const cents = (v) => Math.round(Number(v) * 100); // the test's own reading of "12.34"

test('sign-up -> card -> calls -> invoice in Stripe with the same total -> 3 failed payments -> 402 -> paid -> 200 within 1 s', async (t) => {
  // Sign-up: the plan requires a card, so the key is refused until one is on file.
  const me = portal(s.admin);
  const email = `e2e-${Math.random().toString(36).slice(2)}@example.com`;
  const up = await me('POST', '/v1/signup', { email, password: 'correct horse battery', plan: 'carded' });
  assert.equal(up.status, 201, up.text);
  const id = up.json.customer.id, key = up.json.key.secret;
  const refused = await s.call('/v1/basic/x', { key });
  assert.equal(refused.status, 402);
  assert.equal(refused.json.error.type, 'payment_method_required');

  // The outbox made the Stripe customer by itself.
  const cus = await until(async () => {
    const o = await control('GET', '/__control/objects?type=customer');
    return (o.customer || []).find((c) => c.metadata.tollgate_customer === id);
  }, 'the Stripe customer');
  assert.equal(cus.email, email);
  // ... and recorded it (the fake holds the customer a moment before tollgate has its answer).
  await until(async () => (await s.adminCall('GET', `/v1/admin/customers/${id}`)).json.stripe.state === 'done',
    'the Stripe customer recorded');

  // The card: Checkout in setup mode, completed; the fake signs and sends the webhook.
  const setup = await me('POST', '/v1/me/billing/setup');
  assert.equal(setup.status, 200, setup.text);
  const session = /\/c\/pay\/([^/?#]+)/.exec(setup.json.url)[1];
  const done = await control('POST', `/__control/checkout/sessions/${session}/complete`);
  assert.equal(done.event_type, 'checkout.session.completed');
  await webhook('checkout.session.completed', session);
  await until(async () => (await s.call('/v1/basic/x', { key })).status === 200, 'the key to work once the card is on file');

  // Calls: 1 above already, 6 more = 7 in all; 2 included, 5 billed at 0.35.
  for (let i = 0; i < 6; i++) assert.equal((await s.call('/v1/basic/x', { key })).status, 200);

  // The period ends; the admin thread's tick closes it into a draft by itself ...
  await advance(32 * 86400);
  const draft = await until(async () => {
    const l = await s.adminCall('GET', `/v1/admin/invoices?customer=${id}`);
    return l.json.data.find((i) => i.status === 'draft' || i.status === 'open');
  }, 'the period closed into an invoice');
  // ... and finalizes it after billing.finalize_after (1 h), then sends it to Stripe.
  await advance(2 * 3600);
  const tg = await until(async () => {
    const i = await s.adminCall('GET', `/v1/admin/invoices/${draft.id}`);
    return i.json.status === 'open' && i.json;
  }, 'the draft finalized by itself');
  assert.equal(tg.total, '21.75'); // 20 base + 5 x 0.35
  assert.match(tg.number, /\S/);
  const st = await until(async () => {
    const o = await control('GET', '/__control/objects?type=invoice');
    const l = (o.invoice || []).filter((i) => i.metadata.tollgate_invoice === tg.id);
    return l.length === 1 && l[0].status === 'open' && l[0];
  }, 'the Stripe invoice, finalized');
  assert.equal(st.customer, cus.id);
  assert.equal(st.total, cents(tg.total)); // to the cent
  assert.equal(st.lines.data.length, tg.lines.length);
  assert.equal(st.collection_method, 'charge_automatically');

  // Three failed payments: past_due, still served, then suspended with 402 payment_required.
  const status = async () => (await s.adminCall('GET', `/v1/admin/customers/${id}`)).json.status;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const a = await control('POST', `/__control/invoices/${st.id}/payment`, { succeed: false });
    assert.equal(a.event_type, 'invoice.payment_failed');
    const ev = await webhook('invoice.payment_failed', st.id);
    await until(async () => {
      const r = await s.adminCall('GET', `/v1/admin/stripe/events/${ev.id}`);
      return r.status === 200 && r.json.processed_at && r.json;
    }, `event ${ev.id} processed`);
    if (attempt < 3) {
      assert.equal(await status(), 'past_due');
      assert.equal((await s.call('/v1/basic/x', { key })).status, 200, `served after ${attempt} failure(s)`);
    }
  }
  assert.equal(await status(), 'suspended');
  const blocked = await s.call('/v1/basic/x', { key });
  assert.equal(blocked.status, 402);
  assert.equal(blocked.json.error.type, 'payment_required');
  assert.match(blocked.json.error.message, /#billing/);

  // Paid: 200 again within a second of the webhook's answer, and the tollgate invoice is paid.
  const p = await control('POST', `/__control/invoices/${st.id}/payment`, { succeed: true });
  assert.equal(p.event_type, 'invoice.paid');
  await webhook('invoice.paid', st.id);
  const t0 = Date.now();
  await until(async () => (await s.call('/v1/basic/x', { key })).status === 200, 'served again after invoice.paid', 1000);
  t.diagnostic(`served again ${Date.now() - t0} ms after invoice.paid was answered`);
  assert.equal(await status(), 'active');
  assert.equal((await s.adminCall('GET', `/v1/admin/invoices/${tg.id}`)).json.status, 'paid');
  // Exactly one Stripe customer and one Stripe invoice for this customer, whatever was retried.
  const objs = await control('GET', '/__control/objects');
  assert.equal(objs.customer.filter((c) => c.metadata.tollgate_customer === id).length, 1);
  assert.equal(objs.invoice.filter((i) => i.metadata.tollgate_customer === id).length, 1);
});

test('kill -9 while invoices are going to Stripe, with lost answers: afterwards each invoice exists once in Stripe, item for item, to the cent', async () => {
  await control('POST', '/__control/reset');
  const c = await new Stack({
    testClock: true,
    extra: `stripe: {secret_key: "sk_test_end_to_end_0123456789", webhook_secret: "${SECRET}", api_base: "${fake.url}", billing: tollgate}`,
  }).start();
  try {
    const customers = [];
    for (let i = 0; i < 8; i++) {
      const { key, customer } = await c.customer('metered');
      for (let n = 0; n <= i; n++) assert.equal((await c.call('/v1/basic/x', { key })).status, 200);
      customers.push(customer.id);
    }
    const clock = await c.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 });
    assert.equal(clock.status, 200, clock.text);
    // Stripe processes these calls but their answers never arrive: each is sent again later.
    await control('POST', '/__control/fail', { count: 3, kind: 'lost', path: '/v1/invoiceitems', method: 'POST' });
    await control('POST', '/__control/fail', { count: 2, kind: 'lost', path: '/v1/invoices', method: 'POST' });
    const run = await c.adminCall('POST', '/v1/admin/invoices/run', {});
    assert.equal(run.status, 200, run.text);
    const invoices = [];
    for (const id of customers) {
      const l = await c.adminCall('GET', `/v1/admin/invoices?customer=${id}`);
      const f = await c.adminCall('POST', `/v1/admin/invoices/${l.json.data[0].id}/finalize`);
      assert.equal(f.status, 200, f.text);
      invoices.push(f.json);
    }
    // The crash comes while the outbox is busy with them.
    await until(async () => (await control('GET', '/__control/requests')).filter((r) => r.path.startsWith('/v1/invoice')).length >= 6,
      'the outbox at work on the invoices');
    await c.kill9();
    await c.start();
    for (const tg of invoices) {
      const st = await until(async () => {
        const o = await control('GET', '/__control/objects?type=invoice');
        const l = (o.invoice || []).filter((i) => i.metadata.tollgate_invoice === tg.id);
        assert.ok(l.length <= 1, `${tg.id} has ${l.length} Stripe invoices`);
        return l.length === 1 && l[0].status === 'open' && l[0];
      }, `the Stripe invoice of ${tg.id}`, 60000);
      assert.equal(st.total, cents(tg.total), tg.id);
      assert.equal(st.lines.data.length, tg.lines.length, tg.id);
    }
    const objs = await control('GET', '/__control/objects');
    assert.equal(objs.invoice.length, invoices.length, 'no duplicate Stripe invoice');
    assert.equal(objs.customer.length, customers.length, 'no duplicate Stripe customer');
    const items = objs.invoiceitem.filter((i) => invoices.some((tg) => tg.id === i.metadata.tollgate_invoice));
    assert.equal(items.length, invoices.reduce((n, tg) => n + tg.lines.length, 0), 'no duplicate invoice item');
    const lost = (await control('GET', '/__control/requests')).filter((r) => r.status === 'lost');
    assert.equal(lost.length, 5, 'every injected loss happened');
  } finally { await c.stop(); }
});

test('billing: stripe, end to end: catalog, sign-up -> card -> subscription -> calls -> meter events -> Stripe\'s invoice equal to tollgate\'s -> reconcile clean -> 3 failed payments -> 402 -> paid -> 200 within 1 s', async (t) => {
  await control('POST', '/__control/reset');
  const m = await new Stack({
    testClock: true,
    extra: `stripe: {secret_key: "sk_test_end_to_end_0123456789", webhook_secret: "${SECRET}", api_base: "${fake.url}", billing: stripe}
dunning: {grace_days: 7, suspend_after_failures: 3}`,
    morePlans: CARDED,
  }).start();
  try {
    await advance(0, m); // this server's clock, for the signatures below
    // The owner makes the catalog once.
    const sync = await m.cliAsync(['stripe', 'sync-catalog', '-c', m.config]);
    assert.equal(sync.status, 0, sync.stderr + sync.stdout);
    const prices = (await control('GET', '/__control/objects?type=price')).price;
    assert.ok(prices.some((p) => p.lookup_key === 'tollgate_carded_base' && p.unit_amount === 2000));
    assert.ok(prices.some((p) => p.lookup_key === 'tollgate_carded_api_calls' && p.recurring.usage_type === 'metered'));

    // Sign-up on a plan that needs a card: refused until the card is on file.
    const me = portal(m.admin);
    const up = await me('POST', '/v1/signup', { email: `sm-${Math.random().toString(36).slice(2)}@example.com`, password: 'correct horse battery', plan: 'carded' });
    assert.equal(up.status, 201, up.text);
    const id = up.json.customer.id, key = up.json.key.secret;
    assert.equal((await m.call('/v1/basic/x', { key })).status, 402);
    await until(async () => (await m.adminCall('GET', `/v1/admin/customers/${id}`)).json.stripe.state === 'done', 'the Stripe customer');
    const setup = await me('POST', '/v1/me/billing/setup');
    assert.equal(setup.status, 200, setup.text);
    const session = /\/c\/pay\/([^/?#]+)/.exec(setup.json.url)[1];
    await control('POST', `/__control/checkout/sessions/${session}/complete`);
    await webhook('checkout.session.completed', session, m);
    await until(async () => (await m.call('/v1/basic/x', { key })).status === 200, 'the key to work');
    for (let i = 0; i < 6; i++) assert.equal((await m.call('/v1/basic/x', { key })).status, 200); // 7 calls in all

    // The card started the plan and its Stripe subscription, on the catalog's prices.
    const cus = (await control('GET', '/__control/objects?type=customer')).customer.find((c) => c.metadata.tollgate_customer === id);
    const sub = await until(async () => ((await control('GET', '/__control/objects?type=subscription')).subscription || [])
      .find((x) => x.customer === cus.id), 'the subscription');
    assert.deepEqual(sub.items.data.map((i) => i.price.lookup_key).sort(), ['tollgate_carded_api_calls', 'tollgate_carded_base']);

    // The hour ends: meter events carry the 7 calls exactly.
    await advance(2 * 3600, m);
    const meterSum = async () => (((await control('GET', '/__control/objects?type=billing.meter_event'))['billing.meter_event']) || [])
      .filter((e) => e.payload.stripe_customer_id === cus.id).reduce((n, e) => n + Number(e.payload.value), 0);
    await until(async () => (await meterSum()) === 7, 'meter events summing to 7');

    // The period ends: Stripe invoices the subscription; tollgate computes its own invoice.
    const period = (await m.adminCall('GET', `/v1/admin/customers/${id}`)).json.current_period;
    const ps = Math.floor(Date.parse(period.start) / 1000), pe = Math.floor(Date.parse(period.end) / 1000);
    await advance(pe - serverNow + 60, m);
    const made = await control('POST', `/__control/subscriptions/${sub.id}/invoice`, { period_start: ps, period_end: pe });
    const st = made; // the invoice, as Stripe makes it at the period's end
    assert.equal(st.status, 'open', JSON.stringify(made));
    const tg = await until(async () => (await m.adminCall('GET', `/v1/admin/invoices?customer=${id}`)).json.data[0], 'tollgate\'s invoice');
    assert.equal(tg.total, '21.75'); // 20 + 5 x 0.35
    assert.equal(st.total, cents(tg.total), `Stripe ${st.total} against tollgate ${tg.total}`);
    assert.equal(await meterSum(), 7, 'no meter event counted twice');
    const rec = await m.cliAsync(['stripe', 'reconcile', '-c', m.config, '--period', period.start.slice(0, 7)]);
    assert.equal(rec.status, 0, rec.stdout + rec.stderr);
    assert.match(rec.stdout, /no differences/);

    // Dunning on Stripe's invoice, as with billing: tollgate.
    for (let attempt = 1; attempt <= 3; attempt++) {
      await control('POST', `/__control/invoices/${st.id}/payment`, { succeed: false });
      const ev = await webhook('invoice.payment_failed', st.id, m);
      await until(async () => {
        const r = await m.adminCall('GET', `/v1/admin/stripe/events/${ev.id}`);
        return r.status === 200 && r.json.processed_at;
      }, `event ${ev.id} processed`);
    }
    const blocked = await m.call('/v1/basic/x', { key });
    assert.equal(blocked.status, 402);
    assert.equal(blocked.json.error.type, 'payment_required');
    await control('POST', `/__control/invoices/${st.id}/payment`, { succeed: true });
    await webhook('invoice.paid', st.id, m);
    const t0 = Date.now();
    await until(async () => (await m.call('/v1/basic/x', { key })).status === 200, 'served again after invoice.paid', 1000);
    t.diagnostic(`billing: stripe: served again ${Date.now() - t0} ms after invoice.paid was answered`);
    const objs = await control('GET', '/__control/objects');
    assert.equal(objs.subscription.filter((x) => x.customer === cus.id).length, 1, 'one subscription');
    assert.equal(objs.customer.filter((c) => c.metadata.tollgate_customer === id).length, 1, 'one Stripe customer');
  } finally { await m.stop(); }
});
