// index.js - pricing, calculator, sign-up and sign-in.
import { api, el, show } from './api.js';
import { applyBrand } from './brand.js';
import { money, num, quantity, perUnit, metricName, metricUnit, lineText } from './format.js';

const rate = (r) => (r ? `${num(r.count)} calls / ${r.per}, bursts of ${num(r.burst)}` : 'no rate limit');
let metrics = {};

// "€0.0005 per call", "$2.50 per 10 GB"; tiered charges by their model's name.
function chargeText(c, p) {
  const cur = p.currency, beyond = p.included[c.metric] !== undefined ? ' beyond the included' : '';
  if (c.unit_price) return /^[0.]*$/.test(c.unit_price) ? '' : `${perUnit(c.unit_price, cur, metrics, c.metric)}${beyond}`;
  if (c.package_price) return `${money(c.package_price, cur)} per ${num(c.package_size)} ${metricUnit(metrics, c.metric)}`;
  return `${metricName(metrics, c.metric)}: ${c.model} pricing`;
}

async function loadPlans() {
  const r = await api('GET', '/v1/plans');
  const { data } = r;
  metrics = r.metrics || {};
  applyBrand(r.portal);
  document.querySelector('label[for="calc-calls"]').textContent = `${metricName(metrics, 'api_calls')} a month`;
  const box = document.getElementById('plans');
  box.replaceChildren(...data.map((p) => {
    const inc = Object.entries(p.included).map(([m, n]) => quantity(n, metrics, m)).join(', ') || 'pay as you go';
    const over = p.charges.map((c) => chargeText(c, p)).filter(Boolean);
    return el('article', { class: 'plan', 'data-plan': p.id },
      el('h3', {}, p.name),
      el('div', { class: 'price', 'data-testid': 'price' }, money(p.price, p.currency, { whole: true })), el('div', { class: 'muted' }, `per ${p.interval}${p.trial_days ? `, ${p.trial_days}-day free trial` : ''}`),
      el('p', {}, `Includes ${inc}.`), over.length ? el('p', { class: 'muted' }, over.join('; ')) : '',
      el('p', { class: 'muted' }, rate(p.rate_limit)),
      el('p', { class: 'muted' }, p.endpoints ? `Endpoints: ${p.endpoints.join(', ')}` : 'All endpoints'),
      el('ul', { class: 'features' }, p.features.map((f) => el('li', {}, f))));
  }));
  for (const id of ['calc-plan', 'su-plan'])
    document.getElementById(id).replaceChildren(...data.map((p) => el('option', { value: p.id }, p.name)));
  return data;
}

document.getElementById('calc').addEventListener('submit', async (e) => {
  e.preventDefault();
  const plan = document.getElementById('calc-plan').value, calls = document.getElementById('calc-calls').value || '0';
  const out = document.getElementById('calc-out');
  try {
    const q = await api('GET', `/v1/plans/${encodeURIComponent(plan)}/quote?api_calls=${encodeURIComponent(calls)}`);
    out.replaceChildren(el('table', {}, el('tbody', {},
      q.lines.map((l) => el('tr', {}, el('td', {}, lineText(l, metrics)), el('td', { class: 'n' }, money(l.amount, q.currency)))),
      el('tr', {}, el('th', {}, 'Total per period'), el('th', { class: 'n', 'data-testid': 'quote-total' }, money(q.total, q.currency))))));
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
