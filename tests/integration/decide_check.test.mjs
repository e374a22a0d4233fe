// decide_check.test.mjs - POST /v1/check and POST /v1/report (issue 16): an API's own code asks
// tollgate before serving a call and reports the outcome after, as with Unkey's verify call.
// Strict durability: a report is answered once its usage is durable. decide.on_timeout: release.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Stack, ADMIN_TOKEN } from './harness.mjs';

const TOKEN = 'decide-token-check-0123456789';
let s;

async function until(fn, ms = 10000) {
  const t0 = Date.now();
  let v;
  while (!(v = await fn()) && Date.now() - t0 < ms) await new Promise((r) => setImmediate(r));
  return v;
}

async function post(path, body, { token = TOKEN, method = 'POST', stack = s } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers['x-tollgate-token'] = token;
  const r = await fetch(stack.gw + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text };
}

const check = (key, path = '/v1/basic/x', extra = {}) => post('/v1/check', { key, method: 'GET', path, ...extra });
const report = (reservation, status = 200, units) => post('/v1/report', { reservation, status, ...(units ? { units } : {}) });

before(async () => {
  s = await new Stack({
    durability: 'strict',
    extra: `decide: {token: "${TOKEN}", settle_timeout_ms: 1000, on_timeout: release}`,
  }).start();
});
after(async () => { await s.stop(); });

test('an allowed check names the customer, plan, limits and a reservation; its report bills it once', async () => {
  const { key, customer, keyId } = await s.customer('pro');
  const c = await check(key);
  assert.equal(c.status, 200, c.text);
  assert.equal(c.json.allowed, true);
  assert.equal(c.json.customer, customer.id);
  assert.equal(c.json.plan, 'pro');
  assert.equal(c.json.key_id, keyId);
  assert.equal(c.json.limit, 500);
  assert.equal(c.json.remaining, 499);
  assert.ok(c.json.reset >= 0);
  assert.equal(c.json.quota_remaining, 499999);
  assert.match(c.json.reservation, /^rsv_[0-9a-f]{32}$/);

  const r1 = await report(c.json.reservation, 200, { tokens: 4 });
  assert.equal(r1.status, 200, r1.text);
  assert.deepEqual(r1.json, { reservation: c.json.reservation, billed: true });
  // strict: answered once durable; the store applies it shortly after
  assert.ok(await until(async () => (await s.usage(customer.id)) === 1 && (await s.usage(customer.id, 'tokens')) === 4));

  const r2 = await report(c.json.reservation, 200, { tokens: 4 });
  assert.equal(r2.status, 404);
  assert.equal(r2.json.error.type, 'reservation_not_found');
  assert.equal(await s.usage(customer.id, 'tokens'), 4);
});

test('refusals: 401, 403, 429 with retry_after, 402, as for proxied calls', async () => {
  let c = await check('tg_live_nope');
  assert.equal(c.status, 200);
  assert.equal(c.json.allowed, false);
  assert.equal(c.json.status, 401);
  assert.equal(c.json.error.type, 'invalid_key');
  assert.equal(c.json.reservation, undefined);

  const free = await s.customer('free');
  c = await check(free.key, '/v1/text/summarize');
  assert.equal(c.json.status, 403);
  assert.equal(c.json.error.type, 'endpoint_not_in_plan');
  assert.equal(c.json.customer, free.customer.id);

  for (let i = 0; i < 9; i++) assert.equal((await check(free.key)).json.allowed, true); // burst 10 (one used above? no: refused calls take nothing)
  c = await check(free.key);
  assert.equal(c.json.allowed, true);
  c = await check(free.key);
  assert.equal(c.json.allowed, false);
  assert.equal(c.json.status, 429);
  assert.equal(c.json.error.type, 'rate_limited');
  assert.ok(c.json.retry_after >= 1);
  assert.equal(c.json.remaining, 0);

  const sus = await s.customer('pro');
  await s.adminCall('PATCH', `/v1/admin/customers/${sus.customer.id}`, { status: 'suspended' });
  c = await check(sus.key);
  assert.equal(c.json.status, 402);
  assert.equal(c.json.error.type, 'account_suspended');
});

