// reference.js - the API reference: the upstream's OpenAPI document as GET /v1/reference serves
// it (enriched by tollgate with the plans that include each operation, and what a call costs),
// grouped by tag, with Try it against the gateway. Rendered here rather than by a bundled
// renderer: the page runs under a strict Content-Security-Policy (no inline script or style,
// no eval) and must lay out at 390 px; see README "API reference".
import { api, el, show } from './api.js';

const msg = document.getElementById('msg');
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
// What each gateway header tells the caller (docs/api.md "Rate limits and quotas").
const HEADER_HELP = {
  'x-ratelimit-limit': 'Your plan\'s rate limit: the weight of calls allowed per window.',
  'x-ratelimit-remaining': 'Weight still allowed in this window (this call\'s weight is already taken).',
  'x-ratelimit-reset': 'Seconds until the window has room again.',
  'ratelimit-policy': 'The same limit in the IETF draft form: q = calls, w = window in seconds.',
  ratelimit: 'The same state in the IETF draft form: r = remaining, t = seconds to reset.',
  'x-quota-remaining': 'Units of your plan\'s included allowance left this billing period.',
  'x-quota-reset': 'Seconds until the billing period ends and the allowance starts again.',
  'retry-after': 'Seconds to wait before calling again.',
  'x-request-id': 'This call\'s id: quote it when you ask for support.',
};

let doc = null; // the enriched document
let me = null; // the signed-in customer, or null
let key = null; // { prefix, secret } chosen for Try it; only in this page's memory

const plans = () => doc['x-tollgate'].plans;
const planName = (id) => plans().find((p) => p.id === id)?.name || id;

// A local JSON pointer ("#/components/schemas/Echo"); the server checked that each resolves.
function deref(o, depth = 0) {
  while (o && typeof o === 'object' && typeof o.$ref === 'string' && depth++ < 20) {
    o = o.$ref.slice(2).split('/').reduce((n, k) => (n == null ? n : n[k.replace(/~1/g, '/').replace(/~0/g, '~')]), doc);
  }
  return o;
}

function typeOf(s) {
  s = deref(s);
  if (!s || typeof s !== 'object') return 'any';
  if (s.allOf) return 'object';
  if (s.oneOf || s.anyOf) return (s.oneOf || s.anyOf).map(typeOf).join(' | ');
  let t = Array.isArray(s.type) ? s.type.join(' | ') : s.type || (s.properties ? 'object' : s.items ? 'array' : 'any');
  if (t === 'array') t = `array of ${typeOf(s.items)}`;
  if (s.format) t += ` (${s.format})`;
  if (s.enum) t += `: ${s.enum.map((v) => JSON.stringify(v)).join(', ')}`;
  if (s.nullable) t += ' or null';
  return t;
}

// allOf merged into one object schema (properties and required lists).
function flatten(s) {
  s = deref(s);
  if (!s || !s.allOf) return s;
  const out = { type: 'object', properties: {}, required: [], description: s.description };
  for (const part of s.allOf.map(flatten)) {
    Object.assign(out.properties, part?.properties || {});
    out.required.push(...(part?.required || []));
  }
  return out;
}

function schemaView(s, depth = 0) {
  s = flatten(s);
  if (!s || depth > 5) return el('span', { class: 'type' }, typeOf(s));
  const obj = s.properties ? s : s.type === 'array' ? flatten(s.items) : null;
  if (!obj || !obj.properties) return el('p', { class: 'schema' }, el('span', { class: 'type' }, typeOf(s)), s.description ? ` — ${s.description}` : '');
  const req = new Set(obj.required || []);
  return el('ul', { class: 'schema' }, ...Object.entries(obj.properties).map(([name, p]) => {
    const d = flatten(p);
    const nested = d && (d.properties || (d.type === 'array' && flatten(d.items)?.properties));
    return el('li', {}, el('code', {}, name), ' ', el('span', { class: 'type' }, typeOf(p)),
      req.has(name) ? el('span', { class: 'req' }, ' required') : '', d?.description ? ` — ${d.description}` : '',
      nested ? schemaView(d, depth + 1) : '');
  }));
}

