// install.test.mjs - tollgate installed and run the way an owner would (issue 14): the pages are
// built into the binary, so it serves the portal and the dashboard from any working directory;
// `make install DESTDIR=...` lays out the binary, tollgate(1) made from --help, an example
// configuration and a systemd unit that systemd itself accepts; the installed binary runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, existsSync, mkdirSync, copyFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { withStack } from './harness.mjs';

const root = resolve(new URL('../..', import.meta.url).pathname);
const CHARTJS = '/usr/share/javascript/chart.js/chart.min.js';

async function bytes(url) {
  const r = await fetch(url);
  return { status: r.status, type: r.headers.get('content-type'), body: Buffer.from(await r.arrayBuffer()) };
}

test('started from another working directory, the portal, the dashboard and Chart.js are served from the binary', async () => {
  const elsewhere = mkdtempSync(join(tmpdir(), 'tollgate-cwd-'));
  const saved = process.env.TOLLGATE_WEB_ROOT;
  delete process.env.TOLLGATE_WEB_ROOT; // the built-in copies, not a directory
  try {
    await withStack({ cwd: elsewhere }, async (s) => {
      for (const [url, file] of [['/portal/', 'web/portal/index.html'], ['/portal/app.js', 'web/portal/app.js'],
        ['/admin/', 'web/admin/index.html'], ['/admin/admin.js', 'web/admin/admin.js'], ['/portal/style.css', 'web/portal/style.css']]) {
        const r = await bytes(`${s.admin}${url}`);
        assert.equal(r.status, 200, url);
        assert.ok(r.body.equals(readFileSync(join(root, file))), `${url} is ${file}`);
      }
      assert.match((await bytes(`${s.admin}/portal/`)).type, /^text\/html/);
      for (const url of ['/portal/vendor/chart.min.js', '/admin/vendor/chart.min.js']) {
        const r = await bytes(`${s.admin}${url}`);
        assert.equal(r.status, 200, url);
        assert.ok(r.body.equals(readFileSync(CHARTJS)), url);
      }
      for (const url of ['/portal/nope.js', '/portal/../README.md', '/admin/vendor/chart.min.jsx', '/portal/app.js/x'])
        assert.equal((await bytes(`${s.admin}${url}`)).status, 404, url);
    });
    // nothing was written where it ran
    assert.equal(spawnSync('find', [elsewhere, '-mindepth', '1'], { encoding: 'utf8' }).stdout, '');
  } finally {
    if (saved !== undefined) process.env.TOLLGATE_WEB_ROOT = saved;
    rmSync(elsewhere, { recursive: true, force: true });
  }
});

test('relative paths in the configuration are relative to its folder, not the working directory; check-config prints them resolved', async () => {
  const elsewhere = mkdtempSync(join(tmpdir(), 'tollgate-cwd-'));
  try {
    await withStack({ cwd: elsewhere, database: 'sqlite:data/t.db', meteringLogDir: 'logs' }, async (s) => {
      const { key } = await s.customer('starter');
      assert.equal((await s.call('/v1/basic/x', { key })).status, 200);
      assert.ok(existsSync(join(s.dir, 'data/t.db')), 'the database beside the configuration');
      assert.ok(existsSync(join(s.dir, 'logs/usage-1.log')), 'the metering logs beside the configuration');
      const check = s.cli(['check-config', '-c', s.config]);
      assert.equal(check.status, 0, check.stderr);
      assert.ok(check.stdout.includes(`storage sqlite:${s.dir}/data/t.db\n`), check.stdout);
      assert.ok(check.stdout.includes(`metering logs in ${s.dir}/logs\n`), check.stdout);
    });
    assert.equal(spawnSync('find', [elsewhere, '-mindepth', '1'], { encoding: 'utf8' }).stdout, '');
    // a PostgreSQL URL is printed without its password, in the userinfo or in the parameters
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-cfg-'));
    const cfg = readFileSync(join(root, 'examples/tollgate.yaml'), 'utf8')
      .replace('sqlite:../var/tollgate.db', 'postgresql://tollgate:hunter2secret@127.0.0.1:5/tg?password=hunter2secret')
      .replace('metering:\n', 'metering:\n  log_dir: spool\n');
    writeFileSync(join(dir, 'tollgate.yaml'), cfg);
    // the example names the demo upstream's OpenAPI document beside it (portal.openapi)
    copyFileSync(join(root, 'examples/demo-upstream.openapi.yaml'), join(dir, 'demo-upstream.openapi.yaml'));
    const env = { ...process.env, TOLLGATE_ADMIN_TOKEN: 'adm_0123456789abcdef0123', TOLLGATE_KEY_SECRET: '0123456789abcdef0123456789abcdef' };
    const out = spawnSync(resolve(root, process.env.TOLLGATE_BIN || 'build/tollgate'), ['check-config', '-c', join(dir, 'tollgate.yaml')], { encoding: 'utf8', env });
    rmSync(dir, { recursive: true, force: true });
    assert.equal(out.status, 0, out.stderr);
    assert.ok(!out.stdout.includes('hunter2'), out.stdout);
    assert.ok(out.stdout.includes('storage postgresql://tollgate:***@127.0.0.1:5/tg\n'), out.stdout);
    assert.ok(out.stdout.includes(`metering logs in ${dir}/spool\n`), out.stdout);
  } finally {
    rmSync(elsewhere, { recursive: true, force: true });
  }
});

