// dashboard.test.mjs - the owner's revenue dashboard figures, from the same store as invoices.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withStack } from './harness.mjs';

test('MRR, customers by plan and status, calls, top customers and quota alerts', async () => {
  await withStack({}, async (s) => {
    // No customers yet: the figures are zeros (the ASan/UBSan build aborted here on qsort(NULL, 0)).
    const empty = await s.adminCall('GET', '/v1/admin/dashboard');
    assert.equal(empty.status, 200);
    assert.equal(empty.json.mrr, '0.00');
    assert.deepEqual(empty.json.top_by_calls, []);
    const m1 = await s.customer('metered'); // active, 10.00 a month
    const m2 = await s.customer('metered');
    const st = await s.customer('starter'); // trialing: no MRR yet
    const tiny = await s.customer('tiny'); // 5 calls included
    await s.customer('free');
    for (let i = 0; i < 5; i++) await s.call('/v1/basic/x', { key: tiny.key });
    for (let i = 0; i < 12; i++) await s.call('/v1/basic/x', { key: m1.key });
    await s.call('/v1/basic/x', { key: st.key });
    await s.adminCall('PATCH', `/v1/admin/customers/${m2.customer.id}`, { status: 'suspended' });
    const f = await s.customer('free');
    await s.adminCall('PATCH', `/v1/admin/customers/${f.customer.id}`, { plan: 'metered' }); // an upgrade

    const d = (await s.adminCall('GET', '/v1/admin/dashboard')).json;
    assert.ok(Date.parse(d.as_of) > 0);
    assert.equal(d.mrr, '21.00'); // metered 10 x 2 + tiny 1 (m2 suspended, starter trialing, free 0)
    assert.equal(d.arr, '252.00');
    assert.deepEqual(d.customers_by_plan, { metered: 3, starter: 1, tiny: 1, free: 1 });
    assert.equal(d.upgrades_this_month, 1);
    assert.equal(d.downgrades_this_month, 0);
    assert.equal(d.customers_by_status.trialing, 1);
    assert.equal(d.customers_by_status.suspended, 1);
    assert.equal(d.customers_by_status.active, 4);
    assert.equal(d.signups_this_month, 6);
    assert.equal(d.calls_this_period, 18);
    assert.equal(Object.values(d.calls_per_day).reduce((a, b) => a + b, 0), 18);
    assert.equal(d.top_by_calls[0].id, m1.customer.id);
    assert.equal(d.top_by_calls[0].calls, 12);
    const alert = d.near_quota.find((x) => x.id === tiny.customer.id);
    assert.deepEqual([alert.calls, alert.included, alert.over], [5, 5, false]);
    assert.ok(d.near_quota.find((x) => x.id === m1.customer.id).over); // 12 of 2 included
    assert.equal((await s.adminCall('GET', '/v1/admin/dashboard', undefined, null)).status, 401);
  });
});

// Issue 11 item 8: the revenue split and the MRR of paying customers, per currency, exact.
// A second currency with no minor unit (jpy) shows that each figure keeps its currency's digits.
const YEN = `  yen:
    price: "1200"
    currency: jpy
    rate_limit: 1000/sec
    burst: 1000
    charges: [{metric: api_calls, model: per_unit, unit_price: "3"}]
  payg:
    price: "0"
    rate_limit: 1000/sec
    burst: 1000
    charges: [{metric: api_calls, model: per_unit, unit_price: "0.01"}]
  yearly:
    price: "100"
    interval: year
    rate_limit: 1000/sec
    burst: 1000
`;

// The customer's one invoice (the period that just closed), after a run.
async function onlyInvoice(s, id) {
  const list = await s.adminCall('GET', `/v1/admin/invoices?customer=${id}`);
  assert.equal(list.json.data.length, 1, list.text);
  return list.json.data[0];
}

