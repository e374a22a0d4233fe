// notify_webhooks.test.mjs - issue 13 part A: events delivered as Standard Webhooks, verified by
// the reference package (standardwebhooks, tests/notify/node_modules), against the real binary.
// The receivers are node:http servers on loopback, reachable because these stacks allow
// 127.0.0.0/8 (notifications.allow_private_networks) and http:// (notifications.allow_http).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_TOKEN, KEY_SECRET, PLANS, Stack, sleep } from './harness.mjs';

const require = createRequire(import.meta.url);
const { Webhook } = require('../notify/node_modules/standardwebhooks');

const OPEN = `
notifications:
  allow_http: true
  allow_private_networks: ["127.0.0.0/8", "::1/128"]
  retry_base_ms: 50
  retry_cap_ms: 300
  breaker_failures: 1000
`;

// A receiver: answers `status(n)` to its n-th request (n from 1), keeps every request.
async function receiver(status = () => 204) {
  const got = [];
  const srv = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      got.push({ headers: req.headers, body, path: req.url });
      const code = srv.status(got.length);
      res.writeHead(code, { 'content-type': 'text/plain' });
      res.end(code >= 300 ? `failing on purpose (${got.length})` : 'ok');
    });
  });
  srv.status = status;
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { srv, got, url: `http://127.0.0.1:${srv.address().port}/hooks`, close: () => new Promise((r) => srv.close(r)) };
}

