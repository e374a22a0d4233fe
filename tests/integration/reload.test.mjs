// Reloading the configuration while serving (docs/configuration.md, "Reloading"): SIGHUP and
// `tollgate reload -c FILE` (POST /v1/admin/reload). A valid file is swapped in under load
// without a failed call, new limits and endpoint lists apply, quota counters are kept; an
// invalid file, or one that removes a plan customers are on, is refused and the old
// configuration keeps working; settings only a restart changes are named and kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:http';
import { Stack, withStack, freePort, sleep } from './harness.mjs';

const LIVE_PLAN = `
  live:
    price: "1"
    rate_limit: 100000/sec
    burst: 100000
    endpoints: ["/v1/basic/*"]
    included: {api_calls: 1000000}
    on_quota: block
  spare:
    price: "2"
    rate_limit: 10/sec
    burst: 10
`;

// Polls cond() (async) up to ~20 s; returns its last truthy value or fails with what().
async function until(cond, what) {
  for (let i = 0; i < 800; i++) {
    const v = await cond();
    if (v) return v;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function edit(s, fn) {
  const text = readFileSync(s.config, 'utf8');
  const next = fn(text);
  assert.notEqual(next, text, 'the edit changed the file');
  writeFileSync(s.config, next);
}

const logOf = (s) => s.server.output;

// Continuous calls from `n` loops until stop(); every answer that is not 200 or 429, and every
// connection error, is kept.
function load(s, key, n) {
  const failures = [];
  let calls = 0, running = true;
  const loops = Array.from({ length: n }, async () => {
    while (running) {
      try {
        const r = await fetch(`${s.gw}/v1/basic/load`, { headers: { authorization: `Bearer ${key}` } });
        await r.arrayBuffer();
        calls++;
        if (r.status !== 200 && r.status !== 429) failures.push(`status ${r.status}`);
      } catch (e) {
        failures.push(`connection: ${e.cause?.code || e.message}`);
      }
    }
  });
  return { failures, get calls() { return calls; }, stop: async () => { running = false; await Promise.all(loops); } };
}

test('SIGHUP under load: new rate limit and endpoints apply, no call fails, quota counters are kept', async () => {
  await withStack({ morePlans: LIVE_PLAN }, async (s) => {
    const { customer, key } = await s.customer('live');
    const first = await s.call('/v1/basic/x', { key });
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('x-ratelimit-limit'), '100000');
    assert.equal((await s.call('/v1/text/x', { key })).status, 403, 'not in the plan before the reload');

    const l = load(s, key, 6);
    await until(() => l.calls >= 200, 'calls under load');
    const before = await s.call('/v1/basic/x', { key });
    const remainingBefore = Number(before.headers.get('x-quota-remaining'));
    assert.ok(remainingBefore <= 1000000 - 200, `quota counts the load: ${remainingBefore}`);

    edit(s, (t) => t.replace('    rate_limit: 100000/sec\n    burst: 100000\n    endpoints: ["/v1/basic/*"]',
      '    rate_limit: 50000/sec\n    burst: 50000\n    endpoints: ["/v1/basic/*", "/v1/text/*"]'));
    const callsAtSignal = l.calls;
    s.server.kill('SIGHUP');
    const after = await until(async () => {
      const r = await s.call('/v1/basic/x', { key });
      return r.headers.get('x-ratelimit-limit') === '50000' ? r : null;
    }, 'the new rate limit');
    assert.equal(after.status, 200);
    assert.equal((await s.call('/v1/text/x', { key })).status, 200, 'the new endpoint list applies');
    // the counters were not reset: what was used before the reload is still used
    assert.ok(Number(after.headers.get('x-quota-remaining')) < remainingBefore,
      `${after.headers.get('x-quota-remaining')} < ${remainingBefore}`);
    await until(() => l.calls >= callsAtSignal + 200, 'calls after the reload');
    await l.stop();
    assert.deepEqual(l.failures, [], 'no call failed during the reload');
    assert.match(logOf(s), /reloaded .*tollgate\.yaml \(configuration 2 since the start\)/);
    const used = await until(async () => { const u = await s.usage(customer.id); return u >= l.calls ? u : 0; },
      'durable usage of every call');
    assert.ok(used >= l.calls, `usage ${used} >= ${l.calls} calls`);
  });
});

test('a broken file is refused with FILE:LINE in the log, and the configuration in effect keeps working', async () => {
  await withStack({ morePlans: LIVE_PLAN }, async (s) => {
    const { key } = await s.customer('live');
    const good = readFileSync(s.config, 'utf8');

    // bad YAML
    writeFileSync(s.config, good + '\nplans: [unclosed\n');
    s.server.kill('SIGHUP');
    await until(() => /reload of .*tollgate\.yaml refused/.test(logOf(s)), 'the refusal in the log');
    assert.match(logOf(s), /tollgate\.yaml:\d+/);
    let r = await s.call('/v1/basic/x', { key });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-ratelimit-limit'), '100000');

    // an unknown key in a plan, named with its line
    const lines = good.split('\n');
    const at = lines.findIndex((x) => x === '  live:') + 2; // line numbers start at 1: the line after "price"
    lines.splice(at, 0, '    rate_limt: 5/sec');
    writeFileSync(s.config, lines.join('\n'));
    const mark = logOf(s).length;
    s.server.kill('SIGHUP');
    await until(() => /refused/.test(logOf(s).slice(mark)), 'the second refusal');
    assert.match(logOf(s).slice(mark), new RegExp(`tollgate\\.yaml:${at + 1}: .*rate_limt`));
    r = await s.call('/v1/basic/x', { key });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-ratelimit-limit'), '100000', 'the old plan is still in effect');
  });
});

test('tollgate reload -c FILE: exit 1 with the errors for a broken file, 0 and the new plans for a good one', async () => {
  await withStack({ morePlans: LIVE_PLAN }, async (s) => {
    const { key } = await s.customer('live');
    const good = readFileSync(s.config, 'utf8');

    writeFileSync(s.config, good.replace('    burst: 100000\n', '    burst: lots\n'));
    let out = await s.cliAsync(['reload', '-c', s.config]);
    assert.equal(out.status, 1, out.stdout + out.stderr);
    assert.match(out.stderr, /tollgate\.yaml:\d+: .*burst/);

    // the server's own answer to a file it refuses: POST /v1/admin/reload lists every error
    const api = await s.adminCall('POST', '/v1/admin/reload');
    assert.equal(api.status, 422);
    assert.equal(api.json.error.type, 'config_invalid');
    assert.ok(api.json.error.errors.some((e) => /tollgate\.yaml:\d+: .*burst/.test(e)), api.text);
    assert.equal((await s.call('/v1/basic/x', { key })).headers.get('x-ratelimit-limit'), '100000');

    writeFileSync(s.config, good.replace('    rate_limit: 100000/sec\n    burst: 100000\n',
      '    rate_limit: 70000/sec\n    burst: 70000\n'));
    out = await s.cliAsync(['reload', '-c', s.config]);
    assert.equal(out.status, 0, out.stdout + out.stderr);
    assert.match(out.stdout, /reloaded .*tollgate\.yaml/);
    // the next call is decided under the new plan: the reload answered after the swap
    assert.equal((await s.call('/v1/basic/x', { key })).headers.get('x-ratelimit-limit'), '70000');
  });
});

test('removing a plan that customers are on is refused, naming the plan and the count', async () => {
  await withStack({ morePlans: LIVE_PLAN }, async (s) => {
    const { key } = await s.customer('spare');
    await s.customer('spare');
    const good = readFileSync(s.config, 'utf8');
    writeFileSync(s.config, good.replace('  spare:\n    price: "2"\n    rate_limit: 10/sec\n    burst: 10\n', ''));
    const out = await s.cliAsync(['reload', '-c', s.config]);
    assert.equal(out.status, 1, out.stdout + out.stderr);
    assert.match(out.stderr, /plan "spare" is removed but 2 customers are on it/);
    const api = await s.adminCall('POST', '/v1/admin/reload');
    assert.equal(api.status, 409);
    assert.equal(api.json.error.type, 'plan_in_use');
    s.server.kill('SIGHUP');
    await until(() => (logOf(s).match(/plan "spare" is removed but 2 customers/g) || []).length >= 3, 'the log line');
    const r = await s.call('/v1/basic/x', { key });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-ratelimit-limit'), '10', 'the customers keep their plan');
    // the plan is still there for new customers too
    assert.equal((await s.adminCall('GET', '/v1/plans/spare')).status, 200);
  });
});

test('Try it\'s CORS follows a reload: portal.openapi published allows the portal\'s origin, withdrawn refuses it', async () => {
  const doc = new URL('../../examples/demo-upstream.openapi.yaml', import.meta.url).pathname;
  await withStack({}, async (s) => {
    const portal = s.admin; // portal.public_url defaults to the admin listener
    const preflight = () => fetch(`${s.gw}/v1/basic/x`, {
      method: 'OPTIONS', headers: { origin: portal, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
    });
    assert.equal((await preflight()).headers.get('access-control-allow-origin'), null, 'no reference, no Try it');
    edit(s, (t) => t.replace(/^portal: \{/m, `portal: {openapi: ${JSON.stringify(doc)}, `));
    const on = await s.adminCall('POST', '/v1/admin/reload');
    assert.equal(on.status, 200, on.text);
    assert.deepEqual(on.json.restart_required, []);
    const pre = await preflight();
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), portal);
    assert.match(pre.headers.get('vary') || '', /origin/i);
    edit(s, (t) => t.replace(`openapi: ${JSON.stringify(doc)}, `, ''));
    assert.equal((await s.adminCall('POST', '/v1/admin/reload')).status, 200);
    const off = await preflight();
    assert.equal(off.headers.get('access-control-allow-origin'), null, 'withdrawn with the reference');
  });
});

test('a changed listen address is named in the log and kept; the rest of the file applies', async () => {
  await withStack({ morePlans: LIVE_PLAN }, async (s) => {
    const { key } = await s.customer('live');
    const other = await freePort();
    edit(s, (t) => t.replace(`listen: "127.0.0.1:${s.gwPort}"`, `listen: "127.0.0.1:${other}"`)
      .replace('    rate_limit: 100000/sec\n    burst: 100000\n', '    rate_limit: 60000/sec\n    burst: 60000\n'));
    s.server.kill('SIGHUP');
    await until(() => /kept until a restart: server\.listen/.test(logOf(s)), 'server.listen named in the log');
    const r = await s.call('/v1/basic/x', { key }); // on the old port
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-ratelimit-limit'), '60000');
    await assert.rejects(fetch(`http://127.0.0.1:${other}/v1/basic/x`), 'nothing listens on the new address');
    const api = await s.adminCall('POST', '/v1/admin/reload');
    assert.equal(api.status, 200);
    assert.deepEqual(api.json.restart_required, ['server.listen']);
  });
});


// A webhook receiver on loopback: keeps every request's body.
async function receiver() {
  const got = [];
  const srv = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => { got.push(JSON.parse(body)); res.writeHead(204); res.end(); });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { got, url: `http://127.0.0.1:${srv.address().port}/hooks`, close: () => new Promise((r) => srv.close(r)) };
}

