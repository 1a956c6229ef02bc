// Plinth's JavaScript prelude: PocketBase's hook API (globals, classes, the event chain)
// written over a handful of natives (__host, __eval, __readFile, __security, …).
// Loaded once into every runtime. Everything that touches the app goes through __host as
// JSON, so this file holds no state of the app, only of the running invocation.
(function (G) {
  "use strict";

  // ------------------------------------------------------------------ host bridge
  let collectionCache = {};

  function host(op, args) {
    const raw = __host(op, JSON.stringify(args === undefined ? null : args));
    const answer = JSON.parse(raw);
    if (Object.prototype.hasOwnProperty.call(answer, "ok")) return answer.ok;
    throw hostError(answer.err);
  }

  function hostError(err) {
    if (err && err.api) return new ApiError(err.status, err.message, err.data);
    const g = new GoError(err ? err.message : "error");
    g.value = { status: err ? err.status : null, data: err ? err.data : null };
    return g;
  }

  class GoError extends Error {
    constructor(message) {
      super(message);
      this.name = "GoError";
    }
  }

  // ------------------------------------------------------------------ errors
  const STATUS_TEXT = {
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable", 408: "Request Timeout",
    409: "Conflict", 410: "Gone", 411: "Length Required", 412: "Precondition Failed",
    413: "Request Entity Too Large", 415: "Unsupported Media Type", 418: "I'm a teapot",
    422: "Unprocessable Entity", 423: "Locked", 424: "Failed Dependency", 425: "Too Early",
    426: "Upgrade Required", 428: "Precondition Required", 429: "Too Many Requests",
    451: "Unavailable For Legal Reasons", 500: "Internal Server Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
  };
  const GENERIC = "Something went wrong while processing your request.";

  function defaultMessage(status) {
    switch (status) {
      case 400: case 500: return GENERIC;
      case 401: return "Missing or invalid authentication.";
      case 403: return "You are not allowed to perform this request.";
      case 404: return "The requested resource wasn't found.";
      case 429: return "Too Many Requests.";
      default: return STATUS_TEXT[status] ? STATUS_TEXT[status] + "." : GENERIC;
    }
  }

  function sentence(text) {
    text = String(text === undefined || text === null ? "" : text).trim();
    if (!text) return "";
    text = text[0].toUpperCase() + text.slice(1);
    const last = text[text.length - 1];
    if (last !== "." && last !== "?" && last !== "!") text += ".";
    return text;
  }

  class ValidationError {
    constructor(code, message) {
      this.code = String(code || "validation_invalid_value");
      this.message = sentence(message) || "Invalid value.";
    }
    error() { return this.message; }
    toJSON() { return { code: this.code, message: this.message }; }
  }

  function normalizeData(data) {
    if (data === undefined || data === null || typeof data !== "object") return {};
    const out = {};
    for (const key of Object.keys(data)) {
      const v = data[key];
      if (v instanceof ValidationError) out[key] = v.toJSON();
      else if (v && typeof v === "object" && typeof v.code === "string" && typeof v.message === "string")
        out[key] = { code: v.code, message: v.message };
      else out[key] = { code: "validation_invalid_value", message: "Invalid value." };
    }
    return out;
  }

  // PocketBase's ApiError is not an Error (instanceof Error is false there too).
  class ApiError {
    constructor(status, message, data) {
      status = Number(status) | 0;
      this.status = status > 0 ? status : 400;
      this.message = sentence(message) || defaultMessage(this.status);
      this.data = normalizeData(data);
    }
    error() { return this.message; }
    toString() { return this.message; }
  }
  function errorClass(status) {
    return class extends ApiError {
      constructor(message, data) { super(status, message, data); }
    };
  }
  const BadRequestError = errorClass(400);
  const UnauthorizedError = errorClass(401);
  const ForbiddenError = errorClass(403);
  const NotFoundError = errorClass(404);
  const TooManyRequestsError = errorClass(429);
  const InternalServerError = errorClass(500);

  function errorText(err) {
    if (err instanceof ApiError) return "ApiError: " + err.message;
    if (err && typeof err === "object" && "message" in err) {
      const name = err.name || "Error";
      let at = "";
      if (typeof err.stack === "string") {
        const line = err.stack.split("\n").map((l) => l.trim()).find((l) => l.startsWith("at ") && !l.includes("prelude.js"));
        if (line) at = " " + line;
      }
      return name + ": " + err.message + at;
    }
    try { return String(err); } catch (_) { return "Error"; }
  }

  // How an error escaping a chain is answered: an ApiError keeps status and text, a host
  // error with a status (no rows, validation) answers that status; anything else is left
  // to the caller (a generic 400, or the record API's own message).
  function describeError(err) {
    if (err instanceof ApiError)
      return { api: { status: err.status, message: err.message, data: err.data }, text: errorText(err) };
    if (err instanceof GoError && err.value && err.value.status) {
      const status = err.value.status;
      return {
        api: { status, message: defaultMessage(status), data: err.value.data && typeof err.value.data === "object" ? err.value.data : {} },
        text: errorText(err),
      };
    }
    return { api: null, text: errorText(err) };
  }

  function isErrorValue(v) {
    return v instanceof ApiError || v instanceof Error;
  }

  // ------------------------------------------------------------------ values
  function markBytes(list) { Object.defineProperty(list, "__isBytes", { value: true }); return list; }
  function toBytes(v) {
    if (v === undefined || v === null) return markBytes([]);
    if (typeof v === "string") return markBytes(utf8(v));
    if (Array.isArray(v)) return v;
    if (v instanceof Uint8Array) return markBytes(Array.from(v));
    return markBytes(utf8(JSON.stringify(v)));
  }
  function utf8(s) {
    const out = [];
    for (const ch of unescape(encodeURIComponent(s))) out.push(ch.charCodeAt(0));
    return out;
  }
  function fromUtf8(bytes) {
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b & 255);
    try { return decodeURIComponent(escape(s)); } catch (_) { return s; }
  }
  function sortedJSON(v) {
    if (Array.isArray(v)) return v.map(sortedJSON);
    if (v && typeof v === "object" && !(v instanceof Record)) {
      const out = {};
      for (const k of Object.keys(v).sort()) out[k] = sortedJSON(v[k]);
      return out;
    }
    return v;
  }
  function toString(v, max) {
    if (v === undefined || v === null) return "";
    if (v && v.__reader) return v.read(max);
    if (v instanceof Uint8Array) return fromUtf8(Array.from(v));
    if (v && v.__bytes) return fromUtf8(v.__bytes);
    if (Array.isArray(v) && v.__isBytes) return fromUtf8(v);
    if (typeof v === "string") return v;
    if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
    if (v instanceof DateTime) return v.string();
    return JSON.stringify(sortedJSON(v));
  }
  function sleep(ms) { __sleep(Number(ms) || 0); }
  function unmarshal(data, dst) {
    const src = JSON.parse(JSON.stringify(data === undefined ? null : data));
    if (dst && typeof dst.__unmarshal === "function") { dst.__unmarshal(src); return; }
    if (dst && src && typeof src === "object") Object.assign(dst, src);
  }
  function arrayOf(model) { const a = []; a.__of = model; return a; }

  // ------------------------------------------------------------------ DateTime
  function pad(n, w) { return String(n).padStart(w || 2, "0"); }
  function formatDate(d) {
    if (isNaN(d.getTime())) return "";
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + "." +
      pad(d.getUTCMilliseconds(), 3) + "Z";
  }
  function parseDate(text) {
    if (text instanceof Date) return new Date(text.getTime());
    if (text instanceof DateTime) return new Date(text.__d.getTime());
    if (typeof text === "number") return new Date(text);
    text = String(text).trim();
    if (!text) return new Date();
    let t = text.replace(" ", "T");
    if (/^\d{4}-\d{2}-\d{2}$/.test(t)) t += "T00:00:00Z";
    else if (!/[zZ]$|[+-]\d{2}:?\d{2}$/.test(t)) t += "Z";
    return new Date(t);
  }
  class DateTime {
    constructor(value, tz) {
      this.__d = value === undefined ? new Date() : parseDate(value);
      if (tz && typeof value === "string" && value.trim()) {
        // Interpret the wall time in `tz`: only fixed UTC offsets ("+02:00") and UTC are
        // known here; named zones other than UTC are taken as UTC.
        const m = /^([+-])(\d{2}):?(\d{2})$/.exec(String(tz));
        if (m) {
          const sign = m[1] === "+" ? 1 : -1;
          this.__d = new Date(this.__d.getTime() - sign * (Number(m[2]) * 60 + Number(m[3])) * 60000);
        }
      }
    }
    string() { return formatDate(this.__d); }
    toString() { return this.string(); }
    toJSON() { return this.string(); }
    unix() { return Math.floor(this.__d.getTime() / 1000); }
    unixMilli() { return this.__d.getTime(); }
    time() { return new Date(this.__d.getTime()); }
    isZero() { return isNaN(this.__d.getTime()) || this.__d.getTime() === -62135596800000; }
    add(ms) { return new DateTime(new Date(this.__d.getTime() + Number(ms) / 1e6)); }
    sub(other) { return (this.__d.getTime() - parseDate(other).getTime()) * 1e6; }
    addDate(y, m, d) {
      const n = new Date(this.__d.getTime());
      n.setUTCFullYear(n.getUTCFullYear() + (y | 0), n.getUTCMonth() + (m | 0), n.getUTCDate() + (d | 0));
      return new DateTime(n);
    }
    before(o) { return this.__d.getTime() < parseDate(o).getTime(); }
    after(o) { return this.__d.getTime() > parseDate(o).getTime(); }
    equal(o) { return this.__d.getTime() === parseDate(o).getTime(); }
    compare(o) { const a = this.__d.getTime(), b = parseDate(o).getTime(); return a < b ? -1 : a > b ? 1 : 0; }
  }

  // ------------------------------------------------------------------ collections
  class Field {
    constructor(data) {
      Object.assign(this, data || {});
      if (!this.type) this.type = "text";
    }
  }
  function fieldClass(type) {
    return class extends Field {
      constructor(data) { super(Object.assign({}, data || {}, { type })); }
    };
  }
  class FieldsList extends Array {
    getByName(name) { return this.find((f) => f.name === name) || null; }
    getById(id) { return this.find((f) => f.id === id) || null; }
    removeByName(name) { const i = this.findIndex((f) => f.name === name); if (i >= 0) this.splice(i, 1); }
    removeById(id) { const i = this.findIndex((f) => f.id === id); if (i >= 0) this.splice(i, 1); }
    fieldNames() { return this.map((f) => f.name); }
    asMap() { const m = {}; for (const f of this) m[f.name] = f; return m; }
    add(...fields) { for (const f of fields) this.__put(f, -1); }
    addAt(pos, ...fields) { let at = Number(pos) | 0; for (const f of fields) { this.__put(f, at); at++; } }
    addMarshaledJSON(json) { for (const f of JSON.parse(toString(json))) this.add(new Field(f)); }
    __put(field, at) {
      const f = field instanceof Field ? field : new Field(field);
      const same = this.findIndex((x) => (f.id && x.id === f.id) || (!f.id && x.name === f.name));
      if (same >= 0) {
        if (at < 0) { this[same] = f; return; }
        this.splice(same, 1);
      }
      if (at < 0 || at >= this.length) this.push(f);
      else this.splice(at, 0, f);
    }
  }
  class Collection {
    constructor(data) {
      data = data || {};
      this.id = "";
      this.name = "";
      this.type = "base";
      this.system = false;
      this.listRule = null; this.viewRule = null; this.createRule = null;
      this.updateRule = null; this.deleteRule = null;
      this.fields = new FieldsList();
      this.indexes = [];
      this.__unmarshal(data);
    }
    __unmarshal(data) {
      for (const key of Object.keys(data || {})) {
        if (key === "fields") {
          const list = new FieldsList();
          for (const f of data.fields || []) list.push(f instanceof Field ? f : new Field(f));
          this.fields = list;
        } else if (key === "schema") {
          continue;
        } else this[key] = data[key];
      }
    }
    isAuth() { return this.type === "auth"; }
    isBase() { return this.type === "base"; }
    isView() { return this.type === "view"; }
    tableName() { return this.name; }
    addIndex(name, unique, columns, where) {
      this.removeIndex(name);
      let sql = "CREATE " + (unique ? "UNIQUE " : "") + "INDEX `" + name + "` ON `" + this.name + "` (" + columns + ")";
      if (where) sql += " WHERE " + where;
      this.indexes.push(sql);
    }
    removeIndex(name) {
      this.indexes = (this.indexes || []).filter((ix) => !new RegExp("INDEX\\s+(IF NOT EXISTS\\s+)?[`\"\\[]?" + name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + "[`\"\\]]?\\s", "i").test(ix));
    }
    getIndex(name) { return (this.indexes || []).find((ix) => ix.includes(name)) || ""; }
    toJSON() {
      const out = {};
      for (const key of Object.keys(this)) if (!key.startsWith("__")) out[key] = this[key];
      out.fields = Array.from(this.fields || []).map((f) => Object.assign({}, f));
      return out;
    }
  }
  function collectionOf(c) {
    if (c instanceof Collection) return c;
    if (c && typeof c === "object") {
      // A definition the host sent along: kept for the records of this invocation.
      const made = new Collection(c);
      if (made.id) collectionCache[made.id] = made;
      if (made.name) collectionCache[made.name] = made;
      return made;
    }
    const key = String(c);
    if (!collectionCache[key]) {
      // Through the running app's transaction: a collection a migration just created exists
      // only there.
      const def = host("collection", { nameOrId: key, tx: G.$app ? G.$app.__tx : null });
      const made = new Collection(def);
      collectionCache[made.id] = made;
      collectionCache[made.name] = made;
      collectionCache[key] = made;
    }
    return collectionCache[key];
  }

  // ------------------------------------------------------------------ records
  const MULTI = { select: true, relation: true, file: true };
  function isMulti(field) {
    return MULTI[field.type] && (field.maxSelect || 1) > 1;
  }
  function toBool(v) {
    if (typeof v === "boolean") return v;
    if (typeof v === "number") return v !== 0;
    if (typeof v === "string") return ["1", "t", "T", "true", "TRUE", "True"].includes(v.trim());
    return !!v;
  }
  function toNumber(v) {
    if (v === null || v === undefined || v === "") return 0;
    if (typeof v === "boolean") return v ? 1 : 0;
    const n = Number(v);
    return isFinite(n) ? n : 0;
  }
  function toStr(v) {
    if (v === null || v === undefined) return "";
    if (v instanceof DateTime) return v.string();
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }
  function toList(v) {
    if (v === null || v === undefined || v === "") return [];
    const list = Array.isArray(v) ? v : [v];
    const out = [];
    for (const x of list) { const s = toStr(x); if (s !== "" && !out.includes(s)) out.push(s); }
    return out;
  }
  function blankFor(field) {
    switch (field.type) {
      case "number": return 0;
      case "bool": return false;
      case "json": return null;
      case "geoPoint": return { lon: 0, lat: 0 };
      default: return isMulti(field) ? [] : "";
    }
  }
  function castFor(field, v) {
    switch (field.type) {
      case "number": return toNumber(v);
      case "bool": return toBool(v);
      case "json": return v === undefined ? null : v;
      case "geoPoint": return v && typeof v === "object" ? { lon: toNumber(v.lon), lat: toNumber(v.lat) } : { lon: 0, lat: 0 };
      case "date": case "autodate": return v instanceof DateTime ? v.string() : toStr(v);
      default:
        if (isMulti(field)) return toList(v);
        if (Array.isArray(v)) return v.length ? toStr(v[v.length - 1]) : "";
        return toStr(v);
    }
  }

  class Record {
    constructor(collection, data) {
      this.__cl = collection === undefined || collection === null ? null : collectionOf(collection);
      this.__d = {};
      this.__orig = null;
      this.__new = true;
      this.__hidden = {};
      this.__visible = {};
      this.__custom = false;
      this.__extra = {};
      this.__expand = {};
      this.__password = {};
      this.__ignoreEmailVisibility = false;
      if (this.__c) for (const f of this.__c.fields) this.__d[f.name] = blankFor(f);
      if (this.__c && this.__c.type === "auth" && this.__d.tokenKey === "") this.__d.tokenKey = "";
      // A new record's original state is its blank one (what `original()` answers).
      if (this.__c) this.__orig = JSON.parse(JSON.stringify(this.__d));
      if (data && typeof data === "object") for (const k of Object.keys(data)) this.set(k, data[k]);
    }
    // A record the host sent names its collection by id (and name); the definition is looked
    // up on first use only, so an event's auth record costs no host call unless a handler
    // reads its schema.
    get __c() {
      if (this.__cl === undefined) this.__cl = collectionOf(this.__cid);
      return this.__cl;
    }
    set __c(c) { this.__cl = c; }
    __field(name) { return this.__c ? this.__c.fields.find((f) => f.name === name) : null; }
    get id() { return this.__d.id === undefined ? "" : this.__d.id; }
    pk() { return this.id; }
    set id(v) { this.__d.id = toStr(v); }
    collection() { return this.__c; }
    tableName() {
      if (this.__cl === undefined && this.__cname) return this.__cname;
      return this.__c ? this.__c.name : "";
    }
    isNew() { return this.__new; }
    markAsNew() { this.__new = true; }
    markAsNotNew() { this.__new = false; }
    get(key) {
      key = String(key);
      if (key === "expand") return this.__expand;
      if (Object.prototype.hasOwnProperty.call(this.__d, key)) {
        const f = this.__field(key);
        // The plain text set on this record (never a stored hash).
        if (f && f.type === "password") return this.__password[key] === undefined ? "" : this.__password[key];
        return this.__d[key];
      }
      if (Object.prototype.hasOwnProperty.call(this.__extra, key)) return this.__extra[key];
      return null;
    }
    getRaw(key) { return this.__d[key] === undefined ? null : this.__d[key]; }
    set(key, value) {
      key = String(key);
      this.__rendered = null;
      if (key === "expand") { this.__expand = value || {}; return; }
      let op = "";
      let name = key;
      if (key.endsWith("+") || key.endsWith("-")) { op = key[key.length - 1]; name = key.slice(0, -1); }
      else if (key.startsWith("+")) { op = "^"; name = key.slice(1); }
      else if (key.endsWith(":autogenerate")) { name = key.slice(0, -13); const f = this.__field(name); if (f && f.type === "text") this.__d[name] = __security.random(f.max && f.max < 15 ? f.max : 15, ""); return; }
      const f = this.__field(name);
      if (!f) { if (name === "id") this.id = value; else this.__extra[name] = value; return; }
      if (f.type === "password") { this.setPassword(value); return; }
      const cur = this.__d[name];
      if (op === "+" || op === "-" || op === "^") {
        if (f.type === "number") { this.__d[name] = toNumber(cur) + (op === "-" ? -1 : 1) * toNumber(value); return; }
        const list = toList(cur);
        const add = toList(value);
        let next;
        if (op === "-") next = list.filter((x) => !add.includes(x));
        else if (op === "^") next = add.concat(list.filter((x) => !add.includes(x)));
        else next = list.concat(add.filter((x) => !list.includes(x)));
        this.__d[name] = isMulti(f) ? next : (next.length ? next[next.length - 1] : "");
        return;
      }
      this.__d[name] = castFor(f, value);
    }
    load(data) { for (const k of Object.keys(data || {})) this.set(k, data[k]); }
    getString(k) { return toStr(this.get(k)); }
    getInt(k) { const n = toNumber(this.get(k)); return n < 0 ? Math.ceil(n) : Math.floor(n); }
    getInt64(k) { return this.getInt(k); }
    getFloat(k) { return toNumber(this.get(k)); }
    getBool(k) { return toBool(this.get(k)); }
    // An empty value is the zero time (`new DateTime("")` would be now).
    getDateTime(k) { const v = this.get(k); if (v) return new DateTime(v); const z = new DateTime(); z.__d = new Date(NaN); return z; }
    getStringSlice(k) { return toList(this.get(k)); }
    getGeoPoint(k) { return this.get(k); }
    unmarshalJSONField(k, dst) { unmarshal(this.get(k), dst); }
    email() { return toStr(this.__d.email); }
    setEmail(v) { this.__d.email = toStr(v); }
    verified() { return toBool(this.__d.verified); }
    setVerified(v) { this.__d.verified = toBool(v); }
    emailVisibility() { return toBool(this.__d.emailVisibility); }
    setEmailVisibility(v) { this.__d.emailVisibility = toBool(v); }
    tokenKey() { return toStr(this.__d.tokenKey); }
    setTokenKey(v) { this.__d.tokenKey = toStr(v); }
    refreshTokenKey() { this.__d.tokenKey = __security.random(50, ""); }
    setPassword(p) { this.__password.password = toStr(p); this.__d.password = ""; this.refreshTokenKey(); }
    setRandomPassword() { const p = __security.random(30, ""); this.setPassword(p); return p; }
    validatePassword(p) {
      if (Object.prototype.hasOwnProperty.call(this.__password, "password")) return this.__password.password === toStr(p) && toStr(p) !== "";
      const hash = this.__d.password;
      if (!hash) return false;
      return !!host("validatePassword", { hash, password: toStr(p) });
    }
    isSuperuser() { return this.tableName() === "_superusers"; }
    newAuthToken() { return host("authToken", { record: this.__export(), kind: "auth" }); }
    newVerificationToken() { return host("authToken", { record: this.__export(), kind: "verification" }); }
    newPasswordResetToken() { return host("authToken", { record: this.__export(), kind: "passwordReset" }); }
    newFileToken() { return host("authToken", { record: this.__export(), kind: "file" }); }
    hide(...names) { for (const n of names.flat()) { this.__hidden[n] = true; delete this.__visible[n]; } return this; }
    unhide(...names) { for (const n of names.flat()) { this.__visible[n] = true; delete this.__hidden[n]; } return this; }
    withCustomData(on) { this.__custom = !!on; return this; }
    ignoreEmailVisibility(on) { this.__ignoreEmailVisibility = !!on; return this; }
    customData() { return Object.assign({}, this.__extra); }
    fieldsData() { return Object.assign({}, this.__d); }
    expandedOne(name) { const v = this.__expand[name]; return Array.isArray(v) ? (v[0] || null) : (v || null); }
    expandedAll(name) { const v = this.__expand[name]; return Array.isArray(v) ? v : v ? [v] : []; }
    setExpand(m) { this.__expand = m || {}; }
    mergeExpand(m) { Object.assign(this.__expand, m || {}); }
    original() {
      const r = new Record(this.__c);
      r.__d = JSON.parse(JSON.stringify(this.__orig || this.__d));
      r.__new = this.__new;
      return r;
    }
    fresh() { const r = new Record(this.__c); r.__d = JSON.parse(JSON.stringify(this.__d)); r.__new = this.__new; r.__orig = this.__orig; return r; }
    clone() {
      const r = this.fresh();
      r.__hidden = Object.assign({}, this.__hidden); r.__visible = Object.assign({}, this.__visible);
      r.__custom = this.__custom; r.__extra = Object.assign({}, this.__extra);
      r.__expand = Object.assign({}, this.__expand); r.__password = Object.assign({}, this.__password);
      return r;
    }
    __export() {
      return {
        collectionId: this.__cl === undefined ? this.__cid : this.__c ? this.__c.id : "",
        data: this.__d,
        isNew: this.__new,
        password: this.__password.password === undefined ? null : this.__password.password,
        hidden: Object.keys(this.__hidden),
        visible: Object.keys(this.__visible),
        custom: this.__custom ? this.__extra : null,
        ignoreEmailVisibility: this.__ignoreEmailVisibility,
        expand: Object.keys(this.__expand).length ? jsonOf(this.__expand) : null,
      };
    }
    __absorb(out) {
      if (!out) return;
      if (out.data) { this.__d = out.data; }
      if (out.original !== undefined) this.__orig = out.original;
      if (out.isNew !== undefined) this.__new = out.isNew;
      if (out.stored) { this.__password = {}; this.__new = false; this.__orig = JSON.parse(JSON.stringify(this.__d)); }
      if (out.expand) this.__expand = recordsIn(out.expand);
    }
    publicExport() {
      if (this.__rendered) { const o = jsonOf(this.__rendered); for (const k of Object.keys(this.__hidden)) delete o[k]; return o; }
      const out = { collectionId: this.__c ? this.__c.id : "", collectionName: this.__c ? this.__c.name : "" };
      const hideEmail = this.__c && this.__c.type === "auth" && !this.__ignoreEmailVisibility && !toBool(this.__d.emailVisibility);
      for (const f of this.__c ? this.__c.fields : []) {
        const name = f.name;
        if (f.type === "password" || name === "tokenKey") continue;
        if ((f.hidden && !this.__visible[name]) || this.__hidden[name]) continue;
        if (name === "email" && hideEmail) continue;
        out[name] = this.__d[name];
      }
      if (this.__custom) for (const k of Object.keys(this.__extra)) if (!this.__hidden[k]) out[k] = this.__extra[k];
      if (Object.keys(this.__expand).length) out.expand = jsonOf(this.__expand);
      return out;
    }
    toJSON() { return this.publicExport(); }
    __unmarshal(data) { this.load(data); }
  }
  function jsonOf(v) { return JSON.parse(JSON.stringify(v)); }

  // A record as the host sends it: {collectionId, data, expand?}.
  function recordFrom(wire) {
    if (!wire) return null;
    const r = new Record(null);
    if (wire.collectionId) {
      const cached = collectionCache[wire.collectionId];
      r.__cl = cached;
      r.__cid = wire.collectionId;
      r.__cname = wire.collectionName ? String(wire.collectionName) : "";
    }
    r.__d = wire.data || {};
    r.__new = false;
    r.__orig = JSON.parse(JSON.stringify(r.__d));
    if (wire.expand) r.__expand = recordsIn(wire.expand);
    return r;
  }
  function recordsIn(expand) {
    const out = {};
    for (const k of Object.keys(expand || {})) {
      const v = expand[k];
      out[k] = Array.isArray(v) ? v.map(recordFrom) : recordFrom(v);
    }
    return out;
  }

  class DynamicModel {
    constructor(shape) {
      this.__shape = {};
      for (const k of Object.keys(shape || {})) {
        const v = shape[k];
        this.__shape[k] = v;
        this[k] = v && typeof v === "object" && v.__nullable ? null : (v && typeof v === "object" && !Array.isArray(v) ? new Dyn({}) : v);
      }
    }
    __unmarshal(src) {
      if (!src || typeof src !== "object" || Array.isArray(src)) throw new GoError("json: cannot unmarshal into the model");
      for (const k of Object.keys(this.__shape)) {
        if (!(k in src)) continue;
        const shape = this.__shape[k];
        const v = src[k];
        const kind = shape && shape.__nullable ? shape.kind : shape;
        if (v === null) { this[k] = shape && shape.__nullable ? null : this[k]; continue; }
        if (typeof kind === "string" && typeof v !== "string") throw new GoError("json: cannot unmarshal " + typeof v + " into Go struct field ." + k + " of type string");
        if (typeof kind === "number" && typeof v !== "number") throw new GoError("json: cannot unmarshal " + typeof v + " into Go struct field ." + k + " of type number");
        if (typeof kind === "boolean" && typeof v !== "boolean") throw new GoError("json: cannot unmarshal " + typeof v + " into Go struct field ." + k + " of type bool");
        if (Array.isArray(kind) && !Array.isArray(v)) throw new GoError("json: cannot unmarshal into Go struct field ." + k + " of type slice");
        if (kind && typeof kind === "object" && !Array.isArray(kind)) { this[k] = new Dyn(v); continue; }
        this[k] = v;
      }
    }
    toJSON() { const o = {}; for (const k of Object.keys(this.__shape)) o[k] = this[k]; return o; }
  }
  class Dyn {
    constructor(v) { this.__v = v; if (v && typeof v === "object") Object.assign(this, v); }
    get(k) { return this.__v && typeof this.__v === "object" && k in this.__v ? this.__v[k] : null; }
    toJSON() { return this.__v; }
  }
  function nullable(kind) { return { __nullable: true, kind }; }

  // ------------------------------------------------------------------ the app
  const storeOps = (app) => ({
    get: (k) => host("store", { op: "get", key: String(k) }),
    set: (k, v) => { host("store", { op: "set", key: String(k), value: v === undefined ? null : v }); },
    has: (k) => !!host("store", { op: "has", key: String(k) }),
    remove: (k) => { host("store", { op: "remove", key: String(k) }); },
    removeAll: () => { host("store", { op: "removeAll" }); },
    getOrSet: (k, f) => {
      if (host("store", { op: "has", key: String(k) })) return host("store", { op: "get", key: String(k) });
      const v = typeof f === "function" ? f() : f;
      host("store", { op: "set", key: String(k), value: v === undefined ? null : v });
      return v;
    },
    keys: () => host("store", { op: "keys" }),
    length: () => host("store", { op: "keys" }).length,
    getAll: () => host("store", { op: "all" }),
    values: () => Object.values(host("store", { op: "all" })),
    setIfLessThanLimit: (k, v, limit) => !!host("store", { op: "setIfLessThanLimit", key: String(k), value: v === undefined ? null : v, limit: Math.max(0, Math.floor(Number(limit) || 0)) }),
  });

  // What a rule may read of a request info besides its auth (`@request.method`, `.query`,
  // `.headers`, `.body`, `.context`).
  function infoOf(info) {
    if (!info || typeof info !== "object") return null;
    return jsonOf({ method: info.method || "", query: info.query || {}, headers: info.headers || {}, body: info.body || {}, context: info.context || "" });
  }
  function filterParams(params) { return params && typeof params === "object" ? jsonOf(params) : {}; }
  function exprsToFilter(exprs) {
    // `$dbx.hashExp({...})` expressions become filters; raw SQL (`$dbx.exp`) is not supported.
    const parts = [];
    const params = {};
    let n = 0;
    for (const e of exprs) {
      if (!e) continue;
      if (e.__filter !== undefined) { parts.push("(" + e.__filter + ")"); Object.assign(params, e.__params || {}); continue; }
      if (e.__hash) {
        for (const k of Object.keys(e.__hash)) {
          const v = e.__hash[k];
          const name = "__h" + n++;
          if (v === null) parts.push(k + " = ''");
          else if (Array.isArray(v)) parts.push("(" + (v.length ? v.map((x, i) => { params[name + "_" + i] = x; return k + " = {:" + name + "_" + i + "}"; }).join(" || ") : "1 = 0") + ")");
          else { params[name] = v; parts.push(k + " = {:" + name + "}"); }
        }
        continue;
      }
      throw new GoError("raw SQL expressions are not supported by Plinth's hooks; use a filter");
    }
    return { filter: parts.join(" && "), params };
  }

  class App {
    constructor(tx) { this.__tx = tx === undefined ? null : tx; }
    __call(op, args) { const a = Object.assign({}, args || {}); a.tx = this.__tx; return host(op, a); }
    isTransactional() { return this.__tx !== null; }
    findCollectionByNameOrId(x) {
      const def = this.__call("collection", { nameOrId: String(x) });
      return new Collection(def);
    }
    findCachedCollectionByNameOrId(x) { return this.findCollectionByNameOrId(x); }
    findAllCollections(...types) {
      return this.__call("collections", { types: types.flat().map(String) }).map((c) => new Collection(c));
    }
    findRecordById(c, id) {
      return recordFrom(this.__call("findRecordById", { collection: nameOf(c), id: String(id) }));
    }
    findRecordsByIds(c, ids) {
      return this.__call("findRecordsByIds", { collection: nameOf(c), ids: (ids || []).map(String) }).map(recordFrom);
    }
    findFirstRecordByData(c, key, value) {
      return recordFrom(this.__call("findFirstRecordByData", { collection: nameOf(c), key: String(key), value: value === undefined ? null : value }));
    }
    findFirstRecordByFilter(c, filter, params) {
      return recordFrom(this.__call("findFirstRecordByFilter", { collection: nameOf(c), filter: String(filter || ""), params: filterParams(params) }));
    }
    findRecordsByFilter(c, filter, sort, limit, offset, params) {
      return this.__call("findRecordsByFilter", {
        collection: nameOf(c), filter: String(filter || ""), sort: String(sort || ""),
        limit: Number(limit) || 0, offset: Number(offset) || 0, params: filterParams(params),
      }).map(recordFrom);
    }
    findAllRecords(c, ...exprs) {
      const f = exprsToFilter(exprs);
      return this.__call("findRecordsByFilter", { collection: nameOf(c), filter: f.filter, sort: "", limit: 0, offset: 0, params: f.params }).map(recordFrom);
    }
    countRecords(c, ...exprs) {
      const f = exprsToFilter(exprs);
      return this.__call("countRecords", { collection: nameOf(c), filter: f.filter, params: f.params });
    }
    findAuthRecordByEmail(c, email) {
      return recordFrom(this.__call("findAuthRecordByEmail", { collection: nameOf(c), email: String(email) }));
    }
    findAuthRecordByToken(token, type) {
      return recordFrom(this.__call("findAuthRecordByToken", { token: String(token), type: String(type || "auth") }));
    }
    save(model) { this.__save(model, true); }
    saveNoValidate(model) { this.__save(model, false); }
    __save(model, validate) {
      if (model instanceof Record) {
        const out = this.__call("saveRecord", { record: model.__export(), validate });
        model.__absorb(out);
        return;
      }
      if (model instanceof Collection) {
        const out = this.__call("saveCollection", { collection: model.toJSON() });
        model.__unmarshal(out);
        collectionCache = {};
        return;
      }
      if (model && model.__settings) { this.__call("saveSettings", { settings: model.toJSON() }); return; }
      throw new GoError("unsupported model");
    }
    validate(model) {
      if (model instanceof Record) { this.__call("validateRecord", { record: model.__export() }); return; }
      throw new GoError("unsupported model");
    }
    delete(model) {
      if (model instanceof Record) { this.__call("deleteRecord", { record: model.__export() }); return; }
      if (model instanceof Collection) { this.__call("deleteCollection", { id: model.id || model.name }); collectionCache = {}; return; }
      throw new GoError("unsupported model");
    }
    truncateCollection(c) { this.__call("truncateCollection", { collection: nameOf(c) }); }
    importCollections(list, deleteMissing) {
      this.__call("importCollections", { collections: jsonOf(list || []), deleteMissing: !!deleteMissing });
      collectionCache = {};
    }
    importCollectionsByMarshaledJSON(json, deleteMissing) { this.importCollections(JSON.parse(toString(json)), deleteMissing); }
    runInTransaction(fn) {
      if (this.__tx !== null) {
        this.__call("savepoint", {});
        try { fn(this); } catch (err) { try { this.__call("rollbackToSavepoint", {}); } catch (_) { /* already gone */ } throw err; }
        this.__call("releaseSavepoint", {});
        return;
      }
      const tx = host("begin", {});
      const txApp = new App(tx);
      const previous = G.$app;
      G.$app = txApp;
      try {
        fn(txApp);
      } catch (err) {
        try { host("rollback", { tx }); } catch (_) { /* already gone */ }
        G.$app = previous;
        throw err;
      }
      G.$app = previous;
      host("commit", { tx });
    }
    expandRecord(record, expands, _fetch) {
      const out = this.__call("expandRecord", { record: record.__export(), expand: (expands || []).map(String) });
      if (out) record.__expand = recordsIn(out);
      return {};
    }
    expandRecords(records, expands, fetch) { for (const r of records || []) this.expandRecord(r, expands, fetch); return {}; }
    canAccessRecord(record, info, rule) {
      if (rule === null || rule === undefined) return false;
      return !!this.__call("canAccessRecord", { record: record.__export(), rule: String(rule), auth: info && info.auth ? info.auth.__export() : null, info: infoOf(info) });
    }
    logger() { return makeLogger([]); }
    settings() { const s = this.__call("settings", {}); return makeSettings(s); }
    store() { return storeOps(this); }
    newMailClient() {
      const app = this;
      return { send(message) { app.__call("sendMail", { message: jsonOf(message) }); } };
    }
    dataDir() { return this.__call("dataDir", {}); }
    isDev() { return false; }
    isBootstrapped() { return true; }
    cron() {
      return {
        add: (id, expr, fn) => cronAdd(id, expr, fn),
        remove: (id) => cronRemove(id),
        hasStarted: () => true,
        total: () => host("crons", {}).length,
      };
    }
    subscriptionsBroker() { return subscriptionsBroker(this); }
    isCollectionNameUnique(name, ...excludeIds) {
      const lower = String(name).toLowerCase();
      const excluded = excludeIds.flat().map(String);
      return !this.findAllCollections().some((c) => String(c.name).toLowerCase() === lower && !excluded.includes(String(c.id)));
    }
    db() { throw new GoError("$app.db() raw SQL is not supported by Plinth's hooks; use the finders and filters"); }
    recordQuery() { throw new GoError("$app.recordQuery() is not supported by Plinth's hooks; use findRecordsByFilter"); }
  }
  function nameOf(c) {
    if (c instanceof Collection) return c.id || c.name;
    return String(c);
  }
  function makeLogger(attrs) {
    const log = (level) => (msg, ...kv) => { host("log", { level, message: toStr(msg), attrs: attrs.concat(kv.map((x) => (x instanceof DateTime ? x.string() : x))) }); };
    return {
      debug: log(-4), info: log(0), warn: log(4), error: log(8),
      with: (...kv) => makeLogger(attrs.concat(kv)),
      withGroup: (_name) => makeLogger(attrs),
    };
  }
  function makeSettings(s) {
    const o = jsonOf(s || {});
    Object.defineProperty(o, "__settings", { value: true });
    o.toJSON = function () { const c = Object.assign({}, this); delete c.toJSON; return c; };
    Object.defineProperty(o, "toJSON", { enumerable: false });
    return o;
  }

  // ------------------------------------------------------------------ outbound
  const $http = {
    send(config) {
      config = config || {};
      let body = config.body;
      let form = null;
      if (body instanceof FormData) { form = body.__entries(); body = null; }
      if (body !== undefined && body !== null && typeof body !== "string") body = toString(body);
      const out = host("httpSend", {
        url: String(config.url || ""), method: String(config.method || "GET").toUpperCase(),
        headers: config.headers || {}, body: body === undefined ? null : body, form,
        data: config.data === undefined ? null : config.data,
        timeout: Number(config.timeout) || 120,
      });
      let json = null;
      try { json = JSON.parse(out.body); } catch (_) { json = null; }
      return {
        statusCode: out.statusCode,
        headers: out.headers,
        cookies: out.cookies || {},
        raw: out.body,
        body: { __bytes: utf8(out.body), length: out.body.length, toString() { return out.body; } },
        json,
      };
    },
  };
  class FormData {
    constructor() { this.__list = []; }
    append(k, v) { this.__list.push([String(k), v]); }
    set(k, v) { this.delete(k); this.append(k, v); }
    get(k) { const e = this.__list.find((x) => x[0] === k); return e ? e[1] : null; }
    getAll(k) { return this.__list.filter((x) => x[0] === k).map((x) => x[1]); }
    has(k) { return this.__list.some((x) => x[0] === k); }
    delete(k) { this.__list = this.__list.filter((x) => x[0] !== k); }
    keys() { return this.__list.map((x) => x[0]); }
    values() { return this.__list.map((x) => x[1]); }
    entries() { return this.__list.map((x) => [x[0], x[1]]); }
    __entries() { return this.__list.map((x) => [x[0], toStr(x[1])]); }
  }

  function parseJWTPart(part) { return JSON.parse(__security.unb64(part)); }
  const $security = {
    md5: (s) => __security.digest("md5", toStr(s)),
    sha256: (s) => __security.digest("sha256", toStr(s)),
    sha512: (s) => __security.digest("sha512", toStr(s)),
    hs256: (s, k) => __security.hmac("sha256", toStr(s), toStr(k)),
    hs512: (s, k) => __security.hmac("sha512", toStr(s), toStr(k)),
    equal: (a, b) => __security.equal(toStr(a), toStr(b)),
    randomString: (n) => __security.random(Number(n) || 0, ""),
    randomStringWithAlphabet: (n, a) => __security.random(Number(n) || 0, toStr(a)),
    pseudorandomString: (n) => __security.random(Number(n) || 0, ""),
    pseudorandomStringWithAlphabet: (n, a) => __security.random(Number(n) || 0, toStr(a)),
    randomStringByRegex: (pattern) => host("randomStringByRegex", { pattern: String(pattern) }),
    createJWT(payload, key, seconds) {
      const claims = Object.assign({}, payload || {});
      if (Number(seconds) > 0) claims.exp = Math.floor(Date.now() / 1000) + Math.floor(Number(seconds));
      const head = __security.b64(JSON.stringify({ alg: "HS256", typ: "JWT" }));
      const body = __security.b64(JSON.stringify(sortedJSON(claims)));
      return head + "." + body + "." + __security.jwtSign(head + "." + body, toStr(key));
    },
    parseUnverifiedJWT(token) {
      const parts = String(token).split(".");
      if (parts.length !== 3) throw new GoError("token is malformed: token contains an invalid number of segments");
      try { return parseJWTPart(parts[1]); } catch (_) { throw new GoError("token is malformed: could not JSON decode claim"); }
    },
    parseJWT(token, key) {
      const parts = String(token).split(".");
      if (parts.length !== 3) throw new GoError("token is malformed: token contains an invalid number of segments");
      let header;
      try { header = parseJWTPart(parts[0]); } catch (_) { throw new GoError("token is malformed: could not JSON decode header"); }
      if (!header || header.alg !== "HS256") throw new GoError("token is unverifiable: signing method " + (header && header.alg) + " is invalid");
      const expected = __security.jwtSign(parts[0] + "." + parts[1], toStr(key));
      if (!__security.equal(expected, parts[2])) throw new GoError("token signature is invalid: signature is invalid");
      let claims;
      try { claims = parseJWTPart(parts[1]); } catch (_) { throw new GoError("token is malformed: could not JSON decode claim"); }
      if (claims && typeof claims.exp === "number" && claims.exp < Date.now() / 1000) throw new GoError("token has invalid claims: token is expired");
      return claims;
    },
    encrypt: (data, key) => host("encrypt", { data: toStr(data), key: toStr(key) }),
    decrypt: (data, key) => host("decrypt", { data: toStr(data), key: toStr(key) }),
  };

  const $os = {
    getenv: (name) => __getenv(String(name)),
    readFile: (path) => utf8(__readFile(String(path))),
    args: [],
  };
  // Go's `path/filepath` on Unix: `join` and `dir` clean their result, `ext` is everything
  // from the last dot of the last element (`.bashrc` included).
  function cleanPath(p) {
    p = String(p);
    if (p === "") return ".";
    const rooted = p[0] === "/";
    const out = [];
    for (const part of p.split("/")) {
      if (part === "" || part === ".") continue;
      if (part === "..") {
        if (out.length && out[out.length - 1] !== "..") out.pop();
        else if (!rooted) out.push("..");
        continue;
      }
      out.push(part);
    }
    const joined = out.join("/");
    return rooted ? "/" + joined : joined || ".";
  }
  const $filepath = {
    clean: cleanPath,
    join: (...parts) => { const kept = parts.map(String).filter((x) => x !== ""); return kept.length ? cleanPath(kept.join("/")) : ""; },
    base: (p) => { p = String(p); if (p === "") return "."; p = p.replace(/\/+$/, ""); return p === "" ? "/" : p.slice(p.lastIndexOf("/") + 1); },
    dir: (p) => { p = String(p); return cleanPath(p.slice(0, p.lastIndexOf("/") + 1)); },
    ext: (p) => { p = String(p); for (let i = p.length - 1; i >= 0 && p[i] !== "/"; i--) if (p[i] === ".") return p.slice(i); return ""; },
    isAbs: (p) => String(p).startsWith("/"),
    split: (p) => { p = String(p); const i = p.lastIndexOf("/") + 1; return [p.slice(0, i), p.slice(i)]; },
  };

  // `$dbx` expressions become filters of the rule language (values bound as parameters);
  // raw SQL (`$dbx.exp`) is not supported.
  let dbxParam = 0;
  function dbxFilter(filter, params) { return { __filter: filter, __params: params || {} }; }
  function escapeLike(v) { return String(v).replace(/[\\%_]/g, (c) => "\\" + c); }
  // Each expression knows its negation (`__neg`), for `$dbx.not`: the rule language has no
  // NOT, so it is pushed down to the comparisons (De Morgan).
  function likeExpr(col, values, op, join, lr) {
    const parts = [];
    const params = {};
    let sides = lr || [true, true];
    const build = (l, r) => {
      parts.length = 0;
      for (const v of values) {
        const name = "__d" + dbxParam++;
        params[name] = (l ? "%" : "") + escapeLike(v) + (r ? "%" : "");
        parts.push(col + " " + op + " {:" + name + "}");
      }
      return parts.join(join) || "1 = 1";
    };
    const expr = dbxFilter(build(sides[0], sides[1]), params);
    expr.match = (l, r) => { sides = [!!l, !!r]; expr.__filter = build(sides[0], sides[1]); return expr; };
    expr.escape = () => expr;
    expr.__neg = () => likeExpr(col, values, op === "~" ? "!~" : "~", join === " && " ? " || " : " && ", sides);
    return expr;
  }
  function inExpr(col, values, negate) {
    const params = {};
    const parts = values.flat().map((v) => {
      const name = "__d" + dbxParam++;
      params[name] = v;
      return col + (negate ? " != " : " = ") + "{:" + name + "}";
    });
    const expr = parts.length ? dbxFilter(parts.join(negate ? " && " : " || "), params) : dbxFilter(negate ? "1 = 1" : "1 = 0", params);
    expr.__neg = () => inExpr(col, values, !negate);
    return expr;
  }
  function betweenExpr(col, a, b, negate) {
    const n1 = "__d" + dbxParam++, n2 = "__d" + dbxParam++;
    const filter = negate ? col + " < {:" + n1 + "} || " + col + " > {:" + n2 + "}" : col + " >= {:" + n1 + "} && " + col + " <= {:" + n2 + "}";
    const expr = dbxFilter(filter, { [n1]: a, [n2]: b });
    expr.__neg = () => betweenExpr(col, a, b, !negate);
    return expr;
  }
  function negateExpr(e) {
    if (!e) return dbxFilter("1 = 0", {});
    if (e.__neg) return e.__neg();
    if (e.__hash) {
      const params = {};
      const parts = [];
      for (const k of Object.keys(e.__hash)) {
        const v = e.__hash[k];
        if (v === null) { parts.push(k + " != ''"); continue; }
        const list = Array.isArray(v) ? v : [v];
        const each = list.map((x) => { const name = "__d" + dbxParam++; params[name] = x; return k + " != {:" + name + "}"; });
        parts.push(each.length ? "(" + each.join(" && ") + ")" : "1 = 1");
      }
      const expr = dbxFilter(parts.join(" || ") || "1 = 0", params);
      expr.__neg = () => e;
      return expr;
    }
    throw new GoError("raw SQL expressions are not supported by Plinth's hooks; use a filter");
  }
  function andExpr(e) {
    const f = exprsToFilter(e);
    const expr = dbxFilter(f.filter || "1 = 1", f.params);
    expr.__neg = () => orExpr(e.map(negateExpr));
    return expr;
  }
  function orExpr(e) {
    const parts = [];
    const params = {};
    for (const x of e) { const f = exprsToFilter([x]); parts.push("(" + (f.filter || "1 = 1") + ")"); Object.assign(params, f.params); }
    const expr = dbxFilter(parts.join(" || ") || "1 = 0", params);
    expr.__neg = () => andExpr(e.map(negateExpr));
    return expr;
  }
  const $dbx = {
    hashExp: (map) => ({ __hash: map || {} }),
    exp: (sql) => ({ __sql: String(sql) }),
    like: (col, ...values) => likeExpr(String(col), values, "~", " && "),
    notLike: (col, ...values) => likeExpr(String(col), values, "!~", " && "),
    orLike: (col, ...values) => likeExpr(String(col), values, "~", " || "),
    orNotLike: (col, ...values) => likeExpr(String(col), values, "!~", " || "),
    in: (col, ...values) => inExpr(String(col), values, false),
    notIn: (col, ...values) => inExpr(String(col), values, true),
    between: (col, a, b) => betweenExpr(String(col), a, b, false),
    notBetween: (col, a, b) => betweenExpr(String(col), a, b, true),
    and: (...e) => andExpr(e),
    or: (...e) => orExpr(e),
    not: negateExpr,
  };

  // `new Cookie({name, value, path, domain, expires, maxAge, secure, httpOnly, sameSite})` for
  // `e.setCookie`.
  class Cookie {
    constructor(o) { Object.assign(this, o || {}); }
  }

  // Realtime: `$app.subscriptionsBroker()` lists this node's connected clients (a snapshot
  // taken by each call) and sends them messages that are no record events.
  class SubscriptionMessage {
    constructor(o) { o = o || {}; this.name = toStr(o.name); this.data = o.data === undefined ? "" : o.data; }
  }
  function realtimeClient(app, wire) {
    const options = (s) => ({ query: s.query, headers: s.headers });
    return {
      id: () => wire.id,
      channel: () => ({}),
      subscriptions(...prefixes) {
        const out = {};
        for (const s of wire.subscriptions) {
          if (prefixes.length === 0 || prefixes.some((p) => s.name.startsWith(String(p)))) out[s.name] = options(s);
        }
        return out;
      },
      hasSubscription: (name) => wire.subscriptions.some((s) => s.name === String(name)),
      get: (key) => (String(key) === "auth" && wire.auth ? recordFrom(wire.auth) : null),
      send(message) {
        const m = message || {};
        const data = typeof m.data === "string" ? m.data : toString(m.data);
        app.__call("realtimeSend", { clientId: wire.id, name: toStr(m.name), data });
      },
      isDiscarded: () => app.__call("realtimeClients", { id: wire.id }).length === 0,
      discard: () => { app.__call("realtimeDiscard", { clientId: wire.id }); },
    };
  }
  function subscriptionsBroker(app) {
    const clients = () => {
      const out = {};
      for (const wire of app.__call("realtimeClients", {})) out[wire.id] = realtimeClient(app, wire);
      return out;
    };
    return {
      clients,
      totalClients: () => app.__call("realtimeClients", { count: true }),
      clientById(id) {
        const found = app.__call("realtimeClients", { id: toStr(id) });
        if (found.length === 0) throw new GoError(`no client associated with connection ID "${toStr(id)}"`);
        return realtimeClient(app, found[0]);
      },
      chunkedClients(size) {
        const n = Math.max(1, Math.floor(Number(size)) || 1);
        const list = Object.values(clients());
        const chunks = [];
        for (let i = 0; i < list.length; i += n) chunks.push(list.slice(i, i + n));
        return chunks;
      },
    };
  }

  class MailerMessage {
    constructor(data) { Object.assign(this, { from: {}, to: [], bcc: [], cc: [], subject: "", html: "", text: "", headers: {}, attachments: {} }, data || {}); }
  }
  const mailRecord = (kind, record, extra) => { host("sendRecordMail", Object.assign({ kind, record: record.__export() }, extra || {})); };
  const $mails = {
    sendRecordPasswordReset: (_app, record) => mailRecord("passwordReset", record),
    sendRecordVerification: (_app, record) => mailRecord("verification", record),
    sendRecordChangeEmail: (_app, record, newEmail) => mailRecord("emailChange", record, { newEmail: toStr(newEmail) }),
    sendRecordOTP: (_app, record, otpId, pass) => mailRecord("otp", record, { otpId: toStr(otpId), pass: toStr(pass) }),
    sendRecordAuthAlert: (_app, record, info) => mailRecord("authAlert", record, { info: toStr(info) }),
  };

  // ------------------------------------------------------------------ middlewares
  class Middleware {
    constructor(fn, priority, id) { this.fn = fn; this.priority = Number(priority) || 0; this.id = id ? String(id) : ""; }
  }
  const native = (name) => (...args) => ({ __native: name, args: jsonOf(args) });
  const $apis = {
    requireAuth: native("requireAuth"),
    requireSuperuserAuth: native("requireSuperuserAuth"),
    requireSuperuserOrOwnerAuth: native("requireSuperuserOrOwnerAuth"),
    requireGuestOnly: native("requireGuestOnly"),
    requireSameCollectionContextAuth: native("requireSameCollectionContextAuth"),
    bodyLimit: native("bodyLimit"),
    gzip: native("noop"),
    skipSuccessActivityLog: native("noop"),
    activityLogger: native("noop"),
    recordAuthResponse(e, record, method, meta) {
      let query = {};
      try { query = e.requestInfo().query || {}; } catch (_) { query = {}; }
      const out = host("recordAuthResponse", { record: record.__export(), method: String(method || ""), meta: meta === undefined ? null : jsonOf(meta), query });
      // An empty body: an onRecordAuthRequest handler ended the chain without writing.
      if (out && out.body) {
        if (String(out.type || "").indexOf("json") >= 0) e.json(out.status, JSON.parse(out.body));
        else e.string(out.status, out.body);
      }
    },
    enrichRecord(e, record, ...expands) {
      let info = null;
      try { info = typeof e.requestInfo === "function" ? e.requestInfo() : e.requestInfo; } catch (_) { info = null; }
      const auth = e.auth || (info && info.auth) || null;
      const out = host("enrichRecord", { record: record.__export(), expand: expands.flat().map(String), auth: auth ? auth.__export() : null, info: infoOf(info) });
      record.__expand = recordsIn(out.expand);
      // The record now answers as the records API would answer this caller.
      record.__rendered = out.json;
    },
    enrichRecords(e, records, ...expands) { for (const r of records || []) $apis.enrichRecord(e, r, ...expands); },
    static: () => { throw new GoError("$apis.static is not supported by Plinth's hooks"); },
  };

  function runNative(link, e) {
    const args = link.args || [];
    const auth = e.auth;
    switch (link.native) {
      case "requireAuth": {
        if (!auth) throw new UnauthorizedError("The request requires valid record authorization token.");
        const allowed = args.flat();
        if (allowed.length && !allowed.includes(auth.collection().name) && !allowed.includes(auth.collection().id))
          throw new ForbiddenError("The authorized record is not allowed to perform this action.");
        return e.next();
      }
      case "requireSuperuserAuth":
        if (!auth) throw new UnauthorizedError("The request requires valid record authorization token.");
        if (!auth.isSuperuser()) throw new ForbiddenError("The authorized record is not allowed to perform this action.");
        return e.next();
      case "requireSuperuserOrOwnerAuth": {
        if (!auth) throw new UnauthorizedError("The request requires superuser or record authorization token.");
        const param = args[0] ? String(args[0]) : "id";
        if (!auth.isSuperuser() && auth.id !== e.request.pathValue(param)) throw new ForbiddenError("You are not allowed to perform this request.");
        return e.next();
      }
      case "loadAuth":
        e.auth = e.__pendingAuth === undefined ? e.auth : e.__pendingAuth;
        return e.next();
      case "requireGuestOnly":
        if (auth) throw new BadRequestError("The request can be accessed only by guests.");
        return e.next();
      case "bodyLimit": {
        const limit = Number(args[0]) || 0;
        if (limit > 0 && e.request && e.request.contentLength > limit) throw new ApiError(413, "Request entity too large.");
        return e.next();
      }
      case "requireSameCollectionContextAuth": {
        if (!auth) throw new UnauthorizedError("The request requires valid record authorization token.");
        const c = e.request.pathValue(args[0] ? String(args[0]) : "collection");
        if (c && auth.collection().name !== c && auth.collection().id !== c) throw new ForbiddenError("The authorized record is not allowed to perform this action.");
        return e.next();
      }
      default:
        return e.next();
    }
  }

  // ------------------------------------------------------------------ handlers and chains
  const compiled = [];
  function handler(index) {
    let fn = compiled[index];
    if (!fn) {
      const src = JSON.parse(__handlerSource(index));
      const code = "\n".repeat(Math.max(0, (src.line | 0) - 1)) + "(" + src.source + "\n)";
      fn = __eval(code, src.file);
      if (typeof fn !== "function") throw new GoError("handler " + index + " is not a function");
      compiled[index] = fn;
    }
    return fn;
  }

  function settle(value) {
    if (value && typeof value.then === "function") {
      const state = { done: 0, value: undefined };
      value.then((v) => { state.done = 1; state.value = v; }, (err) => { state.done = 2; state.value = err; });
      __drainJobs();
      if (state.done === 2) throw state.value;
      return state.value;
    }
    return value;
  }

  function runChain(links, e, core) {
    let index = 0;
    const step = () => {
      if (index >= links.length) return core ? core(e) : undefined;
      const link = links[index++];
      let called = false;
      e.next = () => { if (called) return undefined; called = true; step(); return undefined; };
      let result;
      if (link.native !== undefined) result = runNative(link, e);
      else result = handler(link.h).apply(undefined, [e]);
      result = settle(result);
      if (isErrorValue(result)) throw result;
      return undefined;
    };
    step();
  }

  // ------------------------------------------------------------------ request events
  function firstValues(raw) {
    const out = {};
    for (const [k, v] of queryPairs(raw)) if (!(k in out)) out[k] = v;
    return out;
  }
  function queryPairs(raw) {
    const out = [];
    for (const part of String(raw || "").split("&")) {
      if (!part) continue;
      const i = part.indexOf("=");
      const k = i < 0 ? part : part.slice(0, i);
      const v = i < 0 ? "" : part.slice(i + 1);
      const dec = (s) => { try { return decodeURIComponent(s.replace(/\+/g, " ")); } catch (_) { return s; } };
      out.push([dec(k), dec(v)]);
    }
    return out;
  }
  function urlValues(raw) {
    const values = {};
    for (const [k, v] of queryPairs(raw)) (values[k] = values[k] || []).push(v);
    Object.defineProperty(values, "get", { value: (k) => (values[k] ? values[k][0] : ""), enumerable: false });
    Object.defineProperty(values, "has", { value: (k) => !!values[k], enumerable: false });
    Object.defineProperty(values, "toJSON", { value: () => { const o = {}; for (const k of Object.keys(values)) o[k] = values[k]; return o; }, enumerable: false });
    return values;
  }
  function headerBag(map) {
    const bag = {};
    const find = (k) => Object.keys(map).find((x) => x.toLowerCase() === String(k).toLowerCase());
    bag.get = (k) => { const key = find(k); return key ? map[key][0] || "" : ""; };
    bag.values = (k) => { const key = find(k); return key ? map[key].slice() : []; };
    bag.set = (k, v) => { const key = find(k) || String(k); map[key] = [toStr(v)]; };
    bag.add = (k, v) => { const key = find(k) || String(k); (map[key] = map[key] || []).push(toStr(v)); };
    bag.del = (k) => { const key = find(k); if (key) delete map[key]; };
    bag.has = (k) => !!find(k);
    return bag;
  }
  function inferForm(form) {
    const out = {};
    const infer = (v) => {
      if (typeof v !== "string") return v;
      if (v === "true") return true;
      if (v === "false") return false;
      if (/^-?[1-9]\d{0,15}$/.test(v) || v === "0") return Number(v);
      if (/^-?(0|[1-9]\d*)\.\d*[1-9]$/.test(v)) return Number(v);
      return v;
    };
    for (const k of Object.keys(form || {})) {
      const v = form[k];
      out[k] = Array.isArray(v) ? (v.length === 1 ? infer(v[0]) : v.map(infer)) : infer(v);
    }
    return out;
  }

  // The request-bound part of an event: what routes and record request events share.
  function requestEvent(req, app) {
    const e = {};
    const resHeaders = {};
    let consumed = false;
    let res = null;
    const store = {};
    e.app = app;
    e.auth = req.auth ? recordFrom(req.auth) : null;
    const body = {
      __reader: true,
      read(max) {
        if (consumed) return "";
        consumed = true;
        const text = req.body || "";
        const cap = Number(max) > 0 ? Math.min(Number(max), 16777216) : 16777216;
        return text.length > cap ? text.slice(0, cap) : text;
      },
    };
    const request = {
      method: req.method,
      host: req.host,
      proto: "HTTP/1.1",
      remoteAddr: req.remoteIP,
      requestURI: req.path + (req.rawQuery ? "?" + req.rawQuery : ""),
      url: {
        path: req.path,
        rawQuery: req.rawQuery || "",
        query: () => urlValues(req.rawQuery),
        string: () => req.path + (req.rawQuery ? "?" + req.rawQuery : ""),
      },
      header: headerBag(req.headers || {}),
      pathValue: (k) => (req.pathValues && req.pathValues[k] !== undefined ? req.pathValues[k] : ""),
      setPathValue: (k, v) => { req.pathValues = req.pathValues || {}; req.pathValues[k] = toStr(v); },
      get body() { return body; },
      // The body's size in bytes (it is read whole before a script runs).
      get contentLength() { const t = req.body || ""; let n = 0; for (let i = 0; i < t.length; i++) { const c = t.charCodeAt(i); n += c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c < 0xdc00 ? (i++, 4) : 3; } return n; },
      formValue: (k) => { const f = req.form || {}; const v = f[k]; return Array.isArray(v) ? v[0] || "" : v === undefined ? "" : toStr(v); },
    };
    const response = {
      header: () => headerBag(resHeaders),
      writeHeader: (status) => { write(status, null, ""); },
      write: (text) => { write(res ? res.status : 200, null, toString(text)); return toString(text).length; },
    };
    function write(status, type, text, extra) {
      status = Number(status) | 0;
      if (status === 0) status = 200;
      if (res) { res.body += text; return; }
      res = { status, type, body: text, headers: resHeaders, json: !!(extra && extra.json), b64: !!(extra && extra.b64) };
    }
    e.__request = request;
    e.__response = response;
    e.__res = () => res;
    e.__resHeaders = resHeaders;
    e.__markConsumed = () => { consumed = true; };
    // `undefined` values are written as `null`, as PocketBase's conversion to Go values does.
    e.json = (status, data) => { write(status, "application/json", JSON.stringify(data === undefined ? null : data, (_k, v) => (v === undefined ? null : v)), { json: true }); };
    e.string = (status, text) => { write(status, "text/plain; charset=utf-8", toStr(text)); };
    e.html = (status, text) => { write(status, "text/html; charset=utf-8", toStr(text)); };
    e.xml = (status, _data) => { write(status, "application/xml; charset=utf-8", '<?xml version="1.0" encoding="UTF-8"?>\n'); };
    e.blob = (status, type, bytes) => {
      const b = Array.isArray(bytes) ? fromUtf8(bytes) : toString(bytes);
      write(status, String(type || "application/octet-stream"), b);
    };
    e.noContent = (status) => { write(status || 204, null, ""); };
    e.redirect = (status, url) => { resHeaders.Location = [String(url)]; write(status || 302, null, ""); };
    // Written as Go's `http.Cookie` writes itself: attributes in its order, a value with a
    // space or a comma quoted, bytes a cookie value cannot hold dropped.
    e.setCookie = (cookie) => {
      if (!cookie || !cookie.name) return;
      let value = String(cookie.value === undefined || cookie.value === null ? "" : cookie.value)
        .split("").filter((ch) => { const c = ch.charCodeAt(0); return c >= 0x20 && c < 0x7f && ch !== '"' && ch !== ";" && ch !== "\\"; }).join("");
      if (value.indexOf(" ") >= 0 || value.indexOf(",") >= 0) value = '"' + value + '"';
      let text = String(cookie.name) + "=" + value;
      if (cookie.path) text += "; Path=" + cookie.path;
      if (cookie.domain) text += "; Domain=" + String(cookie.domain).replace(/^\./, "");
      // A JS Date or a date string sets it; PocketBase's DateTime does not convert (ignored).
      if (cookie.expires && typeof cookie.expires.unix !== "function") {
        const at = new Date(cookie.expires instanceof Date ? cookie.expires.getTime() : String(cookie.expires));
        if (!isNaN(at.getTime()) && at.getUTCFullYear() >= 1601) text += "; Expires=" + at.toUTCString();
      }
      const maxAge = Number(cookie.maxAge) || 0;
      if (maxAge > 0) text += "; Max-Age=" + Math.floor(maxAge);
      else if (maxAge < 0) text += "; Max-Age=0";
      if (cookie.httpOnly) text += "; HttpOnly";
      if (cookie.secure) text += "; Secure";
      const sameSite = { 2: "Lax", 3: "Strict", 4: "None" }[cookie.sameSite];
      if (sameSite) text += "; SameSite=" + sameSite;
      if (cookie.partitioned) text += "; Partitioned";
      (resHeaders["Set-Cookie"] = resHeaders["Set-Cookie"] || []).push(text);
    };
    e.stream = () => { throw new GoError("e.stream is not supported by Plinth's hooks"); };
    e.fileFS = () => { throw new GoError("e.fileFS is not supported by Plinth's hooks"); };
    e.requestInfo = () => {
      const headers = {};
      for (const k of Object.keys(req.headers || {})) headers[k.toLowerCase().replace(/-/g, "_")] = (req.headers[k] || [])[0] || "";
      return {
        body: parsedBody(),
        query: firstValues(req.rawQuery),
        headers,
        method: req.method,
        context: req.context || "default",
        auth: e.auth,
        hasSuperuserAuth: () => !!(e.auth && e.auth.isSuperuser()),
        clone: function () { return Object.assign({}, this); },
      };
    };
    function parsedBody() {
      if (req.parsedBody !== undefined && req.parsedBody !== null) return jsonOf(req.parsedBody);
      if (consumed) throw new GoError("EOF");
      const type = ((req.headers && (req.headers["content-type"] || req.headers["Content-Type"])) || [""])[0].toLowerCase();
      if (req.form) return inferForm(req.form);
      const text = req.body || "";
      if (!text) return {};
      if (type.startsWith("application/json") || type === "") {
        const v = JSON.parse(text);
        if (!v || typeof v !== "object" || Array.isArray(v)) throw new GoError("json: cannot unmarshal into the request body map");
        return v;
      }
      throw new GoError("Unsupported Content-Type.");
    }
    e.bindBody = (target) => {
      const data = parsedBody();
      if (target && typeof target.__unmarshal === "function") target.__unmarshal(data);
      else if (target && typeof target === "object") Object.assign(target, data);
    };
    e.findUploadedFiles = (field) => (req.files || []).filter((f) => f.field === field).map((f) => ({ name: f.name, originalName: f.name, size: f.size }));
    e.get = (k) => (Object.prototype.hasOwnProperty.call(store, k) ? store[k] : null);
    e.set = (k, v) => { store[k] = v; };
    e.getAll = () => Object.assign({}, store);
    e.remoteIP = () => req.remoteIP;
    e.realIP = () => req.realIP;
    e.isTLS = () => !!req.isTLS;
    e.hasSuperuserAuth = () => !!(e.auth && e.auth.isSuperuser());
    e.written = () => !!res;
    e.status = () => (res ? res.status : 0);
    e.badRequestError = (m, d) => new BadRequestError(m, d);
    e.notFoundError = (m, d) => new NotFoundError(m, d);
    e.forbiddenError = (m, d) => new ForbiddenError(m, d);
    e.unauthorizedError = (m, d) => new UnauthorizedError(m, d);
    e.tooManyRequestsError = (m, d) => new TooManyRequestsError(m, d);
    e.internalServerError = (m, d) => new InternalServerError(m, d);
    e.error = (status, m, d) => new ApiError(status, m, d);
    return e;
  }

  function routeEvent(req, app) {
    const e = requestEvent(req, app);
    e.request = e.__request;
    e.response = e.__response;
    e.event = e;
    return e;
  }

  // Record (and other) request events: PocketBase leaves `request`/`response` undefined
  // there; `requestEvent` is the underlying route event.
  function recordRequestEvent(req, app, fields) {
    const base = requestEvent(req, app);
    const re = Object.assign({}, base);
    re.request = base.__request;
    re.response = base.__response;
    const e = Object.assign({}, base);
    e.requestEvent = re;
    e.event = e;
    Object.assign(e, fields);
    return e;
  }

  // ------------------------------------------------------------------ entries
  const entries = {};

  // A route or middleware chain. arg: {links, request, core}
  entries.route = (arg) => {
    const e = routeEvent(arg.request, G.$app);
    if ((arg.links || []).some((l) => l.native === "loadAuth")) {
      e.__pendingAuth = e.auth;
      e.auth = null;
    }
    let reached = false;
    runChain(arg.links, e, arg.core ? (ev) => { reached = true; host("next", { reached: true }); } : null);
    return { response: e.__res(), reached, headers: e.__resHeaders };
  };

  // A record request hook chain. arg: {links, request, kind, collection, record?, records?, result?, extra?}
  entries.recordRequest = (arg) => {
    const fields = { collection: collectionOf(arg.collection) };
    if (arg.record) fields.record = recordFrom(arg.record);
    if (arg.record && arg.record.isNew) { fields.record.__new = true; fields.record.__orig = null; }
    // An update shows the submitted values; `original()` is the stored row.
    if (arg.record && arg.record.original) fields.record.__orig = arg.record.original;
    if (arg.records) fields.records = arg.records.map(recordFrom);
    if (arg.result) { fields.result = Object.assign({}, arg.result); fields.result.items = fields.records; }
    if (arg.extra) Object.assign(fields, arg.extra);
    const e = recordRequestEvent(arg.request, G.$app, fields);
    let reached = false;
    let coreOut = null;
    runChain(arg.links, e, () => {
      reached = true;
      coreOut = host("next", {
        record: e.record ? e.record.__export() : null,
        records: e.records ? e.records.map((r) => (r instanceof Record ? r.__export() : r)) : null,
        result: e.result ? resultOf(e.result) : null,
        extra: exportExtra(e, arg.extraKeys),
      });
      if (coreOut && coreOut.record && e.record) e.record.__absorb(coreOut.record);
      if (coreOut && coreOut.extra) Object.assign(e, coreOut.extra);
    });
    const out = { response: e.__res(), reached, record: e.record ? e.record.__export() : null, extra: exportExtra(e, arg.extraKeys) };
    if (e.records) out.records = e.records.map((r) => (r instanceof Record ? r.__export() : r));
    if (e.result) out.result = resultOf(e.result);
    return out;
  };
  function resultOf(result) { const r = Object.assign({}, result); delete r.items; return jsonOf(r); }

  // onRecordEnrich for the records of one answer: each runs the chain on its own event;
  // what comes back (values, hidden keys, custom data) shapes its JSON.
  // arg: {links, records: [wire], requestInfo}
  entries.enrich = (arg) => arg.records.map((wire) => {
    const info = arg.requestInfo ? Object.assign({}, arg.requestInfo) : null;
    if (info) info.auth = info.auth ? recordFrom(info.auth) : null;
    const e = { app: G.$app, record: recordFrom(wire), requestInfo: info };
    runChain(arg.links, e, null);
    return e.record ? e.record.__export() : null;
  });
  function exportExtra(e, keys) {
    const out = {};
    for (const k of keys || []) out[k] = e[k] === undefined ? null : jsonOf(e[k]);
    return out;
  }

  // A model hook chain (onRecordCreate, …Execute, After…Success/Error, Validate, Enrich).
  // arg: {links, record, type, core, error?, requestInfo?}
  entries.model = (arg) => {
    const e = { app: G.$app, record: recordFrom(arg.record), type: arg.type || "", context: {} };
    e.record.__new = !!arg.record.isNew;
    if (arg.record.isNew) e.record.__orig = null;
    if (arg.original) e.record.__orig = arg.original;
    if (arg.error) e.error = new GoError(arg.error);
    if (arg.requestInfo) e.requestInfo = arg.requestInfo;
    if (arg.collection) e.collection = collectionOf(arg.collection);
    let reached = false;
    runChain(arg.links, e, arg.core ? () => {
      reached = true;
      const out = host("next", { record: e.record.__export() });
      if (out && out.record) e.record.__absorb(out.record);
    } : null);
    return { reached, record: e.record.__export() };
  };

  // App lifecycle and cron jobs: handlers with an event holding only `app`.
  entries.plain = (arg) => {
    const e = Object.assign({ app: G.$app }, arg.event || {});
    let reached = false;
    runChain(arg.links, e, arg.core ? () => { reached = true; host("next", {}); } : null);
    return { reached };
  };

  // onMailerSend around one outgoing message: handlers may change e.message; the core sends
  // what they left. arg: {links, message}
  entries.mailer = (arg) => {
    const e = { app: G.$app, mailer: {}, message: new MailerMessage(arg.message || {}) };
    let reached = false;
    runChain(arg.links, e, () => { reached = true; host("next", { message: jsonOf(e.message) }); });
    return { reached };
  };

  // One cron job run: the handler is called with no arguments.
  entries.cron = (arg) => {
    settle(handler(arg.handler).apply(undefined, []));
    return null;
  };

  // A job added with cronAdd inside a handler: its source is compiled here.
  entries.cronSource = (arg) => {
    const fn = __eval("(" + arg.source + "\n)", "cron.js");
    settle(fn.apply(undefined, []));
    return null;
  };

  // Runs a migration file's top level, then its up (or down) function with a transactional app.
  entries.migration = (arg) => {
    let up = null;
    let down = null;
    let calls = 0;
    G.migrate = (u, d) => { up = u; down = d; calls++; };
    try {
      const text = __readFile(arg.file);
      __eval("(function(){" + text + "\n})()", arg.file);
    } finally {
      delete G.migrate;
    }
    if (calls === 0) return { found: false };
    const fn = arg.direction === "down" ? down : up;
    if (typeof fn === "function") settle(fn(new App(arg.tx)));
    return { found: true };
  };

  // Loads hook files: registration globals record handlers as source text.
  entries.load = (arg) => {
    const reg = { handlers: [], routes: [], middlewares: [], hooks: {}, crons: [] };
    const failures = [];
    let file = "";
    let text = "";
    const source = (fn) => {
      const src = typeof fn === "function" ? Function.prototype.toString.call(fn) : String(fn);
      let line = 1;
      const at = text.indexOf(src);
      if (at >= 0) line = text.slice(0, at).split("\n").length;
      reg.handlers.push({ source: src, file, line });
      return reg.handlers.length - 1;
    };
    const link = (x) => {
      if (x && x.__native) return { native: x.__native, args: x.args || [] };
      if (typeof x !== "function" && typeof x !== "string") throw new GoError("a handler must be a function");
      return { h: source(x) };
    };
    const mw = (x) => {
      if (x instanceof Middleware) return { link: link(x.fn), priority: x.priority | 0, id: x.id || null };
      return { link: link(x), priority: 0, id: null };
    };
    G.routerAdd = (method, path, fn, ...mws) => {
      reg.routes.push({ method: String(method).toUpperCase(), path: String(path), handler: link(fn), middlewares: mws.map(mw) });
    };
    G.routerUse = (...mws) => {
      for (const m of mws) {
        const one = mw(m);
        if (one.id) reg.middlewares = reg.middlewares.filter((x) => x.id !== one.id);
        reg.middlewares.push(one);
      }
    };
    for (const name of HOOK_NAMES) {
      G[name] = (fn, ...tags) => {
        (reg.hooks[name] = reg.hooks[name] || []).push({ handler: source(fn), tags: tags.flat().map(String) });
      };
    }
    G.cronAdd = (id, expr, fn) => {
      id = String(id);
      expr = String(expr);
      checkCron(expr);
      reg.crons = reg.crons.filter((c) => c.id !== id);
      reg.crons.push({ id, expr, handler: source(fn) });
    };
    G.cronRemove = (id) => { reg.crons = reg.crons.filter((c) => c.id !== String(id)); };
    for (const path of arg.files) {
      file = path;
      try {
        text = __readFile(path);
        __eval("(function(){" + text + "\n})()", path);
      } catch (err) {
        failures.push({ file: path, error: errorText(err) });
      }
    }
    for (const name of HOOK_NAMES) delete G[name];
    delete G.routerAdd;
    delete G.routerUse;
    G.cronAdd = cronAdd;
    G.cronRemove = cronRemove;
    return { registry: reg, failures };
  };

  function checkCron(expr) {
    const macros = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"];
    if (macros.includes(expr.trim())) return;
    if (expr.trim().split(/\s+/).length !== 5) throw new GoError("invalid cron expression \"" + expr + "\": expected 5 fields");
  }

  // Inside handlers, cron jobs are added through the host (the server's scheduler).
  function cronAdd(id, expr, fn) {
    const src = typeof fn === "function" ? Function.prototype.toString.call(fn) : String(fn);
    host("cronAdd", { id: String(id), expr: String(expr), source: src });
  }
  function cronRemove(id) { host("cronRemove", { id: String(id) }); }

  const HOOK_NAMES = [
    "onBootstrap", "onBootstrapClear", "onServe", "onTerminate", "onSettingsReload", "onBackupCreate", "onBackupRestore",
    "onMailerSend", "onMailerRecordPasswordResetSend", "onMailerRecordVerificationSend", "onMailerRecordEmailChangeSend",
    "onMailerRecordOTPSend", "onMailerRecordAuthAlertSend",
    "onRealtimeConnectRequest", "onRealtimeSubscribeRequest", "onRealtimeMessageSend",
    "onRecordEnrich", "onRecordValidate",
    "onRecordCreate", "onRecordCreateExecute", "onRecordAfterCreateSuccess", "onRecordAfterCreateError",
    "onRecordUpdate", "onRecordUpdateExecute", "onRecordAfterUpdateSuccess", "onRecordAfterUpdateError",
    "onRecordDelete", "onRecordDeleteExecute", "onRecordAfterDeleteSuccess", "onRecordAfterDeleteError",
    "onCollectionValidate",
    "onCollectionCreate", "onCollectionCreateExecute", "onCollectionAfterCreateSuccess", "onCollectionAfterCreateError",
    "onCollectionUpdate", "onCollectionUpdateExecute", "onCollectionAfterUpdateSuccess", "onCollectionAfterUpdateError",
    "onCollectionDelete", "onCollectionDeleteExecute", "onCollectionAfterDeleteSuccess", "onCollectionAfterDeleteError",
    "onModelValidate",
    "onModelCreate", "onModelCreateExecute", "onModelAfterCreateSuccess", "onModelAfterCreateError",
    "onModelUpdate", "onModelUpdateExecute", "onModelAfterUpdateSuccess", "onModelAfterUpdateError",
    "onModelDelete", "onModelDeleteExecute", "onModelAfterDeleteSuccess", "onModelAfterDeleteError",
    "onRecordsListRequest", "onRecordViewRequest", "onRecordCreateRequest", "onRecordUpdateRequest", "onRecordDeleteRequest",
    "onRecordAuthRequest", "onRecordAuthRefreshRequest", "onRecordAuthWithPasswordRequest", "onRecordAuthWithOAuth2Request",
    "onRecordAuthWithOTPRequest", "onRecordRequestOTPRequest",
    "onRecordRequestPasswordResetRequest", "onRecordConfirmPasswordResetRequest",
    "onRecordRequestVerificationRequest", "onRecordConfirmVerificationRequest",
    "onRecordRequestEmailChangeRequest", "onRecordConfirmEmailChangeRequest",
    "onBatchRequest", "onFileDownloadRequest", "onFileTokenRequest",
    "onCollectionsListRequest", "onCollectionViewRequest", "onCollectionCreateRequest", "onCollectionUpdateRequest",
    "onCollectionDeleteRequest", "onCollectionsImportRequest", "onSettingsListRequest", "onSettingsUpdateRequest",
  ];

  // The one function Rust calls: runs an entry and answers JSON, errors included.
  G.__entry = (name, argText) => {
    collectionCache = {};
    let answer;
    try {
      const arg = JSON.parse(argText);
      G.$app = new App(arg && arg.tx !== undefined ? arg.tx : null);
      const fn = entries[name];
      if (!fn) throw new GoError("unknown entry " + name);
      answer = { ok: true, value: fn(arg) };
    } catch (err) {
      answer = { ok: false, error: describeError(err) };
    }
    return JSON.stringify(answer === undefined ? null : answer);
  };

  // ------------------------------------------------------------------ require
  const modules = {};
  function require(path) {
    let p = String(path);
    if (!p.startsWith("/")) p = __cwd() + "/" + p.replace(/^\.\//, "");
    if (!p.endsWith(".js") && !p.endsWith(".json")) {
      try { __readFile(p + ".js"); p += ".js"; } catch (_) { /* as given */ }
    }
    if (modules[p]) return modules[p].exports;
    const text = __readFile(p);
    if (p.endsWith(".json")) { modules[p] = { exports: JSON.parse(text) }; return modules[p].exports; }
    const module = { exports: {} };
    modules[p] = module;
    const fn = __eval("(function(module, exports, require, __filename, __dirname){" + text + "\n})", p);
    fn(module, module.exports, require, p, $filepath.dir(p));
    return module.exports;
  }

  const consoleOut = (...args) => __print(args.map((a) => (typeof a === "string" ? a : a === undefined ? "undefined" : a === null ? "null" : typeof a === "object" ? "[object Object]" : String(a))).join(" "));

  Object.assign(G, {
    $app: new App(null),
    $apis, $http, $security, $os, $filepath, $dbx, $mails,
    ApiError, BadRequestError, UnauthorizedError, ForbiddenError, NotFoundError, TooManyRequestsError, InternalServerError,
    ValidationError, GoError,
    Record, Collection, Field, DynamicModel, DateTime, MailerMessage, Middleware, FormData,
    SubscriptionMessage, Cookie,
    TextField: fieldClass("text"), NumberField: fieldClass("number"), BoolField: fieldClass("bool"),
    EmailField: fieldClass("email"), URLField: fieldClass("url"), EditorField: fieldClass("editor"),
    DateField: fieldClass("date"), AutodateField: fieldClass("autodate"), SelectField: fieldClass("select"),
    FileField: fieldClass("file"), RelationField: fieldClass("relation"), JSONField: fieldClass("json"),
    PasswordField: fieldClass("password"), GeoPointField: fieldClass("geoPoint"),
    toString, toBytes, sleep, unmarshal, arrayOf, require,
    nullString: () => nullable(""), nullInt: () => nullable(0), nullFloat: () => nullable(-0), nullBool: () => nullable(false),
    nullArray: () => nullable([]), nullObject: () => nullable({}),
    cronAdd, cronRemove,
    console: { log: consoleOut, info: consoleOut, warn: consoleOut, error: consoleOut, debug: consoleOut },
    process: { env: new Proxy({}, { get: (_t, k) => (typeof k === "string" ? __getenv(k) : undefined) }) },
  });
})(globalThis);