// Polls cond() (sync or async) until it is truthy, for up to ms; returns its value.
async function until(cond, what, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function verify(secret, req) {
  return new Webhook(secret).verify(req.body, req.headers);
}

const ofType = (got, type) => got.filter((r) => JSON.parse(r.body).type === type);

test('key.created reaches an owner endpoint, signed so that standardwebhooks verifies it', async () => {
  const rx = await receiver();
  const s = await new Stack({ extra: OPEN }).start();
  try {
    const ep = await s.adminCall('POST', '/v1/admin/webhook-endpoints', { url: rx.url, events: ['key.created'] });
    assert.equal(ep.status, 201, ep.text);
    assert.match(ep.json.secret, /^whsec_[A-Za-z0-9+/]{32}$/);
    assert.deepEqual(ep.json.events, ['key.created']);
    // the secret is shown once: not in a read
    const read = await s.adminCall('GET', `/v1/admin/webhook-endpoints/${ep.json.id}`);
    assert.equal(read.status, 200);
    assert.equal(read.json.secret, undefined);

    const { customer, keyId } = await s.customer('free');
    const [req] = await until(() => (rx.got.length ? rx.got : null), 'the key.created delivery');
    const payload = verify(ep.json.secret, req);
    assert.equal(payload.type, 'key.created');
    assert.equal(payload.customer_id, customer.id);
    assert.equal(payload.data.key_id, keyId);
    assert.match(payload.id, /^evt_[A-Za-z0-9]{24}$/);
    assert.match(payload.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.match(req.headers['webhook-id'], /^msg_[A-Za-z0-9]{24}$/);
    // a tampered body does not verify
    assert.throws(() => new Webhook(ep.json.secret).verify(req.body.replace('key.created', 'key.revoked'), req.headers));
    // the event is in the owner's feed, the delivery in the endpoint's log
    const feed = await s.adminCall('GET', '/v1/admin/events?limit=10');
    assert.equal(feed.status, 200);
    assert.ok(feed.json.data.some((e) => e.id === payload.id && e.type === 'key.created'));
    const log = await until(async () => {
      const l = await s.adminCall('GET', `/v1/admin/webhook-endpoints/${ep.json.id}/deliveries`);
      return l.json.data[0]?.state === 'delivered' ? l : null;
    }, 'the delivery recorded');
    assert.equal(log.json.data[0].id, req.headers['webhook-id']);
    const one = await s.adminCall('GET', `/v1/admin/webhook-deliveries/${req.headers['webhook-id']}`);
    assert.equal(one.json.attempts.length, 1);
    assert.equal(one.json.attempts[0].status, 204);
    assert.equal(typeof one.json.attempts[0].response_ms, 'number');
    // revoking is key.revoked, to endpoints that subscribe to it (this one does not)
    await s.adminCall('DELETE', `/v1/admin/keys/${keyId}`);
    const types = (await s.adminCall('GET', '/v1/admin/events?limit=10')).json.data.map((e) => e.type);
    assert.ok(types.includes('key.revoked'));
  } finally {
    await s.stop();
    await rx.close();
  }
});

test('a receiver that fails then recovers gets every event, with the same webhook-id on every retry', async () => {
  const rx = await receiver((n) => (n <= 4 ? 500 : 200));
  const s = await new Stack({ extra: OPEN }).start();
  try {
    const ep = await s.adminCall('POST', '/v1/admin/webhook-endpoints', { url: rx.url, events: '*' });
    assert.equal(ep.status, 201, ep.text);
    const { keyId } = await s.customer('free');
    // every delivery that the receiver has seen ends up answered 2xx
    const delivered = await until(async () => {
      const l = await s.adminCall('GET', `/v1/admin/webhook-endpoints/${ep.json.id}/deliveries?limit=100`);
      return l.json.data.length > 0 && l.json.data.every((d) => d.state === 'delivered') ? l.json.data : null;
    }, 'every delivery delivered');
    assert.ok(rx.got.length >= 5, `${rx.got.length} requests`);
    const byId = new Map();
    for (const r of rx.got) {
      const p = verify(ep.json.secret, r);
      const id = r.headers['webhook-id'];
      if (byId.has(id)) assert.equal(byId.get(id), p.id, 'one webhook-id is one event');
      byId.set(id, p.id);
    }
    assert.equal(byId.size, delivered.length);
    assert.ok(rx.got.length > byId.size, 'some deliveries were retried');
    const keyEvent = rx.got.map((r) => JSON.parse(r.body)).find((p) => p.type === 'key.created');
    assert.equal(keyEvent.data.key_id, keyId);
    // the log shows each failed attempt with its status and the start of the body
    const d = delivered.find((x) => x.attempts > 1);
    const one = await s.adminCall('GET', `/v1/admin/webhook-deliveries/${d.id}`);
    assert.equal(one.json.attempts[0].status, 200);
    const failed = one.json.attempts.find((a) => a.status === 500);
    assert.match(failed.response_excerpt, /failing on purpose/);
    assert.equal(failed.error, 'HTTP 500');
    // a manual resend sends it again, same webhook-id
    const before = rx.got.length;
    const rs = await s.adminCall('POST', `/v1/admin/webhook-deliveries/${d.id}/resend`);
    assert.equal(rs.status, 202, rs.text);
    await until(() => rx.got.length > before, 'the resend');
    assert.equal(rx.got[before].headers['webhook-id'], d.id);
  } finally {
    await s.stop();
    await rx.close();
  }
});

test('kill -9 with deliveries pending: after a restart each is delivered, under the ids it had', async () => {
  let failing = true;
  const rx = await receiver(() => (failing ? 503 : 200));
  // timeout_ms 2000: a delivery claimed when the process died is due again after its lease (the
  // timeout and 5 s), not after 15 + 5 s
  const s = await new Stack({ extra: `${OPEN}  timeout_ms: 2000\n` }).start();
  try {
    const ep = await s.adminCall('POST', '/v1/admin/webhook-endpoints', { url: rx.url, events: ['key.created'] });
    assert.equal(ep.status, 201, ep.text);
    const keys = [];
    for (let i = 0; i < 3; i++) keys.push((await s.customer('free')).keyId);
    await until(() => new Set(rx.got.map((r) => r.headers['webhook-id'])).size === 3, 'a first attempt of each');
    const ids = new Set(rx.got.map((r) => r.headers['webhook-id']));
    await s.kill9();
    failing = false;
    const seenBefore = rx.got.length;
    await s.start();
    await until(async () => {
      const l = await s.adminCall('GET', `/v1/admin/webhook-endpoints/${ep.json.id}/deliveries?limit=100`);
      return l.json.data.length === 3 && l.json.data.every((d) => d.state === 'delivered');
    }, 'every delivery delivered after the restart', 60000);
    const ok = rx.got.slice(seenBefore);
    for (const id of ids) assert.ok(ok.some((r) => r.headers['webhook-id'] === id), `delivery ${id} after the restart`);
    const gotKeys = new Set(ok.map((r) => verify(ep.json.secret, r).data.key_id));
    for (const k of keys) assert.ok(gotKeys.has(k), `key.created of ${k}`);
  } finally {
    await s.stop();
    await rx.close();
  }
});

test('SSRF: a loopback endpoint without the allow-list is refused at delivery (logged), http:// at creation', async () => {
  const rx = await receiver();
  const s = await new Stack({ extra: 'notifications: {retry_base_ms: 50, retry_cap_ms: 100}' }).start();
  try {
    const http = await s.adminCall('POST', '/v1/admin/webhook-endpoints', { url: rx.url });
    assert.equal(http.status, 400, http.text);
    assert.equal(http.json.error.type, 'invalid_webhook_url');
    assert.match(http.json.error.message, /https/);
    // https to 127.0.0.1: plainly a URL, refused once resolved
    const port = new URL(rx.url).port;
    const ep = await s.adminCall('POST', '/v1/admin/webhook-endpoints', { url: `https://127.0.0.1:${port}/hooks` });
    assert.equal(ep.status, 201, ep.text);
    const local = await s.adminCall('POST', '/v1/admin/webhook-endpoints', { url: `https://localhost:${port}/x` });
    assert.equal(local.status, 201, local.text);
    assert.equal((await s.adminCall('POST', `/v1/admin/webhook-endpoints/${ep.json.id}/test`)).status, 202);
    assert.equal((await s.adminCall('POST', `/v1/admin/webhook-endpoints/${local.json.id}/test`)).status, 202);
    for (const id of [ep.json.id, local.json.id]) {
      const d = await until(async () => {
        const l = await s.adminCall('GET', `/v1/admin/webhook-endpoints/${id}/deliveries`);
        return l.json.data[0]?.attempts > 0 ? l.json.data[0] : null;
      }, 'an attempt logged');
      assert.match(d.last_error, /refused: .* resolves to (127\.0\.0\.1|::1), a private, loopback/);
      const one = await s.adminCall('GET', `/v1/admin/webhook-deliveries/${d.id}`);
      assert.equal(one.json.attempts[0].status, 0);
      assert.match(one.json.attempts[0].error, /refused/);
    }
    assert.equal(rx.got.length, 0, 'nothing reached the receiver');
  } finally {
    await s.stop();
    await rx.close();
  }
});

test('secret rotation: deliveries carry two v1 signatures, each verifying with its own secret', async () => {
  const rx = await receiver();
  const s = await new Stack({ extra: OPEN }).start();
  try {
    const ep = await s.adminCall('POST', '/v1/admin/webhook-endpoints', { url: rx.url, events: ['key.created'] });
    const old = ep.json.secret;
    const rot = await s.adminCall('POST', `/v1/admin/webhook-endpoints/${ep.json.id}/rotate-secret`);
    assert.equal(rot.status, 200, rot.text);
    assert.notEqual(rot.json.secret, old);
    assert.ok(rot.json.previous_secret_expires_at);
    const t = await s.adminCall('POST', `/v1/admin/webhook-endpoints/${ep.json.id}/test`);
    assert.equal(t.status, 202, t.text);
    const [req] = await until(() => (rx.got.length ? rx.got : null), 'the test event');
    const sigs = req.headers['webhook-signature'].split(' ');
    assert.equal(sigs.length, 2);
    assert.ok(sigs.every((x) => x.startsWith('v1,')));
    // each secret alone verifies the request (the receiver may hold either)
    assert.equal(verify(rot.json.secret, req).type, 'webhook.test');
    assert.equal(verify(old, req).type, 'webhook.test');
    const one = { ...req, headers: { ...req.headers, 'webhook-signature': sigs[0] } };
    const two = { ...req, headers: { ...req.headers, 'webhook-signature': sigs[1] } };
    assert.doesNotThrow(() => verify(rot.json.secret, one));
    assert.doesNotThrow(() => verify(old, two));
    assert.throws(() => verify(old, one));
  } finally {
    await s.stop();
    await rx.close();
  }
});

test('owner endpoints from the configuration are used, with FILE:LINE errors for bad ones', async () => {
  const rx = await receiver();
  const secret = 'whsec_' + Buffer.alloc(24, 7).toString('base64');
  const s = await new Stack({ extra: `${OPEN}  endpoints:\n    - {url: "${rx.url}", events: [key.created], secret: "${secret}"}\n` }).start();
  try {
    const list = await s.adminCall('GET', '/v1/admin/webhook-endpoints');
    assert.equal(list.json.data.length, 1);
    assert.equal(list.json.data[0].source, 'config');
    await s.customer('free');
    const [req] = await until(() => (rx.got.length ? rx.got : null), 'the delivery');
    assert.equal(verify(secret, req).type, 'key.created');
    const del = await s.adminCall('DELETE', `/v1/admin/webhook-endpoints/${list.json.data[0].id}`);
    assert.equal(del.status, 409);
    // a new secret in the file: after a restart both sign (the old one for 24 h), same endpoint
    const secret2 = 'whsec_' + Buffer.alloc(32, 9).toString('base64');
    await s.stopServer();
    s.opts.extra = s.opts.extra.replace(secret, secret2);
    await s.start();
    const again = await s.adminCall('GET', '/v1/admin/webhook-endpoints');
    assert.equal(again.json.data.length, 1);
    assert.equal(again.json.data[0].id, list.json.data[0].id);
    assert.ok(again.json.data[0].previous_secret_expires_at);
    const before = rx.got.length;
    await s.customer('free');
    await until(() => rx.got.length > before, 'the delivery after the restart');
    assert.equal(rx.got[before].headers['webhook-signature'].split(' ').length, 2);
    assert.equal(verify(secret2, rx.got[before]).type, 'key.created');
    assert.equal(verify(secret, rx.got[before]).type, 'key.created');
    // gone from the file: gone from the store
    await s.stopServer();
    s.opts.extra = OPEN;
    await s.start();
    assert.equal((await s.adminCall('GET', '/v1/admin/webhook-endpoints')).json.data.length, 0);
  } finally {
    await s.stop();
    await rx.close();
  }
});

test('notifications configuration errors name FILE:LINE (check-config)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-notify-'));
  try {
    const file = join(dir, 'tollgate.yaml');
    const s = new Stack();
    writeFileSync(file, `upstream: {url: "http://127.0.0.1:9"}
storage: {database: "sqlite:${dir}/t.db"}
admin: {token: "${ADMIN_TOKEN}"}
keys: {secret: "${KEY_SECRET}"}
notifications:
  allow_private_networks: ["127.0.0.0/8", "not-a-range"]
  endpoints:
    - {url: "ftp://x.example", secret: "whsec_c2hvcnQ="}
    - {url: "https://ok.example/h", events: [key.created, no.such], secret: "whsec_${Buffer.alloc(24, 1).toString('base64')}"}
${PLANS}`);
    const r = s.cli(['check-config', '-c', file]);
    assert.notEqual(r.status, 0);
    const out = r.stdout + r.stderr;
    assert.match(out, /tollgate\.yaml:6: notifications\.allow_private_networks\[1\]: "not-a-range"/);
    assert.match(out, /tollgate\.yaml:8: notifications\.endpoints\[0\]\.secret: the value is not valid/);
    assert.match(out, /tollgate\.yaml:8: notifications\.endpoints\[0\]\.url: url must start with https/);
    assert.match(out, /tollgate\.yaml:9: notifications\.endpoints\[1\]\.events\[1\]: "no\.such" is not an event type/);
    assert.doesNotMatch(out, /c2hvcnQ/, 'a secret is never echoed');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the domain events reach an owner endpoint: customer, plan, invoice and account changes, each verified', async () => {
  const rx = await receiver();
  const s = await new Stack({ extra: OPEN, testClock: true }).start();
  try {
    const ep = await s.adminCall('POST', '/v1/admin/webhook-endpoints', { url: rx.url });
    assert.equal(ep.status, 201, ep.text);
    const { customer, keyId } = await s.customer('starter');
    const rot = await s.adminCall('POST', `/v1/admin/keys/${keyId}/rotate`, {});
    assert.equal(rot.status, 201, rot.text);
    assert.equal((await s.adminCall('PATCH', `/v1/admin/customers/${customer.id}`, { plan: 'pro' })).status, 200);
    assert.equal((await s.adminCall('PATCH', `/v1/admin/customers/${customer.id}`, { status: 'suspended' })).status, 200);
    assert.equal((await s.adminCall('PATCH', `/v1/admin/customers/${customer.id}`, { status: 'active' })).status, 200);
    assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 })).status, 200);
    const run = await s.adminCall('POST', '/v1/admin/invoices/run', { customer: customer.id });
    assert.equal(run.status, 200, run.text);
    const invs = await s.adminCall('GET', `/v1/admin/invoices?customer=${customer.id}`);
    const inv = invs.json.data[0];
    assert.ok(inv, invs.text);
    assert.equal((await s.adminCall('POST', `/v1/admin/invoices/${inv.id}/finalize`)).status, 200);
    assert.equal((await s.adminCall('POST', `/v1/admin/invoices/${inv.id}/mark-paid`)).status, 200);
    assert.equal((await s.adminCall('POST', `/v1/admin/customers/${customer.id}/cancel`, { at_period_end: false })).status, 200);
    const want = ['customer.created', 'key.created', 'key.rotated', 'plan.changed', 'account.suspended', 'account.resumed',
      'invoice.finalized', 'invoice.paid', 'customer.canceled'];
    const got = await until(() => {
      const types = rx.got.map((r) => JSON.parse(r.body).type);
      return want.every((t) => types.includes(t)) ? rx.got.map((r) => verify(ep.json.secret, r)) : null;
    }, `every one of ${want.join(", ")} (got ${rx.got.map((r) => JSON.parse(r.body).type)})`);
    const by = (t) => got.filter((p) => p.type === t);
    for (const t of want) assert.equal(by(t).length, 1, `${t} once`);
    assert.ok(got.every((p) => p.customer_id === customer.id));
    assert.equal(by('key.rotated')[0].data.replaces_key_id, keyId);
    assert.equal(by('plan.changed')[0].data.from_plan, 'starter');
    assert.equal(by('plan.changed')[0].data.to_plan, 'pro');
    assert.equal(by('account.suspended')[0].data.source, 'owner');
    assert.equal(by('invoice.finalized')[0].data.invoice_id, inv.id);
    assert.equal(by('invoice.paid')[0].data.invoice_id, inv.id);
    assert.equal(by('customer.canceled')[0].data.status, 'canceled');
    // a customer's own endpoint gets its events, never customer.*
    const feed = await s.adminCall('GET', '/v1/admin/events?limit=2');
    assert.equal(feed.json.data.length, 2);
    assert.ok(feed.json.has_more);
    const next = await s.adminCall('GET', `/v1/admin/events?limit=100&cursor=${feed.json.next_cursor}`);
    assert.ok(next.json.data.every((e) => !feed.json.data.some((f) => f.id === e.id)), 'pages do not overlap');
  } finally {
    await s.stop();
    await rx.close();
  }
});

