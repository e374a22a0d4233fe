// access_log.test.mjs - the access log (access_log: {path, sample_success}) and X-Request-Id:
// every line is one JSON object matching the schema below; the request id is taken from the
// client when well formed, generated otherwise, sent to the upstream and back, and written in
// the call's line; refusals are logged even with sample_success 0; SIGUSR1 reopens the file
// after logrotate renamed it. The upstream is a node server that echoes the headers it got.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { existsSync, mkdtempSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Stack, sleep } from './harness.mjs';

// The JSON schema of a line (draft 2020-12 subset: type, required, properties, pattern,
// additionalProperties), checked by validate() below.
const NULLABLE_STRING = { type: ['string', 'null'] };
const LINE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['time', 'request_id', 'client', 'method', 'path', 'route', 'customer', 'key_prefix', 'plan',
    'decision', 'error', 'status', 'upstream_status', 'upstream_ms', 'total_ms', 'bytes_in', 'bytes_out', 'units'],
  properties: {
    time: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z$' },
    request_id: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' },
    client: { type: 'string' },
    method: NULLABLE_STRING, // null: a refusal before the request line parsed (400 malformed, 431)
    path: NULLABLE_STRING,
    route: NULLABLE_STRING,
    customer: NULLABLE_STRING,
    key_prefix: { type: ['string', 'null'], pattern: '^tg_(live|test)_[A-Za-z0-9]{4}$' },
    plan: NULLABLE_STRING,
    decision: { type: 'string', enum: ['allowed', 'refused'] },
    error: NULLABLE_STRING,
    status: { type: 'integer' },
    upstream_status: { type: ['integer', 'null'] },
    upstream_ms: { type: ['number', 'null'] },
    total_ms: { type: 'number' },
    bytes_in: { type: 'integer' },
    bytes_out: { type: 'integer' },
    units: { type: 'object', additionalProperties: { type: 'integer' } },
  },
};

function typeOf(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

// Returns a list of problems ([] when v matches schema).
function validate(schema, v, at = '$') {
  const errs = [];
  if (schema.type) {
    const types = [].concat(schema.type), t = typeOf(v);
    if (!types.includes(t) && !(t === 'integer' && types.includes('number'))) return [`${at}: ${t} is not ${types}`];
  }
  if (schema.enum && !schema.enum.includes(v)) errs.push(`${at}: ${JSON.stringify(v)} not in ${schema.enum}`);
  if (schema.pattern && typeof v === 'string' && !new RegExp(schema.pattern).test(v)) errs.push(`${at}: ${JSON.stringify(v)} !~ ${schema.pattern}`);
  if (typeOf(v) === 'object') {
    for (const k of schema.required || []) if (!(k in v)) errs.push(`${at}: missing ${k}`);
    for (const [k, x] of Object.entries(v)) {
      const sub = schema.properties?.[k] ?? schema.additionalProperties;
      if (sub === false) errs.push(`${at}: unexpected ${k}`);
      else if (sub && typeof sub === 'object') errs.push(...validate(sub, x, `${at}.${k}`));
    }
  }
  return errs;
}

// Every line of the file, each parsed and checked against the schema.
function lines(file) {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, 'utf8');
  if (text === '') return [];
  assert.ok(text.endsWith('\n'), 'the file ends with a whole line');
  return text.slice(0, -1).split('\n').map((l) => {
    const o = JSON.parse(l);
    assert.deepEqual(validate(LINE_SCHEMA, o), [], `line ${l}`);
    return o;
  });
}

// Polls until pred(lines) finds a line (the writer is a thread of its own). Bounded.
async function lineWhere(file, pred) {
  for (let i = 0; i < 400; i++) {
    const l = lines(file).find(pred);
    if (l) return l;
    await sleep(25);
  }
  throw new Error(`no line matched in ${file}:\n${existsSync(file) ? readFileSync(file, 'utf8') : '(no file)'}`);
}

