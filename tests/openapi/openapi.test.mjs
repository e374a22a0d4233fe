// docs/openapi.yaml against the real binary (tests/openapi/: its validator comes from the npm
// registry, tests/openapi/package.json).
//
// 1. The document is valid OpenAPI 3.1 (@seriousme/openapi-schema-validator), and GET
//    /openapi.json on the admin listener serves exactly it.
// 2. Every documented path and method exists: called on a running server (admin token, a portal
//    session and its CSRF token, every optional part on: stripe, email, the test clock), none
//    answers 405 or 404 route_not_found; and a 2xx answer that the document describes matches its
//    schema (ajv, JSON Schema 2020-12 as OpenAPI 3.1 uses it).
// 3. Nothing undocumented answers: every path segment that the routing code in src/admin/*.c
//    compares with (tg_adm_seg_is(..., "word")) appears in some documented path, and every
//    method on every documented path, and every such word appended to every documented path and
//    prefix (as a fixed segment or in a parameter's place), answers 405 or 404 route_not_found
//    unless the document lists that path and method. The server's routes are if-chains, not a
//    table, so there is no list to compare with: the probes ask the binary itself.
//
// The decision API (x-listener: gateway on its path) is on the gateway listener: its operations
// are called there (with decide: configured and its token), and probed on the admin listener as
// undocumented there. So is the usage events API (events: configured; the probes' Bearer token is
// also its ingest token, so a probe reaches its body checks).
//
// Adding a route: add its path and method to docs/openapi.yaml (and, for a new path parameter,
// its probe value under x-probe); `make` rebuilds /openapi.json.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Validator } from '@seriousme/openapi-schema-validator';
import Ajv2020 from 'ajv/dist/2020.js';
import { Stack, ADMIN_TOKEN } from '../integration/harness.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DOC = join(root, 'docs/openapi.yaml');
const METHODS = ['get', 'post', 'put', 'patch', 'delete'];
// The pages (web/, served as files) are not an API: tests/e2e covers them.
const PAGE_PREFIXES = ['/portal', '/admin'];
const PASSWORD = 'openapi-route-probe-9';
const DECIDE_TOKEN = 'openapi-decide-token-0123456789';

let stack, spec, resolved, fx;

// Every word the routing code compares a path segment with.
function routeWords() {
  const words = new Set();
  const dir = join(root, 'src/admin');
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.c'))) {
    const src = readFileSync(join(dir, f), 'utf8');
    for (const m of src.matchAll(/tg_adm_seg_is\([^,]+,[^,]+,\s*"([^"]+)"\s*\)/g)) words.add(m[1]);
  }
  return [...words].sort();
}

// The documented operations: [{template, method, op, re}] (re: the template with each {param}
// as one segment).
function operations() {
  const ops = [];
  for (const [template, item] of Object.entries(spec.paths)) {
    const re = new RegExp(`^${template.replace(/[.]/g, '\\.').replace(/\{[^}]+\}/g, '[^/]+')}$`);
    const listener = item['x-listener'] || 'admin';
    for (const method of METHODS) if (item[method]) ops.push({ template, method, op: item[method], re, listener });
  }
  return ops;
}

function documented(ops, path, method, listener = 'admin') {
  return ops.some((o) => o.method === method && o.listener === listener && o.re.test(path));
}

// The template with each parameter replaced by its x-probe value (@name: an object made below).
function concrete(template) {
  return template.replace(/\{([^}]+)\}/g, (_, name) => {
    const v = spec['x-probe'][name];
    assert.ok(v !== undefined, `${template}: no x-probe value for {${name}} in docs/openapi.yaml`);
    if (!String(v).startsWith('@')) return encodeURIComponent(v);
    const side = template.startsWith('/v1/me/') ? fx.me : fx.admin;
    const id = side[v.slice(1)];
    assert.ok(id, `${template}: no ${v} object for this side`);
    return encodeURIComponent(id);
  });
}

