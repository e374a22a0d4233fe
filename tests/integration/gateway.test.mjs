// gateway.test.mjs - every rule of the request path, against the real binary on loopback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, sleep, wellFormedKey, ADMIN_TOKEN } from './harness.mjs';

let s;
before(async () => { s = await new Stack().start(); });
after(async () => { await s.stop(); });

test('missing, malformed and unknown keys are 401 with stable error types', async () => {
  let r = await s.call('/v1/basic/x');
  assert.equal(r.status, 401);
  assert.equal(r.json.error.type, 'missing_key');
  assert.match(r.json.error.docs, /missing_key/);
  const { key } = await s.customer('free');
  const typo = key.slice(0, 20) + (key[20] === 'a' ? 'b' : 'a') + key.slice(21);
  r = await s.call('/v1/basic/x', { key: typo });
  assert.equal(r.status, 401);
  assert.equal(r.json.error.type, 'invalid_key');
  assert.match(r.json.error.message, /malformed/);
  r = await s.call('/v1/basic/x', { key: 'tg_live_' + 'A'.repeat(49) });
  assert.equal(r.status, 401);
  assert.equal(r.json.error.type, 'invalid_key');
  assert.match(r.json.error.message, /malformed/);
  // a well-formed key (valid checksum) that was never issued: looked up, not found
  r = await s.call('/v1/basic/x', { key: wellFormedKey() });
  assert.equal(r.status, 401);
  assert.equal(r.json.error.type, 'invalid_key');
  assert.match(r.json.error.message, /does not exist/);
  r = await s.call('/v1/basic/x', { key: wellFormedKey(), keyHeader: 'x-api-key' });
  assert.equal(r.json.error.type, 'invalid_key');
  // a key from another scheme is not a key
  r = await s.call('/v1/basic/x', { headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } });
  assert.equal(r.status, 401);
  assert.ok(['missing_key', 'invalid_key'].includes(r.json.error.type), r.text);
});

test('both key headers work; the key is stripped and identity headers added', async () => {
  const { key, customer } = await s.customer('free');
  for (const keyHeader of ['bearer', 'x-api-key']) {
    const r = await s.call('/v1/basic/echo?x=1', { key, keyHeader, headers: { 'x-tollgate-customer': 'spoofed' } });
    assert.equal(r.status, 200);
    assert.equal(r.json.customer, customer.id);
    assert.equal(r.json.plan, 'free');
    assert.equal(r.json.saw_authorization, false);
    assert.equal(r.json.saw_x_api_key, false);
    assert.equal(r.json.query, 'x=1');
  }
});

test('an endpoint outside the plan is 403 naming the plans that include it', async () => {
  const { key, customer } = await s.customer('free');
  const r = await s.call('/v1/vision/labels', { key });
  assert.equal(r.status, 403);
  assert.equal(r.json.error.type, 'endpoint_not_in_plan');
  assert.match(r.json.error.message, /free plan/);
  assert.match(r.json.error.message, /pro/);
  // dot segments cannot smuggle a path past the plan
  const r2 = await s.call('/v1/basic/../vision/labels', { key });
  assert.equal(r2.status, 403);
  assert.equal(await s.usage(customer.id), 0);
});

test('rate limit: burst of 10, then 429 with Retry-After; refused calls use no quota', async () => {
  const { key, customer } = await s.customer('free');
  const codes = [];
  let last;
  for (let i = 0; i < 13; i++) {
    last = await s.call('/v1/basic/x', { key });
    codes.push(last.status);
    if (i === 0) {
      assert.equal(last.headers.get('x-ratelimit-limit'), '10');
      assert.equal(last.headers.get('x-ratelimit-remaining'), '9');
      assert.equal(last.headers.get('ratelimit-policy'), '"default";q=10;w=60');
      assert.match(last.headers.get('ratelimit'), /^"default";r=9;t=\d+$/);
      assert.equal(last.headers.get('x-quota-remaining'), '999');
      assert.ok(Number(last.headers.get('x-quota-reset')) > 0);
    }
  }
  assert.deepEqual(codes, [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 429, 429, 429]);
  assert.equal(last.json.error.type, 'rate_limited');
  assert.ok(Number(last.headers.get('retry-after')) >= 1);
  assert.equal(last.headers.get('x-ratelimit-remaining'), '0');
  assert.equal(await s.usage(customer.id), 10);
});

