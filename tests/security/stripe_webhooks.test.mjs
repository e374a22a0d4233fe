// stripe_webhooks.test.mjs - POST /v1/webhooks/stripe as an attacker sees it: the Stripe-Signature
// header is the only credential, judged on exact bytes (raw sockets: duplicate headers, chunked
// bodies), and the admin port's body cap holds. Signatures come from the official stripe package.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createRequire } from 'node:module';
import { Stack, ADMIN_TOKEN } from '../integration/harness.mjs';

const Stripe = createRequire(new URL('../stripe/package.json', import.meta.url))('stripe');
const stripeLib = new Stripe('sk_test_for_signing_only');
const SECRET = 'whsec_security_test_secret_0123456789';

let s;
before(async () => {
  s = await new Stack({ extra: `stripe: {secret_key: "sk_test_security_0123456789", webhook_secret: "${SECRET}"}` }).start();
});
after(async () => { await s.stop(); });

let n = 0;
const event = () => JSON.stringify({ id: `evt_sec_${Date.now()}_${n++}`, object: 'event', type: 'invoice.finalized', created: Math.floor(Date.now() / 1000),
  data: { object: { id: 'in_sec', object: 'invoice', status: 'open', metadata: {} } } }, null, 2);
const sign = (payload, secret = SECRET) => stripeLib.webhooks.generateTestHeaderString({ payload, secret, timestamp: Math.floor(Date.now() / 1000) });

// Writes `head` + body bytes on a fresh connection and returns {status, body} (Connection: close).
function exchange(head, body = Buffer.alloc(0)) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(new URL(s.admin).port), '127.0.0.1');
    const chunks = [];
    sock.on('data', (d) => chunks.push(d));
    let reset = false;
    // A server that answers before the body is read and then closes may reset the connection
    // while the client still writes (h2o's 413 does not linger): the answer, if it arrived, stands.
    sock.on('error', (e) => { if (e.code === 'ECONNRESET' || e.code === 'EPIPE') reset = true; else reject(e); });
    sock.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      const i = text.indexOf('\r\n\r\n');
      let json = null;
      try { json = JSON.parse(text.slice(i + 4)); } catch { /* not JSON */ }
      resolve({ status: m ? Number(m[1]) : 0, json, text, reset });
    });
    sock.write(Buffer.concat([Buffer.from(head.replace(/\n/g, '\r\n'), 'latin1'), body]));
  });
}

async function recorded(id) {
  return (await s.adminCall('GET', `/v1/admin/stripe/events/${id}`)).status === 200;
}

test('API2:2023 broken authentication: a Stripe webhook is authenticated by its signature alone, on the bytes received', async () => {
  // The admin token is no credential here.
  let p = event();
  let r = await exchange(`POST /v1/webhooks/stripe HTTP/1.1\nHost: x\nAuthorization: Bearer ${ADMIN_TOKEN}\nContent-Type: application/json\nContent-Length: ${Buffer.byteLength(p)}\nConnection: close\n\n`, Buffer.from(p));
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.type, 'missing_signature');
  assert.equal(await recorded(JSON.parse(p).id), false);

  // Two Stripe-Signature headers: judged on the first; a valid second one does not rescue a bad first.
  p = event();
  r = await exchange(`POST /v1/webhooks/stripe HTTP/1.1\nHost: x\nStripe-Signature: t=1,v1=${'0'.repeat(64)}\nStripe-Signature: ${sign(p)}\nContent-Type: application/json\nContent-Length: ${Buffer.byteLength(p)}\nConnection: close\n\n`, Buffer.from(p));
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.type, 'invalid_signature');
  assert.equal(await recorded(JSON.parse(p).id), false);

  // A chunked body is verified on its bytes once de-chunked: what Stripe signed.
  p = event();
  const b = Buffer.from(p);
  const chunked = Buffer.concat([Buffer.from(`${(10).toString(16)}\r\n`), b.subarray(0, 10), Buffer.from(`\r\n${(b.length - 10).toString(16)}\r\n`), b.subarray(10), Buffer.from('\r\n0\r\n\r\n')]);
  r = await exchange(`POST /v1/webhooks/stripe HTTP/1.1\nHost: x\nStripe-Signature: ${sign(p)}\nContent-Type: application/json\nTransfer-Encoding: chunked\nConnection: close\n\n`, chunked);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.id, JSON.parse(p).id);

  // One byte appended after signing: refused.
  p = event();
  r = await exchange(`POST /v1/webhooks/stripe HTTP/1.1\nHost: x\nStripe-Signature: ${sign(p)}\nContent-Type: application/json\nContent-Length: ${Buffer.byteLength(p) + 1}\nConnection: close\n\n`, Buffer.from(p + '\n'));
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.type, 'invalid_signature');
  assert.equal(await recorded(JSON.parse(p).id), false);
});

test('API4:2023 unrestricted resource consumption: a webhook body over the admin port\'s 1 MiB cap is refused and nothing is stored', async () => {
  const base = JSON.parse(event());
  base.data.object.description = 'x'.repeat(1024 * 1024);
  const p = JSON.stringify(base);
  const head = `POST /v1/webhooks/stripe HTTP/1.1\nHost: x\nStripe-Signature: ${sign(p)}\nContent-Type: application/json\nContent-Length: ${Buffer.byteLength(p)}\nConnection: close\n\n`;
  // The head alone is enough to refuse: the answer comes before any of the body is sent.
  let r = await exchange(head);
  assert.equal(r.status, 413, r.text.slice(0, 300));
  // Head and body written at once: refused; the client reads the 413 unless the close reset the
  // connection under its write first. Either way nothing is stored.
  r = await exchange(head, Buffer.from(p));
  assert.ok(r.status === 413 || (r.status === 0 && r.reset), `status ${r.status}: ${r.text.slice(0, 300)}`);
  assert.equal(await recorded(base.id), false);
});
