// The collections API (superuser only): create with every field type, read, list, update,
// delete, validation errors, scaffolds, import, truncate, view collections, auth collections.

import {
  createBase,
  createNumbered,
  createTarget,
  createUser,
  everyField,
  sortBy,
  withDates,
} from '../lib/fixtures.mjs';

export async function createEveryFieldType(t) {
  const target = await createTarget(t, 0);
  await t.sdk('create', () =>
    t.su.collections.create({
      name: t.coll('every'),
      type: 'base',
      listRule: '',
      viewRule: 'id != ""',
      createRule: null,
      fields: withDates(everyField(target.collection.id)),
      indexes: [`CREATE INDEX idx_every_views_${t.tag} ON ${t.coll('every')} (views)`],
    }),
  );
  await t.sdk('get by name', () => t.su.collections.getOne(t.coll('every')));
}

export async function createMinimalFieldDefaults(t) {
  // Every field with nothing but a name and a type: the response shows each type's defaults.
  const fields = everyField('_pb_users_auth_').map((f) => ({
    name: f.name,
    type: f.type,
    ...(f.type === 'select' ? { values: ['a', 'b'] } : {}),
    ...(f.type === 'relation' ? { collectionId: '_pb_users_auth_' } : {}),
  }));
  fields.push({ name: 'stamp', type: 'autodate', onCreate: true });
  await t.sdk('create', () =>
    t.su.collections.create({ name: t.coll('minimal'), type: 'base', fields }),
  );
  await t.sdk('autodate without onCreate/onUpdate', () =>
    t.su.collections.create({
      name: t.coll('nostamp'),
      type: 'base',
      fields: [{ name: 'stamp', type: 'autodate' }],
    }),
  );
}

export async function getByIdAndName(t) {
  const c = await createBase(t, 'lookup', [{ name: 'title', type: 'text' }]);
  t.record('id', c.id);
  await t.sdk('by id', () => t.su.collections.getOne(c.id));
  await t.sdk('by upper-case name', () => t.su.collections.getOne(c.name.toUpperCase()));
  await t.sdk('unknown', () => t.su.collections.getOne('nosuch_collection'));
  await t.sdk('system users', () => t.su.collections.getOne('users'));
  await t.sdk('system _superusers', () => t.su.collections.getOne('_superusers'));
}

export async function listCollections(t) {
  await createBase(t, 'listed_a', [{ name: 'title', type: 'text' }]);
  await createBase(t, 'listed_b', [{ name: 'title', type: 'text' }]);
  const res = await t.http('list', 'GET', '/api/collections?perPage=500', { auth: 'su', quiet: true });
  t.record('status', res.status);
  const items = res.body?.items ?? [];
  t.record('envelope keys', Object.keys(res.body ?? {}).sort());
  t.record('page/perPage', { page: res.body?.page, perPage: res.body?.perPage });
  t.record('system collections', items.filter((c) => c.system).map((c) => c.name).sort());
  t.record('mine', sortBy(items.filter((c) => c.name.endsWith(`_${t.tag}`)), 'name'));
  const full = await t.su.collections.getFullList();
  t.record('getFullList includes mine', full.filter((c) => c.name.endsWith(`_${t.tag}`))
    .map((c) => c.name).sort());
}

export async function listCollectionsPaging(t) {
  const res = await t.http('perPage=2', 'GET', '/api/collections?perPage=2&page=1', {
    auth: 'su',
    quiet: true,
  });
  t.record('perPage=2', {
    status: res.status,
    page: res.body?.page,
    perPage: res.body?.perPage,
    items: res.body?.items?.length,
    totalPagesMatch: res.body?.totalPages === Math.ceil(res.body?.totalItems / 2),
  });
  const skip = await t.http('skipTotal', 'GET', '/api/collections?perPage=3&skipTotal=1', {
    auth: 'su',
    quiet: true,
  });
  t.record('skipTotal', {
    status: skip.status,
    totalItems: skip.body?.totalItems,
    totalPages: skip.body?.totalPages,
    items: skip.body?.items?.length,
  });
  const sorted = await t.http('sort=-name', 'GET', '/api/collections?perPage=500&sort=-name', {
    auth: 'su',
    quiet: true,
  });
  const names = (sorted.body?.items ?? []).map((c) => c.name);
  t.record('sorted descending', {
    status: sorted.status,
    ok: names.length > 0 && names.every((n, i) => i === 0 || names[i - 1] >= n),
  });
}

