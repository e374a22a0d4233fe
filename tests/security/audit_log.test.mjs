// audit_log.test.mjs - issue 14's audit log seen by an attacker: a customer (signed in to the
// portal, or holding an API key) cannot read it; nothing but the owner's token or session reads
// it; a forged client header cannot make a customer's change look like the owner's, nor
// smuggle text into the request id; no secret a change handled ends up in it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, ADMIN_TOKEN } from '../integration/harness.mjs';

let s;
before(async () => { s = await new Stack().start(); });
after(async () => { await s.stop(); });

const email = () => `sec-audit-${Math.random().toString(36).slice(2)}@example.com`;

async function signUp() {
  const r = await fetch(`${s.admin}/v1/signup`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: email(), password: 'a long enough password', plan: 'free' }),
  });
  assert.equal(r.status, 201);
  const json = await r.json();
  return { cookie: r.headers.get('set-cookie').split(';')[0], csrf: json.csrf_token, json };
}

test('API1:2023 broken object level authorization / API5:2023 broken function level authorization: a customer cannot read /v1/admin/audit', async () => {
  const cust = await signUp();
  const attempts = [
    { headers: {} },
    { headers: { cookie: cust.cookie } },
    { headers: { cookie: cust.cookie, 'x-csrf-token': cust.csrf } },
    { headers: { authorization: `Bearer ${cust.json.key.secret}` } },
    { headers: { authorization: `Bearer ${ADMIN_TOKEN}x` } },
    { headers: { authorization: 'Bearer ' } },
    // the owner's cookie name with the customer's session token in it
    { headers: { cookie: `tg_admin=${cust.cookie.split('=')[1]}` } },
  ];
  for (const a of attempts) {
    for (const path of ['/v1/admin/audit', `/v1/admin/audit?actor=${cust.json.customer.id}`, '/v1/admin/audit/1']) {
      const r = await fetch(s.admin + path, { headers: a.headers });
      const text = await r.text();
      assert.ok(r.status === 401 || r.status === 404, `${path} with ${JSON.stringify(a.headers)}: ${r.status}`);
      assert.equal(text.includes('"action"'), false);
    }
  }
  // and there is no portal twin of it
  for (const path of ['/v1/me/audit', '/v1/me/../admin/audit']) {
    const r = await fetch(s.admin + path, { headers: { cookie: cust.cookie } });
    assert.notEqual(r.status, 200, path);
  }
  // the owner reads it, and the customer's sign-up is there under the customer's name
  const owner = await s.adminCall('GET', `/v1/admin/audit?actor=${cust.json.customer.id}`);
  assert.equal(owner.status, 200);
  assert.deepEqual(owner.json.data.map((e) => [e.action, e.actor.kind]), [['customer.signup', 'customer']]);
});

test('API8:2023 security misconfiguration: a customer cannot pass for the CLI or the owner, nor forge a request id', async () => {
  const cust = await signUp();
  const r = await fetch(`${s.admin}/v1/me/keys`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json', cookie: cust.cookie, 'x-csrf-token': cust.csrf,
      'x-tollgate-client': 'cli', 'x-request-id': 'abc "},{"action":"forged',
    },
    body: JSON.stringify({ name: 'second' }),
  });
  assert.equal(r.status, 201);
  const key = await r.json();
  const log = (await s.adminCall('GET', `/v1/admin/audit?target_id=${key.id}`)).json.data;
  assert.equal(log.length, 1);
  assert.equal(log[0].actor.kind, 'customer');
  assert.equal(log[0].actor.id, cust.json.customer.id);
  assert.equal(log[0].request_id, ''); // not well formed: not kept
  assert.equal(JSON.stringify(log).includes(key.secret), false);
  assert.equal((await s.adminCall('GET', '/v1/admin/audit?action=forged')).json.data.length, 0);
});
