// events.test.mjs - POST /v1/events (issue 16): usage that is not an API call, counted exactly
// once, durable before the answer, seen by quotas and priced on invoices.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { BACKEND, COMMITTED_PLAN, Stack, withStack } from './harness.mjs';

const TOKEN = 'ingest-token-0123456789abcdef';
const eventsSection = (max = 5, scoped = '') => `
events:
  max_batch: ${max}
  tokens:
    - {name: jobs, token: "${TOKEN}"}
${scoped}`;

const now = () => new Date().toISOString();

async function post(s, body, token = TOKEN) {
  const r = await fetch(`${s.gw}/v1/events`, {
    method: 'POST',
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text };
}

// Stored usage is read after the applier's next pass: poll it, bounded.
async function usageReaches(s, customer, metric, want) {
  let got;
  for (let i = 0; i < 200; i++) {
    got = await s.usage(customer, metric);
    if (got === want) return got;
    await new Promise((r) => setTimeout(r, 25));
  }
  return got;
}

test('events are accepted, duplicates acknowledged, refusals explained per event; usage is priced', async () => {
  await withStack({ extra: eventsSection(), durability: 'strict' }, async (s) => {
    const { customer, keyId } = await s.customer('metered');
    const r = await post(s, { events: [
      { id: 'e1', customer: customer.id, metric: 'api_calls', value: 4, timestamp: now(), properties: { job: 'nightly' } },
      { id: 'e2', key: keyId, metric: 'api_calls', value: 6, timestamp: now() },
      { id: 'e1', customer: customer.id, metric: 'api_calls', value: 4, timestamp: now() }, // repeated in the batch
      { id: 'e3', customer: customer.id, metric: 'api_calls', value: 0, timestamp: now() },
      { id: 'e4', customer: customer.id, metric: 'no_such_metric', value: 1, timestamp: now() },
    ] });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.accepted, 2);
    assert.equal(r.json.duplicates, 1);
    assert.equal(r.json.refused, 2);
    assert.deepEqual(r.json.results.map((x) => [x.index, x.id, x.status]),
      [[0, 'e1', 'accepted'], [1, 'e2', 'accepted'], [2, 'e1', 'duplicate'], [3, 'e3', 'refused'], [4, 'e4', 'refused']]);
    assert.equal(r.json.results[3].field, 'value');
    assert.match(r.json.results[3].message, /from 1 to metering\.max_units_per_call \(1000000000\)/);
    assert.equal(r.json.results[4].field, 'metric');
    assert.match(r.json.results[4].message, /"no_such_metric" is not defined/);

    // the same batch again: the accepted ones are duplicates now, nothing counts twice
    const again = await post(s, { events: [
      { id: 'e1', customer: customer.id, metric: 'api_calls', value: 4, timestamp: now() },
      { id: 'e2', key: keyId, metric: 'api_calls', value: 6, timestamp: now() },
    ] });
    assert.deepEqual(again.json.results.map((x) => x.status), ['duplicate', 'duplicate']);
    assert.equal(await usageReaches(s, customer.id, 'api_calls', 10), 10);

    // priced like calls: 10.00 base + (10 - 2 included) x 0.25
    const up = await s.adminCall('GET', `/v1/admin/customers/${customer.id}/invoices/upcoming`);
    assert.equal(up.json.total, '12.00');
  });
});

