// fake_stripe.mjs - a local stand-in for api.stripe.com, for tollgate's tests (node, no framework).
//
// It speaks Stripe's wire format, so that the code under test cannot tell it from the real API in
// the ways that matter to a client:
//   - requests: `Authorization: Bearer sk_test_...` (or rk_test_...; anything else is a 401 with
//     Stripe's error object), bodies and query strings form-encoded with Stripe's nesting
//     (`metadata[k]=v`, `lines[0][amount]=5`, `expand[]=x`), values always strings;
//   - answers: JSON objects shaped as in Stripe's API reference (field names taken from the
//     official `stripe` package's types, tests/stripe/node_modules/stripe/cjs/resources/*.d.ts),
//     errors as `{"error": {type, code, message, param, doc_url}}` with Stripe's statuses, a
//     `Request-Id` header on every answer;
//   - `Idempotency-Key` on POST: the same key with the same method, path and parameters answers
//     the saved response again with `Idempotent-Replayed: true`; the same key with anything else
//     is a 400 `idempotency_error`. As at Stripe, a result is saved only once the endpoint started
//     executing: a request refused by an injected 429/500/timeout saves nothing, a request whose
//     response was lost ("lost" below) did execute and is saved;
//   - meter events are deduplicated by `identifier` (a duplicate is a 400 `duplicate_meter_event`,
//     param `identifier`, and is not counted);
//     timestamps must be within the past 35 days and at most 5 minutes ahead;
//   - for `billing: stripe`: products, prices (lookup_key unique unless transfer_lookup_key;
//     tiers/tiers_mode, transform_quantity, recurring[usage_type]=metered needs recurring[meter]),
//     billing meters (one active meter per event_name) and subscriptions (items[i][price],
//     update by item id, DELETE cancels; invoice items may name a subscription of their
//     customer). No proration is computed for them; a period's invoice is made on request
//     (POST /__control/subscriptions/:id/invoice below).
// Webhooks it sends are signed with the official package's
// `stripe.webhooks.generateTestHeaderString` (the `Stripe-Signature: t=...,v1=...` header).
//
// The control API, for tests only (no authentication; loopback):
//   POST /__control/fail {count, status?: 429|500|503, kind?: "status"|"timeout"|"lost",
//        path?: "/v1/customers" (prefix), method?: "POST", should_retry?: true|false}
//        queues `count` failures for the next matching requests: an error status (with
//        `Stripe-Should-Retry` when should_retry is given), a timeout (the request is never
//        answered; the socket is closed after `timeout_ms`, default 30000), or "lost" (the request
//        is processed and its result saved, then the socket is destroyed without an answer).
//   POST /__control/webhook_endpoint {url, secret}  from now on, every state change is sent there
//        as Stripe would (customer.created, invoice.created/finalized/paid/payment_failed/voided/
//        marked_uncollectible, checkout.session.completed, customer.subscription.*), signed, in
//        order; {url: null} stops it. GET /__control/deliveries waits for the ones in flight and
//        lists {event, type, status}.
//   POST /__control/reset                         forget every object, failure and request
//   GET  /__control/objects[?type=customer]       every object that exists, by type
//   GET  /__control/requests                      every API request seen (method, path, params,
//                                                 idempotency key, Stripe-Version, status)
//   POST /__control/send_webhook {url, secret, type, object, id?, created?, timestamp?,
//        previous_attributes?}  builds a Stripe event around `object` (or, when `object` is a
//        string id, the stored object), signs it and POSTs it to url; answers the target's
//        {status, body} and the event.
//   POST /__control/invoices/:id/payment {succeed: true|false}  a payment attempt on an open
//        invoice: paid (status paid, amount_paid = amount_due) or failed (attempt_count + 1);
//        answers the invoice and the event type Stripe would send (invoice.paid /
//        invoice.payment_failed), for the test to deliver with send_webhook.
//   POST /__control/checkout/sessions/:id/complete  the customer added a card: the session is
//        complete, a payment method exists and is the customer's default.
//   POST /__control/subscriptions/:id/invoice {period_start, period_end}  what Stripe does at the
//        end of a subscription's period: a subscription_cycle invoice for its customer (parent
//        subscription_details), one line per subscription item (licensed: quantity x the price,
//        for the next period, in advance; metered: the sum of the meter's events for the
//        customer with timestamps in [period_start, period_end), in arrears), priced per_unit or
//        tiered (graduated/volume) after transform_quantity, each line rounded half up to the
//        minor unit; the customer's pending invoice items are swept in; created (draft), then
//        finalized (open): invoice.created and invoice.finalized are sent. Answers the invoice.
//   POST /__control/clock {now}  the fake's clock reads `now` (seconds) from here on (null: the
//        real clock again); meter event timestamps are checked against it.
//   POST /__control/forget_idempotency {clear_failures?}  forget the saved idempotent answers (as
//        Stripe does after 24 h; meter event identifiers stay), and the queued failures.
//
// Usage: `import {startFakeStripe} from '../stripe/fake_stripe.mjs'` then
// `const fake = await startFakeStripe()` -> {url, port, close(), state}; or
// `node tests/stripe/fake_stripe.mjs [--port N]` prints `fake stripe listening on http://127.0.0.1:N`.
import http from 'node:http';
import crypto from 'node:crypto';
import {fileURLToPath} from 'node:url';
import Stripe from 'stripe';

export const API_VERSION = '2025-03-31.basil'; // the version tollgate pins (Stripe-Version)
const stripeLib = new Stripe('sk_test_fake_for_signing_only');
const MAX_BODY = 1 << 20;

// ---- form encoding (Stripe's nesting) ----

// Parses `a[b][0][c]=v&x[]=1` into nested objects; a[0] / a[] build arrays. Values stay strings.
export function decodeForm(text) {
  const root = {};
  if (!text) return root;
  for (const pair of text.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const rawKey = eq < 0 ? pair : pair.slice(0, eq);
    const rawVal = eq < 0 ? '' : pair.slice(eq + 1);
    const key = decodeURIComponent(rawKey.replace(/\+/g, ' '));
    const val = decodeURIComponent(rawVal.replace(/\+/g, ' '));
    const m = /^([^[\]]+)((?:\[[^[\]]*\])*)$/.exec(key);
    if (!m) throw new ParamError(`Invalid parameter name: ${key}`, key);
    const parts = [m[1], ...[...m[2].matchAll(/\[([^[\]]*)\]/g)].map((x) => x[1])];
    let node = root;
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      const last = i === parts.length - 1;
      const nextIsIndex = !last && (parts[i + 1] === '' || /^\d+$/.test(parts[i + 1]));
      if (Array.isArray(node)) {
        const idx = p === '' ? node.length : Number(p);
        if (last) node[idx] = val;
        else node = node[idx] ??= nextIsIndex ? [] : {};
      } else if (last) {
        node[p] = val;
      } else {
        node = node[p] ??= nextIsIndex ? [] : {};
      }
    }
  }
  return root;
}

// The inverse, for tests that build requests by hand.
export function encodeForm(obj, prefix = '') {
  const out = [];
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}[${k}]` : k;
    if (v === undefined || v === null) continue;
    if (typeof v === 'object') out.push(encodeForm(v, key));
    else out.push(`${encodeURIComponent(key)}=${encodeURIComponent(String(v))}`);
  }
  return out.filter(Boolean).join('&');
}

// Stable text of parameters, to compare an idempotent retry with the first request.
function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

// ---- errors as Stripe writes them ----

class StripeError extends Error {
  constructor(status, type, message, {code, param, headers} = {}) {
    super(message);
    this.status = status;
    this.body = {error: {type, message, ...(code ? {code, doc_url: `https://stripe.com/docs/error-codes/${code.replace(/_/g, '-')}`} : {}), ...(param ? {param} : {})}};
    this.headers = headers ?? {};
  }
}
class ParamError extends StripeError {
  constructor(message, param, code = 'parameter_invalid') {
    super(400, 'invalid_request_error', message, {code, param});
  }
}
const missing = (param) => new ParamError(`Missing required param: ${param}.`, param, 'parameter_missing');
const noSuch = (what, id, param = 'id') => new StripeError(404, 'invalid_request_error', `No such ${what}: '${id}'`, {code: 'resource_missing', param});