test('revenue per currency: invoiced, collected, outstanding and uncollectible from the invoices finalized this month', async () => {
  await withStack({ testClock: true, morePlans: YEN }, async (s) => {
    const usd = {};
    for (const name of ['paid', 'open', 'lost', 'voided', 'draft']) usd[name] = await s.customer('metered');
    const jpy = {};
    for (const name of ['paid', 'open', 'voided', 'draft']) jpy[name] = await s.customer('yen');
    // usage: 5 calls on metered = 10.00 + 3 x 0.25; 2 calls on yen = 1200 + 2 x 3
    for (let i = 0; i < 5; i++) assert.equal((await s.call('/v1/basic/x', { key: usd.paid.key })).status, 200);
    for (let i = 0; i < 2; i++) assert.equal((await s.call('/v1/basic/x', { key: jpy.paid.key })).status, 200);

    // Nothing finalized yet: no revenue.
    let d = (await s.adminCall('GET', '/v1/admin/dashboard')).json;
    assert.equal(d.revenue.currencies.usd.invoiced, '0.00');
    assert.equal(d.revenue.currencies.jpy.invoiced, '0');

    assert.equal((await s.adminCall('POST', '/v1/admin/clock', { advance_seconds: 32 * 86400 })).status, 200);
    const run = await s.adminCall('POST', '/v1/admin/invoices/run', {});
    assert.equal(run.json.created, 9, run.text);
    const act = async (c, ...steps) => {
      const inv = await onlyInvoice(s, c.customer.id);
      for (const step of steps) {
        const r = await s.adminCall('POST', `/v1/admin/invoices/${inv.id}/${step}`);
        assert.equal(r.status, 200, `${step}: ${r.text}`);
      }
      return inv;
    };
    await act(usd.paid, 'finalize', 'mark-paid');
    await act(usd.open, 'finalize');
    await act(usd.lost, 'finalize', 'mark-uncollectible');
    await act(usd.voided, 'finalize', 'void');
    await act(usd.draft);
    await act(jpy.paid, 'finalize', 'mark-paid');
    await act(jpy.open, 'finalize');
    await act(jpy.voided, 'void'); // a draft voided before it was ever finalized
    await act(jpy.draft);

    d = (await s.adminCall('GET', '/v1/admin/dashboard')).json;
    // the plans have two currencies: no single MRR figure (before, 50 dollars and 4800 yen were
    // added up into "4850.00"), and each plan's MRR in its own digits (yen had two decimals)
    assert.deepEqual([d.mrr, d.arr], [null, null]);
    assert.deepEqual(d.mrr_by_plan, { metered: '50.00', yen: '4800' });
    const r = d.revenue;
    assert.ok(Date.parse(r.from) <= Date.parse(d.as_of) && Date.parse(d.as_of) < Date.parse(r.to));
    assert.equal(new Date(r.from).getUTCDate(), 1); // the calendar month (UTC)
    assert.deepEqual(r.currencies.usd, {
      digits: 2,
      invoiced: '30.75', // paid 10.75 + open 10.00 + uncollectible 10.00; void and draft are not revenue
      collected: '10.75',
      outstanding: '10.00',
      uncollectible: '10.00',
      invoices: { finalized: 3, paid: 1, open: 1, uncollectible: 1 },
      mrr: '50.00', // the five usd customers, active on metered (a plan without a trial)
      arr: '600.00',
      paying_customers: 5,
      trial_mrr: '0.00',
      trialing_customers: 0,
      usage_revenue_last_period: '0.75', // 3 calls over the allowance x 0.25
    });
    assert.deepEqual(r.currencies.jpy, {
      digits: 0,
      invoiced: '2406', // 1206 paid + 1200 open, in whole yen
      collected: '1206',
      outstanding: '1200',
      uncollectible: '0',
      invoices: { finalized: 2, paid: 1, open: 1, uncollectible: 0 },
      mrr: '4800',
      arr: '57600',
      paying_customers: 4,
      trial_mrr: '0',
      trialing_customers: 0,
      usage_revenue_last_period: '6', // 2 calls x 3 yen
    });
    // ?period=YYYY-MM moves the revenue window to that month (MRR stays as of now)
    const ym = (t) => `${t.getUTCFullYear()}-${String(t.getUTCMonth() + 1).padStart(2, '0')}`;
    const from = new Date(r.from);
    const same = await s.adminCall('GET', `/v1/admin/dashboard?period=${ym(from)}`);
    assert.deepEqual(same.json.revenue, r);
    const prev = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth() - 1, 1));
    const earlier = (await s.adminCall('GET', `/v1/admin/dashboard?period=${ym(prev)}`)).json.revenue;
    assert.deepEqual([Date.parse(earlier.from), Date.parse(earlier.to)], [prev.getTime(), from.getTime()]);
    assert.deepEqual([earlier.currencies.usd.invoiced, earlier.currencies.jpy.collected, earlier.currencies.usd.mrr], ['0.00', '0', '50.00']);
    const bad = await s.adminCall('GET', '/v1/admin/dashboard?period=2026-13');
    assert.deepEqual([bad.status, bad.json.error.type], [400, 'bad_request']);
    // one figure only where there is one currency; each customer's billed in its own
    assert.equal(d.usage_revenue_last_period, null);
    const top = d.top_by_revenue.find((x) => x.id === jpy.paid.customer.id);
    assert.deepEqual([top.billed, top.currency], ['1206', 'jpy']);
    assert.deepEqual(d.top_by_revenue.filter((x) => x.id === usd.paid.customer.id).map((x) => [x.billed, x.currency]), [['10.75', 'usd']]);
  });
});

