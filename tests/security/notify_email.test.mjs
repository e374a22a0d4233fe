// notify_email.test.mjs - issue 13 part B: the account mails' tokens and "forgot password",
// against the real binary and a real SMTP server on loopback (tests/notify/sink.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack } from '../integration/harness.mjs';
import { startSink } from '../notify/sink.mjs';

let s, sink;
before(async () => {
  sink = await startSink();
  s = await new Stack({
    testClock: true,
    extra: `email: {smtp_url: "smtp://127.0.0.1:${sink.port}", from: "API billing <billing@example.com>"}`,
  }).start();
});
after(async () => { await s.stop(); await sink.close(); });

const email = () => `sec-${Math.random().toString(36).slice(2)}@example.com`;
async function post(path, body) {
  const r = await fetch(s.admin + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, text: await r.text(), retryAfter: r.headers.get('retry-after') };
}
const tokenIn = (m, page) => new RegExp(`/portal/${page}#token=([A-Za-z0-9_-]{43})`).exec(m.parsed.text)[1];
async function signup(to) {
  const r = await post('/v1/signup', { email: to, password: 'correct horse battery', plan: 'free' });
  assert.equal(r.status, 201);
}

test('API2:2023 broken authentication: forgot-password answers alike for known and unknown addresses (no account enumeration)', async () => {
  const known = email(), unknown = email();
  await signup(known);
  const a = await post('/v1/forgot-password', { email: known });
  const b = await post('/v1/forgot-password', { email: unknown });
  assert.equal(a.status, 202);
  assert.equal(b.status, 202);
  assert.equal(a.text, b.text);
  await sink.waitFor((x) => x.to.includes(known) && /Reset your password/.test(x.raw.toString()), 'the reset mail');
  // the unknown address got nothing: mail is queued in the request's own transaction, so no row
  // for it now means none ever
  const rows = await s.adminCall('GET', '/v1/admin/emails?limit=100');
  assert.ok(!rows.json.data.some((m) => m.to === unknown));
  assert.ok(!sink.messages.some((m) => m.to.includes(unknown)));
});

test('API2:2023 broken authentication: a token is single-use and bound to its purpose', async () => {
  const to = email();
  await signup(to);
  const m = await sink.waitFor((x) => x.to.includes(to), 'the confirmation');
  const token = tokenIn(m, 'confirm-email.html');
  // a confirmation token is not a reset token
  const wrong = await post('/v1/reset-password', { token, password: 'an attacker password 1' });
  assert.equal(wrong.status, 400);
  assert.match(wrong.text, /invalid_token/);
  assert.equal((await post('/v1/confirm-email', { token })).status, 200);
  const again = await post('/v1/confirm-email', { token });
  assert.equal(again.status, 400);
  assert.match(again.text, /invalid_token/);
  // garbage and oversized tokens are the same 400
  assert.equal((await post('/v1/confirm-email', { token: 'x'.repeat(10000) })).status, 400);
  assert.equal((await post('/v1/confirm-email', { token: 12 })).status, 400);
  // only its hash is stored: the token text is nowhere in the database's mail rows either (the
  // body of a sent link mail is erased)
  const rows = await s.adminCall('GET', '/v1/admin/emails?limit=100');
  assert.ok(!JSON.stringify(rows.json).includes(token));
});

test('API2:2023 broken authentication: expired tokens are refused (reset after 1 h, confirmation after 24 h)', async () => {
  const to = email();
  await signup(to);
  const conf = await sink.waitFor((x) => x.to.includes(to), 'the confirmation');
  assert.equal((await post('/v1/forgot-password', { email: to })).status, 202);
  const reset = await sink.waitFor((x) => x.to.includes(to) && /Reset your password/.test(x.raw.toString()), 'the reset mail');
  assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 3601 })).status, 200);
  const late = await post('/v1/reset-password', { token: tokenIn(reset, 'reset-password.html'), password: 'a brand new password 2' });
  assert.equal(late.status, 400);
  assert.match(late.text, /invalid_token/);
  assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 86400 })).status, 200);
  const lateConfirm = await post('/v1/confirm-email', { token: tokenIn(conf, 'confirm-email.html') });
  assert.equal(lateConfirm.status, 400);
  // the old password still works: nothing was changed by the refused reset
  assert.equal((await post('/v1/login', { email: to, password: 'correct horse battery' })).status, 200);
});

