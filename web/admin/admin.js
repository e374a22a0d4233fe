// admin.js - the owner's dashboard: every figure from GET /v1/admin/dashboard; webhook endpoints,
// deliveries and the events feed from the notification routes (docs/api.md, Events and webhooks).
import { api, el, show, resume, signIn, signOut } from './lib.js';
import { money, num, dateTime, day, metricName } from './format.js';

let chart = null;
const rows = (obj) => Object.entries(obj).map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', { class: 'n' }, num(v))));

// Amounts come as exact decimal strings in each currency's digits, formatted from that text
// (format.js), never through floating point. With plans in several currencies there is no single
// MRR: the server's mrr is then null and each currency shows its own.
const inCur = (amount, code) => money(amount, code);
let oneCurrency = null; // the only currency of the plans, if there is one
function showRevenue(d) {
  const cur = Object.entries(d.revenue.currencies);
  const perCur = (f) => cur.map(([code, c]) => inCur(c[f], code)).join(' · ') || '—';
  const codes = new Set([...cur.map(([code]) => code), ...Object.values(d.mrr_by_plan_currency || {})]);
  oneCurrency = codes.size === 1 ? [...codes][0] : null;
  const single = (v) => (oneCurrency ? inCur(v, oneCurrency) : v);
  document.getElementById('mrr').textContent = d.mrr !== null ? single(d.mrr) : perCur('mrr');
  document.getElementById('arr').textContent = d.arr !== null ? single(d.arr) : perCur('arr');
  document.getElementById('paying').textContent = `${num(d.paying_customers)} paying customer${d.paying_customers === 1 ? '' : 's'}`;
  document.getElementById('trials').textContent = num(d.trialing_customers);
  const day = (t) => t.slice(0, 10);
  document.getElementById('rev-month').value = d.revenue.from.slice(0, 7);
  document.getElementById('rev-window').textContent =
    `Invoices finalized from ${day(d.revenue.from)} to ${day(d.revenue.to)} (exclusive), by their state now; drafts and voided invoices are not revenue.`;
  document.getElementById('revenue').replaceChildren(...cur.map(([code, c]) => el('tr', { 'data-currency': code },
    el('th', { scope: 'row' }, code.toUpperCase()),
    ...['invoiced', 'collected', 'outstanding', 'uncollectible', 'mrr'].map((f) =>
      el('td', { class: 'n', 'data-field': f, 'data-label': f === 'mrr' ? 'MRR' : f[0].toUpperCase() + f.slice(1) }, inCur(c[f], code))),
    el('td', { class: 'n', 'data-label': 'Paying customers' }, num(c.paying_customers)),
    el('td', { class: 'n', 'data-label': 'In trial' }, c.trialing_customers ? `${num(c.trialing_customers)} (${inCur(c.trial_mrr, code)}/month)` : '0'))));
  const k = d.revenue.customers;
  document.getElementById('outside-mrr').textContent =
    `Not in MRR: ${num(k.trialing)} in trial, ${num(k.incomplete)} waiting for a card, ${num(k.suspended)} suspended, ${num(k.canceled)} canceled, ${num(k.free)} on a free plan.`;
}

// The usage chart's window: the last N days (UTC, ending today), or the custom from/to dates.
function rangeQuery() {
  const range = document.getElementById('range').value;
  if (range === 'custom') {
    const from = document.getElementById('range-from').value, to = document.getElementById('range-to').value;
    return [from && `from=${encodeURIComponent(from)}`, to && `to=${encodeURIComponent(to)}`].filter(Boolean);
  }
  const today = new Date().toISOString().slice(0, 10);
  return [`from=${new Date(Date.parse(today) - (Number(range) - 1) * 86400e3).toISOString().slice(0, 10)}`, `to=${today}`];
}