// An upstream that answers with the headers it received, with its own X-Request-Id (which
// tollgate must replace) and Tollgate-Units when asked.
async function echoUpstream() {
  const seen = [];
  const server = http.createServer((req, res) => {
    let n = 0;
    req.on('data', (d) => { n += d.length; });
    req.on('end', () => {
      seen.push({ path: req.url, headers: req.headers });
      const body = JSON.stringify({ headers: req.headers, got: n });
      const h = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-request-id': 'from-the-upstream' };
      if (req.headers['x-units']) h['tollgate-units'] = req.headers['x-units'];
      res.writeHead(200, h);
      res.end(body);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { server, seen, port: server.address().port, close: () => new Promise((r) => server.close(r)) };
}

async function withLog(sample, fn, opts = {}) {
  const up = await echoUpstream();
  const s = new Stack({ noUpstream: true, upstreamPort: up.port, ...opts });
  s.dir = mkdtempSync(join(tmpdir(), 'tollgate-al-'));
  const file = join(s.dir, 'access.log');
  s.opts.extra = `access_log: {path: ${JSON.stringify(file)}, sample_success: ${sample}}`;
  await s.start();
  try { await fn(s, file, up); } finally { await s.stop(); await up.close(); }
}

test('each line is a JSON object with every field typed; X-Request-Id given, generated or replaced goes to the upstream and back', async () => {
  await withLog('1.0', async (s, file, up) => {
    const { customer, key } = await s.customer('pro');

    // given and well formed: kept
    const given = 'req-42.abc:DEF_9';
    let r = await s.call('/v1/vision/x', { key, method: 'POST', body: 'hello', headers: { 'x-request-id': given, 'x-units': 'tokens=7' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-request-id'), given, 'returned to the client, the upstream\'s own replaced');
    assert.equal(r.json.headers['x-request-id'], given, 'passed to the upstream');
    let l = await lineWhere(file, (x) => x.request_id === given);
    assert.equal(l.decision, 'allowed');
    assert.equal(l.error, null);
    assert.equal(l.status, 200);
    assert.equal(l.upstream_status, 200);
    assert.equal(l.method, 'POST');
    assert.equal(l.path, '/v1/vision/x');
    assert.equal(l.route, '/v1/vision/*');
    assert.equal(l.customer, customer.id);
    assert.equal(l.plan, 'pro');
    assert.equal(l.key_prefix, key.slice(0, 12));
    assert.ok(!JSON.stringify(l).includes(key), 'never the key itself');
    assert.equal(l.client, '127.0.0.1');
    assert.equal(l.bytes_in, 5);
    assert.equal(l.bytes_out, Buffer.byteLength(r.text));
    assert.deepEqual(l.units, { api_calls: 1, images: 1, tokens: 7 });
    assert.ok(l.upstream_ms >= 0 && l.total_ms >= l.upstream_ms);

    // absent: generated (32 hex digits), the same on both sides and in the log
    r = await s.call('/v1/basic/a', { key });
    const gen = r.headers.get('x-request-id');
    assert.match(gen, /^[0-9a-f]{32}$/);
    assert.equal(r.json.headers['x-request-id'], gen);
    await lineWhere(file, (x) => x.request_id === gen);

    // malformed (a space, too long, a CR-free injection attempt): replaced by a generated one,
    // and the client's value reaches neither the upstream nor the log
    for (const bad of ['has space', 'x'.repeat(129), 'a"b', 'é']) {
      r = await s.call('/v1/basic/b', { key, headers: { 'x-request-id': bad } });
      assert.equal(r.status, 200);
      const id = r.headers.get('x-request-id');
      assert.match(id, /^[0-9a-f]{32}$/, `for ${bad}`);
      assert.equal(r.json.headers['x-request-id'], id);
      await lineWhere(file, (x) => x.request_id === id);
    }
    // the folded spelling a CGI upstream reads as the same header is dropped too
    r = await s.call('/v1/basic/c', { key, headers: { 'x_request_id': 'smuggled' } });
    assert.equal(r.json.headers['x_request_id'], undefined);
    assert.ok(!up.seen.some((q) => JSON.stringify(q.headers).includes('smuggled')));
    assert.ok(!readFileSync(file, 'utf8').includes('has space'));

    // a refusal carries the id too
    r = await s.call('/v1/basic/d', { headers: { 'x-request-id': 'refused-1' } });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('x-request-id'), 'refused-1');
    l = await lineWhere(file, (x) => x.request_id === 'refused-1');
    assert.equal(l.decision, 'refused');
    assert.equal(l.error, 'missing_key');
    assert.equal(l.upstream_status, null);
    assert.equal(l.upstream_ms, null);
    assert.deepEqual(l.units, {});
  });
});

test('a hostile method and path are escaped: every line stays one valid JSON object', async () => {
  await withLog('1', async (s, file) => {
    const raw = Buffer.concat([Buffer.from('GET /v1/basic/q"uo\\te'), Buffer.from([0xff, 0xc3, 0xa9]),
      Buffer.from('?secret=1 HTTP/1.1\r\nHost: x\r\nX-Request-Id: hostile-1\r\nConnection: close\r\n\r\n')]);
    const got = await new Promise((resolve, reject) => {
      const c = net.connect(s.gwPort, '127.0.0.1', () => c.write(raw));
      let out = '';
      c.on('data', (d) => { out += d; });
      c.on('end', () => resolve(out));
      c.on('error', reject);
    });
    assert.match(got, /^HTTP\/1\.1 400/, 'a raw backslash is a bad_path refusal');
    assert.match(got, /\r\nx-request-id: hostile-1\r\n/i);
    const l = await lineWhere(file, (x) => x.request_id === 'hostile-1');
    assert.equal(l.error, 'bad_path');
    assert.equal(l.decision, 'refused');
    assert.equal(l.path, '/v1/basic/q"uo\\te\u00ffé', 'bytes kept, escaped; invalid UTF-8 as \\u00XX');
    assert.ok(!readFileSync(file, 'utf8').includes('secret=1'), 'the query string is not logged');
  });
});

// The worker reuses a call's state for the next call on its loop (proxy.c's free list) and clears
// the decision's part only when it decides: an answer given before the decision must not log the
// customer, plan, route, key or units of the call before it, nor one refused from its key.
test('answers before the decision, after an admitted call on the same connection, log no one else\'s call', async () => {
  await withLog('1', async (s, file) => {
    const { key } = await s.customer('pro');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 }); // one connection: one worker
    const get = (path, headers) => new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: s.gwPort, path, agent, headers }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode, reused: res.req.reusedSocket }));
      }).on('error', reject);
    });
    try {
      let r = await get('/v1/vision/x', { authorization: `Bearer ${key}`, 'x-request-id': 'before-1', 'x-units': 'tokens=7' });
      assert.equal(r.status, 200);
      const admitted = await lineWhere(file, (x) => x.request_id === 'before-1');
      assert.equal(admitted.plan, 'pro');
      assert.equal(admitted.units.tokens, 7);
      assert.ok(admitted.customer && admitted.key_prefix, 'the admitted call names its customer and key');

      // an encoded slash: a bad_path answer, before the key is even looked at
      r = await get('/v1/vision/a%2Fb', { authorization: `Bearer ${key}`, 'x-request-id': 'early-1' });
      assert.equal(r.status, 400);
      assert.ok(r.reused, 'the same connection, so the same worker and its reused call state');
      let l = await lineWhere(file, (x) => x.request_id === 'early-1');
      assert.equal(l.error, 'bad_path');
      assert.equal(l.decision, 'refused');
      for (const f of ['customer', 'plan', 'route', 'key_prefix', 'upstream_status']) assert.equal(l[f], null, f);
      assert.deepEqual(l.units, {});

      // refused for its key: decided, but no one's
      r = await get('/v1/vision/x', { 'x-request-id': 'early-2' });
      assert.equal(r.status, 401);
      assert.ok(r.reused);
      l = await lineWhere(file, (x) => x.request_id === 'early-2');
      assert.equal(l.error, 'missing_key');
      for (const f of ['customer', 'plan', 'route', 'key_prefix', 'upstream_status']) assert.equal(l[f], null, f);
      assert.deepEqual(l.units, {});
      r = await get('/v1/vision/x', { authorization: 'Bearer tg_malformed', 'x-request-id': 'early-3' });
      assert.equal(r.status, 401);
      l = await lineWhere(file, (x) => x.request_id === 'early-3');
      assert.equal(l.error, 'invalid_key');
      for (const f of ['customer', 'plan', 'route', 'key_prefix']) assert.equal(l[f], null, f);
    } finally { agent.destroy(); }
  });
});