function int(params, name, {required = false, min = -Infinity} = {}) {
  const v = params[name];
  if (v === undefined) {
    if (required) throw missing(name);
    return undefined;
  }
  if (typeof v !== 'string' || !/^-?\d+$/.test(v) || Number(v) < min || !Number.isSafeInteger(Number(v)))
    throw new ParamError(`Invalid integer: ${typeof v === 'string' ? v : JSON.stringify(v)}`, name, 'parameter_invalid_integer');
  return Number(v);
}
function bool(params, name, dflt) {
  const v = params[name];
  if (v === undefined) return dflt;
  if (v !== 'true' && v !== 'false') throw new ParamError(`Invalid boolean: ${v}`, name);
  return v === 'true';
}
function str(params, name, {required = false, oneOf} = {}) {
  const v = params[name];
  if (v === undefined || v === '') {
    if (required) throw missing(name);
    return v === '' ? null : undefined;
  }
  if (typeof v !== 'string') throw new ParamError(`Invalid string: ${JSON.stringify(v)}`, name);
  if (oneOf && !oneOf.includes(v)) throw new ParamError(`Invalid ${name}: must be one of ${oneOf.join(', ')}`, name);
  return v;
}
function metadata(params, old = {}) {
  const m = params.metadata;
  if (m === undefined) return old;
  if (m === null || m === '') return {};
  if (typeof m !== 'object' || Array.isArray(m)) throw new ParamError('Invalid hash', 'metadata');
  const out = {...old};
  for (const [k, v] of Object.entries(m)) {
    if (v === '') delete out[k];
    else out[k] = v;
  }
  return out;
}

// ---- the fake ----

