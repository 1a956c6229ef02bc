// The filter language over seeded data: operators, multi-value semantics, modifiers, json
// paths, relations (forward, multi-hop, back-relations), @collection joins, macros,
// functions, sort through relations, and what a non-superuser may not filter by. Each filter
// records the titles it selects (sorted by title), so both servers must agree on every row.

import { withDates } from '../lib/fixtures.mjs';

/**
 * PocketBase ships with rate limiting off; Plinth turns `*:auth` on by default, which the many
 * logins of these scenarios would trip. Setup, not a check: both servers end up with
 * PocketBase's default.
 */
async function defaultRateLimits(t) {
  await t.su.settings.update({ rateLimits: { enabled: false } });
}


/** teams, posts (every kind of field) and comments, with users as authors; all rules open. */
async function seed(t) {
  await defaultRateLimits(t);
  const open = { listRule: '', viewRule: '', createRule: '', updateRule: '', deleteRule: '' };
  const mkUser = async (local, name) =>
    t.su.collection('users').create({
      email: t.email(local),
      password: 'user-pass-123',
      passwordConfirm: 'user-pass-123',
      name,
      emailVisibility: local === 'alice',
    });
  const alice = await mkUser('alice', 'Alice');
  const bob = await mkUser('bob', 'Bob');
  const carol = await mkUser('carol', 'carol');

  const teams = await t.su.collections.create({
    name: t.coll('teams'),
    type: 'base',
    ...open,
    fields: withDates([
      { name: 'name', type: 'text' },
      { name: 'lead', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 1 },
    ]),
  });
  const red = await t.su.collection(teams.name).create({ name: 'Red Team', lead: bob.id });
  const blue = await t.su.collection(teams.name).create({ name: 'blue team', lead: alice.id });

  const posts = await t.su.collections.create({
    name: t.coll('posts'),
    type: 'base',
    ...open,
    fields: withDates([
      { name: 'title', type: 'text' },
      { name: 'n', type: 'number' },
      { name: 'published', type: 'bool' },
      { name: 'tags', type: 'select', values: ['a', 'b', 'c'], maxSelect: 3 },
      { name: 'meta', type: 'json' },
      { name: 'due', type: 'date' },
      { name: 'author', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 1 },
      { name: 'team', type: 'relation', collectionId: teams.id, maxSelect: 1 },
      { name: 'likes', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 5 },
      { name: 'loc', type: 'geoPoint' },
    ]),
  });
  const rows = [
    { title: 'post 01', n: 1, published: true, tags: ['a'], meta: { k: 1, list: ['x'] }, due: '2024-03-01 10:00:00.000Z', author: alice.id, team: red.id, likes: [alice.id, bob.id], loc: { lon: 23.32, lat: 42.69 } },
    { title: 'post 02', n: 2, published: false, tags: ['a', 'b'], meta: { k: 2 }, due: '2025-06-15 00:00:00.000Z', author: bob.id, team: blue.id, likes: [alice.id], loc: { lon: 2.35, lat: 48.85 } },
    { title: 'Post 03', n: 3, published: true, tags: ['b', 'c'], meta: { k: 'text' }, due: '', author: carol.id, team: red.id, likes: [] },
    { title: 'post 10', n: 10, published: false, tags: [], meta: null, due: '2030-01-01 00:00:00.000Z', author: '', team: '', likes: [bob.id, carol.id] },
    { title: "it's", n: -5.5, published: true, tags: ['a', 'b', 'c'], meta: { list: ['y', 'x'] }, due: '2024-12-31 23:59:59.000Z', author: alice.id, team: blue.id, likes: [carol.id] },
    { title: 'post_%', n: 0, published: false, tags: ['c'], meta: { k: 1.5 }, author: bob.id, likes: [alice.id, bob.id, carol.id] },
  ];
  const created = [];
  for (const row of rows) created.push(await t.su.collection(posts.name).create(row));

  const comments = await t.su.collections.create({
    name: t.coll('comments'),
    type: 'base',
    ...open,
    fields: withDates([
      { name: 'text', type: 'text' },
      { name: 'post', type: 'relation', collectionId: posts.id, maxSelect: 1 },
    ]),
  });
  const comment = (text, i) => t.su.collection(comments.name).create({ text, post: created[i].id });
  await comment('great post', 0);
  await comment('not so great', 0);
  await comment('meh', 1);
  await comment('great', 2);
  await comment('great', 2);
  return { alice, bob, carol, teams, posts, comments, created };
}

const titles = (r) => r.map((i) => i.title);

/** Runs every filter as `client` and records the `key` of the rows it selects. */
async function runFilters(t, client, collection, filters, key = 'title') {
  for (const filter of filters) {
    await t.sdk(`filter ${filter}`, () => client.collection(collection).getFullList({ filter, sort: key }), (r) => r.map((i) => i[key]));
  }
}

