// export_csv.test.mjs - issue 15: CSV exports of customers, invoices and usage
// (GET /v1/admin/export/{customers,invoices,usage}.csv) read back with a strict RFC 4180 reader:
// quoting, CRLF records, the formula-injection guard, the lists' filters, more rows than a page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withStack } from './harness.mjs';

// RFC 4180, strictly: records end with CRLF (the last one too), fields are separated by commas,
// a field with a comma, quote, CR or LF must be quoted, a quote inside a quoted field is doubled,
// and a quote may not appear in an unquoted field. Anything else throws.
export function parseCsv(text) {
  const rows = [];
  let i = 0;
  while (i < text.length) {
    const row = [];
    for (;;) {
      let field = '';
      if (text[i] === '"') {
        i++;
        for (;;) {
          if (i >= text.length) throw new Error('unterminated quoted field');
          if (text[i] === '"') {
            if (text[i + 1] === '"') { field += '"'; i += 2; continue; }
            i++;
            break;
          }
          field += text[i++];
        }
        if (text[i] !== ',' && !(text[i] === '\r' && text[i + 1] === '\n')) throw new Error(`junk after a quoted field at ${i}`);
      } else {
        while (i < text.length && text[i] !== ',' && text[i] !== '\r') {
          if (text[i] === '"' || text[i] === '\n') throw new Error(`bare ${JSON.stringify(text[i])} in an unquoted field at ${i}`);
          field += text[i++];
        }
        if (i >= text.length) throw new Error('the last record does not end with CRLF');
        if (text[i] === '\r' && text[i + 1] !== '\n') throw new Error(`bare CR at ${i}`);
      }
      row.push(field);
      if (text[i] === ',') { i++; continue; }
      i += 2; // CRLF
      break;
    }
    rows.push(row);
  }
  if (rows.some((r) => r.length !== rows[0].length)) throw new Error('records of different lengths');
  return rows;
}

const get = async (s, path) => {
  const r = await fetch(`${s.admin}${path}`, { headers: { authorization: `Bearer ${(await import('./harness.mjs')).ADMIN_TOKEN}` } });
  return { status: r.status, type: r.headers.get('content-type'), text: await r.text() };
};

test('the strict reader refuses what RFC 4180 does not allow', () => {
  assert.deepEqual(parseCsv('a,"b,""c"""\r\n,\r\n'), [['a', 'b,"c"'], ['', '']]);
  for (const bad of ['a,b', 'a,b\n', 'a"b\r\n', '"a"b\r\n', '"a\r\n', 'a\rb\r\n', 'a,b\r\nc\r\n']) assert.throws(() => parseCsv(bad), bad);
});

