// decide_envoy.test.mjs - Envoy's ext_authz (HTTP mode) against tollgate's /v1/decide/envoy.
//
// Envoy is not packaged in Debian, so no real Envoy runs here: EnvoyCheck below writes, byte for
// byte on a keep-alive connection, the authorization request Envoy's HTTP ext_authz client sends,
// as documented in envoyproxy/envoy:
//   api/envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto (HttpService.path_prefix,
//     AuthorizationRequest.allowed_headers / headers_to_add: "Host, Method, Path, Content-Length,
//     and Authorization are additionally included"; "Content-Length will be set to 0 and the
//     request to the authorization server will not have a message body");
//   source/extensions/filters/common/ext_authz/ext_authz_http_impl.cc (RawHttpClientImpl::check:
//     the client's :method, path_prefix + the client's :path, Content-Length: 0, the matched
//     headers, then headers_to_add overwriting);
//   source/common/http/async_client_impl.cc and the router: x-envoy-internal: true,
//     x-forwarded-for, x-envoy-expected-rq-timeout-ms on the request to the authorization cluster.
// And what Envoy does with the answer (same files): 200 allows, copying allowed_upstream_headers
// to the upstream request and allowed_client_headers_on_success to the client's response and
// removing the headers named in x-envoy-auth-headers-to-remove; any other status below 500 is
// the client's answer, with its body. The assertions check exactly those parts of the answer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Stack, wellFormedKey } from './harness.mjs';
import { Reader, readMessage } from '../security/rawhttp.mjs';

const TOKEN = 'decide-service-token-0123456789';
const PREFIX = '/v1/decide/envoy'; // http_service.path_prefix in examples/envoy/envoy.yaml
const DAILY = '  daily: {price: "1", rate_limit: 1000/day, burst: 1000}\n';

// One Envoy worker's connection to the authorization cluster.
class EnvoyCheck {
  static async open(port) {
    const c = new EnvoyCheck();
    c.sock = net.connect(port, '127.0.0.1');
    c.rd = new Reader(c.sock);
    await new Promise((res, rej) => { c.sock.once('connect', res); c.sock.once('error', rej); });
    return c;
  }

  // The check of one client request: {method, path (with its query), host, key, keyHeader,
  // requestId, token (undefined: the configured one; null: none), headers (more client headers,
  // which Envoy does NOT forward unless allowed_headers matches them)}.
  async check({ method = 'GET', path, host = 'api.example.com', key, keyHeader = 'bearer', requestId, token = TOKEN }) {
    const lines = [`${method} ${PREFIX}${path} HTTP/1.1`, `host: ${host}`, 'content-length: 0'];
    if (key && keyHeader === 'bearer') lines.push(`authorization: Bearer ${key}`);
    if (key && keyHeader === 'x-api-key') lines.push(`x-api-key: ${key}`);
    if (requestId) lines.push(`x-request-id: ${requestId}`);
    if (token !== null) lines.push(`x-tollgate-token: ${token}`);
    lines.push('x-envoy-internal: true', 'x-forwarded-for: 10.0.0.2', 'x-envoy-expected-rq-timeout-ms: 200');
    this.sock.write(`${lines.join('\r\n')}\r\n\r\n`);
    const m = await readMessage(this.rd, { response: true, method });
    const text = m.body.toString('utf8');
    let json = null;
    try { json = JSON.parse(text); } catch { /* none */ }
    return { status: m.status, get: m.get, headers: m.headers, text, json };
  }

  close() { this.sock.destroy(); }
}

let s, envoy;
const ACCESS_LOG = join(mkdtempSync(join(tmpdir(), 'tollgate-envoy-log-')), 'access.log');
before(async () => {
  s = await new Stack({
    extra: `decide: {token: "${TOKEN}"}\naccess_log: {path: ${JSON.stringify(ACCESS_LOG)}, sample_success: 1.0}`,
    morePlans: DAILY,
  }).start();
  envoy = await EnvoyCheck.open(s.gwPort);
});
after(async () => { envoy.close(); await s.stop(); });

