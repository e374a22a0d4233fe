// display.test.mjs - issue 15 over HTTP: GET /v1/plans carries each metric's display name and unit
// and the portal's branding; the Content-Security-Policy lets an absolute logo's origin into the
// img-src of HTML pages only; the printable invoice reads the metric's name and money in its
// currency, while the JSON keeps ids and exact decimal strings; every line carries beside its
// stored description the text people read (billing/line_text.h).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withStack, ADMIN_TOKEN } from './harness.mjs';

const BRAND = `{title: "Acme Data", logo: "https://cdn.acme.example:8443/brand/logo.svg", primary_color: "#0a7d5a",
  support_email: help@acme.example, terms_url: "https://acme.example/terms", privacy_url: "https://acme.example/privacy",
  signup: {per_address: 1000/hour, global: 10000/hour, trial_address_days: 0}}`;

test('GET /v1/plans: display names and units, branding; money stays exact text', async () => {
  await withStack({ meteringMetrics: '{api_calls: {name: "API calls", unit: call}}', portal: BRAND }, async (s) => {
    const r = await fetch(`${s.admin}/v1/plans`).then((x) => x.json());
    assert.deepEqual(r.metrics.api_calls, { name: 'API calls', unit: 'call' });
    assert.deepEqual(r.portal, {
      title: 'Acme Data', logo: 'https://cdn.acme.example:8443/brand/logo.svg', primary_color: '#0a7d5a',
      support_email: 'help@acme.example', terms_url: 'https://acme.example/terms', privacy_url: 'https://acme.example/privacy', highlight: null,
    });
    const starter = r.data.find((p) => p.id === 'starter');
    assert.equal(starter.price, '49.00');
    assert.equal(starter.charges[0].metric, 'api_calls'); // ids in the API, names beside them
    assert.equal(starter.charges[0].unit_price, '0.001');

    // the logo's origin in img-src, on the portal's HTML pages only
    for (const path of ['/portal/', '/portal/app.html', '/portal/reset-password.html']) {
      const h = (await fetch(`${s.admin}${path}`)).headers.get('content-security-policy');
      assert.match(h, /img-src 'self' data: https:\/\/cdn\.acme\.example:8443; /, path);
      assert.match(h, /script-src 'self'; style-src 'self';/, path);
    }
    for (const path of ['/v1/plans', '/portal/app.js', '/admin/']) {
      const h = (await fetch(`${s.admin}${path}`)).headers.get('content-security-policy');
      assert.match(h, /img-src 'self' data:; /, path);
    }
  });
});

test('without metering.metrics or branding: ids, "unit", nulls, the plain CSP', async () => {
  await withStack({}, async (s) => {
    const r = await fetch(`${s.admin}/v1/plans`).then((x) => x.json());
    assert.deepEqual(r.metrics.api_calls, { name: 'api_calls', unit: 'unit' });
    assert.deepEqual(Object.values(r.portal), [null, null, null, null, null, null, null]);
    assert.match((await fetch(`${s.admin}/portal/`)).headers.get('content-security-policy'), /img-src 'self' data:; /);
  });
});

test('a logo on the portal\'s own origin adds nothing to the CSP', async () => {
  await withStack({ portal: '{logo: /portal/logo.svg}' }, async (s) => {
    assert.match((await fetch(`${s.admin}/portal/`)).headers.get('content-security-policy'), /img-src 'self' data:; /);
  });
});

test('the printable invoice: the metric\'s display name, money in its currency, the issuer', async () => {
  await withStack({ testClock: true, meteringMetrics: '{api_calls: {name: "API calls", unit: call}}', portal: BRAND }, async (s) => {
    const { key, customer } = await s.customer('metered');
    for (let i = 0; i < 5; i++) assert.equal((await s.call('/v1/basic/x', { key })).status, 200);
    assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 })).status, 200);
    assert.equal((await s.adminCall('POST', '/v1/admin/invoices/run', { customer: customer.id })).json.created, 1);
    const inv = (await s.adminCall('GET', `/v1/admin/invoices?customer=${customer.id}`)).json.data[0];
    assert.equal(inv.total, '10.75');
    const full = (await s.adminCall('GET', `/v1/admin/invoices/${inv.id}`)).json;
    assert.match(full.lines[1].description, /^api_calls above 2 included \(per unit\)$/); // the stored line keeps the id
    // beside it, the text people read: the display name and the unit, composed when answered
    assert.equal(full.lines[1].text, 'API calls above 2 included (per call)');
    assert.equal(full.lines[0].text, full.lines[0].description); // the base fee reads as stored
    const r = await fetch(`${s.admin}/v1/admin/invoices/${inv.id}/html`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const page = await r.text();
    assert.match(page, /<td>API calls above 2 included \(per call\)<\/td><td class="n">3<\/td><td class="n">\$0\.75<\/td>/);
    assert.match(page, /data-testid="total">\$10\.75</);
    assert.match(page, /<p class="muted">Acme Data<\/p>/);
    assert.doesNotMatch(page, /\d\.\d\d (usd|USD)|Total \(usd\)/);
  });
});

