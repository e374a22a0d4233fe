// display.e2e.test.mjs - issue 15, "the details", in a real browser at 1280 and 390 px: metrics
// under their display names (metering.metrics), money formatted in its currency ("$49",
// "€0.0005 per call") on the pricing page, the calculator, the account page and the owner's
// dashboard, times in the viewer's time zone, and the portal's branding (title, a logo from
// another origin that the Content-Security-Policy lets in, the primary colour, footer links),
// with no console error and no CSP violation.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { Stack, ADMIN_TOKEN } from '../integration/harness.mjs';
import { launchBrowser, snap, waitForText, watchConsole, watchCsp } from './support.mjs';

const LOGO = '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="32"><rect width="64" height="32" fill="#0a7d5a"/></svg>';

let s, browser, logoServer, logoOrigin;
before(async () => {
  // the logo lives on another origin, as on a CDN
  logoServer = createServer((req, res) => {
    res.writeHead(req.url === '/brand/logo.svg' ? 200 : 404, { 'content-type': 'image/svg+xml' });
    res.end(req.url === '/brand/logo.svg' ? LOGO : '');
  });
  await new Promise((r) => logoServer.listen(0, '127.0.0.1', r));
  logoOrigin = `http://127.0.0.1:${logoServer.address().port}`;
  s = new Stack({
    meteringMetrics: '{api_calls: {name: "API calls", unit: call}, images: {name: "Images", unit: image}}',
    portal: `{title: "Acme Data", logo: "${logoOrigin}/brand/logo.svg", primary_color: "#0a7d5a",
      support_email: help@acme.example, terms_url: "https://acme.example/terms", privacy_url: "https://acme.example/privacy",
      signup: {per_address: 1000/hour, global: 10000/hour, trial_address_days: 0}}`,
    morePlans: `  euro:
    name: Euro
    price: "19"
    currency: eur
    included: {api_calls: 1000}
    on_quota: bill
    charges: [{metric: api_calls, model: per_unit, unit_price: "0.0005"}]
`,
  });
  await s.start();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await s?.stop();
  await new Promise((r) => (logoServer ? logoServer.close(r) : r()));
});

async function checkBranding(page, response) {
  // the logo's origin, and only it, is added to img-src
  assert.match(response.headers()['content-security-policy'], new RegExp(`img-src 'self' data: ${logoOrigin.replace(/[.:/]/g, '\\$&')}; `));
  assert.match(response.headers()['content-security-policy'], /script-src 'self'; style-src 'self';/);
  const brand = page.getByTestId('brand');
  await brand.waitFor();
  assert.equal((await brand.textContent()).trim(), 'Acme Data');
  const img = brand.locator('img');
  assert.equal(await img.getAttribute('src'), `${logoOrigin}/brand/logo.svg`);
  assert.equal(await img.getAttribute('alt'), 'Acme Data logo');
  for (let i = 0; i < 100 && !(await img.evaluate((el) => el.complete && el.naturalWidth > 0)); i++) await page.waitForTimeout(50);
  assert.equal(await img.evaluate((el) => el.naturalWidth), 64); // loaded, not blocked
  assert.match(await page.title(), / — Acme Data$/);
  // the primary colour through the --accent custom property
  assert.equal(await page.locator('button[type=submit]').first().evaluate((el) => getComputedStyle(el).backgroundColor), 'rgb(10, 125, 90)');
  const footer = page.getByTestId('brand-footer');
  assert.equal(await footer.getByRole('link', { name: 'Support: help@acme.example' }).getAttribute('href'), 'mailto:help@acme.example');
  assert.equal(await footer.getByRole('link', { name: 'Terms of service' }).getAttribute('href'), 'https://acme.example/terms');
  assert.equal(await footer.getByRole('link', { name: 'Privacy policy' }).getAttribute('href'), 'https://acme.example/privacy');
}

test('GET /v1/plans carries the display names and the branding', async () => {
  const r = await fetch(`${s.admin}/v1/plans`).then((x) => x.json());
  assert.deepEqual(r.metrics.api_calls, { name: 'API calls', unit: 'call' });
  assert.deepEqual(r.metrics.images, { name: 'Images', unit: 'image' });
  assert.equal(r.portal.title, 'Acme Data');
  assert.equal(r.portal.primary_color, '#0a7d5a');
  // money stays exact decimal text in the API
  assert.equal(r.data.find((p) => p.id === 'euro').charges[0].unit_price, '0.0005');
});

