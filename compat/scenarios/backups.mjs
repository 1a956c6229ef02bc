// Backups: `pb.backups` create / getFullList / delete / upload / getDownloadURL and their
// errors, and the `backups.cron` job. Sizes and times differ between servers (different
// databases), so the scenarios record the shape of a listed backup, not its numbers. No
// scenario restores: that restarts the shared server (restore is tested end to end in
// `crates/cli/tests/it/backups.rs`).

function mine(items, key) {
  return items.filter((item) => item.key === key);
}

function shape(item) {
  return {
    keys: Object.keys(item).sort(),
    key: item.key,
    sizeIsPositive: typeof item.size === 'number' && item.size > 0,
    modifiedIsDate: /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z$/.test(item.modified),
  };
}

async function download(t, key, token) {
  const url = token ? t.su.backups.getDownloadURL(token, key) : t.su.buildURL(`/api/backups/${encodeURIComponent(key)}`);
  const res = await fetch(url);
  const bytes = Buffer.from(await res.arrayBuffer());
  return { res, bytes };
}

export async function createListDelete(t) {
  const key = `bk_${t.tag}.zip`;
  await t.sdk('create', () => t.su.backups.create(key));
  await t.sdk('listed', () => t.su.backups.getFullList(), (items) => mine(items, key).map(shape));
  await t.sdk('delete', () => t.su.backups.delete(key));
  await t.sdk('gone', () => t.su.backups.getFullList(), (items) => mine(items, key).length);
}

export async function createErrors(t) {
  const key = `bk_${t.tag}.zip`;
  await t.sdk('guest list', () => t.client().backups.getFullList());
  await t.sdk('create', () => t.su.backups.create(key));
  await t.sdk('exists', () => t.su.backups.create(key));
  await t.sdk('bad name', () => t.su.backups.create('Bad Name.zip'));
  await t.sdk('no .zip', () => t.su.backups.create(`bk_${t.tag}`));
  await t.sdk('too long', () => t.su.backups.create(`${'a'.repeat(147)}.zip`));
  await t.http('restore unknown', 'POST', '/api/backups/nosuch_backup.zip/restore', { auth: 'su' });
  // The raw error after the message names a server's own file system.
  await t.http('delete unknown', 'DELETE', '/api/backups/nosuch_backup.zip', {
    auth: 'su',
    shape: (body) => ({ ...body, message: body.message.split(' Raw error:')[0] }),
  });
  await t.sdk('cleanup', () => t.su.backups.delete(key));
}

export async function downloadNeedsSuperuserFileToken(t) {
  const key = `bk_${t.tag}.zip`;
  await t.su.backups.create(key);
  const none = await download(t, key);
  t.record('no token', { status: none.res.status, body: JSON.parse(none.bytes.toString()) });
  const auth = await download(t, key, t.suToken);
  t.record('auth token', { status: auth.res.status, body: JSON.parse(auth.bytes.toString()) });
  const token = await t.su.files.getToken();
  const ok = await download(t, key, token);
  t.record('file token', {
    status: ok.res.status,
    contentType: ok.res.headers.get('content-type'),
    disposition: ok.res.headers.get('content-disposition'),
    frameOptions: ok.res.headers.get('x-frame-options'),
    isZip: ok.bytes.subarray(0, 4).toString('latin1') === 'PK\x03\x04',
    firstEntry: ok.bytes.subarray(30, 30 + ok.bytes.readUInt16LE(26)).toString(),
  });
  const missing = await download(t, `nosuch_${t.tag}.zip`, token);
  t.record('unknown key', { status: missing.res.status, body: JSON.parse(missing.bytes.toString()) });
  await t.su.backups.delete(key);
}

export async function uploadChecks(t) {
  const key = `bk_${t.tag}.zip`;
  const copy = `copy_${t.tag}.zip`;
  await t.su.backups.create(key);
  const token = await t.su.files.getToken();
  const { bytes } = await download(t, key, token);
  await t.http('no file', 'POST', '/api/backups/upload', { auth: 'su', json: {} });
  const random = Buffer.alloc(5000, 0).map((_, i) => (i * 7919) % 251);
  await t.sdk('not a zip', () =>
    t.su.backups.upload({ file: new File([random], 'random.zip', { type: 'application/zip' }) }),
  );
  await t.sdk('a real backup', () =>
    t.su.backups.upload({ file: new File([bytes], copy, { type: 'application/zip' }) }),
  );
  await t.sdk('listed', () => t.su.backups.getFullList(), (items) => mine(items, copy).map(shape));
  await t.sdk('same name again', () =>
    t.su.backups.upload({ file: new File([bytes], copy, { type: 'application/zip' }) }),
  );
  await t.su.backups.delete(copy);
  await t.su.backups.delete(key);
}

export async function cronSetting(t) {
  const job = (list) => list.filter((j) => j.id === '__pbAutoBackup__');
  await t.sdk('bad cron', () => t.su.settings.update({ backups: { cron: 'nope' } }));
  await t.sdk('keep 0', () => t.su.settings.update({ backups: { cron: '0 3 * * *', cronMaxKeep: 0 } }));
  await t.sdk('set', () => t.su.settings.update({ backups: { cron: '@daily', cronMaxKeep: 2 } }), (s) => s.backups);
  await t.sdk('job listed', () => t.su.crons.getFullList(), job);
  await t.sdk('unset', () => t.su.settings.update({ backups: { cron: '', cronMaxKeep: 3 } }), (s) => s.backups);
  await t.sdk('job gone', () => t.su.crons.getFullList(), job);
}

/**
 * KD-2: an upload that is a zip but not a backup this server can restore is refused at once
 * (PocketBase stores it and its restore fails later, silently).
 */
export async function uploadForeignZip(t) {
  // A zip holding only `hello.txt` ("hi"), stored.
  const zip = Buffer.from(
    'UEsDBBQAAAAAAFKVg12sKpPYAgAAAAIAAAAJAAAAaGVsbG8udHh0aGlQSwECFAMUAAAAAABSlYNdrCqT2AIAAAACAAAACQAAAAAAAAAAAAAAgAEAAAAAaGVsbG8udHh0UEsFBgAAAAABAAEANwAAACkAAAAAAA==',
    'base64',
  );
  const key = `foreign_${t.tag}.zip`;
  await t.sdk('upload', () => t.su.backups.upload({ file: new File([zip], key, { type: 'application/zip' }) }));
  await t.sdk('listed', () => t.su.backups.getFullList(), (items) => mine(items, key).length);
  await t.su.backups.delete(key).catch(() => {});
}
uploadForeignZip.known = {
  id: 'KD-2',
  expect(plinth) {
    const upload = plinth.upload;
    if (upload?.ok !== false || upload.status !== 400) {
      throw new Error(`expected a 400, got ${JSON.stringify(upload)}`);
    }
    if (upload.body?.data?.file?.code !== 'validation_invalid_backup') {
      throw new Error(`expected validation_invalid_backup, got ${JSON.stringify(upload.body)}`);
    }
    if (plinth.listed?.body !== 0) throw new Error(`the refused upload is listed: ${JSON.stringify(plinth.listed)}`);
  },
};