test('quota block: the sixth call of a 5-call plan is 429 quota_exceeded with an upgrade path', async () => {
  const { key, customer } = await s.customer('tiny');
  for (let i = 0; i < 5; i++) assert.equal((await s.call('/v1/basic/x', { key })).status, 200);
  const r = await s.call('/v1/basic/x', { key });
  assert.equal(r.status, 429);
  assert.equal(r.json.error.type, 'quota_exceeded');
  assert.match(r.json.error.message, /Upgrade to/);
  assert.equal(r.headers.get('x-quota-remaining'), '0');
  assert.equal(await s.usage(customer.id), 5);
  // a plan change applies to the live counters at once
  await s.adminCall('PATCH', `/v1/admin/customers/${customer.id}`, { plan: 'pro' });
  assert.equal((await s.call('/v1/basic/x', { key })).status, 200);
});

test('quota bill: calls past the allowance are allowed and counted as overage', async () => {
  const { key, customer } = await s.customer('overage');
  for (let i = 0; i < 5; i++) assert.equal((await s.call('/v1/text/x', { key })).status, 200);
  const u = await s.adminCall('GET', `/v1/admin/customers/${customer.id}/usage`);
  const m = u.json.metrics.find((x) => x.metric === 'api_calls');
  assert.deepEqual([m.used, m.included, m.overage, m.remaining], [5, 3, 2, 0]);
});

test('quota throttle: past the allowance the reduced rate applies', async () => {
  const { key } = await s.customer('throttled');
  const codes = [];
  for (let i = 0; i < 5; i++) codes.push((await s.call('/v1/basic/x', { key })).status);
  assert.deepEqual(codes, [200, 200, 200, 429, 429]);
});

test('a suspended customer gets 402; resuming restores access', async () => {
  const { key, customer } = await s.customer('pro');
  await s.adminCall('PATCH', `/v1/admin/customers/${customer.id}`, { status: 'suspended' });
  const r = await s.call('/v1/basic/x', { key });
  assert.equal(r.status, 402);
  assert.equal(r.json.error.type, 'account_suspended');
  await s.adminCall('PATCH', `/v1/admin/customers/${customer.id}`, { status: 'active' });
  assert.equal((await s.call('/v1/basic/x', { key })).status, 200);
  const pd = await s.adminCall('PATCH', `/v1/admin/customers/${customer.id}`, { status: 'past_due' });
  assert.equal(pd.json.status, 'past_due');
  assert.equal((await s.call('/v1/basic/x', { key })).status, 200); // late payment is still served
});

test('a revoked key stops working within one second', async () => {
  const { key, keyId } = await s.customer('pro');
  assert.equal((await s.call('/v1/basic/x', { key })).status, 200);
  const t0 = Date.now();
  const d = await s.adminCall('DELETE', `/v1/admin/keys/${keyId}`);
  assert.equal(d.status, 200);
  assert.equal(d.json.status, 'revoked');
  let r;
  do { r = await s.call('/v1/basic/x', { key }); } while (r.status === 200 && Date.now() - t0 < 1000);
  assert.equal(r.status, 401);
  assert.match(r.json.error.message, /revoked/);
  assert.ok(Date.now() - t0 < 1000);
});

test('rotation: both keys work during the grace period, then only the new one', async () => {
  const { key, keyId } = await s.customer('pro');
  // The grace period is counted in whole seconds from the rotation's second: 3 s leaves at least
  // 2 s for the calls below (1 s left only what remained of that second: a loaded machine crossed
  // into the next one between the answer and the first call, and the old key was refused).
  const t0 = Date.now();
  const rot = await s.adminCall('POST', `/v1/admin/keys/${keyId}/rotate`, { grace_seconds: 3 });
  assert.equal(rot.status, 201);
  assert.equal(rot.json.replaces, keyId);
  assert.match(rot.json.secret, /^tg_live_/);
  assert.equal((await s.call('/v1/basic/x', { key })).status, 200);
  assert.equal((await s.call('/v1/basic/x', { key: rot.json.secret })).status, 200);
  let old;
  for (let i = 0; i < 100; i++) { // until the grace period ends, 10 s at most
    old = await s.call('/v1/basic/x', { key });
    if (old.status !== 200) break;
    await sleep(100);
  }
  assert.equal(old.status, 401);
  assert.match(old.json.error.message, /expired/);
  assert.ok(Date.now() - t0 >= 2000, 'the old key worked for at least 2 of its 3 seconds');
  assert.equal((await s.call('/v1/basic/x', { key: rot.json.secret })).status, 200);
});

