// notify_ops_helpers.mjs - what notify_retention.test.mjs and notify_metrics.test.mjs share: a
// webhook receiver on loopback, a bounded poll, the stack's notifications section that lets
// deliveries reach loopback over http://, and reading /metrics.
import { createServer } from 'node:http';
import { sleep } from './harness.mjs';

export const OPEN = `
notifications:
  allow_http: true
  allow_private_networks: ["127.0.0.0/8", "::1/128"]
  retry_base_ms: 50
  retry_cap_ms: 300
  breaker_failures: 1000
`;

// A receiver: answers `srv.status(n)` to its n-th request (n from 1), keeps every request.
export async function receiver(status = () => 204) {
  const got = [];
  const srv = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const code = srv.status(got.length);
      res.writeHead(code, { 'content-type': 'text/plain' });
      res.end(code >= 300 ? 'failing on purpose' : 'ok');
    });
  });
  srv.status = status;
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { srv, got, url: `http://127.0.0.1:${srv.address().port}/hooks`, close: () => new Promise((r) => srv.close(r)) };
}

// Polls cond() (sync or async) until it is truthy, for up to ms; returns its value.
export async function until(cond, what, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

// The samples of /metrics as a Map from 'name{labels}' (as printed) to a number.
export async function metrics(s) {
  const r = await s.adminCall('GET', '/metrics');
  const text = r.text;
  if (r.status !== 200) throw new Error(`/metrics: ${r.status} ${text}`);
  const m = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  m.text = text;
  return m;
}
