// notify_webhooks.test.mjs - issue 13 part A: webhook endpoints as an attack surface, against the
// real binary on loopback. Server-side request forgery (endpoints aimed at the owner's network,
// redirects, header injection through the URL), one customer's endpoints and deliveries reached
// by id from another account, and the sizes a customer controls.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { Stack, ADMIN_TOKEN, sleep } from '../integration/harness.mjs';

const rand = () => Math.random().toString(36).slice(2, 10);
const OPEN = `
notifications:
  allow_http: true
  allow_private_networks: ["127.0.0.0/8"]
  retry_base_ms: 50
  retry_cap_ms: 100
`;

async function req(s, method, path, { body, headers = {} } = {}) {
  const r = await fetch(s.admin + path, {
    method, headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text, setCookie: r.headers.get('set-cookie') || '' };
}

// A signed-up customer's session headers (cookie + CSRF token) and id.
async function account(s) {
  const r = await req(s, 'POST', '/v1/signup', { body: { email: `${rand()}@example.com`, password: 'webhook test pw 1', plan: 'free' } });
  assert.equal(r.status, 201, r.text);
  const me = await req(s, 'GET', '/v1/me', { headers: { cookie: r.setCookie.split(';')[0] } });
  return { id: me.json.id, h: { cookie: r.setCookie.split(';')[0], 'x-csrf-token': me.json.csrf_token } };
}

async function receiver(handler) {
  const got = [];
  const srv = createServer((rq, rs) => {
    rq.resume();
    rq.on('end', () => { got.push({ path: rq.url, headers: rq.headers }); handler(rq, rs); });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { got, url: `http://127.0.0.1:${srv.address().port}`, close: () => new Promise((r) => srv.close(r)) };
}

async function until(cond, what, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

test('API1:2023 broken object level authorization: another customer\'s endpoint, deliveries and events are 404 / invisible', async () => {
  const rx = await receiver((rq, rs) => { rs.writeHead(204); rs.end(); });
  const s = await new Stack({ extra: OPEN }).start();
  try {
    const a = await account(s), b = await account(s);
    const ep = await req(s, 'POST', '/v1/me/webhook-endpoints', { body: { url: `${rx.url}/a` }, headers: a.h });
    assert.equal(ep.status, 201, ep.text);
    const id = ep.json.id;
    await req(s, 'POST', '/v1/me/keys', { body: { name: 'k' }, headers: a.h });
    const d = await until(async () => (await req(s, 'GET', '/v1/me/webhook-deliveries', { headers: a.h })).json.data[0], 'a delivery');
    // B, by id: nothing to read, change, delete, rotate, test or resend
    for (const [m, p, body] of [['GET', `/v1/me/webhook-endpoints/${id}`], ['PATCH', `/v1/me/webhook-endpoints/${id}`, { url: 'https://evil.example/' }],
      ['DELETE', `/v1/me/webhook-endpoints/${id}`], ['POST', `/v1/me/webhook-endpoints/${id}/rotate-secret`],
      ['POST', `/v1/me/webhook-endpoints/${id}/test`], ['GET', `/v1/me/webhook-endpoints/${id}/deliveries`],
      ['GET', `/v1/me/webhook-deliveries/${d.id}`], ['POST', `/v1/me/webhook-deliveries/${d.id}/resend`]]) {
      const r = await req(s, m, p, { body, headers: b.h });
      assert.equal(r.status, 404, `${m} ${p}: ${r.text}`);
    }
    assert.equal((await req(s, 'GET', '/v1/me/webhook-endpoints', { headers: b.h })).json.data.length, 0);
    assert.equal((await req(s, 'GET', '/v1/me/webhook-deliveries', { headers: b.h })).json.data.length, 0);
    const bEvents = (await req(s, 'GET', '/v1/me/events', { headers: b.h })).json.data;
    assert.ok(bEvents.every((e) => e.customer_id === b.id), 'B sees only its own events');
    // A's endpoint was not changed by B; the owner's endpoints are not A's either
    assert.equal((await req(s, 'GET', `/v1/me/webhook-endpoints/${id}`, { headers: a.h })).json.url, `${rx.url}/a`);
    const owner = await s.adminCall('POST', '/v1/admin/webhook-endpoints', { url: `${rx.url}/owner` });
    assert.equal((await req(s, 'GET', `/v1/me/webhook-endpoints/${owner.json.id}`, { headers: a.h })).status, 404);
    // customers never receive the owner-only customer.* events, nor subscribe to them
    const bad = await req(s, 'POST', '/v1/me/webhook-endpoints', { body: { url: `${rx.url}/c`, events: ['customer.created'] }, headers: a.h });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error.message, /owner only/);
    assert.ok(rx.got.filter((g) => g.path === '/a').length >= 1);
    // without the session's CSRF token nothing changes
    const nocsrf = await req(s, 'POST', '/v1/me/webhook-endpoints', { body: { url: `${rx.url}/x` }, headers: { cookie: a.h.cookie } });
    assert.equal(nocsrf.status, 403);
  } finally {
    await s.stop();
    await rx.close();
  }
});

test('API7:2023 server side request forgery: metadata and private addresses refused at delivery, redirects not followed', async () => {
  const target = await receiver((rq, rs) => { rs.writeHead(204); rs.end(); });
  const redirector = await receiver((rq, rs) => { rs.writeHead(302, { location: `${target.url}/stolen` }); rs.end(); });
  const s = await new Stack({ extra: OPEN }).start();
  try {
    const a = await account(s);
    // 169.254.169.254 (cloud metadata) and 10.0.0.1: plainly URLs, refused once resolved
    for (const url of ['http://169.254.169.254/latest/meta-data/', 'http://10.0.0.1:9/', 'http://[::ffff:169.254.169.254]/',
      'http://0x7f000001.nip.invalid/']) {
      const ep = await req(s, 'POST', '/v1/me/webhook-endpoints', { body: { url }, headers: a.h });
      assert.equal(ep.status, 201, ep.text);
      assert.equal((await req(s, 'POST', `/v1/me/webhook-endpoints/${ep.json.id}/test`, { headers: a.h })).status, 202);
      const d = await until(async () => {
        const l = await req(s, 'GET', `/v1/me/webhook-endpoints/${ep.json.id}/deliveries`, { headers: a.h });
        return l.json.data[0]?.attempts > 0 ? l.json.data[0] : null;
      }, `an attempt to ${url}`);
      assert.match(d.last_error, /refused|cannot resolve/, url);
      assert.equal(d.last_status, 0);
      await req(s, 'DELETE', `/v1/me/webhook-endpoints/${ep.json.id}`, { headers: a.h });
    }
    // a redirect to an allowed address is still not followed: the 302 is the answer
    const ep = await req(s, 'POST', '/v1/me/webhook-endpoints', { body: { url: `${redirector.url}/r` }, headers: a.h });
    await req(s, 'POST', `/v1/me/webhook-endpoints/${ep.json.id}/test`, { headers: a.h });
    const d = await until(async () => {
      const l = await req(s, 'GET', `/v1/me/webhook-endpoints/${ep.json.id}/deliveries`, { headers: a.h });
      return l.json.data[0]?.attempts > 0 ? l.json.data[0] : null;
    }, 'the redirected attempt');
    assert.equal(d.last_status, 302);
    assert.equal(d.state, 'pending', 'a 3xx is not delivered');
    assert.equal(target.got.length, 0, 'the redirect target was never called');
    // the request carries only our headers: nothing the customer wrote
    assert.ok(redirector.got[0].headers['webhook-id'].startsWith('msg_'));
  } finally {
    await s.stop();
    await target.close();
    await redirector.close();
  }
});

test('API7:2023 server side request forgery: header injection and odd URLs are refused at creation with invalid_webhook_url', async () => {
  const s = await new Stack({}).start();
  try {
    const a = await account(s);
    for (const url of ['https://hooks.example.com/\r\nX-Injected: 1', 'https://hooks.example.com/a\nb', 'https://a b.example/',
      'https://user:pw@hooks.example.com/', 'http://hooks.example.com/', 'gopher://hooks.example.com/', 'file:///etc/passwd',
      'https://[fe80::1%25eth0]/', 'javascript:alert(1)', '']) {
      const r = await req(s, 'POST', '/v1/me/webhook-endpoints', { body: { url }, headers: a.h });
      assert.equal(r.status, 400, `${JSON.stringify(url)}: ${r.text}`);
      assert.equal(r.json.error.type, 'invalid_webhook_url', url);
    }
    const r = await s.adminCall('POST', '/v1/admin/webhook-endpoints', { url: 'https://ok.example/\u0000x' });
    assert.equal(r.status, 400);
  } finally {
    await s.stop();
  }
});

test('API4:2023 unrestricted resource consumption: URL length and the number of endpoints are capped', async () => {
  const s = await new Stack({}).start();
  try {
    const a = await account(s);
    const long = `https://hooks.example.com/${'a'.repeat(3000)}`;
    const r = await req(s, 'POST', '/v1/me/webhook-endpoints', { body: { url: long }, headers: a.h });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.type, 'invalid_webhook_url');
    assert.match(r.json.error.message, /longer than 2047/);
    const many = await req(s, 'POST', '/v1/me/webhook-endpoints', { body: { url: 'https://hooks.example.com/', events: Array(500).fill('key.created') }, headers: a.h });
    assert.equal(many.status, 201, 'repeats collapse');
    assert.deepEqual(many.json.events, ['key.created']);
    for (let i = 1; i < 10; i++)
      assert.equal((await req(s, 'POST', '/v1/me/webhook-endpoints', { body: { url: `https://hooks.example.com/${i}` }, headers: a.h })).status, 201);
    const over = await req(s, 'POST', '/v1/me/webhook-endpoints', { body: { url: 'https://hooks.example.com/11' }, headers: a.h });
    assert.equal(over.status, 409);
    assert.equal(over.json.error.type, 'webhook_endpoint_limit');
    // the secret is in the create answer only
    const list = await req(s, 'GET', '/v1/me/webhook-endpoints', { headers: a.h });
    assert.ok(list.json.data.every((e) => e.secret === undefined));
    assert.equal((await req(s, 'GET', '/v1/admin/webhook-endpoints', { headers: { authorization: 'Bearer wrong' } })).status, 401);
    assert.equal((await req(s, 'GET', '/v1/admin/events', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).status, 200);
  } finally {
    await s.stop();
  }
});
