// customer_search.test.mjs - issue 15: the owner's customer list with search, filters, orders and
// pages (GET /v1/admin/customers?q=&plan=&status=&sort=&order=&limit=&cursor=), on the real
// binary and either store (TG_TEST_BACKEND).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withStack } from './harness.mjs';

const create = async (s, email, name, plan) => {
  const r = await s.adminCall('POST', '/v1/admin/customers', { email, name, plan });
  assert.equal(r.status, 201, r.text);
  return r.json;
};

// Every page of a list, following next_cursor; the ids in order.
async function walk(s, query, limit) {
  const ids = [];
  let cursor = null;
  for (let pages = 0; pages < 50; pages++) {
    const sep = query ? '&' : '';
    const r = await s.adminCall('GET', `/v1/admin/customers?${query}${sep}limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
    assert.equal(r.status, 200, r.text);
    ids.push(...r.json.data.map((c) => c.id));
    if (!r.json.has_more) return ids;
    cursor = r.json.next_cursor;
  }
  throw new Error('too many pages');
}

test('customers: search by email, name or id; filter by plan and status; sort; page', async () => {
  await withStack({}, async (s) => {
    const ada = await create(s, 'ops@ACME.io', 'Acme Corp', 'pro');
    const bob = await create(s, 'bob@example.com', "Bob's 100% Shop", 'free');
    const cid = await create(s, 'a_b+tag@example.com', 'Zed & Co', 'free');
    const dan = await create(s, 'axb@example.com', 'Dan', 'pro');
    await s.adminCall('PATCH', `/v1/admin/customers/${dan.id}`, { status: 'suspended' });

    // no parameters: the list as it always was (newest first, ties by id)
    const all = await walk(s, '', 100);
    const created = new Map([ada, bob, cid, dan].map((c) => [c.id, Date.parse(c.created_at)]));
    assert.deepEqual(all, [...created.keys()].sort((x, y) => created.get(y) - created.get(x) || (x < y ? -1 : 1)));

    // substring, case-insensitive, of the email, the name or the id; percent-decoded
    assert.deepEqual(await walk(s, 'q=acme&sort=email', 1), [ada.id]);
    assert.deepEqual(await walk(s, 'q=%25', 10), [bob.id]); // "%" is literal, not "anything"
    assert.deepEqual(await walk(s, 'q=a_b', 10), [cid.id]); // "_" is literal: axb does not match
    assert.deepEqual(await walk(s, 'q=a_b%2Btag', 10), [cid.id]); // %2B is "+"
    assert.deepEqual(await walk(s, 'q=zed+%26+co', 10), [cid.id]); // "+" is a space
    assert.deepEqual(await walk(s, `q=${dan.id.slice(2, 12).toUpperCase()}`, 10), [dan.id]);
    assert.deepEqual(await walk(s, `q=${encodeURIComponent("' OR 1=1 --")}`, 10), []);

    // filters
    assert.deepEqual(await walk(s, 'plan=pro&sort=email', 1), [dan.id, ada.id]); // axb@, ops@
    assert.deepEqual(await walk(s, 'plan=free&status=active&sort=email', 10), [cid.id, bob.id]);
    assert.equal(ada.status, 'trialing'); // pro has a trial
    assert.deepEqual(await walk(s, 'status=trialing', 10), [ada.id]);
    assert.deepEqual(await walk(s, 'status=suspended', 10), [dan.id]);
    assert.deepEqual(await walk(s, 'plan=enterprise', 10), []);

    // orders, through pages of every size: each customer once, in order
    const byEmail = [cid.id, dan.id, bob.id, ada.id]; // a_b+tag, axb, bob, ops (case-insensitive)
    const byName = [ada.id, bob.id, dan.id, cid.id]; // Acme, Bob's, Dan, Zed
    for (const limit of [1, 2, 3, 5]) {
      assert.deepEqual(await walk(s, 'sort=email', limit), byEmail);
      assert.deepEqual(await walk(s, 'sort=email&order=desc', limit), [...byEmail].reverse());
      assert.deepEqual(await walk(s, 'sort=name', limit), byName);
      assert.deepEqual(await walk(s, 'sort=created&order=asc', limit), // ties by id, ascending both ways
        [...created.keys()].sort((x, y) => created.get(x) - created.get(y) || (x < y ? -1 : 1)));
      assert.deepEqual(await walk(s, 'sort=created', limit), all);
    }

    // a cursor keeps its order: passed with another order it is a 400, not a wrong page
    const first = await s.adminCall('GET', '/v1/admin/customers?sort=email&limit=1');
    const other = await s.adminCall('GET', `/v1/admin/customers?sort=name&limit=1&cursor=${first.json.next_cursor}`);
    assert.equal(other.status, 400);
    assert.match(other.json.error.message, /cursor/);
    // the default order's cursors still work with sort=created (the same keys)
    const plain = await s.adminCall('GET', '/v1/admin/customers?limit=1');
    const same = await s.adminCall('GET', `/v1/admin/customers?sort=created&order=desc&limit=1&cursor=${plain.json.next_cursor}`);
    assert.equal(same.status, 200);
    assert.deepEqual(same.json.data.map((c) => c.id), [all[1]]);

    // bad parameters name themselves
    for (const [q, name] of [['sort=plan', 'sort'], ['order=up', 'order'], ['status=happy', 'status'],
      [`q=${'a'.repeat(200)}`, 'q'], ['q=%FF', 'q'], ['q=%00', 'q'], ['q=%4', 'q'], ['plan=a%27b', 'plan']]) {
      const r = await s.adminCall('GET', `/v1/admin/customers?${q}`);
      assert.equal(r.status, 400, q);
      assert.equal(r.json.error.type, 'invalid_parameter');
      assert.ok(r.json.error.message.startsWith(`${name}:`), r.json.error.message);
    }
    assert.equal((await s.adminCall('GET', '/v1/admin/customers?q=acme', undefined, null)).status, 401);
  });
});
