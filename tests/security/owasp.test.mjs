// owasp.test.mjs - one test or more per OWASP API Security Top 10 (2023) category, each against
// the real binary on loopback. The deeper cases of a category live in the other files of this
// folder (framing, upstream identity, admin port, sign-up and sign-in, usage integrity); these
// are the ones that cut across them. Every request goes to 127.0.0.1.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { Stack, wellFormedKey, ADMIN_TOKEN } from '../integration/harness.mjs';

let s;
before(async () => { s = await new Stack({ testClock: true }).start(); });
after(async () => { await s.stop(); });

const email = () => `sec-${Math.random().toString(36).slice(2)}@example.com`;
const PASSWORD = 'a long passphrase for tests 42';

// A cookie-keeping client of the portal, sending what a browser on the portal's own page sends.
function portalClient() {
  let cookie = '', csrf = '';
  const call = async (method, path, body, extra = {}) => {
    const headers = { 'content-type': 'application/json', origin: s.admin, ...extra };
    if (cookie) headers.cookie = cookie;
    if (csrf) headers['x-csrf-token'] = csrf;
    const r = await fetch(s.admin + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const set = r.headers.get('set-cookie');
    if (set) cookie = set.split(';')[0];
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    if (json && json.csrf_token) csrf = json.csrf_token;
    return { status: r.status, json, text, headers: r.headers };
  };
  return { call, get cookie() { return cookie; } };
}

async function signup(plan = 'free') {
  const c = portalClient();
  const r = await c.call('POST', '/v1/signup', { email: email(), company: 'Sec', password: PASSWORD, plan });
  assert.equal(r.status, 201, r.text);
  return { c, customer: r.json.customer, key: r.json.key };
}

// One raw HTTP/1.1 exchange: what was written, everything read until the server closes or
// `idleMs` passes without data (a bound, not a synchronisation: the assertion is on content).
function raw(port, request, { idleMs = 1500 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let data = '';
    let timer = null;
    const done = () => { clearTimeout(timer); sock.destroy(); resolve(data); };
    const arm = () => { clearTimeout(timer); timer = setTimeout(done, idleMs); };
    sock.on('connect', () => { sock.write(request); arm(); });
    sock.on('data', (d) => { data += d.toString('latin1'); arm(); });
    sock.on('end', done);
    sock.on('error', (e) => (data ? done() : reject(e)));
  });
}

test('API1:2023 broken object level authorization: another customer\'s objects answer 404 on every portal route', async () => {
  const a = await signup(), b = await signup();
  const bKey = b.key.id;
  // b has an invoice: close b's period with the test clock
  await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 });
  const run = await s.adminCall('POST', '/v1/admin/invoices/run', { customer: b.customer.id });
  assert.equal(run.status, 200, run.text);
  const list = await s.adminCall('GET', `/v1/admin/invoices?customer=${b.customer.id}`);
  const bInv = list.json.data[0].id;
  await s.adminCall('POST', `/v1/admin/invoices/${bInv}/finalize`);
  // 32 days on, the sessions have expired (7 days): both sign in again
  for (const x of [a, b]) {
    const li = await x.c.call('POST', '/v1/login', { email: x.customer.email, password: PASSWORD });
    assert.equal(li.status, 200, li.text);
  }
  for (const [m, p, body] of [
    ['DELETE', `/v1/me/keys/${bKey}`], ['POST', `/v1/me/keys/${bKey}/rotate`, {}],
    ['GET', `/v1/me/invoices/${bInv}`], ['GET', `/v1/me/invoices/${bInv}/html`],
  ]) {
    const r = await a.c.call(m, p, body);
    assert.equal(r.status, 404, `${m} ${p}: ${r.text}`);
  }
  // b's own view of the same objects works, and b's key still works
  assert.equal((await b.c.call('GET', `/v1/me/invoices/${bInv}`)).status, 200);
  const k = await s.adminCall('GET', `/v1/admin/keys/${bKey}`);
  assert.equal(k.json.status, 'active');
});

test('API2:2023 broken authentication: forged, well-formed and revoked keys are refused; secrets never reach the log', async () => {
  const { customer, key } = await signup();
  assert.equal((await s.call('/v1/basic/x', { key: key.secret })).status, 200);
  for (const bad of [wellFormedKey(), key.secret.slice(0, -1) + (key.secret.endsWith('A') ? 'B' : 'A'),
    key.secret + 'x', 'tg_live_', '', key.secret.toLowerCase()]) {
    const r = await s.call('/v1/basic/x', { key: bad });
    assert.equal(r.status, 401, `key ${JSON.stringify(bad)}`);
    assert.match(r.json.error.type, /^(missing_key|invalid_key)$/);
  }
  // a revoked key stops within one second (the promise of docs/api.md), polled, not slept
  assert.equal((await s.adminCall('DELETE', `/v1/admin/keys/${key.id}`)).status, 200);
  let status = 0;
  for (let i = 0; i < 100 && status !== 401; i++) status = (await s.call('/v1/basic/x', { key: key.secret })).status;
  assert.equal(status, 401);
  // the admin token and the key are never written to tollgate's output
  assert.ok(!s.server.output.includes(key.secret), 'key secret in the log');
  assert.ok(!s.server.output.includes(ADMIN_TOKEN), 'admin token in the log');
  assert.ok(customer.id.startsWith('cus_'));
});

