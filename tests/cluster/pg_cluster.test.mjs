// pg_cluster.test.mjs - three tollgate nodes on one PostgreSQL and one Redis (issue 12), all
// real servers started here on loopback: PostgreSQL with scripts/pg-test.sh (initdb/pg_ctl as
// an unprivileged user), Redis with scripts/redis-test.sh, the nodes with the harness, one demo
// upstream behind all three. What the admin API changes on one node is enforced by every node
// within a second; usage is exact under load, across kill -9 and restarts of a node, of Redis
// and of PostgreSQL; the schedulers run on one node and move when it dies.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Stack, sleep, createPgDatabase, dropPgDatabase, ADMIN_TOKEN } from '../integration/harness.mjs';

const root = resolve(new URL('../..', import.meta.url).pathname);
const PG = join(root, 'scripts/pg-test.sh');
const REDIS = join(root, 'scripts/redis-test.sh');
const N = 3;
let pgDir, redisDir, redisUrl;

before(() => {
  pgDir = mkdtempSync(join(tmpdir(), 'tollgate-pg-'));
  process.env.TG_TEST_PG_URL = execFileSync(PG, ['start', pgDir], { encoding: 'utf8' }).trim();
  redisDir = mkdtempSync(join(tmpdir(), 'tollgate-redis-'));
  redisUrl = execFileSync(REDIS, ['start', redisDir], { encoding: 'utf8' }).trim();
});
after(() => {
  try { execFileSync(REDIS, ['stop', redisDir]); } catch { /* already stopped */ }
  try { execFileSync(PG, ['stop', pgDir]); } catch { /* already stopped */ }
  rmSync(redisDir, { recursive: true, force: true });
  rmSync(pgDir, { recursive: true, force: true });
});

// Polls cond() until true, for at most ms (a bounded wait on a condition, not a sleep).
async function until(cond, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

async function metric(s, name) {
  const r = await fetch(`${s.admin}/metrics`);
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'm').exec(await r.text());
  return m ? Number(m[1]) : null;
}

// Three nodes on one fresh database; the first one runs the demo upstream for all three.
async function startCluster(tag, extra = {}) {
  const db = createPgDatabase();
  const nodes = [];
  for (let i = 1; i <= N; i++) {
    const s = new Stack({
      database: db.url,
      cluster: { redis: redisUrl, node_id: `${tag}-${i}`, sync_ms: 20 },
      metrics: '{open: true}',
      ...(i > 1 ? { noUpstream: true, upstreamPort: nodes[0].upPort } : {}),
      ...extra,
    });
    await s.start(); // one after the other: the first migrates, the others find it done
    nodes.push(s);
  }
  return { nodes, db };
}

async function stopCluster({ nodes, db }) {
  for (const s of nodes) await s.stop();
  dropPgDatabase(db.name);
}

const ok = async (s, key) => (await s.call('/v1/basic/x', { key })).status === 200;

test('a key created on node 1 works on node 3 within 1 s; revoked on node 2, it fails on all three within 1 s; a plan change applies everywhere', async () => {
  const c = await startCluster('dir');
  const [n1, n2, n3] = c.nodes;
  try {
    const t0 = Date.now();
    const a = await n1.customer('starter');
    await until(() => ok(n3, a.key), 1000, 'the new key on node 3');
    const created = Date.now() - t0;

    const t1 = Date.now();
    const r = await n2.adminCall('DELETE', `/v1/admin/keys/${a.keyId}`);
    assert.equal(r.status, 200, r.text);
    for (const s of c.nodes) await until(async () => (await s.call('/v1/basic/x', { key: a.key })).status === 401, 1000, 'the revocation everywhere');
    const revoked = Date.now() - t1;

    // a plan change made on node 3: node 1 answers with the new plan's limit
    const b = await n1.customer('starter');
    await until(() => ok(n3, b.key), 1000, 'the second key on node 3');
    const p = await n3.adminCall('PATCH', `/v1/admin/customers/${b.customer.id}`, { plan: 'pro', when: 'now' });
    assert.equal(p.status, 200, p.text);
    await until(async () => (await n1.call('/v1/basic/x', { key: b.key })).headers.get('x-ratelimit-limit') === '500', 1000, 'the plan change on node 1');
    process.stdout.write(`# propagation: key created ${created} ms, revoked ${revoked} ms\n`);

    // The owner's dashboard behind a load balancer: signed in on node 1, the cookie works on node
    // 3; signed out on node 2, it works nowhere (the sessions used to live in one node's memory).
    const owner = async (s, method, path, { body, headers = {} } = {}) => {
      const res = await fetch(`${s.admin}${path}`, { method, headers: { 'content-type': 'application/json', ...headers }, body: body && JSON.stringify(body) });
      return { status: res.status, json: await res.json().catch(() => null), setCookie: res.headers.get('set-cookie') };
    };
    const si = await owner(n1, 'POST', '/v1/admin/session', { body: { token: ADMIN_TOKEN } });
    assert.equal(si.status, 200);
    const cookie = si.setCookie.split(';')[0];
    assert.equal((await owner(n3, 'GET', '/v1/admin/dashboard', { headers: { cookie } })).status, 200);
    assert.equal((await owner(n3, 'GET', '/v1/admin/session', { headers: { cookie } })).json.csrf_token, si.json.csrf_token);
    const so = await owner(n2, 'DELETE', '/v1/admin/session', { headers: { cookie, 'x-csrf-token': si.json.csrf_token } });
    assert.equal(so.status, 200);
    for (const s of c.nodes) assert.equal((await owner(s, 'GET', '/v1/admin/dashboard', { headers: { cookie } })).status, 401);
  } finally {
    await stopCluster(c);
  }
});

