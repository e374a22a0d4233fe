// pricing.test.mjs - what the pricing page reads (issue 15): GET /v1/plans says which plan is
// highlighted (portal.highlight, checked against the plans at FILE:LINE), which plans sign-up may
// choose, and each plan's endpoints in words from portal.openapi's summaries or tags (the pattern
// itself when no operation matches, the patterns without a document); the quote of a plan that
// blocks at its allowance says where it stops and prices only what the gateway lets through.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { Stack, withStack } from './harness.mjs';

const root = resolve(new URL('../..', import.meta.url).pathname);
const DEMO_DOC = resolve(root, 'examples/demo-upstream.openapi.yaml');
const LIMITS = 'signup: {plans: [free, starter, pro, nowhere], per_address: 1000/hour, global: 10000/hour, trial_address_days: 0}';
const NOWHERE = `  nowhere:
    price: "5"
    endpoints: ["/v1/text/*", "/v1/none/*"]
    included: {api_calls: 10, images: 2}
    on_quota: block
`;

let s;
before(async () => {
  s = new Stack({ portal: `{openapi: ${JSON.stringify(DEMO_DOC)}, highlight: starter, ${LIMITS}}`, morePlans: NOWHERE });
  await s.start();
});
after(async () => { await s?.stop(); });

const plans = async (stack) => fetch(`${stack.admin}/v1/plans`).then((r) => r.json());

test('GET /v1/plans: the highlighted plan, self-service plans, endpoints in words', async () => {
  const r = await plans(s);
  assert.equal(r.portal.highlight, 'starter');
  const by = Object.fromEntries(r.data.map((p) => [p.id, p]));
  // summaries of the few operations a pattern matches, each once, in the document's order
  assert.deepEqual(by.free.endpoint_names, ['Geocode a place name', 'Echo a word']);
  assert.deepEqual(by.starter.endpoint_names, ['Geocode a place name', 'Echo a word', 'Summarize a text']);
  // a pattern that matches no operation stays as written
  assert.deepEqual(by.nowhere.endpoint_names, ['Summarize a text', '/v1/none/*']);
  assert.equal(by.pro.endpoint_names, null); // every path
  assert.deepEqual(by.free.endpoints, ['/v1/basic/*']); // the patterns stay beside the words
  assert.equal(by.free.self_service, true);
  assert.equal(by.enterprise.self_service, false);
  const one = await fetch(`${s.admin}/v1/plans/starter`).then((x) => x.json());
  assert.deepEqual(one.endpoint_names, by.starter.endpoint_names);
});

test('without portal.openapi or portal.highlight: the patterns, and no highlight', async () => {
  await withStack({}, async (bare) => {
    const r = await plans(bare);
    assert.equal(r.portal.highlight, null);
    const free = r.data.find((p) => p.id === 'free');
    assert.deepEqual(free.endpoint_names, ['/v1/basic/*']);
    assert.ok(r.data.every((p) => p.self_service === true));
  });
});

test('a quote on a plan that blocks: where it stops, priced only up to the allowance', async () => {
  let q = await fetch(`${s.admin}/v1/plans/nowhere/quote?api_calls=50&images=1`).then((x) => x.json());
  assert.deepEqual(q.blocked, [{ metric: 'api_calls', after: 10 }]);
  assert.equal(q.total, '5.00');
  q = await fetch(`${s.admin}/v1/plans/nowhere/quote?api_calls=10&images=3`).then((x) => x.json());
  assert.deepEqual(q.blocked, [{ metric: 'images', after: 2 }]); // the allowance itself still passes
  // a metric named twice is judged on its total
  q = await fetch(`${s.admin}/v1/plans/nowhere/quote?api_calls=6&api_calls=6`).then((x) => x.json());
  assert.deepEqual(q.blocked, [{ metric: 'api_calls', after: 10 }]);
  const big = await fetch(`${s.admin}/v1/plans/nowhere/quote?api_calls=18446744073709551615&api_calls=1`);
  assert.equal(big.status, 400);
  assert.match((await big.json()).error.message, /plan nowhere: the usage of api_calls overflows a 64-bit count/);
  // a plan that bills never blocks
  q = await fetch(`${s.admin}/v1/plans/starter/quote?api_calls=123456`).then((x) => x.json());
  assert.deepEqual(q.blocked, []);
  assert.equal(q.total, '122.46');
});

test('tollgate quote: the same estimate as the calculator, blocked metrics said', async () => {
  const usage = ['--usage', 'api_calls=6', '--usage', 'api_calls=44', '--usage', 'images=1'];
  const json = s.cli(['quote', '-c', s.config, '--plan', 'nowhere', ...usage, '--json']);
  assert.equal(json.status, 0, json.stderr);
  const api = await fetch(`${s.admin}/v1/plans/nowhere/quote?api_calls=50&images=1`).then((x) => x.json());
  assert.deepEqual(JSON.parse(json.stdout), api);
  assert.deepEqual(api.blocked, [{ metric: 'api_calls', after: 10 }]);
  const table = s.cli(['quote', '-c', s.config, '--plan', 'nowhere', ...usage]);
  assert.equal(table.status, 0, table.stderr);
  assert.match(table.stdout, /Blocked after 10 api_calls on this plan/);
  assert.doesNotMatch(table.stdout, /images on this plan/);
});

test('check-config: an unknown portal.highlight at its line', async () => {
  const cfg = readFileSync(s.config, 'utf8').replace('highlight: starter', 'highlight: platinum');
  const file = resolve(s.dir, 'bad-highlight.yaml');
  writeFileSync(file, cfg);
  const line = cfg.split('\n').findIndex((l) => l.includes('highlight: platinum')) + 1;
  const r = s.cli(['check-config', '-c', file]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr + r.stdout, new RegExp(`bad-highlight\\.yaml:${line}: portal\\.highlight: "platinum" is not one of the plans`));
});
