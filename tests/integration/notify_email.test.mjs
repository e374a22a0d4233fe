// notify_email.test.mjs - email through a real SMTP server on loopback (nodemailer's
// smtp-server, tests/notify/sink.mjs), messages read with mailparser: the sign-up's
// confirmation mail (recipient, subject, link, multipart/alternative), the link working once,
// plans.*.require_email_confirmation holding the key back until then, forgot/reset password
// ending every session, a refusing mail server delaying (never failing) the request that queued
// the mail, 5xx failing it for good, and a customer's name unable to add header fields.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack } from './harness.mjs';
import { startSink } from '../notify/sink.mjs';

let s, sink;
const PLAN = '  confirmed:\n    price: "0"\n    rate_limit: 1000/sec\n    burst: 1000\n    require_email_confirmation: true\n';

before(async () => {
  sink = await startSink();
  s = await new Stack({
    extra: `email: {smtp_url: "smtp://127.0.0.1:${sink.port}", from: "API billing <billing@example.com>"}`,
    morePlans: PLAN,
  }).start();
});
after(async () => { await s.stop(); await sink.close(); });

function client() {
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
    return { status: r.status, json };
  };
  return { call, cookie: () => cookie };
}

const email = () => `dev-${Math.random().toString(36).slice(2)}@example.com`;
const tokenOf = (text, page) => {
  const m = new RegExp(`(http://127\\.0\\.0\\.1:\\d+)/portal/${page}#token=([A-Za-z0-9_-]{43})`).exec(text);
  assert.ok(m, `a ${page} link in:\n${text}`);
  return { base: m[1], token: m[2] };
};

async function emailRow(to) {
  const r = await s.adminCall('GET', '/v1/admin/emails?limit=100');
  assert.equal(r.status, 200);
  return r.json.data.find((m) => m.to === to);
}

async function pollRow(to, pred, what) {
  for (let i = 0; i < 800; i++) {
    const row = await emailRow(to);
    if (row && pred(row)) return row;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`email to ${to} never became ${what}: ${JSON.stringify(await emailRow(to))}`);
}

test('sign-up mails a confirmation link (multipart/alternative, text and HTML); the link confirms once', async () => {
  const to = email();
  const r = await client().call('POST', '/v1/signup', { email: to, company: 'Zoë & Co', password: 'correct horse battery', plan: 'free' });
  assert.equal(r.status, 201);
  assert.equal(r.json.email_confirmation, 'sent');
  const m = await sink.waitFor((x) => x.to.includes(to) && /Subject: Confirm your email/.test(x.raw.toString()), `the confirmation to ${to}`);
  assert.equal(m.from, 'billing@example.com'); // the envelope
  assert.deepEqual(m.to, [to]);
  const p = m.parsed;
  assert.equal(p.subject, 'Confirm your email address');
  assert.equal(p.from.value[0].address, 'billing@example.com');
  assert.equal(p.from.value[0].name, 'API billing');
  assert.deepEqual(p.to.value.map((v) => v.address), [to]);
  assert.match(p.messageId, /^<[0-9a-f]{32}\.tollgate@example\.com>$/);
  assert.ok(p.date instanceof Date && !Number.isNaN(p.date.getTime()));
  assert.equal(p.headers.get('mime-version'), '1.0');
  assert.equal(p.headers.get('content-type').value, 'multipart/alternative');
  const raw = m.raw.toString('latin1');
  assert.match(raw, /Content-Type: text\/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable/);
  assert.match(raw, /Content-Type: text\/html; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable/);
  assert.doesNotMatch(raw.replace(/\r\n/g, ''), /\n/); // CRLF line ends only
  assert.match(p.text, /Hello Zoë & Co,/); // the text part: not escaped
  assert.match(p.html, /<p>Hello Zoë &amp; Co,<\/p>/); // the HTML part: escaped
  const { base, token } = tokenOf(p.text, 'confirm-email.html');
  assert.equal(base, s.admin); // no portal.public_url: the portal listener's address
  assert.ok(p.html.includes(`href="${base}/portal/confirm-email.html#token=${token}"`));

  const c = client();
  const ok = await c.call('POST', '/v1/confirm-email', { token });
  assert.equal(ok.status, 200);
  assert.equal(ok.json.email_confirmed, true);
  const again = await c.call('POST', '/v1/confirm-email', { token });
  assert.equal(again.status, 400);
  assert.equal(again.json.error.type, 'invalid_token');

  const row = await pollRow(to, (x) => x.state === 'sent', 'sent');
  assert.equal(row.template, 'confirm_email');
  assert.equal(row.attempts, 1);
  assert.deepEqual(row.attempt_log.map((a) => [a.outcome, a.smtp_code]), [['sent', 250]]);
});

