// dashboard_usage.e2e.test.mjs - the owner's usage chart (issue 15) in Debian's chromium: a range
// of the last 7, 30 or 90 days or custom dates (GET /v1/admin/dashboard ?from&to), one line per
// metric under its display name (metering.metrics), not its id, and the window and totals in
// words beside the chart. Screenshot: docs/screenshots/dashboard-usage.png (UPDATE_SCREENSHOTS=1).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, ADMIN_TOKEN } from '../integration/harness.mjs';
import { launchBrowser, openPage, snap } from './support.mjs';

let s, browser;
before(async () => {
  s = new Stack({ meteringMetrics: '{api_calls: {name: "API calls", unit: call}, images: {name: "Images analysed", unit: image}}' });
  await s.start();
  const { key } = await s.customer('pro');
  for (let i = 0; i < 5; i++) assert.equal((await s.call('/v1/basic/x', { key })).status, 200);
  for (let i = 0; i < 2; i++) assert.equal((await s.call('/v1/vision/classify', { key, method: 'POST', body: 'x' })).status, 200);
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await s?.stop();
});

// What the chart draws: its days and each line's label and total.
const drawn = (page) => page.evaluate(() => {
  const c = window.Chart.getChart(document.getElementById('daily'));
  return { days: c.data.labels, lines: c.data.datasets.map((d) => [d.label, d.data.reduce((a, b) => a + b, 0)]) };
});

// Polls until the chart shows `n` days (each range reloads the figures).
async function chartDays(page, n) {
  const until = Date.now() + 5000;
  for (;;) {
    const d = await drawn(page).catch(() => null);
    if (d && d.days.length === n) return d;
    if (Date.now() > until) throw new Error(`the chart never showed ${n} days: ${JSON.stringify(d)}`);
    await page.waitForTimeout(50);
  }
}

test('the usage chart: 7, 30, 90 days or custom dates, each metric under its display name', async () => {
  const { context, page, errors, violations } = await openPage(browser, { viewport: { width: 1280, height: 900 }, locale: 'en-US' });
  const asked = [];
  page.on('request', (r) => { if (r.url().includes('/v1/admin/dashboard')) asked.push(new URL(r.url()).search); });
  await page.goto(`${s.admin}/admin/`);
  await page.fill('#token', ADMIN_TOKEN);
  await page.click('#token-form button[type=submit]');
  await page.waitForSelector('#dash:not(.hidden)');

  const day = (t) => new Date(t).toISOString().slice(0, 10);
  const today = day(Date.now()), D = 86400e3;
  // 30 days by default, ending today; the display names, never the ids
  let d = await chartDays(page, 30);
  assert.equal(d.days.at(-1), today);
  assert.deepEqual(d.lines, [['API calls', 7], ['Images analysed', 2]]);
  assert.match(await page.textContent('[data-testid=usage-window]'), /\(UTC, 30 days\): 7 API calls, 2 Images analysed\./);
  assert.doesNotMatch(await page.textContent('[data-testid=usage-window]'), /api_calls|images\b/);

  await page.selectOption('#range', '7');
  d = await chartDays(page, 7);
  assert.equal(d.days[0], day(Date.parse(today) - 6 * D));
  assert.equal(asked.at(-1), `?from=${day(Date.parse(today) - 6 * D)}&to=${today}`);
  await page.selectOption('#range', '90');
  d = await chartDays(page, 90);
  assert.deepEqual(d.lines, [['API calls', 7], ['Images analysed', 2]]);

  // custom dates: the fields appear with the current window, and Show asks for them
  await page.selectOption('#range', 'custom');
  assert.equal(await page.isVisible('#range-from'), true);
  const from = day(Date.parse(today) - 2 * D), to = day(Date.parse(today) - D);
  await page.fill('#range-from', from);
  await page.fill('#range-to', to);
  await page.click('#range-form button[type=submit]');
  d = await chartDays(page, 2);
  assert.deepEqual(d.days, [from, to]);
  assert.deepEqual(d.lines, []); // no usage before today
  assert.match(await page.textContent('[data-testid=usage-window]'), /\(UTC, 2 days\): no usage\./);
  assert.equal(asked.at(-1), `?from=${from}&to=${to}`);
  // dates the API refuses are said, and the chart keeps what it showed
  await page.fill('#range-from', to);
  await page.fill('#range-to', from);
  await page.click('#range-form button[type=submit]');
  await page.getByText(`from: ${to} is after to: ${from}.`).waitFor();
  errors.splice(0).forEach((e) => assert.match(e, /400/)); // the refused call, logged by the browser

  await page.fill('#range-from', day(Date.parse(today) - 13 * D));
  await page.fill('#range-to', today);
  await page.click('#range-form button[type=submit]');
  await chartDays(page, 14);
  assert.equal((await page.textContent('#msg')).trim(), ''); // the refusal is gone with a good range
  await page.locator('#usage-h').scrollIntoViewIfNeeded();
  await snap(page, 'dashboard-usage');
  assert.deepEqual(errors, []);
  assert.deepEqual(violations, [], 'no Content-Security-Policy violation');
  await context.close();
});