// Sends raw bytes on a new connection; resolves with what came back until the server closed.
function rawExchange(port, raw) {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1', () => c.write(raw));
    let out = '';
    c.on('data', (d) => { out += d; });
    c.on('end', () => resolve(out));
    c.on('error', (e) => (e.code === 'ECONNRESET' && out ? resolve(out) : reject(e)));
  });
}

test('refusals of the HTTP/1 front before routing (400, 431, 505, 413) return X-Request-Id and write one line each, even with sample_success 0', async () => {
  await withLog('0', async (s, file) => {
    const cases = [
      { what: 'malformed head', raw: 'GET /v1/basic/x HTTP/1.1\r\nHost: a\r\nX-Request-Id: not-read-1\r\nNo colon here\r\n\r\n',
        status: 400, error: 'bad_request', given: null, method: null, path: null },
      { what: 'no Host in HTTP/1.1', raw: 'GET /v1/basic/x?k=secret HTTP/1.1\r\nX-Request-Id: early-400\r\n\r\n',
        status: 400, error: 'bad_request', given: 'early-400', method: 'GET', path: '/v1/basic/x' },
      { what: 'headers too large', raw: `GET /v1/basic/x HTTP/1.1\r\nHost: a\r\nX-Request-Id: not-read-2\r\nX-Big: ${'b'.repeat(70000)}\r\n\r\n`,
        status: 431, error: 'request_header_too_large', given: null, method: null, path: null },
      { what: 'HTTP/1.2', raw: 'GET /v1/basic/x HTTP/1.2\r\nHost: a\r\nX-Request-Id: early-505\r\n\r\n',
        status: 505, error: 'http_version_not_supported', given: 'early-505', method: 'GET', path: '/v1/basic/x' },
      { what: 'a request id that is not well formed', raw: 'GET /v1/basic/x HTTP/1.2\r\nHost: a\r\nX-Request-Id: bad id;<x>\r\n\r\n',
        status: 505, error: 'http_version_not_supported', given: null, method: 'GET', path: '/v1/basic/x' },
      { what: 'declared body too large', raw: 'POST /v1/basic/up HTTP/1.1\r\nHost: a\r\nX-Request-Id: early-413\r\nContent-Length: 5000\r\n\r\n',
        status: 413, error: 'request_too_large', given: 'early-413', method: 'POST', path: '/v1/basic/up' },
    ];
    for (const c of cases) {
      const got = await rawExchange(s.gwPort, c.raw);
      assert.match(got, new RegExp(`^HTTP/1\\.1 ${c.status} `), `${c.what}: ${got.slice(0, 200)}`);
      const m = /\r\nx-request-id: ([^\r]*)\r\n/i.exec(got);
      assert.ok(m, `${c.what}: X-Request-Id in ${got.slice(0, 300)}`);
      const rid = m[1];
      if (c.given) assert.equal(rid, c.given, c.what);
      else assert.match(rid, /^[0-9a-f]{32}$/, `${c.what}: a generated id`);
      const l = await lineWhere(file, (x) => x.request_id === rid); // schema-checked by lines()
      assert.equal(lines(file).filter((x) => x.request_id === rid).length, 1, `${c.what}: one line`);
      assert.equal(l.status, c.status, c.what);
      assert.equal(l.error, c.error, c.what);
      assert.equal(l.decision, 'refused');
      assert.equal(l.client, '127.0.0.1');
      assert.equal(l.method, c.method, c.what);
      assert.equal(l.path, c.path, c.what);
      assert.equal(l.upstream_status, null);
      assert.deepEqual(l.units, {});
    }
    assert.ok(!readFileSync(file, 'utf8').includes('secret'), 'the query string is not logged');
    assert.ok(!readFileSync(file, 'utf8').includes('not-read'), 'ids of heads that did not parse are not taken');
  }, { maxBody: 1000 });
});