export async function updateCollection(t) {
  const c = await createBase(t, 'upd', [
    { name: 'title', type: 'text' },
    { name: 'views', type: 'number' },
  ]);
  const titleId = c.fields.find((f) => f.name === 'title').id;
  await t.su.collection(c.name).create({ title: 'kept', views: 3 });
  await t.sdk('rename field by id, add field, change rules', () =>
    t.su.collections.update(c.name, {
      listRule: 'views > 1',
      deleteRule: null,
      fields: [
        ...c.fields.filter((f) => f.name !== 'title'),
        { id: titleId, name: 'headline', type: 'text', max: 50 },
        { name: 'extra', type: 'bool' },
      ],
    }),
  );
  await t.sdk('data survived the rename', () =>
    t.su.collection(c.name).getList(1, 10, { fields: 'headline,views,extra' }),
  );
  await t.sdk('rename collection', () =>
    t.su.collections.update(c.name, { name: t.coll('renamed') }),
  );
  await t.sdk('old name gone', () => t.su.collections.getOne(c.name));
  const renamed = await t.su.collections.getOne(t.coll('renamed'));
  await t.sdk('remove a field a rule uses', () =>
    t.su.collections.update(renamed.id, {
      fields: renamed.fields.filter((f) => f.name !== 'views'),
    }),
  );
  await t.sdk('remove a field', () =>
    t.su.collections.update(renamed.id, {
      fields: renamed.fields.filter((f) => f.name !== 'extra'),
    }),
  );
  await t.sdk('data after removal', () =>
    t.su.collection(renamed.name).getList(1, 10, { fields: '*' }),
  );
}

export async function deleteCollection(t) {
  const c = await createBase(t, 'gone', [{ name: 'title', type: 'text' }]);
  await t.su.collection(c.name).create({ title: 'x' });
  await t.http('delete', 'DELETE', `/api/collections/${c.name}`, { auth: 'su' });
  await t.http('get after delete', 'GET', `/api/collections/${c.name}`, { auth: 'su' });
  await t.http('records after delete', 'GET', `/api/collections/${c.name}/records`, { auth: 'su' });
  await t.http('delete again', 'DELETE', `/api/collections/${c.name}`, { auth: 'su' });
  await t.http('delete system collection', 'DELETE', '/api/collections/_superusers', {
    auth: 'su',
  });
}

export async function deleteReferencedCollection(t) {
  const target = await createTarget(t, 0);
  await createBase(t, 'referrer', [
    { name: 'ref', type: 'relation', collectionId: target.collection.id, maxSelect: 1 },
  ]);
  await t.http('delete referenced', 'DELETE', `/api/collections/${target.collection.name}`, {
    auth: 'su',
  });
}

export async function validationDuplicateName(t) {
  await createBase(t, 'dup', [{ name: 'title', type: 'text' }]);
  await t.sdk('same name', () =>
    t.su.collections.create({ name: t.coll('dup'), type: 'base' }),
  );
  await t.sdk('same name other case', () =>
    t.su.collections.create({ name: t.coll('DUP'), type: 'base' }),
  );
  await t.sdk('system name', () => t.su.collections.create({ name: 'users', type: 'base' }));
}

export async function validationBadCollectionName(t) {
  for (const name of ['', 'bad-name', 'has space', `a_via_${t.tag}`, 'x'.repeat(256)]) {
    await t.sdk(`name ${JSON.stringify(name.slice(0, 20))}`, () =>
      t.su.collections.create({ name, type: 'base' }),
    );
  }
  await t.sdk('unknown collection type', () =>
    t.su.collections.create({ name: t.coll('weird'), type: 'weird' }),
  );
}

export async function validationBadFields(t) {
  const cases = {
    'bad field name': [{ name: 'bad name', type: 'text' }],
    'reserved field name': [{ name: 'expand', type: 'text' }],
    'duplicate field name': [
      { name: 'title', type: 'text' },
      { name: 'title', type: 'number' },
    ],
    'unknown field type': [{ name: 'title', type: 'nosuch' }],
    'missing field type': [{ name: 'title' }],
    'select without values': [{ name: 's', type: 'select' }],
    'relation to missing collection': [
      { name: 'r', type: 'relation', collectionId: 'pbc_0000000000', maxSelect: 1 },
    ],
    'text min above max': [{ name: 'title', type: 'text', min: 10, max: 5 }],
  };
  let i = 0;
  for (const [label, fields] of Object.entries(cases)) {
    i++;
    await t.sdk(label, () =>
      t.su.collections.create({ name: t.coll(`badfields${i}`), type: 'base', fields }),
    );
  }
}

