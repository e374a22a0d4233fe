// support.mjs - what every browser test shares: Debian's chromium launched through playwright-core
// with the same flags, screenshots, watchers for console errors, uncaught exceptions and
// Content-Security-Policy violations, and polling helpers that run from here (page.waitForFunction
// would evaluate a string in the page, which the pages' CSP, without 'unsafe-eval', refuses).
import { mkdirSync, copyFileSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

export const root = resolve(new URL('../..', import.meta.url).pathname);
export const shots = resolve(root, 'build/test-output/screenshots');
mkdirSync(shots, { recursive: true });

// $CHROMIUM or /usr/bin/chromium, headless, with nothing reaching out on its own (updates, sync,
// QUIC) so that every request a test sees is one a page made.
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// build/test-output/screenshots/NAME.png, and docs/screenshots with UPDATE_SCREENSHOTS=1: the
// whole of a page, or one element when target is a locator.
export async function snap(target, name) {
  const file = resolve(shots, `${name}.png`);
  const isPage = typeof target.goto === 'function';
  await target.screenshot(isPage ? { path: file, fullPage: true } : { path: file });
  if (process.env.UPDATE_SCREENSHOTS) {
    mkdirSync(resolve(root, 'docs/screenshots'), { recursive: true });
    copyFileSync(file, resolve(root, 'docs/screenshots', `${name}.png`));
  }
}

// Console errors and uncaught exceptions of page, appended to errors (pass one array to watch
// several pages together), which is returned. Each says the page's path and the source's URL.
export function watchConsole(page, errors = []) {
  const where = () => { try { return new URL(page.url()).pathname; } catch { return page.url(); } };
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`${where()}: ${m.text()} (${m.location().url})`); });
  page.on('pageerror', (e) => errors.push(`${where()}: ${String(e)}`));
  return errors;
}

// Content-Security-Policy violations in every page of context, from its next navigation on: each
// page load reports through a binding, so none is lost across navigations. Returns the array.
export async function watchCsp(context) {
  const violations = [];
  await context.exposeBinding('__cspViolation', (_src, v) => violations.push(v));
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) =>
      window.__cspViolation(`${location.pathname}: ${e.violatedDirective} ${e.blockedURI}`));
  });
  return violations;
}

// A new context (options as browser.newContext's) and page, both watched: { context, page,
// errors, violations }. Every violation also reaches the console as an error ("Refused to ..."),
// so a test that checks errors checks the CSP too; violations says which directive.
export async function openPage(browser, options) {
  const context = await browser.newContext(options);
  const violations = await watchCsp(context);
  const page = await context.newPage();
  const errors = watchConsole(page);
  return { context, page, errors, violations };
}

// axe-core's source, run in the page through the DevTools protocol (page.evaluate of a string is
// Runtime.evaluate, which the page's Content-Security-Policy does not govern): the page is
// checked under the CSP its users get, not one bypassed for the checker.
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

// axe's serious and critical violations on the page as it is now, one line each with the
// elements they concern ([] when none).
export async function axeProblems(page) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  assert.ok(result.passes.length > 10, 'axe ran its rules'); // not an empty page or a script that never loaded
  return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help}: ${v.nodes.slice(0, 5).map((n) => n.target.join(' ')).join(', ')}`);
}

// What a user sees of page, `what` naming the state in messages: no wider than the viewport, no
// serious or critical axe violation, no CSP violation and no console error since the last check
// (errors and violations, as openPage returns them, are emptied).
export async function checkPage(page, what, { errors, violations }) {
  await page.waitForLoadState('networkidle');
  const [scroll, client] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
  const problems = await axeProblems(page);
  assert.ok(scroll <= client, `${what}: ${scroll}px wide in a ${client}px viewport`);
  assert.deepEqual(problems, [], `${what}: axe found\n  ${problems.join('\n  ')}`);
  assert.deepEqual(violations.splice(0), [], `${what}: Content-Security-Policy violations`);
  assert.deepEqual(errors.splice(0), [], `${what}: console errors`);
}

// Polls selector's text until it matches re (bounded by timeout ms); returns the text.
export async function waitForText(page, selector, re, timeout = 8000) {
  const until = Date.now() + timeout;
  for (;;) {
    const text = await page.textContent(selector).catch(() => '');
    if (re.test(text || '')) return text;
    if (Date.now() > until) throw new Error(`${selector}: ${JSON.stringify(text)} never matched ${re}`);
    await page.waitForTimeout(50);
  }
}

// How far the page is wider than its viewport (0: no horizontal scrolling).
export const overflow = (page) =>
  page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