test('sample_success 0: refusals are logged, successful calls are not', async () => {
  await withLog('0', async (s, file) => {
    const { key } = await s.customer('free');
    const ok = await s.call('/v1/basic/a', { key, headers: { 'x-request-id': 'ok-call' } });
    assert.equal(ok.status, 200);
    const bad = await s.call('/v1/text/a', { key, headers: { 'x-request-id': 'bad-endpoint' } });
    assert.equal(bad.status, 403);
    const l = await lineWhere(file, (x) => x.request_id === 'bad-endpoint');
    assert.equal(l.decision, 'refused');
    assert.equal(l.status, 403);
    assert.ok(l.error);
    // the writer handles lines in order: the 200 before the 403 would be there by now
    assert.ok(!lines(file).some((x) => x.request_id === 'ok-call'));
  });
});

test('SIGUSR1 reopens the log after a rename (logrotate)', async () => {
  await withLog('1', async (s, file) => {
    const { key } = await s.customer('pro');
    await s.call('/v1/basic/a', { key, headers: { 'x-request-id': 'before-rotate' } });
    await lineWhere(file, (x) => x.request_id === 'before-rotate');
    renameSync(file, `${file}.1`);
    s.server.kill('SIGUSR1');
    // Until the writer has reopened, lines still go to the renamed file: call until one lands
    // in the new file (bounded), then check that nothing after it went to the old one.
    let n = 0;
    for (; n < 200 && !lines(file).some((x) => x.request_id.startsWith('after-rotate')); n++) {
      await s.call('/v1/basic/a', { key, headers: { 'x-request-id': `after-rotate-${n}` } });
      await sleep(10);
    }
    assert.ok(lines(file).some((x) => x.request_id.startsWith('after-rotate')), 'a new file was opened');
    assert.ok(lines(`${file}.1`).some((x) => x.request_id === 'before-rotate'), 'the old lines stay in the old file');
    assert.equal(s.server.exitCode, null, 'SIGUSR1 does not stop the server');
  });
});

