// proxy.test.mjs - HTTP/1.1 reverse-proxy behaviour against a hand-written upstream: a raw TCP
// server that parses requests itself and writes exact bytes, so that framing, hop-by-hop headers,
// connection reuse and failures are under the test's control. Clients are raw sockets where the
// bytes matter (HEAD, interim responses, forbidden headers), fetch/http elsewhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { Stack, sleep } from './harness.mjs';
import { Reader } from '../security/rawhttp.mjs';

// Reads one HTTP/1.1 message. Responses: no body for 1xx/204/304/HEAD; close-delimited without
// a length. Keeps the raw header lines, lower-cased [name, value] pairs, chunk extensions, trailers.
async function readMessage(rd, { response = false, method = 'GET' } = {}) {
  const start = await rd.line();
  const lines = [];
  for (let l; (l = await rd.line()) !== '';) lines.push(l);
  const headers = lines.map((l) => { const c = l.indexOf(':'); return [l.slice(0, c).trim().toLowerCase(), l.slice(c + 1).trim()]; });
  const all = (n) => headers.filter((h) => h[0] === n).map((h) => h[1]);
  const m = { start, lines, headers, all, get: (n) => all(n)[0], body: Buffer.alloc(0), exts: [], trailers: [] };
  if (response) m.status = Number(start.split(' ')[1]);
  if (response && (m.status < 200 || m.status === 204 || m.status === 304 || method === 'HEAD')) return m;
  if (/chunked/i.test(all('transfer-encoding').join(','))) {
    const parts = [];
    for (;;) {
      const sl = await rd.line(), semi = sl.indexOf(';');
      if (semi >= 0) m.exts.push(sl.slice(semi + 1));
      const size = parseInt(semi >= 0 ? sl.slice(0, semi) : sl, 16);
      if (Number.isNaN(size)) throw new Error(`bad chunk size line ${JSON.stringify(sl)}`);
      if (size === 0) break;
      parts.push(await rd.bytes(size));
      if ((await rd.line()) !== '') throw new Error('chunk not followed by CRLF');
    }
    for (let l; (l = await rd.line()) !== '';) m.trailers.push(l);
    m.body = Buffer.concat(parts);
  } else if (m.get('content-length') !== undefined) {
    m.body = await rd.bytes(Number(m.get('content-length')));
  } else if (response) {
    m.body = await rd.rest();
  }
  return m;
}

const head = (status, hdrs = []) => `HTTP/1.1 ${status}\r\n${hdrs.map((h) => `${h}\r\n`).join('')}\r\n`;
const reply = (sock, status, body = '', hdrs = []) =>
  sock.write(Buffer.concat([Buffer.from(head(status, [...hdrs, `Content-Length: ${Buffer.byteLength(body)}`])), Buffer.from(body)]));

// The upstream: handler(req, sock, up) answers each parsed request; onConnect(sock) returning
// true takes the connection over instead. Records requests (with their connection number).
async function rawUpstream(handler, onConnect) {
  const up = { reqs: [], conns: 0, sockets: new Set() };
  up.server = net.createServer(async (sock) => {
    const conn = ++up.conns;
    up.sockets.add(sock);
    sock.on('close', () => up.sockets.delete(sock));
    sock.on('error', () => {});
    if (onConnect && onConnect(sock, up)) return;
    const rd = new Reader(sock);
    try {
      for (let n = 0; !sock.destroyed && !sock.writableEnded; n++) {
        const req = await readMessage(rd);
        [req.method, req.target] = req.start.split(' ');
        Object.assign(req, { conn, n });
        up.reqs.push(req);
        await handler(req, sock, up);
      }
    } catch { sock.destroy(); }
  });
  await new Promise((r) => up.server.listen(0, '127.0.0.1', r));
  up.port = up.server.address().port;
  up.close = () => { for (const s of up.sockets) s.destroy(); return new Promise((r) => up.server.close(r)); };
  return up;
}

