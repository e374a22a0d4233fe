// index.js - pricing, calculator, sign-up and sign-in.
import { api, el, show } from './api.js';
import { applyBrand } from './brand.js';
import { money, num, quantity, perUnit, metricName, metricUnit, lineText } from './format.js';

const rate = (r) => (r ? `${num(r.count)} calls / ${r.per}, bursts of ${num(r.burst)}` : 'no rate limit');
let metrics = {}, plans = [], brand = {};

// "€0.0005 per call", "$2.50 per 10 GB"; tiered charges by their model's name.
function chargeText(c, p) {
  const cur = p.currency, beyond = p.included[c.metric] !== undefined ? ' beyond the included' : '';
  if (c.unit_price) return /^[0.]*$/.test(c.unit_price) ? '' : `${perUnit(c.unit_price, cur, metrics, c.metric)}${beyond}`;
  if (c.package_price) return `${money(c.package_price, cur)} per ${num(c.package_size)} ${metricUnit(metrics, c.metric)}`;
  return `${metricName(metrics, c.metric)}: ${c.model} pricing`;
}

// The metrics a plan meters: what it includes or prices; api_calls when it names none.
function planMetrics(p) {
  const ids = [...Object.keys(p.included), ...p.charges.map((c) => c.metric)];
  return [...new Set(ids.length ? ids : ['api_calls'])];
}

// Numbers a text states: "50,000 calls" -> 50000, "$0.001 per call" -> 0.001.
const numbersIn = (t) => (String(t).match(/\d[\d,]*(\.\d+)?/g) || []).map((x) => Number(x.replace(/,/g, '')));

// A feature that says again what the lines above it show (the price, an allowance, a unit price,
// the rate limit, the trial, the endpoints) is left out: the card says each thing once.
function restates(feature, p) {
  const shown = new Set([Number(p.price), p.trial_days, p.rate_limit?.count, ...Object.values(p.included),
    ...p.charges.flatMap((c) => [c.unit_price, c.package_price]).filter(Boolean).map(Number)]
    .filter((n) => typeof n === 'number' && n > 0));
  if (numbersIn(feature).some((n) => shown.has(n))) return true;
  return /\bendpoints?\b|\brate limit|\bfree trial\b/i.test(feature);
}

// One call to action per plan: sign up for it (choosing it in the form), or ask for it when
// sign-up cannot choose it.
function callToAction(p, highlighted) {
  const cls = `cta${highlighted ? '' : ' secondary'}`;
  if (!p.self_service)
    return brand.support_email
      ? el('a', { class: cls, href: `mailto:${brand.support_email}?subject=${encodeURIComponent(`${p.name} plan`)}`, 'data-testid': 'cta' }, `Contact us about ${p.name}`)
      : el('p', { class: 'muted', 'data-testid': 'cta' }, 'Not open to sign-up: ask us.');
  const label = p.trial_days ? `Start the ${p.trial_days}-day free trial` : Number(p.price) === 0 ? 'Start for free' : `Choose ${p.name}`;
  return el('a', { class: cls, href: '#signup-h', 'data-plan-cta': p.id, 'data-testid': 'cta', onclick: () => choose(p.id) }, label);
}

function choose(id) {
  document.getElementById('su-plan').value = id;
  setTimeout(() => document.getElementById('su-email').focus(), 0);
}

function card(p, highlighted) {
  const inc = Object.entries(p.included).map(([m, n]) => quantity(n, metrics, m)).join(', ') || 'pay as you go';
  const over = p.charges.map((c) => chargeText(c, p)).filter(Boolean);
  const endpoints = p.endpoint_names ? `Endpoints: ${p.endpoint_names.join(', ')}` : 'All endpoints';
  const features = p.features.filter((f) => !restates(f, p));
  return el('article', { class: `plan${highlighted ? ' highlight' : ''}`, 'data-plan': p.id, 'aria-labelledby': `plan-${p.id}` },
    highlighted ? el('p', { class: 'badge', 'data-testid': 'highlight' }, 'Most popular') : '',
    el('h3', { id: `plan-${p.id}` }, p.name),
    el('div', { class: 'price', 'data-testid': 'price' }, money(p.price, p.currency, { whole: true })),
    el('div', { class: 'muted' }, `per ${p.interval}${p.trial_days ? `, ${p.trial_days}-day free trial` : ''}`),
    el('p', {}, `Includes ${inc}.`), over.length ? el('p', { class: 'muted' }, over.join('; ')) : '',
    el('p', { class: 'muted' }, rate(p.rate_limit)),
    el('p', { class: 'muted', 'data-testid': 'endpoints' }, endpoints),
    features.length ? el('ul', { class: 'features' }, features.map((f) => el('li', {}, f))) : '',
    callToAction(p, highlighted));
}

