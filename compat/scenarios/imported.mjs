// The `imported` area: run only by `run.sh --imported`, after the other areas. Both servers
// were stopped; PocketBase was started again on its own data dir and Plinth on a conversion of
// a copy of it (`plinth import-pocketbase`). These scenarios only read (the last one signs in,
// which adds `_authOrigins` rows, so it runs last) and compare what the two servers serve from
// what is the same data: collections, every record, rules, settings, request logs, stored
// files, passwords and the tokens PocketBase issued before the stop.
//
// Values are compared as they are (`strict`): ids, `created`/`updated` and stored file names
// were copied, so nothing is masked. `t.su` holds the superuser token PocketBase issued before
// it was stopped (no new sign-in until `userPasswords`). Scenario order is the alphabetical
// order of the exported names.

import { createHash } from 'node:crypto';
import { tokenShape } from '../lib/normalize.mjs';

// Bounds, so the area finishes in a minute or two however much the first run left behind.
const MAX_RECORDS = 500; // per collection, sorted by id
const MAX_EXPANDED_FIELDS = 6; // relation fields expanded per collection list
const SAMPLES_PER_COLLECTION = 3; // records viewed one by one
const MAX_FILES = 80; // file downloads in all
const FILES_PER_COLLECTION = 8;
const USERS_PER_COLLECTION = 12; // password sign-ins tried per auth collection
const MAX_SIGN_IN_ATTEMPTS = 80; // in all (each one a bcrypt verification)

// Passwords the other areas give the users they create (lib/fixtures.mjs createUser and the
// scenarios' own); a user whose password is none of these is recorded as such on both sides.
const KNOWN_PASSWORDS = ['user-pass-123', 'pass-12345', 'new-pass-1234', 'new-pass-456'];

// KD-11: Plinth's settings carry a `realtime` section PocketBase has not.
const withoutPlinthOnly = (settings) => {
  if (!settings || typeof settings !== 'object') return settings;
  const { realtime, ...rest } = settings;
  return rest;
};

// Every collection, sorted by name (on each side independently, so a missing collection shows
// as a shift, and the count is recorded too).
async function collections(t) {
  const list = await t.su.collections.getFullList({ batch: 500 });
  return [...list].sort((a, b) => a.name.localeCompare(b.name));
}

function relationFields(c) {
  return (c.fields ?? []).filter((f) => f.type === 'relation').map((f) => f.name);
}

function fileFields(c) {
  return (c.fields ?? []).filter((f) => f.type === 'file');
}

async function firstRecords(t, c, opts = {}) {
  return t.su.collection(c.name).getList(1, MAX_RECORDS, { sort: 'id', ...opts });
}

export async function collectionsList(t) {
  await t.sdk('collections', () => collections(t));
  await t.http('collections page 1 (raw, default order)', 'GET',
    '/api/collections?perPage=5&sort=created,name', { auth: 'su' });
}

export async function fileDownloads(t) {
  let downloads = 0;
  let fileToken = null;
  for (const c of await collections(t)) {
    const fields = fileFields(c);
    if (c.type === 'view' || !fields.length || downloads >= MAX_FILES) continue;
    // The first records (by id) that hold a file; picked here, so the pick is compared too.
    const hasFile = (r) => fields.some((f) => [r[f.name]].flat().some(Boolean));
    const withFiles = await t.sdk(`${c.name}: records with files`,
      () => firstRecords(t, c, { fields: ['id', ...fields.map((f) => f.name)].join(',') }),
      (r) => r.items.filter(hasFile).map((i) => i.id));
    let perCollection = 0;
    let thumbs = 0;
    for (const rec of (withFiles?.items ?? []).filter(hasFile)) {
      for (const f of fields) {
        const names = [rec[f.name]].flat().filter(Boolean);
        for (const name of names) {
          if (perCollection >= FILES_PER_COLLECTION || downloads >= MAX_FILES) break;
          perCollection++;
          downloads++;
          let query = '';
          if (f.protected) {
            fileToken ??= (await t.su.files.getToken());
            query = `?token=${fileToken}`;
          }
          const path = `/api/files/${c.id}/${rec.id}/${encodeURIComponent(name)}`;
          const res = await fetch(t.base + path + query, { signal: AbortSignal.timeout(10000) });
          const bytes = Buffer.from(await res.arrayBuffer());
          t.record(`${c.name}/${rec.id}/${f.name}/${name}`, {
            status: res.status,
            contentType: res.headers.get('content-type'),
            length: bytes.length,
            sha256: createHash('sha256').update(bytes).digest('hex'),
          });
          if (/\.(png|jpe?g|gif|webp)$/i.test(name) && thumbs++ === 0) {
            // Thumbnails are made again on demand after the conversion: their bytes depend on
            // the encoder, so only that one is served, and as what, is compared.
            const thumb = await fetch(`${t.base}${path}?thumb=8x8${fileToken && f.protected
              ? `&token=${fileToken}` : ''}`, { signal: AbortSignal.timeout(10000) });
            await thumb.arrayBuffer();
            t.record(`${c.name}/${rec.id}/${f.name}/${name} thumb 8x8`, {
              status: thumb.status,
              contentType: thumb.headers.get('content-type'),
            });
          }
        }
      }
    }
  }
  t.record('files downloaded', downloads);
}