test('each field is checked and named; the batch limit and the body are enforced', async () => {
  await withStack({ extra: eventsSection(3) }, async (s) => {
    const { customer } = await s.customer('metered');
    const base = { customer: customer.id, metric: 'api_calls', value: 1 };
    const old = new Date(Date.now() - 36 * 86400 * 1000).toISOString();
    const ahead = new Date(Date.now() + 10 * 60 * 1000).toISOString();
    const r = await post(s, { events: [
      { ...base, id: 'old', timestamp: old },
      { ...base, id: 'ahead', timestamp: ahead },
      { ...base, id: 'badtime', timestamp: '2026-02-30T00:00:00Z' },
    ] });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.results.map((x) => [x.status, x.field]),
      [['refused', 'timestamp'], ['refused', 'timestamp'], ['refused', 'timestamp']]);
    assert.match(r.json.results[0].message, /older than the dedup window/);
    assert.match(r.json.results[1].message, /ahead/);

    const r2 = await post(s, { events: [
      { ...base, timestamp: now() }, // no id
      { ...base, id: 'x', customer: 'cus_nobody', timestamp: now() },
      { ...base, id: 'y', value: '5', timestamp: now() },
    ] });
    assert.deepEqual(r2.json.results.map((x) => x.field), ['id', 'customer', 'value']);
    // a value past INT64_MAX cannot be read at all: the whole body is refused, nothing counted
    const huge = await post(s, `{"events": [{"id": "z", "customer": "${customer.id}", "metric": "api_calls", "timestamp": "${now()}", "value": 9223372036854775808}]}`);
    assert.equal(huge.status, 400);
    assert.match(huge.json.error.message, /too big/);
    const neg = await post(s, { events: [{ ...base, id: 'z', timestamp: now() }, { ...base, id: 'w', timestamp: now(), value: -1 }] });
    assert.deepEqual(neg.json.results.map((x) => x.status), ['accepted', 'refused']);
    // past metering.max_units_per_call (a billion here), as a call's reported units: one event
    // of 2^63-1 used to be accepted and left the customer's invoice unpriceable (422
    // money_out_of_range on the upcoming invoice)
    const other = (await s.customer('metered')).customer;
    const ob = { ...base, customer: other.id };
    const over = await post(s, { events: [{ ...ob, id: 'v1', timestamp: now(), value: 1000000000 },
      { ...ob, id: 'v2', timestamp: now(), value: 1000000001 },
      { ...ob, id: 'v3', timestamp: now(), value: Number.MAX_SAFE_INTEGER }] });
    assert.deepEqual(over.json.results.map((x) => [x.status, x.field ?? null]),
      [['accepted', null], ['refused', 'value'], ['refused', 'value']]);
    assert.match(over.json.results[1].message, /from 1 to metering\.max_units_per_call \(1000000000\)/);
    const max = await post(s, `{"events": [{"id": "v4", "customer": "${other.id}", "metric": "api_calls", "timestamp": "${now()}", "value": 9223372036854775807}]}`);
    assert.equal(max.json.results[0].status, 'refused');
    assert.equal(await usageReaches(s, other.id, 'api_calls', 1000000000), 1000000000);
    const upcoming = await s.adminCall('GET', `/v1/admin/customers/${other.id}/invoices/upcoming`);
    assert.equal(upcoming.status, 200, JSON.stringify(upcoming.json));

    const big = await post(s, { events: [1, 2, 3, 4].map((i) => ({ ...base, id: `b${i}`, timestamp: now() })) });
    assert.equal(big.status, 413);
    assert.equal(big.json.error.type, 'batch_too_large');
    assert.equal((await post(s, '{"events": [')).status, 400);
    assert.equal((await post(s, '[]')).status, 400);
    // an empty body (no buffer was ever needed: the ASan build once read from NULL here)
    for (const body of ['', undefined]) { // Content-Length: 0, and no body at all
      const empty = await post(s, body);
      assert.equal(empty.status, 400, empty.text);
      assert.equal(empty.json.error.type, 'invalid_body');
    }
    // nothing of a refused batch counted
    assert.equal(await usageReaches(s, customer.id, 'api_calls', 1), 1, JSON.stringify((await s.adminCall('GET', `/v1/admin/customers/${customer.id}/usage`)).json));
  });
});

