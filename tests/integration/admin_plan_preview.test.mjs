// admin_plan_preview.test.mjs - issue 15: the owner's preview of a customer's plan change,
// GET /v1/admin/customers/{id}/plan/preview?plan=ID[&when=now|period_end]. It is the portal's
// GET /v1/me/plan/preview seen from the dashboard: for the same customer and plan the two answer
// the same, since one adapter and one service (tg_sub_change_compute) serve both doors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack } from './harness.mjs';

let s;
before(async () => { s = await new Stack({ testClock: true }).start(); });
after(async () => { await s?.stop(); });

// A customer signed up through the portal, and signIn() for a portal session (a fresh one: the
// test clock moves past a session's lifetime).
async function signUp(plan) {
  const email = `preview-${Math.random().toString(36).slice(2)}@example.com`, password = 'a preview password';
  const post = (path, body) => fetch(`${s.admin}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body) });
  const r = await post('/v1/signup', { email, password, plan });
  assert.equal(r.status, 201, await r.clone().text());
  const j = await r.json();
  const signIn = async () => {
    const l = await post('/v1/login', { email, password });
    assert.equal(l.status, 200, await l.clone().text());
    const cookie = l.headers.get('set-cookie').split(';')[0];
    return async (path) => {
      const a = await fetch(`${s.admin}${path}`, { headers: { cookie } });
      return { status: a.status, json: await a.json() };
    };
  };
  return { id: j.customer.id, key: j.key.secret, signIn };
}

test('the owner\'s plan preview answers as the customer\'s own, for every plan and when', async () => {
  const c = await signUp('tiny');
  // ten days into the period, so a change now prorates the fee (with amounts to compare)
  assert.equal((await s.call('/v1/basic/x', { key: c.key })).status, 200);
  assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 10 * 86400 })).status, 200);
  const me = await c.signIn();
  let prorated = 0;
  for (const [plan, when] of [['pro', ''], ['pro', 'now'], ['pro', 'period_end'], ['free', ''], ['free', 'now'], ['tiny', '']]) {
    const q = `plan=${plan}${when ? `&when=${when}` : ''}`;
    // A change "now" takes effect, and is prorated, at the request's second: the two previews
    // are two requests, which a second's boundary may fall between (a flake seen in CI), so the
    // pair is asked again until both fall in one second (three tries: one boundary at most
    // falls inside two quick pairs).
    let owner, self;
    for (let tries = 0; tries < 3; tries++) {
      owner = await s.adminCall('GET', `/v1/admin/customers/${c.id}/plan/preview?${q}`);
      self = await me(`/v1/me/plan/preview?${q}`);
      if (owner.json?.effective_at === self.json?.effective_at) break;
    }
    assert.equal(owner.status, 200, `${q}: ${owner.text}`);
    assert.equal(self.status, 200, q);
    assert.deepEqual(owner.json, self.json, q);
    assert.equal(owner.json.from, 'tiny');
    assert.equal(owner.json.to, plan);
    if (owner.json.proration.length) prorated++;
  }
  assert.ok(prorated > 0, 'some change was prorated (the comparison covered the amounts)');
  // an upgrade is at once by default, a downgrade at the period's end; a preview changes nothing
  assert.equal((await s.adminCall('GET', `/v1/admin/customers/${c.id}/plan/preview?plan=pro`)).json.effective, 'now');
  assert.equal((await s.adminCall('GET', `/v1/admin/customers/${c.id}/plan/preview?plan=free`)).json.effective, 'period_end');
  const after = await s.adminCall('GET', `/v1/admin/customers/${c.id}`);
  assert.equal(after.json.plan, 'tiny');
  assert.equal(after.json.pending_plan, null);
});

test('the owner\'s plan preview: 404 unknown customer, 400 unknown plan or when, 401 without the admin token, 405 not GET', async () => {
  const c = await signUp('free');
  const unknown = await s.adminCall('GET', '/v1/admin/customers/cus_doesnotexist/plan/preview?plan=pro');
  assert.equal(unknown.status, 404, unknown.text);
  const badPlan = await s.adminCall('GET', `/v1/admin/customers/${c.id}/plan/preview?plan=gold`);
  assert.equal(badPlan.status, 400, badPlan.text);
  assert.match(badPlan.json.error.message, /^plan: "gold"/);
  const noPlan = await s.adminCall('GET', `/v1/admin/customers/${c.id}/plan/preview`);
  assert.equal(noPlan.status, 400, noPlan.text);
  const badWhen = await s.adminCall('GET', `/v1/admin/customers/${c.id}/plan/preview?plan=pro&when=tomorrow`);
  assert.equal(badWhen.status, 400, badWhen.text);
  assert.match(badWhen.json.error.message, /^when:/);
  const anon = await fetch(`${s.admin}/v1/admin/customers/${c.id}/plan/preview?plan=pro`);
  assert.equal(anon.status, 401);
  const wrong = await s.adminCall('GET', `/v1/admin/customers/${c.id}/plan/preview?plan=pro`, undefined, 'not-the-admin-token-0123456789');
  assert.equal(wrong.status, 401);
  assert.equal((await s.adminCall('POST', `/v1/admin/customers/${c.id}/plan/preview?plan=pro`, {})).status, 405);
});
