// protocols.test.mjs - which protocols tollgate serves (issue 10, item 3): HTTP/1.0 and HTTP/1.1
// only, on both ports. HTTP/2 (prior knowledge or an h2c upgrade) is not served: it had been
// answered by h2o without being documented, and its metering differed from HTTP/1's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withStack } from '../integration/harness.mjs';
import { connect, exchange } from './rawhttp.mjs';

// The client connection preface and an empty SETTINGS frame (RFC 9113 3.4, 6.5).
const H2_PREFACE = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);

// What the server answers to the HTTP/2 preface: its first bytes, or '' if it closed at once.
async function answerToPreface(port) {
  const c = await connect(port);
  c.sock.write(H2_PREFACE);
  try { while (c.rd.buf.length < 9 && !c.rd.ended) await c.rd.more(); } catch { /* timed out */ }
  c.sock.destroy();
  return c.rd.buf;
}

test('API8:2023 security misconfiguration: HTTP/2 is served on neither port (prior knowledge or h2c upgrade)', async () => {
  await withStack({}, async (s) => {
    const { key } = await s.customer('pro');
    for (const [name, port, path] of [['gateway', s.gwPort, '/v1/basic/echo'], ['admin', s.adminPort, '/healthz']]) {
      const pre = await answerToPreface(port);
      // An HTTP/2 server answers with its SETTINGS frame: type 4 in the frame's fourth byte.
      assert.ok(pre.length === 0 || pre.toString('latin1').startsWith('HTTP/1.1 400'),
        `${name} port answered the HTTP/2 preface with ${JSON.stringify(pre.subarray(0, 40).toString('latin1'))}`);
      const up = await exchange(port, `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n` +
        'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n');
      assert.notEqual(up.status, 101, `${name} port switched to h2c`);
      assert.equal(up.status, 200, `${name} port: ${up.status} ${up.body}`);
      assert.ok(up.start.startsWith('HTTP/1.1 '), up.start);
      assert.deepEqual(up.all('upgrade'), [], `${name} port offered an upgrade`);
    }
  });
});
