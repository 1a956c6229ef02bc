// Error responses a client must be able to rely on: status, message and `data` for malformed
// input, unknown resources, bad query parameters and constraint violations.

import { createBase, createNumbered } from '../lib/fixtures.mjs';

export async function malformedJson(t) {
  const c = await createBase(t, 'json', [{ name: 'title', type: 'text' }]);
  const url = `/api/collections/${c.name}/records`;
  const json = { 'Content-Type': 'application/json' };
  await t.http('truncated object', 'POST', url, { body: '{"title": "x"', headers: json });
  await t.http('not json at all', 'POST', url, { body: 'title=x', headers: json });
  await t.http('json array body', 'POST', url, { body: '[1,2]', headers: json });
  await t.http('json string body', 'POST', url, { body: '"x"', headers: json });
  await t.http('json null body', 'POST', url, { body: 'null', headers: json });
  await t.http('superuser login with broken json', 'POST',
    '/api/collections/_superusers/auth-with-password', { body: '{"identity":', headers: json });
}

export async function unsupportedContentType(t) {
  const c = await createBase(t, 'ctype', [{ name: 'title', type: 'text' }]);
  const url = `/api/collections/${c.name}/records`;
  await t.http('text/plain', 'POST', url, {
    body: 'title=x',
    headers: { 'Content-Type': 'text/plain' },
  });
  await t.http('application/octet-stream', 'POST', url, {
    body: '{"title":"x"}',
    headers: { 'Content-Type': 'application/octet-stream' },
  });
  await t.http('json with charset', 'POST', url, {
    body: '{"title":"x"}',
    headers: { 'Content-Type': 'application/json; charset=utf-8' },
    shape: (b) => b?.title,
  });
}

export async function unknownCollection(t) {
  const base = '/api/collections/nosuch_collection_x/records';
  await t.http('list', 'GET', base);
  await t.http('view', 'GET', `${base}/abcdefghijklmno`);
  await t.http('create', 'POST', base, { json: { a: 1 } });
  await t.http('update', 'PATCH', `${base}/abcdefghijklmno`, { json: { a: 1 } });
  await t.http('delete', 'DELETE', `${base}/abcdefghijklmno`);
  await t.http('list as superuser', 'GET', base, { auth: 'su' });
  await t.http('auth-with-password on a base collection', 'POST',
    '/api/collections/nosuch_collection_x/auth-with-password', {
      json: { identity: 'a@example.com', password: 'x' },
    });
}

export async function unknownRecord(t) {
  const { collection } = await createNumbered(t, 1);
  const base = `/api/collections/${collection.name}/records`;
  await t.http('view', 'GET', `${base}/nosuchrecord123`);
  await t.http('update', 'PATCH', `${base}/nosuchrecord123`, { json: { title: 'x' } });
  await t.http('delete', 'DELETE', `${base}/nosuchrecord123`);
  await t.http('view as superuser', 'GET', `${base}/nosuchrecord123`, { auth: 'su' });
}

export async function badListParams(t) {
  const { collection } = await createNumbered(t, 2);
  const base = `/api/collections/${collection.name}/records`;
  for (const q of ['page=abc', 'perPage=x', 'page=1.5', 'perPage=', 'page=', 'skipTotal=yes',
    'page=99999999999999999999']) {
    await t.http(q, 'GET', `${base}?${q}`, {
      shape: (b) => (b && 'items' in b ? { ...b, items: b.items.length } : b),
    });
  }
}

export async function unknownSortField(t) {
  const { collection } = await createNumbered(t, 2);
  const base = `/api/collections/${collection.name}/records`;
  await t.http('unknown field', 'GET', `${base}?sort=nosuch`);
  await t.http('unknown desc', 'GET', `${base}?sort=-nosuch`);
  await t.http('one good one bad', 'GET', `${base}?sort=title,nosuch`);
  await t.http('garbage', 'GET', `${base}?sort=${encodeURIComponent('title;drop')}`);
  await t.http('empty sort', 'GET', `${base}?sort=`, {
    shape: (b) => (b?.items ?? []).map((i) => i.title),
  });
  await t.sdk('sdk unknown sort', () =>
    t.client().collection(collection.name).getList(1, 5, { sort: 'nosuch' }),
  );
}

export async function uniqueViolation(t) {
  const name = t.coll('uniq');
  const c = await createBase(t, 'uniq', [
    { name: 'slug', type: 'text' },
    { name: 'title', type: 'text' },
  ], { indexes: [`CREATE UNIQUE INDEX idx_uniq_slug_${t.tag} ON ${name} (slug)`] });
  const col = t.su.collection(c.name);
  const first = await t.sdk('first', () => col.create({ slug: 'hello', title: 'a' }));
  await t.sdk('duplicate on create', () => col.create({ slug: 'hello', title: 'b' }));
  const second = await col.create({ slug: 'other', title: 'c' });
  await t.sdk('duplicate on update', () => col.update(second.id, { slug: 'hello' }));
  await t.sdk('same value on self update', () => col.update(first?.id, { slug: 'hello' }));
  await t.sdk('empty values repeat', async () => {
    await col.create({ title: 'no slug 1' });
    return col.create({ title: 'no slug 2' });
  });
}

export async function methodNotAllowedOnRecords(t) {
  const { collection, records } = await createNumbered(t, 1);
  const base = `/api/collections/${collection.name}/records`;
  await t.http('PUT on one record', 'PUT', `${base}/${records[0].id}`, { json: {} });
  await t.http('PATCH on the list', 'PATCH', base, { json: {} });
  await t.http('DELETE on the list', 'DELETE', base);
}

export async function errorShapeViaSdk(t) {
  // What an SDK user sees in ClientResponseError: status, response body, message.
  const pb = t.client();
  try {
    await pb.collection('nosuch_collection_y').getList();
    t.record('no error', true);
  } catch (e) {
    t.record('error', {
      status: e.status,
      message: e.message,
      response: e.response,
      isAbort: e.isAbort,
      url: e.url?.replace(t.base, '<base>'),
    });
  }
}
