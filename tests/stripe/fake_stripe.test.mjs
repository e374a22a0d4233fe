// fake_stripe.test.mjs - the fake Stripe speaks the wire format the official client expects.
//
// The official `stripe` package is the client here (a reference nobody here wrote): if it can
// create, fetch and list objects through the fake and gets typed errors back, the fake's encoding,
// error objects and statuses are what tollgate's client will meet. Raw requests check what the
// package hides: authentication, idempotent replay, injected failures, meter-event dedup, and the
// signatures of the webhooks it sends.
import {test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import Stripe from 'stripe';
import {startFakeStripe, decodeForm, encodeForm} from './fake_stripe.mjs';

let fake, stripe;
const KEY = 'sk_test_tollgate_fake_0123456789';

before(async () => {
  fake = await startFakeStripe();
  stripe = new Stripe(KEY, {host: '127.0.0.1', port: fake.port, protocol: 'http', maxNetworkRetries: 0});
});
after(async () => fake.close());

async function raw(method, path, {body, key = KEY, headers = {}} = {}) {
  const r = await fetch(fake.url + path, {
    method,
    headers: {...(key ? {Authorization: `Bearer ${key}`} : {}), ...(body !== undefined ? {'Content-Type': 'application/x-www-form-urlencoded'} : {}), ...headers},
    body,
  });
  const text = await r.text();
  return {status: r.status, headers: r.headers, json: text ? JSON.parse(text) : null};
}
const control = async (method, path, body) => {
  const r = await fetch(fake.url + path, {method, headers: {'Content-Type': 'application/json'}, body: body ? JSON.stringify(body) : undefined});
  return r.json();
};

test('form decoding follows Stripe nesting: a[b], a[0][b], a[]', () => {
  assert.deepEqual(decodeForm('metadata[tollgate_customer]=c_1&period[start]=10&lines[0][amount]=5&lines[1][amount]=-2&expand[]=x&expand[]=y&name=A+B%26C'), {
    metadata: {tollgate_customer: 'c_1'}, period: {start: '10'}, lines: [{amount: '5'}, {amount: '-2'}], expand: ['x', 'y'], name: 'A B&C',
  });
  assert.equal(encodeForm({metadata: {k: 'v w'}, a: 1}), 'metadata%5Bk%5D=v%20w&a=1');
});

test('the official client creates, fetches, updates and lists customers', async () => {
  const c = await stripe.customers.create({email: 'ada@example.com', name: 'Ada', metadata: {tollgate_customer: 'cust_1'}});
  assert.match(c.id, /^cus_/);
  assert.equal(c.object, 'customer');
  assert.equal(c.metadata.tollgate_customer, 'cust_1');
  assert.equal(c.livemode, false);
  const again = await stripe.customers.retrieve(c.id);
  assert.equal(again.email, 'ada@example.com');
  const upd = await stripe.customers.update(c.id, {name: 'Ada L.', metadata: {plan: 'pro'}});
  assert.equal(upd.name, 'Ada L.');
  assert.deepEqual(upd.metadata, {tollgate_customer: 'cust_1', plan: 'pro'});
  const list = await stripe.customers.list({email: 'ada@example.com'});
  assert.equal(list.object, 'list');
  assert.deepEqual(list.data.map((x) => x.id), [c.id]);
  const found = await stripe.customers.search({query: "metadata['tollgate_customer']:'cust_1'"});
  assert.deepEqual(found.data.map((x) => x.id), [c.id]);
  await assert.rejects(stripe.customers.retrieve('cus_nope'), (e) => e.type === 'StripeInvalidRequestError' && e.statusCode === 404 && e.code === 'resource_missing');
});

test('invoice items on a draft invoice, finalized: numbered, open, totals to the cent', async () => {
  const c = await stripe.customers.create({email: 'inv@example.com'});
  const inv = await stripe.invoices.create({customer: c.id, collection_method: 'charge_automatically', auto_advance: false, currency: 'usd', metadata: {tollgate_invoice: 'inv_1'}});
  assert.equal(inv.status, 'draft');
  await stripe.invoiceItems.create({customer: c.id, invoice: inv.id, amount: 4900, currency: 'usd', description: 'Starter plan', period: {start: 1700000000, end: 1702592000}});
  await stripe.invoiceItems.create({customer: c.id, invoice: inv.id, amount: 1234, currency: 'usd', description: 'api_calls overage'});
  await stripe.invoiceItems.create({customer: c.id, invoice: inv.id, amount: -500, currency: 'usd', description: 'credit'});
  const fin = await stripe.invoices.finalizeInvoice(inv.id);
  assert.equal(fin.status, 'open');
  assert.match(fin.number, /-0001$/);
  assert.equal(fin.total, 5634);
  assert.equal(fin.amount_due, 5634);
  assert.equal(fin.lines.data.length, 3);
  assert.deepEqual(fin.lines.data[0].period, {start: 1700000000, end: 1702592000});
  assert.equal(fin.lines.data[0].parent.type, 'invoice_item_details');
  await assert.rejects(stripe.invoiceItems.create({customer: c.id, invoice: inv.id, amount: 1, currency: 'usd'}), (e) => e.statusCode === 400 && e.code === 'invoice_not_editable');
  await assert.rejects(stripe.invoices.finalizeInvoice(inv.id), (e) => e.statusCode === 400);
  const paid = await control('POST', `/__control/invoices/${inv.id}/payment`, {succeed: true});
  assert.equal(paid.invoice.status, 'paid');
  assert.equal(paid.invoice.amount_paid, 5634);
  // A zero-total invoice is paid on finalization, as at Stripe.
  const zero = await stripe.invoices.create({customer: c.id, currency: 'usd'});
  assert.equal((await stripe.invoices.finalizeInvoice(zero.id)).status, 'paid');
  // send_invoice needs days_until_due.
  await assert.rejects(stripe.invoices.create({customer: c.id, collection_method: 'send_invoice'}), (e) => e.statusCode === 400 && e.param === 'days_until_due');
});

test('checkout session in setup mode, completed by the control API; billing portal session', async () => {
  const c = await stripe.customers.create({email: 'card@example.com'});
  const s = await stripe.checkout.sessions.create({mode: 'setup', customer: c.id, currency: 'usd', success_url: 'http://127.0.0.1/portal?setup=ok', cancel_url: 'http://127.0.0.1/portal?setup=cancel'});
  assert.match(s.id, /^cs_test_/);
  assert.equal(s.mode, 'setup');
  assert.equal(s.status, 'open');
  assert.match(s.url, /^https:\/\/checkout\.stripe\.com\//);
  const done = await control('POST', `/__control/checkout/sessions/${s.id}/complete`);
  assert.equal(done.session.status, 'complete');
  assert.equal((await stripe.customers.retrieve(c.id)).invoice_settings.default_payment_method, done.payment_method);
  const p = await stripe.billingPortal.sessions.create({customer: c.id, return_url: 'http://127.0.0.1/portal'});
  assert.equal(p.object, 'billing_portal.session');
  assert.match(p.url, /^https:\/\/billing\.stripe\.com\//);
  await assert.rejects(stripe.checkout.sessions.create({customer: c.id, success_url: 'http://x'}), (e) => e.statusCode === 400 && e.code === 'parameter_missing' && e.param === 'mode');
});

test('meter events: deduplicated by identifier, timestamps within 35 days back and 5 minutes ahead', async () => {
  const c = await stripe.customers.create({});
  const t = Math.floor(Date.now() / 1000);
  const ev = await stripe.billing.meterEvents.create({event_name: 'api_calls', payload: {stripe_customer_id: c.id, value: '25'}, identifier: 'cust_1:api_calls:2026120314', timestamp: t});
  assert.equal(ev.object, 'billing.meter_event');
  assert.equal(ev.identifier, 'cust_1:api_calls:2026120314');
  await assert.rejects(stripe.billing.meterEvents.create({event_name: 'api_calls', payload: {stripe_customer_id: c.id, value: '25'}, identifier: 'cust_1:api_calls:2026120314'}),
    (e) => e.statusCode === 400 && e.code === 'duplicate_meter_event');
  await assert.rejects(stripe.billing.meterEvents.create({event_name: 'api_calls', payload: {stripe_customer_id: c.id, value: '1'}, timestamp: t - 36 * 86400}), (e) => e.param === 'timestamp');
  await assert.rejects(stripe.billing.meterEvents.create({event_name: 'api_calls', payload: {stripe_customer_id: c.id, value: '1'}, timestamp: t + 600}), (e) => e.param === 'timestamp');
  const objs = await control('GET', '/__control/objects?type=billing.meter_event');
  const mine = objs['billing.meter_event'].filter((e) => e.payload.stripe_customer_id === c.id);
  assert.equal(mine.reduce((a, e) => a + Number(e.payload.value), 0), 25);
});

test('authentication: no key, a publishable key and a live key are 401 with Stripe error objects', async () => {
  let r = await raw('GET', '/v1/customers', {key: null});
  assert.equal(r.status, 401);
  assert.equal(r.json.error.type, 'invalid_request_error');
  assert.match(r.json.error.message, /You did not provide an API key/);
  r = await raw('GET', '/v1/customers', {key: 'pk_test_123456789'});
  assert.equal(r.status, 401);
  assert.equal(r.json.error.code, 'api_key_invalid');
  assert.doesNotMatch(r.json.error.message, /pk_test_123456789/); // masked, as Stripe does
  r = await raw('GET', '/v1/customers', {key: 'sk_live_123456789'});
  assert.equal(r.status, 401);
  assert.ok(r.headers.get('request-id').startsWith('req_'));
});

test('Idempotency-Key: same parameters replay the saved response, other parameters are an idempotency_error', async () => {
  const body = 'email=idem%40example.com&metadata[tollgate_customer]=cust_idem';
  const a = await raw('POST', '/v1/customers', {body, headers: {'Idempotency-Key': 'customer-create-cust_idem'}});
  assert.equal(a.status, 200);
  assert.equal(a.headers.get('idempotent-replayed'), null);
  const b = await raw('POST', '/v1/customers', {body, headers: {'Idempotency-Key': 'customer-create-cust_idem'}});
  assert.equal(b.status, 200);
  assert.equal(b.headers.get('idempotent-replayed'), 'true');
  assert.equal(b.json.id, a.json.id);
  const c = await raw('POST', '/v1/customers', {body: body + '&name=Other', headers: {'Idempotency-Key': 'customer-create-cust_idem'}});
  assert.equal(c.status, 400);
  assert.equal(c.json.error.type, 'idempotency_error');
  const objs = await control('GET', '/__control/objects?type=customer');
  assert.equal(objs.customer.filter((x) => x.metadata.tollgate_customer === 'cust_idem').length, 1);
});

test('injected 429 and 500 are answered before anything executes; a retry with the same key then succeeds once', async () => {
  await control('POST', '/__control/fail', {count: 1, status: 429, path: '/v1/customers', should_retry: true});
  await control('POST', '/__control/fail', {count: 1, status: 500, path: '/v1/customers'});
  const body = 'email=retry%40example.com&metadata[tollgate_customer]=cust_retry';
  const h = {'Idempotency-Key': 'customer-create-cust_retry'};
  let r = await raw('POST', '/v1/customers', {body, headers: h});
  assert.equal(r.status, 429);
  assert.equal(r.json.error.code, 'rate_limit');
  assert.equal(r.headers.get('stripe-should-retry'), 'true');
  r = await raw('POST', '/v1/customers', {body, headers: h});
  assert.equal(r.status, 500);
  assert.equal(r.json.error.type, 'api_error');
  r = await raw('POST', '/v1/customers', {body, headers: h});
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('idempotent-replayed'), null); // the failures saved nothing
  const objs = await control('GET', '/__control/objects?type=customer');
  assert.equal(objs.customer.filter((x) => x.metadata.tollgate_customer === 'cust_retry').length, 1);
});

test('a lost response: the request executed, the socket closed; the retry with the same key replays it', async () => {
  await control('POST', '/__control/fail', {count: 1, kind: 'lost', path: '/v1/customers', method: 'POST'});
  const body = 'email=lost%40example.com&metadata[tollgate_customer]=cust_lost';
  const h = {'Idempotency-Key': 'customer-create-cust_lost'};
  await assert.rejects(raw('POST', '/v1/customers', {body, headers: h}));
  let objs = await control('GET', '/__control/objects?type=customer');
  assert.equal(objs.customer.filter((x) => x.metadata.tollgate_customer === 'cust_lost').length, 1); // it exists
  const r = await raw('POST', '/v1/customers', {body, headers: h});
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('idempotent-replayed'), 'true');
  objs = await control('GET', '/__control/objects?type=customer');
  assert.equal(objs.customer.filter((x) => x.metadata.tollgate_customer === 'cust_lost').length, 1); // still once
});

test('a timeout: the request is never answered and nothing is created', async () => {
  await control('POST', '/__control/fail', {count: 1, kind: 'timeout', path: '/v1/customers', method: 'POST', timeout_ms: 60000});
  const pending = raw('POST', '/v1/customers', {body: 'metadata[tollgate_customer]=cust_slow', headers: {'Idempotency-Key': 'k-slow'}}).catch((e) => e);
  // The fake records the request as timed out once it has read it.
  for (let i = 0; i < 200; i++) {
    const reqs = await control('GET', '/__control/requests');
    if (reqs.some((x) => x.idempotency_key === 'k-slow' && x.status === 'timeout')) break;
    await new Promise((r) => setImmediate(r));
  }
  const objs = await control('GET', '/__control/objects?type=customer');
  assert.equal((objs.customer ?? []).filter((x) => x.metadata.tollgate_customer === 'cust_slow').length, 0);
  await fake.close(); // the held socket is closed with the server
  fake = await startFakeStripe();
  stripe = new Stripe(KEY, {host: '127.0.0.1', port: fake.port, protocol: 'http', maxNetworkRetries: 0});
  assert.ok((await pending) instanceof Error);
});

test('webhooks it sends carry a Stripe-Signature the official package verifies', async () => {
  const secret = 'whsec_fake_test_secret_0123456789';
  let got;
  const sink = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got = {sig: req.headers['stripe-signature'], body: Buffer.concat(chunks).toString('utf8')};
      res.end('{"received":true}');
    });
  });
  await new Promise((r) => sink.listen(0, '127.0.0.1', r));
  try {
    const c = await stripe.customers.create({metadata: {tollgate_customer: 'cust_hook'}});
    const r = await control('POST', '/__control/send_webhook', {url: `http://127.0.0.1:${sink.address().port}/hook`, secret, type: 'customer.updated', object: c.id});
    assert.equal(r.delivery.status, 200);
    assert.match(got.sig, /^t=\d+,v1=[0-9a-f]{64}/);
    const ev = stripe.webhooks.constructEvent(got.body, got.sig, secret); // throws when the signature is wrong
    assert.equal(ev.type, 'customer.updated');
    assert.equal(ev.data.object.id, c.id);
    assert.match(ev.id, /^evt_/);
    assert.throws(() => stripe.webhooks.constructEvent(got.body, got.sig, 'whsec_other'));
  } finally {
    sink.close();
  }
});