export async function logsBeforeStop(t) {
  // Only the entries written before the servers were stopped: both servers log this run's
  // requests too, each its own.
  const filter = encodeURIComponent(`created <= "${t.state.cutoff}"`);
  const page = await t.http('logs page 1', 'GET',
    `/api/logs?filter=${filter}&sort=-created,id&perPage=50`, { auth: 'su' });
  await t.http('logs stats', 'GET', `/api/logs/stats?filter=${filter}`, { auth: 'su' });
  const first = page.body?.items?.[0];
  if (first) await t.http('first log entry', 'GET', `/api/logs/${first.id}`, { auth: 'su' });
  t.record('some logs were copied', (page.body?.totalItems ?? 0) > 0);
}

export async function recordsFullList(t) {
  const all = await collections(t);
  t.record('collection count', all.length);
  for (const c of all) {
    const expand = relationFields(c).slice(0, MAX_EXPANDED_FIELDS).join(',');
    await t.sdk(`${c.name} (${c.type})`, () => firstRecords(t, c, expand ? { expand } : {}),
      (r) => ({ totalItems: r.totalItems, items: r.items }));
  }
}

export async function recordsUnderRules(t) {
  // The imported rules at work: the first page of every collection as a guest and as the probe
  // user PocketBase signed in before the stop (token issued by PocketBase).
  const guest = t.client();
  const user = t.state.user ? t.client(t.state.user.token) : null;
  for (const c of await collections(t)) {
    if (c.name.startsWith('_')) continue;
    const shape = (r) => ({ totalItems: r.totalItems, ids: r.items.map((i) => i.id) });
    await t.sdk(`${c.name} as guest`,
      () => guest.collection(c.name).getList(1, 30, { sort: 'id' }), shape);
    if (user) {
      await t.sdk(`${c.name} as user`,
        () => user.collection(c.name).getList(1, 30, { sort: 'id' }), shape);
    }
  }
}

export async function recordsView(t) {
  for (const c of await collections(t)) {
    const page = await firstRecords(t, c, { fields: 'id' }).catch(() => null);
    const ids = page?.items.map((i) => i.id) ?? [];
    const picks = [...new Set([ids[0], ids[Math.floor(ids.length / 2)], ids[ids.length - 1]])]
      .filter(Boolean).slice(0, SAMPLES_PER_COLLECTION);
    t.record(`${c.name}: sampled ids`, picks);
    const expand = relationFields(c).slice(0, MAX_EXPANDED_FIELDS).join(',');
    for (const id of picks) {
      await t.sdk(`${c.name}/${id}`,
        () => t.su.collection(c.name).getOne(id, expand ? { expand } : {}));
    }
  }
}

export async function settingsRead(t) {
  await t.http('settings', 'GET', '/api/settings', { auth: 'su', shape: withoutPlinthOnly });
}

export async function tokensIssuedBefore(t) {
  // The superuser token PocketBase issued before it was stopped.
  await t.http('superuser token: collections', 'GET', '/api/collections?perPage=1', {
    auth: 'su',
    shape: (b) => (b && 'totalItems' in b ? { totalItems: b.totalItems } : b),
  });
  await t.http('superuser token: auth-refresh', 'POST',
    '/api/collections/_superusers/auth-refresh', {
      auth: 'su',
      shape: (b) => (b?.token ? { record: b.record, token: tokenShape(b.token) } : b),
    });
  const u = t.state.user;
  t.record('probe user captured', Boolean(u));
  if (!u) return;
  await t.http('user token: own record', 'GET', `/api/collections/${u.collection}/records/${u.id}`,
    { auth: u.token });
  await t.http('user token: auth-refresh', 'POST', `/api/collections/${u.collection}/auth-refresh`,
    { auth: u.token, shape: (b) => (b?.token ? { record: b.record, token: tokenShape(b.token) } : b) });
  await t.http('user token on the superusers collection', 'GET', '/api/collections',
    { auth: u.token });
  // A token signed by neither server must still fail.
  const forged = `${u.token.slice(0, u.token.lastIndexOf('.') + 1)}${'A'.repeat(43)}`;
  await t.http('forged signature', 'POST', `/api/collections/${u.collection}/auth-refresh`,
    { auth: forged });
}

export async function userPasswords(t) {
  // Last: a sign-in writes (`_authOrigins`, rehashing), so nothing is read after it.
  let attempts = 0;
  const auths = (await collections(t)).filter((c) => c.type === 'auth');
  for (const c of auths) {
    if (!c.passwordAuth?.enabled) continue;
    const page = await firstRecords(t, c, { fields: 'id,email' });
    const users = page.items.filter((r) => r.email).slice(0, USERS_PER_COLLECTION);
    for (const r of users) {
      const candidates = [...KNOWN_PASSWORDS];
      if (c.name === '_superusers') candidates.unshift(t.suPassword);
      if (t.state.user && r.email === t.state.user.email) candidates.unshift(t.state.user.password);
      let found = null;
      for (const [i, password] of candidates.entries()) {
        if (attempts >= MAX_SIGN_IN_ATTEMPTS) break;
        attempts++;
        const res = await t.http(`${c.name}/${r.email} try ${i}`, 'POST',
          `/api/collections/${encodeURIComponent(c.name)}/auth-with-password`,
          { json: { identity: r.email, password }, quiet: true });
        if (res.status !== 400) {
          found = {
            password: i,
            status: res.status,
            record: res.body?.record ?? null,
            token: res.body?.token ? tokenShape(res.body.token) : null,
            mfaId: Boolean(res.body?.mfaId),
          };
          break;
        }
      }
      t.record(`${c.name}/${r.email}`, found ?? 'no known password');
    }
  }
  t.record('sign-in attempts', attempts);
}

for (const fn of [collectionsList, fileDownloads, logsBeforeStop, recordsFullList,
  recordsUnderRules, recordsView, settingsRead, tokensIssuedBefore, userPasswords]) {
  fn.strict = true;
  fn.timeoutMs = 120000;
}
