// Realtime through the SDK's `subscribe`/`unsubscribe` (EventSource underneath) and the raw
// subscription endpoint. Events of different topics may interleave in any order on PocketBase
// (its client subscriptions live in a Go map), so each topic's events are recorded separately,
// in arrival order.

import { createBase, createUser } from '../lib/fixtures.mjs';

const SETTLE_MS = 600;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A collector per topic: `on(name)` is the callback, `take()` the recorded events. */
function collector() {
  const events = {};
  return {
    on(name) {
      events[name] = [];
      return (e) => events[name].push({ action: e.action, record: e.record });
    },
    take() {
      return events;
    },
  };
}

async function posts(t, extra = {}) {
  return createBase(
    t,
    'rt_posts',
    [
      { name: 'title', type: 'text' },
      { name: 'secret', type: 'text', hidden: true },
    ],
    extra,
  );
}

export async function subscribeToEveryTopicForm(t) {
  const collection = await posts(t);
  const first = await t.su.collection(collection.name).create({ title: 'first', secret: 's' });
  const pb = t.client();
  const seen = collector();
  const col = pb.collection(collection.name);
  await t.sdk('subscribe *', () => col.subscribe('*', seen.on('all')));
  await t.sdk('subscribe one', () => col.subscribe(first.id, seen.on('one')));
  await t.sdk('subscribe with fields', () =>
    col.subscribe('*', seen.on('fields'), { fields: 'id,title' }),
  );
  await t.su.collection(collection.name).update(first.id, { title: 'renamed' });
  const second = await t.su.collection(collection.name).create({ title: 'second' });
  await t.su.collection(collection.name).delete(first.id);
  // PocketBase sends delete events in the background, so two deletes in a row can reach a
  // subscriber in either order there (seen once in CI); a pause keeps the reference's order.
  await sleep(SETTLE_MS / 4);
  await t.su.collection(collection.name).delete(second.id);
  await sleep(SETTLE_MS);
  await t.sdk('unsubscribe all', () => col.unsubscribe());
  await t.su.collection(collection.name).create({ title: 'after unsubscribe' });
  await sleep(SETTLE_MS / 2);
  t.record('events', seen.take());
  await pb.realtime.unsubscribe();
}

export async function nullRulesKeepGuestsOut(t) {
  const collection = await posts(t, { listRule: null, viewRule: null });
  const guest = t.client();
  const admin = t.client(t.suToken, t.suRecord);
  const guestSeen = collector();
  const adminSeen = collector();
  await t.sdk('guest subscribe', () =>
    guest.collection(collection.name).subscribe('*', guestSeen.on('guest')),
  );
  await t.sdk('superuser subscribe', () =>
    admin.collection(collection.name).subscribe('*', adminSeen.on('superuser')),
  );
  await t.su.collection(collection.name).create({ title: 'private', secret: 'hidden' });
  await sleep(SETTLE_MS);
  t.record('guest events', guestSeen.take());
  t.record('superuser events', adminSeen.take());
  await guest.realtime.unsubscribe();
  await admin.realtime.unsubscribe();
}

export async function subscriptionEndpointErrors(t) {
  await t.http('no client id', 'POST', '/api/realtime', { json: { subscriptions: ['x'] } });
  await t.http('unknown client', 'POST', '/api/realtime', {
    json: { clientId: 'nope', subscriptions: ['x'] },
  });
  await t.http('not json', 'POST', '/api/realtime', {
    body: 'garbage',
    headers: { 'Content-Type': 'application/json' },
  });
}

export async function authCannotSwitchUsers(t) {
  const collection = await posts(t);
  const alice = await createUser(t, 'rt_alice');
  const bob = await createUser(t, 'rt_bob');
  const pb = t.client();
  const noop = () => {};
  await t.sdk('guest subscribe', () => pb.collection(collection.name).subscribe('*', noop));
  pb.authStore.save(alice.client.authStore.token, alice.client.authStore.record);
  await t.sdk('upgrade to alice', () => pb.collection(collection.name).subscribe('one', noop));
  pb.authStore.save(bob.client.authStore.token, bob.client.authStore.record);
  await t.sdk('switch to bob', () => pb.collection(collection.name).subscribe('two', noop));
  pb.authStore.clear();
  await t.sdk('drop to guest', () => pb.collection(collection.name).subscribe('three', noop));
  await pb.realtime.unsubscribe();
}

