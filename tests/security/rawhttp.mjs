// rawhttp.mjs - raw-socket helpers for the security tests: a client that writes exact bytes and
// reads exact responses, and an upstream that echoes every header line it received, verbatim,
// in its response body (so a test sees what an upstream can see), counting the requests.
import net from 'node:net';

// Buffers a socket's bytes; line()/bytes()/rest() wait for more, up to a deadline.
export class Reader {
  constructor(sock) {
    this.buf = Buffer.alloc(0);
    this.ended = false;
    this.wake = null;
    sock.on('data', (d) => { this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d; this.notify(); });
    sock.on('end', () => { this.ended = true; this.notify(); });
    sock.on('close', () => { this.ended = true; this.notify(); });
    sock.on('error', () => {});
  }
  notify() { const w = this.wake; this.wake = null; if (w) w(); }
  async more(ms = 8000) {
    if (this.ended) throw new Error('connection closed');
    let timer;
    const slept = await Promise.race([new Promise((r) => { this.wake = () => r(false); }),
      new Promise((r) => { timer = setTimeout(() => r(true), ms); })]);
    clearTimeout(timer);
    if (slept) throw new Error('read timed out');
  }
  async line() {
    let i;
    while ((i = this.buf.indexOf('\r\n')) < 0) await this.more();
    const l = this.buf.subarray(0, i).toString('latin1');
    this.buf = this.buf.subarray(i + 2);
    return l;
  }
  async bytes(n) {
    while (this.buf.length < n) await this.more();
    const b = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return b;
  }
  // Everything until the peer closes (bounded by the read deadline).
  async rest() {
    while (!this.ended) await this.more();
    const b = this.buf;
    this.buf = Buffer.alloc(0);
    return b;
  }
}

// Reads one HTTP/1.1 message (a request, or a response when `response`).
export async function readMessage(rd, { response = false, method = 'GET' } = {}) {
  const start = await rd.line();
  const lines = [];
  for (let l; (l = await rd.line()) !== '';) lines.push(l);
  const headers = lines.map((l) => { const c = l.indexOf(':'); return [l.slice(0, c).trim().toLowerCase(), l.slice(c + 1).trim()]; });
  const all = (n) => headers.filter((h) => h[0] === n).map((h) => h[1]);
  const m = { start, lines, headers, all, get: (n) => all(n)[0], body: Buffer.alloc(0) };
  if (response) m.status = Number(start.split(' ')[1]);
  if (response && (m.status < 200 || m.status === 204 || m.status === 304 || method === 'HEAD')) return m;
  if (/chunked/i.test(all('transfer-encoding').join(','))) {
    const parts = [];
    for (;;) {
      const sl = await rd.line();
      const size = parseInt(sl.split(';')[0], 16);
      if (Number.isNaN(size)) throw new Error(`bad chunk size line ${JSON.stringify(sl)}`);
      if (size === 0) break;
      parts.push(await rd.bytes(size));
      if ((await rd.line()) !== '') throw new Error('chunk not followed by CRLF');
    }
    while ((await rd.line()) !== '');
    m.body = Buffer.concat(parts);
  } else if (m.get('content-length') !== undefined) {
    m.body = await rd.bytes(Number(m.get('content-length')));
  } else if (response) {
    m.body = await rd.rest();
  }
  return m;
}

// The echo upstream. Each request is answered 200 (or opts.status(req)) with the request's
// header lines, verbatim and one per line, as the body, plus opts.headers(req) in the response;
// opts.onRequest(req) is awaited first.
export async function echoUpstream(opts = {}) {
  const up = { reqs: [], sockets: new Set() };
  up.server = net.createServer(async (sock) => {
    up.sockets.add(sock);
    sock.on('close', () => up.sockets.delete(sock));
    const rd = new Reader(sock);
    try {
      for (;;) {
        const req = await readMessage(rd);
        up.reqs.push(req);
        if (opts.onRequest) await opts.onRequest(req); // may hold the answer back
        const body = Buffer.from(req.lines.join('\n'), 'latin1');
        const extra = opts.headers ? opts.headers(req) : [];
        const status = opts.status ? opts.status(req) : '200 OK';
        sock.write(Buffer.concat([Buffer.from(`HTTP/1.1 ${status}\r\n${extra.map((h) => `${h}\r\n`).join('')}` +
          `Content-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n`, 'latin1'), body]));
      }
    } catch { sock.destroy(); }
  });
  await new Promise((r) => up.server.listen(0, '127.0.0.1', r));
  up.port = up.server.address().port;
  up.close = () => { for (const s of up.sockets) s.destroy(); return new Promise((r) => up.server.close(r)); };
  return up;
}

export async function connect(port) {
  const sock = net.connect(port, '127.0.0.1');
  await new Promise((r, j) => { sock.once('connect', r); sock.once('error', j); });
  return { sock, rd: new Reader(sock) };
}

// Writes `raw` (string or Buffer) on a new connection and reads one response; then reports
// whether the server closed the connection (waits for the close up to the read deadline when
// `expectClose`).
export async function exchange(port, raw, { method = 'GET', expectClose = false } = {}) {
  const c = await connect(port);
  c.sock.write(typeof raw === 'string' ? Buffer.from(raw, 'latin1') : raw);
  let res;
  try { res = await readMessage(c.rd, { response: true, method }); } catch (e) { res = { status: 0, error: e.message, lines: [], all: () => [], get: () => undefined, body: Buffer.alloc(0) }; }
  let closed = c.rd.ended;
  if (expectClose && !closed) {
    try { await c.rd.rest(); } catch { /* still open after the deadline */ }
    closed = c.rd.ended;
  }
  c.sock.destroy();
  return Object.assign(res, { closed });
}
