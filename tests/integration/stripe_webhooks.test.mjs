// stripe_webhooks.test.mjs - POST /v1/webhooks/stripe on the real binary, with events signed by the
// official stripe package (stripe.webhooks.generateTestHeaderString: a reference nobody here wrote)
// or sent by the fake Stripe (tests/stripe/fake_stripe.mjs), and dunning at the gateway.
//
// Customers are found through metadata[tollgate_customer] on the event's invoice (tollgate sets it
// when it creates the Stripe invoice; Stripe copies a customer's metadata into none of its
// invoices). The Stripe invoices here are made in the fake with that metadata.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Stack } from './harness.mjs';
import { startFakeStripe } from '../stripe/fake_stripe.mjs';

// The stripe package lives in tests/stripe (its own package.json and lock file).
const Stripe = createRequire(new URL('../stripe/package.json', import.meta.url))('stripe');
const stripeLib = new Stripe('sk_test_for_signing_only');

const SECRET = 'whsec_tollgate_integration_0123456789';
const OLD_SECRET = 'whsec_tollgate_rolled_away_9876543210';
const KEY = 'sk_test_tollgate_integration_0123456789';

let fake, stack;

before(async () => {
  fake = await startFakeStripe();
  stack = await new Stack({
    extra: `stripe: {secret_key: "${KEY}", webhook_secret: ["${SECRET}", "${OLD_SECRET}"], api_base: "${fake.url}"}
dunning: {grace_days: 7, suspend_after_failures: 3}`,
  }).start();
});
after(async () => {
  if (stack) await stack.stop();
  if (fake) await fake.close();
});

const now = () => Math.floor(Date.now() / 1000);

async function deliver(payload, { secret = SECRET, timestamp = now(), header } = {}) {
  const sig = header !== undefined ? header : stripeLib.webhooks.generateTestHeaderString({ payload, secret, timestamp });
  const r = await fetch(`${stack.admin}/v1/webhooks/stripe`, {
    method: 'POST',
    headers: { 'content-type': 'application/json; charset=utf-8', ...(sig !== null ? { 'stripe-signature': sig } : {}) },
    body: payload,
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text };
}

let seq = 0;
function eventPayload(type, object, { id, created = now() } = {}) {
  // Pretty-printed, as Stripe sends it: the signature covers these exact bytes.
  return JSON.stringify({
    id: id ?? `evt_test_${Date.now().toString(36)}${(seq++).toString(36)}`, object: 'event', api_version: '2025-03-31.basil',
    created, data: { object }, livemode: false, pending_webhooks: 1, request: { id: null, idempotency_key: null }, type,
  }, null, 2);
}

// Polls cond (which does a request each time) until it holds, for at most ms.
async function until(cond, ms = 5000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) return null;
  }
}

async function eventOutcome(id) {
  return until(async () => {
    const r = await stack.adminCall('GET', `/v1/admin/stripe/events/${id}`);
    return r.status === 200 && r.json.processed_at ? r.json : null;
  });
}

async function status(customerId) {
  return (await stack.adminCall('GET', `/v1/admin/customers/${customerId}`)).json.status;
}

// A Stripe customer and an open invoice for tollgate customer `tg`, made through the fake's API.
async function openInvoice(tg) {
  const api = async (path, form) => {
    const r = await fetch(fake.url + path, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString() });
    assert.equal(r.status, 200, await r.clone().text());
    return r.json();
  };
  const cus = await api('/v1/customers', { email: `${tg}@example.com`, 'metadata[tollgate_customer]': tg });
  const inv = await api('/v1/invoices', { customer: cus.id, currency: 'usd', 'metadata[tollgate_customer]': tg });
  await api('/v1/invoiceitems', { customer: cus.id, invoice: inv.id, amount: '4900', currency: 'usd', description: 'Starter plan' });
  return api(`/v1/invoices/${inv.id}/finalize`, {});
}

async function attempt(invoiceId, succeed) {
  const r = await fetch(`${fake.url}/__control/invoices/${invoiceId}/payment`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ succeed }) });
  return r.json();
}

async function fakeSends(type, object, extra = {}) {
  const r = await fetch(`${fake.url}/__control/send_webhook`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ url: `${stack.admin}/v1/webhooks/stripe`, secret: SECRET, type, object, ...extra }),
  });
  const j = await r.json();
  assert.equal(j.delivery.status, 200, j.delivery.body);
  return j;
}

