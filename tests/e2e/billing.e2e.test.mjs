// billing.e2e.test.mjs - the billing pages in a real browser (Debian's chromium driven by
// playwright-core), on the real binary with a stripe section pointing at the fake Stripe
// (tests/stripe/fake_stripe.mjs, started here):
//   - a developer signs up, "Add a card" takes the browser to the Checkout Session's url (the
//     fake's session, at checkout.stripe.com); the card is added there (the fake's control route,
//     which sends tollgate the signed checkout.session.completed), Stripe sends the browser back to
//     the session's success_url, and the billing section says a card is on file;
//   - after a failed payment (a signed invoice.payment_failed) the developer is past_due: the
//     page shows the banner with its link to the billing section;
//   - the owner's dashboard lists them under failing payments, and shows the revenue split per
//     currency (invoiced, collected, outstanding, uncollectible, MRR, paying customers, trials).
// Assertions read what the user sees (text, roles). The only browser-side interception is of
// checkout.stripe.com, the fake's Checkout host, which this machine cannot reach: the page is
// answered with a placeholder so that the navigation itself is what the test checks.
// Screenshots go to build/test-output/screenshots (and docs/screenshots with UPDATE_SCREENSHOTS=1).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Stack, ADMIN_TOKEN, sleep } from '../integration/harness.mjs';
import { launchBrowser, snap, watchConsole } from './support.mjs';
import { startFakeStripe } from '../stripe/fake_stripe.mjs';

const SECRET = 'whsec_tollgate_e2e_billing_0123456789';
const KEY = 'sk_test_tollgate_e2e_billing_0123456789';
let s, fake, browser;

before(async () => {
  fake = await startFakeStripe();
  s = new Stack({
    testClock: true,
    extra: `stripe: {secret_key: "${KEY}", webhook_secret: "${SECRET}", api_base: "${fake.url}"}`,
    morePlans: `  yen:
    price: "1200"
    currency: jpy
    rate_limit: 100/min
    burst: 100
`,
  });
  await s.start();
  await control('POST', '/__control/webhook_endpoint', { url: `${s.admin}/v1/webhooks/stripe`, secret: SECRET });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await s?.stop();
  await fake?.close();
});

const control = (method, path, body) => fake.control(method, path, body);

