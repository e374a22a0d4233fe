// metering_recover.test.mjs - `tollgate metering recover` as an operator runs it (issue 12): on
// the logs of a gateway killed with SIGKILL it stores what they hold, each batch once, and with
// --retire says the node is retired; it refuses logs a running gateway holds and a command line
// without its log directory. The unit tests (test_meter_recover.c, test_meter.c) check the same
// function record by record; this checks the command, its exit codes and what it prints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BACKEND, Stack } from './harness.mjs';

test('metering recover --retire stores a killed node\'s logs once, and refuses a running node\'s', async () => {
  const st = await new Stack({ durability: 'process', meteringLogDir: true }).start();
  try {
    const dir = st.meteringLogDir();
    const { key, customer } = await st.customer('load');
    const CALLS = 25;
    for (let i = 0; i < CALLS; i++) {
      const r = await st.call('/v1/basic/x', { key });
      assert.equal(r.status, 200, r.text);
    }

    const held = st.cli(['metering', 'recover', '-c', st.config, '--log-dir', dir, '--retire']);
    assert.equal(held.status, 1, held.stdout + held.stderr);
    assert.match(held.stderr, /metering log .* is in use by another tollgate process/);
    assert.equal(held.stdout, '');

    const noDir = st.cli(['metering', 'recover', '-c', st.config, '--retire']);
    assert.equal(noDir.status, 2, noDir.stdout + noDir.stderr);
    assert.match(noDir.stderr, /usage: tollgate metering recover -c FILE --log-dir DIR \[--retire\]/);

    // process durability: every answered call is in the log when the process dies, stored or not
    await st.kill9();
    const rec = st.cli(['metering', 'recover', '-c', st.config, '--log-dir', dir, '--retire']);
    assert.equal(rec.status, 0, rec.stdout + rec.stderr);
    const m = /: (\d+) metering logs, (\d+) batches \((\d+) rows\) stored now; the rest was stored before\n/.exec(rec.stdout);
    assert.ok(m, rec.stdout);
    assert.ok(Number(m[1]) >= 2, rec.stdout); // the node's two logs at least
    assert.ok(Number(m[3]) <= CALLS, rec.stdout);
    // one gateway on SQLite has no node id (its logs are usage-N.log); on PostgreSQL it has one
    // (the host name here): either way the line names it, never as node ""
    assert.match(rec.stdout, BACKEND === 'sqlite'
      ? /^the gateway without a node id retired: its batch ids are deleted from one hour from now$/m
      : /^node "[^"]+" retired: its batch ids are deleted from one hour from now$/m);

    // the logs were emptied: a second run stores nothing and retires nothing it did not find
    const again = st.cli(['metering', 'recover', '-c', st.config, '--log-dir', dir]);
    assert.equal(again.status, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /, 0 batches \(0 rows\) stored now;/);
    assert.doesNotMatch(again.stdout, /retired/);

    // the node comes back after all (it takes its drain back): every call counted once
    await st.start();
    assert.equal(await st.usage(customer.id), CALLS);
  } finally {
    await st.stop();
  }
});
