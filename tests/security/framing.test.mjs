// framing.test.mjs - strict request framing and refused calls that cost nothing (issue 10,
// items 2 and 3), over raw sockets: every ambiguous framing is answered 400 (or 505/417) and the
// connection closed, and the upstream (an echo server counting complete requests) never gets
// the request; ambiguous paths are refused; a refused upload is answered from its head without
// its body being read; a call the upstream answered is billed even if the client left at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { SANITIZED, Stack, sleep } from '../integration/harness.mjs';
import { connect, echoUpstream, exchange, readMessage } from './rawhttp.mjs';

async function withEcho(opts, fn, stackOpts = {}) {
  const up = await echoUpstream(opts);
  let s;
  try {
    s = await new Stack({ noUpstream: true, upstreamPort: up.port, ...stackOpts }).start();
    const pro = await s.customer('pro');
    await fn({ s, up, pro });
  } finally {
    await up.close();
    if (s) await s.stop();
  }
}

const head = (s, pro, lines, { method = 'POST', path = '/v1/echo', version = 'HTTP/1.1' } = {}) =>
  `${method} ${path} ${version}\r\nHost: 127.0.0.1:${s.gwPort}\r\nAuthorization: Bearer ${pro.key}\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`;

test('API8:2023 security misconfiguration: ambiguous request framing is refused with 400, the connection closed, and never forwarded', async () => {
  await withEcho({}, async ({ s, up, pro }) => {
    const cases = {
      'Content-Length with Transfer-Encoding': [head(s, pro, ['Content-Length: 5', 'Transfer-Encoding: chunked']) + '0\r\n\r\n'],
      'Transfer-Encoding with Content-Length': [head(s, pro, ['Transfer-Encoding: chunked', 'Content-Length: 5']) + '0\r\n\r\n'],
      'two different Content-Lengths': [head(s, pro, ['Content-Length: 5', 'Content-Length: 6']) + 'hello!'],
      'a Content-Length list': [head(s, pro, ['Content-Length: 5, 6']) + 'hello!'],
      'a signed Content-Length': [head(s, pro, ['Content-Length: +5']) + 'hello'],
      'Transfer-Encoding gzip, chunked': [head(s, pro, ['Transfer-Encoding: gzip, chunked']) + '0\r\n\r\n'],
      'Transfer-Encoding chunked twice': [head(s, pro, ['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked']) + '0\r\n\r\n'],
      'Transfer-Encoding xchunked': [head(s, pro, ['Transfer-Encoding: xchunked']) + '0\r\n\r\n'],
      'Transfer-Encoding in HTTP/1.0': [head(s, pro, ['Transfer-Encoding: chunked'], { version: 'HTTP/1.0' }) + '0\r\n\r\n'],
      'obs-fold': [head(s, pro, ['X-A: a', ' folded', 'Content-Length: 0'])],
      'bare LF line ends': [`GET /v1/echo HTTP/1.1\nHost: x\nAuthorization: Bearer ${pro.key}\n\n`],
      'a NUL in a header value': [head(s, pro, ['X-A: a\x00b', 'Content-Length: 0'])],
      'a control character in a header value': [head(s, pro, ['X-A: a\x01b', 'Content-Length: 0'])],
      'no Host in HTTP/1.1': [`GET /v1/echo HTTP/1.1\r\nAuthorization: Bearer ${pro.key}\r\n\r\n`],
      'two Hosts': [head(s, pro, ['Host: other', 'Content-Length: 0'])],
      'chunk size 0x10': [head(s, pro, ['Transfer-Encoding: chunked']) + '0x10\r\n0123456789abcdef\r\n0\r\n\r\n'],
      'chunk size with a leading space': [head(s, pro, ['Transfer-Encoding: chunked']) + ' 10\r\n0123456789abcdef\r\n0\r\n\r\n'],
      'chunk size +10': [head(s, pro, ['Transfer-Encoding: chunked']) + '+10\r\n0123456789abcdef\r\n0\r\n\r\n'],
      'chunk size -1': [head(s, pro, ['Transfer-Encoding: chunked']) + '-1\r\n\r\n0\r\n\r\n'],
      'chunk size "1 0"': [head(s, pro, ['Transfer-Encoding: chunked']) + '1 0\r\n0123456789abcdef\r\n0\r\n\r\n'],
      'chunk size overflowing 64 bits': [head(s, pro, ['Transfer-Encoding: chunked']) + '10000000000000010\r\n0123456789abcdef\r\n0\r\n\r\n'],
      'chunk line ending in bare LF': [head(s, pro, ['Transfer-Encoding: chunked']) + '5\nhello\r\n0\r\n\r\n'],
      'chunk data longer than its size': [head(s, pro, ['Transfer-Encoding: chunked']) + '5\r\nhello!\r\n0\r\n\r\n'],
      'obs-fold in the trailers': [head(s, pro, ['Transfer-Encoding: chunked']) + '5\r\nhello\r\n0\r\nX-T: 1\r\n folded\r\n\r\n'],
    };
    const problems = [];
    for (const [name, [raw]] of Object.entries(cases)) {
      const before = up.reqs.length;
      const r = await exchange(s.gwPort, raw, { expectClose: true });
      if (r.status !== 400) problems.push(`${name}: status ${r.status} ${r.error || r.body}`);
      if (!r.closed) problems.push(`${name}: the connection stayed open`);
      if (r.status === 400 && r.get('connection') !== 'close') problems.push(`${name}: no Connection: close`);
      await sleep(20);
      if (up.reqs.length !== before) problems.push(`${name}: the upstream received the request`);
    }
    // Other versions: 505 (or 400 when the line does not even parse as HTTP/1.x).
    for (const v of ['HTTP/1.2', 'HTTP/2.0', 'HTTP/0.9', 'HTTP/1.10']) {
      const before = up.reqs.length;
      const r = await exchange(s.gwPort, head(s, pro, ['Content-Length: 0'], { version: v }), { expectClose: true });
      if (r.status !== 505 && r.status !== 400) problems.push(`${v}: status ${r.status}`);
      if (!r.closed) problems.push(`${v}: the connection stayed open`);
      if (up.reqs.length !== before) problems.push(`${v}: the upstream received the request`);
    }
    const e = await exchange(s.gwPort, head(s, pro, ['Expect: 200-ok', 'Content-Length: 5']) + 'hello', { expectClose: true });
    if (e.status !== 417 || !e.closed) problems.push(`Expect: 200-ok: status ${e.status}, closed ${e.closed}`);
    assert.deepEqual(problems, []);
  });
});

