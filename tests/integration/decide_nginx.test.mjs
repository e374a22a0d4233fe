// decide_nginx.test.mjs - the decision API behind a real nginx (Debian's, /usr/sbin/nginx) in
// front of the demo upstream, configured by the shipped examples/nginx/tollgate.conf itself (its
// addresses and token replaced): auth_request to GET /v1/decide, refusals through error_page,
// settlement over syslog (issue 16), with decide.syslog_secret in the log_format.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Stack, freePorts, TOLLGATE } from './harness.mjs';
import { exchange } from '../security/rawhttp.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const NGINX = process.env.NGINX_BIN || '/usr/sbin/nginx';
const TOKEN = 'decide-token-0123456789abcdef';
const SYSLOG_SECRET = 'syslog-secret-0123456789abcdef+/=';
const SETTLE_TIMEOUT_MS = 1500;

let s, nginx, ngPort, syslogPort, ngUrl;

// Polls fn() until it returns a truthy value, for at most ms; returns the last value.
async function until(fn, ms = 10000) {
  const t0 = Date.now();
  let v;
  while (!(v = await fn()) && Date.now() - t0 < ms) await new Promise((r) => setImmediate(r));
  return v;
}

async function ngCall(path, { key, method = 'GET', headers = {} } = {}) {
  const h = { ...headers };
  if (key) h.authorization = `Bearer ${key}`;
  const r = await fetch(ngUrl + path, { method, headers: h });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text, headers: r.headers };
}

async function decideDirect(path, key, token = TOKEN) {
  const headers = { 'x-original-method': 'GET', 'x-original-uri': path };
  if (key) headers.authorization = `Bearer ${key}`;
  if (token) headers['x-tollgate-token'] = token;
  const r = await fetch(`${s.gw}/v1/decide`, { headers });
  return { status: r.status, headers: r.headers, text: await r.text() };
}

// A settlement line as nginx sends it with the example's log_format (secret: its first field).
const settleLine = (rid, status, units, secret = SYSLOG_SECRET) =>
  `<190>Dec  4 14:30:00 tollgate: tollgate1 ${secret === null ? '' : `${secret} `}${rid} ${status} ${units}`;

function sendSyslog(line) {
  return new Promise((res, rej) => {
    const sock = createSocket('udp4');
    sock.send(Buffer.from(line), syslogPort, '127.0.0.1', (err) => { sock.close(); if (err) rej(err); else res(); });
  });
}

async function metric(name) {
  const r = await fetch(`${s.admin}/metrics`);
  return r.text().then((t) => t.split('\n').find((l) => l.startsWith(name)));
}

before(async () => {
  [ngPort, syslogPort] = await freePorts(2);
  process.env.TG_TEST_SYSLOG_SECRET = SYSLOG_SECRET; // "${VAR}" in the configuration, as a deployment would
  s = await new Stack({
    extra: (st) => `decide: {token: "${TOKEN}", syslog: "127.0.0.1:${syslogPort}", settle_timeout_ms: ${SETTLE_TIMEOUT_MS},
  syslog_secret: "\${TG_TEST_SYSLOG_SECRET}"}
access_log: {path: "${st.dir}/access.log"}
metrics: {open: true}`,
  }).start();
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-nginx-'));
  const example = readFileSync(join(root, 'examples/nginx/tollgate.conf'), 'utf8')
    .replaceAll('127.0.0.1:8080', `127.0.0.1:${s.gwPort}`)
    .replaceAll('127.0.0.1:9000', `127.0.0.1:${s.upPort}`)
    .replaceAll('127.0.0.1:5514', `127.0.0.1:${syslogPort}`)
    .replace('listen 80;', `listen 127.0.0.1:${ngPort};`)
    .replace('CHANGE-ME-to-decide.token', TOKEN)
    .replace('CHANGE-ME-to-decide.syslog_secret', SYSLOG_SECRET);
  assert.ok(example.includes(TOKEN) && example.includes(SYSLOG_SECRET) && example.includes(`127.0.0.1:${ngPort}`),
    'the example has the expected placeholders');
  writeFileSync(join(dir, 'tollgate.conf'), example);
  writeFileSync(join(dir, 'nginx.conf'), `worker_processes 2;
daemon off;
master_process on;
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/tollgate.conf;
}
`);
  nginx = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  nginx.stderr.on('data', (d) => { err += d; });
  ngUrl = `http://127.0.0.1:${ngPort}`;
  const up = await until(async () => {
    if (nginx.exitCode !== null) throw new Error(`nginx exited: ${err}`);
    try { await fetch(ngUrl + '/'); return true; } catch { return false; }
  });
  assert.ok(up, `nginx did not start: ${err}`);
});