export async function validationBadRuleAndIndex(t) {
  await t.sdk('rule on unknown field', () =>
    t.su.collections.create({
      name: t.coll('badrule'),
      type: 'base',
      fields: [{ name: 'title', type: 'text' }],
      listRule: 'nosuch = 1',
    }),
  );
  await t.sdk('malformed index', () =>
    t.su.collections.create({
      name: t.coll('badindex'),
      type: 'base',
      fields: [{ name: 'title', type: 'text' }],
      indexes: ['CREATE INDEX oops'],
    }),
  );
}

export async function scaffolds(t) {
  await t.sdk('getScaffolds', () => t.su.collections.getScaffolds());
}

export async function importCollections(t) {
  const a = t.coll('imp_a');
  const b = t.coll('imp_b');
  await t.http('import', 'PUT', '/api/collections/import', {
    auth: 'su',
    json: {
      deleteMissing: false,
      collections: [
        { name: a, type: 'base', fields: [{ name: 'title', type: 'text', required: true }] },
        {
          name: b,
          type: 'base',
          listRule: '',
          fields: [{ name: 'score', type: 'number' }, { name: 'flag', type: 'bool' }],
        },
      ],
    },
  });
  await t.sdk('imported a', () => t.su.collections.getOne(a));
  await t.sdk('imported b', () => t.su.collections.getOne(b));
  const got = await t.su.collections.getOne(a);
  await t.http('re-import with a changed field', 'PUT', '/api/collections/import', {
    auth: 'su',
    json: {
      collections: [{ ...got, fields: [...got.fields, { name: 'added', type: 'number' }] }],
    },
  });
  await t.sdk('after re-import', () => t.su.collections.getOne(a));
  await t.http('invalid import', 'PUT', '/api/collections/import', {
    auth: 'su',
    json: { collections: [{ name: 'bad-name', type: 'base' }] },
  });
  await t.http('empty import', 'PUT', '/api/collections/import', {
    auth: 'su',
    json: { collections: [] },
  });
}

// Definitions that leave out the system fields: a second import of the same definitions
// keeps the listed fields first and puts the stored system fields after them.
export async function reimportWithoutSystemFields(t) {
  const base = t.coll('reimp_base');
  const users = t.coll('reimp_auth');
  const definitions = {
    collections: [
      { name: base, type: 'base', fields: [{ name: 'title', type: 'text', required: true }] },
      {
        name: users,
        type: 'auth',
        fields: [
          { name: 'email', type: 'email', system: true, required: true },
          { name: 'nick', type: 'text' },
        ],
      },
    ],
  };
  for (const round of ['first', 'second', 'third']) {
    await t.http(`${round} import`, 'PUT', '/api/collections/import', {
      auth: 'su',
      json: definitions,
    });
    await t.sdk(`${round} base`, () => t.su.collections.getOne(base));
    await t.sdk(`${round} auth`, () => t.su.collections.getOne(users));
  }
}

// Without deleteMissing, fields an item leaves out are kept, after the listed ones (not tried
// with deleteMissing here: it would drop every other scenario's collections).
export async function importKeepsUnlistedFields(t) {
  const name = t.coll('imp_keep');
  await t.sdk('create', () =>
    t.su.collections.create({
      name,
      type: 'base',
      fields: [
        { name: 'a', type: 'text' },
        { name: 'b', type: 'number' },
        { name: 'c', type: 'bool' },
      ],
    }),
  );
  await t.http('import without b and c', 'PUT', '/api/collections/import', {
    auth: 'su',
    json: {
      collections: [{ name, type: 'base', fields: [{ name: 'z', type: 'text' }, { name: 'a', type: 'text' }] }],
    },
  });
  await t.sdk('kept', () => t.su.collections.getOne(name).then((c) => c.fields.map((f) => [f.name, f.type])));
  await t.http('second import, listing only a', 'PUT', '/api/collections/import', {
    auth: 'su',
    json: {
      collections: [{ name, type: 'base', fields: [{ name: 'a', type: 'text' }] }],
      deleteMissing: false,
    },
  });
  await t.sdk('still kept', () => t.su.collections.getOne(name).then((c) => c.fields.map((f) => f.name)));
}

// The dashboard-style create: the auth scaffold (whose indexes name no table) saved under a
// new name; the table is filled in. Index names carry a random suffix on both servers.
export async function createAuthFromScaffold(t) {
  const scaffold = (await t.su.collections.getScaffolds()).auth;
  const name = t.coll('scaf_auth');
  const { id: _id, ...body } = scaffold;
  await t.sdk('create from the scaffold', () =>
    t.su.collections.create({ ...body, name }).then((c) => ({
      type: c.type,
      indexes: c.indexes.map((sql) => sql.replace(/`idx_[A-Za-z0-9_]+`/, '`idx`')),
      fields: c.fields.map((f) => f.name),
    })),
  );
}