// Expression rules per subscriber: only the owner hears its records, `expand` follows the
// related collection's rules, and a user sees its own email in `users` events.
export async function ownerRulesFilterEvents(t) {
  const collection = await createBase(
    t,
    'rt_owned',
    [
      { name: 'title', type: 'text' },
      { name: 'owner', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 1 },
    ],
    { listRule: 'owner = @request.auth.id', viewRule: 'owner = @request.auth.id' },
  );
  const alice = await createUser(t, 'rt_owner_a');
  const bob = await createUser(t, 'rt_owner_b');
  const aliceSeen = collector();
  const bobSeen = collector();
  await t.sdk('alice subscribe', () =>
    alice.client.collection(collection.name).subscribe('*', aliceSeen.on('alice'), {
      expand: 'owner',
    }),
  );
  await t.sdk('bob subscribe', () =>
    bob.client.collection(collection.name).subscribe('*', bobSeen.on('bob'), { expand: 'owner' }),
  );
  await t.sdk('alice subscribes to users', () =>
    alice.client.collection('users').subscribe('*', aliceSeen.on('users')),
  );
  const mine = await t.su
    .collection(collection.name)
    .create({ title: 'alice only', owner: alice.record.id });
  await t.su.collection(collection.name).update(mine.id, { title: 'still alice' });
  await t.su.collection('users').update(alice.record.id, { name: 'Alice' });
  await t.su.collection('users').update(bob.record.id, { name: 'Bob' });
  await sleep(SETTLE_MS);
  t.record('alice events', aliceSeen.take());
  t.record('bob events', bobSeen.take());
  await alice.client.realtime.unsubscribe();
  await bob.client.realtime.unsubscribe();
}

// The rule is checked against each event's record as it is after the change: a record that
// leaves a subscriber's view sends it nothing, one that enters it sends an update. A topic's
// `filter` narrows the events further; `@request.query.*`, `@request.headers.*` and
// `@request.context` in a rule read the subscription's options.
export async function rulesFollowEachChange(t) {
  const collection = await createBase(
    t,
    'rt_public',
    [
      { name: 'title', type: 'text' },
      { name: 'public', type: 'bool' },
      { name: 'team', type: 'text' },
    ],
    {
      listRule: 'public = true && @request.context = "realtime"',
      viewRule: 'public = true || team = @request.query.team || team = @request.headers.x_team',
    },
  );
  const guest = t.client();
  const seen = collector();
  const col = guest.collection(collection.name);
  await t.sdk('subscribe *', () => col.subscribe('*', seen.on('all')));
  await t.sdk('subscribe * with a filter', () =>
    col.subscribe('*', seen.on('filtered'), { filter: 'title ~ "keep"' }),
  );
  await t.sdk('subscribe * with a bad filter', () =>
    col.subscribe('*', seen.on('bad filter'), { filter: 'nope ~~ (' }),
  );
  const hidden = await t.su
    .collection(collection.name)
    .create({ title: 'keep hidden', public: false, team: 'red' });
  await t.sdk('subscribe one, query team', () =>
    col.subscribe(hidden.id, seen.on('by query'), { query: { team: 'red' } }),
  );
  await t.sdk('subscribe one, header team', () =>
    col.subscribe(hidden.id, seen.on('by header'), { headers: { 'X-Team': 'red' } }),
  );
  await t.sdk('subscribe one, other team', () =>
    col.subscribe(hidden.id, seen.on('other team'), { query: { team: 'blue' } }),
  );
  await t.su.collection(collection.name).update(hidden.id, { public: true });
  await t.su.collection(collection.name).update(hidden.id, { title: 'drop', public: false });
  await t.su.collection(collection.name).update(hidden.id, { title: 'keep again' });
  await t.su.collection(collection.name).create({ title: 'keep public', public: true });
  await t.su.collection(collection.name).delete(hidden.id);
  await sleep(SETTLE_MS);
  t.record('events', seen.take());
  await guest.realtime.unsubscribe();
}