// An example value: the document's own, else one made from the schema.
function sample(s, depth = 0) {
  s = flatten(s);
  if (!s || depth > 5) return null;
  if (s.example !== undefined) return s.example;
  if (s.default !== undefined) return s.default;
  if (s.enum) return s.enum[0];
  if (s.properties) return Object.fromEntries(Object.entries(s.properties).map(([k, v]) => [k, sample(v, depth + 1)]));
  const t = Array.isArray(s.type) ? s.type[0] : s.type;
  if (t === 'array') return [sample(s.items, depth + 1)];
  return { integer: 0, number: 0, boolean: true, string: 'string' }[t] ?? null;
}

function mediaExample(media) {
  if (!media) return undefined;
  if (media.example !== undefined) return media.example;
  const first = media.examples && Object.values(media.examples)[0];
  if (first) return deref(first).value;
  return media.schema ? sample(media.schema) : undefined;
}

const pretty = (v) => (typeof v === 'string' ? v : JSON.stringify(v, null, 2));

function opParams(pathItem, op) {
  const all = [...(pathItem.parameters || []), ...(op.parameters || [])].map((p) => deref(p));
  const byKey = new Map(all.map((p) => [`${p.in}:${p.name}`, p])); // the operation's win
  return [...byKey.values()];
}

// The plans that include the operation, this customer's marked; the way up when it is not in theirs.
function planBadges(x) {
  return el('div', { class: 'badges', 'data-testid': 'plan-badges' }, ...plans().map((p) => {
    const inc = x.plans.includes(p.id);
    const mine = me && me.plan === p.id;
    return el('span', {
      class: `badge ${inc ? 'in' : 'out'}${mine ? ' mine' : ''}`, 'data-plan': p.id, 'data-included': String(inc),
      title: `${inc ? 'Included in' : 'Not in'} ${p.name}${mine ? ' (your plan)' : ''}`,
    }, `${inc ? '✓' : '✗'} ${p.name}`);
  }));
}

function upgradeBox(x) {
  if (!me || x.plans.includes(me.plan)) return '';
  const to = plans().find((p) => x.plans.includes(p.id) && p.self_service && p.id !== me.plan);
  return el('div', { class: 'upgrade', 'data-testid': 'upgrade' }, `Not in your plan (${planName(me.plan)}). `,
    to ? el('a', { href: `/portal/app.html?plan=${encodeURIComponent(to.id)}#plan-form`, 'data-plan': to.id }, `Upgrade to ${to.name} to use it`)
      : x.plans.length ? `Available in ${x.plans.map(planName).join(', ')}: contact us to change plan.` : 'No plan includes it.');
}

function costLine(x) {
  const units = x.meter.map((m) => `${m.units} ${m.metric}`).join(' + ');
  return el('p', { class: 'muted' }, `Each call counts ${units}`, x.weight !== 1 ? ` and weighs ${x.weight} against the rate limit` : '', '.');
}

function paramTable(params) {
  if (!params.length) return '';
  return el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'Parameter'), el('th', {}, 'In'), el('th', {}, 'Type'), el('th', {}, 'Description'))),
    el('tbody', {}, ...params.map((p) => el('tr', {}, el('td', {}, el('code', {}, p.name), p.required ? el('span', { class: 'req' }, ' required') : ''),
      el('td', {}, p.in), el('td', {}, el('span', { class: 'type' }, typeOf(p.schema))), el('td', {}, p.description || '')))));
}

function bodyView(rb) {
  rb = deref(rb);
  if (!rb || !rb.content) return '';
  return Object.entries(rb.content).map(([ct, media]) => el('details', { open: '' }, el('summary', {}, `Request body (${ct})${rb.required ? ', required' : ''}`),
    media.schema ? schemaView(media.schema) : '', mediaExample(media) !== undefined ? el('pre', { tabindex: '0' }, pretty(mediaExample(media))) : ''));
}