test('an endpoint that keeps failing opens its breaker, then is disabled with the reason and its owner told', async () => {
  const rx = await receiver(() => 500);
  const ok = await receiver();
  const s = await new Stack({ extra: `${OPEN.replace('breaker_failures: 1000', 'breaker_failures: 2')}  breaker_cooldown_ms: 100\n  disable_after_seconds: 1\n` }).start();
  try {
    const bad = await s.adminCall('POST', '/v1/admin/webhook-endpoints', { url: rx.url, events: ['key.created'] });
    const watcher = await s.adminCall('POST', '/v1/admin/webhook-endpoints', { url: ok.url, events: ['webhook_endpoint.disabled'] });
    assert.equal(watcher.status, 201, watcher.text);
    await s.customer('free');
    const ep = await until(async () => {
      const e = await s.adminCall('GET', `/v1/admin/webhook-endpoints/${bad.json.id}`);
      return e.json.enabled === false ? e.json : null;
    }, 'the endpoint disabled');
    assert.match(ep.disabled_reason, /^failing since \d{4}-\d\d-\d\dT.*HTTP 500/);
    assert.ok(ep.consecutive_failures >= 2);
    const [told] = await until(() => (ok.got.length ? ok.got : null), 'webhook_endpoint.disabled delivered');
    const p = verify(watcher.json.secret, told);
    assert.equal(p.type, 'webhook_endpoint.disabled');
    assert.equal(p.data.endpoint_id, bad.json.id);
    // enabled again by the owner: the record is cleared, the pending delivery goes out again
    rx.srv.status = () => 200;
    const en = await s.adminCall('PATCH', `/v1/admin/webhook-endpoints/${bad.json.id}`, { enabled: true });
    assert.equal(en.status, 200, en.text);
    assert.equal(en.json.consecutive_failures, 0);
    await until(async () => {
      const l = await s.adminCall('GET', `/v1/admin/webhook-endpoints/${bad.json.id}/deliveries`);
      return l.json.data[0]?.state === 'delivered';
    }, 'the delivery after re-enabling');
  } finally {
    await s.stop();
    await rx.close();
    await ok.close();
  }
});

