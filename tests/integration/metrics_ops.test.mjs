// metrics_ops.test.mjs - what /metrics tells an operator beyond the gateway's counters: the
// build, the process (CPU, memory, descriptors, start time, read from /proc), end-to-end
// gateway latency (refusals included, not only upstream exchanges) and decisions by plan.
import { test } from 'node:test';
import { execFileSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { withStack } from './harness.mjs';

const value = (text, series) => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  assert.ok(line, `${series} is in /metrics`);
  return Number(line.slice(series.length + 1));
};

test('/metrics: build info, process metrics, end-to-end latency and decisions by plan', async () => {
  await withStack({}, async (s) => {
    const { key } = await s.customer('free');
    for (let i = 0; i < 3; i++) assert.equal((await s.call('/v1/basic/a', { key })).status, 200);
    assert.equal((await s.call('/v1/text/a', { key })).status, 403); // not in the free plan
    assert.equal((await s.call('/v1/basic/a')).status, 401); // no key: no plan

    // the process's CPU time from /proc (utime + stime, in clock ticks), around the scrape
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    const cpu = () => {
      const f = readFileSync(`/proc/${s.server.pid}/stat`, 'utf8').split(') ')[1].split(' ');
      return (Number(f[11]) + Number(f[12])) / ticks; // fields 14 and 15, counted after "(comm) "
    };
    const cpuBefore = cpu();
    const m = (await s.adminCall('GET', '/metrics')).text;
    const cpuAfter = cpu();
    const version = s.cli(['version']).stdout.trim().split(' ')[1];
    assert.equal(value(m, `tollgate_build_info{version="${version}"}`), 1);

    const pid = s.server.pid;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // a short run on PostgreSQL may not have used one clock tick yet: compare with /proc, not 0
    const cpuSeconds = value(m, 'process_cpu_seconds_total');
    assert.ok(cpuSeconds >= cpuBefore - 0.01 && cpuSeconds <= cpuAfter + 0.01, `cpu ${cpuSeconds} vs ${cpuBefore}..${cpuAfter}`);
    const rss = value(m, 'process_resident_memory_bytes');
    const statusRss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
    assert.ok(rss > 1e6 && rss < statusRss * 2, `rss ${rss} vs VmRSS ${statusRss}`);
    const fds = value(m, 'process_open_fds');
    const nowFds = readdirSync(`/proc/${pid}/fd`).length;
    assert.ok(fds > 5 && Math.abs(fds - nowFds) < 10, `fds ${fds} vs ${nowFds}`);
    const start = value(m, 'process_start_time_seconds');
    assert.ok(stat.length > 0 && Math.abs(start - (Date.now() / 1000 - process.uptime())) < 120,
      'started around when this test did');

    // 5 calls went through the handler; only 3 reached the upstream
    assert.equal(value(m, 'tollgate_gateway_latency_seconds_count'), 5);
    assert.equal(value(m, 'tollgate_gateway_latency_seconds_bucket{le="+Inf"}'), 5);
    assert.equal(value(m, 'tollgate_upstream_latency_seconds_count'), 3);
    assert.ok(value(m, 'tollgate_gateway_latency_seconds_sum') > 0);

    assert.equal(value(m, 'tollgate_plan_decisions_total{plan="free",decision="allowed"}'), 3);
    assert.equal(value(m, 'tollgate_plan_decisions_total{plan="free",decision="endpoint_not_in_plan"}'), 1);
    assert.ok(!/tollgate_plan_decisions_total\{plan="",/.test(m), 'a call without a key has no plan');
  });
});
