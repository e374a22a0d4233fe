// upstream_identity.test.mjs - what an upstream behind tollgate can rely on (issue 10, item 1):
// exactly one X-Tollgate-Customer with the true customer, never the key, forwarding headers
// written by tollgate alone, whatever the client sends; and no rate-limit, quota or cookie
// headers from the upstream next to tollgate's own. The upstream is a raw TCP server that
// echoes every header line it received, so the test sees the bytes an upstream would read,
// including under CGI/WSGI/PHP/Rack name folding ('-', '_' and '.' alike, any case).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Stack } from '../integration/harness.mjs';
import { echoUpstream, exchange } from './rawhttp.mjs';

// How CGI-style upstreams read a header name: case-insensitive, '-', '_' and '.' the same.
const fold = (name) => name.trim().toLowerCase().replace(/[^a-z0-9]/g, '-');
const seen = (lines, name) => lines.filter((l) => fold(l.slice(0, l.indexOf(':'))) === name)
  .map((l) => l.slice(l.indexOf(':') + 1).trim());

async function withEcho(opts, fn, stackOpts = {}) {
  const up = await echoUpstream(opts);
  let s;
  try {
    s = await new Stack({ noUpstream: true, upstreamPort: up.port, ...stackOpts }).start();
    const pro = await s.customer('pro');
    const other = await s.customer('enterprise');
    await fn({ s, up, pro, other });
  } finally {
    await up.close();
    if (s) await s.stop();
  }
}

// A GET with Host first, then `lines` (Host last when `hostLast`, so a line can be the first).
const request = (s, lines, path = '/v1/echo', hostLast = false) => {
  const host = `Host: 127.0.0.1:${s.gwPort}`;
  return `GET ${path} HTTP/1.1\r\n${(hostLast ? [...lines, host] : [host, ...lines]).map((l) => `${l}\r\n`).join('')}\r\n`;
};

test('API8:2023 security misconfiguration: the upstream sees exactly one true X-Tollgate-Customer and never the key, whatever the client sends', async () => {
  await withEcho({}, async ({ s, up, pro, other }) => {
    const auth = `Authorization: Bearer ${pro.key}`;
    const attacks = {
      'Connection naming the identity headers': [auth, 'Connection: X-Tollgate-Customer, X-Tollgate-Plan, X-Tollgate-Key-Id, X-Forwarded-For, Forwarded, X-Forwarded-Proto'],
      'Connection naming them, in two fields and another case': [auth, 'Connection: keep-alive', 'connection: x-tollgate-customer,x-tollgate-plan'],
      'underscore variants': [auth, `X_Tollgate_Customer: ${other.customer.id}`, 'x_tollgate_plan: enterprise'],
      'dot and mixed-case variants': [auth, `X.Tollgate.Customer: ${other.customer.id}`, 'X-TOLLGATE_plan: enterprise'],
      'duplicates': [auth, `X-Tollgate-Customer: ${other.customer.id}`, `x-tollgate-customer: ${other.customer.id}`, 'X-Tollgate-Plan: enterprise'],
      'underscore variants named by Connection': [auth, 'Connection: X_Tollgate_Customer', `X_Tollgate_Customer: ${other.customer.id}`],
      'key in an underscore header too': [auth, `X_API_Key: ${pro.key}`, `x-api_key: ${pro.key}`],
      'key in X-API-Key, and repeated in Authorization variants': [`X-API-Key: ${pro.key}`, `AUTHORIZATION: Bearer ${pro.key}`,
        `Connection: Authorization, X-API-Key`],
      'forged forwarding headers': [auth, 'X-Forwarded-For: 203.0.113.7', 'X_Forwarded_For: 203.0.113.8', 'Forwarded: for=203.0.113.9',
        'X-Forwarded-Host: evil.example', 'X-Real-IP: 203.0.113.10', 'X-Forwarded-Proto: https'],
    };
    const problems = [];
    for (const [name, lines] of Object.entries(attacks)) {
      const before = up.reqs.length;
      const r = await exchange(s.gwPort, request(s, lines));
      if (r.status !== 200) { problems.push(`${name}: status ${r.status} ${r.body}`); continue; }
      if (up.reqs.length !== before + 1) { problems.push(`${name}: the upstream got ${up.reqs.length - before} requests`); continue; }
      const got = r.body.toString('latin1').split('\n');
      const want = (hdr, value) => {
        const v = seen(got, hdr);
        if (v.length !== 1 || v[0] !== value) problems.push(`${name}: upstream saw ${hdr} = ${JSON.stringify(v)}, want [${value}]`);
      };
      want('x-tollgate-customer', pro.customer.id);
      want('x-tollgate-plan', 'pro');
      want('x-tollgate-key-id', pro.keyId);
      want('x-forwarded-for', '127.0.0.1');
      want('x-forwarded-proto', 'http');
      want('forwarded', 'proto=http;for=127.0.0.1;host="127.0.0.1:' + s.gwPort + '"');
      if (seen(got, 'x-real-ip').length !== 0) problems.push(`${name}: X-Real-IP reached the upstream`);
      if (got.some((l) => l.includes(pro.key))) problems.push(`${name}: the key reached the upstream`);
      if (seen(got, 'authorization').length + seen(got, 'x-api-key').length !== 0) problems.push(`${name}: a key header reached the upstream`);
    }
    assert.deepEqual(problems, []);
  });
});

