// API rules: null (superusers only), "" (everyone), and expression rules as an actors ×
// actions × rule-kinds matrix with PocketBase's failure semantics (list filtered, view/update/
// delete 404, create 400, null 403), create/update rules reading `@request.body`, manageRule
// on auth collections, and rule validation on collection save.

import { createNumbered, createUser, withDates } from '../lib/fixtures.mjs';

/**
 * PocketBase ships with rate limiting off; Plinth turns `*:auth` on by default, which the many
 * logins of these scenarios would trip. Setup, not a check: both servers end up with
 * PocketBase's default.
 */
async function defaultRateLimits(t) {
  await t.su.settings.update({ rateLimits: { enabled: false } });
}


const NULL_RULES = {
  listRule: null,
  viewRule: null,
  createRule: null,
  updateRule: null,
  deleteRule: null,
};

export async function nullRulesForbidGuests(t) {
  const { collection, records } = await createNumbered(t, 2, NULL_RULES);
  const base = `/api/collections/${collection.name}/records`;
  const id = records[0].id;
  await t.http('guest list', 'GET', base);
  await t.http('guest view', 'GET', `${base}/${id}`);
  await t.http('guest create', 'POST', base, { json: { title: 'x' } });
  await t.http('guest update', 'PATCH', `${base}/${id}`, { json: { title: 'x' } });
  await t.http('guest delete', 'DELETE', `${base}/${id}`);
  await t.http('guest view unknown id', 'GET', `${base}/nosuchrecord123`);
  await t.http('superuser list', 'GET', `${base}?fields=title`, { auth: 'su' });
}

export async function nullRulesForbidUsers(t) {
  await defaultRateLimits(t);
  const { collection, records } = await createNumbered(t, 2, NULL_RULES);
  const user = await createUser(t, 'ruled');
  const token = user.client.authStore.token;
  const base = `/api/collections/${collection.name}/records`;
  await t.http('user list', 'GET', base, { auth: token });
  await t.http('user view', 'GET', `${base}/${records[0].id}`, { auth: token });
  await t.http('user create', 'POST', base, { auth: token, json: { title: 'x' } });
  await t.sdk('sdk user delete', () => user.client.collection(collection.name).delete(records[0].id));
}

export async function emptyRulesAllowEveryone(t) {
  const { collection } = await createNumbered(t, 2);
  const pb = t.client();
  const col = () => pb.collection(collection.name);
  await t.sdk('guest list', () => col().getList(1, 10, { fields: 'title,n' }));
  const rec = await t.sdk('guest create', () => col().create({ title: 'by guest', n: 1 }));
  await t.sdk('guest view', () => col().getOne(rec?.id));
  await t.sdk('guest update', () => col().update(rec?.id, { title: 'edited by guest' }));
  await t.sdk('guest delete', () => col().delete(rec?.id));
  await t.sdk('guest view deleted', () => col().getOne(rec?.id));
}

export async function mixedRules(t) {
  const { collection, records } = await createNumbered(t, 2, {
    listRule: '',
    viewRule: null,
    createRule: null,
    updateRule: '',
    deleteRule: null,
  });
  const base = `/api/collections/${collection.name}/records`;
  const id = records[1].id;
  await t.http('list open', 'GET', `${base}?fields=title`);
  await t.http('view locked', 'GET', `${base}/${id}`);
  await t.http('create locked', 'POST', base, { json: { title: 'x' } });
  await t.http('update open', 'PATCH', `${base}/${id}`, { json: { title: 'changed' } });
  await t.http('delete locked', 'DELETE', `${base}/${id}`);
}

/** One rule text per kind; each collection of the matrix uses it for all five rules. */
const RULE_KINDS = {
  owner: 'owner = @request.auth.id',
  authed: "@request.auth.id != ''",
  field: 'public = true',
  relation: "owner.name = 'Alice'",
  authField: "@request.auth.name = 'Alice'",
  body: "@request.body.title != 'forbidden' && @request.auth.id != ''",
  bodyIsset: '@request.body.title:isset = true',
  method: "@request.method = 'GET' || @request.method = 'POST'",
  header: "@request.headers.x_token = 'open'",
  query: "@request.query.key = 'k1'",
  collection: "@collection.users.id ?= owner && @collection.users.name = 'Bob'",
  mixed: "(public = true && @request.auth.id != '') || owner = @request.auth.id",
};