export async function operatorsAndLiterals(t) {
  const { posts } = await seed(t);
  await runFilters(t, t.su, posts.name, [
    'n > 3',
    'n >= 2 && n < 10',
    'n = 1 || n = 10',
    'n > 2 && (n < 5 || tags ?= "a")',
    '(n > 0 && n < 3) || title = "post 10"',
    'n < 0',
    "n = '3'",
    'n ~ 1',
    'n != 10 && n != -5.5',
    "title = 'post 01'",
    "title = 'POST 01'",
    "title:lower = 'post 03'",
    "title ~ 'post'",
    "title !~ 'post'",
    "title ~ 'post_%'",
    "title ~ 'st 0%'",
    "title = 'it\\'s'",
    'title != ""',
    'title = null',
    'published = true',
    'published = false',
    'published != true',
    'n > 3 // a comment at the end',
    'n > 3 && n > 3 && n > 3',
  ]);
}

export async function multiValuesAndModifiers(t) {
  const { posts } = await seed(t);
  await runFilters(t, t.su, posts.name, [
    "tags = 'a'",
    "tags ?= 'a'",
    "tags != 'a'",
    "tags ?!= 'a'",
    "tags ~ 'b'",
    "tags ?~ 'b'",
    'tags:length = 2',
    'tags:length >= 1',
    "tags:each = 'c'",
    "tags:each ~ 'c'",
    "tags = ''",
    "tags = null",
    'likes:length > 1',
  ]);
}

export async function jsonDatesAndFunctions(t) {
  const { posts } = await seed(t);
  await runFilters(t, t.su, posts.name, [
    'meta.k = 1',
    'meta.k > 1',
    "meta.k = 'text'",
    "meta.list.0 = 'x'",
    "meta.list.1 = 'x'",
    'meta.nope = null',
    'meta = null',
    "due > '2025-01-01'",
    "due < '2025-01-01 00:00:00.000Z' && due != ''",
    'due = ""',
    'due < @now',
    'due > @now',
    'created <= @now',
    'created >= @todayStart',
    'created > @yearEnd',
    "strftime('%Y', due) = '2024'",
    "strftime('%m', due) = '06'",
    'geoDistance(loc.lon, loc.lat, 23.32, 42.69) < 100',
    'geoDistance(loc.lon, loc.lat, 2.35, 48.85) < 10',
    '@second >= 0 && @year > 2000',
  ]);
}

export async function relationsAndBackRelations(t) {
  const { posts, comments } = await seed(t);
  await runFilters(t, t.su, posts.name, [
    "author.name = 'Alice'",
    "author.name:lower = 'alice'",
    "author.name != 'Alice'",
    "author = ''",
    "author != ''",
    "team.name ~ 'team'",
    "team.name:lower ~ 'red'",
    "team.lead.name = 'Bob'",
    "team.lead.name != 'Bob'",
    "likes.name ?= 'Alice'",
    "likes.name = 'Alice'",
    "likes.name ?!= 'Alice'",
    "likes.name != 'Alice'",
    `${comments.name}_via_post.text ?~ 'great'`,
    `${comments.name}_via_post.text ~ 'great'`,
    `${comments.name}_via_post.text ?= 'meh'`,
    `${comments.name}_via_post.text = 'great'`,
    `${comments.name}_via_post.id != ''`,
    `@collection.${comments.name}.post ?= id && @collection.${comments.name}.text = 'meh'`,
    `@collection.${comments.name}.post = id && @collection.${comments.name}.text = 'meh'`,
    `@collection.${comments.name}.post ?= id && @collection.${comments.name}.text ?= 'meh'`,
    `@collection.${comments.name}.post ?= id`,
    `@collection.${comments.name}.text ?= 'meh'`,
    `@collection.${comments.name}.text ?= title`,
    `@collection.${comments.name}:c.post ?= id && @collection.${comments.name}:c.text ~ 'so'`,
    "@request.auth.id != ''",
  ]);
  await runFilters(t, t.su, comments.name, [
    "post.title = 'post 01'",
    "post.author.name = 'Alice'",
    "post.team.lead.name = 'Alice'",
    "post.tags ?= 'c'",
    "post.likes.name ?= 'carol'",
    `@collection.${posts.name}.id ?= post && @collection.${posts.name}.n = 3`,
  ], 'text');
}

export async function sortThroughRelations(t) {
  const { posts } = await seed(t);
  for (const sort of ['author.name,title', '-team.name,title', 'team.name:lower,title', '-meta.k,title', 'title:lower', '-n', 'team.lead.name,-title', 'published,-n']) {
    await t.sdk(`sort ${sort}`, () => t.su.collection(posts.name).getFullList({ sort }), titles);
  }
  for (const sort of ['nope', 'author.nope', '-', '@random,@rowid', 'title,,n']) {
    await t.http(`sort ${sort}`, 'GET', `/api/collections/${posts.name}/records?fields=title&sort=${encodeURIComponent(sort)}`, { auth: 'su', shape: (b) => (b?.items ? b.items.length : b) });
  }
}

