// stripe_catalog.test.mjs - `tollgate stripe sync-catalog` (issue 11 item 4, billing: stripe), the
// real binary against the fake Stripe: the catalog it makes for per_unit above an allowance,
// graduated (with an allowance and a flat fee), volume and package plans, field by field; a second
// run and --dry-run make no POST; a changed price becomes a new price that takes the lookup key
// over while the old one is deactivated; a POST whose response is lost is sent again with its
// key and makes nothing twice; a plan Stripe cannot bill exactly is refused by sync-catalog,
// check-config and serve with FILE:LINE, and nothing is sent.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TOLLGATE } from './harness.mjs';
import { startFakeStripe, API_VERSION } from '../stripe/fake_stripe.mjs';

let fake, dir;
before(async () => {
  fake = await startFakeStripe();
  dir = mkdtempSync(join(tmpdir(), 'tollgate-catalog-'));
});
after(async () => { await fake.close(); });
beforeEach(async () => { await control('POST', '/__control/reset'); });

const control = (method, path, body) => fake.control(method, path, body);

// The plans of the tests; `starterPrice` changes the starter plan's unit price.
function plans({ starterPrice = '0.001', starterName = 'Starter' } = {}) {
  return `plans:
  starter:
    name: ${starterName}
    price: "49"
    included: {api_calls: 1000}
    on_quota: bill
    charges: [{metric: api_calls, model: per_unit, unit_price: "${starterPrice}"}]
  tokens:
    price: "9.995"
    included: {tokens: 100}
    on_quota: bill
    charges:
      - metric: tokens
        model: graduated
        tiers:
          - {up_to: 1000, unit_price: "0.01"}
          - {up_to: inf, unit_price: "0.000005", flat_price: "3"}
  vision:
    price: "0"
    charges:
      - metric: images
        model: volume
        tiers:
          - {up_to: 10000, unit_price: "0.001", flat_price: "10"}
          - {up_to: inf, unit_price: "0.0004", flat_price: "10"}
  storage:
    price: "120"
    currency: eur
    interval: year
    charges: [{metric: gb, model: package, package_size: 10, package_price: "2.50", round: down}]
`;
}

let nconf = 0;
function config(body, { billing = 'stripe', key = 'sk_test_catalog_0123456789' } = {}) {
  const path = join(dir, `tollgate-${nconf++}.yaml`);
  writeFileSync(path, `upstream: {url: "http://127.0.0.1:9"}
admin: {token: "0123456789abcdef0123"}
keys: {secret: "0123456789abcdef0123456789abcdef"}
storage: {database: "sqlite:${join(dir, 'tollgate.db')}"}
stripe: {secret_key: "${key}", webhook_secret: whsec_catalog_0123456789, api_base: "${fake.url}", billing: ${billing}}
${body}`);
  return path;
}

