// Probes of the collections API edges the `collections` area leaves out: option bounds (the
// largest safe JSON integer), field id length, the raw wording of rule syntax errors and of
// missing `@collection` / back-relation targets, an index on an unknown column (failures the
// database itself reports are in `index-failures`),
// a PATCH naming another id, the order of `fields` errors when `id` is renamed, import
// failures (index problems first, rule messages), the view wildcard message, and OAuth2
// mappings to fields that do not exist.

import { createBase } from '../lib/fixtures.mjs';

const create = (t, label, body) =>
  t.http(label, 'POST', '/api/collections', { auth: 'su', json: body });

export async function optionUpperBounds(t) {
  const huge = 2 ** 60;
  const cases = {
    'text min': { name: 'a', type: 'text', min: huge },
    'text max': { name: 'a', type: 'text', max: huge },
    'editor maxSize': { name: 'a', type: 'editor', maxSize: huge },
    'json maxSize': { name: 'a', type: 'json', maxSize: huge },
    'file maxSize': { name: 'a', type: 'file', maxSize: huge },
    'file maxSize at the bound': { name: 'a', type: 'file', maxSize: 9007199254740991 },
    'field id over 100 characters': { id: 'x'.repeat(101), name: 'a', type: 'text' },
  };
  let i = 0;
  for (const [label, field] of Object.entries(cases)) {
    i++;
    await create(t, label, { name: t.coll(`bounds${i}`), fields: [field] });
  }
}

export async function ruleSyntaxWording(t) {
  const rules = [
    '(((',
    'title = 1 && (',
    '(title =',
    '((title = 1) && (',
    "(title = 'x",
    'title = "x',
    "title = 'it\"s",
    '@collection.nosuch.id = 1',
    '@collection.nosuch:a.id = 1',
    'nosuch_via_x.id = 1',
  ];
  for (const rule of rules) {
    await create(t, `listRule ${rule}`, {
      name: t.coll('rules'),
      fields: [{ name: 'title', type: 'text' }],
      listRule: rule,
    });
  }
  const target = await createBase(t, 'backrel', [{ name: 'title', type: 'text' }]);
  for (const rule of [`${target.name}_via_nosuch.id = 1`, `${target.name}_via_title.id = 1`]) {
    await create(t, `listRule ${rule.replace(t.tag, '<tag>')}`, {
      name: t.coll('rules2'),
      fields: [{ name: 'title', type: 'text' }],
      listRule: rule,
    });
  }
}

export async function indexUnknownColumn(t) {
  const c = await createBase(t, 'idxnc', [{ name: 'title', type: 'text' }]);
  await t.http('unknown column', 'PATCH', `/api/collections/${c.name}`, {
    auth: 'su',
    json: { indexes: [`CREATE INDEX idx_nc_${t.tag} ON ${c.name} (nosuch)`] },
  });
}

export async function updateWithAnotherId(t) {
  const c = await createBase(t, 'otherid', [{ name: 'title', type: 'text' }]);
  await t.http('unknown id', 'PATCH', `/api/collections/${c.name}`, {
    auth: 'su',
    json: { id: 'nosuchid' },
  });
  await t.http("another collection's id", 'PATCH', `/api/collections/${c.name}`, {
    auth: 'su',
    json: { id: '_pb_users_auth_' },
  });
}

export async function renamedIdField(t) {
  const c = await createBase(t, 'renid', [{ name: 'title', type: 'text' }]);
  const fields = c.fields.map((f) => (f.name === 'id' ? { ...f, name: 'pk' } : f));
  await t.http('rename id', 'PATCH', `/api/collections/${c.name}`, {
    auth: 'su',
    json: { fields },
  });
  const su = await t.su.collections.getOne('_superusers');
  await t.http('rename _superusers id', 'PATCH', '/api/collections/_superusers', {
    auth: 'su',
    json: { fields: su.fields.map((f) => (f.name === 'id' ? { ...f, name: 'pk' } : f)) },
  });
}

export async function importFailures(t) {
  const imp = (label, collections) =>
    t.http(label, 'PUT', '/api/collections/import', { auth: 'su', json: { collections } });
  await imp('index problem after a bad field', [
    { name: t.coll('imp1'), type: 'base', fields: [{ name: '', type: 'text' }] },
    { name: t.coll('imp2'), type: 'base', indexes: ['CREATE INDEX oops'] },
  ]);
  await imp('index on an unknown column beside a bad rule', [
    {
      name: t.coll('imp3'),
      type: 'base',
      listRule: 'x =',
      indexes: [`CREATE INDEX idx_imp3_${t.tag} ON ${t.coll('imp3')} (title)`],
    },
  ]);
  await imp('bad rule', [{ name: t.coll('imp4'), type: 'base', listRule: 'nosuch = 1' }]);
  await imp('bad rule syntax', [{ name: t.coll('imp5'), type: 'base', listRule: "x = 'a" }]);
  await t.sdk('nothing imported', () =>
    t.su.collections.getFullList().then((all) =>
      all.filter((c) => c.name.endsWith(`_${t.tag}`)).map((c) => c.name)),
  );
}

export async function viewWildcard(t) {
  const c = await createBase(t, 'vsrc', [{ name: 'title', type: 'text' }]);
  await create(t, 'select *', { name: t.coll('vstar'), type: 'view', viewQuery: `SELECT * FROM ${c.name}` });
}

export async function oauth2MappingsToMissingFields(t) {
  const name = t.coll('mapped');
  await t.sdk('create', () =>
    t.su.collections.create({
      name,
      type: 'auth',
      fields: [{ name: 'nick', type: 'text' }],
      oauth2: { mappedFields: { name: 'nick', avatarURL: 'nosuch' } },
    }).then((c) => c.oauth2.mappedFields),
  );
  await t.sdk('update', () =>
    t.su.collections.update(name, {
      oauth2: { mappedFields: { username: 'nosuch', id: 'id' } },
    }).then((c) => c.oauth2.mappedFields),
  );
}