// One call with every credential: the admin token, the portal session's cookie and CSRF token.
// No Origin: non-browser clients pass the origin checks.
async function call(method, path, body, listener = 'admin') {
  const r = await fetch((listener === 'gateway' ? stack.gw : stack.admin) + path, {
    method: method.toUpperCase(),
    headers: {
      authorization: `Bearer ${ADMIN_TOKEN}`, cookie: fx.cookie, 'x-csrf-token': fx.csrf,
      'content-type': 'application/json', 'x-tollgate-token': DECIDE_TOKEN,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text, type: r.headers.get('content-type') || '' };
}

const noRoute = (r) => r.status === 405 || (r.status === 404 && r.json?.error?.type === 'route_not_found');

async function inBatches(items, n, fn) {
  for (let i = 0; i < items.length; i += n) await Promise.all(items.slice(i, i + n).map(fn));
}

before(async () => {
  const validator = new Validator();
  const v = await validator.validate(DOC);
  assert.equal(v.valid, true, `docs/openapi.yaml is not valid OpenAPI: ${JSON.stringify(v.errors, null, 2)}`);
  assert.equal(validator.version, '3.1');
  spec = structuredClone(validator.specification); // resolveRefs inlines the $refs in place
  resolved = validator.resolveRefs();
  stack = await new Stack({
    testClock: true,
    // portal.openapi: GET /v1/reference answers 200 (the demo upstream's document)
    portal: `{openapi: ${JSON.stringify(join(root, 'examples/demo-upstream.openapi.yaml'))}, signup: {per_address: 1000/hour, global: 10000/hour, trial_address_days: 0}}`,
    // every optional part on, so that its routes answer; nothing listens on port 9 (the mail and
    // the Stripe calls queue and retry, unseen by these tests)
    extra: `stripe: {secret_key: "sk_test_openapi_0123456789", webhook_secret: "whsec_openapi_0123456789", api_base: "http://127.0.0.1:9"}
email: {smtp_url: "smtp://127.0.0.1:9", from: "Billing <billing@example.com>"}
decide: {token: "${DECIDE_TOKEN}"}
events: {tokens: [{name: probe, token: "${ADMIN_TOKEN}"}]}`,
  }).start();
  // The portal side: a customer signed up with a session, its key and a webhook endpoint.
  fx = { cookie: '', csrf: '', admin: { plan: 'starter' }, me: { plan: 'starter' } };
  const email = `probe-${Date.now()}@example.com`;
  const su = await fetch(`${stack.admin}/v1/signup`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, company: 'Probe', password: PASSWORD, plan: 'starter' }),
  });
  const suj = await su.json();
  assert.equal(su.status, 201, JSON.stringify(suj));
  fx.cookie = su.headers.get('set-cookie').split(';')[0];
  fx.csrf = suj.csrf_token;
  fx.me.customer = fx.admin.customer = suj.customer.id;
  fx.me.key = fx.admin.key = suj.key.id;
  const mine = await call('post', '/v1/me/webhook-endpoints', { url: 'https://hooks.example.com/me' });
  assert.equal(mine.status, 201, mine.text);
  fx.me.endpoint = mine.json.id;
  const owners = await call('post', '/v1/admin/webhook-endpoints', { url: 'https://hooks.example.com/owner' });
  assert.equal(owners.status, 201, owners.text);
  fx.admin.endpoint = owners.json.id;
  for (const side of ['me', 'admin']) {
    const prefix = side === 'me' ? '/v1/me' : '/v1/admin';
    const t = await call('post', `${prefix}/webhook-endpoints/${fx[side].endpoint}/test`);
    assert.equal(t.status, 202, t.text);
    const d = await call('get', `${prefix}/webhook-endpoints/${fx[side].endpoint}/deliveries`);
    assert.equal(d.status, 200, d.text);
    fx[side].delivery = d.json.data[0].id;
  }
  // An invoice: a period ends (test clock), the run drafts it, finalizing shows it in the portal.
  assert.equal((await call('post', '/v1/admin/clock', { advance_seconds: 40 * 86400 })).status, 200);
  const run = await call('post', '/v1/admin/invoices/run', { customer: fx.admin.customer });
  assert.equal(run.status, 200, run.text);
  const inv = await call('get', `/v1/admin/invoices?customer=${fx.admin.customer}`);
  assert.ok(inv.json.data.length > 0, inv.text);
  fx.me.invoice = fx.admin.invoice = inv.json.data[0].id;
  const fin = await call('post', `/v1/admin/invoices/${fx.admin.invoice}/finalize`);
  assert.equal(fin.status, 200, fin.text);
  // 40 days on, the sign-up's session (7 days) has expired: a new one
  const li = await fetch(`${stack.admin}/v1/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password: PASSWORD }),
  });
  const lij = await li.json();
  assert.equal(li.status, 200, JSON.stringify(lij));
  fx.cookie = li.headers.get('set-cookie').split(';')[0];
  fx.csrf = lij.csrf_token;
});

after(async () => { await stack?.stop(); });

test('docs/openapi.yaml is valid OpenAPI 3.1 and GET /openapi.json on the admin listener serves it', async () => {
  const r = await fetch(`${stack.admin}/openapi.json`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  const served = await r.json();
  assert.deepEqual(served, JSON.parse(JSON.stringify(spec)), 'the served document differs from docs/openapi.yaml');
  const v = await new Validator().validate(served);
  assert.equal(v.valid, true, JSON.stringify(v.errors));
  assert.equal((await fetch(`${stack.admin}/openapi.json`, { method: 'POST' })).status, 405);
});

test('every word the routing code compares a path segment with is in a documented path', () => {
  const segments = new Set(Object.keys(spec.paths).flatMap((p) => p.split('/')));
  const missing = routeWords().filter((w) => !segments.has(w));
  assert.deepEqual(missing, [], `src/admin/*.c routes on these segments, which no path of docs/openapi.yaml has: ${missing.join(', ')}`);
});

test('routes undocumented in docs/openapi.yaml do not answer (every method on every path; every route word after every path)', async (t) => {
  const ops = operations();
  const words = routeWords();
  const paths = [...new Set(Object.keys(spec.paths).map(concrete))];
  const bases = new Set(['']);
  for (const p of paths) {
    const segs = p.split('/');
    for (let i = 2; i <= segs.length; i++) bases.add(segs.slice(0, i).join('/'));
  }
  const candidates = new Set(paths);
  for (const b of bases) for (const w of words) candidates.add(`${b}/${w}`);
  const probes = [];
  for (const p of candidates) {
    if (PAGE_PREFIXES.some((x) => p === x || p.startsWith(`${x}/`))) continue;
    // the sign-out routes end the probes' session: their other methods are checked last
    for (const m of METHODS) if (!documented(ops, p, m)) probes.push([m, p]);
  }
  const answered = [];
  const signOut = (p) => p.startsWith('/v1/logout');
  await inBatches(probes.filter(([, p]) => !signOut(p)), 16, async ([m, p]) => {
    const r = await call(m, p);
    if (!noRoute(r)) answered.push(`${m.toUpperCase()} ${p} -> ${r.status} ${r.text.slice(0, 120)}`);
  });
  for (const [m, p] of probes.filter(([, q]) => signOut(q))) {
    const r = await call(m, p);
    if (!noRoute(r)) answered.push(`${m.toUpperCase()} ${p} -> ${r.status} ${r.text.slice(0, 120)}`);
  }
  // the gateway listener's documented paths: their other methods answer nothing
  for (const p of [...new Set(ops.filter((o) => o.listener === 'gateway').map((o) => concrete(o.template)))]) {
    for (const m of METHODS) {
      if (documented(ops, p, m, 'gateway')) continue;
      probes.push([m, p]);
      const r = await call(m, p, undefined, 'gateway');
      if (!noRoute(r)) answered.push(`gateway ${m.toUpperCase()} ${p} -> ${r.status} ${r.text.slice(0, 120)}`);
    }
  }
  t.diagnostic(`${probes.length} probes of undocumented paths and methods`);
  assert.ok(probes.length > 1000, `${probes.length} probes`);
  assert.deepEqual(answered.sort(), [], `routes that answer but are not in docs/openapi.yaml:\n${answered.join('\n')}`);
});

test('every documented path and method exists on the server, and its 2xx answers match the documented schema', async () => {
  const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
  const ops = operations();
  // Reads first, then changes, deletions, and the sign-outs last (they end the probes' session).
  const rank = (o) => (o.template.startsWith('/v1/logout') ? 4 : o.method === 'get' ? 0 : o.method === 'delete' ? 2 : 1);
  ops.sort((a, b) => rank(a) - rank(b));
  const missing = [], mismatched = [];
  for (const o of ops) {
    const path = concrete(o.template);
    const r = await call(o.method, path, undefined, o.listener);
    if (noRoute(r)) {
      missing.push(`${o.method.toUpperCase()} ${o.template} (${path}) -> ${r.status} ${r.text.slice(0, 120)}`);
      continue;
    }
    const declared = resolved.paths[o.template][o.method].responses[String(r.status)];
    const schema = declared?.content?.['application/json']?.schema;
    if (r.status >= 200 && r.status < 300 && schema && r.type.startsWith('application/json')) {
      const validate = ajv.compile(schema);
      if (!validate(r.json))
        mismatched.push(`${o.method.toUpperCase()} ${o.template} ${r.status}: ${ajv.errorsText(validate.errors)}\n  ${r.text.slice(0, 300)}`);
    }
  }
  assert.deepEqual(missing, [], `documented in docs/openapi.yaml but not answered by the server:\n${missing.join('\n')}`);
  assert.deepEqual(mismatched, [], `answers that do not match their documented schema:\n${mismatched.join('\n')}`);
});
