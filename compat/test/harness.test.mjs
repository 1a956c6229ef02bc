// Tests of the harness itself (normalization and comparison), so that a broken normalizer cannot
// make the differential run pass by hiding differences. Run by compat/run.sh before any scenario,
// and by `npm test`.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalize, tokenShape } from '../lib/normalize.mjs';
import { diff } from '../lib/diff.mjs';
import { isHookArea, selected } from '../lib/runner.mjs';

const now = () => new Date().toISOString().replace('T', ' ');

test('random record ids are numbered by first appearance, consistently across steps', () => {
  const a = normalize([
    ['create', { id: 'abc123def456ghi', rel: ['zzz000yyy111xxx'] }],
    ['get', { id: 'abc123def456ghi', topic: 'posts/abc123def456ghi' }],
  ]);
  const b = normalize([
    ['create', { id: 'q1w2e3r4t5y6u7i', rel: ['m9n8b7v6c5x4z3l'] }],
    ['get', { id: 'q1w2e3r4t5y6u7i', topic: 'posts/q1w2e3r4t5y6u7i' }],
  ]);
  assert.deepEqual(a, b);
  assert.equal(a[1][1].topic, 'posts/<id1>');
});

test('a wrong id reference is still a difference', () => {
  const ref = normalize([['x', { id: 'abc123def456ghi', owner: 'abc123def456ghi' }]]);
  const cand = normalize([['x', { id: 'q1w2e3r4t5y6u7i', owner: 'm9n8b7v6c5x4z3l' }]]);
  assert.equal(diff(ref, cand).length, 1);
});

test('timestamps of now are normalized, chosen dates are not', () => {
  const [[, v]] = normalize([['x', { created: now(), due: '2024-05-06 07:08:09.123Z' }]]);
  assert.deepEqual(v, { created: '<now>', due: '2024-05-06 07:08:09.123Z' });
  const d = diff(normalize([['x', { due: '2024-05-06 07:08:09.123Z' }]]),
    normalize([['x', { due: '2024-05-06 07:08:09.000Z' }]]));
  assert.equal(d.length, 1);
});

test('field ids and collection ids are compared strictly', () => {
  const ref = normalize([['x', { id: 'number123456789', c: 'pbc_1125843985' }]]);
  const cand = normalize([['x', { id: 'number987654321', c: 'pbc_1125843986' }]]);
  assert.equal(diff(ref, cand).length, 2);
});

test('file-name suffixes, tokens and scaffold index names are normalized', () => {
  const [[, v]] = normalize([['x', {
    doc: 'red_lqutaxryd3.png',
    batch: 'hello_2rx8leu6uc_b639g953ov.txt',
    token: 'eyJhbGciOiJIUzI1NiJ9.eyJpZCI6IngifQ.sig',
    index: 'CREATE UNIQUE INDEX `idx_email_3b23lad4r9` ON `` (`email`)',
  }]]);
  assert.equal(v.doc, 'red_<rand>.png');
  assert.equal(v.batch, 'hello_<rand>_<rand>.txt');
  assert.equal(v.token, '<jwt>');
  assert.equal(v.index, 'CREATE UNIQUE INDEX `idx_email_<rand>` ON `` (`email`)');
});

test('file names inside headers, URLs and messages, dotted and short stems are normalized', () => {
  const [[, v]] = normalize([['x', {
    header: 'attachment; filename="hello_4xxe2cedwd.txt"',
    url: '/api/files/c/r/red_npvrm9m66m.png?thumb=20x0',
    message: '"fake_nrx60wvnk0.png" mime type must be one of: image/png.',
    dotted: 'x_y_7n2szu1qly.z.txt',
    short: 'ad9delqofx2_bfmcxj46j5.txt',
    plain: 'my_file_name.txt',
  }]]);
  assert.equal(v.header, 'attachment; filename="hello_<rand>.txt"');
  assert.equal(v.url, '/api/files/c/r/red_<rand>.png?thumb=20x0');
  assert.equal(v.message, '"fake_<rand>.png" mime type must be one of: image/png.');
  assert.equal(v.dotted, 'x_y_<rand>.z.txt');
  assert.equal(v.short, 'a<pad>_<rand>.txt');
  assert.equal(v.plain, 'my_file_name.txt');
});

test('object key order does not matter, array order does', () => {
  assert.equal(diff([['x', { a: 1, b: 2 }]], [['x', { b: 2, a: 1 }]]).length, 0);
  assert.equal(diff([['x', [1, 2]]], [['x', [2, 1]]]).length, 2);
});

test('status codes, messages and missing steps are differences', () => {
  const ref = [['a', { status: 400, body: { message: 'x' } }], ['b', 1]];
  assert.deepEqual(diff(ref, [['a', { status: 404, body: { message: 'x' } }], ['b', 1]])
    .map((d) => d.path), ['[a]']);
  assert.deepEqual(diff(ref, [['a', { status: 400, body: { message: 'y' } }]]).map((d) => d.path),
    ['[a].body.message', '[b]']);
});

test('a scenario that threw is reported first', () => {
  const d = diff([['a', 1], ['b', 2]], [['threw', 'TypeError: x']]);
  assert.equal(d[0].path, '[threw]');
});

test('token shape keeps claims and turns exp into a distance from now', () => {
  const payload = { id: 'abc', type: 'auth', exp: Math.floor(Date.now() / 1000) + 86400 };
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const shape = tokenShape(`${enc({ alg: 'HS256', typ: 'JWT' })}.${enc(payload)}.sig`);
  assert.deepEqual(shape.payload, { id: 'abc', type: 'auth', exp: 'now+1440min' });
  assert.equal(shape.header.alg, 'HS256');
});

test('a different status is one line with both outcomes, not one line per body key', () => {
  const d = diff(
    [['create', { status: 200, body: { id: 'x', title: 'a', n: 1 } }]],
    [['create', { status: 400, body: { data: {}, message: 'Failed.', status: 400 } }]],
  );
  assert.equal(d.length, 1);
  assert.equal(d[0].actual, '400 Failed.');
});

test('hook areas are the scenario files named hooks*, and only those', () => {
  assert.equal(isHookArea('hooks-routes'), true);
  assert.equal(isHookArea('hooks'), true);
  assert.equal(isHookArea('records'), false);
  assert.equal(isHookArea('auth-flows'), false);
});

test('the imported area runs only in --imported mode, and only it runs there', () => {
  const imp = { area: 'imported', name: 'recordsFullList' };
  const rec = { area: 'records', name: 'listSort' };
  assert.equal(selected(imp, []), false);
  assert.equal(selected(imp, ['imported']), false);
  assert.equal(selected(rec, []), true);
  assert.equal(selected(imp, [], true), true);
  assert.equal(selected(rec, [], true), false);
  // The first run's --only entries do not narrow the imported run; its own entries do.
  assert.equal(selected(imp, ['records'], true), true);
  assert.equal(selected(imp, ['imported/settingsRead'], true), false);
  assert.equal(selected({ area: 'imported', name: 'settingsRead' }, ['imported/settingsRead'], true), true);
});