test('make install DESTDIR=... installs the binary, tollgate(1), an example configuration and a hardened systemd unit', async () => {
  const dest = mkdtempSync(join(tmpdir(), 'tollgate-install-'));
  try {
    const make = spawnSync('make', ['-s', 'install', `DESTDIR=${dest}`, 'PREFIX=/usr/local'], { cwd: root, encoding: 'utf8' });
    assert.equal(make.status, 0, make.stderr);
    const bin = join(dest, 'usr/local/bin/tollgate');
    assert.equal(statSync(bin).mode & 0o777, 0o755);
    for (const f of ['usr/local/share/man/man1/tollgate.1', 'usr/local/share/tollgate/tollgate.yaml.example',
      'usr/local/lib/systemd/system/tollgate.service'])
      assert.equal(statSync(join(dest, f)).mode & 0o777, 0o644, f);

    // the manual is the --help text, and man renders it without a warning
    const page = join(dest, 'usr/local/share/man/man1/tollgate.1');
    const man = spawnSync('man', ['--warnings', '-l', page], { encoding: 'utf8', env: { ...process.env, MANWIDTH: '100' } });
    assert.equal(man.status, 0, man.stderr);
    assert.equal(man.stderr, '');
    const help = spawnSync(bin, ['help'], { encoding: 'utf8' }).stdout;
    for (const line of ['run the gateway and the admin API', 'validate a configuration and print the effective plans'])
      assert.ok(help.includes(line) && man.stdout.includes(line), line);
    assert.match(man.stdout, /metering recover -c FILE --log-dir DIR/);

    // the unit: its own user, state directory, read-only system, no new privileges, restarts
    const unit = readFileSync(join(dest, 'usr/local/lib/systemd/system/tollgate.service'), 'utf8');
    for (const want of [/^ExecStart=\/usr\/local\/bin\/tollgate serve -c \/etc\/tollgate\/tollgate\.yaml$/m, /^DynamicUser=yes$/m,
      /^StateDirectory=tollgate$/m, /^ProtectSystem=strict$/m, /^NoNewPrivileges=yes$/m, /^Restart=on-failure$/m,
      /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m])
      assert.match(unit, want);
    assert.doesNotMatch(unit, /@[A-Z]+@/);

    // the example configuration is valid as installed, with its database in the state directory
    const example = join(dest, 'usr/local/share/tollgate/tollgate.yaml.example');
    assert.match(readFileSync(example, 'utf8'), /database: "sqlite:\/var\/lib\/tollgate\/tollgate\.db"/);
    const env = { ...process.env, TOLLGATE_ADMIN_TOKEN: 'adm_0123456789abcdef0123', TOLLGATE_KEY_SECRET: '0123456789abcdef0123456789abcdef' };
    const check = spawnSync(bin, ['check-config', '-c', example], { encoding: 'utf8', env });
    assert.equal(check.status, 0, check.stdout + check.stderr);

    // and the installed binary serves, from another directory, with its pages
    await withStack({ bin, cwd: dest }, async (s) => {
      assert.equal((await fetch(`${s.admin}/portal/`)).status, 200);
      assert.equal((await s.call('/v1/basic/x', { key: (await s.customer('starter')).key })).status, 200);
    });
  } finally {
    rmSync(dest, { recursive: true, force: true });
  }
});

test('systemd accepts the unit as installed (systemd-analyze verify)', async (t) => {
  const probe = spawnSync('systemd-analyze', ['--version']);
  if (probe.error) { t.skip('systemd-analyze is not installed (scripts/install-deps.sh installs systemd)'); return; }
  const prefix = mkdtempSync(join(tmpdir(), 'tollgate-prefix-'));
  try {
    const make = spawnSync('make', ['-s', 'install', `PREFIX=${prefix}/usr`, `SYSCONFDIR=${prefix}/etc`], { cwd: root, encoding: 'utf8' });
    assert.equal(make.status, 0, make.stderr);
    mkdirSync(join(prefix, 'etc/tollgate'), { recursive: true });
    copyFileSync(join(prefix, 'usr/share/tollgate/tollgate.yaml.example'), join(prefix, 'etc/tollgate/tollgate.yaml'));
    const unit = join(prefix, 'usr/lib/systemd/system/tollgate.service');
    assert.ok(existsSync(unit));
    const v = spawnSync('systemd-analyze', ['verify', '--man=no', unit], { encoding: 'utf8' });
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stderr.trim(), '', 'no unknown keys or bad values');
  } finally {
    rmSync(prefix, { recursive: true, force: true });
  }
});