// Every day of the window (the API lists only days with usage), one line per metric under its
// display name, and the same in words for those who do not see the chart.
const palette = ['#2457d6', '#1d7a46', '#b25b00', '#8e44ad', '#b42318', '#0f766e'];
function showUsage(d) {
  const days = [];
  for (let t = Date.parse(d.usage_window.from); t <= Date.parse(d.usage_window.to); t += 86400e3) days.push(new Date(t).toISOString().slice(0, 10));
  const series = Object.entries(d.usage_per_day).sort(([a], [b]) => (a === 'api_calls' ? -1 : b === 'api_calls' ? 1 : a.localeCompare(b)));
  const name = (m) => metricName(d.metrics, m);
  const totals = series.map(([m, per]) => `${num(Object.values(per).reduce((a, b) => a + b, 0))} ${name(m)}`);
  document.getElementById('usage-window').textContent =
    `${day(`${d.usage_window.from}T00:00:00Z`)} to ${day(`${d.usage_window.to}T00:00:00Z`)} (UTC, ${days.length} days): ${totals.join(', ') || 'no usage'}.`;
  document.getElementById('range-from').value = d.usage_window.from;
  document.getElementById('range-to').value = d.usage_window.to;
  if (!window.Chart) return;
  if (chart) chart.destroy();
  chart = new window.Chart(document.getElementById('daily'), {
    type: 'line',
    data: { labels: days, datasets: series.map(([m, per], i) => ({ label: name(m), data: days.map((x) => per[x] || 0), borderColor: palette[i % palette.length], backgroundColor: palette[i % palette.length] })) },
    options: { animation: false, plugins: { legend: { display: series.length > 0 } }, scales: { y: { beginAtZero: true } } },
  });
}

// period: "YYYY-MM" for the revenue split of that month; absent: this month.
let revPeriod;
async function load(period = revPeriod) {
  revPeriod = period;
  const q = [period && `period=${encodeURIComponent(period)}`, ...rangeQuery()].filter(Boolean);
  const d = await api('GET', `/v1/admin/dashboard${q.length ? `?${q.join('&')}` : ''}`);
  document.getElementById('login-box').classList.add('hidden');
  document.getElementById('dash').classList.remove('hidden');
  document.getElementById('signout').classList.remove('hidden');
  document.getElementById('asof').textContent = `as of ${dateTime(d.as_of)}`;
  showRevenue(d);
  loadNotify().catch((err) => show(msgBox(), err.message));
  document.getElementById('usage-rev').textContent = d.usage_revenue_last_period !== null
    ? (oneCurrency ? inCur(d.usage_revenue_last_period, oneCurrency) : d.usage_revenue_last_period) : Object.entries(d.revenue.currencies).map(([code, c]) => inCur(c.usage_revenue_last_period, code)).join(' · ');
  document.getElementById('upgrades').textContent = num(d.upgrades_this_month);
  document.getElementById('customers').textContent = num(Object.values(d.customers_by_plan).reduce((a, b) => a + b, 0));
  document.getElementById('calls').textContent = num(d.calls_this_period);
  document.getElementById('signups').textContent = num(d.signups_this_month);
  document.getElementById('churn').textContent = num(d.churned_this_month);
  document.getElementById('by-plan').replaceChildren(...rows(d.customers_by_plan));
  document.getElementById('by-status').replaceChildren(...rows(d.customers_by_status));
  const who = (c) => el('td', {}, el('a', { href: `/admin/customer.html?id=${encodeURIComponent(c.id)}` }, c.email));
  document.getElementById('top-calls').replaceChildren(...d.top_by_calls.map((c) => el('tr', {}, who(c), el('td', {}, c.plan), el('td', { class: 'n' }, num(c.calls)))));
  // each currency ranked on its own (the server never compares amounts across currencies)
  const topRev = [];
  d.top_by_revenue.forEach((c, i) => {
    if (c.currency && (i === 0 || d.top_by_revenue[i - 1].currency !== c.currency))
      topRev.push(el('tr', { 'data-currency': c.currency }, el('th', { colspan: '3', scope: 'rowgroup' }, c.currency.toUpperCase())));
    topRev.push(el('tr', {}, who(c), el('td', {}, c.plan), el('td', { class: 'n' }, c.currency ? inCur(c.billed, c.currency) : c.billed)));
  });
  document.getElementById('top-rev').replaceChildren(...topRev);
  document.getElementById('near').replaceChildren(...d.near_quota.map((c) => el('tr', {}, who(c), el('td', {}, c.plan), el('td', { class: 'n' }, `${num(c.calls)} / ${num(c.included)}${c.over ? ' (over)' : ''}`))));
  document.getElementById('past-due').replaceChildren(...(d.past_due || []).map((c) => el('tr', {}, who(c), el('td', {}, c.status), el('td', {}, c.past_due_since ? c.past_due_since.slice(0, 10) : '—'))));
  const planCur = d.mrr_by_plan_currency || {};
  document.getElementById('by-plan-mrr').replaceChildren(...Object.entries(d.mrr_by_plan).map(([p, v]) => el('tr', {}, el('td', {}, p),
    el('td', { class: 'n', 'data-currency': planCur[p] || '' }, planCur[p] ? inCur(v, planCur[p]) : v))));
  document.getElementById('trial').textContent = d.trial_conversion === null ? '—' : `${Math.round(d.trial_conversion * 100)}%`;
  showUsage(d);
}

