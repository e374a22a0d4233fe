// stripe_outbox.test.mjs - customers reach Stripe through the durable outbox (issue 11 items 1
// and 7), on the real binary against the fake Stripe (tests/stripe/fake_stripe.mjs):
//   - every way of creating a customer (admin API, CLI, portal sign-up) makes exactly one Stripe
//     customer with email, name and metadata[tollgate_customer], sent with the pinned
//     Stripe-Version and the operation's Idempotency-Key; the admin API shows the sync state;
//   - 429, 500 and a response lost after Stripe processed the call are retried with the SAME
//     key: still exactly one Stripe customer, the row done;
//   - a refusal Stripe says not to retry (Stripe-Should-Retry: false) fails the row at once and
//     keeps the error, shown on the customer and in GET /v1/admin/stripe/outbox;
//   - kill -9 while the outbox is busy, then restart: every customer exists once in Stripe.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, ADMIN_TOKEN, sleep } from './harness.mjs';
import { startFakeStripe, API_VERSION } from '../stripe/fake_stripe.mjs';

let fake;
before(async () => { fake = await startFakeStripe(); });
after(async () => { await fake.close(); });

const stripeYaml = () =>
  `{secret_key: "sk_test_tollgate_outbox_0123", webhook_secret: "whsec_test_outbox_0123", api_base: "${fake.url}"}`;

const control = (method, path, body) => fake.control(method, path, body);

async function stripeCustomersOf(id) {
  const objs = await control('GET', '/__control/objects?type=customer');
  return (objs.customer || []).filter((c) => c.metadata && c.metadata.tollgate_customer === id);
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

async function syncState(s, id) {
  const r = await s.adminCall('GET', `/v1/admin/customers/${id}`);
  assert.equal(r.status, 200, r.text);
  return r.json.stripe;
}

const email = (tag) => `${tag}-${Math.random().toString(36).slice(2)}@example.com`;

test('admin API, CLI and sign-up customers each become exactly one Stripe customer with metadata[tollgate_customer]', async () => {
  await control('POST', '/__control/reset');
  const s = await new Stack({ extra: `stripe: ${stripeYaml()}` }).start();
  try {
    const ids = [];
    const a = await s.adminCall('POST', '/v1/admin/customers', { email: email('api'), name: 'Zoë & Co', plan: 'free' });
    assert.equal(a.status, 201, a.text);
    ids.push(a.json.id);

    const cliMail = email('cli');
    const cli = s.cli(['customers', 'add', '--email', cliMail, '--plan', 'free', '--name', 'Cli Person',
      '--server', s.admin]);
    assert.equal(cli.status, 0, cli.stderr + cli.stdout);
    const listed = await s.adminCall('GET', '/v1/admin/customers?limit=1000');
    ids.push(listed.json.data.find((c) => c.email === cliMail).id);

    const signMail = email('signup');
    const su = await fetch(s.admin + '/v1/signup', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: signMail, company: 'Signup Inc', password: 'correct horse battery', plan: 'free' }),
    });
    assert.equal(su.status, 201, await su.text());
    const listed2 = await s.adminCall('GET', '/v1/admin/customers?limit=1000');
    ids.push(listed2.json.data.find((c) => c.email === signMail).id);

    for (const id of ids) {
      const st = await until(async () => { const x = await syncState(s, id); return x.state === 'done' && x; }, `${id} synced`);
      const found = await stripeCustomersOf(id);
      assert.equal(found.length, 1, `one Stripe customer for ${id}`);
      assert.equal(st.customer_id, found[0].id);
      assert.equal(st.last_error, null);
    }
    const first = (await stripeCustomersOf(ids[0]))[0];
    assert.equal(first.name, 'Zoë & Co');
    assert.equal(first.email, a.json.email);

    // A new name reaches the same Stripe customer (an update, not a second customer).
    const renamed = await s.adminCall('PATCH', `/v1/admin/customers/${ids[0]}`, { name: 'Zoë & Partners' });
    assert.equal(renamed.status, 200, renamed.text);
    await until(async () => (await stripeCustomersOf(ids[0]))[0].name === 'Zoë & Partners', 'the new name in Stripe');
    assert.equal((await stripeCustomersOf(ids[0])).length, 1);
    assert.equal((await stripeCustomersOf(ids[2]))[0].name, 'Signup Inc');

    const reqs = (await control('GET', '/__control/requests')).filter((r) => r.path === '/v1/customers');
    assert.equal(reqs.length, 3);
    const upd = (await control('GET', '/__control/requests')).filter((r) => r.path === `/v1/customers/${first.id}`);
    assert.equal(upd.length, 1);
    assert.match(upd[0].idempotency_key, new RegExp(`^tg_customer\\.update_${ids[0]}_[0-9a-f]{16}$`));
    for (const r of reqs) {
      assert.equal(r.stripe_version, API_VERSION);
      assert.match(r.idempotency_key, /^tg_customer\.create_cus_/);
    }
    const outbox = await s.adminCall('GET', '/v1/admin/stripe/outbox?state=done&limit=2');
    assert.equal(outbox.status, 200, outbox.text);
    assert.equal(outbox.json.data.length, 2);
    assert.equal(outbox.json.has_more, true);
    const rest = await s.adminCall('GET', `/v1/admin/stripe/outbox?state=done&limit=2&cursor=${outbox.json.next_cursor}`);
    assert.equal(rest.json.data.length, 2);
    assert.equal(rest.json.has_more, false);
    const rows = [...outbox.json.data, ...rest.json.data];
    assert.deepEqual(rows.map((r) => r.kind).sort(), ['customer.create', 'customer.create', 'customer.create', 'customer.update']);
    assert.equal(new Set(rows.map((r) => r.customer)).size, 3);
  } finally { await s.stop(); }
});

