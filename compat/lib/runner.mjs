#!/usr/bin/env node
// Runs every scenario in compat/scenarios/ against PocketBase (the reference) and Plinth (the
// candidate), compares the normalized observations and prints one line per scenario plus a
// final `N passed, M failed`. Started by compat/run.sh, which owns the server processes.
//
//   node lib/runner.mjs --pocketbase URL --plinth URL --email E --password P
//                       [--hooks-pocketbase URL --hooks-plinth URL]
//                       [--only AREA[/NAME][,...]] [--self-test] [--verbose] [--dump]
//                       [--imported STATE.json]
//
// --imported: the second half of `run.sh --imported`. Both URLs (and the --hooks-* ones, when
// given) then point at servers started on data a first run left behind: PocketBase on its own
// data dir, Plinth on a conversion of a copy of it (`plinth import-pocketbase`). Only the
// `imported` area runs, once per pair, with the superuser token PocketBase issued before it
// was stopped (STATE.json, written by lib/imported-capture.mjs) instead of a new login, and
// without touching Plinth's settings: the settings under test are the imported ones. Its
// scenarios compare values as they are (`fn.strict`): the same data on both sides means the
// same ids and timestamps, so nothing is masked. Without --imported the area never runs.
//
// Areas whose name starts with `hooks` run against the --hooks-* pair (servers started with
// compat/hooks/pb_hooks and pb_migrations); the other areas against the hook-free pair.
//
// --dump prints PocketBase's normalized observation of each scenario (for writing scenarios).

import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { EventSource } from 'eventsource';
import { Context, newClient } from './context.mjs';
import { normalize } from './normalize.mjs';
import { diff, formatDiff, short } from './diff.mjs';

// The SDK's realtime service needs a global EventSource; Node 20 has none.
globalThis.EventSource ??= EventSource;

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(HERE);
const SCENARIO_TIMEOUT_MS = 30000;

function parseArgs(argv) {
  const args = { only: [], selfTest: false, verbose: false, dump: false, imported: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--pocketbase') args.pocketbase = next();
    else if (a === '--plinth') args.plinth = next();
    else if (a === '--hooks-pocketbase') args.hooksPocketbase = next();
    else if (a === '--hooks-plinth') args.hooksPlinth = next();
    else if (a === '--email') args.email = next();
    else if (a === '--password') args.password = next();
    else if (a === '--only') args.only.push(...next().split(',').filter(Boolean));
    else if (a === '--self-test') args.selfTest = true;
    else if (a === '--verbose') args.verbose = true;
    else if (a === '--dump') args.dump = true;
    else if (a === '--imported') args.imported = next();
    else throw new Error(`unknown argument ${a}`);
  }
  for (const k of ['pocketbase', 'plinth', 'email', 'password']) {
    if (!args[k]) throw new Error(`--${k} is required`);
  }
  return args;
}

/** Every exported function of every compat/scenarios/*.mjs, as {area, name, fn}. */
async function loadScenarios() {
  const dir = path.join(ROOT, 'scenarios');
  // Files starting with `_` hold shared helpers, not scenarios.
  const files = (await readdir(dir))
    .filter((f) => f.endsWith('.mjs') && !f.startsWith('_'))
    .sort();
  const out = [];
  for (const f of files) {
    const area = f.replace(/\.mjs$/, '');
    const mod = await import(pathToFileURL(path.join(dir, f)).href);
    for (const [name, fn] of Object.entries(mod)) {
      if (typeof fn === 'function') out.push({ area, name, fn });
    }
  }
  return out;
}