after(async () => {
  if (nginx && nginx.exitCode === null) {
    const done = new Promise((r) => nginx.on('exit', r));
    nginx.kill('SIGQUIT');
    await done;
  }
  await s.stop();
});

test('an allowed call reaches the API with the identity headers, and the client gets the rate-limit headers', async () => {
  const { key, customer } = await s.customer('pro');
  const r = await ngCall('/v1/basic/hello?x=1', { key });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.customer, customer.id);
  assert.equal(r.json.plan, 'pro');
  assert.equal(r.json.path, '/v1/basic/hello');
  assert.equal(r.json.saw_authorization, false); // the key stays out of the API
  assert.equal(r.headers.get('x-ratelimit-limit'), '500');
  assert.ok(Number(r.headers.get('x-ratelimit-remaining')) < 500);
  // the IETF draft's headers too, as tollgate's own proxy sends them
  assert.equal(r.headers.get('ratelimit-policy'), '"default";q=500;w=60');
  assert.match(r.headers.get('ratelimit') ?? '', /^"default";r=\d+;t=\d+$/);
  assert.equal(r.headers.get('x-quota-remaining'), '499999');
  // the settlement line comes over syslog: the call is billed once
  assert.ok(await until(async () => (await s.usage(customer.id)) === 1), 'billed through the syslog line');
});

test('missing and unknown keys are 401 with tollgate\'s error type', async () => {
  let r = await ngCall('/v1/basic/hello');
  assert.equal(r.status, 401);
  assert.equal(r.json.error.type, 'missing_key');
  r = await ngCall('/v1/basic/hello', { key: 'tg_live_nope' });
  assert.equal(r.status, 401);
  assert.equal(r.json.error.type, 'invalid_key');
});

test('an endpoint outside the plan is 403', async () => {
  const { key } = await s.customer('free');
  const r = await ngCall('/v1/text/summarize', { key });
  assert.equal(r.status, 403);
  assert.equal(r.json.error.type, 'endpoint_not_in_plan');
});

test('a path the API would read another way is 400 bad_path, not decided as the path it resolves to', async () => {
  // proxy_pass without a URI forwards the client's path as sent: a decision on the resolved
  // "/v1/basic/x" would let "/v1/vision/../basic/x" reach a router that serves it as vision.
  // The refusal reaches the client as 400 with its JSON (nginx would make a 400 from the
  // auth request a 500).
  const { key, customer } = await s.customer('free'); // /v1/basic/* only
  const raw = (path) => exchange(ngPort, `GET ${path} HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer ${key}\r\nConnection: close\r\n\r\n`);
  const problems = [];
  for (const path of ['/v1/vision/../basic/x', '/v1/vision/%2e%2e/basic/x', '/v1/vision/labels/%2E%2e/../basic/x',
    '/v1/basic/./x', '/v1/basic//x', '/v1/basic/a%2Fb', '/v1/basic/%252e%252e/x']) {
    const r = await raw(path);
    let type;
    try { type = JSON.parse(r.body.toString()).error.type; } catch { /* not JSON */ }
    if (r.status !== 400 || type !== 'bad_path') problems.push(`${path}: ${r.status} ${r.body}`);
  }
  assert.deepEqual(problems, []);
  const ok = await raw('/v1/basic/a..b');
  assert.equal(ok.status, 200, ok.body.toString());
  assert.ok(await until(async () => (await s.usage(customer.id)) === 1), 'only the ordinary path was billed');
});

