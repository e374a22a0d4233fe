// invoices.js - the owner's invoice list: filters (status, currency, customer, period), totals per
// currency (never added across currencies) and pages, from GET /v1/admin/invoices (docs/api.md).
import { api, el, show, fmtDate, num, resume } from './lib.js';
import { money } from './format.js';

const PAGE = 25;
const msg = document.getElementById('msg');
const form = document.getElementById('filters');
const FIELDS = ['status', 'currency', 'customer', 'from', 'to'];
let cursors = [null];
let at = 0;

function filters() {
  const p = new URLSearchParams();
  for (const f of FIELDS) if (form[f].value.trim()) p.set(f, form[f].value.trim());
  return p;
}


function showTotals(totals) {
  const rows = Object.entries(totals).map(([code, t]) => el('tr', { 'data-currency': code },
    el('td', { 'data-label': 'Currency' }, code.toUpperCase()),
    el('td', { 'data-label': 'Invoices', class: 'n' }, num(t.count)),
    el('td', { 'data-label': 'Invoiced', class: 'n' }, money(t.invoiced, code)),
    el('td', { 'data-label': 'By status' }, Object.entries(t.by_status).map(([st, v]) => `${st} ${num(v.count)}: ${money(v.total, code)}`).join(' · '))));
  document.getElementById('totals').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: '4', class: 'muted' }, 'No invoices.'))]));
}

async function load() {
  const p = filters();
  document.getElementById('export').href = `/v1/admin/export/invoices.csv${p.toString() ? `?${p}` : ''}`;
  p.set('limit', String(PAGE));
  if (cursors[at]) p.set('cursor', cursors[at]);
  const page = await api('GET', `/v1/admin/invoices?${p}`);
  if (page.totals) showTotals(page.totals);
  cursors = cursors.slice(0, at + 1);
  if (page.has_more) cursors.push(page.next_cursor);
  document.getElementById('rows').replaceChildren(...(page.data.length ? page.data.map((i) => el('tr', { 'data-id': i.id },
    el('td', { 'data-label': 'Number' }, el('a', { href: `/v1/admin/invoices/${encodeURIComponent(i.id)}/html` }, i.number || 'draft')),
    el('td', { 'data-label': 'Customer' }, el('a', { href: `/admin/customer.html?id=${encodeURIComponent(i.customer)}` }, i.customer)),
    el('td', { 'data-label': 'Period' }, `${fmtDate(i.period.start)} – ${fmtDate(i.period.end)}`),
    el('td', { 'data-label': 'Status' }, i.status),
    el('td', { 'data-label': 'Total', class: 'n' }, money(i.total, i.currency))))
    : [el('tr', {}, el('td', { colspan: '5', class: 'muted' }, 'No invoice matches.'))]));
  document.getElementById('prev').disabled = at === 0;
  document.getElementById('next').disabled = !page.has_more;
  document.getElementById('pageinfo').textContent = `Page ${at + 1}`;
}

function reload() {
  cursors = [null];
  at = 0;
  const p = filters();
  history.replaceState(null, '', `${location.pathname}${p.toString() ? `?${p}` : ''}`);
  load().catch((err) => show(msg, err.message));
}

form.addEventListener('submit', (e) => { e.preventDefault(); reload(); });
for (const f of [form.status, form.currency, form.from, form.to]) f.addEventListener('change', reload);
document.getElementById('next').addEventListener('click', () => { at++; load().catch((err) => show(msg, err.message)); });
document.getElementById('prev').addEventListener('click', () => { at = Math.max(0, at - 1); load().catch((err) => show(msg, err.message)); });

resume().then(async (yes) => {
  if (!yes) { location.href = '/admin/'; return; }
  const plans = (await api('GET', '/v1/plans')).data;
  for (const c of [...new Set(plans.map((p) => p.currency))].sort()) form.currency.append(el('option', { value: c }, c.toUpperCase()));
  const q = new URLSearchParams(location.search);
  for (const f of FIELDS) if (q.get(f)) form[f].value = q.get(f);
  await load();
}).catch((err) => show(msg, err.message));