test('API3:2023 broken object property level authorization: fields a customer must not set are ignored or refused, and no secret is ever listed', async () => {
  const c = portalClient();
  const r = await c.call('POST', '/v1/signup', {
    email: email(), company: 'Sec', password: PASSWORD, plan: 'free',
    status: 'active', id: 'cus_chosen', trial_end: '2099-01-01T00:00:00Z', plan_id: 'enterprise', admin: true,
  });
  assert.equal(r.status, 201, r.text);
  assert.notEqual(r.json.customer.id, 'cus_chosen');
  assert.equal(r.json.customer.plan, 'free');
  const me = await c.call('POST', '/v1/me/plan', { plan: 'free', status: 'active' });
  assert.equal(me.status, 400);
  const keys = await c.call('GET', '/v1/me/keys');
  assert.equal(keys.status, 200);
  for (const k of keys.json.data) {
    assert.equal(k.secret, undefined);
    assert.equal(k.hash, undefined);
    for (const v of Object.values(k)) if (typeof v === 'string') assert.ok(!v.includes(r.json.key.secret.slice(12)), 'secret material listed');
  }
  const admin = await s.adminCall('GET', `/v1/admin/customers/${r.json.customer.id}`);
  assert.equal(admin.json.password_hash, undefined);
  assert.ok(!admin.text.includes('argon2'), 'password hash exposed');
});

test('API5:2023 broken function level authorization: portal sessions and API keys cannot use the admin API', async () => {
  const { c, key } = await signup();
  for (const [m, p] of [['GET', '/v1/admin/customers'], ['GET', '/v1/admin/dashboard'], ['POST', '/v1/admin/invoices/run'],
    ['POST', '/v1/admin/clock']]) {
    const viaSession = await c.call(m, p, m === 'POST' ? {} : undefined);
    assert.equal(viaSession.status, 401, `${m} ${p} with a portal session`);
    const viaKey = await s.adminCall(m, p, m === 'POST' ? {} : undefined, key.secret);
    assert.equal(viaKey.status, 401, `${m} ${p} with an API key`);
  }
  // the admin API is not reachable through the gateway port either: the call goes to the
  // upstream as a customer's call, under the plan's endpoints
  const gw = await s.call('/v1/admin/customers', { key: key.secret });
  assert.equal(gw.status, 403);
  assert.equal(gw.json.error.type, 'endpoint_not_in_plan');
});

test('API7:2023 server side request forgery: neither Host nor an absolute request target moves the gateway off its upstream', async () => {
  const { key } = await signup('pro');
  // An absolute-form target naming the admin port: the gateway's HTTP/1 front refuses
  // absolute-form targets outright (400, never forwarded), so it can neither follow one nor
  // forward it to an upstream that might.
  const out = await raw(s.gwPort, `GET http://127.0.0.1:${s.adminPort}/v1/admin/customers HTTP/1.1\r\n` +
    `Host: 127.0.0.1:${s.adminPort}\r\nAuthorization: Bearer ${key.secret}\r\nConnection: close\r\n\r\n`);
  assert.match(out, /^HTTP\/1\.1 400/);
  assert.ok(!/"unauthorized"/.test(out), 'the request reached the admin port');
  const viaHost = await raw(s.gwPort, `GET /v1/admin/customers HTTP/1.1\r\nHost: 127.0.0.1:${s.adminPort}\r\n` +
    `Authorization: Bearer ${key.secret}\r\nConnection: close\r\n\r\n`);
  assert.match(viaHost, /^HTTP\/1\.1 (200|404)/);
  assert.ok(!/"unauthorized"/.test(viaHost), 'the Host header chose the destination');
});

test('API8:2023 security misconfiguration: errors are clean JSON without internals', async () => {
  for (const body of ['{"email":', '[]', '{"email": {"$ne": 1}}', '\u0000\u0001', JSON.stringify({ email: "x' OR 1=1 --", password: PASSWORD })]) {
    const r = await fetch(`${s.admin}/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json', origin: s.admin }, body });
    const text = await r.text();
    assert.ok(r.status >= 400 && r.status < 500, `${r.status} for ${JSON.stringify(body)}`);
    const j = JSON.parse(text);
    assert.equal(typeof j.error.type, 'string');
    assert.ok(!/sqlite|SQL|syntax|\.c:\d+|segfault|stack/i.test(text), `internals in ${text}`);
  }
  const r = await s.adminCall('GET', "/v1/admin/customers/cus_x' OR '1'='1");
  assert.equal(r.status, 404);
  assert.ok(!/sqlite|SQL/i.test(r.text));
});

test('API9:2023 improper inventory management: only documented routes answer; test-only routes need their flag', async () => {
  const { c } = await signup();
  for (const p of ['/v1/admin/nothing', '/v1/debug', '/v2/admin/customers', '/v1/internal/config', '/v1/admin/customers/x/y/z']) {
    const r = await s.adminCall('GET', p);
    assert.equal(r.status, 404, `${p}: ${r.status}`);
    assert.equal(r.json.error.type, 'route_not_found');
  }
  for (const p of ['/v1/admin/customers', '/v1/admin/customers/../dashboard', '/v1/me/../admin/customers']) {
    const viaSession = await c.call('GET', p);
    assert.ok([401, 404].includes(viaSession.status), `${p} with a session: ${viaSession.status}`);
  }
  const other = await new Stack().start(); // without --test-clock
  try {
    const clock = await other.adminCall('POST', '/v1/admin/clock', { advance_seconds: 10 });
    assert.equal(clock.status, 404);
  } finally { await other.stop(); }
});