export async function startFakeStripe({port = 0, host = '127.0.0.1'} = {}) {
  const state = newState();
  const sockets = new Set();
  const server = http.createServer((req, res) => handle(state, req, res).catch((e) => {
    if (!res.headersSent) send(res, 500, {error: {type: 'api_error', message: String(e && e.stack || e)}});
  }));
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const actual = server.address().port;
  const url = `http://${host}:${actual}`;
  return {
    port: actual,
    url,
    state,
    // The control API from a test: control('POST', '/__control/fail', {count: 1}) -> its JSON.
    control: async (method, path, body) => {
      const r = await fetch(url + path, {
        method, headers: {'content-type': 'application/json'}, body: body === undefined ? undefined : JSON.stringify(body),
      });
      return r.json();
    },
    close: () => new Promise((resolve) => {
      for (const t of state.timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

function newState() {
  return {
    objects: new Map(), // id -> object
    idem: new Map(), // key -> {fingerprint, status, body, headers}
    meterIdentifiers: new Map(), // identifier -> meter event
    failures: [], // queued injections
    requests: [],
    events: [],
    timers: new Set(),
    seq: 0,
    invoiceSeq: new Map(), // customer -> next invoice number
    endpoint: null, // {url, secret}: where state changes are sent as events, in order
    deliveries: [], // {event, type, status | error}
    chain: Promise.resolve(),
  };
}

// A state change Stripe announces: with an endpoint registered, the event is made now (a snapshot
// of the object) and delivered after the ones before it, signed.
function emit(state, type, object) {
  if (!state.endpoint) return;
  const {url, secret} = state.endpoint;
  const ev = makeEvent(state, type, object);
  const payload = JSON.stringify(ev, null, 2);
  const record = {event: ev.id, type, status: null};
  state.deliveries.push(record);
  state.chain = state.chain.then(() => deliver(url, secret, payload).then(
    (r) => { record.status = r.status; }, (e) => { record.error = String(e); }));
}

function newId(state, prefix) {
  state.seq++;
  return `${prefix}_${crypto.randomBytes(7).toString('hex')}${state.seq.toString(36).padStart(4, '0')}`;
}
let clockOffsetS = 0; // POST /__control/clock (meter events part)
const now = () => Math.floor(Date.now() / 1000) + clockOffsetS;

function send(res, status, body, headers = {}) {
  const text = JSON.stringify(body, null, 2);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    'Request-Id': `req_${crypto.randomBytes(7).toString('hex')}`,
    'Stripe-Version': API_VERSION,
    ...headers,
  });
  res.end(text);
}

async function readBody(req) {
  const chunks = [];
  let n = 0;
  for await (const c of req) {
    n += c.length;
    if (n > MAX_BODY) throw new StripeError(413, 'invalid_request_error', 'Request body too large');
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function handle(state, req, res) {
  const u = new URL(req.url, 'http://fake');
  const raw = await readBody(req);
  if (u.pathname.startsWith('/__control/')) return control(state, req, res, u, raw);

  const entry = {method: req.method, path: u.pathname, idempotency_key: req.headers['idempotency-key'] ?? null,
    stripe_version: req.headers['stripe-version'] ?? null, params: null, status: null};
  state.requests.push(entry);
  const answer = (status, body, headers) => {
    entry.status = status;
    send(res, status, body, headers);
  };
  try {
    // Authentication first, as Stripe does.
    const auth = req.headers.authorization ?? '';
    const m = /^Bearer (\S+)$/.exec(auth);
    if (!m)
      throw new StripeError(401, 'invalid_request_error',
        "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.");
    if (!/^(sk|rk)_test_\S+$/.test(m[1]))
      throw new StripeError(401, 'invalid_request_error', `Invalid API Key provided: ${m[1].slice(0, 8)}${'*'.repeat(Math.max(0, m[1].length - 12))}${m[1].slice(-4)}`, {code: 'api_key_invalid'});
    if (req.method === 'POST' && raw !== '' && !/^application\/x-www-form-urlencoded/.test(req.headers['content-type'] ?? ''))
      throw new StripeError(400, 'invalid_request_error', 'Invalid request: the body must be application/x-www-form-urlencoded.');
    const params = decodeForm(req.method === 'POST' ? raw : u.search.slice(1));
    entry.params = params;

    // Injected failures happen before the endpoint executes: nothing is saved for them.
    const f = takeFailure(state, req.method, u.pathname);
    if (f && f.kind === 'timeout') {
      entry.status = 'timeout';
      const t = setTimeout(() => {
        state.timers.delete(t);
        req.socket.destroy();
      }, f.timeout_ms ?? 30000);
      state.timers.add(t);
      return;
    }
    if (f && f.kind !== 'lost') {
      const status = f.status ?? 500;
      const headers = f.should_retry === undefined ? {} : {'Stripe-Should-Retry': String(f.should_retry)};
      if (status === 429)
        throw new StripeError(429, 'invalid_request_error', 'Request rate limit exceeded. You can learn more about rate limits here https://stripe.com/docs/rate-limits.', {code: 'rate_limit', headers});
      throw new StripeError(status, 'api_error', 'An unknown error occurred while processing your request (injected by the fake).', {headers});
    }

    const key = req.headers['idempotency-key'];
    let fingerprint = null;
    if (key !== undefined && req.method === 'POST') {
      fingerprint = `${req.method} ${u.pathname} ${canonical(params)}`;
      const saved = state.idem.get(key);
      if (saved) {
        if (saved.fingerprint !== fingerprint)
          throw new StripeError(400, 'idempotency_error',
            `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`);
        if (f) {
          entry.status = 'lost';
          res.socket.destroy();
          return;
        }
        return answer(saved.status, saved.body, {'Idempotency-Key': key, 'Idempotent-Replayed': 'true'});
      }
    }
    let status = 200, body;
    try {
      body = route(state, req.method, u.pathname, params);
    } catch (e) {
      if (!(e instanceof StripeError)) throw e;
      // A request that failed validation is not saved (Stripe: "Results are only saved if an API
      // endpoint started executing"); one that reached the object (404 etc.) is.
      if (fingerprint && e.status !== 400) state.idem.set(key, {fingerprint, status: e.status, body: e.body});
      throw e;
    }
    if (fingerprint) state.idem.set(key, {fingerprint, status, body});
    if (f && f.kind === 'lost') {
      entry.status = 'lost';
      res.socket.destroy();
      return;
    }
    return answer(status, body, key ? {'Idempotency-Key': key} : {});
  } catch (e) {
    if (e instanceof StripeError) return answer(e.status, e.body, e.headers);
    throw e;
  }
}

function takeFailure(state, method, path) {
  const i = state.failures.findIndex((f) => (!f.method || f.method === method) && (!f.path || path.startsWith(f.path)));
  if (i < 0) return null;
  const f = state.failures[i];
  if (--f.count <= 0) state.failures.splice(i, 1);
  return f;
}

// ---- routes: [method, pattern, handler(state, params, ...captures)] ----

const routes = [
  ['POST', /^\/v1\/customers$/, createCustomer],
  ['GET', /^\/v1\/customers$/, (s, p) => list(s, 'customer', '/v1/customers', p, (c) => !c.deleted && (p.email === undefined || c.email === p.email))],
  ['GET', /^\/v1\/customers\/search$/, searchCustomers],
  ['GET', /^\/v1\/customers\/([^/]+)$/, (s, p, id) => get(s, id, 'customer')],
  ['POST', /^\/v1\/customers\/([^/]+)$/, updateCustomer],
  ['DELETE', /^\/v1\/customers\/([^/]+)$/, deleteCustomer],
  ['POST', /^\/v1\/invoiceitems$/, createInvoiceItem],
  ['GET', /^\/v1\/invoiceitems\/([^/]+)$/, (s, p, id) => get(s, id, 'invoiceitem')],
  ['GET', /^\/v1\/invoiceitems$/, (s, p) => list(s, 'invoiceitem', '/v1/invoiceitems', p, (o) => (p.customer === undefined || o.customer === p.customer) && (p.invoice === undefined || o.invoice === p.invoice))],
  ['POST', /^\/v1\/invoices$/, createInvoice],
  ['GET', /^\/v1\/invoices$/, (s, p) => list(s, 'invoice', '/v1/invoices', p, (o) => (p.customer === undefined || o.customer === p.customer) && (p.status === undefined || o.status === p.status))],
  ['GET', /^\/v1\/invoices\/([^/]+)$/, (s, p, id) => get(s, id, 'invoice')],
  ['POST', /^\/v1\/invoices\/([^/]+)\/finalize$/, finalizeInvoice],
  ['POST', /^\/v1\/invoices\/([^/]+)\/void$/, (s, p, id) => transition(s, id, 'open', 'void', 'voided_at')],
  ['POST', /^\/v1\/invoices\/([^/]+)\/mark_uncollectible$/, (s, p, id) => transition(s, id, 'open', 'uncollectible', 'marked_uncollectible_at')],
  ['POST', /^\/v1\/checkout\/sessions$/, createCheckoutSession],
  ['GET', /^\/v1\/checkout\/sessions\/([^/]+)$/, (s, p, id) => get(s, id, 'checkout.session')],
  ['POST', /^\/v1\/billing_portal\/sessions$/, createPortalSession],
  ['POST', /^\/v1\/billing\/meter_events$/, createMeterEvent],
  ['GET', /^\/v1\/events\/([^/]+)$/, (s, p, id) => get(s, id, 'event')],
  // The catalog and subscriptions of `billing: stripe` (sync-catalog, subscriptions).
  ['POST', /^\/v1\/products$/, createProduct],
  ['GET', /^\/v1\/products$/, (s, p) => list(s, 'product', '/v1/products', p, (o) => p.active === undefined || String(o.active) === p.active)],
  ['GET', /^\/v1\/products\/([^/]+)$/, (s, p, id) => get(s, id, 'product')],
  ['POST', /^\/v1\/products\/([^/]+)$/, (s, p, id) => update(s, get(s, id, 'product'), p, ['name', 'description'], ['active'])],
  ['POST', /^\/v1\/prices$/, createPrice],
  ['GET', /^\/v1\/prices$/, (s, p) => list(s, 'price', '/v1/prices', p, (o) => (p.product === undefined || o.product === p.product) &&
    (p.lookup_keys === undefined || [].concat(p.lookup_keys).includes(o.lookup_key)) && (p.active === undefined || String(o.active) === p.active))],
  ['GET', /^\/v1\/prices\/([^/]+)$/, (s, p, id) => get(s, id, 'price')],
  ['POST', /^\/v1\/prices\/([^/]+)$/, (s, p, id) => update(s, get(s, id, 'price'), p, ['nickname', 'lookup_key'], ['active'])],
  ['POST', /^\/v1\/billing\/meters$/, createMeter],
  ['GET', /^\/v1\/billing\/meters$/, (s, p) => list(s, 'billing.meter', '/v1/billing/meters', p, (o) => p.status === undefined || o.status === p.status)],
  ['GET', /^\/v1\/billing\/meters\/([^/]+)$/, (s, p, id) => get(s, id, 'billing.meter')],
  ['POST', /^\/v1\/subscriptions$/, createSubscription],
  ['GET', /^\/v1\/subscriptions$/, (s, p) => list(s, 'subscription', '/v1/subscriptions', p, (o) => p.customer === undefined || o.customer === p.customer)],
  ['GET', /^\/v1\/subscriptions\/([^/]+)$/, (s, p, id) => get(s, id, 'subscription')],
  ['POST', /^\/v1\/subscriptions\/([^/]+)$/, updateSubscription],
  ['DELETE', /^\/v1\/subscriptions\/([^/]+)$/, cancelSubscription],
  // ---- subscription invoicing (reconcile) ----
  ['GET', /^\/v1\/invoices\/([^/]+)\/lines$/, listInvoiceLines],
];

function route(state, method, path, params) {
  let pathKnown = false;
  for (const [m, re, fn] of routes) {
    const c = re.exec(path);
    if (!c) continue;
    pathKnown = true;
    if (m === method) return fn(state, params, ...c.slice(1).map(decodeURIComponent));
  }
  throw new StripeError(404, 'invalid_request_error',
    pathKnown ? `Unrecognized request URL (${method}: ${path}).` : `Unrecognized request URL (${method}: ${path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.`);
}

// ---- subscriptions (billing: stripe) ----
// POST /v1/invoiceitems with `subscription`: as at Stripe, the subscription must exist and belong
// to the item's customer, and the item says so (`parent.subscription_details`, 2025-03-31.basil),
// to be billed on that subscription's next invoice (the fake computes no subscription invoice).
routes.unshift(['POST', /^\/v1\/invoiceitems$/, (state, p) => {
  const subId = str(p, 'subscription');
  if (subId) {
    const sub = state.objects.get(subId);
    if (!sub || sub.object !== 'subscription') throw noSuch('subscription', subId, 'subscription');
    if (sub.customer !== p.customer) throw new ParamError('The subscription must belong to the customer you specify.', 'subscription');
  }
  const item = createInvoiceItem(state, p);
  if (subId) item.parent = {type: 'subscription_details', subscription_details: {subscription: subId}};
  return item;
}]);
// ---- end subscriptions ----

function get(state, id, type) {
  const o = state.objects.get(id);
  if (!o || o.object !== type) throw noSuch(type === 'checkout.session' ? 'checkout.session' : type, id);
  return o;
}

function list(state, type, url, params, keep) {
  const limit = int(params, 'limit', {min: 1}) ?? 10;
  if (limit > 100) throw new ParamError('This value must be less than or equal to 100.', 'limit');
  const all = [...state.objects.values()].filter((o) => o.object === type && keep(o)).reverse(); // newest first
  let start = 0;
  if (params.starting_after !== undefined) {
    start = all.findIndex((o) => o.id === params.starting_after) + 1;
    if (start === 0) throw noSuch(type, params.starting_after, 'starting_after');
  }
  const data = all.slice(start, start + limit);
  return {object: 'list', data, has_more: start + limit < all.length, url};
}

// Supports the two query forms tollgate can use: metadata['k']:'v' and email:'v'.
function searchCustomers(state, params) {
  const q = str(params, 'query', {required: true});
  const m = /^\s*(?:metadata\['([^']+)'\]|(email|name)):'([^']*)'\s*$/.exec(q);
  if (!m) throw new ParamError(`The fake supports only metadata['key']:'value', email:'v' and name:'v' queries, not: ${q}`, 'query');
  const data = [...state.objects.values()].filter((c) => c.object === 'customer' && !c.deleted &&
    (m[1] ? c.metadata[m[1]] === m[3] : c[m[2]] === m[3]));
  return {object: 'search_result', data, has_more: false, next_page: null, url: '/v1/customers/search'};
}

function createCustomer(state, p) {
  const id = newId(state, 'cus');
  const c = {
    id, object: 'customer', address: null, balance: 0, created: now(), currency: null, default_source: null,
    delinquent: false, description: str(p, 'description') ?? null, discount: null, email: str(p, 'email') ?? null,
    invoice_prefix: crypto.randomBytes(4).toString('hex').toUpperCase(),
    invoice_settings: {custom_fields: null, default_payment_method: null, footer: null, rendering_options: null},
    livemode: false, metadata: metadata(p), name: str(p, 'name') ?? null, next_invoice_sequence: 1,
    phone: str(p, 'phone') ?? null, preferred_locales: [], shipping: null, tax_exempt: 'none', test_clock: null,
  };
  if (p.invoice_settings && typeof p.invoice_settings === 'object')
    c.invoice_settings.default_payment_method = p.invoice_settings.default_payment_method ?? null;
  state.objects.set(id, c);
  emit(state, 'customer.created', c);
  return c;
}

function updateCustomer(state, p, id) {
  const c = get(state, id, 'customer');
  if (c.deleted) throw noSuch('customer', id);
  for (const k of ['email', 'name', 'description', 'phone']) if (p[k] !== undefined) c[k] = str(p, k);
  c.metadata = metadata(p, c.metadata);
  if (p.invoice_settings && typeof p.invoice_settings === 'object' && p.invoice_settings.default_payment_method !== undefined)
    c.invoice_settings.default_payment_method = p.invoice_settings.default_payment_method || null;
  return c;
}

function deleteCustomer(state, p, id) {
  const c = get(state, id, 'customer');
  state.objects.delete(id);
  return {id: c.id, object: 'customer', deleted: true};
}

function liveCustomer(state, id, param = 'customer') {
  const c = state.objects.get(id);
  if (!c || c.object !== 'customer') throw noSuch('customer', id, param);
  return c;
}

function createInvoiceItem(state, p) {
  const customer = str(p, 'customer', {required: true});
  liveCustomer(state, customer);
  const currency = str(p, 'currency', {required: true}).toLowerCase();
  const amount = int(p, 'amount', {required: true});
  let invoice = str(p, 'invoice') ?? null;
  if (invoice) {
    const inv = state.objects.get(invoice);
    if (!inv || inv.object !== 'invoice') throw noSuch('invoice', invoice, 'invoice');
    if (inv.status !== 'draft') throw new ParamError(`You can only add invoice items to draft invoices; ${invoice} is ${inv.status}.`, 'invoice', 'invoice_not_editable');
    if (inv.customer !== customer) throw new ParamError('The invoice belongs to another customer.', 'invoice');
    if (inv.currency !== currency) throw new ParamError(`The invoice's currency is ${inv.currency}, the item's ${currency}.`, 'currency');
  }
  const t = now();
  const period = p.period && typeof p.period === 'object'
    ? {start: int(p.period, 'start', {required: true}), end: int(p.period, 'end', {required: true})} : {start: t, end: t};
  const id = newId(state, 'ii');
  const item = {
    id, object: 'invoiceitem', amount, currency, customer, date: t, description: str(p, 'description') ?? null,
    discountable: bool(p, 'discountable', amount >= 0), discounts: [], invoice, livemode: false, metadata: metadata(p),
    parent: null, period, pricing: null, proration: false, quantity: 1, tax_rates: [], test_clock: null,
  };
  state.objects.set(id, item);
  if (invoice) attach(state, state.objects.get(invoice), item);
  return item;
}

function lineOf(item) {
  return {
    id: `il_${item.id.slice(3)}`, object: 'line_item', amount: item.amount, currency: item.currency,
    description: item.description, discount_amounts: [], discountable: item.discountable, discounts: [],
    invoice: item.invoice, livemode: false, metadata: item.metadata,
    parent: {type: 'invoice_item_details', invoice_item_details: {invoice_item: item.id, proration: false, proration_details: {credited_items: null}, subscription: null}, subscription_item_details: null},
    period: item.period, pretax_credit_amounts: [], pricing: null, quantity: item.quantity, subtotal: item.amount, taxes: [],
  };
}

function attach(state, inv, item) {
  item.invoice = inv.id;
  inv.lines.data.push(lineOf(item));
  inv.lines.total_count = inv.lines.data.length;
  recompute(inv);
}

function recompute(inv) {
  const total = inv.lines.data.reduce((a, l) => a + l.amount, 0);
  inv.subtotal = inv.subtotal_excluding_tax = inv.total = inv.total_excluding_tax = total;
  inv.amount_due = Math.max(0, total);
  inv.amount_remaining = inv.amount_due - inv.amount_paid;
}

function createInvoice(state, p) {
  const customer = str(p, 'customer', {required: true});
  const c = liveCustomer(state, customer);
  const collection = str(p, 'collection_method', {oneOf: ['charge_automatically', 'send_invoice']}) ?? 'charge_automatically';
  const days = int(p, 'days_until_due', {min: 0});
  if (collection === 'send_invoice' && days === undefined && p.due_date === undefined)
    throw new ParamError('Invoices with `collection_method=send_invoice` must have a `days_until_due` or `due_date`.', 'days_until_due', 'parameter_missing');
  if (collection === 'charge_automatically' && days !== undefined)
    throw new ParamError('You can only set `days_until_due` when `collection_method` is `send_invoice`.', 'days_until_due');
  const behavior = str(p, 'pending_invoice_items_behavior', {oneOf: ['include', 'exclude']}) ?? 'exclude';
  const t = now();
  const id = newId(state, 'in');
  const inv = {
    id, object: 'invoice', account_country: 'US', account_name: 'tollgate test account', amount_due: 0,
    amount_overpaid: 0, amount_paid: 0, amount_remaining: 0, amount_shipping: 0, attempt_count: 0, attempted: false,
    auto_advance: bool(p, 'auto_advance', false), automatic_tax: {enabled: false, liability: null, status: null},
    automatically_finalizes_at: null, billing_reason: 'manual', collection_method: collection, created: t,
    currency: (str(p, 'currency') ?? 'usd').toLowerCase(), custom_fields: null, customer, customer_email: c.email,
    customer_name: c.name, default_payment_method: null, default_source: null, default_tax_rates: [],
    description: str(p, 'description') ?? null, discounts: [], due_date: null, effective_at: null,
    ending_balance: null, footer: null, hosted_invoice_url: null, invoice_pdf: null, issuer: {type: 'self'},
    last_finalization_error: null, lines: {object: 'list', data: [], has_more: false, total_count: 0, url: `/v1/invoices/${id}/lines`},
    livemode: false, metadata: metadata(p), next_payment_attempt: null, number: null, on_behalf_of: null, parent: null,
    payment_settings: {default_mandate: null, payment_method_options: null, payment_method_types: null},
    period_end: t, period_start: t, post_payment_credit_notes_amount: 0, pre_payment_credit_notes_amount: 0,
    receipt_number: null, starting_balance: 0, statement_descriptor: null, status: 'draft',
    status_transitions: {finalized_at: null, marked_uncollectible_at: null, paid_at: null, voided_at: null},
    subtotal: 0, subtotal_excluding_tax: 0, test_clock: null, total: 0, total_excluding_tax: 0, webhooks_delivered_at: null,
  };
  inv.days_until_due = days ?? null;
  state.objects.set(id, inv);
  if (behavior === 'include')
    for (const o of state.objects.values())
      if (o.object === 'invoiceitem' && o.customer === customer && o.invoice === null && o.currency === inv.currency) attach(state, inv, o);
  emit(state, 'invoice.created', inv);
  return inv;
}

function finalizeInvoice(state, p, id) {
  const inv = get(state, id, 'invoice');
  if (inv.status !== 'draft')
    throw new ParamError(`This invoice is already finalized, you can't re-finalize a non-draft invoice.`, undefined, 'invoice_not_editable');
  const c = state.objects.get(inv.customer);
  const seq = (state.invoiceSeq.get(inv.customer) ?? 0) + 1;
  state.invoiceSeq.set(inv.customer, seq);
  if (c) c.next_invoice_sequence = seq + 1;
  const t = now();
  inv.number = `${c ? c.invoice_prefix : 'FAKE0000'}-${String(seq).padStart(4, '0')}`;
  inv.status = 'open';
  inv.effective_at = inv.status_transitions.finalized_at = t;
  inv.hosted_invoice_url = `https://invoice.stripe.com/i/acct_fake/test_${inv.id}`;
  inv.invoice_pdf = `${inv.hosted_invoice_url}/pdf`;
  if (inv.collection_method === 'send_invoice') inv.due_date = t + 86400 * (inv.days_until_due ?? 0);
  else inv.next_payment_attempt = t + 3600;
  emit(state, 'invoice.finalized', inv);
  if (inv.amount_due === 0) { // Stripe marks an invoice with nothing to pay paid on finalization
    inv.status = 'paid';
    inv.status_transitions.paid_at = t;
    inv.next_payment_attempt = null;
    emit(state, 'invoice.paid', inv);
  }
  return inv;
}

function transition(state, id, from, to, stamp) {
  const inv = get(state, id, 'invoice');
  if (inv.status !== from) throw new ParamError(`The invoice is ${inv.status}; only a ${from} invoice can become ${to}.`, undefined, 'invoice_unexpected_status');
  inv.status = to;
  inv.status_transitions[stamp] = now();
  inv.next_payment_attempt = null;
  emit(state, to === 'void' ? 'invoice.voided' : 'invoice.marked_uncollectible', inv);
  return inv;
}

function createCheckoutSession(state, p) {
  const mode = str(p, 'mode', {required: true, oneOf: ['payment', 'setup', 'subscription']});
  if (mode !== 'setup') throw new ParamError(`The fake supports mode=setup only, not ${mode}.`, 'mode');
  const customer = str(p, 'customer') ?? null;
  if (customer) liveCustomer(state, customer);
  const uiMode = str(p, 'ui_mode') ?? 'hosted';
  const success = str(p, 'success_url');
  if (uiMode === 'hosted' && !success) throw missing('success_url');
  const t = now();
  const id = `cs_test_${crypto.randomBytes(24).toString('hex')}`;
  const s = {
    id, object: 'checkout.session', adaptive_pricing: null, after_expiration: null, allow_promotion_codes: null,
    amount_subtotal: null, amount_total: null, automatic_tax: {enabled: false, liability: null, status: null},
    billing_address_collection: null, cancel_url: str(p, 'cancel_url') ?? null, client_reference_id: str(p, 'client_reference_id') ?? null,
    client_secret: null, consent: null, consent_collection: null, created: t, currency: (str(p, 'currency') ?? null),
    custom_fields: [], custom_text: {after_submit: null, shipping_address: null, submit: null, terms_of_service_acceptance: null},
    customer, customer_creation: null, customer_details: null, customer_email: str(p, 'customer_email') ?? null,
    expires_at: t + 86400, invoice: null, invoice_creation: null, livemode: false, locale: null, metadata: metadata(p),
    mode, payment_intent: null, payment_link: null, payment_method_collection: 'always',
    payment_method_types: Array.isArray(p.payment_method_types) ? p.payment_method_types : ['card'],
    payment_status: 'no_payment_required', setup_intent: newId(state, 'seti'), shipping_address_collection: null,
    shipping_options: [], status: 'open', submit_type: null, subscription: null, success_url: success ?? null,
    total_details: null, ui_mode: uiMode, url: `https://checkout.stripe.com/c/pay/${id}`,
  };
  state.objects.set(id, s);
  return s;
}

function createPortalSession(state, p) {
  const customer = str(p, 'customer', {required: true});
  liveCustomer(state, customer);
  const id = newId(state, 'bps');
  const s = {
    id, object: 'billing_portal.session', configuration: 'bpc_fake_default', created: now(), customer, flow: null,
    livemode: false, locale: null, on_behalf_of: null, return_url: str(p, 'return_url') ?? null,
    url: `https://billing.stripe.com/p/session/test_${crypto.randomBytes(16).toString('hex')}`,
  };
  state.objects.set(id, s);
  return s;
}

function createMeterEvent(state, p) {
  const eventName = str(p, 'event_name', {required: true});
  if (eventName.length > 100) throw new ParamError('event_name is longer than 100 characters.', 'event_name');
  if (!p.payload || typeof p.payload !== 'object' || Array.isArray(p.payload)) throw missing('payload');
  const customer = p.payload.stripe_customer_id;
  if (customer === undefined) throw missing('payload[stripe_customer_id]');
  if (p.payload.value === undefined) throw missing('payload[value]');
  if (!/^-?\d+(\.\d+)?$/.test(p.payload.value)) throw new ParamError(`Invalid numeric value: ${p.payload.value}`, 'payload[value]');
  const t = now();
  const timestamp = int(p, 'timestamp') ?? t;
  if (timestamp < t - 35 * 86400)
    throw new ParamError('Timestamp must be within the past 35 calendar days.', 'timestamp', 'timestamp_too_far_in_past');
  if (timestamp > t + 300)
    throw new ParamError('Timestamp must be no more than 5 minutes in the future.', 'timestamp', 'timestamp_in_future');
  const identifier = str(p, 'identifier') ?? `fake_${crypto.randomUUID()}`;
  if (identifier.length > 100) throw new ParamError('identifier is longer than 100 characters.', 'identifier');
  if (state.meterIdentifiers.has(identifier))
    throw new StripeError(400, 'invalid_request_error', `An event already exists with identifier ${identifier}.`,
      {code: 'duplicate_meter_event', param: 'identifier'}); // the code in Stripe's API specification
  const ev = {object: 'billing.meter_event', created: t, event_name: eventName, identifier, livemode: false,
    payload: {...p.payload}, timestamp};
  state.meterIdentifiers.set(identifier, ev);
  return ev;
}

// ---- catalog and subscriptions ----

function update(state, o, p, strings, bools) {
  for (const k of strings) if (p[k] !== undefined) o[k] = str(p, k);
  for (const k of bools) if (p[k] !== undefined) o[k] = bool(p, k);
  o.metadata = metadata(p, o.metadata);
  if ('updated' in o) o.updated = now();
  if (o.object === 'price' && p.lookup_key !== undefined) claimLookupKey(state, o, bool(p, 'transfer_lookup_key', false));
  return o;
}

function claimLookupKey(state, price, transfer) {
  if (!price.lookup_key) return;
  for (const o of state.objects.values())
    if (o.object === 'price' && o !== price && o.lookup_key === price.lookup_key) {
      if (!transfer) throw new ParamError(`A price (\`${o.id}\`) already uses that lookup key.`, 'lookup_key');
      o.lookup_key = null;
    }
}

function createProduct(state, p) {
  const id = str(p, 'id') ?? newId(state, 'prod');
  if (state.objects.has(id)) throw new ParamError(`Product already exists.`, 'id', 'resource_already_exists');
  const t = now();
  const o = {id, object: 'product', active: bool(p, 'active', true), created: t, default_price: null,
    description: str(p, 'description') ?? null, images: [], livemode: false, marketing_features: [], metadata: metadata(p),
    name: str(p, 'name', {required: true}), package_dimensions: null, shippable: null, statement_descriptor: null,
    tax_code: null, type: 'service', unit_label: str(p, 'unit_label') ?? null, updated: t, url: null};
  state.objects.set(id, o);
  return o;
}

function tiersOf(p) {
  if (p.tiers === undefined) return undefined;
  if (!Array.isArray(p.tiers)) throw new ParamError('Invalid array', 'tiers');
  return p.tiers.map((t, i) => {
    const upTo = t.up_to === 'inf' ? null : int(t, 'up_to', {required: true, min: 1});
    if (upTo === undefined) throw missing(`tiers[${i}][up_to]`);
    return {flat_amount: int(t, 'flat_amount', {min: 0}) ?? null, flat_amount_decimal: t.flat_amount_decimal ?? null,
      unit_amount: int(t, 'unit_amount', {min: 0}) ?? null, unit_amount_decimal: t.unit_amount_decimal ?? (t.unit_amount ?? null), up_to: upTo};
  });
}

function createPrice(state, p) {
  const product = str(p, 'product', {required: true});
  get(state, product, 'product');
  const currency = str(p, 'currency', {required: true}).toLowerCase();
  const scheme = str(p, 'billing_scheme', {oneOf: ['per_unit', 'tiered']}) ?? 'per_unit';
  let recurring = null;
  if (p.recurring !== undefined) {
    const r = p.recurring;
    const usage = str(r, 'usage_type', {oneOf: ['licensed', 'metered']}) ?? 'licensed';
    const meter = str(r, 'meter') ?? null;
    if (usage === 'metered' && !meter) throw new ParamError('Metered prices must be backed by a meter: set recurring[meter].', 'recurring[meter]', 'parameter_missing');
    if (meter) get(state, meter, 'billing.meter');
    recurring = {interval: str(r, 'interval', {required: true, oneOf: ['day', 'week', 'month', 'year']}),
      interval_count: int(r, 'interval_count', {min: 1}) ?? 1, meter, usage_type: usage};
  }
  const tiers = tiersOf(p);
  const tiersMode = str(p, 'tiers_mode', {oneOf: ['graduated', 'volume']}) ?? null;
  if (scheme === 'tiered' && (!tiers || !tiersMode)) throw new ParamError('Tiered prices need tiers and tiers_mode.', tiers ? 'tiers_mode' : 'tiers', 'parameter_missing');
  const unit = int(p, 'unit_amount', {min: 0});
  if (scheme === 'per_unit' && unit === undefined && p.unit_amount_decimal === undefined)
    throw missing('unit_amount');
  let transform = null;
  if (p.transform_quantity !== undefined)
    transform = {divide_by: int(p.transform_quantity, 'divide_by', {required: true, min: 1}),
      round: str(p.transform_quantity, 'round', {required: true, oneOf: ['up', 'down']})};
  const id = newId(state, 'price');
  const o = {id, object: 'price', active: bool(p, 'active', true), billing_scheme: scheme, created: now(), currency,
    custom_unit_amount: null, livemode: false, lookup_key: str(p, 'lookup_key') ?? null, metadata: metadata(p),
    nickname: str(p, 'nickname') ?? null, product, recurring, tax_behavior: 'unspecified',
    ...(tiers ? {tiers} : {}), tiers_mode: tiersMode, transform_quantity: transform, type: recurring ? 'recurring' : 'one_time',
    unit_amount: unit ?? null, unit_amount_decimal: p.unit_amount_decimal ?? (unit !== undefined ? String(unit) : null)};
  claimLookupKey(state, o, bool(p, 'transfer_lookup_key', false));
  state.objects.set(id, o);
  return o;
}

function createMeter(state, p) {
  const eventName = str(p, 'event_name', {required: true});
  for (const o of state.objects.values())
    if (o.object === 'billing.meter' && o.event_name === eventName && o.status === 'active')
      throw new ParamError(`An active meter with event_name \`${eventName}\` already exists.`, 'event_name', 'resource_already_exists');
  const agg = p.default_aggregation && str(p.default_aggregation, 'formula', {required: true, oneOf: ['count', 'last', 'sum']});
  if (!agg) throw missing('default_aggregation[formula]');
  const t = now();
  const id = newId(state, 'mtr');
  const o = {id, object: 'billing.meter', created: t,
    customer_mapping: {event_payload_key: p.customer_mapping?.event_payload_key ?? 'stripe_customer_id', type: 'by_id'},
    default_aggregation: {formula: agg}, display_name: str(p, 'display_name', {required: true}), event_name: eventName,
    event_time_window: str(p, 'event_time_window') ?? null, livemode: false, status: 'active',
    status_transitions: {deactivated_at: null}, updated: t,
    value_settings: {event_payload_key: p.value_settings?.event_payload_key ?? 'value'}};
  state.objects.set(id, o);
  return o;
}

function subscriptionItems(state, sub, items) {
  if (!Array.isArray(items) || items.length === 0) throw missing('items');
  return items.map((it) => {
    const price = get(state, str(it, 'price', {required: true}), 'price');
    const metered = price.recurring && price.recurring.usage_type === 'metered';
    if (metered && it.quantity !== undefined) throw new ParamError('Metered prices have no quantity.', 'items[quantity]');
    return {id: newId(state, 'si'), object: 'subscription_item', created: now(), metadata: metadata(it), price,
      ...(metered ? {} : {quantity: int(it, 'quantity', {min: 0}) ?? 1}), subscription: sub.id,
      current_period_start: sub.start_date, current_period_end: sub.start_date + 30 * 86400};
  });
}

function createSubscription(state, p) {
  const customer = str(p, 'customer', {required: true});
  liveCustomer(state, customer);
  const t = now();
  const trialEnd = p.trial_end === 'now' ? null : int(p, 'trial_end', {min: t}) ?? null;
  const id = newId(state, 'sub');
  const sub = {id, object: 'subscription', application: null, billing_cycle_anchor: t, cancel_at: null,
    cancel_at_period_end: false, canceled_at: null, collection_method: str(p, 'collection_method', {oneOf: ['charge_automatically', 'send_invoice']}) ?? 'charge_automatically',
    created: t, currency: 'usd', customer, days_until_due: int(p, 'days_until_due', {min: 0}) ?? null,
    default_payment_method: str(p, 'default_payment_method') ?? null, description: str(p, 'description') ?? null,
    discounts: [], ended_at: null, items: null, latest_invoice: null, livemode: false, metadata: metadata(p),
    pending_update: null, start_date: t, status: trialEnd ? 'trialing' : 'active', test_clock: null,
    trial_end: trialEnd, trial_start: trialEnd ? t : null,
    proration_behavior: str(p, 'proration_behavior', {oneOf: ['create_prorations', 'none', 'always_invoice']}) ?? 'create_prorations'};
  const items = subscriptionItems(state, sub, p.items);
  sub.currency = items[0].price.currency;
  sub.items = {object: 'list', data: items, has_more: false, total_count: items.length, url: `/v1/subscription_items?subscription=${id}`};
  state.objects.set(id, sub);
  emit(state, 'customer.subscription.created', sub);
  return sub;
}

function updateSubscription(state, p, id) {
  const sub = get(state, id, 'subscription');
  if (sub.status === 'canceled') throw new ParamError('A canceled subscription can only update its cancellation_details and metadata.', undefined, 'resource_missing');
  if (p.items !== undefined) {
    // Items with an id are updated (price) or deleted; items without one are added.
    for (const it of [].concat(p.items)) {
      if (it.id !== undefined) {
        const cur = sub.items.data.find((x) => x.id === it.id);
        if (!cur) throw new ParamError(`No such subscription item: '${it.id}'`, 'items[id]', 'resource_missing');
        if (bool(it, 'deleted', false)) sub.items.data = sub.items.data.filter((x) => x !== cur);
        else if (it.price !== undefined) cur.price = get(state, str(it, 'price'), 'price');
      } else {
        sub.items.data.push(...subscriptionItems(state, sub, [it]));
      }
    }
    sub.items.total_count = sub.items.data.length;
  }
  if (p.cancel_at_period_end !== undefined) sub.cancel_at_period_end = bool(p, 'cancel_at_period_end');
  if (p.trial_end === 'now') { sub.trial_end = now(); sub.status = 'active'; }
  if (p.proration_behavior !== undefined) sub.proration_behavior = str(p, 'proration_behavior', {oneOf: ['create_prorations', 'none', 'always_invoice']});
  sub.metadata = metadata(p, sub.metadata);
  emit(state, 'customer.subscription.updated', sub);
  return sub;
}

function cancelSubscription(state, p, id) {
  const sub = get(state, id, 'subscription');
  if (sub.status === 'canceled') throw new ParamError(`The subscription ${id} is already canceled.`, undefined, 'resource_missing');
  sub.status = 'canceled';
  sub.canceled_at = sub.ended_at = now();
  emit(state, 'customer.subscription.deleted', sub);
  return sub;
}

// ---- subscription invoicing (reconcile) ----
// A subscription's period-end invoice, as Stripe makes it (POST /__control/subscriptions/:id/invoice).
// Money is exact until each line is rounded: amounts are BigInt in units of 1e-12 of the minor
// unit (unit_amount_decimal has at most 12 decimals), quantities are BigInt.

const DEC_SCALE = 10n ** 12n;

// "0.05" / "12" (minor units, up to 12 decimals) -> BigInt in 1e-12 minor units.
function parseDecimal(text, what) {
  const m = /^(\d+)(?:\.(\d{1,12}))?$/.exec(String(text));
  if (!m) throw new ParamError(`Invalid decimal: ${text}`, what);
  return BigInt(m[1]) * DEC_SCALE + BigInt((m[2] ?? '').padEnd(12, '0'));
}

// The price of `quantity` units, exact (1e-12 minor units). transform_quantity (per-unit prices)
// divides first, rounding up or down; tiers bound inclusively (up_to null: no bound); graduated
// prices each unit in its tier and add a tier's flat amount once a unit falls in it; volume
// prices every unit at the one tier the total falls in. Quantity 0 enters no tier.
export function priceAmountExact(price, quantity) {
  let q = BigInt(quantity);
  const t = price.transform_quantity;
  if (t) {
    const d = BigInt(t.divide_by);
    q = t.round === 'up' ? (q + d - 1n) / d : q / d;
  }
  if (price.billing_scheme !== 'tiered')
    return q * parseDecimal(price.unit_amount_decimal ?? price.unit_amount ?? '0', 'unit_amount_decimal');
  if (q === 0n) return 0n;
  const tierUnit = (tier) => parseDecimal(tier.unit_amount_decimal ?? tier.unit_amount ?? '0', 'tiers[unit_amount_decimal]');
  const tierFlat = (tier) => parseDecimal(tier.flat_amount_decimal ?? tier.flat_amount ?? '0', 'tiers[flat_amount_decimal]');
  if (price.tiers_mode === 'volume') {
    const tier = price.tiers.find((x) => x.up_to === null || q <= BigInt(x.up_to));
    return q * tierUnit(tier) + tierFlat(tier);
  }
  let total = 0n, below = 0n;
  for (const tier of price.tiers) {
    const top = tier.up_to === null ? q : (q < BigInt(tier.up_to) ? q : BigInt(tier.up_to));
    if (top <= below) break;
    total += (top - below) * tierUnit(tier) + tierFlat(tier);
    below = top;
  }
  return total;
}

// To whole minor units, half up (amounts here are never negative).
export function roundMinor(exact) {
  return Number((exact + DEC_SCALE / 2n) / DEC_SCALE);
}

// The sum of a meter's events for one Stripe customer with timestamps in [start, end).
function meterSum(state, meter, customer, start, end) {
  const ckey = meter.customer_mapping.event_payload_key, vkey = meter.value_settings.event_payload_key;
  let sum = 0n;
  for (const ev of state.meterIdentifiers.values()) {
    if (ev.event_name !== meter.event_name || ev.payload[ckey] !== customer || ev.timestamp < start || ev.timestamp >= end)
      continue;
    const v = String(ev.payload[vkey]);
    if (!/^\d+$/.test(v)) throw new ParamError(`The fake invoices whole, non-negative meter values only, not ${v}.`, 'payload[value]');
    sum += BigInt(v);
  }
  return sum;
}

function subscriptionLine(state, inv, sub, item, quantity, period) {
  const price = item.price;
  const product = state.objects.get(price.product);
  const amount = roundMinor(priceAmountExact(price, quantity));
  return {
    id: newId(state, 'il'), object: 'line_item', amount, currency: price.currency,
    description: `${quantity} × ${product ? product.name : price.product}`, discount_amounts: [], discountable: true,
    discounts: [], invoice: inv.id, livemode: false, metadata: {},
    parent: {type: 'subscription_item_details', invoice_item_details: null,
      subscription_item_details: {invoice_item: null, proration: false, proration_details: {credited_items: null},
        subscription: sub.id, subscription_item: item.id}},
    period, pretax_credit_amounts: [],
    pricing: {type: 'price_details', price_details: {price: price.id, product: price.product},
      unit_amount_decimal: price.billing_scheme === 'tiered' ? null : price.unit_amount_decimal},
    quantity: Number(quantity), subscription: sub.id, subtotal: amount, taxes: [],
  };
}

function invoiceSubscription(state, id, body) {
  const sub = get(state, id, 'subscription');
  if (sub.status === 'canceled') throw new ParamError(`The subscription ${id} is canceled.`, undefined, 'subscription_canceled');
  const start = body.period_start, end = body.period_end;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end <= start)
    throw new ParamError('period_start and period_end: integers (seconds), period_start < period_end.', 'period_start');
  const customer = liveCustomer(state, sub.customer);
  // The invoice as POST /v1/invoices makes it, announced only once its lines are on it.
  const endpoint = state.endpoint;
  state.endpoint = null;
  let inv;
  try {
    inv = createInvoice(state, {customer: customer.id, currency: sub.currency, collection_method: sub.collection_method,
      ...(sub.collection_method === 'send_invoice' ? {days_until_due: String(sub.days_until_due ?? 30)} : {})});
  } finally {
    state.endpoint = endpoint;
  }
  inv.billing_reason = 'subscription_cycle';
  inv.parent = {type: 'subscription_details', quote_details: null,
    subscription_details: {metadata: {...sub.metadata}, subscription: sub.id}};
  inv.period_start = start;
  inv.period_end = end;
  inv.auto_advance = true;
  // Licensed items are billed in advance (the period that starts now), metered ones in arrears.
  const next = {start: end, end: end + (end - start)};
  for (const item of sub.items.data) {
    const metered = item.price.recurring && item.price.recurring.usage_type === 'metered';
    const quantity = metered
      ? meterSum(state, get(state, item.price.recurring.meter, 'billing.meter'), customer.id, start, end)
      : BigInt(item.quantity ?? 1);
    inv.lines.data.push(subscriptionLine(state, inv, sub, item, quantity, metered ? {start, end} : next));
    item.current_period_start = next.start;
    item.current_period_end = next.end;
  }
  inv.lines.total_count = inv.lines.data.length;
  recompute(inv);
  for (const o of state.objects.values())
    if (o.object === 'invoiceitem' && o.customer === customer.id && o.invoice === null && o.currency === inv.currency)
      attach(state, inv, o);
  sub.latest_invoice = inv.id;
  emit(state, 'invoice.created', inv);
  return finalizeInvoice(state, {}, inv.id);
}

function listInvoiceLines(state, p, id) {
  const inv = get(state, id, 'invoice');
  const limit = int(p, 'limit', {min: 1}) ?? 10;
  if (limit > 100) throw new ParamError('This value must be less than or equal to 100.', 'limit');
  let from = 0;
  if (p.starting_after !== undefined) {
    from = inv.lines.data.findIndex((l) => l.id === p.starting_after) + 1;
    if (from === 0) throw noSuch('line_item', p.starting_after, 'starting_after');
  }
  return {object: 'list', data: inv.lines.data.slice(from, from + limit), has_more: from + limit < inv.lines.data.length,
    url: `/v1/invoices/${id}/lines`};
}

// ---- events and signing ----

export function signedHeader(payload, secret, timestamp = now()) {
  return stripeLib.webhooks.generateTestHeaderString({payload, secret, timestamp});
}

export function makeEvent(state, type, object, {id, created, previous_attributes} = {}) {
  const ev = {
    id: id ?? newId(state, 'evt'), object: 'event', api_version: API_VERSION, created: created ?? now(),
    data: {object: structuredClone(object), ...(previous_attributes ? {previous_attributes} : {})},
    livemode: false, pending_webhooks: 1, request: {id: null, idempotency_key: null}, type,
  };
  state.objects.set(ev.id, ev);
  state.events.push(ev);
  return ev;
}

async function deliver(url, secret, payload, timestamp) {
  const r = await fetch(url, {
    method: 'POST',
    headers: {'Content-Type': 'application/json; charset=utf-8', 'User-Agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)',
      'Stripe-Signature': signedHeader(payload, secret, timestamp)},
    body: payload,
  });
  return {status: r.status, body: await r.text()};
}

// ---- control API ----

async function control(state, req, res, u, raw) {
  let body = {};
  try {
    body = raw ? JSON.parse(raw) : {};
  } catch {
    return send(res, 400, {error: 'control bodies are JSON'});
  }
  const p = u.pathname;
  if (req.method === 'POST' && p === '/__control/fail') {
    const f = {count: body.count ?? 1, kind: body.kind ?? 'status', status: body.status, path: body.path,
      method: body.method, should_retry: body.should_retry, timeout_ms: body.timeout_ms};
    if (!['status', 'timeout', 'lost'].includes(f.kind)) return send(res, 400, {error: `unknown kind ${f.kind}`});
    state.failures.push(f);
    return send(res, 200, {queued: state.failures});
  }
  if (req.method === 'POST' && p === '/__control/reset') {
    await state.chain;
    Object.assign(state, newState(), {timers: state.timers});
    clockOffsetS = 0; // meter events part: the real clock again
    return send(res, 200, {ok: true});
  }
  if (req.method === 'GET' && p === '/__control/objects') {
    const type = u.searchParams.get('type');
    const out = {};
    for (const o of state.objects.values()) {
      if (type && o.object !== type) continue;
      (out[o.object] ??= []).push(o);
    }
    out['billing.meter_event'] = (type && type !== 'billing.meter_event') ? undefined : [...state.meterIdentifiers.values()];
    return send(res, 200, out);
  }
  if (req.method === 'GET' && p === '/__control/requests') return send(res, 200, state.requests);
  if (req.method === 'POST' && p === '/__control/webhook_endpoint') {
    state.endpoint = body.url ? {url: body.url, secret: body.secret} : null;
    if (state.endpoint && !/^whsec_/.test(state.endpoint.secret ?? '')) return send(res, 400, {error: 'secret must be whsec_...'});
    return send(res, 200, {endpoint: state.endpoint && state.endpoint.url});
  }
  if (req.method === 'GET' && p === '/__control/deliveries') {
    await state.chain; // every event made so far has been delivered (or failed)
    return send(res, 200, state.deliveries);
  }
  if (req.method === 'POST' && p === '/__control/send_webhook') {
    if (!body.url || !body.secret || !body.type || body.object === undefined)
      return send(res, 400, {error: 'url, secret, type and object are required'});
    const object = typeof body.object === 'string' ? state.objects.get(body.object) : body.object;
    if (!object) return send(res, 404, {error: `no object ${body.object}`});
    const ev = makeEvent(state, body.type, object, body);
    const payload = JSON.stringify(ev, null, 2); // Stripe sends pretty-printed JSON
    try {
      const r = await deliver(body.url, body.secret, payload, body.timestamp);
      return send(res, 200, {event: ev, delivery: r});
    } catch (e) {
      return send(res, 502, {event: ev, error: String(e)});
    }
  }
  let m;
  if (req.method === 'POST' && (m = /^\/__control\/invoices\/([^/]+)\/payment$/.exec(p))) {
    const inv = state.objects.get(m[1]);
    if (!inv || inv.object !== 'invoice') return send(res, 404, {error: `no invoice ${m[1]}`});
    if (inv.status !== 'open') return send(res, 409, {error: `invoice is ${inv.status}`});
    inv.attempt_count++;
    inv.attempted = true;
    if (body.succeed) {
      inv.status = 'paid';
      inv.amount_paid = inv.amount_due;
      inv.amount_remaining = 0;
      inv.status_transitions.paid_at = now();
      inv.next_payment_attempt = null;
      emit(state, 'invoice.paid', inv);
      return send(res, 200, {invoice: inv, event_type: 'invoice.paid'});
    }
    inv.next_payment_attempt = now() + 3 * 86400;
    emit(state, 'invoice.payment_failed', inv);
    return send(res, 200, {invoice: inv, event_type: 'invoice.payment_failed'});
  }
  if (req.method === 'POST' && (m = /^\/__control\/checkout\/sessions\/([^/]+)\/complete$/.exec(p))) {
    const s = state.objects.get(m[1]);
    if (!s || s.object !== 'checkout.session') return send(res, 404, {error: `no session ${m[1]}`});
    s.status = 'complete';
    const pm = newId(state, 'pm');
    state.objects.set(pm, {id: pm, object: 'payment_method', type: 'card', customer: s.customer, created: now(), livemode: false,
      card: {brand: 'visa', last4: '4242', exp_month: 12, exp_year: new Date().getUTCFullYear() + 3}, metadata: {}});
    const seti = s.setup_intent;
    state.objects.set(seti, {id: seti, object: 'setup_intent', status: 'succeeded', customer: s.customer, payment_method: pm, usage: 'off_session', livemode: false});
    const c = s.customer && state.objects.get(s.customer);
    if (c) c.invoice_settings.default_payment_method = pm;
    emit(state, 'checkout.session.completed', s);
    return send(res, 200, {session: s, payment_method: pm, event_type: 'checkout.session.completed'});
  }
  // ---- subscription invoicing (reconcile) ----
  if (req.method === 'POST' && (m = /^\/__control\/subscriptions\/([^/]+)\/invoice$/.exec(p))) {
    try {
      return send(res, 200, invoiceSubscription(state, m[1], body));
    } catch (e) {
      if (e instanceof StripeError) return send(res, e.status, e.body);
      throw e;
    }
  }
  // ---- meter events part (issue 11 item 4) ----
  // POST /__control/clock {now}: the fake's clock reads `now` (seconds) from here on, as a Stripe
  // test clock would; {now: null} goes back to the real clock. The meter event timestamp window
  // (35 days back, 5 minutes ahead) is checked against it, so a test that moves tollgate's clock
  // moves this one along.
  if (req.method === 'POST' && p === '/__control/clock') {
    clockOffsetS = body.now == null ? 0 : Number(body.now) - Math.floor(Date.now() / 1000);
    return send(res, 200, {now: now()});
  }
  // POST /__control/forget_idempotency {clear_failures?}: forget every saved idempotent answer, as
  // Stripe does after 24 hours (meter event identifiers stay: a request sent again is then
  // refused as a duplicate identifier); clear_failures also drops the queued failures.
  if (req.method === 'POST' && p === '/__control/forget_idempotency') {
    state.idem.clear();
    if (body.clear_failures) state.failures = [];
    return send(res, 200, {ok: true});
  }
  // ---- end of meter events part ----
  return send(res, 404, {error: `no control route ${req.method} ${p}`});
}

// ---- command line ----

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const i = process.argv.indexOf('--port');
  const fake = await startFakeStripe({port: i > 0 ? Number(process.argv[i + 1]) : 0});
  console.log(`fake stripe listening on ${fake.url}`);
}