test('require_email_confirmation: the key answers 403 email_unconfirmed until the address is confirmed', async () => {
  const to = email();
  const r = await client().call('POST', '/v1/signup', { email: to, password: 'correct horse battery', plan: 'confirmed' });
  assert.equal(r.status, 201);
  assert.equal(r.json.email_confirmation, 'required');
  const key = r.json.key.secret;
  const before = await s.call('/v1/basic/hello', { key });
  assert.equal(before.status, 403);
  assert.equal(before.json.error.type, 'email_unconfirmed');
  const m = await sink.waitFor((x) => x.to.includes(to) && /Subject: Confirm your email/.test(x.raw.toString()), `the confirmation to ${to}`);
  const { token } = tokenOf(m.parsed.text, 'confirm-email.html');
  assert.equal((await client().call('POST', '/v1/confirm-email', { token })).status, 200);
  const afterConfirm = await s.call('/v1/basic/hello', { key });
  assert.equal(afterConfirm.status, 200, afterConfirm.text);
  const cus = await s.adminCall('GET', `/v1/admin/customers/${r.json.customer.id}`);
  assert.match(cus.json.email_confirmed_at, /^\d{4}-/);
  // a customer the owner creates on that plan: the owner vouches for the address
  const owned = await s.customer('confirmed');
  assert.equal((await s.call('/v1/basic/hello', { key: owned.key })).status, 200);
  // a plan without the flag: the key works before any confirmation
  const r2 = await client().call('POST', '/v1/signup', { email: email(), password: 'correct horse battery', plan: 'free' });
  assert.equal((await s.call('/v1/basic/hello', { key: r2.json.key.secret })).status, 200);
});

test('forgot → reset: the link works once, a refused password keeps it usable, every session ends, the old password fails', async () => {
  const to = email();
  const c1 = client(), c2 = client();
  assert.equal((await c1.call('POST', '/v1/signup', { email: to, password: 'the old password 1', plan: 'free' })).status, 201);
  assert.equal((await c2.call('POST', '/v1/login', { email: to, password: 'the old password 1' })).status, 200);
  const f = await client().call('POST', '/v1/forgot-password', { email: to.toUpperCase() });
  assert.equal(f.status, 202);
  const m = await sink.waitFor((x) => x.to.includes(to) && /Reset/.test(x.raw.toString()), `the reset mail to ${to}`);
  assert.equal(m.parsed.subject, 'Reset your password');
  const { token } = tokenOf(m.parsed.text, 'reset-password.html');

  const weak = await client().call('POST', '/v1/reset-password', { token, password: 'short' });
  assert.equal(weak.status, 400);
  assert.equal(weak.json.error.type, 'weak_password');
  const ok = await client().call('POST', '/v1/reset-password', { token, password: 'a brand new password 2' });
  assert.equal(ok.status, 200);
  assert.equal(ok.json.password_reset, true);
  assert.equal(ok.json.sessions_ended, 2);
  assert.equal((await c1.call('GET', '/v1/me')).status, 401);
  assert.equal((await c2.call('GET', '/v1/me')).status, 401);
  assert.equal((await client().call('POST', '/v1/login', { email: to, password: 'the old password 1' })).status, 401);
  assert.equal((await client().call('POST', '/v1/login', { email: to, password: 'a brand new password 2' })).status, 200);
  const reuse = await client().call('POST', '/v1/reset-password', { token, password: 'yet another password 3' });
  assert.equal(reuse.status, 400);
  assert.equal(reuse.json.error.type, 'invalid_token');
  // the reset link's mail held a secret: once sent, its body is erased and it cannot be resent
  const row = await pollRow(to, (x) => x.template === 'reset_password' && x.state === 'sent', 'sent');
  const resend = await s.adminCall('POST', `/v1/admin/emails/${row.id}/resend`);
  assert.equal(resend.status, 409);
});