// A stack proxying to a raw upstream, a 'pro' customer (every path, 500/min), raw client sockets.
async function withProxy(handler, fn, { timeoutMs = 3000, onConnect, durability } = {}) {
  const up = await rawUpstream(handler, onConnect);
  const clients = [];
  let s;
  try {
    s = await new Stack({ noUpstream: true, upstreamPort: up.port, timeoutMs, durability }).start();
    const { key, customer } = await s.customer('pro');
    const client = async () => {
      const sock = net.connect(s.gwPort, '127.0.0.1');
      await new Promise((r, j) => { sock.once('connect', r); sock.once('error', j); });
      const c = { sock, rd: new Reader(sock) };
      // Sends one request; returns the final response with any interim (1xx) ones before it.
      c.send = async (method, path, { headers = [], body, auth = true } = {}) => {
        const h = [`${method} ${path} HTTP/1.1`, `Host: 127.0.0.1:${s.gwPort}`, ...(auth ? [`Authorization: Bearer ${key}`] : []), ...headers];
        if (body !== undefined) h.push(`Content-Length: ${body.length}`);
        sock.write(Buffer.concat([Buffer.from(h.join('\r\n') + '\r\n\r\n'), body ? Buffer.from(body) : Buffer.alloc(0)]));
        const interim = [];
        for (;;) {
          const r = await readMessage(c.rd, { response: true, method });
          if (r.status >= 200) return Object.assign(r, { interim });
          interim.push(r);
        }
      };
      clients.push(sock);
      return c;
    };
    await fn({ s, up, key, customer, client });
  } finally {
    for (const c of clients) c.destroy();
    await up.close();
    if (s) await s.stop();
  }
}

// Usage is committed asynchronously: poll until it reaches `want` (or 2 s), then let it settle.
async function usageSettles(s, id, want) {
  for (let i = 0; i < 80 && (await s.usage(id)) < want; i++) await sleep(25);
  await sleep(150);
  return s.usage(id);
}

const ok = (req, sock) => reply(sock, '200 OK', `ok ${req.target}`, ['Content-Type: text/plain']);

test('request forwarding: method, target, end-to-end and repeated headers, Host, hop-by-hop, key and identity headers', async () => {
  await withProxy(ok, async ({ up, client, customer, key }) => {
    const c = await client();
    const target = '/v1/x/a%20b?q=1&r=%2F';
    let r = await c.send('DELETE', target, {
      headers: ['X-Custom-E2E: hello world', 'X-Dup: one', 'X-Dup: two', 'Connection: keep-alive, X-Secret-Hop',
        'X-Secret-Hop: must-not-pass', 'Keep-Alive: timeout=5', 'TE: trailers', 'Upgrade: example/1',
        'Proxy-Connection: keep-alive', 'X-Tollgate-Customer: cus_forged', 'x-tollgate-plan: enterprise',
        'X-Forwarded-For: 203.0.113.7'],
    });
    assert.equal(r.status, 200, r.body.toString());
    r = await c.send('GET', '/v1/y', { auth: false, headers: [`X-API-Key: ${key}`, 'X-Tollgate-Plan: free'] });
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(up.reqs.length, 2);
    const [a, b] = up.reqs;
    // Every header check is collected, so that a failure lists all that is wrong at once.
    const problems = [];
    const expect = (cond, what, req) => { if (!cond) problems.push(`${req === a ? 'first' : 'second'} request: ${what}`); };
    expect(a.start === `DELETE ${target} HTTP/1.1`, 'request line not byte-exact', a);
    expect(b.start === 'GET /v1/y HTTP/1.1', 'request line not byte-exact', b);
    expect(a.all('x-custom-e2e').join() === 'hello world', 'end-to-end X-Custom-E2E missing', a);
    expect(a.all('x-dup').join(', ') === 'one, two', 'both X-Dup values must arrive, in order', a);
    // A client's X-Forwarded-For is its own claim: tollgate writes the peer alone (issue 10).
    expect(a.all('x-forwarded-for').join() === '127.0.0.1', "X-Forwarded-For must be 127.0.0.1, not the client's list", a);
    expect(b.all('x-forwarded-for').join() === '127.0.0.1', 'X-Forwarded-For must be 127.0.0.1', b);
    expect(b.all('x-forwarded-proto').join() === 'http', 'X-Forwarded-Proto must be http', b);
    const hop = ['connection-listed x-secret-hop', 'keep-alive', 'te', 'upgrade', 'proxy-connection', 'authorization', 'x-api-key'];
    for (const req of [a, b]) {
      expect(req.all('host').join() === `127.0.0.1:${up.port}`, `Host must be 127.0.0.1:${up.port}`, req);
      for (const n of hop) expect(req.get(n.split(' ').pop()) === undefined, `${n} forwarded`, req);
      // Connection may only carry the gateway's own options, never the client's listed header.
      expect(req.all('connection').every((v) => /^\s*(keep-alive|close)\s*$/i.test(v)), 'client Connection options forwarded', req);
      expect(req.all('x-tollgate-customer').join() === customer.id, `x-tollgate-customer must be exactly ${customer.id}`, req);
      expect(req.all('x-tollgate-plan').join() === 'pro', 'x-tollgate-plan must be exactly pro', req);
    }
    assert.deepEqual(problems, [], [a, b].map((q) => [q.start, ...q.lines].join('\n')).join('\n\n'));
  });
});

