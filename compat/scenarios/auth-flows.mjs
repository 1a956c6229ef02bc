// The user authentication flows of an ordinary auth collection through the SDK: password login
// (identity fields), refresh, email verification, password reset, email change, one-time
// passwords, MFA, impersonation and the auth-methods list, each with its failures. The mail
// flows use a real SMTP sink per server (lib/mail.mjs): tokens and codes are read from the
// delivered messages, never from the database. Default mail subjects and bodies are Plinth's own
// words (KD-1), so only counts and the presence of a token are compared for them.
//
// Each scenario makes its own auth collection (`t.coll('users')`) shaped like the default
// `users` one, so changing its options never affects another scenario.

import { mailbox } from '../lib/mail.mjs';

const PASSWORD = 'user-pass-123';
const NEW_PASSWORD = 'new-pass-456';

/** An auth collection shaped like the default `users` (plus a unique `username`). */
async function authCollection(t, extra = {}) {
  const name = t.coll('users');
  return t.su.collections.create({
    name,
    type: 'auth',
    listRule: 'id = @request.auth.id',
    viewRule: 'id = @request.auth.id',
    createRule: '',
    updateRule: 'id = @request.auth.id',
    deleteRule: 'id = @request.auth.id',
    fields: [
      { name: 'name', type: 'text' },
      { name: 'username', type: 'text' },
      { name: 'created', type: 'autodate', onCreate: true, onUpdate: false },
      { name: 'updated', type: 'autodate', onCreate: true, onUpdate: true },
    ],
    indexes: [`CREATE UNIQUE INDEX idx_username_${t.tag} ON ${name} (username) WHERE username != ''`],
    ...extra,
  });
}

/** A user in `coll` created by the superuser; returns {record, email, password, username}. */
async function newUser(t, coll, local, extra = {}) {
  const email = t.email(local);
  const username = `${local}_${t.tag}`;
  const record = await t.su.collection(coll).create({
    email,
    username,
    name: `User ${local}`,
    password: PASSWORD,
    passwordConfirm: PASSWORD,
    ...extra,
  });
  return { record, email, username, password: PASSWORD };
}

/** The comparable parts of an auth answer: the record, the token's shape, extra keys. */
function authShape(res) {
  if (!res) return res;
  const { token, record, ...rest } = res;
  return { token: tokenPresence(token), record, rest };
}

