// stripe_cards.test.mjs - payment methods (issue 11 item 2), on the real binary against the fake
// Stripe (tests/stripe/fake_stripe.mjs):
//   - POST /v1/me/billing/setup makes a Checkout Session in setup mode for the customer's Stripe
//     customer (mode, customer, currency, success_url/cancel_url back to the portal's billing
//     section, metadata[tollgate_customer]) and answers its url; POST /v1/me/billing/portal makes
//     a customer portal session (customer, return_url) and answers its url;
//   - both need a session and the CSRF token, and say 409 when Stripe is not configured;
//   - completing the session in the fake (which sends a signed checkout.session.completed to
//     tollgate) records the card: payment_method_on_file_at, once (a replay keeps the first time);
//   - a requires_payment_method plan: sign-up makes the customer `incomplete` (its key answers 402
//     payment_method_required with the billing link) until the card is on file, then the trial
//     starts from the card's time (trial_end = card + trial_days) and the key works; an upgrade
//     to such a plan without a card is refused with 409 payment_method_required.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, sleep } from './harness.mjs';
import { startFakeStripe } from '../stripe/fake_stripe.mjs';

const SECRET = 'whsec_tollgate_cards_0123456789';
const KEY = 'sk_test_tollgate_cards_0123456789';
let fake, stack;

before(async () => {
  fake = await startFakeStripe();
  stack = await new Stack({
    extra: `stripe: {secret_key: "${KEY}", webhook_secret: "${SECRET}", api_base: "${fake.url}"}`,
    morePlans: `  carded:
    price: "29"
    trial_days: 7
    requires_payment_method: true
    rate_limit: 100/min
    burst: 100
    endpoints: ["/v1/basic/*"]
`,
  }).start();
  await control('POST', '/__control/webhook_endpoint', { url: `${stack.admin}/v1/webhooks/stripe`, secret: SECRET });
});
after(async () => {
  if (stack) await stack.stop();
  if (fake) await fake.close();
});

const control = (method, path, body) => fake.control(method, path, body);