test('/metrics has the access log\'s drop counter', async () => {
  await withLog('1', async (s) => {
    const r = await s.adminCall('GET', '/metrics');
    assert.match(r.text, /^tollgate_access_log_dropped_total 0$/m);
  });
});

test('a diagnostic line about a call names its request id', async () => {
  await withLog('1', async (s, file) => {
    const { key } = await s.customer('pro');
    const r = await s.call('/v1/basic/a', { key, headers: { 'x-request-id': 'too-many-units', 'x-units': 'tokens=500' } });
    assert.equal(r.status, 200);
    const l = await lineWhere(file, (x) => x.request_id === 'too-many-units');
    assert.deepEqual(l.units, { api_calls: 1 }, 'the refused value is not metered');
    for (let i = 0; i < 200 && !s.server.output.includes('(request too-many-units)'); i++) await sleep(10);
    assert.match(s.server.output, /tokens=500 .*\(request too-many-units\)/);
  }, { maxUnitsPerCall: 100 });
});

test('a relative access_log.path is relative to the configuration file\'s folder', async () => {
  const s = new Stack({ extra: 'access_log: {path: "logs-here.jsonl"}' });
  s.dir = mkdtempSync(join(tmpdir(), 'tollgate-al-'));
  await s.start();
  try {
    await s.call('/v1/basic/a', { headers: { 'x-request-id': 'relative-path' } });
    await lineWhere(join(s.dir, 'logs-here.jsonl'), (x) => x.request_id === 'relative-path');
  } finally { await s.stop(); }
});
