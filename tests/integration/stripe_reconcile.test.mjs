// stripe_reconcile.test.mjs - `tollgate stripe reconcile` (issue 11 item 4, billing: stripe), on the
// real binary against the fake Stripe (tests/stripe/fake_stripe.mjs):
//   - customers are made by tollgate (their Stripe customers through the outbox) and call the
//     gateway; the Stripe side of billing: stripe (catalog, subscriptions, meter events) is posted
//     to the fake by the test itself with the official client, in the shapes the conventions fix
//     (lookup keys tollgate_P_base / tollgate_P_M, meters by event_name, identifiers
//     tg_<customer>_<metric>_<hour>_<seq>), because sync-catalog, the subscriptions and the meter
//     event export are other parts of the issue; the fake invoices each subscription's period
//     (POST /__control/subscriptions/:id/invoice) from those meter events;
//   - reconcile then reports no differences (exit 0); a meter event dropped in Stripe, a price
//     changed in Stripe, a customer without a Stripe invoice are each reported as exactly that
//     customer and metric with both values (exit 1); bad arguments, a configuration without
//     billing: stripe and a Stripe that keeps failing exit 2, one transient 500 is retried.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import { Stack, TOLLGATE, sleep } from './harness.mjs';
import { startFakeStripe } from '../stripe/fake_stripe.mjs';

// The official client, installed with the fake in tests/stripe (npm ci there).
const Stripe = createRequire(new URL('../stripe/package.json', import.meta.url))('stripe');
const SECRET_KEY = 'sk_test_tollgate_reconcile_0123';
let fake, stripe;
before(async () => {
  fake = await startFakeStripe();
  stripe = new Stripe(SECRET_KEY, { host: '127.0.0.1', port: fake.port, protocol: 'http', maxNetworkRetries: 0 });
});
after(async () => { await fake.close(); });

// A plan with a base fee, an allowance on api_calls and a graduated charge on images.
const PLAN = `  recon:
    price: "29"
    rate_limit: 1000/sec
    burst: 1000
    included: {api_calls: 2}
    on_quota: bill
    charges:
      - {metric: api_calls, model: per_unit, unit_price: "0.25"}
      - {metric: images, model: graduated, tiers: [{up_to: 1, unit_price: "0"}, {up_to: inf, unit_price: "1.5"}]}
`;