test('request forwarding: a 100 KB POST body arrives byte-exact', async () => {
  await withProxy(ok, async ({ up, client }) => {
    const body = randomBytes(100 * 1024);
    const r = await (await client()).send('POST', '/v1/upload?x=1', { body, headers: ['Content-Type: application/octet-stream'] });
    assert.equal(r.status, 200, r.body.toString());
    const req = up.reqs[0];
    assert.equal(req.start, 'POST /v1/upload?x=1 HTTP/1.1');
    assert.ok(req.body.equals(body), `body differs: ${req.body.length} bytes arrived`);
    const cl = req.get('content-length'), te = req.all('transfer-encoding').join(',');
    assert.ok(cl === String(body.length) || (cl === undefined && /chunked/i.test(te)), req.lines.join('\n'));
    assert.equal(req.get('content-type'), 'application/octet-stream');
  });
});

test('response passthrough: status, end-to-end headers, two Set-Cookies, hop-by-hop and Tollgate-Units removed, body', async () => {
  const body = randomBytes(3000);
  await withProxy((req, sock) => {
    if (req.target === '/v1/teapot') return reply(sock, "418 I'm a teapot", 'short and stout', ['X-Pot: yes']);
    sock.write(head('201 Created', ['Content-Type: application/octet-stream', 'X-E2E: kept', 'Set-Cookie: a=1; Path=/; HttpOnly',
      'Set-Cookie: b=2; Path=/v1', 'Connection: X-Hop-Resp', 'X-Hop-Resp: secret', 'Keep-Alive: timeout=5, max=100',
      'Tollgate-Units: tokens=5', `Content-Length: ${body.length}`]));
    sock.write(body);
  }, async ({ client }) => {
    const c = await client();
    let r = await c.send('GET', '/v1/created');
    assert.equal(r.status, 201);
    assert.ok(r.body.equals(body), 'body differs');
    const problems = [];
    const expect = (cond, what) => { if (!cond) problems.push(what); };
    expect(r.get('x-e2e') === 'kept', 'X-E2E missing');
    expect(r.get('content-type') === 'application/octet-stream', 'Content-Type changed');
    expect(r.all('set-cookie').join(' | ') === 'a=1; Path=/; HttpOnly | b=2; Path=/v1', 'the two Set-Cookie headers must arrive as two lines, unchanged');
    for (const n of ['x-hop-resp', 'keep-alive', 'tollgate-units']) expect(r.get(n) === undefined, `${n} forwarded to the client`);
    expect(r.all('connection').every((v) => !/x-hop-resp/i.test(v)), 'upstream Connection options forwarded');
    assert.deepEqual(problems, [], r.lines.join('\n'));
    r = await c.send('GET', '/v1/teapot');
    assert.equal(r.status, 418);
    assert.equal(r.body.toString(), 'short and stout');
    assert.equal(r.get('x-pot'), 'yes');
  });
});