function tokenPresence(token) {
  return typeof token === 'string' && token.length > 0 ? '<token>' : token;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Both servers note where an OTP was sent (`sentTo` on its `_otps` row) once the mail is
// handed over, after the mail may already have reached the sink, and mark the record
// verified at sign-in only when that is its email. Waiting for the note keeps the answer from
// depending on which came first (PocketBase answered `verified: false` now and then).
async function otpSent(t, otpId) {
  for (let i = 0; i < 50; i++) {
    const row = await t.su.collection('_otps').getOne(otpId).catch(() => null);
    if (row?.sentTo) return;
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------------------------
// Password login

export async function passwordSuccess(t) {
  const coll = await authCollection(t);
  const u = await newUser(t, coll.name, 'alice');
  const pb = t.client();
  const auth = await t.sdk('authWithPassword', () =>
    pb.collection(coll.name).authWithPassword(u.email, u.password), authShape);
  t.record('token shape', t.tokenShape(auth?.token));
  t.record('authStore', {
    isValid: pb.authStore.isValid,
    isSuperuser: pb.authStore.isSuperuser,
    collection: pb.authStore.record?.collectionName,
    email: pb.authStore.record?.email,
  });
  await t.sdk('own record with the token', () => pb.collection(coll.name).getOne(u.record.id));
}

export async function passwordWrongPassword(t) {
  const coll = await authCollection(t);
  const u = await newUser(t, coll.name, 'bob');
  const pb = t.client();
  await t.sdk('wrong password', () =>
    pb.collection(coll.name).authWithPassword(u.email, 'wrong-pass-999'));
  await t.sdk('password of another case', () =>
    pb.collection(coll.name).authWithPassword(u.email, u.password.toUpperCase()));
  await t.sdk('empty password', () => pb.collection(coll.name).authWithPassword(u.email, ''));
  t.record('authStore after failures', pb.authStore.isValid);
}

export async function passwordUnknownIdentity(t) {
  const coll = await authCollection(t);
  const u = await newUser(t, coll.name, 'carol');
  const pb = t.client();
  await t.sdk('unknown email', () =>
    pb.collection(coll.name).authWithPassword(t.email('nobody'), u.password));
  await t.sdk('email in upper case', () =>
    pb.collection(coll.name).authWithPassword(u.email.toUpperCase(), u.password), authShape);
  await t.sdk('unknown collection', () =>
    pb.collection(t.coll('nosuch')).authWithPassword(u.email, u.password));
  await t.http('superuser creds on a users collection', 'POST',
    `/api/collections/${coll.name}/auth-with-password`,
    { json: { identity: t.suEmail, password: t.suPassword } });
}

export async function passwordIdentityUsername(t) {
  const coll = await authCollection(t, {
    passwordAuth: { enabled: true, identityFields: ['email', 'username'] },
  });
  const u = await newUser(t, coll.name, 'dave');
  const pb = t.client();
  await t.sdk('by username', () =>
    pb.collection(coll.name).authWithPassword(u.username, u.password), authShape);
  await t.sdk('by email', () =>
    pb.collection(coll.name).authWithPassword(u.email, u.password), authShape);
  // The SDK's `body` option replaces the whole body, so identity and password are repeated.
  const withField = (identity, identityField) => ({
    body: { identity, password: u.password, identityField },
  });
  await t.sdk('identityField username with the username', () =>
    pb.collection(coll.name).authWithPassword(u.username, u.password,
      withField(u.username, 'username')), authShape);
  await t.sdk('identityField username with the email', () =>
    pb.collection(coll.name).authWithPassword(u.email, u.password,
      withField(u.email, 'username')), authShape);
  await t.sdk('identityField email with the email', () =>
    pb.collection(coll.name).authWithPassword(u.email, u.password,
      withField(u.email, 'email')), authShape);
  await t.sdk('identityField not listed', () =>
    pb.collection(coll.name).authWithPassword(u.email, u.password,
      withField(u.email, 'name')), authShape);
  await t.sdk('wrong password by username', () =>
    pb.collection(coll.name).authWithPassword(u.username, 'wrong-pass-999'));
}

export async function passwordIdentityEmailOnly(t) {
  // The default: only `email` identifies a user; a username is then an unknown identity.
  const coll = await authCollection(t);
  const u = await newUser(t, coll.name, 'erin');
  const pb = t.client();
  await t.sdk('by username', () =>
    pb.collection(coll.name).authWithPassword(u.username, u.password));
  const upd = await t.su.collections.update(coll.id, {
    passwordAuth: { enabled: true, identityFields: ['username'] },
  });
  t.record('identityFields now', upd.passwordAuth);
  await t.sdk('by username after the change', () =>
    pb.collection(coll.name).authWithPassword(u.username, u.password), authShape);
  await t.sdk('by email after the change', () =>
    pb.collection(coll.name).authWithPassword(u.email, u.password));
  await t.sdk('identity field without a unique index', () =>
    t.su.collections.update(coll.id, { passwordAuth: { enabled: true, identityFields: ['name'] } }),
    (c) => c.passwordAuth);
}

export async function passwordAuthDisabled(t) {
  const coll = await authCollection(t, { passwordAuth: { enabled: false, identityFields: ['email'] } });
  const u = await newUser(t, coll.name, 'frank');
  await t.sdk('password login when disabled', () =>
    t.client().collection(coll.name).authWithPassword(u.email, u.password));
  await t.sdk('superuser still reads the record', () =>
    t.su.collection(coll.name).getOne(u.record.id), (r) => ({ id: r.id, email: r.email }));
}

export async function passwordAuthRule(t) {
  // The collection's authRule must hold for the record, whatever the method.
  const coll = await authCollection(t, { authRule: 'verified = true' });
  const u = await newUser(t, coll.name, 'gina');
  const v = await newUser(t, coll.name, 'hank', { verified: true });
  const pb = t.client();
  await t.sdk('unverified against the rule', () =>
    pb.collection(coll.name).authWithPassword(u.email, u.password));
  await t.sdk('verified passes the rule', () =>
    pb.collection(coll.name).authWithPassword(v.email, v.password), authShape);
  await t.sdk('null authRule (superusers only)', () =>
    t.su.collections.update(coll.id, { authRule: null }), (c) => c.authRule);
  await t.sdk('verified against a null rule', () =>
    pb.collection(coll.name).authWithPassword(v.email, v.password));
}

export async function passwordBadInput(t) {
  const coll = await authCollection(t);
  const u = await newUser(t, coll.name, 'ivy');
  const path = `/api/collections/${coll.name}/auth-with-password`;
  await t.http('empty object', 'POST', path, { json: {} });
  await t.http('identity only', 'POST', path, { json: { identity: u.email } });
  await t.http('password only', 'POST', path, { json: { password: u.password } });
  await t.http('malformed json', 'POST', path, {
    body: '{"identity":', headers: { 'Content-Type': 'application/json' },
  });
  await t.http('form encoded', 'POST', path, {
    body: new URLSearchParams({ identity: u.email, password: u.password }),
    shape: (b) => ({ token: tokenPresence(b?.token), email: b?.record?.email }),
  });
  await t.http('GET is not a login', 'GET', path);
  await t.http('base collection', 'POST', `/api/collections/${(await t.su.collections.create({
    name: t.coll('plain'), type: 'base', fields: [{ name: 'title', type: 'text' }],
  })).name}/auth-with-password`, { json: { identity: u.email, password: u.password } });
}

export async function authFormsWrongTypes(t) {
  // A JSON body whose values have the wrong types (not a string, not null) cannot be loaded
  // into an auth form at all: 400 "loading", before any validation.
  const coll = await authCollection(t);
  const u = await newUser(t, coll.name, 'ivan');
  const base = `/api/collections/${coll.name}`;
  await t.http('number identity', 'POST', `${base}/auth-with-password`,
    { json: { identity: 12, password: u.password } });
  await t.http('number password', 'POST', `${base}/auth-with-password`,
    { json: { identity: u.email, password: 12345678 } });
  await t.http('array password', 'POST', `${base}/auth-with-password`,
    { json: { identity: u.email, password: [u.password] } });
  await t.http('null values are blank', 'POST', `${base}/auth-with-password`,
    { json: { identity: null, password: null } });
  await t.http('number email to request-verification', 'POST', `${base}/request-verification`,
    { json: { email: 12 } });
  await t.http('number email to request-password-reset', 'POST',
    `${base}/request-password-reset`, { json: { email: 12 } });
}

// ---------------------------------------------------------------------------------------------
// Refresh

export async function refreshFlow(t) {
  const coll = await authCollection(t);
  const u = await newUser(t, coll.name, 'jack');
  const pb = t.client();
  await pb.collection(coll.name).authWithPassword(u.email, u.password);
  const refreshed = await t.sdk('authRefresh', () => pb.collection(coll.name).authRefresh(),
    authShape);
  t.record('refreshed token shape', t.tokenShape(refreshed?.token));
  await t.sdk('authRefresh with expand and fields', () =>
    pb.collection(coll.name).authRefresh({ fields: 'token,record.email,record.username' }),
    authShape);
  await t.http('refresh without a token', 'POST', `/api/collections/${coll.name}/auth-refresh`);
  await t.http('refresh with a garbage token', 'POST', `/api/collections/${coll.name}/auth-refresh`,
    { auth: 'garbage.token.here' });
  await t.http('superuser token on a users refresh', 'POST',
    `/api/collections/${coll.name}/auth-refresh`, { auth: 'su' });
  await t.http('user token on another auth collection', 'POST',
    '/api/collections/users/auth-refresh', { auth: pb.authStore.token });
  await t.sdk('refresh after the record is deleted', async () => {
    await t.su.collection(coll.name).delete(u.record.id);
    return pb.collection(coll.name).authRefresh();
  });
}

// ---------------------------------------------------------------------------------------------
// Email verification

export async function verificationFlow(t) {
  const box = await mailbox(t);
  const coll = await authCollection(t);
  const u = await newUser(t, coll.name, 'kate');
  const pb = t.client();
  await t.sdk('requestVerification', () => pb.collection(coll.name).requestVerification(u.email));
  const mail = await box.waitFor(u.email, 0);
  const token = mail.token();
  t.record('mail', { to: mail.to, from: mail.from, tokenShape: t.tokenShape(token) });
  await t.sdk('confirmVerification', () => pb.collection(coll.name).confirmVerification(token));
  await t.sdk('record now verified', () => t.su.collection(coll.name).getOne(u.record.id),
    (r) => ({ verified: r.verified, email: r.email }));
  await t.sdk('confirm the same token again', () =>
    pb.collection(coll.name).confirmVerification(token));
  await t.sdk('request again when verified', () =>
    pb.collection(coll.name).requestVerification(u.email));
  t.record('mails to the user', await box.countAfter(u.email));
  const login = await t.sdk('login after verification', () =>
    pb.collection(coll.name).authWithPassword(u.email, u.password), authShape);
  t.record('verified in the auth answer', login?.record?.verified);
}

export async function verificationCustomTemplate(t) {
  const box = await mailbox(t);
  const coll = await authCollection(t, {
    verificationTemplate: {
      subject: 'Check {APP_NAME} mail',
      body: '<p>Follow {APP_URL}/verify/{TOKEN} to verify.</p>',
    },
  });
  const u = await newUser(t, coll.name, 'liam');
  await t.sdk('requestVerification', () =>
    t.client().collection(coll.name).requestVerification(u.email));
  const mail = await box.waitFor(u.email, 0);
  t.record('subject', mail.subject);
  // PocketBase wraps the body in an HTML layout of its own (KD-1); the rendered template must
  // appear in it verbatim.
  const body = mail.html.replace(/eyJ[A-Za-z0-9_.-]+/, '<TOKEN>');
  t.record('body', /<p>Follow .*? to verify\.<\/p>/.exec(body)?.[0] ?? body);
}

export async function verificationBadInput(t) {
  const box = await mailbox(t);
  const coll = await authCollection(t);
  const u = await newUser(t, coll.name, 'mia');
  const base = `/api/collections/${coll.name}`;
  await t.sdk('request for an unknown email', () =>
    t.client().collection(coll.name).requestVerification(t.email('nobody')));
  await t.http('request without email', 'POST', `${base}/request-verification`, { json: {} });
  await t.http('request with an invalid email', 'POST', `${base}/request-verification`,
    { json: { email: 'not-an-email' } });
  await t.http('confirm without token', 'POST', `${base}/confirm-verification`, { json: {} });
  await t.sdk('confirm a garbage token', () =>
    t.client().collection(coll.name).confirmVerification('garbage'));
  await t.sdk('confirm an auth token', async () => {
    const pb = t.client();
    await pb.collection(coll.name).authWithPassword(u.email, u.password);
    return pb.collection(coll.name).confirmVerification(pb.authStore.token);
  });
  t.record('mails to the unknown address', await box.countAfter(t.email('nobody'), 0));
  t.record('record still unverified', (await t.su.collection(coll.name).getOne(u.record.id)).verified);
}

export async function verificationOtherCollectionToken(t) {
  // A genuine verification token, but issued for another auth collection.
  const box = await mailbox(t);
  const coll = await authCollection(t);
  const other = await t.su.collections.create({ name: t.coll('others'), type: 'auth', fields: [] });
  const o = await t.su.collection(other.name).create({
    email: t.email('other'), password: PASSWORD, passwordConfirm: PASSWORD,
  });
  await t.client().collection(other.name).requestVerification(o.email);
  const token = (await box.waitFor(o.email, 0)).token();
  await t.sdk('confirm in the wrong collection', () =>
    t.client().collection(coll.name).confirmVerification(token));
  await t.sdk('the token still works where it belongs', () =>
    t.client().collection(other.name).confirmVerification(token));
}

export async function verificationTokenExpired(t) {
  const box = await mailbox(t);
  const coll = await authCollection(t, { verificationToken: { duration: 10 } });
  const u = await newUser(t, coll.name, 'noah');
  await t.client().collection(coll.name).requestVerification(u.email);
  const token = (await box.waitFor(u.email, 0)).token();
  t.record('token shape', t.tokenShape(token));
  await sleep(11500);
  await t.sdk('confirm an expired token', () =>
    t.client().collection(coll.name).confirmVerification(token));
  t.record('still unverified', (await t.su.collection(coll.name).getOne(u.record.id)).verified);
}

// ---------------------------------------------------------------------------------------------
// Password reset

export async function passwordResetFlow(t) {
  const box = await mailbox(t);
  const coll = await authCollection(t);
  const u = await newUser(t, coll.name, 'olga');
  const pb = t.client();
  await pb.collection(coll.name).authWithPassword(u.email, u.password);
  const oldAuthToken = pb.authStore.token;
  await t.sdk('requestPasswordReset', () => pb.collection(coll.name).requestPasswordReset(u.email));
  const token = (await box.waitFor(u.email, 0)).token();
  t.record('reset token shape', t.tokenShape(token));
  await t.sdk('confirmPasswordReset', () =>
    t.client().collection(coll.name).confirmPasswordReset(token, NEW_PASSWORD, NEW_PASSWORD));
  await t.sdk('old password', () =>
    t.client().collection(coll.name).authWithPassword(u.email, u.password));
  await t.sdk('new password', () =>
    t.client().collection(coll.name).authWithPassword(u.email, NEW_PASSWORD), authShape);
  await t.sdk('the same reset token again', () =>
    t.client().collection(coll.name).confirmPasswordReset(token, 'third-pass-789', 'third-pass-789'));
  await t.http('old auth token after the reset (tokenKey rotated)', 'POST',
    `/api/collections/${coll.name}/auth-refresh`, { auth: oldAuthToken });
  await t.sdk('record after the reset', () => t.su.collection(coll.name).getOne(u.record.id),
    (r) => ({ verified: r.verified, email: r.email }));
}

export async function passwordResetTwoRequests(t) {
  // Two requests in a row: the second is throttled or sent, and each token stays usable until a
  // reset rotates the tokenKey.
  const box = await mailbox(t);
  const coll = await authCollection(t);
  const u = await newUser(t, coll.name, 'paul');
  await t.sdk('first request', () =>
    t.client().collection(coll.name).requestPasswordReset(u.email));
  const first = (await box.waitFor(u.email, 0)).token();
  await t.sdk('second request at once', () =>
    t.client().collection(coll.name).requestPasswordReset(u.email));
  t.record('mails to the user', await box.countAfter(u.email));
  await t.sdk('confirm with the first token', () =>
    t.client().collection(coll.name).confirmPasswordReset(first, NEW_PASSWORD, NEW_PASSWORD));
}

export async function passwordResetBadInput(t) {
  const box = await mailbox(t);
  const coll = await authCollection(t);
  const u = await newUser(t, coll.name, 'quinn');
  const base = `/api/collections/${coll.name}`;
  await t.sdk('request for an unknown email', () =>
    t.client().collection(coll.name).requestPasswordReset(t.email('nobody')));
  await t.http('request without email', 'POST', `${base}/request-password-reset`, { json: {} });
  await t.http('request with an invalid email', 'POST', `${base}/request-password-reset`,
    { json: { email: 'bad@' } });
  await t.client().collection(coll.name).requestPasswordReset(u.email);
  const token = (await box.waitFor(u.email, 0)).token();
  await t.http('confirm with nothing', 'POST', `${base}/confirm-password-reset`, { json: {} });
  await t.sdk('confirm with mismatched passwords', () =>
    t.client().collection(coll.name).confirmPasswordReset(token, NEW_PASSWORD, 'other-pass-000'));
  await t.sdk('confirm with a short password', () =>
    t.client().collection(coll.name).confirmPasswordReset(token, 'short', 'short'));
  await t.sdk('confirm with a garbage token', () =>
    t.client().collection(coll.name).confirmPasswordReset('garbage', NEW_PASSWORD, NEW_PASSWORD));
  await t.sdk('confirm with a verification-like auth token', async () => {
    const pb = t.client();
    await pb.collection(coll.name).authWithPassword(u.email, u.password);
    return pb.collection(coll.name).confirmPasswordReset(pb.authStore.token, NEW_PASSWORD,
      NEW_PASSWORD);
  });
  await t.sdk('old password still works', () =>
    t.client().collection(coll.name).authWithPassword(u.email, u.password), authShape);
}

// ---------------------------------------------------------------------------------------------
// Email change

export async function emailChangeFlow(t) {
  const box = await mailbox(t);
  const coll = await authCollection(t);
  const u = await newUser(t, coll.name, 'rose');
  const pb = t.client();
  await pb.collection(coll.name).authWithPassword(u.email, u.password);
  const oldAuthToken = pb.authStore.token;
  const newEmail = t.email('rose-new');
  await t.sdk('requestEmailChange', () => pb.collection(coll.name).requestEmailChange(newEmail));
  const mail = await box.waitFor(newEmail, 0);
  const token = mail.token();
  t.record('change token shape', t.tokenShape(token));
  t.record('mail went to', mail.to);
  t.record('mails to the old address', await box.countAfter(u.email, 0));
  await t.sdk('confirm with a wrong password', () =>
    t.client().collection(coll.name).confirmEmailChange(token, 'wrong-pass-999'));
  await t.sdk('confirmEmailChange', () =>
    t.client().collection(coll.name).confirmEmailChange(token, u.password));
  await t.sdk('record after the change', () => t.su.collection(coll.name).getOne(u.record.id),
    (r) => ({ email: r.email, verified: r.verified }));
  await t.sdk('login with the old email', () =>
    t.client().collection(coll.name).authWithPassword(u.email, u.password));
  await t.sdk('login with the new email', () =>
    t.client().collection(coll.name).authWithPassword(newEmail, u.password), authShape);
  await t.http('old auth token after the change', 'POST',
    `/api/collections/${coll.name}/auth-refresh`, { auth: oldAuthToken });
  await t.sdk('the same change token again', () =>
    t.client().collection(coll.name).confirmEmailChange(token, u.password));
}

export async function emailChangeBadInput(t) {
  await mailbox(t);
  const coll = await authCollection(t);
  const u = await newUser(t, coll.name, 'sam');
  const taken = await newUser(t, coll.name, 'tess');
  const base = `/api/collections/${coll.name}`;
  const pb = t.client();
  await pb.collection(coll.name).authWithPassword(u.email, u.password);
  await t.http('request as a guest', 'POST', `${base}/request-email-change`,
    { json: { newEmail: t.email('guest') } });
  await t.http('request as the superuser', 'POST', `${base}/request-email-change`,
    { auth: 'su', json: { newEmail: t.email('su') } });
  await t.sdk('request without newEmail', () =>
    pb.collection(coll.name).requestEmailChange(''));
  await t.sdk('request with an invalid email', () =>
    pb.collection(coll.name).requestEmailChange('nope'));
  await t.sdk('request with a taken email', () =>
    pb.collection(coll.name).requestEmailChange(taken.email));
  await t.sdk('request with the current email', () =>
    pb.collection(coll.name).requestEmailChange(u.email));
  await t.http('confirm with nothing', 'POST', `${base}/confirm-email-change`, { json: {} });
  await t.sdk('confirm a garbage token', () =>
    t.client().collection(coll.name).confirmEmailChange('garbage', u.password));
  await t.sdk('confirm an auth token', () =>
    t.client().collection(coll.name).confirmEmailChange(pb.authStore.token, u.password));
}

// ---------------------------------------------------------------------------------------------
// One-time passwords

export async function otpFlow(t) {
  const box = await mailbox(t);
  const coll = await authCollection(t, { otp: { enabled: true, duration: 180, length: 8 } });
  const u = await newUser(t, coll.name, 'uma');
  const pb = t.client();
  const req = await t.sdk('requestOTP', () => pb.collection(coll.name).requestOTP(u.email));
  const code = (await box.waitFor(u.email, 0)).otp(8);
  await otpSent(t, req?.otpId);
  t.record('code', /^[0-9]{8}$/.test(code) ? '<8 digits>' : code);
  await t.sdk('wrong code', () => pb.collection(coll.name).authWithOTP(req?.otpId, '00000000'));
  const auth = await t.sdk('authWithOTP', () =>
    pb.collection(coll.name).authWithOTP(req?.otpId, code), authShape);
  t.record('token shape', t.tokenShape(auth?.token));
  t.record('authStore valid', pb.authStore.isValid);
  await t.sdk('the same code again', () =>
    t.client().collection(coll.name).authWithOTP(req?.otpId, code));
  await t.sdk('record after OTP login', () => t.su.collection(coll.name).getOne(u.record.id),
    (r) => ({ verified: r.verified }));
}

export async function otpCustomLength(t) {
  const box = await mailbox(t);
  const coll = await authCollection(t, {
    otp: {
      enabled: true,
      duration: 60,
      length: 4,
      emailTemplate: { subject: 'Code for {APP_NAME}', body: '<p>Code: {OTP}</p>' },
    },
  });
  const u = await newUser(t, coll.name, 'vera');
  const req = await t.sdk('requestOTP', () =>
    t.client().collection(coll.name).requestOTP(u.email));
  const mail = await box.waitFor(u.email, 0);
  await otpSent(t, req?.otpId);
  const code = mail.otp(4);
  t.record('mail', {
    subject: mail.subject,
    body: /<p>Code: [0-9]+<\/p>/.test(mail.html) ? '<p>Code: <OTP></p>' : mail.html,
  });
  await t.sdk('authWithOTP', () =>
    t.client().collection(coll.name).authWithOTP(req?.otpId, code), authShape);
}

export async function otpBadInput(t) {
  const box = await mailbox(t);
  const disabled = await authCollection(t);
  const d = await newUser(t, disabled.name, 'walt');
  await t.sdk('requestOTP when disabled', () =>
    t.client().collection(disabled.name).requestOTP(d.email));
  await t.sdk('authWithOTP when disabled', () =>
    t.client().collection(disabled.name).authWithOTP('abcdefghijklmno', '12345678'));
  const coll = await t.su.collections.update(disabled.id, {
    otp: { enabled: true, duration: 180, length: 8 },
  });
  const base = `/api/collections/${coll.name}`;
  await t.sdk('requestOTP for an unknown email', () =>
    t.client().collection(coll.name).requestOTP(t.email('nobody')), (r) => ({
      keys: Object.keys(r ?? {}).sort(),
      otpIdIs15: typeof r?.otpId === 'string' && r.otpId.length === 15,
    }));
  await t.http('requestOTP without email', 'POST', `${base}/request-otp`, { json: {} });
  await t.http('requestOTP with an invalid email', 'POST', `${base}/request-otp`,
    { json: { email: 'x' } });
  await t.http('authWithOTP with nothing', 'POST', `${base}/auth-with-otp`, { json: {} });
  await t.sdk('authWithOTP with an unknown otpId', () =>
    t.client().collection(coll.name).authWithOTP('abcdefghijklmno', '12345678'));
  const req = await t.client().collection(coll.name).requestOTP(d.email);
  await box.waitFor(d.email, 0);
  await t.sdk('authWithOTP with an empty password', () =>
    t.client().collection(coll.name).authWithOTP(req.otpId, ''));
  await t.sdk('otpId of another collection', async () => {
    const other = await t.su.collections.create({
      name: t.coll('others'), type: 'auth', fields: [],
      otp: { enabled: true, duration: 180, length: 8 },
    });
    return t.client().collection(other.name).authWithOTP(req.otpId, '12345678');
  });
  t.record('mails to the unknown address', await box.countAfter(t.email('nobody'), 0));
}

// ---------------------------------------------------------------------------------------------
// MFA

export async function mfaPasswordThenOtp(t) {
  const box = await mailbox(t);
  const coll = await authCollection(t, {
    mfa: { enabled: true, duration: 600, rule: '' },
    otp: { enabled: true, duration: 180, length: 8 },
  });
  const u = await newUser(t, coll.name, 'xena');
  const pb = t.client();
  await t.sdk('first factor: password', () =>
    pb.collection(coll.name).authWithPassword(u.email, u.password));
  let mfaId;
  try {
    await t.client().collection(coll.name).authWithPassword(u.email, u.password);
  } catch (e) {
    mfaId = e?.response?.mfaId;
  }
  t.record('mfaId present', typeof mfaId === 'string' && mfaId.length > 0);
  t.record('authStore after the first factor', pb.authStore.isValid);
  const req = await t.sdk('requestOTP', () => pb.collection(coll.name).requestOTP(u.email));
  const code = (await box.waitFor(u.email, 0)).otp(8);
  await t.sdk('second factor: otp', () =>
    pb.collection(coll.name).authWithOTP(req?.otpId, code, { mfaId }), authShape);
  t.record('authStore after the second factor', pb.authStore.isValid);
  await t.sdk('the mfaId again', () =>
    t.client().collection(coll.name).authWithPassword(u.email, u.password, { mfaId }));
}

export async function mfaSameMethodTwice(t) {
  const coll = await authCollection(t, {
    mfa: { enabled: true, duration: 600, rule: '' },
    otp: { enabled: true, duration: 180, length: 8 },
  });
  const u = await newUser(t, coll.name, 'yara');
  let mfaId;
  try {
    await t.client().collection(coll.name).authWithPassword(u.email, u.password);
  } catch (e) {
    mfaId = e?.response?.mfaId;
  }
  await t.sdk('password again with the mfaId', () =>
    t.client().collection(coll.name).authWithPassword(u.email, u.password, { mfaId }));
  await t.sdk('garbage mfaId', () =>
    t.client().collection(coll.name).authWithPassword(u.email, u.password,
      { mfaId: 'abcdefghijklmno' }));
  await t.sdk('wrong password with the mfaId', () =>
    t.client().collection(coll.name).authWithPassword(u.email, 'wrong-pass-999', { mfaId }));
}

export async function mfaRule(t) {
  // An MFA rule limits who needs the second factor.
  const coll = await authCollection(t, {
    mfa: { enabled: true, duration: 600, rule: "name = 'User strict'" },
    otp: { enabled: true, duration: 180, length: 8 },
  });
  const relaxed = await newUser(t, coll.name, 'zoe');
  const strict = await newUser(t, coll.name, 'strict', { name: 'User strict' });
  await t.sdk('user outside the rule', () =>
    t.client().collection(coll.name).authWithPassword(relaxed.email, relaxed.password), authShape);
  await t.sdk('user inside the rule', () =>
    t.client().collection(coll.name).authWithPassword(strict.email, strict.password),
    (r) => r);
}

export async function mfaWithoutSecondMethod(t) {
  // MFA on with only one method enabled cannot be satisfied.
  await t.sdk('enable mfa without otp', () => authCollection(t, {
    mfa: { enabled: true, duration: 600, rule: '' },
  }), (c) => ({ mfa: c.mfa, otp: c.otp.enabled }));
}

// ---------------------------------------------------------------------------------------------
// Impersonation

export async function impersonate(t) {
  const coll = await authCollection(t);
  const u = await newUser(t, coll.name, 'ann');
  const client = await t.sdk('impersonate', () =>
    t.su.collection(coll.name).impersonate(u.record.id, 3600),
    (c) => ({ token: tokenPresence(c.authStore.token), record: c.authStore.record }));
  t.record('token shape', t.tokenShape(client?.authStore.token));
  await t.sdk('impersonated client reads its record', () =>
    client.collection(coll.name).getOne(u.record.id), (r) => ({ id: r.id, email: r.email }));
  await t.sdk('impersonated token cannot refresh', () =>
    client.collection(coll.name).authRefresh(), authShape);
  const def = await t.sdk('default duration', () =>
    t.su.collection(coll.name).impersonate(u.record.id),
    (c) => ({ token: tokenPresence(c.authStore.token) }));
  t.record('default duration token shape', t.tokenShape(def?.authStore.token));
}

export async function impersonateFailures(t) {
  const coll = await authCollection(t);
  const u = await newUser(t, coll.name, 'ben');
  const base = `/api/collections/${coll.name}/impersonate`;
  await t.http('as a guest', 'POST', `${base}/${u.record.id}`, { json: {} });
  const pb = t.client();
  await pb.collection(coll.name).authWithPassword(u.email, u.password);
  await t.http('as the user itself', 'POST', `${base}/${u.record.id}`,
    { auth: pb.authStore.token, json: {} });
  await t.http('unknown record', 'POST', `${base}/abcdefghijklmno`, { auth: 'su', json: {} });
  await t.http('negative duration', 'POST', `${base}/${u.record.id}`,
    { auth: 'su', json: { duration: -5 }, shape: (b) => (b?.token ? { token: '<token>' } : b) });
  await t.http('base collection', 'POST', `/api/collections/${(await t.su.collections.create({
    name: t.coll('plain'), type: 'base', fields: [{ name: 'title', type: 'text' }],
  })).name}/impersonate/${u.record.id}`, { auth: 'su', json: {} });
}

// ---------------------------------------------------------------------------------------------
// Auth methods

export async function authMethodsDefault(t) {
  const coll = await authCollection(t);
  await t.sdk('listAuthMethods', () => t.client().collection(coll.name).listAuthMethods());
  await t.sdk('default users collection', () => t.client().collection('users').listAuthMethods());
}

export async function authMethodsUsernameOtpMfa(t) {
  const coll = await authCollection(t, {
    passwordAuth: { enabled: true, identityFields: ['email', 'username'] },
    mfa: { enabled: true, duration: 900, rule: '' },
    otp: { enabled: true, duration: 120, length: 6 },
  });
  await t.sdk('listAuthMethods', () => t.client().collection(coll.name).listAuthMethods());
  await t.sdk('with fields', () =>
    t.client().collection(coll.name).listAuthMethods({ fields: 'password,otp.enabled' }));
}

export async function authMethodsAllOff(t) {
  // Password login off: no identity fields are listed, though the collection keeps them.
  const coll = await authCollection(t, {
    passwordAuth: { enabled: false, identityFields: ['email'] },
    otp: { enabled: false },
  });
  await t.sdk('listAuthMethods', () => t.client().collection(coll.name).listAuthMethods());
  await t.http('raw', 'GET', `/api/collections/${coll.name}/auth-methods`);
}

export async function authMethodsNotAnAuthCollection(t) {
  await t.http('base collection', 'GET', `/api/collections/${(await t.su.collections.create({
    name: t.coll('plain'), type: 'base', fields: [{ name: 'title', type: 'text' }],
  })).name}/auth-methods`);
  await t.http('unknown collection', 'GET', `/api/collections/${t.coll('nosuch')}/auth-methods`);
}

// ---------------------------------------------------------------------------------------------
// What an auth answer returns

export async function authAnswerFields(t) {
  const coll = await authCollection(t);
  const hidden = await newUser(t, coll.name, 'cleo', { emailVisibility: false });
  const shown = await newUser(t, coll.name, 'dan', { emailVisibility: true });
  await t.sdk('own email is returned though hidden', () =>
    t.client().collection(coll.name).authWithPassword(hidden.email, hidden.password), authShape);
  await t.sdk('visible email', () =>
    t.client().collection(coll.name).authWithPassword(shown.email, shown.password), authShape);
  await t.sdk('fields filter', () =>
    t.client().collection(coll.name).authWithPassword(hidden.email, hidden.password,
      { fields: 'token,record.id,record.email' }), authShape);
  await t.sdk('fields without token', () =>
    t.client().collection(coll.name).authWithPassword(hidden.email, hidden.password,
      { fields: 'record.name' }), authShape);
  await t.http('raw answer keys', 'POST', `/api/collections/${coll.name}/auth-with-password`, {
    json: { identity: hidden.email, password: hidden.password },
    shape: (b) => ({ keys: Object.keys(b ?? {}).sort(), recordKeys: Object.keys(b?.record ?? {}).sort() }),
  });
  await t.sdk('another user sees no hidden email', async () => {
    const pb = t.client();
    await pb.collection(coll.name).authWithPassword(shown.email, shown.password);
    await t.su.collections.update(coll.id, { viewRule: '' });
    return pb.collection(coll.name).getOne(hidden.record.id);
  });
}

export async function signupThenLogin(t) {
  // A guest signs up through the create rule, then logs in; the create answer has no token.
  const coll = await authCollection(t);
  const email = t.email('eve');
  const pb = t.client();
  await t.sdk('create (signup)', () => pb.collection(coll.name).create({
    email, password: PASSWORD, passwordConfirm: PASSWORD, username: `eve_${t.tag}`,
  }));
  await t.sdk('signup with mismatched confirm', () => pb.collection(coll.name).create({
    email: t.email('eve2'), password: PASSWORD, passwordConfirm: 'nope-nope-nope',
  }));
  await t.sdk('signup with a taken email', () => pb.collection(coll.name).create({
    email, password: PASSWORD, passwordConfirm: PASSWORD,
  }));
  await t.sdk('login', () => pb.collection(coll.name).authWithPassword(email, PASSWORD), authShape);
}

// ---------------------------------------------------------------------------------------------
// Login alerts and the reverse MFA order

export async function authAlertNewDevice(t) {
  // A login from a new client (user agent) mails an alert, once the user has a known origin.
  const box = await mailbox(t);
  const coll = await authCollection(t);
  const u = await newUser(t, coll.name, 'fay');
  const path = `/api/collections/${coll.name}/auth-with-password`;
  const login = (label, ua) => t.http(label, 'POST', path, {
    json: { identity: u.email, password: u.password },
    headers: { 'User-Agent': ua },
    shape: (b) => ({ token: tokenPresence(b?.token), id: b?.record?.id }),
  });
  await login('first login', 'compat-agent/1');
  t.record('mails after the first login', await box.countAfter(u.email));
  await login('same client again', 'compat-agent/1');
  t.record('mails after the same client', await box.countAfter(u.email));
  await login('new client', 'compat-agent/2');
  await box.waitFor(u.email, 0);
  t.record('mails after a new client', await box.countAfter(u.email));
  await t.su.collections.update(coll.id, { authAlert: { enabled: false } });
  await login('another new client, alerts off', 'compat-agent/3');
  t.record('mails with alerts off', await box.countAfter(u.email));
}

export async function mfaOtpThenPassword(t) {
  const box = await mailbox(t);
  const coll = await authCollection(t, {
    mfa: { enabled: true, duration: 600, rule: '' },
    otp: { enabled: true, duration: 180, length: 8 },
  });
  const u = await newUser(t, coll.name, 'gus');
  const req = await t.client().collection(coll.name).requestOTP(u.email);
  const code = (await box.waitFor(u.email, 0)).otp(8);
  let mfaId;
  await t.sdk('first factor: otp', async () => {
    try {
      return await t.client().collection(coll.name).authWithOTP(req.otpId, code);
    } catch (e) {
      mfaId = e?.response?.mfaId;
      throw e;
    }
  });
  // Whether the OTP factor has marked the email verified by now varies between two runs of
  // PocketBase itself (the self-test differs), so `verified` is left out here.
  await t.sdk('second factor: password', () =>
    t.client().collection(coll.name).authWithPassword(u.email, u.password, { mfaId }),
    (r) => {
      const { verified, ...record } = r.record;
      return { ...authShape(r), record };
    });
  await t.sdk('the mfaId again', () =>
    t.client().collection(coll.name).authWithPassword(u.email, u.password, { mfaId }));
}