test('ingest tokens: none or a wrong one is 401; a token scoped to one customer reports for it only', async () => {
  const s = new Stack({ extra: eventsSection() });
  await s.start();
  try {
    const a = await s.customer('metered');
    const b = await s.customer('metered');
    const ev = (c, id) => ({ id, customer: c.customer.id, metric: 'api_calls', value: 1, timestamp: now() });
    assert.equal((await post(s, { events: [ev(a, 'n')] }, null)).status, 401);
    const wrong = await post(s, { events: [ev(a, 'n')] }, 'ingest-token-0123456789abcdeX');
    assert.equal(wrong.status, 401);
    assert.equal(wrong.json.error.type, 'invalid_ingest_token');
    // an API key is not an ingest token
    assert.equal((await post(s, { events: [ev(a, 'n')] }, a.key)).status, 401);

    // a scoped token, configured after the customer exists (a restart: the index is on disk)
    assert.equal((await post(s, { events: [ev(a, 'kept')] })).json.accepted, 1);
    await s.stopServer();
    s.opts.extra = eventsSection(5, `    - {name: a-only, token: "scoped-token-0123456789abcdef", customer: ${a.customer.id}}`);
    await s.startOnce();
    const scoped = await post(s, { events: [ev(a, 's1'), ev(b, 's2')] }, 'scoped-token-0123456789abcdef');
    assert.deepEqual(scoped.json.results.map((x) => x.status), ['accepted', 'refused']);
    assert.equal(scoped.json.results[1].field, 'customer');
    assert.match(scoped.json.results[1].message, /a-only/);
    // ...and learns nothing about the others: another customer's id or key id and ids that do
    // not exist get the same answer (it used to say "no customer has the id" for those only)
    const probe = await post(s, { events: [
      { ...ev(b, 'p1') }, { ...ev(b, 'p2'), customer: 'cus_000000000000000000000000' },
      { id: 'p3', key: b.keyId, metric: 'api_calls', value: 1, timestamp: now() },
      { id: 'p4', key: 'key_000000000000000000000000', metric: 'api_calls', value: 1, timestamp: now() }] },
    'scoped-token-0123456789abcdef');
    assert.deepEqual(probe.json.results.map((x) => x.status), ['refused', 'refused', 'refused', 'refused']);
    assert.deepEqual(new Set(probe.json.results.map((x) => x.message)).size, 1, JSON.stringify(probe.json.results));
    assert.deepEqual(probe.json.results.map((x) => x.field), ['customer', 'customer', 'key', 'key']);
    // after the restart the event counted before is still a duplicate
    assert.equal((await post(s, { events: [ev(a, 'kept')] })).json.results[0].status, 'duplicate');
    assert.equal(await usageReaches(s, a.customer.id, 'api_calls', 2), 2);
    assert.equal(await usageReaches(s, b.customer.id, 'api_calls', 0), 0);
  } finally {
    await s.stop();
  }
});

test('an event answered accepted survives kill -9 and still counts once', async () => {
  const s = new Stack({ extra: eventsSection(), durability: 'process' });
  await s.start();
  try {
    const { customer } = await s.customer('metered');
    const evs = [1, 2, 3].map((i) => ({ id: `k${i}`, customer: customer.id, metric: 'api_calls', value: 5, timestamp: now() }));
    assert.equal((await post(s, { events: evs })).json.accepted, 3);
    await s.kill9();
    await s.startOnce();
    const again = await post(s, { events: evs });
    assert.deepEqual(again.json.results.map((x) => x.status), ['duplicate', 'duplicate', 'duplicate']);
    assert.equal(await usageReaches(s, customer.id, 'api_calls', 15), 15);
  } finally {
    await s.stop();
  }
});

// The node's dedup index: beside the metering logs (events[-<node>].idx with a log_dir, as on
// PostgreSQL), else beside the SQLite file (tollgate.db-events.idx); the stack's folder holds one.
function indexPath(s) {
  const found = readdirSync(s.dir).filter((f) => f.endsWith('.idx'));
  assert.equal(found.length, 1, `one dedup index in ${s.dir}: ${found}`);
  return join(s.dir, found[0]);
}

// A power cut can leave the index file older than the metering log (strict: the log is synced
// before the answer; the index's pages are synced only before a log is retired). Simulated: the
// file as it was after the start (the last sync), put back after kill -9. The events still in the
// log are claimed again at start: a retry is a duplicate, and counted once.
test('a power cut that leaves an older index: events in the metering log stay duplicates, counted once', async () => {
  const s = new Stack({ extra: eventsSection(), durability: 'strict' });
  await s.start();
  try {
    const { customer } = await s.customer('metered');
    const older = join(s.dir, 'events.idx.older');
    copyFileSync(indexPath(s), older);
    const evs = [1, 2, 3].map((i) => ({ id: `p${i}`, customer: customer.id, metric: 'api_calls', value: 5, timestamp: now() }));
    assert.equal((await post(s, { events: evs })).json.accepted, 3);
    assert.equal(await usageReaches(s, customer.id, 'api_calls', 15), 15);
    await s.kill9();
    copyFileSync(older, indexPath(s));
    await s.startOnce();
    const again = await post(s, { events: [...evs, { ...evs[0], id: 'p4' }] });
    assert.deepEqual(again.json.results.map((x) => x.status), ['duplicate', 'duplicate', 'duplicate', 'accepted']);
    assert.equal(await usageReaches(s, customer.id, 'api_calls', 20), 20);
  } finally {
    await s.stop();
  }
});

