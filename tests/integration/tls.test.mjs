// tls.test.mjs - listeners and TLS (docs/configuration.md "Listeners and TLS"): certificates made
// here with `openssl req` (a CA and a leaf for 127.0.0.1 and localhost), TLS on the gateway and
// admin listeners answered by node's https client trusting that CA, TLS 1.2+ only, ALPN
// http/1.1, an https:// upstream (a node https server) with and without upstream.ca_file, each
// listener answering only its own routes, and certificate files that fail at start with FILE:LINE.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import https from 'node:https';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_TOKEN, Stack, TOLLGATE, freePorts } from './harness.mjs';

let dir, ca, upstream, upPort, stack, trusting, ports;

function openssl(...args) { execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' }); }

// GET/POST over https trusting the test CA; {status, json, text, alpn, protocol}.
function request(port, path, { method = 'GET', token, body, servername = 'localhost' } = {}) {
  return new Promise((resolve, reject) => {
    const headers = { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) };
    if (typeof body === 'string') body = { raw: body };
    const req = https.request({ host: '127.0.0.1', port, path, method, headers, ca, servername, agent: false, ALPNProtocols: ['http/1.1'] }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, json, text, alpn: res.socket.alpnProtocol, protocol: res.socket.getProtocol?.() });
      });
    });
    req.on('error', reject);
    req.end(body ? (body.raw ?? JSON.stringify(body)) : undefined);
  });
}

async function plain(port, path, token) {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: r.status, text: await r.text() };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tollgate-tls-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=tollgate test CA');
  openssl('req', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=localhost');
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem',
    '-days', '2', '-extfile', 'ext.cnf');
  ca = readFileSync(join(dir, 'ca.pem'));

  // the upstream: node's https server with the leaf, answering what it was asked
  [upPort] = await freePorts(1);
  upstream = https.createServer({ key: readFileSync(join(dir, 'leaf.key')), cert: readFileSync(join(dir, 'leaf.pem')) },
    (req, res) => {
      let bytes = 0;
      req.on('data', (d) => { bytes += d.length; });
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ upstream: 'https', path: req.url, sni: req.socket.servername || null, bytes }));
      });
    });
  await new Promise((r) => upstream.listen(upPort, '::', r)); // dual stack: localhost may resolve to ::1 or 127.0.0.1

  // gateway and admin over TLS; portal plain; metrics plain on the port the harness waits on
  ports = await freePorts(2);
  const cert = JSON.stringify(join(dir, 'leaf.pem')), key = JSON.stringify(join(dir, 'leaf.key'));
  trusting = new Stack({
    noUpstream: true,
    upstreamUrl: `https://localhost:${upPort}`,
    upstreamCaFile: join(dir, 'ca.pem'),
    metrics: '{token: "metrics-token-0123456789"}',
    extra: (s) => `public_urls: {gateway: "https://api.example.test", portal: "https://developers.example.test"}
listeners:
  gateway: {address: "127.0.0.1:${s.gwPort}", tls: {certificate: ${cert}, key: ${key}}}
  admin: {address: "127.0.0.1:${ports[0]}", tls: {certificate: ${cert}, key: ${key}}}
  portal: {address: "127.0.0.1:${ports[1]}"}
  metrics: {address: "127.0.0.1:${s.adminPort}"}
`,
  });
  await trusting.start();
});

after(async () => {
  if (trusting) await trusting.stop();
  if (upstream) upstream.close();
  rmSync(dir, { recursive: true, force: true });
});

