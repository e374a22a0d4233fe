// portal.test.mjs - the developer portal's JSON API: signup, sessions, CSRF, isolation, throttling.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack } from './harness.mjs';

let s;
before(async () => { s = await new Stack().start(); });
after(async () => { await s.stop(); });

// A tiny cookie-keeping client for the admin port.
function client() {
  let cookie = '', csrf = '';
  const call = async (method, path, body, { noCsrf = false } = {}) => {
    const headers = { 'content-type': 'application/json' };
    if (cookie) headers.cookie = cookie;
    if (csrf && !noCsrf) headers['x-csrf-token'] = csrf;
    const r = await fetch(s.admin + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const set = r.headers.get('set-cookie');
    if (set) cookie = set.split(';')[0];
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    if (json && json.csrf_token) csrf = json.csrf_token;
    return { status: r.status, json, headers: r.headers, setCookie: set };
  };
  return { call, get cookie() { return cookie; } };
}

const email = () => `dev-${Math.random().toString(36).slice(2)}@example.com`;

test('signup returns the first key once, a session cookie and a CSRF token; the key works', async () => {
  const c = client();
  const mail = email();
  const r = await c.call('POST', '/v1/signup', { email: mail, company: 'Acme', password: 'correct horse battery', plan: 'free' });
  assert.equal(r.status, 201);
  assert.match(r.json.key.secret, /^tg_live_/);
  assert.match(r.setCookie, /tg_session=[\w-]+; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Strict/);
  assert.match(r.json.csrf_token, /^[0-9a-f]{64}$/);
  assert.equal(r.json.customer.email, mail);
  assert.equal((await s.call('/v1/basic/x', { key: r.json.key.secret })).status, 200);
  const keys = await c.call('GET', '/v1/me/keys');
  assert.equal(keys.json.data.length, 1);
  assert.equal(keys.json.data[0].secret, undefined); // never shown again
  const usage = await c.call('GET', '/v1/me/usage');
  assert.equal(usage.json.metrics.find((m) => m.metric === 'api_calls').used, 1);
  assert.deepEqual(usage.json.endpoints, [{ endpoint: 'GET /v1/basic/x', metric: 'api_calls', units: 1 }]);
  assert.equal(usage.json.last_90_days.reduce((n, d) => n + d.units, 0), 1);
});

test('signup validation: duplicate email in any case 409, weak password and bad email 400 naming the field', async () => {
  const mail = email();
  assert.equal((await client().call('POST', '/v1/signup', { email: mail, password: 'long enough pw', plan: 'free' })).status, 201);
  const dup = await client().call('POST', '/v1/signup', { email: mail.toUpperCase(), password: 'long enough pw', plan: 'free' });
  assert.equal(dup.status, 409);
  const weak = await client().call('POST', '/v1/signup', { email: email(), password: 'short', plan: 'free' });
  assert.equal(weak.status, 400);
  assert.match(weak.json.error.message, /^password:/);
  const bad = await client().call('POST', '/v1/signup', { email: 'not-an-email', password: 'long enough pw', plan: 'free' });
  assert.match(bad.json.error.message, /^email:/);
  const plan = await client().call('POST', '/v1/signup', { email: email(), password: 'long enough pw', plan: 'gold' });
  assert.match(plan.json.error.message, /^plan:/);
});

test('login, logout, wrong password 401, repeated failures 429', async () => {
  const mail = email();
  await client().call('POST', '/v1/signup', { email: mail, password: 'the right password', plan: 'free' });
  const c = client();
  assert.equal((await c.call('GET', '/v1/me')).status, 401);
  assert.equal((await c.call('POST', '/v1/login', { email: mail, password: 'wrong password!' })).status, 401);
  const ok = await c.call('POST', '/v1/login', { email: mail.toUpperCase(), password: 'the right password' });
  assert.equal(ok.status, 200);
  assert.equal((await c.call('GET', '/v1/me')).json.email, mail);
  assert.equal((await c.call('POST', '/v1/logout', {})).status, 200);
  assert.equal((await c.call('GET', '/v1/me')).status, 401);
  const t = client();
  const codes = [];
  for (let i = 0; i < 7; i++) codes.push((await t.call('POST', '/v1/login', { email: mail, password: 'guessing...' })).status);
  assert.deepEqual(codes, [401, 401, 401, 401, 401, 429, 429]);
});

// The throttle's table is direct-mapped; this address's and this email's entries land in the
// same slot (FNV-1a of "ip:127.0.0.1" and of "email:collide-3690@example.com", mod 4096). They
// used to evict each other on every attempt, so the failures never added up.
test('repeated failures are throttled even when the email and the address share a slot', async () => {
  const mail = 'collide-3690@example.com';
  await client().call('POST', '/v1/signup', { email: mail, password: 'the right password', plan: 'free' });
  const t = client();
  const codes = [];
  for (let i = 0; i < 6; i++) codes.push((await t.call('POST', '/v1/login', { email: mail, password: 'guessing...' })).status);
  assert.deepEqual(codes, [401, 401, 401, 401, 401, 429]);
});

test('CSRF is enforced on every state-changing call made with the cookie', async () => {
  const c = client();
  await c.call('POST', '/v1/signup', { email: email(), password: 'csrf test password', plan: 'free' });
  const r = await c.call('POST', '/v1/me/keys', { name: 'x' }, { noCsrf: true });
  assert.equal(r.status, 403);
  assert.equal(r.json.error.type, 'csrf_failed');
  assert.equal((await c.call('POST', '/v1/logout', {}, { noCsrf: true })).status, 403);
  const made = await c.call('POST', '/v1/me/keys', { name: 'second' });
  assert.equal(made.status, 201);
  assert.match(made.json.secret, /^tg_live_/);
});

test('a customer sees only its own keys and invoices: other ids are 404', async () => {
  const a = client(), b = client();
  await a.call('POST', '/v1/signup', { email: email(), password: 'password of a!', plan: 'free' });
  const rb = await b.call('POST', '/v1/signup', { email: email(), password: 'password of b!', plan: 'free' });
  const bKey = rb.json.key.id;
  assert.equal((await a.call('DELETE', `/v1/me/keys/${bKey}`)).status, 404);
  assert.equal((await a.call('POST', `/v1/me/keys/${bKey}/rotate`, {})).status, 404);
  assert.equal((await a.call('GET', '/v1/me/invoices/inv_doesnotexist')).status, 404);
  // b's key still works; b can revoke it
  assert.equal((await s.call('/v1/basic/x', { key: rb.json.key.secret })).status, 200);
  assert.equal((await b.call('DELETE', `/v1/me/keys/${bKey}`)).status, 200);
});

test('plan change from the portal: upgrade at once; status cannot be changed there', async () => {
  const c = client();
  const r = await c.call('POST', '/v1/signup', { email: email(), password: 'upgrade password', plan: 'free' });
  const key = r.json.key.secret;
  assert.equal((await s.call('/v1/vision/x', { key })).status, 403);
  const pv = await c.call('GET', '/v1/me/plan/preview?plan=pro');
  assert.equal(pv.status, 200);
  assert.deepEqual([pv.json.from, pv.json.to, pv.json.effective], ['free', 'pro', 'now']);
  assert.equal(pv.json.plan.rate_limit.count, 500);
  const down = await c.call('GET', '/v1/me/plan/preview?plan=free');
  assert.equal(down.json.effective, 'now'); // the same plan: nothing waits
  assert.equal((await c.call('GET', '/v1/me/plan/preview?plan=gold')).status, 400);
  const up = await c.call('POST', '/v1/me/plan', { plan: 'pro' });
  assert.equal(up.status, 200);
  assert.equal(up.json.plan, 'pro');
  assert.equal((await s.call('/v1/vision/x', { key })).status, 200);
  const sneaky = await c.call('POST', '/v1/me/plan', { plan: 'pro', status: 'active' });
  assert.equal(sneaky.status, 400);
  const later = await c.call('GET', '/v1/me/plan/preview?plan=free');
  assert.equal(later.json.effective, 'period_end'); // a downgrade waits for the period's end
  const upcoming = await c.call('GET', '/v1/me/invoices/upcoming');
  assert.equal(upcoming.status, 200);
  assert.equal(upcoming.json.status, 'upcoming');
});

test('every portal endpoint: no session is 401, a state change without the CSRF token is 403', async () => {
  const anon = client();
  const reads = ['/v1/me', '/v1/me/keys', '/v1/me/usage', '/v1/me/invoices', '/v1/me/invoices/upcoming',
    '/v1/me/invoices/inv_x', '/v1/me/invoices/inv_x/html', '/v1/me/plan/preview?plan=pro'];
  const writes = [['POST', '/v1/me/keys', {}], ['DELETE', '/v1/me/keys/key_x'], ['POST', '/v1/me/keys/key_x/rotate', {}],
    ['POST', '/v1/me/plan', { plan: 'pro' }], ['POST', '/v1/logout', {}]];
  for (const p of reads) assert.equal((await anon.call('GET', p)).status, 401, p);
  for (const [m, p, b] of writes) assert.equal((await anon.call(m, p, b)).status, 401, p);
  const c = client();
  await c.call('POST', '/v1/signup', { email: email(), password: 'every endpoint pw', plan: 'free' });
  for (const p of reads) assert.notEqual((await c.call('GET', p)).status, 401, p);
  for (const [m, p, b] of writes) {
    const r = await c.call(m, p, b, { noCsrf: true });
    assert.equal(r.status, 403, p);
    assert.equal(r.json.error.type, 'csrf_failed');
  }
  const bad = await c.call('POST', '/v1/me/plan', { plan: 42 });
  assert.equal(bad.status, 400);
  assert.match(bad.json.error.message, /plan/);
  const junk = await fetch(`${s.admin}/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email":' });
  assert.equal(junk.status, 400);
});

test('a rotated key from the portal: the replacement is named apart, both work and both can be revoked', async () => {
  const c = client();
  const r = await c.call('POST', '/v1/signup', { email: email(), company: 'Rot', password: 'correct horse battery', plan: 'free' });
  assert.equal(r.status, 201);
  const first = await c.call('POST', '/v1/me/keys', { name: 'production' });
  assert.equal(first.status, 201);
  const day = new Date().toISOString().slice(0, 10);
  const rot = await c.call('POST', `/v1/me/keys/${first.json.id}/rotate`, {});
  assert.equal(rot.status, 201);
  assert.equal(rot.json.name, `production (rotated ${day})`);
  // rotating the replacement again replaces the suffix instead of adding a second one
  const again = await c.call('POST', `/v1/me/keys/${rot.json.id}/rotate`, {});
  assert.equal(again.status, 201);
  assert.equal(again.json.name, `production (rotated ${day})`);
  const list = (await c.call('GET', '/v1/me/keys')).json.data;
  const byId = Object.fromEntries(list.map((k) => [k.id, k]));
  assert.equal(byId[first.json.id].status, 'expiring');
  assert.equal(byId[first.json.id].name, 'production');
  assert.ok(Date.parse(byId[first.json.id].expires_at) > Date.now(), 'the old key works until its grace period ends');
  assert.equal(byId[rot.json.id].status, 'expiring');
  assert.equal(byId[again.json.id].status, 'active');
  assert.equal(byId[again.json.id].expires_at, null);
  for (const k of [first.json, rot.json, again.json]) assert.equal((await s.call('/v1/basic/x', { key: k.secret })).status, 200);
  // the old key in its grace period is revoked from the portal and stops working
  const rev = await c.call('DELETE', `/v1/me/keys/${first.json.id}`);
  assert.equal(rev.status, 200);
  assert.equal(rev.json.status, 'revoked');
  let st = 0;
  for (let i = 0; i < 100 && st !== 401; i++) {
    st = (await s.call('/v1/basic/x', { key: first.json.secret })).status;
    if (st !== 401) await new Promise((res) => setImmediate(res));
  }
  assert.equal(st, 401);
  assert.equal((await c.call('DELETE', `/v1/me/keys/${again.json.id}`)).json.status, 'revoked');
  // an unnamed key's replacement still gets a telling name
  const plain = await c.call('POST', '/v1/me/keys', {});
  assert.equal((await c.call('POST', `/v1/me/keys/${plain.json.id}/rotate`, {})).json.name, `rotated ${day}`);
});

test('GET /v1/me names the gateway the keys are used at (public_urls.gateway, here the listener\'s own address)', async () => {
  const c = client();
  const r = await c.call('POST', '/v1/signup', { email: email(), password: 'correct horse battery', plan: 'starter' });
  assert.equal(r.status, 201);
  const me = await c.call('GET', '/v1/me');
  assert.equal(me.status, 200);
  assert.equal(me.json.gateway_url, s.gw);
  assert.equal(me.json.gateway_url, r.json.gateway_url);
});

test('self-service cancellation: at the period\'s end, by the admin route\'s service, audited; a second one is 409; undone by resume', async () => {
  const c = client();
  const r = await c.call('POST', '/v1/signup', { email: email(), password: 'correct horse battery', plan: 'free' });
  assert.equal(r.status, 201);
  const id = r.json.customer.id;
  const me = (await c.call('GET', '/v1/me')).json;
  assert.equal(me.cancel_at, null);
  const cancel = await c.call('POST', '/v1/me/cancel', {});
  assert.equal(cancel.status, 200, JSON.stringify(cancel.json));
  assert.equal(cancel.json.cancel_at, me.current_period.end);
  assert.equal(cancel.json.status, me.status); // access until the period ends
  const admin = await s.adminCall('GET', `/v1/admin/customers/${id}`);
  assert.equal(admin.json.cancel_at, me.current_period.end);
  assert.equal((await s.call('/v1/basic/x', { key: r.json.key.secret })).status, 200);
  assert.equal((await c.call('POST', '/v1/me/cancel', {}, { noCsrf: true })).status, 403);
  const log = (await s.adminCall('GET', `/v1/admin/audit?target_id=${id}&limit=100`)).json.data.filter((e) => e.action === 'customer.cancel');
  assert.equal(log.length, 1);
  assert.equal(log[0].actor.kind, 'customer');
  assert.equal(log[0].before.cancel_at, null);
  assert.equal(log[0].after.cancel_at, me.current_period.end);

  // "Keep my subscription" while the period lasts: the cancellation is undone, audited, and can be
  // asked for again; with nothing to undo it is a 409
  assert.equal((await c.call('POST', '/v1/me/resume', {}, { noCsrf: true })).status, 403);
  const resume = await c.call('POST', '/v1/me/resume', {});
  assert.equal(resume.status, 200, JSON.stringify(resume.json));
  assert.equal(resume.json.cancel_at, null);
  assert.equal(resume.json.status, me.status);
  assert.equal((await s.adminCall('GET', `/v1/admin/customers/${id}`)).json.cancel_at, null);
  const again = await c.call('POST', '/v1/me/resume', {});
  assert.equal(again.status, 409);
  assert.match(again.json.error.message, /no cancellation to undo/);
  const resumed = (await s.adminCall('GET', `/v1/admin/audit?target_id=${id}&limit=100`)).json.data.filter((e) => e.action === 'customer.resume');
  assert.equal(resumed.length, 1);
  assert.equal(resumed[0].actor.kind, 'customer');
  assert.equal(resumed[0].before.cancel_at, me.current_period.end);
  assert.equal(resumed[0].after.cancel_at, null);
  assert.equal((await c.call('POST', '/v1/me/cancel', {})).json.cancel_at, me.current_period.end);
  // the owner can undo it too
  const owner = await s.adminCall('POST', `/v1/admin/customers/${id}/resume`);
  assert.equal(owner.status, 200, owner.text);
  assert.equal(owner.json.cancel_at, null);
});

test('a customer canceled at once cannot resume: 409, still canceled', async () => {
  const c = client();
  const r = await c.call('POST', '/v1/signup', { email: email(), password: 'correct horse battery', plan: 'free' });
  assert.equal(r.status, 201);
  const id = r.json.customer.id;
  assert.equal((await s.adminCall('POST', `/v1/admin/customers/${id}/cancel`, { at_period_end: false })).status, 200);
  const resume = await c.call('POST', '/v1/me/resume', {});
  assert.equal(resume.status, 409);
  assert.match(resume.json.error.message, /canceled already/);
  assert.equal((await s.adminCall('GET', `/v1/admin/customers/${id}`)).json.status, 'canceled');
});