/** Ids of the differences listed in KNOWN_DIFFERENCES.md (headings `## KD-n: ...`). */
async function loadKnownIds() {
  const text = await readFile(path.join(ROOT, 'KNOWN_DIFFERENCES.md'), 'utf8');
  return new Set([...text.matchAll(/^##\s+(KD-\d+)\b/gm)].map((m) => m[1]));
}

/** Hook areas run against the server pair started with compat/hooks/. */
export function isHookArea(area) {
  return area.startsWith('hooks');
}

/** The area that compares converted data; it runs only in --imported mode. */
export const IMPORTED_AREA = 'imported';

export function selected(s, only, imported = false) {
  if ((s.area === IMPORTED_AREA) !== imported) return false;
  // In imported mode, --only entries naming other areas (those of the first run) do not apply.
  const own = imported ? only.filter((o) => o.split('/')[0] === IMPORTED_AREA) : only;
  if (!own.length) return true;
  return own.some((o) => o === s.area || o === `${s.area}/${s.name}`);
}

async function superuserSession(baseUrl, email, password) {
  const pb = newClient(baseUrl);
  try {
    const auth = await pb.collection('_superusers').authWithPassword(email, password);
    return { token: auth.token, record: auth.record };
  } catch (e) {
    return { token: '', record: null, error: `${e.status ?? ''} ${e.message}` };
  }
}

async function healthy(baseUrl) {
  try {
    const res = await fetch(`${baseUrl}/api/health`, { signal: AbortSignal.timeout(3000) });
    return res.status === 200;
  } catch {
    return false;
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Runs one scenario against one server; an exception becomes the observation's last step. */
async function observe(s, side, baseUrl, su, args, state) {
  const t = new Context({
    side,
    baseUrl,
    area: s.area,
    name: s.name,
    suToken: su.token,
    suRecord: su.record,
    suEmail: args.email,
    suPassword: args.password,
    state,
  });
  try {
    const ret = await withTimeout(Promise.resolve().then(() => s.fn(t)),
      s.fn.timeoutMs ?? SCENARIO_TIMEOUT_MS, `${s.area}/${s.name}`);
    if (ret !== undefined) t.record('return', ret);
  } catch (e) {
    t.record('threw', String(e?.stack ?? e).split('\n').slice(0, 2).join(' | '));
  }
  // A strict scenario compares both servers' values as they are (see --imported).
  const steps = s.fn.strict ? t.steps : normalize(t.steps);
  return { steps, networkError: t.networkError };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const [all, knownIds] = await Promise.all([loadScenarios(), loadKnownIds()]);
  const imported = args.imported !== null;
  const scenarios = all.filter((s) => selected(s, args.only, imported));
  if (!scenarios.length) {
    const why = !imported && args.only.some((o) => o.split('/')[0] === IMPORTED_AREA)
      ? ` (the ${IMPORTED_AREA} area runs only with run.sh --imported)` : '';
    console.error(`compat: no scenario matches --only ${args.only.join(',')}${why}`);
    process.exit(2);
  }
  // A scenario that claims a known difference must point at a documented one.
  for (const s of all) {
    if (s.fn.known && (!s.fn.known.id || !knownIds.has(s.fn.known.id))) {
      console.error(`compat: ${s.area}/${s.name} declares known difference ` +
        `${s.fn.known.id} which is not listed in KNOWN_DIFFERENCES.md`);
      process.exit(2);
    }
    if (s.fn.known && typeof s.fn.known.expect !== 'function') {
      console.error(`compat: ${s.area}/${s.name}: known.expect must be a function`);
      process.exit(2);
    }
  }

  if (imported) {
    await runImported(args, scenarios, started);
    return;
  }
  const pairs = [{ name: 'hook-free', pocketbase: args.pocketbase, plinth: args.plinth }];
  if (scenarios.some((s) => isHookArea(s.area))) {
    if (!args.hooksPocketbase || !args.hooksPlinth) {
      console.error('compat: hook areas selected but --hooks-pocketbase/--hooks-plinth not given');
      process.exit(2);
    }
    pairs.push({ name: 'hooks', pocketbase: args.hooksPocketbase, plinth: args.hooksPlinth });
  }
  for (const pair of pairs) {
    const [suRef, suCand] = await Promise.all([
      superuserSession(pair.pocketbase, args.email, args.password),
      superuserSession(pair.plinth, args.email, args.password),
    ]);
    if (suRef.error) {
      console.error(`compat: cannot log in as superuser on PocketBase (${pair.name} pair, ` +
        `harness problem): ${suRef.error}`);
      process.exit(2);
    }
    if (suCand.error) {
      console.log(`note: superuser login on Plinth (${pair.name} pair) failed (${suCand.error}); ` +
        'scenarios will run with no token there');
    } else if (!args.selfTest) {
      // KD-3: Plinth rate-limits by default and PocketBase does not. The scenarios sign in many
      // times a second from one address, so the candidate gets PocketBase's default (off).
      const res = await fetch(`${pair.plinth}/api/settings`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json', authorization: suCand.token },
        body: JSON.stringify({ rateLimits: { enabled: false } }),
      });
      if (res.status !== 200) {
        console.error(`compat: cannot turn Plinth's rate limits off (KD-3): ${res.status}`);
        process.exit(2);
      }
    }
    Object.assign(pair, { suRef, suCand });
  }
  const pairOf = (s) => pairs[isHookArea(s.area) ? 1 : 0];

  let passed = 0;
  let failed = 0;
  // Scenarios marked `fn.pending = '#N'` cover a feature whose issue is still open: they run
  // and are reported, but a difference counts as skipped, not failed. The mark names the open
  // issue and is removed when that issue is resolved.
  let skipped = 0;
  let serverGone = null;
  for (const s of scenarios) {
    const id = `${s.area}/${s.name}`;
    if (serverGone) {
      console.log(`FAIL ${id}\n    not run: ${serverGone}`);
      failed++;
      continue;
    }
    const t0 = Date.now();
    const pair = pairOf(s);
    const [ref, cand] = await Promise.all([
      observe(s, 'pocketbase', pair.pocketbase, pair.suRef, args),
      observe(s, 'plinth', pair.plinth, pair.suCand, args),
    ]);
    const ms = Date.now() - t0;
    const verdict = await judge(s, id, ref, cand, ms, args);
    if (verdict === 'skipped') skipped++;
    else if (verdict === 'passed') passed++;
    else failed++;
    for (const [side, obs, url] of [['PocketBase', ref, pair.pocketbase],
      ['Plinth', cand, pair.plinth]]) {
      if (obs.networkError && !(await healthy(url))) {
        serverGone = `${side} at ${url} stopped answering /api/health`;
        console.log(`    ${serverGone}; the remaining scenarios are counted as failed`);
      }
    }
  }
  if (args.verbose) console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`);
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.exit(failed ? 1 : 0);
}

/**
 * Compares one scenario's two observations and prints its line; returns 'passed', 'failed'
 * or 'skipped'.
 */
async function judge(s, id, ref, cand, ms, args) {
  const known = s.fn.known && !args.selfTest ? s.fn.known : null;
  let problem = null;
  const refThrew = ref.steps.find(([label]) => label === 'threw');
  if (refThrew) {
    // A scenario must run to its end against the reference; if it does not, the scenario
    // (or the harness) is broken, whatever Plinth did.
    problem = `    scenario error against PocketBase (fix the scenario): ${short(refThrew[1], 400)}`;
  } else if (known) {
    try {
      await s.fn.known.expect(Object.fromEntries(cand.steps), Object.fromEntries(ref.steps));
    } catch (e) {
      problem = `    known difference ${known.id}: Plinth's expected behaviour not met: ` +
        `${short(e.message, 400)}`;
    }
  } else {
    const d = diff(ref.steps, cand.steps);
    if (d.length) problem = formatDiff(d);
  }
  const suffix = known ? `  (known difference ${known.id})` : '';
  const timing = args.verbose ? `  [${ms} ms]` : '';
  const pending = s.fn.pending && !args.selfTest && !refThrew ? s.fn.pending : null;
  let verdict;
  if (pending && problem) {
    verdict = 'skipped';
    const first = problem.split('\n').find((l) => l.trim()) ?? '';
    console.log(`skip ${id}  (pending ${pending})${timing}\n${first}`);
  } else if (pending) {
    verdict = 'passed';
    console.log(`ok   ${id}  (pending ${pending} now agrees: remove the mark)${timing}`);
  } else if (problem) {
    verdict = 'failed';
    console.log(`FAIL ${id}${suffix}${timing}\n${problem}`);
  } else {
    verdict = 'passed';
    console.log(`ok   ${id}${suffix}${timing}`);
  }
  if (args.dump) {
    for (const [label, v] of ref.steps) console.log(`    ${label}: ${JSON.stringify(v)}`);
  }
  return verdict;
}

/**
 * --imported: every selected scenario (all of the `imported` area) against each converted
 * pair, with the superuser token PocketBase issued before the conversion. A pair whose state
 * is missing (its first-run servers were not started) is not run.
 */
async function runImported(args, scenarios, started) {
  const state = JSON.parse(await readFile(args.imported, 'utf8'));
  const pairs = [{ name: 'hook-free', suffix: '', pocketbase: args.pocketbase,
    plinth: args.plinth, state: state.pairs?.['hook-free'] }];
  if (args.hooksPocketbase && args.hooksPlinth) {
    pairs.push({ name: 'hooks', suffix: ' [hooks pair]', pocketbase: args.hooksPocketbase,
      plinth: args.hooksPlinth, state: state.pairs?.hooks });
  }
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for (const pair of pairs) {
    if (!pair.state?.su?.token) {
      console.error(`compat: no captured superuser token for the ${pair.name} pair (harness problem)`);
      process.exit(2);
    }
    const pairState = { ...pair.state, cutoff: state.cutoff, pair: pair.name };
    // The token PocketBase issued before it was stopped, on both sides: that it still works is
    // itself checked (imported/tokensIssuedBefore); a failure here shows in every scenario.
    const su = { token: pair.state.su.token, record: pair.state.su.record };
    let serverGone = null;
    for (const s of scenarios) {
      const id = `${s.area}/${s.name}${pair.suffix}`;
      if (serverGone) {
        console.log(`FAIL ${id}\n    not run: ${serverGone}`);
        failed++;
        continue;
      }
      const t0 = Date.now();
      // One server at a time: the scenarios are read-heavy and the machine may be small; a
      // slow side must not push the other into a timeout.
      const ref = await observe(s, 'pocketbase', pair.pocketbase, su, args, pairState);
      const cand = await observe(s, 'plinth', pair.plinth, su, args, pairState);
      const verdict = await judge(s, id, ref, cand, Date.now() - t0, args);
      if (verdict === 'skipped') skipped++;
      else if (verdict === 'passed') passed++;
      else failed++;
      for (const [side, obs, url] of [['PocketBase', ref, pair.pocketbase],
        ['Plinth', cand, pair.plinth]]) {
        if (obs.networkError && !(await healthy(url))) {
          serverGone = `${side} at ${url} stopped answering /api/health`;
          console.log(`    ${serverGone}; the remaining scenarios are counted as failed`);
        }
      }
    }
  }
  if (args.verbose) console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`);
  console.log(`imported: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.exit(failed ? 1 : 0);
}

// Importable (for isHookArea) without running.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`compat: harness error: ${e?.stack ?? e}`);
    process.exit(2);
  });
}
