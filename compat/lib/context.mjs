// The handle a scenario receives (`t`). A scenario runs once per server with its own `t`; every
// step it records (an SDK call's outcome, a raw HTTP exchange, a derived value) becomes part of
// that server's observation, and the two observations are normalized and compared.

import PocketBase from 'pocketbase';
import { tokenShape } from './normalize.mjs';

const REQUEST_TIMEOUT_MS = 10000;

// A short deterministic suffix per scenario, so collection names and emails never collide
// between scenarios while staying identical on both servers.
function shortHash(s) {
  let h = 2166136261;
  for (const c of s) {
    h ^= c.codePointAt(0);
    h = Math.imul(h, 16777619) >>> 0;
  }
  return h.toString(36).padStart(7, '0').slice(0, 6);
}

/** A PocketBase SDK client that never auto-cancels and gives up on a hung server. */
export function newClient(baseUrl, token, record) {
  const pb = new PocketBase(baseUrl);
  pb.autoCancellation(false);
  pb.beforeSend = (url, options) => {
    if (!options.signal) options.signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    return { url, options };
  };
  if (token) pb.authStore.save(token, record ?? null);
  return pb;
}

export class Context {
  constructor({ side, baseUrl, area, name, suToken, suRecord, suEmail, suPassword, state }) {
    this.side = side; // 'pocketbase' | 'plinth'
    this.base = baseUrl;
    this.area = area;
    this.name = name;
    this.suToken = suToken;
    this.suRecord = suRecord;
    this.suEmail = suEmail; // the superuser's credentials, for scenarios about logging in
    this.suPassword = suPassword;
    // --imported only: what lib/imported-capture.mjs saw before the servers were stopped
    // (tokens PocketBase issued, a probe user and its password, the stop time as `cutoff`).
    this.state = state ?? null;
    this.steps = [];
    this.networkError = false;
    this.tag = shortHash(`${area}/${name}`);
    this.su = newClient(baseUrl, suToken, suRecord);
  }

  /** A collection name unique to this scenario: `<base>_<hash>`. */
  coll(base) {
    return `${base}_${this.tag}`;
  }

  /** An email address unique to this scenario. */
  email(local) {
    return `${local}.${this.tag}@example.com`;
  }

  /** A fresh SDK client, as a guest or with the given token. */
  client(token, record) {
    return newClient(this.base, token, record);
  }

  /** Records a value under a label; labels repeat-proof (a repeat gets `#2`, `#3`, ...). */
  record(label, value) {
    let l = label;
    for (let i = 2; this.steps.some(([x]) => x === l); i++) l = `${label}#${i}`;
    this.steps.push([l, value === undefined ? null : JSON.parse(JSON.stringify(value))]);
    return value;
  }

  /**
   * Runs an SDK call and records its outcome: {ok: true, body} or {ok: false, status, body}.
   * Returns the SDK's result, or undefined when it failed. `shape` may transform the result
   * before it is recorded (e.g. to sort a list whose order is not defined).
   */
  async sdk(label, fn, shape) {
    try {
      const res = await fn();
      this.record(label, { ok: true, body: shape ? shape(res) : res });
      return res;
    } catch (e) {
      if (e && typeof e.status === 'number' && 'response' in e) {
        if (e.status === 0) {
          this.networkError = true;
          this.record(label, { ok: false, status: 0, error: 'network error or timeout' });
        } else {
          this.record(label, { ok: false, status: e.status, body: e.response });
        }
        return undefined;
      }
      throw e;
    }
  }

  /**
   * A raw HTTP exchange, for what the SDK hides (status codes of successes, headers, bodies the
   * SDK would not send). opts: json (object body), body (string | FormData | URLSearchParams),
   * headers, auth ('su' | token string; default none), keep (response header names to record),
   * quiet (do not record), shape (transform the parsed body before recording).
   * Returns {status, headers, body, text}.
   */
  async http(label, method, path, opts = {}) {
    const headers = { ...(opts.headers ?? {}) };
    let body = opts.body;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers['Content-Type'] ??= 'application/json';
    }
    const token = opts.auth === 'su' ? this.suToken : opts.auth;
    if (token) headers.Authorization = token;
    let res;
    try {
      res = await fetch(this.base + path, {
        method,
        headers,
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (e) {
      this.networkError = true;
      if (!opts.quiet) this.record(label, { status: 0, error: 'network error or timeout' });
      return { status: 0, headers: {}, body: null, text: '' };
    }
    const text = await res.text();
    let parsed = null;
    if (text.length) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = { nonJsonBody: text.slice(0, 200) };
      }
    }
    const kept = {};
    for (const h of opts.keep ?? []) kept[h.toLowerCase()] = res.headers.get(h);
    const out = { status: res.status, headers: Object.fromEntries(res.headers), body: parsed, text };
    if (!opts.quiet) {
      const rec = { status: res.status, body: opts.shape ? opts.shape(parsed) : parsed };
      if (opts.keep) rec.headers = kept;
      this.record(label, rec);
    }
    return out;
  }

  /** The comparable shape of a JWT (header, claims, expiry relative to now). */
  tokenShape(token) {
    return tokenShape(token);
  }
}

/** Sorts a list of records (or any objects) by a key, for results whose order is undefined. */
export function sortBy(items, key = 'id') {
  return [...(items ?? [])].sort((a, b) => String(a?.[key]).localeCompare(String(b?.[key])));
}