test('MRR counts paying customers only: trials, incomplete, suspended, canceled and free apart; an upgrade counts at once', async () => {
  await withStack({ morePlans: YEN }, async (s) => {
    await s.customer('metered'); // paying, 10.00
    const due = await s.customer('metered'); // payments failing: still subscribed, still paying
    assert.equal((await s.adminCall('PATCH', `/v1/admin/customers/${due.customer.id}`, { status: 'past_due' })).status, 200);
    await s.customer('starter'); // 14-day trial: 49.00 apart
    const susp = await s.customer('metered');
    assert.equal((await s.adminCall('PATCH', `/v1/admin/customers/${susp.customer.id}`, { status: 'suspended' })).status, 200);
    const gone = await s.customer('metered');
    assert.equal((await s.adminCall('POST', `/v1/admin/customers/${gone.customer.id}/cancel`, { at_period_end: false })).status, 200);
    await s.customer('free');
    await s.customer('payg'); // no base fee, but usage charges: a paying customer who adds 0.00
    await s.customer('yearly'); // 100.00 a year: 8.33 a month
    await s.customer('yen');

    let d = (await s.adminCall('GET', '/v1/admin/dashboard')).json;
    // by plan first (before, the past_due customer was left out: metered was 10.00)
    assert.deepEqual(d.mrr_by_plan, { metered: '20.00', yearly: '8.33', payg: '0.00', yen: '1200' });
    assert.equal(d.revenue.currencies.usd.mrr, '28.33'); // 10 + 10 + 0 + 8.33
    assert.equal(d.revenue.currencies.usd.paying_customers, 4);
    assert.equal(d.revenue.currencies.usd.trial_mrr, '49.00');
    assert.equal(d.revenue.currencies.usd.trialing_customers, 1);
    assert.equal(d.revenue.currencies.jpy.mrr, '1200');
    assert.deepEqual(d.revenue.customers, { paying: 5, trialing: 1, incomplete: 0, suspended: 1, canceled: 1, free: 1 });
    assert.equal(d.paying_customers, 5);
    assert.equal(d.trialing_customers, 1);

    // An upgrade in the middle of the period: the new plan's fee counts from now on.
    const tiny = await s.customer('tiny');
    d = (await s.adminCall('GET', '/v1/admin/dashboard')).json;
    assert.equal(d.revenue.currencies.usd.mrr, '29.33');
    const up = await s.adminCall('PATCH', `/v1/admin/customers/${tiny.customer.id}`, { plan: 'metered' });
    assert.equal(up.status, 200, up.text);
    d = (await s.adminCall('GET', '/v1/admin/dashboard')).json;
    assert.equal(d.revenue.currencies.usd.mrr, '38.33'); // tiny's 1.00 became metered's 10.00
    assert.equal(d.revenue.currencies.usd.paying_customers, 5);
    assert.equal(d.upgrades_this_month, 1);
  });
});

