// Hostile and odd input the other areas do not cover: how request bodies are recognised and
// decoded (Content-Type spelling, trailing data, duplicate keys, bad percent-encoding), odd query
// strings, odd Authorization headers, routing edges (slashes, case, encoded names, long ids),
// the order of the checks on the auth routes (collection, then token, then type), the
// superuser-only refusals of the auth routes, and wrong value types in the auth forms.
// Every request here must also never be answered with a 500.

import { createBase } from '../lib/fixtures.mjs';

const PASSWORD = 'user-pass-123';
const JSON_CT = { 'Content-Type': 'application/json' };

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** An auth collection with email and username identities and OTP on; one user in it. */
async function authSetup(t, extra = {}, prefix = '') {
  const name = t.coll(`${prefix}pusers`);
  const coll = await t.su.collections.create({
    name,
    type: 'auth',
    listRule: '',
    viewRule: '',
    createRule: '',
    updateRule: 'id = @request.auth.id',
    deleteRule: 'id = @request.auth.id',
    fields: [{ name: 'username', type: 'text' }],
    indexes: [`CREATE UNIQUE INDEX idx_pun_${prefix}${t.tag} ON ${name} (username) WHERE username != ''`],
    passwordAuth: { enabled: true, identityFields: ['email', 'username'] },
    otp: { enabled: true, duration: 180, length: 8 },
    ...extra,
  });
  const email = t.email(`${prefix}pu1`);
  const record = await t.su.collection(name).create({
    email, username: `${prefix}pu1_${t.tag}`, password: PASSWORD, passwordConfirm: PASSWORD,
  });
  if (extra.mfa?.enabled) return { coll, name, email, record, token: null };
  const pb = t.client();
  await pb.collection(name).authWithPassword(email, PASSWORD);
  return { coll, name, email, record, token: pb.authStore.token };
}

const tokenPresence = (b) => (b && typeof b.token === 'string'
  ? { token: '<token>', email: b.record?.email ?? null } : b);
const titleOnly = (b) => (b && 'title' in b ? { title: b.title } : b);
const itemTitles = (b) => (b && Array.isArray(b.items)
  ? { titles: b.items.map((i) => i.title), perPage: b.perPage, page: b.page } : b);

