// The settings API through the SDK's `pb.settings`: reading, partial updates and what they
// answer, write-only secrets, validation errors, the test endpoints' refusals, and who may
// call them. Every scenario puts back what it changed, since settings are server-wide.

import { createUser } from '../lib/fixtures.mjs';

// Rate limits differ by default on purpose (KD-3), and Plinth's settings have a `realtime`
// section PocketBase lacks (KD-11); everything else is compared, but for the port of each
// server's own mail sink.
const withoutRateLimits = (settings) => {
  if (!settings || typeof settings !== 'object') return settings;
  const { rateLimits, realtime, ...rest } = settings;
  // The mail scenarios point each server at a mail sink of its own, on its own port.
  if (rest.smtp?.host === '127.0.0.1' && typeof rest.smtp.port === 'number') {
    rest.smtp = { ...rest.smtp, port: '<its own mail sink>' };
  }
  return rest;
};

export async function readAndPartialUpdate(t) {
  await t.sdk('getAll', () => t.su.settings.getAll(), withoutRateLimits);
  const before = await t.su.settings.getAll();
  await t.sdk(
    'update meta and logs',
    () =>
      t.su.settings.update({
        meta: { appName: 'Compat App', senderName: 'Compat', senderAddress: 'noreply@example.com' },
        logs: { maxDays: 3, minLevel: 4, logIP: false, logAuthId: true },
      }),
    withoutRateLimits,
  );
  await t.sdk('read back', () => t.su.settings.getAll(), withoutRateLimits);
  await t.sdk(
    'secrets are write-only',
    () =>
      t.su.settings.update({
        smtp: { enabled: false, host: 'smtp.example.com', port: 2525, username: 'u', password: 'p' },
        s3: { enabled: false, bucket: 'b', region: 'r', endpoint: 'http://127.0.0.1:1', accessKey: 'k', secret: 's' },
      }),
    (s) => ({ smtp: s.smtp, s3: s.s3 }),
  );
  await t.sdk(
    'put back',
    () =>
      t.su.settings.update({
        meta: before.meta,
        logs: before.logs,
        smtp: { ...before.smtp, host: before.smtp.host },
        s3: before.s3,
      }),
    withoutRateLimits,
  );
}

// `fields` picks from the settings as from any JSON answer, on reads and on updates.
export async function fieldsPickFromSettings(t) {
  await t.sdk('getAll with fields', () =>
    t.su.settings.getAll({ fields: 'meta.appName,batch,logs.maxDays' }),
  );
  const before = await t.su.settings.getAll();
  await t.sdk('update with fields', () =>
    t.su.settings.update({ meta: { appName: 'Fields App' } }, { fields: 'meta.appName' }),
  );
  await t.sdk('put back with fields', () =>
    t.su.settings.update({ meta: { appName: before.meta.appName } }, { fields: 'meta.appName' }),
  );
}

export async function validationErrors(t) {
  const bad = {
    'empty app name': { meta: { appName: '' } },
    'bad app url': { meta: { appURL: 'not a url' } },
    'bad sender address': { meta: { senderAddress: 'nope' } },
    'smtp on without host': { smtp: { enabled: true, host: '', port: 0 } },
    'negative log days': { logs: { maxDays: -1 } },
    'bad backups cron': { backups: { cron: 'every day' } },
    'batch without bounds': { batch: { enabled: true, maxRequests: 0, timeout: 0 } },
    'bad trusted proxy header': { trustedProxy: { headers: ['bad header!'] } },
    'negative numbers': {
      smtp: { port: -1 },
      logs: { maxDataSize: -5 },
      batch: { maxBodySize: -1, maxRequests: -1, timeout: -1 },
      backups: { cronMaxKeep: -1 },
      rateLimits: { rules: [{ label: 'x', duration: -1, maxRequests: -2 }] },
    },
    'backups cron without a count to keep': { backups: { cron: '0 0 * * *', cronMaxKeep: 0 } },
    's3 on without its settings': { s3: { enabled: true } },
    'backups s3 with a bad endpoint': {
      backups: {
        s3: { enabled: true, bucket: 'b', region: 'r', endpoint: 'e', accessKey: 'a', secret: 's' },
      },
    },
  };
  for (const [label, body] of Object.entries(bad)) {
    await t.sdk(label, () => t.su.settings.update(body), withoutRateLimits);
  }
  await t.sdk('unchanged', () => t.su.settings.getAll(), withoutRateLimits);
  // The bad trusted-proxy header was accepted (PocketBase does not check header names).
  await t.sdk('put back', () => t.su.settings.update({ trustedProxy: { headers: [] } }), withoutRateLimits);
}