test('a path the API would read another way is refused (400 bad_path): dot segments, literal or encoded, and a \'#\'', async () => {
  // The API asking about its own raw path serves that raw path: "/v1/vision/../basic/x" must not
  // be decided as /v1/basic/x (allowed on free) when a router matching /v1/vision/* serves it.
  const { key, customer } = await s.customer('free'); // /v1/basic/* only
  const problems = [];
  for (const path of ['/v1/vision/../basic/x', '/v1/vision/%2e%2e/basic/x', '/v1/vision/labels/%2E%2e/../basic/x',
    '/v1/basic/./x', '/v1/basic/x/.', '/v1/basic/x#/../../vision/labels', '/v1/basic/x#frag', '/v1/basic//x']) {
    const c = await check(key, path);
    if (c.status !== 400 || c.json?.error?.type !== 'bad_path') problems.push(`${path}: ${c.status} ${c.text}`);
  }
  assert.deepEqual(problems, []);
  // dots inside a segment's name, and anything in the query, are ordinary
  for (const path of ['/v1/basic/a..b', '/v1/basic/.well-known', '/v1/basic/x?next=/../vision#y']) {
    const c = await check(key, path);
    assert.equal(c.json?.allowed, true, `${path}: ${c.text}`);
    assert.equal((await report(c.json.reservation, 200)).json.billed, true);
  }
  assert.ok(await until(async () => (await s.usage(customer.id)) === 3));
});

test('a report whose units could not be billed is refused (400 naming the metric) and its reservation stays open', async () => {
  const { key, customer } = await s.customer('pro');
  const c = await check(key);
  assert.equal(c.json.allowed, true, c.text);
  // each of these used to be answered {"billed": true} with the units silently dropped
  const cases = [[{ Tokens: 5 }, /"Tokens" is not a metric name/], [{ 'tokens=900, images': 1 }, /is not a metric name/],
    [{ 'to-kens': 1 }, /is not a metric name/], [{ tokens: 10000000000 }, /"tokens" must be a whole number from 0 to metering\.max_units_per_call \(1000000000\)/],
    [{ tokens: -1 }, /"tokens" must be a whole number/], [{ tokens: 1.5 }, /"tokens" must be a whole number/]];
  for (const [units, message] of cases) {
    const r = await report(c.json.reservation, 200, units);
    assert.equal(r.status, 400, `${JSON.stringify(units)}: ${r.text}`);
    assert.equal(r.json.error.type, 'bad_request');
    assert.match(r.json.error.message, message);
  }
  // still open: the corrected report bills it, once
  const ok = await report(c.json.reservation, 200, { tokens: 5 });
  assert.deepEqual(ok.json, { reservation: c.json.reservation, billed: true });
  assert.ok(await until(async () => (await s.usage(customer.id)) === 1 && (await s.usage(customer.id, 'tokens')) === 5));
  assert.equal((await report(c.json.reservation, 200, { tokens: 5 })).status, 404);
});

test('a failed call is reported unbilled; unknown reservations are 404', async () => {
  const { key, customer } = await s.customer('pro');
  const c = await check(key);
  const r = await report(c.json.reservation, 502);
  assert.deepEqual(r.json, { reservation: c.json.reservation, billed: false });
  const u = await report('rsv_' + '0'.repeat(32));
  assert.equal(u.status, 404);
  assert.equal((await report('not-an-id')).status, 404);
  assert.equal(await s.usage(customer.id), 0);
});

test('an unreported reservation is released after decide.settle_timeout_ms (on_timeout: release)', async () => {
  const { key, customer } = await s.customer('tiny'); // 5 calls, block
  for (let i = 0; i < 5; i++) assert.equal((await check(key)).json.allowed, true);
  const over = await check(key);
  assert.equal(over.json.status, 429);
  assert.equal(over.json.error.type, 'quota_exceeded');
  // the five reservations expire and are given back: the quota is free again
  const again = await until(async () => (await check(key)).json.allowed, 5000);
  assert.ok(again, 'the released quota is usable again');
  assert.equal(await s.usage(customer.id), 0);
});

test('"units" reserves the given metrics instead of the route\'s; unknown metrics are refused', async () => {
  const { key, customer } = await s.customer('load');
  const c = await check(key, '/v1/basic/x', { units: { images: 3 } });
  assert.equal(c.json.allowed, true, c.text);
  assert.equal((await report(c.json.reservation, 200)).json.billed, true);
  assert.ok(await until(async () => (await s.usage(customer.id, 'images')) === 3));
  assert.equal(await s.usage(customer.id), 0);
  const bad = await check(key, '/v1/basic/x', { units: { invented: 1 } });
  assert.equal(bad.status, 400);
  assert.equal((await check(key, '/v1/basic/x', { units: { images: 0 } })).status, 400);
});