function b64(o) {
  return Buffer.from(JSON.stringify(o)).toString('base64url');
}
function unsignedJwt(claims) {
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`;
}

// ---------------------------------------------------------------------------------------------
// Request bodies: which Content-Type is read, and how JSON is decoded

export async function bodyContentTypeSpelling(t) {
  // PocketBase matches the type by a case-sensitive prefix: `application/json…` is JSON
  // (even `application/jsonx`), `APPLICATION/JSON` or an empty header is not.
  const c = await createBase(t, 'ctspell', [{ name: 'title', type: 'text' }]);
  const url = `/api/collections/${c.name}/records`;
  const body = '{"title":"x"}';
  await t.http('upper-case json', 'POST', url,
    { body, headers: { 'Content-Type': 'APPLICATION/JSON' }, shape: titleOnly });
  await t.http('mixed-case json', 'POST', url,
    { body, headers: { 'Content-Type': 'Application/Json' }, shape: titleOnly });
  await t.http('empty content-type', 'POST', url,
    { body, headers: { 'Content-Type': '' }, shape: titleOnly });
  await t.http('application/jsonx', 'POST', url,
    { body, headers: { 'Content-Type': 'application/jsonx' }, shape: titleOnly });
  await t.http('json with a parameter', 'POST', url,
    { body, headers: { 'Content-Type': 'application/json;foo=bar' }, shape: titleOnly });
  await t.http('upper-case form', 'POST', url,
    { body: 'title=x', headers: { 'Content-Type': 'APPLICATION/X-WWW-FORM-URLENCODED' }, shape: titleOnly });
  await t.http('upper-case multipart', 'POST', url, {
    body: '--xyz\r\nContent-Disposition: form-data; name="title"\r\n\r\nx\r\n--xyz--\r\n',
    headers: { 'Content-Type': 'Multipart/Form-Data; boundary=xyz' },
    shape: titleOnly,
  });
  await t.http('vnd json', 'POST', url,
    { body, headers: { 'Content-Type': 'application/vnd.api+json' }, shape: titleOnly });
}

export async function bodyContentTypeOnAuthRoutes(t) {
  const u = await authSetup(t);
  const body = JSON.stringify({ identity: u.email, password: PASSWORD });
  const path = `/api/collections/${u.name}/auth-with-password`;
  await t.http('login, upper-case json', 'POST', path,
    { body, headers: { 'Content-Type': 'APPLICATION/JSON' }, shape: tokenPresence });
  await t.http('login, empty content-type', 'POST', path,
    { body, headers: { 'Content-Type': '' }, shape: tokenPresence });
  await t.http('request-otp, upper-case json', 'POST', `/api/collections/${u.name}/request-otp`, {
    body: JSON.stringify({ email: u.email }),
    headers: { 'Content-Type': 'APPLICATION/JSON' },
    shape: (b) => (b?.otpId ? { otpId: 'present' } : b),
  });
  await t.http('collection create, upper-case json', 'POST', '/api/collections', {
    auth: 'su',
    body: JSON.stringify({ name: t.coll('upct'), type: 'base' }),
    headers: { 'Content-Type': 'APPLICATION/JSON' },
    shape: (b) => (b?.name ? { name: b.name } : b),
  });
}

export async function jsonTrailingData(t) {
  // PocketBase decodes the first JSON value and ignores what follows it.
  const c = await createBase(t, 'trail', [{ name: 'title', type: 'text' }]);
  const u = await authSetup(t);
  const url = `/api/collections/${c.name}/records`;
  await t.http('object then garbage', 'POST', url,
    { body: '{"title":"a"} xx', headers: JSON_CT, shape: titleOnly });
  await t.http('two objects', 'POST', url,
    { body: '{"title":"a"}{"title":"b"}', headers: JSON_CT, shape: titleOnly });
  await t.http('object then bracket', 'POST', url,
    { body: '{"title":"a"}]', headers: JSON_CT, shape: titleOnly });
  await t.http('login then garbage', 'POST', `/api/collections/${u.name}/auth-with-password`, {
    body: `${JSON.stringify({ identity: u.email, password: PASSWORD })} x`,
    headers: JSON_CT,
    shape: tokenPresence,
  });
}

export async function jsonDuplicateKeys(t) {
  // PocketBase refuses a JSON object that names a key twice, at any depth.
  const c = await createBase(t, 'dupk', [{ name: 'title', type: 'text' }]);
  const u = await authSetup(t);
  const url = `/api/collections/${c.name}/records`;
  await t.http('duplicate field', 'POST', url,
    { body: '{"title":"a","title":"b"}', headers: JSON_CT, shape: titleOnly });
  await t.http('duplicate nested key', 'POST', url,
    { body: '{"title":"a","x":{"k":1,"k":2}}', headers: JSON_CT, shape: titleOnly });
  await t.http('duplicate identity', 'POST', `/api/collections/${u.name}/auth-with-password`, {
    body: `{"identity":"nobody@example.com","identity":"${u.email}","password":"${PASSWORD}"}`,
    headers: JSON_CT,
    shape: tokenPresence,
  });
}

export async function formBadPercentEncoding(t) {
  const c = await createBase(t, 'formpct', [{ name: 'title', type: 'text' }]);
  const url = `/api/collections/${c.name}/records`;
  const form = { 'Content-Type': 'application/x-www-form-urlencoded' };
  await t.http('bad escape', 'POST', url, { body: 'title=%zz', headers: form, shape: titleOnly });
  await t.http('good escape', 'POST', url, { body: 'title=%41b', headers: form, shape: titleOnly });
  await t.http('repeated key', 'POST', url, { body: 'title=a&title=b', headers: form, shape: titleOnly });
}

export async function oddBodiesThatAgree(t) {
  // Regression: odd bodies both servers already treat alike.
  const c = await createBase(t, 'oddb', [{ name: 'title', type: 'text' }]);
  const url = `/api/collections/${c.name}/records`;
  await t.http('byte order mark', 'POST', url,
    { body: '\ufeff{"title":"a"}', headers: JSON_CT, shape: titleOnly });
  await t.http('invalid utf-8', 'POST', url, {
    body: Buffer.from([0x7b, 0x22, 0x74, 0x69, 0x74, 0x6c, 0x65, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
    headers: JSON_CT,
    shape: titleOnly,
  });
  await t.http('number body', 'POST', url, { body: '42', headers: JSON_CT });
  await t.http('multipart without boundary', 'POST', url,
    { body: '--x\r\n', headers: { 'Content-Type': 'multipart/form-data' } });
  await t.http('multipart garbage', 'POST', url,
    { body: 'garbage', headers: { 'Content-Type': 'multipart/form-data; boundary=xyz' } });
  await t.http('multipart truncated', 'POST', url, {
    body: '--xyz\r\nContent-Disposition: form-data; name="title"\r\n\r\nhi',
    headers: { 'Content-Type': 'multipart/form-data; boundary=xyz' },
  });
  await t.http('bad @jsonPayload', 'POST', url, {
    body: '--xyz\r\nContent-Disposition: form-data; name="@jsonPayload"\r\n\r\n{bad\r\n--xyz--\r\n',
    headers: { 'Content-Type': 'multipart/form-data; boundary=xyz' },
  });
  await t.http('title as object', 'POST', url, { json: { title: { a: 1 } }, shape: titleOnly });
  await t.http('id too long', 'POST', url, { json: { id: 'abcdefghijklmnop' } });
  await t.http('id with bad chars', 'POST', url, { json: { id: 'ABC def ghi jkl' } });
  await t.http('id as number', 'POST', url, { json: { id: 123456789012345 } });
}

// ---------------------------------------------------------------------------------------------
// Query strings

export async function queryBadPercentEncoding(t) {
  // PocketBase (Go's url.Query) drops a pair it cannot decode, and a pair holding `;`.
  const c = await createBase(t, 'qpct', [{ name: 'title', type: 'text' }]);
  for (const title of ['a', 'b', 'c']) await t.su.collection(c.name).create({ title });
  const url = `/api/collections/${c.name}/records`;
  await t.http('bad escape in filter', 'GET', `${url}?filter=%zz&sort=title`, { shape: itemTitles });
  await t.http('bad escape in sort', 'GET', `${url}?sort=%zz`, {
    shape: (b) => (b?.items ? { count: b.items.length } : b),
  });
  await t.http('semicolon in a pair', 'GET', `${url}?sort=-title;x=1`, { shape: itemTitles });
}

export async function queryDuplicatesAndOddNumbers(t) {
  // Regression: the first value of a repeated parameter wins; odd numbers are clamped alike.
  const c = await createBase(t, 'qdup', [{ name: 'title', type: 'text' }]);
  for (const title of ['a', 'b', 'c']) await t.su.collection(c.name).create({ title });
  const url = `/api/collections/${c.name}/records`;
  for (const q of ['sort=title&sort=-title', "filter=title%3D'a'&filter=title%3D'b'&sort=title",
    'perPage=1&perPage=2&sort=title', 'page=2&page=1&perPage=1&sort=title',
    'skipTotal=1&skipTotal=0&sort=title', '=x&sort=title', 'perPage=-1&sort=title',
    'perPage=0&sort=title', 'perPage=1000&sort=title', 'page=0&sort=title', 'page=-5&sort=title',
    'perPage=1.9&sort=title', 'perPage=0x1&sort=title', 'sort=title,', 'sort=--title',
    'sort=%2Btitle', 'sort=%20title%20', 'sort=-@rowid']) {
    await t.http(q, 'GET', `${url}?${q}`, { shape: itemTitles });
  }
  await t.http('deep parentheses', 'GET',
    `${url}?filter=${encodeURIComponent(`${'('.repeat(500)}title='a'${')'.repeat(500)}`)}`,
    { shape: itemTitles });
  await t.http('fields oddities', 'GET', `${url}?fields=*,title:excerpt(abc)&sort=title`,
    { shape: itemTitles });
  await t.http('expand garbage', 'GET', `${url}?expand=...&sort=title`, { shape: itemTitles });
}

export async function filterNulByte(t) {
  const c = await createBase(t, 'qnul', [{ name: 'title', type: 'text' }]);
  await t.su.collection(c.name).create({ title: 'a' });
  await t.http('NUL inside a string literal', 'GET',
    `/api/collections/${c.name}/records?filter=${encodeURIComponent("title='\u0000'")}`,
    { shape: itemTitles });
}

// ---------------------------------------------------------------------------------------------
// Authorization header forms

export async function authorizationHeaderForms(t) {
  const u = await authSetup(t);
  const refresh = `/api/collections/${u.name}/auth-refresh`;
  const shape = tokenPresence;
  await t.http('Bearer + token', 'POST', refresh, { auth: `Bearer ${u.token}`, shape });
  await t.http('bearer (lower case) + token', 'POST', refresh, { auth: `bearer ${u.token}`, shape });
  await t.http('BEARER + token', 'POST', refresh, { auth: `BEARER ${u.token}`, shape });
  await t.http('Bearer, tab, token', 'POST', refresh, { auth: `Bearer\t${u.token}`, shape });
  await t.http('Bearer without space', 'POST', refresh, { auth: `Bearer${u.token}`, shape });
  await t.http('Bearer Bearer token', 'POST', refresh, { auth: `Bearer Bearer ${u.token}`, shape });
  await t.http('Token + token', 'POST', refresh, { auth: `Token ${u.token}`, shape });
  await t.http('Basic credentials', 'POST', refresh, {
    auth: `Basic ${Buffer.from(`${u.email}:${PASSWORD}`).toString('base64')}`, shape,
  });
  await t.http('token, comma, garbage', 'POST', refresh, { auth: `${u.token}, x`, shape });
  await t.http('Bearer alone', 'POST', refresh, { headers: { Authorization: 'Bearer ' }, shape });
  await t.http('empty header on a list', 'GET', `/api/collections/${u.name}/records?fields=id`,
    { headers: { Authorization: '' } });
  const claims = JSON.parse(Buffer.from(u.token.split('.')[1], 'base64url'));
  await t.http('alg none with the real claims', 'POST', refresh,
    { auth: unsignedJwt(claims), shape });
  const suClaims = JSON.parse(Buffer.from(t.suToken.split('.')[1], 'base64url'));
  await t.http('alg none superuser claims on a superuser list', 'GET',
    '/api/collections/_superusers/records', { auth: unsignedJwt(suClaims) });
}

export async function authorizationBearerDoubleSpace(t) {
  // PocketBase strips exactly "Bearer " (any case); a second space stays in the token.
  const u = await authSetup(t);
  await t.http('Bearer, two spaces, token', 'POST', `/api/collections/${u.name}/auth-refresh`,
    { auth: `Bearer  ${u.token}`, shape: tokenPresence });
}

// ---------------------------------------------------------------------------------------------
// Routing edges

export async function routingEdges(t) {
  const c = await createBase(t, 'route', [{ name: 'title', type: 'text' }]);
  const list = `/api/collections/${c.name}/records`;
  for (const [label, path] of [
    ['trailing slash on a list', `${list}/`],
    ['trailing slash on health', '/api/health/'],
    ['upper-case API', `/API/collections/${c.name}/records`],
    ['upper-case Records', `/api/collections/${c.name}/Records`],
    ['upper-case collection name', `/api/collections/${c.name.toUpperCase()}/records?fields=id`],
    ['dot-dot collection', '/api/collections/../records'],
    ['encoded dot-dot collection', '/api/collections/%2e%2e/records'],
    ['NUL in a collection name', '/api/collections/us%00ers/records'],
    ['unicode collection name', '/api/collections/%C3%BCsers/records'],
    ['encoded slash in a name', '/api/collections/users%2Frecords/records'],
    ['5000-char collection name', `/api/collections/${'a'.repeat(5000)}/records`],
    ['dot-dot record id', `${list}/..`],
    ['NUL in a record id', `${list}/abc%00`],
    ['3000-char record id', `${list}/${'a'.repeat(3000)}`],
    ['unicode record id', `${list}/%C3%BC`],
    ['quote in a record id', `${list}/a'or'1'='1`],
    ['api root', '/api/'],
    ['site root', '/'],
  ]) {
    await t.http(label, 'GET', path);
  }
  await t.http('superuser, 3000-char id', 'GET', `${list}/${'a'.repeat(3000)}`, { auth: 'su' });
  await t.http('superuser, NUL collection view', 'GET', '/api/collections/%00', { auth: 'su' });
  await t.http('double slash', 'GET', `/api//collections/${c.name}/records`);
  await t.http('HEAD on a list', 'HEAD', list);
  await t.http('HEAD on an unknown route', 'HEAD', '/api/nope');
  await t.http('HEAD on a superuser list', 'HEAD', '/api/collections');
  await t.http('PUT on collections', 'PUT', '/api/collections', { json: {} });
  await t.http('DELETE on collections', 'DELETE', '/api/collections');
  await t.http('POST on settings', 'POST', '/api/settings', { json: {}, auth: 'su' });
  await t.http('PROPFIND on health', 'PROPFIND', '/api/health');
  await t.http('POST on auth-methods', 'POST', `/api/collections/${c.name}/auth-methods`);
  await t.http('GET on auth-refresh', 'GET', `/api/collections/${c.name}/auth-refresh`);
}