test('a mail server answering 451 delays the mail; the sign-up that queued it answered 201; it is delivered on a retry', async () => {
  const to = email();
  sink.refuse(2, 451);
  const r = await client().call('POST', '/v1/signup', { email: to, password: 'correct horse battery', plan: 'free' });
  assert.equal(r.status, 201); // the request never waits for the mail server
  const m = await sink.waitFor((x) => x.to.includes(to) && /Subject: Confirm your email/.test(x.raw.toString()), `the delayed confirmation to ${to}`);
  assert.equal(m.parsed.subject, 'Confirm your email address');
  const row = await pollRow(to, (x) => x.state === 'sent', 'sent');
  assert.equal(row.attempts, 3);
  assert.deepEqual(row.attempt_log.map((a) => a.outcome), ['retry', 'retry', 'sent']);
  assert.equal(row.attempt_log[0].smtp_code, 451);
  assert.match(row.attempt_log[0].error, /451/);
  // a message from the refused attempts was never delivered twice
  assert.equal(sink.messages.filter((x) => x.to.includes(to)).length, 1);
});

test('a 550 fails the mail for good (no retries), logged with the reply', async () => {
  const to = email();
  sink.refuse(1, 550);
  assert.equal((await client().call('POST', '/v1/signup', { email: to, password: 'correct horse battery', plan: 'free' })).status, 201);
  const row = await pollRow(to, (x) => x.state === 'failed', 'failed');
  assert.equal(row.attempts, 1);
  assert.deepEqual(row.attempt_log.map((a) => [a.outcome, a.smtp_code]), [['failed', 550]]);
  const failed = await s.adminCall('GET', '/v1/admin/emails?state=failed');
  assert.ok(failed.json.data.some((x) => x.to === to));
  assert.equal((await s.adminCall('GET', '/v1/admin/emails?state=bogus')).status, 400);
});

test('a header-injection attempt in the customer name adds no header and no recipient', async () => {
  const to = email();
  const evil = 'Evil\r\nBcc: victim@example.net\r\nX-Injected: yes\r\n\r\nbody';
  const r = await client().call('POST', '/v1/signup', { email: to, company: evil, password: 'correct horse battery', plan: 'free' });
  assert.equal(r.status, 201);
  const m = await sink.waitFor((x) => x.to.includes(to) && /Subject: Confirm your email/.test(x.raw.toString()), `the confirmation to ${to}`);
  assert.deepEqual(m.to, [to]); // the envelope: one recipient
  assert.equal(m.parsed.headers.get('x-injected'), undefined);
  assert.equal(m.parsed.bcc, undefined);
  assert.deepEqual(m.parsed.to.value.map((v) => v.address), [to]);
  assert.equal(m.parsed.subject, 'Confirm your email address');
  const head = m.raw.toString('latin1').split('\r\n\r\n')[0];
  assert.doesNotMatch(head, /victim|X-Injected/i);
  assert.equal(sink.messages.filter((x) => x.to.includes('victim@example.net')).length, 0);
  // an address that would break out of the SMTP envelope or a header is refused at sign-up (400),
  // never a 500 from the mail queue
  for (const bad of ['a;b@example.com', 'a:b@example.com', 'a\\b@example.com', 'x@example.com\r\nBcc: v@example.net']) {
    const rb = await client().call('POST', '/v1/signup', { email: bad, password: 'correct horse battery', plan: 'free' });
    assert.equal(rb.status, 400, bad);
  }
});

test('without an email section the account routes do not exist and sign-up says so', async () => {
  const plain = await new Stack().start();
  try {
    const r = await fetch(`${plain.admin}/v1/forgot-password`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email":"a@example.com"}' });
    assert.equal(r.status, 404);
    const su = await fetch(`${plain.admin}/v1/signup`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: email(), password: 'correct horse battery', plan: 'free' }) });
    assert.equal(su.status, 201);
    assert.equal((await su.json()).email_confirmation, 'off');
  } finally { await plain.stop(); }
});