// Answers for the framing tests, by path; /v1/ok is a plain Content-Length answer.
const framing = (req, sock) => {
  switch (req.target) {
    case '/v1/chunked':
      return sock.write(head('200 OK', ['Transfer-Encoding: chunked', 'Trailer: X-Sum']) +
        '5;ext=1\r\nhello\r\n1\r\n,\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n');
    case '/v1/close':
      sock.write(head('200 OK', ['Content-Type: text/plain', 'Connection: close']));
      return sock.end('closed-delimited body');
    case '/v1/204': return sock.write(head('204 No Content', ['X-N: 1']));
    case '/v1/304': return sock.write(head('304 Not Modified', ['ETag: "v1"']));
    case '/v1/head': return sock.write(head('200 OK', ['Content-Type: text/plain', 'Content-Length: 10']));
    case '/v1/100': return sock.write(head('100 Continue') + head('200 OK', ['Content-Length: 5']) + 'final');
    case '/v1/103': return sock.write(head('103 Early Hints', ['Link: </a.css>; rel=preload']) + head('200 OK', ['Content-Length: 5']) + 'final');
    default: return ok(req, sock);
  }
};

// Sends `method path` on one client connection, checks it with `check`, then a GET on the same
// connection must answer normally (no stray bytes left, connection still usable).
async function framingCase(method, path, check) {
  await withProxy(framing, async ({ client }) => {
    const c = await client();
    const r = await c.send(method, path);
    check(r);
    await sleep(100);
    assert.equal(c.rd.buf.length, 0, `stray bytes after the response: ${JSON.stringify(c.rd.buf.toString('latin1'))}`);
    const n = await c.send('GET', '/v1/ok');
    assert.equal(n.status, 200);
    assert.equal(n.body.toString(), 'ok /v1/ok');
  });
}

const answers = (status, text) => (r) => { assert.equal(r.status, status); assert.equal(r.body.toString(), text); };

test('framing: Content-Length response', () => framingCase('GET', '/v1/ok', answers(200, 'ok /v1/ok')));

test('framing: chunked response with a chunk extension and a trailer', () => framingCase('GET', '/v1/chunked', answers(200, 'hello, world')));

test('framing: close-delimited response', async () => {
  await withProxy(framing, async ({ client, up }) => {
    const r = await (await client()).send('GET', '/v1/close');
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'closed-delimited body');
    const n = await (await client()).send('GET', '/v1/ok');
    assert.equal(n.status, 200);
    assert.equal(n.body.toString(), 'ok /v1/ok');
    assert.equal(up.reqs.length, 2);
  });
});

test('framing: 204 and 304 carry no body', async () => {
  await framingCase('GET', '/v1/204', (r) => { assert.equal(r.status, 204); assert.equal(r.get('x-n'), '1'); });
  await framingCase('GET', '/v1/304', (r) => { assert.equal(r.status, 304); assert.equal(r.get('etag'), '"v1"'); });
});

// The raw reader takes no body after HEAD; any body bytes show up as stray bytes in framingCase.
test('framing: HEAD answered with Content-Length: 10 and no body', () => framingCase('HEAD', '/v1/head', answers(200, '')));

test('framing: interim 100 Continue before the final 200', () => framingCase('GET', '/v1/100', answers(200, 'final')));

test('framing: interim 103 Early Hints before the final 200', () => framingCase('GET', '/v1/103', answers(200, 'final')));

test('keep-alive: 30 sequential requests on one client connection use at most 2 upstream connections', async () => {
  await withProxy(ok, async ({ client, up }) => {
    const c = await client();
    for (let i = 0; i < 30; i++) {
      const r = await c.send('GET', `/v1/seq/${i}`);
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), `ok /v1/seq/${i}`);
    }
    assert.equal(up.reqs.length, 30);
    assert.ok(up.conns <= 2, `${up.conns} upstream connections for 30 requests`);
  });
});

test('keep-alive: an upstream answer with Connection: close then close is served, and the next request succeeds', async () => {
  await withProxy((req, sock) => {
    if (req.target !== '/v1/last') return ok(req, sock);
    sock.write(head('200 OK', ['Connection: close', 'Content-Length: 4']) + 'last');
    sock.end();
  }, async ({ client, up }) => {
    const c = await client();
    assert.equal((await c.send('GET', '/v1/first')).status, 200);
    const r = await c.send('GET', '/v1/last');
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'last');
    for (let i = 0; i < 3; i++) {
      const n = await c.send('GET', `/v1/after/${i}`);
      assert.equal(n.status, 200, n.body.toString());
      assert.equal(n.body.toString(), `ok /v1/after/${i}`);
    }
    assert.ok(up.conns >= 2);
  });
});