export async function guestFilterRefusalsAndEmail(t) {
  const { posts } = await seed(t);
  const base = `/api/collections/${posts.name}/records?fields=title&sort=title&filter=`;
  for (const filter of [
    "@request.auth.id = ''",
    "@collection.users.id != ''",
    "'@request.auth.id' = ''",
    'nope = 1',
    'n >',
    '(n > 1',
    'n > 1)',
    'n = 1 &&',
    "title = 'unterminated",
    'author.password = ""',
    'author.tokenKey != ""',
    "author.email ~ 'alice'",
    "author.email ~ 'bob'",
    "author.email != ''",
    "likes.email ?~ 'example.com'",
    'n > 1 && '.repeat(30) + 'n > 0',
  ]) {
    await t.http(`guest filter ${filter}`, 'GET', base + encodeURIComponent(filter));
  }
  // Users' list rule (`id = @request.auth.id`) hides other users from a relation filter.
  const alice = t.client();
  await alice.collection('users').authWithPassword(t.email('alice'), 'user-pass-123');
  await runFilters(t, alice, posts.name, ["author.name = 'Bob'", "author.name = 'Alice'", "likes.name ?= 'Bob'"]);
  for (const filter of ["@request.auth.id != ''", "sort=@collection.users.id"]) {
    await t.http(`user ${filter}`, 'GET', base + encodeURIComponent(filter), { auth: alice.authStore.token });
  }
}

export async function injectionAttemptsAreInert(t) {
  const { posts } = await seed(t);
  const list = `/api/collections/${posts.name}/records`;
  const shape = (b) => (b?.items ? b.items.map((i) => i.title ?? i) : b);
  for (const [label, query] of [
    ['quote in value', "filter=" + encodeURIComponent("title = \"x' OR 1=1 --\"")],
    ['quote in value 2', "filter=" + encodeURIComponent("title = 'x\" OR \"1\"=\"1'")],
    ['semicolon', "filter=" + encodeURIComponent("title = 'a'; DROP TABLE users; --")],
    ['identifier injection', "filter=" + encodeURIComponent('"title" = 1 OR 1 = 1')],
    ['sort injection', 'sort=' + encodeURIComponent('title; DROP TABLE users')],
    ['sort parens', 'sort=' + encodeURIComponent('(SELECT 1)')],
    ['expand injection', 'expand=' + encodeURIComponent("author) OR 1=1 --")],
    ['like wildcard literal', "filter=" + encodeURIComponent("title ~ '_%'")],
    ['comment trick', "filter=" + encodeURIComponent("title = 'a' // ' OR 1=1")],
  ]) {
    await t.http(label, 'GET', `${list}?sort=title&${query}`, { auth: 'su', shape });
  }
  await t.sdk('posts intact', () => t.su.collection(posts.name).getFullList({ sort: 'title' }), titles);
}

export async function fieldsInjectionIsRefused(t) {
  const { posts } = await seed(t);
  const list = `/api/collections/${posts.name}/records`;
  await t.http('fields injection', 'GET', `${list}?sort=title&fields=${encodeURIComponent('title,"); DROP TABLE users; --')}`, { auth: 'su' });
  await t.http('fields paren', 'GET', `${list}?sort=title&fields=${encodeURIComponent('title)')}`, { auth: 'su' });
}

/** A non-superuser filtering by an auth record's email only matches visible emails (and
 * its own), also through a relation. */
export async function emailFilterRespectsVisibility(t) {
  await defaultRateLimits(t);
  const people = await t.su.collections.create({
    name: t.coll('people'),
    type: 'auth',
    listRule: '',
    viewRule: '',
    fields: [{ name: 'title', type: 'text' }],
    passwordAuth: { enabled: true, identityFields: ['email'] },
  });
  const pass = 'people-pass-123';
  const mk = (local, visible) =>
    t.su.collection(people.name).create({ email: t.email(local), password: pass, passwordConfirm: pass, emailVisibility: visible, title: local });
  const shown = await mk('shown', true);
  await mk('hidden', false);
  await mk('me', false);
  const notes = await t.su.collections.create({
    name: t.coll('pnotes'),
    type: 'base',
    listRule: '',
    fields: [{ name: 'title', type: 'text' }, { name: 'who', type: 'relation', collectionId: people.id, maxSelect: 1 }],
  });
  for (const [title, who] of [['n shown', shown.id]]) await t.su.collection(notes.name).create({ title, who });
  const list = await t.su.collection(people.name).getFullList({ sort: 'title' });
  for (const p of list) if (p.title !== 'shown') await t.su.collection(notes.name).create({ title: `n ${p.title}`, who: p.id });
  const me = t.client();
  await me.collection(people.name).authWithPassword(t.email('me'), pass);
  for (const [who, client] of [['guest', t.client()], ['me', me], ['su', t.su]]) {
    for (const filter of ["email ~ 'example.com'", `email = '${t.email('hidden')}'`, `email = '${t.email('me')}'`, "email != ''", "email = ''"]) {
      await t.sdk(`${who} people ${filter}`, () => client.collection(people.name).getFullList({ filter, sort: 'title' }), (r) => r.map((i) => i.title));
    }
    for (const filter of ["who.email ~ 'example.com'", `who.email = '${t.email('me')}'`]) {
      await t.sdk(`${who} notes ${filter}`, () => client.collection(notes.name).getFullList({ filter, sort: 'title' }), (r) => r.map((i) => i.title));
    }
  }
}
