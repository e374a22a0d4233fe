// migrate_pg.test.mjs - `tollgate migrate --from sqlite:... --to postgresql://...` (issue 12): a
// real gateway on SQLite makes customers, keys, usage through the proxy, an invoice, a credit, a
// plan change and a portal session; once stopped, its database is copied into a real PostgreSQL
// (scripts/pg-test.sh, started here unless TG_TEST_PG_URL names one) and read back with psql;
// a second copy into the same database is refused and changes nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Stack, TOLLGATE, KEY_SECRET, pgDatabaseUrl } from './harness.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
let pgDir = null;
let serverUrl = process.env.TG_TEST_PG_URL || '';

before(() => {
  if (serverUrl) return;
  pgDir = mkdtempSync(join(tmpdir(), 'tg-pg-migrate-'));
  const r = spawnSync(join(root, 'scripts/pg-test.sh'), ['start', pgDir], { encoding: 'utf8' });
  assert.equal(r.status, 0, `scripts/pg-test.sh start: ${r.stderr}`);
  serverUrl = r.stdout.trim();
});

after(() => {
  if (!pgDir) return;
  spawnSync(join(root, 'scripts/pg-test.sh'), ['stop', pgDir], { encoding: 'utf8' });
  rmSync(pgDir, { recursive: true, force: true });
});

const dbUrl = (name) => pgDatabaseUrl(serverUrl, name);

// A gateway on a SQLite file of its own, whatever backend the other tests run on (the source of
// the copy is SQLite by definition). {s, from}; the caller stops s and removes dir.
async function sqliteStack(opts = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tg-migrate-src-'));
  const from = `sqlite:${join(dir, 'tollgate.db')}`;
  const s = await new Stack({ ...opts, database: from }).start();
  return { s, from, dir };
}

// psql -At: rows as lines, columns separated by |. Fails the test on any error.
function psql(url, ...sql) {
  const r = spawnSync('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-d', url, ...sql.flatMap((q) => ['-c', q])], { encoding: 'utf8' });
  assert.equal(r.status, 0, `psql: ${r.stderr}\n${sql}`);
  return r.stdout.trim();
}

function migrate(args) {
  return spawnSync(TOLLGATE, ['migrate', ...args], { encoding: 'utf8' });
}