// The same power cut once the events' rows have left the metering logs: on SQLite the index is
// made durable by a checkpoint (the store's last event id block, written into its header after a
// sync: at start, every 60 s, at a clean stop), not at each log reset, so the index a power cut
// leaves may miss events that are only in the store by then. Simulated: the file as it was after
// the start (checkpoint: the blocks stored before it), put back after a clean stop, which stored
// everything and emptied the logs. The ids of the blocks stored after that checkpoint are claimed
// again at start: retries are duplicates, stored once. (On PostgreSQL the index is synced before
// each log reset, and the store's check answers for what it lost: accepted, stored once.)
test('a power cut that leaves an older index, its events no longer in any log: duplicates, stored once', async () => {
  const s = new Stack({ extra: eventsSection(), durability: 'process' });
  await s.start();
  try {
    const { customer } = await s.customer('metered');
    const older = join(s.dir, 'events.idx.older');
    copyFileSync(indexPath(s), older);
    const evs = [1, 2, 3].map((i) => ({ id: `r${i}`, customer: customer.id, metric: 'api_calls', value: 5, timestamp: now() }));
    assert.equal((await post(s, { events: evs })).json.accepted, 3);
    assert.equal(await usageReaches(s, customer.id, 'api_calls', 15), 15);
    await s.stopServer(); // the logs stored and emptied: the events are in the store's blocks only
    copyFileSync(older, indexPath(s));
    await s.startOnce();
    const stored = BACKEND === 'sqlite' ? 'duplicate' : 'accepted';
    const again = await post(s, { events: [...evs, { ...evs[0], id: 'r4' }] });
    assert.deepEqual(again.json.results.map((x) => x.status), [stored, stored, stored, 'accepted']);
    assert.equal(await usageReaches(s, customer.id, 'api_calls', 20), 20);
  } finally {
    await s.stop();
  }
});

// An index file that is gone is made anew at start and, on SQLite (one node: the index is its only
// check), filled from the event ids the store kept for the window: the events counted before are
// duplicates. On PostgreSQL the store's check answers for them (accepted, stored once).
test('the index file deleted: rebuilt from the stored event ids at start, a retry counts once', async () => {
  const s = new Stack({ extra: eventsSection(), durability: 'process' });
  await s.start();
  try {
    const { customer } = await s.customer('metered');
    const evs = [1, 2, 3].map((i) => ({ id: `d${i}`, customer: customer.id, metric: 'api_calls', value: 5, timestamp: now() }));
    assert.equal((await post(s, { events: evs })).json.accepted, 3);
    assert.equal(await usageReaches(s, customer.id, 'api_calls', 15), 15);
    const path = indexPath(s);
    await s.stopServer(); // a clean stop: the logs are empty, the store has everything
    unlinkSync(path);
    await s.startOnce();
    assert.ok(existsSync(path));
    const stored = BACKEND === 'sqlite' ? 'duplicate' : 'accepted';
    const again = await post(s, { events: [...evs, { ...evs[0], id: 'd4' }] });
    assert.deepEqual(again.json.results.map((x) => x.status), [stored, stored, stored, 'accepted']);
    assert.equal(await usageReaches(s, customer.id, 'api_calls', 20), 20);
    // and after kill -9 with the index gone again: the logs' rows and the store's ids both count
    assert.equal((await post(s, { events: [{ ...evs[0], id: 'd5' }] })).json.accepted, 1);
    await s.kill9();
    unlinkSync(path);
    await s.startOnce();
    const third = await post(s, { events: [...evs, { ...evs[0], id: 'd4' }, { ...evs[0], id: 'd5' }] });
    // every row accepted since the last clean stop is in the metering log: claimed again on
    // both backends (and d1-d3 from the store on SQLite)
    assert.deepEqual(third.json.results.map((x) => x.status), ['duplicate', 'duplicate', 'duplicate', 'duplicate', 'duplicate']);
    assert.equal(await usageReaches(s, customer.id, 'api_calls', 25), 25);
  } finally {
    await s.stop();
  }
});

test('quota sees events: a block plan refuses calls once events used the allowance', async () => {
  await withStack({ extra: eventsSection() }, async (s) => {
    const { customer, key } = await s.customer('tiny'); // 5 api_calls included, then block
    assert.equal((await s.call('/v1/basic/x', { key })).status, 200);
    const r = await post(s, { events: [{ id: 'q', customer: customer.id, metric: 'api_calls', value: 4, timestamp: now() }] });
    assert.equal(r.json.accepted, 1);
    const refused = await s.call('/v1/basic/x', { key });
    assert.notEqual(refused.status, 200);
    assert.match(refused.json.error.type, /quota/);
  });
});

test('without an events section /v1/events is the upstream\'s path', async () => {
  await withStack({}, async (s) => {
    const r = await post(s, { events: [] });
    assert.equal(r.status, 401);
    assert.notEqual(r.json.error.type, 'invalid_ingest_token'); // the gateway asked for an API key
  });
});