test('over the rate limit: 429 with Retry-After and the rate-limit headers', async () => {
  const { key } = await s.customer('free'); // 10/min, burst 10
  const codes = [];
  let last;
  for (let i = 0; i < 11; i++) { last = await ngCall('/v1/basic/x', { key }); codes.push(last.status); }
  assert.deepEqual(codes, [...Array(10).fill(200), 429]);
  assert.equal(last.json.error.type, 'rate_limited');
  assert.ok(Number(last.headers.get('retry-after')) >= 1, `Retry-After: ${last.headers.get('retry-after')}`);
  assert.equal(last.headers.get('x-ratelimit-remaining'), '0');
  assert.equal(last.headers.get('ratelimit-policy'), '"default";q=10;w=60');
  assert.match(last.headers.get('ratelimit') ?? '', /^"default";r=0;t=\d+$/);
});

test('quota used up on a block plan: 429 quota_exceeded with Retry-After', async () => {
  const { key } = await s.customer('tiny'); // 5 calls, block
  for (let i = 0; i < 5; i++) assert.equal((await ngCall('/v1/basic/x', { key })).status, 200);
  const r = await ngCall('/v1/basic/x', { key });
  assert.equal(r.status, 429);
  assert.equal(r.json.error.type, 'quota_exceeded');
  assert.ok(Number(r.headers.get('retry-after')) > 0);
});

test('a suspended customer gets 402', async () => {
  const { key, customer } = await s.customer('pro');
  await s.adminCall('PATCH', `/v1/admin/customers/${customer.id}`, { status: 'suspended' });
  const r = await ngCall('/v1/basic/x', { key });
  assert.equal(r.status, 402);
  assert.equal(r.json.error.type, 'account_suspended');
});

test('a revoked key is refused within one second', async () => {
  const { key, keyId } = await s.customer('pro');
  assert.equal((await ngCall('/v1/basic/x', { key })).status, 200);
  const t0 = Date.now();
  assert.equal((await s.adminCall('DELETE', `/v1/admin/keys/${keyId}`)).status, 200);
  let r;
  do { r = await ngCall('/v1/basic/x', { key }); } while (r.status === 200 && Date.now() - t0 < 1000);
  assert.equal(r.status, 401);
  assert.ok(Date.now() - t0 < 1000, `refused after ${Date.now() - t0} ms`);
});

test('usage is exact after concurrent load through nginx: billed calls, units, failures not billed', async () => {
  const { key, customer } = await s.customer('load');
  const settledBefore = Number((await metric('tollgate_decide_settlement_lines_total{result="settled"}')).split(' ')[1]);
  const jobs = [];
  for (let i = 0; i < 150; i++) jobs.push(ngCall('/v1/basic/x', { key }));
  for (let i = 0; i < 50; i++) jobs.push(ngCall('/v1/units?tokens=7', { key }));
  for (let i = 0; i < 20; i++) jobs.push(ngCall('/v1/status/500', { key }));
  const res = await Promise.all(jobs);
  assert.equal(res.filter((r) => r.status === 200).length, 200);
  assert.equal(res.filter((r) => r.status === 500).length, 20);
  assert.ok(res.every((r) => !r.headers.get('tollgate-units')), 'Tollgate-Units is not shown to clients');
  assert.ok(await until(async () => (await s.usage(customer.id)) === 200 && (await s.usage(customer.id, 'tokens')) === 350),
    `api_calls ${await s.usage(customer.id)} (want 200), tokens ${await s.usage(customer.id, 'tokens')} (want 350)`);
  // every call settled by its own line (the 500s released), none left for the timeout rule
  const settled = async () => Number((await metric('tollgate_decide_settlement_lines_total{result="settled"}')).split(' ')[1]);
  assert.ok(await until(async () => (await settled()) - settledBefore === 220), `${(await settled()) - settledBefore} lines settled`);
  assert.equal(await metric('tollgate_decide_expired_total'), 'tollgate_decide_expired_total 0');
  assert.equal(await s.usage(customer.id), 200);
});

