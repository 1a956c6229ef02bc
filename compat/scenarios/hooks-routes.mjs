// JS hooks (compat/hooks/pb_hooks/routes.pb.js): custom routes, middlewares and their order,
// the $apis auth middlewares, path params and requestInfo(), response helpers, and the answers
// PocketBase gives for the JS error classes. Runs against the hook server pair.

import { createUser } from '../lib/fixtures.mjs';

export async function middlewareOrder(t) {
  // Globals 0, -1, -2000; route 0, -5, 10: one list stably sorted by priority, globals first
  // on ties; the -2000 global runs before the auth token is loaded.
  await t.http('guest', 'GET', '/hk/seq');
  await t.http('superuser', 'GET', '/hk/seq', { auth: 'su' });
  await t.http('middleware passes', 'GET', '/hk/short-circuit');
  await t.http('middleware answers itself', 'GET', '/hk/short-circuit?stop=1');
}

export async function authMiddlewares(t) {
  const { client } = await createUser(t, 'mw');
  const user = client.authStore.token;
  for (const path of ['/hk/auth/any', '/hk/auth/users', '/hk/auth/superuser', '/hk/auth/guest']) {
    await t.http(`${path} guest`, 'GET', path);
    await t.http(`${path} user`, 'GET', path, { auth: user });
    await t.http(`${path} superuser`, 'GET', path, { auth: 'su' });
  }
  await t.http('invalid token counts as a guest', 'GET', '/hk/auth/guest', { auth: 'not-a-token' });
  await t.http('Bearer prefix accepted', 'GET', '/hk/auth/any', { auth: `Bearer ${user}` });
}

export async function pathParamsAndRequestInfo(t) {
  await t.http('json body', 'POST', '/hk/info/john%20doe/a/b.txt?a=1&a=2', {
    json: { n: 5, nested: { x: [1, 2] } },
    headers: { 'X-Custom-Header': 'hv' },
  });
  await t.http('empty rest, superuser', 'POST', '/hk/info/x/?a=', {
    json: {},
    auth: 'su',
  });
  await t.http('form body is type-inferred', 'POST', '/hk/info/form/f', {
    body: new URLSearchParams('a=7&b=true&c=007&h=1&h=2'),
  });
  await t.http('wrong method is a 404', 'GET', '/hk/info/x/y');
}

export async function responses(t) {
  const keep = ['content-type', 'location'];
  await t.http('json', 'GET', '/hk/resp/json', { keep });
  await t.http('string', 'GET', '/hk/resp/string', { keep });
  await t.http('html', 'GET', '/hk/resp/html', { keep });
  await t.http('noContent', 'DELETE', '/hk/resp/nocontent', { keep });
  await t.http('redirect', 'GET', '/hk/resp/redirect', { keep });
  await t.http('nothing written', 'GET', '/hk/resp/nothing', { keep: ['content-type', 'content-length'] });
  await t.http('async handler', 'GET', '/hk/resp/async', { keep });
  await t.http('cookies and undefined values', 'GET', '/hk/resp/cookies', {
    keep: ['content-type', 'set-cookie'],
  });
}

// A HEAD of a custom route is its GET without the body (no length for a 204 or an error); a
// subtree route's root without its slash (`/hk/tree` for `/hk/tree/{path...}`) is Go's 307
// to the slash, query kept, for the route's method only, before any middleware (no security
// headers).
export async function headsAndSubtreeRoots(t) {
  const keep = ['content-type', 'content-length', 'location', 'x-frame-options'];
  await t.http('HEAD json', 'HEAD', '/hk/resp/json', { keep });
  await t.http('HEAD noContent', 'HEAD', '/hk/resp/nocontent-get', { keep });
  await t.http('HEAD redirect', 'HEAD', '/hk/resp/redirect', { keep });
  await t.http('HEAD error', 'HEAD', '/hk/err/bad', { keep });
  await t.http('tree root', 'GET', '/hk/tree?x=1', { keep });
  await t.http('tree root, HEAD', 'HEAD', '/hk/tree', { keep });
  await t.http('tree root, POST', 'POST', '/hk/tree', { keep });
  await t.http('tree with slash', 'GET', '/hk/tree/', { keep });
  await t.http('tree deeper', 'GET', '/hk/tree/a/b%20c', { keep });
  await t.http('POST subtree root', 'POST', '/hk/info/x', { keep, json: {} });
}

export async function errorAnswers(t) {
  for (const name of ['bad', 'bad-sentence', 'bad-default', 'teapot', 'unauthorized', 'forbidden',
    'notfound', 'toomany', 'internal', 'plain', 'reference', 'returned', 'missing-record',
    'caught', 'async']) {
    await t.http(name, 'GET', `/hk/err/${name}`);
  }
}

export async function requireModule(t) {
  await t.http('require lib.js', 'GET', '/hk/require');
}

export async function bodyLimit(t) {
  const post = (label, body) =>
    t.http(label, 'POST', '/hk/limited', { body, headers: { 'Content-Type': 'text/plain' } });
  await post('at the limit', '0123456789');
  await post('one byte over', '0123456789a');
  await post('two-byte characters over', '\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9');
  await post('empty', '');
}
