// upstream.test.mjs - the demo upstream (tools/demo-upstream.c) on its own: the other tests,
// `make run` and the benchmark rely on each of its endpoints doing exactly what it says.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { UPSTREAM, freePorts, sleep } from './harness.mjs';

let proc, base, output = '';
before(async () => {
  const [port] = await freePorts(1);
  base = `http://127.0.0.1:${port}`;
  proc = spawn(UPSTREAM, ['--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stderr.on('data', (d) => { output += d; });
  proc.exited = new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal })));
  for (let i = 0; i < 200; i++) {
    try { if ((await fetch(`${base}/healthz`)).ok) return; } catch { /* not up yet */ }
    await sleep(25);
  }
  throw new Error(`demo-upstream did not come up:\n${output}`);
});
after(async () => {
  // Still alive after everything below (a sanitizer report would have ended it), then a clean stop.
  assert.equal(proc.exitCode, null, output);
  proc.kill('SIGTERM');
  await proc.exited;
});

const get = async (path, init) => {
  const r = await fetch(base + path, init);
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, headers: r.headers, text, json };
};

test('echo: method, path without query, query, identity headers, key headers seen, body size', async () => {
  let r = await get('/v1/text/summarize?lang=en&x=1', {
    method: 'POST', body: 'hello world',
    headers: { 'x-tollgate-customer': 'cus_1', 'x-tollgate-plan': 'pro', authorization: 'Bearer k' },
  });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, {
    ok: true, method: 'POST', path: '/v1/text/summarize', query: 'lang=en&x=1', customer: 'cus_1', plan: 'pro',
    saw_authorization: true, saw_x_api_key: false, body_bytes: 11,
  });
  r = await get('/v1/vision/tag', { headers: { 'x-api-key': 'k' } });
  assert.deepEqual([r.json.query, r.json.customer, r.json.plan, r.json.saw_authorization, r.json.saw_x_api_key],
    [null, null, null, false, true]);
});

test('geocode answers a plausible result, decoding the query', async () => {
  let r = await get('/v1/basic/geocode?q=New+York');
  assert.equal(r.json.result.label, 'New York, NY, United States');
  assert.equal(r.json.result.lat, 40.7128);
  r = await get('/v1/basic/geocode?q=Ouagadougou%20Centre');
  assert.equal(r.json.result.query, 'Ouagadougou Centre');
  assert.ok(Math.abs(r.json.result.lat) <= 90 && Math.abs(r.json.result.lon) <= 180);
  assert.deepEqual((await get('/v1/basic/geocode?q=Ouagadougou%20Centre')).json.result, r.json.result);
  assert.equal((await get('/v1/basic/geocode')).json.result, null);
});

test('Tollgate-Units, status codes, 404', async () => {
  let r = await get('/v1/units?tokens=1234');
  assert.equal(r.headers.get('tollgate-units'), 'tokens=1234');
  for (const code of [201, 404, 429, 500, 503]) {
    r = await get(`/v1/status/${code}`);
    assert.equal(r.status, code);
    assert.equal(r.json.status, code);
  }
  assert.equal((await get('/v1/status/204')).status, 204);
  r = await get('/v2/nothing');
  assert.equal(r.status, 404);
  assert.ok(r.json.error);
  assert.equal((await get('/v1/slowly')).status, 404);
});

test('slow answers after the delay asked for, without blocking other requests', async () => {
  const t0 = Date.now();
  const slow = get('/v1/slow?ms=700');
  const fast = await get('/v1/slow?ms=30');
  const tFast = Date.now() - t0;
  const r = await slow;
  const tSlow = Date.now() - t0;
  assert.equal(fast.status, 200);
  assert.ok(tFast < 400, `30 ms request took ${tFast} ms`);
  assert.equal(r.status, 200);
  assert.ok(tSlow >= 690 && tSlow < 1500, `700 ms request took ${tSlow} ms`);
  // a client that gives up before the timer fires does not bring the server down
  await assert.rejects(fetch(`${base}/v1/slow?ms=300`, { signal: AbortSignal.timeout(50) }));
  await sleep(400);
  assert.equal((await get('/healthz')).status, 200);
});

test('big streams exactly N bytes with Content-Length; upload returns byte count and sum', async () => {
  const n = 5 * 1024 * 1024 + 123;
  const r = await fetch(`${base}/v1/big?bytes=${n}`);
  assert.equal(r.headers.get('content-length'), String(n));
  let got = 0;
  for await (const chunk of r.body) got += chunk.length;
  assert.equal(got, n);
  const body = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < body.length; i++) body[i] = (i * 31 + 7) & 0xff;
  let sum = 0;
  for (const b of body) sum = (sum + b) >>> 0;
  const up = await get('/v1/upload', { method: 'POST', body });
  assert.deepEqual(up.json, { bytes: body.length, sum });
  // a download abandoned half way does not bring the server down either
  const ac = new AbortController();
  const big = await fetch(`${base}/v1/big?bytes=${100 * 1024 * 1024}`, { signal: ac.signal });
  const reader = big.body.getReader();
  await reader.read();
  ac.abort();
  await sleep(100);
  assert.equal((await get('/healthz')).status, 200);
});
