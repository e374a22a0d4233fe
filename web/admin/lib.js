// lib.js - the dashboard's own helpers (it loads no script of the public portal). The owner is
// signed in by an HttpOnly cookie scoped to /v1/admin that no script can read; the CSRF token
// that state changes need lives only in this module's memory and is fetched again on each page
// load (GET /v1/admin/session).
let csrf = null;

export async function api(method, path, body) {
  const headers = { 'content-type': 'application/json' };
  if (csrf && method !== 'GET') headers['x-csrf-token'] = csrf;
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  const data = await r.json().catch(() => null);
  if (data && data.csrf_token) csrf = data.csrf_token;
  if (!r.ok) throw Object.assign(new Error(data?.error?.message || `HTTP ${r.status}`), { status: r.status, data });
  return data;
}

// Resumes the session of the cookie, if any: true when signed in.
export async function resume() {
  return (await api('GET', '/v1/admin/session')).signed_in === true;
}

export async function signIn(token) {
  await api('POST', '/v1/admin/session', { token });
}

export async function signOut() {
  try { await api('DELETE', '/v1/admin/session'); } finally { csrf = null; }
}

// Every page of a paginated list (docs/api.md, "Lists and pagination"), as one array.
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