test('catalog for billing: stripe: product, meter, metered and tiered prices by lookup_key, a subscription', async () => {
  const prod = await stripe.products.create({name: 'Pro plan', metadata: {tollgate_plan: 'pro'}});
  const meter = await stripe.billing.meters.create({display_name: 'API calls', event_name: 'api_calls', default_aggregation: {formula: 'sum'}});
  assert.equal(meter.customer_mapping.event_payload_key, 'stripe_customer_id');
  await assert.rejects(stripe.billing.meters.create({display_name: 'again', event_name: 'api_calls', default_aggregation: {formula: 'sum'}}), (e) => e.statusCode === 400);
  const base = await stripe.prices.create({product: prod.id, currency: 'usd', unit_amount: 19900, recurring: {interval: 'month'}, lookup_key: 'pro_base'});
  const metered = await stripe.prices.create({product: prod.id, currency: 'usd', billing_scheme: 'tiered', tiers_mode: 'graduated',
    tiers: [{up_to: 500000, unit_amount: 0}, {up_to: 'inf', unit_amount_decimal: '0.05'}], recurring: {interval: 'month', usage_type: 'metered', meter: meter.id}, lookup_key: 'pro_api_calls'});
  assert.equal(metered.recurring.meter, meter.id);
  assert.equal(metered.tiers[1].up_to, null);
  await assert.rejects(stripe.prices.create({product: prod.id, currency: 'usd', unit_amount: 1, lookup_key: 'pro_base'}), (e) => e.param === 'lookup_key');
  await assert.rejects(stripe.prices.create({product: prod.id, currency: 'usd', unit_amount: 1, recurring: {interval: 'month', usage_type: 'metered'}}), (e) => e.param === 'recurring[meter]');
  const found = await stripe.prices.list({lookup_keys: ['pro_base', 'pro_api_calls']});
  assert.deepEqual(found.data.map((p) => p.id).sort(), [base.id, metered.id].sort());
  const c = await stripe.customers.create({});
  const sub = await stripe.subscriptions.create({customer: c.id, items: [{price: base.id}, {price: metered.id}], metadata: {tollgate_customer: 'cust_sub'}});
  assert.equal(sub.status, 'active');
  assert.equal(sub.items.data.length, 2);
  assert.equal(sub.items.data[1].quantity, undefined);
  const canceled = await stripe.subscriptions.cancel(sub.id);
  assert.equal(canceled.status, 'canceled');
});

