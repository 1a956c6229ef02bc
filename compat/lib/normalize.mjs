// Normalization: turns one server's observation of a scenario into a value that can be compared
// with the other server's. Everything a server picks at random (record ids, tokens, timestamps of
// "now", random file-name suffixes, realtime client ids) is replaced by a placeholder, and ids
// are numbered by first appearance so that "the same record" stays recognisable across steps.
// Values the scenario chose itself (dates in 2024, custom ids, collection ids derived from the
// name by CRC32 as PocketBase does) are left alone and compared strictly.

const RECORD_ID = /^[a-z0-9]{15}$/;
// Field ids are `<type><CRC32 of the name>`; some of them are 15 chars of [a-z0-9] too
// (`number123456789`), but they are deterministic and must be compared as they are.
const FIELD_ID = /^(editor|number|select|email|autodate|relation|password)\d+$/;
const JWT = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;
const DATETIME = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})\.\d{3}Z$/;
const REALTIME_CLIENT_ID = /^[A-Za-z0-9]{40}$/;
const TOKEN_KEY = /^[A-Za-z0-9]{50}$/;
// PocketBase stores an upload as `<snake_name>_<10 random [a-z0-9]><.ext>`; batch uploads get the
// suffix twice. The extension is always present (detected from the content when missing).
// The name may sit inside a longer text (a header, a URL, a message), and its extension may
// carry dots of the original name (`x_y_<rand>.z.txt`).
const FILE_SUFFIX = /_[a-z0-9]{10}(?=(_[a-z0-9]{10})*\.[A-Za-z0-9.]{1,20}(?:$|["'?&#\s]))/g;
// Stems shorter than three characters are padded with 10 random characters first
// (`a.txt` → `a<10 random>_<10 random>.txt`).
const SHORT_STEM_PAD = /(?<![A-Za-z0-9_])([a-z0-9]{1,2})[a-z0-9]{10}(?=_<rand>)/g;
// A timestamp within this distance of the comparison time was produced by the server ("now").
// Index names PocketBase invents for scaffolds: `idx_email_3b23lad4r9`.
const RANDOM_INDEX_NAME = /(`idx_[A-Za-z0-9]+_)[a-z0-9]{10}`/g;
// Field ids PocketBase gives the fields a view collection copies from its source.
const CLONE_FIELD_ID = /^_clone_[A-Za-z0-9]{4}$/;
const NOW_WINDOW_MS = 2 * 24 * 3600 * 1000;

function collectIds(value, ids) {
  if (typeof value === 'string') {
    if (RECORD_ID.test(value) && !FIELD_ID.test(value)) ids.add(value);
  } else if (Array.isArray(value)) {
    for (const v of value) collectIds(v, ids);
  } else if (value && typeof value === 'object') {
    for (const k of Object.keys(value).sort()) collectIds(value[k], ids);
  }
}

class Normalizer {
  constructor(knownIds) {
    this.ids = new Map(); // original id -> placeholder
    this.known = knownIds;
    // One regex that finds any known id inside a longer string (a topic, a message, a URL).
    const alternatives = [...knownIds].sort((a, b) => b.length - a.length);
    this.embedded = alternatives.length
      ? new RegExp(`(?<![a-z0-9])(${alternatives.join('|')})(?![a-z0-9])`, 'g')
      : null;
  }

  idPlaceholder(id) {
    if (!this.ids.has(id)) this.ids.set(id, `<id${this.ids.size + 1}>`);
    return this.ids.get(id);
  }

  string(s) {
    if (this.known.has(s)) return this.idPlaceholder(s);
    if (JWT.test(s)) return '<jwt>';
    if (CLONE_FIELD_ID.test(s)) return '_clone_<rand>';
    const dt = DATETIME.exec(s);
    if (dt) {
      const t = Date.parse(`${dt[1]}T${dt[2]}Z`);
      if (Math.abs(t - Date.now()) < NOW_WINDOW_MS) return '<now>';
      return s;
    }
    if (REALTIME_CLIENT_ID.test(s) && /[A-Z]/.test(s) && /[0-9]/.test(s)) return '<clientId>';
    if (TOKEN_KEY.test(s) && /[A-Z]/.test(s) && /[0-9]/.test(s)) return '<tokenKey>';
    let out = s;
    if (this.embedded) out = out.replace(this.embedded, (m) => this.idPlaceholder(m));
    out = out.replace(FILE_SUFFIX, '_<rand>');
    out = out.replace(SHORT_STEM_PAD, '$1<pad>');
    out = out.replace(RANDOM_INDEX_NAME, '$1<rand>`');
    return out;
  }

  value(v) {
    if (typeof v === 'string') return this.string(v);
    if (Array.isArray(v)) return v.map((x) => this.value(x));
    if (isDefaultTemplate(v)) return { subject: '<default template>', body: '<default template>' };
    if (v && typeof v === 'object') {
      const out = {};
      for (const k of Object.keys(v).sort()) out[this.string(k)] = this.value(v[k]);
      return out;
    }
    return v;
  }
}

/**
 * Known difference KD-1: Plinth ships default email templates in its own words. A default
 * template (either server's) is recognised by its closing "{APP_NAME} team" signature; a
 * template a scenario wrote itself does not end that way and is compared as it is.
 */
function isDefaultTemplate(v) {
  return Boolean(v) && typeof v === 'object' && !Array.isArray(v)
    && Object.keys(v).length === 2 && typeof v.subject === 'string'
    && typeof v.body === 'string' && /\{APP_NAME\} team\n<\/p>$/.test(v.body);
}

/** Normalizes a whole observation (an array of [label, value] steps). */
export function normalize(steps) {
  const ids = new Set();
  for (const [, v] of steps) collectIds(v, ids);
  const n = new Normalizer(ids);
  return steps.map(([label, v]) => [label, n.value(v)]);
}

/** Decodes a JWT's header and payload without verifying it (the SDK does the same). */
export function decodeJwt(token) {
  if (typeof token !== 'string') return { invalid: typeof token };
  const parts = token.split('.');
  if (parts.length !== 3) return { invalid: 'parts' };
  try {
    const dec = (p) => JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
    return { header: dec(parts[0]), payload: dec(parts[1]), signed: parts[2].length > 0 };
  } catch (e) {
    return { invalid: String(e.message) };
  }
}

/**
 * The shape of a token for comparison: header, payload keys and values, with `exp` replaced by
 * its distance from now in minutes (the two servers sign at slightly different instants).
 */
export function tokenShape(token) {
  const d = decodeJwt(token);
  if (!d.payload) return d;
  const payload = { ...d.payload };
  if (typeof payload.exp === 'number') {
    payload.exp = `now+${Math.round((payload.exp - Date.now() / 1000) / 60)}min`;
  }
  return { header: d.header, payload, signed: d.signed };
}
