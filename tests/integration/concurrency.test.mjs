// concurrency.test.mjs - both gateway workers under load, in strict, process and batched metering.
// scripts/run-tests.sh also runs this file against the ThreadSanitizer build: a race report
// makes tollgate exit non-zero on SIGTERM, which stopServer turns into a failure.
// Regression: in strict mode the commit queue's pipe socket was created on the main thread, and
// h2o 2.2 then had both workers sharing the main thread's buffer free list (heap corruption).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Stack } from './harness.mjs';

for (const durability of ['strict', 'process', 'batched']) {
  test(`${durability}: 64 concurrent clients, 20 customers, exact usage, clean stop`, async () => {
    const s = await new Stack({ durability }).start();
    try {
      const customers = await Promise.all(Array.from({ length: 20 }, () => s.customer('load')));
      const ok = new Map();
      let next = 0;
      const worker = async () => {
        while (next < 3000) {
          const c = customers[next++ % customers.length];
          const r = await s.call('/v1/basic/x', { key: c.key });
          if (r.status === 200) ok.set(c.customer.id, (ok.get(c.customer.id) || 0) + 1);
        }
      };
      await Promise.all(Array.from({ length: 64 }, worker));
      let total = 0;
      for (const c of customers) {
        const used = await s.usage(c.customer.id);
        assert.equal(used, ok.get(c.customer.id) || 0);
        total += used;
      }
      assert.ok(total >= 3000);
      await s.stopServer();
    } finally { await s.stop(); }
  });
}