test('a registered webhook endpoint gets every state change, signed, in order', async () => {
  const secret = 'whsec_endpoint_test_0123456789';
  const got = [];
  const sink = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got.push(stripe.webhooks.constructEvent(Buffer.concat(chunks).toString('utf8'), req.headers['stripe-signature'], secret));
      res.end('{}');
    });
  });
  await new Promise((r) => sink.listen(0, '127.0.0.1', r));
  try {
    await control('POST', '/__control/webhook_endpoint', {url: `http://127.0.0.1:${sink.address().port}/`, secret});
    const c = await stripe.customers.create({});
    const inv = await stripe.invoices.create({customer: c.id, currency: 'usd'});
    await stripe.invoiceItems.create({customer: c.id, invoice: inv.id, amount: 100, currency: 'usd'});
    await stripe.invoices.finalizeInvoice(inv.id);
    await control('POST', `/__control/invoices/${inv.id}/payment`, {succeed: false});
    await control('POST', `/__control/invoices/${inv.id}/payment`, {succeed: true});
    const deliveries = await control('GET', '/__control/deliveries');
    assert.ok(deliveries.every((d) => d.status === 200));
    assert.deepEqual(got.map((e) => e.type), ['customer.created', 'invoice.created', 'invoice.finalized', 'invoice.payment_failed', 'invoice.paid']);
    assert.equal(got[3].data.object.attempt_count, 1); // a snapshot at the time of the event
    assert.equal(got[4].data.object.status, 'paid');
    await control('POST', '/__control/webhook_endpoint', {url: null});
  } finally {
    sink.close();
  }
});

