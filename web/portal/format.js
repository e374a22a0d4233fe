// format.js - figures for people: money in its currency ("$49", "€0.0005 per call"), counts,
// dates and times in the viewer's time zone, and metrics by their display names
// (metering.metrics, from GET /v1/plans). A module with no side effect (the CSP allows no inline
// script). The API sends money as exact decimal strings (or whole minor units, amount_minor): it
// is formatted from that text, never rounded through arithmetic, and Intl.NumberFormat takes the
// decimal string as it is. The dashboard gets this file too, as /admin/format.js (admin_static.c).
const locale = undefined; // the browser's own

const digitCache = new Map();
// A currency's minor-unit digits ("usd" 2, "jpy" 0, "bhd" 3), as Intl knows them.
export function currencyDigits(currency) {
  const code = String(currency || '').toUpperCase();
  if (!digitCache.has(code)) {
    let d = 2;
    try { d = new Intl.NumberFormat('en', { style: 'currency', currency: code }).resolvedOptions().maximumFractionDigits; } catch { /* not ISO 4217 */ }
    digitCache.set(code, d);
  }
  return digitCache.get(code);
}

// money("49.00", "usd") = "$49.00"; money("49.00", "usd", { whole: true }) = "$49" (a price
// without cents); money("0.0005", "eur") = "€0.0005": never fewer decimals than the text has.
export function money(amount, currency, { whole = false } = {}) {
  if (amount === null || amount === undefined || amount === '' || !currency) return '—';
  const text = String(amount).trim();
  if (!/^-?\d+(\.\d+)?$/.test(text)) return `${text} ${String(currency).toUpperCase()}`;
  const d = currencyDigits(currency);
  const frac = (text.split('.')[1] || '').replace(/0+$/, '');
  const min = whole && frac.length === 0 ? 0 : d;
  const max = Math.min(20, Math.max(min, frac.length));
  try {
    return new Intl.NumberFormat(locale, { style: 'currency', currency: String(currency).toUpperCase(), minimumFractionDigits: min, maximumFractionDigits: max }).format(text);
  } catch {
    return `${text} ${String(currency).toUpperCase()}`;
  }
}

// Whole minor units (4950) of a currency -> its decimal text ("49.50"), exactly, then money().
export function minorToDecimal(minor, currency) {
  const d = currencyDigits(currency);
  let s = BigInt(minor).toString();
  const neg = s.startsWith('-');
  if (neg) s = s.slice(1);
  s = s.padStart(d + 1, '0');
  return `${neg ? '-' : ''}${d ? `${s.slice(0, s.length - d)}.${s.slice(s.length - d)}` : s}`;
}
export const moneyMinor = (minor, currency, opts) => (minor === null || minor === undefined ? '—' : money(minorToDecimal(minor, currency), currency, opts));

export const num = (n) => (n === null || n === undefined ? '—' : new Intl.NumberFormat(locale).format(n));

// An instant, in the viewer's time zone, with that zone's name ("Dec 4, 2026, 1:05 PM GMT+1").
export function dateTime(iso) {
  if (!iso) return '—';
  return new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(iso)) +
    ` ${zoneName(iso)}`;
}
function zoneName(iso) {
  const part = new Intl.DateTimeFormat(locale, { timeZoneName: 'short' }).formatToParts(new Date(iso)).find((p) => p.type === 'timeZoneName');
  return part ? part.value : '';
}
// A calendar day of the viewer's zone ("Dec 4, 2026").
export const date = (iso) => (iso ? new Intl.DateTimeFormat(locale, { dateStyle: 'medium' }).format(new Date(iso)) : '—');
// A billing period's boundary: periods are whole UTC days, shown as that day wherever the viewer is.
export const day = (iso) => (iso ? new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeZone: 'UTC' }).format(new Date(iso)) : '—');

// metrics: GET /v1/plans's {id: {name, unit}}.
export const metricName = (metrics, id) => metrics?.[id]?.name || id;
export const metricUnit = (metrics, id) => metrics?.[id]?.unit || 'unit';
// "1,000 API calls"
export const quantity = (n, metrics, id) => `${num(n)} ${metricName(metrics, id)}`;
// "€0.0005 per call"
export const perUnit = (amount, currency, metrics, id) => `${money(amount, currency)} per ${metricUnit(metrics, id)}`;
// An invoice or quote line as people read it: the API's "text" (composed by the server from the
// line's fields with the display names and units in force: "API calls above 50,000 included (per
// call)"); else (an answer without it) the description with the metric's display name for its id.
export function lineText(line, metrics) {
  if (typeof line.text === 'string' && line.text) return line.text;
  const d = line.description || '';
  return line.metric && d.startsWith(line.metric) ? metricName(metrics, line.metric) + d.slice(line.metric.length) : d;
}