test('late usage: into its own period until that period is invoiced, then onto the next invoice', async () => {
  await withStack({ extra: eventsSection(), testClock: true }, async (s) => {
    const { customer } = await s.customer('metered'); // 10.00 a month, 2 included, 0.25 each after
    const t0 = Date.now();
    const at = (ms) => new Date(t0 + ms).toISOString();
    const ev = (id, ms, value) => ({ id, customer: customer.id, metric: 'api_calls', value, timestamp: at(ms) });
    assert.equal((await post(s, { events: [ev('p1-a', 60e3, 2)] })).json.accepted, 1);
    assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 })).status, 200);

    // the first period ended but is not invoiced yet: a late event counts there. The marker of
    // the second period is in the same batch, so once it is stored, so is the late one.
    const late = await post(s, { events: [ev('p1-late', 2 * 86400e3, 3), ev('p2-marker', 32 * 86400e3, 1)] });
    assert.equal(late.json.accepted, 2, late.text);
    assert.equal(await usageReaches(s, customer.id, 'api_calls', 1), 1, JSON.stringify((await s.adminCall('GET', `/v1/admin/customers/${customer.id}/usage`)).json));
    const run = await s.adminCall('POST', '/v1/admin/invoices/run', { customer: customer.id });
    assert.equal(run.json.created, 1);
    const list = await s.adminCall('GET', `/v1/admin/invoices?customer=${customer.id}`);
    const first = await s.adminCall('GET', `/v1/admin/invoices/${list.json.data[0].id}`);
    assert.equal(first.json.total, '10.75'); // 10.00 + (2 + 3 - 2) x 0.25
    // finalized: from now on its period's usage is no longer the draft's (the next test covers a
    // draft, whose late usage the upcoming invoice leaves to it)
    const fin = await s.adminCall('POST', `/v1/admin/invoices/${list.json.data[0].id}/finalize`);
    assert.equal(fin.status, 200, fin.text);

    // once the period is invoiced, a later event dated in it goes onto the next invoice, as a
    // line of its own dated with its period and priced as that period would have priced it
    const later = await post(s, { events: [ev('p1-later', 3 * 86400e3, 4), ev('p2-marker-2', 32 * 86400e3, 1)] });
    assert.equal(later.json.accepted, 2, later.text);
    assert.equal(await usageReaches(s, customer.id, 'api_calls', 2), 2);
    assert.equal((await s.adminCall('GET', `/v1/admin/invoices/${list.json.data[0].id}`)).json.total, '10.75');
    const up = await s.adminCall('GET', `/v1/admin/customers/${customer.id}/invoices/upcoming`);
    // 10.00 + this period's 2 calls (inside its own allowance of 2: 0.00) + the 4 late calls,
    // priced after the 5 January billed (3 over its allowance already): 4 x 0.25
    assert.equal(up.json.total, '11.00', up.text);
    const own = up.json.lines.find((l) => l.metric === 'api_calls' && !l.late_period);
    assert.equal(own.used, 2, up.text); // the late calls do not take this period's allowance
    assert.equal(own.quantity, 0);
    assert.equal(own.amount, '0.00');
    const lateLines = up.json.lines.filter((l) => l.late_period);
    assert.equal(lateLines.length, 1, up.text);
    const [line] = lateLines;
    const p1 = first.json.period;
    const lastDay = new Date(Date.parse(p1.end) - 1000).toISOString().slice(0, 10);
    assert.deepEqual(line.late_period, { start: p1.start, end: p1.end });
    assert.equal(line.description, `api_calls used ${p1.start.slice(0, 10)} to ${lastDay}, reported after that period's invoice`);
    assert.equal(line.metric, 'api_calls');
    assert.equal(line.plan, 'metered');
    assert.equal(line.quantity, 4);
    assert.equal(line.invoiced, 5);
    assert.equal(line.amount, '1.00');

    // the next period's invoice bills it once; its page shows it under the metric's name
    assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 31 * 86400 })).status, 200);
    assert.equal((await s.adminCall('POST', '/v1/admin/invoices/run', { customer: customer.id })).json.created, 1);
    const all = await s.adminCall('GET', `/v1/admin/invoices?customer=${customer.id}`);
    assert.equal(all.json.data.length, 2);
    const second = await s.adminCall('GET', `/v1/admin/invoices/${all.json.data[0].id}`);
    assert.equal(second.json.total, '11.00', second.text);
    assert.deepEqual(second.json.lines.filter((l) => l.late_period), lateLines);
    const again = await s.adminCall('GET', `/v1/admin/customers/${customer.id}/invoices/upcoming`);
    assert.equal(again.json.lines.filter((l) => l.late_period).length, 0, again.text); // not twice
  });
});

