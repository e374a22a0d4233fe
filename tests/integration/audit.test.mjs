// audit.test.mjs - the audit log (issue 14): every change through the admin API, the owner's
// dashboard, the portal and the CLI is one entry with its actor, action, target, before and
// after; secrets never appear; GET /v1/admin/audit filters and pages; nothing edits it, neither
// a route nor a direct UPDATE/DELETE on the database. Runs on PostgreSQL too
// (TG_TEST_BACKEND=postgres).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { ADMIN_TOKEN, BACKEND, Stack } from './harness.mjs';

const OPEN = `
notifications:
  allow_http: true
  allow_private_networks: ["127.0.0.0/8", "::1/128"]
`;

let s;
before(async () => { s = await new Stack({ extra: OPEN }).start(); });
after(async () => { await s.stop(); });

// The whole log (or a filtered one), following every page.
async function audit(query = '', limit = 1000) {
  const all = [];
  let cursor = '';
  for (let i = 0; i < 100; i++) {
    const sep = query ? '&' : '';
    const r = await s.adminCall('GET', `/v1/admin/audit?${query}${sep}limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
    assert.equal(r.status, 200, r.text);
    all.push(...r.json.data);
    if (!r.json.has_more) return all;
    cursor = r.json.next_cursor;
  }
  throw new Error('the audit log did not end');
}

const only = (entries, action, targetId) => {
  const found = entries.filter((e) => e.action === action && (targetId === undefined || e.target.id === targetId));
  assert.equal(found.length, 1, `exactly one ${action} of ${targetId}: ${JSON.stringify(entries.map((e) => e.action))}`);
  return found[0];
};

// A cookie-keeping client for the portal and the dashboard.
function browser() {
  let cookie = '', csrf = '';
  const call = async (method, path, body) => {
    const headers = { 'content-type': 'application/json' };
    if (cookie) headers.cookie = cookie;
    if (csrf) headers['x-csrf-token'] = csrf;
    const r = await fetch(s.admin + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const set = r.headers.get('set-cookie');
    if (set) cookie = set.split(';')[0];
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    if (json && json.csrf_token) csrf = json.csrf_token;
    return { status: r.status, json, text };
  };
  return { call };
}

const email = () => `audit-${Math.random().toString(36).slice(2)}@example.com`;

test('admin API changes: one entry each, actor the admin token by fingerprint, before and after, no secret', async () => {
  const c = await s.adminCall('POST', '/v1/admin/customers', { email: email(), name: 'Audited', plan: 'free' },
    undefined);
  assert.equal(c.status, 201);
  const id = c.json.id;
  const k = await s.adminCall('POST', `/v1/admin/customers/${id}/keys`, { name: 'ci' });
  assert.equal(k.status, 201);
  assert.match(k.json.secret, /^tg_/);
  assert.equal((await s.adminCall('PATCH', `/v1/admin/customers/${id}`, { plan: 'pro' })).status, 200);
  assert.equal((await s.adminCall('POST', `/v1/admin/customers/${id}/items`, { description: 'goodwill', amount: '-5.00' })).status, 201);
  const rot = await s.adminCall('POST', `/v1/admin/keys/${k.json.id}/rotate`, {});
  assert.equal(rot.status, 201, rot.text);
  assert.equal((await s.adminCall('DELETE', `/v1/admin/keys/${rot.json.id}`)).status, 200);
  const ep = await s.adminCall('POST', '/v1/admin/webhook-endpoints', { url: 'http://127.0.0.1:9/hook', events: '*' });
  assert.equal(ep.status, 201, ep.text);
  assert.match(ep.json.secret, /^whsec_/);
  assert.equal((await s.adminCall('POST', `/v1/admin/webhook-endpoints/${ep.json.id}/rotate-secret`)).status, 200);
  assert.equal((await s.adminCall('DELETE', `/v1/admin/webhook-endpoints/${ep.json.id}`)).status, 200);
  // a refused change leaves no entry
  assert.equal((await s.adminCall('PATCH', `/v1/admin/customers/${id}`, { plan: 'gold' })).status, 400);

  const log = await audit(`target_id=${id}`);
  const create = only(log, 'customer.create', id);
  assert.equal(create.actor.kind, 'admin_token');
  assert.match(create.actor.id, /^fp_[0-9a-f]{16}$/);
  assert.equal(create.source, '127.0.0.1');
  assert.equal(create.before, null);
  assert.equal(create.after.plan, 'free');
  const change = only(log, 'customer.plan_change', id);
  assert.equal(change.before.plan, 'free');
  assert.equal(change.after.plan, 'pro');
  assert.equal(change.target.type, 'customer');
  assert.equal(only(log, 'customer.credit', id).after.amount, '-5.00');
  assert.equal(log.length, 3, JSON.stringify(log.map((e) => e.action)));

  const keyLog = await audit('target_type=key');
  const kc = only(keyLog, 'key.create', k.json.id);
  assert.equal(kc.before, null);
  assert.equal(kc.after.customer, id);
  const kr = only(keyLog, 'key.rotate', k.json.id);
  assert.equal(kr.before.id, k.json.id);
  assert.equal(kr.after.id, rot.json.id);
  const kv = only(keyLog, 'key.revoke', rot.json.id);
  assert.equal(kv.before.revoked_at, null);
  assert.notEqual(kv.after.revoked_at, null);

  const epLog = await audit(`target_id=${ep.json.id}`);
  assert.deepEqual(epLog.map((e) => e.action), ['webhook_endpoint.delete', 'webhook_endpoint.rotate_secret', 'webhook_endpoint.create']);
  assert.equal(epLog[0].after, null); // deleted: nothing after
  assert.equal(epLog[2].after.url, 'http://127.0.0.1:9/hook');

  // no secret anywhere in the log, nor the admin token
  const text = JSON.stringify(await audit());
  for (const secret of [k.json.secret, rot.json.secret, ep.json.secret, ADMIN_TOKEN]) assert.equal(text.includes(secret), false, secret);
});

test('portal changes: the customer is the actor; sign-up, keys, plan, password; no password or key in the log', async () => {
  const b = browser();
  const mail = email();
  const password = 'audit horse battery staple';
  const su = await b.call('POST', '/v1/signup', { email: mail, password, plan: 'free' });
  assert.equal(su.status, 201, su.text);
  const cid = su.json.customer.id;
  const nk = await b.call('POST', '/v1/me/keys', { name: 'portal key' });
  assert.equal(nk.status, 201, nk.text);
  assert.equal((await b.call('DELETE', `/v1/me/keys/${nk.json.id}`)).status, 200);
  assert.equal((await b.call('POST', '/v1/me/plan', { plan: 'pro' })).status, 200);
  const newPassword = 'another audit horse battery';
  const pw = await b.call('POST', '/v1/me/password', { current_password: password, new_password: newPassword });
  assert.equal(pw.status, 200, pw.text);

  const log = await audit(`actor=${cid}`);
  for (const e of log) {
    assert.equal(e.actor.kind, 'customer');
    assert.equal(e.actor.id, cid);
  }
  const signup = only(log, 'customer.signup', cid);
  assert.equal(signup.after.email, mail);
  assert.equal(signup.after.first_key, su.json.key.id);
  only(log, 'key.create', nk.json.id);
  only(log, 'key.revoke', nk.json.id);
  const plan = only(log, 'customer.plan_change', cid);
  assert.equal(plan.before.plan, 'free');
  assert.equal(plan.after.plan, 'pro');
  assert.equal(only(log, 'customer.password_change', cid).after.password_changed, true);
  assert.equal(log.length, 5, JSON.stringify(log.map((e) => e.action)));
  const text = JSON.stringify(log);
  for (const secret of [password, newPassword, su.json.key.secret, nk.json.secret]) assert.equal(text.includes(secret), false);
});

test('the dashboard session and the CLI are actors of their own', async () => {
  const d = browser();
  // a browser's Origin is its own page
  const si = await fetch(`${s.admin}/v1/admin/session`, {
    method: 'POST', headers: { 'content-type': 'application/json', origin: s.admin }, body: JSON.stringify({ token: ADMIN_TOKEN }),
  });
  assert.equal(si.status, 200);
  const cookie = si.headers.get('set-cookie').split(';')[0];
  const { csrf_token: csrf } = await si.json();
  const c = await s.adminCall('POST', '/v1/admin/customers', { email: email(), plan: 'free' });
  const patched = await fetch(`${s.admin}/v1/admin/customers/${c.json.id}`, {
    method: 'PATCH', headers: { 'content-type': 'application/json', cookie, 'x-csrf-token': csrf, origin: s.admin },
    body: JSON.stringify({ name: 'Renamed' }),
  });
  assert.equal(patched.status, 200);
  void d;
  const upd = only(await audit(`target_id=${c.json.id}&action=customer.update`), 'customer.update', c.json.id);
  assert.equal(upd.actor.kind, 'owner_session');
  assert.match(upd.actor.id, /^fp_/);
  assert.equal(upd.before.name, '');
  assert.equal(upd.after.name, 'Renamed');
  const signIn = only(await audit('action=owner.sign_in'), 'owner.sign_in');
  assert.equal(signIn.actor.kind, 'admin_token');
  assert.equal(signIn.target.id, upd.actor.id); // the session that made the change, opened by the token

  const cli = s.cli(['customers', 'add', '--email', email(), '--plan', 'free', '--server', s.admin, '--json']);
  assert.equal(cli.status, 0, cli.stderr);
  const made = JSON.parse(cli.stdout);
  const entry = only(await audit(`target_id=${made.id}`), 'customer.create', made.id);
  assert.equal(entry.actor.kind, 'cli');
  assert.match(entry.actor.id, /^fp_/);

  const listed = s.cli(['audit', '--server', s.admin, '--target-id', made.id]);
  assert.equal(listed.status, 0, listed.stderr);
  assert.match(listed.stdout, /customer\.create/);
  assert.match(listed.stdout, new RegExp(`customer/${made.id}`));
  assert.match(listed.stdout, /cli:fp_/);
});

test('X-Request-Id is kept with the entry', async () => {
  const r = await fetch(`${s.admin}/v1/admin/customers`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', 'x-request-id': 'req-audit-42' },
    body: JSON.stringify({ email: email(), plan: 'free' }),
  });
  const id = (await r.json()).id;
  assert.equal(only(await audit(`target_id=${id}`), 'customer.create').request_id, 'req-audit-42');
});

test('filters: action prefix, target, time range; bad values are 400', async () => {
  const t0 = Date.now();
  const c = await s.customer('free');
  const all = await audit();
  const keys = await audit('action=key.');
  assert.ok(keys.length > 0 && keys.every((e) => e.action.startsWith('key.')));
  assert.ok(keys.length < all.length);
  const recent = await audit(`from=${t0 - 1}`);
  assert.ok(recent.some((e) => e.target.id === c.customer.id));
  assert.ok(recent.every((e) => e.at_ms >= t0 - 1));
  const iso = new Date(t0 - 1).toISOString();
  assert.equal((await audit(`from=${iso}`)).length, recent.length);
  assert.equal((await audit(`to=${t0 - 1}`)).filter((e) => e.target.id === c.customer.id).length, 0);
  for (const bad of ['from=yesterday', 'to=2026-13-99', 'limit=0', 'cursor=nope', `actor=${'x'.repeat(400)}`]) {
    const r = await s.adminCall('GET', `/v1/admin/audit?${bad}`);
    assert.equal(r.status, 400, bad);
    assert.equal(r.json.error.type, 'invalid_parameter');
  }
});

test('paging: every entry once, newest first, across pages of 2', async () => {
  for (let i = 0; i < 3; i++) await s.customer('free');
  const whole = await audit();
  const paged = await audit('', 2);
  assert.deepEqual(paged.map((e) => e.id), whole.map((e) => e.id));
  for (let i = 1; i < paged.length; i++) assert.ok(paged[i - 1].id > paged[i].id);
});

test('never editable: no route writes to it, and the database refuses UPDATE and DELETE', async () => {
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
    const r = await s.adminCall(method, '/v1/admin/audit', {});
    assert.equal(r.status, 405, method);
  }
  const one = (await audit())[0];
  for (const method of ['GET', 'PUT', 'PATCH', 'DELETE']) {
    const r = await s.adminCall(method, `/v1/admin/audit/${one.id}`, method === 'GET' ? undefined : {});
    assert.equal(r.status, 404, method);
  }
  const before = await audit();
  const sqls = ["UPDATE audit_log SET action = 'forged'", 'DELETE FROM audit_log'];
  for (const sql of sqls) {
    let failed = false, message = '';
    try {
      if (BACKEND === 'postgres') execFileSync('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-d', s.storageUrl(), '-c', sql], { stdio: 'pipe' });
      else execFileSync('sqlite3', [s.storageUrl().slice('sqlite:'.length), sql], { stdio: 'pipe' });
    } catch (e) { failed = true; message = String(e.stderr); }
    assert.ok(failed, `${sql} went through`);
    assert.match(message, /audit_log is append-only/);
  }
  assert.deepEqual(await audit(), before);
});

test('reloads: POST /v1/admin/reload is the admin token\'s, SIGHUP the system\'s', async () => {
  const r = await s.adminCall('POST', '/v1/admin/reload');
  assert.equal(r.status, 200, r.text);
  const byApi = (await audit('action=config.reload')).filter((e) => e.actor.kind === 'admin_token');
  assert.equal(byApi.length, 1);
  assert.equal(byApi[0].after.generation, r.json.generation);
  s.server.kill('SIGHUP');
  let bySignal = [];
  for (let i = 0; i < 400 && bySignal.length === 0; i++) { // bounded poll: the reload runs on the admin thread
    bySignal = (await audit('action=config.reload')).filter((e) => e.actor.kind === 'system');
    if (bySignal.length === 0) await new Promise((res) => setTimeout(res, 25));
  }
  assert.equal(bySignal.length, 1);
  assert.equal(bySignal[0].actor.id, 'SIGHUP');
  assert.equal(bySignal[0].after.generation, r.json.generation + 1);
});

test('tollgate restore is in the restored database\'s log, after the backup\'s entries', { skip: BACKEND !== 'sqlite' && 'SQLite only (restore puts a SQLite database back)' }, async () => {
  const r = await new Stack().start();
  try {
    const kept = await r.adminCall('POST', '/v1/admin/customers', { email: email(), plan: 'free' });
    const backup = `${r.dir}/backup-1`;
    const b = r.cli(['backup', '-c', r.config, backup]);
    assert.equal(b.status, 0, b.stderr);
    const lost = await r.adminCall('POST', '/v1/admin/customers', { email: email(), plan: 'free' });
    await r.stopServer();
    const res = r.cli(['restore', '-c', r.config, backup]);
    assert.equal(res.status, 0, res.stderr);
    await r.start();
    const log = (await r.adminCall('GET', '/v1/admin/audit')).json.data;
    assert.equal(log[0].action, 'database.restore');
    assert.equal(log[0].actor.kind, 'cli');
    assert.equal(log[0].after.backup, backup);
    assert.ok(log.some((e) => e.target.id === kept.json.id));
    assert.equal(log.some((e) => e.target.id === lost.json.id), false); // rolled back with the database
  } finally { await r.stop(); }
});
