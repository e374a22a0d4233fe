// harness.mjs - starts the real tollgate binary and the demo upstream on loopback for a test.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(new URL('../..', import.meta.url).pathname);
export const TOLLGATE = resolve(root, process.env.TOLLGATE_BIN || 'build/tollgate');
export const UPSTREAM = resolve(root, process.env.DEMO_UPSTREAM_BIN || 'build/demo-upstream');
// Built with a sanitizer (ASan/TSan): slower, and ASan's quarantine inflates memory use.
export const SANITIZED = (() => {
  try { const b = readFileSync(TOLLGATE); return b.includes('__asan_init') || b.includes('__tsan_init'); } catch { return false; }
})();
export const ADMIN_TOKEN = 'test-admin-token-0123456789';
export const KEY_SECRET = 'test-key-secret-0123456789abcdef0123';

// n distinct free ports: every listener stays open until all are allocated, so two calls in a
// row cannot be handed the same port (which happened: gateway and admin on one port).
export async function freePorts(n) {
  const servers = [];
  try {
    for (let i = 0; i < n; i++) {
      const srv = createServer();
      await new Promise((res, rej) => { srv.once('error', rej); srv.listen(0, '127.0.0.1', res); });
      servers.push(srv);
    }
    return servers.map((srv) => srv.address().port);
  } finally {
    await Promise.all(servers.map((srv) => new Promise((r) => srv.close(r))));
  }
}