export async function corsPreflightEdges(t) {
  const keep = ['access-control-allow-origin', 'access-control-allow-methods', 'vary'];
  await t.http('OPTIONS without Origin', 'OPTIONS', '/api/health', { keep });
  await t.http('OPTIONS on an unknown route', 'OPTIONS', '/api/nope', {
    headers: { Origin: 'https://x.example.com', 'Access-Control-Request-Method': 'GET' }, keep,
  });
  await t.http('OPTIONS asking for PUT', 'OPTIONS', '/api/collections/users/records', {
    headers: { Origin: 'https://x.example.com', 'Access-Control-Request-Method': 'PUT' }, keep,
  });
  await t.http('OPTIONS without a request method', 'OPTIONS', '/api/collections/users/records', {
    headers: { Origin: 'https://x.example.com' }, keep,
  });
}

export async function oversizedHeaders(t) {
  await t.http('60 kB header', 'GET', '/api/health', { headers: { 'X-Big': 'a'.repeat(60000) } });
  await t.http('60 kB Authorization', 'GET', '/api/collections/users/records?fields=id',
    { headers: { Authorization: 'a'.repeat(60000) } });
  await t.http('1.1 MB header', 'GET', '/api/health', { headers: { 'X-Big': 'a'.repeat(1100000) } });
}