test('allowed: 200 with identity for the upstream, budget for the client, the key removed; metered once', async () => {
  const { key, keyId, customer } = await s.customer('free');
  const r = await envoy.check({ path: '/v1/basic/x?q=1', key, requestId: 'envoy-req-1' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.get('x-tollgate-customer'), customer.id);
  assert.equal(r.get('x-tollgate-plan'), 'free');
  assert.equal(r.get('x-tollgate-key-id'), keyId);
  assert.equal(r.get('x-envoy-auth-headers-to-remove'), 'authorization, x-api-key');
  assert.equal(r.get('x-ratelimit-limit'), '10');
  assert.equal(r.get('x-ratelimit-remaining'), '9');
  assert.equal(r.get('ratelimit-policy'), '"default";q=10;w=60');
  assert.equal(r.get('x-quota-remaining'), '999');
  assert.equal(r.get('x-request-id'), 'envoy-req-1');
  assert.equal(r.get('content-length'), '0');
  assert.equal(await s.usage(customer.id), 1);
  // the key in X-API-Key (allowed_headers), on the same kept-alive connection
  const r2 = await envoy.check({ path: '/v1/basic/y', key, keyHeader: 'x-api-key' });
  assert.equal(r2.status, 200);
  assert.equal(r2.get('x-ratelimit-remaining'), '8');
  assert.equal(await s.usage(customer.id), 2);
});

test('each check is one access-log line with the client\'s method, path and request id, and what it billed', async () => {
  const { key, customer } = await s.customer('free');
  assert.equal((await envoy.check({ method: 'GET', path: '/v1/basic/logged?token=secret', key, requestId: 'envoy-log-1' })).status, 200);
  assert.equal((await envoy.check({ path: '/v1/basic/logged', key: 'tg_live_unknown', requestId: 'envoy-log-2' })).status, 401);
  const lineOf = async (id) => {
    for (let i = 0; i < 500; i++) {
      const text = existsSync(ACCESS_LOG) ? readFileSync(ACCESS_LOG, 'utf8') : '';
      const l = text.split('\n').filter(Boolean).map((x) => JSON.parse(x)).find((x) => x.request_id === id);
      if (l) return l;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.fail(`no access-log line with request_id ${id}`);
  };
  const allowed = await lineOf('envoy-log-1');
  assert.equal(allowed.via, 'envoy');
  assert.equal(allowed.decision, 'allowed');
  assert.equal(allowed.method, 'GET');
  assert.equal(allowed.path, '/v1/basic/logged', 'without the query');
  assert.equal(allowed.customer, customer.id);
  assert.equal(allowed.status, 200);
  assert.equal(allowed.reservation, null, 'billed at the decision: no reservation');
  assert.deepEqual(allowed.units, { api_calls: 1 });
  const refused = await lineOf('envoy-log-2');
  assert.equal(refused.via, 'envoy');
  assert.equal(refused.decision, 'refused');
  assert.equal(refused.error, 'invalid_key');
  assert.equal(refused.status, 401);
  assert.deepEqual(refused.units, {});
});

test('every method arrives as the client sent it, and the route for that method meters and weighs', async () => {
  // a plan whose bucket refills one call every 86 s: the remaining counts below are exact
  const { key, customer } = await s.customer('daily');
  for (const method of ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
    const r = await envoy.check({ method, path: '/v1/basic/x', key });
    assert.equal(r.status, 200, `${method}: ${r.text}`);
  }
  assert.equal(await s.usage(customer.id), 5);
  // POST /v1/vision/* is the route {weight: 10, meter: {api_calls: 1, images: 1}}; GET is not
  const post = await envoy.check({ method: 'POST', path: '/v1/vision/tag', key });
  assert.equal(post.status, 200);
  assert.equal(Number(post.get('x-ratelimit-remaining')), 1000 - 5 - 10);
  assert.equal(await s.usage(customer.id, 'images'), 1);
  const get = await envoy.check({ path: '/v1/vision/tag', key });
  assert.equal(Number(get.get('x-ratelimit-remaining')), 1000 - 5 - 10 - 1);
  assert.equal(await s.usage(customer.id, 'images'), 1);
  assert.equal(await s.usage(customer.id), 7);
});

test('HEAD is answered without a body, so the connection stays in step', async () => {
  const { key } = await s.customer('pro');
  const r = await envoy.check({ method: 'HEAD', path: '/v1/basic/x' });
  assert.equal(r.status, 401);
  assert.ok(Number(r.get('content-length')) > 0);
  assert.equal(r.text, '');
  assert.equal((await envoy.check({ method: 'HEAD', path: '/v1/basic/x', key })).status, 200);
  assert.equal((await envoy.check({ path: '/v1/basic/x', key })).status, 200);
});

test('401 for a missing or unknown key, with the JSON error Envoy passes to the client', async () => {
  let r = await envoy.check({ path: '/v1/basic/x' });
  assert.equal(r.status, 401);
  assert.equal(r.get('content-type'), 'application/json');
  assert.equal(r.json.error.type, 'missing_key');
  r = await envoy.check({ path: '/v1/basic/x', key: wellFormedKey() });
  assert.equal(r.status, 401);
  assert.equal(r.json.error.type, 'invalid_key');
  assert.match(r.json.error.message, /does not exist/);
  assert.equal(r.get('x-tollgate-customer'), undefined);
});

test('403 for an endpoint outside the plan; dot segments are 400 bad_path whichever way they resolve; nothing metered', async () => {
  const { key, customer } = await s.customer('free');
  let r = await envoy.check({ path: '/v1/vision/labels', key });
  assert.equal(r.status, 403);
  assert.equal(r.json.error.type, 'endpoint_not_in_plan');
  assert.match(r.json.error.message, /free plan/);
  // Envoy forwards the path it asked about: unresolved when its normalize_path is off, so
  // "/v1/vision/../basic/x" would be decided as basic and served as vision by a router that
  // does not resolve dot segments. Refused, as are paths upstreams read differently.
  for (const path of ['/v1/basic/../vision/labels', '/v1/basic/%2e%2e/vision/labels', '/v1/vision/../basic/x',
    '/v1/vision/%2E%2e/basic/x', '/v1/basic/./x', '/v1/basic/a%2Fb', '/v1/basic/x#/../../vision/labels']) {
    r = await envoy.check({ path, key });
    assert.equal(r.status, 400, `${path}: ${r.status}`);
    assert.equal(r.json.error.type, 'bad_path', path);
  }
  assert.equal(await s.usage(customer.id), 0);
});

test('429 with Retry-After once the rate limit is spent; refused checks are not metered', async () => {
  const { key, customer } = await s.customer('free');
  const codes = [];
  let last;
  for (let i = 0; i < 12; i++) {
    last = await envoy.check({ path: '/v1/basic/x', key });
    codes.push(last.status);
  }
  assert.deepEqual(codes, [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 429, 429]);
  assert.equal(last.json.error.type, 'rate_limited');
  assert.ok(Number(last.get('retry-after')) >= 1);
  assert.equal(last.get('x-ratelimit-remaining'), '0');
  assert.equal(await s.usage(customer.id), 10);
});

test('a blocking quota refuses as for proxied calls (429 quota_exceeded); a suspended account is 402', async () => {
  const { key, customer } = await s.customer('tiny');
  for (let i = 0; i < 5; i++) assert.equal((await envoy.check({ path: '/v1/basic/x', key })).status, 200);
  const r = await envoy.check({ path: '/v1/basic/x', key });
  assert.equal(r.status, 429);
  assert.equal(r.json.error.type, 'quota_exceeded');
  assert.equal(r.get('x-quota-remaining'), '0');
  assert.ok(Number(r.get('retry-after')) > 0);
  assert.equal(await s.usage(customer.id), 5);
  // the same budget as proxied calls: the gateway refuses the customer too
  assert.equal((await s.call('/v1/basic/x', { key })).json.error.type, 'quota_exceeded');

  const pro = await s.customer('pro');
  await s.adminCall('PATCH', `/v1/admin/customers/${pro.customer.id}`, { status: 'suspended' });
  const susp = await envoy.check({ path: '/v1/basic/x', key: pro.key });
  assert.equal(susp.status, 402);
  assert.equal(susp.json.error.type, 'account_suspended');
  assert.equal(await s.usage(pro.customer.id), 0);
});

test('a missing or wrong service token is refused before the key is looked at, and meters nothing', async () => {
  const { key, customer } = await s.customer('pro');
  for (const token of [null, '', 'decide-service-token-012345678X', `${TOKEN}x`, TOKEN.slice(0, -1)]) {
    const r = await envoy.check({ path: '/v1/basic/x', key, token });
    assert.equal(r.status, 403, `token ${token}`);
    assert.equal(r.json.error.type, 'decide_token_invalid');
    assert.equal(r.get('x-tollgate-customer'), undefined);
    assert.equal(r.get('x-ratelimit-remaining'), undefined);
  }
  assert.equal(await s.usage(customer.id), 0);
  // nor the rate limit: the first good check still finds the whole burst
  const ok = await envoy.check({ path: '/v1/basic/x', key });
  assert.equal(ok.get('x-ratelimit-remaining'), '499');
  // a path that only starts like the prefix, or becomes it once normalised, is an ordinary call,
  // proxied to the upstream (the prefix is matched on the raw path)
  // (raw bytes: fetch would resolve the dot segments itself)
  const raw = await EnvoyCheck.open(s.gwPort);
  try {
    for (const path of ['/v1/decide/envoyx', '/v1/decide/x/../envoy/v1/basic/x']) {
      raw.sock.write(`GET ${path} HTTP/1.1\r\nhost: a\r\nauthorization: Bearer ${key}\r\nx-tollgate-token: ${TOKEN}\r\n\r\n`);
      const other = await readMessage(raw.rd, { response: true });
      assert.equal(other.status, 404, path); // the demo upstream's
      assert.equal(other.get('x-tollgate-customer'), undefined);
    }
  } finally {
    raw.close();
  }
  assert.equal(await s.usage(customer.id), 3);
});

test('a revoked key is refused within one second', async () => {
  const { key, keyId } = await s.customer('pro');
  assert.equal((await envoy.check({ path: '/v1/basic/x', key })).status, 200);
  const t0 = Date.now();
  const d = await s.adminCall('DELETE', `/v1/admin/keys/${keyId}`);
  assert.equal(d.status, 200);
  let r;
  do { r = await envoy.check({ path: '/v1/basic/x', key }); } while (r.status === 200 && Date.now() - t0 < 1000);
  assert.equal(r.status, 401);
  assert.match(r.json.error.message, /revoked/);
  assert.ok(Date.now() - t0 < 1000);
});

test('strict and process durability: an allow answer means its usage survives kill -9', async () => {
  for (const durability of ['strict', 'process']) {
    const st = await new Stack({ durability, extra: `decide: {token: "${TOKEN}"}` }).start();
    const c = await EnvoyCheck.open(st.gwPort);
    try {
      const { key, customer } = await st.customer('pro');
      for (let i = 0; i < 3; i++) assert.equal((await c.check({ path: '/v1/basic/x', key })).status, 200, durability);
      assert.equal(await st.usage(customer.id), 3);
      // checks in flight on several connections at once
      const more = await Promise.all([0, 1, 2, 3].map(() => EnvoyCheck.open(st.gwPort)));
      const rs = await Promise.all(more.map((m) => m.check({ path: '/v1/basic/y', key })));
      more.forEach((m) => m.close());
      assert.deepEqual(rs.map((r) => r.status), [200, 200, 200, 200]);
      // killed at once after the last 200: what was answered was committed before the answer
      // (strict: on disk; process: written to the metering log), and the restart stores it
      await st.kill9();
      await st.start();
      assert.equal(await st.usage(customer.id), 7);
    } finally {
      c.close();
      await st.stop();
    }
  }
});

test('without decide.token the path is not answered by tollgate: it is an ordinary proxied call', async () => {
  const st = await new Stack().start();
  try {
    const { key, customer } = await st.customer('pro');
    const r = await st.call(`${PREFIX}/v1/basic/x`, { key, headers: { 'x-tollgate-token': TOKEN } });
    assert.equal(r.status, 404); // the demo upstream's own answer, billed as any 4xx
    assert.equal(r.headers.get('x-ratelimit-remaining'), '499');
    assert.equal(await st.usage(customer.id), 1);
  } finally {
    await st.stop();
  }
});