for (const width of [1280, 390]) {
  test(`at ${width} px: display names, money in its currency, local times and the branding`, async () => {
    const context = await browser.newContext({ viewport: { width, height: 900 }, locale: 'en-US', timezoneId: 'Asia/Tokyo' });
    const violations = await watchCsp(context);
    const errors = [];
    const page = await context.newPage();
    watchConsole(page, errors);

    // the pricing page
    const res = await page.goto(`${s.admin}/portal/`);
    await page.waitForSelector('[data-plan="euro"]');
    await checkBranding(page, res);
    const starter = await page.textContent('[data-plan="starter"]');
    assert.equal(await page.textContent('[data-plan="starter"] [data-testid=price]'), '$49');
    assert.match(starter, /Includes 50,000 API calls\./);
    assert.match(starter, /\$0\.001 per call beyond the included/);
    assert.equal(await page.textContent('[data-plan="euro"] [data-testid=price]'), '€19');
    assert.match(await page.textContent('[data-plan="euro"]'), /€0\.0005 per call beyond the included/);
    assert.doesNotMatch(await page.textContent('#plans'), /USD|EUR|api_calls|\d\.\d\d [A-Z]{3}/);

    // the calculator: the metric's name on the field and the lines, money in the plan's currency
    assert.equal(await page.textContent('label[for="calc-calls"]'), 'API calls a month');
    await page.selectOption('#calc-plan', 'euro');
    await page.fill('#calc-calls', '101000');
    await page.click('#calc button[type=submit]');
    await waitForText(page, '[data-testid=quote-total]', /^€69\.00$/); // 19 + 100,000 × 0.0005
    // the line reads the metric's name and unit, the allowance grouped (never "api_calls above 1000 (per unit)")
    assert.match(await page.textContent('#calc-out'), /API calls above 1,000 included \(per call\)\s*€50\.00/);
    if (width === 1280) await snap(page, 'pricing-branded');

    // sign up on the euro plan, call the API, and read the account page
    const email = `display-${width}-${Date.now()}@example.com`;
    await page.fill('#su-email', email);
    await page.fill('#su-password', 'a long enough password');
    await page.selectOption('#su-plan', 'euro');
    await page.click('#signup button[type=submit]');
    const secret = (await page.waitForSelector('[data-testid=secret]:not(:empty)').then((e) => e.textContent())).trim();
    assert.equal((await s.call('/v1/basic/ping', { key: secret })).status, 200);
    const app = await page.goto(`${s.admin}/portal/app.html`);
    await page.waitForSelector('[data-metric=api_calls]');
    // named from the first drawing on, not only after a refresh
    assert.match(await page.textContent('[data-metric=api_calls]'), /^API calls /);
    await checkBranding(page, app);
    await waitForText(page, '[data-metric=api_calls]', /^API calls 1 used of 1,000 included/, 8000);
    assert.equal(await page.textContent('[data-testid=estimate]'), '€19.00');
    // the upcoming invoice's lines, as the invoice will read
    assert.match(await page.textContent('[data-testid=estimate-lines]'), /API calls above 1,000 included \(per call\): €0\.00/);
    assert.match(await page.textContent('#plan-select'), /Euro — €19\/month/);
    // the key's creation time in the viewer's zone (Tokyo), with the zone named
    assert.match(await page.textContent('#keys'), /[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d\d [AP]M GMT\+9/);
    assert.doesNotMatch(await page.textContent('main'), /\d\.\d\d (USD|EUR)/);
    if (width === 1280) await snap(page, 'account-branded');

    // the reset-password page is branded too (it loads no plans of its own)
    const reset = await page.goto(`${s.admin}/portal/reset-password.html`);
    await checkBranding(page, reset);

    // the owner's dashboard: money in its currency, the customer's usage by display name
    const owner = await context.newPage();
    watchConsole(owner, errors);
    await owner.goto(`${s.admin}/admin/`);
    await owner.fill('#token', ADMIN_TOKEN);
    await owner.click('#token-form button[type=submit]');
    await owner.getByTestId('asof').filter({ hasText: /GMT\+9/ }).waitFor();
    const rows = await owner.getByTestId('revenue').getByRole('row').allTextContents();
    assert.ok(rows.some((r) => r.includes('EUR') && r.includes('€')), rows.join(' | '));
    assert.doesNotMatch(rows.join(' '), /\d\.\d\d (USD|EUR)/);
    const me = await page.context().request.get(`${s.admin}/v1/me`).then((r) => r.json());
    await owner.goto(`${s.admin}/admin/customer.html?id=${encodeURIComponent(me.id)}`);
    await owner.waitForSelector('#usage [data-metric=api_calls]');
    assert.match(await owner.textContent('#usage [data-metric=api_calls]'), /^API calls/);
    assert.match(await owner.textContent('#plan-select'), /Euro \(€19\/month\)/);

    assert.deepEqual(errors, []);
    assert.deepEqual(violations, []);
    await context.close();
  });
}