oversizedHeaders.known = {
  id: 'KD-12',
  expect(plinth) {
    for (const label of ['60 kB header', '60 kB Authorization']) {
      if (plinth[label].status >= 400 && plinth[label].status !== 401) {
        throw new Error(`${label}: ${plinth[label].status}`);
      }
    }
    if (plinth['1.1 MB header'].status !== 431) {
      throw new Error(`1.1 MB header: ${plinth['1.1 MB header'].status}, expected 431`);
    }
  },
};

export async function oversizedBody(t) {
  // A body past the 32 MiB limit: PocketBase answers 413 and the client reads it.
  const c = await createBase(t, 'bigbody', [{ name: 'title', type: 'text', max: 0 }]);
  await t.http('33 MiB json body', 'POST', `/api/collections/${c.name}/records`, {
    body: `{"title":"${'a'.repeat(33 * 1024 * 1024)}"}`,
    headers: JSON_CT,
    shape: (b) => (b && 'title' in b ? { titleLength: b.title.length } : b),
  });
}

// ---------------------------------------------------------------------------------------------
// The order of the checks on the auth routes

export async function authRouteUnknownCollectionBeforeToken(t) {
  // PocketBase looks up the collection of every auth route first (404), then the token (401).
  const nosuch = t.coll('nosuch');
  for (const r of ['auth-refresh', 'request-email-change']) {
    await t.http(`${r}, no token`, 'POST', `/api/collections/${nosuch}/${r}`, { json: {} });
    await t.http(`${r}, garbage token`, 'POST', `/api/collections/${nosuch}/${r}`,
      { json: {}, auth: 'abc' });
    await t.http(`${r}, superuser token`, 'POST', `/api/collections/${nosuch}/${r}`,
      { json: {}, auth: 'su' });
  }
}

