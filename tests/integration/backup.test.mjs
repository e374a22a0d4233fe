// backup.test.mjs - `tollgate backup` while calls flow and `tollgate restore` (issue 14): the
// restored node has every invoice and every unit of usage answered before the backup began,
// nothing answered after it ended, and nothing counted twice; a running gateway, a damaged
// backup and PostgreSQL are refused with a clear message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withStack, BACKEND } from './harness.mjs';

const DAY = 86400;

test('backup under load, restore in place: invoices equal, usage between the calls answered before the backup and those started before its end', { skip: BACKEND !== 'sqlite' && 'SQLite only (PostgreSQL: pg_dump, see the next test)' }, async () => {
  await withStack({ testClock: true }, async (s) => {
    const dest = mkdtempSync(join(tmpdir(), 'tollgate-backup-'));
    const backup = join(dest, 'b1');
    try {
      // an invoice from a closed period
      const m = await s.customer('metered');
      for (let i = 0; i < 5; i++) assert.equal((await s.call('/v1/basic/x', { key: m.key })).status, 200);
      assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * DAY })).status, 200);
      assert.equal((await s.adminCall('POST', '/v1/admin/invoices/run', { customer: m.customer.id })).json.created, 1);
      const invoices = (await s.adminCall('GET', `/v1/admin/invoices?customer=${m.customer.id}`)).json.data;
      assert.equal(invoices.length, 1);

      // load on another customer while the backup runs
      const l = await s.customer('load');
      let answered = 0, started = 0, stop = false;
      const loops = Array.from({ length: 4 }, async () => {
        while (!stop) {
          started++;
          const r = await s.call('/v1/basic/x', { key: l.key });
          assert.equal(r.status, 200);
          answered++;
        }
      });
      while (answered < 300) await new Promise((r) => setImmediate(r));
      const answeredBefore = answered;
      const b = await s.cliAsync(['backup', '-c', s.config, backup]);
      const startedByEnd = started;
      assert.equal(b.status, 0, b.stderr);
      assert.match(b.stdout, /database \(schema \d+, \d+ bytes, sha256 [0-9a-f]{16}\.\.\.\) and 2 metering logs/);
      while (answered < startedByEnd + 200) await new Promise((r) => setImmediate(r));
      stop = true;
      await Promise.all(loops);
      const manifest = JSON.parse(readFileSync(join(backup, 'manifest.json'), 'utf8'));
      assert.equal(manifest.format, 1);
      assert.equal(manifest.database.file, 'tollgate.db');
      assert.match(manifest.database.sha256, /^[0-9a-f]{64}$/);

      // a gateway running on the database: refused, nothing touched
      const busy = s.cli(['restore', '-c', s.config, backup]);
      assert.equal(busy.status, 1);
      assert.match(busy.stderr, /a gateway is running on .* stop it before restoring/);
      assert.equal(await s.usage(l.customer.id), answered);

      // a damaged backup: refused
      const damaged = join(dest, 'damaged');
      cpSync(backup, damaged, { recursive: true });
      const db = readFileSync(join(damaged, 'tollgate.db'));
      db[db.length - 100] ^= 0xff;
      writeFileSync(join(damaged, 'tollgate.db'), db);

      await s.stopServer();
      const bad = s.cli(['restore', '-c', s.config, damaged]);
      assert.equal(bad.status, 1);
      assert.match(bad.stderr, /does not match its manifest/);

      const r = s.cli(['restore', '-c', s.config, backup]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /what was there is kept with the suffix \.before-restore-\d{8}T\d{6}Z(-\d+)?$/m);
      assert.ok(readdirSync(s.dir).some((f) => /^tollgate\.db\.before-restore-/.test(f)), 'the old database is kept');
      await s.start();

      const restored = await s.usage(l.customer.id);
      assert.ok(restored >= answeredBefore, `usage ${restored} lost calls answered before the backup (${answeredBefore})`);
      assert.ok(restored <= startedByEnd, `usage ${restored} has calls started after the backup (${startedByEnd})`);
      assert.ok(restored < answered); // the calls after the backup are not in it
      assert.equal(await s.usage(m.customer.id), 5); // the restarted test clock is back in the invoiced period
      const after = (await s.adminCall('GET', `/v1/admin/invoices?customer=${m.customer.id}`)).json.data;
      assert.deepEqual(after, invoices);
      // the keys work after the restore
      assert.equal((await s.call('/v1/basic/x', { key: l.key })).status, 200);
      // the same backup restored again gives the same node: its database, then its logs' batches,
      // each once (the calls made since the first restore are set aside with the database)
      await s.stopServer();
      const again = s.cli(['restore', '-c', s.config, backup]);
      assert.equal(again.status, 0, again.stderr);
      assert.equal(/stored (\d+) batches/.exec(again.stdout)[1], /stored (\d+) batches/.exec(r.stdout)[1]);
      await s.start();
      assert.equal(await s.usage(l.customer.id), restored);
    } finally {
      rmSync(dest, { recursive: true, force: true });
    }
  });
});

test('backup refuses a directory with files in it, and PostgreSQL with the pg_dump recipe', async () => {
  await withStack({}, async (s) => {
    const dest = mkdtempSync(join(tmpdir(), 'tollgate-backup-'));
    try {
      writeFileSync(join(dest, 'x'), 'x');
      const r = s.cli(['backup', '-c', s.config, dest]);
      assert.equal(r.status, 1);
      if (BACKEND === 'sqlite') assert.match(r.stderr, /is not empty \(x\): a backup goes into a new directory/);
      else assert.match(r.stderr, /for PostgreSQL use pg_dump or base backups with WAL archiving/);
      const none = s.cli(['backup', '-c', s.config]);
      assert.equal(none.status, 2);
      assert.ok(!existsSync(join(dest, 'tollgate.db')));
    } finally {
      rmSync(dest, { recursive: true, force: true });
    }
  });
});