// Runs the binary without blocking this process (the fake answers from it).
function run(...args) {
  return new Promise((resolve) => {
    execFile(TOLLGATE, args, { timeout: 60000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

const sync = (path, ...more) => run('stripe', 'sync-catalog', '-c', path, ...more);
const objects = async (type) => (await control('GET', `/__control/objects?type=${type}`))[type] || [];
const posts = async () => (await control('GET', '/__control/requests')).filter((r) => r.method === 'POST');
const byLookup = (prices, key) => prices.filter((p) => p.lookup_key === key);

test('sync-catalog creates exactly the products, meters and prices of the plans', async () => {
  const r = await sync(config(plans()));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^create +product +starter +prod_/m);
  assert.match(r.stdout, /created 16, updated 0, replaced 0, retired 0, kept 0/);

  const products = await objects('product');
  assert.deepEqual(products.map((p) => [p.metadata.tollgate_plan, p.name, p.active]).sort(),
    [['starter', 'Starter', true], ['storage', 'storage', true], ['tokens', 'tokens', true], ['vision', 'vision', true]]);
  const prod = Object.fromEntries(products.map((p) => [p.metadata.tollgate_plan, p.id]));

  const meters = await objects('billing.meter');
  assert.deepEqual(meters.map((m) => m.event_name).sort(), ['api_calls', 'gb', 'images', 'tokens']);
  for (const m of meters) {
    assert.equal(m.status, 'active');
    assert.deepEqual(m.default_aggregation, { formula: 'sum' });
    assert.deepEqual(m.customer_mapping, { event_payload_key: 'stripe_customer_id', type: 'by_id' });
    assert.deepEqual(m.value_settings, { event_payload_key: 'value' });
  }
  const meter = Object.fromEntries(meters.map((m) => [m.event_name, m.id]));

  const prices = await objects('price');
  assert.equal(prices.length, 8);
  const price = (k) => { const l = byLookup(prices, k); assert.equal(l.length, 1, k); return l[0]; };
  const licensed = (interval) => ({ interval, interval_count: 1, meter: null, usage_type: 'licensed' });
  const metered = (interval, m) => ({ interval, interval_count: 1, meter: meter[m], usage_type: 'metered' });

  // base fees: whole cents as unit_amount, 9.995 as a decimal number of cents
  let p = price('tollgate_starter_base');
  assert.deepEqual([p.product, p.currency, p.billing_scheme, p.unit_amount, p.recurring],
    [prod.starter, 'usd', 'per_unit', 4900, licensed('month')]);
  p = price('tollgate_tokens_base');
  assert.deepEqual([p.product, p.unit_amount, p.unit_amount_decimal], [prod.tokens, null, '999.5']);
  p = price('tollgate_vision_base');
  assert.equal(p.unit_amount, 0);
  p = price('tollgate_storage_base');
  assert.deepEqual([p.product, p.currency, p.unit_amount, p.recurring], [prod.storage, 'eur', 12000, licensed('year')]);

  // per_unit above 1,000 included: a free first tier, then 0.1 cent a call
  p = price('tollgate_starter_api_calls');
  assert.deepEqual([p.product, p.billing_scheme, p.tiers_mode, p.recurring, p.transform_quantity],
    [prod.starter, 'tiered', 'graduated', metered('month', 'api_calls'), null]);
  assert.deepEqual(p.tiers.map((t) => [t.up_to, t.unit_amount_decimal, t.flat_amount_decimal]),
    [[1000, '0', null], [null, '0.1', null]]);
  // graduated above 100 included: bounds shifted by 100 behind a free tier, the flat fee kept
  p = price('tollgate_tokens_tokens');
  assert.deepEqual([p.billing_scheme, p.tiers_mode, p.recurring], ['tiered', 'graduated', metered('month', 'tokens')]);
  assert.deepEqual(p.tiers.map((t) => [t.up_to, t.unit_amount_decimal, t.flat_amount_decimal]),
    [[100, '0', null], [1100, '1', null], [null, '0.0005', '300']]);
  // volume without an allowance: the same tiers
  p = price('tollgate_vision_images');
  assert.deepEqual([p.billing_scheme, p.tiers_mode], ['tiered', 'volume']);
  assert.deepEqual(p.tiers.map((t) => [t.up_to, t.unit_amount_decimal, t.flat_amount_decimal]),
    [[10000, '0.1', '1000'], [null, '0.04', '1000']]);
  // package: a price per package and the quantity divided, partial packages rounded down
  p = price('tollgate_storage_gb');
  assert.deepEqual([p.currency, p.billing_scheme, p.unit_amount_decimal, p.transform_quantity, p.recurring, p.tiers_mode],
    ['eur', 'per_unit', '250', { divide_by: 10, round: 'down' }, metered('year', 'gb'), null]);

  // every POST pinned to the API version and with a key
  const sent = await posts();
  assert.equal(sent.length, 16);
  for (const s of sent) {
    assert.equal(s.stripe_version, API_VERSION);
    assert.match(s.idempotency_key, /^tollgate-catalog-[0-9a-f]{32}$/);
    assert.equal(s.status, 200);
  }
  assert.equal(new Set(sent.map((s) => s.idempotency_key)).size, 16);
});

test('a second run changes nothing, sends no POST and says so', async () => {
  const path = config(plans());
  assert.equal((await sync(path)).code, 0);
  const before = (await posts()).length;
  const r = await sync(path);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await posts()).length, before);
  assert.match(r.stdout, /Stripe's catalog is up to date: nothing to change \(16 objects\)/);
  assert.equal(r.stdout.split('\n').filter((l) => l.startsWith('keep ')).length, 16);
});

test('--dry-run lists the changes and sends no POST', async () => {
  let r = await sync(config(plans()), '--dry-run');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^create +price +tollgate_tokens_tokens$/m);
  assert.match(r.stdout, /dry run: would create 16, update 0, replace 0, retire 0, keep 0; nothing was sent/);
  assert.equal((await posts()).length, 0);
  assert.equal((await objects('product')).length, 0);

  assert.equal((await sync(config(plans()))).code, 0);
  const before = (await posts()).length;
  r = await sync(config(plans({ starterPrice: '0.002', starterName: 'Starter Plus' })), '--dry-run');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^update +product +starter +prod_\S+ \(name is Starter, not Starter Plus\)$/m);
  assert.match(r.stdout, /^replace +price +tollgate_starter_api_calls +price_\S+ \(tiers\[1\]\[unit_amount_decimal\] is 0\.1, not 0\.2\)$/m);
  assert.match(r.stdout, /would create 0, update 1, replace 1, retire 0, keep 14/);
  assert.equal((await posts()).length, before);
});

test('a changed price becomes a new price that holds the lookup key; the old one is deactivated', async () => {
  assert.equal((await sync(config(plans()))).code, 0);
  const old = byLookup(await objects('price'), 'tollgate_starter_api_calls')[0];
  const r = await sync(config(plans({ starterPrice: '0.002' })));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /created 0, updated 0, replaced 1, retired 0, kept 15/);
  const prices = await objects('price');
  assert.equal(prices.length, 9);
  const now = byLookup(prices, 'tollgate_starter_api_calls');
  assert.equal(now.length, 1);
  assert.notEqual(now[0].id, old.id);
  assert.equal(now[0].active, true);
  assert.deepEqual(now[0].tiers.map((t) => t.unit_amount_decimal), ['0', '0.2']);
  const was = prices.find((p) => p.id === old.id);
  assert.deepEqual([was.active, was.lookup_key], [false, null]);
  assert.match(r.stdout, new RegExp(`replace +price +tollgate_starter_api_calls +${now[0].id} replaces ${old.id} .*old price is deactivated`));
  const creates = (await posts()).filter((s) => s.path === '/v1/prices' && s.params.lookup_key === 'tollgate_starter_api_calls');
  assert.equal(creates.at(-1).params.transfer_lookup_key, 'true');

  // and back: the earlier content is a new price again (its key differs: it replaces another price)
  const back = await sync(config(plans()));
  assert.equal(back.code, 0, back.stderr);
  const final = byLookup(await objects('price'), 'tollgate_starter_api_calls');
  assert.equal(final.length, 1);
  assert.deepEqual(final[0].tiers.map((t) => t.unit_amount_decimal), ['0', '0.1']);
  assert.ok(![old.id, now[0].id].includes(final[0].id));
  assert.equal((await sync(config(plans()))).stdout.includes('nothing to change'), true);
});

