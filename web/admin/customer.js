// customer.js - one customer for the owner: profile, Stripe sync state, usage, keys (revoke), invoices,
// suspend/resume.
import { api, apiAll, el, show, fmtDate, resume } from './lib.js';
import { money, num, dateTime, metricName } from './format.js';

const id = new URLSearchParams(location.search).get('id');
const msg = document.getElementById('msg');
const base = `/v1/admin/customers/${encodeURIComponent(id)}`;

async function load() {
  const c = await api('GET', base);
  document.getElementById('title').textContent = c.email;
  document.getElementById('profile').textContent = `${c.name || '—'} · plan ${c.plan} · ${c.status} · customer since ${fmtDate(c.created_at)} · period ${fmtDate(c.current_period.start)} – ${fmtDate(c.current_period.end)}`;
  // Stripe sync (only with a stripe section): the outbox's state for this customer and its last error.
  const sync = document.getElementById('stripe');
  sync.classList.toggle('hidden', !c.stripe);
  if (c.stripe) {
    sync.textContent = `Stripe: ${c.stripe.state}${c.stripe.customer_id ? ` · ${c.stripe.customer_id}` : ''}` +
      `${c.stripe.attempts ? ` · ${c.stripe.attempts} attempt${c.stripe.attempts === 1 ? '' : 's'}` : ''}` +
      `${c.stripe.last_error ? ` · last error: ${c.stripe.last_error}` : ''}`;
    // billing: stripe: usage goes as meter events, one per metric and hour: summed, not listed
    const mu = c.stripe.usage;
    if (mu && !mu.error)
      sync.textContent += ` · usage: ${num(mu.unsent_units)} units in ${num(mu.unsent_hours)} hour${mu.unsent_hours === 1 ? '' : 's'} not sent yet` +
        `, ${num(mu.pending_calls)} call${mu.pending_calls === 1 ? '' : 's'} pending${mu.failed_calls ? `, ${num(mu.failed_calls)} failed` : ''}`;
  }
  await fillPlans(c);
  const metrics = planInfo.metrics || {};
  document.getElementById('suspend').classList.toggle('hidden', c.status === 'suspended' || c.status === 'canceled');
  document.getElementById('resume').classList.toggle('hidden', c.status !== 'suspended');
  const u = await api('GET', `${base}/usage`);
  document.getElementById('usage').replaceChildren(...u.metrics.map((m) => el('tr', { 'data-metric': m.metric }, el('td', {}, metricName(metrics, m.metric)),
    el('td', { class: 'n' }, num(m.used)), el('td', { class: 'n' }, num(m.included)), el('td', { class: 'n' }, num(m.overage)))));
  const { data: keys } = await apiAll(`${base}/keys`);
  document.getElementById('keys').replaceChildren(...keys.map((k) => el('tr', {}, el('td', {}, k.name || '—'),
    el('td', {}, el('code', {}, `${k.prefix}…`)), el('td', {}, k.status), el('td', {}, k.last_used_at ? dateTime(k.last_used_at) : 'never'),
    el('td', {}, k.status === 'active' || k.status === 'expiring'
      ? el('button', { type: 'button', class: 'danger', onclick: () => act(() => api('DELETE', `/v1/admin/keys/${k.id}`)) }, 'Revoke') : ''))));
  const { data: invs } = await apiAll(`/v1/admin/invoices?customer=${encodeURIComponent(id)}`);
  document.getElementById('invoices').replaceChildren(...(invs.length ? invs.map((i) => el('tr', {}, el('td', {}, i.number || 'draft'),
    el('td', {}, `${fmtDate(i.period.start)} – ${fmtDate(i.period.end)}`), el('td', {}, i.status), el('td', { class: 'n' }, money(i.total, i.currency))))
    : [el('tr', {}, el('td', { colspan: '4', class: 'muted' }, 'No invoices yet.'))]));
}

async function act(fn) {
  try { await fn(); await load(); } catch (err) { show(msg, err.message); }
}

// Plan change: the plans of the customer's currency (a change across currencies is a 400).
let plans = null, planInfo = {};
async function fillPlans(c) {
  if (!plans) {
    planInfo = await api('GET', '/v1/plans');
    plans = planInfo.data;
  }
  const cur = plans.find((p) => p.id === c.plan)?.currency;
  const sel = document.getElementById('plan-select');
  sel.replaceChildren(...plans.filter((p) => !cur || p.currency === cur).map((p) =>
    el('option', { value: p.id }, `${p.name || p.id} (${money(p.price, p.currency, { whole: true })}/${p.interval})`)));
  sel.value = c.pending_plan || c.plan;
}
document.getElementById('plan-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const plan = document.getElementById('plan-select').value;
  act(async () => {
    const c = await api('PATCH', base, { plan });
    show(msg, c.pending_plan ? `Moves to ${c.pending_plan} on ${fmtDate(c.pending_at)}.` : `Now on ${c.plan}.`, 'ok');
  });
});

document.getElementById('suspend').addEventListener('click', () => act(() => api('PATCH', base, { status: 'suspended' })));
document.getElementById('resume').addEventListener('click', () => act(() => api('PATCH', base, { status: 'active' })));

// back to the list as the owner left it: customers.js passes its filters in ?list= (only the
// list's own parameters are carried over)
const listed = new URLSearchParams(new URLSearchParams(location.search).get('list') || '');
const back = new URLSearchParams();
for (const k of ['q', 'plan', 'status', 'sort', 'order']) if (listed.get(k)) back.set(k, listed.get(k));
if (back.toString()) document.getElementById('back').href = `/admin/customers.html?${back}`;

resume().then((yes) => {
  if (!yes) location.href = '/admin/';
  else load().catch((err) => show(msg, err.message));
});