test('Stripe payment events become invoice.payment_failed, account.past_due/suspended, invoice.paid, account.resumed, once per Stripe event', async () => {
  const { startFakeStripe } = await import('../stripe/fake_stripe.mjs');
  const Stripe = require('../stripe/node_modules/stripe');
  const stripeLib = new Stripe('sk_test_for_signing_only');
  const SECRET = 'whsec_tollgate_notify_0123456789';
  const fake = await startFakeStripe();
  const rx = await receiver();
  const s = await new Stack({
    extra: `${OPEN}stripe: {secret_key: "sk_test_tollgate_notify_0123456789", webhook_secret: "${SECRET}", api_base: "${fake.url}"}
dunning: {grace_days: 7, suspend_after_failures: 2}`,
  }).start();
  try {
    const ep = await s.adminCall('POST', '/v1/admin/webhook-endpoints', {
      url: rx.url, events: ['invoice.payment_failed', 'invoice.paid', 'account.past_due', 'account.suspended', 'account.resumed'],
    });
    assert.equal(ep.status, 201, ep.text);
    const { customer } = await s.customer('free');
    let n = 0;
    const send = async (type, object, id = `evt_notify_${Date.now().toString(36)}_${n++}`) => {
      const payload = JSON.stringify({ id, object: 'event', api_version: '2025-03-31.basil', created: Math.floor(Date.now() / 1000),
        data: { object }, livemode: false, pending_webhooks: 1, request: { id: null, idempotency_key: null }, type }, null, 2);
      const sig = stripeLib.webhooks.generateTestHeaderString({ payload, secret: SECRET });
      const r = await fetch(`${s.admin}/v1/webhooks/stripe`, { method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': sig }, body: payload });
      assert.equal(r.status, 200, await r.text());
      await until(async () => (await s.adminCall('GET', `/v1/admin/stripe/events/${id}`)).json?.processed_at, `Stripe event ${id} applied`);
      return id;
    };
    const inv = (attempts, status = 'open') => ({ id: 'in_notify1', object: 'invoice', status, attempt_count: attempts, amount_due: 4900,
      amount_paid: status === 'paid' ? 4900 : 0, currency: 'usd', metadata: { tollgate_customer: customer.id } });
    const first = await send('invoice.payment_failed', inv(1));
    await send('invoice.payment_failed', inv(1), first); // the same Stripe event again: nothing new
    await send('invoice.payment_failed', inv(2));
    await send('invoice.paid', inv(2, 'paid'));
    const want = { 'invoice.payment_failed': 2, 'account.past_due': 1, 'account.suspended': 1, 'invoice.paid': 1, 'account.resumed': 1 };
    const got = await until(() => {
      const types = rx.got.map((r) => JSON.parse(r.body).type);
      return Object.keys(want).every((t) => types.includes(t)) ? rx.got.map((r) => verify(ep.json.secret, r)) : null;
    }, 'the payment events');
    const count = (t) => got.filter((p) => p.type === t).length;
    for (const [t, k] of Object.entries(want)) assert.equal(count(t), k, `${t} ${k} time(s): ${got.map((p) => p.type)}`);
    const suspended = got.find((p) => p.type === 'account.suspended');
    assert.equal(suspended.data.previous_status, 'past_due');
    assert.match(suspended.data.reason, /2 failed payments/);
    assert.equal(got.find((p) => p.type === 'invoice.paid').data.amount_paid, 4900);
    assert.equal(got.find((p) => p.type === 'account.resumed').data.status, 'active');
  } finally {
    await s.stop();
    await rx.close();
    await fake.close();
  }
});
