// admin_abuse.mjs - latency of GET /healthz, GET /v1/plans (and, for information, the owner's
// GET /v1/admin/dashboard, which reads the database) on the admin port while CONNS
// connections hammer POST /v1/signup and POST /v1/login (wrong passwords), for SECONDS.
// Usage: node bench/admin_abuse.mjs http://127.0.0.1:PORT hammer|probe  (env CONNS, DURATION (seconds), ORIGIN)
// Two processes (bench/admin_abuse.sh starts both): `hammer` drives the abusive connections and
// prints what they got back; `probe` measures, from its own event loop (so the client's busy loop
// is not counted as server latency), and prints n, median, p99, max (ms) per probed path.
import http from 'node:http';

const base = new URL(process.argv[2]);
const conns = Number(process.env.CONNS || 64);
const seconds = Number(process.env.DURATION || 10);
const origin = process.env.ORIGIN || base.origin;
const until = Date.now() + seconds * 1000;

const token = process.env.ADMIN_TOKEN || 'bench-admin-token-0123456789';

function request(agent, method, path, body) {
  return new Promise((resolve) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const t0 = process.hrtime.bigint();
    const req = http.request({ host: base.hostname, port: base.port, method, path, agent,
      headers: { 'content-type': 'application/json', origin, ...(path.startsWith('/v1/admin/') ? { authorization: `Bearer ${token}` } : {}),
        ...(data ? { 'content-length': Buffer.byteLength(data) } : {}) } },
    (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    });
    req.on('error', () => resolve({ status: 0, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    req.setTimeout(60000, () => req.destroy());
    req.end(data);
  });
}

const statuses = {};
let seq = 0;
async function hammer(i) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  while (Date.now() < until) {
    const n = seq++;
    const r = i % 2 === 0
      ? await request(agent, 'POST', '/v1/signup', { email: `abuse-${process.pid}-${n}@example.com`, password: `Correct-Horse-${n}-battery`, plan: 'free' })
      : await request(agent, 'POST', '/v1/login', { email: `victim${n % 8}@example.com`, password: `wrong-password-${n}` });
    const k = `${i % 2 === 0 ? 'signup' : 'login'} ${r.status}`;
    statuses[k] = (statuses[k] || 0) + 1;
  }
  agent.destroy();
}

async function probe(path) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const ms = [];
  await new Promise((r) => setTimeout(r, 300)); // let the hammering start
  while (Date.now() < until) {
    const r = await request(agent, 'GET', path);
    if (r.status === 200) ms.push(r.ms);
    await new Promise((res) => setTimeout(res, 20));
  }
  agent.destroy();
  ms.sort((a, b) => a - b);
  const q = (p) => (ms.length ? ms[Math.min(ms.length - 1, Math.floor(p * ms.length))] : NaN);
  return `${path.padEnd(20)} n=${String(ms.length).padStart(4)}  median=${q(0.5).toFixed(1)} ms  p99=${q(0.99).toFixed(1)} ms  max=${(ms.length ? ms[ms.length - 1] : NaN).toFixed(1)} ms`;
}

if (process.argv[3] === 'probe') {
  for (const line of await Promise.all([probe('/healthz'), probe('/v1/plans'), probe('/v1/admin/dashboard')])) console.log(line);
  process.exit(0);
}
await Promise.all(Array.from({ length: conns }, (_, i) => hammer(i)));
console.log(`hammering (${conns} connections, ${seconds} s): ${Object.entries(statuses).sort().map(([k, v]) => `${k}: ${v}`).join(', ')}`);