test('API2:2023 broken authentication: a newer reset link ends the older one', async () => {
  const to = email();
  await signup(to);
  assert.equal((await post('/v1/forgot-password', { email: to })).status, 202);
  const first = await sink.waitFor((x) => x.to.includes(to) && /Reset your password/.test(x.raw.toString()), 'the first reset mail');
  const n = sink.messages.length;
  assert.equal((await post('/v1/forgot-password', { email: to })).status, 202);
  // by its subject: the sign-up's confirmation may be retried (a slow SMTP answer) and arrive later
  const second = await sink.waitFor((x) => sink.messages.indexOf(x) >= n && x.to.includes(to) &&
    /Reset your password/.test(x.raw.toString()), 'the second reset mail');
  assert.equal((await post('/v1/reset-password', { token: tokenIn(first, 'reset-password.html'), password: 'a brand new password 2' })).status, 400);
  assert.equal((await post('/v1/reset-password', { token: tokenIn(second, 'reset-password.html'), password: 'a brand new password 2' })).status, 200);
});

test('API4:2023 unrestricted resource consumption: forgot-password is rate limited per address asked about and per client (no mail bombing)', async () => {
  const own = await new Stack({
    extra: `email: {smtp_url: "smtp://127.0.0.1:${sink.port}", from: "API billing <billing@example.com>"}`,
  }).start();
  try {
    const ask = async (e) => {
      const r = await fetch(`${own.admin}/v1/forgot-password`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: e }) });
      return { status: r.status, retryAfter: r.headers.get('retry-after') };
    };
    const victim = email();
    const statuses = [];
    for (let i = 0; i < 7; i++) statuses.push((await ask(i % 2 ? victim.toUpperCase() : victim)).status);
    assert.deepEqual(statuses, [202, 202, 202, 202, 202, 429, 429]); // 5 an hour per address asked about, any case
    const limited = await ask(victim);
    assert.ok(Number(limited.retryAfter) >= 1);
    assert.equal((await ask(email())).status, 202); // another address is not held back by the victim's limit
    // and one client cannot spray many addresses: at most 10 an hour from one client address
    let refusedAt = 0;
    for (let i = 0; i < 12 && !refusedAt; i++) if ((await ask(email())).status === 429) refusedAt = i + 1;
    assert.ok(refusedAt > 0 && refusedAt <= 10, `refused at ${refusedAt}`);
  } finally { await own.stop(); }
});

test('API4:2023 unrestricted resource consumption: new confirmation links are rate limited per account and per client (no mail bombing from a session)', async () => {
  const own = await new Stack({
    extra: `email: {smtp_url: "smtp://127.0.0.1:${sink.port}", from: "API billing <billing@example.com>"}`,
  }).start();
  try {
    // a signed-in browser: the session cookie and the CSRF token of the sign-up
    const account = async () => {
      const r = await fetch(`${own.admin}/v1/signup`, { method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: email(), password: 'correct horse battery', plan: 'free' }) });
      assert.equal(r.status, 201);
      const cookie = r.headers.get('set-cookie').split(';')[0], csrf = (await r.json()).csrf_token;
      return async () => {
        const a = await fetch(`${own.admin}/v1/me/confirmation`, { method: 'POST', headers: { cookie, 'x-csrf-token': csrf } });
        return { status: a.status, text: await a.text(), retryAfter: a.headers.get('retry-after') };
      };
    };
    const ask1 = await account();
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(await ask1());
    assert.deepEqual(answers.map((a) => a.status), [202, 202, 202, 202, 202, 429]); // 5 an hour per account
    assert.ok(Number(answers[5].retryAfter) >= 1);
    assert.match(answers[5].text, /rate_limited/);
    assert.equal(new Set(answers.slice(0, 5).map((a) => a.text)).size, 1); // always the same answer
    // the 5 links above were queued (each ending the one before): 6 confirmation mails with the sign-up's
    const rows = (await own.adminCall('GET', '/v1/admin/emails?limit=100')).json.data.filter((m) => m.template === 'confirm_email');
    assert.equal(rows.length, 6);
    // many accounts from one client address: at most 10 an hour from it in all
    const ask2 = await account(), ask3 = await account();
    const more = [];
    for (let i = 0; i < 5; i++) more.push((await ask2()).status);
    assert.deepEqual(more, [202, 202, 202, 202, 202]);
    const third = await ask3();
    assert.equal(third.status, 429, 'the 11th link asked for from one client address');
  } finally { await own.stop(); }
});
