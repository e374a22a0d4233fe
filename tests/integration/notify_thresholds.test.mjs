// notify_thresholds.test.mjs - the notifications decided from usage and time (issue 13, part C):
// usage.threshold_reached at 80/100/120 % of an allowance, quota.exhausted, budget.exceeded and
// trial.will_end, each exactly once, driven by real calls through the gateway, also across a
// kill -9 and a restart. What fired is read from the events table (the events core of part A;
// read with the sqlite3 / psql client until its admin feed is here), from the marks that make
// each fire once (GET /v1/admin/customers/{id}/notification-marks) and from /metrics'
// tollgate_notifications_decided_total (fired vs repeated: a repeat is a crossing seen again
// whose mark was there, so nothing was emitted).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Stack, sleep } from './harness.mjs';

const MORE_PLANS = `  alerts:
    price: "1"
    rate_limit: 1000/sec
    burst: 1000
    included: {api_calls: 10, tokens: 1000}
    on_quota: bill
    charges: [{metric: api_calls, model: per_unit, unit_price: "1"}]
  halfway:
    price: "1"
    rate_limit: 1000/sec
    burst: 1000
    included: {api_calls: 4}
    on_quota: bill
    notify_thresholds: [50]
  walled:
    price: "1"
    rate_limit: 1000/sec
    burst: 1000
    included: {api_calls: 3}
    on_quota: block
  trial2:
    price: "5"
    trial_days: 2
    rate_limit: 1000/sec
    burst: 1000
    included: {api_calls: 100}
`;

const opts = (extra = {}) => ({ morePlans: MORE_PLANS, ...extra });

// SQL on the Stack's store through the database's own client (ids are checked before splicing).
function sql(s, text) {
  const url = s.storageUrl();
  const r = url.startsWith('sqlite:')
    ? spawnSync('sqlite3', [url.slice('sqlite:'.length), text], { encoding: 'utf8' })
    : spawnSync('psql', [url, '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', text], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => l !== '');
}

// The customer's usage, budget and trial events in order (not the account's own: customer.created,
// key.created...): [{type, dedupe_key, data}].
function events(s, id) {
  assert.match(id, /^[A-Za-z0-9_]+$/);
  return sql(s, `SELECT type || '|' || COALESCE(dedupe_key, '') || '|' || data FROM events WHERE customer_id = '${id}'`
    + ` AND type IN ('usage.threshold_reached', 'quota.exhausted', 'budget.exceeded', 'trial.will_end') ORDER BY seq`)
    .map((l) => { const [type, dedupe, ...rest] = l.split('|'); return { type, dedupe, data: JSON.parse(rest.join('|')) }; });
}
const levels = (evs, metric = 'api_calls') => evs.filter((e) => e.type === 'usage.threshold_reached' && e.data.metric === metric)
  .map((e) => e.data.threshold_percent).sort((a, b) => a - b);

async function marks(s, id) {
  const r = await s.adminCall('GET', `/v1/admin/customers/${id}/notification-marks`);
  assert.equal(r.status, 200, r.text);
  return r.json.data;
}

const key = (m) => `${m.kind}:${m.metric ?? ''}:${m.level}`;

// Polls until pred(marks) holds (bounded: 30 s, for the 10 s budget pass and admin tick).
async function waitMarks(s, id, pred, what) {
  let last = [];
  for (let i = 0; i < 600; i++) {
    last = await marks(s, id);
    if (pred(last)) return last;
    await sleep(50);
  }
  assert.fail(`${what}: marks are ${JSON.stringify(last.map(key))}`);
}

async function decided(s) {
  const r = await s.adminCall('GET', '/metrics');
  const get = (res) => Number(new RegExp(`tollgate_notifications_decided_total\\{result="${res}"\\} (\\d+)`).exec(r.text)[1]);
  return { fired: get('fired'), repeated: get('repeated'), dropped: get('dropped'), failed: get('failed') };
}

