// HTTP basics every client meets first: health, default headers, CORS, unknown routes and
// methods.

const SECURITY_HEADERS = [
  'content-type',
  'x-content-type-options',
  'x-frame-options',
  'x-xss-protection',
  'access-control-allow-origin',
];

export async function healthRaw(t) {
  await t.http('GET health', 'GET', '/api/health', { keep: ['content-type'] });
  const head = await t.http('HEAD health', 'HEAD', '/api/health', { quiet: true });
  t.record('HEAD health status', head.status);
  t.record('HEAD health body is empty', head.text === '');
  await t.http('GET health as superuser', 'GET', '/api/health', { auth: 'su' });
}

export async function healthSdk(t) {
  await t.sdk('guest health.check()', () => t.client().health.check());
  await t.sdk('superuser health.check()', () => t.su.health.check());
}

export async function defaultHeaders(t) {
  await t.http('GET health with Origin', 'GET', '/api/health', {
    headers: { Origin: 'https://app.example.com' },
    keep: SECURITY_HEADERS,
  });
  await t.http('404 with Origin', 'GET', '/api/collections/nosuchcollection/records', {
    headers: { Origin: 'https://app.example.com' },
    keep: SECURITY_HEADERS,
  });
}

export async function corsPreflight(t) {
  const res = await t.http('OPTIONS records', 'OPTIONS', '/api/collections/users/records', {
    headers: {
      Origin: 'https://app.example.com',
      'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'content-type,authorization',
    },
    keep: ['access-control-allow-origin', 'access-control-allow-methods'],
  });
  // The allowed-headers value may be echoed with different spacing or case.
  const allowed = (res.headers['access-control-allow-headers'] ?? '')
    .toLowerCase()
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean)
    .sort();
  t.record('allowed headers', allowed);
  t.record('preflight body is empty', res.text === '');
}

export async function unknownRoutes(t) {
  await t.http('GET /api/nope', 'GET', '/api/nope');
  await t.http('POST /api/nope', 'POST', '/api/nope', { json: {} });
  await t.http('GET /api/collections/x/records/y/z', 'GET', '/api/collections/x/records/y/z');
  await t.http('DELETE /api/nope', 'DELETE', '/api/nope');
}

export async function wrongMethod(t) {
  await t.http('PUT /api/health', 'PUT', '/api/health', { json: {} });
  await t.http('DELETE /api/health', 'DELETE', '/api/health');
  await t.http('PUT records', 'PUT', '/api/collections/users/records', { json: {} });
  await t.http('POST one record', 'POST', '/api/collections/users/records/abc', { json: {} });
}

// Go's router answers a path with an empty segment with a 307 to the clean path before
// PocketBase sees the request: for every method, with no CORS or security headers. (`fetch`
// removes `.` and `..` segments itself, so only `//` is sent here; the end-to-end tests send
// those raw.)
export async function uncleanPathsRedirect(t) {
  const keep = ['location', 'content-type', 'access-control-allow-origin', 'x-frame-options'];
  const headers = { Origin: 'https://app.example.com' };
  await t.http('GET //health', 'GET', '/api//health?x=1', { headers, keep });
  await t.http('POST //batch', 'POST', '/api//batch?x=1', { headers, keep, json: {} });
  await t.http('PATCH empty collection', 'PATCH', '/api/collections//records/abc', {
    headers,
    keep,
    json: {},
  });
  await t.http('DELETE //users', 'DELETE', '/api/collections//users', { headers, keep });
}

// A HEAD is answered as the GET, without the body: a success keeps the GET's Content-Length,
// an error (PocketBase's error handler writes no body for a HEAD) and a redirect have none.
// `/_` without its slash is Go's redirect to the dashboard's subtree, query kept, before
// PocketBase's middlewares (no security headers), for GET and HEAD only.
export async function headAnswers(t) {
  const keep = ['content-length', 'content-type', 'location'];
  await t.http('health', 'HEAD', '/api/health', { keep });
  await t.http('list', 'HEAD', '/api/collections/users/records', { keep });
  await t.http('unknown collection', 'HEAD', '/api/collections/nope/records', { keep });
  await t.http('guest on a superuser route', 'HEAD', '/api/collections', { keep });
  await t.http('bad filter', 'HEAD', '/api/collections/users/records?filter=((', { keep });
  await t.http('unknown path', 'HEAD', '/nope', { keep });
  await t.http('unclean path', 'HEAD', '/api//health', { keep });
  await t.http('dashboard root, HEAD', 'HEAD', '/_?x=1', { keep });
  const redirect = ['location', 'content-type', 'content-length', 'x-frame-options'];
  await t.http('dashboard root, GET', 'GET', '/_?x=1', { keep: redirect });
  await t.http('dashboard root, POST', 'POST', '/_', { keep: ['location'] });
}

// A path parameter that is not UTF-8 is a name like any other, one that names nothing: the
// same answers as for an unknown collection, record or file, auth checks first.
export async function invalidUtf8InPathParams(t) {
  await t.http('record %FF', 'GET', '/api/collections/users/records/%FF');
  await t.http('collection %FF records', 'GET', '/api/collections/%FF/records');
  await t.http('collection %FF as guest', 'GET', '/api/collections/%FF');
  await t.http('collection %FF as superuser', 'GET', '/api/collections/%FF', { auth: 'su' });
  await t.http('auth-methods %FF', 'GET', '/api/collections/%FF/auth-methods');
  await t.http('file %FF', 'GET', '/api/files/users/%FF/x.png');
  await t.http('delete %FF', 'DELETE', '/api/collections/users/records/%FF', { auth: 'su' });
  await t.http('log %FF', 'GET', '/api/logs/%FF', { auth: 'su' });
}