export async function freePort() {
  return (await freePorts(1))[0];
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The store backend of the tests: SQLite files by default; with TG_TEST_BACKEND=postgres, a fresh
// PostgreSQL database per Stack on the server of TG_TEST_PG_URL (scripts/run-tests.sh starts one
// with scripts/pg-test.sh), created and dropped with psql.
export const BACKEND = /^postgres(ql)?$/.test(process.env.TG_TEST_BACKEND || '') ? 'postgres' : 'sqlite';

// server URL with its database replaced: postgresql://u@h:p/postgres?x=y -> postgresql://u@h:p/name?x=y
export function pgDatabaseUrl(server, name) {
  const m = /^([a-z][a-z0-9+.-]*:\/\/[^/?]*)(\/[^?]*)?(\?.*)?$/i.exec(server);
  if (!m) throw new Error(`TG_TEST_PG_URL ${server} is not a postgresql:// URL`);
  return `${m[1]}/${name}${m[3] || ''}`;
}

function psql(sql) {
  const server = process.env.TG_TEST_PG_URL;
  if (!server) throw new Error('TG_TEST_BACKEND=postgres needs TG_TEST_PG_URL (scripts/pg-test.sh start DIR)');
  const r = spawnSync('psql', [server, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', sql], { encoding: 'utf8' });
  if (r.error) throw new Error(`psql: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`psql ${sql}: exit ${r.status}: ${r.stderr}`);
}

let pgDatabases = 0;
// A fresh, empty PostgreSQL database tg_<pid>_<n>: {name, url}. Several Stacks given the same
// url (opts.database) share it, as the nodes of a cluster do; dropPgDatabase(name) when done.
export function createPgDatabase() {
  const name = `tg_${process.pid}_${pgDatabases++}`;
  psql(`CREATE DATABASE ${name}`);
  return { name, url: pgDatabaseUrl(process.env.TG_TEST_PG_URL, name) };
}

// Drops it, with any session still on it (a node killed with SIGKILL may not have closed its own).
export function dropPgDatabase(name) {
  psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

// A key in tollgate's format with a valid checksum (src/gateway/apikey.c: "tg_live_", 43 base62
// characters, then the CRC-32 of those 51 characters as 6 base62 digits) that no server issued.
const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
function crc32(str) {
  let c = ~0;
  for (let i = 0; i < str.length; i++) {
    c ^= str.charCodeAt(i);
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return (~c) >>> 0;
}
export function wellFormedKey(prefix = 'tg_live_') {
  let body = '';
  for (let i = 0; i < 43; i++) body += B62[Math.floor(Math.random() * 62)];
  let n = crc32(prefix + body), sum = '';
  for (let i = 0; i < 6; i++) { sum = B62[n % 62] + sum; n = Math.floor(n / 62); }
  return prefix + body + sum;
}

// A plan with a minimum commitment of $100 over $1 calls (morePlans), for the tests of periods
// billed at their minimum (invoices.test.mjs, events.test.mjs).
export const COMMITTED_PLAN = `  committed:
    price: "10"
    rate_limit: 1000/sec
    burst: 1000
    minimum: "100"
    on_quota: bill
    charges: [{metric: api_calls, model: per_unit, unit_price: "1"}]
`;

export const PLANS = `
plans:
  free:
    price: "0"
    rate_limit: 10/min
    burst: 10
    endpoints: ["/v1/basic/*"]
    included: {api_calls: 1000}
    on_quota: block
  starter:
    price: "49"
    trial_days: 14
    rate_limit: 100/min
    burst: 100
    endpoints: ["/v1/basic/*", "/v1/text/*"]
    included: {api_calls: 50000}
    on_quota: bill
    charges: [{metric: api_calls, model: per_unit, unit_price: "0.001"}]
  pro:
    price: "199"
    trial_days: 14
    rate_limit: 500/min
    burst: 500
    included: {api_calls: 500000}
    on_quota: bill
    charges: [{metric: api_calls, model: per_unit, unit_price: "0.0005"}]
  enterprise:
    price: "999"
    trial_days: 30
    rate_limit: 2000/min
    burst: 2000
    included: {api_calls: 5000000}
    on_quota: bill
    charges: [{metric: api_calls, model: per_unit, unit_price: "0.0002"}]
  tiny:
    price: "1"
    rate_limit: 1000/sec
    burst: 1000
    included: {api_calls: 5}
    on_quota: block
  overage:
    price: "1"
    rate_limit: 1000/sec
    burst: 1000
    included: {api_calls: 3}
    on_quota: bill
  throttled:
    price: "1"
    rate_limit: 1000/sec
    burst: 1000
    included: {api_calls: 2}
    on_quota: "throttle:1/min"
  metered:
    price: "10"
    rate_limit: 1000/sec
    burst: 1000
    included: {api_calls: 2}
    on_quota: bill
    charges: [{metric: api_calls, model: per_unit, unit_price: "0.25"}]
  load:
    price: "1"
    rate_limit: 1000000/sec
    burst: 1000000
routes:
  - {match: "POST /v1/vision/*", weight: 10, meter: {api_calls: 1, images: 1}}
`;

// opts.upstreamUrl replaces upstream.url (an https:// one, with opts.upstreamCaFile as its
// upstream.ca_file); opts.extra may be a function of the Stack (its ports are known then).
// opts.meteringMetrics: metering.metrics (display names and units), as YAML flow text.
// new Stack(opts): opts.database is storage.database as given (e.g. one createPgDatabase().url for
// several nodes); without it the Stack makes its own store: sqlite:<dir>/tollgate.db, or with
// TG_TEST_BACKEND=postgres a fresh database it drops at stop(). opts.meteringLogDir sets
// metering.log_dir (true: the Stack's temp dir); PostgreSQL has no file to put the metering logs
// beside, so with it the default is the Stack's temp dir; with SQLite the key is left out.
export class Stack {
  constructor(opts = {}) { this.opts = opts; this.procs = []; }

  // storage.database for this Stack, made on first use and kept across restarts.
  storageUrl() {
    if (this.database) return this.database;
    if (this.opts.database) this.database = this.opts.database;
    else if (BACKEND === 'postgres') {
      const db = createPgDatabase();
      this.ownPgDatabase = db.name;
      this.database = db.url;
    } else this.database = `sqlite:${join(this.dir, 'tollgate.db')}`;
    return this.database;
  }

  meteringLogDir() {
    const d = this.opts.meteringLogDir ?? !this.storageUrl().startsWith('sqlite:');
    return d === true ? this.dir : d || null;
  }

  async start() {
    try {
      return await this.startOnce();
    } catch (err) {
      // A stack that failed to start must not leave processes behind: they would keep the test
      // runner alive forever.
      for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) { p.stopping = true; p.kill('SIGKILL'); }
      throw err;
    }
  }

  async startOnce() {
    this.dir = this.dir || mkdtempSync(join(tmpdir(), 'tollgate-it-'));
    if (!this.gwPort) [this.gwPort, this.adminPort, this.upPort] = await freePorts(3);
    const o = this.opts;
    this.config = join(this.dir, 'tollgate.yaml');
    // o.configText(stack): the whole file instead (a test of a shipped configuration; its ports are known)
    writeFileSync(this.config, o.configText ? o.configText(this) : `
server: {listen: "127.0.0.1:${this.gwPort}", admin_listen: "127.0.0.1:${this.adminPort}", workers: 2${o.maxBody ? `, max_body_bytes: ${o.maxBody}` : ''}${o.trustedProxies ? `, trusted_proxies: ${JSON.stringify(o.trustedProxies)}` : ''}}
upstream: {url: "${o.upstreamUrl || `http://127.0.0.1:${o.upstreamPort || this.upPort}`}", timeout_ms: ${o.timeoutMs || 5000}${o.upstreamCaFile ? `, ca_file: ${JSON.stringify(o.upstreamCaFile)}` : ''}}
storage: {database: ${JSON.stringify(this.storageUrl())}}
admin: {token: "${ADMIN_TOKEN}", key_grace_seconds: ${o.grace ?? 3600}}
keys: {secret: "${KEY_SECRET}"${o.maxKeys ? `, max_active_per_customer: ${o.maxKeys}` : ''}}
metering: {durability: ${o.durability || 'batched'}, flush_ms: 5${o.maxUnitsPerCall ? `, max_units_per_call: ${o.maxUnitsPerCall}` : ''}${this.meteringLogDir() ? `, log_dir: ${JSON.stringify(this.meteringLogDir())}` : ''}${o.meteringMetrics ? `, metrics: ${o.meteringMetrics}` : ''}}
# Tests sign up many accounts from 127.0.0.1: generous sign-up limits unless a test sets its own.
portal: ${o.portal || '{signup: {per_address: 1000/hour, global: 10000/hour, trial_address_days: 0}}'}
${o.metrics ? `metrics: ${o.metrics}` : ''}
${o.cluster ? `cluster: ${JSON.stringify(o.cluster)}` : ''}
${typeof o.extra === 'function' ? o.extra(this) : o.extra || ''}
${o.morePlans ? PLANS.replace(/^plans:[ \t]*\n/m, `plans:\n${o.morePlans}`) : PLANS}`);
    if (!o.noUpstream && !this.upstream) {
      this.upstream = this.spawn(UPSTREAM, ['--listen', `127.0.0.1:${this.upPort}`]);
      await this.waitFor(`http://127.0.0.1:${this.upPort}/healthz`);
    }
    // o.bin: another tollgate binary (an installed one); o.cwd: its working directory
    this.server = this.spawn(o.bin || TOLLGATE, ['serve', '-c', this.config, ...(o.testClock ? ['--test-clock'] : [])], o.cwd);
    this.gw = `http://127.0.0.1:${this.gwPort}`;
    this.admin = `http://127.0.0.1:${this.adminPort}`;
    await this.waitFor(`${this.admin}/healthz`);
    return this;
  }

  spawn(bin, args, cwd) {
    const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(cwd ? { cwd } : {}) });
    p.output = '';
    p.stdout.on('data', (d) => { p.output += d; });
    p.stderr.on('data', (d) => { p.output += d; });
    p.exited = new Promise((r) => p.on('exit', (code, signal) => r({ code, signal })));
    // A process that dies while a test still uses it shows up as "fetch failed"; say why.
    p.on('exit', (code, signal) => {
      if (!p.stopping && !this.expectExit) process.stderr.write(`\n${bin} exited unexpectedly (${code}/${signal}):\n${p.output.slice(-8000)}\n`);
    });
    this.procs.push(p);
    return p;
  }

  // up to 12 s: a cluster node restarted right after kill -9 first waits for its old Redis claim to expire
  async waitFor(url) {
    for (let i = 0; i < 480; i++) {
      try { const r = await fetch(url); if (r.ok) return; } catch { /* not up yet */ }
      await sleep(25);
    }
    throw new Error(`${url} did not come up; output:\n${this.procs.map((p) => p.output).join('\n')}`);
  }

  // Stops the gateway with SIGTERM and returns its exit; a sanitizer report makes it non-zero.
  async stopServer() {
    if (!this.server) return { code: 0 };
    this.server.stopping = true;
    this.server.kill('SIGTERM');
    const r = await this.server.exited;
    const out = this.server.output;
    this.server = null;
    if (r.code !== 0) throw new Error(`tollgate exited ${r.code}/${r.signal}:\n${out}`);
    return r;
  }

  async kill9() {
    this.server.stopping = true;
    this.server.kill('SIGKILL');
    await this.server.exited;
    this.server = null;
  }

  async stop() {
    try { await this.stopServer(); } finally {
      for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) { p.stopping = true; p.kill('SIGKILL'); }
      rmSync(this.dir, { recursive: true, force: true });
      if (this.ownPgDatabase) { dropPgDatabase(this.ownPgDatabase); this.ownPgDatabase = null; this.database = null; }
    }
  }

  async adminCall(method, path, body, token = ADMIN_TOKEN) {
    const r = await fetch(this.admin + path, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' },
      body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)),
    });
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: r.status, json, text, headers: r.headers };
  }

  async customer(plan, email) {
    const c = await this.adminCall('POST', '/v1/admin/customers',
      { email: email || `${plan}-${Math.random().toString(36).slice(2)}@example.com`, name: 'Test', plan });
    if (c.status !== 201) throw new Error(`create customer: ${c.status} ${c.text}`);
    const k = await this.adminCall('POST', `/v1/admin/customers/${c.json.id}/keys`, { name: 'test' });
    if (k.status !== 201) throw new Error(`create key: ${k.status} ${k.text}`);
    return { customer: c.json, key: k.json.secret, keyId: k.json.id };
  }

  async call(path, { key, method = 'GET', body, headers = {}, keyHeader = 'bearer' } = {}) {
    const h = { ...headers };
    if (key && keyHeader === 'bearer') h.authorization = `Bearer ${key}`;
    if (key && keyHeader === 'x-api-key') h['x-api-key'] = key;
    const r = await fetch(this.gw + path, { method, headers: h, body });
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: r.status, json, text, headers: r.headers };
  }

  async usage(customerId, metric = 'api_calls') {
    const u = await this.adminCall('GET', `/v1/admin/customers/${customerId}/usage`);
    if (u.status !== 200) throw new Error(`usage: ${u.status} ${u.text}`);
    const m = u.json.metrics.find((x) => x.metric === metric);
    return m ? m.used : 0;
  }

  // The CLI without blocking this process: a fake served from the test's own event loop (the
  // fake Stripe) must keep answering while the command runs. {status, stdout, stderr}.
  cliAsync(args, env = {}) {
    return new Promise((resolve, reject) => {
      const p = spawn(TOLLGATE, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TOLLGATE_ADMIN_TOKEN: ADMIN_TOKEN, ...env } });
      let stdout = '', stderr = '';
      p.stdout.on('data', (d) => { stdout += d; });
      p.stderr.on('data', (d) => { stderr += d; });
      p.on('error', reject);
      p.on('close', (status) => resolve({ status, stdout, stderr }));
    });
  }

  cli(args, env = {}) {
    return spawnSync(TOLLGATE, args, {
      encoding: 'utf8',
      env: { ...process.env, TOLLGATE_ADMIN_TOKEN: ADMIN_TOKEN, ...env },
    });
  }

  // Anonymous resident memory: heap and buffers. Large bodies live in h2o's temporary files,
  // whose page-cache pages the kernel can drop, so they are counted apart (RssFile).
  rssKb(field = 'RssAnon') {
    const s = readFileSync(`/proc/${this.server.pid}/status`, 'utf8');
    return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(s)[1]);
  }
}

export async function withStack(opts, fn) {
  const s = await new Stack(opts).start();
  try { await fn(s); } finally { await s.stop(); }
}