test('stale pooled connection: the upstream closes an idle keep-alive connection; the next request still succeeds', async () => {
  await withProxy((req, sock) => {
    ok(req, sock);
    setTimeout(() => sock.end(), 50); // idle close, as an upstream's keep-alive timeout does
  }, async ({ client, up }) => {
    const c = await client();
    for (let i = 0; i < 3; i++) {
      const r = await c.send('GET', `/v1/stale/${i}`);
      assert.equal(r.status, 200, `request ${i}: ${r.status} ${r.body}`);
      assert.equal(r.body.toString(), `ok /v1/stale/${i}`);
      await sleep(300);
    }
    assert.equal(up.reqs.length, 3);
    assert.equal(up.conns, 3, 'the upstream closed each idle connection, so each request needed a new one');
  });
});

test('a pooled connection dropped without an answer: GET is sent again on a new one, POST is not', async () => {
  // Every upstream connection answers its first request and drops the second unanswered, after
  // reading it: the upstream may have acted on it, so only an idempotent method may be resent.
  await withProxy((req, sock) => (req.n === 0 ? ok(req, sock) : sock.destroy()), async ({ client, up }) => {
    const c = await client();
    assert.equal((await c.send('GET', '/v1/first')).status, 200);
    const g = await c.send('GET', '/v1/again');
    assert.equal(g.status, 200, g.body.toString());
    assert.equal(g.body.toString(), 'ok /v1/again');
    assert.deepEqual(up.reqs.filter((r) => r.target === '/v1/again').map((r) => [r.conn, r.n]), [[1, 1], [2, 0]]);
    const p = await c.send('POST', '/v1/once', { body: 'x' });
    assert.equal(p.status, 502, p.body.toString());
    assert.equal(JSON.parse(p.body.toString()).error.type, 'upstream_unavailable');
    assert.deepEqual(up.reqs.filter((r) => r.target === '/v1/once').map((r) => [r.conn, r.n]), [[2, 1]]);
  });
});

// A failure mode answered by the gateway itself; unbilled, then a normal call bills exactly 1.
async function failureCase(handler, { status, type, timeoutMs, onConnect }) {
  let failing = true;
  await withProxy((req, sock, up) => (req.target === '/v1/ok' ? ok(req, sock) : handler(req, sock, up)), async ({ s, key, customer }) => {
    const r = await s.call('/v1/fail', { key });
    assert.equal(r.status, status, r.text);
    assert.equal(r.json?.error?.type, type, r.text);
    await sleep(200);
    assert.equal(await s.usage(customer.id), 0, 'the failed call was billed');
    failing = false;
    const n = await s.call('/v1/ok', { key });
    assert.equal(n.status, 200, n.text);
    assert.equal(n.text, 'ok /v1/ok');
    assert.equal(await usageSettles(s, customer.id, 1), 1);
  }, { timeoutMs, onConnect: onConnect && ((sock) => failing && onConnect(sock)) });
}

test('failure: non-HTTP garbage from the upstream is 502 upstream_unavailable, unbilled', () => failureCase((req, sock) => {
  sock.write('SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02 this is not http\r\n\r\n');
  setTimeout(() => sock.end(), 100);
}, { status: 502, type: 'upstream_unavailable' }));

test('failure: an upstream that accepts and closes at once is 502 upstream_unavailable, unbilled', () => failureCase(() => {}, {
  status: 502, type: 'upstream_unavailable', onConnect: (sock) => { sock.destroy(); return true; },
}));

test('failure: an upstream that never answers is 504 upstream_timeout within the timeout, unbilled', () => failureCase(() => {}, {
  status: 504, type: 'upstream_timeout', timeoutMs: 500,
}));