test('late usage while its period\'s invoice is a draft: onto that invoice when it is finalized, not onto the next', async () => {
  await withStack({ extra: eventsSection(), testClock: true }, async (s) => {
    const { customer } = await s.customer('metered'); // 10.00 a month, 2 included, 0.25 each after
    const t0 = Date.now();
    const at = (ms) => new Date(t0 + ms).toISOString();
    const ev = (id, ms, value) => ({ id, customer: customer.id, metric: 'api_calls', value, timestamp: at(ms) });
    assert.equal((await post(s, { events: [ev('d1-a', 60e3, 2)] })).json.accepted, 1);
    assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 })).status, 200);
    assert.equal((await s.adminCall('POST', '/v1/admin/invoices/run', { customer: customer.id })).json.created, 1);
    const list = await s.adminCall('GET', `/v1/admin/invoices?customer=${customer.id}`);
    const id = list.json.data[0].id;
    const draft = await s.adminCall('GET', `/v1/admin/invoices/${id}`);
    assert.equal(draft.json.status, 'draft');
    assert.equal(draft.json.total, '10.00'); // 2 calls, inside the allowance

    // 3 calls dated in the drafted period (the marker of the current one in the same batch:
    // once it is stored, so is the late event)
    const late = await post(s, { events: [ev('d1-late', 2 * 86400e3, 3), ev('d2-marker', 32 * 86400e3, 1)] });
    assert.equal(late.json.accepted, 2, late.text);
    assert.equal(await usageReaches(s, customer.id, 'api_calls', 1), 1);
    // while the period's invoice is a draft those calls are the draft's: the upcoming invoice
    // leaves them out (finalizing puts them on the draft), and says what each line is
    let up = await s.adminCall('GET', `/v1/admin/customers/${customer.id}/invoices/upcoming`);
    assert.equal(up.json.lines.filter((l) => l.late_period || l.kind === 'late_usage').length, 0, up.text);
    assert.equal(up.json.total, '10.00', up.text); // the base fee; 1 call of its own, inside the allowance
    assert.deepEqual(up.json.lines.map((l) => l.kind), ['base_fee', 'usage'], up.text);
    assert.deepEqual(draft.json.lines.map((l) => l.kind), ['base_fee', 'usage'], draft.text);
    const fin = await s.adminCall('POST', `/v1/admin/invoices/${id}/finalize`);
    assert.equal(fin.status, 200, fin.text);
    const open = await s.adminCall('GET', `/v1/admin/invoices/${id}`);
    assert.equal(open.json.status, 'open');
    assert.equal(open.json.total, '10.75', open.text); // 10.00 + (2 + 3 - 2) x 0.25, at its own tiers
    const own = open.json.lines.filter((l) => l.metric === 'api_calls');
    assert.equal(own.length, 1, open.text);
    assert.equal(own[0].used, 5);
    assert.equal(own[0].quantity, 3);
    assert.equal(own[0].amount, '0.75');
    up = await s.adminCall('GET', `/v1/admin/customers/${customer.id}/invoices/upcoming`);
    assert.equal(up.json.lines.filter((l) => l.late_period).length, 0, up.text); // not billed twice

    // after finalization, usage dated in that period is a dated line on the next invoice
    const after = await post(s, { events: [ev('d1-after', 3 * 86400e3, 4), ev('d2-marker-2', 32 * 86400e3, 1)] });
    assert.equal(after.json.accepted, 2, after.text);
    assert.equal(await usageReaches(s, customer.id, 'api_calls', 2), 2);
    assert.equal((await s.adminCall('GET', `/v1/admin/invoices/${id}`)).json.total, '10.75');
    up = await s.adminCall('GET', `/v1/admin/customers/${customer.id}/invoices/upcoming`);
    const lateLines = up.json.lines.filter((l) => l.late_period);
    assert.equal(lateLines.length, 1, up.text);
    assert.equal(lateLines[0].quantity, 4);
    assert.equal(lateLines[0].invoiced, 5);
    assert.equal(lateLines[0].amount, '1.00');
    assert.equal(lateLines[0].kind, 'late_usage');
  });
});