// Webhook endpoints (the owner's), their recent deliveries and the events feed.
const msgBox = () => document.getElementById('msg');
async function act(fn) {
  try { await fn(); await loadNotify(); } catch (err) { show(msgBox(), err.message); }
}
function revealSecret(e) {
  const box = document.getElementById('wh-secret');
  box.textContent = `Signing secret for ${e.url}: ${e.secret}  (shown once — copy it now)`;
  box.classList.remove('hidden');
}
// A delivery's attempts (when, HTTP status or none, response time, the answer's first bytes or
// the error), in a row under its own; a second click folds it away.
async function showAttempts(d, urls, btn) {
  const tr = btn.closest('tr');
  if (tr.nextElementSibling?.dataset.attemptsOf === d.id) {
    tr.nextElementSibling.remove();
    btn.setAttribute('aria-expanded', 'false');
    return;
  }
  const full = await api('GET', `/v1/admin/webhook-deliveries/${encodeURIComponent(d.id)}`);
  const items = full.attempts.map((a) => el('li', {},
    `${dateTime(a.at)}: ${a.status ? `HTTP ${a.status}` : 'no HTTP answer'} in ${num(a.response_ms)} ms${a.error ? ` — ${a.error}` : ''}`,
    a.response_excerpt ? el('pre', { tabindex: '0' }, a.response_excerpt) : ''));
  tr.after(el('tr', { 'data-attempts-of': d.id }, el('td', { colspan: '5' },
    el('p', { class: 'muted' }, `To ${urls[d.endpoint] || d.endpoint}, webhook-id ${d.id}${full.next_attempt_at ? `; next attempt ${dateTime(full.next_attempt_at)}` : ''}`),
    items.length ? el('ul', { class: 'attempts', 'data-testid': 'attempts' }, items) : el('p', { class: 'muted' }, 'Not attempted yet.'))));
  btn.setAttribute('aria-expanded', 'true');
}