test('notifications.endpoints apply at the reload endpoint by endpoint (secret, events, added, removed); a changed allow_private_networks is named', async () => {
  const a = await receiver(), b = await receiver();
  const secret1 = 'whsec_' + Buffer.alloc(24, 1).toString('base64');
  const secret2 = 'whsec_' + Buffer.alloc(24, 2).toString('base64');
  const open = 'notifications:\n  allow_http: true\n  allow_private_networks: ["127.0.0.0/8", "::1/128"]\n  retry_base_ms: 50\n  retry_cap_ms: 100\n';
  const s = new Stack({ extra: `${open}  endpoints:\n    - {url: "${a.url}", events: [key.revoked], secret: "${secret1}"}\n` });
  try {
    await s.start();
    const first = (await s.adminCall('GET', '/v1/admin/webhook-endpoints')).json.data;
    assert.equal(first.length, 1);
    assert.deepEqual(first[0].events, ['key.revoked']);

    // the same count of endpoints: a new secret and new events for A (the count-only comparison missed it)
    edit(s, (t) => t.replace(`events: [key.revoked], secret: "${secret1}"`, `events: [key.created], secret: "${secret2}"`));
    let r = await s.adminCall('POST', '/v1/admin/reload');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.restart_required, []);
    const changed = (await s.adminCall('GET', '/v1/admin/webhook-endpoints')).json.data;
    assert.equal(changed.length, 1);
    assert.equal(changed[0].id, first[0].id);
    assert.deepEqual(changed[0].events, ['key.created']);
    assert.ok(changed[0].previous_secret_expires_at, 'the old secret signs for a while');
    await until(() => /notifications\.endpoints applied: 0 added, 1 changed, 0 removed/.test(logOf(s)), 'the change in the log');
    await s.customer('free');
    await until(() => a.got.some((e) => e.type === 'key.created'), 'A gets key.created now');

    // B added, A removed, and the private networks narrowed (one range changed, same count: named, kept)
    edit(s, (t) => t.replace(a.url, b.url).replace('"::1/128"', '"::2/128"'));
    r = await s.adminCall('POST', '/v1/admin/reload');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.restart_required, ['notifications.allow_private_networks']);
    await until(() => /kept until a restart: notifications\.allow_private_networks/.test(logOf(s)), 'named in the log');
    await until(() => /notifications\.endpoints applied: 1 added, 0 changed, 1 removed/.test(logOf(s)), 'the change in the log');
    const now = (await s.adminCall('GET', '/v1/admin/webhook-endpoints')).json.data;
    assert.deepEqual(now.map((e) => e.url), [b.url]);
    const before = a.got.length;
    await s.customer('free');
    await until(() => b.got.some((e) => e.type === 'key.created'), 'B gets key.created');
    assert.equal(a.got.length, before, 'A, removed, gets nothing more');
  } finally {
    await s.stop();
    await a.close();
    await b.close();
  }
});

