// signup_signin.test.mjs - issue 10 item 5: sign-up, trial and sign-in abuse, against the real
// binary on loopback. Client addresses are varied through X-Forwarded-For from a trusted proxy
// (server.trusted_proxies: 127.0.0.1), which is also what is tested.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, ADMIN_TOKEN } from '../integration/harness.mjs';

const rand = () => Math.random().toString(36).slice(2, 10);
const mail = (p = 'dev') => `${p}-${rand()}@example.com`;

async function post(s, path, body, headers = {}) {
  const r = await fetch(s.admin + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, headers: r.headers, cookie: (r.headers.get('set-cookie') || '').split(';')[0] };
}
const from = (addr) => ({ 'x-forwarded-for': addr });

async function withStack(opts, fn) {
  const s = await new Stack(opts).start();
  try { await fn(s); } finally { await s.stop(); }
}

// ---- API2: broken authentication ----

test('API2:2023 broken authentication: guessing from one address does not lock the owner out at another, and waits are 429 with Retry-After', async () => {
  await withStack({ trustedProxies: ['127.0.0.1'] }, async (s) => {
    const email = mail('owner');
    assert.equal((await post(s, '/v1/signup', { email, password: 'the owner password', plan: 'free' }, from('198.51.100.10'))).status, 201);
    const codes = [];
    for (let i = 0; i < 8; i++) codes.push((await post(s, '/v1/login', { email, password: `guess number ${i}` }, from('203.0.113.66'))).status);
    assert.deepEqual(codes.slice(0, 4), [401, 401, 401, 401]);
    assert.ok(codes.slice(4).includes(429), `the attacker is slowed down: ${codes}`);
    // The owner, from their own address, signs in at once.
    const owner = await post(s, '/v1/login', { email, password: 'the owner password' }, from('198.51.100.10'));
    assert.equal(owner.status, 200);
    // And from a new address too.
    assert.equal((await post(s, '/v1/login', { email, password: 'the owner password' }, from('192.0.2.44'))).status, 200);
    // The attacker still waits, and is told how long.
    const slowed = await post(s, '/v1/login', { email, password: 'guess again' }, from('203.0.113.66'));
    if (slowed.status === 429) {
      assert.equal(slowed.json.error.type, 'rate_limited');
      assert.ok(Number(slowed.headers.get('retry-after')) >= 1, 'Retry-After says how long');
    }
  });
});

// The old throttle was a 4,096-slot direct-mapped table keyed "email:<email>" (FNV-1a): a
// failure on any email landing in the victim's slot reset the victim's counter. Find one.
function oldSlot(email) {
  let h = 1469598103934665603n; // (sic: the old code had the basis one digit short)
  for (const b of Buffer.from(`email:${email.toLowerCase()}`)) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
  return Number(h % 4096n);
}

test('API2:2023 broken authentication: the sign-in throttle has exact keys: a colliding email cannot reset another account', async () => {
  await withStack({}, async (s) => {
    const victim = mail('victim');
    assert.equal((await post(s, '/v1/signup', { email: victim, password: 'victim password ok', plan: 'free' })).status, 201);
    let collider = null;
    for (let i = 0; collider === null; i++) if (oldSlot(`c${i}@example.com`) === oldSlot(victim)) collider = `c${i}@example.com`;
    for (let i = 0; i < 5; i++) assert.equal((await post(s, '/v1/login', { email: victim, password: `guess ${i} xxxxx` })).status, 401);
    await post(s, '/v1/login', { email: collider, password: 'anything at all' });
    const next = [];
    for (let i = 0; i < 6; i++) next.push((await post(s, '/v1/login', { email: victim, password: `more guesses ${i}` })).status);
    // Delays double with each failure (1 s, 2 s, 4 s...): however slow a guess is, few get through.
    assert.ok(next.filter((c) => c !== 429).length <= 2, `guesses after the collision: ${next}`);
  });
});

test('API2:2023 broken authentication: passwords must be 10+ characters, not blank, not the email, not a common one', async () => {
  await withStack({}, async (s) => {
    const email = `Someone.Long@example.com`;
    const cases = [
      ['short', /at least 10 characters/],
      ['            ', /whitespace/],
      ['someone.long@EXAMPLE.com', /email/],
      ['Someone.Long', /email/],
      ['Password123', /common/],
      ['qwertyuiop', /common/],
      ['1234567890', /common/],
    ];
    for (const [password, rule] of cases) {
      const r = await post(s, '/v1/signup', { email, password, plan: 'free' });
      assert.equal(r.status, 400, `${JSON.stringify(password)} refused`);
      assert.equal(r.json.error.type, 'weak_password');
      assert.match(r.json.error.message, rule);
    }
    assert.equal((await post(s, '/v1/signup', { email, password: 'a sentence that is long', plan: 'free' })).status, 201);
  });
});