async function loadNotify() {
  const { data } = await api('GET', '/v1/admin/webhook-endpoints');
  const urls = Object.fromEntries(data.map((e) => [e.id, e.url]));
  document.getElementById('wh-endpoints').replaceChildren(...(data.length ? data.map((e) => el('tr', {},
    el('td', {}, el('code', {}, e.url)), el('td', {}, e.events.join(', ')), el('td', {}, e.source),
    el('td', {}, e.enabled ? (e.consecutive_failures ? `failing (${e.consecutive_failures} in a row)` : 'enabled') : `disabled: ${e.disabled_reason}`),
    el('td', {},
      el('button', { type: 'button', class: 'secondary', onclick: () => act(() => api('POST', `/v1/admin/webhook-endpoints/${e.id}/test`, {})
        .then(() => show(document.getElementById('wh-msg'), `A test event (webhook.test) is on its way to ${e.url}: its delivery shows below.`, 'ok'))) }, 'Send test'), ' ',
      e.enabled ? '' : el('button', { type: 'button', class: 'secondary', onclick: () => act(() => api('PATCH', `/v1/admin/webhook-endpoints/${e.id}`, { enabled: true })) }, 'Enable'), ' ',
      e.source === 'config' ? '' : el('button', { type: 'button', class: 'secondary', onclick: () => act(() => api('POST', `/v1/admin/webhook-endpoints/${e.id}/rotate-secret`, {}).then(revealSecret)) }, 'Rotate secret'), ' ',
      e.source === 'config' ? '' : el('button', { type: 'button', class: 'danger', onclick: () => confirm('Delete this endpoint and its delivery log?') && act(() => api('DELETE', `/v1/admin/webhook-endpoints/${e.id}`)) }, 'Delete'))))
    : [el('tr', {}, el('td', { colspan: '5', class: 'muted' }, 'No endpoints.'))]));
  const log = await api('GET', '/v1/admin/webhook-deliveries?limit=20');
  document.getElementById('wh-deliveries').replaceChildren(...(log.data.length ? log.data.map((d) => el('tr', {},
    el('td', {}, d.event_type), el('td', {}, d.state), el('td', { class: 'n' }, num(d.attempts)),
    el('td', {}, d.last_error || (d.last_status ? `HTTP ${d.last_status}` : '—')),
    el('td', {}, el('button', { type: 'button', class: 'secondary', 'aria-expanded': 'false', onclick: (ev) => showAttempts(d, urls, ev.currentTarget).catch((err) => show(msgBox(), err.message)) }, 'Details'), ' ',
      el('button', { type: 'button', class: 'secondary', onclick: () => act(() => api('POST', `/v1/admin/webhook-deliveries/${d.id}/resend`, {})) }, 'Resend'))))
    : [el('tr', {}, el('td', { colspan: '5', class: 'muted' }, 'Nothing sent yet.'))]));
  const ev = await api('GET', '/v1/admin/events?limit=50');
  document.getElementById('events').replaceChildren(...ev.data.map((e) => el('tr', {},
    el('td', {}, dateTime(e.created_at)), el('td', {}, e.type),
    el('td', {}, e.customer_id ? el('a', { href: `/admin/customer.html?id=${encodeURIComponent(e.customer_id)}` }, e.customer_id) : '—'),
    el('td', {}, el('code', {}, JSON.stringify(e.data).slice(0, 160))))));
}
document.getElementById('wh-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const events = document.getElementById('wh-events').value.split(',').map((x) => x.trim()).filter(Boolean);
  act(() => api('POST', '/v1/admin/webhook-endpoints', { url: document.getElementById('wh-url').value, events: events.length ? events : '*' })
    .then((r) => { e.target.reset(); revealSecret(r); }));
});

document.getElementById('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const field = document.getElementById('token');
  const token = field.value;
  field.value = ''; // the token is not kept anywhere: the session cookie (HttpOnly) replaces it
  signIn(token).then(() => load()).catch((err) => show(document.getElementById('msg'), err.message));
});

document.getElementById('rev-month').addEventListener('change', (e) => {
  if (e.target.value) load(e.target.value).catch((err) => show(document.getElementById('msg'), err.message));
});

// A new range reloads the figures; a refused one (from after to) is said, and cleared by the next.
const custom = () => document.getElementById('range').value === 'custom';
const reloadRange = () => load().then(() => { msgBox().className = ''; msgBox().replaceChildren(); })
  .catch((err) => show(msgBox(), err.message));
document.getElementById('range').addEventListener('change', () => {
  for (const e of document.querySelectorAll('.custom-range')) e.classList.toggle('hidden', !custom());
  if (!custom()) reloadRange();
});
document.getElementById('range-form').addEventListener('submit', (e) => {
  e.preventDefault();
  reloadRange();
});

document.getElementById('signout').addEventListener('click', () => {
  signOut().finally(() => location.reload());
});

resume().then((yes) => (yes ? load() : null)).catch((err) => show(document.getElementById('msg'), err.message));
