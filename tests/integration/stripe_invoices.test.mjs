// stripe_invoices.test.mjs - billing: tollgate, the webhook side: a Stripe invoice made from a
// tollgate invoice carries metadata[tollgate_invoice]; its invoice.paid marks the tollgate invoice
// paid (only an open one, only the same customer's). Signed with the official stripe package.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Stack } from './harness.mjs';

const Stripe = createRequire(new URL('../stripe/package.json', import.meta.url))('stripe');
const stripeLib = new Stripe('sk_test_for_signing_only');
const SECRET = 'whsec_tollgate_invoices_0123456789';

let s;
before(async () => {
  s = await new Stack({ testClock: true, extra: `stripe: {secret_key: "sk_test_invoices_0123456789", webhook_secret: "${SECRET}", api_base: "http://127.0.0.1:9"}` }).start();
});
after(async () => { await s.stop(); });

let serverNow = Math.floor(Date.now() / 1000); // the server's clock, which the test clock moves
let seq = 0;

async function deliver(type, object) {
  const payload = JSON.stringify({ id: `evt_inv_${Date.now()}_${seq++}`, object: 'event', type, created: serverNow, data: { object } }, null, 2);
  const r = await fetch(`${s.admin}/v1/webhooks/stripe`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'stripe-signature': stripeLib.webhooks.generateTestHeaderString({ payload, secret: SECRET, timestamp: serverNow }) },
    body: payload,
  });
  assert.equal(r.status, 200, await r.text());
  const id = JSON.parse(payload).id;
  for (const end = Date.now() + 5000; Date.now() < end;) {
    const e = await s.adminCall('GET', `/v1/admin/stripe/events/${id}`);
    if (e.status === 200 && e.json.processed_at) return e.json;
  }
  throw new Error(`event ${id} was not applied: ${JSON.stringify((await s.adminCall("GET", `/v1/admin/stripe/events/${id}`)).json)}`);
}

async function openInvoiceFor(customerId) {
  const list = await s.adminCall('GET', `/v1/admin/invoices?customer=${customerId}`);
  const id = list.json.data[0].id;
  const inv = await s.adminCall('POST', `/v1/admin/invoices/${id}/finalize`);
  assert.equal(inv.json.status, 'open');
  return inv.json;
}

test('invoice.paid marks the tollgate invoice it was made from paid; another customer\'s stays open', async () => {
  const a = await s.customer('free');
  const b = await s.customer('free');
  for (const c of [a, b])
    assert.equal((await s.adminCall('POST', `/v1/admin/customers/${c.customer.id}/items`, { description: 'Setup', amount: '12.34' })).status, 201);
  const clock = await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 });
  serverNow = Math.floor(Date.parse(clock.json.now) / 1000);
  for (const c of [a, b])
    await s.adminCall('POST', '/v1/admin/invoices/run', { customer: c.customer.id });
  const invA = await openInvoiceFor(a.customer.id);
  const invB = await openInvoiceFor(b.customer.id);
  assert.equal(invA.total, '12.34');

  // A's Stripe invoice naming B's tollgate invoice: left as is.
  let ev = await deliver('invoice.paid', { id: 'in_cross', object: 'invoice', status: 'paid', attempt_count: 1, amount_paid: 1234, currency: 'usd',
    metadata: { tollgate_customer: a.customer.id, tollgate_invoice: invB.id } });
  assert.match(ev.outcome, /belongs to another customer: left as is/);
  assert.equal((await s.adminCall('GET', `/v1/admin/invoices/${invB.id}`)).json.status, 'open');

  ev = await deliver('invoice.paid', { id: 'in_a', object: 'invoice', status: 'paid', attempt_count: 1, amount_paid: 1234, currency: 'usd',
    metadata: { tollgate_customer: a.customer.id, tollgate_invoice: invA.id } });
  assert.match(ev.outcome, new RegExp(`tollgate invoice ${invA.id} marked paid`));
  assert.doesNotMatch(ev.outcome, /check it/); // 12.34 usd = 1234 cents
  assert.equal((await s.adminCall('GET', `/v1/admin/invoices/${invA.id}`)).json.status, 'paid');

  // Uncollectible after paid (a late event): the paid invoice stays paid.
  ev = await deliver('invoice.marked_uncollectible', { id: 'in_a', object: 'invoice', status: 'uncollectible', attempt_count: 1, metadata: { tollgate_customer: a.customer.id, tollgate_invoice: invA.id } });
  assert.match(ev.outcome, /^stale: invoice in_a is already paid/);
  assert.equal((await s.adminCall('GET', `/v1/admin/invoices/${invA.id}`)).json.status, 'paid');

  // A total that differs from what Stripe collected is marked, and said.
  ev = await deliver('invoice.paid', { id: 'in_b', object: 'invoice', status: 'paid', attempt_count: 1, amount_paid: 1200, currency: 'usd',
    metadata: { tollgate_customer: b.customer.id, tollgate_invoice: invB.id } });
  assert.match(ev.outcome, /marked paid \(Stripe collected 1200 minor units, the invoice's total is 12340000000 nano-units: check it\)/);
});
