// notify_settings.e2e.test.mjs - issue 13's portal page for notifications, in a real browser
// (Debian's chromium driven by playwright-core) at 1280 and 390 px: a developer signs up, sets a
// monthly budget typed as a decimal, unticks an event they do not want by email, reloads and finds
// both kept; the API confirms the budget was stored as exact minor units. The page asks for a new
// confirmation link while the address is unconfirmed (a real SMTP sink receives it; the older
// link's page then refuses and points to the account page, the new one confirms). No console
// errors, no Content-Security-Policy violation, no horizontal scrolling.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack } from '../integration/harness.mjs';
import { launchBrowser, openPage, overflow, waitForText } from './support.mjs';
import { startSink, simpleParser } from '../notify/sink.mjs';

let s, sink, browser;
before(async () => {
  sink = await startSink();
  s = await new Stack({
    extra: `email: {smtp_url: "smtp://127.0.0.1:${sink.port}", from: "API billing <billing@example.com>"}`,
  }).start();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await s?.stop();
  await sink?.close();
});

// The page's own calls, with its cookie (the CSRF token is not needed for a GET).
const apiGet = (page, path) => page.evaluate((p) => fetch(p).then((r) => r.json()), path);

for (const [width, typed, minor] of [[1280, '49.50', 4950], [390, '0.29', 29]]) {
  test(`at ${width} px: the budget typed as ${typed} is stored as ${minor} minor units, an unticked email event stays unticked after a reload`, async () => {
    const { context, page, errors, violations } = await openPage(browser, { viewport: { width, height: 900 } });

    const to = `notify-${width}-${Date.now()}@example.com`;
    await page.goto(`${s.admin}/portal/`);
    await page.waitForSelector('[data-plan="free"]');
    await page.fill('#su-email', to);
    await page.fill('#su-password', 'a long enough password');
    await page.selectOption('#su-plan', 'free');
    await page.click('#signup button[type=submit]');
    await page.waitForSelector('[data-testid=secret]:not(:empty)');
    await page.goto(`${s.admin}/portal/app.html#notifications`);
    await waitForText(page, '[data-testid=budget-state]', /No budget set\. Estimated bill so far this period: \$0\.00\./);

    // the controls are found by their accessible names
    const amount = page.getByLabel('Budget per period (USD)');
    const keyCreated = page.getByRole('checkbox', { name: /An API key was created/ });
    assert.equal(await keyCreated.isChecked(), true); // every event by default

    // a third decimal digit is refused on the page, and nothing is stored
    await amount.fill(`${typed}5`);
    await page.click('#budget-form button[type=submit]');
    await waitForText(page, '#budget-msg', /At most 2 decimal digits/);
    assert.equal((await apiGet(page, '/v1/me/budget')).budget_minor, null);

    await amount.fill(typed);
    await page.click('#budget-form button[type=submit]');
    await waitForText(page, '#budget-msg', new RegExp(`Budget saved: \\$${typed.replace('.', '\\.')} a period`));
    await waitForText(page, '[data-testid=budget-state]', new RegExp(`\\$0\\.00 of your \\$${typed.replace('.', '\\.')} budget \\(0 %\\)`));

    await keyCreated.uncheck();
    await page.click('#email-form button[type=submit]');
    await waitForText(page, '#email-msg', /Email choices saved/);

    // kept across a reload
    await page.reload();
    await waitForText(page, '[data-testid=budget-state]', new RegExp(`of your \\$${typed.replace('.', '\\.')} budget`));
    assert.equal(await amount.inputValue(), typed);
    await page.waitForSelector('[data-testid=email-events] input[type=checkbox]');
    assert.equal(await keyCreated.isChecked(), false);
    assert.equal(await page.getByRole('checkbox', { name: /An API key was revoked/ }).isChecked(), true);

    // what the server stored: exact minor units, and every choice but key.created
    const b = await apiGet(page, '/v1/me/budget');
    assert.equal(b.budget_minor, minor);
    assert.equal(b.budget, typed);
    const st = await apiGet(page, '/v1/me/notification-settings');
    assert.ok(Array.isArray(st.email_events));
    assert.deepEqual(st.email_events, st.email_choices.filter((t) => t !== 'key.created'));

    // unconfirmed: the page offers a new link, and one arrives
    await page.waitForSelector('[data-testid=confirm-box]:not(.hidden)');
    const n = sink.messages.filter((x) => x.to.includes(to)).length;
    await page.getByRole('button', { name: 'Send me a new confirmation link' }).click();
    await waitForText(page, '#confirm-msg', /new link is on its way/);
    await sink.waitFor((x) => x.to.includes(to) && sink.messages.filter((y) => y.to.includes(to)).length > n, `the new link to ${to}`);
    const mails = await Promise.all(sink.messages.filter((x) => x.to.includes(to)).map((x) => simpleParser(x.raw)));
    const links = mails.map((m) => /\/portal\/confirm-email\.html#token=[A-Za-z0-9_-]{43}/.exec(m.text)[0]);
    assert.equal(links.length, 2);
    // the sign-up's link no longer works, and its page says where to get a new one
    const seen = errors.length;
    await page.goto(`${s.admin}${links[0]}`);
    await page.click('#confirm button[type=submit]');
    await waitForText(page, '#msg', /not valid.*Sign in and ask for a new link/);
    // the one error expected: the browser logs the refused link's 400
    const logged = errors.splice(seen);
    assert.equal(logged.length, 1, logged.join('\n'));
    assert.match(logged[0], /: Failed to load resource: the server responded with a status of 400 \(Bad Request\) \(http:[^ ]*\/v1\/confirm-email\)$/);
    await page.goto(`${s.admin}${links[1]}`);
    await page.click('#confirm button[type=submit]');
    await waitForText(page, '#msg', new RegExp(`${to.replace(/[.]/g, '\\.')} is confirmed`));
    await page.goto(`${s.admin}/portal/app.html#notifications`);
    await waitForText(page, '[data-testid=budget-state]', /budget/);
    assert.equal(await page.isVisible('[data-testid=confirm-box]'), false);

    // "Remove budget" clears it
    await page.click('#budget-clear');
    await waitForText(page, '[data-testid=budget-state]', /No budget set/);
    assert.equal((await apiGet(page, '/v1/me/budget')).budget_minor, null);

    assert.ok(await overflow(page) <= 0, `the account page scrolls sideways at ${width} px by ${await overflow(page)} px`);
    // and nothing in the section needs scrolling of its own
    assert.equal(await page.evaluate(() => { const n = document.getElementById('notifications'); return n.scrollWidth - n.clientWidth; }), 0);
    assert.deepEqual(errors, []);
    assert.deepEqual(violations, []);
    await context.close();
  });
}
