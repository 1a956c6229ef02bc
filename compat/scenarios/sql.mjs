// The SQL console, `pb.sql.run` (`POST /api/sql`, PocketBase 0.39+): shapes of queries and
// executions, values as text, the 1,000-row and 5,000-byte bounds, errors. Every scenario works
// on tables of its own (`t.coll`), never on the shared collections.

import { createBase, createUser } from '../lib/fixtures.mjs';

// `execTime` is a measured duration: only its type is compared.
const timed = (r) => ({ ...r, execTime: typeof r.execTime });

export async function queryShapes(t) {
  await t.sdk('literals', () =>
    t.su.sql.run("select 1 as a, 2.5 as b, null as c, 'x' as d, 1e21 as e, 0.00001 as f, " +
      "1234567.0 as g, x'c3a9' as h, -0.0 as i"), timed);
  await t.sdk('values form', () => t.su.sql.run('values (1, 2), (3, 4)'), timed);
  await t.sdk('comments only', () => t.su.sql.run('-- nothing to run'), timed);
}

export async function executionsAndQueries(t) {
  const table = t.coll('sqlt');
  await t.sdk('create and insert', () =>
    t.su.sql.run(`create table ${table} (id text primary key, n int); ` +
      `insert into ${table} values ('a', 1), ('b', 2)`), timed);
  await t.sdk('update returning (an execution)', () =>
    t.su.sql.run(`update ${table} set n = n + 1 returning *`), timed);
  await t.sdk('update returning behind a comment (a query)', () =>
    t.su.sql.run(`/* q */ update ${table} set n = n + 1 returning id, n`), timed);
  await t.sdk('the last statement answers', () =>
    t.su.sql.run(`select 5; select id, n from ${table} order by id`), timed);
  await t.sdk('two updates count the last', () =>
    t.su.sql.run(`update ${table} set n = 0; update ${table} set n = 7 where id = 'a'`), timed);
  await t.sdk('declared types', () => t.su.sql.run(`pragma table_info(${table})`), timed);
  await t.sdk('a record table can be read', async () => {
    const c = await createBase(t, 'sqlrec', [{ name: 'title', type: 'text' }]);
    await t.su.collection(c.name).create({ title: 'hello' });
    return t.su.sql.run(`select title from ${c.name}`);
  }, timed);
}

export async function rowAndLengthBounds(t) {
  for (const n of [1000, 1001]) {
    await t.sdk(`${n} rows asked`, () =>
      t.su.sql.run(`with recursive c(x) as (select 1 union all select x+1 from c where x<${n}) select x from c`),
      (r) => ({ rows: r.rows.length, last: r.rows[r.rows.length - 1] }));
  }
  // 5,000 bytes pass, 5,001 do not (a two-byte character counts two).
  const atBound = `select '${'é'.repeat(2495)}'`;
  await t.sdk('4999 bytes', () => t.su.sql.run(atBound), (r) => r.rows[0][0].length);
  await t.sdk('5000 bytes', () => t.su.sql.run(`${atBound} `), (r) => r.rows.length);
  await t.sdk('5001 bytes', () => t.su.sql.run(`select '${'é'.repeat(2496)}'`));
}

export async function errors(t) {
  const json = { 'Content-Type': 'application/json' };
  await t.http('guest', 'POST', '/api/sql', { json: { query: 'select 1' } });
  const { client } = await createUser(t, 'sqluser');
  await t.http('ordinary user', 'POST', '/api/sql', {
    json: { query: 'select 1' }, auth: client.authStore.token });
  await t.http('no body', 'POST', '/api/sql', { auth: 'su' });
  await t.http('empty query', 'POST', '/api/sql', { json: { query: '' }, auth: 'su' });
  await t.http('null query', 'POST', '/api/sql', { json: { query: null }, auth: 'su' });
  await t.http('number query', 'POST', '/api/sql', { json: { query: 1 }, auth: 'su' });
  await t.http('key in another case', 'POST', '/api/sql', {
    json: { QUERY: 'select 7' }, auth: 'su', shape: timed });
  await t.http('blank query', 'POST', '/api/sql', { json: { query: '   ' }, auth: 'su' });
  await t.http('broken json', 'POST', '/api/sql', { body: '{"query":', headers: json, auth: 'su' });
  await t.http('syntax error', 'POST', '/api/sql', { json: { query: 'selec 1' }, auth: 'su' });
  await t.http('no such table', 'POST', '/api/sql', { json: { query: 'select * from nope_nope' }, auth: 'su' });
  const table = t.coll('sqlu');
  await t.http('unique violation rolls back', 'POST', '/api/sql', {
    json: { query: `create table ${table} (id text primary key); insert into ${table} values ('a'); insert into ${table} values ('a')` },
    auth: 'su',
  });
  await t.http('nothing of it stayed', 'POST', '/api/sql', {
    json: { query: `select count(*) from sqlite_schema where name = '${table}'` }, auth: 'su', shape: timed });
  await t.http('fields', 'POST', '/api/sql?fields=rows', { json: { query: 'select 3' }, auth: 'su' });
}

// KD-10: Plinth refuses statements that would change a collection's table (the server would
// otherwise hold a stale schema); PocketBase runs them.
export async function collectionTableChangeRefused(t) {
  const c = await createBase(t, 'sqlddl', [{ name: 'title', type: 'text' }]);
  await t.http('alter a collection table', 'POST', '/api/sql', {
    json: { query: `alter table ${c.name} add column sneaky text` }, auth: 'su', shape: timed });
  await t.sdk('the collection still lists', () => t.su.collection(c.name).getList(1, 1),
    (r) => r.totalItems);
}
collectionTableChangeRefused.known = {
  id: 'KD-10',
  expect(plinth) {
    const refused = plinth['alter a collection table'];
    if (refused.status !== 400 || !String(refused.body?.message).startsWith('Failed to execute query. Raw error:\n')) {
      throw new Error(`expected a 400 refusal, got ${JSON.stringify(refused)}`);
    }
    if (plinth['the collection still lists']?.ok !== true) throw new Error('the collection broke');
  },
};
