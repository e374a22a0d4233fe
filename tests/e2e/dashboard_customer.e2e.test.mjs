// dashboard_customer.e2e.test.mjs - issue 15, the owner's customer page in a real browser
// (Debian's chromium driven by playwright-core, on the real binary) at 1280 and 390 px: the owner
// previews a plan change (the prorated amounts the API's preview gives, then Confirm: the profile
// shows the new plan), adds a credit (refused when not a positive amount of the currency; once
// added it is on the upcoming invoice, GET .../invoices/upcoming, and listed on the page),
// cancels at the period's end and keeps the subscription, then cancels at once. Assertions read what the owner sees
// and what the API then answers; waits poll with a bound, never sleep.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, ADMIN_TOKEN } from '../integration/harness.mjs';
import { launchBrowser, openPage, checkPage, waitForText, snap } from './support.mjs';

let s, browser;
before(async () => {
  s = new Stack({ testClock: true });
  await s.start();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await s?.stop();
});

const money = (text) => new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' }).format(text);

for (const width of [1280, 390]) {
  test(`the owner previews and confirms an upgrade, adds a credit, cancels and keeps the subscription at ${width} px`, async () => {
    const made = await s.adminCall('POST', '/v1/admin/customers', { email: `owner-${width}@example.com`, name: `Width ${width}`, plan: 'tiny' });
    assert.equal(made.status, 201, made.text);
    const id = made.json.id, base = `/v1/admin/customers/${id}`;
    // days into the period, so an upgrade now prorates the fee
    assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 3 * 86400 })).status, 200);

    const { context, page, ...watch } = await openPage(browser, { viewport: { width, height: 900 }, locale: 'en-US' });
    await page.goto(`${s.admin}/admin/`);
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#token-form button[type=submit]');
    await page.waitForSelector('#dash:not(.hidden)');
    await page.goto(`${s.admin}/admin/customer.html?id=${id}`);
    await page.getByTestId('profile').filter({ hasText: 'plan tiny' }).waitFor();

    // the preview: what the API previews, in words and money, and nothing changed yet
    const preview = (await s.adminCall('GET', `${base}/plan/preview?plan=starter`)).json;
    assert.equal(preview.effective, 'now');
    assert.equal(preview.proration.length, 2, JSON.stringify(preview));
    await page.selectOption('#plan-select', 'starter');
    await page.getByRole('button', { name: 'Preview change' }).click();
    const note = await waitForText(page, '[data-testid=plan-note]', /Net:/);
    assert.match(note, /tiny → starter now/);
    for (const item of preview.proration) {
      assert.ok(note.includes(item.description), `the preview names "${item.description}": ${note}`);
      assert.ok(note.includes(money(item.amount)), `the preview shows ${money(item.amount)}: ${note}`);
    }
    const net = preview.proration.reduce((a, i) => a + Math.round(Number(i.amount) * 100), 0);
    assert.ok(note.includes(`${money(Math.abs(net) / 100)} ${net > 0 ? 'charged' : 'credited'} on the next invoice`), note);
    assert.equal((await s.adminCall('GET', base)).json.plan, 'tiny', 'a preview changes nothing');
    await checkPage(page, 'customer, a plan change previewed', watch);
    if (width === 1280) await snap(page, 'dashboard-customer-preview'); // the README's picture
    await page.getByRole('button', { name: 'Confirm change' }).click();
    await page.getByTestId('profile').filter({ hasText: 'plan starter' }).waitFor();
    await page.getByRole('alert').filter({ hasText: 'Now on starter.' }).waitFor();
    assert.equal((await s.adminCall('GET', base)).json.plan, 'starter');
    assert.equal(await page.getByTestId('plan-note').textContent(), '', 'the preview is gone once confirmed');

    // a credit: refused unless a positive amount with at most the currency's decimals
    const upcomingLines = async () => (await s.adminCall('GET', `${base}/invoices/upcoming`)).json.lines;
    const before = await upcomingLines();
    await page.getByLabel('Description').fill('Goodwill credit');
    for (const bad of ['1.005', '-3', '0', 'ten']) {
      await page.getByLabel('Credit (USD)').fill(bad);
      await page.getByRole('button', { name: 'Add credit' }).click();
      await waitForText(page, '#msg', /^Credit: a positive amount in USD with at most 2 decimals/);
      assert.equal(await page.getByLabel('Credit (USD)').getAttribute('aria-invalid'), 'true', bad);
    }
    assert.deepEqual(await upcomingLines(), before, 'nothing was added');
    await checkPage(page, 'customer, a credit refused', watch);
    await page.getByLabel('Credit (USD)').fill('12.5');
    await page.getByRole('button', { name: 'Add credit' }).click();
    await page.getByRole('alert').filter({ hasText: `Credit of ${money(12.5)} added to the next invoice.` }).waitFor();
    const credit = (await upcomingLines()).filter((l) => l.description === 'Goodwill credit');
    assert.deepEqual(credit.map((l) => l.amount), ['-12.50'], 'the credit is on the upcoming invoice, negative');
    await page.getByTestId('upcoming').getByRole('row').filter({ hasText: 'Goodwill credit' }).filter({ hasText: money(-12.5) }).waitFor();
    assert.equal(await page.getByLabel('Credit (USD)').getAttribute('aria-invalid'), null);
    await checkPage(page, 'customer, a credit added', watch);

    // cancel at the period's end after the confirm step, then keep the subscription
    const c = (await s.adminCall('GET', base)).json;
    await page.getByRole('button', { name: 'Cancel subscription' }).click();
    const step = await waitForText(page, '[data-testid=cancel-note]', /Now: access stops/);
    assert.ok(step.includes(`At the period's end, ${c.current_period.end.slice(0, 10)}`), step);
    await checkPage(page, "customer, the cancellation's confirm step", watch);
    await page.getByRole('button', { name: "Cancel at the period's end" }).click();
    await waitForText(page, '[data-testid=sub-state]', /^Cancels at the end of the period/);
    const canceling = (await s.adminCall('GET', base)).json;
    assert.equal(canceling.cancel_at, c.current_period.end);
    assert.equal(canceling.status, 'active');
    assert.equal(await page.getByRole('button', { name: 'Cancel subscription' }).isVisible(), false);
    await checkPage(page, 'customer, a cancellation scheduled', watch);
    await snap(page, `admin-customer-canceling-${width}`);
    await page.getByRole('button', { name: 'Keep subscription' }).click();
    await waitForText(page, '[data-testid=sub-state]', /^Renews on/);
    await page.getByRole('alert').filter({ hasText: 'The subscription continues' }).waitFor();
    assert.equal((await s.adminCall('GET', base)).json.cancel_at, null);
    assert.equal(await page.getByRole('button', { name: 'Keep subscription' }).isVisible(), false);
    await checkPage(page, 'customer, the subscription kept', watch);

    // cancel at once: access stops, the page says so and offers neither button
    await page.getByRole('button', { name: 'Cancel subscription' }).click();
    await waitForText(page, '[data-testid=cancel-note]', /Now: access stops/);
    await page.getByRole('button', { name: 'Cancel now' }).click();
    await page.getByRole('alert').filter({ hasText: 'Canceled now.' }).waitFor();
    await waitForText(page, '[data-testid=sub-state]', /^Canceled\.$/);
    assert.equal((await s.adminCall('GET', base)).json.status, 'canceled');
    for (const name of ['Cancel subscription', 'Keep subscription'])
      assert.equal(await page.getByRole('button', { name }).isVisible(), false, name);
    await checkPage(page, 'customer, canceled at once', watch);
    await context.close();
  });
}