function responsesView(responses) {
  return Object.entries(responses || {}).map(([status, r]) => {
    r = deref(r);
    const [ct, media] = Object.entries(r?.content || {})[0] || [];
    const ex = mediaExample(media);
    return el('details', {}, el('summary', {}, `${status} ${r?.description || ''}`),
      ct ? el('p', { class: 'muted' }, ct) : '', media?.schema ? schemaView(media.schema) : '', ex !== undefined ? el('pre', { tabindex: '0' }, pretty(ex)) : '');
  });
}

// ---- Try it ----

function tryView(path, method, params, op, x) {
  const inputs = params.filter((p) => p.in === 'path' || p.in === 'query').map((p) => {
    const id = `p-${Math.random().toString(36).slice(2)}`;
    const ex = p.example ?? deref(p.schema)?.example ?? '';
    return { p, box: el('div', {}, el('label', { for: id }, `${p.name} (${p.in})`), el('input', { id, value: String(ex), 'data-param': p.name })) };
  });
  const rb = deref(op.requestBody);
  const [ct, media] = Object.entries(rb?.content || {})[0] || [];
  const bodyId = `b-${Math.random().toString(36).slice(2)}`;
  const body = ct ? el('textarea', { id: bodyId, spellcheck: 'false' }) : null;
  if (body) body.value = mediaExample(media) !== undefined ? pretty(mediaExample(media)) : '';
  const result = el('div', { class: 'try-result', 'aria-live': 'polite', 'data-testid': 'try-result' });
  const send = el('button', { type: 'submit' }, 'Send');
  const form = el('form', { class: 'try' }, el('div', { class: 'row' }, ...inputs.map((i) => i.box)),
    body ? el('div', {}, el('label', { for: bodyId }, `Body (${ct})`), body) : '', el('div', { class: 'row' }, send), result);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!key) {
      show(result, 'Choose one of your keys and paste its secret under "Try it" at the top first.');
      return;
    }
    let url = path;
    const query = new URLSearchParams();
    for (const { p, box } of inputs) {
      const v = box.querySelector('input').value;
      if (p.in === 'path') url = url.replace(`{${p.name}}`, encodeURIComponent(v));
      else if (v !== '') query.set(p.name, v);
    }
    const qs = query.toString();
    const headers = { authorization: `Bearer ${key.secret}` };
    if (body) headers['content-type'] = ct;
    send.disabled = true;
    fetch(`${doc['x-tollgate'].gateway}${url}${qs ? `?${qs}` : ''}`, { method: method.toUpperCase(), headers, body: body ? body.value : undefined, mode: 'cors', credentials: 'omit', cache: 'no-store' })
      .then(async (r) => showResult(result, r, await r.text(), x))
      .catch((err) => show(result, `The gateway could not be reached from this page (${err.message}).`))
      .finally(() => { send.disabled = false; });
  });
  return el('details', { class: 'try-box' }, el('summary', {}, 'Try it'), form);
}

function showResult(box, r, text, x) {
  let shown = text;
  let parsed = null;
  try { parsed = JSON.parse(text); shown = JSON.stringify(parsed, null, 2); } catch { /* not JSON: as it came */ }
  const rows = Object.keys(HEADER_HELP).filter((h) => r.headers.get(h) !== null)
    .flatMap((h) => [el('dt', {}, `${h}: ${r.headers.get(h)}`), el('dd', {}, HEADER_HELP[h])]);
  const type = parsed?.error?.type;
  box.className = 'try-result';
  box.replaceChildren(
    el('p', {}, 'Status ', el('strong', { class: `status ${r.ok ? 'ok' : 'bad'}`, 'data-testid': 'try-status' }, String(r.status)), type ? ` — ${type}` : ''),
    type === 'endpoint_not_in_plan' || type === 'endpoint_not_allowed' ? upgradeBox(x) : '',
    rows.length ? el('dl', { 'data-testid': 'try-headers' }, ...rows) : '',
    el('pre', { 'data-testid': 'try-body', tabindex: '0' }, shown));
}