test('a replaced price a stopped run left active, and the price of a removed charge, are retired', async () => {
  assert.equal((await sync(config(plans()))).code, 0);
  const old = byLookup(await objects('price'), 'tollgate_starter_api_calls')[0];
  // the new price is made, then Stripe fails every attempt to deactivate the old one
  await control('POST', '/__control/fail', { count: 4, status: 500, method: 'POST', path: `/v1/prices/${old.id}` });
  let r = await sync(config(plans({ starterPrice: '0.002' })));
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`deactivate price ${old.id} \\(tollgate_starter_api_calls\\): Stripe 500`));
  assert.match(r.stderr, /running the command again continues from there/);
  let was = (await objects('price')).find((p) => p.id === old.id);
  assert.deepEqual([was.active, was.lookup_key], [true, null]); // the key moved, the price is still active

  r = await sync(config(plans({ starterPrice: '0.002' })), '--dry-run');
  assert.match(r.stdout, new RegExp(`^retire +price +\\(no lookup key\\) +${old.id} \\(replaced, left active by an interrupted run\\)$`, 'm'));
  assert.match(r.stdout, /would create 0, update 0, replace 0, retire 1, keep 16/);
  r = await sync(config(plans({ starterPrice: '0.002' })));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /created 0, updated 0, replaced 0, retired 1, kept 16/);
  was = (await objects('price')).find((p) => p.id === old.id);
  assert.equal(was.active, false);
  assert.match((await sync(config(plans({ starterPrice: '0.002' })))).stdout, /nothing to change/);

  // the storage plan loses its charge: its metered price is retired, its lookup key stays with it
  const gb = byLookup(await objects('price'), 'tollgate_storage_gb')[0];
  r = await sync(config(plans({ starterPrice: '0.002' }).replace(/\n    charges: \[\{metric: gb.*\n/, '\n')));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^retire +price +tollgate_storage_gb +${gb.id} \\(its charge is no longer in the plans\\)$`, 'm'));
  assert.equal((await objects('price')).find((p) => p.id === gb.id).active, false);
});

// A call to the fake as an owner in Stripe's dashboard would make it.
async function stripeApi(path, form) {
  const r = await fetch(fake.url + path, {
    method: 'POST', body: form,
    headers: { authorization: 'Bearer sk_test_dashboard_0123', 'content-type': 'application/x-www-form-urlencoded' },
  });
  assert.equal(r.status, 200, await r.clone().text());
  return r.json();
}

test('changes made in Stripe are repaired: an archived product, a deactivated price; a meter that cannot be changed is an error', async () => {
  assert.equal((await sync(config(plans()))).code, 0);
  const prod = (await objects('product')).find((p) => p.metadata.tollgate_plan === 'vision');
  const price = byLookup(await objects('price'), 'tollgate_vision_images')[0];
  await stripeApi(`/v1/products/${prod.id}`, 'active=false');
  await stripeApi(`/v1/prices/${price.id}`, 'active=false');
  let r = await sync(config(plans()));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^update +product +vision +${prod.id} \\(archived\\)$`, 'm'));
  assert.match(r.stdout, new RegExp(`^update +price +tollgate_vision_images +${price.id} \\(inactive\\)$`, 'm'));
  assert.match(r.stdout, /created 0, updated 2, replaced 0, retired 0, kept 14/);
  assert.equal((await objects('product')).find((p) => p.id === prod.id).active, true);
  assert.equal((await objects('price')).find((p) => p.id === price.id).active, true);

  // a meter for a metric, made by hand with another aggregation: Stripe cannot change it
  await control('POST', '/__control/reset');
  const m = await stripeApi('/v1/billing/meters', 'display_name=Images&event_name=images&default_aggregation[formula]=count');
  r = await sync(config(plans()));
  assert.equal(r.code, 1);
  assert.match(r.stdout, new RegExp(`^conflict meter +images +${m.id} \\(default_aggregation\\[formula\\] is count, not sum\\)$`, 'm'));
  assert.match(r.stderr, /Stripe cannot change a meter's aggregation or mappings: deactivate it in Stripe and run again\. Nothing was sent\./);
  assert.equal((await posts()).length, 1); // the meter made above, and nothing from tollgate
});