/** Runs every action as every actor on a collection whose rules are all `rule`. */
async function ruleMatrix(t, kind) {
  const rule = RULE_KINDS[kind];
  await defaultRateLimits(t);
  const mkUser = (local, name) =>
    t.su.collection('users').create({
      email: t.email(local),
      password: 'user-pass-123',
      passwordConfirm: 'user-pass-123',
      name,
    });
  const alice = await mkUser('alice', 'Alice');
  const bob = await mkUser('bob', 'Bob');
  const collection = await t.su.collections.create({
    name: t.coll(`m_${kind}`),
    type: 'base',
    listRule: rule,
    viewRule: rule,
    createRule: rule,
    updateRule: rule,
    deleteRule: rule,
    fields: withDates([
      { name: 'title', type: 'text' },
      { name: 'note', type: 'text' },
      { name: 'public', type: 'bool' },
      { name: 'owner', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 1 },
    ]),
  });
  const col = t.su.collection(collection.name);
  const a1 = await col.create({ title: 'a1', public: true, owner: alice.id });
  const b1 = await col.create({ title: 'b1', public: false, owner: bob.id });
  const login = async (local) => {
    const c = t.client();
    await c.collection('users').authWithPassword(t.email(local), 'user-pass-123');
    return c.authStore.token;
  };
  const actors = [
    ['guest', undefined, ''],
    ['alice', await login('alice'), alice.id],
    ['bob', await login('bob'), bob.id],
    ['su', 'su', ''],
  ];
  const base = `/api/collections/${collection.name}/records`;
  const shape = (b) => b?.items?.map((i) => i.title) ?? b?.title ?? b?.message ?? b;
  for (const [who, auth, id] of actors) {
    // Bob sends the header and the query parameter the header/query rules ask for.
    const headers = who === 'bob' ? { 'X-Token': 'open' } : {};
    const q = who === 'bob' ? '?key=k1&' : '?';
    const victim = await col.create({ title: `victim ${who}`, public: true, owner: alice.id });
    const opts = (extra = {}) => ({ auth, headers, shape, ...extra });
    await t.http(`${who} list`, 'GET', `${base}${q}sort=title`, opts());
    await t.http(`${who} view a1`, 'GET', `${base}/${a1.id}${q}`, opts());
    await t.http(`${who} view b1`, 'GET', `${base}/${b1.id}${q}`, opts());
    await t.http(`${who} create own`, 'POST', `${base}${q}`, opts({ json: { title: `new ${who}`, public: true, owner: id } }));
    await t.http(`${who} create forbidden`, 'POST', `${base}${q}`, opts({ json: { title: 'forbidden', public: true, owner: id } }));
    await t.http(`${who} create without title`, 'POST', `${base}${q}`, opts({ json: { note: 'no title', owner: id } }));
    await t.http(`${who} update a1`, 'PATCH', `${base}/${a1.id}${q}`, opts({ json: { note: `by ${who}` } }));
    await t.http(`${who} update b1`, 'PATCH', `${base}/${b1.id}${q}`, opts({ json: { note: `by ${who}`, title: 'b1' } }));
    await t.http(`${who} update a1 forbidden`, 'PATCH', `${base}/${a1.id}${q}`, opts({ json: { title: 'forbidden' } }));
    await t.http(`${who} delete victim`, 'DELETE', `${base}/${victim.id}${q}`, opts());
    await t.http(`${who} delete unknown`, 'DELETE', `${base}/nosuchrecord123${q}`, opts());
  }
  await t.sdk('final state', () => col.getFullList({ sort: 'title' }), (r) => r.map((i) => `${i.title}|${i.note}`));
}

