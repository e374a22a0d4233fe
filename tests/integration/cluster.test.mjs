// cluster.test.mjs - three tollgate nodes sharing rate limits and quotas through one real Redis
// (issue 12). Each node has its own SQLite file: a copy of the first node's, so that the same
// customers and keys exist on all three with the same ids (SQLite serves one node; the
// PostgreSQL cluster test shares one database instead). The test starts its own throwaway
// redis-server with scripts/redis-test.sh, and stops and restarts it mid-load.
// The bound checked is the README's ("Shared limits across nodes"): over any window a hot key
// gets at most the GCRA's allowance + N L + N C (C = max(w, L / 4), the credit of a node that
// holds no lease); a block quota at most its allowance + N u.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Stack, sleep, BACKEND } from './harness.mjs';

// The nodes here share customers by copying one SQLite file; on PostgreSQL they share one
// database instead, which tests/cluster/pg_cluster.test.mjs covers (limits through Redis too).
const onSqlite = { skip: BACKEND !== 'sqlite' && 'SQLite files copied between nodes; see tests/cluster/pg_cluster.test.mjs' };

const root = resolve(new URL('../..', import.meta.url).pathname);
const REDIS = join(root, 'scripts/redis-test.sh');
const N = 3;
let redisDir, redisUrl;

before(() => {
  redisDir = mkdtempSync(join(tmpdir(), 'tollgate-redis-'));
  redisUrl = execFileSync(REDIS, ['start', redisDir], { encoding: 'utf8' }).trim();
});
after(() => {
  execFileSync(REDIS, ['stop', redisDir]);
  rmSync(redisDir, { recursive: true, force: true });
});

const nodeOpts = (id) => ({ cluster: { redis: redisUrl, node_id: id, sync_ms: 20 }, metrics: '{open: true}' });

async function metric(s, name) {
  const r = await fetch(`${s.admin}/metrics`);
  const m = new RegExp(`^${name} (\\d+)`, 'm').exec(await r.text());
  return m ? Number(m[1]) : null;
}

// Polls cond() until true, for at most ms (a bounded wait on a condition, not a sleep).
async function until(cond, ms, what) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// Three nodes with the same customers (plans from the harness: free = 10/min burst 10, block
// quota 1000; tiny = 1000/s, block quota 5; starter = 100/min burst 100, bill).
async function startCluster(tag) {
  const first = new Stack(nodeOpts(`${tag}-1`));
  await first.start();
  const customers = { free: await first.customer('free'), tiny: await first.customer('tiny'), starter: await first.customer('starter') };
  await first.stopServer();
  const nodes = [first];
  for (let i = 2; i <= N; i++) {
    const s = new Stack(nodeOpts(`${tag}-${i}`));
    s.dir = mkdtempSync(join(tmpdir(), 'tollgate-it-'));
    for (const f of ['tollgate.db', 'tollgate.db-wal']) {
      if (existsSync(join(first.dir, f))) copyFileSync(join(first.dir, f), join(s.dir, f));
    }
    nodes.push(s);
  }
  await Promise.all(nodes.map((s) => s.start()));
  // each node counts the others at its next heartbeat (about a second)
  await until(async () => (await Promise.all(nodes.map((s) => metric(s, 'tollgate_cluster_live_nodes')))).every((n) => n === N),
    10000, 'every node to see three live nodes');
  return { nodes, customers };
}

async function stopCluster(nodes) {
  for (const s of nodes) await s.stop();
}

// `perNode` calls through each node, `conc` at a time per node, each client waiting `paceMs`
// between calls (a client's pace, not a synchronisation); returns the statuses.
async function hammer(nodes, key, perNode, conc = 4, paceMs = 0) {
  const statuses = [];
  await Promise.all(nodes.map(async (s) => {
    let left = perNode;
    await Promise.all(Array.from({ length: conc }, async () => {
      while (left-- > 0) {
        statuses.push((await s.call('/v1/basic/x', { key })).status);
        if (paceMs) await sleep(paceMs);
      }
    }));
  }));
  return statuses;
}

