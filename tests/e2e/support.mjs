// support.mjs - what every browser test shares: Debian's chromium launched through playwright-core
// with the same flags, screenshots, watchers for console errors, uncaught exceptions and
// Content-Security-Policy violations, and polling helpers that run from here (page.waitForFunction
// would evaluate a string in the page, which the pages' CSP, without 'unsafe-eval', refuses).
import { mkdirSync, copyFileSync } from 'node:fs';
import { resolve } from 'node:path';
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
// errors, violations }. With { bypassCSP: true } (a11y.e2e.test.mjs, to inject axe) the page's
// CSP is not applied, so violations stays empty.
export async function openPage(browser, options) {
  const context = await browser.newContext(options);
  const violations = await watchCsp(context);
  const page = await context.newPage();
  const errors = watchConsole(page);
  return { context, page, errors, violations };
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
