// dashboard_lists.e2e.test.mjs - issue 15, the owner's lists in a real browser (Debian's chromium
// driven by playwright-core, on the real binary): the owner signs in, finds a customer by search,
// filters by plan, changes the customer's plan on the customer page and sees the list follow;
// the customers and invoices pages lay out without horizontal scrolling at 1280 and 390 px, with
// no console error and no Content-Security-Policy violation. Assertions read what the owner sees
// (rows, links, labels); waits poll the page with a bound, never sleep.
// Screenshots go to build/test-output/screenshots (and docs/screenshots with UPDATE_SCREENSHOTS=1).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, ADMIN_TOKEN } from '../integration/harness.mjs';
import { launchBrowser, snap, watchConsole, watchCsp } from './support.mjs';

let s, browser;
before(async () => {
  s = new Stack();
  await s.start();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await s?.stop();
});

// The emails in the customers table, once it shows `want` (polled, bounded).
// unordered: the same emails in any order (customers made in the same second tie on the time and
// are then ordered by their random ids).
async function listed(page, want, { unordered = false, timeout = 5000 } = {}) {
  const until = Date.now() + timeout;
  const norm = (a) => JSON.stringify(unordered ? [...a].sort() : a);
  for (;;) {
    const got = await page.locator('[data-testid=customers] tr[data-id] td[data-label=Email]').allTextContents();
    if (norm(got) === norm(want)) return got;
    if (Date.now() > until) throw new Error(`customers listed: ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
    await page.waitForTimeout(50);
  }
}

// No horizontal scrolling: the page is no wider than the viewport.
async function noOverflow(page, what) {
  const [scroll, client] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
  assert.ok(scroll <= client, `${what}: ${scroll}px wide in a ${client}px viewport`);
}

test('the owner finds a customer, filters by plan, changes the plan and sees the list follow; 1280 and 390 px', async () => {
  const make = async (email, name, plan) => {
    const r = await s.adminCall('POST', '/v1/admin/customers', { email, name, plan });
    assert.equal(r.status, 201, r.text);
    return r.json;
  };
  const acme = await make('ops@acme-rockets.example', 'Acme Rockets, "Intergalactic" Ltd', 'free');
  await make('billing@acme-anvils.example', 'Acme Anvils', 'pro');
  await make('zed@zeta.example', 'Zeta Widgets', 'free');
  for (let i = 0; i < 30; i++) await make(`dev${i}@example.com`, `Developer ${i}`, i % 2 ? 'free' : 'starter');

  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const violations = await watchCsp(context);
  const page = await context.newPage();
  const errors = watchConsole(page);

  // sign in on the dashboard, go to the customers page by its link
  await page.goto(`${s.admin}/admin/`);
  await page.fill('#token', ADMIN_TOKEN);
  await page.click('#token-form button[type=submit]');
  await page.waitForSelector('#dash:not(.hidden)');
  await page.getByRole('link', { name: 'Customers' }).click();
  await page.waitForURL(/\/admin\/customers\.html/);
  // the first page: 25 of 33, newest first, with a next page
  await page.locator('[data-testid=customers] tr[data-id]').nth(24).waitFor();
  assert.equal(await page.locator('[data-testid=customers] tr[data-id]').count(), 25);
  assert.equal(await page.getByRole('button', { name: 'Next page' }).isEnabled(), true);
  await page.getByRole('button', { name: 'Next page' }).click();
  await page.getByText('Page 2').waitFor();
  assert.equal(await page.locator('[data-testid=customers] tr[data-id]').count(), 8);
  await noOverflow(page, 'customers at 1280');

  // search: any part of the email or name, any case
  await page.fill('#q', 'ACME');
  await page.getByRole('button', { name: 'Search' }).click();
  await listed(page, ['billing@acme-anvils.example', 'ops@acme-rockets.example'], { unordered: true });
  await page.selectOption('#sort', 'email.asc');
  await listed(page, ['billing@acme-anvils.example', 'ops@acme-rockets.example']);
  // filter by plan
  await page.selectOption('#plan', 'free');
  await listed(page, ['ops@acme-rockets.example']);
  assert.match(page.url(), /q=ACME/);
  assert.match(page.url(), /plan=free/);
  await snap(page, 'admin-customers');

  // open the customer, change the plan
  await page.getByRole('link', { name: 'ops@acme-rockets.example' }).click();
  await page.waitForURL(new RegExp(`/admin/customer\\.html\\?id=${acme.id}&list=`));
  await page.getByTestId('profile').filter({ hasText: 'plan free' }).waitFor();
  await page.selectOption('#plan-select', 'starter');
  await page.getByRole('button', { name: 'Preview change' }).click();
  await page.getByRole('button', { name: 'Confirm change' }).click();
  await page.getByTestId('profile').filter({ hasText: 'plan starter' }).waitFor();
  await page.getByRole('alert').filter({ hasText: 'Now on starter.' }).waitFor();
  await noOverflow(page, 'customer at 1280');

  // back to the list, with its filters: the customer is no longer on the free plan
  await page.getByRole('link', { name: '← Customers' }).click();
  await page.waitForURL(/\/admin\/customers\.html\?/);
  // the list loads after the plans do (the plan filter needs its options): wait for it, then read
  // the filters it was loaded with
  await page.getByText('No customer matches.').waitFor();
  await listed(page, []);
  assert.equal(await page.inputValue('#q'), 'ACME');
  assert.equal(await page.inputValue('#plan'), 'free');
  await page.selectOption('#plan', 'starter');
  await listed(page, ['ops@acme-rockets.example']);
  assert.equal(await page.locator(`[data-testid=customers] tr[data-id="${acme.id}"] td[data-label=Plan]`).textContent(), 'starter');

  // the invoices page, at 1280 and on a phone
  await page.getByRole('link', { name: 'Invoices' }).click();
  await page.waitForURL(/\/admin\/invoices\.html/);
  await page.getByTestId('invoice-totals').getByText('No invoices.').waitFor();
  await noOverflow(page, 'invoices at 1280');

  await page.setViewportSize({ width: 390, height: 844 });
  for (const path of ['/admin/customers.html?q=acme', `/admin/customer.html?id=${acme.id}`, '/admin/invoices.html', '/admin/']) {
    await page.goto(`${s.admin}${path}`);
    await page.waitForLoadState('networkidle');
    await noOverflow(page, `${path} at 390`);
  }
  await page.goto(`${s.admin}/admin/customers.html?q=acme`);
  await listed(page, ['billing@acme-anvils.example', 'ops@acme-rockets.example'], { unordered: true });
  await noOverflow(page, 'customers with results at 390');
  await snap(page, 'admin-customers-phone');

  assert.deepEqual(errors, []);
  assert.deepEqual(violations, [], 'no Content-Security-Policy violation on any page');
  await context.close();
});
