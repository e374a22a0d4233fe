// diag_log.test.mjs - the diagnostic log (log: {level, syslog}): library code reports through one
// logger, whose level filters what reaches standard error; a bad level is a configuration error
// naming its line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Stack, TOLLGATE } from './harness.mjs';

async function outputAt(level) {
  const s = new Stack({ extra: level ? `log: {level: ${level}}` : '' });
  await s.start();
  try {
    // the meter's start line (src/metering/meter.c) and main's own are info
    const { key } = await s.customer('free');
    assert.equal((await s.call('/v1/basic/a', { key })).status, 200);
    await s.stopServer();
    return s.procs.find((p) => p.spawnargs.includes('serve')).output;
  } finally { await s.stop(); }
}

test('log.level: info by default; error keeps only errors', async () => {
  const info = await outputAt(null);
  assert.match(info, /^tollgate: gateway on http:\/\//m);
  assert.match(info, /^tollgate: this node runs the schedulers now/m, 'a library line (admin_api.c) through the logger');
  assert.match(info, /^tollgate: stopped$/m);
  const err = await outputAt('error');
  assert.doesNotMatch(err, /gateway on http|schedulers|stopped/);
  assert.doesNotMatch(err, /^tollgate: (?!error: )/m, 'nothing below error');
});

test('log.level: a value outside error|warn|info|debug is refused with its line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-diag-'));
  const cfg = join(dir, 'tollgate.yaml');
  writeFileSync(cfg, `upstream: {url: "http://127.0.0.1:9"}
admin: {token: "0123456789abcdef0123"}
keys: {secret: "0123456789abcdef0123456789abcdef01"}
log: {level: loud, syslog: maybe}
plans: {a: {price: "0", rate_limit: 1/sec}}
`);
  const r = spawnSync(TOLLGATE, ['check-config', '-c', cfg], { encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr + r.stdout, /tollgate\.yaml:4: log\.level/);
  assert.match(r.stderr + r.stdout, /tollgate\.yaml:4: log\.syslog/);
});