test('upstream 5xx is not billed and gives its quota back; 4xx is billed', async () => {
  const { key, customer } = await s.customer('tiny');
  for (let i = 0; i < 7; i++) assert.equal((await s.call('/v1/status/503', { key })).status, 503);
  assert.equal(await s.usage(customer.id), 0);
  assert.equal((await s.call('/v1/status/404', { key })).status, 404);
  assert.equal(await s.usage(customer.id), 1);
});

test('Tollgate-Units is metered and stripped; the vision route meters images and weighs 10', async () => {
  const { key, customer } = await s.customer('pro');
  const r = await s.call('/v1/units?tokens=1234', { key });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('tollgate-units'), null);
  assert.equal(await s.usage(customer.id, 'tokens'), 1234);
  const v = await s.call('/v1/vision/tag', { key, method: 'POST', body: 'img' });
  assert.equal(v.status, 200);
  assert.equal(Number(v.headers.get('x-ratelimit-remaining')), 500 - 1 - 10);
  assert.equal(await s.usage(customer.id, 'images'), 1);
  assert.equal(await s.usage(customer.id, 'api_calls'), 2);
});

test('exact usage after concurrent load', async () => {
  const { key, customer } = await s.customer('load');
  let ok = 0;
  const worker = async () => {
    for (let i = 0; i < 40; i++) if ((await s.call('/v1/basic/x', { key })).status === 200) ok++;
  };
  await Promise.all(Array.from({ length: 50 }, worker));
  assert.equal(ok, 2000);
  assert.equal(await s.usage(customer.id), ok);
});

test('concurrent load on a rate-limited plan: usage equals the 2xx answers exactly', async () => {
  const { key, customer } = await s.customer('pro'); // 500/min, burst 500
  const codes = new Map();
  let next = 0;
  const worker = async () => {
    while (next++ < 2000) {
      const r = await s.call('/v1/basic/x', { key });
      codes.set(r.status, (codes.get(r.status) || 0) + 1);
    }
  };
  const t0 = Date.now();
  await Promise.all(Array.from({ length: 50 }, worker));
  const secs = (Date.now() - t0) / 1000;
  const ok = codes.get(200) || 0;
  assert.deepEqual([...codes.keys()].sort(), [200, 429], JSON.stringify([...codes]));
  assert.equal(ok + codes.get(429), 2000);
  // the burst, plus what refilled at 500/min while the load ran
  assert.ok(ok >= 500 && ok <= 500 + Math.ceil(secs * 500 / 60) + 1, `${ok} allowed in ${secs} s`);
  assert.equal(await s.usage(customer.id), ok);
});