export async function authRouteNonAuthCollectionWithToken(t) {
  // With a valid token, a base (or view) collection is "not the token's collection" (403).
  const u = await authSetup(t);
  const base = await createBase(t, 'plain', [{ name: 'title', type: 'text' }]);
  const view = await t.su.collections.create({
    name: t.coll('pview'), type: 'view', listRule: '', viewRule: '',
    viewQuery: `SELECT id, email FROM ${u.name}`,
  });
  for (const c of [base.name, view.name]) {
    for (const r of ['auth-refresh', 'request-email-change']) {
      await t.http(`${r} on ${c === base.name ? 'base' : 'view'}, user token`, 'POST',
        `/api/collections/${c}/${r}`, { json: {}, auth: u.token });
      await t.http(`${r} on ${c === base.name ? 'base' : 'view'}, superuser token`, 'POST',
        `/api/collections/${c}/${r}`, { json: {}, auth: 'su' });
      await t.http(`${r} on ${c === base.name ? 'base' : 'view'}, no token`, 'POST',
        `/api/collections/${c}/${r}`, { json: {} });
    }
  }
}

export async function authRouteOrderThatAgrees(t) {
  // Regression: the combinations both servers already agree on.
  const u = await authSetup(t);
  const base = await createBase(t, 'plain', [{ name: 'title', type: 'text' }]);
  const nosuch = t.coll('nosuch');
  for (const r of ['auth-with-password', 'request-otp', 'auth-with-otp', 'request-verification',
    'confirm-verification', 'request-password-reset', 'confirm-password-reset',
    'confirm-email-change', 'auth-with-oauth2']) {
    await t.http(`${r} on unknown`, 'POST', `/api/collections/${nosuch}/${r}`, { json: {} });
    await t.http(`${r} on base`, 'POST', `/api/collections/${base.name}/${r}`, { json: {} });
  }
  await t.http('auth-methods on base', 'GET', `/api/collections/${base.name}/auth-methods`);
  await t.http('refresh on base, no token', 'POST', `/api/collections/${base.name}/auth-refresh`);
  await t.http('user token on _superusers refresh', 'POST',
    '/api/collections/_superusers/auth-refresh', { auth: u.token });
  await t.http('refresh by collection id', 'POST', `/api/collections/${u.coll.id}/auth-refresh`,
    { auth: u.token, shape: tokenPresence });
  await t.http('impersonate by a user', 'POST',
    `/api/collections/${u.name}/impersonate/${u.record.id}`, { auth: u.token, json: {} });
}