test('customers, invoices and usage as CSV: quoted, guarded against formulas, filtered, every page', async () => {
  await withStack({ testClock: true }, async (s) => {
    const nasty = [
      ['=HYPERLINK("http://evil.example","x")', 'f1@example.com'],
      ['+1 (555) 0100', 'f2@example.com'],
      ['-2+3', 'f3@example.com'],
      ['@SUM(A1:A9)', 'f4@example.com'],
      ['Zoë, "the" Company\nLtd', 'f5@example.com'],
    ];
    const ids = {};
    for (const [name, email] of nasty) {
      const r = await s.adminCall('POST', '/v1/admin/customers', { email, name, plan: 'metered' });
      assert.equal(r.status, 201, r.text);
      ids[email] = r.json.id;
    }
    // the export reads the store 1,000 rows at a time with the lists' cursors (their paging is
    // checked in customer_search.test.mjs); these 30 make a file of several kinds of rows
    for (let i = 0; i < 30; i++) await s.adminCall('POST', '/v1/admin/customers', { email: `bulk${i}@example.com`, name: `Bulk ${i}`, plan: 'free' });

    const c = await get(s, '/v1/admin/export/customers.csv');
    assert.equal(c.status, 200);
    assert.match(c.type, /^text\/csv/);
    const rows = parseCsv(c.text);
    assert.deepEqual(rows[0], ['id', 'email', 'name', 'plan', 'status', 'created_at', 'trial_end', 'cancel_at', 'pending_plan']);
    assert.equal(rows.length, 1 + 35);
    const byEmail = new Map(rows.slice(1).map((r) => [r[1], r]));
    // a cell starting with = + - @ is prefixed with an apostrophe; others are as they were
    assert.equal(byEmail.get('f1@example.com')[2], `'=HYPERLINK("http://evil.example","x")`);
    assert.equal(byEmail.get('f2@example.com')[2], "'+1 (555) 0100");
    assert.equal(byEmail.get('f3@example.com')[2], "'-2+3");
    assert.equal(byEmail.get('f4@example.com')[2], "'@SUM(A1:A9)");
    assert.equal(byEmail.get('f5@example.com')[2], 'Zoë, "the" Company\nLtd');
    assert.equal(byEmail.get('f5@example.com')[0], ids['f5@example.com']);
    assert.match(byEmail.get('f5@example.com')[5], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    // the list's filters and order
    const pro = parseCsv((await get(s, '/v1/admin/export/customers.csv?plan=metered&sort=email')).text);
    assert.deepEqual(pro.slice(1).map((r) => r[1]), nasty.map(([, e]) => e).sort());
    const found = parseCsv((await get(s, '/v1/admin/export/customers.csv?q=zo%C3%AB')).text);
    assert.deepEqual(found.slice(1).map((r) => r[1]), ['f5@example.com']);
    assert.equal((await get(s, '/v1/admin/export/customers.csv?sort=size')).status, 400);

    // usage, per customer and day
    const u = await s.customer('metered');
    for (let i = 0; i < 3; i++) assert.equal((await s.call('/v1/basic/x', { key: u.key })).status, 200);
    const usage = parseCsv((await get(s, '/v1/admin/export/usage.csv')).text);
    assert.deepEqual(usage[0], ['customer', 'email', 'day', 'metric', 'units']);
    const mine = usage.filter((r) => r[0] === u.customer.id);
    assert.equal(mine.length, 1);
    assert.equal(mine[0][3], 'api_calls');
    assert.equal(mine[0][4], '3');
    assert.match(mine[0][2], /^\d{4}-\d\d-\d\d$/);
    const one = parseCsv((await get(s, `/v1/admin/export/usage.csv?customer=${u.customer.id}`)).text);
    assert.deepEqual(one.slice(1).map((r) => r[4]), ['3']);
    assert.equal((await get(s, '/v1/admin/export/usage.csv?from=2020-01-01&to=2026-01-01')).status, 400); // > 366 days
    assert.equal((await get(s, '/v1/admin/export/usage.csv?customer=cus_nobody')).status, 404);

    // invoices, with their filters; amounts are numbers, not guarded
    assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 })).status, 200);
    await s.adminCall('POST', '/v1/admin/invoices/run', {});
    const inv = parseCsv((await get(s, '/v1/admin/export/invoices.csv?currency=usd')).text);
    assert.deepEqual(inv[0], ['id', 'number', 'customer', 'status', 'currency', 'total', 'period_start', 'period_end', 'created_at', 'finalized_at']);
    const ofU = inv.filter((r) => r[2] === u.customer.id);
    assert.deepEqual(ofU.map((r) => [r[3], r[4], r[5]]), [['draft', 'usd', '10.25']]); // 10.00 + (3 - 2 included) x 0.25
    assert.equal(parseCsv((await get(s, '/v1/admin/export/invoices.csv?status=paid')).text).length, 1); // the header only
    assert.equal((await get(s, '/v1/admin/export/nothing.csv')).status, 404);
    assert.equal((await fetch(`${s.admin}/v1/admin/export/customers.csv`)).status, 401);
  });
});

test('an export longer than one store page (1,000 rows) has every customer once', async () => {
  await withStack({}, async (s) => {
    const made = new Set();
    for (let i = 0; i < 1005; i += 15) {
      const batch = [];
      for (let j = i; j < Math.min(i + 15, 1005); j++)
        batch.push(s.adminCall('POST', '/v1/admin/customers', { email: `p${j}@example.com`, plan: 'free' }).then((r) => made.add(r.json.id)));
      await Promise.all(batch);
    }
    assert.equal(made.size, 1005);
    const rows = parseCsv((await get(s, '/v1/admin/export/customers.csv?sort=email&order=desc')).text).slice(1);
    assert.equal(rows.length, 1005);
    assert.deepEqual(new Set(rows.map((r) => r[0])), made);
    const emails = rows.map((r) => r[1]);
    assert.deepEqual(emails, [...emails].sort().reverse());
  });
});