test('the decision API needs the service token', async () => {
  const { key } = await s.customer('pro');
  let r = await decideDirect('/v1/basic/x', key, null);
  assert.equal(r.status, 403);
  assert.match(r.text, /decide_token_invalid/);
  r = await decideDirect('/v1/basic/x', key, TOKEN + 'x');
  assert.equal(r.status, 403);
  assert.equal(r.headers.get('x-tollgate-reservation'), null);
});

test('a settlement line settles once; malformed and unknown lines are counted and ignored', async () => {
  const { key, customer } = await s.customer('load');
  const d = await decideDirect('/v1/basic/x', key);
  assert.equal(d.status, 200);
  const rid = d.headers.get('x-tollgate-reservation');
  assert.match(rid, /^rsv_[0-9a-f]{32}$/);
  const line = settleLine(rid, 200, 'tokens=5');
  await sendSyslog(line);
  await sendSyslog(line); // a duplicate does nothing
  await sendSyslog('<190>Dec  4 14:30:00 tollgate: something else entirely');
  await sendSyslog(settleLine(`rsv_${'0'.repeat(32)}`, 200, '-'));
  assert.ok(await until(async () => (await metric('tollgate_decide_settlement_lines_total{result="unknown"}'))?.endsWith(' 2')),
    await metric('tollgate_decide_settlement_lines_total{result="unknown"}'));
  assert.ok((await metric('tollgate_decide_settlement_lines_total{result="malformed"}')).endsWith(' 1'));
  assert.ok(await until(async () => (await s.usage(customer.id)) === 1 && (await s.usage(customer.id, 'tokens')) === 5));
});

test('a call without a settlement is billed with its route\'s units after decide.settle_timeout_ms', async () => {
  const { key, customer } = await s.customer('load');
  const d = await decideDirect('/v1/basic/x', key);
  assert.equal(d.status, 200);
  assert.equal(await s.usage(customer.id), 0);
  assert.ok(await until(async () => (await s.usage(customer.id)) === 1, SETTLE_TIMEOUT_MS + 5000), 'billed by the timeout rule');
  const rid = d.headers.get('x-tollgate-reservation');
  assert.equal(await metric('tollgate_decide_expired_total'), 'tollgate_decide_expired_total 1');
  const unknown = async () => Number((await metric('tollgate_decide_settlement_lines_total{result="unknown"}')).split(' ')[1]);
  const before = await unknown();
  await sendSyslog(settleLine(rid, 200, '-')); // too late: nothing
  assert.ok(await until(async () => (await unknown()) === before + 1));
  assert.equal(await s.usage(customer.id), 1);
});

const lines = async (result) => Number((await metric(`tollgate_decide_settlement_lines_total{result="${result}"}`)).split(' ')[1]);

test('a forged settlement line, without decide.syslog_secret or with a wrong one, settles nothing', async () => {
  // Anything that can send the socket a datagram and learns an open reservation id would
  // otherwise settle the call as failed (500: released, not billed) or with other units.
  const { key, customer } = await s.customer('load');
  const d = await decideDirect('/v1/basic/x', key);
  assert.equal(d.status, 200);
  const rid = d.headers.get('x-tollgate-reservation');
  const badBefore = await lines('bad_secret');
  const settledBefore = await lines('settled');
  await sendSyslog(settleLine(rid, 500, '-', null)); // the format without a secret
  await sendSyslog(settleLine(rid, 500, '-', SYSLOG_SECRET.slice(0, -1) + 'x')); // a wrong one, same length
  await sendSyslog(settleLine(rid, 200, 'tokens=900', 'syslog-secret')); // a shorter one
  await sendSyslog(settleLine(rid, 200, 'tokens=900', `${SYSLOG_SECRET}x`)); // a longer one
  assert.ok(await until(async () => (await lines('bad_secret')) === badBefore + 4), `${await lines('bad_secret')} bad_secret`);
  assert.equal(await lines('settled'), settledBefore);
  assert.equal(await s.usage(customer.id), 0);
  // still open: the line with the secret settles it, with its own units
  await sendSyslog(settleLine(rid, 200, 'tokens=3'));
  assert.ok(await until(async () => (await s.usage(customer.id)) === 1 && (await s.usage(customer.id, 'tokens')) === 3),
    `api_calls ${await s.usage(customer.id)}, tokens ${await s.usage(customer.id, 'tokens')}`);
  assert.equal(await lines('settled'), settledBefore + 1);
});