// The service counts a batch's units once per (customer, period, metric) and remembers the
// periods it computed per customer: interleaved customers and periods must still land each
// event's units on its own customer's counter and its own period.
test('one batch, customers interleaved: each customer\'s quota sees exactly its own events', async () => {
  await withStack({ extra: eventsSection() }, async (s) => {
    const a = await s.customer('tiny'); // 5 api_calls included, then block
    const b = await s.customer('tiny');
    const ev = (id, c, value) => ({ id, customer: c.customer.id, metric: 'api_calls', value, timestamp: now() });
    const r = await post(s, { events: [ev('a1', a, 2), ev('b1', b, 3), ev('a2', a, 2), ev('b2', b, 1), ev('a1', a, 2)] });
    assert.deepEqual(r.json.results.map((x) => x.status), ['accepted', 'accepted', 'accepted', 'accepted', 'duplicate']);
    // a used 4 of 5: one call passes, the next is refused; b used 4 too
    for (const c of [a, b]) {
      assert.equal((await s.call('/v1/basic/x', { key: c.key })).status, 200);
      const refused = await s.call('/v1/basic/x', { key: c.key });
      assert.match(refused.json.error.type, /quota/);
    }
  });
});

test('one batch, periods interleaved: each event counts in the period of its timestamp', async () => {
  await withStack({ extra: eventsSection(), testClock: true }, async (s) => {
    const { customer } = await s.customer('metered');
    const t0 = Date.now();
    const at = (ms) => new Date(t0 + ms).toISOString();
    const ev = (id, ms, value) => ({ id, customer: customer.id, metric: 'api_calls', value, timestamp: at(ms) });
    assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 })).status, 200);
    // this period, the period before, this period again
    const r = await post(s, { events: [ev('now-1', 32 * 86400e3, 1), ev('before', 60e3, 2), ev('now-2', 32 * 86400e3, 4)] });
    assert.equal(r.json.accepted, 3, r.text);
    assert.equal(await usageReaches(s, customer.id, 'api_calls', 5), 5);
  });
});

// A period without usage is billed at its plan's minimum; usage of it reported after its invoice
// is priced on top of that minimum: 40 late calls at $1 are inside the $100 and cost nothing.
test('late usage of a period billed at its minimum without usage costs nothing inside the minimum', async () => {
  await withStack({ extra: eventsSection(), testClock: true, morePlans: COMMITTED_PLAN }, async (s) => {
    const { customer } = await s.customer('committed');
    const t0 = Date.now();
    const at = (ms) => new Date(t0 + ms).toISOString();
    const ev = (id, ms, value) => ({ id, customer: customer.id, metric: 'api_calls', value, timestamp: at(ms) });
    assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 })).status, 200);
    assert.equal((await s.adminCall('POST', '/v1/admin/invoices/run', { customer: customer.id })).json.created, 1);
    const list = await s.adminCall('GET', `/v1/admin/invoices?customer=${customer.id}`);
    const first = await s.adminCall('GET', `/v1/admin/invoices/${list.json.data[0].id}`);
    assert.deepEqual(first.json.lines.map((l) => [l.kind, l.amount]),
      [['base_fee', '10.00'], ['usage', '0.00'], ['minimum', '100.00']]);
    assert.equal((await s.adminCall('POST', `/v1/admin/invoices/${first.json.id}/finalize`)).status, 200);

    // 40 calls of the first period, and a marker of the second in the same batch
    const late = await post(s, { events: [ev('p1-late', 2 * 86400e3, 40), ev('p2-marker', 32 * 86400e3, 2)] });
    assert.equal(late.json.accepted, 2, late.text);
    assert.equal(await usageReaches(s, customer.id, 'api_calls', 2), 2);
    const up = await s.adminCall('GET', `/v1/admin/customers/${customer.id}/invoices/upcoming`);
    const [line] = up.json.lines.filter((l) => l.late_period);
    assert.equal(line.quantity, 40, up.text);
    assert.equal(line.invoiced, 0);
    assert.equal(line.amount, '0.00', up.text); // before: 100.00, the minimum billed a second time
    assert.equal(up.json.total, '110.00', up.text); // 10 + this period's $2 topped up to $100 + 0
  });
});