// Polls fn until it returns a truthy value (bounded: 20 s); for the server side only.
async function until(fn, what) {
  for (let i = 0; i < 200; i++) {
    const v = await fn();
    if (v) return v;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// Console errors and uncaught exceptions (support.mjs), and every request that failed
function watchConsoleAndRequests(page) {
  const errors = watchConsole(page);
  page.on('requestfailed', (r) => errors.push(`failed: ${r.url()}`));
  return errors;
}

const cells = (page, currency) => page.locator(`[data-testid=revenue] tr[data-currency=${currency}] td`).allTextContents();

test('add a card through Checkout, a past_due banner, and the dashboard\'s revenue split and failing payments', async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  // checkout.stripe.com is the fake's Checkout host (its sessions' url): not reachable from here.
  const checkoutVisits = [];
  await context.route('https://checkout.stripe.com/**', (route) => {
    checkoutVisits.push(route.request().url());
    return route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><link rel="icon" href="data:,"><title>Checkout</title><h1>Stripe Checkout</h1>' });
  });
  const page = await context.newPage();
  const errors = watchConsoleAndRequests(page);
  const email = `billing-e2e-${Date.now()}@example.com`;

  // Sign up on the portal's page.
  await page.goto(`${s.admin}/portal/`);
  await page.fill('#su-email', email);
  await page.fill('#su-company', 'Billing E2E');
  await page.fill('#su-password', 'a long enough password');
  await page.selectOption('#su-plan', 'free');
  await page.click('#signup button[type=submit]');
  await page.getByTestId('secret').filter({ hasText: /tg_live_/ }).waitFor();
  const me = await (await context.request.get(`${s.admin}/v1/me`)).json();
  // The Stripe customer is created by the outbox, off the request path: wait for it.
  await until(async () => ((await control('GET', '/__control/objects?type=customer')).customer || [])
    .find((o) => o.metadata && o.metadata.tollgate_customer === me.id), 'the Stripe customer');
  // ... and for tollgate to record it (until then "Add a card" answers 409 stripe_customer_pending)
  await until(async () => (await s.adminCall('GET', `/v1/admin/customers/${me.id}`)).json.stripe.state === 'done',
    'tollgate to record the Stripe customer');

  await page.goto(`${s.admin}/portal/app.html#billing`);
  const card = page.getByTestId('card-state');
  await card.filter({ hasText: 'No card on file yet.' }).waitFor();
  await page.getByRole('button', { name: 'Add a card' }).click();
  await page.waitForURL(/^https:\/\/checkout\.stripe\.com\/c\/pay\/cs_test_/);
  await page.getByRole('heading', { name: 'Stripe Checkout' }).waitFor();
  // ...which is the url of the Checkout Session tollgate made, in setup mode, for this customer.
  const sessions = (await control('GET', '/__control/objects?type=checkout.session'))['checkout.session'];
  const session = sessions.find((x) => x.metadata.tollgate_customer === me.id);
  assert.ok(session, 'a Checkout Session for the customer');
  assert.equal(page.url(), session.url);
  assert.deepEqual(checkoutVisits, [session.url]);
  assert.equal(session.mode, 'setup');

  // The customer adds a card at Stripe; Stripe tells tollgate (signed checkout.session.completed)
  // and sends the browser back to the success_url.
  const done = await control('POST', `/__control/checkout/sessions/${session.id}/complete`);
  assert.equal(done.event_type, 'checkout.session.completed');
  await until(async () => (await s.adminCall('GET', `/v1/admin/customers/${me.id}`)).json.payment_method_on_file_at,
    'the card on file');
  await page.goto(session.success_url);
  assert.equal(page.url(), `${s.admin}/portal/app.html#billing`);
  await card.filter({ hasText: /^A card is on file \(added .+\)\.$/ }).waitFor();

  // A payment fails: past_due, still served, and the page says so with the way to fix it.
  const banner = page.getByTestId('dunning-banner');
  assert.equal(await banner.isVisible(), false);
  const invoice = { id: `in_e2e_${Date.now().toString(36)}`, object: 'invoice', status: 'open', attempt_count: 1,
    amount_due: 4900, currency: 'usd', metadata: { tollgate_customer: me.id } };
  const sent = await control('POST', '/__control/send_webhook',
    { url: `${s.admin}/v1/webhooks/stripe`, secret: SECRET, type: 'invoice.payment_failed', object: invoice });
  assert.equal(sent.delivery.status, 200, JSON.stringify(sent));
  await until(async () => (await s.adminCall('GET', `/v1/admin/customers/${me.id}`)).json.status === 'past_due', 'past_due');
  await page.reload();
  await banner.filter({ hasText: 'Your last payment failed. Update your card to keep access to the API.' }).waitFor();
  assert.equal(await page.getByRole('alert').filter({ hasText: 'Your last payment failed' }).count(), 1);
  const link = banner.getByRole('link', { name: 'Go to billing' });
  assert.equal(await link.getAttribute('href'), '#billing');
  await link.click();
  await page.waitForURL(/#billing$/);
  await page.getByRole('button', { name: 'Manage cards and receipts' }).waitFor();
  await snap(page, 'billing-past-due');

  // The owner: the failing payment is listed; then a month of invoices in two currencies.
  const owner = await context.newPage();
  const ownerErrors = watchConsoleAndRequests(owner);
  await owner.goto(`${s.admin}/admin/`);
  await owner.fill('#token', ADMIN_TOKEN);
  await owner.click('#token-form button[type=submit]');
  const failing = owner.getByTestId('past-due').getByRole('row').filter({ hasText: email });
  await failing.waitFor();
  assert.match(await failing.textContent(), /past_due\s*\d{4}-\d\d-\d\d/);
  // Its page shows the customer's Stripe sync state: the Stripe customer made through the outbox.
  await failing.getByRole('link', { name: email }).click();
  const sync = owner.locator('#stripe:not(.hidden)');
  await sync.waitFor();
  assert.match(await sync.textContent(), /^Stripe: done · cus_\w+/);
  await owner.goto(`${s.admin}/admin/`);
  await owner.getByTestId('past-due').getByRole('row').filter({ hasText: email }).waitFor();

  // Invoices: the webhook endpoint is detached first, as the test clock is about to move a month
  // ahead of the signatures' real time; the owner signs out (the session would expire).
  await control('POST', '/__control/webhook_endpoint', { url: null });
  await owner.getByRole('button', { name: 'Sign out' }).click();
  await owner.locator('#login-box:not(.hidden)').waitFor();
  // and so does the customer: the account page polls its usage every 5 s, and a poll after the
  // clock moved would meet an expired session (a 401 in the console; the page then signs in again)
  await page.click('#logout');
  await page.waitForURL(/\/portal\/$/);
  const metered = [];
  for (let i = 0; i < 3; i++) metered.push((await s.customer('metered')).customer.id);
  const yen = (await s.customer('yen')).customer.id;
  assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 })).status, 200);
  const run = await s.adminCall('POST', '/v1/admin/invoices/run', {});
  assert.equal(run.status, 200, run.text);
  const act = async (id, ...steps) => {
    const inv = (await s.adminCall('GET', `/v1/admin/invoices?customer=${id}`)).json.data[0];
    for (const step of steps) assert.equal((await s.adminCall('POST', `/v1/admin/invoices/${inv.id}/${step}`)).status, 200, step);
  };
  await act(metered[0], 'finalize', 'mark-paid');
  await act(metered[1], 'finalize');
  await act(metered[2], 'finalize', 'mark-uncollectible');
  await act(yen, 'finalize', 'mark-paid');
  await s.customer('starter'); // a trial: apart from MRR

  await owner.fill('#token', ADMIN_TOKEN);
  await owner.click('#token-form button[type=submit]');
  const usd = owner.getByTestId('revenue').getByRole('row').filter({ hasText: 'USD' });
  await usd.waitFor();
  assert.deepEqual(await cells(owner, 'usd'), ['$30.00', '$10.00', '$10.00', '$10.00', '$30.00', '3', '1 ($49.00/month)']);
  assert.deepEqual(await cells(owner, 'jpy'), ['¥1,200', '¥1,200', '¥0', '¥0', '¥1,200', '1', '0']);
  assert.deepEqual(await owner.getByRole('columnheader').allTextContents().then((h) => h.slice(0, 8)),
    ['Currency', 'Invoiced', 'Collected', 'Outstanding', 'Uncollectible', 'MRR', 'Paying customers', 'In trial']);
  // two currencies: the MRR tile gives each, never a sum of both
  assert.equal(await owner.getByTestId('mrr').textContent(), '¥1,200 · $30.00');
  assert.equal(await owner.getByTestId('paying').textContent(), '4 paying customers');
  assert.equal(await owner.getByTestId('trials').textContent(), '1');
  assert.equal(await owner.getByTestId('usage-rev').textContent(), '¥0 · $0.00');
  // each customer's billed total in its own currency and digits
  assert.match(await owner.getByTestId('top-rev').getByRole('row').filter({ hasText: 'yen-' }).textContent(), /yen\s*¥1,200$/);
  assert.match(await owner.getByTestId('outside-mrr').textContent(), /1 in trial, 0 waiting for a card, \d+ suspended, 0 canceled, \d+ on a free plan/);
  assert.match(await owner.getByTestId('revenue-window').textContent(), /^Invoices finalized from \d{4}-\d\d-01 to \d{4}-\d\d-01/);
  // the failing payment is still listed (dunning's grace has passed on the moved clock: suspended)
  assert.match(await owner.getByTestId('past-due').getByRole('row').filter({ hasText: email }).textContent(), /past_due|suspended/);
  await snap(owner, 'dashboard-revenue');

  // Another month: the split of the month before has no invoices; MRR stays as of now.
  const shown = await owner.getByLabel('Month', { exact: true }).inputValue();
  const [y, m] = shown.split('-').map(Number);
  const prev = `${m === 1 ? y - 1 : y}-${String(m === 1 ? 12 : m - 1).padStart(2, '0')}`;
  await owner.getByLabel('Month', { exact: true }).fill(prev);
  await owner.getByTestId('revenue-window').filter({ hasText: `from ${prev}-01 to ${shown}-01` }).waitFor();
  assert.deepEqual(await cells(owner, 'usd'), ['$0.00', '$0.00', '$0.00', '$0.00', '$30.00', '3', '1 ($49.00/month)']);

  assert.deepEqual(errors, []);
  assert.deepEqual(ownerErrors, []);
  await context.close();
});
