// Authentication through the SDK: superuser login, refresh, the token's shape and the failures
// a client sees. (Auth flows for ordinary auth collections are added by the auth issue.)

export async function superuserAuthWithPassword(t) {
  const pb = t.client();
  const auth = await t.sdk('authWithPassword', () =>
    pb.collection('_superusers').authWithPassword(t.suEmail, t.suPassword),
  );
  t.record('token shape', t.tokenShape(auth?.token));
  t.record('authStore', {
    isValid: pb.authStore.isValid,
    isSuperuser: pb.authStore.isSuperuser,
    recordCollection: pb.authStore.record?.collectionName,
  });
}

export async function superuserAuthRefresh(t) {
  const pb = t.client();
  await pb.collection('_superusers').authWithPassword(t.suEmail, t.suPassword);
  const refreshed = await t.sdk('authRefresh', () => pb.collection('_superusers').authRefresh());
  t.record('refreshed token shape', t.tokenShape(refreshed?.token));
  t.record('still superuser', pb.authStore.isSuperuser);
  await t.http('refresh without token', 'POST', '/api/collections/_superusers/auth-refresh');
  await t.http('refresh with garbage token', 'POST', '/api/collections/_superusers/auth-refresh', {
    auth: 'garbage',
  });
}

export async function superuserAuthFailures(t) {
  const pb = t.client();
  await t.sdk('wrong password', () =>
    pb.collection('_superusers').authWithPassword(t.suEmail, 'wrong-password-1'),
  );
  await t.sdk('unknown identity', () =>
    pb.collection('_superusers').authWithPassword('nobody@example.com', t.suPassword),
  );
  await t.http('empty body', 'POST', '/api/collections/_superusers/auth-with-password', {
    json: {},
  });
  await t.http('identity case-insensitive key', 'POST',
    '/api/collections/_superusers/auth-with-password', {
      json: { Identity: t.suEmail, Password: t.suPassword },
      shape: (b) => ({ hasToken: typeof b?.token === 'string', email: b?.record?.email }),
    });
  t.record('authStore after failures', pb.authStore.isValid);
}

export async function tokenAsGuestFallback(t) {
  // A bad token is ignored (the request proceeds as a guest), never a 401 by itself.
  await t.http('health with garbage token', 'GET', '/api/health', { auth: 'garbage' });
  await t.http('collections list with garbage token', 'GET', '/api/collections', {
    auth: 'garbage',
  });
  await t.http('bearer prefix', 'GET', '/api/collections/_superusers', {
    auth: `Bearer ${t.suToken}`,
    shape: (b) => ({ id: b?.id, name: b?.name }),
  });
}

export async function superuserAuthMethods(t) {
  await t.sdk('listAuthMethods', () => t.client().collection('_superusers').listAuthMethods());
}