test('a POST whose response is lost is sent again with its key: nothing is made twice', async () => {
  // the first price POST is processed by the fake, then its answer is dropped
  await control('POST', '/__control/fail', { count: 1, kind: 'lost', method: 'POST', path: '/v1/prices' });
  const r = await sync(config(plans()));
  assert.equal(r.code, 0, r.stderr);
  const sent = (await posts()).filter((s) => s.path === '/v1/prices');
  assert.equal(sent[0].status, 'lost');
  assert.equal(sent[1].idempotency_key, sent[0].idempotency_key);
  assert.equal(sent[1].status, 200);
  const prices = await objects('price');
  assert.equal(prices.length, 8);
  assert.equal(byLookup(prices, 'tollgate_starter_base').length, 1);
  // a product whose answer is lost, and a run that gives up (Stripe unreachable) and is started again
  await control('POST', '/__control/reset');
  await control('POST', '/__control/fail', { count: 1, kind: 'lost', method: 'POST', path: '/v1/products' });
  await control('POST', '/__control/fail', { count: 4, status: 500, method: 'POST', path: '/v1/billing/meters' });
  const failed = await sync(config(plans()));
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /create meter api_calls: Stripe 500 api_error: An unknown error occurred/);
  const again = await sync(config(plans()));
  assert.equal(again.code, 0, again.stderr);
  assert.equal((await objects('product')).length, 4);
  assert.equal((await objects('billing.meter')).length, 4);
  assert.equal((await objects('price')).length, 8);
});

