// JS record hooks (compat/hooks/pb_hooks/records.pb.js) on the collections the JS migrations
// create: a validation hook, a computed field, an after-success hook writing another
// collection, an update hook, list and enrich hooks, and transactions. Runs against the hook
// server pair. Deliberately absent: a throw after e.next() in onRecordCreate (KD-7).

async function auditFor(t, label, id) {
  await t.sdk(label, () => t.su.collection('hk_audit').getFullList({
    filter: t.su.filter('ref = {:id}', { id }),
    sort: 'kind',
  }), (items) => items.map((i) => ({ kind: i.kind, ref: i.ref })));
}

async function countTitle(t, label, title) {
  await t.sdk(label, () => t.su.collection('hk_items').getList(1, 1, {
    filter: t.su.filter('title = {:title}', { title }),
  }), (r) => r.totalItems);
}

export async function validationHookRejects(t) {
  const title = `Forbidden ${t.tag}`;
  await t.http('reserved title', 'POST', '/api/collections/hk_items/records', {
    json: { title, qty: 1 },
  });
  await countTitle(t, 'nothing stored', title);
  await t.http('plain Error in the request hook', 'POST', '/api/collections/hk_items/records', {
    json: { title: 'plain-error' },
  });
  await countTitle(t, 'nothing stored for the plain Error', 'plain-error');
  await t.http('BadRequestError in onRecordCreate before next', 'POST',
    '/api/collections/hk_items/records', { json: { title: 'model-refuses' } });
  await countTitle(t, 'nothing stored for the model refusal', 'model-refuses');
  await t.http('required field still validated', 'POST', '/api/collections/hk_items/records', {
    json: { qty: 1 },
  });
}

export async function computedFieldAndAudit(t) {
  const created = await t.sdk('create', () => t.client().collection('hk_items').create({
    title: `Hello World ${t.tag}!`,
    qty: 3,
  }));
  if (!created) throw new Error('create failed');
  await t.sdk('view', () => t.client().collection('hk_items').getOne(created.id));
  await auditFor(t, 'audit row written after success', created.id);
}

export async function routeSaveFiresModelHooks(t) {
  const res = await t.http('save from a route', 'POST', '/hk/record', {
    json: { title: `Route Save ${t.tag}`, qty: 4 },
  });
  await auditFor(t, 'audit row', res.body?.id);
}

export async function updateHookSeesOriginal(t) {
  const item = await t.su.collection('hk_items').create({ title: `upd ${t.tag}`, note: 'first' });
  await t.http('guest update refused by the migrated rule', 'PATCH',
    `/api/collections/hk_items/records/${item.id}`, { json: { note: 'x' } });
  await t.sdk('update', () => t.su.collection('hk_items').update(item.id, { note: 'second' }));
}

export async function listHookEditsResult(t) {
  await t.sdk('guest list', () => t.client().collection('hk_view').getList(1, 10, { sort: 'label' }));
  await t.sdk('superuser list', () => t.su.collection('hk_view').getList(1, 10, { sort: 'label' }));
}

export async function enrichHidesField(t) {
  const [alpha] = await t.su.collection('hk_view').getFullList({ filter: "label = 'alpha'" });
  await t.sdk('guest view', () => t.client().collection('hk_view').getOne(alpha.id));
  await t.sdk('superuser view', () => t.su.collection('hk_view').getOne(alpha.id));
  await t.sdk('guest full list', () => t.client().collection('hk_view').getFullList({ sort: 'label' }));
}

export async function transactionRollsBack(t) {
  const failed = `tx fail ${t.tag}`;
  await t.http('throw inside runInTransaction', 'POST',
    `/hk/tx?fail=1&title=${encodeURIComponent(failed)}`);
  await countTitle(t, 'no item left behind', failed);
  await t.sdk('no audit row left behind', () => t.su.collection('hk_audit').getList(1, 1, {
    filter: "kind = 'tx'",
  }), (r) => r.totalItems);
  const plain = `tx plain ${t.tag}`;
  await t.http('plain Error inside runInTransaction', 'POST',
    `/hk/tx-plain?title=${encodeURIComponent(plain)}`);
  await countTitle(t, 'no item left behind (plain)', plain);

  const kept = `tx ok ${t.tag}`;
  const res = await t.http('committed transaction', 'POST',
    `/hk/tx?title=${encodeURIComponent(kept)}`);
  await countTitle(t, 'committed item', kept);
  await auditFor(t, 'audit rows (tx, and created after the commit)', res.body?.id);
}