test('an ingest token made on node 1 is taken by node 3 within 1 s; revoked on node 2, refused by all three within 1 s', async () => {
  const c = await startCluster('itk', { extra: '\nevents: {}\n' });
  const [n1, n2, n3] = c.nodes;
  try {
    const a = await n1.customer('starter');
    const post = async (s, token, id) => (await fetch(`${s.gw}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ events: [{ id, customer: a.customer.id, metric: 'api_calls', value: 1, timestamp: new Date().toISOString() }] }),
    })).status;
    const t0 = Date.now();
    const made = await n1.adminCall('POST', '/v1/admin/ingest-tokens', { name: 'jobs' });
    assert.equal(made.status, 201, made.text);
    let n = 0;
    await until(async () => (await post(n3, made.json.token, `c${n++}`)) === 200, 1000, 'the new token on node 3');
    const created = Date.now() - t0;

    const t1 = Date.now();
    assert.equal((await n2.adminCall('DELETE', `/v1/admin/ingest-tokens/${made.json.id}`)).status, 200);
    for (const s of c.nodes) await until(async () => (await post(s, made.json.token, `r${n++}`)) === 401, 1000, 'the revocation everywhere');
    const revoked = Date.now() - t1;
    process.stdout.write(`# ingest token propagation: created ${created} ms, revoked ${revoked} ms\n`);
  } finally {
    await stopCluster(c);
  }
});

test('an event posted to node 1 and to node 2, and retried on node 3, is stored once (dedup at the store, across nodes)', async () => {
  const token = 'ingest-token-0123456789abcdef';
  const c = await startCluster('evd', { extra: `\nevents: {tokens: [{name: jobs, token: "${token}"}]}\n` });
  try {
    const a = await c.nodes[0].customer('starter');
    const markers = [];
    for (let i = 0; i < N; i++) markers.push((await c.nodes[0].customer('starter')).customer.id);
    const ts = new Date().toISOString();
    // The same two events to every node; each node's batch also carries an event of a customer of
    // its own, so that its usage shows when that node's batch is in the database.
    const results = [];
    for (let i = 0; i < N; i++) {
      const r = await fetch(`${c.nodes[i].gw}/v1/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ events: [
          { id: 'job-1', customer: a.customer.id, metric: 'api_calls', value: 100, timestamp: ts },
          { id: 'job-2', customer: a.customer.id, metric: 'api_calls', value: 10, timestamp: ts },
          { id: `marker-${i}`, customer: markers[i], metric: 'api_calls', value: 1, timestamp: ts },
        ] }),
      });
      assert.equal(r.status, 200);
      results.push((await r.json()).results.map((x) => x.status));
    }
    // Each node's own index has not seen the events: each accepts them (an answer given stays
    // given; README, "Metering usage that is not an API call").
    for (const r of results) assert.deepEqual(r, ['accepted', 'accepted', 'accepted']);
    for (let i = 0; i < N; i++) {
      await until(async () => (await c.nodes[(i + 1) % N].usage(markers[i])) === 1, 10000, `node ${i + 1}'s batch in the database`);
    }
    for (const s of c.nodes) assert.equal(await s.usage(a.customer.id), 110); // once, not 330
  } finally {
    await stopCluster(c);
  }
});

// `perNode` calls through each node, `conc` at a time per node; returns the statuses.
async function hammer(nodes, key, perNode, conc = 4) {
  const statuses = [];
  await Promise.all(nodes.map(async (s) => {
    let left = perNode;
    await Promise.all(Array.from({ length: conc }, async () => {
      while (left > 0) {
        left--;
        try { statuses.push((await s.call('/v1/basic/x', { key })).status); } catch { statuses.push(0); }
      }
    }));
  }));
  return statuses;
}

test('API4:2023 unrestricted resource consumption: a hot key through three nodes stays within the README bound of its rate limit, a block quota within its allowance + N u', async () => {
  const c = await startCluster('hot');
  const [n1] = c.nodes;
  try {
    // free: 10/min, burst 10 (L = max(1, 10 / 2N) cells); tiny: a block quota of 5 calls
    const free = await n1.customer('free');
    const tiny = await n1.customer('tiny');
    // made last: once its key works on a node, the two before it do too (changes apply in order)
    const probe = await n1.customer('starter');
    for (const s of c.nodes) await until(() => ok(s, probe.key), 1000, 'the keys everywhere');
    const statuses = await hammer(c.nodes, free.key, 40, 2);
    const allowed = statuses.filter((x) => x === 200).length;
    const L = Math.max(1, Math.floor(10 / (2 * N)));
    const C = Math.max(1, Math.floor(L / 4)); // a cold key's credit per node
    const bound = 10 + 1 /* refill during the test, at most 1 cell in 6 s */ + N * L + N * C;
    assert.ok(allowed >= 8 && allowed <= bound, `rate limit: ${allowed} of 120 allowed, bound ${bound}`);
    const q = await hammer(c.nodes, tiny.key, 15, 2);
    const qAllowed = q.filter((x) => x === 200).length;
    assert.ok(qAllowed >= 5 && qAllowed <= 5 + N, `block quota: ${qAllowed} allowed of 5 (+${N})`);
    // usage counts exactly what was answered
    await until(async () => (await n1.usage(tiny.customer.id)) === qAllowed, 10000, `tiny's usage ${qAllowed}`);
    process.stdout.write(`# hot key over ${N} nodes: ${allowed} of 120 allowed (limit burst 10, bound ${bound}); block quota 5: ${qAllowed}\n`);
  } finally {
    await stopCluster(c);
  }
});

test('load over all three nodes: usage is exactly the answered calls; kill -9 of one node and its restart lose nothing and count nothing twice', async () => {
  // strict: a call is answered only once its usage is in the node's log (batched mode may lose
  // the last flush_ms of calls to kill -9, by design: README, "Metering durability")
  const c = await startCluster('load', { durability: 'strict' });
  const [n1, n2, n3] = c.nodes;
  try {
    const a = await n1.customer('enterprise');
    for (const s of c.nodes) await until(() => ok(s, a.key), 1000, 'the key everywhere');
    let answered = 3; // the three calls just made
    const conc = 4;
    const load = hammer(c.nodes, a.key, 150, conc);
    await until(async () => (await n2.usage(a.customer.id)) > 30, 10000, 'usage to flow');
    await n2.kill9(); // mid-load: its answered calls are in its metering log
    const statuses = await load;
    answered += statuses.filter((x) => x === 200).length;
    await n2.start(); // replays its log into PostgreSQL
    // A call node 2 had logged but not yet answered when it died is usage its client never saw
    // answered: at most the calls in flight on it (conc), never fewer than the answered ones.
    let used = -1;
    const counts = () => JSON.stringify(statuses.reduce((m, x) => ({ ...m, [x]: (m[x] || 0) + 1 }), {}));
    await until(async () => (used = await n1.usage(a.customer.id)) >= answered, 10000,
      `usage of at least the ${answered} answered calls`).catch((e) => {
      throw new Error(`${e.message}: usage is ${used}; statuses ${counts()}`);
    });
    assert.ok(used <= answered + conc, `usage ${used}, answered ${answered} (+ at most ${conc} in flight on the killed node); statuses ${counts()}`);
    assert.equal(await n3.usage(a.customer.id), used); // and stays: nothing counted twice
    assert.equal(await n1.usage(a.customer.id), used);
  } finally {
    await stopCluster(c);
  }
});

// Calls through every node, `conc` at a time per node, until stop() is called; counts statuses.
function background(nodes, key, conc = 1) {
  const counts = {};
  let stopped = false;
  const done = Promise.all(nodes.map((s) => Promise.all(Array.from({ length: conc }, async () => {
    while (!stopped) {
      let st = 0;
      try { st = (await s.call('/v1/basic/x', { key })).status; } catch { /* counted as 0 */ }
      counts[st] = (counts[st] || 0) + 1;
    }
  }))));
  return { counts, stop: async () => { stopped = true; await done; return counts; } };
}

test('API4:2023 unrestricted resource consumption: Redis stopped and started mid-load: every node enforces limit / N (metric, log), usage stays exact; back, no burst and the metric returns to 0', async () => {
  const c = await startCluster('redisdown');
  const [n1] = c.nodes;
  const loads = [];
  try {
    // hot: free (10/min, burst 10: T = 6 s a cell), first called while Redis is down, so that
    // every cell it spends is accounted for by the nodes' fallback buckets; busy: enterprise,
    // under load through all three nodes from before the outage to after it
    const hot = await n1.customer('free');
    const busy = await n1.customer('enterprise');
    const probe = await n1.customer('starter'); // made last: once it works everywhere, so do the others
    for (const s of c.nodes) await until(() => ok(s, probe.key), 1000, 'the keys everywhere');
    const load = background(c.nodes, busy.key);
    loads.push(load);
    await until(() => (load.counts[200] || 0) > 30, 10000, 'load to flow');
    // a node counts the live nodes when it renews its claim (every second): the split is by the
    // count it last saw
    for (const s of c.nodes) await until(async () => (await metric(s, 'tollgate_cluster_live_nodes')) === N, 3000, `${N} live nodes seen by every node`);

    execFileSync(REDIS, ['stop', redisDir]);
    for (const s of c.nodes) {
      await until(async () => (await metric(s, 'tollgate_cluster_fallback')) === 1, 5000, 'tollgate_cluster_fallback 1 on every node');
      // the line follows the metric, through the node's stderr pipe
      await until(() => /Redis unreachable .*this node enforces each limit \/ 3 /.test(s.server.output), 2000, 'the fallback\'s log line');
    }
    const t0 = Date.now();
    const down = await hammer(c.nodes, hot.key, 40, 2);
    const allowedDown = down.filter((x) => x === 200).length;
    // each node: its bucket of burst / N cells (10 / 3 = 3), its first call on credit (charged to
    // that bucket) and one cell per 3 T = 18 s of refill; local limits alone would allow 3 x 10
    const perNode = Math.floor(10 / N) + 1 + Math.ceil((Date.now() - t0) / 18000);
    assert.ok(allowedDown >= 1 && allowedDown <= N * perNode, `Redis down: ${allowedDown} of ${down.length} allowed, bound ${N * perNode}`);

    // the same port, and empty: what the nodes spent meanwhile is all the shared state will know
    execFileSync(REDIS, ['start', redisDir], { encoding: 'utf8' });
    for (const s of c.nodes) {
      await until(async () => (await metric(s, 'tollgate_cluster_fallback')) === 0, 10000, 'tollgate_cluster_fallback 0 on every node');
      await until(() => /Redis answers again; limits are shared/.test(s.server.output), 2000, 'the log line of the way back');
    }
    const back = await hammer(c.nodes, hot.key, 40, 2);
    const allowedBack = back.filter((x) => x === 200).length;
    // over the whole test the hot key stays within the README bound of one limit: burst + rate x t
    // + N L + N C (L = max(1, 10 / 2N), C = max(1, L / 4)); a fresh burst once Redis is back would add 10
    const L = Math.max(1, Math.floor(10 / (2 * N)));
    const C = Math.max(1, Math.floor(L / 4));
    const bound = 10 + Math.ceil((Date.now() - t0) / 6000) + N * L + N * C;
    assert.ok(allowedDown + allowedBack <= bound,
      `hot key: ${allowedDown} allowed while Redis was down + ${allowedBack} after, bound ${bound}`);

    const counts = await load.stop();
    const answered = counts[200] || 0;
    // usage never depends on Redis: exactly the answered calls, for both keys
    await until(async () => (await n1.usage(busy.customer.id)) === answered, 10000, `busy's usage ${answered}`);
    await until(async () => (await n1.usage(hot.customer.id)) === allowedDown + allowedBack, 10000,
      `hot's usage ${allowedDown + allowedBack}`);
    process.stdout.write(`# Redis down: hot key ${allowedDown} allowed (bound ${N * perNode}); back: ${allowedBack} (all: bound ${bound}); load ${JSON.stringify(counts)}\n`);
  } finally {
    for (const l of loads) await l.stop();
    try { execFileSync(REDIS, ['start', redisDir]); } catch { /* running */ }
    await stopCluster(c);
  }
});

test('PostgreSQL stopped mid-load: the nodes keep answering from memory and spool usage, admin writes answer 503; once it is back everything is stored', async () => {
  const c = await startCluster('pgdown');
  const [n1, n2] = c.nodes;
  try {
    const a = await n1.customer('enterprise');
    for (const s of c.nodes) await until(() => ok(s, a.key), 1000, 'the key everywhere');
    execFileSync(PG, ['stop', pgDir]);
    // the key sits idle until every node has given its rate-limit lease back (after a second
    // unused): its next calls find no lease on any node
    const returned = async (s) => {
      const m = /^tollgate_cluster_leases_total\{op="returned"\} (\d+)/m.exec(await (await fetch(`${s.admin}/metrics`)).text());
      return m ? Number(m[1]) : 0;
    };
    for (const s of c.nodes) await until(async () => (await returned(s)) >= 1, 5000, 'the idle lease given back');
    const statuses = await hammer(c.nodes, a.key, 40, 2);
    const answered = statuses.filter((x) => x === 200).length;
    // Every call answered from memory, and allowed: the key sat idle while PostgreSQL stopped, so
    // each node gave its rate-limit lease back to Redis; its next calls spend the node's credit
    // (README, "Shared limits") until the sync thread leases again, not a 429 while the shared
    // bucket is full (120 calls of a burst of 2,000).
    assert.ok(statuses.every((x) => x === 200), `every call answered and allowed while PostgreSQL is down: ${statuses}`);
    assert.equal(answered, statuses.length);
    const w = await n2.adminCall('POST', '/v1/admin/customers', { email: 'down@example.com', name: 'x', plan: 'starter' });
    assert.equal(w.status, 503, w.text);
    assert.equal(w.json.error.type, 'store_unavailable');
    // a load balancer's readiness probe takes the nodes out, liveness stays; both come back
    const ready = async (s) => { const r = await fetch(`${s.admin}/readyz`); return { status: r.status, json: await r.json() }; };
    for (const s of c.nodes) {
      await until(async () => (await ready(s)).status === 503, 5000, 'not ready while PostgreSQL is down');
      assert.deepEqual((await ready(s)).json, { status: 'not_ready', checks: { database: 'failing', metering_log: 'ok', redis: 'ok' } });
      assert.equal((await fetch(`${s.admin}/healthz`)).status, 200);
    }
    process.env.TG_TEST_PG_URL = execFileSync(PG, ['start', pgDir], { encoding: 'utf8' }).trim();
    await until(async () => { try { return (await n1.usage(a.customer.id)) === answered + 3; } catch { return false; } },
      20000, `usage ${answered + 3} once PostgreSQL is back`);
    for (const s of c.nodes) await until(async () => (await ready(s)).status === 200, 20000, 'ready again');
  } finally {
    // a failed assertion above left PostgreSQL stopped: start it, so that the cleanup (and the
    // next tests) can reach it and the failure reported is the assertion's
    try { process.env.TG_TEST_PG_URL = execFileSync(PG, ['start', pgDir], { encoding: 'utf8' }).trim(); } catch { /* running */ }
    await stopCluster(c);
  }
});

test('the schedulers run on one node; when it dies another takes over within seconds', async () => {
  const c = await startCluster('lead');
  try {
    const leader = () => c.nodes.filter((s) => s.server && /this node runs the schedulers now/.test(s.server.output));
    // the admin tick runs every 10 s
    await until(async () => leader().length === 1, 25000, 'one scheduler node');
    const first = leader()[0];
    await first.kill9();
    const others = c.nodes.filter((s) => s !== first);
    await until(async () => others.some((s) => /this node runs the schedulers now/.test(s.server.output)), 25000,
      'another node to take the schedulers over');
    assert.equal(others.filter((s) => /this node runs the schedulers now/.test(s.server.output)).length, 1);
    await first.start();
  } finally {
    await stopCluster(c);
  }
});
