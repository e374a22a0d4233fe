// reference.e2e.test.mjs - the API reference (issue 15) in a real browser (Debian's chromium
// driven by playwright-core) at 1280 and 390 px: a developer on the free plan opens the demo
// upstream's reference; each operation's plan badges are what the configuration (and so the
// gateway) says; Try it with their own key succeeds for an included operation and explains the
// rate-limit and quota headers; an excluded operation shows the upgrade, whose link opens the
// account page with that plan chosen. No horizontal overflow, console error or CSP violation.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { Stack } from '../integration/harness.mjs';
import { launchBrowser, openPage, overflow, root, shots, waitForText } from './support.mjs';

const DEMO_DOC = resolve(root, 'examples/demo-upstream.openapi.yaml');

let s, browser;
before(async () => {
  s = new Stack({ portal: `{openapi: ${JSON.stringify(DEMO_DOC)}, signup: {per_address: 1000/hour, global: 10000/hour, trial_address_days: 0}}` });
  await s.start();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await s?.stop();
});

for (const width of [1280, 390]) {
  test(`the reference at ${width} px: badges, Try it, the upgrade path`, async () => {
    const { context, page, errors, violations } = await openPage(browser, { viewport: { width, height: 900 } });

    // sign up on the free plan from the portal's own page; its key is shown once
    await page.goto(`${s.admin}/portal/`);
    await page.fill('#su-email', `ref-${width}-${Date.now()}@example.com`);
    await page.fill('#su-company', 'Ref Inc');
    await page.fill('#su-password', 'a long enough password');
    await page.selectOption('#su-plan', 'free');
    await page.click('#signup button[type=submit]');
    await page.waitForSelector('[data-testid=secret]:not(:empty)');
    const secret = (await page.textContent('[data-testid=secret]')).trim().split(/\s/)[0];

    const res = await page.goto(`${s.admin}/portal/reference.html`);
    assert.match(res.headers()['content-security-policy'], /script-src 'self'; style-src 'self';/);
    await page.waitForSelector('[data-op="GET /v1/basic/geocode"]');
    assert.match(await page.textContent('#ref-title'), /Demo API/);
    assert.match(await page.textContent('[data-testid=ref-plan]'), /your plan is free/);

    // every operation's badges are the configuration's answer (GET /v1/reference) for every plan,
    // and for this customer's plan also the gateway's (its key called each operation)
    const doc = await (await fetch(`${s.admin}/v1/reference`)).json();
    const planIds = doc['x-tollgate'].plans.map((p) => p.id);
    let excluded = null;
    let checked = 0;
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        if (!op['x-tollgate']) continue;
        const sel = `[data-op="${method.toUpperCase()} ${path}"]`;
        const badges = await page.$$eval(`${sel} [data-testid=plan-badges] .badge`, (bs) => bs.map((b) => [b.dataset.plan, b.dataset.included === 'true']));
        assert.deepEqual(badges, planIds.map((id) => [id, op['x-tollgate'].plans.includes(id)]), sel);
        const concrete = path.replace('{word}', 'hello');
        const call = await s.call(concrete, { key: secret, method: method.toUpperCase(), body: method === 'post' ? '{}' : undefined });
        const freeIncluded = op['x-tollgate'].plans.includes('free');
        assert.equal(call.status === 403, !freeIncluded, `${sel}: the gateway answered ${call.status}`);
        assert.equal(await page.$(`${sel} [data-testid=upgrade]`) !== null, !freeIncluded, `${sel} upgrade notice`);
        if (!freeIncluded && !excluded) excluded = { sel, plans: op['x-tollgate'].plans };
        checked++;
      }
    }
    assert.equal(checked, 5);
    assert.ok(excluded, 'the demo document has an operation outside the free plan');

    // Try it: choose the key, paste its secret (never shown), call an included operation
    assert.match(await page.textContent('#key-select'), new RegExp(secret.slice(0, 12)));
    await page.fill('#key-secret', secret);
    await page.click('#try-key button[type=submit]');
    await waitForText(page, '#key-msg', /Try it now calls the gateway/);
    assert.equal(await page.inputValue('#key-secret'), '', 'the secret does not stay in the field');
    assert.ok(!(await page.textContent('body')).includes(secret), 'the secret is never shown');
    const geo = '[data-op="GET /v1/basic/geocode"]';
    await page.click(`${geo} .try-box summary`);
    await page.click(`${geo} .try button[type=submit]`);
    await waitForText(page, `${geo} [data-testid=try-status]`, /^200$/);
    const headers = await page.textContent(`${geo} [data-testid=try-headers]`);
    assert.match(headers, /x-ratelimit-remaining: \d+/);
    assert.match(headers, /Weight still allowed in this window/);
    assert.match(headers, /x-quota-remaining: \d+/);
    assert.match(headers, /allowance left this billing period/);
    const body = JSON.parse(await page.textContent(`${geo} [data-testid=try-body]`));
    assert.equal(body.ok, true);
    assert.equal(body.query, 'q=Lisbon');

    // the excluded operation: its upgrade goes to the account page with the plan that unlocks it
    const link = await page.$(`${excluded.sel} [data-testid=upgrade] a`);
    const target = await link.getAttribute('data-plan');
    assert.ok(excluded.plans.includes(target));
    assert.equal(target, doc['x-tollgate'].plans.find((p) => p.self_service && excluded.plans.includes(p.id)).id);
    assert.match(await link.textContent(), new RegExp(`Upgrade to ${target}`));

    // every section open: nothing scrolls sideways
    await page.evaluate(() => { for (const d of document.querySelectorAll('details')) d.open = true; });
    assert.ok(await overflow(page) <= 0, `the reference scrolls sideways at ${width} px by ${await overflow(page)} px`);
    await page.screenshot({ path: resolve(shots, `reference-${width}.png`), fullPage: true });

    await link.click();
    await page.waitForURL(/app\.html\?plan=/);
    await waitForText(page, '[data-testid=account]', /plan free/);
    // the options arrive with /v1/plans, after the account line: poll (bounded) for the choice
    const until = Date.now() + 8000;
    while (await page.inputValue('#plan-select') !== target && Date.now() < until) await page.waitForTimeout(50);
    assert.equal(await page.inputValue('#plan-select'), target);

    assert.deepEqual(errors, []);
    assert.deepEqual(violations, [], 'no Content-Security-Policy violation');
    await context.close();
  });
}
