// stripe_billing_tollgate.test.mjs - billing: tollgate (issue 11 item 3), on the real binary against
// the fake Stripe: a finalized tollgate invoice becomes, through the outbox, one Stripe invoice
// with one invoice item per line (minor units, negative for credits, description, period,
// metadata[tollgate_invoice]/[tollgate_line]), finalized in Stripe, whose total equals tollgate's
// to the cent; the fake pays it, sends invoice.paid, and the tollgate invoice is paid. A finalize
// call whose response is lost is sent again with its key: still exactly one Stripe invoice.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, sleep } from './harness.mjs';
import { startFakeStripe } from '../stripe/fake_stripe.mjs';

const SECRET = 'whsec_test_billing_tollgate_0123';
let fake, s;
before(async () => {
  fake = await startFakeStripe();
  s = await new Stack({
    testClock: true,
    extra: `stripe: {secret_key: "sk_test_billing_tollgate_0123", webhook_secret: "${SECRET}", api_base: "${fake.url}", billing: tollgate}`,
  }).start();
});
after(async () => { await s.stop(); await fake.close(); });

const control = (method, path, body) => fake.control(method, path, body);

async function until(fn, what) {
  for (let i = 0; i < 600; i++) {
    const v = await fn();
    if (v) return v;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const cents = (s) => Math.round(Number(s) * 100); // the test's own reading of "12.34"

async function stripeInvoicesOf(tgInvoice) {
  const objs = await control('GET', '/__control/objects?type=invoice');
  return (objs.invoice || []).filter((i) => i.metadata && i.metadata.tollgate_invoice === tgInvoice);
}

// Closes the customer's period (clock moved past it) and finalizes the draft: the tollgate invoice.
let serverNow = 0;
async function closeAndFinalize(customerId) {
  const clock = await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 });
  assert.equal(clock.status, 200, clock.text);
  serverNow = Math.floor(Date.parse(clock.json.now) / 1000);
  const run = await s.adminCall('POST', '/v1/admin/invoices/run', { customer: customerId });
  assert.equal(run.status, 200, run.text);
  const list = await s.adminCall('GET', `/v1/admin/invoices?customer=${customerId}`);
  const id = list.json.data[0].id;
  const inv = await s.adminCall('POST', `/v1/admin/invoices/${id}/finalize`);
  assert.equal(inv.status, 200, inv.text);
  assert.equal(inv.json.status, 'open');
  return inv.json;
}

async function openStripeInvoice(tgInvoice) {
  return until(async () => {
    const l = await stripeInvoicesOf(tgInvoice);
    return l.length === 1 && l[0].status !== 'draft' && l[0];
  }, `the Stripe invoice of ${tgInvoice} finalized`);
}

function assertSameLines(tg, st) {
  assert.equal(st.lines.data.length, tg.lines.length);
  for (let i = 0; i < tg.lines.length; i++) {
    const line = st.lines.data.find((l) => l.metadata.tollgate_line === String(i));
    assert.ok(line, `Stripe line ${i}`);
    assert.equal(line.amount, cents(tg.lines[i].amount));
    assert.equal(line.description, tg.lines[i].description);
    assert.equal(line.metadata.tollgate_invoice, tg.id);
    assert.equal(line.period.start, Math.floor(Date.parse(tg.period.start) / 1000));
    assert.equal(line.period.end, Math.floor(Date.parse(tg.period.end) / 1000));
  }
  assert.equal(st.total, cents(tg.total)); // to the cent
  assert.equal(st.currency, tg.currency.toLowerCase());
}

test('a finalized invoice becomes one Stripe invoice with the same lines and total; invoice.paid marks it paid', async () => {
  const { key, customer } = await s.customer('metered');
  for (let i = 0; i < 5; i++) assert.equal((await s.call('/v1/basic/x', { key })).status, 200);
  const tg = await closeAndFinalize(customer.id);
  assert.equal(tg.total, '10.75');
  const st = await openStripeInvoice(tg.id);
  assertSameLines(tg, st);
  assert.equal(st.status, 'open');
  assert.equal(st.collection_method, 'charge_automatically');
  assert.equal(st.metadata.tollgate_customer, customer.id);

  const paid = await control('POST', `/__control/invoices/${st.id}/payment`, { succeed: true });
  assert.equal(paid.invoice.status, 'paid');
  const d = await control('POST', '/__control/send_webhook', {
    url: `${s.admin}/v1/webhooks/stripe`, secret: SECRET, type: 'invoice.paid', object: st.id, created: serverNow, timestamp: serverNow,
  });
  assert.equal(d.delivery.status, 200, d.delivery.body);
  await until(async () => (await s.adminCall('GET', `/v1/admin/invoices/${tg.id}`)).json.status === 'paid', 'tollgate invoice paid');
});