test('events reach the customer by email as they choose: key.created mailed by default; after choosing only key.revoked, a new key queues no mail and a revocation does', async () => {
  const to = email();
  const c = client();
  assert.equal((await c.call('POST', '/v1/signup', { email: to, password: 'correct horse battery', plan: 'free' })).status, 201);
  const sent = async (template) => (await s.adminCall('GET', '/v1/admin/emails?limit=100')).json.data.filter((m) => m.to === to && m.template === template);
  // the sign-up's own first key is on the customer's screen: no mail for it; a key made later is
  // mailed by default
  const k0 = await c.call('POST', '/v1/me/keys', { name: 'more' });
  assert.equal(k0.status, 201);
  const first = await sink.waitFor((x) => x.to.includes(to) && /A new API key was created/.test(x.raw.toString()), `key.created to ${to}`);
  assert.match(first.parsed.text, new RegExp(`a new API key \\(${k0.json.prefix}\\.\\.\\.\\) was created on your account`));
  assert.deepEqual((await c.call('GET', '/v1/me/notification-settings')).json, { email_events: '*', email_enabled: true,
    email_choices: ['usage.threshold_reached', 'quota.exhausted', 'budget.exceeded', 'trial.will_end', 'invoice.finalized',
      'invoice.paid', 'invoice.payment_failed', 'account.past_due', 'account.suspended', 'account.resumed', 'key.created',
      'key.rotated', 'key.revoked', 'plan.changed'] });
  // an owner-only or unknown type cannot be chosen
  assert.equal((await c.call('PUT', '/v1/me/notification-settings', { email_events: ['customer.created'] })).status, 400);
  assert.equal((await c.call('PUT', '/v1/me/notification-settings', { email_events: ['key.nope'] })).status, 400);
  const put = await c.call('PUT', '/v1/me/notification-settings', { email_events: ['key.revoked'] });
  assert.equal(put.status, 200);
  assert.deepEqual(put.json.email_events, ['key.revoked']);
  const k = await c.call('POST', '/v1/me/keys', { name: 'second' });
  assert.equal(k.status, 201);
  // queued in the transaction of the change: the list is already final for key.created
  assert.equal((await sent('key.created')).length, 1);
  assert.equal((await c.call('DELETE', `/v1/me/keys/${k.json.id}`)).status, 200);
  assert.equal((await sent('key.revoked')).length, 1);
  await sink.waitFor((x) => x.to.includes(to) && /revoked/i.test(x.raw.toString()), `key.revoked to ${to}`);
});

test('POST /v1/me/confirmation mails a new confirmation link: the older link stops working, the new one confirms; once confirmed, the same answer and no mail', async () => {
  const to = email();
  const c = client();
  assert.equal((await c.call('POST', '/v1/signup', { email: to, password: 'correct horse battery', plan: 'confirmed' })).status, 201);
  const isConfirmation = (x) => x.to.includes(to) && /Subject: Confirm your email/.test(x.raw.toString());
  const first = await sink.waitFor(isConfirmation, `the sign-up's confirmation to ${to}`);
  const old = tokenOf(first.parsed.text, 'confirm-email.html').token;
  assert.equal((await c.call('GET', '/v1/me')).json.email_confirmed_at, null);

  const n = sink.messages.length;
  const again = await c.call('POST', '/v1/me/confirmation');
  assert.equal(again.status, 202);
  assert.match(again.json.message, /new link is on its way/);
  const second = await sink.waitFor((x) => sink.messages.indexOf(x) >= n && isConfirmation(x), `the new confirmation to ${to}`);
  assert.equal(second.parsed.subject, 'Confirm your email address');
  assert.deepEqual(second.parsed.to.value.map((v) => v.address), [to]);
  const fresh = tokenOf(second.parsed.text, 'confirm-email.html').token;
  assert.notEqual(fresh, old);
  // only the newest link works: the older one was ended when the new one was issued
  const stale = await client().call('POST', '/v1/confirm-email', { token: old });
  assert.equal(stale.status, 400);
  assert.equal(stale.json.error.type, 'invalid_token');
  const ok = await client().call('POST', '/v1/confirm-email', { token: fresh });
  assert.equal(ok.status, 200);
  assert.equal(ok.json.email, to);
  assert.match((await c.call('GET', '/v1/me')).json.email_confirmed_at, /^\d{4}-/);

  // confirmed: the same answer, and nothing queued (the mail rows are written in the request's
  // own transaction, so none now means none ever)
  const done = await c.call('POST', '/v1/me/confirmation');
  assert.equal(done.status, 202);
  assert.deepEqual(done.json, again.json);
  const rows = (await s.adminCall('GET', '/v1/admin/emails?limit=100')).json.data.filter((m) => m.to === to && m.template === 'confirm_email');
  assert.equal(rows.length, 2);

  // a session and its CSRF token are needed; GET is not a way to send one
  assert.equal((await client().call('POST', '/v1/me/confirmation')).status, 401);
  const r = await fetch(`${s.admin}/v1/me/confirmation`, { method: 'POST', headers: { cookie: c.cookie() } });
  assert.equal(r.status, 403);
  assert.equal((await c.call('GET', '/v1/me/confirmation')).status, 405);
});