test('admin API: auth, 404, 409, validation, metrics, health', async () => {
  assert.equal((await s.adminCall('GET', '/v1/admin/customers', undefined, null)).status, 401);
  assert.equal((await s.adminCall('GET', '/v1/admin/customers', undefined, 'wrong-token-0123456789')).status, 401);
  const nf = await s.adminCall('GET', '/v1/admin/customers/cus_nope');
  assert.equal(nf.status, 404);
  assert.equal(nf.json.error.type, 'not_found');
  await s.adminCall('POST', '/v1/admin/customers', { email: 'Dup@Example.com', plan: 'free' });
  const dup = await s.adminCall('POST', '/v1/admin/customers', { email: 'dup@example.COM', plan: 'free' });
  assert.equal(dup.status, 409);
  const bad = await s.adminCall('POST', '/v1/admin/customers', { email: 'x@y.z', plan: 'platinum' });
  assert.equal(bad.status, 400);
  assert.match(bad.json.error.message, /plan/);
  const badJson = await s.adminCall('POST', '/v1/admin/customers', '{"email":');
  assert.equal(badJson.status, 400);
  assert.match(badJson.json.error.message, /not valid JSON/);
  const trial = await s.adminCall('POST', '/v1/admin/customers', { email: 't@example.com', plan: 'starter' });
  assert.equal(trial.json.status, 'trialing');
  assert.ok(trial.json.trial_end);
  const { key, customer } = await s.customer('free');
  for (let i = 0; i < 3; i++) assert.equal((await s.call('/v1/basic/x', { key })).status, 200);
  await s.usage(customer.id); // reading usage stores everything answered so far
  const m = await fetch(s.admin + '/metrics', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }).then((r) => r.text());
  const stage = (name) => Number(m.match(new RegExp(`tollgate_metering_records_total\\{stage="${name}"\\} (\\d+)`))[1]);
  assert.ok(stage('committed') >= 3);
  assert.equal(stage('stored'), stage('committed'));
  assert.match(m, /tollgate_decisions_total\{outcome="allowed"\} \d+/);
  assert.match(m, /tollgate_requests_total\{status="200"\} \d+/);
  assert.match(m, /tollgate_upstream_latency_seconds_bucket\{le="\+Inf"\} \d+/);
  assert.match(m, /tollgate_metering_lag_seconds/);
  assert.match(m, /\ntollgate_metering_held_records 0\n/); // everything is stored: nothing waits in memory
  assert.match(m, /\ntollgate_metering_spilled_records_total 0\n/);
});

test('refusals keep the connection alive (two requests on one socket)', async () => {
  const net = await import('node:net');
  const sock = net.connect(s.gwPort, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  let data = '';
  sock.on('data', (d) => { data += d; });
  const req = 'GET /v1/basic/x HTTP/1.1\r\nHost: t\r\n\r\n';
  sock.write(req);
  for (let i = 0; i < 100 && !data.includes('missing_key'); i++) await sleep(10);
  assert.match(data, /HTTP\/1.1 401/);
  assert.doesNotMatch(data, /connection: close/i);
  sock.write(req);
  for (let i = 0; i < 100 && (data.match(/HTTP\/1.1 401/g) || []).length < 2; i++) await sleep(10);
  assert.equal((data.match(/HTTP\/1.1 401/g) || []).length, 2);
  sock.destroy();
});

test('public plans and the pricing calculator (no auth) match tollgate quote', async () => {
  const list = await fetch(`${s.admin}/v1/plans`).then((r) => r.json());
  const starter = list.data.find((p) => p.id === 'starter');
  assert.equal(starter.price, '49.00');
  assert.equal(starter.trial_days, 14);
  assert.deepEqual(starter.rate_limit, { count: 100, per: 'minute', burst: 100 });
  assert.deepEqual(starter.included, { api_calls: 50000 });
  const q = await fetch(`${s.admin}/v1/plans/starter/quote?api_calls=123456`).then((r) => r.json());
  assert.equal(q.total, '122.46');
  assert.equal(q.lines[1].amount, '73.46');
  const cli = s.cli(['quote', '-c', s.config, '--plan', 'starter', '--usage', 'api_calls=123456', '--json']);
  assert.equal(cli.status, 0, cli.stderr);
  assert.deepEqual(JSON.parse(cli.stdout), q);
  const bad = await fetch(`${s.admin}/v1/plans/starter/quote?api_calls=lots`);
  assert.equal(bad.status, 400);
  assert.equal((await fetch(`${s.admin}/v1/plans/platinum`)).status, 404);
});

test('a key\'s last use is shown at once and survives a restart', async () => {
  const st = await new Stack().start();
  try {
    const { key, customer } = await st.customer('pro');
    assert.equal((await st.call('/v1/basic/x', { key })).status, 200);
    let keys = await st.adminCall('GET', `/v1/admin/customers/${customer.id}/keys`);
    assert.ok(keys.json.data[0].last_used_at);
    await st.stopServer();
    await st.start();
    keys = await st.adminCall('GET', `/v1/admin/customers/${customer.id}/keys`);
    assert.ok(keys.json.data[0].last_used_at, 'last_used_at persisted at shutdown');
  } finally { await st.stop(); }
});