export async function impersonateUnknownCollection(t) {
  await t.http('superuser, unknown collection', 'POST',
    `/api/collections/${t.coll('nosuch')}/impersonate/abcdefghijklmno`, { auth: 'su', json: {} });
  await t.http('guest, unknown collection', 'POST',
    `/api/collections/${t.coll('nosuch')}/impersonate/abcdefghijklmno`, { json: {} });
}

export async function impersonateOddBodies(t) {
  const u = await authSetup(t);
  const path = `/api/collections/${u.name}/impersonate/${u.record.id}`;
  const shape = (b) => (b?.token ? { token: '<token>' } : b);
  for (const [label, json] of [['duration as string', { duration: '100' }],
    ['duration as float', { duration: 1.5 }], ['duration null', { duration: null }],
    ['duration huge', { duration: 1e20 }], ['array body', [1]]]) {
    await t.http(label, 'POST', path, { auth: 'su', json, shape });
  }
  await t.http('no body', 'POST', path, { auth: 'su', shape });
}

// ---------------------------------------------------------------------------------------------
// Superusers on the auth routes

export async function superuserVerificationRefused(t) {
  // PocketBase refuses these for _superusers before reading the body.
  const base = '/api/collections/_superusers';
  await t.http('request-verification, valid email', 'POST', `${base}/request-verification`,
    { json: { email: t.suEmail } });
  await t.http('request-verification, empty body', 'POST', `${base}/request-verification`,
    { json: {} });
  await t.http('request-verification, broken json', 'POST', `${base}/request-verification`,
    { body: '{', headers: JSON_CT });
  await t.http('confirm-verification, garbage token', 'POST', `${base}/confirm-verification`,
    { json: { token: 'abc' } });
  await t.http('confirm-verification, empty body', 'POST', `${base}/confirm-verification`,
    { json: {} });
}

export async function superuserEmailChangeRefused(t) {
  const email = t.email('su2');
  const su2 = await t.su.collection('_superusers').create({
    email, password: PASSWORD, passwordConfirm: PASSWORD,
  });
  const pb = t.client();
  await pb.collection('_superusers').authWithPassword(email, PASSWORD);
  const base = '/api/collections/_superusers';
  await t.http('request-email-change, valid new email', 'POST', `${base}/request-email-change`,
    { json: { newEmail: t.email('su2-new') }, auth: pb.authStore.token });
  await t.http('request-email-change, empty body', 'POST', `${base}/request-email-change`,
    { json: {}, auth: pb.authStore.token });
  await t.http('confirm-email-change, any body', 'POST', `${base}/confirm-email-change`,
    { json: { token: 'abc', password: 'x' } });
  await t.http('confirm-email-change, broken json', 'POST', `${base}/confirm-email-change`,
    { body: '[', headers: JSON_CT });
  await t.sdk('email unchanged', () => t.su.collection('_superusers').getOne(su2.id),
    (r) => r.email === email);
}

export async function superuserAlwaysVerified(t) {
  const created = await t.sdk('create with verified false', () =>
    t.su.collection('_superusers').create({
      email: t.email('su3'), password: PASSWORD, passwordConfirm: PASSWORD, verified: false,
    }), (r) => ({ verified: r.verified }));
  await t.sdk('create without verified', () =>
    t.su.collection('_superusers').create({
      email: t.email('su4'), password: PASSWORD, passwordConfirm: PASSWORD,
    }), (r) => ({ verified: r.verified }));
  await t.sdk('update to verified false', () =>
    t.su.collection('_superusers').update(created?.id, { verified: false }),
    (r) => ({ verified: r.verified }));
}

// ---------------------------------------------------------------------------------------------
// Auth forms: wrong types and lengths

