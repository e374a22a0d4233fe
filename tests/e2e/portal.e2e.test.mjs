// portal.e2e.test.mjs - a developer signs up in a real browser (Debian's chromium driven by
// playwright-core), calls the API with the key the page showed, watches usage rise, upgrades,
// signs out and in again; the owner's dashboard shows the new customer and the calls.
// Screenshots of each page go to build/test-output/screenshots (and to docs/screenshots with
// UPDATE_SCREENSHOTS=1).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, ADMIN_TOKEN } from '../integration/harness.mjs';
import { launchBrowser, snap, waitForText, watchConsole, watchCsp } from './support.mjs';

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

// Console errors and uncaught exceptions (support.mjs), and which call answered 401, if any
function watchConsoleAnd401s(page) {
  const errors = watchConsole(page);
  page.on('response', (r) => { if (r.status() === 401) errors.push(`401 from ${new URL(r.url()).pathname}`); });
  return errors;
}

// Every page is served under the strict policy.
function assertCsp(response) {
  const h = response.headers();
  assert.match(h['content-security-policy'], /script-src 'self'; style-src 'self';/);
  assert.match(h['content-security-policy'], /frame-ancestors 'none'/);
  assert.equal(h['x-content-type-options'], 'nosniff');
}

test('sign up, use the key, watch usage, upgrade, sign out and in; the owner sees it', async () => {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const violations = await watchCsp(context);
  const page = await context.newPage();
  const errors = watchConsoleAnd401s(page);
  const email = `e2e-${Date.now()}@example.com`;

  assertCsp(await page.goto(`${s.admin}/portal/`));
  await page.waitForSelector('[data-plan="free"]');
  assert.match(await page.textContent('[data-plan="starter"]'), /\$49per month/);
  await page.selectOption('#calc-plan', 'starter');
  await page.fill('#calc-calls', '123456');
  await page.click('#calc button[type=submit]');
  await page.waitForSelector('[data-testid=quote-total]');
  assert.equal(await page.textContent('[data-testid=quote-total]'), '$122.46');
  await snap(page, 'pricing-signup');

  await page.fill('#su-email', email);
  await page.fill('#su-company', 'E2E Inc');
  await page.fill('#su-password', 'a long enough password');
  await page.selectOption('#su-plan', 'free');
  await page.click('#signup button[type=submit]');
  await page.waitForSelector('[data-testid=secret]:not(:empty)');
  const key = (await page.textContent('[data-testid=secret]')).trim();
  assert.match(key, /^tg_live_\w{49}$/);
  await snap(page, 'signup-key');

  for (let i = 0; i < 3; i++) assert.equal((await s.call('/v1/basic/geocode?q=Paris', { key })).status, 200);
  assertCsp(await page.goto(`${s.admin}/portal/app.html`));
  await page.waitForSelector('[data-metric=api_calls]');
  assert.match(await page.textContent('[data-metric=api_calls]'), /3 used of 1,000 included/);
  assert.equal(await page.textContent('[data-testid=estimate]'), '$0.00');
  assert.match(await page.textContent('[data-testid=estimate-lines]'), /Nothing to pay so far: no base fee this period and no usage beyond the allowance\./);
  assert.match(await page.textContent('[data-testid=estimate-note]'), /Usage counted up to now; the bill closes on \w+/);
  await s.call('/v1/basic/x', { key });
  await waitForText(page, '[data-metric=api_calls]', /4 used/, 8000);
  assert.match(await page.textContent('[data-testid=endpoints]'), /GET \/v1\/basic\/x\s*api_calls\s*1/);
  await page.selectOption('#range', '90');
  await snap(page, 'account');

  // upgrade now: the new limits apply to the key at once
  assert.equal((await s.call('/v1/vision/tag', { key })).status, 403);
  await page.selectOption('#plan-select', 'pro');
  await page.click('#plan-form button[type=submit]');
  await page.waitForSelector('#confirm-plan');
  assert.match(await page.textContent('[data-testid=plan-preview]'), /free → pro: \$199\/month, 500 calls\/minute, 500,000 api_calls\. Takes effect now\./);
  await snap(page, 'plan-preview');
  await page.click('#confirm-plan');
  await waitForText(page, '[data-testid=account]', /plan pro/);
  // the estimate now says it holds the base fee (its own line, with its amount)
  await waitForText(page, '[data-testid=estimate-lines]', /plan, (\d+ of \d+ days[^:]*|1 month): \$[\d,.]+/i);
  assert.equal((await s.call('/v1/vision/tag', { key })).status, 200);
  assert.equal((await s.call('/v1/basic/x', { key })).headers.get('x-ratelimit-limit'), '500');

  // a second key from the page, shown once
  await page.fill('#key-name', 'ci');
  await page.click('#key-form button[type=submit]');
  await page.waitForSelector('[data-testid=new-secret]:not(.hidden)');
  assert.match(await page.textContent('[data-testid=new-secret]'), /tg_live_/);

  await page.click('#logout');
  await page.waitForURL(/\/portal\/$/);
  await page.fill('#li-email', email);
  await page.fill('#li-password', 'a long enough password');
  await page.click('#login button[type=submit]');
  await page.waitForURL(/app\.html/);
  await page.waitForSelector('[data-metric=api_calls]');
  assert.match(await page.textContent('[data-testid=account]'), new RegExp(email));

  // the owner's dashboard: signed in by an HttpOnly cookie for /v1/admin, nothing in storage
  const owner = await context.newPage();
  const ownerErrors = watchConsoleAnd401s(owner);
  assertCsp(await owner.goto(`${s.admin}/admin/`));
  await owner.fill('#token', ADMIN_TOKEN);
  await owner.click('#token-form button[type=submit]');
  await owner.waitForSelector('#dash:not(.hidden)');
  const stored = await owner.evaluate(() => JSON.stringify([{ ...sessionStorage }, { ...localStorage }, document.cookie]));
  assert.ok(!stored.includes(ADMIN_TOKEN), 'the admin token is not kept by the page');
  const adminCookie = (await context.cookies(`${s.admin}/v1/admin/dashboard`)).find((c) => c.name === 'tg_admin');
  assert.ok(adminCookie && adminCookie.httpOnly && adminCookie.sameSite === 'Strict' && adminCookie.path === '/v1/admin');
  assert.deepEqual(await owner.evaluate(() => [...document.scripts].map((x) => new URL(x.src).pathname)),
    ['/admin/vendor/chart.min.js', '/admin/admin.js']); // none of the portal's scripts
  assert.equal(await owner.textContent('[data-testid=customers]'), '1');
  assert.equal(await owner.textContent('[data-testid=calls]'), '6'); // 4 on free, then a vision call and one more on pro
  assert.match(await owner.textContent('[data-testid=top-calls]'), new RegExp(email));
  assert.match(await owner.textContent('[data-testid=asof]'), /as of [A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d\d [AP]M /);
  await snap(owner, 'dashboard');

  // the customer's page: suspend stops the key at once, resume restores it
  await owner.click(`[data-testid=top-calls] a`);
  await owner.waitForSelector('[data-testid=keys] tr');
  assert.match(await owner.textContent('[data-testid=profile]'), /plan pro/);
  await owner.click('#suspend');
  await waitForText(owner, '[data-testid=profile]', /suspended/);
  assert.equal((await s.call('/v1/basic/x', { key })).status, 402);
  await snap(owner, 'customer');
  await owner.click('#resume');
  await waitForText(owner, '[data-testid=profile]', /active/);
  assert.equal((await s.call('/v1/basic/x', { key })).status, 200);

  // the dashboard survives a reload (the cookie), and signing out ends it
  await owner.goto(`${s.admin}/admin/`);
  await owner.waitForSelector('#dash:not(.hidden)');
  await owner.click('#signout');
  await owner.waitForSelector('#login-box:not(.hidden)');
  assert.equal(await owner.evaluate(() => fetch('/v1/admin/session').then((r) => r.json()).then((j) => j.signed_in)), false);
  assert.equal((await s.adminCall('GET', '/v1/admin/dashboard', undefined, null)).status, 401);

  // phone width: the pages still lay out
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${s.admin}/portal/`);
  await page.waitForSelector('[data-plan="free"]');
  await snap(page, 'pricing-signup-phone');

  assert.deepEqual(errors, []);
  assert.deepEqual(ownerErrors, []);
  assert.deepEqual(violations, [], 'no Content-Security-Policy violation on any page');
  await context.close();
});

// The keys table at desktop and phone widths: a rotated key's replacement is named apart, the old
// one says when it stops working and can still be revoked, and a shown secret goes once its key
// is revoked.
for (const width of [1280, 390]) {
  test(`keys at ${width} px: rotate, both revocable, the expiry shown, the secret gone after revoke`, async () => {
    const context = await browser.newContext({ viewport: { width, height: 900 } });
    const violations = await watchCsp(context);
    const page = await context.newPage();
    const errors = watchConsoleAnd401s(page);
    page.on('dialog', (d) => d.accept());
    assertCsp(await page.goto(`${s.admin}/portal/`));
    await page.waitForSelector('[data-plan="free"]');
    await page.fill('#su-email', `keys-${width}-${Date.now()}@example.com`);
    await page.fill('#su-password', 'a long enough password');
    await page.selectOption('#su-plan', 'free');
    await page.click('#signup button[type=submit]');
    await page.waitForSelector('[data-testid=secret]:not(:empty)');
    const signupKey = (await page.textContent('[data-testid=secret]')).trim();
    assertCsp(await page.goto(`${s.admin}/portal/app.html`));
    await page.waitForSelector('#keys tr');
    // "Getting started": the gateway's real address and a call the free plan includes, which works
    // with the key put in for the placeholder
    await waitForText(page, '[data-testid=start-curl]', /^curl /);
    assert.equal(await page.textContent('[data-testid=gateway-url]'), s.gw);
    const curl = await page.textContent('[data-testid=start-curl]');
    const m = curl.match(/^curl -H "Authorization: Bearer YOUR_API_KEY" "([^"]+)"$/);
    assert.ok(m, curl);
    assert.ok(m[1].startsWith(`${s.gw}/v1/basic/`), m[1]);
    assert.equal((await fetch(m[1], { headers: { authorization: `Bearer ${signupKey}` } })).status, 200);

    await page.fill('#key-name', 'ci');
    await page.click('#key-form button[type=submit]');
    await waitForText(page, '[data-testid=new-secret]', /^ci: tg_live_/);
    const oldId = await page.getAttribute('[data-testid=new-secret]', 'data-key-id');
    await page.click(`tr[data-key="${oldId}"] button:has-text("Rotate")`);
    const day = new Date().toISOString().slice(0, 10);
    await waitForText(page, '[data-testid=new-secret]', new RegExp(`^ci \\(rotated ${day}\\): tg_live_`));
    const newId = await page.getAttribute('[data-testid=new-secret]', 'data-key-id');
    assert.notEqual(newId, oldId);
    await waitForText(page, `tr[data-key="${oldId}"]`, /expiring — stops working/);
    // the expiry, as the page's own formatter writes it in the viewer's zone
    const oldKey = (await s.adminCall('GET', `/v1/admin/keys/${oldId}`)).json;
    const shown = await page.evaluate((iso) => import('/portal/format.js').then((f) => f.dateTime(iso)), oldKey.expires_at);
    assert.ok((await page.textContent(`tr[data-key="${oldId}"]`)).includes(shown), `the expiry ${shown}`);
    assert.match(await page.textContent(`tr[data-key="${newId}"]`), new RegExp(`ci \\(rotated ${day}\\)`));
    assert.equal(await page.locator(`tr[data-key="${oldId}"] button:has-text("Rotate")`).count(), 0);
    await snap(page, `keys-rotated-${width}`);

    // the old key, in its grace period, is revoked from the page; the new key's secret stays
    await page.click(`tr[data-key="${oldId}"] button:has-text("Revoke")`);
    await waitForText(page, `tr[data-key="${oldId}"]`, /revoked/);
    assert.match(await page.textContent('[data-testid=new-secret]'), /tg_live_/);
    // revoking the new key takes its secret off the page
    await page.click(`tr[data-key="${newId}"] button:has-text("Revoke")`);
    await waitForText(page, `tr[data-key="${newId}"]`, /revoked/);
    await page.waitForSelector('[data-testid=new-secret].hidden', { state: 'attached' });
    assert.equal(await page.textContent('[data-testid=new-secret]'), '');

    // self-service cancellation, at the period's end, after a confirm step; a change of mind keeps it
    await page.click('#cancel-sub');
    await page.waitForSelector('#confirm-cancel');
    await page.click('[data-testid=cancel-note] button.secondary');
    await waitForText(page, '[data-testid=cancel-note]', /^$/);
    await page.click('#cancel-sub');
    await page.waitForSelector('#confirm-cancel');
    assert.match(await page.textContent('[data-testid=cancel-note]'), /keep working until/);
    await page.click('#confirm-cancel');
    await waitForText(page, '[data-testid=account]', /Cancels on /);
    const me = (await page.evaluate(() => fetch('/v1/me').then((r) => r.json())));
    assert.ok(me.cancel_at, 'cancel_at set');
    await page.waitForSelector('#cancel-sub.hidden', { state: 'attached' });
    await snap(page, `cancel-${width}`);
    // until the period ends, "Keep my subscription" undoes it
    await page.getByRole('button', { name: 'Keep my subscription' }).click();
    await waitForText(page, '[data-testid=cancel-note]', /Your subscription continues/);
    await page.waitForSelector('#resume-sub.hidden', { state: 'attached' });
    await page.waitForSelector('#cancel-sub:not(.hidden)');
    assert.doesNotMatch(await page.textContent('[data-testid=account]'), /Cancels on /);
    assert.equal((await page.evaluate(() => fetch('/v1/me').then((r) => r.json()))).cancel_at, null);

    assert.deepEqual(errors, []);
    assert.deepEqual(violations, [], 'no Content-Security-Policy violation');
    await context.close();
  });
}