async function setupKeys() {
  if (!me) {
    document.getElementById('try-anon').classList.remove('hidden');
    return;
  }
  const form = document.getElementById('try-key');
  document.getElementById('gw-url').textContent = doc['x-tollgate'].gateway;
  const { data } = await api('GET', '/v1/me/keys?limit=100');
  const usable = data.filter((k) => k.status === 'active');
  const sel = document.getElementById('key-select');
  sel.replaceChildren(...usable.map((k) => el('option', { value: k.prefix }, `${k.name || 'key'} (${k.prefix}…)`)));
  form.classList.remove('hidden');
  const kmsg = document.getElementById('key-msg');
  if (!usable.length) show(kmsg, 'You have no active key: create one on your account page first.');
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = document.getElementById('key-secret');
    const secret = input.value.trim();
    input.value = ''; // not left in the field (nor in the browser's form memory)
    if (!sel.value || !secret.startsWith(sel.value)) {
      key = null;
      show(kmsg, 'That secret is not the chosen key\'s (it starts with the prefix shown).');
      return;
    }
    key = { prefix: sel.value, secret };
    show(kmsg, `Try it now calls the gateway with ${sel.value}…`, 'ok');
  });
}

// ---- the page ----

function slug(s) {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

function render() {
  document.getElementById('ref-title').textContent = `${doc.info.title} reference`;
  document.title = `${doc.info.title} — API reference`;
  document.getElementById('ref-desc').textContent = doc.info.description || '';
  document.getElementById('ref-plan').textContent = me ? `Signed in: your plan is ${planName(me.plan)}. Operations outside it are marked, with the plan that unlocks them.` : 'Each operation lists the plans that include it.';
  const groups = new Map((doc.tags || []).map((t) => [t.name, { tag: t, ops: [] }]));
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      for (const t of op.tags?.length ? op.tags : ['other']) {
        if (!groups.has(t)) groups.set(t, { tag: { name: t }, ops: [] });
        groups.get(t).ops.push({ path, method, op, item });
      }
    }
  }
  const sections = [];
  const nav = [];
  for (const { tag, ops } of groups.values()) {
    if (!ops.length) continue;
    const id = `tag-${slug(tag.name)}`;
    nav.push(el('li', {}, el('a', { href: `#${id}` }, tag.name)));
    sections.push(el('section', { id, 'aria-labelledby': `${id}-h`, 'data-tag': tag.name }, el('h2', { id: `${id}-h` }, tag.name),
      tag.description ? el('p', { class: 'muted' }, tag.description) : '',
      ...ops.map(({ path, method, op, item }) => {
        const x = op['x-tollgate'];
        const params = opParams(item, op);
        return el('article', { class: 'op', id: `op-${method}-${slug(path)}`, 'data-op': `${method.toUpperCase()} ${path}` },
          el('div', { class: 'op-head' }, el('span', { class: `method ${method}` }, method), el('code', { class: 'op-path' }, path), op.summary ? el('span', {}, op.summary) : ''),
          planBadges(x), upgradeBox(x), costLine(x),
          op.description ? el('p', {}, op.description) : '',
          paramTable(params), ...bodyView(op.requestBody || []), ...responsesView(op.responses),
          me ? tryView(path, method, params, op, x) : '');
      })));
  }
  document.getElementById('ref-tags').replaceChildren(...nav);
  document.getElementById('ops').replaceChildren(...sections);
}

async function main() {
  try {
    doc = await api('GET', '/v1/reference');
  } catch (err) {
    show(msg, err.status === 404 ? 'This service publishes no API reference.' : `The reference could not be loaded: ${err.message}`);
    return;
  }
  // Only a tab that signed in (it holds the session's CSRF token) asks who is signed in: an
  // anonymous reader then sees no failed request.
  if (sessionStorage.getItem('tg_csrf')) me = await api('GET', '/v1/me').catch(() => null);
  if (!me) document.getElementById('account-link').textContent = 'Sign in';
  render();
  await setupKeys();
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
}

main().catch((err) => show(msg, err.message));