test('429, 500 and a lost response are retried with the same Idempotency-Key: one Stripe customer, row done', async () => {
  await control('POST', '/__control/reset');
  await control('POST', '/__control/fail', { count: 1, status: 429, path: '/v1/customers' });
  await control('POST', '/__control/fail', { count: 1, status: 500, path: '/v1/customers' });
  await control('POST', '/__control/fail', { count: 1, kind: 'lost', path: '/v1/customers' });
  const s = await new Stack({ extra: `stripe: ${stripeYaml()}` }).start();
  try {
    const c = await s.adminCall('POST', '/v1/admin/customers', { email: email('retry'), name: 'Retry', plan: 'free' });
    assert.equal(c.status, 201, c.text);
    assert.ok(['pending', 'done'].includes(c.json.stripe.state));
    // While it retries, the owner sees it pending with Stripe's error (a 429 holds every call at
    // least 1 s, so the state is there to be seen).
    const retrying = await until(async () => {
      const x = await syncState(s, c.json.id);
      return x.state === 'pending' && x.last_error && x;
    }, 'the pending state with its error');
    assert.match(retrying.last_error, /Stripe (429|500)|POST \/v1\/customers/);
    assert.equal(retrying.customer_id, null);
    const st = await until(async () => { const x = await syncState(s, c.json.id); return x.state === 'done' && x; }, 'synced');
    assert.equal(st.attempts, 4);
    const reqs = (await control('GET', '/__control/requests')).filter((r) => r.path === '/v1/customers');
    assert.equal(reqs.length, 4, '429, 500, lost, then the replay');
    assert.equal(reqs[0].status, 429);
    assert.equal(reqs[1].status, 500);
    assert.equal(reqs[3].status, 200);
    assert.equal(new Set(reqs.map((r) => r.idempotency_key)).size, 1, 'one key across every attempt');
    assert.equal(reqs[0].idempotency_key, `tg_customer.create_${c.json.id}`);
    const found = await stripeCustomersOf(c.json.id);
    assert.equal(found.length, 1, 'the lost response was replayed, not repeated');
    assert.equal(st.customer_id, found[0].id);
    const m = await s.adminCall('GET', '/metrics');
    assert.match(m.text, /^tollgate_stripe_calls_total\{outcome="ok"\} 1$/m);
    assert.match(m.text, /^tollgate_stripe_calls_total\{outcome="retry"\} 3$/m);
    assert.match(m.text, /^tollgate_stripe_outbox_pending 0$/m);
  } finally { await s.stop(); }
});

