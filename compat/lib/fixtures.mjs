// Shared setup for scenarios: collection definitions with every field type and small helpers to
// create them through the SDK as the superuser. Setup calls are not recorded unless a scenario
// records their results itself, so a scenario compares only what it is about.

import { sortBy } from './context.mjs';

export { sortBy };

/** One field of every type PocketBase 0.40 has (except `autodate`, added by `withDates`). */
export function everyField(relationTargetId) {
  return [
    { name: 'title', type: 'text' },
    { name: 'code', type: 'text', min: 2, max: 8, pattern: '^[a-z0-9]+$' },
    { name: 'content', type: 'editor' },
    { name: 'views', type: 'number' },
    { name: 'rating', type: 'number', min: 0, max: 10, onlyInt: true },
    { name: 'active', type: 'bool' },
    { name: 'contact', type: 'email' },
    { name: 'link', type: 'url' },
    { name: 'due', type: 'date' },
    { name: 'status', type: 'select', values: ['draft', 'live', 'archived'], maxSelect: 1 },
    { name: 'tags', type: 'select', values: ['a', 'b', 'c', 'd'], maxSelect: 3 },
    { name: 'meta', type: 'json' },
    { name: 'owner', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 1 },
    { name: 'related', type: 'relation', collectionId: relationTargetId, maxSelect: 5 },
    { name: 'doc', type: 'file', maxSelect: 1, maxSize: 1048576 },
    { name: 'attachments', type: 'file', maxSelect: 3, mimeTypes: ['image/png', 'text/plain'] },
    { name: 'secret', type: 'password' },
    { name: 'loc', type: 'geoPoint' },
  ];
}

/** `created` and `updated` autodate fields, as the admin UI adds them. */
export function withDates(fields) {
  return [
    ...fields,
    { name: 'created', type: 'autodate', onCreate: true, onUpdate: false },
    { name: 'updated', type: 'autodate', onCreate: true, onUpdate: true },
  ];
}

/** Creates a base collection as the superuser; throws if that fails (setup, not a check). */
export async function createBase(t, base, fields, extra = {}) {
  return t.su.collections.create({
    name: t.coll(base),
    type: 'base',
    listRule: '',
    viewRule: '',
    createRule: '',
    updateRule: '',
    deleteRule: '',
    fields,
    ...extra,
  });
}

/** A small target collection (`name` text) with `n` records; returns {collection, records}. */
export async function createTarget(t, n = 3) {
  const collection = await createBase(t, 'target', withDates([{ name: 'name', type: 'text' }]));
  const records = [];
  for (let i = 1; i <= n; i++) {
    records.push(await t.su.collection(collection.name).create({ name: `target ${i}` }));
  }
  return { collection, records };
}

/** The every-field collection (open rules) and its relation target. */
export async function createEveryFieldCollection(t, extra = {}) {
  const target = await createTarget(t);
  const collection = await createBase(t, 'all', withDates(everyField(target.collection.id)), extra);
  return { collection, target };
}

/** A base collection `items` with `title` text, `n` number, `tags` multi-select; seeded. */
export async function createNumbered(t, count, extra = {}) {
  const collection = await createBase(
    t,
    'items',
    withDates([
      { name: 'title', type: 'text' },
      { name: 'n', type: 'number' },
      { name: 'grp', type: 'select', values: ['x', 'y', 'z'], maxSelect: 1 },
    ]),
    extra,
  );
  const records = [];
  for (let i = 1; i <= count; i++) {
    records.push(
      await t.su.collection(collection.name).create({
        title: `item ${String(i).padStart(2, '0')}`,
        n: (i * 7) % 11,
        grp: ['x', 'y', 'z'][i % 3],
      }),
    );
  }
  return { collection, records };
}

/** Creates a `users` record (in the default auth collection) and logs it in; returns a client. */
export async function createUser(t, local, extra = {}) {
  const email = t.email(local);
  const password = 'user-pass-123';
  const record = await t.su.collection('users').create({
    email,
    password,
    passwordConfirm: password,
    ...extra,
  });
  const client = t.client();
  await client.collection('users').authWithPassword(email, password);
  return { record, client, email, password };
}