test('TLS gateway and admin listeners answer node\'s https client trusting the test CA; calls reach an https:// upstream', async () => {
  const c = await request(ports[0], '/v1/admin/customers', { method: 'POST', token: ADMIN_TOKEN, body: { email: 'tls@example.com', name: 'T', plan: 'free' } });
  assert.equal(c.status, 201, c.text);
  assert.equal(c.alpn, 'http/1.1');
  const k = await request(ports[0], `/v1/admin/customers/${c.json.id}/keys`, { method: 'POST', token: ADMIN_TOKEN, body: { name: 'k' } });
  assert.equal(k.status, 201, k.text);
  const r = await request(trusting.gwPort, '/v1/basic/hello', { token: k.json.secret });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.upstream, 'https');
  assert.equal(r.json.path, '/v1/basic/hello');
  assert.equal(r.json.sni, 'localhost', 'the upstream host goes out as SNI');
  assert.equal(r.alpn, 'http/1.1');
  // a body streamed through the TLS front to the TLS upstream
  const big = 'x'.repeat(300000);
  const p = await request(trusting.gwPort, '/v1/basic/upload', { method: 'POST', token: k.json.secret, body: big });
  assert.equal(p.status, 200, p.text);
  assert.equal(p.json.bytes, big.length);
  // a refusal before the body is read (lingering close over TLS) still reaches the client whole
  const no = await request(trusting.gwPort, '/v1/basic/upload', { method: 'POST', token: 'tg_live_not_a_key', body: big });
  assert.equal(no.status, 401, no.text);
  assert.equal(no.json.error.type, 'invalid_key');
});