test('API2:2023 broken authentication: logging out ends the session; "sign out everywhere" ends them all', async () => {
  await withStack({}, async (s) => {
    const email = mail();
    const a = await post(s, '/v1/signup', { email, password: 'everywhere password', plan: 'free' });
    const b = await post(s, '/v1/login', { email, password: 'everywhere password' });
    const c = await post(s, '/v1/login', { email, password: 'everywhere password' });
    const me = (cookie) => fetch(`${s.admin}/v1/me`, { headers: { cookie } }).then((r) => r.status);
    for (const x of [a, b, c]) assert.equal(await me(x.cookie), 200);
    // one session out: only that cookie stops working
    const out = await post(s, '/v1/logout', {}, { cookie: a.cookie, 'x-csrf-token': a.json.csrf_token });
    assert.equal(out.status, 200);
    assert.equal(await me(a.cookie), 401);
    assert.equal(await me(b.cookie), 200);
    // everywhere: both others end
    const all = await post(s, '/v1/logout/all', {}, { cookie: b.cookie, 'x-csrf-token': b.json.csrf_token });
    assert.equal(all.status, 200);
    assert.equal(all.json.sessions_ended, 2);
    assert.equal(await me(b.cookie), 401);
    assert.equal(await me(c.cookie), 401);
  });
});

test('API2:2023 broken authentication: changing the password needs the current one and a good new one, and ends every other session', async () => {
  await withStack({}, async (s) => {
    const email = mail();
    const a = await post(s, '/v1/signup', { email, password: 'the first password', plan: 'free' });
    const b = await post(s, '/v1/login', { email, password: 'the first password' });
    const h = { cookie: a.cookie, 'x-csrf-token': a.json.csrf_token };
    const weak = await post(s, '/v1/me/password', { current_password: 'the first password', new_password: 'password123' }, h);
    assert.equal(weak.status, 400);
    assert.equal(weak.json.error.type, 'weak_password');
    const wrong = await post(s, '/v1/me/password', { current_password: 'not the password', new_password: 'a better password' }, h);
    assert.equal(wrong.status, 403);
    assert.equal((await post(s, '/v1/me/password', { current_password: 'the first password', new_password: 'a better password' }, { cookie: a.cookie })).status, 403, 'CSRF token required');
    const ok = await post(s, '/v1/me/password', { current_password: 'the first password', new_password: 'a better password' }, h);
    assert.equal(ok.status, 200);
    assert.equal(ok.json.sessions_ended, 2);
    const me = (cookie) => fetch(`${s.admin}/v1/me`, { headers: { cookie } }).then((r) => r.status);
    assert.equal(await me(a.cookie), 401);
    assert.equal(await me(b.cookie), 401);
    assert.equal(await me(ok.cookie), 200, 'the changer gets a new session');
    assert.equal((await post(s, '/v1/login', { email, password: 'the first password' })).status, 401);
    assert.equal((await post(s, '/v1/login', { email, password: 'a better password' })).status, 200);
  });
});

// ---- API5: broken function level authorization ----

test('API5:2023 broken function level authorization: GET /v1/logout neither signs out nor reads the account', async () => {
  await withStack({}, async (s) => {
    const a = await post(s, '/v1/signup', { email: mail(), password: 'logout get password', plan: 'free' });
    const r = await fetch(`${s.admin}/v1/logout`, { headers: { cookie: a.cookie } });
    const text = await r.text();
    assert.equal(r.status, 405);
    assert.doesNotMatch(text, /csrf_token|"email"/);
    assert.equal((await fetch(`${s.admin}/v1/me`, { headers: { cookie: a.cookie } })).status, 200);
  });
});

test('API5:2023 broken function level authorization: a suspended or canceled customer reads invoices but cannot create keys or change plans', async () => {
  await withStack({}, async (s) => {
    for (const how of ['suspend', 'cancel']) {
      const email = mail(how);
      const a = await post(s, '/v1/signup', { email, password: 'suspended password', plan: 'free' });
      const id = a.json.customer.id;
      if (how === 'suspend') assert.equal((await s.adminCall('PATCH', `/v1/admin/customers/${id}`, { status: 'suspended' })).status, 200);
      else assert.equal((await s.adminCall('POST', `/v1/admin/customers/${id}/cancel`, { at_period_end: false })).status, 200);
      const li = await post(s, '/v1/login', { email, password: 'suspended password' });
      assert.equal(li.status, 200, 'can still sign in');
      const h = { cookie: li.cookie, 'x-csrf-token': li.json.csrf_token };
      assert.equal((await fetch(`${s.admin}/v1/me/invoices`, { headers: h })).status, 200);
      const key = await post(s, '/v1/me/keys', { name: 'x' }, h);
      assert.equal(key.status, 403, `${how}: no new key`);
      assert.equal(key.json.error.type, 'account_inactive');
      const rot = await post(s, `/v1/me/keys/${a.json.key.id}/rotate`, {}, h);
      assert.equal(rot.status, 403);
      const plan = await post(s, '/v1/me/plan', { plan: 'pro' }, h);
      assert.equal(plan.status, 403, `${how}: no plan change`);
      assert.equal(plan.json.error.type, 'account_inactive');
    }
  });
});

// ---- API6: unrestricted access to sensitive business flows ----

