// a11y.e2e.test.mjs - every page of the developer portal and of the owner's dashboard, and the
// states a user passes through on them (the portal's plan-change preview, cancellation confirm
// step and new key's secret, Try it's answer, a refused sign-in on either, the dashboard's plan
// change's preview and answer, a credit refused and added, the cancellation's confirm step and a
// scheduled cancellation, the printable invoice from either), in
// Debian's chromium at 1280 and 390 px: axe-core finds no serious or critical violation, the page
// is no wider than the screen (no horizontal scrolling), and the console shows no error and the
// Content-Security-Policy no violation. Pages are checked with their data: a customer with usage,
// keys and an invoice, the API reference from portal.openapi, the usage chart.
//
// The pages run under their real CSP: axe is run through the DevTools protocol (support.mjs,
// axeProblems), which the CSP does not govern, so a violation the page itself causes is seen.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { Stack, ADMIN_TOKEN } from '../integration/harness.mjs';
import { launchBrowser, openPage, checkPage, waitForText, root, snap } from './support.mjs';

const DEMO_DOC = resolve(root, 'examples/demo-upstream.openapi.yaml');
// a long address and a company name that is one long word (a German compound), as real customers
// have: shown on the dashboard's customer page and the invoice, they must wrap on a phone
const EMAIL = 'accounts-payable.department@a-rather-long-company-domain.example', PASSWORD = 'a long enough password';
const COMPANY = 'Donaudampfschiffahrtselektrizitätenhauptbetriebswerkbauunterbeamtengesellschaft AG';

let s, browser, customerId, secret, invoiceId;
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
    body: JSON.stringify({ email: EMAIL, password: PASSWORD, plan: 'metered', company: COMPANY }) });
  assert.equal(r.status, 201, await r.clone().text());
  const j = await r.json();
  customerId = j.customer.id;
  secret = j.key.secret;
  for (let i = 0; i < 4; i++) assert.equal((await s.call('/v1/basic/x', { key: j.key.secret })).status, 200);
  assert.equal((await s.adminCall('POST', `/v1/admin/customers/${customerId}/keys`, { name: 'a rather long key name for production' })).status, 201);
  assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 })).status, 200);
  assert.equal((await s.adminCall('POST', '/v1/admin/invoices/run', { customer: customerId })).json.created, 1);
  const inv = (await s.adminCall('GET', `/v1/admin/invoices?customer=${customerId}`)).json.data[0];
  assert.equal((await s.adminCall('POST', `/v1/admin/invoices/${inv.id}/finalize`, {})).status, 200);
  invoiceId = inv.id;
  assert.equal((await s.call('/v1/basic/x', { key: j.key.secret })).status, 200);
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await s?.stop();
});

// A refused sign-in (the form filled with a wrong secret): its message shown in msg and checked.
// The console has the browser's own "Failed to load resource: ... 401" for the refused call,
// taken out of errors after checking that it is that and nothing else.
async function checkRefusedSignIn(page, { fields, submit, msg }, what, watch) {
  for (const [selector, value] of Object.entries(fields)) await page.fill(selector, value);
  await page.click(submit);
  await waitForText(page, msg, /\S/);
  await page.waitForLoadState('networkidle');
  const refused = watch.errors.splice(0);
  assert.ok(refused.length > 0 && refused.every((e) => e.includes('status of 401')), `only the refused call: ${refused.join('; ')}`);
  await checkPage(page, what, watch);
}

// The printable invoice at path (the portal's link or the dashboard's), naming the long company.
async function checkInvoice(page, path, what, watch) {
  await page.goto(`${s.admin}${path}`);
  await page.waitForSelector('table');
  assert.ok((await page.textContent('body')).includes(COMPANY), `${what} names the company`);
  await checkPage(page, what, watch);
}

const keyCount = async () => (await s.adminCall('GET', `/v1/admin/customers/${customerId}/keys?limit=100`)).json.data.length;