test('a plan Stripe cannot bill exactly is refused with FILE:LINE by sync-catalog, check-config and serve', async () => {
  const body = `${plans()}  capped:
    price: "10"
    maximum: "100"
    included: {images: 50}
    on_quota: bill
    charges:
      - {metric: images, model: volume, tiers: [{up_to: inf, unit_price: "1"}]}
`;
  const path = config(body);
  const line = body.split('\n').findIndex((l) => l === '  capped:') + 6; // 5 header lines, 1-based
  const refusals = [
    `${path}:${line}: plans.capped.maximum: Stripe cannot bill this exactly (stripe.billing: stripe): Stripe prices have no spending cap`,
    `${path}:${line}: plans.capped.charges[0] (images): Stripe cannot bill this exactly (stripe.billing: stripe): volume tiers after an included allowance of 50`,
  ];
  let r = await sync(path);
  assert.equal(r.code, 2);
  for (const x of refusals) assert.ok(r.stderr.includes(x), r.stderr);
  assert.match(r.stderr, /nothing was sent/);
  assert.equal((await control('GET', '/__control/requests')).length, 0);

  r = await run('check-config', '-c', path);
  assert.equal(r.code, 1);
  for (const x of refusals) assert.ok(r.stderr.includes(x), r.stderr);
  assert.doesNotMatch(r.stdout, /configuration OK/);

  r = await run('serve', '-c', path);
  assert.equal(r.code, 1);
  assert.ok(r.stderr.includes(refusals[0]), r.stderr);
  assert.match(r.stderr, /tollgate serve: refusing to start/);

  // with billing: tollgate, tollgate computes the invoices: the same plans are fine
  const tg = config(body, { billing: 'tollgate' });
  r = await run('check-config', '-c', tg);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /configuration OK/);
  r = await sync(tg);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /stripe\.billing: tollgate/);
});

test('Stripe refusing the key: exit 1 with Stripe\'s message; usage errors: exit 2', async () => {
  let r = await sync(config(plans(), { key: 'sk_live_not_accepted_by_the_fake_0123' }));
  assert.equal(r.code, 1);
  assert.match(r.stderr, /listing \/v1\/products: .*Invalid API Key provided/);
  r = await run('stripe', 'sync-catalog');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /-c FILE is required/);
  r = await run('stripe', 'sync-catalog', '-c', config(plans()), '--bogus');
  assert.equal(r.code, 2);
  r = await run('stripe', 'nope');
  assert.equal(r.code, 2);
  r = await run('stripe', 'sync-catalog', '--help');
  assert.equal(r.code, 0);
  assert.match(r.stdout, /operator command: it calls Stripe directly and synchronously/);
});
