#!/usr/bin/env node
// Run by `run.sh --imported` against PocketBase, after the first differential run and before
// PocketBase is stopped and its data converted: signs in the superuser, creates a probe user in
// `users` with a known password and signs it in, and prints what it got as JSON. The imported
// area (scenarios/imported.mjs) then sends these PocketBase-issued tokens to PocketBase
// restarted on its data and to Plinth on the converted copy; both must accept them.
//
//   node lib/imported-capture.mjs --email E --password P --pair NAME=URL [--pair NAME=URL ...]
//
// Output: {"cutoff": "<now, in PocketBase's date format>", "pairs": {NAME: {su: {token,
// record}, user: {collection, id, email, password, token} | null}}}. `cutoff` is taken after
// everything else: the imported area compares the request logs written up to it.

import { newClient } from './context.mjs';

const PROBE_EMAIL = 'imported-probe@example.com';
const PROBE_PASSWORD = 'imported-Probe-123';

function parseArgs(argv) {
  const args = { pairs: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--email') args.email = next();
    else if (a === '--password') args.password = next();
    else if (a === '--pair') {
      const [name, url] = next().split(/=(.*)/s);
      args.pairs.push({ name, url });
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!args.email || !args.password || !args.pairs.length) {
    throw new Error('--email, --password and at least one --pair are required');
  }
  return args;
}

async function capture(url, email, password) {
  const su = newClient(url);
  const auth = await su.collection('_superusers').authWithPassword(email, password);
  let user = null;
  const hasUsers = await su.collections.getOne('users').then(() => true, () => false);
  if (hasUsers) {
    const record = await su.collection('users').create({
      email: PROBE_EMAIL,
      password: PROBE_PASSWORD,
      passwordConfirm: PROBE_PASSWORD,
      emailVisibility: false,
      verified: true,
    });
    const client = newClient(url);
    const userAuth = await client.collection('users').authWithPassword(PROBE_EMAIL, PROBE_PASSWORD);
    user = {
      collection: 'users',
      id: record.id,
      email: PROBE_EMAIL,
      password: PROBE_PASSWORD,
      token: userAuth.token,
    };
  }
  return { su: { token: auth.token, record: auth.record }, user };
}

const args = parseArgs(process.argv.slice(2));
const out = { pairs: {} };
for (const { name, url } of args.pairs) {
  out.pairs[name] = await capture(url, args.email, args.password);
}
out.cutoff = new Date().toISOString().replace('T', ' ');
console.log(JSON.stringify(out, null, 2));
