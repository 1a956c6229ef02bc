// API rules at the level the foundation supports: null (superusers only) and "" (everyone).
// Rules with expressions are added by the rules issue.

import { createNumbered, createUser } from '../lib/fixtures.mjs';

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