// One input per metric the chosen plan meters, under its display name.
function calcInputs() {
  const p = plans.find((x) => x.id === document.getElementById('calc-plan').value);
  const box = document.getElementById('calc-metrics');
  const old = Object.fromEntries([...box.querySelectorAll('input')].map((i) => [i.name, i.value]));
  box.replaceChildren(...(p ? planMetrics(p) : []).map((m) => {
    const id = m === 'api_calls' ? 'calc-calls' : `calc-m-${m}`;
    return el('div', {}, el('label', { for: id }, `${metricName(metrics, m)} a month`),
      el('input', { id, name: m, type: 'number', min: '0', step: '1', value: old[m] ?? (m === 'api_calls' ? '100000' : '0') }));
  }));
  document.getElementById('calc-out').replaceChildren();
}

async function loadPlans() {
  const r = await api('GET', '/v1/plans');
  plans = r.data;
  metrics = r.metrics || {};
  brand = r.portal || {};
  applyBrand(r.portal);
  document.getElementById('plans').replaceChildren(...plans.map((p) => card(p, p.id === brand.highlight)));
  document.getElementById('calc-plan').replaceChildren(...plans.map((p) => el('option', { value: p.id }, p.name)));
  document.getElementById('su-plan').replaceChildren(...plans.filter((p) => p.self_service).map((p) => el('option', { value: p.id }, p.name)));
  for (const id of ['calc-plan', 'su-plan'])
    if (brand.highlight && plans.some((p) => p.id === brand.highlight)) document.getElementById(id).value = brand.highlight;
  calcInputs();
  return plans;
}

document.getElementById('calc-plan').addEventListener('change', calcInputs);

document.getElementById('calc').addEventListener('submit', async (e) => {
  e.preventDefault();
  const plan = document.getElementById('calc-plan').value;
  const out = document.getElementById('calc-out');
  const query = [...document.querySelectorAll('#calc-metrics input')]
    .map((i) => `${encodeURIComponent(i.name)}=${encodeURIComponent(i.value || '0')}`).join('&');
  try {
    const q = await api('GET', `/v1/plans/${encodeURIComponent(plan)}/quote?${query}`);
    if (q.blocked?.length) { // the gateway refuses calls past the allowance: there is no price for that usage
      out.className = 'msg error';
      out.replaceChildren(...q.blocked.map((b) => el('p', { 'data-testid': 'quote-blocked' },
        `Blocked after ${quantity(b.after, metrics, b.metric)} on this plan: calls past the allowance are refused (429), not billed. Choose a larger plan for this usage.`)));
      return;
    }
    out.className = '';
    out.replaceChildren(el('table', {}, el('tbody', {},
      q.lines.map((l) => el('tr', {}, el('td', {}, lineText(l, metrics)), el('td', { class: 'n' }, money(l.amount, q.currency)))),
      el('tr', {}, el('th', { scope: 'row' }, 'Total per period'), el('th', { class: 'n', 'data-testid': 'quote-total' }, money(q.total, q.currency))))));
  } catch (err) { show(out, err.message); }
});

document.getElementById('signup').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = new FormData(e.target), msg = document.getElementById('signup-msg');
  try {
    const r = await api('POST', '/v1/signup', Object.fromEntries(f));
    show(msg, `Welcome, ${r.customer.email}. Your account is ready.`, 'ok');
    document.getElementById('newkey').classList.remove('hidden');
    document.getElementById('newkey-secret').textContent = r.key.secret;
    const gw = r.gateway_url || `${location.protocol}//${location.hostname}:8080`; // public_urls.gateway
    document.getElementById('curl').textContent = `curl -H "Authorization: Bearer ${r.key.secret}" ${gw}/v1/basic/geocode?q=Berlin`;
    e.target.reset();
  } catch (err) { show(msg, err.message); }
});

document.getElementById('copy').addEventListener('click', async () => {
  const secret = document.getElementById('newkey-secret').textContent;
  try { await navigator.clipboard.writeText(secret); show(document.getElementById('signup-msg'), 'Copied.', 'ok'); }
  catch { show(document.getElementById('signup-msg'), 'Select the key and copy it by hand.'); }
});

document.getElementById('login').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    await api('POST', '/v1/login', Object.fromEntries(new FormData(e.target)));
    location.href = '/portal/app.html';
  } catch (err) { show(document.getElementById('login-msg'), err.message); }
});

loadPlans().catch((err) => show(document.getElementById('plans'), err.message));
