// app.js - a signed-in developer's account: plan, live usage, keys, webhooks, invoices.
import { api, apiAll, el, show } from './api.js';
import { applyBrand } from './brand.js';
import { money, num, day as fmtDate, dateTime, metricName, quantity, lineText } from './format.js';

const msg = document.getElementById('msg');
let chart = null;
let metrics = {}; // GET /v1/plans's display names and units
// The plans' display names and branding, applied before anything that shows a metric is drawn:
// the first fetch is shared by loadAccount and loadUsage (which run together); later refreshes
// of the account fetch the plans again.
let firstPlans = null, accountShown = false;
function usePlans(p) {
  metrics = p.metrics || {};
  applyBrand(p.portal);
  return p;
}
const plansReady = () => (firstPlans ||= api('GET', '/v1/plans').then(usePlans));

async function loadAccount() {
  const me = await api('GET', '/v1/me');
  const trial = me.status === 'trialing' ? `, trial until ${fmtDate(me.trial_end)} (${Math.max(0, Math.ceil((Date.parse(me.trial_end) - Date.now()) / 864e5))} days left)` : '';
  const pending = me.pending_plan ? ` Changes to ${me.pending_plan} on ${fmtDate(me.pending_at)}.` : '';
  const cancels = me.cancel_at && me.status !== 'canceled' ? ` Cancels on ${fmtDate(me.cancel_at)}.` : '';
  document.getElementById('acct').textContent = `${me.email} — plan ${me.plan}, ${me.status}${trial}. Period ${fmtDate(me.current_period.start)} to ${fmtDate(me.current_period.end)}.${pending}${cancels}`;
  // Cancelling is offered until it is scheduled; then, until the period ends, keeping the subscription.
  const scheduled = Boolean(me.cancel_at) && me.status !== 'canceled';
  document.getElementById('cancel-sub').classList.toggle('hidden', Boolean(me.cancel_at) || me.status === 'canceled');
  document.getElementById('resume-sub').classList.toggle('hidden', !scheduled);
  const plans = accountShown ? usePlans(await api('GET', '/v1/plans')) : await plansReady();
  accountShown = true;
  const { data } = plans;
  const sel = document.getElementById('plan-select');
  sel.replaceChildren(...data.map((p) => el('option', { value: p.id }, `${p.name} — ${money(p.price, p.currency, { whole: true })}/${p.interval}`)));
  // The API reference's "Upgrade to X" links here with ?plan=X: that plan is chosen, not yet changed.
  const wanted = new URLSearchParams(location.search).get('plan');
  sel.value = wanted && data.some((p) => p.id === wanted) ? wanted : me.plan;
  showBilling(me);
  showStart(me, data.find((p) => p.id === me.plan));
  return me;
}

// "Getting started": the gateway's public address (public_urls.gateway, or this host on the
// gateway's default port) and a curl call to an endpoint the customer's plan includes (its first
// pattern, a trailing "*" filled in; every path when the plan lists none).
function showStart(me, plan) {
  const gw = (me.gateway_url || `${location.protocol}//${location.hostname}:8080`).replace(/\/+$/, '');
  const pattern = plan?.endpoints?.[0];
  const path = !pattern || pattern === '/v1/basic/*' ? '/v1/basic/geocode?q=Berlin' : pattern.replace(/\*$/, 'example');
  document.getElementById('gateway-url').textContent = gw;
  document.getElementById('start-curl').textContent = `curl -H "Authorization: Bearer YOUR_API_KEY" "${gw}${path}"`;
}

// The card on file, and a banner while payments fail (dunning) or the plan waits for a card.
function showBilling(me) {
  document.getElementById('card').textContent = me.payment_method_on_file_at
    ? `A card is on file (added ${fmtDate(me.payment_method_on_file_at)}).`
    : 'No card on file yet.';
  const banner = document.getElementById('dunning');
  const text = me.status === 'past_due'
    ? 'Your last payment failed. Update your card to keep access to the API.'
    : me.status === 'suspended'
      ? 'Your account is suspended. If a payment failed, update your card to restore access.'
      : me.status === 'incomplete' ? 'Your plan needs a card: add one to start it (your API keys work once it is on file).' : '';
  banner.replaceChildren(...(text ? [text, ' ', el('a', { href: '#billing' }, 'Go to billing')] : []));
  banner.classList.toggle('hidden', !text);
}

