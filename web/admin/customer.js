// customer.js - one customer for the owner: profile, Stripe sync state, suspend/resume, a plan
// change after its preview (what is prorated now, what changes at the period's end), cancellation
// (at the period's end or now, after a confirm step; kept while it is only scheduled), a credit on
// the next invoice and that invoice so far, usage, keys (revoke), invoices.
import { api, apiAll, el, show, fmtDate, resume } from './lib.js';
import { money, moneyMinor, currencyDigits, num, dateTime, metricName, lineText } from './format.js';

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
  showSubscription(c);
  document.getElementById('credit-amount-label').textContent = `Credit (${currency.toUpperCase()})`;
  await showUpcoming(metrics);
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
let plans = null, planInfo = {}, currency = 'usd';
async function fillPlans(c) {
  if (!plans) {
    planInfo = await api('GET', '/v1/plans');
    plans = planInfo.data;
  }
  const cur = plans.find((p) => p.id === c.plan)?.currency;
  currency = cur || currency;
  const sel = document.getElementById('plan-select');
  sel.replaceChildren(...plans.filter((p) => !cur || p.currency === cur).map((p) =>
    el('option', { value: p.id }, `${p.name || p.id} (${money(p.price, p.currency, { whole: true })}/${p.interval})`)));
  sel.value = c.pending_plan || c.plan;
}
// A decimal text of the currency ("12.5") in whole minor units (1250n), exactly; null when it has
// more decimals than the currency has.
function toMinor(text, cur) {
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(String(text));
  const d = currencyDigits(cur);
  if (!m || (m[3] || '').length > d) return null;
  const v = BigInt(m[2] + (m[3] || '').padEnd(d, '0'));
  return m[1] ? -v : v;
}

// The preview of a change (GET .../plan/preview, the customer's own preview), then Confirm.
document.getElementById('plan-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const plan = document.getElementById('plan-select').value, when = document.getElementById('plan-when').value;
  const note = document.getElementById('plan-note');
  (async () => {
    const p = await api('GET', `${base}/plan/preview?plan=${encodeURIComponent(plan)}${when ? `&when=${when}` : ''}`);
    const cur = p.plan.currency, fee = `${money(p.plan.price, cur, { whole: true })}/${p.plan.interval}`;
    const parts = [];
    if (p.from === p.to) parts.push(el('p', {}, `Already on ${p.to}: nothing changes.`));
    else if (p.effective === 'period_end') {
      parts.push(el('p', {}, `${p.from} → ${p.to} at the end of the period, on ${fmtDate(p.effective_at)}. Nothing is charged or credited now; from then the fee is ${fee}.`));
    } else {
      parts.push(el('p', {}, `${p.from} → ${p.to} now. The fee becomes ${fee}.`));
      const minors = p.proration.map((i) => toMinor(i.amount, cur));
      if (p.proration.length) {
        parts.push(el('ul', {}, p.proration.map((i) => el('li', {}, `${lineText(i, planInfo.metrics || {})}: ${money(i.amount, cur)}`))));
        if (minors.every((m) => m !== null)) {
          const net = minors.reduce((a, b) => a + b, 0n);
          parts.push(el('p', {}, net === 0n ? 'Net: nothing to charge or credit.' : net > 0n
            ? `Net: ${moneyMinor(net, cur)} charged on the next invoice, beside the plan's fee.`
            : `Net: ${moneyMinor(-net, cur)} credited on the next invoice, beside the plan's fee.`));
        }
      } else parts.push(el('p', {}, 'Nothing is prorated (no paid time in this period yet).'));
    }
    if (p.from !== p.to) {
      parts.push(el('p', { class: 'row' },
        el('button', { type: 'button', id: 'confirm-plan', onclick: () => act(async () => {
          const c = await api('PATCH', base, when ? { plan, when } : { plan });
          note.replaceChildren();
          show(msg, c.pending_plan ? `Moves to ${c.pending_plan} on ${fmtDate(c.pending_at)}.` : `Now on ${c.plan}.`, 'ok');
        }) }, 'Confirm change'),
        el('button', { type: 'button', class: 'secondary', onclick: () => note.replaceChildren() }, 'Back')));
    }
    note.replaceChildren(...parts);
  })().catch((err) => show(msg, err.message));
});

