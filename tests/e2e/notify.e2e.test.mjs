// notify.e2e.test.mjs - issue 13 part A: a developer adds a webhook endpoint on the portal page in
// a real browser (Debian's chromium driven by playwright-core), copies the signing secret the page
// shows once, sends a test event, and the receiver verifies it with the standardwebhooks
// reference package; the page's delivery log shows it delivered.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { ADMIN_TOKEN, Stack } from '../integration/harness.mjs';
import { launchBrowser, waitForText, watchConsole } from './support.mjs';

const require = createRequire(import.meta.url);
const { Webhook } = require('../notify/node_modules/standardwebhooks');

let s, browser, srv;
const got = [];
before(async () => {
  srv = createServer((rq, rs) => {
    let body = '';
    rq.on('data', (c) => { body += c; });
    rq.on('end', () => { got.push({ headers: rq.headers, body }); rs.writeHead(204); rs.end(); });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  s = await new Stack({ extra: 'notifications: {allow_http: true, allow_private_networks: ["127.0.0.0/8"]}' }).start();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await s?.stop();
  await new Promise((r) => srv.close(r));
});

test('the portal adds a webhook endpoint, shows its secret once, sends a test event the receiver verifies', async () => {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  const errors = watchConsole(page);
  await page.goto(`${s.admin}/portal/`);
  await page.waitForSelector('[data-plan="free"]');
  await page.fill('#su-email', `hooks-${Date.now()}@example.com`);
  await page.fill('#su-company', 'Hooks Inc');
  await page.fill('#su-password', 'a long enough password');
  await page.selectOption('#su-plan', 'free');
  await page.click('#signup button[type=submit]');
  await page.waitForSelector('[data-testid=secret]:not(:empty)');
  await page.goto(`${s.admin}/portal/app.html`);
  await page.waitForSelector('#wh-form');
  await page.fill('#wh-url', `http://127.0.0.1:${srv.address().port}/hooks`);
  await page.fill('#wh-events', 'key.created, invoice.paid');
  await page.click('#wh-form button[type=submit]');
  const shown = await waitForText(page, '[data-testid=webhook-secret]', /whsec_/);
  const secret = /whsec_[A-Za-z0-9+/=]+/.exec(shown)[0];
  await waitForText(page, '[data-testid=webhook-endpoints]', /key\.created, invoice\.paid\s*enabled/);
  await page.click('[data-testid=webhook-endpoints] button:text("Send test")');
  await waitForText(page, '#wh-msg', /A test event \(webhook\.test\) is on its way/);
  for (let i = 0; i < 200 && got.length === 0; i++) await page.waitForTimeout(25);
  assert.equal(got.length, 1);
  assert.equal(new Webhook(secret).verify(got[0].body, got[0].headers).type, 'webhook.test');
  await page.reload();
  await waitForText(page, '[data-testid=webhook-deliveries]', /webhook\.test\s*delivered\s*1/);
  // the delivery's attempts: status, response time, the endpoint; folded away by a second click
  await page.click('[data-testid=webhook-deliveries] button:text("Details")');
  await waitForText(page, '[data-testid=attempts]', /UTC: HTTP 204 in \d+ ms/);
  assert.match(await page.textContent('[data-testid=webhook-deliveries]'), new RegExp(`To http://127\\.0\\.0\\.1:${srv.address().port}/hooks, webhook-id msg_`));
  await page.click('[data-testid=webhook-deliveries] button:text("Details")');
  assert.equal(await page.$('[data-testid=attempts]'), null);
  // a new key: key.created reaches the endpoint too
  await page.fill('#key-name', 'second');
  await page.click('#key-form button[type=submit]');
  for (let i = 0; i < 200 && got.length < 2; i++) await page.waitForTimeout(25);
  assert.equal(new Webhook(secret).verify(got[1].body, got[1].headers).type, 'key.created');
  assert.deepEqual(errors, []);
  await context.close();
});

test('the owner dashboard lists the owner\'s endpoints, their deliveries and the events feed', async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 1000 } });
  const page = await context.newPage();
  const errors = watchConsole(page);
  await page.goto(`${s.admin}/admin/`);
  await page.fill('#token', ADMIN_TOKEN);
  await page.click('#token-form button[type=submit]');
  await page.waitForSelector('#wh-form');
  await page.fill('#wh-url', `http://127.0.0.1:${srv.address().port}/owner`);
  await page.click('#wh-form button[type=submit]');
  const shown = await waitForText(page, '[data-testid=webhook-secret]', /whsec_/);
  const secret = /whsec_[A-Za-z0-9+/=]+/.exec(shown)[0];
  await waitForText(page, '[data-testid=webhook-endpoints]', /\*\s*api\s*enabled/);
  const before = got.length;
  await s.customer('free'); // customer.created and key.created, to the owner's endpoint
  for (let i = 0; i < 200 && got.length < before + 2; i++) await page.waitForTimeout(25);
  const types = got.slice(before).map((r) => new Webhook(secret).verify(r.body, r.headers).type).sort();
  assert.deepEqual(types, ['customer.created', 'key.created']);
  await page.reload();
  await waitForText(page, '[data-testid=events]', /customer\.created/);
  await waitForText(page, '[data-testid=webhook-deliveries]', /key\.created\s*delivered/);
  // a test-send from the dashboard, and its attempts
  await page.click('[data-testid=webhook-endpoints] button:text("Send test")');
  await waitForText(page, '#wh-msg', /A test event \(webhook\.test\) is on its way/);
  for (let i = 0; i < 200 && got.length < before + 3; i++) await page.waitForTimeout(25);
  await page.reload();
  await waitForText(page, '[data-testid=webhook-deliveries]', /webhook\.test\s*delivered/);
  await page.click('[data-testid=webhook-deliveries] tr:has-text("webhook.test") button:text("Details")');
  await waitForText(page, '[data-testid=attempts]', /UTC: HTTP 204 in \d+ ms/);
  assert.deepEqual(errors, []);
  await context.close();
});
