// api.js - the few calls the pages make; everything they show comes from the JSON API.
export async function api(method, path, body) {
  const headers = { 'content-type': 'application/json' };
  const csrf = sessionStorage.getItem('tg_csrf');
  if (csrf && method !== 'GET') headers['x-csrf-token'] = csrf;
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  const data = await r.json().catch(() => null);
  if (data && data.csrf_token) sessionStorage.setItem('tg_csrf', data.csrf_token);
  if (!r.ok) throw Object.assign(new Error(data?.error?.message || `HTTP ${r.status}`), { status: r.status, data });
  return data;
}

// Every item of a paged list (GET only): follows next_cursor until has_more is false.
export async function apiAll(path) {
  const all = [];
  let cursor = null;
  for (;;) {
    const sep = path.includes('?') ? '&' : '?';
    const page = await api('GET', `${path}${sep}limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    all.push(...page.data);
    if (!page.has_more || !page.next_cursor || page.next_cursor === cursor) return { data: all };
    cursor = page.next_cursor;
  }
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? '')));
  return e;
}

export function show(box, text, kind = 'error') {
  box.className = `msg ${kind}`;
  box.textContent = text;
}

export const fmtDate = (iso) => (iso ? new Date(iso).toISOString().slice(0, 10) : '—');
export const num = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString('en-US'));
