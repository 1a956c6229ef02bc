// Files: multipart uploads through the SDK (naming, `+`/`-` modifiers, replace semantics,
// field validation), downloads with PocketBase's headers, `download=1`, ranges, thumbnails,
// protected files with file tokens.

import { createBase, createUser } from '../lib/fixtures.mjs';

// A 2×1 PNG.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAIAAAABCAYAAAD0In+KAAAAEUlEQVR4nGP4z8DwHwwZGBgAQ8gF+8vTujIAAAAASUVORK5CYII=',
  'base64',
);
const HEADERS = [
  'content-type',
  'content-disposition',
  'content-security-policy',
  'cache-control',
  'accept-ranges',
  'content-range',
  'x-frame-options',
];

function file(text, name, type = 'text/plain') {
  return new File([text], name, { type });
}

async function docs(t, extra = {}) {
  return createBase(
    t,
    'docs',
    [
      { name: 'title', type: 'text' },
      { name: 'owner', type: 'text' },
      { name: 'files', type: 'file', maxSelect: 3, maxSize: 1000, thumbs: ['20x0', '10x10t'] },
      { name: 'one', type: 'file', maxSelect: 1, mimeTypes: ['image/png'] },
      { name: 'secret', type: 'file', maxSelect: 1, protected: true },
    ],
    extra,
  );
}

export async function uploadNaming(t) {
  const collection = await docs(t);
  await t.sdk('create', () =>
    t.su.collection(collection.name).create({
      title: 't',
      files: [file('hello', 'My Holiday-PhotoFinal (1).TXT'), file('x', 'a'), file('b', 'x.y.z.txt')],
      one: new File([PNG], 'red.png', { type: 'image/png' }),
    }),
  );
}

export async function uploadValidation(t) {
  const collection = await docs(t);
  const c = t.su.collection(collection.name);
  await t.sdk('too many', () =>
    c.create({ files: [file('1', '1.txt'), file('2', '2.txt'), file('3', '3.txt'), file('4', '4.txt')] }),
  );
  await t.sdk('too big', () => c.create({ files: [file('x'.repeat(2000), 'big.txt')] }));
  await t.sdk('wrong type', () => c.create({ one: file('not a png', 'fake.png', 'image/png') }));
  await t.sdk('forged name', () => c.create({ files: ['nonexist.png'] }));
}

export async function modifiersAndReplace(t) {
  const collection = await docs(t);
  const c = t.su.collection(collection.name);
  const rec = await c.create({ files: [file('a', 'a.txt'), file('b', 'b.txt')] });
  const [a, b] = rec.files;
  await t.sdk('append', () => c.update(rec.id, { 'files+': file('c', 'c.txt') }));
  await t.sdk('prepend', () => c.update(rec.id, { '+files': file('d', 'd.txt') }), (r) => r.files.length);
  await t.sdk('remove', () => c.update(rec.id, { 'files-': [a] }));
  await t.http('removed file is gone', 'GET', `/api/files/${collection.name}/${rec.id}/${a}`);
  await t.sdk('replace keeping one', () => c.update(rec.id, { files: [b, file('e', 'e.txt')] }));
  await t.sdk('clear', () => c.update(rec.id, { files: [] }));
  await t.http('cleared file is gone', 'GET', `/api/files/${collection.name}/${rec.id}/${b}`);
}

export async function downloadHeaders(t) {
  const collection = await docs(t, { viewRule: null });
  const rec = await t.su.collection(collection.name).create({
    files: [file('hello world', 'hello.txt'), new File([PNG], 'red.png', { type: 'image/png' })],
  });
  const [txt, png] = rec.files;
  const base = `/api/files/${collection.name}/${rec.id}`;
  await t.http('text (view rule ignored)', 'GET', `${base}/${txt}`, { keep: HEADERS });
  await t.http('image inline', 'GET', `${base}/${png}`, { keep: HEADERS, quiet: false, shape: () => null });
  await t.http('download=1', 'GET', `${base}/${png}?download=1`, { keep: HEADERS, shape: () => null });
  await t.http('range', 'GET', `${base}/${txt}`, { headers: { Range: 'bytes=6-' }, keep: HEADERS });
  await t.http('thumb listed', 'GET', `${base}/${png}?thumb=20x0`, { keep: HEADERS, shape: () => null });
  await t.http('thumb default', 'GET', `${base}/${png}?thumb=100x100`, { keep: HEADERS, shape: () => null });
  await t.http('thumb unlisted', 'GET', `${base}/${png}?thumb=50x50`, { keep: HEADERS, shape: () => null });
  await t.http('thumb of text', 'GET', `${base}/${txt}?thumb=100x100`, { keep: ['content-disposition'] });
  await t.http('unknown name', 'GET', `${base}/nope.txt`);
  await t.http('unknown record', 'GET', `/api/files/${collection.name}/aaaaaaaaaaaaaaa/${txt}`);
  await t.http('unknown collection', 'GET', `/api/files/nope_nope/${rec.id}/${txt}`);
  await t.record('getURL', t.su.files.getURL(rec, png, { thumb: '20x0' }).replace(t.su.baseURL, '').replace(rec.id, '<record>'));
}

export async function protectedFiles(t) {
  const collection = await docs(t, { viewRule: 'owner = @request.auth.id' });
  const one = await createUser(t, 'one');
  const two = await createUser(t, 'two');
  const rec = await t.su.collection(collection.name).create({
    owner: one.record.id,
    secret: file('classified', 'secret.txt'),
  });
  const path = `/api/files/${collection.name}/${rec.id}/${rec.secret}`;
  await t.http('no token', 'GET', path);
  await t.http('auth header ignored', 'GET', path, { auth: one.client.authStore.token });
  await t.http('auth token as ?token', 'GET', `${path}?token=${one.client.authStore.token}`);
  const otherToken = await two.client.files.getToken();
  await t.http('other user', 'GET', `${path}?token=${otherToken}`);
  const ownerToken = await one.client.files.getToken();
  await t.http('owner', 'GET', `${path}?token=${ownerToken}`, { keep: ['content-type'] });
  await t.http('token as guest', 'POST', '/api/files/token');
}
// Uploads through the records API are not wired yet (#7): these scenarios need them.
