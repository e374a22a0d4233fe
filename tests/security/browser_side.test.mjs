// browser_side.test.mjs - issue 10 item 8: what the admin port tells browsers (headers, cookies,
// CSP), the owner's dashboard session, cross-site requests, /metrics, and the static server's
// symlinks, against the real binary on loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Stack, ADMIN_TOKEN } from '../integration/harness.mjs';

const root = resolve(new URL('../..', import.meta.url).pathname);
const rand = () => Math.random().toString(36).slice(2, 10);

async function withStack(opts, fn) {
  const s = await new Stack(opts).start();
  try { await fn(s); } finally { await s.stop(); }
}

async function req(s, method, path, { body, headers = {}, raw } = {}) {
  const r = await fetch(s.admin + path, {
    method, headers: { ...(body !== undefined && !raw ? { 'content-type': 'application/json' } : {}), ...headers },
    body: raw !== undefined ? raw : body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text, headers: r.headers, setCookie: r.headers.get('set-cookie') || '' };
}

// ---- API8: security misconfiguration ----

test('API8:2023 security misconfiguration: every page and API answer carries CSP (no inline script), nosniff, Referrer-Policy, frame-ancestors none', async () => {
  await withStack({}, async (s) => {
    const paths = [['GET', '/portal/'], ['GET', '/portal/app.html'], ['GET', '/admin/'], ['GET', '/admin/customer.html'],
      ['GET', '/portal/index.js'], ['GET', '/healthz'], ['GET', '/v1/plans'], ['GET', '/v1/me'], ['GET', '/nope'],
      ['GET', '/v1/admin/customers'], ['POST', '/v1/login'], ['GET', '/admin/customers.html'], ['GET', '/admin/invoices.html'],
      ['GET', '/v1/admin/export/customers.csv']];
    for (const [m, p] of paths) {
      const r = await req(s, m, p, m === 'POST' ? { body: {} } : {});
      const csp = r.headers.get('content-security-policy') || '';
      assert.match(csp, /default-src 'self'/, `${p}: CSP`);
      assert.match(csp, /script-src 'self'(;|$)/, `${p}: scripts from files of this origin only`);
      assert.doesNotMatch(csp, /unsafe-inline'[^;]*;?\s*$|script-src[^;]*unsafe/, `${p}: no unsafe script source`);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.match(csp, /object-src 'none'/);
      assert.match(csp, /base-uri 'none'/);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', p);
      assert.match(r.headers.get('referrer-policy') || '', /^(no-referrer|same-origin|strict-origin)/, p);
    }
  });
});

test('API8:2023 security misconfiguration: pages have no inline script, handler or style, and the dashboard loads none of the portal\'s scripts', async () => {
  await withStack({}, async (s) => {
    for (const p of ['/portal/', '/portal/app.html', '/admin/', '/admin/customer.html', '/admin/customers.html', '/admin/invoices.html']) {
      const html = (await req(s, 'GET', p)).text;
      assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i, `${p}: inline <script>`);
      assert.doesNotMatch(html, /\son[a-z]+\s*=/i, `${p}: inline event handler`);
      assert.doesNotMatch(html, /\sstyle\s*=/i, `${p}: inline style attribute`);
    }
    for (const p of ['/admin/', '/admin/customer.html', '/admin/customers.html', '/admin/invoices.html']) {
      const html = (await req(s, 'GET', p)).text;
      for (const [, src] of html.matchAll(/<script[^>]*\bsrc="([^"]+)"/g)) assert.match(src, /^\/admin\//, `${p} loads ${src}`);
    }
    for (const p of ['/admin/admin.js', '/admin/customer.js', '/admin/lib.js', '/admin/customers.js', '/admin/invoices.js']) {
      const js = (await req(s, 'GET', p)).text;
      assert.doesNotMatch(js, /from\s+'\/portal\//, `${p} imports the portal's scripts`);
      assert.doesNotMatch(js, /sessionStorage|localStorage/, `${p} keeps something in web storage`);
    }
  });
});

test('API8:2023 security misconfiguration: /metrics needs a token unless metrics.open', async () => {
  await withStack({ metrics: '{token: "scraper-token-0123456789"}' }, async (s) => {
    const none = await req(s, 'GET', '/metrics');
    assert.equal(none.status, 401);
    assert.doesNotMatch(none.text, /tollgate_/);
    assert.equal((await req(s, 'GET', '/metrics', { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status, 401);
    const scraper = await req(s, 'GET', '/metrics', { headers: { authorization: 'Bearer scraper-token-0123456789' } });
    assert.equal(scraper.status, 200);
    assert.match(scraper.text, /tollgate_requests_total/);
    assert.equal((await req(s, 'GET', '/metrics', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).status, 200);
  });
  await withStack({ metrics: '{open: true}' }, async (s) => {
    assert.equal((await req(s, 'GET', '/metrics')).status, 200);
  });
});

test('API8:2023 security misconfiguration: the static server does not follow symlinks out of the web root', async () => {
  const web = mkdtempSync(join(tmpdir(), 'tollgate-web-'));
  cpSync(resolve(root, 'web'), web, { recursive: true });
  writeFileSync(join(web, 'portal', 'plain.js'), '// a regular file\n');
  symlinkSync('/etc/passwd', join(web, 'portal', 'passwd.js'));
  symlinkSync('/etc', join(web, 'portal', 'etc'));
  symlinkSync(join(web, 'portal', 'plain.js'), join(web, 'portal', 'inside.js')); // even inside the root: not served
  const saved = process.env.TOLLGATE_WEB_ROOT;
  process.env.TOLLGATE_WEB_ROOT = web;
  try {
    await withStack({}, async (s) => {
      assert.equal((await req(s, 'GET', '/portal/plain.js')).status, 200);
      for (const p of ['/portal/passwd.js', '/portal/etc/passwd', '/portal/etc/hostname', '/portal/inside.js']) {
        const r = await req(s, 'GET', p);
        assert.equal(r.status, 404, p);
        assert.doesNotMatch(r.text, /root:/);
      }
    });
  } finally {
    if (saved === undefined) delete process.env.TOLLGATE_WEB_ROOT; else process.env.TOLLGATE_WEB_ROOT = saved;
    rmSync(web, { recursive: true, force: true });
  }
});

test('API8:2023 security misconfiguration: session cookies are Secure behind a trusted proxy that says https, and only then', async () => {
  await withStack({ trustedProxies: ['127.0.0.1'] }, async (s) => {
    const origin = `https://127.0.0.1:${s.adminPort}`;
    const a = await req(s, 'POST', '/v1/signup', { body: { email: `${rand()}@example.com`, password: 'secure cookie pw', plan: 'free' },
      headers: { 'x-forwarded-proto': 'https', origin } });
    assert.equal(a.status, 201);
    assert.match(a.setCookie, /; Secure/);
    assert.match(a.setCookie, /HttpOnly/);
    const o = await req(s, 'POST', '/v1/admin/session', { body: { token: ADMIN_TOKEN }, headers: { 'x-forwarded-proto': 'https', origin } });
    assert.match(o.setCookie, /^tg_admin=.*; Secure/);
    const b = await req(s, 'POST', '/v1/signup', { body: { email: `${rand()}@example.com`, password: 'plain http pw', plan: 'free' } });
    assert.doesNotMatch(b.setCookie, /Secure/);
  });
  await withStack({}, async (s) => { // the peer is not a trusted proxy: its X-Forwarded-Proto means nothing
    const c = await req(s, 'POST', '/v1/signup', { body: { email: `${rand()}@example.com`, password: 'untrusted proxy pw', plan: 'free' },
      headers: { 'x-forwarded-proto': 'https' } });
    assert.equal(c.status, 201);
    assert.doesNotMatch(c.setCookie, /Secure/);
  });
});

// ---- API2: broken authentication (cross-site requests, the owner's session) ----

test('API2:2023 broken authentication: sign-up, sign-in and other portal state changes refuse a foreign Origin or Referer and non-JSON bodies', async () => {
  await withStack({}, async (s) => {
    const own = `http://127.0.0.1:${s.adminPort}`;
    const email = `${rand()}@example.com`;
    const body = { email, password: 'cross site password', plan: 'free' };
    let r = await req(s, 'POST', '/v1/signup', { body, headers: { origin: 'https://evil.example' } });
    assert.equal(r.status, 403);
    assert.equal(r.json.error.type, 'origin_refused');
    r = await req(s, 'POST', '/v1/signup', { body, headers: { referer: 'https://evil.example/form.html' } });
    assert.equal(r.status, 403);
    r = await req(s, 'POST', '/v1/signup', { raw: JSON.stringify(body), headers: { 'content-type': 'text/plain' } });
    assert.equal(r.status, 415);
    assert.equal(r.json.error.type, 'unsupported_media_type');
    r = await req(s, 'POST', '/v1/signup', { raw: JSON.stringify(body), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(r.status, 415);
    assert.equal((await req(s, 'GET', '/v1/admin/customers', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json.data.length, 0);
    r = await req(s, 'POST', '/v1/signup', { body, headers: { origin: own } });
    assert.equal(r.status, 201);
    // login CSRF: a foreign page cannot sign the browser in to an account
    r = await req(s, 'POST', '/v1/login', { body: { email, password: 'cross site password' }, headers: { origin: 'http://127.0.0.1:1' } });
    assert.equal(r.status, 403);
    r = await req(s, 'POST', '/v1/login', { body: { email, password: 'cross site password' }, headers: { referer: `${own}/portal/` } });
    assert.equal(r.status, 200);
    const h = { cookie: r.setCookie.split(';')[0], 'x-csrf-token': r.json.csrf_token };
    assert.equal((await req(s, 'POST', '/v1/me/keys', { body: { name: 'x' }, headers: { ...h, origin: 'https://evil.example' } })).status, 403);
    assert.equal((await req(s, 'POST', '/v1/me/keys', { body: { name: 'x' }, headers: { ...h, origin: own } })).status, 201);
  });
});

test('API2:2023 broken authentication: the owner signs in to an HttpOnly, SameSite=Strict cookie for /v1/admin with CSRF and sign-out; Bearer still works', async () => {
  await withStack({}, async (s) => {
    assert.equal((await req(s, 'POST', '/v1/admin/session', { body: { token: 'not-the-admin-token-000' } })).status, 401);
    const si = await req(s, 'POST', '/v1/admin/session', { body: { token: ADMIN_TOKEN } });
    assert.equal(si.status, 200);
    assert.match(si.setCookie, /^tg_admin=[^;]{20,}; Path=\/v1\/admin; Max-Age=\d+; HttpOnly; SameSite=Strict/);
    assert.ok(!si.text.includes(ADMIN_TOKEN));
    const cookie = si.setCookie.split(';')[0];
    const csrf = si.json.csrf_token;
    assert.equal((await req(s, 'GET', '/v1/admin/dashboard', { headers: { cookie } })).status, 200);
    assert.equal((await req(s, 'GET', '/v1/admin/session', { headers: { cookie } })).json.csrf_token, csrf);
    // a state change with the cookie needs the CSRF token (and the own origin)
    const body = { email: `${rand()}@example.com`, plan: 'free' };
    const no = await req(s, 'POST', '/v1/admin/customers', { body, headers: { cookie } });
    assert.equal(no.status, 403);
    assert.equal(no.json.error.type, 'csrf_failed');
    assert.equal((await req(s, 'POST', '/v1/admin/customers', { body, headers: { cookie, 'x-csrf-token': csrf, origin: 'https://evil.example' } })).status, 403);
    assert.equal((await req(s, 'POST', '/v1/admin/customers', { body, headers: { cookie, 'x-csrf-token': csrf } })).status, 201);
    // a portal session cookie is no admin session
    const dev = await req(s, 'POST', '/v1/signup', { body: { email: `${rand()}@example.com`, password: 'developer password', plan: 'free' } });
    assert.equal((await req(s, 'GET', '/v1/admin/dashboard', { headers: { cookie: dev.setCookie.split(';')[0] } })).status, 401);
    // sign out: the cookie stops working
    const so = await req(s, 'DELETE', '/v1/admin/session', { headers: { cookie, 'x-csrf-token': csrf } });
    assert.equal(so.status, 200);
    assert.match(so.setCookie, /^tg_admin=; Path=\/v1\/admin; Max-Age=0/);
    assert.equal((await req(s, 'GET', '/v1/admin/dashboard', { headers: { cookie } })).status, 401);
    assert.equal((await req(s, 'GET', '/v1/admin/session', { headers: { cookie } })).json.signed_in, false);
    // the CLI's way
    assert.equal((await req(s, 'GET', '/v1/admin/dashboard', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).status, 200);
  });
});
