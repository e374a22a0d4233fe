// customers.js - the owner's customer list: search, plan and status filters, order and pages, from
// GET /v1/admin/customers (docs/api.md, "Customer list"). The filters live in the page's URL, so
// that the browser's back button from a customer's page returns to the same list.
import { api, el, show, fmtDate, resume } from './lib.js';

const PAGE = 25;
const msg = document.getElementById('msg');
const form = document.getElementById('filters');
let cursors = [null]; // the cursor of each page visited so far: cursors[i] opens page i
let at = 0;

function filters() {
  const [sort, order] = form.sort.value.split('.');
  const p = new URLSearchParams();
  if (form.q.value.trim()) p.set('q', form.q.value.trim());
  if (form.plan.value) p.set('plan', form.plan.value);
  if (form.status.value) p.set('status', form.status.value);
  if (sort !== 'created' || order !== 'desc') { p.set('sort', sort); p.set('order', order); }
  return p;
}

function fromUrl() {
  const p = new URLSearchParams(location.search);
  form.q.value = p.get('q') || '';
  form.plan.value = p.get('plan') || '';
  form.status.value = p.get('status') || '';
  const sort = `${p.get('sort') || 'created'}.${p.get('order') || (p.get('sort') && p.get('sort') !== 'created' ? 'asc' : 'desc')}`;
  if ([...form.sort.options].some((o) => o.value === sort)) form.sort.value = sort;
}

async function load() {
  const p = filters();
  document.getElementById('export').href = `/v1/admin/export/customers.csv${p.toString() ? `?${p}` : ''}`;
  p.set('limit', String(PAGE));
  if (cursors[at]) p.set('cursor', cursors[at]);
  const page = await api('GET', `/v1/admin/customers?${p}`);
  const f = filters().toString(); // the customer page's way back to this list
  const back = f ? `&list=${encodeURIComponent(f)}` : '';
  cursors = cursors.slice(0, at + 1);
  if (page.has_more) cursors.push(page.next_cursor);
  const rows = document.getElementById('rows');
  rows.replaceChildren(...(page.data.length ? page.data.map((c) => el('tr', { 'data-id': c.id },
    el('td', { 'data-label': 'Email' }, el('a', { href: `/admin/customer.html?id=${encodeURIComponent(c.id)}${back}` }, c.email)),
    el('td', { 'data-label': 'Name' }, c.name || '—'),
    el('td', { 'data-label': 'Plan' }, c.plan),
    el('td', { 'data-label': 'Status' }, c.status.replace('_', ' ')),
    el('td', { 'data-label': 'Customer since' }, fmtDate(c.created_at))))
    : [el('tr', {}, el('td', { colspan: '5', class: 'muted' }, 'No customer matches.'))]));
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
for (const f of [form.plan, form.status, form.sort]) f.addEventListener('change', reload);
document.getElementById('next').addEventListener('click', () => { at++; load().catch((err) => show(msg, err.message)); });
document.getElementById('prev').addEventListener('click', () => { at = Math.max(0, at - 1); load().catch((err) => show(msg, err.message)); });

fromUrl(); // the search box shows the list's filters at once; the plan again once its options arrive
resume().then(async (yes) => {
  if (!yes) { location.href = '/admin/'; return; }
  const plans = await api('GET', '/v1/plans');
  form.plan.append(...plans.data.map((p) => el('option', { value: p.id }, p.name || p.id)));
  fromUrl();
  await load();
}).catch((err) => show(msg, err.message));
