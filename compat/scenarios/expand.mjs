// `expand`: single and multiple relations, nested paths, back-relations, and privacy: each
// expanded record must pass its own collection's view rule for the caller (a user never sees
// another user's record through a relation).

import { withDates } from '../lib/fixtures.mjs';

/**
 * PocketBase ships with rate limiting off; Plinth turns `*:auth` on by default, which the many
 * logins of these scenarios would trip. Setup, not a check: both servers end up with
 * PocketBase's default.
 */
async function defaultRateLimits(t) {
  await t.su.settings.update({ rateLimits: { enabled: false } });
}


async function seed(t, postRules = {}) {
  await defaultRateLimits(t);
  const open = { listRule: '', viewRule: '', createRule: '', updateRule: '', deleteRule: '' };
  const mkUser = (local, name) =>
    t.su.collection('users').create({
      email: t.email(local),
      password: 'user-pass-123',
      passwordConfirm: 'user-pass-123',
      name,
    });
  const alice = await mkUser('alice', 'Alice');
  const bob = await mkUser('bob', 'Bob');
  const notes = await t.su.collections.create({
    name: t.coll('notes'),
    type: 'base',
    ...open,
    viewRule: 'owner = @request.auth.id',
    listRule: 'owner = @request.auth.id',
    fields: withDates([
      { name: 'text', type: 'text' },
      { name: 'owner', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 1 },
    ]),
  });
  const aliceNote = await t.su.collection(notes.name).create({ text: 'alice private', owner: alice.id });
  const bobNote = await t.su.collection(notes.name).create({ text: 'bob private', owner: bob.id });
  const posts = await t.su.collections.create({
    name: t.coll('posts'),
    type: 'base',
    ...open,
    ...postRules,
    fields: withDates([
      { name: 'title', type: 'text' },
      { name: 'author', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 1 },
      { name: 'readers', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 5 },
      { name: 'note', type: 'relation', collectionId: notes.id, maxSelect: 1 },
      { name: 'notes', type: 'relation', collectionId: notes.id, maxSelect: 5 },
    ]),
  });
  // A relation to the collection itself needs its id, so it is added once it exists.
  const withParent = await t.su.collections.update(posts.id, {
    fields: [...posts.fields, { name: 'parent', type: 'relation', collectionId: posts.id, maxSelect: 1 }],
  });
  return { alice, bob, notes, aliceNote, bobNote, posts: withParent };
}

async function posts(t, s) {
  const col = t.su.collection(s.posts.name);
  const root = await col.create({ title: 'root', author: s.alice.id, readers: [s.alice.id, s.bob.id], note: s.aliceNote.id, notes: [s.aliceNote.id, s.bobNote.id] });
  const child = await col.create({ title: 'child', author: s.bob.id, note: s.bobNote.id, parent: root.id });
  const grandchild = await col.create({ title: 'grandchild', author: s.alice.id, parent: child.id });
  return { root, child, grandchild };
}

/** A record reduced to its label and, recursively, what was expanded on it. */
function compact(record) {
  const out = { label: record.title ?? record.name ?? record.text ?? record.email ?? null };
  if (record.expand !== undefined) {
    out.expand = {};
    for (const [key, value] of Object.entries(record.expand)) {
      out.expand[key] = Array.isArray(value) ? value.map(compact) : compact(value);
    }
  }
  return out;
}

export async function expandAsEachActor(t) {
  const s = await seed(t);
  await posts(t, s);
  const alice = t.client();
  await alice.collection('users').authWithPassword(t.email('alice'), 'user-pass-123');
  const actors = [
    ['superuser', t.su],
    ['guest', t.client()],
    ['alice', alice],
  ];
  const expands = ['author', 'readers', 'note', 'notes', 'parent', 'parent.parent', 'parent.note,parent.author', 'author,readers,note,notes,parent.parent.author', `${s.posts.name}_via_parent`, `${s.posts.name}_via_parent.note`, 'nope', 'title', 'parent.nope'];
  for (const [who, client] of actors) {
    for (const expand of expands) {
      await t.sdk(`${who} expand ${expand}`, () =>
        client.collection(s.posts.name).getFullList({ sort: 'title', expand }),
        (items) => items.map(compact),
      );
    }
    await t.sdk(`${who} view with expand`, async () => {
      const first = await client.collection(s.posts.name).getFirstListItem('title = "child"', { expand: 'note,author,parent.note' });
      return { title: first.title, expand: first.expand ?? null };
    }, (r) => ({ title: r.title, keys: Object.keys(r.expand ?? {}).sort(), note: r.expand?.note?.text ?? null, parentNote: r.expand?.parent?.expand?.note?.text ?? null }));
  }
}

/** Expanded records are fetched in the `expand` request context. */
export async function expandRequestContext(t) {
  const a = await t.su.collections.create({
    name: t.coll('ctxa'),
    type: 'base',
    listRule: '',
    viewRule: "@request.context = 'expand'",
    fields: [{ name: 't', type: 'text' }],
  });
  const b = await t.su.collections.create({
    name: t.coll('ctxb'),
    type: 'base',
    listRule: '',
    viewRule: '',
    fields: [{ name: 'a', type: 'relation', collectionId: a.id, maxSelect: 1 }],
  });
  const ra = await t.su.collection(a.name).create({ t: 'x' });
  const rb = await t.su.collection(b.name).create({ a: ra.id });
  const guest = t.client();
  await t.sdk('list with expand', () => guest.collection(b.name).getFullList({ expand: 'a' }), (r) => r.map((i) => i.expand?.a?.t ?? null));
  await t.sdk('view with expand', () => guest.collection(b.name).getOne(rb.id, { expand: 'a' }), (r) => r.expand?.a?.t ?? null);
  await t.http('direct view', 'GET', `/api/collections/${a.name}/records/${ra.id}`);
}