test('the signature is checked as Stripe documents: the npm package\'s header passes, anything else is 400 and records nothing', async () => {
  const { customer } = await stack.customer('free');
  const inv = { id: 'in_sigtest', object: 'invoice', status: 'open', attempt_count: 0, metadata: { tollgate_customer: customer.id } };
  const good = eventPayload('invoice.finalized', inv);
  const goodId = JSON.parse(good).id;

  let r = await deliver(good);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { received: true, id: goodId, type: 'invoice.finalized', duplicate: false });

  // A rolled secret (the second in the list) passes too.
  r = await deliver(eventPayload('invoice.finalized', inv), { secret: OLD_SECRET });
  assert.equal(r.status, 200, r.text);

  const refused = [];
  const tampered = eventPayload('invoice.paid', { ...inv, status: 'paid' });
  const sig = stripeLib.webhooks.generateTestHeaderString({ payload: tampered, secret: SECRET, timestamp: now() });
  refused.push([await deliver(tampered.replace('"paid"', '"void"'), { header: sig }), 'invalid_signature', tampered]);
  // Re-serialised JSON (compact) is not the body that was signed.
  refused.push([await deliver(JSON.stringify(JSON.parse(tampered)), { header: sig }), 'invalid_signature', tampered]);
  const wrong = eventPayload('invoice.paid', inv);
  refused.push([await deliver(wrong, { secret: 'whsec_somebody_else_entirely' }), 'invalid_signature', wrong]);
  const old = eventPayload('invoice.paid', inv);
  refused.push([await deliver(old, { timestamp: now() - 301 }), 'stale_signature', old]);
  const missing = eventPayload('invoice.paid', inv);
  refused.push([await deliver(missing, { header: null }), 'missing_signature', missing]);
  const malformed = eventPayload('invoice.paid', inv);
  refused.push([await deliver(malformed, { header: 'v1=abc' }), 'malformed_signature', malformed]);
  for (const [res, type, payload] of refused) {
    assert.equal(res.status, 400, res.text);
    assert.equal(res.json.error.type, type, res.text);
    const ev = await stack.adminCall('GET', `/v1/admin/stripe/events/${JSON.parse(payload).id}`);
    assert.equal(ev.status, 404, `refused event ${JSON.parse(payload).id} was recorded`);
  }
  // Signed, but not a Stripe event.
  r = await deliver('{"hello": "world"}');
  assert.equal(r.status, 400);
  assert.equal(r.json.error.type, 'bad_event');

  const ev = await eventOutcome(goodId);
  assert.ok(ev, 'the good event was applied');
  assert.match(ev.outcome, /^ignored: invoice\.finalized/);
});