test('failure: a body cut short by the upstream is a truncated response; the next request is served', async () => {
  await withProxy((req, sock) => {
    if (req.target !== '/v1/cut') return ok(req, sock);
    sock.write(head('200 OK', ['Content-Length: 1000']) + 'x'.repeat(500));
    setTimeout(() => sock.destroy(), 50);
  }, async ({ s, key }) => {
    const r = await fetch(`${s.gw}/v1/cut`, { headers: { authorization: `Bearer ${key}` } });
    let got = -1;
    try { got = (await r.arrayBuffer()).byteLength; } catch { /* truncated: expected */ }
    const declared = Number(r.headers.get('content-length') ?? 1000);
    assert.ok(r.status !== 200 || got < declared, `a cut body looked complete: status ${r.status}, ${got}/${declared} bytes`);
    for (let i = 0; i < 3; i++) {
      const n = await s.call(`/v1/ok/${i}`, { key });
      assert.equal(n.status, 200, n.text);
      assert.equal(n.text, `ok /v1/ok/${i}`);
    }
  });
});

// The client socket stays registered while a request is proxied (see park in
// src/http/http1_server.c); bytes that arrive meanwhile must wait for the response, not be lost or
// mixed into the request in flight.
for (const durability of ['batched', 'strict']) {
  test(`pipelining (${durability}): requests written while the first is proxied are answered after it, in order`, () =>
    withProxy(async (req, sock) => { await sleep(req.target === '/v1/a' ? 300 : 20); ok(req, sock); }, async ({ s, key, customer, client }) => {
      const c = await client();
      const one = (p) => `GET ${p} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n\r\n`;
      c.sock.write(one('/v1/a'));
      await sleep(100); // /v1/a is at the upstream now
      c.sock.write(one('/v1/b') + one('/v1/c'));
      for (const p of ['/v1/a', '/v1/b', '/v1/c']) {
        const r = await readMessage(c.rd, { response: true });
        assert.equal(r.status, 200);
        assert.equal(r.body.toString(), `ok ${p}`);
      }
      await sleep(120); // a fourth request written after the answers, on the same connection
      const r = await c.send('GET', '/v1/d');
      assert.equal(r.body.toString(), 'ok /v1/d');
      assert.equal(await usageSettles(s, customer.id, 4), 4);
    }, { durability }));
}

test('a client that closes while its request is proxied does not disturb the next ones', () =>
  withProxy(async (req, sock) => { await sleep(req.target === '/v1/slow' ? 300 : 0); ok(req, sock); }, async ({ client }) => {
    const c = await client();
    c.sock.write(`GET /v1/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\r\n\r\n`);
    const gone = await client();
    const half = `GET /v1/slow HTTP/1.1\r\nHost: x\r\n`;
    gone.sock.write(half);
    const slow = await client();
    const pending = slow.send('GET', '/v1/slow');
    await sleep(50);
    slow.sock.end(); // half-closed while the upstream works on it
    const r = await readMessage(c.rd, { response: true }).catch(() => null);
    assert.equal(r && r.status, 401); // no key: refused at once, not proxied
    await pending.catch(() => {});
    gone.sock.destroy();
    const d = await client();
    for (let i = 0; i < 5; i++) assert.equal((await d.send('GET', `/v1/n${i}`)).body.toString(), `ok /v1/n${i}`);
  }));

test('a 5 MB chunked response in 64 KB chunks streams through byte-exact', async () => {
  const data = randomBytes(5 * 1024 * 1024);
  const want = createHash('sha256').update(data).digest('hex');
  await withProxy(async (req, sock) => {
    sock.write(head('200 OK', ['Content-Type: application/octet-stream', 'Transfer-Encoding: chunked']));
    for (let off = 0; off < data.length; off += 65536) {
      const part = data.subarray(off, off + 65536);
      const more = sock.write(Buffer.concat([Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n')]));
      if (!more) await new Promise((r) => sock.once('drain', r));
    }
    sock.write('0\r\n\r\n');
  }, async ({ s, key }) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const res = await new Promise((resolve, reject) =>
        http.get(`${s.gw}/v1/big`, { agent, headers: { authorization: `Bearer ${key}` } }, resolve).on('error', reject));
      assert.equal(res.statusCode, 200);
      const h = createHash('sha256');
      let n = 0;
      for await (const d of res) { h.update(d); n += d.length; }
      assert.equal(n, data.length);
      assert.equal(h.digest('hex'), want);
    } finally { agent.destroy(); }
  });
});
