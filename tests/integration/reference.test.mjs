// reference.test.mjs - portal.openapi (issue 15): GET /v1/reference serves the demo upstream's
// OpenAPI document enriched per operation, and what it says agrees with what the gateway
// answers; the gateway allows CORS from the portal's origin only (for Try it), answers its
// preflights without billing, and the reference page may fetch from the gateway (CSP).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { Stack } from './harness.mjs';

const root = resolve(new URL('../..', import.meta.url).pathname);
const DEMO_DOC = resolve(root, 'examples/demo-upstream.openapi.yaml');
const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

let s, bare;
before(async () => {
  s = new Stack({ portal: `{openapi: ${JSON.stringify(DEMO_DOC)}, signup: {per_address: 1000/hour, global: 10000/hour, trial_address_days: 0}}` });
  await s.start();
  bare = new Stack(); // no portal.openapi
  await bare.start();
});
after(async () => {
  await s?.stop();
  await bare?.stop();
});

// A concrete path for an operation: each {param} from the document's example.
function concrete(path, op, item) {
  const params = [...(item.parameters || []), ...(op.parameters || [])];
  return path.replace(/\{([^}]+)\}/g, (_, name) => encodeURIComponent(params.find((p) => p.name === name)?.example ?? 'x'));
}

test('GET /v1/reference: the document, the gateway as its server, and per operation the plans that include it', async () => {
  const r = await fetch(`${s.admin}/v1/reference`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /application\/json/);
  const doc = await r.json();
  assert.equal(doc.openapi, '3.0.3');
  assert.equal(doc.info.title, 'Demo API');
  assert.deepEqual(doc.servers, [{ url: s.gw, description: 'the gateway' }]);
  const plans = (await (await fetch(`${s.admin}/v1/plans`)).json()).data.map((p) => p.id);
  assert.deepEqual(doc['x-tollgate'].plans.map((p) => p.id), plans);
  assert.equal(doc['x-tollgate'].gateway, s.gw);
  let ops = 0;
  for (const item of Object.values(doc.paths)) {
    for (const m of METHODS) {
      if (!item[m]) continue;
      ops++;
      const x = item[m]['x-tollgate'];
      assert.ok(Array.isArray(x.plans) && x.plans.every((p) => plans.includes(p)));
      assert.ok(Number.isInteger(x.weight) && x.weight >= 1);
      assert.ok(x.meter.length >= 1);
    }
  }
  assert.equal(ops, 5);
  // the document's own text: the enrichment adds, it does not drop
  const source = readFileSync(DEMO_DOC, 'utf8');
  for (const path of Object.keys(doc.paths)) assert.ok(source.includes(`  ${path}:`), path);
});

// The reference's answer for each plan and operation is the gateway's: a customer on the plan
// calls the operation, and gets 403 endpoint_not_in_plan exactly when the plan is not listed.
test('the plans listed per operation are those the gateway admits; the vision route weighs 10 and meters images', async () => {
  const doc = await (await fetch(`${s.admin}/v1/reference`)).json();
  const customers = {};
  for (const plan of ['free', 'starter', 'pro']) customers[plan] = await s.customer(plan);
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const m of METHODS) {
      if (!item[m]) continue;
      const x = item[m]['x-tollgate'];
      for (const [plan, c] of Object.entries(customers)) {
        const body = m === 'post' ? '{}' : undefined;
        const r = await s.call(concrete(path, item[m], item), { key: c.key, method: m.toUpperCase(), body });
        if (x.plans.includes(plan)) assert.equal(r.status, 200, `${plan} ${m} ${path}: ${r.text}`);
        else {
          assert.equal(r.status, 403, `${plan} ${m} ${path}`);
          assert.equal(r.json.error.type, 'endpoint_not_in_plan');
        }
      }
    }
  }
  const vision = doc.paths['/v1/vision/classify'].post['x-tollgate'];
  assert.equal(vision.weight, 10);
  assert.deepEqual(vision.meter, [{ metric: 'api_calls', units: 1 }, { metric: 'images', units: 1 }]);
  assert.equal(vision.route, 'POST /v1/vision/*');
  assert.deepEqual(doc.paths['/v1/basic/geocode'].get['x-tollgate'].meter, [{ metric: 'api_calls', units: 1 }]);
  const before = await s.usage(customers.pro.customer.id, 'images');
  await s.call('/v1/vision/classify', { key: customers.pro.key, method: 'POST', body: '{}' });
  assert.equal(await s.usage(customers.pro.customer.id, 'images'), before + 1); // what the reference said
});