test('API4:2023 unrestricted resource consumption: a hot key through three nodes gets its rate limit once, not three times', onSqlite, async () => {
  const { nodes, customers } = await startCluster('rate');
  try {
    const t0 = Date.now();
    const st = await hammer(nodes, customers.free.key, 40, 2, 20);
    const secs = (Date.now() - t0) / 1000;
    const allowed = st.filter((s) => s === 200).length;
    assert.ok(st.every((s) => s === 200 || s === 429), `only 200 and 429: ${[...new Set(st)]}`);
    // free: burst 10, 10/min. Lease L = max(1, 10 / (2 N)) = 1, credit C = max(w, L / 4) = 1:
    // bound N L + N C = 6.
    const limit = 10 + Math.ceil((10 * secs) / 60);
    console.log(`rate: ${N} nodes, free plan (10/min, burst 10), ${secs.toFixed(2)} s: allowed ${allowed} of ${st.length}, limit ${limit}, bound +6 (local limits would allow ${N * limit})`);
    assert.ok(allowed <= limit + 6, `allowed ${allowed} > ${limit} + 6`);
    assert.ok(allowed >= limit - N, `allowed ${allowed} < ${limit} - ${N}`);
  } finally { await stopCluster(nodes); }
});

test('API4:2023 unrestricted resource consumption: a block quota through three nodes stops at its allowance (+ N u)', onSqlite, async () => {
  const { nodes, customers } = await startCluster('quota');
  try {
    const st = await hammer(nodes, customers.tiny.key, 15, 2, 10);
    const allowed = st.filter((s) => s === 200).length;
    console.log(`quota: ${N} nodes, tiny plan (block, 5 included): allowed ${allowed} of ${st.length}, bound +${N}`);
    assert.ok(allowed <= 5 + N, `allowed ${allowed} > 5 + ${N}`);
    assert.ok(allowed >= 5, `allowed ${allowed} < 5`);
    const last = await nodes[2].call('/v1/basic/x', { key: customers.tiny.key });
    assert.equal(last.status, 429);
    assert.equal(last.json.error.type, 'quota_exceeded');
  } finally { await stopCluster(nodes); }
});

test('Redis stopped mid-load: every node says so and keeps answering on its share; restarted: shared again', onSqlite, async () => {
  const { nodes, customers } = await startCluster('down');
  try {
    let stop = false;
    const statuses = [];
    const loop = (async () => {
      while (!stop) {
        statuses.push(...(await hammer(nodes, customers.starter.key, 5, 1)));
      }
    })();
    execFileSync(REDIS, ['stop', redisDir]);
    await until(async () => (await Promise.all(nodes.map((s) => metric(s, 'tollgate_cluster_fallback')))).every((v) => v === 1),
      10000, 'every node in fallback');
    for (const s of nodes) assert.match(s.server.output, /Redis unreachable .*this node enforces each limit \/ 3/);
    const errorsDown = await metric(nodes[0], 'tollgate_cluster_redis_errors_total');
    assert.ok(errorsDown >= 1);
    execFileSync(REDIS, ['start', redisDir]);
    await until(async () => (await Promise.all(nodes.map((s) => metric(s, 'tollgate_cluster_fallback')))).every((v) => v === 0),
      10000, 'every node back on shared limits');
    for (const s of nodes) assert.match(s.server.output, /Redis answers again; limits are shared/);
    stop = true;
    await loop;
    assert.ok(statuses.length > 0);
    assert.ok(statuses.every((s) => s === 200 || s === 429), `only 200 and 429 while Redis came and went: ${[...new Set(statuses)]}`);
  } finally { await stopCluster(nodes); }
});

test('a node id held by a live node is refused at start', async () => {
  const first = new Stack(nodeOpts('dup-1'));
  await first.start();
  const dup = new Stack(nodeOpts('dup-1'));
  dup.expectExit = true; // its refusal is what this test wants, not a crash for the log to report
  try {
    await assert.rejects(dup.start());
    assert.match(dup.server.output, /cluster.node_id "dup-1" is held by another live node/);
  } finally {
    await first.stop();
    rmSync(dup.dir, { recursive: true, force: true });
  }
});