// The IP lists take IPs and CIDR subnets only (a blank entry is required), and rate-limit
// rules a label in one of the known forms, each label once per overlapping audience; none of
// these is saved, so no list here can lock the superuser out.
export async function ipListsAndRuleLabels(t) {
  const rule = (label, audience = '') => ({ label, audience, maxRequests: 10, duration: 1 });
  const bad = {
    'superuser IPs': { superuserIPs: ['10.0.0.0/8', 'bad', '1.2.3.4/33', '::1', 'fe80::/10', ''] },
    'superuser IP with a space': { superuserIPs: [' 1.2.3.4'] },
    'excluded IPs': { rateLimits: { enabled: false, rules: [], excludedIPs: ['bad', '10.0.0.0/8'] } },
    'label formats': {
      rateLimits: {
        enabled: false,
        rules: [rule('/a.b'), rule('*'), rule('users:*'), rule('/a b'), rule('u-s:create'), rule('PATCH  /a')],
      },
    },
    'same label, everyone and users': { rateLimits: { enabled: false, rules: [rule('/a/'), rule('/a/', '@auth')] } },
    'same label three times': {
      rateLimits: { enabled: false, rules: [rule('x:create', '@auth'), rule('x:create', '@auth'), rule('x:create', '@auth')] },
    },
  };
  for (const [label, body] of Object.entries(bad)) {
    await t.sdk(label, () => t.su.settings.update(body), withoutRateLimits);
  }
  const good = {
    'guests and users apart': {
      rateLimits: { enabled: false, excludedIPs: [], rules: [rule('/a/', '@guest'), rule('/a/', '@auth')] },
    },
    'every label form': {
      rateLimits: {
        enabled: false,
        excludedIPs: ['10.0.0.0/8', '::1', '1.2.3.4'],
        rules: [rule('GET /a/'), rule('get /a'), rule('/a-b_c/'), rule('users:create'), rule('*:create'),
          rule('users'), rule('/'), rule('GET /'), rule('_x:create'), rule('OPTIONS /a'), rule('/a'), rule('/A/')],
      },
    },
  };
  for (const [label, body] of Object.entries(good)) {
    await t.sdk(label, () => t.su.settings.update(body), (s) => s?.rateLimits ?? s);
  }
  await t.sdk('put back', () => t.su.settings.update({ rateLimits: { enabled: false, rules: [], excludedIPs: [] } }),
    (s) => s?.rateLimits ?? s);
}

export async function testEndpoints(t) {
  await t.sdk('test s3 storage while off', () => t.su.settings.testS3('storage'));
  await t.sdk('test s3 backups while off', () => t.su.settings.testS3('backups'));
  await t.sdk('test s3 bad filesystem', () => t.su.settings.testS3('nope'));
  await t.sdk('test email bad template', () =>
    t.su.settings.testEmail('someone@example.com', 'nope'),
  );
  await t.sdk('test email bad address', () => t.su.settings.testEmail('nope', 'verification'));
  await t.sdk('apple secret with a bad key', () =>
    t.su.settings.generateAppleClientSecret('client', 'team', 'key', 'not a key', 3600),
  );
}

export async function accessIsForSuperusers(t) {
  const guest = t.client();
  await t.sdk('guest getAll', () => guest.settings.getAll());
  await t.sdk('guest update', () => guest.settings.update({ meta: { appName: 'x' } }));
  const user = await createUser(t, 'settings_user');
  await t.sdk('user getAll', () => user.client.settings.getAll());
  await t.sdk('user update', () => user.client.settings.update({ meta: { appName: 'x' } }));
}

// Health's superuser details follow the trusted-proxy settings: the client address read from
// a trusted header, and the header PocketBase suggests trusting.
export async function healthProxyHints(t) {
  const hint = (label, headers) =>
    t.http(label, 'GET', '/api/health', { auth: 'su', headers });
  await hint('no proxy header', {});
  await hint('x-real-ip is not suggested', { 'X-Real-IP': '1.2.3.4' });
  await hint('forwarded-for suggested', { 'X-Forwarded-For': '1.2.3.4, 5.6.7.8' });
  await hint('cloudflare before fly', { 'CF-Connecting-IP': '1.2.3.4', 'Fly-Client-IP': '5.6.7.8' });
  await t.sdk(
    'trust x-forwarded-for, leftmost',
    () => t.su.settings.update({ trustedProxy: { headers: ['X-Forwarded-For'], useLeftmostIP: true } }),
    (s) => s.trustedProxy,
  );
  await hint('trusted header gives the address', { 'X-Forwarded-For': '1.2.3.4, 5.6.7.8' });
  await hint('trusted header first', { 'CF-Connecting-IP': '9.9.9.9', 'X-Forwarded-For': '1.2.3.4' });
  await t.sdk(
    'put back',
    () => t.su.settings.update({ trustedProxy: { headers: [], useLeftmostIP: false } }),
    (s) => s.trustedProxy,
  );
}