export async function matrixOwner(t) { await ruleMatrix(t, 'owner'); }
export async function matrixAuthed(t) { await ruleMatrix(t, 'authed'); }
export async function matrixField(t) { await ruleMatrix(t, 'field'); }
export async function matrixRelation(t) { await ruleMatrix(t, 'relation'); }
export async function matrixAuthField(t) { await ruleMatrix(t, 'authField'); }
export async function matrixBody(t) { await ruleMatrix(t, 'body'); }
export async function matrixBodyIsset(t) { await ruleMatrix(t, 'bodyIsset'); }
export async function matrixMethod(t) { await ruleMatrix(t, 'method'); }
export async function matrixHeader(t) { await ruleMatrix(t, 'header'); }
export async function matrixQuery(t) { await ruleMatrix(t, 'query'); }
export async function matrixCollection(t) { await ruleMatrix(t, 'collection'); }
export async function matrixMixed(t) { await ruleMatrix(t, 'mixed'); }

/** Create rules see the would-be record before validation: a refused create never learns
 * about invalid values, an allowed one gets its field errors. */
export async function createRuleBeforeValidation(t) {
  const collection = await t.su.collections.create({
    name: t.coll('strict'),
    type: 'base',
    listRule: '',
    viewRule: '',
    createRule: "title != 'no' && n > 0",
    updateRule: "@request.body.n:isset = false || @request.body.n < 100",
    deleteRule: null,
    fields: withDates([
      { name: 'title', type: 'text', required: true, max: 5 },
      { name: 'n', type: 'number', max: 50 },
    ]),
  });
  const base = `/api/collections/${collection.name}/records`;
  await t.http('refused and invalid', 'POST', base, { json: { title: 'no', n: 1000 } });
  await t.http('refused', 'POST', base, { json: { title: 'ok', n: 0 } });
  await t.http('allowed but invalid', 'POST', base, { json: { title: 'toolongtitle', n: 1000 } });
  const ok = await t.http('allowed', 'POST', base, { json: { title: 'ok', n: 5 }, shape: (b) => b?.title ?? b });
  const id = ok.body?.id;
  await t.http('modifier in body', 'PATCH', `${base}/${id}`, { json: { 'n+': 200 } });
  await t.http('update refused by body', 'PATCH', `${base}/${id}`, { json: { n: 150 } });
  await t.http('update allowed but invalid', 'PATCH', `${base}/${id}`, { json: { n: 60 } });
  await t.http('update allowed', 'PATCH', `${base}/${id}`, { json: { title: 'fine' }, shape: (b) => b?.title ?? b });
  await t.http('delete null', 'DELETE', `${base}/${id}`);
}

/** manageRule lets a manager change another auth record's email, verified flag and password
 * without the old password. */