// Cancellation: scheduled for the period's end (access and billing go on until then, and it can
// be undone: Keep subscription) or at once (access stops, a final invoice bills the fee to now).
function showSubscription(c) {
  const scheduled = Boolean(c.cancel_at) && c.status !== 'canceled';
  document.getElementById('sub-state').textContent = c.status === 'canceled' ? 'Canceled.'
    : scheduled ? `Cancels at the end of the period, on ${fmtDate(c.cancel_at)}; until then it can be kept.`
      : `Renews on ${fmtDate(c.current_period.end)}.`;
  document.getElementById('cancel-sub').classList.toggle('hidden', scheduled || c.status === 'canceled');
  document.getElementById('keep-sub').classList.toggle('hidden', !scheduled);
}
document.getElementById('cancel-sub').addEventListener('click', () => {
  (async () => {
    const c = await api('GET', base);
    const note = document.getElementById('cancel-note');
    const cancel = (atPeriodEnd) => act(async () => {
      const r = await api('POST', `${base}/cancel`, { at_period_end: atPeriodEnd });
      note.replaceChildren();
      show(msg, r.status === 'canceled' ? 'Canceled now.' : `Cancels on ${fmtDate(r.cancel_at)}.`, 'ok');
    });
    note.replaceChildren(
      el('p', {}, `At the period's end, ${fmtDate(c.current_period.end)}: the plan and keys work until then, the period is invoiced as usual, and it can be kept until then.`),
      el('p', {}, 'Now: access stops at once, and a final invoice bills the fee up to now and the usage to date.'),
      el('p', { class: 'row' },
        el('button', { type: 'button', id: 'confirm-cancel-end', class: 'danger', onclick: () => cancel(true) }, 'Cancel at the period\'s end'),
        el('button', { type: 'button', id: 'confirm-cancel-now', class: 'danger', onclick: () => cancel(false) }, 'Cancel now'),
        el('button', { type: 'button', class: 'secondary', onclick: () => note.replaceChildren() }, 'Back')));
  })().catch((err) => show(msg, err.message));
});
document.getElementById('keep-sub').addEventListener('click', () => act(async () => {
  await api('POST', `${base}/resume`, {});
  show(msg, 'The subscription continues: the cancellation is undone.', 'ok');
}));

// A credit: a positive amount of the customer's currency, sent as a negative one-off item.
document.getElementById('credit-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const amount = document.getElementById('credit-amount'), desc = document.getElementById('credit-desc');
  const text = amount.value.trim(), d = currencyDigits(currency);
  const minor = /^\d+(\.\d+)?$/.test(text) ? toMinor(text, currency) : null;
  if (minor === null || minor <= 0n) {
    amount.setAttribute('aria-invalid', 'true');
    show(msg, `Credit: a positive amount in ${currency.toUpperCase()}${d ? ` with at most ${d} decimal${d === 1 ? '' : 's'}` : ', whole units'}, such as ${d ? `12.${'5'.padEnd(d, '0')}` : '1200'}.`);
    amount.focus();
    return;
  }
  amount.removeAttribute('aria-invalid');
  if (!desc.value.trim()) {
    desc.setAttribute('aria-invalid', 'true');
    show(msg, 'Description: say what the credit is for (it is printed on the invoice).');
    desc.focus();
    return;
  }
  desc.removeAttribute('aria-invalid');
  act(async () => {
    const r = await api('POST', `${base}/items`, { description: desc.value.trim(), amount: `-${text}` });
    amount.value = '';
    desc.value = '';
    show(msg, `Credit of ${money(r.amount.replace(/^-/, ''), r.currency)} added to the next invoice.`, 'ok');
  });
});

// The current period's invoice so far: the lines, with items and prorations, and its total.
async function showUpcoming(metrics) {
  const body = document.getElementById('upcoming');
  let u;
  try { u = await api('GET', `${base}/invoices/upcoming`); } catch (err) {
    body.replaceChildren(el('tr', {}, el('td', { colspan: '2', class: 'muted' }, err.message)));
    return;
  }
  body.replaceChildren(...(u.lines || []).map((l) => el('tr', {}, el('td', {}, lineText(l, metrics)), el('td', { class: 'n' }, money(l.amount, u.currency)))),
    el('tr', { 'data-total': '' }, el('th', { scope: 'row' }, `Total for ${fmtDate(u.period.start)} – ${fmtDate(u.period.end)}`), el('td', { class: 'n' }, money(u.total, u.currency))));
}

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
