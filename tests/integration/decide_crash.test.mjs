// decide_crash.test.mjs - the decision API's open reservations survive kill -9 (issue 16): calls
// admitted by POST /v1/check and not yet reported are kept in a file mapped into the process
// (gateway/reservation_file.h), and the next start settles them by decide.on_timeout before it
// serves, each exactly once: a reported call is billed once with its reported units, an
// unreported one once with its route's units (bill) or not at all (release), none twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Stack } from './harness.mjs';

const TOKEN = 'decide-token-crash-0123456789';

async function post(stack, path, body) {
  const r = await fetch(stack.gw + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-tollgate-token': TOKEN },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, json: JSON.parse(text), text };
}

for (const durability of ['process', 'strict']) {
  for (const rule of ['bill', 'release']) {
    test(`${durability}, on_timeout: ${rule}: reservations open at kill -9 are settled once by the next start`, async () => {
      // a timeout far away: nothing expires on its own during the test
      const st = await new Stack({
        durability,
        extra: `decide: {token: "${TOKEN}", settle_timeout_ms: 3600000, on_timeout: ${rule}}`,
      }).start();
      try {
        const { key, customer } = await st.customer('pro');
        const ids = [];
        for (let i = 0; i < 7; i++) {
          const c = await post(st, '/v1/check', { key, method: 'GET', path: '/v1/basic/x' });
          assert.equal(c.status, 200, c.text);
          assert.equal(c.json.allowed, true, c.text);
          ids.push(c.json.reservation);
        }
        // two reported as answered (with units of their own), one as failed (released)
        for (const id of ids.slice(0, 2)) {
          const r = await post(st, '/v1/report', { reservation: id, status: 200, units: { tokens: 3 } });
          assert.deepEqual(r.json, { reservation: id, billed: true }, r.text);
        }
        const failed = await post(st, '/v1/report', { reservation: ids[2], status: 503 });
        assert.deepEqual(failed.json, { reservation: ids[2], billed: false }, failed.text);
        // four left open when the process dies
        await st.kill9();
        await st.start();
        const unreported = rule === 'bill' ? 4 : 0;
        // recovered before serving: the store holds it when the admin API answers
        assert.equal(await st.usage(customer.id), 2 + unreported);
        assert.equal(await st.usage(customer.id, 'tokens'), 6);
        assert.match(st.server.output, new RegExp(`4 reservation\\(s\\) left open by the last run: ${unreported} billed`));
        // the reservations of the dead process are gone: a late report finds none
        const late = await post(st, '/v1/report', { reservation: ids[3], status: 200 });
        assert.equal(late.status, 404, late.text);

        // and nothing is billed a second time by the start after
        await st.kill9();
        await st.start();
        assert.doesNotMatch(st.server.output, /left open by the last run/);
        assert.equal(await st.usage(customer.id), 2 + unreported);
        assert.equal(await st.usage(customer.id, 'tokens'), 6);
      } finally {
        await st.stop();
      }
    });
  }
}