async function calls(s, k, n, path = '/v1/basic/x') {
  for (let i = 0; i < n; i++) assert.equal((await s.call(path, { key: k })).status, 200);
}

const usageMarks = (ms, metric = 'api_calls') =>
  ms.filter((m) => m.kind === 'usage' && m.metric === metric).map((m) => m.level).sort((a, b) => a - b);

test('usage.threshold_reached fires once at each of 80, 100 and 120 % as real calls cross them', async () => {
  const s = await new Stack(opts()).start();
  try {
    const { customer, key: k } = await s.customer('alerts');
    await calls(s, k, 7);
    assert.deepEqual(await marks(s, customer.id), []); // 70 %: nothing
    await calls(s, k, 1); // 8 of 10
    await waitMarks(s, customer.id, (ms) => usageMarks(ms).length === 1, '80 %');
    await calls(s, k, 1); // 9: crosses nothing
    await calls(s, k, 1); // 10
    await waitMarks(s, customer.id, (ms) => usageMarks(ms).length === 2, '100 %');
    await calls(s, k, 2); // 12
    const ms = await waitMarks(s, customer.id, (x) => usageMarks(x).length === 3, '120 %');
    await calls(s, k, 5); // far past every level
    assert.deepEqual(usageMarks(ms), [80, 100, 120]);
    const after = await marks(s, customer.id);
    assert.deepEqual(usageMarks(after), [80, 100, 120]);
    const m80 = after.find((m) => m.level === 80);
    assert.match(m80.period_start, /^\d{4}-\d\d-\d\dT/);
    const d = await decided(s);
    assert.equal(d.fired, 3);
    assert.equal(d.repeated, 0);
    assert.equal(d.dropped + d.failed, 0);
    // one event per level, with its payload (docs/api.md)
    const evs = events(s, customer.id);
    assert.deepEqual(evs.map((e) => e.type), Array(3).fill('usage.threshold_reached'));
    assert.deepEqual(levels(evs), [80, 100, 120]);
    const e80 = evs.find((e) => e.data.threshold_percent === 80);
    assert.equal(e80.data.metric, 'api_calls');
    assert.equal(e80.data.used, 8);
    assert.equal(e80.data.included, 10);
    assert.equal(e80.data.plan, 'alerts');
    assert.equal(e80.data.period_start, m80.period_start);
    assert.match(e80.data.period_end, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.match(e80.dedupe, new RegExp(`^threshold:${customer.id}:\\d+:api_calls:80$`));
  } finally { await s.stop(); }
});

test('a call whose reservation is released (upstream 5xx) does not fire; the next billed call that reaches the level does', async () => {
  const s = await new Stack(opts()).start();
  try {
    const { customer, key: k } = await s.customer('alerts');
    await calls(s, k, 7);
    // the 8th unit is reserved and crosses 80 %, but the upstream fails: not billed, not notified
    assert.equal((await s.call('/v1/status/503', { key: k })).status, 503);
    assert.equal(await s.usage(customer.id), 7);
    // the notifier looked again (RECHECK) and found the counter below the level: give it the
    // time of a few records, then nothing must be there
    for (let i = 0; i < 20 && (await marks(s, customer.id)).length === 0; i++) await sleep(25);
    assert.deepEqual(await marks(s, customer.id), []);
    assert.deepEqual(events(s, customer.id), []);
    await calls(s, k, 1); // billed 8th unit
    await waitMarks(s, customer.id, (ms) => usageMarks(ms).length === 1, '80 % after the billed call');
    assert.deepEqual(usageMarks(await marks(s, customer.id)), [80]);
    assert.deepEqual(levels(events(s, customer.id)), [80]);
  } finally { await s.stop(); }
});

test('units the upstream reports (Tollgate-Units) cross the thresholds of their own metric; per-plan thresholds apply', async () => {
  const s = await new Stack(opts()).start();
  try {
    const { customer, key: k } = await s.customer('alerts');
    assert.equal((await s.call('/v1/units?tokens=700', { key: k })).status, 200);
    assert.equal((await s.call('/v1/units?tokens=550', { key: k })).status, 200); // 1250 of 1000: 80, 100, 120 at once
    await waitMarks(s, customer.id, (ms) => usageMarks(ms, 'tokens').length === 3, 'tokens');
    const evs = events(s, customer.id);
    assert.deepEqual(levels(evs, 'tokens'), [80, 100, 120]);
    assert.equal(evs[0].data.used, 1250);
    const h = await s.customer('halfway'); // notify_thresholds: [50] of 4 calls
    await calls(s, h.key, 1);
    await sleep(100);
    assert.deepEqual(await marks(s, h.customer.id), []);
    await calls(s, h.key, 4);
    const ms = await waitMarks(s, h.customer.id, (x) => x.length === 1, '50 %');
    assert.deepEqual(ms.map(key), ['usage:api_calls:50']);
  } finally { await s.stop(); }
});

test('kill -9 between 80 and 100 %: after the restart 80 is not fired again, 100 and 120 fire once', async () => {
  const s = await new Stack(opts({ durability: 'strict' })).start();
  try {
    const { customer, key: k } = await s.customer('alerts');
    await calls(s, k, 9); // 90 %: the 80 % mark is written
    await waitMarks(s, customer.id, (ms) => usageMarks(ms).length === 1, '80 % before the kill');
    await s.kill9();
    await s.start();
    // warming the counters (9 of 10) re-detects the 80 % level: its mark refuses it
    for (let i = 0; i < 200 && (await decided(s)).repeated === 0; i++) await sleep(25);
    let d = await decided(s);
    assert.equal(d.repeated, 1);
    assert.equal(d.fired, 0);
    await calls(s, k, 3); // 12: 100 and 120
    const ms = await waitMarks(s, customer.id, (x) => usageMarks(x).length === 3, '100 and 120 % after the restart');
    assert.deepEqual(usageMarks(ms), [80, 100, 120]);
    d = await decided(s);
    assert.equal(d.fired, 2);
    await calls(s, k, 3);
    assert.deepEqual(usageMarks(await marks(s, customer.id)), [80, 100, 120]);
    assert.deepEqual(levels(events(s, customer.id)), [80, 100, 120]); // each exactly once
  } finally { await s.stop(); }
});

test('a crossing lost with the process (queued, not yet marked) fires at the restart, once', async () => {
  // Stands for a kill -9 between the call and the notifier's transaction: the usage is durable
  // (strict metering) but neither the 100 % mark nor its event was written. And the 80 % event
  // without its mark (written by a path that keeps no mark) must not be emitted twice either:
  // the event's dedupe key refuses it.
  const s = await new Stack(opts({ durability: 'strict' })).start();
  try {
    const { customer, key: k } = await s.customer('alerts');
    await calls(s, k, 10);
    await waitMarks(s, customer.id, (ms) => usageMarks(ms).length === 2, '80 and 100 %');
    assert.deepEqual(levels(events(s, customer.id)), [80, 100]);
    await s.kill9();
    sql(s, `DELETE FROM notification_marks WHERE customer_id = '${customer.id}'`);
    sql(s, `DELETE FROM events WHERE customer_id = '${customer.id}' AND dedupe_key LIKE '%:api_calls:100'`);
    assert.deepEqual(levels(events(s, customer.id)), [80]);
    await s.start();
    const ms = await waitMarks(s, customer.id, (x) => usageMarks(x).length === 2, '100 % again');
    assert.deepEqual(usageMarks(ms), [80, 100]);
    for (let i = 0; i < 200 && (await decided(s)).repeated === 0; i++) await sleep(25);
    const d = await decided(s);
    assert.equal(d.fired, 1); // 100 %
    assert.equal(d.repeated, 1); // 80 %: its event was there
    assert.deepEqual(levels(events(s, customer.id)), [80, 100]);
  } finally { await s.stop(); }
});

test('quota.exhausted fires once when a block plan refuses its first call of the period', async () => {
  const s = await new Stack(opts()).start();
  try {
    const { customer, key: k } = await s.customer('walled');
    await calls(s, k, 3);
    for (let i = 0; i < 5; i++) assert.equal((await s.call('/v1/basic/x', { key: k })).status, 429);
    const ms = await waitMarks(s, customer.id, (x) => x.some((m) => m.kind === 'exhausted'), 'exhausted');
    assert.equal(ms.filter((m) => m.kind === 'exhausted').length, 1);
    assert.equal(ms.find((m) => m.kind === 'exhausted').metric, 'api_calls');
    // the levels of a block plan: 80 % (3 of 3 is 100 %, reached by the 3rd call; 120 % never)
    assert.deepEqual(usageMarks(ms), [80, 100]);
    // refused again after a restart: the process forgot, the mark did not
    await s.stopServer();
    await s.start();
    assert.equal((await s.call('/v1/basic/x', { key: k })).status, 429);
    for (let i = 0; i < 200 && (await decided(s)).repeated < 3; i++) await sleep(25);
    const d = await decided(s);
    assert.equal(d.fired, 0);
    assert.equal(d.repeated, 3); // 80 and 100 from the warm counters, exhausted from the refusal
    assert.equal((await marks(s, customer.id)).filter((m) => m.kind === 'exhausted').length, 1);
    const ex = events(s, customer.id).filter((e) => e.type === 'quota.exhausted');
    assert.equal(ex.length, 1);
    assert.equal(ex[0].data.metric, 'api_calls');
    assert.equal(ex[0].data.included, 3);
    assert.match(ex[0].data.resets_at, /^\d{4}-/);
  } finally { await s.stop(); }
});

test('budget.exceeded fires once when the estimated bill passes the budget set in the portal', async () => {
  const s = await new Stack(opts()).start();
  try {
    // a customer of the portal sets the budget
    let cookie = '', csrf = '';
    const portal = async (method, path, body) => {
      const headers = { 'content-type': 'application/json' };
      if (cookie) headers.cookie = cookie;
      if (csrf) headers['x-csrf-token'] = csrf;
      const r = await fetch(s.admin + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const set = r.headers.get('set-cookie');
      if (set) cookie = set.split(';')[0];
      const json = await r.json().catch(() => null);
      if (json && json.csrf_token) csrf = json.csrf_token;
      return { status: r.status, json };
    };
    const su = await portal('POST', '/v1/signup', { email: `b-${Date.now()}@example.com`, password: 'correct horse battery', plan: 'alerts' });
    assert.equal(su.status, 201, JSON.stringify(su.json));
    const id = su.json.customer.id, k = su.json.key.secret;
    let b = await portal('GET', '/v1/me/budget');
    assert.equal(b.status, 200);
    assert.deepEqual(b.json.budget, null);
    assert.equal(b.json.currency, 'usd');
    assert.equal(b.json.estimate, '1.00'); // the base fee
    // exact amounts of the plan's currency only
    assert.equal((await portal('PUT', '/v1/me/budget', { amount: '3.005' })).status, 400);
    assert.equal((await portal('PUT', '/v1/me/budget', { amount: 3 })).status, 400);
    assert.equal((await portal('PUT', '/v1/me/budget', { amount: '-1' })).status, 400);
    // or whole minor units (what the portal page sends, having parsed the text itself)
    b = await portal('PUT', '/v1/me/budget', { amount_minor: 4950 });
    assert.equal(b.status, 200, JSON.stringify(b.json));
    assert.equal(b.json.budget, '49.50');
    assert.equal(b.json.budget_minor, 4950);
    assert.equal(b.json.currency_digits, 2);
    assert.equal(b.json.estimate_minor, 100);
    assert.equal((await portal('PUT', '/v1/me/budget', { amount_minor: 4950.5 })).status, 400);
    assert.equal((await portal('PUT', '/v1/me/budget', { amount_minor: '4950' })).status, 400);
    assert.equal((await portal('PUT', '/v1/me/budget', { amount_minor: 0 })).status, 400);
    assert.equal((await portal('PUT', '/v1/me/budget', { amount_minor: 100000000001 })).status, 422); // money_out_of_range, as the text form's
    assert.equal((await portal('PUT', '/v1/me/budget', { amount: '1.00', amount_minor: 100 })).status, 400);
    assert.equal((await portal('PUT', '/v1/me/budget', {})).status, 400);
    assert.equal((await portal('GET', '/v1/me/budget')).json.budget_minor, 4950);
    b = await portal('PUT', '/v1/me/budget', { amount: '3.00' });
    assert.equal(b.status, 200, JSON.stringify(b.json));
    assert.equal(b.json.budget, '3.00');
    assert.equal(b.json.exceeded, false);
    // the owner sees the same through the admin API
    const ab = await s.adminCall('GET', `/v1/admin/customers/${id}/budget`);
    assert.equal(ab.json.budget, '3.00');
    await calls(s, k, 12); // 1 + 2 x 1.00 overage = 3.00: not above
    b = await portal('GET', '/v1/me/budget');
    assert.equal(b.json.estimate, '3.00');
    assert.equal(b.json.exceeded, false);
    await sleep(200);
    assert.equal((await marks(s, id)).filter((m) => m.kind === 'budget').length, 0);
    await calls(s, k, 1); // 4.00 > 3.00
    const ms = await waitMarks(s, id, (x) => x.some((m) => m.kind === 'budget'), 'budget');
    assert.equal(ms.filter((m) => m.kind === 'budget').length, 1);
    b = await portal('GET', '/v1/me/budget');
    assert.equal(b.json.estimate, '4.00');
    assert.equal(b.json.exceeded, true);
    await calls(s, k, 3); // further over: no second event (the next pass skips it; its mark would refuse it)
    assert.equal((await marks(s, id)).filter((m) => m.kind === 'budget').length, 1);
    // the admin API removes it
    const be = events(s, id).filter((e) => e.type === 'budget.exceeded');
    assert.equal(be.length, 1);
    assert.equal(be[0].data.budget, '3.00');
    assert.equal(be[0].data.estimate, '4.00');
    assert.equal(be[0].data.currency, 'usd');
    const rm = await s.adminCall('PUT', `/v1/admin/customers/${id}/budget`, { amount: null });
    assert.equal(rm.status, 200);
    assert.equal(rm.json.budget, null);
    assert.equal(rm.json.budget_minor, null);
  } finally { await s.stop(); }
});

test('trial.will_end fires once per trial, N days before its end (notifications.trial_will_end_days)', async () => {
  // trial2's trial is 2 days: with trial_will_end_days 3 the reminder is due at once
  const s = await new Stack(opts({ extra: 'notifications: {trial_will_end_days: 3}' })).start();
  try {
    const { customer } = await s.customer('trial2');
    assert.equal(customer.status, 'trialing');
    const other = await s.customer('starter'); // 14 days: not yet
    const ms = await waitMarks(s, customer.id, (x) => x.some((m) => m.kind === 'trial'), 'trial');
    assert.equal(ms.length, 1);
    assert.equal(ms[0].level, 3);
    assert.equal(ms[0].period_start, customer.trial_end); // keyed by the trial's end
    // a later tick (it reminds a trial created after the first) emits nothing more for the first
    const late = await s.customer('trial2');
    await waitMarks(s, late.customer.id, (x) => x.some((m) => m.kind === 'trial'), 'the later trial');
    assert.equal((await marks(s, customer.id)).length, 1);
    assert.deepEqual(await marks(s, other.customer.id), []);
    const te = events(s, customer.id).filter((e) => e.type === 'trial.will_end');
    assert.equal(te.length, 1);
    assert.equal(te[0].data.trial_end, customer.trial_end);
    assert.equal(te[0].data.days_left, 2);
    assert.equal(te[0].data.plan, 'trial2');
    assert.deepEqual(events(s, other.customer.id).filter((e) => e.type === 'trial.will_end'), []);
  } finally { await s.stop(); }
});
