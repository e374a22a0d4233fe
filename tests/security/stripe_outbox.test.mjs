// stripe_outbox.test.mjs - the Stripe secret key as an attacker with read access to the owner's
// views would look for it: the outbox keeps Stripe's refusal of a key (401 api_key_invalid), and
// neither that error, nor the outbox list, nor the customer object, nor /metrics, nor tollgate's
// own log ever holds the key. Against the fake Stripe (tests/stripe/fake_stripe.mjs), which, like
// Stripe, refuses a live key in test mode.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, sleep } from '../integration/harness.mjs';
import { startFakeStripe } from '../stripe/fake_stripe.mjs';

const KEY = 'sk_live_secret_never_shown_0123456789abcdefghijklmnop';
let fake, s;
before(async () => {
  fake = await startFakeStripe();
  s = await new Stack({ extra: `stripe: {secret_key: "${KEY}", webhook_secret: "whsec_outbox_security_0123", api_base: "${fake.url}"}` }).start();
});
after(async () => { await s.stop(); await fake.close(); });

test('API8:2023 security misconfiguration: a refused Stripe key is reported without the key, in every view and the log', async () => {
  const c = await s.adminCall('POST', '/v1/admin/customers', { email: 'key-test@example.com', name: 'Key', plan: 'free' });
  assert.equal(c.status, 201, c.text);
  let st;
  for (let i = 0; i < 300; i++) {
    st = (await s.adminCall('GET', `/v1/admin/customers/${c.json.id}`)).json.stripe;
    if (st.state === 'failed') break;
    await sleep(50);
  }
  assert.equal(st.state, 'failed', 'a 401 is permanent: not retried');
  assert.equal(st.attempts, 1);
  assert.match(st.last_error, /Stripe 401 invalid_request_error\/api_key_invalid/);
  const views = [
    JSON.stringify(st),
    (await s.adminCall('GET', '/v1/admin/stripe/outbox')).text,
    (await s.adminCall('GET', '/v1/admin/customers')).text,
    (await s.adminCall('GET', '/metrics')).text,
  ];
  await s.stopServer().catch(() => {});
  views.push(s.procs.map((p) => p.output).join('\n'));
  for (const v of views) {
    assert.ok(!v.includes(KEY), 'the key is not shown');
    assert.ok(!v.includes(KEY.slice(8, 40)), 'nor a long part of it');
  }
});