test('ALPN offers http/1.1 only, and TLS 1.2 and 1.3 are accepted while TLS 1.1 is refused', async () => {
  const connect = (opts) => new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port: trusting.gwPort, ca, servername: 'localhost', ...opts }, () => {
      const out = { ok: true, alpn: s.alpnProtocol, version: s.getProtocol() };
      s.end();
      resolve(out);
    });
    s.on('error', (err) => resolve({ ok: false, err: err.code || err.message }));
  });
  const h2 = await connect({ ALPNProtocols: ['h2', 'http/1.1'] });
  assert.equal(h2.ok, true);
  assert.equal(h2.alpn, 'http/1.1');
  const only2 = await connect({ ALPNProtocols: ['h2'] });
  assert.equal(only2.alpn, false, 'h2 alone is not selected');
  assert.equal((await connect({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' })).version, 'TLSv1.2');
  assert.equal((await connect({ minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' })).version, 'TLSv1.3');
  const old = await connect({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
  assert.equal(old.ok, false, 'TLS 1.1 must be refused');
  // plain HTTP to a TLS listener is not answered as HTTP
  await assert.rejects(fetch(`http://127.0.0.1:${trusting.gwPort}/v1/basic/hello`));
});

test('each listener serves only its own routes', async () => {
  const admin = ports[0], portal = ports[1], metrics = trusting.adminPort;
  // the gateway never answers the admin API: the admin token is no API key there
  const g = await request(trusting.gwPort, '/v1/admin/customers', { token: ADMIN_TOKEN });
  assert.equal(g.status, 401, g.text);
  assert.equal(g.json.error.type, 'invalid_key');
  // admin listener: admin API and dashboard; not the portal, plans or metrics (they have listeners)
  assert.equal((await request(admin, '/v1/admin/customers', { token: ADMIN_TOKEN })).status, 200);
  assert.equal((await request(admin, '/admin/')).status, 200);
  // the API description is the admin listener's (docs/openapi.yaml), not the public portal's
  const doc = await request(admin, '/openapi.json');
  assert.equal(doc.status, 200, doc.text);
  assert.equal(doc.json.openapi, '3.1.0');
  assert.equal((await plain(portal, '/openapi.json')).status, 404);
  for (const p of ['/portal/', '/v1/plans', '/metrics', '/healthz']) {
    const r = await request(admin, p, { token: ADMIN_TOKEN });
    assert.equal(r.status, 404, `${p} on the admin listener: ${r.text}`);
    assert.equal(r.json.error.type, 'route_not_found');
  }
  // portal listener: pages, plans, sign-up; not the admin API, the dashboard or metrics
  assert.equal((await plain(portal, '/portal/')).status, 200);
  assert.equal((await plain(portal, '/v1/plans')).status, 200);
  for (const p of ['/v1/admin/customers', '/admin/', '/metrics', '/healthz'])
    assert.equal((await plain(portal, p, ADMIN_TOKEN)).status, 404, `${p} on the portal listener`);
  // metrics listener: /metrics and /healthz only
  assert.equal((await plain(metrics, '/healthz')).status, 200);
  const m = await plain(metrics, '/metrics', 'metrics-token-0123456789');
  assert.equal(m.status, 200);
  assert.match(m.text, /tollgate_/);
  for (const p of ['/v1/admin/customers', '/portal/', '/v1/plans'])
    assert.equal((await plain(metrics, p, ADMIN_TOKEN)).status, 404, `${p} on the metrics listener`);
});

test('an https:// upstream whose CA is not trusted is a 502 upstream_tls_error, unbilled', async () => {
  // no upstream.ca_file: the system's CAs, and the test CA is not among them
  const s = new Stack({ noUpstream: true, upstreamUrl: `https://127.0.0.1:${upPort}` });
  try {
    await s.start();
    const { customer, key } = await s.customer('free');
    const r = await s.call('/v1/basic/hello', { key });
    assert.equal(r.status, 502, r.text);
    assert.equal(r.json.error.type, 'upstream_tls_error');
    assert.equal(await s.usage(customer.id), 0);
  } finally { await s.stop(); }
});

test('an https:// upstream whose certificate does not name the host is a 502 upstream_tls_error, even with its CA trusted', async () => {
  // the leaf names localhost and 127.0.0.1, not ::1 (the same server, reached by another name)
  const s = new Stack({ noUpstream: true, upstreamUrl: `https://[::1]:${upPort}`, upstreamCaFile: join(dir, 'ca.pem') });
  try {
    await s.start();
    const { key } = await s.customer('free');
    const r = await s.call('/v1/basic/hello', { key });
    assert.equal(r.status, 502, r.text);
    assert.equal(r.json.error.type, 'upstream_tls_error');
  } finally { await s.stop(); }
});

test('an https:// upstream given by IP address gets no SNI (RFC 6066 3) and its IP SAN is still verified', async () => {
  // a leaf that names 127.0.0.1 only, by an IP SAN (its CN is no address)
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', ...ec, '-keyout', 'ip.key', '-out', 'ip.csr', '-subj', '/CN=ip-only upstream');
  writeFileSync(join(dir, 'ip.cnf'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', 'ip.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'ip.pem',
    '-days', '2', '-extfile', 'ip.cnf');
  const hellos = []; // the server_name of every ClientHello: SNICallback runs only when one is sent
  let sniCalls = 0;
  const server = https.createServer({
    key: readFileSync(join(dir, 'ip.key')), cert: readFileSync(join(dir, 'ip.pem')),
    SNICallback: (name, cb) => { sniCalls++; cb(null, null); },
  }, (req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ upstream: 'https-ip', sni: req.socket.servername || null }));
  });
  server.on('secureConnection', (sock) => hellos.push(sock.servername));
  const [port] = await freePorts(1);
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  const s = new Stack({ noUpstream: true, upstreamUrl: `https://127.0.0.1:${port}`, upstreamCaFile: join(dir, 'ca.pem') });
  try {
    await s.start();
    const { key } = await s.customer('free');
    const r = await s.call('/v1/basic/hello', { key });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.upstream, 'https-ip');
    assert.equal(r.json.sni, null);
    assert.ok(hellos.length >= 1);
    for (const name of hellos) assert.ok(!name, `ClientHello carried server_name ${name}`);
    assert.equal(sniCalls, 0);
  } finally {
    await s.stop();
    server.close();
  }
});

test('unreadable or mismatched certificate files stop the start with FILE:LINE', async () => {
  const [p1, p2, p3] = await freePorts(3);
  const run = (tlsYaml) => new Promise((resolve) => {
    const cfg = join(dir, 'bad.yaml');
    writeFileSync(cfg, readFileSync(trusting.config, 'utf8').replace(/^listeners:[\s\S]*?(?=^plans:)/m,
      `listeners:\n  gateway: {address: "127.0.0.1:${p1}"}\n  admin: {address: "127.0.0.1:${p2}"}\n  metrics:\n    address: "127.0.0.1:${p3}"\n    tls: ${tlsYaml}\n`)
      .replace(/^storage: .*$/m, `storage: {database: ${JSON.stringify(`sqlite:${join(dir, 'bad.db')}`)}}`));
    const line = readFileSync(cfg, 'utf8').split('\n').findIndex((l) => l.startsWith('    tls:')) + 1;
    const p = spawn(TOLLGATE, ['serve', '-c', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), 20000);
    p.on('exit', (code) => { clearTimeout(timer); resolve({ code, out, cfg, line }); });
  });
  const missing = await run(`{certificate: ${JSON.stringify(join(dir, 'nope.pem'))}, key: ${JSON.stringify(join(dir, 'leaf.key'))}}`);
  assert.notEqual(missing.code, 0);
  assert.match(missing.out, new RegExp(`bad\\.yaml:${missing.line}: listeners\\.metrics\\.tls: cannot read .*nope\\.pem`));
  const mismatch = await run(`{certificate: ${JSON.stringify(join(dir, 'leaf.pem'))}, key: ${JSON.stringify(join(dir, 'ca.key'))}}`);
  assert.notEqual(mismatch.code, 0);
  assert.match(mismatch.out, new RegExp(`bad\\.yaml:${mismatch.line}: listeners\\.metrics\\.tls: the key in .*ca\\.key does not match`));
});

test('public_urls: the sign-up answer names the gateway as clients reach it (the portal\'s curl example)', async () => {
  const r = await fetch(`http://127.0.0.1:${ports[1]}/v1/signup`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'pub@example.com', password: 'a long enough passphrase 42', plan: 'free' }),
  });
  const j = await r.json();
  assert.equal(r.status, 201, JSON.stringify(j));
  assert.equal(j.gateway_url, 'https://api.example.test');
  // without public_urls the gateway listener's own address, with https:// when it has TLS
  const s = new Stack({ extra: (st) => `listeners:\n  gateway:\n    address: "127.0.0.1:${st.gwPort}"\n    tls: {certificate: ${JSON.stringify(join(dir, 'leaf.pem'))}, key: ${JSON.stringify(join(dir, 'leaf.key'))}}\n  admin: {address: "127.0.0.1:${st.adminPort}"}\n` });
  try {
    await s.start();
    const r2 = await s.adminCall('POST', '/v1/signup', { email: 'pub2@example.com', password: 'a long enough passphrase 42', plan: 'free' }, null);
    assert.equal(r2.status, 201, r2.text);
    assert.equal(r2.json.gateway_url, `https://127.0.0.1:${s.gwPort}`);
  } finally { await s.stop(); }
});

test('API4:2023 unrestricted resource consumption: a connection that never completes its TLS handshake is closed', async () => {
  const net = await import('node:net');
  const closed = await new Promise((resolve) => {
    const sock = net.connect(trusting.gwPort, '127.0.0.1');
    sock.on('connect', () => sock.write(Buffer.from([0x16, 0x03, 0x01]))); // the start of a ClientHello, then nothing
    const bound = setTimeout(() => { sock.destroy(); resolve(false); }, 20000); // TLS_HANDSHAKE_TIMEOUT_MS is 10 s
    sock.on('close', () => { clearTimeout(bound); resolve(true); });
    sock.on('error', () => {});
  });
  assert.equal(closed, true, 'the server closes a stalled handshake');
});

test('a reload (POST /v1/admin/reload, as SIGHUP) swaps the listeners\' certificates: new connections get the new one', async () => {
  const serial = (port) => new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ALPNProtocols: ['http/1.1'] }, () => {
      const s = sock.getPeerCertificate().serialNumber;
      sock.end();
      resolve(s);
    });
    sock.on('error', reject);
  });
  const before = await serial(trusting.gwPort);
  // a new leaf from the same CA, written over the files the configuration names
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', ...ec, '-keyout', 'leaf2.key', '-out', 'leaf2.csr', '-subj', '/CN=localhost');
  openssl('x509', '-req', '-in', 'leaf2.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf2.pem',
    '-days', '2', '-extfile', 'ext.cnf');
  copyFileSync(join(dir, 'leaf2.pem'), join(dir, 'leaf.pem'));
  copyFileSync(join(dir, 'leaf2.key'), join(dir, 'leaf.key'));
  const r = await request(ports[0], '/v1/admin/reload', { method: 'POST', token: ADMIN_TOKEN, body: {} });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.hook_errors, []);
  const after = await serial(trusting.gwPort);
  assert.notEqual(after, before);
  assert.equal(after, await serial(ports[0])); // the admin listener too
});