// Polls fn until it returns a truthy value (bounded: 20 s).
async function until(fn, what) {
  for (let i = 0; i < 200; i++) {
    const v = await fn();
    if (v) return v;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// A cookie-keeping portal client.
function client(base) {
  let cookie = '', csrf = '';
  const call = async (method, path, body, { noCsrf = false } = {}) => {
    const headers = { 'content-type': 'application/json' };
    if (cookie) headers.cookie = cookie;
    if (csrf && !noCsrf) headers['x-csrf-token'] = csrf;
    const r = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const set = r.headers.get('set-cookie');
    if (set) cookie = set.split(';')[0];
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    if (json && json.csrf_token) csrf = json.csrf_token;
    return { status: r.status, json, text };
  };
  return { call };
}

const email = () => `card-${Math.random().toString(36).slice(2)}@example.com`;

async function signedUp(s, plan = 'free') {
  const c = client(s.admin);
  const r = await c.call('POST', '/v1/signup', { email: email(), password: 'correct horse battery', plan });
  assert.equal(r.status, 201, r.text);
  c.id = r.json.customer.id;
  c.key = r.json.key.secret;
  return c;
}

// The customer's Stripe customer, once the fake holds it AND tollgate recorded the answer (the fake
// has the object a moment before: the billing routes answer 409 stripe_customer_pending until then).
async function stripeCustomerOf(id) {
  const cus = await until(async () => {
    const objs = await control('GET', '/__control/objects?type=customer');
    return (objs.customer || []).find((o) => o.metadata && o.metadata.tollgate_customer === id);
  }, 'the Stripe customer');
  await until(async () => (await stack.adminCall('GET', `/v1/admin/customers/${id}`)).json.stripe.state === 'done',
    'tollgate to record the Stripe customer');
  return cus;
}

test('the setup session is a Checkout Session in setup mode for the Stripe customer, back to the billing section', async () => {
  const c = await signedUp(stack);
  const cus = await stripeCustomerOf(c.id);
  const r = await c.call('POST', '/v1/me/billing/setup');
  assert.equal(r.status, 200, r.text);
  assert.match(r.json.url, /^https:\/\/checkout\.stripe\.com\//);
  const reqs = (await control('GET', '/__control/requests')).filter((q) => q.path === '/v1/checkout/sessions');
  const q = reqs[reqs.length - 1];
  assert.equal(q.method, 'POST');
  assert.equal(q.status, 200);
  assert.ok(q.idempotency_key || q.idempotencyKey, 'an Idempotency-Key was sent');
  assert.equal(q.params.mode, 'setup');
  assert.equal(q.params.customer, cus.id);
  assert.equal(q.params.currency, 'usd');
  assert.equal(q.params.success_url, `${stack.admin}/portal/app.html#billing`);
  assert.equal(q.params.cancel_url, `${stack.admin}/portal/app.html#billing`);
  assert.deepEqual(q.params.metadata, { tollgate_customer: c.id });

  const p = await c.call('POST', '/v1/me/billing/portal');
  assert.equal(p.status, 200, p.text);
  assert.match(p.json.url, /^https:\/\/billing\.stripe\.com\//);
  const preqs = (await control('GET', '/__control/requests')).filter((x) => x.path === '/v1/billing_portal/sessions');
  assert.equal(preqs[preqs.length - 1].params.customer, cus.id);
  assert.equal(preqs[preqs.length - 1].params.return_url, `${stack.admin}/portal/app.html#billing`);
});

test('completing the setup session (checkout.session.completed) records the card on file, once', async () => {
  const c = await signedUp(stack);
  await stripeCustomerOf(c.id);
  let me = await c.call('GET', '/v1/me');
  assert.equal(me.json.payment_method_on_file_at, null);
  const r = await c.call('POST', '/v1/me/billing/setup');
  assert.equal(r.status, 200, r.text);
  const sessionId = /\/c\/pay\/([^/?#]+)/.exec(r.json.url)[1];
  const done = await control('POST', `/__control/checkout/sessions/${sessionId}/complete`);
  assert.equal(done.event_type, 'checkout.session.completed');
  me = await until(async () => {
    const m = await c.call('GET', '/v1/me');
    return m.json.payment_method_on_file_at ? m : null;
  }, 'the card on file');
  const first = me.json.payment_method_on_file_at;
  // The owner sees it too.
  const adm = await stack.adminCall('GET', `/v1/admin/customers/${c.id}`);
  assert.equal(adm.json.payment_method_on_file_at, first);
  // A second card (another completed session) keeps the first time: idempotent.
  const r2 = await c.call('POST', '/v1/me/billing/setup');
  const sid2 = /\/c\/pay\/([^/?#]+)/.exec(r2.json.url)[1];
  await control('POST', `/__control/checkout/sessions/${sid2}/complete`);
  const deliveries = await control('GET', '/__control/deliveries');
  assert.ok(deliveries.filter((d) => d.type === 'checkout.session.completed').every((d) => d.status === 200));
  me = await c.call('GET', '/v1/me');
  assert.equal(me.json.payment_method_on_file_at, first);
});

test('the billing routes need a session and the CSRF token', async () => {
  const anon = client(stack.admin);
  assert.equal((await anon.call('POST', '/v1/me/billing/setup')).status, 401);
  assert.equal((await anon.call('POST', '/v1/me/billing/portal')).status, 401);
  const c = await signedUp(stack);
  const r = await c.call('POST', '/v1/me/billing/setup', undefined, { noCsrf: true });
  assert.equal(r.status, 403, r.text);
  assert.equal(r.json.error.type, 'csrf_failed');
  const p = await c.call('POST', '/v1/me/billing/portal', undefined, { noCsrf: true });
  assert.equal(p.status, 403, p.text);
});

test('without a stripe section the billing routes answer 409 stripe_not_configured', async () => {
  const s = await new Stack().start();
  try {
    const c = await signedUp(s);
    const r = await c.call('POST', '/v1/me/billing/setup');
    assert.equal(r.status, 409, r.text);
    assert.equal(r.json.error.type, 'stripe_not_configured');
    assert.equal((await c.call('POST', '/v1/me/billing/portal')).json.error.type, 'stripe_not_configured');
  } finally {
    await s.stop();
  }
});

async function completeSetup(c) {
  const r = await c.call('POST', '/v1/me/billing/setup');
  assert.equal(r.status, 200, r.text);
  const sid = /\/c\/pay\/([^/?#]+)/.exec(r.json.url)[1];
  const done = await control('POST', `/__control/checkout/sessions/${sid}/complete`);
  assert.equal(done.event_type, 'checkout.session.completed');
}

test('a requires_payment_method plan: the key answers 402 payment_method_required until the card is on file, then the trial starts', async () => {
  const c = await signedUp(stack, 'carded');
  let me = await c.call('GET', '/v1/me');
  assert.equal(me.json.status, 'incomplete');
  assert.equal(me.json.trial_end, null);
  const refused = await stack.call('/v1/basic/x', { key: c.key });
  assert.equal(refused.status, 402);
  assert.equal(refused.json.error.type, 'payment_method_required');
  assert.ok(refused.json.error.message.includes(`${stack.admin}/portal/`) && refused.json.error.message.includes('#billing'), refused.json.error.message);
  await stripeCustomerOf(c.id);
  await completeSetup(c);
  me = await until(async () => {
    const m = await c.call('GET', '/v1/me');
    return m.json.status === 'trialing' ? m : null;
  }, 'the trial to start');
  const card = Date.parse(me.json.payment_method_on_file_at);
  assert.equal(Date.parse(me.json.trial_end) - card, 7 * 86400 * 1000);
  const ok = await until(async () => {
    const r = await stack.call('/v1/basic/x', { key: c.key });
    return r.status === 200 ? r : null;
  }, 'the key to work');
  assert.equal(ok.status, 200);
  const hist = await stack.adminCall('GET', `/v1/admin/customers/${c.id}/status_history`);
  assert.ok(hist.json.data.some((h) => h.from === 'incomplete' && h.to === 'trialing'), JSON.stringify(hist.json));
});

test('plans without the flag are unchanged; an upgrade to a requires_payment_method plan needs a card first', async () => {
  const c = await signedUp(stack, 'free');
  assert.equal((await c.call('GET', '/v1/me')).json.status, 'active');
  assert.equal((await stack.call('/v1/basic/x', { key: c.key })).status, 200);
  const up = await c.call('POST', '/v1/me/plan', { plan: 'carded' });
  assert.equal(up.status, 409, up.text);
  assert.equal(up.json.error.type, 'payment_method_required');
  assert.equal((await c.call('GET', '/v1/me')).json.plan, 'free');
  await stripeCustomerOf(c.id);
  await completeSetup(c);
  await until(async () => (await c.call('GET', '/v1/me')).json.payment_method_on_file_at, 'the card on file');
  const up2 = await c.call('POST', '/v1/me/plan', { plan: 'carded' });
  assert.equal(up2.status, 200, up2.text);
  assert.equal(up2.json.plan, 'carded');
});

test('the admin API refuses a requires_payment_method plan without a card too: the rule is the service\'s, not the portal\'s', async () => {
  const { customer } = await stack.customer('free');
  const r = await stack.adminCall('PATCH', `/v1/admin/customers/${customer.id}`, { plan: 'carded' });
  assert.equal(r.status, 409, r.text);
  assert.equal(r.json.error.type, 'payment_method_required');
  assert.equal((await stack.adminCall('GET', `/v1/admin/customers/${customer.id}`)).json.plan, 'free');
});

test('an incomplete customer who moves to a plan without the flag starts it at once, is served, and owes nothing for the other plan', async () => {
  const c = await signedUp(stack, 'carded');
  assert.equal((await c.call('GET', '/v1/me')).json.status, 'incomplete');
  assert.equal((await stack.call('/v1/basic/x', { key: c.key })).status, 402);
  const down = await c.call('POST', '/v1/me/plan', { plan: 'free' });
  assert.equal(down.status, 200, down.text);
  const me = (await c.call('GET', '/v1/me')).json;
  assert.equal(me.plan, 'free', 'at once, not at the period end');
  assert.equal(me.pending_plan, null);
  assert.equal(me.status, 'active');
  assert.equal((await stack.call('/v1/basic/x', { key: c.key })).status, 200);
  const hist = await stack.adminCall('GET', `/v1/admin/customers/${c.id}/status_history`);
  assert.ok(hist.json.data.some((h) => h.from === 'incomplete' && h.to === 'active' && /needs no payment method/.test(h.reason)),
    JSON.stringify(hist.json));
  const up = await stack.adminCall('GET', `/v1/admin/customers/${c.id}/invoices/upcoming`);
  assert.equal(up.status, 200, up.text);
  assert.ok(!up.json.lines.some((l) => /carded/i.test(l.description)), JSON.stringify(up.json.lines));
});

test('dunning: a customer whose payment failed is listed on the owner dashboard as past_due (and not before)', async () => {
  const c = await signedUp(stack, 'free');
  let dash = await stack.adminCall('GET', '/v1/admin/dashboard');
  assert.ok(!dash.json.past_due.some((x) => x.id === c.id));
  const invoice = { id: `in_test_cards_${Date.now().toString(36)}`, object: 'invoice', status: 'open', attempt_count: 1,
    amount_due: 4900, currency: 'usd', metadata: { tollgate_customer: c.id } };
  const sent = await control('POST', '/__control/send_webhook',
    { url: `${stack.admin}/v1/webhooks/stripe`, secret: SECRET, type: 'invoice.payment_failed', object: invoice });
  assert.equal(sent.delivery.status, 200, JSON.stringify(sent));
  const row = await until(async () => {
    dash = await stack.adminCall('GET', '/v1/admin/dashboard');
    return dash.json.past_due.find((x) => x.id === c.id);
  }, 'the dashboard to list the customer');
  assert.equal(row.status, 'past_due');
  assert.ok(row.past_due_since);
  assert.ok(dash.json.past_due_count >= 1);
  assert.equal((await c.call('GET', '/v1/me')).json.status, 'past_due');
});
