// Structural comparison of two normalized observations. Object key order never matters (JSON
// objects are unordered); array order does, so scenarios that expect an unordered result sort
// it (or record a set) before recording it.

function kind(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function short(v, max = 160) {
  let s = v === undefined ? '(missing)' : JSON.stringify(v);
  if (s.length > max) s = `${s.slice(0, max - 3)}...`;
  return s;
}

function clip(s, max = 160) {
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}

function walk(a, b, path, out, limit) {
  if (out.length >= limit) return;
  const ka = kind(a);
  const kb = kind(b);
  if (a === undefined || b === undefined || ka !== kb) {
    out.push({ path, expected: a, actual: b });
    return;
  }
  if (ka === 'array') {
    const n = Math.max(a.length, b.length);
    if (a.length !== b.length) {
      out.push({ path: `${path}.length`, expected: a.length, actual: b.length });
    }
    for (let i = 0; i < n && out.length < limit; i++) {
      if (i < a.length && i < b.length) walk(a[i], b[i], `${path}[${i}]`, out, limit);
    }
    return;
  }
  if (ka === 'object') {
    // An empty object against a full one is one difference, not one per missing key.
    if (!Object.keys(a).length !== !Object.keys(b).length) {
      out.push({ path, expected: a, actual: b });
      return;
    }
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const k of keys) {
      if (out.length >= limit) return;
      walk(a[k], b[k], path ? `${path}.${k}` : k, out, limit);
    }
    return;
  }
  if (!Object.is(a, b)) out.push({ path, expected: a, actual: b });
}

function isExchange(v) {
  return kind(v) === 'object' && ('status' in v || 'ok' in v);
}

function outcomeDiffers(x, y) {
  return isExchange(x) && isExchange(y) && (x.status !== y.status || x.ok !== y.ok);
}

/** A step's outcome in brief: the status and the error message, or the success body. */
function outcome(v) {
  const status = v.status ?? (v.ok ? 'ok' : '?');
  const body = v.body;
  if (kind(body) === 'object' && 'message' in body && 'data' in body) {
    const data = Object.keys(body.data ?? {}).length ? ` ${JSON.stringify(body.data)}` : '';
    return `${status} ${body.message}${data}`;
  }
  return `${status} ${JSON.stringify(body)}`;
}

/**
 * Differences between the reference observation (PocketBase) and the candidate's (Plinth), as a
 * list of {path, expected, actual}; empty when they agree.
 */
export function diff(expected, actual, limit = 12) {
  const out = [];
  const byLabel = (steps) => new Map(steps.map(([l, v]) => [l, v]));
  const e = byLabel(expected);
  const a = byLabel(actual);
  const labels = [...expected.map(([l]) => l), ...actual.map(([l]) => l).filter((l) => !e.has(l))];
  // A scenario that threw on one side explains everything after it: show that first.
  labels.sort((x, y) => (y === 'threw') - (x === 'threw'));
  for (const label of labels) {
    if (out.length >= limit) break;
    const x = e.get(label);
    const y = a.get(label);
    if (outcomeDiffers(x, y)) {
      // Different status: the body differences that follow are noise; show both outcomes.
      out.push({ path: `[${label}]`, expected: outcome(x), actual: outcome(y), brief: true });
      continue;
    }
    walk(x, y, `[${label}]`, out, limit);
  }
  return out;
}

export function formatDiff(diffs, limit = 12) {
  const show = (d, v) => (d.brief ? clip(v) : short(v));
  const lines = diffs.map(
    (d) => `    ${d.path}: pocketbase ${show(d, d.expected)} | plinth ${show(d, d.actual)}`,
  );
  if (diffs.length >= limit) lines.push('    ... (more differences not shown)');
  return lines.join('\n');
}

export { short };