for (const width of [1280, 390]) {
  test(`the portal's pages at ${width} px: no serious or critical axe violation, no sideways scrolling, no console error`, async () => {
    const { context, page, ...watch } = await openPage(browser, { viewport: { width, height: 900 } });

    await page.goto(`${s.admin}/portal/`);
    await page.waitForSelector('[data-plan="starter"]');
    await checkPage(page, 'pricing', watch);
    // the calculator's two answers: a price, and a plan that would block
    await page.selectOption('#calc-plan', 'free');
    await page.fill('#calc-calls', '5000');
    await page.click('#calc button[type=submit]');
    await page.waitForSelector('[data-testid=quote-blocked]');
    await checkPage(page, 'pricing, a blocked quote', watch);

    await page.goto(`${s.admin}/portal/reference.html`);
    await page.waitForSelector('[data-testid=plan-badges]');
    await checkPage(page, 'API reference', watch);
    await page.goto(`${s.admin}/portal/reset-password.html`);
    await checkPage(page, 'reset password', watch);
    await page.goto(`${s.admin}/portal/confirm-email.html`);
    await page.waitForLoadState('networkidle');
    watch.errors.splice(0); // without a token the page says so, and the failed call is logged
    await checkPage(page, 'confirm email', watch);

    // a refused sign-in: the message, read out (role=alert), and nothing else wrong
    await page.goto(`${s.admin}/portal/`);
    await checkRefusedSignIn(page, { fields: { '#li-email': EMAIL, '#li-password': 'not the password at all' },
      submit: '#login button[type=submit]', msg: '#login-msg' }, 'pricing, a refused sign-in', watch);

    // signed in: the account page, with its keys one card per key on a phone
    await page.goto(`${s.admin}/portal/`);
    await page.fill('#li-email', EMAIL);
    await page.fill('#li-password', PASSWORD);
    await page.click('#login button[type=submit]');
    await page.waitForURL(/app\.html/);
    await page.waitForSelector('#keys tr[data-key]');
    await page.waitForSelector('#invoices a');
    await checkPage(page, 'account', watch);
    const rows = page.locator('[data-testid=my-keys] tr[data-key]');
    assert.equal(await rows.count(), await keyCount());
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

    // the states the account page passes through: a plan change's preview (nothing changed
    // until confirmed), the cancellation's confirm step (kept), a new key's secret
    await page.selectOption('#plan-select', 'starter');
    await page.click('#plan-form button[type=submit]');
    await page.waitForSelector('[data-testid=plan-preview]');
    await page.waitForSelector('#confirm-plan');
    await checkPage(page, 'account, a plan change previewed', watch);
    await page.click('#cancel-sub');
    await page.waitForSelector('#confirm-cancel');
    await checkPage(page, 'account, cancellation to confirm', watch);
    await page.click('[data-testid=cancel-note] button.secondary');
    await page.fill('#key-name', `a11y at ${width} px`);
    await page.click('#key-form button[type=submit]');
    await page.waitForSelector('[data-testid=new-secret]:not(.hidden)');
    await checkPage(page, 'account, a new key\'s secret', watch);

    // the printable invoice, as the account page links it
    await checkInvoice(page, `/v1/me/invoices/${invoiceId}/html`, 'printable invoice (portal)', watch);

    // Try it with its answer shown
    await page.goto(`${s.admin}/portal/reference.html`);
    await page.waitForSelector('#try-key:not(.hidden)');
    const prefix = await page.$$eval('#key-select option', (os, sec) => os.map((o) => o.value).find((v) => sec.startsWith(v)), secret);
    await page.selectOption('#key-select', prefix);
    await page.fill('#key-secret', secret);
    await page.click('#try-key button[type=submit]');
    await waitForText(page, '#key-msg', /Try it now calls the gateway/);
    // a GET with its parameters, and a POST with its body's text area, both answered
    for (const op of ['[data-op="GET /v1/basic/geocode"]', '[data-op="POST /v1/vision/classify"]']) {
      await page.click(`${op} .try-box summary`);
      await page.click(`${op} .try button[type=submit]`);
      await waitForText(page, `${op} [data-testid=try-status]`, /^200$/);
    }
    await checkPage(page, 'API reference, Try it answered', watch);
    await context.close();
  });

  test(`the dashboard's pages at ${width} px: no serious or critical axe violation, no sideways scrolling, no console error`, async () => {
    const { context, page, ...watch } = await openPage(browser, { viewport: { width, height: 900 } });
    await page.goto(`${s.admin}/admin/`);
    await checkPage(page, 'dashboard sign-in', watch);
    await checkRefusedSignIn(page, { fields: { '#token': 'not-the-admin-token-at-all' }, submit: '#token-form button[type=submit]',
      msg: '#msg' }, 'dashboard, a refused sign-in', watch);
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#token-form button[type=submit]');
    await page.waitForSelector('#dash:not(.hidden)');
    await page.waitForSelector('[data-testid=usage-window]:not(:empty)');
    await checkPage(page, 'dashboard', watch);
    await page.goto(`${s.admin}/admin/customers.html`);
    await page.waitForSelector('[data-testid=customers] tr[data-id]');
    await checkPage(page, 'customers', watch);
    await page.goto(`${s.admin}/admin/customer.html?id=${customerId}`);
    await page.waitForSelector('[data-testid=keys] tr');
    assert.ok((await page.textContent('main')).includes(COMPANY), 'the customer page names the company');
    await checkPage(page, 'customer', watch);
    // a plan change's preview, then its answer (put back through the API after, so both widths
    // start alike)
    await page.selectOption('#plan-select', 'starter');
    await page.click('#plan-form button[type=submit]');
    await waitForText(page, '[data-testid=plan-note]', /metered → starter/);
    await checkPage(page, 'customer, a plan change previewed', watch);
    await page.click('#confirm-plan');
    await waitForText(page, '#msg', /\S/);
    await checkPage(page, 'customer, a plan changed', watch);
    // a credit refused (an error in the alert, the field marked invalid), then added and listed
    // on the upcoming invoice
    await page.fill('#credit-desc', 'Goodwill credit for the outage');
    await page.fill('#credit-amount', '1.005');
    await page.click('#credit-form button[type=submit]');
    await waitForText(page, '#msg', /^Credit: a positive amount/);
    await checkPage(page, 'customer, a credit refused', watch);
    await page.fill('#credit-amount', '2.50');
    await page.click('#credit-form button[type=submit]');
    await waitForText(page, '#msg', /^Credit of /);
    await waitForText(page, '[data-testid=upcoming]', /Goodwill credit for the outage/);
    await checkPage(page, 'customer, a credit added', watch);
    // the cancellation's confirm step, a cancellation scheduled, and the subscription kept
    await page.click('#cancel-sub');
    await waitForText(page, '[data-testid=cancel-note]', /Now: access stops/);
    await checkPage(page, "customer, the cancellation's confirm step", watch);
    await page.click('#confirm-cancel-end');
    await waitForText(page, '[data-testid=sub-state]', /^Cancels at the end/);
    await checkPage(page, 'customer, a cancellation scheduled', watch);
    await page.click('#keep-sub');
    await waitForText(page, '[data-testid=sub-state]', /^Renews on/);
    // starter costs more than metered: the upgrade took effect at once, and going back is a
    // downgrade, which waits for the period's end unless made now
    const back = await s.adminCall('PATCH', `/v1/admin/customers/${customerId}`, { plan: 'metered', when: 'now' });
    assert.equal(back.status, 200, JSON.stringify(back.json));
    assert.equal(back.json.plan, 'metered');
    assert.ok(!back.json.pending_plan, 'no plan change left pending');
    await checkInvoice(page, `/v1/admin/invoices/${invoiceId}/html`, 'printable invoice (dashboard)', watch);
    await page.goto(`${s.admin}/admin/invoices.html`);
    await page.waitForSelector('[data-testid=invoices] tr');
    await checkPage(page, 'invoices', watch);
    await context.close();
  });
}

// The check fails on what the CSP refuses: a page's inline script is refused, reported as a
// violation and as a console error, and checkPage names it.
test('a Content-Security-Policy violation fails the check', async () => {
  const { context, page, ...watch } = await openPage(browser, { viewport: { width: 1280, height: 900 } });
  await page.goto(`${s.admin}/portal/reset-password.html`);
  await checkPage(page, 'reset password', watch);
  await page.evaluate(() => {
    const script = document.createElement('script');
    script.textContent = 'document.title = "ran"';
    document.body.append(script);
  });
  assert.notEqual(await page.title(), 'ran', 'the CSP refused the inline script');
  await assert.rejects(checkPage(page, 'reset password, an inline script', watch), /Content-Security-Policy violations[\s\S]*script-src/);
  await context.close();
});