test('Stripe-Should-Retry: false fails the row at once and keeps the error for the owner', async () => {
  await control('POST', '/__control/reset');
  await control('POST', '/__control/fail', { count: 1, status: 500, should_retry: false, path: '/v1/customers' });
  const s = await new Stack({ extra: `stripe: ${stripeYaml()}` }).start();
  try {
    const c = await s.adminCall('POST', '/v1/admin/customers', { email: email('perm'), name: 'Perm', plan: 'free' });
    const st = await until(async () => { const x = await syncState(s, c.json.id); return x.state === 'failed' && x; }, 'failed');
    assert.equal(st.attempts, 1);
    assert.equal(st.customer_id, null);
    assert.match(st.last_error, /Stripe 500 api_error/);
    const failed = await s.adminCall('GET', '/v1/admin/stripe/outbox?state=failed');
    assert.equal(failed.json.data.length, 1);
    assert.equal(failed.json.data[0].customer, c.json.id);
    assert.match(failed.json.data[0].last_error, /api_error/);
    assert.equal((await stripeCustomersOf(c.json.id)).length, 0);
    const bad = await s.adminCall('GET', '/v1/admin/stripe/outbox?state=weird');
    assert.equal(bad.status, 400);

    // The owner fixed the cause: the row goes back in the queue and is sent once.
    const rowId = failed.json.data[0].id;
    const again = await s.adminCall('POST', `/v1/admin/stripe/outbox/${rowId}/retry`);
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.state, 'pending');
    assert.equal(again.json.attempts, 0);
    await until(async () => (await syncState(s, c.json.id)).state === 'done', 'done after the retry');
    assert.equal((await stripeCustomersOf(c.json.id)).length, 1);
    assert.equal((await s.adminCall('POST', `/v1/admin/stripe/outbox/${rowId}/retry`)).status, 409);
    assert.equal((await s.adminCall('POST', '/v1/admin/stripe/outbox/999999/retry')).status, 404);
    assert.equal((await s.adminCall('GET', `/v1/admin/stripe/outbox/${rowId}/retry`)).status, 405);
  } finally { await s.stop(); }
});

test('customers from before the stripe section are queued when it is added, once', async () => {
  await control('POST', '/__control/reset');
  const s = await new Stack().start();
  try {
    const ids = [];
    for (let i = 0; i < 3; i++) {
      const c = await s.adminCall('POST', '/v1/admin/customers', { email: email(`old${i}`), name: `Old ${i}`, plan: 'free' });
      assert.equal(c.json.stripe, null, 'no stripe section: no sync state');
      ids.push(c.json.id);
    }
    await s.stopServer();
    s.opts.extra = `stripe: ${stripeYaml()}`;
    await s.start();
    for (const id of ids) await until(async () => (await syncState(s, id)).state === 'done', `${id} synced`);
    await s.stopServer();
    await s.start(); // a second start queues nothing new
    const rows = await s.adminCall('GET', '/v1/admin/stripe/outbox');
    assert.equal(rows.json.data.length, 3);
    for (const id of ids) assert.equal((await stripeCustomersOf(id)).length, 1);
  } finally { await s.stop(); }
});

test('kill -9 while the outbox is busy, then restart: every customer exists exactly once in Stripe', async () => {
  await control('POST', '/__control/reset');
  // The first answers are lost after Stripe created the customer: those rows stay pending,
  // and the crash comes while they wait for their retry.
  await control('POST', '/__control/fail', { count: 4, kind: 'lost', path: '/v1/customers' });
  const s = await new Stack({ extra: `stripe: ${stripeYaml()}` }).start();
  try {
    const ids = [];
    for (let i = 0; i < 12; i++) {
      const c = await s.adminCall('POST', '/v1/admin/customers', { email: email(`crash${i}`), name: `Crash ${i}`, plan: 'free' });
      assert.equal(c.status, 201, c.text);
      ids.push(c.json.id);
    }
    await until(async () => (await control('GET', '/__control/requests')).length >= 4, 'the outbox at work');
    await s.kill9();
    await s.start();
    for (const id of ids)
      await until(async () => (await syncState(s, id)).state === 'done', `${id} synced after the restart`);
    const all = (await control('GET', '/__control/objects?type=customer')).customer || [];
    assert.equal(all.length, ids.length, 'no duplicate Stripe customer');
    for (const id of ids) assert.equal((await stripeCustomersOf(id)).length, 1, id);
  } finally { await s.stop(); }
});