export async function authPasswordOddIdentity(t) {
  // Regression: identity/identityField types and values both servers already agree on.
  const u = await authSetup(t);
  await t.su.collection(u.name).create({
    email: t.email('pu2'), username: '12345', password: PASSWORD, passwordConfirm: PASSWORD,
  });
  const path = `/api/collections/${u.name}/auth-with-password`;
  const cases = [
    ['identity object', { identity: { a: 1 }, password: PASSWORD }],
    ['identity array', { identity: [u.email], password: PASSWORD }],
    ['identity bool', { identity: true, password: PASSWORD }],
    ['identity number equal to a username', { identity: 12345, password: PASSWORD }],
    ['numeric username as a string', { identity: '12345', password: PASSWORD }],
    ['identity and password empty', { identity: '', password: '' }],
    ['identity padded with spaces', { identity: ` ${u.email} `, password: PASSWORD }],
    ['identity is the record id', { identity: u.record.id, password: PASSWORD }],
    ['identityField number', { identity: u.email, password: PASSWORD, identityField: 5 }],
    ['identityField empty', { identity: u.email, password: PASSWORD, identityField: '' }],
    ['identityField id', { identity: u.record.id, password: PASSWORD, identityField: 'id' }],
    ['identityField password', { identity: u.email, password: PASSWORD, identityField: 'password' }],
    ['identityField EMAIL', { identity: u.email, password: PASSWORD, identityField: 'EMAIL' }],
    ['identityField username, numeric', { identity: '12345', password: PASSWORD, identityField: 'username' }],
    ['unknown extra key', { identity: u.email, password: PASSWORD, foo: [1, 2] }],
    ['mfaId empty (mfa off)', { identity: u.email, password: PASSWORD, mfaId: '' }],
    ['mfaId null (mfa off)', { identity: u.email, password: PASSWORD, mfaId: null }],
  ];
  for (const [label, json] of cases) await t.http(label, 'POST', path, { json, shape: tokenPresence });
  await t.http('json array body', 'POST', path,
    { body: JSON.stringify([{ identity: u.email, password: PASSWORD }]), headers: JSON_CT });
  await t.http('json string body', 'POST', path, { body: '"hi"', headers: JSON_CT });
  await t.http('query string instead of a body', 'POST',
    `${path}?identity=${encodeURIComponent(u.email)}&password=${PASSWORD}`);
  const form = new FormData();
  form.set('identity', u.email);
  form.set('password', PASSWORD);
  await t.http('multipart body', 'POST', path, { body: form, shape: tokenPresence });
}

export async function authMfaIdWrongType(t) {
  // PocketBase reads mfaId with a cast, not through the form: a non-string is ignored while
  // MFA is off, and is "Failed to read MFA Id." while it is on.
  const u = await authSetup(t);
  const m = await authSetup(t, { mfa: { enabled: true, duration: 600, rule: '' } }, 'm');
  for (const [label, mfaId] of [['number', 5], ['array', ['a']], ['object', {}]]) {
    await t.http(`mfa off, mfaId ${label}`, 'POST', `/api/collections/${u.name}/auth-with-password`,
      { json: { identity: u.email, password: PASSWORD, mfaId }, shape: tokenPresence });
    await t.http(`mfa on, mfaId ${label}`, 'POST', `/api/collections/${m.name}/auth-with-password`,
      { json: { identity: m.email, password: PASSWORD, mfaId }, shape: tokenPresence });
  }
  await t.http('auth-with-otp, mfaId number', 'POST', `/api/collections/${u.name}/auth-with-otp`,
    { json: { otpId: 'abcdefghijklmno', password: '12345678', mfaId: 5 } });
  await t.http('mfa on, unknown mfaId string', 'POST', `/api/collections/${m.name}/auth-with-password`,
    { json: { identity: m.email, password: PASSWORD, mfaId: 'abcdefghijklmno' } });
}

export async function authFieldLengths(t) {
  // PocketBase caps emails and ids in the auth forms at 255 characters.
  const u = await authSetup(t);
  const base = `/api/collections/${u.name}`;
  const long = `${'a'.repeat(300)}@example.com`;
  await t.http('request-verification, 312-char email', 'POST', `${base}/request-verification`,
    { json: { email: long } });
  await t.http('request-email-change, 312-char email', 'POST', `${base}/request-email-change`,
    { json: { newEmail: long }, auth: u.token });
  await t.http('request-password-reset, 312-char email', 'POST', `${base}/request-password-reset`,
    { json: { email: long } });
  await t.http('auth-with-otp, 500-char otpId', 'POST', `${base}/auth-with-otp`,
    { json: { otpId: 'a'.repeat(500), password: '1'.repeat(500) } });
}