test('CORS: the portal origin may call the gateway (preflight unbilled, headers exposed); no other origin', async () => {
  const c = await s.customer('free');
  const portal = s.admin; // portal.public_url defaults to the admin listener here
  const pre = await fetch(`${s.gw}/v1/basic/geocode?q=x`, {
    method: 'OPTIONS',
    headers: { origin: portal, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), portal);
  assert.match(pre.headers.get('access-control-allow-headers'), /authorization/);
  assert.match(pre.headers.get('access-control-allow-methods'), /GET/);
  assert.equal(pre.headers.get('access-control-allow-credentials'), null);
  assert.match(pre.headers.get('vary'), /origin/i);

  const ok = await s.call('/v1/basic/geocode?q=x', { key: c.key, headers: { origin: portal } });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get('access-control-allow-origin'), portal);
  assert.match(ok.headers.get('access-control-expose-headers'), /x-ratelimit-remaining/);
  assert.match(ok.headers.get('access-control-expose-headers'), /x-quota-remaining/);
  assert.equal(await s.usage(c.customer.id), 1); // the preflight was not a call

  const refused = await s.call('/v1/text/summarize', { key: c.key, method: 'POST', body: '{}', headers: { origin: portal } });
  assert.equal(refused.status, 403);
  assert.equal(refused.headers.get('access-control-allow-origin'), portal); // the page can read the refusal

  for (const origin of ['http://evil.example', `${portal}.evil.example`, portal.replace('http:', 'https:')]) {
    const other = await s.call('/v1/basic/geocode?q=x', { key: c.key, headers: { origin } });
    assert.equal(other.status, 200);
    assert.equal(other.headers.get('access-control-allow-origin'), null, origin);
    const otherPre = await fetch(`${s.gw}/v1/basic/geocode`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'GET' } });
    assert.equal(otherPre.status, 401, origin); // not a preflight we answer: a call without a key
    assert.equal(otherPre.headers.get('access-control-allow-origin'), null);
  }
});

// The answers differ by Origin while Try it is on, so every one of them must say so: a shared cache
// that kept an answer to a request without Origin (no Access-Control-*) would otherwise serve it
// to the portal's page, and the portal's answer to everyone else.
test('CORS: while Try it is on, every gateway answer says Vary: Origin, whatever the Origin', async () => {
  const c = await s.customer('free');
  const portal = s.admin;
  const varies = (r, what) => assert.match(r.headers.get('vary') ?? '', /(^|,)\s*origin\s*(,|$)/i, what);
  for (const headers of [{}, { origin: 'http://evil.example' }, { origin: portal }]) {
    const what = headers.origin ?? 'no origin';
    const ok = await s.call('/v1/basic/geocode?q=x', { key: c.key, headers });
    assert.equal(ok.status, 200, what);
    varies(ok, `a forwarded call, ${what}`);
    const refused = await fetch(`${s.gw}/v1/basic/geocode?q=x`, { headers }); // no key
    assert.equal(refused.status, 401, what);
    varies(refused, `a refusal, ${what}`);
    const badPath = await fetch(`${s.gw}/v1/basic/a%2fb`, { headers: { ...headers, authorization: `Bearer ${c.key}` } });
    assert.equal(badPath.status, 400, what);
    varies(badPath, `a bad path, ${what}`);
    const pre = await fetch(`${s.gw}/v1/basic/geocode`, { method: 'OPTIONS', headers: { ...headers, 'access-control-request-method': 'GET' } });
    assert.equal(pre.status, headers.origin === portal ? 204 : 401, what); // only the portal's is a preflight
    varies(pre, `a preflight, ${what}`);
  }
  // without a reference nothing depends on Origin: no Vary for it
  const plain = await bare.call('/v1/basic/geocode?q=x', { key: (await bare.customer('free')).key, headers: { origin: bare.admin } });
  assert.equal(plain.status, 200);
  assert.doesNotMatch(plain.headers.get('vary') ?? '', /origin/i);
});

test('the reference page may fetch from the gateway (CSP connect-src); other pages may not', async () => {
  const page = await fetch(`${s.admin}/portal/reference.html`);
  assert.equal(page.status, 200);
  const csp = page.headers.get('content-security-policy');
  assert.match(csp, new RegExp(`connect-src 'self' ${s.gw.replace(/[.]/g, '\\.')};`));
  assert.match(csp, /script-src 'self'; style-src 'self';/);
  const app = await fetch(`${s.admin}/portal/app.html`);
  assert.match(app.headers.get('content-security-policy'), /connect-src 'self';/);
});

test('without portal.openapi: 404 reference_not_configured, no CORS, the page keeps the plain policy', async () => {
  const r = await fetch(`${bare.admin}/v1/reference`);
  assert.equal(r.status, 404);
  assert.equal((await r.json()).error.type, 'reference_not_configured');
  const c = await bare.customer('free');
  const call = await bare.call('/v1/basic/geocode?q=x', { key: c.key, headers: { origin: bare.admin } });
  assert.equal(call.headers.get('access-control-allow-origin'), null);
  const page = await fetch(`${bare.admin}/portal/reference.html`);
  assert.match(page.headers.get('content-security-policy'), /connect-src 'self';/);
  assert.equal((await fetch(`${s.admin}/v1/reference`, { method: 'POST' })).status, 405);
});

test('check-config reports a bad document at its line, after the key\'s', async () => {
  const bad = resolve(s.dir, 'bad-api.yaml');
  writeFileSync(bad, 'openapi: 3.0.0\ninfo: {title: x}\npaths:\n  /a:\n    get:\n      responses: {"200": {$ref: "#/components/x"}}\n');
  const cfg = readFileSync(s.config, 'utf8').replace(JSON.stringify(DEMO_DOC), 'bad-api.yaml');
  const file = resolve(s.dir, 'bad.yaml');
  writeFileSync(file, cfg);
  const line = cfg.split('\n').findIndex((l) => l.includes('bad-api.yaml')) + 1;
  const r = s.cli(['check-config', '-c', file]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr + r.stdout, new RegExp(`bad\\.yaml:${line}: portal\\.openapi: .*bad-api\\.yaml:6: \\$ref "#/components/x" does not resolve`));
});
