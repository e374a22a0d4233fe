// admin_port.test.mjs - issue 10 item 4: the admin port stays responsive while it is abused.
// Not timed: the assertions are about order (what answers while sign-ups are still being
// hashed), which on the old single-threaded admin port was "nothing".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { Stack, ADMIN_TOKEN } from '../integration/harness.mjs';

const rand = () => Math.random().toString(36).slice(2, 10);

test('API4:2023 unrestricted resource consumption: health, plans and the dashboard answer while sign-ups are being hashed; clients that hang up mid-sign-up do no harm', async () => {
  const s = await new Stack().start();
  try {
    const N = 16;
    let done = 0;
    const signups = Array.from({ length: N }, (_, i) => fetch(`${s.admin}/v1/signup`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: `load-${i}-${rand()}@example.com`, password: `a fine password ${i}`, plan: 'free' }),
    }).then((r) => { done++; return r.status; }));
    // Wait (bounded) until the server has taken at least one sign-up in: the first account exists.
    for (let i = 0; i < 400 && done === 0; i++) {
      const c = await s.adminCall('GET', '/v1/admin/customers');
      if (c.json.data.length > 0) break;
      await new Promise((r) => setImmediate(r));
    }
    const pendingAtStart = N - done;
    const probes = await Promise.all([
      fetch(`${s.admin}/healthz`).then((r) => ({ status: r.status, pending: N - done })),
      fetch(`${s.admin}/v1/plans`).then((r) => ({ status: r.status, pending: N - done })),
      s.adminCall('GET', '/v1/admin/dashboard').then((r) => ({ status: r.status, pending: N - done })),
    ]);
    for (const p of probes) assert.equal(p.status, 200);
    // Hashing runs two at a time off the loop, so most sign-ups are still waiting when every probe
    // has its answer; the old admin thread hashed them first, one by one, then answered.
    assert.ok(pendingAtStart >= N / 2, `sign-ups still pending when probing: ${pendingAtStart}`);
    for (const p of probes) assert.ok(p.pending >= N / 4, `answered while ${p.pending} of ${N} sign-ups were pending`);
    assert.deepEqual(await Promise.all(signups), Array(N).fill(201));

    // Clients that send a sign-up or a sign-in and hang up before the answer.
    for (let i = 0; i < 10; i++) {
      const body = JSON.stringify(i % 2 ? { email: `gone-${i}-${rand()}@example.com`, password: 'a fine password!', plan: 'free' }
        : { email: 'nobody@example.com', password: 'a fine password!' });
      const sock = connect(s.adminPort, '127.0.0.1');
      await new Promise((r) => sock.once('connect', r));
      sock.write(`POST ${i % 2 ? '/v1/signup' : '/v1/login'} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      sock.destroy();
    }
    assert.equal((await fetch(`${s.admin}/healthz`)).status, 200);
    const after = await fetch(`${s.admin}/v1/signup`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: `after-${rand()}@example.com`, password: 'a fine password!', plan: 'free' }) });
    assert.equal(after.status, 201);
    assert.equal((await s.adminCall('GET', '/v1/admin/dashboard', undefined, ADMIN_TOKEN)).status, 200);
  } finally {
    await s.stop(); // a sanitizer report (use after free of a request the client dropped) fails here
  }
});