test('a reservation with only forged lines is settled by the timeout rule, not as they said', async () => {
  const { key, customer } = await s.customer('load');
  const d = await decideDirect('/v1/basic/x', key);
  assert.equal(d.status, 200);
  const rid = d.headers.get('x-tollgate-reservation');
  const badBefore = await lines('bad_secret');
  await sendSyslog(settleLine(rid, 500, '-', null)); // would release it, unbilled
  assert.ok(await until(async () => (await lines('bad_secret')) === badBefore + 1));
  assert.ok(await until(async () => (await s.usage(customer.id)) === 1, SETTLE_TIMEOUT_MS + 5000), 'billed by the timeout rule');
});

test('decide.syslog_secret is in no output: not in tollgate\'s logs, /metrics or check-config', async () => {
  const access = readFileSync(join(s.dir, 'access.log'), 'utf8');
  assert.match(access, /"via":"settlement"/, 'the settlements above have their access-log lines');
  assert.ok(!access.includes(SYSLOG_SECRET), 'not in the access log');
  const server = s.procs.find((p) => p.spawnargs.includes('serve'));
  assert.ok(server.output.length > 0);
  assert.ok(!server.output.includes(SYSLOG_SECRET), 'not in the diagnostic log');
  assert.doesNotMatch(server.output, /without decide\.syslog_secret/, 'no warning when it is set');
  const m = await (await fetch(`${s.admin}/metrics`)).text();
  assert.ok(!m.includes(SYSLOG_SECRET));
  const r = spawnSync(TOLLGATE, ['check-config', '-c', s.config], { encoding: 'utf8', env: process.env });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /settlements from nginx over syslog on udp 127\.0\.0\.1:\d+, lines carry decide\.syslog_secret/);
  assert.ok(!(r.stdout + r.stderr).includes(SYSLOG_SECRET));
});

test('without decide.syslog_secret: a warning on a loopback address, a refusal (FILE:LINE) on any other', async () => {
  const [port] = await freePorts(1);
  const s2 = await new Stack({ extra: `decide: {token: "${TOKEN}", syslog: "127.0.0.1:${port}"}` }).start();
  try {
    const server = s2.procs.find((p) => p.spawnargs.includes('serve'));
    assert.ok(await until(async () => /decide\.syslog 127\.0\.0\.1:\d+ takes settlement lines without decide\.syslog_secret/.test(server.output)),
      server.output);
  } finally { await s2.stop(); }
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-syslog-'));
  const cfg = join(dir, 'tollgate.yaml');
  writeFileSync(cfg, `upstream: {url: "http://127.0.0.1:9"}
admin: {token: "0123456789abcdef0123"}
keys: {secret: "0123456789abcdef0123456789abcdef01"}
decide: {token: "${TOKEN}", syslog: "0.0.0.0:${port}"}
plans: {a: {price: "0", rate_limit: 1/sec}}
`);
  for (const cmd of ['check-config', 'serve']) {
    const r = spawnSync(TOLLGATE, [cmd, '-c', cfg], { encoding: 'utf8', timeout: 20000 });
    assert.notEqual(r.status, 0, `${cmd}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr + r.stdout, /tollgate\.yaml:4: decide\.syslog: "0\.0\.0\.0:\d+" is not a loopback address, and decide\.syslog_secret is not set/, cmd);
  }
  rmSync(dir, { recursive: true, force: true });
});