test('the service token is required; bodies are checked', async () => {
  const { key } = await s.customer('pro');
  let r = await post('/v1/check', { key, method: 'GET', path: '/v1/basic/x' }, { token: null });
  assert.equal(r.status, 403);
  assert.equal(r.json.error.type, 'decide_token_invalid');
  r = await post('/v1/report', { reservation: 'rsv_' + '0'.repeat(32), status: 200 }, { token: 'wrong-token-0123456789' });
  assert.equal(r.status, 403);
  assert.equal((await post('/v1/check', undefined, { method: 'GET' })).status, 405);
  assert.equal((await post('/v1/check', { key })).status, 400);
  assert.equal((await post('/v1/report', { reservation: 'rsv_x', status: 99 })).status, 400);
  // a body that is not JSON says what and where (a repeated key could otherwise mean two statuses)
  const raw = async (body) => {
    const r = await fetch(s.gw + '/v1/report', { method: 'POST', headers: { 'x-tollgate-token': TOKEN }, body });
    return { status: r.status, json: await r.json() };
  };
  let bad = await raw('{"reservation": "rsv_x", "status": 200, "status": 500}');
  assert.equal(bad.status, 400);
  assert.match(bad.json.error.message, /not valid JSON: duplicate object key .*\(line 1, column \d+\)/);
  bad = await raw('{"reservation": "rsv_x", "status": 200, "units": {"tokens": 9223372036854775808}}');
  assert.match(bad.json.error.message, /too big integer/);
  bad = await raw('[1]');
  assert.equal(bad.json.error.message, 'The body is not a JSON object.');
  const big = await post('/v1/check', { key, method: 'GET', path: '/' + 'a'.repeat(9000) });
  assert.equal(big.status, 413);
  const c = await check(key, '/v1/basic/%2e%2e;/x');
  assert.equal(c.status, 400);
  assert.equal(c.json.error.type, 'bad_path');
});

test('without a decide: section the paths are the upstream\'s, proxied like any other', async () => {
  const plain = await new Stack().start();
  try {
    const { key } = await plain.customer('pro');
    const r = await post('/v1/check', { key, method: 'GET', path: '/v1/basic/x' }, { stack: plain });
    assert.equal(r.status, 401); // the gateway wants the caller's own key: a proxied call
    assert.equal(r.json.error.type, 'missing_key');
    const d = await plain.call('/v1/decide', { key });
    assert.equal(d.status, 404); // the demo upstream's answer for a path it does not have
  } finally {
    await plain.stop();
  }
});