test('quote and upcoming lines: the display name, the allowance grouped by thousands, per the unit', async () => {
  await withStack({ meteringMetrics: '{api_calls: {name: "API calls", unit: call}}' }, async (s) => {
    const q = await fetch(`${s.admin}/v1/plans/starter/quote?api_calls=50003`).then((x) => x.json());
    const usage = q.lines.find((l) => l.metric === 'api_calls');
    assert.equal(usage.description, 'api_calls above 50000 included (per unit)');
    assert.equal(usage.text, 'API calls above 50,000 included (per call)');
    const { key, customer } = await s.customer('pro');
    assert.equal((await s.call('/v1/basic/x', { key })).status, 200); // a usage line on the upcoming invoice
    const up = (await s.adminCall('GET', `/v1/admin/customers/${customer.id}/invoices/upcoming`)).json;
    assert.equal(up.lines.find((l) => l.metric === 'api_calls').text, 'API calls above 500,000 included (per call)');
  });
  // without metering.metrics: the id and "unit", still grouped
  await withStack({}, async (s) => {
    const q = await fetch(`${s.admin}/v1/plans/starter/quote?api_calls=1`).then((x) => x.json());
    assert.equal(q.lines.find((l) => l.metric === 'api_calls').text, 'api_calls above 50,000 included (per unit)');
  });
});

// One web/portal/format.js served under both names (admin_static.c's SHARED_FILES): the built-in
// copy, and the file itself when TOLLGATE_WEB_ROOT points at a directory laid out like web/.
test('/admin/format.js answers the same bytes as /portal/format.js, as JavaScript', async () => {
  const { readFileSync, existsSync } = await import('node:fs');
  const source = readFileSync(new URL('../../web/portal/format.js', import.meta.url));
  assert.equal(existsSync(new URL('../../web/admin/format.js', import.meta.url)), false, 'no second copy in web/admin');
  const web = new URL('../../web', import.meta.url).pathname;
  const saved = process.env.TOLLGATE_WEB_ROOT;
  try {
    for (const root of [undefined, web]) {
      if (root === undefined) delete process.env.TOLLGATE_WEB_ROOT; else process.env.TOLLGATE_WEB_ROOT = root;
      await withStack({}, async (s) => {
        for (const path of ['/portal/format.js', '/admin/format.js']) {
          const r = await fetch(`${s.admin}${path}`);
          assert.equal(r.status, 200, `${path} (web root ${root})`);
          assert.equal(r.headers.get('content-type'), 'text/javascript; charset=utf-8', path);
          assert.deepEqual(Buffer.from(await r.arrayBuffer()), source, `${path} (web root ${root})`);
          const head = await fetch(`${s.admin}${path}`, { method: 'HEAD' });
          assert.equal(head.status, 200, `HEAD ${path}`);
        }
      });
    }
  } finally {
    if (saved === undefined) delete process.env.TOLLGATE_WEB_ROOT; else process.env.TOLLGATE_WEB_ROOT = saved;
  }
});

test('the usage report and `tollgate usage` read each metric by its display name', async () => {
  await withStack({ meteringMetrics: '{api_calls: {name: "API calls", unit: call}, images: {name: "Images analysed", unit: image}}' }, async (s) => {
    const { key, customer } = await s.customer('pro');
    for (let i = 0; i < 3; i++) assert.equal((await s.call('/v1/basic/x', { key })).status, 200);
    assert.equal((await s.call('/v1/vision/classify', { key, method: 'POST', body: 'x' })).status, 200);
    const u = (await s.adminCall('GET', `/v1/admin/customers/${customer.id}/usage`)).json;
    const calls = u.metrics.find((m) => m.metric === 'api_calls');
    assert.deepEqual([calls.name, calls.unit, calls.used], ['API calls', 'call', 4]); // the id stays beside it
    const r = s.cli(['usage', customer.id, '--daily', '--server', s.admin]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^API calls\s+4\s+500000\s+0\s+499996\s*$/m);
    assert.match(r.stdout, /^Images analysed\s+1\s+-/m);
    assert.match(r.stdout, /^\d{4}-\d\d-\d\d {2}API calls\s+4$/m);
    assert.match(r.stdout, /^\d{4}-\d\d-\d\d {2}Images analysed\s+1$/m);
    assert.doesNotMatch(r.stdout, /api_calls|images\b/);
  });
});
