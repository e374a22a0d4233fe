// cli_billing.test.mjs - the CLI's subscription commands (issue 11 item 9): set-plan --when,
// cancel, add-item (charges and credits), invoices upcoming, and `customers show` naming a
// pending change. They call the admin API routes that the subscription services back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withStack } from './harness.mjs';

test('CLI: customers set-plan --when now|period_end, and show names the pending plan', async () => {
  await withStack({}, async (s) => {
    const srv = ['--server', s.admin];
    const { customer, key } = await s.customer('metered');
    let r = s.cli(['customers', 'set-plan', customer.id, 'starter', '--when', 'period_end', ...srv]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`plan metered, status active; changes to starter on ${customer.current_period.end}`));
    r = s.cli(['customers', 'show', customer.id, ...srv]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`pending:\\s+plan starter from ${customer.current_period.end}`));
    r = s.cli(['customers', 'show', customer.id, '--json', ...srv]);
    assert.equal(JSON.parse(r.stdout).pending_plan, 'starter');

    r = s.cli(['customers', 'set-plan', customer.id, 'pro', '--when', 'now', '--json', ...srv]);
    assert.equal(r.status, 0, r.stderr);
    const now = JSON.parse(r.stdout);
    assert.equal(now.plan, 'pro');
    assert.equal(now.pending_plan, null);
    assert.equal((await s.call('/v1/basic/x', { key })).json.plan, 'pro');
    r = s.cli(['customers', 'show', customer.id, ...srv]);
    assert.doesNotMatch(r.stdout, /pending:/);

    r = s.cli(['customers', 'set-plan', customer.id, 'free', ...srv]); // a downgrade waits by default
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /plan pro, status active; changes to free on/);

    r = s.cli(['customers', 'set-plan', customer.id, 'free', '--when', 'tomorrow', ...srv]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /400 bad_request: when: "now" or "period_end", not "tomorrow"/);
    r = s.cli(['customers', 'show', customer.id, '--when', 'now', ...srv]);
    assert.equal(r.status, 2);
  });
});

test('CLI: customers cancel (at the period end, or --now with a final invoice)', async () => {
  await withStack({}, async (s) => {
    const srv = ['--server', s.admin];
    const a = await s.customer('metered'), b = await s.customer('metered');
    let r = s.cli(['customers', 'cancel', a.customer.id, ...srv]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`status active; cancels on ${a.customer.current_period.end}`));
    assert.equal((await s.call('/v1/basic/x', { key: a.key })).status, 200); // access until then
    r = s.cli(['customers', 'show', a.customer.id, ...srv]);
    assert.match(r.stdout, new RegExp(`cancel:\\s+at ${a.customer.current_period.end}`));

    r = s.cli(['customers', 'cancel', b.customer.id, '--now', '--json', ...srv]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).status, 'canceled');
    assert.equal((await s.call('/v1/basic/x', { key: b.key })).status, 402);
    const list = await s.adminCall('GET', `/v1/admin/invoices?customer=${b.customer.id}`);
    assert.equal(list.json.data.length, 1); // the final invoice
    r = s.cli(['customers', 'cancel', b.customer.id, ...srv]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /409 conflict: Customer cus_\w+ is canceled already/);
  });
});

test('CLI: customers add-item (charge and credit) and invoices upcoming', async () => {
  await withStack({ meteringMetrics: '{api_calls: {name: "API calls", unit: call}}' }, async (s) => {
    const srv = ['--server', s.admin];
    const { key, customer } = await s.customer('metered');
    assert.equal((await s.call('/v1/basic/x', { key })).status, 200); // a usage line, within the allowance
    let r = s.cli(['customers', 'add-item', customer.id, '--description', 'Setup', '--amount', '25', ...srv]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Added "Setup" \(\$25\.00\) to the next invoice of cus_/);
    r = s.cli(['customers', 'add-item', customer.id, '--description', 'Goodwill credit', '--amount', '-10.50', '--json', ...srv]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).amount, '-10.50');
    r = s.cli(['customers', 'add-item', customer.id, '--description', 'Nothing', '--amount', '0', ...srv]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /400 bad_request: amount/);
    r = s.cli(['customers', 'add-item', customer.id, '--amount', '5', ...srv]);
    assert.equal(r.status, 2);

    r = s.cli(['invoices', 'upcoming', customer.id, ...srv]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /upcoming invoice/);
    assert.match(r.stdout, /API calls above 2 included \(per call\)\s+0\s+\$0\.00\n/); // the line as people read it
    assert.match(r.stdout, /Setup\s+1\s+\$25\.00\n/);
    assert.match(r.stdout, /Goodwill credit\s+1\s+-\$10\.50\n/);
    assert.match(r.stdout, /Total\s+\$24\.50\n/); // 10.00 base + 25.00 - 10.50
    r = s.cli(['invoices', 'upcoming', customer.id, '--json', ...srv]);
    const inv = JSON.parse(r.stdout);
    assert.equal(inv.total, '24.50');
    assert.deepEqual(inv.lines.map((l) => l.amount), ['10.00', '0.00', '25.00', '-10.50']);
    r = s.cli(['invoices', 'upcoming', 'cus_nobody', ...srv]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /404 not_found/);
  });
});
