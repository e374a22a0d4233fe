// resource_limits.test.mjs - issue 10 item 6: a customer's working API keys are capped, and every
// list of the admin and portal APIs is paged with a limit and an opaque cursor.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack } from '../integration/harness.mjs';

let s;
before(async () => { s = await new Stack({ maxKeys: 3, grace: 3600 }).start(); });
after(async () => { await s.stop(); });

// A cookie-keeping client of the portal API (on the admin port), as the browser pages are.
function portal() {
  let cookie = '', csrf = '';
  const call = async (method, path, body) => {
    const headers = { 'content-type': 'application/json', origin: s.admin };
    if (cookie) headers.cookie = cookie;
    if (csrf) headers['x-csrf-token'] = csrf;
    const r = await fetch(s.admin + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const set = r.headers.get('set-cookie');
    if (set) cookie = set.split(';')[0];
    const json = await r.json().catch(() => null);
    if (json && json.csrf_token) csrf = json.csrf_token;
    return { status: r.status, json };
  };
  return { call };
}

const b64url = (t) => Buffer.from(t).toString('base64url');

test('API4:2023 unrestricted resource consumption: a customer holds at most keys.max_active_per_customer working keys (admin API, CLI, portal); 409 key_limit_reached', async () => {
  const { customer } = await s.customer('free'); // one key
  const keys = `/v1/admin/customers/${customer.id}/keys`;
  for (let i = 0; i < 2; i++) assert.equal((await s.adminCall('POST', keys, { name: `k${i}` })).status, 201);
  const over = await s.adminCall('POST', keys, { name: 'one too many' });
  assert.equal(over.status, 409, over.text);
  assert.equal(over.json.error.type, 'key_limit_reached');
  assert.match(over.json.error.message, /3 working keys, the most allowed \(3\)/);
  const cli = s.cli(['keys', 'create', customer.id, '--server', s.admin]);
  assert.notEqual(cli.status, 0);
  assert.match(cli.stderr, /409 key_limit_reached/);

  // rotation at the cap replaces one key: allowed once (cap + 1 during the grace period), not twice
  const list = (await s.adminCall('GET', keys)).json.data;
  assert.equal(list.length, 3);
  const rot = await s.adminCall('POST', `/v1/admin/keys/${list[0].id}/rotate`, {});
  assert.equal(rot.status, 201, rot.text);
  const rot2 = await s.adminCall('POST', `/v1/admin/keys/${rot.json.id}/rotate`, {});
  assert.equal(rot2.status, 409, rot2.text);
  assert.equal(rot2.json.error.type, 'key_limit_reached');
  // a refused rotation changed nothing: the key it named still works without an expiry
  const still = await s.adminCall('GET', keys);
  assert.equal(still.json.data.find((k) => k.id === rot.json.id).expires_at, null);

  // revoking makes room again (the rotated key in its grace period still counts)
  for (const k of still.json.data.slice(0, 2)) await s.adminCall('DELETE', `/v1/admin/keys/${k.id}`);
  assert.equal((await s.adminCall('POST', keys, { name: 'after revoke' })).status, 201);

  // the portal: a signed-up customer (one key) can create two more, then 409
  const c = portal();
  const mail = `cap-${Math.random().toString(36).slice(2)}@example.com`;
  const su = await c.call('POST', '/v1/signup', { email: mail, company: 'Acme', password: 'a long passphrase nobody uses 7', plan: 'free' });
  assert.equal(su.status, 201, JSON.stringify(su.json));
  for (let i = 0; i < 2; i++) assert.equal((await c.call('POST', '/v1/me/keys', { name: `p${i}` })).status, 201);
  const pover = await c.call('POST', '/v1/me/keys', { name: 'too many' });
  assert.equal(pover.status, 409);
  assert.equal(pover.json.error.type, 'key_limit_reached');
  assert.equal((await c.call('GET', '/v1/me/keys')).json.data.length, 3);
});

test('API4:2023 unrestricted resource consumption: every list is paged (limit, opaque cursor, has_more), visits each item once, and refuses bad parameters with 400 naming them', async () => {
  const made = [];
  for (let i = 0; i < 7; i++) made.push((await s.customer('free')).customer.id);
  // page through all customers 3 at a time
  const seen = [];
  let cursor = null, pages = 0;
  for (;;) {
    const r = await s.adminCall('GET', `/v1/admin/customers?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
    assert.equal(r.status, 200, r.text);
    assert.ok(r.json.data.length <= 3);
    seen.push(...r.json.data.map((c) => c.id));
    pages++;
    if (!r.json.has_more) { assert.equal(r.json.next_cursor, null); break; }
    assert.match(r.json.next_cursor, /^[A-Za-z0-9_-]+$/);
    cursor = r.json.next_cursor;
  }
  assert.equal(new Set(seen).size, seen.length, 'an item repeated');
  for (const id of made) assert.ok(seen.includes(id), `${id} missing`);
  assert.ok(pages >= 3);
  const all = await s.adminCall('GET', '/v1/admin/customers');
  assert.deepEqual(all.json.data.map((c) => c.id), seen); // default 100: one page, same order
  assert.equal(all.json.has_more, false);

  for (const [q, name] of [['limit=0', 'limit'], ['limit=1001', 'limit'], ['limit=abc', 'limit'], ['limit=', 'limit'],
    ['limit=99999999999999999999', 'limit'], ['cursor=!!!', 'cursor'], [`cursor=${b64url('keys|1/key_x')}`, 'cursor'],
    [`cursor=${b64url("customers|1/x' OR 1=1 --")}`, 'cursor'], [`cursor=${b64url('customers|')}`, 'cursor'],
    [`cursor=${b64url('customers|99999999999999999999/cus_a')}`, 'cursor']]) {
    const r = await s.adminCall('GET', `/v1/admin/customers?${q}`);
    assert.equal(r.status, 400, `${q}: ${r.text}`);
    assert.equal(r.json.error.type, 'invalid_parameter');
    assert.match(r.json.error.message, new RegExp(`^${name}:`), q);
  }
  // a cursor with one character changed is refused or names another place: never a 500
  const first = await s.adminCall('GET', '/v1/admin/customers?limit=2');
  const c0 = first.json.next_cursor;
  for (let i = 0; i < c0.length; i++) {
    const t = c0.slice(0, i) + (c0[i] === 'A' ? 'B' : 'A') + c0.slice(i + 1);
    const r = await s.adminCall('GET', `/v1/admin/customers?limit=2&cursor=${t}`);
    assert.ok(r.status === 200 || r.status === 400, `${t}: ${r.status} ${r.text}`);
  }

  // keys, invoices, the lists of rejected usage and billing failures: the same shape
  const { customer } = await s.customer('free');
  await s.adminCall('POST', `/v1/admin/customers/${customer.id}/keys`, { name: 'second' });
  const k1 = await s.adminCall('GET', `/v1/admin/customers/${customer.id}/keys?limit=1`);
  assert.equal(k1.json.data.length, 1);
  assert.equal(k1.json.has_more, true);
  const k2 = await s.adminCall('GET', `/v1/admin/customers/${customer.id}/keys?limit=1&cursor=${k1.json.next_cursor}`);
  assert.equal(k2.json.data.length, 1);
  assert.notEqual(k2.json.data[0].id, k1.json.data[0].id);
  assert.equal(k2.json.has_more, false);
  assert.equal((await s.adminCall('GET', `/v1/admin/customers/${customer.id}/keys?limit=1&cursor=${first.json.next_cursor}`)).status, 400);
  for (const path of ['/v1/admin/invoices', `/v1/admin/invoices?customer=${customer.id}`, '/v1/admin/metering/rejected', '/v1/admin/billing/failures']) {
    const r = await s.adminCall('GET', `${path}${path.includes('?') ? '&' : '?'}limit=5`);
    assert.equal(r.status, 200, `${path}: ${r.text}`);
    assert.ok(Array.isArray(r.json.data));
    assert.equal(typeof r.json.has_more, 'boolean');
    assert.equal((await s.adminCall('GET', `${path}${path.includes('?') ? '&' : '?'}limit=0`)).status, 400);
  }
});

test('the CLI follows the cursors: `tollgate customers list` shows every customer past its page of 1,000', async () => {
  const before = (await s.adminCall('GET', '/v1/admin/customers?limit=1000')).json;
  let n = before.data.length;
  const ids = [];
  while (n < 1005) {
    const batch = [];
    for (let i = 0; i < 16 && n + i < 1005; i++) {
      batch.push(s.adminCall('POST', '/v1/admin/customers', { email: `bulk-${n + i}-${Math.random().toString(36).slice(2)}@example.com`, plan: 'free' }));
    }
    for (const r of await Promise.all(batch)) { assert.equal(r.status, 201, r.text); ids.push(r.json.id); }
    n += batch.length;
  }
  const page = await s.adminCall('GET', '/v1/admin/customers?limit=1000');
  assert.equal(page.json.data.length, 1000);
  assert.equal(page.json.has_more, true);
  const cli = s.cli(['customers', 'list', '--server', s.admin]);
  assert.equal(cli.status, 0, cli.stderr);
  const listed = new Set(cli.stdout.match(/cus_\w+/g));
  assert.ok(listed.size >= 1005, `${listed.size} customers listed`);
  for (const id of ids) assert.ok(listed.has(id), `${id} missing`);
  const json = s.cli(['customers', 'list', '--json', '--server', s.admin]);
  assert.equal(json.status, 0, json.stderr);
  assert.equal(JSON.parse(json.stdout).data.length, listed.size);
});

test('API4:2023 unrestricted resource consumption: the usage answer lists the 100 largest endpoints, however many paths a client invents', async () => {
  const { key, customer } = await s.customer('load');
  const calls = [];
  for (let i = 0; i < 130; i++) calls.push(s.call(`/v1/basic/p${i}`, { key }));
  for (const r of await Promise.all(calls)) assert.equal(r.status, 200);
  for (let i = 0; i < 3; i++) assert.equal((await s.call('/v1/basic/p7', { key })).status, 200);
  const u = await s.adminCall('GET', `/v1/admin/customers/${customer.id}/usage`);
  assert.equal(u.status, 200, u.text);
  assert.equal(u.json.endpoints.length, 100);
  assert.deepEqual(u.json.endpoints[0], { endpoint: 'GET /v1/basic/p7', metric: 'api_calls', units: 4 }); // the largest first
  assert.equal(u.json.metrics.find((m) => m.metric === 'api_calls').used, 133); // the totals count every call
});