test('dunning end to end: 3 failed payments -> 402 payment_required at the gateway; invoice.paid -> 200 within 1 s; duplicates and late events change nothing', async (t) => {
  const { customer, key } = await stack.customer('free');
  assert.equal((await stack.call('/v1/basic/echo', { key })).status, 200);
  const inv = await openInvoice(customer.id);
  assert.equal(inv.status, 'open');

  // Attempt 1: past_due, still served.
  let a = await attempt(inv.id, false);
  const first = await fakeSends(a.event_type, inv.id);
  assert.match((await eventOutcome(first.event.id)).outcome, /customer active -> past_due: payment failed \(1 of 3/);
  assert.equal(await status(customer.id), 'past_due');
  assert.equal((await stack.call('/v1/basic/echo', { key })).status, 200);

  a = await attempt(inv.id, false);
  const snapshot2 = structuredClone(a.invoice); // kept to be delivered late below
  const second = await fakeSends(a.event_type, inv.id);
  await eventOutcome(second.event.id);
  assert.equal((await stack.call('/v1/basic/echo', { key })).status, 200);

  // Attempt 3: suspended; the gateway answers 402 payment_required with the billing link.
  a = await attempt(inv.id, false);
  assert.equal(a.invoice.attempt_count, 3);
  await fakeSends(a.event_type, inv.id);
  const refused = await until(async () => {
    const r = await stack.call('/v1/basic/echo', { key });
    return r.status === 402 ? r : null;
  });
  assert.ok(refused, 'the key was never refused');
  assert.equal(refused.json.error.type, 'payment_required');
  assert.match(refused.json.error.message, /\/portal\/#billing/);
  assert.equal(await status(customer.id), 'suspended');

  // kill -9 and a restart: the hold is durable, the gateway still says payment_required.
  await stack.kill9();
  await stack.start();
  const again = await stack.call('/v1/basic/echo', { key });
  assert.equal(again.status, 402);
  assert.equal(again.json.error.type, 'payment_required');

  // Paid: 200 again within a second of Stripe getting its answer.
  a = await attempt(inv.id, true);
  assert.equal(a.event_type, 'invoice.paid');
  const paidPayload = eventPayload('invoice.paid', a.invoice);
  const paidHeader = stripeLib.webhooks.generateTestHeaderString({ payload: paidPayload, secret: SECRET, timestamp: now() });
  const r = await deliver(paidPayload, { header: paidHeader });
  assert.equal(r.status, 200);
  const t0 = Date.now();
  const served = await until(async () => (await stack.call('/v1/basic/echo', { key })).status === 200, 1000);
  const ms = Date.now() - t0;
  assert.ok(served, `still refused ${ms} ms after invoice.paid was answered`);
  t.diagnostic(`served again ${ms} ms after invoice.paid was answered`);
  assert.equal(await status(customer.id), 'active');

  const history = async () => (await stack.adminCall('GET', `/v1/admin/customers/${customer.id}/status_history`)).json.data;
  const before = await history();
  assert.deepEqual(before.map((h) => [h.from, h.to]), [['active', 'past_due'], ['past_due', 'suspended'], ['suspended', 'active']]);
  assert.match(before[1].reason, /3 failed payments/);
  assert.match(before[2].reason, /no unpaid invoice left/);
  assert.match(before[2].source, /^evt_/);

  // The same delivery again (Stripe retries): 200, duplicate, nothing new.
  const dup = await deliver(paidPayload, { header: paidHeader });
  assert.equal(dup.status, 200);
  assert.equal(dup.json.duplicate, true);

  // An older event arriving late (attempt 2's payment_failed, never delivered before): the
  // invoice is paid, so it changes nothing.
  const late = eventPayload('invoice.payment_failed', snapshot2, { created: now() - 120 });
  const lr = await deliver(late);
  assert.equal(lr.status, 200);
  const lateOutcome = await eventOutcome(JSON.parse(late).id);
  assert.match(lateOutcome.outcome, /^stale: invoice in_\w+ is already paid; customer stays active/);
  assert.equal(await status(customer.id), 'active');
  assert.equal((await stack.call('/v1/basic/echo', { key })).status, 200);
  assert.deepEqual(await history(), before);
});

test('events for unknown customers are recorded and marked, not errors; the owner\'s suspension is left alone', async () => {
  const unknown = eventPayload('invoice.payment_failed', { id: 'in_unknown1', object: 'invoice', status: 'open', attempt_count: 1, metadata: { tollgate_customer: 'cus_does_not_exist' } });
  assert.equal((await deliver(unknown)).status, 200);
  assert.match((await eventOutcome(JSON.parse(unknown).id)).outcome, /^unknown_customer: cus_does_not_exist/);
  const nometa = eventPayload('invoice.paid', { id: 'in_unknown2', object: 'invoice', status: 'paid', attempt_count: 1, metadata: {} });
  assert.equal((await deliver(nometa)).status, 200);
  assert.match((await eventOutcome(JSON.parse(nometa).id)).outcome, /^unknown_customer: no metadata/);

  // Suspended by the owner: 402 account_suspended, and a paid invoice does not resume them.
  const { customer, key } = await stack.customer('free');
  assert.equal((await stack.adminCall('PATCH', `/v1/admin/customers/${customer.id}`, { status: 'suspended' })).status, 200);
  const paid = eventPayload('invoice.paid', { id: 'in_owner1', object: 'invoice', status: 'paid', attempt_count: 1, metadata: { tollgate_customer: customer.id } });
  assert.equal((await deliver(paid)).status, 200);
  assert.match((await eventOutcome(JSON.parse(paid).id)).outcome, /customer stays suspended|suspended by the owner/);
  const g = await stack.call('/v1/basic/echo', { key });
  assert.equal(g.status, 402);
  assert.equal(g.json.error.type, 'account_suspended');
});