export async function authFieldLengthsThatAgree(t) {
  const u = await authSetup(t);
  const base = `/api/collections/${u.name}`;
  const long = `${'a'.repeat(300)}@example.com`;
  await t.http('request-otp, 312-char email', 'POST', `${base}/request-otp`, { json: { email: long } });
  await t.http('request-password-reset, email object', 'POST', `${base}/request-password-reset`,
    { json: { email: {} } });
  await t.http('request-otp, email array', 'POST', `${base}/request-otp`, { json: { email: [u.email] } });
  await t.http('auth-with-otp, otpId number', 'POST', `${base}/auth-with-otp`,
    { json: { otpId: 5, password: '12345678' } });
  await t.http('auth-with-otp, short otpId', 'POST', `${base}/auth-with-otp`,
    { json: { otpId: 'abc', password: '12345678' } });
  await t.http('confirm-password-reset, numbers', 'POST', `${base}/confirm-password-reset`,
    { json: { token: 'abc', password: 12345678, passwordConfirm: 12345678 } });
  await t.http('confirm-verification, token number', 'POST', `${base}/confirm-verification`,
    { json: { token: 5 } });
  await t.http('confirm-email-change, token array', 'POST', `${base}/confirm-email-change`,
    { json: { token: [], password: 'x' } });
  await t.http('request-email-change, newEmail number', 'POST', `${base}/request-email-change`,
    { json: { newEmail: 5 }, auth: u.token });
}

// ---------------------------------------------------------------------------------------------
// Forged and misused tokens on the confirm routes

export async function confirmRoutesForgedTokens(t) {
  const u = await authSetup(t);
  const base = `/api/collections/${u.name}`;
  const claims = JSON.parse(Buffer.from(u.token.split('.')[1], 'base64url'));
  const ver = { id: u.record.id, collectionId: claims.collectionId, email: u.email, exp: 9999999999 };
  await t.http('verification, alg none, real claims', 'POST', `${base}/confirm-verification`,
    { json: { token: unsignedJwt({ ...ver, type: 'verification' }) } });
  await t.http('verification, a.b.c', 'POST', `${base}/confirm-verification`, { json: { token: 'a.b.c' } });
  await t.http('verification, superuser auth token', 'POST', `${base}/confirm-verification`,
    { json: { token: t.suToken } });
  await t.http('reset, alg none, real claims', 'POST', `${base}/confirm-password-reset`, {
    json: { token: unsignedJwt({ ...ver, type: 'passwordReset' }), password: 'x12345678', passwordConfirm: 'x12345678' },
  });
  await t.http('reset, superuser auth token', 'POST', `${base}/confirm-password-reset`,
    { json: { token: t.suToken, password: 'x12345678', passwordConfirm: 'x12345678' } });
  await t.http('email change, alg none', 'POST', `${base}/confirm-email-change`, {
    json: { token: unsignedJwt({ ...ver, type: 'emailChange', newEmail: t.email('x') }), password: PASSWORD },
  });
  await t.http('email change, a.b.c', 'POST', `${base}/confirm-email-change`,
    { json: { token: 'a.b.c', password: PASSWORD } });
  await t.http('file token as auth', 'POST', `${base}/auth-refresh`, {
    auth: (await t.client(u.token).files.getToken()),
  });
}

export async function confirmVerificationNoCollectionClaim(t) {
  // An unsigned token with an email but no collectionId and an unknown id.
  const u = await authSetup(t);
  await t.http('alg none, id abc, email, no collectionId', 'POST',
    `/api/collections/${u.name}/confirm-verification`, {
      json: { token: unsignedJwt({ id: 'abc', type: 'verification', email: u.email, exp: 9999999999 }) },
    });
}

export async function expiredAndOrphanTokens(t) {
  // A token past its expiry, and one whose collection was deleted.
  const short = await authSetup(t, { authToken: { duration: 10 } });
  const other = await t.su.collections.create({ name: t.coll('gone'), type: 'auth', fields: [] });
  await t.su.collection(other.name).create({
    email: t.email('gone'), password: PASSWORD, passwordConfirm: PASSWORD,
  });
  const pb = t.client();
  await pb.collection(other.name).authWithPassword(t.email('gone'), PASSWORD);
  const goneToken = pb.authStore.token;
  await t.su.collections.delete(other.id);
  await sleep(11500);
  await t.http('expired: refresh', 'POST', `/api/collections/${short.name}/auth-refresh`,
    { auth: short.token });
  await t.http('expired: list as guest', 'GET', `/api/collections/${short.name}/records?fields=id`,
    { auth: short.token });
  await t.http('expired: file token', 'POST', '/api/files/token', { auth: short.token });
  await t.http('expired: impersonate', 'POST',
    `/api/collections/${short.name}/impersonate/${short.record.id}`, { auth: short.token, json: {} });
  await t.http('deleted collection: refresh there', 'POST',
    `/api/collections/${other.name}/auth-refresh`, { auth: goneToken });
  await t.http('deleted collection: file token', 'POST', '/api/files/token', { auth: goneToken });
}