test('API8:2023 security misconfiguration: header names that are not tokens, and folded lines, are refused and never forwarded', async () => {
  await withEcho({}, async ({ s, up, pro }) => {
    const auth = `Authorization: Bearer ${pro.key}`;
    const cases = {
      'leading space (obs-fold of the previous line)': [auth, ' X-Tollgate-Customer: cus_evil'],
      'tab continuation': [auth, 'X-Note: a', '\tX-Tollgate-Customer: cus_evil'],
      'space before the colon': [auth, 'X-Tollgate-Customer : cus_evil'],
      'space inside the name': [auth, 'X-Tollgate Customer: cus_evil'],
      'a leading space on the first header': [' X-Tollgate-Customer: cus_evil', auth],
    };
    const problems = [];
    for (const [name, lines] of Object.entries(cases)) {
      const before = up.reqs.length;
      const r = await exchange(s.gwPort, request(s, lines, '/v1/echo', name.includes('first header')), { expectClose: true });
      if (r.status !== 400) problems.push(`${name}: status ${r.status}, want 400`);
      if (!r.closed) problems.push(`${name}: connection left open`);
      if (up.reqs.length !== before) problems.push(`${name}: the upstream received the request`);
    }
    assert.deepEqual(problems, []);
  });
});

test('API10:2023 unsafe consumption of APIs: the upstream cannot set rate-limit, quota, Retry-After or tollgate cookie headers', async () => {
  const evil = ['X-RateLimit-Limit: 999999', 'X-RateLimit-Remaining: 999999', 'X_RateLimit_Reset: 1', 'RateLimit-Policy: "x";q=1;w=1',
    'RateLimit: "x";r=9;t=1', 'X-Quota-Remaining: 123456789', 'X-Quota-Reset: 1', 'Retry-After: 77',
    'Set-Cookie: tg_session=forged; Path=/', 'Set-Cookie: __Host-tg_session=forged; Path=/; Secure',
    'Set-Cookie: __Secure-TG_SESSION=forged; Secure', 'Set-Cookie: app=fine; Path=/'];
  await withEcho({ headers: () => evil, status: (req) => (req.start.includes('/v1/busy') ? '429 Too Many Requests' : '200 OK') },
    async ({ s, pro }) => {
      const r = await exchange(s.gwPort, request(s, [`Authorization: Bearer ${pro.key}`]));
      assert.equal(r.status, 200);
      assert.deepEqual(r.all('x-ratelimit-limit'), ['500'], 'only tollgate\'s own X-RateLimit-Limit (pro: burst 500)');
      assert.equal(r.all('x-ratelimit-remaining').length, 1);
      assert.equal(r.all('x-ratelimit-reset').length, 1);
      assert.equal(r.all('x_ratelimit_reset').length, 0);
      assert.equal(r.all('ratelimit-policy').length, 1);
      assert.ok(!r.get('ratelimit-policy').startsWith('"x"'), r.get('ratelimit-policy'));
      assert.equal(r.all('ratelimit').length, 1);
      assert.deepEqual(r.all('x-quota-remaining').filter((v) => v === '123456789'), []);
      assert.equal(r.all('x-quota-reset').length, 1);
      assert.deepEqual(r.all('retry-after'), [], 'Retry-After on a 200');
      assert.deepEqual(r.all('set-cookie'), ['app=fine; Path=/']);
      // On the upstream's own 429, its Retry-After is what the client needs.
      const busy = await exchange(s.gwPort, request(s, [`Authorization: Bearer ${pro.key}`], '/v1/busy'));
      assert.equal(busy.status, 429);
      assert.deepEqual(busy.all('retry-after'), ['77']);
    });
});

test('API8:2023 security misconfiguration: forwarding headers are believed only from server.trusted_proxies, and then carried over', async () => {
  // tollgate behind a trusted proxy on 127.0.0.1: the chain it sent comes before the peer, its
  // https is kept, and Forwarded names the client it saw (the right-most untrusted address).
  await withEcho({}, async ({ s, up, pro }) => {
    const r = await exchange(s.gwPort, request(s, [`Authorization: Bearer ${pro.key}`,
      'X-Forwarded-For: 198.51.100.1, 203.0.113.7', 'X-Forwarded-Proto: https', 'X_Forwarded_For: 192.0.2.66']));
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(up.reqs.length, 1);
    const got = r.body.toString('latin1').split('\n');
    assert.deepEqual(seen(got, 'x-forwarded-for'), ['198.51.100.1, 203.0.113.7, 127.0.0.1']);
    assert.deepEqual(seen(got, 'x-forwarded-proto'), ['https']);
    assert.deepEqual(seen(got, 'forwarded'), [`proto=https;for=203.0.113.7;host="127.0.0.1:${s.gwPort}"`]);
  }, { trustedProxies: ['127.0.0.1'] });
  // the same request from a peer that is not trusted: only the peer
  await withEcho({}, async ({ s, pro }) => {
    const r = await exchange(s.gwPort, request(s, [`Authorization: Bearer ${pro.key}`,
      'X-Forwarded-For: 198.51.100.1, 203.0.113.7', 'X-Forwarded-Proto: https']));
    const got = r.body.toString('latin1').split('\n');
    assert.deepEqual(seen(got, 'x-forwarded-for'), ['127.0.0.1']);
    assert.deepEqual(seen(got, 'x-forwarded-proto'), ['http']);
  }, { trustedProxies: ['10.0.0.0/8'] });
});