// Both buttons ask the server for a Stripe page and go there; Stripe sends the customer back to #billing.
function goToStripe(path) {
  api('POST', path, {}).then((r) => { location.href = r.url; }).catch((err) => show(msg, err.message));
}
document.getElementById('add-card').addEventListener('click', () => goToStripe('/v1/me/billing/setup'));
document.getElementById('manage-cards').addEventListener('click', () => goToStripe('/v1/me/billing/portal'));

// The bar's width through the CSSOM: the Content-Security-Policy allows no inline style attribute.
function bar(pct) {
  const d = el('div');
  d.style.width = `${pct}%`;
  return d;
}

async function loadUsage() {
  const [u] = await Promise.all([api('GET', '/v1/me/usage'), plansReady()]);
  document.getElementById('usage').replaceChildren(...u.metrics.map((m) => {
    const pct = m.included ? Math.min(100, (100 * m.used) / m.included) : 0;
    return el('div', { 'data-metric': m.metric },
      el('p', {}, el('strong', {}, metricName(metrics, m.metric)), ` ${num(m.used)} used`, m.included !== null ? ` of ${num(m.included)} included` : '', m.overage ? `, ${num(m.overage)} over` : ''),
      m.included !== null ? el('div', { class: m.used > m.included ? 'bar over' : 'bar', role: 'progressbar', 'aria-valuenow': String(Math.round(pct)), 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-label': `${metricName(metrics, m.metric)} used` }, bar(pct)) : '');
  }));
  document.getElementById('endpoints').replaceChildren(...(u.endpoints.length ? u.endpoints.map((e) =>
    el('tr', {}, el('td', {}, el('code', {}, e.endpoint)), el('td', {}, metricName(metrics, e.metric)), el('td', { class: 'n' }, num(e.units))))
    : [el('tr', {}, el('td', { colspan: '3', class: 'muted' }, 'No calls yet this period.'))]));
  const days = {};
  const series = document.getElementById('range').value === '90' ? u.last_90_days : u.daily;
  for (const d of series) if (d.metric === 'api_calls') days[d.day] = (days[d.day] || 0) + d.units;
  const labels = Object.keys(days).sort();
  if (window.Chart) {
    if (chart) chart.destroy();
    chart = new window.Chart(document.getElementById('daily'), {
      type: 'bar', data: { labels, datasets: [{ label: `${metricName(metrics, 'api_calls')} per day`, data: labels.map((l) => days[l]), backgroundColor: getComputedStyle(document.documentElement).getPropertyValue('--accent').trim() || '#2457d6' }] },
      options: { animation: false, plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } },
    });
  }
  const up = await api('GET', '/v1/me/invoices/upcoming');
  document.getElementById('estimate').textContent = money(up.total, up.currency);
  // What the estimate is made of: the invoice's own lines (the base fee, prorated after a trial;
  // usage priced so far; items), and when the period closes.
  const lines = up.lines || [];
  document.getElementById('estimate-lines').replaceChildren(...(lines.length
    ? lines.map((l) => el('li', {}, `${lineText(l, metrics)}: ${money(l.amount, up.currency)}`))
    : [el('li', { class: 'muted' }, 'Nothing to pay so far: no base fee this period and no usage beyond the allowance.')]));
  document.getElementById('estimate-note').textContent = up.period?.end
    ? `Usage counted up to now; the bill closes on ${fmtDate(up.period.end)}.` : 'Usage counted up to now.';
}

// A working key (active, or rotated and in its grace period) can be revoked; only an active one
// rotated. An expiring key says when it stops working, in the viewer's time zone. A secret shown
// after create or rotate disappears once its key is no longer working.
async function loadKeys() {
  const { data } = await apiAll('/v1/me/keys');
  const box = document.getElementById('key-secret');
  if (box.dataset.keyId && !data.some((k) => k.id === box.dataset.keyId && (k.status === 'active' || k.status === 'expiring'))) {
    box.textContent = '';
    delete box.dataset.keyId;
    box.classList.add('hidden');
  }
  document.getElementById('keys').replaceChildren(...data.map((k) => el('tr', { 'data-key': k.id },
    el('td', { 'data-label': 'Name' }, k.name || '—'), el('td', { 'data-label': 'Prefix' }, el('code', {}, `${k.prefix}…`)),
    el('td', { 'data-label': 'Status' }, k.status === 'expiring' ? `expiring — stops working ${dateTime(k.expires_at)}` : k.status === 'expired' ? `expired ${dateTime(k.expires_at)}` : k.status),
    el('td', { 'data-label': 'Created' }, dateTime(k.created_at)), el('td', { 'data-label': 'Last used' }, k.last_used_at ? dateTime(k.last_used_at) : 'never'),
    el('td', { class: 'actions' }, [
      k.status === 'active' ? el('button', { type: 'button', class: 'secondary', onclick: () => act(() => api('POST', `/v1/me/keys/${k.id}/rotate`, {}).then(reveal)) }, 'Rotate') : '', ' ',
      k.status === 'active' || k.status === 'expiring' ? el('button', { type: 'button', class: 'danger', 'aria-label': `Revoke ${k.name || k.prefix}`, onclick: () => confirm('Revoke this key? Calls with it will fail within a second.') && act(() => api('DELETE', `/v1/me/keys/${k.id}`)) }, 'Revoke') : '']))));
}

async function loadInvoices() {
  const { data } = await apiAll('/v1/me/invoices');
  document.getElementById('invoices').replaceChildren(...(data.length ? data.map((i) => el('tr', {},
    el('td', {}, el('a', { href: `/v1/me/invoices/${i.id}/html`, target: '_blank', rel: 'noopener' }, i.number)), el('td', {}, `${fmtDate(i.period.start)} – ${fmtDate(i.period.end)}`), el('td', {}, i.status),
    el('td', { class: 'n' }, money(i.total, i.currency)))) : [el('tr', {}, el('td', { colspan: '4', class: 'muted' }, 'No invoices yet.'))]));
}

// Webhook endpoints and their delivery log (/v1/me/webhook-endpoints, /v1/me/webhook-deliveries).
function revealSecret(e) {
  const box = document.getElementById('wh-secret');
  box.textContent = `Signing secret for ${e.url}: ${e.secret}  (shown once — copy it now)`;
  box.classList.remove('hidden');
}

// A delivery's attempts (when, HTTP status or none, response time, the answer's first bytes or
// the error), in a row under its own; a second click folds it away.
async function showAttempts(base, d, urls, btn) {
  const tr = btn.closest('tr');
  if (tr.nextElementSibling?.dataset.attemptsOf === d.id) {
    tr.nextElementSibling.remove();
    btn.setAttribute('aria-expanded', 'false');
    return;
  }
  const full = await api('GET', `${base}/webhook-deliveries/${encodeURIComponent(d.id)}`);
  const items = full.attempts.map((a) => el('li', {},
    `${dateTime(a.at)}: ${a.status ? `HTTP ${a.status}` : 'no HTTP answer'} in ${num(a.response_ms)} ms${a.error ? ` — ${a.error}` : ''}`,
    a.response_excerpt ? el('pre', { tabindex: '0' }, a.response_excerpt) : ''));
  tr.after(el('tr', { 'data-attempts-of': d.id }, el('td', { colspan: '5' },
    el('p', { class: 'muted' }, `To ${urls[d.endpoint] || d.endpoint}, webhook-id ${d.id}${full.next_attempt_at ? `; next attempt ${dateTime(full.next_attempt_at)}` : ''}`),
    items.length ? el('ul', { class: 'attempts', 'data-testid': 'attempts' }, items) : el('p', { class: 'muted' }, 'Not attempted yet.'))));
  btn.setAttribute('aria-expanded', 'true');
}

async function loadWebhooks() {
  const { data } = await api('GET', '/v1/me/webhook-endpoints');
  const urls = Object.fromEntries(data.map((e) => [e.id, e.url]));
  document.getElementById('wh-endpoints').replaceChildren(...(data.length ? data.map((e) => el('tr', {},
    el('td', {}, el('code', {}, e.url)), el('td', {}, e.events.join(', ')),
    el('td', {}, e.enabled ? (e.consecutive_failures ? `failing (${e.consecutive_failures} in a row)` : 'enabled') : `disabled: ${e.disabled_reason}`),
    el('td', {},
      el('button', { type: 'button', class: 'secondary', onclick: () => act(() => api('POST', `/v1/me/webhook-endpoints/${e.id}/test`, {})
        .then(() => show(document.getElementById('wh-msg'), `A test event (webhook.test) is on its way to ${e.url}: its delivery shows below.`, 'ok'))) }, 'Send test'), ' ',
      el('button', { type: 'button', class: 'secondary', onclick: () => act(() => api('POST', `/v1/me/webhook-endpoints/${e.id}/rotate-secret`, {}).then(revealSecret)) }, 'Rotate secret'), ' ',
      e.enabled ? '' : el('button', { type: 'button', class: 'secondary', onclick: () => act(() => api('PATCH', `/v1/me/webhook-endpoints/${e.id}`, { enabled: true })) }, 'Enable'), ' ',
      el('button', { type: 'button', class: 'danger', onclick: () => confirm('Delete this endpoint and its delivery log?') && act(() => api('DELETE', `/v1/me/webhook-endpoints/${e.id}`)) }, 'Delete'))))
    : [el('tr', {}, el('td', { colspan: '4', class: 'muted' }, 'No endpoints yet.'))]));
  const log = await api('GET', '/v1/me/webhook-deliveries?limit=20');
  document.getElementById('wh-deliveries').replaceChildren(...(log.data.length ? log.data.map((d) => el('tr', {},
    el('td', {}, d.event_type), el('td', {}, d.state), el('td', { class: 'n' }, num(d.attempts)),
    el('td', {}, d.last_error || (d.last_status ? `HTTP ${d.last_status}` : '—')),
    el('td', {}, el('button', { type: 'button', class: 'secondary', 'aria-expanded': 'false', onclick: (ev) => showAttempts('/v1/me', d, urls, ev.currentTarget).catch((err) => show(msg, err.message)) }, 'Details'), ' ',
      el('button', { type: 'button', class: 'secondary', onclick: () => act(() => api('POST', `/v1/me/webhook-deliveries/${d.id}/resend`, {})) }, 'Resend'))))
    : [el('tr', {}, el('td', { colspan: '5', class: 'muted' }, 'Nothing sent yet.'))]));
}

document.getElementById('wh-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const events = document.getElementById('wh-events').value.split(',').map((x) => x.trim()).filter(Boolean);
  act(() => api('POST', '/v1/me/webhook-endpoints', { url: document.getElementById('wh-url').value, events: events.length ? events : '*' })
    .then((r) => { e.target.reset(); revealSecret(r); }));
});

function reveal(k) {
  const box = document.getElementById('key-secret');
  box.textContent = `${k.name ? `${k.name}: ` : ''}${k.secret}  (shown once — copy it now)`;
  box.dataset.keyId = k.id;
  box.classList.remove('hidden');
}

async function act(fn) {
  try { await fn(); await refresh(); } catch (err) { show(msg, err.message); }
}

async function refresh() {
  await Promise.all([loadAccount(), loadUsage(), loadKeys(), loadInvoices(), loadWebhooks()]);
}

document.getElementById('range').addEventListener('change', () => loadUsage().catch((err) => show(msg, err.message)));

document.getElementById('key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  act(() => api('POST', '/v1/me/keys', { name: document.getElementById('key-name').value }).then(reveal));
});