test('API6:2023 unrestricted access to sensitive business flows: one trial per normalised email', async () => {
  await withStack({}, async (s) => {
    const user = rand();
    const first = await post(s, '/v1/signup', { email: `${user}.x@gmail.com`, password: 'trial password one', plan: 'starter' });
    assert.equal(first.status, 201);
    assert.equal(first.json.customer.status, 'trialing');
    assert.equal(first.json.trial, 'granted');
    for (const again of [`${user}x+more@gmail.com`, `${user.toUpperCase()}.X@googlemail.com`]) {
      const r = await post(s, '/v1/signup', { email: again, password: 'trial password two', plan: 'pro' });
      assert.equal(r.status, 201);
      assert.equal(r.json.customer.status, 'active', `${again}: no second trial`);
      assert.equal(r.json.trial, 'already_used');
    }
  });
});

test('API6:2023 unrestricted access to sensitive business flows: one trial per client address in the window; repeat_trial: refuse answers 403', async () => {
  await withStack({ trustedProxies: ['127.0.0.1'], portal: '{signup: {per_address: 100/hour, trial_address_days: 30, repeat_trial: refuse}}' }, async (s) => {
    assert.equal((await post(s, '/v1/signup', { email: mail('t1'), password: 'trial password one', plan: 'starter' }, from('203.0.113.9'))).json.customer.status, 'trialing');
    const again = await post(s, '/v1/signup', { email: mail('t2'), password: 'trial password two', plan: 'starter' }, from('203.0.113.9'));
    assert.equal(again.status, 403);
    assert.equal(again.json.error.type, 'trial_already_used');
    // a plan without a trial is fine from there; another address gets its trial
    assert.equal((await post(s, '/v1/signup', { email: mail('t3'), password: 'trial password three', plan: 'free' }, from('203.0.113.9'))).status, 201);
    assert.equal((await post(s, '/v1/signup', { email: mail('t4'), password: 'trial password four', plan: 'starter' }, from('198.51.100.4'))).json.customer.status, 'trialing');
  });
});

test('API6:2023 unrestricted access to sensitive business flows: only the plans in portal.signup.plans are self-service; sign-up can be switched off', async () => {
  await withStack({ portal: '{signup: {plans: [free, starter]}}' }, async (s) => {
    const r = await post(s, '/v1/signup', { email: mail(), password: 'enterprise please', plan: 'enterprise' });
    assert.equal(r.status, 403);
    assert.equal(r.json.error.type, 'plan_not_available');
    assert.equal((await post(s, '/v1/signup', { email: mail(), password: 'starter is fine', plan: 'starter' })).status, 201);
    // the owner can still put a customer on enterprise
    assert.equal((await s.adminCall('POST', '/v1/admin/customers', { email: mail(), plan: 'enterprise' })).status, 201);
  });
  await withStack({ portal: '{signup: {enabled: false}}' }, async (s) => {
    const r = await post(s, '/v1/signup', { email: mail(), password: 'nobody gets in', plan: 'free' });
    assert.equal(r.status, 403);
    assert.equal(r.json.error.type, 'signup_disabled');
  });
});

// ---- API4: unrestricted resource consumption ----

test('API4:2023 unrestricted resource consumption: sign-ups are limited per client address (spoofed X-Forwarded-For from an untrusted peer does not help) and in all', async () => {
  await withStack({ portal: '{signup: {per_address: 3/hour, global: 1000/hour}}' }, async (s) => {
    const codes = [];
    for (let i = 0; i < 5; i++) codes.push(await post(s, '/v1/signup', { email: mail(), password: 'many accounts pw', plan: 'free' }, from(`198.51.100.${i}`)));
    assert.deepEqual(codes.map((r) => r.status), [201, 201, 201, 429, 429]);
    assert.equal(codes[3].json.error.type, 'signup_rate_limited');
    assert.ok(Number(codes[3].headers.get('retry-after')) > 0);
  });
  await withStack({ trustedProxies: ['127.0.0.1'], portal: '{signup: {per_address: 100/hour, global: 4/hour}}' }, async (s) => {
    const codes = [];
    for (let i = 0; i < 6; i++) codes.push((await post(s, '/v1/signup', { email: mail(), password: 'many accounts pw', plan: 'free' }, from(`198.51.100.${i}`))).status);
    assert.deepEqual(codes, [201, 201, 201, 201, 429, 429]);
  });
});

test('API4:2023 unrestricted resource consumption: a sign-up with an email that exists is refused before any hashing, and counts against the limit', async () => {
  await withStack({ portal: '{signup: {per_address: 2/hour}}' }, async (s) => {
    const email = mail();
    assert.equal((await post(s, '/v1/signup', { email, password: 'first one is fine', plan: 'free' })).status, 201);
    assert.equal((await post(s, '/v1/signup', { email, password: 'first one is fine', plan: 'free' })).status, 409);
    // probing emails is limited too
    assert.equal((await post(s, '/v1/signup', { email, password: 'first one is fine', plan: 'free' })).status, 429);
    assert.equal((await s.adminCall('GET', '/v1/admin/customers', undefined, ADMIN_TOKEN)).json.data.length, 1);
  });
});