export async function manageRuleOnAuthCollection(t) {
  await defaultRateLimits(t);
  const members = await t.su.collections.create({
    name: t.coll('members'),
    type: 'auth',
    listRule: "@request.auth.id != ''",
    viewRule: "@request.auth.id != ''",
    createRule: '',
    updateRule: "@request.auth.id != ''",
    deleteRule: null,
    manageRule: "@request.auth.role = 'admin'",
    fields: [{ name: 'role', type: 'text' }],
    passwordAuth: { enabled: true, identityFields: ['email'] },
  });
  const col = t.su.collection(members.name);
  const pass = 'member-pass-123';
  const mk = (local, role) => col.create({ email: t.email(local), password: pass, passwordConfirm: pass, role });
  await mk('admin', 'admin');
  await mk('plain', 'user');
  const target = await mk('target', 'user');
  const login = async (local) => {
    const c = t.client();
    await c.collection(members.name).authWithPassword(t.email(local), pass);
    return c.authStore.token;
  };
  const admin = await login('admin');
  const plain = await login('plain');
  const base = `/api/collections/${members.name}/records/${target.id}`;
  const shape = (b) => (b?.data !== undefined ? b : { verified: b?.verified, email: b?.email ?? null });
  await t.http('plain sets verified', 'PATCH', base, { auth: plain, json: { verified: true }, shape });
  await t.http('plain sets password', 'PATCH', base, { auth: plain, json: { password: 'new-pass-1234', passwordConfirm: 'new-pass-1234' }, shape });
  await t.http('admin sets verified', 'PATCH', base, { auth: admin, json: { verified: true }, shape });
  await t.http('admin sets password', 'PATCH', base, { auth: admin, json: { password: 'new-pass-1234', passwordConfirm: 'new-pass-1234' }, shape });
  await t.http('admin sets email', 'PATCH', base, { auth: admin, json: { email: t.email('moved') }, shape });
  await t.http('guest creates verified', 'POST', `/api/collections/${members.name}/records`, { json: { email: t.email('new'), password: pass, passwordConfirm: pass, verified: true }, shape });
  await t.http('admin creates verified', 'POST', `/api/collections/${members.name}/records`, { auth: admin, json: { email: t.email('new2'), password: pass, passwordConfirm: pass, verified: true, role: 'user' }, shape });
  const emails = (b) => (b?.items ? b.items.map((i) => `${i.role}:${i.email ?? '-'}`).sort() : b);
  await t.http('admin lists members', 'GET', `/api/collections/${members.name}/records?perPage=50`, { auth: admin, shape: emails });
  await t.http('plain lists members', 'GET', `/api/collections/${members.name}/records?perPage=50`, { auth: plain, shape: emails });
  const moved = t.client();
  await t.sdk('target logs in with new password', async () => {
    await moved.collection(members.name).authWithPassword(t.email('moved'), 'new-pass-1234');
    return moved.authStore.record?.verified;
  });
}

/** Rule text is checked on save, against the schema as it will be. */
export async function invalidRulesAreRefusedOnSave(t) {
  const name = t.coll('badrules');
  const shape = (b) => (b?.data ? b : b?.name ?? b);
  await t.http('create with bad rules', 'POST', '/api/collections', {
    auth: 'su',
    shape,
    json: {
      name,
      type: 'base',
      fields: [{ name: 'title', type: 'text' }],
      listRule: 'nope = 1',
      viewRule: 'title = ',
      createRule: "title = 'a'",
      updateRule: '@request.body.x = 1',
      deleteRule: '(title = 1',
    },
  });
  await t.http('syntax message', 'POST', '/api/collections', {
    auth: 'su',
    shape,
    json: { name, type: 'base', fields: [{ name: 'title', type: 'text' }], listRule: 'title = ' },
  });
  await t.http('rule naming a field of the same save', 'POST', '/api/collections', {
    auth: 'su',
    shape,
    json: { name, type: 'base', fields: [{ name: 'title', type: 'text' }], listRule: "title = 'a' && @request.auth.id != ''" },
  });
  await t.http('update to a bad rule', 'PATCH', `/api/collections/${name}`, { auth: 'su', shape, json: { viewRule: 'nope.x = 1' } });
  await t.http('removing a field a rule uses', 'PATCH', `/api/collections/${name}`, { auth: 'su', shape, json: { fields: [] } });
  await t.http('auth rules', 'POST', '/api/collections', {
    auth: 'su',
    shape,
    json: { name: t.coll('badauth'), type: 'auth', fields: [{ name: 'title', type: 'text' }], authRule: 'nope = 1', manageRule: 'title ~' },
  });
  for (const rule of ['(title = 1', '((title = 1)', 'title = 1)', "title = 'x", 'a && b', ' ', 'title:nope = 1', 'foo(1) = 1', 'nope.x = 1', 'title = 1 // ok']) {
    await t.http(`rule ${JSON.stringify(rule)}`, 'POST', '/api/collections', {
      auth: 'su',
      shape,
      json: { name: t.coll('probe'), type: 'base', fields: [{ name: 'title', type: 'text' }], listRule: rule },
    });
    await t.su.collections.delete(t.coll('probe')).catch(() => {});
  }
}