document.getElementById('plan-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const plan = document.getElementById('plan-select').value;
  const note = document.getElementById('plan-note');
  (async () => {
    // Show what changes, and the prorated amounts, before anything is changed.
    const p = await api('GET', `/v1/me/plan/preview?plan=${encodeURIComponent(plan)}`);
    const limits = p.plan.rate_limit ? `${num(p.plan.rate_limit.count)} calls/${p.plan.rate_limit.per}` : 'no rate limit';
    const inc = Object.entries(p.plan.included).map(([m, n]) => quantity(n, metrics, m)).join(', ') || 'no allowance';
    note.replaceChildren(
      el('p', { 'data-testid': 'plan-preview' }, `${p.from} → ${p.to}: ${money(p.plan.price, p.plan.currency, { whole: true })}/${p.plan.interval}, ${limits}, ${inc}. `,
        p.effective === 'now' ? 'Takes effect now.' : `Takes effect on ${fmtDate(p.effective_at)}.`),
      p.proration.length ? el('ul', {}, p.proration.map((i) => el('li', {}, `${lineText(i, metrics)}: ${money(i.amount, p.plan.currency)}`))) : '',
      el('button', { type: 'button', id: 'confirm-plan', onclick: () => act(async () => {
        const c = await api('POST', '/v1/me/plan', { plan });
        note.textContent = c.pending_plan ? `Your plan changes to ${c.pending_plan} at the end of this period.` : `You are now on ${c.plan}.`;
      }) }, 'Confirm change'));
  })().catch((err) => show(msg, err.message));
});

