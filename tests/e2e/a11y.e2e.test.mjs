// a11y.e2e.test.mjs - every page of the developer portal and of the owner's dashboard, in Debian's
// chromium at 1280 and 390 px: axe-core (injected with playwright's addScriptTag) finds no
// serious or critical violation, the page is no wider than the screen (no horizontal scrolling),
// and the console shows no error. Pages are checked with their data: a customer with usage, keys
// and an invoice, the API reference from portal.openapi, the usage chart.
//
// The pages' Content-Security-Policy allows no inline script, and axe is injected as one: the
// browser context bypasses the CSP for that (the other e2e files check the CSP itself).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { Stack, ADMIN_TOKEN } from '../integration/harness.mjs';
import { launchBrowser, openPage, root, snap } from './support.mjs';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');
const DEMO_DOC = resolve(root, 'examples/demo-upstream.openapi.yaml');
const EMAIL = 'a11y@example.com', PASSWORD = 'a long enough password';

let s, browser, customerId;
before(async () => {
  s = new Stack({
    testClock: true,
    meteringMetrics: '{api_calls: {name: "API calls", unit: call}, images: {name: "Images", unit: image}}',
    portal: `{openapi: ${JSON.stringify(DEMO_DOC)}, highlight: starter, title: "Acme Data", support_email: help@acme.example,
      terms_url: "https://acme.example/terms", signup: {per_address: 1000/hour, global: 10000/hour, trial_address_days: 0}}`,
  });
  await s.start();
  // a customer with usage, a second key and a closed period's invoice
  const r = await fetch(`${s.admin}/v1/signup`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: EMAIL, password: PASSWORD, plan: 'metered', company: 'A11y Ltd' }) });
  assert.equal(r.status, 201, await r.clone().text());
  const j = await r.json();
  customerId = j.customer.id;
  for (let i = 0; i < 4; i++) assert.equal((await s.call('/v1/basic/x', { key: j.key.secret })).status, 200);
  assert.equal((await s.adminCall('POST', `/v1/admin/customers/${customerId}/keys`, { name: 'a rather long key name for production' })).status, 201);
  assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 })).status, 200);
  assert.equal((await s.adminCall('POST', '/v1/admin/invoices/run', { customer: customerId })).json.created, 1);
  const inv = (await s.adminCall('GET', `/v1/admin/invoices?customer=${customerId}`)).json.data[0];
  assert.equal((await s.adminCall('POST', `/v1/admin/invoices/${inv.id}/finalize`, {})).status, 200);
  assert.equal((await s.call('/v1/basic/x', { key: j.key.secret })).status, 200);
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await s?.stop();
});

// axe's serious and critical violations, one line each with the elements they concern.
async function axe(page) {
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  assert.ok(result.passes.length > 10, 'axe ran its rules'); // not an empty page or a script that never loaded
  return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help}: ${v.nodes.slice(0, 5).map((n) => n.target.join(' ')).join(', ')}`);
}

async function check(page, what, errors) {
  await page.waitForLoadState('networkidle');
  const [scroll, client] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
  const problems = await axe(page);
  assert.ok(scroll <= client, `${what}: ${scroll}px wide in a ${client}px viewport`);
  assert.deepEqual(problems, [], `${what}: axe found\n  ${problems.join('\n  ')}`);
  assert.deepEqual(errors.splice(0), [], `${what}: console errors`);
}

for (const width of [1280, 390]) {
  test(`the portal's pages at ${width} px: no serious or critical axe violation, no sideways scrolling, no console error`, async () => {
    const { context, page, errors } = await openPage(browser, { viewport: { width, height: 900 }, bypassCSP: true });

    await page.goto(`${s.admin}/portal/`);
    await page.waitForSelector('[data-plan="starter"]');
    await check(page, 'pricing', errors);
    // the calculator's two answers: a price, and a plan that would block
    await page.selectOption('#calc-plan', 'free');
    await page.fill('#calc-calls', '5000');
    await page.click('#calc button[type=submit]');
    await page.waitForSelector('[data-testid=quote-blocked]');
    await check(page, 'pricing, a blocked quote', errors);

    await page.goto(`${s.admin}/portal/reference.html`);
    await page.waitForSelector('[data-testid=plan-badges]');
    await check(page, 'API reference', errors);
    await page.goto(`${s.admin}/portal/reset-password.html`);
    await check(page, 'reset password', errors);
    await page.goto(`${s.admin}/portal/confirm-email.html`);
    await page.waitForLoadState('networkidle');
    errors.splice(0); // without a token the page says so, and the failed call is logged
    await check(page, 'confirm email', errors);

    // signed in: the account page, with its keys one card per key on a phone
    await page.goto(`${s.admin}/portal/`);
    await page.fill('#li-email', EMAIL);
    await page.fill('#li-password', PASSWORD);
    await page.click('#login button[type=submit]');
    await page.waitForURL(/app\.html/);
    await page.waitForSelector('#keys tr[data-key]');
    await page.waitForSelector('#invoices a');
    await check(page, 'account', errors);
    const rows = page.locator('[data-testid=my-keys] tr[data-key]');
    assert.equal(await rows.count(), 2);
    const row = rows.first();
    const cells = row.locator('td');
    const boxes = await Promise.all([0, 1, 2, 3, 4].map((i) => cells.nth(i).boundingBox()));
    if (width === 390) {
      // stacked: each field on its own line under the last, as wide as the card, named by its label
      for (let i = 1; i < boxes.length; i++) assert.ok(boxes[i].y >= boxes[i - 1].y + boxes[i - 1].height - 1, `cell ${i} below cell ${i - 1}`);
      assert.ok(boxes.every((b) => b.width > 300), 'each field as wide as the card');
      assert.equal(await cells.nth(2).evaluate((td) => getComputedStyle(td, '::before').content), '"Status"');
      assert.equal(await page.locator('[data-testid=my-keys]').evaluate((t) => t.closest('table').querySelector('thead').getBoundingClientRect().height <= 1), true);
      await rows.first().scrollIntoViewIfNeeded();
      await snap(page, 'account-phone');
      await snap(page.locator('section[aria-labelledby=keys-h]'), 'account-keys-phone'); // the keys section alone
    } else {
      // a table: the fields side by side on one row
      for (let i = 1; i < boxes.length; i++) assert.equal(Math.round(boxes[i].y), Math.round(boxes[0].y), `cell ${i} on the row`);
    }
    await context.close();
  });

  test(`the dashboard's pages at ${width} px: no serious or critical axe violation, no sideways scrolling, no console error`, async () => {
    const { context, page, errors } = await openPage(browser, { viewport: { width, height: 900 }, bypassCSP: true });
    await page.goto(`${s.admin}/admin/`);
    await check(page, 'dashboard sign-in', errors);
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#token-form button[type=submit]');
    await page.waitForSelector('#dash:not(.hidden)');
    await page.waitForSelector('[data-testid=usage-window]:not(:empty)');
    await check(page, 'dashboard', errors);
    await page.goto(`${s.admin}/admin/customers.html`);
    await page.waitForSelector('[data-testid=customers] tr[data-id]');
    await check(page, 'customers', errors);
    await page.goto(`${s.admin}/admin/customer.html?id=${customerId}`);
    await page.waitForSelector('[data-testid=keys] tr');
    await check(page, 'customer', errors);
    await page.goto(`${s.admin}/admin/invoices.html`);
    await page.waitForSelector('[data-testid=invoices] tr');
    await check(page, 'invoices', errors);
    await context.close();
  });
}
