// ingest_tokens.test.mjs - ingest tokens made in the admin API (issue 16): POST
// /v1/admin/ingest-tokens shows the token once, POST /v1/events takes it at once (scoped ones
// for their customer only), the list never shows a token, DELETE revokes it and the gateway
// refuses it at once, bad input names its field, the changes are in the audit log, and a
// restart keeps exactly the tokens in force. Runs on SQLite, and on PostgreSQL with
// TG_TEST_BACKEND=postgres.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Stack } from './harness.mjs';

const events = `
events:
  tokens:
    - {name: configured, token: "configured-token-0123456789abcdef"}
`;

const now = () => new Date().toISOString();
const ev = (customer, id) => ({ id, customer, metric: 'api_calls', value: 1, timestamp: now() });

async function post(s, token, evs) {
  const r = await fetch(`${s.gw}/v1/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ events: evs }),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null, text };
}

// The gateway's answer changes within a bound: poll it (no sleeps as synchronisation); the brief
// promises 1 s, the poll gives it 2 s of slack on a loaded machine before failing.
async function statusBecomes(fn, want, ms = 3000) {
  const until = Date.now() + ms;
  let got;
  do {
    got = await fn();
    if (got === want) return got;
    await new Promise((r) => setTimeout(r, 20));
  } while (Date.now() < until);
  return got;
}

test('made, used at once, scoped, listed without the token, revoked at once, audited, kept across a restart', async () => {
  const s = new Stack({ extra: events });
  await s.start();
  try {
    const a = await s.customer('metered');
    const b = await s.customer('metered');

    const any = await s.adminCall('POST', '/v1/admin/ingest-tokens', { name: 'nightly jobs' });
    assert.equal(any.status, 201, any.text);
    assert.match(any.json.token, /^tg_ingest_[A-Za-z0-9_-]{32}$/);
    assert.equal(any.json.name, 'nightly jobs');
    assert.equal(any.json.customer, null);
    assert.equal(any.json.status, 'active');
    assert.ok(any.json.token.startsWith(any.json.prefix));
    const scoped = await s.adminCall('POST', '/v1/admin/ingest-tokens', { name: 'a queue', customer: a.customer.id });
    assert.equal(scoped.status, 201, scoped.text);
    assert.equal(scoped.json.customer, a.customer.id);

    // the first request after the answer is accepted: the table changed before the 201
    const first = await post(s, any.json.token, [ev(a.customer.id, 'x1'), ev(b.customer.id, 'x2')]);
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.accepted, 2);
    const sc = await post(s, scoped.json.token, [ev(a.customer.id, 'y1'), ev(b.customer.id, 'y2')]);
    assert.deepEqual(sc.json.results.map((x) => x.status), ['accepted', 'refused']);
    assert.equal(sc.json.results[1].field, 'customer');
    assert.match(sc.json.results[1].message, /a queue/);
    // the configured token still works beside them
    assert.equal((await post(s, 'configured-token-0123456789abcdef', [ev(b.customer.id, 'z1')])).status, 200);

    // listed newest first, a page at a time, never with the token
    const page1 = await s.adminCall('GET', '/v1/admin/ingest-tokens?limit=1');
    assert.equal(page1.status, 200, page1.text);
    assert.equal(page1.json.data.length, 1);
    assert.equal(page1.json.has_more, true);
    const page2 = await s.adminCall('GET', `/v1/admin/ingest-tokens?limit=1&cursor=${encodeURIComponent(page1.json.next_cursor)}`);
    assert.equal(page2.json.data.length, 1);
    assert.equal(page2.json.has_more, false);
    const listed = [...page1.json.data, ...page2.json.data];
    assert.deepEqual(new Set(listed.map((t) => t.id)), new Set([any.json.id, scoped.json.id]));
    for (const t of listed) assert.equal(t.token, undefined);
    const whole = JSON.stringify(listed);
    assert.ok(!whole.includes(any.json.token) && !whole.includes(scoped.json.token));

    // revoked: refused within the bound, and the answer says when
    const del = await s.adminCall('DELETE', `/v1/admin/ingest-tokens/${any.json.id}`);
    assert.equal(del.status, 200, del.text);
    assert.equal(del.json.status, 'revoked');
    assert.ok(del.json.revoked_at);
    assert.equal(await statusBecomes(async () => (await post(s, any.json.token, [ev(a.customer.id, 'r1')])).status, 401), 401);
    const refused = await post(s, any.json.token, [ev(a.customer.id, 'r2')]);
    assert.equal(refused.json.error.type, 'invalid_ingest_token');
    assert.equal((await s.adminCall('DELETE', '/v1/admin/ingest-tokens/itk_000000000000000000000000')).status, 404);

    // audited, with no token in the entries
    const log = (await s.adminCall('GET', '/v1/admin/audit?action=ingest_token.')).json.data;
    assert.deepEqual(log.map((e) => e.action).sort(), ['ingest_token.create', 'ingest_token.create', 'ingest_token.revoke']);
    assert.ok(!JSON.stringify(log).includes(any.json.token));
    assert.ok(!JSON.stringify(log).includes(scoped.json.token));

    // a restart loads the tokens in force, not the revoked one
    await s.stopServer();
    await s.startOnce();
    assert.equal((await post(s, scoped.json.token, [ev(a.customer.id, 'after')])).json.accepted, 1);
    assert.equal((await post(s, any.json.token, [ev(a.customer.id, 'after2')])).status, 401);
  } finally {
    await s.stop();
  }
});

test('bad input is a 400 that names the field; nothing is made', async () => {
  const s = new Stack({ extra: events });
  await s.start();
  try {
    const cases = [
      [{}, 'name'],
      [{ name: '' }, 'name'],
      [{ name: 42 }, 'name'],
      [{ name: 'x'.repeat(256) }, 'name'],
      [{ name: 'ok', customer: 7 }, 'customer'],
      [{ name: 'ok', customer: 'cus_nobody' }, 'customer'],
    ];
    for (const [body, field] of cases) {
      const r = await s.adminCall('POST', '/v1/admin/ingest-tokens', body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
      assert.ok(r.json.error.message.startsWith(`${field}:`), `${JSON.stringify(body)}: ${r.json.error.message}`);
    }
    assert.deepEqual((await s.adminCall('GET', '/v1/admin/ingest-tokens')).json.data, []);
    assert.equal((await s.adminCall('PATCH', '/v1/admin/ingest-tokens')).status, 405);
    assert.equal((await s.adminCall('GET', '/v1/admin/ingest-tokens?cursor=nonsense')).status, 400);
  } finally {
    await s.stop();
  }
});