// Self-service cancellation, at the period's end, after a confirm step that says what happens.
document.getElementById('cancel-sub').addEventListener('click', () => {
  (async () => {
    const me = await api('GET', '/v1/me');
    const note = document.getElementById('cancel-note');
    note.replaceChildren(
      el('p', {}, `Your plan and API keys keep working until ${fmtDate(me.current_period.end)}; this period is billed as usual, then the subscription ends. Until then you can keep it.`),
      el('button', { type: 'button', id: 'confirm-cancel', class: 'danger', onclick: () => act(async () => {
        const c = await api('POST', '/v1/me/cancel', {});
        note.textContent = `Cancels on ${fmtDate(c.cancel_at)}.`;
      }) }, 'Confirm cancellation'), ' ',
      el('button', { type: 'button', class: 'secondary', onclick: () => note.replaceChildren() }, 'Keep my subscription'));
  })().catch((err) => show(msg, err.message));
});

// Undoes the cancellation while its period lasts (POST /v1/me/resume).
document.getElementById('resume-sub').addEventListener('click', () => act(async () => {
  await api('POST', '/v1/me/resume', {});
  document.getElementById('cancel-note').textContent = 'Your subscription continues; nothing was canceled.';
}));

document.getElementById('pw-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const body = Object.fromEntries(new FormData(e.target));
  api('POST', '/v1/me/password', body).then(() => { e.target.reset(); show(msg, 'Password changed; other sessions were signed out.', 'ok'); })
    .catch((err) => show(msg, err.message));
});

// Signing out stops the live refresh first and lets a refresh in flight finish, so no request of
// this page can reach the server after its session ended (it would only get a 401).
let live = null, inflight = Promise.resolve();
async function signOut(path) {
  clearInterval(live);
  await inflight.catch(() => {});
  try { await api('POST', path, {}); } finally { sessionStorage.removeItem('tg_csrf'); location.href = '/portal/'; }
}
document.getElementById('logout').addEventListener('click', () => signOut('/v1/logout'));
// Ends every session of this account, on every device.
document.getElementById('logout-all').addEventListener('click', () => signOut('/v1/logout/all'));

refresh().catch((err) => {
  if (err.status === 401) location.href = '/portal/#login';
  else show(msg, err.message);
});
// live usage; a session that ended meanwhile (expired, or signed out on another device) stops
// the polling and goes to the sign-in form instead of failing every 5 s
live = setInterval(() => {
  inflight = loadUsage().catch((err) => {
    if (err.status !== 401) return;
    clearInterval(live);
    location.href = '/portal/#login';
  });
}, 5000);