// ---- subscription invoicing (reconcile) ----
test('a subscription period invoice: licensed and metered lines priced by hand, pending items swept in, events sent', async () => {
  const secret = 'whsec_invoicing_test_0123456789';
  const got = [];
  const sink = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got.push(stripe.webhooks.constructEvent(Buffer.concat(chunks).toString('utf8'), req.headers['stripe-signature'], secret));
      res.end('{}');
    });
  });
  await new Promise((r) => sink.listen(0, '127.0.0.1', r));
  try {
    const prod = await stripe.products.create({name: 'Team plan'});
    const meter = async (name) => stripe.billing.meters.create({display_name: name, event_name: name, default_aggregation: {formula: 'sum'}});
    const [calls, storage, emails, tokens] = [await meter('inv_calls'), await meter('inv_storage'), await meter('inv_emails'), await meter('inv_tokens')];
    const monthly = (m) => ({interval: 'month', usage_type: 'metered', meter: m.id});
    const base = await stripe.prices.create({product: prod.id, currency: 'usd', unit_amount: 4900, recurring: {interval: 'month'}});
    const graduated = await stripe.prices.create({product: prod.id, currency: 'usd', billing_scheme: 'tiered', tiers_mode: 'graduated',
      tiers: [{up_to: 1000, unit_amount: 0}, {up_to: 'inf', unit_amount_decimal: '0.05'}], recurring: monthly(calls)});
    const volume = await stripe.prices.create({product: prod.id, currency: 'usd', billing_scheme: 'tiered', tiers_mode: 'volume',
      tiers: [{up_to: 10, unit_amount: 100, flat_amount: 50}, {up_to: 'inf', unit_amount_decimal: '80.5'}], recurring: monthly(storage)});
    const packaged = await stripe.prices.create({product: prod.id, currency: 'usd', unit_amount: 250, transform_quantity: {divide_by: 1000, round: 'up'},
      recurring: monthly(emails)});
    const fractional = await stripe.prices.create({product: prod.id, currency: 'usd', unit_amount_decimal: '0.0015', recurring: monthly(tokens)});
    const c = await stripe.customers.create({email: 'team@example.com'});
    const other = await stripe.customers.create({email: 'other@example.com'});
    const sub = await stripe.subscriptions.create({customer: c.id, metadata: {tollgate_customer: 'cust_team'},
      items: [{price: base.id}, {price: graduated.id}, {price: volume.id}, {price: packaged.id}, {price: fractional.id}]});
    const end = Math.floor(Date.now() / 1000) - 3600, start = end - 10 * 86400;
    let n = 0;
    const usage = (m, customer, value, timestamp) => stripe.billing.meterEvents.create({event_name: m.event_name,
      payload: {stripe_customer_id: customer.id, value: String(value)}, identifier: `inv_${n++}`, timestamp});
    await usage(calls, c, 700, start); // the first second counts
    await usage(calls, c, 800, end - 1);
    await usage(calls, c, 5000, end); // the period's end belongs to the next period
    await usage(calls, c, 5000, start - 1);
    await usage(calls, other, 9000, start + 10); // another customer's
    await usage(storage, c, 11, start + 10);
    await usage(emails, c, 2001, start + 10);
    await usage(tokens, c, 3333, start + 10);
    await stripe.invoiceItems.create({customer: c.id, amount: -300, currency: 'usd', description: 'Credit'});
    await control('POST', '/__control/webhook_endpoint', {url: `http://127.0.0.1:${sink.address().port}/`, secret});

    const inv = await control('POST', `/__control/subscriptions/${sub.id}/invoice`, {period_start: start, period_end: end});
    assert.equal(inv.object, 'invoice');
    assert.equal(inv.status, 'open');
    assert.match(inv.number, /-0001$/);
    assert.equal(inv.billing_reason, 'subscription_cycle');
    assert.equal(inv.parent.type, 'subscription_details');
    assert.equal(inv.parent.subscription_details.subscription, sub.id);
    assert.deepEqual([inv.period_start, inv.period_end], [start, end]);
    const byPrice = Object.fromEntries(inv.lines.data.filter((l) => l.pricing).map((l) => [l.pricing.price_details.price, l]));
    // 1500 calls: 1000 free, 500 x 0.05 = 25
    assert.deepEqual([byPrice[graduated.id].quantity, byPrice[graduated.id].amount], [1500, 25]);
    // 11 GB: all at the second tier (volume), 11 x 80.5 = 885.5 -> 886 (half up)
    assert.deepEqual([byPrice[volume.id].quantity, byPrice[volume.id].amount], [11, 886]);
    // 2001 emails: 3 packages of 1000 (rounded up) x 250
    assert.deepEqual([byPrice[packaged.id].quantity, byPrice[packaged.id].amount], [2001, 750]);
    // 3333 tokens x 0.0015 = 4.9995 -> 5
    assert.deepEqual([byPrice[fractional.id].quantity, byPrice[fractional.id].amount], [3333, 5]);
    // the base fee, in advance: the next period
    assert.deepEqual([byPrice[base.id].quantity, byPrice[base.id].amount], [1, 4900]);
    assert.deepEqual(byPrice[base.id].period, {start: end, end: end + 10 * 86400});
    assert.deepEqual(byPrice[graduated.id].period, {start, end});
    const sd = byPrice[graduated.id].parent.subscription_item_details;
    assert.equal(byPrice[graduated.id].parent.type, 'subscription_item_details');
    assert.equal(sd.subscription, sub.id);
    assert.equal(sd.subscription_item, sub.items.data[1].id);
    assert.equal(byPrice[graduated.id].pricing.price_details.product, prod.id);
    const credit = inv.lines.data.find((l) => l.parent.type === 'invoice_item_details');
    assert.equal(credit.amount, -300);
    assert.equal(inv.lines.data.length, 6);
    assert.equal(inv.total, 4900 + 25 + 886 + 750 + 5 - 300);
    assert.equal(inv.amount_due, 6266);
    // the same invoice through the official client, and its lines a page at a time
    const listed = await stripe.invoices.list({customer: c.id});
    assert.deepEqual(listed.data.map((x) => x.id), [inv.id]);
    const page1 = await stripe.invoices.listLineItems(inv.id, {limit: 4});
    assert.equal(page1.data.length, 4);
    assert.equal(page1.has_more, true);
    const page2 = await stripe.invoices.listLineItems(inv.id, {limit: 4, starting_after: page1.data[3].id});
    assert.deepEqual([...page1.data, ...page2.data].map((l) => l.id), inv.lines.data.map((l) => l.id));
    assert.equal(page2.has_more, false);
    const deliveries = await control('GET', '/__control/deliveries');
    assert.ok(deliveries.every((d) => d.status === 200));
    assert.deepEqual(got.map((e) => e.type), ['invoice.created', 'invoice.finalized']);
    assert.equal(got[0].data.object.status, 'draft');
    assert.equal(got[0].data.object.lines.data.length, 6);
    assert.equal(got[1].data.object.status, 'open');
    // a canceled subscription has no period to invoice
    await stripe.subscriptions.cancel(sub.id);
    const r = await fetch(`${fake.url}/__control/subscriptions/${sub.id}/invoice`, {method: 'POST', body: JSON.stringify({period_start: start, period_end: end})});
    assert.equal(r.status, 400);
    await control('POST', '/__control/webhook_endpoint', {url: null});
  } finally {
    sink.close();
  }
});
