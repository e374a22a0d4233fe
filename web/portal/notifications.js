// notifications.js - the account page's "Notifications and budget" section: which events reach
// the customer by email (/v1/me/notification-settings), the monthly budget against the estimated
// bill (/v1/me/budget), and a new confirmation link while the address is unconfirmed
// (POST /v1/me/confirmation). Money never passes through a floating-point number: the budget is
// typed as text, parsed here into whole minor units (amount_minor) and shown from the server's
// exact decimal strings.
import { api, el, show } from './api.js';
import { money } from './format.js';

// What each event means to the customer; the list itself comes from the server (email_choices),
// so a type added later shows up under its own name until it gets a sentence here.
const DESCRIPTIONS = {
  'usage.threshold_reached': 'Usage reached 80, 100 or 120 % of an allowance included in your plan',
  'quota.exhausted': 'A quota is used up and calls are refused until the period ends',
  'budget.exceeded': 'The estimated bill passed your monthly budget',
  'trial.will_end': 'Your free trial ends in a few days',
  'invoice.finalized': 'An invoice is ready',
  'invoice.paid': 'An invoice was paid',
  'invoice.payment_failed': 'A payment failed',
  'account.past_due': 'Your account is past due (a payment is missing)',
  'account.suspended': 'Your account was suspended',
  'account.resumed': 'Your account works again',
  'key.created': 'An API key was created',
  'key.rotated': 'An API key was rotated',
  'key.revoked': 'An API key was revoked',
  'plan.changed': 'Your plan changed',
};

// "49.50" -> 4950 for a currency of 2 digits, by the digits of the text alone: exact, unlike
// 49.5 * 100 in floating point (0.29 * 100 is 28.999999999999996). null for an empty field;
// throws with a sentence for anything else than a plain positive amount.
export function parseMinor(text, digits) {
  const t = text.trim();
  if (t === '') return null;
  const m = /^(\d{1,10})(?:\.(\d*))?$/.exec(t);
  if (!m) throw new Error(`Type an amount like ${digits > 0 ? `49.${'5'.padEnd(digits, '0')}` : '4950'}: digits, and a point before the ${digits} decimal digit${digits === 1 ? '' : 's'}.`);
  const frac = m[2] || '';
  if (frac.length > digits) throw new Error(digits === 0 ? 'This currency has no decimal digits.' : `At most ${digits} decimal digit${digits === 1 ? '' : 's'}.`);
  const minor = Number(m[1] + frac.padEnd(digits, '0')); // at most 13 digits: an exact integer
  if (minor <= 0) throw new Error('The budget must be above zero; remove it instead.');
  return minor;
}

const $ = (id) => document.getElementById(id);
let digits = 2;

function showBudget(b) {
  digits = b.currency_digits;
  const cur = b.currency.toUpperCase();
  $('budget-cur').textContent = cur;
  const bar = $('budget-bar');
  if (b.budget === null) {
    $('budget-state').textContent = `No budget set. Estimated bill so far this period: ${money(b.estimate, cur)}.`;
    bar.classList.add('hidden');
  } else {
    const pct = b.budget_minor > 0 ? Math.min(100, Math.round((100 * b.estimate_minor) / b.budget_minor)) : 0;
    $('budget-state').textContent = `Estimated bill so far: ${money(b.estimate, cur)} of your ${money(b.budget, cur)} budget${b.exceeded ? ' — over budget' : ` (${pct} %)`}.`;
    bar.classList.remove('hidden');
    bar.classList.toggle('over', b.exceeded);
    bar.setAttribute('aria-valuenow', String(pct));
    bar.firstElementChild.style.width = `${pct}%`; // the CSSOM: the CSP allows no style attribute
  }
  $('budget-amount').value = b.budget ?? '';
}

function showEmail(st) {
  const all = st.email_events === '*';
  const chosen = new Set(all ? st.email_choices : st.email_events);
  $('email-events').replaceChildren(...st.email_choices.map((type) => {
    const id = `email-ev-${type.replace(/[^a-z0-9]/gi, '-')}`;
    return el('div', { class: 'check' },
      el('input', { type: 'checkbox', id, name: 'email_events', value: type, ...(chosen.has(type) ? { checked: '' } : {}), ...(st.email_enabled ? {} : { disabled: '' }) }),
      el('label', { for: id }, DESCRIPTIONS[type] || type, el('code', { class: 'type' }, type)));
  }));
  $('email-off').classList.toggle('hidden', st.email_enabled);
  for (const b of $('email-form').querySelectorAll('button')) b.disabled = !st.email_enabled;
}

async function showConfirmation(st) {
  const me = await api('GET', '/v1/me');
  const unconfirmed = st.email_enabled && me.email_confirmed_at === null;
  $('confirm-box').classList.toggle('hidden', !unconfirmed);
  if (unconfirmed) $('confirm-state').textContent = `${me.email} is not confirmed yet: open the link we mailed you. Lost it, or it expired?`;
}

async function load() {
  const [b, st] = await Promise.all([api('GET', '/v1/me/budget'), api('GET', '/v1/me/notification-settings')]);
  showBudget(b);
  showEmail(st);
  await showConfirmation(st);
}

$('budget-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const box = $('budget-msg');
  try {
    const minor = parseMinor($('budget-amount').value, digits);
    const b = await api('PUT', '/v1/me/budget', { amount_minor: minor });
    showBudget(b);
    show(box, b.budget === null ? 'Budget removed.' : `Budget saved: ${money(b.budget, b.currency)} a period.`, 'ok');
  } catch (err) { show(box, err.message); }
});

$('budget-clear').addEventListener('click', async () => {
  const box = $('budget-msg');
  try {
    showBudget(await api('PUT', '/v1/me/budget', { amount_minor: null }));
    show(box, 'Budget removed.', 'ok');
  } catch (err) { show(box, err.message); }
});

$('email-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const boxes = [...$('email-events').querySelectorAll('input[type=checkbox]')];
  const picked = boxes.filter((b) => b.checked).map((b) => b.value);
  const box = $('email-msg');
  try {
    // every box ticked: "*", which also takes the types added later
    const st = await api('PUT', '/v1/me/notification-settings', { email_events: picked.length === boxes.length ? '*' : picked });
    showEmail(st);
    show(box, picked.length ? 'Email choices saved.' : 'Saved: no event will be emailed to you.', 'ok');
  } catch (err) { show(box, err.message); }
});

$('email-all').addEventListener('click', () => {
  for (const b of $('email-events').querySelectorAll('input[type=checkbox]')) b.checked = true;
});

$('confirm-resend').addEventListener('click', async () => {
  const box = $('confirm-msg');
  try { show(box, (await api('POST', '/v1/me/confirmation', {})).message, 'ok'); } catch (err) { show(box, err.message); }
});

load().catch((err) => { if (err.status !== 401) show($('budget-msg'), err.message); });