// A batch looks each customer or key up once, validates each metric once and parses a repeated
// timestamp once (metering/events.c, batch_memo_t): every event still gets its own answer, and
// nothing remembered in one batch is used in the next.
test('one batch remembers its lookups for itself only: each event its own answer, the next batch looks again', async () => {
  // process durability: the rows go through the loop's own meter batch (tg_meter_batch_commit)
  const s = new Stack({ extra: eventsSection(12), durability: 'process' });
  await s.start();
  try {
    const a = await s.customer('metered');
    const b = await s.customer('metered');
    await s.stopServer();
    s.opts.extra = eventsSection(12, `    - {name: a-only, token: "scoped-token-0123456789abcdef", customer: ${a.customer.id}}`);
    await s.startOnce();
    const at = now();
    const ev = (id, ref, metric = 'api_calls', timestamp = at) => ({ id, ...ref, metric, value: 1, timestamp });
    const byId = (c) => ({ customer: c.customer.id });
    const byKey = (c) => ({ key: c.keyId });
    const scoped = await post(s, { events: [
      ev('m1', byId(a)), ev('m2', byId(b)), ev('m3', byKey(a)), ev('m4', { customer: 'cus_nobody' }),
      ev('m5', byId(a), 'no_such_metric'), ev('m6', byKey(b)), ev('m7', byId(a), 'api_calls', '2026-02-30T00:00:00Z'),
      ev('m8', { customer: 'cus_nobody' }), ev('m9', byId(a), 'no_such_metric'), ev('m10', byKey(a)),
      ev('m11', byId(b)), ev('m12', byId(a)),
    ] }, 'scoped-token-0123456789abcdef');
    assert.equal(scoped.status, 200, scoped.text);
    assert.deepEqual(scoped.json.results.map((x) => [x.id, x.status, x.field ?? null]), [
      ['m1', 'accepted', null], ['m2', 'refused', 'customer'], ['m3', 'accepted', null], ['m4', 'refused', 'customer'],
      ['m5', 'refused', 'metric'], ['m6', 'refused', 'key'], ['m7', 'refused', 'timestamp'], ['m8', 'refused', 'customer'],
      ['m9', 'refused', 'metric'], ['m10', 'accepted', null], ['m11', 'refused', 'customer'], ['m12', 'accepted', null]]);
    for (const i of [1, 3, 5, 7, 10]) assert.match(scoped.json.results[i].message, /a-only/);
    for (const i of [4, 8]) assert.match(scoped.json.results[i].message, /"no_such_metric" is not defined/);

    // the next batch, unscoped: b's ids (refused above) are b's again, a customer made in between
    // is found, the unknown id is still unknown
    const c = await s.customer('metered');
    const next = await post(s, { events: [ev('n1', byId(b)), ev('n2', byKey(c)), ev('n3', byId(c)),
      ev('n4', { customer: 'cus_nobody' }), ev('n5', byKey(b)), ev('m1', byId(a))] });
    assert.deepEqual(next.json.results.map((x) => x.status),
      ['accepted', 'accepted', 'accepted', 'refused', 'accepted', 'duplicate']);
    assert.match(next.json.results[3].message, /no customer has the id "cus_nobody"/);
    assert.equal(await usageReaches(s, a.customer.id, 'api_calls', 4), 4); // m1, m3, m10, m12
    assert.equal(await usageReaches(s, b.customer.id, 'api_calls', 2), 2);
    assert.equal(await usageReaches(s, c.customer.id, 'api_calls', 2), 2);
  } finally {
    await s.stop();
  }
});

test('one batch runs a customer past its allowance: every event counts, and the quota sees all of them', async () => {
  await withStack({ extra: eventsSection(6) }, async (s) => {
    const a = await s.customer('tiny'); // 5 api_calls included, then block
    const b = await s.customer('tiny');
    const ev = (id, c, value) => ({ id, customer: c.customer.id, metric: 'api_calls', value, timestamp: now() });
    // a: 2 + 2 + 2 = 6 units, past 5 at its third event; b: 1 + 2 = 3, inside
    const r = await post(s, { events: [ev('a1', a, 2), ev('b1', b, 1), ev('a2', a, 2), ev('a3', a, 2), ev('b2', b, 2), ev('a2', a, 2)] });
    assert.deepEqual(r.json.results.map((x) => x.status), ['accepted', 'accepted', 'accepted', 'accepted', 'accepted', 'duplicate']);
    assert.equal(await usageReaches(s, a.customer.id, 'api_calls', 6), 6);
    assert.equal(await usageReaches(s, b.customer.id, 'api_calls', 3), 3);
    assert.match((await s.call('/v1/basic/x', { key: a.key })).json.error.type, /quota/);
    assert.equal((await s.call('/v1/basic/x', { key: b.key })).status, 200); // 4 of 5
  });
});