async function control(method, path, body) {
  const r = await fetch(fake.url + path, {
    method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await r.json();
  if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(json)}`);
  return json;
}

async function until(fn, what) {
  for (let i = 0; i < 600; i++) {
    const v = await fn();
    if (v) return v;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// The catalog sync-catalog makes for plan recon, in the fake: a product, the base fee's licensed
// price, a meter per metric and a metered graduated price per charge (the allowance as a free
// first tier).
async function catalog() {
  const product = await stripe.products.create({ name: 'recon plan', metadata: { tollgate_plan: 'recon' } });
  const meter = async (m) => stripe.billing.meters.create({ display_name: m, event_name: m, default_aggregation: { formula: 'sum' },
    customer_mapping: { type: 'by_id', event_payload_key: 'stripe_customer_id' }, value_settings: { event_payload_key: 'value' } });
  const calls = await meter('api_calls'), images = await meter('images');
  const base = await stripe.prices.create({ product: product.id, currency: 'usd', unit_amount: 2900,
    recurring: { interval: 'month' }, lookup_key: 'tollgate_recon_base' });
  const metered = (m, free, cents, key) => stripe.prices.create({ product: product.id, currency: 'usd', billing_scheme: 'tiered',
    tiers_mode: 'graduated', tiers: [{ up_to: free, unit_amount: 0 }, { up_to: 'inf', unit_amount_decimal: cents }],
    recurring: { interval: 'month', usage_type: 'metered', meter: m.id }, lookup_key: key });
  return { product, calls, images, base, apiCalls: await metered(calls, 2, '25', 'tollgate_recon_api_calls'),
    imagesPrice: await metered(images, 1, '150', 'tollgate_recon_images') };
}

// A customer on plan recon with a key, its Stripe customer (made by tollgate's outbox) and its
// current period.
async function customer(s) {
  const { customer: c, key } = await s.customer('recon');
  const st = await until(async () => {
    const r = await s.adminCall('GET', `/v1/admin/customers/${c.id}`);
    return r.json.stripe && r.json.stripe.state === 'done' && r.json.stripe;
  }, `${c.id} in Stripe`);
  return { id: c.id, key, stripeId: st.customer_id };
}

async function period(s, id) {
  const u = await s.adminCall('GET', `/v1/admin/customers/${id}/usage`);
  assert.equal(u.status, 200, u.text);
  return { start: Date.parse(u.json.period.start) / 1000, end: Date.parse(u.json.period.end) / 1000,
    month: u.json.period.start.slice(0, 7), used: Object.fromEntries(u.json.metrics.map((m) => [m.metric, m.used])) };
}

// What the meter-event export sends: one event per customer, metric and hour (seq 0, then 1 for
// usage of the same hour sent later), timestamp the hour's start.
const hour = () => Math.floor(Date.now() / 3600000) * 3600;
async function meterEvent(cust, metric, value, seq) {
  const h = hour();
  const identifier = `tg_${cust.id}_${metric}_${h}_${seq}`;
  await stripe.billing.meterEvents.create({ event_name: metric, payload: { stripe_customer_id: cust.stripeId, value: String(value) },
    identifier, timestamp: h });
  return identifier;
}

async function invoice(sub, p) {
  // The subscription's period as Stripe would have it, from the hour its usage is stamped with.
  return control('POST', `/__control/subscriptions/${sub.id}/invoice`, { period_start: Math.min(p.start, hour()), period_end: p.end });
}

// The CLI, run without blocking this process's event loop: the fake Stripe answers from it.
function run(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(TOLLGATE, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('error', reject);
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}
const reconcile = (s, args) => run(['stripe', 'reconcile', '-c', s.config, ...args]);

// The difference rows of a run (header and summary left out) as [customer, kind, subject, tollgate, stripe].
function rows(out) {
  return out.stdout.split('\n').filter((l) => l.includes('\t') && !l.startsWith('customer\t'))
    .map((l) => { const f = l.split('\t'); return [f[0], f[2], f[3], f[4], f[5]]; });
}

const stripeYaml = () => `stripe: {secret_key: "${SECRET_KEY}", webhook_secret: "whsec_test_reconcile_0123", api_base: "${fake.url}", billing: stripe}`;

test('reconcile: equal usage and invoices are clean; a dropped meter event, a changed price and a missing invoice are named exactly', async () => {
  await control('POST', '/__control/reset');
  const s = await new Stack({ extra: stripeYaml(), morePlans: PLAN }).start();
  try {
    const cat = await catalog();
    const a = await customer(s), b = await customer(s);
    // A: 4 plain calls and 1 image; B: 1 plain call and 3 images (POST /v1/vision/* meters both).
    for (let i = 0; i < 4; i++) assert.equal((await s.call('/v1/basic/x', { key: a.key })).status, 200);
    assert.equal((await s.call('/v1/vision/tag', { key: a.key, method: 'POST', body: 'img' })).status, 200);
    assert.equal((await s.call('/v1/basic/x', { key: b.key })).status, 200);
    for (let i = 0; i < 3; i++) assert.equal((await s.call('/v1/vision/tag', { key: b.key, method: 'POST', body: 'img' })).status, 200);
    const pa = await period(s, a.id), pb = await period(s, b.id);
    assert.deepEqual([pa.used.api_calls, pa.used.images, pb.used.api_calls, pb.used.images], [5, 1, 4, 3]);

    // The Stripe side: subscriptions on the catalog, meter events of what was metered (B's images
    // in two sends for the same hour).
    const subscribe = (c) => stripe.subscriptions.create({ customer: c.stripeId, metadata: { tollgate_customer: c.id },
      items: [{ price: cat.base.id }, { price: cat.apiCalls.id }, { price: cat.imagesPrice.id }] });
    const subA = await subscribe(a), subB = await subscribe(b);
    await meterEvent(a, 'api_calls', 5, 0);
    await meterEvent(a, 'images', 1, 0);
    await meterEvent(b, 'api_calls', 4, 0);
    await meterEvent(b, 'images', 2, 0);
    const late = await meterEvent(b, 'images', 1, 1);
    let invA = await invoice(subA, pa), invB = await invoice(subB, pb);
    // tollgate: A 29.00 + 3 x 0.25 + 0 = 29.75; B 29.00 + 2 x 0.25 + 2 x 1.50 = 32.50
    assert.deepEqual([invA.total, invB.total], [2975, 3250]);

    let r = await reconcile(s, ['--period', pa.month]);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /^no differences: 2 customers with a period starting in \d{4}-\d{2}$/m);

    // A meter event lost on the way to Stripe: B's invoice bills 2 images, tollgate metered 3.
    const lost = fake.state.meterIdentifiers.get(late);
    fake.state.meterIdentifiers.delete(late);
    await stripe.invoices.voidInvoice(invB.id);
    invB = await invoice(subB, pb);
    r = await reconcile(s, ['--period', pa.month]);
    assert.equal(r.status, 1, r.stderr + r.stdout);
    assert.deepEqual(rows(r), [
      [b.id, 'usage', 'images', '3', '2'],
      [b.id, 'amount', 'images', '300', '150'],
      [b.id, 'total', '-', '3250', '3100'],
    ]);
    assert.ok(r.stdout.includes(`${b.id}\t${invB.id}\tusage`), 'rows name the Stripe invoice');
    assert.match(r.stdout, /^3 differences in 1 of 2 customers/m);
    r = await reconcile(s, ['--period', pa.month, '--json']);
    assert.equal(r.status, 1, r.stderr + r.stdout);
    const j = JSON.parse(r.stdout);
    assert.equal(j.customers, 2);
    assert.deepEqual(j.differences[0], { customer: b.id, stripe_invoice: invB.id, difference: 'usage', subject: 'images',
      tollgate: '3', stripe: '2' });
    assert.equal(j.differences.length, 3);

    // Back in Stripe: clean again. Then the metered price of API calls is changed in Stripe
    // (0.30 a call; the fake lets the test edit it in place) before A's invoice is made again:
    // A's invoice differs, B's (made before) does not.
    fake.state.meterIdentifiers.set(late, lost);
    await stripe.invoices.voidInvoice(invB.id);
    invB = await invoice(subB, pb);
    assert.equal((await reconcile(s, ['--period', pa.month])).status, 0);
    fake.state.objects.get(cat.apiCalls.id).tiers[1].unit_amount_decimal = '30';
    await stripe.invoices.voidInvoice(invA.id);
    invA = await invoice(subA, pa);
    r = await reconcile(s, ['--period', pa.month]);
    assert.equal(r.status, 1, r.stderr + r.stdout);
    assert.deepEqual(rows(r), [
      [a.id, 'amount', 'api_calls', '75', '90'],
      [a.id, 'total', '-', '2975', '2990'],
    ]);

    // A new customer whose period has no Stripe invoice (yet): a difference, alone with --customer.
    const c = await customer(s);
    const pc = await period(s, c.id);
    r = await reconcile(s, ['--period', pc.month, '--customer', c.id]);
    assert.equal(r.status, 1, r.stderr + r.stdout);
    assert.deepEqual(rows(r), [[c.id, 'no_invoice', '-', '2900', 'none']]);
    // The month before (no period of theirs starts then) and the next (their periods there have
    // not begun): nothing to compare.
    const y = Number(pa.month.slice(0, 4)), m = Number(pa.month.slice(5)); // m: 1..12
    for (const month of [new Date(Date.UTC(y, m - 2, 1)), new Date(Date.UTC(y, m, 1))].map((d) => d.toISOString().slice(0, 7))) {
      r = await reconcile(s, ['--period', month]);
      assert.equal(r.status, 0, r.stderr + r.stdout);
      assert.match(r.stdout, /^no differences: 0 customers/m);
    }
  } finally { await s.stop(); }
});

test('reconcile: usage errors, a configuration without billing: stripe and a failing Stripe exit 2; one 500 is retried', async () => {
  await control('POST', '/__control/reset');
  const s = await new Stack({ extra: stripeYaml(), morePlans: PLAN }).start();
  try {
    const cat = await catalog();
    const a = await customer(s);
    const pa = await period(s, a.id);
    const sub = await stripe.subscriptions.create({ customer: a.stripeId,
      items: [{ price: cat.base.id }, { price: cat.apiCalls.id }, { price: cat.imagesPrice.id }] });
    await invoice(sub, pa);
    // 25 newer invoices of another kind (one-off, no period): the period's invoice is on the
    // second page of the list (20 a page), and is still the one found.
    for (let i = 0; i < 25; i++) await stripe.invoices.create({ customer: a.stripeId, currency: 'usd' });
    let r = await reconcile(s, ['--period', pa.month]);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const listed = (await control('GET', '/__control/requests')).filter((q) => q.path === '/v1/invoices' && q.method === 'GET');
    assert.deepEqual(listed.map((q) => q.params.starting_after === undefined), [true, false]);

    r = await run(['stripe', 'reconcile', '-c', s.config]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--period YYYY-MM are required/);
    r = await reconcile(s, ['--period', '2026-13']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--period 2026-13: expected YYYY-MM/);
    r = await run(['stripe', 'frobnicate']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown subcommand "frobnicate"/);
    r = await run(['stripe', 'reconcile', '--help']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /minor unit/);

    const tollgateMode = join(s.dir, 'billing-tollgate.yaml');
    writeFileSync(tollgateMode, readFileSync(s.config, 'utf8').replace('billing: stripe}', 'billing: tollgate}'));
    r = await run(['stripe', 'reconcile', '-c', tollgateMode, '--period', pa.month]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /stripe\.billing is tollgate/);

    // A customer Stripe refused to create (the outbox row failed): no Stripe customer, a difference.
    await control('POST', '/__control/fail', { count: 1, status: 400, path: '/v1/customers', method: 'POST', should_retry: false });
    const { customer: lone } = await s.customer('recon');
    await until(async () => {
      const x = await s.adminCall('GET', `/v1/admin/customers/${lone.id}`);
      return x.json.stripe && x.json.stripe.state === 'failed';
    }, 'the refused Stripe customer');
    r = await reconcile(s, ['--period', pa.month]);
    assert.equal(r.status, 1, r.stderr + r.stdout);
    assert.deepEqual(rows(r), [[lone.id, 'no_stripe_customer', '-', '2900', 'none']]);

    // One 500 on the invoice list: retried, and the run is clean (the refused customer aside).
    await control('POST', '/__control/fail', { count: 1, status: 500, path: '/v1/invoices', method: 'GET' });
    r = await reconcile(s, ['--period', pa.month, '--customer', a.id]);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /^no differences: 1 customer with/m);
    // Stripe failing every time: exit 2 with Stripe's sentence, after three attempts.
    const before = (await control('GET', '/__control/requests')).length;
    await control('POST', '/__control/fail', { count: 3, status: 500, path: '/v1/invoices', method: 'GET' });
    r = await reconcile(s, ['--period', pa.month, '--customer', a.id]);
    assert.equal(r.status, 2, r.stderr + r.stdout);
    assert.match(r.stderr, new RegExp(`customer ${a.id}: .*500`));
    const seen = (await control('GET', '/__control/requests')).slice(before);
    assert.equal(seen.filter((q) => q.path === '/v1/invoices').length, 3);
    assert.ok(seen.every((q) => q.method === 'GET'), 'reconcile only reads');
  } finally { await s.stop(); }
});
