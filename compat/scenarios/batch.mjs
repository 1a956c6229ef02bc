// The batch API through the SDK (`createBatch`, always multipart with `@jsonPayload`) and raw
// JSON: the settings switch, request checks, create/update/upsert/delete in one transaction,
// rollback with the nested error shape, and files under `requests.N.field`.

import { createBase } from '../lib/fixtures.mjs';

async function enable(t, extra = {}) {
  await t.su.settings.update({ batch: { enabled: true, maxRequests: 50, ...extra } });
}

async function notes(t) {
  return createBase(t, 'notes', [
    { name: 'title', type: 'text', required: true },
    { name: 'views', type: 'number' },
    { name: 'files', type: 'file', maxSelect: 3 },
  ]);
}

export async function disabledAnswers403(t) {
  const collection = await notes(t);
  await t.su.settings.update({ batch: { enabled: false } });
  try {
    const batch = t.client().createBatch();
    batch.collection(collection.name).create({ title: 'x' });
    await t.sdk('disabled', () => batch.send());
  } finally {
    await enable(t);
  }
}

export async function everyActionInOrder(t) {
  await enable(t);
  const collection = await notes(t);
  const existing = await t.su.collection(collection.name).create({ title: 'old', views: 1 });
  const batch = t.client().createBatch();
  const c = batch.collection(collection.name);
  c.create({ id: 'batchcreate0001', title: 'a' }, { fields: 'id,title' });
  c.update(existing.id, { 'views+': 2 }, { fields: 'title,views' });
  c.upsert({ id: 'batchupsert0001', title: 'upserted' }, { fields: 'id,title' });
  c.upsert({ id: existing.id, title: 'upsert-updated' }, { fields: 'title,views' });
  c.delete('batchcreate0001');
  await t.sdk('send', () => batch.send());
  await t.sdk('list', () =>
    t.su.collection(collection.name).getFullList({ sort: 'title', fields: 'id,title,views' }),
  );
}

export async function failureRollsBackEverything(t) {
  await enable(t);
  const collection = await notes(t);
  const batch = t.client().createBatch();
  batch.collection(collection.name).create({ title: 'kept?' });
  batch.collection(collection.name).create({ views: 3 });
  await t.sdk('send', () => batch.send());
  await t.sdk('nothing written', () => t.su.collection(collection.name).getFullList());
  await t.http('patch missing', 'POST', '/api/batch', {
    json: {
      requests: [
        { method: 'PATCH', url: `/api/collections/${collection.name}/records/missing00000000`, body: {} },
      ],
    },
  });
}

export async function invalidRequests(t) {
  await enable(t, { maxRequests: 2 });
  try {
    const collection = await notes(t);
    const url = `/api/collections/${collection.name}/records`;
    await t.http('empty', 'POST', '/api/batch', { json: { requests: [] } });
    await t.http('too many', 'POST', '/api/batch', {
      json: { requests: [1, 2, 3].map(() => ({ method: 'POST', url, body: { title: 'x' } })) },
    });
    await t.http('bad method and blanks', 'POST', '/api/batch', {
      json: { requests: [{ method: 'FOO', url }, { url: '' }] },
    });
    await t.http('GET item', 'POST', '/api/batch', { json: { requests: [{ method: 'GET', url }] } });
    await t.http('foreign url', 'POST', '/api/batch', {
      json: { requests: [{ method: 'POST', url: `http://example.com${url}`, body: { title: 'x' } }] },
    });
    await t.http('unknown collection', 'POST', '/api/batch', {
      json: { requests: [{ method: 'POST', url: '/api/collections/nope_nope/records', body: {} }] },
    });
    await t.http('not an object', 'POST', '/api/batch', { json: [1] });
  } finally {
    await enable(t);
  }
}

// Items are read into typed requests before anything is checked: a wrong type fails the
// read, however long the list.
export async function itemsOfTheWrongType(t) {
  await enable(t, { maxRequests: 2 });
  try {
    const collection = await notes(t);
    const url = `/api/collections/${collection.name}/records`;
    const cases = {
      'a number': [1],
      'a text': ['x'],
      'method a number': [{ method: 1, url }],
      'url a number': [{ method: 'POST', url: 5 }],
      'body a text': [{ method: 'POST', url, body: 'x' }],
      'body an array': [{ method: 'POST', url, body: [1] }],
      'headers a text': [{ method: 'POST', url, headers: 'x' }],
      'a header a number': [{ method: 'POST', url, headers: { a: 1 } }],
      'too many, one a number': [{}, {}, 1],
    };
    for (const [label, requests] of Object.entries(cases)) {
      await t.http(label, 'POST', '/api/batch', { json: { requests } });
    }
    await t.http('nulls read as missing', 'POST', '/api/batch', {
      json: { requests: [{ method: 'POST', url, body: { title: 'n' }, headers: { 'x-a': null } }] },
    });
  } finally {
    await enable(t);
  }
}

export async function filesInBatch(t) {
  await enable(t);
  const collection = await notes(t);
  const batch = t.client().createBatch();
  batch.collection(collection.name).create({
    title: 'with files',
    files: [new File(['hello'], 'hello.txt', { type: 'text/plain' })],
  });
  // Batch uploads are renamed twice (two random parts); record the names' shape.
  const shape = (name) => name?.replace(/_[a-z0-9]{10}/g, '_<r>');
  const res = await t.sdk('send', () => batch.send(), (r) =>
    r.map((item) => ({ status: item.status, files: item.body?.files?.map(shape) })),
  );
  const rec = res?.[0]?.body;
  if (rec?.files?.[0]) {
    await t.http('download', 'GET', `/api/files/${collection.name}/${rec.id}/${rec.files[0]}`, {
      keep: ['content-type'],
    });
  }
}