test('a full reservations table refuses new calls with 503 decide_unavailable instead of admitting them unrecorded', async () => {
  const small = await new Stack({ extra: `decide: {token: "${TOKEN}", max_pending: 2}` }).start();
  try {
    const { key, customer } = await small.customer('pro');
    const c1 = await post('/v1/check', { key, method: 'GET', path: '/v1/basic/x' }, { stack: small });
    const c2 = await post('/v1/check', { key, method: 'GET', path: '/v1/basic/x' }, { stack: small });
    assert.equal(c1.json.allowed && c2.json.allowed, true);
    const full = await post('/v1/check', { key, method: 'GET', path: '/v1/basic/x' }, { stack: small });
    assert.equal(full.status, 503);
    assert.equal(full.json.error.type, 'decide_unavailable');
    const r = await post('/v1/report', { reservation: c1.json.reservation, status: 200 }, { stack: small });
    assert.equal(r.json.billed, true);
    const again = await post('/v1/check', { key, method: 'GET', path: '/v1/basic/x' }, { stack: small });
    assert.equal(again.json.allowed, true);
    // three reserved (one billed, two held); the refused call gave its reservation back
    assert.equal(again.json.quota_remaining, 500000 - 3);
    assert.ok(await until(async () => (await small.usage(customer.id)) === 1));
    const metrics = async () => (await fetch(`${small.admin}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
    assert.ok(await until(async () => /tollgate_decide_reservations_open 2\n/.test(await metrics())), await metrics());
    assert.match(await metrics(), /tollgate_decide_refused_full_total 1\n/);
  } finally {
    await small.stop();
  }
});

test('one customer cannot fill the table: past decide.max_pending_per_customer its calls are 429 too_many_pending, others\' are admitted', async () => {
  const st = await new Stack({ extra: `decide: {token: "${TOKEN}", max_pending: 8, max_pending_per_customer: 2}` }).start();
  try {
    const a = await st.customer('pro');
    const b = await st.customer('pro');
    const chk = (key) => post('/v1/check', { key, method: 'GET', path: '/v1/basic/x' }, { stack: st });
    const a1 = await chk(a.key);
    const a2 = await chk(a.key);
    assert.equal(a1.json.allowed && a2.json.allowed, true);
    const a3 = await chk(a.key);
    assert.equal(a3.status, 200);
    assert.equal(a3.json.allowed, false);
    assert.equal(a3.json.status, 429);
    assert.equal(a3.json.error.type, 'too_many_pending');
    assert.match(a3.json.error.message, /decide\.max_pending_per_customer/);
    assert.equal(a3.json.retry_after, 1);
    assert.equal(a3.json.customer, a.customer.id);
    assert.equal(a3.json.reservation, undefined);
    assert.equal((await chk(b.key)).json.allowed, true); // the other customer is not refused
    // a settled reservation frees its customer's share
    assert.equal((await post('/v1/report', { reservation: a1.json.reservation, status: 200 }, { stack: st })).json.billed, true);
    const a4 = await chk(a.key);
    assert.equal(a4.json.allowed, true);
    // a1 billed, a2 and a4 reserved, the refused a3 gave its reservation back
    assert.ok(await until(async () => (await st.usage(a.customer.id)) === 1));
    assert.equal(a4.json.quota_remaining, 500000 - 3);
    const metrics = async () => (await fetch(`${st.admin}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
    assert.ok(await until(async () => /tollgate_decide_refused_customer_full_total 1\n/.test(await metrics())), await metrics());
    assert.match(await metrics(), /tollgate_decide_refused_full_total 0\n/);
  } finally {
    await st.stop();
  }
});

test('every decision and every end of a reservation is an access-log line, the two joined by the reservation id, the end naming the call by itself', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'tollgate-decide-log-')), 'access.log');
  const st = await new Stack({
    durability: 'strict',
    extra: `decide: {token: "${TOKEN}", settle_timeout_ms: 300, on_timeout: release}
access_log: {path: ${JSON.stringify(file)}, sample_success: 1.0}`,
  }).start();
  try {
    const { key, customer } = await st.customer('pro');
    const ok = await post('/v1/check', { key, method: 'GET', path: '/v1/basic/x?secret=1' }, { stack: st });
    assert.equal(ok.json.allowed, true, ok.text);
    const rep = await post('/v1/report', { reservation: ok.json.reservation, status: 201, units: { tokens: 3 } }, { stack: st });
    assert.equal(rep.json.billed, true, rep.text);
    const no = await post('/v1/check', { key: 'tg_live_nope', method: 'POST', path: '/v1/vision/y' }, { stack: st });
    assert.equal(no.json.allowed, false);
    const left = await post('/v1/check', { key, method: 'GET', path: '/v1/basic/z' }, { stack: st }); // never reported
    assert.equal(left.json.allowed, true);
    const proxied = await st.call('/v1/basic/x', { key });
    assert.equal(proxied.status, 200);

    const lines = () => (existsSync(file) ? readFileSync(file, 'utf8') : '').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const find = async (pred, what) => {
      for (let i = 0; i < 500; i++) {
        const l = lines().find(pred);
        if (l) return l;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.fail(`no access-log line for ${what}:\n${lines().map((l) => JSON.stringify(l)).join('\n')}`);
    };
    const decided = await find((l) => l.via === 'check' && l.reservation === ok.json.reservation, 'the allowed check');
    assert.equal(decided.decision, 'allowed');
    assert.equal(decided.method, 'GET');
    assert.equal(decided.path, '/v1/basic/x', 'the decided call\'s path, without its query');
    assert.equal(decided.customer, customer.id);
    assert.equal(decided.plan, 'pro');
    assert.equal(decided.status, 200);
    assert.equal(decided.upstream_status, null);
    assert.deepEqual(decided.units, {}, 'nothing is billed at the decision');

    const settled = await find((l) => l.via === 'settlement' && l.reservation === ok.json.reservation, 'the report');
    assert.equal(settled.decision, 'allowed');
    assert.equal(settled.status, 201);
    assert.equal(settled.customer, customer.id);
    assert.equal(settled.units.tokens, 3);
    // the settlement names the call by itself, as its decision did (no join needed)
    assert.equal(settled.method, 'GET');
    assert.equal(settled.path, '/v1/basic/x', 'the decided call\'s path, without its query');
    assert.ok(decided.request_id, JSON.stringify(decided));
    assert.equal(settled.request_id, decided.request_id);

    const refused = await find((l) => l.via === 'check' && l.decision === 'refused', 'the refused check');
    assert.equal(refused.error, 'invalid_key');
    assert.equal(refused.status, 401);
    assert.equal(refused.reservation, null);
    assert.equal(refused.method, 'POST');
    assert.equal(refused.path, '/v1/vision/y');

    // released by decide.on_timeout: a line, nothing billed
    const timedOut = await find((l) => l.via === 'timeout' && l.reservation === left.json.reservation, 'the timeout');
    assert.deepEqual(timedOut.units, {});
    assert.equal(timedOut.status, null);
    const leftDecided = await find((l) => l.via === 'check' && l.reservation === left.json.reservation, 'the unreported check');
    assert.equal(timedOut.method, 'GET');
    assert.equal(timedOut.path, '/v1/basic/z');
    assert.equal(timedOut.request_id, leftDecided.request_id);

    // a proxied call's line has no decision API fields
    const own = await find((l) => l.via === undefined && l.path === '/v1/basic/x', 'the proxied call');
    assert.equal('reservation' in own, false);
    assert.equal(own.upstream_status, 200);
  } finally {
    await st.stop();
  }
});