test('a credit is a negative invoice item and the totals still match', async () => {
  const { key, customer } = await s.customer('metered');
  for (let i = 0; i < 3; i++) assert.equal((await s.call('/v1/basic/x', { key })).status, 200);
  const item = await s.adminCall('POST', `/v1/admin/customers/${customer.id}/items`, { description: 'Goodwill credit', amount: '-3.50' });
  assert.equal(item.status, 201, item.text);
  const tg = await closeAndFinalize(customer.id);
  assert.ok(tg.lines.some((l) => l.amount === '-3.50'), JSON.stringify(tg.lines));
  const st = await openStripeInvoice(tg.id);
  assertSameLines(tg, st);
  assert.ok(st.lines.data.some((l) => l.amount === -350));
});

test('the finalize call\'s response is lost: it is sent again with its key, one Stripe invoice in the end', async () => {
  const { key, customer } = await s.customer('metered');
  assert.equal((await s.call('/v1/basic/x', { key })).status, 200);
  await control('POST', '/__control/fail', { count: 1, kind: 'lost', path: '/v1/invoices/in_', method: 'POST' });
  const tg = await closeAndFinalize(customer.id);
  const st = await openStripeInvoice(tg.id);
  assertSameLines(tg, st);
  // the outbox retries the lost call (same key): the fake replays the saved answer
  const finals = await until(async () => {
    const f = (await control('GET', '/__control/requests')).filter((r) => r.path === `/v1/invoices/${st.id}/finalize`);
    return f.length >= 2 && f[f.length - 1].status === 200 && f;
  }, 'the finalize call sent again');
  assert.equal(finals[0].status, 'lost');
  assert.equal(new Set(finals.map((r) => r.idempotency_key)).size, 1);
  assert.equal((await stripeInvoicesOf(tg.id)).length, 1);
});

test('billing.finalize_after: the back thread finalizes old drafts by itself and sends them to Stripe; a held draft waits until released', async () => {
  const auto = await new Stack({
    testClock: true,
    extra: `stripe: {secret_key: "sk_test_billing_tollgate_0123", webhook_secret: "${SECRET}", api_base: "${fake.url}", billing: tollgate}\nbilling: {finalize_after: 1h}`,
  }).start();
  try {
    const a = await auto.customer('metered');
    const b = await auto.customer('metered');
    for (const c of [a, b]) assert.equal((await auto.call('/v1/basic/x', { key: c.key })).status, 200);
    assert.equal((await auto.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 })).status, 200);
    const drafts = {};
    for (const c of [a, b]) {
      await auto.adminCall('POST', '/v1/admin/invoices/run', { customer: c.customer.id });
      drafts[c.customer.id] = (await auto.adminCall('GET', `/v1/admin/invoices?customer=${c.customer.id}`)).json.data[0];
      assert.equal(drafts[c.customer.id].status, 'draft');
    }
    const idA = drafts[a.customer.id].id, idB = drafts[b.customer.id].id;
    const held = await auto.adminCall('POST', `/v1/admin/invoices/${idB}/hold`);
    assert.equal(held.status, 200, held.text);
    assert.equal(held.json.held, true);
    assert.equal((await auto.adminCall('GET', `/v1/admin/invoices/${idA}`)).json.status, 'draft'); // not yet an hour old

    assert.equal((await auto.adminCall('POST', '/v1/admin/clock', { advance_seconds: 2 * 3600 })).status, 200);
    const invA = await until(async () => {
      const r = await auto.adminCall('GET', `/v1/admin/invoices/${idA}`);
      return r.json.status === 'open' && r.json;
    }, 'the draft finalized by the tick');
    assert.match(invA.number, /^TG-\d{4}-\d{6}$/);
    const st = await openStripeInvoice(idA);
    assertSameLines(invA, st);
    // the same tick saw B: held, it is still a draft, and nothing went to Stripe for it
    const b1 = await auto.adminCall('GET', `/v1/admin/invoices/${idB}`);
    assert.equal(b1.json.status, 'draft');
    assert.equal(b1.json.held, true);
    assert.equal((await stripeInvoicesOf(idB)).length, 0);
    // an open invoice cannot be held
    assert.equal((await auto.adminCall('POST', `/v1/admin/invoices/${idA}/hold`)).status, 409);

    const rel = await auto.adminCall('POST', `/v1/admin/invoices/${idB}/release`);
    assert.equal(rel.status, 200, rel.text);
    assert.equal(rel.json.held, false);
    const invB = await until(async () => {
      const r = await auto.adminCall('GET', `/v1/admin/invoices/${idB}`);
      return r.json.status === 'open' && r.json;
    }, 'the released draft finalized by the tick');
    assertSameLines(invB, await openStripeInvoice(idB));
  } finally {
    await auto.stop();
  }
});