// The access log's lines of a file, parsed ([] when there is no file yet).
function accessLines(file) {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, 'utf8');
  if (text === '') return [];
  assert.ok(text.endsWith('\n'), `${file} ends with a whole line`);
  return text.slice(0, -1).split('\n').map((l) => JSON.parse(l));
}

test('log settings apply at the reload: log.level debug from then on, access_log.path switched under load with every call in one file or the other', async () => {
  const s = new Stack({ extra: (st) => `access_log: {path: ${JSON.stringify(join(st.dir, 'before.log'))}}` });
  const before = () => join(s.dir, 'before.log'), after = () => join(s.dir, 'after.log');
  await s.start();
  try {
    const { key } = await s.customer('load');
    assert.doesNotMatch(logOf(s), /^tollgate: debug: /m, 'info level: no debug lines');
    // load from 4 loops while the reload switches the file and the level
    const l = load(s, key, 4);
    await until(() => l.calls >= 50, 'calls before the reload');
    edit(s, (t) => t.replace('before.log', 'after.log') + '\nlog: {level: debug}\n');
    const r = await s.adminCall('POST', '/v1/admin/reload');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.restart_required, []);
    assert.deepEqual(r.json.hook_errors, []);
    const atReload = l.calls;
    await until(() => l.calls >= atReload + 50, 'calls after the reload');
    await l.stop();
    assert.deepEqual(l.failures, []);
    // after the reload returned: these land in the new file only
    for (let i = 0; i < 5; i++) assert.equal((await s.call(`/v1/basic/after-${i}`, { key })).status, 200);
    // debug lines only from the level change on (an admin request is one)
    await s.adminCall('GET', '/v1/admin/customers');
    await until(() => /^tollgate: debug: admin: GET \/v1\/admin\/customers -> 200$/m.test(logOf(s)), 'a debug line');
    const out = logOf(s), reloadAt = out.search(/^tollgate: reloaded /m);
    assert.ok(reloadAt > 0);
    assert.equal(out.slice(0, reloadAt).search(/^tollgate: debug: /m), -1, 'no debug line before the reload');

    const total = l.calls + 5;
    const both = await until(() => {
      const b = accessLines(before()), a = accessLines(after());
      return b.length + a.length >= total ? { b, a } : null;
    }, 'every call in the access logs');
    assert.equal(both.b.length + both.a.length, total, 'one line per call: none lost, none twice');
    assert.ok(both.b.length >= 50 && both.a.length >= 55, `${both.b.length} before, ${both.a.length} after`);
    const ids = new Set([...both.b, ...both.a].map((x) => x.request_id));
    assert.equal(ids.size, total);
    for (let i = 0; i < 5; i++) {
      assert.ok(both.a.some((x) => x.path === `/v1/basic/after-${i}`), `after-${i} in the new file`);
      assert.ok(!both.b.some((x) => x.path === `/v1/basic/after-${i}`), `after-${i} not in the old file`);
    }
  } finally { await s.stop(); }
});
