// The cron API through the SDK's `pb.crons`: the system jobs listed (Plinth's own
// `__plinth…__` sweeps are left out of the comparison), running one by id, an unknown id, and
// who may call them.

import { createUser } from '../lib/fixtures.mjs';

const pocketbaseJobs = (jobs) => (jobs ?? []).filter((job) => job.id.startsWith('__pb'));

export async function listAndRun(t) {
  await t.sdk('getFullList', () => t.su.crons.getFullList(), pocketbaseJobs);
  await t.sdk('run the OTP cleanup', () => t.su.crons.run('__pbOTPCleanup__'));
  await t.sdk('run the MFA cleanup', () => t.su.crons.run('__pbMFACleanup__'));
  await t.sdk('run an unknown job', () => t.su.crons.run('no_such_job'));
  await t.http('list with fields', 'GET', '/api/crons?fields=id', {
    auth: 'su',
    shape: pocketbaseJobs,
  });
}

export async function accessIsForSuperusers(t) {
  const guest = t.client();
  await t.sdk('guest list', () => guest.crons.getFullList());
  await t.sdk('guest run', () => guest.crons.run('__pbOTPCleanup__'));
  const user = await createUser(t, 'crons_user');
  await t.sdk('user list', () => user.client.crons.getFullList());
  await t.sdk('user run', () => user.client.crons.run('__pbOTPCleanup__'));
}