// Every table's row count in the target, as one string (to see that nothing changed).
function allCounts(url) {
  const tables = psql(url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1").split('\n');
  return tables.map((t) => `${t}=${psql(url, `SELECT count(*) FROM "${t}"`)}`).join(' ');
}

test('migrate copies a stopped SQLite node into PostgreSQL, verified, and refuses a non-empty target', async () => {
  const db = `tg_${process.pid}_migrate`;
  psql(serverUrl, `DROP DATABASE IF EXISTS ${db}`);
  psql(serverUrl, `CREATE DATABASE ${db}`);
  const target = dbUrl(db);
  const { s, from, dir } = await sqliteStack({ testClock: true });
  try {
    // customers, keys and usage through the real proxy
    const a = await s.customer('metered');
    const b = await s.customer('free');
    for (let i = 0; i < 5; i++) assert.equal((await s.call('/v1/basic/x', { key: a.key })).status, 200);
    for (let i = 0; i < 3; i++) assert.equal((await s.call('/v1/basic/y', { key: b.key })).status, 200);
    const extra = await s.adminCall('POST', `/v1/admin/customers/${b.customer.id}/keys`, { name: 'second' });
    assert.equal(extra.status, 201);
    assert.equal((await s.adminCall('DELETE', `/v1/admin/keys/${extra.json.id}`)).status, 200);

    // a portal account with a session
    const signup = await fetch(`${s.admin}/v1/signup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: `dev-${process.pid}@example.com`, password: 'correct horse battery', plan: 'free' }),
    });
    assert.equal(signup.status, 201);
    const dev = await signup.json();

    // a period closes into an invoice, finalized (numbered); a credit and a plan change after it
    assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 })).status, 200);
    // every customer's first period (the scheduler may have closed some already)
    assert.equal((await s.adminCall('POST', '/v1/admin/invoices/run', {})).status, 200);
    const list = await s.adminCall('GET', `/v1/admin/invoices?customer=${a.customer.id}`);
    const inv = await s.adminCall('POST', `/v1/admin/invoices/${list.json.data[0].id}/finalize`);
    assert.equal(inv.status, 200);
    assert.equal(inv.json.total, '10.75'); // 10.00 + (5 - 2 included) x 0.25
    const item = await s.adminCall('POST', `/v1/admin/customers/${a.customer.id}/items`, { description: 'Goodwill credit', amount: '-2.50' });
    assert.equal(item.status, 201);
    assert.equal((await s.adminCall('PATCH', `/v1/admin/customers/${b.customer.id}`, { plan: 'metered' })).status, 200);
    for (let i = 0; i < 2; i++) assert.equal((await s.call('/v1/basic/x', { key: a.key })).status, 200); // next period
    const usedA = await s.usage(a.customer.id);
    assert.equal(usedA, 2);
    const invoices = (await s.adminCall('GET', '/v1/admin/invoices?limit=100')).json.data;
    await s.stopServer();

    const r = migrate(['--from', from, '--to', target]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^copied sqlite:.* into PostgreSQL at 127\.0\.0\.1:\d+\/tg_\d+_migrate \(schema version \d+\)$/m);
    assert.match(r.stdout, /^customers: 3 rows$/m);
    assert.match(r.stdout, /^api_keys: 4 rows$/m);
    // the scheduler closed every customer's first period: one invoice each; a's is finalized
    assert.equal(invoices.length, 3);
    assert.match(r.stdout, /^invoices: 3 rows$/m);
    assert.match(r.stdout, /^invoice_numbers: 1 rows$/m);
    assert.match(r.stdout, /^invoice_items: [1-9]\d* rows$/m);
    assert.match(r.stdout, /^plan_changes: 1 rows$/m);
    assert.match(r.stdout, /^sessions: 1 rows$/m);
    assert.match(r.stdout, /^signup_trials: \d+ rows$/m);
    assert.match(r.stdout, /^usage_batches: [1-9]\d* rows$/m);
    assert.doesNotMatch(r.stdout, /^schema_migrations:/m);
    assert.match(r.stdout, /^verified: /m);
    // 5 + 2 calls of a, 3 of b, 1 of the portal account's first key test: none here
    assert.match(r.stdout, /^usage_period\.units: 10$/m);
    assert.match(r.stdout, /^usage_daily\.units: 10$/m);
    const cents = (d) => { const [i, f = ''] = d.replace('-', '').split('.'); return (d.startsWith('-') ? -1 : 1) * Number(i + f.padEnd(2, '0')); };
    const invoiced = invoices.reduce((n, x) => n + cents(x.total), 0);
    assert.match(r.stdout, new RegExp(`^invoices\\.total usd: ${Math.trunc(invoiced / 100)}\\.${String(invoiced % 100).padStart(2, '0')}$`, 'm'));
    // nano-units, exactly: the credit and the upgrade's proration
    const items = /^invoice_items\.amount usd: (-?)(\d+)\.(\d+)$/m.exec(r.stdout);
    assert.ok(items, r.stdout);
    assert.equal(psql(target, 'SELECT sum(amount) FROM invoice_items'), String(BigInt(`${items[1]}${items[2]}${items[3].padEnd(9, '0')}`)));

    // what PostgreSQL holds now, read with psql
    assert.equal(psql(target, 'SELECT count(*) FROM customers'), '3');
    assert.equal(psql(target, `SELECT sum(units) FROM usage_period WHERE customer_id = '${a.customer.id}'`), '7');
    assert.equal(psql(target, `SELECT sum(units) FROM usage_period WHERE customer_id = '${b.customer.id}'`), '3');
    assert.equal(psql(target, `SELECT sum(units) FROM usage_daily WHERE customer_id = '${a.customer.id}' AND endpoint = 'GET /v1/basic/x'`), '7');
    assert.equal(psql(target, `SELECT number || '|' || status || '|' || total FROM invoices WHERE customer_id = '${a.customer.id}'`),
      `${inv.json.number}|open|10750000000`);
    assert.equal(psql(target, `SELECT plan_id FROM customers WHERE id = '${b.customer.id}'`), 'metered');
    assert.equal(psql(target, `SELECT email FROM customers WHERE id = '${dev.customer.id}'`), `dev-${process.pid}@example.com`);
    // blobs arrive byte for byte: the key hash is HMAC-SHA-256(keys.secret, key)
    const hash = createHmac('sha256', KEY_SECRET).update(a.key).digest('hex');
    assert.equal(psql(target, `SELECT encode(hash, 'hex') FROM api_keys WHERE id = '${a.keyId}'`), hash);
    assert.notEqual(psql(target, `SELECT revoked_at FROM api_keys WHERE id = '${extra.json.id}'`), '0');
    assert.equal(psql(target, 'SELECT octet_length(token_hash) FROM sessions'), '32');
    assert.equal(psql(target, `SELECT customer_id FROM sessions`), dev.customer.id);
    assert.equal(psql(target, 'SELECT max(version) FROM schema_migrations'), /schema version (\d+)/.exec(r.stdout)[1]);
    // identity sequences start after the copied ids
    const maxItem = Number(psql(target, 'SELECT max(id) FROM invoice_items'));
    const next = psql(target, 'BEGIN', `INSERT INTO invoice_items (customer_id, created_at, description, amount, currency)
      VALUES ('${a.customer.id}', 0, 'x', 0, 'usd') RETURNING id`, 'ROLLBACK');
    assert.ok(Number(next) > maxItem, `new id ${next} after ${maxItem}`);

    // again into the same database: refused, naming a table with rows, nothing changed
    const before = allCounts(target);
    const again = migrate(['--from', from, '--to', target]);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /^tollgate migrate: the target database is not empty: table \w+ has rows/m);
    assert.equal(again.stdout, '');
    assert.equal(allCounts(target), before);

    // the wrong way round, a missing file, a missing flag
    assert.equal(migrate(['--from', target, '--to', from]).status, 1);
    const missing = migrate(['--from', `sqlite:${join(dir, 'nope.db')}`, '--to', target]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /nope\.db: no such file/);
    assert.equal(migrate(['--from', from]).status, 2);
  } finally {
    await s.stop();
    rmSync(dir, { recursive: true, force: true });
    psql(serverUrl, `DROP DATABASE IF EXISTS ${db}`);
  }
});

// spawn, not spawnSync: the calls that keep the gateway busy run on this process's event loop.
function migrateAsync(args) {
  return new Promise((resolveRun, reject) => {
    const p = spawn(TOLLGATE, ['migrate', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('error', reject);
    p.on('close', (status) => resolveRun({ status, stdout, stderr }));
  });
}

test('a gateway still running: never a torn copy; refused while usage is unfolded, a snapshot otherwise', async () => {
  const busyDb = `tg_${process.pid}_migrate_busy`, idleDb = `tg_${process.pid}_migrate_idle`;
  for (const db of [busyDb, idleDb]) {
    psql(serverUrl, `DROP DATABASE IF EXISTS ${db}`);
    psql(serverUrl, `CREATE DATABASE ${db}`);
  }
  const { s, from, dir } = await sqliteStack();
  try {
    const a = await s.customer('load');
    // calls keep landing while the copy runs
    let stop = false, calls = 0;
    const load = (async () => {
      while (!stop) {
        assert.equal((await s.call('/v1/basic/x', { key: a.key })).status, 200);
        calls++;
      }
    })();
    for (let i = 0; i < 1000 && calls < 50; i++) await new Promise((r) => setImmediate(r)); // load under way
    const busy = await migrateAsync(['--from', from, '--to', dbUrl(busyDb)]);
    stop = true;
    await load;
    if (busy.status === 0) {
      // one snapshot: the period and daily totals come from the same folds, so they agree
      assert.equal(psql(dbUrl(busyDb), 'SELECT sum(units) FROM usage_period'), psql(dbUrl(busyDb), 'SELECT sum(units) FROM usage_daily'));
    } else {
      assert.equal(busy.status, 1);
      assert.match(busy.stderr, /usage batches not yet added to its totals: a gateway is still writing to it/);
      assert.equal(psql(dbUrl(busyDb), 'SELECT count(*) FROM customers'), '0');
    }

    // idle (its usage folded by a read of the totals), still running: a consistent copy
    const used = await s.usage(a.customer.id);
    assert.equal(used, calls);
    const idle = await migrateAsync(['--from', from, '--to', dbUrl(idleDb)]);
    assert.equal(idle.status, 0, idle.stderr);
    assert.match(idle.stdout, new RegExp(`^usage_period\\.units: ${calls}$`, 'm'));
    assert.equal(psql(dbUrl(idleDb), `SELECT sum(units) FROM usage_daily WHERE customer_id = '${a.customer.id}'`), String(calls));
  } finally {
    await s.stop();
    rmSync(dir, { recursive: true, force: true });
    for (const db of [busyDb, idleDb]) psql(serverUrl, `DROP DATABASE IF EXISTS ${db}`);
  }
});