// Issue 15: the usage chart's window (?from, ?to, UTC days, both included), every metric per day,
// and each metric's display name beside it.
test('the usage chart: every metric per day in the window ?from..?to names, with display names', async () => {
  await withStack({ meteringMetrics: '{api_calls: {name: "API calls", unit: call}, images: {name: "Images", unit: image}}' }, async (s) => {
    const { key } = await s.customer('pro');
    for (let i = 0; i < 3; i++) assert.equal((await s.call('/v1/basic/x', { key })).status, 200);
    assert.equal((await s.call('/v1/vision/classify', { key, method: 'POST', body: 'x' })).status, 200); // api_calls 1, images 1
    const day = (t) => new Date(t).toISOString().slice(0, 10);
    const today = day(Date.now()), D = 86400e3;

    const d = (await s.adminCall('GET', '/v1/admin/dashboard')).json;
    assert.deepEqual(d.usage_window, { from: day(Date.parse(today) - 29 * D), to: today }); // the 30 days up to today
    assert.deepEqual(d.usage_per_day, { api_calls: { [today]: 4 }, images: { [today]: 1 } });
    assert.deepEqual(d.calls_per_day, { [today]: 4 });
    assert.deepEqual(d.metrics.images, { name: 'Images', unit: 'image' });

    let r = await s.adminCall('GET', `/v1/admin/dashboard?from=${today}&to=${today}`);
    assert.deepEqual(r.json.usage_per_day, { api_calls: { [today]: 4 }, images: { [today]: 1 } });
    const tomorrow = day(Date.parse(today) + D);
    r = await s.adminCall('GET', `/v1/admin/dashboard?from=${tomorrow}`); // 30 days from then: nothing yet
    assert.deepEqual(r.json.usage_window, { from: tomorrow, to: day(Date.parse(today) + 30 * D) });
    assert.deepEqual(r.json.usage_per_day, {});
    assert.deepEqual(r.json.calls_per_day, {});
    r = await s.adminCall('GET', `/v1/admin/dashboard?to=${day(Date.parse(today) - D)}`); // the 30 days before today
    assert.deepEqual(r.json.usage_per_day, {});
    // ?period (the revenue month) and the chart's window together
    r = await s.adminCall('GET', `/v1/admin/dashboard?period=${today.slice(0, 7)}&from=${day(Date.parse(today) - 89 * D)}`);
    assert.equal(r.status, 200);
    assert.equal(r.json.usage_window.from, day(Date.parse(today) - 89 * D));

    for (const [q, msg] of [['from=2026-02-30', /from: a date, YYYY-MM-DD/], ['to=yesterday', /to: a date, YYYY-MM-DD/],
      ['from=2026-03-02&to=2026-03-01', /from: 2026-03-02 is after to: 2026-03-01/], ['from=2025-01-01&to=2026-01-02', /at most 366 days/]]) {
      r = await s.adminCall('GET', `/v1/admin/dashboard?${q}`);
      assert.equal(r.status, 400, q);
      assert.equal(r.json.error.type, 'invalid_parameter', q);
      assert.match(r.json.error.message, msg, q);
    }
  });
});