test('API8:2023 security misconfiguration: bodies are re-framed by tollgate; identical Content-Lengths fold into one', async () => {
  await withEcho({}, async ({ s, up, pro }) => {
    const body = (req) => req.body.toString();
    let r = await exchange(s.gwPort, head(s, pro, ['Content-Length: 5', 'Content-Length: 5']) + 'hello');
    assert.equal(r.status, 200, r.body.toString());
    let got = up.reqs.at(-1);
    assert.deepEqual(got.all('content-length'), ['5']);
    assert.equal(body(got), 'hello');
    r = await exchange(s.gwPort, head(s, pro, ['Transfer-Encoding: chunked']) + '5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n');
    assert.equal(r.status, 200, r.body.toString());
    got = up.reqs.at(-1);
    assert.deepEqual(got.all('transfer-encoding'), ['chunked']);
    assert.deepEqual(got.all('content-length'), []);
    assert.equal(body(got), 'hello world');
    assert.ok(!got.lines.some((l) => /x-trailer/i.test(l)), 'a client trailer reached the upstream');
  });
});

test('API4:2023 unrestricted resource consumption: an admitted 8 MB chunked upload streams to the upstream byte-exact, re-chunked', async () => {
  await withEcho({}, async ({ s, up, pro }) => {
    const { createHash, randomBytes } = await import('node:crypto');
    const data = randomBytes(8 * 1024 * 1024);
    const c = await connect(s.gwPort);
    c.sock.write(head(s, pro, ['Transfer-Encoding: chunked']));
    for (let off = 0; off < data.length; off += 65536) {
      const part = data.subarray(off, off + 65536);
      if (!c.sock.write(Buffer.concat([Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n')]))) {
        await new Promise((r) => c.sock.once('drain', r));
      }
    }
    c.sock.write('0\r\n\r\n');
    const r = await readMessage(c.rd, { response: true });
    assert.equal(r.status, 200);
    const got = up.reqs.at(-1);
    assert.deepEqual(got.all('transfer-encoding'), ['chunked']);
    assert.equal(got.body.length, data.length);
    assert.equal(createHash('sha256').update(got.body).digest('hex'), createHash('sha256').update(data).digest('hex'));
    // the connection stays usable
    c.sock.write(head(s, pro, ['Content-Length: 2']) + 'ok');
    assert.equal((await readMessage(c.rd, { response: true })).status, 200);
    c.sock.destroy();
  });
});

test('API4:2023 unrestricted resource consumption: an upstream that answers before the body ends is passed on, and the client connection closes', async () => {
  const net = await import('node:net');
  const upstream = net.createServer((sock) => {
    let seen = Buffer.alloc(0);
    sock.on('error', () => {});
    sock.on('data', (d) => {
      seen = Buffer.concat([seen, d]);
      if (seen.includes('\r\n\r\n') && !sock.answered) {
        sock.answered = true;
        sock.end('HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope');
      }
    });
  });
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
  let s;
  try {
    s = await new Stack({ noUpstream: true, upstreamPort: upstream.address().port }).start();
    const pro = await s.customer('pro');
    const c = await connect(s.gwPort);
    c.sock.write(head(s, pro, [`Content-Length: ${4 * 1024 * 1024}`]) + 'x'.repeat(1000));
    const r = await readMessage(c.rd, { response: true });
    assert.equal(r.status, 413);
    assert.equal(r.body.toString(), 'nope');
    assert.equal(r.get('connection'), 'close');
    try { await c.rd.rest(); } catch { /* still open: fails below */ }
    assert.ok(c.rd.ended, 'the client connection stayed open');
    c.sock.destroy();
    const n = await exchange(s.gwPort, head(s, pro, ['Content-Length: 0']));
    assert.equal(n.status, 413); // the gateway is fine; this upstream always says 413
  } finally {
    upstream.close();
    if (s) await s.stop();
  }
});

test('API8:2023 security misconfiguration: paths an upstream could resolve differently are refused with 400 bad_path', async () => {
  await withEcho({}, async ({ s, up, pro }) => {
    const paths = ['/v1/basic/..;/vision', '/v1/basic/%2e%2e;/vision', '/v1/basic/.;/x', '/v1/basic%2F..%2Fvision',
      '/v1/basic/a%5Cb', '/v1/basic/a\\..\\vision', '/v1/basic/%252e%252e/vision', '/v1/basic/a%00b', '/v1/basic/a%0d%0ab',
      // a request target has no fragment: URL parsers end the path at '#', h2o does not
      '/v1/vision#/labels', '/v1/basic/x#frag',
      // an empty segment: nginx, Tomcat and Spring merge the slashes, h2o does not (no route matches)
      '/v1//vision/x', '//v1/basic/x', '/v1/basic//x'];
    const problems = [];
    for (const path of paths) {
      const before = up.reqs.length;
      const r = await exchange(s.gwPort, head(s, pro, [], { method: 'GET', path }));
      let type;
      try { type = JSON.parse(r.body.toString()).error.type; } catch { /* not JSON */ }
      if (r.status !== 400 || type !== 'bad_path') problems.push(`${path}: ${r.status} ${r.body}`);
      if (up.reqs.length !== before) problems.push(`${path}: the upstream received the request`);
    }
    // ...but a query string may carry anything, and '%25' alone is a literal percent sign.
    for (const path of ['/v1/basic/x?next=%2F..%2F&a=%5C', '/v1/basic/100%25']) {
      const r = await exchange(s.gwPort, head(s, pro, [], { method: 'GET', path }));
      if (r.status !== 200) problems.push(`${path}: ${r.status} ${r.body}`);
    }
    assert.deepEqual(problems, []);
  });
});

test('API4:2023 unrestricted resource consumption: Expect: 100-continue is answered only after admission', async () => {
  await withEcho({}, async ({ s, up, pro }) => {
    // Admitted: 100 Continue first, then the final answer once the body arrived.
    const c = await connect(s.gwPort);
    c.sock.write(head(s, pro, ['Expect: 100-continue', 'Content-Length: 5']));
    const interim = await readMessage(c.rd, { response: true });
    assert.equal(interim.status, 100);
    c.sock.write('hello');
    const r = await readMessage(c.rd, { response: true });
    assert.equal(r.status, 200);
    assert.equal(up.reqs.at(-1).body.toString(), 'hello');
    c.sock.destroy();
    // Refused: no 100, a 401 with Connection: close, and the body is never asked for.
    const before = up.reqs.length;
    const n = await exchange(s.gwPort, `POST /v1/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n`, { expectClose: true });
    assert.equal(n.status, 401);
    assert.equal(n.get('connection'), 'close');
    assert.ok(n.closed);
    assert.equal(up.reqs.length, before);
  });
});

const status = (pid) => readFileSync(`/proc/${pid}/status`, 'utf8');
const kb = (pid, field) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status(pid))[1]);
const bytesRead = (pid) => Number(/rchar:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))[1]);
const tempFiles = (pid) => readdirSync(`/proc/${pid}/fd`).map((fd) => { try { return readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { return ''; } })
  .filter((l) => /h2o\.b\.|\(deleted\)/.test(l));

// Uploads `total` bytes without a key as fast as the server takes them; returns the response's
// first line and how many bytes the kernel accepted before the answer or the close.
async function keylessUpload(port, total) {
  const c = await connect(port);
  c.sock.write(`POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${total}\r\n\r\n`);
  const chunk = Buffer.alloc(256 * 1024, 0x61);
  let sent = 0;
  while (sent < total && c.rd.buf.length === 0 && !c.rd.ended) {
    const ok = await new Promise((resolve) => {
      c.sock.write(chunk, (err) => resolve(!err));
    });
    if (!ok) break;
    sent += chunk.length;
  }
  try { while (c.rd.buf.indexOf('\r\n') < 0) await c.rd.more(); } catch { /* closed */ }
  const first = c.rd.buf.toString('latin1').split('\r\n')[0];
  c.sock.destroy();
  return { first, sent };
}

test('API4:2023 unrestricted resource consumption: 16 concurrent 95 MB uploads without a key are refused from their heads, unread', async () => {
  await withEcho({}, async ({ s, up }) => {
    const pid = s.server.pid;
    const total = 95 * 1024 * 1024;
    const rssBefore = kb(pid, 'VmRSS'), readBefore = bytesRead(pid);
    let temps = 0, polling = true;
    const poller = (async () => { while (polling) { temps = Math.max(temps, tempFiles(pid).length); await sleep(20); } })();
    const results = await Promise.all(Array.from({ length: 16 }, () => keylessUpload(s.gwPort, total)));
    polling = false;
    await poller;
    const rssAfter = kb(pid, 'VmRSS'), read = bytesRead(pid) - readBefore;
    for (const r of results) {
      assert.match(r.first, /^HTTP\/1\.1 401 /, `an upload got ${JSON.stringify(r.first)}`);
      // What the kernels' socket buffers absorb, not what tollgate read.
      assert.ok(r.sent < 24 * 1024 * 1024, `the client got ${r.sent} of ${total} bytes out before the answer`);
    }
    assert.ok(read < 16 * 3 * 1024 * 1024, `tollgate read ${read} bytes for 16 refused uploads of ${total}`);
    // (ASan's quarantine and shadow memory inflate RSS; the bound is only tight without it.)
    assert.ok(rssAfter - rssBefore < (SANITIZED ? 128 : 32) * 1024, `RSS grew from ${rssBefore} kB to ${rssAfter} kB`);
    assert.equal(temps, 0, 'temporary files were opened');
    assert.equal(up.reqs.length, 0);
  });
});

test('API4:2023 unrestricted resource consumption: server.max_body_bytes holds for chunked bodies too (413, closed, not forwarded)', async () => {
  await withEcho({}, async ({ s, up, pro }) => {
    const big = 'x'.repeat(3000);
    const chunked = await exchange(s.gwPort, head(s, pro, ['Transfer-Encoding: chunked']) + `bb8\r\n${big}\r\n0\r\n\r\n`, { expectClose: true });
    assert.equal(chunked.status, 413, chunked.body.toString());
    assert.ok(chunked.closed);
    const length = await exchange(s.gwPort, head(s, pro, ['Content-Length: 3000']) + big, { expectClose: true });
    assert.equal(length.status, 413);
    assert.ok(length.closed);
    assert.equal(up.reqs.length, 0);
    const fits = await exchange(s.gwPort, head(s, pro, ['Transfer-Encoding: chunked']) + `3e8\r\n${'y'.repeat(1000)}\r\n0\r\n\r\n`);
    assert.equal(fits.status, 200);
    assert.equal(up.reqs.length, 1);
  }, { maxBody: 2000 });
});

test('API10:2023 unsafe consumption of APIs: a call the upstream answered is billed even when the client closed right after sending it', async () => {
  let clientGone;
  const gone = new Promise((r) => { clientGone = r; });
  // The upstream answers only once the client has gone away.
  await withEcho({ onRequest: () => gone }, async ({ s, up: echo, pro }) => {
    const c = await connect(s.gwPort);
    c.sock.write(head(s, pro, ['Content-Length: 5']) + 'hello');
    for (let i = 0; i < 400 && echo.reqs.length === 0; i++) await sleep(10);
    assert.equal(echo.reqs.length, 1, 'the upstream got the call');
    c.sock.destroy();
    clientGone();
    let used = 0;
    for (let i = 0; i < 200 && used < 1; i++) { used = await s.usage(pro.customer.id); if (used < 1) await sleep(25); }
    assert.equal(used, 1, 'the answered call was not billed');
  });
});

test('API4:2023 unrestricted resource consumption: a head sent byte by byte (slowloris) is cut after the head timeout, unanswered and unforwarded', async () => {
  await withEcho({}, async ({ s, up, pro }) => {
    const c = await connect(s.gwPort);
    const raw = head(s, pro, ['Content-Length: 0'], { method: 'GET' });
    let i = 0;
    // one byte every 200 ms: the head would take far longer than the 10 s allowed
    const drip = setInterval(() => { if (!c.rd.ended && i < raw.length) c.sock.write(raw[i++]); }, 200);
    try {
      for (let n = 0; n < 150 && !c.rd.ended; n++) await sleep(100); // polls for the close, up to 15 s
    } finally { clearInterval(drip); }
    assert.ok(c.rd.ended, 'the connection is still open after 15 s');
    assert.ok(i < raw.length, 'the whole head was sent');
    assert.equal(c.rd.buf.length, 0, 'something was answered');
    assert.equal(up.reqs.length, 0);
    c.sock.destroy();
  });
});