export async function truncate(t) {
  const { collection } = await createNumbered(t, 5);
  await t.http('truncate', 'DELETE', `/api/collections/${collection.name}/truncate`, { auth: 'su' });
  await t.sdk('list after truncate', () => t.su.collection(collection.name).getList());
  await t.sdk('collection still there', () =>
    t.su.collections.getOne(collection.name).then((c) => c.name),
  );
  await t.http('truncate unknown', 'DELETE', '/api/collections/nosuch_coll/truncate', {
    auth: 'su',
  });
}

export async function viewCollection(t) {
  const { collection } = await createNumbered(t, 6);
  const viewName = t.coll('stats');
  await t.sdk('create view', () =>
    t.su.collections.create({
      name: viewName,
      type: 'view',
      listRule: '',
      viewRule: '',
      viewQuery:
        `SELECT grp AS id, grp, COUNT(*) AS total, MAX(n) AS top, MAX(title) AS last ` +
        `FROM ${collection.name} GROUP BY grp`,
    }),
  );
  await t.sdk('list view', () => t.client().collection(viewName).getList(1, 10, { sort: 'grp' }));
  await t.sdk('view one', () => t.client().collection(viewName).getOne('y'));
  await t.sdk('create on view', () => t.su.collection(viewName).create({ grp: 'q' }));
  await t.sdk('view query without id', () =>
    t.su.collections.create({
      name: t.coll('noid'),
      type: 'view',
      viewQuery: `SELECT title FROM ${collection.name}`,
    }),
  );
  await t.sdk('view query not a select', () =>
    t.su.collections.create({
      name: t.coll('notselect'),
      type: 'view',
      viewQuery: `DELETE FROM ${collection.name}`,
    }),
  );
}

// A view's result columns are read as PocketBase reads them: an expression with spaces needs
// parentheses, and each column name must be a valid field name.
export async function viewColumnsReadLikePocketBase(t) {
  const { collection } = await createNumbered(t, 3);
  const from = `FROM ${collection.name}`;
  const columns = [
    ['spaced expression', 'n + 1 AS s'],
    ['spaced expression in parentheses', '(n + 1) AS s'],
    ['unspaced expression', 'n+1 AS s'],
    ['alias without AS', 'n+1 s'],
    ['a word where AS goes', 'n+1 foo s'],
    ['CASE without parentheses', 'CASE WHEN n > 1 THEN 1 ELSE 0 END AS flag'],
    ['COLLATE', 'title COLLATE NOCASE AS s'],
    ['across lines and tabs', 'n+1\n\tAS\ts'],
    ['comments', 'n /* why */ AS s -- note\n'],
    ['a name with a space', 'title AS "my col"'],
    ['a name with _via_', 'title AS a_via_b'],
  ];
  for (const [i, [label, column]] of columns.entries()) {
    await t.sdk(label, () =>
      t.su.collections.create({
        name: t.coll(`cols${i}`),
        type: 'view',
        viewQuery: `SELECT id, ${column} ${from}`,
      }),
    );
  }
}

export async function createAuthCollection(t) {
  await t.sdk('create auth collection', () =>
    t.su.collections.create({
      name: t.coll('members'),
      type: 'auth',
      fields: [{ name: 'nickname', type: 'text' }],
    }),
  );
}

export async function collectionsNeedSuperuser(t) {
  await t.http('guest list', 'GET', '/api/collections');
  await t.http('guest create', 'POST', '/api/collections', { json: { name: 'x', type: 'base' } });
  const user = await createUser(t, 'plain');
  await t.http('user list', 'GET', '/api/collections', { auth: user.client.authStore.token });
  await t.http('user get users', 'GET', '/api/collections/users', {
    auth: user.client.authStore.token,
  });
  await t.http('guest scaffolds', 'GET', '/api/collections/meta/scaffolds');
}

// The system collections are created a few milliseconds apart: sorting by `created` lists
// them in creation order, in both directions.
export async function systemCollectionsSortByCreation(t) {
  for (const sort of ['-created', 'created', '-updated']) {
    await t.sdk(`getFullList sort=${sort}`, () =>
      t.su.collections.getFullList({ sort, fields: 'name', filter: 'system = true' }),
    );
  }
}
