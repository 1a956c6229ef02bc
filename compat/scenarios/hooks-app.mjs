// The app-level JS API inside hooks (compat/hooks/pb_hooks/app.pb.js): $security, $http.send to
// the harness's local HTTP server, cron jobs, the record finders and Record objects. Runs
// against the hook server pair.

import { createUser } from '../lib/fixtures.mjs';

export async function security(t) {
  await t.http('$security', 'GET', '/hk/security');
}

export async function httpSend(t) {
  await t.http('$http.send to a local server', 'GET', '/hk/http');
}

export async function cronJobs(t) {
  await t.http('guest list', 'GET', '/api/crons');
  // User jobs first (sorted by id), then the system's own jobs; recorded apart so that a
  // difference in either shows on its own line. Plinth's own sweeps (`__plinth…__` ids) are
  // not PocketBase's to compare.
  const list = await t.http('list', 'GET', '/api/crons', { auth: 'su', quiet: true });
  t.record('list status', list.status);
  t.record('user jobs', (list.body ?? []).filter((j) => !j.id.startsWith('__')));
  t.record('system jobs', (list.body ?? []).filter((j) => j.id.startsWith('__pb')));
  await t.http('run an unknown job', 'POST', '/api/crons/hk_nosuch', { auth: 'su' });
  const before = await t.su.collection('hk_audit').getList(1, 1, { filter: "kind = 'cron'" });
  await t.http('run the job', 'POST', '/api/crons/hk_audit_job', { auth: 'su' });
  // The job runs in the background: wait until its row shows up.
  let after = before.totalItems;
  for (let i = 0; i < 50 && after === before.totalItems; i++) {
    await new Promise((r) => setTimeout(r, 100));
    after = (await t.su.collection('hk_audit').getList(1, 1, { filter: "kind = 'cron'" })).totalItems;
  }
  t.record('rows the job wrote', after - before.totalItems);
}

export async function finders(t) {
  const prefix = `find${t.tag}`;
  for (let i = 1; i <= 5; i++) {
    await t.su.collection('hk_items').create({ title: `${prefix}-${i}`, qty: i, done: i % 2 === 0 });
  }
  const { email } = await createUser(t, 'finder');
  await t.http('finders', 'GET', `/hk/find?prefix=${prefix}&email=${encodeURIComponent(email)}`);
  await t.http('findAuthRecordByEmail miss is a 404', 'GET',
    `/hk/find?prefix=${prefix}&email=${encodeURIComponent(t.email('nobody'))}`);
}

export async function recordObjects(t) {
  await t.http('new Record', 'GET', '/hk/record');
  await t.http('Record methods', 'GET', '/hk/record/methods');
}

// `$app.subscriptionsBroker()`: a route lists the clients subscribed to a custom topic (their
// auth, subscriptions) and sends each a message of its own.
export async function realtimeBroker(t) {
  const user = await createUser(t, 'broker');
  const guest = t.client();
  const got = { guest: [], user: [] };
  await t.sdk('guest subscribes', () => guest.realtime.subscribe('hk_news', (e) => got.guest.push(e)));
  await t.sdk('user subscribes', () =>
    user.client.realtime.subscribe('hk_news', (e) => got.user.push(e)),
  );
  await t.sdk('user subscribes to a collection', () =>
    user.client.collection('hk_items').subscribe('*', () => {}),
  );
  await t.http('broadcast', 'POST', '/hk/broadcast', { json: { text: 'hello' } });
  await new Promise((r) => setTimeout(r, 600));
  t.record('messages', got);
  await guest.realtime.unsubscribe();
  await user.client.realtime.unsubscribe();
  // Unsubscribing from everything closes the stream; either server forgets the client once it
  // sees the connection end, which under load takes a moment.
  await new Promise((r) => setTimeout(r, 600));
  await t.http('broadcast with nobody subscribed', 'POST', '/hk/broadcast', { json: { text: 'x' } });
}

export async function filepath(t) {
  await t.http('$filepath', 'GET', '/hk/filepath');
}

export async function findersMore(t) {
  await t.http('more finders', 'GET', '/hk/find/more');
  await t.http('$dbx.not and friends', 'GET', '/hk/find/not');
}

export async function appStore(t) {
  await t.http('$app.store()', 'GET', '/hk/store');
}
